/* redis.c: see redis.h.
 *
 * A thin layer over hiredis's blocking API: URL parsing (libcurl's URL API,
 * plus a short branch for unix sockets), AUTH/SELECT on connect, socket timeouts, and turning every way a command can fail
 * (I/O error, protocol error, error reply) into one sl_err. */
#include "redis.h"
#include "mem.h"

#include <curl/curl.h>
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
    char *host;      /* NULL for unix sockets; IPv6 without brackets */
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
    if (u->password)
        explicit_bzero(u->password, strlen(u->password));
    free(u->password);
    memset(u, 0, sizeof *u);
}

/* A decimal number in [min, max] with nothing else: no sign, no spaces. */
static bool strict_number(const char *s, long min, long max, long *out)
{
    if (*s == '\0' || strlen(s) > 9)
        return false;
    for (const char *p = s; *p; p++)
        if (*p < '0' || *p > '9')
            return false;
    long v = strtol(s, NULL, 10);
    if (v < min || v > max)
        return false;
    *out = v;
    return true;
}

static int parse_db(const char *s, int *db, sl_err *err)
{
    long v;
    if (!strict_number(s, 0, 100000, &v))
        return sl_err_set(err, SL_EINVAL, "redis URL: bad database number (a decimal number expected)");
    *db = (int)v;
    return 0;
}

/* Copies a curl URL part (NULL when absent) into a new string. */
static char *url_part(CURLU *h, CURLUPart what, unsigned flags)
{
    char *part = NULL;
    if (curl_url_get(h, what, &part, flags) != CURLUE_OK || part == NULL)
        return NULL;
    char *copy = sl_xstrdup(part);
    curl_free(part);
    return copy;
}

/* unix://[[USER]:PASSWORD@]/absolute/path[?db=N] -- parsed by hand: libcurl
 * has no notion of a socket path.  The credentials are percent-decoded. */
static int parse_unix(const char *rest, redis_url *u, sl_err *err)
{
    const char *at = strchr(rest, '@');
    const char *q = strchr(rest, '?');
    if (at && (q == NULL || at < q)) {
        const char *colon = memchr(rest, ':', (size_t)(at - rest));
        if (colon == NULL)
            return sl_err_set(err, SL_EINVAL, "redis URL: unix:// credentials must be [USER]:PASSWORD@");
        int n;
        char *user = curl_easy_unescape(NULL, rest, (int)(colon - rest), &n);
        char *pass = curl_easy_unescape(NULL, colon + 1, (int)(at - colon - 1), &n);
        if (user == NULL || pass == NULL) {
            curl_free(user);
            curl_free(pass);
            return sl_err_set(err, SL_EINVAL, "redis URL: bad credentials");
        }
        u->user = user[0] ? sl_xstrdup(user) : NULL;
        u->password = sl_xstrdup(pass);
        explicit_bzero(pass, strlen(pass));
        curl_free(user);
        curl_free(pass);
        rest = at + 1;
    }
    u->path = q ? sl_xstrndup(rest, (size_t)(q - rest)) : sl_xstrdup(rest);
    if (u->path[0] != '/')
        return sl_err_set(err, SL_EINVAL, "redis URL: unix socket path must be absolute");
    if (q && strncmp(q, "?db=", 4) == 0)
        return parse_db(q + 4, &u->db, err);
    if (q)
        return sl_err_set(err, SL_EINVAL, "redis URL: the only unix:// option is ?db=N");
    return 0;
}

/* redis://[[USER]:PASSWORD@]HOST[:PORT][/DB] with libcurl's URL parser
 * (IPv6 literals in brackets, percent-decoding, strict ports).  Messages
 * never repeat the URL: it may carry a password. */
static int parse_tcp(const char *url, redis_url *u, sl_err *err)
{
    int rc = -1;
    char *port = NULL, *path = NULL;
    CURLU *h = curl_url();
    if (h == NULL)
        return sl_err_set(err, SL_EIO, "redis URL: curl_url: out of memory");
    CURLUcode uc = curl_url_set(h, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME);
    if (uc != CURLUE_OK) {
        sl_err_set(err, SL_EINVAL, "redis URL: %s", uc == CURLUE_NO_HOST ? "missing host" :
                   uc == CURLUE_BAD_PORT_NUMBER ? "bad port (1-65535)" : curl_url_strerror(uc));
        goto cleanup;
    }
    u->host = url_part(h, CURLUPART_HOST, CURLU_URLDECODE);
    if (u->host == NULL || u->host[0] == '\0') {
        sl_err_set(err, SL_EINVAL, "redis URL: missing host");
        goto cleanup;
    }
    size_t hl = strlen(u->host);
    if (u->host[0] == '[' && hl > 2 && u->host[hl - 1] == ']') {   /* IPv6 literal */
        memmove(u->host, u->host + 1, hl - 2);
        u->host[hl - 2] = '\0';
    }
    u->user = url_part(h, CURLUPART_USER, CURLU_URLDECODE);
    u->password = url_part(h, CURLUPART_PASSWORD, CURLU_URLDECODE);
    if (u->user && u->user[0] == '\0') {
        free(u->user);
        u->user = NULL;
    }
    if (u->user && u->password == NULL) {
        /* redis://secret@host: a lone credential is the password, as redis-cli reads it */
        u->password = u->user;
        u->user = NULL;
    }
    port = url_part(h, CURLUPART_PORT, 0);
    long pv = 6379;
    if (port && !strict_number(port, 1, 65535, &pv)) {
        sl_err_set(err, SL_EINVAL, "redis URL: bad port (1-65535)");
        goto cleanup;
    }
    u->port = (int)pv;
    path = url_part(h, CURLUPART_PATH, 0);
    if (path && strcmp(path, "/") != 0 && path[0] == '/' && parse_db(path + 1, &u->db, err) < 0)
        goto cleanup;
    rc = 0;
cleanup:
    free(port);
    free(path);
    curl_url_cleanup(h);
    return rc;
}

static int parse_url(const char *url, redis_url *u, sl_err *err)
{
    memset(u, 0, sizeof *u);
    u->port = 6379;
    int rc;
    if (strncmp(url, "rediss://", 9) == 0)
        rc = sl_err_set(err, SL_EINVAL,
                        "redis URL: rediss:// (TLS) is not supported by this build's hiredis");
    else if (strncmp(url, "unix://", 7) == 0)
        rc = parse_unix(url + 7, u, err);
    else if (strncmp(url, "redis://", 8) == 0)
        rc = parse_tcp(url, u, err);
    else
        rc = sl_err_set(err, SL_EINVAL, "redis URL must start with redis:// or unix://");
    if (rc < 0)
        url_clear(u);
    return rc;
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
