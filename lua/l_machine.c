/* l_machine.c: the node handle the stdlib's node objects are built on (stdlib/node.lua), one for
 * every kind, over runner/machine.h: lifecycle, commands, console, links. What only one kind has
 * lives with it: l_node.c (containers: units, probes), l_vm.c (VMs: QMP, keyboard, screen). */
#define _GNU_SOURCE
#include <errno.h>
#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>

#include "nodecommon.h"
#include "runtime.h"
#include "sched.h"
#include "units.h"
#include "util.h"

#define HANDLE "moonrig.Node"

static Node *all_nodes;

/* ---- machine callbacks ---- */

static void on_ready(Machine *m, int error, const char *message) {
        Node *n = machine_userdata(m);
        n->booting = false;
        n->ready_error = error;
        free(n->ready_message);
        if (error < 0 && n->link_error)
                message = n->link_error;   /* the crash was ours, for this reason */
        n->ready_message = message ? strdup(message) : NULL;
        n->units = units_unref(n->units);
        if (error < 0)
                waitlist_wake(&n->ready, "MachineError", message ? message : "the machine failed to boot");
        else
                waitlist_wake(&n->ready, NULL, NULL);
}

static void on_exit_cb(Machine *m, int status) {
        Node *n = machine_userdata(m);
        n->exit_status = status;
        n->booting = false;
        n->units = units_unref(n->units);
        if (n->ready.n > 0) {
                _cleanup_free_ char *msg = NULL;
                if (n->link_error)
                        msg = strdup(n->link_error);
                else if (asprintf(&msg, n->kind->exit_before_ready, n->name, status, n->ready_message ? ": " : "",
                                  n->ready_message ? n->ready_message : "") < 0)
                        msg = NULL;
                waitlist_wake(&n->ready, "MachineError", msg ? msg : "the machine stopped");
        }
        waitlist_wake(&n->exited, NULL, NULL);
        waitlist_wake(&n->console.waiters, NULL, NULL);
        waitlist_wake(&n->events, NULL, NULL);
}

/* A console or journal line (or a notice): kept for get_console_log and wait_for_console_text,
 * logged as "name # line", and written to <out>/<name>.console.log with -o. */
static void on_console_line(Machine *m, const char *line, size_t len) {
        Node *n = machine_userdata(m);
        console_log_add(&n->console, n->name, line, len);
}

static void on_notice(Machine *m, const char *message) {
        on_console_line(m, message, strlen(message));
}

const MachineCallbacks node_callbacks = {
        .on_ready = on_ready,
        .on_exit = on_exit_cb,
        .on_console_line = on_console_line,
        .on_notice = on_notice,
};

/* ---- the handle ---- */

static void node_cleanup_all(void);

Node *node_push_new(lua_State *L, const NodeKind *kind, const char *name, const char *state_dir,
                    const char *console_log) {
        static bool cleanup_registered;
        ConsoleLog console = {};
        int r = console_log_open(&console, console_log);

        if (r < 0)
                luaL_error(L, "%s: cannot open its console log %s: %s", name, console_log, strerror(-r));
        Node **p = lua_newuserdatauv(L, sizeof(Node *), 0);
        *p = NULL;
        luaL_setmetatable(L, HANDLE);
        Node *n = calloc(1, sizeof(Node));
        if (n) {
                n->name = strdup(name);
                n->state_dir = strdup(state_dir);
        }
        if (!n || !n->name || !n->state_dir) {
                console_log_done(&console);
                if (n) {
                        free(n->name);
                        free(n->state_dir);
                }
                free(n);
                luaL_error(L, "out of memory");
        }
        n->kind = kind;
        n->console = console;
        n->next = all_nodes;
        all_nodes = n;
        if (!cleanup_registered) {
                runtime_add_cleanup(node_cleanup_all);
                cleanup_registered = true;
        }
        *p = n;
        return n;
}

Node *node_check(lua_State *L, int i, const NodeKind *kind) {
        Node **p = luaL_checkudata(L, i, HANDLE);
        if (!*p)
                luaL_error(L, "this node was released");
        if (kind && (*p)->kind != kind)
                luaL_error(L, "%s: not available on a %s node", (*p)->name, (*p)->kind->noun);
        return *p;
}

static void node_links_free(Node *n) {
        links_free(n->links, n->n_links);
        n->links = NULL;
        n->n_links = 0;
}

