/* config_jobs.c: see config_jobs.h.
 *
 * Each section is a mapping read by its own function; every mapping is
 * first checked against the list of keys it may hold (check_keys), so an
 * unknown key is an error at its own position naming the valid ones.  The
 * named collections (deploy.targets, import.tables, provision.endpoints) are
 * mappings from the name a job argument uses to a mapping of settings.
 * The sections reach this module through the core loader's registry
 * (sl_config_jobs_register): lib/config.c does not know them. */
#include "config_jobs.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "buf.h"
#include "mem.h"

#define NAME_MAX_LEN 64

static void free_list(char **list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(list[i]);
    free(list);
}

static void free_target(sl_deploy_target *t)
{
    free(t->name);
    free_list(t->argv, t->argc);
    free(t->cwd);
    free(t->url);
    free(t->secret_env);
    free(t->secret_file);
    free(t->health_url);
}

static void free_table(sl_import_table *t)
{
    free(t->name);
    free(t->schema);
    free(t->table);
    free_list(t->columns, t->ncolumns);
}

static void free_endpoint(sl_provision_endpoint *e)
{
    free(e->name);
    free(e->url);
    free(e->secret_env);
    free(e->secret_file);
}

static void free_channel(sl_notify_channel *c)
{
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

static void clear_deploy(sl_jobs_config *jc)
{
    for (size_t i = 0; i < jc->deploy.ntargets; i++)
        free_target(&jc->deploy.targets[i]);
    free(jc->deploy.targets);
    jc->deploy.targets = NULL;
    jc->deploy.ntargets = 0;
}

static void clear_tables(sl_jobs_config *jc)
{
    for (size_t i = 0; i < jc->import.ntables; i++)
        free_table(&jc->import.tables[i]);
    free(jc->import.tables);
    jc->import.tables = NULL;
    jc->import.ntables = 0;
}

static void clear_endpoints(sl_jobs_config *jc)
{
    for (size_t i = 0; i < jc->provision.nendpoints; i++)
        free_endpoint(&jc->provision.endpoints[i]);
    free(jc->provision.endpoints);
    jc->provision.endpoints = NULL;
    jc->provision.nendpoints = 0;
}

static void clear_channels(sl_jobs_config *jc)
{
    for (size_t i = 0; i < jc->notify.nchannels; i++)
        free_channel(&jc->notify.channels[i]);
    free(jc->notify.channels);
    jc->notify.channels = NULL;
    jc->notify.nchannels = 0;
}

void sl_config_jobs_free(sl_jobs_config *jc)
{
    if (jc == NULL)
        return;
    clear_deploy(jc);
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
    clear_tables(jc);
    free(jc->codegen.template_root);
    free(jc->codegen.output_root);
    free(jc->provision.admin_url_env);
    free(jc->provision.admin_url_file);
    free_list(jc->provision.resources, jc->provision.nresources);
    free(jc->provision.password_dir);
    clear_endpoints(jc);
    clear_channels(jc);
    free_list(jc->notify.defaults, jc->notify.ndefaults);
    free(jc->notify.queue);
    free(jc->notify.allow_addresses);
    free(jc);
}

/* The top-level sections read here (sl_config_jobs_read dispatches on them). */
static const char *const section_names[] = { "deploy", "import", "codegen", "provision", "notify", NULL };

bool sl_config_jobs_section(const char *name)
{
    for (const char *const *n = section_names; *n; n++) {
        if (strcmp(*n, name) == 0)
            return true;
    }
    return false;
}

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

/* Names under targets/tables/endpoints: what a job argument may say. */
static bool entry_name_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > NAME_MAX_LEN)
        return false;
    return strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") == n;
}

/* Fails at the first key of map that is not in allowed (NULL-terminated). */
static int check_keys(sl_ydoc *doc, const sl_ymap *map, const char *what,
                      const char *const *allowed, sl_err *err)
{
    for (size_t i = 0; i < map->n; i++) {
        size_t j;
        for (j = 0; allowed[j] && strcmp(allowed[j], map->pairs[i].name) != 0; j++)
            ;
        if (allowed[j] == NULL) {
            sl_buf names = SL_BUF_INIT;
            for (j = 0; allowed[j]; j++)
                sl_buf_printf(&names, "%s%s", j ? ", " : "", allowed[j]);
            sl_ydoc_errorf(doc, map->pairs[i].key, err, "unknown key '%.60s' in '%s' (expected %s)",
                           map->pairs[i].name, what, sl_buf_str(&names));
            sl_buf_free(&names);
            return -1;
        }
    }
    return 0;
}

