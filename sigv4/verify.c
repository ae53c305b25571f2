/*
 * verify.c - verification of a client's SigV4 signature, given in the
 * Authorization header or in presigned-URL query parameters, with the errors
 * and messages AWS S3 gives for each failure.
 *
 * The coordinator s3s_sigv4_verify parses the credentials into one struct,
 * checks scope, time and payload declaration, then recomputes the signature
 * and compares it in constant time.
 */
#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "sigv4/sigv4_private.h"

/* What the two forms of authentication have in common once parsed. */
struct s_auth {
    struct s3s_cur credential;     /* AK/DATE/REGION/SERVICE/aws4_request */
    struct s3s_cur signed_headers; /* a;b;c */
    struct s3s_cur signature;      /* 64 hex */
    struct s3s_cur date;           /* x-amz-date value */
    int64_t expires;               /* presigned only */
    /* decoded presigned values live here */
    struct s3s_buf q_credential, q_signed_headers, q_signature, q_date;
};

static void s_detail(struct s3s_sigv4_verify_result *res, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void s_detail(struct s3s_sigv4_verify_result *res, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(res->detail_buf, sizeof(res->detail_buf), fmt, ap);
    va_end(ap);
    res->detail = res->detail_buf;
}

void s3s_sigv4_verify_result_init(struct s3s_sigv4_verify_result *r)
{
    memset(r, 0, sizeof(*r));
    /* No initial allocation: these cannot fail. */
    s3s_result_ignore(s3s_buf_init(&r->canonical_request, 0, 1024 * 1024));
    s3s_result_ignore(s3s_buf_init(&r->string_to_sign, 0, 4096));
    s3s_result_ignore(s3s_buf_init(&r->access_key, 0, 128));
}

void s3s_sigv4_verify_result_clean_up(struct s3s_sigv4_verify_result *r)
{
    s3s_buf_clean_up(&r->canonical_request);
    s3s_buf_clean_up(&r->string_to_sign);
    s3s_buf_clean_up(&r->access_key);
    OPENSSL_cleanse(r->seed_signature, sizeof(r->seed_signature));
}

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

/* The raw (still encoded) value of a query parameter. */
static bool s_query_raw(struct s3s_cur q, const char *name, struct s3s_cur *v)
{
    struct s3s_cur part;
    while (s3s_cur_next(&q, '&', &part)) {
        struct s3s_cur n = part, val = s3s_cur_from(NULL, 0);
        long eq = s3s_cur_find(part, '=');
        if (eq >= 0) {
            n.len = (size_t)eq;
            val = s3s_cur_from(part.ptr + eq + 1, part.len - (size_t)eq - 1);
        }
        if (s3s_cur_eq_str(n, name)) {
            *v = val;
            return true;
        }
    }
    return false;
}

bool s3s_sigv4_has_auth(const struct s3s_sigv4_request *req)
{
    struct s3s_cur v;
    return s_header(req, "authorization", &v) || s_query_raw(req->query, "X-Amz-Algorithm", &v) ||
           s_query_raw(req->query, "X-Amz-Credential", &v) ||
           s_query_raw(req->query, "X-Amz-Signature", &v) ||
           s_query_raw(req->query, "AWSAccessKeyId", &v) ||
           s_query_raw(req->query, "Signature", &v);
}

/* Credential=..., SignedHeaders=..., Signature=... in any order. */
static s3s_result s_parse_header(struct s3s_cur v, struct s_auth *a,
                                 struct s3s_sigv4_verify_result *res)
{
    if (!s3s_cur_starts_with(v, S3S_SIGV4_ALGORITHM " ")) {
        S3S_BAIL(S3S_ERR_UNSUPPORTED_AUTH);
    }
    v.ptr += sizeof(S3S_SIGV4_ALGORITHM);
    v.len -= sizeof(S3S_SIGV4_ALGORITHM);
    struct s3s_cur part;
    while (s3s_cur_next(&v, ',', &part)) {
        part = s3s_cur_trim(part);
        if (part.len == 0) {
            continue;
        }
        struct s3s_cur key;
        if (!s3s_cur_split(&part, '=', &key)) {
            s_detail(res, "The authorization header is malformed; the authorization component "
                          "\"%.*s\" is malformed.",
                     (int)(part.len > 64 ? 64 : part.len), (const char *)part.ptr);
            S3S_BAIL(S3S_ERR_AUTH_HEADER_MALFORMED);
        }
        key = s3s_cur_trim(key);
        part = s3s_cur_trim(part);
        if (s3s_cur_eq_str(key, "Credential")) {
            a->credential = part;
        } else if (s3s_cur_eq_str(key, "SignedHeaders")) {
            a->signed_headers = part;
        } else if (s3s_cur_eq_str(key, "Signature")) {
            a->signature = part;
        } else {
            s_detail(res, "The authorization header is malformed; unknown component \"%.*s\".",
                     (int)(key.len > 64 ? 64 : key.len), (const char *)key.ptr);
            S3S_BAIL(S3S_ERR_AUTH_HEADER_MALFORMED);
        }
    }
    if (!a->credential.len || !a->signed_headers.len || !a->signature.len) {
        s_detail(res, "The authorization header is malformed; it must name Credential, "
                      "SignedHeaders and Signature.");
        S3S_BAIL(S3S_ERR_AUTH_HEADER_MALFORMED);
    }
    return s3s_ok();
}

static s3s_result s_query_decoded(struct s3s_cur q, const char *name, struct s3s_buf *out,
                                  bool *found)
{
    struct s3s_cur raw;
    *found = s_query_raw(q, name, &raw);
    S3S_GUARD(s3s_buf_init(out, 0, 8192));
    if (*found) {
        S3S_GUARD(s3s_sigv4__uri_decode(raw, false, out));
    }
    return s3s_ok();
}

static s3s_result s_parse_query(struct s3s_cur q, struct s_auth *a,
                                struct s3s_sigv4_verify_result *res)
{
    struct s3s_cur alg;
    if (!s_query_raw(q, "X-Amz-Algorithm", &alg)) {
        /* SigV2 query authentication (AWSAccessKeyId/Signature/Expires). */
        S3S_BAIL(S3S_ERR_UNSUPPORTED_AUTH);
    }
    if (!s3s_cur_eq_str(alg, S3S_SIGV4_ALGORITHM)) {
        s_detail(res, "X-Amz-Algorithm only supports \"AWS4-HMAC-SHA256\"");
        S3S_BAIL(S3S_ERR_AUTH_QUERY_ERROR);
    }
    bool f1, f2, f3, f4;
    S3S_GUARD(s_query_decoded(q, "X-Amz-Credential", &a->q_credential, &f1));
    S3S_GUARD(s_query_decoded(q, "X-Amz-SignedHeaders", &a->q_signed_headers, &f2));
    S3S_GUARD(s_query_decoded(q, "X-Amz-Signature", &a->q_signature, &f3));
    S3S_GUARD(s_query_decoded(q, "X-Amz-Date", &a->q_date, &f4));
    struct s3s_cur expires;
    if (!f1 || !f2 || !f3 || !f4 || !s_query_raw(q, "X-Amz-Expires", &expires)) {
        s_detail(res, "Query-string authentication version 4 requires the X-Amz-Algorithm, "
                      "X-Amz-Credential, X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and "
                      "X-Amz-Expires parameters.");
        S3S_BAIL(S3S_ERR_AUTH_QUERY_ERROR);
    }
    uint64_t e = 0;
    if (expires.len > 1 && expires.ptr[0] == '-' &&
        s3s_is_ok(s3s_parse_u64(s3s_cur_from(expires.ptr + 1, expires.len - 1), UINT64_MAX,
                                &e))) {
        /* AWS words a negative number differently from garbage. */
        s_detail(res, "X-Amz-Expires must be non-negative");
        S3S_BAIL(S3S_ERR_AUTH_QUERY_ERROR);
    }
    if (s3s_failed(s3s_parse_u64(expires, UINT64_MAX, &e))) {
        s_detail(res, "X-Amz-Expires should be a number");
        S3S_BAIL(S3S_ERR_AUTH_QUERY_ERROR);
    }
    if (e == 0) {
        /* S3's shortest validity is one second. */
        s_detail(res, "X-Amz-Expires must be greater than 0");
        S3S_BAIL(S3S_ERR_AUTH_QUERY_ERROR);
    }
    if (e > S3S_SIGV4_MAX_EXPIRES) {
        s_detail(res,
                 "X-Amz-Expires must be less than a week (in seconds) that is; 604800 seconds");
        S3S_BAIL(S3S_ERR_AUTH_QUERY_ERROR);
    }
    a->expires = (int64_t)e;
    a->credential = s3s_buf_cur(&a->q_credential);
    a->signed_headers = s3s_buf_cur(&a->q_signed_headers);
    a->signature = s3s_buf_cur(&a->q_signature);
    a->date = s3s_buf_cur(&a->q_date);
    return s3s_ok();
}

/* AK/YYYYMMDD/REGION/SERVICE/aws4_request, checked against our scope. */
static s3s_result s_check_credential(struct s3s_cur cred, const struct s3s_sigv4_verify_options *o,
                                     struct s3s_sigv4_verify_result *res, struct s3s_cur *ak,
                                     int32_t malformed)
{
    struct s3s_cur p[5], c = cred;
    size_t n = 0;
    /* The access key itself contains no '/', so split from the left. */
    while (n < 4 && s3s_cur_split(&c, '/', &p[n])) {
        n++;
    }
    p[n++] = c;
    if (n != 5 || p[0].len == 0 || p[1].len != 8 || !s3s_cur_eq_str(p[4], "aws4_request")) {
        s_detail(res, "%s the Credential is mal-formed; expecting "
                      "\"<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request\".",
                 malformed == S3S_ERR_AUTH_QUERY_ERROR ? "Error parsing the X-Amz-Credential "
                                                         "parameter;"
                                                       : "The authorization header is malformed;");
        S3S_BAIL(malformed);
    }
    *ak = p[0];
    s3s_buf_reset(&res->access_key);
    S3S_GUARD(s3s_buf_append_cur(&res->access_key, p[0]));
    memcpy(res->scope_date, p[1].ptr, 8);
    res->scope_date[8] = '\0';
    if (!s3s_cur_eq_str(p[2], o->region)) {
        s_detail(res, "%s the region '%.*s' is wrong; expecting '%s'",
                 malformed == S3S_ERR_AUTH_QUERY_ERROR ? "Error parsing the X-Amz-Credential "
                                                         "parameter;"
                                                       : "The authorization header is malformed;",
                 (int)(p[2].len > 64 ? 64 : p[2].len), (const char *)p[2].ptr, o->region);
        S3S_BAIL(malformed);
    }
    if (!s3s_cur_eq_str(p[3], o->service)) {
        s_detail(res, "%s incorrect service \"%.*s\". This endpoint belongs to \"%s\".",
                 malformed == S3S_ERR_AUTH_QUERY_ERROR ? "Error parsing the X-Amz-Credential "
                                                         "parameter;"
                                                       : "The authorization header is malformed;",
                 (int)(p[3].len > 64 ? 64 : p[3].len), (const char *)p[3].ptr, o->service);
        S3S_BAIL(malformed);
    }
    return s3s_ok();
}

static bool s_list_has(struct s3s_cur list, struct s3s_cur name)
{
    struct s3s_cur item;
    while (s3s_cur_next(&list, ';', &item)) {
        if (s3s_cur_eq_ignore_case(item, name)) {
            return true;
        }
    }
    return false;
}

static s3s_result s_payload(const struct s3s_sigv4_request *req, bool presigned,
                            struct s3s_sigv4_verify_result *res, struct s3s_cur *hash)
{
    struct s3s_cur v;
    if (!s_header(req, "x-amz-content-sha256", &v)) {
        if (presigned) {
            res->payload = S3S_SIGV4_PAYLOAD_UNSIGNED;
            *hash = S3S_CUR_LIT(S3S_SIGV4_UNSIGNED_PAYLOAD);
            return s3s_ok();
        }
        S3S_BAIL(S3S_ERR_MISSING_CONTENT_SHA256);
    }
    *hash = v;
    if (s3s_cur_eq_str(v, S3S_SIGV4_UNSIGNED_PAYLOAD)) {
        res->payload = S3S_SIGV4_PAYLOAD_UNSIGNED;
    } else if (s3s_cur_eq_str(v, "STREAMING-AWS4-HMAC-SHA256-PAYLOAD")) {
        res->payload = S3S_SIGV4_PAYLOAD_STREAMING;
    } else if (s3s_cur_eq_str(v, "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER")) {
        res->payload = S3S_SIGV4_PAYLOAD_STREAMING_TRAILER;
    } else if (s3s_cur_eq_str(v, "STREAMING-UNSIGNED-PAYLOAD-TRAILER")) {
        res->payload = S3S_SIGV4_PAYLOAD_STREAMING_UNSIGNED_TRAILER;
    } else if (v.len == 64) {
        /* Hex, either case (SDKs send lower case; the header is signed as sent). */
        uint8_t lower[64];
        for (size_t i = 0; i < 64; i++) {
            uint8_t c = v.ptr[i];
            lower[i] = (c >= 'A' && c <= 'F') ? (uint8_t)(c + 32) : c;
        }
        S3S_ENSURE(s3s_hex_decode(s3s_cur_from(lower, 64), res->payload_sha256, 32),
                   S3S_ERR_INVALID_CONTENT_SHA256);
        res->payload = S3S_SIGV4_PAYLOAD_SHA256;
    } else {
        S3S_BAIL(S3S_ERR_INVALID_CONTENT_SHA256);
    }
    return s3s_ok();
}

static s3s_result s_verify(const struct s3s_sigv4_request *req,
                           const struct s3s_sigv4_verify_options *o,
                           struct s3s_sigv4_verify_result *res, struct s_auth *a)
{
    struct s3s_cur authz;
    bool header = s_header(req, "authorization", &authz);
    bool query = s_query_raw(req->query, "X-Amz-Algorithm", &authz) ||
                 s_query_raw(req->query, "X-Amz-Signature", &authz) ||
                 s_query_raw(req->query, "X-Amz-Credential", &authz) ||
                 s_query_raw(req->query, "AWSAccessKeyId", &authz) ||
                 s_query_raw(req->query, "Signature", &authz);
    if (header && query) {
        S3S_BAIL(S3S_ERR_ONE_AUTH_MECHANISM);
    }
    if (!header && !query) {
        S3S_BAIL(S3S_ERR_ACCESS_DENIED);
    }
    res->presigned = query;
    int32_t malformed = query ? S3S_ERR_AUTH_QUERY_ERROR : S3S_ERR_AUTH_HEADER_MALFORMED;
    if (header) {
        s_header(req, "authorization", &authz);
        S3S_GUARD(s_parse_header(authz, a, res));
    } else {
        S3S_GUARD(s_parse_query(req->query, a, res));
    }

    struct s3s_cur ak;
    S3S_GUARD(s_check_credential(a->credential, o, res, &ak, malformed));
    const struct s3s_secret *secret = NULL;
    const char *principal = NULL;
    if (!o->lookup(o->lookup_ctx, ak, &secret, &principal)) {
        S3S_BAIL(S3S_ERR_INVALID_ACCESS_KEY_ID);
    }
    res->principal = principal;

    /* The request time. */
    int64_t t = 0;
    if (header) {
        struct s3s_cur d;
        if (s_header(req, "x-amz-date", &d)) {
            S3S_ENSURE(s3s_is_ok(s3s_time_parse_iso8601_basic(d, &t)), S3S_ERR_MISSING_DATE);
        } else if (s_header(req, "date", &d)) {
            S3S_ENSURE(s3s_is_ok(s3s_time_parse_http(d, &t)), S3S_ERR_MISSING_DATE);
        } else {
            S3S_BAIL(S3S_ERR_MISSING_DATE);
        }
    } else if (s3s_failed(s3s_time_parse_iso8601_basic(a->date, &t))) {
        s_detail(res, "X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\"");
        S3S_BAIL(S3S_ERR_AUTH_QUERY_ERROR);
    }
    res->request_time = t;
    char date[17];
    s3s_time_format_iso8601_basic(t, date);
    if (memcmp(date, res->scope_date, 8) != 0) {
        s_detail(res, "%s Invalid credential date \"%s\". This date is not the same as X-Amz-Date: "
                      "\"%.8s\".",
                 header ? "The authorization header is malformed;" : "Error parsing the "
                                                                     "X-Amz-Credential "
                                                                     "parameter;",
                 res->scope_date, date);
        S3S_BAIL(malformed);
    }
    int64_t now = o->now(o->now_ctx);
    if (header) {
        if (t > now + o->max_skew_s || t < now - o->max_skew_s) {
            S3S_BAIL(S3S_ERR_REQUEST_TIME_TOO_SKEWED);
        }
    } else {
        if (t > now + o->max_skew_s) {
            S3S_BAIL(S3S_ERR_REQUEST_NOT_YET_VALID);
        }
        if (now > t + a->expires) {
            S3S_BAIL(S3S_ERR_REQUEST_EXPIRED);
        }
    }

    /* Signed headers: host always, and every x-amz-* header present, for
     * presigned URLs too (AWS answers HeadersNotSigned): otherwise the holder
     * of a URL signed for "host" could add x-amz-server-side-encryption,
     * x-amz-copy-source or x-amz-acl that the signer never authorised. */
    if (!s_list_has(a->signed_headers, S3S_CUR_LIT("host"))) {
        s_detail(res, "%s the SignedHeaders must include host.",
                 header ? "The authorization header is malformed;" : "Error parsing the "
                                                                     "X-Amz-SignedHeaders "
                                                                     "parameter;");
        S3S_BAIL(malformed);
    }
    for (size_t i = 0; i < req->n_headers; i++) {
        struct s3s_cur n = req->headers[i].name;
        if (n.len >= 6 && s3s_cur_eq_ignore_case(s3s_cur_from(n.ptr, 6), S3S_CUR_LIT("x-amz-")) &&
            !s_list_has(a->signed_headers, n)) {
            S3S_BAIL(S3S_ERR_HEADERS_NOT_SIGNED);
        }
    }
    struct s3s_cur payload;
    S3S_GUARD(s_payload(req, !header, res, &payload));

    /* Recompute and compare. */
    S3S_GUARD(s3s_sigv4_canonical_request(req, a->signed_headers, !header, payload,
                                          &res->canonical_request));
    S3S_GUARD(s3s_sigv4_string_to_sign(t, res->scope_date, o->region, o->service,
                                       s3s_buf_cur(&res->canonical_request),
                                       &res->string_to_sign));
    uint8_t key[32], sig[32], given[32];
    S3S_GUARD(s3s_sigv4_signing_key(secret, res->scope_date, o->region, o->service, key));
    s3s_result r = s3s_sigv4_signature(key, s3s_buf_cur(&res->string_to_sign), sig);
    OPENSSL_cleanse(key, sizeof(key));
    S3S_GUARD(r);
    bool match = s3s_hex_decode(a->signature, given, 32) && s3s_ct_eq(sig, 32, given, 32);
    if (!match) {
        S3S_BAIL(S3S_ERR_SIGNATURE_DOES_NOT_MATCH);
    }
    memcpy(res->seed_signature, sig, 32);
    return s3s_ok();
}

s3s_result s3s_sigv4_verify(const struct s3s_sigv4_request *req,
                            const struct s3s_sigv4_verify_options *opts,
                            struct s3s_sigv4_verify_result *res)
{
    S3S_ENSURE_REF(req);
    S3S_ENSURE_REF(opts);
    S3S_ENSURE_REF(res);
    struct s_auth a;
    memset(&a, 0, sizeof(a));
    s3s_result r = s_verify(req, opts, res, &a);
    s3s_buf_clean_up(&a.q_credential);
    s3s_buf_clean_up(&a.q_signed_headers);
    s3s_buf_clean_up(&a.q_signature);
    s3s_buf_clean_up(&a.q_date);
    return r;
}
