/* container.c: boot a systemd-nspawn container (or a nixpkgs start script that runs nspawn) and follow
 * it on sd-event: readiness from our notify socket (READY=1, X_NSPAWN_LEADER_PID=), console lines from
 * its output, its journal, shutdown, reboot (nspawn exits with 133: we start it again on the same
 * root), crash, and commands through exec.c. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <systemd/sd-id128.h>

#include "cgroup.h"
#include "child.h"
#include "container.h"
#include "machine.h"
#include "strv.h"
#include "journal.h"
#include "linebuf.h"
#include "nsenter.h"
#include "preflight.h"
#include "util.h"

#define BOOT_TIMEOUT_DEFAULT (90 * 1000000ULL)
#define SHUTDOWN_TIMEOUT_DEFAULT (30 * 1000000ULL)
#define NSPAWN_EXIT_REBOOT 133
#define KILL_GRACE_USEC (3 * 1000000ULL)
/* A start script gets a minimal environment, as under the NixOS driver; a PATH lets one written for a
 * host without Nix find its tools. */
#define SCRIPT_PATH "/usr/sbin:/usr/bin:/sbin:/bin"
#define MACHINE_NAME_MAX 64

/* Booting: nspawn runs, READY=1 not seen or the login env not computed yet; rebooting: nspawn
 * will exit with 133 and we start it again. m.pid is systemd-nspawn, or the keeper of a start
 * script. */
struct Container {
        Machine m;
        ContainerConfig cfg;            /* deep copy */
        HostImageFile *files;

        HostImage *image;
        char *shared_abs;               /* the shared directory, absolute, for a start script */
        bool ready_seen;
        bool inotify_starved;           /* its systemd said it has no inotify instances, this boot */

        uint64_t spawned_at;            /* CLOCK_MONOTONIC: this boot's journal entries come after */
        bool term_sent;                 /* a start script got its SIGTERM (release) */
        uint64_t term_deadline;         /* ... and is killed after this (CLOCK_MONOTONIC) */
        pid_t leader;
        int leader_pidfd;

        int notify_fd;
        char notify_name[108];
        sd_event_source *notify_source;

        sd_event_source *console_source;
        LineBuf console_line;
        JournalFollower *journal;
        bool journal_draining;          /* the container is gone: its last journal lines */

        sd_event_source *deferred_source;   /* reports a failure to prepare the root */
        int deferred_error;
        char *deferred_message;
        ExecJob *env_job;
        char **login_env;
        const char *shell, *cwd;
        char *cgroups[2];               /* its own, one per hierarchy, while nspawn runs; NULL: none */
};

static int spawn_nspawn(Container *c);
static void container_destroy(Machine *m);

/* ---- the nspawn command line ---- */

/* The node's binds, devices, environment and extra arguments, as systemd-nspawn options. */
static int push_node_options(char ***v, size_t *n, const ContainerConfig *cfg) {
        int r = 0;

        for (char **b = cfg->bind; r >= 0 && b && *b; b++)
                r = strv_pushf(v, n, "--bind=%s", *b);
        for (char **b = cfg->bind_ro; r >= 0 && b && *b; b++)
                r = strv_pushf(v, n, "--bind-ro=%s", *b);
        /* Without a scope of its own (--keep-unit) nspawn sets no device policy: the node is enough. */
        for (char **d = cfg->devices; r >= 0 && d && *d; d++)
                r = strv_pushf(v, n, "--bind=%s", *d);
        for (char **e = cfg->env; r >= 0 && e && *e; e++)
                r = strv_pushf(v, n, "--setenv=%s", *e);
        for (char **a = cfg->extra_args; r >= 0 && a && *a; a++)
                r = strv_pushf(v, n, "%s", *a);
        return r;
}

char **container_nspawn_argv(const ContainerConfig *cfg, const char *root, const char *machine_id,
                             bool journal_followed) {
        char **v = NULL;
        size_t n = 0;
        int r = 0;
        static const char *const fixed[] = {
                "systemd-nspawn", "--quiet", "--notify-ready=yes", "--keep-unit", "--register=no",
                "--private-network", "--console=read-only", "--link-journal=no",
                /* Plain console lines: no colour escapes. */
                "--setenv=SYSTEMD_COLORS=0",
        };
        /* Arguments for the container's init, after every option: unit names rather than descriptions
         * that a console without a width would cut at 80 columns. */
        static const char *const init_args[] = { "systemd.status_unit_format=name" };

        for (size_t i = 0; r >= 0 && i < ELEMENTSOF(fixed); i++) {
                r = strv_pushf(&v, &n, "%s", fixed[i]);
                /* A NixOS system's init is given below instead: its stage 2 builds the system (/etc,
                 * /run/current-system) and then runs systemd; --boot would look for systemd in a tree
                 * that has none yet. */
                if (r >= 0 && i == 1 && !cfg->system)
                        r = strv_pushf(&v, &n, "--boot");
        }
        if (r >= 0)
                r = strv_pushf(&v, &n, "--directory=%s", root);
        if (r >= 0)
                r = strv_pushf(&v, &n, "--machine=%s", cfg->name);
        if (r >= 0 && machine_id)
                r = strv_pushf(&v, &n, "--uuid=%s", machine_id);
        if (r >= 0)
                r = strv_pushf(&v, &n, "--hostname=%s", cfg->hostname ?: cfg->name);
        /* Without --boot, nspawn's SIGTERM would SIGKILL the init rather than halt it. */
        if (r >= 0 && cfg->system)
                r = strv_pushf(&v, &n, "--kill-signal=SIGRTMIN+3");
        if (r >= 0 && cfg->system)
                r = strv_pushf(&v, &n, "--bind-ro=/nix/store");
        if (r >= 0 && cfg->shared_dir)
                r = strv_pushf(&v, &n, "--bind=%s:/tmp/shared", cfg->shared_dir);
        if (r >= 0)
                r = push_node_options(&v, &n, cfg);
        if (r >= 0 && cfg->system)
                r = strv_pushf(&v, &n, "%s/init", cfg->system);
        for (size_t i = 0; r >= 0 && i < ELEMENTSOF(init_args); i++)
                r = strv_pushf(&v, &n, "%s", init_args[i]);
        /* The journal has every status line as "systemd[1]: Started x." too: the console keeps only
         * failures (and what comes before journald), which halves a boot's lines. */
        if (r >= 0 && journal_followed)
                r = strv_pushf(&v, &n, "systemd.show_status=error");
        if (r < 0) {
                strv_free(v);
                return NULL;
        }
        return v;
}

