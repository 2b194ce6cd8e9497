/* net.c: bridges, veth pairs, taps, link state and netem over rtnetlink with libnl-3 (see net.h).
 * Nothing here runs `ip` or `tc`; what libnl 3.7 cannot express (bridge options, netem rate and
 * 64-bit delays) is sent as a hand-built message over the same libnl socket. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE     /* setns, unshare, vasprintf */
#endif
#include "net.h"

#include <fcntl.h>
#include <inttypes.h>
#include <net/if.h>
#include <linux/if.h>   /* IFF_LOWER_UP, IF_OPER_UP; after net/if.h */
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <sys/ioctl.h>
#include <linux/if_bridge.h>
#include <linux/if_link.h>
#include <linux/if_tun.h>
#include <linux/pkt_sched.h>
#include <netlink/netlink.h>
#include <netlink/errno.h>
#include <netlink/msg.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/link/bridge.h>
#include <netlink/route/link/veth.h>
#include <netlink/route/qdisc.h>
#include <netlink/route/route.h>
#include <netlink/route/tc.h>

#include "util.h"

typedef enum OwnedKind {
        OWNED_BRIDGE,
        OWNED_VETH,
        OWNED_TAP,
} OwnedKind;

typedef struct Owned {
        char name[IFNAMSIZ];
        OwnedKind kind;
        bool netem;
} Owned;

struct Net {
        struct nl_sock *sk;
        uint32_t group;         /* IFLA_GROUP of every link made here, for one batched delete */
        Owned *owned;
        size_t n_owned, n_allocated;
        char error[512];
};

/* libnl folds errnos into its own codes; callers of this module expect errnos back. */
static int nlerr_to_errno(int nlerr) {
        switch (nlerr < 0 ? -nlerr : nlerr) {
        case NLE_SUCCESS:       return 0;
        case NLE_INTR:          return -EINTR;
        case NLE_BAD_SOCK:      return -EBADF;
        case NLE_AGAIN:         return -EAGAIN;
        case NLE_NOMEM:         return -ENOMEM;
        case NLE_EXIST:         return -EEXIST;
        case NLE_INVAL:         return -EINVAL;
        case NLE_RANGE:         return -ERANGE;
        case NLE_MSGSIZE:       return -EMSGSIZE;
        case NLE_OPNOTSUPP:     return -EOPNOTSUPP;
        case NLE_AF_NOSUPPORT:  return -EAFNOSUPPORT;
        case NLE_OBJ_NOTFOUND:  return -ENOENT;
        case NLE_NOATTR:        return -ENODATA;
        case NLE_MISSING_ATTR:  return -EINVAL;
        case NLE_AF_MISMATCH:   return -EINVAL;
        case NLE_BUSY:          return -EBUSY;
        case NLE_PROTO_MISMATCH: return -EPROTONOSUPPORT;
        case NLE_NOACCESS:      return -EACCES;
        case NLE_PERM:          return -EPERM;
        case NLE_NODEV:         return -ENODEV;
        case NLE_IMMUTABLE:     return -EROFS;
        default:                return -EIO;
        }
}

static bool nlerr_is_absent(int nlerr) {
        return nlerr == -NLE_OBJ_NOTFOUND || nlerr == -NLE_NODEV;
}

static int net_failv(Net *net, int r, const char *reason, const char *format, va_list ap) {
        int n = vsnprintf(net->error, sizeof net->error, format, ap);
        if (n >= 0 && (size_t) n < sizeof net->error)
                snprintf(net->error + n, sizeof net->error - n, ": %s", reason);
        return r;
}

/* Records "<operation>: <libnl's text>" and returns the matching errno. */
static int net_fail_nl(Net *net, int nlerr, const char *format, ...) _printf_(3, 4);
static int net_fail_nl(Net *net, int nlerr, const char *format, ...) {
        va_list ap;
        va_start(ap, format);
        int r = net_failv(net, nlerr_to_errno(nlerr), nl_geterror(nlerr), format, ap);
        va_end(ap);
        return r;
}

/* Records "<operation>: <strerror>" and returns r (a negative errno). */
static int net_fail(Net *net, int r, const char *format, ...) _printf_(3, 4);
static int net_fail(Net *net, int r, const char *format, ...) {
        va_list ap;
        va_start(ap, format);
        net_failv(net, r, strerror(-r), format, ap);
        va_end(ap);
        return r;
}

const char *net_error(const Net *net) {
        return net ? net->error : "";
}

static bool ifname_ok(const char *name) {
        return name && *name && strlen(name) < IFNAMSIZ;
}

static void nl_socket_freep(struct nl_sock **sk) {
        if (*sk)
                nl_socket_free(*sk);
}

static void rtnl_link_putp(struct rtnl_link **l) {
        if (*l)
                rtnl_link_put(*l);
}

static void rtnl_addr_putp(struct rtnl_addr **a) {
        if (*a)
                rtnl_addr_put(*a);
}

static void nl_addr_putp(struct nl_addr **a) {
        if (*a)
                nl_addr_put(*a);
}

static void rtnl_qdisc_putp(struct rtnl_qdisc **q) {
        if (*q)
                rtnl_qdisc_put(*q);
}

static void nlmsg_freep(struct nl_msg **m) {
        if (*m)
                nlmsg_free(*m);
}

