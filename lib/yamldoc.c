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
#include <math.h>
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

/* What the load-time walk keeps per node, in node order. */
typedef struct walk {
    unsigned char *state;   /* 0 unseen, 1 on the current path, 2 done */
    size_t *height;         /* state 2: levels from the node down, itself included */
    size_t *size;           /* state 2: nodes below and including it, aliases expanded
                               (saturates just above SL_YAML_MAX_NODES) */
} walk;

static size_t add_sat(size_t a, size_t b)
{
    size_t s = a + b;
    return s > SL_YAML_MAX_NODES ? SL_YAML_MAX_NODES + 1 : s;
}

/* A mapping key with a NUL byte would compare equal, through strcmp, to
 * the same key without it; libyaml keeps both, so refuse it here. */
static int check_key(const sl_ydoc *doc, const sl_ynode *key, sl_err *err)
{
    char got[64];
    if (key->type == YAML_SCALAR_NODE &&
        strlen((const char *)key->data.scalar.value) != key->data.scalar.length)
        return sl_ydoc_errorf(doc, key, err, "mapping key %s contains a NUL byte",
                              describe(key, got, sizeof got));
    return 0;
}

/* Depth-first walk from node at path depth `depth`, rejecting cycles,
 * paths deeper than MAX_DEPTH, NUL bytes in keys, and expansion beyond
 * SL_YAML_MAX_NODES; shared subtrees are walked once. */
static int check_graph(const sl_ydoc *doc, const sl_ynode *node, size_t depth, walk *w, sl_err *err)
{
    size_t i = node_index(doc, node);
    if (w->state[i] == 1)
        return sl_ydoc_errorf(doc, node, err, "recursive alias: this node contains itself");
    /* a node at depth d of height h reaches level d + h - 1 */
    if (depth + (w->state[i] == 2 ? w->height[i] - 1 : 0) > MAX_DEPTH)
        return sl_ydoc_errorf(doc, node, err, "nested more than %d levels deep", MAX_DEPTH);
    if (w->state[i] == 2)
        return 0;
    w->state[i] = 1;
    size_t h = 0, size = 1;
    const sl_ynode *kids[2];
    if (node->type == YAML_SEQUENCE_NODE) {
        for (yaml_node_item_t *it = node->data.sequence.items.start;
             it < node->data.sequence.items.top; it++) {
            kids[0] = node_at(doc, *it);
            if (check_graph(doc, kids[0], depth + 1, w, err) < 0)
                return -1;
            size_t k = node_index(doc, kids[0]);
            h = w->height[k] > h ? w->height[k] : h;
            size = add_sat(size, w->size[k]);
        }
    } else if (node->type == YAML_MAPPING_NODE) {
        for (yaml_node_pair_t *p = node->data.mapping.pairs.start;
             p < node->data.mapping.pairs.top; p++) {
            kids[0] = node_at(doc, p->key);
            kids[1] = node_at(doc, p->value);
            if (check_key(doc, kids[0], err) < 0)
                return -1;
            for (int c = 0; c < 2; c++) {
                if (check_graph(doc, kids[c], depth + 1, w, err) < 0)
                    return -1;
                size_t k = node_index(doc, kids[c]);
                h = w->height[k] > h ? w->height[k] : h;
                size = add_sat(size, w->size[k]);
            }
        }
    }
    /* The first node found too big is the deepest: where the fan-out is. */
    if (size > SL_YAML_MAX_NODES)
        return sl_ydoc_errorf(doc, node, err, "aliases expand this to more than %d nodes "
                              "(the limit of a document)", SL_YAML_MAX_NODES);
    w->height[i] = h + 1;
    w->size[i] = size;
    w->state[i] = 2;
    return 0;
}

sl_ydoc *sl_ydoc_load_string(const char *name, const char *text, size_t len, sl_err *err)
{
    yaml_parser_t parser;
    yaml_document_t extra;
    walk w = { NULL, NULL, NULL };
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
        w.state = sl_xcalloc(doc->nnodes, sizeof *w.state);
        w.height = sl_xcalloc(doc->nnodes, sizeof *w.height);
        w.size = sl_xcalloc(doc->nnodes, sizeof *w.size);
        if (check_graph(doc, root, 1, &w, err) < 0)
            goto fail;
    }
    free(w.state);
    free(w.height);
    free(w.size);
    yaml_parser_delete(&parser);
    return doc;

fail:
    free(w.state);
    free(w.height);
    free(w.size);
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

/* ---- the core schema ---------------------------------------------------- */

static bool one_of(const char *s, const char *const *words)
{
    for (; *words; words++) {
        if (strcmp(s, *words) == 0)
            return true;
    }
    return false;
}

bool sl_yscalar_bool(const char *text, bool *out)
{
    static const char *const yes[] = { "true", "True", "TRUE", NULL };
    static const char *const no[] = { "false", "False", "FALSE", NULL };
    if (one_of(text, yes))
        *out = true;
    else if (one_of(text, no))
        *out = false;
    else
        return false;
    return true;
}

