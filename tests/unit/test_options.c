/* test_options.c: the command line, flag by flag, with the exact error each mistake gives. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "options.h"
#include "util.h"

#define MAX_ARGS 32

typedef struct Result {
        int r;
        Options o;
        char *error;
        char *argv[MAX_ARGS + 1];
        int argc;
} Result;

/* parse("moonrig", "-I", NULL): argv as main() would see it. */
static void parse_into(Result *res, const char *first, ...) {
        va_list ap;
        const char *a;

        *res = (Result) {};
        va_start(ap, first);
        for (a = first; a; a = va_arg(ap, const char *)) {
                assert_true(res->argc < MAX_ARGS);
                res->argv[res->argc++] = (char *) a;
        }
        va_end(ap);
        res->r = options_parse(res->argc, res->argv, &res->o, &res->error);
}

static void result_done(Result *res) {
        options_done(&res->o);
        free(res->error);
        res->error = NULL;
}

#define expect_ok(res, ...) do {                                                \
                parse_into(&(res), "moonrig", ##__VA_ARGS__, NULL);             \
                if ((res).r != 0)                                               \
                        fail_msg("unexpected error: %s", (res).error ?: "(none)"); \
                assert_null((res).error);                                       \
        } while (0)

static void expect_error(const char *message, ...) {
        const char *argv[MAX_ARGS + 1] = { "moonrig" };
        int argc = 1;
        Options o;
        char *error = NULL;
        va_list ap;
        const char *a;
        int r;

        va_start(ap, message);
        while ((a = va_arg(ap, const char *))) {
                assert_true(argc < MAX_ARGS);
                argv[argc++] = a;
        }
        va_end(ap);

        r = options_parse(argc, (char **) argv, &o, &error);
        assert_int_equal(r, -EINVAL);
        assert_non_null(error);
        assert_string_equal(error, message);
        /* Nothing is handed out on failure. */
        assert_null(o.output_dir);
        assert_null(o.script_path);
        assert_null(o.warnings);
        free(error);
}

static int setup(void **state) {
        (void) state;
        unsetenv("logLevel");
        unsetenv("POSIXLY_CORRECT");
        return 0;
}

static void test_defaults(void **state) {
        Result res;
        (void) state;

        expect_ok(res);
        assert_false(res.o.interactive);
        assert_false(res.o.keep_state);
        assert_false(res.o.help);
        assert_false(res.o.version);
        assert_false(res.o.global_timeout_set);
        assert_null(res.o.output_dir);
        assert_null(res.o.junit_xml);
        assert_int_equal(res.o.log_level, LOG_INFO);
        assert_true(res.o.global_timeout == 3600.0);
        assert_null(res.o.config_path);
        assert_null(res.o.script_path);
        assert_null(res.o.debug_hook);
        assert_null(res.o.warnings);
        result_done(&res);
}

static void test_long_options(void **state) {
        Result res;
        (void) state;

        expect_ok(res, "--interactive", "--output-directory", "/out", "--junit-xml", "report.xml",
                  "--log-level", "warning", "--global-timeout", "120", "--config", "/c.json",
                  "--test-script", "t.lua", "--keep-machine-state", "--debug-hook-attach", "/bin/attach x");
        assert_true(res.o.interactive);
        assert_string_equal(res.o.output_dir, "/out");
        assert_string_equal(res.o.junit_xml, "report.xml");
        assert_int_equal(res.o.log_level, LOG_WARNING);
        assert_true(res.o.global_timeout == 120.0);
        assert_true(res.o.global_timeout_set);
        assert_string_equal(res.o.config_path, "/c.json");
        assert_string_equal(res.o.script_path, "t.lua");
        assert_true(res.o.keep_state);
        assert_string_equal(res.o.debug_hook, "/bin/attach x");
        assert_null(res.o.warnings);
        result_done(&res);

        /* --opt=value spelling */
        expect_ok(res, "--output-directory=/o", "--log-level=error", "--global-timeout=0.25", "--config=c.json");
        assert_string_equal(res.o.output_dir, "/o");
        assert_int_equal(res.o.log_level, LOG_ERROR);
        assert_true(res.o.global_timeout == 0.25);
        assert_string_equal(res.o.config_path, "c.json");
        result_done(&res);
}

