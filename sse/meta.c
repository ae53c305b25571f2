/*
 * meta.c - reader and writer of an encrypted object's metadata (the
 * x-amz-meta-s3seal-* headers stored with it on the backend) and of the
 * associated data that binds its wrapped data key to its name and format.
 * One file for both directions, so one review sees the whole format.
 */
#include <stdio.h>
#include <string.h>

#include "sse/sse.h"
#include "sse/sse_private.h"

#define H_VERSION S3S_SSE_META_PREFIX "version"
#define H_ALG S3S_SSE_META_PREFIX "alg"
#define H_SEGMENT S3S_SSE_META_PREFIX "segment"
#define H_KEY S3S_SSE_META_PREFIX "key"
#define H_DEK S3S_SSE_META_PREFIX "dek"
#define H_MD5 S3S_SSE_META_PREFIX "md5"
#define H_LAYOUT S3S_SSE_META_PREFIX "layout"
#define H_PARTS S3S_SSE_META_PREFIX "parts"
#define H_CONTEXT S3S_SSE_META_PREFIX "context"
#define H_BUCKET_KEY S3S_SSE_META_PREFIX "bucket-key"

/* Bounds of what an object's metadata may carry (S3 allows 2 KiB of user
 * metadata in all; some backends more). */
#define S_MAX_CONTEXT 16384
#define S_MAX_WRAPPED 512

void s3s_sse_meta_init(struct s3s_sse_meta *m)
{
    memset(m, 0, sizeof(*m));
    m->version = S3S_SSE_FORMAT_VERSION;
    m->aead = S3S_SSE_AES_256_GCM;
    m->segment_size = S3S_SSE_SEGMENT_SIZE;
    m->kind = S3S_SSE_KIND_S3;
    /* No initial allocation: cannot fail. */
    s3s_result_ignore(s3s_buf_init(&m->kms_key_arn, 0, 2048));
    s3s_result_ignore(s3s_buf_init(&m->wrapped_dek, 0, S_MAX_WRAPPED));
    s3s_result_ignore(s3s_buf_init(&m->kms_context, 0, S_MAX_CONTEXT));
    s3s_result_ignore(s3s_buf_init(&m->bucket_key, 0, S_MAX_WRAPPED));
}

void s3s_sse_meta_clean_up(struct s3s_sse_meta *m)
{
    s3s_buf_clean_up(&m->kms_key_arn);
    s3s_buf_clean_up(&m->wrapped_dek);
    s3s_buf_clean_up(&m->kms_context);
    s3s_buf_clean_up(&m->bucket_key);
}

/* The key reference: "sse-s3:<root version>" or "kms:<version>:<arn>". */
static s3s_result s_key_ref(const struct s3s_sse_meta *m, struct s3s_buf *out)
{
    switch (m->kind) {
    case S3S_SSE_KIND_S3:
        return s3s_buf_appendf(out, "sse-s3:%u", m->root_version);
    case S3S_SSE_KIND_KMS:
        S3S_GUARD(s3s_buf_appendf(out, "kms:%u:", m->kms_key_version));
        return s3s_buf_append_cur(out, s3s_buf_cur(&m->kms_key_arn));
    default:
        S3S_BAIL(S3S_ERR_SSE_BAD_FORMAT);
    }
}

/* The multipart layout's name, as stored and as bound to the data key. */
static struct s3s_cur s_layout_name(const struct s3s_sse_meta *m)
{
    return m->catalog     ? S3S_CUR_LIT("parts3")
           : m->part_keys ? S3S_CUR_LIT("parts2")
                          : S3S_CUR_LIT("parts");
}

