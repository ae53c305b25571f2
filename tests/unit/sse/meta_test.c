/*
 * meta_test.c - the object metadata codec: encode then decode for SSE-S3 and
 * SSE-KMS, refusal of malformed or future-format metadata, and the binding
 * of the data-key associated data to bucket, key and format.
 */
#include "sse/sse.h"
#include "testlib.h"

#define MAXH 16
struct s_hdrs {
    char name[MAXH][64];
    char value[MAXH][1024];
    int n;
};

static s3s_result s_emit(void *ctx, const char *name, struct s3s_cur value)
{
    struct s_hdrs *h = ctx;
    S3S_ENSURE(h->n < MAXH && value.len < 1024, S3S_ERR_TOO_BIG);
    snprintf(h->name[h->n], 64, "%s", name);
    memcpy(h->value[h->n], value.ptr, value.len);
    h->value[h->n][value.len] = '\0';
    h->n++;
    return s3s_ok();
}

static bool s_get(void *ctx, const char *name, struct s3s_cur *value)
{
    struct s_hdrs *h = ctx;
    for (int i = 0; i < h->n; i++) {
        if (strcmp(h->name[i], name) == 0) {
            *value = s3s_cur_from_str(h->value[i]);
            return true;
        }
    }
    return false;
}

static void s_set(struct s_hdrs *h, const char *name, const char *value)
{
    for (int i = 0; i < h->n; i++) {
        if (strcmp(h->name[i], name) == 0) {
            snprintf(h->value[i], 1024, "%s", value);
        }
    }
}

static void test_round_trip(void)
{
    struct s3s_sse_meta m, d;
    s3s_sse_meta_init(&m);
    m.root_version = 7;
    uint8_t dek[60];
    memset(dek, 0xab, sizeof(dek));
    T_OK(s3s_buf_append(&m.wrapped_dek, dek, sizeof(dek)));
    m.has_plain_md5 = true;
    memset(m.plain_md5, 0x11, 16);
    struct s_hdrs h = {0};
    T_OK(s3s_sse_meta_encode(&m, s_emit, &h));
    T_CHECK(s3s_sse_meta_present(s_get, &h));
    s3s_sse_meta_init(&d);
    T_OK(s3s_sse_meta_decode(s_get, &h, &d));
    T_CHECK(d.kind == S3S_SSE_KIND_S3 && d.root_version == 7 && d.aead == S3S_SSE_AES_256_GCM);
    T_CHECK(d.segment_size == S3S_SSE_SEGMENT_SIZE && d.wrapped_dek.len == sizeof(dek));
    T_CHECK(d.has_plain_md5 && d.plain_md5[15] == 0x11);

    /* Tampered or unknown fields are refused. */
    s_set(&h, "x-amz-meta-s3seal-version", "2");
    T_ERR(s3s_sse_meta_decode(s_get, &h, &d), S3S_ERR_SSE_BAD_FORMAT);
    s_set(&h, "x-amz-meta-s3seal-version", "1");
    s_set(&h, "x-amz-meta-s3seal-alg", "AES-256-CBC");
    T_ERR(s3s_sse_meta_decode(s_get, &h, &d), S3S_ERR_SSE_BAD_FORMAT);
    s_set(&h, "x-amz-meta-s3seal-alg", "CHACHA20-POLY1305");
    s_set(&h, "x-amz-meta-s3seal-key", "sse-s3:0");
    T_ERR(s3s_sse_meta_decode(s_get, &h, &d), S3S_ERR_SSE_BAD_FORMAT);
    /* An SSE-KMS key reference needs its encryption context. */
    s_set(&h, "x-amz-meta-s3seal-key", "kms:3:arn:aws:kms:us-east-1:111122223333:key/k1");
    T_ERR(s3s_sse_meta_decode(s_get, &h, &d), S3S_ERR_SSE_BAD_FORMAT);
    s_set(&h, "x-amz-meta-s3seal-key", "sse-s3:7");
    s_set(&h, "x-amz-meta-s3seal-dek", "not base64!");
    T_ERR(s3s_sse_meta_decode(s_get, &h, &d), S3S_ERR_SSE_BAD_FORMAT);
    s_set(&h, "x-amz-meta-s3seal-segment", "12x");
    T_ERR(s3s_sse_meta_decode(s_get, &h, &d), S3S_ERR_SSE_BAD_FORMAT);

    struct s_hdrs none = {0};
    T_CHECK(!s3s_sse_meta_present(s_get, &none));
    s3s_sse_meta_clean_up(&m);
    s3s_sse_meta_clean_up(&d);
}

/* SSE-KMS metadata: the key ARN and version, the context and the bucket key
 * come back as stored; a context on an SSE-S3 object is refused. */
