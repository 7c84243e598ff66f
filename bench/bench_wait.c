/* bench_wait.c: what `wait_replicas` costs a producer.
 *
 * Enqueues --jobs (default 5,000) `noop` jobs one at a time, each waiting
 * for its reply, through two Redis URLs in alternating rounds: --plain (the
 * master, no option) and --wait (the same master with ?wait_replicas=1).
 * Prints, per round and as medians of --rounds (default 3): enqueues/s and
 * the p50/p99 of one enqueue's round trip in µs, then the ratios wait/plain.
 * bench/wait.sh starts a master and a replica (scripts/cluster.sh) and runs
 * it.  Workers are not involved: a worker's acknowledgements never WAIT
 * (docs/scaling.md says why). */
#include "stats.h"
#include "clock.h"
#include "envelope.h"
#include "jobid.h"
#include "queue.h"
#include "redis.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

typedef struct figures {
    double rate, p50, p99;
} figures;

/* One round through url: -1 on an error. */
static int round_through(const char *url, long jobs, figures *out)
{
    sl_err err;
    sl_redis *r = sl_redis_connect(url, 10000, &err);
    if (r == NULL) {
        fprintf(stderr, "bench_wait: %s\n", err.msg);
        return -1;
    }
    double *lat = malloc((size_t)jobs * sizeof *lat);
    int rc = lat ? 0 : -1;
    double start = now_us();
    for (long i = 0; i < jobs && rc == 0; i++) {
        char id[40];
        sl_jobid_new(id);
        sl_job job = { .id = id, .kind = "noop", .queue = "bench-wait", .attempt = 1,
                       .enqueued_at = sl_now_ms() };
        double t0 = now_us();
        rc = sl_queue_enqueue(r, &job, &err);
        lat[i] = now_us() - t0;
        if (rc < 0)
            fprintf(stderr, "bench_wait: %s\n", err.msg);
    }
    if (rc == 0) {
        out->rate = (double)jobs / ((now_us() - start) / 1e6);
        bench_sort(lat, (size_t)jobs);
        out->p50 = lat[jobs / 2];
        out->p99 = lat[jobs * 99 / 100];
    }
    free(lat);
    sl_redis_free(r);
    return rc;
}

static void usage(FILE *f)
{
    fprintf(f, "Usage: bench_wait --plain URL --wait URL [--jobs N] [--rounds R]\n"
               "Enqueues N jobs one at a time through each URL, alternating, R rounds;\n"
               "prints enqueues/s and p50/p99 µs per round, their medians and the ratios.\n");
}

int main(int argc, char **argv)
{
    const char *plain = NULL, *wait = NULL;
    long jobs = 5000;
    int rounds = 3;
    static const struct option opts[] = {
        { "plain", required_argument, NULL, 'p' }, { "wait", required_argument, NULL, 'w' },
        { "jobs", required_argument, NULL, 'j' },  { "rounds", required_argument, NULL, 'r' },
        { "help", no_argument, NULL, 'h' },        { NULL, 0, NULL, 0 },
    };
    int c;
    while ((c = getopt_long(argc, argv, "p:w:j:r:h", opts, NULL)) != -1) {
        switch (c) {
        case 'p': plain = optarg; break;
        case 'w': wait = optarg; break;
        case 'j': jobs = atol(optarg); break;
        case 'r': rounds = atoi(optarg); break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (plain == NULL || wait == NULL || jobs < 100 || rounds < 1 || rounds > 50) {
        usage(stderr);
        return 2;
    }
    double v[2][3][50];
    for (int k = 0; k < rounds; k++) {
        for (int side = 0; side < 2; side++) {
            figures f = { 0, 0, 0 };
            if (round_through(side ? wait : plain, jobs, &f) < 0)
                return 1;
            v[side][0][k] = f.rate, v[side][1][k] = f.p50, v[side][2][k] = f.p99;
            printf("round %d %-5s %9.0f enqueues/s  p50 %7.1f µs  p99 %7.1f µs\n", k + 1,
                   side ? "wait" : "plain", f.rate, f.p50, f.p99);
        }
    }
    double m[2][3];
    for (int side = 0; side < 2; side++)
        for (int x = 0; x < 3; x++)
            m[side][x] = bench_median(v[side][x], rounds);
    printf("median plain %9.0f enqueues/s  p50 %7.1f µs  p99 %7.1f µs\n", m[0][0], m[0][1], m[0][2]);
    printf("median wait  %9.0f enqueues/s  p50 %7.1f µs  p99 %7.1f µs\n", m[1][0], m[1][1], m[1][2]);
    printf("ratio wait/plain: enqueues/s %.2f  p50 %.2f  p99 %.2f\n", m[1][0] / m[0][0],
           m[1][1] / m[0][1], m[1][2] / m[0][2]);
    return 0;
}
