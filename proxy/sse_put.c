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

s3s_result s3s_sse_wrap_root(struct s3s_req *r, struct s3s_sse_meta *meta, const uint8_t *dek)
{
    struct s3s_worker *w = r->conn->w;
    const uint8_t *root = NULL;
    S3S_GUARD(s3s_keyring_current(&w->keyring, &meta->root_version, &root));
    meta->kind = S3S_SSE_KIND_S3;
    s3s_buf_reset(&meta->kms_key_arn);
    s3s_buf_reset(&meta->kms_context);
    s3s_buf_reset(&meta->bucket_key);
    s3s_buf_reset(&meta->wrapped_dek);
    r->resp_sse = S3S_SSE_KIND_S3;
    struct s3s_buf aad;
    S3S_GUARD(s3s_buf_init(&aad, 0, 16384));
    s3s_result res = s3s_sse_dek_aad(meta, s3s_buf_cur(&r->bucket), s3s_buf_cur(&r->key), &aad);
    if (s3s_is_ok(res)) {
        res = s3s_keystore_seal(root, s3s_buf_cur(&aad), s3s_cur_from(dek, S3S_SSE_KEY_LEN),
                                &meta->wrapped_dek);
    }
    s3s_buf_clean_up(&aad);
    return res;
}

/* A fresh data key for the request's bucket and key, wrapped as the request
 * asks: by its KMS key (sse_kms.c), or under the current root key. */
static s3s_result s_new_dek(struct s3s_req *r, struct s3s_sse_meta *meta,
                            uint8_t dek[S3S_SSE_KEY_LEN])
{
    if (!r->conn->w->has_keyring) {
        S3S_LOGE("sse", "req=%s encryption requested but no keystore is configured (keystore: "
                        "master_key_file)",
                 r->id);
        S3S_BAIL(S3S_ERR_KEYSTORE);
    }
    if (r->sse_want.mode == S3S_SSE_KMS) {
        return s3s_sse_kms_new_dek(r, meta, dek);
    }
    S3S_ENSURE(RAND_bytes(dek, S3S_SSE_KEY_LEN) == 1, S3S_ERR_INTERNAL);
    return s3s_sse_wrap_root(r, meta, dek);
}

/* The encryptor of the request body (a whole object, or part `part`), and
 * the ciphertext length sent upstream. */
static s3s_result s_start_encryptor(struct s3s_req *r, const struct s3s_sse_meta *meta,
                                    const uint8_t *dek, uint32_t part)
{
    struct s3s_buf seg_aad;
    S3S_GUARD(s3s_buf_init(&seg_aad, 0, 128));
    s3s_result res = s3s_sse_segment_aad(meta, &seg_aad);
    if (s3s_is_ok(res)) {
        res = s3s_sse_enc_new(meta->aead, dek, s3s_buf_cur(&seg_aad), meta->segment_size, part,
                              r->content_length, &r->enc);
    }
    if (s3s_is_ok(res) && part && meta->part_keys) {
        /* parts2: this part upload seals under a key of its own. */
        res = s3s_sse_enc_use_part_keys(r->enc, dek);
    }
    s3s_buf_clean_up(&seg_aad);
    S3S_GUARD(res);
    /* The backend's own limit applies to the ciphertext. */
    r->up_length = s3s_sse_cipher_size_x(r->content_length, meta->segment_size,
                                         s3s_sse_overhead(meta->multipart));
    S3S_ENSURE(r->up_length <= r->cfg->limits.max_body_bytes, S3S_ERR_ENTITY_TOO_LARGE);
    return s3s_ok();
}

/* PutObject (or CreateMultipartUpload, multipart) with SSE-S3: a new data
 * key and the metadata stored with the object. */