static void test_kms_round_trip(void)
{
    struct s3s_sse_meta m, d;
    s3s_sse_meta_init(&m);
    s3s_sse_meta_init(&d);
    m.kind = S3S_SSE_KIND_KMS;
    m.kms_key_version = 2;
    T_OK(s3s_buf_append_str(&m.kms_key_arn, "arn:aws:kms:us-east-1:111122223333:key/k1"));
    T_OK(s3s_buf_append_str(&m.kms_context, "{\"aws:s3:arn\":\"arn:aws:s3:::b/k\"}"));
    uint8_t blob[60];
    memset(blob, 0x5a, sizeof(blob));
    T_OK(s3s_buf_append(&m.wrapped_dek, blob, sizeof(blob)));
    T_OK(s3s_buf_append(&m.bucket_key, blob, sizeof(blob)));
    struct s_hdrs h = {0};
    T_OK(s3s_sse_meta_encode(&m, s_emit, &h));
    T_OK(s3s_sse_meta_decode(s_get, &h, &d));
    T_CHECK(d.kind == S3S_SSE_KIND_KMS && d.kms_key_version == 2);
    T_BUFEQ(d.kms_key_arn, "arn:aws:kms:us-east-1:111122223333:key/k1");
    T_BUFEQ(d.kms_context, "{\"aws:s3:arn\":\"arn:aws:s3:::b/k\"}");
    T_CHECK(d.bucket_key.len == sizeof(blob) && d.wrapped_dek.len == sizeof(blob));
    s_set(&h, "x-amz-meta-s3seal-key", "sse-s3:1");
    T_ERR(s3s_sse_meta_decode(s_get, &h, &d), S3S_ERR_SSE_BAD_FORMAT);
    s3s_sse_meta_clean_up(&m);
    s3s_sse_meta_clean_up(&d);
}

/* What SSE-KMS binds: the context, the bucket key's use, and (for the copy
 * an upload id carries) the KMS key's id; a bucket key's own AAD names the
 * bucket and context. */
static void test_kms_aad_binding(void)
{
    struct s3s_sse_meta m;
    s3s_sse_meta_init(&m);
    m.kind = S3S_SSE_KIND_KMS;
    m.kms_key_version = 1;
    T_OK(s3s_buf_append_str(&m.kms_key_arn, "arn:aws:kms:us-east-1:111122223333:key/k1"));
    T_OK(s3s_buf_append_str(&m.kms_context, "{\"a\":\"1\"}"));
    struct s3s_buf a, b;
    T_OK(s3s_buf_init(&a, 0, 4096));
    T_OK(s3s_buf_init(&b, 0, 4096));
    T_OK(s3s_sse_dek_aad(&m, S3S_CUR_LIT("b"), S3S_CUR_LIT("k"), &a));
    s3s_buf_reset(&m.kms_context);
    T_OK(s3s_buf_append_str(&m.kms_context, "{\"a\":\"2\"}"));
    T_OK(s3s_sse_dek_aad(&m, S3S_CUR_LIT("b"), S3S_CUR_LIT("k"), &b));
    T_CHECK(!s3s_cur_eq(s3s_buf_cur(&a), s3s_buf_cur(&b)));
    s3s_buf_reset(&b);
    T_OK(s3s_buf_append_str(&m.bucket_key, "0123456789abcdef0123456789abcdef"));
    T_OK(s3s_sse_dek_aad(&m, S3S_CUR_LIT("b"), S3S_CUR_LIT("k"), &b));
    T_CHECK(!s3s_cur_eq(s3s_buf_cur(&a), s3s_buf_cur(&b)));
    s3s_buf_reset(&a);
    s3s_buf_reset(&b);
    T_OK(s3s_sse_bucket_key_aad(&m, S3S_CUR_LIT("b1"), &a));
    T_OK(s3s_sse_bucket_key_aad(&m, S3S_CUR_LIT("b2"), &b));
    T_CHECK(!s3s_cur_eq(s3s_buf_cur(&a), s3s_buf_cur(&b)));

    /* An upload id's copy (SSE-S3 form) differs from an SSE-S3 object's. */
    struct s3s_sse_meta u;
    s3s_sse_meta_init(&u);
    u.root_version = 1;
    u.multipart = true;
    s3s_buf_reset(&a);
    s3s_buf_reset(&b);
    T_OK(s3s_sse_dek_aad(&u, S3S_CUR_LIT("b"), S3S_CUR_LIT("k"), &a));
    snprintf(u.upload_kms_key_id, sizeof(u.upload_kms_key_id), "%s",
             "0b1c2d3e-0000-4000-8000-000000000001");
    T_OK(s3s_sse_dek_aad(&u, S3S_CUR_LIT("b"), S3S_CUR_LIT("k"), &b));
    T_CHECK(!s3s_cur_eq(s3s_buf_cur(&a), s3s_buf_cur(&b)));
    T_ERR(s3s_sse_bucket_key_aad(&u, S3S_CUR_LIT("b"), &a), S3S_ERR_INTERNAL);
    s3s_buf_clean_up(&a);
    s3s_buf_clean_up(&b);
    s3s_sse_meta_clean_up(&m);
    s3s_sse_meta_clean_up(&u);
}

