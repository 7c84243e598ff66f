/* codegen.c: the `codegen` kind: render a configured template tree with the
 * job's variables into a fresh directory.  docs/jobs.md documents the
 * template language for template authors; in short:
 *
 *   {{name}}            the variable's value (dotted names reach into maps,
 *                       {{.}} is the current item inside a section)
 *   {{name|json}}       ... as a JSON literal; |shell: one single-quoted shell
 *                       word; |html: & < > " ' escaped
 *   {{#name}}…{{/name}} once per list item, once for a true/non-empty value,
 *                       never for false, null, "", [] or a missing name
 *   {{^name}}…{{/name}} only when {{#name}} would render nothing
 *   {{~name}}           closes a section like {{/name}}: for file names,
 *                       which cannot hold a '/'
 *   {{! comment }}      nothing;  \{{  a literal "{{"
 * Substituting a missing variable, a map or a list is an error that names
 * the file, line and column.  File and directory names are rendered too; a
 * name that renders empty leaves that file or directory out.
 *
 * Trust: the template is chosen by name (args.template, a plain name) under
 * codegen.template_root.  The tree is walked with openat(O_NOFOLLOW) and
 * fstatat(AT_SYMLINK_NOFOLLOW) relative to directory descriptors, and any
 * symlink or special file in it is refused.  Every rendered name component
 * must be a plain name (no '/', not '.' or '..'), so the output cannot
 * leave its directory, whatever the variables say.  The tree is written
 * into a hidden staging directory under codegen.output_root (jobs/stage.h:
 * named after the worker's pid, swept once that worker is gone) and renamed
 * into place (renameat2 RENAME_NOREPLACE) only when complete, so a reader
 * never sees half a tree and an existing output is never overwritten.
 *
 * Budgets: codegen.max_bytes (all files' output together) and
 * codegen.max_steps (tags, section passes) are spent while rendering and
 * checked before output grows, so a small template whose nested sections
 * multiply stops at the limit instead of exhausting memory or time.
 *
 * Outputs: dir, files [{path, bytes, sha256}] in path order, and digest:
 * the SHA-256 of the manifest "<sha256>  <path>\n" per file (the format of
 * sha256sum), which identifies the whole tree. */
#include "codegen.h"
#include "args.h"
#include "config.h"
#include "config_jobs.h"
#include "jobctx.h"
#include "json.h"
#include "kind.h"
#include "mem.h"
#include "numfmt.h"
#include "sha256.h"
#include "stage.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_DEPTH 32          /* section nesting and directory depth */
#define NAME_LEN_MAX 255

/* ---- the template language ---- */

/* What one job may spend rendering, shared by every file and name it
 * renders: output bytes and steps of work.  A step is one tag handled, one
 * pass over a section's body, or 256 bytes scanned looking for a section's
 * end; nested list sections multiply the passes, so the steps, not the
 * template's size, bound the time a job can take. */
typedef struct budget {
    int64_t bytes_left;       /* output bytes still allowed (codegen.max_bytes) */
    int64_t steps_left;       /* steps still allowed (codegen.max_steps) */
} budget;

typedef struct tmpl {
    const char *file;         /* template path, for messages */
    const char *src;          /* the whole text, for line:column */
    const msgpack_object *stack[MAX_DEPTH + 1];
    int depth;                /* contexts pushed by sections */
    int nest;                 /* sections open, inverted ones included */
    sl_buf *out;
    budget *budget;           /* shared with the job's other renders */
    const char *bytes_key;    /* the setting bytes_left comes from, for messages */
    sl_err *err;
} tmpl;

static int tmpl_error(tmpl *t, const char *at, const char *fmt, const char *detail)
{
    int line = 1, col = 1;
    for (const char *p = t->src; p < at; p++) {
        if (*p == '\n') {
            line++;
            col = 1;
        } else {
            col++;
        }
    }
    char msg[300];
    snprintf(msg, sizeof msg, fmt, detail);
    return sl_err_set(t->err, SL_EINVAL, "template %s:%d:%d: %s", t->file, line, col, msg);
}

