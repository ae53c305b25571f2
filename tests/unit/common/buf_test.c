/* buf_test.c - cursors, bounded buffers, number parsing, encoders, time,
 * secret memory. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

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
    T_CHECK(s3s_cur_list_has(S3S_CUR_LIT("gzip, AWS-Chunked"), "aws-chunked"));
    T_CHECK(s3s_cur_list_has(S3S_CUR_LIT("aws-chunked"), "aws-chunked"));
    T_CHECK(!s3s_cur_list_has(S3S_CUR_LIT("gzip, aws-chunkedx"), "aws-chunked"));
    T_CHECK(!s3s_cur_list_has(S3S_CUR_LIT(""), "aws-chunked"));
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
    t2 = 0;
    T_OK(s3s_time_parse_http(S3S_CUR_LIT("Sun, 30 Aug 2015 12:36:00 -0000"), &t2));
    T_CHECK(t2 == t);
    T_ERR(s3s_time_parse_http(S3S_CUR_LIT("Sun, 30 Aug 2015 12:36:00 -0100"), &t2),
          S3S_ERR_INVALID_ARG);
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

/* Whether the mapping holding p has the "dd" VmFlag (MADV_DONTDUMP) in
 * /proc/self/smaps: the kernel leaves such mappings out of core files. */
static bool s_not_dumped(const void *p)
{
    FILE *f = fopen("/proc/self/smaps", "r");
    T_CHECK(f != NULL);
    if (!f) {
        return false;
    }
    char line[512];
    bool inside = false, dd = false, found = false;
    uintptr_t a = (uintptr_t)p;
    while (!found && fgets(line, sizeof(line), f)) {
        unsigned long lo = 0, hi = 0;
        if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2) {
            inside = a >= lo && a < hi;
        } else if (inside && strncmp(line, "VmFlags:", 8) == 0) {
            dd = strstr(line, " dd") != NULL;
            found = true;
        }
    }
    fclose(f);
    return dd;
}

static void test_secrets_stay_out_of_core_dumps(void)
{
    long live = s3s_mem_live();
    /* Small ones (keys, client secrets) and one larger than the shared
     * locked heap would take (a big DEK cache). */
    size_t sizes[] = {1, 32, 40, 4096, 3u << 20};
    struct s3s_secret s[5];
    for (size_t i = 0; i < 5; i++) {
        T_OK(s3s_secret_new(sizes[i], &s[i]));
        T_CHECK(s[i].len == sizes[i]);
        T_CHECK(((uintptr_t)s[i].ptr & 15) == 0);
        memset(s[i].ptr, 0x5a, sizes[i]);
        T_CHECK(s_not_dumped(s[i].ptr));
        T_CHECK(s_not_dumped(s[i].ptr + sizes[i] - 1));
    }
    /* A plain allocation is not marked (the check itself works). */
    char *plain = s3s_malloc(64);
    T_CHECK(plain != NULL && !s_not_dumped(plain));
    s3s_free(&plain);
    T_CHECK(s3s_mem_live() == live + 5);
    for (size_t i = 0; i < 5; i++) {
        s3s_secret_destroy(&s[i]);
        T_CHECK(s[i].ptr == NULL && s[i].len == 0);
    }
    T_CHECK(s3s_mem_live() == live);
    struct s3s_secret z;
    T_OK(s3s_secret_from("", 0, &z));
    T_CHECK(s_not_dumped(z.ptr));
    s3s_secret_destroy(&z);
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
    test_secrets_stay_out_of_core_dumps();
    return t_finish("common.buf");
}
