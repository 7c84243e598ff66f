/* pace.h: how many entries a worker child takes in its next read.
 *
 * `worker.batch` is an upper bound, not the size of every read.  A child
 * keeps a moving average of what its recent jobs cost (their run time)
 * and of how large their envelopes were, and sizes each read so that the
 * batch runs in about SL_PACE_TARGET_MS and holds at most
 * SL_PACE_MEMORY_BYTES: each entry costs its envelope plus
 * SL_PACE_ENTRY_COST for what the child builds from it (the decoded job,
 * its claim and result rows, the reply objects; measured with valgrind's
 * massif at 1,000 no-op entries per batch: about 2 KiB each), so a batch
 * of no-ops stays near 120 entries and a child's resident size within
 * about 6 MiB, and large envelopes make smaller batches.  Short jobs are
 * taken many at a time (one PostgreSQL commit for all their results),
 * slow ones one at a time (nothing waits behind them in this process).  A child starts slowly:
 * its first read takes at most SL_PACE_FIRST entries and the bound
 * doubles with each batch it completes, so that a child replacing one
 * that crashed (perhaps again and again) holds few entries until it has
 * shown it lives: every entry a dead child held is delivered once more,
 * and a delivery count past worker.max_deliveries marks a poison pill.
 *
 * A plain value: no allocation, nothing to free. */
#ifndef SL_PACE_H
#define SL_PACE_H

#include <stdbool.h>
#include <stddef.h>

#define SL_PACE_TARGET_MS 5.0          /* run time a batch aims at */
#define SL_PACE_MEMORY_BYTES (256 << 10) /* what a batch's entries may cost */
#define SL_PACE_ENTRY_COST 2048        /* an entry's cost besides its envelope */
#define SL_PACE_FIRST 16               /* entries of a read before any job was seen */

typedef struct sl_pace {
    double job_ms;       /* moving average of a job's run time, ms */
    double entry_bytes;  /* moving average of an envelope's size */
    bool seen_job;       /* job_ms holds at least one observation */
    bool seen_entry;     /* entry_bytes holds at least one observation */
    int ceiling;         /* slow start: the most entries a read may take now */
} sl_pace;

/* A pace that knows nothing yet. */
void sl_pace_init(sl_pace *p);

/* Notes that a job ran for ms milliseconds. */
void sl_pace_job(sl_pace *p, double ms);

/* Notes an envelope of `bytes` bytes read from a stream. */
void sl_pace_entry(sl_pace *p, size_t bytes);

/* Notes that a batch was completed (the slow-start bound doubles). */
void sl_pace_batch_done(sl_pace *p);

/* The entries to take in the next read: at least 1, at most max. */
int sl_pace_want(const sl_pace *p, int max);

#endif
