/* nsenter.h: enter a node's namespaces through a pidfd of a process inside them (a container's
 * leader): the runner's one pidfd_open and one setns, for exec.c's commands, units.c's connection
 * to a manager, the port probes and container.c. */
#pragma once

#include <sched.h>
#include <sys/types.h>

/* Every namespace a container has: what a command run in it enters. */
#define NSENTER_ALL (CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWNET | CLONE_NEWPID | CLONE_NEWCGROUP)

/* What a child of nsenter_fork that could not enter exits with. */
#define NSENTER_EXIT_FAILED 2

/* pidfd_open(2) (a pidfd is close-on-exec); -errno, -ESRCH when there is no such process. */
int nsenter_pidfd_open(pid_t pid);

/* Moves the calling process into the namespaces `nstypes` (CLONE_NEW* flags) of the process that
 * pidfd refers to, all of them or none (setns(2) with a pidfd). CLONE_NEWPID takes effect for the
 * children created after it. Async-signal-safe: meant for a child between fork and exec, or a
 * short-lived clone. 0 or -errno. */
int nsenter_enter(int pidfd, int nstypes);

/* Forks a child inside those namespaces: the child's PID in the parent (-errno if fork failed), 0 in
 * the child, which has entered them; a child that could not exits at once with NSENTER_EXIT_FAILED. */
pid_t nsenter_fork(int pidfd, int nstypes);
