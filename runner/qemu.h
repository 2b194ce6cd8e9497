/* qemu.h: a QEMU virtual machine's lifecycle on sd-event: start (TCG, or KVM with a fall back to
 * TCG), the NixOS backdoor shell on a virtio console (handshake, commands with status and stdout),
 * serial console lines, QMP (commands, events, screendump, sendkey), shutdown, reboot, crash.
 *
 * The backdoor is reference section 4 byte for byte, so a NixOS test VM works unchanged and any
 * guest with that shell on /dev/hvc0 is a node: the guest prints "Spawning backdoor root shell..."
 * and runs `bash --norc /dev/hvc0` with the console raw and without echo. QEMU gets the backdoor
 * and QMP as already connected socketpairs (chardev fd=3 and fd=4), so no socket file exists and
 * nothing has to be accepted. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <systemd/sd-event.h>

#include "machine.h"

typedef struct Qemu Qemu;
typedef struct QemuExecJob QemuExecJob;

typedef enum QemuAccel {
        QEMU_ACCEL_TCG,         /* the default: nested KVM often fails (MACHINE-NOTES) */
        QEMU_ACCEL_KVM_OR_TCG,  /* KVM first; TCG when /dev/kvm cannot be opened, when QEMU exits before
                                 * the guest printed anything, or when the guest's serial console stays
                                 * silent for kvm_probe_usec (nested KVM here does not fail: it runs a
                                 * hundred times slower than TCG). QEMU's own warnings do not count. */
        QEMU_ACCEL_KVM,         /* KVM only */
} QemuAccel;

typedef struct QemuNic {
        int tap_fd;             /* from net_tap_open; qemu_new keeps a duplicate for every start */
        const char *mac;        /* NULL: QEMU picks one */
        const char *model;      /* NULL: virtio-net-pci */
} QemuNic;

typedef struct QemuConfig {
        const char *name;
        const char *state_dir;  /* must exist: QEMU's working directory (and TMPDIR for a start script) */
        const char *qemu;       /* NULL: qemu-system-x86_64 from PATH */
        /* A kernel (initrd and append optional), disk images, or both ... */
        const char *kernel;
        const char *initrd;
        const char *append;     /* the kernel command line; console=ttyS0 puts the kernel on the log */
        char **drives;          /* -drive values, e.g. "file=/x.qcow2,if=virtio" */
        /* ... or a nixpkgs run-<name>-vm script, which brings its own kernel, disk, memory and
         * accelerator: it gets our backdoor, QMP, serial and NIC options appended and runs with
         * TMPDIR=state_dir, USE_TMPDIR=1 and SHARED_DIR=shared_dir (when set). */
        const char *start_script;
        const char *shared_dir;
        unsigned memory_mb;     /* 0: 512 (not for a start script) */
        unsigned cpus;          /* 0: 1 (not for a start script) */
        QemuAccel accel;        /* not for a start script */
        bool allow_reboot;      /* false: -no-reboot, so a reboot of the guest ends QEMU */
        const QemuNic *nics;    /* in order: the guest sees eth0, eth1, ... (kernel and drive VMs
                                 * have no other NIC) */
        size_t n_nics;
        char **extra_args;      /* appended to QEMU's command line as they are */
        uint64_t boot_timeout_usec;     /* 0: 300 s, from QEMU's start (or a reboot) to the sentinel */
        uint64_t shutdown_timeout_usec; /* 0: 60 s; then QEMU is killed */
        uint64_t kvm_probe_usec;        /* 0: 10 s (QEMU_ACCEL_KVM_OR_TCG only) */
} QemuConfig;

