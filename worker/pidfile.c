/* pidfile.c: see pidfile.h.  The race between two masters started at the
 * same instant with the same pidfile is narrowed with link(2), which fails
 * if the name exists; only a file found stale is replaced (rename(2)). */
#include "pidfile.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PROGRAM "sluice-worker"

/* Reads the pid in path: >0, 0 if the file is missing or holds no pid. */
static pid_t read_pid(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    long pid = 0;
    if (fscanf(f, "%ld", &pid) != 1 || pid <= 0)
        pid = 0;
    fclose(f);
    return (pid_t)pid;
}

/* True if pid is a running (not zombie) process called sluice-worker, or
 * one we cannot inspect (/proc hidden): better refuse than run twice. */
static bool live_worker(pid_t pid)
{
    if (pid <= 0 || pid == getpid())
        return false;
    if (kill(pid, 0) < 0 && errno != EPERM)
        return false;
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return true;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* "pid (comm) S ...": comm may hold spaces and parentheses, so split at
     * the last ')'. */
    char *open = strchr(buf, '('), *close = strrchr(buf, ')');
    if (open == NULL || close == NULL || close < open || close[1] == '\0')
        return true;
    char state = close[2];
    if (state == 'Z' || state == 'X')
        return false;
    *close = '\0';
    return strcmp(open + 1, PROGRAM) == 0;
}

int sl_pidfile_check(const char *path, sl_err *err)
{
    pid_t owner = read_pid(path);
    if (live_worker(owner))
        return sl_err_set(err, SL_EINVAL, "pidfile %s: sluice-worker pid %ld is running", path,
                          (long)owner);
    return 0;
}

int sl_pidfile_write(const char *path, sl_err *err)
{
    char *tmp = NULL;
    int rc = -1;
    if (asprintf(&tmp, "%s.%ld.tmp", path, (long)getpid()) < 0) {
        tmp = NULL;
        return sl_err_set(err, SL_EIO, "pidfile %s: out of memory", path);
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        sl_err_set(err, SL_EIO, "pidfile: open %s: %s", tmp, strerror(errno));
        goto cleanup;
    }
    char text[32];
    int len = snprintf(text, sizeof text, "%ld\n", (long)getpid());
    bool written = write(fd, text, (size_t)len) == len;
    int saved = errno;
    if (close(fd) < 0 && written) {
        written = false;
        saved = errno;
    }
    if (!written) {
        sl_err_set(err, SL_EIO, "pidfile: write %s: %s", tmp, strerror(saved));
        goto cleanup;
    }
    if (link(tmp, path) == 0) {
        rc = 0;
        goto cleanup;
    }
    if (errno != EEXIST) {
        sl_err_set(err, SL_EIO, "pidfile: link %s: %s", path, strerror(errno));
        goto cleanup;
    }
    if (sl_pidfile_check(path, err) < 0)
        goto cleanup;
    /* Stale: replace it in one step. */
    if (rename(tmp, path) < 0) {
        sl_err_set(err, SL_EIO, "pidfile: rename %s: %s", path, strerror(errno));
        goto cleanup;
    }
    rc = 0;
cleanup:
    unlink(tmp);
    free(tmp);
    return rc;
}

void sl_pidfile_remove(const char *path)
{
    if (path && read_pid(path) == getpid())
        unlink(path);
}
