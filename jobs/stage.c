/* stage.c: see stage.h. */
#include "stage.h"
#include "log.h"
#include "mem.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    (void)remove(path);
    return 0;
}

void sl_stage_remove(const char *path)
{
    (void)nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

void sl_stage_sweep(const char *dir, const char *prefix)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return;
    size_t plen = strlen(prefix);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, prefix, plen) != 0)
            continue;
        char *end;
        long pid = strtol(e->d_name + plen, &end, 10);
        if (end == e->d_name + plen || *end != '-' || pid <= 0)
            continue;
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH)
            continue;   /* alive, or not ours to judge */
        char *path = sl_xasprintf("%s/%s", dir, e->d_name);
        sl_stage_remove(path);
        char q[600];
        SL_INFO("stage.swept", "path=%s dead_pid=%ld", sl_log_quote(q, sizeof q, path), pid);
        free(path);
    }
    closedir(d);
}

char *sl_stage_template(const char *dir, const char *prefix)
{
    return sl_xasprintf("%s/%s%ld-XXXXXX", dir, prefix, (long)getpid());
}

int sl_stage_file(const char *dir, const char *prefix, char **named, sl_err *err)
{
    *named = NULL;
    int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0644);
    if (fd >= 0)
        return fd;
    if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL)
        return sl_err_set(err, SL_EIO, "create a staging file in %s: %s", dir, strerror(errno));
    char *path = sl_stage_template(dir, prefix);
    if ((fd = mkostemp(path, O_CLOEXEC)) < 0) {
        sl_err_set(err, SL_EIO, "create a staging file in %s: %s", dir, strerror(errno));
        free(path);
        return -1;
    }
    *named = path;
    return fd;
}

int sl_stage_publish(int fd, const char *named, const char *dir, const char *prefix,
                     const char *final, sl_err *err)
{
    if (named) {
        if (rename(named, final) < 0)
            return sl_err_set(err, SL_EIO, "rename %s to %s: %s", named, final, strerror(errno));
        return 0;
    }
    /* An O_TMPFILE gets a (staging) name with linkat, which cannot replace
     * an existing file, and then the final one with rename, which can. */
    char proc[64];
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
    for (int tries = 0; tries < 8; tries++) {
        unsigned r = 0;
        if (getrandom(&r, sizeof r, 0) != (ssize_t)sizeof r)
            r = (unsigned)tries;
        char *tmp = sl_xasprintf("%s/%s%ld-%08x", dir, prefix, (long)getpid(), r);
        if (linkat(AT_FDCWD, proc, AT_FDCWD, tmp, AT_SYMLINK_FOLLOW) < 0) {
            int e = errno;
            free(tmp);
            if (e == EEXIST)
                continue;
            return sl_err_set(err, SL_EIO, "linkat %s into %s: %s", proc, dir, strerror(e));
        }
        if (rename(tmp, final) < 0) {
            int e = errno;
            (void)unlink(tmp);
            free(tmp);
            return sl_err_set(err, SL_EIO, "rename to %s: %s", final, strerror(e));
        }
        free(tmp);
        return 0;
    }
    return sl_err_set(err, SL_EIO, "linkat into %s: no free staging name", dir);
}
