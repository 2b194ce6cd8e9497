/* fuzz_units.c: fuzz target for the `systemctl show` formatter in units.c, which prints what a
 * container's systemd answers to GetAll. The input does not go in as D-Bus bytes (sd-bus checks
 * those itself, before units.c sees them); it steers a generator that builds a well-typed GetAll
 * body: which properties (known names, or names from the input), which signature each has (mostly
 * the one systemd uses, sometimes any other), and every value. unitprops_format() must
 * accept every such body, print only lines "Name=value" of properties it was given (only the
 * filtered one, when a filter is set), and with no filter leave out empty values (but an empty
 * allow list). Built as fuzz.h
 * says. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include <sys/socket.h>
#include <systemd/sd-bus.h>

#include "fuzz.h"
#include "strv.h"
#include "unitprops.h"
#include "util.h"

typedef struct Reader {
        const uint8_t *d;
        size_t n, i;
} Reader;

static uint8_t byte(Reader *r) {
        return r->i < r->n ? r->d[r->i++] : 0;
}

static uint64_t u64(Reader *r) {
        static const uint64_t special[] = {
                0, 1, UINT64_MAX, UINT64_MAX - 1, INT64_MAX, (uint64_t) INT64_MIN, 1000000, 60000000,
                UINT64_C(1700000000000000), 0x7ffff, 0xffffffff, 0x100000000, 16384, 0x2000000000,
        };
        uint8_t k = byte(r);
        uint64_t v = 0;

        if (k < 128)
                return special[k % ELEMENTSOF(special)];
        for (int i = 0; i < 8; i++)
                v = v << 8 | byte(r);
        return v;
}

/* A string sd-bus takes (UTF-8, no NUL): mostly from the input masked to ASCII. */
static void string(Reader *r, char *buf, size_t size) {
        static const char *const special[] = {
                "", "-", "a b", "it's", "$HOME", "\xc3\xa9t\xc3\xa9", "/usr/bin/true", "--flag", "~", ":",
                "ignore-failure", "no-setuid", "CAP_SYS_ADMIN", "@system-service", "inet", "-/etc/default/x",
        };
        uint8_t k = byte(r);
        size_t n;

        if (k < 96) {
                snprintf(buf, size, "%s", special[k % ELEMENTSOF(special)]);
                return;
        }
        n = byte(r) % (size - 1);
        for (size_t i = 0; i < n; i++) {
                char c = (char) (byte(r) & 0x7f);

                buf[i] = c ? c : '.';
        }
        buf[n] = '\0';
}

/* The end of the single complete type that starts at s. */
static const char *type_end(const char *s) {
        int depth = 0;

        while (*s == 'a')
                s++;
        do {
                if (*s == '(' || *s == '{')
                        depth++;
                else if (*s == ')' || *s == '}')
                        depth--;
                s++;
        } while (depth > 0);
        return s;
}

static int gen(sd_bus_message *m, Reader *r, const char *sig, const char *end);

static int gen_one(sd_bus_message *m, Reader *r, const char *sig) {
        const char *end = type_end(sig);
        char contents[64], s[64];
        int k;

        switch (*sig) {
        case 'y': {
                uint8_t v = byte(r);
                return sd_bus_message_append_basic(m, 'y', &v);
        }
        case 'b': {
                int v = byte(r) & 1;
                return sd_bus_message_append_basic(m, 'b', &v);
        }
        case 'n':
        case 'q': {
                uint16_t v = (uint16_t) (byte(r) << 8 | byte(r));
                return sd_bus_message_append_basic(m, *sig, &v);
        }
        case 'i':
        case 'u': {
                uint32_t v = (uint32_t) u64(r);
                return sd_bus_message_append_basic(m, *sig, &v);
        }
        case 'x':
        case 't': {
                uint64_t v = u64(r);
                return sd_bus_message_append_basic(m, *sig, &v);
        }
        case 'd': {
                uint64_t bits = u64(r);
                double v;

                memcpy(&v, &bits, sizeof v);
                return sd_bus_message_append_basic(m, 'd', &v);
        }
        case 's':
                string(r, s, sizeof s);
                return sd_bus_message_append_basic(m, 's', s);
        case 'o':
                return sd_bus_message_append_basic(m, 'o', byte(r) & 1 ? "/" : "/org/freedesktop/systemd1/job/7");
        case 'g':
                return sd_bus_message_append_basic(m, 'g', "a(sasbttttuii)");
        case 'v':
                if (byte(r) & 1)
                        return sd_bus_message_append(m, "v", "s", "variant");
                return sd_bus_message_append(m, "v", "t", (uint64_t) 5);
        case 'a':
                snprintf(contents, sizeof contents, "%.*s", (int) (end - sig - 1), sig + 1);
                k = sd_bus_message_open_container(m, 'a', contents);
                for (int n = byte(r) % 5; k >= 0 && n > 0; n--)
                        k = gen_one(m, r, sig + 1);
                return k < 0 ? k : sd_bus_message_close_container(m);
        case '(':
        case '{':
                snprintf(contents, sizeof contents, "%.*s", (int) (end - sig - 2), sig + 1);
                k = sd_bus_message_open_container(m, *sig == '(' ? 'r' : 'e', contents);
                if (k >= 0)
                        k = gen(m, r, sig + 1, end - 1);
                return k < 0 ? k : sd_bus_message_close_container(m);
        }
        return -EINVAL;
}

