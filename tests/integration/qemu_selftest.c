/* qemu_selftest.c: boots the test VM of tests/vm/mkinitrd.sh under TCG through qemu.c and checks what
 * a test author relies on: the backdoor handshake, command output and status, QMP, screendump,
 * sendkey, a tap NIC, reboot, poweroff, crash, a KVM request falling back to TCG; prints timings.
 * Root only. Runs in its own mount, PID and network namespaces, so nothing it starts survives it.
 *
 * Usage: qemu_selftest [CACHE_DIR]   (default /var/cache/moonrig-vm; run tests/vm/mkinitrd.sh
 * CACHE_DIR first). Four boots and a reboot, about 30 s on 2 cores. */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include "qemu.h"
#include "machine.h"
#include "util.h"
#include "selftest.h"

#define SEC 1000000ULL
#define APPEND "console=tty0 console=ttyS0 panic=-1 quiet"
#define GUEST_MAC "52:54:00:12:34:56"

uint64_t now_usec(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * SEC + ts.tv_nsec / 1000;
}

static sd_event *event;
static char tmp_dir[] = "/tmp/moonrig-qtest-XXXXXX";
static char kernel[PATH_MAX], initrd[PATH_MAX];

static int cmp_u64(const void *a, const void *b) {
        uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;
        return x < y ? -1 : x > y;
}

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

/* ---- a VM ---- */

typedef struct Vm {
        Qemu *q;
        unsigned n_ready, n_exit, n_resets, n_notices;
        int ready_error, exit_status;
        char *ready_message;
        uint64_t started, ready_at;
        char *console;
        size_t console_len;
} Vm;

static void on_ready(Machine *m, int error, const char *message) {
        Vm *vm = machine_userdata(m);

        vm->n_ready++;
        vm->ready_error = error;
        vm->ready_at = now_usec();
        free(vm->ready_message);
        vm->ready_message = message ? strdup(message) : NULL;
}

static void on_exit_(Machine *m, int status) {
        Vm *vm = machine_userdata(m);

        vm->n_exit++;
        vm->exit_status = status;
}

static void on_line(Machine *m, const char *line, size_t len) {
        Vm *vm = machine_userdata(m);
        char *p = realloc(vm->console, vm->console_len + len + 2);

        if (getenv("DEBUG_CONSOLE"))
                note("%.3f %s console: %.*s", (double) now_usec() / SEC, machine_name(m), (int) len, line);
        if (!p)
                return;
        memcpy(p + vm->console_len, line, len);
        vm->console_len += len;
        p[vm->console_len++] = '\n';
        p[vm->console_len] = '\0';
        vm->console = p;
}

static void on_event(Machine *m, const char *name, json_t *data _unused_, json_t *msg _unused_) {
        Vm *vm = machine_userdata(m);

        if (getenv("DEBUG_CONSOLE"))
                note("%.3f %s event: %s", (double) now_usec() / SEC, machine_name(m), name);
        if (streq(name, "RESET"))
                vm->n_resets++;
}

static void on_notice(Machine *m, const char *message) {
        Vm *vm = machine_userdata(m);

        vm->n_notices++;
        note("notice: %s", message);
}

static const MachineCallbacks callbacks = {
        .on_ready = on_ready,
        .on_exit = on_exit_,
        .on_console_line = on_line,
        .on_qmp_event = on_event,
        .on_notice = on_notice,
};

static Vm *vm_new(QemuConfig *cfg) {
        Vm *vm = calloc(1, sizeof *vm);
        char state[PATH_MAX];
        int r;

        snprintf(state, sizeof state, "%s/%s", tmp_dir, cfg->name);
        (void) mkdir(state, 0700);
        cfg->state_dir = state;
        r = qemu_new(event, cfg, &callbacks, vm, &vm->q);
        if (r < 0) {
                check(false, "qemu_new %s: %s", cfg->name, strerror(-r));
                free(vm);
                return NULL;
        }
        return vm;
}

