/* runtime.c: one Lua state on one sd-event loop: opens the stdlib compiled into the binary,
 * loads the test script, runs it as a task and reports how it failed. */
#define _GNU_SOURCE
#include "runtime.h"

#include <lauxlib.h>
#include <lualib.h>
#include <signal.h>

#include "bridge.h"
#include "embedded.h"
#include "exitcode.h"
#include "log.h"
#include "report.h"
#include "sched.h"
#include "util.h"

struct Runtime {
        lua_State *L;
        sd_event *event;
        char *script_path;
        int script_ref;
        sd_event_source *signals[3];
        runtime_cleanup_fn cleanups[8];
        size_t n_cleanups;
};

static Runtime *current_runtime;

void bridge_internal(lua_State *L) {
        luaL_getsubtable(L, LUA_REGISTRYINDEX, "moonrig.internal");
}

void bridge_internal_module(lua_State *L, const char *module) {
        bridge_internal(L);
        luaL_getsubtable(L, -1, module);
        lua_remove(L, -2);
}

lua_State *runtime_lua(Runtime *rt) {
        return rt->L;
}

sd_event *runtime_event(Runtime *rt) {
        return rt->event;
}

void runtime_set_output_dir(Runtime *rt, const char *output_dir, bool console_logs) {
        lua_State *L = rt->L;
        lua_pushstring(L, output_dir ? output_dir : ".");
        lua_setglobal(L, "OUTPUT_DIR");
        if (output_dir && console_logs) {
                bridge_internal(L);
                lua_pushstring(L, output_dir);
                lua_setfield(L, -2, "output_dir");
                lua_pop(L, 1);
        }
}

void runtime_set_keep_state(Runtime *rt, bool keep) {
        lua_pushboolean(rt->L, keep);
        lua_setglobal(rt->L, "KEEP_MACHINE_STATE");
}

int runtime_add_config_nodes(Runtime *rt, const struct Config *cfg, char **ret_error) {
        return nodes_from_config(rt->L, cfg, ret_error);
}

int repl_run(Runtime *rt, const char *script_path);

int runtime_repl(Runtime *rt, const char *script_path) {
        return repl_run(rt, script_path);
}

void runtime_add_cleanup(runtime_cleanup_fn fn) {
        Runtime *rt = current_runtime;
        if (rt && rt->n_cleanups < ELEMENTSOF(rt->cleanups))
                rt->cleanups[rt->n_cleanups++] = fn;
}

static runtime_interrupt_fn interrupt_handler;

void runtime_set_interrupt_handler(runtime_interrupt_fn fn) {
        interrupt_handler = fn;
}

static int on_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        if (si->ssi_signo == SIGINT && interrupt_handler) {
                interrupt_handler();
                return 0;
        }
        log_warning("received signal %s, stopping", strsignal((int) si->ssi_signo));
        sched_stop(128 + (int) si->ssi_signo);
        return 0;
}

static int load_stdlib(lua_State *L) {
        for (const EmbeddedFile *f = embedded_stdlib; f->name; f++) {
                char chunk[128];
                snprintf(chunk, sizeof chunk, STDLIB_CHUNK_PREFIX "%s.lua", f->name);
                if (luaL_loadbuffer(L, f->source, strlen(f->source), chunk) != LUA_OK) {
                        log_error("stdlib %s: %s", f->name, lua_tostring(L, -1));
                        return -EINVAL;
                }
                bridge_internal(L);
                if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
                        log_error("stdlib %s: %s", f->name, lua_tostring(L, -1));
                        return -EINVAL;
                }
        }
        return 0;
}

int runtime_new(Runtime **ret) {
        _cleanup_free_ Runtime *rt = calloc(1, sizeof(Runtime));
        int r;

        if (!rt)
                return -ENOMEM;
        rt->script_ref = LUA_NOREF;
        r = sd_event_default(&rt->event);
        if (r < 0)
                return r;

        sigset_t mask;
        sigemptyset(&mask);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGHUP);
        sigaddset(&mask, SIGCHLD);   /* sd-event's child sources need it blocked */
        sigprocmask(SIG_BLOCK, &mask, NULL);
        static const int sigs[] = { SIGINT, SIGTERM, SIGHUP };
        for (size_t i = 0; i < ELEMENTSOF(sigs); i++) {
                r = sd_event_add_signal(rt->event, &rt->signals[i], sigs[i], on_signal, rt);
                if (r < 0)
                        return r;
        }

        rt->L = luaL_newstate();
        if (!rt->L)
                return -ENOMEM;
        luaL_openlibs(rt->L);
        r = sched_init(rt->L, rt->event);
        if (r < 0)
                return r;
        current_runtime = rt;
        sched_open(rt->L);
        bridge_open_log(rt->L);
        bridge_open_nodes(rt->L);
        bridge_open_net(rt->L);
        bridge_open_vms(rt->L);
        r = load_stdlib(rt->L);
        if (r < 0)
                return r;

        *ret = TAKE_PTR(rt);
        return 0;
}

