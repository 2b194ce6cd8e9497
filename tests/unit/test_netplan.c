/* test_netplan.c: unit tests of the network addressing plan (runner/netplan.c): numbers,
 * names, MACs, addresses and /etc/hosts must match what the NixOS test framework produces. */
#include <stdarg.h>
#include <setjmp.h>
#include <stdint.h>
#include <stddef.h>
#include <cmocka.h>

#include "netplan.h"
#include "util.h"

#define SPEC(n, ...) { .name = (n), .vlans = (const unsigned[]) { __VA_ARGS__ }, \
                       .n_vlans = sizeof((const unsigned[]) { __VA_ARGS__ }) / sizeof(unsigned) }
#define SPEC0(n) { .name = (n), .vlans = NULL, .n_vlans = 0 }

static void test_numbers_follow_sorted_names(void **state) {
        (void) state;
        /* strcmp order: "Zed" < "a-b" < "a_b" < "client" < "server" (upper case first, '-' < '_') */
        NetplanNodeSpec specs[] = {
                SPEC("server", 1), SPEC("client", 1), SPEC("a_b", 2), SPEC("Zed", 1), SPEC("a-b", 1),
        };
        Netplan *plan = NULL;
        assert_int_equal(netplan_new(specs, ELEMENTSOF(specs), &plan, NULL), 0);
        assert_int_equal(plan->n_nodes, 5);
        assert_string_equal(plan->nodes[0].name, "server");
        assert_int_equal(plan->nodes[0].number, 5);
        assert_int_equal(plan->nodes[1].number, 4);
        assert_int_equal(plan->nodes[2].number, 3);
        assert_int_equal(plan->nodes[3].number, 1);
        assert_int_equal(plan->nodes[4].number, 2);
        assert_ptr_equal(netplan_find(plan, "client"), &plan->nodes[1]);
        assert_null(netplan_find(plan, "nobody"));
        assert_int_equal(plan->n_vlans, 2);
        assert_int_equal(plan->vlans[0], 1);
        assert_int_equal(plan->vlans[1], 2);
        netplan_free(plan);
}

static void test_links_of_a_router(void **state) {
        (void) state;
        NetplanNodeSpec specs[] = { SPEC("client", 2), SPEC("router", 2, 1), SPEC("server", 1) };
        Netplan *plan = NULL;
        assert_int_equal(netplan_new(specs, ELEMENTSOF(specs), &plan, NULL), 0);

        const NetplanNode *router = netplan_find(plan, "router");
        assert_non_null(router);
        assert_int_equal(router->number, 2);
        assert_int_equal(router->n_links, 2);

        const NetplanLink *l = &router->links[0];
        assert_ptr_equal(netplan_primary(router), l);
        assert_int_equal(l->vlan, 2);
        assert_int_equal(l->index, 1);
        assert_string_equal(l->ifname, "eth1");
        assert_string_equal(l->host_ifname, "n2v2-router");
        assert_string_equal(l->bridge, "mrbr2");
        assert_string_equal(l->mac, "52:54:00:12:02:02");
        assert_string_equal(l->ipv4, "192.168.2.2");
        assert_string_equal(l->ipv4_cidr, "192.168.2.2/24");
        assert_string_equal(l->ipv6, "2001:db8:2::2");
        assert_string_equal(l->ipv6_cidr, "2001:db8:2::2/64");

        l = &router->links[1];
        assert_int_equal(l->vlan, 1);
        assert_int_equal(l->index, 2);
        assert_string_equal(l->ifname, "eth2");
        assert_string_equal(l->host_ifname, "n2v1-router");
        assert_string_equal(l->bridge, "mrbr1");
        assert_string_equal(l->mac, "52:54:00:12:01:02");
        assert_string_equal(l->ipv4_cidr, "192.168.1.2/24");
        assert_string_equal(l->ipv6_cidr, "2001:db8:1::2/64");

        netplan_free(plan);
}

