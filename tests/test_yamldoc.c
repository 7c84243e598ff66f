/* test_yamldoc.c: the YAML document layer (lib/yamldoc.c): merge keys,
 * scalars as written, typed readers and the positions in their errors. */
#include <criterion/criterion.h>

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "buf.h"
#include "yamldoc.h"

static sl_ydoc *load(const char *text)
{
    sl_err err = { 0 };
    sl_ydoc *doc = sl_ydoc_load_string("t.yaml", text, strlen(text), &err);
    cr_assert_not_null(doc, "load failed: %s", err.msg);
    return doc;
}

/* Asserts text fails to load with a message starting with prefix. */
static void load_bad(const char *text, const char *prefix, const char *why)
{
    sl_err err = { 0 };
    sl_ydoc *doc = sl_ydoc_load_string("t.yaml", text, strlen(text), &err);
    cr_assert_null(doc, "loaded: %s", text);
    cr_assert_eq(err.code, SL_ECONFIG);
    cr_assert(strncmp(err.msg, prefix, strlen(prefix)) == 0, "\"%s\" does not start with \"%s\"",
              err.msg, prefix);
    cr_assert(strstr(err.msg, why) != NULL, "\"%s\" lacks \"%s\"", err.msg, why);
}

static void assert_msg(const sl_err *err, const char *prefix, const char *why)
{
    cr_assert_eq(err->code, SL_ECONFIG);
    cr_assert(strncmp(err->msg, prefix, strlen(prefix)) == 0, "\"%s\" does not start with \"%s\"",
              err->msg, prefix);
    cr_assert(strstr(err->msg, why) != NULL, "\"%s\" lacks \"%s\"", err->msg, why);
}

/* Value of key in m, or NULL. */
static const sl_ynode *get(const sl_ymap *m, const char *key)
{
    for (size_t i = 0; i < m->n; i++)
        if (strcmp(m->pairs[i].name, key) == 0)
            return m->pairs[i].value;
    return NULL;
}

static sl_ymap map_of(sl_ydoc *doc, const sl_ynode *node)
{
    sl_ymap m;
    sl_err err = { 0 };
    cr_assert_eq(sl_ydoc_map(doc, node, "m", &m, &err), 0, "%s", err.msg);
    return m;
}

static const char *text_of(const sl_ymap *m, const char *key)
{
    const sl_ynode *n = get(m, key);
    cr_assert_not_null(n, "no key '%s'", key);
    return sl_ynode_text(n);
}

Test(yamldoc, merge_single_mapping_explicit_keys_win)
{
    sl_ydoc *doc = load("base: &b {a: 1, b: 2, c: 3}\n"
                        "x:\n"
                        "  b: own-before\n"
                        "  <<: *b\n"
                        "  c: own-after\n");
    sl_ymap top = map_of(doc, sl_ydoc_root(doc));
    sl_ymap x = map_of(doc, get(&top, "x"));
    cr_assert_eq(x.n, 3);
    /* document order, merged keys where '<<' stands */
    cr_assert_str_eq(x.pairs[0].name, "b");
    cr_assert_str_eq(x.pairs[1].name, "a");
    cr_assert_str_eq(x.pairs[2].name, "c");
    cr_assert_str_eq(text_of(&x, "a"), "1");
    cr_assert_str_eq(text_of(&x, "b"), "own-before");
    cr_assert_str_eq(text_of(&x, "c"), "own-after");
    sl_ydoc_free(doc);
}

Test(yamldoc, merge_list_earlier_wins_and_nested_merges)
{
    sl_ydoc *doc = load("one: &one {a: one-a, b: one-b}\n"
                        "two: &two {b: two-b, c: two-c}\n"
                        "deep: &deep {<<: *two, d: deep-d, c: deep-c}\n"
                        "x: {<<: [*one, *deep], a: x-a}\n");
    sl_ymap top = map_of(doc, sl_ydoc_root(doc));
    sl_ymap x = map_of(doc, get(&top, "x"));
    cr_assert_eq(x.n, 4);
    cr_assert_str_eq(text_of(&x, "a"), "x-a");
    cr_assert_str_eq(text_of(&x, "b"), "one-b");   /* *one is before *deep */
    cr_assert_str_eq(text_of(&x, "c"), "deep-c");  /* deep's own c beats its merged two */
    cr_assert_str_eq(text_of(&x, "d"), "deep-d");
    /* the anchored mapping still reads as itself */
    sl_ymap deep = map_of(doc, get(&top, "deep"));
    cr_assert_eq(deep.n, 3);
    cr_assert_str_eq(text_of(&deep, "b"), "two-b");
    sl_ydoc_free(doc);
}

