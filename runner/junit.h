/* junit.h: collects log lines and errors per subtest and writes them as JUnit XML
 * (one <testsuite>, a <testcase> per subtest), as the NixOS driver's --junit-xml does. */
#pragma once

#include <stdint.h>
#include <stdio.h>

typedef struct JUnit JUnit;

/* suite_name NULL: "moonrig". Returns NULL when out of memory. */
JUnit *junit_new(const char *suite_name);
void junit_free(JUnit *j);

/* A log line: goes to the suite's system-out and to every open case. */
void junit_line(JUnit *j, const char *line);

/* An error: goes to the suite's system-err and marks the suite and every open case failed.
 * A case's <failure message="…"> is the first error logged while it was open. An error
 * logged while no case is open also fails the "main" case (see junit_write). */
void junit_error(JUnit *j, const char *msg);

/* Opens a case inside the innermost open one. Returns 0 or -ENOMEM. */
int junit_case_begin(JUnit *j, const char *name, uint64_t now_usec);

/* Closes the innermost open case; its time excludes the cases nested in it. No-op when none
 * is open. */
void junit_case_end(JUnit *j, uint64_t now_usec);

/* Writes the document. A case "main" holds what happened outside any case (its lines, its
 * errors, total_usec minus the time of the outermost cases); it is written when there are no
 * cases at all, or when an error was logged outside every case, so that the failure counts.
 * A case still open is timed up to the latest begin/end seen. Returns 0 or a negative errno. */
int junit_write(const JUnit *j, FILE *f, uint64_t total_usec);
