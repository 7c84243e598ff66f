/* kindtest.h: running a job kind in the test process, and through a real
 * worker pool, for the tests of the real kinds (tests/test_kinds_*.c).
 *
 * th_kind_call builds the sl_job_ctx a worker would (a configuration loaded
 * from YAML text, an args map decoded from JSON or given as MessagePack)
 * and calls the kind's run function directly.  th_kind_e2e writes the
 * configuration to a file, enqueues the job with `sluice enqueue`, runs a
 * one-process sluice-worker until the job's row is in PostgreSQL, stops it
 * and returns the row. */
#ifndef TH_KINDTEST_H
#define TH_KINDTEST_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

typedef struct th_call {
    int rc;          /* the kind's return value */
    sl_err err;      /* its error when rc is -1 */
    char *outputs;   /* its outputs (JSON text, "" for none), owned */
    char id[64];     /* the job id it ran with */
} th_call;

/* Runs kind with args (a JSON object) under the configuration config_yaml
 * (the test fails if it does not load).  timeout_ms is the job's
 * timeout_ms (0: none).  Free with th_call_free. */
th_call th_kind_call(const char *kind, const char *config_yaml, const char *args_json,
                     int64_t timeout_ms);

/* Makes the next th_kind_call cancel its job (as `sluice cancel` would,
 * through ctx->cancelled) ms milliseconds after it starts. */
void th_cancel_after(int ms);

/* The same with args as MessagePack bytes (for values JSON cannot carry). */
th_call th_kind_call_msgpack(const char *kind, const char *config_yaml, const char *args,
                             size_t args_len, int64_t timeout_ms);
void th_call_free(th_call *c);

/* A job's row after a run through a real worker. */
typedef struct th_row {
    char *id;        /* job id, owned */
    char *status;    /* succeeded, failed, dead..., owned */
    char *outputs;   /* jsonb text or "", owned */
    char *error;     /* or "", owned */
    long long attempts;  /* attempts in sluice_job_history */
} th_row;

/* Enqueues kind with args_json (plus "--max-attempts N" when max_attempts
 * > 0) into a fresh queue, runs a worker with config_yaml (worker settings
 * for a quick test are added) until the job has a final row, or 60 s, and
 * returns it (retries are quick: worker.retry_initial 100ms).  The test
 * fails if the worker does not stop cleanly or logs
 * a sanitizer report. */
th_row th_kind_e2e(const char *kind, const char *config_yaml, const char *args_json,
                   int max_attempts);
void th_row_free(th_row *r);

/* A fresh empty directory under /tmp (caller frees the path), and rm -rf. */
char *th_tempdir(const char *prefix);
void th_rmtree(const char *path);

/* Asserts that c failed with code and a message containing text, and that
 * clean_dir (if not NULL) is empty afterwards; then frees c. */
void th_expect_fail(th_call *c, int code, const char *text, const char *clean_dir);

/* Entries in dir other than . and .. (the test fails if it cannot be read). */
int th_dir_entries(const char *dir);

/* True when haystack contains needle (NULL haystack: false). */
int th_has(const char *haystack, const char *needle);

#endif
