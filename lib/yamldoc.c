/* yamldoc.c: see yamldoc.h.
 *
 * libyaml composes the whole document up front (yaml_parser_load): an array
 * of nodes in which collections refer to their children by index, and an
 * alias is simply a second reference to the anchored node.  So the document
 * is a graph, and two checks at load time turn it into something callers can
 * walk without care: no node may contain itself (`&a [*a]` is accepted by
 * libyaml), and no path may nest deeper than MAX_DEPTH, counting what
 * aliases pull in.  After that, every recursion here (and in callers) is
 * bounded.
 *
 * Merge keys are resolved lazily, per mapping node, the first time someone
 * reads that mapping, and the result is kept in the node's slot: an anchored
 * mapping merged into twenty others is resolved once.  Sequences get a slot
 * too, holding node pointers instead of indexes.  Slots are freed with the
 * document, which is why the views in the header need no free function.
 */
#include "yamldoc.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "duration.h"
#include "mem.h"

#define MAX_DEPTH 128             /* nesting limit, aliases expanded */
#define MERGE_TAG "tag:yaml.org,2002:merge"

typedef struct slot {
    void *items;   /* sl_ypair[] for a mapping, const sl_ynode *[] for a sequence */
    size_t n;
    bool done;     /* items is the finished view */
} slot;

struct sl_ydoc {
    char *name;            /* the file, as shown in messages */
    yaml_document_t doc;
    bool loaded;           /* doc must be deleted */
    slot *slots;           /* one per node, in node order */
    size_t nnodes;
};

static void oom(void)
{
    fprintf(stderr, "sluice: out of memory in libyaml\n");
    abort();
}

static size_t node_index(const sl_ydoc *doc, const sl_ynode *node)
{
    assert(node >= doc->doc.nodes.start && node < doc->doc.nodes.top);
    return (size_t)(node - doc->doc.nodes.start);
}

static const sl_ynode *node_at(const sl_ydoc *doc, int id)
{
    /* libyaml node ids are 1-based */
    const yaml_node_t *n = yaml_document_get_node((yaml_document_t *)&doc->doc, id);
    assert(n != NULL);
    return n;
}

/* ---- messages ----------------------------------------------------------- */

