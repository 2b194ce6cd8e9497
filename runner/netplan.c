/* netplan.c: the addressing plan of a test's virtual networks (pure; see netplan.h).
 * Mirrors nixos/lib/testing/network.nix and qemu-common.nix so NixOS tests see the same numbers. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE     /* qsort_r, vasprintf */
#endif
#include "netplan.h"

#include <ctype.h>
#include <stdarg.h>

#include "util.h"

static int fmt(char *buf, size_t size, const char *format, ...) _printf_(3, 4);
static int fmt(char *buf, size_t size, const char *format, ...) {
        va_list ap;
        va_start(ap, format);
        int n = vsnprintf(buf, size, format, ap);
        va_end(ap);
        return n < 0 || (size_t) n >= size ? -ENOBUFS : 0;
}

static bool node_ok(unsigned node) {
        return node >= 1 && node <= NETPLAN_MAX_NODES;
}

int netplan_ipv4(unsigned vlan, unsigned node, bool with_prefix, char *buf, size_t size) {
        if (vlan > NETPLAN_MAX_VLAN || !node_ok(node))
                return -EINVAL;
        return fmt(buf, size, "192.168.%u.%u%s", vlan, node, with_prefix ? "/24" : "");
}

int netplan_ipv6(unsigned vlan, unsigned node, bool with_prefix, char *buf, size_t size) {
        if (vlan > NETPLAN_MAX_VLAN || !node_ok(node))
                return -EINVAL;
        /* Decimal on purpose: NixOS pastes toString of the numbers into hex groups. */
        return fmt(buf, size, "2001:db8:%u::%u%s", vlan, node, with_prefix ? "/64" : "");
}

int netplan_mac(unsigned vlan, unsigned node, char buf[static 18]) {
        if (vlan > NETPLAN_MAX_VLAN || !node_ok(node))
                return -EINVAL;
        return fmt(buf, 18, "52:54:00:12:%02x:%02x", vlan, node);
}

int netplan_bridge_name(unsigned vlan, char buf[static NETPLAN_IFNAME_MAX]) {
        if (vlan > NETPLAN_MAX_VLAN)
                return -EINVAL;
        return fmt(buf, NETPLAN_IFNAME_MAX, "mrbr%u", vlan);
}

static bool ifname_char(unsigned char c) {
        return isascii(c) && (isalnum(c) || c == '_' || c == '.' || c == '-');
}

int netplan_host_ifname(const char *node_name, unsigned node, unsigned vlan,
                        char buf[static NETPLAN_IFNAME_MAX]) {
        if (!node_name || vlan > NETPLAN_MAX_VLAN || !node_ok(node))
                return -EINVAL;

        int r = fmt(buf, NETPLAN_IFNAME_MAX, "n%uv%u", node, vlan);
        if (r < 0)
                return r;

        size_t len = strlen(buf);
        size_t start = len;
        for (const unsigned char *p = (const unsigned char *) node_name; *p && len < NETPLAN_IFNAME_MAX - 1; p++) {
                char c;
                if (ifname_char(*p))
                        c = (char) *p;
                else if (*p >= 0xc0)    /* lead byte of a UTF-8 sequence: one '_' per character */
                        c = '_';
                else                    /* continuation bytes, controls, '/', ':', spaces, ... */
                        continue;
                if (len == start)
                        buf[len++] = '-';
                if (len < NETPLAN_IFNAME_MAX - 1)
                        buf[len++] = c;
        }
        buf[len] = '\0';
        return 0;
}

static bool name_ok(const char *name) {
        if (!name || !*name)
                return false;
        for (const unsigned char *p = (const unsigned char *) name; *p; p++)
                if (*p < 0x20 || *p == 0x7f || *p == ' ' || *p == '#')
                        return false;
        return true;
}

