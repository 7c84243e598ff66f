/* config.c: see config.h.
 *
 * The file is two levels deep, sections of keys (`log: {level: info}`).  The
 * loader walks the top level: a core section is read by
 * sl_config_read_keys from its table below (rows pointing into sl_config),
 * a registered one is handed to its owner's reader, and any other name is
 * an error at its own position listing the valid ones.  sl_config_read_keys
 * looks every key of a mapping up in its table the same way, so an unknown
 * key is an error at the key, with the valid names in the message.
 *
 * Reading goes into a config that starts from the defaults and is only
 * returned once the whole file has been read: on the first error it is
 * freed, so a caller never sees a half-loaded configuration.  A config
 * holds one part per registered section, created with its defaults when
 * the config is, so a part exists even when the file does not name it. */
#include "config.h"

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "mem.h"
#include "secretenv.h"
#include "yamldoc.h"


/* The core's sections and their keys (sl_config_read_keys reads each).  The
 * top-level names of the other sections are registered by their owners. */
static int read_level(void *data, const sl_config_key *row, sl_ydoc *doc, const char *what,
                      const sl_ynode *node, sl_err *err);

static const sl_config_key redis_keys[] = {
    SL_CONFIG_KEY("url", SL_CONFIG_STRING, sl_config, redis_url, 0, 0),
};
static const sl_config_key database_keys[] = {
    SL_CONFIG_KEY("url", SL_CONFIG_STRING, sl_config, database_url, 0, 0),
};
static const sl_config_key log_keys[] = {
    SL_CONFIG_KEY_FN("level", sl_config, log_level, read_level),
};
static const sl_config_key metrics_keys[] = {
    SL_CONFIG_KEY("enabled", SL_CONFIG_BOOL, sl_config, metrics.enabled, 0, 0),
    SL_CONFIG_KEY("listen", SL_CONFIG_STRING, sl_config, metrics.listen, 0, 0),
    SL_CONFIG_KEY("request_timeout", SL_CONFIG_DURATION, sl_config, metrics.request_timeout_ms, 1000, 3600000),
    SL_CONFIG_KEY("max_connections", SL_CONFIG_INT, sl_config, metrics.max_connections, 1, 10000),
};

#define ROWS(t) t, sizeof t / sizeof t[0]
static const struct core_section {
    const char *name;
    const sl_config_key *keys;
    size_t nkeys;
} core_sections[] = {
    { "redis", ROWS(redis_keys) },
    { "database", ROWS(database_keys) },
    { "log", ROWS(log_keys) },
    { "metrics", ROWS(metrics_keys) },
};
#define NCORE (sizeof core_sections / sizeof core_sections[0])

/* The sections registered by components (sl_config_register): set up by
 * main before the first load, then only read. */
#define MAX_SECTIONS 32
static const sl_config_section *registry[MAX_SECTIONS];
static size_t nregistry;

struct sl_config_part {
    const sl_config_section *section;   /* borrowed: a registered description */
    void *data;                         /* owned, NULL for a skipped section */
};

/* The registered section that reads top-level key name, or NULL. */
static const sl_config_section *registered(const char *name)
{
    for (size_t i = 0; i < nregistry; i++) {
        for (const char *const *n = registry[i]->names; *n; n++) {
            if (strcmp(*n, name) == 0)
                return registry[i];
        }
    }
    return NULL;
}

void sl_config_register(const sl_config_section *s)
{
    for (size_t i = 0; i < nregistry; i++) {
        if (registry[i] == s)
            return;
    }
    for (const char *const *n = s->names; *n; n++) {
        if (registered(*n) != NULL) {
            fprintf(stderr, "sl_config_register: section '%s' registered twice\n", *n);
            abort();
        }
    }
    if (nregistry == MAX_SECTIONS) {
        fprintf(stderr, "sl_config_register: more than %d sections\n", MAX_SECTIONS);
        abort();
    }
    registry[nregistry++] = s;
}

