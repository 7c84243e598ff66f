/* redis.c: see redis.h.
 *
 * A thin layer over hiredis's blocking API: URL parsing, AUTH/SELECT on
 * connect, socket timeouts, and turning every way a command can fail
 * (I/O error, protocol error, error reply) into one sl_err. */
#include "redis.h"
#include "mem.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

struct sl_redis {
    redisContext *ctx;   /* hiredis connection, owned */
    int timeout_ms;      /* socket timeout for ordinary commands */
    bool broken;         /* an I/O or protocol error happened */
    char address[300];   /* host:port or socket path, for messages */
};

typedef struct redis_url {
    char *host;      /* NULL for unix sockets */
    int port;
    char *path;      /* socket path, NULL for TCP */
    char *user;      /* NULL: none */
    char *password;  /* NULL: none */
    int db;
} redis_url;

static void url_clear(redis_url *u)
{
    free(u->host);
    free(u->path);
    free(u->user);
    free(u->password);
    memset(u, 0, sizeof *u);
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static char *percent_decode(const char *s, size_t n)
{
    char *out = sl_xmalloc(n + 1);
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%' && i + 2 < n && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
            out[o++] = (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
            i += 2;
        } else {
            out[o++] = s[i];
        }
    }
    out[o] = '\0';
    return out;
}

static int parse_db(const char *s, int *db, sl_err *err)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0' || v < 0 || v > 100000)
        return sl_err_set(err, SL_EINVAL, "redis URL: bad database number '%s'", s);
    *db = (int)v;
    return 0;
}

static int parse_url(const char *url, redis_url *u, sl_err *err)
{
    memset(u, 0, sizeof *u);
    u->port = 6379;
    if (strncmp(url, "rediss://", 9) == 0)
        return sl_err_set(err, SL_EINVAL,
                          "redis URL: rediss:// (TLS) is not supported by this build's hiredis");
    if (strncmp(url, "unix://", 7) == 0) {
        const char *p = url + 7;
        const char *q = strchr(p, '?');
        u->path = q ? sl_xstrndup(p, (size_t)(q - p)) : sl_xstrdup(p);
        if (u->path[0] != '/') {
            url_clear(u);
            return sl_err_set(err, SL_EINVAL, "redis URL: unix socket path must be absolute in '%s'", url);
        }
        if (q && strncmp(q, "?db=", 4) == 0 && parse_db(q + 4, &u->db, err) < 0) {
            url_clear(u);
            return -1;
        }
        return 0;
    }
    if (strncmp(url, "redis://", 8) != 0)
        return sl_err_set(err, SL_EINVAL,
                          "redis URL must start with redis:// or unix:// (got '%.60s')", url);
    const char *p = url + 8;
    const char *at = strrchr(p, '@');
    const char *slash = strchr(p, '/');
    if (at && (slash == NULL || at < slash)) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        if (colon) {
            if (colon > p)
                u->user = percent_decode(p, (size_t)(colon - p));
            u->password = percent_decode(colon + 1, (size_t)(at - colon - 1));
        } else {
            /* redis://secret@host: a lone credential is the password, as redis-cli reads it */
            u->password = percent_decode(p, (size_t)(at - p));
        }
        p = at + 1;
    }
    const char *hostend = p + strcspn(p, ":/?");
    if (hostend == p) {
        url_clear(u);
        return sl_err_set(err, SL_EINVAL, "redis URL: missing host in '%.60s'", url);
    }
    u->host = sl_xstrndup(p, (size_t)(hostend - p));
    p = hostend;
    if (*p == ':') {
        char *end;
        long port = strtol(p + 1, &end, 10);
        if (end == p + 1 || port < 1 || port > 65535 || (*end && *end != '/' && *end != '?')) {
            url_clear(u);
            return sl_err_set(err, SL_EINVAL, "redis URL: bad port in '%.60s'", url);
        }
        u->port = (int)port;
        p = end;
    }
    if (*p == '/' && p[1] != '\0' && p[1] != '?') {
        char dbtext[16];
        size_t n = strcspn(p + 1, "?");
        if (n >= sizeof dbtext) {
            url_clear(u);
            return sl_err_set(err, SL_EINVAL, "redis URL: bad database in '%.60s'", url);
        }
        memcpy(dbtext, p + 1, n);
        dbtext[n] = '\0';
        if (parse_db(dbtext, &u->db, err) < 0) {
            url_clear(u);
            return -1;
        }
    }
    return 0;
}

int sl_redis_url_check(const char *url, sl_err *err)
{
    redis_url u;
    if (parse_url(url, &u, err) < 0)
        return -1;
    url_clear(&u);
    return 0;
}

static struct timeval tv_of(int ms)
{
    struct timeval tv = { .tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000 };
    return tv;
}

static int fail_ctx(sl_redis *r, sl_err *err, const char *what)
{
    r->broken = true;
    return sl_err_set(err, SL_EREDIS, "redis %s: %s: %s", r->address, what,
                      r->ctx && r->ctx->errstr[0] ? r->ctx->errstr : "connection lost");
}

