/* test_hostcmd.c: host commands (runner/hostcmd.c): the status a shell would report for an exit
 * and for a signal, a missing program refused at the start with -ENOENT. */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/wait.h>
#include <cmocka.h>

#include "hostcmd.h"

static void test_status(void **state) {
        (void) state;
        siginfo_t si = { .si_code = CLD_EXITED, .si_status = 3 };
        assert_int_equal(hostcmd_status(&si), 3);
        si = (siginfo_t) { .si_code = CLD_KILLED, .si_status = SIGKILL };
        assert_int_equal(hostcmd_status(&si), 128 + SIGKILL);
        si = (siginfo_t) { .si_code = CLD_DUMPED, .si_status = SIGSEGV };
        assert_int_equal(hostcmd_status(&si), 128 + SIGSEGV);
}

static void test_spawn(void **state) {
        (void) state;
        pid_t pid = 0;
        char *missing[] = { (char *) "/nonexistent/program", NULL };
        assert_int_equal(hostcmd_spawn(missing, &pid), -ENOENT);

        char *sh[] = { (char *) "sh", (char *) "-c", (char *) "exit 7", NULL };
        assert_int_equal(hostcmd_spawn(sh, &pid), 0);
        siginfo_t si = {};
        assert_int_equal(waitid(P_PID, (id_t) pid, &si, WEXITED), 0);
        assert_int_equal(hostcmd_status(&si), 7);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_status),
                cmocka_unit_test(test_spawn),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
