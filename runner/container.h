/* container.h: a systemd-nspawn container's lifecycle on sd-event: boot to READY (notify socket),
 * shutdown, reboot, crash, console and journal lines, and running commands in it. Its root is the
 * host image, a directory tree, a NixOS system, or whatever a nixpkgs start script builds. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <systemd/sd-event.h>

#include "exec.h"
#include "hostimage.h"
#include "machine.h"

typedef struct Container Container;

typedef struct ContainerConfig {
        const char *name;              /* also the machine name: letters, digits, '-', '_', '.' (at most
                                        * 64, starting with a letter or digit); container_new checks it */
        const char *hostname;          /* NULL: name */
        const char *image;             /* NULL or "host": the host image; else a directory tree */
        const char *system;            /* a NixOS toplevel (/nix/store/...-nixos-system-x): boots its init
                                        * in an empty tree (state_dir/root) with /nix/store bound read-only */
        const char *start_script;      /* a nixpkgs run-<name>-nspawn script: it builds the root (the state
                                        * directory) and runs systemd-nspawn itself; see "start" below */
        bool persistent;               /* a directory tree: boot it in place, writes go into it */
        const char *state_dir;         /* the node's own; its writable state lives here all run */
        const char *shared_dir;        /* NULL: none; else bound at /tmp/shared */
        const HostImageFile *files;    /* in place before the first boot (not for a start script) */
        size_t n_files;
        char **services;               /* enabled at boot: "nginx" means nginx.service (not for a NixOS
                                        * system or a start script: their configuration enables units) */
        /* For a start script, the next five become its arguments, as nspawn options (the nixpkgs
         * launcher hands "$@" on to systemd-nspawn); none are given by default. */
        char **bind;                   /* systemd-nspawn --bind= values: SRC[:DEST[:OPTIONS]] */
        char **bind_ro;                /* --bind-ro= values */
        char **devices;                /* device nodes handed in (bound at the same path) */
        char **env;                    /* KEY=VALUE for the container's PID 1, and for commands (over
                                        * the login environment) */
        char **extra_args;             /* more systemd-nspawn arguments, appended as they are */
        uint64_t boot_timeout_usec;    /* 0: 90 s */
        uint64_t shutdown_timeout_usec;/* 0: 30 s; then the container is killed */
} ContainerConfig;

/* The callbacks (machine.h's MachineCallbacks, each optional) a container calls, as it calls them:
 * - on_leader: the container's namespaces exist and its init is starting, not ready: move network
 *   links into its network namespace now (leader's /proc/<pid>/ns/net). Once per boot: a reboot
 *   starts systemd-nspawn again with a new network namespace, and the veths that were in the old
 *   one are gone.
 * - on_ready: once per boot (start, reboot, or a reboot the node did itself): error 0 and message
 *   NULL when READY=1 arrived and commands can run (the login environment is computed by then);
 *   else a negative errno (-ETIMEDOUT, -ECHILD: nspawn exited, -ECANCELED: shut down or crashed
 *   first, -EMFILE: its systemd said it ran out of inotify instances, on the console or in the
 *   journal) and a message naming the node, what happened and its last console lines. A failed
 *   boot is followed by on_exit, unless nspawn never started (bad files, say).
 * - on_exit: systemd-nspawn exited for good (not for a reboot): exit status, or 128+signal.
 * - on_console_line: one console line, without its newline (for a start script: a line of its
 *   output).
 * - on_journal_line: one line of the container's journal, formatted like `journalctl -o short`
 *   without the time and host: "nginx[123]: message" (a message of several lines gives several).
 *   The journal is followed only when this is set, from the time the leader is known until the
 *   container exits (its last entries come before on_exit), for each boot. It is read from the
 *   files journald writes, within 100 ms (50 ms median) of an entry. When set, systemd's status
 *   lines ("[  OK  ] Started x") leave the console but for failures: the journal has each as
 *   "systemd[1]: Started x." (a start script's console is the script's business). */

/* Copies cfg. SIGCHLD must be blocked. Call from a private mount namespace: the root is built
 * with mounts under the state directory (at the first start; see hostimage.h). A callback may call
 * container_free on its container. -EINVAL for a bad name, or more than one of a directory image,
 * system and start_script. */
int container_new(sd_event *e, const ContainerConfig *cfg, const MachineCallbacks *cb, void *userdata,
                  Container **ret);

/* Adds a file to those put in place before the first boot (the runner's /etc/hosts, known only
 * once every node is declared). A path the config already has is left as the config says and
 * returns 0. -EBUSY once the root has been prepared; -EOPNOTSUPP for a start script's node (its
 * NixOS system writes its own /etc, /etc/hosts included). */
