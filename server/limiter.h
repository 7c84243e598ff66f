/* limiter.h: per-address limits of the API server.
 *
 * Two things are counted per client address: requests (a token bucket of
 * api.rate_limit per second, api.rate_burst deep) and failed
 * authentications (after api.auth_failures of them within api.auth_lockout,
 * the address gets 429 for api.auth_lockout, whatever credential it
 * presents).  The table has a fixed number of entries; when it is full the
 * least recently seen address is forgotten, so memory does not grow with
 * the number of addresses.  Thread-safe (one mutex). */
#ifndef SL_LIMITER_H
#define SL_LIMITER_H

#include <stdbool.h>
#include <stdint.h>

#include "config_api.h"

typedef struct sl_limiter sl_limiter;

sl_limiter *sl_limiter_new(const sl_api_config *cfg);   /* cfg borrowed */
void sl_limiter_free(sl_limiter *l);                     /* l may be NULL */

/* Takes one request from addr's bucket at now_ms (monotonic).  False when
 * the bucket is empty; *retry_s then says when to come back. */
bool sl_limiter_request(sl_limiter *l, const char *addr, int64_t now_ms, int *retry_s);

/* True while addr is locked out for failed authentications (*retry_s: how
 * long still). */
bool sl_limiter_locked(sl_limiter *l, const char *addr, int64_t now_ms, int *retry_s);

/* Counts a failed authentication from addr. */
void sl_limiter_auth_failed(sl_limiter *l, const char *addr, int64_t now_ms);

#endif
