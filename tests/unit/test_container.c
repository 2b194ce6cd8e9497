/* test_container.c: the systemd-nspawn command line built from a node's configuration, a start
 * script's command line and environment, the node name check, and the node's env set over a login
 * environment. */
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
        char **v = container_nspawn_argv(&cfg, "/s/root", "0123456789abcdef0123456789abcdef", false);

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
        char **v = container_nspawn_argv(&cfg, "/r", NULL, false);

        (void) state;
        assert_argv(v, expected);
        strv_free(v);
}

static void test_nixos_system(void **state) {
        char *bind[] = { (char *) "/data:/mnt/data", NULL }, *env[] = { (char *) "A=1", NULL };
        ContainerConfig cfg = {
                .name = "machine", .system = "/nix/store/0000-nixos-system-machine-26.05", .shared_dir = "/t/shared",
                .bind = bind, .env = env,
        };
        static const char *const expected[] = {
                "systemd-nspawn", "--quiet", "--notify-ready=yes", "--keep-unit", "--register=no",
                "--private-network", "--console=read-only", "--link-journal=no", "--setenv=SYSTEMD_COLORS=0",
                "--directory=/s/root", "--machine=machine", "--uuid=0123456789abcdef0123456789abcdef",
                "--hostname=machine", "--kill-signal=SIGRTMIN+3", "--bind-ro=/nix/store",
                "--bind=/t/shared:/tmp/shared", "--bind=/data:/mnt/data",
                "--setenv=A=1", "/nix/store/0000-nixos-system-machine-26.05/init", "systemd.status_unit_format=name",
                "systemd.show_status=error", NULL,
        };
        /* With the journal followed, as here. */
        char **v = container_nspawn_argv(&cfg, "/s/root", "0123456789abcdef0123456789abcdef", true);

        (void) state;
        assert_argv(v, expected);
        strv_free(v);
}

static void test_script_argv(void **state) {
        char *bind_ro[] = { (char *) "/models:/models", NULL }, *devices[] = { (char *) "/dev/nvidia0", NULL };
        char *extra[] = { (char *) "--capability=all", NULL };
        ContainerConfig plain = { .name = "client", .start_script = "/nix/store/x-client/bin/run-client-nspawn" };
        ContainerConfig full = {
                .name = "gpu", .start_script = "/nix/store/x-gpu/bin/run-gpu-nspawn", .shared_dir = "/t/shared",
                .bind_ro = bind_ro, .devices = devices, .extra_args = extra,
        };
        static const char *const expected_plain[] = { "/nix/store/x-client/bin/run-client-nspawn", NULL };
        static const char *const expected_full[] = {
                "/nix/store/x-gpu/bin/run-gpu-nspawn", "--bind-ro=/models:/models", "--bind=/dev/nvidia0",
                "--capability=all", NULL,
        };
        char **v = container_script_argv(&plain);

        (void) state;
        assert_argv(v, expected_plain);
        strv_free(v);
        v = container_script_argv(&full);
        assert_argv(v, expected_full);
        strv_free(v);
}

static void test_script_env(void **state) {
        static const char *const with_shared[] = {
                "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "RUN_NSPAWN_ROOT_DIR=/run/moonrig/vm-state-client",
                "RUN_NSPAWN_SHARED_DIR=/run/moonrig/shared-xchg", "NOTIFY_SOCKET=@moonrig/1/0/ab", NULL,
        };
        static const char *const without[] = {
                "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "RUN_NSPAWN_ROOT_DIR=/s", "NOTIFY_SOCKET=/tmp/n.sock", NULL,
        };
        char **v = container_script_env("/run/moonrig/vm-state-client", "/run/moonrig/shared-xchg", "@moonrig/1/0/ab");

        (void) state;
        assert_argv(v, with_shared);
        strv_free(v);
        v = container_script_env("/s", NULL, "/tmp/n.sock");
        assert_argv(v, without);
        strv_free(v);
}

static void test_name(void **state) {
        (void) state;
        assert_true(container_name_is_valid("a"));
        assert_true(container_name_is_valid("web-1_b.example"));
        assert_true(container_name_is_valid("0client"));
        assert_true(container_name_is_valid("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"));   /* 64 */
        assert_false(container_name_is_valid("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")); /* 65 */
        assert_false(container_name_is_valid(""));
        assert_false(container_name_is_valid(NULL));
        assert_false(container_name_is_valid("-web"));
        assert_false(container_name_is_valid(".web"));
        assert_false(container_name_is_valid("_web"));
        assert_false(container_name_is_valid("web."));
        assert_false(container_name_is_valid("a..b"));
        assert_false(container_name_is_valid("a/b"));
        assert_false(container_name_is_valid("a b"));
        assert_false(container_name_is_valid("caf\xc3\xa9"));
}

static char **strv_of(const char *const *v) {
        size_t n = 0;
        char **w;

        while (v[n])
                n++;
        w = calloc(n + 1, sizeof(char *));
        assert_non_null(w);
        for (size_t i = 0; i < n; i++)
                assert_non_null(w[i] = strdup(v[i]));
        return w;
}

static void test_env_merge(void **state) {
        static const char *const login[] = { "PATH=/usr/bin:/bin", "HOME=/root", "LANG=C", "PATHX=1", NULL };
        char *add[] = {
                (char *) "LANG=C.UTF-8", (char *) "PATH=/opt/bin", (char *) "NOEQUALS", (char *) "EMPTY=",
                (char *) "NEW=a=b", (char *) "NEW=second", NULL,
        };
        static const char *const expected[] = {
                "PATH=/opt/bin", "HOME=/root", "LANG=C.UTF-8", "PATHX=1", "EMPTY=", "NEW=second", NULL,
        };
        static const char *const from_nothing[] = { "A=1", NULL };
        char *one[] = { (char *) "A=1", NULL };
        char **env = strv_of(login), **none = NULL;

        (void) state;
        assert_int_equal(container_env_merge(&env, add), 0);
        assert_argv(env, expected);
        /* Nothing to add: unchanged. */
        assert_int_equal(container_env_merge(&env, NULL), 0);
        assert_argv(env, expected);
        strv_free(env);
        assert_int_equal(container_env_merge(&none, one), 0);
        assert_argv(none, from_nothing);
        strv_free(none);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_minimal),
                cmocka_unit_test(test_full),
                cmocka_unit_test(test_nixos_system),
                cmocka_unit_test(test_script_argv),
                cmocka_unit_test(test_script_env),
                cmocka_unit_test(test_name),
                cmocka_unit_test(test_env_merge),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
