/* sched.c: tasks are Lua threads resumed by the sd-event loop. A waiting C function yields
 * a tag; user coroutines pass that tag up (stdlib/coroutine.lua), so they keep working. */
#define _GNU_SOURCE
#include "sched.h"

#include <lauxlib.h>
#include <lualib.h>
#include <stdarg.h>

#include "exitcode.h"
#include "log.h"
#include "util.h"

struct Task {
        lua_State *L;
        int ref;              /* keeps the thread alive */
        char *name;
        Wait *wait;           /* what it waits for, if anything */
        struct Join *join;    /* the parallel() it belongs to, if any */
        int index;            /* its place in that join */
        bool finished, ok;
        int nresume;          /* values pushed for the next resume */
        bool queued;
        Task *prev, *next;    /* all live tasks */
        Task *qnext;          /* ready queue */
};

typedef struct Join {
        Wait *wait;           /* the parent's wait */
        Task **children;
        int n, pending;
        int *refs;            /* first result of each child */
        bool done;
} Join;

static struct {
        lua_State *L;
        sd_event *event;
        Task *tasks;
        Task *current;
        Task *ready_head, *ready_tail;
        sd_event_source *ready_source;
        sd_event_source *timeout_source;
        int stop_code;
        int failure_ref;      /* stdlib's failure constructor */
} S = { .failure_ref = LUA_NOREF };

static char sched_tag;  /* its address marks the runner's own yields */

sd_event *sched_event(void) { return S.event; }
lua_State *sched_main_state(void) { return S.L; }

static void task_resume(Task *t);

static int on_ready(sd_event_source *s, void *userdata) {
        /* Resume every task made ready; each may make more ready, which run on the next turn. */
        Task *head = S.ready_head;
        S.ready_head = S.ready_tail = NULL;
        while (head) {
                Task *t = head;
                head = t->qnext;
                t->qnext = NULL;
                t->queued = false;
                if (!t->finished)
                        task_resume(t);
        }
        if (!S.ready_head)
                sd_event_source_set_enabled(S.ready_source, SD_EVENT_OFF);
        return 0;
}

static void task_make_ready(Task *t) {
        if (t->queued)
                return;
        t->queued = true;
        if (S.ready_tail)
                S.ready_tail->qnext = t;
        else
                S.ready_head = t;
        S.ready_tail = t;
        sd_event_source_set_enabled(S.ready_source, SD_EVENT_ON);
}

int sched_init(lua_State *L, sd_event *e) {
        int r;

        S.L = L;
        S.event = e;
        r = sd_event_add_defer(e, &S.ready_source, on_ready, NULL);
        if (r < 0)
                return r;
        sd_event_source_set_enabled(S.ready_source, SD_EVENT_OFF);
        return 0;
}

static void wait_free(Wait *w) {
        if (!w)
                return;
        sd_event_source_disable_unref(w->deadline);
        free(w->what);
        free(w->where);
        free(w);
}

static void task_unlink(Task *t) {
        if (t->prev)
                t->prev->next = t->next;
        else if (S.tasks == t)
                S.tasks = t->next;
        if (t->next)
                t->next->prev = t->prev;
        t->prev = t->next = NULL;
}

static void task_cancel(Task *t) {
        if (t->finished)
                return;
        t->finished = true;
        t->ok = false;
        if (t->wait) {
                Wait *w = TAKE_PTR(t->wait);
                if (w->cancel)
                        w->cancel(w);
                wait_free(w);
        }
        task_unlink(t);
}

void sched_done(void) {
        while (S.tasks)
                task_cancel(S.tasks);
        S.ready_source = sd_event_source_disable_unref(S.ready_source);
        S.timeout_source = sd_event_source_disable_unref(S.timeout_source);
}

Task *sched_spawn(lua_State *L, const char *name, int nargs) {
        Task *t = calloc(1, sizeof(Task));
        if (!t)
                luaL_error(L, "out of memory");
        t->L = lua_newthread(L);
        t->ref = luaL_ref(L, LUA_REGISTRYINDEX);
        t->name = strdup(name ? name : "task");
        /* Move the function and its arguments to the new thread. */
        lua_xmove(L, t->L, nargs + 1);
        t->nresume = nargs;
        t->next = S.tasks;
        if (S.tasks)
                S.tasks->prev = t;
        S.tasks = t;
        task_make_ready(t);
        return t;
}

static void task_free(Task *t) {
        if (!t)
                return;
        if (t->queued) {
                Task **p = &S.ready_head;
                S.ready_tail = NULL;
                for (; *p; p = &(*p)->qnext) {
                        if (*p == t)
                                *p = t->qnext;
                        if (!*p)
                                break;
                        S.ready_tail = *p;
                }
        }
        luaL_unref(S.L, LUA_REGISTRYINDEX, t->ref);
        free(t->name);
        free(t);
}

