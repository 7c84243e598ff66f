/* cmd_workers.c: `sluice workers`: the worker pools that are alive, from
 * the registry each sluice-worker master keeps in Redis
 * (sluice:worker:<host>:<pid>, a JSON document rewritten every 2 s with a
 * 10 s expiry: see worker/supervise.h).  Keys are found with SCAN, never
 * KEYS, so a large Redis is not blocked.  Prints a table (one line per
 * master and per child) or, with --json, the documents as one JSON array. */
#include "args.h"
#include "buf.h"
#include "cli.h"
#include "json.h"
#include "mem.h"
#include "redis.h"
#include "snapshot.h"
#include "vis.h"

#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CMD "workers"

static const sl_opt rows[] = {
    { CLI_OPT_JSON_ID, "json", 0, NULL, "print the pools' documents as one JSON array" },
    CLI_ROW_CONFIG,
    CLI_ROW_HELP,
    { 0 },
};

static const sl_opts opts = CLI_OPTS("workers",
    "Usage: sluice workers [OPTIONS]\n"
    "\n"
    "Lists the running sluice-worker pools and their processes: host, pid,\n"
    "role, state, the job each process runs and for how long, jobs done and\n"
    "memory (RSS).  A pool appears within 2 s of starting and disappears when\n"
    "it stops (at most 10 s after its master died).\n"
    "\n",
    rows);

/* One registry document: its text and its parsed form. */
typedef struct doc {
    char *json;                /* as stored (owned) */
    msgpack_sbuffer packed;    /* its MessagePack form */
    msgpack_unpacked up;       /* parsed; up.data is the object */
} doc;

static bool doc_parse(doc *d, const char *text, size_t len)
{
    d->json = sl_xstrndup(text, len);
    msgpack_sbuffer_init(&d->packed);
    msgpack_unpacked_init(&d->up);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &d->packed, msgpack_sbuffer_write);
    size_t off = 0;
    return sl_json_to_msgpack(text, len, &pk, NULL) == 0 &&
           msgpack_unpack_next(&d->up, d->packed.data, d->packed.size, &off) == MSGPACK_UNPACK_SUCCESS &&
           d->up.data.type == MSGPACK_OBJECT_MAP;
}

static void doc_free(doc *d)
{
    free(d->json);
    msgpack_sbuffer_destroy(&d->packed);
    msgpack_unpacked_destroy(&d->up);
}

/* The string under key, as a NUL-terminated copy into buf ("-" if absent). */
static const char *str_field(const msgpack_object *o, const char *key, char *buf, size_t n)
{
    const msgpack_object *v = sl_args_get(o, key);
    if (v == NULL || v->type != MSGPACK_OBJECT_STR || v->via.str.size == 0)
        return "-";
    /* Anyone who can write to Redis can write a registry document: its
     * strings are shown visibly (vis.h). */
    return sl_vis_mem(buf, n, v->via.str.ptr, v->via.str.size);
}

