/* l_net.c: the test's virtual networks for the stdlib (stdlib/node.lua): the addressing plan
 * (runner/netplan.c) and the run's one Net (runner/net.c), made lazily in the run's namespace. */
#define _GNU_SOURCE
#include <errno.h>
#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>

#include "bridge.h"
#include "l_net.h"
#include "net.h"
#include "netplan.h"
#include "runtime.h"
#include "util.h"

static Net *the_net;

static void net_cleanup(void) {
        net_free(TAKE_PTR(the_net));
}

Net *lnet_get(const char **ret_error) {
        if (the_net)
                return the_net;
        int r = net_new(&the_net);
        if (r < 0) {
                *ret_error = strerror(-r);
                the_net = NULL;
                return NULL;
        }
        runtime_add_cleanup(net_cleanup);
        return the_net;
}

static void set_string(lua_State *L, const char *k, const char *v) {
        lua_pushstring(L, v);
        lua_setfield(L, -2, k);
}

static void set_integer(lua_State *L, const char *k, lua_Integer v) {
        lua_pushinteger(L, v);
        lua_setfield(L, -2, k);
}

#define PLAN_GUARD "moonrig.netplan_guard"

typedef struct {
        Netplan *plan;
        char *hosts, *error;
} PlanGuard;

static int plan_guard_gc(lua_State *L) {
        PlanGuard *g = luaL_checkudata(L, 1, PLAN_GUARD);
        netplan_free(g->plan);
        free(g->hosts);
        free(g->error);
        *g = (PlanGuard) {};
        return 0;
}

/* internal.net_plan({ {name=, vlans={...}}, ... }) ->
 *   { nodes = { [name] = { number=, links = { {vlan=, index=, ifname=, host_ifname=, bridge=,
 *     mac=, ip=, ip_cidr=, ipv6=, ipv6_cidr=}, ... } } }, vlans = {1, 2}, hosts = "..." }
 * or nil, message. */
static int l_net_plan(lua_State *L) {
        luaL_checktype(L, 1, LUA_TTABLE);
        size_t n = lua_rawlen(L, 1);
        NetplanNodeSpec *specs = lua_newuserdatauv(L, (n ?: 1) * sizeof *specs, 0);
        int keep = lua_gettop(L);
        size_t total_vlans = 0;

        for (size_t i = 0; i < n; i++) {
                lua_rawgeti(L, 1, (lua_Integer) i + 1);
                lua_getfield(L, -1, "vlans");
                total_vlans += lua_rawlen(L, -1);
                lua_pop(L, 2);
        }
        unsigned *vlans = lua_newuserdatauv(L, (total_vlans ?: 1) * sizeof *vlans, 0);
        size_t used = 0;
        for (size_t i = 0; i < n; i++) {
                lua_rawgeti(L, 1, (lua_Integer) i + 1);
                lua_getfield(L, -1, "name");
                specs[i].name = luaL_checkstring(L, -1);   /* kept alive by the spec table */
                lua_pop(L, 1);
                lua_getfield(L, -1, "vlans");
                size_t k = lua_rawlen(L, -1);
                specs[i].vlans = vlans + used;
                specs[i].n_vlans = k;
                for (size_t j = 0; j < k; j++) {
                        lua_rawgeti(L, -1, (lua_Integer) j + 1);
                        int isnum = 0;
                        lua_Integer v = lua_tointegerx(L, -1, &isnum);
                        if (!isnum || v < 0 || v > (lua_Integer) NETPLAN_MAX_VLAN) {
                                lua_pushnil(L);
                                lua_pushfstring(L, "node %s: vlans: entry %d must be a VLAN number from 0 to %d",
                                                specs[i].name, (int) j + 1, (int) NETPLAN_MAX_VLAN);
                                return 2;
                        }
                        vlans[used++] = (unsigned) v;
                        lua_pop(L, 1);
                }
                lua_pop(L, 2);
        }

        /* The plan, its hosts text and any error message live in a guard userdata from here
         * on, so a Lua error (out of memory while building the result) leaks none of them. */
        PlanGuard *g = lua_newuserdatauv(L, sizeof *g, 0);
        *g = (PlanGuard) {};
        luaL_setmetatable(L, PLAN_GUARD);
        int r = netplan_new(specs, n, &g->plan, &g->error);
        if (r < 0) {
                lua_pushnil(L);
                lua_pushstring(L, g->error ? g->error : strerror(-r));
                return 2;
        }
        r = netplan_hosts(g->plan, &g->hosts);
        if (r < 0)
                return luaL_error(L, "building /etc/hosts: %s", strerror(-r));
        const Netplan *plan = g->plan;
        const char *hosts = g->hosts;

        lua_createtable(L, 0, 3);
        lua_createtable(L, 0, (int) plan->n_nodes);
        for (size_t i = 0; i < plan->n_nodes; i++) {
                const NetplanNode *node = &plan->nodes[i];
                lua_createtable(L, 0, 2);
                set_integer(L, "number", node->number);
                lua_createtable(L, (int) node->n_links, 0);
                for (size_t j = 0; j < node->n_links; j++) {
                        const NetplanLink *l = &node->links[j];
                        lua_createtable(L, 0, 10);
                        set_integer(L, "vlan", l->vlan);
                        set_integer(L, "index", l->index);
                        set_string(L, "ifname", l->ifname);
                        set_string(L, "host_ifname", l->host_ifname);
                        set_string(L, "bridge", l->bridge);
                        set_string(L, "mac", l->mac);
                        set_string(L, "ip", l->ipv4);
                        set_string(L, "ip_cidr", l->ipv4_cidr);
                        set_string(L, "ipv6", l->ipv6);
                        set_string(L, "ipv6_cidr", l->ipv6_cidr);
                        lua_rawseti(L, -2, (lua_Integer) j + 1);
                }
                lua_setfield(L, -2, "links");
                lua_setfield(L, -2, node->name);
        }
        lua_setfield(L, -2, "nodes");
        lua_createtable(L, (int) plan->n_vlans, 0);
        for (size_t i = 0; i < plan->n_vlans; i++) {
                lua_pushinteger(L, plan->vlans[i]);
                lua_rawseti(L, -2, (lua_Integer) i + 1);
        }
        lua_setfield(L, -2, "vlans");
        set_string(L, "hosts", hosts);
        lua_remove(L, keep);   /* the scratch arrays and the guard (its __gc frees the plan) */
        lua_remove(L, keep);
        lua_remove(L, keep);
        return 1;
}

