/*
 * sse_mpu.c - encrypted multipart uploads without per-upload state in the
 * proxy. CreateMultipartUpload makes the object's data key and stores its
 * metadata with the upload (it becomes the object's); the UploadId s3seal
 * returns is the backend's with the wrapped key appended:
 *
 *     <backend upload id>~s3seal3~<root key version>~<aead>~<wrapped key, hex>~<mac>
 *
 * (or, for an SSE-KMS upload, ~s3seal3-kms~ and two more fields: see
 * s_kms_suffix; s3seal2 for uploads begun without the catalog), so any s3seal instance that shares the keystore can
 * encrypt any part: UploadPart checks the MAC, which binds the suffix to
 * the bucket, the object key and the backend's upload id (sse/upload_id.h),
 * unwraps the key (bound to the bucket and object key) and seals the part
 * under a key of its own for this part upload (sse/FORMAT.md, the
 * multipart layout).
 * Every other request naming the upload reaches the backend with the
 * backend's own id.
 *
 * The catalog (parts3): a Complete records the object's part count and
 * first part number in the keystore before the backend completes it; a
 * read looks them up before the object's first and last stored nonces
 * (below), so an object rebuilt on the backend from a run of its parts is
 * refused. The ETag's part count is the backend's word and never trusted
 * for these objects.
 */
#include <string.h>

#include "common/log.h"
#include "keystore/keystore.h"
#include "proxy/proxy.h"
#include "sse/upload_id.h"


/* The SSE-S3 suffix: the root key version, the AEAD and the wrapped key. */
static s3s_result s_s3_suffix(const char *mark, const struct s3s_sse_meta *m,
                              struct s3s_buf *out)
{
    S3S_GUARD(s3s_buf_appendf(out, "~%s~%u~%d~", mark, m->root_version, (int)m->aead));
    return s3s_buf_append_hex(out, m->wrapped_dek.ptr, m->wrapped_dek.len);
}

/* An SSE-KMS upload: the object's data key, wrapped under the current root
 * key for the upload id (bound to the KMS key's id: UploadPart checks that
 * the caller may still use that key, but needs no key-service call), then
 * the KMS key's id and whether a bucket key is used:
 *     ~s3seal2-kms~<root version>~<aead>~<wrapped key, hex>~<KMS key id>~<0|1> */
static s3s_result s_kms_suffix(struct s3s_req *r, const struct s3s_sse_meta *m,
                               const uint8_t *dek, struct s3s_buf *out)
{
    struct s3s_worker *w = r->conn->w;
    const struct s3s_kms_snap_key *k =
        s3s_kms_snapshot_by_arn(w->kms.snap, s3s_buf_cur(&m->kms_key_arn));
    S3S_ENSURE(k != NULL && w->has_keyring, S3S_ERR_INTERNAL);
    struct s3s_sse_meta t;
    s3s_sse_meta_init(&t);
    t.aead = m->aead;
    t.segment_size = m->segment_size;
    t.multipart = true;
    t.part_keys = m->part_keys;
    t.catalog = m->catalog;
    t.kind = S3S_SSE_KIND_S3;
    snprintf(t.upload_kms_key_id, sizeof(t.upload_kms_key_id), "%s", k->meta.id);
    const uint8_t *root = NULL;
    struct s3s_buf aad;
    s3s_result res = s3s_buf_init(&aad, 0, 16384);
    if (s3s_is_ok(res)) {
        res = s3s_keyring_current(&w->keyring, &t.root_version, &root);
    }
    if (s3s_is_ok(res)) {
        res = s3s_sse_dek_aad(&t, s3s_buf_cur(&r->bucket), s3s_buf_cur(&r->key), &aad);
    }
    if (s3s_is_ok(res)) {
        res = s3s_keystore_seal(root, s3s_buf_cur(&aad), s3s_cur_from(dek, S3S_SSE_KEY_LEN),
                                &t.wrapped_dek);
    }
    if (s3s_is_ok(res)) {
        res = s_s3_suffix(m->catalog ? "s3seal3-kms" : "s3seal2-kms", &t, out);
    }
    if (s3s_is_ok(res)) {
        res = s3s_buf_appendf(out, "~%s~%d", k->meta.id, m->bucket_key.len ? 1 : 0);
    }
    s3s_buf_clean_up(&aad);
    s3s_sse_meta_clean_up(&t);
    return res;
}