Test(yamldoc, merge_errors_point_at_the_value)
{
    sl_err err = { 0 };
    sl_ymap m;
    sl_ydoc *doc = load("a: 1\nx:\n  <<: 5\n");
    sl_ymap top = map_of(doc, sl_ydoc_root(doc));
    cr_assert_eq(sl_ydoc_map(doc, get(&top, "x"), "x", &m, &err), -1);
    assert_msg(&err, "t.yaml:3:7: ", "merge key '<<' needs a mapping or a list of mappings, got '5'");
    sl_ydoc_free(doc);

    doc = load("b: &b {k: v}\nx:\n  <<: [*b,\n        [1]]\n");
    top = map_of(doc, sl_ydoc_root(doc));
    cr_assert_eq(sl_ydoc_map(doc, get(&top, "x"), "x", &m, &err), -1);
    assert_msg(&err, "t.yaml:4:9: ", "got a list");
    sl_ydoc_free(doc);
}

Test(yamldoc, quoted_merge_key_is_an_ordinary_key)
{
    sl_ydoc *doc = load("\"<<\": {a: 1}\n");
    sl_ymap top = map_of(doc, sl_ydoc_root(doc));
    cr_assert_eq(top.n, 1);
    cr_assert_str_eq(top.pairs[0].name, "<<");
    sl_ydoc_free(doc);
}

Test(yamldoc, duplicate_and_complex_keys)
{
    sl_err err = { 0 };
    sl_ymap m;
    sl_ydoc *doc = load("a: 1\nb: 2\na: 3\n");
    cr_assert_eq(sl_ydoc_map(doc, sl_ydoc_root(doc), NULL, &m, &err), -1);
    assert_msg(&err, "t.yaml:3:1: ", "duplicate key 'a' (first at line 1)");
    sl_ydoc_free(doc);

    doc = load("? [x]\n: 1\n");
    cr_assert_eq(sl_ydoc_map(doc, sl_ydoc_root(doc), NULL, &m, &err), -1);
    assert_msg(&err, "t.yaml:1:3: ", "mapping keys must be scalars, got a list");
    sl_ydoc_free(doc);
}

Test(yamldoc, block_and_flow_scalars_as_written)
{
    sl_ydoc *doc = load("lit: |\n  line one\n    indented\n  line three\n"
                        "folded: >-\n  a\n  b\n\n  c\n"
                        "strip: |-\n  no newline\n"
                        "flow: {s: 'it''s', d: \"tab\\there\", l: [1, two]}\n");
    sl_ymap top = map_of(doc, sl_ydoc_root(doc));
    cr_assert_str_eq(text_of(&top, "lit"), "line one\n  indented\nline three\n");
    cr_assert_str_eq(text_of(&top, "folded"), "a b\nc");
    cr_assert_str_eq(text_of(&top, "strip"), "no newline");
    sl_ymap flow = map_of(doc, get(&top, "flow"));
    cr_assert_str_eq(text_of(&flow, "s"), "it's");
    cr_assert_str_eq(text_of(&flow, "d"), "tab\there");
    sl_yseq l;
    sl_err err = { 0 };
    cr_assert_eq(sl_ydoc_seq(doc, get(&flow, "l"), "l", &l, &err), 0);
    cr_assert_eq(l.n, 2);
    cr_assert_str_eq(sl_ynode_text(l.items[1]), "two");
    sl_ydoc_free(doc);
}

