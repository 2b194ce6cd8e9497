/* logfmt.c: the terminal log line, as the NixOS driver's TerminalLogger prints it, made safe
 * for a terminal whatever bytes a guest's console sends. */
#define _GNU_SOURCE
#include <inttypes.h>
#include <strings.h>

#include "logfmt.h"
#include "util.h"

#define ANSI_BRIGHT_GREEN "\033[1;32m"
#define ANSI_YELLOW       "\033[33m"
#define ANSI_RED          "\033[31m"
#define ANSI_DIM          "\033[2m"
#define ANSI_RESET        "\033[0m"

#define UTF8_REPLACEMENT  "\xef\xbf\xbd"

/* snprintf-style output: counts everything, stores what fits and keeps buf NUL-terminated. */
typedef struct Sink {
        char *buf;
        size_t size;
        size_t len;
} Sink;

static void sink_put(Sink *s, const char *p, size_t n) {
        if (s->len < s->size) {
                size_t room = s->size - 1 - s->len;
                size_t k = n < room ? n : room;

                memcpy(s->buf + s->len, p, k);
                s->buf[s->len + k] = '\0';
        }
        s->len += n;
}

static void sink_puts(Sink *s, const char *p) {
        sink_put(s, p, strlen(p));
}

/* Length of the well-formed UTF-8 sequence at s (1 to 4), or 0 if s starts an ill-formed
 * one: stray continuation bytes, overlong forms, surrogates, code points past U+10FFFF,
 * truncated sequences. s is NUL-terminated and NUL is no continuation byte, so the
 * short-circuit order never reads past the end. */
static size_t utf8_valid_len(const unsigned char *s) {
        unsigned char c = s[0];

#define CONT(b) (((b) & 0xc0) == 0x80)
        if (c < 0x80)
                return 1;
        if (c < 0xc2)
                return 0;
        if (c < 0xe0)
                return CONT(s[1]) ? 2 : 0;
        if (c < 0xf0) {
                if (!CONT(s[1]) || !CONT(s[2]))
                        return 0;
                if ((c == 0xe0 && s[1] < 0xa0) || (c == 0xed && s[1] >= 0xa0))
                        return 0;
                return 3;
        }
        if (c < 0xf5) {
                if (!CONT(s[1]) || !CONT(s[2]) || !CONT(s[3]))
                        return 0;
                if ((c == 0xf0 && s[1] < 0x90) || (c == 0xf4 && s[1] >= 0x90))
                        return 0;
                return 4;
        }
        return 0;
#undef CONT
}

/* Where the escape sequence at p (p[0] == ESC) ends, or NULL when it is not one we strip.
 * CSI (colours, cursor moves: systemd's "[  OK  ]") and OSC (titles, hyperlinks, systemd's
 * context markers) are what consoles send; anything else stays visible as '?'. */
static const unsigned char *escape_end(const unsigned char *p) {
        const unsigned char *q = p + 2;

        if (p[1] == '[') {
                while (*q >= 0x30 && *q <= 0x3f)
                        q++;
                while (*q >= 0x20 && *q <= 0x2f)
                        q++;
                if (*q >= 0x40 && *q <= 0x7e)
                        q++;
                return q;
        }

        if (p[1] == ']') {
                /* Unterminated: leave the text visible rather than swallow the line. */
                for (; *q; q++) {
                        if (*q == 0x07)
                                return q + 1;
                        if (*q == 0x1b && q[1] == '\\')
                                return q + 2;
                }
                return NULL;
        }

        return NULL;
}

static void sink_put_sanitized(Sink *s, const char *text) {
        const unsigned char *p = (const unsigned char *) (text ?: "");

        while (*p) {
                const unsigned char *start = p;
                size_t n;

                /* Copy the longest run that needs no change in one go. */
                while (*p >= 0x20 && *p < 0x7f && *p != 0x1b)
                        p++;
                if (p > start) {
                        sink_put(s, (const char *) start, p - start);
                        continue;
                }

                if (*p == 0x1b) {
                        const unsigned char *e = escape_end(p);

                        if (e) {
                                p = e;
                                continue;
                        }
                        sink_put(s, "?", 1);
                        p++;
                        continue;
                }
                if (*p == '\r') {
                        p++;
                        continue;
                }
                if (*p == '\t') {
                        sink_put(s, "\t", 1);
                        p++;
                        continue;
                }
                if (*p < 0x20 || *p == 0x7f) {
                        sink_put(s, "?", 1);
                        p++;
                        continue;
                }

                n = utf8_valid_len(p);
                if (n == 0) {
                        sink_puts(s, UTF8_REPLACEMENT);
                        p++;
                } else if (n == 2 && p[0] == 0xc2 && p[1] < 0xa0) {
                        /* U+0080..U+009F: C1 controls; U+009B is a CSI to some terminals. */
                        sink_put(s, "?", 1);
                        p += 2;
                } else {
                        sink_put(s, (const char *) p, n);
                        p += n;
                }
        }
}

static void sink_put_coloured(Sink *s, bool colour, const char *ansi, const char *before, const char *msg) {
        if (colour)
                sink_puts(s, ansi);
        if (before)
                sink_puts(s, before);
        sink_put_sanitized(s, msg);
        if (colour)
                sink_puts(s, ANSI_RESET);
}

