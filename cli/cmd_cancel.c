/* cmd_cancel.c: `sluice cancel JOB`: asks for a job to be cancelled.
 * (`sluice cancel RUN` cancels a pipeline run instead: cli_cancel_run.)
 *
 * The request is recorded in PostgreSQL (sluice_cancellations), which is
 * what a worker checks before it starts a job: a job that has not started
 * is acknowledged without running and recorded `cancelled`.  For a job that
 * is running now, the request is also flagged in Redis
 * (sluice:cancel:ID, kept a week); the master of the worker running it sees
 * the flag and signals that child (SIGUSR2), whose handler gets
 * `ctx->cancelled` set and is expected to return early.  A job that ignores
 * it runs to its end, and is then recorded `cancelled`.
 *
 * Cancelling is an operator's action through the database, so the request
 * is recorded under the PostgreSQL role that the server authenticated
 * (session_user), with the OS login beside it as a hint; nothing the caller
 * merely claims (an environment variable, an option) names who asked. */
#include "cli.h"
#include "db.h"
#include "jobid.h"
#include "queue.h"
#include "redis.h"
#include "store.h"

#include <getopt.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define CMD "cancel"
#define CANCEL_TTL_S "604800"

static const sl_opts opts = CLI_OPTS("cancel",
    "Usage: sluice cancel JOB_ID|RUN_ID [OPTIONS]\n"
    "\n"
    "For a pipeline run: the run ends 'cancelled', its unfinished steps too,\n"
    "its open gates close, and its queued jobs are cancelled as below.\n"
    "\n"
    "Cancels a job: if it has not started, no worker will run it; if it is\n"
    "running, its worker is told to stop it.  Either way it ends with status\n"
    "'cancelled'.  A job that already finished is not changed.\n"
    "\n",
    cli_rows_simple);

/* "ROLE (database role; OS user LOGIN)": the role PostgreSQL authenticated. */
static int requester(const sl_config *cfg, char *out, size_t size, sl_err *err)
{
    sl_db *db = sl_db_connect(cfg->database_url, err);
    if (db == NULL)
        return -1;
    PGresult *res = sl_db_exec(db, "read the database role", "SELECT session_user::text", 0, NULL, err);
    sl_db_free(db);
    if (res == NULL)
        return -1;
    const struct passwd *pw = getpwuid(getuid());
    snprintf(out, size, "%.63s (database role; OS user %.40s)", PQgetvalue(res, 0, 0),
             pw ? pw->pw_name : "unknown");
    PQclear(res);
    return 0;
}

int cmd_cancel(int argc, char **argv)
{
    const char *config = NULL;
    int parsed = cli_simple_args(&opts, argc, argv, &config, NULL, 1, "JOB_ID");
    if (parsed >= 0)
        return parsed;
    const char *id = argv[optind];
    if (!sl_jobid_valid(id))
        return cli_usage_error(CMD, "invalid job id '%s'", id);
    sl_config *cfg = cli_load_config(CMD, config);
    if (cfg == NULL)
        return CLI_FAILED;
    sl_err err;
    char by[160];
    if (requester(cfg, by, sizeof by, &err) < 0) {
        cli_fail(CMD, "%s", err.msg);
        sl_config_free(cfg);
        return CLI_FAILED;
    }
    int run_status = cli_cancel_run(cfg, id, by);
    if (run_status >= 0) {
        sl_config_free(cfg);
        return run_status;
    }
    int status = CLI_FAILED;
    sl_redis *redis = NULL;
    sl_store *store = sl_store_connect(cfg->database_url, &err);
    if (store == NULL || sl_store_cancel(store, id, by, &err) < 0) {
        cli_fail(CMD, "%s", err.msg);
        goto out;
    }
    char key[SL_JOBID_MAX + 32];
    snprintf(key, sizeof key, "%s%s", SL_CANCEL_KEY_PREFIX, id);
    const char *set[] = { "SET", key, by, "EX", CANCEL_TTL_S };
    redisReply *rep = NULL;
    if ((redis = sl_redis_connect(cfg->redis_url, 5000, &err)) == NULL ||
        (rep = sl_redis_command(redis, 5, set, NULL, &err)) == NULL) {
        /* Recorded where it matters (a job that has not started will not);
         * only a running job misses the prompt stop. */
        fprintf(stderr, "sluice cancel: warning: could not flag running job in Redis: %s\n", err.msg);
    }
    if (rep)
        freeReplyObject(rep);
    printf("cancellation of job %s requested\n", id);
    status = CLI_OK;
out:
    sl_redis_free(redis);
    sl_store_free(store);
    sl_config_free(cfg);
    return status;
}
