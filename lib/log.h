/* log.h: structured logging to stderr, one event per line.
 *
 *   ts=2026-11-22T07:40:00.123Z level=info role=worker pid=4711 event=job.done job=… kind=noop ms=0.4
 *
 * Every line carries the process role and pid and, while a job runs, its id
 * and kind (sl_log_set_job).  Call sites add key=value fields with a printf
 * format; values that may hold spaces or come from callers (error messages,
 * arguments) go through sl_log_quote.  Control characters are escaped, so a
 * hostile value can never start a new line.  Each line is one write(2), so
 * lines from the pool's processes never interleave.
 *
 * The logger's settings are process-wide (like Redis's serverLog): one
 * logger per process, configured once in main and again after fork. */
#ifndef SL_LOG_H
#define SL_LOG_H

#include <stdbool.h>
#include <stddef.h>

typedef enum sl_log_level {
    SL_LOG_DEBUG = 0,
    SL_LOG_INFO,
    SL_LOG_WARN,
    SL_LOG_ERROR,
} sl_log_level;

/* Sets the role printed on every line ("master", "worker", "cli", …) and the
 * minimum level written.  role must outlive the logger (a string literal). */
void sl_log_setup(const char *role, sl_log_level min_level);

/* Points stderr (and so the log) at the file path, opened for appending
 * (created 0640 if missing), with dup2(2): anything else that writes to
 * stderr follows too.  path NULL reopens the path given last (a forked
 * child inherits it), and does nothing if none was given.  Call it again
 * after logrotate has renamed the file (sluice-worker does on SIGUSR1).
 * Returns 0, or -1 with errno set and stderr unchanged. */
int sl_log_reopen(const char *path);

/* Sets (or with NULL clears) the job context added to every line. */
void sl_log_set_job(const char *job_id, const char *kind);

bool sl_log_enabled(sl_log_level level);

/* Writes one event.  fmt formats the extra fields ("key=%s n=%d"), or is "". */
void sl_log_write(sl_log_level level, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Level is checked before the arguments are evaluated. */
#define SL_LOG(level, event, ...) \
    do { if (sl_log_enabled(level)) sl_log_write((level), (event), __VA_ARGS__); } while (0)
#define SL_DEBUG(event, ...) SL_LOG(SL_LOG_DEBUG, event, __VA_ARGS__)
#define SL_INFO(event, ...)  SL_LOG(SL_LOG_INFO, event, __VA_ARGS__)
#define SL_WARN(event, ...)  SL_LOG(SL_LOG_WARN, event, __VA_ARGS__)
#define SL_ERROR(event, ...) SL_LOG(SL_LOG_ERROR, event, __VA_ARGS__)

/* Returns s as a log value: unchanged if it is a plain token, else wrapped in
 * double quotes with ", \ and control characters escaped; written into buf
 * (truncated to n) and returned.  NULL prints as "". */
const char *sl_log_quote(char *buf, size_t n, const char *s);

/* Parses "debug", "info", "warn" or "error"; returns -1 for anything else. */
int sl_log_level_parse(const char *s, sl_log_level *out);
const char *sl_log_level_name(sl_log_level level);

#endif
