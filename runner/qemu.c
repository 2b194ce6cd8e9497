/* qemu.c: run a QEMU VM and follow it on sd-event: the backdoor shell of the NixOS test driver on a
 * virtio console (reference 4.4 and 4.5), the serial console from QEMU's stdout, QMP through qmp.c,
 * shutdown, reboot, crash, and a fall back from KVM to TCG. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "accel.h"
#include "backdoor.h"
#include "child.h"
#include "linebuf.h"
#include "machine.h"
#include "outbuf.h"
#include "qemu.h"
#include "strv.h"
#include "qmp.h"
#include "util.h"

#define SEC 1000000ULL
#define BOOT_TIMEOUT_DEFAULT (300 * SEC)
#define SHUTDOWN_TIMEOUT_DEFAULT (60 * SEC)
#define KVM_PROBE_DEFAULT (10 * SEC)
#define MEMORY_DEFAULT_MB 512
#define QEMU_DEFAULT "qemu-system-x86_64"
#define SHELL_SNDBUF (16 << 20)   /* the kernel doubles it */
#define SHELL_FD 3
#define QMP_FD 4
#define FIRST_TAP_FD 5
/* The longest a frame line may grow: 1 GiB of output is 1.4 GiB of base64. */
#define FRAME_MAX (1536ULL * 1024 * 1024)

typedef enum Shell {
        SHELL_WAIT_SENTINEL,
        SHELL_IDLE,
        SHELL_OUTPUT,           /* the head job's command is sent; its base64 line comes next */
        SHELL_STATUS,           /* "echo ${PIPESTATUS[0]}" is sent */
        SHELL_DEAD,             /* poweroff written, or QEMU closed it */
} Shell;

struct QemuExecJob {
        Qemu *q;
        char *line;
        unsigned flags;
        qemu_exec_fn done;      /* NULL: cancelled */
        void *userdata;
        char *out;
        size_t out_len;
        int error;
        QemuExecJob *next;
};

/* QEMU's stdout (the guest's serial console) or its stderr (QEMU's own messages): both are logged
 * as console lines, as the NixOS driver merges them, but only the first shows the guest at work. */
typedef struct Console {
        Qemu *q;
        sd_event_source *source;
        LineBuf lines;
        bool guest;
} Console;

typedef struct QmpCall {
        Qemu *q;
        qemu_qmp_fn done;
        void *userdata;
        int id;
        struct QmpCall *next;
} QmpCall;

/* Booting: QEMU runs; the shell has not answered since the start or a reboot. Killing: crash,
 * release, boot timeout, KVM given up. m.pid is QEMU (or its start script). */
struct Qemu {
        Machine m;
        QemuConfig cfg;                 /* deep copy; nics[i].tap_fd are our duplicates */
        QemuNic *nics;

        bool kvm;                       /* this run of QEMU uses KVM */
        bool restart_tcg;               /* KVM given up: start again under TCG once it is gone */
        bool console_seen;              /* any output from the guest in this run */
        int stdin_fd;
        Console serial, messages;

        int shell_fd;
        sd_event_source *shell_source;
        Shell shell;
        char *in;                       /* what the shell said and we have not consumed */
        size_t in_len, in_alloc;
        size_t scanned;                 /* in[0..scanned) holds no newline: a long frame is searched once */
        OutBuf out;                     /* what we have not written to it yet */
        bool skip_newline;              /* the sentinel's "\n" has not arrived yet */

        QemuExecJob *jobs, *jobs_tail;  /* the head runs when shell is OUTPUT or STATUS */
        QemuExecJob *orphans;           /* cut off by a reboot; failed with their error at the next kick */
        int fail_jobs;                  /* fail every job with this error at the next kick */
        char *pending_notice;           /* told at the next kick: callbacks never run from API calls */
        char shutdown_reason[32];       /* of QMP's SHUTDOWN event in this run: "guest-reset", ... */
        sd_event_source *kick_source;

        Qmp *qmp;
        QmpCall *calls;

        sd_event_source *probe_timer;
};

/* QEMU drops what a virtconsole cannot write at once (hw/char/virtio-console.c: console ports
 * are not throttled, "rather than silently dropping console data on EAGAIN" is its own to-do), so
 * the backdoor's output is lost whenever our end of the socket is not read fast enough: a loaded
 * host lost 58 KiB of a 1 MB command output. The guest writes in small pieces, each charged with
 * an skb's overhead, so the default send buffer (net.core.wmem_default, ~208 KiB) holds little.
 * Give QEMU's end a large one: 32 MiB of kernel memory at most, taken only while we lag. As root
 * SO_SNDBUFFORCE passes net.core.wmem_max; otherwise we get what wmem_max allows. */
static void shell_widen(int fd) {
        int size = SHELL_SNDBUF;

        if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof size) < 0)
                (void) setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
}

static int spawn(Qemu *q, bool kvm);
static void qemu_destroy(Machine *m);

/* ---- pure helpers ---- */

