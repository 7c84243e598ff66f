/* cmd_audit.c: `sluice audit`, the approval audit trail:
 *   verify [--public-key FILE]...   recompute the chain, check signatures
 *   head [--json]                   the newest row: seq, hash, key, signature
 *   show RUN [--json] [--public-key FILE]...  a run's decisions, refusals and
 *                                   timeouts, each with whether its signature verifies
 *   keygen --private F --public F   a new Ed25519 key pair for signing rows
 * The formats and checks live in scheduler/audit.c. */
#include "audit.h"
#include "cli.h"
#include "db.h"
#include "json.h"
#include "mem.h"
#include "sign.h"
#include "vis.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CMD "audit"

static const sl_opt cmd_rows[] = {
    { 'k', "public-key", 'k', "FILE", "verify, show: a PEM public (or private) key to check\nsignatures with" },
    { 'P', "private", 0, "FILE", "keygen: where to write the private key" },
    { 'U', "public", 0, "FILE", "keygen: where to write the public key" },
    { 'j', "json", 0, NULL, "head, show: print JSON" },
    { 'c', "config", 'c', "FILE", "configuration file" },
    { 'h', "help", 'h', NULL, "show this help" },
    { 0 },
};

static const sl_opts cmd_opts = { "sluice audit",
    "Usage: sluice audit verify [--public-key FILE]... [OPTIONS]\n"
    "       sluice audit head [--json] [OPTIONS]\n"
    "       sluice audit show RUN [--json] [--public-key FILE]... [OPTIONS]\n"
    "       sluice audit keygen --private FILE --public FILE\n"
    "\n"
    "verify  recomputes the hash of every row of the approval audit trail and\n"
    "        checks that each chains to the row before it, so an edited or deleted\n"
    "        row is found.  With --public-key (repeatable: the API server's, the\n"
    "        scheduler's and the break-glass public keys) it also checks that every\n"
    "        row since migration 006 carries a valid signature by one of them: a\n"
    "        chain that someone with the database recomputed hashes fine but fails\n"
    "        here.  Rows older than migration 006 are reported as legacy (unsigned).\n"
    "        Exits 1 naming the first row that does not verify.\n"
    "head    prints the newest row's seq, hash, signing key id and signature:\n"
    "        record it outside the database (it also detects that the newest rows\n"
    "        were removed, which no check inside the chain can).\n"
    "show    lists every decision, refusal and timeout of run RUN, oldest first:\n"
    "        time, gate, principal, decision, how the principal was authenticated,\n"
    "        the client address, comment or reason, and whether the row's signature\n"
    "        verifies: yes, no (the row was edited or the signature is not by any\n"
    "        --public-key given), unsigned (no audit key was configured), unchecked\n"
    "        (signed, but no --public-key given).  Exits 1 when a row does not verify.\n"
    "keygen  writes a new Ed25519 key pair: the private key (mode 0600) for\n"
    "        api.audit_key_file, scheduler.audit_key_file or break-glass\n"
    "        decisions, the public key for verify.  Same as\n"
    "        `openssl genpkey -algorithm ed25519 -out F` and `openssl pkey -in F -pubout`.\n"
    "\n",
    "\nTry 'sluice audit --help'.", cmd_rows,
NULL, NULL };


static int verify(const sl_config *cfg, sl_sign_key *const *keys, size_t nkeys)
{
    sl_err err;
    sl_audit_report rep;
    sl_audit_head head;
    int status = CLI_FAILED;
    sl_db *db = sl_db_connect(cfg->database_url, &err);
    if (db == NULL || sl_audit_verify(db, keys, nkeys, &rep, &err) < 0 ||
        sl_audit_head_get(db, &head, &err) < 0) {
        cli_fail(CMD, "%s", err.msg);
        goto out;
    }
    if (!rep.ok) {
        cli_fail(CMD, "audit chain broken: %s", rep.why);
        goto out;
    }
    printf("audit chain ok: %lld rows, last hash %s\n", rep.rows, head.seq ? head.hash : "-");
    if (nkeys > 0)
        printf("signatures: %lld rows signed by the given keys\n", rep.signed_ok);
    else if (rep.unchecked > 0)
        printf("signatures: not checked for %lld rows (give --public-key FILE)\n", rep.unchecked);
    if (rep.checkpoint_seq > 0) {
        time_t t = (time_t)(rep.checkpoint_last_at_us / 1000000);
        struct tm tm;
        char when[32] = "?";
        if (gmtime_r(&t, &tm) != NULL)
            strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
        printf("retention: rows before %lld were removed behind a checkpoint (%s); the last of them "
               "was appended %s\n", rep.checkpoint_seq,
               rep.checkpoint_verified ? "signature verified" : "signature not checked", when);
    }
    if (rep.legacy > 0)
        printf("legacy rows: %lld from before migration 006 (separator hash, unsigned); "
               "%lld of them covered by a later signed row's chain\n", rep.legacy, rep.legacy_anchored);
    status = CLI_OK;
out:
    sl_db_free(db);
    return status;
}

