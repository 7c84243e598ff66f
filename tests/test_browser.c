/* test_browser.c: the web pages of `sluice serve` in a real browser —
 * Debian's headless Chromium, driven over the DevTools protocol by
 * puppeteer-core (tests/browser/run.js and its scenarios).
 *
 * This file prepares everything a person would meet: a database of its
 * own, a worker pool and a scheduler running two pipelines with approval
 * gates (one whose build prints a friendly log, one whose build prints,
 * and whose run variable carries, `<script>` and `"><img onerror=…>`), the
 * test OIDC identity provider (tests/browser/idp.js), `sluice serve` on a
 * port chosen beforehand (its configuration must name its own URL for the
 * OIDC redirect), API tokens for alice (who triggers), bob, carol and dave
 * (who approve), erin behind a trusted reverse proxy, and four runs
 * waiting at their gates.  It then runs node
 * on the scenarios and asserts on their report, and afterwards checks in
 * PostgreSQL what the pages claimed: the approved input reached the next
 * step, the race produced one approval, the forged cross-site POSTs decided
 * nothing, the OIDC user's decision is recorded as hers.  The screenshots
 * land in the build tree (browser-screenshots/NAME-{desktop,phone}.png).
 *
 * Missing Chromium, node or the npm packages fail the test with what to
 * install: CI installs them with scripts/deps.sh, and a skipped browser
 * test would pass silently. */
#include "apiserver.h"
#include "harness.h"

#include "args.h"
#include "buf.h"
#include "json.h"
#include "jsonval.h"
#include "mem.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef SLUICE_BUILD_DIR
#define SLUICE_BUILD_DIR "."
#endif

#define BROWSER_DIR SLUICE_SOURCE_DIR "/tests/browser"
#define GATE "go"
#define OIDC_USER "olivia"
#define PROXY_USER "erin"
#define BUILD_MARKER "compiled shop 1.4.2"
#define INSTRUCTIONS "Check the build log and the staging error rate"

static const char *const PAYLOADS[] = { "<script>alert(1)</script>", "\"><img src=x onerror=alert(1)>" };

static char dir[64];          /* this test's files */
static char db[96];           /* its private database */
static char queue[96];        /* its queue */
static char *config;
static char *shared_db_url;   /* DATABASE_URL of the test servers, for dropping ours */
static char *node;            /* the node binary */
static const char *chromium;  /* the Chromium binary */
static pid_t idp, pool, sched;
static th_server api;

/* The runs the scenarios work on (run.js's spec names them). */
enum { RUN_APPROVE, RUN_RACE, RUN_CSRF, RUN_HOSTILE, NRUNS };
static const char *const RUN_KEYS[NRUNS] = { "approve", "race", "csrf", "hostile" };
static char *runs[NRUNS];

static const char *const USERS[] = { "alice", "bob", "carol", "dave" };
#define NUSERS (sizeof USERS / sizeof USERS[0])
static char *tokens[NUSERS];

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "fopen %s: %s", path, strerror(errno));
    fputs(text, f);
    cr_assert_eq(fclose(f), 0);
}

/* Fails the test unless the browser's tools are there, saying how to get them. */
static void require_tools(void)
{
    const char *sh[] = { "/bin/sh", "-c", "command -v node", NULL };
    th_result r = th_run(sh, NULL);
    cr_assert(r.status == 0 && r.out[0] == '/',
              "the browser test needs node on PATH: run scripts/deps.sh (installs Debian's nodejs)");
    node = sl_xstrdup(r.out);
    node[strcspn(node, "\n")] = '\0';
    th_result_free(&r);
    chromium = getenv("SLUICE_CHROMIUM") ? getenv("SLUICE_CHROMIUM") : "/usr/bin/chromium";
    cr_assert(access(chromium, X_OK) == 0,
              "the browser test needs Chromium at %s: run scripts/deps.sh (installs Debian's chromium)", chromium);
    cr_assert(access(BROWSER_DIR "/node_modules/puppeteer-core/package.json", R_OK) == 0,
              "the browser test needs puppeteer-core in %s/node_modules: run scripts/deps.sh (npm ci there)",
              BROWSER_DIR);
}

/* Forks node SCRIPT ARGS..., stdout and stderr into log; dies with us. */
static pid_t start_node(const char *const *args, const char *log)
{
    pid_t pid = fork();
    cr_assert(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        int devnull = open("/dev/null", O_RDONLY);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        if (devnull >= 0)
            dup2(devnull, 0);
        const char *argv[16] = { node };
        for (size_t i = 0; args[i] && i < 14; i++)
            argv[i + 1] = args[i];
        execv(node, (char *const *)argv);
        _exit(127);
    }
    return pid;
}

