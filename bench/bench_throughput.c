/* bench_throughput.c: how fast the worker pool drains noop jobs.
 *
 * Each round enqueues --jobs noop jobs (args padded to --payload bytes)
 * into a fresh queue, pipelined in chunks, and notes how much Redis memory
 * the waiting jobs take; then it starts sluice-worker on that queue
 * (--processes, --batch) and measures the wall time until PostgreSQL holds
 * a row for every job, sampling each child's peak RSS (VmHWM) just before
 * it stops the pool.  Prints each round, then medians.  Needs REDIS_URL and
 * DATABASE_URL (run it under scripts/servers.sh).  Run by hand; nothing
 * here is a pass/fail test. */
#include "stats.h"
#include "buf.h"
#include "clock.h"
#include "envelope.h"
#include "jobid.h"
#include "queue.h"
#include "redis.h"

#include <ctype.h>
#include <dirent.h>
#include <getopt.h>
#include <libpq-fe.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* Result rows of the round's queues: `queue`, or its `queue.N` when the
 * jobs were spread (one scan, whatever the number of queues). */
static long long count_rows(PGconn *pg, const char *queue)
{
    const char *p[] = { queue };
    PGresult *res = PQexecParams(pg, "SELECT count(*) FROM sluice_jobs"
                                     " WHERE queue = $1 OR left(queue, length($1) + 1) = $1 || '.'",
                                 1, NULL, p, NULL, NULL, 0);
    long long n = PQresultStatus(res) == PGRES_TUPLES_OK ? atoll(PQgetvalue(res, 0, 0)) : -1;
    PQclear(res);
    return n;
}

/* args {"pad": "xxx…"} of about payload bytes, or {} for 0. */
static void make_args(msgpack_sbuffer *args, long payload)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, args, msgpack_sbuffer_write);
    if (payload <= 0) {
        msgpack_pack_map(&pk, 0);
        return;
    }
    char *pad = malloc((size_t)payload);
    memset(pad, 'x', (size_t)payload);
    msgpack_pack_map(&pk, 1);
    msgpack_pack_str(&pk, 3);
    msgpack_pack_str_body(&pk, "pad", 3);
    msgpack_pack_str(&pk, (size_t)payload);
    msgpack_pack_str_body(&pk, pad, (size_t)payload);
    free(pad);
}

static long long used_memory(sl_redis *r)
{
    const char *argv[] = { "INFO", "memory" };
    sl_err err;
    redisReply *rep = sl_redis_command(r, 2, argv, NULL, &err);
    long long n = -1;
    const char *p = rep && rep->type == REDIS_REPLY_STRING ? strstr(rep->str, "used_memory:") : NULL;
    if (p)
        n = atoll(p + strlen("used_memory:"));
    freeReplyObject(rep);
    return n;
}

/* Peak RSS in KiB of the children of pid (the pool's children). */
static long max_child_hwm(pid_t parent, int *children)
{
    long peak = 0;
    *children = 0;
    DIR *d = opendir("/proc");
    struct dirent *de;
    while (d && (de = readdir(d)) != NULL) {
        if (!isdigit((unsigned char)de->d_name[0]))
            continue;
        char path[300], buf[4096];
        snprintf(path, sizeof path, "/proc/%s/status", de->d_name);
        FILE *f = fopen(path, "r");
        if (f == NULL)
            continue;
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[n] = '\0';
        const char *pp = strstr(buf, "\nPPid:"), *hwm = strstr(buf, "\nVmHWM:");
        if (pp == NULL || hwm == NULL || atol(pp + 6) != (long)parent)
            continue;
        (*children)++;
        long kb = atol(hwm + 7);
        if (kb > peak)
            peak = kb;
    }
    if (d)
        closedir(d);
    return peak;
}

/* Enqueues n noop jobs, pipelining 256 at a time. */
static int enqueue_many(sl_redis *r, const char *queue, long n, const msgpack_sbuffer *args)
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
                           .enqueued_at = sl_now_ms(), .args = args->data, .args_len = args->size };
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

/* Copies the configuration at base into a new file made from tmpl (which
 * it rewrites), with worker.queues set to names[0..n): inserted under an
 * existing `worker:` line, else as a new section.  0, or -1. */
