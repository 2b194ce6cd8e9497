/* fuzz_journal.c: fuzz target for journal.c's formatter, which turns a container's journal entry
 * (fields a program in the container chose) into "IDENT[PID]: line" lines. The input is a byte
 * whose low five bits say which fields are present, then SYSLOG_IDENTIFIER, _COMM, _PID and
 * SYSLOG_PID separated by NUL bytes, then MESSAGE (the rest, NUL bytes included). Properties:
 * every line starts with the prefix journalctl would print; a printable message comes back whole
 * (split at its newlines, trailing ones dropped), any other as "[N bytes blob data]"; the printable
 * test agrees with RFC 3629's table of well-formed UTF-8. Built as fuzz.h says. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include "fuzz.h"
#include "journal.h"
#include "util.h"

typedef struct Field {
        const char *p;
        size_t len;
} Field;

typedef struct Collect {
        char *text;     /* the lines' messages joined with "\n" */
        size_t len;
        const char *prefix;
        size_t prefix_len;
        int lines;
} Collect;

static size_t n_printable, n_blob, n_lines;

static void on_line(const char *line, size_t len, void *userdata) {
        Collect *c = userdata;

        fuzz_check(line[len] == '\0');
        fuzz_check(len >= c->prefix_len && memcmp(line, c->prefix, c->prefix_len) == 0);
        fuzz_check(!memchr(line + c->prefix_len, '\n', len - c->prefix_len));
        c->text = realloc(c->text, c->len + len + 2);
        fuzz_check(c->text);
        if (c->lines > 0)
                c->text[c->len++] = '\n';
        memcpy(c->text + c->len, line + c->prefix_len, len - c->prefix_len);
        c->len += len - c->prefix_len;
        c->lines++;
        n_lines++;
}

/* RFC 3629 section 4, as ranges of each byte; plus journalctl's rule on control characters. */
static bool model_printable(const uint8_t *s, size_t len) {
        for (size_t i = 0; i < len;) {
                uint8_t c = s[i];
                uint8_t lo = 0x80, hi = 0xbf;
                size_t n;
                uint32_t v;

                if (c < 0x80) {
                        if (c < 0x20 && c != '\t' && c != '\n')
                                return false;
                        if (c == 0x7f)
                                return false;
                        i++;
                        continue;
                }
                if (c >= 0xc2 && c <= 0xdf)
                        n = 1;
                else if (c >= 0xe0 && c <= 0xef) {
                        n = 2;
                        if (c == 0xe0)
                                lo = 0xa0;
                        if (c == 0xed)
                                hi = 0x9f;
                } else if (c >= 0xf0 && c <= 0xf4) {
                        n = 3;
                        if (c == 0xf0)
                                lo = 0x90;
                        if (c == 0xf4)
                                hi = 0x8f;
                } else
                        return false;
                if (len - i <= n)
                        return false;
                if (s[i + 1] < lo || s[i + 1] > hi)
                        return false;
                for (size_t k = 2; k <= n; k++)
                        if (s[i + k] < 0x80 || s[i + k] > 0xbf)
                                return false;
                /* C1 controls are U+0080..U+009F: 0xc2 0x80..0x9f. */
                v = c == 0xc2 ? s[i + 1] : 0xffff;
                if (v >= 0x80 && v <= 0x9f)
                        return false;
                i += n + 1;
        }
        return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        Field f[5] = {};
        char *copy, *prefix = NULL, blob[64];
        const char *ident, *pid, *want;
        size_t ident_len, pid_len, want_len;
        Collect c = {};
        unsigned mask;
        size_t at = 1;
        int n;

        if (size == 0)
                return 0;
        mask = data[0];
        copy = fuzz_dup(data, size, 0);
        for (int i = 0; i < 5; i++) {
                const uint8_t *end = i < 4 && at < size ? memchr(data + at, '\0', size - at) : NULL;
                size_t len = i == 4 ? size - at : end ? (size_t) (end - data) - at : size - at;

                if (mask & (1u << i))
                        f[i] = (Field) { copy + at, len };
                at += len + (end ? 1 : 0);
                if (at > size)
                        at = size;
        }

        /* The prefix, from the fields as the header orders them (printf's %.*s stops at a NUL). */
        ident = f[0].p && f[0].len ? f[0].p : f[1].p && f[1].len ? f[1].p : "unknown";
        ident_len = ident == f[0].p ? f[0].len : ident == f[1].p ? f[1].len : strlen(ident);
        pid = f[2].p && f[2].len ? f[2].p : f[3].p;
        pid_len = pid == f[2].p ? f[2].len : f[3].len;
        if (pid && pid_len)
                fuzz_check(asprintf(&prefix, "%.*s[%.*s]: ", (int) ident_len, ident, (int) pid_len, pid) >= 0);
        else
                fuzz_check(asprintf(&prefix, "%.*s: ", (int) ident_len, ident) >= 0);
        c.prefix = prefix;
        c.prefix_len = strlen(prefix);

        fuzz_check(journal_message_printable(f[4].p ?: "", f[4].len) == model_printable((const uint8_t *) (f[4].p ?: ""), f[4].len));
        n = journal_format(f[0].p, f[0].len, f[1].p, f[1].len, f[2].p, f[2].len, f[3].p, f[3].len, f[4].p,
                           f[4].len, on_line, &c);
        if (n == -ENOMEM)
                goto out;
        fuzz_check(n >= 1 && n == c.lines);
        if (model_printable((const uint8_t *) (f[4].p ?: ""), f[4].len)) {
                want = f[4].p ?: "";
                want_len = f[4].len;
                n_printable++;
        } else {
                snprintf(blob, sizeof blob, "[%zu bytes blob data]", f[4].len);
                want = blob;
                want_len = strlen(blob);
                n_blob++;
        }
        while (want_len > 0 && want[want_len - 1] == '\n')
                want_len--;
        fuzz_check(c.len == want_len && (want_len == 0 || memcmp(c.text, want, want_len) == 0));
out:
        free(c.text);
        free(prefix);
        free(copy);
        return 0;
}

static const char *const tokens[] = {
        "\n", "\t", "\r", "\x1b[0m", "\x7f", "\xc2\x80", "\xc2\x9f", "\xc2\xa0", "\xc3\xa9", "\xe0\xa0\x80",
        "\xed\x9f\xbf", "\xed\xa0\x80", "\xef\xbf\xbd", "\xf0\x90\x80\x80", "\xf4\x8f\xbf\xbf", "\xf4\x90\x80\x80",
        "\xc0\xaf", "\xe0\x80\xaf", "\xff", "\xc3", "\xe2\x82", "nginx", "systemd", "123", "1",
};

static void summary(void) {
        fprintf(stderr, "fuzz_journal: %zu printable messages, %zu blobs, %zu lines\n", n_printable, n_blob, n_lines);
}

const FuzzTarget fuzz_target = {
        .name = "journal",
        .tokens = tokens,
        .n_tokens = ELEMENTSOF(tokens),
        .summary = summary,
};
