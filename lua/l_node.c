/* l_node.c: node objects (containers, VMs) as Lua sees them. */
#define _GNU_SOURCE
#include <lauxlib.h>

#include "bridge.h"
#include "config.h"
#include "util.h"

void bridge_open_nodes(lua_State *L) {
        (void) L;
}

int nodes_from_config(lua_State *L, const Config *cfg, char **ret_error);
int nodes_from_config(lua_State *L, const Config *cfg, char **ret_error) {
        (void) L;
        (void) cfg;
        *ret_error = strdup("machines from a config file are not supported yet");
        return -EOPNOTSUPP;
}
