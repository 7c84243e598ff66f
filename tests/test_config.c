/* test_config.c: loading etc/sluice.yaml (lib/config.c): values, defaults,
 * where the file comes from, environment overrides, and errors that point at
 * the right line and column.
 *
 * Every test runs in its own process (Criterion forks), so setenv/unsetenv
 * stay inside the test.  Files go to a fresh mkdtemp directory that the
 * fixture removes. */
#include <criterion/criterion.h>

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "config_api.h"
#include "config_jobs.h"
#include "config_sched.h"
#include "config_worker.h"
#include "harness.h"

TH_REGISTER_CONFIG_SECTIONS

static char dir[64];

static void setup(void)
{
    snprintf(dir, sizeof dir, "%s", "/tmp/sluice-config-XXXXXX");
    cr_assert_not_null(mkdtemp(dir), "mkdtemp: %s", strerror(errno));
    /* whatever the environment running the tests says */
    static const char *const vars[] = { "SLUICE_CONFIG", "SLUICE_REDIS_URL", "REDIS_URL",
                                        "SLUICE_DATABASE_URL", "DATABASE_URL" };
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        unsetenv(vars[i]);
}

static void teardown(void)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            unlinkat(dirfd(d), e->d_name, 0);
    }
    closedir(d);
    rmdir(dir);
}

TestSuite(config, .init = setup, .fini = teardown);

/* Writes text to dir/name; returns the path in a static buffer. */
static const char *write_file(const char *name, const char *text)
{
    static char path[128];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "fopen %s: %s", path, strerror(errno));
    fputs(text, f);
    cr_assert_eq(fclose(f), 0);
    return path;
}

static sl_config *load_ok(const char *text)
{
    sl_err err = { 0 };
    sl_config *cfg = sl_config_load(write_file("sluice.yaml", text), &err);
    cr_assert_not_null(cfg, "load failed: %s", err.msg);
    return cfg;
}

/* Asserts text is refused with "DIR/sluice.yaml:LINE:COL: …why…". */
static void load_bad(const char *text, int line, int col, const char *why)
{
    sl_err err = { 0 };
    char prefix[160];
    const char *path = write_file("sluice.yaml", text);
    snprintf(prefix, sizeof prefix, "%s:%d:%d: ", path, line, col);
    sl_config *cfg = sl_config_load(path, &err);
    cr_assert_null(cfg, "accepted:\n%s", text);
    cr_assert_eq(err.code, SL_ECONFIG);
    cr_assert(strncmp(err.msg, prefix, strlen(prefix)) == 0, "\"%s\" does not start with \"%s\"",
              err.msg, prefix);
    cr_assert(strstr(err.msg, why) != NULL, "\"%s\" lacks \"%s\"", err.msg, why);
}

static void assert_defaults(const sl_config *cfg)
{
    cr_assert_str_eq(cfg->redis_url, "redis://127.0.0.1:6379/0");
    cr_assert_str_eq(cfg->database_url, "postgresql://127.0.0.1:5432/sluice");
    cr_assert_eq(cfg->log_level, SL_LOG_INFO);
    cr_assert_eq(sl_worker_config_of(cfg)->processes, 2);
    cr_assert_eq(sl_worker_config_of(cfg)->nqueues, 1);
    cr_assert_str_eq(sl_worker_config_of(cfg)->queues[0], "default");
    cr_assert_eq(sl_worker_config_of(cfg)->batch, 1000);
    cr_assert_eq(sl_worker_config_of(cfg)->block_ms, 1000);
    cr_assert_eq(sl_worker_config_of(cfg)->shutdown_timeout_ms, 30000);
}

Test(config, all_keys)
{
    sl_config *cfg = load_ok("# every key\n"
                             "redis:\n"
                             "  url: redis://10.0.0.1:6380/2\n"
                             "database:\n"
                             "  url: \"postgresql://app@db/jobs?sslmode=require\"\n"
                             "log:\n"
                             "  level: debug\n"
                             "worker:\n"
                             "  processes: 1024\n"
                             "  queues:\n"
                             "    - mail\n"
                             "    - sms.high\n"
                             "    - Bulk_2-x\n"
                             "  batch: 1000\n"
                             "  block: 1m\n"
                             "  shutdown_timeout: 1h30m\n");
    cr_assert_str_eq(cfg->path, write_file("sluice.yaml", ""));
    cr_assert_str_eq(cfg->redis_url, "redis://10.0.0.1:6380/2");
    cr_assert_str_eq(cfg->database_url, "postgresql://app@db/jobs?sslmode=require");
    cr_assert_eq(cfg->log_level, SL_LOG_DEBUG);
    cr_assert_eq(sl_worker_config_of(cfg)->processes, 1024);
    cr_assert_eq(sl_worker_config_of(cfg)->nqueues, 3);
    cr_assert_str_eq(sl_worker_config_of(cfg)->queues[0], "mail");
    cr_assert_str_eq(sl_worker_config_of(cfg)->queues[1], "sms.high");
    cr_assert_str_eq(sl_worker_config_of(cfg)->queues[2], "Bulk_2-x");
    cr_assert_eq(sl_worker_config_of(cfg)->batch, 1000);
    cr_assert_eq(sl_worker_config_of(cfg)->block_ms, 60000);
    cr_assert_eq(sl_worker_config_of(cfg)->shutdown_timeout_ms, 5400000);
    sl_config_free(cfg);
}

