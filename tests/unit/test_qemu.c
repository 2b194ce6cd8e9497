/* test_qemu.c: the QEMU backend without a VM: its command line, the key map, QMP messages (the
 * backdoor framing has test_backdoor.c); then the
 * QMP client against a scripted peer, and the whole backdoor protocol against a fake QEMU (a bash
 * script that serves the shell on fd 3). No root needed. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <cmocka.h>

#include "qemu.h"
#include "machine.h"
#include "qmp.h"
#include "util.h"

#define SEC 1000000ULL

uint64_t now_usec(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * SEC + ts.tv_nsec / 1000;
}

static void assert_argv(char **v, const char *const *expected) {
        size_t i = 0;

        assert_non_null(v);
        for (; expected[i]; i++) {
                assert_non_null(v[i]);
                assert_string_equal(v[i], expected[i]);
        }
        assert_null(v[i]);
}

/* ---- the command line ---- */

static void test_argv_minimal(void **state) {
        QemuConfig cfg = { .name = "vm", .state_dir = "/s", .kernel = "/k" };
        static const char *const expected[] = {
                "qemu-system-x86_64", "-name", "vm", "-accel", "tcg", "-m", "512", "-smp", "1", "-kernel", "/k",
                "-nic", "none", "-parallel", "none", "-display", "none", "-monitor", "none",
                "-chardev", "socket,id=shell,fd=3", "-device", "virtio-serial", "-device", "virtconsole,chardev=shell",
                "-chardev", "socket,id=qmp,fd=4", "-mon", "chardev=qmp,mode=control", "-device", "virtio-rng-pci",
                "-serial", "stdio", "-no-reboot", NULL,
        };
        char **v = qemu_argv(&cfg, false, 3, 4, 5);

        (void) state;
        assert_argv(v, expected);
        strv_free(v);
}

static void test_argv_full(void **state) {
        char *drives[] = { (char *) "file=/d.qcow2,if=virtio", (char *) "file=/e.raw,format=raw", NULL };
        char *extra[] = { (char *) "-cpu", (char *) "max", NULL };
        QemuNic nics[] = { { .tap_fd = 10, .mac = "52:54:00:12:01:02" }, { .tap_fd = 11, .model = "e1000" } };
        QemuConfig cfg = {
                .name = "server", .state_dir = "/s", .qemu = "/usr/bin/qemu-system-x86_64", .kernel = "/k",
                .initrd = "/i", .append = "console=ttyS0 quiet", .drives = drives, .memory_mb = 1024, .cpus = 2,
                .allow_reboot = true, .nics = nics, .n_nics = 2, .extra_args = extra,
        };
        static const char *const expected[] = {
                "/usr/bin/qemu-system-x86_64", "-name", "server", "-accel", "kvm", "-m", "1024", "-smp", "2",
                "-kernel", "/k", "-initrd", "/i", "-append", "console=ttyS0 quiet",
                "-drive", "file=/d.qcow2,if=virtio", "-drive", "file=/e.raw,format=raw",
                "-nic", "none", "-parallel", "none", "-display", "none", "-monitor", "none",
                "-chardev", "socket,id=shell,fd=7", "-device", "virtio-serial", "-device", "virtconsole,chardev=shell",
                "-chardev", "socket,id=qmp,fd=8", "-mon", "chardev=qmp,mode=control", "-device", "virtio-rng-pci",
                "-serial", "stdio",
                "-netdev", "tap,id=moonrig-nic0,fd=20", "-device", "virtio-net-pci,netdev=moonrig-nic0,mac=52:54:00:12:01:02",
                "-netdev", "tap,id=moonrig-nic1,fd=21", "-device", "e1000,netdev=moonrig-nic1",
                "-cpu", "max", NULL,
        };
        char **v = qemu_argv(&cfg, true, 7, 8, 20);

        (void) state;
        assert_argv(v, expected);
        strv_free(v);
}

