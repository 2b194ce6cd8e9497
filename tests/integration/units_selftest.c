/* units_selftest.c: boot a throwaway systemd-nspawn container from the host's /usr and check
 * runner/units.c against its systemd: waits, failures, lost connections, the user manager,
 * `systemctl show` fidelity, and the lag between a unit's activation and our callback.
 * Root only. Everything runs in fresh mount, PID and network namespaces, so it all dies with us. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <systemd/sd-event.h>

#include "units.h"
#include "util.h"
#include "selftest.h"

#define USEC_PER_MSEC 1000ULL
#define USEC_PER_SEC 1000000ULL
#define TRIALS 10
#define LAG_TARGET_MS 20        /* what we aim for: a figure to print, not a verdict */
#define LAG_EVENT_BOUND_MS 200  /* event-driven, not polled: the check */

uint64_t now_usec(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / 1000;
}

static char usr_mount[256];
static char tmpdir[] = "/tmp/units-selftest.XXXXXX";
static pid_t nspawn_pid = -1, leader = -1;
static int notify_fd = -1;
static sd_event *event;

static bool streq_ptr_test(const char *a, const char *b) {
        return a && b ? streq(a, b) : a == b;
}

/* ---- processes ---- */

static pid_t spawn(char **argv, int out_fd, const char *notify_socket) {
        pid_t pid = fork();

        if (pid != 0)
                return pid;
        int null = open("/dev/null", O_RDWR | O_CLOEXEC);
        dup2(null, 0);
        if (out_fd >= 0) {
                dup2(out_fd, 1);
                if (!notify_socket)
                        dup2(null, 2);
                else
                        dup2(out_fd, 2);
        } else {
                dup2(null, 1);
                dup2(null, 2);
        }
        if (notify_socket)
                setenv("NOTIFY_SOCKET", notify_socket, 1);
        execvp(argv[0], argv);
        _exit(127);
}

