/* test_exec.c: the pure helpers of exec.c: env -0 parsing, /proc stat parsing, command argv. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "exec.h"
#include "util.h"

uint64_t now_usec(void) { return 0; }

static void test_env0_parse(void **state) {
        static const char buf[] = "PATH=/usr/bin\0_=/usr/bin/env\0SHLVL=1\0PWD=/\0OLDPWD=/x\0noequals\0\0EMPTY=\0LAST=no-nul";
        char **v = NULL;

        (void) state;
        assert_int_equal(exec_env0_parse(buf, sizeof buf - 1, &v), 3);
        assert_string_equal(v[0], "PATH=/usr/bin");
        assert_string_equal(v[1], "EMPTY=");
        assert_string_equal(v[2], "LAST=no-nul");
        assert_null(v[3]);
        strv_free(v);

        assert_int_equal(exec_env0_parse("", 0, &v), 0);
        assert_null(v[0]);
        strv_free(v);
}

static void test_env0_value_with_newline_and_equals(void **state) {
        static const char buf[] = "A=x=y\nz\0";
        char **v = NULL;

        (void) state;
        assert_int_equal(exec_env0_parse(buf, sizeof buf - 1, &v), 1);
        assert_string_equal(v[0], "A=x=y\nz");
        strv_free(v);
}

static void test_stat_parse(void **state) {
        pid_t ppid = 0, sid = 0;

        (void) state;
        assert_int_equal(exec_stat_parse("42 (sleep) S 7 42 40 0 -1 4194560 95", &ppid, &sid), 0);
        assert_int_equal(ppid, 7);
        assert_int_equal(sid, 40);
        /* A name with spaces and parentheses. */
        assert_int_equal(exec_stat_parse("9 (a (b) c) R 1 9 9 0", &ppid, &sid), 0);
        assert_int_equal(ppid, 1);
        assert_int_equal(sid, 9);
        assert_int_equal(exec_stat_parse("9 no-paren R 1 9 9", &ppid, &sid), -EINVAL);
        assert_int_equal(exec_stat_parse("9 (x) R", &ppid, &sid), -EINVAL);
}

static void test_command_argv(void **state) {
        char **v;

        (void) state;
        v = exec_command_argv("/usr/bin/bash", "echo hi");
        assert_non_null(v);
        assert_string_equal(v[0], "/usr/bin/bash");
        assert_string_equal(v[1], "-euo");
        assert_string_equal(v[2], "pipefail");
        assert_string_equal(v[3], "-c");
        assert_string_equal(v[4], "echo hi");
        assert_null(v[5]);
        strv_free(v);

        /* dash has no pipefail. */
        v = exec_command_argv("/bin/sh", "true");
        assert_string_equal(v[0], "/bin/sh");
        assert_string_equal(v[1], "-eu");
        assert_string_equal(v[2], "-c");
        assert_string_equal(v[3], "true");
        assert_null(v[4]);
        strv_free(v);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_env0_parse),
                cmocka_unit_test(test_env0_value_with_newline_and_equals),
                cmocka_unit_test(test_stat_parse),
                cmocka_unit_test(test_command_argv),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