char **container_script_argv(const ContainerConfig *cfg) {
        char **v = NULL;
        size_t n = 0;
        int r = strv_pushf(&v, &n, "%s", cfg->start_script);

        if (r >= 0)
                r = push_node_options(&v, &n, cfg);
        if (r < 0) {
                strv_free(v);
                return NULL;
        }
        return v;
}

char **container_script_env(const char *root_dir, const char *shared_dir, const char *notify_socket) {
        char **v = NULL;
        size_t n = 0;
        int r = strv_pushf(&v, &n, "PATH=%s", SCRIPT_PATH);

        if (r >= 0)
                r = strv_pushf(&v, &n, "RUN_NSPAWN_ROOT_DIR=%s", root_dir);
        if (r >= 0 && shared_dir)
                r = strv_pushf(&v, &n, "RUN_NSPAWN_SHARED_DIR=%s", shared_dir);
        if (r >= 0)
                r = strv_pushf(&v, &n, "NOTIFY_SOCKET=%s", notify_socket);
        if (r < 0) {
                strv_free(v);
                return NULL;
        }
        return v;
}

int container_env_merge(char ***env, char *const *add) {
        for (char *const *a = add; a && *a; a++) {
                const char *eq = strchr(*a, '=');
                size_t n = 0;
                char *copy, **v;

                if (!eq)
                        continue;
                copy = strdup(*a);
                if (!copy)
                        return -ENOMEM;
                while (*env && (*env)[n] && strncmp((*env)[n], *a, eq - *a + 1) != 0)
                        n++;
                if (*env && (*env)[n]) {
                        free((*env)[n]);
                        (*env)[n] = copy;
                        continue;
                }
                v = realloc(*env, (n + 2) * sizeof(char *));
                if (!v) {
                        free(copy);
                        return -ENOMEM;
                }
                v[n] = copy;
                v[n + 1] = NULL;
                *env = v;
        }
        return 0;
}

