/*
 * sse_private.h - shared between sse/'s own files only.
 */
#ifndef S3S_SSE_PRIVATE_H
#define S3S_SSE_PRIVATE_H

#include "common/common.h"

/* HKDF-SHA256 (RFC 5869, no salt) of `key` with `info`, `out_len` bytes
 * into out (segment.c). The caller wipes what it derived. */
S3S_RESULT s3s_sse__hkdf_sha256(const uint8_t *key, size_t key_len, const void *info,
                                size_t info_len, uint8_t *out, size_t out_len);

#endif /* S3S_SSE_PRIVATE_H */
