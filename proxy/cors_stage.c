/*
 * cors_stage.c - CORS as S3 does it, as a stage (stage.h).
 *
 * Preflights: an OPTIONS request is S3's to answer without authentication.
 * s3seal answers every OPTIONS itself (on_preauth), from the bucket's CORS
 * configuration (stored through PutBucketCors, bucket_enc.c): 200 with the
 * matching rule's Access-Control-* headers, 403 AccessForbidden when no rule
 * matches or the bucket has no configuration, 400 without an Origin or an
 * Access-Control-Request-Method. None ever reaches the backend.
 *
 * Actual requests: an answer to a request with an Origin header (a success
 * or an S3 error) gets the headers of the first rule that allows the
 * origin and the request's method (on_response_head), as S3 adds them.
 *
 * The stage keeps no state of its own per request: both hooks decide on
 * the request's head and the worker's table at the time they run.
 */
#include <stdio.h>

#include "common/log.h"
#include "proxy/cors.h"
#include "proxy/proxy.h"

/* The most an actual request's CORS headers may add to an answer's head. */
#define S_MAX_HEADERS (8 * 1024)

/* The one value of a header the stage reads; false when absent. A header
 * given twice is ambiguous (which one would a browser have meant?): *twice
 * says so. */
static bool s_header(const struct s3s_req *r, const char *name, struct s3s_cur *value,
                     bool *twice)
{
    size_t n = 0;
    for (size_t i = 0; i < r->n_headers; i++) {
        if (s3s_cur_eq_str_ignore_case(r->headers[i].name, name)) {
            if (n++ == 0) {
                *value = s3s_cur_trim(r->headers[i].value);
            }
        }
    }
    *twice = n > 1;
    return n > 0;
}

static s3s_result s_preauth(struct s3s_req *r, int *status, bool *taken)
{
    if (!s3s_cur_eq_str(r->method, "OPTIONS")) {
        return s3s_ok();
    }
    struct s3s_cur origin = {0}, method = {0}, headers = {0};
    bool twice = false;
    if (!s_header(r, "origin", &origin, &twice) || origin.len == 0 || twice) {
        snprintf(r->err_detail, sizeof(r->err_detail),
                 "Insufficient information. Origin request header needed.");
        S3S_BAIL(S3S_ERR_BAD_REQUEST);
    }
    if (!s_header(r, "access-control-request-method", &method, &twice) || method.len == 0 ||
        twice) {
        snprintf(r->err_detail, sizeof(r->err_detail),
                 "Invalid Access-Control-Request-Method: %.*s",
                 (int)(method.len > 64 ? 64 : method.len),
                 method.len ? (const char *)method.ptr : "null");
        S3S_BAIL(S3S_ERR_BAD_REQUEST);
    }
    if (s_header(r, "access-control-request-headers", &headers, &twice) && twice) {
        snprintf(r->err_detail, sizeof(r->err_detail),
                 "Access-Control-Request-Headers is given more than once.");
        S3S_BAIL(S3S_ERR_BAD_REQUEST);
    }
    struct s3s_cur bucket = s3s_buf_cur(&r->bucket);
    const struct s3s_cors_config *cfg = bucket.len ? s3s_bucket_cors(r->conn->w, bucket) : NULL;
    S3S_ENSURE(cfg != NULL, S3S_ERR_CORS_NOT_ENABLED);
    bool wildcard = false;
    const struct s3s_cors_rule *rule = s3s_cors_match(cfg, origin, method, headers, &wildcard);
    S3S_ENSURE(rule != NULL, S3S_ERR_CORS_FORBIDDEN);
    S3S_GUARD(s3s_cors_headers(rule, wildcard, origin, true, headers, &r->resp_head));
    *status = 200;
    *taken = true;
    return s3s_ok();
}

static s3s_result s_response_head(struct s3s_req *r, struct s3s_buf *head)
{
    struct s3s_cur origin, bucket = s3s_buf_cur(&r->bucket);
    bool twice = false;
    /* A refused preflight gets no CORS headers, as in S3. */
    if (s3s_cur_eq_str(r->method, "OPTIONS") || bucket.len == 0 ||
        !s_header(r, "origin", &origin, &twice) || origin.len == 0 || twice) {
        return s3s_ok();
    }
    const struct s3s_cors_config *cfg = s3s_bucket_cors(r->conn->w, bucket);
    bool wildcard = false;
    const struct s3s_cors_rule *rule =
        s3s_cors_match(cfg, origin, r->method, s3s_cur_from(NULL, 0), &wildcard);
    if (!rule) {
        return s3s_ok();
    }
    /* Made apart first: a rule whose headers would not fit (thousands of
     * ExposeHeaders) costs the answer its CORS headers, never the answer. */
    struct s3s_buf h;
    S3S_GUARD(s3s_buf_init(&h, 0, S_MAX_HEADERS));
    s3s_result res = s3s_cors_headers(rule, wildcard, origin, false, s3s_cur_from(NULL, 0), &h);
    if (s3s_is_ok(res) && h.len > head->max - head->len) {
        res = s3s_err(S3S_ERR_MAX_MESSAGE_LENGTH);
    }
    if (s3s_is_ok(res)) {
        res = s3s_buf_append_cur(head, s3s_buf_cur(&h));
    } else {
        S3S_LOGW("cors", "req=%s the matching CORS rule's headers do not fit the answer: %s",
                 r->id, s3s_strerror(res.code));
        res = s3s_ok();
    }
    s3s_buf_clean_up(&h);
    return res;
}

const struct s3s_stage s3s_stage_cors = {
    .name = "cors",
    .on_preauth = s_preauth,
    .on_response_head = s_response_head,
};