void runtime_free(Runtime *rt) {
        if (!rt)
                return;
        sched_cancel_all();
        for (size_t i = rt->n_cleanups; i > 0; i--)
                rt->cleanups[i - 1]();
        sched_done();
        for (size_t i = 0; i < ELEMENTSOF(rt->signals); i++)
                sd_event_source_disable_unref(rt->signals[i]);
        lua_close(rt->L);
        sd_event_unref(rt->event);
        free(rt->script_path);
        current_runtime = NULL;
        free(rt);
}

int runtime_load_script(Runtime *rt, const char *path, char **ret_error) {
        lua_State *L = rt->L;

        if (luaL_loadfilex(L, path, "t") != LUA_OK) {
                const char *msg = lua_tostring(L, -1);
                /* luaL_loadfile says "cannot open x" for I/O errors and "x:12: ..." for syntax. */
                *ret_error = strdup(msg ? msg : "cannot load the script");
                lua_pop(L, 1);
                return -EINVAL;
        }
        rt->script_ref = luaL_ref(L, LUA_REGISTRYINDEX);
        free(rt->script_path);
        rt->script_path = strdup(path);
        lua_pushstring(L, path);
        lua_setglobal(L, "SCRIPT_PATH");
        return 0;
}

/* Report the failure object on the top of L's stack: the script's frames and the message. */
static void report_failure(Runtime *rt) {
        lua_State *L = rt->L;
        int top = lua_gettop(L);
        ReportFrame frames[64];
        size_t n = 0;
        const char *kind = "Error", *message = NULL;

        if (lua_istable(L, -1)) {
                lua_getfield(L, top, "kind");
                kind = lua_tostring(L, -1) ?: "Error";
                /* The failure's whole text: message plus details (node, command, output). */
                message = luaL_tolstring(L, top, NULL);
                /* luaL_tolstring of a Failure starts with "kind: "; report_format adds it again */
                size_t klen = strlen(kind);
                if (strncmp(message, kind, klen) == 0 && strncmp(message + klen, ": ", 2) == 0)
                        message += klen + 2;
                if (lua_getfield(L, top, "frames") == LUA_TTABLE) {
                        int ft = lua_gettop(L);
                        lua_Integer len = luaL_len(L, ft);
                        for (lua_Integer i = 1; i <= len && n < ELEMENTSOF(frames); i++) {
                                lua_rawgeti(L, ft, i);
                                lua_getfield(L, -1, "source");
                                lua_getfield(L, -2, "line");
                                lua_getfield(L, -3, "name");
                                lua_getfield(L, -4, "linedefined");
                                frames[n++] = (ReportFrame) {
                                        .source = lua_tostring(L, -4),
                                        .line = (int) lua_tointeger(L, -3),
                                        .function = lua_tostring(L, -2),
                                        .linedefined = (int) luaL_optinteger(L, -1, -1),
                                };
                                /* The strings stay referenced by the frames table. */
                                lua_pop(L, 5);
                        }
                }
        } else
                message = luaL_tolstring(L, top, NULL);

        ReportInput in = {
                .kind = kind,
                .message = message ?: "(no message)",
                .frames = frames,
                .n_frames = n,
                .script_path = rt->script_path,
        };
        _cleanup_free_ char *text = report_format(&in);
        if (text) {
                /* Every line is a test error, so it also reaches the JUnit report. */
                char *save = NULL;
                for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
                        log_test_error("%s", line);
        }
        lua_settop(L, top);
}

int runtime_call(Runtime *rt, int nargs, const char *name) {
        lua_State *L = rt->L;
        bool ok;

        Task *t = sched_spawn(L, name, nargs);
        int code = sched_run_until(t, &ok, NULL);
        if (code != 0)
                return code;
        if (!ok) {
                int status = EXIT_FAILED;
                if (lua_istable(L, -1)) {
                        lua_getfield(L, -1, "kind");
                        status = exit_code_for_failure(lua_isstring(L, -1) ? lua_tostring(L, -1) : NULL);
                        lua_pop(L, 1);
                }
                report_failure(rt);
                lua_pop(L, 1);
                return status;
        }
        return 0;
}

int runtime_run_script(Runtime *rt, double global_timeout) {
        lua_State *L = rt->L;

        sched_arm_global_timeout(global_timeout);

        lua_rawgeti(L, LUA_REGISTRYINDEX, rt->script_ref);
        uint64_t start = now_usec();
        log_nested_begin(NULL, "run the test script");
        int code = runtime_call(rt, 0, "test script");
        if (code == 0) {
                log_nested_end(NULL, "run the test script", start);
                log_message(NULL, "test script finished in %.2fs", (double) (now_usec() - start) / 1e6);
        }
        return code;
}

int runtime_push_script(Runtime *rt) {
        if (rt->script_ref == LUA_NOREF)
                return -ENOENT;
        lua_rawgeti(rt->L, LUA_REGISTRYINDEX, rt->script_ref);
        return 0;
}
