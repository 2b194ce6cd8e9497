/* fuzz_config.c: fuzz target for config_parse_string(). Built with -DFUZZ_STANDALONE it is
 * also a plain program (gcc + ASan, no libFuzzer) that replays files and runs a small
 * seeded mutator over them, so the test suite can fuzz briefly on any compiler.
 *
 *   clang -fsanitize=fuzzer,address ... fuzz_config.c config.c   (libFuzzer supplies main)
 *   gcc -DFUZZ_STANDALONE -fsanitize=address,undefined ...        (our main below)
 *   fuzz_config [--random N] [--seed S] [--max-len BYTES] [--artifact-prefix P] FILE|DIR...
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include <jansson.h>
#include <signal.h>
#include <stdint.h>

#include "config.h"
#include "util.h"

/* Aborts with a reason, so a finding says which property broke, not only where. */
#define check(cond) do {                                                                \
                if (!(cond)) {                                                          \
                        fprintf(stderr, "fuzz_config: property failed: %s (line %d)\n", \
                                #cond, __LINE__);                                       \
                        abort();                                                        \
                }                                                                       \
        } while (0)

/* Rebuilds the JSON a Config stands for; parsing it again must give the same Config. */
static char *config_to_json(const Config *c) {
        json_auto_t *root = json_object(), *vms = json_object(), *containers = json_object(), *vlans = json_array();
        bool vms_first = c->n_machines > 0 && c->machines[0].kind == CONFIG_VM;

        check(root && vms && containers && vlans);
        for (size_t i = 0; i < c->n_machines; i++) {
                json_t *m = json_pack("{s:s, s:s}", "name", c->machines[i].name,
                                      "start_script", c->machines[i].start_script);

                check(m);
                check(json_object_set_new(c->machines[i].kind == CONFIG_VM ? vms : containers,
                                          c->machines[i].name, m) == 0);
        }
        for (size_t i = 0; i < c->n_vlans; i++)
                check(json_array_append_new(vlans, json_integer(c->vlans[i])) == 0);

        /* The kind that came first in the input comes first again, so the order is kept. */
        if (vms_first)
                check(json_object_set(root, "vms", vms) == 0);
        check(json_object_set(root, "containers", containers) == 0);
        if (!vms_first)
                check(json_object_set(root, "vms", vms) == 0);
        check(json_object_set(root, "vlans", vlans) == 0);
        check(json_object_set_new(root, "global_timeout", json_real(c->global_timeout)) == 0);
        check(json_object_set_new(root, "enable_ssh_backdoor", json_boolean(c->enable_ssh_backdoor)) == 0);
        if (c->test_script)
                check(json_object_set_new(root, "test_script", json_string(c->test_script)) == 0);
        return json_dumps(root, JSON_REAL_PRECISION(17) | JSON_COMPACT);
}

static void check_config(const Config *c) {
        check(c->global_timeout > 0 && c->global_timeout <= 1e9);
        check(!c->test_script || c->test_script[0]);
        for (size_t i = 0; i < c->n_machines; i++) {
                check(config_machine_name_is_valid(c->machines[i].name));
                check(c->machines[i].start_script && c->machines[i].start_script[0]);
                check(c->machines[i].kind == CONFIG_VM || c->machines[i].kind == CONFIG_CONTAINER);
                for (size_t k = 0; k < i; k++)
                        check(!streq(c->machines[i].name, c->machines[k].name));
        }
        for (size_t i = 0; i < c->n_vlans; i++) {
                check(c->vlans[i] <= CONFIG_VLAN_MAX);
                for (size_t k = 0; k < i; k++)
                        check(c->vlans[i] != c->vlans[k]);
        }
}

static void check_same(const Config *a, const Config *b) {
        check(a->n_machines == b->n_machines);
        for (size_t i = 0; i < a->n_machines; i++) {
                check(streq(a->machines[i].name, b->machines[i].name));
                check(streq(a->machines[i].start_script, b->machines[i].start_script));
                check(a->machines[i].kind == b->machines[i].kind);
        }
        check(a->n_vlans == b->n_vlans);
        for (size_t i = 0; i < a->n_vlans; i++)
                check(a->vlans[i] == b->vlans[i]);
        check(a->global_timeout == b->global_timeout);
        check(a->enable_ssh_backdoor == b->enable_ssh_backdoor);
        check(!a->test_script == !b->test_script);
        check(!a->test_script || streq(a->test_script, b->test_script));
}

