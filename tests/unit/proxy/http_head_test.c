/*
 * http_head_test.c - the request head as s3seal reads it: the target and
 * headers collected, the limits, and the heads RFC 9112 has a server refuse
 * that llhttp 8 lets through (obsolete line folding, bare LF, a space before
 * the colon, Transfer-Encoding other than one "chunked"), each fed whole and
 * one byte at a time.
 */
#include "proxy/http_head.h"
#include "testlib.h"

static const struct s3s_http_head_limits s_lim = {64 * 1024, 128, 8 * 1024};

/* Parses `s` whole and in pieces of every size up to 7, and at once again
 * with a large step; returns the result code (0: accepted), which must be
 * the same however the bytes are split. */
static int32_t s_parse(struct s3s_http_head *h, const char *s, size_t *used)
{
    size_t len = strlen(s);
    int method = -1;
    size_t u = 0;
    int32_t first = s3s_http_head_parse(h, (const uint8_t *)s, len, 0, &method, &u).code;
    for (size_t step = 1; step <= 7; step++) {
        struct s3s_http_head h2;
        s3s_http_head_init(&h2, &s_lim);
        size_t u2 = 0;
        int m2 = -1;
        int32_t code = s3s_http_head_parse(&h2, (const uint8_t *)s, len, step, &m2, &u2).code;
        T_CHECK(code == first);
        if (code == 0 && first == 0) {
            T_CHECK(u2 == u && m2 == method && h2.n_hdrs == h->n_hdrs);
            T_CHECK(s3s_cur_eq(s3s_http_head_target(&h2), s3s_http_head_target(h)));
            for (size_t i = 0; i < h2.n_hdrs && i < h->n_hdrs; i++) {
                T_CHECK(s3s_cur_eq(s3s_http_head_name(&h2, i), s3s_http_head_name(h, i)));
                T_CHECK(s3s_cur_eq(s3s_http_head_value(&h2, i), s3s_http_head_value(h, i)));
            }
        }
        s3s_http_head_clean_up(&h2);
    }
    if (used) {
        *used = u;
    }
    return first;
}

static int32_t s_code(const char *s)
{
    struct s3s_http_head h;
    s3s_http_head_init(&h, &s_lim);
    int32_t code = s_parse(&h, s, NULL);
    s3s_http_head_clean_up(&h);
    return code;
}

static void test_accepts(void)
{
    struct s3s_http_head h;
    s3s_http_head_init(&h, &s_lim);
    const char *req = "PUT /b/k%20x?uploads HTTP/1.1\r\nHost: s3.local\r\n"
                      "X-Amz-Meta-A:  a b  \r\nContent-Length: 3\r\n\r\nabc";
    size_t used = 0;
    T_CHECK(s_parse(&h, req, &used) == 0);
    T_CHECK(used == strlen(req) - 3);
    T_CHECK(s3s_cur_eq_str(s3s_http_head_target(&h), "/b/k%20x?uploads"));
    T_CHECK(h.n_hdrs == 3);
    T_CHECK(s3s_cur_eq_str(s3s_http_head_name(&h, 1), "X-Amz-Meta-A"));
    T_CHECK(s3s_cur_eq_str(s3s_http_head_value(&h, 1), "a b  "));
    T_CHECK(s3s_cur_eq_str(s3s_http_head_value(&h, 2), "3"));
    s3s_http_head_clean_up(&h);

    T_CHECK(s_code("GET / HTTP/1.1\r\n\r\n") == 0);
    T_CHECK(s_code("GET / HTTP/1.1\r\nHost: x\r\nX-Empty:\r\nX-Tab:\tv\t\r\n\r\n") == 0);
    T_CHECK(s_code("PUT /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n") == 0);
    T_CHECK(s_code("PUT /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked \r\n\r\n") == 0);
    T_CHECK(s_code("GET /a HTTP/1.0\r\nHost: x\r\n\r\n") == 0);
    /* Not complete yet. */
    T_CHECK(s_code("GET / HTTP/1.1\r\nHost: x\r\n") == S3S_ERR_NEED_MORE);
    T_CHECK(s_code("GET / HTTP/1.1\r\nHost: x\r\n\r") == S3S_ERR_NEED_MORE);
}

