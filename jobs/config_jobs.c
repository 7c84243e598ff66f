/* config_jobs.c: see config_jobs.h.
 *
 * Every mapping is a table of rows read by the core's sl_config_read_keys
 * (lib/config.h), so an unknown key is an error at its own position naming
 * the valid ones, and a value is checked by its row: a type with a range,
 * or one of the readers below (absolute paths, environment variable names,
 * secret files, http(s) URLs, lists of checked names).  The named
 * collections (deploy.targets, import.tables, provision.endpoints,
 * notify.channels) are mappings from the name a job argument uses to a
 * mapping of settings, each entry a table of its own (read_named).  What a
 * row cannot say (a key that must be given, two keys that exclude each
 * other) is checked once its mapping has been read.  The sections reach
 * this module through the core loader's registry (sl_config_jobs_register):
 * lib/config.c does not know them. */
#include "config_jobs.h"

#include <arpa/inet.h>
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "mem.h"

#define NAME_MAX_LEN 64

static void free_list(char **list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(list[i]);
    free(list);
}

static void free_target(void *entry)
{
    sl_deploy_target *t = entry;
    free(t->name);
    free_list(t->argv, t->argc);
    free(t->cwd);
    free(t->url);
    free(t->secret_env);
    free(t->secret_file);
    free(t->health_url);
}

static void free_table(void *entry)
{
    sl_import_table *t = entry;
    free(t->name);
    free(t->schema);
    free(t->table);
    free_list(t->columns, t->ncolumns);
}

static void free_endpoint(void *entry)
{
    sl_provision_endpoint *e = entry;
    free(e->name);
    free(e->url);
    free(e->secret_env);
    free(e->secret_file);
}

static void free_channel(void *entry)
{
    sl_notify_channel *c = entry;
    free(c->name);
    free(c->url);
    free(c->secret_env);
    free(c->secret_file);
}

sl_jobs_config *sl_config_jobs_new(void)
{
    sl_jobs_config *jc = sl_xcalloc(1, sizeof *jc);
    jc->notify.queue = sl_xstrdup("notify");
    jc->notify.max_attempts = 5;
    jc->import.max_bytes = 100 * 1024 * 1024;
    jc->import.connect_timeout_ms = 10000;
    jc->import.timeout_ms = 10 * 60000;
    jc->import.max_redirects = 5;
    jc->import.allow_ports = sl_xcalloc(2, sizeof *jc->import.allow_ports);
    jc->import.allow_ports[0] = 80;
    jc->import.allow_ports[1] = 443;
    jc->import.nallow_ports = 2;
    jc->codegen.max_bytes = 16 * 1024 * 1024;
    jc->codegen.max_files = 1000;
    jc->codegen.max_steps = 10000000;
    return jc;
}

/* The top-level sections read here (registered below; sl_config_jobs_read
 * dispatches on them). */
static const char *const section_names[] = { "deploy", "import", "codegen", "provision", "notify", NULL };

bool sl_config_list_has(char *const *list, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(list[i], s) == 0)
            return true;
    }
    return false;
}

bool sl_config_env_name_valid(const char *s)
{
    if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || *s == '_'))
        return false;
    for (s++; *s; s++) {
        if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') ||
              *s == '_'))
            return false;
    }
    return true;
}

static void set_str(char **field, const char *s)
{
    free(*field);
    *field = sl_xstrdup(s);
}

/* ---- values: the readers of the rows below (sl_config_read_fn) ---- */

static int read_abs_path(void *data, const sl_config_key *row, sl_ydoc *doc, const char *what,
                         const sl_ynode *node, sl_err *err)
{
    const char *s;
    if (sl_ydoc_str(doc, node, what, &s, err) < 0)
        return -1;
    if (s[0] != '/')
        return sl_ydoc_errorf(doc, node, err, "'%s' must be an absolute path, got '%.200s'", what, s);
    set_str(SL_CONFIG_FIELD(data, row, char *), s);
    return 0;
}

static int read_env_name(void *data, const sl_config_key *row, sl_ydoc *doc, const char *what,
                         const sl_ynode *node, sl_err *err)
{
    const char *s;
    if (sl_ydoc_str(doc, node, what, &s, err) < 0)
        return -1;
    if (!sl_config_env_name_valid(s))
        return sl_ydoc_errorf(doc, node, err, "'%s' must name an environment variable "
                              "([A-Za-z_][A-Za-z0-9_]*), got '%.80s'", what, s);
    set_str(SL_CONFIG_FIELD(data, row, char *), s);
    return 0;
}

/* A secret's file: an absolute path, or a plain name looked up in
 * $CREDENTIALS_DIRECTORY when the job runs (systemd LoadCredential=). */
static int read_secret_file(void *data, const sl_config_key *row, sl_ydoc *doc, const char *what,
                            const sl_ynode *node, sl_err *err)
{
    const char *s;
    if (sl_ydoc_str(doc, node, what, &s, err) < 0)
        return -1;
    size_t n = strlen(s);
    bool plain = n > 0 && n <= 255 && s[0] != '.' &&
                 strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") == n;
    if (s[0] != '/' && !plain)
        return sl_ydoc_errorf(doc, node, err, "'%s' must be an absolute path or the name of a credential "
                              "in $CREDENTIALS_DIRECTORY, got '%.200s'", what, s);
    set_str(SL_CONFIG_FIELD(data, row, char *), s);
    return 0;
}

