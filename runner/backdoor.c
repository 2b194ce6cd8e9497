/* backdoor.c: the NixOS test driver's backdoor shell protocol (reference 4.4 and 4.5), with no I/O:
 * the sentinel, the line a command is sent as, the base64 output frame, the status line and the
 * cleaning of a serial console line. qemu.c does the reading and writing. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backdoor.h"
#include "util.h"

#define SEC 1000000ULL

char *backdoor_shell_quote(const char *s) {
        static const char safe[] = "@%+=:,./-_";
        size_t n = 0, extra = 0;
        bool plain = *s != '\0';
        char *r, *p;

        for (const char *c = s; *c; c++, n++) {
                unsigned char u = (unsigned char) *c;
                if (!((u < 128 && (('a' <= u && u <= 'z') || ('A' <= u && u <= 'Z') || ('0' <= u && u <= '9'))) ||
                      strchr(safe, u)))
                        plain = false;
                if (u == '\'')
                        extra += 4;
        }
        if (plain)
                return strdup(s);
        r = p = malloc(n + extra + 3);
        if (!r)
                return NULL;
        *p++ = '\'';
        for (const char *c = s; *c; c++)
                if (*c == '\'') {
                        memcpy(p, "'\"'\"'", 5);
                        p += 5;
                } else
                        *p++ = *c;
        *p++ = '\'';
        *p = '\0';
        return r;
}

char *backdoor_command_line(const char *command, uint64_t timeout_usec) {
        _cleanup_free_ char *full = NULL, *quoted = NULL;
        char timeout[64] = "", *line;

        if (asprintf(&full, "set -euo pipefail; %s", command) < 0) {
                full = NULL;
                return NULL;
        }
        quoted = backdoor_shell_quote(full);
        if (!quoted)
                return NULL;
        if (timeout_usec > 0) {
                /* As Python prints a float: "900.0", "0.5", "1.25". */
                int l = snprintf(timeout, sizeof timeout, "timeout %llu.%06llu ",
                                 (unsigned long long) (timeout_usec / SEC), (unsigned long long) (timeout_usec % SEC));
                char *dot = strchr(timeout, '.'), *end = timeout + l - 1;   /* end: the trailing space */
                char *last = end - 1;
                while (last > dot + 1 && *last == '0')
                        last--;
                memmove(last + 1, end, 2);
        }
        if (asprintf(&line, "%sbash -c %s | (base64 -w 0; echo)\n", timeout, quoted) < 0)
                return NULL;
        return line;
}

ssize_t backdoor_sentinel_end(const char *buf, size_t len) {
        const char *p = memmem(buf, len, BACKDOOR_SENTINEL, strlen(BACKDOOR_SENTINEL));

        return p ? (ssize_t) (p - buf + strlen(BACKDOOR_SENTINEL)) : -1;
}

int backdoor_sentinel_scan(const char *buf, size_t len, size_t *ret_keep, bool *ret_newline_pending) {
        ssize_t end = backdoor_sentinel_end(buf, len);
        size_t l, keep = strlen(BACKDOOR_SENTINEL) - 1;

        if (end < 0) {
                *ret_keep = len < keep ? len : keep;
                return 0;
        }
        l = (size_t) end;
        if (l < len && buf[l] == '\r')
                l++;
        *ret_newline_pending = !(l < len && buf[l] == '\n');
        return 1;
}

size_t backdoor_frame_line(const char *buf, size_t len) {
        const char *nl = memchr(buf, '\n', len);

        return nl ? (size_t) (nl - buf) + 1 : 0;
}

static int b64_value(char c) {
        if (c >= 'A' && c <= 'Z')
                return c - 'A';
        if (c >= 'a' && c <= 'z')
                return c - 'a' + 26;
        if (c >= '0' && c <= '9')
                return c - '0' + 52;
        if (c == '+')
                return 62;
        if (c == '/')
                return 63;
        return -1;
}

int backdoor_base64_decode(const char *s, size_t len, char **ret, size_t *ret_len) {
        _cleanup_free_ char *out = NULL;
        size_t o = 0;

        if (len % 4 != 0)
                return -EBADMSG;
        out = malloc(len / 4 * 3 + 1);
        if (!out)
                return -ENOMEM;
        for (size_t i = 0; i < len; i += 4) {
                int v[4];
                size_t pad = 0;

                for (int k = 0; k < 4; k++) {
                        if (s[i + k] == '=' && i + 4 == len && k >= 2) {
                                v[k] = 0;
                                pad++;
                                continue;
                        }
                        if (pad > 0)        /* "=" then a letter */
                                return -EBADMSG;
                        v[k] = b64_value(s[i + k]);
                        if (v[k] < 0)
                                return -EBADMSG;
                }
                uint32_t w = (uint32_t) v[0] << 18 | (uint32_t) v[1] << 12 | (uint32_t) v[2] << 6 | (uint32_t) v[3];
                out[o++] = (char) (w >> 16);
                if (pad < 2)
                        out[o++] = (char) (w >> 8);
                if (pad < 1)
                        out[o++] = (char) w;
        }
        out[o] = '\0';
        *ret = TAKE_PTR(out);
        *ret_len = o;
        return 0;
}

int backdoor_status_parse(const char *line, size_t len, int *ret) {
        size_t i = 0;
        long v = 0;
        bool neg = false, digits = false;

        /* line[i] != '\0': strchr finds the terminator too, and a NUL byte is no blank. */
        while (i < len && line[i] != '\0' && strchr(" \t\r\n", line[i]))
                i++;
        if (i < len && (line[i] == '-' || line[i] == '+'))
                neg = line[i++] == '-';
        for (; i < len && line[i] >= '0' && line[i] <= '9'; i++) {
                digits = true;
                v = v * 10 + (line[i] - '0');
                if (v > 100000)
                        return -EBADMSG;
        }
        while (i < len && line[i] != '\0' && strchr(" \t\r\n", line[i]))
                i++;
        if (!digits || i != len)
                return -EBADMSG;
        *ret = (int) (neg ? -v : v);
        return 0;
}

size_t backdoor_console_clean(char *line, size_t len) {
        size_t o = 0;

        for (size_t i = 0; i < len; i++)
                if (line[i] != '\r')
                        line[o++] = line[i];
        while (o > 0 && line[o - 1] != '\0' && strchr(" \t\n\v\f", line[o - 1]))
                o--;
        return o;
}
