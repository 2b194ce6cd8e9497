/* nodecommon.h: what the container and VM handles (l_node.c, l_vm.c) share: tasks waiting for
 * one event (ready, exit, a console line), and a node's console log. */
#pragma once

#include <lua.h>
#include <stdio.h>

#include "sched.h"

typedef struct WaitList {
        Wait **v;
        size_t n, cap;
} WaitList;

/* Wakes every task on the list (with a failure when failure_kind is set); tasks added meanwhile stay. */
void waitlist_wake(WaitList *l, const char *failure_kind, const char *message);

/* Suspends the task on the list until woken, or fails it with a Timeout after timeout seconds
 * (0: none). Returns what sched_suspend returns. */
int waitlist_suspend(lua_State *L, WaitList *l, double timeout, Wait *w);

/* Every console (and journal) line of a node, for get_console_log and wait_for_console_text. */
typedef struct ConsoleLog {
        char *text;
        size_t len, cap;
        size_t lines;              /* complete lines so far */
        FILE *file;                /* <out>/<name>.console.log with -o, line-buffered */
        WaitList waiters;          /* woken at each line */
} ConsoleLog;

/* Opens path for appending (NULL: no file). 0 or -errno. */
int console_log_open(ConsoleLog *c, const char *path);

/* Keeps the line, writes it to the file, logs it as "node # line" and wakes the waiters. */
void console_log_add(ConsoleLog *c, const char *node, const char *line, size_t len);

void console_log_done(ConsoleLog *c);