int sl_ydoc_errorf(const sl_ydoc *doc, const sl_ynode *node, sl_err *err, const char *fmt, ...)
{
    if (err == NULL)
        return -1;
    char msg[sizeof err->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (node == NULL)
        return sl_err_set(err, SL_ECONFIG, "%s: %s", doc->name, msg);
    return sl_err_set(err, SL_ECONFIG, "%s:%zu:%zu: %s", doc->name, node->start_mark.line + 1,
                      node->start_mark.column + 1, msg);
}

/* Writes what node is, for "got …": 'text' (cut, control characters
 * replaced), null, a mapping, a list. */
static const char *describe(const sl_ynode *node, char *buf, size_t n)
{
    switch (sl_ynode_kind(node)) {
    case SL_YNULL: return "null";
    case SL_YMAP: return "a mapping";
    case SL_YSEQ: return "a list";
    case SL_YSCALAR: break;
    }
    const unsigned char *s = node->data.scalar.value;
    size_t len = node->data.scalar.length, cut = len > 40 ? 40 : len;
    while (cut < len && cut > 0 && (s[cut] & 0xC0) == 0x80)
        cut--;   /* do not split a UTF-8 sequence */
    sl_buf b = SL_BUF_INIT;
    sl_buf_putc(&b, '\'');
    for (size_t i = 0; i < cut; i++)
        sl_buf_putc(&b, s[i] < 0x20 || s[i] == 0x7f ? '?' : (char)s[i]);
    sl_buf_puts(&b, cut < len ? "...'" : "'");
    snprintf(buf, n, "%s", sl_buf_str(&b));
    sl_buf_free(&b);
    return buf;
}

static int type_error(const sl_ydoc *doc, const sl_ynode *node, const char *what,
                      const char *expected, sl_err *err)
{
    char buf[64];
    const char *got = describe(node, buf, sizeof buf);
    if (what == NULL)
        return sl_ydoc_errorf(doc, node, err, "expected %s, got %s", expected, got);
    return sl_ydoc_errorf(doc, node, err, "'%s' must be %s, got %s", what, expected, got);
}

/* ---- loading ------------------------------------------------------------ */

/* libyaml's reader reports a byte offset rather than a mark; turn it into a
 * 1-based line and column (in characters, like libyaml's marks). */
static void offset_position(const char *text, size_t len, size_t off, size_t *line, size_t *col)
{
    *line = 1;
    *col = 1;
    for (size_t i = 0; i < off && i < len; i++) {
        if (text[i] == '\n') {
            (*line)++;
            *col = 1;
        } else if (((unsigned char)text[i] & 0xC0) != 0x80) {
            (*col)++;
        }
    }
}

static int parse_error(const char *name, const yaml_parser_t *p, const char *text, size_t len,
                       sl_err *err)
{
    if (p->error == YAML_MEMORY_ERROR)
        oom();
    const char *problem = p->problem ? p->problem : "cannot parse";
    size_t line, col;
    if (p->error == YAML_READER_ERROR) {
        offset_position(text, len, p->problem_offset, &line, &col);
        if (p->problem_value != -1)
            return sl_err_set(err, SL_ECONFIG, "%s:%zu:%zu: %s (0x%X)", name, line, col, problem,
                              (unsigned)p->problem_value);
        return sl_err_set(err, SL_ECONFIG, "%s:%zu:%zu: %s", name, line, col, problem);
    }
    line = p->problem_mark.line + 1;
    col = p->problem_mark.column + 1;
    if (p->context)
        return sl_err_set(err, SL_ECONFIG, "%s:%zu:%zu: %s (%s at line %zu, column %zu)", name,
                          line, col, problem, p->context, p->context_mark.line + 1,
                          p->context_mark.column + 1);
    return sl_err_set(err, SL_ECONFIG, "%s:%zu:%zu: %s", name, line, col, problem);
}

/* Depth-first walk from node at path depth `depth`, rejecting cycles and
 * paths deeper than MAX_DEPTH.  state: 0 unseen, 1 on the current path,
 * 2 done with height[] known, so shared subtrees are walked once. */
static int check_graph(const sl_ydoc *doc, const sl_ynode *node, size_t depth,
                       unsigned char *state, size_t *height, sl_err *err)
{
    size_t i = node_index(doc, node);
    if (state[i] == 1)
        return sl_ydoc_errorf(doc, node, err, "recursive alias: this node contains itself");
    /* a node at depth d of height h reaches level d + h - 1 */
    if (depth + (state[i] == 2 ? height[i] - 1 : 0) > MAX_DEPTH)
        return sl_ydoc_errorf(doc, node, err, "nested more than %d levels deep", MAX_DEPTH);
    if (state[i] == 2)
        return 0;
    state[i] = 1;
    size_t h = 0, sub;
    if (node->type == YAML_SEQUENCE_NODE) {
        for (yaml_node_item_t *it = node->data.sequence.items.start;
             it < node->data.sequence.items.top; it++) {
            const sl_ynode *child = node_at(doc, *it);
            if (check_graph(doc, child, depth + 1, state, height, err) < 0)
                return -1;
            sub = height[node_index(doc, child)];
            h = sub > h ? sub : h;
        }
    } else if (node->type == YAML_MAPPING_NODE) {
        for (yaml_node_pair_t *p = node->data.mapping.pairs.start;
             p < node->data.mapping.pairs.top; p++) {
            const sl_ynode *kv[2] = { node_at(doc, p->key), node_at(doc, p->value) };
            for (int k = 0; k < 2; k++) {
                if (check_graph(doc, kv[k], depth + 1, state, height, err) < 0)
                    return -1;
                sub = height[node_index(doc, kv[k])];
                h = sub > h ? sub : h;
            }
        }
    }
    height[i] = h + 1;
    state[i] = 2;
    return 0;
}

sl_ydoc *sl_ydoc_load_string(const char *name, const char *text, size_t len, sl_err *err)
{
    yaml_parser_t parser;
    yaml_document_t extra;
    unsigned char *state = NULL;
    size_t *height = NULL;
    sl_ydoc *doc = sl_xcalloc(1, sizeof *doc);
    doc->name = sl_xstrdup(name);

    if (!yaml_parser_initialize(&parser))
        oom();
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    if (!yaml_parser_load(&parser, &doc->doc)) {
        parse_error(name, &parser, text, len, err);
        goto fail;
    }
    doc->loaded = true;
    /* yaml_parser_load reads one document; a second one would be silently
     * ignored, so read on and refuse it. */
    if (!yaml_parser_load(&parser, &extra)) {
        parse_error(name, &parser, text, len, err);
        goto fail;
    }
    const yaml_node_t *second = yaml_document_get_root_node(&extra);
    if (second != NULL) {
        sl_err_set(err, SL_ECONFIG, "%s:%zu:%zu: expected a single document, found another",
                   name, second->start_mark.line + 1, second->start_mark.column + 1);
        yaml_document_delete(&extra);
        goto fail;
    }
    yaml_document_delete(&extra);

    doc->nnodes = (size_t)(doc->doc.nodes.top - doc->doc.nodes.start);
    doc->slots = sl_xcalloc(doc->nnodes, sizeof *doc->slots);
    const sl_ynode *root = sl_ydoc_root(doc);
    if (root != NULL) {
        state = sl_xcalloc(doc->nnodes, sizeof *state);
        height = sl_xcalloc(doc->nnodes, sizeof *height);
        if (check_graph(doc, root, 1, state, height, err) < 0)
            goto fail;
    }
    free(state);
    free(height);
    yaml_parser_delete(&parser);
    return doc;

fail:
    free(state);
    free(height);
    yaml_parser_delete(&parser);
    sl_ydoc_free(doc);
    return NULL;
}

sl_ydoc *sl_ydoc_load_file(const char *path, sl_err *err)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        sl_err_set(err, SL_ECONFIG, "open %s: %s", path, strerror(errno));
        return NULL;
    }
    sl_buf text = SL_BUF_INIT;
    char chunk[8192];
    size_t got;
    while ((got = fread(chunk, 1, sizeof chunk, f)) > 0)
        sl_buf_append(&text, chunk, got);
    int read_errno = errno;
    sl_ydoc *doc = NULL;
    if (ferror(f))
        sl_err_set(err, SL_ECONFIG, "read %s: %s", path, strerror(read_errno));
    else
        doc = sl_ydoc_load_string(path, sl_buf_str(&text), text.len, err);
    fclose(f);
    sl_buf_free(&text);
    return doc;
}

