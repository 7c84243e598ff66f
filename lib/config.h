/* config.h: sluice's configuration (etc/sluice.yaml) and its environment
 * overrides.
 *
 * Where the file comes from, first match wins:
 *   1. the path given by the caller (--config),
 *   2. $SLUICE_CONFIG,
 *   3. the installed file if it exists (sl_config_default_path: it follows
 *      the prefix the binary was installed under),
 *   4. none: built-in defaults.
 * A path named by 1 or 2 that cannot be read is an error.
 *
 * Then credentials and the environment override connection settings, the
 * later winning:
 *   redis.url    <- $CREDENTIALS_DIRECTORY/redis_url, $REDIS_URL, $SLUICE_REDIS_URL
 *   database.url <- $CREDENTIALS_DIRECTORY/database_url, $DATABASE_URL, $SLUICE_DATABASE_URL
 *   api.url      <- $SLUICE_API_URL
 * ($CREDENTIALS_DIRECTORY is where systemd's LoadCredential= puts secrets,
 * readable by the service alone and never in its environment.)
 *
 * The file is parsed strictly: an unknown key, a value of the wrong type or
 * out of range is an error reported as "FILE:LINE:COLUMN: message", and
 * nothing is loaded.  Programs report it and exit non-zero before doing
 * anything else.  docs/configuration.md lists every key.
 *
 * Sections: this module reads the core's own sections: redis, database,
 * log and metrics.  metrics stays here because two programs that may not
 * include each other read it: sluice-worker (metrics.enabled: it writes
 * the counters of lib/metrics.h) and `sluice serve` (listen,
 * request_timeout: it exports them).
 * Every other top-level section belongs to the component that uses it,
 * which describes it with an sl_config_section (its names, defaults,
 * reader, environment overrides) and registers it with sl_config_register
 * before the configuration is loaded: the worker pool's worker and queues
 * (worker/config_worker.h), the job kinds' (jobs/config_jobs.h), the
 * scheduler's scheduler, groups and retention (scheduler/config_sched.h),
 * the API's address and server (lib/config_api.h).  A program's main
 * registers what it links; a section it does not read but that another
 * program of the same installation reads from the same file is registered
 * without a reader, so it is accepted and skipped while a misspelt section
 * is still an error.  The core knows no component: only the sections
 * registered with it.
 *
 * Keys: a section's flat mappings are tables of sl_config_key rows (name,
 * type and range, offset of the field in the section's own struct) read by
 * sl_config_read_keys, the one reader every section uses, so that unknown
 * keys, types and ranges give the same messages everywhere.  To add a key:
 * add the field to its section's struct with its default, add a row to the
 * section's table (a value no type describes gets a reader function: a
 * CUSTOM row), document it in etc/sluice.yaml and docs/configuration.md,
 * and test it in the section's tests/test_config*.c. */
#ifndef SL_CONFIG_H
#define SL_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "log.h"
#include "rate.h"
#include "yamldoc.h"

struct sl_config_part;   /* one registered section's data (config.c) */

typedef struct sl_config {
    char *path;           /* file that was loaded, or NULL for built-in defaults */
    char *redis_url;      /* redis.url        default redis://127.0.0.1:6379/0 */
    char *database_url;   /* database.url     default postgresql://127.0.0.1:5432/sluice */
    sl_log_level log_level; /* log.level      default info */
    struct sl_config_part *parts; /* the registered sections' data, in registration order (owned) */
    size_t nparts;
    struct {
        bool enabled;         /* metrics.enabled   default true: workers count jobs (metrics.h) */
        char *listen;         /* metrics.listen    default 127.0.0.1:9464: `sluice serve` address */
        int request_timeout_ms; /* metrics.request_timeout, default 10s: idle connection closed */
        int max_connections;  /* metrics.max_connections, default 64 */
    } metrics;
} sl_config;

/* A top-level section (or several that one component reads together, such
 * as the job kinds' deploy, import, codegen and provision) owned by a
 * component.  Registered descriptions are static and outlive every
 * config. */
typedef struct sl_config_section {
    const char *const *names;  /* its top-level keys, NULL-terminated */
    void *(*create)(void);     /* new data holding the defaults; NULL: a section
                                  another program reads, accepted and skipped here */
    void (*destroy)(void *data); /* frees what create returned (never given NULL) */
    /* Reads section `name` (node is its value) into data; -1 with err
     * ("FILE:LINE:COL: …", SL_ECONFIG) on the first error. */
    int (*read)(void *data, sl_ydoc *doc, const char *name, const sl_ynode *node, sl_err *err);
    void (*env)(void *data);   /* applies environment overrides, or NULL */
} sl_config_section;

