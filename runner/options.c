/* options.c: the command line. Pure parsing in options_parse(); the one check that needs the
 * file system (the output directory) is options_check_output_dir(), called separately. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <sys/stat.h>

#include "options.h"
#include "util.h"

/* Callers turn seconds into microseconds in a uint64_t; this keeps that far from overflow. */
#define GLOBAL_TIMEOUT_MAX 1e9

enum {
        ARG_NO_INTERACTIVE = 0x100,
        ARG_JUNIT_XML,
        ARG_LOG_LEVEL,
        ARG_GLOBAL_TIMEOUT,
        ARG_TEST_SCRIPT,
        ARG_KEEP_VM_STATE,
        ARG_DEBUG_HOOK,
        ARG_VERSION,
};

/* Prefixes are accepted by getopt_long as argparse does (run.nix passes "--debug-hook=",
 * the NixOS self-test "--junit="). Two spellings of one option share a val, so a prefix of
 * both ("--output") is not ambiguous. */
static const struct option long_options[] = {
        { "interactive",        no_argument,       NULL, 'I' },
        { "no-interactive",     no_argument,       NULL, ARG_NO_INTERACTIVE },
        { "output-directory",   required_argument, NULL, 'o' },
        { "output_directory",   required_argument, NULL, 'o' },
        { "junit-xml",          required_argument, NULL, ARG_JUNIT_XML },
        { "log-level",          required_argument, NULL, ARG_LOG_LEVEL },
        { "global-timeout",     required_argument, NULL, ARG_GLOBAL_TIMEOUT },
        { "config",             required_argument, NULL, 'c' },
        { "test-script",        required_argument, NULL, ARG_TEST_SCRIPT },
        { "keep-machine-state", no_argument,       NULL, 'K' },
        { "keep-vm-state",      no_argument,       NULL, ARG_KEEP_VM_STATE },
        { "debug-hook-attach",  required_argument, NULL, ARG_DEBUG_HOOK },
        { "help",               no_argument,       NULL, 'h' },
        { "version",            no_argument,       NULL, ARG_VERSION },
        {}
};

/* '-': positionals come back in order as 1, so argv is never permuted and POSIXLY_CORRECT
 * changes nothing; ':': report a missing value as ':' and print nothing ourselves. */
static const char short_options[] = "-:hIKo:c:";

static const char usage_text[] =
        "Usage: moonrig [OPTIONS] [SCRIPT.lua]\n"
        "\n"
        "Run an integration test script written in Lua.\n"
        "\n"
        "Options:\n"
        "  -h, --help                   show this help and exit\n"
        "      --version                show the version and exit\n"
        "  -c, --config FILE            NixOS test driver JSON configuration: nodes,\n"
        "                               VLANs, global timeout, test script\n"
        "      --test-script FILE       the test script, as SCRIPT.lua; overrides the\n"
        "                               config's test_script\n"
        "  -I, --interactive            define the nodes, then open a Lua REPL\n"
        "      --no-interactive         run the script (the default)\n"
        "  -o, --output-directory DIR   where the JUnit report, console logs,\n"
        "                               screenshots and copied files go (default: the\n"
        "                               current directory; also --output_directory)\n"
        "      --junit-xml PATH         write a JUnit XML report to PATH, relative to\n"
        "                               the output directory unless absolute\n"
        "      --log-level LEVEL        debug, info, warning or error (default:\n"
        "                               $logLevel, else info)\n"
        "      --global-timeout SECONDS end the test after SECONDS (default: the\n"
        "                               config's global_timeout, else 3600)\n"
        "  -K, --keep-machine-state     reuse node state from a previous run instead\n"
        "                               of resetting it\n"
        "      --debug-hook-attach CMD  on a failure, pause and print how to enter the\n"
        "                               Nix sandbox with CMD (nixpkgs breakpointHook)\n"
        "\n"
        "Long options may be abbreviated to any unambiguous prefix (--junit=r.xml).\n"
        "Exit status: 0 passed, 1 a test failed, 2 bad usage, script or config,\n"
        "3 the host lacks a prerequisite, 4 global timeout.\n";

const char *options_usage(void) {
        return usage_text;
}

_printf_(2, 3)
static int fail(char **ret_error, const char *fmt, ...) {
        va_list ap;
        char *s;
        int r;

        va_start(ap, fmt);
        r = vasprintf(&s, fmt, ap);
        va_end(ap);
        if (r < 0)
                return -ENOMEM;
        *ret_error = s;
        return -EINVAL;
}

void options_done(Options *o) {
        if (!o)
                return;
        free(o->output_dir);
        free(o->junit_xml);
        free(o->config_path);
        free(o->script_path);
        free(o->debug_hook);
        strv_free(o->warnings);
        *o = (Options) {};
}