static int read_http_url(void *data, const sl_config_key *row, sl_ydoc *doc, const char *what,
                         const sl_ynode *node, sl_err *err)
{
    const char *s;
    if (sl_ydoc_str(doc, node, what, &s, err) < 0)
        return -1;
    if (strncmp(s, "http://", 7) != 0 && strncmp(s, "https://", 8) != 0)
        return sl_ydoc_errorf(doc, node, err, "'%s' must be an http:// or https:// URL, got '%.200s'",
                              what, s);
    set_str(SL_CONFIG_FIELD(data, row, char *), s);
    return 0;
}

/* A secret given both ways is ambiguous. */
static int check_one_secret(sl_ydoc *doc, const sl_ynode *at, const char *what, const char *env,
                            const char *file, sl_err *err)
{
    if (env && file)
        return sl_ydoc_errorf(doc, at, err, "'%s': give %s_env or %s_file, not both", what, what, what);
    return 0;
}

/* A list of strings; each item is checked by valid (may be NULL) whose
 * failure is described by expect.  Replaces *out (nout strings). */
static int read_list(sl_ydoc *doc, const sl_ynode *node, const char *what, bool (*valid)(const char *),
                     const char *expect, char ***out, size_t *nout, sl_err *err)
{
    sl_yseq seq;
    if (sl_ydoc_seq(doc, node, what, &seq, err) < 0)
        return -1;
    char **list = sl_xcalloc(seq.n + 1, sizeof *list);
    size_t n;
    for (n = 0; n < seq.n; n++) {
        char item[192];
        const char *s;
        snprintf(item, sizeof item, "%s[%zu]", what, n);
        if (sl_ydoc_str(doc, seq.items[n], item, &s, err) < 0)
            goto fail;
        if (valid && !valid(s)) {
            sl_ydoc_errorf(doc, seq.items[n], err, "'%s' must be %s, got '%.80s'", item, expect, s);
            goto fail;
        }
        list[n] = sl_xstrdup(s);
    }
    free_list(*out, *nout);
    *out = list;
    *nout = n;
    return 0;
fail:
    free_list(list, n);
    return -1;
}

/* The count beside a list row's array. */
static size_t *row_count(void *data, const sl_config_key *row)
{
    return (size_t *)(void *)((char *)data + row->count_off);
}

/* read_list into the row's array and count. */
static int read_list_row(void *data, const sl_config_key *row, sl_ydoc *doc, const char *what,
                         const sl_ynode *node, bool (*valid)(const char *), const char *expect, sl_err *err)
{
    return read_list(doc, node, what, valid, expect, SL_CONFIG_FIELD(data, row, char **),
                     row_count(data, row), err);
}

/* Names under targets/tables/endpoints/channels: what a job argument may say. */
static bool entry_name_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > NAME_MAX_LEN)
        return false;
    return strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") == n;
}

/* True when the mapping node (already read) has key name: for keys that
 * must be given, such as a target's type. */
static bool has_key(sl_ydoc *doc, const sl_ynode *node, const char *name)
{
    sl_ymap map;
    sl_err ignored;
    if (sl_ydoc_map(doc, node, NULL, &map, &ignored) < 0)
        return false;
    for (size_t i = 0; i < map.n; i++) {
        if (strcmp(map.pairs[i].name, name) == 0)
            return true;
    }
    return false;
}

/* ---- named collections: deploy.targets, import.tables, provision.endpoints,
 * notify.channels — mappings from the name a job argument uses to a mapping
 * of settings, read into an array of entries whose first member is the
 * name. ---- */

_Static_assert(offsetof(sl_deploy_target, name) == 0, "name first");
_Static_assert(offsetof(sl_import_table, name) == 0, "name first");
_Static_assert(offsetof(sl_provision_endpoint, name) == 0, "name first");
_Static_assert(offsetof(sl_notify_channel, name) == 0, "name first");

/* Reads one entry's settings (pair->value; pair->key for messages about
 * the whole entry) into entry, whose name is already set. */
typedef int (*entry_reader)(sl_ydoc *doc, const sl_ypair *pair, void *entry, sl_err *err);

typedef struct named_kind {
    const char *label;       /* "deploy target": in messages */
    size_t elem;             /* bytes of one entry */
    entry_reader read_one;
    void (*free_one)(void *entry);
} named_kind;

/* The array of a collection's row (its field has the entries' own pointer
 * type: read and written as bytes). */
static char *named_array(void *data, const sl_config_key *row)
{
    char *arr;
    memcpy(&arr, SL_CONFIG_FIELD(data, row, char), sizeof arr);
    return arr;
}

static void set_named_array(void *data, const sl_config_key *row, char *arr)
{
    memcpy(SL_CONFIG_FIELD(data, row, char), &arr, sizeof arr);
}

/* Frees the array at row (and its entries) and empties it. */
static void clear_named(void *data, const sl_config_key *row, const named_kind *k)
{
    char *arr = named_array(data, row);
    size_t *n = row_count(data, row);
    for (size_t i = 0; i < *n; i++)
        k->free_one(arr + i * k->elem);
    free(arr);
    set_named_array(data, row, NULL);
    *n = 0;
}

/* Replaces the array at row with the entries of the mapping node.  On
 * error the array holds the entries read so far, for the config's free. */
