/* repl_pty.c: drives `moonrig -I tests/integration/repl-test.lua` in a pseudo-terminal and checks
 * what a user sees, byte for byte: values, errors, continuation lines, completion, Ctrl-C,
 * history; then the same prompt with commands piped in.
 * Usage: MOONRIG=build/moonrig repl_pty [SCRIPT]   (exit 0: all passed, 1: a check failed,
 * 77: no moonrig binary). Needs no root: it runs moonrig with MOONRIG_NO_SANDBOX=1. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include "util.h"

#define PROMPT "moonrig> "
#define PROMPT_MORE "moonrig>> "

uint64_t now_usec(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000u + (uint64_t) ts.tv_nsec / 1000u;
}

static unsigned n_passed, n_failed;
static char moonrig[PATH_MAX], script[PATH_MAX], workdir[PATH_MAX];
static int master = -1;
static pid_t child = -1;

/* What came from the terminal since the last check. */
static char out[65536];
static size_t out_len;
static bool out_eof;

static bool check(bool ok, const char *format, ...) _printf_(2, 3);
static bool check(bool ok, const char *format, ...) {
        va_list ap;
        va_start(ap, format);
        printf("%s - ", ok ? "ok" : "not ok");
        vprintf(format, ap);
        printf("\n");
        va_end(ap);
        fflush(stdout);
        if (ok)
                n_passed++;
        else
                n_failed++;
        return ok;
}

/* Print bytes the way a C string literal would show them, so differences are visible. */
static void show(const char *label, const char *s, size_t len) {
        printf("#   %s \"", label);
        for (size_t i = 0; i < len; i++) {
                unsigned char c = (unsigned char) s[i];
                if (c == '\r')
                        printf("\\r");
                else if (c == '\n')
                        printf("\\n");
                else if (c == '\t')
                        printf("\\t");
                else if (c == '"' || c == '\\')
                        printf("\\%c", c);
                else if (c < 0x20 || c >= 0x7f)
                        printf("\\x%02x", c);
                else
                        putchar(c);
        }
        printf("\"\n");
}

static void on_alarm(int sig _unused_) {
        /* the last resort against a hang: nothing may outlive the test */
        if (child > 0)
                kill(child, SIGKILL);
        static const char msg[] = "not ok - the test ran past its 120 s limit\n";
        (void) !write(STDOUT_FILENO, msg, sizeof msg - 1);
        _exit(1);
}

static bool ends_with(const char *s, size_t len, const char *suffix) {
        size_t n = strlen(suffix);
        return len >= n && memcmp(s + len - n, suffix, n) == 0;
}

/* Read what the terminal shows until it ends with `until` (NULL: until the end), or the time is
 * up. Returns true if it got there. */
static bool read_until(const char *until, int timeout_ms) {
        uint64_t deadline = now_usec() + (uint64_t) timeout_ms * 1000;

        for (;;) {
                if (until && ends_with(out, out_len, until))
                        return true;
                if (out_eof)
                        return !until;
                uint64_t now = now_usec();
                if (now >= deadline)
                        return false;
                struct pollfd p = { .fd = master, .events = POLLIN };
                int r = poll(&p, 1, (int) ((deadline - now) / 1000) + 1);
                if (r < 0 && errno != EINTR)
                        return false;
                if (r <= 0)
                        continue;
                if (out_len >= sizeof out - 1) {
                        out_len = 0;   /* a runaway output: keep reading, the check fails */
                }
                ssize_t n = read(master, out + out_len, sizeof out - 1 - out_len);
                if (n < 0 && (errno == EINTR || errno == EAGAIN))
                        continue;
                if (n <= 0) {
                        out_eof = true;   /* EIO: the child closed the terminal */
                        continue;
                }
                out_len += (size_t) n;
                out[out_len] = 0;
        }
}

static void out_clear(void) {
        out_len = 0;
        out[0] = 0;
}

static void send_keys(const char *keys) {
        size_t len = strlen(keys);
        while (len > 0) {
                ssize_t n = write(master, keys, len);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return;
                }
                keys += n;
                len -= (size_t) n;
        }
}

