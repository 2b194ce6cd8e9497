/* report.c: builds the failure report from a Lua stack, keeping the frames a user wrote and
 * quoting the line of source each one was at. */
#define _GNU_SOURCE
#include <stdio.h>

#include "report.h"
#include "util.h"

/* A test script is small; anything far bigger is not one and not worth quoting. */
#define REPORT_SOURCE_MAX (16U * 1024U * 1024U)

#define REPORT_FILES_MAX 16

typedef struct SourceCache {
        const char *path[REPORT_FILES_MAX];
        char *text[REPORT_FILES_MAX];   /* NULL: could not be read */
        size_t n;
} SourceCache;

static int read_source_file(const char *path, char **ret, void *userdata _unused_) {
        _cleanup_fclose_ FILE *f = NULL;
        _cleanup_free_ char *buf = NULL;
        size_t len = 0, cap = 0;

        f = fopen(path, "re");
        if (!f)
                return -errno;

        for (;;) {
                size_t k;

                if (cap - len < 4096) {
                        char *n;

                        if (cap >= REPORT_SOURCE_MAX)
                                return -EFBIG;
                        cap = cap ? cap * 2 : 8192;
                        n = realloc(buf, cap + 1);
                        if (!n)
                                return -ENOMEM;
                        buf = n;
                }
                k = fread(buf + len, 1, cap - len, f);
                len += k;
                if (k == 0) {
                        if (ferror(f))
                                return -EIO;
                        break;
                }
        }

        buf[len] = '\0';
        *ret = TAKE_PTR(buf);
        return 0;
}

static const char *cache_get(SourceCache *c, const ReportInput *in, const char *path) {
        report_read_source_t reader = in->read_source ?: read_source_file;
        char *text = NULL;

        for (size_t i = 0; i < c->n; i++)
                if (streq(c->path[i], path))
                        return c->text[i];

        if (reader(path, &text, in->userdata) < 0)
                text = NULL;

        /* Frames from that many files are rare: past the cap, the last slot is reused. */
        if (c->n == REPORT_FILES_MAX)
                free(c->text[--c->n]);
        c->path[c->n] = path;
        c->text[c->n++] = text;
        return text;
}

static void cache_done(SourceCache *c) {
        for (size_t i = 0; i < c->n; i++)
                free(c->text[i]);
}

static bool is_space(char ch) {
        return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n' || ch == '\f' || ch == '\v';
}

/* Writes "    <line N of text, stripped>\n" when the text has such a non-blank line. */
static void put_source_line(FILE *out, const char *text, int line) {
        const char *p = text, *end;

        if (!text || line <= 0)
                return;

        for (int i = 1; i < line; i++) {
                p = strchr(p, '\n');
                if (!p)
                        return;
                p++;
        }

        end = strchr(p, '\n') ?: p + strlen(p);
        while (p < end && is_space(*p))
                p++;
        while (end > p && is_space(end[-1]))
                end--;
        if (end > p)
                fprintf(out, "    %.*s\n", (int) (end - p), p);
}

/* The path to show for a frame of user code, or NULL for C and embedded chunks. */
static const char *frame_path(const ReportInput *in, const ReportFrame *fr) {
        if (!fr->source)
                return NULL;

        if (in->script_path) {
                if (in->script_chunk ? streq(fr->source, in->script_chunk)
                                     : (fr->source[0] == '@' && streq(fr->source + 1, in->script_path)))
                        return in->script_path;
        }

        if (fr->source[0] == '@' && fr->source[1])
                return fr->source + 1;

        return NULL;
}

static void put_frame(FILE *out, SourceCache *cache, const ReportInput *in,
                      const ReportFrame *fr, const char *path) {
        fprintf(out, "  File \"%s\", ", path);
        if (fr->line > 0)
                fprintf(out, "line %d, ", fr->line);

        if (fr->function)
                fprintf(out, "in %s\n", fr->function);
        else if (fr->linedefined == 0)
                fputs("in main chunk\n", out);
        else if (fr->linedefined > 0)
                fprintf(out, "in function <%s:%d>\n", path, fr->linedefined);
        else
                fputs("in ?\n", out);

        put_source_line(out, cache_get(cache, in, path), fr->line);
}

/* "<Kind>: first line", then each further line indented under the first one's text. */
static void put_message(FILE *out, const char *kind, const char *msg) {
        size_t indent = strlen(kind) + 2;
        const char *p = msg, *end;
        bool first = true;

        end = p + strlen(p);
        while (end > p && (end[-1] == '\n' || end[-1] == '\r'))
                end--;

        if (end == p) {
                fprintf(out, "%s\n", kind);
                return;
        }

        while (p < end) {
                const char *nl = memchr(p, '\n', end - p) ?: end;
                const char *e = nl;

                if (e > p && e[-1] == '\r')
                        e--;

                if (first)
                        fprintf(out, "%s: %.*s\n", kind, (int) (e - p), p);
                else if (e > p)
                        fprintf(out, "%*s%.*s\n", (int) indent, "", (int) (e - p), p);
                else
                        fputc('\n', out);

                first = false;
                p = nl < end ? nl + 1 : end;
        }
}

char *report_format(const ReportInput *in) {
        _cleanup_free_ char *buf = NULL;
        SourceCache cache = {};
        const char *last_path = NULL;
        int last_line = 0;
        bool header = false;
        size_t size = 0;
        FILE *out;

        out = open_memstream(&buf, &size);
        if (!out)
                return NULL;

        for (size_t i = in->n_frames; i > 0; i--) {
                const ReportFrame *fr = &in->frames[i - 1];
                const char *path = frame_path(in, fr);

                if (!path)
                        continue;

                /* A recursive or tail call can repeat a location; once tells all. */
                if (last_path && streq(last_path, path) && last_line == fr->line)
                        continue;
                last_path = path;
                last_line = fr->line;

                if (!header) {
                        fputs("Traceback (most recent call last):\n", out);
                        header = true;
                }
                put_frame(out, &cache, in, fr, path);
        }

        if (header)
                fputc('\n', out);
        put_message(out, in->kind ?: "Error", in->message ?: "");

        cache_done(&cache);
        if (ferror(out)) {
                fclose(out);
                return NULL;
        }
        if (fclose(out) != 0)
                return NULL;

        return TAKE_PTR(buf);
}
