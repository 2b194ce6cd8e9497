/* child.h: what every process the runner forks to run a machine does first. */
#pragma once

#include <sys/types.h>

/* In a child just forked (parent: the runner's PID, taken before the fork): dies with the runner
 * (and exits 127 at once if the runner is already gone), leads a session of its own (a Ctrl-C on
 * our terminal must not reach it, and its tree can be killed as one), default signal handlers,
 * none blocked. Async-signal-safe. */
void child_detach(pid_t parent);
