/* test_config.c: the driver JSON config: what a good file yields, and the exact message for
 * every way a file can be wrong. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "config.h"
#include "util.h"

static Config *parse_ok(const char *json) {
        Config *c = NULL;
        char *error = NULL;
        int r;

        r = config_parse_string(json, strlen(json), "config.json", &c, &error);
        if (r != 0)
                fail_msg("unexpected error %d: %s", r, error ?: "(none)");
        assert_null(error);
        assert_non_null(c);
        return c;
}

static void expect_error(const char *json, const char *message) {
        Config *c = (Config *) 0x1;
        char *error = NULL;

        assert_int_equal(config_parse_string(json, strlen(json), "config.json", &c, &error), -EINVAL);
        assert_null(c);
        assert_non_null(error);
        assert_string_equal(error, message);
        assert_null(strchr(error, '\n'));
        free(error);
}

static void expect_machine(const Config *c, size_t i, const char *name, const char *script, ConfigMachineKind kind) {
        assert_true(i < c->n_machines);
        assert_string_equal(c->machines[i].name, name);
        assert_string_equal(c->machines[i].start_script, script);
        assert_int_equal(c->machines[i].kind, kind);
}

/* The shape driver-configuration.nix writes. */
static void test_nixpkgs_config(void **state) {
        Config *c;
        (void) state;

        c = parse_ok("{\n"
                     "  \"containers\": {\n"
                     "    \"client\": {\"name\": \"client\", \"start_script\": \"/nix/store/aaa-client/bin/run-client-nspawn\"},\n"
                     "    \"server\": {\"name\": \"server\", \"start_script\": \"/nix/store/bbb-server/bin/run-server-nspawn\",\n"
                     "               \"display_targets\": [], \"display_exporters\": {}}\n"
                     "  },\n"
                     "  \"enable_ssh_backdoor\": true,\n"
                     "  \"global_timeout\": 1800,\n"
                     "  \"test_script\": \"/nix/store/ccc-test-script\",\n"
                     "  \"vlans\": [1, 7, 2, 7, 1],\n"
                     "  \"vms\": {\"router\": {\"name\": \"router\", \"start_script\": \"/nix/store/ddd-nixos-vm/bin/run-router-vm\"}},\n"
                     "  \"display_viewers\": {}\n"
                     "}\n");
        assert_int_equal(c->n_machines, 3);
        expect_machine(c, 0, "client", "/nix/store/aaa-client/bin/run-client-nspawn", CONFIG_CONTAINER);
        expect_machine(c, 1, "server", "/nix/store/bbb-server/bin/run-server-nspawn", CONFIG_CONTAINER);
        expect_machine(c, 2, "router", "/nix/store/ddd-nixos-vm/bin/run-router-vm", CONFIG_VM);
        assert_int_equal(c->n_vlans, 3);
        assert_int_equal(c->vlans[0], 1);
        assert_int_equal(c->vlans[1], 7);
        assert_int_equal(c->vlans[2], 2);
        assert_true(c->global_timeout == 1800.0);
        assert_true(c->enable_ssh_backdoor);
        assert_string_equal(c->test_script, "/nix/store/ccc-test-script");
        config_free(c);
}

static void test_defaults(void **state) {
        Config *c;
        (void) state;

        c = parse_ok("{}");
        assert_int_equal(c->n_machines, 0);
        assert_int_equal(c->n_vlans, 0);
        assert_true(c->global_timeout == 3600.0);
        assert_false(c->enable_ssh_backdoor);
        assert_null(c->test_script);
        config_free(c);

        c = parse_ok("{\"vms\": {}, \"containers\": {}, \"vlans\": [], \"enable_ssh_backdoor\": false}");
        assert_int_equal(c->n_machines, 0);
        assert_int_equal(c->n_vlans, 0);
        assert_false(c->enable_ssh_backdoor);
        config_free(c);
}

