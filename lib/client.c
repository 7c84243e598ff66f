/* client.c: the public C client API (include/sluice.h), a thin wrapper
 * over the envelope codec and the queue module that keeps sluice's
 * internal types out of the interface upstream programs compile against. */
#include "sluice.h"

#include "clock.h"
#include "envelope.h"
#include "jobid.h"
#include "json.h"
#include "mem.h"
#include "queue.h"
#include "redis.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct sluice_client {
    sl_redis *redis;  /* owned */
};

static void put_error(char *errbuf, size_t errlen, const char *msg)
{
    if (errbuf && errlen)
        snprintf(errbuf, errlen, "%s", msg);
}

sluice_client *sluice_client_new(const char *redis_url, char *errbuf, size_t errlen)
{
    if (redis_url == NULL)
        redis_url = getenv("SLUICE_REDIS_URL");
    if (redis_url == NULL || *redis_url == '\0')
        redis_url = getenv("REDIS_URL");
    if (redis_url == NULL || *redis_url == '\0')
        redis_url = "redis://127.0.0.1:6379/0";
    sl_err err;
    sl_redis *r = sl_redis_connect(redis_url, 5000, &err);
    if (r == NULL) {
        put_error(errbuf, errlen, err.msg);
        return NULL;
    }
    sluice_client *c = sl_xcalloc(1, sizeof *c);
    c->redis = r;
    return c;
}

void sluice_client_free(sluice_client *c)
{
    if (c == NULL)
        return;
    sl_redis_free(c->redis);
    free(c);
}

int sluice_enqueue(sluice_client *c, const sluice_job_spec *spec, char *id_out,
                   char *errbuf, size_t errlen)
{
    sl_err err;
    msgpack_sbuffer args;
    msgpack_sbuffer_init(&args);
    int rc = -1;
    char newid[37];
    if (spec->kind == NULL) {
        sl_err_set(&err, SL_EINVAL, "kind is required");
        goto out;
    }
    if (spec->id && !sl_jobid_valid(spec->id)) {
        sl_err_set(&err, SL_EINVAL, "invalid job id '%.140s'", spec->id);
        goto out;
    }
    if (spec->max_attempts < 0 || spec->timeout_ms < 0) {
        sl_err_set(&err, SL_EINVAL, "max_attempts and timeout_ms must not be negative");
        goto out;
    }
    if (spec->args_json) {
        msgpack_packer pk;
        msgpack_packer_init(&pk, &args, msgpack_sbuffer_write);
        if (sl_json_to_msgpack(spec->args_json, strlen(spec->args_json), &pk, &err) < 0) {
            sl_err_wrap(&err, "args_json");
            goto out;
        }
    }
    if (spec->id == NULL)
        sl_jobid_new(newid);
    sl_job job = {
        .id = (char *)(spec->id ? spec->id : newid),
        .kind = (char *)spec->kind,
        .queue = (char *)(spec->queue ? spec->queue : "default"),
        .args = args.size ? args.data : NULL, .args_len = args.size,
        .attempt = 1, .max_attempts = spec->max_attempts, .timeout_ms = spec->timeout_ms,
        .unique_key = (char *)spec->unique_key,
    };
    sl_job_stamp_now(&job);
    if (sl_queue_enqueue(c->redis, &job, &err) < 0)
        goto out;
    snprintf(id_out, SLUICE_ID_MAX + 1, "%s", job.id);
    rc = 0;
out:
    if (rc < 0)
        put_error(errbuf, errlen, err.msg);
    msgpack_sbuffer_destroy(&args);
    return rc;
}
