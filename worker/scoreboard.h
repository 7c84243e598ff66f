/* scoreboard.h: the shared-memory table through which worker children tell
 * the master what they are doing (after Apache's scoreboard and unicorn's
 * heartbeat).
 *
 * The master maps it (MAP_SHARED | MAP_ANONYMOUS) before forking, so every
 * child inherits the same pages.  Slot i belongs to the child in pool slot
 * i; only that child writes its slot's `child` part, only the master writes
 * the `master` part.  Around every job the child stores a tick, the job's id,
 * start time and deadline, and the stream entries of the batch in hand; the
 * master reads them to kill a child whose job overran its deadline, to renew
 * the lease (XCLAIM … JUSTID) of entries whose jobs run longer than the
 * visibility timeout, and to tell a replacement child which job its
 * predecessor was killed for.
 *
 * Readers may see a slot mid-update: each write section bumps `seq` to an
 * odd value before and an even value after (a seqlock), and readers retry
 * until they read the same even value on both sides.  The master part has
 * its own seqlock (`mseq`).  A child SIGKILLed inside a write section
 * leaves `seq` odd for good: readers give up after a bounded number of
 * tries (sl_slot_read returns false), and the master resets the child part
 * before it forks the slot's next child (sl_slot_reset).
 *
 * Sizing: the master maps the table once, before the first fork, for a
 * fixed number of slots (see master.c: max(64, 2 x worker.processes + 16),
 * at most 1024), so that TTIN and a reload can grow the pool without
 * remapping memory the children already share.  Pages no child touches
 * cost nothing.
 *
 * The timeout hand-over, step by step:
 *   1. the child sets job_deadline_ms (job_started_ms + the job's timeout +
 *      worker.timeout_grace) and state RUNNING when a job starts;
 *   2. the master SIGKILLs a RUNNING child whose deadline has passed, fills
 *      the master part (killed_*) and bumps killed_gen, then forks a
 *      replacement in the same slot;
 *   3. the replacement, at start, reads its slot (sl_slot_read); if
 *      killed_for_timeout is set it records the timeout of killed_job_id
 *      (and retries or fails it), takes over and runs the rest of the
 *      batch that killed_consumer held (it would otherwise wait out the
 *      visibility timeout), then stores killed_gen in its own
 *      killed_gen_seen (inside a write section);
 *   4. the master sees killed_gen_seen == killed_gen and clears killed_*.
 * Until step 4 the information survives any number of replacements. */
#ifndef SL_SCOREBOARD_H
#define SL_SCOREBOARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "envelope.h"
#include "jobid.h"

#define SL_SCOREBOARD_BATCH_MAX 1024  /* most entries a child can hold in one batch */

typedef enum sl_child_state {
    SL_CHILD_EMPTY = 0,  /* no child in this slot */
    SL_CHILD_STARTING,   /* forked, connecting */
    SL_CHILD_IDLE,       /* waiting for entries */
    SL_CHILD_RUNNING,    /* running a job */
    SL_CHILD_COMMITTING, /* recording a batch / acknowledging */
    SL_CHILD_STOPPING,   /* finishing before exit */
} sl_child_state;

/* One stream entry held by a child (for lease renewal). */
typedef struct sl_held_entry {
    char queue[SL_NAME_MAX + 1];
    char stream_id[48];
} sl_held_entry;

typedef struct sl_slot {
    /* written by the child */
    volatile uint64_t seq;          /* seqlock: odd while the child writes */
    pid_t pid;                      /* the child's pid */
    char consumer[128];             /* its consumer name in the group */
    sl_child_state state;
    int64_t tick_ms;                /* monotonic ms of the last heartbeat */
    char job_id[SL_JOBID_MAX + 1];  /* job running now, "" if none */
    char job_kind[SL_NAME_MAX + 1];
    char job_queue[SL_NAME_MAX + 1];
    char job_entry[48];             /* its stream entry id */
    int64_t job_attempt;
    int64_t job_started_ms;         /* monotonic ms the job started */
    int64_t job_deadline_ms;        /* monotonic ms after which the master kills; 0 = none */
    uint64_t jobs_done;             /* jobs finished by this child */
    uint64_t killed_gen_seen;       /* killed_gen of the kill this child has recorded */
    size_t held;                    /* entries in `entries` (<= SL_SCOREBOARD_BATCH_MAX) */
    sl_held_entry entries[SL_SCOREBOARD_BATCH_MAX];
    /* written by the master */
    volatile uint64_t mseq;         /* seqlock of the master part */
    bool killed_for_timeout;        /* a previous child was killed for the job below */
    uint64_t killed_gen;            /* bumped on every timeout kill in this slot */
    char killed_job_id[SL_JOBID_MAX + 1];
    char killed_queue[SL_NAME_MAX + 1];
    char killed_entry[48];          /* the job's stream entry id */
    int64_t killed_attempt;
    char killed_consumer[128];      /* the killed child's consumer: its batch-mates are taken over */
} sl_slot;

typedef struct sl_scoreboard sl_scoreboard;

/* Maps a shared scoreboard of n slots, all zero (SL_CHILD_EMPTY).  Returns
 * NULL (errno set) on failure.  The caller frees it with sl_scoreboard_free
 * (which unmaps it; a child never calls it: the mapping goes with the
 * process). */
sl_scoreboard *sl_scoreboard_new(int n);
void sl_scoreboard_free(sl_scoreboard *sb);

/* The slot of child i (0 <= i < n). */
sl_slot *sl_scoreboard_slot(sl_scoreboard *sb, int i);
int sl_scoreboard_size(const sl_scoreboard *sb);

/* Child side: begin/end a write of the child part (seqlock).  Keep the
 * section short and never block inside it. */
void sl_slot_write_begin(sl_slot *s);
void sl_slot_write_end(sl_slot *s);

/* Master side: begin/end a write of the master part (seqlock `mseq`). */
void sl_slot_master_write_begin(sl_slot *s);
void sl_slot_master_write_end(sl_slot *s);

/* Master side, while no child runs in the slot: empties the child part
 * (state SL_CHILD_STARTING, no job, nothing held) and leaves `seq` even,
 * also after a child died inside a write section.  The master part is kept. */
void sl_slot_reset(sl_slot *s);

/* Reader side: copies the slot consistently into *out: the child part
 * (only the first `held` entries of `entries`; the rest of out->entries is
 * left as it was) and the master part, each under its seqlock.  Returns
 * false if the child part stayed mid-write through every retry (its writer
 * died inside a section, or is stuck there): *out's child part is then
 * unreliable. */
bool sl_slot_read(const sl_slot *s, sl_slot *out);

/* "idle", "running", … for logs and `sluice workers`. */
const char *sl_child_state_name(sl_child_state state);

#endif
