/* qmp.c: QMP client on sd-event. QEMU writes one JSON object per line; replies come in the order
 * of the commands, and carry our "id" back, which is what matches them. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include "outbuf.h"
#include "qmp.h"
#include "util.h"

/* query-qom-list and friends can be long; a line past this is not QEMU talking. */
#define QMP_LINE_MAX (16u * 1024 * 1024)

typedef struct Pending {
        int id;
        qmp_reply_fn done;      /* NULL: forgotten, or our own qmp_capabilities */
        void *userdata;
        bool capabilities;
        char *line;             /* not sent yet (waiting for capabilities); NULL once sent */
        struct Pending *next;
} Pending;

struct Qmp {
        sd_event *event;
        int fd;
        sd_event_source *io;
        QmpCallbacks cb;
        void *userdata;

        char *in;
        size_t in_len, in_alloc;
        OutBuf out;

        bool greeted, ready, closed;
        int next_id;
        Pending *pending, *pending_tail;

        unsigned dispatching;
        bool doomed;
};

/* ---- pure helpers ---- */

int qmp_message_parse(const char *text, size_t len, QmpMessage *ret) {
        json_error_t err;
        json_t *root, *v;

        *ret = (QmpMessage) {};
        root = json_loadb(text, len, JSON_DECODE_ANY, &err);
        if (!root)
                return -EBADMSG;
        if (!json_is_object(root)) {
                json_decref(root);
                return -EBADMSG;
        }
        ret->root = root;
        v = json_object_get(root, "id");
        if (json_is_integer(v)) {
                ret->has_id = true;
                ret->id = json_integer_value(v);
        }
        if ((v = json_object_get(root, "return"))) {
                ret->type = QMP_MESSAGE_RETURN;
                ret->value = v;
        } else if ((v = json_object_get(root, "error"))) {
                const char *c = json_string_value(json_object_get(v, "class"));
                const char *d = json_string_value(json_object_get(v, "desc"));

                ret->type = QMP_MESSAGE_ERROR;
                ret->value = v;
                ret->error_class = c ? c : "";
                ret->error_desc = d ? d : "";
        } else if (json_is_string(v = json_object_get(root, "event"))) {
                ret->type = QMP_MESSAGE_EVENT;
                ret->event = json_string_value(v);
                ret->value = json_object_get(root, "data");
        } else if ((v = json_object_get(root, "QMP"))) {
                ret->type = QMP_MESSAGE_GREETING;
                ret->value = v;
        } else {
                json_decref(root);
                *ret = (QmpMessage) {};
                return -EBADMSG;
        }
        return 0;
}

void qmp_message_done(QmpMessage *m) {
        json_decref(m->root);
        *m = (QmpMessage) {};
}

char *qmp_command_format(const char *command, json_t *arguments, int64_t id) {
        json_t *o = json_object();
        char *s, *line = NULL;

        if (!o)
                return NULL;
        if (json_object_set_new(o, "execute", json_string(command)) < 0 ||
            (arguments && json_object_set(o, "arguments", arguments) < 0) ||
            json_object_set_new(o, "id", json_integer(id)) < 0) {
                json_decref(o);
                return NULL;
        }
        s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
        json_decref(o);
        if (s && asprintf(&line, "%s\n", s) < 0)
                line = NULL;
        free(s);
        return line;
}

/* ---- I/O ---- */

static void qmp_destroy(Qmp *q) {
        Pending *p;

        sd_event_source_disable_unref(q->io);
        if (q->fd >= 0)
                close(q->fd);
        while ((p = q->pending)) {
                q->pending = p->next;
                free(p->line);
                free(p);
        }
        free(q->in);
        outbuf_free(&q->out);
        sd_event_unref(q->event);
        free(q);
}

static void update_events(Qmp *q) {
        if (q->io)
                (void) sd_event_source_set_io_events(q->io, EPOLLIN | (q->out.len > 0 ? EPOLLOUT : 0));
}