static void test_refuses(void)
{
    static const char *bad[] = {
        /* obs-fold (RFC 9112 5.2), after a value, after an empty value, with
         * a tab, with only whitespace on the continuation line */
        "PUT /a HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\nContent-Length: 0\r\n\r\n",
        "PUT /a HTTP/1.1\r\nHost: x\r\nX-A:\r\n b\r\n\r\n",
        "PUT /a HTTP/1.1\r\nHost: x\r\nX-A: a\r\n\tb\r\n\r\n",
        "PUT /a HTTP/1.1\r\nHost: x\r\nX-A: a\r\n \r\n\r\n",
        "PUT /a HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n", /* refused before the end */
        /* bare LF line endings */
        "PUT /a HTTP/1.1\r\nHost: x\r\n\n",
        "PUT /a HTTP/1.1\nHost: x\r\n\r\n",
        "PUT /a HTTP/1.1\nHost: x\nContent-Length: 0\n\n",
        "PUT /a HTTP/1.1\r\nHost: x\nContent-Length: 0\r\n\r\n",
        /* whitespace before the colon, a name that is no token */
        "PUT /a HTTP/1.1\r\nHost : x\r\n\r\n",
        "PUT /a HTTP/1.1\r\nHost\t: x\r\n\r\n",
        "PUT /a HTTP/1.1\r\nHo(st: x\r\n\r\n",
        /* CR in a value, a lone CR */
        "PUT /a HTTP/1.1\r\nHost: x\rEvil: y\r\n\r\n",
        "PUT /a HTTP/1.1\r\nHost: x\r\r\n\r\n",
        /* Content-Length twice, a list, with Transfer-Encoding */
        "PUT /a HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\na",
        "PUT /a HTTP/1.1\r\nHost: x\r\nContent-Length: 1, 1\r\n\r\na",
        "PUT /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
        "PUT /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
        /* Transfer-Encoding other than one "chunked" */
        "PUT /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
        "PUT /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
        "PUT /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity\r\n\r\n",
        "PUT /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\r\n\r\n",
        "PUT /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        "Transfer-Encoding: chunked\r\n\r\n",
        "PUT /a HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
        /* whitespace before the first header */
        "PUT /a HTTP/1.1\r\n Host: x\r\n\r\n",
        NULL,
    };
    for (size_t i = 0; bad[i]; i++) {
        int32_t code = s_code(bad[i]);
        if (code != S3S_ERR_BAD_REQUEST) {
            fprintf(stderr, "case %zu: got %d, want BadRequest\n", i, (int)code);
        }
        T_CHECK(code == S3S_ERR_BAD_REQUEST);
    }
}

static void test_limits(void)
{
    struct s3s_http_head_limits lim = {256, 4, 64};
    struct s3s_http_head h;
    char req[1024];

    s3s_http_head_init(&h, &lim);
    snprintf(req, sizeof(req), "GET /%070d HTTP/1.1\r\nHost: x\r\n\r\n", 0);
    int m;
    size_t used;
    T_ERR(s3s_http_head_parse(&h, (const uint8_t *)req, strlen(req), 5, &m, &used),
          S3S_ERR_URI_TOO_LONG);
    T_ERR(s3s_http_head_parse(&h, (const uint8_t *)"GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n"
                                                   "D: 4\r\nE: 5\r\n\r\n",
                              63, 0, &m, &used),
          S3S_ERR_HEADERS_TOO_LARGE);
    snprintf(req, sizeof(req), "GET / HTTP/1.1\r\nA: %0300d\r\n\r\n", 0);
    T_ERR(s3s_http_head_parse(&h, (const uint8_t *)req, strlen(req), 0, &m, &used),
          S3S_ERR_HEADERS_TOO_LARGE);
    /* The head is reusable after a refusal. */
    const char *ok = "GET / HTTP/1.1\r\nA: 1\r\n\r\n";
    T_OK(s3s_http_head_parse(&h, (const uint8_t *)ok, strlen(ok), 0, &m, &used));
    T_CHECK(m == HTTP_GET && used == strlen(ok) && h.n_hdrs == 1);
    s3s_http_head_clean_up(&h);
}

int main(void)
{
    test_accepts();
    test_refuses();
    test_limits();
    return t_finish("proxy.http_head");
}
