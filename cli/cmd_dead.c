/* cmd_dead.c: `sluice dead list|retry|purge`: the dead letters.
 *
 * list   prints entries, oldest first, with the error that put each there
 *        and what can be told of the job;
 * retry  sends entries back to their queue as a new attempt: the job is
 *        reset in PostgreSQL first (so that a worker runs it instead of
 *        seeing it recorded dead), then the envelope, re-encoded as the
 *        attempt after the last recorded one with --attempts more allowed,
 *        replaces the dead entry in one atomic step
 *        (sl_queue_dead_requeue).  A failure between the two leaves the
 *        entry in the dead letter, and running retry again finishes it;
 *        the other order would let a worker find the job still recorded
 *        dead and dead-letter it again;
 * purge  deletes entries, all or those older than a duration.
 * Without --queue each acts on every queue in sluice:queues. */
#include "cli.h"
#include "clock.h"
#include "duration.h"
#include "envelope.h"
#include "json.h"
#include "mem.h"
#include "queue.h"
#include "redis.h"
#include "store.h"
#include "vis.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CMD "dead"
#define PAGE 100   /* entries per XRANGE while retrying --all */

static void usage(FILE *f)
{
    fprintf(f,
        "Usage: sluice dead list  [--queue Q] [--count N] [--json]\n"
        "       sluice dead retry ENTRY_ID --queue Q\n"
        "       sluice dead retry --all [--queue Q]\n"
        "       sluice dead purge [--queue Q] [--older-than DUR]\n"
        "\n"
        "A queue's dead letter (stream sluice:{Q}:dead) holds the jobs that could not\n"
        "or would not run: undecodable entries, unknown kinds, jobs that failed their\n"
        "last attempt.  Without --queue, each subcommand acts on every known queue.\n"
        "\n"
        "Subcommands:\n"
        "  list    show entries, oldest first: entry id, job id and kind, error\n"
        "  retry   send entries back to their queue as a new first attempt\n"
        "  purge   delete entries\n"
        "\n"
        "'sluice dead SUBCOMMAND --help' describes a subcommand.\n");
}

static const sl_opt list_rows[] = {
    { 'q', "queue", 'q', "Q", "only queue Q (default: every known queue)" },
    { 'n', "count", 'n', "N", "show at most the newest N entries per queue (default 100)" },
    { 'J', "json", 0, NULL, "one JSON object per line" },
    { 'c', "config", 'c', "FILE", "configuration file" },
    { 'h', "help", 'h', NULL, "show this help" },
    { 0 },
};

static const sl_opts list_opts = { "sluice dead list",
    "Usage: sluice dead list [OPTIONS]\n"
    "\n"
    "Lists dead-letter entries, oldest first: the entry id (what 'sluice dead\n"
    "retry' takes), the queue, the job's id and kind when its envelope can be\n"
    "decoded, and the error that put it there.\n"
    "\n",
    "\nTry 'sluice dead list --help'.", list_rows,
NULL, NULL };


static const sl_opt retry_rows[] = {
    { 'q', "queue", 'q', "Q", "the queue (required with ENTRY_ID; with --all, default:\nevery known queue)" },
    { 'A', "all", 0, NULL, "every entry present when the command starts" },
    { 'a', "attempts", 'a', "N", "attempts the job gets (with retries if N > 1); default 1" },
    { 'c', "config", 'c', "FILE", "configuration file" },
    { 'h', "help", 'h', NULL, "show this help" },
    { 0 },
};

static const sl_opts retry_opts = { "sluice dead retry",
    "Usage: sluice dead retry ENTRY_ID --queue Q [OPTIONS]\n"
    "       sluice dead retry --all [--queue Q] [OPTIONS]\n"
    "\n"
    "Sends dead-letter entries back to their queue's stream as a new attempt\n"
    "(the job's id kept, numbered after its last recorded attempt, with\n"
    "--attempts more attempts allowed) and marks the job queued again in\n"
    "PostgreSQL, so that a worker runs it.  ENTRY_ID is the entry id printed by\n"
    "'sluice dead list' (MS-SEQ).  An entry whose envelope cannot be decoded\n"
    "cannot be retried; 'sluice dead purge' removes it.  Exits 1 if any entry\n"
    "could not be retried.\n"
    "\n",
    "\nTry 'sluice dead retry --help'.", retry_rows,
NULL, NULL };


