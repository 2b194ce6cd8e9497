/* fuzz_qemu.c: fuzz target for what qemu.c and qmp.c read from a guest and from QEMU (the backdoor
 * sentinel, the base64 output line, the status line, serial console lines, QMP messages) and for
 * what they write from a test's strings (shell quoting, the command line, QMP commands, key names).
 * Every input goes through every parser; each result is checked against a small model written
 * apart from the code under test. Built with -DFUZZ_STANDALONE it is also a plain program that
 * replays a built-in corpus (and any files given) and runs a seeded mutator, as fuzz_config does.
 *
 *   clang -fsanitize=fuzzer,address ... fuzz_qemu.c qemu.c qmp.c strv.c outbuf.c -lsystemd -ljansson
 *   gcc -DFUZZ_STANDALONE -fsanitize=address,undefined ...            (our main below)
 *   fuzz_qemu [--random N] [--seed S] [--max-len BYTES] [--artifact-prefix P] [FILE|DIR...]
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include <inttypes.h>
#include <jansson.h>
#include <signal.h>
#include <stdint.h>

#include "qemu.h"
#include "qmp.h"
#include "util.h"

#define check(cond) do {                                                                \
                if (!(cond)) {                                                          \
                        fprintf(stderr, "fuzz_qemu: property failed: %s (line %d)\n",   \
                                #cond, __LINE__);                                       \
                        abort();                                                        \
                }                                                                       \
        } while (0)

#define SEC UINT64_C(1000000)
#define SENTINEL_LEN (sizeof QEMU_SENTINEL - 1)
/* qemu_status_parse refuses a status past this (an exit status is at most 255). */
#define STATUS_MAX 100000

/* Counts for the standalone summary: they show how deep the mutants reach. */
static size_t n_inputs, n_sentinel, n_b64_ok, n_status_ok, n_qmp[4], n_qmp_bad;

/* A copy of exactly len bytes (no terminator), so that ASan sees a read past the end. */
static char *dup_exact(const void *data, size_t len) {
        char *p = malloc(len ?: 1);

        check(p);
        memcpy(p, data, len);
        return p;
}

static uint64_t fnv1a(const uint8_t *d, size_t n) {
        uint64_t h = 1469598103934665603ULL;

        for (size_t i = 0; i < n; i++)
                h = (h ^ d[i]) * 1099511628211ULL;
        return h;
}

/* ---- the backdoor shell: sentinel and frame ---- */

static void fuzz_sentinel(const uint8_t *data, size_t size) {
        char *buf = dup_exact(data, size);
        ssize_t r = qemu_sentinel_end(buf, size), want = -1;

        for (size_t i = 0; i + SENTINEL_LEN <= size; i++)
                if (memcmp(data + i, QEMU_SENTINEL, SENTINEL_LEN) == 0) {
                        want = (ssize_t) (i + SENTINEL_LEN);
                        break;
                }
        check(r == want);
        n_sentinel += r >= 0;
        free(buf);
}

/* The first line's length with its "\n", or 0: what shell_consume takes as a frame. */
static size_t model_frame_line(const uint8_t *data, size_t size) {
        for (size_t i = 0; i < size; i++)
                if (data[i] == '\n')
                        return i + 1;
        return 0;
}

static void fuzz_frame_line(const uint8_t *data, size_t size) {
        char *buf = dup_exact(data, size);

        check(qemu_frame_line(buf, size) == model_frame_line(data, size));
        /* shell_take_line resumes the search where the previous read stopped. */
        for (size_t from = 0; from <= size; from += 1 + size / 4) {
                size_t l = qemu_frame_line(buf + from, size - from), want = model_frame_line(data + from, size - from);

                check(l == want);
        }
        free(buf);
}

/* ---- base64 ---- */

