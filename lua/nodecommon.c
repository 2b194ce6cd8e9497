/* nodecommon.c: wait lists and console logs, shared by the container and VM handles. */
#define _GNU_SOURCE
#include <errno.h>
#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "nodecommon.h"
#include "util.h"

static void waitlist_add(WaitList *l, Wait *w) {
        if (l->n == l->cap) {
                l->cap = l->cap ? l->cap * 2 : 4;
                l->v = realloc(l->v, l->cap * sizeof(Wait *));
                if (!l->v)
                        abort();
        }
        l->v[l->n++] = w;
}

static void waitlist_remove(WaitList *l, Wait *w) {
        for (size_t i = 0; i < l->n; i++)
                if (l->v[i] == w) {
                        l->v[i] = l->v[--l->n];
                        return;
                }
}

void waitlist_wake(WaitList *l, const char *failure_kind, const char *message) {
        size_t n = l->n;
        Wait **v = l->v;
        l->v = NULL;
        l->n = l->cap = 0;
        for (size_t i = 0; i < n; i++) {
                v[i]->data = NULL;
                if (failure_kind)
                        sched_wake_failure(v[i], failure_kind, message);
                else
                        sched_wake_ok(v[i]);
        }
        free(v);
}

/* A list wait: data = the list. Its deadline is the scheduler's, which cancels (takes it off
 * the list) before it fails the wait with "timed out: <what>". */
static void listwait_cancel(Wait *w) {
        if (w->data)
                waitlist_remove(w->data, w);
        w->data = NULL;
}

int waitlist_suspend(lua_State *L, WaitList *l, double timeout, Wait *w) {
        w->data = l;
        w->cancel = listwait_cancel;
        waitlist_add(l, w);
        return sched_suspend_timeout(L, w, timeout > 0 ? (uint64_t) (timeout * 1e6) : SCHED_NO_DEADLINE, NULL);
}

int console_log_open(ConsoleLog *c, const char *path) {
        if (!path)
                return 0;
        c->file = fopen(path, "ae");
        if (!c->file)
                return -errno;
        setvbuf(c->file, NULL, _IOLBF, 0);
        return 0;
}

void console_log_add(ConsoleLog *c, const char *node, const char *line, size_t len) {
        size_t need = c->len + len + 2;
        if (need > c->cap) {
                size_t cap = c->cap ? c->cap : 4096;
                while (cap < need)
                        cap *= 2;
                char *p = realloc(c->text, cap);
                if (!p)
                        return;
                c->text = p;
                c->cap = cap;
        }
        memcpy(c->text + c->len, line, len);
        c->len += len;
        c->text[c->len++] = '\n';
        c->text[c->len] = 0;
        c->lines++;
        if (c->file) {
                fwrite(line, 1, len, c->file);
                fputc('\n', c->file);
        }
        log_serial(node, line, len);
        waitlist_wake(&c->waiters, NULL, NULL);
}

void console_log_done(ConsoleLog *c) {
        waitlist_wake(&c->waiters, NULL, NULL);
        free(c->text);
        if (c->file)
                fclose(c->file);
        *c = (ConsoleLog) {};
}
