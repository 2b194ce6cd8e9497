/* links.h: a node's network links and their wiring into the node: a container's veths, whose
 * peers are born in its network namespace at every boot; a VM's taps, made once. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "net.h"

typedef struct Link {
        char *host_ifname, *bridge, *ifname, *mac, *ip_cidr, *ipv6_cidr;
        bool blocked;              /* block() holds across reboots: the new host end starts down */
} Link;

/* Frees the strings of links[0..n) and the array. */
void links_free(Link *links, size_t n);

/* Gives the namespaces of leader (a container's init, just started) a veth per link, its host end
 * on the link's bridge (down when blocked). 0 when done, or when the leader is gone already (its
 * exit tells why, with its console lines; a link error would hide that). Else -errno and
 * *ret_message: "<node>: cannot attach its network link<s> ...". */
int links_attach_veths(Net *net, pid_t leader, const Link *links, size_t n, const char *node, char **ret_message);