Test(config, partial_file_keeps_other_defaults)
{
    sl_config *cfg = load_ok("worker:\n  batch: 1\n  block: 1ms\nlog: {level: error}\n");
    cr_assert_eq(sl_worker_config_of(cfg)->batch, 1);
    cr_assert_eq(sl_worker_config_of(cfg)->block_ms, 1);
    cr_assert_eq(cfg->log_level, SL_LOG_ERROR);
    cr_assert_eq(sl_worker_config_of(cfg)->processes, 2);
    cr_assert_str_eq(sl_worker_config_of(cfg)->queues[0], "default");
    cr_assert_str_eq(cfg->redis_url, "redis://127.0.0.1:6379/0");
    sl_config_free(cfg);
}

Test(config, empty_and_comment_only_files_are_defaults)
{
    static const char *const texts[] = { "", "# nothing\n\n   # at all\n", "---\n",
                                         "worker:\n  # processes: 8\n" };
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        sl_config *cfg = load_ok(texts[i]);
        assert_defaults(cfg);
        cr_assert_not_null(cfg->path);
        sl_config_free(cfg);
    }
}

Test(config, no_file_means_defaults)
{
    sl_config *cfg = sl_config_defaults();
    assert_defaults(cfg);
    cr_assert_null(cfg->path);
    sl_config_free(cfg);

    /* No path, no $SLUICE_CONFIG: the installed file if there is one. */
    const char *sys = SLUICE_SYSCONFDIR "/sluice/sluice.yaml";
    sl_err err = { 0 };
    cfg = sl_config_load(NULL, &err);
    if (access(sys, F_OK) == 0) {
        cr_assert_not_null(cfg, "%s", err.msg);
        cr_assert_str_eq(cfg->path, sys);
    } else {
        cr_assert_not_null(cfg, "%s", err.msg);
        cr_assert_null(cfg->path);
        assert_defaults(cfg);
    }
    sl_config_free(cfg);

    /* $SLUICE_CONFIG naming an empty file shuts the installed one out */
    setenv("SLUICE_CONFIG", write_file("empty.yaml", ""), 1);
    cfg = sl_config_load(NULL, &err);
    cr_assert_not_null(cfg, "%s", err.msg);
    cr_assert_str_eq(cfg->path, getenv("SLUICE_CONFIG"));
    assert_defaults(cfg);
    sl_config_free(cfg);
}

Test(config, file_search_order)
{
    sl_err err = { 0 };
    char env_path[128];
    snprintf(env_path, sizeof env_path, "%s", write_file("env.yaml", "worker: {batch: 5}\n"));
    setenv("SLUICE_CONFIG", env_path, 1);
    sl_config *cfg = sl_config_load(NULL, &err);
    cr_assert_not_null(cfg, "%s", err.msg);
    cr_assert_eq(sl_worker_config_of(cfg)->batch, 5);
    cr_assert_str_eq(cfg->path, env_path);
    sl_config_free(cfg);

    /* an explicit path beats $SLUICE_CONFIG */
    cfg = sl_config_load(write_file("arg.yaml", "worker: {batch: 7}\n"), &err);
    cr_assert_not_null(cfg, "%s", err.msg);
    cr_assert_eq(sl_worker_config_of(cfg)->batch, 7);
    sl_config_free(cfg);
}