static bool vm_wait_ready(Vm *vm, unsigned n, double timeout_s) {
        while (vm->n_ready < n)
                if (!run_until((bool[]) { false }, 0.05) && now_usec() > vm->started + (uint64_t) (timeout_s * SEC))
                        return false;
        if (vm->ready_error < 0)
                note("%s", vm->ready_message ?: "(no message)");
        return vm->ready_error == 0;
}

static bool vm_wait_exit(Vm *vm, double timeout_s) {
        uint64_t end = now_usec() + (uint64_t) (timeout_s * SEC);

        while (vm->n_exit == 0 && now_usec() < end)
                run_for(0.05);
        return vm->n_exit > 0;
}

static void vm_free(Vm *vm) {
        if (!vm)
                return;
        qemu_free(vm->q);
        free(vm->ready_message);
        free(vm->console);
        free(vm);
}

static bool console_has(Vm *vm, const char *s) {
        return vm->console && strstr(vm->console, s);
}

/* ---- commands ---- */

typedef struct Run {
        bool done;
        int status, error;
        char *out;
        size_t out_len;
        uint64_t usec;
} Run;

static void on_run_done(Qemu *q _unused_, QemuExecResult *r, void *userdata) {
        Run *x = userdata;

        x->status = r->status;
        x->error = r->error;
        x->out = TAKE_PTR(r->out);
        x->out_len = r->out_len;
        x->usec = now_usec() - x->usec;
        x->done = true;
}

static int run_start(Vm *vm, Run *x, const char *cmd, uint64_t timeout_usec, unsigned flags, QemuExecJob **job) {
        *x = (Run) { .usec = now_usec(), .status = -1 };
        return qemu_exec(vm->q, cmd, timeout_usec, flags, on_run_done, x, job);
}

static Run run(Vm *vm, const char *cmd) {
        Run x;
        int r = run_start(vm, &x, cmd, 0, 0, NULL);

        if (r < 0)
                x.error = r;
        else if (!run_until(&x.done, 60))
                x.error = -ETIME;
        return x;
}

static bool run_is(Vm *vm, const char *cmd, int status, const char *out) {
        Run x = run(vm, cmd);
        bool ok = x.error == 0 && x.status == status && x.out && x.out_len == strlen(out) && streq(x.out, out);

        check(ok, "`%s` gives status %d and %zu bytes (got error %d, status %d, \"%.60s\")", cmd, status, strlen(out),
              x.error, x.status, x.out ?: "");
        free(x.out);
        return ok;
}

/* ---- QMP ---- */

typedef struct Call {
        bool done;
        int error;
        json_t *result;
        char *desc;
} Call;

static void on_call_done(Qemu *q _unused_, int error, json_t *result, const char *desc, void *userdata) {
        Call *c = userdata;

        c->error = error;
        c->result = json_incref(result);
        c->desc = desc ? strdup(desc) : NULL;
        c->done = true;
}

static void call_free(Call *c) {
        json_decref(c->result);
        free(c->desc);
        *c = (Call) {};
}

static Call qmp_call(Vm *vm, const char *cmd, json_t *args) {
        Call c = {};
        int r = qemu_qmp(vm->q, cmd, args, on_call_done, &c);

        if (r < 0)
                c.error = r;
        else if (!run_until(&c.done, 30))
                c.error = -ETIME;
        return c;
}

static bool file_starts_with(const char *path, const void *magic, size_t len, off_t *ret_size) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        char buf[64];
        struct stat st;

        if (fd < 0 || fstat(fd, &st) < 0 || len > sizeof buf || read(fd, buf, len) != (ssize_t) len)
                return false;
        *ret_size = st.st_size;
        return memcmp(buf, magic, len) == 0;
}

/* ---- the tap, in our network namespace ---- */

static int tap_open(const char *name) {
        struct ifreq ifr = { .ifr_flags = IFF_TAP | IFF_NO_PI };
        int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
        char cmd[256];

        if (fd < 0)
                return -errno;
        snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", name);
        if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
                close(fd);
                return -errno;
        }
        snprintf(cmd, sizeof cmd, "ip addr add 10.0.2.1/24 dev %s && ip link set %s up && ip link set lo up", name, name);
        if (system(cmd) != 0) {
                close(fd);
                return -EIO;
        }
        return fd;
}

