/* fuzz_qmp.c: fuzz target for what qmp.c reads from QEMU. Each input is checked three ways:
 * as one message (qmp_message_parse against jansson's own reading of it), as a command name and
 * arguments (qmp_command_format must give one line QEMU reads back as exactly that), and as the
 * byte stream of a QMP socket: a client (qmp_new) with commands queued reads the input through
 * its line framing and dispatch, and every command must get exactly one reply, the one a model of
 * the protocol expects (or -ECONNRESET when the stream ends), and the close callback must run once. Built as fuzz.h says. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include <jansson.h>
#include <sys/socket.h>
#include <systemd/sd-event.h>

#include "fuzz.h"
#include "qmp.h"
#include "util.h"

/* Counts for the standalone summary: they show how deep the mutants reach. */
static size_t n_qmp[4], n_qmp_bad, n_streams_ready, n_replies;

static uint64_t fnv1a(const uint8_t *d, size_t n) {
        uint64_t h = 1469598103934665603ULL;

        for (size_t i = 0; i < n; i++)
                h = (h ^ d[i]) * 1099511628211ULL;
        return h;
}

/* ---- one message ---- */

static void check_qmp(const char *text, size_t len, QmpMessage *m, int *ret) {
        json_error_t err;
        json_t *root, *v;
        int r;

        r = qmp_message_parse(text, len, m);
        *ret = r;
        root = json_loadb(text, len, JSON_DECODE_ANY, &err);
        if (r < 0) {
                fuzz_check(r == -EBADMSG);
                fuzz_check(!m->root && !m->value && !m->event && !m->error_class && !m->error_desc && !m->has_id);
                /* Refused: not JSON, not an object, or none of the four keys (an "event" that is no string). */
                fuzz_check(!json_is_object(root) ||
                      (!json_object_get(root, "return") && !json_object_get(root, "error") &&
                       !json_is_string(json_object_get(root, "event")) && !json_object_get(root, "QMP")));
                json_decref(root);
                n_qmp_bad++;
                return;
        }
        fuzz_check(r == 0);
        fuzz_check(json_is_object(m->root));
        fuzz_check(json_equal(root, m->root));
        json_decref(root);
        root = m->root;

        v = json_object_get(root, "id");
        fuzz_check(m->has_id == json_is_integer(v));
        fuzz_check(!m->has_id || m->id == json_integer_value(v));

        /* A reply before an event: QEMU never mixes them, but a reply must reach its command. */
        if ((v = json_object_get(root, "return"))) {
                fuzz_check(m->type == QMP_MESSAGE_RETURN);
                fuzz_check(m->value == v);
        } else if ((v = json_object_get(root, "error"))) {
                const char *c = json_string_value(json_object_get(v, "class"));
                const char *d = json_string_value(json_object_get(v, "desc"));

                fuzz_check(m->type == QMP_MESSAGE_ERROR);
                fuzz_check(m->value == v);
                fuzz_check(m->error_class && m->error_desc);
                fuzz_check(streq(m->error_class, c ?: "") && streq(m->error_desc, d ?: ""));
        } else if (json_is_string(v = json_object_get(root, "event"))) {
                fuzz_check(m->type == QMP_MESSAGE_EVENT);
                fuzz_check(m->event && streq(m->event, json_string_value(v)));
                fuzz_check(m->value == json_object_get(root, "data"));
        } else {
                fuzz_check((v = json_object_get(root, "QMP")));
                fuzz_check(m->type == QMP_MESSAGE_GREETING);
                fuzz_check(m->value == v);
        }
        /* What on_qmp_event does with a SHUTDOWN: the reason may be anything, or absent. */
        if (m->type == QMP_MESSAGE_EVENT) {
                char reason[32];

                snprintf(reason, sizeof reason, "%s", json_string_value(json_object_get(m->value, "reason")) ?: "");
        }
        n_qmp[m->type]++;
}

static void fuzz_qmp(const uint8_t *data, size_t size) {
        QmpMessage a, b;
        char *text = fuzz_dup(data, size, 0), *line = malloc(size + 2);
        int ra, rb;

        fuzz_check(line);
        check_qmp(text, size, &a, &ra);
        /* dispatch hands over the line with QEMU's "\r\n": the same message. */
        memcpy(line, data, size);
        memcpy(line + size, "\r\n", 2);
        check_qmp(line, size + 2, &b, &rb);
        fuzz_check(ra == rb);
        if (ra == 0) {
                fuzz_check(a.type == b.type);
                fuzz_check(json_equal(a.root, b.root));
        }
        qmp_message_done(&a);
        qmp_message_done(&b);
        fuzz_check(!a.root && !b.root);
        free(line);
        free(text);
}

/* qmp_command_format with the input as the command name and, when the input is an object, as the
 * arguments: one line that QEMU reads back as exactly that. */