Test(config, env_overrides_file)
{
    const char *text = "redis: {url: redis://file/1}\ndatabase: {url: postgresql://file/db}\n";
    sl_config *cfg = load_ok(text);
    cr_assert_str_eq(cfg->redis_url, "redis://file/1");
    cr_assert_str_eq(cfg->database_url, "postgresql://file/db");
    sl_config_free(cfg);

    setenv("REDIS_URL", "redis://plain/2", 1);
    setenv("DATABASE_URL", "postgresql://plain/db", 1);
    cfg = load_ok(text);
    cr_assert_str_eq(cfg->redis_url, "redis://plain/2");
    cr_assert_str_eq(cfg->database_url, "postgresql://plain/db");
    sl_config_free(cfg);

    setenv("SLUICE_REDIS_URL", "redis://sluice/3", 1);
    setenv("SLUICE_DATABASE_URL", "postgresql://sluice/db", 1);
    cfg = load_ok(text);
    cr_assert_str_eq(cfg->redis_url, "redis://sluice/3");
    cr_assert_str_eq(cfg->database_url, "postgresql://sluice/db");
    sl_config_free(cfg);

    /* an empty variable counts as unset */
    setenv("SLUICE_REDIS_URL", "", 1);
    cfg = load_ok(text);
    cr_assert_str_eq(cfg->redis_url, "redis://plain/2");
    sl_config_free(cfg);

    cfg = sl_config_defaults();
    cr_assert_str_eq(cfg->redis_url, "redis://plain/2");
    cr_assert_str_eq(cfg->database_url, "postgresql://sluice/db");
    sl_config_free(cfg);
}

Test(config, anchors_aliases_and_merge_keys)
{
    sl_config *cfg = load_ok("redis:\n"
                             "  url: &server redis://10.1.1.1:6379/0\n"
                             "worker:\n"
                             "  <<: {processes: 8, batch: 32, block: &wait 250ms}\n"
                             "  batch: 64\n"
                             "  queues: &qs [mail, sms]\n"
                             "  shutdown_timeout: *wait\n");
    cr_assert_str_eq(cfg->redis_url, "redis://10.1.1.1:6379/0");
    cr_assert_eq(sl_worker_config_of(cfg)->processes, 8);
    cr_assert_eq(sl_worker_config_of(cfg)->batch, 64, "the key written in the mapping wins");
    cr_assert_eq(sl_worker_config_of(cfg)->block_ms, 250);
    cr_assert_eq(sl_worker_config_of(cfg)->shutdown_timeout_ms, 250);
    cr_assert_eq(sl_worker_config_of(cfg)->nqueues, 2);
    cr_assert_str_eq(sl_worker_config_of(cfg)->queues[1], "sms");
    sl_config_free(cfg);
}

Test(config, shipped_file_loads_as_the_defaults)
{
    sl_err err = { 0 };
    sl_config *cfg = sl_config_load(SLUICE_SOURCE_DIR "/etc/sluice.yaml", &err);
    cr_assert_not_null(cfg, "%s", err.msg);
    assert_defaults(cfg);
    sl_config_free(cfg);
}

Test(config, yaml_syntax_error)
{
    load_bad("worker:\n  queues: [a, b\n  batch: 3\n", 3, 8, "did not find expected ',' or ']'");
    load_bad("worker:\n  batch: 1\n block: 1s\n", 3, 2, "did not find expected key");
}

Test(config, unknown_keys)
{
    load_bad("redis:\n  url: redis://x\nworkers:\n  batch: 1\n", 3, 1,
             "unknown key 'workers' at the top level (expected redis, database, log, metrics, worker, "
             "queues, deploy");
    load_bad("worker:\n  processes: 2\n  batch: 3\n  procesess: 4\n", 4, 3,
             "unknown key 'procesess' in 'worker' (expected processes, queues, batch, block, "
             "shutdown_timeout, visibility_timeout");
    load_bad("redis: {url: redis://x, timeout: 1s}\n", 1, 25, "unknown key 'timeout' in 'redis'");
}

Test(config, wrong_types)
{
    load_bad("worker:\n  batch: lots\n", 2, 10, "'worker.batch' must be an integer, got 'lots'");
    load_bad("worker:\n  queues:\n    mail: 1\n", 3, 5, "'worker.queues' must be a list, got a mapping");
    load_bad("worker:\n  queues: [mail, [sms]]\n", 2, 18, "'worker.queues[1]' must be a string, got a list");
    load_bad("worker: 4\n", 1, 9, "'worker' must be a mapping, got '4'");
    load_bad("redis:\n  url: {host: x}\n", 2, 8, "'redis.url' must be a string, got a mapping");
    load_bad("database:\n  url:\n", 2, 7, "'database.url' must be a string, got null");
    load_bad("database:\n  url: ''\n", 2, 8, "'database.url' must not be empty");
}

Test(config, out_of_range)
{
    load_bad("worker:\n  processes: 0\n", 2, 14, "'worker.processes' must be between 1 and 1024, got '0'");
    load_bad("worker:\n  processes: 1025\n", 2, 14, "'worker.processes' must be between 1 and 1024");
    load_bad("worker:\n  batch: 1001\n", 2, 10, "'worker.batch' must be between 1 and 1000, got '1001'");
    load_bad("worker:\n  batch: -1\n", 2, 10, "'worker.batch' must be between 1 and 1000");
    load_bad("worker:\n  block: 61s\n", 2, 10, "'worker.block' must be between 1ms and 1m, got '61s'");
    load_bad("worker:\n  block: 0ms\n", 2, 10, "'worker.block' must be between 1ms and 1m");
    load_bad("worker:\n  shutdown_timeout: 2d\n", 2, 21,
             "'worker.shutdown_timeout' must be between 0s and 1d, got '2d'");
}

