/* test_cancel.c: `sluice cancel` and `sluice pause`/`resume` against a real
 * worker pool: a cancelled job that has not started never runs, a running
 * one is told to stop (SIGUSR2 from the master) and ends `cancelled`, and a
 * paused queue is not fetched from until it is resumed. */
#include "harness.h"

#include "mem.h"
#include "queue.h"

#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static pid_t pool;

static void kill_pool(void)
{
    if (pool > 0)
        th_stop(pool, SIGKILL, 5000);
    pool = 0;
}

TestSuite(cancel, .init = th_migrate, .fini = kill_pool);

static char *sluice_out(const char *const *args)
{
    const char *argv[16] = { SLUICE_BIN };
    size_t n = 1;
    for (size_t i = 0; args[i] && n < 15; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    th_result r = th_run(argv, NULL);
    cr_assert_eq(r.status, 0, "sluice %s: %s", args[0], r.err);
    r.out[strcspn(r.out, "\n")] = '\0';
    char *out = sl_xstrdup(r.out);
    th_result_free(&r);
    return out;
}

static pid_t start_pool(const char *queue, const char *log)
{
    char *config = th_write_temp("sluice.yaml", "worker:\n  block: 100ms\n  batch: 4\n");
    const char *args[] = { "--config", config, "--queues", queue, "--processes", "1", "--log-level", "debug", NULL };
    pid_t pid = th_worker_start(args, log);
    free(config);
    return pid;
}

static void stop_pool(const char *log)
{
    int status = th_stop(pool, SIGTERM, 30000);
    pool = 0;
    char *text = th_read_file(log);
    cr_assert_eq(status, 0, "sluice-worker exited %d; log:\n%s", status, text ? text : "");
    cr_assert(text && !strstr(text, "level=error"), "the pool logged an error:\n%s", text);
    free(text);
}

typedef struct job_status {
    const char *id;
    const char *status;
} job_status;

static bool has_status(void *arg)
{
    job_status *w = arg;
    const char *p[] = { w->id, w->status };
    return th_pg_number("SELECT count(*) FROM sluice_jobs WHERE id = $1 AND status = $2", 2, p) == 1;
}

static bool log_has(const char *log, const char *text)
{
    char *all = th_read_file(log);
    bool found = all && strstr(all, text);
    free(all);
    return found;
}

typedef struct want_log {
    const char *log;
    const char *text;
} want_log;

static bool log_shows(void *arg)
{
    want_log *w = arg;
    return log_has(w->log, w->text);
}

static char *new_log(void)
{
    char name[64];
    th_name(name, sizeof name, "cancel");
    return sl_xasprintf("/tmp/sluice-%s.log", name);
}

Test(cancel, a_job_cancelled_before_it_starts_never_runs)
{
    char queue[64];
    th_name(queue, sizeof queue, "cq");
    const char *enq[] = { "enqueue", "noop", "--queue", queue, NULL };
    char *id = sluice_out(enq);
    const char *cancel[] = { "cancel", id, NULL };
    free(sluice_out(cancel));
    char *log = new_log();
    pool = start_pool(queue, log);
    job_status w = { id, "cancelled" };
    cr_assert(th_wait(has_status, &w, 30000), "job %s was not recorded cancelled", id);
    const char *p[] = { id };
    cr_assert_eq(th_pg_number("SELECT count(*) FROM sluice_job_history WHERE job_id = $1 AND status = 'cancelled'"
                              " AND error LIKE '%before it started%'", 1, p), 1);
    stop_pool(log);
    char line[128];
    snprintf(line, sizeof line, "event=job.succeeded job=%s", id);
    cr_assert(!log_has(log, line), "the cancelled job ran");
    unlink(log);
    free(log);
    free(id);
}

/* Who asked is the database role PostgreSQL authenticated, not a name the
 * caller sets: $SLUICE_USER (which once named the requester) is ignored. */
Test(cancel, the_requester_recorded_is_the_authenticated_database_role)
{
    char queue[64];
    th_name(queue, sizeof queue, "cq");
    const char *enq[] = { "enqueue", "noop", "--queue", queue, NULL };
    char *id = sluice_out(enq);
    const char *argv[] = { SLUICE_BIN, "cancel", id, NULL };
    const char *env[] = { "SLUICE_USER=mallory", NULL };
    th_result r = th_run(argv, env);
    cr_assert_eq(r.status, 0, "sluice cancel: %s", r.err);
    th_result_free(&r);
    const char *p[] = { id };
    cr_assert_eq(th_pg_number("SELECT count(*) FROM sluice_cancellations WHERE job_id = $1"
                              " AND requested_by LIKE session_user || ' (database role; OS user %'"
                              " AND requested_by NOT LIKE '%mallory%'", 1, p), 1,
                 "the cancellation is not recorded under the authenticated database role");
    free(id);
}

Test(cancel, a_running_job_is_told_to_stop_and_ends_cancelled)
{
    char queue[64];
    th_name(queue, sizeof queue, "cr");
    char *log = new_log();
    pool = start_pool(queue, log);
    /* Ten minutes: if the signal did not reach it, the wait below fails. */
    const char *enq[] = { "enqueue", "sleep", "--queue", queue, "--arg", "ms=600000", NULL };
    char *id = sluice_out(enq);
    char running[160];
    snprintf(running, sizeof running, "slot=0 consumer=");
    want_log ready = { log, running };
    cr_assert(th_wait(log_shows, &ready, 30000), "the pool did not start");
    /* Wait until the job runs: the registry shows it in `sluice workers`. */
    bool seen = false;
    for (int i = 0; i < 300 && !seen; i++) {
        const char *workers[] = { SLUICE_BIN, "workers", "--json", NULL };
        th_result r = th_run(workers, NULL);
        seen = r.status == 0 && strstr(r.out, id) != NULL;
        th_result_free(&r);
        if (!seen)
            usleep(100000);
    }
    cr_assert(seen, "job %s never showed as running in `sluice workers`", id);
    const char *cancel[] = { "cancel", id, NULL };
    free(sluice_out(cancel));
    job_status w = { id, "cancelled" };
    cr_assert(th_wait(has_status, &w, 60000), "running job %s was not stopped and recorded cancelled", id);
    const char *p[] = { id };
    cr_assert_eq(th_pg_number("SELECT count(*) FROM sluice_job_history WHERE job_id = $1 AND status = 'cancelled'"
                              " AND error LIKE '%while running%'", 1, p), 1);
    char line[160];
    snprintf(line, sizeof line, "event=job.cancel_signalled job=%s", id);
    cr_assert(log_has(log, line), "the master did not signal the child");
    stop_pool(log);
    unlink(log);
    free(log);
    free(id);
}

Test(cancel, cancel_rejects_bad_usage)
{
    const char *none[] = { SLUICE_BIN, "cancel", NULL };
    th_result r = th_run(none, NULL);
    cr_assert_eq(r.status, 2, "%s", r.err);
    cr_assert(strstr(r.err, "missing JOB_ID"), "%s", r.err);
    th_result_free(&r);
    const char *bad[] = { SLUICE_BIN, "cancel", "not-a-job-id!", NULL };
    r = th_run(bad, NULL);
    cr_assert_eq(r.status, 2, "%s", r.err);
    cr_assert(strstr(r.err, "invalid job id"), "%s", r.err);
    th_result_free(&r);
}

static long long stream_length(const char *queue)
{
    sl_redis *r = th_redis();
    long long len = -1, pending = -1;
    sl_err err;
    cr_assert_eq(sl_queue_depth(r, queue, &len, &pending, &err), 0, "%s", err.msg);
    sl_redis_free(r);
    return len;
}

Test(cancel, a_paused_queue_is_not_fetched_until_resumed)
{
    char queue[64];
    th_name(queue, sizeof queue, "pz");
    const char *pause[] = { "pause", queue, NULL };
    free(sluice_out(pause));
    char *log = new_log();
    pool = start_pool(queue, log);
    char paused_line[160];
    snprintf(paused_line, sizeof paused_line, "event=queue.paused queue=%s", queue);
    want_log w = { log, paused_line };
    cr_assert(th_wait(log_shows, &w, 30000), "the worker never noticed the pause");
    const char *enq[] = { "enqueue", "noop", "--queue", queue, NULL };
    char *id = sluice_out(enq);
    /* Several refreshes of the paused set later, the job still waits. */
    char promote_mark[160];
    snprintf(promote_mark, sizeof promote_mark, "event=queue.resumed queue=%s", queue);
    sleep(3);
    cr_assert_eq(stream_length(queue), 1, "a paused queue was fetched from");
    const char *p[] = { id };
    cr_assert_eq(th_pg_number("SELECT count(*) FROM sluice_jobs WHERE id = $1", 1, p), 0);
    const char *resume[] = { "resume", queue, NULL };
    free(sluice_out(resume));
    job_status done = { id, "succeeded" };
    cr_assert(th_wait(has_status, &done, 30000), "job %s did not run after resume", id);
    cr_assert(log_has(log, promote_mark), "no queue.resumed event");
    stop_pool(log);
    unlink(log);
    free(log);
    free(id);
}