static void test_argv_start_script(void **state) {
        QemuNic nic = { .tap_fd = 9 };
        QemuConfig cfg = {
                .name = "machine", .state_dir = "/s", .start_script = "/nix/store/abc-nixos-vm/bin/run-machine-vm",
                .memory_mb = 2048, .nics = &nic, .n_nics = 1,
        };
        /* The script brings kernel, memory and accelerator: none of ours. */
        static const char *const expected[] = {
                "/nix/store/abc-nixos-vm/bin/run-machine-vm", "-display", "none", "-monitor", "none",
                "-chardev", "socket,id=shell,fd=3", "-device", "virtio-serial", "-device", "virtconsole,chardev=shell",
                "-chardev", "socket,id=qmp,fd=4", "-mon", "chardev=qmp,mode=control", "-device", "virtio-rng-pci",
                "-serial", "stdio", "-no-reboot",
                "-netdev", "tap,id=moonrig-nic0,fd=5", "-device", "virtio-net-pci,netdev=moonrig-nic0", NULL,
        };
        char **v = qemu_argv(&cfg, true, 3, 4, 5);

        (void) state;
        assert_argv(v, expected);
        strv_free(v);
}

static void test_key_for_char(void **state) {
        (void) state;
        assert_string_equal(qemu_key_for_char('A'), "shift-a");
        assert_string_equal(qemu_key_for_char('Z'), "shift-z");
        assert_string_equal(qemu_key_for_char('-'), "0x0C");
        assert_string_equal(qemu_key_for_char('_'), "shift-0x0C");
        assert_string_equal(qemu_key_for_char('!'), "shift-0x02");
        assert_string_equal(qemu_key_for_char('('), "shift-0x0A");
        assert_string_equal(qemu_key_for_char(')'), "shift-0x0B");
        assert_string_equal(qemu_key_for_char('"'), "shift-0x28");
        assert_string_equal(qemu_key_for_char('\\'), "0x2B");
        assert_string_equal(qemu_key_for_char('?'), "shift-0x35");
        assert_string_equal(qemu_key_for_char(' '), "spc");
        assert_string_equal(qemu_key_for_char('\n'), "ret");
        assert_string_equal(qemu_key_for_char('\t'), "tab");
        assert_null(qemu_key_for_char('a'));
        assert_null(qemu_key_for_char('5'));
        assert_null(qemu_key_for_char('\0'));
}

/* ---- QMP messages ---- */

