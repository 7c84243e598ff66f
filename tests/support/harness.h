/* harness.h: what the Criterion tests share.
 *
 * Tests run against real servers: scripts/servers.sh starts a private
 * Redis and PostgreSQL and exports REDIS_URL / DATABASE_URL (and control
 * scripts for fault injection: SLUICE_REDIS_CTL, SLUICE_PG_CTL).  These
 * helpers connect to them, run the real binaries, and wait — boundedly —
 * for conditions.  Every test uses its own queue names (th_name), so test
 * binaries may run in parallel against the same servers. */
#ifndef TH_HARNESS_H
#define TH_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <libpq-fe.h>

#include "redis.h"
#include "store.h"

/* Returns the environment variable, failing the test with a hint to run
 * through scripts/test.sh when it is not set. */
const char *th_env(const char *name);

/* Fresh connections to the test servers (the test fails if impossible). */
sl_redis *th_redis(void);
PGconn *th_pg(void);

/* Writes "prefix-<pid>-<n>-<random>" into buf: a name no other test uses. */
void th_name(char *buf, size_t n, const char *prefix);

/* Runs sql with text parameters and returns the first column of the first
 * row as a number (0 for NULL); fails the test on error. */
long long th_pg_number(const char *sql, int nparams, const char *const *params);

/* Applies migrations once per test process (runs `sluice migrate`). */
void th_migrate(void);

/* A connection URL for user to database db on the test PostgreSQL (the
 * server trusts loopback logins).  Caller frees. */
char *th_pg_url(const char *user, const char *db);

/* Creates a fresh, migrated database of its own (named after prefix) for a
 * test that must change things other tests share (the audit chain, the
 * roles' grants); writes its name into name.  Dropped by
 * th_private_db_drop or with the servers. */
void th_private_db(char *name, size_t n, const char *prefix);
void th_private_db_drop(const char *name);

/* Like th_private_db, without migrating it. */
void th_empty_db(char *name, size_t n, const char *prefix);

/* Runs sql (one or more statements) connected to database db as user;
 * returns NULL if it succeeded, else PostgreSQL's error (caller frees). */
char *th_pg_try(const char *user, const char *db, const char *sql);

/* The first column of the first row of query sql, run by the owner in
 * database db, as a number; fails the test on error. */
long long th_pg_db_number(const char *db, const char *sql);

/* Creates a login role (name written into login) that is a member of the
 * runtime group role sluice_ROLE in database db, through `sluice migrate
 * --create-roles --grant ROLE=LOGIN` run as the owner. */
void th_runtime_login(const char *db, const char *role, char *login, size_t n);

/* Output of a finished command. */
typedef struct th_result {
    int status;    /* exit code, or 128+signal */
    char *out;     /* stdout, NUL-terminated, owned */
    char *err;     /* stderr, NUL-terminated, owned */
} th_result;

/* Runs argv (argv[0] a path) to completion, capturing stdout and stderr.
 * env_extra: NULL or "NAME=VALUE" strings ended by NULL, added to the
 * environment ("NAME=" with an empty value unsets NAME). */
th_result th_run(const char *const *argv, const char *const *env_extra);
void th_result_free(th_result *r);

/* Starts sluice-worker in the background with the given extra arguments
 * (NULL-terminated), its stderr going to log_path.  Returns its pid. */
pid_t th_worker_start(const char *const *args, const char *log_path);

/* Sends sig to pid and waits up to timeout_ms for it to exit; returns its
 * exit status (as th_result.status), or -1 if it did not exit in time (it
 * is then killed). */
int th_stop(pid_t pid, int sig, int timeout_ms);

/* Runs sluice-worker with args (NULL-terminated) until cond(arg) holds (at
 * most 60 s), stops it with SIGTERM, and asserts that cond held (the
 * failure names `what` and shows the worker's log), that the worker
 * stopped cleanly and that no sanitizer reported anything.  log_name
 * names its log file in /tmp, removed afterwards. */
void th_pool_until(const char *const *args, const char *log_name, bool (*cond)(void *arg), void *arg,
                   const char *what);

/* Polls cond(arg) every 20 ms until it is true or timeout_ms passes;
 * returns its last value.  For waiting, never for asserting on time. */
bool th_wait(bool (*cond)(void *arg), void *arg, int timeout_ms);

/* Reads a whole file (NULL if unreadable); caller frees. */
char *th_read_file(const char *path);

/* Writes text to a new file in a fresh temporary directory; returns the
 * path (caller frees). */
char *th_write_temp(const char *name, const char *text);

/* Writes text to path (created or truncated); the test fails if it cannot. */
void th_write_file(const char *path, const char *text);

/* Makes a new Ed25519 key pair DIR/NAME.key (private) and DIR/NAME.pub
 * with openssl. */
void th_keypair(const char *dir, const char *name);

/* Fails the test when the log at path (of who: "the scheduler") shows a
 * sanitizer report; a missing log is fine. */
void th_check_log(const char *path, const char *who);

/* Registers every component's configuration sections (worker, jobs,
 * scheduler, api) with the core loader, as `sluice` does, so that a test can load any
 * sluice.yaml in-process.  Idempotent; call before sl_config_load. */
void th_register_config_sections(void);

/* In a test file that loads configurations: registers the sections before
 * any test runs, in every process Criterion starts. */
#define TH_REGISTER_CONFIG_SECTIONS \
    static void __attribute__((constructor)) th_sections_(void) { th_register_config_sections(); }

#endif
