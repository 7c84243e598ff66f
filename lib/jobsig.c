/* jobsig.c: see jobsig.h. */
#include "jobsig.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mem.h"

#define TAG "sluice-job-sig-v1"

static void put_field(sl_buf *out, const void *data, size_t n)
{
    unsigned char len[4] = { (unsigned char)(n >> 24), (unsigned char)(n >> 16), (unsigned char)(n >> 8),
                             (unsigned char)n };
    sl_buf_append(out, len, sizeof len);
    if (n)
        sl_buf_append(out, data, n);
}

static void put_str(sl_buf *out, const char *s)
{
    put_field(out, s ? s : "", s ? strlen(s) : 0);
}

void sl_jobsig_message(const sl_job *job, sl_buf *out)
{
    put_str(out, TAG);
    put_str(out, job->id);
    put_str(out, job->run);
    put_str(out, job->step);
    put_str(out, job->kind);
    put_str(out, job->queue);
    put_field(out, job->args, job->args ? job->args_len : 0);
}

int sl_jobsig_sign(const sl_sign_key *key, sl_job *job, sl_err *err)
{
    sl_buf msg = SL_BUF_INIT;
    unsigned char sig[SL_SIGN_LEN];
    sl_jobsig_message(job, &msg);
    int rc = sl_sign(key, msg.data, msg.len, sig, err);
    sl_buf_free(&msg);
    if (rc < 0)
        return -1;
    free(job->sig);
    job->sig = sl_xmalloc(SL_SIGN_LEN);
    memcpy(job->sig, sig, SL_SIGN_LEN);
    job->sig_len = SL_SIGN_LEN;
    return 0;
}

bool sl_jobsig_verify(sl_sign_key *const *keys, size_t nkeys, const sl_job *job)
{
    if (job->sig == NULL)
        return false;
    sl_buf msg = SL_BUF_INIT;
    sl_jobsig_message(job, &msg);
    bool ok = false;
    for (size_t i = 0; i < nkeys && !ok; i++)
        ok = sl_sign_verify(keys[i], msg.data, msg.len, job->sig, job->sig_len);
    sl_buf_free(&msg);
    return ok;
}
