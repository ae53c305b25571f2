/*
 * canonical_test.c - the canonical forms on their own: S3's URI encoding
 * (decode once, encode all but unreserved and '/', no normalisation), the
 * query (decode, re-encode with '/', sort, "a" -> "a="), header values
 * (trim, collapse, join repeats), idempotence of path and query (the proxy
 * signs already-canonical forms), AWS's published signing-key example, and
 * the signing-key cache under concurrent use.
 */
#include <openssl/evp.h>
#include <pthread.h>

#include "sigv4/sigv4.h"
#include "testlib.h"

static void s_path(const char *raw, const char *want)
{
    struct s3s_buf b;
    T_OK(s3s_buf_init(&b, 0, 4096));
    T_OK(s3s_sigv4_canonical_path(s3s_cur_from_str(raw), &b));
    T_BUFEQ(b, want);
    s3s_buf_clean_up(&b);
}

static void s_query(const char *raw, bool drop, const char *want)
{
    struct s3s_buf b;
    T_OK(s3s_buf_init(&b, 0, 4096));
    T_OK(s3s_sigv4_canonical_query(s3s_cur_from_str(raw), drop, &b));
    T_BUFEQ(b, want);
    s3s_buf_clean_up(&b);
}

static void s_paths(void)
{
    s_path("", "/");
    s_path("/", "/");
    s_path("/bucket/key", "/bucket/key");
    /* Unreserved bytes stay, everything else is %XX in upper case. */
    s_path("/AZaz09-._~", "/AZaz09-._~");
    s_path("/a b+c", "/a%20b%2Bc");
    s_path("/!$&'()*,;=:@", "/%21%24%26%27%28%29%2A%2C%3B%3D%3A%40");
    /* Decoded once: lower-case escapes come back upper-case, %2520 stays a
     * literal "%20" (S3 does not double-decode). */
    s_path("/%e1%88%b4", "/%E1%88%B4");
    s_path("/a%2520b", "/a%2520b");
    s_path("/a%20b", "/a%20b");
    /* An encoded '/' names the same key as a plain one. */
    s_path("/a%2Fb", "/a/b");
    /* A stray '%' is a literal byte (what SDKs sign for such keys). */
    s_path("/100%", "/100%25");
    s_path("/%zz", "/%25zz");
    s_path("/%4", "/%254");
    /* S3 does not normalise: dot segments and doubled slashes stay. */
    s_path("/a/./b/../c", "/a/./b/../c");
    s_path("//x//", "//x//");
    /* Raw UTF-8 and control bytes. */
    s_path("/\xe1\x88\xb4", "/%E1%88%B4");
    s_path("/\x01\x7f\xff", "/%01%7F%FF");
    struct s3s_buf b;
    T_OK(s3s_buf_init(&b, 0, 64));
    T_OK(s3s_sigv4_canonical_path(s3s_cur_from("/a\0b", 4), &b));
    T_BUFEQ(b, "/a%00b");
    s3s_buf_clean_up(&b);
}

static void s_queries(void)
{
    s_query("", false, "");
    s_query("a", false, "a=");
    s_query("a=", false, "a=");
    s_query("lifecycle", false, "lifecycle=");
    s_query("b=2&a=1", false, "a=1&b=2");
    /* Sorted by name, then by value. */
    s_query("a=2&a=10&a=1", false, "a=1&a=10&a=2");
    /* '/' is encoded in the query; '=' after the first belongs to the value. */
    s_query("prefix=photos/2006/&delimiter=/", false, "delimiter=%2F&prefix=photos%2F2006%2F");
    s_query("k=a=b", false, "k=a%3Db");
    /* '+' is a literal plus, not a space (SigV4 signs %20 for spaces). */
    s_query("q=a+b&r=a%20b", false, "q=a%2Bb&r=a%20b");
    /* Sorting is by the encoded bytes: '%' (0x25) before letters. */
    s_query("Param-3=Value3&Param=Value2&%E1%88%B4=Value1", false,
            "%E1%88%B4=Value1&Param=Value2&Param-3=Value3");
    s_query("b=1&B=2", false, "B=2&b=1");
    /* Empty items are dropped; an empty name is kept. */
    s_query("&&a=1&", false, "a=1");
    s_query("=x", false, "=x");
    s_query("a=%zz", false, "a=%25zz");
    s_query("x=%7e%41", false, "x=~A");
    /* Presigned verify leaves the signature out. */
    s_query("X-Amz-Signature=abc&a=1&X-Amz-Date=20130524T000000Z", true,
            "X-Amz-Date=20130524T000000Z&a=1");
    s_query("X-Amz-Signature=abc&a=1", false, "X-Amz-Signature=abc&a=1");
}

/* Canonical form of a canonical form is itself: the proxy sends canonical
 * path and query, and the signer canonicalises them once more. */
