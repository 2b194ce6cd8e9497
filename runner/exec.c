/* exec.c: run a command in a container by entering its namespaces in-process (pidfd + setns in a
 * short-lived helper that clones the command into the container's PID namespace), on sd-event. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/openat2.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "exec.h"
#include "nsenter.h"
#include "util.h"

#define READ_CHUNK_MIN (64 * 1024)
#define PIPE_SIZE (1024 * 1024)

#define PF_EXITING_FLAG 0x4   /* include/linux/sched.h: the process is exiting */

typedef struct Buffer {
        char *data;
        size_t len, cap;
} Buffer;

struct ExecJob {
        sd_event *event;
        exec_done_fn done;
        void *userdata;
        void (*free_userdata)(void *userdata);  /* for exec_cancel, after which done never runs */
        uint64_t grace_usec;

        pid_t pid;              /* the command: our child, in the container's PID namespace, leading
                                 * its own session */
        int leader_pidfd;
        int launch_errno;       /* chdir or execve failed in the command */

        sd_event_source *child_source, *timeout_source, *grace_source, *defer_source;
        sd_event_source *out_source, *err_source;
        Buffer out, err;

        bool exited, timed_out, abandoned;
        bool start_failed;      /* the command never ran: status -1 */
        int status, error;
};

/* ---- pure helpers ---- */

/* The last entry of a buffer need not be NUL-terminated. */
static bool has_prefix(const char *p, size_t len, const char *prefix) {
        size_t l = strlen(prefix);
        return len >= l && memcmp(p, prefix, l) == 0;
}

int exec_env0_parse(const char *buf, size_t len, char ***ret) {
        size_t n = 0, i = 0;
        char **v;

        for (size_t k = 0; k < len; k++)
                if (buf[k] == '\0')
                        n++;
        v = calloc(n + 2, sizeof(char *));
        if (!v)
                return -ENOMEM;

        for (const char *p = buf, *end = buf + len; p < end;) {
                const char *z = memchr(p, '\0', end - p);
                size_t l = z ? (size_t) (z - p) : (size_t) (end - p);

                /* Shell bookkeeping that means nothing to the next command. */
                if (l > 0 && memchr(p, '=', l) && !has_prefix(p, l, "_=") && !has_prefix(p, l, "SHLVL=") &&
                    !has_prefix(p, l, "PWD=") && !has_prefix(p, l, "OLDPWD=")) {
                        v[i] = strndup(p, l);
                        if (!v[i]) {
                                strv_free(v);
                                return -ENOMEM;
                        }
                        i++;
                }
                p += l + 1;
        }
        *ret = v;
        return (int) i;
}

int exec_stat_parse(const char *stat, pid_t *ret_ppid, pid_t *ret_session) {
        /* "pid (comm) state ppid pgrp session ...": comm may hold spaces and parentheses. */
        const char *p = strrchr(stat, ')');
        char state;
        int ppid, pgrp, session;

        if (!p)
                return -EINVAL;
        if (sscanf(p + 1, " %c %d %d %d", &state, &ppid, &pgrp, &session) != 4)
                return -EINVAL;
        *ret_ppid = ppid;
        *ret_session = session;
        return 0;
}

char **exec_command_argv(const char *shell, const char *command) {
        const char *base = strrchr(shell, '/');
        bool bash = streq(base ? base + 1 : shell, "bash");
        const char *a[] = { shell, bash ? "-euo" : "-eu", "pipefail", "-c", command };
        char **v = calloc(6, sizeof(char *));
        size_t n = 0;

        if (!v)
                return NULL;
        for (size_t i = 0; i < ELEMENTSOF(a); i++) {
                if (!bash && i == 2)
                        continue;
                v[n] = strdup(a[i]);
                if (!v[n++]) {
                        strv_free(v);
                        return NULL;
                }
        }
        return v;
}

/* ---- looking into the container's root without following its symlinks out of it ---- */

