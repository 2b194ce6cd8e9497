/* config.h: the NixOS test driver's JSON configuration (--config), parsed and validated.
 * Schema: reference/nixos-test-driver.md section 1.2. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#define CONFIG_DEFAULT_GLOBAL_TIMEOUT 3600.0
#define CONFIG_MACHINE_NAME_MAX 63
#define CONFIG_VLAN_MAX 4095

typedef enum ConfigMachineKind {
        CONFIG_VM,
        CONFIG_CONTAINER,
} ConfigMachineKind;

typedef struct ConfigMachine {
        char *name;
        char *start_script;
        ConfigMachineKind kind;
} ConfigMachine;

typedef struct Config {
        ConfigMachine *machines;        /* in file order; names unique across both kinds */
        size_t n_machines;
        unsigned *vlans;                /* deduplicated, first occurrence kept, in file order */
        size_t n_vlans;
        double global_timeout;          /* seconds, > 0 */
        bool enable_ssh_backdoor;
        char *test_script;              /* NULL when the file has none */
} Config;

/* Parses len bytes of JSON. filename only labels error messages ("config" when NULL).
 * Returns 0, -EINVAL with *ret_error set to one line ("FILE: PATH: problem", or
 * "FILE:LINE:COLUMN: jansson's text" for bad JSON), or -ENOMEM. Keys it does not know are
 * ignored, as the NixOS driver (pydantic) does. */
int config_parse_string(const char *json, size_t len, const char *filename, Config **ret, char **ret_error);

/* Reads and parses a file. Errors as config_parse_string(), plus "cannot read" ones. */
int config_load(const char *path, Config **ret, char **ret_error);

void config_free(Config *c);

/* The rule nspawn and the Lua globals need: ^[A-Za-z0-9_][A-Za-z0-9_-]*$, 1..63 chars. */
bool config_machine_name_is_valid(const char *name);

/* The NixOS driver's legacy rule: the name from a start script's basename, run-NAME-vm or
 * run-NAME-nspawn. Returns 0 with *ret allocated, -EINVAL when the basename matches neither
 * (the NixOS driver then falls back to "machine"), or -ENOMEM. */
int config_machine_name_from_script(const char *path, char **ret);
