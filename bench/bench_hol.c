/* bench_hol.c: head-of-line blocking — do short jobs wait behind a long one?
 *
 * Each round starts sluice-worker (--processes, default 2) on a fresh queue
 * and waits until its children are idle, then enqueues one `sleep` job of
 * --sleep-ms (default 2000) followed at once by --jobs (default 1000)
 * `noop` jobs.  With the other process idle, the no-ops should all finish
 * long before the sleep does; every no-op that finishes after the sleep job
 * was held hostage behind it (taken into the same batch, or its process
 * busy).  Prints, per round and as medians: when the last no-op finished
 * (ms after the enqueue) and how many finished after the sleep job.  The
 * sleep kind is a test kind: the pool is started with SLUICE_TEST_KINDS=1.
 * Needs REDIS_URL and DATABASE_URL (run it under scripts/servers.sh). */
#include "stats.h"
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

static double pg_number(PGconn *pg, const char *sql, const char *queue)
{
    const char *p[] = { queue };
    PGresult *res = PQexecParams(pg, sql, 1, NULL, p, NULL, NULL, 0);
    double v = PQresultStatus(res) == PGRES_TUPLES_OK && !PQgetisnull(res, 0, 0)
                   ? atof(PQgetvalue(res, 0, 0)) : -1;
    PQclear(res);
    return v;
}

static int enqueue(sl_redis *r, const char *queue, const char *kind, const msgpack_sbuffer *args)
{
    char id[40];
    sl_jobid_new(id);
    sl_job job = { .id = id, .kind = (char *)kind, .queue = (char *)queue,
                   .args = args->data, .args_len = args->size, .attempt = 1,
                   .enqueued_at = sl_now_ms() };
    sl_err err;
    if (sl_queue_enqueue(r, &job, &err) < 0) {
        fprintf(stderr, "bench_hol: %s\n", err.msg);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    long jobs = 1000, rounds = 3, processes = 2, sleep_ms = 2000;
    const char *worker = "build/sluice-worker";
    static const struct option opts[] = {
        { "jobs", required_argument, NULL, 'j' }, { "rounds", required_argument, NULL, 'r' },
        { "processes", required_argument, NULL, 'p' }, { "sleep-ms", required_argument, NULL, 's' },
        { "worker", required_argument, NULL, 'w' }, { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    int c;
    while ((c = getopt_long(argc, argv, "j:r:p:s:w:h", opts, NULL)) != -1) {
        switch (c) {
        case 'j': jobs = atol(optarg); break;
        case 'r': rounds = atol(optarg); break;
        case 'p': processes = atol(optarg); break;
        case 's': sleep_ms = atol(optarg); break;
        case 'w': worker = optarg; break;
        case 'h':
            printf("Usage: bench_hol [--jobs N] [--rounds R] [--processes P] [--sleep-ms MS] [--worker PATH]\n"
                   "One sleep job of MS then N noop jobs into an idle pool of P processes (shipped\n"
                   "defaults otherwise): when the last noop finished and how many finished after\n"
                   "the sleep job.  Defaults: N 1000, R 3, P 2, MS 2000.\n");
            return 0;
        default: return 2;
        }
    }
    const char *redis_url = getenv("REDIS_URL"), *db_url = getenv("DATABASE_URL");
    if (!redis_url || !db_url || jobs < 1 || rounds < 1 || processes < 1 || sleep_ms < 1) {
        fprintf(stderr, "bench_hol: needs REDIS_URL and DATABASE_URL (run under scripts/servers.sh) and positive counts\n");
        return 2;
    }
    sl_err err;
    sl_redis *r = sl_redis_connect(redis_url, 60000, &err);
    PGconn *pg = PQconnectdb(db_url);
    if (r == NULL || PQstatus(pg) != CONNECTION_OK) {
        fprintf(stderr, "bench_hol: %s %s\n", r ? "" : err.msg, PQerrorMessage(pg));
        return 1;
    }
    msgpack_sbuffer noop_args, sleep_args;
    msgpack_sbuffer_init(&noop_args);
    msgpack_sbuffer_init(&sleep_args);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &noop_args, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 0);
    msgpack_packer_init(&pk, &sleep_args, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 1);
    msgpack_pack_str(&pk, 2);
    msgpack_pack_str_body(&pk, "ms", 2);
    msgpack_pack_int64(&pk, sleep_ms);
    double *last = calloc((size_t)rounds, sizeof *last), *held = calloc((size_t)rounds, sizeof *held);
    char procs[16];
    snprintf(procs, sizeof procs, "%ld", processes);
    for (long round = 0; round < rounds; round++) {
        char queue[64];
        snprintf(queue, sizeof queue, "hol-%ld-%ld", (long)getpid(), round);
        if (sl_queue_ensure_group(r, queue, &err) < 0) {
            fprintf(stderr, "bench_hol: %s\n", err.msg);
            return 1;
        }
        pid_t pid = fork();
        if (pid == 0) {
            setenv("SLUICE_TEST_KINDS", "1", 1);
            const char *wargs[] = { worker, "--queues", queue, "--processes", procs,
                                    "--log-level", "warn", NULL };
            execv(worker, (char *const *)wargs);
            perror("exec sluice-worker");
            _exit(127);
        }
        sl_sleep_ms(1500);   /* children connected and blocked on the empty queue */
        if (enqueue(r, queue, "sleep", &sleep_args) < 0)
            return 1;
        for (long i = 0; i < jobs; i++)
            if (enqueue(r, queue, "noop", &noop_args) < 0)
                return 1;
        for (;;) {
            long long len = -1, pending = -1;
            if (sl_queue_depth(r, queue, &len, &pending, &err) < 0) {
                fprintf(stderr, "bench_hol: %s\n", err.msg);
                return 1;
            }
            if (len == 0 && pending == 0)
                break;
            usleep(10000);
        }
        kill(pid, SIGTERM);
        waitpid(pid, NULL, 0);
        last[round] = pg_number(pg, "SELECT 1000 * extract(epoch FROM max(finished_at) - min(enqueued_at)) "
                                    "FROM sluice_jobs WHERE queue = $1 AND kind = 'noop'", queue);
        held[round] = pg_number(pg, "SELECT count(*) FROM sluice_jobs n WHERE n.queue = $1 AND n.kind = 'noop' "
                                    "AND n.finished_at >= (SELECT finished_at FROM sluice_jobs s "
                                    "WHERE s.queue = $1 AND s.kind = 'sleep')", queue);
        printf("round %ld: last of %ld noops finished %.1f ms after the first enqueue; %.0f finished "
               "after the %ld ms sleep job\n", round + 1, jobs, last[round], held[round], sleep_ms);
        fflush(stdout);
    }
    printf("head-of-line: %ld processes, sleep %ld ms + %ld noops, %ld rounds: median last noop %.1f ms, "
           "median held behind the sleep %.0f\n", processes, sleep_ms, jobs, rounds,
           bench_median(last, rounds), bench_median(held, rounds));
    free(last);
    free(held);
    msgpack_sbuffer_destroy(&noop_args);
    msgpack_sbuffer_destroy(&sleep_args);
    PQfinish(pg);
    sl_redis_free(r);
    return 0;
}
