/*
 * chunked.h - the aws-chunked content encoding of streaming uploads
 * (x-amz-content-sha256: STREAMING-AWS4-HMAC-SHA256-PAYLOAD, its -TRAILER
 * variant, and STREAMING-UNSIGNED-PAYLOAD-TRAILER), decoded incrementally
 * with every chunk signature and the trailer signature verified, and the
 * flexible checksums (CRC32, CRC32C, CRC64NVME, SHA1, SHA256) that SDKs send
 * as headers or trailers.
 */
#ifndef S3S_SIGV4_CHUNKED_H
#define S3S_SIGV4_CHUNKED_H

#include "sigv4/sigv4.h"

/* ------------------------------------------------------------- decoder */

struct s3s_chunked;

/* Receives decoded payload bytes. Bytes of a chunk are delivered before that
 * chunk's signature has been checked (the check needs the whole chunk): the
 * caller must not commit anything before s3s_chunked_done() is true. */
typedef s3s_result s3s_chunked_data_fn(void *ctx, const uint8_t *p, size_t n);

struct s3s_chunked_options {
    enum s3s_sigv4_payload mode; /* one of the three STREAMING modes */
    /* For the signed modes: the signing key of the request's scope and the
     * request's own signature (the seed of the chain). */
    uint8_t signing_key[32];
    uint8_t seed_signature[32];
    int64_t request_time;
    const char *scope_date; /* yyyymmdd */
    const char *region;
    const char *service;
    /* Largest chunk accepted (S3 SDKs use 64 KiB to 8 MiB). */
    uint64_t max_chunk_size;
};

S3S_RESULT s3s_chunked_new(const struct s3s_chunked_options *opts, s3s_chunked_data_fn *on_data,
                           void *ctx, struct s3s_chunked **out);
void s3s_chunked_destroy(struct s3s_chunked *c);

/*
 * Consumes all of `in`. Errors: S3S_ERR_SIGNATURE_DOES_NOT_MATCH for a chunk
 * or trailer signature that does not verify; S3S_ERR_INVALID_CHUNK for bad
 * framing; S3S_ERR_INCOMPLETE_BODY for bytes after the end; or what on_data
 * returned. After an error the decoder accepts nothing more.
 */
S3S_RESULT s3s_chunked_push(struct s3s_chunked *c, struct s3s_cur in);

/* True once the final chunk, the trailers and their signature were read. */
bool s3s_chunked_done(const struct s3s_chunked *c);
/* Decoded payload bytes so far. */
uint64_t s3s_chunked_decoded(const struct s3s_chunked *c);
/* A trailer's value (name compared case-insensitively), after done. */
bool s3s_chunked_trailer(const struct s3s_chunked *c, const char *name, struct s3s_cur *value);

/* ----------------------------------------------------------- checksums */

enum s3s_checksum_alg {
    S3S_CHECKSUM_NONE = 0,
    S3S_CHECKSUM_CRC32,
    S3S_CHECKSUM_CRC32C,
    S3S_CHECKSUM_CRC64NVME,
    S3S_CHECKSUM_SHA1,
    S3S_CHECKSUM_SHA256,
};

/* "CRC32" <-> alg (the x-amz-sdk-checksum-algorithm spelling), and the
 * header name "x-amz-checksum-crc32". */
enum s3s_checksum_alg s3s_checksum_alg_parse(struct s3s_cur name);
enum s3s_checksum_alg s3s_checksum_alg_from_header(struct s3s_cur header_name);
const char *s3s_checksum_header(enum s3s_checksum_alg alg);

struct s3s_checksum {
    enum s3s_checksum_alg alg;
    uint64_t crc;
    void *md; /* EVP_MD_CTX for SHA1/SHA256 */
};

S3S_RESULT s3s_checksum_init(struct s3s_checksum *c, enum s3s_checksum_alg alg);
S3S_RESULT s3s_checksum_update(struct s3s_checksum *c, const uint8_t *p, size_t n);
/* Appends the base64 of the digest (as in x-amz-checksum-* headers). */
S3S_RESULT s3s_checksum_final(struct s3s_checksum *c, struct s3s_buf *b64);
void s3s_checksum_clean_up(struct s3s_checksum *c);

#endif
