/* cmd_enqueue.c: `sluice enqueue KIND …`: builds a wire-format v1 envelope
 * from the command line and appends it to the queue's stream. */
#include "cli.h"
#include "clock.h"
#include "duration.h"
#include "envelope.h"
#include "jobid.h"
#include "json.h"
#include "mem.h"
#include "queue.h"
#include "redis.h"
#include "registry.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CMD "enqueue"

static const sl_opt cmd_rows[] = {
    { 'q', "queue", 'q', "Q", "queue to add to (default: default)" },
    { 'a', "arg", 'a', "KEY=VALUE", "a string argument; repeatable; overrides --json keys" },
    { 'j', "json", 'j', "ARGS", "arguments as a JSON object, e.g. '{\"ms\": 250}'" },
    { 'I', "id", 0, "ID", "use this job id (1-128 of A-Z a-z 0-9 . _ : -) instead of\na new UUIDv7; enqueueing the same id twice runs it once" },
    { 'M', "max-attempts", 0, "N", "attempts before the job is dead (1-1000)" },
    { 'T', "timeout", 0, "DUR", "job timeout, e.g. 30s, 10m, 1h30m" },
    { 'U', "unique-key", 0, "K", "opaque key recorded with the job" },
    { 'c', "config", 'c', "FILE", "configuration file" },
    { 'h', "help", 'h', NULL, "show this help" },
    { 0 },
};

static const sl_opts cmd_opts = { "sluice enqueue",
    "Usage: sluice enqueue KIND [OPTIONS]\n"
    "\n"
    "Adds a job of KIND to a queue (a Redis stream) and prints its id.\n"
    "\n",
    "\nTry 'sluice enqueue --help'.", cmd_rows,
    "\n"
    "Known kinds: see 'sluice kinds'.\n", NULL };


typedef struct kv {
    char *key;
    char *value;
} kv;

/* Packs the args map: --json's keys (minus those --arg overrides) and the
 * --arg pairs (the last of repeated keys wins). */
static int pack_args(const char *json, kv *pairs, size_t npairs, msgpack_sbuffer *out, sl_err *err)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
    msgpack_sbuffer jbuf;
    msgpack_sbuffer_init(&jbuf);
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    int rc = -1;
    const msgpack_object_map *jmap = NULL;
    if (json) {
        msgpack_packer jpk;
        msgpack_packer_init(&jpk, &jbuf, msgpack_sbuffer_write);
        size_t off = 0;
        if (sl_json_to_msgpack(json, strlen(json), &jpk, err) < 0)
            goto out;
        if (msgpack_unpack_next(&up, jbuf.data, jbuf.size, &off) != MSGPACK_UNPACK_SUCCESS ||
            up.data.type != MSGPACK_OBJECT_MAP) {
            sl_err_set(err, SL_EINVAL, "expected a JSON object");
            goto out;
        }
        jmap = &up.data.via.map;
    }
    size_t count = 0;
    bool *skip = sl_xcalloc(jmap ? jmap->size + 1 : 1, sizeof *skip);
    bool *dup = sl_xcalloc(npairs + 1, sizeof *dup);
    for (size_t i = 0; i < npairs; i++) {
        for (size_t k = i + 1; k < npairs; k++)
            if (strcmp(pairs[i].key, pairs[k].key) == 0)
                dup[i] = true;
        count += !dup[i];
    }
    for (uint32_t j = 0; jmap && j < jmap->size; j++) {
        const msgpack_object *key = &jmap->ptr[j].key;
        for (size_t i = 0; i < npairs; i++) {
            if (key->type == MSGPACK_OBJECT_STR && key->via.str.size == strlen(pairs[i].key) &&
                memcmp(key->via.str.ptr, pairs[i].key, key->via.str.size) == 0)
                skip[j] = true;
        }
        count += !skip[j];
    }
    msgpack_pack_map(&pk, count);
    for (uint32_t j = 0; jmap && j < jmap->size; j++) {
        if (skip[j])
            continue;
        msgpack_pack_object(&pk, jmap->ptr[j].key);
        msgpack_pack_object(&pk, jmap->ptr[j].val);
    }
    for (size_t i = 0; i < npairs; i++) {
        if (dup[i])
            continue;
        size_t kl = strlen(pairs[i].key), vl = strlen(pairs[i].value);
        msgpack_pack_str(&pk, kl);
        msgpack_pack_str_body(&pk, pairs[i].key, kl);
        msgpack_pack_str(&pk, vl);
        msgpack_pack_str_body(&pk, pairs[i].value, vl);
    }
    free(skip);
    free(dup);
    rc = 0;
out:
    msgpack_unpacked_destroy(&up);
    msgpack_sbuffer_destroy(&jbuf);
    return rc;
}

