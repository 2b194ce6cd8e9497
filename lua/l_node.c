/* l_node.c: the container handle the stdlib's node objects are built on (stdlib/node.lua).
 * Each method that waits arms a callback of the container backend and yields. */
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
#include "l_net.h"
#include "nodecommon.h"
#include "log.h"
#include "runtime.h"
#include "sched.h"
#include "units.h"
#include "util.h"

#define HANDLE "moonrig.Container"

/* One of the node's links: a veth whose peer is born in the node's network namespace. */
typedef struct NodeLink {
        char *host_ifname, *bridge, *ifname, *mac, *ip_cidr, *ipv6_cidr;
        bool blocked;              /* block() holds across reboots: the new host end starts down */
} NodeLink;

typedef struct Node {
        Container *c;
        NodeLink *links;           /* made again at every boot, in on_leader */
        size_t n_links;
        char *link_error;          /* why the last boot's links failed */
        char *name;
        char *state_dir;
        Units *units;              /* the container's systemd, per boot */
        WaitList ready, exited;
        int ready_error;
        char *ready_message;
        bool booting;
        int exit_status;
        ConsoleLog console;        /* console and journal lines */
        struct Node *next;
} Node;

static Node *all_nodes;

static Node *check_node(lua_State *L, int i) {
        Node **p = luaL_checkudata(L, i, HANDLE);
        if (!*p)
                luaL_error(L, "this node was released");
        return *p;
}

/* ---- backend callbacks ---- */

static void on_ready(Container *c, int error, const char *message) {
        Node *n = container_userdata(c);
        n->booting = false;
        n->ready_error = error;
        free(n->ready_message);
        if (error < 0 && n->link_error)
                message = n->link_error;   /* the crash was ours, for this reason */
        n->ready_message = message ? strdup(message) : NULL;
        n->units = units_unref(n->units);
        if (error < 0)
                waitlist_wake(&n->ready, "MachineError", message ? message : "the container failed to boot");
        else
                waitlist_wake(&n->ready, NULL, NULL);
}

static void on_exit_cb(Container *c, int status) {
        Node *n = container_userdata(c);
        n->exit_status = status;
        n->booting = false;
        n->units = units_unref(n->units);
        if (n->ready.n > 0) {
                _cleanup_free_ char *msg = NULL;
                if (n->link_error)
                        msg = strdup(n->link_error);
                else if (asprintf(&msg, "%s: the container stopped (status %d) before it was ready%s%s",
                                  n->name, status, n->ready_message ? ": " : "",
                                  n->ready_message ? n->ready_message : "") < 0)
                        msg = NULL;
                waitlist_wake(&n->ready, "MachineError", msg ? msg : "the container stopped");
        }
        waitlist_wake(&n->exited, NULL, NULL);
        waitlist_wake(&n->console.waiters, NULL, NULL);
}

/* A console or journal line: kept for get_console_log and wait_for_console_text, logged as
 * "name # line", and written to <out>/<name>.console.log with -o. */
static void on_console_line(Container *c, const char *line, size_t len) {
        Node *n = container_userdata(c);
        console_log_add(&n->console, n->name, line, len);
}

/* The node's namespaces exist and its init is starting: give it its links before its units run. */
static void on_leader(Container *c, pid_t leader) {
        Node *n = container_userdata(c);
        if (n->n_links == 0)
                return;
        const char *error = NULL;
        Net *net = lnet_get(&error);
        _cleanup_close_ int ns = net ? net_netns_open(leader) : -EBADF;
        /* The init is gone already (no init in the image, a bad option): nspawn's exit tells why,
         * with its console lines; a link error here would hide that. */
        if (net && (ns == -ENOENT || ns == -ESRCH))
                return;
        if (!net || ns < 0) {
                free(n->link_error);
                if (asprintf(&n->link_error, "%s: cannot attach its network links: %s", n->name,
                             net ? strerror(-ns) : error) < 0)
                        n->link_error = NULL;
                container_crash(c);
                return;
        }
        for (size_t i = 0; i < n->n_links; i++) {
                const NodeLink *l = &n->links[i];
                NetVeth v = {
                        .host_name = l->host_ifname,
                        .bridge = l->bridge,
                        .netns_fd = ns,
                        .peer_name = l->ifname,
                        .mac = l->mac,
                        .ipv4_cidr = l->ip_cidr,
                        .ipv6_cidr = l->ipv6_cidr,
                };
                int r = net_veth_add(net, &v);
                if (r >= 0 && l->blocked)
                        r = net_link_set_up(net, l->host_ifname, false);
                if (r < 0) {
                        free(n->link_error);
                        if (asprintf(&n->link_error, "%s: cannot attach its network link %s: %s", n->name,
                                     l->ifname, net_error(net)) < 0)
                                n->link_error = NULL;
                        container_crash(c);
                        return;
                }
        }
}

