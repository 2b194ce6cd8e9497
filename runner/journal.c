/* journal.c: follow a container's journal files (run/log/journal and var/log/journal below its OS
 * tree) with sd-journal on sd-event, handing out entries formatted like `journalctl -o short` without
 * the time and host. <systemd/sd-journal.h> pulls in <syslog.h>, whose LOG_DEBUG and friends clash
 * with logfmt.h's: this file includes neither log.h nor logfmt.h. */
#define _GNU_SOURCE
#include <sys/stat.h>
#include <systemd/sd-id128.h>
#include <systemd/sd-journal.h>

#include "journal.h"
#include "util.h"

/* journald makes its writes known (inotify) up to 500 ms late: it touches the file from a timer of
 * 250 ms with sd-event's default accuracy of 250 ms; measured, a line came 495 ms after `logger`.
 * The entries are in the shared mapping at once: looking every 100 ms cuts that to 50 ms (median),
 * for under 1 ms of CPU a second. The same look finds the journal directories as journald creates
 * them. */
#define POLL_USEC (100 * 1000ULL)
/* After an error opening the journal: try again, less often. */
#define RETRY_USEC (1000 * 1000ULL)
#define FIELD_MAX 256

struct JournalFollower {
        sd_event *event;
        char *root;
        uint64_t since;
        sd_id128_t boot_id;          /* the container's own (nspawn gives each boot one); null: unknown */
        journal_line_fn cb;
        void *userdata;

        sd_journal *j;
        sd_event_source *io, *timer;
        bool had_run, had_var;       /* which directories existed when j was opened */
        /* The last entry handed out, kept while a reopen may come: its monotonic time and its cursor
         * without seqnum ("b=...;m=...;t=...;x=..."), which a flush to /var/log/journal renumbers. */
        uint64_t last_mono;
        char *last;
        char *message;               /* the current entry's, copied */
        size_t message_size;
        bool skipping;               /* just reopened: up to `last`, entries were handed out */
        uint64_t n_entries;

        unsigned busy;               /* handing out lines: a callback may free us */
        bool dead;
};

/* ---- formatting ---- */

static bool utf8_next(const unsigned char *s, size_t len, size_t *i, uint32_t *ret) {
        unsigned char c = s[*i];
        size_t n;
        uint32_t v;

        if (c < 0x80) {
                *ret = c;
                (*i)++;
                return true;
        }
        if (c >= 0xc2 && c <= 0xdf)
                n = 1, v = c & 0x1f;
        else if (c >= 0xe0 && c <= 0xef)
                n = 2, v = c & 0x0f;
        else if (c >= 0xf0 && c <= 0xf4)
                n = 3, v = c & 0x07;
        else
                return false;
        if (*i + n >= len)
                return false;
        for (size_t k = 1; k <= n; k++) {
                if ((s[*i + k] & 0xc0) != 0x80)
                        return false;
                v = (v << 6) | (s[*i + k] & 0x3f);
        }
        /* Overlong forms, surrogates and values past U+10FFFF. */
        if ((n == 2 && v < 0x800) || (n == 3 && v < 0x10000) || (v >= 0xd800 && v <= 0xdfff) || v > 0x10ffff)
                return false;
        *i += n + 1;
        *ret = v;
        return true;
}

bool journal_message_printable(const char *s, size_t len) {
        const unsigned char *u = (const unsigned char *) s;

        for (size_t i = 0; i < len;) {
                uint32_t v;
                if (!utf8_next(u, len, &i, &v))
                        return false;
                if ((v < ' ' && v != '\t' && v != '\n') || (v >= 0x7f && v <= 0x9f))
                        return false;
        }
        return true;
}

int journal_format(const char *ident, size_t ident_len, const char *comm, size_t comm_len, const char *pid,
                   size_t pid_len, const char *syslog_pid, size_t syslog_pid_len, const char *message,
                   size_t message_len, journal_line_fn cb, void *userdata) {
        _cleanup_free_ char *prefix = NULL, *line = NULL;
        char blob[64];
        size_t plen, cap = 0;
        int n = 0;

        if (!ident || ident_len == 0) {
                ident = comm;
                ident_len = comm_len;
        }
        if (!ident || ident_len == 0) {
                ident = "unknown";
                ident_len = strlen(ident);
        }
        if (!pid || pid_len == 0) {
                pid = syslog_pid;
                pid_len = syslog_pid_len;
        }
        if (pid && pid_len > 0)
                plen = asprintf(&prefix, "%.*s[%.*s]: ", (int) ident_len, ident, (int) pid_len, pid);
        else
                plen = asprintf(&prefix, "%.*s: ", (int) ident_len, ident);
        if ((int) plen < 0) {
                prefix = NULL;
                return -ENOMEM;
        }
        if (!message)
                message = "", message_len = 0;
        if (!journal_message_printable(message, message_len)) {
                snprintf(blob, sizeof blob, "[%zu bytes blob data]", message_len);
                message = blob;
                message_len = strlen(blob);
        }
        /* journald keeps a trailing newline some programs send; journalctl does not print it. */
        while (message_len > 0 && message[message_len - 1] == '\n')
                message_len--;

        for (size_t start = 0;;) {
                const char *nl = memchr(message + start, '\n', message_len - start);
                size_t l = (nl ? (size_t) (nl - message) : message_len) - start;

                if (plen + l + 1 > cap) {
                        char *p = realloc(line, plen + l + 1);
                        if (!p)
                                return -ENOMEM;
                        line = p;
                        cap = plen + l + 1;
                }
                memcpy(line, prefix, plen);
                memcpy(line + plen, message + start, l);
                line[plen + l] = '\0';
                cb(line, plen + l, userdata);
                n++;
                if (!nl)
                        break;
                start += l + 1;
        }
        return n;
}

