/* l_vm.c: the VM handle the stdlib's vm nodes are built on (stdlib/node.lua), over runner/qemu.c.
 * It answers the same methods as the container handle (l_node.c) where a VM can, so that the
 * node methods are shared; QEMU is created at the first start, once the node's taps are known. */
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

#define HANDLE "moonrig.Vm"

typedef struct VmLink {
        char *host_ifname, *bridge, *mac;
        bool blocked;
} VmLink;

typedef struct Vm {
        Qemu *q;                   /* from the first start on */
        char *name, *state_dir, *shared_dir;
        char *kernel, *initrd, *append, *start_script, *qemu_binary;
        char **drives, **extra_args;
        unsigned memory_mb, cpus;
        QemuAccel accel;
        uint64_t boot_timeout_usec;
        VmLink *links;
        size_t n_links;
        WaitList ready, exited, events;
        bool booting;
        int ready_error;
        char *ready_message;
        ConsoleLog console;
        json_t *pending_events;    /* QMP events not yet taken by wait_for_qmp_event */
        struct Vm *next;
} Vm;

static Vm *all_vms;

static Vm *check_vm(lua_State *L, int i) {
        Vm **p = luaL_checkudata(L, i, HANDLE);
        if (!*p)
                luaL_error(L, "this node was released");
        return *p;
}

/* ---- backend callbacks ---- */

static void on_ready(Qemu *q, int error, const char *message) {
        Vm *v = qemu_userdata(q);
        v->booting = false;
        v->ready_error = error;
        free(v->ready_message);
        v->ready_message = message ? strdup(message) : NULL;
        if (error < 0)
                waitlist_wake(&v->ready, "MachineError", message ? message : "the VM failed to boot");
        else
                waitlist_wake(&v->ready, NULL, NULL);
}

static void on_exit_cb(Qemu *q, int status) {
        Vm *v = qemu_userdata(q);
        v->booting = false;
        if (v->ready.n > 0) {
                _cleanup_free_ char *msg = NULL;
                if (asprintf(&msg, "%s: QEMU exited (status %d) before the VM was ready%s%s", v->name, status,
                             v->ready_message ? ": " : "", v->ready_message ? v->ready_message : "") < 0)
                        msg = NULL;
                waitlist_wake(&v->ready, "MachineError", msg ? msg : "QEMU exited");
        }
        waitlist_wake(&v->exited, NULL, NULL);
        waitlist_wake(&v->console.waiters, NULL, NULL);
        waitlist_wake(&v->events, NULL, NULL);
}

static void on_console_line(Qemu *q, const char *line, size_t len) {
        Vm *v = qemu_userdata(q);
        console_log_add(&v->console, v->name, line, len);
}

static void on_qmp_event(Qemu *q, const char *name _unused_, json_t *data _unused_, json_t *msg) {
        Vm *v = qemu_userdata(q);
        if (!v->pending_events)
                v->pending_events = json_array();
        if (v->pending_events)
                json_array_append(v->pending_events, msg);
        waitlist_wake(&v->events, NULL, NULL);
}

static void on_notice(Qemu *q, const char *message) {
        Vm *v = qemu_userdata(q);
        console_log_add(&v->console, v->name, message, strlen(message));
}

static const QemuCallbacks callbacks = {
        .on_ready = on_ready,
        .on_exit = on_exit_cb,
        .on_console_line = on_console_line,
        .on_qmp_event = on_qmp_event,
        .on_notice = on_notice,
};

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

static void vm_cleanup_all(void);

/* internal.vm_new(name, state_dir, shared_dir, opts): opts checked by the stdlib
 * (kernel, initrd, append, drives, start_script, qemu, memory, cpus, accel, boot_timeout,
 * qemu_args, console_log). */
