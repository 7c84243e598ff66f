/* test_job_status.c: `sluice job ID` answers in states a producer can act
 * on (cli/cmd_job.c, cli/locate.c), against the real servers: a job
 * enqueued with the wire format alone (SADD + XADD, as the Python and Node
 * examples do), one in the delayed set, one a real worker runs, one the
 * worker dead-letters as undecodable, a dead-letter entry that keeps the
 * job id beside garbage, a finished job, and an unknown id -- each with
 * its own exit status, for people and for --json. */
#include "harness.h"

#include "clock.h"
#include "envelope.h"
#include "jobid.h"
#include "json.h"
#include "mem.h"
#include "queue.h"

#include <criterion/criterion.h>
#include <msgpack.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define EXIT_UNKNOWN 3
#define EXIT_PENDING 4
#define EXIT_UNSUCCESSFUL 5

static th_result job(const char *id, bool json)
{
    const char *argv[] = { SLUICE_BIN, "job", id, json ? "--json" : NULL, NULL };
    return th_run(argv, NULL);
}

/* SADD + XADD of an envelope, as a producer in any language does. */
static void wire_enqueue(sl_redis *r, const char *queue, const char *data, size_t len)
{
    char key[SL_KEY_MAX];
    sl_queue_key(key, queue, "jobs");
    const char *sadd[] = { "SADD", SL_QUEUES_KEY, queue };
    const char *xadd[] = { "XADD", key, "*", "job", data };
    size_t lens[] = { 4, strlen(key), 1, 3, len };
    sl_err err;
    redisReply *rep = sl_redis_command(r, 3, sadd, NULL, &err);
    cr_assert_not_null(rep, "%s", err.msg);
    freeReplyObject(rep);
    rep = sl_redis_command(r, 5, xadd, lens, &err);
    cr_assert_not_null(rep, "%s", err.msg);
    freeReplyObject(rep);
}

/* The envelope of a job, encoded. */
static void encode(const char *id, const char *kind, const char *queue, const char *args_json,
                   msgpack_sbuffer *sb)
{
    msgpack_sbuffer args;
    msgpack_sbuffer_init(&args);
    sl_job j = { .id = (char *)id, .kind = (char *)kind, .queue = (char *)queue, .attempt = 1,
                 .enqueued_at = sl_now_ms() };
    msgpack_sbuffer_init(sb);
    sl_err err;
    if (args_json) {
        msgpack_packer pk;
        msgpack_packer_init(&pk, &args, msgpack_sbuffer_write);
        cr_assert_eq(sl_json_to_msgpack(args_json, strlen(args_json), &pk, &err), 0, "%s", err.msg);
        j.args = args.data;
        j.args_len = args.size;
    }
    cr_assert_eq(sl_envelope_encode(&j, sb, &err), 0, "%s", err.msg);
    msgpack_sbuffer_destroy(&args);
}

static char *worker_config(void)
{
    return th_write_temp("sluice.yaml", "worker:\n  block: 100ms\n  max_attempts: 1\n");
}

Test(job_status, queued_by_a_wire_producer_then_unknown_id, .timeout = 60)
{
    th_migrate();
    char queue[64], id[37];
    th_name(queue, sizeof queue, "jsq");
    sl_jobid_new(id);
    sl_redis *r = th_redis();
    msgpack_sbuffer sb;
    encode(id, "noop", queue, NULL, &sb);
    wire_enqueue(r, queue, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);

    th_result out = job(id, false);
    cr_assert_eq(out.status, EXIT_PENDING, "%s%s", out.out, out.err);
    cr_assert(strstr(out.out, "queued: waiting in queue ") && strstr(out.out, queue) &&
              strstr(out.out, "attempt 1"), "%s", out.out);
    th_result_free(&out);
    out = job(id, true);
    cr_assert_eq(out.status, EXIT_PENDING, "%s", out.err);
    cr_assert(strstr(out.out, "\"state\":\"queued\"") && strstr(out.out, "\"since_ms\":"), "%s", out.out);
    th_result_free(&out);

    /* An id nobody enqueued: distinct from "queued". */
    out = job("never-enqueued-anywhere", false);
    cr_assert_eq(out.status, EXIT_UNKNOWN, "%s%s", out.out, out.err);
    cr_assert(strstr(out.out, "unknown: no result recorded"), "%s", out.out);
    th_result_free(&out);
    out = job("never-enqueued-anywhere", true);
    cr_assert_eq(out.status, EXIT_UNKNOWN);
    cr_assert(strstr(out.out, "\"state\":\"unknown\"") && strstr(out.out, "\"where\":null"), "%s", out.out);
    th_result_free(&out);
    sl_redis_free(r);
}

