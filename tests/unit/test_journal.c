/* test_journal.c: journal entries formatted like `journalctl -o short` without time and host, and
 * journalctl's test for printable messages. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "journal.h"
#include "util.h"

uint64_t now_usec(void) { return 0; }

typedef struct Lines {
        char buf[1024];
        size_t len;
        unsigned n;
} Lines;

/* Each line gets a '|' after it, so that line ends show. */
static void collect(const char *line, size_t len, void *userdata) {
        Lines *l = userdata;

        assert_int_equal(strlen(line), len);   /* NUL-terminated at len, no NUL inside */
        assert_true(l->len + len + 1 < sizeof l->buf);
        memcpy(l->buf + l->len, line, len);
        l->len += len;
        l->buf[l->len++] = '|';
        l->buf[l->len] = '\0';
        l->n++;
}

#define S(x) x, strlen(x)
#define NONE NULL, 0

static void test_ident_and_pid(void **state) {
        Lines l = {};

        (void) state;
        assert_int_equal(journal_format(S("nginx"), S("nginx-bin"), S("123"), S("99"), S("started"), collect, &l), 1);
        assert_int_equal(journal_format(NONE, S("sshd"), S("7"), NONE, S("listening"), collect, &l), 1);
        assert_int_equal(journal_format(S("kernel"), NONE, NONE, NONE, S("eth0 up"), collect, &l), 1);
        assert_int_equal(journal_format(S("logger"), NONE, NONE, S("42"), S("from syslog"), collect, &l), 1);
        assert_int_equal(journal_format(NONE, NONE, NONE, NONE, S("who"), collect, &l), 1);
        assert_int_equal(journal_format(S(""), S("comm"), S(""), NONE, S("empty ident"), collect, &l), 1);
        assert_string_equal(l.buf, "nginx[123]: started|sshd[7]: listening|kernel: eth0 up|logger[42]: from syslog|"
                                   "unknown: who|comm: empty ident|");
}

static void test_lines(void **state) {
        Lines l = {};

        (void) state;
        assert_int_equal(journal_format(S("a"), NONE, S("1"), NONE, S("one\ntwo\n\nfour\n\n"), collect, &l), 4);
        assert_int_equal(journal_format(S("b"), NONE, S("2"), NONE, S(""), collect, &l), 1);
        assert_int_equal(journal_format(S("c"), NONE, S("3"), NONE, NONE, collect, &l), 1);
        assert_int_equal(journal_format(S("d"), NONE, S("4"), NONE, S("tab\there"), collect, &l), 1);
        assert_string_equal(l.buf, "a[1]: one|a[1]: two|a[1]: |a[1]: four|b[2]: |c[3]: |d[4]: tab\there|");
}

static void test_blob(void **state) {
        Lines l = {};

        (void) state;
        assert_int_equal(journal_format(S("x"), NONE, S("1"), NONE, "a\0b", 3, collect, &l), 1);
        assert_int_equal(journal_format(S("x"), NONE, S("1"), NONE, S("\033[1mbold\033[0m"), collect, &l), 1);
        assert_int_equal(journal_format(S("x"), NONE, S("1"), NONE, S("caf\xc3\xa9 ok"), collect, &l), 1);
        assert_int_equal(journal_format(S("x"), NONE, S("1"), NONE, S("bad \xc3"), collect, &l), 1);
        assert_string_equal(l.buf, "x[1]: [3 bytes blob data]|x[1]: [12 bytes blob data]|x[1]: caf\xc3\xa9 ok|"
                                   "x[1]: [5 bytes blob data]|");
}

static void test_printable(void **state) {
        (void) state;
        assert_true(journal_message_printable(S("")));
        assert_true(journal_message_printable(S("plain ASCII ~")));
        assert_true(journal_message_printable(S("tab\tand\nnewline")));
        assert_true(journal_message_printable(S("\xe2\x82\xac \xf0\x9f\x98\x80 \xc2\xa0")));   /* € 😀 NBSP */
        assert_false(journal_message_printable(S("cr\r")));
        assert_false(journal_message_printable(S("\x7f")));
        assert_false(journal_message_printable(S("\xc2\x85")));      /* U+0085, a C1 control */
        assert_false(journal_message_printable(S("\xc0\x80")));      /* overlong NUL */
        assert_false(journal_message_printable(S("\xed\xa0\x80")));  /* a surrogate */
        assert_false(journal_message_printable(S("\xf4\x90\x80\x80"))); /* past U+10FFFF */
        assert_false(journal_message_printable(S("\xe2\x82")));      /* cut short */
        assert_false(journal_message_printable(S("\x80")));
        assert_false(journal_message_printable("a\0", 2));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_ident_and_pid),
                cmocka_unit_test(test_lines),
                cmocka_unit_test(test_blob),
                cmocka_unit_test(test_printable),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
