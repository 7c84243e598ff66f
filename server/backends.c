/* backends.c: see backends.h. */
#include "backends.h"

#include <assert.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "config_api.h"
#include "log.h"
#include "mem.h"

#define DOWN_MS 1000   /* after a failed connect, fail fast this long */

struct sl_backends {
    sl_pool *pool;     /* borrowed */
    bool taken;
    sl_db *db;         /* owned, NULL until needed */
    sl_store *store;   /* owned, NULL until needed */
    sl_redis *redis;   /* owned, NULL until needed */
};

struct sl_pool {
    const sl_config *cfg;   /* borrowed */
    char *pg_url;           /* owned: database.url with the timeouts */
    const sl_sign_key *audit_key; /* borrowed, NULL: decisions audited unsigned */
    pthread_mutex_t mu;
    pthread_cond_t freed;
    int64_t pg_down_until;     /* monotonic ms; under mu */
    int64_t redis_down_until;  /* monotonic ms; under mu */
    sl_backends *slots;
    size_t n;
};

char *sl_backends_pg_url(const char *url, int timeout_ms)
{
    int secs = (timeout_ms + 999) / 1000;
    if (secs < 2)
        secs = 2;   /* libpq's smallest connect_timeout */
    if (strncmp(url, "postgresql://", 13) == 0 || strncmp(url, "postgres://", 11) == 0)
        return sl_xasprintf("%s%cconnect_timeout=%d&options=-c%%20statement_timeout%%3D%d", url,
                            strchr(url, '?') ? '&' : '?', secs, timeout_ms);
    return sl_xasprintf("%s connect_timeout=%d options='-c statement_timeout=%d'", url, secs, timeout_ms);
}

sl_pool *sl_pool_new(const sl_config *cfg, size_t nslots)
{
    sl_pool *p = sl_xcalloc(1, sizeof *p);
    p->cfg = cfg;
    p->pg_url = sl_backends_pg_url(cfg->database_url, sl_api_config_of(cfg)->backend_timeout_ms);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->freed, NULL);
    p->slots = sl_xcalloc(nslots, sizeof *p->slots);
    p->n = nslots;
    for (size_t i = 0; i < nslots; i++)
        p->slots[i].pool = p;
    return p;
}

void sl_pool_set_audit_key(sl_pool *p, const sl_sign_key *key)
{
    p->audit_key = key;
}

void sl_pool_free(sl_pool *p)
{
    if (p == NULL)
        return;
    for (size_t i = 0; i < p->n; i++) {
        assert(!p->slots[i].taken);
        sl_db_free(p->slots[i].db);
        sl_store_free(p->slots[i].store);
        sl_redis_free(p->slots[i].redis);
    }
    pthread_cond_destroy(&p->freed);
    pthread_mutex_destroy(&p->mu);
    free(p->slots);
    free(p->pg_url);
    free(p);
}

sl_backends *sl_pool_take(sl_pool *p)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    int64_t ns = until.tv_nsec + (int64_t)sl_api_config_of(p->cfg)->backend_timeout_ms * 1000000;
    until.tv_sec += ns / 1000000000;
    until.tv_nsec = ns % 1000000000;
    sl_backends *got = NULL;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        for (size_t i = 0; i < p->n && got == NULL; i++) {
            if (!p->slots[i].taken)
                got = &p->slots[i];
        }
        if (got || pthread_cond_timedwait(&p->freed, &p->mu, &until) != 0)
            break;
    }
    if (got)
        got->taken = true;
    pthread_mutex_unlock(&p->mu);
    return got;
}

void sl_pool_give(sl_pool *p, sl_backends *b)
{
    if (b == NULL)
        return;
    pthread_mutex_lock(&p->mu);
    b->taken = false;
    pthread_cond_signal(&p->freed);
    pthread_mutex_unlock(&p->mu);
}

/* True (with err) while the backend is marked down. */
static bool is_down(sl_pool *p, const int64_t *until, const char *what, int code, sl_err *err)
{
    pthread_mutex_lock(&p->mu);
    bool down = sl_monotonic_ms() < *until;
    pthread_mutex_unlock(&p->mu);
    if (down)
        sl_err_set(err, code, "%s unavailable", what);
    return down;
}

/* Logs the real error, marks the backend down and replaces err's message
 * by one that names only the backend. */
static void went_down(sl_pool *p, int64_t *until, const char *what, int code, sl_err *err)
{
    char q[600];
    SL_WARN("serve.backend_down", "backend=%s error=%s", what, sl_log_quote(q, sizeof q, err->msg));
    pthread_mutex_lock(&p->mu);
    *until = sl_monotonic_ms() + DOWN_MS;
    pthread_mutex_unlock(&p->mu);
    sl_err_set(err, code, "%s unavailable", what);
}

sl_db *sl_backends_db(sl_backends *b, sl_err *err)
{
    sl_pool *p = b->pool;
    if (b->db && sl_db_broken(b->db)) {
        sl_db_free(b->db);
        b->db = NULL;
    }
    if (b->db == NULL && !is_down(p, &p->pg_down_until, "postgres", SL_EPG, err) &&
        (b->db = sl_db_connect(p->pg_url, err)) == NULL)
        went_down(p, &p->pg_down_until, "postgres", SL_EPG, err);
    if (b->db)
        sl_db_set_audit_key(b->db, p->audit_key);
    return b->db;
}

sl_store *sl_backends_store(sl_backends *b, sl_err *err)
{
    sl_pool *p = b->pool;
    if (b->store && sl_store_broken(b->store)) {
        sl_store_free(b->store);
        b->store = NULL;
    }
    if (b->store == NULL && !is_down(p, &p->pg_down_until, "postgres", SL_EPG, err) &&
        (b->store = sl_store_connect(p->pg_url, err)) == NULL)
        went_down(p, &p->pg_down_until, "postgres", SL_EPG, err);
    return b->store;
}

sl_redis *sl_backends_redis(sl_backends *b, sl_err *err)
{
    sl_pool *p = b->pool;
    if (b->redis && sl_redis_broken(b->redis)) {
        sl_redis_free(b->redis);
        b->redis = NULL;
    }
    if (b->redis == NULL && !is_down(p, &p->redis_down_until, "redis", SL_EREDIS, err) &&
        (b->redis = sl_redis_connect(p->cfg->redis_url, sl_api_config_of(p->cfg)->backend_timeout_ms, err)) == NULL)
        went_down(p, &p->redis_down_until, "redis", SL_EREDIS, err);
    return b->redis;
}