ssize_t logfmt_format(const LogfmtEntry *e, bool colour, char *buf, size_t size) {
        Sink s = { .buf = buf, .size = buf ? size : 0 };

        if (!e || (unsigned) e->kind >= _LOGFMT_KIND_MAX)
                return -EINVAL;
        if (e->kind == LOGFMT_SERIAL && !e->machine)
                return -EINVAL;
        if (s.size > 0)
                s.buf[0] = '\0';

        /* The prefix stays uncoloured, as maybe_prefix() adds it after colouring. */
        if (e->machine && e->kind != LOGFMT_SERIAL) {
                sink_put_sanitized(&s, e->machine);
                sink_puts(&s, ": ");
        }

        switch (e->kind) {
        case LOGFMT_PLAIN:
        case LOGFMT_INFO:
                sink_put_sanitized(&s, e->msg);
                break;
        case LOGFMT_NESTED_BEGIN:
                sink_put_coloured(&s, colour, ANSI_BRIGHT_GREEN, NULL, e->msg);
                break;
        case LOGFMT_SUBTEST:
                sink_put_coloured(&s, colour, ANSI_BRIGHT_GREEN, "subtest: ", e->msg);
                break;
        case LOGFMT_NESTED_END: {
                /* Rounded to hundredths in integers: no binary-float surprises like 0.125. */
                uint64_t centi = e->elapsed_usec / 10000 + (e->elapsed_usec % 10000 >= 5000);
                char t[64];

                sink_puts(&s, "(finished: ");
                sink_put_sanitized(&s, e->msg);
                snprintf(t, sizeof t, ", in %" PRIu64 ".%02u seconds)", centi / 100, (unsigned) (centi % 100));
                sink_puts(&s, t);
                break;
        }
        case LOGFMT_DEBUG:
                sink_put_coloured(&s, colour, ANSI_DIM, NULL, e->msg);
                break;
        case LOGFMT_WARNING:
                sink_put_coloured(&s, colour, ANSI_YELLOW, NULL, e->msg);
                break;
        case LOGFMT_ERROR:
                sink_put_coloured(&s, colour, ANSI_RED, NULL, e->msg);
                break;
        case LOGFMT_TEST_ERROR:
                if (colour)
                        sink_puts(&s, ANSI_RED "!!! " ANSI_RESET);
                else
                        sink_puts(&s, "!!! ");
                sink_put_sanitized(&s, e->msg);
                break;
        case LOGFMT_SERIAL:
                /* The whole line is dim, machine name included, as in the driver. */
                if (colour)
                        sink_puts(&s, ANSI_DIM);
                sink_put_sanitized(&s, e->machine);
                sink_puts(&s, " # ");
                sink_put_sanitized(&s, e->msg);
                if (colour)
                        sink_puts(&s, ANSI_RESET);
                break;
        default:
                return -EINVAL;
        }

        return (ssize_t) s.len;
}

int logfmt_format_alloc(const LogfmtEntry *e, bool colour, char **ret) {
        _cleanup_free_ char *buf = NULL;
        ssize_t n, m;

        n = logfmt_format(e, colour, NULL, 0);
        if (n < 0)
                return (int) n;

        buf = malloc((size_t) n + 1);
        if (!buf)
                return -ENOMEM;

        m = logfmt_format(e, colour, buf, (size_t) n + 1);
        if (m < 0)
                return (int) m;

        *ret = TAKE_PTR(buf);
        return 0;
}

int logfmt_write(FILE *f, const LogfmtEntry *e, bool colour) {
        _cleanup_free_ char *line = NULL;
        int r;

        r = logfmt_format_alloc(e, colour, &line);
        if (r < 0)
                return r;

        errno = 0;
        if (fputs(line, f) == EOF || fputc('\n', f) == EOF)
                return errno > 0 ? -errno : -EIO;

        return 0;
}

bool logfmt_want_colour(int fd) {
        const char *e;

        /* https://no-color.org: present and not empty. */
        e = getenv("NO_COLOR");
        if (e && *e)
                return false;

        e = getenv("TERM");
        if (e && streq(e, "dumb"))
                return false;

        return isatty(fd) == 1;
}

bool logfmt_level_shows(LogLevel threshold, LogKind kind) {
        switch (kind) {
        case LOGFMT_DEBUG:
                return threshold <= LOG_DEBUG;
        case LOGFMT_INFO:
                return threshold <= LOG_INFO;
        case LOGFMT_WARNING:
        case LOGFMT_TEST_ERROR:
                return threshold <= LOG_WARNING;
        default:
                /* log(), nested(), subtest(), serial lines and errors. */
                return true;
        }
}

static const char *const level_names[] = {
        [LOG_DEBUG] = "debug",
        [LOG_INFO] = "info",
        [LOG_WARNING] = "warning",
        [LOG_ERROR] = "error",
};

int logfmt_parse_level(const char *s, LogLevel *ret) {
        if (!s)
                return -EINVAL;

        for (LogLevel l = LOG_DEBUG; l <= LOG_ERROR; l++)
                if (strcasecmp(s, level_names[l]) == 0) {
                        *ret = l;
                        return 0;
                }

        if (strcasecmp(s, "warn") == 0) {
                *ret = LOG_WARNING;
                return 0;
        }

        return -EINVAL;
}

const char *logfmt_level_to_string(LogLevel level) {
        if (level < LOG_DEBUG || level > LOG_ERROR)
                return NULL;
        return level_names[level];
}
