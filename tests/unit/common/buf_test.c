/* buf_test.c - cursors, bounded buffers, number parsing, encoders, time. */
#include "testlib.h"

static void test_buf_bounds(void)
{
    struct s3s_buf b;
    T_OK(s3s_buf_init(&b, 4, 8));
    T_OK(s3s_buf_append_str(&b, "12345678"));
    T_ERR(s3s_buf_append_byte(&b, '9'), S3S_ERR_TOO_BIG);
    T_CHECK(b.len == 8);
    T_BUFEQ(b, "12345678");
    T_CHECK(s3s_buf_validate(&b));
    s3s_buf_clean_up(&b);

    T_OK(s3s_buf_init(&b, 0, 64));
    T_OK(s3s_buf_appendf(&b, "%d-%s", 42, "x"));
    T_BUFEQ(b, "42-x");
    s3s_buf_reset(&b);
    const uint8_t bytes[] = {0x00, 0xab, 0xff};
    T_OK(s3s_buf_append_hex(&b, bytes, sizeof(bytes)));
    T_BUFEQ(b, "00abff");
    s3s_buf_clean_up_secure(&b);
}

static void test_parse_u64(void)
{
    uint64_t v = 0;
    T_OK(s3s_parse_u64(S3S_CUR_LIT("0"), 10, &v));
    T_CHECK(v == 0);
    T_OK(s3s_parse_u64(S3S_CUR_LIT("18446744073709551615"), UINT64_MAX, &v));
    T_CHECK(v == UINT64_MAX);
    T_ERR(s3s_parse_u64(S3S_CUR_LIT("18446744073709551616"), UINT64_MAX, &v), S3S_ERR_INVALID_ARG);
    T_ERR(s3s_parse_u64(S3S_CUR_LIT(""), 10, &v), S3S_ERR_INVALID_ARG);
    T_ERR(s3s_parse_u64(S3S_CUR_LIT("-1"), 10, &v), S3S_ERR_INVALID_ARG);
    T_ERR(s3s_parse_u64(S3S_CUR_LIT(" 1"), 10, &v), S3S_ERR_INVALID_ARG);
    T_ERR(s3s_parse_u64(S3S_CUR_LIT("+1"), 10, &v), S3S_ERR_INVALID_ARG);
    T_ERR(s3s_parse_u64(S3S_CUR_LIT("11"), 10, &v), S3S_ERR_INVALID_ARG);
}

static void test_cursors(void)
{
    struct s3s_cur c = S3S_CUR_LIT("a=b&c"), head;
    T_CHECK(s3s_cur_split(&c, '&', &head));
    T_CHECK(s3s_cur_eq_str(head, "a=b"));
    T_CHECK(s3s_cur_eq_str(c, "c"));
    T_CHECK(!s3s_cur_split(&c, '&', &head));
    T_CHECK(s3s_cur_eq_str(s3s_cur_trim(S3S_CUR_LIT(" \t x y \t")), "x y"));
    T_CHECK(s3s_cur_eq_str_ignore_case(S3S_CUR_LIT("X-Amz-Date"), "x-amz-date"));
    T_CHECK(!s3s_cur_eq_str_ignore_case(S3S_CUR_LIT("X-Amz-Dat"), "x-amz-date"));
}

static void test_ct_and_hex(void)
{
    uint8_t out[2];
    T_CHECK(s3s_hex_decode(S3S_CUR_LIT("abff"), out, 2));
    T_CHECK(out[0] == 0xab && out[1] == 0xff);
    T_CHECK(!s3s_hex_decode(S3S_CUR_LIT("ABFF"), out, 2)); /* SigV4 hex is lower-case */
    T_CHECK(!s3s_hex_decode(S3S_CUR_LIT("abf"), out, 2));
    T_CHECK(s3s_ct_eq((const uint8_t *)"abc", 3, (const uint8_t *)"abc", 3));
    T_CHECK(!s3s_ct_eq((const uint8_t *)"abc", 3, (const uint8_t *)"abd", 3));
    T_CHECK(!s3s_ct_eq((const uint8_t *)"abc", 3, (const uint8_t *)"ab", 2));
}

static void test_base64(void)
{
    struct s3s_buf b;
    T_OK(s3s_buf_init(&b, 0, 64));
    T_OK(s3s_base64_encode((const uint8_t *)"hello", 5, &b));
    T_BUFEQ(b, "aGVsbG8=");
    s3s_buf_reset(&b);
    T_OK(s3s_base64_decode(S3S_CUR_LIT("aGVsbG8="), &b));
    T_CHECK(b.len == 5 && memcmp(b.ptr, "hello", 5) == 0);
    s3s_buf_reset(&b);
    T_ERR(s3s_base64_decode(S3S_CUR_LIT("aGVsbG8"), &b), S3S_ERR_INVALID_ARG);
    T_ERR(s3s_base64_decode(S3S_CUR_LIT("aG=sbG8="), &b), S3S_ERR_INVALID_ARG);
    s3s_buf_clean_up(&b);
}

static void test_time(void)
{
    int64_t t = 0;
    T_OK(s3s_time_parse_iso8601_basic(S3S_CUR_LIT("20150830T123600Z"), &t));
    T_CHECK(t == 1440938160);
    char iso[17], http[30];
    s3s_time_format_iso8601_basic(t, iso);
    T_STREQ(iso, "20150830T123600Z");
    s3s_time_format_http(t, http);
    T_STREQ(http, "Sun, 30 Aug 2015 12:36:00 GMT");
    int64_t t2 = 0;
    T_OK(s3s_time_parse_http(s3s_cur_from_str(http), &t2));
    T_CHECK(t2 == t);
    T_OK(s3s_time_parse_http(S3S_CUR_LIT("Sun, 30 Aug 2015 12:36:00 +0000"), &t2));
    T_CHECK(t2 == t);
    T_ERR(s3s_time_parse_http(S3S_CUR_LIT("Sun, 30 Aug 2015 12:36:00 +0100"), &t2),
          S3S_ERR_INVALID_ARG);
    T_ERR(s3s_time_parse_iso8601_basic(S3S_CUR_LIT("20151330T123600Z"), &t), S3S_ERR_INVALID_ARG);
    T_ERR(s3s_time_parse_iso8601_basic(S3S_CUR_LIT("20150830 123600Z"), &t), S3S_ERR_INVALID_ARG);
}

static void test_alloc_failure(void)
{
    struct s3s_buf b;
    s3s_mem_fail_after(0);
    T_ERR(s3s_buf_init(&b, 16, 64), S3S_ERR_NOMEM);
    s3s_mem_fail_after(-1);
    struct s3s_secret s;
    T_OK(s3s_secret_from("key", 3, &s));
    s3s_secret_destroy(&s);
    T_CHECK(s.ptr == NULL);
}

int main(void)
{
    test_buf_bounds();
    test_parse_u64();
    test_cursors();
    test_ct_and_hex();
    test_base64();
    test_time();
    test_alloc_failure();
    return t_finish("common.buf");
}
