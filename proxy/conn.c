/*
 * conn.c - a client connection: reading with llhttp in strict mode, one
 * request at a time (pipelined bytes wait until the response is done),
 * authentication, the request body pipeline (hash, buffer, hand to the
 * upstream with backpressure), response writing, timeouts and teardown.
 *
 * A request's life: HEADERS -> (BODY) -> WAIT -> RESPOND -> DONE. It is
 * finished (logged and freed) only when its response is complete and the
 * request message has been read entirely, or the connection is closing.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "proxy/authz.h"
#include "proxy/metrics.h"
#include "proxy/proxy.h"

/* Bytes of one read; shared per worker since a read is consumed before the
 * next one (the parser copies what must outlive the callback). */
static _Thread_local char tl_read_buf[S3S_READ_BUF_SIZE];

static llhttp_settings_t s_settings;
static uv_once_t s_settings_once = UV_ONCE_INIT;

static void s_conn_progress(struct s3s_conn *c);
static void s_parse(struct s3s_conn *c, const char *data, size_t len);
static void s_update_reading(struct s3s_conn *c);
static void s_timer_arm(struct s3s_conn *c);
static void s_client_release(const char *ip);

/* ----------------------------------------------------------------- writes */

/* A queued write and its copy of the bytes. Buffers of body data (above
 * S_WRITE_SMALL, rounded up to S_WRITE_ROUND) are kept in the loop's pool
 * for the next write they fit: a slow client's transfer allocates nothing
 * per write once the pool is warm. */
#define S_WRITE_SMALL (16 * 1024)
#define S_WRITE_ROUND (64 * 1024)
#define S_WRITE_POOL_MAX 4

struct s3s_write_buf {
    uv_write_t req;
    struct s3s_conn *conn;
    size_t len;
    size_t cap;
    struct s3s_write_buf *next; /* in the pool */
    uint8_t data[];
};

static struct s3s_write_buf *s_write_alloc(struct s3s_worker *w, size_t n)
{
    if (n > S_WRITE_SMALL) {
        for (struct s3s_write_buf **p = &w->write_pool; *p; p = &(*p)->next) {
            if ((*p)->cap >= n) {
                struct s3s_write_buf *sw = *p;
                *p = sw->next;
                w->write_pool_n--;
                return sw;
            }
        }
        n = (n + S_WRITE_ROUND - 1) / S_WRITE_ROUND * S_WRITE_ROUND;
    }
    struct s3s_write_buf *sw = s3s_malloc(sizeof(*sw) + n);
    if (sw) {
        sw->cap = n;
    }
    return sw;
}

static void s_write_release(struct s3s_worker *w, struct s3s_write_buf *sw)
{
    if (sw->cap > S_WRITE_SMALL && w->write_pool_n < S_WRITE_POOL_MAX) {
        sw->next = w->write_pool;
        w->write_pool = sw;
        w->write_pool_n++;
        return;
    }
    s3s_free(&sw);
}

void s3s_conn_pool_clean_up(struct s3s_worker *w)
{
    while (w->write_pool) {
        struct s3s_write_buf *sw = w->write_pool;
        w->write_pool = sw->next;
        s3s_free(&sw);
    }
    w->write_pool_n = 0;
}

static void s_write_cb(uv_write_t *wr, int status)
{
    struct s3s_write_buf *sw = (struct s3s_write_buf *)wr;
    struct s3s_conn *c = sw->conn;
    c->write_queued -= sw->len;
    s_write_release(c->w, sw);
    if (status < 0) {
        if (status != UV_ECANCELED) {
            S3S_LOGD("conn", "remote=%s write error=%s", c->remote, uv_strerror(status));
        }
        s3s_conn_close(c);
        return;
    }
    if (c->closing || c->refused) {
        return;
    }
    s_timer_arm(c);
    if (c->req && c->write_queued < S3S_LOW_WATER) {
        s3s_req_write_drained(c->req);
    }
    s_conn_progress(c);
}

/* HTTPS: sends the ciphertext waiting in the connection's TLS state, as
 * s_writev sends plaintext: straight from where it is as far as the socket
 * takes it, only the rest copied and queued. */
static s3s_result s_tls_send(struct s3s_conn *c)
{
    struct s3s_cur out = s3s_tls_conn_out(c->tls);
    if (out.len == 0 || c->closing) {
        return s3s_ok();
    }
    size_t done = 0;
    if (c->write_queued == 0) {
        uv_buf_t b = uv_buf_init((char *)out.ptr, (unsigned int)out.len);
        int k = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
        done = k > 0 ? (size_t)k : 0; /* an error is left to uv_write */
        if (done == out.len) {
            s3s_tls_conn_out_take(c->tls, done);
            s_timer_arm(c);
            return s3s_ok();
        }
    }
    size_t n = out.len - done;
    struct s3s_write_buf *sw = s_write_alloc(c->w, n);
    S3S_ENSURE(sw != NULL, S3S_ERR_NOMEM);
    memcpy(sw->data, out.ptr + done, n);
    s3s_tls_conn_out_take(c->tls, out.len);
    sw->conn = c;
    sw->len = n;
    uv_buf_t buf = uv_buf_init((char *)sw->data, (unsigned int)n);
    if (uv_write(&sw->req, (uv_stream_t *)&c->tcp, &buf, 1, s_write_cb) != 0) {
        s_write_release(c->w, sw);
        S3S_BAIL(S3S_ERR_IO);
    }
    c->write_queued += n;
    return s3s_ok();
}

/* HTTPS: the pieces encrypted in slices of S_TLS_SLICE plaintext bytes,
 * each slice's records sent before the next is encrypted, so the output a
 * connection buffers stays small however much is written at once. The
 * write queue counts the ciphertext, which is what it holds. */
#define S_TLS_SLICE (64 * 1024)

static s3s_result s_tls_writev(struct s3s_conn *c, const uint8_t *const *piece, const size_t *len,
                               int n_pieces)
{
    struct s3s_cur slice[4];
    size_t ns = 0, room = S_TLS_SLICE;
    for (int i = 0; i < n_pieces; i++) {
        const uint8_t *p = piece[i];
        size_t l = len[i];
        while (l > 0) {
            size_t k = l < room ? l : room;
            slice[ns++] = (struct s3s_cur){p, k};
            p += k;
            l -= k;
            room -= k;
            if (room == 0) {
                S3S_GUARD(s3s_tls_conn_write(c->tls, slice, ns));
                S3S_GUARD(s_tls_send(c));
                ns = 0;
                room = S_TLS_SLICE;
            }
        }
    }
    if (ns) {
        S3S_GUARD(s3s_tls_conn_write(c->tls, slice, ns));
        S3S_GUARD(s_tls_send(c));
    }
    return s3s_ok();
}

/* Queues one write made of up to three pieces (chunk framing), after a held
 * response head if there is one. */
static s3s_result s_writev(struct s3s_conn *c, const void *a, size_t na, const void *b, size_t nb,
                           const void *d, size_t nd)
{
    S3S_ENSURE(!c->closing, S3S_ERR_IO);
    const uint8_t *piece[4] = {c->held.ptr, a, b, d};
    size_t len[4] = {c->held.len, na, nb, nd};
    c->held = (struct s3s_cur){0};
    size_t n = len[0] + na + nb + nd;
    if (n == 0) {
        return s3s_ok();
    }
    if (c->tls) {
        return s_tls_writev(c, piece, len, 4);
    }
    if (c->write_queued == 0) {
        /* Nothing queued: written straight from the caller's buffers as far
         * as the socket takes them; only the rest is copied and queued. */
        uv_buf_t bufs[4];
        unsigned int nbufs = 0;
        for (int i = 0; i < 4; i++) {
            if (len[i]) {
                bufs[nbufs++] = uv_buf_init((char *)piece[i], (unsigned int)len[i]);
            }
        }
        int done = uv_try_write((uv_stream_t *)&c->tcp, bufs, nbufs);
        size_t skip = done > 0 ? (size_t)done : 0; /* an error is left to uv_write */
        if (skip == n) {
            s_timer_arm(c); /* progress, as a completed write is */
            return s3s_ok();
        }
        for (int i = 0; i < 4; i++) {
            size_t k = skip < len[i] ? skip : len[i];
            piece[i] += k;
            len[i] -= k;
            skip -= k;
        }
        n = len[0] + len[1] + len[2] + len[3];
    }
    struct s3s_write_buf *sw = s_write_alloc(c->w, n);
    S3S_ENSURE(sw != NULL, S3S_ERR_NOMEM);
    sw->conn = c;
    sw->len = n;
    size_t at = 0;
    for (int i = 0; i < 4; i++) {
        if (len[i]) {
            memcpy(sw->data + at, piece[i], len[i]);
            at += len[i];
        }
    }
    uv_buf_t buf = uv_buf_init((char *)sw->data, (unsigned int)n);
    int rc = uv_write(&sw->req, (uv_stream_t *)&c->tcp, &buf, 1, s_write_cb);
    if (rc != 0) {
        s_write_release(c->w, sw);
        S3S_BAIL(S3S_ERR_IO);
    }
    c->write_queued += n;
    return s3s_ok();
}

void s3s_conn_hold(struct s3s_conn *c, struct s3s_cur head) { c->held = head; }

s3s_result s3s_conn_flush(struct s3s_conn *c)
{
    return c->held.len ? s_writev(c, NULL, 0, NULL, 0, NULL, 0) : s3s_ok();
}

s3s_result s3s_conn_write(struct s3s_conn *c, const void *p, size_t n)
{
    return s_writev(c, p, n, NULL, 0, NULL, 0);
}

s3s_result s3s_conn_write_chunk(struct s3s_conn *c, const void *p, size_t n)
{
    char pre[24];
    int pl = snprintf(pre, sizeof(pre), "%zx\r\n", n);
    return s_writev(c, pre, (size_t)pl, p, n, "\r\n", 2);
}

/* ------------------------------------------------------------ requests */

static bool s_method_is(const struct s3s_req *r, const char *m) { return s3s_cur_eq_str(r->method, m); }


