/* cmd_job.c: `sluice job ID`: what became of a job, in a state a producer
 * can act on.
 *
 * PostgreSQL first: a final result (succeeded, dead, cancelled) is the
 * answer (for a dead job, the dead-letter entry that holds it is looked up
 * too, so that it can be retried).  Otherwise -- no row, or a row between
 * attempts (retrying, queued again by `sluice dead retry`) -- Redis says
 * where the job is now (locate.h): running, claimed, queued, delayed or
 * dead-lettered without a record (an undecodable entry); else it is
 * unknown.  The exit status tells scripts which, without parsing. */
#include "args.h"
#include "cli.h"
#include "clock.h"
#include "json.h"
#include "locate.h"
#include "mem.h"
#include "queue.h"
#include "store.h"
#include "vis.h"

#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CMD "job"

enum {
    EXIT_UNKNOWN = 3,     /* no record and not found in Redis */
    EXIT_PENDING = 4,     /* not finished: queued, delayed, retrying, claimed, running */
    EXIT_UNSUCCESSFUL = 5 /* finished without success: dead (recorded or only dead-lettered), cancelled */
};

#define STR_(x) #x
#define STR(x) STR_(x)
#define LOCATE_LIMIT_TEXT STR(LOCATE_LIMIT)

static const sl_opt cmd_rows[] = {
    { 'J', "json", 0, NULL, "print one JSON object: the recorded fields (if any),\n\"state\", and \"where\" (queue, entry, attempt, times,\nworker, dead-letter error)" },
    { 'q', "queue", 'q', "NAME", "look only in this queue (repeatable)" },
    { 'L', "scan-limit", 0, "N", "entries read per stream or set (default " LOCATE_LIMIT_TEXT ")" },
    { 'c', "config", 'c', "FILE", "configuration file" },
    { 'h', "help", 'h', NULL, "show this help" },
    { 0 },
};

static const sl_opts cmd_opts = { "sluice job",
    "Usage: sluice job ID [OPTIONS]\n"
    "\n"
    "Shows what became of a job.  Its state, first:\n"
    "  succeeded   finished: status, attempts, timings, worker, arguments, outputs\n"
    "  dead        failed for good (its error; the dead-letter entry to retry), or\n"
    "              dead-lettered without a record (e.g. an undecodable envelope)\n"
    "  cancelled   cancelled before or while it ran\n"
    "  running     a worker process runs it now (host, pid, for how long)\n"
    "  claimed     delivered to a worker that has not finished it yet\n"
    "  queued      waiting in its queue's stream (since when)\n"
    "  delayed     waiting in its queue's delayed set: scheduled, or its next\n"
    "              attempt after a failure (retrying), due at a time\n"
    "  unknown     no result recorded and not found in Redis\n"
    "then the recorded fields and the history of its attempts, if any.\n"
    "\n"
    "Finding a job that has no final result reads the registered queues'\n"
    "streams, delayed sets and dead letters (at most --scan-limit entries each;\n"
    "for a UUIDv7 id only stream entries from shortly before its time).\n"
    "\n",
    "\nTry 'sluice job --help'.", cmd_rows,
    "\n"
    "Exit status: 0 succeeded; 3 unknown; 4 not finished yet (queued, delayed,\n"
    "retrying, claimed, running); 5 finished without success (dead, cancelled);\n"
    "1 a server unreachable; 2 usage error.\n", NULL };


/* ---- the recorded row ---------------------------------------------------- */

/* Prints one "label  value" line for a field of the record, visibly:
 * arguments, outputs and errors come from producers and jobs (vis.h). */
static void field(const msgpack_object *rec, const char *key, const char *label)
{
    const msgpack_object *v = sl_args_get(rec, key);
    if (v == NULL || v->type == MSGPACK_OBJECT_NIL)
        return;
    printf("%-12s ", label);
    if (v->type == MSGPACK_OBJECT_STR) {
        sl_buf b = SL_BUF_INIT;
        sl_vis_append(&b, v->via.str.ptr, v->via.str.size);
        printf("%s\n", sl_buf_str(&b));
        sl_buf_free(&b);
    } else if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        printf("%" PRIu64 "\n", v->via.u64);
    } else {
        sl_buf b = SL_BUF_INIT;
        if (sl_json_from_msgpack(v, &b, NULL) == 0)
            sl_vis_fputs(sl_buf_str(&b), stdout);
        else
            fputs("?", stdout);
        putchar('\n');
        sl_buf_free(&b);
    }
}