static int open_in_container(pid_t leader, const char *path, int flags) {
        char root[64];
        _cleanup_close_ int rfd = -1;
        struct open_how how = { .flags = flags | O_CLOEXEC, .resolve = RESOLVE_IN_ROOT };

        snprintf(root, sizeof root, "/proc/%d/root", (int) leader);
        rfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (rfd < 0)
                return -errno;
        int fd = (int) syscall(SYS_openat2, rfd, path, &how, sizeof how);
        return fd < 0 ? -errno : fd;
}

static bool container_has(pid_t leader, const char *path, mode_t type, bool executable) {
        _cleanup_close_ int fd = open_in_container(leader, path, O_PATH);
        struct stat st;

        if (fd < 0 || fstat(fd, &st) < 0)
                return false;
        if ((st.st_mode & S_IFMT) != type)
                return false;
        return !executable || (st.st_mode & 0111);
}

const char *exec_find_shell(pid_t leader) {
        if (container_has(leader, "/usr/bin/bash", S_IFREG, true))
                return "/usr/bin/bash";
        if (container_has(leader, "/bin/bash", S_IFREG, true))
                return "/bin/bash";
        return "/bin/sh";
}

const char *exec_default_cwd(pid_t leader) {
        return container_has(leader, "/root", S_IFDIR, false) ? "/root" : "/";
}

/* ---- killing a command's tree ---- */

typedef struct ProcEntry {
        pid_t pid, ppid, session;
        bool member, stopped;
} ProcEntry;

static int proc_snapshot(ProcEntry **ret, size_t *ret_n) {
        _cleanup_closedir_ DIR *d = opendir("/proc");
        _cleanup_free_ ProcEntry *v = NULL;
        size_t n = 0, cap = 0;
        struct dirent *de;

        if (!d)
                return -errno;
        while ((de = readdir(d))) {
                char path[300], buf[1024];
                _cleanup_close_ int fd = -1;
                pid_t pid = (pid_t) atoi(de->d_name), ppid, session;
                ssize_t l;

                if (pid <= 0)
                        continue;
                snprintf(path, sizeof path, "/proc/%d/stat", (int) pid);
                fd = open(path, O_RDONLY | O_CLOEXEC);
                if (fd < 0)
                        continue;
                l = read(fd, buf, sizeof buf - 1);
                if (l <= 0)
                        continue;
                buf[l] = '\0';
                if (exec_stat_parse(buf, &ppid, &session) < 0)
                        continue;
                if (n == cap) {
                        ProcEntry *nv = realloc(v, (cap = cap ? cap * 2 : 256) * sizeof *v);
                        if (!nv)
                                return -ENOMEM;
                        v = nv;
                }
                v[n++] = (ProcEntry) { .pid = pid, .ppid = ppid, .session = session };
        }
        *ret = TAKE_PTR(v);
        *ret_n = n;
        return 0;
}

static bool pid_in(const pid_t *v, size_t n, pid_t pid) {
        for (size_t i = 0; i < n; i++)
                if (v[i] == pid)
                        return true;
        return false;
}

/* Mark the session's members and, transitively, their children. */
static void mark_tree(ProcEntry *p, size_t n, pid_t sid, const pid_t *stopped, size_t n_stopped) {
        bool changed = true;

        for (size_t i = 0; i < n; i++)
                p[i].member = p[i].session == sid || pid_in(stopped, n_stopped, p[i].pid);
        while (changed) {
                changed = false;
                for (size_t i = 0; i < n; i++) {
                        if (p[i].member)
                                continue;
                        for (size_t k = 0; k < n; k++)
                                if (p[k].member && p[k].pid == p[i].ppid) {
                                        p[i].member = changed = true;
                                        break;
                                }
                }
        }
}

