/* units.c: watch a container's systemd over sd-bus, event-driven on sd-event: wait_for_unit from
 * PropertiesChanged and job signals instead of a 1 s `systemctl show` poll, and `systemctl show`
 * itself rebuilt from one GetAll call. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sched.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "unitname.h"
#include "units.h"
#include "util.h"

#define SD_DEST "org.freedesktop.systemd1"
#define SD_PATH "/org/freedesktop/systemd1"
#define SD_MANAGER "org.freedesktop.systemd1.Manager"
#define SD_UNIT "org.freedesktop.systemd1.Unit"
#define DBUS_PROPERTIES "org.freedesktop.DBus.Properties"

/* Every pending request (a wait or a query) starts with an Op, so that a lost connection or the
 * end of the Units can fail them all, whatever they are. */
typedef struct Op Op;
struct Op {
        Units *units; /* no reference: units_unref() finishes every op before it frees */
        Op *prev, *next;
        sd_bus_slot *call;      /* the D-Bus call in flight, at most one */
        sd_event_source *defer; /* an error to deliver on the next loop iteration */
        int defer_error;
        char *defer_message;
        bool linked; /* in units->ops */
        bool done;   /* the callback has run or is running */
        bool marked; /* scratch flag for signal dispatch */
        void (*finish)(Op *op, int error, const char *message);
};

struct Units {
        unsigned n_ref;
        bool closing;
        int dead; /* negative errno once the connection is gone */
        sd_event *event;
        sd_bus *bus;
        bool bus_client;
        bool answered; /* the manager has answered something: the connection was accepted */
        char *gone_message;
        sd_bus_slot *match_properties, *match_manager, *match_disconnected, *subscribe;
        Op *ops;
};

typedef enum {
        GRACE_NONE,
        GRACE_ARMED,   /* idle seen once; the timer will ask again */
        GRACE_EXPIRED, /* the next idle reading is final */
} GraceState;

struct UnitsWait {
        Op op;
        char *name; /* as normalised from the caller's, for messages */
        char *id;   /* the manager's own name for it (aliases resolved), for job signals */
        char *path;
        char *active_state;
        units_wait_fn cb;
        void *userdata;
        char *load_state; /* from the last read */
        char *load_error;
        bool loaded;     /* LoadUnit answered: path and id are the canonical ones */
        bool dirty;      /* something changed while a read was in flight: read again */
        bool watch_jobs; /* inactive, no job of its own, but others queued: JobRemoved matters */
        GraceState grace;
        sd_event_source *grace_timer;
};

typedef enum { QUERY_PROPERTIES, QUERY_U64 } QueryKind;

struct UnitsQuery {
        Op op;
        QueryKind kind;
        char *name;
        char *path;
        char *property;
        units_properties_fn props_cb;
        units_u64_fn u64_cb;
        void *userdata;
};

static bool streq_ptr(const char *a, const char *b) {
        return a && b ? streq(a, b) : a == b;
}

static bool isempty(const char *s) {
        return !s || !*s;
}

static int strf(char **ret, const char *fmt, ...) _printf_(2, 3);
static int strf(char **ret, const char *fmt, ...) {
        va_list ap;
        int r;

        va_start(ap, fmt);
        r = vasprintf(ret, fmt, ap);
        va_end(ap);
        if (r < 0)
                *ret = NULL;
        return r < 0 ? -ENOMEM : 0;
}

static void units_unrefp(Units **u) {
        units_unref(*u);
}

/* ---- ops ---- */

static void op_link(Units *u, Op *op) {
        op->units = u;
        op->prev = NULL;
        op->next = u->ops;
        if (u->ops)
                u->ops->prev = op;
        u->ops = op;
        op->linked = true;
}

/* Detach from the Units and drop whatever is in flight; the op's memory stays. */
static void op_release(Op *op) {
        Units *u = op->units;

        if (op->linked) {
                if (op->prev)
                        op->prev->next = op->next;
                else
                        u->ops = op->next;
                if (op->next)
                        op->next->prev = op->prev;
                op->linked = false;
        }
        op->prev = op->next = NULL;
        op->call = sd_bus_slot_unref(op->call);
        op->defer = sd_event_source_disable_unref(op->defer);
        op->defer_message = (free(op->defer_message), NULL);
}

static int op_on_defer(sd_event_source *s, void *userdata) {
        Op *op = userdata;
        _cleanup_(units_unrefp) Units *ref = units_ref(op->units);
        _cleanup_free_ char *message = TAKE_PTR(op->defer_message);
        (void) s;

        op->finish(op, op->defer_error, message);
        return 0;
}

/* Fail from the next loop iteration, so that no callback runs inside the call that made it. */
static int op_fail_later(Op *op, int error, const char *message) {
        int r;

        op->defer_error = error;
        op->defer_message = message ? strdup(message) : NULL;
        if (message && !op->defer_message)
                return -ENOMEM;
        r = sd_event_add_defer(op->units->event, &op->defer, op_on_defer, op);
        if (r < 0)
                return r;
        return 0;
}

/* The unit's name as the manager spells it, and its object path. 1: go on; 0: the name is bad and
 * the op fails from the loop; negative errno. */
static int op_name_unit(Op *op, const char *unit, char **ret_name, char **ret_path) {
        _cleanup_free_ char *err = NULL;
        int r = unitname_normalize(unit, ret_name, &err);

        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return op_fail_later(op, r, err);
        return unitname_to_object_path(*ret_name, ret_path) < 0 ? -ENOMEM : 1;
}

/* Call the manager for the op about `unit`; if the connection is gone, or the call cannot be
 * made, the op fails from the loop. */
static int op_call(Op *op, const char *unit, const char *path, const char *interface, const char *member,
                   sd_bus_message_handler_t cb, const char *types, ...) {
        Units *u = op->units;
        _cleanup_free_ char *m = NULL;
        va_list ap;
        int r;

        if (u->dead)
                return op_fail_later(op, u->dead, u->gone_message);
        va_start(ap, types);
        r = sd_bus_call_method_asyncv(u->bus, &op->call, SD_DEST, path, interface, member, cb, op, types, ap);
        va_end(ap);
        if (r >= 0)
                return 0;
        if (sd_bus_is_open(u->bus) <= 0)
                return op_fail_later(op, -ECONNRESET, u->gone_message);
        (void) strf(&m, "unit \"%s\": cannot ask the container's systemd: %s", unit, strerror(-r));
        return op_fail_later(op, r, m);
}

static void units_fail_all(Units *u, int error, const char *message) {
        _cleanup_(units_unrefp) Units *ref = units_ref(u);

        /* Each finish unlinks its op; a callback may add or cancel others, so restart at the head. */
        while (u->ops)
                u->ops->finish(u->ops, error, message);
}

static void units_lost(Units *u) {
        if (u->dead)
                return;
        u->dead = -ECONNRESET;
        /* Closed before any answer: refused (authentication, credentials), not a crash. */
        units_fail_all(u, -ECONNRESET,
                       u->answered ? u->gone_message
                                   : "the container's systemd closed the connection before answering "
                                     "(it refused this client, or it was going down)");
}

/* An error reply after the connection closed is sd-bus failing the call for us: treat it as
 * the loss of the connection. */
static bool units_check_lost(Units *u) {
        if (sd_bus_is_open(u->bus) > 0)
                return false;
        units_lost(u);
        return true;
}

static int reply_errno(sd_bus_message *m) {
        int r = sd_bus_message_get_errno(m);

        return r > 0 ? -r : -EIO;
}

/* ---- the connection ---- */

static int on_disconnected(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        Units *u = userdata;
        _cleanup_(units_unrefp) Units *ref = units_ref(u);
        (void) m;
        (void) ret_error;

        units_lost(u);
        return 0;
}

static void wait_on_signal(UnitsWait *w, const char *active_state);
static void wait_refresh(UnitsWait *w);

static bool is_wait(Op *op);

/* Mark the waits a signal concerns, then handle them one by one from the head of the list:
 * a handler may finish or cancel any op, so the list is never walked across a callback. */
typedef bool (*wait_pred)(UnitsWait *w, const void *arg);

static void dispatch_waits(Units *u, wait_pred pred, const void *arg, const char *active_state) {
        _cleanup_(units_unrefp) Units *ref = units_ref(u);
        Op *op;

        for (op = u->ops; op; op = op->next)
                op->marked = is_wait(op) && pred((UnitsWait *) op, arg);
        for (;;) {
                for (op = u->ops; op && !op->marked; op = op->next)
                        ;
                if (!op)
                        break;
                op->marked = false;
                wait_on_signal((UnitsWait *) op, active_state);
        }
}

/* A wait whose unit name was bad has no name, id or path: it only waits for its failure. */
static bool pred_path(UnitsWait *w, const void *arg) {
        return streq_ptr(w->path, arg);
}

static bool pred_unit(UnitsWait *w, const void *arg) {
        return streq_ptr(w->id, arg) || streq_ptr(w->name, arg);
}

static bool pred_job_removed(UnitsWait *w, const void *arg) {
        return w->watch_jobs || pred_unit(w, arg);
}

