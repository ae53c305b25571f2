/*
 * http_head_fuzz.c - aims at the request head as s3seal reads it: llhttp
 * with s3seal's settings, the collection of target and headers under the
 * limits, and the checks on top (http_head.c). The first byte picks the
 * piece size the rest is fed in; the same bytes are also parsed at once,
 * and both must agree on accepting the head and on what it holds, which is
 * where a check that depends on where the reads end would show.
 */
#include <stdlib.h>
#include <string.h>

#include "proxy/http_head.h"

static const struct s3s_http_head_limits s_lim = {4096, 32, 1024};

static void s_check_view(const struct s3s_http_head *h)
{
    struct s3s_cur t = s3s_http_head_target(h);
    if (t.len == 0) {
        abort();
    }
    for (size_t i = 0; i < h->n_hdrs; i++) {
        struct s3s_cur n = s3s_http_head_name(h, i);
        struct s3s_cur v = s3s_http_head_value(h, i);
        if (n.len == 0 || memchr(n.ptr, ' ', n.len) || memchr(n.ptr, ':', n.len)) {
            abort(); /* names are tokens */
        }
        if (memchr(v.ptr, '\r', v.len) || memchr(v.ptr, '\n', v.len) ||
            memchr(v.ptr, '\0', v.len)) {
            abort();
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) {
        return 0;
    }
    size_t step = 1 + (data[0] & 31);
    data++;
    size--;
    struct s3s_http_head a, b;
    s3s_http_head_init(&a, &s_lim);
    s3s_http_head_init(&b, &s_lim);
    int ma = -1, mb = -1;
    size_t ua = 0, ub = 0;
    s3s_result ra = s3s_http_head_parse(&a, data, size, 0, &ma, &ua);
    s3s_result rb = s3s_http_head_parse(&b, data, size, step, &mb, &ub);
    if (s3s_is_ok(ra) != s3s_is_ok(rb)) {
        abort();
    }
    if (s3s_is_ok(ra)) {
        if (ua != ub || ua > size || ma != mb || a.n_hdrs != b.n_hdrs ||
            !s3s_cur_eq(s3s_http_head_target(&a), s3s_http_head_target(&b))) {
            abort();
        }
        for (size_t i = 0; i < a.n_hdrs; i++) {
            if (!s3s_cur_eq(s3s_http_head_name(&a, i), s3s_http_head_name(&b, i)) ||
                !s3s_cur_eq(s3s_http_head_value(&a, i), s3s_http_head_value(&b, i))) {
                abort();
            }
        }
        s_check_view(&a);
    }
    s3s_http_head_clean_up(&a);
    s3s_http_head_clean_up(&b);
    return 0;
}