void sl_ydoc_free(sl_ydoc *doc)
{
    if (doc == NULL)
        return;
    for (size_t i = 0; i < doc->nnodes; i++)
        free(doc->slots[i].items);
    free(doc->slots);
    if (doc->loaded)
        yaml_document_delete(&doc->doc);
    free(doc->name);
    free(doc);
}

const char *sl_ydoc_name(const sl_ydoc *doc) { return doc->name; }

const sl_ynode *sl_ydoc_root(const sl_ydoc *doc)
{
    return yaml_document_get_root_node((yaml_document_t *)&doc->doc);
}

/* ---- nodes -------------------------------------------------------------- */

sl_ykind sl_ynode_kind(const sl_ynode *node)
{
    switch (node->type) {
    case YAML_MAPPING_NODE: return SL_YMAP;
    case YAML_SEQUENCE_NODE: return SL_YSEQ;
    default: break;
    }
    const char *s = (const char *)node->data.scalar.value;
    if (node->tag && strcmp((const char *)node->tag, YAML_NULL_TAG) == 0)
        return SL_YNULL;
    /* Only a plain scalar can be null: "" and "~" quoted are strings. */
    if (node->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
        (strcmp(s, "") == 0 || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 ||
         strcmp(s, "Null") == 0 || strcmp(s, "NULL") == 0))
        return SL_YNULL;
    return SL_YSCALAR;
}

const char *sl_ynode_text(const sl_ynode *node)
{
    return node->type == YAML_SCALAR_NODE ? (const char *)node->data.scalar.value : NULL;
}

static bool is_merge_key(const sl_ynode *key)
{
    if (key->type != YAML_SCALAR_NODE)
        return false;
    if (key->tag && strcmp((const char *)key->tag, MERGE_TAG) == 0)
        return true;
    return key->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
           strcmp((const char *)key->data.scalar.value, "<<") == 0;
}

static bool same_scalar(const sl_ynode *a, const sl_ynode *b)
{
    return a->data.scalar.length == b->data.scalar.length &&
           memcmp(a->data.scalar.value, b->data.scalar.value, a->data.scalar.length) == 0;
}

/* True if map (unresolved) writes key itself, not through '<<'. */
static bool has_own_key(const sl_ydoc *doc, const sl_ynode *map, const sl_ynode *key)
{
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
        const sl_ynode *k = node_at(doc, p->key);
        if (!is_merge_key(k) && same_scalar(k, key))
            return true;
    }
    return false;
}

typedef struct pairs {
    sl_ypair *v;
    size_t n, cap;
} pairs;

static void pairs_push(pairs *ps, sl_ypair p)
{
    if (ps->n == ps->cap) {
        ps->cap = ps->cap ? ps->cap * 2 : 8;
        ps->v = sl_xrealloc(ps->v, ps->cap * sizeof *ps->v);
    }
    ps->v[ps->n++] = p;
}

static int resolve_map(sl_ydoc *doc, const sl_ynode *map, sl_err *err);

