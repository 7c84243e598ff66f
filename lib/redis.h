/* redis.h: one connection to Redis, made from a URL.
 *
 * URLs: redis://[[user]:password@]host[:port][/db]  and
 *       unix:///path/to/redis.sock[?db=N]
 * (hiredis 0.14 as shipped by Debian has no TLS, so rediss:// is refused
 * with a message saying so).  Credentials may be percent-encoded.
 *
 * The connection has a socket timeout so that a Redis that stops answering
 * turns into an error instead of a hang; blocking reads raise it for the
 * duration of the call (sl_redis_command_blocking).
 *
 * A connection must never cross fork(): open it in the process that uses it. */
#ifndef SL_REDIS_H
#define SL_REDIS_H

#include <stddef.h>

#include <hiredis/hiredis.h>

#include "err.h"

typedef struct sl_redis sl_redis;

/* Connects, authenticates and selects the database.  timeout_ms bounds the
 * connect and every later command.  Returns NULL with err (SL_EREDIS or,
 * for a malformed URL, SL_EINVAL) on failure; the message names the
 * address but never the password. */
sl_redis *sl_redis_connect(const char *url, int timeout_ms, sl_err *err);

void sl_redis_free(sl_redis *r);

/* Checks url as sl_redis_connect would, without connecting.  Returns 0, or
 * -1 with err (SL_EINVAL) saying what is wrong (fuzz/redis_url.c). */
int sl_redis_url_check(const char *url, sl_err *err);

/* Runs one command (argv form, binary safe).  Returns the reply, which the
 * caller frees with freeReplyObject, or NULL with err set: SL_EREDIS for a
 * connection failure or an error reply ("XADD: WRONGTYPE …").  After a
 * connection failure the handle is broken: sl_redis_broken says so and the
 * caller reconnects. */
redisReply *sl_redis_command(sl_redis *r, int argc, const char **argv, const size_t *lens,
                             sl_err *err);

/* Like sl_redis_command, for a command that blocks on the server for up to
 * block_ms (XREADGROUP … BLOCK): the socket timeout is raised accordingly. */
redisReply *sl_redis_command_blocking(sl_redis *r, int block_ms, int argc, const char **argv,
                                      const size_t *lens, sl_err *err);

/* Pipelining: queue commands with sl_redis_append, then collect exactly as
 * many replies with sl_redis_reply, in order, in one round trip.  An error
 * reply is returned as a reply (type REDIS_REPLY_ERROR), not as a failure;
 * NULL means the connection failed. */
int sl_redis_append(sl_redis *r, int argc, const char **argv, const size_t *lens, sl_err *err);
redisReply *sl_redis_reply(sl_redis *r, sl_err *err);

/* True once the connection has failed; it must then be freed. */
int sl_redis_broken(const sl_redis *r);

/* The connection's socket, so that a forked child can close(2) its copy
 * without touching the connection (the parent keeps using it). */
int sl_redis_fd(const sl_redis *r);

/* "host:port" or the socket path, for messages. */
const char *sl_redis_address(const sl_redis *r);

#endif
