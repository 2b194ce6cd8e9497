/* sandbox.h: run moonrig in its own PID, mount and network namespaces, so that whatever it
 * starts dies with it, even when it is SIGKILLed. */
#pragma once

/* Forks twice. Returns 0 in the grandchild, PID 2 of a new PID namespace with a private mount
 * namespace (fresh /proc, a tmpfs on /run) and a new network namespace with lo up. PID 1 there
 * reaps the orphans of the run, so moonrig reaps only the processes it started. The two
 * processes above never return: they relay signals down and exit with moonrig's status.
 * Negative errno when the namespaces cannot be made (then the caller may be PID 1, with no
 * moonrig below it: it should report and exit). */
int sandbox_enter(void);

/* True when sandbox_enter() succeeded in this process. */
int sandbox_active(void);