int exec_kill_session_tree(pid_t sid) {
        _cleanup_free_ pid_t *stopped = NULL;
        size_t n_stopped = 0, cap = 0;

        if (sid <= 1)
                return -EINVAL;

        /* Stop first, so nothing forks a child that escapes between our scan and the kill;
         * rescan until a round finds no one new. */
        for (int round = 0; round < 32; round++) {
                _cleanup_free_ ProcEntry *p = NULL;
                size_t n = 0, added = 0;
                int r = proc_snapshot(&p, &n);

                if (r < 0)
                        return r;
                mark_tree(p, n, sid, stopped, n_stopped);
                for (size_t i = 0; i < n; i++) {
                        if (!p[i].member || pid_in(stopped, n_stopped, p[i].pid))
                                continue;
                        if (n_stopped == cap) {
                                pid_t *nv = realloc(stopped, (cap = cap ? cap * 2 : 16) * sizeof *nv);
                                if (!nv)
                                        return -ENOMEM;
                                stopped = nv;
                        }
                        (void) kill(p[i].pid, SIGSTOP);
                        stopped[n_stopped++] = p[i].pid;
                        added++;
                }
                if (added == 0)
                        break;
        }
        for (size_t i = 0; i < n_stopped; i++)
                (void) kill(stopped[i], SIGKILL);
        return (int) n_stopped;
}

/* ---- starting the command ----
 *
 * No copy of our address space is made: a helper shares our memory (CLONE_VM|CLONE_VFORK, we wait
 * while it runs), enters the container's namespaces and clones the command the same way, with
 * CLONE_PARENT, so the command is our own child, in the container's PID namespace. Both run on
 * stacks of ours until the command execs. Forking instead copies our page tables twice, which costs
 * milliseconds once the runner holds a few hundred MB. It assumes one thread starts commands. */

#define STACK_SIZE (64 * 1024)

typedef struct Launch {
        const ExecSpec *spec;
        int in_fd, out_fd, err_fd;
        sigset_t mask;           /* ours, before blocking everything */
        pid_t pid;               /* the command, as our namespace sees it */
        int setup_errno;         /* the helper: setns or clone failed */
        int exec_errno;          /* the command: chdir or execve failed */
} Launch;

static char stacks[2][STACK_SIZE] __attribute__((aligned(64)));

static int command_main(void *userdata) {
        static char *const empty[] = { NULL };
        volatile Launch *l = userdata;
        const ExecSpec *s = l->spec;
        sigset_t none;

        /* Its own session, so that the tree can be found and killed as one. */
        if (setsid() < 0 || prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
                goto fail;
        for (int sig = 1; sig < _NSIG; sig++)
                (void) signal(sig, SIG_DFL);
        if (dup2(l->in_fd, 0) < 0 || dup2(l->out_fd, 1) < 0 || dup2(l->err_fd, 2) < 0)
                goto fail;
        (void) close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);
        if (chdir(s->cwd ?: "/") < 0)
                goto fail;
        sigemptyset(&none);
        /* Start with nothing blocked (we block SIGCHLD for sd-event; a shell must not inherit that). */
        (void) sigprocmask(SIG_SETMASK, &none, NULL);
        execve(s->argv[0], s->argv, s->envp ?: empty);
fail:
        l->exec_errno = errno;
        _exit(127);
}

static int helper_main(void *userdata) {
        volatile Launch *l = userdata;
        pid_t pid;

        int r = nsenter_enter(l->spec->leader_pidfd, NSENTER_ALL);

        if (r < 0) {
                l->setup_errno = -r;
                _exit(1);
        }
        /* setns(CLONE_NEWPID) applies to children only: the command is created after it. */
        pid = clone(command_main, stacks[1] + STACK_SIZE, CLONE_VM | CLONE_VFORK | CLONE_PARENT | SIGCHLD,
                    (void *) l);
        if (pid < 0) {
                l->setup_errno = errno;
                _exit(1);
        }
        l->pid = pid;
        _exit(0);
}

static int launch(Launch *l) {
        sigset_t all;
        pid_t helper;
        int saved;

        /* No handler of ours may run on our memory in the helper or the command before they reset
         * them: block everything around the clones. */
        sigfillset(&all);
        if (sigprocmask(SIG_SETMASK, &all, &l->mask) < 0)
                return -errno;
        l->pid = 0;
        l->setup_errno = l->exec_errno = 0;
        helper = clone(helper_main, stacks[0] + STACK_SIZE, CLONE_VM | CLONE_VFORK | SIGCHLD, l);
        saved = errno;
        (void) sigprocmask(SIG_SETMASK, &l->mask, NULL);
        if (helper < 0)
                return -saved;
        while (waitpid(helper, NULL, __WALL) < 0 && errno == EINTR)
                ;
        if (l->setup_errno)
                return -l->setup_errno;
        return l->pid > 0 ? 0 : -ECHILD;
}