static void s_req_free(struct s3s_req *r)
{
    r->conn->held = (struct s3s_cur){0}; /* it pointed into r->resp_head */
    s3s_config_release(r->cfg);
    s3s_upstream_out_release(r);
    s3s_worker_undefer(r);
    s3s_upstream_abort(r);
    s3s_sigv4_verify_result_clean_up(&r->auth);
    s3s_buf_clean_up(&r->bucket);
    s3s_buf_clean_up(&r->key);
    s3s_buf_clean_up(&r->upload);
    s3s_buf_clean_up(&r->up_url);
    s3s_buf_clean_up(&r->up_scratch);
    s3s_buf_clean_up(&r->resp_head);
    s3s_hasher_release(r->hasher);
    s3s_body_digests_clean_up(&r->dg);
    s3s_chunked_destroy(r->chunked);
    s3s_sse_enc_destroy(r->enc);
    s3s_sse_dec_destroy(r->dec);
    s3s_sse_dec_destroy(r->copy_dec);
    s3s_buf_clean_up(&r->copy_plain);
    s3s_buf_clean_up(&r->out_plain);
    s3s_buf_clean_up(&r->copy_tagging);
    s3s_buf_clean_up(&r->copy_src.bucket);
    s3s_buf_clean_up(&r->copy_src.key);
    s3s_buf_clean_up(&r->body_copy);
    s3s_buf_clean_up(&r->nonce_path);
    s3s_buf_clean_up(&r->nonce_query);
    s3s_free(&r->mpu_sizes);
    s3s_buf_clean_up(&r->sse_headers);
    s3s_sse_want_clean_up(&r->sse_want);
    s3s_free(&r->resp_kms_arn);
    s3s_buf_clean_up(&r->resp_kms_context);
    s3s_buf_clean_up(&r->resp_meta);
    s3s_buf_clean_up(&r->listing);
    s3s_buf_clean_up(&r->mpu_backend_id);
    s3s_buf_clean_up(&r->mpu_suffix);
    s3s_buf_clean_up(&r->mpu_reg_id);
    s3s_buf_clean_up(&r->probe_headers);
    s3s_free(&r->headers);
    s3s_free(&r);
}

static void s_req_log(struct s3s_req *r)
{
    struct s3s_conn *c = r->conn;
    double ms = (double)(s3s_now_ns() - r->start_ns) / 1e6;
    if (s3s_log_get_format() == S3S_LOG_FORMAT_JSON) {
        /* The JSON writer escapes what a client chose itself. */
        const struct s3s_log_access_fields f = {
            .request_id = r->id,
            .remote = c->remote,
            .method = r->method,
            .operation = s3s_s3_op_name(r->op),
            .bucket = s3s_buf_cur(&r->bucket),
            .key = s3s_buf_cur(&r->key),
            .status = r->status,
            .bytes_in = r->body_received,
            .bytes_out = r->resp_body_sent,
            .duration_ms = ms,
            .access_key = s3s_cur_from_str(r->access_key),
            .error = r->error ? s3s_error_s3code(r->error) : NULL,
        };
        s3s_log_access_json(&f);
        return;
    }
    /* Every field a client chose is escaped (s3s_log_escape): no space,
     * quote, '=' or control byte of its own can forge a field or a line. */
    struct s3s_buf key, bucket, ak;
    s3s_result_ignore(s3s_buf_init(&key, 0, 4096 * 3 + 1)); /* no allocation */
    s3s_result_ignore(s3s_buf_init(&bucket, 0, 1024 * 3 + 1));
    s3s_result_ignore(s3s_buf_init(&ak, 0, sizeof(r->access_key) * 3 + 1));
    const char *key_s = "-", *bucket_s = "-", *ak_s = "-";
    if (r->key.len && s3s_is_ok(s3s_log_escape(s3s_buf_cur(&r->key), &key))) {
        s3s_result_ignore(s3s_buf_cstr(&key, &key_s));
    }
    if (r->bucket.len && s3s_is_ok(s3s_log_escape(s3s_buf_cur(&r->bucket), &bucket))) {
        s3s_result_ignore(s3s_buf_cstr(&bucket, &bucket_s));
    }
    if (r->access_key[0] &&
        s3s_is_ok(s3s_log_escape(s3s_cur_from_str(r->access_key), &ak))) {
        s3s_result_ignore(s3s_buf_cstr(&ak, &ak_s));
    }
    s3s_log_access_text(
            "req=%s remote=%s method=%.*s bucket=%s key=%s status=%d bytes_in=%llu "
            "bytes_out=%llu duration_ms=%.1f access_key=%s op=%s%s%s",
            r->id, c->remote, (int)r->method.len, (const char *)r->method.ptr, bucket_s, key_s,
            r->status, (unsigned long long)r->body_received,
            (unsigned long long)r->resp_body_sent, ms, ak_s, s3s_s3_op_name(r->op),
            r->error ? " error=" : "", r->error ? s3s_error_s3code(r->error) : "");
    s3s_buf_clean_up(&key);
    s3s_buf_clean_up(&bucket);
    s3s_buf_clean_up(&ak);
}

static void s_req_finish(struct s3s_conn *c)
{
    struct s3s_req *r = c->req;
    if (!r) {
        return;
    }
    if (r->status) {
        s_req_log(r);
        s3s_metrics_request(r);
    }
    c->req = NULL;
    s_req_free(r);
}

static s3s_result s_req_new(struct s3s_conn *c)
{
    struct s3s_req *r = s3s_calloc(1, sizeof(*r));
    S3S_ENSURE(r != NULL, S3S_ERR_NOMEM);
    r->conn = c;
    r->cfg = s3s_config_acquire(c->w->cfg);
    r->start_ns = s3s_now_ns();
    uint8_t rnd[8];
    if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
        memset(rnd, 0, sizeof(rnd));
    }
    static const char hex[] = "0123456789ABCDEF";
    for (int i = 0; i < 8; i++) {
        r->id[2 * i] = hex[rnd[i] >> 4];
        r->id[2 * i + 1] = hex[rnd[i] & 15];
    }
    r->id[16] = '\0';
    s3s_sigv4_verify_result_init(&r->auth);
    /* These cannot fail: no initial allocation. */
    s3s_result_ignore(s3s_buf_init(&r->bucket, 0, 1024));
    s3s_result_ignore(s3s_buf_init(&r->key, 0, 4096));
    /* Room for one read past the high-water mark, plus two sealed segments
     * the encryptor may emit for it. */
    s3s_result_ignore(s3s_buf_init(&r->upload, 0,
                                   S3S_HIGH_WATER + S3S_READ_BUF_SIZE + 2 * (S3S_SSE_SEGMENT_SIZE + 64)));
    /* SSE-KMS metadata carries the encryption context (up to 8 KiB). */
    s3s_result_ignore(s3s_buf_init(&r->sse_headers, 0, 32 * 1024));
    s3s_kms_context_init(&r->sse_want.context);
    s3s_result_ignore(s3s_buf_init(&r->resp_kms_context, 0, 16 * 1024));
    s3s_result_ignore(s3s_buf_init(&r->mpu_backend_id, 0, 4096));
    s3s_result_ignore(s3s_buf_init(&r->mpu_suffix, 0, 1024));
    s3s_result_ignore(s3s_buf_init(&r->mpu_reg_id, 0, 4096));
    s3s_result_ignore(s3s_buf_init(&r->resp_meta, 0, 4096));
    s3s_result_ignore(s3s_buf_init(&r->up_url, 0, 16384));
    s3s_result_ignore(s3s_buf_init(&r->up_scratch, 0, 256 * 1024));
    s3s_result_ignore(s3s_buf_init(&r->resp_head, 0, 64 * 1024));
    c->req = r;
    return s3s_ok();
}

/* The response head of an error, with the XML body when the method allows. */
void s3s_req_send_error(struct s3s_req *r, int32_t err, const char *detail)
{
    struct s3s_conn *c = r->conn;
    r->error = err;
    if (r->resp_head_sent || c->closing) {
        /* Too late for a clean error: the client sees the connection drop. */
        s3s_conn_close(c);
        return;
    }
    s3s_upstream_abort(r);
    int status = s3s_error_status(err);
    r->status = status;

    struct s3s_buf body, head, res;
    s3s_result_ignore(s3s_buf_init(&body, 0, 256 * 1024));
    s3s_result_ignore(s3s_buf_init(&head, 0, 4096));
    s3s_result_ignore(s3s_buf_init(&res, 0, 8192));
    const char *resource = "/";
    if (r->target.len && s3s_is_ok(s3s_buf_append_cur(&res, r->path)) &&
        s3s_is_ok(s3s_buf_cstr(&res, &resource))) {
        /* resource points into res */
    }

    const char *extra[16];
    size_t ne = 0;
    const char *sts = NULL, *creq = NULL, *ak = NULL;
    char server_time[17], req_time[17];
    if (err == S3S_ERR_SIGNATURE_DOES_NOT_MATCH) {
        if (r->auth.access_key.len && s3s_is_ok(s3s_buf_cstr(&r->auth.access_key, &ak))) {
            extra[ne++] = "AWSAccessKeyId";
            extra[ne++] = ak;
        }
        if (r->auth.string_to_sign.len &&
            s3s_is_ok(s3s_buf_cstr(&r->auth.string_to_sign, &sts))) {
            extra[ne++] = "StringToSign";
            extra[ne++] = sts;
        }
        if (r->auth.canonical_request.len &&
            s3s_is_ok(s3s_buf_cstr(&r->auth.canonical_request, &creq))) {
            extra[ne++] = "CanonicalRequest";
            extra[ne++] = creq;
        }
    } else if (err == S3S_ERR_REQUEST_TIME_TOO_SKEWED) {
        s3s_time_format_iso8601_basic(r->auth.request_time, req_time);
        s3s_time_format_iso8601_basic(s3s_now_real(NULL), server_time);
        extra[ne++] = "RequestTime";
        extra[ne++] = req_time;
        extra[ne++] = "ServerTime";
        extra[ne++] = server_time;
        extra[ne++] = "MaxAllowedSkewMilliseconds";
        extra[ne++] = "900000";
    }
    extra[ne] = NULL;

    const char *msg = detail ? detail : r->err_detail[0] ? r->err_detail : s3s_error_message(err);
    bool xml_ok = s3s_is_ok(s3s_xml_error(&body, s3s_error_s3code(err), msg, resource, r->id, extra));
    if (!xml_ok) {
        s3s_buf_reset(&body);
    }
    bool head_only = s_method_is(r, "HEAD");
    char date[30];
    s3s_time_format_http(s3s_now_real(NULL), date);
    bool ok = s3s_is_ok(s3s_buf_appendf(
        &head,
        "HTTP/1.1 %d %s\r\nDate: %s\r\nServer: s3seal\r\nx-amz-request-id: %s\r\n"
        "Content-Type: application/xml\r\nContent-Length: %zu\r\n%s%s%s%s",
        status, s3s_http_reason(status),
        date, r->id, head_only ? (size_t)0 : body.len,
        err == S3S_ERR_INVALID_RANGE && r->resp_content_range[0] ? "Content-Range: " : "",
        err == S3S_ERR_INVALID_RANGE && r->resp_content_range[0] ? r->resp_content_range : "",
        err == S3S_ERR_INVALID_RANGE && r->resp_content_range[0] ? "\r\n" : "",
        c->close_after_response ? "Connection: close\r\n" : ""));
    /* The stages' headers (stage.h): an error answer goes out without them
     * rather than not at all. */
    size_t before = head.len;
    s3s_result hr = ok ? s3s_stages_response_head(r, &head) : s3s_ok();
    if (s3s_failed(hr)) {
        S3S_LOGW("conn", "req=%s error answer without the stages' headers: %s", r->id,
                 s3s_strerror(hr.code));
        head.len = before;
    }
    ok = ok && s3s_is_ok(s3s_buf_append_str(&head, "\r\n"));
    if (ok) {
        ok = s3s_is_ok(s_writev(c, head.ptr, head.len, body.ptr, head_only ? 0 : body.len, NULL, 0));
    }
    s3s_buf_clean_up(&body);
    s3s_buf_clean_up(&head);
    s3s_buf_clean_up(&res);
    r->resp_head_sent = true;
    r->phase = S3S_PHASE_DONE;
    if (!ok) {
        s3s_conn_close(c);
        return;
    }
    if (!c->in_parse) {
        s_conn_progress(c);
    }
}

