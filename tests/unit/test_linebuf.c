/* test_linebuf.c: a console stream cut into lines, exactly: lines across reads, empty lines, "\r"
 * kept (the readers strip it), a line longer than the buffer, and the unfinished last line. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "linebuf.h"

/* Feeds the reads one after another; returns the lines, each followed by "|". */
static void feed_all(LineBuf *b, const char *const *reads, char *out, size_t size) {
        size_t o = 0;

        out[0] = '\0';
        for (const char *const *r = reads; *r; r++)
                for (size_t i = 0, len = strlen(*r); i < len;) {
                        char *line;
                        size_t l = 0, took = linebuf_feed(b, *r + i, len - i, &line, &l);

                        assert_true(took > 0 || line);
                        i += took;
                        if (line)
                                o += (size_t) snprintf(out + o, size - o, "%.*s|", (int) l, line);
                }
}

static void test_lines(void **state) {
        static const char *const reads[] = { "boot", "ing\nsecond\n\nthird\r\nfour", NULL };
        LineBuf b = {};
        char out[256], *last;
        size_t l = 0;

        (void) state;
        feed_all(&b, reads, out, sizeof out);
        assert_string_equal(out, "booting|second||third\r|");
        last = linebuf_flush(&b, &l);
        assert_non_null(last);
        assert_int_equal(l, 4);
        assert_memory_equal(last, "four", 4);
        assert_null(linebuf_flush(&b, &l));
}

static void test_long_line(void **state) {
        static char big[LINEBUF_MAX + 3];
        LineBuf b = {};
        char *line;
        size_t l = 0, took;

        (void) state;
        memset(big, 'x', LINEBUF_MAX + 1);
        big[LINEBUF_MAX + 1] = '\n';
        /* The full buffer comes out, the byte that did not fit starts the next piece. */
        took = linebuf_feed(&b, big, LINEBUF_MAX + 2, &line, &l);
        assert_int_equal(took, LINEBUF_MAX);
        assert_non_null(line);
        assert_int_equal(l, LINEBUF_MAX);
        took = linebuf_feed(&b, big + LINEBUF_MAX, 2, &line, &l);
        assert_int_equal(took, 2);
        assert_non_null(line);
        assert_int_equal(l, 1);
        assert_int_equal(line[0], 'x');
        /* A "\n" on a full buffer ends that line only: no empty line after it. */
        memset(big, 'y', LINEBUF_MAX);
        big[LINEBUF_MAX] = '\n';
        took = linebuf_feed(&b, big, LINEBUF_MAX + 1, &line, &l);
        assert_int_equal(took, LINEBUF_MAX + 1);
        assert_int_equal(l, LINEBUF_MAX);
        assert_null(linebuf_flush(&b, &l));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_lines),
                cmocka_unit_test(test_long_line),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
