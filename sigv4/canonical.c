/*
 * canonical.c - SigV4 canonical forms: URI, query string, headers, the
 * canonical request and the string to sign (AWS General Reference, "Create a
 * canonical request for Signature Version 4"), with S3's rules: the path is
 * encoded once and never normalised.
 */
#include <stdlib.h>
#include <string.h>

#include "sigv4/sigv4_private.h"

static bool s_unreserved(uint8_t c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '.' || c == '_' || c == '~';
}

/* Decodes %XX once; a '%' not followed by two hex digits is kept literally
 * (and then encoded), as AWS SDKs do with such input. */
s3s_result s3s_sigv4__uri_decode(struct s3s_cur in, bool plus_is_space, struct s3s_buf *out)
{
    return s3s_percent_decode(in, false, plus_is_space, out);
}

s3s_result s3s_sigv4__uri_encode(struct s3s_cur in, bool encode_slash, struct s3s_buf *out)
{
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < in.len; i++) {
        uint8_t c = in.ptr[i];
        if (s_unreserved(c) || (c == '/' && !encode_slash)) {
            S3S_GUARD(s3s_buf_append_byte(out, c));
        } else {
            uint8_t e[3] = {'%', (uint8_t)hex[c >> 4], (uint8_t)hex[c & 15]};
            S3S_GUARD(s3s_buf_append(out, e, 3));
        }
    }
    return s3s_ok();
}

s3s_result s3s_sigv4_canonical_path(struct s3s_cur raw_path, struct s3s_buf *out)
{
    if (raw_path.len == 0) {
        return s3s_buf_append_byte(out, '/');
    }
    struct s3s_buf dec;
    S3S_GUARD(s3s_buf_init(&dec, 0, raw_path.len + 1));
    s3s_result r = s3s_sigv4__uri_decode(raw_path, false, &dec);
    if (s3s_is_ok(r)) {
        r = s3s_sigv4__uri_encode(s3s_buf_cur(&dec), false, out);
    }
    s3s_buf_clean_up(&dec);
    return r;
}

struct s_qparam {
    struct s3s_buf name, value; /* encoded */
};

static int s_qparam_cmp(const void *a, const void *b)
{
    const struct s_qparam *x = a, *y = b;
    size_t n = x->name.len < y->name.len ? x->name.len : y->name.len;
    int c = n ? memcmp(x->name.ptr, y->name.ptr, n) : 0;
    if (c == 0 && x->name.len != y->name.len) {
        c = x->name.len < y->name.len ? -1 : 1;
    }
    if (c != 0) {
        return c;
    }
    n = x->value.len < y->value.len ? x->value.len : y->value.len;
    c = n ? memcmp(x->value.ptr, y->value.ptr, n) : 0;
    if (c == 0 && x->value.len != y->value.len) {
        c = x->value.len < y->value.len ? -1 : 1;
    }
    return c;
}

/* Encodes one decoded-then-re-encoded query component. */
static s3s_result s_qcomponent(struct s3s_cur raw, struct s3s_buf *out)
{
    struct s3s_buf dec;
    S3S_GUARD(s3s_buf_init(out, 0, raw.len * 3 + 16));
    S3S_GUARD(s3s_buf_init(&dec, 0, raw.len + 1));
    s3s_result r = s3s_sigv4__uri_decode(raw, false, &dec);
    if (s3s_is_ok(r)) {
        r = s3s_sigv4__uri_encode(s3s_buf_cur(&dec), true, out);
    }
    s3s_buf_clean_up(&dec);
    return r;
}

s3s_result s3s_sigv4_canonical_query(struct s3s_cur raw_query, bool drop_signature,
                                     struct s3s_buf *out)
{
    size_t cap = 1;
    for (size_t i = 0; i < raw_query.len; i++) {
        cap += raw_query.ptr[i] == '&';
    }
    S3S_ENSURE(cap <= 10000, S3S_ERR_TOO_BIG);
    struct s_qparam *ps = s3s_calloc(cap, sizeof(*ps));
    S3S_ENSURE(ps != NULL, S3S_ERR_NOMEM);
    size_t n = 0;
    s3s_result r = s3s_ok();
    struct s3s_cur q = raw_query, part;
    while (s3s_is_ok(r) && s3s_cur_next(&q, '&', &part)) {
        if (part.len == 0) {
            continue;
        }
        struct s3s_cur name = part, value = s3s_cur_from(NULL, 0);
        long eq = s3s_cur_find(part, '=');
        if (eq >= 0) {
            name.len = (size_t)eq;
            value = s3s_cur_from(part.ptr + eq + 1, part.len - (size_t)eq - 1);
        }
        if (drop_signature && s3s_cur_eq_str(name, "X-Amz-Signature")) {
            continue;
        }
        r = s_qcomponent(name, &ps[n].name);
        if (s3s_is_ok(r)) {
            r = s_qcomponent(value, &ps[n].value);
        }
        n++;
    }
    if (s3s_is_ok(r)) {
        qsort(ps, n, sizeof(*ps), s_qparam_cmp);
        for (size_t i = 0; s3s_is_ok(r) && i < n; i++) {
            if (i) {
                r = s3s_buf_append_byte(out, '&');
            }
            if (s3s_is_ok(r)) {
                r = s3s_buf_append_cur(out, s3s_buf_cur(&ps[i].name));
            }
            if (s3s_is_ok(r)) {
                r = s3s_buf_append_byte(out, '=');
            }
            if (s3s_is_ok(r)) {
                r = s3s_buf_append_cur(out, s3s_buf_cur(&ps[i].value));
            }
        }
    }
    for (size_t i = 0; i < n; i++) {
        s3s_buf_clean_up(&ps[i].name);
        s3s_buf_clean_up(&ps[i].value);
    }
    s3s_free(&ps);
    return r;
}