static int push_net_error(lua_State *L, Net *net, int r) {
        lua_pushnil(L);
        const char *e = net_error(net);
        lua_pushstring(L, e && *e ? e : strerror(-r));
        lua_pushstring(L, r == -EOPNOTSUPP ? "unsupported" : "failed");
        return 3;
}

static Net *check_net(lua_State *L) {
        const char *error = NULL;
        Net *net = lnet_get(&error);
        if (!net)
                luaL_error(L, "cannot open the run's netlink socket: %s", error);
        return net;
}

/* internal.net_preflight(need_tun, need_netem) -> true | nil, message */
static int l_net_preflight(lua_State *L) {
        unsigned needs = (lua_toboolean(L, 1) ? NET_NEED_TUN : 0) | (lua_toboolean(L, 2) ? NET_NEED_NETEM : 0);
        _cleanup_free_ char *message = NULL;
        int r = net_preflight(needs, &message);
        if (r < 0) {
                lua_pushnil(L);
                lua_pushstring(L, message ? message : strerror(-r));
                return 2;
        }
        lua_pushboolean(L, 1);
        return 1;
}

/* internal.net_bridge(vlan, bridge_name) -> true | nil, message: the VLAN's bridge, holding
 * 192.168.<vlan>.254 and 2001:db8:<vlan>::fe as NixOS's container bridge does. */
static int l_net_bridge(lua_State *L) {
        lua_Integer vlan = luaL_checkinteger(L, 1);
        const char *name = luaL_checkstring(L, 2);
        Net *net = check_net(L);
        char v4[24], v6[48];
        int r = net_bridge_add(net, name);
        if (r < 0)
                return push_net_error(L, net, r);
        if ((r = netplan_ipv4((unsigned) vlan, 254, true, v4, sizeof v4)) < 0)
                return luaL_error(L, "VLAN %d: %s", (int) vlan, strerror(-r));
        /* NixOS's literal "::fe" (netplan_ipv6 writes node numbers in decimal, as NixOS does) */
        snprintf(v6, sizeof v6, "2001:db8:%u::fe/64", (unsigned) vlan);
        if ((r = net_addr_add(net, name, v4)) < 0 || (r = net_addr_add(net, name, v6)) < 0)
                return push_net_error(L, net, r);
        lua_pushboolean(L, 1);
        return 1;
}

/* internal.net_link_up(host_ifname, up) -> true | nil, message */
static int l_net_link_up(lua_State *L) {
        const char *name = luaL_checkstring(L, 1);
        Net *net = check_net(L);
        int r = net_link_set_up(net, name, lua_toboolean(L, 2));
        if (r < 0)
                return push_net_error(L, net, r);
        lua_pushboolean(L, 1);
        return 1;
}

static double opt_field(lua_State *L, int t, const char *k) {
        lua_getfield(L, t, k);
        double v = luaL_optnumber(L, -1, 0);
        lua_pop(L, 1);
        return v;
}

/* internal.net_netem(host_ifname, {delay=, jitter=, loss=, rate=} | nil)
 *   -> true | nil, message, "unsupported"|"failed" */
static int l_net_netem(lua_State *L) {
        const char *name = luaL_checkstring(L, 1);
        Net *net = check_net(L);
        NetemSpec spec, *p = NULL;
        if (lua_istable(L, 2)) {
                spec = (NetemSpec) {
                        .delay_ms = opt_field(L, 2, "delay"),
                        .jitter_ms = opt_field(L, 2, "jitter"),
                        .loss_percent = opt_field(L, 2, "loss"),
                };
                /* Converting a negative, NaN or too large double to an integer is undefined:
                 * refuse it here (the stdlib refuses such values earlier, as usage errors). */
                double rate = opt_field(L, 2, "rate");
                if (!(rate >= 0 && rate < 0x1p64)) {
                        lua_pushnil(L);
                        lua_pushfstring(L, "rate %f is not a number of kbit/s from 0 to 2^64", rate);
                        lua_pushstring(L, "failed");
                        return 3;
                }
                spec.rate_kbit = (uint64_t) rate;
                p = &spec;
        }
        int r = net_netem_set(net, name, p);
        if (r < 0)
                return push_net_error(L, net, r);
        lua_pushboolean(L, 1);
        return 1;
}

void bridge_open_net(lua_State *L) {
        luaL_newmetatable(L, PLAN_GUARD);
        lua_pushcfunction(L, plan_guard_gc);
        lua_setfield(L, -2, "__gc");
        lua_pop(L, 1);

        static const luaL_Reg internal[] = {
                { "plan", l_net_plan },
                { "preflight", l_net_preflight },
                { "bridge", l_net_bridge },
                { "link_up", l_net_link_up },
                { "netem", l_net_netem },
                { NULL, NULL },
        };
        bridge_internal_module(L, "net");
        luaL_setfuncs(L, internal, 0);
        lua_pop(L, 1);
}