static const char b64_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* RFC 4648 with "=" padding, as `base64 -w 0` writes it. */
static char *b64_encode(const uint8_t *d, size_t n, size_t *ret_len) {
        char *out = malloc((n + 2) / 3 * 4 + 1), *o = out;

        check(out);
        for (size_t i = 0; i < n; i += 3) {
                uint32_t w = (uint32_t) d[i] << 16 | (i + 1 < n ? (uint32_t) d[i + 1] << 8 : 0) |
                             (i + 2 < n ? d[i + 2] : 0);

                *o++ = b64_alphabet[w >> 18 & 63];
                *o++ = b64_alphabet[w >> 12 & 63];
                *o++ = i + 1 < n ? b64_alphabet[w >> 6 & 63] : '=';
                *o++ = i + 2 < n ? b64_alphabet[w & 63] : '=';
        }
        *o = '\0';
        *ret_len = (size_t) (o - out);
        return out;
}

/* The decoder the header describes, as a bit accumulator: groups of four, at most two "=" and
 * only at the very end, nothing outside the alphabet. Bits past the last whole byte are dropped
 * (the encoder writes zeros there; the decoder does not insist). -1 if not base64. */
static int model_b64_decode(const uint8_t *s, size_t len, uint8_t *out, size_t *ret_len) {
        size_t pad = 0, o = 0;
        uint32_t acc = 0;
        int bits = 0;

        if (len % 4 != 0)
                return -1;
        while (pad < len && pad < 3 && s[len - 1 - pad] == '=')
                pad++;
        if (pad > 2)
                return -1;
        for (size_t i = 0; i < len - pad; i++) {
                const char *p = s[i] ? memchr(b64_alphabet, s[i], 64) : NULL;

                if (!p)
                        return -1;
                acc = acc << 6 | (uint32_t) (p - b64_alphabet);
                bits += 6;
                if (bits >= 8) {
                        bits -= 8;
                        out[o++] = (uint8_t) (acc >> bits);
                }
        }
        *ret_len = o;
        return 0;
}

static void check_b64(const uint8_t *s, size_t len) {
        char *in = dup_exact(s, len), *out = (char *) &n_inputs;   /* must stay as it is on failure */
        uint8_t *want = malloc(len / 4 * 3 + 1);
        size_t out_len = SIZE_MAX, want_len = 0;
        int r, m;

        check(want);
        r = qemu_base64_decode(in, len, &out, &out_len);
        m = model_b64_decode(s, len, want, &want_len);
        if (m < 0) {
                check(r == -EBADMSG);
                check(out == (char *) &n_inputs && out_len == SIZE_MAX);
        } else {
                check(r == 0);
                check(out_len == want_len);
                check(memcmp(out, want, want_len) == 0);
                check(out[out_len] == '\0');
                free(out);
                n_b64_ok++;
        }
        free(want);
        free(in);
}

static void fuzz_base64(const uint8_t *data, size_t size) {
        size_t l = model_frame_line(data, size), enc_len;
        char *enc, *out = NULL;
        size_t out_len = 0;

        check_b64(data, size);
        /* shell_consume hands over the first line without its "\n". */
        if (l > 0)
                check_b64(data, l - 1);

        /* Whatever a command prints comes back byte for byte. */
        enc = b64_encode(data, size, &enc_len);
        {
                char *exact = dup_exact(enc, enc_len);

                check(qemu_base64_decode(exact, enc_len, &out, &out_len) == 0);
                check(out_len == size && memcmp(out, data, size) == 0 && out[size] == '\0');
                free(exact);
        }
        free(out);
        free(enc);
}

/* ---- the status line ---- */

/* Python's int(s.strip()) for what `echo ${PIPESTATUS[0]}` can print: blanks are space, tab,
 * "\r" and "\n" (a NUL byte is none), one optional sign, decimal digits. -1 if refused. */
static int model_status(const uint8_t *s, size_t len, int *ret) {
        size_t i = 0;
        long v = 0;
        bool neg = false, digits = false;

#define BLANK(c) ((c) == ' ' || (c) == '\t' || (c) == '\r' || (c) == '\n')
        while (i < len && BLANK(s[i]))
                i++;
        if (i < len && (s[i] == '-' || s[i] == '+'))
                neg = s[i++] == '-';
        for (; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
                digits = true;
                if (v <= STATUS_MAX)
                        v = v * 10 + (s[i] - '0');
        }
        while (i < len && BLANK(s[i]))
                i++;
#undef BLANK
        if (!digits || i != len || v > STATUS_MAX)
                return -1;
        *ret = (int) (neg ? -v : v);
        return 0;
}