/* Counts for the standalone summary. */
static size_t n_parsed, n_rejected;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        Config *c = NULL, *again = NULL;
        char *error = NULL, *json;
        int r;

        r = config_parse_string((const char *) data, size, "fuzz.json", &c, &error);
        if (r == -ENOMEM)
                return 0;
        if (r < 0) {
                check(r == -EINVAL);
                check(!c);
                check(error && startswith(error, "fuzz.json"));
                /* One printable line: names are quoted in ASCII, jansson's text escaped. */
                for (const char *p = error; *p; p++)
                        check(*p >= 0x20 && *p < 0x7f);
                free(error);
                n_rejected++;
                return 0;
        }
        check(c && !error);
        check_config(c);

        json = config_to_json(c);
        check(json);
        r = config_parse_string(json, strlen(json), "roundtrip.json", &again, &error);
        if (r != 0)
                fprintf(stderr, "fuzz_config: round trip rejected: %s\n%s\n", error, json);
        check(r == 0);
        check_same(c, again);

        free(json);
        config_free(again);
        config_free(c);
        n_parsed++;
        return 0;
}

#ifdef FUZZ_STANDALONE

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>

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

static void save_current(void) {
        char path[4096];
        uint64_t h = 1469598103934665603ULL;
        int fd;

        if (!current)
                return;
        for (size_t i = 0; i < current_size; i++)
                h = (h ^ current[i]) * 1099511628211ULL;
        snprintf(path, sizeof path, "%scrash-config-%016llx", artifact_prefix, (unsigned long long) h);
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd >= 0) {
                if (write(fd, current, current_size) == (ssize_t) current_size)
                        fprintf(stderr, "fuzz_config: input written to %s\n", path);
                close(fd);
        }
        current = NULL;
}

static void on_abort(int sig) {
        save_current();
        signal(sig, SIG_DFL);
        raise(sig);
}

static void run_one(const uint8_t *data, size_t size) {
        /* A copy of exactly size bytes, so that ASan sees any read past the end. */
        uint8_t *copy = malloc(size ?: 1);

        check(copy);
        memcpy(copy, data, size);
        current = copy;
        current_size = size;
        LLVMFuzzerTestOneInput(copy, size);
        current = NULL;
        free(copy);
}

static int load_file(const char *path, Input *ret) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        uint8_t *buf = NULL;
        size_t size = 0, alloc = 0;

        if (fd < 0)
                return -errno;
        for (;;) {
                ssize_t n;

                if (size == alloc) {
                        uint8_t *nb = realloc(buf, alloc = alloc ? alloc * 2 : 4096);

                        if (!nb) {
                                free(buf);
                                return -ENOMEM;
                        }
                        buf = nb;
                }
                n = read(fd, buf + size, alloc - size);
                if (n < 0) {
                        int e = -errno;

                        free(buf);
                        return e;
                }
                if (n == 0)
                        break;
                size += (size_t) n;
        }
        *ret = (Input) { .data = buf, .size = size };
        return 0;
}

static int add_seed(const char *path) {
        Input in;
        Input *n;
        int r;

        r = load_file(path, &in);
        if (r < 0) {
                fprintf(stderr, "fuzz_config: cannot read %s: %s\n", path, strerror(-r));
                return r;
        }
        n = realloc(seeds, (n_seeds + 1) * sizeof(Input));
        if (!n) {
                free(in.data);
                return -ENOMEM;
        }
        seeds = n;
        seeds[n_seeds++] = in;
        return 0;
}