static void set_str(char **field, const char *s)
{
    free(*field);
    *field = sl_xstrdup(s);
}

static int read_abs_path(sl_ydoc *doc, const sl_ynode *node, const char *what, char **out,
                         sl_err *err)
{
    const char *s;
    if (sl_ydoc_str(doc, node, what, &s, err) < 0)
        return -1;
    if (s[0] != '/')
        return sl_ydoc_errorf(doc, node, err, "'%s' must be an absolute path, got '%.200s'", what, s);
    set_str(out, s);
    return 0;
}

static int read_env_name(sl_ydoc *doc, const sl_ynode *node, const char *what, char **out,
                         sl_err *err)
{
    const char *s;
    if (sl_ydoc_str(doc, node, what, &s, err) < 0)
        return -1;
    if (!sl_config_env_name_valid(s))
        return sl_ydoc_errorf(doc, node, err, "'%s' must name an environment variable "
                              "([A-Za-z_][A-Za-z0-9_]*), got '%.80s'", what, s);
    set_str(out, s);
    return 0;
}

/* A secret's file: an absolute path, or a plain name looked up in
 * $CREDENTIALS_DIRECTORY when the job runs (systemd LoadCredential=). */
static int read_secret_file(sl_ydoc *doc, const sl_ynode *node, const char *what, char **out,
                            sl_err *err)
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
    set_str(out, s);
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

static int read_http_url(sl_ydoc *doc, const sl_ynode *node, const char *what, char **out,
                         sl_err *err)
{
    const char *s;
    if (sl_ydoc_str(doc, node, what, &s, err) < 0)
        return -1;
    if (strncmp(s, "http://", 7) != 0 && strncmp(s, "https://", 8) != 0)
        return sl_ydoc_errorf(doc, node, err, "'%s' must be an http:// or https:// URL, got '%.200s'",
                              what, s);
    set_str(out, s);
    return 0;
}

/* A list of strings; each item is checked by valid (may be NULL) whose
 * failure is described by expect. */