/* ---- following ---- */

static void free_now(JournalFollower *f) {
        f->io = sd_event_source_disable_unref(f->io);
        f->timer = sd_event_source_disable_unref(f->timer);
        sd_journal_close(f->j);
        sd_event_unref(f->event);
        free(f->root);
        free(f->last);
        free(f->message);
        free(f);
}

JournalFollower *journal_follower_free(JournalFollower *f) {
        if (!f)
                return NULL;
        if (f->busy > 0) {
                /* Called from a line callback: finish when the lines are handed out. */
                f->dead = true;
                f->io = sd_event_source_disable_unref(f->io);
                f->timer = sd_event_source_disable_unref(f->timer);
                return NULL;
        }
        free_now(f);
        return NULL;
}

uint64_t journal_follower_entries(JournalFollower *f) {
        return f ? f->n_entries : 0;
}

/* nspawn mounts a boot id of the container's own over the kernel's; journald stamps entries with it.
 * Known once journald runs, which is when there is a journal to open. */
static void read_boot_id(JournalFollower *f) {
        _cleanup_free_ char *p = NULL;
        _cleanup_fclose_ FILE *file = NULL;
        char buf[64] = "";

        if (asprintf(&p, "%s/proc/sys/kernel/random/boot_id", f->root) < 0 || !(file = fopen(p, "re")) ||
            !fgets(buf, sizeof buf, file))
                return;
        buf[strcspn(buf, "\n")] = '\0';
        if (sd_id128_from_string(buf, &f->boot_id) < 0)
                f->boot_id = SD_ID128_NULL;
}

static bool dir_exists(const char *root, const char *rel) {
        _cleanup_free_ char *p = NULL;
        struct stat st;

        return asprintf(&p, "%s/%s", root, rel) >= 0 && stat(p, &st) >= 0 && S_ISDIR(st.st_mode);
}

/* A field's value, copied: the journal's pointer lasts only until its next call. */
static bool take_field(const void *d, size_t l, const char *name, char *buf, size_t size, size_t *ret_len) {
        size_t n = strlen(name);

        if (l <= n || memcmp(d, name, n) != 0 || ((const char *) d)[n] != '=')
                return false;
        l -= n + 1;
        if (l >= size)
                l = size - 1;
        memcpy(buf, (const char *) d + n + 1, l);
        buf[l] = '\0';
        *ret_len = l;
        return true;
}

/* A callback may free us midway through a message of several lines. */
static void forward(const char *line, size_t len, void *userdata) {
        JournalFollower *f = userdata;

        if (!f->dead)
                f->cb(line, len, f->userdata);
}

static void emit_entry(JournalFollower *f) {
        char ident[FIELD_MAX], comm[FIELD_MAX], pid[32], spid[32];
        size_t ident_len = 0, comm_len = 0, pid_len = 0, spid_len = 0, message_len = 0;
        bool message = false;
        const void *d;
        size_t l;

        /* One pass over the entry's fields (sd_journal_get_data would walk them once per field). */
        sd_journal_restart_data(f->j);
        while (sd_journal_enumerate_available_data(f->j, &d, &l) > 0) {
                if (l >= 8 && memcmp(d, "MESSAGE=", 8) == 0) {
                        if (l - 8 > f->message_size) {
                                char *p = realloc(f->message, l - 8);
                                if (!p)
                                        continue;
                                f->message = p;
                                f->message_size = l - 8;
                        }
                        memcpy(f->message, (const char *) d + 8, l - 8);
                        message_len = l - 8;
                        message = true;
                } else if (!take_field(d, l, "SYSLOG_IDENTIFIER", ident, sizeof ident, &ident_len) &&
                           !take_field(d, l, "_COMM", comm, sizeof comm, &comm_len) &&
                           !take_field(d, l, "_PID", pid, sizeof pid, &pid_len))
                        (void) take_field(d, l, "SYSLOG_PID", spid, sizeof spid, &spid_len);
        }
        (void) journal_format(ident_len ? ident : NULL, ident_len, comm_len ? comm : NULL, comm_len,
                              pid_len ? pid : NULL, pid_len, spid_len ? spid : NULL, spid_len,
                              message ? f->message : NULL, message_len, forward, f);
}

