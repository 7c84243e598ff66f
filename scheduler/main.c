/* main.c: sluice-scheduler.  Loads the pipelines, then loops:
 *
 *   standby   connect to PostgreSQL and poll for the leader lock;
 *   leading   LISTEN for finished jobs (sluice_jobs), new or cancelled runs
 *             (sluice_runs) and gate decisions (sluice_gates); advance the
 *             runs named by notifications at once; every second fire due
 *             cron schedules, close overdue gates and promote due delayed
 *             jobs; every scheduler.reconcile do a full pass over the
 *             active runs, so a missed notification only delays progress;
 *             after each of these, emit the gate events' notification jobs
 *             (notify.h: every tick, a full pass with each reconcile).
 *
 * Losing the PostgreSQL connection loses the lock: the loop drops every
 * connection and goes back to standby.  TERM/INT stop it (the handler only
 * sets a flag and writes to a self-pipe that wakes the wait); HUP reloads
 * the pipeline directory (new schedules and definitions for new runs; runs
 * keep their own copy).  Requested runs are resolved against the loaded
 * pipelines only; scheduler.signing_key_file, when set, signs every step's
 * job (the key is loaded once, at start-up). */
#include "config.h"
#include "config_api.h"
#include "config_jobs.h"
#include "config_sched.h"
#include "db.h"
#include "engine.h"
#include "leader.h"
#include "notify.h"
#include "retention.h"
#include "log.h"
#include "mem.h"
#include "opts.h"
#include "pipeline.h"
#include "clock.h"
#include "sign.h"
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <unistd.h>

#define EXIT_CONFIG 78
/* A log value that may hold spaces (log.h: sl_log_quote). */
#define LOGQ(s) sl_log_quote((char[600]){ 0 }, 600, (s))
#define TICK_MS 1000
/* Retention: at most this long of each tick while a backlog remains (the
 * leader's other work waits meanwhile), and the pause once none does. */
#define RETENTION_BUDGET_MS 500
#define RETENTION_IDLE_MS 60000

static volatile sig_atomic_t stop_requested;
static volatile sig_atomic_t reload_requested;
static int wake_fd[2] = { -1, -1 };

static void on_signal(int sig)
{
    int saved = errno;
    if (sig == SIGHUP)
        reload_requested = 1;
    else
        stop_requested = 1;
    if (write(wake_fd[1], "x", 1) < 0) {
        /* the pipe is full: a wake-up is already pending */
    }
    errno = saved;
}

static const sl_opt rows[] = {
    { 'c', "config", 'c', "FILE", "configuration file" },
    { 'p', "pipelines", 'p', "DIR", "pipeline directory (overrides scheduler.pipelines)" },
    { 'L', "log-level", 0, "L", "debug, info, warn or error" },
    { 'h', "help", 'h', NULL, "show this help" },
    { 'V', "version", 'V', NULL, "show the version" },
    { 0 },
};

static const sl_opts opts = {
    "sluice-scheduler",
    "Usage: sluice-scheduler [OPTIONS]\n"
    "\n"
    "Loads the pipelines (scheduler.pipelines, default ./pipelines), reports\n"
    "every error in them, and drives runs: starts them (sluice run, cron),\n"
    "enqueues each step's job when its needs have succeeded, holds runs at\n"
    "approval gates.  Several may run: one leads (PostgreSQL advisory lock), the\n"
    "others stand by and take over when it dies.  TERM/INT stop it; HUP\n"
    "reloads the pipeline directory.\n"
    "\n",
    " (see --help)",
    rows,
    "\n"
    "Exit status: 0 after TERM/INT, 2 usage error, 78 configuration error.\n",
    NULL,
};

/* Sleeps up to ms, waking early on a stop request. */
static void nap(int ms)
{
    fd_set rd;
    FD_ZERO(&rd);
    FD_SET(wake_fd[0], &rd);
    struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
    if (select(wake_fd[0] + 1, &rd, NULL, NULL, &tv) > 0) {
        char buf[16];
        while (read(wake_fd[0], buf, sizeof buf) > 0) {
        }
    }
}

/* The loaded pipelines; HUP reloads them. */
typedef struct pipeset {
    const char *dir;
    sl_pipeline **list;
    size_t n;
} pipeset;

/* (Re)loads the directory, logging every error; keeps the old set if the
 * directory cannot be read. */
