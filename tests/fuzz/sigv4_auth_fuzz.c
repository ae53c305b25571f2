/*
 * sigv4_auth_fuzz.c - aims at the Authorization header parser and the
 * presigned-query parser (s3s_sigv4_verify up to and including the signature
 * comparison), s3s_sigv4_has_auth, and the path and query canonicalisers.
 *
 * Input: "AUTH\nPATH?QUERY" - the first line is the Authorization value (an
 * empty line means no header, so the query is parsed as a presigned URL),
 * the rest the request target. Around it sit well-formed host, x-amz-date
 * and x-amz-content-sha256 headers and a clock and key lookup that accept
 * the scope of the seed files, so inputs get past parsing to the
 * canonical request and the comparison.
 *
 * Besides "no crash, no leak" it checks two properties: canonicalising a
 * canonical path or query changes nothing (the proxy signs canonical forms),
 * and a fuzzed request never verifies (it cannot know the key).
 */
#include <stdlib.h>
#include <string.h>

#include "sigv4/sigv4.h"

static const uint8_t g_key[] = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
static const struct s3s_secret g_secret = {(uint8_t *)g_key, sizeof(g_key) - 1};

static int64_t s_now(void *ctx)
{
    (void)ctx;
    return 1369353600; /* 20130524T000000Z, the date of the seeds */
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

/* canonical(canonical(x)) == canonical(x), for the path or the query. */
static void s_idempotent(struct s3s_cur in, bool query)
{
    struct s3s_buf a, b;
    if (s3s_failed(s3s_buf_init(&a, 0, 1 << 20))) {
        return;
    }
    if (s3s_failed(s3s_buf_init(&b, 0, 1 << 20))) {
        s3s_buf_clean_up(&a);
        return;
    }
    s3s_result r = query ? s3s_sigv4_canonical_query(in, false, &a)
                         : s3s_sigv4_canonical_path(in, &a);
    if (s3s_is_ok(r)) {
        r = query ? s3s_sigv4_canonical_query(s3s_buf_cur(&a), false, &b)
                  : s3s_sigv4_canonical_path(s3s_buf_cur(&a), &b);
        if (s3s_is_ok(r) && !s3s_cur_eq(s3s_buf_cur(&a), s3s_buf_cur(&b))) {
            abort();
        }
    }
    s3s_buf_clean_up(&a);
    s3s_buf_clean_up(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct s3s_cur in = s3s_cur_from(data, size), authz;
    if (!s3s_cur_split(&in, '\n', &authz)) {
        authz = in;
        in.len = 0;
    }
    struct s3s_cur path = in, query = s3s_cur_from(NULL, 0);
    long q = s3s_cur_find(path, '?');
    if (q >= 0) {
        query = s3s_cur_from(path.ptr + q + 1, path.len - (size_t)q - 1);
        path.len = (size_t)q;
    }
    struct s3s_sigv4_header h[4] = {
        {S3S_CUR_LIT("Host"), S3S_CUR_LIT("examplebucket.s3.amazonaws.com")},
        {S3S_CUR_LIT("x-amz-date"), S3S_CUR_LIT("20130524T000000Z")},
        {S3S_CUR_LIT("x-amz-content-sha256"), S3S_CUR_LIT(S3S_SIGV4_EMPTY_SHA256)},
        {S3S_CUR_LIT("Authorization"), authz},
    };
    struct s3s_sigv4_request req = {S3S_CUR_LIT("GET"), path, query, h, authz.len ? 4 : 3};
    (void)s3s_sigv4_has_auth(&req);
    struct s3s_sigv4_verify_options o = {s_lookup,           NULL, "us-east-1", "s3", s_now, NULL,
                                         S3S_SIGV4_MAX_SKEW};
    struct s3s_sigv4_verify_result res;
    s3s_sigv4_verify_result_init(&res);
    s3s_result r = s3s_sigv4_verify(&req, &o, &res);
    /* The seeds carry wrong signatures; a match would mean the comparison
     * accepted something it computed differently. */
    if (s3s_is_ok(r)) {
        abort();
    }
    s3s_sigv4_verify_result_clean_up(&res);

    s_idempotent(path, false);
    s_idempotent(query, true);
    return 0;
}