static void test_file_order_and_extras(void **state) {
        Config *c;
        (void) state;

        /* Keys in file order, not sorted; unknown keys anywhere are ignored; "name" may be
         * left out (the key is the name). */
        c = parse_ok("{\"future\": [1, {\"x\": null}],"
                     " \"vms\": {\"zeta\": {\"start_script\": \"/z\", \"extra\": 1}, \"alpha\": {\"name\": \"alpha\", \"start_script\": \"/a\"}},"
                     " \"containers\": {\"m_1-x\": {\"start_script\": \"rel/path\"}},"
                     " \"global_timeout\": 2.5}");
        assert_int_equal(c->n_machines, 3);
        expect_machine(c, 0, "zeta", "/z", CONFIG_VM);
        expect_machine(c, 1, "alpha", "/a", CONFIG_VM);
        expect_machine(c, 2, "m_1-x", "rel/path", CONFIG_CONTAINER);
        assert_true(c->global_timeout == 2.5);
        config_free(c);
}

static void test_vlans(void **state) {
        Config *c;
        (void) state;

        c = parse_ok("{\"vlans\": [0, 4095, 2.0, 4095, 0, 2]}");
        assert_int_equal(c->n_vlans, 3);
        assert_int_equal(c->vlans[0], 0);
        assert_int_equal(c->vlans[1], 4095);
        assert_int_equal(c->vlans[2], 2);
        config_free(c);

        /* A later "vlans" key cannot appear (duplicates are refused), so one list is all. */
        expect_error("{\"vlans\": {}}", "config.json: vlans: expected an array of VLAN numbers, got object");
        expect_error("{\"vlans\": 1}", "config.json: vlans: expected an array of VLAN numbers, got number");
        expect_error("{\"vlans\": [1, \"2\"]}", "config.json: vlans[1]: expected an integer from 0 to 4095, got string");
        expect_error("{\"vlans\": [1, 2, 2.5]}", "config.json: vlans[2]: expected an integer from 0 to 4095, got 2.5");
        expect_error("{\"vlans\": [-1]}", "config.json: vlans[0]: expected an integer from 0 to 4095, got -1");
        expect_error("{\"vlans\": [4096]}", "config.json: vlans[0]: expected an integer from 0 to 4095, got 4096");
        expect_error("{\"vlans\": [5000.0]}", "config.json: vlans[0]: expected an integer from 0 to 4095, got 5000");
        expect_error("{\"vlans\": [1e300]}", "config.json: vlans[0]: expected an integer from 0 to 4095, got 1e+300");
        expect_error("{\"vlans\": [true]}", "config.json: vlans[0]: expected an integer from 0 to 4095, got boolean");
        expect_error("{\"vlans\": [null]}", "config.json: vlans[0]: expected an integer from 0 to 4095, got null");
        expect_error("{\"vlans\": [[1]]}", "config.json: vlans[0]: expected an integer from 0 to 4095, got array");
}

static void test_scalars(void **state) {
        (void) state;

        expect_error("{\"global_timeout\": \"3600\"}", "config.json: global_timeout: expected a positive number of seconds, got string");
        expect_error("{\"global_timeout\": true}", "config.json: global_timeout: expected a positive number of seconds, got boolean");
        expect_error("{\"global_timeout\": 0}", "config.json: global_timeout: expected a positive number of seconds, got 0");
        expect_error("{\"global_timeout\": -3}", "config.json: global_timeout: expected a positive number of seconds, got -3");
        expect_error("{\"global_timeout\": -0.5}", "config.json: global_timeout: expected a positive number of seconds, got -0.5");
        expect_error("{\"global_timeout\": 1e10}", "config.json: global_timeout: 10000000000 seconds is too long (at most 1000000000)");
        expect_error("{\"enable_ssh_backdoor\": \"yes\"}", "config.json: enable_ssh_backdoor: expected true or false, got string");
        expect_error("{\"enable_ssh_backdoor\": 1}", "config.json: enable_ssh_backdoor: expected true or false, got number");
        expect_error("{\"enable_ssh_backdoor\": null}", "config.json: enable_ssh_backdoor: expected true or false, got null");
        expect_error("{\"test_script\": 7}", "config.json: test_script: expected a string (the test script's path), got number");
        expect_error("{\"test_script\": null}", "config.json: test_script: expected a string (the test script's path), got null");
        expect_error("{\"test_script\": \"\"}", "config.json: test_script: empty path");
}

