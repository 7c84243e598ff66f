/* test_audit.c: the audit trail anchored outside the database
 * (scheduler/audit.c, migration 006, `sluice audit`, `sluice break-glass`).
 *
 * Each test has a database of its own (it rewrites the chain the way a
 * database owner could) and real key pairs made with `sluice audit keygen`.
 * Decisions are made through the real functions, as login roles in the
 * runtime groups; verification runs the real `sluice audit verify`. */
#include "audit.h"
#include "buf.h"
#include "db.h"
#include "gate.h"
#include "harness.h"
#include "kindtest.h"
#include "mem.h"
#include "sign.h"

#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

TestSuite(audit, .timeout = 110);

typedef struct fixture {
    char db[96];
    char dir[32];
    char api[96];        /* login in sluice_api */
} fixture;

static void as_owner(const char *db, const char *sql)
{
    char *e = th_pg_try("sluice", db, sql);
    cr_assert_null(e, "%s: %s", sql, e);
}

/* Runs `sluice ARGS…` (NULL-terminated) against the fixture's database as user. */
static th_result sluice_as(const fixture *fx, const char *user, const char *first, ...)
{
    const char *argv[24] = { SLUICE_BIN, first };
    int n = 2;
    va_list ap;
    va_start(ap, first);
    const char *a;
    while ((a = va_arg(ap, const char *)) != NULL && n < 22)
        argv[n++] = a;
    va_end(ap);
    argv[n] = NULL;
    char *url = th_pg_url(user, fx->db);
    char *e1 = sl_xasprintf("SLUICE_DATABASE_URL=%s", url), *e2 = sl_xasprintf("DATABASE_URL=%s", url);
    const char *env[] = { e1, e2, NULL };
    th_result r = th_run(argv, env);
    free(e1);
    free(e2);
    free(url);
    return r;
}