char **qemu_argv(const QemuConfig *cfg, bool kvm, int shell_fd, int qmp_fd, int first_tap_fd) {
        char **v = NULL;
        size_t n = 0;
        int r = 0;

        if (cfg->start_script)
                r |= strv_push(&v, &n, cfg->start_script);
        else {
                r |= strv_push(&v, &n, cfg->qemu ?: QEMU_DEFAULT);
                r |= strv_push(&v, &n, "-name");
                r |= strv_push(&v, &n, cfg->name);
                r |= strv_push(&v, &n, "-accel");
                r |= strv_push(&v, &n, kvm ? "kvm" : "tcg");
                r |= strv_push(&v, &n, "-m");
                r |= strv_pushf(&v, &n, "%u", cfg->memory_mb ?: MEMORY_DEFAULT_MB);
                r |= strv_push(&v, &n, "-smp");
                r |= strv_pushf(&v, &n, "%u", cfg->cpus ?: 1);
                if (cfg->kernel) {
                        r |= strv_push(&v, &n, "-kernel");
                        r |= strv_push(&v, &n, cfg->kernel);
                }
                if (cfg->initrd) {
                        r |= strv_push(&v, &n, "-initrd");
                        r |= strv_push(&v, &n, cfg->initrd);
                }
                if (cfg->append) {
                        r |= strv_push(&v, &n, "-append");
                        r |= strv_push(&v, &n, cfg->append);
                }
                for (char **d = cfg->drives; d && *d; d++) {
                        r |= strv_push(&v, &n, "-drive");
                        r |= strv_push(&v, &n, *d);
                }
                /* Only the NICs asked for: QEMU would add a user-mode e1000 otherwise. */
                r |= strv_push(&v, &n, "-nic");
                r |= strv_push(&v, &n, "none");
                r |= strv_push(&v, &n, "-parallel");
                r |= strv_push(&v, &n, "none");
        }
        /* The VGA device stays (screendump shows it); nothing opens a window. */
        r |= strv_push(&v, &n, "-display");
        r |= strv_push(&v, &n, "none");
        r |= strv_push(&v, &n, "-monitor");
        r |= strv_push(&v, &n, "none");
        r |= strv_push(&v, &n, "-chardev");
        r |= strv_pushf(&v, &n, "socket,id=shell,fd=%d", shell_fd);
        r |= strv_push(&v, &n, "-device");
        r |= strv_push(&v, &n, "virtio-serial");
        r |= strv_push(&v, &n, "-device");
        r |= strv_push(&v, &n, "virtconsole,chardev=shell");
        r |= strv_push(&v, &n, "-chardev");
        r |= strv_pushf(&v, &n, "socket,id=qmp,fd=%d", qmp_fd);
        r |= strv_push(&v, &n, "-mon");
        r |= strv_push(&v, &n, "chardev=qmp,mode=control");
        r |= strv_push(&v, &n, "-device");
        r |= strv_push(&v, &n, "virtio-rng-pci");
        r |= strv_push(&v, &n, "-serial");
        r |= strv_push(&v, &n, "stdio");
        if (!cfg->allow_reboot)
                r |= strv_push(&v, &n, "-no-reboot");
        for (size_t i = 0; i < cfg->n_nics; i++) {
                const QemuNic *nic = &cfg->nics[i];
                r |= strv_push(&v, &n, "-netdev");
                r |= strv_pushf(&v, &n, "tap,id=moonrig-nic%zu,fd=%d", i, first_tap_fd + (int) i);
                r |= strv_push(&v, &n, "-device");
                if (nic->mac)
                        r |= strv_pushf(&v, &n, "%s,netdev=moonrig-nic%zu,mac=%s", nic->model ?: "virtio-net-pci", i,
                                        nic->mac);
                else
                        r |= strv_pushf(&v, &n, "%s,netdev=moonrig-nic%zu", nic->model ?: "virtio-net-pci", i);
        }
        for (char **a = cfg->extra_args; a && *a; a++)
                r |= strv_push(&v, &n, *a);
        if (r < 0) {
                strv_free(v);
                return NULL;
        }
        return v;
}

const char *qemu_key_for_char(char c) {
        static const char *const shifted_digits[] = { "shift-0x02", "shift-0x03", "shift-0x04", "shift-0x05",
                                                      "shift-0x06", "shift-0x07", "shift-0x08", "shift-0x09",
                                                      "shift-0x0A", "shift-0x0B" };
        static const char *const upper[] = {
                "shift-a", "shift-b", "shift-c", "shift-d", "shift-e", "shift-f", "shift-g", "shift-h", "shift-i",
                "shift-j", "shift-k", "shift-l", "shift-m", "shift-n", "shift-o", "shift-p", "shift-q", "shift-r",
                "shift-s", "shift-t", "shift-u", "shift-v", "shift-w", "shift-x", "shift-y", "shift-z",
        };
        static const struct { char c; const char *key; } table[] = {
                { '-', "0x0C" }, { '_', "shift-0x0C" }, { '=', "0x0D" }, { '+', "shift-0x0D" },
                { '[', "0x1A" }, { '{', "shift-0x1A" }, { ']', "0x1B" }, { '}', "shift-0x1B" },
                { ';', "0x27" }, { ':', "shift-0x27" }, { '\'', "0x28" }, { '"', "shift-0x28" },
                { '`', "0x29" }, { '~', "shift-0x29" }, { '\\', "0x2B" }, { '|', "shift-0x2B" },
                { ',', "0x33" }, { '<', "shift-0x33" }, { '.', "0x34" }, { '>', "shift-0x34" },
                { '/', "0x35" }, { '?', "shift-0x35" }, { ' ', "spc" }, { '\n', "ret" }, { '\t', "tab" },
        };
        static const char bang[] = "!@#$%^&*()";
        const char *p;

        if (c >= 'A' && c <= 'Z')
                return upper[c - 'A'];
        if (c != '\0' && (p = strchr(bang, c)))
                return shifted_digits[p - bang];
        for (size_t i = 0; i < ELEMENTSOF(table); i++)
                if (table[i].c == c)
                        return table[i].key;
        return NULL;
}

/* ---- lifecycle helpers ---- */

static void kill_qemu(Qemu *q, int sig) {
        if (q->m.pid > 0)
                (void) kill(-q->m.pid, sig);   /* its session: a start script and what it started */
}

static void kill_now(Machine *m) {
        kill_qemu((Qemu *) m, SIGKILL);
}

/* ---- jobs ---- */

static void kick(Qemu *q) {
        if (q->kick_source)
                (void) sd_event_source_set_enabled(q->kick_source, SD_EVENT_ONESHOT);
}

static void job_free(QemuExecJob *j) {
        free(j->line);
        free(j->out);
        free(j);
}

static QemuExecJob *job_pop(Qemu *q) {
        QemuExecJob *j = q->jobs;

        if (j) {
                q->jobs = j->next;
                if (!q->jobs)
                        q->jobs_tail = NULL;
                j->next = NULL;
        }
        return j;
}

/* Its callback may free q. */
static void job_complete(Qemu *q, QemuExecJob *j, int error, int status) {
        QemuExecResult r;

        r = (QemuExecResult) { .status = status, .out = j->out, .out_len = j->out_len, .error = error ?: j->error };
        if (!r.out) {
                r.out = strdup("");
                r.out_len = 0;
        }
        j->out = NULL;
        if (j->done && machine_alive(&q->m))
                j->done(q, &r, j->userdata);
        free(r.out);
        job_free(j);
}

/* The head job is done. */
static void job_finish(Qemu *q, int error, int status) {
        QemuExecJob *j = job_pop(q);

        if (j)
                job_complete(q, j, error, status);
}

static void fail_all_jobs(Qemu *q, int error) {
        while (q->jobs && machine_alive(&q->m))
                job_finish(q, error, -1);
}

/* ---- the backdoor shell ---- */

static void shell_update_events(Qemu *q) {
        if (q->shell_source)
                (void) sd_event_source_set_io_events(q->shell_source, EPOLLIN | (q->out.len > 0 ? EPOLLOUT : 0));
}

/* A failed write means QEMU went away: its exit fails the jobs. */
static void shell_flush(Qemu *q) {
        outbuf_flush(&q->out, q->shell_fd);
        shell_update_events(q);
}

