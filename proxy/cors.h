/*
 * cors.h - a bucket's CORS configuration as S3 defines it: the
 * CORSConfiguration document PutBucketCors takes and GetBucketCors returns,
 * and the rule matching behind preflights (OPTIONS) and the CORS headers of
 * actual requests.
 *
 * The configuration itself is stored in the keystore beside the bucket's
 * other settings and answered by s3seal (bucket_enc.c); the stage that
 * answers preflights and adds the response headers is cors_stage.c. This
 * file is pure logic (no loop, no request): unit-tested on its own.
 */
#ifndef S3S_PROXY_CORS_H
#define S3S_PROXY_CORS_H

#include "common/common.h"

/* AWS's limits: at most 100 rules; the document itself is bounded as the
 * other bucket documents s3seal reads (64 KiB). */
#define S3S_CORS_MAX_RULES 100
#define S3S_CORS_MAX_BODY (64 * 1024)

/* AllowedMethod values, as bits. */
enum {
    S3S_CORS_GET = 1u << 0,
    S3S_CORS_PUT = 1u << 1,
    S3S_CORS_POST = 1u << 2,
    S3S_CORS_DELETE = 1u << 3,
    S3S_CORS_HEAD = 1u << 4,
};

/* A list of strings the rule owns. */
struct s3s_cors_list {
    char **v;
    size_t n;
};

struct s3s_cors_rule {
    char *id;         /* NULL: none */
    unsigned methods;             /* S3S_CORS_* bits of `allowed` */
    struct s3s_cors_list allowed; /* AllowedMethod as given, at least one */
    struct s3s_cors_list origins; /* AllowedOrigin, at least one */
    struct s3s_cors_list headers; /* AllowedHeader */
    struct s3s_cors_list expose;  /* ExposeHeader */
    int64_t max_age_s;            /* MaxAgeSeconds; -1: none */
};

struct s3s_cors_config {
    struct s3s_cors_rule *rules;
    size_t n; /* 1 to S3S_CORS_MAX_RULES */
};

/*
 * Parses a CORSConfiguration as S3 validates it. *out is a new config,
 * freed with s3s_cors_free. Errors:
 *   S3S_ERR_MALFORMED_XML  not well-formed, a DTD, an unknown element, no
 *                          CORSRule, a rule without AllowedMethod or
 *                          AllowedOrigin, two IDs or MaxAgeSeconds, a bad
 *                          MaxAgeSeconds, control bytes in a value;
 *   S3S_ERR_MAX_MESSAGE_LENGTH  over S3S_CORS_MAX_BODY bytes;
 *   S3S_ERR_CORS_INVALID   a method S3 does not know, more than one '*' in
 *                          an AllowedOrigin or AllowedHeader, more than 100
 *                          rules (AWS's InvalidRequest; why says which).
 * why (why_len bytes, may be 0) gets the message for the client, or "".
 */
S3S_RESULT s3s_cors_parse(struct s3s_cur xml, struct s3s_cors_config **out, char *why,
                          size_t why_len);
void s3s_cors_free(struct s3s_cors_config *c);
/* GetBucketCors' document for a config (appended to out); it parses back
 * to the same config. */
S3S_RESULT s3s_cors_format(const struct s3s_cors_config *c, struct s3s_buf *out);

/* The S3S_CORS_* bit of a method name (exact, upper case), or 0. */
unsigned s3s_cors_method_bit(struct s3s_cur method);

/*
 * The first rule that allows `origin` (matched against each AllowedOrigin,
 * case-sensitively, a '*' standing for any run of bytes), `method` (one of
 * the rule's AllowedMethods) and every header named in `request_headers`
 * (a comma-separated list, as Access-Control-Request-Headers carries it;
 * empty for none; each matched case-insensitively against AllowedHeader,
 * with '*' as above). NULL when none does. `wildcard` (may be NULL) is set
 * when the origin matched an AllowedOrigin that is exactly "*".
 */
const struct s3s_cors_rule *s3s_cors_match(const struct s3s_cors_config *c,
                                           struct s3s_cur origin, struct s3s_cur method,
                                           struct s3s_cur request_headers, bool *wildcard);

/*
 * The response headers of a matched rule, as header lines ("Name: value\r\n")
 * appended to out, as S3 sends them: Access-Control-Allow-Origin (`origin`,
 * or "*" for a wildcard match), -Allow-Methods, -Allow-Credentials (not for
 * "*"), -Expose-Headers, -Max-Age, and Vary. A preflight also gets
 * -Allow-Headers (the requested headers, lower-cased) and a Vary that names
 * the request headers a preflight depends on.
 */
S3S_RESULT s3s_cors_headers(const struct s3s_cors_rule *rule, bool wildcard,
                            struct s3s_cur origin, bool preflight,
                            struct s3s_cur request_headers, struct s3s_buf *out);

#endif /* S3S_PROXY_CORS_H */