static void check_status(const uint8_t *s, size_t len) {
        char *in = dup_exact(s, len);
        int got = INT32_MIN, want = INT32_MAX, r, m;

        r = qemu_status_parse(in, len, &got);
        m = model_status(s, len, &want);
        if (m < 0) {
                if (r == 0)
                        fprintf(stderr, "fuzz_qemu: status line accepted as %d, but it is no number\n", got);
                check(r == -EBADMSG);
        } else {
                check(r == 0);
                check(got == want);
                n_status_ok++;
        }
        free(in);
}

static void fuzz_status(const uint8_t *data, size_t size) {
        size_t l = model_frame_line(data, size);

        check_status(data, size);
        /* shell_consume passes the line with its "\n". */
        if (l > 0)
                check_status(data, l);
}

/* ---- serial console lines ---- */

static void check_console(const uint8_t *s, size_t len) {
        char *line = dup_exact(s, len);
        size_t n = 0, got;

        got = qemu_console_clean(line, len);
        /* Model: drop every "\r", then the trailing whitespace C's isspace knows ("\r" is gone). */
        {
                uint8_t *want = malloc(len ?: 1);

                check(want);
                for (size_t i = 0; i < len; i++)
                        if (s[i] != '\r')
                                want[n++] = s[i];
                while (n > 0 && (want[n - 1] == ' ' || want[n - 1] == '\t' || want[n - 1] == '\n' ||
                                 want[n - 1] == '\v' || want[n - 1] == '\f'))
                        n--;
                check(got == n);
                check(memcmp(line, want, n) == 0);
                free(want);
        }
        free(line);
}

static void fuzz_console(const uint8_t *data, size_t size) {
        size_t start = 0;

        check_console(data, size);
        /* console_read cuts QEMU's stdout at each "\n", the "\n" not included. */
        for (size_t i = 0; i <= size; i++)
                if (i == size || data[i] == '\n') {
                        if (i > start || i < size)
                                check_console(data + start, i - start);
                        start = i + 1;
                }
}

/* ---- QMP ---- */

static void check_qmp(const char *text, size_t len, QmpMessage *m, int *ret) {
        json_error_t err;
        json_t *root, *v;
        int r;

        r = qmp_message_parse(text, len, m);
        *ret = r;
        root = json_loadb(text, len, JSON_DECODE_ANY, &err);
        if (r < 0) {
                check(r == -EBADMSG);
                check(!m->root && !m->value && !m->event && !m->error_class && !m->error_desc && !m->has_id);
                /* Refused: not JSON, not an object, or none of the four keys (an "event" that is no string). */
                check(!json_is_object(root) ||
                      (!json_object_get(root, "return") && !json_object_get(root, "error") &&
                       !json_is_string(json_object_get(root, "event")) && !json_object_get(root, "QMP")));
                json_decref(root);
                n_qmp_bad++;
                return;
        }
        check(r == 0);
        check(json_is_object(m->root));
        check(json_equal(root, m->root));
        json_decref(root);
        root = m->root;

        v = json_object_get(root, "id");
        check(m->has_id == json_is_integer(v));
        check(!m->has_id || m->id == json_integer_value(v));

        /* A reply before an event: QEMU never mixes them, but a reply must reach its command. */
        if ((v = json_object_get(root, "return"))) {
                check(m->type == QMP_MESSAGE_RETURN);
                check(m->value == v);
        } else if ((v = json_object_get(root, "error"))) {
                const char *c = json_string_value(json_object_get(v, "class"));
                const char *d = json_string_value(json_object_get(v, "desc"));

                check(m->type == QMP_MESSAGE_ERROR);
                check(m->value == v);
                check(m->error_class && m->error_desc);
                check(streq(m->error_class, c ?: "") && streq(m->error_desc, d ?: ""));
        } else if (json_is_string(v = json_object_get(root, "event"))) {
                check(m->type == QMP_MESSAGE_EVENT);
                check(m->event && streq(m->event, json_string_value(v)));
                check(m->value == json_object_get(root, "data"));
        } else {
                check((v = json_object_get(root, "QMP")));
                check(m->type == QMP_MESSAGE_GREETING);
                check(m->value == v);
        }
        /* What on_qmp_event does with a SHUTDOWN: the reason may be anything, or absent. */
        if (m->type == QMP_MESSAGE_EVENT) {
                char reason[32];

                snprintf(reason, sizeof reason, "%s", json_string_value(json_object_get(m->value, "reason")) ?: "");
        }
        n_qmp[m->type]++;
}

