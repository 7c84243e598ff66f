/* test_jwt.c: JWT bearer tokens against a real API server.  The test makes
 * its own identity provider: an RSA 2048 and an EC P-256 key generated with
 * libcrypto, published to the server as a JWKS file (and, in one test, a
 * PEM file), and tokens signed with them — good ones, and each attack the
 * server must refuse with 401: alg none, HS256 "signed" with the public
 * key, expired, not yet valid, wrong issuer or audience, bad signature, a
 * token signed by another key, unknown kid, a DER ES256 signature,
 * malformed base64url and JSON. */
#include "apiserver.h"
#include "harness.h"

#include "args.h"
#include "buf.h"
#include "jsonval.h"
#include "mem.h"
#include "sha256.h"

#include <criterion/criterion.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define ISS "https://id.example.test"
#define AUD "sluice-test"

static char dir[64];
static EVP_PKEY *rsa, *ec, *other;
static th_server srv;
static char *config;

static void b64url(const unsigned char *in, size_t n, sl_buf *out)
{
    static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    unsigned acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        acc = (acc << 8) | in[i];
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            sl_buf_putc(out, a[(acc >> bits) & 63]);
        }
    }
    if (bits > 0)
        sl_buf_putc(out, a[(acc << (6 - bits)) & 63]);
}

static void b64url_str(const char *s, sl_buf *out) { b64url((const unsigned char *)s, strlen(s), out); }

static void put_bn(EVP_PKEY *k, const char *param, sl_buf *out)
{
    BIGNUM *bn = NULL;
    cr_assert_eq(EVP_PKEY_get_bn_param(k, param, &bn), 1);
    unsigned char buf[512];
    int n = BN_bn2bin(bn, buf);
    b64url(buf, (size_t)n, out);
    BN_free(bn);
}

/* The JWKS document of rsa (kid r1) and ec (kid e1). */
static char *jwks(void)
{
    sl_buf b = SL_BUF_INIT;
    sl_buf_puts(&b, "{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"r1\",\"use\":\"sig\",\"alg\":\"RS256\",\"n\":\"");
    put_bn(rsa, OSSL_PKEY_PARAM_RSA_N, &b);
    sl_buf_puts(&b, "\",\"e\":\"");
    put_bn(rsa, OSSL_PKEY_PARAM_RSA_E, &b);
    sl_buf_puts(&b, "\"},{\"kty\":\"EC\",\"kid\":\"e1\",\"crv\":\"P-256\",\"x\":\"");
    unsigned char pt[65];
    size_t n = 0;
    cr_assert_eq(EVP_PKEY_get_octet_string_param(ec, OSSL_PKEY_PARAM_PUB_KEY, pt, sizeof pt, &n), 1);
    cr_assert_eq(n, 65u);
    b64url(pt + 1, 32, &b);
    sl_buf_puts(&b, "\",\"y\":\"");
    b64url(pt + 33, 32, &b);
    sl_buf_puts(&b, "\"}]}");
    return sl_buf_detach(&b);
}

/* header.payload signed with key as alg says; sig_mode 0 normal, 1 flip a
 * bit of the signature, 2 (ES256) send the DER signature as is. */
static char *sign(EVP_PKEY *key, const char *header, const char *payload, int sig_mode)
{
    sl_buf t = SL_BUF_INIT;
    b64url_str(header, &t);
    sl_buf_putc(&t, '.');
    b64url_str(payload, &t);
    unsigned char sig[1024];
    size_t siglen = sizeof sig;
    if (key) {
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        cr_assert_eq(EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, key), 1);
        cr_assert_eq(EVP_DigestSign(ctx, sig, &siglen, (const unsigned char *)t.data, t.len), 1);
        EVP_MD_CTX_free(ctx);
        if (EVP_PKEY_is_a(key, "EC") && sig_mode != 2) {
            const unsigned char *p = sig;
            ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)siglen);
            cr_assert_not_null(es);
            unsigned char raw[64];
            BN_bn2binpad(ECDSA_SIG_get0_r(es), raw, 32);
            BN_bn2binpad(ECDSA_SIG_get0_s(es), raw + 32, 32);
            ECDSA_SIG_free(es);
            memcpy(sig, raw, 64);
            siglen = 64;
        }
        if (sig_mode == 1)
            sig[siglen / 2] ^= 0x01;
    } else {
        siglen = 0;
    }
    sl_buf_putc(&t, '.');
    b64url(sig, siglen, &t);
    return sl_buf_detach(&t);
}

static char *claims(const char *iss, const char *aud, long exp_delta, long nbf_delta)
{
    long now = (long)time(NULL);
    return sl_xasprintf("{\"iss\":\"%s\",\"aud\":%s,\"sub\":\"u-123\",\"preferred_username\":\"jane\","
                        "\"groups\":[\"release-managers\",\"ops\"],\"exp\":%ld,\"nbf\":%ld,\"iat\":%ld}",
                        iss, aud, now + exp_delta, now + nbf_delta, now);
}