static int simple_command(sl_redis *r, sl_err *err, int argc, const char **argv)
{
    redisReply *rep = sl_redis_command(r, argc, argv, NULL, err);
    if (rep == NULL)
        return -1;
    freeReplyObject(rep);
    return 0;
}

sl_redis *sl_redis_connect(const char *url, int timeout_ms, sl_err *err)
{
    redis_url u;
    if (parse_url(url, &u, err) < 0)
        return NULL;
    sl_redis *r = sl_xcalloc(1, sizeof *r);
    r->timeout_ms = timeout_ms > 0 ? timeout_ms : 5000;
    struct timeval tv = tv_of(r->timeout_ms);
    if (u.path) {
        snprintf(r->address, sizeof r->address, "%s", u.path);
        r->ctx = redisConnectUnixWithTimeout(u.path, tv);
    } else {
        snprintf(r->address, sizeof r->address, "%s:%d", u.host, u.port);
        r->ctx = redisConnectWithTimeout(u.host, u.port, tv);
    }
    if (r->ctx == NULL || r->ctx->err) {
        fail_ctx(r, err, "connect");
        goto fail;
    }
    if (redisSetTimeout(r->ctx, tv) != REDIS_OK) {
        fail_ctx(r, err, "set timeout");
        goto fail;
    }
    if (u.password) {
        const char *argv[3] = { "AUTH", u.user ? u.user : u.password, u.password };
        if (simple_command(r, err, u.user ? 3 : 2, argv) < 0)
            goto fail;
    }
    if (u.db != 0) {
        char db[16];
        snprintf(db, sizeof db, "%d", u.db);
        const char *argv[2] = { "SELECT", db };
        if (simple_command(r, err, 2, argv) < 0)
            goto fail;
    }
    url_clear(&u);
    return r;
fail:
    url_clear(&u);
    sl_redis_free(r);
    return NULL;
}

void sl_redis_free(sl_redis *r)
{
    if (r == NULL)
        return;
    if (r->ctx)
        redisFree(r->ctx);
    free(r);
}

static redisReply *check_reply(sl_redis *r, void *p, const char *cmd, sl_err *err)
{
    redisReply *rep = p;
    if (rep == NULL) {
        fail_ctx(r, err, cmd);
        return NULL;
    }
    if (rep->type == REDIS_REPLY_ERROR) {
        sl_err_set(err, SL_EREDIS, "redis %s: %s: %s", r->address, cmd, rep->str);
        freeReplyObject(rep);
        return NULL;
    }
    return rep;
}

static void command_name(char *buf, size_t n, int argc, const char **argv, const size_t *lens)
{
    size_t len = argc > 0 ? (lens ? lens[0] : strlen(argv[0])) : 0;
    snprintf(buf, n, "%.*s", (int)(len < n ? len : n - 1), argc > 0 ? argv[0] : "");
}

redisReply *sl_redis_command(sl_redis *r, int argc, const char **argv, const size_t *lens,
                             sl_err *err)
{
    char cmd[32];
    command_name(cmd, sizeof cmd, argc, argv, lens);
    if (r->broken) {
        sl_err_set(err, SL_EREDIS, "redis %s: %s: connection is broken", r->address, cmd);
        return NULL;
    }
    return check_reply(r, redisCommandArgv(r->ctx, argc, argv, lens), cmd, err);
}

redisReply *sl_redis_command_blocking(sl_redis *r, int block_ms, int argc, const char **argv,
                                      const size_t *lens, sl_err *err)
{
    struct timeval longer = tv_of(r->timeout_ms + block_ms);
    if (!r->broken && redisSetTimeout(r->ctx, longer) != REDIS_OK) {
        fail_ctx(r, err, "set timeout");
        return NULL;
    }
    redisReply *rep = sl_redis_command(r, argc, argv, lens, err);
    if (!r->broken && redisSetTimeout(r->ctx, tv_of(r->timeout_ms)) != REDIS_OK) {
        if (rep)
            freeReplyObject(rep);
        fail_ctx(r, err, "set timeout");
        return NULL;
    }
    return rep;
}

int sl_redis_append(sl_redis *r, int argc, const char **argv, const size_t *lens, sl_err *err)
{
    if (r->broken)
        return sl_err_set(err, SL_EREDIS, "redis %s: connection is broken", r->address);
    if (redisAppendCommandArgv(r->ctx, argc, argv, lens) != REDIS_OK)
        return fail_ctx(r, err, "append");
    return 0;
}

redisReply *sl_redis_reply(sl_redis *r, sl_err *err)
{
    void *p = NULL;
    if (r->broken) {
        sl_err_set(err, SL_EREDIS, "redis %s: connection is broken", r->address);
        return NULL;
    }
    if (redisGetReply(r->ctx, &p) != REDIS_OK || p == NULL) {
        fail_ctx(r, err, "read reply");
        return NULL;
    }
    return p;
}

int sl_redis_broken(const sl_redis *r) { return r->broken; }
const char *sl_redis_address(const sl_redis *r) { return r->address; }
int sl_redis_fd(const sl_redis *r) { return r->ctx ? r->ctx->fd : -1; }
