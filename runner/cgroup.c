/* cgroup.c: a cgroup of its own for each container, and the sweep of those a killed run left.
 * With --keep-unit, nspawn moves its container into "<the cgroup nspawn runs in>/payload" (and itself
 * into ".../supervisor"). Started from our cgroup, every container of the run, and of any other run
 * started from the same cgroup (the root cgroup of a host without systemd), would share that payload:
 * their systemds would manage one cgroup tree, each removing unit cgroups the others had just made
 * ("Failed to attach 26 to compat systemd cgroup /system.slice/dbus.service: No such file or
 * directory", units failing at random). So each nspawn
 * starts in <our cgroup>/moonrig-<run>/<node>, a start script's keeper, script and nspawn alike. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <sys/stat.h>
#include <time.h>
#include <systemd/sd-id128.h>

#include "cgroup.h"
#include "util.h"

/* ---- pure helpers ---- */

int cgroup_line_parse(const char *line, const char **ret_path) {
        const char *p;

        if (startswith(line, "0::")) {
                *ret_path = line + 3;
                return 1;
        }
        if ((p = strstr(line, ":name=systemd:"))) {
                *ret_path = p + strlen(":name=systemd:");
                return 2;
        }
        return 0;
}

char *cgroup_dir_join(const char *mount, const char *path) {
        char *d;

        if (asprintf(&d, "%s%s", mount, streq(path, "/") ? "" : path) < 0)
                return NULL;
        return d;
}

bool cgroup_is_run_name(const char *name) {
        return startswith(name, CGROUP_RUN_PREFIX);
}

/* ---- the hierarchies ---- */

static const char *cgroup_unified_mount(void) {
        if (access("/sys/fs/cgroup/unified/cgroup.procs", F_OK) == 0)
                return "/sys/fs/cgroup/unified";   /* hybrid */
        if (access("/sys/fs/cgroup/cgroup.procs", F_OK) == 0)
                return "/sys/fs/cgroup";
        return NULL;
}

/* Our cgroup's directory in each hierarchy nspawn uses (the unified one, name=systemd's); returns how
 * many. */
static size_t cgroup_our_dirs(char *dirs[static 2]) {
        _cleanup_fclose_ FILE *f = fopen("/proc/self/cgroup", "re");
        char line[PATH_MAX];
        size_t n = 0;

        while (f && n < 2 && fgets(line, sizeof line, f)) {
                const char *mount = NULL, *path = NULL;

                line[strcspn(line, "\n")] = '\0';
                switch (cgroup_line_parse(line, &path)) {
                case 1:
                        mount = cgroup_unified_mount();
                        break;
                case 2:
                        mount = "/sys/fs/cgroup/systemd";
                        break;
                }
                if (!mount || !path || access(mount, F_OK) < 0)
                        continue;
                dirs[n] = cgroup_dir_join(mount, path);
                if (!dirs[n])
                        break;
                n++;
        }
        return n;
}

/* ---- the sweep ---- */

static bool cgroup_populated;

static int note_populated(const char *path, const struct stat *st _unused_, int type, struct FTW *f _unused_) {
        char procs[PATH_MAX], c;
        _cleanup_close_ int fd = -1;

        if (type != FTW_D)
                return 0;
        snprintf(procs, sizeof procs, "%s/cgroup.procs", path);
        fd = open(procs, O_RDONLY | O_CLOEXEC);
        /* Unreadable: count it as a live run's, to be left alone. */
        if (fd < 0 || read(fd, &c, 1) != 0) {
                cgroup_populated = true;
                return 1;
        }
        return 0;
}

static int rmdir_one(const char *path, const struct stat *st _unused_, int type, struct FTW *f _unused_) {
        if (type == FTW_DP)
                (void) rmdir(path);
        return 0;
}

/* What a container's systemd made below (rmdir fails on a cgroup that still holds a process). */
static void cgroup_remove_tree(const char *dir) {
        (void) nftw(dir, rmdir_one, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
}

/* Removing the empty unit cgroups of a live run's containers is the very trouble we avoid. */
void cgroup_sweep(const char *our_dir) {
        _cleanup_closedir_ DIR *d = opendir(our_dir);
        struct dirent *de;

        while (d && (de = readdir(d))) {
                _cleanup_free_ char *run = NULL;

                struct stat st;

                if (de->d_type != DT_DIR || !cgroup_is_run_name(de->d_name) ||
                    asprintf(&run, "%s/%s", our_dir, de->d_name) < 0)
                        continue;
                if (stat(run, &st) < 0 || time(NULL) - st.st_mtime < CGROUP_SWEEP_MIN_AGE)
                        continue;
                cgroup_populated = false;
                if (nftw(run, note_populated, 16, FTW_PHYS | FTW_MOUNT) < 0 || cgroup_populated)
                        continue;
                cgroup_remove_tree(run);
        }
}

/* ---- a node's cgroups ---- */

void cgroup_node_make(const char *node_name, char *ret[static 2]) {
        static char run_id[17];
        char *dirs[2] = {};
        size_t n = cgroup_our_dirs(dirs);
        sd_id128_t id;

        if (!run_id[0]) {
                for (size_t i = 0; i < n; i++)
                        cgroup_sweep(dirs[i]);
                if (sd_id128_randomize(&id) >= 0)
                        snprintf(run_id, sizeof run_id, "%016" PRIx64, id.qwords[0]);
        }
        for (size_t i = 0, k = 0; i < n; i++) {
                _cleanup_free_ char *run = NULL, *node = NULL;

                if (run_id[0] && asprintf(&run, "%s/" CGROUP_RUN_PREFIX "%s", dirs[i], run_id) >= 0 &&
                    asprintf(&node, "%s/%s", run, node_name) >= 0 && (mkdir(run, 0755) >= 0 || errno == EEXIST) &&
                    (mkdir(node, 0755) >= 0 || errno == EEXIST))
                        ret[k++] = TAKE_PTR(node);
                free(dirs[i]);
        }
}

void cgroup_node_join(char *const *cgroups, size_t n) {
        char path[PATH_MAX];

        for (size_t i = 0; i < n && cgroups[i]; i++) {
                char *slash;
                int fd;

                snprintf(path, sizeof path, "%s", cgroups[i]);
                slash = strrchr(path, '/');
                *slash = '\0';
                (void) mkdir(path, 0755);
                *slash = '/';
                (void) mkdir(path, 0755);
                snprintf(path, sizeof path, "%s/cgroup.procs", cgroups[i]);
                fd = open(path, O_WRONLY | O_CLOEXEC);
                if (fd < 0)
                        continue;
                (void) !write(fd, "0", 1);
                close(fd);
        }
}

void cgroup_node_remove(char *cgroups[static 2]) {
        for (size_t i = 0; i < 2; i++) {
                _cleanup_free_ char *cg = TAKE_PTR(cgroups[i]);

                if (!cg)
                        continue;
                cgroup_remove_tree(cg);
                *strrchr(cg, '/') = '\0';
                (void) rmdir(cg);
        }
}
