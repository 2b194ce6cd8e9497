/* test_probe.c: probe.c: which namespaces a probe enters, then (as root, where setns into our own
 * namespaces is allowed) probes run on sd-event against a TCP port and a unix socket of ours:
 * listening, closed, and cancelled. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <cmocka.h>

#include "nsenter.h"
#include "probe.h"
#include "util.h"

static void test_namespaces(void **state) {
        (void) state;
        assert_int_equal(probe_namespaces(PROBE_TCP, "localhost"), CLONE_NEWNET);
        assert_int_equal(probe_namespaces(PROBE_TCP, "server"), CLONE_NEWNET | CLONE_NEWNS);
        assert_int_equal(probe_namespaces(PROBE_TCP, "10.0.0.1"), CLONE_NEWNET | CLONE_NEWNS);
        assert_int_equal(probe_namespaces(PROBE_UNIX_STREAM, "/run/x.sock"), CLONE_NEWNET | CLONE_NEWNS);
        assert_int_equal(probe_namespaces(PROBE_UNIX_DGRAM, "/run/x.sock"), CLONE_NEWNET | CLONE_NEWNS);
}

static void on_done(bool listening, void *userdata) {
        int *answer = userdata;

        *answer = listening;
}

/* -1: no answer; else 0 or 1. */
static int run_probe(sd_event *e, int pidfd, ProbeKind kind, const char *addr, int port) {
        int answer = -1;
        Probe *p = NULL;

        assert_int_equal(probe_start(e, pidfd, kind, addr, port, on_done, &answer, &p), 0);
        assert_non_null(p);
        for (int i = 0; i < 200 && answer < 0; i++)
                assert_true(sd_event_run(e, 100000) >= 0);
        return answer;
}

static char sock_path[108];

/* Runs even when an assertion failed: no socket file survives the test. */
static int remove_socket(void **state) {
        (void) state;
        if (sock_path[0])
                (void) unlink(sock_path);
        return 0;
}

static void test_live(void **state) {
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        struct sockaddr_un un = { .sun_family = AF_UNIX };
        socklen_t len = sizeof a;
        _cleanup_close_ int pidfd = -1, tcp = -1, unix_fd = -1;
        sd_event *e = NULL;
        sigset_t mask;
        Probe *p = NULL;
        int port, answer = -1;

        (void) state;
        if (geteuid() != 0)
                skip();
        sigemptyset(&mask);
        sigaddset(&mask, SIGCHLD);
        assert_int_equal(sigprocmask(SIG_BLOCK, &mask, NULL), 0);
        assert_true(sd_event_new(&e) >= 0);
        pidfd = nsenter_pidfd_open(getpid());
        assert_true(pidfd >= 0);

        tcp = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        assert_int_equal(bind(tcp, (struct sockaddr *) &a, sizeof a), 0);
        assert_int_equal(listen(tcp, 4), 0);
        assert_int_equal(getsockname(tcp, (struct sockaddr *) &a, &len), 0);
        port = ntohs(a.sin_port);
        assert_int_equal(run_probe(e, pidfd, PROBE_TCP, "localhost", port), 1);
        assert_int_equal(run_probe(e, pidfd, PROBE_TCP, "127.0.0.1", port), 1);
        tcp = (close(tcp), -1);
        assert_int_equal(run_probe(e, pidfd, PROBE_TCP, "localhost", port), 0);

        snprintf(un.sun_path, sizeof un.sun_path, "/tmp/test_probe.%d.sock", (int) getpid());
        snprintf(sock_path, sizeof sock_path, "%s", un.sun_path);
        unix_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        assert_int_equal(bind(unix_fd, (struct sockaddr *) &un, sizeof un), 0);
        assert_int_equal(listen(unix_fd, 4), 0);
        assert_int_equal(run_probe(e, pidfd, PROBE_UNIX_STREAM, un.sun_path, 0), 1);
        /* A stream socket is no datagram one. */
        assert_int_equal(run_probe(e, pidfd, PROBE_UNIX_DGRAM, un.sun_path, 0), 0);
        (void) unlink(un.sun_path);
        assert_int_equal(run_probe(e, pidfd, PROBE_UNIX_STREAM, un.sun_path, 0), 0);

        /* Cancelled: the callback never runs, the child is killed and reaped. */
        assert_int_equal(probe_start(e, pidfd, PROBE_TCP, "localhost", port, on_done, &answer, &p), 0);
        probe_cancel(p);
        for (int i = 0; i < 5; i++)
                assert_true(sd_event_run(e, 10000) >= 0);
        assert_int_equal(answer, -1);
        sd_event_unref(e);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_namespaces),
                cmocka_unit_test_teardown(test_live, remove_socket),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
