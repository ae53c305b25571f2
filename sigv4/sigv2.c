/*
 * sigv2.c - AWS Signature Version 2 for S3 (the REST authentication of the
 * S3 developer guide's "Signing and authenticating REST requests"), accepted
 * for legacy uploaders when the config enables it:
 *
 *   StringToSign = VERB \n Content-MD5 \n Content-Type \n Date \n
 *                  CanonicalizedAmzHeaders CanonicalizedResource
 *   Signature    = Base64(HMAC-SHA1(secret, StringToSign))
 *
 * In query authentication the Date line carries the Expires value.
 */
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdlib.h>
#include <string.h>

#include "sigv4/sigv4_private.h"

/* Sub-resources that belong in the canonicalized resource, in sorted order. */
static const char *const s_subresources[] = {
    "acl", "cors", "delete", "lifecycle", "location", "logging", "notification",
    "partNumber", "policy", "requestPayment", "response-cache-control",
    "response-content-disposition", "response-content-encoding", "response-content-language",
    "response-content-type", "response-expires", "restore", "tagging", "torrent", "uploadId",
    "uploads", "versionId", "versioning", "versions", "website", NULL,
};

static bool s_header(const struct s3s_sigv4_request *req, const char *name, struct s3s_cur *v)
{
    for (size_t i = 0; i < req->n_headers; i++) {
        if (s3s_cur_eq_str_ignore_case(req->headers[i].name, name)) {
            *v = s3s_cur_trim(req->headers[i].value);
            return true;
        }
    }
    return false;
}

static bool s_query(struct s3s_cur q, const char *name, struct s3s_cur *raw, bool *has_value)
{
    struct s3s_cur part;
    while (s3s_cur_next(&q, '&', &part)) {
        struct s3s_cur n = part;
        long eq = s3s_cur_find(part, '=');
        if (eq >= 0) {
            n.len = (size_t)eq;
        }
        if (s3s_cur_eq_str(n, name)) {
            *has_value = eq >= 0;
            *raw = eq >= 0 ? s3s_cur_from(part.ptr + eq + 1, part.len - (size_t)eq - 1)
                           : s3s_cur_from(NULL, 0);
            return true;
        }
    }
    return false;
}

bool s3s_sigv2_present(const struct s3s_sigv4_request *req)
{
    struct s3s_cur v;
    bool hv;
    if (s_header(req, "authorization", &v)) {
        return s3s_cur_starts_with(v, "AWS ");
    }
    return s_query(req->query, "AWSAccessKeyId", &v, &hv) && s_query(req->query, "Signature", &v, &hv);
}

struct s_amz {
    struct s3s_cur name, value;
};

static int s_amz_cmp(const void *a, const void *b)
{
    const struct s_amz *x = a, *y = b;
    size_t n = x->name.len < y->name.len ? x->name.len : y->name.len;
    for (size_t i = 0; i < n; i++) {
        uint8_t cx = x->name.ptr[i], cy = y->name.ptr[i];
        cx = (cx >= 'A' && cx <= 'Z') ? (uint8_t)(cx + 32) : cx;
        cy = (cy >= 'A' && cy <= 'Z') ? (uint8_t)(cy + 32) : cy;
        if (cx != cy) {
            return cx < cy ? -1 : 1;
        }
    }
    return x->name.len == y->name.len ? 0 : (x->name.len < y->name.len ? -1 : 1);
}

static s3s_result s_string_to_sign(const struct s3s_sigv4_request *req, struct s3s_cur bucket,
                                   struct s3s_cur date_line, struct s3s_buf *out)
{
    struct s3s_cur v;
    S3S_GUARD(s3s_buf_append_cur(out, req->method));
    S3S_GUARD(s3s_buf_append_byte(out, '\n'));
    if (s_header(req, "content-md5", &v)) {
        S3S_GUARD(s3s_buf_append_cur(out, v));
    }
    S3S_GUARD(s3s_buf_append_byte(out, '\n'));
    if (s_header(req, "content-type", &v)) {
        S3S_GUARD(s3s_buf_append_cur(out, v));
    }
    S3S_GUARD(s3s_buf_append_byte(out, '\n'));
    S3S_GUARD(s3s_buf_append_cur(out, date_line));
    S3S_GUARD(s3s_buf_append_byte(out, '\n'));

