/*
 * sse_copy.c - copies of encrypted objects. An object's data key is bound to
 * its bucket and key, so a copy made by the backend alone would not decrypt
 * under its new name. Before a CopyObject, s3seal reads the source's
 * metadata (a HEAD); if the source is encrypted, it unwraps the data key for
 * the source's name and wraps it again for the destination, and asks the
 * backend for a copy with that metadata: the ciphertext is copied as it is,
 * never rewritten.
 *
 * Where the data itself must change - a plain source copied into an
 * encrypted object, and every UploadPartCopy from an encrypted source or
 * into an encrypted upload - s3seal streams the copy: a second transfer
 * reads the source (only the segments a copy-source range needs), the bytes
 * are decrypted and encrypted on the way, and the main transfer writes them
 * as a PutObject or UploadPart. A source that fails its integrity check
 * aborts the write, so nothing is stored. The client gets the result
 * document S3 gives (CopyObjectResult, CopyPartResult).
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

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

/* The backend path and canonical query of the copy's source (its
 * versionId, and `sub`, a sub-resource such as "tagging", if not NULL).
 * path and query are initialised here; the caller cleans them up. */
static s3s_result s_source_target(struct s3s_req *r, const char *sub, struct s3s_buf *path,
                                  struct s3s_buf *query)
{
    struct s3s_cur src, b, k, q;
    *path = (struct s3s_buf){0};
    *query = (struct s3s_buf){0};
    S3S_ENSURE(s3s_req_header(r, "x-amz-copy-source", &src), S3S_ERR_INTERNAL);
    S3S_GUARD(s_split_source(src, &b, &k, &q));
    struct s3s_buf raw;
    S3S_GUARD(s3s_buf_init(&raw, 0, 16384));
    s3s_result res = s3s_buf_init(path, 0, 3 * 16384);
    if (s3s_is_ok(res)) {
        res = s3s_buf_init(query, 0, 4096);
    }
    if (s3s_is_ok(res)) {
        res = s3s_buf_appendf(&raw, "/%.*s/%.*s", (int)b.len, (const char *)b.ptr, (int)k.len,
                              (const char *)k.ptr);
    }
    if (s3s_is_ok(res)) {
        res = s3s_sigv4_canonical_path(s3s_buf_cur(&raw), path);
    }
    s3s_buf_reset(&raw);
    if (s3s_is_ok(res) && sub) {
        res = s3s_buf_appendf(&raw, "%s%s", sub, q.len ? "&" : "");
    }
    if (s3s_is_ok(res)) {
        res = s3s_buf_append_cur(&raw, q);
    }
    if (s3s_is_ok(res)) {
        res = s3s_sigv4_canonical_query(s3s_buf_cur(&raw), false, query);
    }
    s3s_buf_clean_up(&raw);
    return res;
}

/* SSE-C asked of a copy (for its destination or its source): s3seal
 * carries out copies itself and does not apply customer keys to them, so
 * such a copy is refused rather than made without the key the client
 * asked to protect it with (or read from a source it cannot open). */
static bool s_asks_sse_c(const struct s3s_req *r)
{
    for (size_t i = 0; i < r->n_headers; i++) {
        struct s3s_cur n = r->headers[i].name;
        if (s3s_cur_starts_with_ignore_case(n, "x-amz-server-side-encryption-customer-") ||
            s3s_cur_starts_with_ignore_case(n, "x-amz-copy-source-server-side-encryption-customer-")) {
            return true;
        }
    }
    return false;
}

