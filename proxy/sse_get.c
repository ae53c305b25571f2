/*
 * sse_get.c - SSE-S3 on the way out: GetObject and HeadObject of encrypted
 * objects report and return plaintext; Range GETs fetch only the segments
 * they need.
 *
 * Whether an object is encrypted is known only from the backend's answer.
 * So a client's Range is widened before it is sent, to a byte range that
 * serves both cases: it starts at the plaintext offset of the first needed
 * segment (never after the wanted byte, and never after that segment's
 * ciphertext) and ends at the end of the last needed segment's ciphertext.
 * When the answer shows an encrypted object, the extra bytes before the first
 * segment are dropped and the segments decrypted; for a plain object the
 * widened range is trimmed back to what was asked.
 */
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "proxy/proxy.h"

/* ListObjects (V1, V2) and ListObjectVersions of a bucket whose objects
 * s3seal encrypts by default: their sizes are rewritten. */
static bool s_is_listing_to_rewrite(const struct s3s_req *r)
{
    if (r->op != S3S_OP_LIST_OBJECTS || r->conn->w->upload_reg) {
        /* A bucket sub-resource (?acl, ?uploads...), not a listing; or a
         * listing rewritten from the catalog (catalog.c). */
        return false;
    }
    struct s3s_bucket_defaults d;
    s3s_bucket_default(r->conn->w, s3s_buf_cur(&r->bucket), &d);
    return d.mode != S3S_SSE_NONE || d.require;
}

/* The Range sent to the backend for the client's (sse/range.h). */
static void s_widen(struct s3s_req *r)
{
    s3s_sse_range_widen(&r->range, S3S_SSE_SEGMENT_SIZE, r->up_range, sizeof(r->up_range));
}

/* partNumber=N (1..10000) of GetObject/HeadObject. */
static s3s_result s_part_number(struct s3s_req *r)
{
    struct s3s_cur num, v;
    uint64_t n = 0;
    if (!s3s_s3_query_value(r->query, "partNumber", &num)) {
        return s3s_ok();
    }
    S3S_ENSURE(s3s_is_ok(s3s_parse_u64(num, 10000, &n)) && n >= 1, S3S_ERR_INVALID_ARG);
    /* S3: a part and a range cannot both be asked for. */
    S3S_ENSURE(!s3s_req_header(r, "range", &v), S3S_ERR_INVALID_ARG);
    r->part_number = (uint32_t)n;
    return s3s_ok();
}

s3s_result s3s_sse_get_setup(struct s3s_req *r)
{
    struct s3s_cur v;
    if (s_is_listing_to_rewrite(r)) {
        r->rewrite_kind = S3S_REWRITE_LISTING;
        return s3s_buf_init(&r->listing, 0, 64u * 1024 * 1024);
    }
    /* GetObject only: not ListParts, object ACLs, tagging... */
    static const char *const sub[] = {"acl", "tagging", "uploadId", "attributes", "retention",
                                      "legal-hold", "torrent", NULL};
    bool get = s3s_cur_eq_str(r->method, "GET");
    if ((!get && !s3s_cur_eq_str(r->method, "HEAD")) || r->key.len == 0) {
        return s3s_ok();
    }
    for (size_t i = 0; sub[i]; i++) {
        if (s3s_s3_query_has(r->query, sub[i])) {
            return s3s_ok();
        }
    }
    /* ETag conditions are evaluated here, against the ETag the client
     * sees (s3s_sse_get_head). */
    r->etag_ours = true;
    bool if_match = s3s_req_header(r, "if-match", &r->if_match);
    bool if_none_match = s3s_req_header(r, "if-none-match", &r->if_none_match);
    r->etag_conditions = if_match || if_none_match;
    S3S_GUARD(s_part_number(r));
    if (!s3s_req_header(r, "range", &v)) {
        return s3s_ok();
    }
    if (!s3s_sse_range_parse(v, &r->range)) {
        r->range_drop = true;
        return s3s_ok();
    }
    r->range_mapped = true;
    if (s3s_req_header(r, "if-range", &r->if_range)) {
        /* Whether the range applies is known only from the answer. */
        r->etag_conditions = true;
        r->range_whole = true;
        r->range_drop = true;
        return s3s_ok();
    }
    s_widen(r);
    return s3s_ok();
}

