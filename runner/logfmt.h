/* logfmt.h: formats one terminal log line (prefix, colour, "(finished: …)" timing) and
 * decides which lines a log level lets through. Pure: no state, no I/O but the FILE* given. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#ifndef MOONRIG_LOGLEVEL_DEFINED
#define MOONRIG_LOGLEVEL_DEFINED
/* <syslog.h> (pulled in by <systemd/sd-journal.h>) #defines LOG_DEBUG, LOG_INFO and
 * LOG_WARNING with other values; a file must not see both. */
#  ifdef LOG_DEBUG
#    error "logfmt.h: LOG_DEBUG is already a macro (<syslog.h> or <systemd/sd-journal.h> was included); keep those out of files that use LogLevel"
#  endif
/* Same order and values as the NixOS driver's LogLevel. */
typedef enum LogLevel {
        LOG_DEBUG = 1,
        LOG_INFO,
        LOG_WARNING,
        LOG_ERROR,
} LogLevel;
#endif

typedef enum LogKind {
        LOGFMT_PLAIN,          /* log(msg): "[m: ]msg", never filtered */
        LOGFMT_NESTED_BEGIN,   /* nested(msg) header: "[m: ]msg", bright green */
        LOGFMT_NESTED_END,     /* "[m: ](finished: msg, in 0.42 seconds)" */
        LOGFMT_SUBTEST,        /* subtest(name) header: "[m: ]subtest: name", bright green;
                                * its end is LOGFMT_NESTED_END with msg "subtest: name" */
        LOGFMT_DEBUG,          /* dim */
        LOGFMT_INFO,           /* uncoloured */
        LOGFMT_WARNING,        /* yellow */
        LOGFMT_ERROR,          /* red */
        LOGFMT_TEST_ERROR,     /* "[m: ]!!! msg", the "!!! " in red; filtered as a warning */
        LOGFMT_SERIAL,         /* "m # line", dim; machine required */
        _LOGFMT_KIND_MAX,
} LogKind;

typedef struct LogfmtEntry {
        LogKind kind;
        const char *machine;    /* NULL: no "<machine>: " prefix */
        const char *msg;        /* NULL reads as "" */
        uint64_t elapsed_usec;  /* LOGFMT_NESTED_END only */
} LogfmtEntry;

/* Like snprintf: writes at most size bytes including the NUL into buf (buf may be NULL when
 * size is 0) and returns the length of the whole line, without a newline; or -EINVAL. The
 * result is always one line: CSI and OSC escape sequences and \r are removed, other control
 * characters (C0, DEL, C1) become '?', invalid UTF-8 bytes become U+FFFD. A multi-line
 * message therefore comes out with '?' for each '\n': split it first. */
ssize_t logfmt_format(const LogfmtEntry *e, bool colour, char *buf, size_t size);

/* The same line in a malloc'd string. Returns 0, -EINVAL or -ENOMEM. */
int logfmt_format_alloc(const LogfmtEntry *e, bool colour, char **ret);

/* Writes the line and a '\n' to f. Returns 0 or a negative errno. */
int logfmt_write(FILE *f, const LogfmtEntry *e, bool colour);

/* False when NO_COLOR is set and non-empty, when TERM is "dumb", or when fd is no tty. */
bool logfmt_want_colour(int fd);

/* Whether a line of this kind is printed at this threshold: log, nested, subtest and serial
 * lines always are, and so are errors; debug, info, warning and test errors by level. */
bool logfmt_level_shows(LogLevel threshold, LogKind kind);

/* "debug", "info", "warning" (or "warn"), "error", any case. Returns 0 or -EINVAL. */
int logfmt_parse_level(const char *s, LogLevel *ret);
const char *logfmt_level_to_string(LogLevel level);