/* Rejects a request before its body was read: the body (if any) will not be
 * read, so the connection must close after the error. */
static int s_reject(struct s3s_req *r, int32_t err, const char *detail)
{
    struct s3s_conn *c = r->conn;
    if (r->has_body || llhttp_get_type(&c->parser) != HTTP_REQUEST ||
        !llhttp_should_keep_alive(&c->parser)) {
        c->close_after_response = true;
    }
    s3s_req_send_error(r, err, detail);
    if (c->close_after_response) {
        return HPE_PAUSED;
    }
    return 0;
}

/* Answers a request a stage took before authentication (stage.h,
 * on_preauth): its status and the stage's header lines (r->resp_head), no
 * body. A body the request has is not read: the connection closes after
 * the answer. Returns an llhttp callback code, as s_reject. */
static int s_answer_preauth(struct s3s_req *r, int status)
{
    struct s3s_conn *c = r->conn;
    if (r->has_body || !llhttp_should_keep_alive(&c->parser)) {
        c->close_after_response = true;
    }
    struct s3s_buf head;
    s3s_result res = s3s_buf_init(&head, 0, 1024 + r->resp_head.len);
    char date[30];
    s3s_time_format_http(s3s_now_real(NULL), date);
    if (s3s_is_ok(res)) {
        res = s3s_buf_appendf(&head,
                              "HTTP/1.1 %d %s\r\nDate: %s\r\nServer: s3seal\r\n"
                              "x-amz-request-id: %s\r\n",
                              status, s3s_http_reason(status), date, r->id);
    }
    if (s3s_is_ok(res)) {
        res = s3s_buf_append_cur(&head, s3s_buf_cur(&r->resp_head));
    }
    if (s3s_is_ok(res)) {
        res = s3s_buf_appendf(&head, "Content-Length: 0\r\n%s\r\n",
                              c->close_after_response ? "Connection: close\r\n" : "");
    }
    if (s3s_failed(res)) {
        s3s_buf_clean_up(&head);
        s3s_buf_reset(&r->resp_head);
        return s_reject(r, res.code, NULL);
    }
    res = s_writev(c, head.ptr, head.len, NULL, 0, NULL, 0);
    s3s_buf_clean_up(&head);
    r->status = status;
    r->resp_head_sent = true;
    r->phase = S3S_PHASE_DONE;
    if (s3s_failed(res)) {
        s3s_conn_close(c);
    }
    return c->close_after_response ? HPE_PAUSED : 0;
}

/* ----------------------------------------------------------- body pipeline */

static void s_body_fail(struct s3s_req *r, int32_t err)
{
    if (!r->body_failed) {
        r->body_failed = true;
        r->body_error = err;
    }
}

/* The flexible checksum, against the header value or the trailer. */
static void s_checksum_verify(struct s3s_req *r)
{
    if (r->checksum_alg == S3S_CHECKSUM_NONE) {
        return;
    }
    struct s3s_cur want = s3s_cur_from_str(r->checksum_want);
    if (r->checksum_in_trailer &&
        !s3s_chunked_trailer(r->chunked, s3s_checksum_header(r->checksum_alg), &want)) {
        s_body_fail(r, S3S_ERR_INVALID_CHUNK);
        return;
    }
    struct s3s_buf got;
    s3s_result_ignore(s3s_buf_init(&got, 0, 128));
    if (s3s_failed(s3s_checksum_final(&r->dg.checksum, &got)) ||
        !s3s_ct_eq(got.ptr, got.len, want.ptr, want.len)) {
        s_body_fail(r, S3S_ERR_CHECKSUM_MISMATCH);
    } else if (got.len < sizeof(r->checksum_want)) {
        memcpy(r->checksum_want, got.ptr, got.len);
        r->checksum_want[got.len] = '\0';
        r->checksum_verified = true;
    }
    s3s_buf_clean_up(&got);
}

static void s_body_verify(struct s3s_req *r)
{
    uint8_t md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (r->hasher) {
        if (!s3s_hasher_idle(r->hasher)) {
            return; /* s_hash_progress comes back here */
        }
        s3s_result res = s3s_hasher_finish(r->hasher, &r->dg);
        r->hasher = NULL;
        if (s3s_failed(res)) {
            s_body_fail(r, S3S_ERR_INTERNAL);
        }
    }
    if (r->chunked && !r->body_failed && !s3s_chunked_done(r->chunked)) {
        s_body_fail(r, S3S_ERR_INCOMPLETE_BODY);
    }
    if (!r->body_failed && r->body_decoded != r->content_length) {
        s_body_fail(r, S3S_ERR_INCOMPLETE_BODY);
    }
    if (!r->body_failed) {
        s_checksum_verify(r);
    }
    if (!r->body_failed && r->dg.md5) {
        if (EVP_DigestFinal_ex(r->dg.md5, md, &n) != 1 || !s3s_ct_eq(md, n, r->want_md5, 16)) {
            s_body_fail(r, S3S_ERR_BAD_DIGEST);
        }
        memcpy(r->plain_md5_val, r->want_md5, 16);
        r->have_plain_md5 = r->enc != NULL && !r->body_failed;
    }
    if (!r->body_failed && r->dg.plain_md5) {
        r->have_plain_md5 = EVP_DigestFinal_ex(r->dg.plain_md5, r->plain_md5_val, &n) == 1;
    }
    if (!r->body_failed && r->dg.sha256) {
        if (EVP_DigestFinal_ex(r->dg.sha256, md, &n) != 1 ||
            !s3s_ct_eq(md, n, r->auth.payload_sha256, 32)) {
            s_body_fail(r, S3S_ERR_CONTENT_SHA256_MISMATCH);
        }
    }
    /* The final (possibly short or empty) segment, once all is verified. */
    if (!r->body_failed && r->enc && s3s_failed(s3s_sse_enc_finish(r->enc, &r->upload))) {
        s_body_fail(r, S3S_ERR_INTERNAL);
    }
    if (!r->body_failed) {
        /* The stages' word on the whole body (stage.h, on_body); one that
         * waits decides later (s3s_req_body_checked). */
        bool wait = false;
        s3s_result sr = s3s_stages_body(r, &wait);
        if (s3s_failed(sr)) {
            s_body_fail(r, sr.code);
        } else if (wait) {
            return;
        }
    }
    r->body_verified = !r->body_failed;
}

/* A hashing job is done: reading may go on, and the body's verification may
 * have been waiting for it. */
static void s_hash_progress(void *ctx)
{
    struct s3s_req *r = ctx;
    struct s3s_conn *c = r->conn;
    /* The body is in and its verification waited (it clears r->hasher). */
    if (r->body_complete && s3s_hasher_idle(r->hasher)) {
        s_body_verify(r);
        s3s_upstream_kick_send(r);
    }
    s_conn_progress(c);
}

/* What encrypting or decrypting a piece may add to it: a segment held over
 * from earlier pieces, and each segment's tag and nonce. */
#define S_SEGMENT_SLACK (2 * ((size_t)S3S_SSE_SEGMENT_SIZE + 64))

/* Queues payload bytes for the backend (encrypted if the request is),
 * keeping the buffer compact so it stays bounded. */
static s3s_result s_queue(struct s3s_req *r, struct s3s_cur in)
{
    if (r->upload_off > 0 && r->upload.len + in.len + S_SEGMENT_SLACK > r->upload.max) {
        memmove(r->upload.ptr, r->upload.ptr + r->upload_off, r->upload.len - r->upload_off);
        r->upload.len -= r->upload_off;
        r->upload_off = 0;
    }
    if (r->enc) {
        return s3s_sse_enc_push(r->enc, in, &r->upload);
    }
    return s3s_buf_append_cur(&r->upload, in);
}

/* Payload bytes (after aws-chunked decoding, if any): hashed, checked, and
 * queued for the backend. */
static s3s_result s_body_data(void *ctx, const uint8_t *at, size_t len)
{
    struct s3s_req *r = ctx;
    struct s3s_conn *c = r->conn;
    S3S_ENSURE(len <= r->content_length - r->body_decoded, S3S_ERR_INCOMPLETE_BODY);
    r->body_decoded += len;
    if (r->hasher) {
        S3S_GUARD(s3s_hasher_push(r->hasher, at, len)); /* s_update_reading pauses */
    }
    if (r->body_copy.max) {
        S3S_GUARD(s3s_buf_append(&r->body_copy, at, len)); /* sized to the whole body */
    }
    S3S_GUARD(s_queue(r, s3s_cur_from(at, len)));
    if (r->upload.len - r->upload_off >= S3S_HIGH_WATER) {
        c->read_paused_backpressure = true;
    }
    return s3s_ok();
}

s3s_result s3s_req_queue_upload(struct s3s_req *r, struct s3s_cur in)
{
    S3S_ENSURE(in.len <= r->content_length - r->body_decoded, S3S_ERR_INCOMPLETE_BODY);
    r->body_decoded += in.len;
    s_timer_arm(r->conn);
    return s_queue(r, in);
}

void s3s_req_body_checked(struct s3s_req *r, int32_t err)
{
    if (r->body_verified || r->body_failed) {
        return;
    }
    if (err != S3S_OK) {
        s_body_fail(r, err);
    } else {
        r->body_verified = true;
    }
    s3s_upstream_kick_send(r);
}

s3s_result s3s_req_keep_body(struct s3s_req *r, size_t max, enum s3s_error too_big)
{
    /* The decoded length is known from the head (aws-chunked included). */
    S3S_ENSURE(r->content_length <= max, too_big);
    s3s_buf_clean_up(&r->body_copy);
    return s3s_buf_init(&r->body_copy, 0, r->content_length ? (size_t)r->content_length : 1);
}

bool s3s_req_upload_has_room(const struct s3s_req *r, size_t n)
{
    /* Decrypting n bytes may release a segment held over, encrypting them
     * may add the slack. */
    size_t slack = (size_t)S3S_SSE_SEGMENT_SIZE + S_SEGMENT_SLACK;
    return r->upload.len - r->upload_off + n + slack <= r->upload.max;
}

static int s_on_body(llhttp_t *p, const char *at, size_t len)
{
    struct s3s_conn *c = p->data;
    struct s3s_req *r = c->req;
    if (!r || r->phase == S3S_PHASE_DONE || r->body_failed) {
        return 0; /* a rejected request's body is discarded */
    }
    r->body_received += len;
    s3s_result res = r->chunked ? s3s_chunked_push(r->chunked, s3s_cur_from(at, len))
                                : s_body_data(r, (const uint8_t *)at, len);
    if (s3s_failed(res)) {
        /* The upload is aborted before its last byte: nothing lands. */
        s_body_fail(r, res.code);
        c->close_after_response = true;
        s3s_req_send_error(r, res.code, NULL);
        return HPE_PAUSED;
    }
    s_timer_arm(c);
    s3s_upstream_kick_send(r);
    return 0;
}