static int load_pipelines(const sl_config *cfg, pipeset *ps)
{
    sl_pipeline **list = NULL;
    size_t n = 0;
    sl_yerrors perr = SL_YERRORS_INIT;
    sl_err err;
    if (sl_pipelines_load_dir(ps->dir, sl_sched_config_of(cfg), &list, &n, &perr, &err) < 0) {
        SL_ERROR("pipelines.unreadable", "dir=%s error=%s", ps->dir, LOGQ(err.msg));
        return -1;
    }
    for (size_t i = 0; i < perr.n; i++)
        SL_ERROR("pipeline.invalid", "error=%s", LOGQ(perr.msgs[i]));
    sl_yerrors_free(&perr);
    for (size_t i = 0; i < n; i++)
        SL_INFO("pipeline.loaded", "pipeline=%s file=%s schedule=%s", list[i]->name,
                LOGQ(sl_ydoc_name(list[i]->doc)), list[i]->schedule ? "yes" : "no");
    sl_pipelines_free(ps->list, ps->n);
    ps->list = list;
    ps->n = n;
    return 0;
}

typedef struct dirty {
    char **ids;
    size_t n, cap;
} dirty;

static void dirty_add(dirty *d, const char *id)
{
    for (size_t i = 0; i < d->n; i++) {
        if (strcmp(d->ids[i], id) == 0)
            return;
    }
    if (d->n == d->cap) {
        d->cap = d->cap ? d->cap * 2 : 16;
        d->ids = sl_xrealloc(d->ids, d->cap * sizeof *d->ids);
    }
    d->ids[d->n++] = sl_xstrdup(id);
}

static void dirty_clear(dirty *d)
{
    for (size_t i = 0; i < d->n; i++)
        free(d->ids[i]);
    d->n = 0;
}

/* Removes expired results and runs in passes of retention.batch rows for
 * at most RETENTION_BUDGET_MS of this tick.  Returns when to look again:
 * at the next tick while a backlog remains, else in RETENTION_IDLE_MS. */
static int64_t apply_retention(const sl_config *cfg, sl_db *db)
{
    int64_t t0 = sl_monotonic_ms();
    long long jobs = 0, runs = 0, audit = 0;
    bool more;
    do {
        sl_retention_stats st;
        sl_err err;
        if (sl_retention_pass(db, cfg, &st, &err) < 0) {
            SL_WARN("retention.failed", "error=%s", LOGQ(err.msg));
            return RETENTION_IDLE_MS;
        }
        jobs += st.jobs;
        runs += st.runs;
        audit += st.audit;
        int batch = sl_sched_config_of(cfg)->retention.batch;
        more = st.jobs >= batch || st.runs >= batch || st.audit >= batch;
    } while (more && !stop_requested && sl_monotonic_ms() - t0 < RETENTION_BUDGET_MS);
    if (jobs > 0 || runs > 0 || audit > 0)
        SL_DEBUG("retention.removed", "jobs=%lld runs=%lld audit=%lld more=%s", jobs, runs, audit,
                 more ? "yes" : "no");
    return more ? 0 : RETENTION_IDLE_MS;
}