/* ---- the event-loop side ---- */

static void job_free(ExecJob *j) {
        if (!j)
                return;
        sd_event_source_disable_unref(j->out_source);
        sd_event_source_disable_unref(j->err_source);
        sd_event_source_disable_unref(j->timeout_source);
        sd_event_source_disable_unref(j->grace_source);
        sd_event_source_disable_unref(j->defer_source);
        /* Owns the command: kills it if it still runs, and reaps it. */
        sd_event_source_disable_unref(j->child_source);
        if (j->leader_pidfd >= 0)
                close(j->leader_pidfd);
        free(j->out.data);
        free(j->err.data);
        sd_event_unref(j->event);
        free(j);
}

static int buffer_reserve(Buffer *b, size_t want) {
        size_t cap;
        char *d;

        if (b->cap - b->len >= want)
                return 0;
        cap = b->cap ? b->cap : READ_CHUNK_MIN;
        while (cap - b->len < want)
                cap *= 2;
        d = realloc(b->data, cap);
        if (!d)
                return -ENOMEM;
        b->data = d;
        b->cap = cap;
        return 0;
}

/* Hand out the bytes as a NUL-terminated string of just the right size. */
static char *buffer_finish(Buffer *b, size_t *ret_len) {
        char *d;

        *ret_len = b->len;
        if (!b->data)
                return calloc(1, 1);
        d = realloc(b->data, b->len + 1);
        if (!d)
                return NULL;   /* job_free frees b->data */
        b->data = NULL;
        d[b->len] = '\0';
        return d;
}

/* Keep reading, and throw away, what a background process writes after we gave up waiting: closing
 * our end would kill it with SIGPIPE on its next write. The source belongs to the loop. */
static int on_drain(sd_event_source *s, int fd, uint32_t revents _unused_, void *userdata _unused_) {
        char buf[65536];
        ssize_t l = read(fd, buf, sizeof buf);

        /* The loop holds the only reference of a floating source: this frees it and closes fd. */
        if (l == 0 || (l < 0 && errno != EAGAIN && errno != EINTR))
                sd_event_source_disable_unref(s);
        return 0;
}

static int add_drainer(sd_event *e, int fd) {
        sd_event_source *s;
        int r = sd_event_add_io(e, &s, fd, EPOLLIN, on_drain, NULL);

        if (r < 0)
                return r;
        (void) sd_event_source_set_io_fd_own(s, true);
        (void) sd_event_source_set_floating(s, true);
        sd_event_source_unref(s);
        return 0;
}

static void job_finish(ExecJob *j) {
        ExecResult r = {
                .status = j->start_failed ? -1 : j->status,
                .timed_out = j->timed_out,
                .output_abandoned = j->abandoned,
                .error = j->error,
        };
        sd_event_source **srcs[] = { &j->out_source, &j->err_source };

        for (size_t i = 0; i < ELEMENTSOF(srcs); i++) {
                int fd;
                if (!*srcs[i])
                        continue;
                fd = sd_event_source_get_io_fd(*srcs[i]);
                (void) sd_event_source_set_io_fd_own(*srcs[i], false);
                *srcs[i] = sd_event_source_disable_unref(*srcs[i]);
                if (add_drainer(j->event, fd) < 0)
                        close(fd);
        }
        r.out = buffer_finish(&j->out, &r.out_len);
        r.err = buffer_finish(&j->err, &r.err_len);
        if ((!r.out || !r.err) && !r.error)
                r.error = -ENOMEM;

        j->done(&r, j->userdata);
        free(r.out);
        free(r.err);
        job_free(j);
}

static void job_maybe_finish(ExecJob *j) {
        if (j->exited && !j->out_source && !j->err_source)
                job_finish(j);
}