void s3s_req_upload_drained(struct s3s_req *r)
{
    struct s3s_conn *c = r->conn;
    if (r->upload.len - r->upload_off >= S3S_LOW_WATER) {
        return;
    }
    if (c->read_paused_backpressure) {
        c->read_paused_backpressure = false;
        s_update_reading(c);
    }
    s3s_upstream_resume_source(r);
}

void s3s_req_write_drained(struct s3s_req *r) { s3s_upstream_kick_recv(r); }

/* ---------------------------------------------------------- llhttp hooks */

static int s_on_message_begin(llhttp_t *p)
{
    struct s3s_conn *c = p->data;
    s3s_http_head_begin(&c->head);
    c->body_window_ns = 0;
    c->body_timer_window = false;
    if (s3s_failed(s_req_new(c))) {
        return -1;
    }
    c->req->phase = S3S_PHASE_HEADERS;
    s_timer_arm(c);
    return 0;
}

/* The head is collected under the limits by http_head.c. */
static int s_on_url(llhttp_t *p, const char *at, size_t len)
{
    return s3s_http_head_on_url(&((struct s3s_conn *)p->data)->head, at, len);
}

static int s_on_header_field(llhttp_t *p, const char *at, size_t len)
{
    return s3s_http_head_on_field(&((struct s3s_conn *)p->data)->head, at, len);
}

static int s_on_header_value(llhttp_t *p, const char *at, size_t len)
{
    return s3s_http_head_on_value(&((struct s3s_conn *)p->data)->head, at, len);
}

static bool s_lookup(void *ctx, struct s3s_cur access_key, const struct s3s_secret **secret,
                     const char **principal)
{
    const struct s3s_config *cfg = ctx;
    const struct s3s_config_credential *cred = s3s_config_find_credential(cfg, access_key);
    if (!cred) {
        return false;
    }
    *secret = &cred->secret_key;
    *principal = cred->principal;
    return true;
}

/* Builds the request view over the header buffer (which no longer moves). */
static s3s_result s_req_build_view(struct s3s_conn *c, struct s3s_req *r)
{
    const struct s3s_http_head *h = &c->head;
    r->method = s3s_cur_from_str(llhttp_method_name((llhttp_method_t)c->parser.method));
    r->target = s3s_http_head_target(h);
    struct s3s_cur t = r->target;
    /* S3 requests use origin-form targets only. */
    S3S_ENSURE(t.len > 0 && t.ptr[0] == '/', S3S_ERR_INVALID_URI);
    long q = s3s_cur_find(t, '?');
    if (q >= 0) {
        r->path = s3s_cur_from(t.ptr, (size_t)q);
        r->query = s3s_cur_from(t.ptr + q + 1, t.len - (size_t)q - 1);
    } else {
        r->path = t;
        r->query = s3s_cur_from(NULL, 0);
    }
    if (h->n_hdrs) {
        r->headers = s3s_calloc(h->n_hdrs, sizeof(*r->headers));
        S3S_ENSURE(r->headers != NULL, S3S_ERR_NOMEM);
    }
    for (size_t i = 0; i < h->n_hdrs; i++) {
        r->headers[i].name = s3s_http_head_name(h, i);
        r->headers[i].value = s3s_http_head_value(h, i);
    }
    r->n_headers = h->n_hdrs;
    return s3s_ok();
}

/* Does x-amz-content-sha256 announce a streaming (aws-chunked) payload? */
static bool s_streaming_sha256(const struct s3s_req *r)
{
    struct s3s_cur v;
    return s3s_req_header(r, "x-amz-content-sha256", &v) &&
           s3s_cur_starts_with_ignore_case(s3s_cur_trim(v), "STREAMING-");
}

/* Streaming uploads (aws-chunked) and flexible checksums: sets up the
 * decoder with the chain's signing key and seed, and the checksum to verify
 * from x-amz-checksum-* or x-amz-trailer. */
static s3s_result s_streaming_setup(struct s3s_req *r, bool has_decoded, bool aws_chunked)
{
    const struct s3s_config *cfg = r->cfg;
    enum s3s_sigv4_payload mode = r->auth.payload;
    bool streaming = mode == S3S_SIGV4_PAYLOAD_STREAMING ||
                     mode == S3S_SIGV4_PAYLOAD_STREAMING_TRAILER ||
                     mode == S3S_SIGV4_PAYLOAD_STREAMING_UNSIGNED_TRAILER;
    if (streaming) {
        /* AWS: a streaming payload needs its decoded length. */
        S3S_ENSURE(has_decoded, S3S_ERR_MISSING_CONTENT_LENGTH);
        struct s3s_chunked_options o;
        memset(&o, 0, sizeof(o));
        o.mode = mode;
        o.request_time = r->auth.request_time;
        o.scope_date = r->auth.scope_date;
        o.region = cfg->region;
        o.service = "s3";
        o.max_chunk_size = 64ull * 1024 * 1024;
        memcpy(o.seed_signature, r->auth.seed_signature, 32);
        if (mode != S3S_SIGV4_PAYLOAD_STREAMING_UNSIGNED_TRAILER) {
            const struct s3s_config_credential *cred =
                s3s_config_find_credential(cfg, s3s_buf_cur(&r->auth.access_key));
            S3S_ENSURE(cred != NULL, S3S_ERR_INVALID_ACCESS_KEY_ID);
            S3S_GUARD(s3s_sigv4_signing_key(&cred->secret_key, r->auth.scope_date, cfg->region,
                                            "s3", o.signing_key));
        }
        s3s_result res = s3s_chunked_new(&o, s_body_data, r, &r->chunked);
        OPENSSL_cleanse(o.signing_key, sizeof(o.signing_key));
        S3S_GUARD(res);
    } else if (aws_chunked && has_decoded) {
        /* aws-chunked framing needs a STREAMING-* x-amz-content-sha256;
         * without a decoded length either, the token names no framing and
         * the body is taken as sent (as S3 does). */
        S3S_BAIL(S3S_ERR_INVALID_CONTENT_SHA256);
    }

    /* A checksum header, or a checksum announced as a trailer. */
    struct s3s_cur v;
    if (s3s_req_header(r, "x-amz-trailer", &v)) {
        S3S_ENSURE(r->chunked && mode != S3S_SIGV4_PAYLOAD_STREAMING, S3S_ERR_INVALID_CHUNK);
        enum s3s_checksum_alg alg = s3s_checksum_alg_from_header(v);
        S3S_ENSURE(alg != S3S_CHECKSUM_NONE, S3S_ERR_INVALID_CHECKSUM);
        S3S_GUARD(s3s_checksum_init(&r->dg.checksum, alg));
        r->checksum_alg = alg;
        r->checksum_in_trailer = true;
        return s3s_ok();
    }
    for (size_t i = 0; i < r->n_headers; i++) {
        enum s3s_checksum_alg alg = s3s_checksum_alg_from_header(r->headers[i].name);
        if (alg == S3S_CHECKSUM_NONE) {
            continue;
        }
        S3S_ENSURE(r->checksum_alg == S3S_CHECKSUM_NONE, S3S_ERR_INVALID_CHECKSUM);
        struct s3s_cur want = s3s_cur_trim(r->headers[i].value);
        S3S_ENSURE(want.len > 0 && want.len < sizeof(r->checksum_want), S3S_ERR_INVALID_CHECKSUM);
        memcpy(r->checksum_want, want.ptr, want.len);
        r->checksum_want[want.len] = '\0';
        S3S_GUARD(s3s_checksum_init(&r->dg.checksum, alg));
        r->checksum_alg = alg;
    }
    return s3s_ok();
}

static int s_headers_accepted(struct s3s_req *r, bool has_decoded, bool aws_chunked);
static int s_head_stages(struct s3s_req *r);
/* s_head_stages: a stage waits; the parser stays paused. */
#define S_STAGE_WAITING 1000

/* Header names with '_' are refused, as nginx's default drops them: a
 * backend reads x_amz_copy_source as x-amz-copy-source, so s3seal's rules
 * on header names (every x-amz-* header signed, its own metadata names
 * kept from clients) would be compared against names the backend never
 * sees. Then the operation, from the decoded query. */
/* Headers s3seal reads one value of (the first), where a backend would
 * join repeated ones into a list and read something else: the x-amz-*
 * request headers but user metadata, and the few standard ones s3seal
 * decides on. */
static bool s_single_header(struct s3s_cur name)
{
    static const char *const once[] = {"host", "authorization", "range", "content-md5",
                                       "content-encoding", "if-match", "if-none-match",
                                       "if-range", NULL};
    if (s3s_cur_starts_with_ignore_case(name, "x-amz-")) {
        return !s3s_cur_starts_with_ignore_case(name, "x-amz-meta-");
    }
    for (size_t i = 0; once[i]; i++) {
        if (s3s_cur_eq_str_ignore_case(name, once[i])) {
            return true;
        }
    }
    return false;
}

static s3s_result s_req_classify(struct s3s_req *r, const char **detail)
{
    for (size_t i = 0; i < r->n_headers; i++) {
        struct s3s_cur name = r->headers[i].name;
        if (memchr(name.ptr, '_', name.len)) {
            *detail = "Header names with '_' are not accepted.";
            S3S_BAIL(S3S_ERR_INVALID_ARG);
        }
        if (!s_single_header(name)) {
            continue;
        }
        for (size_t j = i + 1; j < r->n_headers; j++) {
            if (s3s_cur_eq_ignore_case(name, r->headers[j].name)) {
                *detail = "A header that must appear once is given more than once.";
                S3S_BAIL(S3S_ERR_INVALID_ARG);
            }
        }
    }
    struct s3s_s3_op_input in;
    s3s_s3_op_input_of(r, &in);
    return s3s_s3_op_classify(&in, &r->op, detail);
}

/* Writes s3seal does not serve. A browser-form upload (PostObject) carries
 * the object and its metadata in a form s3seal does not encrypt or filter.
 * A write that s3seal does not know may store object data: a bucket that
 * encrypts refuses it, and so does any bucket when the request asks for
 * server-side encryption, rather than relay plaintext to the backend. */
static s3s_result s_op_allowed(struct s3s_req *r, const char **detail)
{
    if (r->op == S3S_OP_POST_OBJECT) {
        *detail = "s3seal does not accept browser-form uploads (POST Object); use PutObject "
                  "or a presigned PUT URL.";
        S3S_BAIL(S3S_ERR_NOT_IMPLEMENTED);
    }
    if (r->op != S3S_OP_UNKNOWN_WRITE) {
        return s3s_ok();
    }
    struct s3s_bucket_defaults d;
    s3s_bucket_default(r->conn->w, s3s_buf_cur(&r->bucket), &d);
    bool asks_sse = false;
    for (size_t i = 0; i < r->n_headers; i++) {
        asks_sse |= s3s_cur_starts_with_ignore_case(r->headers[i].name,
                                                    "x-amz-server-side-encryption");
    }
    if (d.mode != S3S_SSE_NONE || d.require || asks_sse) {
        *detail = "s3seal does not know this write and cannot tell whether it stores object "
                  "data; it is refused where objects are encrypted.";
        S3S_BAIL(S3S_ERR_NOT_IMPLEMENTED);
    }
    return s3s_ok();
}