/* The plaintext range [a, b] the client gets from an object of `total` bytes;
 * false when it is not satisfiable (416). */
static bool s_client_range(const struct s3s_req *r, uint64_t total, uint64_t *a, uint64_t *b)
{
    return s3s_sse_range_resolve(&r->range, total, a, b);
}

/* First byte and total size of what the backend sent. */
static s3s_result s_fetched(struct s3s_req *r)
{
    if (r->up_status == 206 && r->resp_has_range) {
        /* "bytes FIRST-LAST/TOTAL" */
        unsigned long long first = 0, last = 0, total = 0;
        S3S_ENSURE(sscanf(r->resp_content_range, "bytes %llu-%llu/%llu", &first, &last, &total) ==
                       3,
                   S3S_ERR_BAD_GATEWAY);
        r->resp_fetch_first = first;
        r->resp_total = total;
    } else {
        r->resp_fetch_first = 0;
        r->resp_total = r->resp_length;
    }
    r->resp_total_known = true;
    return s3s_ok();
}

s3s_result s3s_sse_open_dek(struct s3s_req *r, const struct s3s_sse_meta *meta,
                            struct s3s_secret *dek)
{
    return s3s_sse_open_dek_for(r, meta, s3s_buf_cur(&r->bucket), s3s_buf_cur(&r->key), dek);
}

s3s_result s3s_sse_open_dek_for(struct s3s_req *r, const struct s3s_sse_meta *meta,
                                struct s3s_cur bucket, struct s3s_cur key,
                                struct s3s_secret *dek)
{
    if (meta->kind == S3S_SSE_KIND_KMS) {
        /* Through the KMS key: state, policy and audit (sse_kms.c). */
        return s3s_sse_kms_open_dek(r, meta, bucket, key, dek);
    }
    const struct s3s_keyring *kr = &r->conn->w->keyring;
    S3S_ENSURE(r->conn->w->has_keyring, S3S_ERR_KEYSTORE);
    S3S_ENSURE(meta->kind == S3S_SSE_KIND_S3, S3S_ERR_SSE_BAD_FORMAT);
    const uint8_t *root = NULL;
    S3S_GUARD(s3s_keyring_get(kr, meta->root_version, &root));
    struct s3s_buf aad;
    S3S_GUARD(s3s_buf_init(&aad, 0, 16384));
    s3s_result res = s3s_sse_dek_aad(meta, bucket, key, &aad);
    if (s3s_is_ok(res)) {
        res = s3s_keystore_open_sealed(root, s3s_buf_cur(&aad), s3s_buf_cur(&meta->wrapped_dek),
                                       dek);
    }
    s3s_buf_clean_up(&aad);
    S3S_GUARD(res);
    if (dek->len != S3S_SSE_KEY_LEN) {
        s3s_secret_destroy(dek);
        S3S_BAIL(S3S_ERR_KEY_UNWRAP);
    }
    return s3s_ok();
}

/* The object's own path and version, for the probe and its nonce reads.
 * path and query are initialised here; the caller cleans them up. */
static s3s_result s_object_target(struct s3s_req *r, struct s3s_buf *path, struct s3s_buf *query)
{
    *path = (struct s3s_buf){0};
    *query = (struct s3s_buf){0};
    struct s3s_buf raw;
    S3S_GUARD(s3s_buf_init(&raw, 0, 4096));
    s3s_result res = s3s_buf_init(path, 0, 3 * 16384);
    if (s3s_is_ok(res)) {
        res = s3s_buf_init(query, 0, 8192);
    }
    if (s3s_is_ok(res)) {
        res = s3s_upstream_object_path(r, path);
    }
    struct s3s_cur version;
    if (s3s_is_ok(res) && s3s_s3_query_value(r->query, "versionId", &version)) {
        res = s3s_buf_append_str(&raw, "versionId=");
        if (s3s_is_ok(res)) {
            res = s3s_buf_append_cur(&raw, version);
        }
    }
    if (s3s_is_ok(res)) {
        res = s3s_sigv4_canonical_query(s3s_buf_cur(&raw), false, query);
    }
    s3s_buf_clean_up(&raw);
    return res;
}