s3s_result s3s_mpu_suffix(struct s3s_req *r, const struct s3s_sse_meta *m, const uint8_t *dek,
                          struct s3s_buf *out)
{
    /* New uploads are written in the parts2 layout (each part upload under
     * its own key) and their suffix ends in an empty MAC field, filled in
     * by s3s_mpu_bind once the backend's upload id is known. */
    S3S_ENSURE(m->multipart && m->part_keys, S3S_ERR_INTERNAL);
    if (m->kind == S3S_SSE_KIND_KMS) {
        S3S_GUARD(s_kms_suffix(r, m, dek, out));
    } else {
        S3S_ENSURE(m->kind == S3S_SSE_KIND_S3, S3S_ERR_INTERNAL);
        S3S_GUARD(s_s3_suffix(m->catalog ? "s3seal3" : "s3seal2", m, out));
    }
    return s3s_buf_append_str(out, "~");
}

s3s_result s3s_mpu_bind(struct s3s_req *r, struct s3s_cur backend)
{
    struct s3s_buf *sfx = &r->mpu_suffix;
    if (!sfx->len || sfx->ptr[sfx->len - 1] != '~') {
        return s3s_ok(); /* bound already */
    }
    /* The root key of the suffix's version keys the MAC. */
    struct s3s_buf id;
    S3S_GUARD(s3s_buf_init(&id, 0, 8192));
    struct s3s_sse_upload_id u;
    uint8_t mac[S3S_SSE_UPLOAD_MAC_LEN];
    const uint8_t *root = NULL;
    struct s3s_worker *w = r->conn->w;
    s3s_result res = s3s_buf_append_cur(&id, backend);
    if (s3s_is_ok(res)) {
        /* A MAC field of the right length, to parse the fields. */
        res = s3s_buf_appendf(&id, "%.*s%032d", (int)sfx->len, (const char *)sfx->ptr, 0);
    }
    if (s3s_is_ok(res)) {
        res = s3s_sse_upload_id_parse(s3s_buf_cur(&id), &u);
    }
    if (s3s_is_ok(res)) {
        res = u.ours && u.part_keys && s3s_cur_eq(u.backend, backend) && w->has_keyring
                  ? s3s_keyring_get(&w->keyring, u.root_version, &root)
                  : s3s_err(S3S_ERR_INTERNAL);
    }
    if (s3s_is_ok(res)) {
        res = s3s_sse_upload_id_mac(root, s3s_buf_cur(&r->bucket), s3s_buf_cur(&r->key), backend,
                                    u.bound, mac);
    }
    if (s3s_is_ok(res)) {
        res = s3s_buf_append_hex(sfx, mac, sizeof(mac));
    }
    s3s_buf_clean_up(&id);
    return res;
}

/* Does the request write a part (UploadPart, UploadPartCopy)? */
static bool s_writes_part(const struct s3s_req *r)
{
    return s3s_cur_eq_str(r->method, "PUT");
}

/* Splits a client's upload id; *ours is false for a backend id as it is
 * (an upload s3seal does not encrypt). `vouched`: the id is the one the
 * upload registry recorded for the backend id the client named. */