static int parse_count(const char *text, long min, long max, long *out)
{
    char *end;
    long v = strtol(text, &end, 10);
    if (*text == '\0' || *end != '\0' || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

int cmd_enqueue(int argc, char **argv)
{
    const char *queue = "default", *json = NULL, *id = NULL, *config = NULL, *unique = NULL;
    long max_attempts = 0;
    int64_t timeout_ms = 0;
    kv *pairs = sl_xcalloc((size_t)argc, sizeof *pairs);
    size_t npairs = 0;
    int status = CLI_USAGE, c;
    sl_config *cfg = NULL;
    sl_redis *redis = NULL;
    msgpack_sbuffer args;
    msgpack_sbuffer_init(&args);
    sl_err err;
    sl_err_clear(&err);
    sl_opts_parser op;
    const char *optval;
    sl_opts_begin(&op, &cmd_opts, argc, argv);
    while ((c = sl_opts_next(&op, &optval)) != SL_OPTS_END) {
        switch (c) {
        case 'q': queue = optval; break;
        case 'j': json = optval; break;
        case 'I': id = optval; break;
        case 'c': config = optval; break;
        case 'U': unique = optval; break;
        case 'a': {
            const char *eq = strchr(optval, '=');
            if (eq == NULL || eq == optval) {
                status = cli_usage_error(CMD, "--arg: expected KEY=VALUE, got '%s'", optval);
                goto out;
            }
            pairs[npairs].key = sl_xstrndup(optval, (size_t)(eq - optval));
            pairs[npairs++].value = sl_xstrdup(eq + 1);
            break;
        }
        case 'M':
            if (parse_count(optval, 1, 1000, &max_attempts) < 0) {
                status = cli_usage_error(CMD, "--max-attempts: expected a number from 1 to 1000, got '%s'", optval);
                goto out;
            }
            break;
        case 'T':
            if (sl_duration_parse(optval, &timeout_ms, &err) < 0 || timeout_ms <= 0) {
                status = cli_usage_error(CMD, "--timeout: %s", timeout_ms <= 0 && err.code == SL_OK
                                         ? "must be longer than 0" : err.msg);
                goto out;
            }
            break;
        default:
            status = op.status;
            goto out;
        }
    }
    if (optind >= argc) {
        status = cli_usage_error(CMD, "missing KIND");
        goto out;
    }
    if (optind + 1 < argc) {
        status = cli_usage_error(CMD, "unexpected argument '%s'", argv[optind + 1]);
        goto out;
    }
    const char *kind = argv[optind];
    if (sl_registry_find(kind) == NULL) {
        status = cli_usage_error(CMD, "unknown kind '%s' (see 'sluice kinds')", kind);
        goto out;
    }
    if (!sl_envelope_queue_valid(queue)) {
        status = cli_usage_error(CMD, "--queue: invalid queue name '%s' (use 1-%d of A-Z a-z 0-9 _ . -)",
                                 queue, SL_NAME_MAX);
        goto out;
    }
    if (id && !sl_jobid_valid(id)) {
        status = cli_usage_error(CMD, "--id: invalid job id '%s' (use 1-%d of A-Z a-z 0-9 . _ : -)",
                                 id, SL_JOBID_MAX);
        goto out;
    }
    sl_err_clear(&err);
    if (pack_args(json, pairs, npairs, &args, &err) < 0) {
        status = cli_usage_error(CMD, "--json: %s", err.msg);
        goto out;
    }
    status = CLI_FAILED;
    if ((cfg = cli_load_config(CMD, config)) == NULL)
        goto out;
    char newid[37];
    if (id == NULL) {
        sl_jobid_new(newid);
        id = newid;
    }
    sl_job job = {
        .id = (char *)id, .kind = (char *)kind, .queue = (char *)queue,
        .args = args.data, .args_len = args.size, .attempt = 1,
        .max_attempts = max_attempts, .timeout_ms = timeout_ms,
        .enqueued_at = sl_now_ms(), .unique_key = (char *)unique,
    };
    if ((redis = sl_redis_connect(cfg->redis_url, 5000, &err)) == NULL ||
        sl_queue_enqueue(redis, &job, &err) < 0) {
        cli_fail(CMD, "%s", err.msg);
        goto out;
    }
    printf("%s\n", id);
    status = fflush(stdout) == 0 ? CLI_OK : CLI_FAILED;
out:
    for (size_t i = 0; i < npairs; i++) {
        free(pairs[i].key);
        free(pairs[i].value);
    }
    free(pairs);
    msgpack_sbuffer_destroy(&args);
    sl_redis_free(redis);
    sl_config_free(cfg);
    return status;
}