static int read_named(void *data, const sl_config_key *row, sl_ydoc *doc, const char *what,
                      const sl_ynode *node, const named_kind *k, sl_err *err)
{
    sl_ymap map;
    if (sl_ydoc_map(doc, node, what, &map, err) < 0)
        return -1;
    clear_named(data, row, k);
    char *base = sl_xcalloc(map.n + 1, k->elem);
    size_t *n = row_count(data, row);
    set_named_array(data, row, base);
    for (size_t j = 0; j < map.n; j++) {
        char *entry = base + j * k->elem;
        char **name = (char **)(void *)entry;
        *name = sl_xstrdup(map.pairs[j].name);
        (*n)++;
        if (!entry_name_valid(*name))
            return sl_ydoc_errorf(doc, map.pairs[j].key, err, "%s name '%.80s' must be 1-%d of "
                                  "A-Z a-z 0-9 _ . -", k->label, *name, NAME_MAX_LEN);
        if (k->read_one(doc, &map.pairs[j], entry, err) < 0)
            return -1;
    }
    return 0;
}

/* Reads the settings of an entry called pair->name of collection (such as
 * "deploy.targets") by rows; what receives its dotted name. */
static int read_entry(const sl_config_key *rows, size_t n, void *entry, sl_ydoc *doc, const sl_ypair *pair,
                      const char *collection, char *what, size_t whatsz, sl_err *err)
{
    snprintf(what, whatsz, "%s.%s", collection, pair->name);
    return sl_config_read_keys(rows, n, entry, doc, what, pair->value, err);
}

/* The secret of an entry: `secret_env` or `secret_file`, not both. */
static int check_entry_secret(sl_ydoc *doc, const sl_ypair *pair, const char *what, const char *env,
                              const char *file, sl_err *err)
{
    char sw[192];
    snprintf(sw, sizeof sw, "%s.secret", what);
    return check_one_secret(doc, pair->key, sw, env, file, err);
}

#define ROWS(t) t, sizeof t / sizeof t[0]

/* The row of key name (one that exists). */
static const sl_config_key *row_of(const sl_config_key *rows, size_t n, const char *name)
{
    size_t i = 0;
    while (i + 1 < n && strcmp(rows[i].name, name) != 0)
        i++;
    assert(strcmp(rows[i].name, name) == 0);
    return &rows[i];
}

/* ---- deploy ---- */

static int read_target_type(void *data, const sl_config_key *row, sl_ydoc *doc, const char *what,
                            const sl_ynode *node, sl_err *err)
{
    const char *s;
    if (sl_ydoc_str(doc, node, what, &s, err) < 0)
        return -1;
    if (strcmp(s, "command") == 0)
        *SL_CONFIG_FIELD(data, row, sl_target_type) = SL_TARGET_COMMAND;
    else if (strcmp(s, "webhook") == 0)
        *SL_CONFIG_FIELD(data, row, sl_target_type) = SL_TARGET_WEBHOOK;
    else
        return sl_ydoc_errorf(doc, node, err, "'%s' must be command or webhook, got '%.40s'", what, s);
    return 0;
}

static int read_command(void *data, const sl_config_key *row, sl_ydoc *doc, const char *what,
                        const sl_ynode *node, sl_err *err)
{
    sl_deploy_target *t = data;
    if (read_list_row(data, row, doc, what, node, NULL, NULL, err) < 0)
        return -1;
    if (t->argc == 0)
        return sl_ydoc_errorf(doc, node, err, "'%s' must list the program and its arguments", what);
    if (t->argv[0][0] != '/')
        return sl_ydoc_errorf(doc, node, err, "'%s': the program must be an absolute path "
                              "(no PATH search), got '%.200s'", what, t->argv[0]);
    return 0;
}

static const sl_config_key target_keys[] = {
    SL_CONFIG_KEY_FN("type", sl_deploy_target, type, read_target_type),
    SL_CONFIG_KEY_LIST("command", sl_deploy_target, argv, argc, read_command),
    SL_CONFIG_KEY_FN("cwd", sl_deploy_target, cwd, read_abs_path),
    SL_CONFIG_KEY("output_limit", SL_CONFIG_INT64, sl_deploy_target, output_limit, 256, 16 * 1024 * 1024),
    SL_CONFIG_KEY_FN("url", sl_deploy_target, url, read_http_url),
    SL_CONFIG_KEY_FN("secret_env", sl_deploy_target, secret_env, read_env_name),
    SL_CONFIG_KEY_FN("secret_file", sl_deploy_target, secret_file, read_secret_file),
    SL_CONFIG_KEY_FN("health_url", sl_deploy_target, health_url, read_http_url),
    SL_CONFIG_KEY("timeout", SL_CONFIG_DURATION64, sl_deploy_target, request_timeout_ms, 1, 86400000),
    SL_CONFIG_KEY("health_timeout", SL_CONFIG_DURATION64, sl_deploy_target, health_timeout_ms, 1, 86400000),
    SL_CONFIG_KEY("health_interval", SL_CONFIG_DURATION64, sl_deploy_target, health_interval_ms, 1, 3600000),
    SL_CONFIG_KEY("protected", SL_CONFIG_BOOL, sl_deploy_target, protected, 0, 0),
    SL_CONFIG_KEY("rate", SL_CONFIG_RATE, sl_deploy_target, rate, 0, 0),
};

/* A key of the other type is a mistake worth pointing at, not ignoring. */
static int check_target_keys(sl_ydoc *doc, const sl_ypair *pair, const sl_deploy_target *t, const char *what,
                             sl_err *err)
{
    static const char *const command_only[] = { "command", "cwd", "output_limit", NULL };
    sl_ymap map;
    if (sl_ydoc_map(doc, pair->value, what, &map, err) < 0)
        return -1;
    for (size_t i = 0; i < map.n; i++) {
        const char *k = map.pairs[i].name;
        if (strcmp(k, "protected") == 0 || strcmp(k, "type") == 0 || strcmp(k, "rate") == 0)
            continue;   /* apply to both types */
        bool for_command = false;
        for (size_t j = 0; command_only[j]; j++)
            for_command |= strcmp(k, command_only[j]) == 0;
        if (for_command != (t->type == SL_TARGET_COMMAND))
            return sl_ydoc_errorf(doc, map.pairs[i].key, err, "'%s' is a %s target: '%s' applies to %s "
                                  "targets only", what, t->type == SL_TARGET_COMMAND ? "command" : "webhook",
                                  k, for_command ? "command" : "webhook");
    }
    return 0;
}

