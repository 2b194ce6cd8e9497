/* nspawn-ready.c: the raw baseline of tests/bench/network.sh: start N copies of a command (each a
 * systemd-nspawn --notify-ready=yes) at once, each with a notify socket of its own, time each READY=1,
 * then SIGKILL every container's init (as moonrig's teardown does) and time until every nspawn exits.
 *
 * Usage: nspawn-ready TIMEOUT_S N COMMAND [ARG...]
 * Child i (1..N) runs COMMAND with NOTIFY_SOCKET=@... and BENCH_I=i. Prints "ready I SECONDS",
 * "all_ready SECONDS", "all_exited SECONDS" (since the stop began); exits 0, or 1 when a node
 * failed or timed out (it kills everything it started before returning). */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

typedef struct Node {
        int sock;
        int pidfd;
        pid_t nspawn, leader;
        bool ready, exited;
} Node;

static double now(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int pidfd_open_(pid_t pid) {
        return (int) syscall(SYS_pidfd_open, pid, 0);
}

static int bind_notify(unsigned i, char *name, size_t size) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

        if (fd < 0)
                return -errno;
        /* Abstract: nothing to remove afterwards. */
        snprintf(name, size, "moonrig-bench/%d/%u", (int) getpid(), i);
        memcpy(sa.sun_path + 1, name, strlen(name));
        if (bind(fd, (struct sockaddr *) &sa, offsetof(struct sockaddr_un, sun_path) + 1 + strlen(name)) < 0) {
                int r = -errno;
                close(fd);
                return r;
        }
        return fd;
}

static void read_notify(Node *n, unsigned i, double t0) {
        char buf[4097];

        for (;;) {
                ssize_t l = recv(n->sock, buf, sizeof buf - 1, MSG_DONTWAIT);
                if (l < 0)
                        return;
                buf[l] = '\0';
                char *save = NULL;
                for (char *line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                        if (strncmp(line, "X_NSPAWN_LEADER_PID=", 20) == 0)
                                n->leader = atoi(line + 20);
                        else if (strcmp(line, "READY=1") == 0 && !n->ready) {
                                n->ready = true;
                                printf("ready %u %.3f\n", i + 1, now() - t0);
                        }
                }
        }
}

/* The init first: nspawn reaps it and exits; were nspawn killed first, the init would outlive it. */
static void kill_node(Node *n) {
        if (n->leader > 0)
                (void) kill(n->leader, SIGKILL);
        else if (n->nspawn > 0 && !n->exited)
                (void) kill(n->nspawn, SIGTERM);
}

static void reap(Node *n) {
        siginfo_t si = {};
        if (n->pidfd >= 0 && waitid(P_PIDFD, n->pidfd, &si, WEXITED | WNOHANG) == 0 && si.si_pid > 0)
                n->exited = true;
}

/* Waits until every node is ready (want_ready) or has exited, or until the deadline. */
static int wait_all(Node *v, unsigned n, bool want_ready, double t0, double deadline) {
        struct pollfd *p = calloc(2 * n, sizeof *p);

        if (!p)
                return -ENOMEM;
        for (;;) {
                unsigned left = 0;
                for (unsigned i = 0; i < n; i++) {
                        p[2 * i] = (struct pollfd) {
                                .fd = want_ready && !v[i].ready ? v[i].sock : -1, .events = POLLIN };
                        p[2 * i + 1] = (struct pollfd) { .fd = v[i].exited ? -1 : v[i].pidfd, .events = POLLIN };
                        if (want_ready ? !v[i].ready : !v[i].exited)
                                left++;
                        if (want_ready && v[i].exited && !v[i].ready) {
                                fprintf(stderr, "node %u: nspawn exited before READY=1\n", i + 1);
                                free(p);
                                return -ECHILD;
                        }
                }
                if (left == 0)
                        break;
                double rest = deadline - now();
                if (rest <= 0) {
                        for (unsigned i = 0; i < n; i++)
                                if (want_ready ? !v[i].ready : !v[i].exited)
                                        fprintf(stderr, "node %u: %s\n", i + 1,
                                                want_ready ? "no READY=1 in time" : "did not exit in time");
                        free(p);
                        return -ETIMEDOUT;
                }
                if (poll(p, 2 * n, (int) (rest * 1000) + 1) < 0 && errno != EINTR) {
                        free(p);
                        return -errno;
                }
                for (unsigned i = 0; i < n; i++) {
                        if (p[2 * i].revents)
                                read_notify(&v[i], i, t0);
                        if (p[2 * i + 1].revents)
                                reap(&v[i]);
                }
        }
        free(p);
        return 0;
}

int main(int argc, char **argv) {
        double timeout, t0, t1;
        unsigned n;
        Node *v;
        int r, ret = 0;

        if (argc < 4 || (timeout = atof(argv[1])) <= 0 || (n = (unsigned) atoi(argv[2])) == 0) {
                fprintf(stderr, "usage: %s TIMEOUT_S N COMMAND [ARG...]\n", argv[0]);
                return 2;
        }
        v = calloc(n, sizeof *v);
        if (!v)
                return 1;
        /* Every socket first: a failure then leaves nothing started. */
        char (*names)[108] = calloc(n, sizeof *names);
        if (!names)
                return 1;
        for (unsigned i = 0; i < n; i++) {
                v[i].pidfd = -1;
                v[i].sock = bind_notify(i, names[i], sizeof names[i]);
                if (v[i].sock < 0) {
                        fprintf(stderr, "node %u: cannot bind a notify socket: %s\n", i + 1,
                                strerror(-v[i].sock));
                        return 1;
                }
        }
        t0 = now();
        for (unsigned i = 0; i < n; i++) {
                char env[160], idx[32];
                pid_t parent = getpid();

                snprintf(env, sizeof env, "@%s", names[i]);
                snprintf(idx, sizeof idx, "%u", i + 1);
                /* Each child takes its own values: set before the fork, replaced for the next. */
                if (setenv("NOTIFY_SOCKET", env, 1) < 0 || setenv("BENCH_I", idx, 1) < 0 ||
                    (v[i].nspawn = fork()) < 0) {
                        fprintf(stderr, "node %u: cannot start it: %m\n", i + 1);
                        n = i;   /* stop those started */
                        ret = 1;
                        break;
                }
                if (v[i].nspawn == 0) {
                        /* If we die, nspawn gets SIGTERM and powers its container off. */
                        if (prctl(PR_SET_PDEATHSIG, SIGTERM) < 0 || getppid() != parent)
                                _exit(127);
                        execvp(argv[3], argv + 3);
                        fprintf(stderr, "cannot run %s: %m\n", argv[3]);
                        _exit(127);
                }
                v[i].pidfd = pidfd_open_(v[i].nspawn);
        }
        unsetenv("NOTIFY_SOCKET");
        if (ret == 0) {
                r = wait_all(v, n, true, t0, t0 + timeout);
                if (r < 0)
                        ret = 1;
                else
                        printf("all_ready %.3f\n", now() - t0);
        }
        fflush(stdout);

        t1 = now();
        for (unsigned i = 0; i < n; i++)
                kill_node(&v[i]);
        r = wait_all(v, n, false, t1, t1 + 10);
        if (r < 0) {
                ret = 1;
                for (unsigned i = 0; i < n; i++)
                        if (!v[i].exited && v[i].nspawn > 0) {
                                (void) kill(v[i].nspawn, SIGKILL);
                                (void) waitpid(v[i].nspawn, NULL, 0);
                        }
        } else
                printf("all_exited %.3f\n", now() - t1);
        return ret;
}
