/* test_logfmt.c: exact terminal lines for every kind, with and without colour, and what
 * becomes of control bytes and broken UTF-8 from a guest console. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <cmocka.h>

#include "logfmt.h"
#include "util.h"

#define G "\033[1;32m"
#define Y "\033[33m"
#define R "\033[31m"
#define D "\033[2m"
#define Z "\033[0m"

static char *fmt(LogKind kind, const char *machine, const char *msg, uint64_t usec, bool colour) {
        LogfmtEntry e = { .kind = kind, .machine = machine, .msg = msg, .elapsed_usec = usec };
        char *s = NULL;

        assert_int_equal(logfmt_format_alloc(&e, colour, &s), 0);
        assert_non_null(s);
        return s;
}

#define assert_fmt(expected, kind, machine, msg, usec, colour)                  \
        do {                                                                    \
                _cleanup_free_ char *_s = fmt(kind, machine, msg, usec, colour); \
                assert_string_equal(_s, expected);                              \
        } while (0)

static void test_kinds_plain(void **state _unused_) {
        assert_fmt("hello", LOGFMT_PLAIN, NULL, "hello", 0, false);
        assert_fmt("server: hello", LOGFMT_PLAIN, "server", "hello", 0, false);
        assert_fmt("start all VLans", LOGFMT_NESTED_BEGIN, NULL, "start all VLans", 0, false);
        assert_fmt("server: waiting for unit x", LOGFMT_NESTED_BEGIN, "server", "waiting for unit x", 0, false);
        assert_fmt("(finished: start all VLans, in 0.42 seconds)", LOGFMT_NESTED_END, NULL, "start all VLans", 420000, false);
        assert_fmt("server: (finished: waiting for unit x, in 12.00 seconds)", LOGFMT_NESTED_END, "server", "waiting for unit x", 12000000, false);
        assert_fmt("subtest: web works", LOGFMT_SUBTEST, NULL, "web works", 0, false);
        assert_fmt("dbg", LOGFMT_DEBUG, NULL, "dbg", 0, false);
        assert_fmt("client: inf", LOGFMT_INFO, "client", "inf", 0, false);
        assert_fmt("careful", LOGFMT_WARNING, NULL, "careful", 0, false);
        assert_fmt("client: broken", LOGFMT_ERROR, "client", "broken", 0, false);
        assert_fmt("!!! assertion failed", LOGFMT_TEST_ERROR, NULL, "assertion failed", 0, false);
        assert_fmt("server: !!! assertion failed", LOGFMT_TEST_ERROR, "server", "assertion failed", 0, false);
        assert_fmt("server # [  OK  ] Reached target Multi-User System.", LOGFMT_SERIAL, "server",
                   "[  OK  ] Reached target Multi-User System.", 0, false);
        assert_fmt("", LOGFMT_PLAIN, NULL, NULL, 0, false);
        assert_fmt("m: ", LOGFMT_PLAIN, "m", "", 0, false);
}

static void test_kinds_colour(void **state _unused_) {
        assert_fmt("hello", LOGFMT_PLAIN, NULL, "hello", 0, true);
        assert_fmt("server: hello", LOGFMT_PLAIN, "server", "hello", 0, true);
        assert_fmt(G "start all VLans" Z, LOGFMT_NESTED_BEGIN, NULL, "start all VLans", 0, true);
        assert_fmt("server: " G "waiting for unit x" Z, LOGFMT_NESTED_BEGIN, "server", "waiting for unit x", 0, true);
        assert_fmt("server: (finished: waiting for unit x, in 0.42 seconds)", LOGFMT_NESTED_END, "server", "waiting for unit x", 420000, true);
        assert_fmt(G "subtest: web works" Z, LOGFMT_SUBTEST, NULL, "web works", 0, true);
        assert_fmt(D "dbg" Z, LOGFMT_DEBUG, NULL, "dbg", 0, true);
        assert_fmt("m: " D "dbg" Z, LOGFMT_DEBUG, "m", "dbg", 0, true);
        assert_fmt("client: inf", LOGFMT_INFO, "client", "inf", 0, true);
        assert_fmt(Y "careful" Z, LOGFMT_WARNING, NULL, "careful", 0, true);
        assert_fmt("client: " R "broken" Z, LOGFMT_ERROR, "client", "broken", 0, true);
        assert_fmt(R "!!! " Z "assertion failed", LOGFMT_TEST_ERROR, NULL, "assertion failed", 0, true);
        assert_fmt("server: " R "!!! " Z "x", LOGFMT_TEST_ERROR, "server", "x", 0, true);
        assert_fmt(D "server # login:" Z, LOGFMT_SERIAL, "server", "login:", 0, true);
        /* Colour codes in the message itself never leak into the line. */
        assert_fmt(D "server # OK" Z, LOGFMT_SERIAL, "server", "\033[0;32mOK\033[0m", 0, true);
}

