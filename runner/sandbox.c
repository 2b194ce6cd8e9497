/* sandbox.c: the namespaces a run lives in. A stub init is PID 1 of a new PID namespace and moonrig
 * runs as its child: the init reaps the orphans the kernel hands it, which moonrig's own waits never
 * see. PR_SET_PDEATHSIG: if the outer parent is killed, the init dies, the kernel kills every
 * process of the run, and the mount and network namespaces vanish with them. */
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

static int mount_run_state(void) {
        if (mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL) < 0)
                return -errno;
        if (mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
                return -errno;
        /* The run's state (node roots, sockets, the shared directory) lives on a tmpfs of this
         * namespace: it goes when the run goes, however it ends. */
        if (mount("tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755") < 0)
                return -errno;
        return 0;
}

/* Wait for `child`, reaping every other child on the way, pass on the signals in `mask` (blocked)
 * and exit with the child's status. Both processes above moonrig run this: the outer parent, whose
 * only child is the init, and the init, whose other children are orphans: processes whose parent
 * died, reparented to the init of their PID namespace, and zombies until it reaps them. One such
 * zombie inside a container's PID namespace too would keep that container's init from finishing
 * its exit. moonrig's own children stay moonrig's, so no exit status it waits for is taken. */
static _Noreturn void supervise(pid_t child, const sigset_t *mask) {
        for (;;) {
                int status;
                pid_t p;

                while ((p = waitpid(-1, &status, WNOHANG)) > 0)
                        if (p == child)
                                _exit(WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
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
        int alive[2], r;
        pid_t child;

        if (unshare(CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET) < 0)
                return -errno;
        /* The child holds the read end: EOF there means the parent is gone. */
        if (pipe2(alive, O_CLOEXEC) < 0)
                return -errno;

        sigemptyset(&mask);
        for (size_t i = 0; i < ELEMENTSOF(relayed); i++)
                sigaddset(&mask, relayed[i]);
        sigprocmask(SIG_BLOCK, &mask, &old);

        child = fork();
        if (child < 0)
                return -errno;
        if (child > 0) {
                close(alive[0]);
                supervise(child, &mask);
        }

        /* PID 1 of the new namespace. It only receives the signals it has a handler for, or keeps
         * blocked as here; sigwaitinfo() takes them. */
        close(alive[1]);
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
                _exit(1);
        /* The parent may have died before PDEATHSIG was armed. */
        struct pollfd pfd = { .fd = alive[0], .events = POLLIN };
        if (poll(&pfd, 1, 0) != 0)
                _exit(1);
        close(alive[0]);

        /* Set up here, so a failure is reported by the process that will exit with it. */
        r = mount_run_state();
        if (r >= 0)
                r = loopback_up();
        if (r >= 0) {
                /* moonrig goes on as PID 2, an ordinary process: signals act on it as they do
                 * outside the sandbox, and the runtime reads them from a signalfd once it blocks
                 * them. */
                child = fork();
                if (child < 0)
                        r = -errno;
                else if (child > 0) {
                        /* Keep no copy of what moonrig opened: a pipe must see EOF when moonrig
                         * closes it. */
                        (void) close_range(3, ~0U, 0);
                        supervise(child, &mask);
                }
        }
        sigprocmask(SIG_SETMASK, &old, NULL);
        if (r < 0)
                return r;
        active = 1;
        return 0;
}
