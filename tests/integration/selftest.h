/* selftest.h: how the C selftests report, one line a check, as the rest of the suite does:
 *   ok - <what>                          check() that held
 *   not ok - <what>                      check() that did not
 *   ok - <what> # SKIP <id>: <why>       skip(): a check this host cannot run (<id> is a short,
 *                                        stable word that tests/expected-skips declares)
 *   # <text>                             note(): information, a measured figure, never a verdict
 *   1..0 # SKIP <id>: <why>              skip_all(): the whole program cannot run here (exit 77)
 * and selftest_finish() ends with `N passed, N failed, N skipped`; its status is non-zero when a
 * check failed or when no check ran at all (a selftest that checked nothing proved nothing).
 * Each program includes this once. */
#pragma once

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

static unsigned selftest_passed, selftest_failed, selftest_skipped;

static inline bool check(bool ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static inline bool check(bool ok, const char *fmt, ...) {
        va_list ap;

        fputs(ok ? "ok - " : "not ok - ", stdout);
        va_start(ap, fmt);
        vprintf(fmt, ap);
        va_end(ap);
        putchar('\n');
        fflush(stdout);
        if (ok)
                selftest_passed++;
        else
                selftest_failed++;
        return ok;
}

static inline void skip(const char *id, const char *why, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static inline void skip(const char *id, const char *why, const char *fmt, ...) {
        va_list ap;

        fputs("ok - ", stdout);
        va_start(ap, fmt);
        vprintf(fmt, ap);
        va_end(ap);
        printf(" # SKIP %s: %s\n", id, why);
        fflush(stdout);
        selftest_skipped++;
}

static inline void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static inline void note(const char *fmt, ...) {
        va_list ap;

        fputs("# ", stdout);
        va_start(ap, fmt);
        vprintf(fmt, ap);
        va_end(ap);
        putchar('\n');
        fflush(stdout);
}

/* Before any check: the whole program cannot run on this host. */
static inline __attribute__((noreturn)) void skip_all(const char *id, const char *why) {
        printf("1..0 # SKIP %s: %s\n", id, why);
        fflush(stdout);
        exit(77);
}

/* The last line of the program's output; its result is the exit status. */
static inline int selftest_finish(void) {
        if (selftest_passed + selftest_failed == 0)
                note("no check ran: that is a failure");
        printf("%u passed, %u failed, %u skipped\n", selftest_passed, selftest_failed, selftest_skipped);
        fflush(stdout);
        return selftest_failed > 0 || selftest_passed + selftest_failed == 0 ? 1 : 0;
}