static void s_idempotence(void)
{
    uint32_t seed = 12345;
    struct s3s_buf raw, c1, c2;
    T_OK(s3s_buf_init(&raw, 0, 256));
    T_OK(s3s_buf_init(&c1, 0, 4096));
    T_OK(s3s_buf_init(&c2, 0, 4096));
    /* Biased towards the bytes that matter: % / & = + space and hex. */
    static const char alphabet[] = "%/&=+ aF0~.-_zZ%2f%2F%20";
    int bad_path = 0, bad_query = 0;
    for (int iter = 0; iter < 5000; iter++) {
        s3s_buf_reset(&raw);
        size_t n = (seed = seed * 1103515245u + 12345u) >> 27;
        for (size_t i = 0; i < n; i++) {
            seed = seed * 1103515245u + 12345u;
            uint8_t c = (seed >> 24) & 1 ? (uint8_t)(seed >> 16)
                                         : (uint8_t)alphabet[(seed >> 16) % (sizeof(alphabet) - 1)];
            T_OK(s3s_buf_append_byte(&raw, c));
        }
        s3s_buf_reset(&c1);
        s3s_buf_reset(&c2);
        T_OK(s3s_sigv4_canonical_path(s3s_buf_cur(&raw), &c1));
        T_OK(s3s_sigv4_canonical_path(s3s_buf_cur(&c1), &c2));
        bad_path += !s3s_cur_eq(s3s_buf_cur(&c1), s3s_buf_cur(&c2));
        s3s_buf_reset(&c1);
        s3s_buf_reset(&c2);
        T_OK(s3s_sigv4_canonical_query(s3s_buf_cur(&raw), false, &c1));
        T_OK(s3s_sigv4_canonical_query(s3s_buf_cur(&c1), false, &c2));
        bad_query += !s3s_cur_eq(s3s_buf_cur(&c1), s3s_buf_cur(&c2));
    }
    T_CHECK(bad_path == 0);
    T_CHECK(bad_query == 0);
    s3s_buf_clean_up(&raw);
    s3s_buf_clean_up(&c1);
    s3s_buf_clean_up(&c2);
}

static void s_headers(void)
{
    struct s3s_sigv4_header h[] = {
        {S3S_CUR_LIT("Host"), S3S_CUR_LIT("example.amazonaws.com")},
        {S3S_CUR_LIT("My-Header1"), S3S_CUR_LIT("  a   b \t c  ")},
        {S3S_CUR_LIT("X-Amz-Meta-Z"), S3S_CUR_LIT("2")},
        {S3S_CUR_LIT("x-amz-meta-z"), S3S_CUR_LIT(" 1 ")},
        {S3S_CUR_LIT("Empty"), S3S_CUR_LIT("   ")},
        {S3S_CUR_LIT("Quoted"), S3S_CUR_LIT("\"a   b\"")},
    };
    struct s3s_sigv4_request req = {S3S_CUR_LIT("GET"), S3S_CUR_LIT("/k"), S3S_CUR_LIT("b&a=1"), h,
                                    6};
    struct s3s_buf b;
    T_OK(s3s_buf_init(&b, 0, 4096));
    T_OK(s3s_sigv4_canonical_request(&req, S3S_CUR_LIT("empty;host;my-header1;quoted;x-amz-meta-z"),
                                     false, S3S_CUR_LIT(S3S_SIGV4_UNSIGNED_PAYLOAD), &b));
    /* Repeated headers join in order of appearance; inner runs of spaces
     * collapse even inside quotes (SigV4 says so; S3 follows). */
    T_BUFEQ(b, "GET\n/k\na=1&b=\n"
               "empty:\nhost:example.amazonaws.com\nmy-header1:a b c\nquoted:\"a b\"\n"
               "x-amz-meta-z:2,1\n\n"
               "empty;host;my-header1;quoted;x-amz-meta-z\nUNSIGNED-PAYLOAD");

    /* A signed header the request lacks is signed empty (and then the
     * signature fails, as on AWS). Upper-case names in the list are
     * lower-cased. */
    s3s_buf_reset(&b);
    T_OK(s3s_sigv4_canonical_request(&req, S3S_CUR_LIT("Host;missing"), false,
                                     S3S_CUR_LIT(S3S_SIGV4_EMPTY_SHA256), &b));
    T_BUFEQ(b, "GET\n/k\na=1&b=\nhost:example.amazonaws.com\nmissing:\n\nhost;missing\n"
               S3S_SIGV4_EMPTY_SHA256);

    /* An empty name in the list is malformed. */
    s3s_buf_reset(&b);
    T_ERR(s3s_sigv4_canonical_request(&req, S3S_CUR_LIT("host;;x"), false,
                                      S3S_CUR_LIT(S3S_SIGV4_EMPTY_SHA256), &b),
          S3S_ERR_AUTH_HEADER_MALFORMED);

    /* String to sign. */
    s3s_buf_reset(&b);
    struct s3s_buf s;
    T_OK(s3s_buf_init(&s, 0, 4096));
    T_OK(s3s_buf_append_str(&b, "x"));
    int64_t t = 0;
    T_OK(s3s_time_parse_iso8601_basic(S3S_CUR_LIT("20150830T123600Z"), &t));
    T_OK(s3s_sigv4_string_to_sign(t, "20150830", "us-east-1", "s3", s3s_buf_cur(&b), &s));
    /* sha256("x") */
    T_BUFEQ(s, "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/s3/aws4_request\n"
               "2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881");
    s3s_buf_clean_up(&s);
    s3s_buf_clean_up(&b);
}