Test(config, bad_duration)
{
    load_bad("worker:\n  block: 10\n", 2, 10, "'worker.block': ");
    load_bad("worker:\n  shutdown_timeout: 30 s\n", 2, 21, "'worker.shutdown_timeout': ");
}

Test(config, bad_queue_names)
{
    load_bad("worker:\n  queues: [ok, \"bad queue\"]\n", 2, 16,
             "'worker.queues[1]' is not a valid queue name: 'bad queue'");
    load_bad("worker:\n  queues:\n    - a{b}\n", 3, 7, "'worker.queues[0]' is not a valid queue name");
    load_bad("worker:\n  queues: []\n", 2, 11, "'worker.queues' must list at least one queue");
    load_bad("worker:\n  queues: [a, b, a]\n", 2, 18, "queue 'a' is listed twice");
    /* The first repeat in the order written is named, whatever the names. */
    load_bad("worker:\n  queues: [c, b, a, b, a]\n", 2, 21, "'worker.queues[3]': queue 'b' is listed twice");
}

Test(config, bad_log_level)
{
    load_bad("log:\n  level: verbose\n", 2, 10, "'log.level' must be debug, info, warn or error, got 'verbose'");
    load_bad("log:\n  level: INFO\n", 2, 10, "'log.level' must be debug, info, warn or error");
}

Test(config, top_level_must_be_a_mapping)
{
    load_bad("- redis\n- worker\n", 1, 1, "the top level must be a mapping");
    load_bad("just text\n", 1, 1, "the top level must be a mapping");
}

Test(config, duplicate_key)
{
    load_bad("worker:\n  batch: 1\n  batch: 2\n", 3, 3, "duplicate key 'batch' (first at line 2)");
}

/* Two spellings of one section that strcmp cannot tell apart: the second
 * would silently override the first.  Refused where it is written. */
Test(config, key_with_nul_byte)
{
    load_bad("worker:\n  batch: 1\n\"worker\\0\":\n  batch: 2\n", 3, 1,
             "mapping key 'worker?' contains a NUL byte");
    load_bad("worker:\n  batch: 1\n  \"batch\\0\": 2\n", 3, 3, "contains a NUL byte");
}

/* One typing rule with the pipelines (YAML 1.2 core schema): yes/no/on/off
 * are not booleans. */
Test(config, only_true_and_false_are_booleans)
{
    load_bad("metrics:\n  enabled: no\n", 2, 12, "'metrics.enabled' must be true or false, got 'no' "
             "(YAML 1.2: only true and false are booleans)");
    load_bad("metrics:\n  enabled: On\n", 2, 12, "got 'On'");
    sl_config *cfg = load_ok("metrics:\n  enabled: False\n");
    cr_assert(!cfg->metrics.enabled);
    sl_config_free(cfg);
}

Test(config, alias_bomb_is_refused, .timeout = 10)
{
    load_bad("a: &a [x, x, x, x, x, x, x, x, x, x]\n"
             "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
             "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
             "d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
             "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n"
             "f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n"
             "g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]\n"
             "h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g, *g]\n"
             "i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h, *h]\n", 5, 4,
             "aliases expand this to more than 100000 nodes");
}

Test(config, missing_explicit_file)
{
    sl_err err = { 0 };
    char path[128], want[256];
    snprintf(path, sizeof path, "%s/nope.yaml", dir);
    snprintf(want, sizeof want, "open %s: %s", path, strerror(ENOENT));
    cr_assert_null(sl_config_load(path, &err));
    cr_assert_eq(err.code, SL_ECONFIG);
    cr_assert_str_eq(err.msg, want);

    setenv("SLUICE_CONFIG", path, 1);
    cr_assert_null(sl_config_load(NULL, &err));
    cr_assert_str_eq(err.msg, want);
}

