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
 *      killed_for_timeout is set, the job the journal (below) names as
 *      running, or else killed_entry, is recorded timed out (and retried
 *      or failed) when it takes over the batch its predecessor held; then
 *      it stores killed_gen in its own killed_gen_seen (inside a write
 *      section);
 *   4. the master sees killed_gen_seen == killed_gen and clears killed_*.
 * Until step 4 the information survives any number of replacements.
 *
 * The journal (the last part of a slot, written by the child alone and
 * read only by the next child of the slot, after the writer has died):
 * what a child's batches have done that PostgreSQL does not know yet.
 * Before a job starts the child names it in run_*; when it ends, its
 * outcome (status, error, outputs up to SL_JOURNAL_OUTPUT_MAX bytes) is
 * written to e[n] and only then n is advanced (a release store), so a
 * reader never sees half an entry.  An outcome that does not fit (the
 * journal is full, its outputs are too long) is committed to PostgreSQL
 * with the batch's earlier ones before the next job starts.  So at any
 * moment every job the batch has started is either committed, or in the
 * journal, or named in run_*: a replacement commits the journal's
 * outcomes, records the run_* job as a failed attempt (its worker died
 * running it), and runs only what never started.  The journal has two
 * parts, one per batch: while the commit of a batch is in flight the
 * child runs its next batch (listed in `entries` beside it), journaling
 * into the other part, and empties a batch's part only once its commit is
 * confirmed and its entries settled in Redis; it reads no third batch
 * before then.  A replacement applies both parts: an entry names its
 * stream entry, so which batch carried it does not matter.  The seqlock does not cover the journal: a reader is never concurrent
 * with its writer. */
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

#define SL_JOURNAL_MAX 1024          /* outcomes a batch keeps before it must commit them */
#define SL_JOURNAL_TEXTS 128         /* of which with an error or outputs (the rest have neither) */
#define SL_JOURNAL_OUTPUT_MAX 4096   /* largest outputs (JSON text) an outcome can keep */
#define SL_JOURNAL_ERROR_MAX 1024    /* longest error kept (longer ones are cut) */

typedef enum sl_journal_status {
    SL_JOURNAL_SUCCEEDED = 1,
    SL_JOURNAL_FAILED,               /* `code` says whether retrying can help */
    SL_JOURNAL_CANCELLED,
    SL_JOURNAL_DIED,                 /* its worker died while running it (set by the replacement) */
    SL_JOURNAL_TIMED_OUT,            /* ... killed by the master at its deadline */
} sl_journal_status;

/* The outcome of one job run by the batch.  Its error and outputs, when it
 * has either, are in the journal's `t[text]`: kept apart so that a batch
 * of outcomes without them touches few pages of shared memory (a child's
 * resident size counts every page it touched). */
typedef struct sl_journal_entry {
    char queue[SL_NAME_MAX + 1];
    char stream_id[48];              /* the entry that carried the job */
    int64_t attempt;
    sl_journal_status status;
    int code;                        /* a failure's sl_err code */
    int64_t started_ms, finished_ms; /* Unix ms */
    int text;                        /* index in t of its error and outputs, -1: neither */
} sl_journal_entry;

typedef struct sl_journal_text {
    char error[SL_JOURNAL_ERROR_MAX];
    size_t outputs_len;              /* bytes in outputs, 0: none */
    char outputs[SL_JOURNAL_OUTPUT_MAX];
} sl_journal_text;

/* What one batch has done: the journal keeps two, so that a batch can run
 * while the commit of the one before it is in flight. */
typedef struct sl_journal_part {
    volatile uint64_t n;             /* complete entries in e */
    volatile int running;            /* 1: run_* names a started job with no entry yet */
    char run_queue[SL_NAME_MAX + 1];
    char run_stream_id[48];
    uint64_t ntexts;                 /* texts in t used by e[0..n) (the writer's count) */
    sl_journal_entry e[SL_JOURNAL_MAX];
    sl_journal_text t[SL_JOURNAL_TEXTS];
} sl_journal_part;

#define SL_JOURNAL_PARTS 2

typedef struct sl_journal {
    char consumer[128];              /* the consumer whose pending entries it describes, "" none */
    char successor[128];             /* a replacement taking them over, "" none */
    volatile int decoding;           /* 1: the child is decoding a batch (no job runs) */
    sl_journal_part part[SL_JOURNAL_PARTS]; /* the batch running, and the one committing */
} sl_journal;

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
    /* written by the slot's child, read by the next one (see the journal above) */
    sl_journal journal;
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