/* Run a command inside the container; its exit status, stdout in *out if asked. */
static int in_container(char **out, const char *cmd) {
        char lbuf[16];
        int pipefd[2] = { -1, -1 }, status;
        pid_t pid;

        snprintf(lbuf, sizeof lbuf, "%d", (int) leader);
        char *argv[] = { "nsenter", "-t", lbuf, "-a", "/bin/sh", "-c", (char *) cmd, NULL };
        if (out && pipe2(pipefd, O_CLOEXEC) < 0)
                return -errno;
        pid = spawn(argv, out ? pipefd[1] : -1, NULL);
        if (out) {
                size_t n = 0, cap = 4096;
                char *buf = malloc(cap);
                ssize_t k;

                close(pipefd[1]);
                while (buf && (k = read(pipefd[0], buf + n, cap - n - 1)) > 0) {
                        n += k;
                        if (cap - n < 1024) {
                                char *b2 = realloc(buf, cap *= 2);

                                if (!b2)
                                        free(buf);
                                buf = b2;
                        }
                }
                if (buf)
                        buf[n] = 0;
                close(pipefd[0]);
                *out = buf;
        }
        if (waitpid(pid, &status, 0) < 0)
                return -errno;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* ---- results from the callbacks ---- */

typedef struct WaitResult {
        bool done;
        int error;
        char *state;
        char *message;
        uint64_t at;
        int calls;
} WaitResult;

static void wait_result_clear(WaitResult *r) {
        free(r->state);
        free(r->message);
        *r = (WaitResult) {};
}

static void on_wait(int error, const char *active_state, const char *message, void *userdata) {
        WaitResult *r = userdata;

        r->at = now_usec();
        r->calls++;
        r->done = true;
        r->error = error;
        free(r->state);
        free(r->message);
        r->state = active_state ? strdup(active_state) : NULL;
        r->message = message ? strdup(message) : NULL;
}

typedef struct PropsResult {
        bool done;
        int error;
        char **lines;
        char *message;
} PropsResult;

static void on_props(int error, char **properties, const char *message, void *userdata) {
        PropsResult *r = userdata;
        size_t n = 0;

        r->done = true;
        r->error = error;
        r->message = message ? strdup(message) : NULL;
        for (char **p = properties; p && *p; p++)
                n++;
        r->lines = calloc(n + 1, sizeof(char *));
        for (size_t i = 0; i < n; i++)
                r->lines[i] = strdup(properties[i]);
}

typedef struct U64Result {
        bool done;
        int error;
        uint64_t value;
        char *message;
} U64Result;

static void on_u64(int error, uint64_t value, const char *message, void *userdata) {
        U64Result *r = userdata;

        r->done = true;
        r->error = error;
        r->value = value;
        free(r->message);
        r->message = message ? strdup(message) : NULL;
}

/* Run the loop until *flag or the timeout; false on timeout. */
static bool loop_until(bool *flag, uint64_t timeout_usec) {
        uint64_t deadline = now_usec() + timeout_usec;

        while (!*flag) {
                uint64_t now = now_usec();

                if (now >= deadline)
                        return false;
                if (sd_event_run(event, deadline - now) < 0)
                        return false;
        }
        return true;
}

static void loop_for(uint64_t usec) {
        bool never = false;

        (void) loop_until(&never, usec);
}

static bool wait_unit(Units *u, const char *unit, WaitResult *r, uint64_t timeout_usec) {
        UnitsWait *w = NULL;

        wait_result_clear(r);
        if (units_wait_active(u, unit, on_wait, r, &w) < 0)
                return false;
        if (loop_until(&r->done, timeout_usec))
                return true;
        units_wait_cancel(w); /* the caller owns the deadline */
        return false;
}

static bool get_u64(Units *u, const char *unit, const char *prop, U64Result *r) {
        *r = (U64Result) {};
        if (units_get_u64(u, unit, prop, on_u64, r, NULL) < 0)
                return false;
        return loop_until(&r->done, 5 * USEC_PER_SEC);
}

/* The end of a wait started by hand: cancel it if it never answered, so no callback lands on a
 * result that has gone out of scope. */
static void wait_done(UnitsWait *w, WaitResult *r) {
        if (!r->done)
                units_wait_cancel(w);
        wait_result_clear(r);
}

static int cmp_u64(const void *a, const void *b) {
        uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;

        return x < y ? -1 : x > y;
}

/* ---- the container ---- */

static int on_notify(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        char buf[4096];
        (void) s;
        (void) revents;
        (void) userdata;

        while (recv(fd, buf, sizeof buf, MSG_DONTWAIT) >= 0)
                ;
        return 0;
}

static int boot_container(void) {
        char tree[256], usr[256], etc_up[256], var_up[256], sock_path[256], logp[256];
        char ov_etc[600], ov_var[600];
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        _cleanup_close_ int sock = -1, log_fd = -1;
        bool ready = false;
        uint64_t start = now_usec();

        snprintf(tree, sizeof tree, "%s/tree", tmpdir);
        snprintf(usr, sizeof usr, "%s/tree/usr", tmpdir);
        snprintf(usr_mount, sizeof usr_mount, "%s", usr);
        snprintf(etc_up, sizeof etc_up, "%s/etc-upper", tmpdir);
        snprintf(var_up, sizeof var_up, "%s/var-upper", tmpdir);
        snprintf(sock_path, sizeof sock_path, "%s/notify", tmpdir);
        snprintf(logp, sizeof logp, "%s/nspawn.log", tmpdir);
        if (mkdir(tree, 0755) < 0 || mkdir(usr, 0755) < 0 || mkdir(etc_up, 0755) < 0 || mkdir(var_up, 0755) < 0)
                return -errno;
        if (mount("/usr", usr, NULL, MS_BIND | MS_REC, NULL) < 0 ||
            mount(NULL, usr, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY, NULL) < 0)
                return -errno;

        sock = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (sock < 0)
                return -errno;
        if (strlen(sock_path) >= sizeof sa.sun_path)
                return -ENAMETOOLONG;
        memcpy(sa.sun_path, sock_path, strlen(sock_path) + 1);
        if (bind(sock, (struct sockaddr *) &sa, sizeof sa) < 0)
                return -errno;
        log_fd = open(logp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (log_fd < 0)
                return -errno;

        snprintf(ov_etc, sizeof ov_etc, "--overlay=/etc:%s:/etc", etc_up);
        snprintf(ov_var, sizeof ov_var, "--overlay=/var:%s:/var", var_up);
        char *argv[] = {
                "systemd-nspawn", "-b", "-D", tree, "-M", "units-selftest", "--volatile=yes", ov_etc, ov_var,
                "--private-network", "--register=no", "--keep-unit", "--notify-ready=yes", "--console=read-only",
                /* The host image enables services this test does not need. */
                "systemd.mask=nginx.service", "systemd.mask=postgresql.service",
                "systemd.mask=postgresql@15-main.service", NULL,
        };
        nspawn_pid = spawn(argv, log_fd, sock_path);
        if (nspawn_pid < 0)
                return -errno;

        while (!ready || leader <= 0) {
                char buf[4096];
                ssize_t n;
                int status;

                if (now_usec() - start > 60 * USEC_PER_SEC)
                        return -ETIMEDOUT;
                if (waitpid(nspawn_pid, &status, WNOHANG) == nspawn_pid) {
                        nspawn_pid = -1;
                        return -ECHILD;
                }
                n = recv(sock, buf, sizeof buf - 1, 0);
                if (n < 0) {
                        usleep(2000);
                        continue;
                }
                buf[n] = 0;
                for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
                        if (streq(line, "READY=1"))
                                ready = true;
                        else if (startswith(line, "X_NSPAWN_LEADER_PID="))
                                leader = atoi(line + strlen("X_NSPAWN_LEADER_PID="));
                }
        }
        printf("# container ready after %.3f s, leader pid %d\n", (now_usec() - start) / 1e6, (int) leader);
        /* Keep reading: a full datagram queue (10 by default) would block systemd-nspawn. */
        notify_fd = TAKE_FD(sock);
        if (sd_event_add_io(event, NULL, notify_fd, EPOLLIN, on_notify, NULL) < 0)
                return -EIO;
        return 0;
}

static void stop_container(void) {
        int status;

        if (notify_fd >= 0)
                notify_fd = (close(notify_fd), -1);

        if (nspawn_pid > 0) {
                kill(nspawn_pid, SIGTERM);
                for (int i = 0; i < 500; i++) {
                        if (waitpid(nspawn_pid, &status, WNOHANG) == nspawn_pid) {
                                nspawn_pid = -1;
                                break;
                        }
                        usleep(10000);
                }
                if (nspawn_pid > 0) {
                        kill(nspawn_pid, SIGKILL);
                        waitpid(nspawn_pid, &status, 0);
                        nspawn_pid = -1;
                }
        }
}

static Units *connect_system(void) {
        Units *u = NULL;
        uint64_t start = now_usec();
        int r;

        /* The private socket exists before READY=1, but retry briefly as a caller would. */
        uint64_t t;

        while ((r = units_connect(event, leader, NULL, &u)) == -ENOENT && now_usec() - start < 30 * USEC_PER_SEC)
                loop_for(20 * USEC_PER_MSEC);
        t = now_usec() - start;
        check(r >= 0, "connect to the container's systemd over its private socket (%s, %.2f ms)",
              r < 0 ? strerror(-r) : "connected", t / 1e3);
        return r >= 0 ? u : NULL;
}

/* ---- tests ---- */

static void test_boot_target(Units *u) {
        WaitResult r = {};
        uint64_t t0 = now_usec();
        bool ok = wait_unit(u, "multi-user.target", &r, 30 * USEC_PER_SEC);

        check(ok && r.error == 0 && streq(r.state, "active"), "wait for multi-user.target: %s in %.1f ms",
              ok ? (r.message ? r.message : "active") : "timed out", (now_usec() - t0) / 1e3);
        wait_result_clear(&r);

        ok = wait_unit(u, "default.target", &r, 5 * USEC_PER_SEC);
        check(ok && r.error == 0, "wait for default.target, an alias of graphical.target: %s",
              ok ? (r.message ? r.message : "active") : "timed out");
        wait_result_clear(&r);
}

static void lag_trials(Units *u, const char *label, const char *prefix, int trials) {
        uint64_t lags[TRIALS];
        int n = 0;
        bool all = true;

        for (int k = 0; k < trials; k++) {
                char cmd[256], unit[64];
                WaitResult r = {};
                U64Result ts = {};

                snprintf(unit, sizeof unit, "%s%d", prefix, k);
                snprintf(cmd, sizeof cmd,
                         "systemd-run --quiet --no-block --unit=%s --service-type=oneshot --remain-after-exit sleep 1",
                         unit);
                if (in_container(NULL, cmd) != 0) {
                        all = false;
                        check(false, "%s: systemd-run %s", label, unit);
                        continue;
                }
                if (!wait_unit(u, unit, &r, 10 * USEC_PER_SEC) || r.error != 0) {
                        all = false;
                        check(false, "%s: wait for %s: %s", label, unit, r.message ? r.message : "timed out");
                        wait_result_clear(&r);
                        continue;
                }
                if (!get_u64(u, unit, "ActiveEnterTimestampMonotonic", &ts) || ts.error != 0 || ts.value == 0 ||
                    ts.value > r.at) {
                        all = false;
                        check(false, "%s: ActiveEnterTimestampMonotonic of %s: %s (%" PRIu64 ")", label, unit,
                              ts.message ? ts.message : "bad value", ts.value);
                } else
                        lags[n++] = r.at - ts.value;
                free(ts.message);
                wait_result_clear(&r);
        }
        if (n == 0) {
                check(false, "%s: no trial succeeded", label);
                return;
        }
        qsort(lags, n, sizeof lags[0], cmp_u64);
        printf("# %s lag (ms):", label);
        for (int i = 0; i < n; i++)
                printf(" %.2f", lags[i] / 1e3);
        printf("\n");
        uint64_t median = n % 2 ? lags[n / 2] : (lags[n / 2 - 1] + lags[n / 2]) / 2;
        /* The figure, beside its target, is information: a shared machine decides it. What the check
         * separates is an event-driven wait from a poll: a 1 s poll has a median lag near 500 ms (and
         * one under 200 ms in about 1% of runs of 10), an event-driven wait a few ms. */
        note("%s: median lag %.2f ms (target <= %d ms; NixOS driver 512 ms)", label, median / 1e3, LAG_TARGET_MS);
        check(all && median < LAG_EVENT_BOUND_MS * USEC_PER_MSEC,
              "%s: %d units started with systemd-run --no-block: the callback follows ActiveEnterTimestampMonotonic "
              "by a median %.2f ms (min %.2f, max %.2f), well under a 1 s poll's (< %d ms)",
              label, n, median / 1e3, lags[0] / 1e3, lags[n - 1] / 1e3, LAG_EVENT_BOUND_MS);
}

static void expect_wait_error(Units *u, const char *unit, int error, const char *message, const char *what,
                              uint64_t min_usec) {
        WaitResult r = {};
        uint64_t t0 = now_usec();
        bool ok = wait_unit(u, unit, &r, 10 * USEC_PER_SEC);
        uint64_t took = now_usec() - t0;

        check(ok && r.error == error && streq_ptr_test(r.message, message) && took >= min_usec,
              "%s: error %d (%s), \"%s\" after %.1f ms", what, r.error, r.error ? strerror(-r.error) : "none",
              r.message ? r.message : "(none)", took / 1e3);
        if (!(ok && streq_ptr_test(r.message, message)))
                printf("#   expected error %d, \"%s\"\n", error, message);
        wait_result_clear(&r);
}

static void test_failures(Units *u) {
        in_container(NULL, "systemd-run --quiet --no-block --unit=bad --service-type=oneshot false");
        expect_wait_error(u, "bad", -EIO, "unit \"bad.service\" reached state \"failed\"",
                          "a unit that fails (systemd-run false)", 0);
        expect_wait_error(u, "default", -ENOENT,
                          "unit \"default.service\" not found: it is inactive and there are no pending jobs",
                          "\"default\" means default.service, as in systemctl", 0);
        expect_wait_error(u, "nosuch", -ENOENT,
                          "unit \"nosuch.service\" not found: it is inactive and there are no pending jobs",
                          "an unknown unit fails at once", 0);
        expect_wait_error(u, "rescue.service", -ENODATA,
                          "unit \"rescue.service\" is inactive and there are no pending jobs",
                          "an inactive unit with no job fails after the grace period", UNITS_IDLE_GRACE_USEC);
        expect_wait_error(u, "nginx", -ENODATA,
                          "unit \"nginx.service\" is inactive and there are no pending jobs (the unit is masked)",
                          "a masked unit", UNITS_IDLE_GRACE_USEC);
        expect_wait_error(u, "foo bar", -EINVAL,
                          "invalid unit name \"foo bar\": character ' ' is not allowed (use A-Z a-z 0-9 : _ . - @ "
                          "\\, and \\xNN escapes for anything else)",
                          "a bad unit name is reported through the callback", 0);
}

/* The NixOS rule: inactive with no job of its own keeps waiting while the manager has other jobs
 * queued; and a job queued within the grace period is not a failure. */
static void test_idle_rules(Units *u) {
        WaitResult r = {};
        UnitsWait *w = NULL;
        char lbuf[16];
        bool ok;
        int status;

        in_container(NULL, "printf '[Service]\\nType=oneshot\\nRemainAfterExit=yes\\nExecStart=/bin/true\\n' "
                           ">/etc/systemd/system/later.service && "
                           "cp /etc/systemd/system/later.service /etc/systemd/system/soon.service && "
                           "systemctl daemon-reload");

        /* A start job that stays queued for 1.5 s (oneshot, activating). */
        in_container(NULL, "systemd-run --quiet --no-block --unit=blocker --service-type=oneshot sleep 1.5");
        wait_result_clear(&r);
        units_wait_active(u, "later", on_wait, &r, &w);
        loop_for(500 * USEC_PER_MSEC);
        ok = !r.done;
        in_container(NULL, "systemctl start --no-block later.service");
        ok = ok && loop_until(&r.done, 5 * USEC_PER_SEC) && r.error == 0;
        check(ok, "an inactive unit keeps waiting while other jobs are queued, then succeeds when started (%s)",
              r.done ? (r.message ? r.message : "active") : "no answer");
        wait_done(w, &r);

        /* Started about as the wait begins: its first read may find it idle, the grace saves it. */
        snprintf(lbuf, sizeof lbuf, "%d", (int) leader);
        char *argv[] = { "nsenter", "-t", lbuf, "-a", "systemctl", "start", "--no-block", "soon.service", NULL };
        /* The manager idle: the blocker done, no job queued. */
        for (uint64_t end = now_usec() + 30 * USEC_PER_SEC; now_usec() < end;) {
                if (in_container(NULL, "! systemctl is-active --quiet blocker && "
                                       "[ -z \"$(systemctl list-jobs --no-legend)\" ]") == 0)
                        break;
                loop_for(50 * USEC_PER_MSEC);
        }
        pid_t pid = spawn(argv, -1, NULL);
        units_wait_active(u, "soon", on_wait, &r, &w);
        ok = loop_until(&r.done, 5 * USEC_PER_SEC) && r.error == 0;
        waitpid(pid, &status, 0);
        check(ok, "a unit started a moment after the wait began is waited for (%s)",
              r.done ? (r.message ? r.message : "active") : "no answer");
        wait_done(w, &r);
}

typedef struct Chain {
        Units *u;
        UnitsWait *self;
        WaitResult first, second;
} Chain;

static void on_chain_first(int error, const char *active_state, const char *message, void *userdata) {
        Chain *c = userdata;

        on_wait(error, active_state, message, &c->first);
        units_wait_cancel(c->self); /* a no-op from inside its own callback */
        units_wait_active(c->u, "multi-user.target", on_wait, &c->second, NULL);
}

/* Several waits at once, and a callback that starts the next wait. */
static void test_concurrency(Units *u) {
        WaitResult r[5] = {};
        Chain c = { .u = u };
        bool ok = true;

        in_container(NULL, "for i in 0 1 2 3 4; do systemd-run --quiet --no-block --unit=par$i "
                           "--service-type=oneshot --remain-after-exit sleep 0.$((i+3)); done");
        for (int i = 0; i < 5; i++) {
                char unit[16];

                snprintf(unit, sizeof unit, "par%d", i);
                units_wait_active(u, unit, on_wait, &r[i], NULL);
        }
        for (int i = 0; i < 5; i++)
                ok = loop_until(&r[i].done, 5 * USEC_PER_SEC) && r[i].error == 0 && r[i].calls == 1 && ok;
        /* par0 starts first and par4 last: their callbacks come in that order. */
        for (int i = 1; i < 5; i++)
                ok = ok && r[i].at > r[i - 1].at;
        check(ok, "five waits at once each end once, in activation order");
        if (!ok)
                for (int i = 0; i < 5; i++)
                        printf("#   par%d: done %d calls %d error %d at %.1f ms: %s\n", i, r[i].done, r[i].calls,
                               r[i].error, r[i].at / 1e3, r[i].message ? r[i].message : "");
        if (!ok) {
                _cleanup_free_ char *out = NULL;
                in_container(&out, "systemctl list-units --all 'par*' 2>&1; journalctl -n 20 --no-pager 2>&1");
                printf("%s\n", out ? out : "");
        }
        for (int i = 0; i < 5; i++)
                wait_result_clear(&r[i]);

        units_wait_active(u, "basic.target", on_chain_first, &c, &c.self);
        ok = loop_until(&c.second.done, 5 * USEC_PER_SEC);
        check(ok && c.first.error == 0 && c.second.error == 0 && c.first.calls == 1,
              "a callback may cancel itself (a no-op) and start another wait");
        wait_result_clear(&c.first);
        wait_result_clear(&c.second);
}

static void test_cancel(Units *u) {
        WaitResult a = {}, b = {};
        UnitsWait *w = NULL;
        Units *u2;
        int r;

        in_container(NULL, "systemd-run --quiet --no-block --unit=cancelme --service-type=oneshot "
                           "--remain-after-exit sleep 0.2");
        r = units_wait_active(u, "cancelme", on_wait, &a, &w);
        units_wait_cancel(w);
        /* Until the unit is active, when the wait would have called back, and a little longer. */
        for (uint64_t end = now_usec() + 30 * USEC_PER_SEC; now_usec() < end;) {
                if (in_container(NULL, "systemctl is-active --quiet cancelme") == 0)
                        break;
                loop_for(20 * USEC_PER_MSEC);
        }
        loop_for(200 * USEC_PER_MSEC);
        check(r == 0 && a.calls == 0, "a cancelled wait never calls back");

        /* A Units freed with a wait pending: the wait hears -ECANCELED. */
        u2 = connect_system();
        if (!u2)
                return;
        in_container(NULL, "systemd-run --quiet --no-block --unit=pending --service-type=oneshot sleep 30");
        units_wait_active(u2, "pending", on_wait, &b, NULL); /* answered by units_unref() below */
        loop_for(50 * USEC_PER_MSEC);
        units_unref(u2);
        check(b.calls == 1 && b.error == -ECANCELED, "freeing the connection fails its pending waits: %d \"%s\"",
              b.error, b.message ? b.message : "(none)");
        wait_result_clear(&a);
        wait_result_clear(&b);
}

static bool is_volatile(const char *line) {
        static const char *const prefixes[] = {
                "MemoryCurrent=", "MemoryAvailable=", "CPUUsageNSec=", "TasksCurrent=", "IPIngress", "IPEgress",
                "IOReadBytes=", "IOWriteBytes=", "IOReadOperations=", "IOWriteOperations=", "StateChangeTimestamp",
                "InactiveExitTimestamp", "ActiveEnterTimestamp", "ActiveExitTimestamp", "InactiveEnterTimestamp",
                "ConditionTimestamp", "AssertTimestamp", "MainPID=", "ExecMainPID=", NULL,
        };
        for (const char *const *p = prefixes; *p; p++)
                if (startswith(line, *p))
                        return true;
        return false;
}

static bool has_line(char **lines, const char *line) {
        for (char **p = lines; p && *p; p++)
                if (streq(*p, line))
                        return true;
        return false;
}

/* Our lines against `systemctl show` run in the container, ignoring values that move by themselves. */
static void compare_show(Units *u, const char *unit) {
        PropsResult pr = {};
        _cleanup_free_ char *out = NULL;
        char cmd[256];
        int missing = 0, extra = 0, total = 0;

        snprintf(cmd, sizeof cmd, "systemctl show --no-pager -- %s", unit);
        if (units_get_properties(u, unit, NULL, on_props, &pr, NULL) < 0 || !loop_until(&pr.done, 5 * USEC_PER_SEC) ||
            pr.error != 0) {
                check(false, "properties of %s: %s", unit, pr.message ? pr.message : "no answer");
                return;
        }
        if (in_container(&out, cmd) != 0 || !out) {
                check(false, "systemctl show %s in the container", unit);
                return;
        }
        char **theirs = NULL;
        size_t n = 0;
        for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
                theirs = realloc(theirs, (n + 2) * sizeof(char *));
                theirs[n++] = line;
                theirs[n] = NULL;
        }
        for (size_t i = 0; i < n; i++) {
                total++;
                if (!is_volatile(theirs[i]) && !has_line(pr.lines, theirs[i])) {
                        missing++;
                        printf("#   systemctl only: %s\n", theirs[i]);
                }
        }
        for (char **p = pr.lines; p && *p; p++)
                if (!is_volatile(*p) && !has_line(theirs, *p)) {
                        extra++;
                        printf("#   ours only:      %s\n", *p);
                }
        check(missing == 0 && extra == 0, "properties of %s match `systemctl show` (%d lines; %d only there, %d only ours)",
              unit, total, missing, extra);
        free(theirs);
        strv_free(pr.lines);
        free(pr.message);
}

