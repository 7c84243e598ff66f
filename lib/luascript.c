/* luascript.c: see luascript.h. */
#include "luascript.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mem.h"

redisReply *sl_lua_run(sl_redis *r, const sl_lua *s, int nkeys, const char *const *keys, int nargs,
                       const char *const *args, const size_t *arg_lens, sl_err *err)
{
    int argc = 3 + nkeys + nargs;
    const char **argv = sl_xcalloc((size_t)argc, sizeof *argv);
    size_t *lens = sl_xcalloc((size_t)argc, sizeof *lens);
    char nk[16];
    snprintf(nk, sizeof nk, "%d", nkeys);
    argv[0] = "EVALSHA", lens[0] = 7;
    argv[1] = s->sha1, lens[1] = strlen(s->sha1);
    argv[2] = nk, lens[2] = strlen(nk);
    for (int i = 0; i < nkeys; i++)
        argv[3 + i] = keys[i], lens[3 + i] = strlen(keys[i]);
    for (int i = 0; i < nargs; i++)
        argv[3 + nkeys + i] = args[i], lens[3 + nkeys + i] = arg_lens ? arg_lens[i] : strlen(args[i]);
    sl_err e;
    redisReply *rep = sl_redis_command(r, argc, argv, lens, &e);
    if (rep == NULL && !sl_redis_broken(r) && strstr(e.msg, "NOSCRIPT")) {
        argv[0] = "EVAL", lens[0] = 4;
        argv[1] = s->text, lens[1] = strlen(s->text);
        rep = sl_redis_command(r, argc, argv, lens, &e);
    }
    if (rep == NULL && err)
        *err = e;
    free(argv);
    free(lens);
    return rep;
}
