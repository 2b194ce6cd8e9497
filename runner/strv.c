/* strv.c: NULL-terminated string vectors, shared by the container and VM backends. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "strv.h"

char **strv_copy(char **v) {
        size_t n = 0;
        char **w;

        if (!v)
                return NULL;
        while (v[n])
                n++;
        w = calloc(n + 1, sizeof(char *));
        if (!w)
                return NULL;
        for (size_t i = 0; i < n; i++)
                if (!(w[i] = strdup(v[i]))) {
                        strv_free(w);
                        return NULL;
                }
        return w;
}

static int strv_take(char ***v, size_t *n, char *s) {
        char **w;

        if (!s)
                return -ENOMEM;
        w = realloc(*v, (*n + 2) * sizeof(char *));
        if (!w) {
                free(s);
                return -ENOMEM;
        }
        *v = w;
        w[*n] = s;
        w[++*n] = NULL;
        return 0;
}

int strv_push(char ***v, size_t *n, const char *s) {
        return strv_take(v, n, strdup(s));
}

int strv_pushf(char ***v, size_t *n, const char *fmt, ...) {
        char *s;
        va_list ap;
        int r;

        va_start(ap, fmt);
        r = vasprintf(&s, fmt, ap);
        va_end(ap);
        return strv_take(v, n, r < 0 ? NULL : s);
}
