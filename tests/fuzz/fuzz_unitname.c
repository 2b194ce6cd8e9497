/* fuzz_unitname.c: fuzz target for unitname.c, which turns what a test script names
 * (wait_for_unit("nginx"), a path) into a systemd unit name and its D-Bus object path. The input,
 * up to its first NUL, is a name and a path. Properties: what normalize accepts is a valid unit
 * name and normalizes to itself; a valid name is left as it is; a name from a path is valid; the
 * object path is one sd-bus accepts and decodes back to the unit. Built as fuzz.h says. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include <systemd/sd-bus.h>

#include "fuzz.h"
#include "unitname.h"
#include "util.h"

#define OBJECT_PREFIX "/org/freedesktop/systemd1/unit"

static size_t n_normalized, n_rejected, n_from_path;

static void check_object_path(const char *unit) {
        char *path = NULL, *decoded = NULL;

        fuzz_check(unitname_to_object_path(unit, &path) == 0);
        fuzz_check(sd_bus_object_path_is_valid(path));
        fuzz_check(sd_bus_path_decode(path, OBJECT_PREFIX, &decoded) > 0);
        fuzz_check(decoded && streq(decoded, unit));
        free(decoded);
        free(path);
}

static void check_normalize(const char *name) {
        char *unit = NULL, *again = NULL, *error = NULL;
        int r;

        r = unitname_normalize(name, &unit, &error);
        if (r == -ENOMEM)
                return;
        if (r < 0) {
                fuzz_check(r == -EINVAL && error && error[0] && !unit);
                fuzz_check(!unitname_is_valid(name));
                free(error);
                n_rejected++;
                return;
        }
        fuzz_check(r == 0 && unit && !error);
        fuzz_check(unitname_is_valid(unit));
        fuzz_check(strlen(unit) <= UNITNAME_MAX);
        /* A name already valid is what it names. */
        fuzz_check(!unitname_is_valid(name) || streq(unit, name));
        fuzz_check(unitname_normalize(unit, &again, NULL) == 0 && streq(again, unit));
        check_object_path(unit);
        n_normalized++;
        free(again);
        free(unit);
}

static void check_from_path(const char *path, const char *suffix) {
        char *unit = NULL;
        int r = unitname_from_path(path, suffix, &unit);

        if (r == -ENOMEM)
                return;
        if (r < 0) {
                fuzz_check(r == -EINVAL && !unit);
                return;
        }
        fuzz_check(unit && unitname_is_valid(unit));
        fuzz_check(strlen(unit) > strlen(suffix) && streq(unit + strlen(unit) - strlen(suffix), suffix));
        check_object_path(unit);
        n_from_path++;
        free(unit);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        char *s = fuzz_dup(data, size, 1);

        check_normalize(s);
        check_from_path(s, ".mount");
        check_from_path(s, ".device");
        free(s);
        return 0;
}

static const char *const tokens[] = {
        ".service", ".mount", ".device", ".socket", ".target", ".timer", ".slice", ".scope", ".path",
        ".automount", ".swap", ".", "@", "-", "_", "\\", "\\x2d", "/", "//", "/dev/", "/sys/", "/..", "/./",
        "..", ":", "nginx", "getty@tty1", "foo@", " ", "\xc3\xa9",
};

static void summary(void) {
        fprintf(stderr, "fuzz_unitname: %zu normalized, %zu rejected, %zu names from paths\n", n_normalized,
                n_rejected, n_from_path);
}

const FuzzTarget fuzz_target = {
        .name = "unitname",
        .tokens = tokens,
        .n_tokens = ELEMENTSOF(tokens),
        .summary = summary,
};
