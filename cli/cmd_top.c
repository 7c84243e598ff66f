/* cmd_top.c: `sluice top`: a full-screen live view of the queues, the
 * workers and the open gates (view.h), refreshed every --interval.
 *
 * The terminal is driven with plain ANSI/xterm escape sequences (no curses:
 * the whole screen is redrawn each time, which is a few kilobytes a
 * second): the alternate screen (ESC[?1049h) keeps the shell's scrollback
 * intact, the cursor is hidden, and the keyboard is read in non-canonical
 * mode without echo (termios).  Whatever way top ends -- q, end of input,
 * SIGINT, SIGTERM, SIGHUP, an error -- it restores the saved termios
 * settings, shows the cursor and leaves the alternate screen.  Signal
 * handlers only set flags; SIGWINCH makes the loop read the new size and
 * redraw.  Ctrl-Z (SIGTSTP) gives the terminal back the same way before
 * the process stops (the default action, raised again); SIGCONT (fg, or
 * after a SIGSTOP) takes it again -- raw mode, alternate screen, hidden
 * cursor -- and redraws at the current size.  Without a terminal on stdin and stdout, or with --once, it
 * prints one plain snapshot (like `sluice stats`) and exits. */
#include "cli.h"
#include "clock.h"
#include "duration.h"
#include "snapshot.h"
#include "view.h"
#include "vis.h"

#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define CMD "top"
#define FILTER_MAX 64

#define ENTER_SCREEN "\033[?1049h\033[?25l"   /* alternate screen, hide cursor */
#define LEAVE_SCREEN "\033[?25h\033[?1049l"   /* show cursor, main screen */

static volatile sig_atomic_t stop_signal;  /* INT, TERM, HUP: leave */
static volatile sig_atomic_t resized;      /* WINCH: redraw at the new size */
static volatile sig_atomic_t suspending;   /* TSTP: restore the terminal, then stop */
static volatile sig_atomic_t continued;    /* CONT: take the terminal again, redraw */

static void on_signal(int sig)
{
    if (sig == SIGWINCH)
        resized = 1;
    else if (sig == SIGTSTP)
        suspending = 1;
    else if (sig == SIGCONT)
        continued = 1;
    else
        stop_signal = sig;
}

static const sl_opt cmd_rows[] = {
    { 'i', "interval", 'i', "T", "refresh every T (default 1s): a duration (500ms, 2s)\nor seconds (0.5, 2); at least 100ms" },
    { 's', "sort", 's', "KEY", "initial sort: name, depth, inflight, processed, failed,\nwait, oldest (or its key letter); default name" },
    { 'f', "filter", 'f', "TEXT", "initial queue filter" },
    { 'O', "once", 0, NULL, "print one plain snapshot and exit (also without a\nterminal)" },
    { 'c', "config", 'c', "FILE", "configuration file" },
    { 'h', "help", 'h', NULL, "show this help" },
    { 0 },
};

static const sl_opts cmd_opts = { "sluice top",
    "Usage: sluice top [OPTIONS]\n"
    "\n"
    "A live full-screen view, like top(1): one row per queue with DEPTH\n"
    "(waiting), INFL (in flight), DELAY (delayed), DEAD (dead letter), PROC/s\n"
    "and FAIL/s over the last interval, WAIT and RUN latency p50/p99 over the\n"
    "last interval ('-': nothing started or ran), OLDST (age of the oldest\n"
    "waiting job) and P ('P' paused, '!' jobs wait and no live worker serves\n"
    "the queue); then the worker processes (host, pid, state,\n"
    "kind and id of the current job and for how long, jobs done, RSS) and the\n"
    "open approval gates (run, gate, waiting since, approvals so far/required).\n"
    "\n"
    "Keys:\n"
    "  q          quit (also Ctrl-C)\n"
    "  /          type a filter (substring of the queue name), Enter to apply,\n"
    "             Esc to cancel; an empty filter shows every queue\n"
    "  n d i p f w o   sort by name, depth, in flight, processed/s, failed/s,\n"
    "             wait p99, oldest waiting job (largest first)\n"
    "  space      refresh now\n"
    "  Ctrl-Z     suspend: the terminal is restored; 'fg' brings top back\n"
    "\n",
    "\nTry 'sluice top --help'.", cmd_rows,
NULL, NULL };


