/*
 * context_test.c - encryption contexts: parsing client JSON and base64
 * (valid maps; not JSON, not objects, non-string values, duplicate and empty
 * keys, bad UTF-8, NUL and control characters, too large, not base64), the
 * canonical JSON form (escaping, order, round trip, stability, bounded
 * output), set/get/copy, and allocation failures at every step.
 */
#include "keystore/policy.h"
#include "testlib.h"

/* Parses a C string as context JSON into c. */
static s3s_result s_parse(struct s3s_kms_context *c, const char *json)
{
    return s3s_kms_context_parse_json(s3s_cur_from_str(json), c);
}

/* The canonical JSON of c, as a heap string (free with s3s_free). */
static char *s_canonical(const struct s3s_kms_context *c)
{
    struct s3s_buf b;
    const char *s = NULL;
    T_OK(s3s_buf_init(&b, 0, 1 << 16));
    T_OK(s3s_kms_context_json(c, &b));
    T_OK(s3s_buf_cstr(&b, &s));
    char *copy = s3s_strdup(s ? s : "");
    s3s_buf_clean_up(&b);
    return copy;
}

static void test_parse_valid(void)
{
    struct s3s_kms_context c;
    s3s_kms_context_init(&c);
    T_OK(s_parse(&c, " { \"zeta\" : \"1\" ,\n\"alpha\":\"2\", \"Beta\":\"\" } \r\n"));
    T_CHECK(c.n == 3);
    /* Sorted bytewise: upper case before lower case. */
    T_STREQ(c.pairs[0].key, "Beta");
    T_STREQ(c.pairs[1].key, "alpha");
    T_STREQ(c.pairs[2].key, "zeta");
    T_STREQ(s3s_kms_context_get(&c, "alpha"), "2");
    T_STREQ(s3s_kms_context_get(&c, "Beta"), "");
    T_CHECK(s3s_kms_context_get(&c, "beta") == NULL);
    T_CHECK(s3s_kms_context_get(&c, "missing") == NULL);
    T_CHECK(s3s_kms_context_get(NULL, "alpha") == NULL);
    s3s_kms_context_clean_up(&c);

    /* Escapes decode; non-ASCII keys sort by their UTF-8 bytes. */
    T_OK(s_parse(&c, "{\"\\u00e9t\\u00e9\":\"caf\\u00e9 \\\"q\\\" \\\\ \\/\","
                     "\"e\":\"\\ud83d\\ude00\"}"));
    T_CHECK(c.n == 2);
    T_STREQ(c.pairs[0].key, "e");
    T_STREQ(c.pairs[0].value, "\xf0\x9f\x98\x80");
    T_STREQ(c.pairs[1].key, "\xc3\xa9t\xc3\xa9");
    T_STREQ(c.pairs[1].value, "caf\xc3\xa9 \"q\" \\ /");
    s3s_kms_context_clean_up(&c);

    T_OK(s_parse(&c, "{}"));
    T_CHECK(c.n == 0);
    s3s_kms_context_clean_up(&c);
    s3s_kms_context_clean_up(&c); /* twice is harmless */
}