Test(config, metrics_keys)
{
    sl_config *cfg = load_ok("");
    cr_assert(cfg->metrics.enabled);
    cr_assert_str_eq(cfg->metrics.listen, "127.0.0.1:9464");
    cr_assert_eq(cfg->metrics.request_timeout_ms, 10000);
    cr_assert_eq(cfg->metrics.max_connections, 64);
    sl_config_free(cfg);
    cfg = load_ok("metrics:\n  enabled: false\n  listen: '[::1]:9100'\n  request_timeout: 3s\n"
                  "  max_connections: 8\n");
    cr_assert(!cfg->metrics.enabled);
    cr_assert_str_eq(cfg->metrics.listen, "[::1]:9100");
    cr_assert_eq(cfg->metrics.request_timeout_ms, 3000);
    cr_assert_eq(cfg->metrics.max_connections, 8);
    sl_config_free(cfg);
    load_bad("metrics:\n  enabled: maybe\n", 2, 12, "metrics.enabled");
    load_bad("metrics:\n  max_connections: 0\n", 2, 20, "'metrics.max_connections' must be between 1 and 10000");
    load_bad("metrics:\n  request_timeout: 10ms\n", 2, 20, "metrics.request_timeout");
}

/* queues.NAME.timeout: a job's limit is its own timeout_ms, else its
 * queue's, else worker.job_timeout. */
Test(config, queue_timeouts)
{
    sl_config *cfg = load_ok("worker:\n  job_timeout: 10m\n"
                             "queues:\n  deploys:\n    timeout: 1h\n  imports: {timeout: 90s}\n");
    cr_assert_eq(sl_worker_job_timeout_ms(sl_worker_config_of(cfg), "deploys", 0), 3600000);
    cr_assert_eq(sl_worker_job_timeout_ms(sl_worker_config_of(cfg), "imports", 0), 90000);
    cr_assert_eq(sl_worker_job_timeout_ms(sl_worker_config_of(cfg), "other", 0), 600000);
    cr_assert_eq(sl_worker_job_timeout_ms(sl_worker_config_of(cfg), "deploys", 5000), 5000);
    cr_assert_eq(sl_worker_job_timeout_ms(sl_worker_config_of(cfg), NULL, 0), 600000);
    sl_config_free(cfg);
    load_bad("queues:\n  deploys:\n    timout: 1h\n", 3, 5, "unknown key 'timout' in 'queues.deploys' (expected timeout, rate, concurrency)");
    load_bad("queues:\n  \"bad{name}\":\n    timeout: 1h\n", 2, 3, "invalid queue name 'bad{name}'");
    load_bad("queues:\n  deploys:\n    timeout: 60\n", 3, 14, "queues.deploys.timeout");
    load_bad("queues:\n  deploys: 1h\n", 2, 12, "queues.deploys");
}

Test(config, protected_kinds_targets_and_keys)
{
    sl_config *cfg = load_ok("worker:\n  protected_kinds: [provision, deploy]\n"
                             "  scheduler_public_keys: [/k/a.pub, /k/b.pub]\n"
                             "scheduler:\n  signing_key_file: /k/scheduler.key\n"
                             "deploy:\n  targets:\n    prod:\n      type: command\n      command: [/bin/true]\n"
                             "      protected: true\n    dev:\n      type: webhook\n"
                             "      url: https://x.example/hook\n");
    cr_assert_eq(sl_worker_config_of(cfg)->nprotected_kinds, 2);
    cr_assert_str_eq(sl_worker_config_of(cfg)->protected_kinds[1], "deploy");
    cr_assert_eq(sl_worker_config_of(cfg)->nscheduler_public_keys, 2);
    cr_assert_str_eq(sl_worker_config_of(cfg)->scheduler_public_keys[0], "/k/a.pub");
    cr_assert_str_eq(sl_sched_config_of(cfg)->signing_key_file, "/k/scheduler.key");
    cr_assert(sl_config_deploy_target(sl_config_jobs_of(cfg), "prod")->protected);
    cr_assert(!sl_config_deploy_target(sl_config_jobs_of(cfg), "dev")->protected, "protection is opt-in");
    sl_config_free(cfg);
    cfg = load_ok("worker:\n  batch: 2\n");
    cr_assert_eq(sl_worker_config_of(cfg)->nprotected_kinds, 0);
    cr_assert_null(sl_sched_config_of(cfg)->signing_key_file);
    sl_config_free(cfg);
    load_bad("worker:\n  protected_kinds: [Deploy]\n", 2, 21, "'worker.protected_kinds[0]' is not a valid kind name");
    load_bad("worker:\n  protected_kinds: [a, a]\n", 2, 24, "'a' is listed twice");
    load_bad("worker:\n  scheduler_public_keys: [\"\"]\n", 2, 27, "'worker.scheduler_public_keys[0]' must not be empty");
    load_bad("scheduler:\n  signing_key_file: \"\"\n", 2, 21, "'scheduler.signing_key_file' must not be empty");
    load_bad("deploy:\n  targets:\n    p:\n      type: command\n      command: [/bin/true]\n      protected: yes-ish\n",
             6, 18, "deploy.targets.p.protected");
}

