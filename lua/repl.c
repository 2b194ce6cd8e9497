/* repl.c: the interactive prompt (moonrig -I). The prompt and every line are tasks on the one
 * event loop, so nodes, timers and child processes are served while the prompt waits. */
#define _GNU_SOURCE
#include <editline/readline.h>
#include <lauxlib.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/stat.h>

#include "bridge.h"
#include "log.h"
#include "runtime.h"
#include "sched.h"
#include "util.h"

int repl_run(Runtime *rt, const char *script_path);

#define PROMPT "moonrig> "
#define PROMPT_MORE "moonrig>> "
#define HISTORY_FILE ".moonrig-history"
#define HISTORY_MAX 1000
/* How often (VM instructions) a running line looks for Ctrl-C, so that a loop that never
 * waits can be interrupted too. */
#define INTERRUPT_CHECK_COUNT 10000

/* Lua's own break characters, minus '.' and ':', so that "a.b:c" completes as one word. */
static char word_breaks[] = " \t\n\"'`<>=;|&{}()[],+-*/%^~#@$";

typedef enum {
        REPL_IDLE,
        REPL_PROMPT,    /* the prompt task waits for a line */
        REPL_RUNNING,   /* a line (or the declaration pass) runs */
} ReplState;

static struct {
        lua_State *L;
        ReplState state;
        bool tty;
        FILE *term;            /* where the line editor writes: the terminal */
        bool editing;          /* libedit is set up */
        bool interrupted;      /* Ctrl-C while running: the task is being cancelled */
        bool drop_line;        /* Ctrl-C just after Enter: that line does not run */
        int helpers_ref;       /* the Lua half (REPL_LUA) */
        char *pending;         /* the lines of an incomplete chunk so far */

        sd_event_source *input;
        bool blocking_input;   /* stdin is a regular file: epoll cannot watch it */
        Wait *wait;            /* the prompt task's */
        bool have_line;        /* a line (or the end of input) was read */
        char *line;            /* NULL at the end of input */

        char *inbuf;           /* when stdin is not a terminal: bytes not yet split */
        size_t inlen;
        bool in_eof;

        char **matches;        /* completion candidates of the current Tab */
        size_t n_matches, next_match;
        bool history_warned;
} R;

/* The Lua half: the declaration pass, printing results, test_script(). */
static const char REPL_LUA[] =
        "local internal, script = ...\n"
        "local pack, concat, repr, stdout = table.pack, table.concat, internal.repr, io.stdout\n"
        "local R = {}\n"
        "function R.declare()\n"
        "  internal.declaring = true\n"
        "  local ok, e = xpcall(script, function(e)\n"
        "    if rawequal(e, internal.STOP) then return e end\n"
        "    return internal.capture(e)\n"
        "  end)\n"
        "  internal.declaring = false\n"
        "  if not ok and not rawequal(e, internal.STOP) then error(e, 0) end\n"
        "end\n"
        "function R.run_line(chunk)\n"
        "  local r = pack(chunk())\n"
        "  if r.n == 0 then return end\n"
        "  local parts = {}\n"
        "  for i = 1, r.n do parts[i] = repr(r[i]) end\n"
        "  stdout:write(concat(parts, '\\t'), '\\n')\n"
        "  stdout:flush()\n"
        "end\n"
        "function R.test_script() script() end\n"
        "return R\n";

static void *mfree(void *p) {
        free(p);
        return NULL;
}

static void push_helper(const char *name) {
        lua_rawgeti(R.L, LUA_REGISTRYINDEX, R.helpers_ref);
        lua_getfield(R.L, -1, name);
        lua_remove(R.L, -2);
}

/* ---- Ctrl-C ---- */

static void prompt_show(void);

static void on_interrupt(void) {
        switch (R.state) {
        case REPL_RUNNING:
                if (!R.interrupted) {
                        R.interrupted = true;
                        sched_stop(128 + SIGINT);
                }
                break;
        case REPL_PROMPT:
                if (!R.tty) {
                        /* Nobody types at this prompt: Ctrl-C means what it means elsewhere. */
                        log_warning("received signal %s, stopping", strsignal(SIGINT));
                        sched_stop(128 + SIGINT);
                        break;
                }
                if (R.have_line) {
                        /* Enter was pressed, the prompt task has yet to hand the line over */
                        R.drop_line = true;
                        break;
                }
                /* Drop the line and any unfinished chunk; a fresh prompt. */
                R.pending = mfree(R.pending);
                rl_callback_handler_remove();
                fputs("^C\n", R.term);
                prompt_show();
                break;
        case REPL_IDLE:
                break;
        }
}