/* A range of a multipart object that starts after its first segment: the
 * object's first and last nonces are read before any of its body goes out
 * (sse_mpu.c). */
static s3s_result s_read_nonces(struct s3s_req *r, uint32_t parts)
{
    struct s3s_buf path, query;
    s3s_result res = s_object_target(r, &path, &query);
    if (s3s_is_ok(res)) {
        /* Inside libcurl's header callback: the read starts right after. */
        res = s3s_mpu_nonces_defer(r, r->dec, s3s_buf_cur(&path), s3s_buf_cur(&query),
                                   r->resp_total, parts);
    }
    s3s_buf_clean_up(&path);
    s3s_buf_clean_up(&query);
    return res;
}

/* Encrypted object: plaintext sizes, the decryptor positioned on the first
 * needed segment. */
static s3s_result s_head_encrypted(struct s3s_req *r)
{
    s3s_result res = s3s_ok();
    struct s3s_sse_meta meta;
    struct s3s_secret dek = {0};
    struct s3s_buf seg_aad = {0};
    s3s_sse_meta_init(&meta);
    uint64_t plain = 0, a = 0, b = 0;
    if (s3s_failed(res = s3s_sse_meta_decode(s3s_hdrlist_get, &r->resp_meta, &meta)) ||
        s3s_failed(res = s3s_sse_plain_size_x(r->resp_total, meta.segment_size,
                                              s3s_sse_overhead(meta.multipart), &plain))) {
        goto out;
    }
    r->resp_encrypted = true;
    if (s3s_failed(res = s3s_sse_answer_from_meta(r, &meta))) {
        goto out;
    }
    struct s3s_cur ssec;
    if (s3s_req_header(r, "x-amz-server-side-encryption-customer-algorithm", &ssec)) {
        /* SSE-C keys for an object encrypted with s3seal's keys: refused
         * as S3 refuses them for SSE-S3 and SSE-KMS objects. */
        res = s3s_err(S3S_ERR_SSE_C_NOT_APPLICABLE);
        goto out;
    }
    bool head = s3s_cur_eq_str(r->method, "HEAD");
    if (r->up_status != 200 && r->up_status != 206) {
        goto out;
    }
    if (head) {
        /* No body to decrypt: report the plaintext size, or the range's. */
        r->resp_length = plain;
        r->resp_content_range[0] = '\0';
        if (r->range.kind != S3S_RANGE_NONE) {
            if (!s_client_range(r, plain, &a, &b)) {
                snprintf(r->resp_content_range, sizeof(r->resp_content_range), "bytes */%llu",
                         (unsigned long long)plain);
                res = s3s_err(S3S_ERR_INVALID_RANGE);
                goto out;
            }
            r->up_status = 206;
            r->resp_length = b - a + 1;
            snprintf(r->resp_content_range, sizeof(r->resp_content_range), "bytes %llu-%llu/%llu",
                     (unsigned long long)a, (unsigned long long)b, (unsigned long long)plain);
        }
        goto out;
    }
    if (r->range.kind != S3S_RANGE_NONE) {
        /* The widened range assumed the default segment size. */
        if (meta.segment_size != S3S_SSE_SEGMENT_SIZE) {
            S3S_LOGE("sse", "req=%s ranged GET of an object with %u-byte segments", r->id,
                     meta.segment_size);
            res = s3s_err(S3S_ERR_SSE_NOT_AVAILABLE);
            goto out;
        }
        if (!s_client_range(r, plain, &a, &b)) {
            snprintf(r->resp_content_range, sizeof(r->resp_content_range), "bytes */%llu",
                     (unsigned long long)plain);
            res = s3s_err(S3S_ERR_INVALID_RANGE);
            goto out;
        }
        r->up_status = 206;
        snprintf(r->resp_content_range, sizeof(r->resp_content_range), "bytes %llu-%llu/%llu",
                 (unsigned long long)a, (unsigned long long)b, (unsigned long long)plain);
    } else {
        if (r->up_status != 200) {
            /* A backend that serves partNumber GETs sent one part of the
             * ciphertext: not mapped to the plaintext's parts yet (Ceph RGW
             * ignores partNumber and sends the whole object). */
            res = s3s_err(s3s_s3_query_has(r->query, "partNumber") ? S3S_ERR_SSE_NOT_AVAILABLE
                                                                   : S3S_ERR_SSE_BAD_FORMAT);
            goto out;
        }
        a = 0;
        b = plain ? plain - 1 : 0;
        r->resp_content_range[0] = '\0';
    }
    uint64_t want = plain ? b - a + 1 : 0;
    uint64_t s0 = a / meta.segment_size;
    uint64_t seg_start = s0 * ((uint64_t)meta.segment_size + s3s_sse_overhead(meta.multipart));
    if (seg_start < r->resp_fetch_first) {
        res = s3s_err(S3S_ERR_SSE_BAD_FORMAT);
        goto out;
    }
    r->out_discard = seg_start - r->resp_fetch_first;
    if (s3s_failed(res = s3s_sse_open_dek(r, &meta, &dek)) ||
        s3s_failed(res = s3s_buf_init(&seg_aad, 0, 128)) ||
        s3s_failed(res = s3s_sse_segment_aad(&meta, &seg_aad)) ||
        s3s_failed(res = s3s_sse_dec_new(meta.aead, dek.ptr, s3s_buf_cur(&seg_aad),
                                         meta.segment_size, meta.multipart, r->resp_total,
                                         (uint32_t)s0,
                                         a - s0 * meta.segment_size, want, &r->dec)) ||
        (meta.part_keys && s3s_failed(res = s3s_sse_dec_use_part_keys(r->dec, dek.ptr)))) {
        goto out;
    }
    uint32_t parts = s3s_sse_meta_parts(&meta, s3s_cur_from_str(r->resp_etag));
    if (!parts && meta.catalog && r->known_first_part) {
        parts = r->part_count; /* the catalog's, looked up by the probe */
    }
    if (meta.multipart && parts && s3s_failed(res = s3s_sse_dec_set_parts(r->dec, parts))) {
        goto out;
    }
    if (!parts && meta.catalog && s3s_failed(res = s3s_mpu_nonces_catalog(r, dek.ptr))) {
        goto out;
    }
    if (s3s_sse_dec_needs_first_part(r->dec)) {
        if (r->known_first_part) {
            /* A part: its nonces were read with the probe, of this version. */
            res = strcmp(r->probe_etag, r->resp_etag) == 0
                      ? s3s_sse_dec_set_first_part(r->dec, r->known_first_part)
                      : s3s_err(S3S_ERR_PRECONDITION_FAILED);
        } else if (!s3s_mpu_layout_cached(r, r->dec, parts)) {
            res = s_read_nonces(r, parts);
        }
        if (s3s_failed(res)) {
            goto out;
        }
    }
    r->resp_has_length = true;
    r->resp_length = want;
    r->out_want = want;
out:
    s3s_secret_destroy(&dek);
    s3s_buf_clean_up(&seg_aad);
    s3s_sse_meta_clean_up(&meta);
    return res;
}

