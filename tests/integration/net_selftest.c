/* net_selftest.c: end-to-end test of runner/net.c and runner/netplan.c with real traffic (root only).
 * It works in a network namespace of its own; the "nodes" are child processes in namespaces of theirs.
 * Usage: net_selftest [--bench N]   (exit 0: all passed, 1: a check failed, 77: not root) */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <ctype.h>
#include <fcntl.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>

#include "net.h"
#include "netplan.h"
#include "util.h"

uint64_t now_usec(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000u + (uint64_t) ts.tv_nsec / 1000u;
}

static unsigned n_passed, n_failed;

static bool check(bool ok, const char *format, ...) _printf_(2, 3);
static bool check(bool ok, const char *format, ...) {
        va_list ap;
        va_start(ap, format);
        fputs(ok ? "ok - " : "not ok - ", stdout);
        vprintf(format, ap);
        putchar('\n');
        va_end(ap);
        fflush(stdout);
        if (ok)
                n_passed++;
        else
                n_failed++;
        return ok;
}

static unsigned n_skipped;

static void skip(const char *reason, const char *what) {
        printf("ok - %s # SKIP %s\n", what, reason);
        n_skipped++;
}

static void note(const char *format, ...) _printf_(1, 2);
static void note(const char *format, ...) {
        va_list ap;
        va_start(ap, format);
        fputs("# ", stdout);
        vprintf(format, ap);
        putchar('\n');
        va_end(ap);
        fflush(stdout);
}

/* A node: a child process alone in a new network namespace, living until its pipe closes. */
typedef struct Node {
        pid_t pid;
        int hold_fd;    /* write end: closing it lets the child exit */
        int netns_fd;
} Node;

static Node *all_nodes[512];
static size_t n_all_nodes;

static int node_spawn(Node *node) {
        int ready[2], hold[2];
        char c;

        if (pipe2(ready, O_CLOEXEC) < 0 || pipe2(hold, O_CLOEXEC) < 0)
                return -errno;
        pid_t pid = fork();
        if (pid < 0)
                return -errno;
        if (pid == 0) {
                prctl(PR_SET_PDEATHSIG, SIGKILL);
                close(ready[0]);
                close(hold[1]);
                /* Other nodes' hold ends would keep those nodes alive. */
                for (size_t i = 0; i < n_all_nodes; i++)
                        close(all_nodes[i]->hold_fd);
                if (unshare(CLONE_NEWNET) < 0)
                        _exit(1);
                if (write(ready[1], "x", 1) != 1)
                        _exit(1);
                while (read(hold[0], &c, 1) > 0)
                        ;
                _exit(0);
        }
        close(ready[1]);
        close(hold[0]);
        ssize_t n = read(ready[0], &c, 1);
        close(ready[0]);
        *node = (Node) { .pid = pid, .hold_fd = hold[1], .netns_fd = -1 };
        all_nodes[n_all_nodes++] = node;
        if (n != 1)
                return -ECHILD;
        node->netns_fd = net_netns_open(pid);
        return node->netns_fd < 0 ? node->netns_fd : 0;
}

static void node_stop(Node *node) {
        if (node->pid <= 0)
                return;
        close(node->hold_fd);
        close(node->netns_fd);
        (void) waitpid(node->pid, NULL, 0);
        node->pid = 0;
}

static void nodes_stop_all(void) {
        for (size_t i = 0; i < n_all_nodes; i++)
                node_stop(all_nodes[i]);
        n_all_nodes = 0;
}

