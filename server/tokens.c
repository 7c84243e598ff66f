/* tokens.c: see tokens.h. */
#include "tokens.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "base64.h"
#include "sha256.h"

static const char *const scope_names[] = { "enqueue", "trigger", "approve", "read", "admin" };
#define NSCOPES (sizeof scope_names / sizeof scope_names[0])

int sl_scopes_parse(const char *list, unsigned *mask, sl_err *err)
{
    *mask = 0;
    const char *p = list;
    while (*p) {
        size_t n = strcspn(p, ",");
        bool found = false;
        for (size_t i = 0; i < NSCOPES; i++) {
            if (n == strlen(scope_names[i]) && strncmp(p, scope_names[i], n) == 0) {
                *mask |= 1u << i;
                found = true;
            }
        }
        if (!found)
            return sl_err_set(err, SL_EINVAL, "unknown scope '%.*s' (expected enqueue, trigger, approve, "
                              "read, admin)", (int)(n > 40 ? 40 : n), p);
        p += n;
        if (*p == ',')
            p++;
    }
    if (*mask == 0)
        return sl_err_set(err, SL_EINVAL, "no scopes given (expected some of enqueue, trigger, approve, "
                          "read, admin)");
    return 0;
}

bool sl_scopes_allow(unsigned mask, unsigned scope)
{
    return (mask & SL_SCOPE_ADMIN) != 0 || (mask & scope) == scope;
}

const char *sl_scope_name(unsigned scope)
{
    for (size_t i = 0; i < NSCOPES; i++) {
        if (scope == 1u << i)
            return scope_names[i];
    }
    return "?";
}

static int random_bytes(unsigned char *out, size_t n, sl_err *err)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = getrandom(out + got, n - got, 0);
        if (r < 0)
            return sl_err_set(err, SL_EIO, "getrandom: %s", strerror(errno));
        got += (size_t)r;
    }
    return 0;
}

static void token_hash(const char *token, char hex[SL_SHA256_HEX])
{
    unsigned char d[SL_SHA256_LEN];
    sl_sha256_digest(token, strlen(token), d);
    sl_sha256_hex(d, hex);
}

/* The array literal of the scopes in mask: {read,approve}. */
static void scopes_literal(unsigned mask, char *out, size_t n)
{
    size_t len = (size_t)snprintf(out, n, "{");
    for (size_t i = 0; i < NSCOPES && len < n; i++) {
        if (mask & (1u << i))
            len += (size_t)snprintf(out + len, n - len, "%s%s", len > 1 ? "," : "", scope_names[i]);
    }
    if (len < n)
        snprintf(out + len, n - len, "}");
}

int sl_token_create(sl_db *db, const char *user, unsigned scopes, int64_t expires_ms,
                    char token[SL_TOKEN_MAX], char id[SL_TOKEN_ID_MAX], sl_err *err)
{
    unsigned char idb[8], secret[32];
    if (random_bytes(idb, sizeof idb, err) < 0 || random_bytes(secret, sizeof secret, err) < 0)
        return -1;
    for (size_t i = 0; i < sizeof idb; i++)
        snprintf(id + 2 * i, 3, "%02x", idb[i]);
    char enc[64];
    sl_base64_encode(secret, sizeof secret, SL_BASE64URL, enc, sizeof enc);
    snprintf(token, SL_TOKEN_MAX, SL_TOKEN_PREFIX "%s_%s", id, enc);
    OPENSSL_cleanse(secret, sizeof secret);
    char hex[SL_SHA256_HEX], lit[96], exp[32];
    token_hash(token, hex);
    scopes_literal(scopes, lit, sizeof lit);
    snprintf(exp, sizeof exp, "%lld", (long long)expires_ms);
    const char *p[] = { id, user, lit, hex, exp };
    return sl_db_run(db, "create token", "INSERT INTO sluice_api_tokens (id, user_name, scopes, hash, expires_at)"
                     " VALUES ($1, $2, $3::text[], $4, CASE WHEN $5::bigint > 0 THEN now() +"
                     " make_interval(secs => $5::bigint / 1000.0) END)", 5, p, err);
}

bool sl_token_shaped(const char *text)
{
    size_t plen = strlen(SL_TOKEN_PREFIX);
    if (strncmp(text, SL_TOKEN_PREFIX, plen) != 0)
        return false;
    const char *id = text + plen;
    size_t idlen = strspn(id, "0123456789abcdef");
    if (idlen != 16 || id[idlen] != '_')
        return false;
    const char *secret = id + idlen + 1;
    size_t slen = strspn(secret, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_");
    return slen == 43 && secret[slen] == '\0';
}

int sl_token_verify(sl_db *db, const char *token, sl_token_info *info, sl_err *err)
{
    memset(info, 0, sizeof *info);
    if (!sl_token_shaped(token))
        return 0;
    memcpy(info->id, token + strlen(SL_TOKEN_PREFIX), 16);
    info->id[16] = '\0';
    const char *p[] = { info->id };
    PGresult *r = sl_db_exec(db, "token", "SELECT hash, user_name, array_to_string(scopes, ','),"
                             " revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())"
                             " FROM sluice_api_tokens WHERE id = $1", 1, p, err);
    if (r == NULL)
        return -1;
    int rc = 0;
    char hex[SL_SHA256_HEX];
    token_hash(token, hex);
    unsigned scopes = 0;
    if (PQntuples(r) == 1 && PQgetlength(r, 0, 0) == SL_SHA256_HEX - 1 &&
        CRYPTO_memcmp(hex, PQgetvalue(r, 0, 0), SL_SHA256_HEX - 1) == 0 &&
        strcmp(PQgetvalue(r, 0, 3), "t") == 0 && sl_scopes_parse(PQgetvalue(r, 0, 2), &scopes, NULL) == 0) {
        snprintf(info->user, sizeof info->user, "%s", PQgetvalue(r, 0, 1));
        info->scopes = scopes;
        rc = 1;
    }
    PQclear(r);
    if (rc == 1)
        (void)sl_db_run(db, "token used", "UPDATE sluice_api_tokens SET last_used_at = now() WHERE id = $1",
                        1, p, NULL);
    else
        memset(info, 0, sizeof *info);
    return rc;
}

int sl_token_revoke(sl_db *db, const char *id, sl_err *err)
{
    const char *p[] = { id };
    PGresult *r = sl_db_exec(db, "revoke token", "UPDATE sluice_api_tokens SET revoked_at ="
                             " coalesce(revoked_at, now()) WHERE id = $1 RETURNING id", 1, p, err);
    if (r == NULL)
        return -1;
    int n = PQntuples(r);
    PQclear(r);
    if (n == 0)
        return sl_err_set(err, SL_ENOTFOUND, "no token '%s'", id);
    return 0;
}
