/* container_selftest.c: boots real host-image containers through container.c and runs commands
 * in them through exec.c; checks what a test author relies on and prints measured figures.
 * Root only. Runs in its own mount, PID and network namespaces, so nothing it starts survives it. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <ftw.h>
#include <math.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include "container.h"
#include "exec.h"
#include "util.h"

#define SEC 1000000ULL

uint64_t now_usec(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * SEC + ts.tv_nsec / 1000;
}

static sd_event *event;
static char tmp_dir[] = "/tmp/moonrig-ctest-XXXXXX";
static char shared_dir[PATH_MAX];
static unsigned n_passed, n_failed;

/* ---- reporting ---- */

static bool check(bool ok, const char *fmt, ...) _printf_(2, 3);
static bool check(bool ok, const char *fmt, ...) {
        va_list ap;

        printf("%s - ", ok ? "ok" : "not ok");
        va_start(ap, fmt);
        vprintf(fmt, ap);
        va_end(ap);
        putchar('\n');
        fflush(stdout);
        ok ? n_passed++ : n_failed++;
        return ok;
}

static void note(const char *fmt, ...) _printf_(1, 2);
static void note(const char *fmt, ...) {
        va_list ap;

        printf("# ");
        va_start(ap, fmt);
        vprintf(fmt, ap);
        va_end(ap);
        putchar('\n');
        fflush(stdout);
}

static int cmp_u64(const void *a, const void *b) {
        uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;
        return x < y ? -1 : x > y;
}