/* ---- the tests ---- */

static void test_main_vm(void) {
        int tap = tap_open("mrtap0");
        QemuNic nic = { .tap_fd = tap, .mac = GUEST_MAC };
        QemuConfig cfg = {
                .name = "vm1", .kernel = kernel, .initrd = initrd, .append = APPEND,
                .allow_reboot = true, .nics = &nic, .n_nics = tap >= 0 ? 1 : 0,
        };
        Vm *vm;
        Run a, b, c, x;
        Call call;
        uint64_t rtt[10], t;
        off_t size;
        pid_t pid;
        bool ok;
        int r;

        check(tap >= 0, "a tap in our network namespace (%s)", tap < 0 ? strerror(-tap) : "mrtap0");
        vm = vm_new(&cfg);
        if (tap >= 0)
                close(tap);   /* qemu_new keeps its own */
        if (!vm)
                return;

        /* A command given before the shell answers waits for it. */
        vm->started = now_usec();
        r = machine_start(qemu_machine(vm->q));
        if (!check(r == 0, "qemu_start: %s", strerror(-r)))
                goto out;
        check(machine_start(qemu_machine(vm->q)) == -EBUSY, "a second qemu_start is -EBUSY");
        r = run_start(vm, &a, "echo early", 0, 0, NULL);
        check(r == 0 && !qemu_is_connected(vm->q), "qemu_exec before the handshake is queued");
        if (!check(vm_wait_ready(vm, 1, 120), "backdoor handshake"))
                goto out;
        note("QEMU start to handshake: %.2f s (TCG)", (double) (vm->ready_at - vm->started) / SEC);
        check(qemu_is_connected(vm->q) && !qemu_uses_kvm(vm->q), "connected, under TCG");
        run_until(&a.done, 30);
        check(a.done && a.error == 0 && a.status == 0 && a.out && streq(a.out, "early\n"),
              "the early command ran after the handshake");
        free(a.out);

        run_is(vm, "echo hello", 0, "hello\n");
        run_is(vm, "exit 3", 3, "");
        run_is(vm, "echo -n partial; false; echo unreachable", 1, "partial");
        run_is(vm, "printf abc", 0, "abc");
        run_is(vm, "echo 'a b'\necho \"it's\" $((6 * 7))", 0, "a b\nit's 42\n");
        run_is(vm, "cat /sys/class/net/eth0/address", 0, GUEST_MAC "\n");
        run_is(vm, "echo $USER $HOME; pwd", 0, "root /root\n/tmp\n");

        /* Binary output: every byte value, NUL included. */
        x = run(vm, "for i in $(seq 0 255); do printf \"\\\\$(printf %03o $i)\"; done");
        {
                ok = x.error == 0 && x.status == 0 && x.out_len == 256;
                for (size_t i = 0; ok && i < 256; i++)
                        ok = (unsigned char) x.out[i] == i;
                check(ok, "binary output: bytes 0 to 255 in order (got %zu bytes, status %d)", x.out_len, x.status);
        }
        free(x.out);

        x = run(vm, "head -c 1000000 /dev/zero | tr '\\0' x");
        {
                ok = x.error == 0 && x.status == 0 && x.out_len == 1000000;
                for (size_t i = 0; ok && i < x.out_len; i++)
                        ok = x.out[i] == 'x';
                check(ok, "1 MB of output arrives whole (%zu bytes in %.2f s)", x.out_len, (double) x.usec / SEC);
        }
        free(x.out);

        /* stderr goes to the serial console, not into the output. */
        run_is(vm, "echo to-stderr-1234 >&2; echo out", 0, "out\n");
        for (uint64_t end = now_usec() + 30 * SEC; !console_has(vm, "to-stderr-1234") && now_usec() < end;)
                run_for(0.05);
        check(console_has(vm, "to-stderr-1234"), "a command's stderr shows on the serial console");

        /* The guest-side timeout: coreutils' timeout exits 124. */
        r = run_start(vm, &x, "sleep 5; echo never", 1 * SEC, 0, NULL);
        run_until(&x.done, 30);
        check(r == 0 && x.done && x.error == 0 && x.status == 124 && x.out_len == 0,
              "timeout 1.0 on `sleep 5` gives status 124 (got %d after %.2f s)", x.status, (double) x.usec / SEC);
        free(x.out);

        /* Queued commands run in order; a cancelled one keeps the protocol in step. */
        {
                QemuExecJob *job;
                run_start(vm, &a, "sleep 0.3; echo first", 0, 0, NULL);
                run_start(vm, &b, "echo cancelled", 0, 0, &job);
                run_start(vm, &c, "echo third; exit 7", 0, 0, NULL);
                qemu_exec_cancel(job);
                run_until(&c.done, 30);
                check(a.done && a.error == 0 && a.status == 0 && a.out && streq(a.out, "first\n") && c.done &&
                              c.error == 0 && c.status == 7 && c.out && streq(c.out, "third\n") && a.usec < c.usec &&
                              !b.done,
                      "three queued commands run in order; the cancelled one's callback never runs");
        }
        free(a.out);
        free(c.out);

        /* check_return=False: no status asked; the next command still works. */
        r = run_start(vm, &x, "echo nostatus; exit 5", 0, QEMU_EXEC_NO_STATUS, NULL);
        run_until(&x.done, 30);
        check(r == 0 && x.done && x.status == -1 && x.out && streq(x.out, "nostatus\n"),
              "QEMU_EXEC_NO_STATUS: status -1, output \"nostatus\\n\"");
        free(x.out);
        run_is(vm, "echo in-step", 0, "in-step\n");

        for (size_t i = 0; i < ELEMENTSOF(rtt); i++) {
                x = run(vm, "true");
                rtt[i] = x.error == 0 && x.status == 0 ? x.usec : UINT64_MAX;
                free(x.out);
        }
        qsort(rtt, ELEMENTSOF(rtt), sizeof rtt[0], cmp_u64);
        check(rtt[ELEMENTSOF(rtt) - 1] != UINT64_MAX, "10 × `true`");
        note("command round trip (`true`): median %.1f ms, min %.1f ms, max %.1f ms", rtt[5] / 1000.0,
             rtt[0] / 1000.0, rtt[ELEMENTSOF(rtt) - 1] / 1000.0);

        /* The tap NIC: the guest reaches our end of it. */
        run_is(vm, "ip addr add 10.0.2.15/24 dev eth0 && ip link set eth0 up && ping -c 1 -W 5 10.0.2.1 >/dev/null && echo reached",
               0, "reached\n");

        /* QMP. */
        call = qmp_call(vm, "query-status", NULL);
        check(call.error == 0 && json_is_true(json_object_get(call.result, "running")) &&
                      streq(json_string_value(json_object_get(call.result, "status")) ?: "", "running"),
              "QMP query-status: running");
        call_free(&call);
        call = qmp_call(vm, "query-kvm", NULL);
        check(call.error == 0 && json_is_false(json_object_get(call.result, "enabled")), "QMP query-kvm: not enabled");
        call_free(&call);
        call = qmp_call(vm, "no-such-command", NULL);
        check(call.error == -EIO && call.desc && strstr(call.desc, "no-such-command"),
              "an unknown QMP command: -EIO with QEMU's reason (%s)", call.desc ?: "none");
        call_free(&call);
        {
                Call h = {};
                r = qemu_hmp(vm->q, "info status", on_call_done, &h);
                run_until(&h.done, 30);
                check(r == 0 && h.error == 0 && json_is_string(h.result) &&
                              strstr(json_string_value(h.result), "VM status: running"),
                      "HMP info status through QMP");
                call_free(&h);
        }

        /* Screendumps: PNG and PPM of the VGA text console. */
        {
                char png[PATH_MAX], ppm[PATH_MAX];
                Call s1 = {}, s2 = {};

                snprintf(png, sizeof png, "%s/screen.png", tmp_dir);
                snprintf(ppm, sizeof ppm, "%s/screen.ppm", tmp_dir);
                qemu_screendump(vm->q, png, on_call_done, &s1);
                qemu_screendump(vm->q, ppm, on_call_done, &s2);
                run_until(&s2.done, 30);
                ok = s1.error == 0 && file_starts_with(png, "\x89PNG\r\n\x1a\n", 8, &size) && size > 100;
                check(ok, "screendump to PNG (%lld bytes)", ok ? (long long) size : -1LL);
                ok = s2.error == 0 && file_starts_with(ppm, "P6\n720 400\n255\n", 15, &size) &&
                     size == 15 + 720 * 400 * 3;
                check(ok, "screendump to PPM: 720x400 (%lld bytes)", ok ? (long long) size : -1LL);
                call_free(&s1);
                call_free(&s2);
        }

        /* sendkey: typed on tty1, where a shell reads the keyboard. */
        {
                const char *typed = "echo Typed-It >/tmp/typed\n";

                ok = true;

                t = now_usec();
                for (const char *p = typed; *p && ok; p++) {
                        char k[2] = { *p, 0 };
                        const char *key = qemu_key_for_char(*p) ?: k;
                        Call s = {};

                        ok = qemu_send_key(vm->q, key, on_call_done, &s) == 0 && run_until(&s.done, 10) && s.error == 0;
                        call_free(&s);
                }
                check(ok, "sendkey: %zu keys accepted (%.2f s)", strlen(typed), (double) (now_usec() - t) / SEC);
                for (int i = 0; i < 50; i++) {
                        x = run(vm, "cat /tmp/typed 2>/dev/null || true");
                        ok = x.out && streq(x.out, "Typed-It\n");
                        free(x.out);
                        if (ok)
                                break;
                        run_for(0.1);
                }
                check(ok, "the keys reached the shell on tty1 (it wrote /tmp/typed)");
        }

        /* Reboot: the command running at the time fails, the next one waits for the new shell. */
        t = now_usec();
        run_start(vm, &a, "sleep 10", 0, 0, NULL);
        run_for(0.2);
        r = machine_reboot(qemu_machine(vm->q));
        if (getenv("DEBUG_CONSOLE"))
                note("%.3f reboot requested", (double) now_usec() / SEC);
        run_start(vm, &b, "echo after-reboot", 0, 0, NULL);
        vm->started = now_usec();
        ok = r == 0 && vm_wait_ready(vm, 2, 120) && vm->n_resets >= 1;
        check(ok, "reboot: RESET (%u), then a new handshake (on_ready %u times)", vm->n_resets, vm->n_ready);
        note("reboot to handshake: %.2f s", (double) (vm->ready_at - t) / SEC);
        run_until(&b.done, 30);
        check(a.done && a.error == -ECONNRESET, "the command running at the reboot fails with ECONNRESET (%d)", a.error);
        check(b.done && b.error == 0 && b.out && streq(b.out, "after-reboot\n"), "the command given after it runs on the new boot");
        free(a.out);
        free(b.out);
        run_is(vm, "test -e /tmp/typed || echo gone", 0, "gone\n");

        /* Poweroff. */
        pid = qemu_pid(vm->q);
        run_start(vm, &a, "sleep 10", 0, 0, NULL);
        t = now_usec();
        r = machine_poweroff(qemu_machine(vm->q));
        ok = r == 0 && vm_wait_exit(vm, 30) && vm->exit_status == 0;
        check(ok, "poweroff: QEMU exits with status 0 (%d)", vm->exit_status);
        note("poweroff to QEMU's exit: %.2f s", (double) (now_usec() - t) / SEC);
        run_until(&a.done, 1);
        check(a.done && a.error == -ECANCELED, "a command pending at the poweroff fails with ECANCELED (%d)", a.error);
        free(a.out);
        check(!qemu_is_up(vm->q) && kill(pid, 0) < 0 && errno == ESRCH, "QEMU (pid %d) is gone", (int) pid);
        check(vm->n_ready == 2 && vm->n_exit == 1, "on_ready twice, on_exit once");
        r = run_start(vm, &a, "true", 0, 0, NULL);
        check(r == -ESRCH, "qemu_exec on a stopped VM: -ESRCH");
out:
        vm_free(vm);
}

