/*
 * upstream.c - the request to the backend: path-style URL, forwarded headers
 * minus hop-by-hop and client credentials, a fresh SigV4 signature with the
 * backend's own keys, and the libcurl transfer whose read and write callbacks
 * stream the body in both directions with backpressure.
 *
 * The final byte of an upload is held back until the whole client body has
 * been received and its signed SHA-256 and Content-MD5 verified; on mismatch
 * the transfer is aborted, so the backend never completes the object.
 */
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "proxy/proxy.h"
#include "proxy/stage.h"
#include "sse/upload_id.h"

/* Headers that describe a plaintext body: not sent with its ciphertext
 * (s3seal verifies them itself). */
static const char *const s_plaintext_headers[] = {
    "content-md5",           "x-amz-server-side-encryption", "x-amz-checksum-crc32",
    "x-amz-checksum-crc32c", "x-amz-checksum-crc64nvme",     "x-amz-checksum-sha1",
    "x-amz-checksum-sha256", "x-amz-sdk-checksum-algorithm", "x-amz-checksum-algorithm",
    "x-amz-checksum-type", NULL,
};

/* SSE-KMS request headers, which s3seal applies itself. */
static const char *const s_kms_headers[] = {
    "x-amz-server-side-encryption-aws-kms-key-id",
    "x-amz-server-side-encryption-context",
    "x-amz-server-side-encryption-bucket-key-enabled",
    NULL,
};

/* Client headers that s3seal replaces or drops on the way to the backend. */
static const char *const s_dropped_headers[] = {
    "host",
    "authorization",
    "x-amz-date",
    "x-amz-content-sha256",
    "x-amz-security-token",
    "expect",
    "content-length",
    /* aws-chunked framing is decoded here; the backend gets a plain body */
    "x-amz-decoded-content-length",
    "x-amz-trailer",
    /* CORS is answered by s3seal (stage.h): the backend's own rules, which
     * s3seal neither sets nor sees, must not add headers of their own. */
    "origin",
    "access-control-request-method",
    "access-control-request-headers",
    NULL,
};

/* Metadata s3seal keeps with objects; clients can neither set nor see it. */
#define S_META_PREFIX "x-amz-meta-s3seal-"
/* libcurl's receive and upload buffers (the most one callback carries). */
#define S_CURL_BUFFER (256 * 1024)
/* Upload bytes below which a send waits for more while the body streams. */
#define S_MIN_SEND (64 * 1024)
/* A response body buffer: what waits for S3S_OUT_FLUSH, one piece from
 * libcurl (at most its 256 KiB buffer) and the segments it may complete. */
#define S_OUT_CAP (S3S_OUT_FLUSH + 2 * S_CURL_BUFFER + 2 * (S3S_SSE_SEGMENT_SIZE + 64))
#define S_META_CHECKSUM S_META_PREFIX "checksum-"

static bool s_is_internal_meta(struct s3s_cur name)
{
    return s3s_cur_starts_with_ignore_case(name, S_META_PREFIX);
}

static bool s_in_list(struct s3s_cur name, const char *const *list, bool ignore_case)
{
    for (size_t i = 0; list[i]; i++) {
        if (ignore_case ? s3s_cur_eq_str_ignore_case(name, list[i]) : s3s_cur_eq_str(name, list[i])) {
            return true;
        }
    }
    return false;
}

/* Is `name` listed in the request's Connection header (hop-by-hop by
 * declaration, RFC 9110 7.6.1)? */
static bool s_named_in_connection(const struct s3s_req *r, struct s3s_cur name)
{
    for (size_t i = 0; i < r->n_headers; i++) {
        if (!s3s_cur_eq_str_ignore_case(r->headers[i].name, "connection")) {
            continue;
        }
        struct s3s_cur v = r->headers[i].value, tok;
        while (s3s_cur_next(&v, ',', &tok)) {
            if (s3s_cur_eq_ignore_case(s3s_cur_trim(tok), name)) {
                return true;
            }
        }
    }
    return false;
}

/* upload-id-marker=VALUE with s3seal's suffix (sse/upload_id.h) cut off. */
static s3s_result s_backend_marker(struct s3s_cur raw, struct s3s_buf *out)
{
    struct s3s_buf id;
    S3S_GUARD(s3s_buf_init(&id, 0, 4096));
    s3s_result res = s3s_percent_decode(raw, false, false, &id);
    struct s3s_cur v = s3s_buf_cur(&id);
    struct s3s_sse_upload_id u;
    if (s3s_is_ok(res) && s3s_is_ok(s3s_sse_upload_id_parse(v, &u)) && u.ours) {
        v = u.backend;
    }
    if (s3s_is_ok(res)) {
        res = s3s_buf_append_str(out, "upload-id-marker=");
    }
    if (s3s_is_ok(res)) {
        res = s3s_percent_encode(v, out);
    }
    s3s_buf_clean_up(&id);
    return res;
}

/* The raw query without the presigned-URL authentication parameters, and
 * with the backend's own id of an upload s3seal encrypts. */
static s3s_result s_filter_query(const struct s3s_req *r, struct s3s_buf *out)
{
    struct s3s_cur q = r->query, part;
    bool first = true;
    while (s3s_cur_next(&q, '&', &part)) {
        struct s3s_cur name = part;
        long eq = s3s_cur_find(part, '=');
        if (eq >= 0) {
            name.len = (size_t)eq;
        }
        if (part.len == 0 || s3s_s3_is_auth_param(name) ||
            (r->part_mapped && s3s_s3_param_name_is(name, "partNumber"))) {
            continue; /* a mapped partNumber is served as a Range (sse_get.c) */
        }
        if (!first) {
            S3S_GUARD(s3s_buf_append_byte(out, '&'));
        }
        first = false;
        if (s3s_s3_param_name_is(name, "upload-id-marker") && eq >= 0) {
            /* ListMultipartUploads paging from an id s3seal listed: the
             * backend knows only its own part of it. */
            S3S_GUARD(s_backend_marker(s3s_cur_from(part.ptr + eq + 1, part.len - (size_t)eq - 1),
                                       out));
            continue;
        }
        if (r->mpu_encrypted && s3s_s3_param_name_is(name, "uploadId")) {
            S3S_GUARD(s3s_buf_append_str(out, "uploadId="));
            S3S_GUARD(s3s_percent_encode(s3s_buf_cur(&r->mpu_backend_id), out));
            continue;
        }
        S3S_GUARD(s3s_buf_append_cur(out, part));
    }
    return s3s_ok();
}

