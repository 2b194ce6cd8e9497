/* l_vm.c: what only a VM's node handle has (the handle is l_machine.c's): its declaration, QEMU
 * made at the first start once its taps are known, QMP, the keyboard, the screen, the serial
 * console's input. */
#define _GNU_SOURCE
#include <errno.h>
#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bridge.h"
#include "l_net.h"
#include "nodecommon.h"
#include "qemu.h"
#include "runtime.h"
#include "sched.h"
#include "strv.h"
#include "util.h"

typedef struct VmConfig {
        char *kernel, *initrd, *append, *start_script, *qemu_binary;
        char **drives, **extra_args;
        unsigned memory_mb, cpus;
        QemuAccel accel;
        uint64_t boot_timeout_usec;
        char *shared_dir;
} VmConfig;

static void vm_create(lua_State *L, Node *n);

static void vm_config_free(void *data) {
        VmConfig *v = data;
        if (!v)
                return;
        free(v->kernel);
        free(v->initrd);
        free(v->append);
        free(v->start_script);
        free(v->qemu_binary);
        free(v->shared_dir);
        strv_free(v->drives);
        strv_free(v->extra_args);
        free(v);
}

static const NodeKind vm_kind = {
        .kind = MACHINE_VM,
        .noun = "VM",
        .died = "the VM went away (QEMU exited, or the guest rebooted) while the command ran",
        .exit_before_ready = "%s: QEMU exited (status %d) before the VM was ready%s%s",
        .create = vm_create,
        .free_data = vm_config_free,
};

static Qemu *node_qemu(Node *n) {
        return qemu_from_machine(n->m);
}

static void on_qmp_event(Machine *m, const char *name _unused_, json_t *data _unused_, json_t *msg) {
        Node *n = machine_userdata(m);
        if (!n->pending_events)
                n->pending_events = json_array();
        if (n->pending_events)
                json_array_append(n->pending_events, msg);
        waitlist_wake(&n->events, NULL, NULL);
}

/* ---- declaring ---- */

static char *opt_dup(lua_State *L, int t, const char *k) {
        lua_getfield(L, t, k);
        const char *s = lua_tostring(L, -1);
        char *d = s ? strdup(s) : NULL;
        lua_pop(L, 1);
        return d;
}

static char **opt_strv(lua_State *L, int t, const char *k) {
        char **v = NULL;
        size_t n = 0;
        if (lua_getfield(L, t, k) == LUA_TTABLE)
                for (lua_Integer i = 1; lua_rawgeti(L, -1, i) == LUA_TSTRING; i++) {
                        (void) strv_push(&v, &n, lua_tostring(L, -1));
                        lua_pop(L, 1);
                }
        lua_pop(L, lua_istable(L, -1) ? 2 : 1);
        return v;
}

/* internal.vm_new(name, state_dir, shared_dir, opts): opts checked by the stdlib
 * (kernel, initrd, append, drives, start_script, qemu, memory, cpus, accel, boot_timeout,
 * qemu_args, console_log). */
static int l_vm_new(lua_State *L) {
        const char *name = luaL_checkstring(L, 1);
        const char *state_dir = luaL_checkstring(L, 2);
        luaL_checktype(L, 4, LUA_TTABLE);
        lua_getfield(L, 4, "memory");
        unsigned memory_mb = (unsigned) luaL_optinteger(L, -1, 0);
        lua_getfield(L, 4, "cpus");
        unsigned cpus = (unsigned) luaL_optinteger(L, -1, 0);
        lua_getfield(L, 4, "boot_timeout");
        uint64_t boot_timeout_usec = (uint64_t) (luaL_optnumber(L, -1, 300) * 1e6);
        lua_getfield(L, 4, "accel");
        const char *accel = luaL_optstring(L, -1, "tcg");
        lua_pop(L, 4);
        lua_getfield(L, 4, "console_log");
        const char *console_log = lua_tostring(L, -1);

        Node *n = node_push_new(L, &vm_kind, name, state_dir, console_log);
        VmConfig *v = calloc(1, sizeof *v);
        if (!v)
                return luaL_error(L, "out of memory");
        n->data = v;
        v->shared_dir = lua_isstring(L, 3) ? strdup(lua_tostring(L, 3)) : NULL;
        v->kernel = opt_dup(L, 4, "kernel");
        v->initrd = opt_dup(L, 4, "initrd");
        v->append = opt_dup(L, 4, "append");
        v->start_script = opt_dup(L, 4, "start_script");
        v->qemu_binary = opt_dup(L, 4, "qemu");
        v->drives = opt_strv(L, 4, "drives");
        v->extra_args = opt_strv(L, 4, "qemu_args");
        v->memory_mb = memory_mb;
        v->cpus = cpus;
        v->boot_timeout_usec = boot_timeout_usec;
        v->accel = streq(accel, "kvm") ? QEMU_ACCEL_KVM : streq(accel, "auto") ? QEMU_ACCEL_KVM_OR_TCG : QEMU_ACCEL_TCG;
        return 1;
}