static s3s_result s_parse_id(struct s3s_req *r, struct s3s_cur id, bool vouched,
                             struct s3s_cur *backend, struct s3s_sse_meta *m, bool *ours)
{
    struct s3s_sse_upload_id u;
    *ours = false;
    *backend = id;
    S3S_GUARD(s3s_sse_upload_id_parse(id, &u));
    if (!u.ours) {
        return s3s_ok();
    }
    struct s3s_worker *w = r->conn->w;
    if (u.part_keys) {
        /* The suffix must be the one made for this upload of this object. */
        const uint8_t *root = NULL;
        if (!w->has_keyring || s3s_failed(s3s_keyring_get(&w->keyring, u.root_version, &root)) ||
            !s3s_sse_upload_id_verify(&u, root, s3s_buf_cur(&r->bucket), s3s_buf_cur(&r->key))) {
            S3S_LOGW("sse", "req=%s upload id not made for this upload; refused", r->id);
            S3S_BAIL(S3S_ERR_NO_SUCH_UPLOAD);
        }
    } else if (!vouched && s_writes_part(r)) {
        /* The first layout's suffix is bound to nothing but the object:
         * pasted onto another upload it would seal under nonces already
         * used. No part is encrypted with it unless the registry recorded
         * it for this very backend upload. */
        S3S_LOGW("sse", "req=%s part of an upload with an unbound id; refused", r->id);
        S3S_BAIL(S3S_ERR_NO_SUCH_UPLOAD);
    }
    if (u.kms) {
        memcpy(m->upload_kms_key_id, u.kms_key_id, sizeof(u.kms_key_id));
        m->upload_bucket_key = u.bucket_key;
    }
    struct s3s_cur hex = u.wrapped_hex;
    S3S_GUARD(s3s_buf_reserve(&m->wrapped_dek, hex.len / 2));
    S3S_ENSURE(s3s_hex_decode(hex, m->wrapped_dek.ptr, hex.len / 2), S3S_ERR_NO_SUCH_UPLOAD);
    m->wrapped_dek.len = hex.len / 2;
    m->kind = S3S_SSE_KIND_S3;
    m->root_version = u.root_version;
    m->aead = u.aead;
    m->multipart = true;
    m->part_keys = u.part_keys;
    m->catalog = u.catalog;
    *backend = u.backend;
    *ours = true;
    return s3s_ok();
}

s3s_result s3s_mpu_parse_request(struct s3s_req *r, struct s3s_sse_meta *meta)
{
    struct s3s_cur raw = {0};
    if (!s3s_s3_query_value(r->query, "uploadId", &raw)) {
        return s3s_ok();
    }
    struct s3s_buf id;
    S3S_GUARD(s3s_buf_init(&id, 0, 4096));
    struct s3s_cur backend;
    bool ours = false;
    /* A backend id the upload registry knows (upload_reg.c): s3seal's id. */
    s3s_result res = r->mpu_reg_id.len ? s3s_buf_append_cur(&id, s3s_buf_cur(&r->mpu_reg_id))
                                       : s3s_percent_decode(raw, true, false, &id);
    if (s3s_is_ok(res)) {
        res = s_parse_id(r, s3s_buf_cur(&id), r->mpu_reg_id.len > 0, &backend, meta, &ours);
    }
    if (s3s_is_ok(res) && ours) {
        r->mpu_encrypted = true;
        s3s_buf_reset(&r->mpu_backend_id);
        res = s3s_buf_append_cur(&r->mpu_backend_id, backend);
    }
    if (s3s_is_ok(res) && ours && s3s_cur_eq_str(r->method, "GET") && !r->listing.max) {
        /* ListParts: the parts' sizes become their plaintext sizes. */
        r->rewrite_kind = S3S_REWRITE_LIST_PARTS;
        res = s3s_buf_init(&r->listing, 0, 64u * 1024 * 1024);
    }
    s3s_buf_clean_up(&id);
    return res;
}

/* ------------------------------------------------ CompleteMultipartUpload */

/* Starts reading the ListParts page after r->mpu_marker. */
static s3s_result s_list_page(struct s3s_req *r)
{
    struct s3s_buf path, query, raw;
    S3S_GUARD(s3s_buf_init(&path, 0, 3 * 16384));
    s3s_result res = s3s_buf_init(&query, 0, 8192);
    if (s3s_is_ok(res)) {
        res = s3s_buf_init(&raw, 0, 8192);
    }
    if (s3s_is_ok(res)) {
        res = s3s_buf_appendf(&raw, "/%.*s/", (int)r->bucket.len, (const char *)r->bucket.ptr);
    }
    if (s3s_is_ok(res)) {
        res = s3s_percent_encode(s3s_buf_cur(&r->key), &raw);
    }
    if (s3s_is_ok(res)) {
        res = s3s_sigv4_canonical_path(s3s_buf_cur(&raw), &path);
    }
    s3s_buf_reset(&raw);
    if (s3s_is_ok(res)) {
        res = s3s_buf_appendf(&raw, "max-parts=1000&part-number-marker=%u&uploadId=",
                              r->mpu_marker);
    }
    if (s3s_is_ok(res)) {
        res = s3s_percent_encode(s3s_buf_cur(&r->mpu_backend_id), &raw);
    }
    if (s3s_is_ok(res)) {
        res = s3s_sigv4_canonical_query(s3s_buf_cur(&raw), false, &query);
    }
    if (s3s_is_ok(res)) {
        s3s_buf_reset(&r->copy_plain);
        r->src_status = 0;
        res = s3s_upstream_source_get(r, s3s_buf_cur(&path), s3s_buf_cur(&query), NULL);
    }
    s3s_buf_clean_up(&path);
    s3s_buf_clean_up(&query);
    s3s_buf_clean_up(&raw);
    return res;
}