static void test_short_options(void **state) {
        Result res;
        (void) state;

        expect_ok(res, "-I", "-K", "-o", "/out", "-c", "cfg.json", "s.lua");
        assert_true(res.o.interactive);
        assert_true(res.o.keep_state);
        assert_string_equal(res.o.output_dir, "/out");
        assert_string_equal(res.o.config_path, "cfg.json");
        assert_string_equal(res.o.script_path, "s.lua");
        result_done(&res);

        /* Grouped, with the value attached to the last one. */
        expect_ok(res, "-IKo/grouped", "-ccfg");
        assert_true(res.o.interactive);
        assert_true(res.o.keep_state);
        assert_string_equal(res.o.output_dir, "/grouped");
        assert_string_equal(res.o.config_path, "cfg");
        result_done(&res);
}

/* What the Nix build and the NixOS self-test actually pass. */
static void test_prefixes_and_aliases(void **state) {
        Result res;
        (void) state;

        expect_ok(res, "--junit=junit.xml", "--debug-hook=/nix/store/x-attach", "--output_directory", "/o1");
        assert_string_equal(res.o.junit_xml, "junit.xml");
        assert_string_equal(res.o.debug_hook, "/nix/store/x-attach");
        assert_string_equal(res.o.output_dir, "/o1");
        result_done(&res);

        /* A prefix of both spellings of one option is not ambiguous. */
        expect_ok(res, "--output", "/o2", "--log", "debug", "--glob=7", "--test=t.lua", "--conf", "c", "--inter");
        assert_string_equal(res.o.output_dir, "/o2");
        assert_int_equal(res.o.log_level, LOG_DEBUG);
        assert_true(res.o.global_timeout == 7.0);
        assert_string_equal(res.o.script_path, "t.lua");
        assert_string_equal(res.o.config_path, "c");
        assert_true(res.o.interactive);
        result_done(&res);

        expect_ok(res, "--keep-m", "--no");
        assert_true(res.o.keep_state);
        assert_false(res.o.interactive);
        result_done(&res);

        expect_error("ambiguous option '--keep' (could be --keep-machine-state, --keep-vm-state)", "--keep", NULL);
        expect_error("ambiguous option '--k' (could be --keep-machine-state, --keep-vm-state)", "--k=1", NULL);
}

static void test_interactive_last_wins(void **state) {
        Result res;
        (void) state;

        expect_ok(res, "-I", "--no-interactive");
        assert_false(res.o.interactive);
        result_done(&res);

        expect_ok(res, "--no-interactive", "--interactive");
        assert_true(res.o.interactive);
        result_done(&res);

        /* Repeated values: the last one counts, as in argparse. */
        expect_ok(res, "-o", "/a", "-o", "/b", "--log-level", "debug", "--log-level", "error");
        assert_string_equal(res.o.output_dir, "/b");
        assert_int_equal(res.o.log_level, LOG_ERROR);
        result_done(&res);
}

static void test_keep_vm_state(void **state) {
        Result res;
        (void) state;

        expect_ok(res, "--keep-vm-state", "--keep-vm-state");
        assert_true(res.o.keep_state);
        assert_non_null(res.o.warnings);
        assert_string_equal(res.o.warnings[0],
                            "The flag '--keep-vm-state' is deprecated. Use '--keep-machine-state' instead.");
        assert_null(res.o.warnings[1]);
        result_done(&res);

        expect_ok(res, "-K");
        assert_true(res.o.keep_state);
        assert_null(res.o.warnings);
        result_done(&res);
}

static void test_unknown_and_malformed(void **state) {
        (void) state;

        expect_error("unknown option '--frobnicate'", "--frobnicate", NULL);
        expect_error("unknown option '--frob'", "--frob=3", NULL);
        expect_error("unknown option '--tcg'", "--tcg", NULL);
        expect_error("unknown option '-x'", "-x", NULL);
        expect_error("unknown option '-x'", "-Ix", NULL);
        /* The short option is reported, not the long one before it. */
        expect_error("unknown option '-x'", "--interactive", "-xI", NULL);
        expect_error("option '-o' needs a value", "-o", NULL);
        expect_error("option '-c' needs a value", "-I", "-c", NULL);
        expect_error("option '--log-level' needs a value", "--log-level", NULL);
        expect_error("option '--log' needs a value", "--log", NULL);
        expect_error("option '--interactive' does not take a value", "--interactive=yes", NULL);
        expect_error("option '--inter' does not take a value", "--inter=yes", NULL);
        expect_error("option '--help' does not take a value", "--help=1", NULL);
}

