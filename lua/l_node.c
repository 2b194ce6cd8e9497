/* l_node.c: what only a container's node handle has (the handle is l_machine.c's): its
 * declaration, links wired at leader time, systemd units over sd-bus, probes, host commands. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <lauxlib.h>
#include <netdb.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>

#include "bridge.h"
#include "config.h"
#include "container.h"
#include "hostcmd.h"
#include "links.h"
#include "l_net.h"
#include "nodecommon.h"
#include "log.h"
#include "preflight.h"
#include "probe.h"
#include "runtime.h"
#include "sched.h"
#include "strv.h"
#include "units.h"
#include "util.h"

static const NodeKind container_kind;

static Container *node_container(Node *n) {
        return container_from_machine(n->m);
}

/* The node's namespaces exist and its init is starting: give it its links before its units run
 * (runner/links.c); on failure the boot is crashed, and link_error tells why. */
static void on_leader(Machine *m, pid_t leader) {
        Node *n = machine_userdata(m);
        if (n->n_links == 0)
                return;
        const char *error = NULL;
        char *message = NULL;
        Net *net = lnet_get(&error);
        int r = net ? links_attach_veths(net, leader, n->links, n->n_links, n->name, &message) : -ENETDOWN;
        if (r >= 0)
                return;
        if (!net && asprintf(&message, "%s: cannot attach its network links: %s", n->name, error) < 0)
                message = NULL;
        free(n->link_error);
        n->link_error = message;
        machine_crash(m);
}

static const NodeKind container_kind = {
        .kind = MACHINE_CONTAINER,
        .noun = "container",
        .died = "the container died while the command ran",
        .exit_before_ready = "%s: the container stopped (status %d) before it was ready%s%s",
};

/* ---- declaring ---- */

/* Raises unless opts[field] is nil or a list of strings: checked before anything is allocated. */
static void check_strv(lua_State *L, int t, const char *field) {
        int type = lua_getfield(L, t, field);
        if (type != LUA_TNIL && type != LUA_TTABLE)
                luaL_error(L, "option %s must be a list of strings", field);
        for (lua_Integer i = 1; type == LUA_TTABLE && i <= (lua_Integer) lua_rawlen(L, -1); i++) {
                if (lua_rawgeti(L, -1, i) != LUA_TSTRING)
                        luaL_error(L, "option %s: entry %d must be a string", field, (int) i);
                lua_pop(L, 1);
        }
        lua_pop(L, 1);
}

/* opts[field], checked by check_strv, as a strv; sets *r to -ENOMEM when out of memory. */
static char **table_strv(lua_State *L, int t, const char *field, int *r) {
        char **v = NULL;
        size_t n = 0;
        if (lua_getfield(L, t, field) == LUA_TTABLE)
                for (lua_Integer i = 1; i <= (lua_Integer) lua_rawlen(L, -1); i++) {
                        lua_rawgeti(L, -1, i);
                        if (strv_push(&v, &n, lua_tostring(L, -1)) < 0)
                                *r = -ENOMEM;
                        lua_pop(L, 1);
                }
        lua_pop(L, 1);
        return v;
}

static const char *table_str(lua_State *L, int t, const char *field) {
        lua_getfield(L, t, field);
        const char *s = lua_tostring(L, -1);
        lua_pop(L, 1);  /* still referenced by the table */
        return s;
}

static const char *const strv_options[] = { "services", "bind", "bind_ro", "devices", "env", "nspawn_args" };

/* The container of cfg (its lists read from opts at t): 0 or -errno, raising nothing. */
static int container_make(lua_State *L, int t, ContainerConfig *cfg, Node *n, Container **ret) {
        char **v[ELEMENTSOF(strv_options)] = {};
        int r = 0;
        for (size_t i = 0; i < ELEMENTSOF(strv_options); i++)
                v[i] = table_strv(L, t, strv_options[i], &r);
        cfg->services = v[0];
        cfg->bind = v[1];
        cfg->bind_ro = v[2];
        cfg->devices = v[3];
        cfg->env = v[4];
        cfg->extra_args = v[5];
        if (r >= 0)
                r = container_new(sched_event(), cfg, NULL, n, ret);
        for (size_t i = 0; i < ELEMENTSOF(strv_options); i++)
                strv_free(v[i]);
        return r;
}