s3s_result s3s_sse_meta_encode(const struct s3s_sse_meta *m, s3s_sse_meta_emit_fn *emit, void *ctx)
{
    s3s_result result = s3s_err(S3S_ERR_NOMEM);
    char num[32];
    struct s3s_buf ref = {0}, b64 = {0}, hex = {0};
    if (s3s_failed(s3s_buf_init(&ref, 0, 4096)) || s3s_failed(s3s_buf_init(&b64, 0, 1024)) ||
        s3s_failed(s3s_buf_init(&hex, 0, 64))) {
        goto cleanup;
    }
    snprintf(num, sizeof(num), "%u", m->version);
    if (s3s_failed(result = emit(ctx, H_VERSION, s3s_cur_from_str(num))) ||
        s3s_failed(result = emit(ctx, H_ALG, s3s_cur_from_str(s3s_sse_aead_name(m->aead))))) {
        goto cleanup;
    }
    snprintf(num, sizeof(num), "%u", m->segment_size);
    if (s3s_failed(result = emit(ctx, H_SEGMENT, s3s_cur_from_str(num))) ||
        s3s_failed(result = s_key_ref(m, &ref)) ||
        s3s_failed(result = emit(ctx, H_KEY, s3s_buf_cur(&ref))) ||
        s3s_failed(result = s3s_base64_encode(m->wrapped_dek.ptr, m->wrapped_dek.len, &b64)) ||
        s3s_failed(result = emit(ctx, H_DEK, s3s_buf_cur(&b64)))) {
        goto cleanup;
    }
    if (m->kind == S3S_SSE_KIND_KMS) {
        s3s_buf_reset(&b64);
        if (s3s_failed(result = s3s_base64_encode(m->kms_context.ptr, m->kms_context.len, &b64)) ||
            s3s_failed(result = emit(ctx, H_CONTEXT, s3s_buf_cur(&b64)))) {
            goto cleanup;
        }
    }
    if (m->bucket_key.len) {
        s3s_buf_reset(&b64);
        if (s3s_failed(result = s3s_base64_encode(m->bucket_key.ptr, m->bucket_key.len, &b64)) ||
            s3s_failed(result = emit(ctx, H_BUCKET_KEY, s3s_buf_cur(&b64)))) {
            goto cleanup;
        }
    }
    if (m->multipart && s3s_failed(result = emit(ctx, H_LAYOUT, s_layout_name(m)))) {
        goto cleanup;
    }
    if (m->multipart && m->parts) {
        snprintf(num, sizeof(num), "%u", m->parts);
        if (s3s_failed(result = emit(ctx, H_PARTS, s3s_cur_from_str(num)))) {
            goto cleanup;
        }
    }
    if (m->has_plain_md5 &&
        (s3s_failed(result = s3s_buf_append_hex(&hex, m->plain_md5, 16)) ||
         s3s_failed(result = emit(ctx, H_MD5, s3s_buf_cur(&hex))))) {
        goto cleanup;
    }
    result = s3s_ok();
cleanup:
    s3s_buf_clean_up(&ref);
    s3s_buf_clean_up(&b64);
    s3s_buf_clean_up(&hex);
    return result;
}

bool s3s_sse_meta_present(s3s_sse_meta_get_fn *get, void *ctx)
{
    struct s3s_cur v;
    return get(ctx, H_VERSION, &v) || get(ctx, H_DEK, &v);
}

static s3s_result s_u32(struct s3s_cur v, uint32_t *out)
{
    uint64_t x = 0;
    S3S_ENSURE(s3s_is_ok(s3s_parse_u64(v, UINT32_MAX, &x)), S3S_ERR_SSE_BAD_FORMAT);
    *out = (uint32_t)x;
    return s3s_ok();
}

