/*
 * sigv4_verify_fuzz.c - aims at the Authorization header parser, the
 * presigned-query parser and the canonicalisers (s3s_sigv4_verify and what it
 * calls). Input: lines "METHOD", "PATH?QUERY", then "Name: value" headers.
 */
#include <stdlib.h>
#include <string.h>

#include "sigv4/sigv4.h"

static struct s3s_secret g_secret = {(uint8_t *)"secret", 6};

static int64_t s_now(void *ctx)
{
    (void)ctx;
    return 1369353600; /* 20130524T000000Z */
}

static bool s_lookup(void *ctx, struct s3s_cur ak, const struct s3s_secret **secret,
                     const char **principal)
{
    (void)ctx;
    (void)ak;
    *secret = &g_secret;
    *principal = "arn:aws:iam::111122223333:user/fuzz";
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct s3s_cur in = s3s_cur_from(data, size), line;
    struct s3s_sigv4_header h[32];
    struct s3s_cur parts[2] = {{0}, {0}};
    size_t nh = 0, n = 0;
    while (in.len && nh < 32) {
        if (!s3s_cur_split(&in, '\n', &line)) {
            line = in;
            in.len = 0;
        }
        if (n < 2) {
            parts[n++] = line;
            continue;
        }
        struct s3s_cur name;
        if (s3s_cur_split(&line, ':', &name)) {
            h[nh].name = name;
            h[nh].value = line;
            nh++;
        }
    }
    struct s3s_cur path = parts[1], query = {0};
    long q = s3s_cur_find(path, '?');
    if (q >= 0) {
        query = s3s_cur_from(path.ptr + q + 1, path.len - (size_t)q - 1);
        path.len = (size_t)q;
    }
    struct s3s_sigv4_request req = {parts[0], path, query, h, nh};
    struct s3s_sigv4_verify_options o = {s_lookup, NULL, "us-east-1", "s3", s_now, NULL, 900};
    struct s3s_sigv4_verify_result res;
    s3s_sigv4_verify_result_init(&res);
    s3s_result_ignore(s3s_sigv4_verify(&req, &o, &res)); /* any outcome; no crash, no leak */
    s3s_sigv4_verify_result_clean_up(&res);
    return 0;
}