Test(job_status, delayed_shows_when_it_is_due, .timeout = 60)
{
    th_migrate();
    char queue[64], id[64];
    th_name(queue, sizeof queue, "jsd");
    th_name(id, sizeof id, "later");
    sl_redis *r = th_redis();
    msgpack_sbuffer sb;
    encode(id, "noop", queue, NULL, &sb);
    sl_err err;
    int64_t due = sl_now_ms() + 3600 * 1000;
    cr_assert_eq(sl_queue_schedule(r, queue, sb.data, sb.size, due, &err), 0, "%s", err.msg);
    msgpack_sbuffer_destroy(&sb);
    th_result out = job(id, false);
    cr_assert_eq(out.status, EXIT_PENDING, "%s%s", out.out, out.err);
    cr_assert(strstr(out.out, "delayed: attempt 1 waits in queue ") && strstr(out.out, "due "), "%s", out.out);
    th_result_free(&out);
    out = job(id, true);
    char want[64];
    snprintf(want, sizeof want, "\"due_ms\":%lld", (long long)due);
    cr_assert(strstr(out.out, "\"state\":\"delayed\"") && strstr(out.out, want), "%s", out.out);
    th_result_free(&out);
    sl_redis_free(r);
}

/* `sluice job` says running (with the worker's pid). */
static bool shows_running(void *arg)
{
    th_result out = job(arg, true);
    bool yes = out.status == EXIT_PENDING && strstr(out.out, "\"state\":\"running\"");
    th_result_free(&out);
    return yes;
}

static bool succeeded(void *arg)
{
    th_result out = job(arg, false);
    bool yes = out.status == 0;
    th_result_free(&out);
    return yes;
}