static void s_hex(const uint8_t md5[16], char *out, size_t cap)
{
    static const char hex[] = "0123456789abcdef";
    char h[33];
    for (int i = 0; i < 16; i++) {
        h[2 * i] = hex[md5[i] >> 4];
        h[2 * i + 1] = hex[md5[i] & 15];
    }
    h[32] = '\0';
    snprintf(out, cap, "\"%s\"", h);
}

bool s3s_sse_client_etag(const struct s3s_req *r, char *out, size_t cap)
{
    struct s3s_cur v;
    uint8_t md5[16];
    if (r->enc && r->have_plain_md5) {
        s_hex(r->plain_md5_val, out, cap); /* PutObject */
        return true;
    }
    if (!r->enc && s3s_hdrlist_get((void *)&r->resp_meta, S3S_SSE_META_PREFIX "md5", &v) &&
        s3s_sse_meta_present(s3s_hdrlist_get, (void *)&r->resp_meta) &&
        s3s_hex_decode(v, md5, 16)) {
        s_hex(md5, out, cap); /* an encrypted object whose plaintext MD5 is stored */
        return true;
    }
    if (!r->enc && r->catalog_etag[0]) {
        snprintf(out, cap, "%s", r->catalog_etag); /* its catalog entry's (catalog.c) */
        return true;
    }
    if (!r->resp_etag[0]) {
        return false;
    }
    snprintf(out, cap, "%s", r->resp_etag);
    return true;
}