static int on_output(sd_event_source *s, int fd, uint32_t revents _unused_, void *userdata) {
        ExecJob *j = userdata;
        Buffer *b = s == j->out_source ? &j->out : &j->err;

        /* A few reads per wake-up, so one chatty command cannot starve the loop. */
        for (int i = 0; i < 8; i++) {
                ssize_t l;

                if (buffer_reserve(b, READ_CHUNK_MIN) < 0) {
                        j->error = j->error ?: -ENOMEM;
                        l = 0;
                } else
                        l = read(fd, b->data + b->len, b->cap - b->len);
                if (l > 0) {
                        b->len += l;
                        continue;
                }
                if (l < 0 && errno == EINTR)
                        continue;
                if (l < 0 && errno == EAGAIN)
                        return 0;
                /* EOF or error: this stream is done. */
                if (s == j->out_source)
                        j->out_source = sd_event_source_disable_unref(s);
                else
                        j->err_source = sd_event_source_disable_unref(s);
                job_maybe_finish(j);
                return 0;
        }
        return 0;
}

/* Gone, or on its way: a PID namespace's init that dies first kills everything in it and then waits
 * for all of it to be reaped (our command among them) before its own pidfd turns readable. */
static bool leader_dead(ExecJob *j) {
        struct pollfd p = { .fd = j->leader_pidfd, .events = POLLIN };
        char path[64], line[256], buf[1024];
        _cleanup_fclose_ FILE *f = NULL;
        unsigned long flags = 0;
        int pid = 0, fd;
        ssize_t l;
        const char *q;

        if (poll(&p, 1, 0) != 0)
                return true;
        snprintf(path, sizeof path, "/proc/self/fdinfo/%d", j->leader_pidfd);
        f = fopen(path, "re");
        while (f && fgets(line, sizeof line, f))
                if (sscanf(line, "Pid: %d", &pid) == 1)
                        break;
        if (pid <= 0)
                return pid < 0;   /* -1: the process is gone */
        snprintf(path, sizeof path, "/proc/%d/stat", pid);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return true;
        l = read(fd, buf, sizeof buf - 1);
        close(fd);
        if (l <= 0)
                return true;
        buf[l] = '\0';
        /* Field 9, after "pid (comm) state ppid pgrp session tty_nr tpgid". */
        q = strrchr(buf, ')');
        if (!q || sscanf(q + 1, " %*c %*d %*d %*d %*d %*d %lu", &flags) != 1)
                return false;
        return flags & PF_EXITING_FLAG;
}

/* The command and everything in its session, with their descendants. After the command exited, what
 * it left behind holding its output still carries its session id. */
static void kill_command(ExecJob *j) {
        if (j->pid > 0)
                (void) exec_kill_session_tree(j->pid);
}

static int on_grace(sd_event_source *s _unused_, uint64_t usec _unused_, void *userdata) {
        ExecJob *j = userdata;

        j->abandoned = true;
        job_finish(j);
        return 0;
}

static int on_timeout(sd_event_source *s _unused_, uint64_t usec _unused_, void *userdata) {
        ExecJob *j = userdata;

        j->timed_out = true;
        kill_command(j);
        return 0;
}

static int on_exit_(sd_event_source *s _unused_, const siginfo_t *si, void *userdata) {
        ExecJob *j = userdata;
        int r;

        j->exited = true;
        j->status = si->si_code == CLD_EXITED ? si->si_status : 128 + si->si_status;
        j->timeout_source = sd_event_source_disable_unref(j->timeout_source);
        if (j->launch_errno) {
                j->error = -j->launch_errno;
                j->start_failed = true;
        } else if (si->si_code != CLD_EXITED && si->si_status == SIGKILL && !j->timed_out && leader_dead(j))
                j->error = -ESRCH;

        if (!j->out_source && !j->err_source) {
                job_finish(j);
                return 0;
        }
        r = sd_event_add_time_relative(j->event, &j->grace_source, CLOCK_MONOTONIC, j->grace_usec, 1000,
                                       on_grace, j);
        if (r < 0) {
                j->abandoned = true;
                job_finish(j);
        }
        return 0;
}

/* The command could not be started: tell it through the callback, like any other outcome. */
static int on_start_failed(sd_event_source *s _unused_, void *userdata) {
        ExecJob *j = userdata;

        j->exited = j->start_failed = true;
        j->out_source = sd_event_source_disable_unref(j->out_source);
        j->err_source = sd_event_source_disable_unref(j->err_source);
        job_finish(j);
        return 0;
}

