/* hostimage.c: prepare a container's root in the node's state directory: the host image (host /usr
 * read-only, /etc and /var overlays over the host's own), a directory tree or a NixOS system's empty
 * tree, with the node's layer (identity, files, enabled services, the host's enablement hidden) under
 * the writable layer. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <ftw.h>
#include <stdarg.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <systemd/sd-id128.h>

#include "hostimage.h"
#include "util.h"

/* Lean boot: no gettys on the console, no SysV scripts started behind systemd's back, and none of
 * the generators that read the host's disks and kernel command line (its /etc/crypttab, resume=):
 * they have nothing to do in a node, and each costs about 5 ms of CPU at every boot. */
static const char *const masked_generators[] = {
        "systemd-getty-generator",
        "systemd-sysv-generator",
        "systemd-cryptsetup-generator",
        "systemd-integritysetup-generator",
        "systemd-veritysetup-generator",
        "systemd-gpt-auto-generator",
        "systemd-hibernate-resume-generator",
        "systemd-system-update-generator",
};

/* Nothing in a lean Debian system pulls in network.target, and it refuses a manual start: without
 * this, network-online.target is never reached and units ordered after it never start. */
static const char network_target[] =
        "# Written by moonrig: the test runner configures this node's network from outside.\n"
        "[Unit]\n"
        "Description=Network configured by moonrig\n"
        "Wants=network.target network-online.target\n"
        "Before=network-online.target\n"
        "After=network.target\n";

/* Top-level paths the host image cannot give a node its own copy of. */
static const char *const forbidden_prefixes[] = {
        "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32",
        "/proc", "/sys", "/dev", "/run", "/tmp",
};

static int set_message(char **ret, const char *fmt, ...) _printf_(2, 3);
static int set_message(char **ret, const char *fmt, ...) {
        va_list ap;

        if (!ret)
                return 0;
        free(*ret);
        *ret = NULL;
        va_start(ap, fmt);
        if (vasprintf(ret, fmt, ap) < 0)
                *ret = NULL;
        va_end(ap);
        return 0;
}

static char *path_join(const char *a, const char *b) {
        char *p;

        while (*b == '/')
                b++;
        return asprintf(&p, "%s/%s", a, b) < 0 ? NULL : p;
}

/* ---- pure helpers ---- */

static bool path_has_prefix(const char *path, const char *prefix) {
        size_t l = strlen(prefix);
        return strncmp(path, prefix, l) == 0 && (path[l] == '/' || path[l] == '\0');
}

static bool path_is_clean(const char *path) {
        for (const char *p = path; *p;) {
                size_t l = strcspn(p, "/");
                if ((l == 1 && p[0] == '.') || (l == 2 && p[0] == '.' && p[1] == '.'))
                        return false;
                p += l;
                p += strspn(p, "/");
        }
        return true;
}

int hostimage_file_place(const char *path, const char **ret_rel) {
        if (!path || path[0] != '/' || !path_is_clean(path))
                return -EINVAL;
        for (size_t i = 0; i < ELEMENTSOF(forbidden_prefixes); i++)
                if (path_has_prefix(path, forbidden_prefixes[i]))
                        return -EROFS;
        if (path_has_prefix(path, "/etc") || path_has_prefix(path, "/var")) {
                const char *rel = path + 4 + strspn(path + 4, "/");
                if (*rel == '\0')
                        return -EISDIR;
                *ret_rel = rel;
                return path[1];
        }
        *ret_rel = path + strspn(path, "/");
        return **ret_rel ? 'r' : -EISDIR;
}

/* A directory image of our own may hold /usr too; what is mounted fresh at boot may not. */
static int tree_file_place(const char *path, const char **ret_rel) {
        static const char *const fresh[] = { "/proc", "/sys", "/dev", "/run", "/tmp" };

        if (!path || path[0] != '/' || !path_is_clean(path))
                return -EINVAL;
        for (size_t i = 0; i < ELEMENTSOF(fresh); i++)
                if (path_has_prefix(path, fresh[i]))
                        return -EROFS;
        *ret_rel = path + strspn(path, "/");
        return **ret_rel ? 'r' : -EISDIR;
}

char *hostimage_unit_name(const char *service) {
        static const char *const suffixes[] = {
                ".service", ".socket", ".target", ".timer", ".path", ".mount", ".automount", ".slice", ".scope",
                ".swap", ".device",
        };
        size_t l = strlen(service);
        char *p;

        for (size_t i = 0; i < ELEMENTSOF(suffixes); i++) {
                size_t s = strlen(suffixes[i]);
                if (l > s && streq(service + l - s, suffixes[i]))
                        return strdup(service);
        }
        return asprintf(&p, "%s.service", service) < 0 ? NULL : p;
}