/* A string field of a history item, visibly, into buf ("" if absent). */
static const char *hist_str(const msgpack_object *a, const char *key, char *buf, size_t n)
{
    const msgpack_object *v = sl_args_get(a, key);
    if (v == NULL || v->type != MSGPACK_OBJECT_STR) {
        buf[0] = '\0';
        return buf;
    }
    return sl_vis_mem(buf, n, v->via.str.ptr, v->via.str.size);
}

static void print_record(const msgpack_object *rec)
{
    field(rec, "status", "status");
    field(rec, "queue", "queue");
    field(rec, "kind", "kind");
    field(rec, "attempts", "attempts");
    field(rec, "max_attempts", "max attempts");
    field(rec, "timeout_ms", "timeout ms");
    field(rec, "run", "run");
    field(rec, "step", "step");
    field(rec, "enqueued_at", "enqueued");
    field(rec, "started_at", "started");
    field(rec, "finished_at", "finished");
    field(rec, "wait_ms", "waited ms");
    field(rec, "run_ms", "ran ms");
    field(rec, "worker", "worker");
    field(rec, "args", "args");
    field(rec, "outputs", "outputs");
    field(rec, "error", "error");
    const msgpack_object *hist = sl_args_get(rec, "history");
    if (hist == NULL || hist->type != MSGPACK_OBJECT_ARRAY || hist->via.array.size == 0)
        return;
    printf("history:\n");
    for (uint32_t i = 0; i < hist->via.array.size; i++) {
        const msgpack_object *a = &hist->via.array.ptr[i];
        const msgpack_object *n = sl_args_get(a, "attempt");
        char st[64], fin[64], w[256], e[SL_VIS_MAX];
        hist_str(a, "error", e, sizeof e);
        printf("  #%" PRIu64 " %-10s %s %s%s%s\n",
               n && n->type == MSGPACK_OBJECT_POSITIVE_INTEGER ? n->via.u64 : 0,
               *hist_str(a, "status", st, sizeof st) ? st : "?", hist_str(a, "finished_at", fin, sizeof fin),
               hist_str(a, "worker", w, sizeof w), e[0] ? "  error: " : "", e);
    }
}

/* ---- where the job is now ------------------------------------------------ */

static const char *utc(int64_t ms, char *buf, size_t n)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, n, "%Y-%m-%d %H:%M:%S UTC", &tm);
    return buf;
}

static void print_where(const locate_result *w, int64_t now)
{
    char t[40];
    switch (w->state) {
    case LOC_RUNNING:
        printf("running: worker pid %lld on %s (pool %lld), queue %s", w->pid, SL_VIS(w->host),
               w->master_pid, w->queue);
        if (w->running_ms >= 0)
            printf(", for %.1fs", (double)w->running_ms / 1000.0);
        putchar('\n');
        break;
    case LOC_CLAIMED:
        printf("claimed: delivered to worker %s (%lld deliver%s), not finished yet; queue %s, "
               "entry %s, in the stream since %s\n", SL_VIS(w->consumer), w->deliveries,
               w->deliveries == 1 ? "y" : "ies", w->queue, w->entry, utc(w->since_ms, t, sizeof t));
        break;
    case LOC_QUEUED:
        printf("queued: waiting in queue %s since %s (%llds), entry %s", w->queue,
               utc(w->since_ms, t, sizeof t), (long long)((now - w->since_ms) / 1000), w->entry);
        if (w->attempt > 0)
            printf(", attempt %lld", w->attempt);
        putchar('\n');
        break;
    case LOC_DELAYED:
        printf("delayed: %s%lld waits in queue %s's delayed set, due %s (%s%llds)\n",
               w->attempt > 1 ? "retrying, attempt " : "attempt ", w->attempt, w->queue,
               utc(w->due_ms, t, sizeof t), w->due_ms >= now ? "in " : "overdue by ",
               (long long)((w->due_ms >= now ? w->due_ms - now : now - w->due_ms) / 1000));
        break;
    case LOC_DEAD:
        printf("dead: in the dead letter of queue %s since %s (entry %s): %s\n", w->queue,
               utc(w->failed_at_ms, t, sizeof t), w->entry, SL_VIS(w->error));
        printf("%-12s sluice dead retry %s --queue %s\n", "retry with", w->entry, w->queue);
        break;
    case LOC_NOWHERE:
        break;
    }
}