static void s_hex(const uint8_t k[32], char out[65])
{
    static const char d[] = "0123456789abcdef";
    for (size_t i = 0; i < 32; i++) {
        out[2 * i] = d[k[i] >> 4];
        out[2 * i + 1] = d[k[i] & 15];
    }
    out[64] = '\0';
}

/* Signing key without the cache, straight from the definition. */
static void s_ref_key(const char *secret, const char *date, const char *region, uint8_t out[32])
{
    char k0[128];
    snprintf(k0, sizeof(k0), "AWS4%s", secret);
    uint8_t a[32], b[32];
    EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, k0, strlen(k0), (const uint8_t *)date,
              strlen(date), a, 32, NULL);
    EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, a, 32, (const uint8_t *)region, strlen(region),
              b, 32, NULL);
    EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, b, 32, (const uint8_t *)"s3", 2, a, 32, NULL);
    EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, a, 32, (const uint8_t *)"aws4_request", 12, out,
              32, NULL);
}

struct s_worker {
    int id;
    int bad;
};

static struct s3s_secret g_secrets[3];
static const char *const g_secret_str[3] = {"secret-zero", "secret-one", "secret-two"};

static void *s_worker_main(void *arg)
{
    struct s_worker *w = arg;
    char date[9];
    const char *regions[] = {"us-east-1", "eu-west-1", "ap-south-1"};
    /* 3 secrets x 3 regions x 10 dates = 90 keys: more than the cache holds,
     * so entries are evicted while other threads read. */
    for (int i = 0; i < 600; i++) {
        int k = (i * 7 + w->id * 13) % 90;
        snprintf(date, sizeof(date), "201501%02d", 10 + k % 10);
        const char *region = regions[(k / 10) % 3];
        int s = k / 30;
        uint8_t got[32], want[32];
        if (s3s_failed(s3s_sigv4_signing_key(&g_secrets[s], date, region, "s3", got))) {
            w->bad++;
            continue;
        }
        s_ref_key(g_secret_str[s], date, region, want);
        w->bad += memcmp(got, want, 32) != 0;
    }
    return NULL;
}

static void s_signing_keys(void)
{
    /* AWS General Reference, "Examples of how to derive a signing key":
     * kSecret wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY, 20120215, us-east-1,
     * iam. */
    struct s3s_secret sec;
    T_OK(s3s_secret_from("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", 40, &sec));
    uint8_t k[32], k2[32];
    char hex[65];
    T_OK(s3s_sigv4_signing_key(&sec, "20120215", "us-east-1", "iam", k));
    s_hex(k, hex);
    T_STREQ(hex, "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d");
    /* From the cache: the same. */
    T_OK(s3s_sigv4_signing_key(&sec, "20120215", "us-east-1", "iam", k2));
    T_CHECK(memcmp(k, k2, 32) == 0);
    /* Any part of the key changes the result (the cache keys on all four). */
    T_OK(s3s_sigv4_signing_key(&sec, "20120216", "us-east-1", "iam", k2));
    T_CHECK(memcmp(k, k2, 32) != 0);
    T_OK(s3s_sigv4_signing_key(&sec, "20120215", "us-east-2", "iam", k2));
    T_CHECK(memcmp(k, k2, 32) != 0);
    T_OK(s3s_sigv4_signing_key(&sec, "20120215", "us-east-1", "s3", k2));
    T_CHECK(memcmp(k, k2, 32) != 0);
    struct s3s_secret other;
    T_OK(s3s_secret_from("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEX", 40, &other));
    T_OK(s3s_sigv4_signing_key(&other, "20120215", "us-east-1", "iam", k2));
    T_CHECK(memcmp(k, k2, 32) != 0);
    s3s_secret_destroy(&other);
    /* After clean-up the cache comes back on demand. */
    s3s_sigv4_cache_clean_up();
    T_OK(s3s_sigv4_signing_key(&sec, "20120215", "us-east-1", "iam", k2));
    T_CHECK(memcmp(k, k2, 32) == 0);
    s3s_secret_destroy(&sec);

    /* Concurrent use with eviction. */
    for (int i = 0; i < 3; i++) {
        T_OK(s3s_secret_from(g_secret_str[i], strlen(g_secret_str[i]), &g_secrets[i]));
    }
    pthread_t th[4];
    struct s_worker w[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (struct s_worker){i, 0};
        T_CHECK(pthread_create(&th[i], NULL, s_worker_main, &w[i]) == 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        T_CHECK(w[i].bad == 0);
    }
    for (int i = 0; i < 3; i++) {
        s3s_secret_destroy(&g_secrets[i]);
    }
}

int main(void)
{
    s_paths();
    s_queries();
    s_idempotence();
    s_headers();
    s_signing_keys();
    s3s_sigv4_cache_clean_up();
    return t_finish("sigv4.canonical");
}
