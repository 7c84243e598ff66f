/* test_pace.c: how many entries a worker child takes per read (worker/pace.h):
 * the slow start, the run-time target, and the memory bound that keeps a
 * batch of small jobs near a hundred entries and shrinks it for large
 * envelopes. */
#include "pace.h"

#include <criterion/criterion.h>

/* A pace that has seen jobs of job_ms and envelopes of bytes, past its slow start. */
static sl_pace warmed(double job_ms, size_t bytes)
{
    sl_pace p;
    sl_pace_init(&p);
    for (int i = 0; i < 64; i++) {
        sl_pace_job(&p, job_ms);
        sl_pace_entry(&p, bytes);
    }
    for (int i = 0; i < 20; i++)
        sl_pace_batch_done(&p);
    return p;
}

Test(pace, a_new_child_starts_small_and_doubles_per_batch)
{
    sl_pace p;
    sl_pace_init(&p);
    cr_assert_eq(sl_pace_want(&p, 1000), SL_PACE_FIRST);
    sl_pace_entry(&p, 100);
    sl_pace_job(&p, 0.001);
    cr_assert_eq(sl_pace_want(&p, 1000), SL_PACE_FIRST, "no batch completed yet");
    sl_pace_batch_done(&p);
    cr_assert_eq(sl_pace_want(&p, 1000), 2 * SL_PACE_FIRST);
    sl_pace_batch_done(&p);
    cr_assert_eq(sl_pace_want(&p, 1000), 4 * SL_PACE_FIRST);
    cr_assert_eq(sl_pace_want(&p, 20), 20, "worker.batch stays the upper bound");
    cr_assert_eq(sl_pace_want(&p, 0), 1);
}

Test(pace, small_fast_jobs_are_bounded_by_memory)
{
    sl_pace p = warmed(0.001, 110);   /* a no-op's envelope, a µs of work */
    int want = sl_pace_want(&p, 1000);
    int expect = (int)(SL_PACE_MEMORY_BYTES / (110.0 + SL_PACE_ENTRY_COST));
    cr_assert_eq(want, expect, "want %d, the memory bound gives %d", want, expect);
    cr_assert(want >= 64 && want <= 200, "a no-op batch of %d entries", want);
    /* Larger envelopes, smaller batches; one that alone exceeds the bound still goes one at a time. */
    sl_pace big = warmed(0.001, 16 << 10);
    cr_assert_lt(sl_pace_want(&big, 1000), want);
    cr_assert_eq(sl_pace_want(&big, 1000), (int)(SL_PACE_MEMORY_BYTES / (16384.0 + SL_PACE_ENTRY_COST)));
    sl_pace huge = warmed(0.001, 4 << 20);
    cr_assert_eq(sl_pace_want(&huge, 1000), 1);
}

Test(pace, slow_jobs_go_one_at_a_time_and_fast_ones_bring_the_size_back)
{
    sl_pace p = warmed(1.0, 110);      /* 1 ms jobs: about the run-time target's worth */
    cr_assert_eq(sl_pace_want(&p, 1000), (int)(SL_PACE_TARGET_MS / 1.0));
    sl_pace_job(&p, 2000.0);           /* one 2 s job shrinks the next read at once */
    cr_assert_eq(sl_pace_want(&p, 1000), 1);
    for (int i = 0; i < 200; i++)
        sl_pace_job(&p, 0.001);
    cr_assert_eq(sl_pace_want(&p, 1000), (int)(SL_PACE_MEMORY_BYTES / (110.0 + SL_PACE_ENTRY_COST)),
                 "fast jobs did not bring the read back to the memory bound");
    sl_pace_job(&p, -5.0);             /* a clock step backwards counts as 0 */
    cr_assert_gt(sl_pace_want(&p, 1000), 1);
}
