/* test_top.c: `sluice top` driven in a real pseudo-terminal (forkpty, 80x24):
 * it shows a queue's depth changing as jobs are enqueued and drained by a
 * worker pool, sorts and filters on keys, quits on `q` or SIGINT, and
 * leaves the terminal as it found it (main screen, cursor shown, canonical
 * mode with echo).  Without a terminal it prints one plain snapshot. */
#include "harness.h"

#include "mem.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define WAIT_MS 30000
#define LEAVE "\033[?25h\033[?1049l"

typedef struct tty {
    pid_t pid;
    int master;
    char *out;      /* everything top wrote */
    size_t len, cap;
} tty;

static void tty_start(tty *t, const char *filter)
{
    memset(t, 0, sizeof *t);
    struct winsize ws = { .ws_row = 24, .ws_col = 80 };
    t->pid = forkpty(&t->master, NULL, NULL, &ws);
    cr_assert(t->pid >= 0, "forkpty: %s", strerror(errno));
    if (t->pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);   /* a failed test leaves nothing running */
        setenv("TERM", "xterm", 1);
        execl(SLUICE_BIN, SLUICE_BIN, "top", "--interval", "200ms", "--filter", filter, (char *)NULL);
        _exit(127);
    }
    t->cap = 1 << 16;
    t->out = sl_xmalloc(t->cap);
}

/* Reads what is available within ms; returns false at end of output. */
static bool tty_pump(tty *t, int ms)
{
    struct pollfd p = { .fd = t->master, .events = POLLIN };
    if (poll(&p, 1, ms) <= 0)
        return true;
    if (t->len + 8192 > t->cap)
        t->out = sl_xrealloc(t->out, t->cap *= 2);
    ssize_t n = read(t->master, t->out + t->len, t->cap - t->len - 1);
    if (n <= 0)
        return false;   /* EIO once the child has exited */
    t->len += (size_t)n;
    t->out[t->len] = '\0';
    return true;
}

/* The DEPTH shown for queue in the last frame drawn, or -1 if none yet:
 * the last line that starts with the queue's name (a table row). */
static long last_depth(const tty *t, const char *queue)
{
    const char *hit = NULL;
    size_t ql = strlen(queue);
    for (const char *p = t->out; (p = strstr(p, queue)) != NULL; p += ql) {
        if (p[ql] == ' ' && p > t->out && p[-1] == '\n')
            hit = p;
    }
    if (hit == NULL)
        return -1;
    char *end;
    long v = strtol(hit + ql, &end, 10);
    return end == hit + ql ? -1 : v;
}

/* Pumps until queue shows depth want (bounded). */
static bool await_depth(tty *t, const char *queue, long want)
{
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        if (last_depth(t, queue) == want)
            return true;
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if ((now.tv_sec - t0.tv_sec) * 1000 + (now.tv_nsec - t0.tv_nsec) / 1000000 > WAIT_MS)
            return false;
        if (!tty_pump(t, 100))
            return last_depth(t, queue) == want;
    }
}

/* Waits for top to exit, draining its output until the pty reports the
 * end (EIO once no process holds the terminal); returns its exit status. */
static int tty_finish(tty *t)
{
    for (int i = 0; i < WAIT_MS / 50; i++) {
        if (!tty_pump(t, 50)) {
            int status;
            if (waitpid(t->pid, &status, 0) != t->pid)
                return -1;
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        }
    }
    kill(t->pid, SIGKILL);
    waitpid(t->pid, NULL, 0);
    return -1;
}

static void assert_restored(tty *t)
{
    const char *leave = strstr(t->out, LEAVE);
    cr_assert_not_null(leave, "top did not leave the alternate screen / show the cursor");
    cr_assert(strstr(t->out, "\033[?1049h") < leave);
    struct termios tio;
    cr_assert_eq(tcgetattr(t->master, &tio), 0, "tcgetattr: %s", strerror(errno));
    cr_assert(tio.c_lflag & ICANON, "canonical mode not restored");
    cr_assert(tio.c_lflag & ECHO, "echo not restored");
    close(t->master);
    free(t->out);
}

static void enqueue(const char *queue, int n)
{
    for (int i = 0; i < n; i++) {
        const char *argv[] = { SLUICE_BIN, "enqueue", "noop", "--queue", queue, NULL };
        th_result r = th_run(argv, NULL);
        cr_assert_eq(r.status, 0, "%s", r.err);
        th_result_free(&r);
    }
}