/* The callbacks (machine.h's MachineCallbacks) a VM calls, as it calls them:
 * - on_ready: once per boot (start, reboot, a reboot the guest did itself with allow_reboot, or a
 *   command run with QEMU_EXEC_NO_OUTPUT, after which the shell must announce itself again): error
 *   0 and message NULL when the backdoor shell answered and commands can run; else a negative errno
 *   (-ETIMEDOUT, -ECHILD: QEMU exited, -ECANCELED: shut down or crashed first) and a message naming
 *   the node, what happened and its last console lines. A failed boot is followed by on_exit (QEMU
 *   is killed on a timeout).
 * - on_exit: QEMU exited for good: its exit status, or 128+signal. Commands still queued failed
 *   first.
 * - on_console_line (optional): a line of the serial console (QEMU's stdout) or of QEMU's own
 *   messages (its stderr): the NixOS driver merges both into the log. Without "\r" and trailing
 *   whitespace.
 * - on_qmp_event (optional): a QMP event (SHUTDOWN, RESET, STOP, ...): name, "data" (NULL if
 *   none), whole message; borrowed for the call.
 * - on_notice (optional): something the user should know that is no error: "... under KVM ...:
 *   starting it again under TCG", "did not power off within 60 s: killing QEMU". */

/* Copies cfg (and duplicates the tap fds). SIGCHLD must be blocked. A callback may call qemu_free
 * on its VM. -EINVAL without a name or state directory, or without a kernel, drive or start script,
 * or with a start script and a kernel or drives. */
int qemu_new(sd_event *e, const QemuConfig *cfg, const MachineCallbacks *cb, void *userdata, Qemu **ret);

/* A VM's lifecycle goes through machine.h (machine_start, machine_poweroff, machine_reboot,
 * machine_crash, machine_release on qemu_machine(q)); what each does for a VM:
 *
 * start: spawns QEMU and returns at once; on_ready tells the outcome. -EBUSY if it runs already.
 * QEMU leads its own session and dies with the runner (PR_SET_PDEATHSIG).
 *
 * poweroff: writes "poweroff" to the backdoor shell as the NixOS driver does (when the shell has
 * not answered yet: QMP system_powerdown, which needs ACPI in the guest). A command running in the
 * guest ends first (the shell reads the line after it); commands queued or running fail with
 * -ECANCELED at once. on_exit follows; QEMU is killed after shutdown_timeout. -ESRCH if QEMU does
 * not run.
 *
 * reboot: Ctrl-Alt-Delete on the keyboard, as the NixOS driver does. The shell is disconnected: a
 * running command fails with -ECONNRESET, queued ones wait for the next on_ready. Without
 * allow_reboot QEMU exits instead (on_ready reports it, then on_exit). -EBUSY unless ready.
 *
 * crash: pull the plug: QMP "quit" (SIGKILL if QMP is not up, or QEMU still runs 3 s later).
 * on_exit follows.
 *
 * release: the end of the run, without waiting: SIGTERM to QEMU's session (SIGKILL after 3 s).
 * on_exit follows. */

/* Kills QEMU if it runs (SIGKILL to its session, reaped synchronously), frees everything; no callbacks. */
void qemu_free(Qemu *q);

/* ---- commands over the backdoor shell ---- */

#define QEMU_EXEC_NO_STATUS (1u << 0)  /* check_return=False: status -1, "echo ${PIPESTATUS[0]}" not sent */
#define QEMU_EXEC_NO_OUTPUT (1u << 1)  /* check_output=False: status -2 and no output, nothing read; the
                                        * shell counts as disconnected until the sentinel comes again
                                        * (switch_root) */

typedef struct QemuExecResult {
        int status;             /* the exit status of `timeout ... bash -c ...` (124: the guest-side
                                 * timeout fired); -1 with QEMU_EXEC_NO_STATUS, -2 with NO_OUTPUT */
        char *out;              /* stdout, exactly (NUL-terminated for convenience; out_len excludes it) */
        size_t out_len;
        int error;              /* 0; -ECONNRESET: QEMU exited or the guest rebooted under it;
                                 * -ECANCELED: shut down or crashed; -EBADMSG: the output line was
                                 * not base64 (the command wrote to /dev/hvc0 itself?) or the status
                                 * not a number; the status line is still read, to stay in step */
} QemuExecResult;