static void test_kvm_fallback_and_crash(void) {
        QemuConfig cfg = {
                .name = "vm2", .kernel = kernel, .initrd = initrd, .append = APPEND,
                .accel = QEMU_ACCEL_KVM_OR_TCG, .kvm_probe_usec = 3 * SEC,
        };
        Vm *vm = vm_new(&cfg);
        Run a;
        Call call;
        uint64_t t;
        pid_t pid;
        bool ok;
        int r;

        if (!vm)
                return;
        vm->started = now_usec();
        r = machine_start(qemu_machine(vm->q));
        if (!check(r == 0 && vm_wait_ready(vm, 1, 120), "KVM or TCG: handshake"))
                goto out;
        note("KVM or TCG: handshake after %.2f s, %s, %u notice(s)", (double) (vm->ready_at - vm->started) / SEC,
             qemu_uses_kvm(vm->q) ? "under KVM" : "under TCG", vm->n_notices);
        call = qmp_call(vm, "query-kvm", NULL);
        check(call.error == 0 && json_is_boolean(json_object_get(call.result, "enabled")) &&
                      json_is_true(json_object_get(call.result, "enabled")) == qemu_uses_kvm(vm->q),
              "query-kvm agrees with qemu_uses_kvm (%s)", qemu_uses_kvm(vm->q) ? "kvm" : "tcg");
        call_free(&call);
        check(qemu_uses_kvm(vm->q) || vm->n_notices >= 1, "falling back to TCG is told (on_notice)");
        run_is(vm, "echo ok", 0, "ok\n");

        /* Crash in the middle of a command. */
        pid = qemu_pid(vm->q);
        run_start(vm, &a, "sleep 30", 0, 0, NULL);
        run_for(0.2);
        t = now_usec();
        machine_crash(qemu_machine(vm->q));
        ok = vm_wait_exit(vm, 10);
        check(ok, "crash: QEMU exits (status %d, %.2f s)", vm->exit_status, (double) (now_usec() - t) / SEC);
        run_until(&a.done, 1);
        check(a.done && a.error == -ECANCELED, "the command running at the crash fails with ECANCELED (%d)", a.error);
        free(a.out);
        check(kill(pid, 0) < 0 && errno == ESRCH, "QEMU (pid %d) is gone", (int) pid);
out:
        vm_free(vm);
}