static char *write_in_dir(const char *name, const char *text)
{
    char *path = sl_xasprintf("%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    cr_assert_eq(fclose(f), 0);
    return path;
}

static void start(const char *keys_path)
{
    char *text = sl_xasprintf("api:\n  rate_limit: 10000\n  rate_burst: 10000\n  auth_failures: 100000\n"
                              "  jwt:\n    issuer: " ISS "\n    audience: " AUD "\n    keys: %s\n"
                              "    user_claim: preferred_username\n    groups_claim: groups\n"
                              "    clock_skew: 60s\n", keys_path);
    config = write_in_dir("sluice.config", text);
    free(text);
    th_serve_start(&srv, config, false, NULL);
}

static void setup(void)
{
    th_migrate();
    snprintf(dir, sizeof dir, "/tmp/sluice-jwt-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    other = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    cr_assert(rsa && ec && other, "key generation failed");
}

static void teardown(void)
{
    if (srv.pid > 0)
        th_serve_stop(&srv);
    srv.pid = 0;
    EVP_PKEY_free(rsa);
    EVP_PKEY_free(ec);
    EVP_PKEY_free(other);
    free(config);
    config = NULL;
}

TestSuite(jwt, .init = setup, .fini = teardown, .timeout = 120);

static long whoami(const char *token, char **name)
{
    char *u = sl_xasprintf("%s/v1/whoami", srv.url);
    th_http_reply r = th_http("GET", u, token, NULL, NULL, NULL);
    long status = r.status;
    if (name) {
        sl_jsonval j;
        sl_jsonval_init(&j, r.body);
        *name = NULL;
        if (j.ok)
            sl_args_str(&j.up.data, "name", false, name, NULL);
        sl_jsonval_free(&j);
    }
    if (status == 200)
        cr_assert(strstr(r.body, "\"jwt:" ISS "#u-123\"") && strstr(r.body, "release-managers"), "%s", r.body);
    else
        cr_assert(strstr(r.body, "urn:sluice:problem:unauthorized"), "%s", r.body);
    th_http_free(&r);
    free(u);
    return status;
}

static void expect_refused(const char *what, char *token)
{
    cr_assert_eq(whoami(token, NULL), 401, "%s must be refused", what);
    free(token);
}

Test(jwt, good_tokens_and_every_attack)
{
    char *keys = jwks();
    char *path = write_in_dir("jwks.json", keys);
    start(path);
    char *good = claims(ISS, "\"" AUD "\"", 600, -10);
    /* good RS256 and ES256 */
    char *t = sign(rsa, "{\"alg\":\"RS256\",\"typ\":\"JWT\",\"kid\":\"r1\"}", good, 0);
    char *name = NULL;
    cr_assert_eq(whoami(t, &name), 200);
    cr_assert_str_eq(name, "jane", "the user name comes from the configured claim");
    free(name);
    free(t);
    t = sign(ec, "{\"alg\":\"ES256\",\"kid\":\"e1\"}", good, 0);
    cr_assert_eq(whoami(t, NULL), 200);
    free(t);
    /* an audience array containing ours; an expiry within the clock skew */
    char *arr = claims(ISS, "[\"other\",\"" AUD "\"]", -30, -60);
    t = sign(rsa, "{\"alg\":\"RS256\",\"kid\":\"r1\"}", arr, 0);
    cr_assert_eq(whoami(t, NULL), 200);
    free(t);
    free(arr);
    /* a valid JWT grants only api.jwt.scopes (default read, trigger, approve) */
    t = sign(rsa, "{\"alg\":\"RS256\",\"kid\":\"r1\"}", good, 0);
    char *u = sl_xasprintf("%s/v1/queues/q/jobs", srv.url);
    th_http_reply r = th_http("POST", u, t, "{\"kind\":\"noop\"}", NULL, NULL);
    cr_assert_eq(r.status, 403, "%s", r.body);
    th_http_free(&r);
    free(u);
    free(t);

    /* the attacks */
    expect_refused("alg none", sign(NULL, "{\"alg\":\"none\",\"kid\":\"r1\"}", good, 0));
    expect_refused("alg None", sign(NULL, "{\"alg\":\"None\"}", good, 0));
    {
        /* HS256 with the RSA public key (PEM bytes) as the HMAC secret */
        BIO *bio = BIO_new(BIO_s_mem());
        PEM_write_bio_PUBKEY(bio, rsa);
        char *pem = NULL;
        long pemlen = BIO_get_mem_data(bio, &pem);
        sl_buf h = SL_BUF_INIT;
        b64url_str("{\"alg\":\"HS256\",\"kid\":\"r1\"}", &h);
        sl_buf_putc(&h, '.');
        b64url_str(good, &h);
        unsigned char mac[SL_SHA256_LEN];
        sl_hmac_sha256(pem, (size_t)pemlen, h.data, h.len, mac);
        sl_buf_putc(&h, '.');
        b64url(mac, sizeof mac, &h);
        expect_refused("HS256 keyed with the public key", sl_buf_detach(&h));
        BIO_free(bio);
    }
    char *expired = claims(ISS, "\"" AUD "\"", -3600, -7200);
    expect_refused("expired", sign(rsa, "{\"alg\":\"RS256\",\"kid\":\"r1\"}", expired, 0));
    free(expired);
    char *beyond = claims(ISS, "\"" AUD "\"", -120, -7200);
    expect_refused("expired beyond the skew", sign(rsa, "{\"alg\":\"RS256\",\"kid\":\"r1\"}", beyond, 0));
    free(beyond);
    char *early = claims(ISS, "\"" AUD "\"", 7200, 3600);
    expect_refused("not yet valid", sign(rsa, "{\"alg\":\"RS256\",\"kid\":\"r1\"}", early, 0));
    free(early);
    char *noexp = sl_xasprintf("{\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"sub\":\"u-123\",\"preferred_username\":\"jane\"}");
    expect_refused("no exp", sign(rsa, "{\"alg\":\"RS256\",\"kid\":\"r1\"}", noexp, 0));
    free(noexp);
    char *iss = claims("https://evil.example", "\"" AUD "\"", 600, -10);
    expect_refused("wrong issuer", sign(rsa, "{\"alg\":\"RS256\",\"kid\":\"r1\"}", iss, 0));
    free(iss);
    char *aud = claims(ISS, "\"someone-else\"", 600, -10);
    expect_refused("wrong audience", sign(rsa, "{\"alg\":\"RS256\",\"kid\":\"r1\"}", aud, 0));
    free(aud);
    expect_refused("bad RS256 signature", sign(rsa, "{\"alg\":\"RS256\",\"kid\":\"r1\"}", good, 1));
    expect_refused("bad ES256 signature", sign(ec, "{\"alg\":\"ES256\",\"kid\":\"e1\"}", good, 1));
    expect_refused("DER ES256 signature", sign(ec, "{\"alg\":\"ES256\",\"kid\":\"e1\"}", good, 2));
    expect_refused("another key, same kid", sign(other, "{\"alg\":\"RS256\",\"kid\":\"r1\"}", good, 0));
    expect_refused("unknown kid", sign(rsa, "{\"alg\":\"RS256\",\"kid\":\"r9\"}", good, 0));
    expect_refused("RS256 naming the EC key", sign(rsa, "{\"alg\":\"RS256\",\"kid\":\"e1\"}", good, 0));
    expect_refused("PS256", sign(rsa, "{\"alg\":\"PS256\",\"kid\":\"r1\"}", good, 0));
    expect_refused("duplicate alg", sign(rsa, "{\"alg\":\"RS256\",\"kid\":\"r1\",\"alg\":\"none\"}", good, 0));
    expect_refused("claims not JSON", sign(rsa, "{\"alg\":\"RS256\",\"kid\":\"r1\"}", "{\"iss\":", 0));
    /* malformed base64url: padding, the standard alphabet, whitespace */
    t = sign(rsa, "{\"alg\":\"RS256\",\"kid\":\"r1\"}", good, 0);
    char *padded = sl_xasprintf("%s=", t);
    expect_refused("padded signature", padded);
    char *plus = sl_xstrdup(t);
    plus[5] = '+';
    expect_refused("'+' in the header", plus);
    char *two = sl_xstrndup(t, (size_t)(strrchr(t, '.') - t));
    expect_refused("two parts", two);
    free(t);
    th_serve_stop(&srv);
    srv.pid = 0;
    free(good);
    free(path);
    free(keys);
}

Test(jwt, a_pem_public_key)
{
    BIO *bio = BIO_new(BIO_s_mem());
    PEM_write_bio_PUBKEY(bio, ec);
    char *pem = NULL;
    long n = BIO_get_mem_data(bio, &pem);
    char *text = sl_xstrndup(pem, (size_t)n);
    BIO_free(bio);
    char *path = write_in_dir("idp.pem", text);
    start(path);
    char *good = claims(ISS, "\"" AUD "\"", 600, -10);
    char *t = sign(ec, "{\"alg\":\"ES256\"}", good, 0);
    cr_assert_eq(whoami(t, NULL), 200);
    free(t);
    expect_refused("RS256 against an EC key", sign(rsa, "{\"alg\":\"RS256\"}", good, 0));
    th_serve_stop(&srv);
    srv.pid = 0;
    free(good);
    free(path);
    free(text);
}

Test(jwt, bad_key_files_stop_the_server)
{
    char *path = write_in_dir("bad.json", "{\"keys\":[{\"kty\":\"RSA\",\"n\":\"!!\",\"e\":\"AQAB\"}]}");
    char *text = sl_xasprintf("api:\n  jwt:\n    issuer: " ISS "\n    audience: " AUD "\n    keys: %s\n", path);
    char *cfg = write_in_dir("bad.config", text);
    const char *argv[] = { SLUICE_BIN, "serve", "--config", cfg, "--listen", "127.0.0.1:0", NULL };
    th_result r = th_run(argv, NULL);
    cr_assert_eq(r.status, 1, "%s", r.err);
    cr_assert(strstr(r.err, "bad.json") && strstr(r.err, "key 1"), "%s", r.err);
    th_result_free(&r);
    free(cfg);
    free(text);
    free(path);
}
