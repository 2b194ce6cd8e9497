/* outbuf.c: buffered writes to a non-blocking socket, for the VM backend's two channels. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "outbuf.h"

int outbuf_append(OutBuf *b, const char *s, size_t len) {
        if (b->len + len > b->alloc) {
                size_t a = (b->len + len) * 2;
                char *p = realloc(b->data, a);
                if (!p)
                        return -ENOMEM;
                b->data = p;
                b->alloc = a;
        }
        memcpy(b->data + b->len, s, len);
        b->len += len;
        return 0;
}

void outbuf_flush(OutBuf *b, int fd) {
        while (b->len > 0 && fd >= 0) {
                ssize_t n = send(fd, b->data, b->len, MSG_NOSIGNAL | MSG_DONTWAIT);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno != EAGAIN)
                                b->len = 0;
                        return;
                }
                memmove(b->data, b->data + n, b->len - (size_t) n);
                b->len -= (size_t) n;
        }
}

void outbuf_free(OutBuf *b) {
        free(b->data);
        *b = (OutBuf) {};
}