int container_add_file(Container *c, const HostImageFile *f);

/* A container's lifecycle goes through machine.h (machine_start, machine_poweroff, machine_reboot,
 * machine_crash, machine_release on container_machine(c)); what each does for a container:
 *
 * start: returns at once; on_ready tells the outcome. -EBUSY if it runs already.
 * systemd-nspawn runs in a cgroup of its own, <our cgroup>/moonrig-<run>/<node> in each hierarchy
 * nspawn uses (its container goes in payload/ below), removed once nspawn exits: containers that
 * shared one cgroup would remove each other's unit cgroups. The first start of a process removes the
 * moonrig-* cgroups without a process in them that a killed run left. Where we may not make cgroups,
 * nspawn runs in ours.
 * A start script is run instead of systemd-nspawn: cwd the state directory, stdin /dev/null, its
 * output read as console lines, and only RUN_NSPAWN_ROOT_DIR=<state dir>, RUN_NSPAWN_SHARED_DIR=
 * <shared dir> (if any), NOTIFY_SOCKET=<ours> and PATH=/usr/sbin:/usr/bin:/sbin:/bin in its
 * environment; it is ready once nspawn passes on READY=1 and X_NSPAWN_LEADER_PID, and exiting
 * before that fails the boot with its last output lines. It runs (in the node's cgroup) under a
 * keeper process of ours that reaps whatever the script leaves behind; the node is down once the
 * script and all that are gone.
 * An exit status of 133 (nspawn's reboot) starts the script again.
 *
 * poweroff: orderly; on_exit follows (the container is killed after shutdown_timeout).
 *
 * reboot: keeping all state; on_ready follows once it is up again. -EBUSY unless ready.
 *
 * crash: pull the plug: SIGKILL the container and systemd-nspawn (for a start script: the script's process
 * group and the container, all at once); on_exit follows.
 *
 * release: the end of the run, without waiting: a start script gets SIGTERM, so that its launcher cleans up
 * (the nixpkgs one removes its veths and network namespace), and is killed if it has not exited
 * after shutdown_timeout; any other container is crashed. on_exit follows. Call it for every node,
 * then container_free each: they stop in parallel. */

/* Kills it if it runs (waiting for systemd-nspawn synchronously), unmounts its root. The state
 * directory stays (the caller decides whether to keep it). A start script that was not crashed gets
 * its SIGTERM and up to shutdown_timeout first, as with a release. */
void container_free(Container *c);

bool container_is_up(Container *c);      /* systemd-nspawn runs */
bool container_is_ready(Container *c);   /* booted: commands can run */
pid_t container_leader(Container *c);    /* the container's PID 1 (host pid), 0 if none */
int container_leader_pidfd(Container *c);/* borrowed; -1 if none */
const char *container_name(Container *c);
const char *container_machine_id(Container *c); /* NULL for a start script's node */
const char *container_root(Container *c);/* the booted tree (a start script's: the state directory),
                                          * NULL before the first start */
void *container_userdata(Container *c);
/* The machine interface (machine.h) of a container, and back. */
typedef struct Machine Machine;
Machine *container_machine(Container *c);
Container *container_from_machine(Machine *m);   /* NULL unless m is a container */

/* Commands, once ready: the login environment (computed once per boot, with cfg.env set over what
 * /etc/profile set), the shell (bash, or /bin/sh without pipefail) and the working directory (/root,
 * else /). */
char **container_login_env(Container *c);
const char *container_shell(Container *c);
const char *container_cwd(Container *c);

/* Run `command` under `shell -euo pipefail -c` with the login environment. -ESRCH unless ready. */
int container_exec(Container *c, const char *command, uint64_t timeout_usec, exec_done_fn done, void *userdata,
                   ExecJob **ret);

/* Pure helpers, exposed for the unit tests. */
/* The systemd-nspawn command line; with the journal followed, the console shows failed units only. */
char **container_nspawn_argv(const ContainerConfig *cfg, const char *root, const char *machine_id,
                             bool journal_followed);
/* A start script's command line (the script, then the node's nspawn options) and environment. */
char **container_script_argv(const ContainerConfig *cfg);
char **container_script_env(const char *root_dir, const char *shared_dir, const char *notify_socket);
bool container_name_is_valid(const char *name);
/* Sets each "NAME=value" of add in the NULL-terminated *env (which may be NULL), over an assignment
 * of the same NAME, else at the end; an entry without '=' is skipped. 0 or -ENOMEM. */
int container_env_merge(char ***env, char *const *add);
