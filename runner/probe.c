/* probe.c: port and socket probes from inside a node's namespaces: a forked child enters its
 * network (and mount) namespace and tries connect(); its exit status is the answer. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netdb.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>

#include "nsenter.h"
#include "probe.h"
#include "util.h"

struct Probe {
        sd_event_source *child;
        pid_t pid;
        probe_done_fn done;
        void *userdata;
};

int probe_namespaces(ProbeKind kind, const char *addr) {
        /* Names are resolved with the node's /etc/hosts, paths are the node's: enter its mounts. */
        if (kind == PROBE_TCP && streq(addr, "localhost"))
                return CLONE_NEWNET;
        return CLONE_NEWNET | CLONE_NEWNS;
}

/* ---- in the child ---- */

static int try_connect(int family, int type, const struct sockaddr *sa, socklen_t len) {
        struct timeval tv = { .tv_sec = 2 };
        int fd = socket(family, type | SOCK_CLOEXEC, 0);

        if (fd < 0)
                return 1;
        (void) setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        return connect(fd, sa, len) == 0 ? 0 : 1;
}

static _Noreturn void probe_main(ProbeKind kind, const char *addr, int port) {
        struct sockaddr_un un = { .sun_family = AF_UNIX };

        if (kind == PROBE_TCP) {
                struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV }, *res = NULL;
                char ports[16];

                if (streq(addr, "localhost")) {
                        struct sockaddr_in6 a6 = { .sin6_family = AF_INET6, .sin6_port = htons(port),
                                                   .sin6_addr = IN6ADDR_LOOPBACK_INIT };
                        struct sockaddr_in a4 = { .sin_family = AF_INET, .sin_port = htons(port),
                                                  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };

                        _exit(try_connect(AF_INET6, SOCK_STREAM, (struct sockaddr *) &a6, sizeof a6) == 0 ||
                                              try_connect(AF_INET, SOCK_STREAM, (struct sockaddr *) &a4, sizeof a4) == 0
                                      ? 0
                                      : 1);
                }
                snprintf(ports, sizeof ports, "%d", port);
                if (getaddrinfo(addr, ports, &hints, &res) != 0)
                        _exit(1);
                for (struct addrinfo *ai = res; ai; ai = ai->ai_next)
                        if (try_connect(ai->ai_family, SOCK_STREAM, ai->ai_addr, ai->ai_addrlen) == 0)
                                _exit(0);
                _exit(1);
        }
        strncpy(un.sun_path, addr, sizeof un.sun_path - 1);
        _exit(try_connect(AF_UNIX, kind == PROBE_UNIX_DGRAM ? SOCK_DGRAM : SOCK_STREAM, (struct sockaddr *) &un,
                          sizeof un));
}

/* ---- in the runner ---- */

static int on_probe_exit(sd_event_source *s _unused_, const siginfo_t *si, void *userdata) {
        Probe *p = userdata;
        probe_done_fn done = p->done;
        void *ud = p->userdata;
        bool ok = si->si_code == CLD_EXITED && si->si_status == 0;

        sd_event_source_disable_unref(p->child);
        free(p);
        done(ok, ud);
        return 0;
}

int probe_start(sd_event *e, int pidfd, ProbeKind kind, const char *addr, int port, probe_done_fn done,
                void *userdata, Probe **ret) {
        Probe *p = calloc(1, sizeof(Probe));
        int r;

        if (!p)
                return -ENOMEM;
        p->done = done;
        p->userdata = userdata;
        p->pid = nsenter_fork(pidfd, probe_namespaces(kind, addr));
        if (p->pid < 0) {
                r = p->pid;
                free(p);
                return r;
        }
        if (p->pid == 0)
                probe_main(kind, addr, port);
        r = sd_event_add_child(e, &p->child, p->pid, WEXITED, on_probe_exit, p);
        if (r < 0) {
                (void) kill(p->pid, SIGKILL);
                (void) waitpid(p->pid, NULL, 0);
                free(p);
                return r;
        }
        *ret = p;
        return 0;
}

void probe_cancel(Probe *p) {
        if (!p)
                return;
        (void) kill(p->pid, SIGKILL);
        sd_event_source_disable_unref(p->child);
        free(p);
}