s3s_result s3s_sse_meta_decode(s3s_sse_meta_get_fn *get, void *ctx, struct s3s_sse_meta *m)
{
    struct s3s_cur v;
    S3S_ENSURE(get(ctx, H_VERSION, &v), S3S_ERR_SSE_BAD_FORMAT);
    S3S_GUARD(s_u32(v, &m->version));
    /* A newer format than this build understands must not be guessed at. */
    S3S_ENSURE(m->version == S3S_SSE_FORMAT_VERSION, S3S_ERR_SSE_BAD_FORMAT);
    S3S_ENSURE(get(ctx, H_ALG, &v), S3S_ERR_SSE_BAD_FORMAT);
    S3S_GUARD(s3s_sse_aead_parse(v, &m->aead));
    S3S_ENSURE(get(ctx, H_SEGMENT, &v), S3S_ERR_SSE_BAD_FORMAT);
    S3S_GUARD(s_u32(v, &m->segment_size));
    S3S_ENSURE(m->segment_size >= 1024 && m->segment_size <= 16u * 1024 * 1024,
               S3S_ERR_SSE_BAD_FORMAT);

    S3S_ENSURE(get(ctx, H_KEY, &v), S3S_ERR_SSE_BAD_FORMAT);
    struct s3s_cur kind;
    S3S_ENSURE(s3s_cur_split(&v, ':', &kind), S3S_ERR_SSE_BAD_FORMAT);
    if (s3s_cur_eq_str(kind, "sse-s3")) {
        m->kind = S3S_SSE_KIND_S3;
        S3S_GUARD(s_u32(v, &m->root_version));
        S3S_ENSURE(m->root_version > 0, S3S_ERR_SSE_BAD_FORMAT);
    } else if (s3s_cur_eq_str(kind, "kms")) {
        struct s3s_cur ver;
        m->kind = S3S_SSE_KIND_KMS;
        S3S_ENSURE(s3s_cur_split(&v, ':', &ver), S3S_ERR_SSE_BAD_FORMAT);
        S3S_GUARD(s_u32(ver, &m->kms_key_version));
        S3S_ENSURE(s3s_cur_starts_with(v, "arn:"), S3S_ERR_SSE_BAD_FORMAT);
        s3s_buf_reset(&m->kms_key_arn);
        S3S_ENSURE(s3s_is_ok(s3s_buf_append_cur(&m->kms_key_arn, v)), S3S_ERR_SSE_BAD_FORMAT);
    } else {
        S3S_BAIL(S3S_ERR_SSE_BAD_FORMAT);
    }

    S3S_ENSURE(get(ctx, H_DEK, &v), S3S_ERR_SSE_BAD_FORMAT);
    s3s_buf_reset(&m->wrapped_dek);
    S3S_ENSURE(s3s_is_ok(s3s_base64_decode(v, &m->wrapped_dek)), S3S_ERR_SSE_BAD_FORMAT);
    S3S_ENSURE(m->wrapped_dek.len >= 32, S3S_ERR_SSE_BAD_FORMAT);

    s3s_buf_reset(&m->kms_context);
    s3s_buf_reset(&m->bucket_key);
    if (m->kind == S3S_SSE_KIND_KMS) {
        /* The context is bound to the data key: it must be there (it is
         * never empty: aws:s3:arn is always in it). */
        S3S_ENSURE(get(ctx, H_CONTEXT, &v), S3S_ERR_SSE_BAD_FORMAT);
        S3S_ENSURE(s3s_is_ok(s3s_base64_decode(v, &m->kms_context)) && m->kms_context.len > 2,
                   S3S_ERR_SSE_BAD_FORMAT);
        if (get(ctx, H_BUCKET_KEY, &v)) {
            S3S_ENSURE(s3s_is_ok(s3s_base64_decode(v, &m->bucket_key)) &&
                           m->bucket_key.len >= 32,
                       S3S_ERR_SSE_BAD_FORMAT);
        }
    } else {
        S3S_ENSURE(!get(ctx, H_CONTEXT, &v) && !get(ctx, H_BUCKET_KEY, &v),
                   S3S_ERR_SSE_BAD_FORMAT);
    }

    m->multipart = false;
    m->part_keys = false;
    m->catalog = false;
    if (get(ctx, H_LAYOUT, &v)) {
        /* The layouts besides the default single stream: parts under the
         * object's key (the first), or each under its own (parts2), with
         * the part count in the keystore's catalog (parts3). */
        m->catalog = s3s_cur_eq_str(v, "parts3");
        m->part_keys = s3s_sse_layout_part_keys(v);
        S3S_ENSURE(m->part_keys || s3s_cur_eq_str(v, "parts"), S3S_ERR_SSE_BAD_FORMAT);
        m->multipart = true;
    }
    m->parts = 0;
    if (get(ctx, H_PARTS, &v)) {
        S3S_ENSURE(m->multipart, S3S_ERR_SSE_BAD_FORMAT);
        S3S_GUARD(s_u32(v, &m->parts));
        S3S_ENSURE(m->parts >= 1 && m->parts <= 10000, S3S_ERR_SSE_BAD_FORMAT);
    }

    m->has_plain_md5 = false;
    if (get(ctx, H_MD5, &v)) {
        S3S_ENSURE(s3s_hex_decode(v, m->plain_md5, 16), S3S_ERR_SSE_BAD_FORMAT);
        m->has_plain_md5 = true;
    }
    return s3s_ok();
}

bool s3s_sse_layout_part_keys(struct s3s_cur layout)
{
    return s3s_cur_eq_str(layout, "parts2") || s3s_cur_eq_str(layout, "parts3");
}

uint32_t s3s_sse_meta_parts(const struct s3s_sse_meta *m, struct s3s_cur etag)
{
    if (!m->multipart || m->parts) {
        return m->parts;
    }
    /* parts3: only the catalog knows; the backend's ETag is not trusted. */
    return m->catalog ? 0 : s3s_sse_etag_parts(etag);
}

s3s_result s3s_sse_object_id(const uint8_t dek[S3S_SSE_KEY_LEN],
                             uint8_t out[S3S_SSE_OBJECT_ID_LEN])
{
    static const char label[] = "s3seal-object-id";
    return s3s_sse__hkdf_sha256(dek, S3S_SSE_KEY_LEN, label, sizeof(label) - 1, out,
                                S3S_SSE_OBJECT_ID_LEN);
}

uint32_t s3s_sse_etag_parts(struct s3s_cur etag)
{
    if (etag.len && etag.ptr[etag.len - 1] == '"') {
        etag.len--;
    }
    long dash = -1;
    for (size_t i = etag.len; i > 0; i--) {
        if (etag.ptr[i - 1] == '-') {
            dash = (long)(i - 1);
            break;
        }
    }
    uint64_t n = 0;
    if (dash < 0 || s3s_failed(s3s_parse_u64(s3s_cur_from(etag.ptr + dash + 1,
                                                          etag.len - (size_t)dash - 1),
                                             10000, &n))) {
        return 0;
    }
    return (uint32_t)n;
}

