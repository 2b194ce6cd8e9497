/* exitcode.c: which failure kinds end a run with which exit status. */
#include "exitcode.h"
#include "util.h"

static const struct {
        const char *kind;
        ExitCode code;
} table[] = {
        /* A mistake in the script's declarations (a bad node name, an unknown option) is bad
         * usage, like a syntax error. */
        { "UsageError", EXIT_USAGE },
        /* The host lacks something the test needs (root, a device, a tool). */
        { "HostError", EXIT_HOST },
};

ExitCode exit_code_for_failure(const char *kind) {
        if (kind)
                for (size_t i = 0; i < ELEMENTSOF(table); i++)
                        if (streq(table[i].kind, kind))
                                return table[i].code;
        return EXIT_FAILED;
}
