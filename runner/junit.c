/* junit.c: the JUnit XML collector and writer. Lines are kept raw and made valid XML only
 * when written, so what a guest's console sends can never break the document. */
#define _GNU_SOURCE
#include <inttypes.h>

#include "junit.h"
#include "util.h"

/* A growing NUL-terminated text. A failed allocation sets JUnit.oom, which junit_write reports. */
typedef struct Buf {
        char *data;
        size_t len;
        size_t cap;
} Buf;

typedef struct JUnitCase {
        char *name;
        Buf out;
        Buf err;
        char *failure;          /* first error logged while open; NULL: passed */
        uint64_t begin_usec;
        uint64_t child_usec;    /* full durations of the closed cases directly inside */
        uint64_t time_usec;     /* own time, once closed */
        bool open;
} JUnitCase;

struct JUnit {
        char *suite_name;
        Buf out, err;           /* the suite's system-out and system-err: everything */
        Buf main_out, main_err; /* what was logged while no case was open */
        char *main_failure;
        bool failed;

        JUnitCase *cases;       /* in the order they began */
        size_t n_cases, cap_cases;
        size_t *stack;          /* indices into cases, outermost first */
        size_t n_stack, cap_stack;

        uint64_t top_usec;      /* full durations of the closed outermost cases */
        uint64_t last_usec;     /* latest begin/end time seen */
        bool oom;
};

static uint64_t usec_sub(uint64_t a, uint64_t b) {
        return a > b ? a - b : 0;
}

static bool grow(void **p, size_t *cap, size_t need, size_t elem) {
        size_t c;
        void *n;

        if (need <= *cap)
                return true;
        c = *cap ? *cap : 8;
        while (c < need)
                c *= 2;
        n = reallocarray(*p, c, elem);
        if (!n)
                return false;
        *p = n;
        *cap = c;
        return true;
}

static bool buf_add_line(Buf *b, const char *s) {
        size_t n = strlen(s);

        if (!grow((void **) &b->data, &b->cap, b->len + n + 2, 1))
                return false;
        memcpy(b->data + b->len, s, n);
        b->len += n;
        b->data[b->len++] = '\n';
        b->data[b->len] = '\0';
        return true;
}

static void buf_done(Buf *b) {
        free(b->data);
        *b = (Buf) {};
}

JUnit *junit_new(const char *suite_name) {
        JUnit *j;

        j = calloc(1, sizeof *j);
        if (!j)
                return NULL;

        j->suite_name = strdup(suite_name ?: "moonrig");
        if (!j->suite_name) {
                free(j);
                return NULL;
        }
        return j;
}

void junit_free(JUnit *j) {
        if (!j)
                return;

        for (size_t i = 0; i < j->n_cases; i++) {
                free(j->cases[i].name);
                free(j->cases[i].failure);
                buf_done(&j->cases[i].out);
                buf_done(&j->cases[i].err);
        }
        free(j->cases);
        free(j->stack);
        buf_done(&j->out);
        buf_done(&j->err);
        buf_done(&j->main_out);
        buf_done(&j->main_err);
        free(j->main_failure);
        free(j->suite_name);
        free(j);
}

void junit_line(JUnit *j, const char *line) {
        if (!j || !line)
                return;

        if (!buf_add_line(&j->out, line))
                j->oom = true;
        if (j->n_stack == 0 && !buf_add_line(&j->main_out, line))
                j->oom = true;
        for (size_t i = 0; i < j->n_stack; i++)
                if (!buf_add_line(&j->cases[j->stack[i]].out, line))
                        j->oom = true;
}

static void mark_failed(JUnit *j, char **failure, Buf *err, const char *msg) {
        if (!*failure) {
                *failure = strdup(msg);
                if (!*failure)
                        j->oom = true;
        }
        if (!buf_add_line(err, msg))
                j->oom = true;
}

