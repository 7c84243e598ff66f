/* backends.h: the API server's connections to PostgreSQL and Redis.
 *
 * A pool of slots, one per request thread: a request takes a free slot
 * for its duration, so a slot's connections are used by one thread at a
 * time and never shared.  Connections open lazily and reopen after a
 * failure.  Every backend call is bounded: PostgreSQL connections carry
 * connect_timeout and statement_timeout (api.backend_timeout), Redis
 * connections a socket timeout.  After a failed connect the backend is
 * considered down for a second, during which requests fail at once instead
 * of each waiting out the timeout: an unreachable database costs one
 * timeout per second, not one per request.  The real error is logged here
 * (serve.backend_down); callers get a message that names only the backend
 * ("postgres unavailable"), safe to show anyone. */
#ifndef SL_BACKENDS_H
#define SL_BACKENDS_H

#include <stddef.h>

#include "config.h"
#include "db.h"
#include "err.h"
#include "redis.h"
#include "store.h"

typedef struct sl_pool sl_pool;
typedef struct sl_backends sl_backends;

/* A pool of nslots slots over cfg's servers (cfg borrowed).  Free with
 * sl_pool_free once no slot is taken. */
sl_pool *sl_pool_new(const sl_config *cfg, size_t nslots);

/* The key (borrowed, outliving the pool) that signs the audit rows of the
 * decisions made over the pool's database connections; NULL: unsigned. */
void sl_pool_set_audit_key(sl_pool *p, const sl_sign_key *key);
void sl_pool_free(sl_pool *p);   /* p may be NULL */

/* Takes a free slot, waiting at most api.backend_timeout; NULL if none. */
sl_backends *sl_pool_take(sl_pool *p);
void sl_pool_give(sl_pool *p, sl_backends *b);   /* b may be NULL */

/* The slot's connections, (re)connected as needed.  NULL with err
 * (SL_EPG / SL_EREDIS, "postgres unavailable") when the backend is down. */
sl_db *sl_backends_db(sl_backends *b, sl_err *err);
sl_store *sl_backends_store(sl_backends *b, sl_err *err);
sl_redis *sl_backends_redis(sl_backends *b, sl_err *err);

/* Builds the PostgreSQL connection string of url with connect_timeout and
 * statement_timeout from timeout_ms appended (caller frees). */
char *sl_backends_pg_url(const char *url, int timeout_ms);

#endif