static int socket_open(struct nl_sock **ret) {
        _cleanup_(nl_socket_freep) struct nl_sock *sk = nl_socket_alloc();
        if (!sk)
                return -NLE_NOMEM;
        int r = nl_connect(sk, NETLINK_ROUTE);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(sk);
        return 0;
}

typedef struct NsSocket {
        int netns_fd;
        struct nl_sock *sk;
        int errno_r;    /* setns failed */
        int nl_r;       /* the socket failed */
} NsSocket;

static void *ns_socket_thread(void *userdata) {
        NsSocket *a = userdata;
        if (setns(a->netns_fd, CLONE_NEWNET) < 0) {
                a->errno_r = -errno;
                return NULL;
        }
        a->nl_r = socket_open(&a->sk);
        return NULL;
}

/* An rtnetlink socket bound to another namespace. setns happens on a short-lived thread, so
 * the runner's own threads never leave its namespace; the socket keeps the namespace it was
 * made in for its whole life. */
static int ns_socket_open(Net *net, int netns_fd, const char *what, struct nl_sock **ret) {
        NsSocket a = { .netns_fd = netns_fd };
        pthread_t t;
        int r = pthread_create(&t, NULL, ns_socket_thread, &a);
        if (r != 0)
                return net_fail(net, -r, "%s: starting a thread to enter the node's network namespace", what);
        pthread_join(t, NULL);
        if (a.errno_r < 0)
                return net_fail(net, a.errno_r, "%s: entering the node's network namespace (fd %d)", what, netns_fd);
        if (a.nl_r < 0)
                return net_fail_nl(net, a.nl_r, "%s: opening rtnetlink in the node's network namespace", what);
        *ret = a.sk;
        return 0;
}

int net_netns_open(pid_t pid) {
        char path[64];
        snprintf(path, sizeof path, "/proc/%d/ns/net", (int) pid);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        return fd < 0 ? -errno : fd;
}

int net_new(Net **ret) {
        static unsigned counter;
        Net *net = calloc(1, sizeof *net);
        if (!net)
                return -ENOMEM;
        /* Non-zero (group 0 is every link's default) and distinct per Net in this process. */
        net->group = 0x6d720000u | (__atomic_add_fetch(&counter, 1, __ATOMIC_RELAXED) & 0xffffu);
        int r = socket_open(&net->sk);
        if (r < 0) {
                free(net);
                return nlerr_to_errno(r);
        }
        *ret = net;
        return 0;
}

static Owned *owned_find_kind(Net *net, const char *name, OwnedKind kind) {
        for (size_t i = 0; i < net->n_owned; i++)
                if (streq(net->owned[i].name, name) && net->owned[i].kind == kind)
                        return &net->owned[i];
        return NULL;
}

static Owned *owned_find(Net *net, const char *name) {
        for (size_t i = 0; i < net->n_owned; i++)
                if (streq(net->owned[i].name, name))
                        return &net->owned[i];
        return NULL;
}

static int owned_add(Net *net, const char *name, OwnedKind kind) {
        Owned *o = owned_find(net, name);
        if (!o) {
                if (net->n_owned == net->n_allocated) {
                        size_t n = net->n_allocated ? net->n_allocated * 2 : 16;
                        Owned *p = realloc(net->owned, n * sizeof *p);
                        if (!p)
                                return -ENOMEM;
                        net->owned = p;
                        net->n_allocated = n;
                }
                o = &net->owned[net->n_owned++];
        }
        *o = (Owned) { .kind = kind };
        snprintf(o->name, sizeof o->name, "%s", name);
        return 0;
}

static void owned_remove(Net *net, const char *name) {
        Owned *o = owned_find(net, name);
        if (!o)
                return;
        size_t i = (size_t) (o - net->owned);
        memmove(o, o + 1, (net->n_owned - i - 1) * sizeof *o);
        net->n_owned--;
}

/* rtnl_link_delete by name; returns a libnl error code. */
static int link_delete(struct nl_sock *sk, const char *name) {
        _cleanup_(rtnl_link_putp) struct rtnl_link *link = rtnl_link_alloc();
        if (!link)
                return -NLE_NOMEM;
        rtnl_link_set_name(link, name);
        return rtnl_link_delete(sk, link);
}

/* One RTM_DELLINK for the whole group: the kernel unregisters the links as a batch, with one
 * RCU grace period instead of one per link (about 17 ms each on a 2-core VM). */
static int group_delete(Net *net) {
        _cleanup_(nlmsg_freep) struct nl_msg *msg = nlmsg_alloc_simple(RTM_DELLINK, 0);
        struct ifinfomsg ifi = { .ifi_family = AF_UNSPEC };
        if (!msg)
                return -NLE_NOMEM;
        if (nlmsg_append(msg, &ifi, sizeof ifi, NLMSG_ALIGNTO) < 0 ||
            nla_put_u32(msg, IFLA_GROUP, net->group) < 0)
                return -NLE_MSGSIZE;
        return nl_send_sync(net->sk, TAKE_PTR(msg));
}

void net_free(Net *net) {
        if (!net)
                return;
        if (net->n_owned > 0 && group_delete(net) < 0)
                for (size_t i = net->n_owned; i > 0; i--)
                        (void) link_delete(net->sk, net->owned[i - 1].name);
        nl_socket_free(net->sk);
        free(net->owned);
        free(net);
}

