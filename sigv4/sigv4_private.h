/*
 * sigv4_private.h - shared between sigv4/'s own files only.
 */
#ifndef S3S_SIGV4_PRIVATE_H
#define S3S_SIGV4_PRIVATE_H

#include "sigv4/sigv4.h"

S3S_RESULT s3s_sigv4__uri_decode(struct s3s_cur in, bool plus_is_space, struct s3s_buf *out);
/* Encodes all but unreserved bytes (and '/' unless encode_slash), %XX upper. */
S3S_RESULT s3s_sigv4__uri_encode(struct s3s_cur in, bool encode_slash, struct s3s_buf *out);
S3S_RESULT s3s_sigv4__sha256(struct s3s_cur in, uint8_t out[32]);
S3S_RESULT s3s_sigv4__hmac(const uint8_t *key, size_t key_len, struct s3s_cur msg,
                           uint8_t out[32]);

#endif
