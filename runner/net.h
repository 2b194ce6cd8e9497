/* net.h: the test's virtual networks, made with libnl-3 in the runner's own network namespace:
 * a bridge per VLAN, veth pairs into containers, taps for QEMU, block/unblock and netem. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct Net Net;

/* Opens an rtnetlink socket in the calling thread's network namespace, which is where every
 * bridge, host end and tap is made. One Net per namespace: its links share an IFLA_GROUP
 * (0x6d72xxxx) so that net_free deletes them in one batch.
 * Calls may block for a short while: see the waits noted below (typically under 1 ms). */
int net_new(Net **ret);

/* Deletes every link this Net made (one RTM_DELLINK for its group: 50 veths and a bridge in
 * about 50 ms, against about 17 ms a link one by one; qdiscs go with their links, a veth's
 * peer with its host end), then frees it. Links already gone are no error. */
void net_free(Net *net);

/* The last error, naming the operation and the interface, e.g.
 * "creating veth n1v1-a (peer eth1 in the node's namespace, bridge mrbr1): Object exists";
 * "" when none. Valid until
 * the next call on this Net. Every function below returns a negative errno on failure. */
const char *net_error(const Net *net);

/* A bridge, up, with STP off, forward delay 0 and multicast snooping off, so a port forwards
 * as soon as it is enslaved and IPv6 neighbour discovery is never filtered. */
int net_bridge_add(Net *net, const char *name);

/* Adds an address ("192.168.1.254/24", "2001:db8:1::fe/64") to a link in the runner's
 * namespace, e.g. to give the bridge one as NixOS's container bridge has. IPv6 skips DAD,
 * and the call returns once the address is local (see net_veth_add). */
int net_addr_add(Net *net, const char *ifname, const char *cidr);

typedef struct NetVeth {
        const char *host_name;  /* host end, in the runner's namespace, enslaved to bridge */
        const char *bridge;
        int netns_fd;           /* the node's network namespace (see net_netns_open) */
        const char *peer_name;  /* the name inside: "eth1" */
        const char *mac;        /* of the peer, "52:54:00:12:01:02"; NULL: the kernel picks */
        const char *ipv4_cidr;  /* NULL: none */
        const char *ipv6_cidr;  /* NULL: none; added with IFA_F_NODAD, usable at once */
} NetVeth;

/* Makes a veth pair whose peer is born inside the node's namespace under its final name and
 * MAC (one RTM_NEWLINK, so no temporary name ever exists in the runner's namespace); the host
 * end is enslaved and up. Inside, the peer and lo are brought up and the peer gets its
 * addresses. On return traffic flows: it waits (at most 2 s each, best effort, typically
 * 0.5 ms) until the IPv6 address is local (even with NODAD the kernel installs its local
 * route from a workqueue, which lags while another namespace is torn down) and until the
 * bridge forwards through the host end (carrier reaches the bridge through linkwatch).
 * If a link called host_name that this Net made is still there (a node restarted before
 * the kernel finished tearing its old namespace down), it is deleted and the pair made again.
 * On failure nothing of the pair is left. About 1.5 ms a pair on a 2-core VM. */
int net_veth_add(Net *net, const NetVeth *veth);

/* Opens /proc/<pid>/ns/net (O_CLOEXEC), for NetVeth.netns_fd. */
int net_netns_open(pid_t pid);

/* Opens the tap called name (IFF_TAP | IFF_NO_PI), creating it persistent, enslaved to bridge
 * and up on first use, and returns an O_CLOEXEC fd for QEMU's "-netdev tap,fd=N" in *ret_fd
 * (dup2 it into the child). Because the tap persists, a VM that is stopped and started again
 * gets the same tap by calling this again; the tap stays until net_free or net_link_del. Only
 * one fd may be attached at a time (-EBUSY otherwise). The tap keeps a kernel-chosen MAC: it
 * must differ from the guest NIC's, or the bridge would keep the guest's frames for itself. */
int net_tap_open(Net *net, const char *name, const char *bridge, int *ret_fd);

/* Sets a link in the runner's namespace up or down: block/unblock on a node's host end.
 * Setting a bridge port with carrier up waits (at most 1 s) until the bridge forwards. */
int net_link_set_up(Net *net, const char *name, bool up);

/* Deletes a link (a veth host end takes its peer along). -ENODEV if there is none. */
int net_link_del(Net *net, const char *name);

/* Impairment of the traffic the runner's namespace sends out of ifname. On a node's host end
 * that is the traffic *to* the node; to impair both ways, also impair the other nodes' ends,
 * and to impair a whole VLAN apply it to every host end in it. */
typedef struct NetemSpec {
        double delay_ms;
        double jitter_ms;
        double loss_percent;    /* 0 to 100 */
        uint64_t rate_kbit;     /* 0: no limit */
} NetemSpec;

/* Installs (or replaces) netem as the root qdisc of ifname; spec NULL deletes the root qdisc
 * again (a no-op when this Net set none on a link it made, or when there is only the default).
 * -EINVAL for negative or not-a-number values, a loss over 100, a delay over 9e12 ms or a rate
 * over 1.8e16 kbit; -EOPNOTSUPP when the kernel has no netem
 * (this project's Firecracker CI kernels are built without CONFIG_NET_SCH_NETEM). */
int net_netem_set(Net *net, const char *ifname, const NetemSpec *spec);

/* The RTM_NEWQDISC request net_netem_set sends for spec on the link ifindex, as bytes (free
 * them): those `tc qdisc replace dev <link> root netem ...` sends for the same settings, with
 * nlmsg_seq and nlmsg_pid 0 (the socket fills them in). -EINVAL for a spec net_netem_set refuses. */
int net_netem_message(int ifindex, const NetemSpec *spec, void **ret, size_t *ret_size);

#define NET_NEED_TUN   (1u << 0) /* the test has VMs: /dev/net/tun must work */
#define NET_NEED_NETEM (1u << 1) /* the test impairs links: sch_netem must load */

/* Checks, in a throwaway network namespace, that namespaces, bridges and veths can be made,
 * and what needs asks for. Returns 0 when all of it works, or -EOPNOTSUPP/-EPERM/... with a
 * message in *ret_message (free it) saying what failed and what to enable. */
int net_preflight(unsigned needs, char **ret_message);