static int read_target(sl_ydoc *doc, const sl_ypair *pair, void *entry, sl_err *err)
{
    sl_deploy_target *t = entry;
    char what[160];
    t->output_limit = 16384;
    t->request_timeout_ms = 30000;
    t->health_timeout_ms = 120000;
    t->health_interval_ms = 2000;
    if (read_entry(ROWS(target_keys), t, doc, pair, "deploy.targets", what, sizeof what, err) < 0)
        return -1;
    if (!has_key(doc, pair->value, "type"))
        return sl_ydoc_errorf(doc, pair->key, err, "'%s' needs 'type: command' or 'type: webhook'", what);
    if (check_entry_secret(doc, pair, what, t->secret_env, t->secret_file, err) < 0 ||
        check_target_keys(doc, pair, t, what, err) < 0)
        return -1;
    if (t->type == SL_TARGET_COMMAND && t->argv == NULL)
        return sl_ydoc_errorf(doc, pair->key, err, "'%s' is a command target without 'command'", what);
    if (t->type == SL_TARGET_WEBHOOK && t->url == NULL)
        return sl_ydoc_errorf(doc, pair->key, err, "'%s' is a webhook target without 'url'", what);
    if (t->cwd == NULL)
        t->cwd = sl_xstrdup("/");
    return 0;
}

static const named_kind targets_kind = { "deploy target", sizeof(sl_deploy_target), read_target, free_target };

static int read_targets(void *data, const sl_config_key *row, sl_ydoc *doc, const char *what,
                        const sl_ynode *node, sl_err *err)
{
    return read_named(data, row, doc, what, node, &targets_kind, err);
}

static bool account_name_valid(const char *s)
{
    size_t n = strlen(s);
    return n > 0 && n <= 32 && s[0] != '-' &&
           strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") == n;
}

/* deploy.run_as: "USER" or "USER:GROUP", names (resolved when a job runs). */
static int read_run_as(void *data, const sl_config_key *row, sl_ydoc *doc, const char *what,
                       const sl_ynode *v, sl_err *err)
{
    sl_jobs_config *jc = data;
    const char *s;
    (void)row;
    if (sl_ydoc_str(doc, v, what, &s, err) < 0)
        return -1;
    const char *colon = strchr(s, ':');
    char *user = colon ? sl_xstrndup(s, (size_t)(colon - s)) : sl_xstrdup(s);
    char *group = colon ? sl_xstrdup(colon + 1) : NULL;
    if (!account_name_valid(user) || (group && !account_name_valid(group)) ||
        strcmp(user, "root") == 0 || (group && strcmp(group, "root") == 0)) {
        free(user), free(group);
        return sl_ydoc_errorf(doc, v, err, "'deploy.run_as' must be USER or USER:GROUP, names of an "
                              "unprivileged account (not root), got '%.80s'", s);
    }
    free(jc->deploy.run_as_user);
    free(jc->deploy.run_as_group);
    jc->deploy.run_as_user = user;
    jc->deploy.run_as_group = group;
    return 0;
}

static const sl_config_key deploy_keys[] = {
    SL_CONFIG_KEY_LIST("targets", sl_jobs_config, deploy.targets, deploy.ntargets, read_targets),
    SL_CONFIG_KEY_FN("run_as", sl_jobs_config, deploy.run_as_user, read_run_as),
};

/* ---- import ---- */

static bool scheme_valid(const char *s)
{
    return strcmp(s, "http") == 0 || strcmp(s, "https") == 0 || strcmp(s, "file") == 0;
}

static bool host_valid(const char *s)
{
    const char *p = strncmp(s, "*.", 2) == 0 ? s + 2 : s;
    size_t n = strlen(p);
    return n > 0 && n < 254 && strspn(p, "abcdefghijklmnopqrstuvwxyz0123456789.-:[]") == n;
}

/* SQL identifiers in the configuration: the same strict pattern as the
 * provision kind's (a letter or _, then letters, digits, _; at most 63). */
static bool ident_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 63 || !((*s >= 'a' && *s <= 'z') || *s == '_'))
        return false;
    return strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789_") == n;
}

static int read_schemes(void *data, const sl_config_key *row, sl_ydoc *doc, const char *what,
                        const sl_ynode *node, sl_err *err)
{
    return read_list_row(data, row, doc, what, node, scheme_valid, "http, https or file", err);
}

static int read_hosts(void *data, const sl_config_key *row, sl_ydoc *doc, const char *what,
                      const sl_ynode *node, sl_err *err)
{
    return read_list_row(data, row, doc, what, node, host_valid, "a lower-case host name or *.domain", err);
}

static int read_columns(void *data, const sl_config_key *row, sl_ydoc *doc, const char *what,
                        const sl_ynode *node, sl_err *err)
{
    return read_list_row(data, row, doc, what, node, ident_valid, "a lower-case identifier", err);
}