static void test_machine_errors(void **state) {
        (void) state;

        expect_error("[]", "config.json: expected a JSON object at the top level, got array");
        expect_error("{\"vms\": []}",
                     "config.json: vms: expected an object mapping machine names to {\"name\", \"start_script\"}, got array");
        expect_error("{\"containers\": null}",
                     "config.json: containers: expected an object mapping machine names to {\"name\", \"start_script\"}, got null");
        expect_error("{\"vms\": {\"web\": \"/run-web-vm\"}}",
                     "config.json: vms.web: expected an object with \"name\" and \"start_script\", got string");
        expect_error("{\"containers\": {\"web\": {\"name\": 1, \"start_script\": \"/s\"}}}",
                     "config.json: containers.web.name: expected a string, got number");
        expect_error("{\"containers\": {\"web\": {\"name\": \"webx\", \"start_script\": \"/s\"}}}",
                     "config.json: containers.web.name: \"webx\" does not match the machine's key \"web\"");
        expect_error("{\"containers\": {\"web\": {\"name\": \"web\\n\", \"start_script\": \"/s\"}}}",
                     "config.json: containers.web.name: \"web\\n\" does not match the machine's key \"web\"");
        expect_error("{\"containers\": {\"web\": {\"name\": \"\x7f\\u0085\", \"start_script\": \"/s\"}}}",
                     "config.json: containers.web.name: \"\\u007F\\u0085\" does not match the machine's key \"web\"");
        expect_error("{\"containers\": {\"web\": {\"name\": \"web\"}}}",
                     "config.json: containers.web: missing \"start_script\" (the path of the machine's run-web-nspawn script)");
        expect_error("{\"vms\": {\"web\": {}}}",
                     "config.json: vms.web: missing \"start_script\" (the path of the machine's run-web-vm script)");
        expect_error("{\"containers\": {\"web\": {\"name\": \"web\", \"start_script\": 5}}}",
                     "config.json: containers.web.start_script: expected a string, got number");
        expect_error("{\"containers\": {\"web\": {\"name\": \"web\", \"start_script\": null}}}",
                     "config.json: containers.web.start_script: expected a string, got null");
        expect_error("{\"vms\": {\"web\": {\"start_script\": \"\"}}}",
                     "config.json: vms.web.start_script: empty path");
        expect_error("{\"vms\": {\"web\": {\"start_script\": \"/a\"}}, \"containers\": {\"ok\": {\"start_script\": \"/b\"}, \"web\": {\"start_script\": \"/c\"}}}",
                     "config.json: containers.web: the name \"web\" is already used by vms.web; machine names must be unique across vms and containers");
        expect_error("{\"containers\": {\"web\": {\"start_script\": \"/c\"}}, \"vms\": {\"web\": {\"start_script\": \"/a\"}}}",
                     "config.json: vms.web: the name \"web\" is already used by containers.web; machine names must be unique across vms and containers");
}

