/* test_kinds_deploy.c: the deploy kind (jobs/deploy.c).  Command targets
 * run real programs (/bin/sh scripts the "operator" configured) in a temp
 * directory; webhook targets talk to the scripted test server
 * (tests/support/httpd.c) on 127.0.0.1. */
#include "harness.h"
#include "httpd.h"
#include "kindtest.h"

#include "mem.h"
#include "json.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char *dir;

static void setup(void)
{
    dir = th_tempdir("deploy");
}

static void teardown(void)
{
    th_rmtree(dir);
    free(dir);
}

TestSuite(deploy, .init = setup, .fini = teardown);

/* A configuration with one command target `t` running /bin/sh -c script in dir. */
static char *command_config(const char *script, int output_limit)
{
    sl_buf b = SL_BUF_INIT;
    sl_buf_printf(&b, "deploy:\n  targets:\n    t:\n      type: command\n      cwd: %s\n", dir);
    if (output_limit)
        sl_buf_printf(&b, "      output_limit: %d\n", output_limit);
    sl_buf_puts(&b, "      command: [/bin/sh, -c, ");
    sl_json_put_string(&b, script, strlen(script));   /* JSON strings are YAML flow scalars */
    sl_buf_puts(&b, ", deploy-script]\n");
    return sl_buf_detach(&b);
}

static char *path_in(const char *name)
{
    return sl_xasprintf("%s/%s", dir, name);
}

Test(deploy, command_runs_with_job_values_in_its_environment_and_cwd)
{
    char *cfg = command_config("echo hello; echo SLUICE_DEPLOY_URL=https://shop.test/v7; env > env.txt; "
                               "pwd > pwd.txt", 0);
    th_call c = th_kind_call("deploy", cfg,
                             "{\"target\": \"t\", \"version\": \"1.2.3\", \"n\": 42, \"ok\": true, \"ratio\": 0.1, "
                             "\"evil\": \"$(touch pwned); `touch pwned2`; touch pwned3\\nX=1\", "
                             "\"nested\": {\"a\": 1}}", 0);
    cr_assert_eq(c.rc, 0, "%s", c.err.msg);
    char *envp = path_in("env.txt"), *pwdp = path_in("pwd.txt");
    char *env = th_read_file(envp), *pwd = th_read_file(pwdp);
    cr_assert(th_has(env, "SLUICE_ARG_VERSION=1.2.3\n"), "%s", env);
    cr_assert(th_has(env, "SLUICE_ARG_N=42\n"), "%s", env);
    cr_assert(th_has(env, "SLUICE_ARG_RATIO=0.1\n"), "floats print in their shortest form: %s", env);
    cr_assert(th_has(env, "SLUICE_ARG_OK=true\n"), "%s", env);
    cr_assert(th_has(env, "SLUICE_ARG_TARGET=t\n"), "%s", env);
    cr_assert(th_has(env, "SLUICE_TARGET=t\n"), "%s", env);
    char want[128];
    snprintf(want, sizeof want, "SLUICE_JOB_ID=%s\n", c.id);
    cr_assert(th_has(env, want), "%s", env);
    /* the hostile value arrived as data, newline and all, and nothing ran */
    cr_assert(th_has(env, "SLUICE_ARG_EVIL=$(touch pwned); `touch pwned2`; touch pwned3\nX=1"), "%s", env);
    cr_assert(!th_has(env, "SLUICE_ARG_NESTED"), "maps are not passed: %s", env);
    cr_assert(!th_has(env, "DATABASE_URL"), "the worker's environment leaked: %s", env);
    for (int i = 0; i < 3; i++) {
        char *p = path_in(i == 0 ? "pwned" : i == 1 ? "pwned2" : "pwned3");
        cr_assert_neq(access(p, F_OK), 0, "%s exists: an argument was executed", p);
        free(p);
    }
    cr_assert(th_has(pwd, dir), "cwd was %s, not %s", pwd, dir);
    cr_assert(th_has(c.outputs, "\"target\":\"t\""), "%s", c.outputs);
    cr_assert(th_has(c.outputs, "\"exit_code\":0"), "%s", c.outputs);
    cr_assert(th_has(c.outputs, "\"url\":\"https://shop.test/v7\""), "%s", c.outputs);
    cr_assert(th_has(c.outputs, "\"log_tail\":\"hello\\n"), "%s", c.outputs);
    cr_assert(th_has(c.outputs, "\"duration_ms\":"), "%s", c.outputs);
    free(env), free(pwd), free(envp), free(pwdp), free(cfg);
    th_call_free(&c);
}