static int link_index(Net *net, struct nl_sock *sk, const char *name, const char *what) {
        _cleanup_(rtnl_link_putp) struct rtnl_link *link = NULL;
        int r = rtnl_link_get_kernel(sk, 0, name, &link);
        if (r < 0)
                return net_fail_nl(net, r, "%s: looking up %s", what, name);
        return rtnl_link_get_ifindex(link);
}

static int link_change(Net *net, struct nl_sock *sk, const char *name, struct rtnl_link *change, const char *what) {
        _cleanup_(rtnl_link_putp) struct rtnl_link *orig = NULL;
        int r = rtnl_link_get_kernel(sk, 0, name, &orig);
        if (r < 0)
                return net_fail_nl(net, r, "%s: looking up %s", what, name);
        r = rtnl_link_change(sk, orig, change, 0);
        if (r < 0)
                return net_fail_nl(net, r, "%s", what);
        return 0;
}

static void nl_cache_freep(struct nl_cache **c) {
        if (*c)
                nl_cache_free(*c);
}

/* Waits (at most a second) until the bridge forwards through port ifindex. A carrier change
 * reaches the bridge only when linkwatch runs, which is asynchronous, so without this the first
 * frames after a veth is made or unblocked may be dropped. operstate UP means linkwatch has
 * processed the latest carrier-on; FORWARDING, that the bridge has seen it. Best effort: a port
 * without carrier (a tap with no QEMU attached) is not waited for. */
static void port_wait_forwarding(Net *net, int ifindex) {
        uint64_t deadline = now_usec() + 1000000;

        for (;;) {
                _cleanup_(nl_cache_freep) struct nl_cache *cache = NULL;
                _cleanup_(rtnl_link_putp) struct rtnl_link *link = NULL;

                if (rtnl_link_alloc_cache(net->sk, AF_BRIDGE, &cache) < 0)
                        return;
                link = rtnl_link_get(cache, ifindex);
                if (!link || !(rtnl_link_get_flags(link) & IFF_LOWER_UP))
                        return;
                /* Not a port: the bridge itself is listed too, as its own master. */
                int master = rtnl_link_get_master(link);
                if (master <= 0 || master == ifindex)
                        return;
                if (rtnl_link_get_operstate(link) == IF_OPER_UP &&
                    rtnl_link_bridge_get_port_state(link) == BR_STATE_FORWARDING)
                        return;
                if (now_usec() >= deadline)
                        return;
                usleep(500);
        }
}

static int set_up(Net *net, struct nl_sock *sk, const char *name, bool up, const char *what) {
        _cleanup_(rtnl_link_putp) struct rtnl_link *change = rtnl_link_alloc();
        if (!change)
                return net_fail(net, -ENOMEM, "%s", what);
        if (up)
                rtnl_link_set_flags(change, IFF_UP);
        else
                rtnl_link_unset_flags(change, IFF_UP);
        return link_change(net, sk, name, change, what);
}

int net_link_set_up(Net *net, const char *name, bool up) {
        char what[64];
        if (!ifname_ok(name))
                return net_fail(net, -EINVAL, "setting link '%s' %s", name ? name : "", up ? "up" : "down");
        snprintf(what, sizeof what, "setting %s %s", name, up ? "up" : "down");
        int r = set_up(net, net->sk, name, up, what);
        if (r < 0 || !up)
                return r;
        int ifindex = link_index(net, net->sk, name, what);
        if (ifindex >= 0)
                port_wait_forwarding(net, ifindex);
        return 0;
}

int net_link_del(Net *net, const char *name) {
        if (!ifname_ok(name))
                return net_fail(net, -EINVAL, "deleting link '%s'", name ? name : "");
        int r = link_delete(net->sk, name);
        owned_remove(net, name);
        if (r < 0)
                return net_fail_nl(net, nlerr_is_absent(r) ? -NLE_NODEV : r, "deleting %s", name);
        return 0;
}

int net_bridge_add(Net *net, const char *name) {
        _cleanup_(nlmsg_freep) struct nl_msg *msg = NULL;
        struct ifinfomsg ifi = { .ifi_family = AF_UNSPEC, .ifi_flags = IFF_UP, .ifi_change = IFF_UP };
        struct nlattr *info, *data;
        int r;

        if (!ifname_ok(name))
                return net_fail(net, -EINVAL, "creating bridge '%s'", name ? name : "");

        /* libnl 3.7 has no setters for IFLA_BR_*, hence the message by hand. */
        msg = nlmsg_alloc_simple(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL);
        if (!msg)
                return net_fail(net, -ENOMEM, "creating bridge %s", name);
        if (nlmsg_append(msg, &ifi, sizeof ifi, NLMSG_ALIGNTO) < 0 ||
            nla_put_string(msg, IFLA_IFNAME, name) < 0 ||
            nla_put_u32(msg, IFLA_GROUP, net->group) < 0 ||
            !(info = nla_nest_start(msg, IFLA_LINKINFO)) ||
            nla_put_string(msg, IFLA_INFO_KIND, "bridge") < 0 ||
            !(data = nla_nest_start(msg, IFLA_INFO_DATA)) ||
            nla_put_u32(msg, IFLA_BR_FORWARD_DELAY, 0) < 0 ||
            nla_put_u32(msg, IFLA_BR_STP_STATE, 0) < 0 ||
            nla_put_u8(msg, IFLA_BR_MCAST_SNOOPING, 0) < 0 ||
            nla_nest_end(msg, data) < 0 ||
            nla_nest_end(msg, info) < 0)
                return net_fail(net, -EMSGSIZE, "creating bridge %s", name);

        r = nl_send_sync(net->sk, TAKE_PTR(msg));
        if (r < 0)
                return net_fail_nl(net, r, "creating bridge %s", name);
        r = owned_add(net, name, OWNED_BRIDGE);
        if (r < 0)
                return net_fail(net, r, "creating bridge %s", name);
        return 0;
}