static void test_machine_names(void **state) {
        static const struct {
                const char *json_key;
                const char *shown;
        } bad[] = {
                { "", "\"\"" },
                { "a b", "\"a b\"" },
                { "-web", "\"-web\"" },
                { "a.b", "\"a.b\"" },
                { "a/b", "\"a/b\"" },
                { "a\\nb", "\"a\\nb\"" },
                { "\\u001b[31m", "\"\\u001B[31m\"" },
                { "caf\\u00e9", "\"caf\\u00E9\"" },
                /* jansson's ASCII mode keeps DEL; it is escaped all the same. */
                { "a\x7f", "\"a\\u007F\"" },
                { "0123456789012345678901234567890123456789012345678901234567890123",
                  "\"0123456789012345678901234567890123456789012345678901234567890123\"" },
        };
        const char *good63 = "012345678901234567890123456789012345678901234567890123456789012";
        _cleanup_free_ char *json = NULL;
        Config *c;
        (void) state;

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                _cleanup_free_ char *in = NULL, *msg = NULL;

                assert_true(asprintf(&in, "{\"vms\": {\"%s\": {\"start_script\": \"/s\"}}}", bad[i].json_key) > 0);
                assert_true(asprintf(&msg, "config.json: vms: invalid machine name %s: use 1 to 63 letters, digits, '_' and '-', not starting with '-'",
                                     bad[i].shown) > 0);
                expect_error(in, msg);
        }

        assert_true(asprintf(&json, "{\"containers\": {\"%s\": {\"start_script\": \"/s\"}, \"_x-\": {\"start_script\": \"/t\"}, \"9\": {\"start_script\": \"/u\"}}}",
                             good63) > 0);
        c = parse_ok(json);
        assert_int_equal(c->n_machines, 3);
        assert_string_equal(c->machines[0].name, good63);
        assert_string_equal(c->machines[1].name, "_x-");
        assert_string_equal(c->machines[2].name, "9");
        config_free(c);

        assert_true(config_machine_name_is_valid("web"));
        assert_true(config_machine_name_is_valid("_"));
        assert_true(config_machine_name_is_valid("a-"));
        assert_true(config_machine_name_is_valid(good63));
        assert_false(config_machine_name_is_valid(""));
        assert_false(config_machine_name_is_valid("-"));
        assert_false(config_machine_name_is_valid("a:b"));
        assert_false(config_machine_name_is_valid("0123456789012345678901234567890123456789012345678901234567890123"));
}

static void test_syntax_errors(void **state) {
        Config *c = NULL;
        char *error = NULL;
        (void) state;

        expect_error("{\"vms\": }", "config.json:1:9: unexpected token near '}'");
        expect_error("{\n  \"vms\": {\n    \"x\": 1\n  ,}\n}", "config.json:4:4: string or '}' expected near '}'");
        expect_error("", "config.json:1:0: '[' or '{' expected near end of file");
        expect_error("{\"a\": 1} x", "config.json:1:10: end of file expected near 'x'");
        expect_error("{\"vms\": {}, \"vms\": {}}", "config.json:1:17: duplicate object key near '\"vms\"'");
        expect_error("{\"a\": \"\\u0000\"}", "config.json:1:14: \\u0000 is not allowed without JSON_ALLOW_NUL near '\"\\u0000\"'");
        expect_error("{\"a\": \"\xff\"}", "config.json:1:7: unable to decode byte 0xff near '\"'");
        /* jansson quotes the input; a control byte in it must not reach the terminal raw. */
        expect_error("{\"a\": \x1b}", "config.json:1:7: invalid token near '\\x1b'");
        expect_error("{\"a\": \"\\\x1b\"}", "config.json:1:9: invalid escape near '\"\\\\x1b'");
        expect_error("{\"x\": 1e999}", "config.json:1:11: real number overflow near '1e999'");
        expect_error("{\"vlans\": [99999999999999999999]}", "config.json:1:31: too big integer near '99999999999999999999'");

        /* A NUL byte inside the given length is input, not the end of it. */
        assert_int_equal(config_parse_string("{}\0{}", 5, "config.json", &c, &error), -EINVAL);
        assert_null(c);
        assert_string_equal(error, "config.json:1:3: end of file expected near end of file");
        free(error);

        /* Without a file name the messages still say what they are about. */
        assert_int_equal(config_parse_string("{\"vms\": 1}", 10, NULL, &c, &error), -EINVAL);
        assert_string_equal(error,
                            "config: vms: expected an object mapping machine names to {\"name\", \"start_script\"}, got number");
        free(error);
}

static void test_deep_nesting(void **state) {
        _cleanup_free_ char *json = NULL;
        size_t depth = 100000;
        Config *c = NULL;
        char *error = NULL;
        (void) state;

        /* jansson limits depth; an ignored key must not be a stack overflow either. */
        json = malloc(depth * 2 + 16);
        assert_non_null(json);
        strcpy(json, "{\"x\": ");
        memset(json + 6, '[', depth);
        memset(json + 6 + depth, ']', depth);
        strcpy(json + 6 + 2 * depth, "}");
        assert_int_equal(config_parse_string(json, strlen(json), "deep.json", &c, &error), -EINVAL);
        assert_string_equal(error, "deep.json:1:2054: maximum parsing depth reached near '['");
        free(error);
}