Test(yamldoc, null_reads_as_empty_collection)
{
    sl_ydoc *doc = load("a:\nb: ~\nc: ''\n");
    sl_ymap top = map_of(doc, sl_ydoc_root(doc));
    sl_ymap m;
    sl_yseq s;
    sl_err err = { 0 };
    cr_assert_eq(sl_ynode_kind(get(&top, "a")), SL_YNULL);
    cr_assert_eq(sl_ynode_kind(get(&top, "b")), SL_YNULL);
    cr_assert_eq(sl_ynode_kind(get(&top, "c")), SL_YSCALAR);   /* quoted: a string */
    cr_assert_eq(sl_ydoc_map(doc, get(&top, "a"), "a", &m, &err), 0);
    cr_assert_eq(m.n, 0);
    cr_assert_eq(sl_ydoc_seq(doc, get(&top, "b"), "b", &s, &err), 0);
    cr_assert_eq(s.n, 0);
    cr_assert_eq(sl_ydoc_seq(doc, get(&top, "c"), "c", &s, &err), -1);
    assert_msg(&err, "t.yaml:3:4: ", "'c' must be a list, got ''");
    sl_ydoc_free(doc);
}

Test(yamldoc, typed_scalars)
{
    sl_ydoc *doc = load("i: -42\nb1: true\nb2: FALSE\nd: 1m30s\ns: 8080\nh: 0x1F\no: 0o17\n");
    sl_ymap top = map_of(doc, sl_ydoc_root(doc));
    sl_err err = { 0 };
    int64_t v;
    bool b;
    const char *s;
    cr_assert_eq(sl_ydoc_int(doc, get(&top, "i"), "i", -100, 100, &v, &err), 0, "%s", err.msg);
    cr_assert_eq(v, -42);
    cr_assert_eq(sl_ydoc_int(doc, get(&top, "h"), "h", 0, 100, &v, &err), 0, "%s", err.msg);
    cr_assert_eq(v, 31);
    cr_assert_eq(sl_ydoc_int(doc, get(&top, "o"), "o", 0, 100, &v, &err), 0, "%s", err.msg);
    cr_assert_eq(v, 15);
    cr_assert_eq(sl_ydoc_bool(doc, get(&top, "b1"), "b1", &b, &err), 0);
    cr_assert(b);
    cr_assert_eq(sl_ydoc_bool(doc, get(&top, "b2"), "b2", &b, &err), 0);
    cr_assert(!b);
    cr_assert_eq(sl_ydoc_duration(doc, get(&top, "d"), "d", 0, 3600000, &v, &err), 0, "%s", err.msg);
    cr_assert_eq(v, 90000);
    cr_assert_eq(sl_ydoc_str(doc, get(&top, "s"), "s", &s, &err), 0);
    cr_assert_str_eq(s, "8080");
    sl_ydoc_free(doc);
}