/* Runs argv in the namespace netns_fd (-1: the current one), output into out. Returns the exit status. */
static int run_in(int netns_fd, char *const argv[], char *out, size_t size) {
        int p[2];
        if (pipe2(p, O_CLOEXEC) < 0)
                return -errno;
        pid_t pid = fork();
        if (pid < 0)
                return -errno;
        if (pid == 0) {
                if (netns_fd >= 0 && setns(netns_fd, CLONE_NEWNET) < 0)
                        _exit(126);
                dup2(p[1], STDOUT_FILENO);
                dup2(p[1], STDERR_FILENO);
                execvp(argv[0], argv);
                _exit(127);
        }
        close(p[1]);
        size_t len = 0;
        ssize_t n;
        while ((n = read(p[0], out + len, size - 1 - len)) > 0)
                if ((len += (size_t) n) == size - 1)
                        break;
        out[len] = '\0';
        char drain[256];
        while (read(p[0], drain, sizeof drain) > 0)
                ;
        close(p[0]);
        int status;
        if (waitpid(pid, &status, 0) < 0)
                return -errno;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* ping -c1 -W2 from a node; returns the exit status and the RTT in ms (or -1). */
static int ping(const Node *from, const char *address, const char *size, double *rtt_ms) {
        char out[4096];
        char *argv[] = { "ping", "-n", "-c1", "-W2", "-s", (char *) (size ? size : "56"), (char *) address, NULL };
        int r = run_in(from->netns_fd, argv, out, sizeof out);
        if (getenv("NET_SELFTEST_DEBUG"))
                printf("%s", out);
        const char *p = strstr(out, "time=");
        *rtt_ms = p ? strtod(p + 5, NULL) : -1;
        return r;
}

static bool ip_out_contains(int netns_fd, char *const argv[], const char *needle) {
        char out[16384];
        int r = run_in(netns_fd, argv, out, sizeof out);
        return r == 0 && strstr(out, needle);
}

/* The names in `ip -o link` output, one "name\n" each, for comparing two snapshots. */
static char *link_names(int netns_fd) {
        static char out[65536];
        char *argv[] = { "ip", "-o", "link", NULL };
        if (run_in(netns_fd, argv, out, sizeof out) != 0)
                return NULL;
        char *names = calloc(1, strlen(out) + 2);
        if (!names)
                return NULL;
        size_t len = 0;
        for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
                char *colon = strchr(line, ':');
                if (!colon)
                        continue;
                char *name = colon + 1;
                name += strspn(name, " ");
                size_t n = strcspn(name, ":@");
                memcpy(names + len, name, n);
                len += n;
                names[len++] = '\n';
        }
        names[len] = '\0';
        return names;
}

static bool has_line(const char *lines, const char *name) {
        size_t n = strlen(name);
        for (const char *p = lines; p && *p; p = strchr(p, '\n') + 1) {
                if (strncmp(p, name, n) == 0 && p[n] == '\n')
                        return true;
                if (!strchr(p, '\n'))
                        break;
        }
        return false;
}

/* Writes an ARP who-has for target_ip into the tap and waits for the answer from target_mac. */
static bool tap_arp(int fd, const uint8_t src_mac[6], const char *src_ip, const char *target_ip,
                    const char *target_mac_text) {
        uint8_t frame[42] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
        struct in_addr spa, tpa;
        uint8_t tmac[6];

        inet_pton(AF_INET, src_ip, &spa);
        inet_pton(AF_INET, target_ip, &tpa);
        sscanf(target_mac_text, "%hhx:%hhx:%hhx:%hhx:%hhx:%hhx", &tmac[0], &tmac[1], &tmac[2], &tmac[3], &tmac[4], &tmac[5]);
        memcpy(frame + 6, src_mac, 6);
        frame[12] = 0x08, frame[13] = 0x06;                     /* ARP */
        frame[14] = 0, frame[15] = 1, frame[16] = 0x08, frame[17] = 0; /* Ethernet, IPv4 */
        frame[18] = 6, frame[19] = 4, frame[20] = 0, frame[21] = 1;    /* request */
        memcpy(frame + 22, src_mac, 6);
        memcpy(frame + 28, &spa, 4);
        memcpy(frame + 38, &tpa, 4);
        /* Resent every 250 ms: a tap that just got its fd has carrier, but the bridge port learns
         * that through linkwatch, which may take up to a second. */
        uint64_t deadline = now_usec() + 3000000, resend = 0;
        while (now_usec() < deadline) {
                if (now_usec() >= resend) {
                        if (write(fd, frame, sizeof frame) != (ssize_t) sizeof frame)
                                return false;
                        resend = now_usec() + 250000;
                }
                struct pollfd pfd = { .fd = fd, .events = POLLIN };
                if (poll(&pfd, 1, 50) <= 0)
                        continue;
                uint8_t buf[2048];
                ssize_t n = read(fd, buf, sizeof buf);
                if (n >= 42 && buf[12] == 0x08 && buf[13] == 0x06 && buf[21] == 2 &&
                    memcmp(buf, src_mac, 6) == 0 && memcmp(buf + 22, tmac, 6) == 0 && memcmp(buf + 28, &tpa, 4) == 0)
                        return true;
        }
        return false;
}