static int l_vm_new(lua_State *L) {
        static bool cleanup_registered;
        luaL_checktype(L, 4, LUA_TTABLE);
        Vm *v = calloc(1, sizeof *v);
        if (!v)
                return luaL_error(L, "out of memory");
        v->name = strdup(luaL_checkstring(L, 1));
        v->state_dir = strdup(luaL_checkstring(L, 2));
        v->shared_dir = lua_isstring(L, 3) ? strdup(lua_tostring(L, 3)) : NULL;
        v->kernel = opt_dup(L, 4, "kernel");
        v->initrd = opt_dup(L, 4, "initrd");
        v->append = opt_dup(L, 4, "append");
        v->start_script = opt_dup(L, 4, "start_script");
        v->qemu_binary = opt_dup(L, 4, "qemu");
        v->drives = opt_strv(L, 4, "drives");
        v->extra_args = opt_strv(L, 4, "qemu_args");
        lua_getfield(L, 4, "memory");
        v->memory_mb = (unsigned) luaL_optinteger(L, -1, 0);
        lua_getfield(L, 4, "cpus");
        v->cpus = (unsigned) luaL_optinteger(L, -1, 0);
        lua_getfield(L, 4, "boot_timeout");
        v->boot_timeout_usec = (uint64_t) (luaL_optnumber(L, -1, 300) * 1e6);
        lua_getfield(L, 4, "accel");
        const char *accel = luaL_optstring(L, -1, "tcg");
        v->accel = streq(accel, "kvm") ? QEMU_ACCEL_KVM : streq(accel, "auto") ? QEMU_ACCEL_KVM_OR_TCG : QEMU_ACCEL_TCG;
        lua_pop(L, 4);
        lua_getfield(L, 4, "console_log");
        int r = console_log_open(&v->console, lua_tostring(L, -1));
        lua_pop(L, 1);
        if (r < 0)
                return luaL_error(L, "%s: cannot open its console log: %s", v->name, strerror(-r));

        v->next = all_vms;
        all_vms = v;
        if (!cleanup_registered) {
                runtime_add_cleanup(vm_cleanup_all);
                cleanup_registered = true;
        }
        Vm **p = lua_newuserdatauv(L, sizeof(Vm *), 0);
        *p = v;
        luaL_setmetatable(L, HANDLE);
        return 1;
}

static void vm_free(Vm *v) {
        waitlist_wake(&v->ready, "MachineError", "the run is ending");
        waitlist_wake(&v->exited, NULL, NULL);
        waitlist_wake(&v->events, NULL, NULL);
        qemu_free(v->q);
        console_log_done(&v->console);
        json_decref(v->pending_events);
        for (size_t i = 0; i < v->n_links; i++) {
                free(v->links[i].host_ifname);
                free(v->links[i].bridge);
                free(v->links[i].mac);
        }
        free(v->links);
        free(v->name);
        free(v->state_dir);
        free(v->shared_dir);
        free(v->kernel);
        free(v->initrd);
        free(v->append);
        free(v->start_script);
        free(v->qemu_binary);
        strv_free(v->drives);
        strv_free(v->extra_args);
        free(v->ready_message);
        free(v);
}

/* At the end of the run: every VM gets its SIGTERM at once, then each is freed (killed if need be). */
static void vm_cleanup_all(void) {
        for (Vm *v = all_vms; v; v = v->next)
                if (v->q && qemu_is_up(v->q))
                        qemu_release(v->q);
        while (all_vms) {
                Vm *v = all_vms;
                all_vms = v->next;
                vm_free(v);
        }
}

/* h:set_links({ {host_ifname=, bridge=, mac=}, ... }): a tap per link, made at the first start. */
static int l_set_links(lua_State *L) {
        Vm *v = check_vm(L, 1);
        luaL_checktype(L, 2, LUA_TTABLE);
        if (v->q)
                return luaL_error(L, "%s: the VM's links are fixed once it started", v->name);
        size_t k = lua_rawlen(L, 2);
        VmLink *links = calloc(k ?: 1, sizeof *links);
        if (!links)
                return luaL_error(L, "out of memory");
        for (size_t i = 0; i < k; i++) {
                lua_rawgeti(L, 2, (lua_Integer) i + 1);
                links[i] = (VmLink) {
                        .host_ifname = opt_dup(L, -1, "host_ifname"),
                        .bridge = opt_dup(L, -1, "bridge"),
                        .mac = opt_dup(L, -1, "mac"),
                };
                lua_pop(L, 1);
        }
        free(v->links);
        v->links = links;
        v->n_links = k;
        return 0;
}

static int l_set_link_blocked(lua_State *L) {
        Vm *v = check_vm(L, 1);
        const char *host = luaL_checkstring(L, 2);
        for (size_t i = 0; i < v->n_links; i++)
                if (streq(v->links[i].host_ifname, host))
                        v->links[i].blocked = lua_toboolean(L, 3);
        return 0;
}

static int l_add_file(lua_State *L) {
        Vm *v = check_vm(L, 1);
        (void) v;
        return 0;   /* a VM's files come from its image: /etc/hosts is the guest's to write */
}