/* internal.container_new(name, state_dir, shared_dir, opts): the handle; opts was checked by
 * the stdlib (files as a list of {path=, content=|source=, mode=}). Every argument is checked
 * before anything is allocated, the handle is made before the container, and a failure is
 * raised once, after the cleanup. */
static int l_container_new(lua_State *L) {
        const char *name = luaL_checkstring(L, 1);
        const char *state_dir = luaL_checkstring(L, 2);
        const char *shared_dir = luaL_optstring(L, 3, NULL);
        luaL_checktype(L, 4, LUA_TTABLE);
        for (size_t i = 0; i < ELEMENTSOF(strv_options); i++)
                check_strv(L, 4, strv_options[i]);

        HostImageFile files[256];
        size_t n_files = 0;
        if (lua_getfield(L, 4, "files") == LUA_TTABLE) {
                int ft = lua_gettop(L);
                size_t n = lua_rawlen(L, ft);
                if (n > ELEMENTSOF(files))
                        return luaL_error(L, "%s: too many files (at most %d)", name, (int) ELEMENTSOF(files));
                for (size_t i = 0; i < n; i++) {
                        if (lua_rawgeti(L, ft, (lua_Integer) i + 1) != LUA_TTABLE)
                                return luaL_error(L, "%s: files: entry %d must be a table", name, (int) i + 1);
                        int e = lua_gettop(L);
                        size_t len = 0;
                        lua_getfield(L, e, "content");
                        const char *content = lua_tolstring(L, -1, &len);
                        lua_pop(L, 1);
                        lua_getfield(L, e, "mode");
                        mode_t mode = (mode_t) lua_tointeger(L, -1);
                        lua_pop(L, 1);
                        files[n_files++] = (HostImageFile) {
                                .path = table_str(L, e, "path"),
                                .content = content,
                                .len = len,
                                .source = table_str(L, e, "source"),
                                .mode = mode,
                        };
                        lua_pop(L, 1);
                }
        }
        /* the files table stays on the stack, so its strings live until container_new copied them */

        lua_getfield(L, 4, "boot_timeout");
        double boot_timeout = luaL_optnumber(L, -1, 300);
        lua_pop(L, 1);
        lua_getfield(L, 4, "persistent");
        bool persistent = lua_toboolean(L, -1);
        lua_pop(L, 1);

        ContainerConfig cfg = {
                .name = name,
                .hostname = table_str(L, 4, "hostname"),
                .image = table_str(L, 4, "image"),
                .system = table_str(L, 4, "system"),
                .start_script = table_str(L, 4, "start_script"),
                .persistent = persistent,
                .state_dir = state_dir,
                .shared_dir = shared_dir,
                .files = files,
                .n_files = n_files,
                .boot_timeout_usec = (uint64_t) (boot_timeout * 1e6),
        };

        /* The handle first, in a safe state: freed with the run if what follows fails. */
        Node *n = node_push_new(L, &container_kind, name, state_dir, table_str(L, 4, "console_log"));
        Container *c;
        int r = container_make(L, 4, &cfg, n, &c);
        if (r < 0)
                return luaL_error(L, "%s: cannot set up the container: %s", name, strerror(-r));
        MachineCallbacks cb = node_callbacks;
        cb.on_leader = on_leader;
        cb.on_journal_line = cb.on_console_line;
        n->m = container_machine(c);
        machine_set_callbacks(n->m, &cb, n);
        return 1;
}

static int l_leader(lua_State *L) {
        lua_pushinteger(L, container_leader(node_container(node_check(L, 1, &container_kind))));
        return 1;
}

