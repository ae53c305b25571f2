/*
 * sigv2_fuzz.c - aims at Signature Version 2 verification (sigv4/sigv2.c):
 * the Authorization header "AWS AKID:signature", the presigned query
 * (AWSAccessKeyId, Signature, Expires), the Date / x-amz-date parsing, and
 * the string to sign (Content-MD5, Content-Type, the sorted and joined
 * x-amz-* headers, the bucket, path and sub-resources with their decoded
 * values).
 *
 * Input: "METHOD BUCKET\n" (BUCKET: a virtual-hosted request's bucket, or
 * nothing), then header lines "Name: value" up to an empty line, then
 * "PATH?QUERY". A key lookup accepts AKIAIOSFODNN7EXAMPLE and a fixed clock
 * the dates of the seeds, so inputs get to the string to sign and the
 * comparison. Verification runs only where s3s_sigv2_present says SigV2,
 * as in the proxy. A fuzzed request never verifies: it cannot know the key.
 */
#include <stdlib.h>

#include "sigv4/sigv4.h"

#define S_MAX_HEADERS 80

/* Not the key of AWS's examples, which the seeds' signatures are made with:
 * a seed must not verify whatever the fuzzer leaves of it. */
static const uint8_t g_key[] = "fuzz/not-the-example-key/K7MDENG/bPxRfiCY";
static const struct s3s_secret g_secret = {(uint8_t *)g_key, sizeof(g_key) - 1};

static int64_t s_now(void *ctx)
{
    (void)ctx;
    return 1175139620; /* Tue, 27 Mar 2007 19:36:42 +0000, the seeds' Date */
}

static bool s_lookup(void *ctx, struct s3s_cur ak, const struct s3s_secret **secret,
                     const char **principal)
{
    (void)ctx;
    if (!s3s_cur_eq_str(ak, "AKIAIOSFODNN7EXAMPLE")) {
        return false;
    }
    *secret = &g_secret;
    *principal = "fuzz";
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct s3s_cur in = s3s_cur_from(data, size), first, line;
    if (!s3s_cur_split(&in, '\n', &first)) {
        return 0;
    }
    struct s3s_cur method = first, bucket = s3s_cur_from(NULL, 0);
    long sp = s3s_cur_find(first, ' ');
    if (sp >= 0) {
        method.len = (size_t)sp;
        bucket = s3s_cur_from(first.ptr + sp + 1, first.len - (size_t)sp - 1);
    }
    static struct s3s_sigv4_header h[S_MAX_HEADERS];
    size_t n = 0;
    while (s3s_cur_split(&in, '\n', &line) && line.len) {
        struct s3s_cur name;
        if (n < S_MAX_HEADERS && s3s_cur_split(&line, ':', &name)) {
            h[n].name = name;
            h[n].value = line;
            n++;
        }
    }
    struct s3s_cur path = in, query = s3s_cur_from(NULL, 0);
    long q = s3s_cur_find(path, '?');
    if (q >= 0) {
        query = s3s_cur_from(path.ptr + q + 1, path.len - (size_t)q - 1);
        path.len = (size_t)q;
    }
    struct s3s_sigv4_request req = {method, path, query, h, n};
    if (!s3s_sigv2_present(&req)) {
        return 0;
    }
    struct s3s_sigv4_verify_options o = {s_lookup,           NULL, "us-east-1", "s3", s_now, NULL,
                                         S3S_SIGV4_MAX_SKEW};
    struct s3s_sigv4_verify_result res;
    s3s_sigv4_verify_result_init(&res);
    if (s3s_is_ok(s3s_sigv2_verify(&req, bucket, &o, &res))) {
        abort(); /* no input knows the key */
    }
    s3s_sigv4_verify_result_clean_up(&res);
    return 0;
}