static void test_qmp_parse(void **state) {
        static const char greeting[] = "{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 22, \"minor\": 2, \"major\": 7}, "
                                       "\"package\": \"Debian\"}, \"capabilities\": [\"oob\"]}}\r\n";
        static const char ret[] = "{\"return\": {}, \"id\": 7}\r\n";
        static const char ret_list[] = "{\"return\": [{\"a\": 1}]}";
        static const char err[] = "{\"id\": 3, \"error\": {\"class\": \"GenericError\", \"desc\": \"boom\"}}\r\n";
        static const char event[] = "{\"timestamp\": {\"seconds\": 1, \"microseconds\": 2}, \"event\": \"SHUTDOWN\", "
                                    "\"data\": {\"guest\": true, \"reason\": \"guest-shutdown\"}}\r\n";
        static const char bare_event[] = "{\"event\": \"RESET\", \"timestamp\": {}}";
        QmpMessage m;

        (void) state;
        assert_int_equal(qmp_message_parse(greeting, strlen(greeting), &m), 0);
        assert_int_equal(m.type, QMP_MESSAGE_GREETING);
        assert_int_equal(json_integer_value(json_object_get(json_object_get(json_object_get(m.value, "version"), "qemu"),
                                                            "major")),
                         7);
        assert_false(m.has_id);
        qmp_message_done(&m);

        assert_int_equal(qmp_message_parse(ret, strlen(ret), &m), 0);
        assert_int_equal(m.type, QMP_MESSAGE_RETURN);
        assert_true(m.has_id);
        assert_int_equal(m.id, 7);
        assert_true(json_is_object(m.value));
        assert_int_equal(json_object_size(m.value), 0);
        qmp_message_done(&m);

        assert_int_equal(qmp_message_parse(ret_list, strlen(ret_list), &m), 0);
        assert_int_equal(m.type, QMP_MESSAGE_RETURN);
        assert_false(m.has_id);
        assert_int_equal(json_array_size(m.value), 1);
        qmp_message_done(&m);

        assert_int_equal(qmp_message_parse(err, strlen(err), &m), 0);
        assert_int_equal(m.type, QMP_MESSAGE_ERROR);
        assert_string_equal(m.error_class, "GenericError");
        assert_string_equal(m.error_desc, "boom");
        assert_int_equal(m.id, 3);
        qmp_message_done(&m);

        assert_int_equal(qmp_message_parse("{\"error\": {}}", 13, &m), 0);
        assert_string_equal(m.error_class, "");
        assert_string_equal(m.error_desc, "");
        qmp_message_done(&m);

        assert_int_equal(qmp_message_parse(event, strlen(event), &m), 0);
        assert_int_equal(m.type, QMP_MESSAGE_EVENT);
        assert_string_equal(m.event, "SHUTDOWN");
        assert_true(json_is_true(json_object_get(m.value, "guest")));
        assert_string_equal(json_string_value(json_object_get(m.value, "reason")), "guest-shutdown");
        qmp_message_done(&m);

        assert_int_equal(qmp_message_parse(bare_event, strlen(bare_event), &m), 0);
        assert_string_equal(m.event, "RESET");
        assert_null(m.value);
        qmp_message_done(&m);

        assert_int_equal(qmp_message_parse("not json", 8, &m), -EBADMSG);
        assert_null(m.root);
        assert_int_equal(qmp_message_parse("[1, 2]", 6, &m), -EBADMSG);
        assert_int_equal(qmp_message_parse("{}", 2, &m), -EBADMSG);
        assert_int_equal(qmp_message_parse("{\"event\": 5}", 12, &m), -EBADMSG);
        assert_int_equal(qmp_message_parse("{\"return\": {}} {\"return\": {}}", 29, &m), -EBADMSG);
        assert_null(m.root);
}

static void test_qmp_format(void **state) {
        json_t *args = json_pack("{s:s,s:s}", "filename", "/x.png", "format", "png");
        char *l;

        (void) state;
        l = qmp_command_format("query-status", NULL, 1);
        assert_string_equal(l, "{\"execute\":\"query-status\",\"id\":1}\n");
        free(l);
        l = qmp_command_format("screendump", args, 2);
        assert_string_equal(l, "{\"execute\":\"screendump\",\"arguments\":{\"filename\":\"/x.png\",\"format\":\"png\"},"
                               "\"id\":2}\n");
        free(l);
        json_decref(args);
}

/* ---- the QMP client against a scripted peer ---- */

static sd_event *event;

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

static void peer_send(int fd, const char *s) {
        assert_int_equal(write(fd, s, strlen(s)), (ssize_t) strlen(s));
}

static char *peer_recv_line(int fd) {
        static char buf[4096];
        size_t n = 0;

        /* The client writes from the loop: run it until a whole line is there. */
        for (int i = 0; i < 200; i++) {
                ssize_t r = recv(fd, buf + n, sizeof buf - 1 - n, MSG_DONTWAIT);
                if (r > 0)
                        n += (size_t) r;
                buf[n] = '\0';
                if (n > 0 && buf[n - 1] == '\n')
                        return buf;
                (void) sd_event_run(event, 10000);
        }
        buf[n] = '\0';
        return buf;
}

typedef struct Reply {
        bool done;
        int error;
        char *result;
        char *class, *desc;
} Reply;