static int shell_write(Qemu *q, const char *s) {
        int r = outbuf_append(&q->out, s, strlen(s));
        if (r < 0)
                return r;
        shell_flush(q);
        return 0;
}

static void shell_disconnect(Qemu *q) {
        q->shell = SHELL_WAIT_SENTINEL;
        q->in_len = q->scanned = 0;
        q->skip_newline = false;
}

/* The sentinel came: the shell reads commands now. */
static void shell_connected(Qemu *q) {
        q->shell = SHELL_IDLE;
        q->probe_timer = sd_event_source_disable_unref(q->probe_timer);
        if (q->m.state == MACHINE_BOOTING)
                q->m.state = MACHINE_READY;
        machine_report_ready(&q->m, 0, NULL);
        kick(q);
}

/* Starts the head job if the shell is free. Called from the kick source only, so that no callback
 * ever runs from inside qemu_exec. */
static void shell_next(Qemu *q) {
        QemuExecJob *j;

        while (machine_alive(&q->m) && q->shell == SHELL_IDLE && (j = q->jobs)) {
                if (shell_write(q, j->line) < 0) {
                        job_finish(q, -ENOMEM, -1);
                        continue;
                }
                if (j->flags & QEMU_EXEC_NO_OUTPUT) {
                        /* The output is never read: the shell is out of step until it prints the
                         * sentinel again (after switch_root, say). */
                        shell_disconnect(q);
                        q->m.state = MACHINE_BOOTING;
                        q->m.boot_pending = true;
                        (void) machine_arm_boot_timer(&q->m, q->cfg.boot_timeout_usec);
                        job_finish(q, 0, -2);
                        return;
                }
                q->shell = SHELL_OUTPUT;
        }
}

/* The length of the first line in q->in, "\n" included, or 0 while it is incomplete. */
static size_t shell_take_line(Qemu *q) {
        size_t l = backdoor_frame_line(q->in + q->scanned, q->in_len - q->scanned);

        if (l == 0) {
                q->scanned = q->in_len;
                return 0;
        }
        l += q->scanned;
        q->scanned = 0;
        return l;
}

static void shell_consume(Qemu *q) {
        size_t l;

        while (machine_alive(&q->m) && q->in_len > 0) {
                switch (q->shell) {
                case SHELL_WAIT_SENTINEL: {
                        size_t keep = 0;
                        bool pending = false;

                        if (backdoor_sentinel_scan(q->in, q->in_len, &keep, &pending) == 0) {
                                memmove(q->in, q->in + q->in_len - keep, keep);
                                q->in_len = keep;
                                return;
                        }
                        q->skip_newline = pending;
                        /* Nothing may follow the sentinel (reference 4.4): drop all of it. */
                        q->in_len = 0;
                        shell_connected(q);
                        return;
                }
                case SHELL_IDLE:
                case SHELL_DEAD:
                        q->in_len = q->scanned = 0;   /* not ours to read: nothing was asked */
                        q->skip_newline = false;
                        return;
                case SHELL_OUTPUT: {
                        QemuExecJob *j = q->jobs;
                        int r;

                        if (q->skip_newline && q->in[0] == '\n') {
                                memmove(q->in, q->in + 1, --q->in_len);
                                q->skip_newline = false;
                                continue;
                        }
                        q->skip_newline = false;
                        l = shell_take_line(q);
                        if (l == 0)
                                return;
                        r = backdoor_base64_decode(q->in, l - 1, &j->out, &j->out_len);
                        if (r < 0) {
                                j->error = r;
                                j->out = NULL;
                                j->out_len = 0;
                        }
                        memmove(q->in, q->in + l, q->in_len - l);
                        q->in_len -= l;
                        if (j->flags & QEMU_EXEC_NO_STATUS) {
                                q->shell = SHELL_IDLE;
                                job_finish(q, 0, -1);
                                kick(q);
                                break;
                        }
                        /* Even after a bad frame: the status line keeps us in step. */
                        q->shell = SHELL_STATUS;
                        if (shell_write(q, BACKDOOR_STATUS_COMMAND) < 0) {
                                q->shell = SHELL_IDLE;
                                job_finish(q, -ENOMEM, -1);
                        }
                        break;
                }
                case SHELL_STATUS: {
                        int status = -1, r;

                        l = shell_take_line(q);
                        if (l == 0)
                                return;
                        r = backdoor_status_parse(q->in, l, &status);
                        memmove(q->in, q->in + l, q->in_len - l);
                        q->in_len -= l;
                        q->shell = SHELL_IDLE;
                        job_finish(q, r < 0 ? -EBADMSG : 0, r < 0 ? -1 : status);
                        kick(q);
                        break;
                }
                }
        }
}

static int on_shell(sd_event_source *s _unused_, int fd, uint32_t revents, void *userdata) {
        Qemu *q = userdata;

        machine_enter(&q->m);
        if (revents & EPOLLOUT)
                shell_flush(q);
        if (revents & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
                for (;;) {
                        ssize_t n;

                        if (q->in_alloc - q->in_len < 65536) {
                                size_t a = q->in_alloc ? q->in_alloc * 2 : 131072;
                                char *p = a > FRAME_MAX ? NULL : realloc(q->in, a);
                                if (!p) {
                                        /* A line longer than any frame: give up on this command. */
                                        q->in_len = q->scanned = 0;
                                        if (q->shell == SHELL_OUTPUT || q->shell == SHELL_STATUS) {
                                                q->shell = SHELL_DEAD;
                                                job_finish(q, -EBADMSG, -1);
                                                fail_all_jobs(q, -EBADMSG);
                                        }
                                        break;
                                }
                                q->in = p;
                                q->in_alloc = a;
                        }
                        n = recv(fd, q->in + q->in_len, q->in_alloc - q->in_len, MSG_DONTWAIT);
                        if (n < 0) {
                                if (errno == EINTR)
                                        continue;
                                if (errno == EAGAIN)
                                        break;
                                n = 0;
                        }
                        if (n == 0) {
                                /* QEMU closed it: it is exiting, and its exit fails the jobs. */
                                q->shell = SHELL_DEAD;
                                q->shell_source = sd_event_source_disable_unref(q->shell_source);
                                break;
                        }
                        q->in_len += (size_t) n;
                        shell_consume(q);
                        if (!machine_alive(&q->m) || q->shell == SHELL_DEAD)
                                break;
                }
        }
        machine_leave(&q->m);
        return 0;
}

