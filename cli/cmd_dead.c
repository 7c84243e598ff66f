/* cmd_dead.c: `sluice dead QUEUE`: the queue's dead-letter entries, newest
 * last, with the error that put each there and what can be told of the job. */
#include "cli.h"
#include "envelope.h"
#include "json.h"
#include "log.h"
#include "queue.h"
#include "redis.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CMD "dead"

static void usage(FILE *f)
{
    fprintf(f,
        "Usage: sluice dead QUEUE [OPTIONS]\n"
        "\n"
        "Lists the entries in QUEUE's dead letter (stream sluice:{QUEUE}:dead): when\n"
        "each failed, why, and the job's id and kind when its envelope can be decoded.\n"
        "\n"
        "Options:\n"
        "  -n, --count N       show at most N entries (default 100)\n"
        "      --json          one JSON object per line\n"
        "  -c, --config FILE   configuration file\n"
        "  -h, --help          show this help\n");
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

static void print_entry(const char *entry_id, const redisReply *fields, bool as_json)
{
    const redisReply *job = field_of(fields, "job"), *error = field_of(fields, "error"),
                     *failed_at = field_of(fields, "failed_at");
    sl_job decoded;
    memset(&decoded, 0, sizeof decoded);
    sl_err err;
    bool ok = job && job->type == REDIS_REPLY_STRING &&
              sl_envelope_decode(job->str, job->len, &decoded, &err) == 0;
    const char *errtext = error && error->type == REDIS_REPLY_STRING ? error->str : "";
    long long at = failed_at && failed_at->type == REDIS_REPLY_STRING ? atoll(failed_at->str) : 0;
    if (as_json) {
        sl_buf b = SL_BUF_INIT;
        sl_buf_puts(&b, "{\"entry\":");
        sl_json_put_string(&b, entry_id, strlen(entry_id));
        sl_buf_printf(&b, ",\"failed_at_ms\":%lld,\"error\":", at);
        sl_json_put_string(&b, errtext, strlen(errtext));
        if (ok) {
            sl_buf_puts(&b, ",\"job\":");
            sl_json_put_string(&b, decoded.id, strlen(decoded.id));
            sl_buf_puts(&b, ",\"kind\":");
            sl_json_put_string(&b, decoded.kind, strlen(decoded.kind));
        }
        sl_buf_printf(&b, ",\"bytes\":%zu}", job && job->type == REDIS_REPLY_STRING ? job->len : 0);
        printf("%s\n", sl_buf_str(&b));
        sl_buf_free(&b);
    } else {
        char q[600];
        if (ok)
            printf("%s  job=%s kind=%s  error=%s\n", entry_id, decoded.id, decoded.kind,
                   sl_log_quote(q, sizeof q, errtext));
        else
            printf("%s  (undecodable, %zu bytes)  error=%s\n", entry_id,
                   job && job->type == REDIS_REPLY_STRING ? job->len : 0,
                   sl_log_quote(q, sizeof q, errtext));
    }
    sl_job_clear(&decoded);
}

int cmd_dead(int argc, char **argv)
{
    static const struct option opts[] = {
        { "count", required_argument, NULL, 'n' },
        { "json", no_argument, NULL, 'J' },
        { "config", required_argument, NULL, 'c' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    const char *config = NULL, *count = "100";
    bool as_json = false;
    int c;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, ":n:c:h", opts, NULL)) != -1) {
        switch (c) {
        case 'n': count = optarg; break;
        case 'J': as_json = true; break;
        case 'c': config = optarg; break;
        case 'h': usage(stdout); return CLI_OK;
        case ':': return cli_usage_error(CMD, "option '%s' needs a value", argv[optind - 1]);
        default: return cli_usage_error(CMD, "unknown option '%s'", argv[optind - 1]);
        }
    }
    char *end;
    long n = strtol(count, &end, 10);
    if (*count == '\0' || *end != '\0' || n < 1 || n > 100000)
        return cli_usage_error(CMD, "--count: expected a number from 1 to 100000, got '%s'", count);
    if (optind >= argc)
        return cli_usage_error(CMD, "missing QUEUE");
    if (optind + 1 < argc)
        return cli_usage_error(CMD, "unexpected argument '%s'", argv[optind + 1]);
    const char *queue = argv[optind];
    if (!sl_envelope_queue_valid(queue))
        return cli_usage_error(CMD, "invalid queue name '%s'", queue);
    sl_config *cfg = cli_load_config(CMD, config);
    if (cfg == NULL)
        return CLI_FAILED;
    sl_err err;
    int status = CLI_FAILED;
    redisReply *rep = NULL;
    sl_redis *r = sl_redis_connect(cfg->redis_url, 5000, &err);
    char key[SL_KEY_MAX];
    sl_queue_key(key, queue, "dead");
    const char *cmd[] = { "XREVRANGE", key, "+", "-", "COUNT", count };
    if (r == NULL || (rep = sl_redis_command(r, 6, cmd, NULL, &err)) == NULL) {
        cli_fail(CMD, "%s", err.msg);
        goto out;
    }
    /* XREVRANGE gives newest first; print oldest first, like a log. */
    for (size_t i = rep->elements; i-- > 0;) {
        const redisReply *e = rep->element[i];
        if (e->type == REDIS_REPLY_ARRAY && e->elements == 2 && e->element[1]->type == REDIS_REPLY_ARRAY)
            print_entry(e->element[0]->str, e->element[1], as_json);
    }
    if (!as_json && rep->elements == 0)
        printf("dead letter of queue '%s' is empty\n", queue);
    status = fflush(stdout) == 0 ? CLI_OK : CLI_FAILED;
out:
    if (rep)
        freeReplyObject(rep);
    sl_redis_free(r);
    sl_config_free(cfg);
    return status;
}