/* Content-Encoding without its aws-chunked token: as sent when it has
 * none, else its other codings joined by ", ". */
static s3s_result s_strip_aws_chunked(struct s3s_cur v, struct s3s_buf *out)
{
    if (!s3s_cur_list_has(v, "aws-chunked")) {
        return s3s_buf_append_cur(out, v);
    }
    struct s3s_cur item;
    while (s3s_cur_next(&v, ',', &item)) {
        item = s3s_cur_trim(item);
        if (item.len == 0 || s3s_cur_eq_str_ignore_case(item, "aws-chunked")) {
            continue;
        }
        if (out->len) {
            S3S_GUARD(s3s_buf_append_str(out, ", "));
        }
        S3S_GUARD(s3s_buf_append_cur(out, item));
    }
    return s3s_ok();
}

/* ----------------------------------------------------------- curl callbacks */

static size_t s_read_cb(char *buf, size_t size, size_t nitems, void *ud)
{
    struct s3s_req *r = ud;
    size_t cap = size * nitems;
    if (r->body_failed || r->conn->closing) {
        return CURL_READFUNC_ABORT;
    }
    uint64_t avail = r->upload.len - r->upload_off;
    if (!(r->body_complete && r->body_verified)) {
        /* Hold back the final byte until the body is verified. */
        uint64_t left = r->up_length - r->body_sent_upstream;
        if (avail >= left) {
            avail = left ? left - 1 : 0;
        }
    }
    if (avail == 0 || (avail < S_MIN_SEND && !r->body_complete)) {
        /* Nothing, or a sliver (the tags past libcurl's last full buffer):
         * sent with what the client sends next, not in a send of its own. */
        r->send_paused = true;
        return CURL_READFUNC_PAUSE;
    }
    size_t n = avail < cap ? (size_t)avail : cap;
    memcpy(buf, r->upload.ptr + r->upload_off, n);
    r->upload_off += n;
    r->body_sent_upstream += n;
    if (r->upload_off == r->upload.len) {
        r->upload_off = 0;
        r->upload.len = 0;
    }
    s3s_req_upload_drained(r);
    return n;
}

static bool s_status_has_body(const struct s3s_req *r, int status)
{
    return !(s3s_cur_eq_str(r->method, "HEAD") || status == 204 || status == 304 ||
             (status >= 100 && status < 200));
}

/* The response head is complete: send it to the client. */
static s3s_result s_send_head(struct s3s_req *r)
{
    struct s3s_conn *c = r->conn;
    s3s_result res = s3s_sse_get_head(r);
    if (s3s_failed(res)) {
        /* Answered with an S3 error once the transfer is aborted. */
        r->deferred_error = res.code;
        return res;
    }
    r->resp_no_body = !s_status_has_body(r, r->up_status);
    if (r->resp_has_length) {
        S3S_GUARD(s3s_buf_appendf(&r->resp_head, "Content-Length: %llu\r\n",
                                  (unsigned long long)r->resp_length));
    }
    if (r->resp_content_range[0]) {
        S3S_GUARD(s3s_buf_appendf(&r->resp_head, "Content-Range: %s\r\n", r->resp_content_range));
    }
    if (r->part_count) {
        S3S_GUARD(s3s_buf_appendf(&r->resp_head, "x-amz-mp-parts-count: %u\r\n", r->part_count));
    }
    /* An error answer (a PUT the backend refused with 403, say) carries
     * nothing of the object: no ETag, no encryption headers. S3 sends both
     * with a 304. */
    bool object_answer = (r->up_status >= 200 && r->up_status < 300) || r->up_status == 304;
    if (r->etag_ours && object_answer) {
        char etag[64];
        if (s3s_sse_client_etag(r, etag, sizeof(etag))) {
            S3S_GUARD(s3s_buf_appendf(&r->resp_head, "ETag: %s\r\n", etag));
        }
    }
    /* PutObject, UploadPart, CreateMultipartUpload and Complete say so. */
    bool sse_write = r->enc || (r->mpu_encrypted && s3s_cur_eq_str(r->method, "POST"));
    if ((r->resp_encrypted && object_answer) ||
        (sse_write && r->up_status >= 200 && r->up_status < 300)) {
        S3S_GUARD(s3s_sse_response_headers(r, &r->resp_head));
    }
    if (!r->resp_no_body && !r->resp_has_length) {
        /* The backend streamed without a length (chunked or close-delimited):
         * re-frame as chunked for the client, or delimit by closing for an
         * HTTP/1.0 client, which knows no chunked encoding. */
        if (c->parser.http_major == 1 && c->parser.http_minor == 0) {
            c->close_after_response = true;
        } else {
            r->resp_chunked = true;
            S3S_GUARD(s3s_buf_append_str(&r->resp_head, "Transfer-Encoding: chunked\r\n"));
        }
    }
    bool ok = r->up_status >= 200 && r->up_status < 300;
    /* Only for the whole object: a range does not have the object's checksum. */
    if (r->checksum_mode && !r->resp_native_checksum && r->resp_checksum[0] &&
        r->up_status == 200) {
        S3S_GUARD(s3s_buf_appendf(&r->resp_head, "%s\r\n", r->resp_checksum));
    }
    /* As S3 does, a PUT answers with the checksum it verified. */
    if (r->checksum_verified && !r->resp_native_checksum && ok) {
        S3S_GUARD(s3s_buf_appendf(&r->resp_head, "%s: %s\r\n",
                                  s3s_checksum_header(r->checksum_alg), r->checksum_want));
    }
    if (c->close_after_response || c->w->draining) {
        c->close_after_response = true;
        S3S_GUARD(s3s_buf_append_str(&r->resp_head, "Connection: close\r\n"));
    }
    /* The stages' own headers (stage.h, on_response_head). */
    S3S_GUARD(s3s_stages_response_head(r, &r->resp_head));
    S3S_GUARD(s3s_buf_appendf(&r->resp_head, "x-amz-request-id: %s\r\n\r\n", r->id));
    char status[64];
    int sl = snprintf(status, sizeof(status), "HTTP/1.1 %d %s\r\n", r->up_status,
                      s3s_http_reason(r->up_status));
    S3S_ENSURE(sl > 0 && (size_t)sl < sizeof(status), S3S_ERR_INTERNAL);
    /* The status line goes in front of the headers: one buffer, one write. */
    S3S_GUARD(s3s_buf_reserve(&r->resp_head, (size_t)sl));
    memmove(r->resp_head.ptr + sl, r->resp_head.ptr, r->resp_head.len);
    memcpy(r->resp_head.ptr, status, (size_t)sl);
    r->resp_head.len += (size_t)sl;
    r->status = r->up_status;
    r->resp_head_sent = true;
    r->phase = S3S_PHASE_RESPOND;
    if (!r->resp_no_body && (r->resp_chunked || r->resp_length > 0 || r->dec)) {
        /* Sent with the first body bytes, which usually came in the same
         * read from the backend (s3s_req_upstream_finished flushes it if
         * none follow). An encrypted object's head waits even when no byte
         * is due (an empty object): its segment's tag is checked first. */
        s3s_conn_hold(c, s3s_buf_cur(&r->resp_head));
        return s3s_ok();
    }
    return s3s_conn_write(c, r->resp_head.ptr, r->resp_head.len);
}