static void test_properties(Units *u) {
        PropsResult pr = {};
        U64Result ur = {};

        compare_show(u, "multi-user.target");
        compare_show(u, "systemd-journald.service");
        compare_show(u, "late0.service");
        compare_show(u, "bad.service");
        compare_show(u, "dbus.socket");
        compare_show(u, "nosuch.service");
        compare_show(u, "apt-daily.timer");
        compare_show(u, "-.mount");
        compare_show(u, "system.slice");

        /* Properties with their own formats in systemctl. */
        _cleanup_free_ char *err = NULL;
        int rc = in_container(&err, "exec 2>&1; systemd-run --quiet --unit=exotic --service-type=oneshot --remain-after-exit "
                           "-p StandardInputData=aGVsbG8K -p IPAddressDeny=10.0.0.0/8 -p IPAddressAllow=::1/128 "
                           "-p BindReadOnlyPaths=/usr:/mnt -p TemporaryFileSystem=/srv:ro -p CPUAffinity=0 "
                           "-p SystemCallFilter=~@mount -p 'DeviceAllow=/dev/null rw' "
                           "-p EnvironmentFile=-/etc/nonexistent -p LogExtraFields=FOO=bar "
                           "-p RestrictNamespaces='net ipc' -p CapabilityBoundingSet=CAP_NET_ADMIN "
                           "-p 'IOReadBandwidthMax=/dev/null 1M' -p MountFlags=private -p UMask=0027 "
                           "-p RuntimeMaxSec=90 -p 'Environment=A=1 \"B=two words\"' -p NUMAPolicy=bind "
                           "-p NUMAMask=0 -p SuccessExitStatus='3 TERM' -p 'ExecStartPost=-/bin/echo hi' "
                           "/bin/true");
        check(rc == 0, "systemd-run a unit with unusual properties (exit %d) %s", rc, rc ? err : "");
        compare_show(u, "exotic.service");
        pr = (PropsResult) {};
        units_get_properties(u, "exotic.service", NULL, on_props, &pr, NULL);
        loop_until(&pr.done, 5 * USEC_PER_SEC);
        {
                static const char *const expect[] = {
                        "StandardInputData=aGVsbG8K", "IPAddressDeny=10.0.0.0/8", "IPAddressAllow=::1/128",
                        "BindReadOnlyPaths=/usr:/mnt:rbind", "TemporaryFileSystem=/srv:ro", "CPUAffinity=0",
                        "DeviceAllow=/dev/null rw", "EnvironmentFiles=/etc/nonexistent (ignore_errors=yes)",
                        "RestrictNamespaces=ipc net", "CapabilityBoundingSet=cap_net_admin",
                        "IOReadBandwidthMax=/dev/null 1000000", "MountFlags=private", "UMask=0027",
                        "RuntimeMaxUSec=1min 30s", "Environment=A=1 \"B=two words\"", "NUMAPolicy=bind",
                        "NUMAMask=0", "SuccessExitStatus=3 TERM", "LogExtraFields=FOO=bar", NULL,
                };
                int missing = 0;

                for (const char *const *e = expect; *e; e++)
                        if (!has_line(pr.lines, *e)) {
                                printf("#   missing: %s\n", *e);
                                missing++;
                        }
                check(pr.error == 0 && missing == 0, "unusual properties are formatted as systemctl does");
        }
        strv_free(pr.lines);
        free(pr.message);
        pr = (PropsResult) {};

        units_get_properties(u, "multi-user.target", "Job", on_props, &pr, NULL);
        loop_until(&pr.done, 5 * USEC_PER_SEC);
        check(pr.error == 0 && pr.lines && pr.lines[0] && streq(pr.lines[0], "Job=") && !pr.lines[1],
              "one property, shown even when empty: %s", pr.lines && pr.lines[0] ? pr.lines[0] : "(none)");
        strv_free(pr.lines);
        free(pr.message);

        get_u64(u, "multi-user.target", "Id", &ur);
        check(ur.error == -EINVAL && ur.message &&
                      streq(ur.message, "unit \"multi-user.target\": property Id is not an unsigned 64-bit number"),
              "a u64 read of a string property fails clearly: %s", ur.message ? ur.message : "(none)");
        free(ur.message);
}