Test(yamldoc, typed_scalar_errors_with_positions)
{
    sl_ydoc *doc = load("top:\n"
                        "  i: 12x\n"
                        "  r:   5000\n"
                        "  big: 99999999999999999999\n"
                        "  b: maybe\n"
                        "  d: 90\n"
                        "  dr: 2h\n"
                        "  m: {a: 1}\n"
                        "  n: \"a\\0b\"\n");
    sl_ymap top = map_of(doc, sl_ydoc_root(doc));
    sl_ymap t = map_of(doc, get(&top, "top"));
    sl_err err = { 0 };
    int64_t v = 7;
    bool b;
    const char *s;

    cr_assert_eq(sl_ydoc_int(doc, get(&t, "i"), "top.i", 0, 10, &v, &err), -1);
    assert_msg(&err, "t.yaml:2:6: ", "'top.i' must be an integer, got '12x'");
    cr_assert_eq(sl_ydoc_int(doc, get(&t, "r"), "top.r", 1, 1000, &v, &err), -1);
    assert_msg(&err, "t.yaml:3:8: ", "'top.r' must be between 1 and 1000, got '5000'");
    cr_assert_eq(sl_ydoc_int(doc, get(&t, "big"), "top.big", 1, 1000, &v, &err), -1);
    assert_msg(&err, "t.yaml:4:8: ", "must be between 1 and 1000");
    cr_assert_eq(v, 7, "output written on failure");
    cr_assert_eq(sl_ydoc_bool(doc, get(&t, "b"), "top.b", &b, &err), -1);
    assert_msg(&err, "t.yaml:5:6: ", "'top.b' must be true or false, got 'maybe'");
    cr_assert_eq(sl_ydoc_duration(doc, get(&t, "d"), "top.d", 0, 1000, &v, &err), -1);
    assert_msg(&err, "t.yaml:6:6: ", "'top.d': ");
    cr_assert_eq(sl_ydoc_duration(doc, get(&t, "dr"), "top.dr", 1, 3600000, &v, &err), -1);
    assert_msg(&err, "t.yaml:7:7: ", "'top.dr' must be between 1ms and 1h, got '2h'");
    cr_assert_eq(sl_ydoc_int(doc, get(&t, "m"), "top.m", 0, 1, &v, &err), -1);
    assert_msg(&err, "t.yaml:8:6: ", "'top.m' must be an integer, got a mapping");
    cr_assert_eq(sl_ydoc_str(doc, get(&t, "m"), "top.m", &s, &err), -1);
    assert_msg(&err, "t.yaml:8:6: ", "'top.m' must be a string, got a mapping");
    cr_assert_eq(sl_ydoc_str(doc, get(&t, "n"), "top.n", &s, &err), -1);
    assert_msg(&err, "t.yaml:9:6: ", "NUL");
    sl_ydoc_free(doc);
}

Test(yamldoc, parse_errors)
{
    load_bad("a: 1\nb: [1, 2\n", "t.yaml:3:1: ", "did not find expected ',' or ']'");
    load_bad("a:\n  b: 1\n c: 2\n", "t.yaml:3:2: ", "did not find expected key");
    load_bad("a: *nowhere\n", "t.yaml:1:4: ", "found undefined alias");
    load_bad("a: 1\nb: \"\xff\"\n", "t.yaml:2:5: ", "invalid leading UTF-8 octet");
    load_bad("a: 1\n---\nb: 2\n", "t.yaml:3:1: ", "expected a single document");
    load_bad("a: &x [1, *x]\n", "t.yaml:1:4: ", "recursive alias");
}

Test(yamldoc, deep_nesting_is_refused)
{
    char text[400];
    memset(text, '[', 200);
    memset(text + 200, ']', 200);
    sl_err err = { 0 };
    sl_ydoc *doc = sl_ydoc_load_string("t.yaml", text, sizeof text, &err);
    cr_assert_null(doc);
    cr_assert(strstr(err.msg, "nested more than") != NULL, "%s", err.msg);

    /* aliases count: 3 levels of 50 via anchors make 150 */
    sl_buf b = SL_BUF_INIT;
    sl_buf_puts(&b, "a: &a ");
    for (int i = 0; i < 50; i++) sl_buf_putc(&b, '[');
    for (int i = 0; i < 50; i++) sl_buf_putc(&b, ']');
    sl_buf_puts(&b, "\nb: &b ");
    for (int i = 0; i < 50; i++) sl_buf_putc(&b, '[');
    sl_buf_puts(&b, "*a");
    for (int i = 0; i < 50; i++) sl_buf_putc(&b, ']');
    sl_buf_puts(&b, "\nc: ");
    for (int i = 0; i < 50; i++) sl_buf_putc(&b, '[');
    sl_buf_puts(&b, "*b");
    for (int i = 0; i < 50; i++) sl_buf_putc(&b, ']');
    sl_buf_putc(&b, '\n');
    doc = sl_ydoc_load_string("t.yaml", b.data, b.len, &err);
    cr_assert_null(doc);
    cr_assert(strstr(err.msg, "nested more than") != NULL, "%s", err.msg);
    sl_buf_free(&b);
}

Test(yamldoc, empty_documents_have_no_root)
{
    sl_ydoc *doc = load("");
    cr_assert_null(sl_ydoc_root(doc));
    sl_ydoc_free(doc);
    doc = load("# only\n# comments\n");
    cr_assert_null(sl_ydoc_root(doc));
    sl_ydoc_free(doc);
}

