/* machine.c: the lifecycle every node kind shares (see machine.h): the guard, the timers, the
 * console ring and failure messages, and what follows the exit of a machine's process. */
#define _GNU_SOURCE
#include <signal.h>
#include <stdarg.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "machine.h"
#include "nsenter.h"

#define KILL_GRACE_USEC (3 * 1000000ULL)
#define TIMER_ACCURACY_USEC 10000

void machine_init(Machine *m, const MachineVTable *vtable, sd_event *e, const char *name) {
        *m = (Machine) {
                .vtable = vtable,
                .event = sd_event_ref(e),
                .name = name,
        };
}

void machine_done(Machine *m) {
        m->child_source = sd_event_source_disable_unref(m->child_source);
        m->boot_timer = sd_event_source_disable_unref(m->boot_timer);
        m->shutdown_timer = sd_event_source_disable_unref(m->shutdown_timer);
        m->kill_timer = sd_event_source_disable_unref(m->kill_timer);
        m->start_error = (free(m->start_error), NULL);
        for (size_t i = 0; i < MACHINE_LAST_LINES; i++)
                m->last[i] = (free(m->last[i]), NULL);
        m->event = sd_event_unref(m->event);
}

/* ---- the guard ---- */

void machine_enter(Machine *m) {
        m->dispatching++;
}

void machine_leave(Machine *m) {
        if (--m->dispatching == 0 && m->doomed)
                m->vtable->destroy(m);
}

bool machine_alive(Machine *m) {
        return !m->doomed;
}

void machine_free(Machine *m) {
        if (!m)
                return;
        if (m->dispatching > 0) {
                /* Called from one of our callbacks: stop it now, finish when the handler returns. */
                m->doomed = true;
                machine_kill(m);
                return;
        }
        m->vtable->destroy(m);
}

/* ---- console lines and messages ---- */

void machine_remember_line(Machine *m, const char *line, size_t len, bool journal) {
        char **slot = &m->last[m->n_last++ % MACHINE_LAST_LINES];

        free(*slot);
        *slot = strndup(line, len);
        if (journal)
                m->last_journal = m->n_last;
}

static size_t first_last(Machine *m) {
        return m->n_last > MACHINE_LAST_LINES ? m->n_last - MACHINE_LAST_LINES : 0;
}

bool machine_last_lines_contain(Machine *m, const char *needle) {
        for (size_t i = first_last(m); i < m->n_last; i++)
                if (m->last[i % MACHINE_LAST_LINES] && strstr(m->last[i % MACHINE_LAST_LINES], needle))
                        return true;
        return false;
}

char *machine_failure_message(Machine *m, const char *fmt, ...) {
        _cleanup_free_ char *what = NULL;
        size_t size = 0, first = first_last(m);
        char *s = NULL;
        FILE *f;
        va_list ap;

        va_start(ap, fmt);
        if (vasprintf(&what, fmt, ap) < 0)
                what = NULL;
        va_end(ap);
        f = open_memstream(&s, &size);
        if (!f)
                return NULL;
        fprintf(f, "node %s: %s", m->name, what ?: "failed");
        if (m->vtable->failure_hint)
                m->vtable->failure_hint(m, what, f);
        if (m->n_last == 0)
                fputs(m->vtable->no_output, f);
        else if (m->last_journal > first)
                fputs("; last console and journal lines:", f);
        else
                fputs("; last console lines:", f);
        for (size_t i = first; i < m->n_last; i++)
                fprintf(f, "\n  %s", m->last[i % MACHINE_LAST_LINES] ?: "");
        fclose(f);
        return s;
}

void machine_notice(Machine *m, const char *fmt, ...) {
        _cleanup_free_ char *s = NULL;
        va_list ap;

        if (!m->cb.on_notice || !machine_alive(m))
                return;
        va_start(ap, fmt);
        if (vasprintf(&s, fmt, ap) < 0)
                s = NULL;
        va_end(ap);
        if (s)
                m->cb.on_notice(m, s);
}

/* ---- boots and kills ---- */