/* ---- files inside a tree we own, never following a symlink out of it ---- */

static int mkdir_parents_at(int rootfd, const char *rel, int *ret_dirfd, const char **ret_base) {
        _cleanup_free_ char *copy = strdup(rel);
        int fd;
        char *p, *slash;

        if (!copy)
                return -ENOMEM;
        fd = fcntl(rootfd, F_DUPFD_CLOEXEC, 3);
        if (fd < 0)
                return -errno;
        for (p = copy; (slash = strchr(p, '/')); p = slash + 1) {
                int nfd;
                *slash = '\0';
                if (*p == '\0')
                        continue;
                if (mkdirat(fd, p, 0755) < 0 && errno != EEXIST) {
                        int r = -errno;
                        close(fd);
                        return r;
                }
                nfd = openat(fd, p, O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC | O_PATH);
                close(fd);
                if (nfd < 0)
                        return -errno;
                fd = nfd;
        }
        *ret_dirfd = fd;
        *ret_base = rel + (p - copy);
        return 0;
}

static int write_at(int rootfd, const char *rel, const void *data, size_t len, mode_t mode) {
        _cleanup_close_ int dfd = -1, fd = -1;
        const char *base;
        int r = mkdir_parents_at(rootfd, rel, &dfd, &base);

        if (r < 0)
                return r;
        (void) unlinkat(dfd, base, 0);
        fd = openat(dfd, base, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode & 07777);
        if (fd < 0)
                return -errno;
        for (const char *p = data; len > 0;) {
                ssize_t l = write(fd, p, len);
                if (l < 0 && errno == EINTR)
                        continue;
                if (l < 0)
                        return -errno;
                p += l;
                len -= l;
        }
        return fchmod(fd, mode & 07777) < 0 ? -errno : 0;
}

static int symlink_at(int rootfd, const char *rel, const char *target) {
        _cleanup_close_ int dfd = -1;
        const char *base;
        int r = mkdir_parents_at(rootfd, rel, &dfd, &base);

        if (r < 0)
                return r;
        (void) unlinkat(dfd, base, 0);
        return symlinkat(target, dfd, base) < 0 ? -errno : 0;
}

/* An overlayfs whiteout: hides the same path of the layers below. */
static int whiteout_at(int rootfd, const char *rel) {
        _cleanup_close_ int dfd = -1;
        const char *base;
        int r = mkdir_parents_at(rootfd, rel, &dfd, &base);

        if (r < 0)
                return r;
        (void) unlinkat(dfd, base, 0);
        return mknodat(dfd, base, S_IFCHR | 0000, makedev(0, 0)) < 0 ? -errno : 0;
}

static int read_file(const char *path, char **ret, size_t *ret_len, mode_t *ret_mode) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        _cleanup_free_ char *buf = NULL;
        struct stat st;
        size_t len = 0;

        if (fd < 0 || fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode))
                return -EISDIR;
        buf = malloc(st.st_size + 1);
        if (!buf)
                return -ENOMEM;
        while (len < (size_t) st.st_size) {
                ssize_t l = read(fd, buf + len, st.st_size - len);
                if (l < 0 && errno == EINTR)
                        continue;
                if (l <= 0)
                        return l < 0 ? -errno : -EIO;
                len += l;
        }
        *ret = TAKE_PTR(buf);
        *ret_len = len;
        *ret_mode = st.st_mode & 07777;
        return 0;
}

static int rm_one(const char *path, const struct stat *st _unused_, int type, struct FTW *f _unused_) {
        if (type == FTW_DP)
                return rmdir(path) < 0 && errno != ENOENT ? -1 : 0;
        return unlink(path) < 0 && errno != ENOENT ? -1 : 0;
}

static int rm_rf(const char *path) {
        if (access(path, F_OK) < 0)
                return 0;
        return nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT) < 0 ? -errno : 0;
}

static int mkdir_p(const char *path, mode_t mode) {
        _cleanup_free_ char *copy = strdup(path);

        if (!copy)
                return -ENOMEM;
        for (char *p = copy + 1; *p; p++) {
                if (*p != '/')
                        continue;
                *p = '\0';
                if (mkdir(copy, 0755) < 0 && errno != EEXIST)
                        return -errno;
                *p = '/';
        }
        return mkdir(copy, mode) < 0 && errno != EEXIST ? -errno : 0;
}

