/* luascript.h: Lua scripts run on Redis by their SHA1.
 *
 * A script is sent with EVALSHA, and in full (EVAL, which also caches it)
 * only when the server answers NOSCRIPT: the first time, and after a
 * restart or SCRIPT FLUSH.  The SHA1 is written next to the text, not
 * computed (`printf '%s' "$text" | sha1sum`); if it were stale, every call
 * would fall back to EVAL — slower, still correct — so each script's tests
 * check that the server ran it by its SHA.  Every key a script touches must
 * be passed in KEYS and share one hash tag, so that scripts run on Redis
 * Cluster too; the one exception, PROMOTE_NOTED (queue.c), also updates
 * the index sluice:due and is used on one Redis only. */
#ifndef SL_LUASCRIPT_H
#define SL_LUASCRIPT_H

#include <stddef.h>

#include <hiredis/hiredis.h>

#include "err.h"
#include "redis.h"

typedef struct sl_lua {
    const char *sha1; /* hex SHA1 of text */
    const char *text; /* the Lua source */
} sl_lua;

/* Runs script s with nkeys keys and nargs arguments (arg_lens: NULL for
 * strlen).  Returns the reply (caller frees with freeReplyObject) or NULL
 * with err (an error reply is an error). */
redisReply *sl_lua_run(sl_redis *r, const sl_lua *s, int nkeys, const char *const *keys, int nargs,
                       const char *const *args, const size_t *arg_lens, sl_err *err);

#endif