static int s_on_headers_complete(llhttp_t *p)
{
    struct s3s_conn *c = p->data;
    struct s3s_req *r = c->req;
    if (!r) {
        return -1;
    }
    const struct s3s_config *cfg = r->cfg;
    s3s_result res = s_req_build_view(c, r);
    if (s3s_failed(res)) {
        return s_reject(r, res.code, NULL);
    }
    struct s3s_cur v;

    /* Body framing. llhttp (strict) already refused Content-Length together
     * with Transfer-Encoding and malformed lengths. */
    bool chunked = (p->flags & F_CHUNKED) != 0;
    if (p->flags & F_CONTENT_LENGTH) {
        r->content_length = p->content_length;
        r->has_body = r->content_length > 0;
    }
    struct s3s_cur decoded;
    bool has_decoded = s3s_req_header(r, "x-amz-decoded-content-length", &decoded);
    bool aws_chunked = s3s_req_header(r, "content-encoding", &v) && s3s_cur_list_has(v, "aws-chunked");
    if (chunked) {
        r->has_body = true;
        /* S3 needs the object's length up front: a chunked upload must say
         * it in x-amz-decoded-content-length. */
        if (!has_decoded) {
            return s_reject(r, S3S_ERR_MISSING_CONTENT_LENGTH, NULL);
        }
    }
    if (has_decoded) {
        if (s3s_failed(s3s_parse_u64(decoded, UINT64_MAX / 2, &r->content_length))) {
            return s_reject(r, S3S_ERR_INVALID_ARG, "x-amz-decoded-content-length is invalid.");
        }
    } else if (aws_chunked && s_streaming_sha256(r)) {
        return s_reject(r, S3S_ERR_MISSING_CONTENT_LENGTH,
                        "aws-chunked uploads must send x-amz-decoded-content-length.");
    }
    if (r->content_length > cfg->limits.max_body_bytes) {
        return s_reject(r, S3S_ERR_ENTITY_TOO_LARGE, NULL);
    }

    if (!llhttp_should_keep_alive(p)) {
        c->close_after_response = true;
    }

    res = s3s_s3_route(cfg, r);
    if (s3s_failed(res)) {
        return s_reject(r, res.code, NULL);
    }
    /* Every decision below is made on the request as the backend will read
     * it: header names without '_' (which backends map to '-'), and the
     * operation from the decoded query (s3_op.h). */
    const char *detail = NULL;
    res = s_req_classify(r, &detail);
    if (s3s_failed(res)) {
        return s_reject(r, res.code, detail);
    }

    /* What S3 answers without authentication (a CORS preflight) is
     * answered here by a stage (stage.h, on_preauth), or refused; either
     * way it goes no further. */
    int pre_status = 0;
    bool pre_taken = false;
    res = s3s_stages_preauth(r, &pre_status, &pre_taken);
    if (s3s_failed(res)) {
        return s_reject(r, res.code, NULL);
    }
    if (pre_taken) {
        return s_answer_preauth(r, pre_status);
    }

    /* Authentication: nothing unauthenticated reaches the backend. */
    struct s3s_sigv4_request view = {r->method, r->path, r->query, r->headers, r->n_headers};
    if (!s3s_sigv4_has_auth(&view)) {
        return s_reject(r, S3S_ERR_ACCESS_DENIED, NULL);
    }
    struct s3s_sigv4_verify_options vo = {
        .lookup = s_lookup,
        .lookup_ctx = (void *)cfg,
        .region = cfg->region,
        .service = "s3",
        .now = s3s_now_real,
        .now_ctx = NULL,
        .max_skew_s = S3S_SIGV4_MAX_SKEW,
    };
    bool v2 = s3s_sigv2_present(&view);
    if (v2 && !cfg->sigv2) {
        res = s3s_err(S3S_ERR_UNSUPPORTED_AUTH);
    } else if (v2) {
        res = s3s_sigv2_verify(&view, r->virtual_host ? s3s_buf_cur(&r->bucket) : s3s_cur_from(NULL, 0),
                               &vo, &r->auth);
    } else {
        res = s3s_sigv4_verify(&view, &vo, &r->auth);
    }
    if (r->auth.access_key.len && r->auth.access_key.len < sizeof(r->access_key)) {
        memcpy(r->access_key, r->auth.access_key.ptr, r->auth.access_key.len);
        r->access_key[r->auth.access_key.len] = '\0';
    }
    if (s3s_failed(res)) {
        return s_reject(r, res.code, r->auth.detail);
    }
    /* AWS: SSE-KMS needs Signature Version 4. */
    if (v2 && s3s_req_header(r, "x-amz-server-side-encryption", &v) &&
        s3s_cur_eq_str(v, "aws:kms")) {
        return s_reject(r, S3S_ERR_KMS_NEEDS_SIGV4, NULL);
    }
    res = s_op_allowed(r, &detail);
    if (s3s_failed(res)) {
        return s_reject(r, res.code, detail);
    }
    r->has_decoded_length = has_decoded;
    r->aws_chunked = aws_chunked;
    r->up_length = r->content_length;
    int rc = s_head_stages(r);
    return rc == S_STAGE_WAITING ? HPE_PAUSED : rc;
}

/* The stages' on_head hooks (stage.h), from the one after the last that
 * waited: a refusal is answered; a stage that waits leaves the parser
 * paused (S_STAGE_WAITING) until it calls s3s_req_headers_resume; then the
 * body pipeline and the backend exchange (s_headers_accepted). Returns an
 * llhttp callback code, or S_STAGE_WAITING. */
static int s_head_stages(struct s3s_req *r)
{
    bool wait = false;
    s3s_result res = r->accept_error ? s3s_err(r->accept_error) : s3s_stages_head(r, &wait);
    if (s3s_failed(res)) {
        return s_reject(r, res.code, NULL);
    }
    if (wait) {
        return S_STAGE_WAITING;
    }
    return s_headers_accepted(r, r->has_decoded_length, r->aws_chunked);
}

/* The rest of s_on_headers_complete: the body pipeline and the backend
 * exchange. Returns an llhttp callback code. */
static int s_headers_accepted(struct s3s_req *r, bool has_decoded, bool aws_chunked)
{
    struct s3s_conn *c = r->conn;
    const struct s3s_config *cfg = r->cfg;
    struct s3s_cur v;
    s3s_result res;
    r->checksum_mode = s3s_req_header(r, "x-amz-checksum-mode", &v) &&
                       s3s_cur_eq_str_ignore_case(v, "ENABLED");
    res = s_streaming_setup(r, has_decoded, aws_chunked);
    if (s3s_failed(res)) {
        return s_reject(r, res.code, r->auth.detail);
    }

    /* Payload checks, computed while the body streams through. */
    if (r->auth.payload == S3S_SIGV4_PAYLOAD_SHA256) {
        r->dg.sha256 = EVP_MD_CTX_new();
        if (!r->dg.sha256 || EVP_DigestInit_ex(r->dg.sha256, EVP_sha256(), NULL) != 1) {
            return s_reject(r, S3S_ERR_NOMEM, NULL);
        }
    }
    if (s3s_req_header(r, "content-md5", &v)) {
        struct s3s_buf md5;
        s3s_result_ignore(s3s_buf_init(&md5, 0, 64));
        bool ok = s3s_is_ok(s3s_base64_decode(v, &md5)) && md5.len == 16;
        if (ok) {
            memcpy(r->want_md5, md5.ptr, 16);
        }
        s3s_buf_clean_up(&md5);
        if (!ok) {
            return s_reject(r, S3S_ERR_INVALID_DIGEST, NULL);
        }
        r->dg.md5 = EVP_MD_CTX_new();
        if (!r->dg.md5 || EVP_DigestInit_ex(r->dg.md5, EVP_md5(), NULL) != 1) {
            return s_reject(r, S3S_ERR_NOMEM, NULL);
        }
    }
    if (r->enc && !r->dg.md5 && cfg->plaintext_etag && r->sse_want.mode != S3S_SSE_KMS &&
        s3s_s3_is_put_object(r)) {
        /* The plaintext's MD5 becomes the object's ETag (sse_get.c), as S3
         * gives SSE-S3 objects. SSE-KMS objects' ETags are no MD5 of their
         * data in S3, and here they are the backend's, the same in every
         * answer. */
        r->dg.plain_md5 = EVP_MD_CTX_new();
        if (!r->dg.plain_md5 || EVP_DigestInit_ex(r->dg.plain_md5, EVP_md5(), NULL) != 1) {
            return s_reject(r, S3S_ERR_NOMEM, NULL);
        }
    }
    if (r->has_body && s3s_body_digests_any(&r->dg)) {
        /* Large bodies are hashed beside the loop (hasher.h). */
        bool offload = r->content_length >= S3S_HASHER_OFFLOAD_MIN;
        res = s3s_hasher_new(&c->w->loop, offload, &r->dg, s_hash_progress, r, &r->hasher);
        if (s3s_failed(res)) {
            return s_reject(r, res.code, NULL);
        }
    }
    if (!r->has_body) {
        /* An empty body: verify now (the signed hash must be that of "",
         * a checksum that of no bytes). */
        r->body_complete = true;
        s_body_verify(r);
        if (r->body_failed) {
            return s_reject(r, r->body_error, NULL);
        }
    }

    /* A stage may serve the request another way (stage.h); else the
     * request's own backend transfer. */
    bool taken = false;
    res = s3s_stages_start(r, &taken);
    if (s3s_is_ok(res) && !taken) {
        res = s3s_upstream_start(r);
    }
    if (s3s_failed(res)) {
        return s_reject(r, res.code, NULL);
    }
    r->phase = r->has_body ? S3S_PHASE_BODY : S3S_PHASE_WAIT;
    if (r->has_body && s3s_req_header(r, "expect", &v) &&
        s3s_cur_eq_str_ignore_case(v, "100-continue")) {
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        if (s3s_failed(s3s_conn_write(c, cont, sizeof(cont) - 1))) {
            return -1;
        }
    }
    s_timer_arm(c);
    return 0;
}

