/* fuzz_options.c: fuzz target for options_parse(), the command line. The input is the arguments
 * after argv[0], separated by NUL bytes; a first argument "logLevel=X" sets that environment
 * variable instead (the parser reads it). Whatever the arguments: a result that holds the
 * documented invariants or a one-line error with *ret zeroed, argv not reordered, and the same
 * answer when parsed again (getopt keeps state between calls). Built as fuzz.h says. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include <math.h>

#include "fuzz.h"
#include "options.h"
#include "util.h"

#define MAX_ARGS 64

static size_t n_ok, n_rejected;

static bool options_zero(const Options *o) {
        static const Options zero;

        return memcmp(o, &zero, sizeof zero) == 0;
}

static void check_same(const Options *a, const Options *b) {
        fuzz_check(a->interactive == b->interactive && a->keep_state == b->keep_state && a->help == b->help &&
                   a->version == b->version && a->global_timeout_set == b->global_timeout_set);
        fuzz_check(a->log_level == b->log_level && a->global_timeout == b->global_timeout);
        fuzz_check(streq_ptr(a->output_dir, b->output_dir) && streq_ptr(a->junit_xml, b->junit_xml));
        fuzz_check(streq_ptr(a->config_path, b->config_path) && streq_ptr(a->script_path, b->script_path));
        fuzz_check(streq_ptr(a->debug_hook, b->debug_hook));
}

static int parse(int argc, char **argv, Options *o, char **error) {
        char *saved[MAX_ARGS + 2];
        int r;

        memcpy(saved, argv, sizeof(char *) * (size_t) (argc + 1));
        r = options_parse(argc, argv, o, error);
        /* "argv is not reordered": the caller keeps using it. */
        fuzz_check(memcmp(saved, argv, sizeof(char *) * (size_t) (argc + 1)) == 0);
        return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        char *text = fuzz_dup(data, size, 1), *argv[MAX_ARGS + 2] = { (char *) "moonrig" }, *error = NULL,
             *error2 = NULL, *junit = NULL;
        int argc = 1, r, r2;
        Options o, o2;

        for (size_t i = 0; i < size && argc <= MAX_ARGS; i += strlen(text + i) + 1)
                argv[argc++] = text + i;
        argv[argc] = NULL;
        if (argc > 1 && startswith(argv[1], "logLevel=")) {
                setenv("logLevel", argv[1] + strlen("logLevel="), 1);
                argv[1] = argv[0];
                r = parse(argc - 1, argv + 1, &o, &error);
                r2 = parse(argc - 1, argv + 1, &o2, &error2);
                unsetenv("logLevel");
        } else {
                r = parse(argc, argv, &o, &error);
                r2 = parse(argc, argv, &o2, &error2);
        }
        fuzz_check(r == r2);
        if (r == -ENOMEM)
                goto out;
        if (r < 0) {
                fuzz_check(r == -EINVAL);
                fuzz_check(error && error[0] && error2 && streq(error, error2));
                fuzz_check(options_zero(&o));
                n_rejected++;
                goto out;
        }
        fuzz_check(r == 0 && !error);
        check_same(&o, &o2);
        fuzz_check(o.log_level >= LOG_DEBUG && o.log_level <= LOG_ERROR);
        fuzz_check(isfinite(o.global_timeout) && o.global_timeout > 0);
        fuzz_check(o.global_timeout_set || o.global_timeout == OPTIONS_DEFAULT_GLOBAL_TIMEOUT);
        fuzz_check(!o.script_path || o.script_path[0]);
        fuzz_check(options_junit_path(&o, &junit) == 0);
        fuzz_check(!junit == !o.junit_xml);
        fuzz_check(!junit || !o.junit_xml[0] || strstr(junit, o.junit_xml));
        n_ok++;
out:
        free(junit);
        free(error);
        free(error2);
        options_done(&o);
        options_done(&o2);
        free(text);
        return 0;
}

/* Every spelling, and values for them. */
static const char *const tokens[] = {
        "-I", "--interactive", "--no-interactive", "-o", "--output-directory", "--output_directory",
        "--junit-xml", "--junit-xml=", "--log-level", "--log-level=debug", "--global-timeout", "--global-timeout=",
        "-c", "--config", "--test-script", "-K", "--keep-machine-state", "--keep-vm-state", "--debug-hook-attach",
        "-h", "--help", "--version", "--", "-", "--h", "--ke", "--co", "-IK", "-oK", "logLevel=", "debug", "info",
        "warning", "error", "WARNING", "0", "1e9", "1e999", "inf", "nan", "0x10", " 5", "-1", "3600", "0.000001",
        "/abs/r.xml", "rel.xml", "script.lua", "",
};

static void summary(void) {
        fprintf(stderr, "fuzz_options: %zu parsed, %zu rejected\n", n_ok, n_rejected);
}

const FuzzTarget fuzz_target = {
        .name = "options",
        .tokens = tokens,
        .n_tokens = ELEMENTSOF(tokens),
        .summary = summary,
};