static int on_kick(sd_event_source *s _unused_, void *userdata) {
        Qemu *q = userdata;

        machine_enter(&q->m);
        if (q->pending_notice) {
                _cleanup_free_ char *m = TAKE_PTR(q->pending_notice);
                machine_notice(&q->m, "%s", m);
        }
        while (q->orphans && machine_alive(&q->m)) {
                QemuExecJob *j = q->orphans;
                q->orphans = j->next;
                job_complete(q, j, j->error, -1);
        }
        if (q->fail_jobs && machine_alive(&q->m)) {
                int e = q->fail_jobs;
                q->fail_jobs = 0;
                fail_all_jobs(q, e);
        }
        if (machine_alive(&q->m))
                shell_next(q);
        machine_leave(&q->m);
        return 0;
}

/* ---- the serial console ---- */

static void console_line(Qemu *q, char *line, size_t len) {
        len = backdoor_console_clean(line, len);
        machine_remember_line(&q->m, line, len, false);
        if (q->m.cb.on_console_line && machine_alive(&q->m))
                q->m.cb.on_console_line(&q->m, line, len);
}

static void console_read(Console *c, bool flush) {
        Qemu *q = c->q;
        char buf[8192], *line;
        size_t len = 0;

        while (c->source) {
                ssize_t n = read(sd_event_source_get_io_fd(c->source), buf, sizeof buf);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0) {
                        if (n == 0 || errno != EAGAIN)
                                c->source = sd_event_source_disable_unref(c->source);
                        break;
                }
                if (c->guest && !q->console_seen) {
                        q->console_seen = true;
                        q->probe_timer = sd_event_source_disable_unref(q->probe_timer);
                }
                for (size_t i = 0; i < (size_t) n && machine_alive(&q->m);) {
                        i += linebuf_feed(&c->lines, buf + i, (size_t) n - i, &line, &len);
                        if (line)
                                console_line(q, line, len);
                }
                if (!machine_alive(&q->m))
                        return;
        }
        if (flush && (line = linebuf_flush(&c->lines, &len)) && machine_alive(&q->m))
                console_line(q, line, len);
}

static int on_console(sd_event_source *s _unused_, int fd _unused_, uint32_t revents _unused_, void *userdata) {
        Console *c = userdata;
        Qemu *q = c->q;

        machine_enter(&q->m);
        console_read(c, false);
        machine_leave(&q->m);
        return 0;
}

static int console_open(Console *c, int fd) {
        int r;

        c->lines.len = 0;
        r = sd_event_add_io(c->q->m.event, &c->source, fd, EPOLLIN, on_console, c);
        if (r < 0) {
                close(fd);
                return r;
        }
        (void) sd_event_source_set_io_fd_own(c->source, true);
        /* Before QEMU's exit is handled, so that a failure message holds the last lines. */
        (void) sd_event_source_set_priority(c->source, SD_EVENT_PRIORITY_NORMAL - 1);
        return 0;
}

/* ---- QMP ---- */

static void on_qmp_event(Qmp *qmp _unused_, const char *name, json_t *data, json_t *msg, void *userdata) {
        Qemu *q = userdata;

        machine_enter(&q->m);
        if (streq(name, "SHUTDOWN"))
                snprintf(q->shutdown_reason, sizeof q->shutdown_reason, "%s",
                         json_string_value(json_object_get(data, "reason")) ?: "");
        /* A reset (a reboot with allow_reboot, whoever asked) starts a new boot: the old shell is gone. */
        if (streq(name, "RESET") && (q->m.state == MACHINE_READY || q->m.state == MACHINE_BOOTING)) {
                bool running = q->shell == SHELL_OUTPUT || q->shell == SHELL_STATUS;

                shell_disconnect(q);
                q->m.state = MACHINE_BOOTING;
                if (!q->m.boot_pending) {
                        q->m.boot_pending = true;
                        (void) machine_arm_boot_timer(&q->m, q->cfg.boot_timeout_usec);
                }
                if (running)
                        job_finish(q, -ECONNRESET, -1);
        }
        if (machine_alive(&q->m) && q->m.cb.on_qmp_event)
                q->m.cb.on_qmp_event(&q->m, name, data, msg);
        machine_leave(&q->m);
}

static void on_qmp_close(Qmp *qmp _unused_, int error _unused_, void *userdata _unused_) {
        /* QEMU is exiting (or garbled QMP): its exit does the reporting. */
}

static void calls_remove(Qemu *q, QmpCall *c) {
        for (QmpCall **pp = &q->calls; *pp; pp = &(*pp)->next)
                if (*pp == c) {
                        *pp = c->next;
                        break;
                }
}

static void on_qmp_reply(Qmp *qmp _unused_, int error, json_t *result, const char *error_class _unused_,
                         const char *error_desc, void *userdata) {
        QmpCall *c = userdata;
        Qemu *q = c->q;

        machine_enter(&q->m);
        calls_remove(q, c);
        if (c->done && machine_alive(&q->m))
                c->done(q, error, result, error_desc, c->userdata);
        free(c);
        machine_leave(&q->m);
}

/* ---- QEMU's process ---- */

static void run_teardown(Qemu *q) {
        q->serial.source = sd_event_source_disable_unref(q->serial.source);
        q->messages.source = sd_event_source_disable_unref(q->messages.source);
        q->shell_source = sd_event_source_disable_unref(q->shell_source);
        q->probe_timer = sd_event_source_disable_unref(q->probe_timer);
        q->m.boot_timer = sd_event_source_disable_unref(q->m.boot_timer);
        machine_forget_run(&q->m);
        if (q->stdin_fd >= 0)
                q->stdin_fd = (close(q->stdin_fd), -1);
        if (q->shell_fd >= 0)
                q->shell_fd = (close(q->shell_fd), -1);
        /* Calls still waiting: freed without their callback (they belong to this run). */
        while (q->calls) {
                QmpCall *c = q->calls;
                q->calls = c->next;
                free(c);
        }
        qmp_free(q->qmp);
        q->qmp = NULL;
        q->in_len = q->out.len = q->scanned = 0;
        q->shell = SHELL_DEAD;
}