void *sl_config_part(const sl_config *cfg, const sl_config_section *s)
{
    for (size_t i = 0; i < cfg->nparts; i++) {
        if (cfg->parts[i].section == s)
            return cfg->parts[i].data;
    }
    fprintf(stderr, "sl_config_part: section '%s' was not registered before the configuration "
            "was loaded\n", s->names[0]);
    abort();
}

/* Built-in defaults, no file, no environment. */
static sl_config *config_new(void)
{
    sl_config *cfg = sl_xcalloc(1, sizeof *cfg);
    cfg->redis_url = sl_xstrdup("redis://127.0.0.1:6379/0");
    cfg->database_url = sl_xstrdup("postgresql://127.0.0.1:5432/sluice");
    cfg->log_level = SL_LOG_INFO;
    cfg->parts = sl_xcalloc(nregistry ? nregistry : 1, sizeof *cfg->parts);
    for (size_t i = 0; i < nregistry; i++) {
        cfg->parts[i].section = registry[i];
        cfg->parts[i].data = registry[i]->create ? registry[i]->create() : NULL;
    }
    cfg->nparts = nregistry;
    cfg->metrics.enabled = true;
    cfg->metrics.listen = sl_xstrdup("127.0.0.1:9464");
    cfg->metrics.request_timeout_ms = 10000;
    cfg->metrics.max_connections = 64;
    return cfg;
}

/* Writes "a, b, c": the top-level sections, the core's and the registered. */
static const char *section_names(sl_buf *b)
{
    for (size_t i = 0; i < NCORE; i++)
        sl_buf_printf(b, "%s%s", i ? ", " : "", core_sections[i].name);
    for (size_t i = 0; i < nregistry; i++) {
        for (const char *const *n = registry[i]->names; *n; n++)
            sl_buf_printf(b, ", %s", *n);
    }
    return sl_buf_str(b);
}

static int read_level(void *data, const sl_config_key *row, sl_ydoc *doc, const char *what,
                      const sl_ynode *node, sl_err *err)
{
    const char *s;
    if (sl_ydoc_str(doc, node, what, &s, err) < 0)
        return -1;
    /* exact names only: sl_log_level_parse is lenient, for the command line */
    for (int l = SL_LOG_DEBUG; l <= SL_LOG_ERROR; l++) {
        if (strcmp(s, sl_log_level_name((sl_log_level)l)) == 0) {
            *SL_CONFIG_FIELD(data, row, sl_log_level) = (sl_log_level)l;
            return 0;
        }
    }
    return sl_ydoc_errorf(doc, node, err, "'%s' must be debug, info, warn or error, got '%.40s'", what, s);
}

/* Reads node as the value of row into data. */
static int read_value(void *data, const sl_config_key *row, sl_ydoc *doc, const char *what,
                      const sl_ynode *node, sl_err *err)
{
    const char *s;
    int64_t v;
    switch (row->type) {
    case SL_CONFIG_STRING:
        if (sl_ydoc_str(doc, node, what, &s, err) < 0)
            return -1;
        if (*s == '\0')
            return sl_ydoc_errorf(doc, node, err, "'%s' must not be empty", what);
        free(*SL_CONFIG_FIELD(data, row, char *));
        *SL_CONFIG_FIELD(data, row, char *) = sl_xstrdup(s);
        return 0;
    case SL_CONFIG_INT:
        if (sl_ydoc_int(doc, node, what, row->min, row->max, &v, err) < 0)
            return -1;
        *SL_CONFIG_FIELD(data, row, int) = (int)v;
        return 0;
    case SL_CONFIG_INT64:
        return sl_ydoc_int(doc, node, what, row->min, row->max, SL_CONFIG_FIELD(data, row, int64_t), err);
    case SL_CONFIG_DURATION:
        if (sl_ydoc_duration(doc, node, what, row->min, row->max, &v, err) < 0)
            return -1;
        *SL_CONFIG_FIELD(data, row, int) = (int)v;
        return 0;
    case SL_CONFIG_DURATION64:
        return sl_ydoc_duration(doc, node, what, row->min, row->max, SL_CONFIG_FIELD(data, row, int64_t), err);
    case SL_CONFIG_BOOL:
        return sl_ydoc_bool(doc, node, what, SL_CONFIG_FIELD(data, row, bool), err);
    case SL_CONFIG_RATE: {
        const char *text;
        sl_err why;
        if (sl_ydoc_str(doc, node, what, &text, err) < 0)
            return -1;
        if (sl_rate_parse(text, SL_CONFIG_FIELD(data, row, sl_rate), &why) < 0)
            return sl_ydoc_errorf(doc, node, err, "'%s': %s", what, why.msg);
        return 0;
    }
    case SL_CONFIG_CUSTOM:
        return row->read(data, row, doc, what, node, err);
    }
    return sl_err_set(err, SL_ECONFIG, "config: key '%s' has no reader", what);
}

