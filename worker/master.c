/* master.c: see master.h.
 *
 * The master's state is the process table (one `child` record per slot,
 * beside the shared scoreboard slot of the same index) and the signal
 * flags; both are file-scope statics, which only the master may have
 * alone.  Signal handlers set a flag and write a byte to a self-pipe; the
 * loop sleeps in poll(2) on that pipe for at most TICK_MS, so all real work
 * — reaping, logging, respawning, killing overdue jobs, reloading — happens
 * here, outside any handler.  Children are forked with every signal blocked
 * and set their dispositions before unblocking, so a signal that arrives
 * during fork never runs the master's handler in the child.
 *
 * Slots: the scoreboard is mapped once, before the first fork, with
 * max(64, 2 x worker.processes + 16) slots (at most 1024), so that TTIN and
 * a reload can grow the pool up to that capacity; beyond it they are
 * refused with a warning (restart the master to go further).  Slots
 * 0 .. want-1 are the pool; a child in a slot >= want (after TTOU or a
 * smaller reload) has been told to stop and is not replaced.
 *
 * Invariants:
 *   - children[i].pid != 0 exactly while slot i's child is unreaped, so
 *     kill(2) never hits a recycled pid;
 *   - only the master writes a slot's master part, and it resets the child
 *     part only while the slot has no child (between reap and fork);
 *   - during a reload at most one child is being replaced at a time. */
#include "master.h"
#include "clock.h"
#include "config_worker.h"
#include "consumer.h"
#include "log.h"
#include "mem.h"
#include "pidfile.h"
#include "scoreboard.h"
#include "supervise.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* Backoff before restarting a child that crashed: doubles per consecutive
 * crash of its slot, from 100 ms up to 30 s; a child that ran longer than
 * RESTART_RESET_MS resets it. */
#define RESTART_MIN_MS 100
#define RESTART_MAX_MS 30000
#define RESTART_RESET_MS 10000
#define TICK_MS 100            /* the loop looks at the scoreboard at least this often */
#define FAST_STOP_MS 5000      /* INT/QUIT: SIGKILL what is left after this */
#define SLOTS_MIN 64
#define SLOTS_MAX SL_SUPERVISOR_SLOTS_MAX

typedef struct child {
    pid_t pid;            /* 0 when no child runs in this slot */
    int64_t started_ms;   /* monotonic time of the last fork */
    int64_t restart_at;   /* monotonic time the slot may be refilled */
    int crashes;          /* consecutive abnormal exits */
    unsigned gen;         /* configuration generation the child runs */
    bool stopping;        /* told to stop (TERM/QUIT): reload, TTOU or shutdown */
    int64_t kill_at;      /* monotonic ms to SIGKILL a stopping child; 0 = not armed */
    bool timed_out;       /* SIGKILLed for overrunning its job */
} child;

typedef struct pool {
    sl_config *cfg;              /* current configuration (owned) */
    const sl_master_opts *opts;
    sl_scoreboard *board;
    sl_supervisor *sup;
    child *children;             /* cap records */
    pid_t *pids;                 /* cap pids, the view given to the supervisor */
    sl_slot *snap;               /* scratch copy of one slot */
    int cap;                     /* slots in the scoreboard */
    int want;                    /* target pool size */
    unsigned gen;                /* bumped by each successful reload */
    int alive_fd[2];             /* children keep [0]: EOF there = the master is gone */
    bool stopping, fast;
    int status;                  /* exit status */
    int64_t started_at_ms;       /* Unix ms */
} pool;

static pool P;
static volatile sig_atomic_t got_term, got_int, got_chld, got_hup, got_usr1, got_ttin, got_ttou;
static int wake_pipe[2] = { -1, -1 };
static const int handled[] = { SIGTERM, SIGINT, SIGQUIT, SIGCHLD, SIGHUP, SIGUSR1, SIGTTIN, SIGTTOU };
#define NHANDLED (sizeof handled / sizeof handled[0])