s3s_result s3s_upstream_send_head(struct s3s_req *r) { return s_send_head(r); }

/* After a successful PutObject whose checksum came as a trailer: the object
 * must be copied onto itself to keep that checksum (not on versioned buckets,
 * where the copy would be a second version). */
static bool s_needs_checksum_copy(const struct s3s_req *r)
{
    return r->checksum_in_trailer && r->checksum_verified && r->up_status == 200 &&
           !r->resp_versioned && s3s_s3_is_put_object(r);
}

static bool s_is_internal_meta(struct s3s_cur name);

/* The copy probe's HEAD: its status, its object headers and s3seal's
 * metadata are kept; nothing goes to the client. */
static size_t s_probe_header(struct s3s_req *r, struct s3s_cur line)
{
    uint64_t st = 0;
    if (s3s_cur_starts_with(line, "HTTP/")) {
        if (line.len > 12 && s3s_is_ok(s3s_parse_u64(s3s_cur_from(line.ptr + 9, 3), 999, &st))) {
            r->probe_status = (int)st;
        }
        s3s_buf_reset(&r->probe_headers);
        s3s_buf_reset(&r->resp_meta);
        return line.len;
    }
    size_t n = line.len;
    while (line.len && (line.ptr[line.len - 1] == '\n' || line.ptr[line.len - 1] == '\r')) {
        line.len--;
    }
    struct s3s_cur name = line;
    if (!s3s_cur_split(&line, ':', &name)) {
        return n;
    }
    struct s3s_cur value = s3s_cur_trim(line);
    if (s3s_cur_eq_str_ignore_case(name, "content-length") &&
        s3s_failed(s3s_parse_u64(value, UINT64_MAX / 2, &r->probe_length))) {
        return 0;
    }
    if (s3s_cur_eq_str_ignore_case(name, "etag") && value.len < sizeof(r->resp_etag)) {
        memcpy(r->resp_etag, value.ptr, value.len); /* the source's */
        r->resp_etag[value.len] = '\0';
    }
    if (s3s_cur_eq_str_ignore_case(name, "x-amz-tagging-count")) {
        s3s_result_ignore(s3s_parse_u64(value, 1000, &r->probe_tag_count));
    }
    bool internal = s_is_internal_meta(name);
    if (!internal && !s3s_backend_is_object_header(name)) {
        return n;
    }
    struct s3s_buf *dst = internal ? &r->resp_meta : &r->probe_headers;
    return s3s_is_ok(s3s_hdrlist_add(dst, name, value)) ? n : 0;
}

/* The backend's head is in and every stage has replied: the client's head
 * is sent, or held for what comes after the body. */
static s3s_result s_head_done(struct s3s_req *r)
{
    if (s_needs_checksum_copy(r) || (r->rewrite_kind && r->up_status == 200)) {
        r->hold_head = true;
        return s3s_ok();
    }
    return s_send_head(r);
}

void s3s_req_reply_resume(struct s3s_req *r)
{
    r->reply_waiting = false;
    bool wait = false;
    s3s_result res = r->deferred_error ? s3s_err(r->deferred_error) : s3s_stages_reply(r, &wait);
    if (s3s_is_ok(res) && wait) {
        r->reply_waiting = true;
        return;
    }
    if (s3s_is_ok(res)) {
        res = s_head_done(r);
    }
    if (s3s_failed(res) && !r->deferred_error) {
        r->deferred_error = res.code;
    }
    if (r->reply_finished) {
        r->reply_finished = false;
        s3s_req_upstream_finished(r);
        return;
    }
    if (s3s_failed(res)) {
        /* Nothing of the answer has left: the client gets the error, and
         * the transfer is ended. */
        s3s_req_send_error(r, r->deferred_error, NULL);
        return;
    }
    s3s_upstream_kick_recv(r);
}

