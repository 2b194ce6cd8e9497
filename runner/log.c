/* log.c: the one test log. Every line goes to stderr (formatted by logfmt, filtered by level)
 * and, plain, to the JUnit collector when there is one. */
#define _GNU_SOURCE
#include "log.h"

#include <stdarg.h>

#include "junit.h"
#include "util.h"

static struct {
        LogLevel level;
        bool colour;
        bool serial_off;
        JUnit *junit;
} L = { .level = LOG_INFO };

void log_setup(LogLevel level, bool colour, JUnit *junit) {
        L.level = level;
        L.colour = colour;
        L.junit = junit;
}

LogLevel log_get_level(void) {
        return L.level;
}

static void emit_line(LogKind kind, const char *machine, const char *msg, uint64_t elapsed) {
        LogfmtEntry e = { .kind = kind, .machine = machine, .msg = msg, .elapsed_usec = elapsed };

        /* A failure report is shown whatever the level: it is why the run failed. */
        if (kind == LOGFMT_TEST_ERROR || logfmt_level_shows(L.level, kind)) {
                logfmt_write(stderr, &e, L.colour);
                fflush(stderr);
        }
        if (L.junit) {
                _cleanup_free_ char *plain = NULL;
                if (logfmt_format_alloc(&e, false, &plain) >= 0) {
                        if (kind == LOGFMT_TEST_ERROR || kind == LOGFMT_ERROR)
                                junit_error(L.junit, plain);
                        else
                                junit_line(L.junit, plain);
                }
        }
}

/* Terminal lines are one line each: a multi-line message becomes several lines. */
static void emit(LogKind kind, const char *machine, const char *msg, uint64_t elapsed) {
        const char *nl = strchr(msg, '\n');
        if (!nl) {
                emit_line(kind, machine, msg, elapsed);
                return;
        }
        for (const char *p = msg; p; ) {
                nl = strchr(p, '\n');
                _cleanup_free_ char *line = nl ? strndup(p, (size_t) (nl - p)) : strdup(p);
                if (line && (*line || nl))
                        emit_line(kind, machine, line, elapsed);
                p = nl ? nl + 1 : NULL;
        }
}

static void vemit(LogKind kind, const char *machine, const char *fmt, va_list ap) {
        _cleanup_free_ char *msg = NULL;
        if (vasprintf(&msg, fmt, ap) < 0)
                return;
        emit(kind, machine, msg, 0);
}

void log_message(const char *machine, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        vemit(LOGFMT_PLAIN, machine, fmt, ap);
        va_end(ap);
}

#define LEVEL_FN(name, kind)                            \
        void name(const char *fmt, ...) {               \
                va_list ap;                             \
                va_start(ap, fmt);                      \
                vemit(kind, NULL, fmt, ap);             \
                va_end(ap);                             \
        }
LEVEL_FN(log_debug, LOGFMT_DEBUG)
LEVEL_FN(log_info, LOGFMT_INFO)
LEVEL_FN(log_warning, LOGFMT_WARNING)
LEVEL_FN(log_error, LOGFMT_ERROR)
LEVEL_FN(log_test_error, LOGFMT_TEST_ERROR)

void log_serial(const char *machine, const char *line, size_t len) {
        if (L.serial_off)
                return;
        _cleanup_free_ char *s = strndup(line, len);
        if (s)
                emit(LOGFMT_SERIAL, machine, s, 0);
}

void log_serial_enable(bool on) {
        L.serial_off = !on;
}

void log_nested_begin(const char *machine, const char *msg) {
        emit(LOGFMT_NESTED_BEGIN, machine, msg, 0);
}

void log_nested_end(const char *machine, const char *msg, uint64_t start_usec) {
        emit(LOGFMT_NESTED_END, machine, msg, now_usec() - start_usec);
}

void log_subtest_begin(const char *name) {
        emit(LOGFMT_SUBTEST, NULL, name, 0);
        if (L.junit)
                junit_case_begin(L.junit, name, now_usec());
}

void log_subtest_end(const char *name, uint64_t start_usec) {
        _cleanup_free_ char *msg = NULL;
        if (asprintf(&msg, "subtest: %s", name) < 0)
                return;
        emit(LOGFMT_NESTED_END, NULL, msg, now_usec() - start_usec);
        if (L.junit)
                junit_case_end(L.junit, now_usec());
}