/* Appends to out the pairs that the '<<' value `value` brings into map:
 * keys map does not write itself, and among the merged mappings the first
 * one to have a key wins. */
static int merge_into(sl_ydoc *doc, const sl_ynode *map, const sl_ynode *value, pairs *out,
                      sl_err *err)
{
    static const char *const need = "merge key '<<' needs a mapping or a list of mappings";
    char got[64];
    const sl_ynode *one[1] = { value };
    const sl_ynode *const *src = one;
    size_t nsrc = 1, first = out->n;

    if (sl_ynode_kind(value) == SL_YSEQ) {
        sl_yseq seq;
        if (sl_ydoc_seq(doc, value, NULL, &seq, err) < 0)
            return -1;
        src = seq.items;
        nsrc = seq.n;
    }
    for (size_t s = 0; s < nsrc; s++) {
        if (sl_ynode_kind(src[s]) != SL_YMAP)
            return sl_ydoc_errorf(doc, src[s], err, "%s, got %s", need,
                                  describe(src[s], got, sizeof got));
        if (resolve_map(doc, src[s], err) < 0)
            return -1;
        const slot *from = &doc->slots[node_index(doc, src[s])];
        const sl_ypair *fp = from->items;
        for (size_t i = 0; i < from->n; i++) {
            bool taken = has_own_key(doc, map, fp[i].key);
            for (size_t j = first; j < out->n && !taken; j++)
                taken = same_scalar(out->v[j].key, fp[i].key);
            if (!taken)
                pairs_push(out, fp[i]);
        }
    }
    return 0;
}

/* Fills map's slot with its pairs, merge keys resolved. */
static int resolve_map(sl_ydoc *doc, const sl_ynode *map, sl_err *err)
{
    slot *s = &doc->slots[node_index(doc, map)];
    if (s->done)
        return 0;
    yaml_node_pair_t *start = map->data.mapping.pairs.start, *top = map->data.mapping.pairs.top;
    const sl_ynode *merge = NULL;
    char got[64];
    pairs out = { 0 };

    for (yaml_node_pair_t *p = start; p < top; p++) {
        const sl_ynode *key = node_at(doc, p->key);
        if (key->type != YAML_SCALAR_NODE) {
            sl_ydoc_errorf(doc, key, err, "mapping keys must be scalars, got %s",
                           describe(key, got, sizeof got));
            goto fail;
        }
        if (is_merge_key(key)) {
            if (merge != NULL) {
                sl_ydoc_errorf(doc, key, err, "duplicate merge key '<<' (first at line %zu)",
                               merge->start_mark.line + 1);
                goto fail;
            }
            merge = key;
            continue;
        }
        for (yaml_node_pair_t *q = start; q < p; q++) {
            const sl_ynode *prev = node_at(doc, q->key);
            if (!is_merge_key(prev) && same_scalar(prev, key)) {
                sl_ydoc_errorf(doc, key, err, "duplicate key %s (first at line %zu)",
                               describe(key, got, sizeof got), prev->start_mark.line + 1);
                goto fail;
            }
        }
    }
    for (yaml_node_pair_t *p = start; p < top; p++) {
        const sl_ynode *key = node_at(doc, p->key), *value = node_at(doc, p->value);
        if (!is_merge_key(key))
            pairs_push(&out, (sl_ypair){ sl_ynode_text(key), key, value });
        else if (merge_into(doc, map, value, &out, err) < 0)
            goto fail;
    }
    s->items = out.v;
    s->n = out.n;
    s->done = true;
    return 0;

fail:
    free(out.v);
    return -1;
}

int sl_ydoc_map(sl_ydoc *doc, const sl_ynode *node, const char *what, sl_ymap *out, sl_err *err)
{
    switch (sl_ynode_kind(node)) {
    case SL_YNULL:
        *out = (sl_ymap){ NULL, 0 };
        return 0;
    case SL_YMAP:
        break;
    default:
        return type_error(doc, node, what, "a mapping", err);
    }
    if (resolve_map(doc, node, err) < 0)
        return -1;
    const slot *s = &doc->slots[node_index(doc, node)];
    *out = (sl_ymap){ s->items, s->n };
    return 0;
}

