/* test_nsenter.c: nsenter.c without a container: pidfds of live and gone processes, and what a
 * failed entry returns or exits with. No root needed (entering needs none of it to fail). */
#define _GNU_SOURCE
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/wait.h>
#include <cmocka.h>

#include "nsenter.h"
#include "util.h"

static void test_pidfd_open(void **state) {
        int fd, status;
        pid_t pid;

        (void) state;
        fd = nsenter_pidfd_open(getpid());
        assert_true(fd >= 0);
        assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
        close(fd);

        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0)
                _exit(0);
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_int_equal(nsenter_pidfd_open(pid), -ESRCH);
        assert_int_equal(nsenter_pidfd_open(-1), -EINVAL);
}

static void test_enter_fails(void **state) {
        int fd = open("/dev/null", O_RDONLY | O_CLOEXEC), status;
        pid_t pid;

        (void) state;
        assert_int_equal(nsenter_enter(-1, CLONE_NEWNET), -EBADF);
        /* Not a pidfd, nor a namespace. */
        assert_int_equal(nsenter_enter(fd, CLONE_NEWNET), -EINVAL);

        /* The child of a failed entry never runs the caller's code. */
        pid = nsenter_fork(fd, CLONE_NEWNET);
        assert_true(pid >= 0);
        if (pid == 0)
                _exit(0);
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), NSENTER_EXIT_FAILED);
        close(fd);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_pidfd_open),
                cmocka_unit_test(test_enter_fails),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