static int read_list(sl_ydoc *doc, const sl_ynode *node, const char *what, bool (*valid)(const char *),
                     const char *expect, char ***out, size_t *nout, sl_err *err)
{
    sl_yseq seq;
    if (sl_ydoc_seq(doc, node, what, &seq, err) < 0)
        return -1;
    char **list = sl_xcalloc(seq.n + 1, sizeof *list);
    size_t n;
    for (n = 0; n < seq.n; n++) {
        char item[128];
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

static int read_int(sl_ydoc *doc, const sl_ynode *node, const char *what, int64_t min, int64_t max,
                    int64_t *out, sl_err *err)
{
    return sl_ydoc_int(doc, node, what, min, max, out, err);
}

typedef int (*entry_reader)(sl_ydoc *doc, const sl_ypair *pair, void *entry, sl_err *err);

/* The named collections (deploy.targets, import.tables, provision.endpoints)
 * share their struct's first member, `char *name`. */
_Static_assert(offsetof(sl_deploy_target, name) == 0, "name first");
_Static_assert(offsetof(sl_import_table, name) == 0, "name first");
_Static_assert(offsetof(sl_provision_endpoint, name) == 0, "name first");
_Static_assert(offsetof(sl_notify_channel, name) == 0, "name first");

/* Reads a mapping from entry names to settings into a new array of `elem`
 * byte entries, each read by read_one.  *arr must be empty (cleared by the
 * caller); on error it holds the entries read so far, counted in *n, for
 * the caller's free. */
static int read_named(sl_ydoc *doc, const sl_ynode *node, const char *what, const char *label,
                      size_t elem, entry_reader read_one, void **arr, size_t *n, sl_err *err)
{
    sl_ymap map;
    if (sl_ydoc_map(doc, node, what, &map, err) < 0)
        return -1;
    char *base = sl_xcalloc(map.n + 1, elem);
    *arr = base;
    for (size_t j = 0; j < map.n; j++) {
        char *entry = base + j * elem;
        char **name = (char **)(void *)entry;
        *name = sl_xstrdup(map.pairs[j].name);
        (*n)++;
        if (!entry_name_valid(*name))
            return sl_ydoc_errorf(doc, map.pairs[j].key, err, "%s name '%.80s' must be 1-%d of "
                                  "A-Z a-z 0-9 _ . -", label, *name, NAME_MAX_LEN);
        if (read_one(doc, &map.pairs[j], entry, err) < 0)
            return -1;
    }
    return 0;
}

/* ---- deploy ---- */

static bool argv0_valid(const char *s)
{
    return s[0] == '/';
}

/* A fleet-wide rate, "COUNT/s", "COUNT/m" or "COUNT/h" (lib/rate.h). */
static int read_rate(sl_ydoc *doc, const sl_ynode *v, const char *kw, sl_rate *out, sl_err *err)
{
    const char *s;
    if (sl_ydoc_str(doc, v, kw, &s, err) < 0)
        return -1;
    sl_err e;
    if (sl_rate_parse(s, out, &e) < 0)
        return sl_ydoc_errorf(doc, v, err, "'%s': %s", kw, e.msg);
    return 0;
}

static int read_target(sl_ydoc *doc, const sl_ypair *pair, void *entry, sl_err *err)
{
    sl_deploy_target *t = entry;
    static const char *const keys[] = { "type", "command", "cwd", "output_limit", "url",
                                        "secret_env", "secret_file", "health_url", "timeout",
                                        "health_timeout", "health_interval", "protected", "rate", NULL };
    char what[128];
    snprintf(what, sizeof what, "deploy.targets.%s", pair->name);
    sl_ymap map;
    const sl_ynode *type_node = NULL;
    if (sl_ydoc_map(doc, pair->value, what, &map, err) < 0 || check_keys(doc, &map, what, keys, err) < 0)
        return -1;
    t->output_limit = 16384;
    t->request_timeout_ms = 30000;
    t->health_timeout_ms = 120000;
    t->health_interval_ms = 2000;
    for (size_t i = 0; i < map.n; i++) {
        const char *k = map.pairs[i].name;
        const sl_ynode *v = map.pairs[i].value;
        char kw[192];
        snprintf(kw, sizeof kw, "%s.%s", what, k);
        int rc = 0;
        if (strcmp(k, "type") == 0) {
            const char *s;
            type_node = v;
            if ((rc = sl_ydoc_str(doc, v, kw, &s, err)) == 0) {
                if (strcmp(s, "command") == 0)
                    t->type = SL_TARGET_COMMAND;
                else if (strcmp(s, "webhook") == 0)
                    t->type = SL_TARGET_WEBHOOK;
                else
                    rc = sl_ydoc_errorf(doc, v, err, "'%s' must be command or webhook, got '%.40s'", kw, s);
            }
        } else if (strcmp(k, "command") == 0) {
            rc = read_list(doc, v, kw, NULL, NULL, &t->argv, &t->argc, err);
            if (rc == 0 && t->argc == 0)
                rc = sl_ydoc_errorf(doc, v, err, "'%s' must list the program and its arguments", kw);
            else if (rc == 0 && !argv0_valid(t->argv[0]))
                rc = sl_ydoc_errorf(doc, v, err, "'%s': the program must be an absolute path "
                                    "(no PATH search), got '%.200s'", kw, t->argv[0]);
        } else if (strcmp(k, "cwd") == 0) {
            rc = read_abs_path(doc, v, kw, &t->cwd, err);
        } else if (strcmp(k, "output_limit") == 0) {
            rc = read_int(doc, v, kw, 256, 16 * 1024 * 1024, &t->output_limit, err);
        } else if (strcmp(k, "url") == 0) {
            rc = read_http_url(doc, v, kw, &t->url, err);
        } else if (strcmp(k, "health_url") == 0) {
            rc = read_http_url(doc, v, kw, &t->health_url, err);
        } else if (strcmp(k, "secret_env") == 0) {
            rc = read_env_name(doc, v, kw, &t->secret_env, err);
        } else if (strcmp(k, "secret_file") == 0) {
            rc = read_secret_file(doc, v, kw, &t->secret_file, err);
        } else if (strcmp(k, "timeout") == 0) {
            rc = sl_ydoc_duration(doc, v, kw, 1, 86400000, &t->request_timeout_ms, err);
        } else if (strcmp(k, "health_timeout") == 0) {
            rc = sl_ydoc_duration(doc, v, kw, 1, 86400000, &t->health_timeout_ms, err);
        } else if (strcmp(k, "health_interval") == 0) {
            rc = sl_ydoc_duration(doc, v, kw, 1, 3600000, &t->health_interval_ms, err);
        } else if (strcmp(k, "protected") == 0) {
            rc = sl_ydoc_bool(doc, v, kw, &t->protected, err);
        } else if (strcmp(k, "rate") == 0) {
            rc = read_rate(doc, v, kw, &t->rate, err);
        }
        if (rc < 0)
            return -1;
    }
    if (type_node == NULL)
        return sl_ydoc_errorf(doc, pair->key, err, "'%s' needs 'type: command' or 'type: webhook'", what);
    char sw[160];
    snprintf(sw, sizeof sw, "%s.secret", what);
    if (check_one_secret(doc, pair->key, sw, t->secret_env, t->secret_file, err) < 0)
        return -1;
    /* a key of the other type is a mistake worth pointing at, not ignoring */
    static const char *const command_only[] = { "command", "cwd", "output_limit", NULL };
    for (size_t i = 0; i < map.n; i++) {
        if (strcmp(map.pairs[i].name, "protected") == 0 || strcmp(map.pairs[i].name, "rate") == 0)
            continue;   /* applies to both types */
        bool for_command = false;
        for (size_t j = 0; command_only[j]; j++)
            for_command |= strcmp(map.pairs[i].name, command_only[j]) == 0;
        if (strcmp(map.pairs[i].name, "type") != 0 && for_command != (t->type == SL_TARGET_COMMAND))
            return sl_ydoc_errorf(doc, map.pairs[i].key, err, "'%s' is a %s target: '%s' applies to %s "
                                  "targets only", what, t->type == SL_TARGET_COMMAND ? "command" : "webhook",
                                  map.pairs[i].name, for_command ? "command" : "webhook");
    }
    if (t->type == SL_TARGET_COMMAND && t->argv == NULL)
        return sl_ydoc_errorf(doc, pair->key, err, "'%s' is a command target without 'command'", what);
    if (t->type == SL_TARGET_WEBHOOK && t->url == NULL)
        return sl_ydoc_errorf(doc, pair->key, err, "'%s' is a webhook target without 'url'", what);
    if (t->cwd == NULL)
        t->cwd = sl_xstrdup("/");
    return 0;
}

static bool account_name_valid(const char *s)
{
    size_t n = strlen(s);
    return n > 0 && n <= 32 && s[0] != '-' &&
           strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") == n;
}

/* deploy.run_as: "USER" or "USER:GROUP", names (resolved when a job runs). */
static int read_run_as(sl_jobs_config *jc, sl_ydoc *doc, const sl_ynode *v, sl_err *err)
{
    const char *s;
    if (sl_ydoc_str(doc, v, "deploy.run_as", &s, err) < 0)
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

static int read_deploy(sl_jobs_config *jc, sl_ydoc *doc, const sl_ymap *map, sl_err *err)
{
    static const char *const keys[] = { "targets", "run_as", NULL };
    if (check_keys(doc, map, "deploy", keys, err) < 0)
        return -1;
    for (size_t i = 0; i < map->n; i++) {
        if (strcmp(map->pairs[i].name, "run_as") == 0) {
            if (read_run_as(jc, doc, map->pairs[i].value, err) < 0)
                return -1;
            continue;
        }
        void *arr = NULL;
        clear_deploy(jc);
        int rc = read_named(doc, map->pairs[i].value, "deploy.targets", "deploy target",
                            sizeof(sl_deploy_target), read_target, &arr, &jc->deploy.ntargets, err);
        jc->deploy.targets = arr;
        if (rc < 0)
            return -1;
    }
    return 0;
}

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

static int read_table(sl_ydoc *doc, const sl_ypair *pair, void *entry, sl_err *err)
{
    sl_import_table *t = entry;
    static const char *const keys[] = { "table", "columns", "header", NULL };
    char what[128];
    snprintf(what, sizeof what, "import.tables.%s", pair->name);
    sl_ymap map;
    if (sl_ydoc_map(doc, pair->value, what, &map, err) < 0 || check_keys(doc, &map, what, keys, err) < 0)
        return -1;
    t->header = true;
    for (size_t i = 0; i < map.n; i++) {
        const char *k = map.pairs[i].name;
        const sl_ynode *v = map.pairs[i].value;
        char kw[192];
        snprintf(kw, sizeof kw, "%s.%s", what, k);
        if (strcmp(k, "table") == 0) {
            const char *s;
            if (sl_ydoc_str(doc, v, kw, &s, err) < 0)
                return -1;
            const char *dot = strchr(s, '.');
            char *schema = dot ? sl_xstrndup(s, (size_t)(dot - s)) : NULL;
            const char *table = dot ? dot + 1 : s;
            bool ok = ident_valid(table) && (schema == NULL || ident_valid(schema));
            if (!ok) {
                free(schema);
                return sl_ydoc_errorf(doc, v, err, "'%s' must be TABLE or SCHEMA.TABLE, each a "
                                      "lower-case identifier ([a-z_][a-z0-9_]*, at most 63), got '%.80s'",
                                      kw, s);
            }
            free(t->schema);
            t->schema = schema;
            set_str(&t->table, table);
        } else if (strcmp(k, "columns") == 0) {
            if (read_list(doc, v, kw, ident_valid, "a lower-case identifier", &t->columns,
                          &t->ncolumns, err) < 0)
                return -1;
        } else if (sl_ydoc_bool(doc, v, kw, &t->header, err) < 0) {
            return -1;
        }
    }
    if (t->table == NULL)
        return sl_ydoc_errorf(doc, pair->key, err, "'%s' needs 'table'", what);
    return 0;
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

static int read_cidrs(sl_ydoc *doc, const sl_ynode *node, const char *what, sl_cidr **out, size_t *nout,
                      sl_err *err)
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
    free(*out);
    *out = c;
    *nout = n;
    return 0;
}

static int read_ports(sl_ydoc *doc, const sl_ynode *node, const char *what, int **out, size_t *nout,
                      sl_err *err)
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
    free(*out);
    *out = ports;
    *nout = seq.n;
    return 0;
}

static int read_import(sl_jobs_config *jc, sl_ydoc *doc, const sl_ymap *map, sl_err *err)
{
    static const char *const keys[] = { "root", "schemes", "hosts", "file_root", "max_bytes",
                                        "connect_timeout", "timeout", "max_redirects",
                                        "database_url_env", "database_url_file", "tables", "allow_addresses",
                                        "allow_ports", NULL };
    if (check_keys(doc, map, "import", keys, err) < 0)
        return -1;
    for (size_t i = 0; i < map->n; i++) {
        const char *k = map->pairs[i].name;
        const sl_ynode *v = map->pairs[i].value;
        char kw[64];
        int64_t n;
        snprintf(kw, sizeof kw, "import.%s", k);
        int rc = 0;
        if (strcmp(k, "root") == 0) {
            rc = read_abs_path(doc, v, kw, &jc->import.root, err);
        } else if (strcmp(k, "file_root") == 0) {
            rc = read_abs_path(doc, v, kw, &jc->import.file_root, err);
        } else if (strcmp(k, "schemes") == 0) {
            rc = read_list(doc, v, kw, scheme_valid, "http, https or file", &jc->import.schemes,
                           &jc->import.nschemes, err);
        } else if (strcmp(k, "hosts") == 0) {
            rc = read_list(doc, v, kw, host_valid, "a lower-case host name or *.domain",
                           &jc->import.hosts, &jc->import.nhosts, err);
        } else if (strcmp(k, "max_bytes") == 0) {
            rc = read_int(doc, v, kw, 1, INT64_C(1) << 40, &jc->import.max_bytes, err);
        } else if (strcmp(k, "connect_timeout") == 0) {
            rc = sl_ydoc_duration(doc, v, kw, 1, 3600000, &jc->import.connect_timeout_ms, err);
        } else if (strcmp(k, "timeout") == 0) {
            rc = sl_ydoc_duration(doc, v, kw, 1, 7 * 86400000LL, &jc->import.timeout_ms, err);
        } else if (strcmp(k, "max_redirects") == 0) {
            if ((rc = read_int(doc, v, kw, 0, 50, &n, err)) == 0)
                jc->import.max_redirects = (int)n;
        } else if (strcmp(k, "database_url_env") == 0) {
            rc = read_env_name(doc, v, kw, &jc->import.database_url_env, err);
        } else if (strcmp(k, "database_url_file") == 0) {
            rc = read_secret_file(doc, v, kw, &jc->import.database_url_file, err);
        } else if (strcmp(k, "allow_addresses") == 0) {
            rc = read_cidrs(doc, v, kw, &jc->import.allow_addresses, &jc->import.nallow_addresses, err);
        } else if (strcmp(k, "allow_ports") == 0) {
            rc = read_ports(doc, v, kw, &jc->import.allow_ports, &jc->import.nallow_ports, err);
        } else if (strcmp(k, "tables") == 0) {
            void *arr = NULL;
            clear_tables(jc);
            rc = read_named(doc, v, kw, "import table", sizeof(sl_import_table), read_table, &arr,
                            &jc->import.ntables, err);
            jc->import.tables = arr;
        }
        if (rc < 0)
            return -1;
    }
    if (check_one_secret(doc, NULL, "import.database_url", jc->import.database_url_env,
                         jc->import.database_url_file, err) < 0)
        return -1;
    if (sl_config_list_has(jc->import.schemes, jc->import.nschemes, "file") && jc->import.file_root == NULL)
        return sl_ydoc_errorf(doc, NULL, err, "import.schemes allows 'file' but import.file_root is not set");
    return 0;
}

/* ---- codegen ---- */

static int read_codegen(sl_jobs_config *jc, sl_ydoc *doc, const sl_ymap *map, sl_err *err)
{
    static const char *const keys[] = { "template_root", "output_root", "max_bytes", "max_files",
                                        "max_steps", NULL };
    if (check_keys(doc, map, "codegen", keys, err) < 0)
        return -1;
    for (size_t i = 0; i < map->n; i++) {
        const char *k = map->pairs[i].name;
        const sl_ynode *v = map->pairs[i].value;
        char kw[64];
        int64_t n;
        snprintf(kw, sizeof kw, "codegen.%s", k);
        int rc;
        if (strcmp(k, "template_root") == 0)
            rc = read_abs_path(doc, v, kw, &jc->codegen.template_root, err);
        else if (strcmp(k, "output_root") == 0)
            rc = read_abs_path(doc, v, kw, &jc->codegen.output_root, err);
        else if (strcmp(k, "max_bytes") == 0)
            rc = read_int(doc, v, kw, 1, INT64_C(1) << 34, &jc->codegen.max_bytes, err);
        else if (strcmp(k, "max_steps") == 0)
            rc = read_int(doc, v, kw, 1000, INT64_C(1) << 40, &jc->codegen.max_steps, err);
        else if ((rc = read_int(doc, v, kw, 1, 1000000, &n, err)) == 0)
            jc->codegen.max_files = (int)n;
        if (rc < 0)
            return -1;
    }
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

static int read_endpoint(sl_ydoc *doc, const sl_ypair *pair, void *entry, sl_err *err)
{
    sl_provision_endpoint *e = entry;
    static const char *const keys[] = { "url", "secret_env", "secret_file", "timeout", "rate", NULL };
    char what[128];
    snprintf(what, sizeof what, "provision.endpoints.%s", pair->name);
    sl_ymap map;
    if (sl_ydoc_map(doc, pair->value, what, &map, err) < 0 || check_keys(doc, &map, what, keys, err) < 0)
        return -1;
    e->timeout_ms = 30000;
    for (size_t i = 0; i < map.n; i++) {
        const char *k = map.pairs[i].name;
        const sl_ynode *v = map.pairs[i].value;
        char kw[192];
        snprintf(kw, sizeof kw, "%s.%s", what, k);
        int rc;
        if (strcmp(k, "url") == 0)
            rc = read_http_url(doc, v, kw, &e->url, err);
        else if (strcmp(k, "secret_env") == 0)
            rc = read_env_name(doc, v, kw, &e->secret_env, err);
        else if (strcmp(k, "secret_file") == 0)
            rc = read_secret_file(doc, v, kw, &e->secret_file, err);
        else if (strcmp(k, "rate") == 0)
            rc = read_rate(doc, v, kw, &e->rate, err);
        else
            rc = sl_ydoc_duration(doc, v, kw, 1, 3600000, &e->timeout_ms, err);
        if (rc < 0)
            return -1;
    }
    if (e->url == NULL)
        return sl_ydoc_errorf(doc, pair->key, err, "'%s' needs 'url'", what);
    char sw[160];
    snprintf(sw, sizeof sw, "%s.secret", what);
    if (check_one_secret(doc, pair->key, sw, e->secret_env, e->secret_file, err) < 0)
        return -1;
    return 0;
}

static int read_provision(sl_jobs_config *jc, sl_ydoc *doc, const sl_ymap *map, sl_err *err)
{
    static const char *const keys[] = { "admin_url_env", "admin_url_file", "resources", "password_dir",
                                        "endpoints", NULL };
    if (check_keys(doc, map, "provision", keys, err) < 0)
        return -1;
    for (size_t i = 0; i < map->n; i++) {
        const char *k = map->pairs[i].name;
        const sl_ynode *v = map->pairs[i].value;
        char kw[64];
        snprintf(kw, sizeof kw, "provision.%s", k);
        int rc = 0;
        if (strcmp(k, "admin_url_env") == 0) {
            rc = read_env_name(doc, v, kw, &jc->provision.admin_url_env, err);
        } else if (strcmp(k, "admin_url_file") == 0) {
            rc = read_secret_file(doc, v, kw, &jc->provision.admin_url_file, err);
        } else if (strcmp(k, "resources") == 0) {
            rc = read_list(doc, v, kw, resource_valid, "postgres_schema, postgres_role or postgres_database",
                           &jc->provision.resources, &jc->provision.nresources, err);
        } else if (strcmp(k, "password_dir") == 0) {
            rc = read_abs_path(doc, v, kw, &jc->provision.password_dir, err);
        } else {
            void *arr = NULL;
            clear_endpoints(jc);
            rc = read_named(doc, v, kw, "endpoint", sizeof(sl_provision_endpoint), read_endpoint, &arr,
                            &jc->provision.nendpoints, err);
            jc->provision.endpoints = arr;
        }
        if (rc < 0)
            return -1;
    }
    return check_one_secret(doc, NULL, "provision.admin_url", jc->provision.admin_url_env,
                            jc->provision.admin_url_file, err);
}

/* ---- notify ---- */

static int read_channel(sl_ydoc *doc, const sl_ypair *pair, void *entry, sl_err *err)
{
    sl_notify_channel *c = entry;
    static const char *const keys[] = { "type", "url", "secret_env", "secret_file", "timeout", NULL };
    char what[128];
    snprintf(what, sizeof what, "notify.channels.%s", pair->name);
    sl_ymap map;
    if (sl_ydoc_map(doc, pair->value, what, &map, err) < 0 || check_keys(doc, &map, what, keys, err) < 0)
        return -1;
    c->timeout_ms = 10000;
    bool typed = false;
    for (size_t i = 0; i < map.n; i++) {
        const char *k = map.pairs[i].name;
        const sl_ynode *v = map.pairs[i].value;
        char kw[192];
        snprintf(kw, sizeof kw, "%s.%s", what, k);
        int rc;
        if (strcmp(k, "type") == 0) {
            const char *s;
            typed = true;
            if ((rc = sl_ydoc_str(doc, v, kw, &s, err)) == 0) {
                if (strcmp(s, "webhook") == 0)
                    c->type = SL_NOTIFY_WEBHOOK;
                else if (strcmp(s, "slack") == 0)
                    c->type = SL_NOTIFY_SLACK;
                else
                    rc = sl_ydoc_errorf(doc, v, err, "'%s' must be webhook or slack, got '%.40s'", kw, s);
            }
        } else if (strcmp(k, "url") == 0) {
            rc = read_http_url(doc, v, kw, &c->url, err);
        } else if (strcmp(k, "secret_env") == 0) {
            rc = read_env_name(doc, v, kw, &c->secret_env, err);
        } else if (strcmp(k, "secret_file") == 0) {
            rc = read_secret_file(doc, v, kw, &c->secret_file, err);
        } else {
            rc = sl_ydoc_duration(doc, v, kw, 1, 600000, &c->timeout_ms, err);
        }
        if (rc < 0)
            return -1;
    }
    if (!typed)
        return sl_ydoc_errorf(doc, pair->key, err, "'%s' needs 'type: webhook' or 'type: slack'", what);
    char sw[160];
    snprintf(sw, sizeof sw, "%s.secret", what);
    if (check_one_secret(doc, pair->key, sw, c->secret_env, c->secret_file, err) < 0)
        return -1;
    if (c->type == SL_NOTIFY_SLACK && (c->secret_env || c->secret_file))
        return sl_ydoc_errorf(doc, pair->key, err, "'%s' is a slack channel: it takes no secret (the "
                              "incoming webhook's URL is the credential)", what);
    return 0;
}

static int read_notify(sl_jobs_config *jc, sl_ydoc *doc, const sl_ymap *map, sl_err *err)
{
    static const char *const keys[] = { "channels", "default", "queue", "remind_before",
                                        "max_attempts", "allow_addresses", NULL };
    if (check_keys(doc, map, "notify", keys, err) < 0)
        return -1;
    const sl_ynode *default_node = NULL;
    for (size_t i = 0; i < map->n; i++) {
        const char *k = map->pairs[i].name;
        const sl_ynode *v = map->pairs[i].value;
        char kw[64];
        snprintf(kw, sizeof kw, "notify.%s", k);
        int rc;
        if (strcmp(k, "channels") == 0) {
            void *arr = NULL;
            clear_channels(jc);
            rc = read_named(doc, v, kw, "channel", sizeof(sl_notify_channel), read_channel, &arr,
                            &jc->notify.nchannels, err);
            jc->notify.channels = arr;
        } else if (strcmp(k, "default") == 0) {
            default_node = v;
            rc = read_list(doc, v, kw, entry_name_valid, "a channel name", &jc->notify.defaults,
                           &jc->notify.ndefaults, err);
        } else if (strcmp(k, "queue") == 0) {
            const char *s;
            if ((rc = sl_ydoc_str(doc, v, kw, &s, err)) == 0) {
                if (!entry_name_valid(s) || strlen(s) > NAME_MAX_LEN)
                    rc = sl_ydoc_errorf(doc, v, err, "'%s' must be a queue name (1-64 of A-Z a-z 0-9 _ . -), "
                                        "got '%.80s'", kw, s);
                else
                    set_str(&jc->notify.queue, s);
            }
        } else if (strcmp(k, "remind_before") == 0) {
            rc = sl_ydoc_duration(doc, v, kw, 0, 7 * 86400000LL, &jc->notify.remind_before_ms, err);
        } else if (strcmp(k, "max_attempts") == 0) {
            int64_t n;
            if ((rc = read_int(doc, v, kw, 1, 1000, &n, err)) == 0)
                jc->notify.max_attempts = (int)n;
        } else {
            rc = read_cidrs(doc, v, kw, &jc->notify.allow_addresses, &jc->notify.nallow_addresses, err);
        }
        if (rc < 0)
            return -1;
    }
    for (size_t i = 0; i < jc->notify.ndefaults; i++) {
        if (sl_config_notify_channel(&jc->notify, jc->notify.defaults[i]) == NULL)
            return sl_ydoc_errorf(doc, default_node, err, "notify.default: no channel '%.80s' under "
                                  "notify.channels", jc->notify.defaults[i]);
    }
    return 0;
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
    sl_ymap map;
    if (sl_ydoc_map(doc, node, section, &map, err) < 0)
        return -1;
    if (strcmp(section, "deploy") == 0)
        return read_deploy(jc, doc, &map, err);
    if (strcmp(section, "import") == 0)
        return read_import(jc, doc, &map, err);
    if (strcmp(section, "codegen") == 0)
        return read_codegen(jc, doc, &map, err);
    if (strcmp(section, "provision") == 0)
        return read_provision(jc, doc, &map, err);
    if (strcmp(section, "notify") == 0)
        return read_notify(jc, doc, &map, err);
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
