/* test_master.c: the prefork master (worker/master.c, worker/supervise.c,
 * worker/scoreboard.c) driven from outside, like an operator would: the
 * real sluice-worker binary, real signals, real Redis and PostgreSQL.
 *
 * Children are found in the master's log (worker.started child=PID, and
 * worker.exited / worker.killed for the ones gone) and in the registry that
 * `sluice workers --json` prints; "alive" means /proc shows the process and
 * it is not a zombie.  Every wait is bounded; nothing asserts on speed. */
#include "harness.h"

#include "args.h"
#include "json.h"
#include "mem.h"
#include "queue.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_PIDS 256

/* The pool a test started, killed by the suite's fini if the test failed. */
static pid_t current_master;

static void kill_leftover(void)
{
    if (current_master > 0 && kill(current_master, 0) == 0)
        th_stop(current_master, SIGKILL, 5000);
    current_master = 0;
}

TestSuite(master, .fini = kill_leftover);

/* ---- helpers -------------------------------------------------------------- */

static bool alive(long pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return false;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *close = strrchr(buf, ')');
    return close && close[1] == ' ' && close[2] != 'Z' && close[2] != 'X';
}

static char *new_log_path(void)
{
    char name[64];
    th_name(name, sizeof name, "master");
    return sl_xasprintf("/tmp/sluice-%s.log", name);
}

/* A configuration file: quick reads so that stops are prompt, plus extra. */
static char *write_config(const char *extra)
{
    char *text = sl_xasprintf("worker:\n  block: 100ms\n  shutdown_timeout: 10s\n%s", extra ? extra : "");
    char *path = th_write_temp("sluice.yaml", text);
    free(text);
    return path;
}

static pid_t start(const char *config, const char *queue, const char *processes, const char *log,
                   const char *const *more)
{
    const char *args[24] = { "--config", config, "--queues", queue };
    size_t n = 4;
    if (processes) {
        args[n++] = "--processes";
        args[n++] = processes;
    }
    for (size_t i = 0; more && more[i] && n < 23; i++)
        args[n++] = more[i];
    args[n] = NULL;
    current_master = th_worker_start(args, log);
    return current_master;
}

/* Children by the log: started and not (yet) logged as exited or killed. */
typedef struct children {
    long pid[MAX_PIDS];
    int slot[MAX_PIDS];
    int n;
    int started;  /* worker.started lines */
} children;

static long field_long(const char *line, const char *key)
{
    const char *p = strstr(line, key);
    return p ? atol(p + strlen(key)) : -1;
}

static void log_children(const char *log, children *out)
{
    memset(out, 0, sizeof *out);
    char *text = th_read_file(log);
    if (text == NULL)
        return;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (!strstr(line, "role=master"))
            continue;
        long pid = field_long(line, " child=");
        if (strstr(line, "event=worker.started") && out->n < MAX_PIDS) {
            out->pid[out->n] = pid;
            out->slot[out->n++] = (int)field_long(line, " slot=");
            out->started++;
        } else if (strstr(line, "event=worker.exited") || strstr(line, "event=worker.killed")) {
            for (int i = 0; i < out->n; i++) {
                if (out->pid[i] == pid) {
                    out->pid[i] = out->pid[out->n - 1];
                    out->slot[i] = out->slot[out->n - 1];
                    out->n--;
                    break;
                }
            }
        }
    }
    free(text);
}

/* Children the log says run, that are also alive. */
static int alive_children(const char *log, children *c)
{
    log_children(log, c);
    int n = 0;
    for (int i = 0; i < c->n; i++)
        n += alive(c->pid[i]);
    return n;
}

typedef struct want_children {
    const char *log;
    int n;
} want_children;

static bool has_children(void *arg)
{
    want_children *w = arg;
    children c;
    return alive_children(w->log, &c) == w->n && c.n == w->n;
}

static void wait_children(const char *log, int n, const char *why)
{
    want_children w = { log, n };
    if (!th_wait(has_children, &w, 30000)) {
        children c;
        int live = alive_children(log, &c);
        char *text = th_read_file(log);
        cr_assert_fail("%s: expected %d children, the log shows %d (%d alive); log:\n%s", why, n,
                       c.n, live, text ? text : "");
    }
}

typedef struct want_text {
    const char *path;
    const char *text;
    int count;  /* at least this many occurrences */
} want_text;