s3s_result s3s_mpu_complete_start(struct s3s_req *r)
{
    r->mpu_complete = true;
    r->rewrite_kind = S3S_REWRITE_COMPLETE;
    S3S_GUARD(s3s_buf_init(&r->listing, 0, 1024u * 1024));
    r->mpu_sizes = s3s_calloc(10001, sizeof(*r->mpu_sizes));
    S3S_ENSURE(r->mpu_sizes != NULL, S3S_ERR_NOMEM);
    for (size_t i = 0; i <= 10000; i++) {
        r->mpu_sizes[i] = UINT64_MAX;
    }
    /* A body naming 10,000 parts with their ETags is well under 2 MiB. */
    S3S_GUARD(s3s_req_keep_body(r, S3S_COMPLETE_BODY_MAX, S3S_ERR_MALFORMED_XML));
    S3S_GUARD(s3s_buf_init(&r->copy_plain, 0, 4u * 1024 * 1024));
    return s_list_page(r);
}

void s3s_mpu_parts_page(struct s3s_req *r, CURLcode rc)
{
    int status = r->src_status;
    s3s_upstream_abort_source(r);
    bool truncated = false;
    uint32_t next = 0;
    s3s_result res = rc == CURLE_OK && status == 200 ? s3s_ok()
                     : status == 404                 ? s3s_err(S3S_ERR_NO_SUCH_UPLOAD)
                                                     : s3s_err(S3S_ERR_BAD_GATEWAY);
    if (s3s_is_ok(res)) {
        res = s3s_xml_parts_page(s3s_buf_cur(&r->copy_plain), r->mpu_sizes, &truncated, &next);
    }
    if (s3s_is_ok(res) && truncated) {
        /* The next page, which must start further on. */
        res = next > r->mpu_marker ? s3s_ok() : s3s_err(S3S_ERR_BAD_GATEWAY);
        if (s3s_is_ok(res)) {
            r->mpu_marker = next;
            res = s_list_page(r);
        }
        if (s3s_is_ok(res)) {
            return;
        }
    }
    if (s3s_failed(res)) {
        S3S_LOGW("sse", "req=%s cannot list the upload's parts: %s (status %d)", r->id,
                 s3s_strerror(res.code), status);
        r->body_failed = true;
        r->body_error = res.code;
        s3s_upstream_kick_send(r);
        return;
    }
    r->mpu_listed = true;
    s3s_mpu_complete_check(r);
}

/* Parts numbered one after the other (from 1, or from where the client
 * starts: minio-js starts at 2), in order; all but the last of one size,
 * whole segments; the last not larger (and not empty unless it is the only
 * one). */
static s3s_result s_check_layout(struct s3s_req *r, uint32_t *first, uint32_t *count,
                                 uint64_t *plain)
{
    uint32_t *numbers = s3s_calloc(10000, sizeof(*numbers));
    S3S_ENSURE(numbers != NULL, S3S_ERR_NOMEM);
    size_t n = 0;
    s3s_result res =
        s3s_xml_complete_parts(s3s_buf_cur(&r->body_copy), numbers, 10000, &n, r->mpu_etag);
    if (s3s_is_ok(res)) {
        res = s3s_sse_mpu_layout_check(numbers, n, r->mpu_sizes, S3S_SSE_SEGMENT_SIZE);
    }
    uint64_t stored = 0;
    for (size_t i = 0; s3s_is_ok(res) && i < n; i++) {
        stored += r->mpu_sizes[numbers[i]]; /* each listed: checked above */
    }
    if (s3s_is_ok(res)) {
        /* The check refuses an empty list. */
        *first = numbers[0];
        *count = (uint32_t)n;
        res = s3s_sse_plain_size_x(stored, S3S_SSE_SEGMENT_SIZE, S3S_SSE_PART_OVERHEAD, plain);
    }
    s3s_free(&numbers);
    return res;
}