static size_t s_header_cb(char *p, size_t size, size_t nitems, void *ud)
{
    struct s3s_req *r = ud;
    size_t n = size * nitems;
    struct s3s_cur line = s3s_cur_from(p, n);
    if (r->conn->held.len && s3s_failed(s3s_conn_flush(r->conn))) {
        return 0; /* a trailer, say: resp_head must not change while held */
    }
    if (r->probe_stage == 1) {
        return s_probe_header(r, line);
    }
    if (r->copy_stage == 1) {
        /* The checksum copy's answer: only its status matters. */
        uint64_t st = 0;
        if (n > 12 && s3s_cur_starts_with(line, "HTTP/") &&
            s3s_is_ok(s3s_parse_u64(s3s_cur_from(p + 9, 3), 999, &st))) {
            r->copy_status = (int)st;
        }
        return n;
    }
    if (r->resp_head_sent || r->hold_head) {
        return n; /* trailers of a chunked response: not forwarded */
    }
    if (s3s_cur_starts_with(line, "HTTP/")) {
        /* A status line; an interim (1xx) response's head is discarded. */
        struct s3s_cur rest = line, ver;
        uint64_t status = 0;
        if (!s3s_cur_split(&rest, ' ', &ver) || rest.len < 3 ||
            s3s_failed(s3s_parse_u64(s3s_cur_from(rest.ptr, 3), 999, &status))) {
            return 0;
        }
        r->up_status = (int)status;
        r->reply_next = 0;
        r->resp_has_length = false;
        r->resp_has_range = false;
        r->resp_content_range[0] = '\0';
        s3s_buf_reset(&r->resp_head);
        s3s_buf_reset(&r->resp_meta);
        return n;
    }
    while (line.len && (line.ptr[line.len - 1] == '\n' || line.ptr[line.len - 1] == '\r')) {
        line.len--;
    }
    if (line.len == 0) {
        if (r->up_status >= 100 && r->up_status < 200) {
            return n;
        }
        bool wait = false;
        s3s_result sr = s3s_stages_reply(r, &wait);
        if (s3s_failed(sr)) {
            r->deferred_error = sr.code;
            return 0;
        }
        if (wait) {
            r->reply_waiting = true; /* s3s_req_reply_resume goes on */
            return n;
        }
        return s3s_is_ok(s_head_done(r)) ? n : 0;
    }
    struct s3s_cur name = line;
    if (!s3s_cur_split(&line, ':', &name)) {
        return n; /* not a header line; ignore */
    }
    struct s3s_cur value = s3s_cur_trim(line);
    if (s3s_s3_is_hop_by_hop(name) || s3s_cur_eq_str_ignore_case(name, "x-amz-request-id") ||
        s3s_cur_eq_str_ignore_case(name, "server") ||
        (r->stream_copy && s3s_cur_eq_str_ignore_case(name, "content-type"))) {
        return n;
    }
    if (s3s_cur_eq_str_ignore_case(name, "x-amz-version-id")) {
        r->resp_versioned = true;
    }
    if (s3s_cur_eq_str_ignore_case(name, "last-modified") &&
        value.len < sizeof(r->resp_last_modified)) {
        memcpy(r->resp_last_modified, value.ptr, value.len);
        r->resp_last_modified[value.len] = '\0';
    }
    if (s3s_cur_eq_str_ignore_case(name, "etag") && value.len < sizeof(r->resp_etag)) {
        memcpy(r->resp_etag, value.ptr, value.len);
        r->resp_etag[value.len] = '\0';
        if (r->etag_ours) {
            return n; /* written by s_send_head, perhaps replaced */
        }
    }
    if (s3s_cur_starts_with(name, "x-amz-checksum-") ||
        s3s_cur_starts_with(name, "X-Amz-Checksum-")) {
        r->resp_native_checksum = true;
    }
    if (s_is_internal_meta(name)) {
        /* Kept (lower-cased) for the decryptor; never shown to the client. */
        if (s3s_failed(s3s_hdrlist_add(&r->resp_meta, name, value))) {
            return 0;
        }
        size_t pl = sizeof(S_META_CHECKSUM) - 1;
        struct s3s_cur alg = s3s_cur_from(name.ptr + pl, name.len > pl ? name.len - pl : 0);
        if (name.len > pl && s3s_cur_eq_ignore_case(s3s_cur_from(name.ptr, pl),
                                                    s3s_cur_from(S_META_CHECKSUM, pl)) &&
            s3s_checksum_alg_parse(alg) != S3S_CHECKSUM_NONE) {
            snprintf(r->resp_checksum, sizeof(r->resp_checksum), "x-amz-checksum-%.*s: %.*s",
                     (int)alg.len, (const char *)alg.ptr, (int)(value.len > 100 ? 100 : value.len),
                     (const char *)value.ptr);
        }
        return n;
    }
    /* Length and range are written by s_send_head: they change when the
     * body is decrypted. */
    if (s3s_cur_eq_str_ignore_case(name, "content-length")) {
        uint64_t len = 0;
        if (s3s_failed(s3s_parse_u64(value, UINT64_MAX / 2, &len))) {
            return 0;
        }
        r->resp_has_length = true;
        r->resp_length = len;
        return n;
    }
    if (s3s_cur_eq_str_ignore_case(name, "content-range")) {
        if (value.len >= sizeof(r->resp_content_range)) {
            return 0;
        }
        memcpy(r->resp_content_range, value.ptr, value.len);
        r->resp_content_range[value.len] = '\0';
        r->resp_has_range = true;
        return n;
    }
    bool ok = s3s_is_ok(s3s_buf_append_cur(&r->resp_head, name)) &&
              s3s_is_ok(s3s_buf_append(&r->resp_head, ": ", 2)) &&
              s3s_is_ok(s3s_buf_append_cur(&r->resp_head, value)) &&
              s3s_is_ok(s3s_buf_append(&r->resp_head, "\r\n", 2));
    return ok ? n : 0;
}