static int l_root(lua_State *L) {
        const char *root = container_root(node_container(node_check(L, 1, &container_kind)));
        lua_pushstring(L, root);
        return 1;
}

/* ---- systemd units over sd-bus ---- */

typedef struct UnitWait {
        Wait *w;
        Node *node;
        Units *units;
        UnitsWait *uw;
        UnitsQuery *q;
        sd_event_source *retry;
        char *unit, *user, *property;
        bool show;
} UnitWait;

/* Stops what is in flight: the request, the retry timer. */
static void unitwait_stop(UnitWait *u) {
        units_wait_cancel(TAKE_PTR(u->uw));
        units_query_cancel(TAKE_PTR(u->q));
        u->retry = sd_event_source_disable_unref(u->retry);
}

static void unitwait_free(UnitWait *u) {
        if (!u)
                return;
        unitwait_stop(u);
        units_unref(u->units);
        free(u->unit);
        free(u->user);
        free(u->property);
        free(u);
}

static void unitwait_cancel(Wait *w) {
        UnitWait *u = w->data;
        if (u && w->on_timeout && !w->deadline) {
                /* The deadline fired (the scheduler dropped it): stop the request and keep u, whose
                 * unit and user on_unit_timeout names. */
                unitwait_stop(u);
                return;
        }
        unitwait_free(u);
        w->data = NULL;
}

/* state: the unit's last ActiveState, as the failure's `state` field (NULL: none). */
static void unitwait_fail_state(UnitWait *u, const char *kind, const char *message, const char *state) {
        Wait *w = u->w;
        w->data = NULL;
        u->uw = NULL;
        u->q = NULL;
        unitwait_free(u);
        sched_wake_failure_field(w, kind, message, "state", state);
}

static void unitwait_fail(UnitWait *u, const char *kind, const char *message) {
        unitwait_fail_state(u, kind, message, NULL);
}

static void on_unit_active(int error, const char *state, const char *message, void *userdata) {
        UnitWait *u = userdata;
        u->uw = NULL;
        if (error < 0 && !machine_is_ready(u->node->m)) {
                /* The manager went away because the node is going down (crash, shutdown): a machine
                 * failure, as for a command the crash killed, not a verdict on the unit. */
                _cleanup_free_ char *msg = NULL;
                if (asprintf(&msg, "%s: the container stopped while waiting for unit \"%s\"%s%s (%s)",
                             u->node->name, u->unit, u->user ? " of user " : "", u->user ? u->user : "",
                             message ? message : strerror(-error)) < 0)
                        msg = NULL;
                unitwait_fail(u, "MachineError", msg ? msg : "the container stopped");
                return;
        }
        if (error < 0) {
                unitwait_fail_state(u, "TestFailure", message ? message : strerror(-error), state);
                return;
        }
        Wait *w = u->w;
        w->data = NULL;
        unitwait_free(u);
        sched_wake_ok(w);
}

static int push_properties(lua_State *L, void *userdata) {
        char **props = userdata;
        luaL_Buffer b;
        luaL_buffinit(L, &b);
        for (char **p = props; p && *p; p++) {
                luaL_addstring(&b, *p);
                luaL_addchar(&b, '\n');
        }
        luaL_pushresult(&b);
        return 1;
}

static void on_unit_properties(int error, char **properties, const char *message, void *userdata) {
        UnitWait *u = userdata;
        u->q = NULL;
        if (error < 0) {
                unitwait_fail(u, "TestFailure", message ? message : strerror(-error));
                return;
        }
        Wait *w = u->w;
        w->data = NULL;
        sched_wake(w, true, push_properties, properties);
        unitwait_free(u);
}

static int unitwait_try(UnitWait *u);

static int on_unit_retry(sd_event_source *s, uint64_t usec, void *userdata) {
        UnitWait *u = userdata;
        u->retry = sd_event_source_disable_unref(u->retry);
        unitwait_try(u);
        return 0;
}

