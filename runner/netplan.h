/* netplan.h: the pure addressing plan of a test's virtual networks: node numbers, interface
 * names, MACs, IPv4/IPv6 addresses and /etc/hosts, exactly as the NixOS test framework does. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/* NixOS numbers at most 254 machines (nodes and containers together) and 255 VLANs. */
#define NETPLAN_MAX_NODES 254u
#define NETPLAN_MAX_VLAN 255u

#define NETPLAN_IFNAME_MAX 16 /* IFNAMSIZ: 15 characters and the NUL */

/*
 * Names, all unique within one run (the runner's network namespace is private, so
 * they cannot clash with the host's):
 *
 *   bridge of VLAN V                 "mrbr<V>"                      mrbr1, mrbr255
 *   host end of node N on VLAN V     "n<N>v<V>-<frag>", cut at 15   n2v1-server
 *   interface inside the node        "eth<k>", k = 1-based position of V in the node's vlans
 *
 * N is the node number (below) and is unique per node; a node may not list a VLAN twice, so
 * (N, V) is unique. "n<N>v<V>" is at most 8 characters and is never cut, and it reads back
 * unambiguously (digits end at 'v' and at '-'), so every host name is unique whatever the
 * node names are. <frag> is only there to help a human reading `ip link`: the node name
 * with bytes outside [A-Za-z0-9_.-] dropped, each non-ASCII character written as one '_';
 * when nothing is left, the dash goes too ("n3v1").
 *
 * The same host name serves a container's veth host end and a VM's tap.
 */
typedef struct NetplanLink {
        unsigned vlan;
        unsigned index;                          /* k in eth<k>, from 1 */
        char ifname[NETPLAN_IFNAME_MAX];         /* inside the node: "eth1" */
        char host_ifname[NETPLAN_IFNAME_MAX];    /* runner side: "n2v1-server" */
        char bridge[NETPLAN_IFNAME_MAX];         /* "mrbr1" */
        char mac[18];                            /* "52:54:00:12:01:02", lower-case hex */
        char ipv4[16];                           /* "192.168.1.2" */
        char ipv4_cidr[19];                      /* "192.168.1.2/24" */
        char ipv6[40];                           /* "2001:db8:1::2" (NixOS's text, see below) */
        char ipv6_cidr[44];                      /* "2001:db8:1::2/64" */
} NetplanLink;

/* Input: one per node, in any order. vlans may be empty (the node has no network). */
typedef struct NetplanNodeSpec {
        const char *name;
        const unsigned *vlans;
        size_t n_vlans;
} NetplanNodeSpec;

typedef struct NetplanNode {
        char *name;
        unsigned number;        /* 1-based position of name in strcmp order of all nodes */
        NetplanLink *links;     /* in the order of the node's vlans: links[0] is primary */
        size_t n_links;
} NetplanNode;

typedef struct Netplan {
        NetplanNode *nodes;     /* in the caller's order */
        size_t n_nodes;
        unsigned *vlans;        /* every VLAN some node joins, ascending, no repeats */
        size_t n_vlans;
} Netplan;

/* Builds the plan. On error returns -EINVAL (empty name, a name with whitespace, a control
 * character or '#', which would break /etc/hosts; a VLAN over 255; a VLAN listed twice by one
 * node), -EEXIST (two nodes with one name) or -E2BIG (more than 254 nodes), and, when
 * ret_error is not NULL, a message naming the node and what to change. */
int netplan_new(const NetplanNodeSpec *specs, size_t n_specs, Netplan **ret, char **ret_error);
void netplan_free(Netplan *plan);

/* The node called name, or NULL. */
const NetplanNode *netplan_find(const Netplan *plan, const char *name);

/* The node's first link, from which /etc/hosts takes its addresses; NULL without VLANs. */
const NetplanLink *netplan_primary(const NetplanNode *node);

/* The text for every node's /etc/hosts (the same for all nodes):
 *   127.0.0.1 localhost
 *   ::1 localhost ip6-localhost ip6-loopback
 * then, for each node in node-number order that has a VLAN, "<ipv4> <name>" and
 * "<ipv6> <name>" of its primary link. Every line ends in '\n'. */
int netplan_hosts(const Netplan *plan, char **ret);

/* The pieces, for callers that do not need a whole plan. They return -EINVAL when vlan > 255,
 * node is 0 or over 254, or (netplan_host_ifname) the name is NULL.
 * IPv6 is written as NixOS writes it: "2001:db8:${toString vlan}::${toString n}", decimal digits
 * used as a hex group, so VLAN 10 gives the group 0x10 (kernel text "2001:db8:10::"), and VLAN 0
 * gives "2001:db8:0::N", which the kernel prints as "2001:db8::N". */
int netplan_ipv4(unsigned vlan, unsigned node, bool with_prefix, char *buf, size_t size);
int netplan_ipv6(unsigned vlan, unsigned node, bool with_prefix, char *buf, size_t size);
int netplan_mac(unsigned vlan, unsigned node, char buf[static 18]);
int netplan_bridge_name(unsigned vlan, char buf[static NETPLAN_IFNAME_MAX]);
int netplan_host_ifname(const char *node_name, unsigned node, unsigned vlan,
                        char buf[static NETPLAN_IFNAME_MAX]);