static size_t s_write_cb(char *p, size_t size, size_t nitems, void *ud)
{
    struct s3s_req *r = ud;
    struct s3s_conn *c = r->conn;
    size_t n = size * nitems;
    if (r->probe_stage == 1) {
        return n;
    }
    if (r->reply_waiting) {
        r->recv_paused = true; /* until s3s_req_reply_resume */
        return CURL_WRITEFUNC_PAUSE;
    }
    if (r->hold_head && !r->resp_head_sent && r->rewrite_kind) {
        return s3s_is_ok(s3s_buf_append(&r->listing, p, n)) ? n : 0;
    }
    if (r->copy_stage == 1 || (r->hold_head && !r->resp_head_sent)) {
        return n; /* the copy's result document; a PUT's (empty) body */
    }
    if (c->closing || !r->resp_head_sent) {
        return 0;
    }
    if (r->resp_cut) {
        return 0; /* ends the transfer (see s3s_req_upstream_finished) */
    }
    if (r->resp_no_body || n == 0) {
        return n;
    }
    if (c->write_queued >= S3S_HIGH_WATER || r->nonce_stage) {
        /* The client is slow, or the object's nonces are being read. */
        r->recv_paused = true;
        return CURL_WRITEFUNC_PAUSE;
    }
    /* The body is gathered in one buffer per request and written when it
     * holds S3S_OUT_FLUSH bytes, or once the transfers' events are handled
     * (s3s_worker_flush_out): libcurl hands it over 64 KiB at a time, and a
     * write per piece costs the client's wake-up each time. A piece being
     * decrypted can also complete a segment begun earlier, so there is room
     * for one more. */
    struct s3s_buf *out = &r->out_plain;
    if (out->max == 0) {
        s3s_result_ignore(s3s_buf_init(out, 0, S_OUT_CAP)); /* no allocation yet */
    }
    if (r->dec || r->resp_trim) {
        if (s3s_failed(s3s_sse_get_body(r, s3s_cur_from(p, n), out))) {
            /* A segment failed its tag (or the body is not what the metadata
             * says): no byte of it goes out; the response is cut. */
            S3S_LOGE("sse", "req=%s object failed its integrity check; response aborted", r->id);
            s3s_buf_reset(out);
            if (c->held.len) {
                /* Not even the head has left: the client gets an error
                 * answer instead of a cut one. */
                c->held = (struct s3s_cur){0};
                r->resp_head_sent = false;
                r->deferred_error = S3S_ERR_SSE_TAG_MISMATCH;
            }
            return 0;
        }
    } else if (s3s_failed(s3s_buf_append(out, p, n))) {
        return 0;
    }
    if (out->len >= S3S_OUT_FLUSH) {
        return s3s_is_ok(s3s_upstream_flush_body(r)) ? n : 0;
    }
    if (out->len && !r->out_listed) {
        r->out_listed = true;
        r->out_next = c->w->out_pending;
        c->w->out_pending = r;
    }
    return n;
}

static void s_out_unlist(struct s3s_req *r)
{
    struct s3s_worker *w = r->conn->w;
    for (struct s3s_req **p = &w->out_pending; r->out_listed && *p; p = &(*p)->out_next) {
        if (*p == r) {
            *p = r->out_next;
            r->out_listed = false;
            r->out_next = NULL;
            break;
        }
    }
}

s3s_result s3s_upstream_flush_body(struct s3s_req *r)
{
    struct s3s_conn *c = r->conn;
    struct s3s_buf *out = &r->out_plain;
    s_out_unlist(r);
    if (out->len == 0) {
        return s3s_conn_flush(c);
    }
    s3s_result res = r->resp_chunked ? s3s_conn_write_chunk(c, out->ptr, out->len)
                                     : s3s_conn_write(c, out->ptr, out->len);
    if (s3s_is_ok(res)) {
        r->resp_body_sent += out->len;
    }
    s3s_buf_reset(out);
    return res;
}

void s3s_worker_flush_out(struct s3s_worker *w)
{
    while (w->out_pending) {
        struct s3s_req *r = w->out_pending;
        if (s3s_failed(s3s_upstream_flush_body(r))) {
            s3s_conn_close(r->conn); /* a response with a hole must not go on */
        }
    }
}

void s3s_upstream_out_release(struct s3s_req *r) { s_out_unlist(r); }

/* ----------------------------------------------------------------- pausing */

static void s_apply_pause(struct s3s_req *r)
{
    int mask = (r->send_paused ? CURLPAUSE_SEND : 0) | (r->recv_paused ? CURLPAUSE_RECV : 0);
    CURLcode rc = curl_easy_pause(r->easy, mask);
    if (rc != CURLE_OK && !r->easy_ended && r->pause_error == CURLE_OK) {
        /* The transfer ended in there (see pause_error). */
        r->pause_error = rc;
        s3s_worker_defer(r);
        s3s_worker_wake(r->conn->w);
    }
    /* Unpausing can deliver buffered bytes at once, outside any socket
     * event after which they would be written. */
    if (r->out_listed && s3s_failed(s3s_upstream_flush_body(r))) {
        s3s_conn_close(r->conn);
    }
}

void s3s_upstream_kick_send(struct s3s_req *r)
{
    if (r->bucket_enc) {
        s3s_bucket_enc_kick(r); /* answered by s3seal, not the backend */
        return;
    }
    if (r->easy && r->send_paused) {
        r->send_paused = false;
        s_apply_pause(r);
    }
}

void s3s_upstream_kick_recv(struct s3s_req *r)
{
    if (r->easy && r->recv_paused) {
        r->recv_paused = false;
        s_apply_pause(r);
    }
}

/* ------------------------------------------------------------------ start */

/* The backend path of the request: always path-style, canonically encoded
 * (what is signed is what is sent). */
static s3s_result s_backend_path(struct s3s_req *r, struct s3s_buf *path)
{
    struct s3s_buf raw;
    S3S_GUARD(s3s_buf_init(&raw, 0, 16384));
    s3s_result res = s3s_ok();
    if (r->virtual_host) {
        res = s3s_buf_append_byte(&raw, '/');
        if (s3s_is_ok(res)) {
            res = s3s_buf_append_cur(&raw, s3s_buf_cur(&r->bucket));
        }
    }
    if (s3s_is_ok(res)) {
        res = s3s_buf_append_cur(&raw, r->path);
    }
    if (s3s_is_ok(res) && s3s_failed(s3s_sigv4_canonical_path(s3s_buf_cur(&raw), path))) {
        res = s3s_err(S3S_ERR_INVALID_URI);
    }
    s3s_buf_clean_up(&raw);
    return res;
}

/* Where a transfer lives in its request, and its callbacks: the request's
 * main transfer (r->easy), or the source read of a streamed copy. */
