/*
 * sse_mpu.c - SSE-S3 for multipart uploads without per-upload state in the
 * proxy. CreateMultipartUpload makes the object's data key and stores its
 * metadata with the upload (it becomes the object's); the UploadId s3seal
 * returns is the backend's with the wrapped key appended:
 *
 *     <backend upload id>~s3seal~<root key version>~<aead>~<wrapped key, hex>
 *
 * so any s3seal instance that shares the keystore can encrypt any part:
 * UploadPart unwraps the key (bound to the bucket and object key) and seals
 * the part under its part number (sse/FORMAT.md, the multipart layout).
 * Every other request naming the upload reaches the backend with the
 * backend's own id.
 */
#include <string.h>

#include "common/log.h"
#include "proxy/proxy.h"

#define S_MARK "~s3seal~"

s3s_result s3s_mpu_suffix(const struct s3s_sse_meta *m, struct s3s_buf *out)
{
    S3S_ENSURE(m->kind == S3S_SSE_KIND_S3, S3S_ERR_INTERNAL);
    S3S_GUARD(s3s_buf_appendf(out, S_MARK "%u~%d~", m->root_version, (int)m->aead));
    return s3s_buf_append_hex(out, m->wrapped_dek.ptr, m->wrapped_dek.len);
}

/* The last '~'-separated field of *id, removed from it. */
static bool s_pop_field(struct s3s_cur *id, struct s3s_cur *field)
{
    for (size_t i = id->len; i > 0; i--) {
        if (id->ptr[i - 1] == '~') {
            *field = s3s_cur_from(id->ptr + i, id->len - i);
            id->len = i - 1;
            return true;
        }
    }
    return false;
}

/* Splits a client's upload id; *ours is false for a backend id as it is
 * (an upload s3seal does not encrypt). */
static s3s_result s_parse_id(struct s3s_cur id, struct s3s_cur *backend, struct s3s_sse_meta *m,
                             bool *ours)
{
    struct s3s_cur rest = id, hex, aead, version, mark;
    *ours = false;
    *backend = id;
    if (!s_pop_field(&rest, &hex) || !s_pop_field(&rest, &aead) ||
        !s_pop_field(&rest, &version) || !s_pop_field(&rest, &mark) ||
        !s3s_cur_eq_str(mark, "s3seal")) {
        return s3s_ok();
    }
    uint64_t v = 0, a = 0;
    S3S_ENSURE(rest.len > 0 && s3s_is_ok(s3s_parse_u64(version, UINT32_MAX, &v)) && v > 0 &&
                   s3s_is_ok(s3s_parse_u64(aead, 2, &a)) && a >= 1 && hex.len % 2 == 0 &&
                   hex.len >= 64 && hex.len <= 256,
               S3S_ERR_NO_SUCH_UPLOAD);
    S3S_GUARD(s3s_buf_reserve(&m->wrapped_dek, hex.len / 2));
    S3S_ENSURE(s3s_hex_decode(hex, m->wrapped_dek.ptr, hex.len / 2), S3S_ERR_NO_SUCH_UPLOAD);
    m->wrapped_dek.len = hex.len / 2;
    m->kind = S3S_SSE_KIND_S3;
    m->root_version = (uint32_t)v;
    m->aead = (enum s3s_sse_aead)a;
    m->multipart = true;
    *backend = rest;
    *ours = true;
    return s3s_ok();
}

s3s_result s3s_mpu_parse_request(struct s3s_req *r, struct s3s_sse_meta *meta)
{
    struct s3s_cur q = r->query, item, raw = {0};
    bool found = false;
    while (s3s_cur_next(&q, '&', &item)) {
        if (s3s_cur_starts_with(item, "uploadId=")) {
            raw = s3s_cur_from(item.ptr + 9, item.len - 9);
            found = true;
        }
    }
    if (!found) {
        return s3s_ok();
    }
    struct s3s_buf id;
    S3S_GUARD(s3s_buf_init(&id, 0, 4096));
    struct s3s_cur backend;
    bool ours = false;
    s3s_result res = s3s_percent_decode(raw, true, false, &id);
    if (s3s_is_ok(res)) {
        res = s_parse_id(s3s_buf_cur(&id), &backend, meta, &ours);
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
