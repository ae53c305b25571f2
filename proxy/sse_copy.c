/*
 * sse_copy.c - copies of encrypted objects. An object's data key is bound to
 * its bucket and key, so a copy made by the backend alone would not decrypt
 * under its new name. Before a CopyObject, s3seal reads the source's
 * metadata (a HEAD); if the source is encrypted, it unwraps the data key for
 * the source's name and wraps it again for the destination, and asks the
 * backend for a copy with that metadata: the ciphertext is copied as it is,
 * never rewritten.
 */
#include <string.h>

#include "common/log.h"
#include "proxy/proxy.h"

/* "/bucket/key?versionId=v" (or without the leading '/'), URL-encoded. */
static s3s_result s_split_source(struct s3s_cur src, struct s3s_cur *bucket, struct s3s_cur *key,
                                 struct s3s_cur *query)
{
    if (src.len && src.ptr[0] == '/') {
        src.ptr++;
        src.len--;
    }
    *query = s3s_cur_from(NULL, 0);
    long q = s3s_cur_find(src, '?');
    if (q >= 0) {
        *query = s3s_cur_from(src.ptr + q + 1, src.len - (size_t)q - 1);
        src.len = (size_t)q;
    }
    S3S_ENSURE(s3s_cur_split(&src, '/', bucket) && bucket->len && src.len, S3S_ERR_INVALID_ARG);
    *key = src;
    return s3s_ok();
}

s3s_result s3s_copy_probe_start(struct s3s_req *r, bool *started)
{
    struct s3s_cur src;
    *started = false;
    if (!s3s_cur_eq_str(r->method, "PUT") || !s3s_req_header(r, "x-amz-copy-source", &src)) {
        return s3s_ok();
    }
    struct s3s_cur b, k, q;
    S3S_GUARD(s_split_source(src, &b, &k, &q));
    struct s3s_buf raw, path, query;
    S3S_GUARD(s3s_buf_init(&raw, 0, 16384));
    s3s_result res = s3s_buf_init(&path, 0, 3 * 16384);
    if (s3s_is_ok(res)) {
        res = s3s_buf_init(&query, 0, 4096);
    }
    if (s3s_is_ok(res)) {
        res = s3s_buf_appendf(&raw, "/%.*s/%.*s", (int)b.len, (const char *)b.ptr, (int)k.len,
                              (const char *)k.ptr);
    }
    if (s3s_is_ok(res)) {
        res = s3s_sigv4_canonical_path(s3s_buf_cur(&raw), &path);
    }
    if (s3s_is_ok(res)) {
        res = s3s_sigv4_canonical_query(q, false, &query);
    }
    if (s3s_is_ok(res)) {
        res = s3s_buf_init(&r->probe_headers, 0, 16384);
    }
    if (s3s_is_ok(res)) {
        r->probe_stage = 1;
        res = s3s_upstream_head(r, s3s_buf_cur(&path), s3s_buf_cur(&query));
    }
    s3s_buf_clean_up(&raw);
    s3s_buf_clean_up(&path);
    s3s_buf_clean_up(&query);
    S3S_GUARD(res);
    *started = true;
    return s3s_ok();
}

