/* sandbox.c: the namespaces a run lives in. The child is PID 1 of a new PID namespace and has
 * PR_SET_PDEATHSIG: if the parent is killed, the kernel kills every process of the run, and the
 * mount and network namespaces vanish with them. */
#define _GNU_SOURCE
#include "sandbox.h"

#include <fcntl.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include "util.h"

static int active;

int sandbox_active(void) {
        return active;
}

static int loopback_up(void) {
        _cleanup_close_ int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        struct ifreq ifr = { .ifr_name = "lo" };

        if (fd < 0)
                return -errno;
        if (ioctl(fd, SIOCGIFFLAGS, &ifr) < 0)
                return -errno;
        ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
        if (ioctl(fd, SIOCSIFFLAGS, &ifr) < 0)
                return -errno;
        return 0;
}

static void noop_handler(int sig) {
        (void) sig;
}

static _Noreturn void relay(pid_t child, const sigset_t *mask) {
        for (;;) {
                int status;
                pid_t p = waitpid(child, &status, WNOHANG);
                if (p == child) {
                        if (WIFEXITED(status))
                                _exit(WEXITSTATUS(status));
                        _exit(128 + WTERMSIG(status));
                }
                siginfo_t si;
                int sig = sigwaitinfo(mask, &si);
                if (sig < 0 || sig == SIGCHLD)
                        continue;
                /* Terminal signals reach the child through the process group already. */
                if (si.si_code == SI_KERNEL)
                        continue;
                kill(child, sig);
        }
}

int sandbox_enter(void) {
        static const int relayed[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGCHLD };
        sigset_t mask, old;
        int alive[2];

        if (unshare(CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET) < 0)
                return -errno;
        /* The child holds the read end: EOF there means the parent is gone. */
        if (pipe2(alive, O_CLOEXEC) < 0)
                return -errno;

        sigemptyset(&mask);
        for (size_t i = 0; i < ELEMENTSOF(relayed); i++)
                sigaddset(&mask, relayed[i]);
        sigprocmask(SIG_BLOCK, &mask, &old);

        pid_t child = fork();
        if (child < 0)
                return -errno;
        if (child > 0) {
                close(alive[0]);
                relay(child, &mask);
        }

        close(alive[1]);
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
                _exit(1);
        /* The parent may have died before PDEATHSIG was armed. */
        struct pollfd pfd = { .fd = alive[0], .events = POLLIN };
        if (poll(&pfd, 1, 0) != 0)
                _exit(1);

        /* PID 1 only receives signals it has a handler for; sd-event reads them from a
         * signalfd while they stay blocked. */
        struct sigaction sa = { .sa_handler = noop_handler };
        for (size_t i = 0; i < ELEMENTSOF(relayed); i++)
                if (relayed[i] != SIGCHLD)
                        sigaction(relayed[i], &sa, NULL);
        sigprocmask(SIG_SETMASK, &old, NULL);

        if (mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL) < 0)
                return -errno;
        if (mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
                return -errno;
        /* The run's state (node roots, sockets, the shared directory) lives on a tmpfs of this
         * namespace: it goes when the run goes, however it ends. */
        if (mount("tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755") < 0)
                return -errno;
        int r = loopback_up();
        if (r < 0)
                return r;
        active = 1;
        return 0;
}