static void on_reply(Qmp *q _unused_, int error, json_t *result, const char *error_class, const char *error_desc,
                     void *userdata) {
        Reply *r = userdata;

        r->done = true;
        r->error = error;
        r->result = result ? json_dumps(result, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
        r->class = error_class ? strdup(error_class) : NULL;
        r->desc = error_desc ? strdup(error_desc) : NULL;
}

static void reply_free(Reply *r) {
        free(r->result);
        free(r->class);
        free(r->desc);
}

typedef struct Client {
        unsigned ready, closed, events;
        int close_error;
        char last_event[64];
        bool got_event;
} Client;

static void c_ready(Qmp *q _unused_, int error, void *userdata) {
        Client *c = userdata;
        assert_int_equal(error, 0);
        c->ready++;
}

static void c_event(Qmp *q _unused_, const char *name, json_t *data, json_t *msg, void *userdata) {
        Client *c = userdata;

        c->events++;
        c->got_event = true;
        snprintf(c->last_event, sizeof c->last_event, "%s/%s", name,
                 json_string_value(json_object_get(data, "reason")) ?: "-");
        assert_non_null(json_object_get(msg, "timestamp"));
}

static void c_close(Qmp *q _unused_, int error, void *userdata) {
        Client *c = userdata;

        c->closed++;
        c->close_error = error;
}

static void test_qmp_client(void **state) {
        QmpCallbacks cb = { .on_ready = c_ready, .on_event = c_event, .on_close = c_close };
        Client c = {};
        Reply a = {}, b = {}, x = {};
        int sv[2], id_a, id_b;
        Qmp *q;

        (void) state;
        assert_int_equal(sd_event_new(&event), 0);
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        assert_int_equal(qmp_new(event, sv[0], &cb, &c, &q), 0);

        /* Commands before the greeting wait; nothing is sent before it. */
        id_a = qmp_execute(q, "query-status", NULL, on_reply, &a);
        assert_int_equal(id_a, 1);
        assert_false(qmp_is_ready(q));
        (void) sd_event_run(event, 20000);
        assert_int_equal(recv(sv[1], (char[8]) {}, 8, MSG_DONTWAIT), -1);

        peer_send(sv[1], "{\"QMP\": {\"version\": {}, \"capabilities\": []}}\r\n");
        assert_string_equal(peer_recv_line(sv[1]), "{\"execute\":\"qmp_capabilities\",\"id\":2}\n");
        assert_int_equal(c.ready, 0);
        peer_send(sv[1], "{\"return\": {}, \"id\": 2}\r\n");
        assert_string_equal(peer_recv_line(sv[1]), "{\"execute\":\"query-status\",\"id\":1}\n");
        assert_int_equal(c.ready, 1);
        assert_true(qmp_is_ready(q));

        id_b = qmp_execute(q, "quit", NULL, on_reply, &b);
        assert_int_equal(id_b, 3);
        assert_string_equal(peer_recv_line(sv[1]), "{\"execute\":\"quit\",\"id\":3}\n");

        /* Replies matched by id, whatever their order; events in between. */
        peer_send(sv[1], "{\"error\": {\"class\": \"GenericError\", \"desc\": \"no\"}, \"id\": 3}\r\n"
                         "{\"timestamp\": {\"seconds\": 1, \"microseconds\": 0}, \"event\": \"STOP\"}\r\n"
                         "{\"return\": {\"status\": \"running\", \"running\": true}, \"id\": 1}\r\n");
        assert_true(run_until(&a.done, 2));
        assert_true(b.done);
        assert_int_equal(a.error, 0);
        assert_string_equal(a.result, "{\"status\":\"running\",\"running\":true}");
        assert_int_equal(b.error, -EIO);
        assert_string_equal(b.class, "GenericError");
        assert_string_equal(b.desc, "no");
        assert_int_equal(c.events, 1);
        assert_string_equal(c.last_event, "STOP/-");

        /* A message split across reads. */
        c.got_event = false;
        peer_send(sv[1], "{\"timestamp\": {\"seconds\": 2, \"microseconds\": 0}, \"event\": \"SHUT");
        (void) sd_event_run(event, 20000);
        assert_int_equal(c.events, 1);
        peer_send(sv[1], "DOWN\", \"data\": {\"guest\": true, \"reason\": \"guest-shutdown\"}}\r\n");
        assert_true(run_until(&c.got_event, 2));
        assert_string_equal(c.last_event, "SHUTDOWN/guest-shutdown");

        /* A forgotten command gets no callback; one waiting when the peer closes gets ECONNRESET. */
        qmp_forget(q, qmp_execute(q, "stop", NULL, on_reply, &x));
        qmp_execute(q, "cont", NULL, on_reply, &a);
        reply_free(&a);
        a = (Reply) {};
        close(sv[1]);
        assert_true(run_until(&a.done, 2));
        assert_int_equal(a.error, -ECONNRESET);
        assert_false(x.done);
        assert_int_equal(c.closed, 1);
        assert_int_equal(c.close_error, 0);
        assert_int_equal(qmp_execute(q, "cont", NULL, on_reply, &a), -ENOTCONN);

        qmp_free(q);
        reply_free(&a);
        reply_free(&b);
        event = sd_event_unref(event);
}

static void test_qmp_garbage(void **state) {
        QmpCallbacks cb = { .on_close = c_close };
        Client c = {};
        Reply a = {};
        int sv[2];
        Qmp *q;

        (void) state;
        assert_int_equal(sd_event_new(&event), 0);
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        assert_int_equal(qmp_new(event, sv[0], &cb, &c, &q), 0);
        qmp_execute(q, "query-status", NULL, on_reply, &a);
        peer_send(sv[1], "this is no QMP\n");
        assert_true(run_until(&a.done, 2));
        assert_int_equal(a.error, -ECONNRESET);
        assert_int_equal(c.closed, 1);
        assert_int_equal(c.close_error, -EBADMSG);
        qmp_free(q);
        close(sv[1]);
        reply_free(&a);
        event = sd_event_unref(event);
}

/* ---- the backdoor protocol against a fake QEMU ---- */

/* Its last argument picks what it does; QEMU's own options before it are ignored. It execs bash, so
 * "QEMU"'s pid is that bash: FAKE_PID lets a command kill it. */
static const char fake_qemu[] =
        "#!/bin/bash\n"
        "mode=${!#}\n"
        "export FAKE_PID=$$ PATH=\"$(dirname \"$0\")/bin:$PATH\"\n"
        "case $mode in\n"
        "mode=silent) exec sleep 60 ;;\n"
        "mode=die) echo 'booting...'; echo 'fake-qemu: no kernel' >&2; exit 3 ;;\n"
        "mode=split) printf 'noise\\nSpawning back' >&3; sleep 0.1; printf 'door root shell...' >&3; sleep 0.1;"
        " printf '\\n' >&3 ;;\n"
        "*) echo 'Spawning backdoor root shell...' >&3 ;;\n"
        "esac\n"
        "exec bash --norc <&3 >&3\n";
/* "poweroff" in the fake guest: "QEMU" dies of SIGUSR1, which tells it from other ends. */
static const char fake_poweroff[] = "#!/bin/sh\nkill -USR1 $FAKE_PID\n";

static char fake_dir[] = "/tmp/moonrig-test-qemu-XXXXXX";
static char fake_path[PATH_MAX];

typedef struct Vm {
        unsigned ready, exited, lines, notices;
        char notice[256];
        int ready_error, exit_status;
        char *message;
        char console[4096];
} Vm;

static void v_ready(Machine *m, int error, const char *message) {
        Vm *v = machine_userdata(m);

        v->ready++;
        v->ready_error = error;
        free(v->message);
        v->message = message ? strdup(message) : NULL;
}

static void v_exit(Machine *m, int status) {
        Vm *v = machine_userdata(m);

        v->exited++;
        v->exit_status = status;
}

static void v_line(Machine *m, const char *line, size_t len) {
        Vm *v = machine_userdata(m);
        size_t l = strlen(v->console);

        v->lines++;
        snprintf(v->console + l, sizeof v->console - l, "%.*s\n", (int) len, line);
}

static void v_notice(Machine *m, const char *message) {
        Vm *v = machine_userdata(m);

        v->notices++;
        snprintf(v->notice, sizeof v->notice, "%s", message);
}

static const MachineCallbacks vm_callbacks = {
        .on_ready = v_ready, .on_exit = v_exit, .on_console_line = v_line, .on_notice = v_notice,
};

typedef struct Res {
        bool done;
        int status, error;
        char *out;
        size_t out_len;
} Res;

static void on_res(Qemu *q _unused_, QemuExecResult *r, void *userdata) {
        Res *x = userdata;

        x->done = true;
        x->status = r->status;
        x->error = r->error;
        x->out = TAKE_PTR(r->out);
        x->out_len = r->out_len;
}

static int setup_fake(void **state) {
        char p[PATH_MAX];
        FILE *f;
        sigset_t mask;

        (void) state;
        sigemptyset(&mask);
        sigaddset(&mask, SIGCHLD);
        sigprocmask(SIG_BLOCK, &mask, NULL);
        if (!mkdtemp(fake_dir))
                return -1;
        snprintf(fake_path, sizeof fake_path, "%s/fake-qemu", fake_dir);
        f = fopen(fake_path, "we");
        if (!f)
                return -1;
        fputs(fake_qemu, f);
        fclose(f);
        chmod(fake_path, 0755);
        snprintf(p, sizeof p, "%s/bin", fake_dir);
        mkdir(p, 0755);
        snprintf(p, sizeof p, "%s/bin/poweroff", fake_dir);
        f = fopen(p, "we");
        if (!f)
                return -1;
        fputs(fake_poweroff, f);
        fclose(f);
        chmod(p, 0755);
        return sd_event_new(&event) < 0 ? -1 : 0;
}

static int teardown_fake(void **state) {
        char cmd[PATH_MAX + 16];

        (void) state;
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", fake_dir);
        event = sd_event_unref(event);
        return system(cmd) == 0 ? 0 : -1;
}

static Qemu *fake_new(Vm *v, const char *mode, uint64_t boot_timeout) {
        char *extra[] = { (char *) mode, NULL };
        QemuConfig cfg = {
                .name = "fake", .state_dir = fake_dir, .qemu = fake_path, .kernel = "/k", .extra_args = extra,
                .boot_timeout_usec = boot_timeout, .shutdown_timeout_usec = 300000,
        };
        Qemu *q;

        *v = (Vm) {};
        assert_int_equal(qemu_new(event, &cfg, &vm_callbacks, v, &q), 0);
        assert_int_equal(machine_start(qemu_machine(q)), 0);
        return q;
}

static void wait_ready(Vm *v) {
        for (int i = 0; i < 500 && v->ready == 0; i++)
                (void) sd_event_run(event, 10000);
        assert_int_equal(v->ready, 1);
}

static void wait_exit(Vm *v) {
        for (int i = 0; i < 500 && v->exited == 0; i++)
                (void) sd_event_run(event, 10000);
        assert_int_equal(v->exited, 1);
}

static Res run_cmd(Qemu *q, const char *cmd, unsigned flags) {
        Res x = {};

        assert_int_equal(qemu_exec(q, cmd, 0, flags, on_res, &x, NULL), 0);
        assert_false(x.done);   /* never from qemu_exec itself */
        assert_true(run_until(&x.done, 5));
        return x;
}

static void assert_res(Res x, int error, int status, const void *out, size_t out_len) {
        assert_int_equal(x.error, error);
        assert_int_equal(x.status, status);
        assert_non_null(x.out);
        assert_int_equal(x.out_len, out_len);
        assert_memory_equal(x.out, out, out_len);
        free(x.out);
}

static void test_fake_commands(void **state) {
        Vm v;
        Qemu *q = fake_new(&v, "mode=normal", 0);
        Res a = {}, b = {}, c = {};
        QemuExecJob *job;
        static const char bytes[] = "\0\1\2\377\n\r";

        (void) state;
        /* Queued before the handshake. */
        assert_int_equal(qemu_exec(q, "echo early", 0, 0, on_res, &a, NULL), 0);
        wait_ready(&v);
        assert_int_equal(v.ready_error, 0);
        assert_null(v.message);
        assert_true(qemu_is_connected(q));
        assert_true(run_until(&a.done, 5));
        assert_res(a, 0, 0, "early\n", 6);

        assert_res(run_cmd(q, "echo hello", 0), 0, 0, "hello\n", 6);
        assert_res(run_cmd(q, "exit 3", 0), 0, 3, "", 0);
        assert_res(run_cmd(q, "printf abc; false; echo no", 0), 0, 1, "abc", 3);
        assert_res(run_cmd(q, "printf '\\0\\1\\2\\377\\n\\r'", 0), 0, 0, bytes, 6);
        assert_res(run_cmd(q, "false | true", 0), 0, 1, "", 0);   /* pipefail */
        assert_res(run_cmd(q, "echo $UNSET_VARIABLE", 0), 0, 1, "", 0);   /* nounset */
        assert_res(run_cmd(q, "echo status-skipped; exit 9", QEMU_EXEC_NO_STATUS), 0, -1, "status-skipped\n", 15);

        /* stderr is a console line (here the fake's, as QEMU's would be the serial console). */
        assert_res(run_cmd(q, "echo err-line >&2", 0), 0, 0, "", 0);

        /* In order, and a cancelled job keeps the stream in step. */
        a = b = c = (Res) {};
        assert_int_equal(qemu_exec(q, "sleep 0.2; echo 1", 0, 0, on_res, &a, NULL), 0);
        assert_int_equal(qemu_exec(q, "echo 2", 0, 0, on_res, &b, &job), 0);
        assert_int_equal(qemu_exec(q, "echo 3", 0, 0, on_res, &c, NULL), 0);
        qemu_exec_cancel(job);
        assert_true(run_until(&c.done, 5));
        assert_true(a.done);
        assert_false(b.done);
        assert_res(a, 0, 0, "1\n", 2);
        assert_res(c, 0, 0, "3\n", 2);

        /* QEMU dies under a command. */
        a = (Res) {};
        assert_int_equal(qemu_exec(q, "kill -9 $FAKE_PID", 0, 0, on_res, &a, NULL), 0);
        assert_true(run_until(&a.done, 5));
        assert_int_equal(a.error, -ECONNRESET);
        assert_int_equal(a.status, -1);
        free(a.out);
        wait_exit(&v);
        assert_int_equal(v.exit_status, 128 + SIGKILL);
        assert_false(qemu_is_up(q));
        assert_int_equal(qemu_exec(q, "true", 0, 0, on_res, &a, NULL), -ESRCH);
        assert_non_null(strstr(v.console, "err-line\n"));
        qemu_free(q);
        free(v.message);
}

static void test_fake_split_sentinel(void **state) {
        Vm v;
        Qemu *q = fake_new(&v, "mode=split", 0);

        (void) state;
        wait_ready(&v);
        assert_int_equal(v.ready_error, 0);
        /* The sentinel's newline came after the handshake: it must not read as an empty frame. */
        assert_res(run_cmd(q, "echo first", 0), 0, 0, "first\n", 6);
        assert_int_equal(machine_poweroff(qemu_machine(q)), 0);
        wait_exit(&v);
        assert_int_equal(v.exit_status, 128 + SIGUSR1);
        qemu_free(q);
        free(v.message);
}

static void test_fake_dies(void **state) {
        Vm v;
        Qemu *q = fake_new(&v, "mode=die", 0);

        (void) state;
        wait_ready(&v);
        assert_int_equal(v.ready_error, -ECHILD);
        assert_non_null(v.message);
        assert_non_null(strstr(v.message, "node fake: "));
        assert_non_null(strstr(v.message, "exited with status 3 before its backdoor shell answered"));
        assert_non_null(strstr(v.message, "\n  booting..."));
        assert_non_null(strstr(v.message, "\n  fake-qemu: no kernel"));
        wait_exit(&v);
        assert_int_equal(v.exit_status, 3);
        qemu_free(q);
        free(v.message);
}

static void test_fake_boot_timeout(void **state) {
        Vm v;
        Qemu *q = fake_new(&v, "mode=silent", 300000);
        Res a = {};

        (void) state;
        assert_int_equal(qemu_exec(q, "true", 0, 0, on_res, &a, NULL), 0);
        wait_ready(&v);
        assert_int_equal(v.ready_error, -ETIMEDOUT);
        assert_non_null(strstr(v.message, "node fake: its backdoor shell did not answer within 0.3 s"));
        assert_non_null(strstr(v.message, "(no console output"));
        wait_exit(&v);
        assert_int_equal(v.exit_status, 128 + SIGKILL);
        assert_true(a.done);
        assert_int_equal(a.error, -ECANCELED);
        free(a.out);
        qemu_free(q);
        free(v.message);
}

static void test_fake_crash_and_free(void **state) {
        Vm v;
        Qemu *q = fake_new(&v, "mode=normal", 0);
        Res a = {};
        pid_t pid;

        (void) state;
        wait_ready(&v);
        assert_int_equal(qemu_exec(q, "sleep 30", 0, 0, on_res, &a, NULL), 0);
        (void) sd_event_run(event, 50000);
        machine_crash(qemu_machine(q));   /* no QMP in the fake: SIGKILL */
        wait_exit(&v);
        assert_int_equal(v.exit_status, 128 + SIGKILL);
        assert_true(a.done);
        assert_int_equal(a.error, -ECANCELED);
        free(a.out);

        /* Started again and released: SIGTERM. */
        v.ready = v.exited = 0;
        assert_int_equal(machine_start(qemu_machine(q)), 0);
        wait_ready(&v);
        machine_release(qemu_machine(q));
        wait_exit(&v);
        assert_int_equal(v.exit_status, 128 + SIGTERM);

        /* Started again, then freed while it runs: killed and reaped on the spot. */
        v.ready = v.exited = 0;
        assert_int_equal(machine_start(qemu_machine(q)), 0);
        wait_ready(&v);
        pid = qemu_pid(q);
        assert_true(pid > 0);
        qemu_free(q);
        assert_int_equal(kill(pid, 0), -1);
        assert_int_equal(errno, ESRCH);
        free(v.message);
}

static void test_fake_shutdown_before_shell(void **state) {
        Vm v;
        Qemu *q = fake_new(&v, "mode=silent", 0);

        (void) state;
        (void) sd_event_run(event, 50000);
        /* No shell and no QMP (the fake serves none): killed after shutdown_timeout (0.3 s). */
        assert_int_equal(machine_poweroff(qemu_machine(q)), 0);
        assert_int_equal(qemu_exec(q, "true", 0, 0, on_res, NULL, NULL), -ESRCH);
        wait_ready(&v);
        assert_int_equal(v.ready_error, -ECANCELED);
        assert_non_null(strstr(v.message, "node fake: killed before its backdoor shell answered"));
        wait_exit(&v);
        assert_int_equal(v.exit_status, 128 + SIGKILL);
        assert_int_equal(v.notices, 1);
        assert_string_equal(v.notice, "node fake: did not power off within 0.3 s: killing QEMU");
        qemu_free(q);
        free(v.message);
}

int main(void) {
        const struct CMUnitTest pure[] = {
                cmocka_unit_test(test_argv_minimal),
                cmocka_unit_test(test_argv_full),
                cmocka_unit_test(test_argv_start_script),
                cmocka_unit_test(test_key_for_char),
                cmocka_unit_test(test_qmp_parse),
                cmocka_unit_test(test_qmp_format),
                cmocka_unit_test(test_qmp_client),
                cmocka_unit_test(test_qmp_garbage),
        };
        const struct CMUnitTest fake[] = {
                cmocka_unit_test(test_fake_commands),
                cmocka_unit_test(test_fake_split_sentinel),
                cmocka_unit_test(test_fake_dies),
                cmocka_unit_test(test_fake_boot_timeout),
                cmocka_unit_test(test_fake_crash_and_free),
                cmocka_unit_test(test_fake_shutdown_before_shell),
        };
        int r = cmocka_run_group_tests_name("qemu pure", pure, NULL, NULL);

        return r | cmocka_run_group_tests_name("qemu against a fake QEMU", fake, setup_fake, teardown_fake);
}