/* The scheduler's deadline passed: it cancelled the wait (unitwait_cancel left u for us). */
static void on_unit_timeout(Wait *w) {
        UnitWait *u = w->data;
        _cleanup_free_ char *msg = NULL;
        if (asprintf(&msg, "timed out waiting for unit \"%s\"%s%s", u->unit,
                     u->user ? " of user " : "", u->user ? u->user : "") < 0)
                msg = NULL;
        unitwait_fail(u, "Timeout", msg ? msg : "timed out");
}

/* Connect (the manager may not listen yet right after boot: retry on a short timer), then
 * issue the request. */
static int unitwait_try(UnitWait *u) {
        Node *n = u->node;
        int r;

        if (!machine_is_ready(n->m)) {
                _cleanup_free_ char *msg = NULL;
                if (asprintf(&msg, "%s: the container stopped while waiting for unit \"%s\"", n->name, u->unit) < 0)
                        msg = NULL;
                unitwait_fail(u, "MachineError", msg);
                return 0;
        }
        if (!u->units) {
                if (!u->user && n->units && units_is_connected(n->units))
                        u->units = units_ref(n->units);
                else {
                        r = units_connect(sched_event(), container_leader(node_container(n)), u->user, &u->units);
                        if (r == -ENOENT || r == -ECONNREFUSED)
                                return sd_event_add_time_relative(sched_event(), &u->retry, CLOCK_MONOTONIC,
                                                                  20000, 1000, on_unit_retry, u);
                        if (r < 0) {
                                _cleanup_free_ char *msg = NULL;
                                if (asprintf(&msg, "%s: cannot reach systemd%s%s: %s", n->name,
                                             u->user ? " of user " : "", u->user ? u->user : "",
                                             r == -ESRCH ? "no such user in the container" : strerror(-r)) < 0)
                                        msg = NULL;
                                unitwait_fail(u, "TestFailure", msg);
                                return 0;
                        }
                        if (!u->user) {
                                units_unref(n->units);
                                n->units = units_ref(u->units);
                        }
                }
        }
        if (u->show)
                r = units_get_properties(u->units, u->unit, u->property, on_unit_properties, u, &u->q);
        else
                r = units_wait_active(u->units, u->unit, on_unit_active, u, &u->uw);
        if (r < 0) {
                _cleanup_free_ char *msg = NULL;
                if (asprintf(&msg, "%s: unit \"%s\": %s", n->name, u->unit, strerror(-r)) < 0)
                        msg = NULL;
                unitwait_fail(u, "TestFailure", msg);
        }
        return 0;
}

static int unit_request(lua_State *L, bool show) {
        Node *n = node_check(L, 1, &container_kind);
        const char *unit = luaL_checkstring(L, 2);
        const char *user = luaL_optstring(L, 3, NULL);
        double timeout = show ? 60 : luaL_optnumber(L, 4, 900);
        const char *property = show ? luaL_optstring(L, 4, NULL) : NULL;

        if (!machine_is_ready(n->m))
                return luaL_error(L, "%s: the container is not running", n->name);
        /* The wait first: it raises outside a task, before anything is allocated. */
        Wait *w = show ? sched_wait_new(L, "%s: reading unit %s", n->name, unit)
                       : sched_wait_new(L, "%s: waiting for unit %s", n->name, unit);
        UnitWait *u = calloc(1, sizeof(UnitWait));
        int r = -ENOMEM;
        if (u) {
                *u = (UnitWait) { .w = w, .node = n, .show = show, .unit = strdup(unit),
                                  .user = user ? strdup(user) : NULL,
                                  .property = property ? strdup(property) : NULL };
                if (u->unit && (!user || u->user) && (!property || u->property))
                        /* Issue the request from the loop, so every outcome arrives after the yield. */
                        r = sd_event_add_time_relative(sched_event(), &u->retry, CLOCK_MONOTONIC, 0, 1,
                                                       on_unit_retry, u);
        }
        if (r < 0) {
                unitwait_free(u);
                sched_wait_discard(w);
                return luaL_error(L, "%s: cannot wait for unit \"%s\": %s", n->name, unit, strerror(-r));
        }
        w->data = u;
        w->cancel = unitwait_cancel;
        return sched_suspend_timeout(L, w, timeout > 0 ? (uint64_t) (timeout * 1e6) : SCHED_NO_DEADLINE,
                                     on_unit_timeout);
}

