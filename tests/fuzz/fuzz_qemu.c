/* fuzz_qemu.c: fuzz target for what a VM's guest sends us over the backdoor shell (backdoor.c: the
 * sentinel, the base64 output line, the status line) and its serial console (linebuf.c cuts it
 * into lines), and for what we write from a test's strings (backdoor.c's shell quoting and command
 * line, qemu.c's key names). Every input goes through every parser; each result is checked
 * against a small model written apart from the code under test. QMP has a target of its own
 * (fuzz_qmp.c). Built as fuzz.h says. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include <inttypes.h>
#include <jansson.h>
#include <signal.h>
#include <stdint.h>

#include "fuzz.h"
#include "backdoor.h"
#include "linebuf.h"
#include "qemu.h"
#include "util.h"

#define SEC UINT64_C(1000000)
#define SENTINEL_LEN (sizeof BACKDOOR_SENTINEL - 1)
/* backdoor_status_parse refuses a status past this (an exit status is at most 255). */
#define STATUS_MAX 100000

/* Counts for the standalone summary: they show how deep the mutants reach. */
static size_t n_inputs, n_sentinel, n_b64_ok, n_status_ok;

static uint64_t fnv1a(const uint8_t *d, size_t n) {
        uint64_t h = 1469598103934665603ULL;

        for (size_t i = 0; i < n; i++)
                h = (h ^ d[i]) * 1099511628211ULL;
        return h;
}

/* ---- the backdoor shell: sentinel and frame ---- */

static void fuzz_sentinel(const uint8_t *data, size_t size) {
        char *buf = fuzz_dup(data, size, 0);
        ssize_t r = backdoor_sentinel_end(buf, size), want = -1;

        for (size_t i = 0; i + SENTINEL_LEN <= size; i++)
                if (memcmp(data + i, BACKDOOR_SENTINEL, SENTINEL_LEN) == 0) {
                        want = (ssize_t) (i + SENTINEL_LEN);
                        break;
                }
        fuzz_check(r == want);
        n_sentinel += r >= 0;

        /* Waiting for it: found, and whether its line ends in this read; or what to keep. */
        {
                size_t keep = SIZE_MAX;
                bool pending = false;
                int s = backdoor_sentinel_scan(buf, size, &keep, &pending);

                if (want < 0) {
                        fuzz_check(s == 0);
                        fuzz_check(keep == (size < SENTINEL_LEN - 1 ? size : SENTINEL_LEN - 1));
                } else {
                        size_t w = (size_t) want;
                        bool ends = (w < size && data[w] == '\n') ||
                                    (w + 1 < size && data[w] == '\r' && data[w + 1] == '\n');

                        fuzz_check(s == 1);
                        fuzz_check(pending == !ends);
                }
        }
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
        char *buf = fuzz_dup(data, size, 0);

        fuzz_check(backdoor_frame_line(buf, size) == model_frame_line(data, size));
        /* shell_take_line resumes the search where the previous read stopped. */
        for (size_t from = 0; from <= size; from += 1 + size / 4) {
                size_t l = backdoor_frame_line(buf + from, size - from), want = model_frame_line(data + from, size - from);

                fuzz_check(l == want);
        }
        free(buf);
}

/* ---- base64 ---- */

