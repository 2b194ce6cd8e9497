/* bridge.h: the Lua side of moonrig: one open function per Lua-visible module. */
#pragma once

#include <lua.h>
#include <systemd/sd-event.h>

#include "runtime.h"

struct Config;

lua_State *runtime_lua(Runtime *rt);
sd_event *runtime_event(Runtime *rt);

/* The nodes of a --config file, declared through the stdlib (l_node.c). */
int nodes_from_config(lua_State *L, const struct Config *cfg, char **ret_error);

/* Push the stdlib's private table (registry "moonrig.internal"). */
void bridge_internal(lua_State *L);
/* Push its sub-table `module` (internal.net, internal.vm, ...), made if missing: one Lua
 * module's C functions, so that each stdlib file takes only what it uses. */
void bridge_internal_module(lua_State *L, const char *module);

void bridge_open_log(lua_State *L);
void bridge_open_nodes(lua_State *L);
void bridge_open_net(lua_State *L);
void bridge_open_vms(lua_State *L);