/* The signal reaches the loop only when the line waits; a line that computes forever is
 * stopped from this count hook, which looks for a pending SIGINT (it is blocked). */
static void interrupt_hook(lua_State *L, lua_Debug *ar) {
        (void) ar;
        if (R.state != REPL_RUNNING || L == R.L)
                return;
        if (!R.interrupted) {
                sigset_t pending, only;
                if (sigpending(&pending) < 0 || !sigismember(&pending, SIGINT))
                        return;
                sigemptyset(&only);
                sigaddset(&only, SIGINT);
                (void) sigtimedwait(&only, NULL, &(struct timespec) {});
                on_interrupt();
        }
        luaL_error(L, "interrupted");
}

static void running_begin(void) {
        R.state = REPL_RUNNING;
        R.interrupted = false;
        /* tasks inherit the hook from the state that spawns them */
        lua_sethook(R.L, interrupt_hook, LUA_MASKCOUNT, INTERRUPT_CHECK_COUNT);
}

/* Returns true if Ctrl-C ended the task; that was said, and nothing is left on the stack. */
static bool running_end(void) {
        lua_sethook(R.L, NULL, 0, 0);
        R.state = REPL_IDLE;
        if (!R.interrupted)
                return false;
        R.interrupted = false;
        fflush(stdout);
        /* on a terminal, after the "^C" that it echoed */
        fputs(R.tty ? "\ninterrupted\n" : "interrupted\n", stderr);
        return true;
}

/* ---- reading lines ---- */

static void prompt_wake(void) {
        if (!R.have_line || !R.wait)
                return;
        sd_event_source_set_enabled(R.input, SD_EVENT_OFF);
        Wait *w = TAKE_PTR(R.wait);
        sched_wake_ok(w);
}

static void on_readline(char *line) {
        /* libedit has put the terminal back in its normal mode before calling this */
        R.line = line;
        R.have_line = true;
        if (!line)
                fputs("\n", R.term);   /* Ctrl-D left the cursor after the prompt */
}

static void prompt_show(void) {
        rl_callback_handler_install(R.pending ? PROMPT_MORE : PROMPT, on_readline);
}

/* Without a terminal: take one line out of the buffer, or the end of input. */
static bool input_take_line(void) {
        char *nl = R.inlen > 0 ? memchr(R.inbuf, '\n', R.inlen) : NULL;
        size_t len;

        if (nl)
                len = (size_t) (nl - R.inbuf);
        else if (R.in_eof)
                len = R.inlen;
        else
                return false;
        if (!nl && len == 0) {
                R.line = NULL;
                R.have_line = true;
                return true;
        }
        R.line = strndup(R.inbuf, len);
        R.have_line = true;
        if (!R.line) {
                log_error("out of memory reading the prompt's input");
                return true;   /* as the end of input */
        }
        if (len > 0 && R.line[len - 1] == '\r')
                R.line[len - 1] = 0;
        size_t used = nl ? len + 1 : len;
        memmove(R.inbuf, R.inbuf + used, R.inlen - used);
        R.inlen -= used;
        return true;
}

static void input_read(void) {
        char buf[4096];
        ssize_t n = read(STDIN_FILENO, buf, sizeof buf);
        if (n < 0) {
                if (errno == EAGAIN || errno == EINTR)
                        return;
                log_error("cannot read the prompt's input (stdin): %m");
                n = 0;
        }
        if (n == 0) {
                R.in_eof = true;
                return;
        }
        char *p = realloc(R.inbuf, R.inlen + (size_t) n);
        if (!p) {
                log_error("out of memory reading the prompt's input");
                R.in_eof = true;
                return;
        }
        R.inbuf = p;
        memcpy(R.inbuf + R.inlen, buf, (size_t) n);
        R.inlen += (size_t) n;
}

