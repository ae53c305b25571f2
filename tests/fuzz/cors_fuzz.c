/* cors_fuzz.c - aims at PutBucketCors' body parser (s3s_cors_parse, client
 * input) and the rule matching of preflights (s3s_cors_match and
 * s3s_cors_headers, on header values from anyone): a configuration it
 * accepts must format to a GetBucketCors document that parses back to the
 * same number of rules, and every match must yield headers without a line
 * break of the client's making. The input is a document, then optionally
 * "\n--\n" and origin, method and request headers, one a line. */
#include <libxml/parser.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/cors.h"
#include "proxy/proxy.h"

static struct s3s_cur s_line(struct s3s_cur *rest)
{
    struct s3s_cur line = {0};
    if (!s3s_cur_split(rest, '\n', &line)) {
        line = *rest;
        *rest = s3s_cur_from(NULL, 0);
    }
    return line;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char sep[] = "\n--\n";
    struct s3s_cur doc = s3s_cur_from(data, size), req = {0};
    const uint8_t *at = size >= 4 ? memmem(data, size, sep, 4) : NULL;
    if (at) {
        doc = s3s_cur_from(data, (size_t)(at - data));
        req = s3s_cur_from(at + 4, size - (size_t)(at - data) - 4);
    }
    struct s3s_cors_config *c = NULL, *back = NULL;
    char why[512];
    if (s3s_failed(s3s_cors_parse(doc, &c, why, sizeof(why)))) {
        return 0;
    }
    struct s3s_buf out;
    if (s3s_is_ok(s3s_buf_init(&out, 0, 1 << 22)) && s3s_is_ok(s3s_cors_format(c, &out))) {
        if (s3s_failed(s3s_cors_parse(s3s_buf_cur(&out), &back, NULL, 0)) || back->n != c->n) {
            abort();
        }
        s3s_cors_free(back);
    }
    s3s_buf_clean_up(&out);
    struct s3s_cur origin = s_line(&req), method = s_line(&req), headers = s_line(&req);
    bool wildcard = false;
    const struct s3s_cors_rule *rule = s3s_cors_match(c, origin, method, headers, &wildcard);
    struct s3s_buf h;
    if (rule && s3s_is_ok(s3s_buf_init(&h, 0, 1 << 20))) {
        if (s3s_is_ok(s3s_cors_headers(rule, wildcard, origin, true, headers, &h))) {
            size_t lines = 0;
            for (size_t i = 0; i < h.len; i++) {
                lines += h.ptr[i] == '\n';
            }
            /* At most one line per header, each ending in CRLF. */
            if (lines > 8 || (h.len && h.ptr[h.len - 1] != '\n')) {
                abort();
            }
        }
        s3s_buf_clean_up(&h);
    }
    s3s_cors_free(c);
    return 0;
}