static int exited(Machine *m, int status, MachineState was) {
        Qemu *q = (Qemu *) m;
        bool kvm = q->kvm;
        int r;

        /* What its session left behind (a start script's helpers) goes with it; the group is still
         * ours to signal while QEMU is an unreaped zombie. */
        kill_qemu(q, SIGKILL);
        /* Its last words first, so that a failure message holds them. */
        console_read(&q->serial, true);
        console_read(&q->messages, true);
        /* Replies that never came fail now, with the connection. */
        while (machine_alive(m) && q->calls) {
                QmpCall *c = q->calls;
                q->calls = c->next;
                if (c->done)
                        c->done(q, -ECONNRESET, NULL, "QEMU exited", c->userdata);
                free(c);
        }
        if (!machine_alive(m))
                return 0;
        run_teardown(q);

        if (accel_falls_back(q->cfg.accel, kvm, was == MACHINE_BOOTING, q->restart_tcg, q->console_seen)) {
                if (!q->restart_tcg)
                        machine_notice(m, "node %s: QEMU exited with status %d under KVM before any output: starting it "
                                          "again under TCG", q->cfg.name, status);
                q->restart_tcg = false;
                r = spawn(q, false);
                if (r >= 0)
                        return 1;
                _cleanup_free_ char *msg = machine_failure_message(m, "cannot start %s under TCG: %s",
                                                                   q->cfg.qemu ?: QEMU_DEFAULT, strerror(-r));
                machine_report_ready(m, r, msg);
        }
        fail_all_jobs(q, was == MACHINE_STOPPING || was == MACHINE_KILLING ? -ECANCELED : -ECONNRESET);
        return 0;
}

static char *exit_message(Machine *m, int status) {
        Qemu *q = (Qemu *) m;
        const char *what = q->cfg.start_script ?: q->cfg.qemu ?: QEMU_DEFAULT;

        if (streq(q->shutdown_reason, "guest-reset"))
                return machine_failure_message(m, "%s exited with status %d: the guest rebooted, and the VM runs "
                                                  "without allow_reboot", what, status);
        return machine_failure_message(m, "%s exited with status %d before its backdoor shell answered "
                                          "(does the guest run the backdoor on /dev/hvc0?)", what, status);
}

static char *boot_timeout_message(Machine *m) {
        return machine_failure_message(m, "its backdoor shell did not answer within %g s (is the guest booting? does "
                                          "it run the backdoor on /dev/hvc0?); killing QEMU",
                                       (double) m->boot_timeout_usec / SEC);
}

static int on_probe_timeout(sd_event_source *s _unused_, uint64_t usec _unused_, void *userdata) {
        Qemu *q = userdata;

        machine_enter(&q->m);
        q->probe_timer = sd_event_source_disable_unref(q->probe_timer);
        if (accel_probe_gives_up(q->kvm, q->m.state == MACHINE_BOOTING && q->m.pid > 0, q->console_seen)) {
                machine_notice(&q->m, "node %s: no console output within %.1f s under KVM (nested virtualisation may not "
                          "work here): starting it again under TCG",
                       q->cfg.name, (double) q->cfg.kvm_probe_usec / SEC);
                q->restart_tcg = true;
                kill_qemu(q, SIGKILL);
        }
        machine_leave(&q->m);
        return 0;
}

static bool kvm_usable(void) {
        int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);

        if (fd < 0)
                return false;
        close(fd);
        return true;
}

static char **script_env(const QemuConfig *cfg) {
        extern char **environ;
        char **v = NULL;
        size_t n = 0;
        int r = 0;

        for (char **e = environ; e && *e; e++)
                if (!startswith(*e, "TMPDIR=") && !startswith(*e, "USE_TMPDIR=") && !startswith(*e, "SHARED_DIR="))
                        r |= strv_push(&v, &n, *e);
        r |= strv_pushf(&v, &n, "TMPDIR=%s", cfg->state_dir);
        r |= strv_push(&v, &n, "USE_TMPDIR=1");
        if (cfg->shared_dir)
                r |= strv_pushf(&v, &n, "SHARED_DIR=%s", cfg->shared_dir);
        if (r < 0) {
                strv_free(v);
                return NULL;
        }
        return v;
}

/* In the child: fds 0-2 are QEMU's stdin, stdout and stderr, then the shell, QMP and the taps at fixed
 * numbers; nothing else stays open. */
static _Noreturn void child_exec(Qemu *q, pid_t parent, char **argv, char **envp, int in_fd, int out_fd,
                                 int err_fd, int shell_fd, int qmp_fd) {
        int high = FIRST_TAP_FD + (int) q->cfg.n_nics + 8;
        size_t n = 5 + q->cfg.n_nics;
        int src[n], dst[n];

        child_detach(parent);

        src[0] = in_fd, dst[0] = 0;
        src[1] = out_fd, dst[1] = 1;
        src[2] = err_fd, dst[2] = 2;
        src[3] = shell_fd, dst[3] = SHELL_FD;
        src[4] = qmp_fd, dst[4] = QMP_FD;
        for (size_t i = 0; i < q->cfg.n_nics; i++)
                src[5 + i] = q->nics[i].tap_fd, dst[5 + i] = FIRST_TAP_FD + (int) i;
        /* Out of the way first, so that no dup2 overwrites a source still needed. */
        for (size_t i = 0; i < n; i++)
                if ((src[i] = fcntl(src[i], F_DUPFD_CLOEXEC, high)) < 0)
                        _exit(127);
        for (size_t i = 0; i < n; i++)
                if (dup2(src[i], dst[i]) < 0)
                        _exit(127);
        (void) close_range(FIRST_TAP_FD + (int) q->cfg.n_nics, ~0U, 0);
        if (chdir(q->cfg.state_dir) < 0) {
                dprintf(2, "moonrig: node %s: cannot enter the state directory %s: %m\n", q->cfg.name,
                        q->cfg.state_dir);
                _exit(127);
        }
        if (envp)
                execve(argv[0], argv, envp);
        else
                execvp(argv[0], argv);
        dprintf(2, "moonrig: node %s: cannot run %s: %m%s\n", q->cfg.name, argv[0],
                q->cfg.start_script ? "" : " (apt-get install qemu-system-x86)");
        _exit(127);
}