static uint64_t median(uint64_t *v, size_t n) {
        qsort(v, n, sizeof *v, cmp_u64);
        return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* ---- the loop ---- */

static bool run_until(const bool *flag, double timeout_s) {
        uint64_t end = now_usec() + (uint64_t) (timeout_s * SEC);

        while (!*flag) {
                uint64_t now = now_usec();
                if (now >= end)
                        return false;
                if (sd_event_run(event, end - now) < 0)
                        return false;
        }
        return true;
}

static void run_for(double s) {
        bool never = false;
        run_until(&never, s);
}

/* ---- nodes ---- */

typedef struct Node {
        Container *c;
        bool ready_called, exited;
        int ready_error, exit_status;
        char *ready_message;
        unsigned n_lines, n_leader;
        uint64_t started, ready_at;
} Node;

static void on_leader(Container *c, pid_t leader _unused_) {
        ((Node *) container_userdata(c))->n_leader++;
}

static void on_ready(Container *c, int error, const char *message) {
        Node *n = container_userdata(c);

        n->ready_called = true;
        n->ready_error = error;
        n->ready_at = now_usec();
        free(n->ready_message);
        n->ready_message = message ? strdup(message) : NULL;
}

static void on_exit_(Container *c, int status) {
        Node *n = container_userdata(c);

        n->exited = true;
        n->exit_status = status;
}

static void on_line(Container *c, const char *line _unused_, size_t len _unused_) {
        ((Node *) container_userdata(c))->n_lines++;
}

static const ContainerCallbacks callbacks = {
        .on_leader = on_leader,
        .on_ready = on_ready,
        .on_exit = on_exit_,
        .on_console_line = on_line,
};

static Node *node_new(ContainerConfig *cfg) {
        Node *n = calloc(1, sizeof *n);
        char state[PATH_MAX];
        int r;

        snprintf(state, sizeof state, "%s/%s", tmp_dir, cfg->name);
        cfg->state_dir = state;
        cfg->shared_dir = shared_dir;
        r = container_new(event, cfg, &callbacks, n, &n->c);
        if (r < 0) {
                check(false, "container_new %s: %s", cfg->name, strerror(-r));
                free(n);
                return NULL;
        }
        return n;
}

static int node_start(Node *n) {
        n->ready_called = n->exited = false;
        n->started = now_usec();
        return container_start(n->c);
}

static bool node_wait_ready(Node *n, double timeout_s) {
        if (!run_until(&n->ready_called, timeout_s))
                return false;
        if (n->ready_error < 0)
                note("%s", n->ready_message ?: "(no message)");
        return n->ready_error == 0;
}

static void node_free(Node *n) {
        if (!n)
                return;
        container_free(n->c);
        free(n->ready_message);
        free(n);
}

/* ---- commands ---- */

typedef struct Run {
        bool done;
        ExecResult r;
        uint64_t usec;
} Run;

static void on_run_done(ExecResult *r, void *userdata) {
        Run *x = userdata;

        x->r = *r;
        r->out = r->err = NULL;   /* ours now */
        x->done = true;
}

static void run_free(Run *x) {
        free(x->r.out);
        free(x->r.err);
}

static Run run_spec(const ExecSpec *s) {
        Run x = { .usec = now_usec() };
        int r = exec_start(event, s, on_run_done, &x, NULL);

        if (r < 0) {
                x.r = (ExecResult) { .status = -1, .error = r };
                return x;
        }
        if (!run_until(&x.done, 600))
                x.r = (ExecResult) { .status = -1, .error = -ETIME };
        x.usec = now_usec() - x.usec;
        return x;
}

static Run run_opts(Node *n, const char *cmd, uint64_t timeout_usec, uint64_t grace_usec) {
        _cleanup_strv_free_ char **argv = exec_command_argv(container_shell(n->c), cmd);
        ExecSpec s = {
                .leader_pidfd = container_leader_pidfd(n->c),
                .argv = argv,
                .envp = container_login_env(n->c),
                .cwd = container_cwd(n->c),
                .timeout_usec = timeout_usec,
                .grace_usec = grace_usec,
        };
        return run_spec(&s);
}

static Run run(Node *n, const char *cmd) {
        return run_opts(n, cmd, 60 * SEC, 0);
}

/* The command's stdout, NULL unless it exited 0. */
static char *succeed(Node *n, const char *cmd) {
        Run x = run(n, cmd);

        if (x.r.error == 0 && x.r.status == 0) {
                free(x.r.err);
                return x.r.out;
        }
        note("command `%s` failed: status %d, error %s, stderr: %.500s", cmd, x.r.status, strerror(-x.r.error),
             x.r.err ?: "");
        run_free(&x);
        return NULL;
}

static bool output_is(Node *n, const char *cmd, const char *expected) {
        _cleanup_free_ char *out = succeed(n, cmd);

        if (out && streq(out, expected))
                return true;
        note("`%s` printed '%s', expected '%s'", cmd, out ?: "(failed)", expected);
        return false;
}

/* ---- host-side checks ---- */

/* How many processes in our PID namespace run `sleep ARG`. */
static unsigned count_sleep(const char *arg) {
        _cleanup_closedir_ DIR *d = opendir("/proc");
        struct dirent *de;
        unsigned n = 0;

        while (d && (de = readdir(d))) {
                char path[300], buf[256] = "";
                _cleanup_close_ int fd = -1;
                ssize_t l;

                if (atoi(de->d_name) <= 0)
                        continue;
                snprintf(path, sizeof path, "/proc/%s/cmdline", de->d_name);
                fd = open(path, O_RDONLY | O_CLOEXEC);
                if (fd < 0 || (l = read(fd, buf, sizeof buf - 1)) <= 0)
                        continue;
                if (streq(buf, "sleep") && (size_t) l > 6 && streq(buf + 6, arg))
                        n++;
        }
        return n;
}

/* How many processes live in our PID namespace; names the others. */
static unsigned count_processes(bool show) {
        _cleanup_closedir_ DIR *d = opendir("/proc");
        struct dirent *de;
        unsigned n = 0;

        while (d && (de = readdir(d))) {
                char path[300], cmd[256] = "";
                _cleanup_fclose_ FILE *f = NULL;

                if (atoi(de->d_name) <= 0)
                        continue;
                n++;
                snprintf(path, sizeof path, "/proc/%s/stat", de->d_name);
                if (show && atoi(de->d_name) != 1 && (f = fopen(path, "re")) && fgets(cmd, sizeof cmd, f))
                        note("left over: %s", cmd);
        }
        return n;
}

static unsigned count_mounts_under(const char *prefix) {
        _cleanup_fclose_ FILE *f = fopen("/proc/self/mountinfo", "re");
        char line[4096];
        unsigned n = 0;

        while (f && fgets(line, sizeof line, f)) {
                char mp[4096];
                if (sscanf(line, "%*s %*s %*s %*s %4095s", mp) == 1 && startswith(mp, prefix))
                        n++;
        }
        return n;
}

static unsigned count_fds(void) {
        _cleanup_closedir_ DIR *d = opendir("/proc/self/fd");
        struct dirent *de;
        unsigned n = 0;

        while (d && (de = readdir(d))) {
                char target[256] = "";
                if (de->d_name[0] == '.')
                        continue;
                n++;
                if (getenv("DEBUG_FDS") && readlinkat(dirfd(d), de->d_name, target, sizeof target - 1) > 0)
                        note("fd %s: %s", de->d_name, target);
        }
        return n;
}

static int write_file(const char *path, const char *content) {
        _cleanup_fclose_ FILE *f = fopen(path, "we");

        if (!f || fputs(content, f) < 0)
                return -errno;
        return 0;
}

static char *read_file(const char *path) {
        _cleanup_fclose_ FILE *f = fopen(path, "re");
        char *buf = NULL;
        size_t size = 0;

        if (!f || getdelim(&buf, &size, '\0', f) < 0) {
                free(buf);
                return NULL;
        }
        return buf;
}

/* ---- the tests ---- */

static const char unit_hello[] =
        "[Unit]\nDescription=moonrig selftest unit given as a file\n"
        "[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/bin/sh -c 'echo ran > /run/hello-ran'\n"
        "[Install]\nWantedBy=multi-user.target\n";
static const char unit_slow[] =
        "[Unit]\nDescription=a unit that holds the boot\n"
        "[Service]\nType=oneshot\nExecStart=/bin/sleep 60\n";

static Node *boot_alpha(void) {
        static char source[PATH_MAX];
        HostImageFile files[] = {
                { .path = "/etc/moonrig-test.conf", .content = "hello from the node's files\n", .len = 28, .mode = 0600 },
                { .path = "/root/script.sh", .content = "#!/bin/sh\necho script-ok\n", .len = 25, .mode = 0755 },
                { .path = "/etc/systemd/system/hello.service", .content = unit_hello, .len = sizeof unit_hello - 1 },
                { .path = "/var/lib/moonrig/data", .content = "var file\n", .len = 9 },
                { .path = "/srv/copied", .source = source },
        };
        char *services[] = { (char *) "hello", NULL };
        char *env[] = { (char *) "MOONRIG_SELFTEST=pid1", NULL };
        char *devices[] = { (char *) "/dev/kvm", NULL };
        char bind[2 * PATH_MAX], bind_ro[2 * PATH_MAX], dir[PATH_MAX + 16];
        char *binds[] = { bind, NULL }, *binds_ro[] = { bind_ro, NULL };
        ContainerConfig cfg = {
                .name = "alpha",
                .files = files,
                .n_files = ELEMENTSOF(files),
                .services = services,
                .env = env,
                .devices = access("/dev/kvm", F_OK) == 0 ? devices : NULL,
                .bind = binds,
                .bind_ro = binds_ro,
                .boot_timeout_usec = 60 * SEC,
        };
        Node *n;

        snprintf(source, sizeof source, "%s/source-file", tmp_dir);
        write_file(source, "copied from the host\n");
        (void) chmod(source, 0750);
        snprintf(dir, sizeof dir, "%s/bound-rw", tmp_dir);
        (void) mkdir(dir, 0755);
        snprintf(bind, sizeof bind, "%s:/mnt/rw", dir);
        snprintf(dir, sizeof dir, "%s/bound-ro", tmp_dir);
        (void) mkdir(dir, 0755);
        snprintf(bind_ro, sizeof bind_ro, "%s:/mnt/ro", dir);
        n = node_new(&cfg);

        if (!n)
                return NULL;
        bool ok = node_start(n) >= 0 && node_wait_ready(n, 60);
        if (!check(ok, "alpha: host-image container boots to READY (%.3f s)", (n->ready_at - n->started) / 1e6)) {
                node_free(n);
                return NULL;
        }
        check(n->n_leader == 1, "alpha: on_leader called once before ready (%u)", n->n_leader);
        return n;
}

static void test_basics(Node *n) {
        Run x = run(n, "echo hello; echo err >&2; exit 3");

        check(x.r.error == 0 && x.r.status == 3 && x.r.out_len == 6 && streq(x.r.out, "hello\n") &&
                      streq(x.r.err, "err\n"),
              "exit status 3, stdout and stderr separate (status %d, out '%s', err '%s')", x.r.status,
              x.r.out ?: "", x.r.err ?: "");
        run_free(&x);

        x = run(n, "false | true");
        check(x.r.status == 1, "pipefail: `false | true` fails (status %d)", x.r.status);
        run_free(&x);
        x = run(n, "false; echo not reached");
        check(x.r.status == 1 && x.r.out_len == 0, "errexit: `false; echo` stops at false (status %d)", x.r.status);
        run_free(&x);
        x = run(n, "echo $MOONRIG_UNSET_VARIABLE");
        check(x.r.status != 0, "nounset: an unset variable is an error (status %d)", x.r.status);
        run_free(&x);
        x = run(n, "kill -9 $$");
        check(x.r.status == 137 && x.r.error == 0, "a command killed by SIGKILL reports 137 (%d)", x.r.status);
        run_free(&x);

        x = run(n, "printf 'a\\0b\\377c\\n'; printf '\\0\\0' >&2");
        check(x.r.out_len == 6 && memcmp(x.r.out, "a\0b\377c\n", 6) == 0 && x.r.err_len == 2 &&
                      memcmp(x.r.err, "\0\0", 2) == 0,
              "NUL bytes and invalid UTF-8 kept (out %zu bytes, err %zu bytes)", x.r.out_len, x.r.err_len);
        run_free(&x);

        check(output_is(n, "hostname", "alpha\n") && output_is(n, "cat /etc/hostname", "alpha\n"),
              "hostname is the node's");
        check(output_is(n, "echo $USER $HOME; pwd", "root /root\n/root\n"), "USER, HOME and cwd are root's");
        {
                _cleanup_free_ char *path = succeed(n, "echo $PATH");
                check(path && strstr(path, "/usr/bin"), "login environment has PATH (%s)", path ? strtok(path, "\n") : "");
        }
        check(output_is(n, "systemctl is-active network.target network-online.target", "active\nactive\n"),
              "network.target and network-online.target are active");
        check(output_is(n, "systemctl is-system-running", "running\n"), "system is running (nothing failed)");
}

static void test_stdin(Node *n) {
        _cleanup_strv_free_ char **argv = exec_command_argv(container_shell(n->c), "cat; echo; wc -c");
        ExecSpec s = {
                .leader_pidfd = container_leader_pidfd(n->c),
                .argv = argv,
                .envp = container_login_env(n->c),
                .stdin_data = "abc",
                .stdin_len = 3,
        };
        Run x = run_spec(&s);

        check(x.r.status == 0 && x.r.out && streq(x.r.out, "abc\n0\n"), "stdin bytes reach the command ('%s')",
              x.r.out ?: "");
        run_free(&x);
}

static void test_big_output(Node *n) {
        static const size_t sizes[] = { 50000000, 200000000 };

        for (size_t i = 0; i < ELEMENTSOF(sizes); i++) {
                char cmd[128];
                bool same = true;

                snprintf(cmd, sizeof cmd, "head -c %zu /dev/zero | tr '\\0' x", sizes[i]);
                Run x = run(n, cmd);
                for (size_t k = 0; x.r.out && k < x.r.out_len && same; k += 4093)
                        same = x.r.out[k] == 'x';
                check(x.r.status == 0 && x.r.out_len == sizes[i] && same, "%zu MB of output, exact (%zu bytes in %.2f s, %.0f MB/s)",
                      sizes[i] / 1000000, x.r.out_len, x.usec / 1e6, x.r.out_len / (x.usec / 1e6) / 1e6);
                run_free(&x);
        }
}

static void test_timeout(Node *n) {
        Run x = run_opts(n, "sleep 100 & sleep 100", SEC / 2, 0);

        check(x.r.timed_out && x.r.status == 137 && x.usec < 3 * SEC,
              "timeout 0.5 s on `sleep 100 & sleep 100`: timed_out, status %d, returned in %.2f s", x.r.status,
              x.usec / 1e6);
        run_free(&x);
        run_for(0.1);
        check(count_sleep("100") == 0, "no `sleep 100` survives the timeout (%u left)", count_sleep("100"));

        /* A child that started its own session still dies with the tree. */
        x = run_opts(n, "setsid sleep 101 & sleep 100", SEC / 2, 0);
        run_for(0.1);
        check(x.r.timed_out && count_sleep("101") == 0 && count_sleep("100") == 0,
              "a child in its own session dies with the tree (%u left)", count_sleep("101"));
        run_free(&x);
}

static void test_grace(Node *n) {
        Run x = run_opts(n, "sleep 3 & echo started", 0, SEC / 2);

        check(x.r.status == 0 && x.r.output_abandoned && x.r.out && streq(x.r.out, "started\n") && x.usec < 2 * SEC,
              "a background child holding stdout: returns after the grace period with output_abandoned (%.2f s, "
              "status %d)", x.usec / 1e6, x.r.status);
        run_free(&x);
        check(count_sleep("3") == 1, "the background child keeps running after we gave up on its output");
        x = run(n, "sleep 4 >/dev/null 2>&1 & echo quick");
        check(x.r.status == 0 && !x.r.output_abandoned && x.usec < SEC,
              "a background child with redirected output does not hold the command (%.3f s)", x.usec / 1e6);
        run_free(&x);
}

static void test_cancel(Node *n) {
        _cleanup_strv_free_ char **argv = exec_command_argv(container_shell(n->c), "sleep 102 & sleep 102");
        ExecSpec s = {
                .leader_pidfd = container_leader_pidfd(n->c),
                .argv = argv,
                .envp = container_login_env(n->c),
        };
        ExecJob *j = NULL;
        Run x = {};
        int r = exec_start(event, &s, on_run_done, &x, &j);

        run_for(0.3);
        if (r >= 0)
                exec_cancel(j);
        run_for(0.1);
        check(r >= 0 && !x.done && count_sleep("102") == 0, "exec_cancel kills the tree, no callback (%u left)",
              count_sleep("102"));
        count_processes(getenv("DEBUG_PROCS"));
}

static void test_files_and_services(Node *n) {
        struct stat st;

        check(output_is(n, "cat /etc/moonrig-test.conf; stat -c %a /etc/moonrig-test.conf",
                        "hello from the node's files\n600\n"),
              "a file in /etc is in place with its mode");
        check(output_is(n, "/root/script.sh", "script-ok\n"), "an executable file in /root runs");
        check(output_is(n, "cat /var/lib/moonrig/data", "var file\n"), "a file in /var is in place");
        check(output_is(n, "cat /srv/copied; stat -c %a /srv/copied", "copied from the host\n750\n"),
              "a file given by its source on the host is copied, with the source's mode");
        check(stat("/etc/moonrig-test.conf", &st) < 0 && stat("/var/lib/moonrig", &st) < 0,
              "the host's /etc and /var are untouched");
        check(output_is(n, "systemctl is-active hello.service; cat /run/hello-ran", "active\nran\n"),
              "a unit given as a file and listed in services ran at boot");
        check(output_is(n, "systemctl is-active nginx postgresql || true", "inactive\ninactive\n"),
              "host-enabled nginx and postgresql do not run");
        check(output_is(n, "systemctl start nginx && systemctl is-active nginx", "active\n"),
              "nginx is not masked: a test can still start it");
        check(output_is(n, "touch /etc/written-inside && echo ok", "ok\n") && stat("/etc/written-inside", &st) < 0,
              "writes to /etc stay in the node");
}

static void test_binds(Node *n) {
        char path[PATH_MAX + 32];
        struct stat st;

        check(output_is(n, "echo rw > /mnt/rw/f && cat /mnt/rw/f", "rw\n"), "bind: a host directory is writable inside");
        snprintf(path, sizeof path, "%s/bound-rw/f", tmp_dir);
        check(stat(path, &st) == 0, "bind: the write reaches the host directory");
        check(output_is(n, "touch /mnt/ro/f 2>/dev/null || echo refused", "refused\n"), "bind_ro: read-only inside");
        check(output_is(n, "tr '\\0' '\\n' < /proc/1/environ | grep ^MOONRIG_SELFTEST=", "MOONRIG_SELFTEST=pid1\n"),
              "env reaches the container's PID 1");
        if (access("/dev/kvm", F_OK) == 0)
                check(output_is(n, "test -c /dev/kvm && exec 3<>/dev/kvm && echo opened", "opened\n"),
                      "devices: /dev/kvm is handed in and can be opened");
}

static void test_shared(Node *n) {
        char path[PATH_MAX + 32];
        _cleanup_free_ char *back = NULL;

        snprintf(path, sizeof path, "%s/from-host", shared_dir);
        write_file(path, "host to node\n");
        check(output_is(n, "cat /tmp/shared/from-host", "host to node\n"), "/tmp/shared: host to node");
        free(succeed(n, "echo node to host > /tmp/shared/from-node"));
        snprintf(path, sizeof path, "%s/from-node", shared_dir);
        back = read_file(path);
        check(back && streq(back, "node to host\n"), "/tmp/shared: node to host");
}

static void test_latency(Node *n) {
        enum { N = 200 };
        uint64_t v[N], w[N];
        char cmd[256];
        char *tru[] = { (char *) "/usr/bin/true", NULL };
        ExecSpec s = { .leader_pidfd = container_leader_pidfd(n->c), .argv = tru };
        uint64_t t0;
        int st;

        free(succeed(n, "true"));   /* warm */
        for (int i = 0; i < N; i++) {
                Run x = run(n, "true");
                v[i] = x.usec;
                run_free(&x);
        }
        for (int i = 0; i < N; i++) {
                Run x = run_spec(&s);
                w[i] = x.usec;
                run_free(&x);
        }
        snprintf(cmd, sizeof cmd, "for i in $(seq %d); do nsenter -t %d -a true; done", N, (int) container_leader(n->c));
        t0 = now_usec();
        st = system(cmd);
        t0 = now_usec() - t0;
        uint64_t mv = median(v, N), mw = median(w, N);
        note("exec latency, median of %d: `true` via container_exec (bash -euo pipefail -c, login env) %.2f ms; "
             "/usr/bin/true via exec_start %.2f ms; shell loop of `nsenter -t PID -a true` %.2f ms a call (mean)",
             N, mv / 1e3, mw / 1e3, t0 / 1e3 / N);
        check(st == 0 && mv < t0 / N, "container_exec of `true` is faster than an nsenter loop");
}

static void test_reboot(Node *n) {
        _cleanup_free_ char *id1 = NULL, *id2 = NULL;
        pid_t old = container_leader(n->c);
        uint64_t t0;

        id1 = succeed(n, "cat /etc/machine-id");
        free(succeed(n, "echo kept > /root/marker; echo etc-kept > /etc/marker"));
        n->ready_called = false;
        t0 = now_usec();
        bool ok = container_reboot(n->c) >= 0 && node_wait_ready(n, 60) && !n->exited;
        check(ok, "reboot: READY again (%.2f s), no on_exit", (now_usec() - t0) / 1e6);
        check(container_leader(n->c) != old && container_leader(n->c) > 0, "reboot: a new leader");
        check(output_is(n, "cat /root/marker /etc/marker", "kept\netc-kept\n"),
              "reboot keeps files written in /root and /etc");
        id2 = succeed(n, "cat /etc/machine-id");
        check(id1 && id2 && streq(id1, id2), "reboot keeps the machine id");
}

static void test_shutdown(Node *n) {
        uint64_t t0 = now_usec();
        bool ok = container_shutdown(n->c) >= 0 && run_until(&n->exited, 60) && n->exit_status == 0;

        check(ok, "shutdown: on_exit with status 0 in %.2f s", (now_usec() - t0) / 1e6);
        check(!container_is_up(n->c) && container_leader(n->c) == 0, "shutdown: not up, no leader");
        check(node_start(n) >= 0 && node_wait_ready(n, 60), "start after shutdown: READY again");
        check(output_is(n, "cat /root/marker", "kept\n"), "start after shutdown keeps the state");
}

static void test_crash_mid_command(Node *n) {
        _cleanup_strv_free_ char **argv = exec_command_argv(container_shell(n->c), "sleep 103");
        ExecSpec s = {
                .leader_pidfd = container_leader_pidfd(n->c),
                .argv = argv,
                .envp = container_login_env(n->c),
        };
        Run x = {};
        int stale = fcntl(container_leader_pidfd(n->c), F_DUPFD_CLOEXEC, 3);
        int r = exec_start(event, &s, on_run_done, &x, NULL);

        run_for(0.3);
        container_crash(n->c);
        bool ok = r >= 0 && run_until(&x.done, 10);
        check(ok && x.r.error == -ESRCH && x.r.status == 137,
              "crash mid-command: the callback fires (error %s, status %d)", strerror(-x.r.error), x.r.status);
        ok = run_until(&n->exited, 10);
        check(ok, "crash: on_exit (status %d)", n->exit_status);
        check(count_sleep("103") == 0, "crash: the command is gone");
        run_free(&x);

        x = run(n, "true");
        check(x.r.error < 0, "a command on a dead container fails at once (%s)", strerror(-x.r.error));
        run_free(&x);

        s.leader_pidfd = stale;
        x = run_spec(&s);
        check(x.r.error < 0 && x.r.status == -1, "a command through a dead container's pidfd: error %s, status %d",
              strerror(-x.r.error), x.r.status);
        run_free(&x);
        close(stale);
}

static void test_no_such_program(Node *n) {
        char *argv[] = { (char *) "/usr/bin/moonrig-no-such-program", NULL };
        ExecSpec s = { .leader_pidfd = container_leader_pidfd(n->c), .argv = argv };
        Run x = run_spec(&s);

        check(x.r.error == -ENOENT && x.r.status == -1, "a program that does not exist: error %s, status %d",
              strerror(-x.r.error), x.r.status);
        run_free(&x);
        s.cwd = "/no/such/dir";
        argv[0] = (char *) "/usr/bin/true";
        x = run_spec(&s);
        check(x.r.error == -ENOENT && x.r.status == -1, "a working directory that does not exist: error %s",
              strerror(-x.r.error));
        run_free(&x);
}

/* nspawn frozen, so it cannot reap its init: the kill falls back to SIGKILL of nspawn after a few
 * seconds, and the init, handed to us, must still be reaped. */
static void test_crash_frozen_nspawn(Node *n) {
        char path[64], buf[512];
        _cleanup_fclose_ FILE *f = NULL;
        int nspawn = 0;
        pid_t leader = container_leader(n->c);
        uint64_t t0;

        snprintf(path, sizeof path, "/proc/%d/stat", (int) leader);
        f = fopen(path, "re");
        if (f && fgets(buf, sizeof buf, f) && strrchr(buf, ')'))
                sscanf(strrchr(buf, ')') + 1, " %*c %d", &nspawn);
        if (!check(nspawn > 1, "frozen nspawn: found nspawn (pid %d) as the leader's parent", nspawn))
                return;
        (void) kill(nspawn, SIGSTOP);
        t0 = now_usec();
        container_crash(n->c);
        bool ok = run_until(&n->exited, 15);
        check(ok && n->exit_status == 128 + SIGKILL, "frozen nspawn: crash still ends it (status %d, %.1f s)",
              n->exit_status, (now_usec() - t0) / 1e6);
        run_for(0.2);
        snprintf(path, sizeof path, "/proc/%d", (int) leader);
        check(access(path, F_OK) < 0, "frozen nspawn: its init, handed to us, was reaped");
}

/* A new container on a state directory that another one used (kept state, a second run). */
static void test_reuse(void) {
        ContainerConfig cfg = { .name = "alpha" };
        Node *n = node_new(&cfg);

        if (!n)
                return;
        check(node_start(n) >= 0 && node_wait_ready(n, 60), "a new container on alpha's state directory boots");
        check(output_is(n, "cat /root/marker /etc/marker", "kept\netc-kept\n"),
              "... and finds what alpha wrote in /root and /etc");
        check(output_is(n, "test -e /etc/moonrig-test.conf || echo gone", "gone\n"),
              "... but not alpha's files, which were not given to it");
        node_free(n);
}

static void test_services_node(void) {
        char *services[] = { (char *) "nginx", NULL };
        ContainerConfig cfg = { .name = "web", .services = services };
        Node *n = node_new(&cfg);

        if (!n)
                return;
        check(node_start(n) >= 0 && node_wait_ready(n, 60), "web: boots with services = { nginx }");
        check(output_is(n, "systemctl is-active nginx", "active\n"), "web: nginx runs");
        check(output_is(n, "curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1/", "200"),
              "web: nginx answers on port 80");
        node_free(n);
}

static void test_boot_failure(void) {
        char image[PATH_MAX + 16];
        ContainerConfig cfg = { .name = "noinit", .boot_timeout_usec = 30 * SEC };
        Node *n;

        snprintf(image, sizeof image, "%s/noinit-image", tmp_dir);
        (void) mkdir(image, 0755);
        strcat(image, "/etc");
        (void) mkdir(image, 0755);
        strcat(image, "/os-release");
        write_file(image, "ID=empty\n");
        *strrchr(image, '/') = '\0';
        *strrchr(image, '/') = '\0';
        cfg.image = image;
        n = node_new(&cfg);
        if (!n)
                return;
        bool ok = node_start(n) >= 0 && run_until(&n->ready_called, 30);
        check(ok && n->ready_error < 0 && n->ready_message && strstr(n->ready_message, "last console lines:\n  "),
              "an image without init: on_ready fails with console lines");
        if (n->ready_message)
                note("the message: %s", n->ready_message);
        ok = run_until(&n->exited, 10);
        check(ok && n->exit_status != 0, "... and on_exit follows (status %d)", n->exit_status);
        node_free(n);
}

static void test_boot_timeout(void) {
        static const HostImageFile files[] = {
                { .path = "/etc/systemd/system/slow.service", .content = unit_slow, .len = sizeof unit_slow - 1 },
        };
        char *services[] = { (char *) "slow", NULL };
        ContainerConfig cfg = {
                .name = "slow", .files = files, .n_files = 1, .services = services, .boot_timeout_usec = 2 * SEC,
        };
        Node *n = node_new(&cfg);

        if (!n)
                return;
        bool ok = node_start(n) >= 0 && run_until(&n->ready_called, 10);
        check(ok && n->ready_error == -ETIMEDOUT && n->ready_message && strstr(n->ready_message, "not ready within 2.0 s"),
              "boot timeout: on_ready fails with -ETIMEDOUT after %.2f s", (n->ready_at - n->started) / 1e6);
        if (n->ready_message)
                note("the message: %s", n->ready_message);
        check(run_until(&n->exited, 10), "boot timeout: the container is killed, on_exit follows");
        node_free(n);
}

static void test_bad_file(void) {
        static const HostImageFile files[] = { { .path = "/usr/bin/evil", .content = "x", .len = 1 } };
        ContainerConfig cfg = { .name = "badfile", .files = files, .n_files = 1 };
        Node *n = node_new(&cfg);

        if (!n)
                return;
        bool ok = node_start(n) >= 0 && run_until(&n->ready_called, 5);
        check(ok && n->ready_error < 0 && n->ready_message && strstr(n->ready_message, "/usr/bin/evil") &&
                      !container_is_up(n->c),
              "a file under /usr is refused, naming the file: %s", n->ready_message ?: "");
        node_free(n);
}

static void test_ready_median(void) {
        uint64_t v[5];
        unsigned ok = 0;

        for (int i = 0; i < 5; i++) {
                char name[32];
                snprintf(name, sizeof name, "m%d", i);
                ContainerConfig cfg = { .name = name };
                Node *n = node_new(&cfg);
                if (!n)
                        return;
                if (node_start(n) >= 0 && node_wait_ready(n, 60)) {
                        v[ok++] = n->ready_at - n->started;
                        container_shutdown(n->c);
                        run_until(&n->exited, 30);
                }
                node_free(n);
        }
        check(ok == 5, "5 fresh host-image containers booted one after another");
        if (ok == 5) {
                uint64_t m = median(v, 5);
                note("time to ready (container_start to on_ready, login env included), median of 5: %.3f s "
                     "(min %.3f, max %.3f)", m / 1e6, v[0] / 1e6, v[4] / 1e6);
        }
}

static void test_parallel(void) {
        Node *n[3] = {};
        uint64_t t0 = now_usec();
        bool all = true;

        for (int i = 0; i < 3; i++) {
                char name[32];
                snprintf(name, sizeof name, "p%d", i);
                ContainerConfig cfg = { .name = name };
                n[i] = node_new(&cfg);
                if (!n[i] || node_start(n[i]) < 0)
                        all = false;
        }
        for (int i = 0; i < 3 && all; i++)
                all = node_wait_ready(n[i], 60);
        t0 = now_usec() - t0;
        check(all, "three containers in parallel: all READY in %.2f s", t0 / 1e6);
        for (int i = 0; i < 3 && all; i++) {
                char expected[32];
                snprintf(expected, sizeof expected, "p%d\n", i);
                all = output_is(n[i], "hostname", expected);
        }
        check(all, "three containers in parallel: each answers with its own hostname");
        if (all) {
                test_crash_mid_command(n[0]);
                test_crash_frozen_nspawn(n[1]);
        }
        for (int i = 0; i < 3; i++)
                node_free(n[i]);
}

static void test_preflight(void) {
        _cleanup_free_ char *m = NULL;
        int r = container_preflight(4, &m);

        check(r >= 0, "preflight for 4 containers: %s", r == 0 ? "fine as it is" : m ?: strerror(-r));
}

static int rm_one(const char *p, const struct stat *st _unused_, int t, struct FTW *f _unused_) {
        return t == FTW_DP ? rmdir(p) : unlink(p);
}

/* MOONRIG_SELFTEST_ONLY=reboot,shutdown runs alpha's tests of those names only. */
static bool wanted(const char *name) {
        const char *only = getenv("MOONRIG_SELFTEST_ONLY");
        size_t l = strlen(name);

        if (!only)
                return true;
        for (const char *p = only; (p = strstr(p, name)); p += l)
                if ((p == only || p[-1] == ',') && (p[l] == ',' || p[l] == '\0'))
                        return true;
        return false;
}

#define TEST(name, ...) do { if (wanted(#name)) test_##name(__VA_ARGS__); } while (0)

static int run_tests(void) {
        unsigned n_fds;
        Node *alpha;
        sigset_t mask;

        sigemptyset(&mask);
        sigaddset(&mask, SIGCHLD);
        sigprocmask(SIG_BLOCK, &mask, NULL);
        if (sd_event_default(&event) < 0 || !mkdtemp(tmp_dir))
                return 2;
        snprintf(shared_dir, sizeof shared_dir, "%s/shared", tmp_dir);
        (void) mkdir(shared_dir, 0700);
        /* systemd-nspawn keeps per-machine directories in /run/systemd/nspawn: ours vanish with us. */
        (void) mkdir("/run/systemd", 0755);
        (void) mkdir("/run/systemd/nspawn", 0755);
        (void) mount("tmpfs", "/run/systemd/nspawn", "tmpfs", 0, "mode=0755");

        /* sd-event opens its timerfd with the first timer and keeps it: open it before counting. */
        {
                sd_event_source *t = NULL;
                (void) sd_event_add_time_relative(event, &t, CLOCK_MONOTONIC, 1000, 0, NULL, NULL);
                sd_event_source_disable_unref(t);
        }
        n_fds = count_fds();
        TEST(preflight);
        alpha = boot_alpha();
        if (alpha) {
                TEST(basics, alpha);
                TEST(stdin, alpha);
                TEST(no_such_program, alpha);
                TEST(files_and_services, alpha);
                TEST(shared, alpha);
                TEST(binds, alpha);
                TEST(timeout, alpha);
                TEST(grace, alpha);
                TEST(cancel, alpha);
                TEST(big_output, alpha);
                TEST(latency, alpha);
                TEST(reboot, alpha);
                TEST(shutdown, alpha);
                node_free(alpha);
                if (wanted("reboot"))
                        TEST(reuse);
        }
        TEST(services_node);
        TEST(boot_failure);
        TEST(boot_timeout);
        TEST(bad_file);
        TEST(parallel);
        TEST(ready_median);

        run_for(0.2);
        check(count_processes(true) == 1, "nothing we started survives (%u processes in our PID namespace)",
              count_processes(false));
        check(count_mounts_under(tmp_dir) == 0, "no mount under %s survives", tmp_dir);
        check(count_fds() == n_fds, "no file descriptor leaked (%u open, %u at the start)", count_fds(), n_fds);
        nftw(tmp_dir, rm_one, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
        sd_event_unref(event);

        printf("%u passed, %u failed\n", n_passed, n_failed);
        fflush(stdout);
        return n_failed == 0 && n_passed > 0 ? 0 : 1;
}

int main(void) {
        pid_t pid;
        int st;

        if (geteuid() != 0) {
                fprintf(stderr, "container_selftest: needs root (it boots systemd-nspawn containers)\n");
                return 77;
        }
        /* Everything we start lives in these namespaces and dies with our child. */
        if (unshare(CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET) < 0) {
                fprintf(stderr, "container_selftest: unshare: %m\n");
                return 2;
        }
        pid = fork();
        if (pid < 0)
                return 2;
        if (pid == 0) {
                if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
                    mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0) {
                        fprintf(stderr, "container_selftest: cannot set up namespaces: %m\n");
                        _exit(2);
                }
                /* exit(), not _exit(): a sanitizer's leak check runs here, in the namespaces. */
                exit(run_tests());
        }
        while (waitpid(pid, &st, 0) < 0)
                if (errno != EINTR)
                        return 2;
        /* _exit(): nothing of ours may run here, where no process can be started any more. */
        _exit(WIFEXITED(st) ? WEXITSTATUS(st) : 2);
}
