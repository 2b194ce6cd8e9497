/* unitprops.c: `systemctl show` rebuilt from one GetAll reply: each property of systemd's unit
 * interfaces formatted as systemctl 252 prints it. Pure: a message in, lines out. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <time.h>
#include <systemd/sd-bus.h>

#include "unitprops.h"
#include "util.h"



typedef struct Lines {
        char **v;
        size_t n, cap;
        bool show_empty;
} Lines;

static int lines_add(Lines *l, const char *name, const char *value) {
        char *s;

        if (!l->show_empty && isempty(value))
                return 0;
        if (l->n + 2 > l->cap) {
                size_t cap = l->cap ? l->cap * 2 : 64;
                char **v = realloc(l->v, cap * sizeof *v);

                if (!v)
                        return -ENOMEM;
                l->v = v;
                l->cap = cap;
        }
        if (asprintf(&s, "%s=%s", name, value ? value : "") < 0)
                return -ENOMEM;
        l->v[l->n++] = s;
        l->v[l->n] = NULL;
        return 0;
}

static int lines_addf(Lines *l, const char *name, const char *fmt, ...) _printf_(3, 4);
static int lines_addf(Lines *l, const char *name, const char *fmt, ...) {
        _cleanup_free_ char *s = NULL;
        va_list ap;
        int r;

        va_start(ap, fmt);
        r = vasprintf(&s, fmt, ap);
        va_end(ap);
        if (r < 0)
                return -ENOMEM;
        return lines_add(l, name, s);
}

/* Space-separated pieces of one value. */
typedef struct Buf {
        char *s;
        size_t n;
} Buf;

static int buf_add(Buf *b, const char *piece) {
        size_t k = strlen(piece);
        char *s = realloc(b->s, b->n + k + 2);

        if (!s)
                return -ENOMEM;
        b->s = s;
        if (b->n > 0)
                b->s[b->n++] = ' ';
        memcpy(b->s + b->n, piece, k + 1);
        b->n += k;
        return 0;
}

#define USEC_PER_SEC 1000000ULL
#define USEC_PER_MINUTE (60 * USEC_PER_SEC)

/* systemd's format_timespan(t, 0). */
static void format_timespan(char *buf, size_t l, uint64_t t) {
        static const struct {
                const char *suffix;
                uint64_t usec;
        } table[] = {
                { "y", 31557600ULL * USEC_PER_SEC }, { "month", 2629800ULL * USEC_PER_SEC },
                { "w", 7ULL * 24 * 3600 * USEC_PER_SEC }, { "d", 24ULL * 3600 * USEC_PER_SEC },
                { "h", 3600ULL * USEC_PER_SEC }, { "min", USEC_PER_MINUTE }, { "s", USEC_PER_SEC },
                { "ms", 1000ULL }, { "us", 1ULL },
        };
        char *p = buf;

        if (t == UINT64_MAX) {
                snprintf(buf, l, "infinity");
                return;
        }
        if (t == 0) {
                snprintf(buf, l, "0");
                return;
        }
        *p = 0;
        for (size_t i = 0; i < ELEMENTSOF(table) && t > 0; i++) {
                uint64_t a, b;
                int k;

                if (t < table[i].usec)
                        continue;
                if (l <= 1)
                        break;
                a = t / table[i].usec;
                b = t % table[i].usec;
                if (t < USEC_PER_MINUTE && b > 0) {
                        int j = 0;

                        for (uint64_t cc = table[i].usec; cc > 1; cc /= 10)
                                j++;
                        k = snprintf(p, l, "%s%" PRIu64 ".%0*" PRIu64 "%s", p > buf ? " " : "", a, j, b,
                                     table[i].suffix);
                        t = 0;
                } else {
                        k = snprintf(p, l, "%s%" PRIu64 "%s", p > buf ? " " : "", a, table[i].suffix);
                        t = b;
                }
                if (k < 0 || (size_t) k >= l)
                        break;
                p += k;
                l -= k;
        }
}

/* systemd's FORMAT_TIMESTAMP(): NULL (an empty value) when unset. */
static const char *format_timestamp(char *buf, size_t l, uint64_t t) {
        static const char weekdays[7][4] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
        time_t sec;
        struct tm tm;
        size_t n;

        if (t == 0 || t == UINT64_MAX)
                return NULL;
        sec = (time_t) (t / USEC_PER_SEC);
        if (!localtime_r(&sec, &tm))
                return NULL;
        memcpy(buf, weekdays[tm.tm_wday], 3);
        buf[3] = ' ';
        if (strftime(buf + 4, l - 4, "%Y-%m-%d %H:%M:%S", &tm) == 0)
                return NULL;
        n = strlen(buf);
        if (!isempty(tm.tm_zone) && n + 1 + strlen(tm.tm_zone) + 1 <= l)
                snprintf(buf + n, l - n, " %s", tm.tm_zone);
        return buf;
}