static int occurrences(const char *path, const char *text)
{
    char *all = th_read_file(path);
    int n = 0;
    for (const char *p = all; p && (p = strstr(p, text)) != NULL; p += strlen(text))
        n++;
    free(all);
    return n;
}

static bool has_text(void *arg)
{
    want_text *w = arg;
    return occurrences(w->path, w->text) >= (w->count ? w->count : 1);
}

static void wait_text(const char *path, const char *text, int count, int timeout_ms)
{
    want_text w = { path, text, count };
    if (!th_wait(has_text, &w, timeout_ms)) {
        char *all = th_read_file(path);
        cr_assert_fail("waited for %d x \"%s\" in %s; it holds:\n%s", count ? count : 1, text, path,
                       all ? all : "(nothing)");
    }
}

static void assert_log_clean(const char *log)
{
    char *text = th_read_file(log);
    cr_assert(text && !strstr(text, "Sanitizer"), "a sanitizer reported an error:\n%s", text);
    cr_assert(!strstr(text, "level=error"), "the pool logged an error:\n%s", text);
    free(text);
}

static void stop_cleanly(pid_t master, const char *log)
{
    int status = th_stop(master, SIGTERM, 30000);
    current_master = 0;
    char *text = th_read_file(log);
    cr_assert_eq(status, 0, "sluice-worker did not stop cleanly (status %d); log:\n%s", status,
                 text ? text : "");
    free(text);
}

/* The registry document of master (from `sluice workers --json`), parsed
 * into *packed; false if it is not there. */
static bool registry_doc(pid_t master, msgpack_sbuffer *packed, msgpack_unpacked *up,
                         const msgpack_object **doc)
{
    const char *argv[] = { SLUICE_BIN, "workers", "--json", NULL };
    th_result r = th_run(argv, NULL);
    cr_assert_eq(r.status, 0, "sluice workers --json: %s", r.err);
    msgpack_sbuffer_init(packed);
    msgpack_unpacked_init(up);
    msgpack_packer pk;
    msgpack_packer_init(&pk, packed, msgpack_sbuffer_write);
    sl_err err;
    cr_assert_eq(sl_json_to_msgpack(r.out, strlen(r.out), &pk, &err), 0, "%s in: %s", err.msg, r.out);
    th_result_free(&r);
    size_t off = 0;
    cr_assert_eq(msgpack_unpack_next(up, packed->data, packed->size, &off), MSGPACK_UNPACK_SUCCESS);
    cr_assert_eq(up->data.type, MSGPACK_OBJECT_ARRAY);
    for (uint32_t i = 0; i < up->data.via.array.size; i++) {
        const msgpack_object *d = &up->data.via.array.ptr[i];
        const msgpack_object *pid = sl_args_get(d, "pid");
        if (pid && pid->type == MSGPACK_OBJECT_POSITIVE_INTEGER && (pid_t)pid->via.u64 == master) {
            *doc = d;
            return true;
        }
    }
    return false;
}

/* Child pids the registry lists for master; -1 if master is not listed. */
static int registry_children(pid_t master, long *pids, int max)
{
    msgpack_sbuffer sb;
    msgpack_unpacked up;
    const msgpack_object *doc = NULL;
    int n = -1;
    if (registry_doc(master, &sb, &up, &doc)) {
        n = 0;
        const msgpack_object *kids = sl_args_get(doc, "children");
        cr_assert(kids && kids->type == MSGPACK_OBJECT_ARRAY);
        for (uint32_t i = 0; i < kids->via.array.size && n < max; i++) {
            const msgpack_object *pid = sl_args_get(&kids->via.array.ptr[i], "pid");
            cr_assert(pid && pid->type == MSGPACK_OBJECT_POSITIVE_INTEGER);
            pids[n++] = (long)pid->via.u64;
        }
    }
    msgpack_unpacked_destroy(&up);
    msgpack_sbuffer_destroy(&sb);
    return n;
}

typedef struct want_registry {
    pid_t master;
    int n;  /* children wanted; -1: the document is gone */
} want_registry;

static bool registry_has(void *arg)
{
    want_registry *w = arg;
    long pids[MAX_PIDS];
    return registry_children(w->master, pids, MAX_PIDS) == w->n;
}

static bool all_dead(void *arg)
{
    children *c = arg;
    for (int i = 0; i < c->n; i++) {
        if (alive(c->pid[i]))
            return false;
    }
    return true;
}

static bool contains(const children *c, long pid)
{
    for (int i = 0; i < c->n; i++) {
        if (c->pid[i] == pid)
            return true;
    }
    return false;
}

