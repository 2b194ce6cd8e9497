/* backdoor.h: the backdoor shell's framing, pure (reference 4.4 and 4.5): what qemu.c writes to the
 * guest's shell and how it reads the answers. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* What the guest prints once its shell reads commands on /dev/hvc0. */
#define BACKDOOR_SENTINEL "Spawning backdoor root shell..."
/* Asks for the status of the command whose output just came (reference 4.5). */
#define BACKDOOR_STATUS_COMMAND "echo ${PIPESTATUS[0]}\n"
/* The orderly end, as the NixOS driver writes it. */
#define BACKDOOR_POWEROFF_COMMAND "poweroff\n"

/* Python's shlex.quote: unchanged when made only of [A-Za-z0-9@%+=:,./_-] and not empty, else in
 * single quotes with each ' written as '"'"'. */
char *backdoor_shell_quote(const char *s);

/* The line sent for a command, "\n" included (reference 4.5). The timeout is written as Python
 * writes a float: "timeout 900.0", "timeout 0.5". */
char *backdoor_command_line(const char *command, uint64_t timeout_usec);

/* Where the sentinel ends in buf, or -1 if buf does not hold it. */
ssize_t backdoor_sentinel_end(const char *buf, size_t len);

/* Waiting for the sentinel: 1 when buf holds it, *ret_newline_pending telling that the "\n" after
 * it has not come yet (what follows it is no answer: the caller drops all of buf); 0 when it does
 * not, *ret_keep being how many bytes at buf's end to keep, as they may start a sentinel split
 * across reads. */
int backdoor_sentinel_scan(const char *buf, size_t len, size_t *ret_keep, bool *ret_newline_pending);

/* If buf holds a whole line, returns its length up to and including the "\n"; else 0. */
size_t backdoor_frame_line(const char *buf, size_t len);

/* Decodes a line of `base64 -w 0` output (the "\n" excluded): -EBADMSG for anything but
 * A-Za-z0-9+/ in groups of four with "=" padding. *ret is NUL-terminated. */
int backdoor_base64_decode(const char *s, size_t len, char **ret, size_t *ret_len);

/* Parses the reply to "echo ${PIPESTATUS[0]}" (a decimal number, then "\n"; surrounding blanks are
 * ignored as Python's int(strip()) does). -EBADMSG otherwise. */
int backdoor_status_parse(const char *line, size_t len, int *ret);

/* One serial console line as logged: every "\r" removed, trailing whitespace stripped. In place;
 * returns the new length. */
size_t backdoor_console_clean(char *line, size_t len);