static const sl_opt purge_rows[] = {
    { 'q', "queue", 'q', "Q", "only queue Q (default: every known queue)" },
    { 'O', "older-than", 0, "DUR", "only entries older than DUR, e.g. 7d, 12h, 30m" },
    { 'c', "config", 'c', "FILE", "configuration file" },
    { 'h', "help", 'h', NULL, "show this help" },
    { 0 },
};

static const sl_opts purge_opts = { "sluice dead purge",
    "Usage: sluice dead purge [OPTIONS]\n"
    "\n"
    "Deletes dead-letter entries for good: all of them, or those that were\n"
    "dead-lettered longer ago than --older-than.\n"
    "\n",
    "\nTry 'sluice dead purge --help'.", purge_rows,
NULL, NULL };


/* ---- shared ----------------------------------------------------------------- */

/* The queues to act on: just `queue`, or every member of sluice:queues
 * (sorted, for stable output).  Returns the count, or -1 with err. */
static int queues_of(sl_redis *r, const char *queue, char ***out, sl_err *err)
{
    if (queue) {
        *out = sl_xcalloc(1, sizeof **out);
        (*out)[0] = sl_xstrdup(queue);
        return 1;
    }
    const char *argv[] = { "SMEMBERS", SL_QUEUES_KEY };
    redisReply *rep = sl_redis_command(r, 2, argv, NULL, err);
    if (rep == NULL)
        return -1;
    *out = sl_xcalloc(rep->elements + 1, sizeof **out);
    int n = 0;
    for (size_t i = 0; i < rep->elements; i++) {
        const redisReply *q = rep->element[i];
        /* A name a careless producer registered cannot be a key of ours. */
        if (q->type == REDIS_REPLY_STRING && sl_envelope_queue_valid(q->str))
            (*out)[n++] = sl_xstrdup(q->str);
    }
    freeReplyObject(rep);
    for (int i = 1; i < n; i++) {   /* insertion sort: a handful of names */
        char *k = (*out)[i];
        int j = i - 1;
        for (; j >= 0 && strcmp((*out)[j], k) > 0; j--)
            (*out)[j + 1] = (*out)[j];
        (*out)[j + 1] = k;
    }
    return n;
}

/* Frees what queues_of returned; n may be -1 (it failed). */
static void free_queues(char **queues, int n)
{
    for (int i = 0; i < n; i++)
        free(queues[i]);
    free(queues);
}

/* True for a complete stream entry id, MS-SEQ. */
static bool entry_id_valid(const char *id)
{
    size_t ms = strspn(id, "0123456789");
    if (ms == 0 || ms > 20 || id[ms] != '-')
        return false;
    size_t seq = strspn(id + ms + 1, "0123456789");
    return seq > 0 && seq <= 20 && id[ms + 1 + seq] == '\0';
}

static const redisReply *field_of(const redisReply *fields, const char *name)
{
    for (size_t i = 0; i + 1 < fields->elements; i += 2) {
        const redisReply *f = fields->element[i];
        if (f->type == REDIS_REPLY_STRING && strcmp(f->str, name) == 0)
            return fields->element[i + 1];
    }
    return NULL;
}

/* The `job` field of an entry's field list, or NULL. */
static const redisReply *job_field(const redisReply *fields)
{
    const redisReply *job = field_of(fields, "job");
    return job && job->type == REDIS_REPLY_STRING ? job : NULL;
}

/* ---- list ------------------------------------------------------------------- */

