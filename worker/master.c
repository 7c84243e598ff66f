/* master.c: see master.h.
 *
 * The master's only state is the process table (one slot per child) and
 * the signal flags.  Signal handlers set a flag and write a byte to a
 * self-pipe; the loop sleeps in poll(2) on that pipe, so all real work —
 * reaping, logging, respawning, escalating — happens here, outside any
 * handler.  Children are forked with every signal blocked and restore the
 * default dispositions before unblocking, so a signal that arrives during
 * fork never runs the master's handler in the child. */
#include "master.h"
#include "clock.h"
#include "consumer.h"
#include "log.h"
#include "mem.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
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

typedef struct slot {
    pid_t pid;            /* 0 when no child runs in this slot */
    int64_t started_ms;   /* monotonic time of the last fork */
    int64_t restart_at;   /* monotonic time the slot may be refilled */
    int crashes;          /* consecutive abnormal exits */
} slot;

static volatile sig_atomic_t got_term, got_int, got_chld;
static int wake_pipe[2] = { -1, -1 };

static void on_signal(int sig)
{
    int saved = errno;
    if (sig == SIGTERM)
        got_term = 1;
    else if (sig == SIGINT || sig == SIGQUIT)
        got_int = 1;
    else if (sig == SIGCHLD)
        got_chld = 1;
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
    int sigs[] = { SIGTERM, SIGINT, SIGQUIT, SIGCHLD };
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
        if (sigaction(sigs[i], &sa, NULL) < 0) {
            SL_ERROR("master.sigaction_failed", "signal=%d error=\"%s\"", sigs[i], strerror(errno));
            return -1;
        }
    }
    signal(SIGPIPE, SIG_IGN);
    return 0;
}

static void drain_wake_pipe(void)
{
    char buf[64];
    while (read(wake_pipe[0], buf, sizeof buf) > 0)
        ;
}

/* Forks the child for slot i; returns its pid or -1. */
static pid_t spawn(const sl_config *cfg, slot *slots, int i)
{
    sigset_t all, old;
    sigfillset(&all);
    sigprocmask(SIG_BLOCK, &all, &old);
    pid_t pid = fork();
    if (pid == 0) {
        close(wake_pipe[0]);
        close(wake_pipe[1]);
        struct sigaction dfl;
        memset(&dfl, 0, sizeof dfl);
        dfl.sa_handler = SIG_DFL;
        sigaction(SIGTERM, &dfl, NULL);
        sigaction(SIGINT, &dfl, NULL);
        sigaction(SIGQUIT, &dfl, NULL);
        sigaction(SIGCHLD, &dfl, NULL);
        sigprocmask(SIG_SETMASK, &old, NULL);
        sl_log_setup("worker", cfg->log_level);
        /* exit, not _exit: nothing is buffered in stdio before the fork, and
         * running exit handlers lets LeakSanitizer check every child. */
        exit(sl_consumer_main(cfg, i, NULL, -1));
    }
    int saved = errno;
    sigprocmask(SIG_SETMASK, &old, NULL);
    if (pid < 0) {
        SL_ERROR("master.fork_failed", "slot=%d error=\"%s\"", i, strerror(saved));
        slots[i].restart_at = sl_monotonic_ms() + RESTART_MAX_MS;
        return -1;
    }
    slots[i].pid = pid;
    slots[i].started_ms = sl_monotonic_ms();
    SL_INFO("worker.started", "slot=%d child=%ld", i, (long)pid);
    return pid;
}

static int running(const slot *slots, int n)
{
    int count = 0;
    for (int i = 0; i < n; i++)
        count += slots[i].pid != 0;
    return count;
}

static void signal_all(const slot *slots, int n, int sig)
{
    for (int i = 0; i < n; i++) {
        if (slots[i].pid > 0 && kill(slots[i].pid, sig) < 0 && errno != ESRCH)
            SL_WARN("master.kill_failed", "child=%ld signal=%d error=\"%s\"", (long)slots[i].pid,
                    sig, strerror(errno));
    }
}