bool sched_in_task(lua_State *L) {
        return S.current && lua_isyieldable(L);
}

char *sched_script_where(lua_State *L) {
        lua_Debug ar;

        for (int level = 0; lua_getstack(L, level, &ar); level++) {
                if (!lua_getinfo(L, "Sl", &ar))
                        continue;
                if (ar.currentline <= 0 || ar.source[0] != '@')
                        continue;
                char *s;
                if (asprintf(&s, "%s:%d", ar.source + 1, ar.currentline) < 0)
                        return NULL;
                return s;
        }
        return NULL;
}

Wait *sched_wait_new(lua_State *L, const char *fmt, ...) {
        if (!sched_in_task(L))
                luaL_error(L, "this call waits, and can only be made from a test script "
                              "(not from a metamethod or an iterator implemented in C)");

        Wait *w = calloc(1, sizeof(Wait));
        if (!w)
                luaL_error(L, "out of memory");
        va_list ap;
        va_start(ap, fmt);
        if (vasprintf(&w->what, fmt, ap) < 0)
                w->what = NULL;
        va_end(ap);
        w->where = sched_script_where(L);
        if (!w->where && S.current)
                w->where = sched_script_where(S.current->L);
        w->task = S.current;
        return w;
}

static int wait_continue(lua_State *L, int status, lua_KContext ctx) {
        int base = (int) ctx;
        (void) status;
        if (!lua_toboolean(L, base + 1)) {
                lua_pushvalue(L, base + 2);
                return lua_error(L);
        }
        return lua_gettop(L) - (base + 1);
}

void sched_wait_discard(Wait *w) {
        wait_free(w);
}

int sched_suspend(lua_State *L, Wait *w) {
        Task *t = w->task;
        t->wait = w;
        int base = lua_gettop(L);
        lua_pushlightuserdata(L, &sched_tag);
        return lua_yieldk(L, 1, base, wait_continue);
}

static int on_wait_deadline(sd_event_source *s _unused_, uint64_t usec _unused_, void *userdata) {
        Wait *w = userdata;

        w->deadline = sd_event_source_disable_unref(w->deadline);
        /* Detach the wait from what it waited on before it is woken (and freed). */
        if (w->cancel) {
                w->cancel(w);
                w->cancel = NULL;
        }
        if (w->on_timeout) {
                w->on_timeout(w);
                return 0;
        }
        char *msg = NULL;
        if (asprintf(&msg, "timed out: %s", w->what ? w->what : "waiting") < 0)
                msg = NULL;
        sched_wake_failure(w, "Timeout", msg ? msg : "timed out");
        free(msg);
        return 0;
}

int sched_suspend_timeout(lua_State *L, Wait *w, uint64_t timeout_usec, wait_timeout_fn on_timeout) {
        if (timeout_usec != SCHED_NO_DEADLINE) {
                int r = sd_event_add_time_relative(S.event, &w->deadline, CLOCK_MONOTONIC, timeout_usec, 1,
                                                   on_wait_deadline, w);
                if (r < 0) {
                        if (w->cancel)
                                w->cancel(w);
                        wait_free(w);
                        return luaL_error(L, "cannot arm a deadline: %s", strerror(-r));
                }
                w->on_timeout = on_timeout;
        }
        return sched_suspend(L, w);
}

void sched_wake(Wait *w, bool ok, sched_push_fn push, void *userdata) {
        Task *t = w->task;

        if (t->wait != w)
                return;   /* cancelled already */
        t->wait = NULL;
        wait_free(w);

        lua_pushboolean(t->L, ok);
        int n = push ? push(t->L, userdata) : 0;
        t->nresume = n + 1;
        task_make_ready(t);
}

void sched_wake_ok(Wait *w) {
        sched_wake(w, true, NULL, NULL);
}

void sched_push_failure(lua_State *L, const char *kind, const char *message) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, S.failure_ref);
        if (lua_isfunction(L, -1)) {
                lua_pushstring(L, kind);
                lua_pushstring(L, message);
                if (lua_pcall(L, 2, 1, 0) == LUA_OK)
                        return;
                lua_pop(L, 1);
        } else
                lua_pop(L, 1);
        lua_pushstring(L, message);
}

typedef struct { const char *kind, *message, *field, *value; } FailureArgs;

static int push_failure(lua_State *L, void *userdata) {
        FailureArgs *a = userdata;
        sched_push_failure(L, a->kind, a->message);
        if (a->field && a->value && lua_istable(L, -1)) {
                lua_pushstring(L, a->value);
                lua_setfield(L, -2, a->field);
        }
        return 1;
}

void sched_wake_failure(Wait *w, const char *kind, const char *message) {
        sched_wake_failure_field(w, kind, message, NULL, NULL);
}