/* systemd's shell_maybe_quote(s, 0), for string list items. */
static char *shell_maybe_quote(const char *s) {
        const char *p;
        char *r, *t;

        for (p = s; *p; p++)
                if ((unsigned char) *p < ' ' || *p == 127 || strchr(" \t\n\r\"\\`$*?['()<>|&;!", *p))
                        break;
        if (!*p)
                return strdup(s);
        r = malloc(strlen(s) * 2 + 3);
        if (!r)
                return NULL;
        t = r;
        *t++ = '"';
        for (p = s; *p; p++) {
                if (strchr("\"\\`$", *p))
                        *t++ = '\\';
                *t++ = *p;
        }
        *t++ = '"';
        *t = 0;
        return r;
}

static char *base64(const uint8_t *p, size_t n) {
        static const char table[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        char *r = malloc((n + 2) / 3 * 4 + 1), *t = r;

        if (!r)
                return NULL;
        for (size_t i = 0; i < n; i += 3) {
                uint32_t v = (uint32_t) p[i] << 16 | (i + 1 < n ? (uint32_t) p[i + 1] << 8 : 0) |
                             (i + 2 < n ? p[i + 2] : 0);

                *t++ = table[(v >> 18) & 63];
                *t++ = table[(v >> 12) & 63];
                *t++ = i + 1 < n ? table[(v >> 6) & 63] : '=';
                *t++ = i + 2 < n ? table[v & 63] : '=';
        }
        *t = 0;
        return r;
}

static const char *signal_name(int sig, char *buf, size_t l) {
        const char *s = sig > 0 ? sigabbrev_np(sig) : NULL;

        if (s)
                return s;
        if (sig >= SIGRTMIN && sig <= SIGRTMAX)
                snprintf(buf, l, "RTMIN+%d", sig - SIGRTMIN);
        else
                snprintf(buf, l, "%d", sig);
        return buf;
}

static const char *sigchld_code(int code) {
        switch (code) {
        case CLD_EXITED: return "exited";
        case CLD_KILLED: return "killed";
        case CLD_DUMPED: return "dumped";
        case CLD_TRAPPED: return "trapped";
        case CLD_STOPPED: return "stopped";
        case CLD_CONTINUED: return "continued";
        default: return NULL;
        }
}

static const struct {
        unsigned long flag;
        const char *name;
} namespaces[] = {
        { CLONE_NEWCGROUP, "cgroup" }, { CLONE_NEWIPC, "ipc" }, { CLONE_NEWNET, "net" }, { CLONE_NEWNS, "mnt" },
        { CLONE_NEWPID, "pid" }, { CLONE_NEWUSER, "user" }, { CLONE_NEWUTS, "uts" },
};
#define NAMESPACE_FLAGS_ALL                                                                                 \
        ((uint64_t) (CLONE_NEWCGROUP | CLONE_NEWIPC | CLONE_NEWNET | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWUSER | \
                     CLONE_NEWUTS))

static char *namespace_flags_to_string(uint64_t flags) {
        Buf b = {};

        for (size_t i = 0; i < ELEMENTSOF(namespaces); i++)
                if ((flags & namespaces[i].flag) && buf_add(&b, namespaces[i].name) < 0) {
                        free(b.s);
                        return NULL;
                }
        return b.s ? b.s : strdup("");
}

/* systemd's capability_set_to_string_alloc(): names up to the kernel's last capability. */
static char *capability_set_to_string(uint64_t set) {
        static const char *const names[] = {
                "cap_chown", "cap_dac_override", "cap_dac_read_search", "cap_fowner", "cap_fsetid", "cap_kill",
                "cap_setgid", "cap_setuid", "cap_setpcap", "cap_linux_immutable", "cap_net_bind_service",
                "cap_net_broadcast", "cap_net_admin", "cap_net_raw", "cap_ipc_lock", "cap_ipc_owner",
                "cap_sys_module", "cap_sys_rawio", "cap_sys_chroot", "cap_sys_ptrace", "cap_sys_pacct",
                "cap_sys_admin", "cap_sys_boot", "cap_sys_nice", "cap_sys_resource", "cap_sys_time",
                "cap_sys_tty_config", "cap_mknod", "cap_lease", "cap_audit_write", "cap_audit_control",
                "cap_setfcap", "cap_mac_override", "cap_mac_admin", "cap_syslog", "cap_wake_alarm",
                "cap_block_suspend", "cap_audit_read", "cap_perfmon", "cap_bpf", "cap_checkpoint_restore",
        };
        static unsigned last = 0;
        Buf b = {};

        if (last == 0) {
                _cleanup_fclose_ FILE *f = fopen("/proc/sys/kernel/cap_last_cap", "re");

                if (!f || fscanf(f, "%u", &last) != 1 || last > 63)
                        last = ELEMENTSOF(names) - 1;
        }
        for (unsigned i = 0; i <= last; i++) {
                char num[16];
                const char *p = i < ELEMENTSOF(names) ? names[i] : num;

                if (!(set & (UINT64_C(1) << i)))
                        continue;
                snprintf(num, sizeof num, "%u", i);
                if (buf_add(&b, p) < 0) {
                        free(b.s);
                        return NULL;
                }
        }
        return b.s ? b.s : strdup("");
}

/* A journal field assignment as systemctl accepts it for LogExtraFields: KEY=value, KEY of at most
 * 64 of [A-Z0-9_] not starting with a digit or '_', and valid UTF-8 without NUL. */
static bool log_extra_field_valid(const char *p, size_t sz) {
        const char *eq = memchr(p, '=', sz);
        size_t k;

        if (!eq || memchr(p, 0, sz))
                return false;
        k = eq - p;
        if (k == 0 || k > 64 || p[0] == '_' || (p[0] >= '0' && p[0] <= '9'))
                return false;
        for (size_t i = 0; i < k; i++)
                if (!((p[i] >= 'A' && p[i] <= 'Z') || (p[i] >= '0' && p[i] <= '9') || p[i] == '_'))
                        return false;
        for (size_t i = k + 1; i < sz;) {
                unsigned char c = p[i];
                size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;

                if (n == 0 || i + n > sz)
                        return false;
                for (size_t j = 1; j < n; j++)
                        if ((p[i + j] & 0xc0) != 0x80)
                                return false;
                i += n;
        }
        return true;
}

/* ---- how systemctl prints each property ----
 *
 * A formatter gets the property's value: read already when it is of a basic type or an array of
 * fixed-size ones, else the message stands at it. Array items get an item formatter each instead,
 * which reads one item and gives its text, or NULL to leave it out. */

typedef struct Value {
        sd_bus_message *m;
        union {
                const char *str;
                int boolean;
                uint32_t u32;
                int32_t i32;
                uint64_t u64;
                int64_t i64;
                double dbl;
        } basic;
        const void *array;
        size_t size; /* of the array, in bytes */
} Value;

static int read_value(sd_bus_message *m, const char *sig, Value *v) {
        if (!sig[1])
                return sd_bus_message_read_basic(m, sig[0], &v->basic);
        if (sig[0] == 'a' && strchr("ybnqiuxtd", sig[1]) && !sig[2])
                return sd_bus_message_read_array(m, sig[1], &v->array, &v->size);
        return 0;
}

static int show_string(Lines *l, const char *name, const Value *v) {
        return lines_add(l, name, strchr(v->basic.str, '\n') ? "[unprintable]" : v->basic.str);
}

static int show_bool(Lines *l, const char *name, const Value *v) {
        return lines_add(l, name, v->basic.boolean ? "yes" : "no");
}

static int show_i64(Lines *l, const char *name, const Value *v) {
        return lines_addf(l, name, "%" PRIi64, v->basic.i64);
}

static int show_double(Lines *l, const char *name, const Value *v) {
        return lines_addf(l, name, "%g", v->basic.dbl);
}

static int show_u32(Lines *l, const char *name, const Value *v) {
        return lines_addf(l, name, "%" PRIu32, v->basic.u32);
}

static int show_octal(Lines *l, const char *name, const Value *v) {
        return lines_addf(l, name, "%04o", v->basic.u32);
}

static int show_id(Lines *l, const char *name, const Value *v) {
        return v->basic.u32 == UINT32_MAX ? lines_add(l, name, "[not set]") : show_u32(l, name, v);
}

static int show_i32(Lines *l, const char *name, const Value *v) {
        return lines_addf(l, name, "%" PRIi32, v->basic.i32);
}

/* SuccessActionExitStatus and friends: -1 when unset, which only an explicit query shows. */
static int show_exit_code(Lines *l, const char *name, const Value *v) {
        if (v->basic.i32 >= 0 && v->basic.i32 <= 255)
                return show_i32(l, name, v);
        return l->show_empty ? lines_add(l, name, "[not set]") : 0;
}

static int show_numa_policy(Lines *l, const char *name, const Value *v) {
        static const char *const policies[] = { "default", "preferred", "bind", "interleave", "local" };
        int32_t i = v->basic.i32;

        return lines_add(l, name, i >= 0 && (size_t) i < ELEMENTSOF(policies) ? policies[i] : "n/a");
}

static int show_u64(Lines *l, const char *name, const Value *v) {
        return lines_addf(l, name, "%" PRIu64, v->basic.u64);
}

/* A weight, a gauge or a counter that has no value (UINT64_MAX). */
static int show_u64_unset(Lines *l, const char *name, const Value *v) {
        return v->basic.u64 == UINT64_MAX ? lines_add(l, name, "[not set]") : show_u64(l, name, v);
}

static int show_u64_limit(Lines *l, const char *name, const Value *v) {
        return v->basic.u64 == UINT64_MAX ? lines_add(l, name, "infinity") : show_u64(l, name, v);
}

/* IP accounting that is off. */
static int show_u64_ip_counter(Lines *l, const char *name, const Value *v) {
        return v->basic.u64 == UINT64_MAX ? lines_add(l, name, "[no data]") : show_u64(l, name, v);
}

static int show_hex(Lines *l, const char *name, const Value *v) {
        return lines_addf(l, name, "0x%" PRIx64, v->basic.u64);
}

static int show_timestamp(Lines *l, const char *name, const Value *v) {
        char buf[128];

        return lines_add(l, name, format_timestamp(buf, sizeof buf, v->basic.u64));
}

static int show_timespan(Lines *l, const char *name, const Value *v) {
        char buf[128];

        format_timespan(buf, sizeof buf, v->basic.u64);
        return lines_add(l, name, buf);
}

/* RestrictNamespaces: the namespaces allowed; all of them is "no" restriction, none "yes". */
static int show_namespaces(Lines *l, const char *name, const Value *v) {
        _cleanup_free_ char *s = NULL;
        uint64_t u = v->basic.u64 & NAMESPACE_FLAGS_ALL;

        if (u == 0)
                return lines_add(l, name, "yes");
        if (u == NAMESPACE_FLAGS_ALL)
                return lines_add(l, name, "no");
        s = namespace_flags_to_string(v->basic.u64);
        return s ? lines_add(l, name, s) : -ENOMEM;
}

static int show_mount_flags(Lines *l, const char *name, const Value *v) {
        uint64_t u = v->basic.u64;

        return lines_add(l, name,
                         u == MS_SHARED ? "shared" : u == MS_SLAVE ? "slave" : u == MS_PRIVATE ? "private" : NULL);
}

static int show_capabilities(Lines *l, const char *name, const Value *v) {
        _cleanup_free_ char *s = capability_set_to_string(v->basic.u64);

        return s ? lines_add(l, name, s) : -ENOMEM;
}

static int show_job(Lines *l, const char *name, const Value *v) {
        uint32_t id;
        int r = sd_bus_message_read(v->m, "(uo)", &id, NULL);

        if (r < 0)
                return r;
        return id > 0 ? lines_addf(l, name, "%" PRIu32, id) : lines_add(l, name, NULL);
}

static int show_unit(Lines *l, const char *name, const Value *v) {
        const char *s;
        int r = sd_bus_message_read(v->m, "(so)", &s, NULL);

        return r < 0 ? r : lines_add(l, name, s);
}

static int show_load_error(Lines *l, const char *name, const Value *v) {
        const char *error, *message;
        int r = sd_bus_message_read(v->m, "(ss)", &error, &message);

        if (r < 0)
                return r;
        if (isempty(error) && isempty(message))
                return lines_add(l, name, NULL);
        return lines_addf(l, name, "%s \"%s\"", error, message);
}

/* SELinuxContext and the like: "-" marks a label whose failure is ignored. */
static int show_label(Lines *l, const char *name, const Value *v) {
        const char *s;
        int ignore;
        int r = sd_bus_message_read(v->m, "(bs)", &ignore, &s);

        if (r < 0)
                return r;
        if (isempty(s))
                return lines_add(l, name, NULL);
        return lines_addf(l, name, "%s%s", ignore ? "-" : "", s);
}

/* SystemCallFilter and the like: an allow list, or a deny list marked by a "~" that sticks to the
 * first item. Shown even when empty, except an empty deny list (no filter). */
static int show_name_list(Lines *l, const char *name, const Value *v) {
        _cleanup_strv_free_ char **names = NULL;
        bool keep = l->show_empty;
        int allow, r;
        Buf b = {};

        r = sd_bus_message_enter_container(v->m, 'r', "bas");
        if (r >= 0)
                r = sd_bus_message_read(v->m, "b", &allow);
        if (r >= 0)
                r = sd_bus_message_read_strv(v->m, &names);
        if (r >= 0)
                r = sd_bus_message_exit_container(v->m);
        if (r < 0 || (!l->show_empty && !allow && !(names && *names)))
                return r;
        for (char **i = names; i && *i && r >= 0; i++)
                r = buf_add(&b, *i);
        if (r >= 0) {
                l->show_empty = true;
                r = lines_addf(l, name, "%s%s", allow ? "" : "~", b.s ? b.s : "");
                l->show_empty = keep;
        }
        free(b.s);
        return r;
}

/* SuccessExitStatus and the like: exit statuses, then signal names. */
static int show_exit_status(Lines *l, const char *name, const Value *v) {
        const int32_t *status, *sig;
        size_t n_status, n_sig;
        Buf b = {};
        int r;

        r = sd_bus_message_enter_container(v->m, 'r', "aiai");
        if (r >= 0)
                r = sd_bus_message_read_array(v->m, 'i', (const void **) &status, &n_status);
        if (r >= 0)
                r = sd_bus_message_read_array(v->m, 'i', (const void **) &sig, &n_sig);
        if (r >= 0)
                r = sd_bus_message_exit_container(v->m);
        if (r < 0)
                return r;
        for (size_t i = 0; r >= 0 && i < n_status / sizeof(int32_t); i++) {
                char piece[16];

                snprintf(piece, sizeof piece, "%" PRIi32, status[i]);
                r = buf_add(&b, piece);
        }
        for (size_t i = 0; r >= 0 && i < n_sig / sizeof(int32_t); i++) {
                char piece[32];

                r = buf_add(&b, signal_name(sig[i], piece, sizeof piece));
        }
        if (r >= 0)
                r = lines_add(l, name, b.s);
        free(b.s);
        return r;
}

/* CPUAffinity and the like: "0-3 6" from a bit mask. */
static int show_cpu_set(Lines *l, const char *name, const Value *v) {
        const uint8_t *a = v->array;
        size_t n = v->size * 8;
        Buf b = {};
        int r = 0;

        for (size_t i = 0; r >= 0 && i < n; i++) {
                char piece[48];
                size_t j;

                if (!(a[i / 8] & (1u << (i % 8))))
                        continue;
                for (j = i; j + 1 < n && (a[(j + 1) / 8] & (1u << ((j + 1) % 8))); j++)
                        ;
                if (j > i)
                        snprintf(piece, sizeof piece, "%zu-%zu", i, j);
                else
                        snprintf(piece, sizeof piece, "%zu", i);
                r = buf_add(&b, piece);
                i = j;
        }
        if (r >= 0)
                r = lines_add(l, name, b.s);
        free(b.s);
        return r;
}

static int show_base64(Lines *l, const char *name, const Value *v) {
        _cleanup_free_ char *s = base64(v->array, v->size);

        return s ? lines_add(l, name, s) : -ENOMEM;
}

static int show_hex_bytes(Lines *l, const char *name, const Value *v) {
        _cleanup_free_ char *s = malloc(v->size * 2 + 1);
        const uint8_t *a = v->array;

        if (!s)
                return -ENOMEM;
        for (size_t i = 0; i < v->size; i++)
                snprintf(s + 2 * i, 3, "%02x", a[i]);
        s[v->size * 2] = 0;
        return lines_add(l, name, s);
}

static int show_hex_words(Lines *l, const char *name, const Value *v) {
        size_t n = v->size / sizeof(uint32_t);
        _cleanup_free_ char *s = malloc(n * 8 + 1);
        const uint32_t *a = v->array;

        if (!s)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++)
                snprintf(s + 8 * i, 9, "%08" PRIx32, a[i]);
        s[n * 8] = 0;
        return lines_add(l, name, s);
}

