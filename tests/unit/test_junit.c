/* test_junit.c: exact JUnit XML for the layouts the driver produces (no case, nested cases,
 * failures inside and outside cases), and well-formedness under hostile input. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <cmocka.h>

#include "junit.h"
#include "util.h"

#define SEC(x) ((uint64_t) ((x) * 1000000.0 + 0.5))

static char *write_xml(const JUnit *j, uint64_t total) {
        char *buf = NULL;
        size_t size = 0;
        FILE *f;

        f = open_memstream(&buf, &size);
        assert_non_null(f);
        assert_int_equal(junit_write(j, f, total), 0);
        assert_int_equal(fclose(f), 0);
        return buf;
}

#define HEAD(tests, failures, time, name)                                                      \
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"                                          \
        "<testsuites tests=\"" tests "\" failures=\"" failures "\" errors=\"0\" skipped=\"0\" time=\"" time "\">\n" \
        "  <testsuite name=\"" name "\" tests=\"" tests "\" failures=\"" failures "\" errors=\"0\" skipped=\"0\" time=\"" time "\">\n"
#define TAIL "  </testsuite>\n</testsuites>\n"

static void test_no_case_passing(void **state _unused_) {
        JUnit *j = junit_new(NULL);
        _cleanup_free_ char *xml = NULL;

        assert_non_null(j);
        junit_line(j, "start all VLans");
        junit_line(j, "test script finished in 1.23s");
        xml = write_xml(j, 1234567);
        assert_string_equal(xml,
                HEAD("1", "0", "1.235", "moonrig")
                "    <testcase name=\"main\" classname=\"moonrig\" time=\"1.235\">\n"
                "      <system-out>start all VLans\ntest script finished in 1.23s\n</system-out>\n"
                "    </testcase>\n"
                "    <system-out>start all VLans\ntest script finished in 1.23s\n</system-out>\n"
                TAIL);
        junit_free(j);
}

static void test_no_case_failing(void **state _unused_) {
        JUnit *j = junit_new("NixOS integration test");
        _cleanup_free_ char *xml = NULL;

        junit_line(j, "server: waiting for unit nginx.service");
        junit_error(j, "unit nginx.service failed");
        junit_error(j, "second");
        xml = write_xml(j, 2000);
        assert_string_equal(xml,
                HEAD("1", "1", "0.002", "NixOS integration test")
                "    <testcase name=\"main\" classname=\"NixOS integration test\" time=\"0.002\">\n"
                "      <failure message=\"unit nginx.service failed\">server: waiting for unit nginx.service\n</failure>\n"
                "      <system-out>server: waiting for unit nginx.service\n</system-out>\n"
                "      <system-err>unit nginx.service failed\nsecond\n</system-err>\n"
                "    </testcase>\n"
                "    <system-out>server: waiting for unit nginx.service\n</system-out>\n"
                "    <system-err>unit nginx.service failed\nsecond\n</system-err>\n"
                TAIL);
        junit_free(j);
}

static void test_empty(void **state _unused_) {
        JUnit *j = junit_new(NULL);
        _cleanup_free_ char *xml = NULL;

        junit_case_end(j, 5);   /* nothing open: ignored */
        xml = write_xml(j, 0);
        assert_string_equal(xml,
                HEAD("1", "0", "0.000", "moonrig")
                "    <testcase name=\"main\" classname=\"moonrig\" time=\"0.000\">\n"
                "    </testcase>\n"
                TAIL);
        junit_free(j);
}