Test(config, api_section)
{
    unsetenv("SLUICE_API_URL");
    unsetenv("SLUICE_API_CA");
    sl_config *cfg = load_ok("api:\n  url: https://sluice.internal:9464\n  threads: 8\n"
                             "  request_deadline: 5s\n  max_body: 4096\n"
                             "  jwt:\n    issuer: https://id.example\n    audience: sluice\n"
                             "    keys: /etc/jwks.json\n    user_claim: email\n    clock_skew: 30s\n");
    cr_assert_str_eq(sl_api_config_of(cfg)->url, "https://sluice.internal:9464");
    cr_assert_eq(sl_api_config_of(cfg)->threads, 8);
    cr_assert_eq(sl_api_config_of(cfg)->request_deadline_ms, 5000);
    cr_assert_eq(sl_api_config_of(cfg)->max_body, 4096);
    cr_assert_str_eq(sl_api_config_of(cfg)->jwt.issuer, "https://id.example");
    cr_assert_str_eq(sl_api_config_of(cfg)->jwt.user_claim, "email");
    cr_assert_str_eq(sl_api_config_of(cfg)->jwt.groups_claim, "groups");
    cr_assert_eq(sl_api_config_of(cfg)->jwt.clock_skew_ms, 30000);
    cr_assert_null(sl_api_config_of(cfg)->tls_cert);
    sl_config_free(cfg);
    setenv("SLUICE_API_URL", "http://127.0.0.1:1234", 1);
    cfg = load_ok("");
    cr_assert_str_eq(sl_api_config_of(cfg)->url, "http://127.0.0.1:1234");
    cr_assert_eq(sl_api_config_of(cfg)->auth_failures, 10);
    sl_config_free(cfg);
    unsetenv("SLUICE_API_URL");
    load_bad("api:\n  threads: 0\n", 2, 12, "api.threads");
    load_bad("api:\n  tls_cert: /x.crt\n", 2, 3, "go together");
    load_bad("api:\n  jwt:\n    issuer: x\n", 3, 5, "needs issuer, audience and keys");
    load_bad("api:\n  jwt:\n    issuer: x\n    audence: y\n", 4, 5, "unknown key 'audence'");
    load_bad("api:\n  clock_skew: 1s\n", 2, 3, "unknown key 'clock_skew' in 'api'");
    load_bad("api:\n  jwt:\n    issuer: x\n    audience: y\n    keys: z\n    clock_skew: 10m\n", 6, 17,
             "api.jwt.clock_skew");
}

/* worker.max_job_timeout caps a producer's timeout_ms (default 24h), never
 * the configured ones; 2^63-1 becomes the cap. */
Test(config, max_job_timeout_caps_the_envelopes_timeout)
{
    sl_config *cfg = sl_config_defaults();
    cr_assert_eq(sl_worker_job_timeout_ms(sl_worker_config_of(cfg), "q", INT64_MAX), 86400000);
    sl_config_free(cfg);
    cfg = load_ok("worker:\n  job_timeout: 2h\n  max_job_timeout: 1h\n");
    cr_assert_eq(sl_worker_job_timeout_ms(sl_worker_config_of(cfg), "q", INT64_MAX), 3600000);
    cr_assert_eq(sl_worker_job_timeout_ms(sl_worker_config_of(cfg), "q", 1000), 1000);
    cr_assert_eq(sl_worker_job_timeout_ms(sl_worker_config_of(cfg), "q", 0), 7200000, "the configured default is not capped");
    sl_config_free(cfg);
    load_bad("worker:\n  max_job_timeout: 8d\n", 2, 20, "worker.max_job_timeout");
}

/* ---- the section registry: components own their sections -------------- */

/* A component of the test's own: section x-probe holding one integer, with
 * an environment override, counting what the loader asked of it. */
typedef struct {
    int64_t value;
    char seen[32];     /* the section name its reader was given */
    bool env_applied;
} probe;

static int probe_destroyed;

static void *probe_create(void)
{
    probe *p = calloc(1, sizeof *p);
    cr_assert_not_null(p);
    p->value = 7;
    return p;
}

static void probe_destroy(void *data)
{
    probe_destroyed++;
    free(data);
}

static int probe_read(void *data, sl_ydoc *doc, const char *name, const sl_ynode *node, sl_err *err)
{
    probe *p = data;
    snprintf(p->seen, sizeof p->seen, "%s", name);
    return sl_ydoc_int(doc, node, "x-probe", 1, 100, &p->value, err);
}

static void probe_env(void *data)
{
    const char *v = getenv("SLUICE_TEST_PROBE");
    if (v != NULL)
        ((probe *)data)->value = atoi(v);
    ((probe *)data)->env_applied = true;
}

