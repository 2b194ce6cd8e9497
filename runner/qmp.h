/* qmp.h: a QEMU Machine Protocol client on sd-event: the greeting and qmp_capabilities, commands
 * with their replies (matched by id), and asynchronous events. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-event.h>

typedef struct Qmp Qmp;

typedef struct QmpCallbacks {
        /* Capabilities negotiated (error 0); commands queued before are sent now. Optional. */
        void (*on_ready)(Qmp *q, int error, void *userdata);
        /* An event: its name, its "data" (NULL if none) and the whole message, borrowed for the
         * call. Optional. */
        void (*on_event)(Qmp *q, const char *name, json_t *data, json_t *msg, void *userdata);
        /* The connection is gone: 0 for end of file (QEMU exited), else a negative errno (-EBADMSG
         * for a message that is not QMP). Every command still waiting got -ECONNRESET before this.
         * Optional. */
        void (*on_close)(Qmp *q, int error, void *userdata);
} QmpCallbacks;

/* A command's outcome. error 0: result is the "return" value. error -EIO: QEMU refused it,
 * error_class and error_desc say why ("GenericError", "Could not open 'x': No such file ...").
 * error -ECONNRESET: the connection closed first. Everything is borrowed for the call. */
typedef void (*qmp_reply_fn)(Qmp *q, int error, json_t *result, const char *error_class, const char *error_desc,
                             void *userdata);

/* Takes fd (a connected stream socket to QEMU's QMP chardev), even on failure. Nothing is sent
 * until QEMU's greeting arrives. A callback may call qmp_free. */
int qmp_new(sd_event *e, int fd, const QmpCallbacks *cb, void *userdata, Qmp **ret);

/* Sends {"execute": command, "arguments": arguments, "id": N} (no "arguments" if NULL; it is not
 * taken) once capabilities are negotiated; done is called once with the reply, never from this
 * call. Returns the id (positive), or a negative errno (-ENOTCONN once closed). */
int qmp_execute(Qmp *q, const char *command, json_t *arguments, qmp_reply_fn done, void *userdata);

/* The reply to id will be dropped: done is not called. */
void qmp_forget(Qmp *q, int id);

bool qmp_is_ready(Qmp *q);
/* Closes the connection; no callback is called, not even for commands waiting. */
void qmp_free(Qmp *q);

/* Pure helpers, exposed for the unit tests. */
typedef enum QmpMessageType {
        QMP_MESSAGE_GREETING,   /* {"QMP": {...}}: value is that object */
        QMP_MESSAGE_RETURN,     /* {"return": x}: value is x */
        QMP_MESSAGE_ERROR,      /* {"error": {"class": c, "desc": d}}: error_class, error_desc */
        QMP_MESSAGE_EVENT,      /* {"event": name, "data": d, "timestamp": t}: event, value d (or NULL) */
} QmpMessageType;

typedef struct QmpMessage {
        QmpMessageType type;
        json_t *root;           /* the whole message; owned */
        json_t *value;          /* borrowed from root; may be NULL */
        const char *event;
        const char *error_class, *error_desc;   /* never NULL for an error ("" when absent) */
        bool has_id;
        int64_t id;             /* "id" when it is an integer */
} QmpMessage;

/* Parses one message (one line from QEMU, without or with its "\r\n"). -EBADMSG when it is not a
 * JSON object or has none of "QMP", "return", "error", "event" (a string). */
int qmp_message_parse(const char *text, size_t len, QmpMessage *ret);
void qmp_message_done(QmpMessage *m);

/* The line sent for a command, "\n" included. NULL on ENOMEM. */
char *qmp_command_format(const char *command, json_t *arguments, int64_t id);
