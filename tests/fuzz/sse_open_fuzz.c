/*
 * sse_open_fuzz.c - aims at the streaming decryptor (s3s_sse_dec_*) and the
 * size maths with arbitrary ciphertext: it must refuse, never crash, and never
 * release bytes from a segment whose tag fails. First byte: segment-size
 * selector; the rest is ciphertext.
 */
#include <stdlib.h>

#include "sse/sse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) {
        return 0;
    }
    static const uint8_t key[32] = {7};
    uint32_t seg = 16u << (data[0] % 8);
    struct s3s_cur c = s3s_cur_from(data + 1, size - 1);
    uint64_t plain = 0;
    if (s3s_failed(s3s_sse_plain_size(c.len, seg, &plain))) {
        return 0;
    }
    struct s3s_sse_dec *d = NULL;
    if (s3s_failed(s3s_sse_dec_new(S3S_SSE_AES_256_GCM, key, S3S_CUR_LIT("fuzz"), seg, c.len, 0,
                                   0, plain, &d))) {
        return 0;
    }
    struct s3s_buf out;
    if (s3s_is_ok(s3s_buf_init(&out, 0, size + 64))) {
        if (s3s_is_ok(s3s_sse_dec_push(d, c, &out)) && s3s_is_ok(s3s_sse_dec_finish(d))) {
            abort(); /* random bytes never authenticate */
        }
        s3s_buf_clean_up(&out);
    }
    s3s_sse_dec_destroy(d);
    return 0;
}