typedef struct RouteReply {
        int type;
        bool acked;
} RouteReply;

static int route_type_cb(struct nl_msg *msg, void *userdata) {
        struct nlmsghdr *h = nlmsg_hdr(msg);
        if (h->nlmsg_type == RTM_NEWROUTE && nlmsg_datalen(h) >= (int) sizeof(struct rtmsg))
                ((RouteReply *) userdata)->type = ((struct rtmsg *) nlmsg_data(h))->rtm_type;
        return NL_OK;
}

static int route_ack_cb(struct nl_msg *msg, void *userdata) {
        (void) msg;
        ((RouteReply *) userdata)->acked = true;
        return NL_STOP;
}

/* The type of the route the kernel picks for addr (`ip route get`): RTN_LOCAL once the address
 * is one of sk's namespace's own. Returns a libnl error code on failure. */
static int route_type(struct nl_sock *sk, struct nl_addr *addr) {
        _cleanup_(nlmsg_freep) struct nl_msg *msg = nlmsg_alloc_simple(RTM_GETROUTE, 0);
        struct rtmsg rtm = {
                .rtm_family = (unsigned char) nl_addr_get_family(addr),
                .rtm_dst_len = (unsigned char) (nl_addr_get_len(addr) * 8),
        };
        struct nl_cb *cb, *base;
        RouteReply reply = { .type = -1 };
        int r;

        if (!msg)
                return -NLE_NOMEM;
        if (nlmsg_append(msg, &rtm, sizeof rtm, NLMSG_ALIGNTO) < 0 || nla_put_addr(msg, RTA_DST, addr) < 0)
                return -NLE_MSGSIZE;
        r = nl_send_auto(sk, msg);
        if (r < 0)
                return r;

        base = nl_socket_get_cb(sk);
        cb = nl_cb_clone(base);
        nl_cb_put(base);
        if (!cb)
                return -NLE_NOMEM;
        nl_cb_set(cb, NL_CB_VALID, NL_CB_CUSTOM, route_type_cb, &reply);
        nl_cb_set(cb, NL_CB_ACK, NL_CB_CUSTOM, route_ack_cb, &reply);
        /* The reply and the ACK come in separate reads; leaving the ACK behind would answer
         * the next request on this socket. An error reply is its own ACK. */
        do
                r = nl_recvmsgs(sk, cb);
        while (r >= 0 && !reply.acked);
        nl_cb_put(cb);
        return r < 0 ? r : reply.type;
}

/* Adds cidr to ifindex over sk; what names the operation for errors. */
static int addr_add(Net *net, struct nl_sock *sk, int ifindex, const char *cidr, const char *what) {
        _cleanup_(nl_addr_putp) struct nl_addr *local = NULL;
        _cleanup_(rtnl_addr_putp) struct rtnl_addr *addr = NULL;
        bool v6 = strchr(cidr, ':');
        int r;

        r = nl_addr_parse(cidr, v6 ? AF_INET6 : AF_INET, &local);
        if (r < 0)
                return net_fail_nl(net, r, "%s: address '%s'", what, cidr);
        if (!strchr(cidr, '/'))
                return net_fail(net, -EINVAL, "%s: address '%s' has no prefix length (as in /24)", what, cidr);

        addr = rtnl_addr_alloc();
        if (!addr)
                return net_fail(net, -ENOMEM, "%s", what);
        rtnl_addr_set_ifindex(addr, ifindex);
        r = rtnl_addr_set_local(addr, local);
        if (r < 0)
                return net_fail_nl(net, r, "%s: address %s", what, cidr);
        rtnl_addr_set_prefixlen(addr, (int) nl_addr_get_prefixlen(local));
        if (v6)
                rtnl_addr_set_flags(addr, IFA_F_NODAD);
        r = rtnl_addr_add(sk, addr, 0);
        if (r < 0)
                return net_fail_nl(net, r, "%s: adding address %s", what, cidr);

        /* Even with NODAD, IPv6 installs the address's local route only when addrconf's
         * workqueue runs "DAD"; until then packets to it are dropped. That queue also serves
         * namespace teardown and can lag by seconds (a restarted node's old namespace dying),
         * so wait until the address is local, for at most 2 s (best effort). */
        if (v6) {
                uint64_t deadline = now_usec() + 2000000;
                while (route_type(sk, local) != RTN_LOCAL && now_usec() < deadline)
                        usleep(500);
        }
        return 0;
}