Test(deploy, nonzero_exit_fails_with_status_and_output)
{
    char *cfg = command_config("echo 'migration 0042 failed' >&2; exit 3", 0);
    th_call c = th_kind_call("deploy", cfg, "{\"target\": \"t\"}", 0);
    cr_assert_eq(c.rc, -1);
    cr_assert_eq(c.err.code, SL_EJOB);
    cr_assert(th_has(c.err.msg, "deploy target 't': command exited with status 3"), "%s", c.err.msg);
    cr_assert(th_has(c.err.msg, "migration 0042 failed"), "%s", c.err.msg);
    th_call_free(&c);
    free(cfg);
}

Test(deploy, a_command_that_cannot_start_says_why)
{
    char *cfg = sl_xasprintf("deploy:\n  targets:\n    t:\n      type: command\n"
                             "      command: [%s/no-such-program, --flag]\n      cwd: %s\n", dir, dir);
    th_call c = th_kind_call("deploy", cfg, "{\"target\": \"t\"}", 0);
    cr_assert_eq(c.err.code, SL_EJOB);
    char *want = sl_xasprintf("deploy target 't': cannot run %s/no-such-program: No such file or directory", dir);
    cr_assert(th_has(c.err.msg, want), "%s", c.err.msg);
    th_call_free(&c);
    free(cfg), free(want);
    cfg = sl_xasprintf("deploy:\n  targets:\n    t:\n      type: command\n"
                       "      command: [/bin/true]\n      cwd: %s/missing\n", dir);
    c = th_kind_call("deploy", cfg, "{\"target\": \"t\"}", 0);
    want = sl_xasprintf("cannot enter its working directory %s/missing: No such file or directory", dir);
    cr_assert(th_has(c.err.msg, want), "%s", c.err.msg);
    th_call_free(&c);
    free(cfg), free(want);
}

/* True when pid is gone or a zombie (killed, waiting for init to reap it). */
static bool pid_dead(void *arg)
{
    long pid = *(long *)arg;
    char path[64], buf[256];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return true;
    bool zombie = fgets(buf, sizeof buf, f) && strstr(buf, ") Z ");
    fclose(f);
    return zombie;
}

static long read_pid(const char *name)
{
    char *p = path_in(name);
    char *text = th_read_file(p);
    cr_assert_not_null(text, "%s was not written", p);
    long pid = atol(text);
    cr_assert_gt(pid, 1);
    free(text);
    free(p);
    return pid;
}

Test(deploy, timeout_kills_the_whole_process_group)
{
    /* the command starts a grandchild and waits; both must die */
    char *cfg = command_config("sleep 60 & echo $! > child.pid; echo started; sleep 60", 0);
    th_call c = th_kind_call("deploy", cfg, "{\"target\": \"t\"}", 1500);
    cr_assert_eq(c.rc, -1);
    cr_assert(th_has(c.err.msg, "timed out after 1500 ms") && th_has(c.err.msg, "process group was killed"),
              "%s", c.err.msg);
    cr_assert(th_has(c.err.msg, "started"), "%s", c.err.msg);
    long pid = read_pid("child.pid");
    cr_assert(th_wait(pid_dead, &pid, 5000), "grandchild %ld survived the timeout", pid);
    th_call_free(&c);
    free(cfg);
}