static int cmp_str(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

/* Directories are read in name order, so a run is the same on every machine. */
static int add_path(const char *path) {
        _cleanup_closedir_ DIR *d = NULL;
        _cleanup_strv_free_ char **names = NULL;
        size_t n = 0;
        struct dirent *de;
        struct stat st;
        int r;

        if (stat(path, &st) < 0) {
                fprintf(stderr, "fuzz_config: cannot read %s: %m\n", path);
                return -errno;
        }
        if (!S_ISDIR(st.st_mode))
                return add_seed(path);

        d = opendir(path);
        if (!d)
                return -errno;
        while ((de = readdir(d))) {
                char **nn;

                if (de->d_name[0] == '.')
                        continue;
                nn = realloc(names, (n + 2) * sizeof(char *));
                if (!nn)
                        return -ENOMEM;
                names = nn;
                if (asprintf(&names[n], "%s/%s", path, de->d_name) < 0)
                        return -ENOMEM;
                names[++n] = NULL;
        }
        if (n > 0)
                qsort(names, n, sizeof(char *), cmp_str);
        for (size_t i = 0; i < n; i++) {
                if (stat(names[i], &st) < 0 || !S_ISREG(st.st_mode))
                        continue;
                r = add_seed(names[i]);
                if (r < 0)
                        return r;
        }
        return 0;
}

static uint64_t rng_state;

/* splitmix64: tiny, and the same sequence for the same --seed everywhere. */
static uint64_t rng(void) {
        uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);

        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        return z ^ (z >> 31);
}

static size_t below(size_t n) {
        return n ? (size_t) (rng() % n) : 0;
}

/* Pieces of the schema and of JSON, so that mutants reach past the tokenizer. */
static const char *const tokens[] = {
        "\"vms\"", "\"containers\"", "\"vlans\"", "\"global_timeout\"", "\"enable_ssh_backdoor\"",
        "\"test_script\"", "\"name\"", "\"start_script\"", "{", "}", "[", "]", ",", ":", "\"",
        "null", "true", "false", "0", "-1", "1.5", "4095", "4096", "1e999", "1e9", "2.0",
        "99999999999999999999", "\"\\u0000\"", "\"a b\"", "\"-x\"", "\"\\n\"", "\"\\u00e9\"",
        "{\"name\":\"n\",\"start_script\":\"/s\"}", "\"n\":{\"start_script\":\"/s\"}", "\\", "\xff", "\xc3\xa9",
        "\"\"", "{}", "[]", "1", "\"s\"", "\"client\"", "\"router\"", "\"web\"", "\"vms\":{\"n\":{}},", "\"containers\":{\"n\":{\"start_script\":\"/c\"}},",
};

