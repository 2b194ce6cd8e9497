/* pty_expect.c: a small expect(1) for the suite: runs a command in a pseudo-terminal and follows
 * steps read from stdin, one per line, printing one check line per `expect` and `exit`:
 *   send TEXT      type TEXT and Enter
 *   eof            type Ctrl-D
 *   expect TEXT    wait until TEXT appears in what the terminal showed since the last match
 *   exit N         wait until the command exits with status N
 * Usage: pty_expect SECONDS CMD [ARGS...] <steps   (SECONDS: the limit of each wait)
 * Ends with "N passed, N failed, N skipped"; exit 0 if every check passed, 1 if not, 77 without
 * a pseudo-terminal. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>

#include "util.h"

static unsigned n_passed, n_failed;
static int master = -1;
static pid_t child = -1;
static char out[1 << 20];
static size_t out_len, mark;   /* mark: where the next expect starts looking */
static bool out_eof;

uint64_t now_usec(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000u + (uint64_t) ts.tv_nsec / 1000u;
}

static void check(bool ok, const char *what, const char *text) {
        printf("%s - %s%s\n", ok ? "ok" : "not ok", what, text);
        fflush(stdout);
        if (ok)
                n_passed++;
        else
                n_failed++;
}

/* Read what the terminal shows for up to `ms` (less if it closes). */
static void read_some(int ms) {
        struct pollfd p = { .fd = master, .events = POLLIN };
        if (out_eof || poll(&p, 1, ms) <= 0)
                return;
        if (out_len >= sizeof out - 1) {
                /* keep the last half: a match never needs more */
                size_t keep = sizeof out / 2;
                memmove(out, out + out_len - keep, keep);
                mark = mark > out_len - keep ? mark - (out_len - keep) : 0;
                out_len = keep;
        }
        ssize_t n = read(master, out + out_len, sizeof out - 1 - out_len);
        if (n <= 0) {
                if (n == 0 || (errno != EINTR && errno != EAGAIN))
                        out_eof = true;   /* EIO: the command closed the terminal */
                return;
        }
        out_len += (size_t) n;
        out[out_len] = 0;
}

static void send_text(const char *s, size_t len) {
        while (len > 0) {
                ssize_t n = write(master, s, len);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return;
                }
                s += n;
                len -= (size_t) n;
        }
}

static void show_tail(void) {
        size_t from = out_len > 1500 ? out_len - 1500 : 0;
        printf("#   the terminal's last output:\n#   ");
        for (size_t i = from; i < out_len; i++) {
                putchar(out[i] == '\r' ? ' ' : out[i]);
                if (out[i] == '\n')
                        printf("#   ");
        }
        printf("\n");
}

int main(int argc, char **argv) {
        if (argc < 3) {
                fprintf(stderr, "usage: pty_expect SECONDS CMD [ARGS...] <steps\n");
                return 2;
        }
        uint64_t limit = (uint64_t) atoi(argv[1]) * 1000000u;
        struct winsize ws = { .ws_row = 24, .ws_col = 200 };

        child = forkpty(&master, NULL, NULL, &ws);
        if (child < 0) {
                printf("1..0 # SKIP pty: cannot open a pseudo-terminal: %m\n");
                return 77;
        }
        if (child == 0) {
                setenv("TERM", "dumb", 1);
                unsetenv("EDITRC");
                execvp(argv[2], argv + 2);
                _exit(127);
        }

        char line[4096];
        bool exited = false;
        while (fgets(line, sizeof line, stdin)) {
                line[strcspn(line, "\n")] = 0;
                if (startswith(line, "send ")) {
                        send_text(line + 5, strlen(line + 5));
                        send_text("\r", 1);
                } else if (streq(line, "eof")) {
                        send_text("\x04", 1);
                } else if (startswith(line, "expect ")) {
                        const char *text = line + 7;
                        uint64_t deadline = now_usec() + limit;
                        char *hit;
                        while (!(hit = strstr(out + mark, text)) && !out_eof && now_usec() < deadline)
                                read_some(100);
                        check(hit, "the terminal shows: ", text);
                        if (hit)
                                mark = (size_t) (hit - out) + strlen(text);
                        else
                                show_tail();
                } else if (startswith(line, "exit ")) {
                        int want = atoi(line + 5), status = 0;
                        uint64_t deadline = now_usec() + limit;
                        pid_t r = 0;
                        while ((r = waitpid(child, &status, WNOHANG)) == 0 && now_usec() < deadline)
                                read_some(100);
                        exited = r == child;
                        int got = !exited ? -1 : WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
                        char what[64];
                        snprintf(what, sizeof what, "%d (got %d)", want, got);
                        check(got == want, "the command exits with status ", what);
                        if (got != want)
                                show_tail();
                } else if (line[0] && line[0] != '#') {
                        fprintf(stderr, "pty_expect: unknown step: %s\n", line);
                        return 2;
                }
        }
        if (!exited) {
                /* nothing may outlive the test: SIGTERM lets moonrig clean up, then SIGKILL */
                kill(child, SIGTERM);
                uint64_t deadline = now_usec() + 30 * 1000000u;
                while (waitpid(child, NULL, WNOHANG) == 0) {
                        if (now_usec() >= deadline) {
                                kill(child, SIGKILL);
                                waitpid(child, NULL, 0);
                                break;
                        }
                        read_some(100);
                }
        }
        printf("%u passed, %u failed, 0 skipped\n", n_passed, n_failed);
        return n_failed == 0 && n_passed > 0 ? 0 : 1;
}