static int l_wait_unit(lua_State *L) {
        return unit_request(L, false);
}

static int l_unit_show(lua_State *L) {
        return unit_request(L, true);
}

/* ---- probes (probe.c): connect() from inside the container's namespaces, no tools needed ---- */

static void probe_wait_cancel(Wait *w) {
        probe_cancel(w->data);
}

static int push_bool(lua_State *L, void *userdata) {
        lua_pushboolean(L, userdata != NULL);
        return 1;
}

static void on_probe_done(bool listening, void *userdata) {
        Wait *w = userdata;

        w->data = NULL;
        sched_wake(w, true, push_bool, listening ? (void *) 1 : NULL);
}

/* h:probe("tcp", addr, port) or h:probe("unix", path, dgram) -> true if something listens */
static int l_probe(lua_State *L) {
        Node *n = node_check(L, 1, &container_kind);
        const char *kind = luaL_checkstring(L, 2);
        const char *addr = luaL_checkstring(L, 3);
        bool tcp = streq(kind, "tcp");
        int port = tcp ? (int) luaL_checkinteger(L, 4) : 0;
        ProbeKind k = tcp ? PROBE_TCP : lua_toboolean(L, 4) ? PROBE_UNIX_DGRAM : PROBE_UNIX_STREAM;
        Probe *p = NULL;
        Wait *w;
        int r;

        if (!machine_is_ready(n->m))
                return luaL_error(L, "%s: the container is not running", n->name);
        w = sched_wait_new(L, "%s: probing %s %s", n->name, kind, addr);
        r = probe_start(sched_event(), container_leader_pidfd(node_container(n)), k, addr, port, on_probe_done, w, &p);
        if (r < 0) {
                sched_wait_discard(w);
                return luaL_error(L, "%s: cannot probe %s %s: %s", n->name, kind, addr, strerror(-r));
        }
        w->data = p;
        w->cancel = probe_wait_cancel;
        return sched_suspend(L, w);
}

/* ---- host commands (copying files into the shared directory) ---- */

typedef struct HostCmd {
        Wait *w;
        sd_event_source *child;
        pid_t pid;
} HostCmd;

static int push_status(lua_State *L, void *userdata) {
        lua_pushinteger(L, (lua_Integer) (intptr_t) userdata);
        return 1;
}

static int on_host_exit(sd_event_source *s, const siginfo_t *si, void *userdata) {
        HostCmd *h = userdata;
        Wait *w = h->w;
        int status = hostcmd_status(si);
        sd_event_source_disable_unref(h->child);
        w->data = NULL;
        free(h);
        sched_wake(w, true, push_status, (void *) (intptr_t) status);
        return 0;
}

static void host_cancel(Wait *w) {
        HostCmd *h = w->data;
        if (!h)
                return;
        kill(h->pid, SIGKILL);
        sd_event_source_disable_unref(h->child);
        free(h);
}