static void fuzz_qmp_command(const uint8_t *data, size_t size) {
        _cleanup_free_ char *command = strndup((const char *) data, size), *line = NULL;
        json_t *arguments, *o, *s;
        json_error_t err;
        int64_t id = (int64_t) (fnv1a(data, size) >> 1) * (size && (data[0] & 1) ? -1 : 1);
        QmpMessage m;
        size_t l;

        fuzz_check(command);
        arguments = json_loadb((const char *) data, size, 0, &err);
        if (!json_is_object(arguments)) {
                json_decref(arguments);
                arguments = NULL;
        }
        line = qmp_command_format(command, arguments, id);
        s = json_string(command);
        /* NULL only for a name jansson will not hold (not UTF-8). */
        fuzz_check(!line == !s);
        json_decref(s);
        if (!line) {
                json_decref(arguments);
                return;
        }
        l = strlen(line);
        fuzz_check(l > 0 && line[l - 1] == '\n');
        /* A second line would reach QEMU as a second command. */
        fuzz_check(!memchr(line, '\n', l - 1));
        o = json_loadb(line, l, 0, &err);
        fuzz_check(json_is_object(o));
        fuzz_check(json_object_size(o) == (arguments ? 3u : 2u));
        fuzz_check(streq(json_string_value(json_object_get(o, "execute")), command));
        fuzz_check(json_is_integer(json_object_get(o, "id")) && json_integer_value(json_object_get(o, "id")) == id);
        fuzz_check(!arguments || json_equal(json_object_get(o, "arguments"), arguments));
        fuzz_check(qmp_message_parse(line, l, &m) == -EBADMSG);
        json_decref(o);
        json_decref(arguments);
}

/* ---- the stream ---- */

#define N_COMMANDS 3

typedef struct Stream {
        int replies[N_COMMANDS];        /* calls of each command's callback */
        int last_error[N_COMMANDS];
        int closes, ready_calls, close_error;
        bool closed_before_reply[N_COMMANDS];
} Stream;

static Stream *stream_of(void *userdata, int *ret_index) {
        uintptr_t v = (uintptr_t) userdata;

        *ret_index = (int) (v & 3);
        return (Stream *) (v & ~(uintptr_t) 3);
}

static void on_reply(Qmp *q, int error, json_t *result, const char *error_class, const char *error_desc,
                     void *userdata) {
        int i;
        Stream *s = stream_of(userdata, &i);

        fuzz_check(i < N_COMMANDS);
        fuzz_check(s->closes == 0);     /* every reply comes before the close */
        s->replies[i]++;
        s->last_error[i] = error;
        fuzz_check(error == 0 || error == -EIO || error == -ECONNRESET);
        fuzz_check(error != -EIO || (error_class && error_desc));
        /* A reply before capabilities were negotiated would answer a command never sent. */
        fuzz_check(error != 0 || qmp_is_ready(q));
        n_replies += error != -ECONNRESET;
}

static void on_ready(Qmp *q, int error, void *userdata) {
        Stream *s = userdata;

        fuzz_check(error == 0 && qmp_is_ready(q));
        s->ready_calls++;
        n_streams_ready++;
}

static void on_close(Qmp *q, int error, void *userdata) {
        Stream *s = userdata;

        s->closes++;
        s->close_error = error;
}

/* What the client must do with the stream, written apart from qmp.c: each line ending in "\n"
 * is a message; a reply goes to the oldest command sent with its id (any, without one);
 * qmp_capabilities (id 4) is sent on the first greeting, the commands once it succeeded. Fills
 * want[] with each command's error and returns the close error, or 1 when the model does not
 * know (a line longer than the client keeps). */
static int model_stream(const uint8_t *data, size_t size, int want[N_COMMANDS]) {
        int sent[N_COMMANDS + 1], n_sent = 0;
        bool greeted = false;
        size_t start = 0;

        for (int i = 0; i < N_COMMANDS; i++)
                want[i] = -ECONNRESET;
        for (size_t i = 0; i < size; i++) {
                QmpMessage m;
                int k;

                if (data[i] != '\n')
                        continue;
                if (i - start > 60000)
                        return 1;
                if (qmp_message_parse((const char *) data + start, i + 1 - start, &m) < 0)
                        return -EBADMSG;
                start = i + 1;
                if (m.type == QMP_MESSAGE_GREETING && !greeted) {
                        greeted = true;
                        sent[n_sent++] = N_COMMANDS + 1;
                } else if (m.type == QMP_MESSAGE_RETURN || m.type == QMP_MESSAGE_ERROR) {
                        for (k = 0; k < n_sent && m.has_id && m.id != sent[k]; k++)
                                ;
                        if (k < n_sent) {
                                int id = sent[k];

                                memmove(sent + k, sent + k + 1, sizeof(int) * (size_t) (n_sent - k - 1));
                                n_sent--;
                                if (id == N_COMMANDS + 1 && m.type == QMP_MESSAGE_ERROR) {
                                        qmp_message_done(&m);
                                        return -EPROTO;
                                }
                                if (id == N_COMMANDS + 1)
                                        for (int c = 1; c <= N_COMMANDS; c++)
                                                sent[n_sent++] = c;
                                else
                                        want[id - 1] = m.type == QMP_MESSAGE_RETURN ? 0 : -EIO;
                        }
                }
                qmp_message_done(&m);
        }
        return size - start > 60000 ? 1 : 0;
}

