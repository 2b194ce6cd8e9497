/* log.h: the test log: terminal lines on stderr, JUnit collection, serial lines of nodes. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "logfmt.h"

struct JUnit;

void log_setup(LogLevel level, bool colour, struct JUnit *junit);
LogLevel log_get_level(void);

/* A plain line, prefixed "<machine>: " when machine is set; not filtered by level. */
void log_message(const char *machine, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warning(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* "!!! msg": a test failure, also recorded in the JUnit report. */
void log_test_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* A console or journal line of a node: "<machine> # <line>". */
void log_serial(const char *machine, const char *line, size_t len);
void log_serial_enable(bool on);

/* Timed blocks: "<msg>" ... "(finished: <msg>, in 0.42 seconds)". */
void log_nested_begin(const char *machine, const char *msg);
void log_nested_end(const char *machine, const char *msg, uint64_t start_usec);

/* A subtest is a nested block and a JUnit test case. */
void log_subtest_begin(const char *name);
void log_subtest_end(const char *name, uint64_t start_usec);