/* Does the entity-tag list of If-Match / If-None-Match name `etag`? "*"
 * names any; a weak tag (W/"...") matches only in the weak comparison. */
static bool s_etag_listed(struct s3s_cur list, const char *etag, bool weak)
{
    struct s3s_cur want = s3s_cur_from_str(etag), item;
    if (want.len >= 2 && want.ptr[0] == '"') {
        want = s3s_cur_from(want.ptr + 1, want.len - 2);
    }
    while (s3s_cur_next(&list, ',', &item)) {
        item = s3s_cur_trim(item);
        if (s3s_cur_eq_str(item, "*")) {
            return true;
        }
        if (s3s_cur_starts_with(item, "W/")) {
            if (!weak) {
                continue;
            }
            item = s3s_cur_from(item.ptr + 2, item.len - 2);
        }
        item = s3s_cur_unquote(item);
        if (s3s_cur_eq(item, want)) {
            return true;
        }
    }
    return false;
}

/* If-Range: an entity tag matches the ETag the client sees (strong
 * comparison); a date, the object's Last-Modified exactly. */
static bool s_if_range_holds(const struct s3s_req *r)
{
    struct s3s_cur v = r->if_range;
    if (v.len && (v.ptr[0] == '"' || s3s_cur_starts_with(v, "W/"))) {
        char etag[64];
        return !s3s_cur_starts_with(v, "W/") && s3s_sse_client_etag(r, etag, sizeof(etag)) &&
               s_etag_listed(v, etag, false);
    }
    return r->resp_last_modified[0] && s3s_cur_eq_str(v, r->resp_last_modified);
}

/* If-Match fails: 412. If-None-Match matches: 304 (the body is cut). */
static s3s_result s_etag_conditions(struct s3s_req *r, bool *not_modified)
{
    char etag[64];
    bool have = s3s_sse_client_etag(r, etag, sizeof(etag));
    *not_modified = false;
    S3S_ENSURE(!r->if_match.len || (have && s_etag_listed(r->if_match, etag, false)),
               S3S_ERR_PRECONDITION_FAILED);
    if (r->if_none_match.len && have && s_etag_listed(r->if_none_match, etag, true)) {
        *not_modified = true;
        r->up_status = 304;
        r->resp_has_length = false;
        r->resp_content_range[0] = '\0';
        r->resp_cut = s3s_cur_eq_str(r->method, "GET");
    }
    return s3s_ok();
}

s3s_result s3s_sse_get_head(struct s3s_req *r)
{
    bool object_read = (s3s_cur_eq_str(r->method, "GET") || s3s_cur_eq_str(r->method, "HEAD")) &&
                       r->key.len;
    if (!object_read) {
        return s3s_ok();
    }
    if (r->etag_conditions && (r->up_status == 200 || r->up_status == 206)) {
        bool not_modified = false;
        S3S_GUARD(s_etag_conditions(r, &not_modified));
        if (not_modified) {
            return s3s_ok();
        }
    }
    if (r->range_whole && r->up_status == 200 && !s_if_range_holds(r)) {
        /* If-Range failed: the whole object, as S3 answers. */
        r->range.kind = S3S_RANGE_NONE;
        r->range_mapped = false;
    }
    if (r->up_status == 416 && r->range_mapped) {
        /* The widened range ran past the end: so did the client's. The size
         * in the backend's Content-Range may be the ciphertext's. */
        r->resp_content_range[0] = '\0';
        return s3s_ok();
    }
    bool encrypted = s3s_sse_meta_present(s3s_hdrlist_get, &r->resp_meta);
    if ((r->up_status == 200 || r->up_status == 206) && (encrypted || r->range_mapped)) {
        S3S_GUARD(s_fetched(r));
    }
    if (encrypted) {
        return s_head_encrypted(r);
    }
    if (!r->range_mapped || (r->up_status != 206 && !(r->range_whole && r->up_status == 200))) {
        return s3s_ok();
    }
    /* A plain object behind a widened range (or fetched whole for If-Range):
     * trim to the client's range. */
    uint64_t a = 0, b = 0;
    if (!s_client_range(r, r->resp_total, &a, &b)) {
        snprintf(r->resp_content_range, sizeof(r->resp_content_range), "bytes */%llu",
                 (unsigned long long)r->resp_total);
        S3S_BAIL(S3S_ERR_INVALID_RANGE);
    }
    S3S_ENSURE(a >= r->resp_fetch_first, S3S_ERR_BAD_GATEWAY);
    r->up_status = 206;
    r->resp_trim = true;
    r->out_discard = a - r->resp_fetch_first;
    r->out_want = b - a + 1;
    r->resp_length = r->out_want;
    snprintf(r->resp_content_range, sizeof(r->resp_content_range), "bytes %llu-%llu/%llu",
             (unsigned long long)a, (unsigned long long)b, (unsigned long long)r->resp_total);
    return s3s_ok();
}

