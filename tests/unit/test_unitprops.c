/* test_unitprops.c: `systemctl show` lines from a GetAll reply (runner/unitprops.c), with exact
 * expected text as systemctl 252 prints each kind of property. The replies are built here on a
 * bus that talks to nobody (a socketpair), since sd-bus builds messages only for a started bus. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <systemd/sd-bus.h>

#include "unitprops.h"
#include "util.h"

static sd_bus *bus;

static int setup(void **state) {
        int fds[2];
        setenv("TZ", "UTC", 1);
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) < 0 || sd_bus_new(&bus) < 0 ||
            sd_bus_set_fd(bus, fds[0], fds[0]) < 0 || sd_bus_start(bus) < 0)
                return -1;
        close(fds[1]);
        return 0;
}

static int teardown(void **state) {
        sd_bus_flush_close_unref(bus);
        return 0;
}

/* A GetAll-shaped message: the caller appends the {sv} entries between open and done. */
static sd_bus_message *reply_open(void) {
        sd_bus_message *m = NULL;
        assert_int_equal(sd_bus_message_new_signal(bus, &m, "/u", "org.example.Test", "Reply"), 0);
        assert_true(sd_bus_message_open_container(m, 'a', "{sv}") >= 0);
        return m;
}

static void entry_begin(sd_bus_message *m, const char *name, const char *sig) {
        assert_true(sd_bus_message_open_container(m, 'e', "sv") >= 0);
        assert_true(sd_bus_message_append(m, "s", name) >= 0);
        assert_true(sd_bus_message_open_container(m, 'v', sig) >= 0);
}

static void entry_end(sd_bus_message *m) {
        assert_true(sd_bus_message_close_container(m) >= 0);
        assert_true(sd_bus_message_close_container(m) >= 0);
}

#define ENTRY(m, name, sig, ...)                                                   \
        do {                                                                       \
                entry_begin(m, name, sig);                                         \
                assert_true(sd_bus_message_append(m, sig, __VA_ARGS__) >= 0);      \
                entry_end(m);                                                      \
        } while (0)

static char **format(sd_bus_message *m, const char *filter) {
        char **lines = NULL;
        assert_true(sd_bus_message_close_container(m) >= 0);
        assert_int_equal(sd_bus_message_seal(m, 1, 0), 0);
        assert_true(sd_bus_message_rewind(m, true) >= 0);
        assert_int_equal(unitprops_format(m, filter, &lines), 0);
        sd_bus_message_unref(m);
        return lines;
}

static void expect_lines(char **got, const char *const *want) {
        size_t i = 0;
        for (; want[i]; i++) {
                assert_non_null(got[i]);
                assert_string_equal(got[i], want[i]);
        }
        assert_null(got[i]);
        strv_free(got);
}

static void test_basic_types(void **state) {
        sd_bus_message *m = reply_open();
        ENTRY(m, "Id", "s", "a.service");
        ENTRY(m, "Description", "s", "");                        /* empty: left out */
        ENTRY(m, "RemainAfterExit", "b", 1);
        ENTRY(m, "Restart", "b", 0);
        ENTRY(m, "NRestarts", "u", 3);
        ENTRY(m, "UMask", "u", 022);
        ENTRY(m, "UID", "u", UINT32_MAX);                         /* unset id */
        ENTRY(m, "ExecMainStatus", "i", -2);
        ENTRY(m, "CPUQuotaPerSecUSec", "t", UINT64_MAX);          /* infinity */
        ENTRY(m, "TimeoutStartUSec", "t", (uint64_t) 90000000);
        ENTRY(m, "LimitNOFILE", "t", UINT64_MAX);
        ENTRY(m, "LimitNPROC", "t", (uint64_t) 4096);
        ENTRY(m, "ActiveEnterTimestamp", "t", (uint64_t) 1764867600000000);
        ENTRY(m, "InactiveExitTimestamp", "t", (uint64_t) 0);     /* never: empty, left out */
        ENTRY(m, "ActiveEnterTimestampMonotonic", "t", (uint64_t) 1234567);
        ENTRY(m, "Names", "as", 2, "a.service", "alias.service");
        expect_lines(format(m, NULL), (const char *const[]) {
                "Id=a.service",
                "RemainAfterExit=yes",
                "Restart=no",
                "NRestarts=3",
                "UMask=0022",
                "UID=[not set]",
                "ExecMainStatus=-2",
                "CPUQuotaPerSecUSec=infinity",
                "TimeoutStartUSec=1min 30s",
                "LimitNOFILE=infinity",
                "LimitNPROC=4096",
                "ActiveEnterTimestamp=Thu 2025-12-04 17:00:00 UTC",
                "ActiveEnterTimestampMonotonic=1234567",
                "Names=a.service alias.service",
                NULL,
        });
}

static void test_filter_prints_empty(void **state) {
        sd_bus_message *m = reply_open();
        ENTRY(m, "Id", "s", "a.service");
        ENTRY(m, "Description", "s", "");
        expect_lines(format(m, "Description"), (const char *const[]) { "Description=", NULL });

        m = reply_open();
        ENTRY(m, "Id", "s", "a.service");
        expect_lines(format(m, "NoSuchProperty"), (const char *const[]) { NULL });
}

static void test_exec_line(void **state) {
        sd_bus_message *m = reply_open();
        entry_begin(m, "ExecStart", "a(sasbttttuii)");
        assert_true(sd_bus_message_open_container(m, 'a', "(sasbttttuii)") >= 0);
        assert_true(sd_bus_message_open_container(m, 'r', "sasbttttuii") >= 0);
        assert_true(sd_bus_message_append(m, "s", "/bin/sleep") >= 0);
        assert_true(sd_bus_message_append(m, "as", 2, "sleep", "1") >= 0);
        assert_true(sd_bus_message_append(m, "bttttuii", 1, (uint64_t) 0, (uint64_t) 0, (uint64_t) 0,
                                          (uint64_t) 0, (uint32_t) 0, 0, 0) >= 0);
        assert_true(sd_bus_message_close_container(m) >= 0);
        assert_true(sd_bus_message_close_container(m) >= 0);
        entry_end(m);
        expect_lines(format(m, NULL), (const char *const[]) {
                "ExecStart={ path=/bin/sleep ; argv[]=sleep 1 ; ignore_errors=yes ; start_time=[n/a] ; "
                "stop_time=[n/a] ; pid=0 ; code=(null) ; status=0/0 }",
                NULL,
        });
}

static void test_not_a_dictionary(void **state) {
        sd_bus_message *m = NULL;
        char **lines = NULL;
        assert_int_equal(sd_bus_message_new_signal(bus, &m, "/u", "org.example.Test", "Reply"), 0);
        assert_true(sd_bus_message_append(m, "s", "not a dictionary") >= 0);
        assert_int_equal(sd_bus_message_seal(m, 1, 0), 0);
        assert_true(sd_bus_message_rewind(m, true) >= 0);
        assert_true(unitprops_format(m, NULL, &lines) < 0);
        assert_null(lines);
        sd_bus_message_unref(m);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_basic_types),
                cmocka_unit_test(test_filter_prints_empty),
                cmocka_unit_test(test_exec_line),
                cmocka_unit_test(test_not_a_dictionary),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