static void test_parse_invalid(void)
{
    static const char *const bad[] = {
        "",
        "   ",
        "{",
        "{\"a\":",
        "{\"a\":\"b\"",
        "[]",
        "[\"a\",\"b\"]",
        "\"a\"",
        "null",
        "{\"a\":1}",
        "{\"a\":true}",
        "{\"a\":null}",
        "{\"a\":{}}",
        "{\"a\":[\"b\"]}",
        "{\"a\":\"1\",\"a\":\"2\"}",       /* duplicate key */
        "{\"a\":\"1\",\"\\u0061\":\"2\"}", /* the same key, spelt two ways */
        "{\"\":\"x\"}",                    /* empty key */
        "{\"a\":\"\xff\"}",                /* not UTF-8 */
        "{\"a\":\"\xc0\xaf\"}",            /* overlong form */
        "{\"a\":\"\xed\xa0\x80\"}",        /* an encoded surrogate */
        "{\"a\":\"\xf4\x90\x80\x80\"}",    /* past U+10FFFF */
        "{\"a\":\"\xe2\x82\"}",            /* truncated sequence */
        "{\"a\\u0000b\":\"c\"}",           /* NUL would cut the key short */
        "{\"a\":\"b\\u0000\"}",
        "{\"a\":\"\\ud800\"}",           /* a lone high surrogate */
        "{\"a\":\"x\\uDBFFy\"}",
        "{\"a\":\"\\udc00\"}",           /* a lone low surrogate */
        "{\"\\udfff\":\"a\"}",
        "{\"a\":\"\\ud800\\u0041\"}",    /* high, then no low */
        "{\"a\":\"\\ud800\\ud800\"}",
        "{\"a\":\"\\udc00\\ud800\"}",    /* the halves swapped */
        "{\"a\":\"\\ud83d\\\\ude00\"}",  /* high, then an escaped backslash */
        "{\"a\":\"b\tc\"}", /* raw control character */
        "{\"a\":\"b\"} x",
        "{\"a\":\"b\"}{}",
        "{\"a\":\"b\",}",
        "{'a':'b'}",
        "{/* c */\"a\":\"b\"}",
        "\xef\xbb\xbf{}",
        "{\"a\":\"\\x\"}",
    };
    struct s3s_kms_context c;
    s3s_kms_context_init(&c);
    T_OK(s3s_kms_context_set(&c, "kept", "yes"));
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        s3s_result r = s_parse(&c, bad[i]);
        if (r.code != S3S_ERR_KMS_INVALID_CONTEXT) {
            fprintf(stderr, "accepted or wrong error for bad context #%zu: %s\n", i, bad[i]);
        }
        T_CHECK(r.code == S3S_ERR_KMS_INVALID_CONTEXT);
    }
    /* A NUL byte inside or after the text (json-c would stop at it). */
    T_ERR(s3s_kms_context_parse_json(s3s_cur_from("{\"a\":\"b\"}\0", 10), &c),
          S3S_ERR_KMS_INVALID_CONTEXT);
    T_ERR(s3s_kms_context_parse_json(s3s_cur_from("{\"a\":\"b\0\"}", 10), &c),
          S3S_ERR_KMS_INVALID_CONTEXT);
    /* Failed parses leave the map as it was. */
    T_CHECK(c.n == 1);
    T_STREQ(s3s_kms_context_get(&c, "kept"), "yes");
    T_ERR(s3s_kms_context_parse_json(S3S_CUR_LIT("{}"), NULL), S3S_ERR_INVALID_ARG);
    s3s_kms_context_clean_up(&c);
}

static void test_parse_merges(void)
{
    struct s3s_kms_context c;
    s3s_kms_context_init(&c);
    T_OK(s3s_kms_context_set(&c, "a", "old"));
    T_OK(s3s_kms_context_set(&c, "z", "9"));
    T_OK(s_parse(&c, "{\"b\":\"2\",\"a\":\"1\"}"));
    T_CHECK(c.n == 3);
    T_STREQ(s3s_kms_context_get(&c, "a"), "1");
    T_STREQ(s3s_kms_context_get(&c, "b"), "2");
    T_STREQ(s3s_kms_context_get(&c, "z"), "9");
    T_STREQ(c.pairs[1].key, "b");
    s3s_kms_context_clean_up(&c);
}

/* {"k":"vvv..."} of exactly len bytes. */
static char *s_json_of_len(size_t len)
{
    char *s = s3s_malloc(len + 1);
    size_t fill = len - 8; /* {"k":""} */
    memcpy(s, "{\"k\":\"", 6);
    memset(s + 6, 'v', fill);
    memcpy(s + 6 + fill, "\"}", 3);
    return s;
}

static void test_size_limit(void)
{
    struct s3s_kms_context c;
    s3s_kms_context_init(&c);
    char *max = s_json_of_len(S3S_KMS_CONTEXT_MAX_JSON);
    char *over = s_json_of_len(S3S_KMS_CONTEXT_MAX_JSON + 1);
    T_OK(s_parse(&c, max));
    T_CHECK(c.n == 1 && strlen(s3s_kms_context_get(&c, "k")) == S3S_KMS_CONTEXT_MAX_JSON - 8);
    s3s_kms_context_clean_up(&c);
    T_ERR(s_parse(&c, over), S3S_ERR_KMS_INVALID_CONTEXT);

    /* The same limits through base64. */
    struct s3s_buf b64;
    T_OK(s3s_buf_init(&b64, 0, 1 << 16));
    T_OK(s3s_base64_encode((const uint8_t *)max, strlen(max), &b64));
    T_OK(s3s_kms_context_parse_b64(s3s_buf_cur(&b64), &c));
    T_CHECK(c.n == 1);
    s3s_kms_context_clean_up(&c);
    s3s_buf_reset(&b64);
    T_OK(s3s_base64_encode((const uint8_t *)over, strlen(over), &b64));
    T_ERR(s3s_kms_context_parse_b64(s3s_buf_cur(&b64), &c), S3S_ERR_KMS_INVALID_CONTEXT);
    s3s_buf_clean_up(&b64);
    s3s_free(&max);
    s3s_free(&over);
}