s3s_result s3s_sse_get_body(struct s3s_req *r, struct s3s_cur in, struct s3s_buf *out)
{
    if (r->out_discard) {
        uint64_t d = r->out_discard < in.len ? r->out_discard : in.len;
        in.ptr += d;
        in.len -= (size_t)d;
        r->out_discard -= d;
    }
    if (in.len == 0) {
        return s3s_ok();
    }
    if (r->dec) {
        return s3s_sse_dec_push(r->dec, in, out);
    }
    /* Plain trim: what lies past the wanted range is dropped. */
    size_t n = in.len < r->out_want ? in.len : (size_t)r->out_want;
    r->out_want -= n;
    return s3s_buf_append(out, in.ptr, n);
}

s3s_result s3s_sse_get_finish(struct s3s_req *r)
{
    if (s3s_cur_eq_str(r->method, "HEAD")) {
        return s3s_ok(); /* no body came, none was due */
    }
    if (r->dec) {
        return s3s_sse_dec_finish(r->dec);
    }
    if (r->resp_trim) {
        S3S_ENSURE(r->out_want == 0, S3S_ERR_INCOMPLETE_BODY);
    }
    return s3s_ok();
}

/* ------------------------------------------------------------ partNumber */

s3s_result s3s_part_probe_start(struct s3s_req *r, bool *started)
{
    *started = false;
    if (!r->part_number) {
        return s3s_ok();
    }
    struct s3s_buf path, query;
    s3s_result res = s_object_target(r, &path, &query);
    if (s3s_is_ok(res)) {
        res = s3s_buf_init(&r->probe_headers, 0, 16384);
    }
    struct s3s_sigv4_header hv[4];
    if (s3s_is_ok(res)) {
        r->probe_stage = 1;
        res = s3s_upstream_head(r, s3s_buf_cur(&path), s3s_buf_cur(&query), hv, 0);
    }
    s3s_buf_clean_up(&path);
    s3s_buf_clean_up(&query);
    S3S_GUARD(res);
    *started = true;
    return s3s_ok();
}

/* The part asked for as a range of the plaintext, sent as a ranged GET. */
static s3s_result s_part_range(struct s3s_req *r, uint64_t a, uint64_t b)
{
    r->part_mapped = true;
    r->range.kind = S3S_RANGE_FROM_TO;
    r->range.a = a;
    r->range.b = b;
    r->range_mapped = true;
    s_widen(r);
    s3s_buf_reset(&r->resp_meta);
    r->up_status = 0;
    r->resp_etag[0] = '\0';
    return s3s_upstream_start(r);
}