static const char *const probe_names[] = { "x-probe", NULL };
static const sl_config_section probe_section = {
    .names = probe_names, .create = probe_create, .destroy = probe_destroy, .read = probe_read,
    .env = probe_env,
};

Test(config, registered_section_is_read_by_its_owner)
{
    sl_config_register(&probe_section);
    sl_config_register(&probe_section);   /* idempotent */
    sl_err err = { 0 };
    sl_config *cfg = sl_config_load(write_file("sluice.yaml", "x-probe: 42\nworker: {batch: 3}\n"), &err);
    cr_assert_not_null(cfg, "%s", err.msg);
    probe *p = sl_config_part(cfg, &probe_section);
    cr_assert_eq(p->value, 42);
    cr_assert_str_eq(p->seen, "x-probe");
    cr_assert(p->env_applied);
    cr_assert_eq(sl_worker_config_of(cfg)->batch, 3, "the core's own sections still read");
    sl_config_free(cfg);
    cr_assert_eq(probe_destroyed, 1, "the part is freed with its config");

    /* absent from the file: the owner's defaults, then the environment */
    setenv("SLUICE_TEST_PROBE", "9", 1);
    cfg = sl_config_load(write_file("sluice.yaml", "log: {level: warn}\n"), &err);
    cr_assert_not_null(cfg, "%s", err.msg);
    cr_assert_eq(((probe *)sl_config_part(cfg, &probe_section))->value, 9);
    sl_config_free(cfg);
    unsetenv("SLUICE_TEST_PROBE");
    cfg = sl_config_defaults();
    cr_assert_eq(((probe *)sl_config_part(cfg, &probe_section))->value, 7);
    sl_config_free(cfg);
}

Test(config, registered_section_errors_keep_file_line_column)
{
    sl_config_register(&probe_section);
    load_bad("log: {level: info}\nx-probe: 500\n", 2, 10, "x-probe");
    load_bad("x-probe: 5\nx-prob: 5\n", 2, 1, "unknown key 'x-prob' at the top level");
    /* the registered names are listed among the expected ones */
    load_bad("x-prob: 5\n", 1, 1, "x-probe");
}

Test(config, unregistered_section_is_unknown_to_the_core)
{
    /* lib/config knows no component: until x-probe is registered, it is a typo */
    load_bad("x-probe: 5\n", 1, 1, "unknown key 'x-probe' at the top level");
    sl_config_register(&probe_section);
    sl_err err = { 0 };
    sl_config *cfg = sl_config_load(write_file("sluice.yaml", "x-probe: 5\n"), &err);
    cr_assert_not_null(cfg, "%s", err.msg);
    sl_config_free(cfg);
}

Test(config, another_programs_section_is_skipped_not_checked)
{
    static const char *const names[] = { "x-elsewhere", NULL };
    static const sl_config_section elsewhere = { .names = names };
    sl_config_register(&elsewhere);
    sl_err err = { 0 };
    sl_config *cfg = sl_config_load(write_file("sluice.yaml",
                                               "x-elsewhere: {anything: [1, 2], goes: here}\n"), &err);
    cr_assert_not_null(cfg, "%s", err.msg);
    cr_assert_null(sl_config_part(cfg, &elsewhere), "a skipped section holds no data");
    sl_config_free(cfg);
    load_bad("x-elsewere: {}\n", 1, 1, "unknown key 'x-elsewere' at the top level");
}

Test(config, part_of_an_unregistered_section_aborts, .signal = SIGABRT)
{
    sl_config *cfg = sl_config_defaults();
    sl_config_part(cfg, &probe_section);
    sl_config_free(cfg);
}

Test(config, two_owners_of_one_section_abort, .signal = SIGABRT)
{
    static const char *const names[] = { "x-other", "deploy", NULL };
    static const sl_config_section thief = { .names = names };
    sl_config_register(&thief);
}

/* A section of rows: every type of sl_config_key, read by the one reader
 * (sl_config_read_keys) that the core's and every component's sections use. */
typedef struct rows_probe {
    char *name;
    int count;
    int64_t big;
    int wait_ms;
    int64_t keep_ms;
    bool on;
    int parity;       /* a CUSTOM row: "even" or "odd" */
    int inner;        /* x-rows.sub.inner: a table inside the table */
} rows_probe;

static int read_parity(void *data, const sl_config_key *row, sl_ydoc *doc, const char *what,
                       const sl_ynode *node, sl_err *err)
{
    const char *s;
    if (sl_ydoc_str(doc, node, what, &s, err) < 0)
        return -1;
    if (strcmp(s, "even") != 0 && strcmp(s, "odd") != 0)
        return sl_ydoc_errorf(doc, node, err, "'%s' must be even or odd, got '%s'", what, s);
    *SL_CONFIG_FIELD(data, row, int) = strcmp(s, "odd") == 0;
    return 0;
}

