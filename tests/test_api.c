/* test_api.c: the API server (`sluice serve`) over real sockets, against
 * the test Redis and PostgreSQL: authentication refusals (401 without or
 * with a bad, revoked or expired token, 403 without the scope, 429 after
 * repeated failures), problem+json errors, runs triggered and gates
 * decided as the authenticated principal (self-approval refused, a
 * principal's concurrent approvals counted once), idempotent enqueue, the
 * reads, slow clients and an unreachable database not starving /metrics
 * or leaking backend details, and HTTPS. */
#include "apiserver.h"
#include "harness.h"

#include "args.h"
#include "config.h"
#include "db.h"
#include "engine.h"
#include "jsonval.h"
#include "mem.h"
#include "queue.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

TH_REGISTER_CONFIG_SECTIONS

static char dir[64];     /* this test's pipelines and files */
static char *config;     /* its configuration */

/* Writes the configuration: pipelines in dir, generous rate limits, and
 * extra lines for the api: section. */
static void write_config(const char *api_extra, const char *top_extra)
{
    free(config);
    config = sl_xasprintf("%s/sluice.config", dir);
    char *text = sl_xasprintf("scheduler:\n  pipelines: %s\n"
                              "api:\n  rate_limit: 10000\n  rate_burst: 10000\n%s%s", dir,
                              api_extra ? api_extra : "", top_extra ? top_extra : "");
    th_write_file(config, text);
    free(text);
}

