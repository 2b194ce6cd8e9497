/* test_report.c: exact failure reports from Lua stacks that mix the script's frames with
 * stdlib and C frames; source lines from an injected reader and from real files. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <cmocka.h>

#include "report.h"
#include "util.h"

static const char script[] =
        "-- test.lua\n"                                 /* 1 */
        "local function check_web(node)\n"              /* 2 */
        "  local status = node:succeed('curl')\n"       /* 3 */
        "\n"                                            /* 4 */
        "        expect.eq(status, 200)   \t\n"         /* 5 */
        "end\n"                                         /* 6 */
        "\n"                                            /* 7 */
        "subtest('web', function()\n"                   /* 8 */
        "  check_web(server)\n"                         /* 9 */
        "end)\n";                                       /* 10 */

static const char lib[] =
        "local M = {}\r\n"
        "function M.go() error('x') end\r\n"
        "return M\r\n";

typedef struct Reads {
        unsigned script, lib, other;
} Reads;

static int fake_reader(const char *path, char **ret, void *userdata) {
        Reads *r = userdata;

        if (streq(path, "/t/test.lua")) {
                r->script++;
                *ret = strdup(script);
        } else if (streq(path, "/t/lib.lua")) {
                r->lib++;
                *ret = strdup(lib);
        } else {
                r->other++;
                return -ENOENT;
        }
        return *ret ? 0 : -ENOMEM;
}

static void test_mixed_frames(void **state _unused_) {
        /* Innermost first, as lua_getstack numbers them. */
        const ReportFrame frames[] = {
                { "=[C]", -1, "error", -1 },
                { "=moonrig/expect.lua", 30, "eq", 25 },
                { "@/t/test.lua", 5, "check_web", 2 },
                { "@/t/test.lua", 9, NULL, 8 },
                { "=[C]", -1, "pcall", -1 },
                { "=moonrig/subtest.lua", 12, "subtest", 10 },
                { "@/t/test.lua", 8, NULL, 0 },
                { "=[C]", -1, NULL, -1 },
        };
        Reads reads = {};
        ReportInput in = {
                .kind = "TestFailure",
                .message = "expected 200, got 404",
                .frames = frames,
                .n_frames = ELEMENTSOF(frames),
                .script_path = "/t/test.lua",
                .read_source = fake_reader,
                .userdata = &reads,
        };
        _cleanup_free_ char *s = report_format(&in);

        assert_non_null(s);
        assert_string_equal(s,
                "Traceback (most recent call last):\n"
                "  File \"/t/test.lua\", line 8, in main chunk\n"
                "    subtest('web', function()\n"
                "  File \"/t/test.lua\", line 9, in function </t/test.lua:8>\n"
                "    check_web(server)\n"
                "  File \"/t/test.lua\", line 5, in check_web\n"
                "    expect.eq(status, 200)\n"
                "\n"
                "TestFailure: expected 200, got 404\n");
        /* One read for three frames: the file is cached. */
        assert_int_equal(reads.script, 1);
        assert_int_equal(reads.other, 0);
}

static void test_other_user_file_and_chunk(void **state _unused_) {
        const ReportFrame frames[] = {
                { "=[C]", -1, "error", -1 },
                { "@/t/lib.lua", 2, "go", 2 },
                { "@/t/missing.lua", 4, "relay", 3 },
                { "@test.lua", 9, "f", 8 },     /* loaded under a relative chunk name */
                { "@/t/test.lua", 3, NULL, 0 }, /* the script under its absolute name */
        };
        Reads reads = {};
        ReportInput in = {
                .kind = "ScriptError",
                .message = "/t/lib.lua:2: x",
                .frames = frames,
                .n_frames = ELEMENTSOF(frames),
                .script_path = "/t/test.lua",
                .script_chunk = "@test.lua",
                .read_source = fake_reader,
                .userdata = &reads,
        };
        _cleanup_free_ char *s = report_format(&in);

        assert_string_equal(s,
                "Traceback (most recent call last):\n"
                "  File \"/t/test.lua\", line 3, in main chunk\n"
                "    local status = node:succeed('curl')\n"
                "  File \"/t/test.lua\", line 9, in f\n"
                "    check_web(server)\n"
                "  File \"/t/missing.lua\", line 4, in relay\n"
                "  File \"/t/lib.lua\", line 2, in go\n"
                "    function M.go() error('x') end\n"
                "\n"
                "ScriptError: /t/lib.lua:2: x\n");
        assert_int_equal(reads.script, 1);
        assert_int_equal(reads.lib, 1);
        assert_int_equal(reads.other, 1);
}

