/* test_container.c: the systemd-nspawn command line built from a node's configuration. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "container.h"
#include "util.h"

uint64_t now_usec(void) { return 0; }

static void assert_argv(char **v, const char *const *expected) {
        size_t i = 0;

        assert_non_null(v);
        for (; expected[i]; i++) {
                assert_non_null(v[i]);
                assert_string_equal(v[i], expected[i]);
        }
        assert_null(v[i]);
}

static void test_minimal(void **state) {
        ContainerConfig cfg = { .name = "server", .state_dir = "/s" };
        static const char *const expected[] = {
                "systemd-nspawn", "--quiet", "--boot", "--notify-ready=yes", "--keep-unit", "--register=no",
                "--private-network", "--console=read-only", "--link-journal=no", "--setenv=SYSTEMD_COLORS=0",
                "--directory=/s/root", "--machine=server", "--uuid=0123456789abcdef0123456789abcdef",
                "--hostname=server", "systemd.status_unit_format=name", NULL,
        };
        char **v = container_nspawn_argv(&cfg, "/s/root", "0123456789abcdef0123456789abcdef");

        (void) state;
        assert_argv(v, expected);
        strv_free(v);
}

static void test_full(void **state) {
        char *bind[] = { (char *) "/data:/mnt/data", NULL }, *bind_ro[] = { (char *) "/models:/models:norbind", NULL };
        char *devices[] = { (char *) "/dev/nvidia0", NULL }, *env[] = { (char *) "A=1", NULL };
        char *extra[] = { (char *) "--capability=all", NULL };
        ContainerConfig cfg = {
                .name = "gpu", .hostname = "gpu-host", .shared_dir = "/t/shared", .bind = bind, .bind_ro = bind_ro,
                .devices = devices, .env = env, .extra_args = extra,
        };
        static const char *const expected[] = {
                "systemd-nspawn", "--quiet", "--boot", "--notify-ready=yes", "--keep-unit", "--register=no",
                "--private-network", "--console=read-only", "--link-journal=no", "--setenv=SYSTEMD_COLORS=0",
                "--directory=/r", "--machine=gpu", "--hostname=gpu-host", "--bind=/t/shared:/tmp/shared",
                "--bind=/data:/mnt/data", "--bind-ro=/models:/models:norbind", "--bind=/dev/nvidia0",
                "--setenv=A=1", "--capability=all", "systemd.status_unit_format=name", NULL,
        };
        char **v = container_nspawn_argv(&cfg, "/r", NULL);

        (void) state;
        assert_argv(v, expected);
        strv_free(v);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_minimal),
                cmocka_unit_test(test_full),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