static void node_free(Node *n) {
        waitlist_wake(&n->ready, "MachineError", "the run is ending");
        waitlist_wake(&n->exited, NULL, NULL);
        waitlist_wake(&n->events, NULL, NULL);
        units_unref(n->units);
        machine_free(n->m);
        console_log_done(&n->console);
        json_decref(n->pending_events);
        if (n->kind->free_data)
                n->kind->free_data(n->data);
        free(n->name);
        free(n->state_dir);
        free(n->ready_message);
        free(n->link_error);
        node_links_free(n);
        free(n);
}

/* At the end of the run: stop every machine at once (a start script gets SIGTERM, so that its
 * launcher removes what it made), then wait for each. */
static void node_cleanup_all(void) {
        for (Node *n = all_nodes; n; n = n->next)
                if (machine_is_up(n->m))
                        machine_release(n->m);
        while (all_nodes) {
                Node *n = all_nodes;
                all_nodes = n->next;
                node_free(n);
        }
}

/* ---- lifecycle ---- */

static int l_start(lua_State *L) {
        Node *n = node_check(L, 1, NULL);
        if (machine_is_up(n->m) || n->booting)
                return 0;
        if (!n->m)
                n->kind->create(L, n);
        n->ready_error = 0;
        n->booting = true;
        free(n->link_error);
        n->link_error = NULL;
        int r = machine_start(n->m);
        if (r < 0 && r != -EBUSY) {
                n->booting = false;
                if (machine_start_error(n->m))
                        return luaL_error(L, "%s", machine_start_error(n->m));
                return luaL_error(L, "%s: cannot start the %s: %s", n->name, n->kind->noun, strerror(-r));
        }
        return 0;
}

static int l_wait_ready(lua_State *L) {
        Node *n = node_check(L, 1, NULL);
        double timeout = luaL_optnumber(L, 2, 0);
        if (machine_is_ready(n->m))
                return 0;
        if (!machine_is_up(n->m) && !n->booting) {
                if (n->ready_error < 0)
                        return luaL_error(L, "%s", n->ready_message ? n->ready_message : "the machine failed to boot");
                return luaL_error(L, "%s: the %s is not running", n->name, n->kind->noun);
        }
        Wait *w = sched_wait_new(L, "%s: waiting for the %s to boot", n->name, n->kind->noun);
        return waitlist_suspend(L, &n->ready, timeout, w);
}

static int l_wait_exit(lua_State *L) {
        Node *n = node_check(L, 1, NULL);
        double timeout = luaL_optnumber(L, 2, 0);
        if (!machine_is_up(n->m))
                return 0;
        Wait *w = sched_wait_new(L, "%s: waiting for the %s to power off", n->name, n->kind->noun);
        return waitlist_suspend(L, &n->exited, timeout, w);
}

static int l_shutdown(lua_State *L) {
        Node *n = node_check(L, 1, NULL);
        if (!machine_is_up(n->m))
                return 0;
        int r = machine_poweroff(n->m);
        if (r < 0)
                return luaL_error(L, "%s: cannot shut down: %s", n->name, strerror(-r));
        Wait *w = sched_wait_new(L, "%s: waiting for the %s to power off", n->name, n->kind->noun);
        return waitlist_suspend(L, &n->exited, 0, w);
}

static int l_crash(lua_State *L) {
        Node *n = node_check(L, 1, NULL);
        if (!machine_is_up(n->m))
                return 0;
        machine_crash(n->m);
        Wait *w = sched_wait_new(L, "%s: waiting for the %s to die", n->name, n->kind->noun);
        return waitlist_suspend(L, &n->exited, 0, w);
}

static int l_reboot(lua_State *L) {
        Node *n = node_check(L, 1, NULL);
        free(n->link_error);
        n->link_error = NULL;
        int r = n->m ? machine_reboot(n->m) : -EBUSY;
        if (r == -EBUSY)
                return luaL_error(L, "%s: cannot reboot: the %s is not up and ready", n->name, n->kind->noun);
        if (r < 0)
                return luaL_error(L, "%s: cannot reboot: %s", n->name, strerror(-r));
        n->booting = true;
        Wait *w = sched_wait_new(L, "%s: waiting for the %s to come back", n->name, n->kind->noun);
        return waitlist_suspend(L, &n->ready, 0, w);
}