struct s_slot {
    CURL **easy;
    struct curl_slist **headers;
    curl_write_callback header_cb;
    curl_write_callback write_cb;
};

static size_t s_header_cb(char *p, size_t size, size_t nitems, void *ud);
static size_t s_write_cb(char *p, size_t size, size_t nitems, void *ud);

/*
 * Signs (backend.h) and starts one backend transfer: `hv` holds the headers
 * to send. `upload` is the body length for methods with a body, or -1.
 */
static s3s_result s_launch_slot(struct s3s_req *r, const struct s_slot *slot, const char *method,
                                struct s3s_cur path, struct s3s_cur query,
                                struct s3s_sigv4_header *hv, size_t nh, int64_t upload)
{
    struct s3s_conn *c = r->conn;
    const struct s3s_config *cfg = c->w->cfg;
    s3s_buf_reset(&r->up_url);
    S3S_GUARD(s3s_backend_sign(cfg, method, path, query, hv, nh, upload > 0, &r->up_url,
                               &r->up_scratch, slot->headers));
    CURL *e = curl_easy_init();
    S3S_ENSURE(e != NULL, S3S_ERR_NOMEM);
    *slot->easy = e;
    const char *url;
    S3S_GUARD(s3s_buf_cstr(&r->up_url, &url));
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_PRIVATE, (char *)r);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, *slot->headers);
    s3s_backend_easy_options(e, cfg);
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(e, CURLOPT_BUFFERSIZE, (long)S_CURL_BUFFER);
    curl_easy_setopt(e, CURLOPT_UPLOAD_BUFFERSIZE, (long)S_CURL_BUFFER);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, slot->header_cb);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, slot->write_cb);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(e, CURLOPT_READFUNCTION, s_read_cb);
    curl_easy_setopt(e, CURLOPT_READDATA, r);
    if (strcmp(method, "HEAD") == 0) {
        curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    } else if (strcmp(method, "GET") == 0 && upload < 0) {
        curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    } else {
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
        if (upload >= 0) {
            curl_easy_setopt(e, CURLOPT_UPLOAD, 1L);
            curl_easy_setopt(e, CURLOPT_INFILESIZE_LARGE, (curl_off_t)upload);
        }
    }
    S3S_ENSURE(curl_multi_add_handle(c->w->multi, e) == CURLM_OK, S3S_ERR_INTERNAL);
    return s3s_ok();
}

static s3s_result s_launch(struct s3s_req *r, const char *method, struct s3s_cur path,
                           struct s3s_cur query, struct s3s_sigv4_header *hv, size_t nh,
                           int64_t upload)
{
    const struct s_slot main_slot = {&r->easy, &r->up_headers, s_header_cb, s_write_cb};
    return s_launch_slot(r, &main_slot, method, path, query, hv, nh, upload);
}