static int on_input(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        if (R.tty) {
                if (revents & (EPOLLHUP | EPOLLERR)) {
                        /* The terminal went away; libedit would read EIO and never finish. */
                        rl_callback_handler_remove();
                        R.line = NULL;
                        R.have_line = true;
                } else if (revents & EPOLLIN)
                        rl_callback_read_char();
        } else {
                input_read();
                input_take_line();
        }
        prompt_wake();
        return 0;
}

static void prompt_cancel(Wait *w) {
        (void) w;
        R.wait = NULL;
        sd_event_source_set_enabled(R.input, SD_EVENT_OFF);
        if (R.tty) {
                rl_callback_handler_remove();
                fputs("\n", R.term);
        }
}

/* The prompt task's body: returns once a line (or the end of input) was read. */
static int l_prompt(lua_State *L) {
        if (!R.tty && input_take_line())
                return 0;
        if (R.blocking_input) {
                while (!input_take_line())
                        input_read();
                return 0;
        }
        Wait *w = sched_wait_new(L, "a line at the prompt");
        w->cancel = prompt_cancel;
        R.wait = w;
        if (R.tty)
                prompt_show();
        sd_event_source_set_enabled(R.input, SD_EVENT_ON);
        return sched_suspend(L, w);
}

/* Read one line. Returns 0 (R.line holds it, NULL at the end of input) or a stop code. */
static int prompt_read(void) {
        bool ok;

        R.have_line = false;
        R.line = NULL;
        lua_pushcfunction(R.L, l_prompt);
        Task *t = sched_spawn(R.L, "prompt", 0);
        R.state = REPL_PROMPT;
        int code = sched_run_until(t, &ok, NULL);
        R.state = REPL_IDLE;
        if (code != 0)
                return code;
        if (!ok) {
                /* only running out of memory gets here */
                log_error("the prompt failed: %s", lua_tostring(R.L, -1) ?: "?");
                lua_pop(R.L, 1);
                return 1;
        }
        return 0;
}

/* ---- history ---- */

static void history_open(void) {
        stifle_history(HISTORY_MAX);
        if (access(HISTORY_FILE, F_OK) == 0 && read_history(HISTORY_FILE) != 0)
                log_warning("cannot read the history file %s; starting without it", HISTORY_FILE);
}

/* Append one entry in libedit's format: a header line, then each entry with blanks, controls,
 * backslashes and non-ASCII bytes as octal escapes (its strunvis decodes them). Not libedit's
 * append_history(): this version writes the previous entry again with each one. One write()
 * per entry, so that sessions side by side do not interleave. */