static void drain(JournalFollower *f) {
        bool track = !f->had_run || !f->had_var;

        if (!f->j)
                return;
        (void) sd_journal_process(f->j);
        while (!f->dead) {
                uint64_t mono;
                sd_id128_t boot;

                if (sd_journal_next(f->j) <= 0)
                        break;
                /* A persistent journal holds earlier boots of the node (a reboot, an earlier run). */
                if (sd_journal_get_monotonic_usec(f->j, &mono, &boot) < 0 || mono < f->since ||
                    (!sd_id128_is_null(f->boot_id) && !sd_id128_equal(boot, f->boot_id)))
                        continue;
                if (f->skipping) {
                        /* Entries of one journald iteration can share a timestamp: up to the very one. */
                        if (mono < f->last_mono)
                                continue;
                        if (mono == f->last_mono) {
                                _cleanup_free_ char *c = NULL;
                                if (sd_journal_get_cursor(f->j, &c) >= 0 && f->last && strstr(c, ";b=") &&
                                    streq(strstr(c, ";b="), f->last))
                                        f->skipping = false;
                                continue;
                        }
                        f->skipping = false;
                }
                if (track) {
                        _cleanup_free_ char *c = NULL;
                        free(f->last);
                        f->last = sd_journal_get_cursor(f->j, &c) >= 0 && strstr(c, ";b=") ? strdup(strstr(c, ";b="))
                                                                                          : NULL;
                        f->last_mono = mono;
                }
                f->n_entries++;
                emit_entry(f);
        }
}

static void hand_out(JournalFollower *f) {
        f->busy++;
        drain(f);
        if (--f->busy == 0 && f->dead)
                free_now(f);
}

void journal_follower_drain(JournalFollower *f) {
        if (f && !f->dead)
                hand_out(f);
}

static int on_io(sd_event_source *s _unused_, int fd _unused_, uint32_t revents _unused_, void *userdata) {
        hand_out(userdata);
        return 0;
}

static void close_journal(JournalFollower *f) {
        f->io = sd_event_source_disable_unref(f->io);
        sd_journal_close(f->j);
        f->j = NULL;
}

/* Opens what is there now, positioned after the last entry handed out (or at the start of the
 * container's boot). 0 when neither directory exists yet. */
static int open_journal(JournalFollower *f) {
        bool run = dir_exists(f->root, "run/log/journal"), var = dir_exists(f->root, "var/log/journal");
        sd_journal *j = NULL;
        int r;

        if (!run && !var)
                return 0;
        if (sd_id128_is_null(f->boot_id))
                read_boot_id(f);
        r = sd_journal_open_directory(&j, f->root, SD_JOURNAL_OS_ROOT);
        if (r < 0)
                return r;
        f->skipping = !!f->last;
        if (!sd_id128_is_null(f->boot_id))
                r = sd_journal_seek_monotonic_usec(j, f->boot_id, f->last ? f->last_mono : f->since);
        else
                r = sd_journal_seek_head(j);
        if (r < 0)
                goto fail;
        r = sd_journal_get_fd(j);
        if (r < 0)
                goto fail;
        r = sd_event_add_io(f->event, &f->io, r, sd_journal_get_events(j), on_io, f);
        if (r < 0)
                goto fail;
        f->j = j;
        f->had_run = run;
        f->had_var = var;
        return 1;
fail:
        sd_journal_close(j);
        return r;
}

static int on_timer(sd_event_source *s, uint64_t usec _unused_, void *userdata) {
        JournalFollower *f = userdata;
        bool reopen = f->j && ((!f->had_run && dir_exists(f->root, "run/log/journal")) ||
                               (!f->had_var && dir_exists(f->root, "var/log/journal")));
        int r = 0;

        f->busy++;
        if (reopen) {
                /* journald flushed to a directory we do not watch: whatever the old files still hold
                 * first, then the new set from where we are. */
                drain(f);
                close_journal(f);
        }
        if (!f->dead && !f->j)
                r = open_journal(f);
        if (!f->dead)
                drain(f);
        if (!f->dead) {
                (void) sd_event_source_set_time_relative(s, r < 0 ? RETRY_USEC : POLL_USEC);
                (void) sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
        }
        if (--f->busy == 0 && f->dead)
                free_now(f);
        return 0;
}

int journal_follow(sd_event *e, const JournalFollowConfig *cfg, journal_line_fn cb, void *userdata,
                   JournalFollower **ret) {
        JournalFollower *f;
        int r;

        if (!e || !cfg || !cfg->root || !cb || !ret)
                return -EINVAL;
        f = calloc(1, sizeof *f);
        if (!f)
                return -ENOMEM;
        f->event = sd_event_ref(e);
        f->since = cfg->since_usec;
        f->cb = cb;
        f->userdata = userdata;
        f->root = strdup(cfg->root);
        if (!f->root) {
                free_now(f);
                return -ENOMEM;
        }
        /* First look from the loop, not from the caller's stack. */
        r = sd_event_add_time_relative(e, &f->timer, CLOCK_MONOTONIC, 0, POLL_USEC / 10, on_timer, f);
        if (r < 0) {
                free_now(f);
                return r;
        }
        *ret = f;
        return 0;
}