void sched_wake_failure_field(Wait *w, const char *kind, const char *message, const char *field, const char *value) {
        FailureArgs a = { kind, message, field, value };
        sched_wake(w, false, push_failure, &a);
}

/* Turn any error value into a failure table that carries the frames where it happened. */
static void attach_frames(Task *t) {
        lua_State *L = t->L;

        if (!lua_istable(L, -1)) {
                const char *msg = luaL_tolstring(L, -1, NULL);
                char *m = strdup(msg ? msg : "(error object is not a string)");
                lua_pop(L, 2);
                sched_push_failure(L, "Error", m);
                free(m);
                if (!lua_istable(L, -1))
                        return;
        }
        if (lua_getfield(L, -1, "frames") != LUA_TNIL) {
                lua_pop(L, 1);
                return;
        }
        lua_pop(L, 1);

        lua_newtable(L);
        lua_Debug ar;
        int n = 0;
        for (int level = 0; lua_getstack(L, level, &ar); level++) {
                if (!lua_getinfo(L, "Sln", &ar))
                        continue;
                lua_createtable(L, 0, 3);
                lua_pushstring(L, ar.source);
                lua_setfield(L, -2, "source");
                lua_pushinteger(L, ar.currentline);
                lua_setfield(L, -2, "line");
                if (ar.name) {
                        lua_pushstring(L, ar.name);
                        lua_setfield(L, -2, "name");
                }
                lua_pushinteger(L, ar.linedefined);
                lua_setfield(L, -2, "linedefined");
                lua_rawseti(L, -2, ++n);
        }
        lua_setfield(L, -2, "frames");
}

static void join_child_finished(Task *t);

static void task_finish(Task *t, bool ok, int nres) {
        t->finished = true;
        t->ok = ok;
        task_unlink(t);
        if (!ok)
                attach_frames(t);
        else if (nres > 1)
                lua_pop(t->L, nres - 1);
        else if (nres == 0)
                lua_pushnil(t->L);
        /* The top of t->L is now the first result or the error. */
        if (t->join)
                join_child_finished(t);
}

static void task_resume(Task *t) {
        int nres = 0;
        Task *prev = S.current;

        S.current = t;
        int r = lua_resume(t->L, NULL, t->nresume, &nres);
        S.current = prev;
        t->nresume = 0;

        if (r == LUA_YIELD) {
                bool ours = nres >= 1 && lua_touserdata(t->L, -nres) == &sched_tag;
                lua_pop(t->L, nres);
                if (ours && t->wait)
                        return;
                lua_pushstring(t->L, "coroutine.yield() was called outside a coroutine "
                                     "(the test script itself cannot yield)");
                task_finish(t, false, 1);
                return;
        }
        task_finish(t, r == LUA_OK, r == LUA_OK ? nres : 1);
}

int sched_run_until(Task *t, bool *ret_ok, lua_State **ret_thread) {
        while (!t->finished && S.stop_code == 0) {
                int r = sd_event_run(S.event, UINT64_MAX);
                if (r < 0) {
                        log_error("event loop failed: %s", strerror(-r));
                        S.stop_code = EXIT_FAILED;
                }
        }
        if (!t->finished)
                task_cancel(t);
        *ret_ok = t->ok;
        if (ret_thread)
                *ret_thread = t->L;
        if (!t->ok && S.stop_code == 0)
                lua_xmove(t->L, S.L, 1);
        int code = S.stop_code;
        S.stop_code = 0;
        /* The thread stays referenced until the task is freed by the caller's next spawn. */
        task_free(t);
        return code;
}

void sched_stop(int code) {
        S.stop_code = code;
}

void sched_cancel_all(void) {
        while (S.tasks)
                task_cancel(S.tasks);
}

void sched_report_waits(void (*line)(const char *text)) {
        for (Task *t = S.tasks; t; t = t->next) {
                char *s = NULL;
                if (t->wait) {
                        if (asprintf(&s, "%s: waiting for %s, at %s", t->name,
                                     t->wait->what ?: "?", t->wait->where ?: "(unknown)") < 0)
                                s = NULL;
                } else if (asprintf(&s, "%s: running", t->name) < 0)
                        s = NULL;
                if (s)
                        line(s);
                free(s);
        }
}

static void log_wait_line(const char *text) {
        log_test_error("  %s", text);
}

static int on_global_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        log_test_error("timeout reached; test terminating...");
        log_test_error("what the test was doing:");
        sched_report_waits(log_wait_line);
        S.stop_code = EXIT_TIMEOUT;
        return 0;
}

int sched_arm_global_timeout(double seconds) {
        S.timeout_source = sd_event_source_disable_unref(S.timeout_source);
        return sd_event_add_time_relative(S.event, &S.timeout_source, CLOCK_MONOTONIC,
                                          (uint64_t) (seconds * 1e6), 1000,
                                          on_global_timeout, NULL);
}

