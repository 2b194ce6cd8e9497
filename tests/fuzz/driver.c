/* driver.c: the standalone main of every fuzz target (see fuzz.h). It replays the files and
 * directories given, then runs --runs mutants of them made by a small seeded mutator, each
 * through the target's LLVMFuzzerTestOneInput(). The seed is --seed, else $FUZZ_SEED, else
 * one drawn from the clock and the pid, and printed: every run explores new inputs, and any
 * run can be repeated. A crash or a broken property leaves the input behind as
 * <artifact-prefix>crash-<target>-<hash> and kills the program with the signal.
 *
 *   fuzz_X [--runs N] [--seed S] [--max-len BYTES] [--artifact-prefix P] [FILE|DIR...]
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fuzz.h"

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HAVE_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define HAVE_ASAN 1
#endif
#ifdef HAVE_ASAN
#include <sanitizer/common_interface_defs.h>
#endif

#define ELEMENTS(a) (sizeof(a) / sizeof((a)[0]))

typedef struct Input {
        uint8_t *data;
        size_t size;
} Input;

static Input *seeds;
static size_t n_seeds;

/* The input being run, kept so that a crash can leave it behind as a file. */
static const uint8_t *current;
static size_t current_size;
static const char *artifact_prefix = "./";

static uint64_t fnv1a(const uint8_t *d, size_t n) {
        uint64_t h = 1469598103934665603ULL;

        for (size_t i = 0; i < n; i++)
                h = (h ^ d[i]) * 1099511628211ULL;
        return h;
}

static void save_current(void) {
        char path[4096];
        int fd;

        if (!current)
                return;
        snprintf(path, sizeof path, "%scrash-%s-%016llx", artifact_prefix, fuzz_target.name,
                 (unsigned long long) fnv1a(current, current_size));
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd >= 0) {
                if (write(fd, current, current_size) == (ssize_t) current_size)
                        fprintf(stderr, "fuzz_%s: input written to %s\n", fuzz_target.name, path);
                close(fd);
        }
        current = NULL;
}

static void on_fatal(int sig) {
        save_current();
        signal(sig, SIG_DFL);
        raise(sig);
}

static void run_one(const uint8_t *data, size_t size) {
        uint8_t *copy = (uint8_t *) fuzz_dup(data, size, 0);

        current = copy;
        current_size = size;
        LLVMFuzzerTestOneInput(copy, size);
        current = NULL;
        free(copy);
}

static int add_file(const char *path) {
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        uint8_t *buf = NULL;
        size_t size = 0, alloc = 0;
        Input *n;

        if (fd < 0)
                goto fail;
        for (;;) {
                ssize_t k;

                if (size == alloc) {
                        uint8_t *nb = realloc(buf, alloc = alloc ? alloc * 2 : 4096);

                        if (!nb)
                                goto fail;
                        buf = nb;
                }
                k = read(fd, buf + size, alloc - size);
                if (k < 0)
                        goto fail;
                if (k == 0)
                        break;
                size += (size_t) k;
        }
        close(fd);
        n = realloc(seeds, (n_seeds + 1) * sizeof(Input));
        fuzz_check(n);
        seeds = n;
        seeds[n_seeds++] = (Input) { .data = buf, .size = size };
        return 0;
fail:
        fprintf(stderr, "fuzz_%s: cannot read %s: %m\n", fuzz_target.name, path);
        if (fd >= 0)
                close(fd);
        free(buf);
        return -1;
}

static int cmp_str(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

/* Directories are read in name order, so a run is the same on every machine. */
static int add_path(const char *path) {
        char **names = NULL;
        size_t n = 0;
        struct dirent *de;
        struct stat st;
        DIR *d;
        int r = 0;

        if (stat(path, &st) < 0) {
                fprintf(stderr, "fuzz_%s: cannot read %s: %m\n", fuzz_target.name, path);
                return -1;
        }
        if (!S_ISDIR(st.st_mode))
                return add_file(path);
        d = opendir(path);
        if (!d)
                return -1;
        while ((de = readdir(d))) {
                if (de->d_name[0] == '.')
                        continue;
                names = realloc(names, (n + 1) * sizeof(char *));
                fuzz_check(names);
                fuzz_check(asprintf(&names[n++], "%s/%s", path, de->d_name) >= 0);
        }
        closedir(d);
        if (n > 0)
                qsort(names, n, sizeof(char *), cmp_str);
        for (size_t i = 0; i < n; i++) {
                if (r == 0 && stat(names[i], &st) == 0 && S_ISREG(st.st_mode))
                        r = add_file(names[i]);
                free(names[i]);
        }
        free(names);
        return r;
}

static uint64_t rng_state;

/* splitmix64: tiny, and the same sequence for the same seed everywhere. */
static uint64_t rng(void) {
        uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);

        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        return z ^ (z >> 31);
}