/* internal.host_exec({argv...}) -> exit status */
static int l_host_exec(lua_State *L) {
        luaL_checktype(L, 1, LUA_TTABLE);
        size_t n = lua_rawlen(L, 1);
        if (n == 0)
                return luaL_error(L, "host_exec: empty command");
        for (size_t i = 0; i < n; i++) {
                if (lua_rawgeti(L, 1, (lua_Integer) i + 1) != LUA_TSTRING)
                        return luaL_error(L, "host_exec: argument %d must be a string", (int) i + 1);
                lua_pop(L, 1);
        }
        lua_rawgeti(L, 1, 1);
        const char *program = lua_tostring(L, -1);   /* kept by the table */
        lua_pop(L, 1);
        Wait *w = sched_wait_new(L, "host command %s", program);

        char **argv = calloc(n + 1, sizeof(char *));
        HostCmd *h = calloc(1, sizeof(HostCmd));
        int r = argv && h ? 0 : -ENOMEM;
        for (size_t i = 0; r >= 0 && i < n; i++) {
                lua_rawgeti(L, 1, (lua_Integer) i + 1);
                argv[i] = (char *) lua_tostring(L, -1);
                lua_pop(L, 1);
        }
        if (r >= 0)
                r = hostcmd_spawn(argv, &h->pid);
        free(argv);
        if (r >= 0) {
                h->w = w;
                r = sd_event_add_child(sched_event(), &h->child, h->pid, WEXITED, on_host_exit, h);
                if (r < 0) {
                        kill(h->pid, SIGKILL);
                        waitpid(h->pid, NULL, 0);
                }
        }
        if (r < 0) {
                free(h);
                sched_wait_discard(w);
                return luaL_error(L, "cannot run %s: %s", program, strerror(-r));
        }
        w->data = h;
        w->cancel = host_cancel;
        return sched_suspend(L, w);
}

static int l_preflight(lua_State *L) {
        unsigned n = (unsigned) luaL_checkinteger(L, 1);
        _cleanup_free_ char *msg = NULL;
        int r = preflight_containers(n, &msg);
        if (r < 0) {
                lua_pushnil(L);
                lua_pushstring(L, msg ? msg : strerror(-r));
                return 2;
        }
        if (r > 0 && msg)
                log_warning("%s", msg);
        lua_pushboolean(L, 1);
        return 1;
}

static int l_sandboxed(lua_State *L) {
        extern int sandbox_active(void);
        lua_pushboolean(L, sandbox_active());
        return 1;
}

void bridge_open_nodes(lua_State *L) {
        static const luaL_Reg methods[] = {
                { "leader", l_leader },
                { "root", l_root },
                { "wait_unit", l_wait_unit },
                { "unit_show", l_unit_show },
                { "probe", l_probe },
                { NULL, NULL },
        };
        node_add_methods(L, methods);

        static const luaL_Reg internal[] = {
                { "host_exec", l_host_exec },
                { "sandboxed", l_sandboxed },
                { NULL, NULL },
        };
        bridge_internal_module(L, "node");
        luaL_setfuncs(L, internal, 0);
        lua_pop(L, 1);
        static const luaL_Reg container_internal[] = {
                { "new", l_container_new },
                { "preflight", l_preflight },
                { NULL, NULL },
        };
        bridge_internal_module(L, "container");
        luaL_setfuncs(L, container_internal, 0);
        lua_pop(L, 1);
}

int nodes_from_config(lua_State *L, const Config *cfg, char **ret_error);
int nodes_from_config(lua_State *L, const Config *cfg, char **ret_error) {
        for (size_t i = 0; i < cfg->n_machines; i++) {
                const ConfigMachine *m = &cfg->machines[i];
                bridge_internal(L);
                lua_getfield(L, -1, m->kind == CONFIG_VM ? "config_vm" : "config_container");
                lua_pushstring(L, m->name);
                lua_pushstring(L, m->start_script);
                if (lua_pcall(L, 2, 0, 0) != LUA_OK) {
                        const char *e = luaL_tolstring(L, -1, NULL);
                        if (asprintf(ret_error, "machine %s: %s", m->name, e) < 0)
                                *ret_error = NULL;
                        lua_pop(L, 3);
                        return -EINVAL;
                }
                lua_pop(L, 1);
        }
        bridge_internal(L);
        lua_getfield(L, -1, "config_done");
        lua_call(L, 0, 0);
        lua_pop(L, 1);
        return 0;
}
