/* ratelimit.c: see ratelimit.h.  The scripts keep all arithmetic on the
 * server, by its clock: a bucket's tokens are a float refilled from the
 * time of the previous call (µs), so rates well below one per second and
 * above a million per hour are exact enough. */
#include "ratelimit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "luascript.h"

/* KEYS[1] bucket; ARGV[1] capacity (= count), ARGV[2] period ms, ARGV[3]
 * want.  Refills by the server's clock, then grants what it can; returns
 * {granted, wait_ms}. */
static const sl_lua TAKE = {
    "69a1f5d5f2ade5be0b25996c3210913e82db7efb",
    "local cap = tonumber(ARGV[1])\n"
    "local period = tonumber(ARGV[2]) * 1000\n"
    "local want = tonumber(ARGV[3])\n"
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000000 + tonumber(t[2])\n"
    "local s = redis.call('HMGET', KEYS[1], 't', 'ts')\n"
    "local tokens, ts = tonumber(s[1]), tonumber(s[2])\n"
    "if tokens == nil or ts == nil or tokens > cap then tokens, ts = cap, now end\n"
    "if now > ts then\n"
    "  tokens = math.min(cap, tokens + (now - ts) * cap / period)\n"
    "  ts = now\n"
    "end\n"
    "local got = math.min(want, math.floor(tokens))\n"
    "tokens = tokens - got\n"
    "local wait = 0\n"
    "if got == 0 then wait = math.max(1, math.ceil((1 - tokens) * period / cap / 1000)) end\n"
    "redis.call('HSET', KEYS[1], 't', string.format('%.17g', tokens), 'ts', string.format('%.0f', ts))\n"
    "redis.call('PEXPIRE', KEYS[1], math.ceil(2 * period / 1000) + 1000)\n"
    "return {got, wait}\n",
};

/* KEYS[1] bucket; ARGV[1] capacity, ARGV[2] tokens to put back. */
static const sl_lua GIVE_BACK = {
    "38f233eb0405e436cdb4a20a738c924fbf18fe8f",
    "local cap = tonumber(ARGV[1])\n"
    "local tokens = tonumber(redis.call('HGET', KEYS[1], 't'))\n"
    "if tokens == nil then return 0 end\n"
    "tokens = math.min(cap, tokens + tonumber(ARGV[2]))\n"
    "redis.call('HSET', KEYS[1], 't', string.format('%.17g', tokens))\n"
    "return 1\n",
};

/* KEYS[1] slot set; ARGV[1] capacity, ARGV[2] holder, ARGV[3] lease ms.
 * Expired leases are dropped first; a holder renews its own slot. */
static const sl_lua SLOTS_TAKE = {
    "be89e5ea031618cdf2fac6c57fa297d5e34a2bd4",
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "local expiry = string.format('%.0f', now + tonumber(ARGV[3]))\n"
    "redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)\n"
    "if not redis.call('ZSCORE', KEYS[1], ARGV[2]) and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then\n"
    "  return 0\n"
    "end\n"
    "redis.call('ZADD', KEYS[1], expiry, ARGV[2])\n"
    "local keep = tonumber(ARGV[3]) + 1000\n"
    "if redis.call('PTTL', KEYS[1]) < keep then redis.call('PEXPIRE', KEYS[1], keep) end\n"
    "return 1\n",
};

/* KEYS[1] slot set; ARGV[1] holder. */
static const sl_lua SLOTS_RELEASE = {
    "e8f1e92f30e8b2531963e1844fcd7ac4620a4571",
    "redis.call('ZREM', KEYS[1], ARGV[1])\n"
    "return 1\n",
};

int sl_rate_take(sl_redis *r, const char *key, const sl_rate *rate, int want, int *granted,
                 int *wait_ms, sl_err *err)
{
    *granted = 0;
    *wait_ms = 0;
    char cap[24], period[24], n[16];
    snprintf(cap, sizeof cap, "%lld", rate->count);
    snprintf(period, sizeof period, "%lld", rate->period_ms);
    snprintf(n, sizeof n, "%d", want > 0 ? want : 1);
    const char *keys[] = { key }, *args[] = { cap, period, n };
    redisReply *rep = sl_lua_run(r, &TAKE, 1, keys, 3, args, NULL, err);
    if (rep == NULL)
        return sl_err_wrap(err, "rate limit %s", key);
    int rc = 0;
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
        rep->element[0]->type != REDIS_REPLY_INTEGER || rep->element[1]->type != REDIS_REPLY_INTEGER) {
        rc = sl_err_set(err, SL_EREDIS, "rate limit %s: unexpected reply", key);
    } else {
        *granted = (int)rep->element[0]->integer;
        long long w = rep->element[1]->integer;
        *wait_ms = w > 3600000 ? 3600000 : (int)w;
    }
    freeReplyObject(rep);
    return rc;
}

int sl_rate_give_back(sl_redis *r, const char *key, const sl_rate *rate, int n, sl_err *err)
{
    if (n <= 0)
        return 0;
    char cap[24], back[16];
    snprintf(cap, sizeof cap, "%lld", rate->count);
    snprintf(back, sizeof back, "%d", n);
    const char *keys[] = { key }, *args[] = { cap, back };
    redisReply *rep = sl_lua_run(r, &GIVE_BACK, 1, keys, 2, args, NULL, err);
    if (rep == NULL)
        return sl_err_wrap(err, "rate limit %s", key);
    freeReplyObject(rep);
    return 0;
}

int sl_slots_take(sl_redis *r, const char *key, int cap, const char *holder, int64_t lease_ms, bool *got,
                  sl_err *err)
{
    *got = false;
    char c[16], lease[24];
    snprintf(c, sizeof c, "%d", cap);
    snprintf(lease, sizeof lease, "%lld", (long long)(lease_ms > 0 ? lease_ms : 1));
    const char *keys[] = { key }, *args[] = { c, holder, lease };
    redisReply *rep = sl_lua_run(r, &SLOTS_TAKE, 1, keys, 3, args, NULL, err);
    if (rep == NULL)
        return sl_err_wrap(err, "concurrency slots %s", key);
    *got = rep->type == REDIS_REPLY_INTEGER && rep->integer == 1;
    freeReplyObject(rep);
    return 0;
}

int sl_slots_release(sl_redis *r, const char *key, const char *holder, sl_err *err)
{
    const char *keys[] = { key }, *args[] = { holder };
    redisReply *rep = sl_lua_run(r, &SLOTS_RELEASE, 1, keys, 1, args, NULL, err);
    if (rep == NULL)
        return sl_err_wrap(err, "concurrency slots %s", key);
    freeReplyObject(rep);
    return 0;
}
