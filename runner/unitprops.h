/* unitprops.h: `systemctl show` without systemctl: a unit's properties as systemctl prints them. */
#pragma once

#include <systemd/sd-bus.h>

/* m stands at the a{sv} of an org.freedesktop.DBus.Properties.GetAll reply (or of several
 * concatenated: each call reads one dictionary). Returns in *ret a NULL-terminated list of
 * "Key=value" lines formatted as systemctl 252 prints them (yes/no, timestamps, time spans, Exec
 * lines ...). filter NULL: every property, empty values left out as systemctl does without --all;
 * else only the property of that name, printed even when empty (--property=NAME). A few rare structured
 * properties (MountImages, SocketBindAllow, credentials ...) are left out even when set. Returns
 * 0, or a negative errno when the message is not such a dictionary. */
int unitprops_format(sd_bus_message *m, const char *filter, char ***ret);