static void test_bus_fallback(void) {
        char addr[128];
        Units *u = NULL;
        int r;

        snprintf(addr, sizeof addr, "unix:path=/proc/%d/root/run/dbus/system_bus_socket", (int) leader);
        r = units_connect_address(event, addr, true, "the container's systemd went away", &u);
        check(r >= 0, "connect through the container's D-Bus daemon (%s)", r < 0 ? strerror(-r) : "connected");
        if (r < 0)
                return;
        lag_trials(u, "through dbus-daemon", "blate", 3);
        units_unref(u);
}

static Units *test_user_manager(void) {
        WaitResult r = {};
        Units *u = NULL;
        uint64_t start;
        int rc, k;

        rc = in_container(NULL, "systemctl start user@0.service");
        if (rc != 0) {
                _cleanup_free_ char *out = NULL;

                in_container(&out, "systemctl status --no-pager user@0.service 2>&1 | tail -n 15");
                check(false, "start user@0.service in the container (exit %d):\n%s", rc, out ? out : "");
                return NULL;
        }
        start = now_usec();
        while ((k = units_connect(event, leader, "root", &u)) == -ENOENT && now_usec() - start < 30 * USEC_PER_SEC)
                loop_for(20 * USEC_PER_MSEC);
        check(k >= 0, "connect to root's user manager (%s)", k < 0 ? strerror(-k) : "connected");
        if (k < 0)
                return NULL;

        bool ok = wait_unit(u, "default.target", &r, 10 * USEC_PER_SEC);
        check(ok && r.error == 0, "user manager: wait for default.target (%s)",
              ok ? (r.message ? r.message : "active") : "timed out");
        wait_result_clear(&r);

        rc = in_container(NULL, "XDG_RUNTIME_DIR=/run/user/0 systemd-run --user --quiet --no-block --unit=ulate "
                                "--service-type=oneshot --remain-after-exit sleep 0.3");
        ok = rc == 0 && wait_unit(u, "ulate", &r, 10 * USEC_PER_SEC);
        check(ok && r.error == 0, "user manager: wait for a user unit started later (%s)",
              ok ? (r.message ? r.message : "active") : "systemd-run --user failed or timed out");
        wait_result_clear(&r);

        expect_wait_error(u, "unosuch", -ENOENT,
                          "unit \"unosuch.service\" not found: it is inactive and there are no pending jobs",
                          "user manager: an unknown unit", 0);
        k = units_connect(event, leader, "nobody-here", &u);
        check(k == -ESRCH, "a user missing from the container's /etc/passwd: %s", strerror(-k));
        return u;
}

