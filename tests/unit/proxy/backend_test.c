/*
 * backend_test.c - the one builder of signed backend requests: the URL as
 * signed, the headers libcurl gets (the request's, host, x-amz-date,
 * x-amz-content-sha256, Authorization; no Expect or Accept of libcurl's
 * own), the signature checked by s3seal's own verifier; and the one list
 * of object headers a REPLACE copy keeps.
 */
#include <curl/curl.h>

#include "proxy/backend.h"
#include "proxy/config.h"
#include "testlib.h"

static const char s_yaml[] = "listen: 127.0.0.1:8080\n"
                             "backend:\n"
                             "  endpoint: http://127.0.0.1:9000\n"
                             "  region: eu-west-1\n"
                             "  access_key: BACKENDKEY\n"
                             "  secret_key: backend-secret\n"
                             "credentials:\n"
                             "  - access_key: AK1\n"
                             "    secret_key: s1\n";

static bool s_lookup(void *ctx, struct s3s_cur access_key, const struct s3s_secret **secret,
                     const char **principal)
{
    const struct s3s_config *cfg = ctx;
    if (!s3s_cur_eq_str(access_key, cfg->backend.access_key)) {
        return false;
    }
    *secret = &cfg->backend.secret_key;
    *principal = "backend";
    return true;
}

static int64_t s_now(void *ctx)
{
    (void)ctx;
    return s3s_now_real(NULL);
}

static void test_sign(void)
{
    char why[256] = "";
    struct s3s_config *cfg = NULL;
    T_OK(s3s_config_load_string(s_yaml, sizeof(s_yaml) - 1, "t.yaml", &cfg, why, sizeof(why)));
    if (!cfg) {
        return;
    }
    struct s3s_buf url, scratch;
    T_OK(s3s_buf_init(&url, 0, 4096));
    T_OK(s3s_buf_init(&scratch, 0, 4096));
    struct curl_slist *list = NULL;
    struct s3s_sigv4_header hv[2] = {
        {S3S_CUR_LIT("x-amz-meta-a"), S3S_CUR_LIT("1")},
        {S3S_CUR_LIT("x-amz-tagging"), S3S_CUR_LIT("")},
    };
    T_OK(s3s_backend_sign(cfg, "PUT", S3S_CUR_LIT("/b/k%20x"), S3S_CUR_LIT("partNumber=1&uploadId=u"),
                          hv, 2, true, &url, &scratch, &list));
    T_BUFEQ(url, "http://127.0.0.1:9000/b/k%20x?partNumber=1&uploadId=u");

    /* The lines back into a request view, verified as a client's would be. */
    struct s3s_sigv4_header got[16];
    size_t n = 0;
    bool expect_off = false, accept_off = false, empty_as_semicolon = false;
    for (struct curl_slist *l = list; l && n < 16; l = l->next) {
        struct s3s_cur line = s3s_cur_from_str(l->data), name;
        if (s3s_cur_eq_str(line, "Expect:")) {
            expect_off = true;
            continue;
        }
        if (s3s_cur_eq_str(line, "Accept:")) {
            accept_off = true;
            continue;
        }
        if (s3s_cur_eq_str(line, "x-amz-tagging;")) {
            empty_as_semicolon = true; /* libcurl's spelling of an empty value */
            got[n++] = (struct s3s_sigv4_header){S3S_CUR_LIT("x-amz-tagging"), S3S_CUR_LIT("")};
            continue;
        }
        T_CHECK(s3s_cur_split(&line, ':', &name));
        got[n++] = (struct s3s_sigv4_header){name, s3s_cur_trim(line)};
    }
    T_CHECK(expect_off && accept_off && empty_as_semicolon);
    T_CHECK(n == 6); /* two of the request's, host, date, payload hash, Authorization */
    struct s3s_sigv4_request view = {S3S_CUR_LIT("PUT"), S3S_CUR_LIT("/b/k%20x"),
                                     S3S_CUR_LIT("partNumber=1&uploadId=u"), got, n};
    struct s3s_sigv4_verify_options vo = {
        .lookup = s_lookup, .lookup_ctx = cfg, .region = "eu-west-1", .service = "s3",
        .now = s_now, .max_skew_s = S3S_SIGV4_MAX_SKEW,
    };
    struct s3s_sigv4_verify_result res;
    s3s_sigv4_verify_result_init(&res);
    T_OK(s3s_sigv4_verify(&view, &vo, &res));
    T_CHECK(res.payload == S3S_SIGV4_PAYLOAD_UNSIGNED);
    s3s_sigv4_verify_result_clean_up(&res);

    curl_slist_free_all(list);
    s3s_buf_clean_up(&url);
    s3s_buf_clean_up(&scratch);
    s3s_config_destroy(cfg);
}

/* One list for a REPLACE copy, whoever makes it (a re-wrap on the proxy's
 * path, s3seal rewrap, the trailer checksum's self-copy): the storage class
 * and content encoding are kept, s3seal's own metadata never. */
static void test_object_headers(void)
{
    static const char *const kept[] = {
        "Content-Type", "cache-control", "content-disposition", "content-encoding",
        "content-language", "expires", "x-amz-storage-class", "X-Amz-Storage-Class",
        "x-amz-website-redirect-location", "x-amz-acl", "x-amz-grant-read", "x-amz-meta-owner",
        "X-Amz-Meta-Owner", NULL,
    };
    static const char *const dropped[] = {
        "x-amz-meta-s3seal-dek", "X-Amz-Meta-S3seal-Key", "x-amz-server-side-encryption",
        "x-amz-copy-source", "content-length", "etag", "last-modified", "x-amz-version-id",
        "x-amz-metadata-directive", NULL,
    };
    for (size_t i = 0; kept[i]; i++) {
        T_CHECK(s3s_backend_is_object_header(s3s_cur_from_str(kept[i])));
    }
    for (size_t i = 0; dropped[i]; i++) {
        T_CHECK(!s3s_backend_is_object_header(s3s_cur_from_str(dropped[i])));
    }
}

int main(void)
{
    test_sign();
    test_object_headers();
    s3s_sigv4_cache_clean_up();
    return t_finish("proxy.backend");
}