/* Many machines and a long VLAN list stay linear: growing the array one machine at a
 * time took 14 s here under ASan. */
static void test_large(void **state) {
        size_t n = 20000, cap = 64 * n + 8 * 200000 + 64, len = 0;
        _cleanup_free_ char *json = malloc(cap);
        Config *c;
        (void) state;

        assert_non_null(json);
        len += (size_t) sprintf(json + len, "{\"vms\": {");
        for (size_t i = 0; i < n; i++)
                len += (size_t) sprintf(json + len, "%s\"v%zu\": {\"start_script\": \"/s\"}", i ? "," : "", i);
        len += (size_t) sprintf(json + len, "}, \"containers\": {");
        for (size_t i = 0; i < n; i++)
                len += (size_t) sprintf(json + len, "%s\"c%zu\": {\"start_script\": \"/s\"}", i ? "," : "", i);
        len += (size_t) sprintf(json + len, "}, \"vlans\": [");
        for (size_t i = 0; i < 200000; i++)
                len += (size_t) sprintf(json + len, "%s%zu", i ? "," : "", i % 4096);
        len += (size_t) sprintf(json + len, "]}");
        assert_true(len < cap);

        c = parse_ok(json);
        assert_int_equal(c->n_machines, 2 * n);
        assert_string_equal(c->machines[n - 1].name, "v19999");
        assert_string_equal(c->machines[n].name, "c0");
        assert_int_equal(c->n_vlans, 4096);
        assert_int_equal(c->vlans[4095], 4095);
        config_free(c);
}

typedef struct Fixture {
        char dir[32];
        char *path;
} Fixture;

static int file_setup(void **state) {
        Fixture *f = calloc(1, sizeof(Fixture));

        if (!f)
                return -1;
        strcpy(f->dir, "/tmp/test-config-XXXXXX");
        if (!mkdtemp(f->dir))
                return -1;
        *state = f;
        return asprintf(&f->path, "%s/driver.json", f->dir) < 0 ? -1 : 0;
}

static int file_teardown(void **state) {
        Fixture *f = *state;

        if (!f)
                return 0;
        (void) unlink(f->path);
        if (rmdir(f->dir) < 0)
                return -1;
        free(f->path);
        free(f);
        return 0;
}

static void write_file(const char *path, const char *text) {
        int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0644);

        assert_true(fd >= 0);
        assert_int_equal(write(fd, text, strlen(text)), (ssize_t) strlen(text));
        assert_int_equal(close(fd), 0);
}

static void test_load(void **state) {
        Fixture *f = *state;
        _cleanup_free_ char *msg = NULL, *missing = NULL, *pipe_path = NULL;
        Config *c = NULL;
        char *error = NULL;
        int p[2];

        write_file(f->path, "{\"containers\": {\"c1\": {\"name\": \"c1\", \"start_script\": \"/run-c1-nspawn\"}}, \"vlans\": [1]}\n");
        assert_int_equal(config_load(f->path, &c, &error), 0);
        assert_null(error);
        assert_int_equal(c->n_machines, 1);
        expect_machine(c, 0, "c1", "/run-c1-nspawn", CONFIG_CONTAINER);
        config_free(c);

        /* Errors name the file as given. */
        write_file(f->path, "{\"containers\": {\"web\": {\"name\": \"web\", \"start_script\": 1}}}");
        assert_int_equal(config_load(f->path, &c, &error), -EINVAL);
        assert_true(asprintf(&msg, "%s: containers.web.start_script: expected a string, got number", f->path) > 0);
        assert_string_equal(error, msg);
        free(error);
        free(msg);

        write_file(f->path, "{\n\"vms\": [\n");
        assert_int_equal(config_load(f->path, &c, &error), -EINVAL);
        assert_true(asprintf(&msg, "%s:3:0: ']' expected near end of file", f->path) > 0);
        assert_string_equal(error, msg);
        free(error);
        free(msg);

        /* Empty file. */
        write_file(f->path, "");
        assert_int_equal(config_load(f->path, &c, &error), -EINVAL);
        assert_true(asprintf(&msg, "%s:1:0: '[' or '{' expected near end of file", f->path) > 0);
        assert_string_equal(error, msg);
        free(error);
        free(msg);

        assert_true(asprintf(&missing, "%s/nope.json", f->dir) > 0);
        assert_int_equal(config_load(missing, &c, &error), -EINVAL);
        assert_true(asprintf(&msg, "%s: cannot open the config file: No such file or directory", missing) > 0);
        assert_string_equal(error, msg);
        free(error);
        free(msg);

        assert_int_equal(config_load(f->dir, &c, &error), -EINVAL);
        assert_true(asprintf(&msg, "%s: cannot read the config file: Is a directory", f->dir) > 0);
        assert_string_equal(error, msg);
        free(error);
        free(msg);
        msg = NULL;

        /* --config <(generator): a pipe, whose size is unknown up front. */
        assert_int_equal(pipe2(p, O_CLOEXEC), 0);
        assert_int_equal(write(p[1], "{\"global_timeout\": 60}", 22), 22);
        close(p[1]);
        assert_true(asprintf(&pipe_path, "/dev/fd/%d", p[0]) > 0);
        assert_int_equal(config_load(pipe_path, &c, &error), 0);
        close(p[0]);
        assert_true(c->global_timeout == 60.0);
        config_free(c);
}