int sl_config_read_keys(const sl_config_key *rows, size_t n, void *data, sl_ydoc *doc,
                        const char *section, const sl_ynode *node, sl_err *err)
{
    sl_ymap map;
    if (sl_ydoc_map(doc, node, section, &map, err) < 0)
        return -1;
    for (size_t i = 0; i < map.n; i++) {
        const sl_config_key *row = NULL;
        for (size_t j = 0; j < n && row == NULL; j++) {
            if (strcmp(rows[j].name, map.pairs[i].name) == 0)
                row = &rows[j];
        }
        if (row == NULL) {
            sl_buf names = SL_BUF_INIT;
            for (size_t j = 0; j < n; j++)
                sl_buf_printf(&names, "%s%s", j ? ", " : "", rows[j].name);
            sl_ydoc_errorf(doc, map.pairs[i].key, err, "unknown key '%.60s' in '%s' (expected %s)",
                           map.pairs[i].name, section, sl_buf_str(&names));
            sl_buf_free(&names);
            return -1;
        }
        char what[256];
        snprintf(what, sizeof what, "%s.%s", section, row->name);
        if (read_value(data, row, doc, what, map.pairs[i].value, err) < 0)
            return -1;
    }
    return 0;
}

/* Hands section name to the reader of the part registered for it (a
 * section without a reader belongs to another program: skipped). */
static int read_part(sl_config *cfg, sl_ydoc *doc, const char *name, const sl_ynode *node, sl_err *err)
{
    const sl_config_section *s = registered(name);
    for (size_t i = 0; i < cfg->nparts; i++) {
        if (cfg->parts[i].section == s && s->read != NULL)
            return s->read(cfg->parts[i].data, doc, name, node, err);
    }
    return 0;
}

static int read_file(sl_config *cfg, const char *path, sl_err *err)
{
    int rc = -1;
    sl_buf names = SL_BUF_INIT;
    sl_ydoc *doc = sl_ydoc_load_file(path, err);
    if (doc == NULL)
        return -1;
    const sl_ynode *root = sl_ydoc_root(doc);
    sl_ymap top;
    if (root == NULL || sl_ynode_kind(root) == SL_YNULL) {
        rc = 0;   /* empty file, or only comments: the defaults */
        goto cleanup;
    }
    if (sl_ynode_kind(root) != SL_YMAP) {
        sl_ydoc_errorf(doc, root, err, "the top level must be a mapping of sections (%s), got %s",
                       section_names(&names),
                       sl_ynode_kind(root) == SL_YSEQ ? "a list" : "a scalar");
        goto cleanup;
    }
    if (sl_ydoc_map(doc, root, NULL, &top, err) < 0)
        goto cleanup;
    for (size_t i = 0; i < top.n; i++) {
        if (registered(top.pairs[i].name) != NULL) {
            if (read_part(cfg, doc, top.pairs[i].name, top.pairs[i].value, err) < 0)
                goto cleanup;
            continue;
        }
        const struct core_section *core = NULL;
        for (size_t j = 0; j < NCORE && core == NULL; j++) {
            if (strcmp(core_sections[j].name, top.pairs[i].name) == 0)
                core = &core_sections[j];
        }
        if (core == NULL) {
            sl_ydoc_errorf(doc, top.pairs[i].key, err, "unknown key '%.60s' at the top level "
                           "(expected %s)", top.pairs[i].name, section_names(&names));
            goto cleanup;
        }
        if (sl_config_read_keys(core->keys, core->nkeys, cfg, doc, core->name, top.pairs[i].value, err) < 0)
            goto cleanup;
    }
    rc = 0;

cleanup:
    sl_buf_free(&names);
    sl_ydoc_free(doc);
    return rc;
}