static void test_addresses_and_macs(void **state) {
        (void) state;
        char buf[64], mac[18];

        assert_int_equal(netplan_ipv4(1, 1, false, buf, sizeof buf), 0);
        assert_string_equal(buf, "192.168.1.1");
        assert_int_equal(netplan_ipv4(255, 254, true, buf, sizeof buf), 0);
        assert_string_equal(buf, "192.168.255.254/24");
        /* NixOS pastes decimal digits into the hex groups: VLAN 10, node 12 -> "10" and "12". */
        assert_int_equal(netplan_ipv6(10, 12, false, buf, sizeof buf), 0);
        assert_string_equal(buf, "2001:db8:10::12");
        assert_int_equal(netplan_ipv6(255, 254, true, buf, sizeof buf), 0);
        assert_string_equal(buf, "2001:db8:255::254/64");
        assert_int_equal(netplan_ipv6(0, 3, false, buf, sizeof buf), 0);
        assert_string_equal(buf, "2001:db8:0::3");

        assert_int_equal(netplan_mac(1, 1, mac), 0);
        assert_string_equal(mac, "52:54:00:12:01:01");
        assert_int_equal(netplan_mac(10, 171, mac), 0);
        assert_string_equal(mac, "52:54:00:12:0a:ab");
        assert_int_equal(netplan_mac(255, 254, mac), 0);
        assert_string_equal(mac, "52:54:00:12:ff:fe");

        assert_int_equal(netplan_ipv4(256, 1, false, buf, sizeof buf), -EINVAL);
        assert_int_equal(netplan_ipv4(1, 0, false, buf, sizeof buf), -EINVAL);
        assert_int_equal(netplan_ipv6(1, 255, false, buf, sizeof buf), -EINVAL);
        assert_int_equal(netplan_mac(256, 1, mac), -EINVAL);
        assert_int_equal(netplan_ipv4(1, 1, true, buf, 8), -ENOBUFS);

        assert_int_equal(netplan_bridge_name(1, buf), 0);
        assert_string_equal(buf, "mrbr1");
        assert_int_equal(netplan_bridge_name(255, buf), 0);
        assert_string_equal(buf, "mrbr255");
        assert_int_equal(netplan_bridge_name(256, buf), -EINVAL);
}

static void test_host_ifnames(void **state) {
        (void) state;
        char buf[NETPLAN_IFNAME_MAX];

        assert_int_equal(netplan_host_ifname("server", 2, 1, buf), 0);
        assert_string_equal(buf, "n2v1-server");
        assert_int_equal(netplan_host_ifname("a-very-long-node-name-indeed", 254, 255, buf), 0);
        assert_string_equal(buf, "n254v255-a-very");
        assert_int_equal(strlen(buf), 15);
        assert_int_equal(netplan_host_ifname("web.srv_1", 3, 7, buf), 0);
        assert_string_equal(buf, "n3v7-web.srv_1");
        /* Characters an ifname cannot or should not hold are dropped; each non-ASCII
         * character (here "é", 2 bytes, and "€", 3 bytes) becomes one '_'. */
        assert_int_equal(netplan_host_ifname("caf\xc3\xa9 b/c:d\xe2\x82\xac", 1, 1, buf), 0);
        assert_string_equal(buf, "n1v1-caf_bcd_");
        /* Nothing usable left: no dash. */
        assert_int_equal(netplan_host_ifname("/:@!", 9, 12, buf), 0);
        assert_string_equal(buf, "n9v12");
        assert_int_equal(netplan_host_ifname("", 9, 12, buf), 0);
        assert_string_equal(buf, "n9v12");

        assert_int_equal(netplan_host_ifname(NULL, 1, 1, buf), -EINVAL);
        assert_int_equal(netplan_host_ifname("x", 0, 1, buf), -EINVAL);
        assert_int_equal(netplan_host_ifname("x", 255, 1, buf), -EINVAL);
        assert_int_equal(netplan_host_ifname("x", 1, 256, buf), -EINVAL);
}