static s3s_result s_encrypt_new_object(struct s3s_req *r, bool multipart)
{
    s3s_result res;
    struct s3s_sse_meta meta;
    uint8_t dek[S3S_SSE_KEY_LEN];
    s3s_sse_meta_init(&meta);
    meta.multipart = multipart;
    /* New uploads: the parts3 layout (parts2 with the part count in the
     * keystore's catalog), parts2 without a keystore to hold it. */
    meta.part_keys = multipart;
    meta.catalog = multipart && r->conn->w->upload_reg;
    const struct s3s_config *cfg = r->cfg;
    const struct s3s_config_bucket *b = s3s_config_find_bucket(cfg, s3s_buf_cur(&r->bucket));
    meta.aead = (enum s3s_sse_aead)(b && b->cipher ? b->cipher : cfg->cipher);
    struct s3s_cur v;
    if (!multipart && s3s_req_header(r, "content-md5", &v)) {
        /* Known before the body: stored, so that GET and HEAD give the
         * plaintext's MD5 as the ETag too (it is verified before the
         * object is complete). */
        struct s3s_buf md5;
        s3s_result_ignore(s3s_buf_init(&md5, 0, 64));
        meta.has_plain_md5 = s3s_is_ok(s3s_base64_decode(v, &md5)) && md5.len == 16;
        if (meta.has_plain_md5) {
            memcpy(meta.plain_md5, md5.ptr, 16);
        }
        s3s_buf_clean_up(&md5);
    }
    if (s3s_is_ok(res = s_new_dek(r, &meta, dek)) &&
        s3s_is_ok(res = s3s_sse_meta_encode(&meta, s3s_hdrlist_emit, &r->sse_headers))) {
        res = multipart ? s3s_mpu_suffix(r, &meta, dek, &r->mpu_suffix)
                        : s_start_encryptor(r, &meta, dek, 0);
    }
    OPENSSL_cleanse(dek, sizeof(dek));
    s3s_sse_meta_clean_up(&meta);
    return res;
}

/* UploadPart into an upload that s3seal encrypts: the data key comes from
 * the upload id; the part is sealed under its part number. */
static s3s_result s_encrypt_part(struct s3s_req *r, const struct s3s_sse_meta *meta)
{
    struct s3s_cur v = {0};
    uint64_t part = 0;
    S3S_ENSURE(s3s_s3_query_value(r->query, "partNumber", &v) &&
                   s3s_is_ok(s3s_parse_u64(v, 10000, &part)) && part >= 1,
               S3S_ERR_INVALID_ARG);
    if (meta->upload_kms_key_id[0]) {
        /* An SSE-KMS upload: its key must still be usable by this caller. */
        S3S_GUARD(s3s_sse_kms_check_upload(r, meta));
    }
    struct s3s_secret dek = {0};
    S3S_GUARD(s3s_sse_open_dek(r, meta, &dek));
    s3s_result res = s_start_encryptor(r, meta, dek.ptr, (uint32_t)part);
    s3s_secret_destroy(&dek);
    return res;
}

/* A parts3 upload's object id (the catalog's key), from its data key. */
static s3s_result s_catalog_id(struct s3s_req *r, const struct s3s_sse_meta *meta)
{
    struct s3s_secret dek = {0};
    S3S_GUARD(s3s_sse_open_dek(r, meta, &dek));
    s3s_result res = s3s_sse_object_id(dek.ptr, r->mpu_object_id);
    s3s_secret_destroy(&dek);
    r->mpu_catalog = s3s_is_ok(res);
    return res;
}

s3s_result s3s_sse_new_object_encryptor(struct s3s_req *r)
{
    return s_encrypt_new_object(r, false);
}

s3s_result s3s_sse_part_encryptor(struct s3s_req *r)
{
    struct s3s_sse_meta meta;
    s3s_sse_meta_init(&meta);
    s3s_result res = s3s_mpu_parse_request(r, &meta);
    if (s3s_is_ok(res)) {
        res = r->mpu_encrypted ? s_encrypt_part(r, &meta) : s3s_err(S3S_ERR_INTERNAL);
    }
    s3s_sse_meta_clean_up(&meta);
    return res;
}