static int on_properties_changed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        Units *u = userdata;
        const char *iface, *path = sd_bus_message_get_path(m);
        _cleanup_free_ char *state = NULL;
        int r;
        (void) ret_error;

        if (!path)
                return 0;
        r = sd_bus_message_read(m, "s", &iface);
        if (r < 0 || !streq(iface, SD_UNIT))
                return 0;
        r = sd_bus_message_enter_container(m, 'a', "{sv}");
        if (r < 0)
                return 0;
        while ((r = sd_bus_message_enter_container(m, 'e', "sv")) > 0) {
                const char *name, *v;

                if (sd_bus_message_read(m, "s", &name) < 0)
                        return 0;
                if (streq(name, "ActiveState")) {
                        if (sd_bus_message_read(m, "v", "s", &v) < 0)
                                return 0;
                        free(state);
                        state = strdup(v);
                } else if (sd_bus_message_skip(m, "v") < 0)
                        return 0;
                if (sd_bus_message_exit_container(m) < 0)
                        return 0;
        }

        dispatch_waits(u, pred_path, path, state);
        return 0;
}

static int on_manager_signal(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        Units *u = userdata;
        const char *member = sd_bus_message_get_member(m), *unit = NULL;
        uint32_t id;
        int r;
        (void) ret_error;

        if (!member)
                return 0;
        if (streq(member, "JobNew") || streq(member, "JobRemoved")) {
                r = sd_bus_message_read(m, "uos", &id, NULL, &unit);
                if (r < 0)
                        return 0;
                dispatch_waits(u, streq(member, "JobNew") ? pred_unit : pred_job_removed, unit, NULL);
        }
        /* UnitNew and UnitRemoved are left alone: reading a unit that is not loaded loads it, and an
         * unreferenced one (not found, or inactive) is collected at once, which would make each
         * read trigger the next. A waited-for unit that goes away went inactive first. */
        return 0;
}

static int on_subscribed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        Units *u = userdata;
        (void) ret_error;

        u->subscribe = sd_bus_slot_unref(u->subscribe);
        if (!sd_bus_message_is_method_error(m, NULL) || sd_bus_is_open(u->bus) > 0)
                u->answered = true;
        /* A refusal changes nothing on a direct connection (the manager signals every direct
         * peer); through a bus no wait could ever see a change, so end them all now, and any
         * later one at once, rather than let them run into their deadlines. */
        if (sd_bus_message_is_method_error(m, NULL) && !units_check_lost(u) && u->bus_client) {
                const sd_bus_error *e = sd_bus_message_get_error(m);
                char *msg = NULL;

                if (asprintf(&msg, "the container's systemd refused to send unit signals (Subscribe): %s",
                             e && e->message ? e->message : "unknown error") >= 0) {
                        free(u->gone_message);
                        u->gone_message = msg;
                }
                u->dead = reply_errno(m);
                units_fail_all(u, u->dead, u->gone_message);
        }
        return 0;
}

static int units_add_match(Units *u, sd_bus_slot **slot, const char *rule, sd_bus_message_handler_t cb) {
        _cleanup_free_ char *full = NULL;

        /* Through a bus daemon, ask only for the manager's signals; a direct connection has only
         * the manager on the other end, and its messages carry no sender. */
        if (asprintf(&full, "%s%s", u->bus_client ? "sender='" SD_DEST "'," : "", rule) < 0)
                return -ENOMEM;
        if (u->bus_client)
                return sd_bus_add_match_async(u->bus, slot, full, cb, NULL, u);
        return sd_bus_add_match(u->bus, slot, full, cb, u);
}

/* Takes a configured, unstarted bus. */
static int units_start(sd_event *e, sd_bus *bus, bool bus_client, const char *gone_message, Units **ret) {
        _cleanup_(units_unrefp) Units *u = NULL;
        int r;

        u = calloc(1, sizeof *u);
        if (!u) {
                sd_bus_unref(bus);
                return -ENOMEM;
        }
        u->n_ref = 1;
        u->event = sd_event_ref(e);
        u->bus = bus;
        u->bus_client = bus_client;
        u->gone_message = strdup(gone_message ? gone_message : "the container's systemd went away");
        if (!u->gone_message)
                return -ENOMEM;

        r = sd_bus_set_bus_client(u->bus, bus_client);
        if (r < 0)
                return r;
        /* connect() on a unix socket answers at once; authentication then runs on the loop. */
        r = sd_bus_start(u->bus);
        if (r < 0)
                return r;
        r = sd_bus_attach_event(u->bus, e, SD_EVENT_PRIORITY_NORMAL);
        if (r < 0)
                return r;

        r = sd_bus_match_signal(u->bus, &u->match_disconnected, "org.freedesktop.DBus.Local",
                                "/org/freedesktop/DBus/Local", "org.freedesktop.DBus.Local", "Disconnected",
                                on_disconnected, u);
        if (r < 0)
                return r;
        r = units_add_match(u, &u->match_properties,
                            "type='signal',interface='" DBUS_PROPERTIES "',member='PropertiesChanged',"
                            "path_namespace='/org/freedesktop/systemd1/unit'",
                            on_properties_changed);
        if (r < 0)
                return r;
        r = units_add_match(u, &u->match_manager,
                            "type='signal',interface='" SD_MANAGER "',path='" SD_PATH "'", on_manager_signal);
        if (r < 0)
                return r;
        /* Required through a bus; on a direct connection the manager signals anyway, but asking
         * costs nothing and keeps both paths alike. */
        r = sd_bus_call_method_async(u->bus, &u->subscribe, SD_DEST, SD_PATH, SD_MANAGER, "Subscribe",
                                     on_subscribed, u, NULL);
        if (r < 0)
                return r;

        *ret = TAKE_PTR(u);
        return 0;
}

int units_connect_address(sd_event *e, const char *address, bool bus_client, const char *gone_message,
                          Units **ret) {
        sd_bus *bus = NULL;
        int r;

        if (!e || !address || !ret)
                return -EINVAL;
        r = sd_bus_new(&bus);
        if (r < 0)
                return r;
        r = sd_bus_set_address(bus, address);
        if (r < 0) {
                sd_bus_unref(bus);
                return r;
        }
        return units_start(e, bus, bus_client, gone_message, ret);
}

/* A stream socket connected to `path` by a process inside the PID namespace of `leader`.
 * systemd drops a private-socket peer whose PID it cannot see (getpeercred() fails with ENODATA
 * for PID 0), and SO_PEERCRED records the connecting process, so a grandchild that entered the
 * namespace connects and hands the socket back. Costs two forks, 2-3 ms on the CI VMs. */
static int connect_in_pidns(pid_t leader, const char *path) {
        _cleanup_close_ int nsfd = -1, pair0 = -1, pair1 = -1;
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        char nspath[64];
        int pair[2], err = 0, fd = -1, status;
        pid_t pid;

        if (strlen(path) >= sizeof sa.sun_path)
                return -ENAMETOOLONG;
        memcpy(sa.sun_path, path, strlen(path) + 1);
        snprintf(nspath, sizeof nspath, "/proc/%d/ns/pid", (int) leader);
        nsfd = open(nspath, O_RDONLY | O_CLOEXEC);
        if (nsfd < 0)
                return errno == ENOENT ? -ESRCH : -errno; /* no such leader: not worth a retry */
        if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, pair) < 0)
                return -errno;
        pair0 = pair[0];
        pair1 = pair[1];

        pid = fork();
        if (pid < 0)
                return -errno;
        if (pid == 0) {
                pid_t c;

                if (setns(nsfd, CLONE_NEWPID) < 0) {
                        err = errno;
                        (void) !write(pair1, &err, sizeof err);
                        _exit(0);
                }
                c = fork();
                if (c == 0) {
                        char cbuf[CMSG_SPACE(sizeof(int))] = {};
                        struct iovec iov = { .iov_base = &err, .iov_len = sizeof err };
                        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
                        int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

                        if (s < 0 || connect(s, (struct sockaddr *) &sa, sizeof sa) < 0)
                                err = errno;
                        else {
                                struct cmsghdr *cm;

                                mh.msg_control = cbuf;
                                mh.msg_controllen = sizeof cbuf;
                                cm = CMSG_FIRSTHDR(&mh);
                                cm->cmsg_level = SOL_SOCKET;
                                cm->cmsg_type = SCM_RIGHTS;
                                cm->cmsg_len = CMSG_LEN(sizeof(int));
                                memcpy(CMSG_DATA(cm), &s, sizeof s);
                        }
                        (void) !sendmsg(pair1, &mh, MSG_NOSIGNAL);
                        _exit(0);
                }
                if (c < 0) {
                        err = errno;
                        (void) !write(pair1, &err, sizeof err);
                } else
                        /* Reap it here: an orphan would be a zombie of our own PID namespace's init
                         * that is also inside the container's, and the container's PID 1 could not
                         * finish dying until someone reaped it. */
                        while (waitpid(c, NULL, 0) < 0 && errno == EINTR)
                                ;
                _exit(0);
        }
        pair1 = (close(pair1), -1);

        {
                char cbuf[CMSG_SPACE(sizeof(int))];
                struct iovec iov = { .iov_base = &err, .iov_len = sizeof err };
                struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
                                     .msg_controllen = sizeof cbuf };
                ssize_t n;

                /* Both children hold the write end: EOF (0) means they died without a word. */
                do
                        n = recvmsg(pair0, &mh, MSG_CMSG_CLOEXEC);
                while (n < 0 && errno == EINTR);
                if (n < 0)
                        err = errno;
                else if (n != sizeof err)
                        err = err ? err : EIO;
                else
                        for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm))
                                if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS)
                                        memcpy(&fd, CMSG_DATA(cm), sizeof fd);
        }
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
                ;
        if (err) {
                if (fd >= 0)
                        close(fd);
                return -err;
        }
        return fd >= 0 ? fd : -EIO;
}