static int history_append(const char *line) {
        static const char cookie[] = "_HiStOrY_V2_\n";
        _cleanup_close_ int fd = open(HISTORY_FILE, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
        struct stat st;

        if (fd < 0 || fstat(fd, &st) < 0)
                return -errno;
        size_t len = strlen(line);
        _cleanup_free_ char *buf = malloc(sizeof cookie + 4 * len + 1);
        if (!buf)
                return -ENOMEM;
        char *p = buf;
        if (st.st_size == 0)
                p = stpcpy(p, cookie);
        for (const unsigned char *c = (const unsigned char *) line; *c; c++) {
                if (*c <= ' ' || *c >= 0x7f || *c == '\\')
                        p += sprintf(p, "\\%03o", *c);
                else
                        *p++ = (char) *c;
        }
        *p++ = '\n';
        ssize_t n = write(fd, buf, (size_t) (p - buf));
        if (n < 0)
                return -errno;
        return n == p - buf ? 0 : -EIO;
}

/* Keep the file to its last HISTORY_MAX entries. Not libedit's history_truncate_file(): it
 * drops the header line, and the next session could not read the file. */
static void history_trim(void) {
        static const char cookie[] = "_HiStOrY_V2_\n";
        _cleanup_free_ char *text = NULL, *tmp = NULL;
        _cleanup_fclose_ FILE *f = fopen(HISTORY_FILE, "re");
        size_t size = 0;

        if (!f)
                return;
        _cleanup_fclose_ FILE *m = open_memstream(&text, &size);
        if (!m)
                return;
        char buf[65536];
        size_t n;
        while ((n = fread(buf, 1, sizeof buf, f)) > 0)
                fwrite(buf, 1, n, m);
        if (ferror(f) || fflush(m) != 0 || !startswith(text, cookie))
                return;

        size_t entries = 0;
        for (size_t i = sizeof cookie - 1; i < size; i++)
                entries += text[i] == '\n';
        if (entries <= HISTORY_MAX)
                return;
        const char *keep = text + sizeof cookie - 1;
        for (size_t drop = entries - HISTORY_MAX; drop > 0; drop--)
                keep = strchr(keep, '\n') + 1;

        if (asprintf(&tmp, "%s.XXXXXX", HISTORY_FILE) < 0)
                return;
        _cleanup_close_ int fd = mkostemp(tmp, O_CLOEXEC);
        if (fd < 0)
                return;
        size_t keep_len = size - (size_t) (keep - text);
        if (fchmod(fd, 0600) < 0 ||
            write(fd, cookie, sizeof cookie - 1) != (ssize_t) (sizeof cookie - 1) ||
            write(fd, keep, keep_len) != (ssize_t) keep_len ||
            rename(tmp, HISTORY_FILE) < 0)
                (void) unlink(tmp);
}

static void history_add(const char *line) {
        if (!line[strspn(line, " \t")])
                return;
        HIST_ENTRY *last = history_length > 0 ? history_get(history_base + history_length - 1) : NULL;
        if (last && last->line && streq(last->line, line))
                return;
        add_history(line);
        if (R.history_warned)
                return;
        int r = history_append(line);
        if (r < 0) {
                R.history_warned = true;
                log_warning("cannot write the history file %s: %s; this session's history will not be kept",
                            HISTORY_FILE, strerror(-r));
        }
}

/* ---- completion ---- */

static const char *const lua_keywords[] = {
        "and", "break", "do", "else", "elseif", "end", "false", "for", "function", "goto", "if",
        "in", "local", "nil", "not", "or", "repeat", "return", "then", "true", "until", "while",
};

static bool is_keyword(const char *s) {
        for (size_t i = 0; i < ELEMENTSOF(lua_keywords); i++)
                if (streq(s, lua_keywords[i]))
                        return true;
        return false;
}

static bool is_identifier(const char *s, size_t len) {
        if (len == 0 || !(s[0] == '_' || (s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z')))
                return false;
        for (size_t i = 1; i < len; i++)
                if (!(s[i] == '_' || (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
                      (s[i] >= '0' && s[i] <= '9')))
                        return false;
        return true;
}

/* Append to the array at `list` the tables where obj's fields are found: obj itself and, through
 * its metatable's __index, the tables behind it (an __index function's table upvalues too,
 * the usual shape of a class whose methods live in a table the function closes over). Only
 * raw accesses: completing must never run code. */
static void add_sources(lua_State *L, int list, int obj, int depth) {
        if (depth > 8)
                return;
        if (lua_istable(L, obj)) {
                lua_pushvalue(L, obj);
                lua_rawseti(L, list, (lua_Integer) lua_rawlen(L, list) + 1);
        }
        if (!lua_getmetatable(L, obj))
                return;
        lua_pushliteral(L, "__index");
        int type = lua_rawget(L, -2);
        int index = lua_gettop(L);
        if (type == LUA_TTABLE || type == LUA_TUSERDATA)
                add_sources(L, list, index, depth + 1);
        else if (type == LUA_TFUNCTION)
                for (int i = 1; lua_getupvalue(L, index, i); i++) {
                        if (lua_istable(L, -1))
                                add_sources(L, list, lua_gettop(L), depth + 1);
                        lua_pop(L, 1);
                }
        lua_pop(L, 2);
}

/* Push the array of source tables of the value at obj. */
static void push_sources(lua_State *L, int obj) {
        obj = lua_absindex(L, obj);
        lua_newtable(L);
        add_sources(L, lua_gettop(L), obj, 0);
}

/* Replace the value on the top with its field `key` (nil when none). */
static void field_lookup(lua_State *L, const char *key, size_t len) {
        int obj = lua_gettop(L);
        push_sources(L, obj);
        int list = obj + 1;
        lua_pushnil(L);
        for (lua_Integer i = 1; lua_isnil(L, -1) && i <= (lua_Integer) lua_rawlen(L, list); i++) {
                lua_pop(L, 1);
                lua_rawgeti(L, list, i);
                lua_pushlstring(L, key, len);
                lua_rawget(L, -2);
                lua_remove(L, -2);
        }
        lua_replace(L, obj);
        lua_settop(L, obj);
}

static bool is_callable(lua_State *L, int idx) {
        if (lua_isfunction(L, idx))
                return true;
        if (!lua_getmetatable(L, idx))
                return false;
        lua_pushliteral(L, "__call");
        bool r = lua_rawget(L, -2) != LUA_TNIL;
        lua_pop(L, 2);
        return r;
}

static void matches_free(void) {
        for (size_t i = 0; i < R.n_matches; i++)
                free(R.matches[i]);
        R.matches = mfree(R.matches);
        R.n_matches = R.next_match = 0;
}

static void match_add(const char *prefix, size_t prefix_len, const char *name) {
        char **m = reallocarray(R.matches, R.n_matches + 1, sizeof(char *));
        if (!m)
                return;
        R.matches = m;
        if (asprintf(&R.matches[R.n_matches], "%.*s%s", (int) prefix_len, prefix, name) >= 0)
                R.n_matches++;
}

/* Add the fields of the value on the top that start with `partial`, each after `prefix`. */
static void add_fields(lua_State *L, const char *prefix, size_t prefix_len, const char *partial,
                       bool methods_only) {
        size_t plen = strlen(partial);
        push_sources(L, -1);
        int list = lua_gettop(L);
        for (lua_Integer i = 1; i <= (lua_Integer) lua_rawlen(L, list); i++) {
                lua_rawgeti(L, list, i);
                int t = lua_gettop(L);
                lua_pushnil(L);
                while (lua_next(L, t)) {
                        size_t klen = 0;
                        /* never lua_tolstring a number key: it would confuse lua_next */
                        const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tolstring(L, -2, &klen) : NULL;
                        if (k && is_identifier(k, klen) && !is_keyword(k) && strncmp(k, partial, plen) == 0 &&
                            (!startswith(k, "__") || startswith(partial, "__")) &&
                            (!methods_only || is_callable(L, -1)))
                                match_add(prefix, prefix_len, k);
                        lua_pop(L, 1);
                }
                lua_pop(L, 1);
        }
        lua_pop(L, 1);
}

static int match_cmp(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

/* Fill R.matches with the completions of `text`: a global, or a field after "a.b." or a
 * method after "a.b:". */
static void complete_collect(const char *text) {
        lua_State *L = R.L;
        int top = lua_gettop(L);
        const char *sep = NULL;

        matches_free();
        for (const char *p = text; *p; p++)
                if (*p == '.' || *p == ':')
                        sep = p;

        lua_pushglobaltable(L);
        if (!sep) {
                add_fields(L, "", 0, text, false);
                for (size_t i = 0; i < ELEMENTSOF(lua_keywords); i++)
                        if (startswith(lua_keywords[i], text))
                                match_add("", 0, lua_keywords[i]);
        } else {
                bool ok = true;
                for (const char *p = text; ok && p < sep;) {
                        const char *end = p + strcspn(p, ".:");
                        if (*end == ':' && end != sep)
                                ok = false;   /* "a:b.c" is no name */
                        else if (!is_identifier(p, (size_t) (end - p)))
                                ok = false;
                        else {
                                field_lookup(L, p, (size_t) (end - p));
                                ok = !lua_isnil(L, -1);
                        }
                        p = end + 1;
                }
                if (ok)
                        add_fields(L, text, (size_t) (sep - text) + 1, sep + 1, *sep == ':');
        }
        lua_settop(L, top);

        if (R.n_matches > 1) {
                qsort(R.matches, R.n_matches, sizeof(char *), match_cmp);
                size_t n = 1;
                for (size_t i = 1; i < R.n_matches; i++) {
                        if (streq(R.matches[i], R.matches[n - 1]))
                                free(R.matches[i]);
                        else
                                R.matches[n++] = R.matches[i];
                }
                R.n_matches = n;
        }
}

static char *complete_next(const char *text, int state) {
        (void) text;
        if (state == 0)
                R.next_match = 0;
        if (R.next_match >= R.n_matches)
                return NULL;
        return strdup(R.matches[R.next_match++]);
}

static char **complete(const char *text, int start, int end) {
        (void) start;
        (void) end;
        rl_attempted_completion_over = 1;   /* never fall back to file names */
        complete_collect(text);
        char **r = R.n_matches > 0 ? rl_completion_matches(text, complete_next) : NULL;
        matches_free();
        return r;
}

/* ---- the input ---- */

static int input_open(void) {
        int r = sd_event_add_io(sched_event(), &R.input, STDIN_FILENO, EPOLLIN, on_input, NULL);
        if (r == -EPERM && !R.tty)
                R.blocking_input = true;   /* a regular file: reading it never waits long */
        else if (r < 0) {
                log_error("cannot watch the prompt's input (stdin): %s", strerror(-r));
                return r;
        } else
                sd_event_source_set_enabled(R.input, SD_EVENT_OFF);

        if (!R.tty)
                return 0;
        /* values go to stdout; when that is a file, the editor still talks to the terminal */
        R.term = !isatty(STDOUT_FILENO) && isatty(STDERR_FILENO) ? stderr : stdout;
        rl_outstream = R.term;
        rl_readline_name = "moonrig";   /* for "moonrig:" lines in ~/.editrc */
        rl_catch_signals = 0;           /* SIGINT goes to the loop; libedit must not take it */
        rl_attempted_completion_function = complete;
        rl_basic_word_break_characters = word_breaks;
        rl_completer_word_break_characters = word_breaks;
        rl_completion_append_character = '\0';
        rl_initialize();
        R.editing = true;
        history_open();
        return 0;
}

static void input_close(void) {
        if (R.editing) {
                rl_callback_handler_remove();
                if (!R.history_warned)
                        history_trim();
        }
        R.input = sd_event_source_disable_unref(R.input);
        R.inbuf = mfree(R.inbuf);
        R.inlen = 0;
}

/* ---- lines ---- */

static bool incomplete(const char *msg) {
        static const char mark[] = "<eof>";
        size_t len = strlen(msg);
        return len >= sizeof mark - 1 && streq(msg + len - (sizeof mark - 1), mark);
}

/* Compile text as an expression whose values are printed, else as statements. Returns 1 with
 * the function pushed, 0 when the text is incomplete, -1 after printing a syntax error. */
static int compile(const char *text) {
        lua_State *L = R.L;
        _cleanup_free_ char *expr = NULL;

        /* no ';' after it: "return {1," must read as unfinished, not as a stray ';' */
        if (asprintf(&expr, "return %s", text) < 0)
                return -1;
        if (luaL_loadbuffer(L, expr, strlen(expr), "=stdin") == LUA_OK)
                return 1;
        bool expr_incomplete = incomplete(lua_tostring(L, -1));
        lua_pop(L, 1);

        if (luaL_loadbuffer(L, text, strlen(text), "=stdin") == LUA_OK)
                return 1;
        const char *msg = lua_tostring(L, -1);
        /* "{1," is an unfinished expression, though as a statement it is just wrong */
        if (incomplete(msg) || expr_incomplete) {
                lua_pop(L, 1);
                return 0;
        }
        fflush(stdout);
        fprintf(stderr, "%s\n", msg);
        lua_pop(L, 1);
        return -1;
}

/* tostring() of the value on the top; __tostring may fail, hence protected. */
static int l_describe(lua_State *L) {
        luaL_tolstring(L, 1, NULL);
        return 1;
}

static void print_error(void) {
        lua_State *L = R.L;
        lua_pushcfunction(L, l_describe);
        lua_insert(L, -2);
        const char *s = lua_pcall(L, 1, 1, 0) == LUA_OK ? lua_tostring(L, -1) : NULL;
        fflush(stdout);
        fprintf(stderr, "%s\n", s ?: "(an error that cannot be shown)");
        lua_pop(L, 1);
}

/* Run the compiled chunk on the top as a task that prints its values. */
static int run_line(void) {
        bool ok;

        push_helper("run_line");
        lua_insert(R.L, -2);
        running_begin();
        Task *t = sched_spawn(R.L, "interactive line", 1);
        int code = sched_run_until(t, &ok, NULL);
        if (running_end())
                return 0;
        if (code != 0)
                return code;
        if (!ok)
                print_error();
        fflush(stdout);
        return 0;
}

static int repl_loop(void) {
        for (;;) {
                int code = prompt_read();
                if (code != 0)
                        return code;
                if (!R.line)
                        return 0;
                _cleanup_free_ char *line = TAKE_PTR(R.line);
                if (R.tty)
                        history_add(line);
                if (R.drop_line) {
                        R.drop_line = false;
                        R.pending = mfree(R.pending);
                        fputs(R.tty ? "\ninterrupted\n" : "interrupted\n", stderr);
                        continue;
                }
                if (!R.pending && !line[strspn(line, " \t")])
                        continue;

                _cleanup_free_ char *text = NULL;
                if (R.pending) {
                        if (asprintf(&text, "%s\n%s", R.pending, line) < 0)
                                return 1;
                        R.pending = mfree(R.pending);
                } else
                        text = TAKE_PTR(line);

                int r = compile(text);
                if (r == 0) {
                        R.pending = TAKE_PTR(text);
                        continue;
                }
                if (r < 0)
                        continue;
                code = run_line();
                if (code != 0)
                        return code;
        }
}

/* Load the Lua half and define test_script(). */
static int helpers_open(Runtime *rt) {
        lua_State *L = R.L;

        if (luaL_loadbuffer(L, REPL_LUA, sizeof REPL_LUA - 1, STDLIB_CHUNK_PREFIX "repl.lua") != LUA_OK) {
                log_error("the interactive mode's Lua part does not load: %s", lua_tostring(L, -1));
                lua_pop(L, 1);
                return -EINVAL;
        }
        bridge_internal(L);
        if (runtime_push_script(rt) < 0) {
                lua_pop(L, 2);
                log_error("no test script is loaded for the interactive mode");
                return -ENOENT;
        }
        if (lua_pcall(L, 2, 1, 0) != LUA_OK) {
                log_error("the interactive mode's Lua part fails: %s", lua_tostring(L, -1));
                lua_pop(L, 1);
                return -EINVAL;
        }
        R.helpers_ref = luaL_ref(L, LUA_REGISTRYINDEX);
        push_helper("test_script");
        lua_setglobal(L, "test_script");
        return 0;
}

/* The declaration pass: the script runs until its first action (internal.STOP). A mistake in
 * it is reported as a run reports it (runtime_call), and the prompt opens all the same. */
static int declare(Runtime *rt) {
        push_helper("declare");
        running_begin();
        int code = runtime_call(rt, 0, "declarations");
        if (running_end() || code <= 2)
                code = 0;

        bridge_internal(R.L);
        lua_pushboolean(R.L, false);
        lua_setfield(R.L, -2, "declaring");
        /* from now on, declaring a node that exists returns it (test_script() declares again) */
        lua_pushboolean(R.L, true);
        lua_setfield(R.L, -2, "redeclare");
        lua_pop(R.L, 1);
        return code;
}

int repl_run(Runtime *rt, const char *script_path) {
        int r, code;

        R = (__typeof__(R)) {
                .L = runtime_lua(rt),
                .tty = isatty(STDIN_FILENO),
                .term = stdout,
                .helpers_ref = LUA_NOREF,
        };

        r = helpers_open(rt);
        if (r < 0)
                return 1;
        runtime_set_interrupt_handler(on_interrupt);

        code = declare(rt);
        if (code == 0) {
                r = input_open();
                if (r < 0)
                        code = 1;
        }
        if (code == 0) {
                if (R.tty)
                        fprintf(stderr, "moonrig: interactive session for %s: test_script() runs the "
                                "script, Ctrl-D leaves.\n", script_path);
                code = repl_loop();
        }

        input_close();
        runtime_set_interrupt_handler(NULL);
        R.pending = mfree(R.pending);
        R.line = mfree(R.line);
        luaL_unref(R.L, LUA_REGISTRYINDEX, R.helpers_ref);
        return code;
}