static void test_boot_failure(void) {
        QemuConfig cfg = { .name = "broken", .kernel = "/nonexistent/vmlinuz", .initrd = initrd };
        Vm *vm = vm_new(&cfg);
        bool ok;
        int r;

        if (!vm)
                return;
        vm->started = now_usec();
        r = machine_start(qemu_machine(vm->q));
        check(r == 0 && !vm_wait_ready(vm, 1, 30) && vm->ready_error == -ECHILD && vm->ready_message &&
                      strstr(vm->ready_message, "node broken:") && strstr(vm->ready_message, "/nonexistent/vmlinuz"),
              "a kernel that is not there: on_ready -ECHILD naming the node and QEMU's complaint");
        ok = vm_wait_exit(vm, 10) && vm->exit_status == 1;
        check(ok, "then on_exit with QEMU's status 1 (%d)", vm->exit_status);
        vm_free(vm);
}

static void test_reboot_without_allow(void) {
        QemuConfig cfg = { .name = "vm4", .kernel = kernel, .initrd = initrd, .append = APPEND };
        Vm *vm = vm_new(&cfg);
        bool ok;
        int r;

        if (!vm)
                return;
        vm->started = now_usec();
        r = machine_start(qemu_machine(vm->q));
        if (!check(r == 0 && vm_wait_ready(vm, 1, 120), "vm4: handshake"))
                goto out;
        r = machine_reboot(qemu_machine(vm->q));
        vm->started = now_usec();
        ok = r == 0 && !vm_wait_ready(vm, 2, 60) && vm->ready_error == -ECHILD && vm->ready_message &&
             strstr(vm->ready_message, "the guest rebooted, and the VM runs without allow_reboot");
        check(ok, "reboot without allow_reboot: QEMU exits, on_ready says why");
        ok = vm_wait_exit(vm, 10) && vm->exit_status == 0;
        check(ok, "then on_exit with status 0 (%d)", vm->exit_status);
out:
        vm_free(vm);
}