static const char b64_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* RFC 4648 with "=" padding, as `base64 -w 0` writes it. */
static char *b64_encode(const uint8_t *d, size_t n, size_t *ret_len) {
        char *out = malloc((n + 2) / 3 * 4 + 1), *o = out;

        fuzz_check(out);
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
        char *in = fuzz_dup(s, len, 0), *out = (char *) &n_inputs;   /* must stay as it is on failure */
        uint8_t *want = malloc(len / 4 * 3 + 1);
        size_t out_len = SIZE_MAX, want_len = 0;
        int r, m;

        fuzz_check(want);
        r = backdoor_base64_decode(in, len, &out, &out_len);
        m = model_b64_decode(s, len, want, &want_len);
        if (m < 0) {
                fuzz_check(r == -EBADMSG);
                fuzz_check(out == (char *) &n_inputs && out_len == SIZE_MAX);
        } else {
                fuzz_check(r == 0);
                fuzz_check(out_len == want_len);
                fuzz_check(memcmp(out, want, want_len) == 0);
                fuzz_check(out[out_len] == '\0');
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
                char *exact = fuzz_dup(enc, enc_len, 0);

                fuzz_check(backdoor_base64_decode(exact, enc_len, &out, &out_len) == 0);
                fuzz_check(out_len == size && memcmp(out, data, size) == 0 && out[size] == '\0');
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
        char *in = fuzz_dup(s, len, 0);
        int got = INT32_MIN, want = INT32_MAX, r, m;

        r = backdoor_status_parse(in, len, &got);
        m = model_status(s, len, &want);
        if (m < 0) {
                if (r == 0)
                        fprintf(stderr, "fuzz_qemu: status line accepted as %d, but it is no number\n", got);
                fuzz_check(r == -EBADMSG);
        } else {
                fuzz_check(r == 0);
                fuzz_check(got == want);
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
        char *line = fuzz_dup(s, len, 0);
        size_t n = 0, got;

        got = backdoor_console_clean(line, len);
        /* Model: drop every "\r", then the trailing whitespace C's isspace knows ("\r" is gone). */
        {
                uint8_t *want = malloc(len ?: 1);

                fuzz_check(want);
                for (size_t i = 0; i < len; i++)
                        if (s[i] != '\r')
                                want[n++] = s[i];
                while (n > 0 && (want[n - 1] == ' ' || want[n - 1] == '\t' || want[n - 1] == '\n' ||
                                 want[n - 1] == '\v' || want[n - 1] == '\f'))
                        n--;
                fuzz_check(got == n);
                fuzz_check(memcmp(line, want, n) == 0);
                free(want);
        }
        free(line);
}

/* linebuf.c cuts the stream as the model does, however the reads fall: each "\n" ends a line (not
 * part of it), a line longer than the buffer comes out in pieces of LINEBUF_MAX. */
static void check_linebuf(const uint8_t *data, size_t size) {
        LineBuf b = {};
        size_t i = 0, start = 0, step = 1 + fnv1a(data, size) % 7, got_len = 0;
        char *line;

        while (i < size) {
                size_t n = size - i < step ? size - i : step;

                while (n > 0) {
                        size_t took = linebuf_feed(&b, (const char *) data + i, n, &line, &got_len);

                        fuzz_check(took <= n && (took > 0 || line));
                        i += took;
                        n -= took;
                        if (!line)
                                continue;
                        /* The model: from start, up to the "\n" or LINEBUF_MAX bytes. */
                        {
                                size_t e = start;

                                while (e < size && data[e] != '\n' && e - start < LINEBUF_MAX)
                                        e++;
                                fuzz_check(got_len == e - start && memcmp(line, data + start, got_len) == 0);
                                start = e < size && data[e] == '\n' ? e + 1 : e;
                        }
                }
        }
        line = linebuf_flush(&b, &got_len);
        fuzz_check(!line == (start == size));
        if (line)
                fuzz_check(got_len == size - start && memcmp(line, data + start, got_len) == 0);
}

static void fuzz_console(const uint8_t *data, size_t size) {
        size_t start = 0;

        check_linebuf(data, size);

        check_console(data, size);
        /* console_read cuts QEMU's stdout at each "\n", the "\n" not included. */
        for (size_t i = 0; i <= size; i++)
                if (i == size || data[i] == '\n') {
                        if (i > start || i < size)
                                check_console(data + start, i - start);
                        start = i + 1;
                }
}

/* ---- what we send to the shell ---- */

/* A word of POSIX sh made of plain characters, '...' and "..." parts, as the guest's bash reads
 * it; NULL if something would end the word or be expanded. */
static char *sh_unquote(const char *s) {
        static const char plain[] = "@%+=:,./-_";
        size_t n = strlen(s), o = 0;
        char *out = malloc(n + 1);

        fuzz_check(out);
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
                                        goto bad;   /* backdoor_shell_quote has no need of them */
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

        fuzz_check(s);
        q = backdoor_shell_quote(s);
        fuzz_check(q);
        u = sh_unquote(q);
        if (!u)
                fprintf(stderr, "fuzz_qemu: the shell would not read %s back\n", q);
        fuzz_check(u && streq(u, s));
        fuzz_check(streq(q, s) == all_plain(s));

        /* Timeouts from none over whole seconds to the largest. */
        switch (h % 5) {
        case 0: timeout = 0; break;
        case 1: timeout = (h >> 8) % 100000 * SEC; break;
        case 2: timeout = (h >> 8) % (100 * SEC); break;
        case 3: timeout = h >> 8; break;
        default: timeout = UINT64_MAX - (h >> 60); break;
        }
        line = backdoor_command_line(s, timeout);
        fuzz_check(line);
        fuzz_check(asprintf(&full, "set -euo pipefail; %s", s) >= 0);
        free(q);
        q = backdoor_shell_quote(full);
        fuzz_check(q);
        python_seconds(timeout, secs, sizeof secs);
        fuzz_check(asprintf(&want, "%s%s%sbash -c %s | (base64 -w 0; echo)\n", timeout ? "timeout " : "",
                       timeout ? secs : "", timeout ? " " : "", q) >= 0);
        if (!streq(line, want))
                fprintf(stderr, "fuzz_qemu: command line\n  %s  wanted\n  %s", line, want);
        fuzz_check(streq(line, want));
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
                        fuzz_check(!k);
                else if (c >= 'A' && c <= 'Z')
                        fuzz_check(k && startswith(k, "shift-") && k[6] == c - 'A' + 'a' && !k[7]);
                if (k)
                        fuzz_check(key_name_valid(k));
                /* Two characters on one key would type the wrong one. */
                for (int d = 0; k && d < c; d++)
                        fuzz_check(!keys[d] || !streq(keys[d], k));
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        check_keys_once();
        n_inputs++;
        fuzz_sentinel(data, size);
        fuzz_frame_line(data, size);
        fuzz_base64(data, size);
        fuzz_status(data, size);
        fuzz_console(data, size);
        fuzz_shell_quote(data, size);
        return 0;
}

/* Pieces of the protocol, so that mutants reach past the first check of each parser. */
static const char *const tokens[] = {
        BACKDOOR_SENTINEL, "Spawning ", "shell...", "\r\n", "\n", "\r", "\t", " ", "\v", "\f", "=", "==", "===",
        "AAAA", "YQ==", "YWI=", "+/", "-", "+", "0", "124", "100000", "99999999999", "{", "}", "[", "]",
        ",", ":", "\"", "\\", "null", "true", "1.5", "-9223372036854775808", "9223372036854775808",
        "\"return\":", "\"error\":", "\"event\":", "\"QMP\":", "\"id\":", "\"class\":", "\"desc\":",
        "\"data\":", "\"reason\":", "\"timestamp\":", "\"SHUTDOWN\"", "\"RESET\"", "{\"class\":\"C\",\"desc\":\"D\"}",
        "\"\\u0000\"", "\"\\ud800\"", "\"\\u00e9\"", "\xff", "\xc3\xa9", "\xc3", "'", "\"'\"'", "$(", "`",
        "\x1b[0m", "{\"return\":{},\"id\":1}",
};

static void summary(void) {
        fprintf(stderr, "fuzz_qemu: %zu inputs: %zu with the sentinel, %zu base64 decoded, %zu status lines\n",
                n_inputs, n_sentinel, n_b64_ok, n_status_ok);
}

const FuzzTarget fuzz_target = {
        .name = "qemu",
        .tokens = tokens,
        .n_tokens = ELEMENTSOF(tokens),
        .summary = summary,
};