/* ---- sleep ---- */

static int l_sleep(lua_State *L) {
        double seconds = luaL_checknumber(L, 1);
        luaL_argcheck(L, seconds >= 0, 1, "must not be negative");

        Wait *w = sched_wait_new(L, "sleep %.2f s", seconds);
        return sched_suspend_timeout(L, w, (uint64_t) (seconds * 1e6), sched_wake_ok);
}

/* ---- parallel ---- */

static void join_free(Join *j) {
        for (int i = 0; i < j->n; i++) {
                if (j->children[i]) {
                        task_cancel(j->children[i]);
                        task_free(j->children[i]);
                }
                luaL_unref(S.L, LUA_REGISTRYINDEX, j->refs[i]);
        }
        free(j->children);
        free(j->refs);
        free(j);
}

static void join_cancel(Wait *w) {
        join_free(w->data);
}

static int push_join_results(lua_State *L, void *userdata) {
        Join *j = userdata;
        luaL_checkstack(L, j->n, "parallel results");
        for (int i = 0; i < j->n; i++)
                lua_rawgeti(L, LUA_REGISTRYINDEX, j->refs[i]);
        return j->n;
}

static int push_moved_error(lua_State *L, void *userdata) {
        Task *child = userdata;
        lua_xmove(child->L, L, 1);
        return 1;
}

static void join_child_finished(Task *t) {
        Join *j = t->join;
        Wait *w = j->wait;

        if (t->ok) {
                j->refs[t->index] = luaL_ref(t->L, LUA_REGISTRYINDEX);
                if (--j->pending > 0)
                        return;
                sched_wake(w, true, push_join_results, j);
        } else
                /* The first error cancels the others (join_free) and is raised in the parent. */
                sched_wake(w, false, push_moved_error, t);
        join_free(j);
}

static int l_parallel(lua_State *L) {
        int n = lua_gettop(L);
        for (int i = 1; i <= n; i++)
                luaL_checktype(L, i, LUA_TFUNCTION);
        if (n == 0)
                return 0;

        Wait *w = sched_wait_new(L, "%d parallel tasks", n);
        Join *j = calloc(1, sizeof(Join));
        if (j) {
                j->children = calloc((size_t) n, sizeof(Task *));
                j->refs = calloc((size_t) n, sizeof(int));
        }
        if (!j || !j->children || !j->refs) {
                if (j) {
                        free(j->children);
                        free(j->refs);
                }
                free(j);
                wait_free(w);
                return luaL_error(L, "out of memory");
        }
        j->n = j->pending = n;
        j->wait = w;
        for (int i = 0; i < n; i++)
                j->refs[i] = LUA_NOREF;

        char *where = w->where ? w->where : "parallel";
        for (int i = 0; i < n; i++) {
                char name[256];
                snprintf(name, sizeof name, "parallel task %d of %s", i + 1, where);
                lua_pushvalue(L, i + 1);
                Task *t = sched_spawn(L, name, 0);
                t->join = j;
                t->index = i;
                j->children[i] = t;
        }
        w->data = j;
        w->cancel = join_cancel;
        return sched_suspend(L, w);
}

static int l_set_failure_constructor(lua_State *L) {
        luaL_checktype(L, 1, LUA_TFUNCTION);
        luaL_unref(L, LUA_REGISTRYINDEX, S.failure_ref);
        lua_pushvalue(L, 1);
        S.failure_ref = luaL_ref(L, LUA_REGISTRYINDEX);
        return 0;
}

static int l_yield_tag(lua_State *L) {
        lua_pushlightuserdata(L, &sched_tag);
        return 1;
}

static int l_now(lua_State *L) {
        lua_pushnumber(L, (double) now_usec() / 1e6);
        return 1;
}

void sched_open(lua_State *L) {
        static const luaL_Reg globals[] = {
                { "sleep", l_sleep },
                { "parallel", l_parallel },
                { NULL, NULL },
        };
        lua_pushglobaltable(L);
        luaL_setfuncs(L, globals, 0);
        lua_pop(L, 1);

        /* The stdlib's private hooks live in the registry table "moonrig.internal", the
         * scheduler's in its sub-table internal.sched. */
        static const luaL_Reg internal[] = {
                { "set_failure_constructor", l_set_failure_constructor },
                { "yield_tag", l_yield_tag },
                { "now", l_now },
                { NULL, NULL },
        };
        luaL_getsubtable(L, LUA_REGISTRYINDEX, "moonrig.internal");
        luaL_getsubtable(L, -1, "sched");
        luaL_setfuncs(L, internal, 0);
        lua_pop(L, 2);
}