/* The direct connection to a manager's private socket, from inside the container's PID namespace. */
static int units_connect_private(sd_event *e, pid_t leader, const char *path, const char *gone_message,
                                 Units **ret) {
        sd_bus *bus = NULL;
        int fd, r;

        fd = connect_in_pidns(leader, path);
        if (fd < 0)
                return fd;
        r = sd_bus_new(&bus);
        if (r >= 0)
                r = sd_bus_set_fd(bus, fd, fd);
        if (r < 0) {
                sd_bus_unref(bus);
                close(fd);
                return r;
        }
        return units_start(e, bus, false, gone_message, ret);
}

/* The uid of `user` inside the container: a number, or a name from its own /etc/passwd. */
static int container_user_uid(pid_t leader, const char *user, uid_t *ret) {
        _cleanup_fclose_ FILE *f = NULL;
        char path[64], buf[4096], *end;
        struct passwd pw, *p;
        unsigned long n;

        errno = 0;
        n = strtoul(user, &end, 10);
        if (*user && !*end && errno == 0 && n < UINT32_MAX) {
                *ret = (uid_t) n;
                return 0;
        }

        snprintf(path, sizeof path, "/proc/%d/root/etc/passwd", (int) leader);
        f = fopen(path, "re");
        if (!f)
                return -errno;
        while (fgetpwent_r(f, &pw, buf, sizeof buf, &p) == 0)
                if (streq(p->pw_name, user)) {
                        *ret = p->pw_uid;
                        return 0;
                }
        return -ESRCH;
}

int units_connect(sd_event *e, pid_t leader, const char *user, Units **ret) {
        char primary[128], fallback[128];
        _cleanup_free_ char *gone = NULL;
        int r, r2;

        if (!e || leader <= 0 || !ret)
                return -EINVAL;

        if (!user) {
                snprintf(primary, sizeof primary, "/proc/%d/root/run/systemd/private", (int) leader);
                snprintf(fallback, sizeof fallback, "unix:path=/proc/%d/root/run/dbus/system_bus_socket",
                         (int) leader);
                gone = strdup("the container's systemd went away");
        } else {
                uid_t uid;

                r = container_user_uid(leader, user, &uid);
                if (r < 0)
                        return r;
                snprintf(primary, sizeof primary, "/proc/%d/root/run/user/%u/systemd/private", (int) leader,
                         (unsigned) uid);
                snprintf(fallback, sizeof fallback, "unix:path=/proc/%d/root/run/user/%u/bus", (int) leader,
                         (unsigned) uid);
                if (asprintf(&gone, "the container's systemd user manager of \"%s\" went away", user) < 0)
                        gone = NULL;
        }
        if (!gone)
                return -ENOMEM;

        /* The private socket first: it needs no bus daemon and sends signals unasked. */
        r = units_connect_private(e, leader, primary, gone, ret);
        if (r >= 0 || (r != -ENOENT && r != -ECONNREFUSED))
                return r;
        r2 = units_connect_address(e, fallback, true, gone, ret);
        return r2 >= 0 ? r2 : r;
}

Units *units_ref(Units *u) {
        if (u)
                u->n_ref++;
        return u;
}

static void units_free(Units *u) {
        u->closing = true;
        units_fail_all(u, -ECANCELED, "the runner closed its connection to the container's systemd");
        sd_bus_slot_unref(u->match_properties);
        sd_bus_slot_unref(u->match_manager);
        sd_bus_slot_unref(u->match_disconnected);
        sd_bus_slot_unref(u->subscribe);
        if (u->bus) {
                (void) sd_bus_detach_event(u->bus);
                sd_bus_close_unref(u->bus);
        }
        sd_event_unref(u->event);
        free(u->gone_message);
        free(u);
}

Units *units_unref(Units *u) {
        if (!u)
                return NULL;
        if (--u->n_ref > 0)
                return NULL;
        /* units_fail_all() takes references while it runs: keep it from freeing twice. */
        u->n_ref = 1;
        if (!u->closing) {
                units_free(u);
                return NULL;
        }
        u->n_ref = 0;
        return NULL;
}

bool units_is_connected(Units *u) {
        return u && !u->dead && !u->closing && u->bus && sd_bus_is_open(u->bus) > 0;
}

/* The reply to the op's call is in: true if it is an error, and the op has ended, named after
 * `unit` and what the manager said. */
static bool op_reply_failed(Op *op, const char *unit, sd_bus_message *m) {
        const sd_bus_error *e = sd_bus_message_get_error(m);
        _cleanup_free_ char *msg = NULL;

        op->call = sd_bus_slot_unref(op->call);
        if (!sd_bus_message_is_method_error(m, NULL))
                return false;
        if (units_check_lost(op->units))
                return true;
        (void) strf(&msg, "unit \"%s\": the container's systemd answered: %s", unit,
                    e && e->message ? e->message : e && e->name ? e->name : "unknown error");
        op->finish(op, reply_errno(m), msg);
        return true;
}

/* ---- waits ---- */

static void wait_free(UnitsWait *w) {
        op_release(&w->op);
        sd_event_source_disable_unref(w->grace_timer);
        free(w->name);
        free(w->id);
        free(w->path);
        free(w->active_state);
        free(w->load_state);
        free(w->load_error);
        free(w);
}

static void wait_finish(Op *op, int error, const char *message) {
        UnitsWait *w = (UnitsWait *) op;

        if (op->done)
                return;
        op->done = true;
        op_release(op);
        w->grace_timer = sd_event_source_disable_unref(w->grace_timer);
        w->cb(error, w->active_state, message, w->userdata);
        wait_free(w);
}

static bool is_wait(Op *op) {
        return op->finish == wait_finish;
}

static void wait_finishf(UnitsWait *w, int error, const char *fmt, ...) _printf_(3, 4);
static void wait_finishf(UnitsWait *w, int error, const char *fmt, ...) {
        _cleanup_free_ char *m = NULL;
        va_list ap;

        va_start(ap, fmt);
        if (vasprintf(&m, fmt, ap) < 0)
                m = NULL;
        va_end(ap);
        wait_finish(&w->op, error, m);
}

static void wait_set_state(UnitsWait *w, const char *state) {
        if (!state || streq_ptr(w->active_state, state))
                return;
        free(w->active_state);
        w->active_state = strdup(state);
}

/* Terminal states end the wait whatever else is going on; true if it ended. */
static bool wait_terminal(UnitsWait *w, const char *state) {
        if (!state)
                return false;
        wait_set_state(w, state);
        if (streq(state, "active")) {
                wait_finish(&w->op, 0, NULL);
                return true;
        }
        if (streq(state, "failed")) {
                wait_finishf(w, -EIO, "unit \"%s\" reached state \"failed\"", w->name);
                return true;
        }
        return false;
}

static void wait_not_idle(UnitsWait *w) {
        w->grace = GRACE_NONE;
        w->grace_timer = sd_event_source_disable_unref(w->grace_timer);
}

static int on_grace(sd_event_source *s, uint64_t usec, void *userdata) {
        UnitsWait *w = userdata;
        _cleanup_(units_unrefp) Units *ref = units_ref(w->op.units);
        (void) s;
        (void) usec;

        w->grace_timer = sd_event_source_disable_unref(w->grace_timer);
        w->grace = GRACE_EXPIRED;
        wait_refresh(w);
        return 0;
}

/* Inactive, no job for it and none in the whole manager: the NixOS driver gives up here after
 * a second look. Ours comes UNITS_IDLE_GRACE_USEC later, so that a job queued a moment after
 * (a path unit reacting to a file, a socket activation) is not a false failure; no state change
 * is lost meanwhile, since any signal reads the unit again. */
static void wait_idle(UnitsWait *w) {
        const char *load_state = w->load_state, *load_error = w->load_error;
        int r;

        switch (w->grace) {
        case GRACE_NONE:
                r = sd_event_add_time_relative(w->op.units->event, &w->grace_timer, CLOCK_MONOTONIC,
                                               UNITS_IDLE_GRACE_USEC, 1, on_grace, w);
                if (r < 0) {
                        wait_finishf(w, r, "unit \"%s\": cannot arm a timer: %s", w->name, strerror(-r));
                        return;
                }
                w->grace = GRACE_ARMED;
                return;
        case GRACE_ARMED:
                return;
        case GRACE_EXPIRED:
                break;
        }

        if (streq_ptr(load_state, "masked"))
                wait_finishf(w, -ENODATA, "unit \"%s\" is inactive and there are no pending jobs (the unit is masked)",
                             w->name);
        else if (load_state && !streq(load_state, "loaded") && !isempty(load_error))
                wait_finishf(w, -ENODATA,
                             "unit \"%s\" is inactive and there are no pending jobs (it failed to load: %s)",
                             w->name, load_error);
        else
                wait_finishf(w, -ENODATA, "unit \"%s\" is inactive and there are no pending jobs", w->name);
}

static int on_wait_njobs(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        UnitsWait *w = userdata;
        _cleanup_(units_unrefp) Units *ref = units_ref(w->op.units);
        uint32_t n;
        (void) ret_error;

        if (op_reply_failed(&w->op, w->name, m))
                return 0;
        if (sd_bus_message_read(m, "v", "u", &n) < 0) {
                wait_finishf(w, -EBADMSG, "unit \"%s\": the container's systemd sent an unreadable NJobs", w->name);
                return 0;
        }
        if (w->dirty) {
                wait_refresh(w);
                return 0;
        }
        if (n > 0) {
                /* Something else is still queued (boot, a transaction in progress): the NixOS
                 * driver keeps waiting then too. Every JobRemoved looks again. */
                w->watch_jobs = true;
                wait_not_idle(w);
                return 0;
        }
        w->watch_jobs = false;
        wait_idle(w);
        return 0;
}