static int set_error(char **ret_error, const char *format, ...) _printf_(2, 3);
static int set_error(char **ret_error, const char *format, ...) {
        if (!ret_error)
                return 0;
        va_list ap;
        va_start(ap, format);
        if (vasprintf(ret_error, format, ap) < 0)
                *ret_error = NULL;
        va_end(ap);
        return 0;
}

static int cmp_index(const void *a, const void *b, void *userdata) {
        const NetplanNodeSpec *specs = userdata;
        return strcmp(specs[*(const size_t *) a].name, specs[*(const size_t *) b].name);
}

static int cmp_unsigned(const void *a, const void *b) {
        unsigned x = *(const unsigned *) a, y = *(const unsigned *) b;
        return x < y ? -1 : x > y;
}

void netplan_free(Netplan *plan) {
        if (!plan)
                return;
        for (size_t i = 0; i < plan->n_nodes; i++) {
                free(plan->nodes[i].name);
                free(plan->nodes[i].links);
        }
        free(plan->nodes);
        free(plan->vlans);
        free(plan);
}

static void netplan_freep(Netplan **p) {
        netplan_free(*p);
}

static int link_fill(NetplanLink *l, const char *name, unsigned number, unsigned vlan, unsigned index) {
        int r;

        l->vlan = vlan;
        l->index = index;
        if ((r = fmt(l->ifname, sizeof l->ifname, "eth%u", index)) < 0 ||
            (r = netplan_host_ifname(name, number, vlan, l->host_ifname)) < 0 ||
            (r = netplan_bridge_name(vlan, l->bridge)) < 0 ||
            (r = netplan_mac(vlan, number, l->mac)) < 0 ||
            (r = netplan_ipv4(vlan, number, false, l->ipv4, sizeof l->ipv4)) < 0 ||
            (r = netplan_ipv4(vlan, number, true, l->ipv4_cidr, sizeof l->ipv4_cidr)) < 0 ||
            (r = netplan_ipv6(vlan, number, false, l->ipv6, sizeof l->ipv6)) < 0 ||
            (r = netplan_ipv6(vlan, number, true, l->ipv6_cidr, sizeof l->ipv6_cidr)) < 0)
                return r;
        return 0;
}