bool container_name_is_valid(const char *name) {
        static const char alnum[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
        size_t l = name ? strlen(name) : 0;

        /* systemd-nspawn's rule for machine names (a host name); a start script is not given ours, so
         * we check it ourselves: the name goes into paths and messages. */
        if (l == 0 || l > MACHINE_NAME_MAX || !strchr(alnum, name[0]))
                return false;
        for (size_t i = 0; i < l; i++)
                if (!strchr(alnum, name[i]) && !strchr("-_.", name[i]))
                        return false;
        return !strstr(name, "..") && name[l - 1] != '.';
}

/* ---- console ---- */

/* systemd's words when inotify_init1 fails: "Failed to create inotify object: Too many open files",
 * "Failed to allocate inotify fd: Too many open files". */
static bool says_inotify_starved(const char *line, size_t len) {
        static const char emfile[] = "Too many open files";

        return memmem(line, len, "inotify", strlen("inotify")) && memmem(line, len, emfile, strlen(emfile));
}

static void emit_line(Container *c, const char *line, size_t len) {
        if (len > 0 && line[len - 1] == '\r')
                len--;
        machine_remember_line(&c->m, line, len, false);
        if (says_inotify_starved(line, len))
                c->inotify_starved = true;
        if (c->m.cb.on_console_line)
                c->m.cb.on_console_line(&c->m, line, len);
}

static void console_feed(Container *c, const char *buf, size_t len) {
        for (size_t i = 0; i < len && machine_alive(&c->m);) {
                char *line;
                size_t l = 0;

                i += linebuf_feed(&c->console_line, buf + i, len - i, &line, &l);
                if (line)
                        emit_line(c, line, l);
        }
}

/* Returns false on EOF or error. */
static bool console_read(Container *c) {
        char buf[16384];

        for (;;) {
                ssize_t l = read(sd_event_source_get_io_fd(c->console_source), buf, sizeof buf);
                if (l < 0 && errno == EINTR)
                        continue;
                if (l < 0 && errno == EAGAIN)
                        return true;
                if (l <= 0)
                        return false;
                console_feed(c, buf, l);
                if (!machine_alive(&c->m))
                        return true;
        }
}

static void console_close(Container *c) {
        char *line;
        size_t l = 0;

        if (!c->console_source)
                return;
        (void) console_read(c);
        line = linebuf_flush(&c->console_line, &l);
        if (line && machine_alive(&c->m))
                emit_line(c, line, l);
        c->console_source = sd_event_source_disable_unref(c->console_source);
}

static void fail_if_inotify_starved(Container *c);

static int on_console(sd_event_source *s _unused_, int fd _unused_, uint32_t revents _unused_, void *userdata) {
        Container *c = userdata;

        machine_enter(&c->m);
        if (!console_read(c) && machine_alive(&c->m))
                console_close(c);
        fail_if_inotify_starved(c);
        machine_leave(&c->m);
        return 0;
}

/* The likely cause, unless what happened names it already. */
static void failure_hint(Machine *m, const char *what, FILE *f) {
        if (!(what && strstr(what, "max_user_instances")) && machine_last_lines_contain(m, "Too many open files"))
                fputs(" (the container ran out of inotify instances or file descriptors: raise "
                      "fs.inotify.max_user_instances, see container_preflight)", f);
}

/* ---- the journal ---- */

static void on_journal(const char *line, size_t len, void *userdata) {
        Container *c = userdata;

        machine_enter(&c->m);
        if (machine_alive(&c->m)) {
                machine_remember_line(&c->m, line, len, true);
                if (says_inotify_starved(line, len))
                        c->inotify_starved = true;
                c->m.cb.on_journal_line(&c->m, line, len);
        }
        /* Not for the last lines: nspawn is gone, and its exit reports the boot. */
        if (!c->journal_draining)
                fail_if_inotify_starved(c);
        machine_leave(&c->m);
}

/* From the leader on: its root as we see it holds the journal, wherever journald keeps it (the
 * volatile /run/log/journal until it flushes to /var/log/journal, which for the host image lives in
 * var.upper/ of the state directory). */
static void journal_start(Container *c) {
        char root[64];
        JournalFollowConfig jc = {
                .root = root,
                .since_usec = c->spawned_at,
        };
        int r;

        if (!c->m.cb.on_journal_line)
                return;
        c->journal = journal_follower_free(c->journal);
        snprintf(root, sizeof root, "/proc/%d/root", (int) c->leader);
        r = journal_follow(c->m.event, &jc, on_journal, c, &c->journal);
        if (r < 0) {
                char m[256];
                int l = snprintf(m, sizeof m, "moonrig: cannot follow the journal of node %s: %s", c->cfg.name,
                                 strerror(-r));
                c->m.cb.on_journal_line(&c->m, m, (size_t) l);
        }
}

/* The container is gone: hand out what its journal files hold last, then stop. */
static void journal_stop(Container *c) {
        c->journal_draining = true;
        journal_follower_drain(c->journal);
        c->journal_draining = false;
        c->journal = journal_follower_free(c->journal);
}

/* ---- readiness ---- */

/* SIGKILL what runs under nspawn. Its init first: nspawn reaps it and exits by itself; were nspawn
 * killed first, its init would be handed to us (PID 1 of our namespace) and linger as a zombie. */
static void kill_payload(Machine *m) {
        Container *c = (Container *) m;
        char path[64];
        _cleanup_fclose_ FILE *f = NULL;
        int pid;

        if (c->cfg.start_script) {
                /* All at once: the keeper kills the script's process group and whatever is left. */
                if (c->leader > 0)
                        (void) kill(c->leader, SIGKILL);
                if (c->m.pid > 0)
                        (void) kill(c->m.pid, SIGUSR1);
                return;
        }
        if (c->leader > 0) {
                (void) kill(c->leader, SIGKILL);   /* takes the whole PID namespace with it */
                return;
        }
        if (c->m.pid <= 0)
                return;
        /* Still booting, its init unknown: whatever nspawn forked. */
        snprintf(path, sizeof path, "/proc/%d/task/%d/children", (int) c->m.pid, (int) c->m.pid);
        f = fopen(path, "re");
        while (f && fscanf(f, "%d", &pid) == 1)
                (void) kill(pid, SIGKILL);
}

static void kill_nspawn(Machine *m) {
        (void) kill(m->pid, SIGKILL);
}

/* SIGTERM to a start script: the NixOS launcher then stops nspawn and removes its veths and network
 * namespace. It is killed if it has not exited by the deadline. */
static void script_terminate(Container *c) {
        if (c->term_sent || c->m.pid <= 0)
                return;
        c->term_sent = true;
        c->term_deadline = now_usec() + c->cfg.shutdown_timeout_usec;
        (void) kill(c->m.pid, SIGTERM);   /* the keeper passes it on */
}

/* For container_free: the same, waiting (bounded) for it here. A start script not crashed on purpose
 * first gets its SIGTERM and the shutdown timeout. */
static void kill_all_now(Container *c) {
        int fd = c->m.child_source ? sd_event_source_get_child_pidfd(c->m.child_source) : -1;
        struct pollfd p = { .fd = fd, .events = POLLIN };
        siginfo_t si = {};

        if (c->m.pid <= 0)
                return;
        if (c->cfg.start_script && c->m.state != MACHINE_KILLING && fd >= 0) {
                uint64_t now = now_usec();

                script_terminate(c);
                if (now < c->term_deadline && poll(&p, 1, (int) ((c->term_deadline - now + 999) / 1000)) > 0)
                        return;   /* it exited: the child source reaps it */
        }
        kill_payload(&c->m);
        if (fd < 0 || poll(&p, 1, KILL_GRACE_USEC / 1000) <= 0)
                (void) kill(c->m.pid, SIGKILL);
        /* If nspawn went first after all, its init is ours to reap. */
        if (c->leader_pidfd >= 0) {
                p = (struct pollfd) { .fd = c->leader_pidfd, .events = POLLIN };
                if (poll(&p, 1, KILL_GRACE_USEC / 1000) > 0)
                        (void) waitid(P_PIDFD, c->leader_pidfd, &si, WEXITED | WNOHANG);
        }
}

/* Such a systemd never gets ready, or comes up without its path units and watches: end the boot now,
 * saying why, rather than at the boot timeout or with a node that half works. */
static void fail_if_inotify_starved(Container *c) {
        _cleanup_free_ char *m = NULL;
        unsigned long limit = 0;

        if (!machine_alive(&c->m) || !c->inotify_starved || (c->m.state != MACHINE_BOOTING && c->m.state != MACHINE_REBOOTING))
                return;
        (void) preflight_inotify_limit(&limit);
        m = machine_failure_message(&c->m, "its systemd ran out of inotify instances while booting (\"Too many open files\"): "
                            "other containers and daemons hold the rest; raise fs.inotify.max_user_instances "
                            "(now %lu) as root: sysctl -w fs.inotify.max_user_instances=%lu",
                            limit, limit > 0 ? 2 * limit : 1024);
        exec_cancel(TAKE_PTR(c->env_job));
        machine_boot_failed(&c->m, -EMFILE, m);
}

static void on_login_env(int error, char **envp, void *userdata) {
        Container *c = userdata;
        _cleanup_free_ char *m = NULL;

        c->env_job = NULL;
        machine_enter(&c->m);
        if (error < 0) {
                m = machine_failure_message(&c->m, "booted, but a shell cannot run in it (%s -c '. /etc/profile; env -0'): %s",
                                    c->shell, strerror(-error));
                machine_boot_failed(&c->m, error, m);
        } else {
                strv_free(c->login_env);
                c->login_env = envp;
                /* --setenv reaches PID 1 only: the node's env holds for its commands too, over what
                 * /etc/profile set. */
                if (container_env_merge(&c->login_env, c->cfg.env) < 0) {
                        m = machine_failure_message(&c->m, "out of memory for its commands' environment");
                        machine_boot_failed(&c->m, -ENOMEM, m);
                } else {
                        c->m.state = MACHINE_READY;
                        machine_report_ready(&c->m, 0, NULL);
                }
        }
        machine_leave(&c->m);
}

static void on_ready_notified(Container *c) {
        int r;

        /* PID 1 sends READY=1 again on daemon-reexec: only the first one of a boot counts. */
        if (c->ready_seen || c->m.state != MACHINE_BOOTING)
                return;
        c->ready_seen = true;
        if (c->leader_pidfd < 0) {
                _cleanup_free_ char *m = machine_failure_message(&c->m, "READY=1 came without X_NSPAWN_LEADER_PID");
                machine_boot_failed(&c->m, -EPROTO, m);
                return;
        }
        c->shell = exec_find_shell(c->leader);
        c->cwd = exec_default_cwd(c->leader);
        r = exec_login_env(c->m.event, c->leader_pidfd, c->shell, on_login_env, c, &c->env_job);
        if (r < 0) {
                _cleanup_free_ char *m = machine_failure_message(&c->m, "cannot run a shell in it: %s", strerror(-r));
                machine_boot_failed(&c->m, r, m);
        }
}

static void on_leader_notified(Container *c, const char *value) {
        pid_t pid = (pid_t) atoi(value);

        if (pid <= 0 || pid == c->leader)
                return;
        if (c->leader_pidfd >= 0)
                close(c->leader_pidfd);
        c->leader = pid;
        c->leader_pidfd = nsenter_pidfd_open(pid);
        if (c->leader_pidfd < 0) {
                c->leader = 0;
                return;
        }
        journal_start(c);
        if (c->m.cb.on_leader)
                c->m.cb.on_leader(&c->m, pid);
}

static void notify_message(Container *c, char *msg) {
        char *save = NULL;

        for (char *l = strtok_r(msg, "\n", &save); l && machine_alive(&c->m); l = strtok_r(NULL, "\n", &save)) {
                if (startswith(l, "X_NSPAWN_LEADER_PID="))
                        on_leader_notified(c, l + strlen("X_NSPAWN_LEADER_PID="));
                else if (streq(l, "READY=1"))
                        on_ready_notified(c);
        }
}

static int on_notify(sd_event_source *s _unused_, int fd, uint32_t revents _unused_, void *userdata) {
        Container *c = userdata;
        char buf[4097];

        machine_enter(&c->m);
        /* Drain all: a full socket buffer would block the container's PID 1. */
        while (machine_alive(&c->m)) {
                ssize_t l = recv(fd, buf, sizeof buf - 1, MSG_DONTWAIT);
                if (l < 0 && errno == EINTR)
                        continue;
                if (l < 0)
                        break;
                buf[l] = '\0';
                notify_message(c, buf);
        }
        machine_leave(&c->m);
        return 0;
}

static int notify_open(Container *c) {
        _cleanup_close_ int fd = -1;
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        static unsigned counter;
        uint64_t rnd = 0;
        sd_id128_t id;
        socklen_t len;
        int r;

        if (c->notify_fd >= 0)
                return 0;
        if (sd_id128_randomize(&id) >= 0)
                memcpy(&rnd, id.bytes, sizeof rnd);
        /* Abstract: no path length limit, nothing to remove; our network namespace only. */
        snprintf(c->notify_name, sizeof c->notify_name, "moonrig/%d/%u/%016llx", (int) getpid(), counter++,
                 (unsigned long long) rnd);
        memcpy(sa.sun_path + 1, c->notify_name, strlen(c->notify_name));
        len = offsetof(struct sockaddr_un, sun_path) + 1 + strlen(c->notify_name);

        fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return -errno;
        if (bind(fd, (struct sockaddr *) &sa, len) < 0)
                return -errno;
        r = sd_event_add_io(c->m.event, &c->notify_source, fd, EPOLLIN, on_notify, c);
        if (r < 0)
                return r;
        (void) sd_event_source_set_io_fd_own(c->notify_source, true);
        c->notify_fd = TAKE_FD(fd);
        return 0;
}

/* ---- timers ---- */

static char *boot_timeout_message(Machine *m) {
        Container *c = (Container *) m;

        exec_cancel(TAKE_PTR(c->env_job));
        return machine_failure_message(m, "not ready within %.1f s (%s)", m->boot_timeout_usec / 1e6,
                                       c->ready_seen ? "its systemd sent READY=1, but a shell in it did not answer"
                                                     : "no READY=1 from its systemd");
}

/* ---- nspawn's exit ---- */

static int on_orphan_exit(sd_event_source *s, const siginfo_t *si _unused_, void *userdata _unused_) {
        sd_event_source_disable_unref(s);   /* floating: frees it; sd-event reaped the process */
        return 0;
}

/* When nspawn had to be killed before its init was gone, the init was handed to us (PID 1 of our
 * namespace): reap it, now or when it is done exiting. */
static void reap_orphaned_leader(Container *c) {
        siginfo_t si = {};
        sd_event_source *s;
        int fd;

        if (c->leader_pidfd < 0 || waitid(P_PIDFD, c->leader_pidfd, &si, WEXITED | WNOHANG | WNOWAIT) < 0)
                return;   /* not our child: nspawn reaped it */
        if (si.si_pid > 0) {
                (void) waitid(P_PIDFD, c->leader_pidfd, &si, WEXITED | WNOHANG);
                return;
        }
        fd = fcntl(c->leader_pidfd, F_DUPFD_CLOEXEC, 3);
        if (fd < 0 || sd_event_add_child_pidfd(c->m.event, &s, fd, WEXITED, on_orphan_exit, NULL) < 0) {
                if (fd >= 0)
                        close(fd);
                return;
        }
        (void) sd_event_source_set_child_pidfd_own(s, true);
        (void) sd_event_source_set_floating(s, true);
        sd_event_source_unref(s);
}

static void forget_boot(Container *c) {
        journal_stop(c);
        exec_cancel(TAKE_PTR(c->env_job));
        reap_orphaned_leader(c);
        if (c->leader_pidfd >= 0)
                c->leader_pidfd = (close(c->leader_pidfd), -1);
        c->leader = 0;
        c->ready_seen = false;
        c->inotify_starved = false;
        c->login_env = (strv_free(c->login_env), NULL);
        machine_forget_run(&c->m);
        cgroup_node_remove(c->cgroups);
}

static int exited(Machine *m, int status, MachineState was) {
        Container *c = (Container *) m;
        int r;

        console_close(c);
        forget_boot(c);
        /* A reboot ends nspawn with 133, whether we asked for it or the node did itself. */
        if (machine_alive(m) && status == NSPAWN_EXIT_REBOOT && (was == MACHINE_REBOOTING || was == MACHINE_READY)) {
                m->boot_pending = true;
                r = spawn_nspawn(c);
                if (r >= 0)
                        return 1;
                _cleanup_free_ char *msg = machine_failure_message(m, "cannot start %s again after a reboot: %s",
                                                                   c->cfg.start_script ?: "systemd-nspawn", strerror(-r));
                machine_report_ready(m, r, msg);
        }
        return 0;
}

static char *exit_message(Machine *m, int status) {
        Container *c = (Container *) m;

        if (c->cfg.start_script)
                return machine_failure_message(m, "its start script %s exited with status %d before the node was ready",
                                               c->cfg.start_script, status);
        return machine_failure_message(m, "systemd-nspawn exited with status %d before the node was ready", status);
}

/* ---- starting nspawn ---- */

/* In the child: detached (child.h), stdin /dev/null, stdout and stderr to out_fd. */
static void child_setup(int out_fd, pid_t parent) {
        int null_fd;

        child_detach(parent);
        null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (null_fd < 0 || dup2(null_fd, 0) < 0 || dup2(out_fd, 1) < 0 || dup2(out_fd, 2) < 0)
                _exit(127);
        (void) close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);
}

