/* fuzz_config.c: fuzz target for config_parse_string() (the --config JSON). A file that parses
 * must satisfy the Config's invariants and read back the same after a round trip through JSON;
 * one that does not gets a one-line, printable error naming the file. Built as fuzz.h says. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include <jansson.h>
#include <signal.h>
#include <stdint.h>

#include "config.h"
#include "fuzz.h"
#include "util.h"

/* Rebuilds the JSON a Config stands for; parsing it again must give the same Config. */
static char *config_to_json(const Config *c) {
        json_auto_t *root = json_object(), *vms = json_object(), *containers = json_object(), *vlans = json_array();
        bool vms_first = c->n_machines > 0 && c->machines[0].kind == CONFIG_VM;

        fuzz_check(root && vms && containers && vlans);
        for (size_t i = 0; i < c->n_machines; i++) {
                json_t *m = json_pack("{s:s, s:s}", "name", c->machines[i].name,
                                      "start_script", c->machines[i].start_script);

                fuzz_check(m);
                fuzz_check(json_object_set_new(c->machines[i].kind == CONFIG_VM ? vms : containers,
                                          c->machines[i].name, m) == 0);
        }
        for (size_t i = 0; i < c->n_vlans; i++)
                fuzz_check(json_array_append_new(vlans, json_integer(c->vlans[i])) == 0);

        /* The kind that came first in the input comes first again, so the order is kept. */
        if (vms_first)
                fuzz_check(json_object_set(root, "vms", vms) == 0);
        fuzz_check(json_object_set(root, "containers", containers) == 0);
        if (!vms_first)
                fuzz_check(json_object_set(root, "vms", vms) == 0);
        fuzz_check(json_object_set(root, "vlans", vlans) == 0);
        fuzz_check(json_object_set_new(root, "global_timeout", json_real(c->global_timeout)) == 0);
        fuzz_check(json_object_set_new(root, "enable_ssh_backdoor", json_boolean(c->enable_ssh_backdoor)) == 0);
        if (c->test_script)
                fuzz_check(json_object_set_new(root, "test_script", json_string(c->test_script)) == 0);
        return json_dumps(root, JSON_REAL_PRECISION(17) | JSON_COMPACT);
}

static void check_config(const Config *c) {
        fuzz_check(c->global_timeout > 0 && c->global_timeout <= 1e9);
        fuzz_check(!c->test_script || c->test_script[0]);
        for (size_t i = 0; i < c->n_machines; i++) {
                fuzz_check(config_machine_name_is_valid(c->machines[i].name));
                fuzz_check(c->machines[i].start_script && c->machines[i].start_script[0]);
                fuzz_check(c->machines[i].kind == CONFIG_VM || c->machines[i].kind == CONFIG_CONTAINER);
                for (size_t k = 0; k < i; k++)
                        fuzz_check(!streq(c->machines[i].name, c->machines[k].name));
        }
        for (size_t i = 0; i < c->n_vlans; i++) {
                fuzz_check(c->vlans[i] <= CONFIG_VLAN_MAX);
                for (size_t k = 0; k < i; k++)
                        fuzz_check(c->vlans[i] != c->vlans[k]);
        }
}

static void check_same(const Config *a, const Config *b) {
        fuzz_check(a->n_machines == b->n_machines);
        for (size_t i = 0; i < a->n_machines; i++) {
                fuzz_check(streq(a->machines[i].name, b->machines[i].name));
                fuzz_check(streq(a->machines[i].start_script, b->machines[i].start_script));
                fuzz_check(a->machines[i].kind == b->machines[i].kind);
        }
        fuzz_check(a->n_vlans == b->n_vlans);
        for (size_t i = 0; i < a->n_vlans; i++)
                fuzz_check(a->vlans[i] == b->vlans[i]);
        fuzz_check(a->global_timeout == b->global_timeout);
        fuzz_check(a->enable_ssh_backdoor == b->enable_ssh_backdoor);
        fuzz_check(!a->test_script == !b->test_script);
        fuzz_check(!a->test_script || streq(a->test_script, b->test_script));
}

/* Counts for the standalone summary. */
static size_t n_parsed, n_rejected;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        Config *c = NULL, *again = NULL;
        char *error = NULL, *json;
        int r;

        r = config_parse_string((const char *) data, size, "fuzz.json", &c, &error);
        if (r == -ENOMEM)
                return 0;
        if (r < 0) {
                fuzz_check(r == -EINVAL);
                fuzz_check(!c);
                fuzz_check(error && startswith(error, "fuzz.json"));
                /* One printable line: names are quoted in ASCII, jansson's text escaped. */
                for (const char *p = error; *p; p++)
                        fuzz_check(*p >= 0x20 && *p < 0x7f);
                free(error);
                n_rejected++;
                return 0;
        }
        fuzz_check(c && !error);
        check_config(c);

        json = config_to_json(c);
        fuzz_check(json);
        r = config_parse_string(json, strlen(json), "roundtrip.json", &again, &error);
        if (r != 0)
                fprintf(stderr, "fuzz_config: round trip rejected: %s\n%s\n", error, json);
        fuzz_check(r == 0);
        check_same(c, again);

        free(json);
        config_free(again);
        config_free(c);
        n_parsed++;
        return 0;
}

/* Pieces of the schema and of JSON, so that mutants reach past the tokenizer. */
static const char *const tokens[] = {
        "\"vms\"", "\"containers\"", "\"vlans\"", "\"global_timeout\"", "\"enable_ssh_backdoor\"",
        "\"test_script\"", "\"name\"", "\"start_script\"", "{", "}", "[", "]", ",", ":", "\"",
        "null", "true", "false", "0", "-1", "1.5", "4095", "4096", "1e999", "1e9", "2.0",
        "99999999999999999999", "\"\\u0000\"", "\"a b\"", "\"-x\"", "\"\\n\"", "\"\\u00e9\"",
        "{\"name\":\"n\",\"start_script\":\"/s\"}", "\"n\":{\"start_script\":\"/s\"}", "\\", "\xff", "\xc3\xa9",
        "\"\"", "{}", "[]", "1", "\"s\"", "\"client\"", "\"router\"", "\"web\"", "\"vms\":{\"n\":{}},", "\"containers\":{\"n\":{\"start_script\":\"/c\"}},",
};

static void summary(void) {
        fprintf(stderr, "fuzz_config: %zu parsed, %zu rejected\n", n_parsed, n_rejected);
}

const FuzzTarget fuzz_target = {
        .name = "config",
        .tokens = tokens,
        .n_tokens = ELEMENTSOF(tokens),
        .summary = summary,
};