Test(yamldoc, errorf_and_error_list)
{
    sl_ydoc *doc = load("steps:\n  - id: a\n  - id: b\n");
    sl_ymap top = map_of(doc, sl_ydoc_root(doc));
    sl_yseq steps;
    sl_err err = { 0 };
    cr_assert_eq(sl_ydoc_seq(doc, get(&top, "steps"), "steps", &steps, &err), 0);
    sl_yerrors errors = SL_YERRORS_INIT;
    for (size_t i = 0; i < steps.n; i++) {
        sl_err e;
        cr_assert_eq(sl_ydoc_errorf(doc, steps.items[i], &e, "step %zu is wrong", i), -1);
        sl_yerrors_add(&errors, &e);
    }
    cr_assert_eq(sl_ydoc_errorf(doc, NULL, &err, "no pipeline"), -1);
    sl_yerrors_add(&errors, &err);
    cr_assert_eq(errors.n, 3);
    cr_assert_str_eq(errors.msgs[0], "t.yaml:2:5: step 0 is wrong");
    cr_assert_str_eq(errors.msgs[1], "t.yaml:3:5: step 1 is wrong");
    cr_assert_str_eq(errors.msgs[2], "t.yaml: no pipeline");
    sl_yerrors_free(&errors);
    cr_assert_eq(errors.n, 0);
    sl_ydoc_free(doc);
}

Test(yamldoc, load_file_errors_name_the_path)
{
    sl_err err = { 0 };
    cr_assert_null(sl_ydoc_load_file("/nonexistent/sluice/x.yaml", &err));
    cr_assert_str_eq(err.msg, "open /nonexistent/sluice/x.yaml: No such file or directory");
    cr_assert_null(sl_ydoc_load_file("/", &err));
    cr_assert_str_eq(err.msg, "read /: Is a directory");
}

/* YAML 1.2 core schema: the one typing rule of both loaders. */
Test(yamldoc, core_schema_scalar_types)
{
    static const struct { const char *text; sl_ytype type; } cases[] = {
        { "true", SL_YT_BOOL }, { "True", SL_YT_BOOL }, { "FALSE", SL_YT_BOOL },
        { "yes", SL_YT_STR }, { "No", SL_YT_STR }, { "on", SL_YT_STR }, { "OFF", SL_YT_STR },
        { "y", SL_YT_STR }, { "tRue", SL_YT_STR },
        { "12", SL_YT_INT }, { "-3", SL_YT_INT }, { "+5", SL_YT_INT }, { "012", SL_YT_INT },
        { "0x1F", SL_YT_INT }, { "0o17", SL_YT_INT }, { "0b101", SL_YT_STR }, { "-0x1", SL_YT_STR },
        { "1_000", SL_YT_STR },
        { "1.5", SL_YT_FLOAT }, { ".5", SL_YT_FLOAT }, { "5.", SL_YT_FLOAT }, { "2e3", SL_YT_FLOAT },
        { "-1.5E-3", SL_YT_FLOAT }, { ".inf", SL_YT_FLOAT }, { "-.Inf", SL_YT_FLOAT },
        { ".NaN", SL_YT_FLOAT }, { "1e", SL_YT_STR }, { ".", SL_YT_STR }, { "1.2.3", SL_YT_STR },
        { "~", SL_YT_NULL }, { "null", SL_YT_NULL }, { "", SL_YT_NULL }, { "1:30", SL_YT_STR },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char text[64];
        snprintf(text, sizeof text, "v: %s\nq: \"%s\"\n", cases[i].text, cases[i].text);
        sl_ydoc *doc = load(text);
        sl_ymap top = map_of(doc, sl_ydoc_root(doc));
        cr_assert_eq(sl_ynode_type(get(&top, "v")), cases[i].type, "plain '%s'", cases[i].text);
        cr_assert_eq(sl_ynode_type(get(&top, "q")), SL_YT_STR, "quoted '%s' is a string", cases[i].text);
        sl_ydoc_free(doc);
    }
    int64_t v;
    cr_assert(!sl_yscalar_int("9223372036854775808", &v), "beyond int64");
    cr_assert(sl_yscalar_int("-9223372036854775808", &v));
    cr_assert_eq(v, INT64_MIN);
    cr_assert(!sl_yscalar_int("0x8000000000000000", &v));
}