static void test_load_too_big(void **state) {
        Fixture *f = *state;
        _cleanup_free_ char *msg = NULL;
        Config *c = NULL;
        char *error = NULL;

        write_file(f->path, "");
        assert_int_equal(truncate(f->path, 17 * 1024 * 1024), 0);
        assert_int_equal(config_load(f->path, &c, &error), -EINVAL);
        assert_true(asprintf(&msg, "%s: the config file is larger than 16 MiB; is it the right file?", f->path) > 0);
        assert_string_equal(error, msg);
        free(error);
}

static void expect_name(const char *path, const char *name) {
        char *n = NULL;

        if (!name) {
                assert_int_equal(config_machine_name_from_script(path, &n), -EINVAL);
                assert_null(n);
                return;
        }
        assert_int_equal(config_machine_name_from_script(path, &n), 0);
        assert_string_equal(n, name);
        free(n);
}

static void test_name_from_script(void **state) {
        (void) state;

        expect_name("/nix/store/abc-nixos-vm/bin/run-machine1-vm", "machine1");
        expect_name("/nix/store/abc-server-nspawn/bin/run-server-nspawn", "server");
        expect_name("run-a-b-vm", "a-b");
        expect_name("run-a-nspawn-vm", "a-nspawn");
        expect_name("run-x-vm-nspawn", "x-vm");
        /* re.search, not re.match: the leftmost "run-" wins. */
        expect_name("xrun-foo-vm", "foo");
        expect_name("run-a-run-b-vm", "a-run-b");
        /* Only the basename counts. */
        expect_name("/nix/store/run-x-vm/bin/qemu", NULL);
        expect_name("/nix/store/run-x/bin/y-vm", NULL);
        expect_name("run--vm", NULL);
        expect_name("run-vm", NULL);
        expect_name("run-x-vm/", NULL);
        expect_name("run-x-vmx", NULL);
        expect_name("run-x-VM", NULL);
        expect_name("", NULL);
        expect_name("run---vm", "-");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_nixpkgs_config),
                cmocka_unit_test(test_defaults),
                cmocka_unit_test(test_file_order_and_extras),
                cmocka_unit_test(test_vlans),
                cmocka_unit_test(test_scalars),
                cmocka_unit_test(test_machine_errors),
                cmocka_unit_test(test_machine_names),
                cmocka_unit_test(test_syntax_errors),
                cmocka_unit_test(test_deep_nesting),
                cmocka_unit_test(test_large),
                cmocka_unit_test_setup_teardown(test_load, file_setup, file_teardown),
                cmocka_unit_test_setup_teardown(test_load_too_big, file_setup, file_teardown),
                cmocka_unit_test(test_name_from_script),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