static const char *env_nonempty(const char *name)
{
    const char *v = sl_secretenv_get(name);   /* sluice-worker takes these out of its environment */
    return v && *v ? v : NULL;
}

/* Reads the credential NAME from $CREDENTIALS_DIRECTORY (systemd's
 * LoadCredential=) into a new string without its trailing newline, or NULL
 * when there is none. */
static char *read_credential(const char *name)
{
    const char *dir = env_nonempty("CREDENTIALS_DIRECTORY");
    if (dir == NULL)
        return NULL;
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path)
        return NULL;
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return NULL;
    char line[4096];
    char *v = NULL;
    if (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = '\0';
        if (line[0])
            v = sl_xstrdup(line);
    }
    fclose(f);
    return v;
}

static void override(char **field, char *value)
{
    if (value == NULL)
        return;
    free(*field);
    *field = value;
}

static void apply_env(sl_config *cfg)
{
    override(&cfg->redis_url, read_credential("redis_url"));
    override(&cfg->database_url, read_credential("database_url"));
    const char *v;
    if ((v = env_nonempty("SLUICE_REDIS_URL")) || (v = env_nonempty("REDIS_URL"))) {
        free(cfg->redis_url);
        cfg->redis_url = sl_xstrdup(v);
    }
    if ((v = env_nonempty("SLUICE_DATABASE_URL")) || (v = env_nonempty("DATABASE_URL"))) {
        free(cfg->database_url);
        cfg->database_url = sl_xstrdup(v);
    }
    for (size_t i = 0; i < cfg->nparts; i++) {
        if (cfg->parts[i].data != NULL && cfg->parts[i].section->env != NULL)
            cfg->parts[i].section->env(cfg->parts[i].data);
    }
}

void sl_config_default_path(char *buf, size_t n)
{
    char exe[PATH_MAX];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (len > 0) {
        exe[len] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash) {
            *slash = '\0';                     /* exe is now the binary's directory */
            slash = strrchr(exe, '/');
            if (slash && strcmp(slash + 1, "bin") == 0) {
                *slash = '\0';                 /* exe is now the prefix */
                bool usr = strcmp(exe, "/usr") == 0 || exe[0] == '\0';
                snprintf(buf, n, "%s/etc/sluice/sluice.yaml", usr ? "" : exe);
                return;
            }
        }
    }
    snprintf(buf, n, "%s/sluice/sluice.yaml", SLUICE_SYSCONFDIR);
}

sl_config *sl_config_load(const char *path, sl_err *err)
{
    char installed[PATH_MAX + 32];
    const char *file = path ? path : env_nonempty("SLUICE_CONFIG");
    if (file == NULL) {
        sl_config_default_path(installed, sizeof installed);
        if (access(installed, F_OK) == 0)
            file = installed;
    }
    sl_config *cfg = config_new();
    if (file != NULL) {
        if (read_file(cfg, file, err) < 0) {
            sl_config_free(cfg);
            return NULL;
        }
        cfg->path = sl_xstrdup(file);
    }
    apply_env(cfg);
    return cfg;
}

sl_config *sl_config_defaults(void)
{
    sl_config *cfg = config_new();
    apply_env(cfg);
    return cfg;
}

void sl_config_free(sl_config *cfg)
{
    if (cfg == NULL)
        return;
    free(cfg->path);
    free(cfg->redis_url);
    free(cfg->database_url);
    for (size_t i = 0; i < cfg->nparts; i++) {
        if (cfg->parts[i].data != NULL)
            cfg->parts[i].section->destroy(cfg->parts[i].data);
    }
    free(cfg->parts);
    free(cfg->metrics.listen);
    free(cfg);
}