    /* x-amz-* headers: lower-case, sorted, repeated ones joined by ','.
     * Past 64 of them the request is refused: one left out of the string
     * to sign would reach the backend unsigned. */
    struct s_amz amz[64];
    size_t n = 0;
    for (size_t i = 0; i < req->n_headers; i++) {
        struct s3s_cur name = req->headers[i].name;
        if (name.len > 6 && s3s_cur_eq_ignore_case(s3s_cur_from(name.ptr, 6), S3S_CUR_LIT("x-amz-"))) {
            S3S_ENSURE(n < 64, S3S_ERR_INVALID_ARG);
            amz[n].name = name;
            amz[n].value = s3s_cur_trim(req->headers[i].value);
            n++;
        }
    }
    qsort(amz, n, sizeof(amz[0]), s_amz_cmp);
    for (size_t i = 0; i < n; i++) {
        bool same = i > 0 && s_amz_cmp(&amz[i - 1], &amz[i]) == 0;
        if (same) {
            S3S_GUARD(s3s_buf_append_byte(out, ','));
        } else {
            if (i > 0) {
                S3S_GUARD(s3s_buf_append_byte(out, '\n'));
            }
            for (size_t k = 0; k < amz[i].name.len; k++) {
                uint8_t ch = amz[i].name.ptr[k];
                S3S_GUARD(s3s_buf_append_byte(out, (ch >= 'A' && ch <= 'Z') ? (uint8_t)(ch + 32) : ch));
            }
            S3S_GUARD(s3s_buf_append_byte(out, ':'));
        }
        S3S_GUARD(s3s_buf_append_cur(out, amz[i].value));
    }
    if (n) {
        S3S_GUARD(s3s_buf_append_byte(out, '\n'));
    }

    /* The resource: [/bucket] path, then the sub-resources in order, with
     * their values decoded. */
    if (bucket.len) {
        S3S_GUARD(s3s_buf_append_byte(out, '/'));
        S3S_GUARD(s3s_buf_append_cur(out, bucket));
    }
    S3S_GUARD(s3s_buf_append_cur(out, req->path.len ? req->path : S3S_CUR_LIT("/")));
    /* A path-style bucket request ("/bucket") is signed as "/bucket/", as
     * S3 and its SDKs canonicalize it. */
    if (!bucket.len && req->path.len > 1 &&
        s3s_cur_find(s3s_cur_from(req->path.ptr + 1, req->path.len - 1), '/') < 0) {
        S3S_GUARD(s3s_buf_append_byte(out, '/'));
    }
    bool first = true;
    for (size_t i = 0; s_subresources[i]; i++) {
        struct s3s_cur raw;
        bool has_value = false;
        if (!s_query(req->query, s_subresources[i], &raw, &has_value)) {
            continue;
        }
        S3S_GUARD(s3s_buf_append_byte(out, first ? '?' : '&'));
        S3S_GUARD(s3s_buf_append_str(out, s_subresources[i]));
        if (has_value) {
            S3S_GUARD(s3s_buf_append_byte(out, '='));
            S3S_GUARD(s3s_sigv4__uri_decode(raw, true, out));
        }
        first = false;
    }
    return s3s_ok();
}