static void fuzz_qmp(const uint8_t *data, size_t size) {
        QmpMessage a, b;
        char *text = dup_exact(data, size), *line = malloc(size + 2);
        int ra, rb;

        check(line);
        check_qmp(text, size, &a, &ra);
        /* dispatch hands over the line with QEMU's "\r\n": the same message. */
        memcpy(line, data, size);
        memcpy(line + size, "\r\n", 2);
        check_qmp(line, size + 2, &b, &rb);
        check(ra == rb);
        if (ra == 0) {
                check(a.type == b.type);
                check(json_equal(a.root, b.root));
        }
        qmp_message_done(&a);
        qmp_message_done(&b);
        check(!a.root && !b.root);
        free(line);
        free(text);
}

/* qmp_command_format with the input as the command name and, when the input is an object, as the
 * arguments: one line that QEMU reads back as exactly that. */
static void fuzz_qmp_command(const uint8_t *data, size_t size) {
        _cleanup_free_ char *command = strndup((const char *) data, size), *line = NULL;
        json_t *arguments, *o, *s;
        json_error_t err;
        int64_t id = (int64_t) (fnv1a(data, size) >> 1) * (size && (data[0] & 1) ? -1 : 1);
        QmpMessage m;
        size_t l;

        check(command);
        arguments = json_loadb((const char *) data, size, 0, &err);
        if (!json_is_object(arguments)) {
                json_decref(arguments);
                arguments = NULL;
        }
        line = qmp_command_format(command, arguments, id);
        s = json_string(command);
        /* NULL only for a name jansson will not hold (not UTF-8). */
        check(!line == !s);
        json_decref(s);
        if (!line) {
                json_decref(arguments);
                return;
        }
        l = strlen(line);
        check(l > 0 && line[l - 1] == '\n');
        /* A second line would reach QEMU as a second command. */
        check(!memchr(line, '\n', l - 1));
        o = json_loadb(line, l, 0, &err);
        check(json_is_object(o));
        check(json_object_size(o) == (arguments ? 3u : 2u));
        check(streq(json_string_value(json_object_get(o, "execute")), command));
        check(json_is_integer(json_object_get(o, "id")) && json_integer_value(json_object_get(o, "id")) == id);
        check(!arguments || json_equal(json_object_get(o, "arguments"), arguments));
        check(qmp_message_parse(line, l, &m) == -EBADMSG);
        json_decref(o);
        json_decref(arguments);
}

/* ---- what we send to the shell ---- */

/* A word of POSIX sh made of plain characters, '...' and "..." parts, as the guest's bash reads
 * it; NULL if something would end the word or be expanded. */
static char *sh_unquote(const char *s) {
        static const char plain[] = "@%+=:,./-_";
        size_t n = strlen(s), o = 0;
        char *out = malloc(n + 1);

        check(out);
        for (size_t i = 0; i < n;) {
                unsigned char c = (unsigned char) s[i];

                if (c == '\'') {
                        const char *end = strchr(s + i + 1, '\'');

                        if (!end)
                                goto bad;
                        memcpy(out + o, s + i + 1, (size_t) (end - s - i - 1));
                        o += (size_t) (end - s - i - 1);
                        i = (size_t) (end - s) + 1;
                } else if (c == '"') {
                        for (i++; i < n && s[i] != '"'; i++) {
                                if (strchr("$`\\", s[i]))
                                        goto bad;   /* qemu_shell_quote has no need of them */
                                out[o++] = s[i];
                        }
                        if (i == n)
                                goto bad;
                        i++;
                } else if ((c < 128 && (('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') || ('0' <= c && c <= '9'))) ||
                           strchr(plain, c)) {
                        out[o++] = s[i++];
                } else
                        goto bad;
        }
        out[o] = '\0';
        return out;
bad:
        free(out);
        return NULL;
}