static void print_entry(const char *queue, const char *entry_id, const redisReply *fields,
                        bool as_json)
{
    const redisReply *job = job_field(fields), *error = field_of(fields, "error"),
                     *failed_at = field_of(fields, "failed_at");
    sl_job decoded;
    memset(&decoded, 0, sizeof decoded);
    sl_err err;
    bool ok = job && sl_envelope_decode(job->str, job->len, &decoded, &err) == 0;
    const char *errtext = error && error->type == REDIS_REPLY_STRING ? error->str : "";
    /* The job id the worker could read, kept beside an undecodable envelope. */
    const redisReply *idf = field_of(fields, "id");
    const char *idtext = idf && idf->type == REDIS_REPLY_STRING && idf->len > 0 ? idf->str : NULL;
    long long at = failed_at && failed_at->type == REDIS_REPLY_STRING ? atoll(failed_at->str) : 0;
    if (as_json) {
        sl_buf b = SL_BUF_INIT;
        sl_buf_puts(&b, "{\"queue\":");
        sl_json_put_string(&b, queue, strlen(queue));
        sl_buf_puts(&b, ",\"entry\":");
        sl_json_put_string(&b, entry_id, strlen(entry_id));
        sl_buf_printf(&b, ",\"failed_at_ms\":%lld,\"error\":", at);
        sl_json_put_string(&b, errtext, strlen(errtext));
        if (ok) {
            sl_buf_puts(&b, ",\"job\":");
            sl_json_put_string(&b, decoded.id, strlen(decoded.id));
            sl_buf_puts(&b, ",\"kind\":");
            sl_json_put_string(&b, decoded.kind, strlen(decoded.kind));
            sl_buf_printf(&b, ",\"attempt\":%lld", (long long)decoded.attempt);
        } else if (idtext) {
            sl_buf_puts(&b, ",\"job\":");
            sl_json_put_string(&b, idtext, strlen(idtext));
        }
        sl_buf_printf(&b, ",\"bytes\":%zu}\n", job ? job->len : 0);
        sl_buf safe = SL_BUF_INIT;
        sl_vis_json(&safe, b.data, b.len);
        fputs(sl_buf_str(&safe), stdout);
        sl_buf_free(&safe);
        sl_buf_free(&b);
    } else {
        /* The error may quote the entry's bytes: shown visibly (vis.h). */
        if (ok)
            printf("%s  queue=%s job=%s kind=%s attempt=%lld  error=%s\n", SL_VIS(entry_id), queue,
                   SL_VIS(decoded.id), SL_VIS(decoded.kind), (long long)decoded.attempt,
                   SL_VIS(errtext));
        else
            printf("%s  queue=%s%s%s (undecodable, %zu bytes)  error=%s\n", SL_VIS(entry_id), queue,
                   idtext ? " job=" : "", idtext ? SL_VIS(idtext) : "", job ? job->len : 0,
                   SL_VIS(errtext));
    }
    sl_job_clear(&decoded);
}

/* Prints the newest `count` entries of queue's dead letter, oldest first;
 * returns how many, or -1 with err. */
static long list_queue(sl_redis *r, const char *queue, const char *count, bool as_json, sl_err *err)
{
    char key[SL_KEY_MAX];
    sl_queue_key(key, queue, "dead");
    const char *argv[] = { "XREVRANGE", key, "+", "-", "COUNT", count };
    redisReply *rep = sl_redis_command(r, 6, argv, NULL, err);
    if (rep == NULL)
        return -1;
    /* XREVRANGE gives newest first; print oldest first, like a log. */
    for (size_t i = rep->elements; i-- > 0;) {
        const redisReply *e = rep->element[i];
        if (e->type == REDIS_REPLY_ARRAY && e->elements == 2 && e->element[1]->type == REDIS_REPLY_ARRAY)
            print_entry(queue, e->element[0]->str, e->element[1], as_json);
    }
    long n = (long)rep->elements;
    freeReplyObject(rep);
    return n;
}