static int head(const sl_config *cfg, bool json)
{
    sl_err err;
    sl_audit_head h;
    sl_db *db = sl_db_connect(cfg->database_url, &err);
    int status = CLI_FAILED;
    if (db == NULL || sl_audit_head_get(db, &h, &err) < 0) {
        cli_fail(CMD, "%s", err.msg);
    } else if (json) {
        printf("{\"seq\":%lld,\"hash\":\"%s\",\"key_id\":\"%s\",\"signature\":\"%s\"}\n", h.seq, h.hash,
               h.key_id, h.sig);
        status = CLI_OK;
    } else {
        printf("seq %lld\nhash %s\nkey %s\nsignature %s\n", h.seq, h.seq ? h.hash : "-",
               *h.key_id ? h.key_id : "- (unsigned)", *h.sig ? h.sig : "-");
        status = CLI_OK;
    }
    sl_db_free(db);
    return status;
}

/* Appends "key":"value" (or null) to b, after a comma unless first. */
static void json_member(sl_buf *b, const char *key, const char *value, bool first)
{
    sl_buf_printf(b, "%s\"%s\":", first ? "" : ",", key);
    if (value == NULL)
        sl_buf_puts(b, "null");
    else
        sl_json_put_string(b, value, strlen(value));
}

static void show_json(const sl_audit_entry *e, size_t n)
{
    sl_buf b = SL_BUF_INIT;
    sl_buf_putc(&b, '[');
    for (size_t i = 0; i < n; i++) {
        sl_buf_printf(&b, "%s{\"seq\":%lld,", i ? "," : "", e[i].seq);
        json_member(&b, "at", e[i].at, true);
        json_member(&b, "gate", e[i].gate, false);
        json_member(&b, "principal", e[i].principal, false);
        json_member(&b, "decision", e[i].decision, false);
        json_member(&b, "method", e[i].method, false);
        json_member(&b, "address", e[i].address, false);
        json_member(&b, "comment", e[i].comment, false);
        json_member(&b, "reason", e[i].reason, false);
        sl_buf_printf(&b, ",\"inputs\":%s", e[i].inputs ? e[i].inputs : "null");   /* jsonb text */
        json_member(&b, "key_id", e[i].key_id, false);
        json_member(&b, "signature", sl_audit_sig_name(e[i].sig), false);
        sl_buf_putc(&b, '}');
    }
    sl_buf_puts(&b, "]\n");
    fputs(sl_buf_str(&b), stdout);
    sl_buf_free(&b);
}

/* Every value may come from someone else (names, comments): shown visibly. */
static void show_text(const char *run, const sl_audit_entry *e, size_t n)
{
    if (n == 0)
        printf("no audit rows for run %s\n", SL_VIS(run));
    for (size_t i = 0; i < n; i++) {
        printf("%s  gate %s  %s by %s", SL_VIS(e[i].at), SL_VIS(e[i].gate), SL_VIS(e[i].decision),
               SL_VIS(e[i].principal));
        printf(" (%s from %s)  signature %s\n", e[i].method ? SL_VIS(e[i].method) : "-",
               e[i].address ? SL_VIS(e[i].address) : "-", sl_audit_sig_name(e[i].sig));
        if (e[i].comment && *e[i].comment)
            printf("  comment: %s\n", SL_VIS(e[i].comment));
        if (e[i].reason && *e[i].reason)
            printf("  reason:  %s\n", SL_VIS(e[i].reason));
        if (e[i].inputs && strcmp(e[i].inputs, "[]") != 0 && strcmp(e[i].inputs, "{}") != 0)
            printf("  inputs:  %s\n", SL_VIS(e[i].inputs));
    }
}