static void test_aad_binding(void)
{
    struct s3s_sse_meta m;
    s3s_sse_meta_init(&m);
    m.root_version = 1;
    struct s3s_buf a, b;
    T_OK(s3s_buf_init(&a, 0, 4096));
    T_OK(s3s_buf_init(&b, 0, 4096));
    /* Length prefixes: ("ab", "c") and ("a", "bc") differ. */
    T_OK(s3s_sse_dek_aad(&m, S3S_CUR_LIT("ab"), S3S_CUR_LIT("c"), &a));
    T_OK(s3s_sse_dek_aad(&m, S3S_CUR_LIT("a"), S3S_CUR_LIT("bc"), &b));
    T_CHECK(!s3s_cur_eq(s3s_buf_cur(&a), s3s_buf_cur(&b)));
    s3s_buf_reset(&b);
    m.root_version = 2;
    T_OK(s3s_sse_dek_aad(&m, S3S_CUR_LIT("ab"), S3S_CUR_LIT("c"), &b));
    T_CHECK(!s3s_cur_eq(s3s_buf_cur(&a), s3s_buf_cur(&b)));
    s3s_buf_clean_up(&a);
    s3s_buf_clean_up(&b);
    s3s_sse_meta_clean_up(&m);
}

/* The multipart layouts: each name round-trips, binds the data key
 * differently, and parts3 keeps its part count to the catalog unless a copy
 * recorded it. */
static void test_layouts(void)
{
    static const struct {
        bool part_keys, catalog;
        const char *name;
    } forms[] = {{false, false, "parts"}, {true, false, "parts2"}, {true, true, "parts3"}};
    struct s3s_buf aad[3];
    for (int i = 0; i < 3; i++) {
        struct s3s_sse_meta m, d;
        s3s_sse_meta_init(&m);
        s3s_sse_meta_init(&d);
        m.root_version = 1;
        m.multipart = true;
        m.part_keys = forms[i].part_keys;
        m.catalog = forms[i].catalog;
        T_OK(s3s_buf_append(&m.wrapped_dek, "0123456789abcdef0123456789abcdef0123456789abcdef",
                            48));
        struct s_hdrs h = {0};
        T_OK(s3s_sse_meta_encode(&m, s_emit, &h));
        struct s3s_cur v;
        T_CHECK(s_get(&h, "x-amz-meta-s3seal-layout", &v) && s3s_cur_eq_str(v, forms[i].name));
        T_OK(s3s_sse_meta_decode(s_get, &h, &d));
        T_CHECK(d.multipart && d.part_keys == forms[i].part_keys &&
                d.catalog == forms[i].catalog && d.parts == 0);
        /* The ETag's count for the first two; none for parts3. */
        T_CHECK(s3s_sse_meta_parts(&d, S3S_CUR_LIT("\"0123-3\"")) == (forms[i].catalog ? 0 : 3));
        d.parts = 5;
        T_CHECK(s3s_sse_meta_parts(&d, S3S_CUR_LIT("\"0123-3\"")) == 5);
        T_OK(s3s_buf_init(&aad[i], 0, 4096));
        T_OK(s3s_sse_dek_aad(&m, S3S_CUR_LIT("b"), S3S_CUR_LIT("k"), &aad[i]));
        s3s_sse_meta_clean_up(&m);
        s3s_sse_meta_clean_up(&d);
    }
    T_CHECK(!s3s_cur_eq(s3s_buf_cur(&aad[0]), s3s_buf_cur(&aad[1])));
    T_CHECK(!s3s_cur_eq(s3s_buf_cur(&aad[1]), s3s_buf_cur(&aad[2])));
    for (int i = 0; i < 3; i++) {
        s3s_buf_clean_up(&aad[i]);
    }
    /* An unknown layout is refused. */
    struct s3s_sse_meta m, d;
    s3s_sse_meta_init(&m);
    s3s_sse_meta_init(&d);
    m.root_version = 1;
    m.multipart = true;
    T_OK(s3s_buf_append(&m.wrapped_dek, "0123456789abcdef0123456789abcdef0123456789abcdef", 48));
    struct s_hdrs h = {0};
    T_OK(s3s_sse_meta_encode(&m, s_emit, &h));
    s_set(&h, "x-amz-meta-s3seal-layout", "parts4");
    T_ERR(s3s_sse_meta_decode(s_get, &h, &d), S3S_ERR_SSE_BAD_FORMAT);
    s3s_sse_meta_clean_up(&m);
    s3s_sse_meta_clean_up(&d);

    /* The object id: 16 bytes, the same for the same key, another for
     * another key, and never the key's own bytes. */
    uint8_t k1[S3S_SSE_KEY_LEN], k2[S3S_SSE_KEY_LEN], a[16], b[16], c[16];
    memset(k1, 0x42, sizeof(k1));
    memcpy(k2, k1, sizeof(k2));
    k2[31] ^= 1;
    T_OK(s3s_sse_object_id(k1, a));
    T_OK(s3s_sse_object_id(k1, b));
    T_OK(s3s_sse_object_id(k2, c));
    T_CHECK(memcmp(a, b, 16) == 0 && memcmp(a, c, 16) != 0 && memcmp(a, k1, 16) != 0);
}

int main(void)
{
    test_round_trip();
    test_layouts();
    test_aad_binding();
    test_kms_round_trip();
    test_kms_aad_binding();
    return t_finish("sse.meta");
}
