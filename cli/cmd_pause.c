/* cmd_pause.c: `sluice pause QUEUE` and `sluice resume QUEUE`: add a queue
 * to, or remove it from, the set sluice:paused, which workers check before
 * fetching.  Pausing stops new work only: jobs already running finish, and
 * producers can still enqueue (the jobs wait in the stream). */
#include "cli.h"
#include "envelope.h"
#include "queue.h"
#include "redis.h"

#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static const sl_opts pause_opts = CLI_OPTS("pause",
    "Usage: sluice pause QUEUE [OPTIONS]\n"
    "\n"
    "Pauses QUEUE: workers take no new jobs from it until 'sluice resume QUEUE'.\n"
    "Jobs already running finish; producers can still enqueue, and their jobs\n"
    "wait in the stream.  Pausing a paused queue is not an error.\n"
    "\n",
    cli_rows_simple);

static const sl_opts resume_opts = CLI_OPTS("resume",
    "Usage: sluice resume QUEUE [OPTIONS]\n"
    "\n"
    "Resumes QUEUE after 'sluice pause': workers take jobs from it again.\n"
    "Resuming a queue that is not paused is not an error.\n"
    "\n",
    cli_rows_simple);

static int set_paused(int argc, char **argv, bool pause)
{
    const char *cmd = pause ? "pause" : "resume";
    const char *config = NULL;
    int parsed = cli_simple_args(pause ? &pause_opts : &resume_opts, argc, argv, &config, NULL, 1,
                                 "QUEUE");
    if (parsed >= 0)
        return parsed;
    const char *queue = argv[optind];
    if (!sl_envelope_queue_valid(queue))
        return cli_usage_error(cmd, "invalid queue name '%s' (use 1-%d of A-Z a-z 0-9 _ . -)",
                               queue, SL_NAME_MAX);
    sl_config *cfg = cli_load_config(cmd, config);
    if (cfg == NULL)
        return CLI_FAILED;
    sl_err err;
    int status = CLI_FAILED;
    redisReply *known = NULL;
    sl_redis *r = sl_redis_connect(cfg->redis_url, 5000, &err);
    const char *ism[] = { "SISMEMBER", SL_QUEUES_KEY, queue };
    if (r == NULL || sl_queue_set_paused(r, queue, pause, &err) < 0 ||
        (known = sl_redis_command(r, 3, ism, NULL, &err)) == NULL) {
        cli_fail(cmd, "%s", err.msg);
        goto out;
    }
    if (pause)
        printf("queue '%s' paused: workers take no new jobs from it ('sluice resume %s' undoes it)\n",
               queue, queue);
    else
        printf("queue '%s' resumed: workers take jobs from it again\n", queue);
    /* Not an error (a queue may be paused before its first job), but
     * worth saying: it may be a typo. */
    if (known->type == REDIS_REPLY_INTEGER && known->integer == 0)
        fprintf(stderr, "sluice %s: note: no job has ever been enqueued to a queue named '%s'\n",
                cmd, queue);
    status = fflush(stdout) == 0 ? CLI_OK : CLI_FAILED;
out:
    if (known)
        freeReplyObject(known);
    sl_redis_free(r);
    sl_config_free(cfg);
    return status;
}

int cmd_pause(int argc, char **argv) { return set_paused(argc, argv, true); }
int cmd_resume(int argc, char **argv) { return set_paused(argc, argv, false); }
