/* test_base64.c: the one base64 codec (lib/base64.c), both forms, against
 * the test vectors of RFC 4648 section 10, and its strict decoder. */
#include <criterion/criterion.h>

#include <stdlib.h>
#include <string.h>

#include "base64.h"

/* RFC 4648 section 10: "", "f", "fo", ... "foobar" in the standard form. */
static const struct { const char *in, *std; } rfc[] = {
    { "", "" }, { "f", "Zg==" }, { "fo", "Zm8=" }, { "foo", "Zm9v" },
    { "foob", "Zm9vYg==" }, { "fooba", "Zm9vYmE=" }, { "foobar", "Zm9vYmFy" },
};

Test(base64, rfc4648_vectors_both_forms)
{
    for (size_t i = 0; i < sizeof rfc / sizeof rfc[0]; i++) {
        char out[32];
        size_t n = strlen(rfc[i].in);
        sl_base64_encode(rfc[i].in, n, SL_BASE64, out, sizeof out);
        cr_assert_str_eq(out, rfc[i].std);
        cr_assert_eq(sl_base64_len(n, SL_BASE64), strlen(rfc[i].std));
        /* base64url: the same text without its padding (no + or / here) */
        sl_base64_encode(rfc[i].in, n, SL_BASE64URL, out, sizeof out);
        cr_assert_eq(strlen(out), strcspn(rfc[i].std, "="));
        cr_assert(strncmp(out, rfc[i].std, strlen(out)) == 0, "%s: %s", rfc[i].in, out);
        cr_assert_eq(sl_base64_len(n, SL_BASE64URL), strlen(out));
        for (int form = SL_BASE64; form <= SL_BASE64URL; form++) {
            sl_base64_encode(rfc[i].in, n, (sl_base64_form)form, out, sizeof out);
            size_t m = 99;
            unsigned char *back = sl_base64_decode(out, strlen(out), (sl_base64_form)form, &m);
            cr_assert_not_null(back, "%s does not decode", out);
            cr_assert_eq(m, n);
            cr_assert(memcmp(back, rfc[i].in, n) == 0);
            free(back);
        }
    }
}

Test(base64, alphabets_differ_in_two_characters)
{
    const unsigned char in[] = { 0xfb, 0xff, 0xbf };   /* 111110 111111 111110 111111 */
    char out[8];
    sl_base64_encode(in, sizeof in, SL_BASE64, out, sizeof out);
    cr_assert_str_eq(out, "+/+/");
    sl_base64_encode(in, sizeof in, SL_BASE64URL, out, sizeof out);
    cr_assert_str_eq(out, "-_-_");
}

Test(base64, append_to_a_buffer)
{
    sl_buf b = SL_BUF_INIT;
    sl_buf_puts(&b, "x:");
    sl_base64_append(&b, "fooba", 5, SL_BASE64);
    cr_assert_str_eq(sl_buf_str(&b), "x:Zm9vYmE=");
    sl_buf_free(&b);
}

Test(base64, short_output_buffer_truncates_and_terminates)
{
    char out[4] = "xxx";
    sl_base64_encode("foobar", 6, SL_BASE64, out, sizeof out);
    cr_assert_str_eq(out, "Zm9");
}

Test(base64, decoder_refuses_what_is_not_canonical)
{
    static const struct { const char *text; sl_base64_form form; } bad[] = {
        { "Zg", SL_BASE64 },          /* standard form without its padding */
        { "Zg=", SL_BASE64 },
        { "Zg===", SL_BASE64 },
        { "Z===", SL_BASE64 },
        { "Z=g=", SL_BASE64 },        /* padding inside */
        { "Zh==", SL_BASE64 },        /* non-zero unused bits */
        { "Zm9v\n", SL_BASE64 },      /* whitespace */
        { "-_--", SL_BASE64 },        /* the other alphabet */
        { "Zg==", SL_BASE64URL },     /* padding in base64url */
        { "+/++", SL_BASE64URL },
        { "Zh", SL_BASE64URL },
        { "Z", SL_BASE64URL },        /* one character cannot end a group */
        { "Zm9v YmFy", SL_BASE64URL },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        size_t n = 0;
        unsigned char *out = sl_base64_decode(bad[i].text, strlen(bad[i].text), bad[i].form, &n);
        cr_assert_null(out, "'%s' was accepted", bad[i].text);
    }
}