static void json_where(sl_buf *b, const locate_result *w)
{
    if (w->state == LOC_NOWHERE) {
        sl_buf_puts(b, "null");
        return;
    }
    sl_buf_puts(b, "{\"queue\":");
    sl_json_put_string(b, w->queue, strlen(w->queue));
    if (w->entry[0]) {
        sl_buf_puts(b, ",\"entry\":");
        sl_json_put_string(b, w->entry, strlen(w->entry));
    }
    if (w->attempt > 0)
        sl_buf_printf(b, ",\"attempt\":%lld", w->attempt);
    if (w->state == LOC_QUEUED || w->state == LOC_CLAIMED)
        sl_buf_printf(b, ",\"since_ms\":%" PRId64, w->since_ms);
    if (w->state == LOC_DELAYED)
        sl_buf_printf(b, ",\"due_ms\":%" PRId64, w->due_ms);
    if (w->state == LOC_CLAIMED) {
        sl_buf_puts(b, ",\"consumer\":");
        sl_json_put_string(b, w->consumer, strlen(w->consumer));
        sl_buf_printf(b, ",\"deliveries\":%lld", w->deliveries);
    }
    if (w->state == LOC_RUNNING) {
        sl_buf_puts(b, ",\"host\":");
        sl_json_put_string(b, w->host, strlen(w->host));
        sl_buf_printf(b, ",\"pid\":%lld,\"master_pid\":%lld", w->pid, w->master_pid);
        if (w->running_ms >= 0)
            sl_buf_printf(b, ",\"running_ms\":%lld", w->running_ms);
    }
    if (w->state == LOC_DEAD) {
        sl_buf_puts(b, ",\"error\":");
        sl_json_put_string(b, w->error, strlen(w->error));
        sl_buf_printf(b, ",\"failed_at_ms\":%" PRId64, w->failed_at_ms);
    }
    sl_buf_putc(b, '}');
}

/* ---- the command --------------------------------------------------------- */

/* The queues to search: given, the record's, or every registered one. */
static int search_queues(sl_redis *r, char **given, size_t ngiven, const char *recorded,
                         char ***out, size_t *n, sl_err *err)
{
    *out = NULL;
    *n = 0;
    if (ngiven || recorded) {
        *out = sl_xcalloc(ngiven ? ngiven : 1, sizeof **out);
        for (size_t i = 0; i < ngiven; i++)
            (*out)[(*n)++] = sl_xstrdup(given[i]);
        if (ngiven == 0)
            (*out)[(*n)++] = sl_xstrdup(recorded);
        return 0;
    }
    const char *argv[] = { "SMEMBERS", SL_QUEUES_KEY };
    redisReply *rep = sl_redis_command(r, 2, argv, NULL, err);
    if (rep == NULL)
        return -1;
    *out = sl_xcalloc(rep->elements + 1, sizeof **out);
    for (size_t i = 0; rep->type == REDIS_REPLY_ARRAY && i < rep->elements; i++) {
        if (rep->element[i]->type == REDIS_REPLY_STRING && sl_envelope_queue_valid(rep->element[i]->str))
            (*out)[(*n)++] = sl_xstrdup(rep->element[i]->str);
    }
    freeReplyObject(rep);
    return 0;
}

/* Parses the record's JSON into *up (backed by *sb). */
static bool parse_record(const sl_buf *json, msgpack_sbuffer *sb, msgpack_unpacked *up)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    size_t off = 0;
    return sl_json_to_msgpack(json->data, json->len, &pk, NULL) == 0 &&
           msgpack_unpack_next(up, sb->data, sb->size, &off) == MSGPACK_UNPACK_SUCCESS &&
           up->data.type == MSGPACK_OBJECT_MAP;
}