void junit_error(JUnit *j, const char *msg) {
        if (!j)
                return;
        msg = msg ?: "";

        j->failed = true;
        if (!buf_add_line(&j->err, msg))
                j->oom = true;

        if (j->n_stack == 0)
                mark_failed(j, &j->main_failure, &j->main_err, msg);
        for (size_t i = 0; i < j->n_stack; i++) {
                JUnitCase *c = &j->cases[j->stack[i]];

                mark_failed(j, &c->failure, &c->err, msg);
        }
}

int junit_case_begin(JUnit *j, const char *name, uint64_t now_usec) {
        _cleanup_free_ char *n = NULL;

        if (!j || !name)
                return -EINVAL;

        n = strdup(name);
        if (!n)
                return -ENOMEM;
        if (!grow((void **) &j->cases, &j->cap_cases, j->n_cases + 1, sizeof *j->cases) ||
            !grow((void **) &j->stack, &j->cap_stack, j->n_stack + 1, sizeof *j->stack))
                return -ENOMEM;

        j->cases[j->n_cases] = (JUnitCase) {
                .name = TAKE_PTR(n),
                .begin_usec = now_usec,
                .open = true,
        };
        j->stack[j->n_stack++] = j->n_cases++;
        if (now_usec > j->last_usec)
                j->last_usec = now_usec;
        return 0;
}

void junit_case_end(JUnit *j, uint64_t now_usec) {
        JUnitCase *c;
        uint64_t duration;

        if (!j || j->n_stack == 0)
                return;

        c = &j->cases[j->stack[--j->n_stack]];
        duration = usec_sub(now_usec, c->begin_usec);
        c->time_usec = usec_sub(duration, c->child_usec);
        c->open = false;

        if (j->n_stack > 0)
                j->cases[j->stack[j->n_stack - 1]].child_usec += duration;
        else
                j->top_usec += duration;

        if (now_usec > j->last_usec)
                j->last_usec = now_usec;
}

/* Own time of the case at stack position k, still open: up to the latest time seen, less
 * its closed children and the open child inside it. */
static uint64_t open_case_time(const JUnit *j, size_t k) {
        const JUnitCase *c = &j->cases[j->stack[k]];
        uint64_t t = usec_sub(usec_sub(j->last_usec, c->begin_usec), c->child_usec);

        if (k + 1 < j->n_stack)
                t = usec_sub(t, usec_sub(j->last_usec, j->cases[j->stack[k + 1]].begin_usec));
        return t;
}

static uint64_t case_time(const JUnit *j, size_t idx) {
        if (!j->cases[idx].open)
                return j->cases[idx].time_usec;
        for (size_t k = 0; k < j->n_stack; k++)
                if (j->stack[k] == idx)
                        return open_case_time(j, k);
        return 0;
}

/* Same rules as in logfmt.c; kept apart so that either module stands alone. */
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

/* Writes s as XML 1.0 character data or attribute value: markup characters escaped, the
 * characters XML 1.0 forbids (C0 controls but tab, LF and CR; U+FFFE, U+FFFF) removed,
 * ill-formed UTF-8 replaced byte by byte with U+FFFD. In attributes, tab, LF and CR become
 * references, as a parser would otherwise normalise them to spaces; CR does everywhere. */
static void xml_put(FILE *f, const char *text, bool attr) {
        const unsigned char *p = (const unsigned char *) (text ?: "");

        while (*p) {
                const unsigned char *start = p;
                size_t n;

                while (*p >= 0x20 && *p < 0x80 && !strchr("&<>\"'", *p))
                        p++;
                if (p > start) {
                        fwrite(start, 1, p - start, f);
                        continue;
                }

                switch (*p) {
                case '&':  fputs("&amp;", f);  p++; continue;
                case '<':  fputs("&lt;", f);   p++; continue;
                case '>':  fputs("&gt;", f);   p++; continue;
                case '"':  fputs("&quot;", f); p++; continue;
                case '\'': fputs("&apos;", f); p++; continue;
                case '\r': fputs("&#13;", f);  p++; continue;
                case '\t': fputs(attr ? "&#9;" : "\t", f);  p++; continue;
                case '\n': fputs(attr ? "&#10;" : "\n", f); p++; continue;
                }
                if (*p < 0x20) {
                        p++;
                        continue;
                }

                n = utf8_valid_len(p);
                if (n == 0) {
                        fputs("\xef\xbf\xbd", f);
                        p++;
                } else if (n == 3 && p[0] == 0xef && p[1] == 0xbf && p[2] >= 0xbe) {
                        fputs("\xef\xbf\xbd", f);
                        p += 3;
                } else {
                        fwrite(p, 1, n, f);
                        p += n;
                }
        }
}

