/* linebuf.c: a stream cut into lines, for the console readers of container.c and qemu.c. */
#include <string.h>

#include "linebuf.h"

size_t linebuf_feed(LineBuf *b, const char *buf, size_t len, char **ret_line, size_t *ret_len) {
        *ret_line = NULL;
        for (size_t i = 0; i < len; i++) {
                if (buf[i] == '\n' || b->len == sizeof b->line) {
                        *ret_line = b->line;
                        *ret_len = b->len;
                        b->len = 0;
                        return buf[i] == '\n' ? i + 1 : i;
                }
                b->line[b->len++] = buf[i];
        }
        return len;
}

char *linebuf_flush(LineBuf *b, size_t *ret_len) {
        if (b->len == 0)
                return NULL;
        *ret_len = b->len;
        b->len = 0;
        return b->line;
}