static size_t below(size_t n) {
        return n ? (size_t) (rng() % n) : 0;
}

static const char *token(void) {
        static const char *const generic[] = { "\n", "\r\n", " ", "\"", "\\", "\xff", "\xc3\xa9", "0", "-1" };

        if (fuzz_target.n_tokens > 0 && below(4) != 0)
                return fuzz_target.tokens[below(fuzz_target.n_tokens)];
        return generic[below(ELEMENTS(generic))];
}

/* Mostly one or two edits, so that most mutants stay close to a seed and pass its first checks. */
static size_t mutate(uint8_t *buf, size_t size, size_t max) {
        size_t n = 1 + below(2) + (below(4) == 0 ? below(6) : 0);

        for (size_t k = 0; k < n; k++) {
                size_t pos = below(size + 1), op = below(10), len;

                switch (op) {
                case 0: /* flip a bit */
                        if (size)
                                buf[below(size)] ^= (uint8_t) (1u << below(8));
                        break;
                case 1: { /* an interesting byte */
                        static const char set[] = "{}[]\",:0123456789-+.=/ \n\r\t\\'@$AZaz";

                        if (size)
                                buf[below(size)] = rng() & 1 ? (uint8_t) set[below(sizeof set - 1)] : (uint8_t) rng();
                        break;
                }
                case 2: /* truncate */
                        size = pos;
                        break;
                case 3: { /* insert a token */
                        const char *t = token();

                        len = strlen(t);
                        if (size + len > max)
                                break;
                        memmove(buf + pos + len, buf + pos, size - pos);
                        memcpy(buf + pos, t, len);
                        size += len;
                        break;
                }
                case 4: /* delete a range */
                        len = below(size - pos + 1);
                        memmove(buf + pos, buf + pos + len, size - pos - len);
                        size -= len;
                        break;
                case 5: { /* duplicate a range of itself somewhere else */
                        uint8_t chunk[64];
                        size_t from = below(size + 1);

                        len = below(size - from + 1);
                        if (len > sizeof chunk)
                                len = sizeof chunk;
                        if (size + len > max)
                                break;
                        memcpy(chunk, buf + from, len);
                        memmove(buf + pos + len, buf + pos, size - pos);
                        memcpy(buf + pos, chunk, len);
                        size += len;
                        break;
                }
                case 6: { /* splice in the tail of another seed */
                        const Input *o = &seeds[below(n_seeds)];
                        size_t from = below(o->size + 1);

                        len = o->size - from;
                        if (pos + len > max)
                                len = max - pos;
                        memcpy(buf + pos, o->data + from, len);
                        size = pos + len;
                        break;
                }
                case 7: /* insert random bytes, NUL included */
                        len = 1 + below(4);
                        if (size + len > max)
                                break;
                        memmove(buf + pos + len, buf + pos, size - pos);
                        for (size_t i = 0; i < len; i++)
                                buf[pos + i] = rng() & 3 ? (uint8_t) rng() : 0;
                        size += len;
                        break;
                case 8:   /* replace a value (after ':', ',', '[' or '=', up to ',', '}', ']' or a newline) */
                case 9: { /* replace the text of a string (between quotes) */
                        const char *t = token();
                        const uint8_t *start, *end;
                        size_t tl = strlen(t);

                        start = memchr(buf + pos, op == 8 ? ":,[="[below(4)] : '"', size - pos);
                        if (!start)
                                break;
                        start++;
                        if (op == 8) {
                                for (end = start; end < buf + size && !strchr(",}]\n", *end); end++)
                                        ;
                        } else {
                                end = memchr(start, '"', (size_t) (buf + size - start));
                                if (!end)
                                        break;
                                if (tl >= 2 && t[0] == '"' && t[tl - 1] == '"') {
                                        t++;
                                        tl -= 2;
                                }
                        }
                        len = (size_t) (end - start);
                        if (size - len + tl > max)
                                break;
                        memmove((uint8_t *) start + tl, end, (size_t) (buf + size - end));
                        memcpy((uint8_t *) start, t, tl);
                        size = size - len + tl;
                        break;
                }
                }
        }
        return size;
}

