/* sign.c: see sign.h.  The only file that includes OpenSSL headers for
 * signatures; errors from libcrypto are reported by the failed call's
 * name and OpenSSL's first queued reason. */
#include "sign.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "mem.h"
#include "sha256.h"

struct sl_sign_key {
    EVP_PKEY *pkey;      /* owned */
    bool has_private;
    char id[SL_SIGN_ID_HEX];
};

static const char *ossl_reason(void)
{
    unsigned long e = ERR_get_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;
    ERR_clear_error();
    return r ? r : "unknown libcrypto error";
}

static sl_sign_key *wrap(EVP_PKEY *pkey, bool priv, const char *path, sl_err *err)
{
    unsigned char raw[32];
    size_t rawlen = sizeof raw;
    if (EVP_PKEY_id(pkey) != EVP_PKEY_ED25519) {
        EVP_PKEY_free(pkey);
        sl_err_set(err, SL_ECONFIG, "%s: not an Ed25519 key", path);
        return NULL;
    }
    if (EVP_PKEY_get_raw_public_key(pkey, raw, &rawlen) != 1 || rawlen != sizeof raw) {
        EVP_PKEY_free(pkey);
        sl_err_set(err, SL_ECONFIG, "%s: EVP_PKEY_get_raw_public_key: %s", path, ossl_reason());
        return NULL;
    }
    sl_sign_key *k = sl_xcalloc(1, sizeof *k);
    k->pkey = pkey;
    k->has_private = priv;
    unsigned char d[SL_SHA256_LEN];
    sl_sha256_digest(raw, sizeof raw, d);
    for (int i = 0; i < 8; i++)
        snprintf(k->id + 2 * i, 3, "%02x", d[i]);
    return k;
}

static sl_sign_key *load(const char *path, bool priv, sl_err *err)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        sl_err_set(err, SL_ECONFIG, "%s: %s", path, strerror(errno));
        return NULL;
    }
    EVP_PKEY *pkey = NULL;
    bool got_private = false;
    if (priv) {
        pkey = PEM_read_PrivateKey(f, NULL, NULL, NULL);
        got_private = pkey != NULL;
    } else {
        pkey = PEM_read_PUBKEY(f, NULL, NULL, NULL);
        if (pkey == NULL) {   /* a private key file: use its public half */
            ERR_clear_error();
            rewind(f);
            pkey = PEM_read_PrivateKey(f, NULL, NULL, NULL);
        }
    }
    fclose(f);
    if (pkey == NULL) {
        sl_err_set(err, SL_ECONFIG, "%s: not a PEM %s key (%s)", path, priv ? "private" : "public",
                   ossl_reason());
        return NULL;
    }
    return wrap(pkey, got_private, path, err);
}

sl_sign_key *sl_sign_load_private(const char *path, sl_err *err) { return load(path, true, err); }

sl_sign_key *sl_sign_load_public(const char *path, sl_err *err) { return load(path, false, err); }

void sl_sign_key_free(sl_sign_key *key)
{
    if (key == NULL)
        return;
    EVP_PKEY_free(key->pkey);
    free(key);
}

void sl_sign_key_id(const sl_sign_key *key, char id[SL_SIGN_ID_HEX])
{
    memcpy(id, key->id, SL_SIGN_ID_HEX);
}

int sl_sign(const sl_sign_key *key, const void *msg, size_t n, unsigned char sig[SL_SIGN_LEN],
            sl_err *err)
{
    if (!key->has_private)
        return sl_err_set(err, SL_EINVAL, "sign: key %s is a public key", key->id);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    size_t len = SL_SIGN_LEN;
    int rc = -1;
    if (ctx == NULL)
        abort();   /* out of memory: as mem.h, not a condition to limp through */
    if (EVP_DigestSignInit(ctx, NULL, NULL, NULL, key->pkey) != 1 ||
        EVP_DigestSign(ctx, sig, &len, msg, n) != 1 || len != SL_SIGN_LEN)
        sl_err_set(err, SL_EIO, "EVP_DigestSign: %s", ossl_reason());
    else
        rc = 0;
    EVP_MD_CTX_free(ctx);
    return rc;
}

bool sl_sign_verify(const sl_sign_key *key, const void *msg, size_t n, const unsigned char *sig,
                    size_t siglen)
{
    if (sig == NULL || siglen != SL_SIGN_LEN)
        return false;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (ctx == NULL)
        abort();
    bool ok = EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, key->pkey) == 1 &&
              EVP_DigestVerify(ctx, sig, siglen, msg, n) == 1;
    EVP_MD_CTX_free(ctx);
    ERR_clear_error();
    return ok;
}