/* The record's string field key into buf ("" if absent). */
static const char *rec_str(const msgpack_unpacked *up, bool have, const char *key, char *buf, size_t n)
{
    const msgpack_object *v = have ? sl_args_get(&up->data, key) : NULL;
    if (v && v->type == MSGPACK_OBJECT_STR)
        snprintf(buf, n, "%.*s", (int)v->via.str.size, v->via.str.ptr);
    else
        buf[0] = '\0';
    return buf;
}

/* What the command line asks for. */
typedef struct job_args {
    const char *id;
    const char *config;
    bool json;
    long limit;
    char **queues;    /* owned array of borrowed names (--queue) */
    size_t nqueues;
} job_args;

/* Parses the command line into *a; returns -1 to go on, else the exit status. */
static int parse_args(int argc, char **argv, job_args *a)
{
    memset(a, 0, sizeof *a);
    a->limit = LOCATE_LIMIT;
    a->queues = sl_xcalloc((size_t)argc + 1, sizeof *a->queues);
    int c;
    sl_opts_parser op;
    const char *optval;
    sl_opts_begin(&op, &cmd_opts, argc, argv);
    while ((c = sl_opts_next(&op, &optval)) != SL_OPTS_END) {
        char *end;
        switch (c) {
        case 'J': a->json = true; break;
        case 'q':
            if (!sl_envelope_queue_valid(optval))
                return cli_usage_error(CMD, "invalid queue name '%s'", optval);
            a->queues[a->nqueues++] = optarg;   /* the same string, not const */
            break;
        case 'L':
            a->limit = strtol(optval, &end, 10);
            if (*optval == '\0' || *end != '\0' || a->limit < 1 || a->limit > 100000000)
                return cli_usage_error(CMD, "--scan-limit: expected a number from 1 to 100000000, got '%s'",
                                       optval);
            break;
        case 'c': a->config = optval; break;
        default: return op.status;
        }
    }
    if (optind >= argc)
        return cli_usage_error(CMD, "missing job ID");
    if (optind + 1 < argc)
        return cli_usage_error(CMD, "unexpected argument '%s'", argv[optind + 1]);
    a->id = argv[optind];
    return -1;
}

/* What is known of the job: its record and where Redis has it. */
typedef struct job_view {
    bool recorded;          /* PostgreSQL has a row */
    bool parsed;            /* ... and it was parsed into up */
    sl_buf json;            /* the row as JSON text */
    msgpack_sbuffer sb;
    msgpack_unpacked up;
    char status[32];        /* the row's status ("" without a row) */
    bool final;             /* succeeded, dead or cancelled */
    locate_result where;    /* LOC_NOWHERE unless Redis was asked and has it */
    size_t searched;        /* queues searched */
    const char *state;      /* the answer */
    int exit_status;
} job_view;

/* Fills v from PostgreSQL and, unless the job succeeded or was cancelled,
 * Redis.  Returns -1 after printing the error. */
static int gather(const sl_config *cfg, const job_args *a, job_view *v)
{
    sl_err err;
    int rc = -1;
    sl_redis *redis = NULL;
    char **queues = NULL;
    sl_store *store = sl_store_connect(cfg->database_url, &err);
    if (store == NULL) {
        cli_fail(CMD, "%s", err.msg);
        goto out;
    }
    v->recorded = true;
    if (sl_store_job_json(store, a->id, &v->json, &err) < 0) {
        if (err.code != SL_ENOTFOUND) {
            cli_fail(CMD, "%s", err.msg);
            goto out;
        }
        v->recorded = false;
    }
    v->parsed = v->recorded && parse_record(&v->json, &v->sb, &v->up);
    char rqueue[SL_NAME_MAX + 1];
    rec_str(&v->up, v->parsed, "status", v->status, sizeof v->status);
    rec_str(&v->up, v->parsed, "queue", rqueue, sizeof rqueue);
    v->final = strcmp(v->status, "succeeded") == 0 || strcmp(v->status, "dead") == 0 ||
               strcmp(v->status, "cancelled") == 0;
    /* Redis is asked unless the answer is a success or a cancellation; for
     * a dead job only its dead letter, for the entry to retry. */
    if (!v->final || strcmp(v->status, "dead") == 0) {
        if ((redis = sl_redis_connect(cfg->redis_url, 5000, &err)) == NULL ||
            search_queues(redis, a->queues, a->nqueues, rqueue[0] ? rqueue : NULL, &queues, &v->searched,
                          &err) < 0 ||
            locate_job(redis, a->id, queues, v->searched, a->limit, v->final, &v->where, &err) < 0) {
            cli_fail(CMD, "%s", err.msg);
            goto out;
        }
    }
    rc = 0;
out:
    for (size_t i = 0; queues && i < v->searched; i++)
        free(queues[i]);
    free(queues);
    sl_redis_free(redis);
    sl_store_free(store);
    return rc;
}

