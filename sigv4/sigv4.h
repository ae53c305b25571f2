/*
 * sigv4.h - AWS Signature Version 4: verification of client requests (the
 * Authorization header and presigned query strings) and signing of the
 * requests s3seal sends to its backend.
 *
 * Pure logic: a request is described by a view (method, raw path, raw query,
 * headers as cursors); nothing here touches sockets, llhttp or libuv. All
 * cursors in a view are borrowed and must outlive the call.
 */
#ifndef S3S_SIGV4_H
#define S3S_SIGV4_H

#include "common/common.h"

#define S3S_SIGV4_ALGORITHM "AWS4-HMAC-SHA256"
#define S3S_SIGV4_UNSIGNED_PAYLOAD "UNSIGNED-PAYLOAD"
/* SHA-256 of the empty string. */
#define S3S_SIGV4_EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
/* AWS: presigned URLs are valid for at most 7 days. */
#define S3S_SIGV4_MAX_EXPIRES 604800
/* AWS: requests dated more than 15 minutes away from the server clock fail. */
#define S3S_SIGV4_MAX_SKEW 900

struct s3s_sigv4_header {
    struct s3s_cur name;  /* any case; compared case-insensitively */
    struct s3s_cur value; /* as received (untrimmed is fine) */
};

/* A request as it arrived on the wire. */
struct s3s_sigv4_request {
    struct s3s_cur method;
    struct s3s_cur path;  /* raw request-target path, still percent-encoded, no '?' */
    struct s3s_cur query; /* raw query string after '?', without it; may be empty */
    const struct s3s_sigv4_header *headers;
    size_t n_headers;
};

/* How the payload is covered by the signature (x-amz-content-sha256). */
enum s3s_sigv4_payload {
    S3S_SIGV4_PAYLOAD_UNSIGNED = 0,      /* UNSIGNED-PAYLOAD, or presigned without the header */
    S3S_SIGV4_PAYLOAD_SHA256,            /* a hex SHA-256 the body must match */
    S3S_SIGV4_PAYLOAD_STREAMING,         /* STREAMING-AWS4-HMAC-SHA256-PAYLOAD */
    S3S_SIGV4_PAYLOAD_STREAMING_TRAILER, /* STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER */
    S3S_SIGV4_PAYLOAD_STREAMING_UNSIGNED_TRAILER, /* STREAMING-UNSIGNED-PAYLOAD-TRAILER */
};

/* Looks up the secret key for an access key id. Returns false when unknown.
 * *secret and *principal stay owned by the callee and must outlive the verify
 * call (the config owns them in s3seal). */
typedef bool s3s_sigv4_lookup_fn(void *ctx, struct s3s_cur access_key,
                                 const struct s3s_secret **secret, const char **principal);

struct s3s_sigv4_verify_options {
    s3s_sigv4_lookup_fn *lookup;
    void *lookup_ctx;
    const char *region;  /* the region s3seal answers for, e.g. "us-east-1" */
    const char *service; /* "s3" */
    s3s_now_fn *now;     /* clock; s3s_now_real in production */
    void *now_ctx;
    int64_t max_skew_s; /* S3S_SIGV4_MAX_SKEW */
};

/* What a verification established. Owned by the caller; release with
 * s3s_sigv4_verify_result_clean_up. */
struct s3s_sigv4_verify_result {
    /* On S3S_ERR_SIGNATURE_DOES_NOT_MATCH these hold what s3seal computed, for
     * the error body (AWS returns both); on success too. */
    struct s3s_buf canonical_request;
    struct s3s_buf string_to_sign;
    struct s3s_buf access_key; /* the access key id of the request (also on failure, if parsed) */
    const char *principal;     /* from the lookup; NULL when unknown */
    bool presigned;
    enum s3s_sigv4_payload payload;
    uint8_t payload_sha256[32]; /* when payload == S3S_SIGV4_PAYLOAD_SHA256 */
    uint8_t seed_signature[32]; /* the request's signature: seed of aws-chunked chains */
    int64_t request_time;       /* x-amz-date / X-Amz-Date as Unix seconds */
    char scope_date[9];         /* yyyymmdd of the credential scope */
    /* A more specific message for the error body (AWS's wording), or NULL;
     * points to a static string or into detail_buf. */
    const char *detail;
    char detail_buf[256];
};

void s3s_sigv4_verify_result_init(struct s3s_sigv4_verify_result *r);
void s3s_sigv4_verify_result_clean_up(struct s3s_sigv4_verify_result *r);

/* True if the request carries SigV4 credentials (header or query); false if
 * it is anonymous. */
bool s3s_sigv4_has_auth(const struct s3s_sigv4_request *req);

/*
 * Verifies a request signed with Authorization: AWS4-HMAC-SHA256 or with
 * X-Amz-Algorithm=AWS4-HMAC-SHA256 presigned query parameters.
 *
 * Errors (as AWS gives them): S3S_ERR_INVALID_ACCESS_KEY_ID,
 * S3S_ERR_SIGNATURE_DOES_NOT_MATCH, S3S_ERR_REQUEST_TIME_TOO_SKEWED,
 * S3S_ERR_REQUEST_EXPIRED, S3S_ERR_REQUEST_NOT_YET_VALID,
 * S3S_ERR_AUTH_QUERY_ERROR (X-Amz-Expires over 7 days, missing parameters),
 * S3S_ERR_AUTH_HEADER_MALFORMED (bad header, wrong region or service in the
 * scope), S3S_ERR_MISSING_SECURITY_HEADER, S3S_ERR_UNSUPPORTED_AUTH,
 * S3S_ERR_INVALID_CONTENT_SHA256, S3S_ERR_MISSING_DATE, S3S_ERR_ACCESS_DENIED
 * (no credentials at all). The signature comparison is constant-time.
 * Synchronous; the result is filled as far as parsing got.
 */