static void on_signal(int sig)
{
    int saved = errno;
    switch (sig) {
    case SIGTERM: got_term = 1; break;
    case SIGINT: case SIGQUIT: got_int = 1; break;
    case SIGCHLD: got_chld = 1; break;
    case SIGHUP: got_hup = 1; break;
    case SIGUSR1: got_usr1 = 1; break;
    case SIGTTIN: got_ttin++; break;
    case SIGTTOU: got_ttou++; break;
    }
    ssize_t w = write(wake_pipe[1], "x", 1);
    (void)w; /* a full pipe already guarantees a wake-up */
    errno = saved;
}

static int install_signals(void)
{
    if (pipe2(wake_pipe, O_CLOEXEC | O_NONBLOCK) < 0) {
        SL_ERROR("master.pipe_failed", "errno=%d error=\"%s\"", errno, strerror(errno));
        return -1;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    for (size_t i = 0; i < NHANDLED; i++) {
        if (sigaction(handled[i], &sa, NULL) < 0) {
            SL_ERROR("master.sigaction_failed", "signal=%d error=\"%s\"", handled[i], strerror(errno));
            return -1;
        }
    }
    signal(SIGPIPE, SIG_IGN);
    return 0;
}

/* The signals received since the last call, taken with the handled signals
 * blocked so that none is lost between reading and clearing a flag. */
typedef struct signals {
    bool term, fast, chld, hup, usr1;
    int ttin, ttou;
} signals;

static signals take_signals(void)
{
    /* Drain first: a signal that lands after the flags are read below
     * leaves a byte in the pipe, so the next poll returns at once. */
    char buf[64];
    while (read(wake_pipe[0], buf, sizeof buf) > 0)
        ;
    sigset_t set, old;
    sigemptyset(&set);
    for (size_t i = 0; i < NHANDLED; i++)
        sigaddset(&set, handled[i]);
    sigprocmask(SIG_BLOCK, &set, &old);
    signals s = { got_term, got_int, got_chld, got_hup, got_usr1, got_ttin, got_ttou };
    got_term = got_int = got_chld = got_hup = got_usr1 = got_ttin = got_ttou = 0;
    sigprocmask(SIG_SETMASK, &old, NULL);
    return s;
}

static void send_signal(int i, int sig)
{
    pid_t pid = P.children[i].pid;
    if (pid > 0 && kill(pid, sig) < 0 && errno != ESRCH)
        SL_WARN("master.kill_failed", "slot=%d child=%ld signal=%d error=\"%s\"", i, (long)pid, sig,
                strerror(errno));
}

/* Tells the child in slot i to stop (TERM: graceful, QUIT: fast) and arms
 * its SIGKILL deadline. */
static void stop_child(int i, int sig, int64_t grace_ms)
{
    child *c = &P.children[i];
    if (c->pid == 0)
        return;
    int64_t kill_at = sl_monotonic_ms() + grace_ms;
    if (c->kill_at == 0 || kill_at < c->kill_at)
        c->kill_at = kill_at;
    if (c->stopping && sig == SIGTERM)
        return; /* already told */
    c->stopping = true;
    send_signal(i, sig);
}

/* The child side of spawn(): never returns. */
static void child_main(int i, sl_slot *slot, const sigset_t *mask)
{
    close(wake_pipe[0]);
    close(wake_pipe[1]);
    close(P.alive_fd[1]);           /* only the master may hold the write end */
    sl_supervisor_forget(P.sup);    /* the master's Redis socket: close(2) only */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = SIG_DFL;
    int dfl[] = { SIGTERM, SIGINT, SIGQUIT, SIGCHLD };
    for (size_t k = 0; k < sizeof dfl / sizeof dfl[0]; k++)
        sigaction(dfl[k], &sa, NULL);
    /* Signals meant for the master alone; USR1 until the consumer installs
     * its log-reopening handler (its default would kill the child). */
    sa.sa_handler = SIG_IGN;
    int ign[] = { SIGHUP, SIGTTIN, SIGTTOU, SIGUSR1 };
    for (size_t k = 0; k < sizeof ign / sizeof ign[0]; k++)
        sigaction(ign[k], &sa, NULL);
    sigprocmask(SIG_SETMASK, mask, NULL);
    sl_log_setup("worker", P.cfg->log_level);
    /* exit, not _exit: nothing is buffered in stdio before the fork, and
     * running exit handlers lets LeakSanitizer check every child. */
    exit(sl_consumer_main(P.cfg, i, slot, P.alive_fd[0]));
}

/* Takes a final look at slot i before it is reset: a replacement that
 * recorded its predecessor's timeout (killed_gen_seen) clears killed_*. */
static void settle_kill_record(int i, const sl_slot *snap)
{
    sl_slot *s = sl_scoreboard_slot(P.board, i);
    if (!s->killed_for_timeout || snap->killed_gen_seen != s->killed_gen)
        return;
    sl_slot_master_write_begin(s);
    s->killed_for_timeout = false;
    s->killed_job_id[0] = s->killed_queue[0] = s->killed_entry[0] = s->killed_consumer[0] = '\0';
    s->killed_attempt = 0;
    sl_slot_master_write_end(s);
    SL_DEBUG("job.timeout_handed_over", "slot=%d", i);
}

/* Forks the child for slot i. */
static void spawn(int i)
{
    child *c = &P.children[i];
    sl_slot *slot = sl_scoreboard_slot(P.board, i);
    if (sl_slot_read(slot, P.snap)) {
        settle_kill_record(i, P.snap);
        sl_supervisor_handover(P.sup, i, P.snap);
    }
    sl_slot_reset(slot);
    sigset_t all, old;
    sigfillset(&all);
    sigprocmask(SIG_BLOCK, &all, &old);
    pid_t pid = fork();
    if (pid == 0)
        child_main(i, slot, &old);
    int saved = errno;
    sigprocmask(SIG_SETMASK, &old, NULL);
    if (pid < 0) {
        SL_ERROR("master.fork_failed", "slot=%d error=\"%s\"", i, strerror(saved));
        c->restart_at = sl_monotonic_ms() + RESTART_MAX_MS;
        return;
    }
    c->pid = pid;
    c->started_ms = sl_monotonic_ms();
    c->gen = P.gen;
    c->stopping = c->timed_out = false;
    c->kill_at = 0;
    P.pids[i] = pid;
    sl_supervisor_pool_changed(P.sup);
    SL_INFO("worker.started", "slot=%d child=%ld", i, (long)pid);
}

static int running(void)
{
    int count = 0;
    for (int i = 0; i < P.cap; i++)
        count += P.children[i].pid != 0;
    return count;
}

/* Reaps every exited child.  Returns true if one exited with SL_EXIT_FATAL. */
static bool reap(void)
{
    bool fatal = false;
    for (;;) {
        int status;
        pid_t pid = waitpid(-1, &status, WNOHANG);
        if (pid <= 0)
            break;
        int i;
        for (i = 0; i < P.cap && P.children[i].pid != pid; i++)
            ;
        if (i == P.cap)
            continue;
        child *c = &P.children[i];
        int64_t now = sl_monotonic_ms();
        int64_t lived = now - c->started_ms;
        bool clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;
        bool expected = P.stopping || c->stopping || c->timed_out; /* we asked for this exit */
        if (WIFEXITED(status)) {
            int code = WEXITSTATUS(status);
            if (code == SL_EXIT_FATAL)
                fatal = true;
            SL_LOG(clean || P.stopping ? SL_LOG_INFO : SL_LOG_WARN, "worker.exited",
                   "slot=%d child=%ld code=%d lived_ms=%lld%s", i, (long)pid, code, (long long)lived,
                   code == SL_EXIT_FATAL ? " fatal=true" : "");
        } else if (WIFSIGNALED(status)) {
            SL_LOG(expected ? SL_LOG_INFO : SL_LOG_WARN, "worker.killed",
                   "slot=%d child=%ld signal=%d core=%s lived_ms=%lld%s", i, (long)pid,
                   WTERMSIG(status), WCOREDUMP(status) ? "yes" : "no", (long long)lived,
                   c->timed_out ? " reason=timeout" : "");
        }
        /* A child that ran a while, or finished jobs, was healthy: its death
         * is not part of a crash loop (else a burst of kills, e.g. an OOM
         * storm, would leave the slot empty for up to RESTART_MAX_MS). */
        bool worked = sl_slot_read(sl_scoreboard_slot(P.board, i), P.snap) && P.snap->pid == pid &&
                      P.snap->jobs_done > 0;
        if (lived >= RESTART_RESET_MS || worked)
            c->crashes = 0;
        if (!clean && !expected)
            c->crashes++;
        int64_t backoff = 0;
        if (c->crashes > 0 && !expected) {
            backoff = RESTART_MIN_MS;
            for (int k = 1; k < c->crashes && backoff < RESTART_MAX_MS; k++)
                backoff *= 2;
            if (backoff > RESTART_MAX_MS)
                backoff = RESTART_MAX_MS;
        }
        c->pid = 0;
        c->restart_at = now + backoff;
        c->stopping = false;
        c->kill_at = 0;
        P.pids[i] = 0;
        sl_supervisor_pool_changed(P.sup);
    }
    return fatal;
}

static void stop_pool(bool fast, const char *why)
{
    if (P.stopping && (!fast || P.fast))
        return;
    P.stopping = true;
    P.fast = P.fast || fast;
    int64_t grace = fast ? FAST_STOP_MS : sl_worker_config_of(P.cfg)->shutdown_timeout_ms;
    SL_INFO("master.stopping", "mode=%s reason=%s timeout_ms=%lld", fast ? "fast" : "graceful", why,
            (long long)grace);
    for (int i = 0; i < P.cap; i++)
        stop_child(i, fast ? SIGQUIT : SIGTERM, grace);
    sl_supervisor_pool_changed(P.sup);
}

/* SIGKILLs the child in slot i for overrunning its job, and leaves the job
 * in the slot's master part for the replacement (scoreboard.h, step 2). */
static void kill_overdue(int i, const sl_slot *snap, int64_t now)
{
    child *c = &P.children[i];
    SL_WARN("job.timed_out", "job=%s kind=%s queue=%s entry=%s attempt=%lld slot=%d child=%ld ran_ms=%lld",
            snap->job_id, snap->job_kind, snap->job_queue, snap->job_entry,
            (long long)snap->job_attempt, i, (long)c->pid, (long long)(now - snap->job_started_ms));
    sl_slot *s = sl_scoreboard_slot(P.board, i);
    sl_slot_master_write_begin(s);
    s->killed_for_timeout = true;
    s->killed_gen++;
    snprintf(s->killed_job_id, sizeof s->killed_job_id, "%s", snap->job_id);
    snprintf(s->killed_queue, sizeof s->killed_queue, "%s", snap->job_queue);
    snprintf(s->killed_entry, sizeof s->killed_entry, "%s", snap->job_entry);
    s->killed_attempt = snap->job_attempt;
    snprintf(s->killed_consumer, sizeof s->killed_consumer, "%s", snap->consumer);
    sl_slot_master_write_end(s);
    send_signal(i, SIGKILL);
    c->timed_out = true;
}

/* Per tick: jobs past their deadline, stopping children past their grace. */
static void watch_children(int64_t now)
{
    for (int i = 0; i < P.cap; i++) {
        child *c = &P.children[i];
        if (c->pid == 0 || c->timed_out)
            continue;
        if (c->stopping && c->kill_at && now >= c->kill_at) {
            SL_WARN("master.stop_timeout", "slot=%d child=%ld signal=KILL", i, (long)c->pid);
            send_signal(i, SIGKILL);
            c->kill_at = 0;
            continue;
        }
        sl_slot *snap = P.snap;
        if (!sl_slot_read(sl_scoreboard_slot(P.board, i), snap) || snap->pid != c->pid)
            continue;
        settle_kill_record(i, snap);
        snap->job_id[sizeof snap->job_id - 1] = snap->job_kind[sizeof snap->job_kind - 1] = '\0';
        snap->job_queue[sizeof snap->job_queue - 1] = snap->job_entry[sizeof snap->job_entry - 1] = '\0';
        if (snap->state == SL_CHILD_RUNNING && snap->job_deadline_ms > 0 && now >= snap->job_deadline_ms)
            kill_overdue(i, snap, now);
    }
}

/* TTIN/TTOU: grows or shrinks the target by delta (within 1 .. cap). */
static void resize(int want, const char *why)
{
    if (want > P.cap) {
        SL_WARN("pool.at_capacity", "wanted=%d slots=%d hint=\"restart sluice-worker to grow further\"",
                want, P.cap);
        want = P.cap;
    }
    if (want < 1)
        want = 1;
    if (want == P.want)
        return;
    SL_INFO("pool.resized", "from=%d to=%d reason=%s", P.want, want, why);
    for (int i = want; i < P.want; i++)
        stop_child(i, SIGTERM, sl_worker_config_of(P.cfg)->shutdown_timeout_ms);
    for (int i = P.want; i < want; i++) {
        if (P.children[i].pid == 0) {
            P.children[i].restart_at = 0;
            P.children[i].crashes = 0;
        }
    }
    P.want = want;
    sl_supervisor_pool_changed(P.sup);
}

static void reload(void)
{
    sl_config *next = NULL;
    sl_err err;
    sl_err_clear(&err);
    if (P.opts->reload && (next = P.opts->reload(P.opts->reload_arg, &err)) == NULL) {
        char q[600];
        SL_ERROR("config.reload_failed", "error=%s keeping=previous", sl_log_quote(q, sizeof q, err.msg));
        return;
    }
    P.gen++;
    if (next) {
        sl_config *old = P.cfg;
        P.cfg = next;
        sl_log_setup("master", next->log_level);
        SL_INFO("config.reloaded", "path=%s processes=%d queues=%zu generation=%u",
                next->path ? next->path : "-", sl_worker_config_of(next)->processes, sl_worker_config_of(next)->nqueues, P.gen);
        if (sl_worker_config_of(next)->processes != sl_worker_config_of(old)->processes)
            resize(sl_worker_config_of(next)->processes, "reload");
        sl_config_free(old);
    }
    SL_INFO("pool.replacing", "children=%d generation=%u", running(), P.gen);
}

/* One step of a rolling replacement: with no replacement under way, tells
 * the first child of an older generation to stop; reap and the spawn loop
 * fork its successor with the current configuration. */
static bool replace_step(void)
{
    int candidate = -1;
    for (int i = 0; i < P.want; i++) {
        child *c = &P.children[i];
        if (c->pid != 0 && c->stopping)
            return true; /* one at a time */
        if (c->pid != 0 && c->gen != P.gen && candidate < 0)
            candidate = i;
    }
    if (candidate < 0)
        return false;
    SL_INFO("worker.replacing", "slot=%d child=%ld", candidate, (long)P.children[candidate].pid);
    stop_child(candidate, SIGTERM, sl_worker_config_of(P.cfg)->shutdown_timeout_ms);
    return true;
}

static void reopen_log(void)
{
    if (sl_log_reopen(NULL) < 0)
        SL_ERROR("log.reopen_failed", "error=\"%s\"", strerror(errno));
    else
        SL_INFO("log.reopened", "");
    for (int i = 0; i < P.cap; i++)
        send_signal(i, SIGUSR1);
}

static void publish(int64_t *next_ms)
{
    bool reloading = false;
    for (int i = 0; i < P.cap; i++)
        reloading = reloading || (P.children[i].pid != 0 && P.children[i].gen != P.gen);
    sl_pool_view v = {
        .cfg = P.cfg, .board = P.board, .pids = P.pids, .nslots = P.cap, .processes = P.want,
        .state = P.stopping ? "stopping" : reloading ? "reloading" : "running",
        .started_at_ms = P.started_at_ms,
    };
    int64_t wait = sl_supervisor_tick(P.sup, &v);
    if (wait < *next_ms)
        *next_ms = wait;
}

static int pool_open(sl_config *cfg, const sl_master_opts *opts)
{
    memset(&P, 0, sizeof P);
    P.cfg = cfg;
    P.opts = opts;
    P.want = sl_worker_config_of(cfg)->processes;
    P.cap = 2 * P.want + 16;
    P.cap = P.cap < SLOTS_MIN ? SLOTS_MIN : P.cap > SLOTS_MAX ? SLOTS_MAX : P.cap;
    P.started_at_ms = sl_now_ms();
    P.alive_fd[0] = P.alive_fd[1] = -1;
    P.board = sl_scoreboard_new(P.cap);
    if (P.board == NULL) {
        SL_ERROR("master.scoreboard_failed", "slots=%d error=\"%s\"", P.cap, strerror(errno));
        return -1;
    }
    if (pipe2(P.alive_fd, O_CLOEXEC) < 0) {
        SL_ERROR("master.pipe_failed", "errno=%d error=\"%s\"", errno, strerror(errno));
        return -1;
    }
    P.children = sl_xcalloc((size_t)P.cap, sizeof *P.children);
    P.pids = sl_xcalloc((size_t)P.cap, sizeof *P.pids);
    P.snap = sl_xmalloc(sizeof *P.snap);
    P.sup = sl_supervisor_new();
    return install_signals();
}

static void pool_close(void)
{
    sl_supervisor_free(P.sup);
    sl_scoreboard_free(P.board);
    free(P.children);
    free(P.pids);
    free(P.snap);
    for (int k = 0; k < 2; k++) {
        if (P.alive_fd[k] >= 0)
            close(P.alive_fd[k]);
        if (wake_pipe[k] >= 0)
            close(wake_pipe[k]);
        wake_pipe[k] = -1;
    }
    sl_config_free(P.cfg);
    memset(&P, 0, sizeof P);
}

int sl_master_run(sl_config *cfg, const sl_master_opts *opts)
{
    static const sl_master_opts no_opts;
    if (opts == NULL)
        opts = &no_opts;
    sl_err err;
    if (opts->pidfile && sl_pidfile_check(opts->pidfile, &err) < 0) {
        SL_ERROR("master.pidfile_busy", "error=\"%s\"", err.msg);
        sl_config_free(cfg);
        return 1;
    }
    if (pool_open(cfg, opts) < 0) {
        pool_close();
        return 1;
    }
    if (opts->pidfile && sl_pidfile_write(opts->pidfile, &err) < 0) {
        SL_ERROR("master.pidfile_failed", "error=\"%s\"", err.msg);
        pool_close();
        return 1;
    }
    SL_INFO("master.started", "processes=%d slots=%d queues=%zu batch=%d", P.want, P.cap,
            sl_worker_config_of(P.cfg)->nqueues, sl_worker_config_of(P.cfg)->batch);
    for (;;) {
        signals sig = take_signals();
        if (sig.chld && reap() && !P.stopping) {
            SL_ERROR("master.fatal_child", "reason=\"a worker hit a configuration or schema "
                     "error; not restarting (see its log line above)\"");
            P.status = SL_EXIT_FATAL;
            stop_pool(false, "fatal_child");
        }
        if (sig.fast)
            stop_pool(true, "signal");
        if (sig.term)
            stop_pool(false, "signal");
        if (sig.usr1)
            reopen_log();
        if (!P.stopping) {
            if (sig.hup)
                reload();
            if (sig.ttin || sig.ttou)
                resize(P.want + sig.ttin - sig.ttou, sig.ttin > sig.ttou ? "TTIN" : "TTOU");
        }
        int64_t now = sl_monotonic_ms();
        watch_children(now);
        if (P.stopping && running() == 0)
            break;
        int64_t wait = TICK_MS;
        if (!P.stopping) {
            for (int i = 0; i < P.want; i++) {
                child *c = &P.children[i];
                if (c->pid == 0 && now >= c->restart_at)
                    spawn(i);
                else if (c->pid == 0 && c->restart_at - now < wait)
                    wait = c->restart_at - now;
            }
            replace_step();
        }
        publish(&wait);
        struct pollfd pfd = { .fd = wake_pipe[0], .events = POLLIN };
        poll(&pfd, 1, wait > 0 ? (int)wait : 0);
    }
    sl_supervisor_unregister(P.sup, P.cfg);
    if (opts->pidfile)
        sl_pidfile_remove(opts->pidfile);
    int status = P.status;
    SL_INFO("master.stopped", "status=%d", status);
    pool_close();
    return status;
}
