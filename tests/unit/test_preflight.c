/* test_preflight.c: preflight.c's pure part, exactly: how many inotify instances n containers want,
 * what the limit must become, and the two messages a user reads. No root, no sysctl written. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <cmocka.h>

#include "preflight.h"
#include "util.h"

static void test_want_need(void **state) {
        (void) state;
        assert_int_equal(preflight_inotify_want(0), 32);
        assert_int_equal(preflight_inotify_want(1), 41);
        assert_int_equal(preflight_inotify_want(4), 68);
        assert_int_equal(preflight_inotify_want(100), 932);
        /* 128 allowed, 40 free, 68 wanted: 28 more. */
        assert_int_equal(preflight_inotify_need(128, 68, 40), 156);
        assert_int_equal(preflight_inotify_need(128, 68, 0), 196);
}

static void test_messages(void **state) {
        _cleanup_free_ char *raised = preflight_inotify_raised_message(156, 4, 40),
                            *too_few = preflight_inotify_short_message(128, 40, 4, 156);

        (void) state;
        assert_string_equal(raised, "raised fs.inotify.max_user_instances to 156 for 4 containers (40 were free: "
                                    "other containers and daemons hold the rest; a global setting, it stays until "
                                    "reboot or until set back with sysctl)");
        assert_string_equal(too_few, "fs.inotify.max_user_instances is 128 and only 40 are free, too few for 4 "
                                     "containers (about 9 each); raise it as root: sysctl -w "
                                     "fs.inotify.max_user_instances=156");
}

static void test_find_in_path(void **state) {
        char buf[256];

        (void) state;
        assert_int_equal(setenv("PATH", "/nonexistent:/bin:/usr/bin", 1), 0);
        assert_true(preflight_find_in_path("sh", buf, sizeof buf));
        assert_true(streq(buf, "/bin/sh") || streq(buf, "/usr/bin/sh"));
        assert_false(preflight_find_in_path("moonrig-no-such-program", buf, sizeof buf));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_want_need),
                cmocka_unit_test(test_messages),
                cmocka_unit_test(test_find_in_path),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