static void test_kill(Units *u, Units *user) {
        WaitResult r = {}, ru = {}, late = {};
        UnitsWait *w1 = NULL, *w2 = NULL, *w3 = NULL;
        uint64_t t_kill;
        bool ok;
        int status;

        in_container(NULL, "systemd-run --quiet --no-block --unit=forever --service-type=oneshot sleep 1000");
        if (user)
                in_container(NULL, "XDG_RUNTIME_DIR=/run/user/0 systemd-run --user --quiet --no-block "
                                   "--unit=uforever --service-type=oneshot sleep 1000");
        units_wait_active(u, "forever", on_wait, &r, &w1);
        if (user)
                units_wait_active(user, "uforever", on_wait, &ru, &w2);
        loop_for(200 * USEC_PER_MSEC);
        check(!r.done && (!user || !ru.done), "waits on activating units are still pending before the kill");

        t_kill = now_usec();
        kill(leader, SIGKILL);
        ok = loop_until(&r.done, 10 * USEC_PER_SEC);
        check(ok && r.error == -ECONNRESET && streq_ptr_test(r.message, "the container's systemd went away"),
              "container killed while waiting: %s \"%s\" after %.1f ms", ok ? strerror(-r.error) : "no answer (hang)",
              r.message ? r.message : "", ok ? (r.at - t_kill) / 1e3 : 0.0);
        if (user) {
                ok = loop_until(&ru.done, 10 * USEC_PER_SEC);
                check(ok && ru.error == -ECONNRESET,
                      "user manager wait after the kill: %s \"%s\"", ok ? strerror(-ru.error) : "no answer (hang)",
                      ru.message ? ru.message : "");
        }
        check(!units_is_connected(u), "the connection reports itself lost");

        units_wait_active(u, "multi-user.target", on_wait, &late, &w3);
        ok = loop_until(&late.done, USEC_PER_SEC);
        check(ok && late.error == -ECONNRESET, "a wait started after the loss fails at once: %s",
              late.message ? late.message : "(none)");

        for (int i = 0; i < 1000 && nspawn_pid > 0; i++) {
                if (waitpid(nspawn_pid, &status, WNOHANG) == nspawn_pid)
                        nspawn_pid = -1;
                else
                        loop_for(10 * USEC_PER_MSEC);
        }
        check(nspawn_pid < 0, "systemd-nspawn exits after its container was killed");
        if (nspawn_pid > 0) {
                char cmd[300];

                snprintf(cmd, sizeof cmd, "tail -n 5 %s/nspawn.log | sed 's/^/#   /'; ps -ef | sed 's/^/#   /'", tmpdir);
                (void) !system(cmd);
        }
        wait_done(w1, &r);
        wait_done(w2, &ru);
        wait_done(w3, &late);
}