/* A queue name short enough for the 10-column QUEUE field at 80x24. */
static void short_name(char *buf, size_t n)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(buf, n, "t%05x%03d", (unsigned)(getpid() & 0xfffff), (int)(ts.tv_nsec / 1000000));
}

Test(top, depth_follows_enqueue_and_drain_then_q_quits, .timeout = 90)
{
    th_migrate();
    char queue[16];
    short_name(queue, sizeof queue);
    enqueue(queue, 2);
    tty t;
    tty_start(&t, queue);
    cr_assert(await_depth(&t, queue, 2), "never showed depth 2; output:\n%s", t.out);
    enqueue(queue, 3);
    cr_assert(await_depth(&t, queue, 5), "never showed depth 5; output:\n%s", t.out);
    cr_assert(strstr(t.out, "WORKERS:") && strstr(t.out, "GATES:"), "sections missing:\n%s", t.out);

    char *config = th_write_temp("sluice.yaml", "worker:\n  block: 100ms\n");
    char *log = sl_xasprintf("/tmp/sluice-top-%s.log", queue);
    const char *args[] = { "--config", config, "--queues", queue, "--processes", "1", NULL };
    pid_t pool = th_worker_start(args, log);
    cr_assert(await_depth(&t, queue, 0), "never showed depth 0 after the drain; output:\n%s", t.out);
    cr_assert_eq(th_stop(pool, SIGTERM, 30000), 0);

    /* A resized terminal is redrawn at its new size (the kernel sends
     * SIGWINCH): the key line moves to the new last row. */
    struct winsize big = { .ws_row = 30, .ws_col = 100 };
    cr_assert_eq(ioctl(t.master, TIOCSWINSZ, &big), 0);
    size_t mark = t.len;
    for (int i = 0; i < 50 && strstr(t.out + mark, "\033[30;1H") == NULL; i++)
        tty_pump(&t, 100);
    cr_assert(strstr(t.out + mark, "\033[30;1H"), "not redrawn at 100x30:\n%s", t.out + mark);

    /* Keys: a sort order, then quit. */
    cr_assert_eq(write(t.master, "d", 1), 1);
    size_t before = t.len;
    for (int i = 0; i < 50 && strstr(t.out + before, "sort: depth") == NULL; i++)
        tty_pump(&t, 100);
    cr_assert(strstr(t.out + before, "sort: depth"), "sort key ignored:\n%s", t.out + before);
    cr_assert_eq(write(t.master, "q", 1), 1);
    cr_assert_eq(tty_finish(&t), 0, "top did not exit 0 on q; output:\n%s", t.out);
    assert_restored(&t);
    unlink(log);
    free(log);
    free(config);
}

Test(top, sigint_restores_the_terminal, .timeout = 60)
{
    th_migrate();
    char queue[16];
    short_name(queue, sizeof queue);
    enqueue(queue, 1);
    tty t;
    tty_start(&t, queue);
    cr_assert(await_depth(&t, queue, 1), "never showed the queue; output:\n%s", t.out);
    kill(t.pid, SIGINT);
    cr_assert_eq(tty_finish(&t), 0, "output:\n%s", t.out);
    assert_restored(&t);
}