/* Appends a header value trimmed, with inner runs of spaces collapsed. */
static s3s_result s_header_value(struct s3s_cur v, struct s3s_buf *out)
{
    v = s3s_cur_trim(v);
    bool space = false;
    for (size_t i = 0; i < v.len; i++) {
        uint8_t c = v.ptr[i];
        if (c == ' ' || c == '\t') {
            space = true;
            continue;
        }
        if (space) {
            S3S_GUARD(s3s_buf_append_byte(out, ' '));
            space = false;
        }
        S3S_GUARD(s3s_buf_append_byte(out, c));
    }
    return s3s_ok();
}

static s3s_result s_lower(struct s3s_cur in, struct s3s_buf *out)
{
    for (size_t i = 0; i < in.len; i++) {
        uint8_t c = in.ptr[i];
        S3S_GUARD(s3s_buf_append_byte(out, (c >= 'A' && c <= 'Z') ? (uint8_t)(c + 32) : c));
    }
    return s3s_ok();
}

s3s_result s3s_sigv4_canonical_request(const struct s3s_sigv4_request *req,
                                       struct s3s_cur signed_headers, bool presigned,
                                       struct s3s_cur payload_hash, struct s3s_buf *out)
{
    S3S_GUARD(s3s_buf_append_cur(out, req->method));
    S3S_GUARD(s3s_buf_append_byte(out, '\n'));
    S3S_GUARD(s3s_sigv4_canonical_path(req->path, out));
    S3S_GUARD(s3s_buf_append_byte(out, '\n'));
    S3S_GUARD(s3s_sigv4_canonical_query(req->query, presigned, out));
    S3S_GUARD(s3s_buf_append_byte(out, '\n'));

    /* One line per signed header, in the order SignedHeaders lists them
     * (which the signer sorted); repeated headers joined with ','. */
    struct s3s_cur sh = signed_headers, name;
    while (sh.len) {
        if (!s3s_cur_split(&sh, ';', &name)) {
            name = sh;
            sh.len = 0;
        }
        S3S_ENSURE(name.len > 0, S3S_ERR_AUTH_HEADER_MALFORMED);
        S3S_GUARD(s_lower(name, out));
        S3S_GUARD(s3s_buf_append_byte(out, ':'));
        bool first = true;
        for (size_t i = 0; i < req->n_headers; i++) {
            if (!s3s_cur_eq_ignore_case(req->headers[i].name, name)) {
                continue;
            }
            if (!first) {
                S3S_GUARD(s3s_buf_append_byte(out, ','));
            }
            S3S_GUARD(s_header_value(req->headers[i].value, out));
            first = false;
        }
        S3S_GUARD(s3s_buf_append_byte(out, '\n'));
    }
    S3S_GUARD(s3s_buf_append_byte(out, '\n'));
    S3S_GUARD(s_lower(signed_headers, out));
    S3S_GUARD(s3s_buf_append_byte(out, '\n'));
    return s3s_buf_append_cur(out, payload_hash);
}

s3s_result s3s_sigv4_string_to_sign(int64_t request_time, const char *scope_date,
                                     const char *region, const char *service,
                                     struct s3s_cur canonical_request, struct s3s_buf *out)
{
    char amz_date[17];
    uint8_t hash[32];
    s3s_time_format_iso8601_basic(request_time, amz_date);
    S3S_GUARD(s3s_sigv4__sha256(canonical_request, hash));
    S3S_GUARD(s3s_buf_appendf(out, S3S_SIGV4_ALGORITHM "\n%s\n%s/%s/%s/aws4_request\n", amz_date,
                              scope_date, region, service));
    return s3s_buf_append_hex(out, hash, sizeof(hash));
}