/* import.tables.NAME.table: TABLE or SCHEMA.TABLE. */
static int read_table_name(void *data, const sl_config_key *row, sl_ydoc *doc, const char *what,
                           const sl_ynode *v, sl_err *err)
{
    sl_import_table *t = data;
    const char *s;
    (void)row;
    if (sl_ydoc_str(doc, v, what, &s, err) < 0)
        return -1;
    const char *dot = strchr(s, '.');
    char *schema = dot ? sl_xstrndup(s, (size_t)(dot - s)) : NULL;
    const char *table = dot ? dot + 1 : s;
    if (!ident_valid(table) || (schema != NULL && !ident_valid(schema))) {
        free(schema);
        return sl_ydoc_errorf(doc, v, err, "'%s' must be TABLE or SCHEMA.TABLE, each a lower-case "
                              "identifier ([a-z_][a-z0-9_]*, at most 63), got '%.80s'", what, s);
    }
    free(t->schema);
    t->schema = schema;
    set_str(&t->table, table);
    return 0;
}

static const sl_config_key table_keys[] = {
    SL_CONFIG_KEY_FN("table", sl_import_table, table, read_table_name),
    SL_CONFIG_KEY_LIST("columns", sl_import_table, columns, ncolumns, read_columns),
    SL_CONFIG_KEY("header", SL_CONFIG_BOOL, sl_import_table, header, 0, 0),
};

static int read_table(sl_ydoc *doc, const sl_ypair *pair, void *entry, sl_err *err)
{
    sl_import_table *t = entry;
    char what[160];
    t->header = true;
    if (read_entry(ROWS(table_keys), t, doc, pair, "import.tables", what, sizeof what, err) < 0)
        return -1;
    if (t->table == NULL)
        return sl_ydoc_errorf(doc, pair->key, err, "'%s' needs 'table'", what);
    return 0;
}

static const named_kind tables_kind = { "import table", sizeof(sl_import_table), read_table, free_table };

static int read_tables(void *data, const sl_config_key *row, sl_ydoc *doc, const char *what,
                       const sl_ynode *node, sl_err *err)
{
    return read_named(data, row, doc, what, node, &tables_kind, err);
}

/* Parses "ADDRESS/PREFIX" or a bare address (a single host). */
static bool cidr_parse(const char *s, sl_cidr *out)
{
    char addr[64];
    const char *slash = strchr(s, '/');
    size_t n = slash ? (size_t)(slash - s) : strlen(s);
    if (n == 0 || n >= sizeof addr)
        return false;
    memcpy(addr, s, n);
    addr[n] = '\0';
    memset(out, 0, sizeof *out);
    if (inet_pton(AF_INET, addr, out->addr) == 1)
        out->family = AF_INET;
    else if (inet_pton(AF_INET6, addr, out->addr) == 1)
        out->family = AF_INET6;
    else
        return false;
    int max = out->family == AF_INET ? 32 : 128;
    out->prefix = max;
    if (slash) {
        char *end;
        long p = strtol(slash + 1, &end, 10);
        if (slash[1] < '0' || slash[1] > '9' || *end != '\0' || p < 0 || p > max)
            return false;
        out->prefix = (int)p;
    }
    for (int bit = out->prefix; bit < max; bit++)   /* the network: host bits cleared */
        out->addr[bit / 8] &= (unsigned char)~(0x80u >> (bit % 8));
    return true;
}

static bool cidr_valid(const char *s)
{
    sl_cidr c;
    return cidr_parse(s, &c);
}

/* A list of address ranges into the row's sl_cidr array and count. */
static int read_cidrs(void *data, const sl_config_key *row, sl_ydoc *doc, const char *what,
                      const sl_ynode *node, sl_err *err)
{
    char **list = NULL;
    size_t n = 0;
    if (read_list(doc, node, what, cidr_valid, "an address or ADDRESS/PREFIX (127.0.0.1/32, fd00::/8)",
                  &list, &n, err) < 0)
        return -1;
    sl_cidr *c = sl_xcalloc(n + 1, sizeof *c);
    for (size_t i = 0; i < n; i++)
        (void)cidr_parse(list[i], &c[i]);
    free_list(list, n);
    sl_cidr **out = SL_CONFIG_FIELD(data, row, sl_cidr *);
    free(*out);
    *out = c;
    *row_count(data, row) = n;
    return 0;
}

/* A list of TCP ports into the row's int array and count. */
static int read_ports(void *data, const sl_config_key *row, sl_ydoc *doc, const char *what,
                      const sl_ynode *node, sl_err *err)
{
    sl_yseq seq;
    if (sl_ydoc_seq(doc, node, what, &seq, err) < 0)
        return -1;
    int *ports = sl_xcalloc(seq.n + 1, sizeof *ports);
    for (size_t i = 0; i < seq.n; i++) {
        char item[96];
        int64_t p;
        snprintf(item, sizeof item, "%s[%zu]", what, i);
        if (sl_ydoc_int(doc, seq.items[i], item, 1, 65535, &p, err) < 0) {
            free(ports);
            return -1;
        }
        ports[i] = (int)p;
    }
    int **out = SL_CONFIG_FIELD(data, row, int *);
    free(*out);
    *out = ports;
    *row_count(data, row) = seq.n;
    return 0;
}