s3s_result s3s_sse_put_setup(struct s3s_req *r)
{
    struct s3s_worker *w = r->conn->w;
    bool put_object = r->op == S3S_OP_PUT_OBJECT;
    bool create_mpu = r->op == S3S_OP_CREATE_MPU;
    bool copy = r->op == S3S_OP_COPY_OBJECT || r->op == S3S_OP_UPLOAD_PART_COPY;
    if (r->op == S3S_OP_UPLOAD_PART || r->op == S3S_OP_UPLOAD_PART_COPY ||
        r->op == S3S_OP_COMPLETE_MPU || r->op == S3S_OP_ABORT_MPU ||
        r->op == S3S_OP_LIST_PARTS) {
        /* UploadPart, UploadPartCopy, ListParts, Complete, Abort. */
        struct s3s_sse_meta meta;
        s3s_sse_meta_init(&meta);
        s3s_result res = s3s_mpu_parse_request(r, &meta);
        struct s3s_bucket_defaults d;
        s3s_bucket_default(w, s3s_buf_cur(&r->bucket), &d);
        bool enc_bucket = d.mode != S3S_SSE_NONE || d.require;
        bool writes = r->op == S3S_OP_UPLOAD_PART || r->op == S3S_OP_UPLOAD_PART_COPY ||
                      r->op == S3S_OP_COMPLETE_MPU;
        if (s3s_is_ok(res) && !r->mpu_encrypted && enc_bucket && writes) {
            /* A backend id (from ListMultipartUploads) names an upload whose
             * key s3seal cannot know: its parts would be stored in plaintext.
             * Fail closed. */
            res = s3s_err(S3S_ERR_MPU_BACKEND_ID);
        }
        if (s3s_is_ok(res) && r->mpu_encrypted) {
            if (r->op == S3S_OP_UPLOAD_PART_COPY) {
                /* Streamed and encrypted once the source is known (sse_copy.c). */
                r->copy_wants_sse = true;
            } else if (r->op == S3S_OP_UPLOAD_PART) {
                res = s_encrypt_part(r, &meta);
            } else if (r->op == S3S_OP_COMPLETE_MPU) {
                /* CompleteMultipartUpload: the layout is checked first. */
                res = meta.upload_kms_key_id[0]
                          ? s3s_sse_kms_check_upload(r, &meta)
                          : s3s_ok();
                if (s3s_is_ok(res) && meta.catalog) {
                    /* parts3: the id its catalog row is written under. */
                    res = s_catalog_id(r, &meta);
                }
                if (s3s_is_ok(res)) {
                    res = s3s_mpu_complete_start(r);
                }
            }
        }
        s3s_sse_meta_clean_up(&meta);
        return res;
    }
    if (!put_object && !create_mpu && !copy) {
        return s3s_ok();
    }
    if (!r->sse_want.parsed) {
        S3S_GUARD(s3s_sse_want_parse(r));
    }
    struct s3s_bucket_defaults d;
    s3s_bucket_default(w, s3s_buf_cur(&r->bucket), &d);
    if (r->sse_want.mode == S3S_SSE_NONE) {
        /* A bucket that requires encryption refuses plain writes (S3 does it
         * with a bucket policy denying PutObject). */
        S3S_ENSURE(!d.require, S3S_ERR_ACCESS_DENIED);
        return s3s_ok();
    }
    if (copy) {
        /* Decided once the source is known: an encrypted source is re-wrapped,
         * a plain one cannot be encrypted by a copy yet (sse_copy.c). */
        r->copy_wants_sse = true;
        return s3s_ok();
    }
    if (put_object) {
        r->etag_ours = true; /* the plaintext's MD5 (sse_get.c) */
    }
    if (create_mpu) {
        /* The answer's UploadId gets the wrapped key appended (sse_mpu.c). */
        r->mpu_encrypted = true;
        r->rewrite_kind = S3S_REWRITE_CREATE_MPU;
        S3S_GUARD(s3s_buf_init(&r->listing, 0, 1024u * 1024));
    }
    return s_encrypt_new_object(r, create_mpu);
}

/* ------------------------------------------------------------- the stage */

static s3s_result s_stage_head(struct s3s_req *r, bool *wait)
{
    (void)wait;
    /* Before the backend (Ceph RGW answers 416 InvalidRange). */
    S3S_ENSURE(r->op != S3S_OP_COMPLETE_MPU || r->content_length <= S3S_COMPLETE_BODY_MAX,
               S3S_ERR_MALFORMED_XML);
    return s3s_sse_put_setup(r);
}

/* CompleteMultipartUpload of an encrypted upload: its body is checked
 * against the upload's parts (and the object's catalog row written)
 * before its last byte goes (sse_mpu.c decides, now or once the parts are
 * listed). */
static s3s_result s_stage_body(struct s3s_req *r, bool *wait)
{
    if (!r->mpu_complete) {
        return s3s_ok();
    }
    r->mpu_body_done = true;
    *wait = true;
    s3s_mpu_complete_check(r);
    return s3s_ok();
}

const struct s3s_stage s3s_stage_sse_put = {
    .name = "sse_put",
    .on_head = s_stage_head,
    .on_body = s_stage_body,
};