/* ---- array items ---- */

static int item_quoted(sd_bus_message *m, char **ret) {
        const char *s;
        int r = sd_bus_message_read_basic(m, 's', &s);

        if (r < 0)
                return r;
        *ret = shell_maybe_quote(s);
        return *ret ? 0 : -ENOMEM;
}

static int item_environment_file(sd_bus_message *m, char **ret) {
        const char *path;
        int ignore;
        int r = sd_bus_message_read(m, "(sb)", &path, &ignore);

        return r < 0 ? r : strf(ret, "%s (ignore_errors=%s)", path, ignore ? "yes" : "no");
}

/* Paths of a path unit, Listen of a socket unit: (kind, what), shown as "what (kind)". */
static int item_listen(sd_bus_message *m, char **ret) {
        const char *kind, *what;
        int r = sd_bus_message_read(m, "(ss)", &kind, &what);

        return r < 0 ? r : strf(ret, "%s (%s)", what, kind);
}

static int item_device_rule(sd_bus_message *m, char **ret) {
        const char *device, *rule;
        int r = sd_bus_message_read(m, "(ss)", &device, &rule);

        return r < 0 ? r : strf(ret, "%s %s", device, rule);
}

static int item_device_number(sd_bus_message *m, char **ret) {
        const char *device;
        uint64_t n;
        int r = sd_bus_message_read(m, "(st)", &device, &n);

        return r < 0 ? r : strf(ret, "%s %" PRIu64, device, n);
}