/* A fresh, empty directory (a layer is rebuilt at each prepare). */
static int fresh_dir(const char *state, const char *name, char **ret) {
        _cleanup_free_ char *p = path_join(state, name);
        int r;

        if (!p)
                return -ENOMEM;
        r = rm_rf(p);
        if (r < 0)
                return r;
        if (mkdir(p, 0755) < 0)
                return -errno;
        if (ret)
                *ret = TAKE_PTR(p);
        return 0;
}

static int ensure_dir(const char *state, const char *name, mode_t mode, char **ret) {
        _cleanup_free_ char *p = path_join(state, name);

        if (!p)
                return -ENOMEM;
        if (mkdir(p, mode) < 0 && errno != EEXIST)
                return -errno;
        if (ret)
                *ret = TAKE_PTR(p);
        return 0;
}

/* ---- the image ---- */

typedef struct Prep {
        const HostImageConfig *cfg;
        HostImage *img;
        char **message;
        char *state;
        int etc_fd, var_fd, root_fd;   /* where /etc/..., /var/... and other files go */
        bool single_tree;              /* a directory image: root_fd takes every file, full path */
        size_t n_mounts;
} Prep;

static bool is_host_image(const HostImageConfig *c) {
        return !c->image || streq(c->image, "host");
}

static int machine_id_load(Prep *p) {
        _cleanup_free_ char *path = path_join(p->state, "machine-id");
        char buf[64] = "";
        sd_id128_t id;
        FILE *f;
        int r;

        if (!path)
                return -ENOMEM;
        f = fopen(path, "re");
        if (f) {
                if (fgets(buf, sizeof buf, f))
                        buf[strcspn(buf, "\n")] = '\0';
                fclose(f);
                if (sd_id128_from_string(buf, &id) >= 0)
                        goto done;
        }
        r = sd_id128_randomize(&id);
        if (r < 0)
                return r;
        f = fopen(path, "we");
        if (!f)
                return -errno;
        fprintf(f, SD_ID128_FORMAT_STR "\n", SD_ID128_FORMAT_VAL(id));
        if (fclose(f) != 0)
                return -errno;
done:
        p->img->machine_id = malloc(SD_ID128_STRING_MAX);
        if (!p->img->machine_id)
                return -ENOMEM;
        sd_id128_to_string(id, p->img->machine_id);
        return 0;
}

static int mount_record(Prep *p, const char *where) {
        char **v = realloc(p->img->mounts, (p->n_mounts + 2) * sizeof(char *));

        if (!v)
                return -ENOMEM;
        p->img->mounts = v;
        v[p->n_mounts] = strdup(where);
        if (!v[p->n_mounts])
                return -ENOMEM;
        v[++p->n_mounts] = NULL;
        return 0;
}

static int mount_overlay(Prep *p, const char *lower, const char *upper, const char *work, const char *where) {
        _cleanup_free_ char *opts = NULL;
        int r;

        /* index=off: the node's layer is rebuilt at each prepare, and an index would refuse an upper
         * layer that was used with another lower one (kept state, a second run). */
        if (asprintf(&opts, "lowerdir=%s,upperdir=%s,workdir=%s,index=off", lower, upper, work) < 0)
                return -ENOMEM;
        if (mount("overlay", where, "overlay", 0, opts) < 0) {
                r = -errno;
                if (r == -ELOOP || r == -EBUSY)
                        set_message(p->message,
                                    "node %s: cannot mount the overlay on %s: its layers overlap (%s); the state "
                                    "directory %s must not lie under /etc, /var or the image, so set TMPDIR elsewhere",
                                    p->cfg->name, where, strerror(-r), p->state);
                else
                        set_message(p->message, "node %s: cannot mount the overlay on %s (lower %s, upper %s): %s",
                                    p->cfg->name, where, lower, upper, strerror(-r));
                return r;
        }
        return mount_record(p, where);
}

static int mount_usr(Prep *p) {
        _cleanup_free_ char *where = path_join(p->img->root, "usr");
        int r;

        if (!where)
                return -ENOMEM;
        if (mount("/usr", where, NULL, MS_BIND | MS_REC, NULL) < 0)
                goto fail;
        r = mount_record(p, where);
        if (r < 0)
                return r;
        if (mount(NULL, where, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY, NULL) < 0)
                goto fail;
        return 0;
fail:
        r = -errno;
        set_message(p->message, "node %s: cannot bind-mount the host's /usr read-only on %s: %s", p->cfg->name, where,
                    strerror(-r));
        return r;
}