static const sl_config_key import_keys[] = {
    SL_CONFIG_KEY_FN("root", sl_jobs_config, import.root, read_abs_path),
    SL_CONFIG_KEY_LIST("schemes", sl_jobs_config, import.schemes, import.nschemes, read_schemes),
    SL_CONFIG_KEY_LIST("hosts", sl_jobs_config, import.hosts, import.nhosts, read_hosts),
    SL_CONFIG_KEY_FN("file_root", sl_jobs_config, import.file_root, read_abs_path),
    SL_CONFIG_KEY("max_bytes", SL_CONFIG_INT64, sl_jobs_config, import.max_bytes, 1, INT64_C(1) << 40),
    SL_CONFIG_KEY("connect_timeout", SL_CONFIG_DURATION64, sl_jobs_config, import.connect_timeout_ms, 1, 3600000),
    SL_CONFIG_KEY("timeout", SL_CONFIG_DURATION64, sl_jobs_config, import.timeout_ms, 1, 7 * 86400000LL),
    SL_CONFIG_KEY("max_redirects", SL_CONFIG_INT, sl_jobs_config, import.max_redirects, 0, 50),
    SL_CONFIG_KEY_FN("database_url_env", sl_jobs_config, import.database_url_env, read_env_name),
    SL_CONFIG_KEY_FN("database_url_file", sl_jobs_config, import.database_url_file, read_secret_file),
    SL_CONFIG_KEY_LIST("tables", sl_jobs_config, import.tables, import.ntables, read_tables),
    SL_CONFIG_KEY_LIST("allow_addresses", sl_jobs_config, import.allow_addresses, import.nallow_addresses,
                       read_cidrs),
    SL_CONFIG_KEY_LIST("allow_ports", sl_jobs_config, import.allow_ports, import.nallow_ports, read_ports),
};

static int check_import(sl_jobs_config *jc, sl_ydoc *doc, sl_err *err)
{
    if (check_one_secret(doc, NULL, "import.database_url", jc->import.database_url_env,
                         jc->import.database_url_file, err) < 0)
        return -1;
    if (sl_config_list_has(jc->import.schemes, jc->import.nschemes, "file") && jc->import.file_root == NULL)
        return sl_ydoc_errorf(doc, NULL, err, "import.schemes allows 'file' but import.file_root is not set");
    return 0;
}

/* ---- codegen ---- */

static const sl_config_key codegen_keys[] = {
    SL_CONFIG_KEY_FN("template_root", sl_jobs_config, codegen.template_root, read_abs_path),
    SL_CONFIG_KEY_FN("output_root", sl_jobs_config, codegen.output_root, read_abs_path),
    SL_CONFIG_KEY("max_bytes", SL_CONFIG_INT64, sl_jobs_config, codegen.max_bytes, 1, INT64_C(1) << 34),
    SL_CONFIG_KEY("max_files", SL_CONFIG_INT, sl_jobs_config, codegen.max_files, 1, 1000000),
    SL_CONFIG_KEY("max_steps", SL_CONFIG_INT64, sl_jobs_config, codegen.max_steps, 1000, INT64_C(1) << 40),
};

static int check_codegen(sl_jobs_config *jc, sl_ydoc *doc, sl_err *err)
{
    if ((jc->codegen.template_root == NULL) != (jc->codegen.output_root == NULL))
        return sl_ydoc_errorf(doc, NULL, err, "codegen needs both template_root and output_root");
    return 0;
}

/* ---- provision ---- */

static bool resource_valid(const char *s)
{
    return strcmp(s, "postgres_schema") == 0 || strcmp(s, "postgres_role") == 0 ||
           strcmp(s, "postgres_database") == 0;
}

static int read_resources(void *data, const sl_config_key *row, sl_ydoc *doc, const char *what,
                          const sl_ynode *node, sl_err *err)
{
    return read_list_row(data, row, doc, what, node, resource_valid,
                         "postgres_schema, postgres_role or postgres_database", err);
}

static const sl_config_key endpoint_keys[] = {
    SL_CONFIG_KEY_FN("url", sl_provision_endpoint, url, read_http_url),
    SL_CONFIG_KEY_FN("secret_env", sl_provision_endpoint, secret_env, read_env_name),
    SL_CONFIG_KEY_FN("secret_file", sl_provision_endpoint, secret_file, read_secret_file),
    SL_CONFIG_KEY("timeout", SL_CONFIG_DURATION64, sl_provision_endpoint, timeout_ms, 1, 3600000),
    SL_CONFIG_KEY("rate", SL_CONFIG_RATE, sl_provision_endpoint, rate, 0, 0),
};

static int read_endpoint(sl_ydoc *doc, const sl_ypair *pair, void *entry, sl_err *err)
{
    sl_provision_endpoint *e = entry;
    char what[160];
    e->timeout_ms = 30000;
    if (read_entry(ROWS(endpoint_keys), e, doc, pair, "provision.endpoints", what, sizeof what, err) < 0)
        return -1;
    if (e->url == NULL)
        return sl_ydoc_errorf(doc, pair->key, err, "'%s' needs 'url'", what);
    return check_entry_secret(doc, pair, what, e->secret_env, e->secret_file, err);
}

static const named_kind endpoints_kind = { "endpoint", sizeof(sl_provision_endpoint), read_endpoint,
                                           free_endpoint };

static int read_endpoints(void *data, const sl_config_key *row, sl_ydoc *doc, const char *what,
                          const sl_ynode *node, sl_err *err)
{
    return read_named(data, row, doc, what, node, &endpoints_kind, err);
}

static const sl_config_key provision_keys[] = {
    SL_CONFIG_KEY_FN("admin_url_env", sl_jobs_config, provision.admin_url_env, read_env_name),
    SL_CONFIG_KEY_FN("admin_url_file", sl_jobs_config, provision.admin_url_file, read_secret_file),
    SL_CONFIG_KEY_LIST("resources", sl_jobs_config, provision.resources, provision.nresources, read_resources),
    SL_CONFIG_KEY_FN("password_dir", sl_jobs_config, provision.password_dir, read_abs_path),
    SL_CONFIG_KEY_LIST("endpoints", sl_jobs_config, provision.endpoints, provision.nendpoints, read_endpoints),
};