static int item_device_timespan(sd_bus_message *m, char **ret) {
        const char *device;
        uint64_t t;
        char buf[128];
        int r = sd_bus_message_read(m, "(st)", &device, &t);

        if (r < 0)
                return r;
        format_timespan(buf, sizeof buf, t);
        return strf(ret, "%s %s", device, buf);
}

static int item_tmpfs(sd_bus_message *m, char **ret) {
        const char *target, *options;
        int r = sd_bus_message_read(m, "(ss)", &target, &options);

        if (r < 0 || isempty(target))
                return r;
        return strf(ret, "%s%s%s", target, isempty(options) ? "" : ":", options);
}

static int item_bind_path(sd_bus_message *m, char **ret) {
        const char *source, *dest;
        int ignore;
        uint64_t flags;
        int r = sd_bus_message_read(m, "(ssbt)", &source, &dest, &ignore, &flags);

        if (r < 0 || isempty(source))
                return r;
        return strf(ret, "%s%s%s%s%s", ignore ? "-" : "", source, isempty(dest) ? "" : ":", dest,
                    flags == 16384 /* MS_REC */ ? ":rbind" : "");
}

static int item_monotonic_timer(sd_bus_message *m, char **ret) {
        const char *base;
        uint64_t value, next;
        char a[128], b[128];
        int r = sd_bus_message_read(m, "(stt)", &base, &value, &next);

        if (r < 0)
                return r;
        format_timespan(a, sizeof a, value);
        format_timespan(b, sizeof b, next);
        return strf(ret, "{ %s=%s ; next_elapse=%s }", base, a, b);
}