/* yes/no/on/off used to be booleans in the configuration and strings in
 * pipelines; now they are strings everywhere, and a boolean setting says why. */
Test(yamldoc, yaml11_booleans_are_refused_with_the_reason)
{
    sl_ydoc *doc = load("a: yes\nb: \"true\"\nc: off\n");
    sl_ymap top = map_of(doc, sl_ydoc_root(doc));
    sl_err err = { 0 };
    bool b = false;
    cr_assert_eq(sl_ydoc_bool(doc, get(&top, "a"), "a", &b, &err), -1);
    assert_msg(&err, "t.yaml:1:4: ", "'a' must be true or false, got 'yes' (YAML 1.2: only true and false "
               "are booleans)");
    cr_assert_eq(sl_ydoc_bool(doc, get(&top, "b"), "b", &b, &err), 0, "%s", err.msg);
    cr_assert(b);
    cr_assert_eq(sl_ydoc_bool(doc, get(&top, "c"), "c", &b, &err), -1);
    assert_msg(&err, "t.yaml:3:4: ", "got 'off'");
    sl_ydoc_free(doc);
}

/* A key repeated under a spelling that differs only after a NUL byte
 * ("approvers\0" beside approvers) looks like one key to strcmp: refused
 * at load, with its position, as is a plainly repeated key. */
Test(yamldoc, nul_in_keys_and_repeated_keys)
{
    static const char text[] = "top:\n  approvers: [a]\n  \"approvers\\0\": [b, c]\n";
    sl_err err = { 0 };
    sl_ydoc *doc = sl_ydoc_load_string("t.yaml", text, sizeof text - 1, &err);
    cr_assert_null(doc);
    cr_assert_str_eq(err.msg, "t.yaml:3:3: mapping key 'approvers?' contains a NUL byte");
    doc = load("a: 1\nb:\n  c: 1\n  d: 2\n  'c': 3\n");
    sl_ymap top = map_of(doc, sl_ydoc_root(doc));
    sl_ymap b;
    cr_assert_eq(sl_ydoc_map(doc, get(&top, "b"), "b", &b, &err), -1);
    cr_assert_str_eq(err.msg, "t.yaml:5:3: duplicate key 'c' (first at line 3)");
    sl_ydoc_free(doc);
}

/* "Billion laughs": each level lists the previous one ten times, so nine
 * levels in a few hundred bytes stand for 10^9 nodes.  Refused at load,
 * quickly, at the first node that expands past the limit. */
Test(yamldoc, alias_expansion_is_bounded, .timeout = 10)
{
    sl_buf b = SL_BUF_INIT;
    sl_buf_puts(&b, "a: &a [x, x, x, x, x, x, x, x, x, x]\n");
    for (char c = 'b'; c <= 'i'; c++)
        sl_buf_printf(&b, "%c: &%c [*%c, *%c, *%c, *%c, *%c, *%c, *%c, *%c, *%c, *%c]\n", c, c,
                      c - 1, c - 1, c - 1, c - 1, c - 1, c - 1, c - 1, c - 1, c - 1, c - 1);
    cr_assert_lt(b.len, 600);
    sl_err err = { 0 };
    sl_ydoc *doc = sl_ydoc_load_string("t.yaml", b.data, b.len, &err);
    cr_assert_null(doc);
    /* level e (10^5 x's, plus the lists) is the first over 100000 nodes */
    cr_assert_str_eq(err.msg, "t.yaml:5:4: aliases expand this to more than 100000 nodes (the limit "
                     "of a document)");
    sl_buf_free(&b);
    /* the same shape, small enough, loads */
    doc = load("a: &a [x, x]\nb: &b [*a, *a]\nc: [*b, *b]\n");
    sl_ydoc_free(doc);
}