static int spawn(Qemu *q, bool kvm) {
        _cleanup_strv_free_ char **argv = NULL, **envp = NULL;
        int shell[2] = { -1, -1 }, qmpfd[2] = { -1, -1 }, in[2] = { -1, -1 }, out[2] = { -1, -1 },
            err[2] = { -1, -1 };
        QmpCallbacks qcb = { .on_event = on_qmp_event, .on_close = on_qmp_close };
        pid_t parent = getpid(), pid;
        int r;

        argv = qemu_argv(&q->cfg, kvm, SHELL_FD, QMP_FD, FIRST_TAP_FD);
        if (!argv)
                return -ENOMEM;
        if (q->cfg.start_script && !(envp = script_env(&q->cfg)))
                return -ENOMEM;
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, shell) < 0 ||
            socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, qmpfd) < 0 || pipe2(in, O_CLOEXEC) < 0 ||
            pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0) {
                r = -errno;
                goto fail_fds;
        }
        shell_widen(shell[1]);
        pid = fork();
        if (pid < 0) {
                r = -errno;
                goto fail_fds;
        }
        if (pid == 0)
                child_exec(q, parent, argv, envp, in[0], out[1], err[1], shell[1], qmpfd[1]);

        close(in[0]);
        close(out[1]);
        close(err[1]);
        close(shell[1]);
        close(qmpfd[1]);
        q->m.pid = pid;
        q->kvm = kvm;
        q->console_seen = false;
        q->restart_tcg = false;
        q->shutdown_reason[0] = '\0';
        q->stdin_fd = in[1];
        q->shell_fd = shell[0];
        q->in_len = q->out.len = q->scanned = 0;
        q->skip_newline = false;
        q->shell = SHELL_WAIT_SENTINEL;
        q->m.state = MACHINE_BOOTING;
        q->m.boot_pending = true;
        (void) fcntl(in[1], F_SETFL, O_NONBLOCK);
        (void) fcntl(out[0], F_SETFL, O_NONBLOCK);
        (void) fcntl(err[0], F_SETFL, O_NONBLOCK);
        (void) fcntl(shell[0], F_SETFL, O_NONBLOCK);

        /* After what QEMU said before it exited: console lines, QMP events, the shell's last frame. */
        r = machine_watch_child(&q->m, pid, SD_EVENT_PRIORITY_NORMAL + 10);
        if (r < 0) {
                close(out[0]);
                close(err[0]);
                close(qmpfd[0]);
                goto fail_child;
        }
        r = console_open(&q->serial, out[0]);
        if (r < 0) {
                close(err[0]);
                close(qmpfd[0]);
                goto fail_child;
        }
        r = console_open(&q->messages, err[0]);
        if (r < 0) {
                close(qmpfd[0]);
                goto fail_child;
        }
        r = sd_event_add_io(q->m.event, &q->shell_source, q->shell_fd, EPOLLIN, on_shell, q);
        if (r < 0) {
                close(qmpfd[0]);
                goto fail_child;
        }
        r = qmp_new(q->m.event, qmpfd[0], &qcb, q, &q->qmp);
        if (r < 0)
                goto fail_child;
        r = machine_arm_boot_timer(&q->m, q->cfg.boot_timeout_usec);
        if (r >= 0 && kvm && q->cfg.accel == QEMU_ACCEL_KVM_OR_TCG)
                r = sd_event_add_time_relative(q->m.event, &q->probe_timer, CLOCK_MONOTONIC, q->cfg.kvm_probe_usec, 0,
                                               on_probe_timeout, q);
        if (r < 0)
                goto fail_child;
        return 0;

fail_child:
        kill_qemu(q, SIGKILL);
        if (!q->m.child_source)
                (void) waitpid(pid, NULL, 0);
        run_teardown(q);   /* the child source reaps it as it goes */
        q->m.state = MACHINE_STOPPED;
        q->m.boot_pending = false;
        return r;

fail_fds:
        for (int *fd = (int[]) { shell[0], shell[1], qmpfd[0], qmpfd[1], in[0], in[1], out[0], out[1], err[0], err[1],
                                 -2 };
             *fd != -2; fd++)
                if (*fd >= 0)
                        close(*fd);
        return r;
}

/* ---- public API ---- */

/* The machine interface (machine.h): the lifecycle (below), and what follows. A VM's files come
 * from its image: it has no add_file. */
static int qemu_start(Machine *m);
static int qemu_shutdown(Machine *m);
static int qemu_reboot(Machine *m);
static void qemu_crash(Machine *m);
static void qemu_release(Machine *m);

static bool vt_is_ready(Machine *m) {
        return qemu_is_connected((Qemu *) m);
}

/* Into the one result type: no stderr (it went to the serial console), and a lost connection is
 * the machine going away, as exec.c says for a container. */
static void on_vt_exec_done(Qemu *q _unused_, QemuExecResult *qr, void *userdata) {
        MachineExecResult r = {
                .status = qr->status,
                .out = TAKE_PTR(qr->out),
                .out_len = qr->out_len,
                .err = strdup(""),
                .error = qr->error == -ECONNRESET || qr->error == -ECANCELED ? -ESRCH : qr->error,
        };

        machine_exec_done(userdata, &r);
        free(r.out);
        free(r.err);
}

_Static_assert(MACHINE_EXEC_NO_STATUS == QEMU_EXEC_NO_STATUS && MACHINE_EXEC_NO_OUTPUT == QEMU_EXEC_NO_OUTPUT,
               "machine.h's exec flags are qemu.h's");

static int vt_exec(Machine *m, MachineExec *x, const char *command, uint64_t timeout_usec, unsigned flags,
                   void **ret_job) {
        QemuExecJob *job = NULL;
        int r = qemu_exec((Qemu *) m, command, timeout_usec, flags, on_vt_exec_done, x, &job);

        *ret_job = job;
        return r;
}

static void vt_exec_cancel(void *job) {
        qemu_exec_cancel(job);
}

/* Grouped by who calls what: the words of machine.c's messages, its hooks, then the operations
 * machine_start ... machine_exec_cancel dispatch to. */
static const MachineVTable qemu_vtable = {
        .kind = MACHINE_VM, .noun = "VM", .process = "QEMU", .ready_what = "its backdoor shell answered",
        .no_output = " (no console output: is console=ttyS0 on the kernel command line?)",

        .kill = kill_now, .kill_hard = kill_now, .exited = exited, .exit_message = exit_message,
        .boot_timeout_message = boot_timeout_message, .destroy = qemu_destroy,

        .start = qemu_start, .poweroff = qemu_shutdown, .reboot = qemu_reboot, .crash = qemu_crash,
        .release = qemu_release, .is_ready = vt_is_ready, .exec = vt_exec, .exec_cancel = vt_exec_cancel,
};