static int l_is_up(lua_State *L) {
        lua_pushboolean(L, machine_is_up(node_check(L, 1, NULL)->m));
        return 1;
}

static int l_is_booting(lua_State *L) {
        lua_pushboolean(L, node_check(L, 1, NULL)->booting);
        return 1;
}

static int l_is_ready(lua_State *L) {
        lua_pushboolean(L, machine_is_ready(node_check(L, 1, NULL)->m));
        return 1;
}

/* ---- links and files ---- */

static char *field_dup(lua_State *L, int t, const char *k) {
        lua_getfield(L, t, k);
        const char *s = lua_tostring(L, -1);
        char *d = s ? strdup(s) : NULL;
        lua_pop(L, 1);
        return d;
}

/* h:set_links({ {host_ifname=, bridge=, ifname=, mac=, ip_cidr=, ipv6_cidr=}, ... }): a
 * container's links are attached at every boot from now on; a VM's taps are made at its first
 * start. */
static int l_set_links(lua_State *L) {
        Node *n = node_check(L, 1, NULL);
        luaL_checktype(L, 2, LUA_TTABLE);
        if (n->kind->create && n->m)
                return luaL_error(L, "%s: the %s's links are fixed once it started", n->name, n->kind->noun);
        size_t k = lua_rawlen(L, 2);
        for (size_t i = 0; i < k; i++) {
                if (lua_rawgeti(L, 2, (lua_Integer) i + 1) != LUA_TTABLE)
                        return luaL_error(L, "%s: links: entry %d must be a table", n->name, (int) i + 1);
                lua_pop(L, 1);
        }
        NodeLink *v = calloc(k ?: 1, sizeof *v);
        if (!v)
                return luaL_error(L, "out of memory");
        for (size_t i = 0; i < k; i++) {
                lua_rawgeti(L, 2, (lua_Integer) i + 1);
                int t = lua_gettop(L);
                v[i] = (NodeLink) {
                        .host_ifname = field_dup(L, t, "host_ifname"),
                        .bridge = field_dup(L, t, "bridge"),
                        .ifname = field_dup(L, t, "ifname"),
                        .mac = field_dup(L, t, "mac"),
                        .ip_cidr = field_dup(L, t, "ip_cidr"),
                        .ipv6_cidr = field_dup(L, t, "ipv6_cidr"),
                };
                lua_pop(L, 1);
        }
        node_links_free(n);
        n->links = v;
        n->n_links = k;
        return 0;
}

/* h:set_link_blocked(host_ifname, blocked): remembered for the node's next boots. */
static int l_set_link_blocked(lua_State *L) {
        Node *n = node_check(L, 1, NULL);
        const char *host = luaL_checkstring(L, 2);
        for (size_t i = 0; i < n->n_links; i++)
                if (streq(n->links[i].host_ifname, host))
                        n->links[i].blocked = lua_toboolean(L, 3);
        return 0;
}

/* h:add_file(path, content): put in place before the first boot, unless the node's files
 * already name that path (a VM's files come from its image: nothing to do). */
static int l_add_file(lua_State *L) {
        Node *n = node_check(L, 1, NULL);
        size_t len;
        const char *path = luaL_checkstring(L, 2);
        const char *content = luaL_checklstring(L, 3, &len);
        int r = n->m ? machine_add_file(n->m, path, content, len, 0644) : 0;
        if (r < 0)
                return luaL_error(L, "%s: cannot add %s: %s", n->name, path,
                                  r == -EBUSY ? "the node has booted already" : strerror(-r));
        return 0;
}

/* ---- commands ---- */

typedef struct ExecWait {
        Wait *w;
        MachineExec *job;
        const NodeKind *kind;
} ExecWait;

typedef struct ExecDone {
        MachineExecResult *r;
        const NodeKind *kind;
} ExecDone;

static int push_exec_result(lua_State *L, void *userdata) {
        ExecDone *d = userdata;
        MachineExecResult *r = d->r;
        lua_pushinteger(L, r->status);
        lua_pushlstring(L, r->out ? r->out : "", r->out_len);
        lua_pushlstring(L, r->err ? r->err : "", r->err_len);
        lua_pushboolean(L, r->timed_out);
        lua_pushboolean(L, r->output_abandoned);
        if (r->error < 0)
                lua_pushstring(L, r->error == -ESRCH ? d->kind->died : strerror(-r->error));
        else
                lua_pushnil(L);
        return 6;
}