/* The first start makes QEMU, with a tap per link: the taps persist, so later starts reuse them. */
static void vm_create(lua_State *L, Node *n) {
        VmConfig *v = n->data;
        QemuNic nics[32];
        int fds[32];
        size_t k = 0;
        int r = 0;

        if (n->n_links > ELEMENTSOF(nics))
                luaL_error(L, "%s: too many VLANs (at most %d)", n->name, (int) ELEMENTSOF(nics));
        const char *error = NULL;
        Net *net = n->n_links ? lnet_get(&error) : NULL;
        if (n->n_links && !net)
                luaL_error(L, "%s: cannot reach the run's networks: %s", n->name, error);
        for (; k < n->n_links; k++) {
                r = net_tap_open(net, n->links[k].host_ifname, n->links[k].bridge, &fds[k]);
                if (r >= 0 && n->links[k].blocked)
                        r = net_link_set_up(net, n->links[k].host_ifname, false);
                if (r < 0)
                        break;
                nics[k] = (QemuNic) { .tap_fd = fds[k], .mac = n->links[k].mac };
        }
        Qemu *q = NULL;
        if (r >= 0) {
                QemuConfig cfg = {
                        .name = n->name,
                        .state_dir = n->state_dir,
                        .qemu = v->qemu_binary,
                        .kernel = v->kernel,
                        .initrd = v->initrd,
                        .append = v->append,
                        .drives = v->drives,
                        .start_script = v->start_script,
                        .shared_dir = v->shared_dir,
                        .memory_mb = v->memory_mb,
                        .cpus = v->cpus,
                        .accel = v->accel,
                        .allow_reboot = true,
                        .nics = nics,
                        .n_nics = k,
                        .extra_args = v->extra_args,
                        .boot_timeout_usec = v->boot_timeout_usec,
                };
                r = qemu_new(sched_event(), &cfg, NULL, n, &q);
                if (r < 0)
                        error = strerror(-r);
        } else
                error = net_error(net);
        for (size_t i = 0; i < k; i++)
                close(fds[i]);   /* qemu_new keeps its own duplicates */
        if (r < 0)
                luaL_error(L, "%s: cannot set up the VM: %s", n->name, error);
        MachineCallbacks cb = node_callbacks;
        cb.on_qmp_event = on_qmp_event;
        n->m = qemu_machine(q);
        machine_set_callbacks(n->m, &cb, n);
}

static int l_send_console(lua_State *L) {
        Node *n = node_check(L, 1, &vm_kind);
        size_t len;
        const char *s = luaL_checklstring(L, 2, &len);
        int r = machine_is_up(n->m) ? qemu_send_console(node_qemu(n), s, len) : -ESRCH;
        if (r < 0)
                return luaL_error(L, "%s: cannot write to the console: %s", n->name, strerror(-r));
        return 0;
}

/* ---- QMP ---- */

static void push_json(lua_State *L, json_t *j) {
        switch (json_typeof(j)) {
        case JSON_OBJECT: {
                const char *k;
                json_t *x;
                lua_createtable(L, 0, (int) json_object_size(j));
                json_object_foreach(j, k, x) {
                        push_json(L, x);
                        lua_setfield(L, -2, k);
                }
                break;
        }
        case JSON_ARRAY: {
                size_t i;
                json_t *x;
                lua_createtable(L, (int) json_array_size(j), 0);
                json_array_foreach(j, i, x) {
                        push_json(L, x);
                        lua_rawseti(L, -2, (lua_Integer) i + 1);
                }
                break;
        }
        case JSON_STRING:
                lua_pushlstring(L, json_string_value(j), json_string_length(j));
                break;
        case JSON_INTEGER:
                lua_pushinteger(L, (lua_Integer) json_integer_value(j));
                break;
        case JSON_REAL:
                lua_pushnumber(L, json_real_value(j));
                break;
        case JSON_TRUE:
        case JSON_FALSE:
                lua_pushboolean(L, json_is_true(j));
                break;
        default:
                lua_pushnil(L);
        }
}

typedef struct QmpCall {
        Wait *w;
} QmpCall;