void s3s_req_headers_resume(struct s3s_req *r)
{
    struct s3s_conn *c = r->conn;
    if (c->closing) {
        return;
    }
    /* As inside the parser's callback: an error answer leaves teardown to
     * the code below. */
    c->in_parse = true;
    int rc = s_head_stages(r);
    c->in_parse = false;
    if (c->closing || rc == S_STAGE_WAITING) {
        return; /* a later stage waits in turn */
    }
    if (rc == -1) {
        s3s_conn_close(c);
        return;
    }
    if (rc == HPE_PAUSED) {
        /* Refused, and the connection closes after the answer: the body is
         * not read. */
        s_conn_progress(c);
        return;
    }
    /* The parser goes on after the headers, with the bytes read past them
     * (none yet, perhaps: a request without a body still completes). */
    llhttp_resume(&c->parser);
    c->parser_paused = false;
    struct s3s_buf pend = c->pending;
    s3s_result_ignore(s3s_buf_init(&c->pending, 0, pend.max)); /* no allocation */
    s_parse(c, pend.len ? (const char *)pend.ptr : "", pend.len);
    s3s_buf_clean_up(&pend);
    s_conn_progress(c);
}

static int s_on_message_complete(llhttp_t *p)
{
    struct s3s_conn *c = p->data;
    struct s3s_req *r = c->req;
    if (r) {
        r->msg_complete = true;
        if (r->phase == S3S_PHASE_BODY) {
            r->body_complete = true;
            s_body_verify(r);
            r->phase = S3S_PHASE_WAIT;
            s_timer_arm(c);
            s3s_upstream_kick_send(r);
        }
    }
    /* One request at a time: later pipelined bytes wait for this response. */
    return HPE_PAUSED;
}

/* The head's own checks (http_head.c) come before anything acts on it. */
static int s_on_head_complete(llhttp_t *p)
{
    struct s3s_conn *c = p->data;
    if (s3s_http_head_complete(&c->head, p) != 0) {
        return -1; /* s_protocol_error answers 400 */
    }
    return s_on_headers_complete(p);
}

static void s_settings_init(void)
{
    llhttp_settings_init(&s_settings);
    s_settings.on_message_begin = s_on_message_begin;
    s_settings.on_url = s_on_url;
    s_settings.on_header_field = s_on_header_field;
    s_settings.on_header_value = s_on_header_value;
    s_settings.on_headers_complete = s_on_head_complete;
    s_settings.on_body = s_on_body;
    s_settings.on_message_complete = s_on_message_complete;
}

/* ------------------------------------------------------------ timeouts */

/* The end of a body rate window: did the client send at least
 * limits.min_body_rate bytes a second over it? A window in which s3seal did
 * not read (the backend or the hasher behind) does not count against the
 * client: a new one starts. */
static bool s_body_rate_ok(struct s3s_conn *c, const struct s3s_req *r)
{
    const struct s3s_config *cfg = c->w->cfg;
    uint64_t now = s3s_now_ns();
    bool ok = true;
    if (c->reading && c->body_window_ns) {
        uint64_t ms = (now - c->body_window_ns) / 1000000;
        ok = (r->body_received - c->body_window_bytes) * 1000 >= cfg->limits.min_body_rate * ms;
    }
    c->body_window_ns = now;
    c->body_window_bytes = r->body_received;
    return ok;
}

static void s_on_timer(uv_timer_t *t)
{
    struct s3s_conn *c = t->data;
    struct s3s_req *r = c->req;
    if (c->closing) {
        return;
    }
    if (!r) {
        /* Idle keep-alive connection, or a refused one's linger is over. */
        s3s_conn_close(c);
        return;
    }
    if (r->keystore_waits && (r->phase == S3S_PHASE_HEADERS || r->phase == S3S_PHASE_WAIT)) {
        s_timer_arm(c); /* the keystore answers within its own bounds */
        return;
    }
    switch (r->phase) {
    case S3S_PHASE_BODY:
        if (c->body_timer_window && s_body_rate_ok(c, r)) {
            s_timer_arm(c); /* a new window */
            break;
        }
        /* too slow, or idle */
        c->close_after_response = true;
        s3s_req_send_error(r, S3S_ERR_REQUEST_TIMEOUT, NULL);
        break;
    case S3S_PHASE_HEADERS:
        c->close_after_response = true;
        s3s_req_send_error(r, S3S_ERR_REQUEST_TIMEOUT, NULL);
        break;
    case S3S_PHASE_WAIT:
        c->close_after_response = true;
        s3s_req_send_error(r, S3S_ERR_GATEWAY_TIMEOUT, NULL);
        break;
    case S3S_PHASE_RESPOND:
    case S3S_PHASE_DONE:
    default:
        s3s_conn_close(c);
        break;
    }
}

static void s_timer_arm(struct s3s_conn *c)
{
    const struct s3s_config *cfg = c->w->cfg;
    struct s3s_req *r = c->req;
    uint64_t ms = cfg->limits.idle_timeout_ms;
    if (!r && c->tls && !s3s_tls_conn_ready(c->tls)) {
        /* The TLS handshake: one deadline from the accept, as for a
         * request's headers. */
        if (uv_is_active((uv_handle_t *)&c->timer)) {
            return;
        }
        ms = cfg->limits.header_timeout_ms;
    }
    if (r) {
        switch (r->phase) {
        case S3S_PHASE_HEADERS:
            /* Armed once at message begin: a slow header sender gets one
             * deadline, however it trickles bytes. */
            ms = cfg->limits.header_timeout_ms;
            break;
        case S3S_PHASE_WAIT:
            ms = cfg->limits.backend_timeout_ms;
            break;
        case S3S_PHASE_BODY:
            /* Idle, or the end of the rate window if that comes first. */
            if (cfg->limits.min_body_rate) {
                uint64_t now = s3s_now_ns();
                if (!c->body_window_ns) {
                    c->body_window_ns = now;
                    c->body_window_bytes = r->body_received;
                }
                uint64_t end = c->body_window_ns + cfg->limits.body_rate_window_ms * 1000000;
                uint64_t left = end > now ? (end - now) / 1000000 : 0;
                c->body_timer_window = left < ms;
                if (left < ms) {
                    ms = left;
                }
            }
            break;
        case S3S_PHASE_RESPOND:
        case S3S_PHASE_DONE:
        default:
            break;
        }
    }
    uv_timer_start(&c->timer, s_on_timer, ms, 0);
}

/* ----------------------------------------------------------- connection */

/* HTTPS: what is read waits in the connection's TLS input until it is
 * decrypted (that buffer is given back when the connection is idle). */
#define S_TLS_READ S3S_READ_BUF_SIZE

static void s_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    const struct s3s_conn *c = h->data;
    *buf = uv_buf_init(tl_read_buf, c->tls ? S_TLS_READ : sizeof(tl_read_buf));
}

static void s_protocol_error(struct s3s_conn *c, llhttp_errno_t err)
{
    c->close_after_response = true;
    int32_t code = c->head.error ? c->head.error : S3S_ERR_BAD_REQUEST;
    const char *reason = llhttp_get_error_reason(&c->parser);
    S3S_LOGD("conn", "remote=%s http parse error=%s reason=%s", c->remote, llhttp_errno_name(err),
             reason ? reason : "-");
    if (!c->req && s3s_failed(s_req_new(c))) {
        s3s_conn_close(c);
        return;
    }
    if (c->req->resp_head_sent) {
        s3s_conn_close(c);
        return;
    }
    s3s_req_send_error(c->req, code, NULL);
}

static void s_parse(struct s3s_conn *c, const char *data, size_t len)
{
    c->in_parse = true;
    llhttp_errno_t err = s3s_http_head_execute(&c->head, &c->parser, data, len);
    c->in_parse = false;
    if (c->closing) {
        return;
    }
    if (err == HPE_PAUSED) {
        c->parser_paused = true;
        const char *pos = llhttp_get_error_pos(&c->parser);
        size_t used = pos ? (size_t)(pos - data) : len;
        if (used < len && !c->close_after_response) {
            if (s3s_failed(s3s_buf_append(&c->pending, data + used, len - used))) {
                c->close_after_response = true;
            }
        }
    } else if (err != HPE_OK) {
        s_protocol_error(c, err);
    }
}

/* The client's input ended (nread: UV_EOF, an error; or close_notify). */
static void s_read_end(struct s3s_conn *c, ssize_t nread)
{
    if (nread != UV_EOF) {
        S3S_LOGD("conn", "remote=%s read error=%s", c->remote, uv_strerror((int)nread));
    }
    /* The client went away (or half-closed): an unfinished upload is
     * aborted upstream so no partial object lands. */
    if (c->req && c->req->phase != S3S_PHASE_DONE && nread == UV_EOF &&
        c->req->phase != S3S_PHASE_HEADERS && c->req->phase != S3S_PHASE_BODY) {
        /* Half-close after a complete request: finish writing, then close. */
        c->close_after_response = true;
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = false;
        return;
    }
    s3s_conn_close(c);
}

static void s_tls_input(struct s3s_conn *c, const char *data, size_t len);

static void s_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct s3s_conn *c = s->data;
    if (nread == 0) {
        return;
    }
    if (c->refused) {
        /* Read and dropped until the client is done or the linger ends. */
        if (nread < 0) {
            s3s_conn_close(c);
        }
        return;
    }
    if (nread < 0) {
        s_read_end(c, nread);
        return;
    }
    if (c->tls) {
        s_tls_input(c, buf->base, (size_t)nread);
        return;
    }
    s_parse(c, buf->base, (size_t)nread);
    s_conn_progress(c);
}

/* Does the connection take input now? close_after_response alone does not
 * stop reading: a draining connection still reads the body of the request
 * in progress. */
static bool s_want_input(const struct s3s_conn *c)
{
    const struct s3s_req *r = c->req;
    bool hashing = r && r->hasher && r->phase == S3S_PHASE_BODY && s3s_hasher_full(r->hasher);
    return !c->closing && !c->parser_paused && !c->read_paused_backpressure && !hashing;
}

static void s_tls_pump_cb(uv_idle_t *h);

static void s_update_reading(struct s3s_conn *c)
{
    bool want = s_want_input(c);
    if (want && c->tls && !c->tls_pump_on && s3s_tls_conn_pending(c->tls)) {
        /* Input received while the connection was not taking it waits in
         * its TLS state, not in the socket: decrypted from the loop. */
        if (uv_idle_start(&c->tls_pump, s_tls_pump_cb) == 0) {
            c->tls_pump_on = true;
        }
    }
    if (want && !c->reading) {
        if (uv_read_start((uv_stream_t *)&c->tcp, s_alloc_cb, s_read_cb) == 0) {
            c->reading = true;
            c->body_window_ns = 0; /* the body's rate is measured while read */
        }
    } else if (!want && c->reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = false;
    }
}

/* ---------------------------------------------------------------- HTTPS */

/* Plaintext decrypted at once, at most (one read's worth). */
static _Thread_local char tl_plain_buf[S_TLS_READ];

/* Moves the handshake on, then decrypts what was received and parses it
 * while the connection takes input; what it does not take yet stays in the
 * TLS state (s_update_reading comes back for it). */
