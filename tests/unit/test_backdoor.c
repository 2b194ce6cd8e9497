/* test_backdoor.c: the backdoor shell's framing byte for byte: shell quoting, the line a command is
 * sent as, the sentinel, the base64 frame, the status line, console lines. No VM, no root. */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "backdoor.h"

#define SEC 1000000ULL

static void assert_quote(const char *in, const char *out) {
        char *q = backdoor_shell_quote(in);

        assert_non_null(q);
        assert_string_equal(q, out);
        free(q);
}

static void test_shell_quote(void **state) {
        (void) state;
        assert_quote("", "''");
        assert_quote("abc", "abc");
        assert_quote("@%+=:,./-_AZaz09", "@%+=:,./-_AZaz09");
        assert_quote("a b", "'a b'");
        assert_quote("it's", "'it'\"'\"'s'");
        assert_quote("'", "''\"'\"''");
        assert_quote("$HOME", "'$HOME'");
        assert_quote("a\nb", "'a\nb'");
        assert_quote("\xc3\xa9", "'\xc3\xa9'");   /* é: shlex.quote's \w is ASCII only */
}

static void assert_command_line(const char *cmd, uint64_t timeout, const char *expected) {
        char *l = backdoor_command_line(cmd, timeout);

        assert_non_null(l);
        assert_string_equal(l, expected);
        free(l);
}

static void test_command_line(void **state) {
        (void) state;
        assert_command_line("echo hello", 0, "bash -c 'set -euo pipefail; echo hello' | (base64 -w 0; echo)\n");
        assert_command_line("echo 'x'", 0,
                            "bash -c 'set -euo pipefail; echo '\"'\"'x'\"'\"'' | (base64 -w 0; echo)\n");
        assert_command_line("true", 900 * SEC, "timeout 900.0 bash -c 'set -euo pipefail; true' | (base64 -w 0; echo)\n");
        assert_command_line("true", SEC / 2, "timeout 0.5 bash -c 'set -euo pipefail; true' | (base64 -w 0; echo)\n");
        assert_command_line("true", 1250000, "timeout 1.25 bash -c 'set -euo pipefail; true' | (base64 -w 0; echo)\n");
        assert_command_line("true", 1, "timeout 0.000001 bash -c 'set -euo pipefail; true' | (base64 -w 0; echo)\n");
        assert_command_line("a\nb", 0, "bash -c 'set -euo pipefail; a\nb' | (base64 -w 0; echo)\n");
}

static void test_sentinel(void **state) {
        static const char full[] = "noise\r\nSpawning backdoor root shell...\n";

        (void) state;
        assert_int_equal(backdoor_sentinel_end(full, strlen(full)), 6 + 31 + 1);
        assert_int_equal(backdoor_sentinel_end(BACKDOOR_SENTINEL, strlen(BACKDOOR_SENTINEL)), 31);
        assert_int_equal(backdoor_sentinel_end("Spawning backdoor root shell..", 30), -1);
        assert_int_equal(backdoor_sentinel_end("", 0), -1);
        /* NUL bytes before it do not hide it. */
        assert_int_equal(backdoor_sentinel_end("\0\0Spawning backdoor root shell...", 33), 33);
}

static void assert_scan(const char *buf, size_t len, int found, size_t keep, bool pending) {
        size_t k = 99;
        bool p = !pending;

        assert_int_equal(backdoor_sentinel_scan(buf, len, &k, &p), found);
        if (found)
                assert_int_equal(p, pending);
        else
                assert_int_equal(k, keep);
}

static void test_sentinel_scan(void **state) {
        (void) state;
        assert_scan("boot\nSpawning backdoor root shell...\n", 37, 1, 0, false);
        assert_scan("Spawning backdoor root shell...\r\n", 33, 1, 0, false);
        assert_scan("Spawning backdoor root shell...\r", 32, 1, 0, true);
        assert_scan("Spawning backdoor root shell...", 31, 1, 0, true);
        assert_scan("Spawning backdoor root shell...x\n", 33, 1, 0, true);
        /* Not yet: the last 30 bytes (the sentinel less one) may be its start. */
        assert_scan("abc", 3, 0, 3, false);
        assert_scan("", 0, 0, 0, false);
        assert_scan("[    0.1] a long line of kernel output, then Spawning backdoor", 61, 0, 30, false);
}

