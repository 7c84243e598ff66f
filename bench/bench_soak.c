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
 * At the end, with W the retention window: throughput over the second
 * window (the first in which rows are removed) against the last W seconds,
 * and table sizes once two windows have passed (the first rows removed and
 * vacuumed) against the largest size after that and at the end.
 * SIGINT/SIGTERM stops the pool and prints what was measured so far.
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

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
    (void)sig;
    interrupted = 1;
}

/* One report line's figures. */
typedef struct sample {
    double t;          /* seconds since the pool started */
    long long done;    /* jobs finished by then */
    sizes sz;
} sample;

/* The jobs/s between the samples nearest to from and to (seconds). */
static double rate_between(const sample *sm, size_t n, double from, double to)
{
    size_t a = n, b = n;
    for (size_t i = 0; i < n; i++) {
        if (a == n && sm[i].t >= from)
            a = i;
        if (sm[i].t <= to)
            b = i;
    }
    if (a >= n || b >= n || b <= a)
        return 0;
    return (double)(sm[b].done - sm[a].done) / (sm[b].t - sm[a].t);
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

    struct sigaction sa = { .sa_handler = on_signal };
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    long enqueued = 0;
    double t0 = sl_monotonic_sec(), last_progress = t0, longest_stall = 0, next_report = t0 + (double)report_s;
    long long done = 0, done_at_report = 0;
    size_t nsamples = 0, cap = 64;
    sample *sm = calloc(cap, sizeof *sm);
    printf("%8s %10s %10s %12s %12s %10s %10s %6s %8s\n", "t(s)", "done", "jobs/s", "jobs MiB",
           "claims MiB", "live", "dead", "avac", "stall ms");
    while (done < jobs && !interrupted && sm != NULL) {
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
                if (enqueue_chunk(r, key, queue, n) < 0) {
                    interrupted = 1;
                    break;
                }
            }
            enqueued += chunk;
        }
        double t = sl_monotonic_sec();
        if (t >= next_report) {
            sample now = { .t = t - t0, .done = done };
            if (read_sizes(pg, &now.sz) == 0) {
                double since = nsamples ? now.t - sm[nsamples - 1].t : now.t;
                printf("%8.0f %10lld %10.0f %12.1f %12.1f %10lld %10lld %6lld %8.0f\n", now.t, done,
                       (double)(done - done_at_report) / since, (double)now.sz.jobs_bytes / 1048576.0,
                       (double)now.sz.claims_bytes / 1048576.0, now.sz.live, now.sz.dead, now.sz.autovacuums,
                       longest_stall * 1000);
                fflush(stdout);
                if (nsamples == cap)
                    sm = realloc(sm, (cap *= 2) * sizeof *sm);
                if (sm != NULL)
                    sm[nsamples++] = now;
                done_at_report = done;
            }
            next_report = t + (double)report_s;
        }
        usleep(50000);
    }
    double secs = sl_monotonic_sec() - t0;
    kill(wpid, SIGTERM);
    kill(spid, SIGTERM);
    waitpid(wpid, NULL, 0);
    waitpid(spid, NULL, 0);
    sizes end = { 0 };
    read_sizes(pg, &end);
    printf("soak: %lld jobs in %.0f s (%.0f jobs/s overall), %ld processes, retention %ld s%s\n", done, secs,
           (double)done / secs, processes, retention_s, interrupted ? " (interrupted)" : "");
    double w = (double)retention_s;
    const sample *settled = NULL;
    for (size_t i = 0; sm != NULL && i < nsamples && settled == NULL; i++)
        if (sm[i].t >= 2 * w)
            settled = &sm[i];
    if (settled != NULL && nsamples > 0 && sm[nsamples - 1].t - w >= 2 * w) {
        double first = rate_between(sm, nsamples, w, 2 * w);
        double last = rate_between(sm, nsamples, sm[nsamples - 1].t - w, sm[nsamples - 1].t);
        printf("throughput in the second window (%.0f-%.0f s): %.0f jobs/s; in the last %.0f s: %.0f jobs/s"
               " (%.1f %%)\n", w, 2 * w, first, w, last, first > 0 ? 100.0 * last / first : 0);
        long long peak_jobs = 0, peak_claims = 0;
        for (const sample *p = settled; p < sm + nsamples; p++) {
            peak_jobs = p->sz.jobs_bytes > peak_jobs ? p->sz.jobs_bytes : peak_jobs;
            peak_claims = p->sz.claims_bytes > peak_claims ? p->sz.claims_bytes : peak_claims;
        }
        printf("after two windows (%.0f s): sluice_jobs %.1f MiB, sluice_claims %.1f MiB, %lld live rows;"
               " largest since: %.1f, %.1f MiB; at the end: %.1f, %.1f MiB, %lld live rows\n",
               settled->t, (double)settled->sz.jobs_bytes / 1048576.0, (double)settled->sz.claims_bytes / 1048576.0,
               settled->sz.live, (double)peak_jobs / 1048576.0, (double)peak_claims / 1048576.0,
               (double)end.jobs_bytes / 1048576.0, (double)end.claims_bytes / 1048576.0, end.live);
    } else {
        printf("(the run ended before three retention windows passed: no steady-state figures)\n");
    }
    printf("longest stall with work waiting: %.0f ms; autovacuums of jobs/claims: %lld\n", longest_stall * 1000,
           end.autovacuums);
    free(sm);
    unlink(pipe_file);
    rmdir(pipes);
    unlink(cfg);
    rmdir(dir);
    PQfinish(pg);
    sl_redis_free(r);
    return 0;
}