static void test_free_running(void) {
        QemuConfig cfg = { .name = "vm3", .kernel = kernel, .initrd = initrd, .append = APPEND };
        Vm *vm = vm_new(&cfg);
        pid_t pid;

        if (!vm)
                return;
        vm->started = now_usec();
        if (machine_start(qemu_machine(vm->q)) < 0)
                return;
        run_for(0.5);
        pid = qemu_pid(vm->q);
        vm_free(vm);
        check(pid > 0 && kill(pid, 0) < 0 && errno == ESRCH, "qemu_free of a booting VM kills and reaps QEMU");
}

static int rm_rf(const char *path) {
        char cmd[PATH_MAX + 16];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
        return system(cmd);
}

static unsigned count_processes(void) {
        _cleanup_closedir_ DIR *d = opendir("/proc");
        struct dirent *de;
        unsigned n = 0;

        while (d && (de = readdir(d)))
                if (de->d_name[0] >= '1' && de->d_name[0] <= '9')
                        n++;
        return n;
}

static int run_tests(void) {
        sigset_t mask;

        sigemptyset(&mask);
        sigaddset(&mask, SIGCHLD);
        sigprocmask(SIG_BLOCK, &mask, NULL);
        if (!mkdtemp(tmp_dir) || sd_event_default(&event) < 0) {
                fprintf(stderr, "qemu_selftest: setup failed: %m\n");
                return 2;
        }

        /* ONLY=main (or failure, kvm, reboot, free) runs one group, to look into it. */
        if (!getenv("ONLY") || streq(getenv("ONLY"), "failure"))
                test_boot_failure();
        if (!getenv("ONLY") || streq(getenv("ONLY"), "main"))
                test_main_vm();
        if (!getenv("ONLY") || streq(getenv("ONLY"), "kvm"))
                test_kvm_fallback_and_crash();
        if (!getenv("ONLY") || streq(getenv("ONLY"), "reboot"))
                test_reboot_without_allow();
        if (!getenv("ONLY") || streq(getenv("ONLY"), "free"))
                test_free_running();

        check(count_processes() == 1, "nothing of ours runs any more (%u processes in our PID namespace)",
              count_processes());
        sd_event_unref(event);
        rm_rf(tmp_dir);
        check(access(tmp_dir, F_OK) < 0, "the temporary directory is gone");
        return selftest_finish();
}

