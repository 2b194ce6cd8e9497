/* links.c: a node's links (see links.h). */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "links.h"
#include "util.h"

void links_free(Link *links, size_t n) {
        for (size_t i = 0; i < n; i++) {
                Link *l = &links[i];
                free(l->host_ifname);
                free(l->bridge);
                free(l->ifname);
                free(l->mac);
                free(l->ip_cidr);
                free(l->ipv6_cidr);
        }
        free(links);
}

int links_attach_veths(Net *net, pid_t leader, const Link *links, size_t n, const char *node, char **ret_message) {
        *ret_message = NULL;
        if (n == 0)
                return 0;
        _cleanup_close_ int ns = net_netns_open(leader);
        if (ns == -ENOENT || ns == -ESRCH)
                return 0;
        if (ns < 0) {
                if (asprintf(ret_message, "%s: cannot attach its network links: %s", node, strerror(-ns)) < 0)
                        *ret_message = NULL;
                return ns;
        }
        for (size_t i = 0; i < n; i++) {
                const Link *l = &links[i];
                NetVeth v = {
                        .host_name = l->host_ifname,
                        .bridge = l->bridge,
                        .netns_fd = ns,
                        .peer_name = l->ifname,
                        .mac = l->mac,
                        .ipv4_cidr = l->ip_cidr,
                        .ipv6_cidr = l->ipv6_cidr,
                };
                int r = net_veth_add(net, &v);
                if (r >= 0 && l->blocked)
                        r = net_link_set_up(net, l->host_ifname, false);
                if (r < 0) {
                        if (asprintf(ret_message, "%s: cannot attach its network link %s: %s", node, l->ifname,
                                     net_error(net)) < 0)
                                *ret_message = NULL;
                        return r;
                }
        }
        return 0;
}