void s3s_mpu_catalog_recorded(struct s3s_req *r, int32_t err)
{
    /* Without its row the object could not be read: it is not made. */
    s3s_req_body_checked(r, err);
}

void s3s_mpu_complete_check(struct s3s_req *r)
{
    if (!r->mpu_listed || !r->mpu_body_done || r->body_failed || r->body_verified ||
        r->upload_reg) {
        return;
    }
    uint32_t first = 0, count = 0;
    uint64_t plain = 0;
    s3s_result res = s_check_layout(r, &first, &count, &plain);
    if (s3s_is_ok(res)) {
        r->mpu_plain_known = true; /* for the catalog's entry (catalog.c) */
        r->mpu_plain_size = plain;
    }
    if (s3s_is_ok(res) && r->mpu_catalog) {
        /* parts3: the catalog's row first, then the body's last byte. */
        res = s3s_catalog_record(r, r->mpu_object_id, count, first, plain);
        if (s3s_is_ok(res)) {
            return;
        }
    }
    s3s_req_body_checked(r, res.code);
}

/* ------------------------------------------------ nonces of ranged reads */

/* FNV-1a over the request's bucket and key and the object's backend ETag. */
static uint64_t s_layout_hash(const struct s3s_req *r, const char *etag)
{
    uint64_t h = 1469598103934665603ull;
    struct s3s_cur parts[3] = {s3s_buf_cur(&r->bucket), s3s_buf_cur(&r->key),
                               s3s_cur_from_str(etag)};
    for (int i = 0; i < 3; i++) {
        for (size_t j = 0; j < parts[i].len; j++) {
            h = (h ^ parts[i].ptr[j]) * 1099511628211ull;
        }
        h = (h ^ 0xff) * 1099511628211ull; /* a separator no byte string has */
    }
    return h;
}

bool s3s_mpu_layout_cached(struct s3s_req *r, struct s3s_sse_dec *dec, uint32_t parts)
{
    if (!parts || !r->resp_etag[0] || strlen(r->resp_etag) >= sizeof(r->conn->w->layouts[0].etag)) {
        return false;
    }
    uint64_t h = s_layout_hash(r, r->resp_etag);
    const struct s3s_layout_entry *e = &r->conn->w->layouts[h % 256];
    /* Even a wrong entry could not make wrong bytes pass: every segment's
     * stored nonce is still checked against its position. */
    return e->hash == h && e->parts == parts && strcmp(e->etag, r->resp_etag) == 0 &&
           s3s_is_ok(s3s_sse_dec_set_layout(dec, e->first_part, e->k));
}

static void s_layout_remember(struct s3s_req *r, const uint8_t *stored_first,
                              const uint8_t *stored_last)
{
    uint32_t s = 0;
    uint64_t k = 0;
    struct s3s_layout_entry *e;
    uint8_t first[S3S_SSE_NONCE_LEN], last[S3S_SSE_NONCE_LEN];
    bool part_keys = s3s_sse_dec_part_keys(r->nonce_dec);
    s3s_sse_part_header_nonce(part_keys, stored_first, first);
    s3s_sse_part_header_nonce(part_keys, stored_last, last);
    if (!r->resp_etag[0] || strlen(r->resp_etag) >= sizeof(e->etag) ||
        s3s_failed(s3s_sse_parts_layout(first, last, r->resp_total, S3S_SSE_SEGMENT_SIZE,
                                        r->nonce_parts, &s, &k))) {
        return;
    }
    uint64_t h = s_layout_hash(r, r->resp_etag);
    e = &r->conn->w->layouts[h % 256];
    e->hash = h;
    memcpy(e->etag, r->resp_etag, strlen(r->resp_etag) + 1); /* shorter, checked above */
    e->first_part = s;
    e->parts = r->nonce_parts;
    e->k = k;
}