static _Noreturn void exec_nspawn(char **argv, char **envp) {
        char path[PATH_MAX];

        if (preflight_find_in_path("systemd-nspawn", path, sizeof path))
                execve(path, argv, envp);
        dprintf(2, "cannot run systemd-nspawn: %m (apt-get install systemd-container)\n");
        _exit(127);
}

/* SIGKILL to every child of ours (those of the script's tree that were handed to us as subreaper). */
static void keeper_kill_children(void) {
        _cleanup_fclose_ FILE *f = fopen("/proc/thread-self/children", "re");
        int pid;

        while (f && fscanf(f, "%d", &pid) == 1)
                (void) kill(pid, SIGKILL);
}

/* The keeper of a start script, a forked copy of us between us and the script: a subreaper, so that
 * whatever the script's tree leaves behind (systemd-nspawn when the launcher died first, the
 * container's init when nspawn did) is handed to it, not to us, and reaped. It exits with the
 * script's status (128+signal if killed) once the script and everything it left are gone: the node
 * is down when the keeper is. SIGTERM is passed on to the script; SIGUSR1 kills the script's process
 * group and everything left (a crash). */
static _Noreturn void keeper_main(char **argv, char **envp, const char *cwd) {
        sigset_t mask, none;
        siginfo_t si;
        int status = 127, null_fd, st;
        bool killing = false;
        pid_t script, p;

        /* It never execs: what we hold open (a command's stdin pipe, say) must not stay open here. */
        (void) close_range(3, ~0U, 0);
        (void) prctl(PR_SET_NAME, "moonrig-keeper");
        if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0)
                _exit(127);
        sigemptyset(&mask);
        sigaddset(&mask, SIGCHLD);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGUSR1);
        (void) sigprocmask(SIG_BLOCK, &mask, NULL);
        script = fork();
        if (script < 0)
                _exit(127);
        if (script == 0) {
                /* Its own process group, so that a crash can kill all of it at once. */
                (void) setpgid(0, 0);
                if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
                        _exit(127);
                sigemptyset(&none);
                (void) sigprocmask(SIG_SETMASK, &none, NULL);
                if (chdir(cwd) < 0) {
                        dprintf(2, "cannot enter the node's state directory %s: %m\n", cwd);
                        _exit(127);
                }
                execve(argv[0], argv, envp);
                dprintf(2, "cannot run the start script %s: %m\n", argv[0]);
                _exit(127);
        }
        (void) setpgid(script, script);
        /* Only the script's tree holds the console pipe: its EOF means they are all done with it. */
        null_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
        if (null_fd >= 0) {
                (void) dup2(null_fd, 1);
                (void) dup2(null_fd, 2);
        }

        for (bool script_gone = false; !script_gone;) {
                if (sigwaitinfo(&mask, &si) < 0)
                        continue;
                if (si.si_signo == SIGTERM)
                        (void) kill(script, SIGTERM);
                else if (si.si_signo == SIGUSR1)
                        killing = true;
                if (killing) {
                        (void) kill(-script, SIGKILL);
                        keeper_kill_children();
                }
                while ((p = waitpid(-1, &st, WNOHANG)) > 0)
                        if (p == script) {
                                status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
                                script_gone = true;
                        }
        }
        /* The script is the node: what it left running goes with it. */
        for (;;) {
                (void) kill(-script, SIGKILL);
                keeper_kill_children();
                if (waitpid(-1, NULL, 0) < 0 && errno == ECHILD)
                        break;
        }
        _exit(status);
}

