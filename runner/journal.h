/* journal.h: follow a container's systemd journal on sd-event and hand out its entries as lines
 * formatted like `journalctl -o short` without the time and host: "nginx[123]: message". */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-event.h>

typedef struct JournalFollower JournalFollower;

/* One line, without a newline. The follower may be freed from here. */
typedef void (*journal_line_fn)(const char *line, size_t len, void *userdata);

typedef struct JournalFollowConfig {
        const char *root;         /* the container's OS tree as we see it: /proc/<leader>/root */
        uint64_t since_usec;      /* CLOCK_MONOTONIC: entries from then on, of the container's current
                                   * boot (nspawn gives each boot an id of its own) */
} JournalFollowConfig;

/* Follows the journal files below root (run/log/journal and var/log/journal, as journald keeps
 * them): from the entries since since_usec to whatever is appended, until freed. Looks every 100 ms
 * (and on inotify): for new entries, and for the directories, which the container's journald creates;
 * reopens when the persistent one appears after the volatile one (journald flushes to it), without
 * handing out an entry twice. */
int journal_follow(sd_event *e, const JournalFollowConfig *cfg, journal_line_fn cb, void *userdata,
                   JournalFollower **ret);

/* Hands out what the files hold now (once the container exited: its last entries). */
void journal_follower_drain(JournalFollower *f);

/* Entries handed out so far. */
uint64_t journal_follower_entries(JournalFollower *f);

JournalFollower *journal_follower_free(JournalFollower *f);

/* Pure helpers, exposed for the unit tests. */

/* journalctl's test for a message it prints as text: valid UTF-8 without control characters other
 * than tab and newline. */
bool journal_message_printable(const char *s, size_t len);

/* Calls cb once per line of the message: "IDENT[PID]: line". IDENT is SYSLOG_IDENTIFIER, else
 * _COMM, else "unknown"; PID is _PID, else SYSLOG_PID, else left out with its brackets; a message
 * that is not printable is "[N bytes blob data]". NULL means the field is missing. Returns the
 * number of lines, or -ENOMEM. */
int journal_format(const char *ident, size_t ident_len, const char *comm, size_t comm_len, const char *pid,
                   size_t pid_len, const char *syslog_pid, size_t syslog_pid_len, const char *message,
                   size_t message_len, journal_line_fn cb, void *userdata);
