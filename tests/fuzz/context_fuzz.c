/*
 * context_fuzz.c - aims at the encryption context parser
 * (s3s_kms_context_parse_json: strict JSON, duplicate keys, UTF-8) and the
 * canonical writer (s3s_kms_context_json). A map it accepts must write as
 * JSON that parses back to the same map and writes the same bytes again, and
 * must survive the base64 round trip of the header.
 */
#include <stdlib.h>
#include <string.h>

#include "keystore/policy.h"

/* Writes c (as JSON or as base64), parses the text back into a fresh map,
 * compares, and writes that again. The canonical form is never longer than
 * the accepted input, so it must always come back. */
static void s_round_trip(const struct s3s_kms_context *c, bool b64)
{
    struct s3s_kms_context back;
    struct s3s_buf text, again;
    s3s_kms_context_init(&back);
    if (s3s_failed(s3s_buf_init(&text, 0, 1 << 16)) ||
        s3s_failed(s3s_buf_init(&again, 0, 1 << 16))) {
        abort();
    }
    bool ok = b64 ? s3s_is_ok(s3s_kms_context_b64(c, &text)) &&
                        s3s_is_ok(s3s_kms_context_parse_b64(s3s_buf_cur(&text), &back)) &&
                        s3s_is_ok(s3s_kms_context_b64(&back, &again))
                  : s3s_is_ok(s3s_kms_context_json(c, &text)) &&
                        s3s_is_ok(s3s_kms_context_parse_json(s3s_buf_cur(&text), &back)) &&
                        s3s_is_ok(s3s_kms_context_json(&back, &again));
    if (!ok || !s3s_kms_context_equal(c, &back) || !s3s_cur_eq(s3s_buf_cur(&text), s3s_buf_cur(&again))) {
        abort();
    }
    s3s_kms_context_clean_up(&back);
    s3s_buf_clean_up(&text);
    s3s_buf_clean_up(&again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct s3s_kms_context c;
    s3s_kms_context_init(&c);
    if (s3s_is_ok(s3s_kms_context_parse_json(s3s_cur_from(data, size), &c))) {
        s_round_trip(&c, false);
        s_round_trip(&c, true);
    } else if (c.n != 0) {
        abort(); /* a failed parse leaves the map as it was */
    }
    s3s_kms_context_clean_up(&c);
    return 0;
}