static void test_log_level(void **state) {
        Result res;
        (void) state;

        expect_error("--log-level: unknown level 'loud' (use debug, info, warning or error)", "--log-level", "loud", NULL);
        expect_error("--log-level: unknown level 'INFO' (use debug, info, warning or error)", "--log-level=INFO", NULL);
        expect_error("--log-level: unknown level '' (use debug, info, warning or error)", "--log-level=", NULL);

        setenv("logLevel", "debug", 1);
        expect_ok(res);
        assert_int_equal(res.o.log_level, LOG_DEBUG);
        result_done(&res);

        expect_ok(res, "--log-level", "warning");
        assert_int_equal(res.o.log_level, LOG_WARNING);
        result_done(&res);

        setenv("logLevel", "", 1);
        expect_ok(res);
        assert_int_equal(res.o.log_level, LOG_INFO);
        result_done(&res);

        setenv("logLevel", "chatty", 1);
        expect_error("environment variable logLevel: unknown level 'chatty' (use debug, info, warning or error)", NULL);
        /* An explicit flag makes the environment irrelevant. */
        expect_ok(res, "--log-level=error");
        assert_int_equal(res.o.log_level, LOG_ERROR);
        result_done(&res);
        unsetenv("logLevel");
}

static void test_global_timeout(void **state) {
        static const char *const bad[] = { "0", "-1", "abc", "", "nan", "inf", "1e999", " 5", "5s", "0x10", "-0", "+5" };
        Result res;
        (void) state;

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                _cleanup_free_ char *msg = NULL;

                assert_true(asprintf(&msg, "--global-timeout: '%s' is not a positive number of seconds", bad[i]) > 0);
                expect_error(msg, "--global-timeout", bad[i], NULL);
        }
        expect_error("--global-timeout: 1e10 seconds is too long (at most 1000000000)", "--global-timeout", "1e10", NULL);

        expect_ok(res, "--global-timeout", "1e3");
        assert_true(res.o.global_timeout == 1000.0);
        result_done(&res);

        expect_ok(res, "--global-timeout", ".5");
        assert_true(res.o.global_timeout == 0.5);
        result_done(&res);

        expect_ok(res, "--global-timeout", "1000000000");
        assert_true(res.o.global_timeout == 1e9);
        result_done(&res);
}

static void test_script_sources(void **state) {
        Result res;
        (void) state;

        /* Positionals may sit anywhere, and argv stays in order. */
        expect_ok(res, "-I", "test.lua", "-K");
        assert_string_equal(res.o.script_path, "test.lua");
        assert_true(res.o.interactive);
        assert_true(res.o.keep_state);
        assert_string_equal(res.argv[1], "-I");
        assert_string_equal(res.argv[2], "test.lua");
        assert_string_equal(res.argv[3], "-K");
        result_done(&res);

        expect_ok(res, "--", "-odd-name.lua");
        assert_string_equal(res.o.script_path, "-odd-name.lua");
        result_done(&res);

        expect_ok(res, "-");
        assert_string_equal(res.o.script_path, "-");
        result_done(&res);

        expect_error("unexpected argument 'b.lua': only one script may be given (the first was 'a.lua')",
                     "a.lua", "b.lua", NULL);
        expect_error("unexpected argument 'b.lua': only one script may be given (the first was 'a.lua')",
                     "a.lua", "--", "b.lua", NULL);
        expect_error("the script is given twice, as 'a.lua' and with --test-script 'b.lua': give only one",
                     "--test-script", "b.lua", "a.lua", NULL);
        expect_error("empty script path", "", NULL);
        expect_error("--test-script: empty path", "--test-script=", NULL);
        expect_error("--output-directory: empty path", "-o", "", NULL);
        expect_error("--junit-xml: empty path", "--junit-xml", "", NULL);
        expect_error("--config: empty path", "-c", "", NULL);
}

static void test_help_and_version_stop(void **state) {
        Result res;
        (void) state;

        expect_ok(res, "--help", "--bogus", "a", "b");
        assert_true(res.o.help);
        result_done(&res);

        expect_ok(res, "-h");
        assert_true(res.o.help);
        result_done(&res);

        expect_ok(res, "--vers");
        assert_true(res.o.version);
        assert_false(res.o.help);
        result_done(&res);

        /* Errors before it still count, as in argparse. */
        expect_error("unknown option '--bogus'", "--bogus", "--help", NULL);
}

