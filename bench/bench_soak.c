/* bench_soak.c: millions of jobs through the pool with short retention —
 * does PostgreSQL stay bounded, and does throughput hold?
 *
 * Starts sluice-worker and sluice-scheduler (whose leader applies
 * retention) with `retention.succeeded` set to --retention, then keeps a
 * backlog of noop jobs in one queue until --jobs have been enqueued, and
 * samples once a second: jobs done (enqueued minus what the stream still
 * holds), and every --report seconds the size of sluice_jobs and
 * sluice_claims (table + indexes + TOAST), their live and dead tuples and
 * autovacuum counts.  It also tracks the longest time in which the pool
 * finished nothing while work was waiting (a stall, sampled every 50 ms).
 * At the end: throughput in the first and last reporting windows after the
 * first retention window, sizes at the end of that window and at the end.
 * Needs REDIS_URL and DATABASE_URL (run it under scripts/servers.sh, after
 * `sluice migrate`).  Run by hand; nothing here is a pass/fail test. */
#include "clock.h"
#include "envelope.h"
#include "jobid.h"
#include "queue.h"
#include "redis.h"

#include <getopt.h>
#include <libpq-fe.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct sizes {
    long long jobs_bytes, claims_bytes, live, dead, autovacuums;
} sizes;

static int read_sizes(PGconn *pg, sizes *s)
{
    PGresult *res = PQexec(pg,
        "SELECT pg_total_relation_size('sluice_jobs'), pg_total_relation_size('sluice_claims'),"
        " (SELECT coalesce(sum(n_live_tup), 0) FROM pg_stat_user_tables"
        "   WHERE relname IN ('sluice_jobs', 'sluice_claims')),"
        " (SELECT coalesce(sum(n_dead_tup), 0) FROM pg_stat_user_tables"
        "   WHERE relname IN ('sluice_jobs', 'sluice_claims')),"
        " (SELECT coalesce(sum(autovacuum_count), 0) FROM pg_stat_user_tables"
        "   WHERE relname IN ('sluice_jobs', 'sluice_claims'))");
    int ok = PQresultStatus(res) == PGRES_TUPLES_OK;
    if (ok) {
        s->jobs_bytes = atoll(PQgetvalue(res, 0, 0));
        s->claims_bytes = atoll(PQgetvalue(res, 0, 1));
        s->live = atoll(PQgetvalue(res, 0, 2));
        s->dead = atoll(PQgetvalue(res, 0, 3));
        s->autovacuums = atoll(PQgetvalue(res, 0, 4));
    } else {
        fprintf(stderr, "bench_soak: sizes: %s", PQerrorMessage(pg));
    }
    PQclear(res);
    return ok ? 0 : -1;
}

/* Appends n noop envelopes to queue's stream in one pipelined round trip. */
static int enqueue_chunk(sl_redis *r, const char *key, const char *queue, long n)
{
    sl_err err;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    int rc = 0;
    for (long i = 0; i < n && rc == 0; i++) {
        char id[37];
        sl_jobid_new(id);
        sl_job job = { .id = id, .kind = "noop", .queue = (char *)queue, .attempt = 1,
                       .enqueued_at = sl_now_ms(), .args = "\x80", .args_len = 1 };
        msgpack_sbuffer_clear(&sb);
        const char *xadd[] = { "XADD", key, "*", "job", NULL };
        if (sl_envelope_encode(&job, &sb, &err) < 0)
            rc = -1;
        xadd[4] = sb.data;
        size_t lens[] = { 4, strlen(key), 1, 3, sb.size };
        if (rc == 0 && sl_redis_append(r, 5, xadd, lens, &err) < 0)
            rc = -1;
    }
    for (long i = 0; i < n && rc == 0; i++) {
        redisReply *rep = sl_redis_reply(r, &err);
        if (rep == NULL || rep->type == REDIS_REPLY_ERROR) {
            fprintf(stderr, "bench_soak: XADD: %s\n", rep ? rep->str : err.msg);
            rc = -1;
        }
        if (rep)
            freeReplyObject(rep);
    }
    msgpack_sbuffer_destroy(&sb);
    return rc;
}

static pid_t spawn(const char *const *argv)
{
    pid_t pid = fork();
    if (pid == 0) {
        execv(argv[0], (char *const *)argv);
        perror(argv[0]);
        _exit(127);
    }
    return pid;
}