static int dead_list(int argc, char **argv)
{
    static const char *const cmd = "dead list";
    const char *config = NULL, *count = "100", *queue = NULL;
    bool as_json = false;
    int c;
    sl_opts_parser op;
    const char *optval;
    sl_opts_begin(&op, &list_opts, argc, argv);
    while ((c = sl_opts_next(&op, &optval)) != SL_OPTS_END) {
        switch (c) {
        case 'q': queue = optval; break;
        case 'n': count = optval; break;
        case 'J': as_json = true; break;
        case 'c': config = optval; break;
        default: return op.status;
        }
    }
    char *end;
    long n = strtol(count, &end, 10);
    if (*count == '\0' || *end != '\0' || n < 1 || n > 100000)
        return cli_usage_error(cmd, "--count: expected a number from 1 to 100000, got '%s'", count);
    if (optind < argc)
        return cli_usage_error(cmd, "unexpected argument '%s' (the queue goes after --queue)",
                               argv[optind]);
    if (queue && !sl_envelope_queue_valid(queue))
        return cli_usage_error(cmd, "--queue: invalid queue name '%s'", queue);
    sl_config *cfg = cli_load_config(cmd, config);
    if (cfg == NULL)
        return CLI_FAILED;
    sl_err err;
    int status = CLI_FAILED, nqueues = 0;
    char **queues = NULL;
    long total = 0;
    sl_redis *r = sl_redis_connect(cfg->redis_url, 5000, &err);
    if (r == NULL || (nqueues = queues_of(r, queue, &queues, &err)) < 0) {
        cli_fail(cmd, "%s", err.msg);
        goto out;
    }
    for (int i = 0; i < nqueues; i++) {
        long got = list_queue(r, queues[i], count, as_json, &err);
        if (got < 0) {
            cli_fail(cmd, "%s", err.msg);
            goto out;
        }
        total += got;
    }
    if (!as_json && total == 0) {
        if (queue)
            printf("dead letter of queue '%s' is empty\n", queue);
        else
            printf("no dead-letter entries in %d queue%s\n", nqueues, nqueues == 1 ? "" : "s");
    }
    status = fflush(stdout) == 0 ? CLI_OK : CLI_FAILED;
out:
    free_queues(queues, nqueues);
    sl_redis_free(r);
    sl_config_free(cfg);
    return status;
}

/* ---- retry ------------------------------------------------------------------ */

typedef struct retry_ctx {
    sl_redis *redis;
    sl_store *store;
    long retried;   /* entries sent back */
    long failed;    /* entries that could not be */
    int attempts;   /* --attempts: attempts each retried job gets */
} retry_ctx;

/* Retries one dead entry (its id and field list).  Returns 0, or -1 after
 * printing why not; a Redis or PostgreSQL connection failure also sets
 * *fatal, since the next entries would fail the same way. */