/* ---- lifecycle ---- */

/* The first start makes QEMU, with a tap per link: the taps persist, so later starts reuse them. */
static int vm_create(lua_State *L, Vm *v) {
        QemuNic nics[32];
        int fds[32];
        size_t n = 0;
        int r = 0;

        if (v->n_links > ELEMENTSOF(nics))
                return luaL_error(L, "%s: too many VLANs (at most %d)", v->name, (int) ELEMENTSOF(nics));
        const char *error = NULL;
        Net *net = v->n_links ? lnet_get(&error) : NULL;
        if (v->n_links && !net)
                return luaL_error(L, "%s: cannot reach the run's networks: %s", v->name, error);
        for (; n < v->n_links; n++) {
                r = net_tap_open(net, v->links[n].host_ifname, v->links[n].bridge, &fds[n]);
                if (r >= 0 && v->links[n].blocked)
                        r = net_link_set_up(net, v->links[n].host_ifname, false);
                if (r < 0)
                        break;
                nics[n] = (QemuNic) { .tap_fd = fds[n], .mac = v->links[n].mac };
        }
        if (r >= 0) {
                QemuConfig cfg = {
                        .name = v->name,
                        .state_dir = v->state_dir,
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
                        .n_nics = n,
                        .extra_args = v->extra_args,
                        .boot_timeout_usec = v->boot_timeout_usec,
                };
                r = qemu_new(sched_event(), &cfg, &callbacks, v, &v->q);
                if (r < 0)
                        error = strerror(-r);
        } else
                error = net_error(net);
        for (size_t i = 0; i < n; i++)
                close(fds[i]);   /* qemu_new keeps its own duplicates */
        if (r < 0)
                return luaL_error(L, "%s: cannot set up the VM: %s", v->name, error);
        return 0;
}

static int l_start(lua_State *L) {
        Vm *v = check_vm(L, 1);
        if (v->booting || (v->q && qemu_is_up(v->q)))
                return 0;
        if (!v->q)
                vm_create(L, v);
        v->ready_error = 0;
        v->booting = true;
        int r = qemu_start(v->q);
        if (r < 0 && r != -EBUSY) {
                v->booting = false;
                if (qemu_start_error(v->q))
                        return luaL_error(L, "%s", qemu_start_error(v->q));
                return luaL_error(L, "%s: cannot start the VM: %s", v->name, strerror(-r));
        }
        return 0;
}

static bool vm_up(Vm *v) {
        return v->q && qemu_is_up(v->q);
}

static int l_wait_ready(lua_State *L) {
        Vm *v = check_vm(L, 1);
        double timeout = luaL_optnumber(L, 2, 0);
        if (v->q && qemu_is_connected(v->q))
                return 0;
        if (!vm_up(v) && !v->booting) {
                if (v->ready_error < 0)
                        return luaL_error(L, "%s", v->ready_message ? v->ready_message : "the VM failed to boot");
                return luaL_error(L, "%s: the VM is not running", v->name);
        }
        Wait *w = sched_wait_new(L, "%s: waiting for the VM's backdoor shell", v->name);
        return waitlist_suspend(L, &v->ready, timeout, w);
}

static int l_wait_exit(lua_State *L) {
        Vm *v = check_vm(L, 1);
        double timeout = luaL_optnumber(L, 2, 0);
        if (!vm_up(v))
                return 0;
        Wait *w = sched_wait_new(L, "%s: waiting for the VM to power off", v->name);
        return waitlist_suspend(L, &v->exited, timeout, w);
}

static int l_shutdown(lua_State *L) {
        Vm *v = check_vm(L, 1);
        if (!vm_up(v))
                return 0;
        int r = qemu_shutdown(v->q);
        if (r < 0)
                return luaL_error(L, "%s: cannot shut down: %s", v->name, strerror(-r));
        Wait *w = sched_wait_new(L, "%s: waiting for the VM to power off", v->name);
        return waitlist_suspend(L, &v->exited, 0, w);
}

static int l_crash(lua_State *L) {
        Vm *v = check_vm(L, 1);
        if (!vm_up(v))
                return 0;
        qemu_crash(v->q);
        Wait *w = sched_wait_new(L, "%s: waiting for QEMU to exit", v->name);
        return waitlist_suspend(L, &v->exited, 0, w);
}

