/* hostcmd.h: a command run on the host, outside every node (copying files into the shared
 * directory): its start and the status its exit reports. */
#pragma once

#include <signal.h>
#include <sys/types.h>

/* Starts argv[0] (looked up in PATH) with argv and the environment. 0 or -errno. */
int hostcmd_spawn(char *const argv[], pid_t *ret_pid);

/* A child's exit as a shell reports it: its exit status, or 128 + the signal that killed it. */
int hostcmd_status(const siginfo_t *si);