static int spawn_nspawn(Container *c) {
        _cleanup_strv_free_ char **argv = NULL, **envp = NULL;
        _cleanup_free_ char *notify = NULL;
        int out[2], r;
        pid_t parent = getpid();

        if (asprintf(&notify, "@%s", c->notify_name) < 0)
                return -ENOMEM;
        if (c->cfg.start_script) {
                argv = container_script_argv(&c->cfg);
                envp = container_script_env(c->image->root, c->shared_abs ?: c->cfg.shared_dir, notify);
        } else {
                char *e[] = { (char *) "PATH=" PREFLIGHT_DEFAULT_PATH, NULL, NULL };
                argv = container_nspawn_argv(&c->cfg, c->image->root, c->image->machine_id, !!c->m.cb.on_journal_line);
                if (asprintf(&e[1], "NOTIFY_SOCKET=%s", notify) >= 0)
                        envp = strv_copy(e);
                free(e[1]);
        }
        if (!argv || !envp)
                return -ENOMEM;
        c->term_sent = false;
        c->spawned_at = now_usec();
        if (pipe2(out, O_CLOEXEC) < 0)
                return -errno;
        if (fcntl(out[0], F_SETFL, O_NONBLOCK) < 0) {
                r = -errno;
                goto fail_pipe;
        }
        cgroup_node_make(c->cfg.name, c->cgroups);
        c->m.pid = fork();
        if (c->m.pid < 0) {
                r = -errno;
                cgroup_node_remove(c->cgroups);
                goto fail_pipe;
        }
        if (c->m.pid == 0) {
                child_setup(out[1], parent);
                cgroup_node_join(c->cgroups, ELEMENTSOF(c->cgroups));
                if (c->cfg.start_script)
                        keeper_main(argv, envp, c->image->root);
                exec_nspawn(argv, envp);
        }
        close(out[1]);

        r = sd_event_add_io(c->m.event, &c->console_source, out[0], EPOLLIN, on_console, c);
        if (r < 0) {
                close(out[0]);
                goto fail_child;
        }
        (void) sd_event_source_set_io_fd_own(c->console_source, true);
        /* Console lines first, so a failure message holds the last of them. */
        (void) sd_event_source_set_priority(c->console_source, SD_EVENT_PRIORITY_NORMAL - 1);

        r = machine_watch_child(&c->m, c->m.pid, SD_EVENT_PRIORITY_NORMAL);
        if (r < 0)
                goto fail_child;
        r = machine_arm_boot_timer(&c->m, c->cfg.boot_timeout_usec);
        if (r < 0)
                goto fail_child;
        c->m.state = MACHINE_BOOTING;
        return 0;

fail_child:
        c->console_source = sd_event_source_disable_unref(c->console_source);
        if (!c->m.child_source) {
                (void) kill(c->m.pid, SIGKILL);
                (void) waitpid(c->m.pid, NULL, 0);
        }
        c->m.child_source = sd_event_source_disable_unref(c->m.child_source);
        c->m.pid = 0;
        cgroup_node_remove(c->cgroups);
        return r;
fail_pipe:
        close(out[0]);
        close(out[1]);
        return r;
}