int sl_ydoc_seq(sl_ydoc *doc, const sl_ynode *node, const char *what, sl_yseq *out, sl_err *err)
{
    switch (sl_ynode_kind(node)) {
    case SL_YNULL:
        *out = (sl_yseq){ NULL, 0 };
        return 0;
    case SL_YSEQ:
        break;
    default:
        return type_error(doc, node, what, "a list", err);
    }
    slot *s = &doc->slots[node_index(doc, node)];
    if (!s->done) {
        yaml_node_item_t *start = node->data.sequence.items.start;
        size_t n = (size_t)(node->data.sequence.items.top - start);
        const sl_ynode **items = sl_xcalloc(n, sizeof *items);
        for (size_t i = 0; i < n; i++)
            items[i] = node_at(doc, start[i]);
        s->items = items;
        s->n = n;
        s->done = true;
    }
    *out = (sl_yseq){ (const sl_ynode *const *)s->items, s->n };
    return 0;
}

/* ---- typed scalars ------------------------------------------------------ */

int sl_ydoc_str(const sl_ydoc *doc, const sl_ynode *node, const char *what,
                const char **out, sl_err *err)
{
    if (sl_ynode_kind(node) != SL_YSCALAR)
        return type_error(doc, node, what, "a string", err);
    const char *s = sl_ynode_text(node);
    if (strlen(s) != node->data.scalar.length)
        return sl_ydoc_errorf(doc, node, err, "'%s' must not contain a NUL byte",
                              what ? what : "value");
    *out = s;
    return 0;
}

int sl_ydoc_bool(const sl_ydoc *doc, const sl_ynode *node, const char *what,
                 bool *out, sl_err *err)
{
    static const struct { const char *word; bool value; } words[] = {
        { "true", true },  { "True", true },   { "TRUE", true },
        { "yes", true },   { "Yes", true },    { "YES", true },
        { "on", true },    { "On", true },     { "ON", true },
        { "false", false }, { "False", false }, { "FALSE", false },
        { "no", false },   { "No", false },    { "NO", false },
        { "off", false },  { "Off", false },   { "OFF", false },
    };
    if (sl_ynode_kind(node) == SL_YSCALAR) {
        for (size_t i = 0; i < sizeof words / sizeof words[0]; i++) {
            if (strcmp(sl_ynode_text(node), words[i].word) == 0) {
                *out = words[i].value;
                return 0;
            }
        }
    }
    return type_error(doc, node, what, "true or false", err);
}

int sl_ydoc_int(const sl_ydoc *doc, const sl_ynode *node, const char *what,
                int64_t min, int64_t max, int64_t *out, sl_err *err)
{
    char got[64];
    if (sl_ynode_kind(node) != SL_YSCALAR)
        return type_error(doc, node, what, "an integer", err);
    const char *s = sl_ynode_text(node), *digits = s + (*s == '-' || *s == '+');
    if (*digits == '\0' || strspn(digits, "0123456789") != strlen(digits))
        return type_error(doc, node, what, "an integer", err);
    errno = 0;
    long long v = strtoll(s, NULL, 10);
    if (errno == ERANGE || v < min || v > max)
        return sl_ydoc_errorf(doc, node, err, "'%s' must be between %" PRId64 " and %" PRId64
                              ", got %s", what ? what : "value", min, max,
                              describe(node, got, sizeof got));
    *out = v;
    return 0;
}

int sl_ydoc_duration(const sl_ydoc *doc, const sl_ynode *node, const char *what,
                     int64_t min_ms, int64_t max_ms, int64_t *out, sl_err *err)
{
    char lo[32], hi[32], got[64];
    int64_t ms;
    sl_err perr;
    if (sl_ynode_kind(node) != SL_YSCALAR)
        return type_error(doc, node, what, "a duration", err);
    if (sl_duration_parse(sl_ynode_text(node), &ms, &perr) < 0)
        return sl_ydoc_errorf(doc, node, err, "'%s': %s", what ? what : "value", perr.msg);
    if (ms < min_ms || ms > max_ms) {
        sl_duration_format(min_ms, lo, sizeof lo);
        sl_duration_format(max_ms, hi, sizeof hi);
        return sl_ydoc_errorf(doc, node, err, "'%s' must be between %s and %s, got %s",
                              what ? what : "value", lo, hi, describe(node, got, sizeof got));
    }
    *out = ms;
    return 0;
}

/* ---- error lists -------------------------------------------------------- */

void sl_yerrors_add(sl_yerrors *list, const sl_err *err)
{
    list->msgs = sl_xrealloc(list->msgs, (list->n + 1) * sizeof *list->msgs);
    list->msgs[list->n++] = sl_xstrdup(err->msg);
}

void sl_yerrors_free(sl_yerrors *list)
{
    for (size_t i = 0; i < list->n; i++)
        free(list->msgs[i]);
    free(list->msgs);
    list->msgs = NULL;
    list->n = 0;
}