static int read_unit_state(sd_bus_message *m, UnitsWait *w, const char **active, uint32_t *job) {
        int r;

        r = sd_bus_message_enter_container(m, 'a', "{sv}");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_enter_container(m, 'e', "sv")) > 0) {
                const char *name, *s, *s2;

                r = sd_bus_message_read(m, "s", &name);
                if (r < 0)
                        return r;
                if (streq(name, "ActiveState"))
                        r = sd_bus_message_read(m, "v", "s", active);
                else if (streq(name, "Job"))
                        r = sd_bus_message_read(m, "v", "(uo)", job, NULL);
                else if (streq(name, "Id")) {
                        r = sd_bus_message_read(m, "v", "s", &s);
                        if (r >= 0 && !isempty(s) && !streq(s, w->id)) {
                                free(w->id);
                                w->id = strdup(s);
                                if (!w->id)
                                        return -ENOMEM;
                        }
                } else if (streq(name, "LoadState")) {
                        r = sd_bus_message_read(m, "v", "s", &s);
                        if (r >= 0) {
                                free(w->load_state);
                                w->load_state = strdup(s);
                        }
                } else if (streq(name, "LoadError")) {
                        r = sd_bus_message_read(m, "v", "(ss)", &s, &s2);
                        if (r >= 0) {
                                free(w->load_error);
                                w->load_error = strdup(s2);
                        }
                } else
                        r = sd_bus_message_skip(m, "v");
                if (r < 0)
                        return r;
                r = sd_bus_message_exit_container(m);
                if (r < 0)
                        return r;
        }
        return r;
}

static int on_wait_getall(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        UnitsWait *w = userdata;
        _cleanup_(units_unrefp) Units *ref = units_ref(w->op.units);
        const char *active = NULL;
        uint32_t job = 0;
        int r;
        (void) ret_error;

        if (op_reply_failed(&w->op, w->name, m))
                return 0;
        r = read_unit_state(m, w, &active, &job);
        if (r < 0 || !active) {
                wait_finishf(w, r < 0 ? r : -EBADMSG,
                             "unit \"%s\": the container's systemd sent unreadable unit properties", w->name);
                return 0;
        }

        /* active and failed are final even if a newer change is on its way, as in NixOS. */
        if (wait_terminal(w, active))
                return 0;
        if (w->dirty) {
                wait_refresh(w);
                return 0;
        }
        if (streq_ptr(w->load_state, "not-found")) {
                wait_finishf(w, -ENOENT, "unit \"%s\" not found: it is inactive and there are no pending jobs",
                             w->name);
                return 0;
        }
        if (!streq(active, "inactive") || job != 0) {
                w->watch_jobs = false;
                wait_not_idle(w);
                return 0;
        }

        r = sd_bus_call_method_async(w->op.units->bus, &w->op.call, SD_DEST, SD_PATH, DBUS_PROPERTIES, "Get",
                                     on_wait_njobs, w, "ss", SD_MANAGER, "NJobs");
        if (r < 0 && !units_check_lost(w->op.units))
                wait_finishf(w, r, "unit \"%s\": cannot ask the container's systemd for its jobs: %s", w->name,
                             strerror(-r));
        return 0;
}

static void wait_refresh(UnitsWait *w) {
        int r;

        if (w->op.call || !w->loaded) {
                /* The answer in flight may predate the change: read again when it lands. */
                w->dirty = true;
                return;
        }
        w->dirty = false;
        r = sd_bus_call_method_async(w->op.units->bus, &w->op.call, SD_DEST, w->path, DBUS_PROPERTIES, "GetAll",
                                     on_wait_getall, w, "s", SD_UNIT);
        if (r < 0 && !units_check_lost(w->op.units))
                wait_finishf(w, r, "unit \"%s\": cannot ask the container's systemd: %s", w->name, strerror(-r));
}

static void wait_on_signal(UnitsWait *w, const char *active_state) {
        if (wait_terminal(w, active_state))
                return;
        wait_refresh(w);
}

static int on_wait_loaded(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        UnitsWait *w = userdata;
        _cleanup_(units_unrefp) Units *ref = units_ref(w->op.units);
        const char *path;
        (void) ret_error;

        if (op_reply_failed(&w->op, w->name, m))
                return 0;
        if (sd_bus_message_read(m, "o", &path) < 0) {
                wait_finishf(w, -EBADMSG, "unit \"%s\": the container's systemd sent an unreadable LoadUnit reply",
                             w->name);
                return 0;
        }
        /* An alias loads its unit: follow the unit's own object path from now on. */
        if (!streq(path, w->path)) {
                char *p = strdup(path);

                if (!p) {
                        wait_finish(&w->op, -ENOMEM, "out of memory");
                        return 0;
                }
                free(w->path);
                w->path = p;
        }
        w->loaded = true;
        wait_refresh(w);
        return 0;
}

int units_wait_active(Units *u, const char *unit, units_wait_fn cb, void *userdata, UnitsWait **ret) {
        UnitsWait *w;
        int r;

        if (!u || !unit || !cb)
                return -EINVAL;
        if (u->closing)
                return -ECANCELED;

        w = calloc(1, sizeof *w);
        if (!w)
                return -ENOMEM;
        w->op.finish = wait_finish;
        w->cb = cb;
        w->userdata = userdata;
        op_link(u, &w->op);

        r = op_name_unit(&w->op, unit, &w->name, &w->path);
        if (r > 0 && !(w->id = strdup(w->name)))
                r = -ENOMEM;
        if (r > 0)
                r = op_call(&w->op, w->name, SD_PATH, SD_MANAGER, "LoadUnit", on_wait_loaded, "s", w->name);
        if (r < 0) {
                wait_free(w);
                return r;
        }
        if (ret)
                *ret = w;
        return 0;
}

void units_wait_cancel(UnitsWait *w) {
        if (!w || w->op.done)
                return;
        w->op.done = true;
        wait_free(w);
}

/* ---- systemctl show ---- */

typedef struct Lines {
        char **v;
        size_t n, cap;
        bool show_empty;
} Lines;

static int lines_add(Lines *l, const char *name, const char *value) {
        char *s;

        if (!l->show_empty && isempty(value))
                return 0;
        if (l->n + 2 > l->cap) {
                size_t cap = l->cap ? l->cap * 2 : 64;
                char **v = realloc(l->v, cap * sizeof *v);

                if (!v)
                        return -ENOMEM;
                l->v = v;
                l->cap = cap;
        }
        if (asprintf(&s, "%s=%s", name, value ? value : "") < 0)
                return -ENOMEM;
        l->v[l->n++] = s;
        l->v[l->n] = NULL;
        return 0;
}

static int lines_addf(Lines *l, const char *name, const char *fmt, ...) _printf_(3, 4);
static int lines_addf(Lines *l, const char *name, const char *fmt, ...) {
        _cleanup_free_ char *s = NULL;
        va_list ap;
        int r;

        va_start(ap, fmt);
        r = vasprintf(&s, fmt, ap);
        va_end(ap);
        if (r < 0)
                return -ENOMEM;
        return lines_add(l, name, s);
}

/* Space-separated pieces of one value. */
typedef struct Buf {
        char *s;
        size_t n;
} Buf;

static int buf_add(Buf *b, const char *piece) {
        size_t k = strlen(piece);
        char *s = realloc(b->s, b->n + k + 2);

        if (!s)
                return -ENOMEM;
        b->s = s;
        if (b->n > 0)
                b->s[b->n++] = ' ';
        memcpy(b->s + b->n, piece, k + 1);
        b->n += k;
        return 0;
}

#define USEC_PER_SEC 1000000ULL
#define USEC_PER_MINUTE (60 * USEC_PER_SEC)

/* systemd's format_timespan(t, 0). */
static void format_timespan(char *buf, size_t l, uint64_t t) {
        static const struct {
                const char *suffix;
                uint64_t usec;
        } table[] = {
                { "y", 31557600ULL * USEC_PER_SEC }, { "month", 2629800ULL * USEC_PER_SEC },
                { "w", 7ULL * 24 * 3600 * USEC_PER_SEC }, { "d", 24ULL * 3600 * USEC_PER_SEC },
                { "h", 3600ULL * USEC_PER_SEC }, { "min", USEC_PER_MINUTE }, { "s", USEC_PER_SEC },
                { "ms", 1000ULL }, { "us", 1ULL },
        };
        char *p = buf;

        if (t == UINT64_MAX) {
                snprintf(buf, l, "infinity");
                return;
        }
        if (t == 0) {
                snprintf(buf, l, "0");
                return;
        }
        *p = 0;
        for (size_t i = 0; i < ELEMENTSOF(table) && t > 0; i++) {
                uint64_t a, b;
                int k;

                if (t < table[i].usec)
                        continue;
                if (l <= 1)
                        break;
                a = t / table[i].usec;
                b = t % table[i].usec;
                if (t < USEC_PER_MINUTE && b > 0) {
                        int j = 0;

                        for (uint64_t cc = table[i].usec; cc > 1; cc /= 10)
                                j++;
                        k = snprintf(p, l, "%s%" PRIu64 ".%0*" PRIu64 "%s", p > buf ? " " : "", a, j, b,
                                     table[i].suffix);
                        t = 0;
                } else {
                        k = snprintf(p, l, "%s%" PRIu64 "%s", p > buf ? " " : "", a, table[i].suffix);
                        t = b;
                }
                if (k < 0 || (size_t) k >= l)
                        break;
                p += k;
                l -= k;
        }
}