static int push_qmp_result(lua_State *L, void *userdata) {
        json_t *result = userdata;
        if (result)
                push_json(L, result);
        else
                lua_pushnil(L);
        return 1;
}

static void on_qmp_done(Qemu *q _unused_, int error, json_t *result, const char *desc, void *userdata) {
        QmpCall *c = userdata;
        Wait *w = c->w;
        free(c);
        if (!w)
                return;   /* the task was cancelled meanwhile */
        w->data = NULL;
        if (error < 0)
                sched_wake_failure(w, "MachineError", desc ? desc : strerror(-error));
        else
                sched_wake(w, true, push_qmp_result, result);
}

static void qmp_wait_cancel(Wait *w) {
        QmpCall *c = w->data;
        if (c)
                c->w = NULL;   /* the reply still comes: on_qmp_done frees the call */
}

static int qmp_call(lua_State *L, Node *n, const char *what, int r, QmpCall *c, Wait *w) {
        if (r < 0) {
                free(c);
                sched_wait_discard(w);
                return luaL_error(L, "%s: %s: %s", n->name, what, strerror(-r));
        }
        w->data = c;
        w->cancel = qmp_wait_cancel;
        return sched_suspend(L, w);
}

static QmpCall *qmp_prepare(lua_State *L, Node *n, Wait **ret_w, const char *what) {
        if (!machine_is_up(n->m))
                luaL_error(L, "%s: %s: the VM is not running", n->name, what);
        Wait *w = sched_wait_new(L, "%s: %s", n->name, what);
        QmpCall *c = calloc(1, sizeof *c);
        if (!c) {
                sched_wait_discard(w);
                luaL_error(L, "out of memory");
        }
        *ret_w = c->w = w;
        return c;
}

/* h:hmp(command_line) -> output */
static int l_hmp(lua_State *L) {
        Node *n = node_check(L, 1, &vm_kind);
        const char *cmd = luaL_checkstring(L, 2);
        Wait *w;
        QmpCall *c = qmp_prepare(L, n, &w, "monitor command");
        return qmp_call(L, n, "monitor command", qemu_hmp(node_qemu(n), cmd, on_qmp_done, c), c, w);
}

/* h:send_key(key) */
static int l_send_key(lua_State *L) {
        Node *n = node_check(L, 1, &vm_kind);
        const char *key = luaL_checkstring(L, 2);
        Wait *w;
        QmpCall *c = qmp_prepare(L, n, &w, "sendkey");
        return qmp_call(L, n, "sendkey", qemu_send_key(node_qemu(n), key, on_qmp_done, c), c, w);
}

/* h:screendump(path) */
static int l_screendump(lua_State *L) {
        Node *n = node_check(L, 1, &vm_kind);
        const char *path = luaL_checkstring(L, 2);
        Wait *w;
        QmpCall *c = qmp_prepare(L, n, &w, "screendump");
        return qmp_call(L, n, "screendump", qemu_screendump(node_qemu(n), path, on_qmp_done, c), c, w);
}

/* h:take_events() -> { event, ... } (and forgets them) */
static int l_take_events(lua_State *L) {
        Node *n = node_check(L, 1, &vm_kind);
        if (n->pending_events)
                push_json(L, n->pending_events);
        else
                lua_newtable(L);
        json_decref(n->pending_events);
        n->pending_events = NULL;
        return 1;
}

/* h:wait_event(timeout): until a QMP event arrives (or QEMU exits) */
static int l_wait_event(lua_State *L) {
        Node *n = node_check(L, 1, &vm_kind);
        double timeout = luaL_optnumber(L, 2, 0);
        if (n->pending_events && json_array_size(n->pending_events) > 0)
                return 0;
        if (!machine_is_up(n->m))
                return luaL_error(L, "%s: QMP API is not ready yet, is the VM ready?", n->name);
        Wait *w = sched_wait_new(L, "%s: waiting for a QMP event", n->name);
        return waitlist_suspend(L, &n->events, timeout, w);
}

void bridge_open_vms(lua_State *L) {
        static const luaL_Reg methods[] = {
                { "send_console", l_send_console },
                { "hmp", l_hmp },
                { "send_key", l_send_key },
                { "screendump", l_screendump },
                { "take_events", l_take_events },
                { "wait_event", l_wait_event },
                { NULL, NULL },
        };
        static const luaL_Reg internal[] = {
                { "new", l_vm_new },
                { NULL, NULL },
        };
        node_add_methods(L, methods);
        bridge_internal_module(L, "vm");
        luaL_setfuncs(L, internal, 0);
        lua_pop(L, 1);
}
