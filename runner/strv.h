/* strv.h: NULL-terminated string vectors (argv, environments), as systemd's strv.h names them.
 * strv_free is in util.h. */
#pragma once

#include <stddef.h>

#include "util.h"

/* A deep copy; NULL for NULL or on allocation failure. */
char **strv_copy(char **v);

/* Appends a copy of s (or the formatted text) to *v, which holds *n entries and stays
 * NULL-terminated; *v may start NULL with *n 0. 0 or -ENOMEM (*v unchanged but for capacity). */
int strv_push(char ***v, size_t *n, const char *s);
int strv_pushf(char ***v, size_t *n, const char *fmt, ...) _printf_(3, 4);