/* Reads the 12 stored bytes of a segment's nonce at `off`. */
static s3s_result s_nonce_get(struct s3s_req *r, uint64_t off)
{
    char range[64];
    snprintf(range, sizeof(range), "bytes=%llu-%llu", (unsigned long long)off,
             (unsigned long long)(off + S3S_SSE_NONCE_LEN - 1));
    s3s_buf_reset(&r->copy_plain);
    r->src_status = 0;
    return s3s_upstream_source_get(r, s3s_buf_cur(&r->nonce_path), s3s_buf_cur(&r->nonce_query),
                                   range);
}

static s3s_result s_nonces_prepare(struct s3s_req *r, struct s3s_sse_dec *dec,
                                   struct s3s_cur path, struct s3s_cur query, uint64_t cipher_len,
                                   uint32_t parts)
{
    /* Without the part count the run of part numbers cannot be checked:
     * a parts3 object's comes from the catalog first. */
    S3S_ENSURE(parts >= 1 || r->nonce_catalog, S3S_ERR_SSE_BAD_FORMAT);
    uint64_t full = (uint64_t)S3S_SSE_SEGMENT_SIZE + S3S_SSE_PART_OVERHEAD;
    uint64_t segments = (cipher_len + full - 1) / full;
    S3S_ENSURE(segments >= 1, S3S_ERR_SSE_BAD_FORMAT);
    s3s_buf_clean_up(&r->nonce_path);
    s3s_buf_clean_up(&r->nonce_query);
    S3S_GUARD(s3s_buf_init(&r->nonce_path, 0, 3 * 16384));
    S3S_GUARD(s3s_buf_init(&r->nonce_query, 0, 8192));
    S3S_GUARD(s3s_buf_append_cur(&r->nonce_path, path));
    S3S_GUARD(s3s_buf_append_cur(&r->nonce_query, query));
    if (!r->copy_plain.max) {
        S3S_GUARD(s3s_buf_init(&r->copy_plain, 0, 64u * 1024));
    }
    r->nonce_dec = dec;
    r->nonce_parts = parts;
    r->nonce_last_off = (segments - 1) * full;
    r->nonce_cipher_len = cipher_len;
    r->nonce_stage = 1;
    return s3s_ok();
}

s3s_result s3s_mpu_nonces_catalog(struct s3s_req *r, const uint8_t *dek)
{
    r->nonce_first_part = 0;
    S3S_GUARD(s3s_sse_object_id(dek, r->nonce_object_id));
    r->nonce_catalog = true;
    return s3s_ok();
}

/* The first step: the catalog's row of a parts3 object, else the first
 * stored nonce. */
static s3s_result s_nonces_begin(struct s3s_req *r)
{
    if (r->nonce_parts == 0) {
        return s3s_catalog_lookup(r, r->nonce_object_id);
    }
    return s_nonce_get(r, 0);
}

s3s_result s3s_mpu_nonces_start(struct s3s_req *r, struct s3s_sse_dec *dec, struct s3s_cur path,
                                struct s3s_cur query, uint64_t cipher_len, uint32_t parts)
{
    S3S_GUARD(s_nonces_prepare(r, dec, path, query, cipher_len, parts));
    return s_nonces_begin(r);
}

s3s_result s3s_mpu_nonces_defer(struct s3s_req *r, struct s3s_sse_dec *dec, struct s3s_cur path,
                                struct s3s_cur query, uint64_t cipher_len, uint32_t parts)
{
    S3S_GUARD(s_nonces_prepare(r, dec, path, query, cipher_len, parts));
    s3s_worker_defer(r);
    return s3s_ok();
}

/* A GET whose nonces could not be read or do not fit: nothing of its body
 * has left. While its head is still held (it leaves with the first body
 * bytes) the client gets 500 InternalError instead, and the transfer is
 * ended; once the head is out, the response is cut. */
static void s_nonces_failed(struct s3s_req *r, int32_t err)
{
    struct s3s_conn *c = r->conn;
    if (c->held.len) {
        c->held = (struct s3s_cur){0};
        r->resp_head_sent = false;
    }
    s3s_req_send_error(r, err, NULL);
}