static int retry_entry(retry_ctx *x, const char *queue, const char *entry_id,
                       const redisReply *fields, bool *fatal)
{
    static const char *const cmd = "dead retry";
    const redisReply *job = job_field(fields);
    sl_job decoded;
    memset(&decoded, 0, sizeof decoded);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    sl_err err;
    int rc = -1;
    if (job == NULL) {
        cli_fail(cmd, "entry %s of queue '%s' cannot be retried: it has no job field; "
                 "'sluice dead purge' removes it", entry_id, queue);
        goto out;
    }
    if (sl_envelope_decode(job->str, job->len, &decoded, &err) < 0) {
        cli_fail(cmd, "entry %s of queue '%s' cannot be retried: its envelope is undecodable "
                 "(%s); 'sluice dead purge' removes it", entry_id, queue, err.msg);
        goto out;
    }
    /* PostgreSQL first: see the file comment. */
    int64_t recorded = 0;
    if (sl_store_job_reset(x->store, decoded.id, decoded.attempt, &recorded, &err) < 0) {
        if (err.code != SL_ENOTFOUND) {
            cli_fail(cmd, "entry %s of queue '%s': %s", entry_id, queue, err.msg);
            *fatal = sl_store_broken(x->store);
            goto out;
        }
        /* No dead row to reset: never recorded (its result was refused),
         * not recorded yet, or already past this entry's attempt (a stale
         * copy, or another operator's retry ran meanwhile).  Requeued
         * anyway: a worker runs it only if that attempt has no result, and
         * otherwise acknowledges it without running it. */
        fprintf(stderr, "sluice %s: note: %s; requeueing it anyway (a worker runs it only if "
                "that attempt has no result)\n", cmd, err.msg);
    }
    decoded.attempt = (recorded > decoded.attempt ? recorded : decoded.attempt) + 1;
    decoded.max_attempts = decoded.attempt - 1 + x->attempts;
    if (sl_envelope_encode(&decoded, &sb, &err) < 0) {
        cli_fail(cmd, "entry %s of queue '%s': re-encoding job %s: %s", entry_id, queue,
                 decoded.id, err.msg);
        goto out;
    }
    if (sl_queue_dead_requeue(x->redis, queue, entry_id, sb.data, sb.size, &err) < 0) {
        if (err.code == SL_ENOTFOUND)
            cli_fail(cmd, "%s (retried or purged meanwhile?)", err.msg);
        else
            cli_fail(cmd, "%s", err.msg);
        *fatal = sl_redis_broken(x->redis);
        goto out;
    }
    printf("retried %s of queue '%s': job %s (kind %s) is queued again as attempt %lld of %lld\n",
           entry_id, queue, decoded.id, decoded.kind, (long long)decoded.attempt,
           (long long)decoded.max_attempts);
    rc = 0;
out:
    if (rc == 0)
        x->retried++;
    else
        x->failed++;
    msgpack_sbuffer_destroy(&sb);
    sl_job_clear(&decoded);
    return rc;
}

/* Retries the entries of queue's dead letter with ids from start (inclusive)
 * to end (inclusive).  Returns -1 with err only if Redis failed; entries
 * that could not be retried are counted in x->failed. */
static int retry_range(retry_ctx *x, const char *queue, const char *start, const char *end,
                       bool *fatal, sl_err *err)
{
    char key[SL_KEY_MAX], from[64], page[16];
    sl_queue_key(key, queue, "dead");
    snprintf(from, sizeof from, "%s", start);
    snprintf(page, sizeof page, "%d", PAGE);
    for (;;) {
        const char *argv[] = { "XRANGE", key, from, end, "COUNT", page };
        redisReply *rep = sl_redis_command(x->redis, 6, argv, NULL, err);
        if (rep == NULL)
            return -1;
        size_t n = rep->elements;
        for (size_t i = 0; i < n && !*fatal; i++) {
            const redisReply *e = rep->element[i];
            if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
                e->element[0]->type != REDIS_REPLY_STRING || e->element[1]->type != REDIS_REPLY_ARRAY)
                continue;
            retry_entry(x, queue, e->element[0]->str, e->element[1], fatal);
            /* Next page: after the last id seen ("(" = exclusive). */
            snprintf(from, sizeof from, "(%s", e->element[0]->str);
        }
        freeReplyObject(rep);
        if (n < (size_t)PAGE || *fatal)
            return 0;
    }
}

/* The newest entry id of queue's dead letter into last (empty if none):
 * --all stops there, so that an entry dead-lettered again while we work
 * is not retried again in a loop. */
static int last_entry(sl_redis *r, const char *queue, char last[64], sl_err *err)
{
    char key[SL_KEY_MAX];
    sl_queue_key(key, queue, "dead");
    const char *argv[] = { "XREVRANGE", key, "+", "-", "COUNT", "1" };
    redisReply *rep = sl_redis_command(r, 6, argv, NULL, err);
    if (rep == NULL)
        return -1;
    last[0] = '\0';
    if (rep->elements == 1 && rep->element[0]->type == REDIS_REPLY_ARRAY &&
        rep->element[0]->elements == 2 && rep->element[0]->element[0]->type == REDIS_REPLY_STRING)
        snprintf(last, 64, "%s", rep->element[0]->element[0]->str);
    freeReplyObject(rep);
    return 0;
}

