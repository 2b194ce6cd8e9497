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

#include "nsenter.h"
#include "unitname.h"
#include "unitprops.h"
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
        _cleanup_close_ int pidfd = -1, pair0 = -1, pair1 = -1;
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int pair[2], err = 0, fd = -1, status;
        pid_t pid;

        if (strlen(path) >= sizeof sa.sun_path)
                return -ENAMETOOLONG;
        memcpy(sa.sun_path, path, strlen(path) + 1);
        pidfd = nsenter_pidfd_open(leader);
        if (pidfd < 0)
                return pidfd;   /* -ESRCH, no such leader: not worth a retry */
        if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, pair) < 0)
                return -errno;
        pair0 = pair[0];
        pair1 = pair[1];

        pid = fork();
        if (pid < 0)
                return -errno;
        if (pid == 0) {
                pid_t c;

                err = -nsenter_enter(pidfd, CLONE_NEWPID);
                if (err > 0) {
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

                r = unitprops_format(m, q->property, &lines);
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