static int item_calendar_timer(sd_bus_message *m, char **ret) {
        const char *base, *spec, *ts;
        uint64_t next;
        char buf[128];
        int r = sd_bus_message_read(m, "(sst)", &base, &spec, &next);

        if (r < 0)
                return r;
        ts = format_timestamp(buf, sizeof buf, next);
        return strf(ret, "{ %s=%s ; next_elapse=%s }", base, spec, ts ? ts : "(null)");
}

/* An IP prefix; systemctl leaves out what is not a valid one. */
static int item_ip_prefix(sd_bus_message *m, char **ret) {
        char addr[INET6_ADDRSTRLEN];
        int32_t family;
        const void *a;
        size_t n;
        uint32_t prefix;
        int r;

        r = sd_bus_message_enter_container(m, 'r', "iayu");
        if (r >= 0)
                r = sd_bus_message_read(m, "i", &family);
        if (r >= 0)
                r = sd_bus_message_read_array(m, 'y', &a, &n);
        if (r >= 0)
                r = sd_bus_message_read(m, "u", &prefix);
        if (r >= 0)
                r = sd_bus_message_exit_container(m);
        if (r < 0)
                return r;
        if (!(family == AF_INET && n == 4 && prefix <= 32) && !(family == AF_INET6 && n == 16 && prefix <= 128))
                return 0;
        if (!inet_ntop(family, a, addr, sizeof addr))
                return 0;
        return strf(ret, "%s/%" PRIu32, addr, prefix);
}

