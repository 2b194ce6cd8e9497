/* report.h: the short failure report printed when a test script fails: the script's own
 * stack frames with their source lines, then "<Kind>: <message>", as the NixOS driver does. */
#pragma once

#include <stddef.h>

typedef struct ReportFrame {
        const char *source;     /* lua_Debug.source: "@/path/test.lua", "=[C]", "=moonrig/…" */
        int line;               /* lua_Debug.currentline; <= 0: unknown */
        const char *function;   /* lua_Debug.name, or NULL */
        int linedefined;        /* lua_Debug.linedefined: with no name, 0 reads "main chunk",
                                 * N > 0 "function <path:N>" */
} ReportFrame;

/* Hands the whole text of the file at path to *ret (malloc'd, NUL-terminated). Returns 0 or
 * a negative errno; on failure the report just leaves out that file's source lines. */
typedef int (*report_read_source_t)(const char *path, char **ret, void *userdata);

typedef struct ReportInput {
        const char *kind;               /* "TestFailure", "Timeout", "MachineError", "ScriptError" */
        const char *message;            /* may span several lines */
        const ReportFrame *frames;      /* innermost first, as lua_getstack numbers levels */
        size_t n_frames;
        const char *script_path;        /* shown for the script's frames */
        const char *script_chunk;       /* chunk name the script was loaded under;
                                         * NULL: "@" script_path */
        report_read_source_t read_source; /* NULL: read the files themselves */
        void *userdata;
} ReportInput;

/* The report, one '\n'-terminated line after another, in a malloc'd string; NULL when out
 * of memory. Only frames of user code are shown (the script's chunk and any other "@file"
 * chunk; not C, not the embedded stdlib "=moonrig/…"), outermost first, consecutive repeats
 * of one file:line once. With no such frame, only the "<Kind>: <message>" lines remain.
 * Continuation lines of the message are indented to line up with its first line. The text
 * is not sanitised: print it through logfmt (LOGFMT_TEST_ERROR), line by line. */
char *report_format(const ReportInput *in);