/* How the value of one key is read (sl_config_key.type). */
typedef enum sl_config_type {
    SL_CONFIG_STRING,     /* a non-empty string -> char * (owned; replaces the old value) */
    SL_CONFIG_INT,        /* an integer in [min, max] -> int */
    SL_CONFIG_INT64,      /* an integer in [min, max] -> int64_t */
    SL_CONFIG_DURATION,   /* a duration in [min, max] ms -> int */
    SL_CONFIG_DURATION64, /* a duration in [min, max] ms -> int64_t (past 24 days) */
    SL_CONFIG_BOOL,       /* true or false -> bool */
    SL_CONFIG_RATE,       /* "COUNT/s", "/m" or "/h" -> sl_rate (rate.h) */
    SL_CONFIG_CUSTOM,     /* read by the row's own function */
} sl_config_type;

typedef struct sl_config_key sl_config_key;

/* Reads node, the value of row's key (what: its dotted name, for
 * messages), into data, the section's struct.  Returns -1 with err
 * ("FILE:LINE:COL: …") when the value is wrong. */
typedef int (*sl_config_read_fn)(void *data, const sl_config_key *row, sl_ydoc *doc, const char *what,
                                 const sl_ynode *node, sl_err *err);

/* One key of a flat mapping: its name, how its value is read and checked,
 * and where it lands in the section's own struct.  A section is a table of
 * these rows, read by sl_config_read_keys; the rows' order is the order in
 * which an unknown key's message lists the valid ones. */
struct sl_config_key {
    const char *name;
    sl_config_type type;
    size_t off;              /* the field: offsetof(the section's struct, field) */
    int64_t min, max;        /* INT, INT64, DURATION, DURATION64: the range */
    sl_config_read_fn read;  /* CUSTOM: the reader (may use off, count_off, min, max) */
    size_t count_off;        /* CUSTOM lists: the size_t count beside the array, or 0 */
};

/* Rows: a typed key with its range (0, 0 where there is none), and a key
 * read by its own function (with the count of a list, or 0). */
#define SL_CONFIG_KEY(name, type, st, field, min, max) \
    { name, type, offsetof(st, field), min, max, NULL, 0 }
#define SL_CONFIG_KEY_FN(name, st, field, fn) \
    { name, SL_CONFIG_CUSTOM, offsetof(st, field), 0, 0, fn, 0 }
#define SL_CONFIG_KEY_LIST(name, st, field, count, fn) \
    { name, SL_CONFIG_CUSTOM, offsetof(st, field), 0, 0, fn, offsetof(st, count) }

/* The field a row points to in data. */
#define SL_CONFIG_FIELD(data, row, type) ((type *)(void *)((char *)(data) + (row)->off))

/* Reads the mapping node (section: its dotted name, such as "worker" or
 * "api.jwt") into data, one row of rows[0..n) per key.  Returns -1 with err
 * ("FILE:LINE:COL: …", SL_ECONFIG) on the first error: node is not a
 * mapping, a key has no row ("unknown key 'x' in 'section' (expected a, b,
 * …)", at the key), or a value is wrong (at the value).  data keeps what
 * was read before the error; the caller discards it. */
int sl_config_read_keys(const sl_config_key *rows, size_t n, void *data, sl_ydoc *doc,
                        const char *section, const sl_ynode *node, sl_err *err);

/* Registers s for every configuration this process loads from now on.
 * Registering the same s again does nothing; a name already registered by
 * another section aborts (two owners of one key is a programming error).
 * Call from main (or a component's init) before sl_config_load. */
void sl_config_register(const sl_config_section *s);

/* The data of section s in cfg (what s->create returned, then read and
 * overridden), owned by cfg.  Aborts when s was not registered before cfg
 * was loaded: a component reads only sections its program registered. */
void *sl_config_part(const sl_config *cfg, const sl_config_section *s);

/* Loads the configuration as described above.  path may be NULL.  Returns a
 * config the caller frees with sl_config_free, or NULL with err set
 * (code SL_ECONFIG, message "FILE:LINE:COLUMN: …" for errors in the file). */
sl_config *sl_config_load(const char *path, sl_err *err);

/* Writes the installed configuration file's path into buf (n bytes):
 * PREFIX/etc/sluice/sluice.yaml for a binary installed in PREFIX/bin
 * (/etc/sluice/sluice.yaml for PREFIX /usr), so a tree installed with
 * `cmake --install --prefix P` or into a package reads its own file; for a
 * binary elsewhere (a build tree), the sysconfdir chosen at configure time. */
void sl_config_default_path(char *buf, size_t n);

/* Built-in defaults plus environment overrides, no file. Never NULL. */
sl_config *sl_config_defaults(void);

void sl_config_free(sl_config *cfg);

#endif
