/* sched.h: the coroutine scheduler. Every script task is a Lua thread resumed by the one
 * sd-event loop; C functions that wait arm an event source and yield with a tag. */
#pragma once

#include <lua.h>
#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-event.h>

typedef struct Task Task;
typedef struct Wait Wait;

/* A wait is what a task is blocked on. The waiter fills in cancel/data; the scheduler
 * owns the Wait and frees it once the task is woken or cancelled. */
typedef void (*wait_cancel_fn)(Wait *w);
/* What a wait does when its deadline passes (it must wake the wait). */
typedef void (*wait_timeout_fn)(Wait *w);

struct Wait {
        Task *task;
        char *what;          /* "sleep 2.00 s", "server: waiting for unit nginx.service" */
        char *where;         /* "test.lua:12", the script line that waits */
        wait_cancel_fn cancel;
        void *data;
        /* owned by the scheduler (sched_suspend_timeout) */
        sd_event_source *deadline;
        wait_timeout_fn on_timeout;
};

#define SCHED_NO_DEADLINE UINT64_MAX

int sched_init(lua_State *L, sd_event *e);
void sched_done(void);
sd_event *sched_event(void);
lua_State *sched_main_state(void);

/* Make a task running fn with nargs arguments above it on L's stack (all popped). */
Task *sched_spawn(lua_State *L, const char *name, int nargs);

/* Inside a C function called from a task: create the wait, then `return sched_suspend(L, w)`.
 * The waiter later calls sched_wake_ok/sched_wake_error, which resumes the task; the C
 * function's caller then receives the values pushed by the waker. */
Wait *sched_wait_new(lua_State *L, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int sched_suspend(lua_State *L, Wait *w);
/* Free a wait that was made but will not be suspended on (its binding failed before): call it
 * before raising, so the error leaks nothing. */
void sched_wait_discard(Wait *w);
/* As sched_suspend, with the wait's deadline kept by the scheduler: unless woken first, after
 * timeout_usec (SCHED_NO_DEADLINE: never) the wait's cancel function runs, then on_timeout(w)
 * wakes it; with on_timeout NULL it fails with a Timeout failure "timed out: <what>". If the
 * deadline cannot be armed, the wait is cancelled and freed and a Lua error is raised. */
int sched_suspend_timeout(lua_State *L, Wait *w, uint64_t timeout_usec, wait_timeout_fn on_timeout);

/* Resume the waiting task. push() pushes the result values onto the given state and
 * returns how many (may be NULL for none). */
typedef int (*sched_push_fn)(lua_State *L, void *userdata);
void sched_wake(Wait *w, bool ok, sched_push_fn push, void *userdata);
void sched_wake_ok(Wait *w);
/* Wake with a failure object built by the stdlib: kind and message, plus optional fields. */
void sched_wake_failure(Wait *w, const char *kind, const char *message);
/* The same, with one more string field on the failure (field = value; none when value is NULL),
 * so that the stdlib reads what happened from a field, never from the message's text. */
void sched_wake_failure_field(Wait *w, const char *kind, const char *message, const char *field, const char *value);

/* True while a task (not the REPL's main state) is running: waits are only allowed then. */
bool sched_in_task(lua_State *L);

/* Run the loop until `t` has finished. Returns 0, or the loop's exit code when it was told to
 * stop (global timeout, signal). On return *ret_ok tells if the task succeeded; on failure
 * its error value is left on the top of the main state's stack and the failing thread in
 * *ret_thread (for tracebacks). */
int sched_run_until(Task *t, bool *ret_ok, lua_State **ret_thread);

/* Cancel every live task except the main state (global timeout, Ctrl-C in the REPL). */
void sched_cancel_all(void);

/* Stop sched_run_until with this exit code (signals, fatal errors). */
void sched_stop(int code);

/* Print each live task and what it waits for, where. */
void sched_report_waits(void (*line)(const char *text));

/* Create a failure object (stdlib's failure()) on L's stack. */
void sched_push_failure(lua_State *L, const char *kind, const char *message);

/* The global timeout: once it expires, report waits and stop the loop with exit code 4. */
int sched_arm_global_timeout(double seconds);

/* The chunk-name prefix of the embedded stdlib: frames from it are not the user's. */
#define STDLIB_CHUNK_PREFIX "=moonrig/"

/* Find the innermost script line (a frame outside the stdlib and C) of L: "file:line". */
char *sched_script_where(lua_State *L);

void sched_open(lua_State *L);  /* sleep, parallel, spawn into the global table */
