/* redis.h: one connection to Redis, made from a URL.
 *
 * URLs: redis://[[user]:password@]host[:port][/db]
 *       unix:///path/to/redis.sock[?db=N]
 *       redis+cluster://[[user]:password@]host[:port][,host[:port]…][/0]
 *           a Redis Cluster, given one or more seed nodes (port 6379 by
 *           default): commands go to the master of their keys' slot and
 *           redirections are followed (redis_cluster.h)
 *       redis+sentinel://[[user]:password@]host[:port][,…]/MASTER[?db=N]
 *           the current master named MASTER by the first sentinel that
 *           answers (port 26379 by default), checked with ROLE; the
 *           credentials are the master's, the sentinels are asked without
 * (hiredis 0.14 as shipped by Debian has no TLS, so rediss:// is refused
 * with a message saying so).  Credentials may be percent-encoded.
 *
 * Options after '?' (joined by '&', on every form):
 *   db=N                 unix:// and redis+sentinel:// only
 *   wait_replicas=N      1..100 (0: off, the default): each enqueue is
 *                        followed by WAIT N in the same round trip and fails
 *                        unless N replicas have the job (sl_redis_append_wait)
 *   wait_timeout=DUR     1ms..1h, default 1s: the longest that WAIT blocks
 *
 * Whatever the URL, the interface is the same: after a connection failure
 * the handle is broken and the caller connects again, which reads a
 * cluster's slot map afresh or asks the sentinels again (a failover).
 *
 * The connection has a socket timeout so that a Redis that stops answering
 * turns into an error instead of a hang; blocking reads raise it for the
 * duration of the call (sl_redis_command_blocking).
 *
 * A connection must never cross fork(): open it in the process that uses it. */
#ifndef SL_REDIS_H
#define SL_REDIS_H

#include <stdbool.h>
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

/* Closes this process's copies of the connection's sockets (every node's,
 * for a cluster) without telling the server, so that a forked child lets
 * go of them while the parent keeps using the connection. */
void sl_redis_close_fds(const sl_redis *r);

/* True for a Redis Cluster connection (redis+cluster://). */
bool sl_redis_is_cluster(const sl_redis *r);

/* Writes "host:port" of the server that serves cluster slot `slot` (the
 * one server, for other connections) into buf; -1 if the slot map has no
 * master for it.  For tests and messages. */
int sl_redis_slot_address(const sl_redis *r, int slot, char *buf, size_t n);

/* MOVED and ASK redirections a cluster connection has followed (0 for
 * others).  For tests and diagnostics. */
void sl_redis_redirections(const sl_redis *r, long *moved, long *asked);

/* "host:port" or the socket path, for messages. */
const char *sl_redis_address(const sl_redis *r);

/* Appends WAIT for the replicas the URL asks for (wait_replicas), after a
 * write appended to the same pipeline: on a cluster it goes to the node of
 * the command before it.  Returns 1 if appended, 0 if the URL asks for
 * none, -1 with err as sl_redis_append. */
int sl_redis_append_wait(sl_redis *r, sl_err *err);

/* Checks the reply of that WAIT: 0 if enough replicas acknowledged the
 * write, else -1 with err (SL_EREDIS) saying how many did, that the write
 * happened on the master, and that repeating it with the same job id is
 * safe.  The message names the address, never the URL. */
int sl_redis_wait_result(const sl_redis *r, const redisReply *rep, sl_err *err);

#endif