static int item_journal_field(sd_bus_message *m, char **ret) {
        const void *p;
        size_t n;
        int r = sd_bus_message_read_array(m, 'y', &p, &n);

        if (r < 0 || !log_extra_field_valid(p, n))
                return r;
        *ret = strndup(p, n);
        return *ret ? 0 : -ENOMEM;
}

/* ExecStart and the like, in their plain form (ignore_errors) or their Ex form (flags). */
static int item_exec(sd_bus_message *m, char **ret) {
        _cleanup_strv_free_ char **argv = NULL, **flags = NULL;
        const char *contents, *path, *code_name, *ts1, *ts2;
        uint64_t start, start_mono, exit_, exit_mono;
        uint32_t pid;
        int ignore = 0, code, status, r;
        char t1[64], t2[64], sig[32];
        Buf args = {}, fl = {};
        bool ex;

        r = sd_bus_message_peek_type(m, NULL, &contents);
        if (r < 0)
                return r;
        ex = streq(contents, "sasasttttuii");
        r = sd_bus_message_enter_container(m, 'r', contents);
        if (r >= 0)
                r = sd_bus_message_read(m, "s", &path);
        if (r >= 0)
                r = sd_bus_message_read_strv(m, &argv);
        if (r >= 0)
                r = ex ? sd_bus_message_read_strv(m, &flags) : sd_bus_message_read(m, "b", &ignore);
        if (r >= 0)
                r = sd_bus_message_read(m, "ttttuii", &start, &start_mono, &exit_, &exit_mono, &pid, &code, &status);
        if (r >= 0)
                r = sd_bus_message_exit_container(m);
        for (char **a = argv; a && *a && r >= 0; a++)
                r = buf_add(&args, *a);
        for (char **a = flags; a && *a && r >= 0; a++)
                r = buf_add(&fl, *a);
        if (r >= 0) {
                ts1 = format_timestamp(t1, sizeof t1, start);
                ts2 = format_timestamp(t2, sizeof t2, exit_);
                /* systemctl passes a NULL code name to printf, which glibc prints as "(null)". */
                code_name = sigchld_code(code);
                r = strf(ret,
                         "{ path=%s ; argv[]=%s ; %s=%s ; start_time=[%s] ; stop_time=[%s] ; pid=%u ; code=%s ; "
                         "status=%i%s%s }",
                         path, args.s ? args.s : "", ex ? "flags" : "ignore_errors",
                         ex ? (fl.s ? fl.s : "") : ignore ? "yes" : "no", ts1 ? ts1 : "n/a", ts2 ? ts2 : "n/a", pid,
                         code_name ? code_name : "(null)", status, code == CLD_EXITED ? "" : "/",
                         code == CLD_EXITED ? "" : signal_name(status, sig, sizeof sig));
        }
        free(args.s);
        free(fl.s);
        return r;
}