/* Errors in preparing the root reach the caller the way boot errors do: through on_ready. */
static int on_deferred_failure(sd_event_source *s _unused_, void *userdata) {
        Container *c = userdata;
        _cleanup_free_ char *m = TAKE_PTR(c->deferred_message);

        machine_enter(&c->m);
        c->deferred_source = sd_event_source_disable_unref(c->deferred_source);
        c->m.state = MACHINE_STOPPED;
        machine_report_ready(&c->m, c->deferred_error, m);
        machine_leave(&c->m);
        return 0;
}

static int fail_later(Container *c, int error, char *message) {
        int r;

        free(c->deferred_message);
        c->deferred_message = message;
        c->deferred_error = error;
        r = sd_event_add_defer(c->m.event, &c->deferred_source, on_deferred_failure, c);
        if (r < 0)
                return r;
        c->m.state = MACHINE_BOOTING;   /* until the failure is reported */
        c->m.boot_pending = true;
        return 0;
}

static int container_start(Machine *m) {
        Container *c = (Container *) m;
        _cleanup_free_ char *message = NULL;
        int r;

        if (!c)
                return -EINVAL;
        if (c->m.state != MACHINE_STOPPED)
                return -EBUSY;

        if (!c->image) {
                HostImageConfig hc = {
                        .name = c->cfg.name,
                        .hostname = c->cfg.hostname,
                        .image = c->cfg.image,
                        .persistent = c->cfg.persistent,
                        .state_dir = c->cfg.state_dir,
                        .system = c->cfg.system,
                        .script_root = !!c->cfg.start_script,
                        .files = c->files,
                        .n_files = c->cfg.n_files,
                        .services = c->cfg.services,
                };
                r = hostimage_prepare(&hc, &c->image, &message);
                if (r < 0)
                        return fail_later(c, r, TAKE_PTR(message) ?: strdup("cannot prepare the node's root"));
        }
        /* The script runs in the state directory: a relative path would point elsewhere. */
        if (c->cfg.start_script && c->cfg.shared_dir && !c->shared_abs)
                c->shared_abs = realpath(c->cfg.shared_dir, NULL);
        r = notify_open(c);
        if (r < 0)
                return fail_later(c, r, machine_failure_message(&c->m, "cannot create its notify socket: %s", strerror(-r)));
        c->m.boot_pending = true;
        r = spawn_nspawn(c);
        if (r < 0) {
                c->m.boot_pending = false;
                return fail_later(c, r, machine_failure_message(&c->m, "cannot start systemd-nspawn: %s", strerror(-r)));
        }
        return 0;
}

/* ---- control ---- */