/* getopt keeps state between calls; a failure inside a short-option group must not leak
 * into the next parse. */
static void test_reentrant(void **state) {
        Result res;
        (void) state;

        expect_error("unknown option '-x'", "-xIK", NULL);
        expect_ok(res, "-K", "s.lua");
        assert_true(res.o.keep_state);
        assert_false(res.o.interactive);
        assert_string_equal(res.o.script_path, "s.lua");
        result_done(&res);

        setenv("POSIXLY_CORRECT", "1", 1);
        expect_ok(res, "s.lua", "-I");
        assert_true(res.o.interactive);
        assert_string_equal(res.o.script_path, "s.lua");
        result_done(&res);
        unsetenv("POSIXLY_CORRECT");
}

static void test_junit_path(void **state) {
        Options o = {};
        char *p;
        (void) state;

        assert_int_equal(options_junit_path(&o, &p), 0);
        assert_null(p);

        o.junit_xml = (char *) "junit.xml";
        assert_int_equal(options_junit_path(&o, &p), 0);
        assert_string_equal(p, "./junit.xml");
        free(p);

        o.output_dir = (char *) "/nix/store/out";
        assert_int_equal(options_junit_path(&o, &p), 0);
        assert_string_equal(p, "/nix/store/out/junit.xml");
        free(p);

        o.output_dir = (char *) "/";
        assert_int_equal(options_junit_path(&o, &p), 0);
        assert_string_equal(p, "/junit.xml");
        free(p);

        o.output_dir = (char *) "out/";
        o.junit_xml = (char *) "sub/r.xml";
        assert_int_equal(options_junit_path(&o, &p), 0);
        assert_string_equal(p, "out/sub/r.xml");
        free(p);

        o.junit_xml = (char *) "/abs/r.xml";
        assert_int_equal(options_junit_path(&o, &p), 0);
        assert_string_equal(p, "/abs/r.xml");
        free(p);
}

static void check_dir_error(const char *dir, const char *expected) {
        Options o = { .output_dir = strdup(dir) };
        char *error = NULL;

        assert_int_equal(options_check_output_dir(&o, &error), -EINVAL);
        assert_string_equal(error, expected);
        /* Untouched on failure. */
        assert_string_equal(o.output_dir, dir);
        free(error);
        options_done(&o);
}

typedef struct DirFixture {
        char tmp[32];
        char *file, *sub, *cwd;
} DirFixture;