static int run_tests(void) {
        Units *u, *user;
        int r;

        /* Our own PID 1 and mount table: nothing we start or mount outlives this process. */
        if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
            mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0) {
                printf("not ok - set up the private mount namespace: %m\n");
                return 1;
        }
        r = sd_event_default(&event);
        if (r < 0)
                return 1;

        r = boot_container();
        check(r >= 0, "boot a container from the host's /usr (%s)", r < 0 ? strerror(-r) : "ready");
        if (r < 0) {
                char cmd[300];

                snprintf(cmd, sizeof cmd, "tail -n 30 %s/nspawn.log | sed 's/^/#   /'", tmpdir);
                (void) system(cmd);
                stop_container();
                return selftest_finish();
        }

        u = connect_system();
        if (u) {
                test_boot_target(u);
                lag_trials(u, "private socket", "late", TRIALS);
                test_failures(u);
                test_idle_rules(u);
                test_concurrency(u);
                test_cancel(u);
                test_properties(u);
                test_bus_fallback();
                user = test_user_manager();
                test_kill(u, user);
                units_unref(user);
                units_unref(u);
        }

        stop_container();
        sd_event_unref(event);
        if (usr_mount[0])
                umount2(usr_mount, MNT_DETACH);
        return selftest_finish();
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
        (void) st;
        (void) ftw;
        if (flag == FTW_DP)
                return rmdir(path) < 0 && errno != ENOENT ? -1 : 0;
        return unlink(path) < 0 && errno != ENOENT ? -1 : 0;
}

