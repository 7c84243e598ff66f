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
 * until they read the same even value on both sides. */
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
    size_t held;                    /* entries in `entries` */
    sl_held_entry entries[SL_SCOREBOARD_BATCH_MAX];
    /* written by the master */
    volatile uint64_t mseq;         /* seqlock of the master part */
    bool killed_for_timeout;        /* the previous child was killed for the job below */
    char killed_job_id[SL_JOBID_MAX + 1];
    char killed_queue[SL_NAME_MAX + 1];
    char killed_entry[48];
    int64_t killed_attempt;
} sl_slot;

typedef struct sl_scoreboard sl_scoreboard;

/* Maps a shared scoreboard of n slots.  Returns NULL (errno set) on failure. */
sl_scoreboard *sl_scoreboard_new(int n);
void sl_scoreboard_free(sl_scoreboard *sb);

/* The slot of child i (0 <= i < n). */
sl_slot *sl_scoreboard_slot(sl_scoreboard *sb, int i);
int sl_scoreboard_size(const sl_scoreboard *sb);

/* Child side: begin/end a write of the child part (seqlock). */
void sl_slot_write_begin(sl_slot *s);
void sl_slot_write_end(sl_slot *s);

/* Reader side: copies the slot consistently into *out. */
void sl_slot_read(const sl_slot *s, sl_slot *out);

#endif