/* Fixture in setup/teardown, so that a failed assertion (a longjmp) still cleans up. */
static int dir_setup(void **state) {
        DirFixture *f = calloc(1, sizeof(DirFixture));
        int fd;

        setup(state);
        if (!f)
                return -1;
        strcpy(f->tmp, "/tmp/test-options-XXXXXX");
        if (!mkdtemp(f->tmp))
                return -1;
        *state = f;
        f->cwd = getcwd(NULL, 0);
        /* So that the unprivileged check below can reach sub/. */
        if (!f->cwd || chmod(f->tmp, 0755) < 0 ||
            asprintf(&f->file, "%s/file", f->tmp) < 0 || asprintf(&f->sub, "%s/sub", f->tmp) < 0)
                return -1;
        fd = open(f->file, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
        if (fd < 0)
                return -1;
        close(fd);
        return mkdir(f->sub, 0755);
}

static int dir_teardown(void **state) {
        DirFixture *f = *state;

        if (!f)
                return 0;
        if (f->cwd && chdir(f->cwd) < 0)
                return -1;
        if (f->file)
                (void) unlink(f->file);
        if (f->sub)
                (void) rmdir(f->sub);
        if (rmdir(f->tmp) < 0)
                return -1;
        free(f->file);
        free(f->sub);
        free(f->cwd);
        free(f);
        return 0;
}

static void test_output_dir(void **state) {
        DirFixture *f = *state;
        _cleanup_free_ char *missing = NULL, *notdir = NULL, *msg = NULL;
        Options o = {};
        char *error = NULL;

        assert_true(asprintf(&missing, "%s/nope", f->tmp) > 0);
        assert_true(asprintf(&msg, "--output-directory: '%s' does not exist; create it first", missing) > 0);
        check_dir_error(missing, msg);
        free(msg);
        assert_true(asprintf(&msg, "--output-directory: '%s' is not a directory", f->file) > 0);
        check_dir_error(f->file, msg);
        free(msg);
        assert_true(asprintf(&notdir, "%s/x", f->file) > 0);
        assert_true(asprintf(&msg, "--output-directory: cannot use '%s': Not a directory", notdir) > 0);
        check_dir_error(notdir, msg);
        free(msg);
        msg = NULL;

        /* Relative, with dots: resolved to the absolute path. */
        assert_int_equal(chdir(f->tmp), 0);
        o.output_dir = strdup("./sub/../sub");
        assert_int_equal(options_check_output_dir(&o, &error), 0);
        assert_null(error);
        assert_string_equal(o.output_dir, f->sub);
        options_done(&o);

        /* Unset means the current directory. */
        assert_int_equal(options_check_output_dir(&o, &error), 0);
        assert_string_equal(o.output_dir, f->tmp);
        options_done(&o);
}

static void test_output_dir_not_writable(void **state) {
        DirFixture *f = *state;
        _cleanup_free_ char *msg = NULL;
        char buf[512] = {};
        int p[2], status;
        ssize_t n;
        pid_t pid;

        assert_true(asprintf(&msg, "--output-directory: '%s' is not a writable directory: Permission denied", f->sub) > 0);
        if (geteuid() != 0) {
                assert_int_equal(chmod(f->sub, 0555), 0);
                check_dir_error(f->sub, msg);
                return;
        }

        /* Root passes every mode check, so ask as nobody. */
        assert_int_equal(pipe2(p, O_CLOEXEC), 0);
        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                Options co = { .output_dir = strdup(f->sub) };
                char *e = NULL;
                int r;

                close(p[0]);
                if (setresgid(65534, 65534, 65534) < 0 || setresuid(65534, 65534, 65534) < 0)
                        _exit(3);
                r = options_check_output_dir(&co, &e);
                if (e && write(p[1], e, strlen(e)) < 0)
                        _exit(4);
                _exit(r == -EINVAL ? 0 : 5);
        }
        close(p[1]);
        n = read(p[0], buf, sizeof buf - 1);
        close(p[0]);
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
        assert_true(n > 0);
        assert_string_equal(buf, msg);
}

static void test_usage_lists_every_option(void **state) {
        static const char *const visible[] = {
                "--help", "--version", "--config", "--test-script", "--interactive", "--no-interactive",
                "--output-directory", "--output_directory", "--junit-xml", "--log-level", "--global-timeout",
                "--keep-machine-state", "--debug-hook-attach", "-h,", "-c,", "-I,", "-o,", "-K,",
        };
        const char *u = options_usage();
        (void) state;

        assert_true(startswith(u, "Usage: moonrig [OPTIONS] [SCRIPT.lua]\n"));
        assert_int_equal(u[strlen(u) - 1], '\n');
        for (size_t i = 0; i < ELEMENTSOF(visible); i++)
                if (!strstr(u, visible[i]))
                        fail_msg("usage lacks %s", visible[i]);
        /* Hidden, as in the NixOS driver. */
        assert_null(strstr(u, "keep-vm-state"));
        /* Fits an 80-column terminal. */
        for (const char *l = u; *l; l += strcspn(l, "\n") + 1)
                if (strcspn(l, "\n") > 79)
                        fail_msg("usage line too long: %.*s", (int) strcspn(l, "\n"), l);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup(test_defaults, setup),
                cmocka_unit_test_setup(test_long_options, setup),
                cmocka_unit_test_setup(test_short_options, setup),
                cmocka_unit_test_setup(test_prefixes_and_aliases, setup),
                cmocka_unit_test_setup(test_interactive_last_wins, setup),
                cmocka_unit_test_setup(test_keep_vm_state, setup),
                cmocka_unit_test_setup(test_unknown_and_malformed, setup),
                cmocka_unit_test_setup(test_log_level, setup),
                cmocka_unit_test_setup(test_global_timeout, setup),
                cmocka_unit_test_setup(test_script_sources, setup),
                cmocka_unit_test_setup(test_help_and_version_stop, setup),
                cmocka_unit_test_setup(test_reentrant, setup),
                cmocka_unit_test_setup(test_junit_path, setup),
                cmocka_unit_test_setup_teardown(test_output_dir, dir_setup, dir_teardown),
                cmocka_unit_test_setup_teardown(test_output_dir_not_writable, dir_setup, dir_teardown),
                cmocka_unit_test_setup(test_usage_lists_every_option, setup),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
