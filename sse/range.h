/*
 * range.h - byte ranges of encrypted objects: the client's Range, the wider
 * range of whole stored segments asked of the backend for it, the plaintext
 * range served, a copy's source range, and the part layout a multipart
 * object must have. Pure logic: no request, no loop.
 */
#ifndef S3S_SSE_RANGE_H
#define S3S_SSE_RANGE_H

#include "common/common.h"

enum s3s_sse_range_kind {
    S3S_RANGE_NONE = 0,
    S3S_RANGE_FROM_TO, /* a..b; b = UINT64_MAX: to the end */
    S3S_RANGE_SUFFIX,  /* the last a bytes */
};

struct s3s_sse_range {
    enum s3s_sse_range_kind kind;
    uint64_t a, b;
};

/* A Range header: "bytes=a-b" | "bytes=a-" | "bytes=-n". False for anything
 * else (S3 ignores a Range it cannot use and answers the whole object); *out
 * is then untouched. */
bool s3s_sse_range_parse(struct s3s_cur v, struct s3s_sse_range *out);

/* The Range header value asked of the backend for `r` (not NONE), widened to
 * whole stored segments of either layout (single stream: segment + 16 bytes,
 * multipart: segment + 28 bytes, segments of `segment` plaintext bytes), so
 * that every segment holding a byte of the plaintext range is fetched whole. */
void s3s_sse_range_widen(const struct s3s_sse_range *r, uint32_t segment, char *out, size_t cap);

/* The plaintext range [*a, *b] served from an object of `total` bytes;
 * false when none is satisfiable (416). */
bool s3s_sse_range_resolve(const struct s3s_sse_range *r, uint64_t total, uint64_t *a,
                           uint64_t *b);

/* x-amz-copy-source-range "bytes=FIRST-LAST" within a source of `size` bytes:
 * InvalidArgument when malformed, InvalidRange past the end. */
S3S_RESULT s3s_sse_copy_range_parse(struct s3s_cur v, uint64_t size, uint64_t *a, uint64_t *b);

/* The multipart layout the format needs, from CompleteMultipartUpload's part
 * numbers (in the body's order, n of them) and each part's stored size
 * (stored[number], UINT64_MAX: no such part): numbers one after the other,
 * all parts but the last of one plaintext size, whole segments, the last no
 * larger and empty only when it is the only one. Errors: InvalidPartOrder,
 * InvalidPart (a part missing), the part-size error, MalformedXML (none). */
S3S_RESULT s3s_sse_mpu_layout_check(const uint32_t *numbers, size_t n, const uint64_t *stored,
                                    uint32_t segment);

#endif /* S3S_SSE_RANGE_H */
