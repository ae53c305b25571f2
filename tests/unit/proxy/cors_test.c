/*
 * cors_test.c - CORSConfiguration documents as S3 validates them (schema,
 * methods, wildcards, limits, no DTD), GetBucketCors' document (it parses
 * back to the same rules), and the matching of preflights and actual
 * requests against the rules, with the headers S3 answers.
 */
#include <libxml/parser.h>

#include "proxy/cors.h"
#include "proxy/proxy.h"
#include "testlib.h"

#define NS "http://s3.amazonaws.com/doc/2006-03-01/"
#define DOC(rules) "<CORSConfiguration xmlns=\"" NS "\">" rules "</CORSConfiguration>"
#define RULE(inner) "<CORSRule>" inner "</CORSRule>"

static char s_why[512];

static int32_t s_parse(const char *xml, struct s3s_cors_config **c)
{
    return s3s_cors_parse(s3s_cur_from_str(xml), c, s_why, sizeof(s_why)).code;
}

static void test_valid(void)
{
    struct s3s_cors_config *c = NULL;
    T_CHECK(s_parse(DOC(RULE("<ID>web</ID><AllowedMethod>PUT</AllowedMethod>"
                             "<AllowedMethod>GET</AllowedMethod>"
                             "<AllowedOrigin>https://app.example.com</AllowedOrigin>"
                             "<AllowedOrigin>https://*.example.org</AllowedOrigin>"
                             "<AllowedHeader>*</AllowedHeader>"
                             "<ExposeHeader>ETag</ExposeHeader>"
                             "<ExposeHeader>x-amz-request-id</ExposeHeader>"
                             "<MaxAgeSeconds>3000</MaxAgeSeconds>")
                        RULE("<AllowedMethod>HEAD</AllowedMethod>"
                             "<AllowedOrigin>*</AllowedOrigin>")),
                    &c) == S3S_OK);
    T_CHECK(c && c->n == 2);
    if (c && c->n == 2) {
        T_STREQ(c->rules[0].id, "web");
        T_CHECK(c->rules[0].methods == (S3S_CORS_PUT | S3S_CORS_GET));
        T_CHECK(c->rules[0].allowed.n == 2 && c->rules[0].origins.n == 2);
        T_STREQ(c->rules[0].allowed.v[0], "PUT");
        T_CHECK(c->rules[0].headers.n == 1 && c->rules[0].expose.n == 2);
        T_CHECK(c->rules[0].max_age_s == 3000);
        T_CHECK(c->rules[1].id == NULL && c->rules[1].max_age_s == -1);
        T_CHECK(c->rules[1].methods == S3S_CORS_HEAD);
    }
    s3s_cors_free(c);

    /* No namespace, whitespace and comments around values. */
    T_CHECK(s_parse("<?xml version=\"1.0\"?>\n<CORSConfiguration>\n <!-- x -->\n <CORSRule>\n"
                    "  <AllowedMethod> DELETE\n</AllowedMethod>\n"
                    "  <AllowedOrigin>http://a</AllowedOrigin>\n </CORSRule>\n"
                    "</CORSConfiguration>\n",
                    &c) == S3S_OK);
    T_CHECK(c && c->n == 1 && c->rules[0].methods == S3S_CORS_DELETE);
    s3s_cors_free(c);
}