static void test_long_names_stay_short_and_unique(void **state) {
        (void) state;
        /* 254 nodes whose names agree on their first 40 bytes, each on 3 VLANs: every host
         * ifname is at most 15 characters and all 762 (plus the bridges) are distinct. */
        enum { N = NETPLAN_MAX_NODES };
        static char names[N][64];
        static const unsigned vlans[] = { 1, 12, 255 };
        NetplanNodeSpec specs[N];
        for (unsigned i = 0; i < N; i++) {
                snprintf(names[i], sizeof names[i], "a-node-with-a-very-long-shared-prefix---%03u", i);
                specs[i] = (NetplanNodeSpec) { .name = names[i], .vlans = vlans, .n_vlans = ELEMENTSOF(vlans) };
        }
        Netplan *plan = NULL;
        assert_int_equal(netplan_new(specs, N, &plan, NULL), 0);

        const char **all = calloc(N * 3 + 3, sizeof *all);
        assert_non_null(all);
        size_t n = 0;
        for (size_t i = 0; i < plan->n_nodes; i++)
                for (size_t j = 0; j < plan->nodes[i].n_links; j++) {
                        const NetplanLink *l = &plan->nodes[i].links[j];
                        assert_true(strlen(l->host_ifname) <= 15);
                        assert_true(strlen(l->ifname) <= 15);
                        all[n++] = l->host_ifname;
                }
        assert_string_equal(netplan_find(plan, names[253])->links[2].host_ifname, "n254v255-a-node");
        assert_string_equal(netplan_find(plan, names[0])->links[0].host_ifname, "n1v1-a-node-wit");
        char bridges[3][NETPLAN_IFNAME_MAX];
        for (size_t k = 0; k < 3; k++) {
                assert_int_equal(netplan_bridge_name(vlans[k], bridges[k]), 0);
                all[n++] = bridges[k];
        }
        for (size_t a = 0; a < n; a++)
                for (size_t b = a + 1; b < n; b++)
                        if (streq(all[a], all[b]))
                                fail_msg("ifname '%s' appears twice", all[a]);
        free(all);
        netplan_free(plan);
}

static void test_prefix_collisions(void **state) {
        (void) state;
        /* Names equal after sanitising, and node/VLAN numbers that concatenate to the same
         * digits (n1v12 and n11v2), still give distinct host ifnames. */
        char a[NETPLAN_IFNAME_MAX], b[NETPLAN_IFNAME_MAX];
        assert_int_equal(netplan_host_ifname("x/y", 1, 12, a), 0);
        assert_int_equal(netplan_host_ifname("xy", 11, 2, b), 0);
        assert_string_equal(a, "n1v12-xy");
        assert_string_equal(b, "n11v2-xy");

        NetplanNodeSpec specs[] = { SPEC("x/y", 1), SPEC("xy", 1), SPEC("x:y", 1) };
        Netplan *plan = NULL;
        assert_int_equal(netplan_new(specs, ELEMENTSOF(specs), &plan, NULL), 0);
        assert_string_equal(netplan_find(plan, "x/y")->links[0].host_ifname, "n1v1-xy");
        assert_string_equal(netplan_find(plan, "x:y")->links[0].host_ifname, "n2v1-xy");
        assert_string_equal(netplan_find(plan, "xy")->links[0].host_ifname, "n3v1-xy");
        netplan_free(plan);
}

static void test_hosts_text(void **state) {
        (void) state;
        NetplanNodeSpec specs[] = {
                SPEC("server", 1, 2), SPEC0("loner"), SPEC("client", 2), SPEC("db", 3),
        };
        Netplan *plan = NULL;
        char *hosts = NULL;
        assert_int_equal(netplan_new(specs, ELEMENTSOF(specs), &plan, NULL), 0);
        assert_null(netplan_primary(netplan_find(plan, "loner")));
        assert_int_equal(netplan_find(plan, "loner")->number, 3);
        assert_int_equal(netplan_hosts(plan, &hosts), 0);
        assert_string_equal(hosts,
                            "127.0.0.1 localhost\n"
                            "::1 localhost ip6-localhost ip6-loopback\n"
                            "192.168.2.1 client\n"
                            "2001:db8:2::1 client\n"
                            "192.168.3.2 db\n"
                            "2001:db8:3::2 db\n"
                            "192.168.1.4 server\n"
                            "2001:db8:1::4 server\n");
        free(hosts);
        netplan_free(plan);

        assert_int_equal(netplan_new(NULL, 0, &plan, NULL), 0);
        assert_int_equal(plan->n_nodes, 0);
        assert_int_equal(plan->n_vlans, 0);
        assert_int_equal(netplan_hosts(plan, &hosts), 0);
        assert_string_equal(hosts, "127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n");
        free(hosts);
        netplan_free(plan);
}