Test(deploy, cancelling_the_job_kills_the_process_group)
{
    char *cfg = command_config("sleep 60 & echo $! > child.pid; sleep 60", 0);
    th_cancel_after(1000);
    th_call c = th_kind_call("deploy", cfg, "{\"target\": \"t\"}", 0);
    cr_assert_eq(c.rc, -1);
    cr_assert(th_has(c.err.msg, "deploy target 't': cancelled; the command's process group was killed"),
              "%s", c.err.msg);
    long pid = read_pid("child.pid");
    cr_assert(th_wait(pid_dead, &pid, 5000), "grandchild %ld survived the cancellation", pid);
    th_call_free(&c);
    free(cfg);
}

Test(deploy, processes_left_behind_by_a_successful_command_are_killed)
{
    char *cfg = command_config("sleep 60 & echo $! > child.pid; exit 0", 0);
    th_call c = th_kind_call("deploy", cfg, "{\"target\": \"t\"}", 0);
    cr_assert_eq(c.rc, 0, "%s", c.err.msg);
    long pid = read_pid("child.pid");
    cr_assert(th_wait(pid_dead, &pid, 5000), "background process %ld outlived the job", pid);
    th_call_free(&c);
    free(cfg);
}

Test(deploy, output_is_bounded_and_keeps_the_tail)
{
    char *cfg = command_config("i=0; while [ $i -lt 500 ]; do echo line-$i-padding-padding; i=$((i+1)); done", 256);
    th_call c = th_kind_call("deploy", cfg, "{\"target\": \"t\"}", 0);
    cr_assert_eq(c.rc, 0, "%s", c.err.msg);
    cr_assert(th_has(c.outputs, "line-499-padding"), "%s", c.outputs);
    cr_assert(!th_has(c.outputs, "line-1-padding"), "%s", c.outputs);
    const char *tail = strstr(c.outputs, "\"log_tail\":\"");
    cr_assert_not_null(tail);
    cr_assert_leq(strcspn(tail + 12, "\""), 256 + 40, "tail too long: %s", c.outputs);
    th_call_free(&c);
    free(cfg);
}

Test(deploy, bad_arguments_are_refused_before_anything_runs)
{
    char *cfg = command_config("touch ran", 0);
    th_call c = th_kind_call("deploy", cfg, "{\"target\": \"prod\"}", 0);
    cr_assert_eq(c.rc, -1);
    cr_assert_eq(c.err.code, SL_EINVAL);
    cr_assert(th_has(c.err.msg, "argument 'target': no deploy target 'prod' is configured (configured: t)"),
              "%s", c.err.msg);
    th_call_free(&c);
    c = th_kind_call("deploy", cfg, "{\"target\": \"t\", \"a-b; rm\": \"x\"}", 0);
    cr_assert_eq(c.err.code, SL_EINVAL);
    cr_assert(th_has(c.err.msg, "argument name \"a-b; rm\" cannot become an environment variable"),
              "%s", c.err.msg);
    th_call_free(&c);
    c = th_kind_call("deploy", cfg, "{}", 0);
    cr_assert(th_has(c.err.msg, "argument 'target': missing"), "%s", c.err.msg);
    th_call_free(&c);
    c = th_kind_call("deploy", cfg, "{\"target\": \"t\", \"x\": 1, \"X\": 2}", 0);
    cr_assert(th_has(c.err.msg, "SLUICE_ARG_X twice"), "%s", c.err.msg);
    th_call_free(&c);
    char *ran = path_in("ran");
    cr_assert_neq(access(ran, F_OK), 0, "the command ran despite bad arguments");
    free(ran);
    free(cfg);
}

