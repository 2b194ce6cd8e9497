/* sandbox.h: run moonrig in its own PID, mount and network namespaces, so that whatever it
 * starts dies with it, even when it is SIGKILLed. */
#pragma once

/* Forks. Returns 0 in the child, which is PID 1 of a new PID namespace with a private mount
 * namespace (fresh /proc) and a new network namespace with lo up. The parent never returns:
 * it relays signals to the child and exits with the child's status. Negative errno when the
 * namespaces cannot be made (then nothing was forked). */
int sandbox_enter(void);

/* True when sandbox_enter() succeeded in this process. */
int sandbox_active(void);