/* systemd's FORMAT_TIMESTAMP(): NULL (an empty value) when unset. */
static const char *format_timestamp(char *buf, size_t l, uint64_t t) {
        static const char weekdays[7][4] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
        time_t sec;
        struct tm tm;
        size_t n;

        if (t == 0 || t == UINT64_MAX)
                return NULL;
        sec = (time_t) (t / USEC_PER_SEC);
        if (!localtime_r(&sec, &tm))
                return NULL;
        memcpy(buf, weekdays[tm.tm_wday], 3);
        buf[3] = ' ';
        if (strftime(buf + 4, l - 4, "%Y-%m-%d %H:%M:%S", &tm) == 0)
                return NULL;
        n = strlen(buf);
        if (!isempty(tm.tm_zone) && n + 1 + strlen(tm.tm_zone) + 1 <= l)
                snprintf(buf + n, l - n, " %s", tm.tm_zone);
        return buf;
}

/* systemd's shell_maybe_quote(s, 0), for string list items. */
static char *shell_maybe_quote(const char *s) {
        const char *p;
        char *r, *t;

        for (p = s; *p; p++)
                if ((unsigned char) *p < ' ' || *p == 127 || strchr(" \t\n\r\"\\`$*?['()<>|&;!", *p))
                        break;
        if (!*p)
                return strdup(s);
        r = malloc(strlen(s) * 2 + 3);
        if (!r)
                return NULL;
        t = r;
        *t++ = '"';
        for (p = s; *p; p++) {
                if (strchr("\"\\`$", *p))
                        *t++ = '\\';
                *t++ = *p;
        }
        *t++ = '"';
        *t = 0;
        return r;
}

