/*
 * sse_open_fuzz.c - aims at the streaming decryptor (s3s_sse_dec_*) and the
 * size maths with arbitrary ciphertext, in both layouts: it must refuse,
 * never crash, and never release bytes from a segment whose tag fails.
 * First byte: segment-size selector (bits 0-2) and the multipart layout
 * (bit 7), with per-part keys, parts2 (bit 6); second byte, for the multipart layout: the part count; the rest
 * is ciphertext.
 */
#include <stdlib.h>

#include "sse/sse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2) {
        return 0;
    }
    static const uint8_t key[32] = {7};
    uint32_t seg = 16u << (data[0] % 8);
    bool multipart = (data[0] & 0x80) != 0;
    uint32_t parts = 1 + data[1] % 8;
    struct s3s_cur c = s3s_cur_from(data + 2, size - 2);
    uint32_t overhead = s3s_sse_overhead(multipart);
    uint64_t plain = 0;
    if (s3s_failed(s3s_sse_plain_size_x(c.len, seg, overhead, &plain))) {
        return 0;
    }
    struct s3s_sse_dec *d = NULL;
    if (s3s_failed(s3s_sse_dec_new(S3S_SSE_AES_256_GCM, key, S3S_CUR_LIT("fuzz"), seg, multipart,
                                   c.len, 0, 0, plain, &d))) {
        return 0;
    }
    bool ready = true;
    if (multipart && (data[0] & 0x40)) {
        ready = s3s_is_ok(s3s_sse_dec_use_part_keys(d, key));
    }
    if (ready && multipart) {
        uint64_t full = (uint64_t)seg + overhead;
        uint64_t segments = (c.len + full - 1) / full;
        ready = s3s_is_ok(s3s_sse_dec_set_parts(d, parts)) &&
                (!s3s_sse_dec_needs_first_part(d) ||
                 (c.len >= S3S_SSE_NONCE_LEN &&
                  s3s_is_ok(s3s_sse_dec_set_end_nonces(d, c.ptr, c.ptr + (segments - 1) * full))));
    }
    struct s3s_buf out;
    if (ready && s3s_is_ok(s3s_buf_init(&out, 0, size + 64))) {
        if (s3s_is_ok(s3s_sse_dec_push(d, c, &out)) && s3s_is_ok(s3s_sse_dec_finish(d))) {
            abort(); /* random bytes never authenticate */
        }
        if (out.len) {
            abort(); /* nor does any segment of them */
        }
        s3s_buf_clean_up(&out);
    }
    s3s_sse_dec_destroy(d);
    return 0;
}
