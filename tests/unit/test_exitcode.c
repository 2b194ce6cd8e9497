/* test_exitcode.c: the one table from a failure's kind to moonrig's exit status (runner/exitcode.c).
 * It is linked with every object of librunner.a and without liblua (see Makefile.am), so it also
 * proves that the core builds and links without Lua. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "exitcode.h"

static void test_documented_statuses(void **state) {
        /* The statuses the README and man page promise. */
        assert_int_equal(EXIT_PASSED, 0);
        assert_int_equal(EXIT_FAILED, 1);
        assert_int_equal(EXIT_USAGE, 2);
        assert_int_equal(EXIT_HOST, 3);
        assert_int_equal(EXIT_TIMEOUT, 4);
}

static void test_kinds(void **state) {
        assert_int_equal(exit_code_for_failure("UsageError"), EXIT_USAGE);
        assert_int_equal(exit_code_for_failure("HostError"), EXIT_HOST);
        assert_int_equal(exit_code_for_failure("TestFailure"), EXIT_FAILED);
        assert_int_equal(exit_code_for_failure("MachineError"), EXIT_FAILED);
        assert_int_equal(exit_code_for_failure("Timeout"), EXIT_FAILED);
        assert_int_equal(exit_code_for_failure("usageerror"), EXIT_FAILED);
        assert_int_equal(exit_code_for_failure(""), EXIT_FAILED);
        assert_int_equal(exit_code_for_failure(NULL), EXIT_FAILED);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_documented_statuses),
                cmocka_unit_test(test_kinds),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
