/* sha256.h: SHA-256 and HMAC-SHA256, on OpenSSL's libcrypto.
 *
 * The job kinds need a digest for downloads (import), rendered trees
 * (codegen) and webhook signatures (deploy); the API hashes tokens.  This
 * header keeps libcrypto's EVP interface out of the callers (the way
 * PostgreSQL wraps its crypto backends): the implementation is OpenSSL's,
 * with its CPU-specific code (SHA extensions, AVX2).  Allocation failures
 * inside libcrypto abort, like every allocation in sluice (mem.h). */
#ifndef SL_SHA256_H
#define SL_SHA256_H

#include <stddef.h>

#define SL_SHA256_LEN 32      /* bytes in a digest */
#define SL_SHA256_HEX 65      /* hex digest plus NUL */

typedef struct sl_sha256_ctx {    /* streaming state; sl_sha256_init before use */
    void *md;                 /* libcrypto's EVP_MD_CTX, owned; NULL when finished */
} sl_sha256_ctx;

/* Starts a digest.  Every init must be followed by sl_sha256_final or, to
 * abandon it, sl_sha256_free. */
void sl_sha256_init(sl_sha256_ctx *s);
void sl_sha256_update(sl_sha256_ctx *s, const void *data, size_t n);
/* Writes the digest and releases the state; s must be initialised again
 * before reuse. */
void sl_sha256_final(sl_sha256_ctx *s, unsigned char out[SL_SHA256_LEN]);
/* Releases an unfinished digest; harmless after final or on a zeroed ctx. */
void sl_sha256_free(sl_sha256_ctx *s);

/* One-shot digest of data[0..n). */
void sl_sha256_digest(const void *data, size_t n, unsigned char out[SL_SHA256_LEN]);

/* HMAC-SHA256 of msg under key. */
void sl_hmac_sha256(const void *key, size_t keylen, const void *msg, size_t n,
                    unsigned char out[SL_SHA256_LEN]);

/* Writes the digest as 64 lowercase hex digits plus NUL into hex. */
void sl_sha256_hex(const unsigned char digest[SL_SHA256_LEN], char hex[SL_SHA256_HEX]);

#endif
