/* scoreboard.c: see scoreboard.h.
 *
 * The table is one anonymous shared mapping: an array of sl_slot, made
 * before the first fork so that every child shares the same pages.  The
 * sl_scoreboard handle itself lives in the master's heap (a child gets a
 * copy with the same pointer, which is all it needs).
 *
 * Seqlock, as in the Linux kernel's seqcount: a writer makes the sequence
 * odd, stores, and makes it even again, with full fences in between so that
 * no store of the section becomes visible outside the odd window; a reader
 * loads the sequence (acquire), copies, fences, and loads it again, and
 * keeps the copy only if both loads saw the same even value.  Each part of
 * a slot has exactly one writer (the child, or the master), so writers
 * never race each other.  The copies race with the writer by design; the
 * sequence check is what makes a kept copy consistent. */
#include "scoreboard.h"

#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* Reader retries before sl_slot_read gives up on a slot stuck mid-write;
 * each retry after an odd sequence yields the CPU to let the writer finish. */
#define READ_TRIES 1000

struct sl_scoreboard {
    sl_slot *slots;  /* the shared mapping */
    int n;           /* slots in it */
    size_t bytes;    /* length of the mapping */
};

sl_scoreboard *sl_scoreboard_new(int n)
{
    if (n <= 0) {
        errno = EINVAL;
        return NULL;
    }
    size_t bytes = (size_t)n * sizeof(sl_slot);
    /* MAP_NORESERVE: most slots' entry arrays are never touched. */
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE,
                   -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    sl_scoreboard *sb = malloc(sizeof *sb);
    if (sb == NULL) {
        int saved = errno;
        munmap(p, bytes);
        errno = saved;
        return NULL;
    }
    sb->slots = p; /* anonymous memory is zero: every slot SL_CHILD_EMPTY, sequences even */
    sb->n = n;
    sb->bytes = bytes;
    return sb;
}

void sl_scoreboard_free(sl_scoreboard *sb)
{
    if (sb == NULL)
        return;
    munmap(sb->slots, sb->bytes);
    free(sb);
}

sl_slot *sl_scoreboard_slot(sl_scoreboard *sb, int i)
{
    if (i < 0 || i >= sb->n)
        abort(); /* a slot index out of range is a bug in the caller */
    return &sb->slots[i];
}

int sl_scoreboard_size(const sl_scoreboard *sb) { return sb->n; }

static void seq_begin(volatile uint64_t *seq)
{
    uint64_t v = __atomic_load_n(seq, __ATOMIC_RELAXED);
    __atomic_store_n(seq, v + 1, __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
}

static void seq_end(volatile uint64_t *seq)
{
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    uint64_t v = __atomic_load_n(seq, __ATOMIC_RELAXED);
    __atomic_store_n(seq, v + 1, __ATOMIC_RELEASE);
}

void sl_slot_write_begin(sl_slot *s) { seq_begin(&s->seq); }
void sl_slot_write_end(sl_slot *s) { seq_end(&s->seq); }
void sl_slot_master_write_begin(sl_slot *s) { seq_begin(&s->mseq); }
void sl_slot_master_write_end(sl_slot *s) { seq_end(&s->mseq); }

void sl_slot_reset(sl_slot *s)
{
    uint64_t v = __atomic_load_n(&s->seq, __ATOMIC_RELAXED);
    /* Odd already if the last child died mid-write: then stay on that
     * value, so the section below is well-formed either way. */
    __atomic_store_n(&s->seq, v | 1, __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    char *start = (char *)s + offsetof(sl_slot, pid);
    memset(start, 0, offsetof(sl_slot, entries) - offsetof(sl_slot, pid));
    s->state = SL_CHILD_STARTING;
    seq_end(&s->seq);
}

/* Copies bytes [from, to) of the slot. */
static void copy_range(sl_slot *out, const sl_slot *s, size_t from, size_t to)
{
    memcpy((char *)out + from, (const char *)s + from, to - from);
}

static bool read_child_part(const sl_slot *s, sl_slot *out)
{
    for (int tries = 0; tries < READ_TRIES; tries++) {
        uint64_t v1 = __atomic_load_n(&s->seq, __ATOMIC_ACQUIRE);
        if (v1 & 1) {
            sched_yield();
            continue;
        }
        copy_range(out, s, offsetof(sl_slot, pid), offsetof(sl_slot, entries));
        size_t held = out->held <= SL_SCOREBOARD_BATCH_MAX ? out->held : SL_SCOREBOARD_BATCH_MAX;
        memcpy(out->entries, s->entries, held * sizeof s->entries[0]);
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
        uint64_t v2 = __atomic_load_n(&s->seq, __ATOMIC_RELAXED);
        if (v1 == v2) {
            out->seq = v1;
            out->held = held;
            return true;
        }
    }
    out->held = 0; /* never hand out a count the copy may not back */
    return false;
}

static void read_master_part(const sl_slot *s, sl_slot *out)
{
    /* The master is never killed inside its section (it is the one that
     * kills), so this loop always ends. */
    for (;;) {
        uint64_t v1 = __atomic_load_n(&s->mseq, __ATOMIC_ACQUIRE);
        if (v1 & 1) {
            sched_yield();
            continue;
        }
        copy_range(out, s, offsetof(sl_slot, killed_for_timeout), offsetof(sl_slot, journal));
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
        if (__atomic_load_n(&s->mseq, __ATOMIC_RELAXED) == v1) {
            out->mseq = v1;
            return;
        }
    }
}

bool sl_slot_read(const sl_slot *s, sl_slot *out)
{
    bool ok = read_child_part(s, out);
    read_master_part(s, out);
    return ok;
}

const char *sl_child_state_name(sl_child_state state)
{
    switch (state) {
    case SL_CHILD_EMPTY: return "empty";
    case SL_CHILD_STARTING: return "starting";
    case SL_CHILD_IDLE: return "idle";
    case SL_CHILD_RUNNING: return "running";
    case SL_CHILD_COMMITTING: return "committing";
    case SL_CHILD_STOPPING: return "stopping";
    }
    return "unknown";
}