Test(deploy, nul_bytes_are_refused_in_strings_and_ignored_in_binary)
{
    char *cfg = command_config("env > env.txt", 0);
    /* {"target": "t", "s": "a\0b"} and {"target": "t", "b": bin "a\0b"} */
    for (int binary = 0; binary < 2; binary++) {
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, 2);
        msgpack_pack_str_with_body(&pk, "target", 6);
        msgpack_pack_str_with_body(&pk, "t", 1);
        msgpack_pack_str_with_body(&pk, binary ? "b" : "s", 1);
        if (binary)
            msgpack_pack_bin_with_body(&pk, "a\0b", 3);
        else
            msgpack_pack_str_with_body(&pk, "a\0b", 3);
        th_call c = th_kind_call_msgpack("deploy", cfg, sb.data, sb.size, 0);
        if (binary) {
            cr_assert_eq(c.rc, 0, "%s", c.err.msg);
            char *p = path_in("env.txt");
            char *env = th_read_file(p);
            cr_assert(!th_has(env, "SLUICE_ARG_B"), "%s", env);
            free(env), free(p);
        } else {
            cr_assert_eq(c.err.code, SL_EINVAL);
            cr_assert(th_has(c.err.msg, "argument 's': contains a NUL byte"), "%s", c.err.msg);
        }
        th_call_free(&c);
        msgpack_sbuffer_destroy(&sb);
    }
    free(cfg);
}

/* ---- webhooks ---- */

static char *webhook_config(th_httpd *s, const char *extra)
{
    char *url = th_httpd_url(s, "/hook");
    char *cfg = sl_xasprintf("deploy:\n  targets:\n    web:\n      type: webhook\n      url: %s\n"
                             "      secret_env: TEST_HOOK_SECRET\n      timeout: 2s\n%s", url,
                             extra ? extra : "");
    free(url);
    return cfg;
}

Test(deploy, webhook_posts_the_signed_job_with_an_idempotency_key)
{
    setenv("TEST_HOOK_SECRET", "s3cret", 1);
    th_httpd *s = th_httpd_start();
    th_route r = { .status = 201, .hmac_secret = "s3cret", .content_type = "application/json",
                   .body = "{\"deployment_url\": \"https://staging.shop.test/\"}" };
    th_httpd_route(s, "/hook", &r);
    char *cfg = webhook_config(s, NULL);
    th_call c = th_kind_call("deploy", cfg, "{\"target\": \"web\", \"version\": \"2.0\"}", 0);
    cr_assert_eq(c.rc, 0, "%s", c.err.msg);
    cr_assert(th_has(c.outputs, "\"http_status\":201"), "%s", c.outputs);
    cr_assert(th_has(c.outputs, "\"url\":\"https://staging.shop.test/\""), "%s", c.outputs);
    char *key = th_httpd_last_header(s, "/hook", "Idempotency-Key");
    cr_assert_str_eq(key ? key : "", c.id);
    char *body = th_httpd_last_body(s, "/hook");
    cr_assert(th_has(body, "\"args\":{\"target\":\"web\",\"version\":\"2.0\"}"), "%s", body);
    char want[128];
    snprintf(want, sizeof want, "\"id\":\"%s\"", c.id);
    cr_assert(th_has(body, want), "%s", body);
    free(key), free(body), free(cfg);
    th_call_free(&c);
    th_httpd_free(s);
}

Test(deploy, webhook_5xx_is_retryable_and_a_retry_succeeds)
{
    setenv("TEST_HOOK_SECRET", "s3cret", 1);
    th_httpd *s = th_httpd_start();
    th_route r = { .status = 200, .fail_first = 1, .hmac_secret = "s3cret" };
    th_httpd_route(s, "/hook", &r);
    char *cfg = webhook_config(s, NULL);
    th_call c = th_kind_call("deploy", cfg, "{\"target\": \"web\"}", 0);
    cr_assert_eq(c.rc, -1);
    cr_assert_eq(c.err.code, SL_EJOB, "a 500 must be retryable");
    cr_assert(th_has(c.err.msg, "deploy target 'web': webhook answered 500"), "%s", c.err.msg);
    th_call_free(&c);
    c = th_kind_call("deploy", cfg, "{\"target\": \"web\"}", 0);
    cr_assert_eq(c.rc, 0, "%s", c.err.msg);
    cr_assert_eq(th_httpd_hits(s, "/hook"), 2);
    th_call_free(&c);
    free(cfg);
    th_httpd_free(s);
}