static void test_frame_line(void **state) {
        (void) state;
        assert_int_equal(backdoor_frame_line("aGVsbG8K\nrest", 13), 9);
        assert_int_equal(backdoor_frame_line("aGVsbG8K", 8), 0);
        assert_int_equal(backdoor_frame_line("\n", 1), 1);
        assert_int_equal(backdoor_frame_line("", 0), 0);
}

static void assert_b64(const char *in, const void *out, size_t out_len) {
        char *d = NULL;
        size_t l = 99;

        assert_int_equal(backdoor_base64_decode(in, strlen(in), &d, &l), 0);
        assert_int_equal(l, out_len);
        assert_memory_equal(d, out, out_len);
        assert_int_equal(d[l], '\0');
        free(d);
}

static void assert_b64_bad(const char *in) {
        char *d = NULL;
        size_t l = 99;

        assert_int_equal(backdoor_base64_decode(in, strlen(in), &d, &l), -EBADMSG);
        assert_null(d);
        assert_int_equal(l, 99);
}

static void test_base64(void **state) {
        (void) state;
        assert_b64("aGVsbG8K", "hello\n", 6);
        assert_b64("", "", 0);
        assert_b64("YQ==", "a", 1);
        assert_b64("YWI=", "ab", 2);
        assert_b64("AAEC", "\0\1\2", 3);
        assert_b64("/+/+", "\xff\xef\xfe", 3);
        assert_b64("cGFydGlhbA==", "partial", 7);
        assert_b64_bad("aGVsbG8");        /* not a multiple of 4 */
        assert_b64_bad("aGV*bG8K");
        assert_b64_bad("aGVsbG8K\n");     /* the newline is not part of the frame */
        assert_b64_bad("YQ=a");
        assert_b64_bad("Y===");
        assert_b64_bad("YQ==YQ==");       /* padding only at the end */
        assert_b64_bad("-_AA");           /* base64url is not what base64 writes */
}

static void test_status(void **state) {
        int s = 99;

        (void) state;
        assert_int_equal(backdoor_status_parse("0\n", 2, &s), 0);
        assert_int_equal(s, 0);
        assert_int_equal(backdoor_status_parse("124\n", 4, &s), 0);
        assert_int_equal(s, 124);
        assert_int_equal(backdoor_status_parse(" 3 \r\n", 5, &s), 0);
        assert_int_equal(s, 3);
        assert_int_equal(backdoor_status_parse("-1\n", 3, &s), 0);
        assert_int_equal(s, -1);
        s = 99;
        assert_int_equal(backdoor_status_parse("\n", 1, &s), -EBADMSG);
        assert_int_equal(backdoor_status_parse("abc\n", 4, &s), -EBADMSG);
        assert_int_equal(backdoor_status_parse("12a\n", 4, &s), -EBADMSG);
        assert_int_equal(backdoor_status_parse("1 2\n", 4, &s), -EBADMSG);
        assert_int_equal(backdoor_status_parse("99999999999\n", 12, &s), -EBADMSG);
        assert_int_equal(s, 99);
}

static void assert_clean(const char *in, const char *out) {
        char buf[128];
        size_t l;

        strcpy(buf, in);
        l = backdoor_console_clean(buf, strlen(buf));
        assert_int_equal(l, strlen(out));
        assert_memory_equal(buf, out, l);
}

static void test_console_clean(void **state) {
        (void) state;
        assert_clean("abc\r\r", "abc");
        assert_clean("\r[    1.000] x  \t", "[    1.000] x");
        assert_clean("a\rb", "ab");
        assert_clean("  lead", "  lead");
        assert_clean("\r\r", "");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_shell_quote),
                cmocka_unit_test(test_command_line),
                cmocka_unit_test(test_sentinel),
                cmocka_unit_test(test_sentinel_scan),
                cmocka_unit_test(test_frame_line),
                cmocka_unit_test(test_base64),
                cmocka_unit_test(test_status),
                cmocka_unit_test(test_console_clean),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