/* Spends n steps; -1 with a permanent error once the job's steps run out. */
static int spend(tmpl *t, const char *at, int64_t n)
{
    t->budget->steps_left -= n;
    if (t->budget->steps_left >= 0)
        return 0;
    tmpl_error(t, at, "rendering takes more than codegen.max_steps steps of work%s (nested "
               "list sections multiply: refused, not retried)", "");
    t->err->code = SL_EPERMANENT;
    return -1;
}

/* Appends data[0..n) to the output unless that passes the job's byte
 * budget: checked before the bytes are kept, so memory never grows past it. */
static int emit(tmpl *t, const char *at, const char *data, size_t n)
{
    if ((int64_t)n > t->budget->bytes_left) {
        char why[120];
        snprintf(why, sizeof why, "the output passes %s here: stopped, refused, not retried", t->bytes_key);
        tmpl_error(t, at, "%s", why);
        t->err->code = SL_EPERMANENT;
        return -1;
    }
    t->budget->bytes_left -= (int64_t)n;
    sl_buf_append(t->out, data, n);
    return 0;
}

static bool tag_name_valid(const char *s, size_t n)
{
    if (n == 1 && s[0] == '.')
        return true;
    if (n == 0 || n > 128 || s[0] == '.' || s[n - 1] == '.')
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.'))
            return false;
    }
    return true;
}

static const msgpack_object *map_get_n(const msgpack_object *m, const char *key, size_t n)
{
    if (m == NULL || m->type != MSGPACK_OBJECT_MAP)
        return NULL;
    for (uint32_t i = 0; i < m->via.map.size; i++) {
        const msgpack_object *k = &m->via.map.ptr[i].key;
        if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == n && memcmp(k->via.str.ptr, key, n) == 0)
            return &m->via.map.ptr[i].val;
    }
    return NULL;
}

/* Looks name[0..n) up: the first segment from the innermost context out,
 * the rest inside it.  NULL when missing. */
static const msgpack_object *lookup(const tmpl *t, const char *name, size_t n)
{
    if (n == 1 && name[0] == '.')
        return t->stack[t->depth];
    const char *dot = memchr(name, '.', n);
    size_t first = dot ? (size_t)(dot - name) : n;
    const msgpack_object *v = NULL;
    for (int d = t->depth; d >= 0 && v == NULL; d--)
        v = map_get_n(t->stack[d], name, first);
    while (v && dot) {
        const char *seg = dot + 1;
        dot = memchr(seg, '.', (size_t)(name + n - seg));
        v = map_get_n(v, seg, dot ? (size_t)(dot - seg) : (size_t)(name + n - seg));
    }
    return v;
}

static bool truthy(const msgpack_object *v)
{
    if (v == NULL)
        return false;
    switch (v->type) {
    case MSGPACK_OBJECT_NIL: return false;
    case MSGPACK_OBJECT_BOOLEAN: return v->via.boolean;
    case MSGPACK_OBJECT_STR: return v->via.str.size > 0;
    case MSGPACK_OBJECT_ARRAY: return v->via.array.size > 0;
    default: return true;
    }
}

/* Writes a scalar's text; -1 (message in *why) for maps, lists, NUL bytes. */
static int scalar_text(const msgpack_object *v, sl_buf *b, const char **why)
{
    switch (v->type) {
    case MSGPACK_OBJECT_NIL: return 0;
    case MSGPACK_OBJECT_BOOLEAN: sl_buf_puts(b, v->via.boolean ? "true" : "false"); return 0;
    case MSGPACK_OBJECT_POSITIVE_INTEGER: sl_buf_printf(b, "%llu", (unsigned long long)v->via.u64); return 0;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: sl_buf_printf(b, "%lld", (long long)v->via.i64); return 0;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64: {
        if (!isfinite(v->via.f64)) {
            *why = "is not a finite number";
            return -1;
        }
        char num[SL_NUMFMT_MAX];
        sl_buf_puts(b, sl_fmt_double(v->via.f64, num));
        return 0;
    }
    case MSGPACK_OBJECT_STR:
        if (memchr(v->via.str.ptr, '\0', v->via.str.size)) {
            *why = "contains a NUL byte";
            return -1;
        }
        sl_buf_append(b, v->via.str.ptr, v->via.str.size);
        return 0;
    default:
        *why = "is not a string, number or boolean";
        return -1;
    }
}

