/* test_hostimage.c: where a node's files go in the host image, and unit names for services. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "hostimage.h"
#include "util.h"

uint64_t now_usec(void) { return 0; }

static void assert_place(const char *path, int where, const char *rel) {
        const char *r = NULL;

        assert_int_equal(hostimage_file_place(path, &r), where);
        if (rel)
                assert_string_equal(r, rel);
}

static void test_file_place(void **state) {
        (void) state;
        assert_place("/etc/nginx/nginx.conf", 'e', "nginx/nginx.conf");
        assert_place("/etc//hosts", 'e', "hosts");
        assert_place("/var/lib/x", 'v', "lib/x");
        assert_place("/root/.bashrc", 'r', "root/.bashrc");
        assert_place("/etcetera/x", 'r', "etcetera/x");
        assert_place("/srv/www/index.html", 'r', "srv/www/index.html");
        assert_place("/usr/bin/x", -EROFS, NULL);
        assert_place("/usr", -EROFS, NULL);
        assert_place("/bin/x", -EROFS, NULL);
        assert_place("/lib64/x", -EROFS, NULL);
        assert_place("/tmp/x", -EROFS, NULL);
        assert_place("/run/x", -EROFS, NULL);
        assert_place("/proc/x", -EROFS, NULL);
        assert_place("/etc", -EISDIR, NULL);
        assert_place("/etc/", -EISDIR, NULL);
        assert_place("/", -EISDIR, NULL);
        assert_place("etc/x", -EINVAL, NULL);
        assert_place("/etc/../usr/bin/x", -EINVAL, NULL);
        assert_place("/root/./x", -EINVAL, NULL);
        assert_place("/root/..", -EINVAL, NULL);
        assert_place("/root/..x", 'r', "root/..x");
        assert_place(NULL, -EINVAL, NULL);
}

static void assert_unit(const char *service, const char *unit) {
        char *u = hostimage_unit_name(service);

        assert_non_null(u);
        assert_string_equal(u, unit);
        free(u);
}

static void test_unit_name(void **state) {
        (void) state;
        assert_unit("nginx", "nginx.service");
        assert_unit("nginx.service", "nginx.service");
        assert_unit("dbus.socket", "dbus.socket");
        assert_unit("fstrim.timer", "fstrim.timer");
        assert_unit("postgresql@15-main", "postgresql@15-main.service");
        assert_unit("a.b", "a.b.service");
        assert_unit(".service", ".service.service");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_file_place),
                cmocka_unit_test(test_unit_name),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