static void test_nested(void **state _unused_) {
        JUnit *j = junit_new("t");
        _cleanup_free_ char *xml = NULL;

        junit_line(j, "before");
        assert_int_equal(junit_case_begin(j, "outer", SEC(1)), 0);
        junit_line(j, "a");
        assert_int_equal(junit_case_begin(j, "inner", SEC(2)), 0);
        junit_line(j, "b");
        junit_case_end(j, SEC(3.5));
        junit_line(j, "c");
        junit_case_end(j, SEC(5));
        assert_int_equal(junit_case_begin(j, "later", SEC(6)), 0);
        junit_case_end(j, SEC(6.25));
        junit_line(j, "after");

        xml = write_xml(j, SEC(7));
        assert_string_equal(xml,
                HEAD("3", "0", "7.000", "t")
                "    <testcase name=\"outer\" classname=\"t\" time=\"2.500\">\n"
                "      <system-out>a\nb\nc\n</system-out>\n"
                "    </testcase>\n"
                "    <testcase name=\"inner\" classname=\"t\" time=\"1.500\">\n"
                "      <system-out>b\n</system-out>\n"
                "    </testcase>\n"
                "    <testcase name=\"later\" classname=\"t\" time=\"0.250\">\n"
                "    </testcase>\n"
                "    <system-out>before\na\nb\nc\nafter\n</system-out>\n"
                TAIL);
        junit_free(j);
}

static void test_failure_in_nested(void **state _unused_) {
        JUnit *j = junit_new("t");
        _cleanup_free_ char *xml = NULL;

        assert_int_equal(junit_case_begin(j, "outer", 0), 0);
        junit_line(j, "a");
        assert_int_equal(junit_case_begin(j, "inner", 1000), 0);
        junit_line(j, "b");
        junit_error(j, "expected 1, got 2");
        junit_case_end(j, 3000);
        junit_error(j, "later error");
        junit_case_end(j, 10000);
        assert_int_equal(junit_case_begin(j, "fine", 10000), 0);
        junit_line(j, "d");
        junit_case_end(j, 10500);

        xml = write_xml(j, 11000);
        assert_string_equal(xml,
                HEAD("3", "2", "0.011", "t")
                "    <testcase name=\"outer\" classname=\"t\" time=\"0.008\">\n"
                "      <failure message=\"expected 1, got 2\">a\nb\n</failure>\n"
                "      <system-out>a\nb\n</system-out>\n"
                "      <system-err>expected 1, got 2\nlater error\n</system-err>\n"
                "    </testcase>\n"
                "    <testcase name=\"inner\" classname=\"t\" time=\"0.002\">\n"
                "      <failure message=\"expected 1, got 2\">b\n</failure>\n"
                "      <system-out>b\n</system-out>\n"
                "      <system-err>expected 1, got 2\n</system-err>\n"
                "    </testcase>\n"
                "    <testcase name=\"fine\" classname=\"t\" time=\"0.001\">\n"
                "      <system-out>d\n</system-out>\n"
                "    </testcase>\n"
                "    <system-out>a\nb\nd\n</system-out>\n"
                "    <system-err>expected 1, got 2\nlater error\n</system-err>\n"
                TAIL);
        junit_free(j);
}

/* An error after the last subtest would leave every case green: "main" carries it. */
static void test_failure_outside_cases(void **state _unused_) {
        JUnit *j = junit_new("t");
        _cleanup_free_ char *xml = NULL;

        junit_line(j, "start");
        assert_int_equal(junit_case_begin(j, "ok", SEC(1)), 0);
        junit_line(j, "in ok");
        junit_case_end(j, SEC(2));
        junit_line(j, "timeout reached; test terminating...");
        junit_error(j, "global timeout");

        xml = write_xml(j, SEC(10));
        assert_string_equal(xml,
                HEAD("2", "1", "10.000", "t")
                "    <testcase name=\"main\" classname=\"t\" time=\"9.000\">\n"
                "      <failure message=\"global timeout\">start\ntimeout reached; test terminating...\n</failure>\n"
                "      <system-out>start\ntimeout reached; test terminating...\n</system-out>\n"
                "      <system-err>global timeout\n</system-err>\n"
                "    </testcase>\n"
                "    <testcase name=\"ok\" classname=\"t\" time=\"1.000\">\n"
                "      <system-out>in ok\n</system-out>\n"
                "    </testcase>\n"
                "    <system-out>start\nin ok\ntimeout reached; test terminating...\n</system-out>\n"
                "    <system-err>global timeout\n</system-err>\n"
                TAIL);
        junit_free(j);
}