Test(deploy, webhook_4xx_fails_permanently_with_the_answer)
{
    setenv("TEST_HOOK_SECRET", "s3cret", 1);
    th_httpd *s = th_httpd_start();
    th_route r = { .status = 422, .body = "unknown version 9.9" };
    th_httpd_route(s, "/hook", &r);
    char *cfg = webhook_config(s, NULL);
    th_call c = th_kind_call("deploy", cfg, "{\"target\": \"web\"}", 0);
    cr_assert_eq(c.rc, -1);
    cr_assert_eq(c.err.code, SL_EPERMANENT);
    cr_assert(th_has(c.err.msg, "webhook answered 422 (not retried): unknown version 9.9"), "%s", c.err.msg);
    th_call_free(&c);
    free(cfg);
    th_httpd_free(s);
}

Test(deploy, webhook_with_the_wrong_secret_is_refused_by_the_receiver)
{
    setenv("TEST_HOOK_SECRET", "not-the-secret", 1);
    th_httpd *s = th_httpd_start();
    th_route r = { .status = 200, .hmac_secret = "s3cret" };
    th_httpd_route(s, "/hook", &r);
    char *cfg = webhook_config(s, NULL);
    th_call c = th_kind_call("deploy", cfg, "{\"target\": \"web\"}", 0);
    cr_assert_eq(c.err.code, SL_EPERMANENT);
    cr_assert(th_has(c.err.msg, "answered 401") && th_has(c.err.msg, "bad signature"), "%s", c.err.msg);
    th_call_free(&c);
    unsetenv("TEST_HOOK_SECRET");
    c = th_kind_call("deploy", cfg, "{\"target\": \"web\"}", 0);
    cr_assert(th_has(c.err.msg, "environment variable TEST_HOOK_SECRET is not set"), "%s", c.err.msg);
    cr_assert_eq(th_httpd_hits(s, "/hook"), 1, "nothing is sent unsigned");
    th_call_free(&c);
    free(cfg);
    th_httpd_free(s);
}

Test(deploy, webhook_timeout_is_retryable)
{
    setenv("TEST_HOOK_SECRET", "s3cret", 1);
    th_httpd *s = th_httpd_start();
    th_route r = { .status = 200, .delay_ms = 3000 };
    th_httpd_route(s, "/hook", &r);
    char *url = th_httpd_url(s, "/hook");
    char *cfg = sl_xasprintf("deploy:\n  targets:\n    web:\n      type: webhook\n      url: %s\n"
                             "      timeout: 300ms\n", url);
    th_call c = th_kind_call("deploy", cfg, "{\"target\": \"web\"}", 0);
    cr_assert_eq(c.err.code, SL_EJOB);
    cr_assert(th_has(c.err.msg, "no answer within 300 ms"), "%s", c.err.msg);
    th_call_free(&c);
    free(cfg), free(url);
    th_httpd_free(s);
}