static void put_escaped(sl_buf *out, const char *filter, const char *s, size_t n, const msgpack_object *v)
{
    if (strcmp(filter, "json") == 0) {
        if (v->type == MSGPACK_OBJECT_STR)
            sl_json_put_string(out, s, n);
        else
            sl_buf_append(out, n ? s : "null", n ? n : 4);
    } else if (strcmp(filter, "shell") == 0) {
        sl_buf_putc(out, '\'');
        for (size_t i = 0; i < n; i++) {
            if (s[i] == '\'')
                sl_buf_puts(out, "'\\''");
            else
                sl_buf_putc(out, s[i]);
        }
        sl_buf_putc(out, '\'');
    } else if (strcmp(filter, "html") == 0) {
        for (size_t i = 0; i < n; i++) {
            switch (s[i]) {
            case '&': sl_buf_puts(out, "&amp;"); break;
            case '<': sl_buf_puts(out, "&lt;"); break;
            case '>': sl_buf_puts(out, "&gt;"); break;
            case '"': sl_buf_puts(out, "&quot;"); break;
            case '\'': sl_buf_puts(out, "&#39;"); break;
            default: sl_buf_putc(out, s[i]);
            }
        }
    } else {
        sl_buf_append(out, s, n);
    }
}

/* Finds the tag closing section name[0..n) in s[0..end), honouring nested
 * sections of the same name; sets *close to the "{{" and *after past "}}". */
static bool find_close(const char *s, const char *end, const char *name, size_t n, const char **close,
                       const char **after)
{
    int nest = 0;
    for (const char *p = s; p + 1 < end; p++) {
        if (p[0] != '{' || p[1] != '{' || (p > s && p[-1] == '\\'))
            continue;
        const char *q = p + 2;
        while (q < end && *q == ' ')
            q++;
        char kind = q < end ? *q : 0;
        if (kind != '#' && kind != '^' && kind != '/' && kind != '~')
            continue;
        q++;
        while (q < end && *q == ' ')
            q++;
        const char *nm = q;
        while (q < end && *q != ' ' && *q != '}')
            q++;
        const char *tag_end = q;
        while (tag_end + 1 < end && !(tag_end[0] == '}' && tag_end[1] == '}'))
            tag_end++;
        if (tag_end + 1 >= end)
            return false;
        if ((size_t)(q - nm) != n || memcmp(nm, name, n) != 0)
            continue;
        if (kind != '/' && kind != '~') {
            nest++;
        } else if (nest-- == 0) {
            *close = p;
            *after = tag_end + 2;
            return true;
        }
    }
    return false;
}

static int render(tmpl *t, const char *s, const char *end);

static int render_section(tmpl *t, char kind, const char *tag, const char *name, size_t n,
                          const char *body, const char *body_end)
{
    const msgpack_object *v = lookup(t, name, n);
    if (spend(t, tag, 1) < 0)
        return -1;
    if (t->nest >= 2 * MAX_DEPTH)
        return tmpl_error(t, tag, "sections nested deeper than %s", "64");
    if (kind == '^') {
        if (truthy(v))
            return 0;
        t->nest++;
        int rc = render(t, body, body_end);
        t->nest--;
        return rc;
    }
    if (!truthy(v))
        return 0;
    if (t->depth >= MAX_DEPTH)
        return tmpl_error(t, tag, "sections nested deeper than %s", "32");
    bool list = v->type == MSGPACK_OBJECT_ARRAY;
    uint32_t n_items = list ? v->via.array.size : 1;
    int rc = 0;
    t->nest++;
    for (uint32_t i = 0; i < n_items && rc == 0; i++) {
        if (spend(t, tag, 1) < 0) {
            rc = -1;
            break;
        }
        t->stack[++t->depth] = list ? &v->via.array.ptr[i] : v;
        rc = render(t, body, body_end);
        t->depth--;
    }
    t->nest--;
    return rc;
}