void s3s_mpu_nonces_run(struct s3s_req *r)
{
    if (r->nonce_stage == 1 && !r->conn->closing && s3s_failed(s_nonces_begin(r))) {
        S3S_LOGE("sse", "req=%s cannot read the object's stored nonces", r->id);
        r->nonce_stage = 0;
        s_nonces_failed(r, S3S_ERR_SSE_TAG_MISMATCH);
    }
}

/* A partNumber read (no decoder yet): the stored nonces in the first
 * layout's form, by the probe's metadata. */
static void s_probe_nonce(struct s3s_req *r, const uint8_t *stored, uint8_t *out)
{
    struct s3s_cur v;
    bool part_keys = s3s_hdrlist_get(&r->resp_meta, S3S_SSE_META_PREFIX "layout", &v) &&
                     s3s_sse_layout_part_keys(v);
    s3s_sse_part_header_nonce(part_keys, stored, out);
}

static void s_nonces_end(struct s3s_req *r, s3s_result res);

/* A stored header in the first layout's nonce form, for the decoder's
 * layout, or a partNumber read's (by the probe's metadata). */
static void s_nonce_form(struct s3s_req *r, const uint8_t *stored, uint8_t *out)
{
    if (r->nonce_dec) {
        s3s_sse_part_header_nonce(s3s_sse_dec_part_keys(r->nonce_dec), stored, out);
    } else {
        s_probe_nonce(r, stored, out);
    }
}

/* After the last header: with more than two parts, the first part's final
 * header is read to check k. *reading: that read started. */
static s3s_result s_nonce_check_k_start(struct s3s_req *r, bool *reading)
{
    *reading = false;
    if (r->nonce_parts <= 2) {
        return s3s_ok();
    }
    uint8_t first[S3S_SSE_NONCE_LEN], last[S3S_SSE_NONCE_LEN];
    s_nonce_form(r, r->nonce_first, first);
    s_nonce_form(r, r->nonce_last, last);
    S3S_GUARD(s3s_sse_parts_layout(first, last, r->nonce_cipher_len, S3S_SSE_SEGMENT_SIZE,
                                   r->nonce_parts, &r->nonce_s, &r->nonce_k));
    uint64_t full = (uint64_t)S3S_SSE_SEGMENT_SIZE + S3S_SSE_PART_OVERHEAD;
    r->nonce_stage = 3;
    S3S_GUARD(s_nonce_get(r, (r->nonce_k - 1) * full));
    *reading = true;
    return s3s_ok();
}

void s3s_mpu_nonce_read(struct s3s_req *r, CURLcode rc)
{
    int status = r->src_status;
    s3s_upstream_abort_source(r);
    s3s_result res = rc == CURLE_OK && status == 206 && r->copy_plain.len == S3S_SSE_NONCE_LEN
                         ? s3s_ok()
                         : s3s_err(S3S_ERR_SSE_TAG_MISMATCH);
    if (s3s_is_ok(res) && r->nonce_stage == 1) {
        memcpy(r->nonce_first, r->copy_plain.ptr, S3S_SSE_NONCE_LEN);
        r->nonce_stage = 2;
        res = s_nonce_get(r, r->nonce_last_off);
        if (s3s_is_ok(res)) {
            return;
        }
    } else if (s3s_is_ok(res) && r->nonce_stage == 2) {
        memcpy(r->nonce_last, r->copy_plain.ptr, S3S_SSE_NONCE_LEN);
        bool reading = false;
        res = s_nonce_check_k_start(r, &reading);
        if (s3s_is_ok(res) && reading) {
            return;
        }
    } else if (s3s_is_ok(res) && r->nonce_stage == 3) {
        uint8_t mid[S3S_SSE_NONCE_LEN];
        s_nonce_form(r, r->copy_plain.ptr, mid);
        res = s3s_sse_parts_check_k(mid, r->nonce_s, r->nonce_k);
    }
    if (s3s_is_ok(res) && r->nonce_first_part) {
        /* parts3: the object starts with the part the catalog says. */
        if (s3s_sse_part_header_part(true, r->nonce_first) != r->nonce_first_part) {
            res = s3s_err(S3S_ERR_SSE_TAG_MISMATCH);
        }
    }
    if (s3s_is_ok(res) && !r->nonce_dec) {
        /* A partNumber read: the part becomes a range (sse_get.c). */
        r->nonce_stage = 0;
        uint8_t first[S3S_SSE_NONCE_LEN], last[S3S_SSE_NONCE_LEN];
        s_probe_nonce(r, r->nonce_first, first);
        s_probe_nonce(r, r->nonce_last, last);
        res = s3s_part_nonces_done(r, first, last);
        if (s3s_failed(res)) {
            s3s_req_send_error(r, res.code, NULL);
        }
        return;
    } else if (s3s_is_ok(res)) {
        /* The part numbers must run from the first to the last over the part
         * count: only then is the object its parts in order (sse/FORMAT.md). */
        res = s3s_sse_dec_set_end_nonces(r->nonce_dec, r->nonce_first, r->nonce_last);
        if (s3s_is_ok(res) && r->nonce_dec == r->dec) {
            s_layout_remember(r, r->nonce_first, r->nonce_last);
        }
    }
    r->nonce_stage = 0;
    if (s3s_failed(res)) {
        S3S_LOGE("sse", "req=%s the object's stored nonces do not fit its parts (status %d)", r->id,
                 status);
    }
    s_nonces_end(r, res);
}