/* One term as leader; returns when the connection breaks or a stop is asked. */
static void lead(const sl_config *cfg, sl_db *db, pipeset *ps, const sl_sign_key *signer)
{
    sl_err err;
    sl_redis *redis = NULL;
    sl_engine *engine = NULL;
    dirty d = { 0 };
    PGconn *conn = sl_db_conn(db);
    if (sl_db_run(db, "listen", "LISTEN sluice_jobs", 0, NULL, &err) < 0 ||
        sl_db_run(db, "listen", "LISTEN sluice_runs", 0, NULL, &err) < 0 ||
        sl_db_run(db, "listen", "LISTEN sluice_gates", 0, NULL, &err) < 0) {
        SL_ERROR("leader.listen_failed", "error=%s", LOGQ(err.msg));
        return;
    }
    int64_t last_tick = 0, last_reconcile = sl_monotonic_ms(), next_retention = 0, last_notify = 0;
    bool need_start = false, notify_due = false, notify_full = true;
    if (signer == NULL && sl_config_jobs_of(cfg)->notify.nchannels > 0)
        SL_WARN("notify.unsigned", "message=%s", LOGQ("notify.channels are configured but "
                "scheduler.signing_key_file is not: no notification is emitted (workers run only "
                "signed notify jobs)"));
    while (!stop_requested) {
        if (redis == NULL || sl_redis_broken(redis)) {
            sl_redis_free(redis);
            sl_engine_free(engine);
            engine = NULL;
            redis = sl_redis_connect(cfg->redis_url, 5000, &err);
            if (redis == NULL) {
                SL_WARN("redis.unreachable", "error=%s", LOGQ(err.msg));
                nap(1000);
                if (sl_db_broken(db))
                    break;
                continue;
            }
            engine = sl_engine_new(cfg, db, redis);
            sl_engine_set_pipelines(engine, ps->list, ps->n);
            sl_engine_set_signer(engine, signer);
            if (sl_engine_reconcile(engine, &err) < 0)
                SL_WARN("reconcile.failed", "error=%s", LOGQ(err.msg));
            last_reconcile = sl_monotonic_ms();
            notify_full = true;
        }
        if (reload_requested) {
            reload_requested = 0;
            load_pipelines(cfg, ps);
            sl_engine_set_pipelines(engine, ps->list, ps->n);
        }
        int64_t now = sl_monotonic_ms();
        if (now - last_tick >= TICK_MS) {
            int fired = 0;
            last_tick = now;
            if (sl_engine_fire_cron(engine, ps->list, ps->n, sl_now_ms(), &fired, &err) < 0)
                SL_WARN("cron.failed", "error=%s", LOGQ(err.msg));
            if (sl_engine_expire_gates(engine, &err) < 0)
                SL_WARN("gates.expire_failed", "error=%s", LOGQ(err.msg));
            if (sl_engine_promote(engine, &err) < 0)
                SL_WARN("promote.failed", "error=%s", LOGQ(err.msg));
            need_start = need_start || fired > 0;
            if (now >= next_retention)
                next_retention = now + apply_retention(cfg, db);
        }
        if (now - last_reconcile >= sl_sched_config_of(cfg)->reconcile_ms) {
            last_reconcile = now;
            if (sl_engine_reconcile(engine, &err) < 0)
                SL_WARN("reconcile.failed", "error=%s", LOGQ(err.msg));
            notify_full = true;
        }
        if (notify_due || notify_full || now - last_notify >= TICK_MS) {
            if (sl_notify_pass(db, redis, cfg, signer, notify_full, &err) < 0)
                SL_WARN("notify.failed", "error=%s", LOGQ(err.msg));
            notify_due = notify_full = false;
            last_notify = now;
        }
        if (sl_db_broken(db))
            break;
        if (PQconsumeInput(conn) != 1) {
            SL_WARN("leader.connection_lost", "error=%s", LOGQ(PQerrorMessage(conn)));
            break;
        }
        PGnotify *nt;
        while ((nt = PQnotifies(conn)) != NULL) {
            if (strcmp(nt->relname, "sluice_runs") == 0)
                need_start = true;
            if (nt->extra && nt->extra[0])
                dirty_add(&d, nt->extra);
            PQfreemem(nt);
        }
        if (need_start) {
            need_start = false;
            if (sl_engine_start_queued(engine, &err) < 0)
                SL_WARN("start.failed", "error=%s", LOGQ(err.msg));
        }
        if (d.n > 0) {
            for (size_t i = 0; i < d.n; i++) {
                if (sl_engine_advance(engine, d.ids[i], &err) < 0)
                    SL_WARN("run.advance_failed", "run=%s error=%s", d.ids[i], LOGQ(err.msg));
            }
            dirty_clear(&d);
            notify_due = true;   /* a gate may have opened or closed */
            continue;   /* more may have arrived meanwhile */
        }
        int wait_ms = (int)(TICK_MS - (sl_monotonic_ms() - last_tick));
        if (wait_ms < 0)
            wait_ms = 0;
        int fd = PQsocket(conn);
        fd_set rd;
        FD_ZERO(&rd);
        FD_SET(fd, &rd);
        FD_SET(wake_fd[0], &rd);
        struct timeval tv = { wait_ms / 1000, (wait_ms % 1000) * 1000 };
        int maxfd = fd > wake_fd[0] ? fd : wake_fd[0];
        if (select(maxfd + 1, &rd, NULL, NULL, &tv) < 0 && errno != EINTR) {
            SL_ERROR("select_failed", "errno=%s", strerror(errno));
            break;
        }
        if (FD_ISSET(wake_fd[0], &rd)) {
            char buf[16];
            while (read(wake_fd[0], buf, sizeof buf) > 0) {
            }
        }
    }
    dirty_clear(&d);
    free(d.ids);
    sl_engine_free(engine);
    sl_redis_free(redis);
}

/* The schema must be the one this build knows (`sluice migrate`). */
static bool schema_ok(const sl_config *cfg)
{
    sl_err err;
    sl_store *st = sl_store_connect(cfg->database_url, &err);
    bool ok = st != NULL && sl_store_check_schema(st, &err) == 0;
    if (!ok)
        SL_ERROR("schema.mismatch", "error=%s", LOGQ(err.msg));
    sl_store_free(st);
    return ok;
}

/* Sections of the shared sluice.yaml that sluice-worker reads (the pool's):
 * accepted and skipped here, so that a misspelt section is still an error.
 * sluice-worker and `sluice` check their contents. */
static const char *const others_names[] = { "worker", "queues", NULL };
static const sl_config_section others = { .names = others_names };

