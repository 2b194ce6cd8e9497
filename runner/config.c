/* config.c: reads the NixOS test driver's JSON configuration into a Config and says exactly
 * which key of which file is wrong when it cannot. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include <fcntl.h>
#include <jansson.h>
#include <stdarg.h>

#include "config.h"
#include "util.h"

/* Callers turn seconds into microseconds in a uint64_t; this keeps that far from overflow. */
#define GLOBAL_TIMEOUT_MAX 1e9
/* A driver config is a few kB; this only stops `--config /dev/zero` from eating memory. */
#define CONFIG_FILE_MAX (16U * 1024U * 1024U)

static inline void config_freep(Config **c) {
        config_free(*c);
}

_printf_(4, 5)
static int fail(char **ret_error, const char *file, const char *path, const char *fmt, ...) {
        _cleanup_free_ char *msg = NULL;
        va_list ap;
        int r;

        va_start(ap, fmt);
        r = vasprintf(&msg, fmt, ap);
        va_end(ap);
        if (r < 0)
                return -ENOMEM;
        if (path)
                r = asprintf(ret_error, "%s: %s: %s", file, path, msg);
        else
                r = asprintf(ret_error, "%s: %s", file, msg);
        if (r < 0) {
                *ret_error = NULL;
                return -ENOMEM;
        }
        return -EINVAL;
}

static const char *type_name(const json_t *v) {
        switch (json_typeof(v)) {
        case JSON_OBJECT:
                return "object";
        case JSON_ARRAY:
                return "array";
        case JSON_STRING:
                return "string";
        case JSON_INTEGER:
        case JSON_REAL:
                return "number";
        case JSON_TRUE:
        case JSON_FALSE:
                return "boolean";
        case JSON_NULL:
                return "null";
        }
        return "unknown";
}

/* A JSON string literal in printable ASCII, so that a name holding a newline or an escape
 * sequence cannot break the one-line message or the terminal. */
static char *quote(const char *s) {
        json_auto_t *j = json_string(s);
        _cleanup_free_ char *q = NULL;
        char *out, *p;

        if (!j)
                return NULL;
        q = json_dumps(j, JSON_ENCODE_ANY | JSON_ENSURE_ASCII);
        if (!q)
                return NULL;
        /* jansson leaves DEL as it is. */
        out = malloc(strlen(q) * 6 + 1);
        if (!out)
                return NULL;
        p = out;
        for (const char *i = q; *i; i++)
                if (*i == 0x7f)
                        p = stpcpy(p, "\\u007F");
                else
                        *p++ = *i;
        *p = '\0';
        return out;
}

bool config_machine_name_is_valid(const char *name) {
        size_t n = strlen(name);

        if (n < 1 || n > CONFIG_MACHINE_NAME_MAX || name[0] == '-')
                return false;
        return strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-") == n;
}

void config_free(Config *c) {
        if (!c)
                return;
        for (size_t i = 0; i < c->n_machines; i++) {
                free(c->machines[i].name);
                free(c->machines[i].start_script);
        }
        free(c->machines);
        free(c->vlans);
        free(c->test_script);
        free(c);
}

static const char *kind_key(ConfigMachineKind kind) {
        return kind == CONFIG_VM ? "vms" : "containers";
}

/* other: the map of the other kind when it was read already, else NULL. Names are unique
 * within a map (duplicate keys are refused), so only the other map can hold a clash. */
