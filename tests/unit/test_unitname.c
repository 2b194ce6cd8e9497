/* test_unitname.c: unit name normalisation, validation and object paths (runner/unitname.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-bus.h>

#include "unitname.h"

static void expect_norm(const char *in, const char *out) {
        char *s = NULL, *err = NULL;

        assert_int_equal(unitname_normalize(in, &s, &err), 0);
        assert_string_equal(s, out);
        assert_null(err);
        free(s);
}

static void expect_norm_error(const char *in, const char *message) {
        char *s = NULL, *err = NULL;

        assert_int_equal(unitname_normalize(in, &s, &err), -EINVAL);
        assert_null(s);
        assert_non_null(err);
        assert_string_equal(err, message);
        free(err);
}

static void test_suffix_rule(void **state) {
        (void) state;
        expect_norm("nginx", "nginx.service");
        expect_norm("nginx.service", "nginx.service");
        expect_norm("multi-user.target", "multi-user.target");
        expect_norm("foo@bar", "foo@bar.service");
        expect_norm("getty@tty1.service", "getty@tty1.service");
        expect_norm("dbus.socket", "dbus.socket");
        expect_norm("-.slice", "-.slice");
        expect_norm("user-1000.slice", "user-1000.slice");
        expect_norm("sys-subsystem-net-devices-eth0.device", "sys-subsystem-net-devices-eth0.device");
        /* An unknown "type" is part of the name, as in systemctl. */
        expect_norm("foo.bar", "foo.bar.service");
        expect_norm("foo.", "foo..service");
        expect_norm("a:b_c", "a:b_c.service");
        /* Escapes typed by the user stay as they are. */
        expect_norm("systemd-fsck@dev-disk-by\\x2duuid-1234.service",
                    "systemd-fsck@dev-disk-by\\x2duuid-1234.service");
        expect_norm("postgresql@15-main", "postgresql@15-main.service");
}

static void test_paths(void **state) {
        (void) state;
        expect_norm("/dev/sda", "dev-sda.device");
        expect_norm("/dev/disk/by-uuid/ab", "dev-disk-by\\x2duuid-ab.device");
        expect_norm("/sys/class/net/eth0", "sys-class-net-eth0.device");
        expect_norm("/dev", "dev.device");
        expect_norm("/", "-.mount");
        expect_norm("/home", "home.mount");
        expect_norm("/srv//my-data/./x/", "srv-my\\x2ddata-x.mount");
        expect_norm("/var/lib/.hidden", "var-lib-.hidden.mount");
        expect_norm("/.hidden", "\\x2ehidden.mount");
        expect_norm("/mnt/a b", "mnt-a\\x20b.mount");
        /* Not /dev: the prefix is compared by component. */
        expect_norm("/devices", "devices.mount");
        expect_norm_error("/a/../b",
                          "invalid unit name \"/a/../b\": a path must be absolute and normalised (no \"..\") "
                          "and give a unit name of at most 255 characters");
}