static void s_tls_pump(struct s3s_conn *c)
{
    while (!c->closing) {
        if (!s3s_tls_conn_ready(c->tls)) {
            enum s3s_tls_status st = s3s_tls_conn_handshake(c->tls);
            s3s_result_ignore(s_tls_send(c)); /* the next flight, or an alert */
            if (st == S3S_TLS_WANT) {
                return;
            }
            if (st != S3S_TLS_OK) {
                S3S_LOGI("conn", "remote=%s TLS handshake failed: %s", c->remote,
                         s3s_tls_conn_why(c->tls));
                s3s_metrics_inc(S3S_METRIC_TLS_HANDSHAKE_FAILURES);
                s3s_conn_close(c);
                return;
            }
            s3s_metrics_inc(S3S_METRIC_TLS_HANDSHAKES);
            char what[160];
            s3s_tls_conn_describe(c->tls, what, sizeof(what));
            S3S_LOGD("conn", "remote=%s TLS %s", c->remote, what);
            s_timer_arm(c); /* the keep-alive wait for the first request */
        }
        if (!s_want_input(c)) {
            return;
        }
        size_t n = 0;
        enum s3s_tls_status st = s3s_tls_conn_read(c->tls, tl_plain_buf, sizeof(tl_plain_buf), &n);
        if (n > 0) {
            s_parse(c, tl_plain_buf, n);
            s_conn_progress(c);
            continue;
        }
        s3s_result_ignore(s_tls_send(c)); /* what reading made (a key update) */
        if (st == S3S_TLS_WANT) {
            return;
        }
        if (st == S3S_TLS_CLOSED) {
            s_read_end(c, UV_EOF);
            return;
        }
        S3S_LOGD("conn", "remote=%s TLS error: %s", c->remote, s3s_tls_conn_why(c->tls));
        s3s_conn_close(c);
        return;
    }
}

static void s_tls_input(struct s3s_conn *c, const char *data, size_t len)
{
    if (s3s_failed(s3s_tls_conn_feed(c->tls, data, len))) {
        /* Not TLS (a plain HTTP request): closed at once, not left to time out. */
        S3S_LOGI("conn", "remote=%s TLS handshake failed: %s", c->remote,
                 s3s_tls_conn_why(c->tls));
        s3s_metrics_inc(S3S_METRIC_TLS_HANDSHAKE_FAILURES);
        s3s_conn_close(c);
        return;
    }
    s_tls_pump(c);
    /* The read buffer is the loop's: what was not decrypted is kept. */
    if (s3s_failed(s3s_tls_conn_feed_end(c->tls))) {
        s3s_conn_close(c);
    }
}

static void s_tls_pump_cb(uv_idle_t *h)
{
    struct s3s_conn *c = h->data;
    uv_idle_stop(h);
    c->tls_pump_on = false;
    s_tls_pump(c);
}

/* Closing: close_notify, sent if the socket takes it now. */
static void s_tls_goodbye(struct s3s_conn *c)
{
    s3s_tls_conn_shutdown(c->tls);
    uint8_t alert[64];
    size_t n = s3s_tls_conn_out_len(c->tls);
    if (c->write_queued == 0 && n > 0 && n <= sizeof(alert)) {
        n = s3s_tls_conn_out_read(c->tls, alert, n);
        uv_buf_t b = uv_buf_init((char *)alert, (unsigned int)n);
        (void)uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
    }
}

/* HTTPS on an accepted connection: its TLS state and the idle handle. */
static s3s_result s_tls_attach(struct s3s_conn *c)
{
    S3S_GUARD(s3s_tls_conn_new(c->w->tls, &c->tls));
    uv_idle_init(&c->w->loop, &c->tls_pump);
    c->tls_pump.data = c;
    c->handles_open++;
    return s3s_ok();
}

static void s_linger(struct s3s_conn *c);

/* Moves the connection forward after any event: finishes a completed
 * request, resumes parsing of pipelined bytes, closes when asked to. */
static void s_conn_progress(struct s3s_conn *c)
{
    for (;;) {
        if (c->closing) {
            return;
        }
        struct s3s_req *r = c->req;
        if (r && r->phase == S3S_PHASE_DONE && (r->msg_complete || c->close_after_response)) {
            /* Only for a client that is sending a body: not for one that
             * stalled (a timeout) or never finished its head, which would
             * hold a connection slot for nothing. */
            c->linger = !r->msg_complete && r->has_body && r->error != S3S_ERR_REQUEST_TIMEOUT &&
                        r->error != S3S_ERR_SLOW_DOWN;
            s_req_finish(c);
        }
        if (c->req) {
            s_update_reading(c);
            return;
        }
        if (c->close_after_response || c->w->draining) {
            if (c->write_queued) {
                s_update_reading(c);
            } else if (c->linger && c->refused) {
                /* lingering: the client or the timer ends it */
            } else if (c->linger && !c->tls && !c->w->draining) {
                s_linger(c);
            } else {
                s3s_conn_close(c);
            }
            return;
        }
        if (c->tls) {
            s3s_tls_conn_trim(c->tls); /* between requests: big buffers back */
        }
        s_timer_arm(c);
        if (c->parser_paused) {
            llhttp_resume(&c->parser);
            c->parser_paused = false;
            if (c->pending.len) {
                struct s3s_buf pend = c->pending;
                s3s_result_ignore(s3s_buf_init(&c->pending, 0, pend.max));
                s_parse(c, (const char *)pend.ptr, pend.len);
                s3s_buf_clean_up(&pend);
                continue; /* the pipelined request may already be complete */
            }
        }
        s_update_reading(c);
        return;
    }
}

/* The body of a held answer that s3seal rewrites (see rewrite_kind). */
static s3s_result s_rewritten_body(struct s3s_req *r, struct s3s_buf *out)
{
    struct s3s_cur in = s3s_buf_cur(&r->listing);
    switch (r->rewrite_kind) {
    case S3S_REWRITE_LISTING:
        return s3s_listing_plain_sizes(in, out);
    case S3S_REWRITE_LIST_PARTS:
        return s3s_listparts_plain_sizes(in, out);
    case S3S_REWRITE_COPY_RESULT:
        S3S_GUARD(s3s_buf_append_str(&r->resp_head, "Content-Type: application/xml\r\n"));
        return s3s_copy_result(r, out);
    case S3S_REWRITE_COMPLETE:
        return s3s_listing_complete_etag(in, r->mpu_etag, out);
    case S3S_REWRITE_LIST_UPLOADS:
        /* Rewritten by the upload registry, if it could (upload_reg.c). */
    case S3S_REWRITE_DONE:
    case S3S_REWRITE_COPY_REWRAP:
        return s3s_buf_append_cur(out, in);
    case S3S_REWRITE_CREATE_MPU:
        return s3s_listing_upload_id(in, s3s_buf_cur(&r->mpu_suffix), out);
    case S3S_REWRITE_LIST_BUCKETS:
        return s3s_authz_list_buckets(r, in, out);
    default:
        S3S_BAIL(S3S_ERR_INTERNAL);
    }
}

/* Sends a held answer with its rewritten body. */
static s3s_result s_send_rewritten(struct s3s_req *r)
{
    struct s3s_buf out;
    S3S_GUARD(s3s_buf_init(&out, 0, r->listing.max + r->listing.max / 4));
    s3s_result res = s_rewritten_body(r, &out);
    r->resp_has_length = true;
    r->resp_length = out.len;
    if (s3s_is_ok(res)) {
        res = s3s_upstream_send_head(r);
    }
    if (s3s_is_ok(res)) {
        res = s3s_conn_write(r->conn, out.ptr, out.len);
    }
    if (s3s_is_ok(res)) {
        r->resp_body_sent = out.len;
    }
    s3s_buf_clean_up(&out);
    return res;
}

void s3s_req_upstream_finished(struct s3s_req *r)
{
    struct s3s_conn *c = r->conn;
    CURLcode rc = r->upstream_result;
    if (r->reply_waiting) {
        r->reply_finished = true; /* finished again by s3s_req_reply_resume */
        return;
    }
    if (c->held.len && r->dec && r->out_plain.len == 0 &&
        (rc != CURLE_OK || s3s_failed(s3s_sse_get_finish(r)))) {
        /* Not a byte of the encrypted object is out, not even its head (an
         * empty object, or a first segment cut short): an error answer. */
        c->held = (struct s3s_cur){0};
        r->resp_head_sent = false;
        r->deferred_error = r->deferred_error  ? r->deferred_error
                            : rc == CURLE_OK ? S3S_ERR_SSE_TAG_MISMATCH
                                             : S3S_ERR_BAD_GATEWAY;
    }
    if (s3s_failed(s3s_upstream_flush_body(r))) {
        s3s_conn_close(c); /* what was gathered is out, or the connection is gone */
        return;
    }
    if (r->body_failed) {
        /* The upload was aborted on purpose: the backend never saw it whole. */
        c->close_after_response = c->close_after_response || !r->msg_complete;
        s3s_req_send_error(r, r->body_error, NULL);
        return;
    }
    /* A stage whose step this answer was, or which acts before the client
     * is answered, takes over (stage.h); it calls this function again. */
    bool taken = false;
    s3s_result sr = s3s_stages_answer(r, &taken);
    if (s3s_failed(sr)) {
        s3s_req_send_error(r, sr.code, NULL);
        return;
    }
    if (taken) {
        return;
    }
    if (r->deferred_error && !r->resp_head_sent) {
        /* The response head was refused (416, or an object that cannot be
         * decrypted): the transfer was cut there. */
        if (r->deferred_error != S3S_ERR_INVALID_RANGE) {
            S3S_LOGE("sse", "req=%s cannot serve the object: %s", r->id,
                     s3s_strerror(r->deferred_error));
        }
        s3s_req_send_error(r, r->deferred_error, NULL);
        return;
    }
    if (rc == CURLE_OK && r->hold_head && r->rewrite_kind &&
        s3s_failed(s_send_rewritten(r))) {
        s3s_conn_close(c);
        return;
    }
    if (r->copy_stage == 1) {
        /* The object is stored either way; only its checksum may be missing. */
        if (rc != CURLE_OK || r->copy_status != 200) {
            S3S_LOGW("upstream", "req=%s storing the trailer checksum failed: %s status=%d",
                     r->id, curl_easy_strerror(rc), r->copy_status);
        }
        r->copy_stage = 2;
        rc = CURLE_OK;
        if (s3s_failed(s3s_upstream_send_head(r))) {
            s3s_conn_close(c);
            return;
        }
    } else if (rc == CURLE_OK && r->hold_head && !r->rewrite_kind) {
        r->copy_stage = 1;
        if (s3s_is_ok(s3s_upstream_store_checksum(r))) {
            return; /* finished again when the copy is done */
        }
        S3S_LOGW("upstream", "req=%s cannot start storing the trailer checksum", r->id);
        r->copy_stage = 2;
        if (s3s_failed(s3s_upstream_send_head(r))) {
            s3s_conn_close(c);
            return;
        }
    }
    if (rc == CURLE_WRITE_ERROR && r->resp_cut) {
        rc = CURLE_OK; /* a 304's body was cut on purpose */
    }
    if (rc != CURLE_OK) {
        S3S_LOGW("upstream", "req=%s transfer failed: %s", r->id, curl_easy_strerror(rc));
        if (!r->resp_head_sent) {
            c->close_after_response = c->close_after_response || !r->msg_complete;
            s3s_req_send_error(r, rc == CURLE_OPERATION_TIMEDOUT ? S3S_ERR_GATEWAY_TIMEOUT
                                                                 : S3S_ERR_BAD_GATEWAY,
                               NULL);
        } else {
            s3s_conn_close(c);
        }
        return;
    }
    if (!r->resp_head_sent) {
        s3s_conn_close(c);
        return;
    }
    if (s3s_failed(s3s_sse_get_finish(r))) {
        /* Truncated or incomplete ciphertext: the client must not take the
         * response for whole. */
        S3S_LOGE("sse", "req=%s object ended early; response aborted", r->id);
        s3s_conn_close(c);
        return;
    }
    if (r->resp_chunked && s3s_failed(s3s_conn_write(c, "0\r\n\r\n", 5))) {
        s3s_conn_close(c);
        return;
    }
    if (!r->msg_complete) {
        /* The backend answered before the whole body arrived. */
        c->close_after_response = true;
    }
    s3s_upload_reg_forget(r); /* after Complete or Abort of an encrypted upload */
    r->phase = S3S_PHASE_DONE;
    s3s_upstream_abort(r); /* releases the easy handle back to the pool */
    s_conn_progress(c);
}

