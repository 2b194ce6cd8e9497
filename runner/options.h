/* options.h: the moonrig command line, parsed into a struct without touching the system.
 * Flags follow the NixOS test driver (nixos-test-driver), so a Nix build can call either. */
#pragma once

#include <stdbool.h>

#ifndef MOONRIG_LOGLEVEL_DEFINED
#define MOONRIG_LOGLEVEL_DEFINED
/* Same order and values as the NixOS driver's LogLevel enum. */
typedef enum LogLevel {
        LOG_DEBUG = 1,
        LOG_INFO,
        LOG_WARNING,
        LOG_ERROR,
} LogLevel;
#endif

#define OPTIONS_DEFAULT_GLOBAL_TIMEOUT 3600.0

typedef struct Options {
        bool interactive;
        bool keep_state;
        bool help;
        bool version;
        /* True when --global-timeout was given: it then wins over the config's global_timeout. */
        bool global_timeout_set;
        char *output_dir;       /* NULL means the current directory */
        char *junit_xml;        /* as given; see options_junit_path() */
        LogLevel log_level;
        double global_timeout;  /* seconds */
        char *config_path;
        char *script_path;      /* positional SCRIPT or --test-script; NULL if neither */
        char *debug_hook;       /* --debug-hook-attach CMD */
        /* NULL-terminated; lines the caller should log at warning level
         * (e.g. deprecated spellings). NULL when there are none. */
        char **warnings;
} Options;

/* Parses argv[1..argc) into *ret (which the caller then owns; free with options_done()).
 * Reads the environment variable logLevel for the default log level. Stops early on --help
 * and --version, as argparse does. Returns 0, -EINVAL with *ret_error set to one line naming
 * the option and the problem (the caller prints it with the usage hint and exits 2), or
 * -ENOMEM. On failure *ret is left zeroed. argv is not reordered. */
int options_parse(int argc, char **argv, Options *ret, char **ret_error);

void options_done(Options *o);

/* The I/O half: checks that o->output_dir (or "." when unset) is an existing, writable
 * directory and replaces it with its absolute path. Returns 0, -EINVAL with *ret_error set,
 * or -ENOMEM. */
int options_check_output_dir(Options *o, char **ret_error);

/* The JUnit report path: --junit-xml joined onto the output directory, unless absolute.
 * *ret is NULL (and 0 returned) when no report was asked for. Returns 0 or -ENOMEM. */
int options_junit_path(const Options *o, char **ret);

/* The --help text, every visible option, ending in a newline. */
const char *options_usage(void);