static void test_b64(void)
{
    struct s3s_kms_context c;
    s3s_kms_context_init(&c);
    /* {"aws:s3:arn":"arn:aws:s3:::bucket/key"} */
    T_OK(s3s_kms_context_parse_b64(
        S3S_CUR_LIT("eyJhd3M6czM6YXJuIjoiYXJuOmF3czpzMzo6OmJ1Y2tldC9rZXkifQ=="), &c));
    T_STREQ(s3s_kms_context_get(&c, "aws:s3:arn"), "arn:aws:s3:::bucket/key");

    struct s3s_buf out;
    T_OK(s3s_buf_init(&out, 0, 256));
    T_OK(s3s_kms_context_b64(&c, &out));
    T_BUFEQ(out, "eyJhd3M6czM6YXJuIjoiYXJuOmF3czpzMzo6OmJ1Y2tldC9rZXkifQ==");
    s3s_buf_clean_up(&out);

    static const char *const bad[] = {
        "",         /* decodes to no JSON at all */
        "e30",      /* "{}" without its padding */
        "e30=!",    /* not base64 */
        "e3 0=",    /* spaces */
        "W10=",     /* [] */
        "eyJhIjoxfQ==", /* {"a":1} */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        T_ERR(s3s_kms_context_parse_b64(s3s_cur_from_str(bad[i]), &c), S3S_ERR_KMS_INVALID_CONTEXT);
    }
    T_CHECK(c.n == 1);
    s3s_kms_context_clean_up(&c);
}

static void test_canonical(void)
{
    struct s3s_kms_context c, back;
    s3s_kms_context_init(&c);
    s3s_kms_context_init(&back);
    char *s = s_canonical(&c);
    T_STREQ(s, "{}");
    s3s_free(&s);

    T_OK(s3s_kms_context_set(&c, "b", "quote \" backslash \\ slash / tab \t nl \n \b\f\r \x01 \x1f "
                                      "\x7f"));
    T_OK(s3s_kms_context_set(&c, "a", "caf\xc3\xa9 \xf0\x9f\x98\x80"));
    T_OK(s3s_kms_context_set(&c, "\"k\"", "v"));
    s = s_canonical(&c);
    T_STREQ(s, "{\"\\\"k\\\"\":\"v\",\"a\":\"caf\xc3\xa9 \xf0\x9f\x98\x80\",\"b\":\"quote \\\" "
               "backslash \\\\ slash / tab \\t nl \\n \\b\\f\\r \\u0001 \\u001f \x7f\"}");
    /* It is JSON that parses back to the same map... */
    T_OK(s_parse(&back, s));
    T_CHECK(s3s_kms_context_equal(&c, &back));
    /* ...and writes the same bytes again. */
    char *again = s_canonical(&back);
    T_STREQ(again, s);
    s3s_free(&again);
    s3s_free(&s);
    s3s_kms_context_clean_up(&back);

    /* Equal maps, spelt differently, give equal bytes. */
    T_OK(s_parse(&back, "{ \"b\" : \"x\\u00e9\\/\", \"a\":\"\\u0041\" }"));
    s = s_canonical(&back);
    T_STREQ(s, "{\"a\":\"A\",\"b\":\"x\xc3\xa9/\"}");
    s3s_free(&s);
    s3s_kms_context_clean_up(&back);

    /* The longest accepted context, all in long escapes, still parses back
     * from its canonical form: no character's canonical spelling is longer. */
    char *big = s3s_malloc(S3S_KMS_CONTEXT_MAX_JSON + 1);
    size_t n = 0;
    n += (size_t)snprintf(big, 16, "{\"k\":\"");
    while (n + 6 + 2 <= S3S_KMS_CONTEXT_MAX_JSON) {
        memcpy(big + n, n % 12 ? "\\u000a" : "\\u0001", 6);
        n += 6;
    }
    memcpy(big + n, "\"}", 3);
    T_OK(s_parse(&back, big));
    s = s_canonical(&back);
    T_CHECK(strlen(s) <= strlen(big));
    struct s3s_kms_context again_map;
    s3s_kms_context_init(&again_map);
    T_OK(s_parse(&again_map, s));
    T_CHECK(s3s_kms_context_equal(&back, &again_map));
    s3s_kms_context_clean_up(&again_map);
    s3s_kms_context_clean_up(&back);
    s3s_free(&s);
    s3s_free(&big);

    /* Output past the buffer's maximum fails and leaves it as it was. */
    struct s3s_buf small;
    T_OK(s3s_buf_init(&small, 0, 24));
    T_OK(s3s_buf_append_str(&small, "prefix:"));
    T_ERR(s3s_kms_context_json(&c, &small), S3S_ERR_TOO_BIG);
    T_BUFEQ(small, "prefix:");
    T_ERR(s3s_kms_context_b64(&c, &small), S3S_ERR_TOO_BIG);
    T_BUFEQ(small, "prefix:");
    s3s_buf_clean_up(&small);
    s3s_kms_context_clean_up(&c);
}