static void put_usec(FILE *f, uint64_t usec) {
        uint64_t ms = usec / 1000 + (usec % 1000 >= 500);

        fprintf(f, "%" PRIu64 ".%03u", ms / 1000, (unsigned) (ms % 1000));
}

static void put_element(FILE *f, const char *indent, const char *tag, const Buf *b) {
        if (b->len == 0)
                return;
        fprintf(f, "%s<%s>", indent, tag);
        xml_put(f, b->data, false);
        fprintf(f, "</%s>\n", tag);
}

static void put_case(FILE *f, const JUnit *j, const char *name, uint64_t usec,
                     const char *failure, const Buf *out, const Buf *err) {
        fputs("    <testcase name=\"", f);
        xml_put(f, name, true);
        fputs("\" classname=\"", f);
        xml_put(f, j->suite_name, true);
        fputs("\" time=\"", f);
        put_usec(f, usec);
        fputs("\">\n", f);

        if (failure) {
                fputs("      <failure message=\"", f);
                xml_put(f, failure, true);
                fputs("\">", f);
                xml_put(f, out->data, false);
                fputs("</failure>\n", f);
        }
        put_element(f, "      ", "system-out", out);
        put_element(f, "      ", "system-err", err);
        fputs("    </testcase>\n", f);
}

int junit_write(const JUnit *j, FILE *f, uint64_t total_usec) {
        size_t tests = j->n_cases, failures = 0;
        bool with_main = j->n_cases == 0 || j->main_failure;
        uint64_t main_usec;

        if (j->oom)
                return -ENOMEM;

        for (size_t i = 0; i < j->n_cases; i++)
                if (j->cases[i].failure)
                        failures++;
        if (with_main) {
                tests++;
                if (j->main_failure)
                        failures++;
        }

        main_usec = usec_sub(total_usec, j->top_usec);
        if (j->n_stack > 0)
                main_usec = usec_sub(main_usec, usec_sub(j->last_usec, j->cases[j->stack[0]].begin_usec));

        fputs("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n", f);
        fprintf(f, "<testsuites tests=\"%zu\" failures=\"%zu\" errors=\"0\" skipped=\"0\" time=\"", tests, failures);
        put_usec(f, total_usec);
        fputs("\">\n  <testsuite name=\"", f);
        xml_put(f, j->suite_name, true);
        fprintf(f, "\" tests=\"%zu\" failures=\"%zu\" errors=\"0\" skipped=\"0\" time=\"", tests, failures);
        put_usec(f, total_usec);
        fputs("\">\n", f);

        if (with_main)
                put_case(f, j, "main", main_usec, j->main_failure, &j->main_out, &j->main_err);
        for (size_t i = 0; i < j->n_cases; i++) {
                const JUnitCase *c = &j->cases[i];

                put_case(f, j, c->name, case_time(j, i), c->failure, &c->out, &c->err);
        }

        put_element(f, "    ", "system-out", &j->out);
        put_element(f, "    ", "system-err", &j->err);
        fputs("  </testsuite>\n</testsuites>\n", f);

        if (fflush(f) != 0)
                return errno > 0 ? -errno : -EIO;
        if (ferror(f))
                return -EIO;
        return 0;
}