static int render(tmpl *t, const char *s, const char *end)
{
    const char *p = s;
    while (p < end) {
        const char *open = NULL;
        for (const char *q = p; q + 1 < end; q++) {
            if (q[0] == '{' && q[1] == '{') {
                open = q;
                break;
            }
        }
        if (open == NULL)
            return emit(t, p, p, (size_t)(end - p));
        if (spend(t, open, 1) < 0)
            return -1;
        if (open > p && open[-1] == '\\') {   /* \{{ is a literal {{ */
            if (emit(t, p, p, (size_t)(open - 1 - p)) < 0 || emit(t, open, "{{", 2) < 0)
                return -1;
            p = open + 2;
            continue;
        }
        if (emit(t, p, p, (size_t)(open - p)) < 0)
            return -1;
        const char *close = NULL;
        for (const char *q = open + 2; q + 1 < end; q++) {
            if (q[0] == '}' && q[1] == '}') {
                close = q;
                break;
            }
        }
        if (close == NULL)
            return tmpl_error(t, open, "'{{' without a closing '}}'%s", "");
        const char *a = open + 2, *b = close;
        while (a < b && *a == ' ')
            a++;
        while (b > a && b[-1] == ' ')
            b--;
        p = close + 2;
        if (a < b && *a == '!')
            continue;
        char kind = a < b && (*a == '#' || *a == '^' || *a == '/' || *a == '~') ? *a : 0;
        if (kind) {
            a++;
            while (a < b && *a == ' ')
                a++;
        }
        const char *bar = a < b ? memchr(a, '|', (size_t)(b - a)) : NULL;
        const char *name_end = bar ? bar : b;
        while (name_end > a && name_end[-1] == ' ')
            name_end--;
        size_t n = (size_t)(name_end - a);
        char shown[140];
        snprintf(shown, sizeof shown, "%.*s", (int)(b - a < 120 ? b - a : 120), a);
        if (!tag_name_valid(a, n))
            return tmpl_error(t, open, "bad tag '{{%s}}' (names are letters, digits, _ - and dots)", shown);
        if (kind == '/' || kind == '~')
            return tmpl_error(t, open, "'{{/%s}}' closes no open section", shown);
        if (kind) {
            if (bar)
                return tmpl_error(t, open, "a section cannot take a filter: '%s'", shown);
            const char *cl, *after;
            if (!find_close(p, end, a, n, &cl, &after))
                return tmpl_error(t, open, "section '%s' is never closed", shown);
            if (spend(t, open, (after - p) / 256) < 0)
                return -1;
            if (render_section(t, kind, open, a, n, p, cl) < 0)
                return -1;
            p = after;
            continue;
        }
        char filter[16] = "";
        if (bar) {
            const char *f = bar + 1;
            while (f < b && *f == ' ')
                f++;
            snprintf(filter, sizeof filter, "%.*s", (int)(b - f), f);
            if (strcmp(filter, "json") != 0 && strcmp(filter, "shell") != 0 && strcmp(filter, "html") != 0)
                return tmpl_error(t, open, "unknown filter in '{{%s}}' (json, shell, html)", shown);
        }
        const msgpack_object *v = lookup(t, a, n);
        if (v == NULL)
            return tmpl_error(t, open, "variable '%s' is not set", shown);
        sl_buf text = SL_BUF_INIT;
        const char *why = NULL;
        if (scalar_text(v, &text, &why) < 0) {
            sl_buf_free(&text);
            char m[200];
            snprintf(m, sizeof m, "variable '%s' %s", shown, why);
            return tmpl_error(t, open, "%s", m);
        }
        sl_buf esc = SL_BUF_INIT;
        put_escaped(&esc, filter, sl_buf_str(&text), text.len, v);
        int rc = emit(t, open, sl_buf_str(&esc), esc.len);
        sl_buf_free(&esc);
        sl_buf_free(&text);
        if (rc < 0)
            return -1;
    }
    return 0;
}

/* Renders text[0..n) with vars into out, spending from b.  For a name,
 * name_max bounds the output on top of b (0: no further bound). */
