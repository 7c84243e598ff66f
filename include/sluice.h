/* sluice.h: the sluice C client library: enqueue jobs from a C program.
 *
 * Link with libsluice (pkg-config --cflags --libs sluice).  The library
 * speaks wire format v1 (docs/wire-format.md) to Redis; it needs no
 * PostgreSQL access.  A client is one Redis connection: use it from one
 * thread at a time, and do not carry it across fork().
 *
 *   char err[256], id[SLUICE_ID_MAX + 1];
 *   sluice_client *c = sluice_client_new(NULL, err, sizeof err);
 *   sluice_job_spec job = { .kind = "deploy", .queue = "deploys",
 *                           .args_json = "{\"target\":\"staging\"}" };
 *   if (c == NULL || sluice_enqueue(c, &job, id, err, sizeof err) != 0)
 *       fprintf(stderr, "enqueue: %s\n", err);
 *   sluice_client_free(c);
 */
#ifndef SLUICE_H
#define SLUICE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SLUICE_ID_MAX 128  /* longest job id, in bytes */

/* Marks the library's exported functions; everything else in libsluice is
 * hidden. */
#if defined(__GNUC__)
#define SLUICE_API __attribute__((visibility("default")))
#else
#define SLUICE_API
#endif

typedef struct sluice_client sluice_client;

/* Connects to Redis.  redis_url may be NULL: then $SLUICE_REDIS_URL, then
 * $REDIS_URL, then redis://127.0.0.1:6379/0.  Returns NULL and writes the
 * reason to errbuf (errlen bytes, may be 0) on failure.  Free with
 * sluice_client_free. */
SLUICE_API sluice_client *sluice_client_new(const char *redis_url, char *errbuf, size_t errlen);

SLUICE_API void sluice_client_free(sluice_client *c);

/* What to enqueue.  Zero-initialise, then set what you need. */
typedef struct sluice_job_spec {
    const char *kind;        /* required: the job kind, e.g. "deploy" */
    const char *queue;       /* NULL: "default" */
    const char *id;          /* NULL: a new UUIDv7; set it to make retries of
                                the enqueue itself idempotent */
    const char *args_json;   /* NULL: {}; else a JSON object */
    int max_attempts;        /* 0: the worker's default */
    int64_t timeout_ms;      /* 0: the queue's default */
    const char *unique_key;  /* NULL: none */
} sluice_job_spec;

/* Validates spec, encodes it and appends it to its queue's stream.  On
 * success writes the job id (NUL-terminated) to id_out, which must hold
 * SLUICE_ID_MAX + 1 bytes, and returns 0; on failure returns -1 and writes
 * the reason to errbuf. */
SLUICE_API int sluice_enqueue(sluice_client *c, const sluice_job_spec *spec, char *id_out,
                   char *errbuf, size_t errlen);

#ifdef __cplusplus
}
#endif

#endif
