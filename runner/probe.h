/* probe.h: does something listen in a node? connect() from inside its namespaces (a forked child
 * that enters them through nsenter.c), so the node needs no tool of its own; on sd-event. */
#pragma once

#include <stdbool.h>
#include <systemd/sd-event.h>

typedef struct Probe Probe;

typedef enum ProbeKind {
        PROBE_TCP,              /* addr: a host name (resolved with the node's /etc/hosts), an
                                 * address, or "localhost" (::1, then 127.0.0.1, as nc tries them) */
        PROBE_UNIX_STREAM,      /* addr: a socket's path in the node */
        PROBE_UNIX_DGRAM,
} ProbeKind;

/* Called once, from the event loop, after the probe is freed: listening is true if a connect()
 * succeeded (within 2 s each). */
typedef void (*probe_done_fn)(bool listening, void *userdata);

/* Starts a probe of addr (and port, for TCP) in the namespaces of the process pidfd refers to (a
 * container's leader; borrowed for the call only). SIGCHLD must be blocked. -errno if the child
 * could not be forked or watched. */
int probe_start(sd_event *e, int pidfd, ProbeKind kind, const char *addr, int port, probe_done_fn done,
                void *userdata, Probe **ret);

/* Kills the probe's child and frees it; done is not called. */
void probe_cancel(Probe *p);

/* ---- pure helpers, exposed for the unit tests ---- */

/* The namespaces a probe enters (CLONE_NEW* flags): the network, and the mounts when it needs a
 * path or the node's /etc/hosts (not for TCP to "localhost"). */
int probe_namespaces(ProbeKind kind, const char *addr);