static void test_set_get_copy(void)
{
    struct s3s_kms_context c, d;
    s3s_kms_context_init(&c);
    s3s_kms_context_init(&d);
    T_OK(s3s_kms_context_set(&c, "m", "1"));
    T_OK(s3s_kms_context_set(&c, "a", "2"));
    T_OK(s3s_kms_context_set(&c, "z", "3"));
    T_OK(s3s_kms_context_set(&c, "m", "replaced"));
    T_CHECK(c.n == 3);
    T_STREQ(c.pairs[0].key, "a");
    T_STREQ(c.pairs[1].key, "m");
    T_STREQ(c.pairs[2].key, "z");
    T_STREQ(s3s_kms_context_get(&c, "m"), "replaced");

    T_ERR(s3s_kms_context_set(&c, "", "x"), S3S_ERR_INVALID_ARG);
    T_ERR(s3s_kms_context_set(&c, "\xff", "x"), S3S_ERR_INVALID_ARG);
    T_ERR(s3s_kms_context_set(&c, "k", "\xc0\x80"), S3S_ERR_INVALID_ARG);
    T_ERR(s3s_kms_context_set(&c, NULL, "x"), S3S_ERR_INVALID_ARG);
    T_ERR(s3s_kms_context_set(&c, "k", NULL), S3S_ERR_INVALID_ARG);
    T_ERR(s3s_kms_context_set(NULL, "k", "v"), S3S_ERR_INVALID_ARG);
    T_CHECK(c.n == 3);

    /* A copy is deep and replaces what the target held. */
    T_OK(s3s_kms_context_set(&d, "old", "gone"));
    T_OK(s3s_kms_context_copy(&c, &d));
    T_CHECK(s3s_kms_context_equal(&c, &d));
    T_CHECK(s3s_kms_context_get(&d, "old") == NULL);
    T_OK(s3s_kms_context_set(&c, "a", "changed"));
    T_STREQ(s3s_kms_context_get(&d, "a"), "2");
    T_OK(s3s_kms_context_copy(&d, &d));
    T_CHECK(d.n == 3);
    struct s3s_kms_context empty;
    s3s_kms_context_init(&empty);
    T_OK(s3s_kms_context_copy(&empty, &d));
    T_CHECK(d.n == 0);
    s3s_kms_context_clean_up(&c);
    s3s_kms_context_clean_up(&d);
}

/* Fails the Nth allocation for every N: each step either works or reports
 * S3S_ERR_NOMEM with the map unchanged, and nothing leaks. */
static void test_allocation_failures(void)
{
    static const char json[] = "{\"c\":\"3\",\"a\":\"1\",\"b\":\"2\"}";
    bool done = false;
    for (long n = 0; !done && n < 1000; n++) {
        struct s3s_kms_context c, d;
        s3s_kms_context_init(&c);
        s3s_kms_context_init(&d);
        s3s_result set = s3s_kms_context_set(&c, "b", "old");
        s3s_mem_fail_after(n);
        s3s_result r = s_parse(&c, json);
        if (s3s_is_ok(r)) {
            r = s3s_kms_context_copy(&c, &d);
        }
        if (s3s_is_ok(r)) {
            r = s3s_kms_context_set(&d, "d", "4");
        }
        s3s_mem_fail_after(-1);
        T_OK(set);
        if (s3s_is_ok(r)) {
            done = true;
            T_CHECK(c.n == 3 && d.n == 4);
        } else {
            T_ERR(r, S3S_ERR_NOMEM);
            T_CHECK(c.n == 1 || c.n == 3);
        }
        s3s_kms_context_clean_up(&c);
        s3s_kms_context_clean_up(&d);
    }
    T_CHECK(done);
}

int main(void)
{
    test_parse_valid();
    test_parse_invalid();
    test_parse_merges();
    test_size_limit();
    test_b64();
    test_canonical();
    test_set_get_copy();
    test_allocation_failures();
    return t_finish("keystore.context");
}