/* Type `keys`, wait for the prompt `until`, and compare all the terminal showed meanwhile. */
static bool expect_screen(const char *what, const char *keys, const char *expected, const char *until,
                          int timeout_ms) {
        out_clear();
        send_keys(keys);
        bool got = read_until(until, timeout_ms);
        bool ok = got && out_len == strlen(expected) && memcmp(out, expected, out_len) == 0;
        check(ok, "%s", what);
        if (!ok) {
                if (!got)
                        printf("#   (no \"%s\" within %d ms)\n", until, timeout_ms);
                show("expected:", expected, strlen(expected));
                show("got:     ", out, out_len);
        }
        out_clear();
        return ok;
}

/* The history this session should leave, one entry per line as libedit stores them. */
static char history[8192];

static void history_expect(const char *entry) {
        size_t len = strlen(history);
        for (const char *c = entry; *c && len + 5 < sizeof history; c++) {
                if (*c == ' ')
                        len += (size_t) sprintf(history + len, "\\040");
                else
                        history[len++] = *c;
        }
        history[len++] = '\n';
        history[len] = 0;
}

/* A line typed at the prompt: its echo, its output, the next prompt. */
static bool expect_line(const char *what, const char *line, const char *output) {
        _cleanup_free_ char *keys = NULL, *expected = NULL;
        if (asprintf(&keys, "%s\r", line) < 0 || asprintf(&expected, "%s\r\n%s" PROMPT, line, output) < 0)
                abort();
        history_expect(line);
        return expect_screen(what, keys, expected, PROMPT, 10000);
}

static void remove_workdir(void) {
        _cleanup_closedir_ DIR *d = opendir(workdir);
        if (d)
                for (struct dirent *de; (de = readdir(d));)
                        if (!streq(de->d_name, ".") && !streq(de->d_name, ".."))
                                unlinkat(dirfd(d), de->d_name, 0);
        rmdir(workdir);
}

static pid_t session_start(void) {
        struct winsize ws = { .ws_row = 24, .ws_col = 100 };
        pid_t pid = forkpty(&master, NULL, NULL, &ws);
        if (pid < 0) {
                /* a container without /dev/ptmx, say: nothing to test here */
                printf("# skipped: cannot open a pseudo-terminal: %m\n");
                remove_workdir();
                exit(77);
        }
        if (pid == 0) {
                if (chdir(workdir) < 0)
                        _exit(127);
                /* a plain terminal, and none of the user's own editline settings */
                setenv("TERM", "dumb", 1);
                setenv("HOME", workdir, 1);
                unsetenv("EDITRC");
                setenv("MOONRIG_NO_SANDBOX", "1", 1);
                execl(moonrig, "moonrig", "-I", script, (char *) NULL);
                _exit(127);
        }
        out_clear();
        out_eof = false;
        return pid;
}

