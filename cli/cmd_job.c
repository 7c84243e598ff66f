/* cmd_job.c: `sluice job ID`: a job's record from PostgreSQL, for people
 * (aligned fields) or scripts (--json, the object as stored). */
#include "args.h"
#include "cli.h"
#include "json.h"
#include "mem.h"
#include "store.h"

#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CMD "job"

static void usage(FILE *f)
{
    fprintf(f,
        "Usage: sluice job ID [OPTIONS]\n"
        "\n"
        "Shows a finished job: status, attempts, timings, worker, arguments, outputs\n"
        "or error, and the history of its attempts.  Exits 1 if no result is\n"
        "recorded for ID (unknown, or still waiting or running).\n"
        "\n"
        "Options:\n"
        "      --json          print the record as one JSON object\n"
        "  -c, --config FILE   configuration file\n"
        "  -h, --help          show this help\n");
}

/* Prints one "label  value" line for a scalar field; objects as JSON. */
static void field(const msgpack_object *rec, const char *key, const char *label)
{
    const msgpack_object *v = sl_args_get(rec, key);
    if (v == NULL || v->type == MSGPACK_OBJECT_NIL)
        return;
    printf("%-12s ", label);
    if (v->type == MSGPACK_OBJECT_STR) {
        printf("%.*s\n", (int)v->via.str.size, v->via.str.ptr);
    } else if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        printf("%" PRIu64 "\n", v->via.u64);
    } else {
        sl_buf b = SL_BUF_INIT;
        if (sl_json_from_msgpack(v, &b, NULL) == 0)
            printf("%s\n", sl_buf_str(&b));
        else
            printf("?\n");
        sl_buf_free(&b);
    }
}

static void print_human(const msgpack_object *rec)
{
    field(rec, "id", "job");
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
        const msgpack_object *n = sl_args_get(a, "attempt"), *st = sl_args_get(a, "status"),
                             *fin = sl_args_get(a, "finished_at"), *w = sl_args_get(a, "worker"),
                             *e = sl_args_get(a, "error");
        printf("  #%" PRIu64 " %-10.*s %.*s %.*s%s%.*s\n",
               n && n->type == MSGPACK_OBJECT_POSITIVE_INTEGER ? n->via.u64 : 0,
               st && st->type == MSGPACK_OBJECT_STR ? (int)st->via.str.size : 1,
               st && st->type == MSGPACK_OBJECT_STR ? st->via.str.ptr : "?",
               fin && fin->type == MSGPACK_OBJECT_STR ? (int)fin->via.str.size : 0,
               fin && fin->type == MSGPACK_OBJECT_STR ? fin->via.str.ptr : "",
               w && w->type == MSGPACK_OBJECT_STR ? (int)w->via.str.size : 0,
               w && w->type == MSGPACK_OBJECT_STR ? w->via.str.ptr : "",
               e && e->type == MSGPACK_OBJECT_STR ? "  error: " : "",
               e && e->type == MSGPACK_OBJECT_STR ? (int)e->via.str.size : 0,
               e && e->type == MSGPACK_OBJECT_STR ? e->via.str.ptr : "");
    }
}

int cmd_job(int argc, char **argv)
{
    const char *config = NULL;
    bool as_json = false;
    int parsed = cli_simple_args(CMD, argc, argv, usage, &config, &as_json, 1, "job ID");
    if (parsed >= 0)
        return parsed;
    const char *id = argv[optind];
    sl_config *cfg = cli_load_config(CMD, config);
    if (cfg == NULL)
        return CLI_FAILED;
    sl_err err;
    sl_buf json = SL_BUF_INIT;
    int status = CLI_FAILED;
    sl_store *store = sl_store_connect(cfg->database_url, &err);
    if (store == NULL || sl_store_job_json(store, id, &json, &err) < 0) {
        cli_fail(CMD, "%s", err.msg);
        goto out;
    }
    if (as_json) {
        printf("%s\n", sl_buf_str(&json));
    } else {
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_unpacked up;
        msgpack_unpacked_init(&up);
        size_t off = 0;
        if (sl_json_to_msgpack(json.data, json.len, &pk, &err) == 0 &&
            msgpack_unpack_next(&up, sb.data, sb.size, &off) == MSGPACK_UNPACK_SUCCESS)
            print_human(&up.data);
        else
            printf("%s\n", sl_buf_str(&json));
        msgpack_unpacked_destroy(&up);
        msgpack_sbuffer_destroy(&sb);
    }
    status = fflush(stdout) == 0 ? CLI_OK : CLI_FAILED;
out:
    sl_buf_free(&json);
    sl_store_free(store);
    sl_config_free(cfg);
    return status;
}