static bool file_exists(void *arg) { return access(arg, R_OK) == 0; }

/* Starts the identity provider for a sluice whose callback is redirect;
 * returns its port. */
static int start_idp(const char *redirect, const char *secret_file)
{
    char *port_file = sl_xasprintf("%s/idp.port", dir), *log = sl_xasprintf("%s/idp.log", dir);
    const char *args[] = { BROWSER_DIR "/idp.js", "--port-file", port_file, "--client-id", "sluice",
                           "--client-secret-file", secret_file, "--redirect-uri", redirect,
                           "--user", OIDC_USER, "--groups", "release-leads", NULL };
    idp = start_node(args, log);
    bool up = th_wait(file_exists, port_file, 20000);
    char *text = th_read_file(up ? port_file : log);
    cr_assert(up, "the test identity provider did not start:\n%s", text ? text : "(no log)");
    int port = atoi(text);
    cr_assert_gt(port, 0);
    free(text);
    free(port_file);
    free(log);
    return port;
}

/* The pipelines: `release` with a friendly build, `hostile` whose build
 * output and run variable carry the hostile strings. */
static void write_pipelines(const char *pdir)
{
    static const char *const gate =
        "  - id: " GATE "\n"
        "    needs: [build]\n"
        "    approval:\n"
        "      approvers: [bob, carol, dave, " OIDC_USER ", " PROXY_USER "]\n"
        "      timeout: 24h\n"
        "      instructions: %s\n"
        "      inputs: [{name: percent, type: int, default: 10}]\n";
    char *g = sl_xasprintf(gate, INSTRUCTIONS " before rolling out ${{ vars.version }}.");
    char *release = sl_xasprintf("name: release\nvars: {version: \"0.0.0\"}\nsteps:\n"
                                 "  - {id: build, kind: deploy, queue: %s, args: {target: artifact}}\n%s"
                                 "  - {id: ship, kind: sleep, queue: %s, needs: [" GATE "],"
                                 " args: {ms: \"${{ gate." GATE ".inputs.percent }}\"}}\n", queue, g, queue);
    free(g);
    g = sl_xasprintf(gate, "'Review ticket ${{ vars.ticket }}'");
    char *hostile = sl_xasprintf("name: hostile\nvars: {ticket: \"none\"}\nsteps:\n"
                                 "  - {id: build, kind: deploy, queue: %s, args: {target: hostile}}\n%s", queue, g);
    char *p1 = sl_xasprintf("%s/release.yaml", pdir), *p2 = sl_xasprintf("%s/hostile.yaml", pdir);
    write_file(p1, release);
    write_file(p2, hostile);
    free(p1);
    free(p2);
    free(g);
    free(release);
    free(hostile);
}

/* An Ed25519 key pair for the API server's audit signatures (the Audit
 * page shows whether each row verifies). Returns the private key's path. */
static char *audit_keygen(void)
{
    char *priv = sl_xasprintf("%s/audit.key", dir), *pub = sl_xasprintf("%s/audit.pub", dir);
    const char *argv[] = { SLUICE_BIN, "audit", "keygen", "--private", priv, "--public", pub, NULL };
    th_result r = th_run(argv, NULL);
    cr_assert_eq(r.status, 0, "sluice audit keygen: %s", r.err);
    th_result_free(&r);
    free(pub);
    return priv;
}

static void write_config(int port, int idp_port, const char *secret_file)
{
    char *audit_key = audit_keygen();
    char *pdir = sl_xasprintf("%s/pipelines", dir);
    cr_assert_eq(mkdir(pdir, 0755), 0, "mkdir %s: %s", pdir, strerror(errno));
    write_pipelines(pdir);
    config = sl_xasprintf("%s/sluice.yaml", dir);
    char *text = sl_xasprintf(
        "worker:\n  block: 100ms\n"
        "scheduler:\n  reconcile: 1s\n  pipelines: %s\n"
        "deploy:\n  targets:\n"
        "    artifact:\n      type: command\n"
        "      command: [/usr/bin/printf, '" BUILD_MARKER " in 41 s\\ntests: 212 passed, 0 failed\\n']\n"
        "    hostile:\n      type: command\n"
        "      command: [/usr/bin/printf, '%%s %%s\\n', '%s', '%s']\n"
        "api:\n  rate_limit: 10000\n  rate_burst: 10000\n  audit_key_file: %s\n"
        "  public_url: http://127.0.0.1:%d\n"
        "  web:\n    session_ttl: 8h\n    proxy_header: X-Forwarded-User\n"
        "    proxy_groups_header: X-Forwarded-Groups\n    proxy_addresses: 127.0.0.1\n"
        "  oidc:\n    issuer: http://127.0.0.1:%d\n    client_id: sluice\n    client_secret_file: %s\n"
        "    redirect_url: http://127.0.0.1:%d/login/oidc/callback\n"
        "    user_claim: preferred_username\n    groups_claim: groups\n    allow_http: true\n",
        pdir, PAYLOADS[0], PAYLOADS[1], audit_key, port, idp_port, secret_file, port);
    write_file(config, text);
    free(text);
    free(audit_key);
    free(pdir);
}