static void on_exec_done(MachineExecResult *r, void *userdata) {
        ExecWait *ew = userdata;
        Wait *w = ew->w;
        ExecDone d = { .r = r, .kind = ew->kind };
        w->data = NULL;
        free(ew);
        sched_wake(w, true, push_exec_result, &d);
}

static void exec_wait_cancel(Wait *w) {
        ExecWait *ew = w->data;
        if (!ew)
                return;
        machine_exec_cancel(ew->job);
        free(ew);
}

/* h:exec(command, timeout, check_return, check_output) -> status, stdout, stderr, timed_out,
 * output_abandoned, error (the last two arguments: a VM's backdoor forms only) */
static int l_exec(lua_State *L) {
        Node *n = node_check(L, 1, NULL);
        const char *cmd = luaL_checkstring(L, 2);
        double timeout = luaL_optnumber(L, 3, 0);
        unsigned flags = 0;
        if (lua_gettop(L) >= 4 && !lua_isnil(L, 4) && !lua_toboolean(L, 4))
                flags |= MACHINE_EXEC_NO_STATUS;
        if (lua_gettop(L) >= 5 && !lua_isnil(L, 5) && !lua_toboolean(L, 5))
                flags |= MACHINE_EXEC_NO_OUTPUT;

        if (!machine_is_up(n->m))
                return luaL_error(L, "%s: the %s is not running", n->name, n->kind->noun);
        Wait *w = sched_wait_new(L, "%s: command `%.200s`", n->name, cmd);
        ExecWait *ew = calloc(1, sizeof(ExecWait));
        int r = -ENOMEM;
        if (ew) {
                ew->w = w;
                ew->kind = n->kind;
                r = machine_exec(n->m, cmd, (uint64_t) (timeout * 1e6), flags, on_exec_done, ew, &ew->job);
        }
        if (r < 0) {
                free(ew);
                sched_wait_discard(w);
                if (r == -ESRCH)
                        return luaL_error(L, "%s: the %s is not running", n->name, n->kind->noun);
                return luaL_error(L, "%s: cannot run `%s`: %s", n->name, cmd, strerror(-r));
        }
        w->data = ew;
        w->cancel = exec_wait_cancel;
        return sched_suspend(L, w);
}

/* ---- console ---- */

static int l_console(lua_State *L) {
        Node *n = node_check(L, 1, NULL);
        lua_pushlstring(L, n->console.text ? n->console.text : "", n->console.len);
        lua_pushinteger(L, (lua_Integer) n->console.lines);
        return 2;
}

/* h:wait_console(nlines, timeout): wait until more than nlines lines were seen. */
static int l_wait_console(lua_State *L) {
        Node *n = node_check(L, 1, NULL);
        lua_Integer seen = luaL_checkinteger(L, 2);
        double timeout = luaL_optnumber(L, 3, 0);
        if ((lua_Integer) n->console.lines > seen)
                return 0;
        if (!machine_is_up(n->m))
                return luaL_error(L, "%s: the %s is not running", n->name, n->kind->noun);
        Wait *w = sched_wait_new(L, "%s: waiting for console output", n->name);
        return waitlist_suspend(L, &n->console.waiters, timeout, w);
}

void node_add_methods(lua_State *L, const luaL_Reg *methods) {
        static const luaL_Reg common[] = {
                { "start", l_start },
                { "set_links", l_set_links },
                { "add_file", l_add_file },
                { "set_link_blocked", l_set_link_blocked },
                { "wait_ready", l_wait_ready },
                { "wait_exit", l_wait_exit },
                { "shutdown", l_shutdown },
                { "crash", l_crash },
                { "reboot", l_reboot },
                { "is_up", l_is_up },
                { "is_ready", l_is_ready },
                { "is_booting", l_is_booting },
                { "exec", l_exec },
                { "console", l_console },
                { "wait_console", l_wait_console },
                { NULL, NULL },
        };
        if (luaL_newmetatable(L, HANDLE)) {
                luaL_newlib(L, common);
                lua_setfield(L, -2, "__index");
        }
        lua_getfield(L, -1, "__index");
        luaL_setfuncs(L, methods, 0);
        lua_pop(L, 2);
}
