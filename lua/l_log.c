/* l_log.c: the C logger as the stdlib sees it (internal.log); the public `log` table and
 * nested()/subtest() are built on it in stdlib/core.lua. */
#define _GNU_SOURCE
#include <lauxlib.h>

#include "bridge.h"
#include "log.h"
#include "util.h"

static const char *opt_machine(lua_State *L, int i) {
        return lua_isnoneornil(L, i) ? NULL : luaL_checkstring(L, i);
}

static int l_message(lua_State *L) {
        log_message(opt_machine(L, 1), "%s", luaL_checkstring(L, 2));
        return 0;
}

#define LEVEL_FN(name, fn)                                      \
        static int name(lua_State *L) {                         \
                fn("%s", luaL_checkstring(L, 1));               \
                return 0;                                       \
        }
LEVEL_FN(l_debug, log_debug)
LEVEL_FN(l_info, log_info)
LEVEL_FN(l_warning, log_warning)
LEVEL_FN(l_error, log_error)
LEVEL_FN(l_test_error, log_test_error)

static int l_nested_begin(lua_State *L) {
        log_nested_begin(opt_machine(L, 1), luaL_checkstring(L, 2));
        lua_pushinteger(L, (lua_Integer) now_usec());
        return 1;
}

static int l_nested_end(lua_State *L) {
        log_nested_end(opt_machine(L, 1), luaL_checkstring(L, 2), (uint64_t) luaL_checkinteger(L, 3));
        return 0;
}

static int l_subtest_begin(lua_State *L) {
        log_subtest_begin(luaL_checkstring(L, 1));
        lua_pushinteger(L, (lua_Integer) now_usec());
        return 1;
}

static int l_subtest_end(lua_State *L) {
        log_subtest_end(luaL_checkstring(L, 1), (uint64_t) luaL_checkinteger(L, 2));
        return 0;
}

static int l_serial(lua_State *L) {
        size_t len;
        const char *machine = luaL_checkstring(L, 1);
        const char *line = luaL_checklstring(L, 2, &len);
        log_serial(machine, line, len);
        return 0;
}

static int l_serial_on(lua_State *L) {
        log_serial_enable(true);
        return 0;
}

static int l_serial_off(lua_State *L) {
        log_serial_enable(false);
        return 0;
}

void bridge_open_log(lua_State *L) {
        static const luaL_Reg fns[] = {
                { "message", l_message },
                { "debug", l_debug },
                { "info", l_info },
                { "warning", l_warning },
                { "error", l_error },
                { "test_error", l_test_error },
                { "nested_begin", l_nested_begin },
                { "nested_end", l_nested_end },
                { "subtest_begin", l_subtest_begin },
                { "subtest_end", l_subtest_end },
                { "serial", l_serial },
                { NULL, NULL },
        };
        bridge_internal(L);
        lua_newtable(L);
        luaL_setfuncs(L, fns, 0);
        lua_setfield(L, -2, "log");
        lua_pop(L, 1);

        lua_pushcfunction(L, l_serial_on);
        lua_setglobal(L, "serial_stdout_on");
        lua_pushcfunction(L, l_serial_off);
        lua_setglobal(L, "serial_stdout_off");
}