static void s_on_close(uv_handle_t *h)
{
    struct s3s_conn *c = h->data;
    if (--c->handles_open > 0) {
        return;
    }
    struct s3s_worker *w = c->w;
    if (c->prev) {
        c->prev->next = c->next;
    } else {
        w->conns = c->next;
    }
    if (c->next) {
        c->next->prev = c->prev;
    }
    w->n_conns--;
    s3s_metrics_gauge_add(S3S_GAUGE_CONNECTIONS, -1);
    if (c->client_counted) {
        s_client_release(c->remote_ip);
    }
    s3s_http_head_clean_up(&c->head);
    s3s_buf_clean_up(&c->pending);
    s3s_tls_conn_free(&c->tls);
    s3s_free(&c);
    s3s_worker_conn_closed(w);
}

void s3s_conn_close(struct s3s_conn *c)
{
    if (c->closing) {
        return;
    }
    c->closing = true;
    if (c->req) {
        struct s3s_req *r = c->req;
        if (!r->status) {
            r->status = 499; /* client closed, or reset before a response */
        }
        s_req_finish(c);
    }
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->timer, s_on_close);
    if (c->tls) {
        s_tls_goodbye(c);
        uv_close((uv_handle_t *)&c->tls_pump, s_on_close);
    }
    uv_close((uv_handle_t *)&c->tcp, s_on_close);
}

void s3s_conn_drain(struct s3s_conn *c)
{
    c->close_after_response = true;
    if (!c->req) {
        s3s_conn_close(c);
    }
}

/* ----------------------------------------------------- connection caps */

/* Open connections per client address, all loops together. */
struct s_client {
    struct s_client *next;
    size_t n;
    char ip[48];
};
#define S_CLIENT_SLOTS 1024
static struct s_client *s_clients[S_CLIENT_SLOTS];
static uv_mutex_t s_clients_lock;
static uv_once_t s_clients_once = UV_ONCE_INIT;

static void s_clients_init(void)
{
    if (uv_mutex_init(&s_clients_lock) != 0) {
        abort();
    }
}

static struct s_client **s_client_slot(const char *ip)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (const char *p = ip; *p; p++) {
        h = (h ^ (uint8_t)*p) * 16777619u;
    }
    struct s_client **pp = &s_clients[h % S_CLIENT_SLOTS];
    while (*pp && strcmp((*pp)->ip, ip) != 0) {
        pp = &(*pp)->next;
    }
    return pp;
}

/* One more connection of `ip`, unless it has `max` already (or memory ran
 * out): false then, and nothing is counted. */
static bool s_client_acquire(const char *ip, size_t max)
{
    uv_once(&s_clients_once, s_clients_init);
    uv_mutex_lock(&s_clients_lock);
    struct s_client **pp = s_client_slot(ip);
    bool ok = false;
    if (!*pp) {
        struct s_client *e = s3s_calloc(1, sizeof(*e));
        if (e) {
            snprintf(e->ip, sizeof(e->ip), "%s", ip);
            *pp = e;
        }
    }
    if (*pp && (*pp)->n < max) {
        (*pp)->n++;
        ok = true;
    }
    if (*pp && (*pp)->n == 0) {
        struct s_client *e = *pp;
        *pp = e->next;
        s3s_free(&e);
    }
    uv_mutex_unlock(&s_clients_lock);
    return ok;
}

static void s_client_release(const char *ip)
{
    uv_mutex_lock(&s_clients_lock);
    struct s_client **pp = s_client_slot(ip);
    if (*pp && --(*pp)->n == 0) {
        struct s_client *e = *pp;
        *pp = e->next;
        s3s_free(&e);
    }
    uv_mutex_unlock(&s_clients_lock);
}

static void s_refused_shutdown_cb(uv_shutdown_t *req, int status)
{
    (void)req;
    (void)status;
}

/* How long a refused connection's request is read and dropped after the
 * answer, so that the kernel does not reset the connection under it. */
#define S_REFUSE_LINGER_MS 2000

/* The answer is out but the client may still be sending the body it
 * refused: the sending side is shut (the client sees the end of the
 * answer), and what arrives is read and dropped until the client closes
 * or the linger ends, as nginx's lingering_close does. */
static void s_linger(struct s3s_conn *c)
{
    c->refused = true;
    c->parser_paused = true;
    if (uv_shutdown(&c->shutdown_req, (uv_stream_t *)&c->tcp, s_refused_shutdown_cb) != 0 ||
        (!c->reading && uv_read_start((uv_stream_t *)&c->tcp, s_alloc_cb, s_read_cb) != 0)) {
        s3s_conn_close(c);
        return;
    }
    c->reading = true;
    uv_timer_start(&c->timer, s_on_timer, S_REFUSE_LINGER_MS, 0);
}

/* Over a cap: 503 SlowDown at once (whatever the request will be), the
 * sending side shut, and what the client sends read and dropped until it
 * closes or the linger ends. */
static void s_refuse(struct s3s_conn *c)
{
    if (c->w->tls) {
        /* HTTPS: nothing can be answered before a handshake; closed. */
        s3s_conn_close(c);
        return;
    }
    c->refused = true;
    c->close_after_response = true;
    if (s3s_failed(s_req_new(c))) {
        s3s_conn_close(c);
        return;
    }
    c->in_parse = true; /* the teardown is done here */
    s3s_req_send_error(c->req, S3S_ERR_SLOW_DOWN, NULL);
    c->in_parse = false;
    if (c->closing) {
        return;
    }
    s_req_finish(c);
    if (uv_shutdown(&c->shutdown_req, (uv_stream_t *)&c->tcp, s_refused_shutdown_cb) != 0 ||
        uv_read_start((uv_stream_t *)&c->tcp, s_alloc_cb, s_read_cb) != 0) {
        s3s_conn_close(c);
        return;
    }
    c->reading = true;
    uv_timer_start(&c->timer, s_on_timer, S_REFUSE_LINGER_MS, 0);
}

void s3s_conn_accept(struct s3s_worker *w)
{
    uv_once(&s_settings_once, s_settings_init);
    struct s3s_conn *c = s3s_calloc(1, sizeof(*c));
    if (!c) {
        return;
    }
    c->w = w;
    uv_tcp_init(&w->loop, &c->tcp);
    uv_timer_init(&w->loop, &c->timer);
    c->tcp.data = c;
    c->timer.data = c;
    c->handles_open = 2;
    c->next = w->conns;
    if (w->conns) {
        w->conns->prev = c;
    }
    w->conns = c;
    w->n_conns++;
    s3s_metrics_gauge_add(S3S_GAUGE_CONNECTIONS, 1);
    const struct s3s_http_head_limits lim = {w->cfg->limits.max_header_bytes,
                                             w->cfg->limits.max_headers,
                                             w->cfg->limits.max_url_bytes};
    s3s_http_head_init(&c->head, &lim);
    /* Room for what one read brings past a request's headers. */
    s3s_result_ignore(s3s_buf_init(&c->pending, 0,
                                   w->cfg->limits.max_header_bytes * 2 + S3S_READ_BUF_SIZE));
    if (uv_accept((uv_stream_t *)&w->listener, (uv_stream_t *)&c->tcp) != 0) {
        s3s_conn_close(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    snprintf(c->remote, sizeof(c->remote), "-");
    snprintf(c->remote_ip, sizeof(c->remote_ip), "-");
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) == 0) {
        char ip[INET6_ADDRSTRLEN] = "";
        int port = 0;
        if (ss.ss_family == AF_INET) {
            struct sockaddr_in *in = (struct sockaddr_in *)&ss;
            uv_ip4_name(in, ip, sizeof(ip));
            port = ntohs(in->sin_port);
        } else if (ss.ss_family == AF_INET6) {
            struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
            uv_ip6_name(in6, ip, sizeof(ip));
            port = ntohs(in6->sin6_port);
        }
        snprintf(c->remote, sizeof(c->remote), "%s:%d", ip, port);
        snprintf(c->remote_ip, sizeof(c->remote_ip), "%s", ip);
    }
    /* The caps: this loop's connections, and one client's in all loops.
     * Past them a connection is answered 503 SlowDown, not dropped; past
     * the loop's cap by a margin too (refused ones pile up), it is closed. */
    const struct s3s_config *cfg = w->cfg;
    size_t margin = cfg->limits.max_connections / 8 > 64 ? cfg->limits.max_connections / 8 : 64;
    if (w->n_conns > cfg->limits.max_connections + margin) {
        S3S_LOGW("conn", "remote=%s too many connections (%zu): closed", c->remote, w->n_conns);
        s3s_metrics_inc(S3S_METRIC_REFUSED_GLOBAL);
        s3s_conn_close(c);
        return;
    }
    bool over = w->n_conns > cfg->limits.max_connections;
    if (!over) {
        c->client_counted = s_client_acquire(c->remote_ip, cfg->limits.max_connections_per_client);
        over = !c->client_counted;
    }
    if (over) {
        s3s_metrics_inc(c->client_counted || w->n_conns > cfg->limits.max_connections
                            ? S3S_METRIC_REFUSED_GLOBAL
                            : S3S_METRIC_REFUSED_PER_CLIENT);
        S3S_LOGW("conn", "remote=%s over the %s connection cap: 503 SlowDown", c->remote,
                 c->client_counted ? "server's" : "client's");
        s_refuse(c);
        return;
    }
    if (w->tls && s3s_failed(s_tls_attach(c))) {
        s3s_conn_close(c);
        return;
    }
    /* Strict parsing, and http_head.c's checks on top: conflicting
     * Content-Length and Transfer-Encoding, bare LF, obsolete line folding
     * and the like are refused (request smuggling). */
    s3s_http_head_parser_init(&c->parser, &s_settings, c);
    s_timer_arm(c);
    s_update_reading(c);
}
