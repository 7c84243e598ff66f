/* kindtest.c: see kindtest.h. */
#include "kindtest.h"
#include "harness.h"

#include "config.h"
#include "config_jobs.h"
#include "config_worker.h"
#include "envelope.h"
#include "json.h"
#include "kind.h"
#include "mem.h"
#include "registry.h"

#include <criterion/criterion.h>
#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

static volatile sig_atomic_t cancelled;
static int cancel_after_ms;

static void on_alarm(int sig)
{
    (void)sig;
    cancelled = 1;
}

void th_cancel_after(int ms)
{
    cancel_after_ms = ms;
}

static sl_config *load_config(const char *yaml)
{
    char *path = th_write_temp("sluice.yaml", yaml);
    sl_err err;
    sl_worker_config_register();
    sl_config_jobs_register();
    sl_config *cfg = sl_config_load(path, &err);
    cr_assert_not_null(cfg, "test configuration does not load: %s\n%s", err.msg, yaml);
    unlink(path);
    free(path);
    return cfg;
}

th_call th_kind_call_msgpack(const char *kind, const char *config_yaml, const char *args,
                             size_t args_len, int64_t timeout_ms)
{
    static int curl_ready;
    if (!curl_ready) {
        cr_assert_eq(curl_global_init(CURL_GLOBAL_DEFAULT), CURLE_OK);
        curl_ready = 1;
    }
    const sl_kind *k = sl_registry_find(kind);
    cr_assert_not_null(k, "no kind %s", kind);
    sl_config *cfg = load_config(config_yaml);
    char id[64];
    th_name(id, sizeof id, "job");
    sl_job job = { .id = id, .kind = (char *)kind, .queue = "default", .args = (char *)args,
                   .args_len = args_len, .attempt = 1, .timeout_ms = timeout_ms };
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    cr_assert_eq(msgpack_unpack_next(&up, args, args_len, NULL), MSGPACK_UNPACK_SUCCESS);
    sl_buf out = SL_BUF_INIT;
    /* the job's time budget, as the worker gives it (worker/consumer.c) */
    sl_job_ctx ctx = { .job = &job, .args = &up.data, .cfg = cfg, .outputs = &out,
                       .cancelled = &cancelled,
                       .timeout_ms = sl_worker_job_timeout_ms(sl_worker_config_of(cfg), job.queue, timeout_ms) };
    cancelled = 0;
    if (cancel_after_ms > 0) {
        struct sigaction sa = { .sa_handler = on_alarm };
        sigemptyset(&sa.sa_mask);
        sa.sa_flags = SA_RESTART;
        cr_assert_eq(sigaction(SIGALRM, &sa, NULL), 0);
        struct itimerval it = { .it_value = { cancel_after_ms / 1000, (cancel_after_ms % 1000) * 1000 } };
        cr_assert_eq(setitimer(ITIMER_REAL, &it, NULL), 0);
        cancel_after_ms = 0;
    }
    th_call c;
    sl_err_clear(&c.err);
    c.rc = k->run(&ctx, &c.err);
    struct itimerval off = { { 0, 0 }, { 0, 0 } };
    (void)setitimer(ITIMER_REAL, &off, NULL);
    cr_assert(c.rc == 0 || c.rc == -1, "run returned %d", c.rc);
    if (c.rc != 0)
        cr_assert(c.err.msg[0] != '\0', "failure without a message");
    snprintf(c.id, sizeof c.id, "%s", id);
    c.outputs = out.len ? sl_buf_detach(&out) : sl_xstrdup("");
    sl_buf_free(&out);
    msgpack_unpacked_destroy(&up);
    sl_config_free(cfg);
    return c;
}

th_call th_kind_call(const char *kind, const char *config_yaml, const char *args_json,
                     int64_t timeout_ms)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    sl_err err;
    cr_assert_eq(sl_json_to_msgpack(args_json, strlen(args_json), &pk, &err), 0, "%s", err.msg);
    th_call c = th_kind_call_msgpack(kind, config_yaml, sb.data, sb.size, timeout_ms);
    msgpack_sbuffer_destroy(&sb);
    return c;
}

void th_call_free(th_call *c)
{
    free(c->outputs);
    c->outputs = NULL;
}

typedef struct final_row {
    const char *id;
} final_row;