static const sl_config_key rows_inner_keys[] = {
    SL_CONFIG_KEY("inner", SL_CONFIG_INT, rows_probe, inner, 1, 9),
};

static int read_rows_sub(void *data, const sl_config_key *row, sl_ydoc *doc, const char *what,
                         const sl_ynode *node, sl_err *err)
{
    (void)row;
    return sl_config_read_keys(rows_inner_keys, 1, data, doc, what, node, err);
}

static const sl_config_key rows_keys[] = {
    SL_CONFIG_KEY("name", SL_CONFIG_STRING, rows_probe, name, 0, 0),
    SL_CONFIG_KEY("count", SL_CONFIG_INT, rows_probe, count, 1, 10),
    SL_CONFIG_KEY("big", SL_CONFIG_INT64, rows_probe, big, 0, INT64_C(1) << 40),
    SL_CONFIG_KEY("wait", SL_CONFIG_DURATION, rows_probe, wait_ms, 1, 60000),
    SL_CONFIG_KEY("keep", SL_CONFIG_DURATION64, rows_probe, keep_ms, 0, 3650 * 86400000LL),
    SL_CONFIG_KEY("on", SL_CONFIG_BOOL, rows_probe, on, 0, 0),
    SL_CONFIG_KEY_FN("parity", rows_probe, parity, read_parity),
    SL_CONFIG_KEY_FN("sub", rows_probe, inner, read_rows_sub),
};

static void *rows_create(void)
{
    rows_probe *p = calloc(1, sizeof *p);
    cr_assert_not_null(p);
    p->count = 3;
    p->name = strdup("default");
    cr_assert_not_null(p->name);
    return p;
}

static void rows_destroy(void *data)
{
    free(((rows_probe *)data)->name);
    free(data);
}

static int rows_read(void *data, sl_ydoc *doc, const char *name, const sl_ynode *node, sl_err *err)
{
    return sl_config_read_keys(rows_keys, sizeof rows_keys / sizeof rows_keys[0], data, doc, name, node, err);
}

static const char *const rows_names[] = { "x-rows", NULL };
static const sl_config_section rows_section = {
    .names = rows_names, .create = rows_create, .destroy = rows_destroy, .read = rows_read,
};

Test(config, a_table_of_rows_reads_every_type_into_its_own_struct)
{
    sl_config_register(&rows_section);
    sl_config *cfg = load_ok("x-rows:\n  name: b\n  big: 1099511627776\n  wait: 1m\n"
                             "  keep: 3650d\n  on: true\n  parity: odd\n  sub: {inner: 9}\n");
    const rows_probe *p = sl_config_part(cfg, &rows_section);
    cr_assert_str_eq(p->name, "b", "the value replaces (and frees) the default");
    cr_assert_eq(p->count, 3, "a key not given keeps its default");
    cr_assert_eq(p->big, INT64_C(1) << 40);
    cr_assert_eq(p->wait_ms, 60000);
    cr_assert_eq(p->keep_ms, 3650 * 86400000LL, "durations past 24 days fit an int64_t row");
    cr_assert(p->on);
    cr_assert_eq(p->parity, 1);
    cr_assert_eq(p->inner, 9);
    sl_config_free(cfg);
}

Test(config, a_table_of_rows_refuses_at_the_key_or_the_value)
{
    sl_config_register(&rows_section);
    load_bad("x-rows:\n  count: 2\n  cuont: 3\n", 3, 3,
             "unknown key 'cuont' in 'x-rows' (expected name, count, big, wait, keep, on, parity, sub)");
    load_bad("x-rows:\n  count: 11\n", 2, 10, "'x-rows.count' must be between 1 and 10, got '11'");
    load_bad("x-rows:\n  big: -1\n", 2, 8, "'x-rows.big' must be between 0 and");
    load_bad("x-rows:\n  wait: 2m\n", 2, 9, "'x-rows.wait' must be between 1ms and 1m");
    load_bad("x-rows:\n  on: 1\n", 2, 7, "'x-rows.on'");
    load_bad("x-rows:\n  name: ''\n", 2, 9, "'x-rows.name' must not be empty");
    load_bad("x-rows:\n  parity: three\n", 2, 11, "'x-rows.parity' must be even or odd, got 'three'");
    load_bad("x-rows:\n  sub: {inner: 10}\n", 2, 16, "'x-rows.sub.inner' must be between 1 and 9");
    load_bad("x-rows:\n  sub: {outer: 1}\n", 2, 9, "unknown key 'outer' in 'x-rows.sub' (expected inner)");
    load_bad("x-rows: [1]\n", 1, 9, "'x-rows' must be a mapping");
}