/* "500ms", "2s" or a number of seconds ("0.5"). */
static int parse_interval(const char *s, int64_t *ms)
{
    char *end;
    double secs = strtod(s, &end);
    if (end != s && *end == '\0') {
        if (!(secs >= 0.1 && secs <= 3600))
            return -1;
        *ms = (int64_t)(secs * 1000 + 0.5);
        return 0;
    }
    if (sl_duration_parse(s, ms, NULL) < 0 || *ms < 100 || *ms > 3600000)
        return -1;
    return 0;
}

/* The screen and the state the keys change. */
typedef struct screen {
    int fd;                  /* the terminal (stdout) */
    struct termios saved;    /* settings to restore */
    bool raw;                /* saved is valid and raw mode is on */
    int rows, cols;
    view_opts opts;
    char filter[FILTER_MAX + 1];
    bool editing;            /* typing a filter */
    char edit[FILTER_MAX + 1];
    int64_t interval_ms;
} screen;

static void write_all(int fd, const char *s, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, s, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return;   /* the terminal is gone: nothing left to show it */
        s += w;
        n -= (size_t)w;
    }
}

static void read_size(screen *sc)
{
    struct winsize ws;
    if (ioctl(sc->fd, TIOCGWINSZ, &ws) == 0 && ws.ws_row > 0 && ws.ws_col > 0) {
        sc->rows = ws.ws_row;
        sc->cols = ws.ws_col;
    } else {
        sc->rows = 24;
        sc->cols = 80;
    }
}

/* Raw mode and the alternate screen.  save: first time (the settings to
 * restore are read); else after a stop, when the shell may have changed
 * the settings: the ones saved at the start are kept. */
static int enter_raw(screen *sc, bool save)
{
    if (save && tcgetattr(STDIN_FILENO, &sc->saved) < 0)
        return -1;
    struct termios raw = sc->saved;
    raw.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
    raw.c_iflag &= ~(tcflag_t)(IXON | ICRNL);
    raw.c_cc[VMIN] = 0;
    raw.c_cc[VTIME] = 0;
    if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &raw) < 0)
        return -1;
    sc->raw = true;
    write_all(sc->fd, ENTER_SCREEN, strlen(ENTER_SCREEN));
    return 0;
}

static void leave_raw(screen *sc)
{
    if (!sc->raw)
        return;
    write_all(sc->fd, LEAVE_SCREEN, strlen(LEAVE_SCREEN));
    tcsetattr(STDIN_FILENO, TCSAFLUSH, &sc->saved);
    sc->raw = false;
}

/* Ctrl-Z: gives the terminal back as it was, then stops with the default
 * action of SIGTSTP; returns when continued. */
static void suspend(screen *sc)
{
    leave_raw(sc);
    struct sigaction dfl, mine;
    memset(&dfl, 0, sizeof dfl);
    sigemptyset(&dfl.sa_mask);
    dfl.sa_handler = SIG_DFL;
    sigaction(SIGTSTP, &dfl, &mine);
    raise(SIGTSTP);
    sigaction(SIGTSTP, &mine, NULL);
}

/* Draws a frame: title, the view, and the key help (or the filter being
 * typed) on the last line.  err: a message to show instead of the view. */