static int l_reboot(lua_State *L) {
        Vm *v = check_vm(L, 1);
        if (!vm_up(v))
                return luaL_error(L, "%s: cannot reboot: the VM is not running", v->name);
        int r = qemu_reboot(v->q);
        if (r < 0)
                return luaL_error(L, "%s: cannot reboot: %s", v->name, strerror(-r));
        v->booting = true;
        Wait *w = sched_wait_new(L, "%s: waiting for the VM to come back", v->name);
        return waitlist_suspend(L, &v->ready, 0, w);
}

static int l_is_up(lua_State *L) {
        lua_pushboolean(L, vm_up(check_vm(L, 1)));
        return 1;
}

static int l_is_ready(lua_State *L) {
        Vm *v = check_vm(L, 1);
        lua_pushboolean(L, v->q && qemu_is_connected(v->q));
        return 1;
}

static int l_is_booting(lua_State *L) {
        lua_pushboolean(L, check_vm(L, 1)->booting);
        return 1;
}

/* A wait made but never suspended on (the request failed at once). */
static void wait_discard(Wait *w) {
        free(w->what);
        free(w->where);
        free(w);
}

/* ---- commands ---- */

typedef struct VmExec {
        Wait *w;
        Vm *vm;
        QemuExecJob *job;
} VmExec;

static int push_exec_result(lua_State *L, void *userdata) {
        QemuExecResult *r = userdata;
        lua_pushinteger(L, r->status);
        lua_pushlstring(L, r->out ? r->out : "", r->out_len);
        lua_pushliteral(L, "");          /* stderr went to the serial console */
        lua_pushboolean(L, false);       /* the guest's `timeout` gives status 124, as in NixOS */
        lua_pushboolean(L, false);
        if (r->error == -ECONNRESET || r->error == -ECANCELED)
                lua_pushstring(L, "the VM went away (QEMU exited, or the guest rebooted) while the command ran");
        else if (r->error < 0)
                lua_pushstring(L, strerror(-r->error));
        else
                lua_pushnil(L);
        return 6;
}

static void on_exec_done(Qemu *q _unused_, QemuExecResult *r, void *userdata) {
        VmExec *e = userdata;
        Wait *w = e->w;
        w->data = NULL;
        free(e);
        sched_wake(w, true, push_exec_result, r);
}

static void exec_wait_cancel(Wait *w) {
        VmExec *e = w->data;
        if (!e)
                return;
        qemu_exec_cancel(e->job);
        free(e);
}

/* h:exec(command, timeout, check_return, check_output) -> status, stdout, "", false, false, error */
static int l_exec(lua_State *L) {
        Vm *v = check_vm(L, 1);
        const char *cmd = luaL_checkstring(L, 2);
        double timeout = luaL_optnumber(L, 3, 0);
        unsigned flags = 0;
        if (lua_gettop(L) >= 4 && !lua_isnil(L, 4) && !lua_toboolean(L, 4))
                flags |= QEMU_EXEC_NO_STATUS;
        if (lua_gettop(L) >= 5 && !lua_isnil(L, 5) && !lua_toboolean(L, 5))
                flags |= QEMU_EXEC_NO_OUTPUT;
        if (!vm_up(v))
                return luaL_error(L, "%s: the VM is not running", v->name);
        VmExec *e = calloc(1, sizeof *e);
        if (!e)
                return luaL_error(L, "out of memory");
        Wait *w = sched_wait_new(L, "%s: command `%.200s`", v->name, cmd);
        e->w = w;
        e->vm = v;
        int r = qemu_exec(v->q, cmd, (uint64_t) (timeout * 1e6), flags, on_exec_done, e, &e->job);
        if (r < 0) {
                free(e);
                wait_discard(w);
                return luaL_error(L, "%s: cannot run `%s`: %s", v->name, cmd, strerror(-r));
        }
        w->data = e;
        w->cancel = exec_wait_cancel;
        return sched_suspend(L, w);
}

/* ---- console ---- */

static int l_console(lua_State *L) {
        Vm *v = check_vm(L, 1);
        lua_pushlstring(L, v->console.text ? v->console.text : "", v->console.len);
        lua_pushinteger(L, (lua_Integer) v->console.lines);
        return 2;
}

static int l_wait_console(lua_State *L) {
        Vm *v = check_vm(L, 1);
        lua_Integer seen = luaL_checkinteger(L, 2);
        double timeout = luaL_optnumber(L, 3, 0);
        if ((lua_Integer) v->console.lines > seen)
                return 0;
        if (!vm_up(v))
                return luaL_error(L, "%s: the VM is not running", v->name);
        Wait *w = sched_wait_new(L, "%s: waiting for console output", v->name);
        return waitlist_suspend(L, &v->console.waiters, timeout, w);
}