static bool all_plain(const char *s) {
        if (!*s)
                return false;
        for (const unsigned char *c = (const unsigned char *) s; *c; c++)
                if (!((*c < 128 && (('a' <= *c && *c <= 'z') || ('A' <= *c && *c <= 'Z') || ('0' <= *c && *c <= '9'))) ||
                      strchr("@%+=:,./-_", *c)))
                        return false;
        return true;
}

/* Python's str(float(usec / 1e6)) for the values a timeout takes: "900.0", "0.5", "1.000001". */
static void python_seconds(uint64_t usec, char *buf, size_t size) {
        char frac[8];
        int k;

        snprintf(frac, sizeof frac, "%06" PRIu64, usec % SEC);
        for (k = 5; k > 0 && frac[k] == '0'; k--)
                frac[k] = '\0';
        snprintf(buf, size, "%" PRIu64 ".%s", usec / SEC, frac);
}

static void fuzz_shell_quote(const uint8_t *data, size_t size) {
        _cleanup_free_ char *s = strndup((const char *) data, size), *q = NULL, *u = NULL, *full = NULL,
                            *line = NULL, *want = NULL;
        uint64_t h = fnv1a(data, size), timeout;
        char secs[64];

        check(s);
        q = qemu_shell_quote(s);
        check(q);
        u = sh_unquote(q);
        if (!u)
                fprintf(stderr, "fuzz_qemu: the shell would not read %s back\n", q);
        check(u && streq(u, s));
        check(streq(q, s) == all_plain(s));

        /* Timeouts from none over whole seconds to the largest. */
        switch (h % 5) {
        case 0: timeout = 0; break;
        case 1: timeout = (h >> 8) % 100000 * SEC; break;
        case 2: timeout = (h >> 8) % (100 * SEC); break;
        case 3: timeout = h >> 8; break;
        default: timeout = UINT64_MAX - (h >> 60); break;
        }
        line = qemu_command_line(s, timeout);
        check(line);
        check(asprintf(&full, "set -euo pipefail; %s", s) >= 0);
        free(q);
        q = qemu_shell_quote(full);
        check(q);
        python_seconds(timeout, secs, sizeof secs);
        check(asprintf(&want, "%s%s%sbash -c %s | (base64 -w 0; echo)\n", timeout ? "timeout " : "",
                       timeout ? secs : "", timeout ? " " : "", q) >= 0);
        if (!streq(line, want))
                fprintf(stderr, "fuzz_qemu: command line\n  %s  wanted\n  %s", line, want);
        check(streq(line, want));
}

/* The keys QEMU's sendkey knows that qemu_key_for_char may name. */
static bool key_name_valid(const char *k) {
        if (startswith(k, "shift-"))
                k += strlen("shift-");
        if (strlen(k) == 1)
                return k[0] >= 'a' && k[0] <= 'z';
        if (strlen(k) == 4 && startswith(k, "0x"))
                return strchr("0123456789ABCDEF", k[2]) && strchr("0123456789ABCDEF", k[3]) && k[2] && k[3];
        return streq(k, "spc") || streq(k, "ret") || streq(k, "tab");
}

static void check_keys_once(void) {
        static bool done;
        const char *keys[256];

        if (done)
                return;
        done = true;
        for (int c = 0; c < 256; c++) {
                const char *k = qemu_key_for_char((char) c);

                keys[c] = k;
                if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))
                        check(!k);
                else if (c >= 'A' && c <= 'Z')
                        check(k && startswith(k, "shift-") && k[6] == c - 'A' + 'a' && !k[7]);
                if (k)
                        check(key_name_valid(k));
                /* Two characters on one key would type the wrong one. */
                for (int d = 0; k && d < c; d++)
                        check(!keys[d] || !streq(keys[d], k));
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        check_keys_once();
        n_inputs++;
        fuzz_sentinel(data, size);
        fuzz_frame_line(data, size);
        fuzz_base64(data, size);
        fuzz_status(data, size);
        fuzz_console(data, size);
        fuzz_qmp(data, size);
        fuzz_qmp_command(data, size);
        fuzz_shell_quote(data, size);
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

