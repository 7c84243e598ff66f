/* cmd_audit.c: `sluice audit`, the approval audit trail:
 *   verify [--public-key FILE]...   recompute the chain, check signatures
 *   head [--json]                   the newest row: seq, hash, key, signature
 *   keygen --private F --public F   a new Ed25519 key pair for signing rows
 * The formats and checks live in scheduler/audit.c. */
#include "audit.h"
#include "cli.h"
#include "db.h"
#include "mem.h"
#include "sign.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CMD "audit"

static void usage(FILE *f)
{
    fprintf(f,
        "Usage: sluice audit verify [--public-key FILE]... [OPTIONS]\n"
        "       sluice audit head [--json] [OPTIONS]\n"
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
        "keygen  writes a new Ed25519 key pair: the private key (mode 0600) for\n"
        "        api.audit_key_file, scheduler.audit_key_file or break-glass\n"
        "        decisions, the public key for verify.  Same as\n"
        "        `openssl genpkey -algorithm ed25519 -out F` and `openssl pkey -in F -pubout`.\n"
        "\n"
        "Options:\n"
        "  -k, --public-key FILE  a PEM public (or private) key to check signatures with\n"
        "      --private FILE     keygen: where to write the private key\n"
        "      --public FILE      keygen: where to write the public key\n"
        "      --json             head: print a JSON object\n"
        "  -c, --config FILE      configuration file\n"
        "  -h, --help             show this help\n");
}

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

int cmd_audit(int argc, char **argv)
{
    static const struct option opts[] = {
        { "public-key", required_argument, NULL, 'k' },
        { "private", required_argument, NULL, 'P' },
        { "public", required_argument, NULL, 'U' },
        { "json", no_argument, NULL, 'j' },
        { "config", required_argument, NULL, 'c' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    const char *config = NULL, *priv = NULL, *pub = NULL;
    const char **keyfiles = sl_xcalloc((size_t)argc + 1, sizeof *keyfiles);
    sl_sign_key **keys = sl_xcalloc((size_t)argc + 1, sizeof *keys);
    size_t nkeys = 0, nfiles = 0;
    bool json = false;
    int c, status = CLI_USAGE;
    sl_config *cfg = NULL;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, ":k:c:h", opts, NULL)) != -1) {
        switch (c) {
        case 'k': keyfiles[nfiles++] = optarg; break;
        case 'P': priv = optarg; break;
        case 'U': pub = optarg; break;
        case 'j': json = true; break;
        case 'c': config = optarg; break;
        case 'h': usage(stdout); status = CLI_OK; goto out;
        case ':': status = cli_usage_error(CMD, "option '%s' needs a value", argv[optind - 1]); goto out;
        default: status = cli_usage_error(CMD, "unknown option '%s'", argv[optind - 1]); goto out;
        }
    }
    const char *sub = optind + 1 == argc ? argv[optind] : NULL;
    if (sub == NULL || (strcmp(sub, "verify") != 0 && strcmp(sub, "head") != 0 &&
                        strcmp(sub, "keygen") != 0)) {
        status = cli_usage_error(CMD, "expected 'verify', 'head' or 'keygen'");
        goto out;
    }
    if ((nfiles > 0 && strcmp(sub, "verify") != 0) || (json && strcmp(sub, "head") != 0) ||
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
    status = strcmp(sub, "verify") == 0 ? verify(cfg, keys, nkeys) : head(cfg, json);
out:
    for (size_t i = 0; i < nkeys; i++)
        sl_sign_key_free(keys[i]);
    free(keys);
    free(keyfiles);
    sl_config_free(cfg);
    return status;
}
