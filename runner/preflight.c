/* preflight.c: host checks before containers boot: systemd-nspawn on PATH, and enough free inotify
 * instances (past the limit a container's systemd fails with "Too many open files"). */
#define _GNU_SOURCE
#include <limits.h>
#include <sys/inotify.h>
#include <sys/resource.h>

#include "preflight.h"
#include "util.h"


/* ---- pure helpers ---- */

unsigned long preflight_inotify_want(unsigned n_containers) {
        return (unsigned long) n_containers * PREFLIGHT_INOTIFY_PER_CONTAINER + PREFLIGHT_INOTIFY_MARGIN;
}

unsigned long preflight_inotify_need(unsigned long limit, unsigned long want, unsigned long headroom) {
        return limit + (want - headroom);
}

char *preflight_inotify_raised_message(unsigned long need, unsigned n_containers, long headroom) {
        char *m;

        if (asprintf(&m,
                     "raised fs.inotify.max_user_instances to %lu for %u containers (%ld were free: "
                     "other containers and daemons hold the rest; a global setting, it stays "
                     "until reboot or until set back with sysctl)",
                     need, n_containers, headroom) < 0)
                return NULL;
        return m;
}

char *preflight_inotify_short_message(unsigned long limit, long headroom, unsigned n_containers, unsigned long need) {
        char *m;

        if (asprintf(&m,
                     "fs.inotify.max_user_instances is %lu and only %ld are free, too few for %u containers "
                     "(about %d each); raise it as root: sysctl -w fs.inotify.max_user_instances=%lu",
                     limit, headroom, n_containers, PREFLIGHT_INOTIFY_PER_CONTAINER, need) < 0)
                return NULL;
        return m;
}

/* ---- the host ---- */

bool preflight_find_in_path(const char *name, char *buf, size_t size) {
        const char *path = getenv("PATH");
        _cleanup_free_ char *copy = strdup(path && *path ? path : PREFLIGHT_DEFAULT_PATH);
        char *save = NULL;

        if (!copy)
                return false;
        for (char *d = strtok_r(copy, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
                snprintf(buf, size, "%s/%s", d, name);
                if (access(buf, X_OK) == 0)
                        return true;
        }
        return false;
}

int preflight_inotify_limit(unsigned long *ret) {
        _cleanup_fclose_ FILE *f = fopen(PREFLIGHT_INOTIFY_SYSCTL, "re");

        if (!f)
                return -errno;
        return fscanf(f, "%lu", ret) == 1 ? 0 : -EIO;
}

/* How many more inotify instances this user may create now, counted up to max. The limit is per user
 * and machine-wide: other runs' containers and the host's daemons hold some, and nothing tells how
 * many (our /proc may show this run's processes only). Creating them is the one exact count; they are
 * closed at once. */
static long inotify_headroom(long max) {
        _cleanup_free_ int *fds = calloc(max > 0 ? max : 1, sizeof(int));
        struct rlimit old, lifted;
        long n = 0;
        int error = 0;

        if (!fds)
                return -ENOMEM;
        /* Our own descriptor limit says EMFILE too: lift it for the count. */
        if (getrlimit(RLIMIT_NOFILE, &old) < 0)
                return -errno;
        lifted = (struct rlimit) { .rlim_cur = old.rlim_max, .rlim_max = old.rlim_max };
        (void) setrlimit(RLIMIT_NOFILE, &lifted);
        while (n < max) {
                int fd = inotify_init1(IN_CLOEXEC);
                if (fd < 0) {
                        error = errno;
                        break;
                }
                fds[n++] = fd;
        }
        for (long i = 0; i < n; i++)
                close(fds[i]);
        (void) setrlimit(RLIMIT_NOFILE, &old);
        return error != 0 && error != EMFILE ? -error : n;
}

int preflight_containers(unsigned n_containers, char **ret_message) {
        unsigned long limit, need, want = preflight_inotify_want(n_containers);
        char path[PATH_MAX];
        _cleanup_fclose_ FILE *f = NULL;
        long headroom;
        int r;

        if (!preflight_find_in_path("systemd-nspawn", path, sizeof path)) {
                if (ret_message)
                        *ret_message = strdup("systemd-nspawn not found in PATH: containers need it; install it "
                                              "(apt-get install systemd-container)");
                return -ENOENT;
        }
        r = preflight_inotify_limit(&limit);
        if (r < 0)
                return 0;   /* no such sysctl: nothing we can check */
        headroom = inotify_headroom((long) want);
        if (headroom < 0 || (unsigned long) headroom >= want)
                return 0;
        need = preflight_inotify_need(limit, want, (unsigned long) headroom);

        /* Each container needs about 9 inotify instances (8 for its systemd, one for our journal
         * follower); past the limit its systemd fails with "Too many open files": it never becomes
         * ready, or comes up without its path units. */
        f = fopen(PREFLIGHT_INOTIFY_SYSCTL, "we");
        if (f) {
                fprintf(f, "%lu\n", need);
                if (fclose(TAKE_PTR(f)) == 0 && preflight_inotify_limit(&limit) >= 0 && limit >= need) {
                        if (ret_message)
                                *ret_message = preflight_inotify_raised_message(need, n_containers, headroom);
                        return 1;
                }
        }
        if (ret_message)
                *ret_message = preflight_inotify_short_message(limit, headroom, n_containers, need);
        return -EMFILE;
}