static bool has_final_row(void *arg)
{
    const char *p[] = { ((final_row *)arg)->id };
    return th_pg_number("SELECT count(*) FROM sluice_jobs WHERE id = $1 AND status IN "
                        "('succeeded', 'failed', 'dead', 'cancelled')", 1, p) > 0;
}

static char *pg_text(const char *sql, const char *id)
{
    PGconn *c = th_pg();
    const char *p[] = { id };
    PGresult *res = PQexecParams(c, sql, 1, NULL, p, NULL, NULL, 0);
    cr_assert(PQresultStatus(res) == PGRES_TUPLES_OK, "%s: %s", sql, PQerrorMessage(c));
    char *v = sl_xstrdup(PQntuples(res) > 0 && !PQgetisnull(res, 0, 0) ? PQgetvalue(res, 0, 0) : "");
    PQclear(res);
    PQfinish(c);
    return v;
}

th_row th_kind_e2e(const char *kind, const char *config_yaml, const char *args_json, int max_attempts)
{
    th_migrate();
    char queue[64], id[64], log_name[64], attempts[16];
    th_name(queue, sizeof queue, kind);
    th_name(id, sizeof id, "e2e");
    th_name(log_name, sizeof log_name, "kindlog");
    char *yaml = sl_xasprintf("%s\nworker:\n  block: 100ms\n  batch: 4\n  retry_initial: 100ms\n  retry_max: 1s\n", config_yaml);
    char *config = th_write_temp("sluice.yaml", yaml);
    snprintf(attempts, sizeof attempts, "%d", max_attempts);
    const char *enq[] = { SLUICE_BIN, "enqueue", kind, "--queue", queue, "--id", id, "--json",
                          args_json, "--config", config,
                          max_attempts > 0 ? "--max-attempts" : NULL, attempts, NULL };
    th_result r = th_run(enq, NULL);
    cr_assert_eq(r.status, 0, "enqueue: %s", r.err);
    th_result_free(&r);
    const char *wargs[] = { "--config", config, "--queues", queue, "--processes", "1", NULL };
    final_row fr = { id };
    char *what = sl_xasprintf("job %s of kind %s has no final row", id, kind);
    th_pool_until(wargs, log_name, has_final_row, &fr, what);
    free(what);
    unlink(config);
    free(config);
    free(yaml);
    th_row row;
    row.id = sl_xstrdup(id);
    row.status = pg_text("SELECT status FROM sluice_jobs WHERE id = $1", id);
    row.outputs = pg_text("SELECT outputs::text FROM sluice_jobs WHERE id = $1", id);
    row.error = pg_text("SELECT error FROM sluice_jobs WHERE id = $1", id);
    const char *p[] = { id };
    row.attempts = th_pg_number("SELECT count(*) FROM sluice_job_history WHERE job_id = $1", 1, p);
    return row;
}

void th_row_free(th_row *r)
{
    free(r->id);
    free(r->status);
    free(r->outputs);
    free(r->error);
}

char *th_tempdir(const char *prefix)
{
    char *path = sl_xasprintf("/tmp/sluice-%s-XXXXXX", prefix);
    cr_assert_not_null(mkdtemp(path), "mkdtemp: %s", strerror(errno));
    return path;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    (void)remove(path);
    return 0;
}

void th_rmtree(const char *path)
{
    if (path)
        (void)nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

int th_has(const char *haystack, const char *needle)
{
    return haystack != NULL && strstr(haystack, needle) != NULL;
}

int th_dir_entries(const char *dir)
{
    DIR *d = opendir(dir);
    cr_assert_not_null(d, "opendir %s: %s", dir, strerror(errno));
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(d);
    return n;
}

void th_expect_fail(th_call *c, int code, const char *text, const char *clean_dir)
{
    cr_assert_eq(c->rc, -1, "expected a failure, got outputs %s", c->outputs);
    cr_assert_eq(c->err.code, code, "error code %d, expected %d: %s", c->err.code, code, c->err.msg);
    cr_assert(th_has(c->err.msg, text), "'%s' lacks '%s'", c->err.msg, text);
    if (clean_dir)
        cr_assert_eq(th_dir_entries(clean_dir), 0, "%s is not empty after: %s", clean_dir, c->err.msg);
    th_call_free(c);
}
