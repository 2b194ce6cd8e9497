/* hostimage.h: build the root a container boots from: the "host" image (the host's /usr, with
 * /etc and /var as overlays whose writes stay in the node's state directory), a directory tree or a
 * NixOS system's empty tree, with the node's files, services and identity in place before boot. */
#pragma once

/* The node's state directory, for the host image:
 *   root/                   the tree booted: usr (host /usr bound read-only), bin, sbin, lib... ->
 *                           usr/..., etc and var (overlays, below), home, root, srv, opt, mnt, tmp
 *   etc.layer/, var.layer/  the node's own layer, rebuilt at each prepare, between the host's /etc
 *                           (/var) and the writable layer: hostname, machine-id, the node's files,
 *                           enabled services, moonrig-network.target, an empty fstab, masked getty,
 *                           SysV and disk generators, and a whiteout for each unit the host enabled in
 *                           /etc/systemd/{system,user}/ *.wants|*.requires (a lean boot: host
 *                           services start only when the node lists them, and stay startable);
 *                           in /var, an empty opaque log/journal that hides the host's journal
 *   etc.upper/, var.upper/  what the node writes (and etc.work/, var.work/ for overlayfs); the
 *                           node's journal is in var.upper/log/journal/<machine-id>/ once journald
 *                           flushed it there (early boot: /run/log/journal inside the node)
 *   machine-id              the node's id, kept so a reboot or restart keeps it
 * Writes live on disk in the state directory, not in a tmpfs: shutdown + start and reboot keep
 * them for the whole run. Files outside /etc and /var go straight into root/.
 * A directory image: booted in place when persistent; else lowerdir=root.layer:IMAGE with
 * root.upper/ on top, mounted on root/.
 * A NixOS system: root/ is a plain tree, kept for the whole run, with only what systemd-nspawn insists
 * on (usr/, etc/os-release), the machine id and the node's files: the system's stage 2 builds /etc
 * and the rest from /nix/store at each boot.
 * A start script: the state directory itself is the root, filled by the script; nothing is written. */

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

typedef struct HostImageFile {
        const char *path;         /* absolute path inside the node */
        const void *content;      /* NULL: copy `source` from the host */
        size_t len;
        const char *source;       /* a host file, used when content is NULL */
        mode_t mode;              /* 0: 0644, or the source's mode */
} HostImageFile;

typedef struct HostImageConfig {
        const char *name;         /* the node, for messages */
        const char *hostname;     /* NULL: name */
        const char *image;        /* NULL or "host": the host image; else a directory tree */
        const char *system;       /* a NixOS toplevel: its empty tree (image is ignored) */
        bool script_root;         /* a start script's: the state directory, left to the script */
        bool persistent;          /* a directory tree: boot it in place, writes go into it */
        const char *state_dir;    /* the node's own; created if missing; kept for the whole run */
        const HostImageFile *files;
        size_t n_files;
        char **services;          /* units to enable: "nginx" means nginx.service */
} HostImageConfig;

typedef struct HostImage {
        char *root;               /* the directory to boot (systemd-nspawn -D) */
        char *machine_id;         /* 32 hex digits, stable for the node's state directory; NULL for a
                                   * start script's root */
        char **mounts;            /* what we mounted, unmounted in reverse by hostimage_free */
} HostImage;

/* Must run in a private mount namespace (MS_PRIVATE): it mounts over paths in the state
 * directory. On failure, *ret_message (if given) says what went wrong and what to do. */
int hostimage_prepare(const HostImageConfig *c, HostImage **ret, char **ret_message);

/* Unmount what hostimage_prepare mounted and free. The state directory stays. */
void hostimage_free(HostImage *h);

/* Pure helpers, exposed for the unit tests. */

/* Where a node file goes: 'e' (the /etc layer), 'v' (the /var layer), 'r' (the root tree), or a
 * negative errno for a path the host image cannot hold (/usr, /proc, /tmp, relative, "..").
 * *ret_rel points into path, past the part the destination stands for. */
int hostimage_file_place(const char *path, const char **ret_rel);

/* "nginx" -> "nginx.service"; names with a unit suffix are kept. Free the result. */
char *hostimage_unit_name(const char *service);