static int parse_count(const char *s, unsigned long long *ret) {
        char *end;

        errno = 0;
        *ret = strtoull(s, &end, 0);
        return errno || !s[0] || *end || s[0] == '-' ? -EINVAL : 0;
}

static unsigned long long default_seed(void) {
        const char *e = getenv("FUZZ_SEED");
        unsigned long long seed;
        struct timespec ts;

        if (e && *e) {
                if (parse_count(e, &seed) == 0)
                        return seed;
                fprintf(stderr, "fuzz_%s: FUZZ_SEED=%s is no number, drawing one\n", fuzz_target.name, e);
        }
        clock_gettime(CLOCK_REALTIME, &ts);
        /* Short enough to type back. */
        return ((unsigned long long) ts.tv_sec * 1000003ULL ^ (unsigned long long) ts.tv_nsec ^
                (unsigned long long) getpid() << 16) % 1000000000ULL;
}

int main(int argc, char **argv) {
        unsigned long long runs = 0, seed = 0, max_len = 65536;
        bool seed_set = false;
        uint8_t *buf;

#ifdef HAVE_ASAN
        /* ASan reports SIGSEGV itself, then calls save_current(); keep its handler. */
        __sanitizer_set_death_callback(save_current);
        signal(SIGABRT, on_fatal);
#else
        signal(SIGABRT, on_fatal);
        signal(SIGSEGV, on_fatal);
        signal(SIGBUS, on_fatal);
        signal(SIGFPE, on_fatal);
#endif

        for (int i = 1; i < argc; i++) {
                unsigned long long *target = NULL;

                if (!strcmp(argv[i], "--runs") || !strcmp(argv[i], "--random"))
                        target = &runs;
                else if (!strcmp(argv[i], "--seed")) {
                        target = &seed;
                        seed_set = true;
                } else if (!strcmp(argv[i], "--max-len"))
                        target = &max_len;
                else if (!strcmp(argv[i], "--artifact-prefix")) {
                        if (++i >= argc) {
                                fprintf(stderr, "fuzz_%s: --artifact-prefix needs a value\n", fuzz_target.name);
                                return 2;
                        }
                        artifact_prefix = argv[i];
                        continue;
                } else if (argv[i][0] == '-') {
                        fprintf(stderr, "usage: fuzz_%s [--runs N] [--seed S] [--max-len BYTES] "
                                        "[--artifact-prefix P] [FILE|DIR...]\n", fuzz_target.name);
                        return 2;
                } else {
                        if (add_path(argv[i]) < 0)
                                return 2;
                        continue;
                }
                if (++i >= argc || parse_count(argv[i], target) < 0) {
                        fprintf(stderr, "fuzz_%s: %s needs a non-negative number\n", fuzz_target.name, argv[i - 1]);
                        return 2;
                }
        }
        if (max_len < 16 || max_len > (1ULL << 24)) {
                fprintf(stderr, "fuzz_%s: --max-len must be from 16 to 16777216\n", fuzz_target.name);
                return 2;
        }

        for (size_t i = 0; i < n_seeds; i++)
                run_one(seeds[i].data, seeds[i].size);
        fprintf(stderr, "fuzz_%s: replayed %zu files\n", fuzz_target.name, n_seeds);

        if (runs > 0) {
                if (!seed_set)
                        seed = default_seed();
                fprintf(stderr, "fuzz_%s: seed %llu (FUZZ_SEED=%llu to reproduce)\n", fuzz_target.name, seed, seed);
                if (n_seeds == 0) {
                        seeds = calloc(1, sizeof(Input));
                        fuzz_check(seeds);
                        seeds[n_seeds++] = (Input) { .data = calloc(1, 1), .size = 0 };
                }
                buf = malloc(max_len);
                fuzz_check(buf);
                rng_state = seed;
                for (unsigned long long i = 0; i < runs; i++) {
                        const Input *s = &seeds[below(n_seeds)];
                        size_t size = s->size < max_len ? s->size : max_len;

                        memcpy(buf, s->data, size);
                        size = mutate(buf, size, max_len);
                        run_one(buf, size);
                }
                free(buf);
                fprintf(stderr, "fuzz_%s: %llu mutants of %zu seeds, seed %llu\n", fuzz_target.name, runs, n_seeds,
                        seed);
        }
        if (fuzz_target.summary)
                fuzz_target.summary();

        for (size_t i = 0; i < n_seeds; i++)
                free(seeds[i].data);
        free(seeds);
        return 0;
}
