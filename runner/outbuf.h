/* outbuf.h: what is still to be written to a non-blocking socket (QEMU's backdoor shell, QMP). */
#pragma once

#include <stddef.h>

typedef struct OutBuf {
        char *data;
        size_t len, alloc;
} OutBuf;

/* 0 or -ENOMEM. */
int outbuf_append(OutBuf *b, const char *s, size_t len);

/* Sends what the socket takes now. On a hard error (the peer went away) the rest is dropped: the
 * reader sees the hangup. */
void outbuf_flush(OutBuf *b, int fd);

void outbuf_free(OutBuf *b);