static int make_pipe(int fds[2], bool nonblock_read) {
        if (pipe2(fds, O_CLOEXEC) < 0)
                return -errno;
        (void) fcntl(fds[0], F_SETPIPE_SZ, PIPE_SIZE);
        if (nonblock_read && fcntl(fds[0], F_SETFL, O_NONBLOCK) < 0)
                return -errno;
        return 0;
}

static void close_pair(int fds[2]) {
        for (int i = 0; i < 2; i++)
                if (fds[i] >= 0)
                        fds[i] = (close(fds[i]), -1);
}

/* stdin: /dev/null, or a pipe holding all of the given bytes (up to the pipe's capacity). */
static int make_stdin(const ExecSpec *s, int *ret) {
        int fds[2] = { -1, -1 };

        if (!s->stdin_data) {
                *ret = open("/dev/null", O_RDONLY | O_CLOEXEC);
                return *ret < 0 ? -errno : 0;
        }
        if (pipe2(fds, O_CLOEXEC) < 0)
                return -errno;
        if (s->stdin_len > 0) {
                int size = fcntl(fds[1], F_SETPIPE_SZ, (int) s->stdin_len < PIPE_SIZE ? (int) s->stdin_len : PIPE_SIZE);
                if (size < 0 || (size_t) size < s->stdin_len ||
                    write(fds[1], s->stdin_data, s->stdin_len) != (ssize_t) s->stdin_len) {
                        close_pair(fds);
                        return -E2BIG;
                }
        }
        close(fds[1]);
        *ret = fds[0];
        return 0;
}

static int add_reader(ExecJob *j, sd_event_source **s, int fd) {
        int r = sd_event_add_io(j->event, s, fd, EPOLLIN, on_output, j);

        if (r < 0) {
                close(fd);
                return r;
        }
        (void) sd_event_source_set_io_fd_own(*s, true);
        /* Output first, so the exit handler sees every byte already read. */
        (void) sd_event_source_set_priority(*s, SD_EVENT_PRIORITY_NORMAL - 1);
        return 0;
}

static int job_watch(ExecJob *j) {
        int pidfd = nsenter_pidfd_open(j->pid), r;

        if (pidfd < 0)
                return pidfd;
        r = sd_event_add_child_pidfd(j->event, &j->child_source, pidfd, WEXITED, on_exit_, j);
        if (r < 0) {
                close(pidfd);
                return r;
        }
        (void) sd_event_source_set_child_pidfd_own(j->child_source, true);
        (void) sd_event_source_set_child_process_own(j->child_source, true);
        return 0;
}

int exec_start(sd_event *e, const ExecSpec *s, exec_done_fn done, void *userdata, ExecJob **ret) {
        _cleanup_close_ int in_fd = -1;
        int out[2] = { -1, -1 }, err[2] = { -1, -1 };
        Launch l;
        ExecJob *j;
        int r;

        if (!e || !s || !s->argv || !s->argv[0] || s->leader_pidfd < 0 || !done)
                return -EINVAL;

        j = calloc(1, sizeof *j);
        if (!j)
                return -ENOMEM;
        *j = (ExecJob) {
                .event = sd_event_ref(e),
                .done = done,
                .userdata = userdata,
                .grace_usec = s->grace_usec ?: EXEC_GRACE_USEC_DEFAULT,
                .leader_pidfd = fcntl(s->leader_pidfd, F_DUPFD_CLOEXEC, 3),
        };
        if (j->leader_pidfd < 0) {
                r = -errno;
                goto fail;
        }
        if ((r = make_stdin(s, &in_fd)) < 0 || (r = make_pipe(out, true)) < 0 || (r = make_pipe(err, true)) < 0)
                goto fail;

        l = (Launch) { .spec = s, .in_fd = in_fd, .out_fd = out[1], .err_fd = err[1] };
        r = launch(&l);
        out[1] = (close(out[1]), -1);
        err[1] = (close(err[1]), -1);
        r = r < 0 ? r : add_reader(j, &j->out_source, TAKE_FD(out[0]));
        r = r < 0 ? r : add_reader(j, &j->err_source, TAKE_FD(err[0]));
        if (r < 0 && l.pid <= 0) {
                /* Nothing runs: the entering failed (the container is gone?), or we are out of
                 * resources. Report it through the callback, from the loop. */
                j->error = r;
                close_pair(out);
                close_pair(err);
                r = sd_event_add_defer(e, &j->defer_source, on_start_failed, j);
                if (r < 0)
                        goto fail;
                goto done;
        }
        j->pid = l.pid;
        j->launch_errno = l.exec_errno;
        if (r >= 0)
                r = job_watch(j);
        if (r >= 0 && s->timeout_usec > 0)
                r = sd_event_add_time_relative(e, &j->timeout_source, CLOCK_MONOTONIC, s->timeout_usec, 1000,
                                               on_timeout, j);
        if (r < 0) {
                kill_command(j);
                if (!j->child_source) {
                        (void) kill(j->pid, SIGKILL);
                        (void) waitpid(j->pid, NULL, 0);
                }
                goto fail;
        }
done:
        if (ret)
                *ret = j;
        return 0;

fail:
        close_pair(out);
        close_pair(err);
        job_free(j);
        return r;
}