static void test_dedup_and_odd_lines(void **state _unused_) {
        const ReportFrame frames[] = {
                { "@/t/test.lua", 5, "check_web", 2 },
                { "@/t/test.lua", 5, "check_web", 2 },  /* tail or recursive call */
                { "=[C]", -1, NULL, -1 },
                { "@/t/test.lua", 5, "check_web", 2 },  /* same line across a C frame */
                { "@/t/test.lua", 4, "blank", 2 },      /* blank source line */
                { "@/t/test.lua", 99, "past_end", 2 },
                { "@/t/test.lua", 0, NULL, -1 },       /* no line, no name */
                { "@/t/test.lua", 5, "again", 2 },      /* not consecutive: kept */
                { "@", 1, "empty_name", 0 },
                { NULL, 1, "no_source", 0 },
        };
        Reads reads = {};
        ReportInput in = {
                .kind = "Timeout",
                .message = "line one\r\n\n  indented\r\nlast\n\n",
                .frames = frames,
                .n_frames = ELEMENTSOF(frames),
                .script_path = "/t/test.lua",
                .read_source = fake_reader,
                .userdata = &reads,
        };
        _cleanup_free_ char *s = report_format(&in);

        assert_string_equal(s,
                "Traceback (most recent call last):\n"
                "  File \"/t/test.lua\", line 5, in again\n"
                "    expect.eq(status, 200)\n"
                "  File \"/t/test.lua\", in ?\n"
                "  File \"/t/test.lua\", line 99, in past_end\n"
                "  File \"/t/test.lua\", line 4, in blank\n"
                "  File \"/t/test.lua\", line 5, in check_web\n"
                "    expect.eq(status, 200)\n"
                "\n"
                "Timeout: line one\n"
                "\n"
                "           indented\n"
                "         last\n");
        assert_int_equal(reads.script, 1);
}

static void test_no_user_frames(void **state _unused_) {
        const ReportFrame frames[] = {
                { "=[C]", -1, "error", -1 },
                { "=moonrig/node.lua", 40, "wait_for_unit", 30 },
        };
        ReportInput in = {
                .kind = "MachineError",
                .message = "server: unit nginx.service failed\nstatus: 3",
                .frames = frames,
                .n_frames = ELEMENTSOF(frames),
                .script_path = "/t/test.lua",
        };
        _cleanup_free_ char *s = report_format(&in);

        assert_string_equal(s,
                "MachineError: server: unit nginx.service failed\n"
                "              status: 3\n");
}

static void test_defaults(void **state _unused_) {
        ReportInput in = { .kind = "TestFailure" };
        char *s;

        s = report_format(&in);
        assert_string_equal(s, "TestFailure\n");
        free(s);

        in = (ReportInput) { .message = "\n\n" };
        s = report_format(&in);
        assert_string_equal(s, "Error\n");
        free(s);

        in = (ReportInput) { .message = "m" };
        s = report_format(&in);
        assert_string_equal(s, "Error: m\n");
        free(s);
}

static void test_real_file(void **state _unused_) {
        char dir[] = "/tmp/test_report.XXXXXX";
        _cleanup_free_ char *path = NULL, *chunk = NULL, *s = NULL, *expected = NULL;
        FILE *f;

        assert_non_null(mkdtemp(dir));
        assert_true(asprintf(&path, "%s/test.lua", dir) > 0);
        assert_true(asprintf(&chunk, "@%s", path) > 0);

        f = fopen(path, "we");
        assert_non_null(f);
        /* A shebang line counts as line 1 for Lua too. */
        assert_true(fputs("#!/usr/bin/env moonrig\r\nlocal x = 1\r\n  assert(x == 2, 'x is not 2')\r\n", f) >= 0);
        assert_int_equal(fclose(f), 0);

        const ReportFrame frames[] = {
                { "=[C]", -1, "assert", -1 },
                { chunk, 3, NULL, 0 },
                { "@/nonexistent/dir/other.lua", 1, "g", 1 },
        };
        ReportInput in = {
                .kind = "TestFailure",
                .message = "x is not 2",
                .frames = frames,
                .n_frames = ELEMENTSOF(frames),
                .script_path = path,
        };

        s = report_format(&in);
        assert_true(asprintf(&expected,
                "Traceback (most recent call last):\n"
                "  File \"/nonexistent/dir/other.lua\", line 1, in g\n"
                "  File \"%s\", line 3, in main chunk\n"
                "    assert(x == 2, 'x is not 2')\n"
                "\n"
                "TestFailure: x is not 2\n", path) > 0);
        assert_string_equal(s, expected);

        assert_int_equal(unlink(path), 0);
        assert_int_equal(rmdir(dir), 0);
}

/* More files than the cache holds: every line still comes out, nothing leaks. */
static void test_many_files(void **state _unused_) {
        ReportFrame frames[40];
        char names[40][32];
        Reads reads = {};
        ReportInput in = {
                .kind = "TestFailure",
                .message = "m",
                .frames = frames,
                .n_frames = ELEMENTSOF(frames),
                .read_source = fake_reader,
                .userdata = &reads,
        };
        _cleanup_free_ char *s = NULL;

        for (size_t i = 0; i < ELEMENTSOF(frames); i++) {
                if (i % 2 == 0)
                        snprintf(names[i], sizeof names[i], "@/t/f%zu.lua", i);
                else
                        snprintf(names[i], sizeof names[i], "@/t/lib.lua");
                frames[i] = (ReportFrame) { names[i], 1 + (int) (i % 2), "f", 1 };
        }

        s = report_format(&in);
        assert_non_null(s);
        assert_int_equal(reads.other, 20);
        /* Twenty frames of lib.lua, each with its line; evicted and read again at times. */
        assert_true(reads.lib >= 1 && reads.lib <= 20);
        {
                size_t n = 0;

                for (const char *p = s; (p = strstr(p, "    function M.go() error('x') end\n")); p++)
                        n++;
                assert_int_equal(n, 20);
        }
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_mixed_frames),
                cmocka_unit_test(test_other_user_file_and_chunk),
                cmocka_unit_test(test_dedup_and_odd_lines),
                cmocka_unit_test(test_no_user_frames),
                cmocka_unit_test(test_defaults),
                cmocka_unit_test(test_real_file),
                cmocka_unit_test(test_many_files),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