int net_addr_add(Net *net, const char *ifname, const char *cidr) {
        char what[128];
        if (!ifname_ok(ifname) || !cidr)
                return net_fail(net, -EINVAL, "adding an address to '%s'", ifname ? ifname : "");
        snprintf(what, sizeof what, "adding %s to %s", cidr, ifname);
        int ifindex = link_index(net, net->sk, ifname, what);
        if (ifindex < 0)
                return ifindex;
        return addr_add(net, net->sk, ifindex, cidr, what);
}

static int veth_create(Net *net, const NetVeth *v, int bridge_index, const char *what) {
        _cleanup_(rtnl_link_putp) struct rtnl_link *link = rtnl_link_veth_alloc();
        _cleanup_(rtnl_link_putp) struct rtnl_link *peer = NULL;
        _cleanup_(nl_addr_putp) struct nl_addr *mac = NULL;
        int r;

        if (!link)
                return net_fail(net, -ENOMEM, "%s", what);
        peer = rtnl_link_veth_get_peer(link);

        rtnl_link_set_name(link, v->host_name);
        rtnl_link_set_master(link, bridge_index);
        rtnl_link_set_group(link, net->group);
        rtnl_link_set_flags(link, IFF_UP);

        /* Not IFF_UP for the peer: the kernel configures it before the pair is joined, and
         * veth_open then fails with ENOTCONN. It is brought up from inside instead. */
        rtnl_link_set_name(peer, v->peer_name);
        rtnl_link_set_ns_fd(peer, v->netns_fd);
        if (v->mac) {
                r = nl_addr_parse(v->mac, AF_LLC, &mac);
                if (r < 0 || nl_addr_get_len(mac) != 6)
                        return net_fail(net, -EINVAL, "%s: MAC address '%s' is not of the form 52:54:00:12:01:02",
                                        what, v->mac);
                rtnl_link_set_addr(peer, mac);
        }

        r = rtnl_link_add(net->sk, link, NLM_F_CREATE | NLM_F_EXCL);
        if (r < 0)
                return net_fail_nl(net, r, "%s", what);
        return 0;
}

/* The part inside the node: addresses on the peer, it and lo up. */
static int veth_inside(Net *net, const NetVeth *v, const char *what) {
        _cleanup_(nl_socket_freep) struct nl_sock *sk = NULL;
        _cleanup_(rtnl_link_putp) struct rtnl_link *peer = NULL, *lo = NULL, *up = NULL;
        int r, ifindex;

        r = ns_socket_open(net, v->netns_fd, what, &sk);
        if (r < 0)
                return r;

        r = rtnl_link_get_kernel(sk, 0, v->peer_name, &peer);
        if (r < 0)
                return net_fail_nl(net, r, "%s: looking up %s in the node", what, v->peer_name);
        ifindex = rtnl_link_get_ifindex(peer);

        up = rtnl_link_alloc();
        if (!up)
                return net_fail(net, -ENOMEM, "%s", what);
        rtnl_link_set_flags(up, IFF_UP);
        r = rtnl_link_change(sk, peer, up, 0);
        if (r < 0)
                return net_fail_nl(net, r, "%s: setting %s up in the node", what, v->peer_name);

        /* Addresses after the link is up: addr_add waits for an IPv6 address to become
         * local, which on a down link it never does. */
        if (v->ipv4_cidr && (r = addr_add(net, sk, ifindex, v->ipv4_cidr, what)) < 0)
                return r;
        if (v->ipv6_cidr && (r = addr_add(net, sk, ifindex, v->ipv6_cidr, what)) < 0)
                return r;

        r = rtnl_link_get_kernel(sk, 0, "lo", &lo);
        if (r < 0)
                return net_fail_nl(net, r, "%s: looking up lo in the node", what);
        if (!(rtnl_link_get_flags(lo) & IFF_UP)) {
                r = rtnl_link_change(sk, lo, up, 0);
                if (r < 0)
                        return net_fail_nl(net, r, "%s: setting lo up in the node", what);
        }
        return 0;
}

int net_veth_add(Net *net, const NetVeth *v) {
        char what[160];
        int r, bridge_index;

        if (!v || !ifname_ok(v->host_name) || !ifname_ok(v->bridge) || !ifname_ok(v->peer_name) || v->netns_fd < 0)
                return net_fail(net, -EINVAL, "creating veth '%s': host name, bridge, peer name (each 1 to 15 "
                                "characters) and a namespace fd are all needed",
                                v && v->host_name ? v->host_name : "");

        snprintf(what, sizeof what, "creating veth %s (peer %s in the node's namespace, bridge %s)",
                 v->host_name, v->peer_name, v->bridge);

        bridge_index = link_index(net, net->sk, v->bridge, what);
        if (bridge_index < 0)
                return bridge_index;

        r = veth_create(net, v, bridge_index, what);
        if (r == -EEXIST && owned_find_kind(net, v->host_name, OWNED_VETH)) {
                /* The node's previous pair, its namespace not yet torn down (or gone meanwhile). */
                int d = link_delete(net->sk, v->host_name);
                if (d >= 0 || nlerr_is_absent(d))
                        r = veth_create(net, v, bridge_index, what);
        }
        if (r < 0)
                return r;
        r = owned_add(net, v->host_name, OWNED_VETH);
        if (r < 0) {
                (void) link_delete(net->sk, v->host_name);
                return net_fail(net, r, "%s", what);
        }

        r = veth_inside(net, v, what);
        if (r < 0) {
                /* Half a link is worse than none: the caller sees the error and no veth. */
                (void) link_delete(net->sk, v->host_name);
                owned_remove(net, v->host_name);
                return r;
        }

        int ifindex = link_index(net, net->sk, v->host_name, what);
        if (ifindex >= 0)
                port_wait_forwarding(net, ifindex);
        return 0;
}

