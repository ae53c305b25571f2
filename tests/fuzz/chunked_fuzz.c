/*
 * chunked_fuzz.c - aims at the aws-chunked decoder and trailer parser
 * (s3s_chunked_push) in all three modes. First byte picks the mode and the
 * piece size the rest is fed in.
 */
#include <string.h>

#include "sigv4/chunked.h"

static s3s_result s_sink(void *ctx, const uint8_t *p, size_t n)
{
    (void)ctx;
    (void)p;
    (void)n;
    return s3s_ok();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) {
        return 0;
    }
    static const enum s3s_sigv4_payload modes[] = {
        S3S_SIGV4_PAYLOAD_STREAMING, S3S_SIGV4_PAYLOAD_STREAMING_TRAILER,
        S3S_SIGV4_PAYLOAD_STREAMING_UNSIGNED_TRAILER};
    struct s3s_chunked_options o;
    memset(&o, 0, sizeof(o));
    o.mode = modes[data[0] % 3];
    o.scope_date = "20130524";
    o.region = "us-east-1";
    o.service = "s3";
    o.max_chunk_size = 1 << 16;
    size_t step = 1 + (data[0] >> 2);
    struct s3s_chunked *c = NULL;
    if (s3s_failed(s3s_chunked_new(&o, s_sink, NULL, &c))) {
        return 0;
    }
    for (size_t off = 1; off < size; off += step) {
        size_t n = size - off < step ? size - off : step;
        if (s3s_failed(s3s_chunked_push(c, s3s_cur_from(data + off, n)))) {
            break;
        }
    }
    s3s_chunked_destroy(c);
    return 0;
}