Test(deploy, health_check_is_polled_until_it_answers_2xx)
{
    setenv("TEST_HOOK_SECRET", "s3cret", 1);
    th_httpd *s = th_httpd_start();
    th_route ok = { .status = 200 };
    th_httpd_route(s, "/hook", &ok);
    th_route health = { .status = 204, .fail_first = 2 };
    th_httpd_route(s, "/health", &health);
    char *hurl = th_httpd_url(s, "/health");
    char *extra = sl_xasprintf("      health_url: %s\n      health_interval: 20ms\n"
                               "      health_timeout: 10s\n", hurl);
    char *cfg = webhook_config(s, extra);
    th_call c = th_kind_call("deploy", cfg, "{\"target\": \"web\"}", 0);
    cr_assert_eq(c.rc, 0, "%s", c.err.msg);
    cr_assert_eq(th_httpd_hits(s, "/health"), 3);
    cr_assert(th_has(c.outputs, "\"health_status\":204"), "%s", c.outputs);
    th_call_free(&c);
    /* never healthy: a retryable failure naming the check */
    th_route sick = { .status = 503 };
    th_httpd_route(s, "/health", &sick);
    free(cfg), free(extra);
    extra = sl_xasprintf("      health_url: %s\n      health_interval: 20ms\n"
                         "      health_timeout: 300ms\n", hurl);
    cfg = webhook_config(s, extra);
    c = th_kind_call("deploy", cfg, "{\"target\": \"web\"}", 0);
    cr_assert_eq(c.err.code, SL_EJOB);
    cr_assert(th_has(c.err.msg, "did not answer 2xx within 300 ms (last answer 503)"), "%s", c.err.msg);
    th_call_free(&c);
    free(cfg), free(extra), free(hurl);
    th_httpd_free(s);
}

Test(deploy, end_to_end_through_a_worker)
{
    char *cfg = command_config("echo deployed $SLUICE_ARG_VERSION", 0);
    th_row row = th_kind_e2e("deploy", cfg, "{\"target\": \"t\", \"version\": \"3.1\"}", 0);
    cr_assert_str_eq(row.status, "succeeded", "error: %s", row.error);
    cr_assert(th_has(row.outputs, "\"log_tail\": \"deployed 3.1\\n\""), "%s", row.outputs);
    cr_assert(th_has(row.outputs, "\"exit_code\": 0"), "%s", row.outputs);
    th_row_free(&row);
    free(cfg);
}

Test(deploy, end_to_end_webhook_4xx_is_final_with_the_answer_in_the_error)
{
    setenv("TEST_HOOK_SECRET", "s3cret", 1);
    th_httpd *s = th_httpd_start();
    th_route r = { .status = 403, .body = "target frozen" };
    th_httpd_route(s, "/hook", &r);
    char *cfg = webhook_config(s, NULL);
    /* three attempts allowed, yet a 4xx is not retried */
    th_row row = th_kind_e2e("deploy", cfg, "{\"target\": \"web\"}", 3);
    cr_assert_str_eq(row.status, "dead", "a 4xx is final at once");
    cr_assert(th_has(row.error, "webhook answered 403 (not retried): target frozen"), "%s", row.error);
    cr_assert_eq(row.attempts, 1);
    cr_assert_eq(th_httpd_hits(s, "/hook"), 1);
    th_row_free(&row);
    free(cfg);
    th_httpd_free(s);
}

/* A 5xx is retried (SL_EJOB), with the same Idempotency-Key. */
Test(deploy, end_to_end_webhook_500_is_retried_until_it_succeeds)
{
    setenv("TEST_HOOK_SECRET", "s3cret", 1);
    th_httpd *s = th_httpd_start();
    th_route r = { .status = 200, .fail_first = 1, .hmac_secret = "s3cret" };
    th_httpd_route(s, "/hook", &r);
    char *cfg = webhook_config(s, NULL);
    th_row row = th_kind_e2e("deploy", cfg, "{\"target\": \"web\"}", 3);
    cr_assert_str_eq(row.status, "succeeded", "error: %s", row.error);
    cr_assert_eq(row.attempts, 2);
    cr_assert_eq(th_httpd_hits(s, "/hook"), 2);
    char *key = th_httpd_last_header(s, "/hook", "Idempotency-Key");
    cr_assert_str_eq(key ? key : "", row.id, "a retry must carry the same Idempotency-Key");
    th_row_free(&row);
    free(key), free(cfg);
    th_httpd_free(s);
}

/* Output PostgreSQL cannot store as text (a NUL byte, invalid UTF-8) is
 * recorded with U+FFFD in place of each such byte and a note saying so; an
 * error message quoting such output is recorded too. */