/* A failed write means QEMU went away: the reader sees the hangup and closes. */
static void flush_out(Qmp *q) {
        outbuf_flush(&q->out, q->fd);
        update_events(q);
}

static int queue_out(Qmp *q, const char *line) {
        return outbuf_append(&q->out, line, strlen(line));
}

static Pending *pending_add(Qmp *q, char *line, qmp_reply_fn done, void *userdata) {
        Pending *p = calloc(1, sizeof *p);

        if (!p)
                return NULL;
        p->id = q->next_id++;
        if (q->next_id <= 0)
                q->next_id = 1;
        p->done = done;
        p->userdata = userdata;
        p->line = line;
        if (q->pending_tail)
                q->pending_tail->next = p;
        else
                q->pending = p;
        q->pending_tail = p;
        return p;
}

static Pending *pending_take(Qmp *q, const QmpMessage *m) {
        Pending **pp, *prev = NULL;

        for (pp = &q->pending; *pp; prev = *pp, pp = &(*pp)->next) {
                Pending *p = *pp;
                if (p->line)
                        continue;   /* not sent */
                if (m->has_id && m->id != p->id)
                        continue;
                *pp = p->next;
                if (q->pending_tail == p)
                        q->pending_tail = prev;
                return p;
        }
        return NULL;
}

static void qmp_close(Qmp *q, int error) {
        Pending *p;

        if (q->closed)
                return;
        q->closed = true;
        q->ready = false;
        q->io = sd_event_source_disable_unref(q->io);
        q->fd = (close(q->fd), -1);
        while (!q->doomed && (p = q->pending)) {
                q->pending = p->next;
                if (!q->pending)
                        q->pending_tail = NULL;
                if (p->done)
                        p->done(q, -ECONNRESET, NULL, NULL, NULL, p->userdata);
                free(p->line);
                free(p);
        }
        if (!q->doomed && q->cb.on_close)
                q->cb.on_close(q, error, q->userdata);
}

static void became_ready(Qmp *q) {
        q->ready = true;
        for (Pending *p = q->pending; p; p = p->next)
                if (p->line) {
                        if (queue_out(q, p->line) < 0) {
                                qmp_close(q, -ENOMEM);
                                return;
                        }
                        p->line = (free(p->line), NULL);
                }
        flush_out(q);
        if (q->cb.on_ready)
                q->cb.on_ready(q, 0, q->userdata);
}

static void dispatch(Qmp *q, const char *line, size_t len) {
        QmpMessage m;
        Pending *p;

        if (qmp_message_parse(line, len, &m) < 0) {
                qmp_close(q, -EBADMSG);
                return;
        }
        switch (m.type) {
        case QMP_MESSAGE_GREETING:
                if (!q->greeted) {
                        _cleanup_free_ char *l = qmp_command_format("qmp_capabilities", NULL, q->next_id);
                        q->greeted = true;
                        if (!l || !(p = pending_add(q, NULL, NULL, NULL)) || queue_out(q, l) < 0) {
                                qmp_close(q, -ENOMEM);
                                break;
                        }
                        p->capabilities = true;
                        flush_out(q);
                }
                break;
        case QMP_MESSAGE_RETURN:
        case QMP_MESSAGE_ERROR:
                p = pending_take(q, &m);
                if (!p)
                        break;   /* a reply to nothing we asked: ignore */
                if (p->capabilities) {
                        if (m.type == QMP_MESSAGE_RETURN)
                                became_ready(q);
                        else
                                qmp_close(q, -EPROTO);
                } else if (p->done) {
                        if (m.type == QMP_MESSAGE_RETURN)
                                p->done(q, 0, m.value, NULL, NULL, p->userdata);
                        else
                                p->done(q, -EIO, NULL, m.error_class, m.error_desc, p->userdata);
                }
                free(p);
                break;
        case QMP_MESSAGE_EVENT:
                if (q->cb.on_event)
                        q->cb.on_event(q, m.event, m.value, m.root, q->userdata);
                break;
        }
        qmp_message_done(&m);
}

