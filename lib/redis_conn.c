/* redis_conn.c: see redis_conn.h.
 *
 * A thin layer over hiredis's blocking API.  hiredis reports failures in
 * three ways (a NULL reply with ctx->err, REDIS_ERR from append/get, an
 * error reply); all three become one sl_err here, and the first two mark
 * the connection broken, since hiredis cannot resynchronise a stream after
 * an I/O or protocol error. */
#include "redis_conn.h"
#include "mem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

struct sl_rconn {
    redisContext *ctx;   /* hiredis connection, owned */
    int timeout_ms;      /* socket timeout for ordinary commands */
    bool broken;         /* an I/O or protocol error happened */
    char address[300];   /* host:port or socket path, for messages */
};

static struct timeval tv_of(int ms)
{
    struct timeval tv = { .tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000 };
    return tv;
}

static int fail_ctx(sl_rconn *c, sl_err *err, const char *what)
{
    c->broken = true;
    return sl_err_set(err, SL_EREDIS, "redis %s: %s: %s", c->address, what,
                      c->ctx && c->ctx->errstr[0] ? c->ctx->errstr : "connection lost");
}

/* A master turned replica (a failover) refuses writes with READONLY: the
 * connection is then as good as lost, and is marked broken so that the
 * caller connects again (and, with Sentinel, finds the new master). */
static void demoted(sl_rconn *c, const redisReply *rep)
{
    if (rep->type == REDIS_REPLY_ERROR && strncmp(rep->str, "READONLY", 8) == 0)
        c->broken = true;
}

static void command_name(char *buf, size_t n, int argc, const char *const *argv,
                         const size_t *lens)
{
    size_t len = argc > 0 ? (lens ? lens[0] : strlen(argv[0])) : 0;
    snprintf(buf, n, "%.*s", (int)(len < n ? len : n - 1), argc > 0 ? argv[0] : "");
}

static int simple_command(sl_rconn *c, sl_err *err, int argc, const char **argv)
{
    redisReply *rep = sl_rconn_command(c, argc, argv, NULL, err);
    if (rep == NULL)
        return -1;
    freeReplyObject(rep);
    return 0;
}

sl_rconn *sl_rconn_open(const sl_rconn_addr *a, sl_err *err)
{
    sl_rconn *c = sl_xcalloc(1, sizeof *c);
    c->timeout_ms = a->timeout_ms > 0 ? a->timeout_ms : 5000;
    struct timeval tv = tv_of(c->timeout_ms);
    if (a->path) {
        snprintf(c->address, sizeof c->address, "%s", a->path);
        c->ctx = redisConnectUnixWithTimeout(a->path, tv);
    } else {
        snprintf(c->address, sizeof c->address, "%s:%d", a->host, a->port);
        c->ctx = redisConnectWithTimeout(a->host, a->port, tv);
    }
    if (c->ctx == NULL || c->ctx->err) {
        fail_ctx(c, err, "connect");
        goto fail;
    }
    if (redisSetTimeout(c->ctx, tv) != REDIS_OK) {
        fail_ctx(c, err, "set timeout");
        goto fail;
    }
    if (a->password) {
        const char *argv[3] = { "AUTH", a->user ? a->user : a->password, a->password };
        if (simple_command(c, err, a->user ? 3 : 2, argv) < 0)
            goto fail;
    }
    if (a->db != 0) {
        char db[16];
        snprintf(db, sizeof db, "%d", a->db);
        const char *argv[2] = { "SELECT", db };
        if (simple_command(c, err, 2, argv) < 0)
            goto fail;
    }
    return c;
fail:
    sl_rconn_free(c);
    return NULL;
}

void sl_rconn_free(sl_rconn *c)
{
    if (c == NULL)
        return;
    if (c->ctx)
        redisFree(c->ctx);
    free(c);
}

redisReply *sl_rconn_command(sl_rconn *c, int argc, const char *const *argv, const size_t *lens,
                             sl_err *err)
{
    char cmd[32];
    command_name(cmd, sizeof cmd, argc, argv, lens);
    if (c->broken) {
        sl_err_set(err, SL_EREDIS, "redis %s: %s: connection is broken", c->address, cmd);
        return NULL;
    }
    redisReply *rep = redisCommandArgv(c->ctx, argc, (const char **)argv, lens);
    if (rep == NULL) {
        fail_ctx(c, err, cmd);
        return NULL;
    }
    if (rep->type == REDIS_REPLY_ERROR) {
        demoted(c, rep);
        sl_err_set(err, SL_EREDIS, "redis %s: %s: %s", c->address, cmd, rep->str);
        freeReplyObject(rep);
        return NULL;
    }
    return rep;
}

int sl_rconn_append(sl_rconn *c, int argc, const char *const *argv, const size_t *lens,
                    sl_err *err)
{
    if (c->broken)
        return sl_err_set(err, SL_EREDIS, "redis %s: connection is broken", c->address);
    if (redisAppendCommandArgv(c->ctx, argc, (const char **)argv, lens) != REDIS_OK)
        return fail_ctx(c, err, "append");
    return 0;
}

redisReply *sl_rconn_reply(sl_rconn *c, sl_err *err)
{
    void *p = NULL;
    if (c->broken) {
        sl_err_set(err, SL_EREDIS, "redis %s: connection is broken", c->address);
        return NULL;
    }
    if (redisGetReply(c->ctx, &p) != REDIS_OK || p == NULL) {
        fail_ctx(c, err, "read reply");
        return NULL;
    }
    demoted(c, p);
    return p;
}

int sl_rconn_flush(sl_rconn *c, sl_err *err)
{
    if (c->broken)
        return sl_err_set(err, SL_EREDIS, "redis %s: connection is broken", c->address);
    int done = 0;
    while (!done) {
        if (redisBufferWrite(c->ctx, &done) != REDIS_OK)
            return fail_ctx(c, err, "write");
    }
    return 0;
}

int sl_rconn_set_timeout(sl_rconn *c, int ms, sl_err *err)
{
    if (c->broken)
        return sl_err_set(err, SL_EREDIS, "redis %s: connection is broken", c->address);
    if (redisSetTimeout(c->ctx, tv_of(ms)) != REDIS_OK)
        return fail_ctx(c, err, "set timeout");
    return 0;
}

int sl_rconn_timeout(const sl_rconn *c) { return c->timeout_ms; }
bool sl_rconn_broken(const sl_rconn *c) { return c->broken; }
int sl_rconn_fd(const sl_rconn *c) { return c->ctx ? c->ctx->fd : -1; }
const char *sl_rconn_address(const sl_rconn *c) { return c->address; }