/* Makes key pair NAME (DIR/NAME.key, DIR/NAME.pub) with `sluice audit keygen`. */
static void keygen(const fixture *fx, const char *name)
{
    char *priv = sl_xasprintf("%s/%s.key", fx->dir, name), *pub = sl_xasprintf("%s/%s.pub", fx->dir, name);
    const char *argv[] = { SLUICE_BIN, "audit", "keygen", "--private", priv, "--public", pub, NULL };
    th_result r = th_run(argv, NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert(strstr(r.out, "key id"), "%s", r.out);
    th_result_free(&r);
    free(priv);
    free(pub);
}

static char *key_path(const fixture *fx, const char *name, const char *ext)
{
    return sl_xasprintf("%s/%s.%s", fx->dir, name, ext);
}

static void setup_fixture(fixture *fx, const char *prefix)
{
    th_private_db(fx->db, sizeof fx->db, prefix);
    th_runtime_login(fx->db, "api", fx->api, sizeof fx->api);
    snprintf(fx->dir, sizeof fx->dir, "/tmp/sluice-audit-XXXXXX");
    cr_assert_not_null(mkdtemp(fx->dir));
    keygen(fx, "api");
}

/* Run RUN (triggered by dave) waiting at gate GATE: REQUIRED of alice, bob, carol. */
static void open_gate(const fixture *fx, const char *run, const char *gate, int required, const char *deadline)
{
    char *sql = sl_xasprintf(
        "INSERT INTO sluice_runs (id, pipeline, source_name, source, triggered_by, status)"
        " VALUES ('%1$s', 'p', 'p.yaml', 'name: p', 'dave', 'running');"
        "INSERT INTO sluice_run_steps (run_id, step_id, position, status) VALUES ('%1$s', '%2$s', 0, 'waiting');"
        "INSERT INTO sluice_gates (run_id, gate_id, status, approvers, required, triggered_by, deadline,"
        " on_timeout) VALUES ('%1$s', '%2$s', 'open', '{alice,bob,carol}', %3$d, 'dave', %4$s, 'approve')",
        run, gate, required, deadline ? deadline : "NULL");
    as_owner(fx->db, sql);
    free(sql);
}

/* Connects as user with the audit key NAME (NULL: none); *key gets it (free it). */
static sl_db *connect_signing(const fixture *fx, const char *user, const char *name, sl_sign_key **key)
{
    sl_err err;
    char *url = th_pg_url(user, fx->db);
    sl_db *db = sl_db_connect(url, &err);
    free(url);
    cr_assert_not_null(db, "%s", err.msg);
    *key = NULL;
    if (name) {
        char *path = key_path(fx, name, "key");
        *key = sl_sign_load_private(path, &err);
        cr_assert_not_null(*key, "%s", err.msg);
        free(path);
        sl_db_set_audit_key(db, *key);
    }
    return db;
}

static void approve(sl_db *db, const char *run, const char *gate, const char *who, bool want_closed)
{
    sl_err err;
    sl_gate_result res;
    cr_assert_eq(sl_gate_decide(db, run, gate, &(sl_principal){ .name = who, .method = "token:t1",
                                .address = "198.51.100.4" }, true, "fine", NULL, 0, &res, &err), 0,
                 "%s", err.msg);
    cr_assert(!res.refused, "%s", res.message);
    cr_assert_eq(res.closed, want_closed, "%s", res.message);
}

/* `sluice audit verify` with the public keys named (NULL-terminated list). */
static th_result verify(const fixture *fx, const char *k1, const char *k2)
{
    char *p1 = k1 ? key_path(fx, k1, "pub") : NULL, *p2 = k2 ? key_path(fx, k2, "pub") : NULL;
    th_result r = sluice_as(fx, "sluice", "audit", "verify", p1 ? "--public-key" : NULL, p1,
                            p2 ? "--public-key" : NULL, p2, NULL);
    free(p1);
    free(p2);
    return r;
}

static void expect_verify(const fixture *fx, const char *k1, const char *k2, int status, const char *want)
{
    th_result r = verify(fx, k1, k2);
    cr_assert_eq(r.status, status, "verify (%s, %s) exited %d:\n%s%s", k1 ? k1 : "-", k2 ? k2 : "-",
                 r.status, r.out, r.err);
    cr_assert(strstr(r.out, want) || strstr(r.err, want), "expected '%s' in:\n%s%s", want, r.out, r.err);
    th_result_free(&r);
}

/* The owner of the database rewrites the chain from row 1 with the
 * database's own hash function, after running edit: what verify without
 * keys can no longer tell from the real thing. */
static void owner_rewrites(const fixture *fx, const char *edit)
{
    char *sql = sl_xasprintf(
        "BEGIN; ALTER TABLE sluice_audit DISABLE TRIGGER sluice_audit_append_only; %s;"
        "DO $$ DECLARE r sluice_audit; prev text := ''; BEGIN"
        "  FOR r IN SELECT * FROM sluice_audit ORDER BY seq LOOP"
        "    r.prev_hash := prev; r.hash := sluice_audit_hash_v2(r);"
        "    UPDATE sluice_audit SET prev_hash = r.prev_hash, hash = r.hash WHERE seq = r.seq;"
        "    prev := r.hash; END LOOP; END $$;"
        "ALTER TABLE sluice_audit ENABLE TRIGGER sluice_audit_append_only; COMMIT", edit);
    as_owner(fx->db, sql);
    free(sql);
}

Test(audit, a_chain_recomputed_by_the_database_owner_fails_signature_checks)
{
    fixture fx;
    setup_fixture(&fx, "rewrite");
    open_gate(&fx, "r1", "go", 2, NULL);
    sl_sign_key *key;
    sl_db *db = connect_signing(&fx, fx.api, "api", &key);
    approve(db, "r1", "go", "alice", false);
    approve(db, "r1", "go", "bob", true);
    expect_verify(&fx, "api", NULL, 0, "2 rows signed by the given keys");
    /* the owner swaps an approver and recomputes every hash */
    owner_rewrites(&fx, "UPDATE sluice_audit SET actor = 'mallory' WHERE actor = 'alice'");
    expect_verify(&fx, NULL, NULL, 0, "audit chain ok");   /* the hash chain alone cannot tell */
    expect_verify(&fx, "api", NULL, 1, "row 1: the signature does not verify");
    /* nor can it delete the first decision: the next row's signature covers it */
    owner_rewrites(&fx, "DELETE FROM sluice_audit WHERE seq = 1; UPDATE sluice_audit SET seq = 1");
    expect_verify(&fx, NULL, NULL, 0, "audit chain ok: 1 rows");
    expect_verify(&fx, "api", NULL, 1, "row 1: the signature does not verify");
    /* re-signing with a key of the owner's own is not accepted either */
    keygen(&fx, "owner");
    char *opriv = key_path(&fx, "owner", "key");
    sl_err err;
    sl_sign_key *okey = sl_sign_load_private(opriv, &err);
    cr_assert_not_null(okey, "%s", err.msg);
    char id[SL_SIGN_ID_HEX];
    sl_sign_key_id(okey, id);
    PGresult *h = PQexec(sl_db_conn(db), "SELECT hash FROM sluice_audit WHERE seq = 1");
    cr_assert_eq(PQresultStatus(h), PGRES_TUPLES_OK);
    char msg[100];
    int n = snprintf(msg, sizeof msg, "sluice-audit-v2 %s", PQgetvalue(h, 0, 0));
    PQclear(h);
    unsigned char sig[SL_SIGN_LEN];
    cr_assert_eq(sl_sign(okey, msg, (size_t)n, sig, &err), 0, "%s", err.msg);
    char hex[2 * SL_SIGN_LEN + 1];
    for (size_t i = 0; i < SL_SIGN_LEN; i++)
        snprintf(hex + 2 * i, 3, "%02x", sig[i]);
    char *edit = sl_xasprintf("UPDATE sluice_audit SET key_id = '%s', sig = '%s' WHERE seq = 1", id, hex);
    owner_rewrites(&fx, edit);
    expect_verify(&fx, "api", NULL, 1, "which is not among the public keys given");
    free(edit);
    free(opriv);
    sl_sign_key_free(okey);
    sl_sign_key_free(key);
    sl_db_free(db);
    th_private_db_drop(fx.db);
    th_rmtree(fx.dir);
}

Test(audit, length_prefixed_hash_tells_apart_rows_the_separator_hash_confused)
{
    /* With fields joined by U+001F, moving the separator between two fields
     * gives a different row with the same hash input. */
    sl_audit_row a = { .version = 1, .seq = "7", .at_us = "1700000000000000", .run_id = "r\x1fgo",
                       .gate_id = "x", .actor = "alice", .decision = "approve", .prev_hash = "00" };
    sl_audit_row b = a;
    b.run_id = "r";
    b.gate_id = "go\x1fx";
    char ha[SL_SHA256_HEX], hb[SL_SHA256_HEX];
    sl_audit_row_hash(&a, ha);
    sl_audit_row_hash(&b, hb);
    cr_assert_str_eq(ha, hb, "the two rows should collide under the old scheme");
    /* and the database's old function agreed: they were indistinguishable */
    fixture fx;
    setup_fixture(&fx, "hash");
    char *q = sl_xasprintf(
        "SELECT count(*) FROM (VALUES"
        " (ROW(7, to_timestamp(1700000000), 'r' || chr(31) || 'go', 'x', 'alice', 'approve', NULL, NULL,"
        "      NULL, '00', '', 1, NULL, NULL, NULL, NULL, NULL)::sluice_audit),"
        " (ROW(7, to_timestamp(1700000000), 'r', 'go' || chr(31) || 'x', 'alice', 'approve', NULL, NULL,"
        "      NULL, '00', '', 1, NULL, NULL, NULL, NULL, NULL)::sluice_audit)) v(x)"
        " WHERE sluice_audit_hash(x) = '%s'", ha);
    cr_assert_eq(th_pg_db_number(fx.db, q), 2, "migration 003's function hashed both rows alike, as C does");
    free(q);
    a.version = b.version = 2;
    sl_audit_row_hash(&a, ha);
    sl_audit_row_hash(&b, hb);
    cr_assert_str_neq(ha, hb, "the length-prefixed hash must tell them apart");
    /* NULL and the empty string differ too */
    sl_audit_row c = a, d = a;
    c.comment = NULL;
    d.comment = "";
    sl_audit_row_hash(&c, ha);
    sl_audit_row_hash(&d, hb);
    cr_assert_str_neq(ha, hb);
    /* C and SQL compute the same v2 hash on real rows (multibyte text included) */
    open_gate(&fx, "r1", "go", 1, NULL);
    sl_sign_key *key;
    sl_db *db = connect_signing(&fx, fx.api, "api", &key);
    sl_err err;
    sl_gate_result res;
    cr_assert_eq(sl_gate_decide(db, "r1", "go", &(sl_principal){ .name = "bob", .method = "jwt:https://idp#b\xc3\xb8",
                                .address = NULL }, true, "l\xc3\xa5ngt \xe2\x9c\x93", NULL, 0, &res, &err), 0, "%s", err.msg);
    cr_assert_eq(th_pg_db_number(fx.db, "SELECT count(*) FROM sluice_audit a WHERE a.hash = sluice_audit_hash_v2(a)"
                                        " AND a.version = 2"), 1);
    expect_verify(&fx, "api", NULL, 0, "1 rows signed");
    sl_sign_key_free(key);
    sl_db_free(db);
    th_private_db_drop(fx.db);
    th_rmtree(fx.dir);
}

Test(audit, break_glass_decision_is_audited_as_such)
{
    fixture fx;
    setup_fixture(&fx, "glass");
    char bg[96];
    th_runtime_login(fx.db, "breakglass", bg, sizeof bg);
    keygen(&fx, "glass");
    open_gate(&fx, "r1", "go", 2, NULL);
    char *gkey = key_path(&fx, "glass", "key");
    /* without the role: refused by PostgreSQL, nothing recorded */
    th_result r = sluice_as(&fx, fx.api, "break-glass", "approve", "r1", "go", "--key", gkey, "--comment",
                            "prod is down", NULL);
    cr_assert_eq(r.status, 1, "%s%s", r.out, r.err);
    cr_assert(strstr(r.err, "permission denied"), "%s", r.err);
    th_result_free(&r);
    cr_assert_eq(th_pg_db_number(fx.db, "SELECT count(*) FROM sluice_audit"), 0);
    /* a comment is mandatory */
    r = sluice_as(&fx, bg, "break-glass", "approve", "r1", "go", "--key", gkey, NULL);
    cr_assert_eq(r.status, 2, "%s", r.err);
    th_result_free(&r);
    /* with it: one approval releases the 2-of-3 gate, as the login, method break-glass */
    r = sluice_as(&fx, bg, "break-glass", "approve", "r1", "go", "--key", gkey, "--comment", "prod is down", NULL);
    cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
    cr_assert(strstr(r.out, "break-glass") && strstr(r.out, "released"), "%s", r.out);
    th_result_free(&r);
    char *sql = sl_xasprintf("SELECT count(*) FROM sluice_audit WHERE actor = '%1$s' AND db_role = '%1$s'"
                             " AND method = 'break-glass' AND decision = 'approve' AND sig IS NOT NULL", bg);
    cr_assert_eq(th_pg_db_number(fx.db, sql), 1);
    free(sql);
    cr_assert_eq(th_pg_db_number(fx.db, "SELECT count(*) FROM sluice_gates WHERE status = 'approved'"), 1);
    cr_assert_eq(th_pg_db_number(fx.db, "SELECT count(*) FROM sluice_run_steps WHERE status = 'succeeded'"), 1);
    /* verify knows the break-glass key only if given it */
    expect_verify(&fx, "api", NULL, 1, "not among the public keys given");
    expect_verify(&fx, "api", "glass", 0, "1 rows signed by the given keys");
    free(gkey);
    th_private_db_drop(fx.db);
    th_rmtree(fx.dir);
}

Test(audit, timeouts_are_signed_by_the_scheduler_key_and_head_is_exportable)
{
    fixture fx;
    setup_fixture(&fx, "timeout");
    char sched[96];
    th_runtime_login(fx.db, "scheduler", sched, sizeof sched);
    keygen(&fx, "sched");
    open_gate(&fx, "r1", "go", 2, NULL);
    open_gate(&fx, "r2", "late", 2, "now() - interval '1 second'");
    sl_sign_key *akey, *skey;
    sl_db *api = connect_signing(&fx, fx.api, "api", &akey);
    sl_db *sdb = connect_signing(&fx, sched, "sched", &skey);
    approve(api, "r1", "go", "carol", false);
    int closed = 0;
    sl_err err;
    cr_assert_eq(sl_gate_expire(sdb, &closed, &err), 0, "%s", err.msg);
    cr_assert_eq(closed, 1);
    cr_assert_eq(th_pg_db_number(fx.db, "SELECT count(*) FROM sluice_audit WHERE decision = 'timeout-approve'"
                                        " AND actor = 'sluice-scheduler' AND method = 'scheduler'"), 1);
    expect_verify(&fx, "api", NULL, 1, "row 2 is signed by key");
    expect_verify(&fx, "api", "sched", 0, "2 rows signed by the given keys");
    /* the API's role cannot time gates out; the scheduler's role cannot decide */
    open_gate(&fx, "r3", "late", 2, "now() - interval '1 second'");
    cr_assert_eq(sl_gate_expire(api, &closed, &err), -1);
    cr_assert(strstr(err.msg, "permission denied"), "%s", err.msg);
    sl_gate_result res;
    cr_assert_eq(sl_gate_decide(sdb, "r1", "go", &(sl_principal){ .name = "bob", .method = "scheduler" }, true,
                                NULL, NULL, 0, &res, &err), -1);
    cr_assert(strstr(err.msg, "permission denied") && strstr(err.msg, "only members of sluice_api"),
              "the refusal should say which role may decide: %s", err.msg);
    /* head: the newest row, its signature verifiable outside the database */
    th_result r = sluice_as(&fx, "sluice", "audit", "head", "--json", NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    char hash[SL_SHA256_HEX] = "", kid[SL_SIGN_ID_HEX] = "", sighex[2 * SL_SIGN_LEN + 1] = "";
    long long seq = 0;
    cr_assert_eq(sscanf(r.out, "{\"seq\":%lld,\"hash\":\"%64[0-9a-f]\",\"key_id\":\"%16[0-9a-f]\","
                        "\"signature\":\"%128[0-9a-f]\"}", &seq, hash, kid, sighex), 4, "%s", r.out);
    th_result_free(&r);
    cr_assert_eq(seq, 2);
    char *q = sl_xasprintf("SELECT count(*) FROM sluice_audit WHERE seq = 2 AND hash = '%s'", hash);
    cr_assert_eq(th_pg_db_number(fx.db, q), 1);
    free(q);
    char id[SL_SIGN_ID_HEX];
    sl_sign_key_id(skey, id);
    cr_assert_str_eq(kid, id);
    unsigned char sig[SL_SIGN_LEN];
    for (size_t i = 0; i < SL_SIGN_LEN; i++)
        sig[i] = (unsigned char)strtoul((char[3]){ sighex[2 * i], sighex[2 * i + 1], 0 }, NULL, 16);
    char msg[100];
    int n = snprintf(msg, sizeof msg, "sluice-audit-v2 %s", hash);
    char *pub = key_path(&fx, "sched", "pub");
    sl_sign_key *spub = sl_sign_load_public(pub, &err);
    cr_assert_not_null(spub, "%s", err.msg);
    cr_assert(sl_sign_verify(spub, msg, (size_t)n, sig, sizeof sig), "the exported head does not verify");
    free(pub);
    sl_sign_key_free(spub);
    sl_sign_key_free(akey);
    sl_sign_key_free(skey);
    sl_db_free(api);
    sl_db_free(sdb);
    th_private_db_drop(fx.db);
    th_rmtree(fx.dir);
}

Test(audit, legacy_rows_stay_verifiable_and_are_reported)
{
    /* a database at migration 005, with rows appended the old way */
    fixture fx;
    th_empty_db(fx.db, sizeof fx.db, "legacy");
    as_owner(fx.db, "CREATE TABLE sluice_schema_migrations (version integer PRIMARY KEY, name text NOT NULL,"
                    " applied_at timestamptz NOT NULL DEFAULT now())");
    for (int v = 1; v < 6; v++) {
        char *glob = sl_xasprintf("ls %s/migrations/%03d_*.sql 2>/dev/null", SLUICE_SOURCE_DIR, v);
        FILE *ls = popen(glob, "r");
        char path[512] = "";
        cr_assert_not_null(ls);
        if (fgets(path, sizeof path, ls) == NULL)
            path[0] = '\0';
        pclose(ls);
        free(glob);
        path[strcspn(path, "\n")] = '\0';
        if (path[0] == '\0')
            continue;
        char *text = th_read_file(path);
        cr_assert_not_null(text, "%s", path);
        char *mig = sl_xasprintf("BEGIN; %s; INSERT INTO sluice_schema_migrations (version, name) VALUES (%d, 'old');"
                                 " COMMIT", text, v);
        as_owner(fx.db, mig);
        free(mig);
        free(text);
    }
    as_owner(fx.db, "SELECT sluice_audit_append('old', 'g', 'alice', 'approve', 'x', NULL, NULL);"
                    "SELECT sluice_audit_append('old', 'g', 'bob', 'approve', NULL, '{\"n\": 1}', NULL)");
    th_result r = sluice_as(&fx, "sluice", "migrate", NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    th_result_free(&r);
    expect_verify(&fx, NULL, NULL, 0, "legacy rows: 2");
    /* once a signed row follows, the legacy rows are covered by its signature */
    th_runtime_login(fx.db, "api", fx.api, sizeof fx.api);
    snprintf(fx.dir, sizeof fx.dir, "/tmp/sluice-audit-XXXXXX");
    cr_assert_not_null(mkdtemp(fx.dir));
    keygen(&fx, "api");
    open_gate(&fx, "r1", "go", 1, NULL);
    sl_sign_key *key;
    sl_db *db = connect_signing(&fx, fx.api, "api", &key);
    approve(db, "r1", "go", "alice", true);
    expect_verify(&fx, "api", NULL, 0, "2 of them covered by a later signed row");
    /* rewriting a legacy row with the old function breaks the signed row after it */
    as_owner(fx.db, "BEGIN; ALTER TABLE sluice_audit DISABLE TRIGGER sluice_audit_append_only;"
                    "UPDATE sluice_audit SET actor = 'mallory' WHERE seq = 1;"
                    "UPDATE sluice_audit a SET hash = sluice_audit_hash(a) WHERE seq = 1;"
                    "UPDATE sluice_audit a SET prev_hash = (SELECT hash FROM sluice_audit WHERE seq = 1) WHERE seq = 2;"
                    "UPDATE sluice_audit a SET hash = sluice_audit_hash(a) WHERE seq = 2;"
                    "UPDATE sluice_audit a SET prev_hash = (SELECT hash FROM sluice_audit WHERE seq = 2) WHERE seq = 3;"
                    "UPDATE sluice_audit a SET hash = sluice_audit_hash_v2(a) WHERE seq = 3;"
                    "ALTER TABLE sluice_audit ENABLE TRIGGER sluice_audit_append_only; COMMIT");
    expect_verify(&fx, NULL, NULL, 0, "audit chain ok");
    expect_verify(&fx, "api", NULL, 1, "row 3: the signature does not verify");
    /* and the newest row cannot escape its signature by posing as legacy */
    sl_gate_result res;
    sl_err err;
    open_gate(&fx, "r2", "go", 1, NULL);
    cr_assert_eq(sl_gate_decide(db, "r2", "go", &(sl_principal){ .name = "bob", .method = "token:t2" }, true,
                                NULL, NULL, 0, &res, &err), 0, "%s", err.msg);
    as_owner(fx.db, "BEGIN; ALTER TABLE sluice_audit DISABLE TRIGGER sluice_audit_append_only;"
                    "UPDATE sluice_audit SET version = 1, key_id = NULL, sig = NULL WHERE seq = 4;"
                    "UPDATE sluice_audit a SET hash = sluice_audit_hash(a) WHERE seq = 4;"
                    "ALTER TABLE sluice_audit ENABLE TRIGGER sluice_audit_append_only; COMMIT");
    expect_verify(&fx, NULL, NULL, 1, "row 4 is a legacy (version 1) row after version 2 rows");
    sl_sign_key_free(key);
    sl_db_free(db);
    th_private_db_drop(fx.db);
    th_rmtree(fx.dir);
}

Test(audit, the_scheduler_refuses_an_unusable_audit_key)
{
    char dir[] = "/tmp/sluice-audit-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char *config = sl_xasprintf("%s/sluice.config", dir), *key = sl_xasprintf("%s/nope.key", dir);
    char *text = sl_xasprintf("scheduler:\n  audit_key_file: %s\n", key);
    FILE *f = fopen(config, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    cr_assert_eq(fclose(f), 0);
    char *yaml = sl_xasprintf("%s/p.yaml", dir);   /* one pipeline: the directory loads */
    f = fopen(yaml, "w");
    cr_assert_not_null(f);
    fputs("name: p\nsteps:\n  - {id: a, kind: noop}\n", f);
    cr_assert_eq(fclose(f), 0);
    free(yaml);
    const char *argv[] = { SLUICE_SCHEDULER_BIN, "--config", config, "--pipelines", dir, NULL };
    th_result r = th_run(argv, NULL);
    cr_assert_eq(r.status, 78, "a missing key is a configuration error: %d %s", r.status, r.err);
    cr_assert(strstr(r.err, "scheduler.audit_key_file") && strstr(r.err, key), "%s", r.err);
    th_result_free(&r);
    /* a public key cannot sign */
    char *priv = sl_xasprintf("%s/k.key", dir), *pub = sl_xasprintf("%s/k.pub", dir);
    sl_err err;
    cr_assert_eq(sl_sign_keygen(priv, pub, &err), 0, "%s", err.msg);
    free(text);
    text = sl_xasprintf("scheduler:\n  audit_key_file: %s\n", pub);
    f = fopen(config, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    cr_assert_eq(fclose(f), 0);
    r = th_run(argv, NULL);
    cr_assert_eq(r.status, 78, "%s", r.err);
    cr_assert(strstr(r.err, "not a PEM private key"), "%s", r.err);
    th_result_free(&r);
    free(priv);
    free(pub);
    free(text);
    free(key);
    free(config);
    th_rmtree(dir);
}

/* Re-signs every row with key, as the owner (after a backdating rewrite):
 * the history the test needs, signed as the real signer would have. */
static void resign_all(const fixture *fx, sl_db *db, const sl_sign_key *key)
{
    PGresult *h = PQexec(sl_db_conn(db), "SELECT seq, hash FROM sluice_audit ORDER BY seq");
    cr_assert_eq(PQresultStatus(h), PGRES_TUPLES_OK);
    char id[SL_SIGN_ID_HEX];
    sl_sign_key_id(key, id);
    sl_buf sql = SL_BUF_INIT;
    sl_buf_puts(&sql, "BEGIN; ALTER TABLE sluice_audit DISABLE TRIGGER sluice_audit_append_only;");
    for (int i = 0; i < PQntuples(h); i++) {
        char msg[100];
        int n = snprintf(msg, sizeof msg, "sluice-audit-v2 %s", PQgetvalue(h, i, 1));
        unsigned char sig[SL_SIGN_LEN];
        sl_err err;
        cr_assert_eq(sl_sign(key, msg, (size_t)n, sig, &err), 0, "%s", err.msg);
        char hex[2 * SL_SIGN_LEN + 1];
        for (size_t b = 0; b < SL_SIGN_LEN; b++)
            snprintf(hex + 2 * b, 3, "%02x", sig[b]);
        sl_buf_printf(&sql, "UPDATE sluice_audit SET key_id = '%s', sig = '%s' WHERE seq = %s;", id, hex,
                      PQgetvalue(h, i, 0));
    }
    sl_buf_puts(&sql, "ALTER TABLE sluice_audit ENABLE TRIGGER sluice_audit_append_only; COMMIT");
    PQclear(h);
    as_owner(fx->db, sql.data);
    sl_buf_free(&sql);
}

static long long cut(sl_db *db, long long keep_ms, int batch)
{
    long long removed = -1;
    sl_err err;
    cr_assert_eq(sl_audit_cut(db, keep_ms, batch, &removed, &err), 0, "%s", err.msg);
    return removed;
}

#define DAY_MS (86400000LL)

/* Retention removes the oldest rows behind a checkpoint the scheduler
 * signs; verify starts from it.  Rows removed any other way, a rewritten
 * checkpoint, or a cut of rows still inside the window are caught. */
Test(audit, retention_removes_old_rows_behind_a_signed_checkpoint)
{
    fixture fx;
    setup_fixture(&fx, "retain");
    char sched[96];
    th_runtime_login(fx.db, "scheduler", sched, sizeof sched);
    keygen(&fx, "sched");
    sl_sign_key *akey, *skey;
    sl_db *api = connect_signing(&fx, fx.api, "api", &akey);
    sl_db *sdb = connect_signing(&fx, sched, "sched", &skey);
    const char *runs[] = { "r1", "r2", "r3", "r4", "r5" };
    for (size_t i = 0; i < 5; i++) {
        open_gate(&fx, runs[i], "go", 1, NULL);
        approve(api, runs[i], "go", "alice", true);
    }
    /* rows 1-3 were appended 30 days ago; 4 and 5 are recent */
    owner_rewrites(&fx, "UPDATE sluice_audit SET at = at - interval '30 days' WHERE seq <= 3");
    resign_all(&fx, api, akey);
    expect_verify(&fx, "api", NULL, 0, "5 rows signed by the given keys");

    cr_assert_eq(cut(sdb, 7 * DAY_MS, 2), 2, "a pass removes at most its batch");
    cr_assert_eq(cut(sdb, 7 * DAY_MS, 2), 1);
    cr_assert_eq(cut(sdb, 7 * DAY_MS, 2), 0, "rows inside the window stay");
    cr_assert_eq(th_pg_db_number(fx.db, "SELECT min(seq) FROM sluice_audit"), 4);
    cr_assert_eq(th_pg_db_number(fx.db, "SELECT count(*) FROM sluice_audit_checkpoints"), 1,
                 "only the checkpoint that matches the oldest row is kept");
    expect_verify(&fx, "api", "sched", 0, "rows before 4 were removed behind a checkpoint (signature verified)");
    expect_verify(&fx, "api", NULL, 1, "the checkpoint before row 4 is signed by key");

    /* the scheduler's role cannot cut rows inside the window, nor ask for a
     * window under an hour; the API's role cannot cut at all */
    char *e = th_pg_try(sched, fx.db, "SELECT sluice_audit_cut(5, (SELECT hash FROM sluice_audit WHERE seq = 4),"
                        " (SELECT (extract(epoch FROM at) * 1000000)::bigint FROM sluice_audit WHERE seq = 4),"
                        " repeat('a', 16), repeat('b', 128), 3600000)");
    cr_assert(e && strstr(e, "younger than"), "%s", e ? e : "the cut of a recent row was accepted");
    free(e);
    e = th_pg_try(sched, fx.db, "SELECT sluice_audit_cut(5, 'x', 0, repeat('a', 16), repeat('b', 128), 1000)");
    cr_assert(e && strstr(e, "at least 1h"), "%s", e ? e : "a 1 s window was accepted");
    free(e);
    e = th_pg_try(fx.api, fx.db, "SELECT sluice_audit_cut(5, 'x', 0, repeat('a', 16), repeat('b', 128), 3600000)");
    cr_assert(e && strstr(e, "permission denied"), "%s", e ? e : "the API role may cut the audit trail");
    free(e);
    e = th_pg_try(sched, fx.db, "DELETE FROM sluice_audit WHERE seq = 4");
    cr_assert(e && strstr(e, "permission denied"), "%s", e ? e : "the scheduler role deleted an audit row");
    free(e);

    /* the owner moves the checkpoint's time back (to pass recent rows off
     * as expired): its signature no longer verifies */
    as_owner(fx.db, "UPDATE sluice_audit_checkpoints SET last_at_us = last_at_us - 1");
    expect_verify(&fx, "api", "sched", 1, "the checkpoint before row 4: the signature does not verify");
    as_owner(fx.db, "UPDATE sluice_audit_checkpoints SET last_at_us = last_at_us + 1");
    expect_verify(&fx, "api", "sched", 0, "signature verified");
    /* the owner removes one more row: no checkpoint accounts for it */
    as_owner(fx.db, "BEGIN; ALTER TABLE sluice_audit DISABLE TRIGGER sluice_audit_append_only;"
                    " DELETE FROM sluice_audit WHERE seq = 4;"
                    " ALTER TABLE sluice_audit ENABLE TRIGGER sluice_audit_append_only; COMMIT");
    expect_verify(&fx, "api", "sched", 1, "row 5 is the oldest, and no signed checkpoint accounts");
    sl_db_free(api);
    sl_db_free(sdb);
    sl_sign_key_free(akey);
    sl_sign_key_free(skey);
    th_private_db_drop(fx.db);
    th_rmtree(fx.dir);
}

Test(audit, retention_keeps_the_newest_row_and_needs_the_audit_key)
{
    fixture fx;
    setup_fixture(&fx, "retain2");
    char sched[96];
    th_runtime_login(fx.db, "scheduler", sched, sizeof sched);
    keygen(&fx, "sched");
    sl_sign_key *akey, *skey, *none;
    sl_db *api = connect_signing(&fx, fx.api, "api", &akey);
    sl_db *sdb = connect_signing(&fx, sched, "sched", &skey);
    sl_db *unkeyed = connect_signing(&fx, sched, NULL, &none);
    open_gate(&fx, "r1", "go", 2, NULL);
    approve(api, "r1", "go", "alice", false);
    approve(api, "r1", "go", "bob", true);
    owner_rewrites(&fx, "UPDATE sluice_audit SET at = at - interval '30 days'");
    resign_all(&fx, api, akey);
    long long removed = -1;
    sl_err err;
    cr_assert_eq(sl_audit_cut(unkeyed, 7 * DAY_MS, 100, &removed, &err), -1);
    cr_assert(strstr(err.msg, "scheduler.audit_key_file"), "%s", err.msg);
    cr_assert_eq(th_pg_db_number(fx.db, "SELECT count(*) FROM sluice_audit"), 2, "nothing removed without a key");
    cr_assert_eq(cut(sdb, 7 * DAY_MS, 100), 1, "every row expired: all but the newest go");
    expect_verify(&fx, "api", "sched", 0, "rows before 2 were removed");
    open_gate(&fx, "r2", "go", 1, NULL);
    approve(api, "r2", "go", "carol", true);
    expect_verify(&fx, "api", "sched", 0, "audit chain ok: 2 rows");
    sl_db_free(unkeyed);
    sl_db_free(api);
    sl_db_free(sdb);
    sl_sign_key_free(akey);
    sl_sign_key_free(skey);
    th_private_db_drop(fx.db);
    th_rmtree(fx.dir);
}

/* Counts the occurrences of needle in hay. */
static int count_of(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

static void decide_refused(sl_db *db, const char *run, const char *gate, const char *who)
{
    sl_err err;
    sl_gate_result res;
    cr_assert_eq(sl_gate_decide(db, run, gate, &(sl_principal){ .name = who, .method = "jwt:https://id#x",
                                .address = "203.0.113.9" }, true, "let me", NULL, 0, &res, &err), 0,
                 "%s", err.msg);
    cr_assert(res.refused, "%s was accepted", who);
}

Test(audit, show_lists_a_runs_decisions_with_their_verification)
{
    fixture fx;
    setup_fixture(&fx, "show");
    open_gate(&fx, "r1", "go", 2, NULL);
    open_gate(&fx, "r2", "go", 1, NULL);
    sl_sign_key *key;
    sl_db *db = connect_signing(&fx, fx.api, "api", &key);
    approve(db, "r1", "go", "alice", false);
    /* a principal whose name would drive a terminal: refused, and shown inert */
    decide_refused(db, "r1", "go", "eve\x1b]0;owned\x07");
    approve(db, "r2", "go", "carol", true);
    approve(db, "r1", "go", "bob", true);
    char *pub = key_path(&fx, "api", "pub");

    th_result r = sluice_as(&fx, "sluice", "audit", "show", "r1", "--json", "--public-key", pub, NULL);
    cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
    cr_assert_eq(count_of(r.out, "\"seq\":"), 3, "r1's three rows, not r2's: %s", r.out);
    cr_assert_eq(count_of(r.out, "\"signature\":\"yes\""), 3, "%s", r.out);
    cr_assert(strstr(r.out, "\"principal\":\"alice\",\"decision\":\"approve\",\"method\":\"token:t1\","
                     "\"address\":\"198.51.100.4\",\"comment\":\"fine\""), "%s", r.out);
    cr_assert(strstr(r.out, "\"principal\":\"eve\\u001b]0;owned\\u0007\",\"decision\":\"refused\","
                     "\"method\":\"jwt:https://id#x\",\"address\":\"203.0.113.9\""), "%s", r.out);
    cr_assert(strstr(r.out, "not an approver"), "the refusal's reason: %s", r.out);
    cr_assert_null(strstr(r.out, "carol"), "%s", r.out);
    cr_assert(strchr(r.out, '\x1b') == NULL && strchr(r.out, '\x07') == NULL, "raw control bytes printed");
    th_result_free(&r);

    /* text, without keys: the signatures are there but unchecked */
    r = sluice_as(&fx, "sluice", "audit", "show", "r1", NULL);
    cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
    cr_assert_eq(count_of(r.out, "signature unchecked"), 3, "%s", r.out);
    cr_assert(strstr(r.out, "approve by bob (token:t1 from 198.51.100.4)"), "%s", r.out);
    cr_assert(strchr(r.out, '\x1b') == NULL && strchr(r.out, '\x07') == NULL, "raw control bytes printed:\n%s",
              r.out);
    th_result_free(&r);

    /* the owner swaps an approver: that row no longer verifies, and show says so */
    owner_rewrites(&fx, "UPDATE sluice_audit SET actor = 'mallory' WHERE actor = 'alice'");
    r = sluice_as(&fx, "sluice", "audit", "show", "r1", "--json", "--public-key", pub, NULL);
    cr_assert_eq(r.status, 1, "%s%s", r.out, r.err);
    cr_assert(strstr(r.out, "\"principal\":\"mallory\"") && strstr(r.out, "\"signature\":\"no\""), "%s", r.out);
    cr_assert(strstr(r.err, "row 1 of run r1 does not verify"), "%s", r.err);
    th_result_free(&r);

    /* usage: a run is required, and only one */
    r = sluice_as(&fx, "sluice", "audit", "show", NULL);
    cr_assert_eq(r.status, 2, "%s", r.err);
    cr_assert(strstr(r.err, "show needs one run id"), "%s", r.err);
    th_result_free(&r);
    free(pub);
    sl_sign_key_free(key);
    sl_db_free(db);
    th_private_db_drop(fx.db);
    th_rmtree(fx.dir);
}