s3s_result s3s_upstream_start(struct s3s_req *r)
{
    s3s_result result = s3s_err(S3S_ERR_NOMEM);
    struct s3s_buf raw_query = {0}, path = {0}, query = {0}, ce = {0};
    struct s3s_sigv4_header *hv = NULL;
    char ck_name[64];

    if (s3s_failed(s3s_buf_init(&raw_query, 0, 16384)) ||
        s3s_failed(s3s_buf_init(&path, 0, 3 * 16384)) ||
        s3s_failed(s3s_buf_init(&query, 0, 3 * 16384)) || s3s_failed(s3s_buf_init(&ce, 0, 1024))) {
        goto cleanup;
    }
    if (s3s_failed(result = s_backend_path(r, &path))) {
        goto cleanup;
    }
    if (s3s_failed(s_filter_query(r, &raw_query)) ||
        s3s_failed(s3s_sigv4_canonical_query(s3s_buf_cur(&raw_query), false, &query))) {
        result = s3s_err(S3S_ERR_INVALID_URI);
        goto cleanup;
    }

    /* Headers: the client's, minus hop-by-hop and credentials, plus ours. */
    /* The client's, s3seal's metadata, the source's object headers, and at
     * most a checksum, a range, a metadata directive and tags of ours, and
     * the three s_launch adds. */
    hv = s3s_calloc(r->n_headers + s3s_hdrlist_count(&r->sse_headers) +
                        s3s_hdrlist_count(&r->probe_headers) + 8,
                    sizeof(*hv));
    if (!hv) {
        result = s3s_err(S3S_ERR_NOMEM);
        goto cleanup;
    }
    size_t nh = 0;
    for (size_t i = 0; i < r->n_headers; i++) {
        struct s3s_cur name = r->headers[i].name;
        if (s3s_s3_is_hop_by_hop(name) || s_in_list(name, s_dropped_headers, true) ||
            s_named_in_connection(r, name) || s_is_internal_meta(name)) {
            continue;
        }
        if ((r->enc || r->mpu_encrypted) && s_in_list(name, s_plaintext_headers, true)) {
            continue; /* they describe the plaintext; the backend gets ciphertext */
        }
        if (s_in_list(name, s_kms_headers, true) ||
            (r->sse_want.mode != S3S_SSE_NONE &&
             s3s_cur_eq_str_ignore_case(name, "x-amz-server-side-encryption"))) {
            continue; /* SSE-KMS is s3seal's: the backend's own never applies */
        }
        if ((r->range_drop || r->up_range[0]) && s3s_cur_eq_str_ignore_case(name, "range")) {
            continue;
        }
        if (r->etag_conditions && (s3s_cur_eq_str_ignore_case(name, "if-match") ||
                                   s3s_cur_eq_str_ignore_case(name, "if-none-match") ||
                                   s3s_cur_eq_str_ignore_case(name, "if-range"))) {
            continue; /* evaluated against the ETag the client sees (sse_get.c) */
        }
        bool copy_made_here = r->rewrap_copy || r->stream_copy;
        if (copy_made_here && (s3s_cur_eq_str_ignore_case(name, "x-amz-metadata-directive") ||
                               s3s_cur_eq_str_ignore_case(name, "x-amz-server-side-encryption") ||
                               (r->rewrap_keep_source_meta &&
                                s3s_backend_is_object_header(name)))) {
            continue; /* replaced below by the source's and s3seal's */
        }
        struct s3s_cur cs = S3S_CUR_LIT("x-amz-copy-source");
        bool copy_source =
            name.len >= cs.len && s3s_cur_eq_ignore_case(s3s_cur_from(name.ptr, cs.len), cs);
        if (r->stream_copy && (copy_source ||
                               s3s_cur_eq_str_ignore_case(name, "x-amz-tagging-directive"))) {
            continue; /* the copy is a write here: its source is read by s3seal */
        }
        struct s3s_cur value = s3s_cur_trim(r->headers[i].value);
        if (s3s_cur_eq_str_ignore_case(name, "content-encoding")) {
            /* Drop the aws-chunked token, keep any real encoding (gzip...). */
            if (s3s_failed(s_strip_aws_chunked(value, &ce))) {
                result = s3s_err(S3S_ERR_INVALID_ARG);
                goto cleanup;
            }
            if (ce.len == 0) {
                continue;
            }
            value = s3s_buf_cur(&ce);
        }
        hv[nh++] = (struct s3s_sigv4_header){name, value};
    }
    /* A single-part object keeps the checksum the client sent as a header,
     * so that GET and HEAD with x-amz-checksum-mode: ENABLED return it. */
    if (r->checksum_alg != S3S_CHECKSUM_NONE && !r->checksum_in_trailer && s3s_s3_is_put_object(r)) {
        const char *hn = s3s_checksum_header(r->checksum_alg); /* x-amz-checksum-ALG */
        snprintf(ck_name, sizeof(ck_name), S_META_CHECKSUM "%s", hn + strlen("x-amz-checksum-"));
        hv[nh++] = (struct s3s_sigv4_header){s3s_cur_from_str(ck_name),
                                             s3s_cur_from_str(r->checksum_want)};
    }
    /* SSE-S3: the object's encryption metadata. */
    const char *hname, *hval;
    for (size_t off = 0; s3s_hdrlist_next(&r->sse_headers, &off, &hname, &hval);) {
        hv[nh++] = (struct s3s_sigv4_header){s3s_cur_from_str(hname), s3s_cur_from_str(hval)};
    }
    if (r->up_range[0]) {
        hv[nh++] = (struct s3s_sigv4_header){S3S_CUR_LIT("range"), s3s_cur_from_str(r->up_range)};
    }
    if (r->rewrap_copy) {
        /* The copy carries the re-wrapped key: its metadata is replaced. */
        hv[nh++] = (struct s3s_sigv4_header){S3S_CUR_LIT("x-amz-metadata-directive"),
                                             S3S_CUR_LIT("REPLACE")};
    }
    if (r->copy_tagging.len) {
        hv[nh++] = (struct s3s_sigv4_header){S3S_CUR_LIT("x-amz-tagging"),
                                             s3s_buf_cur(&r->copy_tagging)};
    }
    /* With the source's own object headers when the client asked to COPY. */
    for (size_t off = 0; (r->rewrap_copy || r->stream_copy) && r->rewrap_keep_source_meta &&
                         s3s_hdrlist_next(&r->probe_headers, &off, &hname, &hval);) {
        hv[nh++] = (struct s3s_sigv4_header){s3s_cur_from_str(hname), s3s_cur_from_str(hval)};
    }
    char method[16];
    snprintf(method, sizeof(method), "%.*s", (int)r->method.len, (const char *)r->method.ptr);
    bool with_body = r->has_body || s3s_cur_eq_str(r->method, "PUT") ||
                     s3s_cur_eq_str(r->method, "POST");
    result = s_launch(r, method, s3s_buf_cur(&path), s3s_buf_cur(&query), hv, nh,
                      with_body ? (int64_t)r->up_length : -1);

cleanup:
    if (s3s_failed(result)) {
        s3s_upstream_abort(r);
    }
    s3s_buf_clean_up(&raw_query);
    s3s_buf_clean_up(&path);
    s3s_buf_clean_up(&query);
    s3s_buf_clean_up(&ce);
    s3s_free(&hv);
    return result;
}

s3s_result s3s_upstream_object_path(struct s3s_req *r, struct s3s_buf *path)
{
    return s_backend_path(r, path);
}

s3s_result s3s_upstream_head(struct s3s_req *r, struct s3s_cur path, struct s3s_cur query,
                             struct s3s_sigv4_header *hv, size_t nh)
{
    s3s_result res = s_launch(r, "HEAD", path, query, hv, nh, -1);
    if (s3s_failed(res)) {
        s3s_upstream_abort(r);
    }
    return res;
}

/* Headers that describe an object and must survive a metadata-replacing
 * copy of it onto itself. */
