/* bench_latency.c: how long a job waits between enqueue and start when
 * jobs arrive at a steady rate.
 *
 * Starts sluice-worker on a fresh queue, lets it settle, then enqueues
 * noop jobs one at a time at --rate jobs/s for --warmup seconds and then
 * --seconds more (each enqueue is a separate round trip, paced on an
 * absolute schedule, like independent producers), and waits until
 * PostgreSQL holds every result.  For the jobs enqueued after the warm-up
 * (a pool just started first connects, prepares and fills its caches;
 * with --warmup 0 that is measured too) it reads the enqueue→start
 * latency (started_at - enqueued_at as the worker recorded them, in µs:
 * the producer writes enqueued_at_us): p50, p90, p99 and max.
 *
 * Beside them, two baselines measured in the same round, so that runs on
 * machines of different speed and load compare as ratios: 2,000 Redis
 * round trips (PING) from this process back to back, and 2,000 more paced
 * at --rate, the client and Redis idle in between as the pool is (a round
 * trip that has to wake Redis, which on a virtual machine can cost more
 * than the round trip itself; a job's start needs several such wake-ups).
 * Repeats --rounds times and prints the medians.  Needs REDIS_URL and
 * DATABASE_URL (scripts/servers.sh).  Run by hand; nothing here is a
 * pass/fail test. */
#include "stats.h"
#include "clock.h"
#include "envelope.h"
#include "jobid.h"
#include "queue.h"
#include "redis.h"

#include <errno.h>
#include <getopt.h>
#include <libpq-fe.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Sleeps until the absolute CLOCK_MONOTONIC time t (seconds). */
static void sleep_until(double t)
{
    struct timespec ts = { .tv_sec = (time_t)t, .tv_nsec = (long)((t - (double)(time_t)t) * 1e9) };
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
        ;
}

/* p50 and p99 in µs of PING_SAMPLES Redis round trips (PING), one at a
 * time, each gap seconds after the one before started (0: back to back):
 * the floor any enqueue->start latency stands on. */
#define PING_SAMPLES 2000
static int ping_baseline(sl_redis *r, double gap, double *p50, double *p99)
{
    static double us[PING_SAMPLES];
    double start = sl_monotonic_sec();
    for (int i = 0; i < PING_SAMPLES; i++) {
        const char *argv[] = { "PING" };
        sl_err err;
        if (gap > 0)
            sleep_until(start + gap * i);
        double t0 = sl_monotonic_sec();
        redisReply *rep = sl_redis_command(r, 1, argv, NULL, &err);
        us[i] = (sl_monotonic_sec() - t0) * 1e6;
        if (rep == NULL) {
            fprintf(stderr, "bench_latency: PING: %s\n", err.msg);
            return -1;
        }
        freeReplyObject(rep);
    }
    bench_sort(us, PING_SAMPLES);
    *p50 = us[PING_SAMPLES / 2];
    *p99 = us[PING_SAMPLES * 99 / 100];
    return 0;
}

static long long count_rows(PGconn *pg, const char *queue)
{
    const char *p[] = { queue };
    PGresult *res = PQexecParams(pg, "SELECT count(*) FROM sluice_jobs WHERE queue = $1", 1, NULL, p,
                                 NULL, NULL, 0);
    long long n = PQresultStatus(res) == PGRES_TUPLES_OK ? atoll(PQgetvalue(res, 0, 0)) : -1;
    PQclear(res);
    return n;
}