static const ContainerCallbacks callbacks = {
        .on_leader = on_leader,
        .on_ready = on_ready,
        .on_exit = on_exit_cb,
        .on_console_line = on_console_line,
        .on_journal_line = on_console_line,
};

/* ---- declaring ---- */

static char **table_strv(lua_State *L, int t, const char *field) {
        if (lua_getfield(L, t, field) == LUA_TNIL) {
                lua_pop(L, 1);
                return NULL;
        }
        if (!lua_istable(L, -1))
                luaL_error(L, "option %s must be a list of strings", field);
        size_t n = lua_rawlen(L, -1);
        char **v = calloc(n + 1, sizeof(char *));
        for (size_t i = 0; i < n; i++) {
                lua_rawgeti(L, -1, (lua_Integer) i + 1);
                const char *s = lua_tostring(L, -1);
                if (!s)
                        luaL_error(L, "option %s: entry %d must be a string", field, (int) i + 1);
                v[i] = strdup(s);
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

static void node_cleanup_all(void);

/* internal.container_new(name, state_dir, shared_dir, opts): the handle; opts was checked by
 * the stdlib (files as a list of {path=, content=|source=, mode=}). */
static int l_container_new(lua_State *L) {
        const char *name = luaL_checkstring(L, 1);
        const char *state_dir = luaL_checkstring(L, 2);
        const char *shared_dir = luaL_optstring(L, 3, NULL);
        luaL_checktype(L, 4, LUA_TTABLE);
        static bool cleanup_registered;

        _cleanup_strv_free_ char **services = table_strv(L, 4, "services");
        _cleanup_strv_free_ char **bind = table_strv(L, 4, "bind");
        _cleanup_strv_free_ char **bind_ro = table_strv(L, 4, "bind_ro");
        _cleanup_strv_free_ char **devices = table_strv(L, 4, "devices");
        _cleanup_strv_free_ char **env = table_strv(L, 4, "env");
        _cleanup_strv_free_ char **extra = table_strv(L, 4, "nspawn_args");

        HostImageFile files[256];
        size_t n_files = 0;
        if (lua_getfield(L, 4, "files") == LUA_TTABLE) {
                int ft = lua_gettop(L);
                size_t n = lua_rawlen(L, ft);
                if (n > ELEMENTSOF(files))
                        return luaL_error(L, "%s: too many files (at most %d)", name, (int) ELEMENTSOF(files));
                for (size_t i = 0; i < n; i++) {
                        lua_rawgeti(L, ft, (lua_Integer) i + 1);
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
                .services = services,
                .bind = bind,
                .bind_ro = bind_ro,
                .devices = devices,
                .env = env,
                .extra_args = extra,
                .boot_timeout_usec = (uint64_t) (boot_timeout * 1e6),
        };

        Node *n = calloc(1, sizeof(Node));
        if (!n)
                return luaL_error(L, "out of memory");
        n->name = strdup(name);
        n->state_dir = strdup(state_dir);
        const char *console_path = table_str(L, 4, "console_log");
        int r = console_log_open(&n->console, console_path);
        if (r < 0) {
                free(n->name);
                free(n->state_dir);
                free(n);
                return luaL_error(L, "%s: cannot open its console log %s: %s", name, console_path, strerror(-r));
        }
        r = container_new(sched_event(), &cfg, &callbacks, n, &n->c);
        if (r < 0) {
                console_log_done(&n->console);
                free(n->name);
                free(n->state_dir);
                free(n);
                return luaL_error(L, "%s: cannot set up the container: %s", name, strerror(-r));
        }
        n->next = all_nodes;
        all_nodes = n;
        if (!cleanup_registered) {
                runtime_add_cleanup(node_cleanup_all);
                cleanup_registered = true;
        }

        Node **p = lua_newuserdatauv(L, sizeof(Node *), 0);
        *p = n;
        luaL_setmetatable(L, HANDLE);
        return 1;
}

static void links_free(Node *n) {
        for (size_t i = 0; i < n->n_links; i++) {
                NodeLink *l = &n->links[i];
                free(l->host_ifname);
                free(l->bridge);
                free(l->ifname);
                free(l->mac);
                free(l->ip_cidr);
                free(l->ipv6_cidr);
        }
        free(n->links);
        n->links = NULL;
        n->n_links = 0;
}

static void node_free(Node *n) {
        waitlist_wake(&n->ready, "MachineError", "the run is ending");
        waitlist_wake(&n->exited, NULL, NULL);
        units_unref(n->units);
        container_free(n->c);
        free(n->name);
        free(n->state_dir);
        free(n->ready_message);
        console_log_done(&n->console);
        free(n->link_error);
        links_free(n);
        free(n);
}

/* At the end of the run: stop every container at once (a start script gets SIGTERM, so that its
 * launcher removes what it made), then wait for each. */
static void node_cleanup_all(void) {
        for (Node *n = all_nodes; n; n = n->next)
                if (container_is_up(n->c))
                        container_release(n->c);
        while (all_nodes) {
                Node *n = all_nodes;
                all_nodes = n->next;
                node_free(n);
        }
}

/* ---- lifecycle ---- */

static int l_start(lua_State *L) {
        Node *n = check_node(L, 1);
        if (container_is_up(n->c) || n->booting)
                return 0;
        n->ready_error = 0;
        n->booting = true;
        free(n->link_error);
        n->link_error = NULL;
        int r = container_start(n->c);
        if (r < 0 && r != -EBUSY) {
                n->booting = false;
                return luaL_error(L, "%s: cannot start the container: %s", n->name, strerror(-r));
        }
        return 0;
}

static int l_wait_ready(lua_State *L) {
        Node *n = check_node(L, 1);
        double timeout = luaL_optnumber(L, 2, 0);
        if (container_is_ready(n->c))
                return 0;
        if (!container_is_up(n->c) && !n->booting) {
                if (n->ready_error < 0)
                        return luaL_error(L, "%s", n->ready_message ? n->ready_message : "the container failed to boot");
                return luaL_error(L, "%s: the container is not running", n->name);
        }
        Wait *w = sched_wait_new(L, "%s: waiting for the container to boot", n->name);
        return waitlist_suspend(L, &n->ready, timeout, w);
}

static int l_wait_exit(lua_State *L) {
        Node *n = check_node(L, 1);
        double timeout = luaL_optnumber(L, 2, 0);
        if (!container_is_up(n->c))
                return 0;
        Wait *w = sched_wait_new(L, "%s: waiting for the container to power off", n->name);
        return waitlist_suspend(L, &n->exited, timeout, w);
}

static int l_shutdown(lua_State *L) {
        Node *n = check_node(L, 1);
        if (!container_is_up(n->c))
                return 0;
        int r = container_shutdown(n->c);
        if (r < 0)
                return luaL_error(L, "%s: cannot shut down: %s", n->name, strerror(-r));
        Wait *w = sched_wait_new(L, "%s: waiting for the container to power off", n->name);
        return waitlist_suspend(L, &n->exited, 0, w);
}

static int l_crash(lua_State *L) {
        Node *n = check_node(L, 1);
        if (!container_is_up(n->c))
                return 0;
        container_crash(n->c);
        Wait *w = sched_wait_new(L, "%s: waiting for the container to die", n->name);
        return waitlist_suspend(L, &n->exited, 0, w);
}

static int l_reboot(lua_State *L) {
        Node *n = check_node(L, 1);
        free(n->link_error);
        n->link_error = NULL;
        int r = container_reboot(n->c);
        if (r < 0)
                return luaL_error(L, "%s: cannot reboot: %s", n->name,
                                  r == -EBUSY ? "the container is not up and ready" : strerror(-r));
        n->booting = true;
        Wait *w = sched_wait_new(L, "%s: waiting for the container to come back", n->name);
        return waitlist_suspend(L, &n->ready, 0, w);
}

static char *field_dup(lua_State *L, int t, const char *k) {
        lua_getfield(L, t, k);
        const char *s = lua_tostring(L, -1);
        char *d = s ? strdup(s) : NULL;
        lua_pop(L, 1);
        return d;
}

/* h:set_links({ {host_ifname=, bridge=, ifname=, mac=, ip_cidr=, ipv6_cidr=}, ... }): the links
 * attached at every boot from now on. */
static int l_set_links(lua_State *L) {
        Node *n = check_node(L, 1);
        luaL_checktype(L, 2, LUA_TTABLE);
        size_t k = lua_rawlen(L, 2);
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
        links_free(n);
        n->links = v;
        n->n_links = k;
        return 0;
}

/* h:set_link_blocked(host_ifname, blocked): remembered for the node's next boots. */
static int l_set_link_blocked(lua_State *L) {
        Node *n = check_node(L, 1);
        const char *host = luaL_checkstring(L, 2);
        for (size_t i = 0; i < n->n_links; i++)
                if (streq(n->links[i].host_ifname, host))
                        n->links[i].blocked = lua_toboolean(L, 3);
        return 0;
}

/* h:add_file(path, content): put in place before the first boot, unless the node's files
 * already name that path. */
static int l_add_file(lua_State *L) {
        Node *n = check_node(L, 1);
        size_t len;
        const char *path = luaL_checkstring(L, 2);
        const char *content = luaL_checklstring(L, 3, &len);
        HostImageFile f = { .path = path, .content = content, .len = len, .mode = 0644 };
        int r = container_add_file(n->c, &f);
        if (r < 0)
                return luaL_error(L, "%s: cannot add %s: %s", n->name, path,
                                  r == -EBUSY ? "the node has booted already" : strerror(-r));
        return 0;
}

static int l_is_up(lua_State *L) {
        lua_pushboolean(L, container_is_up(check_node(L, 1)->c));
        return 1;
}

static int l_is_booting(lua_State *L) {
        lua_pushboolean(L, check_node(L, 1)->booting);
        return 1;
}

static int l_is_ready(lua_State *L) {
        lua_pushboolean(L, container_is_ready(check_node(L, 1)->c));
        return 1;
}

static int l_leader(lua_State *L) {
        lua_pushinteger(L, container_leader(check_node(L, 1)->c));
        return 1;
}

static int l_root(lua_State *L) {
        const char *root = container_root(check_node(L, 1)->c);
        lua_pushstring(L, root);
        return 1;
}

/* ---- commands ---- */

typedef struct ExecWait {
        Wait *w;
        ExecJob *job;
        Node *node;
} ExecWait;

static int push_exec_result(lua_State *L, void *userdata) {
        ExecResult *r = userdata;
        lua_pushinteger(L, r->status);
        lua_pushlstring(L, r->out ? r->out : "", r->out_len);
        lua_pushlstring(L, r->err ? r->err : "", r->err_len);
        lua_pushboolean(L, r->timed_out);
        lua_pushboolean(L, r->output_abandoned);
        if (r->error < 0)
                lua_pushstring(L, r->error == -ESRCH ? "the container died while the command ran"
                                                    : strerror(-r->error));
        else
                lua_pushnil(L);
        return 6;
}

static void on_exec_done(ExecResult *r, void *userdata) {
        ExecWait *ew = userdata;
        Wait *w = ew->w;
        w->data = NULL;
        free(ew);
        sched_wake(w, true, push_exec_result, r);
}

static void exec_wait_cancel(Wait *w) {
        ExecWait *ew = w->data;
        if (!ew)
                return;
        exec_cancel(ew->job);
        free(ew);
}

/* h:exec(command, timeout) -> status, stdout, stderr, timed_out, output_abandoned, error */
static int l_exec(lua_State *L) {
        Node *n = check_node(L, 1);
        const char *cmd = luaL_checkstring(L, 2);
        double timeout = luaL_optnumber(L, 3, 0);

        if (!container_is_ready(n->c))
                return luaL_error(L, "%s: the container is not running", n->name);
        ExecWait *ew = calloc(1, sizeof(ExecWait));
        if (!ew)
                return luaL_error(L, "out of memory");
        Wait *w = sched_wait_new(L, "%s: command `%.200s`", n->name, cmd);
        ew->w = w;
        ew->node = n;
        int r = container_exec(n->c, cmd, (uint64_t) (timeout * 1e6), on_exec_done, ew, &ew->job);
        if (r < 0) {
                free(ew);
                free(w->what);
                free(w->where);
                free(w);
                return luaL_error(L, "%s: cannot run `%s`: %s", n->name, cmd, strerror(-r));
        }
        w->data = ew;
        w->cancel = exec_wait_cancel;
        return sched_suspend(L, w);
}

/* ---- systemd units over sd-bus ---- */

typedef struct UnitWait {
        Wait *w;
        Node *node;
        Units *units;
        UnitsWait *uw;
        UnitsQuery *q;
        sd_event_source *retry, *deadline;
        char *unit, *user, *property;
        bool show;
} UnitWait;

static void unitwait_free(UnitWait *u) {
        if (!u)
                return;
        units_wait_cancel(u->uw);
        units_query_cancel(u->q);
        sd_event_source_disable_unref(u->retry);
        sd_event_source_disable_unref(u->deadline);
        units_unref(u->units);
        free(u->unit);
        free(u->user);
        free(u->property);
        free(u);
}

static void unitwait_cancel(Wait *w) {
        unitwait_free(w->data);
}

static void unitwait_fail(UnitWait *u, const char *kind, const char *message) {
        Wait *w = u->w;
        w->data = NULL;
        u->uw = NULL;
        u->q = NULL;
        unitwait_free(u);
        sched_wake_failure(w, kind, message);
}

static void on_unit_active(int error, const char *state, const char *message, void *userdata) {
        UnitWait *u = userdata;
        u->uw = NULL;
        if (error < 0 && !container_is_ready(u->node->c)) {
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
                unitwait_fail(u, "TestFailure", message ? message : strerror(-error));
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

static int on_unit_deadline(sd_event_source *s, uint64_t usec, void *userdata) {
        UnitWait *u = userdata;
        _cleanup_free_ char *msg = NULL;
        if (asprintf(&msg, "timed out waiting for unit \"%s\"%s%s", u->unit,
                     u->user ? " of user " : "", u->user ? u->user : "") < 0)
                msg = NULL;
        u->deadline = sd_event_source_disable_unref(u->deadline);
        unitwait_fail(u, "Timeout", msg ? msg : "timed out");
        return 0;
}

/* Connect (the manager may not listen yet right after boot: retry on a short timer), then
 * issue the request. */
static int unitwait_try(UnitWait *u) {
        Node *n = u->node;
        int r;

        if (!container_is_ready(n->c)) {
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
                        r = units_connect(sched_event(), container_leader(n->c), u->user, &u->units);
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
        Node *n = check_node(L, 1);
        const char *unit = luaL_checkstring(L, 2);
        const char *user = luaL_optstring(L, 3, NULL);
        double timeout = show ? 60 : luaL_optnumber(L, 4, 900);
        const char *property = show ? luaL_optstring(L, 4, NULL) : NULL;

        if (!container_is_ready(n->c))
                return luaL_error(L, "%s: the container is not running", n->name);
        UnitWait *u = calloc(1, sizeof(UnitWait));
        if (!u)
                return luaL_error(L, "out of memory");
        u->node = n;
        u->show = show;
        u->unit = strdup(unit);
        u->user = user ? strdup(user) : NULL;
        u->property = property ? strdup(property) : NULL;
        Wait *w = show ? sched_wait_new(L, "%s: reading unit %s", n->name, unit)
                       : sched_wait_new(L, "%s: waiting for unit %s", n->name, unit);
        u->w = w;
        w->data = u;
        w->cancel = unitwait_cancel;
        if (timeout > 0)
                sd_event_add_time_relative(sched_event(), &u->deadline, CLOCK_MONOTONIC,
                                           (uint64_t) (timeout * 1e6), 1000, on_unit_deadline, u);
        /* Issue the request from the loop, so every outcome arrives after the yield. */
        sd_event_add_time_relative(sched_event(), &u->retry, CLOCK_MONOTONIC, 0, 1, on_unit_retry, u);
        return sched_suspend(L, w);
}

static int l_wait_unit(lua_State *L) {
        return unit_request(L, false);
}

static int l_unit_show(lua_State *L) {
        return unit_request(L, true);
}

/* ---- console ---- */

static int l_console(lua_State *L) {
        Node *n = check_node(L, 1);
        lua_pushlstring(L, n->console.text ? n->console.text : "", n->console.len);
        lua_pushinteger(L, (lua_Integer) n->console.lines);
        return 2;
}

/* h:wait_console(nlines, timeout): wait until more than nlines lines were seen. */
static int l_wait_console(lua_State *L) {
        Node *n = check_node(L, 1);
        lua_Integer seen = luaL_checkinteger(L, 2);
        double timeout = luaL_optnumber(L, 3, 0);
        if ((lua_Integer) n->console.lines > seen)
                return 0;
        if (!container_is_up(n->c))
                return luaL_error(L, "%s: the container is not running", n->name);
        Wait *w = sched_wait_new(L, "%s: waiting for console output", n->name);
        return waitlist_suspend(L, &n->console.waiters, timeout, w);
}

/* ---- probes: connect() from inside the container's namespaces, no tools needed ---- */

typedef struct Probe {
        Wait *w;
        sd_event_source *child;
        pid_t pid;
} Probe;

static void probe_cancel(Wait *w) {
        Probe *p = w->data;
        if (!p)
                return;
        kill(p->pid, SIGKILL);
        sd_event_source_disable_unref(p->child);
        free(p);
}

static int push_bool(lua_State *L, void *userdata) {
        lua_pushboolean(L, userdata != NULL);
        return 1;
}

static int on_probe_exit2(sd_event_source *s, const siginfo_t *si, void *userdata) {
        Probe *p = userdata;
        Wait *w = p->w;
        bool ok = si->si_code == CLD_EXITED && si->si_status == 0;
        sd_event_source_disable_unref(p->child);
        w->data = NULL;
        free(p);
        sched_wake(w, true, push_bool, ok ? (void *) 1 : NULL);
        return 0;
}

static int probe_connect(int family, int type, const struct sockaddr *sa, socklen_t len) {
        int fd = socket(family, type | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return 1;
        struct timeval tv = { .tv_sec = 2 };
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        return connect(fd, sa, len) == 0 ? 0 : 1;
}

/* h:probe("tcp", addr, port) or h:probe("unix", path, dgram) -> true if something listens */
static int l_probe(lua_State *L) {
        Node *n = check_node(L, 1);
        const char *kind = luaL_checkstring(L, 2);
        const char *addr = luaL_checkstring(L, 3);
        bool tcp = streq(kind, "tcp");
        int port = tcp ? (int) luaL_checkinteger(L, 4) : 0;
        bool dgram = !tcp && lua_toboolean(L, 4);

        if (!container_is_ready(n->c))
                return luaL_error(L, "%s: the container is not running", n->name);
        int pidfd = container_leader_pidfd(n->c);
        pid_t pid = fork();
        if (pid < 0)
                return luaL_error(L, "fork: %s", strerror(errno));
        if (pid == 0) {
                if (setns(pidfd, CLONE_NEWNET | (tcp ? 0 : CLONE_NEWNS)) < 0)
                        _exit(2);
                if (tcp) {
                        struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV };
                        struct addrinfo *res = NULL;
                        char ports[16];
                        snprintf(ports, sizeof ports, "%d", port);
                        /* "localhost" means ::1 and 127.0.0.1, as nc tries them */
                        const char *host = streq(addr, "localhost") ? NULL : addr;
                        if (!host) {
                                struct sockaddr_in6 a6 = { .sin6_family = AF_INET6, .sin6_port = htons(port),
                                                           .sin6_addr = IN6ADDR_LOOPBACK_INIT };
                                struct sockaddr_in a4 = { .sin_family = AF_INET, .sin_port = htons(port),
                                                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
                                if (probe_connect(AF_INET6, SOCK_STREAM, (struct sockaddr *) &a6, sizeof a6) == 0 ||
                                    probe_connect(AF_INET, SOCK_STREAM, (struct sockaddr *) &a4, sizeof a4) == 0)
                                        _exit(0);
                                _exit(1);
                        }
                        /* Names are resolved with the container's /etc/hosts: enter its mounts. */
                        if (setns(pidfd, CLONE_NEWNS) < 0)
                                _exit(2);
                        if (getaddrinfo(host, ports, &hints, &res) != 0)
                                _exit(1);
                        for (struct addrinfo *ai = res; ai; ai = ai->ai_next)
                                if (probe_connect(ai->ai_family, SOCK_STREAM, ai->ai_addr, ai->ai_addrlen) == 0)
                                        _exit(0);
                        _exit(1);
                }
                struct sockaddr_un un = { .sun_family = AF_UNIX };
                strncpy(un.sun_path, addr, sizeof un.sun_path - 1);
                _exit(probe_connect(AF_UNIX, dgram ? SOCK_DGRAM : SOCK_STREAM, (struct sockaddr *) &un, sizeof un));
        }
        Probe *p = calloc(1, sizeof(Probe));
        p->pid = pid;
        Wait *w = sched_wait_new(L, "%s: probing %s %s", n->name, kind, addr);
        p->w = w;
        int r = sd_event_add_child(sched_event(), &p->child, pid, WEXITED, on_probe_exit2, p);
        if (r < 0) {
                kill(pid, SIGKILL);
                waitpid(pid, NULL, 0);
                free(p);
                return luaL_error(L, "cannot watch the probe: %s", strerror(-r));
        }
        w->data = p;
        w->cancel = probe_cancel;
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
        int status = si->si_code == CLD_EXITED ? si->si_status : 128 + si->si_status;
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
        char **argv = calloc(n + 1, sizeof(char *));
        for (size_t i = 0; i < n; i++) {
                lua_rawgeti(L, 1, (lua_Integer) i + 1);
                argv[i] = (char *) luaL_checkstring(L, -1);
                lua_pop(L, 1);
        }
        pid_t pid;
        extern char **environ;
        int r = posix_spawnp(&pid, argv[0], NULL, NULL, argv, environ);
        if (r != 0) {
                free(argv);
                return luaL_error(L, "cannot run %s: %s", lua_tostring(L, -1), strerror(r));
        }
        Wait *w = sched_wait_new(L, "host command %s", argv[0]);
        free(argv);
        HostCmd *h = calloc(1, sizeof(HostCmd));
        h->pid = pid;
        h->w = w;
        r = sd_event_add_child(sched_event(), &h->child, pid, WEXITED, on_host_exit, h);
        if (r < 0) {
                waitpid(pid, NULL, 0);
                free(h);
                return luaL_error(L, "cannot watch the command: %s", strerror(-r));
        }
        w->data = h;
        w->cancel = host_cancel;
        return sched_suspend(L, w);
}

static int l_preflight(lua_State *L) {
        unsigned n = (unsigned) luaL_checkinteger(L, 1);
        _cleanup_free_ char *msg = NULL;
        int r = container_preflight(n, &msg);
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
                { "leader", l_leader },
                { "root", l_root },
                { "exec", l_exec },
                { "wait_unit", l_wait_unit },
                { "unit_show", l_unit_show },
                { "console", l_console },
                { "wait_console", l_wait_console },
                { "probe", l_probe },
                { NULL, NULL },
        };
        luaL_newmetatable(L, HANDLE);
        luaL_newlib(L, methods);
        lua_setfield(L, -2, "__index");
        lua_pop(L, 1);

        static const luaL_Reg internal[] = {
                { "container_new", l_container_new },
                { "host_exec", l_host_exec },
                { "container_preflight", l_preflight },
                { "sandboxed", l_sandboxed },
                { NULL, NULL },
        };
        bridge_internal(L);
        luaL_setfuncs(L, internal, 0);
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
