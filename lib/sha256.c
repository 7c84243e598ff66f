/* sha256.c: see sha256.h.  EVP digests and HMAC from libcrypto; a failure
 * of libcrypto itself (out of memory, a broken provider) is not something a
 * caller can handle, so it aborts with libcrypto's reason, like sl_xmalloc. */
#include "sha256.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>

static void crypto_abort(const char *what)
{
    char reason[256];
    ERR_error_string_n(ERR_get_error(), reason, sizeof reason);
    fprintf(stderr, "sluice: libcrypto %s failed: %s\n", what, reason);
    abort();
}

void sl_sha256_init(sl_sha256_ctx *s)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (md == NULL || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1)
        crypto_abort("SHA-256 init");
    s->md = md;
}

void sl_sha256_update(sl_sha256_ctx *s, const void *data, size_t n)
{
    if (n > 0 && EVP_DigestUpdate(s->md, data, n) != 1)
        crypto_abort("SHA-256 update");
}

void sl_sha256_final(sl_sha256_ctx *s, unsigned char out[SL_SHA256_LEN])
{
    unsigned int len = 0;
    if (EVP_DigestFinal_ex(s->md, out, &len) != 1 || len != SL_SHA256_LEN)
        crypto_abort("SHA-256 final");
    sl_sha256_free(s);
}

void sl_sha256_free(sl_sha256_ctx *s)
{
    EVP_MD_CTX_free(s->md);
    s->md = NULL;
}

void sl_sha256_digest(const void *data, size_t n, unsigned char out[SL_SHA256_LEN])
{
    unsigned int len = 0;
    if (EVP_Digest(data, n, out, &len, EVP_sha256(), NULL) != 1 || len != SL_SHA256_LEN)
        crypto_abort("SHA-256");
}

void sl_hmac_sha256(const void *key, size_t keylen, const void *msg, size_t n,
                    unsigned char out[SL_SHA256_LEN])
{
    static const unsigned char empty[1];
    unsigned int len = 0;
    if (keylen > 0x7fffffff ||
        HMAC(EVP_sha256(), keylen ? key : empty, (int)keylen, n ? msg : empty, n, out, &len) == NULL ||
        len != SL_SHA256_LEN)
        crypto_abort("HMAC-SHA256");
}

void sl_sha256_hex(const unsigned char digest[SL_SHA256_LEN], char hex[SL_SHA256_HEX])
{
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < SL_SHA256_LEN; i++) {
        hex[2 * i] = digits[digest[i] >> 4];
        hex[2 * i + 1] = digits[digest[i] & 15];
    }
    hex[2 * SL_SHA256_LEN] = '\0';
}
