/* test_vis.c: values rendered visibly for terminals (lib/vis.c). */
#include <criterion/criterion.h>

#include <string.h>

#include "vis.h"

static void expect_len(const char *in, size_t len, const char *want)
{
    sl_buf b = SL_BUF_INIT;
    sl_vis_append(&b, in, len);
    cr_assert_str_eq(sl_buf_str(&b), want);
    sl_buf_free(&b);
}

/* in: a string literal (its length is taken with sizeof: it may hold NUL). */
#define expect(in, want) expect_len((in), sizeof(in) - 1, (want))

Test(vis, controls_are_shown_not_obeyed)
{
    expect("plain text, ünïcode ✓", "plain text, ünïcode ✓");
    expect("\x1b[2J\x1b[Happrovals: 2 of 2", "\\e[2J\\e[Happrovals: 2 of 2");
    expect("a\rb\bc\nd\te\x7f\x01", "a\\rb\\bc\\nd\\te\\x7f\\x01");
    expect("nul\0here", "nul\\x00here");
    /* C1 CSI (U+009B), bidi override (U+202E), line separator (U+2028). */
    expect("\xc2\x9b" "2J \xe2\x80\xae" "evil \xe2\x80\xa8", "\\u009b2J \\u202eevil \\u2028");
    /* Bytes that are not UTF-8 (a bare C1 byte, a cut sequence). */
    expect("\x9b" "x \xe2\x80", "\\x9bx \\xe2\\x80");
    expect("back\\slash", "back\\slash");
}

Test(vis, fixed_buffers_cut_between_characters_and_escapes)
{
    char buf[16];
    cr_assert_str_eq(sl_vis(buf, sizeof buf, NULL), "");
    cr_assert_str_eq(sl_vis(buf, sizeof buf, "short"), "short");
    cr_assert_str_eq(sl_vis(buf, sizeof buf, "0123456789abcdefghij"), "0123456789ab...");
    /* The cut never leaves half an escape or half a character. */
    cr_assert_str_eq(sl_vis(buf, sizeof buf, "0123456789\x1b[31m"), "0123456789...");
    cr_assert_str_eq(sl_vis(buf, sizeof buf, "0123456789é\xc3\xa9xyz"), "0123456789é...");
    for (size_t n = 1; n < 12; n++) {
        char small[12];
        sl_vis(small, n, "\x1b\x1b\x1b\x1b\x1b\x1b");
        cr_assert(strlen(small) < n);
        cr_assert(strchr(small, 0x1b) == NULL);
        size_t len = strlen(small);
        cr_assert(len == 0 || small[len - 1] != '\\', "'%s' ends in half an escape", small);
    }
}

Test(vis, json_keeps_its_meaning)
{
    const char json[] = "{\"a\":\"x\x7fy\xc2\x9b\xe2\x80\xae\",\n\"b\":[1,\t2]}";
    sl_buf b = SL_BUF_INIT;
    sl_vis_json(&b, json, sizeof json - 1);
    cr_assert_str_eq(sl_buf_str(&b), "{\"a\":\"x\\u007fy\\u009b\\u202e\",\n\"b\":[1,\t2]}");
    sl_buf_free(&b);
}