int main(int argc, char **argv)
{
    /* sluice.yaml's sections this program reads: its own, the job kinds'
     * (checked like the worker checks them) and the API's address */
    sl_sched_config_register();
    sl_config_jobs_register();
    sl_api_config_register();
    sl_config_register(&others);
    const char *config = NULL, *dir = NULL, *level = NULL, *value;
    sl_opts_parser op;
    sl_opts_begin(&op, &opts, argc, argv);
    for (int c; (c = sl_opts_next(&op, &value)) != SL_OPTS_END;) {
        switch (c) {
        case 'c': config = value; break;
        case 'p': dir = value; break;
        case 'L': level = value; break;
        case 'V': printf("sluice-scheduler %s\n", SLUICE_VERSION); return 0;
        default: return op.status;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "sluice-scheduler: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    sl_err err;
    sl_config *cfg = sl_config_load(config, &err);
    if (cfg == NULL) {
        fprintf(stderr, "sluice-scheduler: %s\n", err.msg);
        return EXIT_CONFIG;
    }
    sl_log_level lvl = cfg->log_level;
    if (level && sl_log_level_parse(level, &lvl) < 0) {
        fprintf(stderr, "sluice-scheduler: --log-level: expected debug, info, warn or error\n");
        sl_config_free(cfg);
        return 2;
    }
    sl_log_setup("scheduler", lvl);
    if (dir == NULL)
        dir = sl_sched_config_of(cfg)->pipelines;

    pipeset ps = { dir, NULL, 0 };
    if (load_pipelines(cfg, &ps) < 0) {
        sl_config_free(cfg);
        return EXIT_CONFIG;
    }
    sl_sign_key *signer = NULL;
    if (sl_sched_config_of(cfg)->signing_key_file) {
        if ((signer = sl_sign_load_private(sl_sched_config_of(cfg)->signing_key_file, &err)) == NULL) {
            SL_ERROR("config.invalid", "key=scheduler.signing_key_file error=%s", LOGQ(err.msg));
            sl_pipelines_free(ps.list, ps.n);
            sl_config_free(cfg);
            return EXIT_CONFIG;
        }
        char kid[SL_SIGN_ID_HEX];
        sl_sign_key_id(signer, kid);
        SL_INFO("signing_key.loaded", "key_id=%s", kid);
    } else {
        SL_WARN("signing_key.none", "message=%s", LOGQ("no scheduler.signing_key_file: jobs are "
                "enqueued unsigned and workers refuse protected ones"));
    }

    /* Gate timeouts are audit rows: signed with the scheduler's own key. */
    sl_sign_key *audit_key = NULL;
    if (sl_sched_config_of(cfg)->audit_key_file == NULL) {
        SL_WARN("audit.unsigned", "reason=%s", LOGQ("scheduler.audit_key_file is not set: gate "
                "timeouts will be audited unsigned and fail `sluice audit verify --public-key`, and "
                "the audit trail is never removed by retention (its checkpoints need the key)"));
    } else if ((audit_key = sl_sign_load_private(sl_sched_config_of(cfg)->audit_key_file, &err)) == NULL) {
        fprintf(stderr, "sluice-scheduler: scheduler.audit_key_file: %s\n", err.msg);
        sl_pipelines_free(ps.list, ps.n);
        sl_config_free(cfg);
        return EXIT_CONFIG;
    }

    if (pipe2(wake_fd, O_CLOEXEC | O_NONBLOCK) < 0) {
        SL_ERROR("pipe_failed", "errno=%s", strerror(errno));
        return 1;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    bool said_standby = false;
    while (!stop_requested) {
        sl_db *db = sl_db_connect(cfg->database_url, &err);
        if (db == NULL) {
            SL_WARN("postgres.unreachable", "error=%s", LOGQ(err.msg));
            nap(1000);
            continue;
        }
        sl_db_set_audit_key(db, audit_key);
        bool leading = false;
        while (!stop_requested && !leading) {
            if (sl_leader_try(db, &leading, &err) < 0) {
                SL_WARN("leader.poll_failed", "error=%s", LOGQ(err.msg));
                break;
            }
            if (reload_requested) {
                reload_requested = 0;
                load_pipelines(cfg, &ps);
            }
            if (!leading) {
                if (!said_standby)
                    SL_INFO("leader.standby", "");
                said_standby = true;
                nap(sl_sched_config_of(cfg)->standby_poll_ms);
            }
        }
        if (leading && !stop_requested && !schema_ok(cfg)) {
            sl_db_free(db);   /* lets a standby try, and releases the lock */
            nap(5000);
            continue;
        }
        if (leading && !stop_requested) {
            SL_INFO("leader.acquired", "");
            said_standby = false;
            lead(cfg, db, &ps, signer);
            SL_INFO("leader.released", "");
        }
        sl_db_free(db);
    }
    SL_INFO("scheduler.stopped", "");
    sl_sign_key_free(audit_key);
    sl_pipelines_free(ps.list, ps.n);
    sl_sign_key_free(signer);
    sl_config_free(cfg);
    close(wake_fd[0]);
    close(wake_fd[1]);
    return 0;
}