static void start_scheduler(void)
{
    char *log = sl_xasprintf("%s/scheduler.log", dir), *pdir = sl_xasprintf("%s/pipelines", dir);
    sched = fork();
    cr_assert(sched >= 0);
    if (sched == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0)
            dup2(fd, 2);
        int devnull = open("/dev/null", O_RDWR);
        dup2(devnull, 0);
        dup2(devnull, 1);
        execl(SLUICE_SCHEDULER_BIN, SLUICE_SCHEDULER_BIN, "--config", config, "--pipelines", pdir, (char *)NULL);
        _exit(127);
    }
    free(log);
    free(pdir);
}

/* A string member of the JSON object text (caller frees), or NULL. */
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

/* Triggers pipeline as alice through the API with vars (a JSON object). */
static char *trigger(const char *pipeline, const char *vars)
{
    char *url = sl_xasprintf("%s/v1/pipelines/%s/runs", api.url, pipeline);
    char *body = sl_xasprintf("{\"vars\":%s}", vars);
    th_http_reply r = th_http("POST", url, tokens[0], body, NULL, NULL);
    cr_assert_eq(r.status, 201, "trigger %s: %ld %s", pipeline, r.status, r.body);
    char *id = json_str(r.body, "id");
    cr_assert_not_null(id, "%s", r.body);
    th_http_free(&r);
    free(body);
    free(url);
    return id;
}

static bool gate_open(void *arg)
{
    const char *p[] = { arg, GATE };
    return th_pg_number("SELECT count(*) FROM sluice_gates WHERE run_id = $1 AND gate_id = $2"
                        " AND status = 'open'", 2, p) == 1;
}