S3S_RESULT s3s_sigv4_verify(const struct s3s_sigv4_request *req,
                            const struct s3s_sigv4_verify_options *opts,
                            struct s3s_sigv4_verify_result *res);

/* ------------------------------------------------------- Signature V2 */

/* True if the request carries AWS Signature Version 2 credentials
 * (Authorization: AWS AKID:sig, or AWSAccessKeyId/Signature/Expires in the
 * query) rather than SigV4. */
bool s3s_sigv2_present(const struct s3s_sigv4_request *req);

/*
 * Verifies a Signature Version 2 request (HMAC-SHA1 over AWS's string to
 * sign, for legacy uploaders; enabled by `sigv2: true`). `bucket` is the
 * bucket of a virtual-hosted request (empty for path-style), which AWS puts
 * at the front of the canonicalized resource. Same result struct and errors
 * as s3s_sigv4_verify; res->payload is UNSIGNED.
 */
S3S_RESULT s3s_sigv2_verify(const struct s3s_sigv4_request *req, struct s3s_cur bucket,
                            const struct s3s_sigv4_verify_options *opts,
                            struct s3s_sigv4_verify_result *res);

/* ------------------------------------------------------------- signing */

struct s3s_sigv4_credentials {
    struct s3s_cur access_key;
    const struct s3s_secret *secret_key;
};

/*
 * Signs a request for the backend. `req` holds the headers that will be sent
 * (they must include "host"); every header in it is signed. The request's
 * path and query must already be in canonical (SigV4-encoded) form, which is
 * what s3s_sigv4_canonical_path/query produce; s3seal sends exactly those
 * bytes, so what is signed is what is sent. `payload_hash` is the value of
 * x-amz-content-sha256 (which must also be among the headers, as must
 * x-amz-date with the value formatted from `now`).
 * Appends the complete Authorization header value to `authorization`.
 */
S3S_RESULT s3s_sigv4_sign(const struct s3s_sigv4_request *req,
                          const struct s3s_sigv4_credentials *creds, const char *region,
                          const char *service, int64_t now, struct s3s_cur payload_hash,
                          struct s3s_buf *authorization);

/*
 * Builds a presigned URL's query for `req` (GET/PUT...) with the given expiry;
 * appends the full query string (without '?') including X-Amz-Signature to
 * `query_out`. Only "host" is signed. Used by `s3seal presign` and tests.
 */
S3S_RESULT s3s_sigv4_presign(const struct s3s_sigv4_request *req,
                             const struct s3s_sigv4_credentials *creds, const char *region,
                             const char *service, int64_t now, int64_t expires_s,
                             struct s3s_buf *query_out);

/* ------------------------------------------------------- canonical forms */

/* Appends the SigV4 canonical URI of a raw path: percent-decode once, then
 * encode every byte but A-Z a-z 0-9 - . _ ~ and '/' (S3: no double encoding,
 * no dot-segment normalisation). An empty path becomes "/". */
S3S_RESULT s3s_sigv4_canonical_path(struct s3s_cur raw_path, struct s3s_buf *out);

/* Appends the canonical query string: each name and value decoded then
 * re-encoded ('/' encoded too), sorted by name then value; "a" becomes "a=".
 * If `drop_signature`, X-Amz-Signature is left out (presigned verify). */
S3S_RESULT s3s_sigv4_canonical_query(struct s3s_cur raw_query, bool drop_signature,
                                     struct s3s_buf *out);

/* Appends the canonical request (method, URI, query, headers, signed headers,
 * payload hash joined by '\n') for the listed signed headers (lower-case,
 * ';'-separated, sorted). Header values are trimmed, inner runs of spaces
 * collapsed, repeated headers joined with ','. */
S3S_RESULT s3s_sigv4_canonical_request(const struct s3s_sigv4_request *req,
                                       struct s3s_cur signed_headers, bool presigned,
                                       struct s3s_cur payload_hash, struct s3s_buf *out);

/* Appends the string to sign for a canonical request. */
S3S_RESULT s3s_sigv4_string_to_sign(int64_t request_time, const char *scope_date,
                                     const char *region, const char *service,
                                     struct s3s_cur canonical_request, struct s3s_buf *out);

/* HMAC-SHA256 chain "AWS4"+secret -> date -> region -> service -> aws4_request.
 * Every intermediate key is wiped. Served from a small thread-safe cache keyed
 * by (secret, date, region, service); the cache holds keys in secure memory. */
S3S_RESULT s3s_sigv4_signing_key(const struct s3s_secret *secret, const char *date,
                                 const char *region, const char *service, uint8_t out[32]);

/* Signature = HMAC-SHA256(signing key, string to sign). */
S3S_RESULT s3s_sigv4_signature(const uint8_t signing_key[32], struct s3s_cur string_to_sign,
                               uint8_t out[32]);

/* Frees the signing-key cache (at exit, for leak checkers). */
void s3s_sigv4_cache_clean_up(void);

#endif /* S3S_SIGV4_H */