static void setup(void)
{
    th_migrate();
    snprintf(dir, sizeof dir, "/tmp/sluice-api-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    write_config(NULL, NULL);
}

static void teardown(void)
{
    free(config);
    config = NULL;
}

TestSuite(api, .init = setup, .fini = teardown, .timeout = 120);

static char *url_of(const th_server *s, const char *path)
{
    return sl_xasprintf("%s%s", s->url, path);
}

/* GET/POST shorthand: returns the reply for s + path. */
static th_http_reply call(const th_server *s, const char *method, const char *path, const char *token,
                          const char *body)
{
    char *u = url_of(s, path);
    th_http_reply r = th_http(method, u, token, body, NULL, NULL);
    free(u);
    return r;
}

/* Asserts r is a problem+json of status and type urn:sluice:problem:TYPE. */
static void expect_problem(const th_http_reply *r, long status, const char *type)
{
    cr_assert_eq(r->status, status, "want %ld, got %ld: %s", status, r->status, r->body);
    const char *ct = th_http_header(r, "Content-Type");
    cr_assert(ct && strcmp(ct, "application/problem+json") == 0, "content type %s", ct ? ct : "(none)");
    sl_jsonval j;
    sl_jsonval_init(&j, r->body);
    cr_assert(j.ok && j.up.data.type == MSGPACK_OBJECT_MAP, "not a JSON object: %s", r->body);
    char *t = NULL, *title = NULL;
    int64_t st = 0;
    cr_assert_eq(sl_args_str(&j.up.data, "type", true, &t, NULL), 0, "%s", r->body);
    cr_assert_eq(sl_args_str(&j.up.data, "title", true, &title, NULL), 0, "%s", r->body);
    cr_assert_eq(sl_args_int(&j.up.data, "status", true, 0, 100, 599, &st, NULL), 0, "%s", r->body);
    char *want = sl_xasprintf("urn:sluice:problem:%s", type);
    cr_assert_str_eq(t, want, "%s", r->body);
    cr_assert_eq(st, status);
    free(want);
    free(t);
    free(title);
    sl_jsonval_free(&j);
}

/* A string member of the JSON object in text (caller frees), or NULL. */
static char *json_str(const char *text, const char *key)
{
    sl_jsonval j;
    sl_jsonval_init(&j, text);
    char *v = NULL;
    if (j.ok)
        sl_args_str(&j.up.data, key, false, &v, NULL);
    sl_jsonval_free(&j);
    return v;
}

static void pipeline(const char *name, const char *body)
{
    char *path = sl_xasprintf("%s/%s.yaml", dir, name);
    char *text = sl_xasprintf("name: %s\n%s", name, body);
    th_write_file(path, text);
    free(text);
    free(path);
}

Test(api, authentication_refusals)
{
    th_server s;
    th_serve_start(&s, config, false, NULL);
    char *reader = th_token(config, "rita", "read", NULL);
    char *revoked = th_token(config, "rex", "read", NULL);
    char *expired = th_token(config, "ed", "read", "1ms");

    /* no token */
    th_http_reply r = call(&s, "GET", "/v1/runs", NULL, NULL);
    expect_problem(&r, 401, "unauthorized");
    cr_assert(th_http_header(&r, "WWW-Authenticate"), "401 without a challenge");
    th_http_free(&r);
    /* a made-up token of the right shape, and garbage */
    r = call(&s, "GET", "/v1/runs", "slk_0123456789abcdef_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", NULL);
    expect_problem(&r, 401, "unauthorized");
    th_http_free(&r);
    r = call(&s, "GET", "/v1/runs", "not a token", NULL);
    expect_problem(&r, 401, "unauthorized");
    th_http_free(&r);
    /* a good token with one character changed */
    char *tampered = sl_xstrdup(reader);
    tampered[strlen(tampered) - 1] = tampered[strlen(tampered) - 1] == 'A' ? 'B' : 'A';
    r = call(&s, "GET", "/v1/runs", tampered, NULL);
    expect_problem(&r, 401, "unauthorized");
    th_http_free(&r);
    /* the good token reads, but may not approve, trigger or enqueue */
    r = call(&s, "GET", "/v1/runs", reader, NULL);
    cr_assert_eq(r.status, 200, "%s", r.body);
    th_http_free(&r);
    r = call(&s, "POST", "/v1/runs/x/gates/g/approve", reader, "{}");
    expect_problem(&r, 403, "forbidden");
    th_http_free(&r);
    r = call(&s, "POST", "/v1/pipelines/p/runs", reader, "{}");
    expect_problem(&r, 403, "forbidden");
    th_http_free(&r);
    r = call(&s, "POST", "/v1/queues/q/jobs", reader, "{\"kind\":\"noop\"}");
    expect_problem(&r, 403, "forbidden");
    th_http_free(&r);
    /* who am I: the token's user, whatever the client claims */
    char *u = url_of(&s, "/v1/whoami");
    r = th_http("GET", u, reader, NULL, "X-Sluice-User: admin", NULL);
    cr_assert_eq(r.status, 200, "%s", r.body);
    char *name = json_str(r.body, "name");
    cr_assert_str_eq(name, "rita");
    free(name);
    th_http_free(&r);
    free(u);
    /* revoked: listed as such, refused at once */
    char *id = sl_xstrndup(revoked + 4, 16);
    const char *rv[] = { SLUICE_BIN, "token", "revoke", id, "--config", config, NULL };
    th_result t = th_run(rv, NULL);
    cr_assert_eq(t.status, 0, "%s", t.err);
    th_result_free(&t);
    r = call(&s, "GET", "/v1/runs", revoked, NULL);
    expect_problem(&r, 401, "unauthorized");
    th_http_free(&r);
    const char *ls[] = { SLUICE_BIN, "token", "list", "--config", config, NULL };
    t = th_run(ls, NULL);
    cr_assert_eq(t.status, 0, "%s", t.err);
    cr_assert(strstr(t.out, id) && strstr(t.out, "revoked"), "%s", t.out);
    cr_assert(!strstr(t.out, revoked + 21), "token list must never show a secret:\n%s", t.out);
    th_result_free(&t);
    /* expired */
    usleep(50000);
    r = call(&s, "GET", "/v1/runs", expired, NULL);
    expect_problem(&r, 401, "unauthorized");
    th_http_free(&r);
    /* only hashes are stored */
    const char *tp[] = { reader };
    cr_assert_eq(th_pg_number("SELECT count(*) FROM sluice_api_tokens WHERE hash = $1 OR id = $1", 1, tp), 0);
    th_serve_stop(&s);
    free(id);
    free(tampered);
    free(reader);
    free(revoked);
    free(expired);
}

Test(api, token_command_usage)
{
    const char *bad[] = { SLUICE_BIN, "token", "create", "--user", "x", "--scopes", "read,fly", "--config", config, NULL };
    th_result t = th_run(bad, NULL);
    cr_assert_eq(t.status, 2, "%s", t.err);
    cr_assert(strstr(t.err, "unknown scope 'fly'"), "%s", t.err);
    th_result_free(&t);
    const char *noexp[] = { SLUICE_BIN, "token", "create", "--user", "x", "--scopes", "read", "--expires", "soon",
                            "--config", config, NULL };
    t = th_run(noexp, NULL);
    cr_assert_eq(t.status, 2, "%s", t.err);
    th_result_free(&t);
    const char *unknown[] = { SLUICE_BIN, "token", "revoke", "ffffffffffffffff", "--config", config, NULL };
    t = th_run(unknown, NULL);
    cr_assert_eq(t.status, 1, "%s", t.err);
    cr_assert(strstr(t.err, "no token"), "%s", t.err);
    th_result_free(&t);
}

Test(api, problems_limits_and_openapi)
{
    write_config("  max_body: 2048\n", NULL);
    th_server s;
    th_serve_start(&s, config, false, NULL);
    char *tok = th_token(config, "olga", "admin", NULL);
    th_http_reply r = call(&s, "GET", "/v1/nothing-here", tok, NULL);
    expect_problem(&r, 404, "not-found");
    th_http_free(&r);
    r = call(&s, "DELETE", "/v1/runs", tok, NULL);
    expect_problem(&r, 405, "method-not-allowed");
    cr_assert(th_http_header(&r, "Allow") && strstr(th_http_header(&r, "Allow"), "GET"), "%s", r.headers);
    th_http_free(&r);
    r = call(&s, "POST", "/v1/queues/q/jobs", tok, "{\"kind\": ");
    expect_problem(&r, 400, "bad-request");
    th_http_free(&r);
    r = call(&s, "POST", "/v1/queues/q/jobs", tok, "{\"kind\": \"no-such-kind\"}");
    expect_problem(&r, 422, "invalid");
    th_http_free(&r);
    r = call(&s, "POST", "/v1/pipelines/not-installed/runs", tok, "{}");
    expect_problem(&r, 404, "not-found");
    th_http_free(&r);
    char *big = sl_xmalloc(8192);
    memset(big, ' ', 8191);
    big[0] = '{';
    big[8190] = '}';
    big[8191] = '\0';
    r = call(&s, "POST", "/v1/queues/q/jobs", tok, big);
    expect_problem(&r, 413, "too-large");
    th_http_free(&r);
    free(big);
    r = call(&s, "GET", "/v1/runs/no-such-run", tok, NULL);
    expect_problem(&r, 404, "not-found");
    th_http_free(&r);
    /* the OpenAPI document, public and JSON, names the API's paths */
    r = call(&s, "GET", "/v1/openapi.json", NULL, NULL);
    cr_assert_eq(r.status, 200);
    char *version = json_str(r.body, "openapi");
    cr_assert(version && strncmp(version, "3.", 2) == 0, "%s", r.body);
    cr_assert(strstr(r.body, "/v1/runs/{run}/gates/{gate}/approve") && strstr(r.body, "Idempotency-Key"),
              "%s", r.body);
    free(version);
    th_http_free(&r);
    th_serve_stop(&s);
    free(tok);
}

Test(api, repeated_failures_are_throttled)
{
    write_config("  auth_failures: 3\n  auth_lockout: 60s\n", NULL);
    th_server s;
    th_serve_start(&s, config, false, NULL);
    char *good = th_token(config, "gus", "read", NULL);
    for (int i = 0; i < 3; i++) {
        th_http_reply r = call(&s, "GET", "/v1/runs", "slk_0123456789abcdef_BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB", NULL);
        expect_problem(&r, 401, "unauthorized");
        th_http_free(&r);
    }
    /* locked out: even a good token from this address waits */
    th_http_reply r = call(&s, "GET", "/v1/runs", good, NULL);
    expect_problem(&r, 429, "throttled");
    const char *retry = th_http_header(&r, "Retry-After");
    cr_assert(retry && atoi(retry) > 0 && atoi(retry) <= 60, "Retry-After: %s", retry ? retry : "(none)");
    th_http_free(&r);
    /* public endpoints still answer */
    r = call(&s, "GET", "/healthz", NULL, NULL);
    cr_assert_eq(r.status, 200, "%s", r.body);
    th_http_free(&r);
    /* the refusals are logged for the operator, with the address */
    char *log = th_read_file(s.log);
    cr_assert(log && strstr(log, "event=serve.auth_failed address=127.0.0.1"), "%s", log);
    free(log);
    th_serve_stop(&s);
    free(good);
}

/* Drives the run with an in-process engine until its gate is open: the
 * engine plays the leading scheduler, with the pipelines of the
 * configuration's scheduler.pipelines (this test's dir) installed, so it
 * accepts the run requested by name. */
static void open_gate(const char *run_id)
{
    sl_err err;
    sl_config *cfg = sl_config_load(config, &err);
    cr_assert_not_null(cfg, "%s", err.msg);
    sl_db *db = sl_db_connect(cfg->database_url, &err);
    cr_assert_not_null(db, "%s", err.msg);
    sl_redis *redis = th_redis();
    sl_pipeline **pipes = NULL;
    size_t npipes = 0;
    sl_yerrors perr = SL_YERRORS_INIT;
    cr_assert_eq(sl_pipelines_load_dir(sl_sched_config_of(cfg)->pipelines, sl_sched_config_of(cfg), &pipes, &npipes, &perr, &err), 0, "%s",
                 err.msg);
    cr_assert_eq(perr.n, 0, "%s", perr.msgs[0]);
    sl_yerrors_free(&perr);
    sl_engine *e = sl_engine_new(cfg, db, redis);
    sl_engine_set_pipelines(e, pipes, npipes);
    cr_assert_eq(sl_engine_start_queued(e, &err), 0, "%s", err.msg);
    cr_assert_eq(sl_engine_advance(e, run_id, &err), 0, "%s", err.msg);
    sl_engine_free(e);
    sl_pipelines_free(pipes, npipes);
    sl_redis_free(redis);
    sl_db_free(db);
    sl_config_free(cfg);
    const char *p[] = { run_id };
    cr_assert_eq(th_pg_number("SELECT count(*) FROM sluice_gates WHERE run_id = $1 AND status = 'open'", 1, p), 1);
}

typedef struct approver {
    const char *url;
    const char *token;
    long status;
} approver;

static void *approve_thread(void *arg)
{
    approver *a = arg;
    th_http_reply r = th_http("POST", a->url, a->token, "{\"comment\":\"same person, many clicks\"}", NULL, NULL);
    a->status = r.status;
    th_http_free(&r);
    return NULL;
}

Test(api, runs_and_decisions_are_the_principals)
{
    char name[64];
    th_name(name, sizeof name, "apigate");
    pipeline(name, "steps:\n"
                   "  - id: g\n"
                   "    approval: {approvers: [alice, bob, carol], required: 2}\n"
                   "  - {id: deploy, kind: noop, queue: api-never-run, needs: [g]}\n");
    th_server s;
    th_serve_start(&s, config, false, NULL);
    char *alice = th_token(config, "alice", "trigger,approve,read", NULL);
    char *bob = th_token(config, "bob", "approve,read", NULL);
    /* triggered by alice, whatever the body claims */
    char *path = sl_xasprintf("/v1/pipelines/%s/runs", name);
    th_http_reply r = call(&s, "POST", path, alice, "{\"vars\":{},\"triggered_by\":\"mallory\"}");
    cr_assert_eq(r.status, 201, "%s", r.body);
    char *run = json_str(r.body, "id");
    char *by = json_str(r.body, "triggered_by");
    cr_assert_not_null(run);
    cr_assert_str_eq(by, "alice");
    cr_assert(th_http_header(&r, "Location") && strstr(th_http_header(&r, "Location"), run));
    th_http_free(&r);
    open_gate(run);
    /* alice may not approve her own run */
    char *ap = sl_xasprintf("/v1/runs/%s/gates/g/approve", run);
    r = call(&s, "POST", ap, alice, "{}");
    expect_problem(&r, 409, "decision-refused");
    cr_assert(strstr(r.body, "self-approval"), "%s", r.body);
    th_http_free(&r);
    /* bob clicks eight times at once: one approval */
    char *u = url_of(&s, ap);
    approver a[8];
    pthread_t t[8];
    for (int i = 0; i < 8; i++) {
        a[i] = (approver){ u, bob, 0 };
        cr_assert_eq(pthread_create(&t[i], NULL, approve_thread, &a[i]), 0);
    }
    int ok = 0, refused = 0;
    for (int i = 0; i < 8; i++) {
        pthread_join(t[i], NULL);
        ok += a[i].status == 200;
        refused += a[i].status == 409;
    }
    cr_assert_eq(ok, 1, "one of bob's approvals counts");
    cr_assert_eq(refused, 7, "the others are refused");
    const char *p[] = { run };
    cr_assert_eq(th_pg_number("SELECT count(*) FROM sluice_audit WHERE run_id = $1 AND decision = 'approve'", 1, p), 1);
    cr_assert_eq(th_pg_number("SELECT count(*) FROM sluice_gates WHERE run_id = $1 AND status = 'open'", 1, p), 1);
    /* the gate, with its evidence and approvals, and the audit trail */
    char *gp = sl_xasprintf("/v1/runs/%s/gates/g", run);
    r = call(&s, "GET", gp, bob, NULL);
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert(strstr(r.body, "\"approvals\" : 1") || strstr(r.body, "\"approvals\":1"), "%s", r.body);
    cr_assert(strstr(r.body, "\"evidence\""), "%s", r.body);
    th_http_free(&r);
    char *aud = sl_xasprintf("/v1/runs/%s/audit", run);
    r = call(&s, "GET", aud, bob, NULL);
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert(strstr(r.body, "\"bob\"") && strstr(r.body, "\"alice\""), "%s", r.body);
    th_http_free(&r);
    /* a rejection needs a comment; bob's is recorded as bob's */
    char *rj = sl_xasprintf("/v1/runs/%s/gates/g/reject", run);
    r = call(&s, "POST", rj, bob, "{}");
    expect_problem(&r, 400, "bad-request");
    th_http_free(&r);
    th_serve_stop(&s);
    free(rj);
    free(aud);
    free(gp);
    free(u);
    free(ap);
    free(run);
    free(by);
    free(path);
    free(alice);
    free(bob);
}

Test(api, idempotent_enqueue)
{
    th_server s;
    th_serve_start(&s, config, false, NULL);
    char *tok = th_token(config, "upstream", "enqueue,read", NULL);
    char queue[64], key[80];
    th_name(queue, sizeof queue, "apiq");
    th_name(key, sizeof key, "order-4711");
    char *path = sl_xasprintf("/v1/queues/%s/jobs", queue);
    char *u = url_of(&s, path);
    char *hdr = sl_xasprintf("Idempotency-Key: %s", key);
    const char *body = "{\"kind\":\"noop\",\"args\":{\"n\":1}}";
    th_http_reply r1 = th_http("POST", u, tok, body, hdr, NULL);
    cr_assert_eq(r1.status, 202, "%s", r1.body);
    th_http_reply r2 = th_http("POST", u, tok, body, hdr, NULL);
    cr_assert_eq(r2.status, 200, "%s", r2.body);
    char *id1 = json_str(r1.body, "id"), *id2 = json_str(r2.body, "id");
    cr_assert_not_null(id1);
    cr_assert_str_eq(id1, id2, "the same key, the same job");
    sl_redis *redis = th_redis();
    long long len = 0, pending = 0;
    sl_err err;
    cr_assert_eq(sl_queue_depth(redis, queue, &len, &pending, &err), 0, "%s", err.msg);
    cr_assert_eq(len, 1, "one entry in the stream, not two");
    /* without a key, each POST is a new job */
    th_http_reply r3 = th_http("POST", u, tok, body, NULL, NULL);
    cr_assert_eq(r3.status, 202, "%s", r3.body);
    cr_assert_eq(sl_queue_depth(redis, queue, &len, &pending, &err), 0, "%s", err.msg);
    cr_assert_eq(len, 2);
    /* the same key for another queue is a conflict */
    char *other = sl_xasprintf("%s/v1/queues/%s-other/jobs", s.url, queue);
    th_http_reply r4 = th_http("POST", other, tok, body, hdr, NULL);
    expect_problem(&r4, 409, "idempotency-conflict");
    sl_redis_free(redis);
    th_http_free(&r1);
    th_http_free(&r2);
    th_http_free(&r3);
    th_http_free(&r4);
    th_serve_stop(&s);
    free(other);
    free(id1);
    free(id2);
    free(hdr);
    free(u);
    free(path);
    free(tok);
}

static int connect_to(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert(fd >= 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0, "connect: %s", strerror(errno));
    return fd;
}

Test(api, slow_clients_do_not_starve_metrics)
{
    write_config("  max_connections: 256\n  per_ip_connections: 200\n  connection_timeout: 60s\n"
                 "  request_deadline: 60s\n", NULL);
    th_server s;
    th_serve_start(&s, config, false, NULL);
    int fds[64];
    for (int i = 0; i < 64; i++) {
        fds[i] = connect_to(s.port);
        const char *partial = i % 2 ? "GET /metr" : "POST /v1/queues/q/jobs HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{";
        if (i % 3)
            cr_assert_eq(write(fds[i], partial, strlen(partial)), (ssize_t)strlen(partial));
    }
    for (int i = 0; i < 3; i++) {
        th_http_reply r = call(&s, "GET", "/metrics", NULL, NULL);
        cr_assert_eq(r.status, 200, "%s", r.body);
        cr_assert(strstr(r.body, "# TYPE sluice_queue_depth gauge"), "%s", r.body);
        th_http_free(&r);
    }
    for (int i = 0; i < 64; i++)
        close(fds[i]);
    th_serve_stop(&s);
}

/* With the per-address limit, one address holding slow connections cannot
 * lock out another (the scraper), whatever it opens. */
Test(api, one_address_cannot_take_every_connection)
{
    write_config("  max_connections: 64\n  per_ip_connections: 16\n  connection_timeout: 60s\n"
                 "  request_deadline: 60s\n", NULL);
    th_server s;
    th_serve_start(&s, config, false, NULL);
    int fds[64];
    for (int i = 0; i < 64; i++) {
        fds[i] = connect_to(s.port);   /* the kernel accepts; the server keeps 16 */
        const char *partial = "GET /metr";
        if (send(fds[i], partial, strlen(partial), MSG_NOSIGNAL) < 0)
            cr_log_info("write %d: %s", i, strerror(errno));   /* a refused one may be closed already */
    }
    th_http_source("127.0.0.2");
    th_http_reply r = call(&s, "GET", "/metrics", NULL, NULL);
    th_http_source(NULL);
    cr_assert_eq(r.status, 200, "%s", r.body);
    th_http_free(&r);
    for (int i = 0; i < 64; i++)
        close(fds[i]);
    th_serve_stop(&s);
}

Test(api, a_trickling_client_is_cut_at_the_deadline)
{
    write_config("  connection_timeout: 60s\n  request_deadline: 1s\n", NULL);
    th_server s;
    th_serve_start(&s, config, false, NULL);
    int fd = connect_to(s.port);
    /* one header byte at a time, never finishing: the idle timeout alone
     * would never fire */
    const char *req = "GET /metrics HTTP/1.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    bool closed = false;
    for (size_t i = 0; i < strlen(req) && !closed; i++) {
        if (write(fd, req + i, 1) != 1)
            closed = true;
        usleep(100000);
        struct timeval tv = { 0, 1000 };
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        char c;
        closed = closed || read(fd, &c, 1) == 0;
    }
    cr_assert(closed, "a request trickling for longer than request_deadline must be cut");
    close(fd);
    th_serve_stop(&s);
}

Test(api, unreachable_database_reveals_nothing)
{
    /* A PostgreSQL that accepts connections and never answers. */
    int silent = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(bind(silent, (struct sockaddr *)&a, sizeof a), 0);
    cr_assert_eq(listen(silent, 64), 0);
    socklen_t len = sizeof a;
    getsockname(silent, (struct sockaddr *)&a, &len);
    char port[16], dburl[128];
    snprintf(port, sizeof port, ":%d", ntohs(a.sin_port));   /* as host:port, not any run of digits */
    snprintf(dburl, sizeof dburl, "SLUICE_DATABASE_URL=postgresql://secretuser:hunter2@127.0.0.1%s/secretdb", port);
    const char *env[] = { dburl, NULL };
    th_server s;
    th_serve_start(&s, config, false, env);
    th_http_reply r = call(&s, "GET", "/healthz", NULL, NULL);
    cr_assert_eq(r.status, 503, "%s", r.body);
    cr_assert(strstr(r.body, "postgres: unavailable"), "%s", r.body);
    th_http_free(&r);
    /* /metrics answers (Redis is up) while the database cannot */
    r = call(&s, "GET", "/metrics", NULL, NULL);
    cr_assert_eq(r.status, 200, "%s", r.body);
    th_http_free(&r);
    const char *paths[] = { "/healthz", "/readyz", "/v1/runs", "/metrics" };
    for (size_t i = 0; i < 4; i++) {
        r = call(&s, "GET", paths[i], "slk_0123456789abcdef_CCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCC", NULL);
        cr_assert(r.status == 503 || r.status == 200, "%s: %ld", paths[i], r.status);
        cr_assert(!strstr(r.body, "127.0.0.1") && !strstr(r.body, port) && !strstr(r.body, "secretdb") &&
                  !strstr(r.body, "secretuser") && !strstr(r.body, "hunter2") && !strstr(r.body, "timeout expired") &&
                  !strstr(r.body, "connect_timeout"),
                  "%s leaks backend details: %s", paths[i], r.body);
        th_http_free(&r);
    }
    /* the operator still learns what is wrong, from the log, without the password */
    char *log = th_read_file(s.log);
    cr_assert(log && strstr(log, "serve.backend_down"), "%s", log);
    th_serve_stop(&s);
    free(log);
    close(silent);
}

Test(api, https_with_a_certificate)
{
    char *cert = sl_xasprintf("%s/tls.crt", dir), *key = sl_xasprintf("%s/tls.key", dir);
    char *cmd = sl_xasprintf("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1"
                             " -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 -keyout '%s' -out '%s'"
                             " 2>&1", key, cert);
    const char *sh[] = { "/bin/sh", "-c", cmd, NULL };
    th_result g = th_run(sh, NULL);
    cr_assert_eq(g.status, 0, "openssl: %s", g.out);
    th_result_free(&g);
    char *extra = sl_xasprintf("  tls_cert: %s\n  tls_key: %s\n", cert, key);
    write_config(extra, NULL);
    th_server s;
    th_serve_start(&s, config, true, NULL);
    char *u = url_of(&s, "/healthz");
    th_http_reply r = th_http("GET", u, NULL, NULL, NULL, cert);
    cr_assert_eq(r.status, 200, "%s", r.body);
    th_http_free(&r);
    /* the CLI reaches it too, trusting the certificate through SLUICE_API_CA */
    char *tok = th_token(config, "tina", "trigger,read", NULL);
    char *tenv = sl_xasprintf("SLUICE_TOKEN=%s", tok), *uenv = sl_xasprintf("SLUICE_API_URL=%s", s.url);
    char *cenv = sl_xasprintf("SLUICE_API_CA=%s", cert);
    pipeline("tls-pipe", "steps:\n  - {id: a, kind: noop, queue: api-tls-never}\n");
    const char *env[] = { tenv, uenv, cenv, NULL };
    const char *argv[] = { SLUICE_BIN, "run", "tls-pipe", "--config", config, NULL };
    th_result c = th_run(argv, env);
    cr_assert_eq(c.status, 0, "%s", c.err);
    th_result_free(&c);
    /* without trusting it: a TLS failure, not a silent downgrade */
    const char *noca[] = { tenv, uenv, "SLUICE_API_CA=", NULL };
    c = th_run(argv, noca);
    cr_assert_eq(c.status, 1, "%s", c.err);
    th_result_free(&c);
    th_serve_stop(&s);
    free(tenv);
    free(uenv);
    free(cenv);
    free(tok);
    free(u);
    free(extra);
    free(cmd);
    free(cert);
    free(key);
}

Test(api, cli_needs_a_token)
{
    const char *env[] = { "SLUICE_TOKEN=", "SLUICE_API_URL=http://127.0.0.1:1", NULL };
    const char *argv[] = { SLUICE_BIN, "approve", "r", "g", "--config", config, NULL };
    th_result c = th_run(argv, env);
    cr_assert_eq(c.status, 1, "%s", c.err);
    cr_assert(strstr(c.err, "SLUICE_TOKEN"), "%s", c.err);
    th_result_free(&c);
    const char *as[] = { SLUICE_BIN, "run", "p", "--as", "bob", "--config", config, NULL };
    c = th_run(as, env);
    cr_assert_eq(c.status, 2, "--as is gone: %s", c.err);
    th_result_free(&c);
}

/* `sluice ARGS…` (NULL-terminated) as the holder of token, against s. */
static th_result cli_as(const th_server *s, const char *token, const char *first, ...)
{
    const char *argv[16] = { SLUICE_BIN, first };
    int n = 2;
    va_list ap;
    va_start(ap, first);
    const char *a;
    while ((a = va_arg(ap, const char *)) != NULL && n < 13)
        argv[n++] = a;
    va_end(ap);
    argv[n++] = "--config";
    argv[n++] = config;
    argv[n] = NULL;
    char *t = sl_xasprintf("SLUICE_TOKEN=%s", token), *u = sl_xasprintf("SLUICE_API_URL=%s", s->url);
    const char *env[] = { t, u, NULL };
    th_result r = th_run(argv, env);
    free(t);
    free(u);
    return r;
}

Test(api, gates_mine_lists_what_the_principal_may_decide)
{
    char name[64], other[64];
    th_name(name, sizeof name, "apimine");
    th_name(other, sizeof other, "apiother");
    pipeline(name, "steps:\n"
                   "  - id: g\n"
                   "    approval: {approvers: [alice, bob, carol], required: 2}\n"
                   "  - {id: deploy, kind: noop, queue: api-never-run, needs: [g]}\n");
    pipeline(other, "steps:\n"
                    "  - id: h\n"
                    "    approval: {approvers: [dave]}\n"
                    "  - {id: deploy, kind: noop, queue: api-never-run, needs: [h]}\n");
    th_server s;
    th_serve_start(&s, config, false, NULL);
    char *alice = th_token(config, "alice", "trigger,approve,read", NULL);
    char *bob = th_token(config, "bob", "approve,read", NULL);
    char *dave = th_token(config, "dave", "approve,read", NULL);
    char *path = sl_xasprintf("/v1/pipelines/%s/runs", name);
    th_http_reply r = call(&s, "POST", path, alice, "{\"vars\":{}}");
    cr_assert_eq(r.status, 201, "%s", r.body);
    char *run = json_str(r.body, "id");
    th_http_free(&r);
    char *path2 = sl_xasprintf("/v1/pipelines/%s/runs", other);
    r = call(&s, "POST", path2, alice, "{\"vars\":{}}");
    cr_assert_eq(r.status, 201, "%s", r.body);
    char *run2 = json_str(r.body, "id");
    th_http_free(&r);
    open_gate(run);
    open_gate(run2);

    /* bob may decide run's gate, not run2's */
    th_result c = cli_as(&s, bob, "gates", "--mine", "--json", NULL);
    cr_assert_eq(c.status, 0, "%s%s", c.out, c.err);
    cr_assert(strstr(c.out, run) && strstr(c.out, "\"gate\""), "%s", c.out);
    cr_assert_null(strstr(c.out, run2), "dave's gate listed for bob: %s", c.out);
    th_result_free(&c);
    /* alice triggered the run and self-approval is off: nothing for her */
    c = cli_as(&s, alice, "gates", "--mine", "--json", NULL);
    cr_assert_eq(c.status, 0, "%s", c.err);
    cr_assert_null(strstr(c.out, run), "%s", c.out);
    cr_assert_null(strstr(c.out, run2), "%s", c.out);
    th_result_free(&c);
    /* --json alone: every open gate */
    c = cli_as(&s, alice, "gates", "--json", NULL);
    cr_assert_eq(c.status, 0, "%s", c.err);
    cr_assert(strstr(c.out, run) && strstr(c.out, run2), "%s", c.out);
    th_result_free(&c);
    /* once bob has approved, the gate is no longer his to decide; dave's text list shows his */
    char *ap = sl_xasprintf("/v1/runs/%s/gates/g/approve", run);
    r = call(&s, "POST", ap, bob, "{}");
    cr_assert_eq(r.status, 200, "%s", r.body);
    th_http_free(&r);
    c = cli_as(&s, bob, "gates", "--mine", NULL);
    cr_assert_eq(c.status, 0, "%s", c.err);
    /* (other tests share the database and may hold gates bob can decide) */
    cr_assert_null(strstr(c.out, run), "a gate bob already approved is still his: %s", c.out);
    th_result_free(&c);
    c = cli_as(&s, dave, "gates", "--mine", NULL);
    cr_assert_eq(c.status, 0, "%s", c.err);
    cr_assert(strstr(c.out, run2) && strstr(c.out, "gate h") && !strstr(c.out, run), "%s", c.out);
    th_result_free(&c);
    /* the API: mine must be true or false */
    r = call(&s, "GET", "/v1/gates?mine=yes", bob, NULL);
    expect_problem(&r, 400, "bad-request");
    th_http_free(&r);
    /* without a token the CLI says so and asks nothing */
    c = cli_as(&s, "", "gates", "--mine", NULL);
    cr_assert_eq(c.status, 1, "%s", c.err);
    cr_assert(strstr(c.err, "SLUICE_TOKEN"), "%s", c.err);
    th_result_free(&c);
    th_serve_stop(&s);
    free(ap);
    free(run);
    free(run2);
    free(path);
    free(path2);
    free(alice);
    free(bob);
    free(dave);
}

Test(api, open_prints_the_pages_address_and_refuses_other_paths)
{
    write_config("  public_url: https://sluice.example.com/ui/\n", NULL);
    const char *ok[][3] = {
        { "r1", NULL, "https://sluice.example.com/ui/runs/r1\n" },
        { "r1/deploy", NULL, "https://sluice.example.com/ui/runs/r1/gates/deploy\n" },
        { "r1", "deploy", "https://sluice.example.com/ui/runs/r1/gates/deploy\n" },
        /* anything else in a name is percent-encoded: one segment each */
        { "a?b#c", "<x y>", "https://sluice.example.com/ui/runs/a%3Fb%23c/gates/%3Cx%20y%3E\n" },
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        const char *argv[] = { SLUICE_BIN, "open", ok[i][0], ok[i][1] ? ok[i][1] : "--config",
                               ok[i][1] ? "--config" : config, ok[i][1] ? config : NULL, NULL };
        th_result c = th_run(argv, NULL);
        cr_assert_eq(c.status, 0, "%s", c.err);
        cr_assert_str_eq(c.out, ok[i][2]);
        th_result_free(&c);
    }
    /* names that would lead a browser elsewhere */
    const char *bad[][2] = { { "..", NULL }, { "r1/..", NULL }, { "r1/.", NULL }, { "r1", ".." },
                             { "r1/g/../../admin", NULL }, { "/r1", NULL }, { "r1/", NULL },
                             { "r1", "a/b" } };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *argv[] = { SLUICE_BIN, "open", bad[i][0], bad[i][1] ? bad[i][1] : "--config",
                               bad[i][1] ? "--config" : config, bad[i][1] ? config : NULL, NULL };
        th_result c = th_run(argv, NULL);
        cr_assert_eq(c.status, 2, "%s %s accepted: %s", bad[i][0], bad[i][1] ? bad[i][1] : "", c.out);
        cr_assert_str_eq(c.out, "", "nothing printed to stdout");
        cr_assert(strstr(c.err, "cannot name a page"), "%s", c.err);
        th_result_free(&c);
    }
    /* without public_url, the API's url */
    write_config(NULL, NULL);
    const char *argv[] = { SLUICE_BIN, "open", "r1", "--config", config, NULL };
    const char *env[] = { "SLUICE_API_URL=http://127.0.0.1:9464", NULL };
    th_result c = th_run(argv, env);
    cr_assert_eq(c.status, 0, "%s", c.err);
    cr_assert_str_eq(c.out, "http://127.0.0.1:9464/runs/r1\n");
    th_result_free(&c);
}