int net_tap_open(Net *net, const char *name, const char *bridge, int *ret_fd) {
        _cleanup_close_ int fd = -EBADF;
        _cleanup_(rtnl_link_putp) struct rtnl_link *change = NULL;
        struct ifreq ifr = { .ifr_flags = IFF_TAP | IFF_NO_PI };
        char what[96];
        int r, bridge_index;

        if (!ifname_ok(name) || !ifname_ok(bridge) || !ret_fd)
                return net_fail(net, -EINVAL, "opening tap '%s'", name ? name : "");
        snprintf(what, sizeof what, "opening tap %s (bridge %s)", name, bridge);

        fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
        if (fd < 0)
                return net_fail(net, -errno, "%s: opening /dev/net/tun (load the tun module; in a Nix sandbox "
                                "add /dev/net to extra-sandbox-paths)", what);
        snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", name);
        if (ioctl(fd, TUNSETIFF, &ifr) < 0)
                return net_fail(net, -errno, "%s: TUNSETIFF", what);

        /* Attached to a tap made earlier: it is persistent, enslaved and up already. */
        if (owned_find_kind(net, name, OWNED_TAP)) {
                *ret_fd = TAKE_FD(fd);
                return 0;
        }

        if (ioctl(fd, TUNSETPERSIST, 1) < 0)
                return net_fail(net, -errno, "%s: TUNSETPERSIST", what);
        r = owned_add(net, name, OWNED_TAP);
        if (r < 0) {
                (void) ioctl(fd, TUNSETPERSIST, 0);
                return net_fail(net, r, "%s", what);
        }

        bridge_index = link_index(net, net->sk, bridge, what);
        if (bridge_index >= 0) {
                change = rtnl_link_alloc();
                if (!change)
                        r = net_fail(net, -ENOMEM, "%s", what);
                else {
                        rtnl_link_set_master(change, bridge_index);
                        rtnl_link_set_group(change, net->group);
                        rtnl_link_set_flags(change, IFF_UP);
                        r = link_change(net, net->sk, name, change, what);
                }
        } else
                r = bridge_index;
        if (r < 0) {
                (void) ioctl(fd, TUNSETPERSIST, 0);
                owned_remove(net, name);
                return r;
        }

        *ret_fd = TAKE_FD(fd);
        return 0;
}

/* Whether net_netem_set takes spec: delays from 0 to about 290 years (their ns fit an int64),
 * a loss from 0 to 100 %, a rate whose bytes/s fit a uint64. NaN fails every comparison. */
static bool netem_spec_ok(const NetemSpec *spec) {
        return spec->delay_ms >= 0 && spec->delay_ms < 9e12 && spec->jitter_ms >= 0 && spec->jitter_ms < 9e12 &&
               spec->loss_percent >= 0 && spec->loss_percent <= 100 && spec->rate_kbit <= UINT64_MAX / 1000;
}

/* 64 ns ticks (the kernel's PSCHED_SHIFT 6) for struct tc_netem_qopt, saturated. */
static uint32_t netem_ticks(int64_t ns) {
        return ns / 64 >= UINT32_MAX ? UINT32_MAX : (uint32_t) (ns / 64);
}

/* Builds RTM_NEWQDISC for netem by hand, byte for byte as `tc qdisc replace dev X root netem ...`
 * (iproute2 6.1) sends it: tests/unit/test_net.c holds tc's bytes. libnl 3.7's netem has no rate.
 * TCA_OPTIONS of netem is a struct tc_netem_qopt followed by attributes, not flagged NLA_F_NESTED.
 * Delays go as 64 ns ticks in the qopt, as tc sends them (it truncates to whole microseconds first,
 * we do not: a delay with a fraction of a microsecond differs by under 64 ns). Only a delay tc
 * refuses (over 2^32 ticks, about 275 s) also goes in ns as LATENCY64/JITTER64 (kernel 4.15+). A
 * rate from 2^32 bytes/s on goes as RATE64 before a saturated RATE, as tc orders them. */
