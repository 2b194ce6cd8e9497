/* units.h: a container's systemd (system or user manager), watched from the host over sd-bus on
 * the sd-event loop: wait_for_unit without polling, and `systemctl show` without a command. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

typedef struct Units Units;
typedef struct UnitsWait UnitsWait;
typedef struct UnitsQuery UnitsQuery;

/* How long "inactive, and no job anywhere" must hold before a wait gives up; see units.c. */
#define UNITS_IDLE_GRACE_USEC (100 * 1000ULL)

/* Connect to the systemd of the container whose leader (its PID 1, as seen from our PID
 * namespace) is `leader`: the manager's private socket /run/systemd/private (a direct
 * connection, no bus daemon), else the system bus socket. With `user` (a name from the
 * container's /etc/passwd, or a numeric uid), that user's manager instead:
 * /run/user/<uid>/systemd/private, else /run/user/<uid>/bus.
 * Nothing here waits on the manager: authentication finishes on the loop, and calls made
 * meanwhile are queued. The one blocking step: the private socket is connected by a short-lived
 * child inside the container's PID namespace (two forks, 2-3 ms measured on the 2-core CI VMs),
 * since systemd drops peers whose PID it cannot see.
 * Returns 0, or -ENOENT / -ECONNREFUSED when no socket listens yet (the manager is not up: retry
 * on a timer), -ESRCH when there is no such leader or the user is not in the container's
 * /etc/passwd, or another negative errno. */
int units_connect(sd_event *e, pid_t leader, const char *user, Units **ret);

/* The same for an explicit sd-bus address ("unix:path=..."). bus_client: the address is a bus
 * daemon (Hello, AddMatch, a sender filter), not systemd itself. gone_message: what a pending
 * call reports when the connection is lost. */
int units_connect_address(sd_event *e, const char *address, bool bus_client, const char *gone_message,
                          Units **ret);

Units *units_ref(Units *u);
/* Dropping the last reference closes the connection. Every wait or query still pending then gets
 * its callback, with -ECANCELED. */
Units *units_unref(Units *u);
/* False once the connection is lost (the container stopped or crashed). */
bool units_is_connected(Units *u);

/* Callbacks run exactly once per request, unless it was cancelled first; every error, including
 * a bad unit name and a lost connection, arrives through them, never synchronously. After the
 * callback returns the request is freed: forget the handle there. Strings passed are borrowed.
 *
 * units_wait_active() is the NixOS driver's wait_for_unit, driven by signals:
 *   0            ActiveState became "active" (active_state "active", message NULL)
 *   -EIO         `unit "x.service" reached state "failed"`
 *   -ENOENT      `unit "x.service" not found: it is inactive and there are no pending jobs`
 *   -ENODATA     `unit "x.service" is inactive and there are no pending jobs` (checked twice,
 *                UNITS_IDLE_GRACE_USEC apart; a load problem or mask is added in brackets)
 *   -EINVAL      a bad unit name (message from unitname_normalize)
 *   -ECONNRESET  "the container's systemd went away" (the connection was lost; if it closed before
 *                the manager ever answered, the message says it refused the connection)
 *   -ECANCELED   the Units was freed
 *   other        a D-Bus call failed; the message names the unit and the error.
 * Any other state ("activating", "deactivating", "reloading", inactive with some job still
 * queued in the manager) keeps waiting. There is no deadline here: the caller keeps one and
 * calls units_wait_cancel(). active_state is the last ActiveState seen, or NULL. */
typedef void (*units_wait_fn)(int error, const char *active_state, const char *message, void *userdata);
int units_wait_active(Units *u, const char *unit, units_wait_fn cb, void *userdata, UnitsWait **ret);
/* Cancel a pending wait without calling its callback. NULL, or a call from inside the wait's own
 * callback, is a no-op. */
void units_wait_cancel(UnitsWait *w);

/* `systemctl show UNIT` (property == NULL), or `systemctl show UNIT --property=P`: the unit's
 * properties of every interface as "Key=value" lines, formatted as systemctl 252 prints them
 * (yes/no, timestamps, time spans, Exec lines ...). Without a property empty values are left
 * out, as systemctl does without --all; with one, it is printed even when empty. A few rare
 * structured properties (MountImages, SocketBindAllow, credentials ...) are left out even when
 * set (see format_property() in units.c). A unit that does not exist
 * gives its LoadState=not-found properties, as systemctl does, not an error. properties is a
 * NULL-terminated list, borrowed for the callback. */
typedef void (*units_properties_fn)(int error, char **properties, const char *message, void *userdata);
int units_get_properties(Units *u, const char *unit, const char *property, units_properties_fn cb,
                         void *userdata, UnitsQuery **ret);

/* One unsigned 64-bit property of org.freedesktop.systemd1.Unit, raw: for instance
 * "ActiveEnterTimestampMonotonic" (CLOCK_MONOTONIC µs, shared with the host). */
typedef void (*units_u64_fn)(int error, uint64_t value, const char *message, void *userdata);
int units_get_u64(Units *u, const char *unit, const char *property, units_u64_fn cb, void *userdata,
                  UnitsQuery **ret);

/* As units_wait_cancel(), for queries. */
void units_query_cancel(UnitsQuery *q);

/* Pure helper, exposed for the fuzzer: the body of an org.freedesktop.DBus.Properties.GetAll reply
 * (a{sv}, m positioned at it) as the lines units_get_properties() hands out; only `filter` if
 * given. Returns 0 with *ret a NULL-terminated list, or a negative errno for a malformed body. */
int units_format_properties(sd_bus_message *m, const char *filter, char ***ret);