static int log_level_from_string(const char *s, LogLevel *ret) {
        static const char *const names[] = {
                [LOG_DEBUG] = "debug",
                [LOG_INFO] = "info",
                [LOG_WARNING] = "warning",
                [LOG_ERROR] = "error",
        };

        for (LogLevel l = LOG_DEBUG; l <= LOG_ERROR; l++)
                if (streq(s, names[l])) {
                        *ret = l;
                        return 0;
                }
        return -EINVAL;
}

static int parse_seconds(const char *s, double *ret) {
        char *end;
        double d;

        /* strtod would also take "inf", "nan", hex and leading blanks. */
        if (!s[0] || !strchr("0123456789.", s[0]) || s[strspn(s, "0123456789.eE+-")] != '\0')
                return -EINVAL;
        errno = 0;
        d = strtod(s, &end);
        if (errno != 0 || *end || !isfinite(d) || d <= 0)
                return -EINVAL;
        if (d > GLOBAL_TIMEOUT_MAX)
                return -ERANGE;
        *ret = d;
        return 0;
}

static int strv_push(char ***v, const char *s) {
        size_t n = 0;
        char **nv;
        char *c;

        while (*v && (*v)[n])
                n++;
        c = strdup(s);
        if (!c)
                return -ENOMEM;
        nv = realloc(*v, (n + 2) * sizeof(char *));
        if (!nv) {
                free(c);
                return -ENOMEM;
        }
        nv[n] = c;
        nv[n + 1] = NULL;
        *v = nv;
        return 0;
}

/* Replaces *dst with a copy of a path-valued argument, rejecting an empty one. */
static int set_path(char **dst, const char *value, const char *option, char **ret_error) {
        char *c;

        if (!value[0])
                return fail(ret_error, "%s: empty path", option);
        c = strdup(value);
        if (!c)
                return -ENOMEM;
        free(*dst);
        *dst = c;
        return 0;
}

/* getopt only says "unknown or ambiguous"; argparse names the candidates, so do we. */
static int fail_unknown_long(const char *arg, char **ret_error) {
        _cleanup_free_ char *name = NULL, *candidates = NULL;
        size_t len = 0, n = 0;
        int last_val = 0;
        FILE *f;

        name = strndup(arg, strcspn(arg, "="));
        if (!name)
                return -ENOMEM;
        f = open_memstream(&candidates, &len);
        if (!f)
                return -ENOMEM;
        for (const struct option *o = long_options; o->name; o++) {
                if (!startswith(o->name, name + 2) || o->val == last_val)
                        continue;
                fprintf(f, "%s--%s", n > 0 ? ", " : "", o->name);
                last_val = o->val;
                n++;
        }
        if (fclose(f) != 0)
                return -ENOMEM;
        if (n > 1)
                return fail(ret_error, "ambiguous option '%s' (could be %s)", name, candidates);
        return fail(ret_error, "unknown option '%s'", name);
}

