/* repl.c: the interactive prompt (moonrig -I). */
#define _GNU_SOURCE
#include "runtime.h"
#include "log.h"

int repl_run(Runtime *rt, const char *script_path);
int repl_run(Runtime *rt, const char *script_path) {
        (void) rt;
        (void) script_path;
        log_error("the interactive mode is not available yet");
        return 2;
}