/* Reaps every exited child.  Returns true if one exited with SL_EXIT_FATAL. */
static bool reap(slot *slots, int n, bool stopping)
{
    bool fatal = false;
    for (;;) {
        int status;
        pid_t pid = waitpid(-1, &status, WNOHANG);
        if (pid <= 0)
            break;
        int i;
        for (i = 0; i < n && slots[i].pid != pid; i++)
            ;
        if (i == n)
            continue;
        int64_t now = sl_monotonic_ms();
        int64_t lived = now - slots[i].started_ms;
        slots[i].pid = 0;
        bool clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;
        if (WIFEXITED(status)) {
            int code = WEXITSTATUS(status);
            if (code == SL_EXIT_FATAL)
                fatal = true;
            SL_LOG(clean || stopping ? SL_LOG_INFO : SL_LOG_WARN, "worker.exited",
                   "slot=%d child=%ld code=%d lived_ms=%lld%s", i, (long)pid, code, (long long)lived,
                   code == SL_EXIT_FATAL ? " fatal=true" : "");
        } else if (WIFSIGNALED(status)) {
            SL_LOG(stopping ? SL_LOG_INFO : SL_LOG_WARN, "worker.killed",
                   "slot=%d child=%ld signal=%d core=%s lived_ms=%lld", i, (long)pid,
                   WTERMSIG(status), WCOREDUMP(status) ? "yes" : "no", (long long)lived);
        }
        if (lived >= RESTART_RESET_MS)
            slots[i].crashes = 0;
        if (!clean)
            slots[i].crashes++;
        int64_t backoff = 0;
        if (slots[i].crashes > 0) {
            backoff = RESTART_MIN_MS;
            for (int k = 1; k < slots[i].crashes && backoff < RESTART_MAX_MS; k++)
                backoff *= 2;
            if (backoff > RESTART_MAX_MS)
                backoff = RESTART_MAX_MS;
        }
        slots[i].restart_at = now + backoff;
    }
    return fatal;
}

int sl_master_run(const sl_config *cfg)
{
    int n = cfg->worker.processes;
    slot *slots = sl_xcalloc((size_t)n, sizeof *slots);
    int status = 0;
    if (install_signals() < 0) {
        free(slots);
        return 1;
    }
    SL_INFO("master.started", "processes=%d queues=%zu batch=%d", n, cfg->worker.nqueues,
            cfg->worker.batch);
    bool stopping = false, fast = false;
    int64_t kill_at = 0;
    for (;;) {
        if (got_chld) {
            got_chld = 0;
            if (reap(slots, n, stopping) && !stopping) {
                SL_ERROR("master.fatal_child", "reason=\"a worker hit a configuration or schema "
                         "error; not restarting (see its log line above)\"");
                stopping = true;
                status = 1;
                signal_all(slots, n, SIGTERM);
                kill_at = sl_monotonic_ms() + cfg->worker.shutdown_timeout_ms;
            }
        }
        if (got_int && !fast) {
            SL_INFO("master.stopping", "mode=fast");
            fast = stopping = true;
            signal_all(slots, n, SIGQUIT);
            kill_at = sl_monotonic_ms() + 5000;
        }
        if (got_term && !stopping) {
            SL_INFO("master.stopping", "mode=graceful timeout_ms=%d", cfg->worker.shutdown_timeout_ms);
            stopping = true;
            signal_all(slots, n, SIGTERM);
            kill_at = sl_monotonic_ms() + cfg->worker.shutdown_timeout_ms;
        }
        int64_t now = sl_monotonic_ms();
        if (stopping) {
            if (running(slots, n) == 0)
                break;
            if (now >= kill_at) {
                SL_WARN("master.shutdown_timeout", "killing=%d", running(slots, n));
                signal_all(slots, n, SIGKILL);
                kill_at = now + 1000;
            }
        } else {
            for (int i = 0; i < n; i++) {
                if (slots[i].pid == 0 && now >= slots[i].restart_at)
                    spawn(cfg, slots, i);
            }
        }
        int64_t wait = 1000;
        for (int i = 0; i < n && !stopping; i++) {
            if (slots[i].pid == 0 && slots[i].restart_at - now < wait)
                wait = slots[i].restart_at - now;
        }
        if (stopping && kill_at - now < wait)
            wait = kill_at - now;
        struct pollfd pfd = { .fd = wake_pipe[0], .events = POLLIN };
        if (poll(&pfd, 1, wait > 0 ? (int)wait : 0) > 0)
            drain_wake_pipe();
    }
    SL_INFO("master.stopped", "status=%d", status);
    close(wake_pipe[0]);
    close(wake_pipe[1]);
    free(slots);
    return status;
}