/* The skeleton of a merged-/usr system; bin, lib... point into /usr as on the host. */
static int host_tree(Prep *p) {
        static const struct { const char *name; mode_t mode; } dirs[] = {
                { "usr", 0755 }, { "etc", 0755 }, { "var", 0755 }, { "home", 0755 }, { "root", 0700 },
                { "srv", 0755 }, { "opt", 0755 }, { "mnt", 0755 }, { "tmp", 01777 }, { "proc", 0555 },
                { "sys", 0555 }, { "dev", 0755 }, { "run", 0755 },
        };
        _cleanup_closedir_ DIR *d = NULL;
        struct dirent *de;
        int r;

        r = ensure_dir(p->state, "root", 0755, &p->img->root);
        if (r < 0)
                return r;
        for (size_t i = 0; i < ELEMENTSOF(dirs); i++) {
                _cleanup_free_ char *path = path_join(p->img->root, dirs[i].name);
                if (!path)
                        return -ENOMEM;
                if (mkdir(path, dirs[i].mode) < 0 && errno != EEXIST)
                        return -errno;
                (void) chmod(path, dirs[i].mode);
        }
        d = opendir("/");
        if (!d)
                return -errno;
        while ((de = readdir(d))) {
                char target[PATH_MAX];
                ssize_t l = readlinkat(dirfd(d), de->d_name, target, sizeof target - 1);
                if (l <= 0)
                        continue;
                target[l] = '\0';
                if (!startswith(target, "usr/"))
                        continue;
                _cleanup_free_ char *link = path_join(p->img->root, de->d_name);
                if (!link)
                        return -ENOMEM;
                (void) unlink(link);
                if (symlink(target, link) < 0)
                        return -errno;
        }
        return 0;
}

/* Every unit the host enabled (a symlink in a .wants or .requires directory of /etc/systemd) gets a
 * whiteout in the node's layer: the node starts only what its own image and its services ask for. */