static char *base64(const uint8_t *p, size_t n) {
        static const char table[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        char *r = malloc((n + 2) / 3 * 4 + 1), *t = r;

        if (!r)
                return NULL;
        for (size_t i = 0; i < n; i += 3) {
                uint32_t v = (uint32_t) p[i] << 16 | (i + 1 < n ? (uint32_t) p[i + 1] << 8 : 0) |
                             (i + 2 < n ? p[i + 2] : 0);

                *t++ = table[(v >> 18) & 63];
                *t++ = table[(v >> 12) & 63];
                *t++ = i + 1 < n ? table[(v >> 6) & 63] : '=';
                *t++ = i + 2 < n ? table[v & 63] : '=';
        }
        *t = 0;
        return r;
}

static const char *signal_name(int sig, char *buf, size_t l) {
        const char *s = sig > 0 ? sigabbrev_np(sig) : NULL;

        if (s)
                return s;
        if (sig >= SIGRTMIN && sig <= SIGRTMAX)
                snprintf(buf, l, "RTMIN+%d", sig - SIGRTMIN);
        else
                snprintf(buf, l, "%d", sig);
        return buf;
}

static const char *sigchld_code(int code) {
        switch (code) {
        case CLD_EXITED: return "exited";
        case CLD_KILLED: return "killed";
        case CLD_DUMPED: return "dumped";
        case CLD_TRAPPED: return "trapped";
        case CLD_STOPPED: return "stopped";
        case CLD_CONTINUED: return "continued";
        default: return NULL;
        }
}

static const struct {
        unsigned long flag;
        const char *name;
} namespaces[] = {
        { CLONE_NEWCGROUP, "cgroup" }, { CLONE_NEWIPC, "ipc" }, { CLONE_NEWNET, "net" }, { CLONE_NEWNS, "mnt" },
        { CLONE_NEWPID, "pid" }, { CLONE_NEWUSER, "user" }, { CLONE_NEWUTS, "uts" },
};
#define NAMESPACE_FLAGS_ALL                                                                                 \
        ((uint64_t) (CLONE_NEWCGROUP | CLONE_NEWIPC | CLONE_NEWNET | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWUSER | \
                     CLONE_NEWUTS))

static char *namespace_flags_to_string(uint64_t flags) {
        Buf b = {};

        for (size_t i = 0; i < ELEMENTSOF(namespaces); i++)
                if ((flags & namespaces[i].flag) && buf_add(&b, namespaces[i].name) < 0) {
                        free(b.s);
                        return NULL;
                }
        return b.s ? b.s : strdup("");
}

/* systemd's capability_set_to_string_alloc(): names up to the kernel's last capability. */
static char *capability_set_to_string(uint64_t set) {
        static const char *const names[] = {
                "cap_chown", "cap_dac_override", "cap_dac_read_search", "cap_fowner", "cap_fsetid", "cap_kill",
                "cap_setgid", "cap_setuid", "cap_setpcap", "cap_linux_immutable", "cap_net_bind_service",
                "cap_net_broadcast", "cap_net_admin", "cap_net_raw", "cap_ipc_lock", "cap_ipc_owner",
                "cap_sys_module", "cap_sys_rawio", "cap_sys_chroot", "cap_sys_ptrace", "cap_sys_pacct",
                "cap_sys_admin", "cap_sys_boot", "cap_sys_nice", "cap_sys_resource", "cap_sys_time",
                "cap_sys_tty_config", "cap_mknod", "cap_lease", "cap_audit_write", "cap_audit_control",
                "cap_setfcap", "cap_mac_override", "cap_mac_admin", "cap_syslog", "cap_wake_alarm",
                "cap_block_suspend", "cap_audit_read", "cap_perfmon", "cap_bpf", "cap_checkpoint_restore",
        };
        static unsigned last = 0;
        Buf b = {};

        if (last == 0) {
                _cleanup_fclose_ FILE *f = fopen("/proc/sys/kernel/cap_last_cap", "re");

                if (!f || fscanf(f, "%u", &last) != 1 || last > 63)
                        last = ELEMENTSOF(names) - 1;
        }
        for (unsigned i = 0; i <= last; i++) {
                char num[16];
                const char *p = i < ELEMENTSOF(names) ? names[i] : num;

                if (!(set & (UINT64_C(1) << i)))
                        continue;
                snprintf(num, sizeof num, "%u", i);
                if (buf_add(&b, p) < 0) {
                        free(b.s);
                        return NULL;
                }
        }
        return b.s ? b.s : strdup("");
}

/* A journal field assignment as systemctl accepts it for LogExtraFields: KEY=value, KEY of at most
 * 64 of [A-Z0-9_] not starting with a digit or '_', and valid UTF-8 without NUL. */
static bool log_extra_field_valid(const char *p, size_t sz) {
        const char *eq = memchr(p, '=', sz);
        size_t k;

        if (!eq || memchr(p, 0, sz))
                return false;
        k = eq - p;
        if (k == 0 || k > 64 || p[0] == '_' || (p[0] >= '0' && p[0] <= '9'))
                return false;
        for (size_t i = 0; i < k; i++)
                if (!((p[i] >= 'A' && p[i] <= 'Z') || (p[i] >= '0' && p[i] <= '9') || p[i] == '_'))
                        return false;
        for (size_t i = k + 1; i < sz;) {
                unsigned char c = p[i];
                size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;

                if (n == 0 || i + n > sz)
                        return false;
                for (size_t j = 1; j < n; j++)
                        if ((p[i + j] & 0xc0) != 0x80)
                                return false;
                i += n;
        }
        return true;
}

/* ---- how systemctl prints each property ----
 *
 * A formatter gets the property's value: read already when it is of a basic type or an array of
 * fixed-size ones, else the message stands at it. Array items get an item formatter each instead,
 * which reads one item and gives its text, or NULL to leave it out. */

typedef struct Value {
        sd_bus_message *m;
        union {
                const char *str;
                int boolean;
                uint32_t u32;
                int32_t i32;
                uint64_t u64;
                int64_t i64;
                double dbl;
        } basic;
        const void *array;
        size_t size; /* of the array, in bytes */
} Value;

static int read_value(sd_bus_message *m, const char *sig, Value *v) {
        if (!sig[1])
                return sd_bus_message_read_basic(m, sig[0], &v->basic);
        if (sig[0] == 'a' && strchr("ybnqiuxtd", sig[1]) && !sig[2])
                return sd_bus_message_read_array(m, sig[1], &v->array, &v->size);
        return 0;
}

static int show_string(Lines *l, const char *name, const Value *v) {
        return lines_add(l, name, strchr(v->basic.str, '\n') ? "[unprintable]" : v->basic.str);
}

static int show_bool(Lines *l, const char *name, const Value *v) {
        return lines_add(l, name, v->basic.boolean ? "yes" : "no");
}

static int show_i64(Lines *l, const char *name, const Value *v) {
        return lines_addf(l, name, "%" PRIi64, v->basic.i64);
}

static int show_double(Lines *l, const char *name, const Value *v) {
        return lines_addf(l, name, "%g", v->basic.dbl);
}

static int show_u32(Lines *l, const char *name, const Value *v) {
        return lines_addf(l, name, "%" PRIu32, v->basic.u32);
}

static int show_octal(Lines *l, const char *name, const Value *v) {
        return lines_addf(l, name, "%04o", v->basic.u32);
}

static int show_id(Lines *l, const char *name, const Value *v) {
        return v->basic.u32 == UINT32_MAX ? lines_add(l, name, "[not set]") : show_u32(l, name, v);
}

static int show_i32(Lines *l, const char *name, const Value *v) {
        return lines_addf(l, name, "%" PRIi32, v->basic.i32);
}

/* SuccessActionExitStatus and friends: -1 when unset, which only an explicit query shows. */
static int show_exit_code(Lines *l, const char *name, const Value *v) {
        if (v->basic.i32 >= 0 && v->basic.i32 <= 255)
                return show_i32(l, name, v);
        return l->show_empty ? lines_add(l, name, "[not set]") : 0;
}

static int show_numa_policy(Lines *l, const char *name, const Value *v) {
        static const char *const policies[] = { "default", "preferred", "bind", "interleave", "local" };
        int32_t i = v->basic.i32;

        return lines_add(l, name, i >= 0 && (size_t) i < ELEMENTSOF(policies) ? policies[i] : "n/a");
}

static int show_u64(Lines *l, const char *name, const Value *v) {
        return lines_addf(l, name, "%" PRIu64, v->basic.u64);
}

/* A weight, a gauge or a counter that has no value (UINT64_MAX). */
static int show_u64_unset(Lines *l, const char *name, const Value *v) {
        return v->basic.u64 == UINT64_MAX ? lines_add(l, name, "[not set]") : show_u64(l, name, v);
}

static int show_u64_limit(Lines *l, const char *name, const Value *v) {
        return v->basic.u64 == UINT64_MAX ? lines_add(l, name, "infinity") : show_u64(l, name, v);
}

/* IP accounting that is off. */
static int show_u64_ip_counter(Lines *l, const char *name, const Value *v) {
        return v->basic.u64 == UINT64_MAX ? lines_add(l, name, "[no data]") : show_u64(l, name, v);
}

static int show_hex(Lines *l, const char *name, const Value *v) {
        return lines_addf(l, name, "0x%" PRIx64, v->basic.u64);
}

static int show_timestamp(Lines *l, const char *name, const Value *v) {
        char buf[128];

        return lines_add(l, name, format_timestamp(buf, sizeof buf, v->basic.u64));
}

static int show_timespan(Lines *l, const char *name, const Value *v) {
        char buf[128];

        format_timespan(buf, sizeof buf, v->basic.u64);
        return lines_add(l, name, buf);
}

/* RestrictNamespaces: the namespaces allowed; all of them is "no" restriction, none "yes". */
static int show_namespaces(Lines *l, const char *name, const Value *v) {
        _cleanup_free_ char *s = NULL;
        uint64_t u = v->basic.u64 & NAMESPACE_FLAGS_ALL;

        if (u == 0)
                return lines_add(l, name, "yes");
        if (u == NAMESPACE_FLAGS_ALL)
                return lines_add(l, name, "no");
        s = namespace_flags_to_string(v->basic.u64);
        return s ? lines_add(l, name, s) : -ENOMEM;
}

static int show_mount_flags(Lines *l, const char *name, const Value *v) {
        uint64_t u = v->basic.u64;

        return lines_add(l, name,
                         u == MS_SHARED ? "shared" : u == MS_SLAVE ? "slave" : u == MS_PRIVATE ? "private" : NULL);
}

static int show_capabilities(Lines *l, const char *name, const Value *v) {
        _cleanup_free_ char *s = capability_set_to_string(v->basic.u64);

        return s ? lines_add(l, name, s) : -ENOMEM;
}

static int show_job(Lines *l, const char *name, const Value *v) {
        uint32_t id;
        int r = sd_bus_message_read(v->m, "(uo)", &id, NULL);

        if (r < 0)
                return r;
        return id > 0 ? lines_addf(l, name, "%" PRIu32, id) : lines_add(l, name, NULL);
}

static int show_unit(Lines *l, const char *name, const Value *v) {
        const char *s;
        int r = sd_bus_message_read(v->m, "(so)", &s, NULL);

        return r < 0 ? r : lines_add(l, name, s);
}

static int show_load_error(Lines *l, const char *name, const Value *v) {
        const char *error, *message;
        int r = sd_bus_message_read(v->m, "(ss)", &error, &message);

        if (r < 0)
                return r;
        if (isempty(error) && isempty(message))
                return lines_add(l, name, NULL);
        return lines_addf(l, name, "%s \"%s\"", error, message);
}

/* SELinuxContext and the like: "-" marks a label whose failure is ignored. */
static int show_label(Lines *l, const char *name, const Value *v) {
        const char *s;
        int ignore;
        int r = sd_bus_message_read(v->m, "(bs)", &ignore, &s);

        if (r < 0)
                return r;
        if (isempty(s))
                return lines_add(l, name, NULL);
        return lines_addf(l, name, "%s%s", ignore ? "-" : "", s);
}

/* SystemCallFilter and the like: an allow list, or a deny list marked by a "~" that sticks to the
 * first item. Shown even when empty, except an empty deny list (no filter). */
static int show_name_list(Lines *l, const char *name, const Value *v) {
        _cleanup_strv_free_ char **names = NULL;
        bool keep = l->show_empty;
        int allow, r;
        Buf b = {};

        r = sd_bus_message_enter_container(v->m, 'r', "bas");
        if (r >= 0)
                r = sd_bus_message_read(v->m, "b", &allow);
        if (r >= 0)
                r = sd_bus_message_read_strv(v->m, &names);
        if (r >= 0)
                r = sd_bus_message_exit_container(v->m);
        if (r < 0 || (!l->show_empty && !allow && !(names && *names)))
                return r;
        for (char **i = names; i && *i && r >= 0; i++)
                r = buf_add(&b, *i);
        if (r >= 0) {
                l->show_empty = true;
                r = lines_addf(l, name, "%s%s", allow ? "" : "~", b.s ? b.s : "");
                l->show_empty = keep;
        }
        free(b.s);
        return r;
}

/* SuccessExitStatus and the like: exit statuses, then signal names. */
static int show_exit_status(Lines *l, const char *name, const Value *v) {
        const int32_t *status, *sig;
        size_t n_status, n_sig;
        Buf b = {};
        int r;

        r = sd_bus_message_enter_container(v->m, 'r', "aiai");
        if (r >= 0)
                r = sd_bus_message_read_array(v->m, 'i', (const void **) &status, &n_status);
        if (r >= 0)
                r = sd_bus_message_read_array(v->m, 'i', (const void **) &sig, &n_sig);
        if (r >= 0)
                r = sd_bus_message_exit_container(v->m);
        if (r < 0)
                return r;
        for (size_t i = 0; r >= 0 && i < n_status / sizeof(int32_t); i++) {
                char piece[16];

                snprintf(piece, sizeof piece, "%" PRIi32, status[i]);
                r = buf_add(&b, piece);
        }
        for (size_t i = 0; r >= 0 && i < n_sig / sizeof(int32_t); i++) {
                char piece[32];

                r = buf_add(&b, signal_name(sig[i], piece, sizeof piece));
        }
        if (r >= 0)
                r = lines_add(l, name, b.s);
        free(b.s);
        return r;
}

/* CPUAffinity and the like: "0-3 6" from a bit mask. */
static int show_cpu_set(Lines *l, const char *name, const Value *v) {
        const uint8_t *a = v->array;
        size_t n = v->size * 8;
        Buf b = {};
        int r = 0;

        for (size_t i = 0; r >= 0 && i < n; i++) {
                char piece[48];
                size_t j;

                if (!(a[i / 8] & (1u << (i % 8))))
                        continue;
                for (j = i; j + 1 < n && (a[(j + 1) / 8] & (1u << ((j + 1) % 8))); j++)
                        ;
                if (j > i)
                        snprintf(piece, sizeof piece, "%zu-%zu", i, j);
                else
                        snprintf(piece, sizeof piece, "%zu", i);
                r = buf_add(&b, piece);
                i = j;
        }
        if (r >= 0)
                r = lines_add(l, name, b.s);
        free(b.s);
        return r;
}

static int show_base64(Lines *l, const char *name, const Value *v) {
        _cleanup_free_ char *s = base64(v->array, v->size);

        return s ? lines_add(l, name, s) : -ENOMEM;
}

static int show_hex_bytes(Lines *l, const char *name, const Value *v) {
        _cleanup_free_ char *s = malloc(v->size * 2 + 1);
        const uint8_t *a = v->array;

        if (!s)
                return -ENOMEM;
        for (size_t i = 0; i < v->size; i++)
                snprintf(s + 2 * i, 3, "%02x", a[i]);
        s[v->size * 2] = 0;
        return lines_add(l, name, s);
}

static int show_hex_words(Lines *l, const char *name, const Value *v) {
        size_t n = v->size / sizeof(uint32_t);
        _cleanup_free_ char *s = malloc(n * 8 + 1);
        const uint32_t *a = v->array;

        if (!s)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++)
                snprintf(s + 8 * i, 9, "%08" PRIx32, a[i]);
        s[n * 8] = 0;
        return lines_add(l, name, s);
}

/* ---- array items ---- */

static int item_quoted(sd_bus_message *m, char **ret) {
        const char *s;
        int r = sd_bus_message_read_basic(m, 's', &s);

        if (r < 0)
                return r;
        *ret = shell_maybe_quote(s);
        return *ret ? 0 : -ENOMEM;
}

static int item_environment_file(sd_bus_message *m, char **ret) {
        const char *path;
        int ignore;
        int r = sd_bus_message_read(m, "(sb)", &path, &ignore);

        return r < 0 ? r : strf(ret, "%s (ignore_errors=%s)", path, ignore ? "yes" : "no");
}

/* Paths of a path unit, Listen of a socket unit: (kind, what), shown as "what (kind)". */
static int item_listen(sd_bus_message *m, char **ret) {
        const char *kind, *what;
        int r = sd_bus_message_read(m, "(ss)", &kind, &what);

        return r < 0 ? r : strf(ret, "%s (%s)", what, kind);
}

static int item_device_rule(sd_bus_message *m, char **ret) {
        const char *device, *rule;
        int r = sd_bus_message_read(m, "(ss)", &device, &rule);

        return r < 0 ? r : strf(ret, "%s %s", device, rule);
}

static int item_device_number(sd_bus_message *m, char **ret) {
        const char *device;
        uint64_t n;
        int r = sd_bus_message_read(m, "(st)", &device, &n);

        return r < 0 ? r : strf(ret, "%s %" PRIu64, device, n);
}