static void setup(void)
{
    require_tools();
    snprintf(dir, sizeof dir, "/tmp/sluice-browser-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    th_name(queue, sizeof queue, "bq");
    /* A database of its own: its own leader lock, and My gates shows only
     * this test's gates. */
    th_private_db(db, sizeof db, "browser");
    shared_db_url = sl_xstrdup(th_env("DATABASE_URL"));
    char *url = th_pg_url("sluice", db);
    setenv("SLUICE_DATABASE_URL", url, 1);
    setenv("DATABASE_URL", url, 1);
    free(url);

    int port = th_free_port();
    char *secret_file = sl_xasprintf("%s/oidc-client.secret", dir);
    write_file(secret_file, "test-client-secret-4f9c1e\n");
    char *redirect = sl_xasprintf("http://127.0.0.1:%d/login/oidc/callback", port);
    int idp_port = start_idp(redirect, secret_file);
    write_config(port, idp_port, secret_file);
    char *listen = sl_xasprintf("127.0.0.1:%d", port);
    th_serve_start_on(&api, config, listen, false, NULL);
    for (size_t i = 0; i < NUSERS; i++)
        tokens[i] = th_token(config, USERS[i], i == 0 ? "trigger,read" : "approve,read", NULL);
    char *pool_log = sl_xasprintf("%s/worker.log", dir);
    const char *args[] = { "--config", config, "--queues", queue, "--processes", "2", NULL };
    pool = th_worker_start(args, pool_log);
    start_scheduler();

    for (int i = 0; i < NRUNS; i++) {
        if (i == RUN_HOSTILE) {
            sl_buf vars = SL_BUF_INIT;
            sl_buf_puts(&vars, "{\"ticket\":");
            char *both = sl_xasprintf("%s %s", PAYLOADS[0], PAYLOADS[1]);
            sl_json_put_string(&vars, both, strlen(both));
            sl_buf_puts(&vars, "}");
            runs[i] = trigger("hostile", sl_buf_str(&vars));
            free(both);
            sl_buf_free(&vars);
        } else {
            runs[i] = trigger("release", "{\"version\":\"1.4.2\"}");
        }
    }
    for (int i = 0; i < NRUNS; i++) {
        char *log = sl_xasprintf("%s/scheduler.log", dir);
        char *text = NULL;
        if (!th_wait(gate_open, runs[i], 30000))
            text = th_read_file(log);
        cr_assert_null(text, "the gate of run %s did not open; scheduler log:\n%s", runs[i], text);
        free(log);
    }
    free(pool_log);
    free(listen);
    free(redirect);
    free(secret_file);
}

static void stop(pid_t *pid, const char *what)
{
    if (*pid > 0) {
        int st = th_stop(*pid, SIGTERM, 20000);
        cr_expect_eq(st, 0, "%s did not stop cleanly (%d)", what, st);
        *pid = 0;
    }
}

static void teardown(void)
{
    if (api.pid > 0)
        th_serve_stop(&api);
    api.pid = 0;
    stop(&sched, "the scheduler");
    stop(&pool, "the worker pool");
    stop(&idp, "the identity provider");
    if (shared_db_url) {
        /* dropped from the shared database: not while connected to it */
        setenv("DATABASE_URL", shared_db_url, 1);
        th_private_db_drop(db);
    }
    free(shared_db_url);
    for (size_t i = 0; i < NUSERS; i++)
        free(tokens[i]);
    for (int i = 0; i < NRUNS; i++)
        free(runs[i]);
    free(config);
    free(node);
}

TestSuite(browser, .init = setup, .fini = teardown, .timeout = 600);

/* The spec run.js reads (see its header). */
static char *write_spec(const char *shots, const char *report)
{
    sl_buf b = SL_BUF_INIT;
    sl_buf_printf(&b, "{\"base\":\"%s\",\"idp\":\"http://127.0.0.1:", api.url);
    char *port_file = sl_xasprintf("%s/idp.port", dir);
    char *port = th_read_file(port_file);
    sl_buf_printf(&b, "%d\",\"chromium\":", atoi(port));
    sl_json_put_string(&b, chromium, strlen(chromium));
    sl_buf_puts(&b, ",\"screenshots\":");
    sl_json_put_string(&b, shots, strlen(shots));
    sl_buf_puts(&b, ",\"report\":");
    sl_json_put_string(&b, report, strlen(report));
    sl_buf_printf(&b, ",\"queue\":\"%s\",\"oidc_user\":\"" OIDC_USER "\",\"proxy_user\":\"" PROXY_USER "\","
                  "\"tokens\":{", queue);
    for (size_t i = 0; i < NUSERS; i++)
        sl_buf_printf(&b, "%s\"%s\":\"%s\"", i ? "," : "", USERS[i], tokens[i]);
    sl_buf_puts(&b, "},\"runs\":{");
    for (int i = 0; i < NRUNS; i++) {
        sl_buf_printf(&b, "%s\"%s\":{\"run\":\"%s\",\"gate\":\"" GATE "\",\"pipeline\":\"%s\","
                      "\"instructions\":\"" INSTRUCTIONS "\",\"build_marker\":\"" BUILD_MARKER "\"}",
                      i ? "," : "", RUN_KEYS[i], runs[i], i == RUN_HOSTILE ? "hostile" : "release");
    }
    sl_buf_puts(&b, "},\"payloads\":[");
    for (size_t i = 0; i < sizeof PAYLOADS / sizeof PAYLOADS[0]; i++) {
        sl_buf_puts(&b, i ? "," : "");
        sl_json_put_string(&b, PAYLOADS[i], strlen(PAYLOADS[i]));
    }
    sl_buf_puts(&b, "]}\n");
    char *path = sl_xasprintf("%s/spec.json", dir);
    write_file(path, sl_buf_str(&b));
    sl_buf_free(&b);
    free(port);
    free(port_file);
    return path;
}

static long long db_number(const char *sql, const char *run)
{
    const char *p[] = { run };
    return th_pg_number(sql, 1, p);
}

/* What the pages claimed, checked where it is recorded. */
static void check_database(void)
{
    const char *a = runs[RUN_APPROVE];
    cr_expect_eq(db_number("SELECT count(*) FROM sluice_runs WHERE id = $1 AND status = 'succeeded'", a), 1,
                 "the approved run should have finished");
    cr_expect_eq(db_number("SELECT count(*) FROM sluice_run_steps WHERE run_id = $1 AND step_id = 'ship'"
                           " AND (outputs->>'slept_ms')::int = 25", a), 1,
                 "the input approved on the page (percent=25) should have reached step ship");
    cr_expect_eq(db_number("SELECT count(*) FROM sluice_audit WHERE run_id = $1 AND actor = 'bob'"
                           " AND decision = 'approve' AND comment = 'staging looks fine'", a), 1,
                 "bob's approval with his comment");
    cr_expect_eq(db_number("SELECT count(*) FROM sluice_audit WHERE run_id = $1 AND decision = 'approve'",
                           runs[RUN_RACE]), 1, "two approvers at once: one approval");
    const char *c = runs[RUN_CSRF];
    cr_expect_eq(db_number("SELECT count(*) FROM sluice_audit WHERE run_id = $1", c), 0,
                 "the forged cross-site POSTs must have decided nothing");
    cr_expect_eq(db_number("SELECT count(*) FROM sluice_gates WHERE run_id = $1 AND status = 'open'", c), 1,
                 "the gate the forged POSTs aimed at is still open");
    cr_expect_eq(db_number("SELECT count(*) FROM sluice_audit WHERE run_id = $1 AND actor = '" OIDC_USER "'"
                           " AND decision = 'approve'", runs[RUN_HOSTILE]), 1,
                 "the OIDC user's approval is recorded as hers");
}

/* The identity provider saw the whole flow, and refused nothing. */
static void check_idp_log(void)
{
    char *path = sl_xasprintf("%s/idp.log", dir);
    char *log = th_read_file(path);
    cr_expect(log && strstr(log, "event=authorize ok") && strstr(log, "event=token ok") &&
              strstr(log, "event=jwks ok"),
              "sluice should have used the authorization, token and JWKS endpoints:\n%s", log);
    cr_expect(log && !strstr(log, " refused"), "the identity provider refused a request from sluice:\n%s", log);
    free(log);
    free(path);
}

static void check_screenshots(const char *shots)
{
    static const char *const pages[] = { "login", "gates", "gate", "run", "runs", "audit", "queues" };
    static const char *const widths[] = { "desktop", "phone" };
    for (size_t i = 0; i < sizeof pages / sizeof pages[0]; i++) {
        for (size_t w = 0; w < 2; w++) {
            char *path = sl_xasprintf("%s/%s-%s.png", shots, pages[i], widths[w]);
            FILE *f = fopen(path, "rb");
            unsigned char magic[8] = { 0 };
            bool png = f && fread(magic, 1, 8, f) == 8 && memcmp(magic, "\x89PNG\r\n\x1a\n", 8) == 0;
            if (f)
                fclose(f);
            cr_expect(png, "no PNG screenshot %s", path);
            free(path);
        }
    }
}

Test(browser, scenarios_in_chromium)
{
    static const char *const scenarios[] = { "sign_in_token", "gate_evidence", "approve_with_input",
                                             "run_proceeds", "concurrent_refused", "csrf_cross_site",
                                             "proxy_sign_in", "oidc_sign_in", "hostile_inert", "sign_out",
                                             "screenshots" };
    char *shots = sl_xstrdup(SLUICE_BUILD_DIR "/browser-screenshots");
    char *report = sl_xasprintf("%s/report.json", dir);
    char *spec = write_spec(shots, report);
    const char *argv[] = { node, BROWSER_DIR "/run.js", spec, NULL };
    th_result r = th_run(argv, NULL);
    fprintf(stderr, "%s%s", r.out, r.err);
    char *text = th_read_file(report);
    cr_assert_not_null(text, "run.js wrote no report (exit %d):\n%s%s", r.status, r.out, r.err);
    for (size_t i = 0; i < sizeof scenarios / sizeof scenarios[0]; i++) {
        char *v = json_str(text, scenarios[i]);
        cr_expect(v && strcmp(v, "ok") == 0, "scenario %s: %s", scenarios[i], v ? v : "did not run");
        free(v);
    }
    cr_expect_eq(r.status, 0, "run.js exit %d:\n%s%s", r.status, r.out, r.err);
    th_result_free(&r);
    /* the proxy header from an address that is no proxy was ignored, and logged */
    char *log = th_read_file(api.log);
    cr_expect(log && strstr(log, "web.proxy_ignored address=127.0.0.3"),
              "sluice serve should log the ignored proxy header:\n%s", log);
    free(log);
    check_database();
    check_idp_log();
    check_screenshots(shots);
    free(text);
    free(spec);
    free(report);
    free(shots);
}