static void fuzz_stream(const uint8_t *data, size_t size) {
        static const char *const commands[N_COMMANDS] = { "query-status", "screendump", "human-monitor-command" };
        static sd_event *e;     /* one loop for every input: a new one per input costs more than the input */
        Qmp *q = NULL;
        Stream *s = calloc(1, sizeof(Stream));  /* malloc'ed: its low bits are free for the index */
        const QmpCallbacks cb = { .on_ready = on_ready, .on_close = on_close };
        int fds[2];
        size_t off = 0;

        fuzz_check(s);
        if (!e)
                fuzz_check(sd_event_new(&e) >= 0);
        fuzz_check(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) == 0);
        fuzz_check(qmp_new(e, fds[0], &cb, s, &q) == 0);
        /* Ids 1 to 3; qmp_capabilities gets id 4 once the greeting arrives. */
        for (int i = 0; i < N_COMMANDS; i++) {
                json_t *arguments = i == 1 ? json_pack("{s:s}", "filename", "x.png") : NULL;

                fuzz_check(qmp_execute(q, commands[i], arguments, on_reply, (void *) ((uintptr_t) s | (uintptr_t) i)) ==
                           i + 1);
                json_decref(arguments);
        }

        /* What QEMU sends, then the end of the stream; the client reads it all on the loop. */
        while (off < size) {
                ssize_t n = send(fds[1], data + off, size - off, MSG_NOSIGNAL | MSG_DONTWAIT);

                if (n < 0 && errno == EAGAIN) {
                        fuzz_check(sd_event_run(e, 0) >= 0);
                        if (s->closes)
                                break;
                        continue;
                }
                if (n < 0)      /* the client closed its end: it refused the stream */
                        break;
                off += (size_t) n;
        }
        shutdown(fds[1], SHUT_WR);
        for (int k = 0; k < 1000 && !s->closes; k++)
                fuzz_check(sd_event_run(e, UINT64_MAX) >= 0);

        fuzz_check(s->closes == 1);
        fuzz_check(s->close_error == 0 || s->close_error == -EBADMSG || s->close_error == -EPROTO ||
                   s->close_error == -ENOMEM);
        fuzz_check(s->ready_calls <= 1);
        for (int i = 0; i < N_COMMANDS; i++)
                fuzz_check(s->replies[i] == 1);
        fuzz_check(!qmp_is_ready(q) || s->ready_calls == 1);
        {
                int want[N_COMMANDS], close_error = model_stream(data, size, want);

                if (close_error != 1) {
                        if (s->close_error != close_error)
                                fprintf(stderr, "fuzz_qmp: the stream closed with %d, not %d\n", s->close_error,
                                        close_error);
                        fuzz_check(s->close_error == close_error);
                        for (int i = 0; i < N_COMMANDS; i++) {
                                if (s->last_error[i] != want[i])
                                        fprintf(stderr, "fuzz_qmp: command %d got %d, not %d\n", i + 1,
                                                s->last_error[i], want[i]);
                                fuzz_check(s->last_error[i] == want[i]);
                        }
                }
        }
        qmp_free(q);
        close(fds[1]);
        free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        fuzz_qmp(data, size);
        fuzz_qmp_command(data, size);
        fuzz_stream(data, size);
        return 0;
}

/* Pieces of QMP, so that mutants reach past the first check of each parser. */
static const char *const tokens[] = {
        "\r\n", "\n", "{", "}", "[", "]", ",", ":", "\"", "\\", "null", "true", "1", "2", "3", "1.5",
        "-9223372036854775808", "9223372036854775808", "\"return\":", "\"error\":", "\"event\":", "\"QMP\":",
        "\"id\":", "\"class\":", "\"desc\":", "\"data\":", "\"reason\":", "\"timestamp\":", "\"SHUTDOWN\"",
        "\"RESET\"", "{\"class\":\"C\",\"desc\":\"D\"}", "\"\\u0000\"", "\"\\ud800\"", "\"\\u00e9\"", "\xff",
        "\xc3\xa9", "{\"return\":{},\"id\":1}\n", "{\"return\":{},\"id\":2}\n", "{\"QMP\":{}}\n",
        "{\"error\":{\"class\":\"GenericError\",\"desc\":\"x\"},\"id\":3}\n",
};

static void summary(void) {
        fprintf(stderr, "fuzz_qmp: QMP %zu greetings %zu returns %zu errors %zu events %zu refused; "
                        "%zu streams negotiated, %zu replies\n",
                n_qmp[QMP_MESSAGE_GREETING], n_qmp[QMP_MESSAGE_RETURN], n_qmp[QMP_MESSAGE_ERROR],
                n_qmp[QMP_MESSAGE_EVENT], n_qmp_bad, n_streams_ready, n_replies);
}

const FuzzTarget fuzz_target = {
        .name = "qmp",
        .tokens = tokens,
        .n_tokens = ELEMENTSOF(tokens),
        .summary = summary,
};
