/* main.c: moonrig's entry point: options, config, namespaces, then the script on the loop. */
#define _GNU_SOURCE
#include <signal.h>
#include <sys/stat.h>

#include "config.h"
#include "exitcode.h"
#include "junit.h"
#include "log.h"
#include "options.h"
#include "runtime.h"
#include "sandbox.h"
#include "util.h"
#include "moonrig-config.h"

static _Noreturn void die_usage(const char *msg) {
        fprintf(stderr, "moonrig: %s (see moonrig --help)\n", msg);
        exit(EXIT_USAGE);
}

static int write_junit(const JUnit *j, const char *path, uint64_t total) {
        _cleanup_fclose_ FILE *f = fopen(path, "we");
        if (!f) {
                log_error("cannot write the JUnit report %s: %m", path);
                return -errno;
        }
        return junit_write(j, f, total);
}

int main(int argc, char **argv) {
        _cleanup_(options_done) Options o = {};
        _cleanup_free_ char *error = NULL;
        _cleanup_free_ char *junit_path = NULL;
        Config *config = NULL;
        uint64_t start = now_usec();
        int r;

        r = options_parse(argc, argv, &o, &error);
        if (r < 0)
                die_usage(error);
        if (o.help) {
                fputs(options_usage(), stdout);
                return EXIT_PASSED;
        }
        if (o.version) {
                printf("moonrig %s\n", PACKAGE_VERSION);
                return EXIT_PASSED;
        }
        for (char **w = o.warnings; w && *w; w++)
                fprintf(stderr, "moonrig: warning: %s\n", *w);
        /* The check makes the path absolute, "." too: remember whether -o was given. */
        bool output_given = o.output_dir != NULL;
        if (options_check_output_dir(&o, &error) < 0)
                die_usage(error);

        if (o.config_path) {
                r = config_load(o.config_path, &config, &error);
                if (r < 0) {
                        fprintf(stderr, "moonrig: %s\n", error);
                        return EXIT_USAGE;
                }
                if (!o.script_path && config->test_script)
                        o.script_path = strdup(config->test_script);
                if (!o.global_timeout_set && config->global_timeout > 0)
                        o.global_timeout = config->global_timeout;
        }
        if (!o.script_path)
                die_usage("no test script given (moonrig [options] SCRIPT.lua, or --config with test_script)");
        if (access(o.script_path, R_OK) < 0) {
                fprintf(stderr, "moonrig: cannot read the test script %s: %m\n", o.script_path);
                config_free(config);
                return EXIT_USAGE;
        }
        r = options_junit_path(&o, &junit_path);
        if (r < 0) {
                fprintf(stderr, "moonrig: %s\n", strerror(-r));
                return EXIT_USAGE;
        }

        /* As root, the run gets its own namespaces, so nothing it starts outlives it. */
        if (geteuid() == 0 && !getenv("MOONRIG_NO_SANDBOX")) {
                r = sandbox_enter();
                if (r < 0) {
                        fprintf(stderr, "moonrig: cannot create the run's namespaces (%s); "
                                "moonrig needs a kernel with PID, mount and network namespaces\n",
                                strerror(-r));
                        return EXIT_HOST;
                }
        }

        JUnit *junit = junit_path ? junit_new("moonrig") : NULL;
        log_setup(o.log_level, logfmt_want_colour(STDERR_FILENO), junit);

        Runtime *rt = NULL;
        r = runtime_new(&rt);
        if (r < 0) {
                fprintf(stderr, "moonrig: cannot set up the Lua runtime: %s\n", strerror(-r));
                return EXIT_HOST;
        }
        runtime_set_output_dir(rt, o.output_dir, output_given);
        runtime_set_keep_state(rt, o.keep_state);

        int code = EXIT_PASSED;
        r = runtime_load_script(rt, o.script_path, &error);
        if (r < 0) {
                log_test_error("%s", error);
                code = EXIT_USAGE;
                goto finish;
        }
        if (config) {
                r = runtime_add_config_nodes(rt, config, &error);
                if (r < 0) {
                        log_test_error("%s: %s", o.config_path, error);
                        code = EXIT_USAGE;
                        goto finish;
                }
        }

        if (o.interactive)
                code = runtime_repl(rt, o.script_path);
        else {
                log_message(NULL, "Test will time out and terminate in %g seconds", o.global_timeout);
                code = runtime_run_script(rt, o.global_timeout);
        }

finish:
        log_nested_begin(NULL, "cleanup");
        uint64_t cleanup_start = now_usec();
        runtime_free(rt);
        log_nested_end(NULL, "cleanup", cleanup_start);
        if (junit) {
                write_junit(junit, junit_path, now_usec() - start);
                junit_free(junit);
        }
        config_free(config);
        return code;
}