static int hide_host_enablement(int etc_fd, const char *unit_dir) {
        _cleanup_closedir_ DIR *d = NULL;
        _cleanup_free_ char *host = NULL;
        struct dirent *de;
        int r;

        if (asprintf(&host, "/etc/%s", unit_dir) < 0)
                return -ENOMEM;
        d = opendir(host);
        if (!d)
                return errno == ENOENT ? 0 : -errno;
        while ((de = readdir(d))) {
                _cleanup_closedir_ DIR *w = NULL;
                struct dirent *we;
                size_t l = strlen(de->d_name);

                if (!((l > 6 && streq(de->d_name + l - 6, ".wants")) || (l > 9 && streq(de->d_name + l - 9, ".requires"))))
                        continue;
                int wfd = openat(dirfd(d), de->d_name, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
                if (wfd < 0)
                        continue;
                w = fdopendir(wfd);
                if (!w) {
                        close(wfd);
                        continue;
                }
                while ((we = readdir(w))) {
                        _cleanup_free_ char *rel = NULL;
                        if (we->d_name[0] == '.')
                                continue;
                        if (asprintf(&rel, "%s/%s/%s", unit_dir, de->d_name, we->d_name) < 0)
                                return -ENOMEM;
                        r = whiteout_at(etc_fd, rel);
                        if (r < 0)
                                return r;
                }
        }
        return 0;
}

static int write_identity(Prep *p, int etc_fd, bool keep_machine_id) {
        const char *hostname = p->cfg->hostname ?: p->cfg->name;
        _cleanup_free_ char *h = NULL, *m = NULL;
        int r;

        if (asprintf(&h, "%s\n", hostname) < 0 || asprintf(&m, "%s\n", p->img->machine_id) < 0)
                return -ENOMEM;
        r = write_at(etc_fd, "hostname", h, strlen(h), 0644);
        if (r < 0)
                return r;
        if (keep_machine_id) {
                struct stat st;
                if (fstatat(etc_fd, "machine-id", &st, 0) >= 0 && st.st_size > 0)
                        return 0;
        }
        return write_at(etc_fd, "machine-id", m, strlen(m), 0444);
}

static int write_lean_config(int etc_fd) {
        int r;

        for (size_t i = 0; i < ELEMENTSOF(masked_generators); i++) {
                _cleanup_free_ char *rel = NULL;
                if (asprintf(&rel, "systemd/system-generators/%s", masked_generators[i]) < 0)
                        return -ENOMEM;
                r = symlink_at(etc_fd, rel, "/dev/null");
                if (r < 0)
                        return r;
        }
        /* The host's fstab describes the host's disks. */
        r = write_at(etc_fd, "fstab", "", 0, 0644);
        if (r < 0)
                return r;
        r = hide_host_enablement(etc_fd, "systemd/system");
        if (r < 0)
                return r;
        return hide_host_enablement(etc_fd, "systemd/user");
}

/* A directory like the host's (owner, mode), in a layer. */
static int mkdir_like_host(int dfd, const char *rel, const char *host, int *ret_fd) {
        struct stat st;
        int fd;

        if (stat(host, &st) < 0 || !S_ISDIR(st.st_mode))
                return -ENOENT;
        if (mkdirat(dfd, rel, 0755) < 0 && errno != EEXIST)
                return -errno;
        fd = openat(dfd, rel, O_DIRECTORY | O_NOFOLLOW | O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        if (fchown(fd, st.st_uid, st.st_gid) < 0 || fchmod(fd, st.st_mode & 07777) < 0) {
                int r = -errno;
                close(fd);
                return r;
        }
        *ret_fd = fd;
        return 0;
}

/* The host's journal is not the node's: an empty, opaque log/journal in the node's /var layer hides
 * it (else journalctl in the node shows the host's entries, and following the node's journal opens
 * every host journal file). Only where the host has one: that the directory exists is what makes
 * journald keep a persistent journal (Storage=auto), then in var.upper/log/journal/<machine-id>/.
 * A file system without trusted xattrs leaves the host's journal visible, as before. */
static int hide_host_journal(int var_fd) {
        _cleanup_close_ int log_fd = -1, journal_fd = -1;
        int r;

        r = mkdir_like_host(var_fd, "log", "/var/log", &log_fd);
        if (r == -ENOENT)
                return 0;
        if (r < 0)
                return r;
        r = mkdir_like_host(log_fd, "journal", "/var/log/journal", &journal_fd);
        if (r == -ENOENT)
                return 0;
        if (r < 0)
                return r;
        (void) fsetxattr(journal_fd, "trusted.overlay.opaque", "y", 1, 0);
        return 0;
}

static int write_network_target(int etc_fd) {
        int r = write_at(etc_fd, "systemd/system/moonrig-network.target", network_target, sizeof network_target - 1, 0644);
        if (r < 0)
                return r;
        return symlink_at(etc_fd, "systemd/system/multi-user.target.wants/moonrig-network.target",
                          "/etc/systemd/system/moonrig-network.target");
}

static int write_node_file(Prep *p, const HostImageFile *f) {
        _cleanup_free_ char *copy = NULL;
        const void *data = f->content;
        size_t len = f->len;
        mode_t mode = f->mode;
        const char *rel;
        int fd, r, where = p->single_tree ? tree_file_place(f->path, &rel) : hostimage_file_place(f->path, &rel);

        if (where < 0)
                return set_message(p->message,
                                   "node %s: file %s cannot be placed: %s (use an absolute path outside /usr, /proc, "
                                   "/sys, /dev, /run and /tmp; /tmp/shared is for exchanging files)",
                                   p->cfg->name, f->path ?: "(null)",
                                   where == -EROFS ? "that part of the node is the host's or a fresh mount at boot"
                                                   : "not an absolute file path"),
                       where;
        if (!data) {
                mode_t smode = 0644;
                if (!f->source)
                        return set_message(p->message, "node %s: file %s has neither content nor source",
                                           p->cfg->name, f->path), -EINVAL;
                r = read_file(f->source, &copy, &len, &smode);
                if (r < 0)
                        return set_message(p->message, "node %s: file %s: cannot read its source %s: %s",
                                           p->cfg->name, f->path, f->source, strerror(-r)), r;
                data = copy;
                if (mode == 0)
                        mode = smode;
        }
        if (mode == 0)
                mode = 0644;
        fd = where == 'e' ? p->etc_fd : where == 'v' ? p->var_fd : p->root_fd;
        r = write_at(fd, rel, data, len, mode);
        if (r < 0)
                return set_message(p->message, "node %s: cannot write file %s: %s", p->cfg->name, f->path,
                                   strerror(-r)), r;
        return 0;
}

static bool unit_file_exists(Prep *p, const char *dir, const char *name) {
        _cleanup_free_ char *path = NULL;
        struct stat st;

        if (asprintf(&path, "%s/%s", dir, name) < 0)
                return false;
        /* The node's own layer first: a unit given in its files, not a whiteout. */
        if (startswith(path, "/etc/") && fstatat(p->etc_fd, path + 5, &st, 0) >= 0)
                return !S_ISCHR(st.st_mode);
        if (is_host_image(p->cfg)) {
                if (startswith(path, "/etc/") && fstatat(p->etc_fd, path + 5, &st, AT_SYMLINK_NOFOLLOW) >= 0)
                        return false;   /* hidden by a whiteout */
                return stat(path, &st) >= 0;
        }
        _cleanup_free_ char *in_image = path_join(p->cfg->image, path);
        return in_image && stat(in_image, &st) >= 0;
}

/* Where the unit's file is, as the container will see it; NULL when there is none. */
static char *unit_file_in_node(Prep *p, const char *unit) {
        static const char *const dirs[] = { "/etc/systemd/system", "/usr/lib/systemd/system", "/lib/systemd/system" };
        _cleanup_free_ char *template = NULL;
        const char *at = strchr(unit, '@'), *dot = strrchr(unit, '.');
        char *path;

        /* "postgresql@15-main.service" is provided by "postgresql@.service". */
        if (at && dot && dot > at + 1 && asprintf(&template, "%.*s%s", (int) (at - unit + 1), unit, dot) < 0)
                return NULL;
        for (size_t i = 0; i < ELEMENTSOF(dirs); i++) {
                const char *name = unit_file_exists(p, dirs[i], unit) ? unit
                                 : template && unit_file_exists(p, dirs[i], template) ? template : NULL;
                if (name)
                        return asprintf(&path, "%s/%s", dirs[i], name) < 0 ? NULL : path;
        }
        return NULL;
}

static int enable_services(Prep *p) {
        for (char **s = p->cfg->services; s && *s; s++) {
                _cleanup_free_ char *unit = hostimage_unit_name(*s), *file = NULL, *rel = NULL;
                int r;

                if (!unit)
                        return -ENOMEM;
                file = unit_file_in_node(p, unit);
                if (!file)
                        return set_message(p->message,
                                           "node %s: service %s: no unit file %s in /etc/systemd/system or "
                                           "/usr/lib/systemd/system; install its package on the host or give the "
                                           "unit in the node's files",
                                           p->cfg->name, *s, unit), -ENOENT;
                if (asprintf(&rel, "systemd/system/multi-user.target.wants/%s", unit) < 0)
                        return -ENOMEM;
                r = symlink_at(p->etc_fd, rel, file);
                if (r < 0)
                        return set_message(p->message, "node %s: cannot enable service %s: %s", p->cfg->name, *s,
                                           strerror(-r)), r;
        }
        return 0;
}

static int open_dir(const char *path, int *ret) {
        *ret = open(path, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
        return *ret < 0 ? -errno : 0;
}

static int prepare_host(Prep *p) {
        _cleanup_free_ char *etc_layer = NULL, *var_layer = NULL, *etc_upper = NULL, *etc_work = NULL,
                            *var_upper = NULL, *var_work = NULL, *lower = NULL, *where = NULL;
        int r;

        r = host_tree(p);
        if (r < 0)
                return set_message(p->message, "node %s: cannot create the root tree in %s: %s", p->cfg->name,
                                   p->state, strerror(-r)), r;
        if ((r = fresh_dir(p->state, "etc.layer", &etc_layer)) < 0 ||
            (r = fresh_dir(p->state, "var.layer", &var_layer)) < 0 ||
            (r = ensure_dir(p->state, "etc.upper", 0755, &etc_upper)) < 0 ||
            (r = ensure_dir(p->state, "etc.work", 0700, &etc_work)) < 0 ||
            (r = ensure_dir(p->state, "var.upper", 0755, &var_upper)) < 0 ||
            (r = ensure_dir(p->state, "var.work", 0700, &var_work)) < 0)
                return set_message(p->message, "node %s: cannot create layers in %s: %s", p->cfg->name, p->state,
                                   strerror(-r)), r;
        if ((r = open_dir(etc_layer, &p->etc_fd)) < 0 || (r = open_dir(var_layer, &p->var_fd)) < 0 ||
            (r = open_dir(p->img->root, &p->root_fd)) < 0)
                return r;

        if ((r = write_lean_config(p->etc_fd)) < 0 || (r = write_identity(p, p->etc_fd, false)) < 0 ||
            (r = write_network_target(p->etc_fd)) < 0)
                return set_message(p->message, "node %s: cannot write the node's /etc layer in %s: %s",
                                   p->cfg->name, etc_layer, strerror(-r)), r;
        if ((r = hide_host_journal(p->var_fd)) < 0)
                return set_message(p->message, "node %s: cannot write the node's /var layer in %s: %s",
                                   p->cfg->name, var_layer, strerror(-r)), r;
        for (size_t i = 0; i < p->cfg->n_files; i++)
                if ((r = write_node_file(p, &p->cfg->files[i])) < 0)
                        return r;
        if ((r = enable_services(p)) < 0)
                return r;

        r = mount_usr(p);
        if (r < 0)
                return r;
        if (asprintf(&lower, "%s:/etc", etc_layer) < 0 || !(where = path_join(p->img->root, "etc")))
                return -ENOMEM;
        r = mount_overlay(p, lower, etc_upper, etc_work, where);
        if (r < 0)
                return r;
        free(lower);
        free(where);
        if (asprintf(&lower, "%s:/var", var_layer) < 0 || !(where = path_join(p->img->root, "var")))
                return -ENOMEM;
        return mount_overlay(p, lower, var_upper, var_work, where);
}

/* A directory tree: booted in place when persistent, else under an overlay whose upper layer lives in
 * the state directory (kept across reboots within the run, never written to the image). */
static int prepare_tree(Prep *p) {
        _cleanup_free_ char *layer = NULL, *upper = NULL, *work = NULL, *lower = NULL;
        struct stat st;
        int r;

        if (stat(p->cfg->image, &st) < 0 || !S_ISDIR(st.st_mode))
                return set_message(p->message, "node %s: image %s is not a directory", p->cfg->name,
                                   p->cfg->image), -ENOTDIR;
        if (p->cfg->persistent) {
                p->img->root = strdup(p->cfg->image);
                if (!p->img->root)
                        return -ENOMEM;
                if ((r = open_dir(p->img->root, &p->root_fd)) < 0)
                        return r;
                r = mkdirat(p->root_fd, "etc", 0755);
                if (r < 0 && errno != EEXIST)
                        return -errno;
                p->etc_fd = openat(p->root_fd, "etc", O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (p->etc_fd < 0)
                        return -errno;
        } else {
                if ((r = fresh_dir(p->state, "root.layer", &layer)) < 0 ||
                    (r = ensure_dir(p->state, "root.upper", 0755, &upper)) < 0 ||
                    (r = ensure_dir(p->state, "root.work", 0700, &work)) < 0 ||
                    (r = ensure_dir(p->state, "root", 0755, &p->img->root)) < 0)
                        return set_message(p->message, "node %s: cannot create layers in %s: %s", p->cfg->name,
                                           p->state, strerror(-r)), r;
                if ((r = open_dir(layer, &p->root_fd)) < 0)
                        return r;
                if (mkdirat(p->root_fd, "etc", 0755) < 0)
                        return -errno;
                p->etc_fd = openat(p->root_fd, "etc", O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (p->etc_fd < 0)
                        return -errno;
        }
        p->var_fd = p->root_fd;
        p->single_tree = true;

        if ((r = write_identity(p, p->etc_fd, p->cfg->persistent)) < 0 || (r = write_network_target(p->etc_fd)) < 0)
                return set_message(p->message, "node %s: cannot write the node's /etc in %s: %s", p->cfg->name,
                                   layer ?: p->img->root, strerror(-r)), r;
        for (size_t i = 0; i < p->cfg->n_files; i++)
                if ((r = write_node_file(p, &p->cfg->files[i])) < 0)
                        return r;
        if ((r = enable_services(p)) < 0)
                return r;
        if (p->cfg->persistent)
                return 0;

        if (asprintf(&lower, "%s:%s", layer, p->cfg->image) < 0)
                return -ENOMEM;
        return mount_overlay(p, lower, upper, work, p->img->root);
}

/* A NixOS system's root: an empty tree kept for the run; its stage 2 builds the rest at each boot. */
static int prepare_system(Prep *p) {
        /* nspawn refuses a tree without usr/ (or, to --boot, without os-release); the system's own
         * os-release replaces ours when its /etc is set up. */
        static const char os_release[] =
                "# Written by moonrig for systemd-nspawn; the NixOS system replaces it at activation.\n"
                "NAME=NixOS\nID=nixos\n";
        static const struct { const char *name; mode_t mode; } dirs[] = {
                { "etc", 0755 }, { "usr", 0755 }, { "nix", 0755 }, { "nix/store", 0755 },
        };
        struct stat st;
        int r;

        if (p->cfg->services && p->cfg->services[0])
                return set_message(p->message,
                                   "node %s: services cannot be enabled in a NixOS system from outside: its /etc is "
                                   "built from %s at boot; enable them in its configuration (systemd.services.%s."
                                   "wantedBy = [ \"multi-user.target\" ])",
                                   p->cfg->name, p->cfg->system, p->cfg->services[0]), -EINVAL;
        if (stat(p->cfg->system, &st) < 0 || !S_ISDIR(st.st_mode))
                return set_message(p->message,
                                   "node %s: the NixOS system %s is not a directory (give a toplevel such as "
                                   "/nix/store/...-nixos-system-NAME, with an init in it)",
                                   p->cfg->name, p->cfg->system), -ENOTDIR;
        r = ensure_dir(p->state, "root", 0755, &p->img->root);
        if (r < 0)
                return set_message(p->message, "node %s: cannot create the root tree in %s: %s", p->cfg->name,
                                   p->state, strerror(-r)), r;
        if ((r = open_dir(p->img->root, &p->root_fd)) < 0)
                return r;
        for (size_t i = 0; i < ELEMENTSOF(dirs); i++)
                if (mkdirat(p->root_fd, dirs[i].name, dirs[i].mode) < 0 && errno != EEXIST)
                        return -errno;
        p->etc_fd = openat(p->root_fd, "etc", O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (p->etc_fd < 0)
                return -errno;
        p->var_fd = p->root_fd;
        p->single_tree = true;
        if (fstatat(p->etc_fd, "os-release", &st, AT_SYMLINK_NOFOLLOW) < 0 &&
            (r = write_at(p->etc_fd, "os-release", os_release, sizeof os_release - 1, 0644)) < 0)
                return r;
        if ((r = write_identity(p, p->etc_fd, true)) < 0)
                return set_message(p->message, "node %s: cannot write the node's /etc in %s: %s", p->cfg->name,
                                   p->img->root, strerror(-r)), r;
        for (size_t i = 0; i < p->cfg->n_files; i++)
                if ((r = write_node_file(p, &p->cfg->files[i])) < 0)
                        return r;
        return 0;
}

/* A start script's root is the state directory, and the script builds it. */
static int prepare_script(Prep *p) {
        if (p->cfg->n_files > 0 || (p->cfg->services && p->cfg->services[0]))
                return set_message(p->message,
                                   "node %s: files and services cannot be given to a node booted by a start script "
                                   "(its NixOS system builds its own /etc); set them in its configuration",
                                   p->cfg->name), -EINVAL;
        p->img->root = strdup(p->state);
        if (!p->img->root)
                return -ENOMEM;
        /* The container's /: others than root must be able to traverse it (the nixpkgs launcher does
         * the same). */
        return chmod(p->state, 0755) < 0 ? -errno : 0;
}

void hostimage_free(HostImage *h) {
        size_t n = 0;

        if (!h)
                return;
        while (h->mounts && h->mounts[n])
                n++;
        while (n-- > 0)
                (void) umount2(h->mounts[n], MNT_DETACH);
        strv_free(h->mounts);
        free(h->root);
        free(h->machine_id);
        free(h);
}

int hostimage_prepare(const HostImageConfig *c, HostImage **ret, char **ret_message) {
        Prep p = { .cfg = c, .message = ret_message, .etc_fd = -1, .var_fd = -1, .root_fd = -1 };
        int r;

        if (!c || !c->name || !c->state_dir || !ret)
                return -EINVAL;
        p.img = calloc(1, sizeof *p.img);
        p.state = realpath(c->state_dir, NULL);
        if (!p.state && errno == ENOENT && mkdir_p(c->state_dir, 0700) >= 0)
                p.state = realpath(c->state_dir, NULL);
        if (!p.img || !p.state) {
                r = p.img ? -errno : -ENOMEM;
                set_message(ret_message, "node %s: cannot create the state directory %s: %s", c->name, c->state_dir,
                            strerror(-r));
                goto finish;
        }
        /* A start script's root holds nothing of ours, not even the machine id. */
        r = c->script_root ? 0 : machine_id_load(&p);
        if (r < 0) {
                set_message(ret_message, "node %s: cannot store the machine id in %s: %s", c->name, p.state,
                            strerror(-r));
                goto finish;
        }
        r = c->script_root ? prepare_script(&p)
          : c->system ? prepare_system(&p)
          : is_host_image(c) ? prepare_host(&p)
          : prepare_tree(&p);
        if (r < 0 && ret_message && !*ret_message)
                set_message(ret_message, "node %s: cannot prepare its root in %s: %s", c->name, p.state, strerror(-r));
finish:
        if (p.etc_fd >= 0 && p.etc_fd != p.root_fd)
                close(p.etc_fd);
        if (p.var_fd >= 0 && p.var_fd != p.root_fd && p.var_fd != p.etc_fd)
                close(p.var_fd);
        if (p.root_fd >= 0)
                close(p.root_fd);
        free(p.state);
        if (r < 0) {
                hostimage_free(p.img);
                return r;
        }
        *ret = p.img;
        return 0;
}