int qemu_new(sd_event *e, const QemuConfig *cfg, const MachineCallbacks *cb, void *userdata, Qemu **ret) {
        Qemu *q;
        int r;

        if (!cfg->name || !*cfg->name || !cfg->state_dir)
                return -EINVAL;
        if (!cfg->kernel && !(cfg->drives && cfg->drives[0]) && !cfg->start_script)
                return -EINVAL;
        if (cfg->start_script && (cfg->kernel || (cfg->drives && cfg->drives[0])))
                return -EINVAL;

        q = calloc(1, sizeof *q);
        if (!q)
                return -ENOMEM;
        machine_init(&q->m, &qemu_vtable, e, NULL);
        q->stdin_fd = q->shell_fd = -1;
        q->shell = SHELL_DEAD;
        q->serial = (Console) { .q = q, .guest = true };
        q->messages = (Console) { .q = q };
        machine_set_callbacks(&q->m, cb, userdata);
        q->cfg = (QemuConfig) {
                .name = strdup(cfg->name),
                .state_dir = strdup(cfg->state_dir),
                .qemu = cfg->qemu ? strdup(cfg->qemu) : NULL,
                .kernel = cfg->kernel ? strdup(cfg->kernel) : NULL,
                .initrd = cfg->initrd ? strdup(cfg->initrd) : NULL,
                .append = cfg->append ? strdup(cfg->append) : NULL,
                .drives = strv_copy(cfg->drives),
                .start_script = cfg->start_script ? strdup(cfg->start_script) : NULL,
                .shared_dir = cfg->shared_dir ? strdup(cfg->shared_dir) : NULL,
                .memory_mb = cfg->memory_mb,
                .cpus = cfg->cpus,
                .accel = cfg->accel,
                .allow_reboot = cfg->allow_reboot,
                .extra_args = strv_copy(cfg->extra_args),
                .boot_timeout_usec = cfg->boot_timeout_usec ?: BOOT_TIMEOUT_DEFAULT,
                .shutdown_timeout_usec = cfg->shutdown_timeout_usec ?: SHUTDOWN_TIMEOUT_DEFAULT,
                .kvm_probe_usec = cfg->kvm_probe_usec ?: KVM_PROBE_DEFAULT,
        };
        q->m.name = q->cfg.name;
        q->m.boot_timeout_usec = q->cfg.boot_timeout_usec;
        q->m.shutdown_timeout_usec = q->cfg.shutdown_timeout_usec;
        q->cfg.n_nics = cfg->n_nics;
        if (cfg->n_nics > 0) {
                q->nics = calloc(cfg->n_nics, sizeof(QemuNic));
                if (!q->nics) {
                        r = -ENOMEM;
                        goto fail;
                }
                for (size_t i = 0; i < cfg->n_nics; i++)
                        q->nics[i].tap_fd = -1;
                for (size_t i = 0; i < cfg->n_nics; i++) {
                        q->nics[i].tap_fd = fcntl(cfg->nics[i].tap_fd, F_DUPFD_CLOEXEC, 3);
                        if (q->nics[i].tap_fd < 0) {
                                r = -errno;
                                goto fail;
                        }
                        q->nics[i].mac = cfg->nics[i].mac ? strdup(cfg->nics[i].mac) : NULL;
                        q->nics[i].model = cfg->nics[i].model ? strdup(cfg->nics[i].model) : NULL;
                        if ((cfg->nics[i].mac && !q->nics[i].mac) || (cfg->nics[i].model && !q->nics[i].model)) {
                                r = -ENOMEM;
                                goto fail;
                        }
                }
                q->cfg.nics = q->nics;
        }
        if (!q->cfg.name || !q->cfg.state_dir || (cfg->qemu && !q->cfg.qemu) || (cfg->kernel && !q->cfg.kernel) ||
            (cfg->initrd && !q->cfg.initrd) || (cfg->append && !q->cfg.append) || (cfg->drives && !q->cfg.drives) ||
            (cfg->start_script && !q->cfg.start_script) || (cfg->shared_dir && !q->cfg.shared_dir) ||
            (cfg->extra_args && !q->cfg.extra_args)) {
                r = -ENOMEM;
                goto fail;
        }
        r = sd_event_add_defer(e, &q->kick_source, on_kick, q);
        if (r < 0)
                goto fail;
        (void) sd_event_source_set_enabled(q->kick_source, SD_EVENT_OFF);
        (void) sd_event_source_set_description(q->kick_source, "qemu-kick");
        *ret = q;
        return 0;
fail:
        qemu_destroy(&q->m);
        return r;
}

static int qemu_start(Machine *m) {
        Qemu *q = (Qemu *) m;
        _cleanup_free_ char *msg = NULL;
        AccelChoice a;

        if (q->m.pid > 0)
                return -EBUSY;
        machine_set_start_error(&q->m, NULL);
        int r = accel_choose(q->cfg.accel, kvm_usable() ? 0 : -errno, q->cfg.start_script, q->cfg.name, &a, &msg);
        if (r < 0) {
                machine_set_start_error(&q->m, TAKE_PTR(msg));
                return r;
        }
        if (msg && !q->pending_notice) {
                q->pending_notice = TAKE_PTR(msg);
                kick(q);
        }
        return spawn(q, a.kvm);
}

static int qemu_shutdown(Machine *m) {
        Qemu *q = (Qemu *) m;
        int r;

        if (q->m.pid <= 0)
                return -ESRCH;
        if (q->m.state == MACHINE_STOPPING || q->m.state == MACHINE_KILLING)
                return 0;
        if (q->shell == SHELL_IDLE || q->shell == SHELL_OUTPUT || q->shell == SHELL_STATUS) {
                /* A raw line, no framing and nothing read back, as the NixOS driver does. A command
                 * still running finishes first; the shell then reads this. */
                r = shell_write(q, BACKDOOR_POWEROFF_COMMAND);
                if (r < 0)
                        return r;
        } else if (qmp_execute(q->qmp, "system_powerdown", NULL, NULL, NULL) < 0)
                kill_qemu(q, SIGTERM);
        q->shell = SHELL_DEAD;
        q->m.state = MACHINE_STOPPING;
        q->fail_jobs = -ECANCELED;
        kick(q);
        return machine_arm_shutdown_timer(&q->m);
}

static void on_reboot_key(Qemu *q _unused_, int error _unused_, json_t *result _unused_,
                          const char *error_desc _unused_, void *userdata _unused_) {
        /* A failed sendkey shows as a boot that never answers (boot timeout). */
}

static int qemu_reboot(Machine *m) {
        Qemu *q = (Qemu *) m;
        bool running;
        int r;

        if (q->m.pid <= 0)
                return -ESRCH;
        if (q->m.state == MACHINE_STOPPING || q->m.state == MACHINE_KILLING)
                return -ESRCH;
        r = qemu_send_key(q, "ctrl-alt-delete", on_reboot_key, NULL);
        if (r < 0)
                return r;
        running = q->shell == SHELL_OUTPUT || q->shell == SHELL_STATUS;
        shell_disconnect(q);
        q->m.state = MACHINE_BOOTING;
        q->m.boot_pending = true;
        r = machine_arm_boot_timer(&q->m, q->cfg.boot_timeout_usec);
        if (running) {
                /* Callbacks run from the loop only: fail it there. */
                QemuExecJob *j = job_pop(q);
                j->error = -ECONNRESET;
                j->next = q->orphans;
                q->orphans = j;
                kick(q);
        }
        return r;
}