/* ---- the table ---- */

typedef struct Format {
        const char *names; /* '|'-separated patterns, '*' a wildcard */
        const char *sig;   /* of the value */
        int (*show)(Lines *l, const char *name, const Value *v);
        int (*item)(sd_bus_message *m, char **ret); /* instead of show, for an array: */
        bool join;                                   /* all items on one line, else a line each */
} Format;

/* The first row that matches a property's name and signature prints it. Left out, though
 * systemctl 252 prints them when set: MountImages, ExtensionImages, RootImageOptions,
 * SocketBindAllow/SocketBindDeny, LoadCredential and friends. They are empty in ordinary units;
 * `systemctl show` through a command has them all. */
static const Format formats[] = {
        { .sig = "s", .names = "*", .show = show_string },
        { .sig = "b", .names = "*", .show = show_bool },
        { .sig = "x", .names = "*", .show = show_i64 },
        { .sig = "d", .names = "*", .show = show_double },
        { .sig = "u", .names = "*UMask*|*Mode*", .show = show_octal },
        { .sig = "u", .names = "UID|GID", .show = show_id },
        { .sig = "u", .names = "*", .show = show_u32 },
        { .sig = "i", .names = "*ActionExitStatus", .show = show_exit_code },
        { .sig = "i", .names = "NUMAPolicy", .show = show_numa_policy },
        { .sig = "i", .names = "*", .show = show_i32 },
        { .sig = "t", .names = "*Timestamp|NextElapseUSecRealtime|LastTriggerUSec|TimeUSec|RTCTimeUSec",
          .show = show_timestamp },
        { .sig = "t", .names = "*USec*", .show = show_timespan },
        { .sig = "t", .names = "CoredumpFilter", .show = show_hex },
        { .sig = "t", .names = "RestrictNamespaces", .show = show_namespaces },
        { .sig = "t", .names = "MountFlags", .show = show_mount_flags },
        { .sig = "t", .names = "CapabilityBoundingSet|AmbientCapabilities", .show = show_capabilities },
        { .sig = "t",
          .names = "CPUWeight|StartupCPUWeight|IOWeight|StartupIOWeight|CPUShares|StartupCPUShares|BlockIOWeight|"
                   "StartupBlockIOWeight|MemoryAvailable|TasksCurrent|Memory*Current|Memory*Peak|IO*Bytes|"
                   "IO*Operations|*NSec",
          .show = show_u64_unset },
        { .sig = "t",
          .names = "*MemoryLow|*MemoryMin|*MemoryHigh|*MemoryMax|*MemorySwapMax|*MemoryLimit|*TasksMax|Limit*|"
                   "DefaultLimit*",
          .show = show_u64_limit },
        { .sig = "t", .names = "IPIngressBytes|IPIngressPackets|IPEgressBytes|IPEgressPackets",
          .show = show_u64_ip_counter },
        { .sig = "t", .names = "*", .show = show_u64 },
        { .sig = "(uo)", .names = "Job", .show = show_job },
        { .sig = "(so)", .names = "Unit", .show = show_unit },
        { .sig = "(ss)", .names = "LoadError", .show = show_load_error },
        { .sig = "(bs)", .names = "SELinuxContext|AppArmorProfile|SmackProcessLabel", .show = show_label },
        { .sig = "(bas)",
          .names = "SystemCallFilter|SystemCallLog|RestrictAddressFamilies|RestrictFileSystems|"
                   "RestrictNetworkInterfaces",
          .show = show_name_list },
        { .sig = "(aiai)", .names = "*ExitStatus", .show = show_exit_status },
        { .sig = "ay",
          .names = "CPUAffinity|NUMAMask|AllowedCPUs|AllowedMemoryNodes|EffectiveCPUs|EffectiveMemoryNodes",
          .show = show_cpu_set },
        { .sig = "ay", .names = "StandardInputData|RootHashSignature", .show = show_base64 },
        { .sig = "ay", .names = "*", .show = show_hex_bytes },
        { .sig = "au", .names = "*", .show = show_hex_words },
        { .sig = "as", .names = "*", .item = item_quoted, .join = true },
        { .sig = "a(sb)", .names = "EnvironmentFiles", .item = item_environment_file },
        { .sig = "a(ss)", .names = "Paths|Listen", .item = item_listen },
        { .sig = "a(ss)", .names = "DeviceAllow", .item = item_device_rule },
        { .sig = "a(ss)", .names = "TemporaryFileSystem", .item = item_tmpfs, .join = true },
        { .sig = "a(st)",
          .names = "IODeviceWeight|BlockIODeviceWeight|IOReadBandwidthMax|IOWriteBandwidthMax|IOReadIOPSMax|"
                   "IOWriteIOPSMax|BlockIOReadBandwidth|BlockIOWriteBandwidth",
          .item = item_device_number },
        { .sig = "a(st)", .names = "IODeviceLatencyTargetUSec", .item = item_device_timespan },
        { .sig = "a(ssbt)", .names = "BindPaths|BindReadOnlyPaths", .item = item_bind_path, .join = true },
        { .sig = "a(stt)", .names = "TimersMonotonic", .item = item_monotonic_timer },
        { .sig = "a(sst)", .names = "TimersCalendar", .item = item_calendar_timer },
        { .sig = "a(iayu)", .names = "IPAddressAllow|IPAddressDeny", .item = item_ip_prefix, .join = true },
        { .sig = "aay", .names = "LogExtraFields", .item = item_journal_field, .join = true },
        { .sig = "a(sasbttttuii)", .names = "Exec*", .item = item_exec },
        { .sig = "a(sasasttttuii)", .names = "Exec*", .item = item_exec },
};