Test(deploy, end_to_end_output_with_nul_and_invalid_utf8_is_recorded_visibly)
{
    char *cfg = command_config("printf 'before\\000after \\377\\376 caf\\303\\251\\n'", 0);
    th_row row = th_kind_e2e("deploy", cfg, "{\"target\": \"t\"}", 0);
    cr_assert_str_eq(row.status, "succeeded", "error: %s", row.error);
    cr_assert(th_has(row.outputs, "\"log_tail\": \"before\xef\xbf\xbd" "after \xef\xbf\xbd\xef\xbf\xbd caf\xc3\xa9\\n\""),
              "%s", row.outputs);
    cr_assert(th_has(row.outputs, "\"log_replaced\": 3"), "%s", row.outputs);
    cr_assert(th_has(row.outputs, "NUL bytes or invalid UTF-8"), "%s", row.outputs);
    th_row_free(&row);
    free(cfg);
    cfg = command_config("printf 'broken \\377\\000 release\\n'; exit 4", 0);
    row = th_kind_e2e("deploy", cfg, "{\"target\": \"t\"}", 0);
    cr_assert_str_eq(row.status, "dead", "error: %s", row.error);
    cr_assert(th_has(row.error, "exited with status 4; output ends: broken ?  release"), "%s", row.error);
    th_row_free(&row);
    free(cfg);
}

/* ---- secrets ---- */

/* A command reads the environment of its parent (the worker process) and
 * of the pool's master through /proc, as a hostile deploy script would: no
 * secret of the pool's environment is there to find. */
Test(deploy, end_to_end_a_command_finds_no_secret_in_proc_environ)
{
    const char *secret = "hunter2-webhook-secret-4711";
    setenv("TEST_SCRUB_SECRET", secret, 1);
    const char *db = th_env("DATABASE_URL");
    char *script = "echo begin; tr '\\000' '\\n' < /proc/$PPID/environ; "
                   "M=$(cut -d' ' -f4 /proc/$PPID/stat); echo master=$M; "
                   "tr '\\000' '\\n' < /proc/$M/environ; echo end";
    char *cmd = command_config(script, 65536);
    char *cfg = sl_xasprintf("%s    hook:\n      type: webhook\n      url: http://127.0.0.1:9/x\n"
                             "      secret_env: TEST_SCRUB_SECRET\n", cmd);
    th_row row = th_kind_e2e("deploy", cfg, "{\"target\": \"t\"}", 0);
    cr_assert_str_eq(row.status, "succeeded", "error: %s", row.error);
    cr_assert(th_has(row.outputs, "begin") && th_has(row.outputs, "master=") && th_has(row.outputs, "end"),
              "%s", row.outputs);
    if (geteuid() == 0)   /* root reads any /proc/PID/environ: the scrub is what protects */
        cr_assert(th_has(row.outputs, "PATH="), "the environments were not read: %s", row.outputs);
    cr_assert(!th_has(row.outputs, secret), "the webhook secret leaked: %s", row.outputs);
    cr_assert(!th_has(row.outputs, "TEST_SCRUB_SECRET"), "%s", row.outputs);
    cr_assert(!th_has(row.outputs, db), "the database URL leaked: %s", row.outputs);
    cr_assert(!th_has(row.outputs, "DATABASE_URL="), "%s", row.outputs);
    cr_assert(!th_has(row.outputs, "REDIS_URL="), "%s", row.outputs);
    th_row_free(&row);
    free(cmd), free(cfg);
    unsetenv("TEST_SCRUB_SECRET");
}

/* Secrets from files: an absolute path, or a credential name in
 * $CREDENTIALS_DIRECTORY (systemd LoadCredential=). */