/* Called once per job from the event loop (never from qemu_exec). The callee may take out (set it
 * to NULL, free() it later). */
typedef void (*qemu_exec_fn)(Qemu *q, QemuExecResult *r, void *userdata);

/* Runs `command` as `[timeout T] bash -c 'set -euo pipefail; command' | (base64 -w 0; echo)` in the
 * guest; timeout_usec 0: no timeout. Commands run one at a time in the order given; those given
 * before the shell answered wait for it. stderr goes to the serial console, stdin is the virtio
 * console (redirect it for commands that read stdin). A command of several lines is fine: it is
 * passed in single quotes. -ESRCH unless QEMU runs (or after shutdown, crash or release). */
int qemu_exec(Qemu *q, const char *command, uint64_t timeout_usec, unsigned flags, qemu_exec_fn done,
              void *userdata, QemuExecJob **ret);

/* The job's callback will not be called. The command still runs to its end in the guest (the
 * protocol cannot interrupt it), and its frames are read and dropped. */
void qemu_exec_cancel(QemuExecJob *j);

/* ---- QMP ---- */

/* Outcome of a QMP request: error 0 with result (the "return" value, borrowed), -EIO with
 * error_desc from QEMU, -ECONNRESET when QEMU went away first. */
typedef void (*qemu_qmp_fn)(Qemu *q, int error, json_t *result, const char *error_desc, void *userdata);

/* Any QMP command (arguments NULL or an object, not taken). Commands sent before QMP is up are
 * queued. -ESRCH unless QEMU runs. */
int qemu_qmp(Qemu *q, const char *command, json_t *arguments, qemu_qmp_fn done, void *userdata);

/* A human monitor command through QMP (human-monitor-command): result is its output, a string. */
int qemu_hmp(Qemu *q, const char *command_line, qemu_qmp_fn done, void *userdata);

/* The screen as PNG (a path ending in ".png"; QEMU 7.1 or later) or PPM (anything else), written
 * by QEMU; a relative path is relative to the state directory. */
int qemu_screendump(Qemu *q, const char *path, qemu_qmp_fn done, void *userdata);

/* HMP `sendkey KEY`: "ctrl-alt-delete", "ret", "shift-a", "0x0C"... (see qemu_key_for_char). */
int qemu_send_key(Qemu *q, const char *key, qemu_qmp_fn done, void *userdata);

/* Writes bytes to the serial console's input (QEMU's stdin), e.g. for an emergency shell. */
int qemu_send_console(Qemu *q, const void *data, size_t len);

/* ---- state ---- */

bool qemu_is_up(Qemu *q);               /* QEMU runs */
bool qemu_is_connected(Qemu *q);        /* the backdoor shell answered and no reboot since */
pid_t qemu_pid(Qemu *q);                /* 0 if it does not run */
bool qemu_uses_kvm(Qemu *q);            /* this run of QEMU was started with -accel kvm */
const char *qemu_name(Qemu *q);
void *qemu_userdata(Qemu *q);
/* The machine interface (machine.h) of a VM, and back. */
typedef struct Machine Machine;
Machine *qemu_machine(Qemu *q);
Qemu *qemu_from_machine(Machine *m);   /* NULL unless m is a VM */

/* ---- pure helpers, exposed for the unit tests ---- */

/* QEMU's command line for cfg with the backdoor on fd shell_fd, QMP on qmp_fd and the i-th NIC's tap
 * on first_tap_fd + i. For a start script: the script, then our options. Free with strv_free. */
char **qemu_argv(const QemuConfig *cfg, bool kvm, int shell_fd, int qmp_fd, int first_tap_fd);

/* The NixOS driver's key for a typed character: "shift-a" for 'A', "0x0C" for '-', "spc", "ret"
 * (and "tab"); NULL when the character passes through as it is (lower-case letters, digits). */
const char *qemu_key_for_char(char c);