static int item_device_timespan(sd_bus_message *m, char **ret) {
        const char *device;
        uint64_t t;
        char buf[128];
        int r = sd_bus_message_read(m, "(st)", &device, &t);

        if (r < 0)
                return r;
        format_timespan(buf, sizeof buf, t);
        return strf(ret, "%s %s", device, buf);
}

static int item_tmpfs(sd_bus_message *m, char **ret) {
        const char *target, *options;
        int r = sd_bus_message_read(m, "(ss)", &target, &options);

        if (r < 0 || isempty(target))
                return r;
        return strf(ret, "%s%s%s", target, isempty(options) ? "" : ":", options);
}

static int item_bind_path(sd_bus_message *m, char **ret) {
        const char *source, *dest;
        int ignore;
        uint64_t flags;
        int r = sd_bus_message_read(m, "(ssbt)", &source, &dest, &ignore, &flags);

        if (r < 0 || isempty(source))
                return r;
        return strf(ret, "%s%s%s%s%s", ignore ? "-" : "", source, isempty(dest) ? "" : ":", dest,
                    flags == 16384 /* MS_REC */ ? ":rbind" : "");
}

static int item_monotonic_timer(sd_bus_message *m, char **ret) {
        const char *base;
        uint64_t value, next;
        char a[128], b[128];
        int r = sd_bus_message_read(m, "(stt)", &base, &value, &next);

        if (r < 0)
                return r;
        format_timespan(a, sizeof a, value);
        format_timespan(b, sizeof b, next);
        return strf(ret, "{ %s=%s ; next_elapse=%s }", base, a, b);
}

static int item_calendar_timer(sd_bus_message *m, char **ret) {
        const char *base, *spec, *ts;
        uint64_t next;
        char buf[128];
        int r = sd_bus_message_read(m, "(sst)", &base, &spec, &next);

        if (r < 0)
                return r;
        ts = format_timestamp(buf, sizeof buf, next);
        return strf(ret, "{ %s=%s ; next_elapse=%s }", base, spec, ts ? ts : "(null)");
}

/* An IP prefix; systemctl leaves out what is not a valid one. */
static int item_ip_prefix(sd_bus_message *m, char **ret) {
        char addr[INET6_ADDRSTRLEN];
        int32_t family;
        const void *a;
        size_t n;
        uint32_t prefix;
        int r;

        r = sd_bus_message_enter_container(m, 'r', "iayu");
        if (r >= 0)
                r = sd_bus_message_read(m, "i", &family);
        if (r >= 0)
                r = sd_bus_message_read_array(m, 'y', &a, &n);
        if (r >= 0)
                r = sd_bus_message_read(m, "u", &prefix);
        if (r >= 0)
                r = sd_bus_message_exit_container(m);
        if (r < 0)
                return r;
        if (!(family == AF_INET && n == 4 && prefix <= 32) && !(family == AF_INET6 && n == 16 && prefix <= 128))
                return 0;
        if (!inet_ntop(family, a, addr, sizeof addr))
                return 0;
        return strf(ret, "%s/%" PRIu32, addr, prefix);
}

static int item_journal_field(sd_bus_message *m, char **ret) {
        const void *p;
        size_t n;
        int r = sd_bus_message_read_array(m, 'y', &p, &n);

        if (r < 0 || !log_extra_field_valid(p, n))
                return r;
        *ret = strndup(p, n);
        return *ret ? 0 : -ENOMEM;
}

/* ExecStart and the like, in their plain form (ignore_errors) or their Ex form (flags). */
static int item_exec(sd_bus_message *m, char **ret) {
        _cleanup_strv_free_ char **argv = NULL, **flags = NULL;
        const char *contents, *path, *code_name, *ts1, *ts2;
        uint64_t start, start_mono, exit_, exit_mono;
        uint32_t pid;
        int ignore = 0, code, status, r;
        char t1[64], t2[64], sig[32];
        Buf args = {}, fl = {};
        bool ex;

        r = sd_bus_message_peek_type(m, NULL, &contents);
        if (r < 0)
                return r;
        ex = streq(contents, "sasasttttuii");
        r = sd_bus_message_enter_container(m, 'r', contents);
        if (r >= 0)
                r = sd_bus_message_read(m, "s", &path);
        if (r >= 0)
                r = sd_bus_message_read_strv(m, &argv);
        if (r >= 0)
                r = ex ? sd_bus_message_read_strv(m, &flags) : sd_bus_message_read(m, "b", &ignore);
        if (r >= 0)
                r = sd_bus_message_read(m, "ttttuii", &start, &start_mono, &exit_, &exit_mono, &pid, &code, &status);
        if (r >= 0)
                r = sd_bus_message_exit_container(m);
        for (char **a = argv; a && *a && r >= 0; a++)
                r = buf_add(&args, *a);
        for (char **a = flags; a && *a && r >= 0; a++)
                r = buf_add(&fl, *a);
        if (r >= 0) {
                ts1 = format_timestamp(t1, sizeof t1, start);
                ts2 = format_timestamp(t2, sizeof t2, exit_);
                /* systemctl passes a NULL code name to printf, which glibc prints as "(null)". */
                code_name = sigchld_code(code);
                r = strf(ret,
                         "{ path=%s ; argv[]=%s ; %s=%s ; start_time=[%s] ; stop_time=[%s] ; pid=%u ; code=%s ; "
                         "status=%i%s%s }",
                         path, args.s ? args.s : "", ex ? "flags" : "ignore_errors",
                         ex ? (fl.s ? fl.s : "") : ignore ? "yes" : "no", ts1 ? ts1 : "n/a", ts2 ? ts2 : "n/a", pid,
                         code_name ? code_name : "(null)", status, code == CLD_EXITED ? "" : "/",
                         code == CLD_EXITED ? "" : signal_name(status, sig, sizeof sig));
        }
        free(args.s);
        free(fl.s);
        return r;
}

/* ---- the table ---- */

typedef struct Format {
        const char *names; /* '|'-separated patterns, '*' a wildcard */
        const char *sig;   /* of the value */
        int (*show)(Lines *l, const char *name, const Value *v);
        int (*item)(sd_bus_message *m, char **ret); /* instead of show, for an array: */
        bool join;                                   /* all items on one line, else a line each */
} Format;

/* The first row that matches a property's name and signature prints it. Left out, though
 * systemctl 252 prints them when set: MountImages, ExtensionImages, RootImageOptions,
 * SocketBindAllow/SocketBindDeny, LoadCredential and friends. They are empty in ordinary units;
 * `systemctl show` through a command has them all. */
static const Format formats[] = {
        { .sig = "s", .names = "*", .show = show_string },
        { .sig = "b", .names = "*", .show = show_bool },
        { .sig = "x", .names = "*", .show = show_i64 },
        { .sig = "d", .names = "*", .show = show_double },
        { .sig = "u", .names = "*UMask*|*Mode*", .show = show_octal },
        { .sig = "u", .names = "UID|GID", .show = show_id },
        { .sig = "u", .names = "*", .show = show_u32 },
        { .sig = "i", .names = "*ActionExitStatus", .show = show_exit_code },
        { .sig = "i", .names = "NUMAPolicy", .show = show_numa_policy },
        { .sig = "i", .names = "*", .show = show_i32 },
        { .sig = "t", .names = "*Timestamp|NextElapseUSecRealtime|LastTriggerUSec|TimeUSec|RTCTimeUSec",
          .show = show_timestamp },
        { .sig = "t", .names = "*USec*", .show = show_timespan },
        { .sig = "t", .names = "CoredumpFilter", .show = show_hex },
        { .sig = "t", .names = "RestrictNamespaces", .show = show_namespaces },
        { .sig = "t", .names = "MountFlags", .show = show_mount_flags },
        { .sig = "t", .names = "CapabilityBoundingSet|AmbientCapabilities", .show = show_capabilities },
        { .sig = "t",
          .names = "CPUWeight|StartupCPUWeight|IOWeight|StartupIOWeight|CPUShares|StartupCPUShares|BlockIOWeight|"
                   "StartupBlockIOWeight|MemoryAvailable|TasksCurrent|Memory*Current|Memory*Peak|IO*Bytes|"
                   "IO*Operations|*NSec",
          .show = show_u64_unset },
        { .sig = "t",
          .names = "*MemoryLow|*MemoryMin|*MemoryHigh|*MemoryMax|*MemorySwapMax|*MemoryLimit|*TasksMax|Limit*|"
                   "DefaultLimit*",
          .show = show_u64_limit },
        { .sig = "t", .names = "IPIngressBytes|IPIngressPackets|IPEgressBytes|IPEgressPackets",
          .show = show_u64_ip_counter },
        { .sig = "t", .names = "*", .show = show_u64 },
        { .sig = "(uo)", .names = "Job", .show = show_job },
        { .sig = "(so)", .names = "Unit", .show = show_unit },
        { .sig = "(ss)", .names = "LoadError", .show = show_load_error },
        { .sig = "(bs)", .names = "SELinuxContext|AppArmorProfile|SmackProcessLabel", .show = show_label },
        { .sig = "(bas)",
          .names = "SystemCallFilter|SystemCallLog|RestrictAddressFamilies|RestrictFileSystems|"
                   "RestrictNetworkInterfaces",
          .show = show_name_list },
        { .sig = "(aiai)", .names = "*ExitStatus", .show = show_exit_status },
        { .sig = "ay",
          .names = "CPUAffinity|NUMAMask|AllowedCPUs|AllowedMemoryNodes|EffectiveCPUs|EffectiveMemoryNodes",
          .show = show_cpu_set },
        { .sig = "ay", .names = "StandardInputData|RootHashSignature", .show = show_base64 },
        { .sig = "ay", .names = "*", .show = show_hex_bytes },
        { .sig = "au", .names = "*", .show = show_hex_words },
        { .sig = "as", .names = "*", .item = item_quoted, .join = true },
        { .sig = "a(sb)", .names = "EnvironmentFiles", .item = item_environment_file },
        { .sig = "a(ss)", .names = "Paths|Listen", .item = item_listen },
        { .sig = "a(ss)", .names = "DeviceAllow", .item = item_device_rule },
        { .sig = "a(ss)", .names = "TemporaryFileSystem", .item = item_tmpfs, .join = true },
        { .sig = "a(st)",
          .names = "IODeviceWeight|BlockIODeviceWeight|IOReadBandwidthMax|IOWriteBandwidthMax|IOReadIOPSMax|"
                   "IOWriteIOPSMax|BlockIOReadBandwidth|BlockIOWriteBandwidth",
          .item = item_device_number },
        { .sig = "a(st)", .names = "IODeviceLatencyTargetUSec", .item = item_device_timespan },
        { .sig = "a(ssbt)", .names = "BindPaths|BindReadOnlyPaths", .item = item_bind_path, .join = true },
        { .sig = "a(stt)", .names = "TimersMonotonic", .item = item_monotonic_timer },
        { .sig = "a(sst)", .names = "TimersCalendar", .item = item_calendar_timer },
        { .sig = "a(iayu)", .names = "IPAddressAllow|IPAddressDeny", .item = item_ip_prefix, .join = true },
        { .sig = "aay", .names = "LogExtraFields", .item = item_journal_field, .join = true },
        { .sig = "a(sasbttttuii)", .names = "Exec*", .item = item_exec },
        { .sig = "a(sasasttttuii)", .names = "Exec*", .item = item_exec },
};