static void qemu_crash(Machine *m) {
        Qemu *q = (Qemu *) m;

        if (q->m.pid <= 0)
                return;
        q->m.state = MACHINE_KILLING;
        q->shell = SHELL_DEAD;
        if (!qmp_is_ready(q->qmp) || qmp_execute(q->qmp, "quit", NULL, NULL, NULL) < 0)
                kill_qemu(q, SIGKILL);
        q->fail_jobs = -ECANCELED;
        kick(q);
        (void) machine_arm_kill_timer(&q->m);
}

static void qemu_release(Machine *m) {
        Qemu *q = (Qemu *) m;

        if (q->m.pid <= 0)
                return;
        q->m.state = MACHINE_KILLING;
        q->shell = SHELL_DEAD;
        kill_qemu(q, SIGTERM);
        q->fail_jobs = -ECANCELED;
        kick(q);
        (void) machine_arm_kill_timer(&q->m);
}

static void qemu_destroy(Machine *m) {
        Qemu *q = (Qemu *) m;

        if (q->m.pid > 0) {
                kill_qemu(q, SIGKILL);
                if (!q->m.child_source)
                        (void) waitpid(q->m.pid, NULL, 0);
        }
        run_teardown(q);   /* unref of the child source reaps QEMU (process_own) */
        while (q->jobs)
                job_free(job_pop(q));
        while (q->orphans) {
                QemuExecJob *j = q->orphans;
                q->orphans = j->next;
                job_free(j);
        }
        sd_event_source_disable_unref(q->kick_source);
        free(q->pending_notice);
        machine_done(&q->m);
        for (size_t i = 0; i < q->cfg.n_nics && q->nics; i++) {
                if (q->nics[i].tap_fd >= 0)
                        close(q->nics[i].tap_fd);
                free((char *) q->nics[i].mac);
                free((char *) q->nics[i].model);
        }
        free(q->nics);
        free((char *) q->cfg.name);
        free((char *) q->cfg.state_dir);
        free((char *) q->cfg.qemu);
        free((char *) q->cfg.kernel);
        free((char *) q->cfg.initrd);
        free((char *) q->cfg.append);
        strv_free(q->cfg.drives);
        free((char *) q->cfg.start_script);
        free((char *) q->cfg.shared_dir);
        strv_free(q->cfg.extra_args);
        free(q->in);
        outbuf_free(&q->out);
        free(q);
}

void qemu_free(Qemu *q) {
        if (q)
                machine_free(&q->m);
}

int qemu_exec(Qemu *q, const char *command, uint64_t timeout_usec, unsigned flags, qemu_exec_fn done,
              void *userdata, QemuExecJob **ret) {
        QemuExecJob *j;

        if (q->m.pid <= 0 || q->m.state == MACHINE_STOPPING || q->m.state == MACHINE_KILLING)
                return -ESRCH;
        j = calloc(1, sizeof *j);
        if (!j)
                return -ENOMEM;
        j->line = backdoor_command_line(command, timeout_usec);
        if (!j->line) {
                free(j);
                return -ENOMEM;
        }
        j->q = q;
        j->flags = flags;
        j->done = done;
        j->userdata = userdata;
        if (q->jobs_tail)
                q->jobs_tail->next = j;
        else
                q->jobs = j;
        q->jobs_tail = j;
        kick(q);
        if (ret)
                *ret = j;
        return 0;
}

void qemu_exec_cancel(QemuExecJob *j) {
        if (j)
                j->done = NULL;
}

int qemu_qmp(Qemu *q, const char *command, json_t *arguments, qemu_qmp_fn done, void *userdata) {
        QmpCall *c;
        int id;

        if (q->m.pid <= 0 || !q->qmp)
                return -ESRCH;
        c = calloc(1, sizeof *c);
        if (!c)
                return -ENOMEM;
        *c = (QmpCall) { .q = q, .done = done, .userdata = userdata };
        id = qmp_execute(q->qmp, command, arguments, on_qmp_reply, c);
        if (id < 0) {
                free(c);
                return id == -ENOTCONN ? -ESRCH : id;
        }
        c->id = id;
        c->next = q->calls;
        q->calls = c;
        return 0;
}

int qemu_hmp(Qemu *q, const char *command_line, qemu_qmp_fn done, void *userdata) {
        json_t *args = json_pack("{s:s}", "command-line", command_line);
        int r;

        if (!args)
                return -ENOMEM;
        r = qemu_qmp(q, "human-monitor-command", args, done, userdata);
        json_decref(args);
        return r;
}

int qemu_screendump(Qemu *q, const char *path, qemu_qmp_fn done, void *userdata) {
        size_t l = strlen(path);
        bool png = l >= 4 && strcasecmp(path + l - 4, ".png") == 0;
        json_t *args = png ? json_pack("{s:s,s:s}", "filename", path, "format", "png")
                           : json_pack("{s:s}", "filename", path);
        int r;

        if (!args)
                return -ENOMEM;
        r = qemu_qmp(q, "screendump", args, done, userdata);
        json_decref(args);
        return r;
}

int qemu_send_key(Qemu *q, const char *key, qemu_qmp_fn done, void *userdata) {
        _cleanup_free_ char *cmd = NULL;

        if (!*key || strpbrk(key, " \t\n"))
                return -EINVAL;
        if (asprintf(&cmd, "sendkey %s", key) < 0)
                return -ENOMEM;
        return qemu_hmp(q, cmd, done, userdata);
}

int qemu_send_console(Qemu *q, const void *data, size_t len) {
        const char *p = data;

        if (q->stdin_fd < 0)
                return -ESRCH;
        while (len > 0) {
                ssize_t n = write(q->stdin_fd, p, len);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;   /* -EAGAIN: QEMU does not read its serial input */
                }
                p += n;
                len -= (size_t) n;
        }
        return 0;
}

bool qemu_is_up(Qemu *q) {
        return q->m.pid > 0;
}

bool qemu_is_connected(Qemu *q) {
        return q->m.pid > 0 && q->shell != SHELL_WAIT_SENTINEL && q->shell != SHELL_DEAD;
}

pid_t qemu_pid(Qemu *q) {
        return q->m.pid;
}

bool qemu_uses_kvm(Qemu *q) {
        return q->m.pid > 0 && q->kvm;
}

const char *qemu_name(Qemu *q) {
        return q->cfg.name;
}

void *qemu_userdata(Qemu *q) {
        return q->m.userdata;
}

Machine *qemu_machine(Qemu *q) {
        return q ? &q->m : NULL;
}

Qemu *qemu_from_machine(Machine *m) {
        return m && m->vtable == &qemu_vtable ? (Qemu *) m : NULL;
}