static int gen(sd_bus_message *m, Reader *r, const char *sig, const char *end) {
        int k = 0;

        while (k >= 0 && sig < end) {
                k = gen_one(m, r, sig);
                sig = type_end(sig);
        }
        return k;
}

/* Properties systemd has, each with its signature; at least one for every row of units.c's table. */
static const struct {
        const char *name, *sig;
} props[] = {
        { "Id", "s" }, { "ActiveState", "s" }, { "CanStart", "b" }, { "Nice", "i" }, { "CPUSchedulingPriority", "i" },
        { "OOMScoreAdjust", "i" }, { "UMask", "u" }, { "RuntimeDirectoryMode", "u" }, { "UID", "u" }, { "GID", "u" },
        { "NRestarts", "u" }, { "SuccessActionExitStatus", "i" }, { "FailureActionExitStatus", "i" },
        { "NUMAPolicy", "i" }, { "ExecMainStatus", "i" }, { "ActiveEnterTimestamp", "t" },
        { "NextElapseUSecRealtime", "t" }, { "LastTriggerUSec", "t" }, { "TimeoutStartUSec", "t" },
        { "RuntimeMaxUSec", "t" }, { "CoredumpFilter", "t" }, { "RestrictNamespaces", "t" }, { "MountFlags", "t" },
        { "CapabilityBoundingSet", "t" }, { "AmbientCapabilities", "t" }, { "CPUWeight", "t" },
        { "MemoryCurrent", "t" }, { "MemorySwapPeak", "t" }, { "IOReadBytes", "t" }, { "CPUUsageNSec", "t" },
        { "MemoryMax", "t" }, { "DefaultMemoryLow", "t" }, { "TasksMax", "t" }, { "LimitNOFILE", "t" },
        { "LimitCPUSoft", "t" }, { "IPIngressBytes", "t" }, { "MainPID", "u" }, { "ControlGroupId", "t" },
        { "CPUQuotaPerSecUSec", "t" }, { "Job", "(uo)" }, { "Unit", "(so)" }, { "LoadError", "(ss)" },
        { "SELinuxContext", "(bs)" }, { "AppArmorProfile", "(bs)" }, { "SystemCallFilter", "(bas)" },
        { "RestrictAddressFamilies", "(bas)" }, { "RestartPreventExitStatus", "(aiai)" },
        { "SuccessExitStatus", "(aiai)" }, { "CPUAffinity", "ay" }, { "NUMAMask", "ay" }, { "AllowedCPUs", "ay" },
        { "StandardInputData", "ay" }, { "RootHashSignature", "ay" }, { "RootHash", "ay" },
        { "InvocationID", "ay" }, { "SystemCallArchitectures", "au" }, { "Environment", "as" },
        { "DropInPaths", "as" }, { "EnvironmentFiles", "a(sb)" }, { "Paths", "a(ss)" }, { "Listen", "a(ss)" },
        { "DeviceAllow", "a(ss)" }, { "TemporaryFileSystem", "a(ss)" }, { "IODeviceWeight", "a(st)" },
        { "IOReadBandwidthMax", "a(st)" }, { "IODeviceLatencyTargetUSec", "a(st)" }, { "BindPaths", "a(ssbt)" },
        { "BindReadOnlyPaths", "a(ssbt)" }, { "TimersMonotonic", "a(stt)" }, { "TimersCalendar", "a(sst)" },
        { "IPAddressAllow", "a(iayu)" }, { "IPAddressDeny", "a(iayu)" }, { "LogExtraFields", "aay" },
        { "ExecStart", "a(sasbttttuii)" }, { "ExecStartPre", "a(sasbttttuii)" }, { "ExecStartEx", "a(sasasttttuii)" },
        { "ExecReload", "a(sasbttttuii)" }, { "CPUQuotaPeriodUSec", "t" }, { "Weight", "d" }, { "Priority", "x" },
        /* signatures units.c has no row for: skipped */
        { "MountImages", "a(ssba(ss))" }, { "LoadCredential", "a(ss)" }, { "SocketBindAllow", "a(iiqq)" },
        { "Conditions", "a(sbbsi)" }, { "Markers", "as" }, { "Refs", "as" }, { "Variant", "v" },
        { "Signature", "g" }, { "Path", "o" }, { "Short", "n" }, { "Byte", "y" }, { "Dict", "a{sv}" },
};