s3s_result s3s_part_probe_done(struct s3s_req *r)
{
    r->probe_stage = 2;
    s3s_upstream_abort(r);
    snprintf(r->probe_etag, sizeof(r->probe_etag), "%s", r->resp_etag);
    if (r->probe_status != 200 || !s3s_sse_meta_present(s3s_hdrlist_get, &r->resp_meta)) {
        /* Plain objects and errors: the backend answers partNumber itself. */
        s3s_buf_reset(&r->resp_meta);
        r->up_status = 0;
        return s3s_upstream_start(r);
    }
    struct s3s_sse_meta meta;
    s3s_sse_meta_init(&meta);
    uint64_t plain = 0;
    s3s_result res = s3s_sse_meta_decode(s3s_hdrlist_get, &r->resp_meta, &meta);
    if (s3s_is_ok(res)) {
        res = s3s_sse_plain_size_x(r->probe_length, meta.segment_size,
                                   s3s_sse_overhead(meta.multipart), &plain);
    }
    uint32_t parts = s3s_sse_meta_parts(&meta, s3s_cur_from_str(r->probe_etag));
    bool multipart = meta.multipart;
    if (s3s_is_ok(res) && !parts && meta.catalog) {
        /* parts3: the part count is the catalog's, by the data key's id. */
        struct s3s_secret dek = {0};
        res = s3s_sse_open_dek(r, &meta, &dek);
        if (s3s_is_ok(res)) {
            res = s3s_mpu_nonces_catalog(r, dek.ptr);
        }
        s3s_secret_destroy(&dek);
    }
    s3s_sse_meta_clean_up(&meta);
    S3S_GUARD(res);
    if (!multipart) {
        /* One part: the whole object. */
        S3S_ENSURE(r->part_number == 1, S3S_ERR_INVALID_PART_NUMBER);
        return s_part_range(r, 0, plain ? plain - 1 : 0);
    }
    /* Where its parts start and how long they are: from its first and last
     * stored nonces (sse_mpu.c continues in s3s_part_nonces_done). */
    struct s3s_buf path, query;
    res = s_object_target(r, &path, &query);
    if (s3s_is_ok(res)) {
        r->part_count = parts;
        res = s3s_mpu_nonces_start(r, NULL, s3s_buf_cur(&path), s3s_buf_cur(&query),
                                   r->probe_length, parts);
    }
    s3s_buf_clean_up(&path);
    s3s_buf_clean_up(&query);
    return res;
}

s3s_result s3s_part_nonces_done(struct s3s_req *r, const uint8_t *first, const uint8_t *last)
{
    uint32_t s = 0;
    uint64_t k = 0, plain = 0;
    S3S_GUARD(s3s_sse_parts_layout(first, last, r->probe_length, S3S_SSE_SEGMENT_SIZE,
                                   r->part_count, &s, &k));
    S3S_GUARD(s3s_sse_plain_size_x(r->probe_length, S3S_SSE_SEGMENT_SIZE, S3S_SSE_PART_OVERHEAD,
                                   &plain));
    S3S_ENSURE(r->part_number >= s && r->part_number - s < r->part_count,
               S3S_ERR_INVALID_PART_NUMBER);
    uint64_t j = r->part_number - s, size = k * S3S_SSE_SEGMENT_SIZE;
    uint64_t a = j * size, b = j + 1 == r->part_count ? plain - 1 : (j + 1) * size - 1;
    S3S_ENSURE(a <= b && b < plain, S3S_ERR_SSE_BAD_FORMAT);
    r->known_first_part = s;
    return s_part_range(r, a, b);
}

/* ------------------------------------------------------------- the stage */

static s3s_result s_stage_head(struct s3s_req *r, bool *wait)
{
    (void)wait;
    return s3s_sse_get_setup(r);
}

/* The part probe answered: the part's read starts. */
static s3s_result s_stage_answer(struct s3s_req *r, bool *taken)
{
    if (r->probe_stage != 1 || !r->part_number) {
        return s3s_ok();
    }
    *taken = true;
    S3S_ENSURE(r->upstream_result == CURLE_OK, S3S_ERR_BAD_GATEWAY);
    return s3s_part_probe_done(r);
}

/* A GET or HEAD with partNumber probes the object first. */
const struct s3s_stage s3s_stage_sse_get = {
    .name = "sse_get",
    .on_head = s_stage_head,
    .on_start = s3s_part_probe_start,
    .on_answer = s_stage_answer,
};