/* What QEMU, a NixOS guest and a test send, and the edges of each parser. A literal's length is
 * its size, so NUL bytes count. */
#define S(s) { (uint8_t *) (s), sizeof(s) - 1 }
static const Input builtin[] = {
        /* the handshake */
        S("Spawning backdoor root shell...\n"),
        S("connecting to host...\r\nSpawning backdoor root shell...\r\n"),
        S("Spawning backdoor root shel"),
        S("Spawning backdoor root shell..."),
        S("SpawningSpawning backdoor root shell...Spawning backdoor root shell..."),
        /* output frames */
        S("\n"),
        S("aGVsbG8K\n"),
        S("aGVsbG8gd29ybGQ=\n"),
        S("YQ==\n"),
        S("YWI=\n"),
        S("////+++/AAAA\n"),
        S("aGVsbG8K\r\n"),
        S("aGVs bG8K\n"),
        S("YQ=A\n"),
        S("Y===\n"),
        S("YR==\n"),
        S("dGhlIG91dHB1dAo=\nMAo="),
        /* status lines */
        S("0\n"),
        S("124\n"),
        S(" 1 \r\n"),
        S("-1\n"),
        S("+7\n"),
        S("100000\n"),
        S("100001\n"),
        S("0000000000000000000042\n"),
        S("99999999999999999999999\n"),
        S("1 2\n"),
        S("0\0\n"),
        S("\v5\f\n"),
        S("-\n"),
        /* console lines */
        S("[    0.000000] Linux version 6.1.0 (gcc 12.2.0)\r\n"),
        S("\x1b[0;1;32m  OK  \x1b[0m] Started backdoor.service\r\r\n"),
        S("Welcome\t \v\f\r\n"),
        S("a\rb\rc   \n\n\nd\r"),
        S("trailing NUL\0"),
        /* QMP from QEMU */
        S("{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, \"minor\": 2, \"major\": 7}, "
          "\"package\": \"Debian 1:7.2+dfsg-7\"}, \"capabilities\": [\"oob\"]}}\r\n"),
        S("{\"return\": {}, \"id\": 1}\r\n"),
        S("{\"return\": \"sendkey ok\\r\\n\", \"id\": 2}"),
        S("{\"error\": {\"class\": \"GenericError\", \"desc\": \"Could not open 'x.png': No such file or "
          "directory\"}, \"id\": 3}\r\n"),
        S("{\"timestamp\": {\"seconds\": 1700000000, \"microseconds\": 1234}, \"event\": \"SHUTDOWN\", "
          "\"data\": {\"guest\": true, \"reason\": \"guest-reset\"}}\r\n"),
        S("{\"timestamp\": {\"seconds\": 1, \"microseconds\": 2}, \"event\": \"RESET\", \"data\": {\"guest\": "
          "true, \"reason\": \"a reason far longer than the thirty-two bytes kept\"}}"),
        S("{\"event\": \"STOP\"}"),
        S("{\"event\": \"SHUTDOWN\", \"data\": [1]}"),
        S("{\"error\": 5, \"id\": 4}"),
        S("{\"error\": {\"class\": 1}}"),
        S("{\"return\": null, \"id\": \"x\"}"),
        S("{\"event\": 3, \"QMP\": {}}"),
        S("{\"event\": 3}"),
        S("{\"return\": 1, \"error\": {}, \"event\": \"E\", \"QMP\": 0}"),
        S("{\"id\": 9223372036854775807, \"return\": []}"),
        S("{\"return\": 1, \"id\": -9223372036854775808}"),
        S("{\"return\": 1, \"id\": 1.5}"),
        S("{\"return\": 1}{\"return\": 2}"),
        S("{\"return\": \"\\u0000\"}"),
        S("{\"return\": \"\xff\"}"),
        S("[1, 2]"),
        S("\"str\""),
        S("{}"),
        S("[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["),
        /* commands and QMP commands from a test */
        S("echo hello"),
        S("it's"),
        S(""),
        S("a b"),
        S("systemctl is-active multi-user.target"),
        S("printf '%s\\n' \"$HOME\" `id` $(id)"),
        S("ls\n/tmp"),
        S("screendump"),
        S("{\"filename\": \"screen.png\", \"format\": \"png\"}"),
        S("{\"command-line\": \"sendkey ctrl-alt-delete\"}"),
        S("human-monitor-command\n"),
        S("\xc3\xa9\xe2\x82\xac"),
};
#undef S