static void test_invalid(void **state) {
        char *s = NULL, longname[300];
        (void) state;

        expect_norm_error("", "invalid unit name \"\": it is empty");
        expect_norm_error("foo bar",
                          "invalid unit name \"foo bar\": character ' ' is not allowed "
                          "(use A-Z a-z 0-9 : _ . - @ \\, and \\xNN escapes for anything else)");
        expect_norm_error("nginx*",
                          "invalid unit name \"nginx*\": character '*' is not allowed "
                          "(use A-Z a-z 0-9 : _ . - @ \\, and \\xNN escapes for anything else)");
        expect_norm_error("a/b.service",
                          "invalid unit name \"a/b.service\": character '/' is not allowed "
                          "(use A-Z a-z 0-9 : _ . - @ \\, and \\xNN escapes for anything else)");
        expect_norm_error("caf\xc3\xa9",
                          "invalid unit name \"caf\xc3\xa9\": byte 0xc3 is not allowed "
                          "(use A-Z a-z 0-9 : _ . - @ \\, and \\xNN escapes for anything else)");
        expect_norm_error("tab\there",
                          "invalid unit name \"tab\there\": byte 0x09 is not allowed "
                          "(use A-Z a-z 0-9 : _ . - @ \\, and \\xNN escapes for anything else)");
        expect_norm_error(".service", "invalid unit name \".service\": there is nothing before the type suffix");
        expect_norm_error("@foo", "invalid unit name \"@foo\": there is nothing before the \"@\"");
        expect_norm_error("getty@",
                          "invalid unit name \"getty@\": it is a template; name an instance, such as \"foo@NAME.service\"");
        expect_norm_error("getty@.service",
                          "invalid unit name \"getty@.service\": it is a template; name an instance, such as "
                          "\"foo@NAME.service\"");

        /* 255 characters is the limit, suffix included. */
        memset(longname, 'a', sizeof longname);
        strcpy(longname + 247, ".service"); /* 247 + 8 = 255 */
        assert_int_equal(unitname_normalize(longname, &s, NULL), 0);
        assert_int_equal(strlen(s), 255);
        free(s);
        s = NULL;
        memset(longname, 'a', sizeof longname);
        longname[248] = 0; /* 248 + ".service" = 256 */
        assert_int_equal(unitname_normalize(longname, &s, NULL), -EINVAL);
        assert_null(s);
        assert_int_equal(unitname_normalize(NULL, &s, NULL), -EINVAL);
}

static void test_is_valid(void **state) {
        (void) state;
        assert_true(unitname_is_valid("nginx.service"));
        assert_true(unitname_is_valid("a@b@c.service"));
        assert_true(unitname_is_valid("x.scope"));
        assert_false(unitname_is_valid("nginx"));
        assert_false(unitname_is_valid("nginx.bogus"));
        assert_false(unitname_is_valid("a@.service"));
        assert_false(unitname_is_valid("@a.service"));
        assert_false(unitname_is_valid(""));
        assert_false(unitname_is_valid(NULL));
        assert_false(unitname_is_valid("a b.service"));
}

static void test_from_path(void **state) {
        char *s = NULL;
        (void) state;

        assert_int_equal(unitname_from_path("/run/user/0", ".mount", &s), 0);
        assert_string_equal(s, "run-user-0.mount");
        free(s);
        assert_int_equal(unitname_from_path("relative", ".mount", &s), -EINVAL);
        assert_int_equal(unitname_from_path("/x/..", ".mount", &s), -EINVAL);
}

static void expect_path(const char *unit, const char *path) {
        char *s = NULL, *ref = NULL;

        assert_int_equal(unitname_to_object_path(unit, &s), 0);
        assert_string_equal(s, path);
        /* And agree with libsystemd itself. */
        assert_true(sd_bus_path_encode("/org/freedesktop/systemd1/unit", unit, &ref) >= 0);
        assert_string_equal(s, ref);
        free(s);
        free(ref);
}

static void test_object_path(void **state) {
        (void) state;
        expect_path("nginx.service", "/org/freedesktop/systemd1/unit/nginx_2eservice");
        expect_path("multi-user.target", "/org/freedesktop/systemd1/unit/multi_2duser_2etarget");
        expect_path("getty@tty1.service", "/org/freedesktop/systemd1/unit/getty_40tty1_2eservice");
        expect_path("-.mount", "/org/freedesktop/systemd1/unit/_2d_2emount");
        expect_path("1x.service", "/org/freedesktop/systemd1/unit/_31x_2eservice");
        expect_path("x1.service", "/org/freedesktop/systemd1/unit/x1_2eservice");
        expect_path("dev-disk-by\\x2duuid-ab.device",
                    "/org/freedesktop/systemd1/unit/dev_2ddisk_2dby_5cx2duuid_2dab_2edevice");
        expect_path("user@0.service", "/org/freedesktop/systemd1/unit/user_400_2eservice");
        expect_path("", "/org/freedesktop/systemd1/unit/_");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_suffix_rule),
                cmocka_unit_test(test_paths),
                cmocka_unit_test(test_invalid),
                cmocka_unit_test(test_is_valid),
                cmocka_unit_test(test_from_path),
                cmocka_unit_test(test_object_path),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