s3s_result s3s_copy_probe_start(struct s3s_req *r, bool *started)
{
    struct s3s_cur src;
    *started = false;
    if (!s3s_cur_eq_str(r->method, "PUT") || !s3s_req_header(r, "x-amz-copy-source", &src)) {
        return s3s_ok();
    }
    if (s_asks_sse_c(r)) {
        snprintf(r->err_detail, sizeof(r->err_detail), "%s",
                 "s3seal does not apply customer-provided keys (SSE-C) to copies.");
        S3S_BAIL(S3S_ERR_NOT_IMPLEMENTED);
    }
    struct s3s_buf path, query;
    s3s_result res = s_source_target(r, NULL, &path, &query);
    if (s3s_is_ok(res)) {
        res = s3s_buf_init(&r->probe_headers, 0, 16384);
    }
    /* The copy's source conditions, asked of the source itself. */
    static const char *const cond[][2] = {
        {"x-amz-copy-source-if-match", "if-match"},
        {"x-amz-copy-source-if-none-match", "if-none-match"},
        {"x-amz-copy-source-if-modified-since", "if-modified-since"},
        {"x-amz-copy-source-if-unmodified-since", "if-unmodified-since"},
    };
    struct s3s_sigv4_header hv[4 + 3];
    size_t nh = 0;
    for (size_t i = 0; i < 4; i++) {
        struct s3s_cur v;
        if (s3s_req_header(r, cond[i][0], &v)) {
            hv[nh++] = (struct s3s_sigv4_header){s3s_cur_from_str(cond[i][1]), v};
        }
    }
    if (s3s_is_ok(res)) {
        r->probe_stage = 1;
        res = s3s_upstream_head(r, s3s_buf_cur(&path), s3s_buf_cur(&query), hv, nh);
    }
    s3s_buf_clean_up(&path);
    s3s_buf_clean_up(&query);
    S3S_GUARD(res);
    *started = true;
    return s3s_ok();
}

/* The data key of the source, opened for its name (and its caller, for an
 * SSE-KMS source) and wrapped for ours as the copy asks: by a KMS key, or
 * under the current root key. */