static void draw(screen *sc, const snap *cur, const snap *prev, const char *err)
{
    sl_buf body = SL_BUF_INIT, frame = SL_BUF_INIT;
    char clock[16], every[32];
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    strftime(clock, sizeof clock, "%H:%M:%S", &tm);
    sl_duration_format(sc->interval_ms, every, sizeof every);
    sl_buf_printf(&body, "sluice top  %s  every %s  sort: %s  filter: %s\n", clock, every,
                  view_sort_name(sc->opts.sort), sc->filter[0] ? sc->filter : "-");
    if (err) {
        sl_buf_printf(&body, "\nerror: %s\n(retrying every %s)\n", SL_VIS(err), every);
    } else {
        view_opts o = sc->opts;
        o.filter = sc->filter;
        o.width = sc->cols;
        o.height = sc->rows - 2;
        view_render(cur, prev, &o, &body);
    }
    sl_buf_puts(&frame, "\033[H");
    int line = 0;
    const char *p = sl_buf_str(&body);
    while (*p && line < sc->rows - 1) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        if (n > (size_t)sc->cols)
            n = (size_t)sc->cols;
        sl_buf_append(&frame, p, n);
        sl_buf_puts(&frame, "\033[K\r\n");
        line++;
        p = nl ? nl + 1 : p + strlen(p);
    }
    sl_buf_puts(&frame, "\033[J");
    /* The last line, without a newline so that the screen never scrolls. */
    sl_buf_printf(&frame, "\033[%d;1H\033[7m", sc->rows);
    char help[256];
    if (sc->editing)
        snprintf(help, sizeof help, "filter: %s_   (Enter apply, Esc cancel)", sc->edit);
    else
        snprintf(help, sizeof help, "q quit  / filter  sort: n name d depth i infl p proc f fail w wait o oldest");
    help[sc->cols < (int)sizeof help ? sc->cols : (int)sizeof help - 1] = '\0';
    sl_buf_puts(&frame, help);
    sl_buf_puts(&frame, "\033[0m\033[K");
    write_all(sc->fd, frame.data, frame.len);
    sl_buf_free(&body);
    sl_buf_free(&frame);
}

/* Handles one key.  Returns 1 to quit, 2 to redraw, 3 to refresh, 0 else. */
static int on_key(screen *sc, unsigned char k)
{
    if (sc->editing) {
        size_t n = strlen(sc->edit);
        if (k == '\r' || k == '\n') {
            snprintf(sc->filter, sizeof sc->filter, "%s", sc->edit);
            sc->editing = false;
        } else if (k == 27) {
            sc->editing = false;
        } else if ((k == 127 || k == 8) && n > 0) {
            sc->edit[n - 1] = '\0';
        } else if (k >= 32 && k < 127 && n < FILTER_MAX) {
            sc->edit[n] = (char)k;
            sc->edit[n + 1] = '\0';
        }
        return 2;
    }
    if (k == 'q' || k == 'Q' || k == 3 /* Ctrl-C when ISIG is off */)
        return 1;
    if (k == '/') {
        sc->editing = true;
        snprintf(sc->edit, sizeof sc->edit, "%s", sc->filter);
        return 2;
    }
    if (k == ' ')
        return 3;
    char key[2] = { (char)k, '\0' };
    int s = view_sort_parse(key);
    if (s >= 0) {
        sc->opts.sort = (view_sort)s;
        return 2;
    }
    return 0;
}

static void install(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = on_signal;   /* no SA_RESTART: poll must wake up */
    int sigs[] = { SIGINT, SIGTERM, SIGHUP, SIGWINCH, SIGTSTP, SIGCONT };
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        sigaction(sigs[i], &sa, NULL);
}