static int render_text(const char *file, const char *text, size_t n, const msgpack_object *vars,
                       budget *b, int64_t name_max, sl_buf *out, sl_err *err)
{
    budget local = { name_max + 1, b->steps_left };
    tmpl t = { .file = file, .src = text, .depth = 0, .out = out,
               .budget = name_max ? &local : b,
               .bytes_key = name_max ? "the longest file name (255 bytes)" : "codegen.max_bytes",
               .err = err };
    t.stack[0] = vars;
    int rc = render(&t, text, text + n);
    if (name_max)
        b->steps_left = local.steps_left;
    return rc;
}

/* ---- the tree ---- */

typedef struct file_entry {
    char *path;                   /* relative output path */
    int64_t bytes;
    char sha[SL_SHA256_HEX];
} file_entry;

typedef struct gen {
    const sl_job_ctx *ctx;
    const msgpack_object *vars;
    const char *template;         /* its name, for messages */
    file_entry *files;
    size_t nfiles, cap;
    int64_t bytes;
    budget budget;                /* what the job may still spend rendering */
    sl_err *err;
} gen;

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int by_path(const void *a, const void *b)
{
    return strcmp(((const file_entry *)a)->path, ((const file_entry *)b)->path);
}

/* Lists dir's entries sorted (so output order does not depend on the file system). */
static char **list_dir(int fd, size_t *n, sl_err *err, const char *where)
{
    int dup_fd = dup(fd);
    DIR *d = dup_fd >= 0 ? fdopendir(dup_fd) : NULL;
    if (d == NULL) {
        if (dup_fd >= 0)
            close(dup_fd);
        sl_err_set(err, SL_EIO, "read template directory %s: %s", where, strerror(errno));
        return NULL;
    }
    size_t cap = 16, k = 0;
    char **names = sl_xcalloc(cap, sizeof *names);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if (k + 1 >= cap) {
            cap *= 2;
            names = sl_xrealloc(names, cap * sizeof *names);
        }
        names[k++] = sl_xstrdup(e->d_name);
    }
    closedir(d);
    qsort(names, k, sizeof *names, by_name);
    *n = k;
    return names;
}

/* Renders one name component; *skip when it renders empty. */
static int render_name(gen *g, const char *tpath, const char *name, char **out, bool *skip)
{
    sl_buf b = SL_BUF_INIT;
    char what[600];
    snprintf(what, sizeof what, "%s/%s (its name)", g->template, tpath);
    if (render_text(what, name, strlen(name), g->vars, &g->budget, NAME_LEN_MAX, &b, g->err) < 0) {
        sl_buf_free(&b);
        return -1;
    }
    *skip = b.len == 0;
    const char *s = sl_buf_str(&b);
    if (!*skip && (strcmp(s, ".") == 0 || strcmp(s, "..") == 0 || strchr(s, '/') ||
                   strlen(s) != b.len || b.len > NAME_LEN_MAX)) {
        char shown[120];
        sl_err_set(g->err, SL_EINVAL, "template %s/%s: its name renders to '%s', which is not a plain "
                   "file name (no '/', '.', '..' or NUL): refused, it would leave the output directory",
                   g->template, tpath, sl_jobctx_excerpt(s, b.len, shown, sizeof shown));
        sl_buf_free(&b);
        return -1;
    }
    *out = sl_buf_detach(&b);
    sl_buf_free(&b);
    return 0;
}