static sd_bus *bus;
static size_t n_lines, n_bodies;

static sd_bus *fake_bus(void) {
        int fds[2];

        if (bus)
                return bus;
        /* Messages can only be built on a bus that was started; this one never talks to anyone. */
        fuzz_check(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, fds) == 0);
        fuzz_check(sd_bus_new(&bus) >= 0);
        fuzz_check(sd_bus_set_fd(bus, fds[0], fds[0]) >= 0);
        fuzz_check(sd_bus_start(bus) >= 0);
        return bus;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        Reader rd = { data, size, 0 };
        sd_bus_message *m = NULL;
        const char *names[64], *sigs[64], *filter = NULL;
        char custom[64][32], **lines = NULL;
        size_t n = 0;
        uint8_t f = byte(&rd);
        int r;

        fuzz_check(sd_bus_message_new_signal(fake_bus(), &m, "/org/freedesktop/systemd1/unit/x", "org.x", "X") >= 0);
        fuzz_check(sd_bus_message_open_container(m, 'a', "{sv}") >= 0);
        while (rd.i < rd.n && n < ELEMENTSOF(names)) {
                uint8_t a = byte(&rd), b = byte(&rd);
                const char *name = props[a % ELEMENTSOF(props)].name, *sig = props[a % ELEMENTSOF(props)].sig;

                if (b & 0x80)   /* another property's signature */
                        sig = props[b % ELEMENTSOF(props)].sig;
                if ((b & 0x60) == 0x60) {       /* a name from the input, on a known signature */
                        string(&rd, custom[n], sizeof custom[n]);
                        name = custom[n];
                }
                names[n] = name;
                sigs[n++] = sig;
                fuzz_check(sd_bus_message_open_container(m, 'e', "sv") >= 0);
                fuzz_check(sd_bus_message_append_basic(m, 's', name) >= 0);
                fuzz_check(sd_bus_message_open_container(m, 'v', sig) >= 0);
                r = gen_one(m, &rd, sig);
                if (r < 0)
                        fprintf(stderr, "fuzz_units: cannot build %s %s: %s\n", name, sig, strerror(-r));
                fuzz_check(r >= 0);
                fuzz_check(sd_bus_message_close_container(m) >= 0);
                fuzz_check(sd_bus_message_close_container(m) >= 0);
        }
        fuzz_check(sd_bus_message_close_container(m) >= 0);
        fuzz_check(sd_bus_message_seal(m, 1, 0) >= 0);
        fuzz_check(sd_bus_message_rewind(m, true) >= 0);
        if (f & 1)
                filter = n > 0 && (f & 2) ? names[(f >> 2) % n] : props[(f >> 2) % ELEMENTSOF(props)].name;

        r = unitprops_format(m, filter, &lines);
        if (r < 0)
                fprintf(stderr, "fuzz_units: unitprops_format: %s\n", strerror(-r));
        fuzz_check(r == 0 && lines);
        for (char **l = lines; *l; l++) {
                bool known = false;

                /* "Name=value" for a name given, the value not empty unless filtered (an empty allow
                 * list, SystemCallFilter= and the like, is shown as systemctl does: it allows nothing). */
                for (size_t i = 0; i < n && !known; i++) {
                        size_t k = strlen(names[i]);

                        known = startswith(*l, names[i]) && (*l)[k] == '=' &&
                                (filter || (*l)[k + 1] || streq(sigs[i], "(bas)"));
                }
                if (!known)
                        fprintf(stderr, "fuzz_units: line \"%s\" names no property given%s\n", *l, filter ? "" : " or is empty");
                fuzz_check(known);
                fuzz_check(!filter || (startswith(*l, filter) && (*l)[strlen(filter)] == '='));
                n_lines++;
        }
        n_bodies++;
        strv_free(lines);
        sd_bus_message_unref(m);
        return 0;
}

static const char *const tokens[] = { "\x01", "\x80", "\xff", "\x7f\x7f", "\x60", "\xe0" };

static void summary(void) {
        fprintf(stderr, "fuzz_units: %zu GetAll bodies, %zu lines\n", n_bodies, n_lines);
}

const FuzzTarget fuzz_target = {
        .name = "units",
        .tokens = tokens,
        .n_tokens = ELEMENTSOF(tokens),
        .summary = summary,
};
