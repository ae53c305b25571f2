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
    s_set(&h, "x-amz-meta-s3seal-key", "kms:3:arn:aws:kms:us-east-1:111122223333:key/k1");
    T_OK(s3s_sse_meta_decode(s_get, &h, &d));
    T_CHECK(d.kind == S3S_SSE_KIND_KMS && d.kms_key_version == 3 &&
            d.aead == S3S_SSE_CHACHA20_POLY1305);
    T_BUFEQ(d.kms_key_arn, "arn:aws:kms:us-east-1:111122223333:key/k1");
    s_set(&h, "x-amz-meta-s3seal-dek", "not base64!");
    T_ERR(s3s_sse_meta_decode(s_get, &h, &d), S3S_ERR_SSE_BAD_FORMAT);
    s_set(&h, "x-amz-meta-s3seal-segment", "12x");
    T_ERR(s3s_sse_meta_decode(s_get, &h, &d), S3S_ERR_SSE_BAD_FORMAT);

    struct s_hdrs none = {0};
    T_CHECK(!s3s_sse_meta_present(s_get, &none));
    s3s_sse_meta_clean_up(&m);
    s3s_sse_meta_clean_up(&d);
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

int main(void)
{
    test_round_trip();
    test_aad_binding();
    return t_finish("sse.meta");
}