static int write_all(int fd, const char *data, size_t n)
{
    for (size_t off = 0; off < n;) {
        ssize_t w = write(fd, data + off, n - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -1;
        off += (size_t)w;
    }
    return 0;
}

static int gen_file(gen *g, int src_dir, const char *name, const char *tpath, int dst_dir,
                    const char *opath, const char *oname, const struct stat *st)
{
    const sl_jobs_config *jc = sl_config_jobs_of(g->ctx->cfg);
    if (st->st_size > jc->codegen.max_bytes)
        return sl_err_set(g->err, SL_EPERMANENT, "template %s/%s is larger than codegen.max_bytes",
                          g->template, tpath);
    if ((int64_t)g->nfiles >= jc->codegen.max_files)
        return sl_err_set(g->err, SL_EPERMANENT, "template %s renders more than codegen.max_files (%d) "
                          "files", g->template, jc->codegen.max_files);
    int fd = openat(src_dir, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return sl_err_set(g->err, SL_EIO, "open template %s/%s: %s", g->template, tpath, strerror(errno));
    sl_buf text = SL_BUF_INIT, out = SL_BUF_INIT;
    int rc = -1, ofd = -1;
    char buf[65536];
    ssize_t r;
    while ((r = read(fd, buf, sizeof buf)) > 0) {
        sl_buf_append(&text, buf, (size_t)r);
        if ((int64_t)text.len > jc->codegen.max_bytes) {
            sl_err_set(g->err, SL_EPERMANENT, "template %s/%s is larger than codegen.max_bytes",
                       g->template, tpath);
            goto cleanup;
        }
    }
    if (r < 0) {
        sl_err_set(g->err, SL_EIO, "read template %s/%s: %s", g->template, tpath, strerror(errno));
        goto cleanup;
    }
    char where[600];
    snprintf(where, sizeof where, "%s/%s", g->template, tpath);
    if (render_text(where, sl_buf_str(&text), text.len, g->vars, &g->budget, 0, &out, g->err) < 0) {
        if (g->err->code == SL_EPERMANENT && strstr(g->err->msg, "codegen.max_bytes"))
            sl_err_wrap(g->err, "template %s renders more than codegen.max_bytes (%lld bytes in all)",
                        g->template, (long long)jc->codegen.max_bytes);
        goto cleanup;
    }
    g->bytes += (int64_t)out.len;
    mode_t mode = (st->st_mode & 0111) ? 0755 : 0644;
    ofd = openat(dst_dir, oname, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
    if (ofd < 0) {
        if (errno == EEXIST)
            sl_err_set(g->err, SL_EINVAL, "template %s/%s renders to '%s', which another template file "
                       "already produced", g->template, tpath, opath);
        else
            sl_err_set(g->err, SL_EIO, "create %s: %s", opath, strerror(errno));
        goto cleanup;
    }
    if (write_all(ofd, sl_buf_str(&out), out.len) < 0 || fsync(ofd) < 0) {
        sl_err_set(g->err, SL_EIO, "write %s: %s", opath, strerror(errno));
        goto cleanup;
    }
    if (g->nfiles == g->cap) {
        g->cap = g->cap ? 2 * g->cap : 16;
        g->files = sl_xrealloc(g->files, g->cap * sizeof *g->files);
    }
    file_entry *f = &g->files[g->nfiles++];
    f->path = sl_xstrdup(opath);
    f->bytes = (int64_t)out.len;
    unsigned char d[SL_SHA256_LEN];
    sl_sha256_digest(sl_buf_str(&out), out.len, d);
    sl_sha256_hex(d, f->sha);
    rc = 0;
cleanup:
    if (ofd >= 0)
        close(ofd);
    close(fd);
    sl_buf_free(&text);
    sl_buf_free(&out);
    return rc;
}

/* Renders the directory src_dir (template path tpath) into dst_dir (output path opath). */
static int gen_dir(gen *g, int src_dir, const char *tpath, int dst_dir, const char *opath, int depth)
{
    if (depth > MAX_DEPTH)
        return sl_err_set(g->err, SL_EPERMANENT, "template %s is nested deeper than %d directories",
                          g->template, MAX_DEPTH);
    size_t n = 0;
    char **names = list_dir(src_dir, &n, g->err, tpath);
    if (names == NULL)
        return -1;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (sl_jobctx_cancelled(g->ctx)) {
            rc = sl_err_set(g->err, SL_EJOB, "codegen cancelled");
            break;
        }
        char *tp = tpath[0] ? sl_xasprintf("%s/%s", tpath, names[i]) : sl_xstrdup(names[i]);
        char *oname = NULL, *op = NULL;
        bool skip = false;
        struct stat st;
        if (fstatat(src_dir, names[i], &st, AT_SYMLINK_NOFOLLOW) < 0) {
            rc = sl_err_set(g->err, SL_EIO, "stat template %s/%s: %s", g->template, tp, strerror(errno));
        } else if (S_ISLNK(st.st_mode)) {
            rc = sl_err_set(g->err, SL_EPERMANENT, "template %s/%s is a symlink: refused (templates may "
                            "not point outside their directory)", g->template, tp);
        } else if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode)) {
            rc = sl_err_set(g->err, SL_EPERMANENT, "template %s/%s is not a regular file or directory",
                            g->template, tp);
        } else if ((rc = render_name(g, tp, names[i], &oname, &skip)) == 0 && !skip) {
            op = opath[0] ? sl_xasprintf("%s/%s", opath, oname) : sl_xstrdup(oname);
            if (S_ISREG(st.st_mode)) {
                rc = gen_file(g, src_dir, names[i], tp, dst_dir, op, oname, &st);
            } else {
                int sfd = openat(src_dir, names[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                int dfd = -1;
                if (sfd < 0) {
                    rc = sl_err_set(g->err, SL_EIO, "open template %s/%s: %s", g->template, tp, strerror(errno));
                } else if (mkdirat(dst_dir, oname, 0755) < 0 && errno != EEXIST) {
                    rc = sl_err_set(g->err, SL_EIO, "mkdir %s: %s", op, strerror(errno));
                } else if ((dfd = openat(dst_dir, oname, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0) {
                    rc = sl_err_set(g->err, SL_EIO, "open %s: %s", op, strerror(errno));
                } else {
                    rc = gen_dir(g, sfd, tp, dfd, op, depth + 1);
                }
                if (sfd >= 0)
                    close(sfd);
                if (dfd >= 0)
                    close(dfd);
            }
        }
        free(tp);
        free(oname);
        free(op);
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return rc;
}

static bool plain_name(const char *s)
{
    size_t n = strlen(s);
    return n > 0 && n <= 128 && s[0] != '.' &&
           strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:-") == n;
}

static int run_codegen(sl_job_ctx *ctx, sl_err *err)
{
    const sl_jobs_config *jc = sl_config_jobs_of(ctx->cfg);
    if (jc->codegen.template_root == NULL)
        return sl_err_set(err, SL_EPERMANENT, "codegen is not configured on this worker "
                          "(codegen.template_root, codegen.output_root)");
    char *name = NULL, *out_name = NULL, *tmp = NULL, *final = NULL;
    int root_fd = -1, src_fd = -1, out_fd = -1, rc = -1;
    gen g = { .ctx = ctx, .err = err,
              .budget = { jc->codegen.max_bytes, jc->codegen.max_steps } };
    sl_buf manifest = SL_BUF_INIT;
    static const msgpack_object empty = { .type = MSGPACK_OBJECT_MAP };

    if (sl_args_str(ctx->args, "template", true, &name, err) < 0 ||
        sl_args_str(ctx->args, "output", false, &out_name, err) < 0)
        goto cleanup;
    char shown[140];
    if (!plain_name(name)) {
        sl_err_set(err, SL_EINVAL, "argument 'template': '%s' is not a template name (1-128 of "
                   "A-Z a-z 0-9 . _ : -, not starting with '.')", sl_jobctx_excerpt(name, strlen(name), shown, 100));
        goto cleanup;
    }
    if (out_name == NULL)
        out_name = sl_xstrdup(ctx->job->id);
    if (!plain_name(out_name)) {
        sl_err_set(err, SL_EINVAL, "argument 'output': '%s' is not a plain directory name",
                   sl_jobctx_excerpt(out_name, strlen(out_name), shown, 100));
        goto cleanup;
    }
    g.vars = sl_args_get(ctx->args, "vars");
    if (g.vars == NULL || g.vars->type == MSGPACK_OBJECT_NIL)
        g.vars = &empty;
    if (g.vars->type != MSGPACK_OBJECT_MAP) {
        sl_err_set(err, SL_EINVAL, "argument 'vars': expected a map");
        goto cleanup;
    }
    g.template = name;
    if ((root_fd = open(jc->codegen.template_root, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
        sl_err_set(err, SL_EJOB, "codegen.template_root %s: %s", jc->codegen.template_root, strerror(errno));
        goto cleanup;
    }
    if ((src_fd = openat(root_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0) {
        sl_err_set(err, errno == ENOENT ? SL_EINVAL : SL_EPERMANENT, "argument 'template': no template "
                   "directory '%s' under codegen.template_root (%s)", name, strerror(errno));
        goto cleanup;
    }
    sl_stage_sweep(jc->codegen.output_root, ".sluice-codegen-");
    tmp = sl_stage_template(jc->codegen.output_root, ".sluice-codegen-");
    if (mkdtemp(tmp) == NULL) {
        sl_err_set(err, SL_EIO, "create a directory under codegen.output_root %s: %s",
                   jc->codegen.output_root, strerror(errno));
        free(tmp);
        tmp = NULL;
        goto cleanup;
    }
    if ((out_fd = open(tmp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0) {
        sl_err_set(err, SL_EIO, "open %s: %s", tmp, strerror(errno));
        goto cleanup;
    }
    if (gen_dir(&g, src_fd, "", out_fd, "", 0) < 0)
        goto cleanup;
    if (fchmod(out_fd, 0755) < 0 || fsync(out_fd) < 0) {
        sl_err_set(err, SL_EIO, "finish %s: %s", tmp, strerror(errno));
        goto cleanup;
    }
    final = sl_xasprintf("%s/%s", jc->codegen.output_root, out_name);
    if (renameat2(AT_FDCWD, tmp, AT_FDCWD, final, RENAME_NOREPLACE) < 0) {
        sl_err_set(err, errno == EEXIST ? SL_EPERMANENT : SL_EIO, "rename %s to %s: %s%s", tmp, final,
                   strerror(errno), errno == EEXIST ? " (an output of that name exists; it is never replaced)" : "");
        goto cleanup;
    }
    free(tmp);
    tmp = NULL;

    qsort(g.files, g.nfiles, sizeof *g.files, by_path);
    sl_jout o;
    sl_jout_begin(&o, ctx->outputs);
    sl_jout_str(&o, "dir", final);
    sl_jout_str(&o, "template", name);
    sl_jout_key(&o, "files");
    sl_buf_putc(ctx->outputs, '[');
    for (size_t i = 0; i < g.nfiles; i++) {
        sl_jout f;
        if (i)
            sl_buf_putc(ctx->outputs, ',');
        sl_jout_begin(&f, ctx->outputs);
        sl_jout_str(&f, "path", g.files[i].path);
        sl_jout_int(&f, "bytes", g.files[i].bytes);
        sl_jout_str(&f, "sha256", g.files[i].sha);
        sl_jout_end(&f);
        sl_buf_printf(&manifest, "%s  %s\n", g.files[i].sha, g.files[i].path);
    }
    sl_buf_putc(ctx->outputs, ']');
    unsigned char d[SL_SHA256_LEN];
    char hex[SL_SHA256_HEX];
    sl_sha256_digest(sl_buf_str(&manifest), manifest.len, d);
    sl_sha256_hex(d, hex);
    sl_jout_str(&o, "digest", hex);
    sl_jout_int(&o, "bytes", g.bytes);
    sl_jout_end(&o);
    rc = 0;

cleanup:
    if (tmp)
        sl_stage_remove(tmp);
    if (root_fd >= 0)
        close(root_fd);
    if (src_fd >= 0)
        close(src_fd);
    if (out_fd >= 0)
        close(out_fd);
    for (size_t i = 0; i < g.nfiles; i++)
        free(g.files[i].path);
    free(g.files);
    sl_buf_free(&manifest);
    free(name), free(out_name), free(tmp), free(final);
    return rc;
}

static const sl_kind_arg codegen_args[] = {
    { "template", true, NULL }, { "vars", false, NULL }, { "output", false, NULL }, { NULL, false, NULL },
};

const sl_kind sl_kind_codegen = { "codegen", "renders a configured template tree with args.vars "
                                  "into a fresh directory", run_codegen, codegen_args, false, NULL };

int sl_codegen_render(const char *file, const char *text, size_t n, const msgpack_object *vars,
                      sl_buf *out, sl_err *err)
{
    /* The shipped defaults of codegen.max_bytes and codegen.max_steps. */
    budget b = { 16 * 1024 * 1024, 10000000 };
    return render_text(file, text, n, vars, &b, 0, out, err);
}