s3s_result s3s_sigv2_verify(const struct s3s_sigv4_request *req, struct s3s_cur bucket,
                            const struct s3s_sigv4_verify_options *o,
                            struct s3s_sigv4_verify_result *res)
{
    S3S_ENSURE_REF(req);
    struct s3s_cur authz, ak, sig, expires, date_line = {0};
    bool hv;
    bool header = s_header(req, "authorization", &authz);
    struct s3s_buf sig_dec;
    res->presigned = !header;
    res->payload = S3S_SIGV4_PAYLOAD_UNSIGNED;
    S3S_GUARD(s3s_buf_init(&sig_dec, 0, 256));
    s3s_result r = s3s_ok();
    if (header) {
        /* "AWS AKID:base64signature" */
        struct s3s_cur rest = s3s_cur_from(authz.ptr + 4, authz.len - 4);
        if (!s3s_cur_split(&rest, ':', &ak) || ak.len == 0 || rest.len == 0) {
            s3s_buf_clean_up(&sig_dec);
            S3S_BAIL(S3S_ERR_AUTH_HEADER_MALFORMED);
        }
        sig = rest;
    } else {
        struct s3s_cur raw_sig;
        if (!s_query(req->query, "AWSAccessKeyId", &ak, &hv) ||
            !s_query(req->query, "Signature", &raw_sig, &hv) ||
            !s_query(req->query, "Expires", &expires, &hv)) {
            s3s_buf_clean_up(&sig_dec);
            S3S_BAIL(S3S_ERR_AUTH_QUERY_ERROR);
        }
        r = s3s_sigv4__uri_decode(raw_sig, false, &sig_dec);
        sig = s3s_buf_cur(&sig_dec);
        date_line = expires;
    }
    if (s3s_is_ok(r)) {
        s3s_buf_reset(&res->access_key);
        r = s3s_buf_append_cur(&res->access_key, ak);
    }
    const struct s3s_secret *secret = NULL;
    const char *principal = NULL;
    if (s3s_is_ok(r) && !o->lookup(o->lookup_ctx, ak, &secret, &principal)) {
        r = s3s_err(S3S_ERR_INVALID_ACCESS_KEY_ID);
    }
    res->principal = principal;

    /* Time: Date / x-amz-date within the skew, or Expires not passed. */
    int64_t now = o->now(o->now_ctx);
    if (s3s_is_ok(r) && header) {
        struct s3s_cur d;
        int64_t t = 0;
        bool amz = s_header(req, "x-amz-date", &d);
        if (!amz && !s_header(req, "date", &d)) {
            r = s3s_err(S3S_ERR_MISSING_DATE);
        } else if (s3s_failed(s3s_time_parse_http(d, &t)) &&
                   s3s_failed(s3s_time_parse_iso8601_basic(d, &t))) {
            r = s3s_err(S3S_ERR_MISSING_DATE);
        } else {
            res->request_time = t;
            /* With x-amz-date, the Date line of the string to sign is empty. */
            if (!amz) {
                date_line = d;
            }
            if (t > now + o->max_skew_s || t < now - o->max_skew_s) {
                r = s3s_err(S3S_ERR_REQUEST_TIME_TOO_SKEWED);
            }
        }
    } else if (s3s_is_ok(r)) {
        uint64_t e = 0;
        if (s3s_failed(s3s_parse_u64(expires, INT64_MAX, &e))) {
            r = s3s_err(S3S_ERR_AUTH_QUERY_ERROR);
        } else if ((int64_t)e < now) {
            r = s3s_err(S3S_ERR_REQUEST_EXPIRED);
        }
    }
    if (s3s_is_ok(r)) {
        r = s_string_to_sign(req, bucket, date_line, &res->string_to_sign);
    }
    uint8_t mac[20];
    unsigned int mlen = 0;
    if (s3s_is_ok(r) && !HMAC(EVP_sha1(), secret->ptr, (int)secret->len, res->string_to_sign.ptr,
                              res->string_to_sign.len, mac, &mlen)) {
        r = s3s_err(S3S_ERR_INTERNAL);
    }
    if (s3s_is_ok(r)) {
        struct s3s_buf given;
        r = s3s_buf_init(&given, 0, 64);
        bool match = s3s_is_ok(r) && s3s_is_ok(s3s_base64_decode(sig, &given)) &&
                     s3s_ct_eq(given.ptr, given.len, mac, mlen);
        s3s_buf_clean_up(&given);
        if (s3s_is_ok(r) && !match) {
            r = s3s_err(S3S_ERR_SIGNATURE_DOES_NOT_MATCH);
        }
    }
    OPENSSL_cleanse(mac, sizeof(mac));
    s3s_buf_clean_up(&sig_dec);
    return r;
}
