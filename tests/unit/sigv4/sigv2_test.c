/*
 * sigv2_test.c - Signature Version 2 against the examples of AWS's S3
 * documentation ("Signing and authenticating REST requests": GET
 * /photos/puppy.jpg, Tue, 27 Mar 2007 19:36:42 +0000, in two editions of the
 * guide), then sub-resources, x-amz-* headers, skew, expiry and tampering.
 */
#include "sigv4/sigv4.h"
#include "testlib.h"

static int64_t g_now;
static struct s3s_secret g_secret;

static int64_t s_now(void *ctx)
{
    (void)ctx;
    return g_now;
}

static bool s_lookup(void *ctx, struct s3s_cur ak, const struct s3s_secret **secret,
                     const char **principal)
{
    (void)ctx;
    if (!s3s_cur_eq_str(ak, "AKIAIOSFODNN7EXAMPLE")) {
        return false;
    }
    *secret = &g_secret;
    *principal = "arn:aws:iam::111122223333:user/example";
    return true;
}

static int32_t s_verify(const char *method, const char *path, const char *query,
                        const char *bucket, struct s3s_sigv4_header *h, size_t nh,
                        const char *want_sts)
{
    struct s3s_sigv4_request req = {s3s_cur_from_str(method), s3s_cur_from_str(path),
                                    s3s_cur_from_str(query), h, nh};
    struct s3s_sigv4_verify_options o = {s_lookup, NULL, "us-east-1", "s3", s_now, NULL, 900};
    struct s3s_sigv4_verify_result res;
    s3s_sigv4_verify_result_init(&res);
    T_CHECK(s3s_sigv2_present(&req));
    int32_t code = s3s_sigv2_verify(&req, s3s_cur_from_str(bucket), &o, &res).code;
    if (want_sts) {
        T_BUFEQ(res.string_to_sign, want_sts);
    }
    s3s_sigv4_verify_result_clean_up(&res);
    return code;
}

