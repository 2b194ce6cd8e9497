/* preflight.h: host checks before containers boot: systemd-nspawn on PATH, and enough inotify
 * instances free under fs.inotify.max_user_instances (the one limit that fails a boot silently). */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/* About 8 for a container's systemd, one for our journal follower. */
#define PREFLIGHT_INOTIFY_PER_CONTAINER 9
#define PREFLIGHT_INOTIFY_MARGIN 32     /* for what else starts meanwhile */
#define PREFLIGHT_INOTIFY_SYSCTL "/proc/sys/fs/inotify/max_user_instances"

/* Before booting n containers: systemd-nspawn must exist, and as many inotify instances as n more
 * containers need (about 9 each) must be free under fs.inotify.max_user_instances, counting those
 * that other containers and daemons hold (it creates them to count, and closes them at once): if too
 * few are, the limit is raised by the shortfall (a global setting: the message says so). Returns 0, 1
 * if it raised the limit, or a negative errno; with a message in *ret_message (free it) in the last
 * two cases. */
int preflight_containers(unsigned n_containers, char **ret_message);

/* fs.inotify.max_user_instances now; -errno if it cannot be read. */
int preflight_inotify_limit(unsigned long *ret);

/* The PATH systemd-nspawn is looked for and run with when ours is unset. */
#define PREFLIGHT_DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

/* Finds an executable on $PATH (PREFLIGHT_DEFAULT_PATH when unset): its path in buf. */
bool preflight_find_in_path(const char *name, char *buf, size_t size);

/* ---- pure helpers, exposed for the unit tests ---- */

/* How many inotify instances n containers want free. */
unsigned long preflight_inotify_want(unsigned n_containers);

/* What the limit must become when only headroom of want are free under limit (the limit counts
 * what others hold too: it rises by what we lack). */
unsigned long preflight_inotify_need(unsigned long limit, unsigned long want, unsigned long headroom);

/* The messages: the limit was raised to need; or it is too low and could not be raised. NULL on
 * ENOMEM. */
char *preflight_inotify_raised_message(unsigned long need, unsigned n_containers, long headroom);
char *preflight_inotify_short_message(unsigned long limit, long headroom, unsigned n_containers, unsigned long need);