/* Core-schema integer syntax: [-+]?[0-9]+, 0o[0-7]+, 0x[0-9a-fA-F]+. */
static bool int_syntax(const char *s, int *base, const char **digits)
{
    if (s[0] == '0' && (s[1] == 'o' || s[1] == 'x')) {
        *base = s[1] == 'o' ? 8 : 16;
        *digits = s + 2;
        const char *set = *base == 8 ? "01234567" : "0123456789abcdefABCDEF";
        return **digits != '\0' && strspn(*digits, set) == strlen(*digits);
    }
    *base = 10;
    *digits = s;
    s += (*s == '-' || *s == '+');
    return *s != '\0' && strspn(s, "0123456789") == strlen(s);
}

bool sl_yscalar_int(const char *text, int64_t *out)
{
    int base;
    const char *digits;
    if (!int_syntax(text, &base, &digits))
        return false;
    char *end;
    errno = 0;
    long long v = base == 10 ? strtoll(digits, &end, 10) : 0;
    if (base != 10) {
        unsigned long long u = strtoull(digits, &end, base);
        if (errno == 0 && u > INT64_MAX)
            errno = ERANGE;
        v = (long long)(errno ? 0 : u);
    }
    if (errno == ERANGE || *end != '\0')
        return false;
    *out = v;
    return true;
}

/* Core-schema float syntax: [-+]?(.[0-9]+|[0-9]+(.[0-9]*)?)([eE][-+]?[0-9]+)?
 * and the specials [-+]?.inf and .nan in three spellings each. */
static bool float_syntax(const char *s)
{
    static const char *const special[] = { ".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF",
                                           "-.inf", "-.Inf", "-.INF", ".nan", ".NaN", ".NAN", NULL };
    if (one_of(s, special))
        return true;
    s += (*s == '-' || *s == '+');
    size_t ip = strspn(s, "0123456789");
    s += ip;
    size_t fp = 0;
    if (*s == '.') {
        fp = strspn(s + 1, "0123456789");
        s += 1 + fp;
    } else if (ip == 0) {
        return false;
    }
    if (ip == 0 && fp == 0)
        return false;
    if (*s == 'e' || *s == 'E') {
        s++;
        s += (*s == '-' || *s == '+');
        size_t ep = strspn(s, "0123456789");
        if (ep == 0)
            return false;
        s += ep;
    }
    return *s == '\0';
}

bool sl_yscalar_float(const char *text, double *out)
{
    if (!float_syntax(text))
        return false;
    const char *t = text + (*text == '-' || *text == '+');
    if (t[0] == '.' && (t[1] == 'i' || t[1] == 'I'))
        *out = *text == '-' ? -HUGE_VAL : HUGE_VAL;
    else if (t[0] == '.' && (t[1] == 'n' || t[1] == 'N'))
        *out = NAN;
    else
        *out = strtod(text, NULL);   /* overflow gives ±HUGE_VAL, as .inf would */
    return true;
}

sl_ytype sl_ynode_type(const sl_ynode *node)
{
    switch (sl_ynode_kind(node)) {
    case SL_YNULL: return SL_YT_NULL;
    case SL_YMAP: return SL_YT_MAP;
    case SL_YSEQ: return SL_YT_SEQ;
    case SL_YSCALAR: break;
    }
    if (node->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return SL_YT_STR;   /* quoted or block: always a string */
    const char *s = sl_ynode_text(node);
    bool b;
    int base;
    const char *digits;
    if (sl_yscalar_bool(s, &b))
        return SL_YT_BOOL;
    if (int_syntax(s, &base, &digits))
        return SL_YT_INT;
    if (float_syntax(s))
        return SL_YT_FLOAT;
    return SL_YT_STR;
}

/* ---- typed scalars, continued ------------------------------------------- */

int sl_ydoc_bool(const sl_ydoc *doc, const sl_ynode *node, const char *what,
                 bool *out, sl_err *err)
{
    static const char *const yaml11[] = { "yes", "Yes", "YES", "no", "No", "NO", "on", "On",
                                          "ON", "off", "Off", "OFF", "y", "Y", "n", "N", NULL };
    if (sl_ynode_kind(node) == SL_YSCALAR) {
        if (sl_yscalar_bool(sl_ynode_text(node), out))
            return 0;
        if (one_of(sl_ynode_text(node), yaml11)) {
            char got[64];
            return sl_ydoc_errorf(doc, node, err, "'%s' must be true or false, got %s (YAML 1.2: "
                                  "only true and false are booleans)", what ? what : "value",
                                  describe(node, got, sizeof got));
        }
    }
    return type_error(doc, node, what, "true or false", err);
}

int sl_ydoc_int(const sl_ydoc *doc, const sl_ynode *node, const char *what,
                int64_t min, int64_t max, int64_t *out, sl_err *err)
{
    char got[64];
    int base;
    const char *digits;
    int64_t v;
    if (sl_ynode_kind(node) != SL_YSCALAR || !int_syntax(sl_ynode_text(node), &base, &digits))
        return type_error(doc, node, what, "an integer", err);
    if (!sl_yscalar_int(sl_ynode_text(node), &v) || v < min || v > max)
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