static s3s_result s_lp(struct s3s_buf *out, struct s3s_cur field)
{
    S3S_ENSURE(field.len <= UINT32_MAX, S3S_ERR_TOO_BIG);
    uint8_t len[4] = {(uint8_t)(field.len >> 24), (uint8_t)(field.len >> 16),
                      (uint8_t)(field.len >> 8), (uint8_t)field.len};
    S3S_GUARD(s3s_buf_append(out, len, 4));
    return s3s_buf_append_cur(out, field);
}

s3s_result s3s_sse_segment_aad(const struct s3s_sse_meta *m, struct s3s_buf *out)
{
    return s3s_buf_appendf(out, "s3seal/%u/%s/%u", m->version, s3s_sse_aead_name(m->aead),
                           m->segment_size);
}

s3s_result s3s_sse_dek_aad(const struct s3s_sse_meta *m, struct s3s_cur bucket,
                           struct s3s_cur key, struct s3s_buf *out)
{
    struct s3s_buf ref, seg;
    S3S_GUARD(s3s_buf_init(&ref, 0, 4096));
    s3s_result r = s3s_buf_init(&seg, 0, 128);
    if (s3s_is_ok(r)) {
        r = s_key_ref(m, &ref);
    }
    if (s3s_is_ok(r)) {
        r = s3s_sse_segment_aad(m, &seg);
    }
    if (s3s_is_ok(r)) {
        r = s_lp(out, S3S_CUR_LIT("s3seal-dek"));
    }
    if (s3s_is_ok(r)) {
        r = s_lp(out, s3s_buf_cur(&seg));
    }
    if (s3s_is_ok(r)) {
        r = s_lp(out, s3s_buf_cur(&ref));
    }
    if (s3s_is_ok(r)) {
        r = s_lp(out, bucket);
    }
    if (s3s_is_ok(r)) {
        r = s_lp(out, key);
    }
    /* A sixth field only for the multipart layout, so single-stream objects
     * keep the AAD they were written with. */
    if (s3s_is_ok(r) && m->multipart) {
        r = s_lp(out, s_layout_name(m));
    }
    /* A seventh once the part count is recorded (copies of the object). */
    char num[16];
    if (s3s_is_ok(r) && m->multipart && m->parts) {
        snprintf(num, sizeof(num), "%u", m->parts);
        r = s_lp(out, s3s_cur_from_str(num));
    }
    /* SSE-KMS: the encryption context, and whether a bucket key (rather
     * than the KMS key itself) wrapped the data key. */
    if (s3s_is_ok(r) && m->kind == S3S_SSE_KIND_KMS) {
        r = s_lp(out, s3s_buf_cur(&m->kms_context));
    }
    if (s3s_is_ok(r) && m->kind == S3S_SSE_KIND_KMS && m->bucket_key.len) {
        r = s_lp(out, S3S_CUR_LIT("bucket-key"));
    }
    /* The upload id's copy of an SSE-KMS upload's key is bound to that KMS
     * key, so it is never taken for an SSE-S3 object's. */
    if (s3s_is_ok(r) && m->upload_kms_key_id[0]) {
        r = s_lp(out, S3S_CUR_LIT("kms-upload"));
        if (s3s_is_ok(r)) {
            r = s_lp(out, s3s_cur_from_str(m->upload_kms_key_id));
        }
    }
    s3s_buf_clean_up(&ref);
    s3s_buf_clean_up(&seg);
    return r;
}

s3s_result s3s_sse_bucket_key_aad(const struct s3s_sse_meta *m, struct s3s_cur bucket,
                                  struct s3s_buf *out)
{
    S3S_ENSURE(m->kind == S3S_SSE_KIND_KMS, S3S_ERR_INTERNAL);
    struct s3s_buf ref;
    S3S_GUARD(s3s_buf_init(&ref, 0, 4096));
    s3s_result r = s_key_ref(m, &ref);
    if (s3s_is_ok(r)) {
        r = s_lp(out, S3S_CUR_LIT("s3seal-bucket-key"));
    }
    if (s3s_is_ok(r)) {
        r = s_lp(out, s3s_buf_cur(&ref));
    }
    if (s3s_is_ok(r)) {
        r = s_lp(out, bucket);
    }
    if (s3s_is_ok(r)) {
        r = s_lp(out, s3s_buf_cur(&m->kms_context));
    }
    s3s_buf_clean_up(&ref);
    return r;
}
