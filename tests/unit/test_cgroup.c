/* test_cgroup.c: cgroup.c's pure part: reading /proc/PID/cgroup lines, the directory of a cgroup,
 * which names are a run's. No root, no cgroup written. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <cmocka.h>

#include "cgroup.h"
#include "util.h"

static void assert_line(const char *line, int kind, const char *path) {
        const char *p = NULL;

        assert_int_equal(cgroup_line_parse(line, &p), kind);
        if (kind)
                assert_string_equal(p, path);
}

static void test_line_parse(void **state) {
        (void) state;
        assert_line("0::/user.slice/session-1.scope", 1, "/user.slice/session-1.scope");
        assert_line("0::/", 1, "/");
        assert_line("1:name=systemd:/system.slice/ssh.service", 2, "/system.slice/ssh.service");
        assert_line("12:name=systemd:/", 2, "/");
        assert_line("4:memory:/user.slice", 0, NULL);
        assert_line("3:cpu,cpuacct:/", 0, NULL);
        assert_line("", 0, NULL);
        /* "10::" is a v1 hierarchy without controllers, not the unified one. */
        assert_line("10::/x", 0, NULL);
}

static void assert_dir(const char *mount, const char *path, const char *want) {
        _cleanup_free_ char *d = cgroup_dir_join(mount, path);

        assert_non_null(d);
        assert_string_equal(d, want);
}

static void test_dir_join(void **state) {
        (void) state;
        assert_dir("/sys/fs/cgroup", "/", "/sys/fs/cgroup");
        assert_dir("/sys/fs/cgroup", "/user.slice", "/sys/fs/cgroup/user.slice");
        assert_dir("/sys/fs/cgroup/unified", "/a/b", "/sys/fs/cgroup/unified/a/b");
        assert_dir("/sys/fs/cgroup/systemd", "", "/sys/fs/cgroup/systemd");
}

static void test_run_name(void **state) {
        (void) state;
        assert_true(cgroup_is_run_name("moonrig-0123456789abcdef"));
        assert_true(cgroup_is_run_name("moonrig-"));
        assert_false(cgroup_is_run_name("moonrig"));
        assert_false(cgroup_is_run_name("payload"));
        assert_false(cgroup_is_run_name("x-moonrig-1"));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_line_parse),
                cmocka_unit_test(test_dir_join),
                cmocka_unit_test(test_run_name),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