static int l_send_console(lua_State *L) {
        Vm *v = check_vm(L, 1);
        size_t len;
        const char *s = luaL_checklstring(L, 2, &len);
        int r = vm_up(v) ? qemu_send_console(v->q, s, len) : -ESRCH;
        if (r < 0)
                return luaL_error(L, "%s: cannot write to the console: %s", v->name, strerror(-r));
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

static int qmp_call(lua_State *L, Vm *v, const char *what, int r, QmpCall *c, Wait *w) {
        if (r < 0) {
                free(c);
                wait_discard(w);
                return luaL_error(L, "%s: %s: %s", v->name, what, strerror(-r));
        }
        w->data = c;
        w->cancel = qmp_wait_cancel;
        return sched_suspend(L, w);
}

static QmpCall *qmp_prepare(lua_State *L, Vm *v, Wait **ret_w, const char *what) {
        if (!vm_up(v))
                luaL_error(L, "%s: %s: the VM is not running", v->name, what);
        QmpCall *c = calloc(1, sizeof *c);
        if (!c)
                luaL_error(L, "out of memory");
        *ret_w = c->w = sched_wait_new(L, "%s: %s", v->name, what);
        return c;
}

/* h:hmp(command_line) -> output */
static int l_hmp(lua_State *L) {
        Vm *v = check_vm(L, 1);
        const char *cmd = luaL_checkstring(L, 2);
        Wait *w;
        QmpCall *c = qmp_prepare(L, v, &w, "monitor command");
        return qmp_call(L, v, "monitor command", qemu_hmp(v->q, cmd, on_qmp_done, c), c, w);
}

/* h:send_key(key) */
static int l_send_key(lua_State *L) {
        Vm *v = check_vm(L, 1);
        const char *key = luaL_checkstring(L, 2);
        Wait *w;
        QmpCall *c = qmp_prepare(L, v, &w, "sendkey");
        return qmp_call(L, v, "sendkey", qemu_send_key(v->q, key, on_qmp_done, c), c, w);
}

/* h:screendump(path) */
static int l_screendump(lua_State *L) {
        Vm *v = check_vm(L, 1);
        const char *path = luaL_checkstring(L, 2);
        Wait *w;
        QmpCall *c = qmp_prepare(L, v, &w, "screendump");
        return qmp_call(L, v, "screendump", qemu_screendump(v->q, path, on_qmp_done, c), c, w);
}

/* h:take_events() -> { event, ... } (and forgets them) */
static int l_take_events(lua_State *L) {
        Vm *v = check_vm(L, 1);
        if (v->pending_events)
                push_json(L, v->pending_events);
        else
                lua_newtable(L);
        json_decref(v->pending_events);
        v->pending_events = NULL;
        return 1;
}

/* h:wait_event(timeout): until a QMP event arrives (or QEMU exits) */
static int l_wait_event(lua_State *L) {
        Vm *v = check_vm(L, 1);
        double timeout = luaL_optnumber(L, 2, 0);
        if (v->pending_events && json_array_size(v->pending_events) > 0)
                return 0;
        if (!vm_up(v))
                return luaL_error(L, "%s: QMP API is not ready yet, is the VM ready?", v->name);
        Wait *w = sched_wait_new(L, "%s: waiting for a QMP event", v->name);
        return waitlist_suspend(L, &v->events, timeout, w);
}

void bridge_open_vms(lua_State *L) {
        static const luaL_Reg methods[] = {
                { "start", l_start },
                { "set_links", l_set_links },
                { "set_link_blocked", l_set_link_blocked },
                { "add_file", l_add_file },
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
                { "send_console", l_send_console },
                { "hmp", l_hmp },
                { "send_key", l_send_key },
                { "screendump", l_screendump },
                { "take_events", l_take_events },
                { "wait_event", l_wait_event },
                { NULL, NULL },
        };
        static const luaL_Reg internal[] = {
                { "vm_new", l_vm_new },
                { NULL, NULL },
        };
        luaL_newmetatable(L, HANDLE);
        lua_newtable(L);
        luaL_setfuncs(L, methods, 0);
        lua_setfield(L, -2, "__index");
        lua_pop(L, 1);
        bridge_internal(L);
        luaL_setfuncs(L, internal, 0);
        lua_pop(L, 1);
}