int options_parse(int argc, char **argv, Options *ret, char **ret_error) {
        _cleanup_(options_done) Options o = {
                .log_level = LOG_INFO,
                .global_timeout = OPTIONS_DEFAULT_GLOBAL_TIMEOUT,
        };
        bool log_level_set = false;
        const char *test_script = NULL, *positional = NULL;
        int c, r;

        *ret = (Options) {};
        *ret_error = NULL;

        /* 0, not 1: makes glibc forget a half-parsed group of short options from a
         * previous call, so tests can call us again and again. */
        optind = 0;
        opterr = 0;

        for (;;) {
                /* Where this option starts: tells "--foo" apart from a short option later
                 * in a group like "-Ix", since getopt reports both through optopt. */
                int at = optind > 0 ? optind : 1;
                bool is_long = at < argc && startswith(argv[at], "--");

                c = getopt_long(argc, argv, short_options, long_options, NULL);
                if (c < 0)
                        break;

                switch (c) {
                case 1:
                        if (positional)
                                return fail(ret_error, "unexpected argument '%s': only one script may be given (the first was '%s')",
                                            optarg, positional);
                        if (!optarg[0])
                                return fail(ret_error, "empty script path");
                        positional = optarg;
                        break;
                case 'h':
                        o.help = true;
                        goto done;
                case ARG_VERSION:
                        o.version = true;
                        goto done;
                case 'I':
                        o.interactive = true;
                        break;
                case ARG_NO_INTERACTIVE:
                        o.interactive = false;
                        break;
                case 'o':
                        r = set_path(&o.output_dir, optarg, "--output-directory", ret_error);
                        if (r < 0)
                                return r;
                        break;
                case ARG_JUNIT_XML:
                        r = set_path(&o.junit_xml, optarg, "--junit-xml", ret_error);
                        if (r < 0)
                                return r;
                        break;
                case ARG_LOG_LEVEL:
                        if (log_level_from_string(optarg, &o.log_level) < 0)
                                return fail(ret_error, "--log-level: unknown level '%s' (use debug, info, warning or error)",
                                            optarg);
                        log_level_set = true;
                        break;
                case ARG_GLOBAL_TIMEOUT:
                        r = parse_seconds(optarg, &o.global_timeout);
                        if (r == -ERANGE)
                                return fail(ret_error, "--global-timeout: %s seconds is too long (at most %.0f)",
                                            optarg, GLOBAL_TIMEOUT_MAX);
                        if (r < 0)
                                return fail(ret_error, "--global-timeout: '%s' is not a positive number of seconds",
                                            optarg);
                        o.global_timeout_set = true;
                        break;
                case 'c':
                        r = set_path(&o.config_path, optarg, "--config", ret_error);
                        if (r < 0)
                                return r;
                        break;
                case ARG_TEST_SCRIPT:
                        if (!optarg[0])
                                return fail(ret_error, "--test-script: empty path");
                        test_script = optarg;
                        break;
                case ARG_KEEP_VM_STATE:
                        /* Once, however often it is given; the wording is the NixOS driver's. */
                        if (!o.warnings) {
                                r = strv_push(&o.warnings,
                                              "The flag '--keep-vm-state' is deprecated. Use '--keep-machine-state' instead.");
                                if (r < 0)
                                        return r;
                        }
                        __attribute__((fallthrough));
                case 'K':
                        o.keep_state = true;
                        break;
                case ARG_DEBUG_HOOK:
                        free(o.debug_hook);
                        o.debug_hook = strdup(optarg);
                        if (!o.debug_hook)
                                return -ENOMEM;
                        break;
                case ':':
                        if (is_long)
                                return fail(ret_error, "option '%s' needs a value", argv[at]);
                        return fail(ret_error, "option '-%c' needs a value", optopt);
                case '?':
                        if (is_long && optopt != 0)
                                return fail(ret_error, "option '%.*s' does not take a value",
                                            (int) strcspn(argv[at], "="), argv[at]);
                        if (is_long)
                                return fail_unknown_long(argv[at], ret_error);
                        return fail(ret_error, "unknown option '-%c'", optopt);
                default:
                        return fail(ret_error, "internal error: getopt returned %d", c);
                }
        }

        /* Whatever follows "--" is positional too. */
        for (; optind < argc; optind++) {
                if (positional)
                        return fail(ret_error, "unexpected argument '%s': only one script may be given (the first was '%s')",
                                    argv[optind], positional);
                if (!argv[optind][0])
                        return fail(ret_error, "empty script path");
                positional = argv[optind];
        }

        if (positional && test_script)
                return fail(ret_error, "the script is given twice, as '%s' and with --test-script '%s': give only one",
                            positional, test_script);
        if (positional || test_script) {
                o.script_path = strdup(positional ?: test_script);
                if (!o.script_path)
                        return -ENOMEM;
        }

        if (!log_level_set) {
                const char *e = getenv("logLevel");

                /* Empty counts as unset, as in the NixOS driver. */
                if (e && e[0] && log_level_from_string(e, &o.log_level) < 0)
                        return fail(ret_error, "environment variable logLevel: unknown level '%s' (use debug, info, warning or error)",
                                    e);
        }

done:
        *ret = o;
        o = (Options) {};
        return 0;
}

int options_check_output_dir(Options *o, char **ret_error) {
        const char *dir = o->output_dir ?: ".";
        struct stat st;
        char *abs;

        *ret_error = NULL;

        if (stat(dir, &st) < 0) {
                if (errno == ENOENT)
                        return fail(ret_error, "--output-directory: '%s' does not exist; create it first", dir);
                return fail(ret_error, "--output-directory: cannot use '%s': %m", dir);
        }
        if (!S_ISDIR(st.st_mode))
                return fail(ret_error, "--output-directory: '%s' is not a directory", dir);
        /* Fail now, not after an hour of testing when the report is written. */
        if (access(dir, W_OK | X_OK) < 0)
                return fail(ret_error, "--output-directory: '%s' is not a writable directory: %m", dir);

        abs = realpath(dir, NULL);
        if (!abs) {
                if (errno == ENOMEM)
                        return -ENOMEM;
                return fail(ret_error, "--output-directory: cannot resolve '%s': %m", dir);
        }
        free(o->output_dir);
        o->output_dir = abs;
        return 0;
}

int options_junit_path(const Options *o, char **ret) {
        const char *dir = o->output_dir ?: ".";
        size_t l;
        char *p;

        *ret = NULL;
        if (!o->junit_xml)
                return 0;

        if (o->junit_xml[0] == '/')
                p = strdup(o->junit_xml);
        else {
                l = strlen(dir);
                if (asprintf(&p, "%s%s%s", dir, l > 0 && dir[l - 1] == '/' ? "" : "/", o->junit_xml) < 0)
                        p = NULL;
        }
        if (!p)
                return -ENOMEM;
        *ret = p;
        return 0;
}
