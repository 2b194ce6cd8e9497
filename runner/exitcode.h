/* exitcode.h: moonrig's exit statuses, and the one table from a failure's kind to its status. */
#pragma once

typedef enum ExitCode {
        EXIT_PASSED = 0,        /* the test passed */
        EXIT_FAILED = 1,        /* a test failed */
        EXIT_USAGE = 2,         /* bad usage, script or config */
        EXIT_HOST = 3,          /* the host lacks a prerequisite */
        EXIT_TIMEOUT = 4,       /* the global timeout fired */
} ExitCode;

/* The exit status of a run that ended with a failure of this kind ("UsageError", "HostError",
 * "TestFailure", ...; NULL for an error that is no failure object). */
ExitCode exit_code_for_failure(const char *kind);