/* One pattern, up to a '|': '*' matches any run of characters, anything else itself. */
static bool pattern_match(const char *p, const char *s) {
        for (; *p && *p != '|'; p++, s++) {
                if (*p == '*') {
                        for (;; s++) {
                                if (pattern_match(p + 1, s))
                                        return true;
                                if (!*s)
                                        return false;
                        }
                }
                if (*p != *s)
                        return false;
        }
        return !*s;
}

static bool names_match(const char *patterns, const char *name) {
        for (const char *p = patterns;; p++) {
                if (pattern_match(p, name))
                        return true;
                p = strchr(p, '|');
                if (!p)
                        return false;
        }
}

static int show_items(Lines *l, const char *name, sd_bus_message *m, const Format *f) {
        Buf b = {};
        int r;

        r = sd_bus_message_enter_container(m, 'a', f->sig + 1);
        while (r >= 0 && (r = sd_bus_message_at_end(m, false)) == 0) {
                _cleanup_free_ char *s = NULL;

                r = f->item(m, &s);
                if (r >= 0 && s)
                        r = f->join ? buf_add(&b, s) : lines_add(l, name, s);
        }
        if (r >= 0)
                r = sd_bus_message_exit_container(m);
        if (r >= 0 && f->join)
                r = lines_add(l, name, b.s);
        free(b.s);
        return r;
}

/* One property of signature `sig`, the message inside its variant. 1: printed; 0: a type
 * systemctl prints only with --all (as "[unprintable]"), which we leave out, nothing read. */
static int format_property(Lines *l, const char *name, const char *sig, sd_bus_message *m) {
        Value v = { .m = m };
        int r;

        for (const Format *f = formats; f < formats + ELEMENTSOF(formats); f++) {
                if (!streq(f->sig, sig) || !names_match(f->names, name))
                        continue;
                if (f->item)
                        r = show_items(l, name, m, f);
                else {
                        r = read_value(m, sig, &v);
                        if (r >= 0)
                                r = f->show(l, name, &v);
                }
                return r < 0 ? r : 1;
        }
        return 0;
}

/* One {name, value} entry of a GetAll reply, if it is `filter` (or there is none). */
static int format_entry(Lines *l, const char *filter, sd_bus_message *m) {
        const char *name, *sig;
        int r;

        r = sd_bus_message_read(m, "s", &name);
        if (r >= 0)
                r = sd_bus_message_peek_type(m, NULL, &sig);
        if (r < 0)
                return r;
        if (filter && !streq(name, filter))
                return sd_bus_message_skip(m, "v");
        r = sd_bus_message_enter_container(m, 'v', sig);
        if (r >= 0)
                r = format_property(l, name, sig, m);
        if (r == 0)
                r = sd_bus_message_skip(m, sig);
        if (r >= 0)
                r = sd_bus_message_exit_container(m);
        return r;
}

/* The body of a GetAll reply as `systemctl show` lines; only `filter` if given. */
int unitprops_format(sd_bus_message *m, const char *filter, char ***ret) {
        Lines l = { .show_empty = filter != NULL };
        int r;

        r = sd_bus_message_enter_container(m, 'a', "{sv}");
        while (r >= 0 && (r = sd_bus_message_enter_container(m, 'e', "sv")) > 0) {
                r = format_entry(&l, filter, m);
                if (r >= 0)
                        r = sd_bus_message_exit_container(m);
        }
        if (r >= 0)
                r = sd_bus_message_exit_container(m);
        if (r >= 0 && !l.v && !(l.v = calloc(1, sizeof(char *))))
                r = -ENOMEM;
        if (r < 0) {
                strv_free(l.v);
                return r;
        }
        *ret = l.v;
        return 0;
}