static Input *seeds;
static size_t n_seeds;

/* The input being run, kept so that a crash can leave it behind as a file. */
static const uint8_t *current;
static size_t current_size;
static const char *artifact_prefix = "./";

static void save_current(void) {
        char path[4096];
        int fd;

        if (!current)
                return;
        snprintf(path, sizeof path, "%scrash-qemu-%016llx", artifact_prefix,
                 (unsigned long long) fnv1a(current, current_size));
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd >= 0) {
                if (write(fd, current, current_size) == (ssize_t) current_size)
                        fprintf(stderr, "fuzz_qemu: input written to %s\n", path);
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
        uint8_t *copy = (uint8_t *) dup_exact(data, size);

        current = copy;
        current_size = size;
        LLVMFuzzerTestOneInput(copy, size);
        current = NULL;
        free(copy);
}

static int add_input(uint8_t *data, size_t size) {
        Input *n = realloc(seeds, (n_seeds + 1) * sizeof(Input));

        if (!n)
                return -ENOMEM;
        seeds = n;
        seeds[n_seeds++] = (Input) { .data = data, .size = size };
        return 0;
}

static int add_seed(const char *path) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        uint8_t *buf = NULL;
        size_t size = 0, alloc = 0;
        int r;

        if (fd < 0) {
                fprintf(stderr, "fuzz_qemu: cannot read %s: %m\n", path);
                return -errno;
        }
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
                        r = -errno;
                        fprintf(stderr, "fuzz_qemu: cannot read %s: %s\n", path, strerror(-r));
                        free(buf);
                        return r;
                }
                if (n == 0)
                        break;
                size += (size_t) n;
        }
        r = add_input(buf, size);
        if (r < 0)
                free(buf);
        return r;
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
                fprintf(stderr, "fuzz_qemu: cannot read %s: %m\n", path);
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

/* Pieces of each protocol, so that mutants reach past the first check of each parser. */
static const char *const tokens[] = {
        QEMU_SENTINEL, "Spawning ", "shell...", "\r\n", "\n", "\r", "\t", " ", "\v", "\f", "=", "==", "===",
        "AAAA", "YQ==", "YWI=", "+/", "-", "+", "0", "124", "100000", "99999999999", "{", "}", "[", "]",
        ",", ":", "\"", "\\", "null", "true", "1.5", "-9223372036854775808", "9223372036854775808",
        "\"return\":", "\"error\":", "\"event\":", "\"QMP\":", "\"id\":", "\"class\":", "\"desc\":",
        "\"data\":", "\"reason\":", "\"timestamp\":", "\"SHUTDOWN\"", "\"RESET\"", "{\"class\":\"C\",\"desc\":\"D\"}",
        "\"\\u0000\"", "\"\\ud800\"", "\"\\u00e9\"", "\xff", "\xc3\xa9", "\xc3", "'", "\"'\"'", "$(", "`",
        "\x1b[0m", "{\"return\":{},\"id\":1}",
};