static int container_shutdown(Machine *m) {
        Container *c = (Container *) m;

        if (!c || c->m.state == MACHINE_STOPPED)
                return -ESRCH;
        if (c->m.state == MACHINE_STOPPING || c->m.state == MACHINE_KILLING)
                return 0;
        c->m.state = MACHINE_STOPPING;
        /* SIGRTMIN+4 to systemd is "poweroff"; before the leader is known, nspawn's own SIGTERM
         * handling halts the container. */
        if (c->leader > 0)
                (void) kill(c->leader, SIGRTMIN + 4);
        else if (c->m.pid > 0)
                (void) kill(c->m.pid, SIGTERM);
        return machine_arm_shutdown_timer(&c->m);
}

static int container_reboot(Machine *m) {
        Container *c = (Container *) m;

        if (!c || c->m.state != MACHINE_READY || c->leader <= 0)
                return -EBUSY;
        c->m.state = MACHINE_REBOOTING;
        c->m.boot_pending = true;
        /* SIGINT to systemd is ctrl-alt-del, i.e. reboot: nspawn then exits with 133. */
        if (kill(c->leader, SIGINT) < 0)
                return -errno;
        return machine_arm_boot_timer(&c->m, c->cfg.boot_timeout_usec + c->cfg.shutdown_timeout_usec);
}

static void container_crash(Machine *m) {
        Container *c = (Container *) m;

        if (!c || c->m.state == MACHINE_STOPPED)
                return;
        c->m.state = MACHINE_KILLING;
        machine_kill(&c->m);
}

static void container_release(Machine *m) {
        Container *c = (Container *) m;
        int r;

        if (!c || c->m.state == MACHINE_STOPPED || c->m.state == MACHINE_KILLING)
                return;
        if (!c->cfg.start_script) {
                container_crash(&c->m);
                return;
        }
        if (c->term_sent)
                return;
        script_terminate(c);
        c->m.state = MACHINE_STOPPING;
        r = machine_arm_shutdown_timer(&c->m);
        if (r < 0)
                container_crash(&c->m);
}

/* ---- life ---- */

/* The machine interface (machine.h): the lifecycle above, and what follows. */
static bool vt_is_ready(Machine *m) {
        return m->state == MACHINE_READY;
}

static void on_vt_exec_done(ExecResult *r, void *userdata) {
        machine_exec_done(userdata, r);
}

/* The backdoor's flags do not apply: the stdlib runs such commands in the background itself. */
static int vt_exec(Machine *m, MachineExec *x, const char *command, uint64_t timeout_usec, unsigned flags _unused_,
                   void **ret_job) {
        ExecJob *job = NULL;
        int r = container_exec((Container *) m, command, timeout_usec, on_vt_exec_done, x, &job);

        *ret_job = job;
        return r;
}

static void vt_exec_cancel(void *job) {
        exec_cancel(job);
}

static int vt_add_file(Machine *m, const char *path, const void *content, size_t len, mode_t mode) {
        HostImageFile f = { .path = path, .content = content, .len = len, .mode = mode };

        return container_add_file((Container *) m, &f);
}

/* Grouped by who calls what: the words of machine.c's messages, its hooks, then the operations
 * machine_start ... machine_add_file dispatch to. */
static const MachineVTable container_vtable = {
        .kind = MACHINE_CONTAINER, .noun = "container", .process = "systemd-nspawn",
        .ready_what = "it became ready", .no_output = " (no console output)",

        .kill = kill_payload, .kill_hard = kill_nspawn, .exited = exited, .exit_message = exit_message,
        .boot_timeout_message = boot_timeout_message, .failure_hint = failure_hint, .destroy = container_destroy,

        .start = container_start, .poweroff = container_shutdown, .reboot = container_reboot,
        .crash = container_crash, .release = container_release, .is_ready = vt_is_ready,
        .exec = vt_exec, .exec_cancel = vt_exec_cancel, .add_file = vt_add_file,
};

static int copy_file(const HostImageFile *f, HostImageFile *g) {
        *g = (HostImageFile) { .len = f->len, .mode = f->mode };
        if (f->path && !(g->path = strdup(f->path)))
                return -ENOMEM;
        if (f->source && !(g->source = strdup(f->source)))
                return -ENOMEM;
        if (f->content) {
                void *p = malloc(f->len ?: 1);
                if (!p)
                        return -ENOMEM;
                memcpy(p, f->content, f->len);
                g->content = p;
        }
        return 0;
}

static void file_done(HostImageFile *f) {
        free((char *) f->path);
        free((char *) f->source);
        free((void *) f->content);
}

static int copy_files(Container *c, const ContainerConfig *cfg) {
        c->files = calloc(cfg->n_files ?: 1, sizeof *c->files);
        if (!c->files)
                return -ENOMEM;
        for (size_t i = 0; i < cfg->n_files; i++) {
                int r = copy_file(&cfg->files[i], &c->files[i]);
                if (r < 0)
                        return r;
        }
        return 0;
}

int container_add_file(Container *c, const HostImageFile *f) {
        if (!c || !f || !f->path)
                return -EINVAL;
        if (c->cfg.start_script)
                return -EOPNOTSUPP;
        if (c->image)
                return -EBUSY;
        for (size_t i = 0; i < c->cfg.n_files; i++)
                if (streq(c->files[i].path, f->path))
                        return 0;
        HostImageFile *v = realloc(c->files, (c->cfg.n_files + 1) * sizeof *v);
        if (!v)
                return -ENOMEM;
        c->files = v;
        int r = copy_file(f, &v[c->cfg.n_files]);
        if (r < 0) {
                file_done(&v[c->cfg.n_files]);
                return r;
        }
        c->cfg.n_files++;
        return 0;
}

