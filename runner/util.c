/* util.c: the helpers of util.h that are not inline. */
#define _GNU_SOURCE
#include <stdio.h>

#include "util.h"

int strf(char **ret, const char *fmt, ...) {
        va_list ap;
        int r;

        va_start(ap, fmt);
        r = vasprintf(ret, fmt, ap);
        va_end(ap);
        if (r < 0)
                *ret = NULL;
        return r < 0 ? -ENOMEM : 0;
}