static int parse_machines(Config *c, ConfigMachineKind kind, json_t *map, json_t *other, const char *file,
                          char **ret_error) {
        const char *section = kind_key(kind);
        const char *key;
        json_t *entry;

        if (!json_is_object(map))
                return fail(ret_error, file, section, "expected an object mapping machine names to {\"name\", \"start_script\"}, got %s",
                            type_name(map));

        /* Room for the whole map at once: growing by one is quadratic for big configs. */
        if (json_object_size(map) > 0) {
                ConfigMachine *m = reallocarray(c->machines, c->n_machines + json_object_size(map), sizeof(ConfigMachine));

                if (!m)
                        return -ENOMEM;
                c->machines = m;
        }

        json_object_foreach(map, key, entry) {
                _cleanup_free_ char *path = NULL, *name_path = NULL, *script_path = NULL;
                _cleanup_free_ char *name = NULL, *script = NULL;
                json_t *v;

                if (!config_machine_name_is_valid(key)) {
                        _cleanup_free_ char *q = quote(key);

                        if (!q)
                                return -ENOMEM;
                        return fail(ret_error, file, section,
                                    "invalid machine name %s: use 1 to %d letters, digits, '_' and '-', not starting with '-'",
                                    q, CONFIG_MACHINE_NAME_MAX);
                }

                /* The key is a valid name now, so it needs no quoting in a path. */
                if (asprintf(&path, "%s.%s", section, key) < 0) {
                        path = NULL;
                        return -ENOMEM;
                }
                if (asprintf(&name_path, "%s.name", path) < 0) {
                        name_path = NULL;
                        return -ENOMEM;
                }
                if (asprintf(&script_path, "%s.start_script", path) < 0) {
                        script_path = NULL;
                        return -ENOMEM;
                }

                if (!json_is_object(entry))
                        return fail(ret_error, file, path, "expected an object with \"name\" and \"start_script\", got %s",
                                    type_name(entry));

                /* pydantic wants "name"; the key is the real name since nixpkgs 26.05, so a
                 * missing one costs nothing and a different one is a generator bug. */
                v = json_object_get(entry, "name");
                if (v) {
                        if (!json_is_string(v))
                                return fail(ret_error, file, name_path, "expected a string, got %s", type_name(v));
                        if (!streq(json_string_value(v), key)) {
                                _cleanup_free_ char *qn = quote(json_string_value(v)), *qk = quote(key);

                                if (!qn || !qk)
                                        return -ENOMEM;
                                return fail(ret_error, file, name_path, "%s does not match the machine's key %s", qn, qk);
                        }
                }

                v = json_object_get(entry, "start_script");
                if (!v)
                        return fail(ret_error, file, path,
                                    "missing \"start_script\" (the path of the machine's run-%s-%s script)",
                                    key, kind == CONFIG_VM ? "vm" : "nspawn");
                if (!json_is_string(v))
                        return fail(ret_error, file, script_path, "expected a string, got %s", type_name(v));
                if (json_string_length(v) == 0)
                        return fail(ret_error, file, script_path, "empty path");

                if (other && json_object_get(other, key))
                        return fail(ret_error, file, path,
                                    "the name \"%s\" is already used by %s.%s; machine names must be unique across vms and containers",
                                    key, kind_key(kind == CONFIG_VM ? CONFIG_CONTAINER : CONFIG_VM), key);

                name = strdup(key);
                script = strdup(json_string_value(v));
                if (!name || !script)
                        return -ENOMEM;
                c->machines[c->n_machines++] = (ConfigMachine) {
                        .name = TAKE_PTR(name),
                        .start_script = TAKE_PTR(script),
                        .kind = kind,
                };
        }
        return 0;
}

static int parse_vlans(Config *c, json_t *list, const char *file, char **ret_error) {
        bool seen[CONFIG_VLAN_MAX + 1] = {};
        size_t i;
        json_t *v;

        if (!json_is_array(list))
                return fail(ret_error, file, "vlans", "expected an array of VLAN numbers, got %s", type_name(list));

        free(c->vlans);
        c->n_vlans = 0;
        /* Unique values fit in CONFIG_VLAN_MAX + 1 slots, however long the list. */
        c->vlans = calloc(json_array_size(list) < CONFIG_VLAN_MAX + 1 ? json_array_size(list) ?: 1 : CONFIG_VLAN_MAX + 1,
                          sizeof(unsigned));
        if (!c->vlans)
                return -ENOMEM;

        json_array_foreach(list, i, v) {
                json_int_t n;
                char path[32];

                snprintf(path, sizeof path, "vlans[%zu]", i);
                if (json_is_real(v)) {
                        double d = json_real_value(v);

                        /* pydantic takes 2.0 for an int; so do we, but not 2.5. */
                        if (d < 0 || d > CONFIG_VLAN_MAX || (double) (json_int_t) d != d)
                                return fail(ret_error, file, path, "expected an integer from 0 to %d, got %.15g",
                                            CONFIG_VLAN_MAX, d);
                        n = (json_int_t) d;
                } else if (json_is_integer(v))
                        n = json_integer_value(v);
                else
                        return fail(ret_error, file, path, "expected an integer from 0 to %d, got %s",
                                    CONFIG_VLAN_MAX, type_name(v));
                if (n < 0 || n > CONFIG_VLAN_MAX)
                        return fail(ret_error, file, path, "expected an integer from 0 to %d, got %" JSON_INTEGER_FORMAT,
                                    CONFIG_VLAN_MAX, n);

                /* nixpkgs already deduplicates; out-of-tree generators may not. */
                if (!seen[n]) {
                        seen[n] = true;
                        c->vlans[c->n_vlans++] = (unsigned) n;
                }
        }
        return 0;
}

static int parse_global_timeout(Config *c, json_t *v, const char *file, char **ret_error) {
        double d;

        if (!json_is_number(v))
                return fail(ret_error, file, "global_timeout", "expected a positive number of seconds, got %s", type_name(v));
        d = json_number_value(v);
        if (!(d > 0))
                return fail(ret_error, file, "global_timeout", "expected a positive number of seconds, got %.15g", d);
        if (d > GLOBAL_TIMEOUT_MAX)
                return fail(ret_error, file, "global_timeout", "%.15g seconds is too long (at most %.0f)", d, GLOBAL_TIMEOUT_MAX);
        c->global_timeout = d;
        return 0;
}

/* jansson quotes the offending input ("near '...'"), which may hold any byte. */
static char *sanitize(const char *s) {
        size_t n = strlen(s);
        char *out = malloc(n * 4 + 1), *p = out;

        if (!out)
                return NULL;
        for (const unsigned char *i = (const unsigned char *) s; *i; i++) {
                if (*i < 0x20 || *i >= 0x7f)
                        p += sprintf(p, "\\x%02x", *i);
                else
                        *p++ = (char) *i;
        }
        *p = '\0';
        return out;
}

