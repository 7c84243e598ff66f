/* test_store.c: the PostgreSQL store (lib/store.c) against a real server:
 * migrations, recording outcomes all-or-nothing, exactly one row per id,
 * and the pipelined record and claim (overlapped commits). */
#include "harness.h"

#include "clock.h"
#include "mem.h"
#include "pgconn.h"
#include "store.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

static sl_store *connect_store(void)
{
    sl_err err;
    sl_store *s = sl_store_connect(th_env("DATABASE_URL"), &err);
    cr_assert_not_null(s, "%s", err.msg);
    cr_assert_eq(sl_store_migrate(s, NULL, &err), 0, "%s", err.msg);
    cr_assert_eq(sl_store_check_schema(s, &err), 0, "%s", err.msg);
    return s;
}

static void job_for(sl_job *j, char *id, size_t n, const char *queue)
{
    th_name(id, n, "st");
    memset(j, 0, sizeof *j);
    j->id = id;
    j->kind = "noop";
    j->queue = (char *)queue;
    j->attempt = 1;
    j->enqueued_at = sl_now_ms() - 5;
}

/* Opens a transaction on a connection of its own that inserts (and so
 * locks) a row under id in table (sluice_jobs or sluice_claims), for a
 * statement of the store to wait on. */
static PGconn *hold_row(const char *table, const char *id)
{
    PGconn *holder = th_pg();
    const char *p[] = { id };
    PGresult *r = PQexec(holder, "BEGIN");
    cr_assert_eq(PQresultStatus(r), PGRES_COMMAND_OK, "%s", PQerrorMessage(holder));
    PQclear(r);
    char sql[256];
    if (strcmp(table, "sluice_jobs") == 0)
        snprintf(sql, sizeof sql, "INSERT INTO sluice_jobs (id, queue, kind, args, status, attempts)"
                 " VALUES ($1, 'store-q', 'noop', '{}', 'queued', 1)");
    else
        snprintf(sql, sizeof sql, "INSERT INTO sluice_claims (job_id, attempt, queue, entry, consumer)"
                 " VALUES ($1, 1, 'store-q', '9-9', 'other')");
    r = PQexecParams(holder, sql, 1, NULL, p, NULL, NULL, 0);
    cr_assert_eq(PQresultStatus(r), PGRES_COMMAND_OK, "%s", PQerrorMessage(holder));
    PQclear(r);
    return holder;
}

static void end_hold(PGconn *holder, const char *how)
{
    PGresult *r = PQexec(holder, how);
    cr_assert_eq(PQresultStatus(r), PGRES_COMMAND_OK, "%s", PQerrorMessage(holder));
    PQclear(r);
    PQfinish(holder);
}

/* The backend of the store's connection that waits on a lock the
 * holder's transaction holds (within 10 s): its pid. */