static void usage(void)
{
    printf("Usage: bench_soak [--jobs N] [--processes P] [--retention SECONDS] [--backlog B]\n"
           "                  [--report SECONDS] [--bin DIR]\n"
           "Pushes N noop jobs (default 10000000) through P worker processes (2) with\n"
           "retention.succeeded of SECONDS (180) applied by a running scheduler, keeping\n"
           "about B jobs waiting (200000); prints throughput, table sizes, dead tuples and\n"
           "autovacuums every --report seconds (10), the longest stall, and a summary.\n"
           "--bin: the directory holding sluice-worker and sluice-scheduler (build).\n");
}

int main(int argc, char **argv)
{
    long jobs = 10000000, processes = 2, retention_s = 180, backlog = 200000, report_s = 10;
    const char *bin = "build";
    static const struct option opts[] = {
        { "jobs", required_argument, NULL, 'j' }, { "processes", required_argument, NULL, 'p' },
        { "retention", required_argument, NULL, 'r' }, { "backlog", required_argument, NULL, 'b' },
        { "report", required_argument, NULL, 'R' }, { "bin", required_argument, NULL, 'B' },
        { "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 },
    };
    int c;
    while ((c = getopt_long(argc, argv, "j:p:r:b:R:B:h", opts, NULL)) != -1) {
        switch (c) {
        case 'j': jobs = atol(optarg); break;
        case 'p': processes = atol(optarg); break;
        case 'r': retention_s = atol(optarg); break;
        case 'b': backlog = atol(optarg); break;
        case 'R': report_s = atol(optarg); break;
        case 'B': bin = optarg; break;
        case 'h': usage(); return 0;
        default: return 2;
        }
    }
    const char *redis_url = getenv("REDIS_URL"), *db_url = getenv("DATABASE_URL");
    if (!redis_url || !db_url || jobs < 1 || processes < 1 || retention_s < 1 || backlog < 1000 || report_s < 1) {
        fprintf(stderr, "bench_soak: needs REDIS_URL and DATABASE_URL (scripts/servers.sh) and sane options\n");
        return 2;
    }
    sl_err err;
    sl_redis *r = sl_redis_connect(redis_url, 60000, &err);
    PGconn *pg = PQconnectdb(db_url);
    if (r == NULL || PQstatus(pg) != CONNECTION_OK) {
        fprintf(stderr, "bench_soak: %s %s\n", r ? "" : err.msg, PQerrorMessage(pg));
        return 1;
    }
    char dir[] = "/tmp/sluice-soak-XXXXXX";
    if (mkdtemp(dir) == NULL) {
        perror("bench_soak: mkdtemp");
        return 1;
    }
    char cfg[300], pipes[300], pipe_file[400], worker[600], sched[600];
    snprintf(cfg, sizeof cfg, "%s/sluice.yaml", dir);
    snprintf(pipes, sizeof pipes, "%s/pipelines", dir);
    snprintf(pipe_file, sizeof pipe_file, "%s/idle.yaml", pipes);
    snprintf(worker, sizeof worker, "%s/sluice-worker", bin);
    snprintf(sched, sizeof sched, "%s/sluice-scheduler", bin);
    FILE *f = fopen(cfg, "w");
    if (f == NULL || mkdir(pipes, 0700) < 0) {
        perror("bench_soak: config");
        return 1;
    }
    /* Everything the soak makes succeeds; failures and runs keep their defaults. */
    fprintf(f, "retention:\n  succeeded: %lds\n  batch: 1000\n", retention_s);
    fclose(f);
    if ((f = fopen(pipe_file, "w")) == NULL) {
        perror("bench_soak: pipeline");
        return 1;
    }
    fputs("name: idle\nsteps:\n  - {id: a, kind: noop}\n", f);
    fclose(f);

    char queue[64], key[SL_KEY_MAX], procs[16];
    snprintf(queue, sizeof queue, "soak-%ld", (long)getpid());
    sl_queue_key(key, queue, "jobs");
    snprintf(procs, sizeof procs, "%ld", processes);
    if (sl_queue_ensure_group(r, queue, &err) < 0) {
        fprintf(stderr, "bench_soak: %s\n", err.msg);
        return 1;
    }
    const char *wargs[] = { worker, "--config", cfg, "--queues", queue, "--processes", procs,
                            "--log-level", "warn", NULL };
    const char *sargs[] = { sched, "--config", cfg, "--pipelines", pipes, "--log-level", "warn", NULL };
    pid_t wpid = spawn(wargs), spid = spawn(sargs);

    long enqueued = 0;
    double t0 = sl_monotonic_sec(), last_progress = t0, longest_stall = 0,
           next_report = t0 + (double)report_s, window_start = t0;
    long long done = 0, done_at_window = 0;
    sizes at_retention = { 0 }, now = { 0 };
    bool retention_seen = false;
    double first_rate = 0, last_rate = 0;
    printf("%8s %10s %10s %12s %12s %10s %10s %6s %8s\n", "t(s)", "done", "jobs/s", "jobs MiB",
           "claims MiB", "live", "dead", "avac", "stall ms");
    while (done < jobs) {
        long long len = 0, pending = 0;
        if (sl_queue_depth(r, queue, &len, &pending, &err) < 0) {
            fprintf(stderr, "bench_soak: %s\n", err.msg);
            break;
        }
        long long finished = enqueued - len;
        if (finished > done) {
            done = finished;
            last_progress = sl_monotonic_sec();
        } else if (len > 0 && sl_monotonic_sec() - last_progress > longest_stall) {
            longest_stall = sl_monotonic_sec() - last_progress;
        }
        if (enqueued < jobs && len < backlog / 2) {
            long chunk = jobs - enqueued < backlog / 2 ? jobs - enqueued : backlog / 2;
            for (long sent = 0; sent < chunk; sent += 1000) {
                long n = chunk - sent < 1000 ? chunk - sent : 1000;
                if (enqueue_chunk(r, key, queue, n) < 0)
                    return 1;
            }
            enqueued += chunk;
        }
        double t = sl_monotonic_sec();
        if (t >= next_report) {
            double rate = (double)(done - done_at_window) / (t - window_start);
            if (read_sizes(pg, &now) == 0)
                printf("%8.0f %10lld %10.0f %12.1f %12.1f %10lld %10lld %6lld %8.0f\n", t - t0, done, rate,
                       (double)now.jobs_bytes / 1048576.0, (double)now.claims_bytes / 1048576.0, now.live,
                       now.dead, now.autovacuums, longest_stall * 1000);
            fflush(stdout);
            if (!retention_seen && t - t0 >= (double)retention_s + (double)report_s) {
                retention_seen = true;
                at_retention = now;
                first_rate = rate;
            }
            if (retention_seen)
                last_rate = rate;
            done_at_window = done;
            window_start = t;
            next_report = t + (double)report_s;
        }
        usleep(50000);
    }
    double secs = sl_monotonic_sec() - t0;
    kill(wpid, SIGTERM);
    kill(spid, SIGTERM);
    waitpid(wpid, NULL, 0);
    waitpid(spid, NULL, 0);
    read_sizes(pg, &now);
    printf("soak: %lld jobs in %.0f s (%.0f jobs/s overall), %ld processes, retention %ld s\n", done, secs,
           (double)done / secs, processes, retention_s);
    if (retention_seen) {
        printf("after the first retention window: %.0f jobs/s; at the end: %.0f jobs/s (%.1f %%)\n", first_rate,
               last_rate, first_rate > 0 ? 100.0 * last_rate / first_rate : 0);
        printf("sluice_jobs %.1f -> %.1f MiB, sluice_claims %.1f -> %.1f MiB, live rows %lld -> %lld\n",
               (double)at_retention.jobs_bytes / 1048576.0, (double)now.jobs_bytes / 1048576.0,
               (double)at_retention.claims_bytes / 1048576.0, (double)now.claims_bytes / 1048576.0,
               at_retention.live, now.live);
    } else {
        printf("(the run ended before one retention window passed: no steady-state figures)\n");
    }
    printf("longest stall with work waiting: %.0f ms; autovacuums of jobs/claims: %lld\n", longest_stall * 1000,
           now.autovacuums);
    unlink(pipe_file);
    rmdir(pipes);
    unlink(cfg);
    rmdir(dir);
    PQfinish(pg);
    sl_redis_free(r);
    return 0;
}