int main(int argc, char **argv)
{
    long rate = 2000, seconds = 10, rounds = 3, processes = 2, warmup = 2;
    const char *worker = "build/sluice-worker", *config = NULL;
    static const struct option opts[] = {
        { "rate", required_argument, NULL, 'R' }, { "seconds", required_argument, NULL, 's' },
        { "rounds", required_argument, NULL, 'r' }, { "processes", required_argument, NULL, 'p' },
        { "worker", required_argument, NULL, 'w' }, { "config", required_argument, NULL, 'c' },
        { "warmup", required_argument, NULL, 'W' },
        { "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 },
    };
    int c;
    while ((c = getopt_long(argc, argv, "R:s:r:p:w:c:W:h", opts, NULL)) != -1) {
        switch (c) {
        case 'R': rate = atol(optarg); break;
        case 's': seconds = atol(optarg); break;
        case 'r': rounds = atol(optarg); break;
        case 'p': processes = atol(optarg); break;
        case 'w': worker = optarg; break;
        case 'c': config = optarg; break;
        case 'W': warmup = atol(optarg); break;
        case 'h':
            printf("Usage: bench_latency [--rate JOBS_PER_S] [--seconds S] [--warmup S] [--rounds R]\n"
                   "                     [--processes P] [--worker PATH] [--config FILE]\n"
                   "Enqueues noop jobs at a steady rate into a running pool and reports the\n"
                   "enqueue->start latency p50/p90/p99/max of those enqueued after the warm-up.\n"
                   "Defaults: 2000 jobs/s, 10 s after a 2 s warm-up, 3 rounds, 2 processes.\n");
            return 0;
        default: return 2;
        }
    }
    const char *redis_url = getenv("REDIS_URL"), *db_url = getenv("DATABASE_URL");
    if (!redis_url || !db_url || rate < 1 || seconds < 1 || warmup < 0 || rounds < 1 || processes < 1) {
        fprintf(stderr, "bench_latency: needs REDIS_URL and DATABASE_URL (run under scripts/servers.sh) and positive values\n");
        return 2;
    }
    sl_err err;
    sl_redis *r = sl_redis_connect(redis_url, 10000, &err);
    PGconn *pg = PQconnectdb(db_url);
    if (r == NULL || PQstatus(pg) != CONNECTION_OK) {
        fprintf(stderr, "bench_latency: %s %s\n", r ? "" : err.msg, PQerrorMessage(pg));
        return 1;
    }
    double *p50 = calloc((size_t)rounds, sizeof *p50), *p99 = calloc((size_t)rounds, sizeof *p99);
    double *rtt99 = calloc((size_t)rounds, sizeof *rtt99), *idle99 = calloc((size_t)rounds, sizeof *idle99);
    double *idle50s = calloc((size_t)rounds, sizeof *idle50s);
    char procs[16];
    snprintf(procs, sizeof procs, "%ld", processes);
    long total = rate * seconds, warm = rate * warmup;
    for (long round = 0; round < rounds; round++) {
        char queue[64];
        snprintf(queue, sizeof queue, "lat-%ld-%ld", (long)getpid(), round);
        if (sl_queue_ensure_group(r, queue, &err) < 0) {
            fprintf(stderr, "bench_latency: %s\n", err.msg);
            return 1;
        }
        pid_t pid = fork();
        if (pid == 0) {
            const char *args[] = { worker, "--queues", queue, "--processes", procs, "--log-level", "warn",
                                   config ? "--config" : NULL, config, NULL };
            execv(worker, (char *const *)args);
            perror("exec sluice-worker");
            _exit(127);
        }
        sleep(1); /* the pool connects and blocks on the stream */
        /* The baselines: Redis round trips (PING) from this process, now,
         * on the same loaded machine, back to back and at the job rate. */
        double ping50, ping99, idle50, idle99_now;
        if (ping_baseline(r, 0, &ping50, &ping99) < 0 || ping_baseline(r, 1.0 / (double)rate, &idle50, &idle99_now) < 0)
            return 1;
        double start = sl_monotonic_sec(), late = 0, measured_from = start;
        char since[32] = "0";   /* Unix µs: the first measured job's enqueue */
        for (long i = 0; i < warm + total; i++) {
            double due = start + (double)i / (double)rate;
            sleep_until(due);
            double lag = sl_monotonic_sec() - due;
            if (lag > late)
                late = lag;
            char id[SL_JOBID_MAX + 1];
            sl_jobid_new(id);
            sl_job job = { .id = id, .kind = "noop", .queue = queue, .attempt = 1 };
            sl_job_stamp_now(&job);
            if (i == warm) {
                snprintf(since, sizeof since, "%lld", (long long)job.enqueued_at_us);
                measured_from = sl_monotonic_sec();
            }
            if (sl_queue_enqueue(r, &job, &err) < 0) {
                fprintf(stderr, "bench_latency: %s\n", err.msg);
                return 1;
            }
        }
        double sent_in = sl_monotonic_sec() - measured_from;
        for (int i = 0; i < 6000 && count_rows(pg, queue) < warm + total; i++)
            usleep(10000);
        kill(pid, SIGTERM);
        waitpid(pid, NULL, 0);
        const char *p[] = { queue, since };
        PGresult *res = PQexecParams(pg,
            "SELECT count(*),"
            " percentile_cont(0.5) WITHIN GROUP (ORDER BY w), percentile_cont(0.9) WITHIN GROUP (ORDER BY w),"
            " percentile_cont(0.99) WITHIN GROUP (ORDER BY w), max(w)"
            " FROM (SELECT extract(epoch FROM started_at - enqueued_at) * 1000000 AS w"
            "       FROM sluice_jobs WHERE queue = $1"
            "        AND enqueued_at >= to_timestamp($2::bigint / 1000000.0::float8)) t", 2, NULL, p, NULL, NULL, 0);
        if (PQresultStatus(res) != PGRES_TUPLES_OK) {
            fprintf(stderr, "bench_latency: %s", PQerrorMessage(pg));
            return 1;
        }
        p50[round] = atof(PQgetvalue(res, 0, 1));
        p99[round] = atof(PQgetvalue(res, 0, 3));
        rtt99[round] = ping99;
        idle99[round] = idle99_now;
        idle50s[round] = idle50;
        printf("round %ld: %s jobs of %ld at %ld/s (sent in %.2f s, worst pacing lag %.1f ms): "
               "enqueue->start p50 %.0f us, p90 %.0f us, p99 %.0f us, max %.0f us; "
               "Redis PING p50 %.0f us, p99 %.0f us (p99 / PING p99 = %.1f); "
               "PING at %ld/s p50 %.0f us, p99 %.0f us (p50 / it %.1f, p99 / it %.1f)\n",
               round + 1, PQgetvalue(res, 0, 0), total, rate, sent_in, late * 1000, p50[round],
               atof(PQgetvalue(res, 0, 2)), p99[round], atof(PQgetvalue(res, 0, 4)), ping50, ping99,
               ping99 > 0 ? p99[round] / ping99 : 0.0, rate, idle50, idle99_now,
               idle50 > 0 ? p50[round] / idle50 : 0.0, idle99_now > 0 ? p99[round] / idle99_now : 0.0);
        fflush(stdout);
        PQclear(res);
    }
    double p50_median = bench_median(p50, rounds), p99_median = bench_median(p99, rounds);
    double rtt_median = bench_median(rtt99, rounds);
    double idle50_median = bench_median(idle50s, rounds), idle99_median = bench_median(idle99, rounds);
    printf("latency at %ld jobs/s, %ld processes, %ld rounds of %ld s: median p50 %.0f us, median p99 %.0f us; "
           "median Redis PING p99 %.0f us (p99 / PING p99 = %.1f); median PING at %ld/s p50 %.0f us, "
           "p99 %.0f us (p50 / it %.1f, p99 / it %.1f)\n",
           rate, processes, rounds, seconds, p50_median, p99_median, rtt_median,
           rtt_median > 0 ? p99_median / rtt_median : 0.0, rate, idle50_median, idle99_median,
           idle50_median > 0 ? p50_median / idle50_median : 0.0, idle99_median > 0 ? p99_median / idle99_median : 0.0);
    free(rtt99);
    free(idle99);
    free(idle50s);
    free(p50);
    free(p99);
    PQfinish(pg);
    sl_redis_free(r);
    return 0;
}
