/* nodecommon.h: what the container and VM handles (l_node.c, l_vm.c) share: tasks waiting for
 * one event (ready, exit, a console line), and a node's console log. */
#pragma once

#include <lauxlib.h>
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

/* ---- the node handle, one for every kind (l_machine.c) ---- */

#include <jansson.h>
#include <stdbool.h>

#include "links.h"
#include "machine.h"

typedef struct Units Units;

/* One of the node's links. A container: a veth whose peer is born in its network namespace, made
 * again at every boot. A VM: a tap, made at its first start (ifname and the addresses unused). */
typedef Link NodeLink;

typedef struct Node Node;

/* What a kind's binding (l_node.c, l_vm.c) adds to the handle. */
typedef struct NodeKind {
        MachineKind kind;
        const char *noun;                  /* "container", "VM" */
        const char *died;                  /* a command's error when the machine went away under it */
        const char *exit_before_ready;     /* "%s ... (status %d) ... %s%s": name, status, ": ", message */
        /* The machine, made at the first start (a VM's taps are known then); NULL: made at
         * declaration. Raises. */
        void (*create)(lua_State *L, Node *n);
        void (*free_data)(void *data);
} NodeKind;

struct Node {
        const NodeKind *kind;
        Machine *m;
        char *name, *state_dir;
        NodeLink *links;
        size_t n_links;
        char *link_error;          /* why the last boot's links failed */
        WaitList ready, exited, events;
        int ready_error;
        char *ready_message;
        bool booting;
        int exit_status;
        ConsoleLog console;        /* console and journal lines */
        Units *units;              /* a container's systemd, per boot */
        json_t *pending_events;    /* a VM's QMP events not yet taken */
        void *data;                /* the kind's */
        Node *next;
};

/* The callbacks every kind's machine gets (a kind adds its own to a copy). */
extern const MachineCallbacks node_callbacks;

/* A new node and its handle on the stack; its console log opened (raises on failure, before
 * anything is allocated). */
Node *node_push_new(lua_State *L, const NodeKind *kind, const char *name, const char *state_dir,
                    const char *console_log);
/* The handle at index i (raises if released, or not a node of kind, when kind is set). */
Node *node_check(lua_State *L, int i, const NodeKind *kind);
/* Adds methods to the handle's metatable (created at the first call). */
void node_add_methods(lua_State *L, const luaL_Reg *methods);