static s3s_result s_rewrap(struct s3s_req *r, struct s3s_cur src_bucket, struct s3s_cur src_key)
{
    struct s3s_worker *w = r->conn->w;
    s3s_result res = s3s_ok();
    struct s3s_sse_meta meta;
    struct s3s_buf sb = {0}, sk = {0};
    struct s3s_secret dek = {0};
    s3s_sse_meta_init(&meta);
    if (s3s_failed(res = s3s_sse_meta_decode(s3s_hdrlist_get, &r->resp_meta, &meta))) {
        goto out;
    }
    if (!w->has_keyring) {
        res = s3s_err(S3S_ERR_KEYSTORE);
        goto out;
    }
    if (s3s_failed(res = s3s_buf_init(&sb, 0, 1024)) ||
        s3s_failed(res = s3s_buf_init(&sk, 0, 4096)) ||
        s3s_failed(res = s3s_percent_decode(src_bucket, true, false, &sb)) ||
        s3s_failed(res = s3s_percent_decode(src_key, true, false, &sk)) ||
        s3s_failed(res = s3s_sse_open_dek_for(r, &meta, s3s_buf_cur(&sb), s3s_buf_cur(&sk),
                                              &dek))) {
        goto out;
    }
    /* A copy records the part count of a multipart source, which its own
     * ETag may no longer show. */
    if (meta.multipart && !meta.parts) {
        /* 0 for parts3: the copy keeps the data key, so its id, and reads
         * the part count from the catalog's row as the source does. */
        meta.parts = s3s_sse_meta_parts(&meta, s3s_cur_from_str(r->resp_etag));
    }
    res = r->sse_want.mode == S3S_SSE_KMS
              ? s3s_sse_kms_wrap(r, &meta, s3s_buf_cur(&r->bucket), s3s_buf_cur(&r->key), dek.ptr,
                                 "ReEncrypt")
              : s3s_sse_wrap_root(r, &meta, dek.ptr);
    if (s3s_failed(res) ||
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
    s3s_buf_clean_up(&sb);
    s3s_buf_clean_up(&sk);
    s3s_sse_meta_clean_up(&meta);
    return res;
}

/* Starts a streamed copy: the destination write, then the source read. */
static s3s_result s_stream(struct s3s_req *r, bool src_encrypted, bool part_copy, bool dst_sse)
{
    struct s3s_cur src, b, k, q;
    S3S_ENSURE(s3s_req_header(r, "x-amz-copy-source", &src), S3S_ERR_INTERNAL);
    S3S_GUARD(s_split_source(src, &b, &k, &q));
    s3s_result res = s3s_ok();
    struct s3s_sse_meta meta;
    struct s3s_secret dek = {0};
    struct s3s_buf sb = {0}, sk = {0}, path = {0}, query = {0}, seg_aad = {0};
    char range[64] = "";
    s3s_sse_meta_init(&meta);
    uint64_t stored = r->probe_length, plain = stored;
    if (src_encrypted &&
        (s3s_failed(res = s3s_sse_meta_decode(s3s_hdrlist_get, &r->resp_meta, &meta)) ||
         s3s_failed(res = s3s_sse_plain_size_x(stored, meta.segment_size,
                                               s3s_sse_overhead(meta.multipart), &plain)))) {
        goto out;
    }
    /* The plaintext bytes [a, a + want) to copy. */
    uint64_t a = 0, last = 0, want = plain;
    struct s3s_cur rv;
    if (part_copy && s3s_req_header(r, "x-amz-copy-source-range", &rv)) {
        if (s3s_failed(res = s3s_sse_copy_range_parse(rv, plain, &a, &last))) {
            goto out;
        }
        want = last - a + 1;
        if (!src_encrypted) {
            snprintf(range, sizeof(range), "bytes=%llu-%llu", (unsigned long long)a,
                     (unsigned long long)last);
        }
    }
    if (s3s_failed(res = s3s_buf_init(&sb, 0, 1024)) ||
        s3s_failed(res = s3s_buf_init(&sk, 0, 4096)) ||
        s3s_failed(res = s3s_buf_init(&seg_aad, 0, 128)) ||
        s3s_failed(res = s3s_percent_decode(b, true, false, &sb)) ||
        s3s_failed(res = s3s_percent_decode(k, true, false, &sk)) ||
        s3s_failed(res = s_source_target(r, NULL, &path, &query))) {
        goto out;
    }
    if (src_encrypted) {
        /* Only the segments that hold the bytes to copy. */
        uint64_t seg = meta.segment_size, full = seg + s3s_sse_overhead(meta.multipart);
        uint64_t s0 = a / seg, end = want ? ((a + want - 1) / seg + 1) * full : full;
        if (end > stored) {
            end = stored;
        }
        snprintf(range, sizeof(range), "bytes=%llu-%llu", (unsigned long long)(s0 * full),
                 (unsigned long long)(end - 1));
        if (s3s_failed(res = s3s_sse_open_dek_for(r, &meta, s3s_buf_cur(&sb),
                                                  s3s_buf_cur(&sk), &dek)) ||
            s3s_failed(res = s3s_sse_segment_aad(&meta, &seg_aad)) ||
            s3s_failed(res = s3s_sse_dec_new(meta.aead, dek.ptr, s3s_buf_cur(&seg_aad),
                                             meta.segment_size, meta.multipart, stored,
                                             (uint32_t)s0, a - s0 * seg, want, &r->copy_dec)) ||
            (meta.part_keys &&
             s3s_failed(res = s3s_sse_dec_use_part_keys(r->copy_dec, dek.ptr)))) {
            goto out;
        }
        uint32_t parts = s3s_sse_meta_parts(&meta, s3s_cur_from_str(r->resp_etag));
        if (meta.multipart && parts &&
            s3s_failed(res = s3s_sse_dec_set_parts(r->copy_dec, parts))) {
            goto out;
        }
        if (!parts && meta.catalog && s3s_failed(res = s3s_mpu_nonces_catalog(r, dek.ptr))) {
            goto out;
        }
    }
    /* The destination: a PutObject or UploadPart of `want` bytes. */
    r->stream_copy = true;
    r->has_body = true;
    r->content_length = want;
    r->up_length = want;
    r->body_complete = false;
    r->body_verified = false;
    r->rewrite_kind = S3S_REWRITE_COPY_RESULT;
    s3s_buf_reset(&r->sse_headers);
    if (dst_sse) {
        res = part_copy ? s3s_sse_part_encryptor(r) : s3s_sse_new_object_encryptor(r);
        if (s3s_failed(res)) {
            goto out;
        }
    }
    if (!part_copy && r->rewrap_keep_source_meta) {
        /* The plaintext's stored checksum stays true for the copy. */
        size_t off = 0;
        const char *hk, *hv;
        while (s3s_is_ok(res) && s3s_hdrlist_next(&r->resp_meta, &off, &hk, &hv)) {
            if (strncmp(hk, S3S_SSE_META_PREFIX "checksum-",
                        strlen(S3S_SSE_META_PREFIX "checksum-")) == 0) {
                res = s3s_hdrlist_emit(&r->sse_headers, hk, s3s_cur_from_str(hv));
            }
        }
    }
    s3s_buf_clean_up(&r->copy_plain); /* it may hold the source's tags, read */
    if (s3s_failed(res) || s3s_failed(res = s3s_buf_init(&r->listing, 0, 64u * 1024)) ||
        s3s_failed(res = s3s_buf_init(&r->copy_plain, 0,
                                      256u * 1024 + 2 * (S3S_SSE_SEGMENT_SIZE + 64)))) {
        goto out;
    }
    s3s_buf_reset(&r->resp_meta);
    r->up_status = 0;
    if (s3s_failed(res = s3s_upstream_start(r))) {
        goto out;
    }
    if (r->copy_dec && s3s_sse_dec_needs_first_part(r->copy_dec)) {
        /* A range of a multipart source: its nonces first (sse_mpu.c). */
        snprintf(r->copy_range, sizeof(r->copy_range), "%s", range);
        uint32_t parts = s3s_sse_meta_parts(&meta, s3s_cur_from_str(r->resp_etag));
        res = s3s_mpu_nonces_start(r, r->copy_dec, s3s_buf_cur(&path), s3s_buf_cur(&query),
                                   stored, parts);
    } else {
        res = s3s_upstream_source_get(r, s3s_buf_cur(&path), s3s_buf_cur(&query), range);
    }
    if (s3s_failed(res)) {
        goto out;
    }
out:
    s3s_secret_destroy(&dek);
    s3s_buf_clean_up(&sb);
    s3s_buf_clean_up(&sk);
    s3s_buf_clean_up(&path);
    s3s_buf_clean_up(&query);
    s3s_buf_clean_up(&seg_aad);
    s3s_sse_meta_clean_up(&meta);
    return res;
}

/* GetObjectTagging of the copy's source, by the second transfer. */
static s3s_result s_read_tags(struct s3s_req *r)
{
    struct s3s_buf path, query;
    s3s_result res = s_source_target(r, "tagging", &path, &query);
    if (s3s_is_ok(res) && !r->copy_plain.max) {
        res = s3s_buf_init(&r->copy_plain, 0, 256u * 1024 + 2 * (S3S_SSE_SEGMENT_SIZE + 64));
    }
    if (s3s_is_ok(res)) {
        s3s_buf_reset(&r->copy_plain);
        r->src_status = 0;
        r->copy_tags_stage = true;
        res = s3s_upstream_source_get(r, s3s_buf_cur(&path), s3s_buf_cur(&query), NULL);
    }
    s3s_buf_clean_up(&path);
    s3s_buf_clean_up(&query);
    return res;
}

/* What the copy's catalog entry needs of its source (r->copy_src): the
 * ETag clients see of it, where the probe shows it: the stored MD5 of an
 * encrypted object, the backend's of a multipart one (as s3seal gives it)
 * and of a plain one (the MD5 of its data, or a multipart ETag). */
static s3s_result s_note_source(struct s3s_req *r, struct s3s_cur bucket, struct s3s_cur key,
                                bool encrypted)
{
    struct s3s_copy_source *cs = &r->copy_src;
    struct s3s_cur etag = s3s_cur_from_str(r->resp_etag), v;
    etag = s3s_cur_unquote(etag);
    if (etag.len == 0 || etag.len >= sizeof(cs->etag)) {
        return s3s_ok(); /* no entry for the copy */
    }
    s3s_buf_clean_up(&cs->bucket);
    s3s_buf_clean_up(&cs->key);
    S3S_GUARD(s3s_buf_init(&cs->bucket, 0, 1024));
    S3S_GUARD(s3s_buf_init(&cs->key, 0, 4096));
    S3S_GUARD(s3s_percent_decode(bucket, true, false, &cs->bucket));
    S3S_GUARD(s3s_percent_decode(key, true, false, &cs->key));
    memcpy(cs->etag, etag.ptr, etag.len);
    cs->etag[etag.len] = '\0';
    cs->plain_etag[0] = '\0';
    cs->plain_size = r->probe_length;
    bool multipart = memchr(etag.ptr, '-', etag.len) != NULL;
    if (encrypted) {
        struct s3s_sse_meta meta;
        s3s_sse_meta_init(&meta);
        s3s_result res = s3s_sse_meta_decode(s3s_hdrlist_get, &r->resp_meta, &meta);
        if (s3s_is_ok(res)) {
            res = s3s_sse_plain_size_x(r->probe_length, meta.segment_size,
                                       s3s_sse_overhead(meta.multipart), &cs->plain_size);
        }
        s3s_sse_meta_clean_up(&meta);
        S3S_GUARD(res);
        if (s3s_hdrlist_get(&r->resp_meta, S3S_SSE_META_PREFIX "md5", &v) && v.len == 32) {
            memcpy(cs->plain_etag, v.ptr, v.len);
            cs->plain_etag[v.len] = '\0';
        } else if (multipart) {
            memcpy(cs->plain_etag, cs->etag, etag.len + 1);
        }
    } else {
        memcpy(cs->plain_etag, cs->etag, etag.len + 1);
    }
    cs->known = true;
    return s3s_ok();
}

s3s_result s3s_copy_probe_done(struct s3s_req *r)
{
    struct s3s_cur src, b, k, q, v;
    r->probe_stage = 2;
    s3s_upstream_abort(r);
    bool found = r->probe_status == 200;
    bool encrypted = found && s3s_sse_meta_present(s3s_hdrlist_get, &r->resp_meta);
    bool part_copy = s3s_s3_query_has(r->query, "uploadId");
    /* A failed copy-source condition is answered here: some backends (Ceph
     * RGW) ignore the x-amz-copy-source-if-* headers on the copy itself. */
    S3S_ENSURE(r->probe_status != 412 && r->probe_status != 304, S3S_ERR_PRECONDITION_FAILED);
    if (!found && (r->copy_wants_sse || r->mpu_encrypted || part_copy)) {
        /* Fail closed: a copy that must be encrypted never goes to the
         * backend as a plain copy. An UploadPartCopy of a missing source
         * is answered here too (it aborts Ceph RGW 16's request). */
        S3S_BAIL(r->probe_status == 404   ? S3S_ERR_NO_SUCH_KEY
                 : r->probe_status == 403 ? S3S_ERR_ACCESS_DENIED
                                          : S3S_ERR_BAD_GATEWAY);
    }
    if (found && !part_copy) {
        S3S_ENSURE(s3s_req_header(r, "x-amz-copy-source", &src), S3S_ERR_INTERNAL);
        S3S_GUARD(s_split_source(src, &b, &k, &q));
        S3S_GUARD(s_note_source(r, b, k, encrypted));
    }
    r->rewrap_keep_source_meta =
        !part_copy &&
        !(s3s_req_header(r, "x-amz-metadata-directive", &v) && s3s_cur_eq_str(v, "REPLACE"));
    if (found && part_copy && (encrypted || r->mpu_encrypted)) {
        /* The part's bytes change: decrypted from the source, encrypted for
         * the upload, or both. */
        return s_stream(r, encrypted, true, r->mpu_encrypted);
    }
    if (found && !encrypted && r->copy_wants_sse) {
        /* A plain source copied into an encrypted object, with its tags
         * unless the client gives the copy its own (as S3 copies them). */
        bool replace_tags = s3s_req_header(r, "x-amz-tagging-directive", &v) &&
                            s3s_cur_eq_str(v, "REPLACE");
        if (r->probe_tag_count && !replace_tags) {
            return s_read_tags(r);
        }
        return s_stream(r, false, false, true);
    }
    if (encrypted && !part_copy) {
        S3S_ENSURE(s3s_req_header(r, "x-amz-copy-source", &src), S3S_ERR_INTERNAL);
        S3S_GUARD(s_split_source(src, &b, &k, &q));
        S3S_GUARD(s_rewrap(r, b, k));
        r->rewrap_copy = true;
        r->resp_encrypted = true;
        /* The result's ETag is the catalog's (catalog.c). */
        r->rewrite_kind = S3S_REWRITE_COPY_REWRAP;
        S3S_GUARD(s3s_buf_init(&r->listing, 0, 64u * 1024));
    }
    /* Plain sources, and errors (NoSuchKey, failed conditions...), go to the
     * backend as asked. */
    s3s_buf_reset(&r->resp_meta);
    r->up_status = 0;
    return s3s_upstream_start(r);
}

void s3s_copy_source_finished(struct s3s_req *r, CURLcode rc)
{
    if (r->copy_tags_stage) {
        /* The source's tags are in: now the copy. */
        int status = r->src_status;
        s3s_upstream_abort_source(r);
        r->copy_tags_stage = false;
        s3s_result res = rc == CURLE_OK && status == 200 ? s3s_ok()
                                                         : s3s_err(S3S_ERR_BAD_GATEWAY);
        if (s3s_is_ok(res)) {
            res = s3s_buf_init(&r->copy_tagging, 0, 8192);
        }
        if (s3s_is_ok(res)) {
            res = s3s_xml_tagging_header(s3s_buf_cur(&r->copy_plain), &r->copy_tagging);
        }
        if (s3s_is_ok(res)) {
            res = s_stream(r, false, false, true);
        }
        if (s3s_failed(res)) {
            s3s_req_send_error(r, res.code, NULL);
        }
        return;
    }
    if (r->mpu_complete) {
        s3s_mpu_parts_page(r, rc); /* the second transfer lists parts here */
        return;
    }
    if (r->nonce_stage) {
        s3s_mpu_nonce_read(r, rc); /* or reads a multipart object's nonces */
        return;
    }
    int status = r->src_status;
    int32_t err = r->src_error;
    s3s_upstream_abort_source(r);
    if (!err && rc != CURLE_OK) {
        err = S3S_ERR_BAD_GATEWAY;
    }
    if (!err && (status < 200 || status > 299)) {
        /* The source changed since the probe. */
        err = status == 404 ? S3S_ERR_NO_SUCH_KEY
              : status == 412 || status == 304 ? S3S_ERR_PRECONDITION_FAILED
              : status == 403 ? S3S_ERR_ACCESS_DENIED
                              : S3S_ERR_BAD_GATEWAY;
    }
    if (!err && r->copy_dec && s3s_failed(s3s_sse_dec_finish(r->copy_dec))) {
        err = S3S_ERR_SSE_TAG_MISMATCH;
    }
    if (!err && (r->body_decoded != r->content_length ||
                 (r->enc && s3s_failed(s3s_sse_enc_finish(r->enc, &r->upload))))) {
        err = S3S_ERR_INCOMPLETE_BODY;
    }
    if (err) {
        S3S_LOGE("sse", "req=%s copy source cannot be read: %s (status %d)", r->id,
                 s3s_strerror(err), status);
        r->body_failed = true;
        r->body_error = err;
    } else {
        r->body_complete = true;
        r->body_verified = true;
    }
    s3s_upstream_kick_send(r);
}

s3s_result s3s_copy_result(const struct s3s_req *r, struct s3s_buf *out)
{
    char when[32];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S.000Z", &tm);
    const char *kind = s3s_s3_query_has(r->query, "uploadId") ? "CopyPartResult"
                                                              : "CopyObjectResult";
    /* An ETag is hex digits (and "-N") between quotes: nothing to escape
     * but the quotes themselves. */
    struct s3s_cur etag = s3s_cur_from_str(r->resp_etag);
    etag = s3s_cur_unquote(etag);
    for (size_t i = 0; i < etag.len; i++) {
        S3S_ENSURE(etag.ptr[i] != '<' && etag.ptr[i] != '&' && etag.ptr[i] != '"',
                   S3S_ERR_BAD_GATEWAY);
    }
    return s3s_buf_appendf(out,
                           "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<%s xmlns=\"http://"
                           "s3.amazonaws.com/doc/2006-03-01/\"><LastModified>%s</LastModified>"
                           "<ETag>&quot;%.*s&quot;</ETag></%s>",
                           kind, when, (int)etag.len, (const char *)etag.ptr, kind);
}

/* The source's probe answered: the copy itself starts (and the core is
 * called again when it is done). */
static s3s_result s_stage_answer(struct s3s_req *r, bool *taken)
{
    if (r->probe_stage != 1 || r->part_number) {
        return s3s_ok();
    }
    *taken = true;
    S3S_ENSURE(r->upstream_result == CURLE_OK, S3S_ERR_BAD_GATEWAY);
    return s3s_copy_probe_done(r);
}

/* The stage (stage.h): a copy's source is probed before the copy starts. */
const struct s3s_stage s3s_stage_sse_copy = {
    .name = "sse_copy",
    .on_start = s3s_copy_probe_start,
    .on_answer = s_stage_answer,
};
