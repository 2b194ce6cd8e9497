/* exec.h: run a command inside a running container's namespaces (pidfd + setns, no nsenter),
 * with stdout and stderr captured separately on sd-event.
 *
 * The command is our direct child (cloned, sharing our memory until it execs, so starting one
 * costs the same however big the runner grows), in the container's namespaces, leading its own
 * session; it stays in our cgroup, as with nsenter. A timeout or exec_cancel kills its session and
 * every descendant (frozen first, so none escapes by forking); a daemon that left the session
 * before that is beyond reach, as with any process-group kill. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <systemd/sd-event.h>

#define EXEC_GRACE_USEC_DEFAULT (5 * 1000000ULL)

typedef struct ExecJob ExecJob;

typedef struct ExecSpec {
        int leader_pidfd;         /* pidfd of the container's PID 1; borrowed for the call only */
        char **argv;              /* argv[0] is a path inside the container */
        char **envp;              /* NULL: an empty environment */
        const char *cwd;          /* inside the container; NULL: "/" */
        const void *stdin_data;   /* NULL: stdin is /dev/null; else a pipe holding these bytes */
        size_t stdin_len;         /* at most a pipe's capacity (fs.pipe-max-size, 1 MiB): else -E2BIG */
        uint64_t timeout_usec;    /* 0: none */
        uint64_t grace_usec;      /* 0: EXEC_GRACE_USEC_DEFAULT. How long to keep reading after the
                                   * command exited while something it left behind holds stdout */
} ExecSpec;

typedef struct ExecResult {
        int status;               /* exit code; 128+signo when killed by a signal; -1 if never run */
        bool timed_out;
        bool output_abandoned;    /* the grace period expired with stdout or stderr still open */
        char *out;                /* NUL-terminated for convenience; out_len excludes it */
        size_t out_len;
        char *err;
        size_t err_len;
        int error;                /* 0; negative errno if the command could not be started;
                                   * -ESRCH if the container died under it */
} ExecResult;

/* Called once per job, from the event loop (never from exec_start). The callee may take out/err
 * by setting the pointers to NULL (free() them). The job is freed after the callback returns: the
 * ExecJob pointer must not be used after that. After output_abandoned, what the command left
 * behind may go on writing: the loop keeps reading and dropping it, so it gets no SIGPIPE. */
typedef void (*exec_done_fn)(ExecResult *r, void *userdata);

/* SIGCHLD must be blocked (sd-event's child sources need it); one thread starts commands. Returns
 * a negative errno only for bad arguments or lack of resources: a command that cannot start (the
 * container is gone, no such program) is reported through done with error set and status -1. */
int exec_start(sd_event *e, const ExecSpec *s, exec_done_fn done, void *userdata, ExecJob **ret);

/* Kill the command's whole process tree with SIGKILL, free the job; no callback. */
void exec_cancel(ExecJob *j);

/* Host-side pid of the command's main process (its session leader), 0 if it never started. */
pid_t exec_job_pid(ExecJob *j);

/* Freeze and SIGKILL every process in session `sid` and every descendant of those, including
 * ones that started their own session while their parent still lived. Returns how many. */
int exec_kill_session_tree(pid_t sid);

/* Called with the environment of a login shell in the container (NULL on error; the callee owns
 * it, free it with strv_free). */
typedef void (*exec_env_fn)(int error, char **envp, void *userdata);

/* Once per boot: source /etc/profile in `shell` inside the container and collect `env -0`, so
 * later commands get PATH and friends without sourcing the profile each time. USER=root and
 * HOME=/root are always set. */
int exec_login_env(sd_event *e, int leader_pidfd, const char *shell, exec_env_fn done, void *userdata,
                   ExecJob **ret);

/* The best shell in the container whose PID 1 is `leader`: /usr/bin/bash, /bin/bash, else
 * /bin/sh (which has no pipefail). Returns a static string. */
const char *exec_find_shell(pid_t leader);

/* argv for running `command` with set -euo pipefail semantics under `shell` (without pipefail
 * when the shell is not bash). Free with strv_free. */
char **exec_command_argv(const char *shell, const char *command);

/* "/root" if it exists in the container, else "/". Returns a static string. */
const char *exec_default_cwd(pid_t leader);

/* Pure helpers, exposed for the unit tests. */
int exec_env0_parse(const char *buf, size_t len, char ***ret);
int exec_stat_parse(const char *stat, pid_t *ret_ppid, pid_t *ret_session);