/* The nonces are read and checked (or failed, res): the read that waited
 * for them goes on, or the request fails. */
static void s_nonces_end(struct s3s_req *r, s3s_result res)
{
    if (!r->nonce_dec) {
        /* A partNumber read whose nonces could not be read: nothing was sent. */
        s3s_req_send_error(r, res.code, NULL);
        return;
    }
    if (r->copy_dec && r->nonce_dec == r->copy_dec) {
        /* A copy's source: now its range. */
        if (s3s_is_ok(res)) {
            res = s3s_upstream_source_get(r, s3s_buf_cur(&r->nonce_path),
                                          s3s_buf_cur(&r->nonce_query), r->copy_range);
        }
        if (s3s_failed(res)) {
            r->body_failed = true;
            r->body_error = res.code;
            s3s_upstream_kick_send(r);
        }
        return;
    }
    if (s3s_failed(res)) {
        s_nonces_failed(r, res.code);
        return;
    }
    s3s_upstream_kick_recv(r);
}

void s3s_mpu_catalog_found(struct s3s_req *r, int32_t err, bool found,
                           const struct s3s_keystore_object *o)
{
    s3s_result res = s3s_ok();
    uint32_t parts = o->parts;
    uint64_t plain = 0;
    if (err != S3S_OK) {
        res = s3s_err(err);
    } else if (!found) {
        /* Completed elsewhere than through s3seal, or its row is lost:
         * nothing says how many parts it had. Fail closed. */
        S3S_LOGE("sse", "req=%s the object is not in the catalog: its part count is unknown",
                 r->id);
        res = s3s_err(S3S_ERR_SSE_TAG_MISMATCH);
    } else if (s3s_failed(s3s_sse_plain_size_x(r->nonce_cipher_len, S3S_SSE_SEGMENT_SIZE,
                                               S3S_SSE_PART_OVERHEAD, &plain)) ||
               plain != o->size) {
        /* Whole parts dropped (or added) on the backend: with its size
         * pinned, the count pins every part's place. */
        S3S_LOGE("sse", "req=%s the object is not the size it was completed with", r->id);
        res = s3s_err(S3S_ERR_SSE_TAG_MISMATCH);
    }
    if (s3s_is_ok(res)) {
        r->nonce_parts = parts;
        r->nonce_first_part = o->first_part;
        if (r->nonce_dec) {
            res = s3s_sse_dec_set_parts(r->nonce_dec, parts);
        } else {
            r->part_count = parts; /* a partNumber read's */
        }
    }
    if (s3s_is_ok(res) && r->nonce_dec && r->nonce_dec == r->dec &&
        s3s_mpu_layout_cached(r, r->dec, parts)) {
        /* This worker read the same object's nonces lately. */
        r->nonce_stage = 0;
        s3s_upstream_kick_recv(r);
        return;
    }
    if (s3s_is_ok(res)) {
        res = s_nonce_get(r, 0);
    }
    if (s3s_failed(res)) {
        r->nonce_stage = 0;
        s_nonces_end(r, res);
    }
}