static size_t mutate(uint8_t *buf, size_t size, size_t max) {
        /* Mostly one or two edits: more mutants stay valid JSON and reach the schema checks. */
        size_t n = 1 + below(2) + (below(4) == 0 ? below(6) : 0);

        for (size_t k = 0; k < n; k++) {
                size_t pos = below(size + 1), op = below(10), len;

                switch (op) {
                case 0: /* flip a bit */
                        if (size)
                                buf[below(size)] ^= (uint8_t) (1u << below(8));
                        break;
                case 1: { /* an interesting byte */
                        static const char set[] = "{}[]\",:0123456789-+.eE \n\t\\trufalsn";

                        if (size)
                                buf[below(size)] = rng() & 1 ? (uint8_t) set[below(sizeof set - 1)] : (uint8_t) rng();
                        break;
                }
                case 2: /* truncate */
                        size = pos;
                        break;
                case 3: { /* insert a token */
                        const char *t = tokens[below(ELEMENTSOF(tokens))];

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
                        size_t from = below(size + 1);

                        len = below(size - from + 1);
                        if (len > 64)
                                len = 64;
                        if (size + len > max)
                                break;
                        {
                                uint8_t chunk[64];

                                memcpy(chunk, buf + from, len);
                                memmove(buf + pos + len, buf + pos, size - pos);
                                memcpy(buf + pos, chunk, len);
                        }
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
                case 8: /* replace a value (after ':', ',' or '[', up to ',', '}' or ']') with a token */
                case 9: { /* replace the text of a string (a key or a value) */
                        const char *t = tokens[below(ELEMENTSOF(tokens))];
                        const uint8_t *start, *end;
                        size_t tl = strlen(t);

                        start = memchr(buf + pos, op == 8 ? ":,["[below(3)] : '"', size - pos);
                        if (!start)
                                break;
                        start++;
                        if (op == 8) {
                                end = start;
                                while (end < buf + size && *end != ',' && *end != '}' && *end != ']')
                                        end++;
                        } else {
                                end = memchr(start, '"', (size_t) (buf + size - start));
                                if (!end)
                                        break;
                                /* Keep the quotes: the token's own text goes between them. */
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
                case 7: { /* insert random bytes */
                        len = 1 + below(4);
                        if (size + len > max)
                                break;
                        memmove(buf + pos + len, buf + pos, size - pos);
                        for (size_t i = 0; i < len; i++)
                                buf[pos + i] = (uint8_t) rng();
                        size += len;
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

int main(int argc, char **argv) {
        unsigned long long runs = 0, seed = 1, max_len = 65536;
        const Input fallback = { .data = (uint8_t *) "{}", .size = 2 };
        uint8_t *buf;
        size_t replayed;
        int r;

#ifdef HAVE_ASAN
        /* ASan reports SIGSEGV itself, then calls save_current(); keep its handler. */
        __sanitizer_set_death_callback(save_current);
        signal(SIGABRT, on_abort);
#else
        signal(SIGABRT, on_abort);
        signal(SIGSEGV, on_abort);
#endif

        for (int i = 1; i < argc; i++) {
                unsigned long long *target = NULL;

                if (streq(argv[i], "--random"))
                        target = &runs;
                else if (streq(argv[i], "--seed"))
                        target = &seed;
                else if (streq(argv[i], "--max-len"))
                        target = &max_len;
                else if (streq(argv[i], "--artifact-prefix")) {
                        if (++i >= argc) {
                                fprintf(stderr, "fuzz_config: --artifact-prefix needs a value\n");
                                return 2;
                        }
                        artifact_prefix = argv[i];
                        continue;
                } else if (startswith(argv[i], "-")) {
                        fprintf(stderr, "usage: fuzz_config [--random N] [--seed S] [--max-len BYTES] [--artifact-prefix P] FILE|DIR...\n");
                        return 2;
                } else {
                        r = add_path(argv[i]);
                        if (r < 0)
                                return 2;
                        continue;
                }
                if (++i >= argc || parse_count(argv[i], target) < 0) {
                        fprintf(stderr, "fuzz_config: %s needs a non-negative number\n", argv[i - 1]);
                        return 2;
                }
        }
        if (max_len < 16 || max_len > (1ULL << 24)) {
                fprintf(stderr, "fuzz_config: --max-len must be from 16 to 16777216\n");
                return 2;
        }

        for (size_t i = 0; i < n_seeds; i++)
                run_one(seeds[i].data, seeds[i].size);
        replayed = n_seeds;
        fprintf(stderr, "fuzz_config: replayed %zu files: %zu parsed, %zu rejected\n", replayed, n_parsed, n_rejected);

        if (runs > 0) {
                if (n_seeds == 0) {
                        seeds = malloc(sizeof(Input));
                        check(seeds);
                        seeds[n_seeds++] = fallback;
                }
                buf = malloc(max_len);
                check(buf);
                n_parsed = n_rejected = 0;
                rng_state = seed;
                for (unsigned long long i = 0; i < runs; i++) {
                        const Input *s = &seeds[below(n_seeds)];
                        size_t size = s->size < max_len ? s->size : max_len;

                        memcpy(buf, s->data, size);
                        size = mutate(buf, size, max_len);
                        run_one(buf, size);
                }
                free(buf);
                fprintf(stderr, "fuzz_config: %llu mutants of %zu seeds (--seed %llu): %zu parsed, %zu rejected\n",
                        runs, n_seeds, seed, n_parsed, n_rejected);
        }

        for (size_t i = 0; i < n_seeds; i++)
                if (seeds[i].data != fallback.data)
                        free(seeds[i].data);
        free(seeds);
        return 0;
}

#endif
