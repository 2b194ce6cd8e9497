/* bridge.h: the Lua side of moonrig: one open function per Lua-visible module. */
#pragma once

#include <lua.h>

/* Push the stdlib's private table (registry "moonrig.internal"). */
void bridge_internal(lua_State *L);

void bridge_open_log(lua_State *L);
void bridge_open_nodes(lua_State *L);
void bridge_open_net(lua_State *L);
void bridge_open_vms(lua_State *L);
