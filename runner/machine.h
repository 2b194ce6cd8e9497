/* machine.h: what every node kind shares, written once: the lifecycle state, the guard that lets a
 * callback free its machine, the boot, shutdown and kill timers, the last console lines a failure
 * message quotes, the callbacks, and the handling of the machine's process exit. container.c and
 * qemu.c embed a Machine and fill in a MachineVTable, as systemd's unit types fill in a UnitVTable. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>
#include <systemd/sd-event.h>

#include "exec.h"
#include "util.h"

#define MACHINE_LAST_LINES 20

typedef struct Machine Machine;
typedef struct MachineExec MachineExec;
typedef struct json_t json_t;

/* A command's outcome, for every kind: exec.h's ExecResult. A VM's stderr goes to its serial
 * console (err is empty); a guest-side timeout is timed_out, as for a container; error -ESRCH
 * when the machine went away under the command. */
typedef ExecResult MachineExecResult;
typedef void (*machine_exec_fn)(MachineExecResult *r, void *userdata);

/* The NixOS backdoor's check_return=False and check_output=False: a VM's only (see qemu.h). */
#define MACHINE_EXEC_NO_STATUS (1u << 0)
#define MACHINE_EXEC_NO_OUTPUT (1u << 1)

typedef enum MachineKind {
        MACHINE_CONTAINER,
        MACHINE_VM,
} MachineKind;

typedef enum MachineState {
        MACHINE_STOPPED,
        MACHINE_BOOTING,        /* its process runs; not ready since the start or a reboot */
        MACHINE_READY,          /* commands can run */
        MACHINE_STOPPING,       /* poweroff requested */
        MACHINE_REBOOTING,      /* reboot requested (a container: nspawn exits with 133, we start it again) */
        MACHINE_KILLING,        /* crash, release, boot timeout, a boot that failed */
} MachineState;

/* What the owner of a machine hears; each is optional. The kind-specific ones are named so. */
typedef struct MachineCallbacks {
        /* Once per boot: error 0 and message NULL when commands can run; else a negative errno
         * (-ETIMEDOUT, -ECHILD: its process exited, -ECANCELED: shut down or crashed first, ...) and
         * a message naming the node, what happened and its last console lines. */
        void (*on_ready)(Machine *m, int error, const char *message);
        /* Its process exited for good: exit status, or 128+signal. */
        void (*on_exit)(Machine *m, int status);
        void (*on_console_line)(Machine *m, const char *line, size_t len);
        /* Something the user should know that is no error ("... killing QEMU"). */
        void (*on_notice)(Machine *m, const char *message);
        /* A container: its namespaces exist (move links in now); its journal lines. */
        void (*on_leader)(Machine *m, pid_t leader);
        void (*on_journal_line)(Machine *m, const char *line, size_t len);
        /* A VM: a QMP event, borrowed for the call. */
        void (*on_qmp_event)(Machine *m, const char *name, json_t *data, json_t *msg);
} MachineCallbacks;

/* What a kind fills in. machine.c calls these; none may call a callback itself but through
 * machine.c's helpers. */
typedef struct MachineVTable {
        MachineKind kind;
        const char *noun;               /* "container", "VM": for messages */
        const char *process;            /* what runs it: "systemd-nspawn", "QEMU" */
        const char *ready_what;         /* "it became ready": "shut down before <ready_what>" */
        const char *no_output;          /* appended to a failure message without console lines */

        /* Stop it now (SIGKILL what runs); its exit follows. The kill timer sends kill_hard after
         * a grace period if the process still runs. */
        void (*kill)(Machine *m);
        void (*kill_hard)(Machine *m);
        /* Its process exited (status as for on_exit; was: the state before): drain its output and
         * forget the run. Returns 1 when it started again (a reboot, a fall back to TCG): the exit is
         * not reported. Else 0: machine.c reports a pending boot, then on_exit. */
        int (*exited)(Machine *m, int status, MachineState was);
        /* The failure message of a boot its process ended, and of a boot timeout. */
        char *(*exit_message)(Machine *m, int status);
        char *(*boot_timeout_message)(Machine *m);
        /* Optional: more words after "node x: what" (the likely cause). */
        void (*failure_hint)(Machine *m, const char *what, FILE *f);
        void (*destroy)(Machine *m);

        /* The operations machine_start ... machine_add_file dispatch to, as the kind's own
         * functions document them. */
        int (*start)(Machine *m);
        int (*poweroff)(Machine *m);
        int (*reboot)(Machine *m);
        void (*crash)(Machine *m);
        void (*release)(Machine *m);
        bool (*is_ready)(Machine *m);
        /* Runs x's command; the kind calls machine_exec_done(x, result) once, from the loop. */
        int (*exec)(Machine *m, MachineExec *x, const char *command, uint64_t timeout_usec, unsigned flags,
                    void **ret_job);
        void (*exec_cancel)(void *job);
        /* Optional: a file in place before the first boot (NULL: the kind has no use for it). */
        int (*add_file)(Machine *m, const char *path, const void *content, size_t len, mode_t mode);
} MachineVTable;

