/* unitname.c: normalise and validate systemd unit names the way systemctl does, and map them to
 * D-Bus object paths. Mirrors systemd's unit-name.c and bus-label.c, minus globbing. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "unitname.h"
#include "util.h"

#define UNIT_OBJECT_PREFIX "/org/freedesktop/systemd1/unit"

/* systemd's VALID_CHARS for unit names; '@' is handled apart because it has a structure. */
#define VALID_CHARS "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ:-_.\\"

static const char *const unit_types[] = {
        "service", "mount", "swap", "socket", "target", "device",
        "automount", "timer", "path", "slice", "scope",
};

static bool has_unit_type_suffix(const char *name) {
        const char *dot = strrchr(name, '.');

        if (!dot)
                return false;
        for (size_t i = 0; i < ELEMENTSOF(unit_types); i++)
                if (streq(dot + 1, unit_types[i]))
                        return true;
        return false;
}

/* Returns NULL when valid, else a static reason. Shared by the bool test and the error text. */
static const char *unit_name_problem(const char *n, char *bad_char) {
        const char *dot, *at = NULL;

        if (!n || !*n)
                return "it is empty";
        if (strlen(n) > UNITNAME_MAX)
                return "it is longer than 255 characters";
        for (const char *i = n; *i; i++)
                if (*i != '@' && !strchr(VALID_CHARS, *i)) {
                        *bad_char = *i;
                        return "bad character";
                }
        dot = strrchr(n, '.');
        if (!dot || !has_unit_type_suffix(n))
                return "it has no unit type suffix such as .service or .target";
        if (dot == n)
                return "there is nothing before the type suffix";
        at = strchr(n, '@');
        if (at == n)
                return "there is nothing before the \"@\"";
        if (at && at + 1 == dot)
                return "it is a template; name an instance, such as \"foo@NAME.service\"";
        return NULL;
}

bool unitname_is_valid(const char *name) {
        char c = 0;

        return unit_name_problem(name, &c) == NULL;
}

static int set_error(char **ret_error, const char *fmt, ...) _printf_(2, 3);
static int set_error(char **ret_error, const char *fmt, ...) {
        va_list ap;

        if (!ret_error)
                return -EINVAL;
        va_start(ap, fmt);
        if (vasprintf(ret_error, fmt, ap) < 0) {
                *ret_error = NULL;
                va_end(ap);
                return -ENOMEM;
        }
        va_end(ap);
        return -EINVAL;
}

static char hexchar(int x) {
        return "0123456789abcdef"[x & 15];
}

static char *escape_char(char c, char *t) {
        *t++ = '\\';
        *t++ = 'x';
        *t++ = hexchar((unsigned char) c >> 4);
        *t++ = hexchar(c);
        return t;
}

/* Does path (absolute) start with the directory prefix, compared component by component? */
static bool path_under(const char *path, const char *dir) {
        for (;;) {
                while (*path == '/')
                        path++;
                while (*dir == '/')
                        dir++;
                if (!*dir)
                        return true;
                if (!*path)
                        return false;
                size_t a = strcspn(path, "/"), b = strcspn(dir, "/");
                if (a != b || memcmp(path, dir, a) != 0)
                        return false;
                path += a;
                dir += b;
        }
}

int unitname_from_path(const char *path, const char *suffix, char **ret) {
        _cleanup_free_ char *s = NULL;
        char *t;
        bool any = false;

        if (!path || path[0] != '/' || !suffix || !ret)
                return -EINVAL;

        /* 4 bytes per escaped character, the suffix, a NUL. */
        s = malloc(strlen(path) * 4 + strlen(suffix) + 2);
        if (!s)
                return -ENOMEM;
        t = s;

        /* Walk the components as path_simplify() would: no empty ones, no ".", and ".." refused,
         * since a unit name cannot say what it would resolve to. */
        for (const char *p = path; *p; ) {
                size_t n;

                while (*p == '/')
                        p++;
                n = strcspn(p, "/");
                if (n == 0)
                        break;
                if (n == 1 && p[0] == '.') {
                        p += n;
                        continue;
                }
                if (n == 2 && p[0] == '.' && p[1] == '.')
                        return -EINVAL;
                if (any)
                        *t++ = '-';
                for (size_t i = 0; i < n; i++) {
                        char c = p[i];
                        /* A leading dot would make a hidden unit name (systemd escapes it). */
                        if ((!any && i == 0 && c == '.') || c == '-' || c == '\\' || !strchr(VALID_CHARS, c))
                                t = escape_char(c, t);
                        else
                                *t++ = c;
                }
                any = true;
                p += n;
        }
        if (!any)
                *t++ = '-'; /* the root directory */
        strcpy(t, suffix);

        if (!unitname_is_valid(s))
                return -EINVAL;
        *ret = TAKE_PTR(s);
        return 0;
}

int unitname_normalize(const char *name, char **ret, char **ret_error) {
        _cleanup_free_ char *s = NULL;
        const char *why;
        char bad = 0;
        int r;

        if (ret_error)
                *ret_error = NULL;
        if (!name || !*name)
                return set_error(ret_error, "invalid unit name \"\": it is empty");

        if (name[0] == '/') {
                bool dev = path_under(name, "/dev") || path_under(name, "/sys");

                r = unitname_from_path(name, dev ? ".device" : ".mount", &s);
                if (r == -ENOMEM)
                        return r;
                if (r < 0)
                        return set_error(ret_error,
                                         "invalid unit name \"%s\": a path must be absolute and normalised "
                                         "(no \"..\") and give a unit name of at most %d characters",
                                         name, UNITNAME_MAX);
                *ret = TAKE_PTR(s);
                return 0;
        }

        if (has_unit_type_suffix(name))
                s = strdup(name);
        else if (asprintf(&s, "%s.service", name) < 0)
                s = NULL;
        if (!s)
                return -ENOMEM;

        why = unit_name_problem(s, &bad);
        if (why && bad && (unsigned char) bad >= ' ' && (unsigned char) bad < 0x7f)
                return set_error(ret_error,
                                 "invalid unit name \"%s\": character '%c' is not allowed "
                                 "(use A-Z a-z 0-9 : _ . - @ \\, and \\xNN escapes for anything else)",
                                 name, bad);
        if (why && bad)
                return set_error(ret_error,
                                 "invalid unit name \"%s\": byte 0x%02x is not allowed "
                                 "(use A-Z a-z 0-9 : _ . - @ \\, and \\xNN escapes for anything else)",
                                 name, (unsigned char) bad);
        if (why)
                return set_error(ret_error, "invalid unit name \"%s\": %s", name, why);

        *ret = TAKE_PTR(s);
        return 0;
}

int unitname_to_object_path(const char *unit, char **ret) {
        _cleanup_free_ char *s = NULL;
        char *t;

        if (!unit || !ret)
                return -EINVAL;

        s = malloc(strlen(UNIT_OBJECT_PREFIX) + 1 + strlen(unit) * 3 + 2);
        if (!s)
                return -ENOMEM;
        t = stpcpy(s, UNIT_OBJECT_PREFIX "/");

        /* bus_label_escape(): everything but [A-Za-z] (and digits after the first character)
         * becomes _xx; an empty label is "_". */
        if (!*unit)
                *t++ = '_';
        for (const char *f = unit; *f; f++) {
                char c = *f;
                if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (f > unit && c >= '0' && c <= '9'))
                        *t++ = c;
                else {
                        *t++ = '_';
                        *t++ = hexchar((unsigned char) c >> 4);
                        *t++ = hexchar(c);
                }
        }
        *t = 0;
        *ret = TAKE_PTR(s);
        return 0;
}
