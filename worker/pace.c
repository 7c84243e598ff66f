/* pace.c: see pace.h.
 *
 * Both averages are exponentially weighted with a weight of 1/8 per
 * observation: one slow job among fast ones shrinks the next reads at
 * once (its cost dominates the average), and some tens of fast jobs bring
 * the size back up, so a queue that turns from slow to fast regains full
 * batches within a few reads. */
#include "pace.h"

#define WEIGHT 0.125
#define FLOOR_MS 0.001  /* a job costs at least this much: keeps the division finite */

void sl_pace_init(sl_pace *p)
{
    p->job_ms = 0.0;
    p->entry_bytes = 0.0;
    p->seen_job = p->seen_entry = false;
    p->ceiling = SL_PACE_FIRST;
}

void sl_pace_batch_done(sl_pace *p)
{
    if (p->ceiling < (1 << 20))
        p->ceiling *= 2;
}

void sl_pace_job(sl_pace *p, double ms)
{
    if (!(ms >= 0.0))
        ms = 0.0;  /* a clock step backwards, or NaN */
    p->job_ms = p->seen_job ? p->job_ms + (ms - p->job_ms) * WEIGHT : ms;
    p->seen_job = true;
}

void sl_pace_entry(sl_pace *p, size_t bytes)
{
    double b = (double)bytes;
    p->entry_bytes = p->seen_entry ? p->entry_bytes + (b - p->entry_bytes) * WEIGHT : b;
    p->seen_entry = true;
}

int sl_pace_want(const sl_pace *p, int max)
{
    if (max < 1)
        return 1;
    double want = SL_PACE_FIRST;
    if (p->seen_job)
        want = SL_PACE_TARGET_MS / (p->job_ms > FLOOR_MS ? p->job_ms : FLOOR_MS);
    if (p->seen_entry) {
        double by_memory = SL_PACE_MEMORY_BYTES / (p->entry_bytes + SL_PACE_ENTRY_COST);
        if (by_memory < want)
            want = by_memory;
    }
    if (want > (double)p->ceiling)
        want = p->ceiling;
    if (want < 1.0)
        return 1;
    return want >= (double)max ? max : (int)want;
}