/* The script died inside a subtest and nobody closed it. */
static void test_open_cases(void **state _unused_) {
        JUnit *j = junit_new("t");
        _cleanup_free_ char *xml = NULL;

        assert_int_equal(junit_case_begin(j, "a", SEC(1)), 0);
        assert_int_equal(junit_case_begin(j, "done", SEC(2)), 0);
        junit_case_end(j, SEC(3));
        assert_int_equal(junit_case_begin(j, "b", SEC(4)), 0);
        assert_int_equal(junit_case_begin(j, "c", SEC(4.5)), 0);
        junit_error(j, "boom");

        xml = write_xml(j, SEC(6));
        assert_string_equal(xml,
                HEAD("4", "3", "6.000", "t")
                "    <testcase name=\"a\" classname=\"t\" time=\"2.000\">\n"
                "      <failure message=\"boom\"></failure>\n"
                "      <system-err>boom\n</system-err>\n"
                "    </testcase>\n"
                "    <testcase name=\"done\" classname=\"t\" time=\"1.000\">\n"
                "    </testcase>\n"
                "    <testcase name=\"b\" classname=\"t\" time=\"0.500\">\n"
                "      <failure message=\"boom\"></failure>\n"
                "      <system-err>boom\n</system-err>\n"
                "    </testcase>\n"
                "    <testcase name=\"c\" classname=\"t\" time=\"0.000\">\n"
                "      <failure message=\"boom\"></failure>\n"
                "      <system-err>boom\n</system-err>\n"
                "    </testcase>\n"
                "    <system-err>boom\n</system-err>\n"
                TAIL);
        junit_free(j);
}

static void test_escaping(void **state _unused_) {
        JUnit *j = junit_new("s\"&'<>");
        _cleanup_free_ char *xml = NULL;

        assert_int_equal(junit_case_begin(j, "a<b>&\"c'\td\ne", 0), 0);
        junit_line(j, "x]]>y <![CDATA[ &amp; \"q\" 'a'");
        junit_line(j, "ctl\001\002\033[0m\177 tab\tcr\r bad\xff\xc3( nonchar\xef\xbf\xbf ok\xc3\xa9");
        junit_error(j, "multi\nline\t\"msg\"\r");
        junit_case_end(j, 0);

        xml = write_xml(j, 0);
        assert_string_equal(xml,
                HEAD("1", "1", "0.000", "s&quot;&amp;&apos;&lt;&gt;")
                "    <testcase name=\"a&lt;b&gt;&amp;&quot;c&apos;&#9;d&#10;e\" classname=\"s&quot;&amp;&apos;&lt;&gt;\" time=\"0.000\">\n"
                "      <failure message=\"multi&#10;line&#9;&quot;msg&quot;&#13;\">"
                "x]]&gt;y &lt;![CDATA[ &amp;amp; &quot;q&quot; &apos;a&apos;\n"
                "ctl[0m\177 tab\tcr&#13; bad\xef\xbf\xbd\xef\xbf\xbd( nonchar\xef\xbf\xbd ok\xc3\xa9\n"
                "</failure>\n"
                "      <system-out>"
                "x]]&gt;y &lt;![CDATA[ &amp;amp; &quot;q&quot; &apos;a&apos;\n"
                "ctl[0m\177 tab\tcr&#13; bad\xef\xbf\xbd\xef\xbf\xbd( nonchar\xef\xbf\xbd ok\xc3\xa9\n"
                "</system-out>\n"
                "      <system-err>multi\nline\t&quot;msg&quot;&#13;\n</system-err>\n"
                "    </testcase>\n"
                "    <system-out>"
                "x]]&gt;y &lt;![CDATA[ &amp;amp; &quot;q&quot; &apos;a&apos;\n"
                "ctl[0m\177 tab\tcr&#13; bad\xef\xbf\xbd\xef\xbf\xbd( nonchar\xef\xbf\xbd ok\xc3\xa9\n"
                "</system-out>\n"
                "    <system-err>multi\nline\t&quot;msg&quot;&#13;\n</system-err>\n"
                TAIL);
        junit_free(j);
}

static bool have_xmllint(void) {
        return access("/usr/bin/xmllint", X_OK) == 0;
}