static void test_unicode_names(void **state) {
        (void) state;
        NetplanNodeSpec specs[] = { SPEC("\xc3\xa9t\xc3\xa9", 1), SPEC("\xe6\x9c\x8d\xe5\x8a\xa1", 1) };
        Netplan *plan = NULL;
        char *hosts = NULL;
        assert_int_equal(netplan_new(specs, ELEMENTSOF(specs), &plan, NULL), 0);
        assert_string_equal(plan->nodes[0].links[0].host_ifname, "n1v1-_t_");
        assert_string_equal(plan->nodes[1].links[0].host_ifname, "n2v1-__");
        assert_int_equal(netplan_hosts(plan, &hosts), 0);
        assert_non_null(strstr(hosts, "192.168.1.1 \xc3\xa9t\xc3\xa9\n"));
        free(hosts);
        netplan_free(plan);
}

static void expect_error(const NetplanNodeSpec *specs, size_t n, int error, const char *message) {
        Netplan *plan = (Netplan *) 0x1;
        char *text = NULL;
        assert_int_equal(netplan_new(specs, n, &plan, &text), error);
        assert_ptr_equal(plan, (Netplan *) 0x1);
        assert_non_null(text);
        assert_string_equal(text, message);
        free(text);
        /* ret_error is optional. */
        assert_int_equal(netplan_new(specs, n, &plan, NULL), error);
}

static void test_errors(void **state) {
        (void) state;
        NetplanNodeSpec dup[] = { SPEC("a", 1), SPEC("b", 1), SPEC("a", 2) };
        expect_error(dup, ELEMENTSOF(dup), -EEXIST, "two nodes are called 'a'; give each node its own name");

        NetplanNodeSpec twice[] = { SPEC("r", 1, 2, 1) };
        expect_error(twice, 1, -EINVAL, "node 'r' lists VLAN 1 twice; list each VLAN once");

        NetplanNodeSpec big[] = { SPEC("r", 256) };
        expect_error(big, 1, -EINVAL, "node 'r': VLAN 256 is out of range; use a VLAN from 0 to 255");

        NetplanNodeSpec space[] = { SPEC("my host", 1) };
        expect_error(space, 1, -EINVAL,
                     "node name 'my host' is not usable as a host name: it must be non-empty and have no "
                     "whitespace, control character or '#'");
        NetplanNodeSpec empty[] = { SPEC("", 1) };
        expect_error(empty, 1, -EINVAL,
                     "node name '' is not usable as a host name: it must be non-empty and have no "
                     "whitespace, control character or '#'");
        NetplanNodeSpec null_name[] = { SPEC0(NULL) };
        expect_error(null_name, 1, -EINVAL,
                     "node name '' is not usable as a host name: it must be non-empty and have no "
                     "whitespace, control character or '#'");

        enum { N = NETPLAN_MAX_NODES + 1 };
        static char names[N][8];
        NetplanNodeSpec specs[N];
        for (unsigned i = 0; i < N; i++) {
                snprintf(names[i], sizeof names[i], "n%u", i);
                specs[i] = (NetplanNodeSpec) SPEC0(names[i]);
        }
        expect_error(specs, N, -E2BIG,
                     "the test has 255 nodes; at most 254 are possible (nodes and containers together, as in NixOS)");
        Netplan *plan = NULL;
        assert_int_equal(netplan_new(specs, N - 1, &plan, NULL), 0);
        assert_int_equal(netplan_find(plan, "n99")->number, 254); /* "n99" sorts last */
        netplan_free(plan);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_numbers_follow_sorted_names),
                cmocka_unit_test(test_links_of_a_router),
                cmocka_unit_test(test_addresses_and_macs),
                cmocka_unit_test(test_host_ifnames),
                cmocka_unit_test(test_long_names_stay_short_and_unique),
                cmocka_unit_test(test_prefix_collisions),
                cmocka_unit_test(test_hosts_text),
                cmocka_unit_test(test_unicode_names),
                cmocka_unit_test(test_errors),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