static int on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Qmp *q = userdata;
        (void) s;

        q->dispatching++;
        if (revents & EPOLLOUT)
                flush_out(q);
        if (revents & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
                for (;;) {
                        ssize_t n;
                        char *nl;

                        if (q->in_alloc - q->in_len < 4096) {
                                size_t a = q->in_alloc ? q->in_alloc * 2 : 8192;
                                char *p = a > QMP_LINE_MAX * 2 ? NULL : realloc(q->in, a);
                                if (!p) {
                                        qmp_close(q, -EBADMSG);
                                        break;
                                }
                                q->in = p;
                                q->in_alloc = a;
                        }
                        n = recv(fd, q->in + q->in_len, q->in_alloc - q->in_len, MSG_DONTWAIT);
                        if (n < 0) {
                                if (errno == EINTR)
                                        continue;
                                if (errno != EAGAIN)
                                        qmp_close(q, errno == ECONNRESET ? 0 : -errno);
                                break;
                        }
                        if (n == 0) {
                                qmp_close(q, 0);
                                break;
                        }
                        q->in_len += (size_t) n;
                        while (!q->closed && !q->doomed && (nl = memchr(q->in, '\n', q->in_len))) {
                                size_t l = (size_t) (nl - q->in) + 1;
                                dispatch(q, q->in, l);
                                if (q->closed || q->doomed)
                                        break;
                                memmove(q->in, q->in + l, q->in_len - l);
                                q->in_len -= l;
                        }
                        if (q->closed || q->doomed)
                                break;
                        if (q->in_len > QMP_LINE_MAX) {
                                qmp_close(q, -EBADMSG);
                                break;
                        }
                }
        }
        if (--q->dispatching == 0 && q->doomed)
                qmp_destroy(q);
        return 0;
}

int qmp_new(sd_event *e, int fd, const QmpCallbacks *cb, void *userdata, Qmp **ret) {
        Qmp *q;
        int r;

        q = calloc(1, sizeof *q);
        if (!q) {
                close(fd);
                return -ENOMEM;
        }
        q->event = sd_event_ref(e);
        q->fd = fd;
        q->next_id = 1;
        if (cb)
                q->cb = *cb;
        q->userdata = userdata;
        (void) fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
        r = sd_event_add_io(e, &q->io, fd, EPOLLIN, on_io, q);
        if (r < 0) {
                qmp_destroy(q);
                return r;
        }
        (void) sd_event_source_set_description(q->io, "qmp");
        *ret = q;
        return 0;
}

int qmp_execute(Qmp *q, const char *command, json_t *arguments, qmp_reply_fn done, void *userdata) {
        Pending *p;
        char *line;

        if (q->closed)
                return -ENOTCONN;
        if (arguments && !json_is_object(arguments))
                return -EINVAL;
        line = qmp_command_format(command, arguments, q->next_id);
        if (!line)
                return -ENOMEM;
        p = pending_add(q, line, done, userdata);
        if (!p) {
                free(line);
                return -ENOMEM;
        }
        if (q->ready) {
                if (queue_out(q, p->line) < 0) {
                        p->done = NULL;   /* never sent; dropped with the connection */
                        return -ENOMEM;
                }
                p->line = (free(p->line), NULL);
                flush_out(q);
        }
        return p->id;
}

void qmp_forget(Qmp *q, int id) {
        for (Pending *p = q->pending; p; p = p->next)
                if (p->id == id)
                        p->done = NULL;
}

bool qmp_is_ready(Qmp *q) {
        return q && q->ready && !q->closed;
}

void qmp_free(Qmp *q) {
        if (!q)
                return;
        if (q->dispatching > 0) {
                q->doomed = true;
                q->io = sd_event_source_disable_unref(q->io);
                return;
        }
        qmp_destroy(q);
}