static int write_round_config(const char *base, char *tmpl, char *const *names, long n)
{
    char *text = NULL;
    size_t len = 0;
    FILE *in = fopen(base, "r"), *out = NULL;
    int fd = mkstemp(tmpl);
    if (in == NULL || fd < 0 || (out = fdopen(fd, "w")) == NULL) {
        perror("bench_throughput: round config");
        if (in)
            fclose(in);
        if (fd >= 0)
            close(fd);
        return -1;
    }
    FILE *mem = open_memstream(&text, &len);
    fprintf(mem, "  queues: [");
    for (long q = 0; q < n; q++)
        fprintf(mem, "%s%s", q ? ", " : "", names[q]);
    fprintf(mem, "]\n");
    fclose(mem);
    char line[1024];
    bool placed = false;
    while (fgets(line, sizeof line, in)) {
        fputs(line, out);
        if (!placed && strcmp(line, "worker:\n") == 0) {
            fputs(text, out);
            placed = true;
        }
    }
    if (!placed)
        fprintf(out, "worker:\n%s", text);
    fclose(in);
    free(text);
    return fclose(out) == 0 ? 0 : -1;
}

int main(int argc, char **argv)
{
    long jobs = 200000, rounds = 3, processes = 2, batch = 0, payload = 0, nqueues = 1;
    const char *worker = "build/sluice-worker", *extra_config = NULL;
    static const struct option opts[] = {
        { "jobs", required_argument, NULL, 'j' }, { "rounds", required_argument, NULL, 'r' },
        { "processes", required_argument, NULL, 'p' }, { "batch", required_argument, NULL, 'b' },
        { "payload", required_argument, NULL, 'P' }, { "worker", required_argument, NULL, 'w' },
        { "config", required_argument, NULL, 'c' }, { "queues", required_argument, NULL, 'Q' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    int c;
    while ((c = getopt_long(argc, argv, "j:r:p:b:P:w:c:Q:h", opts, NULL)) != -1) {
        switch (c) {
        case 'j': jobs = atol(optarg); break;
        case 'r': rounds = atol(optarg); break;
        case 'p': processes = atol(optarg); break;
        case 'b': batch = atol(optarg); break;
        case 'P': payload = atol(optarg); break;
        case 'w': worker = optarg; break;
        case 'c': extra_config = optarg; break;
        case 'Q': nqueues = atol(optarg); break;
        case 'h':
            printf("Usage: bench_throughput [--jobs N] [--rounds R] [--processes P] [--batch B]\n"
                   "                        [--payload BYTES] [--worker PATH] [--config FILE]\n"
                   "                        [--queues Q]\n"
                   "Enqueues N noop jobs, starts sluice-worker, measures the time until PostgreSQL\n"
                   "holds every result; prints jobs/s, Redis bytes per waiting job and the\n"
                   "children's peak RSS, per round and as medians.  Defaults: N 200000, R 3,\n"
                   "P 2, B 0 (the shipped worker.batch), payload 0 (args {}).  --config: a file\n"
                   "whose worker settings apply (--batch and --processes override it).  --queues:\n"
                   "spread the jobs evenly over Q queues (default 1), all read by the pool.\n");
            return 0;
        default: return 2;
        }
    }
    const char *redis_url = getenv("REDIS_URL"), *db_url = getenv("DATABASE_URL");
    if (!redis_url || !db_url || jobs < 1 || rounds < 1 || processes < 1 || batch < 0 || payload < 0 ||
        nqueues < 1 || nqueues > 100000) {
        fprintf(stderr, "bench_throughput: needs REDIS_URL and DATABASE_URL (run under scripts/servers.sh) and positive counts\n");
        return 2;
    }
    sl_err err;
    sl_redis *r = sl_redis_connect(redis_url, 60000, &err);
    PGconn *pg = PQconnectdb(db_url);
    if (r == NULL || PQstatus(pg) != CONNECTION_OK) {
        fprintf(stderr, "bench_throughput: %s %s\n", r ? "" : err.msg, PQerrorMessage(pg));
        return 1;
    }
    /* The worker reads its batch size from a config file. */
    char cfgpath[] = "/tmp/sluice-bench-XXXXXX";
    int fd = mkstemp(cfgpath);
    FILE *cf = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (cf == NULL) {
        perror("bench_throughput: config");
        return 1;
    }
    if (extra_config) {
        FILE *in = fopen(extra_config, "r");
        char line[1024];
        bool in_worker = false;
        while (in && fgets(line, sizeof line, in)) {
            /* Copy everything; the worker section gets our batch below. */
            if (batch > 0 && strncmp(line, "worker:", 7) == 0) {
                in_worker = true;
                continue;
            }
            if (in_worker && line[0] != ' ' && line[0] != '\n')
                in_worker = false;
            if (!in_worker)
                fputs(line, cf);
        }
        if (in)
            fclose(in);
    }
    if (batch > 0)
        fprintf(cf, "worker:\n  batch: %ld\n", batch);
    fclose(cf);
    msgpack_sbuffer args;
    msgpack_sbuffer_init(&args);
    make_args(&args, payload);
    double *rates = calloc((size_t)rounds, sizeof *rates);
    double *bytes = calloc((size_t)rounds, sizeof *bytes);
    double *rss = calloc((size_t)rounds, sizeof *rss);
    char procs[16];
    snprintf(procs, sizeof procs, "%ld", processes);
    for (long round = 0; round < rounds; round++) {
        char queue[64];
        snprintf(queue, sizeof queue, "bench-%ld-%ld", (long)getpid(), round);
        /* Q queues: QUEUE.0 … QUEUE.{Q-1}, jobs spread evenly. */
        char **names = calloc((size_t)nqueues, sizeof *names);
        for (long q = 0; q < nqueues; q++) {
            names[q] = nqueues == 1 ? strdup(queue) : NULL;
            if (nqueues > 1 && asprintf(&names[q], "%s.%ld", queue, q) < 0)
                return 1;
        }
        long long before = used_memory(r);
        for (long q = 0; q < nqueues; q++) {
            long share = jobs / nqueues + (q < jobs % nqueues);
            if (share > 0 && enqueue_many(r, names[q], share, &args) < 0)
                return 1;
        }
        long long after = used_memory(r);
        bytes[round] = (double)(after - before) / (double)jobs;
        /* The queues go into this round's configuration (worker.queues): a
         * command-line argument holds at most 128 KiB, too few for 10,000
         * names. */
        char roundcfg[] = "/tmp/sluice-bench-round-XXXXXX";
        if (write_round_config(cfgpath, roundcfg, names, nqueues) < 0)
            return 1;
        double t0 = sl_monotonic_sec();
        pid_t pid = fork();
        if (pid == 0) {
            const char *wargs[] = { worker, "--processes", procs, "--log-level", "warn", "--config", roundcfg, NULL };
            execv(worker, (char *const *)wargs);
            perror("exec sluice-worker");
            _exit(127);
        }
        /* Entries leave the stream only after their results are committed,
         * so an empty stream with nothing pending means every row is in
         * PostgreSQL (checked once at the end): polling Redis keeps the
         * benchmark from loading PostgreSQL with counts. */
        long peak = 0;
        int children = 0;
        /* VmHWM is a high-water mark: a look every 200 ms (and at the end)
         * finds the peak without the scan of /proc costing the pool CPU. */
        long polls = 0;
        for (long q = 0;;) {
            long long len = -1, pending = -1;
            if (sl_queue_depth(r, names[q], &len, &pending, &err) < 0) {
                fprintf(stderr, "bench_throughput: %s\n", err.msg);
                return 1;
            }
            if (len == 0 && pending == 0 && ++q == nqueues)
                break;
            if (len == 0 && pending == 0)
                continue;   /* this queue is drained: look at the next */
            if (++polls % 40 == 0) {
                long now = max_child_hwm(pid, &children);
                if (now > peak)
                    peak = now;
            }
            usleep(5000);
        }
        double secs = sl_monotonic_sec() - t0;
        long now = max_child_hwm(pid, &children);
        if (now > peak)
            peak = now;
        kill(pid, SIGTERM);
        waitpid(pid, NULL, 0);
        unlink(roundcfg);
        long long rows = count_rows(pg, queue);
        for (long q = 0; q < nqueues; q++)
            free(names[q]);
        free(names);
        rates[round] = (double)jobs / secs;
        rss[round] = (double)peak / 1024.0;
        printf("round %ld: %ld jobs in %.3f s = %.0f jobs/s; Redis %.0f B/waiting job; "
               "peak child RSS %.1f MiB (%d children); %lld result rows%s\n",
               round + 1, jobs, secs, rates[round], bytes[round], rss[round], children, rows,
               rows == jobs ? "" : " (MISSING ROWS)");
        fflush(stdout);
    }
    double rate_median = bench_median(rates, rounds), bytes_median = bench_median(bytes, rounds),
           rss_median = bench_median(rss, rounds);
    printf("noop throughput: %ld jobs over %ld queues, %ld processes, batch %ld, payload %ld B, %ld rounds: "
           "median %.0f jobs/s (min %.0f, max %.0f); median %.0f B of Redis per waiting job; "
           "median peak child RSS %.1f MiB\n",
           jobs, nqueues, processes, batch, payload, rounds, rate_median, rates[0], rates[rounds - 1],
           bytes_median, rss_median);
    unlink(cfgpath);
    msgpack_sbuffer_destroy(&args);
    free(rates);
    free(bytes);
    free(rss);
    PQfinish(pg);
    sl_redis_free(r);
    return 0;
}
