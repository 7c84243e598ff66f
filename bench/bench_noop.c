/* bench_noop.c: how fast the worker pool drains noop jobs.
 *
 * Each round enqueues --jobs noop jobs into a fresh queue (through the C
 * client library, pipelined in chunks), then starts sluice-worker on that
 * queue and measures the time until PostgreSQL holds a row for every job
 * and the stream is empty.  Prints each round and the median, min and max
 * jobs/s.  Needs REDIS_URL and DATABASE_URL (run it under scripts/servers.sh
 * or scripts/bench.sh).  Run by hand; nothing here is a pass/fail test. */
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
#include <sys/wait.h>
#include <unistd.h>

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
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

/* Enqueues n noop jobs, pipelining 256 at a time. */
static int enqueue_many(sl_redis *r, const char *queue, long n)
{
    sl_err err;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    char key[SL_KEY_MAX];
    sl_queue_key(key, queue, "jobs");
    const char *sadd[] = { "SADD", SL_QUEUES_KEY, queue };
    redisReply *rep = sl_redis_command(r, 3, sadd, NULL, &err);
    if (rep == NULL) {
        fprintf(stderr, "bench: %s\n", err.msg);
        return -1;
    }
    freeReplyObject(rep);
    for (long done = 0; done < n;) {
        long chunk = n - done < 256 ? n - done : 256;
        for (long i = 0; i < chunk; i++) {
            char id[37];
            sl_jobid_new(id);
            sl_job job = { .id = id, .kind = "noop", .queue = (char *)queue, .attempt = 1,
                           .enqueued_at = sl_now_ms() };
            msgpack_sbuffer_clear(&sb);
            if (sl_envelope_encode(&job, &sb, &err) < 0)
                return -1;
            const char *xadd[] = { "XADD", key, "*", "job", sb.data };
            size_t lens[] = { 4, strlen(key), 1, 3, sb.size };
            if (sl_redis_append(r, 5, xadd, lens, &err) < 0)
                return -1;
        }
        for (long i = 0; i < chunk; i++) {
            rep = sl_redis_reply(r, &err);
            if (rep == NULL || rep->type == REDIS_REPLY_ERROR) {
                fprintf(stderr, "bench: XADD: %s\n", rep ? rep->str : err.msg);
                return -1;
            }
            freeReplyObject(rep);
        }
        done += chunk;
    }
    msgpack_sbuffer_destroy(&sb);
    return 0;
}

int main(int argc, char **argv)
{
    long jobs = 20000, rounds = 5, processes = 2;
    const char *worker = "build/sluice-worker", *extra_config = NULL;
    static const struct option opts[] = {
        { "jobs", required_argument, NULL, 'j' }, { "rounds", required_argument, NULL, 'r' },
        { "processes", required_argument, NULL, 'p' }, { "worker", required_argument, NULL, 'w' },
        { "config", required_argument, NULL, 'c' }, { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    int c;
    while ((c = getopt_long(argc, argv, "j:r:p:w:c:h", opts, NULL)) != -1) {
        switch (c) {
        case 'j': jobs = atol(optarg); break;
        case 'r': rounds = atol(optarg); break;
        case 'p': processes = atol(optarg); break;
        case 'w': worker = optarg; break;
        case 'c': extra_config = optarg; break;
        case 'h':
            printf("Usage: bench_noop [--jobs N] [--rounds R] [--processes P] [--worker PATH] [--config FILE]\n"
                   "Measures how fast sluice-worker drains N pre-enqueued noop jobs; prints the median.\n");
            return 0;
        default: return 2;
        }
    }
    const char *redis_url = getenv("REDIS_URL"), *db_url = getenv("DATABASE_URL");
    if (!redis_url || !db_url || jobs < 1 || rounds < 1 || processes < 1) {
        fprintf(stderr, "bench_noop: needs REDIS_URL and DATABASE_URL (run under scripts/servers.sh) and positive counts\n");
        return 2;
    }
    sl_err err;
    sl_redis *r = sl_redis_connect(redis_url, 10000, &err);
    PGconn *pg = PQconnectdb(db_url);
    if (r == NULL || PQstatus(pg) != CONNECTION_OK) {
        fprintf(stderr, "bench_noop: %s %s\n", r ? "" : err.msg, PQerrorMessage(pg));
        return 1;
    }
    double *rates = calloc((size_t)rounds, sizeof *rates);
    char procs[16];
    snprintf(procs, sizeof procs, "%ld", processes);
    for (long round = 0; round < rounds; round++) {
        char queue[64];
        snprintf(queue, sizeof queue, "bench-%ld-%ld", (long)getpid(), round);
        if (enqueue_many(r, queue, jobs) < 0)
            return 1;
        double t0 = sl_monotonic_sec();
        pid_t pid = fork();
        if (pid == 0) {
            const char *args[] = { worker, "--queues", queue, "--processes", procs, "--log-level", "warn",
                                   extra_config ? "--config" : NULL, extra_config, NULL };
            execv(worker, (char *const *)args);
            perror("exec sluice-worker");
            _exit(127);
        }
        long long rows;
        while ((rows = count_rows(pg, queue)) < jobs && rows >= 0)
            usleep(5000);
        double secs = sl_monotonic_sec() - t0;
        kill(pid, SIGTERM);
        waitpid(pid, NULL, 0);
        long long len = 0, pending = 0;
        sl_queue_depth(r, queue, &len, &pending, &err);
        rates[round] = (double)jobs / secs;
        printf("round %ld: %ld jobs in %.3f s = %.0f jobs/s (stream left: %lld, pending: %lld)\n",
               round + 1, jobs, secs, rates[round], len, pending);
        fflush(stdout);
    }
    qsort(rates, (size_t)rounds, sizeof *rates, cmp_double);
    printf("noop throughput, %ld processes, %ld jobs x %ld rounds: median %.0f jobs/s (min %.0f, max %.0f)\n",
           processes, jobs, rounds, rates[rounds / 2], rates[0], rates[rounds - 1]);
    free(rates);
    PQfinish(pg);
    sl_redis_free(r);
    return 0;
}
