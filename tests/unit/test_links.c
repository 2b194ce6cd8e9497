/* test_links.c: runner/links.c without root: no links is no work, a leader that is gone already
 * is no link error (its exit tells why), and freeing copes with partly filled links. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "links.h"

static void test_no_links(void **state) {
        (void) state;
        char *m = (char *) "untouched";
        assert_int_equal(links_attach_veths(NULL, getpid(), NULL, 0, "a", &m), 0);
        assert_null(m);
}

static void test_leader_gone(void **state) {
        (void) state;
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0)
                _exit(0);
        assert_int_equal(waitpid(pid, NULL, 0), pid);
        Link l = { .host_ifname = (char *) "ve-a-1", .bridge = (char *) "br1", .ifname = (char *) "eth1" };
        char *m = (char *) "untouched";
        /* the Net is never reached: the namespace went with the leader */
        assert_int_equal(links_attach_veths(NULL, pid, &l, 1, "a", &m), 0);
        assert_null(m);
}

static void test_links_free(void **state) {
        (void) state;
        Link *v = calloc(2, sizeof *v);
        assert_non_null(v);
        v[0].host_ifname = strdup("ve-a-1");
        v[1].mac = strdup("52:54:00:12:01:01");
        links_free(v, 2);
        links_free(NULL, 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_no_links),
                cmocka_unit_test(test_leader_gone),
                cmocka_unit_test(test_links_free),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