int main(void)
{
    T_OK(s3s_secret_from("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", 40, &g_secret));
    T_OK(s3s_time_parse_http(S3S_CUR_LIT("Tue, 27 Mar 2007 19:36:42 GMT"), &g_now));

    struct s3s_sigv4_header h[4] = {
        {S3S_CUR_LIT("Host"), S3S_CUR_LIT("awsexamplebucket1.us-west-1.s3.amazonaws.com")},
        {S3S_CUR_LIT("Date"), S3S_CUR_LIT("Tue, 27 Mar 2007 19:36:42 +0000")},
        {S3S_CUR_LIT("Authorization"),
         S3S_CUR_LIT("AWS AKIAIOSFODNN7EXAMPLE:qgk2+6Sv9/oM7G3qLEjTH1a1l1g=")},
    };
    T_CHECK(s_verify("GET", "/photos/puppy.jpg", "", "awsexamplebucket1", h, 3,
                     "GET\n\n\nTue, 27 Mar 2007 19:36:42 +0000\n/awsexamplebucket1/photos/puppy.jpg") ==
            S3S_OK);
    /* The same request path-style. */
    T_CHECK(s_verify("GET", "/awsexamplebucket1/photos/puppy.jpg", "", "", h, 3, NULL) == S3S_OK);
    /* The older edition's bucket name. */
    h[2].value = S3S_CUR_LIT("AWS AKIAIOSFODNN7EXAMPLE:bWq2s1WEIj+Ydj0vQ697zp+IXMU=");
    T_CHECK(s_verify("GET", "/photos/puppy.jpg", "", "johnsmith", h, 3, NULL) == S3S_OK);

    /* Tampering, another key, another method, skew. */
    T_CHECK(s_verify("GET", "/photos/kitten.jpg", "", "johnsmith", h, 3, NULL) ==
            S3S_ERR_SIGNATURE_DOES_NOT_MATCH);
    T_CHECK(s_verify("PUT", "/photos/puppy.jpg", "", "johnsmith", h, 3, NULL) ==
            S3S_ERR_SIGNATURE_DOES_NOT_MATCH);
    h[2].value = S3S_CUR_LIT("AWS AKIAUNKNOWN:bWq2s1WEIj+Ydj0vQ697zp+IXMU=");
    T_CHECK(s_verify("GET", "/photos/puppy.jpg", "", "johnsmith", h, 3, NULL) ==
            S3S_ERR_INVALID_ACCESS_KEY_ID);
    h[2].value = S3S_CUR_LIT("AWS AKIAIOSFODNN7EXAMPLE:bWq2s1WEIj+Ydj0vQ697zp+IXMU=");
    int64_t t0 = g_now;
    g_now = t0 + 16 * 60;
    T_CHECK(s_verify("GET", "/photos/puppy.jpg", "", "johnsmith", h, 3, NULL) ==
            S3S_ERR_REQUEST_TIME_TOO_SKEWED);
    g_now = t0;

    /* Sub-resources in order with decoded values, others left out;
     * x-amz-* headers folded; x-amz-date empties the Date line. */
    struct s3s_sigv4_header h2[5] = {
        {S3S_CUR_LIT("Host"), S3S_CUR_LIT("h")},
        {S3S_CUR_LIT("x-amz-date"), S3S_CUR_LIT("Tue, 27 Mar 2007 19:36:42 +0000")},
        {S3S_CUR_LIT("X-Amz-Meta-B"), S3S_CUR_LIT(" two ")},
        {S3S_CUR_LIT("x-amz-meta-a"), S3S_CUR_LIT("one")},
        {S3S_CUR_LIT("Authorization"), S3S_CUR_LIT("AWS AKIAIOSFODNN7EXAMPLE:AAAA")},
    };
    T_CHECK(s_verify("GET", "/b/k", "versionId=v%2B1&prefix=x&acl", "", h2, 5,
                     "GET\n\n\n\nx-amz-date:Tue, 27 Mar 2007 19:36:42 +0000\nx-amz-meta-a:one\n"
                     "x-amz-meta-b:two\n/b/k?acl&versionId=v+1") == S3S_ERR_SIGNATURE_DOES_NOT_MATCH);
    /* A bucket-level path-style request is signed as "/bucket/". */
    T_CHECK(s_verify("GET", "/b", "", "", h2, 5,
                     "GET\n\n\n\nx-amz-date:Tue, 27 Mar 2007 19:36:42 +0000\nx-amz-meta-a:one\n"
                     "x-amz-meta-b:two\n/b/") == S3S_ERR_SIGNATURE_DOES_NOT_MATCH);

    /* More x-amz-* headers than the string to sign can hold: refused, not
     * verified without the ones past the limit. */
    {
        static struct s3s_sigv4_header many[70];
        static char names[70][24];
        size_t nm = 0;
        many[nm++] = (struct s3s_sigv4_header){S3S_CUR_LIT("Host"), S3S_CUR_LIT("h")};
        many[nm++] = (struct s3s_sigv4_header){S3S_CUR_LIT("Date"),
                                               S3S_CUR_LIT("Tue, 27 Mar 2007 19:36:42 +0000")};
        for (int i = 0; i < 64; i++) {
            snprintf(names[i], sizeof(names[i]), "x-amz-meta-h%02d", i);
            many[nm++] = (struct s3s_sigv4_header){s3s_cur_from_str(names[i]), S3S_CUR_LIT("v")};
        }
        many[nm++] = (struct s3s_sigv4_header){S3S_CUR_LIT("Authorization"),
                                               S3S_CUR_LIT("AWS AKIAIOSFODNN7EXAMPLE:AAAA")};
        T_CHECK(s_verify("PUT", "/b/k", "", "", many, nm, NULL) ==
                S3S_ERR_SIGNATURE_DOES_NOT_MATCH); /* 64: all in the string to sign */
        many[nm++] = (struct s3s_sigv4_header){S3S_CUR_LIT("x-amz-acl"),
                                               S3S_CUR_LIT("public-read")};
        T_CHECK(s_verify("PUT", "/b/k", "", "", many, nm, NULL) == S3S_ERR_INVALID_ARG);
    }

    /* Query authentication: Expires in the Date line, and expiry. */
    struct s3s_sigv4_header hq[1] = {{S3S_CUR_LIT("Host"), S3S_CUR_LIT("h")}};
    T_CHECK(s_verify("GET", "/b/k", "AWSAccessKeyId=AKIAIOSFODNN7EXAMPLE&Expires=1175139620&Signature=x%2By",
                     "", hq, 1, "GET\n\n\n1175139620\n/b/k") == S3S_ERR_SIGNATURE_DOES_NOT_MATCH);
    g_now = 1175139621;
    T_CHECK(s_verify("GET", "/b/k", "AWSAccessKeyId=AKIAIOSFODNN7EXAMPLE&Expires=1175139620&Signature=x",
                     "", hq, 1, NULL) == S3S_ERR_REQUEST_EXPIRED);

    s3s_secret_destroy(&g_secret);
    return t_finish("sigv4.sigv2");
}
