/* linebuf.h: cuts a stream (a console: nspawn's output, QEMU's serial port) into lines, pure. A line
 * longer than the buffer comes out in pieces of LINEBUF_MAX bytes. */
#pragma once

#include <stddef.h>

#define LINEBUF_MAX 4096

typedef struct LineBuf {
        char line[LINEBUF_MAX];
        size_t len;
} LineBuf;

/* Takes bytes of buf up to the end of a line and returns how many it took. When a line is complete
 * (a "\n" came, which is taken and not part of it, or the buffer is full: the byte that did not fit
 * is left for the next call), *ret_line points at it in b (the caller may change it in place; it
 * stays valid until the next call) and *ret_len is its length; else *ret_line is NULL and all of
 * buf was taken. Call again with the rest. */
size_t linebuf_feed(LineBuf *b, const char *buf, size_t len, char **ret_line, size_t *ret_len);

/* At the end of the stream: the unfinished last line (NULL if there is none), as linebuf_feed
 * returns one; b is empty afterwards. */
char *linebuf_flush(LineBuf *b, size_t *ret_len);