/* The integer under key, or -1 if absent or null. */
static long long int_field(const msgpack_object *o, const char *key)
{
    const msgpack_object *v = sl_args_get(o, key);
    if (v && v->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
        return v->via.u64 > INT64_MAX ? INT64_MAX : (long long)v->via.u64;
    if (v && v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
        return v->via.i64;
    return -1;
}

static const char *fmt_duration(long long ms, char *buf, size_t n)
{
    if (ms < 0)
        return "-";
    if (ms < 1000)
        snprintf(buf, n, "%lldms", ms);
    else if (ms < 60000)
        snprintf(buf, n, "%.1fs", ms / 1000.0);
    else if (ms < 3600000)
        snprintf(buf, n, "%lldm%02llds", ms / 60000, ms / 1000 % 60);
    else
        snprintf(buf, n, "%lldh%02lldm", ms / 3600000, ms / 60000 % 60);
    return buf;
}

static const char *fmt_kb(long long kb, char *buf, size_t n)
{
    if (kb < 0)
        return "-";
    if (kb < 1024)
        snprintf(buf, n, "%lldK", kb);
    else if (kb < 1024 * 1024)
        snprintf(buf, n, "%.1fM", kb / 1024.0);
    else
        snprintf(buf, n, "%.1fG", kb / (1024.0 * 1024.0));
    return buf;
}

static const char *fmt_count(long long v, char *buf, size_t n)
{
    if (v < 0)
        return "-";
    snprintf(buf, n, "%lld", v);
    return buf;
}

#define ROW_FMT "%-20s %-8s %-7s %-10s %-38s %-10s %-9s %6s %8s\n"

static void print_table(const doc *docs, size_t n)
{
    printf(ROW_FMT, "HOST", "PID", "ROLE", "STATE", "JOB", "KIND", "FOR", "DONE", "RSS");
    size_t workers = 0;
    for (size_t i = 0; i < n; i++) {
        const msgpack_object *m = &docs[i].up.data;
        char host[256], pid[24], state[32], rss[24];
        str_field(m, "host", host, sizeof host);
        snprintf(pid, sizeof pid, "%lld", int_field(m, "pid"));
        printf(ROW_FMT, host, pid, "master", str_field(m, "state", state, sizeof state), "-", "-",
               "-", "-", fmt_kb(int_field(m, "rss_kb"), rss, sizeof rss));
        const msgpack_object *kids = sl_args_get(m, "children");
        if (kids == NULL || kids->type != MSGPACK_OBJECT_ARRAY)
            continue;
        for (uint32_t k = 0; k < kids->via.array.size; k++) {
            const msgpack_object *c = &kids->via.array.ptr[k];
            char job[160], kind[80], dur[32], done[24];
            snprintf(pid, sizeof pid, "%lld", int_field(c, "pid"));
            printf(ROW_FMT, host, pid, "worker", str_field(c, "state", state, sizeof state),
                   str_field(c, "job", job, sizeof job), str_field(c, "kind", kind, sizeof kind),
                   fmt_duration(int_field(c, "job_ms"), dur, sizeof dur),
                   fmt_count(int_field(c, "jobs_done"), done, sizeof done),
                   fmt_kb(int_field(c, "rss_kb"), rss, sizeof rss));
            workers++;
        }
    }
    printf("%zu pool%s, %zu worker process%s\n", n, n == 1 ? "" : "s", workers,
           workers == 1 ? "" : "es");
}

static int by_host_pid(const void *a, const void *b)
{
    const doc *x = a, *y = b;
    char hx[256], hy[256];
    int c = strcmp(str_field(&x->up.data, "host", hx, sizeof hx),
                   str_field(&y->up.data, "host", hy, sizeof hy));
    if (c)
        return c;
    long long px = int_field(&x->up.data, "pid"), py = int_field(&y->up.data, "pid");
    return (px > py) - (px < py);
}

/* Collects every registry document (snapshot.h) into *docs, parsed; ones
 * that are not documents a master wrote are ignored. */
static int collect(sl_redis *r, doc **docs, size_t *n, sl_err *err)
{
    char **texts = NULL;
    size_t ntexts = 0;
    int rc = snap_registry_docs(r, &texts, &ntexts, err);
    for (size_t i = 0; i < ntexts; i++) {
        *docs = sl_xrealloc(*docs, (*n + 1) * sizeof **docs);
        doc *d = &(*docs)[*n];
        memset(d, 0, sizeof *d);
        if (rc == 0 && doc_parse(d, texts[i], strlen(texts[i])))
            (*n)++;
        else
            doc_free(d);
        free(texts[i]);
    }
    free(texts);
    return rc;
}

int cmd_workers(int argc, char **argv)
{
    const char *config = NULL;
    bool as_json = false;
    int parsed = cli_simple_args(&opts, argc, argv, &config, &as_json, 0, NULL);
    if (parsed >= 0)
        return parsed;
    sl_config *cfg = cli_load_config(CMD, config);
    if (cfg == NULL)
        return CLI_FAILED;
    sl_err err;
    doc *docs = NULL;
    size_t n = 0;
    int status = CLI_FAILED;
    sl_redis *r = sl_redis_connect(cfg->redis_url, 5000, &err);
    if (r == NULL || collect(r, &docs, &n, &err) < 0) {
        cli_fail(CMD, "%s", err.msg);
        goto out;
    }
    if (n > 1)
        qsort(docs, n, sizeof *docs, by_host_pid);
    if (as_json) {
        sl_buf b = SL_BUF_INIT, safe = SL_BUF_INIT;
        sl_buf_putc(&b, '[');
        for (size_t i = 0; i < n; i++)
            sl_buf_printf(&b, "%s%s", i ? "," : "", docs[i].json);
        sl_buf_puts(&b, "]\n");
        sl_vis_json(&safe, b.data, b.len);
        fputs(sl_buf_str(&safe), stdout);
        sl_buf_free(&b);
        sl_buf_free(&safe);
    } else {
        print_table(docs, n);
    }
    status = fflush(stdout) == 0 ? CLI_OK : CLI_FAILED;
out:
    for (size_t i = 0; i < n; i++)
        doc_free(&docs[i]);
    free(docs);
    sl_redis_free(r);
    sl_config_free(cfg);
    return status;
}
