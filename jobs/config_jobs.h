/* config_jobs.h: the operator's configuration of the job kinds — the
 * `deploy`, `import`, `codegen`, `provision` and `notify` sections of
 * etc/sluice.yaml.
 *
 * These sections are where the trust boundary is drawn: every
 * program a job may run, every host it may download from, every directory
 * it may write under and every database it may change is named here, and a
 * job's arguments only choose among these names.  Secrets never appear in
 * the file: a key ending in `_file` names a file that holds the secret (an
 * absolute path, or a name in systemd's $CREDENTIALS_DIRECTORY), a key
 * ending in `_env` the environment variable that does; either is read when
 * the job runs.
 *
 * The job kinds own these sections: a program that runs or checks jobs
 * registers them with the core loader (sl_config_jobs_register, before
 * sl_config_load), which then hands each of them to sl_config_jobs_read;
 * errors read "FILE:LINE:COL: message" (SL_ECONFIG)
 * like every other configuration error.  docs/configuration.md lists every
 * key and docs/jobs.md how each kind uses them.
 *
 * Ownership: the sl_jobs_config of a loaded configuration
 * (sl_config_jobs_of) belongs to its sl_config, which frees it. */
#ifndef SL_CONFIG_JOBS_H
#define SL_CONFIG_JOBS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "err.h"
#include "rate.h"
#include "yamldoc.h"

typedef enum sl_target_type {
    SL_TARGET_COMMAND,   /* run argv with fork + execve */
    SL_TARGET_WEBHOOK,   /* POST the job to url */
} sl_target_type;

typedef struct sl_deploy_target {
    char *name;                /* the key under deploy.targets: what args.target names */
    sl_target_type type;       /* `type: command | webhook` */
    char **argv;               /* command: argv, argv[0] an absolute path; NULL-terminated */
    size_t argc;
    char *cwd;                 /* command: working directory (absolute), default "/" */
    int64_t output_limit;      /* command: bytes of stdout+stderr tail kept, default 16384 */
    char *url;                 /* webhook: http(s) URL */
    char *secret_env;          /* webhook: env var holding the HMAC secret, NULL: unsigned */
    char *secret_file;         /* webhook: file holding it instead (absolute, or a name in
                                  $CREDENTIALS_DIRECTORY); at most one of the two */
    char *health_url;          /* webhook: polled after success until 2xx, NULL: none */
    int64_t request_timeout_ms;/* webhook: one request, default 30s */
    int64_t health_timeout_ms; /* webhook: total health polling, default 2m */
    int64_t health_interval_ms;/* webhook: between polls, default 2s */
    bool protected;            /* `protected: true`: deploys to it need the scheduler's
                                  signature (worker/protect.h) */
    sl_rate rate;              /* `rate: 10/m`: deploys started per period across the
                                  fleet (lib/ratelimit.h); count 0: none */
} sl_deploy_target;

/* An address range of import.allow_addresses: ADDRESS/PREFIX. */
typedef struct sl_cidr {
    int family;                /* AF_INET or AF_INET6 */
    unsigned char addr[16];    /* the network, host bits zero (4 bytes used for AF_INET) */
    int prefix;                /* leading bits that must match: 0-32 or 0-128 */
} sl_cidr;

typedef struct sl_import_table {
    char *name;                /* the key under import.tables: what args.table names */
    char *schema;              /* NULL: the search path's */
    char *table;
    char **columns;            /* NULL: every column, in table order */
    size_t ncolumns;
    bool header;               /* the CSV's first line is a header, default true */
} sl_import_table;

typedef struct sl_provision_endpoint {
    char *name;                /* the key under provision.endpoints: args.endpoint */
    char *url;                 /* http(s) URL that is POSTed to */
    char *secret_env;          /* env var holding a bearer token, NULL: none */
    char *secret_file;         /* file holding it instead (like a deploy target's) */
    int64_t timeout_ms;        /* default 30s */
    sl_rate rate;              /* `rate: 100/m`: jobs started per period across the fleet;
                                  count 0: none */
} sl_provision_endpoint;

typedef enum sl_notify_type {
    SL_NOTIFY_WEBHOOK,         /* POST a JSON body signed with HMAC-SHA256 */
    SL_NOTIFY_SLACK,           /* POST {"text": ...} to a Slack-compatible incoming webhook */
} sl_notify_type;

/* A channel of notify.channels.  The scheduler needs only its name (which
 * pipelines may name); the worker that delivers needs url and, for a
 * webhook, the secret: a configuration without them can still name the
 * channel (a scheduler's), and a delivery through it fails permanently. */
typedef struct sl_notify_channel {
    char *name;                /* the key under notify.channels: what jobs and pipelines name */
    sl_notify_type type;       /* `type: webhook | slack` */
    char *url;                 /* http(s) URL, NULL: not deliverable from this configuration */
    char *secret_env;          /* webhook: env var holding the HMAC secret */
    char *secret_file;         /* webhook: file holding it instead (like a deploy target's) */
    int64_t timeout_ms;        /* one request, default 10s */
} sl_notify_channel;