static int check_provision(sl_jobs_config *jc, sl_ydoc *doc, sl_err *err)
{
    return check_one_secret(doc, NULL, "provision.admin_url", jc->provision.admin_url_env,
                            jc->provision.admin_url_file, err);
}

/* ---- notify ---- */

static int read_channel_type(void *data, const sl_config_key *row, sl_ydoc *doc, const char *what,
                             const sl_ynode *node, sl_err *err)
{
    const char *s;
    if (sl_ydoc_str(doc, node, what, &s, err) < 0)
        return -1;
    if (strcmp(s, "webhook") == 0)
        *SL_CONFIG_FIELD(data, row, sl_notify_type) = SL_NOTIFY_WEBHOOK;
    else if (strcmp(s, "slack") == 0)
        *SL_CONFIG_FIELD(data, row, sl_notify_type) = SL_NOTIFY_SLACK;
    else
        return sl_ydoc_errorf(doc, node, err, "'%s' must be webhook or slack, got '%.40s'", what, s);
    return 0;
}

static const sl_config_key channel_keys[] = {
    SL_CONFIG_KEY_FN("type", sl_notify_channel, type, read_channel_type),
    SL_CONFIG_KEY_FN("url", sl_notify_channel, url, read_http_url),
    SL_CONFIG_KEY_FN("secret_env", sl_notify_channel, secret_env, read_env_name),
    SL_CONFIG_KEY_FN("secret_file", sl_notify_channel, secret_file, read_secret_file),
    SL_CONFIG_KEY("timeout", SL_CONFIG_DURATION64, sl_notify_channel, timeout_ms, 1, 600000),
};

static int read_channel(sl_ydoc *doc, const sl_ypair *pair, void *entry, sl_err *err)
{
    sl_notify_channel *c = entry;
    char what[160];
    c->timeout_ms = 10000;
    if (read_entry(ROWS(channel_keys), c, doc, pair, "notify.channels", what, sizeof what, err) < 0)
        return -1;
    if (!has_key(doc, pair->value, "type"))
        return sl_ydoc_errorf(doc, pair->key, err, "'%s' needs 'type: webhook' or 'type: slack'", what);
    if (check_entry_secret(doc, pair, what, c->secret_env, c->secret_file, err) < 0)
        return -1;
    if (c->type == SL_NOTIFY_SLACK && (c->secret_env || c->secret_file))
        return sl_ydoc_errorf(doc, pair->key, err, "'%s' is a slack channel: it takes no secret (the "
                              "incoming webhook's URL is the credential)", what);
    return 0;
}

static const named_kind channels_kind = { "channel", sizeof(sl_notify_channel), read_channel, free_channel };

static int read_channels(void *data, const sl_config_key *row, sl_ydoc *doc, const char *what,
                         const sl_ynode *node, sl_err *err)
{
    return read_named(data, row, doc, what, node, &channels_kind, err);
}

static int read_channel_names(void *data, const sl_config_key *row, sl_ydoc *doc, const char *what,
                              const sl_ynode *node, sl_err *err)
{
    return read_list_row(data, row, doc, what, node, entry_name_valid, "a channel name", err);
}

static int read_queue_name(void *data, const sl_config_key *row, sl_ydoc *doc, const char *what,
                           const sl_ynode *node, sl_err *err)
{
    const char *s;
    if (sl_ydoc_str(doc, node, what, &s, err) < 0)
        return -1;
    if (!entry_name_valid(s))
        return sl_ydoc_errorf(doc, node, err, "'%s' must be a queue name (1-64 of A-Z a-z 0-9 _ . -), "
                              "got '%.80s'", what, s);
    set_str(SL_CONFIG_FIELD(data, row, char *), s);
    return 0;
}

static const sl_config_key notify_keys[] = {
    SL_CONFIG_KEY_LIST("channels", sl_jobs_config, notify.channels, notify.nchannels, read_channels),
    SL_CONFIG_KEY_LIST("default", sl_jobs_config, notify.defaults, notify.ndefaults, read_channel_names),
    SL_CONFIG_KEY_FN("queue", sl_jobs_config, notify.queue, read_queue_name),
    SL_CONFIG_KEY("remind_before", SL_CONFIG_DURATION64, sl_jobs_config, notify.remind_before_ms,
                  0, 7 * 86400000LL),
    SL_CONFIG_KEY("max_attempts", SL_CONFIG_INT, sl_jobs_config, notify.max_attempts, 1, 1000),
    SL_CONFIG_KEY_LIST("allow_addresses", sl_jobs_config, notify.allow_addresses, notify.nallow_addresses,
                       read_cidrs),
};

/* Every default channel is one of the channels. */
static int check_notify(sl_jobs_config *jc, sl_ydoc *doc, const sl_ynode *node, sl_err *err)
{
    for (size_t i = 0; i < jc->notify.ndefaults; i++) {
        if (sl_config_notify_channel(&jc->notify, jc->notify.defaults[i]) == NULL) {
            sl_ymap map;
            const sl_ynode *at = node;
            if (sl_ydoc_map(doc, node, "notify", &map, err) < 0)
                return -1;
            for (size_t j = 0; j < map.n; j++) {
                if (strcmp(map.pairs[j].name, "default") == 0)
                    at = map.pairs[j].value;
            }
            return sl_ydoc_errorf(doc, at, err, "notify.default: no channel '%.80s' under "
                                  "notify.channels", jc->notify.defaults[i]);
        }
    }
    return 0;
}