s3s_result s3s_upstream_store_checksum(struct s3s_req *r)
{
    s3s_result result = s3s_err(S3S_ERR_NOMEM);
    struct s3s_buf path = {0}, ce = {0};
    struct s3s_sigv4_header *hv = NULL;
    char ck_name[64];
    S3S_ENSURE(r->checksum_alg != S3S_CHECKSUM_NONE, S3S_ERR_INTERNAL);
    s3s_upstream_abort(r);
    if (s3s_failed(s3s_buf_init(&path, 0, 3 * 16384)) || s3s_failed(s3s_buf_init(&ce, 0, 1024)) ||
        !(hv = s3s_calloc(r->n_headers + s3s_hdrlist_count(&r->sse_headers) + 9,
                          sizeof(*hv)))) {
        goto cleanup;
    }
    if (s3s_failed(result = s_backend_path(r, &path))) {
        goto cleanup;
    }
    size_t nh = 0;
    for (size_t i = 0; i < r->n_headers; i++) {
        struct s3s_cur name = r->headers[i].name;
        struct s3s_cur value = s3s_cur_trim(r->headers[i].value);
        if (s3s_cur_eq_str_ignore_case(name, "content-encoding")) {
            s3s_buf_reset(&ce);
            if (s3s_is_ok(s_strip_aws_chunked(value, &ce)) && ce.len) {
                hv[nh++] = (struct s3s_sigv4_header){name, s3s_buf_cur(&ce)};
            }
        } else if (s3s_backend_is_object_header(name)) {
            hv[nh++] = (struct s3s_sigv4_header){name, value};
        }
    }
    const char *hn = s3s_checksum_header(r->checksum_alg);
    snprintf(ck_name, sizeof(ck_name), S_META_CHECKSUM "%s", hn + strlen("x-amz-checksum-"));
    hv[nh++] = (struct s3s_sigv4_header){s3s_cur_from_str(ck_name),
                                         s3s_cur_from_str(r->checksum_want)};
    /* An encrypted object keeps its encryption metadata, and gains the
     * plaintext's MD5 where it was not known before the body. */
    const char *hname, *hval;
    struct s3s_cur known;
    for (size_t off = 0; s3s_hdrlist_next(&r->sse_headers, &off, &hname, &hval);) {
        hv[nh++] = (struct s3s_sigv4_header){s3s_cur_from_str(hname), s3s_cur_from_str(hval)};
    }
    char md5_hex[33];
    if (r->enc && r->have_plain_md5 &&
        !s3s_hdrlist_get(&r->sse_headers, S3S_SSE_META_PREFIX "md5", &known)) {
        for (int i = 0; i < 16; i++) {
            snprintf(md5_hex + 2 * i, 3, "%02x", r->plain_md5_val[i]);
        }
        hv[nh++] = (struct s3s_sigv4_header){S3S_CUR_LIT(S3S_SSE_META_PREFIX "md5"),
                                             s3s_cur_from(md5_hex, 32)};
    }
    hv[nh++] = (struct s3s_sigv4_header){S3S_CUR_LIT("x-amz-copy-source"), s3s_buf_cur(&path)};
    hv[nh++] = (struct s3s_sigv4_header){S3S_CUR_LIT("x-amz-metadata-directive"),
                                         S3S_CUR_LIT("REPLACE")};
    result = s_launch(r, "PUT", s3s_buf_cur(&path), s3s_cur_from(NULL, 0), hv, nh, 0);

cleanup:
    if (s3s_failed(result)) {
        s3s_upstream_abort(r);
    }
    s3s_buf_clean_up(&path);
    s3s_buf_clean_up(&ce);
    s3s_free(&hv);
    return result;
}

/* ------------------------------------------------------- streamed copies */

/* The source read of a streamed copy: only its status is kept from its
 * head; its body becomes the upload of the main transfer. */
static size_t s_src_header_cb(char *p, size_t size, size_t nitems, void *ud)
{
    struct s3s_req *r = ud;
    size_t n = size * nitems;
    uint64_t st = 0;
    if (n > 12 && memcmp(p, "HTTP/", 5) == 0 &&
        s3s_is_ok(s3s_parse_u64(s3s_cur_from(p + 9, 3), 999, &st))) {
        r->src_status = (int)st;
    }
    return n;
}

static size_t s_src_write_cb(char *p, size_t size, size_t nitems, void *ud)
{
    struct s3s_req *r = ud;
    size_t n = size * nitems;
    if (r->conn->closing || r->src_status < 200 || r->src_status > 299) {
        return 0; /* answered when the source transfer ends */
    }
    if (r->mpu_complete || r->nonce_stage || r->copy_tags_stage) {
        /* A ListParts page, a stored nonce (sse_mpu.c), a source's tags. */
        return s3s_is_ok(s3s_buf_append(&r->copy_plain, p, n)) ? n : 0;
    }
    if (r->body_failed) {
        return 0;
    }
    if (!s3s_req_upload_has_room(r, n)) {
        r->src_paused = true;
        return CURL_WRITEFUNC_PAUSE;
    }
    s3s_result res;
    if (r->copy_dec) {
        s3s_buf_reset(&r->copy_plain);
        res = s3s_sse_dec_push(r->copy_dec, s3s_cur_from(p, n), &r->copy_plain);
        if (s3s_is_ok(res)) {
            res = s3s_req_queue_upload(r, s3s_buf_cur(&r->copy_plain));
        }
    } else {
        res = s3s_req_queue_upload(r, s3s_cur_from(p, n));
    }
    if (s3s_failed(res)) {
        r->src_error = res.code;
        return 0;
    }
    s3s_upstream_kick_send(r);
    return n;
}

s3s_result s3s_upstream_source_get(struct s3s_req *r, struct s3s_cur path, struct s3s_cur query,
                                   const char *range)
{
    struct s3s_sigv4_header hv[4];
    size_t nh = 0;
    if (range && range[0]) {
        hv[nh++] = (struct s3s_sigv4_header){S3S_CUR_LIT("range"), s3s_cur_from_str(range)};
    }
    const struct s_slot src = {&r->src_easy, &r->src_headers, s_src_header_cb, s_src_write_cb};
    s3s_result res = s_launch_slot(r, &src, "GET", path, query, hv, nh, -1);
    if (s3s_failed(res)) {
        s3s_upstream_abort_source(r);
    }
    return res;
}

void s3s_upstream_resume_source(struct s3s_req *r)
{
    if (r->src_easy && r->src_paused) {
        r->src_paused = false;
        curl_easy_pause(r->src_easy, CURLPAUSE_CONT);
    }
}

/* Ends one transfer of a request and frees its handle and header list. */
static void s_abort_slot(struct s3s_req *r, CURL **easy, struct curl_slist **headers)
{
    if (easy == &r->easy) {
        r->easy_ended = false;
        r->pause_error = CURLE_OK;
    }
    if (*easy) {
        curl_multi_remove_handle(r->conn->w->multi, *easy);
        curl_easy_cleanup(*easy);
        *easy = NULL;
    }
    curl_slist_free_all(*headers);
    *headers = NULL;
}

void s3s_upstream_abort_source(struct s3s_req *r)
{
    s_abort_slot(r, &r->src_easy, &r->src_headers);
}

void s3s_upstream_abort(struct s3s_req *r)
{
    s3s_stages_release(r);
    s3s_upstream_abort_source(r);
    s_abort_slot(r, &r->easy, &r->up_headers);
}
