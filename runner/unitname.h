/* unitname.h: systemd unit names as systemctl reads them from a user, and their D-Bus object
 * paths. Pure string logic, no I/O. */
#pragma once

#include <stdbool.h>

/* systemd's UNIT_NAME_MAX is 256 including the terminating NUL. */
#define UNITNAME_MAX 255

/* True for a complete, loadable unit name: "nginx.service", "getty@tty1.service"; false for a
 * template ("getty@.service"), a name without a known type suffix, or bad characters. */
bool unitname_is_valid(const char *name);

/* Turn what a user typed into a unit name the way systemctl does: an absolute path under /dev or
 * /sys names a .device unit, any other absolute path a .mount unit, and a name without a known
 * unit type suffix gets ".service" ("nginx" -> "nginx.service", "foo@bar" -> "foo@bar.service").
 * Unlike systemctl, characters outside [A-Za-z0-9:_.\-@\\] are rejected, not \x-escaped, and a
 * template is rejected: both name nothing that one could wait for.
 * Returns 0, or -EINVAL with *ret_error (optional, malloc'ed) saying what is wrong with which
 * name, or -ENOMEM. */
int unitname_normalize(const char *name, char **ret, char **ret_error);

/* systemd's unit_name_from_path(): "/dev/sda" + ".device" -> "dev-sda.device", "/" + ".mount"
 * -> "-.mount", "/srv/my-data" + ".mount" -> "srv-my\x2ddata.mount". -EINVAL for a relative
 * path, one with a ".." component, or a result that is no valid unit name. */
int unitname_from_path(const char *path, const char *suffix, char **ret);

/* The manager's object path for a unit, as sd_bus_path_encode() builds it:
 * "nginx.service" -> "/org/freedesktop/systemd1/unit/nginx_2eservice". */
int unitname_to_object_path(const char *unit, char **ret);