static int copy_config(Container *c, const ContainerConfig *cfg) {
        ContainerConfig *d = &c->cfg;

        *d = *cfg;
        d->name = strdup(cfg->name);
        d->hostname = cfg->hostname ? strdup(cfg->hostname) : NULL;
        d->image = cfg->image ? strdup(cfg->image) : NULL;
        d->system = cfg->system ? strdup(cfg->system) : NULL;
        d->start_script = cfg->start_script ? strdup(cfg->start_script) : NULL;
        d->state_dir = strdup(cfg->state_dir);
        d->shared_dir = cfg->shared_dir ? strdup(cfg->shared_dir) : NULL;
        d->services = strv_copy(cfg->services);
        d->bind = strv_copy(cfg->bind);
        d->bind_ro = strv_copy(cfg->bind_ro);
        d->devices = strv_copy(cfg->devices);
        d->env = strv_copy(cfg->env);
        d->extra_args = strv_copy(cfg->extra_args);
        d->files = NULL;
        d->boot_timeout_usec = cfg->boot_timeout_usec ?: BOOT_TIMEOUT_DEFAULT;
        d->shutdown_timeout_usec = cfg->shutdown_timeout_usec ?: SHUTDOWN_TIMEOUT_DEFAULT;
        if (!d->name || !d->state_dir || (cfg->hostname && !d->hostname) || (cfg->image && !d->image) ||
            (cfg->system && !d->system) || (cfg->start_script && !d->start_script) ||
            (cfg->shared_dir && !d->shared_dir) || (cfg->services && !d->services) || (cfg->bind && !d->bind) ||
            (cfg->bind_ro && !d->bind_ro) || (cfg->devices && !d->devices) || (cfg->env && !d->env) ||
            (cfg->extra_args && !d->extra_args))
                return -ENOMEM;
        return copy_files(c, cfg);
}

static void config_free(Container *c) {
        ContainerConfig *d = &c->cfg;

        free((char *) d->name);
        free((char *) d->hostname);
        free((char *) d->image);
        free((char *) d->system);
        free((char *) d->start_script);
        free((char *) d->state_dir);
        free((char *) d->shared_dir);
        strv_free(d->services);
        strv_free(d->bind);
        strv_free(d->bind_ro);
        strv_free(d->devices);
        strv_free(d->env);
        strv_free(d->extra_args);
        for (size_t i = 0; c->files && i < d->n_files; i++)
                file_done(&c->files[i]);
        free(c->files);
}

int container_new(sd_event *e, const ContainerConfig *cfg, const MachineCallbacks *cb, void *userdata,
                  Container **ret) {
        bool tree = cfg && cfg->image && !streq(cfg->image, "host");
        Container *c;
        int r;

        if (!e || !cfg || !cfg->name || !cfg->state_dir || !ret || !container_name_is_valid(cfg->name) ||
            (cfg->start_script && (cfg->system || tree)) || (cfg->system && tree))
                return -EINVAL;
        c = calloc(1, sizeof *c);
        if (!c)
                return -ENOMEM;
        machine_init(&c->m, &container_vtable, e, NULL);
        machine_set_callbacks(&c->m, cb, userdata);
        c->leader_pidfd = c->notify_fd = -1;
        r = copy_config(c, cfg);
        c->m.name = c->cfg.name;
        c->m.boot_timeout_usec = c->cfg.boot_timeout_usec;
        c->m.shutdown_timeout_usec = c->cfg.shutdown_timeout_usec;
        if (r < 0) {
                container_destroy(&c->m);
                return r;
        }
        *ret = c;
        return 0;
}

static void container_destroy(Machine *m) {
        Container *c = (Container *) m;

        kill_all_now(c);
        exec_cancel(TAKE_PTR(c->env_job));
        /* Owns nspawn: waits for it. */
        c->m.child_source = sd_event_source_disable_unref(c->m.child_source);
        cgroup_node_remove(c->cgroups);
        c->console_source = sd_event_source_disable_unref(c->console_source);
        c->notify_source = sd_event_source_disable_unref(c->notify_source);   /* closes notify_fd */
        c->deferred_source = sd_event_source_disable_unref(c->deferred_source);
        c->journal = journal_follower_free(c->journal);
        free(c->deferred_message);
        if (c->leader_pidfd >= 0)
                close(c->leader_pidfd);
        hostimage_free(c->image);
        free(c->shared_abs);
        strv_free(c->login_env);
        machine_done(&c->m);
        config_free(c);
        free(c);
}

void container_free(Container *c) {
        if (c)
                machine_free(&c->m);
}

/* ---- queries ---- */

bool container_is_up(Container *c) {
        return c && c->m.pid > 0;
}

bool container_is_ready(Container *c) {
        return c && c->m.state == MACHINE_READY;
}

pid_t container_leader(Container *c) {
        return c ? c->leader : 0;
}

int container_leader_pidfd(Container *c) {
        return c ? c->leader_pidfd : -1;
}

const char *container_name(Container *c) {
        return c ? c->cfg.name : NULL;
}

const char *container_machine_id(Container *c) {
        return c && c->image ? c->image->machine_id : NULL;
}

const char *container_root(Container *c) {
        return c && c->image ? c->image->root : NULL;
}

void *container_userdata(Container *c) {
        return c ? c->m.userdata : NULL;
}

char **container_login_env(Container *c) {
        return c ? c->login_env : NULL;
}

const char *container_shell(Container *c) {
        return c ? c->shell : NULL;
}

const char *container_cwd(Container *c) {
        return c ? c->cwd : NULL;
}

int container_exec(Container *c, const char *command, uint64_t timeout_usec, exec_done_fn done, void *userdata,
                   ExecJob **ret) {
        _cleanup_strv_free_ char **argv = NULL;
        ExecSpec spec;

        if (!c || !command || !done)
                return -EINVAL;
        if (c->m.state != MACHINE_READY)
                return -ESRCH;
        argv = exec_command_argv(c->shell, command);
        if (!argv)
                return -ENOMEM;
        spec = (ExecSpec) {
                .leader_pidfd = c->leader_pidfd,
                .argv = argv,
                .envp = c->login_env,
                .cwd = c->cwd,
                .timeout_usec = timeout_usec,
        };
        return exec_start(c->m.event, &spec, done, userdata, ret);
}

Machine *container_machine(Container *c) {
        return c ? &c->m : NULL;
}

Container *container_from_machine(Machine *m) {
        return m && m->vtable == &container_vtable ? (Container *) m : NULL;
}
