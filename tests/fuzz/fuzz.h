/* fuzz.h: what every fuzz target shares. A target defines the standard libFuzzer entry
 * LLVMFuzzerTestOneInput() and a FuzzTarget naming it; the same source then builds two ways:
 *
 *   clang -fsanitize=fuzzer,address,undefined fuzz_X.c <parser>.c ...   (libFuzzer supplies main)
 *   cc [-fsanitize=address,undefined] fuzz_X.c driver.c <parser>.c ...   (driver.c supplies main)
 *
 * driver.c replays files and runs a small seeded mutator (see its usage), so `make check` fuzzes
 * briefly with any compiler; tests/fuzz/run-libfuzzer.sh runs the coverage-guided build. */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct FuzzTarget {
        const char *name;               /* "config": the program is fuzz_config */
        /* Pieces of the input language, for the standalone mutator to insert. */
        const char *const *tokens;
        size_t n_tokens;
        /* Optional: one line on what the inputs reached, printed at the end of a standalone run. */
        void (*summary)(void);
} FuzzTarget;

extern const FuzzTarget fuzz_target;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A broken property aborts with its text, so a finding says what broke, not only where. */
#define fuzz_check(cond) do {                                                           \
                if (!(cond)) {                                                          \
                        fprintf(stderr, "fuzz_%s: property failed: %s (%s:%d)\n",       \
                                fuzz_target.name, #cond, __FILE__, __LINE__);           \
                        abort();                                                        \
                }                                                                       \
        } while (0)

/* A copy of exactly size bytes, NUL-terminated one past the end only when terminate is set,
 * so that ASan sees a read past what a parser was given. */
static inline char *fuzz_dup(const void *data, size_t size, int terminate) {
        char *p = calloc(size + (terminate ? 1 : 0) ?: 1, 1);

        fuzz_check(p);
        if (size > 0)
                memcpy(p, data, size);
        if (terminate)
                p[size] = '\0';
        return p;
}