/* ---- tests ---------------------------------------------------------------- */

Test(master, term_stops_cleanly_and_leaves_no_child)
{
    th_migrate();
    char queue[64];
    th_name(queue, sizeof queue, "term");
    char *config = write_config(NULL), *log = new_log_path();
    pid_t master = start(config, queue, "2", log, NULL);
    wait_children(log, 2, "after start");
    wait_text(log, "event=worker.ready", 2, 30000);
    /* The registry lists the master and both children. */
    want_registry w = { master, 2 };
    cr_assert(th_wait(registry_has, &w, 10000), "sluice workers --json never listed 2 children");
    long pids[MAX_PIDS];
    int n = registry_children(master, pids, MAX_PIDS);
    children c;
    log_children(log, &c);
    for (int i = 0; i < n; i++)
        cr_assert(contains(&c, pids[i]), "registry child %ld is not in the log", pids[i]);
    const char *table[] = { SLUICE_BIN, "workers", NULL };
    th_result r = th_run(table, NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    char pidtext[32];
    snprintf(pidtext, sizeof pidtext, " %ld ", (long)master);
    cr_assert(strstr(r.out, "HOST") && strstr(r.out, pidtext) && strstr(r.out, "master"), "%s", r.out);
    th_result_free(&r);

    stop_cleanly(master, log);
    for (int i = 0; i < c.n; i++)
        cr_assert(!alive(c.pid[i]), "child %ld outlived its master", c.pid[i]);
    w.n = -1;
    cr_assert(registry_has(&w), "the registry still lists the stopped master");
    assert_log_clean(log);
    unlink(log);
    free(log);
    free(config);
}

Test(master, children_follow_a_sigkilled_master)
{
    th_migrate();
    char queue[64];
    th_name(queue, sizeof queue, "orphan");
    char *config = write_config(NULL), *log = new_log_path();
    pid_t master = start(config, queue, "2", log, NULL);
    wait_children(log, 2, "after start");
    wait_text(log, "event=worker.ready", 2, 30000);
    want_registry w = { master, 2 };
    cr_assert(th_wait(registry_has, &w, 10000));
    children c;
    log_children(log, &c);
    cr_assert_eq(th_stop(master, SIGKILL, 5000), 128 + SIGKILL);
    current_master = 0;
    if (!th_wait(all_dead, &c, 15000)) {
        for (int i = 0; i < c.n; i++)
            if (alive(c.pid[i]))
                kill((pid_t)c.pid[i], SIGKILL);
        cr_assert_fail("children still running 15 s after their master was SIGKILLed");
    }
    /* Its registry document expires by itself. */
    w.n = -1;
    cr_assert(th_wait(registry_has, &w, 15000), "a dead master's registry document did not expire");
    unlink(log);
    free(log);
    free(config);
}

Test(master, ttin_adds_a_child_and_ttou_removes_one_but_never_the_last)
{
    th_migrate();
    char queue[64];
    th_name(queue, sizeof queue, "ttin");
    char *config = write_config(NULL), *log = new_log_path();
    pid_t master = start(config, queue, "2", log, NULL);
    wait_children(log, 2, "after start");
    kill(master, SIGTTIN);
    wait_children(log, 3, "after TTIN");
    kill(master, SIGTTOU);
    wait_children(log, 2, "after one TTOU");
    kill(master, SIGTTOU);
    wait_children(log, 1, "after two TTOUs");
    kill(master, SIGTTOU);
    wait_text(log, "event=pool.resized from=2 to=1", 1, 10000);
    /* The third TTOU has nothing to take away: the registry still says 1. */
    usleep(500000);
    want_registry w = { master, 1 };
    cr_assert(th_wait(registry_has, &w, 10000), "the registry does not show exactly one child");
    children c;
    cr_assert_eq(alive_children(log, &c), 1);
    stop_cleanly(master, log);
    assert_log_clean(log);
    unlink(log);
    free(log);
    free(config);
}

Test(master, hup_reloads_and_replaces_every_child)
{
    th_migrate();
    char queue[64];
    th_name(queue, sizeof queue, "hup");
    char *config = write_config(NULL), *log = new_log_path();
    pid_t master = start(config, queue, NULL, log, NULL); /* worker.processes from the file: 2 */
    wait_children(log, 2, "after start");
    children before;
    log_children(log, &before);
    /* A new file with a different pool size: HUP applies it. */
    FILE *f = fopen(config, "w");
    cr_assert_not_null(f);
    fprintf(f, "worker:\n  block: 100ms\n  shutdown_timeout: 10s\n  processes: 3\n");
    cr_assert_eq(fclose(f), 0);
    kill(master, SIGHUP);
    wait_text(log, "event=config.reloaded", 1, 10000);
    wait_text(log, "event=worker.started", 2 + 3, 30000); /* 2 replacements + 1 more */
    wait_children(log, 3, "after HUP");
    children after;
    log_children(log, &after);
    for (int i = 0; i < before.n; i++)
        cr_assert(!contains(&after, before.pid[i]) && !alive(before.pid[i]),
                  "child %ld was not replaced", before.pid[i]);
    cr_assert_eq(after.started, 2 + 3, "expected 2 + 3 forks, log shows %d", after.started);
    cr_assert_eq(kill(master, 0), 0, "the master is gone");
    char self[64];
    snprintf(self, sizeof self, "role=master pid=%ld event=config.reloaded", (long)master);
    cr_assert_eq(occurrences(log, self), 1, "the reload was not done by the same master");
    stop_cleanly(master, log);
    assert_log_clean(log);
    unlink(log);
    free(log);
    free(config);
}

Test(master, hup_with_a_broken_config_keeps_the_old_one)
{
    char queue[64];
    th_name(queue, sizeof queue, "badhup");
    char *config = write_config(NULL), *log = new_log_path();
    th_migrate();
    pid_t master = start(config, queue, "2", log, NULL);
    wait_children(log, 2, "after start");
    children before;
    log_children(log, &before);
    FILE *f = fopen(config, "w");
    cr_assert_not_null(f);
    fprintf(f, "worker:\n  procesess: 3\n");
    cr_assert_eq(fclose(f), 0);
    kill(master, SIGHUP);
    wait_text(log, "event=config.reload_failed", 1, 10000);
    usleep(300000);
    children after;
    cr_assert_eq(alive_children(log, &after), 2);
    for (int i = 0; i < before.n; i++)
        cr_assert(contains(&after, before.pid[i]), "child %ld was replaced after a failed reload",
                  before.pid[i]);
    stop_cleanly(master, log);
    unlink(log);
    free(log);
    free(config);
}

Test(master, a_sigkilled_child_is_restarted)
{
    th_migrate();
    char queue[64];
    th_name(queue, sizeof queue, "respawn");
    char *config = write_config(NULL), *log = new_log_path();
    pid_t master = start(config, queue, "2", log, NULL);
    wait_children(log, 2, "after start");
    children c;
    log_children(log, &c);
    long victim = c.pid[0];
    cr_assert_eq(kill((pid_t)victim, SIGKILL), 0);
    wait_text(log, "event=worker.started", 3, 30000);
    wait_children(log, 2, "after the kill");
    log_children(log, &c);
    cr_assert(!contains(&c, victim));
    char killed[64];
    snprintf(killed, sizeof killed, "child=%ld signal=9", victim);
    cr_assert_eq(occurrences(log, killed), 1);
    stop_cleanly(master, log);
    unlink(log);
    free(log);
    free(config);
}

static void set_eviction_policy(const char *policy)
{
    sl_redis *r = th_redis();
    const char *argv[] = { "CONFIG", "SET", "maxmemory-policy", policy };
    sl_err err;
    redisReply *rep = sl_redis_command(r, 4, argv, NULL, &err);
    cr_assert_not_null(rep, "%s", err.msg);
    freeReplyObject(rep);
    sl_redis_free(r);
}

/* An evicting Redis can drop queued jobs: the pool says so at start-up.
 * (Without maxmemory nothing is evicted, so the policy is safe to flip in
 * the shared test server for the length of this test.) */
Test(master, warns_when_redis_may_evict_jobs)
{
    th_migrate();
    char queue[64];
    th_name(queue, sizeof queue, "evict");
    char *config = write_config(NULL), *log = new_log_path();
    set_eviction_policy("allkeys-lru");
    pid_t master = start(config, queue, "1", log, NULL);
    want_text w = { log, "event=redis.eviction_policy policy=allkeys-lru", 1 };
    bool warned = th_wait(has_text, &w, 30000);
    set_eviction_policy("noeviction");
    cr_assert(warned, "no eviction warning in the log");
    int status = th_stop(master, SIGTERM, 30000);
    current_master = 0;
    cr_assert_eq(status, 0);
    assert_log_clean(log);
    unlink(log);
    free(log);
    free(config);
}

Test(master, a_child_with_a_fatal_error_is_not_restarted)
{
    th_migrate();
    /* The `postgres` database has no sluice schema: every child exits 78. */
    const char *url = th_env("DATABASE_URL");
    const char *slash = strrchr(url, '/');
    cr_assert_not_null(slash);
    char *bad = sl_xasprintf("%.*s/postgres", (int)(slash - url), url);
    setenv("DATABASE_URL", bad, 1);
    setenv("SLUICE_DATABASE_URL", bad, 1);
    char queue[64];
    th_name(queue, sizeof queue, "fatal");
    char *config = write_config(NULL), *log = new_log_path();
    pid_t master = start(config, queue, "2", log, NULL);
    int status = th_stop(master, 0, 30000); /* signal 0: just wait for it */
    current_master = 0;
    char *text = th_read_file(log);
    cr_assert_eq(status, 78, "the master should exit 78 (got %d); log:\n%s", status, text);
    cr_assert(strstr(text, "fatal=true"), "%s", text);
    children c;
    log_children(log, &c);
    cr_assert_eq(c.started, 2, "a fatal child was restarted; log:\n%s", text);
    cr_assert_eq(c.n, 0);
    free(text);
    unlink(log);
    free(log);
    free(config);
    free(bad);
}

Test(master, usr1_reopens_the_log_file)
{
    th_migrate();
    char queue[64];
    th_name(queue, sizeof queue, "usr1");
    char *config = write_config(NULL), *log = new_log_path(), *rotated = sl_xasprintf("%s.1", log);
    const char *more[] = { "--log-file", log, NULL };
    pid_t master = start(config, queue, "2", "/dev/null", more);
    wait_children(log, 2, "after start");
    cr_assert_eq(rename(log, rotated), 0, "rename: %s", strerror(errno));
    kill(master, SIGUSR1);
    wait_text(log, "event=log.reopened", 1, 10000);
    stop_cleanly(master, log);
    cr_assert_eq(occurrences(log, "event=master.stopped"), 1, "later lines do not go to the new file");
    cr_assert_eq(occurrences(rotated, "event=master.stopped"), 0);
    cr_assert_eq(occurrences(rotated, "event=master.started"), 1);
    assert_log_clean(log);
    unlink(log);
    unlink(rotated);
    free(rotated);
    free(log);
    free(config);
}

static bool file_exists(void *arg) { return access(arg, F_OK) == 0; }

Test(master, pidfile_is_written_guarded_and_removed)
{
    th_migrate();
    char queue[64];
    th_name(queue, sizeof queue, "pidfile");
    char *config = write_config(NULL), *log = new_log_path();
    char *pidfile = th_write_temp("worker.pid", "999999999\n"); /* stale: no such process */
    const char *more[] = { "--pidfile", pidfile, NULL };
    pid_t master = start(config, queue, "1", log, more);
    wait_children(log, 1, "after start");
    char *text = th_read_file(pidfile);
    cr_assert_not_null(text);
    cr_assert_eq(atol(text), (long)master, "pidfile holds '%s', the master is %ld", text, (long)master);
    free(text);
    /* A second master with the same pidfile refuses to start. */
    const char *second[] = { SLUICE_WORKER_BIN, "--config", config, "--queues", queue,
                             "--pidfile", pidfile, NULL };
    th_result r = th_run(second, NULL);
    cr_assert_eq(r.status, 1, "second master: status %d, stderr:\n%s", r.status, r.err);
    cr_assert(strstr(r.err, "pidfile"), "%s", r.err);
    th_result_free(&r);
    text = th_read_file(pidfile);
    cr_assert_eq(atol(text), (long)master, "the refused master touched the pidfile");
    free(text);
    stop_cleanly(master, log);
    cr_assert(!file_exists(pidfile), "pidfile %s left behind", pidfile);
    assert_log_clean(log);
    unlink(log);
    free(log);
    free(pidfile);
    free(config);
}

static char *enqueue(const char *const *args)
{
    const char *argv[16] = { SLUICE_BIN, "enqueue" };
    size_t n = 2;
    for (size_t i = 0; args[i]; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    th_result r = th_run(argv, NULL);
    cr_assert_eq(r.status, 0, "enqueue: %s", r.err);
    r.out[strcspn(r.out, "\n")] = '\0';
    char *id = sl_xstrdup(r.out);
    th_result_free(&r);
    return id;
}

/* Needs the consumer to fill its scoreboard slot around each job. */
Test(master, a_job_past_its_timeout_gets_its_child_killed)
{
    th_migrate();
    char queue[64];
    th_name(queue, sizeof queue, "timeout");
    char *config = write_config("  timeout_grace: 100ms\n"), *log = new_log_path();
    const char *args[] = { "sleep", "--queue", queue, "--arg", "ms=5000", "--timeout", "1s", NULL };
    char *id = enqueue(args);
    pid_t master = start(config, queue, "1", log, NULL);
    char line[160];
    snprintf(line, sizeof line, "event=job.timed_out job=%s", id);
    wait_text(log, line, 1, 20000);
    wait_text(log, "reason=timeout", 1, 10000);
    wait_text(log, "event=worker.started", 2, 10000);
    wait_children(log, 1, "after the timeout");
    stop_cleanly(master, log);
    unlink(log);
    free(log);
    free(config);
    free(id);
}

/* Without a timeout of its own, a job gets its queue's (queues.NAME.timeout). */
Test(master, a_queue_timeout_applies_to_jobs_without_their_own)
{
    th_migrate();
    char queue[64];
    th_name(queue, sizeof queue, "qtimeout");
    char *extra = sl_xasprintf("  timeout_grace: 100ms\nqueues:\n  %s:\n    timeout: 300ms\n", queue);
    char *config = write_config(extra), *log = new_log_path();
    const char *args[] = { "sleep", "--queue", queue, "--arg", "ms=600000", "--max-attempts", "1", NULL };
    char *id = enqueue(args);
    pid_t master = start(config, queue, "1", log, NULL);
    char line[160];
    snprintf(line, sizeof line, "event=job.timed_out job=%s", id);
    wait_text(log, line, 1, 30000);
    const char *p[] = { id };
    for (int i = 0; i < 1500 && th_pg_number("SELECT count(*) FROM sluice_jobs WHERE id = $1", 1, p) == 0; i++)
        usleep(20000);
    cr_assert_eq(th_pg_number("SELECT count(*) FROM sluice_job_history WHERE job_id = $1 AND status = 'timed_out'"
                              " AND error LIKE '%timeout of 300 ms%'", 1, p), 1);
    stop_cleanly(master, log);
    unlink(log);
    free(log);
    free(config);
    free(extra);
    free(id);
}

/* Needs the consumer to list its held entries in its scoreboard slot. */
Test(master, the_master_renews_the_lease_of_a_long_job)
{
    th_migrate();
    char queue[64];
    th_name(queue, sizeof queue, "lease");
    char *config = write_config("  visibility_timeout: 1s\n"), *log = new_log_path();
    const char *args[] = { "sleep", "--queue", queue, "--arg", "ms=3000", NULL };
    char *id = enqueue(args);
    const char *more[] = { "--log-level", "debug", NULL };
    pid_t master = start(config, queue, "2", log, more);
    char line[160];
    snprintf(line, sizeof line, "queue=%s entries=1", queue); /* of event=lease.renewed */
    wait_text(log, line, 1, 20000);
    /* Renewal is no redelivery: the job ran once. */
    const char *p[] = { id };
    for (int i = 0; i < 1500 && th_pg_number("SELECT count(*) FROM sluice_jobs WHERE id = $1", 1, p) == 0; i++)
        usleep(20000);
    cr_assert_eq(th_pg_number("SELECT count(*) FROM sluice_job_history WHERE job_id = $1", 1, p), 1);
    stop_cleanly(master, log);
    snprintf(line, sizeof line, "event=job.succeeded job=%s", id);
    cr_assert_eq(occurrences(log, line), 1, "the job ran more than once (reclaimed despite its lease?)");
    unlink(log);
    free(log);
    free(config);
    free(id);
}

Test(master, workers_command_rejects_bad_usage)
{
    const char *bad[] = { SLUICE_BIN, "workers", "--bogus", NULL };
    th_result r = th_run(bad, NULL);
    cr_assert_eq(r.status, 2, "%s", r.err);
    th_result_free(&r);
    const char *extra[] = { SLUICE_BIN, "workers", "extra", NULL };
    r = th_run(extra, NULL);
    cr_assert_eq(r.status, 2, "%s", r.err);
    th_result_free(&r);
    const char *help[] = { SLUICE_BIN, "workers", "--help", NULL };
    r = th_run(help, NULL);
    cr_assert_eq(r.status, 0);
    cr_assert(strstr(r.out, "Usage: sluice workers"), "%s", r.out);
    th_result_free(&r);
}