/* The `notify` section: gate events as jobs of the notify kind. */
typedef struct sl_notify_config {
    sl_notify_channel *channels;
    size_t nchannels;
    char **defaults;           /* notify.default: channels of gates whose pipeline names none */
    size_t ndefaults;
    char *queue;               /* notify.queue, default "notify": where the scheduler enqueues */
    int max_attempts;          /* notify.max_attempts, default 5: attempts of one delivery
                                  (its envelope's max_attempts; the pool retries with backoff) */
    int64_t remind_before_ms;  /* notify.remind_before: the reminder's lead time before a
                                  gate's deadline, 0 (default): no reminders */
    sl_cidr *allow_addresses;  /* otherwise refused addresses a channel may reach (loopback,
                                  private...), like import.allow_addresses; default none */
    size_t nallow_addresses;
} sl_notify_config;

typedef struct sl_jobs_config {
    struct {
        sl_deploy_target *targets;
        size_t ntargets;
        char *run_as_user;         /* commands run as this user (when the pool runs as root), NULL: as the pool */
        char *run_as_group;        /* ... with this group, NULL: the user's primary group */
    } deploy;
    struct {
        char *root;                /* where imported files land (absolute), NULL: import disabled */
        char **schemes;            /* allowed URL schemes: http, https, file; default none */
        size_t nschemes;
        char **hosts;              /* allowed hosts for http(s), exact names or "*.suffix" */
        size_t nhosts;
        sl_cidr *allow_addresses;  /* http(s): otherwise refused addresses allowed (loopback,
                                      private, link-local...); default none */
        size_t nallow_addresses;
        int *allow_ports;          /* http(s): ports that may be connected to, default 80, 443 */
        size_t nallow_ports;
        char *file_root;           /* file: URLs must resolve under this directory */
        int64_t max_bytes;         /* default 104857600 (100 MiB) */
        int64_t connect_timeout_ms;/* default 10s */
        int64_t timeout_ms;        /* default 10m (also bounded by the job's timeout) */
        int max_redirects;         /* default 5 */
        char *database_url_env;    /* env var with the COPY connection URL, NULL: database.url */
        char *database_url_file;   /* file with it instead */
        sl_import_table *tables;
        size_t ntables;
    } import;
    struct {
        char *template_root;       /* templates: one directory each (absolute), NULL: disabled */
        char *output_root;         /* rendered trees go under here (absolute) */
        int64_t max_bytes;         /* total bytes rendered by a job, enforced while rendering,
                                      default 16777216 */
        int max_files;             /* default 1000 */
        int64_t max_steps;         /* render work per job (tags, section passes), default 10000000 */
    } codegen;
    struct {
        char *admin_url_env;       /* env var with the admin libpq URL */
        char *admin_url_file;      /* file with it instead; neither: postgres disabled */
        char **resources;          /* allowed: postgres_schema, postgres_role, postgres_database */
        size_t nresources;
        char *password_dir;        /* generated role passwords are written here (0600 files);
                                      NULL: postgres_role is refused */
        sl_provision_endpoint *endpoints;
        size_t nendpoints;
    } provision;
    sl_notify_config notify;
} sl_jobs_config;

/* Built-in defaults: every kind configured off.  Never NULL. */
sl_jobs_config *sl_config_jobs_new(void);

void sl_config_jobs_free(sl_jobs_config *jc);   /* jc may be NULL */

/* Reads the top-level section `section` (node is its value) into jc,
 * replacing what an earlier read set.  Returns -1 with err on any unknown
 * key or bad value, leaving jc valid (partly updated; the caller discards it). */
int sl_config_jobs_read(sl_jobs_config *jc, sl_ydoc *doc, const char *section,
                        const sl_ynode *node, sl_err *err);

/* Lookups by the name a job argument gives; NULL when not configured. */
const sl_deploy_target *sl_config_deploy_target(const sl_jobs_config *jc, const char *name);
const sl_import_table *sl_config_import_table(const sl_jobs_config *jc, const char *name);
const sl_provision_endpoint *sl_config_provision_endpoint(const sl_jobs_config *jc,
                                                          const char *name);
const sl_notify_channel *sl_config_notify_channel(const sl_notify_config *nc, const char *name);

/* True when a configured list holds s. */
bool sl_config_list_has(char *const *list, size_t n, const char *s);

/* Writes into names (at most max) the environment variables the *_env
 * keys of jc name: the secrets a worker takes out of its environment
 * (lib/secretenv.h).  Returns how many there are (may exceed max). */
size_t sl_config_jobs_secret_envs(const sl_jobs_config *jc, const char **names, size_t max);

/* True when s is a valid environment variable name: [A-Za-z_][A-Za-z0-9_]*. */
bool sl_config_env_name_valid(const char *s);

/* Registers the job kinds' sections with the core loader (lib/config.h);
 * call before sl_config_load.  Idempotent. */
void sl_config_jobs_register(void);

/* The job kinds' configuration of cfg (borrowed from cfg); cfg must have
 * been loaded after sl_config_jobs_register. */
sl_jobs_config *sl_config_jobs_of(const sl_config *cfg);

#endif