/* Names this test (or net_preflight) could make: mrbr*, mrpf*, eth*, n<digits>v<digits>*. */
static bool is_ours(const char *name) {
        if (startswith(name, "mrbr") || startswith(name, "mrpf") || startswith(name, "eth"))
                return true;
        if (name[0] != 'n' || !isdigit((unsigned char) name[1]))
                return false;
        const char *p = name + 1 + strspn(name + 1, "0123456789");
        return p[0] == 'v' && isdigit((unsigned char) p[1]);
}

/* Times n veth pairs on a Net of their own, so that net_free's batched delete is timed too. */
static void bench(unsigned n) {
        Net *net = NULL;
        Node *nodes = calloc(n, sizeof *nodes);
        char (*names)[NETPLAN_IFNAME_MAX] = calloc(n, sizeof *names);
        if (!nodes || !names || n > 254 || n_all_nodes + n > ELEMENTSOF(all_nodes)) {
                check(false, "bench: setting up %u nodes", n);
                return;
        }
        if (net_new(&net) < 0) {
                check(false, "bench: net_new");
                return;
        }
        uint64_t t0 = now_usec();
        for (unsigned i = 0; i < n; i++)
                if (node_spawn(&nodes[i]) < 0) {
                        check(false, "bench: spawning node %u", i);
                        return;
                }
        uint64_t t1 = now_usec();
        if (net_bridge_add(net, "mrbr9") < 0) {
                check(false, "bench: %s", net_error(net));
                return;
        }
        unsigned made = 0;
        for (unsigned i = 0; i < n; i++) {
                char mac[18], v4[24], v6[48];
                netplan_host_ifname("bench", i + 1, 9, names[i]);
                netplan_mac(9, i + 1, mac);
                netplan_ipv4(9, i + 1, true, v4, sizeof v4);
                netplan_ipv6(9, i + 1, true, v6, sizeof v6);
                NetVeth v = { .host_name = names[i], .bridge = "mrbr9", .netns_fd = nodes[i].netns_fd,
                              .peer_name = "eth1", .mac = mac, .ipv4_cidr = v4, .ipv6_cidr = v6 };
                if (net_veth_add(net, &v) < 0) {
                        note("bench: %s", net_error(net));
                        break;
                }
                made++;
        }
        uint64_t t2 = now_usec();
        double rtt;
        int r = ping(&nodes[0], n > 1 ? "192.168.9.2" : "192.168.9.1", NULL, &rtt);
        check(made == n && r == 0, "bench: %u veth pairs into %u namespaces, node 1 pings node 2", made, n);
        note("bench: %u namespaces (fork+unshare) in %.1f ms", n, (t1 - t0) / 1000.0);
        note("bench: %u veth pairs (create, move, MAC, 2 addresses, lo up) in %.1f ms, %.2f ms each",
             made, (t2 - t1) / 1000.0, (t2 - t1) / 1000.0 / (made ? made : 1));
        uint64_t t3 = now_usec();
        if (made > 1)
                net_link_del(net, names[--made]);
        uint64_t t4 = now_usec();
        net_free(net);
        uint64_t t5 = now_usec();
        note("bench: net_link_del of one veth pair took %.1f ms", (t4 - t3) / 1000.0);
        note("bench: net_free of %u veth pairs and their bridge took %.1f ms", made, (t5 - t4) / 1000.0);
        for (unsigned i = 0; i < n; i++)
                node_stop(&nodes[i]);
        n_all_nodes -= n;
        free(nodes);
        free(names);
}