int netplan_new(const NetplanNodeSpec *specs, size_t n_specs, Netplan **ret, char **ret_error) {
        _cleanup_(netplan_freep) Netplan *plan = NULL;
        _cleanup_free_ size_t *order = NULL;
        size_t total_vlans = 0;
        int r;

        if (ret_error)
                *ret_error = NULL;
        if (n_specs > 0 && !specs)
                return -EINVAL;

        for (size_t i = 0; i < n_specs; i++) {
                if (!name_ok(specs[i].name)) {
                        set_error(ret_error, "node name '%s' is not usable as a host name: it must be non-empty "
                                  "and have no whitespace, control character or '#'",
                                  specs[i].name ? specs[i].name : "");
                        return -EINVAL;
                }
                for (size_t j = 0; j < specs[i].n_vlans; j++) {
                        if (specs[i].vlans[j] > NETPLAN_MAX_VLAN) {
                                set_error(ret_error, "node '%s': VLAN %u is out of range; use a VLAN from 0 to %u",
                                          specs[i].name, specs[i].vlans[j], NETPLAN_MAX_VLAN);
                                return -EINVAL;
                        }
                        for (size_t k = 0; k < j; k++)
                                if (specs[i].vlans[k] == specs[i].vlans[j]) {
                                        set_error(ret_error, "node '%s' lists VLAN %u twice; list each VLAN once",
                                                  specs[i].name, specs[i].vlans[j]);
                                        return -EINVAL;
                                }
                }
                total_vlans += specs[i].n_vlans;
        }

        if (n_specs > NETPLAN_MAX_NODES) {
                set_error(ret_error, "the test has %zu nodes; at most %u are possible (nodes and containers together, as in NixOS)",
                          n_specs, NETPLAN_MAX_NODES);
                return -E2BIG;
        }

        order = calloc(n_specs ? n_specs : 1, sizeof *order);
        if (!order)
                return -ENOMEM;
        for (size_t i = 0; i < n_specs; i++)
                order[i] = i;
        qsort_r(order, n_specs, sizeof *order, cmp_index, (void *) specs);
        for (size_t i = 1; i < n_specs; i++)
                if (streq(specs[order[i - 1]].name, specs[order[i]].name)) {
                        set_error(ret_error, "two nodes are called '%s'; give each node its own name", specs[order[i]].name);
                        return -EEXIST;
                }

        plan = calloc(1, sizeof *plan);
        if (!plan)
                return -ENOMEM;
        plan->nodes = calloc(n_specs ? n_specs : 1, sizeof *plan->nodes);
        plan->vlans = calloc(total_vlans ? total_vlans : 1, sizeof *plan->vlans);
        if (!plan->nodes || !plan->vlans)
                return -ENOMEM;
        plan->n_nodes = n_specs;

        for (size_t i = 0; i < n_specs; i++)
                plan->nodes[order[i]].number = (unsigned) i + 1;

        for (size_t i = 0; i < n_specs; i++) {
                NetplanNode *node = &plan->nodes[i];

                node->name = strdup(specs[i].name);
                if (!node->name)
                        return -ENOMEM;
                if (specs[i].n_vlans > 0) {
                        node->links = calloc(specs[i].n_vlans, sizeof *node->links);
                        if (!node->links)
                                return -ENOMEM;
                }
                node->n_links = specs[i].n_vlans;
                for (size_t j = 0; j < specs[i].n_vlans; j++) {
                        r = link_fill(&node->links[j], node->name, node->number, specs[i].vlans[j], (unsigned) j + 1);
                        if (r < 0)
                                return r;
                        plan->vlans[plan->n_vlans++] = specs[i].vlans[j];
                }
        }

        qsort(plan->vlans, plan->n_vlans, sizeof *plan->vlans, cmp_unsigned);
        size_t n = 0;
        for (size_t i = 0; i < plan->n_vlans; i++)
                if (n == 0 || plan->vlans[n - 1] != plan->vlans[i])
                        plan->vlans[n++] = plan->vlans[i];
        plan->n_vlans = n;

        *ret = TAKE_PTR(plan);
        return 0;
}

const NetplanNode *netplan_find(const Netplan *plan, const char *name) {
        if (!plan || !name)
                return NULL;
        for (size_t i = 0; i < plan->n_nodes; i++)
                if (streq(plan->nodes[i].name, name))
                        return &plan->nodes[i];
        return NULL;
}

const NetplanLink *netplan_primary(const NetplanNode *node) {
        return node && node->n_links > 0 ? &node->links[0] : NULL;
}

int netplan_hosts(const Netplan *plan, char **ret) {
        _cleanup_free_ char *buf = NULL;
        _cleanup_free_ const NetplanNode **by_number = NULL;
        size_t size = 0;
        FILE *f;

        if (!plan || !ret)
                return -EINVAL;

        by_number = calloc(NETPLAN_MAX_NODES + 1, sizeof *by_number);
        if (!by_number)
                return -ENOMEM;
        for (size_t i = 0; i < plan->n_nodes; i++)
                by_number[plan->nodes[i].number] = &plan->nodes[i];

        f = open_memstream(&buf, &size);
        if (!f)
                return -errno;
        fputs("127.0.0.1 localhost\n"
              "::1 localhost ip6-localhost ip6-loopback\n", f);
        for (unsigned n = 1; n <= NETPLAN_MAX_NODES; n++) {
                const NetplanLink *l = netplan_primary(by_number[n]);
                if (!l)
                        continue;
                fprintf(f, "%s %s\n%s %s\n", l->ipv4, by_number[n]->name, l->ipv6, by_number[n]->name);
        }
        if (fclose(f) != 0)
                return -ENOMEM;

        *ret = TAKE_PTR(buf);
        return 0;
}