static int dead_retry(int argc, char **argv)
{
    static const char *const cmd = "dead retry";
    const char *config = NULL, *queue = NULL;
    bool all = false;
    long attempts = 1;
    int c;
    sl_opts_parser op;
    const char *optval;
    sl_opts_begin(&op, &retry_opts, argc, argv);
    while ((c = sl_opts_next(&op, &optval)) != SL_OPTS_END) {
        char *end;
        switch (c) {
        case 'q': queue = optval; break;
        case 'A': all = true; break;
        case 'a':
            errno = 0;
            attempts = strtol(optval, &end, 10);
            if (errno || end == optval || *end || attempts < 1 || attempts > 1000)
                return cli_usage_error(cmd, "--attempts: expected a number from 1 to 1000, got '%s'", optval);
            break;
        case 'c': config = optval; break;
        default: return op.status;
        }
    }
    const char *entry = optind < argc ? argv[optind] : NULL;
    if (optind + 1 < argc)
        return cli_usage_error(cmd, "unexpected argument '%s'", argv[optind + 1]);
    if (entry == NULL && !all)
        return cli_usage_error(cmd, "missing ENTRY_ID (or --all)");
    if (entry && all)
        return cli_usage_error(cmd, "give an ENTRY_ID or --all, not both");
    if (entry && !entry_id_valid(entry))
        return cli_usage_error(cmd, "invalid entry id '%s' (expected MS-SEQ, as 'sluice dead "
                               "list' prints it)", entry);
    if (entry && queue == NULL)
        return cli_usage_error(cmd, "ENTRY_ID needs --queue: entry ids belong to one queue's "
                               "dead letter");
    if (queue && !sl_envelope_queue_valid(queue))
        return cli_usage_error(cmd, "--queue: invalid queue name '%s'", queue);
    sl_config *cfg = cli_load_config(cmd, config);
    if (cfg == NULL)
        return CLI_FAILED;
    sl_err err;
    int status = CLI_FAILED, nqueues = 0;
    char **queues = NULL;
    bool fatal = false;
    retry_ctx x = { .attempts = (int)attempts };
    if ((x.store = sl_store_connect(cfg->database_url, &err)) == NULL ||
        sl_store_check_schema(x.store, &err) < 0 ||
        (x.redis = sl_redis_connect(cfg->redis_url, 5000, &err)) == NULL) {
        cli_fail(cmd, "%s", err.msg);
        goto out;
    }
    if (entry) {
        if (retry_range(&x, queue, entry, entry, &fatal, &err) < 0) {
            cli_fail(cmd, "%s", err.msg);
            goto out;
        }
        if (x.retried + x.failed == 0) {
            cli_fail(cmd, "dead letter of queue '%s' has no entry %s", queue, entry);
            goto out;
        }
        status = x.failed ? CLI_FAILED : CLI_OK;
        goto out;
    }
    if ((nqueues = queues_of(x.redis, queue, &queues, &err)) < 0) {
        cli_fail(cmd, "%s", err.msg);
        goto out;
    }
    for (int i = 0; i < nqueues && !fatal; i++) {
        char last[64];
        if (last_entry(x.redis, queues[i], last, &err) < 0 ||
            (last[0] && retry_range(&x, queues[i], "-", last, &fatal, &err) < 0)) {
            cli_fail(cmd, "%s", err.msg);
            goto out;
        }
    }
    printf("retried %ld dead-letter entr%s", x.retried, x.retried == 1 ? "y" : "ies");
    if (x.failed)
        printf("; %ld could not be retried (see above)", x.failed);
    printf("\n");
    status = x.failed ? CLI_FAILED : CLI_OK;
out:
    if (fflush(stdout) != 0)
        status = CLI_FAILED;
    free_queues(queues, nqueues);
    sl_redis_free(x.redis);
    sl_store_free(x.store);
    sl_config_free(cfg);
    return status;
}