static int netem_msg(int ifindex, const NetemSpec *spec, struct nl_msg **ret) {
        _cleanup_(nlmsg_freep) struct nl_msg *msg = NULL;
        struct tcmsg tcm = { .tcm_family = AF_UNSPEC, .tcm_ifindex = ifindex, .tcm_parent = TC_H_ROOT };
        struct tc_netem_qopt qopt = { .limit = 1000 };
        struct nlattr *opts;

        if (!netem_spec_ok(spec))
                return -EINVAL;

        double loss = spec->loss_percent / 100.0 * (double) UINT32_MAX + 0.5;
        int64_t delay_ns = (int64_t) (spec->delay_ms * 1e6), jitter_ns = (int64_t) (spec->jitter_ms * 1e6);
        uint64_t rate = spec->rate_kbit * 1000 / 8;

        qopt.loss = loss >= (double) UINT32_MAX ? UINT32_MAX : (uint32_t) loss;
        qopt.latency = netem_ticks(delay_ns);
        qopt.jitter = netem_ticks(jitter_ns);

        /* REQUEST and ACK as nl_send_sync would add them, so that the bytes here are tc's. */
        msg = nlmsg_alloc_simple(RTM_NEWQDISC, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE);
        if (!msg)
                return -ENOMEM;
        if (nlmsg_append(msg, &tcm, sizeof tcm, NLMSG_ALIGNTO) < 0 ||
            nla_put_string(msg, TCA_KIND, "netem") < 0)
                return -EMSGSIZE;
        opts = (struct nlattr *) nlmsg_tail(nlmsg_hdr(msg));
        if (nla_put(msg, TCA_OPTIONS, 0, NULL) < 0 ||
            nlmsg_append(msg, &qopt, sizeof qopt, NLMSG_ALIGNTO) < 0)
                return -EMSGSIZE;
        if (qopt.latency == UINT32_MAX && nla_put_s64(msg, TCA_NETEM_LATENCY64, delay_ns) < 0)
                return -EMSGSIZE;
        if (qopt.jitter == UINT32_MAX && nla_put_s64(msg, TCA_NETEM_JITTER64, jitter_ns) < 0)
                return -EMSGSIZE;
        if (rate > 0) {
                struct tc_netem_rate r = { .rate = rate > UINT32_MAX ? UINT32_MAX : (uint32_t) rate };
                if (rate > UINT32_MAX && nla_put_u64(msg, TCA_NETEM_RATE64, rate) < 0)
                        return -EMSGSIZE;
                if (nla_put(msg, TCA_NETEM_RATE, sizeof r, &r) < 0)
                        return -EMSGSIZE;
        }
        if (nla_nest_end(msg, opts) < 0)
                return -EMSGSIZE;
        *ret = TAKE_PTR(msg);
        return 0;
}

int net_netem_message(int ifindex, const NetemSpec *spec, void **ret, size_t *ret_size) {
        _cleanup_(nlmsg_freep) struct nl_msg *msg = NULL;
        int r = netem_msg(ifindex, spec, &msg);
        if (r < 0)
                return r;
        struct nlmsghdr *h = nlmsg_hdr(msg);
        void *copy = malloc(h->nlmsg_len);
        if (!copy)
                return -ENOMEM;
        memcpy(copy, h, h->nlmsg_len);
        *ret = copy;
        *ret_size = h->nlmsg_len;
        return 0;
}

int net_netem_set(Net *net, const char *ifname, const NetemSpec *spec) {
        char what[64];
        int r, ifindex;

        if (!ifname_ok(ifname))
                return net_fail(net, -EINVAL, "setting netem on '%s'", ifname ? ifname : "");

        if (!spec) {
                _cleanup_(rtnl_qdisc_putp) struct rtnl_qdisc *q = NULL;
                Owned *o = owned_find(net, ifname);

                snprintf(what, sizeof what, "removing netem from %s", ifname);
                if (o && !o->netem)
                        return 0;
                ifindex = link_index(net, net->sk, ifname, what);
                if (ifindex < 0)
                        return ifindex;
                q = rtnl_qdisc_alloc();
                if (!q)
                        return net_fail(net, -ENOMEM, "%s", what);
                rtnl_tc_set_ifindex(TC_CAST(q), ifindex);
                rtnl_tc_set_parent(TC_CAST(q), TC_H_ROOT);
                r = rtnl_qdisc_delete(net->sk, q);
                /* ENOENT: only the default qdisc is there, nothing to remove. */
                if (r < 0 && !nlerr_is_absent(r))
                        return net_fail_nl(net, r, "%s", what);
                if (o)
                        o->netem = false;
                return 0;
        }

        snprintf(what, sizeof what, "setting netem on %s", ifname);
        if (!netem_spec_ok(spec))
                return net_fail(net, -EINVAL, "%s: delay %g ms, jitter %g ms, loss %g%%, rate %" PRIu64 " kbit "
                                "(use delays from 0 to 9e12 ms, a loss from 0 to 100 and a rate up to 1.8e16 kbit)",
                                what, spec->delay_ms, spec->jitter_ms, spec->loss_percent, spec->rate_kbit);

        ifindex = link_index(net, net->sk, ifname, what);
        if (ifindex < 0)
                return ifindex;

        struct nl_msg *msg = NULL;
        r = netem_msg(ifindex, spec, &msg);
        if (r < 0)
                return net_fail(net, r, "%s", what);
        r = nl_send_sync(net->sk, msg);
        if (r == -NLE_OBJ_NOTFOUND)
                return net_fail(net, -EOPNOTSUPP, "%s: the kernel has no netem qdisc (load it with modprobe "
                                "sch_netem, or use a kernel built with CONFIG_NET_SCH_NETEM)", what);
        if (r < 0)
                return net_fail_nl(net, r, "%s", what);

        Owned *o = owned_find(net, ifname);
        if (o)
                o->netem = true;
        return 0;
}

/* What net_preflight's thread found: one message per missing feature. */
typedef struct Preflight {
        unsigned needs;
        FILE *out;
        bool failed;
        int r;
} Preflight;