static void test_seconds(void **state _unused_) {
        assert_fmt("(finished: x, in 0.00 seconds)", LOGFMT_NESTED_END, NULL, "x", 0, false);
        assert_fmt("(finished: x, in 0.00 seconds)", LOGFMT_NESTED_END, NULL, "x", 4999, false);
        assert_fmt("(finished: x, in 0.01 seconds)", LOGFMT_NESTED_END, NULL, "x", 5000, false);
        assert_fmt("(finished: x, in 0.13 seconds)", LOGFMT_NESTED_END, NULL, "x", 125000, false);
        assert_fmt("(finished: x, in 1.00 seconds)", LOGFMT_NESTED_END, NULL, "x", 995000, false);
        assert_fmt("(finished: x, in 1234.57 seconds)", LOGFMT_NESTED_END, NULL, "x", 1234567890, false);
        assert_fmt("(finished: x, in 18446744073709.55 seconds)", LOGFMT_NESTED_END, NULL, "x", UINT64_MAX, false);
}

static void test_sanitize(void **state _unused_) {
        static const struct {
                const char *in, *out;
        } t[] = {
                { "a\tb", "a\tb" },
                { "a\rb\r", "ab" },
                { "a\nb", "a?b" },
                { "a\001b\037c\177d", "a?b?c?d" },
                { "\033[1;32mOK\033[0m done", "OK done" },
                { "\033[?25l\033[2K\033[1G", "" },
                { "\033[", "" },
                { "\033[12", "" },
                { "a\033b", "a?b" },
                { "a\033", "a?" },
                { "\033(Bx", "?(Bx" },
                { "\033]0;title\007x", "x" },
                { "\033]8;;http://x\033\\link\033]8;;\033\\", "link" },
                { "\033]unterminated", "?]unterminated" },
                { "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80" },
                { "\xff", "\xef\xbf\xbd" },
                { "a\xc3", "a\xef\xbf\xbd" },
                { "\xc3(", "\xef\xbf\xbd(" },
                { "\xc0\xaf", "\xef\xbf\xbd\xef\xbf\xbd" },
                { "\xe0\x80\xaf", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd" },
                { "\xed\xa0\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd" },
                { "\xf4\x90\x80\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd" },
                { "\xf4\x8f\xbf\xbf", "\xf4\x8f\xbf\xbf" },
                { "\xe2\x82", "\xef\xbf\xbd\xef\xbf\xbd" },
                { "\xc2\x9b" "31m", "?31m" },
                { "\xc2\xa0", "\xc2\xa0" },
        };

        for (size_t i = 0; i < ELEMENTSOF(t); i++) {
                _cleanup_free_ char *s = fmt(LOGFMT_PLAIN, NULL, t[i].in, 0, false);

                if (!streq(s, t[i].out))
                        fail_msg("case %zu: got \"%s\", want \"%s\"", i, s, t[i].out);
        }

        /* The machine name goes through the same filter. */
        assert_fmt("a?b: x", LOGFMT_PLAIN, "a\nb", "x", 0, false);
        assert_fmt("a?b # x", LOGFMT_SERIAL, "a\033b", "x", 0, false);
}

static void test_buffer(void **state _unused_) {
        LogfmtEntry e = { .kind = LOGFMT_PLAIN, .machine = "server", .msg = "hello" };
        char buf[8];

        assert_int_equal(logfmt_format(&e, false, NULL, 0), 13);

        memset(buf, 'X', sizeof buf);
        assert_int_equal(logfmt_format(&e, false, buf, sizeof buf), 13);
        assert_string_equal(buf, "server:");

        memset(buf, 'X', sizeof buf);
        assert_int_equal(logfmt_format(&e, false, buf, 1), 13);
        assert_int_equal(buf[0], '\0');
        assert_int_equal(buf[1], 'X');

        e.msg = "\xff";   /* three bytes out for one in; must not be cut mid-way past size */
        memset(buf, 'X', sizeof buf);
        assert_int_equal(logfmt_format(&e, false, buf, sizeof buf), 11);
        assert_string_equal(buf, "server:");
}

static void test_invalid(void **state _unused_) {
        LogfmtEntry e = { .kind = LOGFMT_SERIAL, .msg = "x" };
        char *s = NULL;
        char buf[4];

        assert_int_equal(logfmt_format(&e, false, buf, sizeof buf), -EINVAL);
        assert_int_equal(logfmt_format_alloc(&e, false, &s), -EINVAL);
        assert_null(s);
        e.kind = _LOGFMT_KIND_MAX;
        assert_int_equal(logfmt_format(&e, false, buf, sizeof buf), -EINVAL);
        e.kind = (LogKind) -1;
        assert_int_equal(logfmt_format(&e, false, buf, sizeof buf), -EINVAL);
        assert_int_equal(logfmt_format(NULL, false, buf, sizeof buf), -EINVAL);
}

static void test_write(void **state _unused_) {
        LogfmtEntry e = { .kind = LOGFMT_NESTED_BEGIN, .machine = "m", .msg = "boot" };
        _cleanup_free_ char *buf = NULL;
        size_t size = 0;
        FILE *f;

        f = open_memstream(&buf, &size);
        assert_non_null(f);
        assert_int_equal(logfmt_write(f, &e, true), 0);
        e.kind = LOGFMT_NESTED_END;
        e.elapsed_usec = 1500000;
        assert_int_equal(logfmt_write(f, &e, true), 0);
        assert_int_equal(fclose(f), 0);
        assert_string_equal(buf, "m: " G "boot" Z "\nm: (finished: boot, in 1.50 seconds)\n");

        f = fopen("/dev/full", "we");
        if (f) {
                setvbuf(f, NULL, _IONBF, 0);
                assert_int_equal(logfmt_write(f, &e, false), -ENOSPC);
                fclose(f);
        }
}

static void test_level_shows(void **state _unused_) {
        static const struct {
                LogKind kind;
                bool at[5];   /* indexed by threshold 1..4 */
        } t[] = {
                { LOGFMT_PLAIN,        { false, true, true, true, true } },
                { LOGFMT_NESTED_BEGIN, { false, true, true, true, true } },
                { LOGFMT_NESTED_END,   { false, true, true, true, true } },
                { LOGFMT_SUBTEST,      { false, true, true, true, true } },
                { LOGFMT_SERIAL,       { false, true, true, true, true } },
                { LOGFMT_ERROR,        { false, true, true, true, true } },
                { LOGFMT_DEBUG,        { false, true, false, false, false } },
                { LOGFMT_INFO,         { false, true, true, false, false } },
                { LOGFMT_WARNING,      { false, true, true, true, false } },
                { LOGFMT_TEST_ERROR,   { false, true, true, true, false } },
        };

        for (size_t i = 0; i < ELEMENTSOF(t); i++)
                for (LogLevel l = LOG_DEBUG; l <= LOG_ERROR; l++)
                        if (logfmt_level_shows(l, t[i].kind) != t[i].at[l])
                                fail_msg("kind %d at level %d: want %d", t[i].kind, l, t[i].at[l]);
}

static void test_parse_level(void **state _unused_) {
        LogLevel l = 0;

        assert_int_equal(logfmt_parse_level("debug", &l), 0);
        assert_int_equal(l, LOG_DEBUG);
        assert_int_equal(logfmt_parse_level("INFO", &l), 0);
        assert_int_equal(l, LOG_INFO);
        assert_int_equal(logfmt_parse_level("Warning", &l), 0);
        assert_int_equal(l, LOG_WARNING);
        assert_int_equal(logfmt_parse_level("warn", &l), 0);
        assert_int_equal(l, LOG_WARNING);
        assert_int_equal(logfmt_parse_level("error", &l), 0);
        assert_int_equal(l, LOG_ERROR);

        l = LOG_INFO;
        assert_int_equal(logfmt_parse_level("", &l), -EINVAL);
        assert_int_equal(logfmt_parse_level("errors", &l), -EINVAL);
        assert_int_equal(logfmt_parse_level("2", &l), -EINVAL);
        assert_int_equal(logfmt_parse_level(NULL, &l), -EINVAL);
        assert_int_equal(l, LOG_INFO);

        assert_string_equal(logfmt_level_to_string(LOG_DEBUG), "debug");
        assert_string_equal(logfmt_level_to_string(LOG_WARNING), "warning");
        assert_null(logfmt_level_to_string(0));
        assert_null(logfmt_level_to_string(5));
}

/* Restores one environment variable to what it was. */
typedef struct SavedEnv {
        const char *name;
        char *value;
} SavedEnv;

static SavedEnv env_save(const char *name) {
        const char *v = getenv(name);
        SavedEnv s = { .name = name, .value = v ? strdup(v) : NULL };

        assert_true(!v || s.value);
        return s;
}

static void env_restore(SavedEnv *s) {
        if (s->value)
                setenv(s->name, s->value, 1);
        else
                unsetenv(s->name);
        free(s->value);
}

static void test_want_colour(void **state _unused_) {
        _cleanup_close_ int master = -1, slave = -1;
        int pipefd[2];
        SavedEnv no_color = env_save("NO_COLOR"), term = env_save("TERM");

        master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
        assert_true(master >= 0);
        assert_int_equal(grantpt(master), 0);
        assert_int_equal(unlockpt(master), 0);
        slave = open(ptsname(master), O_RDWR | O_NOCTTY | O_CLOEXEC);
        assert_true(slave >= 0);
        assert_int_equal(pipe2(pipefd, O_CLOEXEC), 0);

        unsetenv("NO_COLOR");
        setenv("TERM", "xterm-256color", 1);
        assert_true(logfmt_want_colour(slave));
        assert_false(logfmt_want_colour(pipefd[1]));
        assert_false(logfmt_want_colour(-1));

        setenv("NO_COLOR", "", 1);      /* empty: no effect */
        assert_true(logfmt_want_colour(slave));
        setenv("NO_COLOR", "1", 1);
        assert_false(logfmt_want_colour(slave));

        unsetenv("NO_COLOR");
        setenv("TERM", "dumb", 1);
        assert_false(logfmt_want_colour(slave));
        unsetenv("TERM");
        assert_true(logfmt_want_colour(slave));

        close(pipefd[0]);
        close(pipefd[1]);
        env_restore(&no_color);
        env_restore(&term);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_kinds_plain),
                cmocka_unit_test(test_kinds_colour),
                cmocka_unit_test(test_seconds),
                cmocka_unit_test(test_sanitize),
                cmocka_unit_test(test_buffer),
                cmocka_unit_test(test_invalid),
                cmocka_unit_test(test_write),
                cmocka_unit_test(test_level_shows),
                cmocka_unit_test(test_parse_level),
                cmocka_unit_test(test_want_colour),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