static int show(const sl_config *cfg, const char *run, sl_sign_key *const *keys, size_t nkeys, bool json)
{
    sl_err err;
    sl_audit_entry *e = NULL;
    size_t n = 0;
    int status = CLI_FAILED;
    sl_db *db = sl_db_connect(cfg->database_url, &err);
    if (db == NULL || sl_audit_run(db, run, keys, nkeys, &e, &n, &err) < 0) {
        cli_fail(CMD, "%s", err.msg);
        goto out;
    }
    if (json)
        show_json(e, n);
    else
        show_text(run, e, n);
    status = CLI_OK;
    for (size_t i = 0; i < n; i++) {
        if (e[i].sig == SL_AUDIT_SIG_BAD) {
            cli_fail(CMD, "row %lld of run %s does not verify", e[i].seq, SL_VIS(run));
            status = CLI_FAILED;
            break;
        }
    }
out:
    sl_audit_entries_free(e, n);
    sl_db_free(db);
    return status;
}

int cmd_audit(int argc, char **argv)
{
    const char *config = NULL, *priv = NULL, *pub = NULL;
    const char **keyfiles = sl_xcalloc((size_t)argc + 1, sizeof *keyfiles);
    sl_sign_key **keys = sl_xcalloc((size_t)argc + 1, sizeof *keys);
    size_t nkeys = 0, nfiles = 0;
    bool json = false;
    int c, status = CLI_USAGE;
    sl_config *cfg = NULL;
    sl_opts_parser op;
    const char *optval;
    sl_opts_begin(&op, &cmd_opts, argc, argv);
    while ((c = sl_opts_next(&op, &optval)) != SL_OPTS_END) {
        switch (c) {
        case 'k': keyfiles[nfiles++] = optval; break;
        case 'P': priv = optval; break;
        case 'U': pub = optval; break;
        case 'j': json = true; break;
        case 'c': config = optval; break;
        default: status = op.status; goto out;
        }
    }
    const char *sub = optind < argc ? argv[optind] : NULL;
    bool is_show = sub && strcmp(sub, "show") == 0;
    if (sub == NULL || (strcmp(sub, "verify") != 0 && strcmp(sub, "head") != 0 &&
                        strcmp(sub, "keygen") != 0 && !is_show)) {
        status = cli_usage_error(CMD, "expected 'verify', 'head', 'show' or 'keygen'");
        goto out;
    }
    if (argc - optind != (is_show ? 2 : 1)) {
        status = is_show ? cli_usage_error(CMD, "show needs one run id: sluice audit show RUN")
                         : cli_usage_error(CMD, "unexpected argument '%s'", argv[argc - 1]);
        goto out;
    }
    if ((nfiles > 0 && strcmp(sub, "verify") != 0 && !is_show) ||
        (json && strcmp(sub, "head") != 0 && !is_show) ||
        ((priv || pub) && strcmp(sub, "keygen") != 0)) {
        status = cli_usage_error(CMD, "an option given does not apply to '%s'", sub);
        goto out;
    }
    status = CLI_FAILED;
    sl_err err;
    if (strcmp(sub, "keygen") == 0) {
        if (priv == NULL || pub == NULL) {
            status = cli_usage_error(CMD, "keygen needs --private FILE and --public FILE");
        } else if (sl_sign_keygen(priv, pub, &err) < 0) {
            cli_fail(CMD, "%s", err.msg);
        } else {
            sl_sign_key *k = sl_sign_load_public(pub, &err);
            char id[SL_SIGN_ID_HEX] = "?";
            if (k != NULL)
                sl_sign_key_id(k, id);
            sl_sign_key_free(k);
            printf("wrote %s (private, keep it secret) and %s (public), key id %s\n", priv, pub, id);
            status = CLI_OK;
        }
        goto out;
    }
    for (size_t i = 0; i < nfiles; i++) {
        if ((keys[nkeys] = sl_sign_load_public(keyfiles[i], &err)) == NULL) {
            cli_fail(CMD, "--public-key %s", err.msg);
            goto out;
        }
        nkeys++;
    }
    if ((cfg = cli_load_config(CMD, config)) == NULL)
        goto out;
    if (is_show)
        status = show(cfg, argv[optind + 1], keys, nkeys, json);
    else
        status = strcmp(sub, "verify") == 0 ? verify(cfg, keys, nkeys) : head(cfg, json);
out:
    for (size_t i = 0; i < nkeys; i++)
        sl_sign_key_free(keys[i]);
    free(keys);
    free(keyfiles);
    sl_config_free(cfg);
    return status;
}