static void preflight_say(Preflight *p, int r, const char *format, ...) _printf_(3, 4);
static void preflight_say(Preflight *p, int r, const char *format, ...) {
        va_list ap;
        va_start(ap, format);
        if (p->failed)
                fputc('\n', p->out);
        vfprintf(p->out, format, ap);
        va_end(ap);
        if (!p->failed)
                p->r = r;
        p->failed = true;
}

static void *preflight_thread(void *userdata) {
        Preflight *p = userdata;
        _cleanup_(nl_socket_freep) struct nl_sock *sk = NULL;
        Net net = { .sk = NULL };
        int r;

        /* Only this thread moves; its namespace, and all made in it, dies when it returns. */
        if (unshare(CLONE_NEWNET) < 0) {
                r = -errno;
                if (r == -EPERM)
                        preflight_say(p, r, "cannot create a network namespace (unshare: %s): run moonrig as root "
                                      "(it needs CAP_SYS_ADMIN and CAP_NET_ADMIN)", strerror(-r));
                else if (r == -EINVAL)
                        preflight_say(p, r, "cannot create a network namespace (unshare: %s): enable CONFIG_NET_NS "
                                      "in the kernel", strerror(-r));
                else if (r == -ENOSPC)
                        preflight_say(p, r, "cannot create a network namespace (unshare: %s): raise the "
                                      "user.max_net_namespaces sysctl", strerror(-r));
                else
                        preflight_say(p, r, "cannot create a network namespace (unshare: %s)", strerror(-r));
                return NULL;
        }

        r = socket_open(&sk);
        if (r < 0) {
                preflight_say(p, nlerr_to_errno(r), "cannot open an rtnetlink socket: %s", nl_geterror(r));
                return NULL;
        }
        net.sk = sk;

        if (net_bridge_add(&net, "mrpfbr0") < 0)
                preflight_say(p, -EOPNOTSUPP, "cannot create a bridge (%s): load the bridge module "
                              "(modprobe bridge) or enable CONFIG_BRIDGE", net.error);

        _cleanup_(rtnl_link_putp) struct rtnl_link *veth = rtnl_link_veth_alloc();
        if (!veth)
                r = -NLE_NOMEM;
        else {
                rtnl_link_set_name(veth, "mrpf0");
                struct rtnl_link *peer = rtnl_link_veth_get_peer(veth);
                rtnl_link_set_name(peer, "mrpf1");
                rtnl_link_put(peer);
                r = rtnl_link_add(sk, veth, NLM_F_CREATE | NLM_F_EXCL);
        }
        if (r < 0)
                preflight_say(p, -EOPNOTSUPP, "cannot create a veth pair (%s): load the veth module "
                              "(modprobe veth) or enable CONFIG_VETH", nl_geterror(r));
        else if (p->needs & NET_NEED_NETEM) {
                r = net_netem_set(&net, "mrpf0", &(NetemSpec) { .delay_ms = 1, .loss_percent = 1, .rate_kbit = 1000 });
                if (r == -EOPNOTSUPP)
                        preflight_say(p, r, "the kernel has no netem qdisc, which impairing links (delay, loss, "
                                      "rate) needs: load it (modprobe sch_netem) or use a kernel built with "
                                      "CONFIG_NET_SCH_NETEM");
                else if (r < 0)
                        preflight_say(p, r, "cannot install netem, which impairing links needs (%s)", net.error);
        }

        if (p->needs & NET_NEED_TUN) {
                _cleanup_close_ int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
                struct ifreq ifr = { .ifr_name = "mrpftap0", .ifr_flags = IFF_TAP | IFF_NO_PI };
                if (fd < 0 && errno == ENOENT)
                        preflight_say(p, -ENOENT, "/dev/net/tun does not exist, and VMs need it to join networks: "
                                      "load the tun module (modprobe tun); in a Nix build sandbox add /dev/net "
                                      "to extra-sandbox-paths (the 'devnet' system feature)");
                else if (fd < 0)
                        preflight_say(p, -errno, "cannot open /dev/net/tun (%s), and VMs need it to join networks: "
                                      "run moonrig as root and allow the device (in a Nix sandbox: "
                                      "extra-sandbox-paths = /dev/net)", strerror(errno));
                else if (ioctl(fd, TUNSETIFF, &ifr) < 0)
                        preflight_say(p, -errno, "cannot create a tap through /dev/net/tun (TUNSETIFF: %s): "
                                      "load the tun module or enable CONFIG_TUN", strerror(errno));
        }

        free(net.owned);        /* the links die with the namespace */
        return NULL;
}

int net_preflight(unsigned needs, char **ret_message) {
        _cleanup_free_ char *text = NULL;
        size_t size = 0;
        Preflight p = { .needs = needs };
        pthread_t t;
        int r;

        if (ret_message)
                *ret_message = NULL;

        p.out = open_memstream(&text, &size);
        if (!p.out)
                return -errno;
        r = pthread_create(&t, NULL, preflight_thread, &p);
        if (r != 0) {
                fclose(p.out);
                return -r;
        }
        pthread_join(t, NULL);
        if (fclose(p.out) != 0)
                return -ENOMEM;

        if (!p.failed)
                return 0;
        if (ret_message)
                *ret_message = TAKE_PTR(text);
        return p.r;
}