int config_parse_string(const char *json, size_t len, const char *filename, Config **ret, char **ret_error) {
        _cleanup_(config_freep) Config *c = NULL;
        json_auto_t *root = NULL;
        const char *file = filename ?: "config";
        json_t *v, *vms = NULL, *containers = NULL;
        json_error_t err;
        const char *key;
        int r;

        *ret = NULL;
        *ret_error = NULL;

        /* Duplicate keys would make one of two machines or values silently vanish. */
        root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &err);
        if (!root) {
                _cleanup_free_ char *text = NULL;

                if (json_error_code(&err) == json_error_out_of_memory)
                        return -ENOMEM;
                text = sanitize(err.text);
                if (!text)
                        return -ENOMEM;
                if (err.line > 0)
                        r = asprintf(ret_error, "%s:%d:%d: %s", file, err.line, err.column, text);
                else
                        r = asprintf(ret_error, "%s: %s", file, text);
                if (r < 0) {
                        *ret_error = NULL;
                        return -ENOMEM;
                }
                return -EINVAL;
        }

        if (!json_is_object(root))
                return fail(ret_error, file, NULL, "expected a JSON object at the top level, got %s", type_name(root));

        c = calloc(1, sizeof(Config));
        if (!c)
                return -ENOMEM;
        c->global_timeout = CONFIG_DEFAULT_GLOBAL_TIMEOUT;

        /* In file order, so that machines keep the order the file gives them. */
        json_object_foreach(root, key, v) {
                if (streq(key, "vms")) {
                        r = parse_machines(c, CONFIG_VM, v, containers, file, ret_error);
                        vms = v;
                } else if (streq(key, "containers")) {
                        r = parse_machines(c, CONFIG_CONTAINER, v, vms, file, ret_error);
                        containers = v;
                }
                else if (streq(key, "vlans"))
                        r = parse_vlans(c, v, file, ret_error);
                else if (streq(key, "global_timeout"))
                        r = parse_global_timeout(c, v, file, ret_error);
                else if (streq(key, "enable_ssh_backdoor")) {
                        if (!json_is_boolean(v))
                                return fail(ret_error, file, key, "expected true or false, got %s", type_name(v));
                        c->enable_ssh_backdoor = json_is_true(v);
                        r = 0;
                } else if (streq(key, "test_script")) {
                        if (!json_is_string(v))
                                return fail(ret_error, file, key, "expected a string (the test script's path), got %s",
                                            type_name(v));
                        if (json_string_length(v) == 0)
                                return fail(ret_error, file, key, "empty path");
                        c->test_script = strdup(json_string_value(v));
                        r = c->test_script ? 0 : -ENOMEM;
                } else
                        r = 0;
                if (r < 0)
                        return r;
        }

        *ret = TAKE_PTR(c);
        return 0;
}

int config_load(const char *path, Config **ret, char **ret_error) {
        _cleanup_close_ int fd = -1;
        _cleanup_free_ char *buf = NULL;
        size_t size = 0, alloc = 0;

        *ret = NULL;
        *ret_error = NULL;

        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return fail(ret_error, path, NULL, "cannot open the config file: %m");

        /* Read to EOF rather than trust st_size: --config <(generate) gives a pipe. */
        for (;;) {
                ssize_t n;

                if (size == alloc) {
                        char *nb;

                        if (alloc >= CONFIG_FILE_MAX)
                                return fail(ret_error, path, NULL, "the config file is larger than %u MiB; is it the right file?",
                                            CONFIG_FILE_MAX / (1024U * 1024U));
                        alloc = alloc ? alloc * 2 : 16384;
                        nb = realloc(buf, alloc);
                        if (!nb)
                                return -ENOMEM;
                        buf = nb;
                }
                n = read(fd, buf + size, alloc - size);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return fail(ret_error, path, NULL, "cannot read the config file: %m");
                }
                if (n == 0)
                        break;
                size += (size_t) n;
        }

        return config_parse_string(buf ?: "", size, path, ret, ret_error);
}

int config_machine_name_from_script(const char *path, char **ret) {
        static const char *const suffixes[] = { "-vm", "-nspawn" };
        const char *base = strrchr(path, '/');
        size_t n;

        *ret = NULL;
        base = base ? base + 1 : path;
        n = strlen(base);

        /* re.search("run-(.+)-vm$"): the leftmost "run-" wins, and (.+) is not empty. */
        for (size_t s = 0; s < ELEMENTSOF(suffixes); s++) {
                size_t sl = strlen(suffixes[s]);

                if (n < 4 + 1 + sl || !streq(base + n - sl, suffixes[s]))
                        continue;
                for (const char *p = base; p + 4 + 1 + sl <= base + n; p++)
                        if (startswith(p, "run-")) {
                                *ret = strndup(p + 4, (size_t) (base + n - sl - (p + 4)));
                                return *ret ? 0 : -ENOMEM;
                        }
        }
        return -EINVAL;
}