static long long wait_blocked_by(PGconn *holder)
{
    char hp[16];
    snprintf(hp, sizeof hp, "%d", PQbackendPID(holder));
    const char *p[] = { hp };
    long long waiter = 0;
    for (int i = 0; i < 500 && waiter == 0; i++) {
        waiter = th_pg_number("SELECT coalesce(min(pid), 0) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                              " AND application_name = 'sluice' AND $1::integer = ANY(pg_blocking_pids(pid))", 1, p);
        if (waiter == 0)
            sl_sleep_ms(20);
    }
    cr_assert_gt(waiter, 0, "no statement of the store waited on the holder's lock");
    return waiter;
}

Test(store, records_outcomes_and_finds_them)
{
    sl_store *s = connect_store();
    char id1[64], id2[64], other[64];
    sl_job j1, j2;
    job_for(&j1, id1, sizeof id1, "store-q");
    job_for(&j2, id2, sizeof id2, "store-q");
    th_name(other, sizeof other, "never");
    int64_t now = sl_now_ms();
    sl_outcome o[2] = {
        { &j1, "succeeded", NULL, "{}", "{\"ok\":true}", NULL, now - 2, now, 0 },
        { &j2, "dead", "failed", "{}", NULL, "boom", now - 2, now, 0 },
    };
    sl_err err;
    cr_assert_eq(sl_store_record(s, "host:1", o, 2, &err), 0, "%s", err.msg);
    sl_job jo = j1;
    jo.id = other;
    sl_claim_req reqs[] = { { &j1, "1-1" }, { &jo, "1-2" }, { &j2, "1-3" } };
    sl_prior prior[3];
    cr_assert_eq(sl_store_claim(s, "host:1", reqs, 3, NULL, NULL, prior, &err), 0, "%s", err.msg);
    cr_assert_eq(prior[0].kind, SL_PRIOR_FINAL);
    cr_assert_eq(prior[1].kind, SL_PRIOR_NONE);
    cr_assert_eq(prior[2].kind, SL_PRIOR_DEAD, "a dead job must not run again");
    /* the same id from a different job (kind, queue or args) is not its result */
    sl_job jk = j1, jq = j1;
    jk.kind = "deploy";
    jq.queue = "other-q";
    sl_claim_req impostors[] = { { &jk, "1-4" }, { &jq, "1-5" } };
    cr_assert_eq(sl_store_claim(s, "host:1", impostors, 2, NULL, NULL, prior, &err), 0, "%s", err.msg);
    cr_assert_eq(prior[0].kind, SL_PRIOR_OTHER_JOB, "another kind under the id is not this job's result");
    cr_assert_eq(prior[1].kind, SL_PRIOR_OTHER_JOB, "another queue under the id is not this job's result");
    cr_assert(strstr(prior[0].error, "recorded as kind 'noop', queue 'store-q'"), "%s", prior[0].error);
    const char *ip[] = { id1 };
    cr_assert_eq(th_pg_number("SELECT count(*) FROM sluice_claims WHERE job_id = $1 AND entry IN ('1-4', '1-5')",
                              1, ip), 0, "an impostor never takes the id's claim");
    sl_buf json = SL_BUF_INIT;
    cr_assert_eq(sl_store_job_json(s, id2, &json, &err), 0, "%s", err.msg);
    cr_assert(strstr(json.data, "\"boom\"") && strstr(json.data, "\"dead\""), "%s", json.data);
    sl_buf_free(&json);
    cr_assert_eq(sl_store_job_json(s, other, &json, &err), -1);
    cr_assert_eq(err.code, SL_ENOTFOUND);
    sl_buf_free(&json);
    sl_store_free(s);
}

Test(store, first_result_wins)
{
    sl_store *s = connect_store();
    char id[64];
    sl_job j;
    job_for(&j, id, sizeof id, "store-q");
    int64_t now = sl_now_ms();
    sl_outcome first = { &j, "succeeded", NULL, "{}", "{\"n\":1}", NULL, now, now, 0 };
    sl_outcome second = { &j, "dead", "failed", "{}", NULL, "late duplicate", now, now, 0 };
    sl_err err;
    cr_assert_eq(sl_store_record(s, "w1", &first, 1, &err), 0, "%s", err.msg);
    cr_assert_eq(sl_store_record(s, "w2", &second, 1, &err), 0, "%s", err.msg);
    const char *p[] = { id };
    cr_assert_eq(th_pg_number("SELECT count(*) FROM sluice_jobs WHERE id = $1 AND status = 'succeeded' AND worker = 'w1'", 1, p), 1);
    cr_assert_eq(th_pg_number("SELECT count(*) FROM sluice_job_history WHERE job_id = $1", 1, p), 1);
    sl_store_free(s);
}

Test(store, a_batch_is_all_or_nothing)
{
    sl_store *s = connect_store();
    char good[64], bad[64];
    sl_job jg, jb;
    job_for(&jg, good, sizeof good, "store-q");
    job_for(&jb, bad, sizeof bad, "store-q");
    int64_t now = sl_now_ms();
    sl_outcome o[2] = {
        { &jg, "succeeded", NULL, "{}", NULL, NULL, now, now, 0 },
        { &jb, "succeeded", NULL, "{not json", NULL, NULL, now, now, 0 },
    };
    sl_err err;
    cr_assert_eq(sl_store_record(s, "w", o, 2, &err), -1, "a batch with invalid JSON was accepted");
    cr_assert_eq(err.code, SL_EPG);
    cr_assert(strstr(err.msg, "json"), "the error should say what was wrong: %s", err.msg);
    cr_assert(!sl_store_broken(s), "a refused batch is not an outage");
    const char *p[] = { good };
    cr_assert_eq(th_pg_number("SELECT count(*) FROM sluice_jobs WHERE id = $1", 1, p), 0,
                 "half a batch was committed");
    /* The connection is still usable afterwards. */
    cr_assert_eq(sl_store_record(s, "w", o, 1, &err), 0, "%s", err.msg);
    cr_assert_eq(th_pg_number("SELECT count(*) FROM sluice_jobs WHERE id = $1", 1, p), 1);
    sl_store_free(s);
}

/* The pipelined record commits, the claim queued behind it runs after
 * that commit (it sees the recorded job as final), and the connection is
 * usable the waiting way afterwards. */
Test(store, pipelined_record_commits_before_the_claim_behind_it)
{
    sl_store *s = connect_store();
    char done[64], fresh[64];
    sl_job jd, jf;
    job_for(&jd, done, sizeof done, "store-q");
    job_for(&jf, fresh, sizeof fresh, "store-q");
    int64_t now = sl_now_ms();
    sl_outcome o = { &jd, "succeeded", NULL, "{}", "{\"n\":1}", NULL, now - 1, now, 0 };
    sl_claim_req reqs[] = { { &jd, "2-1" }, { &jf, "2-2" } };
    sl_prior prior[2];
    sl_err err;
    cr_assert_eq(sl_store_record_send(s, "w", &o, 1, &err), 0, "%s", err.msg);
    cr_assert_eq(sl_store_claim_send(s, "w", reqs, 2, &err), 0, "%s", err.msg);
    cr_assert_eq(sl_store_record_wait(s, &err), 0, "%s", err.msg);
    const char *p[] = { done };
    cr_assert_eq(th_pg_number("SELECT count(*) FROM sluice_jobs WHERE id = $1 AND status = 'succeeded'", 1, p), 1,
                 "the record is not committed when its wait returned");
    cr_assert_eq(sl_store_claim_wait(s, "w", reqs, 2, prior, &err), 0, "%s", err.msg);
    cr_assert_eq(prior[0].kind, SL_PRIOR_FINAL, "the claim ran before the record's commit");
    cr_assert_eq(prior[1].kind, SL_PRIOR_NONE, "a fresh job is claimed");
    cr_assert(!sl_store_broken(s));
    /* Out of pipeline mode: the waiting calls work again. */
    cr_assert_eq(sl_store_claim(s, "w", &reqs[1], 1, NULL, NULL, prior, &err), 0, "%s", err.msg);
    cr_assert_eq(prior[0].kind, SL_PRIOR_NONE, "this entry's own claim is renewed");
    cr_assert(prior[0].redelivery);
    /* A record alone, with no claim behind it. */
    sl_outcome of = { &jf, "succeeded", NULL, "{}", NULL, NULL, now - 1, now, 0 };
    cr_assert_eq(sl_store_record_send(s, "w", &of, 1, &err), 0, "%s", err.msg);
    cr_assert_eq(sl_store_record_wait(s, &err), 0, "%s", err.msg);
    const char *pf[] = { fresh };
    cr_assert_eq(th_pg_number("SELECT count(*) FROM sluice_jobs WHERE id = $1", 1, pf), 1);
    cr_assert_eq(sl_store_record(s, "w", &of, 1, &err), 0, "%s", err.msg);
    sl_store_free(s);
}

/* A pipelined record PostgreSQL refuses commits nothing, says why, and is
 * not an outage; the claim behind it, a transaction of its own, is still
 * answered, after which the connection is usable the waiting way. */
Test(store, refused_pipelined_record_commits_nothing_and_spares_the_claim_behind_it)
{
    sl_store *s = connect_store();
    char good[64], bad[64], next[64];
    sl_job jg, jb, jn;
    job_for(&jg, good, sizeof good, "store-q");
    job_for(&jb, bad, sizeof bad, "store-q");
    job_for(&jn, next, sizeof next, "store-q");
    int64_t now = sl_now_ms();
    sl_outcome o[2] = {
        { &jg, "succeeded", NULL, "{}", NULL, NULL, now, now, 0 },
        { &jb, "succeeded", NULL, "{not json", NULL, NULL, now, now, 0 },
    };
    sl_claim_req req = { &jn, "3-1" };
    sl_prior prior;
    sl_err err;
    cr_assert_eq(sl_store_record_send(s, "w", o, 2, &err), 0, "%s", err.msg);
    cr_assert_eq(sl_store_claim_send(s, "w", &req, 1, &err), 0, "%s", err.msg);
    cr_assert_eq(sl_store_record_wait(s, &err), -1, "a batch with invalid JSON was accepted");
    cr_assert(strstr(err.msg, "json"), "the error should say what was wrong: %s", err.msg);
    cr_assert(!sl_store_broken(s), "a refused batch is not an outage");
    const char *p[] = { good };
    cr_assert_eq(th_pg_number("SELECT count(*) FROM sluice_jobs WHERE id = $1", 1, p), 0,
                 "half a batch was committed");
    cr_assert_eq(sl_store_in_flight(s), 1, "the claim behind the refused record is still to be read");
    cr_assert_eq(sl_store_claim_wait(s, "w", &req, 1, &prior, &err), 0, "%s", err.msg);
    cr_assert_eq(prior.kind, SL_PRIOR_NONE, "%d", prior.kind);
    cr_assert_eq(sl_store_in_flight(s), 0);
    cr_assert_eq(sl_store_record(s, "w", o, 1, &err), 0, "%s", err.msg);
    cr_assert_eq(sl_store_claim(s, "w", &req, 1, NULL, NULL, &prior, &err), 0, "%s", err.msg);
    cr_assert_eq(prior.kind, SL_PRIOR_NONE, "%d", prior.kind);
    cr_assert(prior.redelivery, "the pipelined claim did commit: this entry holds it");
    sl_store_free(s);
}

/* The backend of a pipelined record terminated before it answers: the
 * wait fails, the store says it is broken (the caller reconnects). */
Test(store, pipelined_record_on_a_lost_connection_fails_as_broken)
{
    sl_store *s = connect_store();
    char id[64];
    sl_job j;
    job_for(&j, id, sizeof id, "store-q");
    int64_t now = sl_now_ms();
    sl_outcome o = { &j, "succeeded", NULL, "{}", NULL, NULL, now, now, 0 };
    /* Hold the job's row: the record waits for this transaction. */
    PGconn *holder = hold_row("sluice_jobs", id);
    sl_err err;
    cr_assert_eq(sl_store_record_send(s, "w", &o, 1, &err), 0, "%s", err.msg);
    /* Wait until its backend waits on the lock, then terminate it. */
    long long waiter = wait_blocked_by(holder);
    char wp[24];
    snprintf(wp, sizeof wp, "%lld", waiter);
    const char *wparams[] = { wp };
    cr_assert_eq(th_pg_number("SELECT pg_terminate_backend($1::integer)::integer", 1, wparams), 1);
    end_hold(holder, "ROLLBACK");
    cr_assert_eq(sl_store_record_wait(s, &err), -1, "a terminated record reported committed");
    cr_assert(sl_store_broken(s), "a lost connection must read as broken: %s", err.msg);
    const char *p[] = { id };
    cr_assert_eq(th_pg_number("SELECT count(*) FROM sluice_jobs WHERE id = $1", 1, p), 0);
    sl_store_free(s);
}

/* The worker's order: the next batch's claim, then the record behind it.
 * The claim is answered while the record still waits (here on a row lock
 * the test holds, standing in for a slow flush): the next batch can run
 * during the commit.  The record commits once the lock goes. */
Test(store, claim_sent_ahead_is_answered_while_the_record_behind_it_waits)
{
    sl_store *s = connect_store();
    char done[64], next[64];
    sl_job jd, jn;
    job_for(&jd, done, sizeof done, "store-q");
    job_for(&jn, next, sizeof next, "store-q");
    int64_t now = sl_now_ms();
    sl_outcome o = { &jd, "succeeded", NULL, "{}", NULL, NULL, now - 1, now, 0 };
    sl_claim_req req = { &jn, "4-1" };
    sl_prior prior;
    sl_err err;
    PGconn *holder = hold_row("sluice_jobs", done);
    cr_assert_eq(sl_store_claim_send(s, "w", &req, 1, &err), 0, "%s", err.msg);
    cr_assert_eq(sl_store_record_send(s, "w", &o, 1, &err), 0, "%s", err.msg);
    cr_assert_eq(sl_store_in_flight(s), 2);
    cr_assert_eq(sl_store_claim_wait(s, "w", &req, 1, &prior, &err), 0, "%s", err.msg);
    cr_assert_eq(prior.kind, SL_PRIOR_NONE, "the next batch's job is claimed: %d", prior.kind);
    const char *pn[] = { next }, *pd[] = { done };
    cr_assert_eq(th_pg_number("SELECT count(*) FROM sluice_claims WHERE job_id = $1 AND entry = '4-1'", 1, pn), 1,
                 "the claim answered is not committed");
    wait_blocked_by(holder);  /* the record is still waiting: it has not committed */
    cr_assert_eq(sl_store_in_flight(s), 1);
    end_hold(holder, "ROLLBACK");
    cr_assert_eq(sl_store_record_wait(s, &err), 0, "%s", err.msg);
    cr_assert_eq(sl_store_in_flight(s), 0);
    cr_assert_eq(th_pg_number("SELECT count(*) FROM sluice_jobs WHERE id = $1 AND status = 'succeeded'", 1, pd), 1,
                 "the record is not committed when its wait returned");
    cr_assert_eq(sl_store_record(s, "w", &o, 1, &err), 0, "out of pipeline mode afterwards: %s", err.msg);
    sl_store_free(s);
}

/* A claim that loses to a claimer whose commit its snapshot did not show
 * cannot name the holder.  Answered in a pipeline with a record still
 * behind it, it makes no second look (that would wait); the caller makes
 * it with sl_store_claim_recheck once nothing is in flight, and learns the
 * holder. */
Test(store, pipelined_claim_leaves_its_second_look_to_the_caller)
{
    sl_store *s = connect_store();
    char done[64], raced[64];
    sl_job jd, jr;
    job_for(&jd, done, sizeof done, "store-q");
    job_for(&jr, raced, sizeof raced, "store-q");
    int64_t now = sl_now_ms();
    sl_outcome o = { &jd, "succeeded", NULL, "{}", NULL, NULL, now - 1, now, 0 };
    sl_claim_req req = { &jr, "5-1" };
    sl_prior prior;
    sl_err err;
    PGconn *holder = hold_row("sluice_claims", raced);
    cr_assert_eq(sl_store_claim_send(s, "w", &req, 1, &err), 0, "%s", err.msg);
    cr_assert_eq(sl_store_record_send(s, "w", &o, 1, &err), 0, "%s", err.msg);
    wait_blocked_by(holder);  /* the claim waits for the other claimer */
    end_hold(holder, "COMMIT");
    cr_assert_eq(sl_store_claim_wait(s, "w", &req, 1, &prior, &err), 0, "%s", err.msg);
    cr_assert_eq(prior.kind, SL_PRIOR_HELD, "a job another entry claimed first was won: %d", prior.kind);
    cr_assert_str_empty(prior.holder_entry, "the first look cannot see the holder");
    cr_assert_eq(sl_store_record_wait(s, &err), 0, "%s", err.msg);
    cr_assert_eq(sl_store_claim_recheck(s, "w", &req, 1, &prior, &err), 0, "%s", err.msg);
    cr_assert_eq(prior.kind, SL_PRIOR_HELD, "%d", prior.kind);
    cr_assert_str_eq(prior.holder_entry, "9-9", "the second look names the holder");
    cr_assert_str_eq(prior.holder_consumer, "other");
    sl_store_free(s);
}

/* Whether listener receives, within 2 s, a notification on channel
 * sluice_jobs naming run.  Other tests running at the same time notify
 * for their own runs; those are skipped. */
static bool run_notified(PGconn *listener, const char *run)
{
    for (int i = 0; i < 100; i++) {
        cr_assert_eq(PQconsumeInput(listener), 1, "%s", PQerrorMessage(listener));
        PGnotify *note;
        while ((note = PQnotifies(listener))) {
            bool ours = strcmp(note->extra, run) == 0;
            PQfreemem(note);
            if (ours)
                return true;
        }
        sl_sleep_ms(20);
    }
    return false;
}

/* The scheduler hears of a pipeline step's final result (NOTIFY
 * sluice_jobs with the run id); a non-final one (retrying) notifies
 * nothing.  A job outside any run, recorded in the same batch, has no run
 * to notify for (migration 017 skips the trigger for it); it records. */
Test(store, only_final_results_of_pipeline_jobs_notify_the_scheduler)
{
    sl_store *s = connect_store();
    PGconn *listener = th_pg();
    PGresult *r = PQexec(listener, "LISTEN sluice_jobs");
    cr_assert_eq(PQresultStatus(r), PGRES_COMMAND_OK, "%s", PQerrorMessage(listener));
    PQclear(r);
    char plain[64], step[64], retried[64], run[64];
    sl_job jp, js, jr;
    job_for(&jp, plain, sizeof plain, "store-q");
    job_for(&js, step, sizeof step, "store-q");
    job_for(&jr, retried, sizeof retried, "store-q");
    th_name(run, sizeof run, "run");
    js.run = run;
    jr.run = run;
    int64_t now = sl_now_ms();
    sl_outcome o[] = {
        { &jp, "succeeded", NULL, "{}", NULL, NULL, now, now, 0 },
        { &jr, "retrying", "failed", "{}", NULL, "again", now, now, 0 },
    };
    sl_err err;
    cr_assert_eq(sl_store_record(s, "w", o, 2, &err), 0, "%s", err.msg);
    cr_assert_not(run_notified(listener, run), "a retry notified the scheduler");
    const char *pp[] = { plain };
    cr_assert_eq(th_pg_number("SELECT count(*) FROM sluice_jobs WHERE id = $1 AND status = 'succeeded'", 1, pp), 1,
                 "the result of the job outside any run was not recorded");
    sl_outcome done = { &js, "succeeded", NULL, "{}", NULL, NULL, now, now, 0 };
    cr_assert_eq(sl_store_record(s, "w", &done, 1, &err), 0, "%s", err.msg);
    cr_assert(run_notified(listener, run), "a pipeline step's final result did not notify");
    PQfinish(listener);
    sl_store_free(s);
}

Test(store, migrate_twice_applies_nothing_the_second_time)
{
    sl_store *s = connect_store();
    int applied = -1;
    sl_err err;
    cr_assert_eq(sl_store_migrate(s, &applied, &err), 0, "%s", err.msg);
    cr_assert_eq(applied, 0);
    sl_store_free(s);
}

static const char *conn_option(PGconn *c, const char *keyword, char *buf, size_t n)
{
    PQconninfoOption *opts = PQconninfo(c);
    buf[0] = '\0';
    for (PQconninfoOption *o = opts; o && o->keyword; o++)
        if (strcmp(o->keyword, keyword) == 0 && o->val)
            snprintf(buf, n, "%s", o->val);
    PQconninfoFree(opts);
    return buf;
}

/* sl_pg_connect does not probe for Kerberos credentials unless asked
 * (gssencmode disable), and whoever asks wins: the URL, or $PGGSSENCMODE.
 * Asked to require GSSAPI encryption from a server without Kerberos, the
 * connection is refused, which shows the request was not overridden. */
Test(store, gssapi_encryption_only_when_asked)
{
    const char *url = th_env("DATABASE_URL");
    sl_err err;
    char val[32];
    PGconn *c = sl_pg_connect(url, "sluice-test", SL_EPG, &err);
    cr_assert_not_null(c, "%s", err.msg);
    cr_assert_str_eq(conn_option(c, "gssencmode", val, sizeof val), "disable");
    PQfinish(c);

    char *required = sl_xasprintf("%s%sgssencmode=require", url, strchr(url, '?') ? "&" : "?");
    c = sl_pg_connect(required, "sluice-test", SL_EPG, &err);
    cr_assert_null(c, "gssencmode=require in the URL was overridden");
    cr_assert_eq(err.code, SL_EPG);
    cr_assert(strstr(err.msg, "GSS"), "unclear refusal: %s", err.msg);
    free(required);

    cr_assert_eq(setenv("PGGSSENCMODE", "require", 1), 0);
    c = sl_pg_connect(url, "sluice-test", SL_EPG, &err);
    cr_assert_eq(unsetenv("PGGSSENCMODE"), 0);
    cr_assert_null(c, "$PGGSSENCMODE=require was overridden");
    cr_assert(strstr(err.msg, "GSS"), "unclear refusal: %s", err.msg);
}
