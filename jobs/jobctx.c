/* jobctx.c: see jobctx.h. */
#include "jobctx.h"
#include "json.h"
#include "pgconn.h"
#include "mem.h"
#include "secretenv.h"
#include "utf8.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SECRET_MAX 65536

int64_t sl_jobctx_timeout_ms(const sl_job_ctx *ctx)
{
    assert(ctx->timeout_ms > 0);   /* set by whoever runs the job */
    return ctx->timeout_ms;
}

bool sl_jobctx_cancelled(const sl_job_ctx *ctx)
{
    return ctx->cancelled != NULL && *ctx->cancelled != 0;
}

int sl_jobctx_job_json(const sl_job_ctx *ctx, sl_buf *out, sl_err *err)
{
    sl_jout o;
    sl_jout_begin(&o, out);
    sl_jout_str(&o, "id", ctx->job->id);
    sl_jout_str(&o, "kind", ctx->job->kind);
    sl_jout_str(&o, "queue", ctx->job->queue);
    sl_jout_int(&o, "attempt", ctx->job->attempt);
    sl_jout_key(&o, "args");
    if (sl_json_from_msgpack(ctx->args, out, err) < 0)
        return sl_err_set(err, SL_EINVAL, "arguments cannot be sent as JSON: %s", err->msg);
    sl_jout_end(&o);
    return 0;
}

static char *read_secret_file(const char *file, const char *what, sl_err *err)
{
    char *path = NULL;
    if (file[0] != '/') {
        const char *dir = getenv("CREDENTIALS_DIRECTORY");
        if (dir == NULL || *dir == '\0') {
            sl_err_set(err, SL_EJOB, "%s_file '%s' names a credential, but $CREDENTIALS_DIRECTORY is "
                       "not set (LoadCredential= in the systemd unit)", what, file);
            return NULL;
        }
        path = sl_xasprintf("%s/%s", dir, file);
    } else {
        path = sl_xstrdup(file);
    }
    sl_buf b = SL_BUF_INIT;
    char *secret = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        sl_err_set(err, SL_EJOB, "%s_file %s: %s", what, path, strerror(errno));
        goto cleanup;
    }
    char chunk[4096];
    ssize_t r;
    while ((r = read(fd, chunk, sizeof chunk)) > 0 && b.len <= SECRET_MAX)
        sl_buf_append(&b, chunk, (size_t)r);
    explicit_bzero(chunk, sizeof chunk);
    if (r < 0 || b.len > SECRET_MAX) {
        sl_err_set(err, SL_EJOB, "%s_file %s: %s", what, path, r < 0 ? strerror(errno) : "larger than 64 KiB");
        goto cleanup;
    }
    size_t n = b.len;
    if (n > 0 && b.data[n - 1] == '\n')
        n--;
    if (n > 0 && b.data[n - 1] == '\r')
        n--;
    if (n == 0 || memchr(b.data, '\0', n)) {
        sl_err_set(err, SL_EJOB, "%s_file %s: %s", what, path, n ? "holds a NUL byte" : "is empty");
        goto cleanup;
    }
    secret = sl_xstrndup(b.data, n);
cleanup:
    if (fd >= 0)
        close(fd);
    if (b.data)
        explicit_bzero(b.data, b.len);
    sl_buf_free(&b);
    free(path);
    return secret;
}

char *sl_jobctx_secret(const char *env, const char *file, const char *what, sl_err *err)
{
    if (file)
        return read_secret_file(file, what, err);
    const char *v = env ? sl_secretenv_get(env) : NULL;
    if (v == NULL || *v == '\0') {
        sl_err_set(err, SL_EJOB, "%s_env: environment variable %s is not set in the worker", what,
                   env ? env : "(none)");
        return NULL;
    }
    return sl_xstrdup(v);
}

void sl_jobctx_secret_free(char *secret)
{
    if (secret) {
        explicit_bzero(secret, strlen(secret));
        free(secret);
    }
}

PGconn *sl_jobctx_pg_connect(const char *url, const char *what, sl_err *err)
{
    PGconn *c = sl_pg_connect(url, "sluice-job", SL_EJOB, err);
    if (c == NULL)
        sl_err_wrap(err, "%s", what);
    return c;
}

const char *sl_jobctx_excerpt(const char *data, size_t len, char *buf, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < len && k + 1 < n;) {
        unsigned char c = (unsigned char)data[i];
        size_t seq = c < 0x80 ? 1 : sl_utf8_seq((const unsigned char *)data + i, len - i);
        if (seq > 1 && k + seq < n) {   /* whole UTF-8 characters only */
            memcpy(buf + k, data + i, seq);
            k += seq;
            i += seq;
            continue;
        }
        if (seq > 1)
            break;
        buf[k++] = seq == 0 ? '?' : c < 0x20 || c == 0x7f ? ' ' : (char)c;
        i++;
    }
    if (n > 0)
        buf[k] = '\0';
    return buf;
}

void sl_jout_begin(sl_jout *o, sl_buf *b)
{
    o->b = b;
    o->first = true;
    sl_buf_putc(b, '{');
}

void sl_jout_key(sl_jout *o, const char *key)
{
    if (!o->first)
        sl_buf_putc(o->b, ',');
    o->first = false;
    sl_json_put_string(o->b, key, strlen(key));
    sl_buf_putc(o->b, ':');
}

void sl_jout_strn(sl_jout *o, const char *key, const char *value, size_t n)
{
    sl_jout_key(o, key);
    if (value == NULL)
        sl_buf_puts(o->b, "null");
    else
        sl_json_put_string(o->b, value, n);
}

size_t sl_jobctx_put_text(sl_buf *out, const char *s, size_t n)
{
    size_t replaced = 0;
    for (size_t i = 0; i < n;) {
        size_t seq = sl_utf8_seq((const unsigned char *)s + i, n - i);
        if (seq == 0 || s[i] == '\0') {
            sl_buf_puts(out, "\xef\xbf\xbd");   /* U+FFFD */
            replaced++;
            i++;
        } else {
            sl_buf_append(out, s + i, seq);
            i += seq;
        }
    }
    return replaced;
}

size_t sl_jout_text(sl_jout *o, const char *key, const char *value, size_t n)
{
    if (value == NULL) {
        sl_jout_strn(o, key, NULL, 0);
        return 0;
    }
    sl_buf clean = SL_BUF_INIT;
    size_t replaced = sl_jobctx_put_text(&clean, value, n);
    sl_jout_strn(o, key, sl_buf_str(&clean), clean.len);
    sl_buf_free(&clean);
    return replaced;
}

void sl_jout_str(sl_jout *o, const char *key, const char *value)
{
    sl_jout_strn(o, key, value, value ? strlen(value) : 0);
}

void sl_jout_int(sl_jout *o, const char *key, int64_t value)
{
    sl_jout_key(o, key);
    sl_buf_printf(o->b, "%lld", (long long)value);
}

void sl_jout_bool(sl_jout *o, const char *key, bool value)
{
    sl_jout_key(o, key);
    sl_buf_puts(o->b, value ? "true" : "false");
}

void sl_jout_end(sl_jout *o)
{
    sl_buf_putc(o->b, '}');
}
