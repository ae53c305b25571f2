/*
 * s3.c - S3 addressing and header rules: which bucket and key a request
 * names (path-style /bucket/key, or virtual-hosted-style bucket.DOMAIN/key
 * when the config names a domain), and which headers are hop-by-hop.
 */
#include <string.h>

#include "proxy/proxy.h"

/* RFC 9110 7.6.1 plus the de-facto ones: never forwarded by a proxy. */
static const char *const s_hop_by_hop[] = {
    "connection", "keep-alive",          "proxy-connection", "te", "trailer",
    "transfer-encoding", "upgrade", "proxy-authorization", "proxy-authenticate", NULL,
};

bool s3s_s3_is_hop_by_hop(struct s3s_cur name)
{
    for (size_t i = 0; s_hop_by_hop[i]; i++) {
        if (s3s_cur_eq_str_ignore_case(name, s_hop_by_hop[i])) {
            return true;
        }
    }
    return false;
}

/* Percent-decodes a path piece ('+' stays '+': paths are not form-encoded);
 * a malformed escape is an invalid URI. */
static s3s_result s_decode(struct s3s_cur in, struct s3s_buf *out)
{
    return s3s_percent_decode(in, true, false, out);
}

/* Bucket names as S3 accepts them (3-63 characters of lower-case letters,
 * digits, '.', '-'; legacy upper case and '_' are let through for backends
 * that still have such buckets). */
static bool s_bucket_ok(struct s3s_cur b)
{
    if (b.len < 3 || b.len > 255) {
        return false;
    }
    for (size_t i = 0; i < b.len; i++) {
        uint8_t ch = b.ptr[i];
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '.' ||
                  ch == '-' || ch == '_' || (ch >= 'A' && ch <= 'Z');
        if (!ok) {
            return false;
        }
    }
    return true;
}

s3s_result s3s_s3_route(const struct s3s_config *cfg, struct s3s_req *r)
{
    struct s3s_cur host = {0};
    s3s_buf_reset(&r->bucket);
    s3s_buf_reset(&r->key);
    r->virtual_host = false;
    if (cfg->domain && s3s_req_header(r, "host", &host)) {
        /* Strip the port, then look for "<bucket>.<domain>". */
        long colon = -1;
        for (size_t i = host.len; i > 0; i--) {
            if (host.ptr[i - 1] == ':') {
                colon = (long)(i - 1);
                break;
            }
            if (host.ptr[i - 1] == ']') {
                break;
            }
        }
        if (colon >= 0) {
            host.len = (size_t)colon;
        }
        size_t dl = strlen(cfg->domain);
        if (host.len > dl + 1 && host.ptr[host.len - dl - 1] == '.' &&
            s3s_cur_eq_ignore_case(s3s_cur_from(host.ptr + host.len - dl, dl),
                                   s3s_cur_from_str(cfg->domain))) {
            struct s3s_cur bucket = s3s_cur_from(host.ptr, host.len - dl - 1);
            S3S_ENSURE(s_bucket_ok(bucket), S3S_ERR_INVALID_BUCKET_NAME);
            S3S_GUARD(s3s_buf_append_cur(&r->bucket, bucket));
            r->virtual_host = true;
            struct s3s_cur key = r->path;
            if (key.len && key.ptr[0] == '/') {
                key.ptr++;
                key.len--;
            }
            return s_decode(key, &r->key);
        }
    }
    struct s3s_cur p = r->path, bucket;
    if (p.len && p.ptr[0] == '/') {
        p.ptr++;
        p.len--;
    }
    if (p.len == 0) {
        return s3s_ok(); /* service level: ListBuckets */
    }
    if (!s3s_cur_split(&p, '/', &bucket)) {
        bucket = p;
        p.len = 0;
    }
    struct s3s_buf dec;
    S3S_GUARD(s3s_buf_init(&dec, 0, 1024));
    s3s_result res = s_decode(bucket, &dec);
    if (s3s_is_ok(res) && !s_bucket_ok(s3s_buf_cur(&dec))) {
        res = s3s_err(S3S_ERR_INVALID_BUCKET_NAME);
    }
    if (s3s_is_ok(res)) {
        res = s3s_buf_append_cur(&r->bucket, s3s_buf_cur(&dec));
    }
    s3s_buf_clean_up(&dec);
    S3S_GUARD(res);
    return s_decode(p, &r->key);
}

s3s_result s3s_log_escape(struct s3s_cur in, struct s3s_buf *out)
{
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < in.len; i++) {
        uint8_t ch = in.ptr[i];
        if (ch <= 0x20 || ch >= 0x7f || ch == '%' || ch == '"' || ch == '\\' || ch == '=') {
            uint8_t e[3] = {'%', (uint8_t)hex[ch >> 4], (uint8_t)hex[ch & 15]};
            S3S_GUARD(s3s_buf_append(out, e, 3));
        } else {
            S3S_GUARD(s3s_buf_append_byte(out, ch));
        }
    }
    return s3s_ok();
}

const char *s3s_http_reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 409: return "Conflict";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Payload Too Large";
    case 414: return "URI Too Long";
    case 416: return "Range Not Satisfiable";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return status < 400 ? "OK" : "Error";
    }
}

bool s3s_req_header(const struct s3s_req *r, const char *name, struct s3s_cur *value)
{
    for (size_t i = 0; i < r->n_headers; i++) {
        if (s3s_cur_eq_str_ignore_case(r->headers[i].name, name)) {
            *value = s3s_cur_trim(r->headers[i].value);
            return true;
        }
    }
    return false;
}

bool s3s_s3_is_put_object(const struct s3s_req *r) { return r->op == S3S_OP_PUT_OBJECT; }

void s3s_s3_op_input_of(const struct s3s_req *r, struct s3s_s3_op_input *in)
{
    struct s3s_cur v;
    *in = (struct s3s_s3_op_input){
        .method = r->method,
        .query = r->query,
        .has_bucket = r->bucket.len > 0,
        .has_key = r->key.len > 0,
        .copy_source = s3s_req_header(r, "x-amz-copy-source", &v),
    };
}

/* Does the query hold the parameter `name` (with or without a value)?
 * Names are compared decoded, as the backend reads them. */
bool s3s_s3_query_has(struct s3s_cur q, const char *name)
{
    struct s3s_cur part;
    while (s3s_cur_next(&q, '&', &part)) {
        long eq = s3s_cur_find(part, '=');
        struct s3s_cur n = eq >= 0 ? s3s_cur_from(part.ptr, (size_t)eq) : part;
        if (s3s_s3_param_name_is(n, name)) {
            return true;
        }
    }
    return false;
}

bool s3s_s3_query_value(struct s3s_cur q, const char *name, struct s3s_cur *value)
{
    struct s3s_cur part;
    bool found = false;
    while (s3s_cur_next(&q, '&', &part)) {
        long eq = s3s_cur_find(part, '=');
        if (eq >= 0 && s3s_s3_param_name_is(s3s_cur_from(part.ptr, (size_t)eq), name)) {
            *value = s3s_cur_from(part.ptr + eq + 1, part.len - (size_t)eq - 1);
            found = true;
        }
    }
    return found;
}