struct Machine {
        const MachineVTable *vtable;
        sd_event *event;
        const char *name;               /* the kind's copy of its config's name */
        MachineState state;
        bool boot_pending;              /* on_ready owed for this boot */
        unsigned dispatching;           /* inside one of our handlers */
        bool doomed;                    /* freed from a callback: destroyed when the handler returns */

        MachineCallbacks cb;
        void *userdata;

        pid_t pid;                      /* the process that is the machine: nspawn (or a script's keeper), QEMU */
        char *start_error;              /* why the last machine_start failed, when the kind said */
        sd_event_source *child_source;

        uint64_t boot_timeout_usec, shutdown_timeout_usec;
        sd_event_source *boot_timer, *shutdown_timer, *kill_timer;

        char *last[MACHINE_LAST_LINES]; /* the last console (and journal) lines */
        size_t n_last;                  /* lines seen; last[n_last % MACHINE_LAST_LINES] is the oldest */
        size_t last_journal;            /* n_last after the latest journal line, 0 if none */
};

void machine_init(Machine *m, const MachineVTable *vtable, sd_event *e, const char *name);
/* Frees what machine.c owns (not the Machine itself, which the kind embeds). */
void machine_done(Machine *m);

/* The re-entrancy guard: every event handler of a kind runs between enter and leave; a machine
 * freed meanwhile (doomed) is destroyed by the last leave. */
void machine_enter(Machine *m);
void machine_leave(Machine *m);
bool machine_alive(Machine *m);

/* Frees it, or when called from a callback kills it and frees it once the handler returns. */
void machine_free(Machine *m);

/* A console (journal: true for a journal line) line into the ring. */
void machine_remember_line(Machine *m, const char *line, size_t len, bool journal);
bool machine_last_lines_contain(Machine *m, const char *needle);
/* "node x: <what>; last console lines:\n  ..." (free it). */
char *machine_failure_message(Machine *m, const char *fmt, ...) _printf_(2, 3);
void machine_notice(Machine *m, const char *fmt, ...) _printf_(2, 3);

/* Tells the pending boot's outcome, once. */
void machine_report_ready(Machine *m, int error, const char *message);
/* A boot that cannot succeed: kill it, report it. */
void machine_boot_failed(Machine *m, int error, const char *message);
/* kill, with the kill timer as a backstop. */
void machine_kill(Machine *m);

/* The process that is the machine: its exit goes through vtable->exited. 0 or -errno; on failure
 * the caller still owns pid. */
int machine_watch_child(Machine *m, pid_t pid, int64_t priority);
int machine_arm_boot_timer(Machine *m, uint64_t usec);
int machine_arm_shutdown_timer(Machine *m);
int machine_arm_kill_timer(Machine *m);
/* The run is over: its child source and timers go. */
void machine_forget_run(Machine *m);

/* ---- one interface for every kind ---- */

/* Replaces the callbacks (and userdata) the kind's constructor set. */
void machine_set_callbacks(Machine *m, const MachineCallbacks *cb, void *userdata);

int machine_start(Machine *m);
/* Why the last machine_start failed, in a sentence naming the node and the fix, when the kind
 * said (machine_set_start_error, which takes the string); else NULL. */
const char *machine_start_error(Machine *m);
void machine_set_start_error(Machine *m, char *message);          /* -EBUSY if it runs already; on_ready tells the outcome */
int machine_poweroff(Machine *m);       /* on_exit follows; -ESRCH if it does not run */
int machine_reboot(Machine *m);         /* on_ready follows; -EBUSY unless ready */
void machine_crash(Machine *m);         /* pull the plug; on_exit follows */
void machine_release(Machine *m);       /* the end of the run, without waiting */
int machine_add_file(Machine *m, const char *path, const void *content, size_t len, mode_t mode);
bool machine_is_up(Machine *m);         /* its process runs */
bool machine_is_ready(Machine *m);      /* commands run now */
const char *machine_name(Machine *m);
MachineKind machine_kind(Machine *m);
void *machine_userdata(Machine *m);

/* Runs command (timeout_usec 0: none); done gets the result once, from the loop. -ESRCH unless
 * the kind can take it now. */
int machine_exec(Machine *m, const char *command, uint64_t timeout_usec, unsigned flags, machine_exec_fn done,
                 void *userdata, MachineExec **ret);
/* done will not be called. */
void machine_exec_cancel(MachineExec *x);
/* For the kinds: x's result (the callee may take out and err); frees x. */
void machine_exec_done(MachineExec *x, MachineExecResult *r);
