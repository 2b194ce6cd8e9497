/* cgroup.h: a container's cgroup of its own, <our cgroup>/moonrig-<run>/<node> in each hierarchy
 * systemd-nspawn uses (the unified one, name=systemd's), and the sweep of those a killed run left. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#define CGROUP_RUN_PREFIX "moonrig-"

/* Makes <our cgroup>/moonrig-<run>/<node> in each hierarchy we may write to; ret[] gets their
 * directories (NULL where none: nspawn then runs in ours). The first call of a process removes
 * the moonrig-* trees without a process in them (cgroup_sweep). */
void cgroup_node_make(const char *node, char *ret[static 2]);

/* In a forked child, before exec: moves it into the node's cgroups (made again if a starting run
 * took them for a dead run's in the meantime). Async-signal-safe. */
void cgroup_node_join(char *const *cgroups, size_t n);

/* Once nspawn is gone: removes what its container's systemd left below the node's cgroups, the
 * node's cgroups, and the run's when it was the last; frees and clears cgroups[]. */
void cgroup_node_remove(char *cgroups[static 2]);

/* Removes the moonrig-* trees below our_dir that hold no process (a run killed with SIGKILL left
 * them); a live run's hold its nspawns and stay. A tree made in the last CGROUP_SWEEP_MIN_AGE
 * seconds stays too: a run that is starting beside us makes its directories before its first
 * process joins them, and must not lose them in between. */
#define CGROUP_SWEEP_MIN_AGE 60
void cgroup_sweep(const char *our_dir);

/* ---- pure helpers, exposed for the unit tests ---- */

/* A line of /proc/PID/cgroup: 1 for the unified hierarchy ("0::/path"), 2 for name=systemd's
 * ("N:name=systemd:/path"), *ret_path pointing into line at the path; 0 for any other. */
int cgroup_line_parse(const char *line, const char **ret_path);

/* The directory of cgroup path under mount: the root "/" is mount itself. NULL on ENOMEM. */
char *cgroup_dir_join(const char *mount, const char *path);

/* A directory name a run of ours makes below our cgroup. */
bool cgroup_is_run_name(const char *name);
