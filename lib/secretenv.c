/* secretenv.c: see secretenv.h.
 *
 * The original environment block is the region [env_start, env_end) that
 * /proc/self/stat reports (fields 50 and 51): the kernel shows exactly
 * these bytes as /proc/PID/environ.  Unsetting a variable only drops its
 * pointer from `environ`; the bytes stay, so they are found in the block
 * and zeroed there.  Strings added later by setenv live on the heap and
 * never appear in /proc/PID/environ. */
#include "secretenv.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>

#include "mem.h"

#define STORE_MAX 64

typedef struct entry {
    char *name;    /* owned, for the life of the process */
    char *value;   /* owned */
} entry;

static entry store[STORE_MAX];
static size_t nstore;

static const entry *find(const char *name)
{
    for (size_t i = 0; i < nstore; i++) {
        if (strcmp(store[i].name, name) == 0)
            return &store[i];
    }
    return NULL;
}

/* The original environment block, from /proc/self/stat.  False if unknown. */
static int env_block(char **start, char **end)
{
    FILE *f = fopen("/proc/self/stat", "re");
    if (f == NULL)
        return 0;
    char line[2048];
    int ok = 0;
    if (fgets(line, sizeof line, f)) {
        char *p = strrchr(line, ')');   /* the command name may hold spaces and parentheses */
        unsigned long long s = 0, e = 0;
        int field = 2;
        for (char *tok = p ? strtok(p + 1, " ") : NULL; tok; tok = strtok(NULL, " ")) {
            field++;
            if (field == 50)
                s = strtoull(tok, NULL, 10);
            else if (field == 51)
                e = strtoull(tok, NULL, 10);
        }
        if (s && e > s) {
            *start = (char *)(uintptr_t)s;
            *end = (char *)(uintptr_t)e;
            ok = 1;
        }
    }
    fclose(f);
    return ok;
}

void sl_secretenv_take(const char *name)
{
    const char *v = getenv(name);
    if (v && find(name) == NULL && nstore < STORE_MAX) {
        store[nstore].name = sl_xstrdup(name);
        store[nstore].value = sl_xstrdup(v);
        nstore++;
    }
    (void)unsetenv(name);
    char *p, *end;
    if (!env_block(&p, &end))
        return;
    size_t nl = strlen(name);
    while (p < end) {
        size_t len = strnlen(p, (size_t)(end - p));
        if (len > nl && strncmp(p, name, nl) == 0 && p[nl] == '=')
            explicit_bzero(p, len);
        p += len + 1;
    }
}

const char *sl_secretenv_get(const char *name)
{
    const entry *e = find(name);
    return e ? e->value : getenv(name);
}

int sl_secretenv_protect(void)
{
    return prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}
