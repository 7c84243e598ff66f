/* redis_conn.h: one hiredis connection to one Redis server.
 *
 * The building block of sl_redis (redis.h): a single server, a Redis
 * Cluster node, a Sentinel or the master it names.  It connects over TCP or
 * a unix socket, authenticates, selects a database, keeps a socket timeout
 * (raised for a blocking command), and turns every way a call can fail into
 * one sl_err naming the server (never the password).  After an I/O or
 * protocol error, or a READONLY error reply (the server is a replica now:
 * a failover happened), the connection is broken for good: free it.
 *
 * A connection must never cross fork(). */
#ifndef SL_REDIS_CONN_H
#define SL_REDIS_CONN_H

#include <stdbool.h>
#include <stddef.h>

#include <hiredis/hiredis.h>

#include "err.h"

typedef struct sl_rconn sl_rconn;

/* Where and how to connect. */
typedef struct sl_rconn_addr {
    const char *host;     /* TCP host (IPv6 without brackets), or NULL for path */
    int port;             /* TCP port */
    const char *path;     /* unix socket path, or NULL */
    const char *user;     /* NULL: AUTH with the password alone */
    const char *password; /* NULL: no AUTH */
    int db;               /* SELECT when not 0 */
    int timeout_ms;       /* connect and socket timeout (> 0) */
} sl_rconn_addr;

/* Connects, authenticates and selects.  Returns NULL with err (SL_EREDIS)
 * naming the address on failure.  Free with sl_rconn_free. */
sl_rconn *sl_rconn_open(const sl_rconn_addr *a, sl_err *err);
void sl_rconn_free(sl_rconn *c);

/* One command; an error reply is returned as NULL with err ("CMD: message")
 * and leaves the connection usable.  The caller frees the reply. */
redisReply *sl_rconn_command(sl_rconn *c, int argc, const char *const *argv, const size_t *lens,
                             sl_err *err);

/* Pipelining: queue a command / read the next reply.  Error replies are
 * returned as replies; NULL means the connection failed (it is broken). */
int sl_rconn_append(sl_rconn *c, int argc, const char *const *argv, const size_t *lens,
                    sl_err *err);
redisReply *sl_rconn_reply(sl_rconn *c, sl_err *err);

/* Writes every queued command out, so that several connections' replies
 * can be awaited together.  -1 with err (broken) on failure. */
int sl_rconn_flush(sl_rconn *c, sl_err *err);

/* Socket timeout for what follows (ms > 0); -1 with err (broken) on failure. */
int sl_rconn_set_timeout(sl_rconn *c, int ms, sl_err *err);
int sl_rconn_timeout(const sl_rconn *c);   /* the one given at open */

bool sl_rconn_broken(const sl_rconn *c);
int sl_rconn_fd(const sl_rconn *c);             /* -1 if none */
const char *sl_rconn_address(const sl_rconn *c); /* "host:port" or the path */

#endif
