/*
 * sse_put.c - SSE-S3 on the way in: which PutObject requests are encrypted
 * (x-amz-server-side-encryption: AES256, or the bucket's default), the
 * per-object data key wrapped under the current root key with the bucket and
 * key as associated data, and the metadata that goes with the ciphertext.
 */
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <string.h>

#include "common/log.h"
#include "proxy/proxy.h"

s3s_result s3s_hdrlist_add(struct s3s_buf *list, struct s3s_cur name, struct s3s_cur value)
{
    for (size_t i = 0; i < name.len; i++) {
        uint8_t c = name.ptr[i];
        S3S_GUARD(s3s_buf_append_byte(list, (c >= 'A' && c <= 'Z') ? (uint8_t)(c + 32) : c));
    }
    S3S_GUARD(s3s_buf_append_byte(list, '\0'));
    S3S_GUARD(s3s_buf_append_cur(list, value));
    return s3s_buf_append_byte(list, '\0');
}

s3s_result s3s_hdrlist_emit(void *ctx, const char *name, struct s3s_cur value)
{
    return s3s_hdrlist_add(ctx, s3s_cur_from_str(name), value);
}

bool s3s_hdrlist_next(const struct s3s_buf *list, size_t *off, const char **name,
                      const char **value)
{
    if (*off >= list->len) {
        return false;
    }
    *name = (const char *)list->ptr + *off;
    *value = *name + strlen(*name) + 1;
    *off = (size_t)(*value + strlen(*value) + 1 - (const char *)list->ptr);
    return true;
}

size_t s3s_hdrlist_count(const struct s3s_buf *list)
{
    size_t n = 0, off = 0;
    const char *k, *v;
    while (s3s_hdrlist_next(list, &off, &k, &v)) {
        n++;
    }
    return n;
}

bool s3s_hdrlist_get(void *ctx, const char *name, struct s3s_cur *value)
{
    size_t off = 0;
    const char *k, *v;
    while (s3s_hdrlist_next(ctx, &off, &k, &v)) {
        if (strcmp(k, name) == 0) {
            *value = s3s_cur_from_str(v);
            return true;
        }
    }
    return false;
}

/* What the request asks for: NONE, AES256, or KMS (header or bucket default). */
static s3s_result s_requested(struct s3s_req *r, enum s3s_sse_mode *mode, bool *explicit_hdr)
{
    const struct s3s_config *cfg = r->conn->w->cfg;
    struct s3s_cur v;
    *mode = S3S_SSE_NONE;
    *explicit_hdr = s3s_req_header(r, "x-amz-server-side-encryption", &v);
    if (*explicit_hdr) {
        if (s3s_cur_eq_str(v, "AES256")) {
            *mode = S3S_SSE_AES256;
        } else if (s3s_cur_eq_str(v, "aws:kms") || s3s_cur_eq_str(v, "aws:kms:dsse")) {
            *mode = S3S_SSE_KMS;
        } else {
            S3S_BAIL(S3S_ERR_SSE_UNSUPPORTED_METHOD);
        }
        return s3s_ok();
    }
    const struct s3s_config_bucket *b = s3s_config_find_bucket(cfg, s3s_buf_cur(&r->bucket));
    if (b) {
        *mode = b->default_encryption;
    }
    return s3s_ok();
}

s3s_result s3s_sse_put_setup(struct s3s_req *r)
{
    struct s3s_worker *w = r->conn->w;
    const struct s3s_config *cfg = w->cfg;
    struct s3s_cur v;
    bool put_object = s3s_s3_is_put_object(r);
    bool create_mpu = s3s_cur_eq_str(r->method, "POST") && r->key.len &&
                      s3s_s3_query_has(r->query, "uploads");
    bool copy = s3s_cur_eq_str(r->method, "PUT") && s3s_req_header(r, "x-amz-copy-source", &v);
    if (!put_object && !create_mpu && !copy) {
        return s3s_ok();
    }
    enum s3s_sse_mode mode;
    bool explicit_hdr;
    S3S_GUARD(s_requested(r, &mode, &explicit_hdr));
    const struct s3s_config_bucket *b = s3s_config_find_bucket(cfg, s3s_buf_cur(&r->bucket));
    if (mode == S3S_SSE_NONE) {
        /* A bucket that requires encryption refuses plain writes (S3 does it
         * with a bucket policy denying PutObject). */
        S3S_ENSURE(!(b && b->require_encryption), S3S_ERR_ACCESS_DENIED);
        return s3s_ok();
    }
    if (mode == S3S_SSE_KMS) {
        if (explicit_hdr && !(b && b->default_encryption == S3S_SSE_KMS)) {
            /* Not ours yet: the backend's own SSE-KMS answers, as before. */
            return s3s_ok();
        }
        S3S_BAIL(S3S_ERR_SSE_NOT_AVAILABLE);
    }
    if (copy) {
        /* Decided once the source is known: an encrypted source is re-wrapped,
         * a plain one cannot be encrypted by a copy yet (sse_copy.c). */
        r->copy_wants_sse = true;
        return s3s_ok();
    }
    /* SSE-S3 for multipart uploads is not in this version: refuse rather
     * than store plaintext. */
    S3S_ENSURE(put_object, S3S_ERR_SSE_NOT_AVAILABLE);
    if (!w->has_keyring) {
        S3S_LOGE("sse", "req=%s SSE-S3 requested but no keystore is configured (keystore: "
                        "master_key_file)",
                 r->id);
        S3S_BAIL(S3S_ERR_KEYSTORE);
    }

    s3s_result result = s3s_err(S3S_ERR_INTERNAL);
    struct s3s_sse_meta meta;
    struct s3s_buf aad = {0}, seg_aad = {0};
    uint8_t dek[S3S_SSE_KEY_LEN];
    uint32_t version = 0;
    const uint8_t *root = NULL;
    s3s_sse_meta_init(&meta);
    if (s3s_failed(result = s3s_keyring_current(&w->keyring, &version, &root))) {
        goto cleanup;
    }
    meta.root_version = version;
    if (RAND_bytes(dek, sizeof(dek)) != 1 || s3s_failed(s3s_buf_init(&aad, 0, 16384)) ||
        s3s_failed(s3s_buf_init(&seg_aad, 0, 128)) ||
        s3s_failed(s3s_sse_dek_aad(&meta, s3s_buf_cur(&r->bucket), s3s_buf_cur(&r->key), &aad)) ||
        s3s_failed(s3s_sse_segment_aad(&meta, &seg_aad)) ||
        s3s_failed(s3s_keystore_seal(root, s3s_buf_cur(&aad), s3s_cur_from(dek, sizeof(dek)),
                                     &meta.wrapped_dek)) ||
        s3s_failed(s3s_sse_enc_new(meta.aead, dek, s3s_buf_cur(&seg_aad), meta.segment_size,
                                   r->content_length, &r->enc)) ||
        s3s_failed(s3s_sse_meta_encode(&meta, s3s_hdrlist_emit, &r->sse_headers))) {
        result = s3s_err(S3S_ERR_INTERNAL);
        goto cleanup;
    }
    /* The backend's own limit applies to the ciphertext. */
    r->up_length = s3s_sse_cipher_size(r->content_length, meta.segment_size);
    result = r->up_length <= cfg->limits.max_body_bytes ? s3s_ok()
                                                        : s3s_err(S3S_ERR_ENTITY_TOO_LARGE);
cleanup:
    OPENSSL_cleanse(dek, sizeof(dek));
    s3s_buf_clean_up(&aad);
    s3s_buf_clean_up(&seg_aad);
    s3s_sse_meta_clean_up(&meta);
    return result;
}
