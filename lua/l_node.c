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
#include "l_net.h"
#include "nodecommon.h"
#include "log.h"
#include "runtime.h"
#include "sched.h"
#include "units.h"
#include "util.h"

static const NodeKind container_kind;

static Container *node_container(Node *n) {
        return container_from_machine(n->m);
}

/* The node's namespaces exist and its init is starting: give it its links before its units run. */
static void on_leader(Machine *m, pid_t leader) {
        Node *n = machine_userdata(m);
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
                machine_crash(m);
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
                        machine_crash(m);
                        return;
                }
        }
}

static const NodeKind container_kind = {
        .kind = MACHINE_CONTAINER,
        .noun = "container",
        .died = "the container died while the command ran",
        .exit_before_ready = "%s: the container stopped (status %d) before it was ready%s%s",
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

/* internal.container_new(name, state_dir, shared_dir, opts): the handle; opts was checked by
 * the stdlib (files as a list of {path=, content=|source=, mode=}). */
static int l_container_new(lua_State *L) {
        const char *name = luaL_checkstring(L, 1);
        const char *state_dir = luaL_checkstring(L, 2);
        const char *shared_dir = luaL_optstring(L, 3, NULL);
        luaL_checktype(L, 4, LUA_TTABLE);

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

        Node *n = node_push_new(L, &container_kind, name, state_dir, table_str(L, 4, "console_log"));
        Container *c;
        int r = container_new(sched_event(), &cfg, NULL, n, &c);
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
        Node *n = node_check(L, 1, &container_kind);
        const char *kind = luaL_checkstring(L, 2);
        const char *addr = luaL_checkstring(L, 3);
        bool tcp = streq(kind, "tcp");
        int port = tcp ? (int) luaL_checkinteger(L, 4) : 0;
        bool dgram = !tcp && lua_toboolean(L, 4);

        if (!machine_is_ready(n->m))
                return luaL_error(L, "%s: the container is not running", n->name);
        int pidfd = container_leader_pidfd(node_container(n));
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
