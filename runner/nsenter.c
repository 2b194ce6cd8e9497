/* nsenter.c: enter a node's namespaces through a pidfd (setns(2) with a pidfd, Linux 5.8): one
 * call for any set of them, and no /proc path that a recycled PID could make point elsewhere. */
#define _GNU_SOURCE
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "nsenter.h"
#include "util.h"

int nsenter_pidfd_open(pid_t pid) {
        int fd = (int) syscall(SYS_pidfd_open, pid, 0);

        return fd < 0 ? -errno : fd;
}

int nsenter_enter(int pidfd, int nstypes) {
        return setns(pidfd, nstypes) < 0 ? -errno : 0;
}

pid_t nsenter_fork(int pidfd, int nstypes) {
        pid_t pid = fork();

        if (pid < 0)
                return -errno;
        if (pid == 0 && nsenter_enter(pidfd, nstypes) < 0)
                _exit(NSENTER_EXIT_FAILED);
        return pid;
}