int main(void) {
        pid_t pid;
        int status;

        setvbuf(stdout, NULL, _IOLBF, 0);
        if (geteuid() != 0) {
                skip_all("root", "units_selftest needs root (systemd-nspawn, namespaces)");
        }
        if (access("/usr/bin/systemd-nspawn", X_OK) < 0 || access("/usr/bin/nsenter", X_OK) < 0) {
                skip_all("nspawn", "needs systemd-nspawn (apt-get install systemd-container) and nsenter");
        }
        if (!mkdtemp(tmpdir)) {
                check(false, "create a temporary directory: %m");
                return selftest_finish();
        }
        fflush(stdout);
        pid = fork();
        if (pid < 0)
                return 1;
        if (pid == 0) {
                /* The middle process makes the namespaces, so that this one keeps the host's and can
                 * clean up whatever happens; its child is PID 1 there, and all dies with it. */
                pid_t test;

                if (unshare(CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET) < 0) {
                        check(false, "unshare mount, PID and network namespaces: %m");
                        _exit(selftest_finish());
                }
                test = fork();
                if (test < 0)
                        _exit(1);
                if (test == 0)
                        exit(run_tests()); /* exit(), not _exit(): let a sanitizer check for leaks */
                for (int i = 0;; i++) {
                        if (waitpid(test, &status, WNOHANG) == test)
                                break;
                        if (i == 300 * 10) {
                                check(false, "the test finished within 300 s (killed)");
                                kill(test, SIGKILL);
                                waitpid(test, &status, 0);
                                _exit(selftest_finish());
                        }
                        usleep(100000);
                }
                _exit(WIFEXITED(status) ? WEXITSTATUS(status) : 1);
        }
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
                ;
        /* Nothing is mounted under it in this namespace; FTW_MOUNT guards against surprises. */
        if (nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT) < 0)
                printf("# could not remove %s: %m\n", tmpdir);
        return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}