void machine_report_ready(Machine *m, int error, const char *message) {
        if (!m->boot_pending)
                return;
        m->boot_pending = false;
        m->boot_timer = sd_event_source_disable_unref(m->boot_timer);
        if (m->cb.on_ready && machine_alive(m))
                m->cb.on_ready(m, error, message);
}

void machine_kill(Machine *m) {
        m->vtable->kill(m);
        if (m->pid > 0 && !m->kill_timer)
                (void) machine_arm_kill_timer(m);
}

void machine_boot_failed(Machine *m, int error, const char *message) {
        m->state = MACHINE_KILLING;
        machine_kill(m);
        machine_report_ready(m, error, message);
}

static int arm(Machine *m, sd_event_source **s, uint64_t usec, sd_event_time_handler_t h) {
        *s = sd_event_source_disable_unref(*s);
        return sd_event_add_time_relative(m->event, s, CLOCK_MONOTONIC, usec, TIMER_ACCURACY_USEC, h, m);
}

static int on_boot_timeout(sd_event_source *s _unused_, uint64_t usec _unused_, void *userdata) {
        Machine *m = userdata;
        _cleanup_free_ char *msg = NULL;

        machine_enter(m);
        m->boot_timer = sd_event_source_disable_unref(m->boot_timer);
        msg = m->vtable->boot_timeout_message(m);
        machine_boot_failed(m, -ETIMEDOUT, msg);
        machine_leave(m);
        return 0;
}

static int on_shutdown_timeout(sd_event_source *s _unused_, uint64_t usec _unused_, void *userdata) {
        Machine *m = userdata;

        machine_enter(m);
        m->shutdown_timer = sd_event_source_disable_unref(m->shutdown_timer);
        machine_notice(m, "node %s: did not power off within %g s: killing %s", m->name,
                       (double) m->shutdown_timeout_usec / 1e6, m->vtable->process);
        m->state = MACHINE_KILLING;
        machine_kill(m);
        machine_leave(m);
        return 0;
}

static int on_kill_timeout(sd_event_source *s _unused_, uint64_t usec _unused_, void *userdata) {
        Machine *m = userdata;

        m->kill_timer = sd_event_source_disable_unref(m->kill_timer);
        if (m->pid > 0)
                m->vtable->kill_hard(m);
        return 0;
}

int machine_arm_boot_timer(Machine *m, uint64_t usec) {
        return arm(m, &m->boot_timer, usec, on_boot_timeout);
}

int machine_arm_shutdown_timer(Machine *m) {
        return arm(m, &m->shutdown_timer, m->shutdown_timeout_usec, on_shutdown_timeout);
}

int machine_arm_kill_timer(Machine *m) {
        return arm(m, &m->kill_timer, KILL_GRACE_USEC, on_kill_timeout);
}

/* ---- the process's exit ---- */

static int on_child_exit(sd_event_source *s _unused_, const siginfo_t *si, void *userdata) {
        Machine *m = userdata;
        int status = si->si_code == CLD_EXITED ? si->si_status : 128 + si->si_status;
        MachineState was = m->state;

        machine_enter(m);
        if (m->vtable->exited(m, status, was) > 0 || !machine_alive(m))
                goto out;
        if (m->boot_pending) {
                bool cancelled = was == MACHINE_STOPPING || was == MACHINE_KILLING;
                _cleanup_free_ char *msg =
                        was == MACHINE_STOPPING ? machine_failure_message(m, "shut down before %s", m->vtable->ready_what)
                        : was == MACHINE_KILLING ? machine_failure_message(m, "killed before %s", m->vtable->ready_what)
                        : m->vtable->exit_message(m, status);
                machine_report_ready(m, cancelled ? -ECANCELED : -ECHILD, msg);
        }
        m->boot_pending = false;
        m->state = MACHINE_STOPPED;
        if (machine_alive(m) && m->cb.on_exit)
                m->cb.on_exit(m, status);
out:
        machine_leave(m);
        return 0;
}

