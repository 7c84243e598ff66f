/* redis_cluster.h: a client of a Redis Cluster, behind sl_redis (redis.h).
 *
 * It keeps the cluster's slot map (CLUSTER SLOTS: which master serves
 * each of the 16384 slots), one lazily opened connection per master
 * (redis_conn.h), and sends each command to the master of its keys' slot
 * (redis_slot.h).  Redirections are followed: MOVED (the slot has moved:
 * the map is corrected and the command sent again; the whole map is read
 * again before the next batch), ASK (the slot is being migrated and this
 * key is already on the target: ASKING + the command on the named node,
 * the map unchanged), TRYAGAIN and CLUSTERDOWN (a short pause, then again),
 * each a bounded number of times.
 *
 * Pipelining keeps the caller's order: commands appended are held until
 * the first reply is asked for, then sent to their nodes together (one
 * write per node), and the replies handed back in the order appended.  A
 * MULTI … EXEC block goes, whole, to the node of the slot of its first
 * keyed command; a redirection inside it sends the whole block again.
 *
 * Invariants: a command whose keys span several slots is never sent (it
 * is refused with an error naming them), except XREAD/XREADGROUP, which is
 * split into one read per slot, the replies merged in the caller's stream
 * order; an I/O error on any node marks the
 * whole client broken (a command may or may not have run there: only the
 * caller knows whether it is safe to repeat), and the caller reconnects,
 * which reads a fresh map from the seeds. */
#ifndef SL_REDIS_CLUSTER_H
#define SL_REDIS_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>

#include <hiredis/hiredis.h>

#include "err.h"
#include "redis_conn.h"

typedef struct sl_rcluster sl_rcluster;

/* Connects to the first seed that answers CLUSTER SLOTS and builds the
 * map.  seeds[i].host/port are the seed nodes; user, password and
 * timeout_ms are taken from seeds[0] (db must be 0).  Returns NULL with err
 * (SL_EREDIS) naming the seeds tried.  Free with sl_rcluster_free. */
sl_rcluster *sl_rcluster_open(const sl_rconn_addr *seeds, size_t nseeds, sl_err *err);
void sl_rcluster_free(sl_rcluster *cl);

/* One command, routed by its keys; block_ms > 0 raises the node's socket
 * timeout for a command that blocks on the server.  An error reply (or a
 * cross-slot command) is NULL with err; the caller frees the reply. */
redisReply *sl_rcluster_command(sl_rcluster *cl, int block_ms, int argc, const char *const *argv,
                                const size_t *lens, sl_err *err);

/* Pipelining, as sl_redis_append/sl_redis_reply.  An append that would
 * put keys of two slots into one MULTI block fails and breaks the client. */
int sl_rcluster_append(sl_rcluster *cl, int argc, const char *const *argv, const size_t *lens,
                       sl_err *err);
redisReply *sl_rcluster_reply(sl_rcluster *cl, sl_err *err);

bool sl_rcluster_broken(const sl_rcluster *cl);

/* Closes this process's copies of every node socket without telling the
 * servers (a forked child's duty, see sl_redis_close_fds). */
void sl_rcluster_close_fds(const sl_rcluster *cl);

/* Writes "host:port" of the master serving slot into buf (connecting to
 * nobody); -1 when the map has none.  For tests and messages. */
int sl_rcluster_slot_address(const sl_rcluster *cl, int slot, char *buf, size_t n);

/* Redirections followed since the client was opened. */
void sl_rcluster_redirections(const sl_rcluster *cl, long *moved, long *asked);

#endif