/* The state and exit status from what was gathered. */
static void decide(job_view *v)
{
    if (v->final)
        v->state = v->status;
    else if (v->where.state != LOC_NOWHERE)
        v->state = locate_state_name(v->where.state);
    else if (v->recorded && v->status[0])
        v->state = v->status;   /* retrying/queued, in transit between keys */
    else
        v->state = "unknown";
    if (strcmp(v->state, "succeeded") == 0)
        v->exit_status = CLI_OK;
    else if (strcmp(v->state, "unknown") == 0)
        v->exit_status = EXIT_UNKNOWN;
    else if (v->final || v->where.state == LOC_DEAD)
        v->exit_status = EXIT_UNSUCCESSFUL;
    else
        v->exit_status = EXIT_PENDING;
}

/* The record's fields as stored (if any), then state and where. */
static void print_json(const job_args *a, const job_view *v)
{
    sl_buf out = SL_BUF_INIT, safe = SL_BUF_INIT;
    if (v->recorded && v->json.len >= 2 && v->json.data[v->json.len - 1] == '}') {
        sl_buf_append(&out, v->json.data, v->json.len - 1);
        sl_buf_puts(&out, ",");
    } else {
        sl_buf_puts(&out, "{\"id\":");
        sl_json_put_string(&out, a->id, strlen(a->id));
        sl_buf_puts(&out, ",");
    }
    sl_buf_puts(&out, "\"state\":");
    sl_json_put_string(&out, v->state, strlen(v->state));
    sl_buf_puts(&out, ",\"where\":");
    json_where(&out, &v->where);
    sl_buf_printf(&out, ",\"search_complete\":%s}\n", v->where.complete || v->final ? "true" : "false");
    sl_vis_json(&safe, out.data, out.len);
    fputs(sl_buf_str(&safe), stdout);
    sl_buf_free(&safe);
    sl_buf_free(&out);
}

static void print_human(const job_args *a, const job_view *v)
{
    printf("%-12s %s\n", "job", SL_VIS(a->id));
    printf("%-12s ", "state");
    if (v->where.state != LOC_NOWHERE) {
        if (v->final)
            printf("%s; ", v->state);
        print_where(&v->where, sl_now_ms());
    } else if (strcmp(v->state, "unknown") == 0) {
        printf("unknown: no result recorded, and not found in %zu queue%s%s\n", v->searched,
               v->searched == 1 ? "" : "s",
               v->where.complete ? "" : " (search incomplete: raise --scan-limit)");
    } else {
        printf("%s%s\n", v->state,
               v->recorded && !v->final ? " (its next attempt is moving between keys: ask again)" : "");
    }
    if (v->parsed)
        print_record(&v->up.data);
    else if (v->recorded && sl_vis_fputs(sl_buf_str(&v->json), stdout) >= 0)
        putchar('\n');
}

int cmd_job(int argc, char **argv)
{
    job_args a;
    int status = parse_args(argc, argv, &a);
    if (status >= 0) {
        free(a.queues);
        return status;
    }
    status = CLI_FAILED;
    job_view v;
    memset(&v, 0, sizeof v);
    msgpack_sbuffer_init(&v.sb);
    msgpack_unpacked_init(&v.up);
    sl_config *cfg = cli_load_config(CMD, a.config);
    if (cfg != NULL && gather(cfg, &a, &v) == 0) {
        decide(&v);
        if (a.json)
            print_json(&a, &v);
        else
            print_human(&a, &v);
        status = fflush(stdout) == 0 ? v.exit_status : CLI_FAILED;
    }
    msgpack_unpacked_destroy(&v.up);
    msgpack_sbuffer_destroy(&v.sb);
    sl_buf_free(&v.json);
    sl_config_free(cfg);
    free(a.queues);
    return status;
}
