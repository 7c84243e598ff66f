/* envelope.h: the job envelope, wire format v1 (docs/wire-format.md).
 *
 * A job travels through Redis as one stream entry whose field `job` holds a
 * MessagePack map with string keys:
 *
 *   v            int  required  must be 1
 *   id           str  required  sl_jobid_valid()
 *   kind         str  required  [a-z0-9_.-], 1..64 bytes
 *   args         map  required  (may be empty)
 *   queue        str  required  sl_envelope_queue_valid()
 *   attempt      int  required  >= 1
 *   max_attempts int  optional  >= 1
 *   timeout_ms   int  optional  >= 1
 *   enqueued_at  int  required  Unix ms, >= 0
 *   run          str  optional  set by the scheduler
 *   step         str  optional  set by the scheduler
 *   unique_key   str  optional
 *   retry_backoff    str  optional  "fixed" or "exponential"
 *   retry_initial_ms int  optional  >= 1: delay before the first retry
 *   retry_max_ms     int  optional  >= 1: cap of the exponential delay
 *
 * Decoding is strict: every required key must be present with the right
 * type and range, and the error names the offending key.  Unknown keys are
 * ignored, so newer producers can add fields.  A nil value for an optional
 * key counts as absent (for a required key it is a type error).  Keys must
 * be str and unique; str values must be valid UTF-8 without NUL bytes (bin
 * is not accepted for str); ints may use any MessagePack int encoding but
 * must fit int64 (floats are not ints).
 *
 * args is held to what PostgreSQL's jsonb stores and the handler reads
 * alike (sl_json_check_msgpack): at every level, keys are str, unique,
 * valid UTF-8 without NUL; str values are valid UTF-8 without NUL; no ext
 * values, no NaN or infinite floats; at most SL_JSON_MAX_DEPTH (31)
 * containers deep, args itself included (msgpack-c unpacks at most 32
 * levels and the envelope map is one of them).  An envelope breaking any
 * of these is refused whole, so its job never runs. */
#ifndef SL_ENVELOPE_H
#define SL_ENVELOPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#include "err.h"

#define SL_WIRE_VERSION 1
#define SL_NAME_MAX 64   /* longest kind or queue name */

/* How the delay before a retry grows (retry_backoff); DEFAULT: absent, the
 * worker's configuration decides. */
typedef enum sl_backoff {
    SL_BACKOFF_DEFAULT = 0,
    SL_BACKOFF_FIXED,        /* every retry waits retry_initial */
    SL_BACKOFF_EXPONENTIAL,  /* retry_initial doubled per attempt, capped at retry_max */
} sl_backoff;

typedef struct sl_job {
    char *id;            /* owned */
    char *kind;          /* owned */
    char *queue;         /* owned */
    char *args;          /* owned: the MessagePack-encoded args map */
    size_t args_len;     /* bytes in args */
    int64_t attempt;     /* 1 for the first delivery */
    int64_t max_attempts;/* 0 when absent */
    int64_t timeout_ms;  /* 0 when absent */
    int64_t enqueued_at; /* Unix ms */
    char *run;           /* owned, NULL when absent */
    char *step;          /* owned, NULL when absent */
    char *unique_key;    /* owned, NULL when absent */
    sl_backoff retry_backoff;  /* SL_BACKOFF_DEFAULT when absent */
    int64_t retry_initial_ms;  /* 0 when absent */
    int64_t retry_max_ms;      /* 0 when absent */
    unsigned char *sig;  /* owned, NULL when absent: the scheduler's Ed25519 signature
                            (worker/protect.h, lib/jobsig.h) */
    size_t sig_len;      /* bytes in sig: 64 when present */
} sl_job;

/* Decodes and validates one envelope.  On success fills *job (which the
 * caller releases with sl_job_clear) and returns 0; on failure returns -1,
 * leaves *job empty, and sets err (SL_EDECODE) to a message such as
 * "field 'attempt': expected integer, got str".  Never reads outside
 * data[0..len), whatever the bytes. */
int sl_envelope_decode(const char *data, size_t len, sl_job *job, sl_err *err);

/* Validates job like the decoder would and appends its encoding to out.
 * args may be NULL/0, meaning an empty map; when set it must be exactly one
 * MessagePack map, and its bytes are copied as they are.  Optional fields
 * that are 0/NULL are left out.  Returns -1 with err (SL_EINVAL) if job is
 * not valid, leaving out as it was. */
int sl_envelope_encode(const sl_job *job, msgpack_sbuffer *out, sl_err *err);

/* Frees what job owns and zeroes it.  job may be NULL. */
void sl_job_clear(sl_job *job);

/* Queue names: 1..SL_NAME_MAX bytes of [A-Za-z0-9_.-] (no braces: the name
 * sits inside a Redis Cluster hash tag). */
bool sl_envelope_queue_valid(const char *queue);
/* Kind names: 1..SL_NAME_MAX bytes of [a-z0-9_.-]. */
bool sl_envelope_kind_valid(const char *kind);

#endif