static void test_invalid(void)
{
    struct s3s_cors_config *c = NULL;
    const char *malformed[] = {
        "",
        "<CORSConfiguration>",
        DOC(""),
        "<Other>" RULE("<AllowedMethod>GET</AllowedMethod><AllowedOrigin>*</AllowedOrigin>")
        "</Other>",
        /* AllowedOrigin and AllowedMethod are required */
        DOC(RULE("<AllowedMethod>GET</AllowedMethod>")),
        DOC(RULE("<AllowedOrigin>*</AllowedOrigin>")),
        /* unknown element, two IDs, two ages, a bad age */
        DOC(RULE("<AllowedMethod>GET</AllowedMethod><AllowedOrigin>*</AllowedOrigin><X/>")),
        DOC(RULE("<ID>a</ID><ID>b</ID><AllowedMethod>GET</AllowedMethod>"
                 "<AllowedOrigin>*</AllowedOrigin>")),
        DOC(RULE("<AllowedMethod>GET</AllowedMethod><AllowedOrigin>*</AllowedOrigin>"
                 "<MaxAgeSeconds>1</MaxAgeSeconds><MaxAgeSeconds>2</MaxAgeSeconds>")),
        DOC(RULE("<AllowedMethod>GET</AllowedMethod><AllowedOrigin>*</AllowedOrigin>"
                 "<MaxAgeSeconds>-1</MaxAgeSeconds>")),
        /* text between elements, nested elements in a value, a control byte */
        DOC("text" RULE("<AllowedMethod>GET</AllowedMethod><AllowedOrigin>*</AllowedOrigin>")),
        DOC(RULE("<AllowedMethod><b>GET</b></AllowedMethod><AllowedOrigin>*</AllowedOrigin>")),
        DOC(RULE("<AllowedMethod>GET</AllowedMethod><AllowedOrigin>a&#x1;b</AllowedOrigin>")),
        /* a DTD (entities) */
        "<!DOCTYPE CORSConfiguration [<!ENTITY e \"GET\">]>" DOC(
            RULE("<AllowedMethod>&e;</AllowedMethod><AllowedOrigin>*</AllowedOrigin>")),
        NULL,
    };
    for (size_t i = 0; malformed[i]; i++) {
        c = NULL;
        int32_t e = s_parse(malformed[i], &c);
        T_CHECK(e == S3S_ERR_MALFORMED_XML);
        if (e != S3S_ERR_MALFORMED_XML) {
            fprintf(stderr, "  case %zu: %s\n", i, s3s_strerror(e));
        }
        T_CHECK(c == NULL);
    }

    T_CHECK(s_parse(DOC(RULE("<AllowedMethod>PATCH</AllowedMethod>"
                             "<AllowedOrigin>*</AllowedOrigin>")),
                    &c) == S3S_ERR_CORS_INVALID);
    T_STREQ(s_why, "Found unsupported HTTP method in CORS config. Unsupported method is PATCH");
    T_CHECK(s_parse(DOC(RULE("<AllowedMethod>get</AllowedMethod>"
                             "<AllowedOrigin>*</AllowedOrigin>")),
                    &c) == S3S_ERR_CORS_INVALID);
    T_CHECK(s_parse(DOC(RULE("<AllowedMethod>GET</AllowedMethod>"
                             "<AllowedOrigin>http://*.*.com</AllowedOrigin>")),
                    &c) == S3S_ERR_CORS_INVALID);
    T_STREQ(s_why, "AllowedOrigin \"http://*.*.com\" can not have more than one wildcard.");
    T_CHECK(s_parse(DOC(RULE("<AllowedMethod>GET</AllowedMethod><AllowedOrigin>*</AllowedOrigin>"
                             "<AllowedHeader>x-*-*</AllowedHeader>")),
                    &c) == S3S_ERR_CORS_INVALID);
    T_STREQ(s_why, "AllowedHeader \"x-*-*\" can not have more than one wildcard.");

    /* 100 rules are fine, 101 are not. */
    struct s3s_buf doc;
    T_OK(s3s_buf_init(&doc, 0, S3S_CORS_MAX_BODY));
    T_OK(s3s_buf_append_str(&doc, "<CORSConfiguration>"));
    for (int i = 0; i < 100; i++) {
        T_OK(s3s_buf_append_str(&doc, RULE("<AllowedMethod>GET</AllowedMethod>"
                                           "<AllowedOrigin>*</AllowedOrigin>")));
    }
    size_t at = doc.len;
    T_OK(s3s_buf_append_str(&doc, "</CORSConfiguration>"));
    T_OK(s3s_cors_parse(s3s_buf_cur(&doc), &c, NULL, 0));
    T_CHECK(c && c->n == 100);
    s3s_cors_free(c);
    doc.len = at;
    T_OK(s3s_buf_append_str(&doc, RULE("<AllowedMethod>GET</AllowedMethod>"
                                       "<AllowedOrigin>*</AllowedOrigin>")
                                  "</CORSConfiguration>"));
    T_ERR(s3s_cors_parse(s3s_buf_cur(&doc), &c, s_why, sizeof(s_why)), S3S_ERR_CORS_INVALID);
    T_CHECK(c == NULL);
    s3s_buf_clean_up(&doc);

    /* Over 64 KiB. */
    struct s3s_buf big;
    T_OK(s3s_buf_init(&big, 0, 2 * S3S_CORS_MAX_BODY));
    T_OK(s3s_buf_append_str(&big, "<CORSConfiguration><!--"));
    while (big.len <= S3S_CORS_MAX_BODY) {
        T_OK(s3s_buf_append_str(&big, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"));
    }
    T_OK(s3s_buf_append_str(&big, "--></CORSConfiguration>"));
    T_ERR(s3s_cors_parse(s3s_buf_cur(&big), &c, NULL, 0), S3S_ERR_MAX_MESSAGE_LENGTH);
    s3s_buf_clean_up(&big);
}

static void test_format(void)
{
    struct s3s_cors_config *c = NULL, *back = NULL;
    T_CHECK(s_parse(DOC(RULE("<ID>a&amp;b</ID><AllowedMethod>PUT</AllowedMethod>"
                             "<AllowedOrigin>https://x</AllowedOrigin>"
                             "<AllowedHeader>content-type</AllowedHeader>"
                             "<ExposeHeader>ETag</ExposeHeader>"
                             "<MaxAgeSeconds>10</MaxAgeSeconds>")),
                    &c) == S3S_OK);
    struct s3s_buf out;
    T_OK(s3s_buf_init(&out, 0, 65536));
    T_OK(s3s_cors_format(c, &out));
    const char *s = NULL;
    T_OK(s3s_buf_cstr(&out, &s));
    T_CHECK(s && strstr(s, "<CORSRule><ID>a&amp;b</ID><AllowedHeader>content-type</AllowedHeader>"
                           "<AllowedMethod>PUT</AllowedMethod>"
                           "<AllowedOrigin>https://x</AllowedOrigin>"
                           "<ExposeHeader>ETag</ExposeHeader>"
                           "<MaxAgeSeconds>10</MaxAgeSeconds></CORSRule>") != NULL);
    T_OK(s3s_cors_parse(s3s_buf_cur(&out), &back, NULL, 0));
    T_CHECK(back && back->n == 1 && back->rules[0].max_age_s == 10);
    if (back && back->n == 1) {
        T_STREQ(back->rules[0].id, "a&b");
    }
    s3s_cors_free(back);
    s3s_cors_free(c);
    s3s_buf_clean_up(&out);
}

#define CUR(s) s3s_cur_from_str(s)

static void test_match(void)
{
    struct s3s_cors_config *c = NULL;
    T_CHECK(s_parse(DOC(RULE("<AllowedMethod>PUT</AllowedMethod>"
                             "<AllowedOrigin>https://*.example.com</AllowedOrigin>"
                             "<AllowedHeader>content-*</AllowedHeader>"
                             "<AllowedHeader>x-amz-meta-a</AllowedHeader>"
                             "<ExposeHeader>ETag</ExposeHeader>"
                             "<MaxAgeSeconds>60</MaxAgeSeconds>")
                        RULE("<AllowedMethod>GET</AllowedMethod>"
                             "<AllowedMethod>HEAD</AllowedMethod>"
                             "<AllowedOrigin>*</AllowedOrigin>")),
                    &c) == S3S_OK);
    bool wild = true;
    const struct s3s_cors_rule *r;
    /* The wildcard stands for a run of bytes; origins are case-sensitive,
     * headers are not. */
    r = s3s_cors_match(c, CUR("https://a.example.com"), CUR("PUT"),
                       CUR("Content-Type, X-Amz-Meta-A"), &wild);
    T_CHECK(r == &c->rules[0] && !wild);
    T_CHECK(s3s_cors_match(c, CUR("https://.example.com"), CUR("PUT"), CUR(""), NULL) ==
            &c->rules[0]);
    T_CHECK(s3s_cors_match(c, CUR("https://a.example.org"), CUR("PUT"), CUR(""), NULL) == NULL);
    T_CHECK(s3s_cors_match(c, CUR("HTTPS://a.example.com"), CUR("PUT"), CUR(""), NULL) == NULL);
    T_CHECK(s3s_cors_match(c, CUR("https://a.example.com"), CUR("PUT"), CUR("x-other"), NULL) ==
            NULL);
    T_CHECK(s3s_cors_match(c, CUR("https://a.example.com"), CUR("DELETE"), CUR(""), NULL) ==
            NULL);
    /* The second rule, for any origin. */
    r = s3s_cors_match(c, CUR("http://elsewhere"), CUR("GET"), CUR(""), &wild);
    T_CHECK(r == &c->rules[1] && wild);
    T_CHECK(s3s_cors_match(c, CUR("http://elsewhere"), CUR("get"), CUR(""), NULL) == NULL);
    T_CHECK(s3s_cors_match(c, CUR(""), CUR("GET"), CUR(""), NULL) == NULL);
    T_CHECK(s3s_cors_match(NULL, CUR("http://a"), CUR("GET"), CUR(""), NULL) == NULL);

    struct s3s_buf h;
    T_OK(s3s_buf_init(&h, 0, 4096));
    r = s3s_cors_match(c, CUR("https://a.example.com"), CUR("PUT"), CUR("Content-Type"), &wild);
    T_OK(s3s_cors_headers(r, wild, CUR("https://a.example.com"), true, CUR(" Content-Type ,"),
                          &h));
    T_BUFEQ(h, "Access-Control-Allow-Origin: https://a.example.com\r\n"
               "Access-Control-Allow-Methods: PUT\r\n"
               "Access-Control-Allow-Headers: content-type\r\n"
               "Access-Control-Allow-Credentials: true\r\n"
               "Access-Control-Expose-Headers: ETag\r\n"
               "Access-Control-Max-Age: 60\r\n"
               "Vary: Origin, Access-Control-Request-Headers, Access-Control-Request-Method\r\n");
    s3s_buf_reset(&h);
    r = s3s_cors_match(c, CUR("http://x"), CUR("HEAD"), CUR(""), &wild);
    T_OK(s3s_cors_headers(r, wild, CUR("http://x"), false, CUR(""), &h));
    T_BUFEQ(h, "Access-Control-Allow-Origin: *\r\n"
               "Access-Control-Allow-Methods: GET, HEAD\r\n"
               "Vary: Origin\r\n");
    s3s_buf_clean_up(&h);
    s3s_cors_free(c);
}

int main(void)
{
    xmlInitParser();
    test_valid();
    test_invalid();
    test_format();
    test_match();
    xmlCleanupParser();
    return t_finish("proxy.cors");
}