void exec_cancel(ExecJob *j) {
        if (!j)
                return;
        kill_command(j);
        if (j->free_userdata)
                j->free_userdata(j->userdata);
        job_free(j);
}

pid_t exec_job_pid(ExecJob *j) {
        return j ? j->pid : 0;
}

/* ---- login environment ---- */

typedef struct EnvRequest {
        exec_env_fn done;
        void *userdata;
} EnvRequest;

static int strv_set(char ***v, const char *assignment) {
        size_t klen = strchr(assignment, '=') - assignment + 1, n = 0;
        char *copy = strdup(assignment), **nv;

        if (!copy)
                return -ENOMEM;
        for (; (*v)[n]; n++)
                if (strncmp((*v)[n], assignment, klen) == 0) {
                        free((*v)[n]);
                        (*v)[n] = copy;
                        return 0;
                }
        nv = realloc(*v, (n + 2) * sizeof(char *));
        if (!nv) {
                free(copy);
                return -ENOMEM;
        }
        nv[n] = copy;
        nv[n + 1] = NULL;
        *v = nv;
        return 0;
}

static void on_login_env(ExecResult *res, void *userdata) {
        _cleanup_free_ EnvRequest *req = userdata;
        _cleanup_strv_free_ char **env = NULL;
        int r = res->error;

        if (r == 0 && res->status != 0)
                r = -EPROTO;
        if (r == 0)
                r = exec_env0_parse(res->out, res->out_len, &env);
        if (r >= 0)
                r = strv_set(&env, "USER=root");
        if (r >= 0)
                r = strv_set(&env, "HOME=/root");
        if (r < 0) {
                req->done(r, NULL, req->userdata);
                return;
        }
        req->done(0, TAKE_PTR(env), req->userdata);
}

int exec_login_env(sd_event *e, int leader_pidfd, const char *shell, exec_env_fn done, void *userdata,
                   ExecJob **ret) {
        char *argv[] = { (char *) shell, (char *) "-c",
                         (char *) ". /etc/profile >/dev/null 2>&1 </dev/null; exec env -0", NULL };
        char *envp[] = { (char *) "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                         (char *) "HOME=/root", (char *) "USER=root", (char *) "LOGNAME=root", NULL };
        ExecSpec spec = {
                .leader_pidfd = leader_pidfd,
                .argv = argv,
                .envp = envp,
                .cwd = "/",
                .timeout_usec = 30 * 1000000ULL,
        };
        EnvRequest *req;
        ExecJob *j;
        int r;

        if (!done || !shell)
                return -EINVAL;
        req = malloc(sizeof *req);
        if (!req)
                return -ENOMEM;
        *req = (EnvRequest) { done, userdata };
        r = exec_start(e, &spec, on_login_env, req, &j);
        if (r < 0) {
                free(req);
                return r;
        }
        /* on_login_env frees the request; if the job is cancelled first (the container stops
         * while its shell starts), exec_cancel does. */
        j->free_userdata = free;
        if (ret)
                *ret = j;
        return 0;
}