static int run_live(screen *sc, snap_conn *conn)
{
    snap cur, prev;
    memset(&cur, 0, sizeof cur);
    memset(&prev, 0, sizeof prev);
    bool have_prev = false;
    int status = CLI_OK;
    install();
    read_size(sc);
    if (enter_raw(sc, true) < 0)
        return cli_fail(CMD, "cannot set up the terminal: %s", strerror(errno));
    for (;;) {
        sl_err err;
        snap next;
        char errmsg[sizeof err.msg] = "";
        if (snap_conn_take(conn, NULL, 0, &next, &err) < 0) {
            snprintf(errmsg, sizeof errmsg, "%s", err.msg);
        } else {
            snap_clear(&prev);
            prev = cur;
            have_prev = prev.taken_ms > 0;
            cur = next;
        }
        draw(sc, &cur, have_prev ? &prev : NULL, errmsg[0] ? errmsg : NULL);
        int64_t due = sl_monotonic_ms() + sc->interval_ms;
        bool refresh = false;
        while (!refresh) {
            if (stop_signal)
                goto done;
            if (suspending) {
                suspending = 0;
                suspend(sc);
                continued = 1;
            }
            if (continued) {
                continued = 0;
                if (enter_raw(sc, false) < 0) {
                    status = cli_fail(CMD, "cannot set up the terminal again: %s", strerror(errno));
                    goto done;
                }
                resized = 1;   /* the size may have changed meanwhile */
            }
            if (resized) {
                resized = 0;
                read_size(sc);
                draw(sc, &cur, have_prev ? &prev : NULL, errmsg[0] ? errmsg : NULL);
            }
            int64_t left = due - sl_monotonic_ms();
            if (left <= 0)
                break;
            struct pollfd p = { .fd = STDIN_FILENO, .events = POLLIN };
            int r = poll(&p, 1, (int)left);
            if (r < 0 && errno == EINTR)
                continue;
            if (r < 0) {
                status = cli_fail(CMD, "poll: %s", strerror(errno));
                goto done;
            }
            if (r == 0)
                break;
            unsigned char keys[64];
            ssize_t n = read(STDIN_FILENO, keys, sizeof keys);
            if (n == 0 || (p.revents & (POLLHUP | POLLERR)))
                goto done;   /* the terminal went away */
            for (ssize_t i = 0; i < n; i++) {
                int act = on_key(sc, keys[i]);
                if (act == 1)
                    goto done;
                if (act == 3)
                    refresh = true;
                if (act == 2)
                    draw(sc, &cur, have_prev ? &prev : NULL, errmsg[0] ? errmsg : NULL);
            }
        }
    }
done:
    leave_raw(sc);
    snap_clear(&cur);
    snap_clear(&prev);
    return status;
}

int cmd_top(int argc, char **argv)
{
    screen sc;
    memset(&sc, 0, sizeof sc);
    sc.fd = STDOUT_FILENO;
    sc.interval_ms = 1000;
    const char *config = NULL;
    bool once = false;
    int c, s;
    sl_opts_parser op;
    const char *optval;
    sl_opts_begin(&op, &cmd_opts, argc, argv);
    while ((c = sl_opts_next(&op, &optval)) != SL_OPTS_END) {
        switch (c) {
        case 'i':
            if (parse_interval(optval, &sc.interval_ms) < 0)
                return cli_usage_error(CMD, "invalid --interval '%s' (e.g. 1s, 500ms, 2; at least 100ms)", optval);
            break;
        case 's':
            if ((s = view_sort_parse(optval)) < 0)
                return cli_usage_error(CMD, "unknown sort key '%s'", optval);
            sc.opts.sort = (view_sort)s;
            break;
        case 'f': snprintf(sc.filter, sizeof sc.filter, "%s", optval); break;
        case 'O': once = true; break;
        case 'c': config = optval; break;
        default: return op.status;
        }
    }
    if (optind < argc)
        return cli_usage_error(CMD, "unexpected argument '%s'", argv[optind]);
    sl_config *cfg = cli_load_config(CMD, config);
    if (cfg == NULL)
        return CLI_FAILED;
    snap_conn conn = { .cfg = cfg };
    int status;
    if (once || !isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO)) {
        snap one;
        sl_err err;
        status = CLI_FAILED;
        if (snap_conn_take(&conn, NULL, 0, &one, &err) < 0) {
            cli_fail(CMD, "%s", err.msg);
        } else {
            sl_buf b = SL_BUF_INIT;
            view_opts o = sc.opts;
            o.filter = sc.filter;
            view_render(&one, NULL, &o, &b);
            fputs(sl_buf_str(&b), stdout);
            sl_buf_free(&b);
            status = fflush(stdout) == 0 ? CLI_OK : CLI_FAILED;
        }
        snap_clear(&one);
    } else {
        status = run_live(&sc, &conn);
    }
    snap_conn_close(&conn);
    sl_config_free(cfg);
    return status;
}