int machine_watch_child(Machine *m, pid_t pid, int64_t priority) {
        int fd = nsenter_pidfd_open(pid), r;

        if (fd < 0)
                return fd;
        r = sd_event_add_child_pidfd(m->event, &m->child_source, fd, WEXITED, on_child_exit, m);
        if (r < 0) {
                close(fd);
                return r;
        }
        (void) sd_event_source_set_child_pidfd_own(m->child_source, true);
        (void) sd_event_source_set_child_process_own(m->child_source, true);
        (void) sd_event_source_set_priority(m->child_source, priority);
        m->pid = pid;
        return 0;
}

void machine_forget_run(Machine *m) {
        m->pid = 0;
        m->child_source = sd_event_source_disable_unref(m->child_source);
        m->shutdown_timer = sd_event_source_disable_unref(m->shutdown_timer);
        m->kill_timer = sd_event_source_disable_unref(m->kill_timer);
}

/* ---- one interface for every kind ---- */

struct MachineExec {
        Machine *m;
        void *job;
        machine_exec_fn done;
        void *userdata;
        uint64_t timeout_usec, started_usec;
};

void machine_set_callbacks(Machine *m, const MachineCallbacks *cb, void *userdata) {
        m->cb = cb ? *cb : (MachineCallbacks) {};
        m->userdata = userdata;
}

int machine_start(Machine *m) {
        m->start_error = (free(m->start_error), NULL);
        return m->vtable->start(m);
}

const char *machine_start_error(Machine *m) {
        return m->start_error;
}

void machine_set_start_error(Machine *m, char *message) {
        free(m->start_error);
        m->start_error = message;
}

int machine_poweroff(Machine *m) {
        return m->vtable->poweroff(m);
}

/* Ready or nothing, for every kind (a VM's QEMU used to take a reboot while booting too). */
int machine_reboot(Machine *m) {
        if (!machine_is_ready(m))
                return -EBUSY;
        return m->vtable->reboot(m);
}

void machine_crash(Machine *m) {
        m->vtable->crash(m);
}

void machine_release(Machine *m) {
        m->vtable->release(m);
}

int machine_add_file(Machine *m, const char *path, const void *content, size_t len, mode_t mode) {
        return m->vtable->add_file ? m->vtable->add_file(m, path, content, len, mode) : 0;
}

bool machine_is_up(Machine *m) {
        return m && m->pid > 0;
}

bool machine_is_ready(Machine *m) {
        return m && m->vtable->is_ready(m);
}

const char *machine_name(Machine *m) {
        return m->name;
}

MachineKind machine_kind(Machine *m) {
        return m->vtable->kind;
}

void *machine_userdata(Machine *m) {
        return m->userdata;
}

int machine_exec(Machine *m, const char *command, uint64_t timeout_usec, unsigned flags, machine_exec_fn done,
                 void *userdata, MachineExec **ret) {
        MachineExec *x;
        int r;

        if (!m || !command || !done)
                return -EINVAL;
        x = calloc(1, sizeof *x);
        if (!x)
                return -ENOMEM;
        *x = (MachineExec) { .m = m, .done = done, .userdata = userdata, .timeout_usec = timeout_usec };
        (void) sd_event_now(m->event, CLOCK_MONOTONIC, &x->started_usec);
        r = m->vtable->exec(m, x, command, timeout_usec, flags, &x->job);
        if (r < 0) {
                free(x);
                return r;
        }
        if (ret)
                *ret = x;
        return 0;
}

void machine_exec_cancel(MachineExec *x) {
        if (!x)
                return;
        x->m->vtable->exec_cancel(x->job);
        free(x);
}

/* The guest's `timeout` exits 124 when it fires: that, once the timeout has passed, is a timeout
 * as on a container (the NixOS driver reports status 124). */
#define EXIT_TIMEOUT 124

void machine_exec_done(MachineExec *x, MachineExecResult *r) {
        uint64_t now = 0;

        (void) sd_event_now(x->m->event, CLOCK_MONOTONIC, &now);
        if (x->timeout_usec > 0 && r->status == EXIT_TIMEOUT && r->error == 0 && now - x->started_usec >= x->timeout_usec)
                r->timed_out = true;
        x->done(r, x->userdata);
        free(x);
}