/* Writes the document to a temporary file and asks xmllint whether it is well-formed. */
static void assert_xmllint_ok(const JUnit *j) {
        char path[] = "/tmp/test_junit.XXXXXX";
        char cmd[128];
        FILE *f;
        int fd, status;

        fd = mkstemp(path);
        assert_true(fd >= 0);
        f = fdopen(fd, "w");
        assert_non_null(f);
        assert_int_equal(junit_write(j, f, 1), 0);
        assert_int_equal(fclose(f), 0);

        snprintf(cmd, sizeof cmd, "/usr/bin/xmllint --noout '%s'", path);
        status = system(cmd);
        unlink(path);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
}

static void test_xmllint_nasty(void **state _unused_) {
        static const char *const nasty[] = {
                "\001\002\003\004\005\006\007\010\t\n\013\014\r\016\017\020\021\022\023\024\025\026\027\030\031\032\033\034\035\036\037 end",
                "]]> <![CDATA[ ]]> <!-- --> <?pi?> &#0; &#x1; &bogus;",
                "\"'\"'<tag attr=\"v\">",
                "\xff\xfe\xfd \xc0\x80 \xed\xa0\x80\xed\xb0\x80 \xf4\x90\x80\x80 \xf8\x88\x80\x80\x80 \xe2\x82",
                "\xef\xbf\xbe\xef\xbf\xbf \xc2\x80\xc2\x9f \x7f",
                "\xc3",
        };
        JUnit *j;

        if (!have_xmllint()) {
                skip();
                return;
        }

        j = junit_new("suite ]]> \001\xff\"");
        for (size_t i = 0; i < ELEMENTSOF(nasty); i++) {
                assert_int_equal(junit_case_begin(j, nasty[i], i), 0);
                junit_line(j, nasty[i]);
                junit_error(j, nasty[i]);
        }
        for (size_t i = 0; i < ELEMENTSOF(nasty); i++)
                junit_case_end(j, 100);
        junit_error(j, "outside \002");
        assert_xmllint_ok(j);
        junit_free(j);
}

/* Random bytes, no NUL, in every place a string can go. */
static void test_xmllint_random(void **state _unused_) {
        unsigned seed = 12345;
        JUnit *j;

        if (!have_xmllint()) {
                skip();
                return;
        }

        j = junit_new(NULL);
        for (int i = 0; i < 300; i++) {
                char s[64];
                size_t n = rand_r(&seed) % (sizeof s - 1);

                for (size_t k = 0; k < n; k++)
                        s[k] = (char) (1 + rand_r(&seed) % 255);
                s[n] = '\0';

                switch (rand_r(&seed) % 4) {
                case 0:
                        assert_int_equal(junit_case_begin(j, s, i), 0);
                        break;
                case 1:
                        junit_case_end(j, i);
                        break;
                case 2:
                        junit_line(j, s);
                        break;
                default:
                        junit_error(j, s);
                }
        }
        assert_xmllint_ok(j);
        junit_free(j);
}

static void test_errors(void **state _unused_) {
        JUnit *j = junit_new(NULL);
        FILE *f;

        assert_int_equal(junit_case_begin(j, NULL, 0), -EINVAL);
        assert_int_equal(junit_case_begin(NULL, "x", 0), -EINVAL);
        junit_line(j, NULL);
        junit_line(NULL, "x");
        junit_error(NULL, "x");
        junit_case_end(NULL, 0);
        junit_free(NULL);

        f = fopen("/dev/full", "we");
        if (f) {
                junit_line(j, "something to write");
                assert_int_equal(junit_write(j, f, 0), -ENOSPC);
                fclose(f);
        }
        junit_free(j);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_no_case_passing),
                cmocka_unit_test(test_no_case_failing),
                cmocka_unit_test(test_empty),
                cmocka_unit_test(test_nested),
                cmocka_unit_test(test_failure_in_nested),
                cmocka_unit_test(test_failure_outside_cases),
                cmocka_unit_test(test_open_cases),
                cmocka_unit_test(test_escaping),
                cmocka_unit_test(test_xmllint_nasty),
                cmocka_unit_test(test_xmllint_random),
                cmocka_unit_test(test_errors),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
