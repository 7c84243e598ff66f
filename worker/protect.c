/* protect.c: see protect.h. */
#include "protect.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "config_jobs.h"
#include "config_worker.h"
#include "jobsig.h"
#include "mem.h"
#include "sign.h"

struct sl_protect {
    const sl_config *cfg;   /* borrowed */
    sl_sign_key **keys;     /* owned, nkeys public keys */
    size_t nkeys;
};

/* True if anything at all is protected. */
static bool any_protected(const sl_config *cfg)
{
    if (sl_worker_config_of(cfg)->nprotected_kinds > 0)
        return true;
    for (size_t i = 0; sl_config_jobs_of(cfg) && i < sl_config_jobs_of(cfg)->deploy.ntargets; i++) {
        if (sl_config_jobs_of(cfg)->deploy.targets[i].protected)
            return true;
    }
    return false;
}

sl_protect *sl_protect_new(const sl_config *cfg, sl_err *err)
{
    sl_protect *p = sl_xcalloc(1, sizeof *p);
    p->cfg = cfg;
    size_t n = sl_worker_config_of(cfg)->nscheduler_public_keys;
    p->keys = sl_xcalloc(n ? n : 1, sizeof *p->keys);
    for (size_t i = 0; i < n; i++) {
        p->keys[i] = sl_sign_load_public(sl_worker_config_of(cfg)->scheduler_public_keys[i], err);
        if (p->keys[i] == NULL) {
            sl_err_wrap(err, "worker.scheduler_public_keys");
            goto fail;
        }
        p->nkeys++;
    }
    if (p->nkeys == 0 && any_protected(cfg)) {
        sl_err_set(err, SL_ECONFIG, "protected kinds or deploy targets are configured but "
                   "worker.scheduler_public_keys is empty: no protected job could ever run");
        goto fail;
    }
    return p;
fail:
    sl_protect_free(p);
    return NULL;
}

void sl_protect_free(sl_protect *p)
{
    if (p == NULL)
        return;
    for (size_t i = 0; i < p->nkeys; i++)
        sl_sign_key_free(p->keys[i]);
    free(p->keys);
    free(p);
}

/* Writes what protects job into what (e.g. "kind 'provision'") and returns
 * true, or false if nothing does. */
static bool protected_by(const sl_protect *p, const sl_job *job, char *what, size_t whatsz)
{
    const sl_config *cfg = p->cfg;
    if (strcmp(job->kind, "notify") == 0) {   /* receivers trust what it signs for them */
        snprintf(what, whatsz, "kind 'notify' is always protected");
        return true;
    }
    for (size_t i = 0; i < sl_worker_config_of(cfg)->nprotected_kinds; i++) {
        if (strcmp(sl_worker_config_of(cfg)->protected_kinds[i], job->kind) == 0) {
            snprintf(what, whatsz, "kind '%s' is protected (worker.protected_kinds)", job->kind);
            return true;
        }
    }
    if (strcmp(job->kind, "deploy") != 0 || job->args == NULL)
        return false;
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    size_t off = 0;
    bool hit = false;
    if (msgpack_unpack_next(&up, job->args, job->args_len, &off) == MSGPACK_UNPACK_SUCCESS) {
        const msgpack_object *t = sl_args_get(&up.data, "target");
        char name[SL_NAME_MAX + 1];
        if (t && t->type == MSGPACK_OBJECT_STR && t->via.str.size <= SL_NAME_MAX) {
            memcpy(name, t->via.str.ptr, t->via.str.size);
            name[t->via.str.size] = '\0';
            const sl_deploy_target *dt = sl_config_deploy_target(sl_config_jobs_of(cfg), name);
            if (dt && dt->protected) {
                snprintf(what, whatsz, "deploy target '%s' is protected (deploy.targets.%s.protected)",
                         name, name);
                hit = true;
            }
        }
    }
    msgpack_unpacked_destroy(&up);
    return hit;
}

bool sl_protect_required(const sl_protect *p, const sl_job *job)
{
    char what[160];
    return protected_by(p, job, what, sizeof what);
}

bool sl_protect_admit(const sl_protect *p, const sl_job *job, char *why, size_t whysz)
{
    char what[160];
    if (!protected_by(p, job, what, sizeof what))
        return true;
    if (job->sig == NULL) {
        snprintf(why, whysz, "protected job refused: %s and the envelope carries no scheduler "
                 "signature (protected jobs run only as steps of a pipeline, after its gates)", what);
        return false;
    }
    if (!sl_jobsig_verify(p->keys, p->nkeys, job)) {
        snprintf(why, whysz, "protected job refused: %s and its signature does not verify with "
                 "worker.scheduler_public_keys (forged, or id, run, step, kind, queue or args "
                 "changed after signing)", what);
        return false;
    }
    return true;
}

bool sl_protect_admit_attempt(const sl_protect *p, const sl_job *job, bool has_row,
                              int64_t recorded_attempts, char *why, size_t whysz)
{
    if (job->attempt <= 1 || !sl_protect_required(p, job))
        return true;
    if (has_row && recorded_attempts >= job->attempt - 1)
        return true;
    snprintf(why, whysz, "protected job refused: attempt %lld, but PostgreSQL records %lld earlier "
             "attempts of this job (a signed envelope replayed under a new attempt number?)",
             (long long)job->attempt, (long long)(has_row ? recorded_attempts : 0));
    return false;
}
