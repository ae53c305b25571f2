/*
 * s3_test.c - S3 addressing (path-style, virtual-hosted-style with a
 * configured domain, encoded keys, bad bucket names), hop-by-hop headers, log
 * escaping and the XML error document.
 */
#include <libxml/parser.h>

#include "proxy/proxy.h"
#include "testlib.h"

static void s_req_init(struct s3s_req *r, struct s3s_sigv4_header *h, const char *host,
                       const char *path)
{
    memset(r, 0, sizeof(*r));
    h[0] = (struct s3s_sigv4_header){S3S_CUR_LIT("Host"), s3s_cur_from_str(host)};
    r->headers = h;
    r->n_headers = 1;
    r->path = s3s_cur_from_str(path);
    s3s_result_ignore(s3s_buf_init(&r->bucket, 0, 1024));
    s3s_result_ignore(s3s_buf_init(&r->key, 0, 4096));
}

static void s_req_clean(struct s3s_req *r)
{
    s3s_buf_clean_up(&r->bucket);
    s3s_buf_clean_up(&r->key);
}

static void test_route(void)
{
    struct s3s_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    struct s3s_req r;
    struct s3s_sigv4_header h[1];

    s_req_init(&r, h, "127.0.0.1:8080", "/docs/a%20b/c%2Bd~e.txt");
    T_OK(s3s_s3_route(&cfg, &r));
    T_BUFEQ(r.bucket, "docs");
    T_BUFEQ(r.key, "a b/c+d~e.txt");
    T_CHECK(!r.virtual_host);
    s_req_clean(&r);

    s_req_init(&r, h, "localhost", "/");
    T_OK(s3s_s3_route(&cfg, &r));
    T_CHECK(r.bucket.len == 0 && r.key.len == 0);
    s_req_clean(&r);

    s_req_init(&r, h, "localhost", "/bucket");
    T_OK(s3s_s3_route(&cfg, &r));
    T_BUFEQ(r.bucket, "bucket");
    T_CHECK(r.key.len == 0);
    s_req_clean(&r);

    s_req_init(&r, h, "localhost", "/bucket/");
    T_OK(s3s_s3_route(&cfg, &r));
    T_BUFEQ(r.bucket, "bucket");
    T_CHECK(r.key.len == 0);
    s_req_clean(&r);

    s_req_init(&r, h, "localhost", "/b%2Fx/key");
    T_ERR(s3s_s3_route(&cfg, &r), S3S_ERR_INVALID_BUCKET_NAME);
    s_req_clean(&r);

    s_req_init(&r, h, "localhost", "/bucket/bad%zzescape");
    T_ERR(s3s_s3_route(&cfg, &r), S3S_ERR_INVALID_URI);
    s_req_clean(&r);

    s_req_init(&r, h, "localhost", "/bucket/trunc%2");
    T_ERR(s3s_s3_route(&cfg, &r), S3S_ERR_INVALID_URI);
    s_req_clean(&r);

    char domain[] = "s3.example.test";
    cfg.domain = domain;
    s_req_init(&r, h, "photos.s3.example.test:8080", "/2024/a.jpg");
    T_OK(s3s_s3_route(&cfg, &r));
    T_CHECK(r.virtual_host);
    T_BUFEQ(r.bucket, "photos");
    T_BUFEQ(r.key, "2024/a.jpg");
    s_req_clean(&r);

    /* The bare domain is path-style. */
    s_req_init(&r, h, "s3.example.test", "/photos/x");
    T_OK(s3s_s3_route(&cfg, &r));
    T_CHECK(!r.virtual_host);
    T_BUFEQ(r.bucket, "photos");
    s_req_clean(&r);

    s_req_init(&r, h, "x.s3.example.test", "/k");
    T_ERR(s3s_s3_route(&cfg, &r), S3S_ERR_INVALID_BUCKET_NAME);
    s_req_clean(&r);
}

static void test_headers_and_log(void)
{
    T_CHECK(s3s_s3_is_hop_by_hop(S3S_CUR_LIT("Transfer-Encoding")));
    T_CHECK(s3s_s3_is_hop_by_hop(S3S_CUR_LIT("connection")));
    T_CHECK(!s3s_s3_is_hop_by_hop(S3S_CUR_LIT("content-length")));
    T_CHECK(!s3s_s3_is_hop_by_hop(S3S_CUR_LIT("x-amz-meta-connection")));

    struct s3s_buf b;
    T_OK(s3s_buf_init(&b, 0, 256));
    T_OK(s3s_log_escape(S3S_CUR_LIT("a b\n=c%\"d"), &b));
    T_BUFEQ(b, "a%20b%0A%3Dc%25%22d");
    s3s_buf_clean_up(&b);
}

static void test_xml_error(void)
{
    struct s3s_buf b;
    T_OK(s3s_buf_init(&b, 0, 4096));
    const char *extra[] = {"StringToSign", "AWS4-HMAC-SHA256\n<&>", NULL};
    T_OK(s3s_xml_error(&b, "SignatureDoesNotMatch", "msg <x>", "/b/k&1", "ABC", extra));
    const char *s;
    T_OK(s3s_buf_cstr(&b, &s));
    T_CHECK(strstr(s, "<Code>SignatureDoesNotMatch</Code>") != NULL);
    T_CHECK(strstr(s, "<Message>msg &lt;x&gt;</Message>") != NULL);
    T_CHECK(strstr(s, "<StringToSign>AWS4-HMAC-SHA256\n&lt;&amp;&gt;</StringToSign>") != NULL);
    T_CHECK(strstr(s, "<Resource>/b/k&amp;1</Resource>") != NULL);
    T_CHECK(strstr(s, "<RequestId>ABC</RequestId>") != NULL);
    s3s_buf_clean_up(&b);
    xmlCleanupParser();
}

int main(void)
{
    test_route();
    test_headers_and_log();
    test_xml_error();
    return t_finish("proxy.s3");
}