Test(job_status, running_then_succeeded, .timeout = 90)
{
    th_migrate();
    char queue[64], id[37], log[96];
    th_name(queue, sizeof queue, "jsr");
    snprintf(log, sizeof log, "/tmp/sluice-%s.log", queue);
    sl_jobid_new(id);
    sl_redis *r = th_redis();
    msgpack_sbuffer sb;
    encode(id, "sleep", queue, "{\"ms\": 4000}", &sb);
    wire_enqueue(r, queue, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    char *config = worker_config();
    const char *args[] = { "--config", config, "--queues", queue, "--processes", "1", NULL };
    pid_t pool = th_worker_start(args, log);
    cr_assert(th_wait(shows_running, id, 20000), "never shown running");
    th_result out = job(id, false);
    cr_assert(strstr(out.out, "running: worker pid ") && strstr(out.out, queue), "%s", out.out);
    char pool_pid[32];
    snprintf(pool_pid, sizeof pool_pid, "(pool %ld)", (long)pool);
    cr_assert(strstr(out.out, pool_pid), "the pool's pid %ld: %s", (long)pool, out.out);
    th_result_free(&out);
    cr_assert(th_wait(succeeded, id, 30000), "never succeeded");
    out = job(id, true);
    cr_assert_eq(out.status, 0);
    cr_assert(strstr(out.out, "\"state\":\"succeeded\"") && strstr(out.out, "\"where\":null"), "%s", out.out);
    th_result_free(&out);
    cr_assert_eq(th_stop(pool, SIGTERM, 30000), 0);
    unlink(log);
    free(config);
    sl_redis_free(r);
}

static bool dead_lettered(void *arg)
{
    th_result out = job(arg, false);
    bool yes = out.status == EXIT_UNSUCCESSFUL;
    th_result_free(&out);
    return yes;
}

Test(job_status, undecodable_entry_is_dead_with_the_reason, .timeout = 90)
{
    th_migrate();
    char queue[64], log[96], id[64];
    th_name(queue, sizeof queue, "jsu");
    th_name(id, sizeof id, "bad-attempt");
    snprintf(log, sizeof log, "/tmp/sluice-%s.log", queue);
    sl_redis *r = th_redis();
    /* A map naming its id whose attempt is a string: undecodable, so
     * no result can be recorded for it; the dead letter is the only trace. */
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    const char *keys[] = { "v", "id", "kind", "queue", "args", "attempt", "enqueued_at" };
    msgpack_pack_map(&pk, 7);
    for (int i = 0; i < 7; i++) {
        msgpack_pack_str_with_body(&pk, keys[i], strlen(keys[i]));
        switch (i) {
        case 0: msgpack_pack_int(&pk, 1); break;
        case 1: msgpack_pack_str_with_body(&pk, id, strlen(id)); break;
        case 2: msgpack_pack_str_with_body(&pk, "noop", 4); break;
        case 3: msgpack_pack_str_with_body(&pk, queue, strlen(queue)); break;
        case 4: msgpack_pack_map(&pk, 0); break;
        case 5: msgpack_pack_str_with_body(&pk, "one", 3); break;
        case 6: msgpack_pack_int64(&pk, sl_now_ms()); break;
        }
    }
    wire_enqueue(r, queue, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    char *config = worker_config();
    const char *args[] = { "--config", config, "--queues", queue, "--processes", "1", NULL };
    pid_t pool = th_worker_start(args, log);
    cr_assert(th_wait(dead_lettered, id, 30000), "never shown dead");
    cr_assert_eq(th_stop(pool, SIGTERM, 30000), 0);
    th_result out = job(id, false);
    cr_assert(strstr(out.out, "dead: in the dead letter of queue ") && strstr(out.out, "field 'attempt'") &&
              strstr(out.out, "sluice dead retry "), "%s", out.out);
    th_result_free(&out);
    out = job(id, true);
    cr_assert_eq(out.status, EXIT_UNSUCCESSFUL);
    cr_assert(strstr(out.out, "\"state\":\"dead\"") && strstr(out.out, "\"failed_at_ms\":") &&
              strstr(out.out, "attempt"), "%s", out.out);
    th_result_free(&out);
    unlink(log);
    free(config);
    sl_redis_free(r);
}

Test(job_status, dead_letter_id_field_names_garbage, .timeout = 60)
{
    th_migrate();
    char queue[64], key[SL_KEY_MAX], id[64];
    th_name(queue, sizeof queue, "jsg");
    th_name(id, sizeof id, "garbage");
    sl_queue_key(key, queue, "dead");
    sl_redis *r = th_redis();
    const char *sadd[] = { "SADD", SL_QUEUES_KEY, queue };
    const char *xadd[] = { "XADD", key, "*", "job", "\xc1garbage", "error", "undecodable envelope: truncated",
                           "failed_at", "1700000000000", "id", id };
    sl_err err;
    redisReply *rep = sl_redis_command(r, 3, sadd, NULL, &err);
    cr_assert_not_null(rep, "%s", err.msg);
    freeReplyObject(rep);
    rep = sl_redis_command(r, 11, xadd, NULL, &err);
    cr_assert_not_null(rep, "%s", err.msg);
    freeReplyObject(rep);
    th_result out = job(id, false);
    cr_assert_eq(out.status, EXIT_UNSUCCESSFUL, "%s%s", out.out, out.err);
    cr_assert(strstr(out.out, "undecodable envelope: truncated"), "%s", out.out);
    th_result_free(&out);
    sl_redis_free(r);
}

Test(job_status, help_documents_the_exit_statuses)
{
    const char *argv[] = { SLUICE_BIN, "job", "--help", NULL };
    th_result out = th_run(argv, NULL);
    cr_assert_eq(out.status, 0);
    cr_assert(strstr(out.out, "Exit status: 0 succeeded; 3 unknown; 4 not finished yet"), "%s", out.out);
    th_result_free(&out);
}

/* The README's flagship example: `sluice enqueue deploy --queue deploys
 * --arg target=staging` after the configuration step the README shows
 * (its YAML block, taken from README.md itself, with the placeholder
 * deploy program replaced by /bin/echo), run by a real pool. */
Test(job_status, readme_deploy_example_works_after_its_configuration_step, .timeout = 90)
{
    th_migrate();
    char *readme = th_read_file(SLUICE_SOURCE_DIR "/README.md");
    cr_assert_not_null(readme);
    const char *using = strstr(readme, "## Using sluice");
    cr_assert_not_null(using, "README has no 'Using sluice' section");
    const char *start = strstr(using, "```yaml\n");
    cr_assert_not_null(start, "README shows no configuration step before the deploy example");
    start += strlen("```yaml\n");
    const char *end = strstr(start, "```");
    cr_assert_not_null(end);
    const char *placeholder = "[/usr/local/bin/deploy-shop, --env, staging]";
    char *block = sl_xstrndup(start, (size_t)(end - start));
    char *at = strstr(block, placeholder);
    cr_assert_not_null(at, "the README's deploy target changed: update this test\n%s", block);
    *at = '\0';
    char *yaml = sl_xasprintf("worker:\n  block: 100ms\n  max_attempts: 1\n%s[/bin/echo, deployed]%s", block,
                              at + strlen(placeholder));
    char *config = th_write_temp("sluice.yaml", yaml);
    char queue[64], log[96];
    th_name(queue, sizeof queue, "deploys");
    snprintf(log, sizeof log, "/tmp/sluice-%s.log", queue);
    const char *enq[] = { SLUICE_BIN, "enqueue", "deploy", "--queue", queue, "--arg", "target=staging",
                          "--config", config, NULL };
    th_result out = th_run(enq, NULL);
    cr_assert_eq(out.status, 0, "%s", out.err);
    char id[64];
    snprintf(id, sizeof id, "%.*s", (int)strcspn(out.out, "\n"), out.out);
    th_result_free(&out);
    const char *args[] = { "--config", config, "--queues", queue, "--processes", "1", NULL };
    pid_t pool = th_worker_start(args, log);
    bool ok = th_wait(succeeded, id, 30000);
    char *text = th_read_file(log);
    cr_assert(ok, "the deploy did not succeed; worker log:\n%s", text ? text : "");
    free(text);
    cr_assert_eq(th_stop(pool, SIGTERM, 30000), 0);
    const char *show[] = { SLUICE_BIN, "job", id, NULL };
    out = th_run(show, NULL);
    cr_assert(strstr(out.out, "succeeded") && strstr(out.out, "deployed"), "%s", out.out);
    th_result_free(&out);
    unlink(log);
    free(config);
    free(yaml);
    free(block);
    free(readme);
}

/* A pipeline step queued in a queue that no worker serves waits silently
 * unless someone says so: `sluice status` does. */
Test(job_status, status_warns_about_a_queued_step_nobody_serves, .timeout = 60)
{
    th_migrate();
    char run[64], queue[64];
    th_name(run, sizeof run, "wrun");
    th_name(queue, sizeof queue, "wq");
    char *source = sl_xasprintf("name: lonely\nsteps:\n  - id: build\n    kind: noop\n    queue: %s\n", queue);
    const char *p[] = { run, source };
    th_pg_number("INSERT INTO sluice_runs (id, pipeline, source_name, source, triggered_by, status)"
                 " VALUES ($1, 'lonely', 'lonely.yaml', $2, 'alice', 'running') RETURNING 1", 2, p);
    th_pg_number("INSERT INTO sluice_run_steps (run_id, step_id, position, status, job_id)"
                 " VALUES ($1, 'build', 0, 'queued', $1 || '.build.1') RETURNING 1", 1, p);
    const char *argv[] = { SLUICE_BIN, "status", run, NULL };
    th_result out = th_run(argv, NULL);
    cr_assert_eq(out.status, 0, "%s", out.err);
    char want[160];
    snprintf(want, sizeof want, "waiting: no live sluice-worker reads queue '%s'", queue);
    cr_assert(strstr(out.out, want), "%s", out.out);
    th_result_free(&out);
    free(source);
}

/* --scan-limit bounds the search, and the answer says when it was cut
 * short (and only then). */
Test(job_status, scan_limit_is_reported, .timeout = 60)
{
    th_migrate();
    char queue[64], id[64], other[64];
    th_name(queue, sizeof queue, "jsl");
    th_name(id, sizeof id, "deep");
    sl_redis *r = th_redis();
    msgpack_sbuffer sb;
    for (int i = 0; i < 3; i++) {
        th_name(other, sizeof other, "before");
        encode(other, "noop", queue, NULL, &sb);
        wire_enqueue(r, queue, sb.data, sb.size);
        msgpack_sbuffer_destroy(&sb);
    }
    encode(id, "noop", queue, NULL, &sb);
    wire_enqueue(r, queue, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);

    const char *cut[] = { SLUICE_BIN, "job", id, "--queue", queue, "--scan-limit", "2", NULL };
    th_result out = th_run(cut, NULL);
    cr_assert_eq(out.status, EXIT_UNKNOWN, "%s%s", out.out, out.err);
    cr_assert(strstr(out.out, "search incomplete: raise --scan-limit"), "%s", out.out);
    th_result_free(&out);
    const char *enough[] = { SLUICE_BIN, "job", id, "--queue", queue, "--scan-limit", "4", NULL };
    out = th_run(enough, NULL);
    cr_assert_eq(out.status, EXIT_PENDING, "%s%s", out.out, out.err);
    cr_assert(strstr(out.out, "queued: waiting in queue"), "%s", out.out);
    th_result_free(&out);
    /* Every entry read, none left: a complete answer. */
    const char *all[] = { SLUICE_BIN, "job", "not-in-it", "--queue", queue, "--scan-limit", "4", "--json", NULL };
    out = th_run(all, NULL);
    cr_assert_eq(out.status, EXIT_UNKNOWN, "%s%s", out.out, out.err);
    cr_assert(strstr(out.out, "\"search_complete\":true"), "%s", out.out);
    th_result_free(&out);
    sl_redis_free(r);
}