/* Wait for the child to exit; returns its status as a shell shows it, or -1 on a timeout. */
static int session_wait(pid_t pid, int timeout_ms) {
        uint64_t deadline = now_usec() + (uint64_t) timeout_ms * 1000;
        int status;

        for (;;) {
                pid_t r = waitpid(pid, &status, WNOHANG);
                if (r == pid)
                        break;
                if (now_usec() >= deadline) {
                        kill(pid, SIGKILL);
                        waitpid(pid, &status, 0);
                        return -1;
                }
                /* keep the terminal drained, or a blocked write would keep the child alive */
                struct pollfd p = { .fd = master, .events = POLLIN };
                if (poll(&p, 1, 20) > 0) {
                        char buf[4096];
                        (void) !read(master, buf, sizeof buf);
                }
        }
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static void session_end(void) {
        if (master >= 0)
                close(master);
        master = -1;
        child = -1;
}

static char *read_file(const char *path) {
        _cleanup_fclose_ FILE *f = fopen(path, "re");
        if (!f)
                return NULL;
        char *s = calloc(1, 65536);
        if (s)
                (void) !fread(s, 1, 65535, f);
        return s;
}

static void test_terminal(void) {
        _cleanup_free_ char *banner = NULL;

        child = session_start();
        if (asprintf(&banner, "moonrig: interactive session for %s: test_script() runs the script, "
                     "Ctrl-D leaves.\r\n" PROMPT, script) < 0)
                abort();
        bool got = read_until(PROMPT, 15000);
        check(got && streq(out, banner), "the prompt opens after the declaration pass, with its banner");
        if (!got) {
                show("got:", out, out_len);
                kill(child, SIGKILL);
                session_wait(child, 5000);
                session_end();
                return;
        }
        out_clear();

        expect_line("an expression prints its value", "1+1", "2\r\n");
        expect_line("a string prints quoted", "\"hi\" .. \"!\"", "\"hi!\"\r\n");
        expect_line("several values print separated by tabs", "1, \"a\", nil", "1\t\"a\"\tnil\r\n");
        expect_line("a statement prints nothing", "x = 40", "");
        expect_line("a global set by a statement is there", "x + 2", "42\r\n");
        expect_line("a global the script sets before its first action exists", "declared_before_action",
                    "\"declared\"\r\n");
        expect_line("the script's steps after its first action did not run", "ran_after_action", "nil\r\n");
        expect_line("test_script() runs the whole script", "test_script()", "");
        expect_line("after test_script() the later steps have run", "ran_after_action", "\"ran\"\r\n");
        expect_line("a failing expression prints the error and the prompt returns", "nosuch.field",
                    "Error: stdin:1: attempt to index a nil value (global 'nosuch')\r\n");
        expect_line("a failed expectation prints the failure", "expect.eq(1, 2)",
                    "TestFailure: expected values to be equal\r\n  first:  1\r\n  second: 2\r\n");
        /* as lua.c does, the error of the line read as a statement */
        expect_line("a syntax error is printed", "1 +* 2", "stdin:1: unexpected symbol near '1'\r\n");

        history_expect("function twice(x)");
        expect_screen("an unfinished function asks for more", "function twice(x)\r",
                      "function twice(x)\r\n" PROMPT_MORE, PROMPT_MORE, 10000);
        history_expect("  return 2 * x");
        expect_screen("a continuation line asks for more", "  return 2 * x\r",
                      "  return 2 * x\r\n" PROMPT_MORE, PROMPT_MORE, 10000);
        history_expect("end");
        expect_screen("the last line defines the function", "end\r", "end\r\n" PROMPT, PROMPT, 10000);
        expect_line("the function defined over three lines works", "twice(21)", "42\r\n");
        history_expect("{ 1,");
        expect_screen("an unfinished table constructor asks for more", "{ 1,\r",
                      "{ 1,\r\n" PROMPT_MORE, PROMPT_MORE, 10000);
        expect_line("and its value prints once complete", "2 }", "{ 1, 2 }\r\n");

        /* libedit rings the bell after each completion and redraws the line from its start */
        history_expect("declared_before_action");
        expect_screen("Tab completes a global from its prefix", "declared_be\t\r",
                      "declared_be\a\r" PROMPT "declared_before_action\r\n\"declared\"\r\n" PROMPT, PROMPT, 10000);
        history_expect("widget:frobnicate()");
        expect_screen("Tab completes a method after obj: (from the metatable's __index)", "widget:fro\t()\r",
                      "widget:fro\a\r" PROMPT "widget:frobnicate()\r\n\"frobbed w\"\r\n" PROMPT, PROMPT, 10000);
        history_expect("config.net.address");
        expect_screen("Tab completes a nested field after a.b.", "config.net.ad\t\r",
                      "config.net.ad\a\r" PROMPT "config.net.address\r\n\"10.0.0.1\"\r\n" PROMPT, PROMPT, 10000);
        /* widget's only callable field is frobnicate: after ':' it is the one candidate */
        expect_screen("Tab after obj: offers only methods", "widget:\t",
                      "widget:\a\r" PROMPT "widget:frobnicate", "widget:frobnicate", 10000);
        expect_screen("Ctrl-C at the prompt drops the line", "\x03", "^C\r\n" PROMPT, PROMPT, 10000);
        /* after '.', every field; a second Tab lists them (the layout is libedit's, 100 columns) */
        expect_screen("Tab after obj. with several fields completes nothing yet", "widget.\t",
                      "widget.\a\r" PROMPT "widget.", "\r" PROMPT "widget.", 10000);
        expect_screen("a second Tab lists all the fields", "\t",
                      "\r\nwidget.frobnicate widget.name       widget.size      \r\n\r\r\n" PROMPT "widget.",
                      "\r\n\r\r\n" PROMPT "widget.", 10000);
        expect_screen("Ctrl-C at the prompt drops the line", "\x03", "^C\r\n" PROMPT, PROMPT, 10000);
        expect_line("the prompt works after the dropped line", "1+2", "3\r\n");

        uint64_t t0 = now_usec();
        bool slept = expect_line("sleep(0.2) returns to the prompt", "sleep(0.2)", "");
        double took = (double) (now_usec() - t0) / 1e6;
        check(slept && took >= 0.2 && took < 5, "sleep(0.2) took %.2f s", took);

        history_expect("sleep(30)");
        out_clear();
        send_keys("sleep(30)\r");
        read_until("sleep(30)\r\n", 5000);
        usleep(300 * 1000);   /* let the line reach its wait */
        t0 = now_usec();
        expect_screen("Ctrl-C during sleep(30) cancels the line", "\x03", "^C\r\ninterrupted\r\n" PROMPT, PROMPT, 5000);
        took = (double) (now_usec() - t0) / 1e6;
        check(took < 3, "the prompt is back %.2f s after Ctrl-C, well before 30 s", took);

        history_expect("while true do end");
        out_clear();
        send_keys("while true do end\r");
        read_until("while true do end\r\n", 5000);
        usleep(300 * 1000);
        expect_screen("Ctrl-C stops a line that computes without waiting", "\x03",
                      "^C\r\ninterrupted\r\n" PROMPT, PROMPT, 5000);
        expect_line("the prompt works after the interrupted lines", "2 * 21", "42\r\n");

        out_clear();
        send_keys("\x04");
        read_until(NULL, 10000);
        check(startswith(out, "^D\r\n"), "Ctrl-D leaves the prompt on a new line");
        int status = session_wait(child, 10000);
        check(status == 0, "moonrig exits 0 after Ctrl-D (got %d)", status);
        session_end();

        _cleanup_free_ char *path = NULL, *expected = NULL;
        if (asprintf(&path, "%s/.moonrig-history", workdir) < 0 ||
            asprintf(&expected, "_HiStOrY_V2_\n%s", history) < 0)
                abort();
        _cleanup_free_ char *saved = read_file(path);
        bool same = saved && streq(saved, expected);
        check(same, "the history file holds each line entered, in libedit's format");
        if (!same) {
                show("expected:", expected, strlen(expected));
                if (saved)
                        show("got:     ", saved, strlen(saved));
        }
}

static void test_second_session(void) {
        child = session_start();
        bool got = read_until(PROMPT, 15000);
        check(got, "a second session opens its prompt");
        if (!got) {
                kill(child, SIGKILL);
                session_wait(child, 5000);
                session_end();
                return;
        }
        expect_screen("Up recalls the last line of the history file", "\x1b[A",
                      "\r" PROMPT "2 * 21", "2 * 21", 5000);
        expect_screen("Enter runs the recalled line", "\r", "\r\n42\r\n" PROMPT, PROMPT, 5000);
        /* the loop serves the signal while the prompt waits */
        kill(child, SIGTERM);
        int status = session_wait(child, 10000);
        check(status == 128 + SIGTERM, "SIGTERM at the prompt stops moonrig (status %d)", status);
        session_end();
}

/* Without a terminal the prompt reads lines from stdin, prints no prompt and no banner. */
static void test_pipe(void) {
        static const char input[] = "1+1\nfunction f()\n  return 5\nend\nf()\nnosuch()\n'last'";
        int in[2], outp[2], errp[2];

        if (pipe2(in, O_CLOEXEC) < 0 || pipe2(outp, O_CLOEXEC) < 0 || pipe2(errp, O_CLOEXEC) < 0) {
                check(false, "pipes for the piped session: %m");
                return;
        }
        pid_t pid = fork();
        if (pid < 0)
                abort();
        if (pid == 0) {
                dup2(in[0], STDIN_FILENO);
                dup2(outp[1], STDOUT_FILENO);
                dup2(errp[1], STDERR_FILENO);
                if (chdir(workdir) < 0)
                        _exit(127);
                setenv("MOONRIG_NO_SANDBOX", "1", 1);
                execl(moonrig, "moonrig", "-I", script, (char *) NULL);
                _exit(127);
        }
        child = pid;
        close(in[0]);
        close(outp[1]);
        close(errp[1]);
        (void) !write(in[1], input, sizeof input - 1);
        close(in[1]);

        char o[4096] = "", e[8192] = "";
        size_t ol = 0, el = 0;
        uint64_t deadline = now_usec() + 15 * 1000000u;
        struct pollfd p[2] = { { .fd = outp[0], .events = POLLIN }, { .fd = errp[0], .events = POLLIN } };
        while ((p[0].fd >= 0 || p[1].fd >= 0) && now_usec() < deadline) {
                if (poll(p, 2, 100) <= 0)
                        continue;
                for (int i = 0; i < 2; i++) {
                        if (p[i].fd < 0 || !p[i].revents)
                                continue;
                        char *buf = i == 0 ? o : e;
                        size_t *len = i == 0 ? &ol : &el;
                        size_t room = (i == 0 ? sizeof o : sizeof e) - 1 - *len;
                        ssize_t n = room > 0 ? read(p[i].fd, buf + *len, room) : 0;
                        if (n <= 0) {
                                close(p[i].fd);
                                p[i].fd = -1;
                        } else
                                *len += (size_t) n;
                }
        }
        for (int i = 0; i < 2; i++)
                if (p[i].fd >= 0)
                        close(p[i].fd);
        int status = session_wait(pid, 5000);
        child = -1;

        check(streq(o, "2\n5\n\"last\"\n"), "piped lines print their values on stdout, without prompts");
        if (!streq(o, "2\n5\n\"last\"\n"))
                show("got:", o, ol);
        check(strstr(e, "Error: stdin:1: attempt to call a nil value (global 'nosuch')\n") != NULL,
              "a piped line's error goes to stderr");
        check(!strstr(e, PROMPT) && !strstr(o, PROMPT), "no prompt is printed without a terminal");
        check(status == 0, "the end of piped input exits 0 (got %d)", status);
}

int main(int argc, char **argv) {
        const char *bin = getenv("MOONRIG") ?: "build/moonrig";
        const char *src = getenv("SRCDIR");
        char default_script[PATH_MAX];

        snprintf(default_script, sizeof default_script, "%s/tests/integration/repl-test.lua", src ?: ".");
        if (!realpath(bin, moonrig) || access(moonrig, X_OK) < 0) {
                printf("# skipped: no moonrig binary at %s (set MOONRIG)\n", bin);
                return 77;
        }
        if (!realpath(argc > 1 ? argv[1] : default_script, script)) {
                printf("not ok - the test script %s: %m\n", argc > 1 ? argv[1] : default_script);
                return 1;
        }
        snprintf(workdir, sizeof workdir, "/tmp/repl-pty-XXXXXX");
        if (!mkdtemp(workdir)) {
                perror("mkdtemp");
                return 1;
        }
        signal(SIGALRM, on_alarm);
        signal(SIGPIPE, SIG_IGN);
        alarm(120);

        test_terminal();
        test_second_session();
        test_pipe();

        remove_workdir();
        printf("%u passed, %u failed\n", n_passed, n_failed);
        return n_failed == 0 ? 0 : 1;
}
