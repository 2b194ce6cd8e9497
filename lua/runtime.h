/* runtime.h: the Lua state, its stdlib, and running the test script on the event loop. */
#pragma once

#include <stdbool.h>

struct Config;

typedef struct Runtime Runtime;
typedef void (*runtime_cleanup_fn)(void);

int runtime_new(Runtime **ret);
void runtime_free(Runtime *rt);  /* runs the cleanups (nodes, networks) last first */

/* What the command line says the script sees: the output directory (NULL: the current one), and
 * whether nodes keep <output_dir>/<name>.console.log (only with an explicit -o); whether node
 * state is kept between runs. */
void runtime_set_output_dir(Runtime *rt, const char *output_dir, bool console_logs);
void runtime_set_keep_state(Runtime *rt, bool keep);

/* Declare the nodes of a nixpkgs driver configuration before the script runs. */
int runtime_add_config_nodes(Runtime *rt, const struct Config *cfg, char **ret_error);

/* The REPL takes Ctrl-C (SIGINT) instead of stopping the run; NULL gives it back. */
typedef void (*runtime_interrupt_fn)(void);
void runtime_set_interrupt_handler(runtime_interrupt_fn fn);

/* Called by modules that own resources which must go when the run ends. */
void runtime_add_cleanup(runtime_cleanup_fn fn);

/* Load the script; a syntax or I/O error is returned as one line "file:line: message". */
int runtime_load_script(Runtime *rt, const char *path, char **ret_error);
int runtime_push_script(Runtime *rt);

/* Run the loaded script as a task, stopped after global_timeout seconds. Returns the exit
 * status: 0 passed, 1 failed (the report was logged), 4 global timeout, 128+N a signal. */
int runtime_run_script(Runtime *rt, double global_timeout);

/* The interactive prompt (repl.c) over the declared nodes; returns the exit status. */
int runtime_repl(Runtime *rt, const char *script_path);

/* Run the function with nargs arguments on top of the stack as a task and report a
 * failure; same return values. */
int runtime_call(Runtime *rt, int nargs, const char *name);
