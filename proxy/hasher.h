/*
 * hasher.h - the digests a request body is checked against while it streams
 * (the signed SHA-256, Content-MD5, a flexible checksum) and the plaintext
 * MD5 that becomes an encrypted object's ETag.
 *
 * A small body is hashed on the loop as it arrives. A large one is hashed on
 * the libuv thread pool, one job at a time per body and in order, while the
 * loop goes on receiving, encrypting and sending: MD5 alone costs more CPU
 * per byte than everything else a PUT does (about six times the AEAD), so on
 * the loop it would bound every upload. The loop copies each piece once into
 * a staging buffer; while a job hashes one buffer the loop fills the other,
 * and reading pauses when the staged bytes reach S3S_HASHER_STAGE_HIGH, so
 * memory stays bounded (two buffers of at most S3S_HASHER_STAGE_HIGH plus
 * one read).
 *
 * The digests are verified as before, only later: s3s_hasher_idle tells when
 * every byte pushed has been hashed, and only then may the digests be taken
 * back. A request that goes away while a job runs releases the hasher; the
 * job finishes on its own and frees it.
 */
#ifndef S3S_PROXY_HASHER_H
#define S3S_PROXY_HASHER_H

#include <openssl/evp.h>
#include <uv.h>

#include "common/common.h"
#include "sigv4/chunked.h"

/* Bodies from this size on are hashed on the thread pool. */
#define S3S_HASHER_OFFLOAD_MIN (256u * 1024)
/* Staged bytes from which the loop stops reading until a job is done. */
#define S3S_HASHER_STAGE_HIGH (256u * 1024)

/* Each digest is optional (NULL, or S3S_CHECKSUM_NONE). */
struct s3s_body_digests {
    EVP_MD_CTX *sha256;
    EVP_MD_CTX *md5;
    EVP_MD_CTX *plain_md5;
    struct s3s_checksum checksum;
};

void s3s_body_digests_clean_up(struct s3s_body_digests *d);
bool s3s_body_digests_any(const struct s3s_body_digests *d);
/* Runs p[0..n) through every digest present. */
S3S_RESULT s3s_body_digests_update(struct s3s_body_digests *d, const uint8_t *p, size_t n);

struct s3s_hasher;
/* Called on the loop after a job, while the owner is there. */
typedef void (*s3s_hasher_progress_fn)(void *ctx);

/* Takes the digests over (*d is left empty). offload: hash on the thread
 * pool of `loop`, else in s3s_hasher_push. */
S3S_RESULT s3s_hasher_new(uv_loop_t *loop, bool offload, struct s3s_body_digests *d,
                          s3s_hasher_progress_fn progress, void *ctx, struct s3s_hasher **out);
/* Hashes p[0..n) now, or stages it (copied) for the next job. */
S3S_RESULT s3s_hasher_push(struct s3s_hasher *h, const uint8_t *p, size_t n);
/* Enough is staged that the owner should stop reading. */
bool s3s_hasher_full(const struct s3s_hasher *h);
/* Every byte pushed has been hashed. */
bool s3s_hasher_idle(const struct s3s_hasher *h);
/* Only when idle: gives the digests back (into *d, which must be empty)
 * and frees the hasher. Fails if hashing failed (the digests are then
 * cleaned up). */
S3S_RESULT s3s_hasher_finish(struct s3s_hasher *h, struct s3s_body_digests *d);
/* The owner goes away: frees the hasher now, or when its job ends. */
void s3s_hasher_release(struct s3s_hasher *h);

#endif