/* One pattern, up to a '|': '*' matches any run of characters, anything else itself. */
static bool pattern_match(const char *p, const char *s) {
        for (; *p && *p != '|'; p++, s++) {
                if (*p == '*') {
                        for (;; s++) {
                                if (pattern_match(p + 1, s))
                                        return true;
                                if (!*s)
                                        return false;
                        }
                }
                if (*p != *s)
                        return false;
        }
        return !*s;
}

static bool names_match(const char *patterns, const char *name) {
        for (const char *p = patterns;; p++) {
                if (pattern_match(p, name))
                        return true;
                p = strchr(p, '|');
                if (!p)
                        return false;
        }
}

static int show_items(Lines *l, const char *name, sd_bus_message *m, const Format *f) {
        Buf b = {};
        int r;

        r = sd_bus_message_enter_container(m, 'a', f->sig + 1);
        while (r >= 0 && (r = sd_bus_message_at_end(m, false)) == 0) {
                _cleanup_free_ char *s = NULL;

                r = f->item(m, &s);
                if (r >= 0 && s)
                        r = f->join ? buf_add(&b, s) : lines_add(l, name, s);
        }
        if (r >= 0)
                r = sd_bus_message_exit_container(m);
        if (r >= 0 && f->join)
                r = lines_add(l, name, b.s);
        free(b.s);
        return r;
}

/* One property of signature `sig`, the message inside its variant. 1: printed; 0: a type
 * systemctl prints only with --all (as "[unprintable]"), which we leave out, nothing read. */
static int format_property(Lines *l, const char *name, const char *sig, sd_bus_message *m) {
        Value v = { .m = m };
        int r;

        for (const Format *f = formats; f < formats + ELEMENTSOF(formats); f++) {
                if (!streq(f->sig, sig) || !names_match(f->names, name))
                        continue;
                if (f->item)
                        r = show_items(l, name, m, f);
                else {
                        r = read_value(m, sig, &v);
                        if (r >= 0)
                                r = f->show(l, name, &v);
                }
                return r < 0 ? r : 1;
        }
        return 0;
}

/* One {name, value} entry of a GetAll reply, if it is `filter` (or there is none). */
static int format_entry(Lines *l, const char *filter, sd_bus_message *m) {
        const char *name, *sig;
        int r;

        r = sd_bus_message_read(m, "s", &name);
        if (r >= 0)
                r = sd_bus_message_peek_type(m, NULL, &sig);
        if (r < 0)
                return r;
        if (filter && !streq(name, filter))
                return sd_bus_message_skip(m, "v");
        r = sd_bus_message_enter_container(m, 'v', sig);
        if (r >= 0)
                r = format_property(l, name, sig, m);
        if (r == 0)
                r = sd_bus_message_skip(m, sig);
        if (r >= 0)
                r = sd_bus_message_exit_container(m);
        return r;
}

/* The body of a GetAll reply as `systemctl show` lines; only `filter` if given. */
int units_format_properties(sd_bus_message *m, const char *filter, char ***ret) {
        Lines l = { .show_empty = filter != NULL };
        int r;

        r = sd_bus_message_enter_container(m, 'a', "{sv}");
        while (r >= 0 && (r = sd_bus_message_enter_container(m, 'e', "sv")) > 0) {
                r = format_entry(&l, filter, m);
                if (r >= 0)
                        r = sd_bus_message_exit_container(m);
        }
        if (r >= 0)
                r = sd_bus_message_exit_container(m);
        if (r >= 0 && !l.v && !(l.v = calloc(1, sizeof(char *))))
                r = -ENOMEM;
        if (r < 0) {
                strv_free(l.v);
                return r;
        }
        *ret = l.v;
        return 0;
}

/* ---- queries ---- */

static void query_free(UnitsQuery *q) {
        op_release(&q->op);
        free(q->name);
        free(q->path);
        free(q->property);
        free(q);
}

static void query_finish(Op *op, int error, const char *message) {
        UnitsQuery *q = (UnitsQuery *) op;

        if (op->done)
                return;
        op->done = true;
        op_release(op);
        if (q->kind == QUERY_PROPERTIES)
                q->props_cb(error, NULL, message, q->userdata);
        else
                q->u64_cb(error, 0, message, q->userdata);
        query_free(q);
}

static int on_query_reply(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        UnitsQuery *q = userdata;
        _cleanup_(units_unrefp) Units *ref = units_ref(q->op.units);
        int r;
        (void) ret_error;

        if (op_reply_failed(&q->op, q->name, m))
                return 0;

        if (q->kind == QUERY_PROPERTIES) {
                _cleanup_strv_free_ char **lines = NULL;

                r = units_format_properties(m, q->property, &lines);
                if (r < 0) {
                        _cleanup_free_ char *msg = NULL;

                        if (asprintf(&msg, "unit \"%s\": cannot read the properties the container's systemd sent: %s",
                                     q->name, strerror(-r)) < 0)
                                msg = NULL;
                        query_finish(&q->op, r, msg);
                        return 0;
                }
                q->op.done = true;
                op_release(&q->op);
                q->props_cb(0, lines, NULL, q->userdata);
        } else {
                uint64_t v;

                r = sd_bus_message_read(m, "v", "t", &v);
                if (r < 0) {
                        _cleanup_free_ char *msg = NULL;

                        if (asprintf(&msg, "unit \"%s\": property %s is not an unsigned 64-bit number", q->name,
                                     q->property) < 0)
                                msg = NULL;
                        query_finish(&q->op, -EINVAL, msg);
                        return 0;
                }
                q->op.done = true;
                op_release(&q->op);
                q->u64_cb(0, v, NULL, q->userdata);
        }
        query_free(q);
        return 0;
}

static int query_start(Units *u, QueryKind kind, const char *unit, const char *property, void *cb, void *userdata,
                       UnitsQuery **ret) {
        UnitsQuery *q;
        int r;

        if (!u || !unit || !cb || (kind == QUERY_U64 && !property))
                return -EINVAL;
        if (u->closing)
                return -ECANCELED;

        q = calloc(1, sizeof *q);
        if (!q)
                return -ENOMEM;
        q->op.finish = query_finish;
        q->kind = kind;
        if (kind == QUERY_PROPERTIES)
                q->props_cb = (units_properties_fn) cb;
        else
                q->u64_cb = (units_u64_fn) cb;
        q->userdata = userdata;
        op_link(u, &q->op);

        r = property && !(q->property = strdup(property)) ? -ENOMEM : 1;
        if (r > 0)
                r = op_name_unit(&q->op, unit, &q->name, &q->path);
        /* The object path loads the unit on demand, aliases included, as systemctl show relies on. */
        if (r > 0 && kind == QUERY_PROPERTIES)
                r = op_call(&q->op, q->name, q->path, DBUS_PROPERTIES, "GetAll", on_query_reply, "s", "");
        else if (r > 0)
                r = op_call(&q->op, q->name, q->path, DBUS_PROPERTIES, "Get", on_query_reply, "ss", SD_UNIT, property);
        if (r < 0) {
                query_free(q);
                return r;
        }
        if (ret)
                *ret = q;
        return 0;
}

int units_get_properties(Units *u, const char *unit, const char *property, units_properties_fn cb,
                         void *userdata, UnitsQuery **ret) {
        return query_start(u, QUERY_PROPERTIES, unit, property, (void *) cb, userdata, ret);
}

int units_get_u64(Units *u, const char *unit, const char *property, units_u64_fn cb, void *userdata,
                  UnitsQuery **ret) {
        return query_start(u, QUERY_U64, unit, property, (void *) cb, userdata, ret);
}

void units_query_cancel(UnitsQuery *q) {
        if (!q || q->op.done)
                return;
        q->op.done = true;
        query_free(q);
}