int main(int argc, char **argv) {
        unsigned bench_n = 0;
        if (argc == 3 && streq(argv[1], "--bench"))
                bench_n = (unsigned) atoi(argv[2]);
        else if (argc != 1) {
                fprintf(stderr, "usage: %s [--bench N]\n", argv[0]);
                return 2;
        }
        if (geteuid() != 0) {
                printf("# skipped: net_selftest needs root\n");
                return 77;
        }
        setvbuf(stdout, NULL, _IOLBF, 0);

        _cleanup_close_ int host_ns = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
        _cleanup_free_ char *host_before = link_names(-1);
        if (host_ns < 0 || !host_before) {
                check(false, "reading the host's links with `ip -o link`");
                return 1;
        }
        if (!check(unshare(CLONE_NEWNET) == 0, "unshare(CLONE_NEWNET) for the test's own namespace"))
                return 1;

        char *message = NULL;
        int r = net_preflight(NET_NEED_TUN, &message);
        check(r == 0 && !message, "preflight finds namespaces, bridges, veths and tun usable%s%s",
              message ? ": " : "", message ? message : "");
        free(message);
        /* Some kernels (this project's CI VMs among them) are built without sch_netem. */
        _cleanup_free_ char *no_netem = NULL;
        r = net_preflight(NET_NEED_NETEM, &no_netem);
        if (r < 0)
                check(r == -EOPNOTSUPP && no_netem && strstr(no_netem, "the kernel has no netem qdisc") &&
                      strstr(no_netem, "modprobe sch_netem") && !strchr(no_netem, '\n'),
                      "preflight says netem is missing and what to load: \"%s\"", no_netem ? no_netem : "");

        /* The plan: alpha and beta are containers, gamma a VM (a tap), all on VLAN 1. */
        const unsigned v1[] = { 1 };
        NetplanNodeSpec specs[] = {
                { "beta", v1, 1 }, { "gamma", v1, 1 }, { "alpha", v1, 1 },
        };
        Netplan *plan = NULL;
        if (!check(netplan_new(specs, ELEMENTSOF(specs), &plan, NULL) == 0, "netplan for alpha, beta, gamma"))
                return 1;
        const NetplanLink *la = netplan_primary(netplan_find(plan, "alpha"));
        const NetplanLink *lb = netplan_primary(netplan_find(plan, "beta"));
        const NetplanLink *lg = netplan_primary(netplan_find(plan, "gamma"));

        Net *net = NULL;
        if (!check(net_new(&net) == 0, "net_new"))
                return 1;

        uint64_t t0 = now_usec();
        r = net_bridge_add(net, la->bridge);
        check(r == 0, "bridge %s created (%.2f ms)%s%s", la->bridge, (now_usec() - t0) / 1000.0, r < 0 ? ": " : "",
              r < 0 ? net_error(net) : "");
        char *show_br[] = { "ip", "-d", "link", "show", (char *) la->bridge, NULL };
        check(ip_out_contains(-1, show_br, "forward_delay 0 ") && ip_out_contains(-1, show_br, "stp_state 0 ") &&
              ip_out_contains(-1, show_br, "mcast_snooping 0 ") && ip_out_contains(-1, show_br, ",UP"),
              "bridge is up with forward_delay 0, stp_state 0, mcast_snooping 0");
        r = net_bridge_add(net, la->bridge);
        check(r == -EEXIST && streq(net_error(net), "creating bridge mrbr1: Object exists"),
              "a second bridge %s fails with -EEXIST: \"%s\"", la->bridge, net_error(net));

        Node alpha, beta;
        if (!check(node_spawn(&alpha) == 0 && node_spawn(&beta) == 0, "two node processes in namespaces of their own"))
                goto finish;

        Node *nodes[] = { &alpha, &beta };
        const NetplanLink *links[] = { la, lb };
        for (size_t i = 0; i < 2; i++) {
                NetVeth v = { .host_name = links[i]->host_ifname, .bridge = links[i]->bridge,
                              .netns_fd = nodes[i]->netns_fd, .peer_name = links[i]->ifname, .mac = links[i]->mac,
                              .ipv4_cidr = links[i]->ipv4_cidr, .ipv6_cidr = links[i]->ipv6_cidr };
                t0 = now_usec();
                r = net_veth_add(net, &v);
                check(r == 0, "veth %s -> %s in node %zu (%.2f ms)%s%s", v.host_name, v.peer_name, i + 1,
                      (now_usec() - t0) / 1000.0, r < 0 ? ": " : "", r < 0 ? net_error(net) : "");
        }

        char *show_a[] = { "ip", "-o", "addr", "show", "dev", "eth1", NULL };
        char *show_al[] = { "ip", "-o", "link", "show", "dev", "eth1", NULL };
        char *show_lo[] = { "ip", "-o", "link", "show", "dev", "lo", NULL };
        check(ip_out_contains(alpha.netns_fd, show_a, "inet 192.168.1.1/24 ") &&
              ip_out_contains(alpha.netns_fd, show_a, "inet6 2001:db8:1::1/64 ") &&
              ip_out_contains(alpha.netns_fd, show_al, "link/ether 52:54:00:12:01:01 ") &&
              ip_out_contains(alpha.netns_fd, show_al, "state UP") &&
              ip_out_contains(alpha.netns_fd, show_lo, "<LOOPBACK,UP,LOWER_UP>"),
              "inside alpha: eth1 is up with 52:54:00:12:01:01, 192.168.1.1/24, 2001:db8:1::1/64; lo is up");
        char *show_host[] = { "ip", "-o", "link", "show", "dev", (char *) la->host_ifname, NULL };
        check(ip_out_contains(-1, show_host, "master mrbr1 ") && ip_out_contains(-1, show_host, "state UP"),
              "host end %s is up in bridge mrbr1", la->host_ifname);
        char *show_eth1[] = { "ip", "-o", "link", "show", "dev", "eth1", NULL };
        check(!ip_out_contains(-1, show_eth1, "eth1"), "no eth1 ever appears in the runner's namespace");

        double rtt;
        int pr = ping(&alpha, lb->ipv4, NULL, &rtt);
        check(pr == 0, "alpha pings beta at %s (%.3f ms)", lb->ipv4, rtt);
        pr = ping(&beta, la->ipv6, NULL, &rtt);
        check(pr == 0, "beta pings alpha at %s (%.3f ms)", la->ipv6, rtt);

        /* The runner's side of the bridge, as NixOS's container bridge has: .254 and ::fe. */
        Node runner = { .netns_fd = -1 };
        r = net_addr_add(net, la->bridge, "192.168.1.254/24");
        int r6 = net_addr_add(net, la->bridge, "2001:db8:1::fe/64");
        int p4 = ping(&runner, la->ipv4, NULL, &rtt);
        pr = ping(&runner, lb->ipv6, NULL, &rtt);
        check(r == 0 && r6 == 0 && p4 == 0 && pr == 0,
              "bridge addresses 192.168.1.254/24 and 2001:db8:1::fe/64: the runner pings alpha and beta%s%s",
              r < 0 || r6 < 0 ? ": " : "", r < 0 || r6 < 0 ? net_error(net) : "");
        r = net_addr_add(net, la->bridge, "2001:db8:1::fe");
        check(r == -EINVAL && streq(net_error(net), "adding 2001:db8:1::fe to mrbr1: address '2001:db8:1::fe' has "
                                    "no prefix length (as in /24): Invalid argument"),
              "an address without prefix length is refused: \"%s\"", net_error(net));
        t0 = now_usec();
        r = net_link_set_up(net, la->bridge, true);
        check(r == 0 && now_usec() - t0 < 100000, "setting the bridge up (not a port) returns at once (%.2f ms)",
              (now_usec() - t0) / 1000.0);

        r = net_link_set_up(net, lb->host_ifname, false);
        check(r == 0 && ping(&alpha, lb->ipv4, NULL, &rtt) != 0 && ping(&alpha, lb->ipv6, NULL, &rtt) != 0,
              "block: %s down, alpha cannot reach beta by IPv4 or IPv6", lb->host_ifname);
        r = net_link_set_up(net, lb->host_ifname, true);
        check(r == 0 && ping(&alpha, lb->ipv4, NULL, &rtt) == 0 && ping(&alpha, lb->ipv6, NULL, &rtt) == 0,
              "unblock: %s up, alpha reaches beta again", lb->host_ifname);

        if (no_netem) {
                const char *what[] = { "netem delay 100 ms", "tc shows netem", "netem replaced by delay 50 ms",
                                       "netem cleared", "clearing netem again", "tc shows no netem",
                                       "netem loss 100%", "netem rate 800 kbit" };
                for (size_t i = 0; i < ELEMENTSOF(what); i++)
                        skip("netem: the kernel has no sch_netem", what[i]);
        } else {
                r = net_netem_set(net, lb->host_ifname, &(NetemSpec) { .delay_ms = 100 });
                pr = ping(&alpha, lb->ipv4, NULL, &rtt);
                check(r == 0 && pr == 0 && rtt >= 90, "netem delay 100 ms on %s: RTT %.1f ms >= 90%s%s", lb->host_ifname,
                      rtt, r < 0 ? ": " : "", r < 0 ? net_error(net) : "");
                char *show_q[] = { "tc", "qdisc", "show", "dev", (char *) lb->host_ifname, NULL };
                check(ip_out_contains(-1, show_q, "qdisc netem ") && ip_out_contains(-1, show_q, "delay 100ms"),
                      "tc shows netem delay 100ms on %s", lb->host_ifname);
                r = net_netem_set(net, lb->host_ifname, &(NetemSpec) { .delay_ms = 50, .jitter_ms = 1 });
                pr = ping(&alpha, lb->ipv4, NULL, &rtt);
                check(r == 0 && pr == 0 && rtt >= 45 && rtt < 90, "netem replaced by delay 50 ms: RTT %.1f ms", rtt);
                r = net_netem_set(net, lb->host_ifname, NULL);
                pr = ping(&alpha, lb->ipv4, NULL, &rtt);
                check(r == 0 && pr == 0 && rtt < 40, "netem cleared: RTT back to %.3f ms", rtt);
                check(net_netem_set(net, lb->host_ifname, NULL) == 0, "clearing netem again is a no-op");
                check(!ip_out_contains(-1, show_q, "netem"), "tc shows no netem on %s", lb->host_ifname);

                r = net_netem_set(net, lb->host_ifname, &(NetemSpec) { .loss_percent = 100 });
                check(r == 0 && ping(&alpha, lb->ipv4, NULL, &rtt) != 0, "netem loss 100%%: ping fails");
                /* 800 kbit/s is 100 kB/s: a 10 kB echo reply takes about 100 ms to leave. */
                r = net_netem_set(net, la->host_ifname, &(NetemSpec) { .rate_kbit = 800 });
                int r2 = net_netem_set(net, lb->host_ifname, NULL);
                pr = ping(&beta, la->ipv4, "10000", &rtt);
                check(r == 0 && r2 == 0 && pr == 0 && rtt >= 90,
                      "netem rate 800 kbit on %s: a 10 kB ping takes %.1f ms >= 90", la->host_ifname, rtt);
                net_netem_set(net, la->host_ifname, NULL);
        }

        r = net_netem_set(net, lb->host_ifname, &(NetemSpec) { .loss_percent = 101 });
        check(r == -EINVAL && strstr(net_error(net), "setting netem on n2v1-beta: "),
              "netem loss 101%% is refused: \"%s\"", net_error(net));
        r = net_netem_set(net, "nosuchlink", &(NetemSpec) { .delay_ms = 1 });
        check(r < 0 && strstr(net_error(net), "nosuchlink"), "netem on a missing link names it: \"%s\"",
              net_error(net));

        /* The VM: a tap in the same bridge; a frame written to it is answered by alpha. */
        int tap = -1;
        t0 = now_usec();
        r = net_tap_open(net, lg->host_ifname, lg->bridge, &tap);
        check(r == 0 && tap >= 0, "tap %s opened (%.2f ms)%s%s", lg->host_ifname, (now_usec() - t0) / 1000.0,
              r < 0 ? ": " : "", r < 0 ? net_error(net) : "");
        char *show_tap[] = { "ip", "-d", "-o", "link", "show", "dev", (char *) lg->host_ifname, NULL };
        check(ip_out_contains(-1, show_tap, "master mrbr1 ") && ip_out_contains(-1, show_tap, ",UP") &&
              ip_out_contains(-1, show_tap, "tun type tap"), "tap %s is up in bridge mrbr1", lg->host_ifname);
        check((fcntl(tap, F_GETFD) & FD_CLOEXEC) != 0, "tap fd is O_CLOEXEC");
        uint8_t gmac[6] = { 0x52, 0x54, 0x00, 0x12, 0x01, 0x03 };
        check(tap >= 0 && tap_arp(tap, gmac, lg->ipv4, la->ipv4, la->mac),
              "ARP who-has %s written to the tap is answered by alpha (%s)", la->ipv4, la->mac);
        r = net_link_set_up(net, lg->host_ifname, false);
        errno = 0;
        bool answered = tap_arp(tap, gmac, lg->ipv4, la->ipv4, la->mac);
        int write_errno = errno;
        check(r == 0 && !answered, "block the VM: tap down, alpha does not answer (QEMU's write: %s)",
              write_errno ? strerror(write_errno) : "no error");
        r = net_link_set_up(net, lg->host_ifname, true);
        check(r == 0 && tap_arp(tap, gmac, lg->ipv4, la->ipv4, la->mac), "unblock the VM: tap up, alpha answers");
        int tap2 = -1;
        r = net_tap_open(net, lg->host_ifname, lg->bridge, &tap2);
        check(r == -EBUSY, "a second fd on the busy tap: -EBUSY (\"%s\")", net_error(net));
        close(tap);
        check(ip_out_contains(-1, show_tap, "master mrbr1 "), "the tap persists after its fd is closed");
        r = net_tap_open(net, lg->host_ifname, lg->bridge, &tap);
        check(r == 0 && tap_arp(tap, gmac, lg->ipv4, lb->ipv4, lb->mac),
              "reopening the tap (VM restarted): beta answers ARP through it");
        close(tap);

        /* Errors name what failed. */
        NetVeth bad = { .host_name = "n9v1-x", .bridge = "mrbr7", .netns_fd = alpha.netns_fd, .peer_name = "eth9" };
        r = net_veth_add(net, &bad);
        check(r == -ENODEV && streq(net_error(net), "creating veth n9v1-x (peer eth9 in the node's namespace, "
                                    "bridge mrbr7): looking up mrbr7: No such device"),
              "veth into a missing bridge: \"%s\"", net_error(net));
        NetVeth clash = { .host_name = "n9v1-x", .bridge = "mrbr1", .netns_fd = alpha.netns_fd, .peer_name = "eth1" };
        r = net_veth_add(net, &clash);
        check(r == -EEXIST && strstr(net_error(net), "creating veth n9v1-x (peer eth1") &&
              !ip_out_contains(-1, (char *[]) { "ip", "-o", "link", NULL }, "n9v1-x"),
              "a peer name taken inside the node: -EEXIST, nothing left behind (\"%s\")", net_error(net));
        NetVeth badaddr = { .host_name = "n9v1-x", .bridge = "mrbr1", .netns_fd = alpha.netns_fd,
                            .peer_name = "eth9", .ipv4_cidr = "192.168.1.300/24" };
        r = net_veth_add(net, &badaddr);
        check(r < 0 && strstr(net_error(net), "address '192.168.1.300/24'") &&
              !ip_out_contains(-1, (char *[]) { "ip", "-o", "link", NULL }, "n9v1-x") &&
              !ip_out_contains(alpha.netns_fd, (char *[]) { "ip", "-o", "link", NULL }, "eth9"),
              "a bad address: error names it, the half-made pair is gone (\"%s\")", net_error(net));

        /* A restarted container: new namespace, same host name. */
        node_stop(&beta);
        n_all_nodes--;
        if (node_spawn(&beta) == 0) {
                NetVeth v = { .host_name = lb->host_ifname, .bridge = lb->bridge, .netns_fd = beta.netns_fd,
                              .peer_name = lb->ifname, .mac = lb->mac, .ipv4_cidr = lb->ipv4_cidr,
                              .ipv6_cidr = lb->ipv6_cidr };
                r = net_veth_add(net, &v);
                check(r == 0 && ping(&alpha, lb->ipv6, NULL, &rtt) == 0,
                      "beta restarted in a new namespace: its veth is made again and answers%s%s",
                      r < 0 ? ": " : "", r < 0 ? net_error(net) : "");
        } else
                check(false, "respawning beta");

        if (bench_n > 0)
                bench(bench_n);

finish:
        t0 = now_usec();
        net_free(net);
        note("net_free took %.2f ms", (now_usec() - t0) / 1000.0);
        _cleanup_free_ char *ours = link_names(-1);
        check(ours && streq(ours, "lo\n"), "after net_free only lo is left in the test's namespace");

        nodes_stop_all();
        netplan_free(plan);

        _cleanup_free_ char *host_after = NULL;
        if (setns(host_ns, CLONE_NEWNET) == 0)
                host_after = link_names(-1);
        bool leaked = !host_after;
        for (char *p = host_after; p && *p; p = strchr(p, '\n') + 1) {
                char name[IFNAMSIZ + 1] = "";
                sscanf(p, "%16[^\n]", name);
                if (!has_line(host_before, name)) {
                        if (is_ours(name))
                                leaked = true;
                        note("host link appeared during the test: %s%s", name,
                             is_ours(name) ? " (one of ours!)" : " (not ours: another process made it)");
                }
        }
        check(!leaked, "nothing leaked into the host's namespace (`ip -o link` before and after)");

        printf("%u passed, %u failed", n_passed, n_failed);
        if (n_skipped > 0)
                printf(" (%u skipped)", n_skipped);
        putchar('\n');
        return n_failed == 0 ? 0 : 1;
}