int main(int argc, char **argv) {
        const char *cache = argc > 1 ? argv[1] : "/var/cache/moonrig-vm";
        pid_t pid;
        int st;

        if (geteuid() != 0) {
                skip_all("root", "qemu_selftest needs root (a tap device and namespaces)");
        }
        snprintf(kernel, sizeof kernel, "%s/vmlinuz", cache);
        snprintf(initrd, sizeof initrd, "%s/initrd.img", cache);
        if (access(kernel, R_OK) < 0 || access(initrd, R_OK) < 0) {
                char why[PATH_MAX * 2 + 64];
                snprintf(why, sizeof why, "no test VM in %s (run tests/vm/mkinitrd.sh %s first)", cache, cache);
                skip_all("vm-image", why);
        }
        if (unshare(CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET) < 0) {
                fprintf(stderr, "qemu_selftest: unshare: %m\n");
                return 2;
        }
        pid = fork();
        if (pid < 0)
                return 2;
        if (pid == 0) {
                if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
                    mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0) {
                        fprintf(stderr, "qemu_selftest: cannot set up namespaces: %m\n");
                        _exit(2);
                }
                exit(run_tests());
        }
        while (waitpid(pid, &st, 0) < 0)
                if (errno != EINTR)
                        return 2;
        _exit(WIFEXITED(st) ? WEXITSTATUS(st) : 2);
}
