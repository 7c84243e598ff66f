/* log.c: see log.h. */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static const char *log_role = "sluice";
static sl_log_level log_min = SL_LOG_INFO;
static char log_job[160];
static char log_kind[80];
static char log_path[PATH_MAX]; /* file stderr was last pointed at, "" for none */

static const char *const level_names[] = { "debug", "info", "warn", "error" };

void sl_log_setup(const char *role, sl_log_level min_level)
{
    log_role = role;
    log_min = min_level;
}

int sl_log_reopen(const char *path)
{
    if (path == NULL) {
        if (log_path[0] == '\0')
            return 0;
        path = log_path;
    } else if (strlen(path) >= sizeof log_path) {
        errno = ENAMETOOLONG;
        return -1;
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOCTTY, 0640);
    if (fd < 0)
        return -1;
    if (fd == STDERR_FILENO) {
        fcntl(fd, F_SETFD, 0); /* stderr was closed: keep it open across exec */
    } else {
        int rc = dup2(fd, STDERR_FILENO);
        int saved = errno;
        close(fd);
        if (rc < 0) {
            errno = saved;
            return -1;
        }
    }
    if (path != log_path)
        snprintf(log_path, sizeof log_path, "%s", path);
    return 0;
}

void sl_log_set_job(const char *job_id, const char *kind)
{
    if (job_id == NULL) {
        log_job[0] = log_kind[0] = '\0';
        return;
    }
    sl_log_quote(log_job, sizeof log_job, job_id);
    sl_log_quote(log_kind, sizeof log_kind, kind);
}

bool sl_log_enabled(sl_log_level level) { return level >= log_min; }

const char *sl_log_level_name(sl_log_level level)
{
    return level <= SL_LOG_ERROR ? level_names[level] : "?";
}

int sl_log_level_parse(const char *s, sl_log_level *out)
{
    for (int i = 0; i <= SL_LOG_ERROR; i++) {
        if (strcasecmp(s, level_names[i]) == 0) {
            *out = (sl_log_level)i;
            return 0;
        }
    }
    if (strcasecmp(s, "warning") == 0) {
        *out = SL_LOG_WARN;
        return 0;
    }
    return -1;
}

static bool is_plain(const char *s)
{
    if (*s == '\0')
        return false;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c <= ' ' || c == '"' || c == '=' || c == '\\' || c == 0x7f)
            return false;
    }
    return true;
}

const char *sl_log_quote(char *buf, size_t n, const char *s)
{
    if (n == 0)
        return buf;
    if (s == NULL)
        s = "";
    if (is_plain(s)) {
        snprintf(buf, n, "%s", s);
        return buf;
    }
    size_t o = 0;
    buf[o++] = '"';
    for (; *s && o + 6 < n; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            buf[o++] = '\\';
            buf[o++] = (char)c;
        } else if (c == '\n') {
            buf[o++] = '\\';
            buf[o++] = 'n';
        } else if (c < ' ' || c == 0x7f) {
            o += (size_t)snprintf(buf + o, n - o, "\\x%02x", c);
        } else {
            buf[o++] = (char)c;
        }
    }
    if (o < n - 1)
        buf[o++] = '"';
    buf[o < n ? o : n - 1] = '\0';
    return buf;
}

void sl_log_write(sl_log_level level, const char *event, const char *fmt, ...)
{
    char line[4096];
    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    int n = snprintf(line, sizeof line,
                     "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s role=%s pid=%ld event=%s",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, (long)(tv.tv_usec / 1000), sl_log_level_name(level), log_role,
                     (long)getpid(), event);
    if (log_job[0] && n > 0 && (size_t)n < sizeof line)
        n += snprintf(line + n, sizeof line - (size_t)n, " job=%s kind=%s", log_job, log_kind);
    if (fmt[0] && n > 0 && (size_t)n + 1 < sizeof line) {
        line[n++] = ' ';
        va_list ap;
        va_start(ap, fmt);
        n += vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
        va_end(ap);
    }
    if (n < 0)
        return;
    size_t len = (size_t)n < sizeof line - 1 ? (size_t)n : sizeof line - 2;
    /* Whatever a format argument held, the event stays on one line. */
    for (size_t i = 0; i < len; i++) {
        if (line[i] == '\n' || line[i] == '\r')
            line[i] = ' ';
    }
    line[len++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w; /* nowhere left to report a failed write to stderr */
}