Test(top, without_a_terminal_prints_one_snapshot, .timeout = 60)
{
    th_migrate();
    char queue[16];
    short_name(queue, sizeof queue);
    enqueue(queue, 3);
    const char *argv[] = { SLUICE_BIN, "top", "--filter", queue, NULL };
    th_result r = th_run(argv, NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert(strstr(r.out, "QUEUE") && strstr(r.out, queue), "%s", r.out);
    cr_assert_null(strstr(r.out, "\033"), "escape sequences in plain output:\n%s", r.out);
    th_result_free(&r);
    const char *bad[] = { SLUICE_BIN, "top", "--interval", "5ms", NULL };
    r = th_run(bad, NULL);
    cr_assert_eq(r.status, 2);
    th_result_free(&r);
}

/* Like tty_start, but top runs as a job of a tiny shell: the pty's session
 * leader forks it into its own process group, makes that the foreground
 * group and waits for it.  (A session leader's own group is orphaned, and
 * the kernel does not stop an orphaned group on SIGTSTP.)  Returns top's
 * pid; the session leader exits with top's status. */
static pid_t tty_start_job(tty *t, const char *filter)
{
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    memset(t, 0, sizeof *t);
    struct winsize ws = { .ws_row = 24, .ws_col = 80 };
    t->pid = forkpty(&t->master, NULL, NULL, &ws);
    cr_assert(t->pid >= 0, "forkpty: %s", strerror(errno));
    if (t->pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        close(fds[0]);
        pid_t top = fork();
        if (top == 0) {
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            setpgid(0, 0);
            signal(SIGTTOU, SIG_IGN);
            tcsetpgrp(STDIN_FILENO, getpid());
            signal(SIGTTOU, SIG_DFL);
            setenv("TERM", "xterm", 1);
            execl(SLUICE_BIN, SLUICE_BIN, "top", "--interval", "200ms", "--filter", filter, (char *)NULL);
            _exit(127);
        }
        setpgid(top, top);
        if (write(fds[1], &top, sizeof top) != sizeof top)
            _exit(125);
        for (;;) {
            int st;
            if (waitpid(top, &st, WUNTRACED) < 0)
                _exit(126);
            if (WIFEXITED(st))
                _exit(WEXITSTATUS(st));
            if (WIFSIGNALED(st))
                _exit(128 + WTERMSIG(st));
        }
    }
    close(fds[1]);
    pid_t top = 0;
    cr_assert_eq(read(fds[0], &top, sizeof top), (ssize_t)sizeof top);
    close(fds[0]);
    t->cap = 1 << 16;
    t->out = sl_xmalloc(t->cap);
    return top;
}

/* The state letter of pid in /proc (R, S, T, ...), '?' if unreadable. */
static char proc_state(pid_t pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return '?';
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *paren = strrchr(buf, ')');
    return paren && paren[1] == ' ' ? paren[2] : '?';
}

static tcflag_t lflag(int fd)
{
    struct termios tio;
    cr_assert_eq(tcgetattr(fd, &tio), 0, "tcgetattr: %s", strerror(errno));
    return tio.c_lflag;
}

Test(top, ctrl_z_restores_the_terminal_and_fg_redraws, .timeout = 90)
{
    th_migrate();
    char queue[16];
    short_name(queue, sizeof queue);
    enqueue(queue, 1);
    tty t;
    pid_t top = tty_start_job(&t, queue);
    cr_assert(await_depth(&t, queue, 1), "never showed the queue; output:\n%s", t.out);
    cr_assert_eq(lflag(t.master) & (ICANON | ECHO), 0, "top runs in raw mode");

    /* Ctrl-Z, typed: the terminal sends SIGTSTP to the foreground job. */
    size_t mark = t.len;
    cr_assert_eq(write(t.master, "\x1a", 1), 1);
    for (int i = 0; i < 100 && proc_state(top) != 'T'; i++)
        tty_pump(&t, 50);
    cr_assert_eq(proc_state(top), 'T', "top did not stop on Ctrl-Z");
    tty_pump(&t, 100);
    cr_assert(strstr(t.out + mark, LEAVE), "the terminal was not given back before stopping:\n%s", t.out + mark);
    cr_assert_eq(lflag(t.master) & (ICANON | ECHO), ICANON | ECHO, "cooked mode not restored while stopped");

    /* fg: SIGCONT.  Raw mode, the alternate screen and the view come back. */
    mark = t.len;
    cr_assert_eq(kill(top, SIGCONT), 0);
    for (int i = 0; i < 100 && (strstr(t.out + mark, "\033[?1049h") == NULL || last_depth(&t, queue) != 1 ||
                                strstr(strstr(t.out + mark, "\033[?1049h") ?: t.out + mark, queue) == NULL); i++)
        tty_pump(&t, 50);
    const char *back = strstr(t.out + mark, "\033[?1049h");
    cr_assert(back && strstr(back, queue), "not redrawn after fg:\n%s", t.out + mark);
    cr_assert_eq(lflag(t.master) & (ICANON | ECHO), 0, "raw mode not taken again after fg");

    cr_assert_eq(write(t.master, "q", 1), 1);
    cr_assert_eq(tty_finish(&t), 0, "output:\n%s", t.out);
    assert_restored(&t);
}