static size_t mutate(uint8_t *buf, size_t size, size_t max) {
        size_t n = 1 + below(2) + (below(4) == 0 ? below(6) : 0);

        for (size_t k = 0; k < n; k++) {
                size_t pos = below(size + 1), op = below(9), len;

                switch (op) {
                case 0: /* flip a bit */
                        if (size)
                                buf[below(size)] ^= (uint8_t) (1u << below(8));
                        break;
                case 1: { /* an interesting byte */
                        static const char set[] = "{}[]\",:0123456789-+=/ \n\r\t\v\f\\'AZaz";

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
                case 7: { /* insert random bytes, NUL included */
                        len = 1 + below(4);
                        if (size + len > max)
                                break;
                        memmove(buf + pos + len, buf + pos, size - pos);
                        for (size_t i = 0; i < len; i++)
                                buf[pos + i] = rng() & 3 ? (uint8_t) rng() : 0;
                        size += len;
                        break;
                }
                case 8: { /* replace a JSON value (after ':', ',' or '[', up to ',', '}' or ']') */
                        const char *t = tokens[below(ELEMENTSOF(tokens))];
                        const uint8_t *start, *end;
                        size_t tl = strlen(t);

                        start = memchr(buf + pos, ":,["[below(3)], size - pos);
                        if (!start)
                                break;
                        start++;
                        for (end = start; end < buf + size && *end != ',' && *end != '}' && *end != ']'; end++)
                                ;
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

int main(int argc, char **argv) {
        unsigned long long runs = 0, seed = 1, max_len = 65536;
        size_t n_builtin = ELEMENTSOF(builtin);
        uint8_t *buf;
        int r;

#ifdef HAVE_ASAN
        /* ASan reports SIGSEGV itself, then calls save_current(); keep its handler. */
        __sanitizer_set_death_callback(save_current);
        signal(SIGABRT, on_abort);
#else
        signal(SIGABRT, on_abort);
        signal(SIGSEGV, on_abort);
#endif

        for (size_t i = 0; i < n_builtin; i++)
                check(add_input(builtin[i].data, builtin[i].size) == 0);

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
                                fprintf(stderr, "fuzz_qemu: --artifact-prefix needs a value\n");
                                return 2;
                        }
                        artifact_prefix = argv[i];
                        continue;
                } else if (startswith(argv[i], "-")) {
                        fprintf(stderr, "usage: fuzz_qemu [--random N] [--seed S] [--max-len BYTES] "
                                        "[--artifact-prefix P] [FILE|DIR...]\n");
                        return 2;
                } else {
                        r = add_path(argv[i]);
                        if (r < 0)
                                return 2;
                        continue;
                }
                if (++i >= argc || parse_count(argv[i], target) < 0) {
                        fprintf(stderr, "fuzz_qemu: %s needs a non-negative number\n", argv[i - 1]);
                        return 2;
                }
        }
        if (max_len < 16 || max_len > (1ULL << 24)) {
                fprintf(stderr, "fuzz_qemu: --max-len must be from 16 to 16777216\n");
                return 2;
        }

        for (size_t i = 0; i < n_seeds; i++)
                run_one(seeds[i].data, seeds[i].size);
        fprintf(stderr, "fuzz_qemu: replayed %zu built-in inputs and %zu files\n", n_builtin, n_seeds - n_builtin);

        if (runs > 0) {
                buf = malloc(max_len);
                check(buf);
                rng_state = seed;
                for (unsigned long long i = 0; i < runs; i++) {
                        const Input *s = &seeds[below(n_seeds)];
                        size_t size = s->size < max_len ? s->size : max_len;

                        memcpy(buf, s->data, size);
                        size = mutate(buf, size, max_len);
                        run_one(buf, size);
                }
                free(buf);
                fprintf(stderr, "fuzz_qemu: %llu mutants of %zu seeds (--seed %llu)\n", runs, n_seeds, seed);
        }
        fprintf(stderr, "fuzz_qemu: %zu inputs: %zu with the sentinel, %zu base64 decoded, %zu status lines, "
                        "QMP %zu greetings %zu returns %zu errors %zu events %zu refused\n",
                n_inputs, n_sentinel, n_b64_ok, n_status_ok, n_qmp[QMP_MESSAGE_GREETING],
                n_qmp[QMP_MESSAGE_RETURN], n_qmp[QMP_MESSAGE_ERROR], n_qmp[QMP_MESSAGE_EVENT], n_qmp_bad);

        for (size_t i = n_builtin; i < n_seeds; i++)
                free(seeds[i].data);
        free(seeds);
        return 0;
}

#endif