Test(deploy, webhook_secret_is_read_from_a_file_or_the_credentials_directory)
{
    unsetenv("TEST_HOOK_SECRET");
    th_httpd *s = th_httpd_start();
    th_route r = { .status = 200, .hmac_secret = "s3cret-from-file" };
    th_httpd_route(s, "/hook", &r);
    char *file = path_in("hook.secret");
    FILE *f = fopen(file, "w");
    cr_assert_not_null(f);
    fputs("s3cret-from-file\n", f);
    cr_assert_eq(fclose(f), 0);
    char *url = th_httpd_url(s, "/hook");
    char *cfg = sl_xasprintf("deploy:\n  targets:\n    web:\n      type: webhook\n      url: %s\n"
                             "      secret_file: %s\n", url, file);
    th_call c = th_kind_call("deploy", cfg, "{\"target\": \"web\"}", 0);
    cr_assert_eq(c.rc, 0, "%s", c.err.msg);
    th_call_free(&c);
    free(cfg);
    cfg = sl_xasprintf("deploy:\n  targets:\n    web:\n      type: webhook\n      url: %s\n"
                       "      secret_file: hook.secret\n", url);
    unsetenv("CREDENTIALS_DIRECTORY");
    c = th_kind_call("deploy", cfg, "{\"target\": \"web\"}", 0);
    cr_assert_eq(c.err.code, SL_EJOB);
    cr_assert(th_has(c.err.msg, "names a credential, but $CREDENTIALS_DIRECTORY is not set"), "%s", c.err.msg);
    th_call_free(&c);
    setenv("CREDENTIALS_DIRECTORY", dir, 1);
    c = th_kind_call("deploy", cfg, "{\"target\": \"web\"}", 0);
    cr_assert_eq(c.rc, 0, "%s", c.err.msg);
    th_call_free(&c);
    unsetenv("CREDENTIALS_DIRECTORY");
    cr_assert_eq(th_httpd_hits(s, "/hook"), 2, "each signed request was accepted once");
    free(cfg), free(url), free(file);
    th_httpd_free(s);
}

/* deploy.run_as: a pool running as root runs commands as the configured
 * unprivileged account, which cannot read the worker's /proc files. */
Test(deploy, commands_run_as_the_configured_unprivileged_user)
{
    if (geteuid() != 0)
        cr_skip_test("needs root to switch users");
    struct passwd *pw = getpwnam("nobody");
    cr_assert_not_null(pw, "no user nobody");
    char *want_uid = sl_xasprintf("uid=%ld gid=%ld\\n", (long)pw->pw_uid, (long)pw->pw_gid);
    char *cfg = sl_xasprintf("deploy:\n  run_as: nobody\n  targets:\n    t:\n      type: command\n      cwd: /\n"
                             "      command: [/bin/sh, -c, \"echo uid=$(id -u) gid=$(id -g); id -G; "
                             "cat /proc/$PPID/environ >/dev/null 2>&1 && echo parent-readable || "
                             "echo parent-unreadable\"]\n");
    th_call c = th_kind_call("deploy", cfg, "{\"target\": \"t\"}", 0);
    cr_assert_eq(c.rc, 0, "%s", c.err.msg);
    cr_assert(th_has(c.outputs, want_uid), "%s", c.outputs);
    cr_assert(th_has(c.outputs, "parent-unreadable"), "%s", c.outputs);
    cr_assert(!th_has(c.outputs, "\\n0\\n") && !th_has(c.outputs, " 0 ") , "root's group kept: %s", c.outputs);
    th_call_free(&c);
    free(cfg);
    cfg = sl_xasprintf("deploy:\n  run_as: no-such-user-x\n  targets:\n    t:\n      type: command\n"
                       "      command: [/bin/true]\n");
    c = th_kind_call("deploy", cfg, "{\"target\": \"t\"}", 0);
    cr_assert_eq(c.err.code, SL_EPERMANENT);
    cr_assert(th_has(c.err.msg, "deploy.run_as: no user 'no-such-user-x'"), "%s", c.err.msg);
    th_call_free(&c);
    free(cfg), free(want_uid);
}