/* The data key of the source, opened for its name and wrapped for ours. */
static s3s_result s_rewrap(struct s3s_req *r, struct s3s_cur src_bucket, struct s3s_cur src_key)
{
    struct s3s_worker *w = r->conn->w;
    s3s_result res = s3s_ok();
    struct s3s_sse_meta meta;
    struct s3s_buf aad = {0}, sb = {0}, sk = {0};
    struct s3s_secret dek = {0};
    const uint8_t *root = NULL;
    uint32_t version = 0;
    s3s_sse_meta_init(&meta);
    if (s3s_failed(res = s3s_sse_meta_decode(s3s_hdrlist_get, &r->resp_meta, &meta))) {
        goto out;
    }
    if (meta.kind != S3S_SSE_KIND_S3 || !w->has_keyring) {
        res = s3s_err(S3S_ERR_SSE_NOT_AVAILABLE);
        goto out;
    }
    if (s3s_failed(res = s3s_buf_init(&aad, 0, 16384)) ||
        s3s_failed(res = s3s_buf_init(&sb, 0, 1024)) ||
        s3s_failed(res = s3s_buf_init(&sk, 0, 4096)) ||
        s3s_failed(res = s3s_percent_decode(src_bucket, true, false, &sb)) ||
        s3s_failed(res = s3s_percent_decode(src_key, true, false, &sk)) ||
        s3s_failed(res = s3s_keyring_get(&w->keyring, meta.root_version, &root)) ||
        s3s_failed(res = s3s_sse_dek_aad(&meta, s3s_buf_cur(&sb), s3s_buf_cur(&sk), &aad)) ||
        s3s_failed(res = s3s_keystore_open_sealed(root, s3s_buf_cur(&aad),
                                                  s3s_buf_cur(&meta.wrapped_dek), &dek))) {
        goto out;
    }
    /* Wrapped again under the current root key, for the destination name. */
    if (s3s_failed(res = s3s_keyring_current(&w->keyring, &version, &root))) {
        goto out;
    }
    meta.root_version = version;
    s3s_buf_reset(&aad);
    s3s_buf_reset(&meta.wrapped_dek);
    if (s3s_failed(res = s3s_sse_dek_aad(&meta, s3s_buf_cur(&r->bucket), s3s_buf_cur(&r->key),
                                         &aad)) ||
        s3s_failed(res = s3s_keystore_seal(root, s3s_buf_cur(&aad), s3s_cur_from(dek.ptr, dek.len),
                                           &meta.wrapped_dek)) ||
        s3s_failed(res = s3s_sse_meta_encode(&meta, s3s_hdrlist_emit, &r->sse_headers))) {
        goto out;
    }
    /* The plaintext's stored checksum stays true for the copy. */
    size_t off = 0;
    const char *k, *v;
    while (s3s_is_ok(res) && r->rewrap_keep_source_meta &&
           s3s_hdrlist_next(&r->resp_meta, &off, &k, &v)) {
        if (strncmp(k, S3S_SSE_META_PREFIX "checksum-", strlen(S3S_SSE_META_PREFIX "checksum-")) ==
            0) {
            res = s3s_hdrlist_emit(&r->sse_headers, k, s3s_cur_from_str(v));
        }
    }
out:
    s3s_secret_destroy(&dek);
    s3s_buf_clean_up(&aad);
    s3s_buf_clean_up(&sb);
    s3s_buf_clean_up(&sk);
    s3s_sse_meta_clean_up(&meta);
    return res;
}

s3s_result s3s_copy_probe_done(struct s3s_req *r)
{
    struct s3s_cur src, b, k, q, v;
    r->probe_stage = 2;
    s3s_upstream_abort(r);
    bool encrypted = r->probe_status == 200 && s3s_sse_meta_present(s3s_hdrlist_get, &r->resp_meta);
    if (encrypted) {
        /* UploadPartCopy of encrypted data needs re-encryption: not yet. */
        S3S_ENSURE(!s3s_s3_query_has(r->query, "uploadId"), S3S_ERR_SSE_NOT_AVAILABLE);
        S3S_ENSURE(s3s_req_header(r, "x-amz-copy-source", &src), S3S_ERR_INTERNAL);
        S3S_GUARD(s_split_source(src, &b, &k, &q));
        r->rewrap_keep_source_meta =
            !(s3s_req_header(r, "x-amz-metadata-directive", &v) && s3s_cur_eq_str(v, "REPLACE"));
        S3S_GUARD(s_rewrap(r, b, k));
        r->rewrap_copy = true;
        r->resp_encrypted = true;
    }
    /* A plain source cannot become encrypted by a backend copy (it would need
     * re-encryption, not in this version). */
    S3S_ENSURE(encrypted || !r->copy_wants_sse || r->probe_status != 200,
               S3S_ERR_SSE_NOT_AVAILABLE);
    /* Plain sources, and errors (NoSuchKey...), go to the backend as asked. */
    s3s_buf_reset(&r->resp_meta);
    r->up_status = 0;
    return s3s_upstream_start(r);
}