void sl_config_jobs_free(sl_jobs_config *jc)
{
    if (jc == NULL)
        return;
    clear_named(jc, row_of(ROWS(deploy_keys), "targets"), &targets_kind);
    free(jc->deploy.run_as_user);
    free(jc->deploy.run_as_group);
    free(jc->import.root);
    free_list(jc->import.schemes, jc->import.nschemes);
    free_list(jc->import.hosts, jc->import.nhosts);
    free(jc->import.file_root);
    free(jc->import.allow_addresses);
    free(jc->import.allow_ports);
    free(jc->import.database_url_env);
    free(jc->import.database_url_file);
    clear_named(jc, row_of(ROWS(import_keys), "tables"), &tables_kind);
    free(jc->codegen.template_root);
    free(jc->codegen.output_root);
    free(jc->provision.admin_url_env);
    free(jc->provision.admin_url_file);
    free_list(jc->provision.resources, jc->provision.nresources);
    free(jc->provision.password_dir);
    clear_named(jc, row_of(ROWS(provision_keys), "endpoints"), &endpoints_kind);
    clear_named(jc, row_of(ROWS(notify_keys), "channels"), &channels_kind);
    free_list(jc->notify.defaults, jc->notify.ndefaults);
    free(jc->notify.queue);
    free(jc->notify.allow_addresses);
    free(jc);
}


size_t sl_config_jobs_secret_envs(const sl_jobs_config *jc, const char **names, size_t max)
{
    size_t n = 0;
#define ADD(v) do { if ((v) != NULL) { if (n < max) names[n] = (v); n++; } } while (0)
    for (size_t i = 0; i < jc->deploy.ntargets; i++)
        ADD(jc->deploy.targets[i].secret_env);
    ADD(jc->import.database_url_env);
    ADD(jc->provision.admin_url_env);
    for (size_t i = 0; i < jc->provision.nendpoints; i++)
        ADD(jc->provision.endpoints[i].secret_env);
    for (size_t i = 0; i < jc->notify.nchannels; i++)
        ADD(jc->notify.channels[i].secret_env);
#undef ADD
    return n;
}

int sl_config_jobs_read(sl_jobs_config *jc, sl_ydoc *doc, const char *section,
                        const sl_ynode *node, sl_err *err)
{
    if (strcmp(section, "deploy") == 0)
        return sl_config_read_keys(ROWS(deploy_keys), jc, doc, section, node, err);
    if (strcmp(section, "import") == 0)
        return sl_config_read_keys(ROWS(import_keys), jc, doc, section, node, err) < 0 ? -1
               : check_import(jc, doc, err);
    if (strcmp(section, "codegen") == 0)
        return sl_config_read_keys(ROWS(codegen_keys), jc, doc, section, node, err) < 0 ? -1
               : check_codegen(jc, doc, err);
    if (strcmp(section, "provision") == 0)
        return sl_config_read_keys(ROWS(provision_keys), jc, doc, section, node, err) < 0 ? -1
               : check_provision(jc, doc, err);
    if (strcmp(section, "notify") == 0)
        return sl_config_read_keys(ROWS(notify_keys), jc, doc, section, node, err) < 0 ? -1
               : check_notify(jc, doc, node, err);
    return sl_err_set(err, SL_ECONFIG, "config: '%s' is not a job section", section);
}

const sl_deploy_target *sl_config_deploy_target(const sl_jobs_config *jc, const char *name)
{
    for (size_t i = 0; jc && i < jc->deploy.ntargets; i++) {
        if (strcmp(jc->deploy.targets[i].name, name) == 0)
            return &jc->deploy.targets[i];
    }
    return NULL;
}

const sl_import_table *sl_config_import_table(const sl_jobs_config *jc, const char *name)
{
    for (size_t i = 0; jc && i < jc->import.ntables; i++) {
        if (strcmp(jc->import.tables[i].name, name) == 0)
            return &jc->import.tables[i];
    }
    return NULL;
}

const sl_provision_endpoint *sl_config_provision_endpoint(const sl_jobs_config *jc,
                                                          const char *name)
{
    for (size_t i = 0; jc && i < jc->provision.nendpoints; i++) {
        if (strcmp(jc->provision.endpoints[i].name, name) == 0)
            return &jc->provision.endpoints[i];
    }
    return NULL;
}

const sl_notify_channel *sl_config_notify_channel(const sl_notify_config *nc, const char *name)
{
    for (size_t i = 0; nc && i < nc->nchannels; i++) {
        if (strcmp(nc->channels[i].name, name) == 0)
            return &nc->channels[i];
    }
    return NULL;
}

/* ---- registration with the core loader (lib/config.h) -------------------- */

static void *part_create(void) { return sl_config_jobs_new(); }
static void part_destroy(void *data) { sl_config_jobs_free(data); }
static int part_read(void *data, sl_ydoc *doc, const char *name, const sl_ynode *node, sl_err *err)
{
    return sl_config_jobs_read(data, doc, name, node, err);
}

static const sl_config_section jobs_section = {
    .names = section_names, .create = part_create, .destroy = part_destroy, .read = part_read,
};

void sl_config_jobs_register(void)
{
    sl_config_register(&jobs_section);
}

sl_jobs_config *sl_config_jobs_of(const sl_config *cfg)
{
    return sl_config_part(cfg, &jobs_section);
}