/* ---- purge ------------------------------------------------------------------ */

static int dead_purge(int argc, char **argv)
{
    static const char *const cmd = "dead purge";
    const char *config = NULL, *queue = NULL, *older = NULL;
    int c;
    sl_opts_parser op;
    const char *optval;
    sl_opts_begin(&op, &purge_opts, argc, argv);
    while ((c = sl_opts_next(&op, &optval)) != SL_OPTS_END) {
        switch (c) {
        case 'q': queue = optval; break;
        case 'O': older = optval; break;
        case 'c': config = optval; break;
        default: return op.status;
        }
    }
    if (optind < argc)
        return cli_usage_error(cmd, "unexpected argument '%s' (the queue goes after --queue)",
                               argv[optind]);
    if (queue && !sl_envelope_queue_valid(queue))
        return cli_usage_error(cmd, "--queue: invalid queue name '%s'", queue);
    int64_t age_ms = 0;
    sl_err err;
    if (older && sl_duration_parse(older, &age_ms, &err) < 0)
        return cli_usage_error(cmd, "--older-than: %s", err.msg);
    sl_config *cfg = cli_load_config(cmd, config);
    if (cfg == NULL)
        return CLI_FAILED;
    /* 0 means "all" to sl_queue_dead_purge; "--older-than 0s" is "before now". */
    int64_t cutoff = older ? sl_now_ms() - age_ms : 0;
    if (older && cutoff < 1)
        cutoff = 1;
    int status = CLI_FAILED, nqueues = 0, touched = 0;
    char **queues = NULL;
    long long total = 0;
    sl_redis *r = sl_redis_connect(cfg->redis_url, 5000, &err);
    if (r == NULL || (nqueues = queues_of(r, queue, &queues, &err)) < 0) {
        cli_fail(cmd, "%s", err.msg);
        goto out;
    }
    for (int i = 0; i < nqueues; i++) {
        long long removed = 0;
        if (sl_queue_dead_purge(r, queues[i], cutoff, &removed, &err) < 0) {
            cli_fail(cmd, "%s", err.msg);
            goto out;
        }
        if (removed > 0 || queue) {
            printf("purged %lld entr%s from the dead letter of queue '%s'\n", removed,
                   removed == 1 ? "y" : "ies", queues[i]);
            touched++;
        }
        total += removed;
    }
    if (queue == NULL)
        printf("purged %lld dead-letter entr%s in all, from %d of %d queue%s\n", total,
               total == 1 ? "y" : "ies", touched, nqueues, nqueues == 1 ? "" : "s");
    status = fflush(stdout) == 0 ? CLI_OK : CLI_FAILED;
out:
    free_queues(queues, nqueues);
    sl_redis_free(r);
    sl_config_free(cfg);
    return status;
}

int cmd_dead(int argc, char **argv)
{
    if (argc < 2)
        return cli_usage_error(CMD, "missing subcommand: list, retry or purge");
    const char *sub = argv[1];
    if (strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0 || strcmp(sub, "help") == 0) {
        usage(stdout);
        return CLI_OK;
    }
    if (strcmp(sub, "list") == 0)
        return dead_list(argc - 1, argv + 1);
    if (strcmp(sub, "retry") == 0)
        return dead_retry(argc - 1, argv + 1);
    if (strcmp(sub, "purge") == 0)
        return dead_purge(argc - 1, argv + 1);
    /* `sluice dead QUEUE` was the old form of `sluice dead list`. */
    if (sub[0] != '-' && sl_envelope_queue_valid(sub))
        return cli_usage_error(CMD, "unknown subcommand '%s' (to list queue %s's dead letter: "
                               "'sluice dead list --queue %s')", sub, sub, sub);
    return cli_usage_error(CMD, "unknown subcommand '%s': expected list, retry or purge", sub);
}
