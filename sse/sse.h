/*
 * sse.h - the object encryption format's segment layer: an object's plaintext
 * is cut into fixed-size segments, each sealed with an AEAD under the
 * object's data key in a STREAM construction (the nonce carries the segment
 * index and a final-segment flag), so segments cannot be reordered, dropped,
 * duplicated or truncated without detection. See sse/FORMAT.md.
 *
 * Pure logic: no I/O, no event loop. A context is not thread-safe; use one per
 * stream.
 */
#ifndef S3S_SSE_H
#define S3S_SSE_H

#include "common/common.h"

#define S3S_SSE_KEY_LEN 32
#define S3S_SSE_TAG_LEN 16
#define S3S_SSE_NONCE_LEN 12
/* Default plaintext bytes per segment. */
#define S3S_SSE_SEGMENT_SIZE 65536u
/* The largest segment index the nonce can carry (2^32 - 1 segments of 64 KiB
 * is far beyond S3's 5 TiB object limit). */
#define S3S_SSE_MAX_SEGMENTS 0xffffffffu

enum s3s_sse_aead {
    S3S_SSE_AES_256_GCM = 1,
    S3S_SSE_CHACHA20_POLY1305 = 2,
};

/* Name used in object metadata ("AES-256-GCM", "CHACHA20-POLY1305"), and back. */
const char *s3s_sse_aead_name(enum s3s_sse_aead aead);
S3S_RESULT s3s_sse_aead_parse(struct s3s_cur name, enum s3s_sse_aead *out);

struct s3s_sse_seg_ctx;

/* Creates a sealing/opening context for one data key. The key is copied into
 * secure memory; the caller may wipe its copy. */
S3S_RESULT s3s_sse_seg_ctx_new(enum s3s_sse_aead aead, const uint8_t key[S3S_SSE_KEY_LEN],
                               struct s3s_sse_seg_ctx **out);
/* Wipes and frees. NULL is fine. */
void s3s_sse_seg_ctx_destroy(struct s3s_sse_seg_ctx *ctx);
/* A new key for the same AEAD (a part's key in the parts2 layout). */
S3S_RESULT s3s_sse_seg_ctx_rekey(struct s3s_sse_seg_ctx *ctx, const uint8_t key[S3S_SSE_KEY_LEN]);
/* The tag length of every later seal and open: S3S_SSE_TAG_LEN (the
 * default) or S3S_SSE_PART_TAG_LEN. */
S3S_RESULT s3s_sse_seg_ctx_set_tag_len(struct s3s_sse_seg_ctx *ctx, size_t tag_len);

/* The nonce of a segment: 3 zero bytes, the part number (4 bytes,
 * big-endian; 0 for a single-stream object, so its first 7 bytes are zero),
 * the segment's index within the part (4 bytes, big-endian), and 0x01 for the
 * part's final segment or 0x00 otherwise. */
void s3s_sse_nonce(uint32_t index, bool final, uint8_t out[S3S_SSE_NONCE_LEN]);
void s3s_sse_part_nonce(uint32_t part, uint32_t index, bool final, uint8_t out[S3S_SSE_NONCE_LEN]);

/*
 * The multipart layout with per-part keys ("layout: parts2", sse/FORMAT.md):
 * every part upload draws S3S_SSE_PART_RAND_LEN random bytes R and seals its
 * segments under its own key, HKDF-SHA256(data key, info "s3seal-part" ||
 * part (4 bytes, big-endian) || R), with the nonce above and
 * S3S_SSE_PART_TAG_LEN-byte tags. Each segment is stored as
 *     w (4 bytes, big-endian: part << 18 | index << 1 | final) || R || sealed
 * so a stored segment still costs S3S_SSE_PART_OVERHEAD bytes, and the first
 * 12 stored bytes of a segment tell its part, index and final flag in either
 * layout: s3s_sse_part_header_nonce gives them in the form of the first
 * layout's nonce (a copy of `stored` for that layout).
 */
#define S3S_SSE_PART_RAND_LEN 12
#define S3S_SSE_PART_TAG_LEN 12
#define S3S_SSE_PART_HEADER_LEN (4 + S3S_SSE_PART_RAND_LEN)
#define S3S_SSE_PART_MAX_INDEX 0x1ffffu /* 17 bits: 8 GiB of 64 KiB segments */
void s3s_sse_part_header_nonce(bool part_keys, const uint8_t stored[S3S_SSE_NONCE_LEN],
                               uint8_t out[S3S_SSE_NONCE_LEN]);
/* The part number a stored segment header names. */
uint32_t s3s_sse_part_header_part(bool part_keys, const uint8_t stored[S3S_SSE_NONCE_LEN]);
/* A part upload's key. */
S3S_RESULT s3s_sse_part_key(const uint8_t dek[S3S_SSE_KEY_LEN], uint32_t part,
                            const uint8_t rand[S3S_SSE_PART_RAND_LEN],
                            uint8_t out[S3S_SSE_KEY_LEN]);

/*
 * Seals one segment: `plain_len` bytes (at most the segment size; only the
 * final segment may be shorter, and may be empty) from `plain` into `out`,
 * which receives plain_len + S3S_SSE_TAG_LEN bytes. `out` may equal `plain`
 * (in place). `aad` is bound to every segment (the format version header).
 */
S3S_RESULT s3s_sse_seg_seal(struct s3s_sse_seg_ctx *ctx, uint32_t index, bool final,
                            struct s3s_cur aad, const uint8_t *plain, size_t plain_len,
                            uint8_t *out);

/*
 * Opens one sealed segment of `cipher_len` bytes (>= S3S_SSE_TAG_LEN) into
 * `out` (cipher_len - S3S_SSE_TAG_LEN bytes; may equal `cipher`). Fails with
 * S3S_ERR_SSE_TAG_MISMATCH if the tag does not verify for this index, final
 * flag and aad; on failure `out` is wiped, so no unauthenticated byte leaves.
 */
S3S_RESULT s3s_sse_seg_open(struct s3s_sse_seg_ctx *ctx, uint32_t index, bool final,
                            struct s3s_cur aad, const uint8_t *cipher, size_t cipher_len,
                            uint8_t *out);

/* The same two operations with an explicit nonce (the multipart layout
 * stores each segment's nonce in front of it). */
S3S_RESULT s3s_sse_seg_seal_nonce(struct s3s_sse_seg_ctx *ctx,
                                  const uint8_t nonce[S3S_SSE_NONCE_LEN], struct s3s_cur aad,
                                  const uint8_t *plain, size_t plain_len, uint8_t *out);
S3S_RESULT s3s_sse_seg_open_nonce(struct s3s_sse_seg_ctx *ctx,
                                  const uint8_t nonce[S3S_SSE_NONCE_LEN], struct s3s_cur aad,
                                  const uint8_t *cipher, size_t cipher_len, uint8_t *out);

/* ------------------------------------------------------------ size maths */

/*
 * Two layouts (see sse/FORMAT.md): a single stream (PutObject), where every
 * segment costs its tag, and the multipart layout, where every segment is
 * stored as nonce || ciphertext || tag. A multipart object's parts other
 * than the last hold whole segments, so the same arithmetic covers the
 * whole object and each of its parts.
 */
#define S3S_SSE_PART_OVERHEAD (S3S_SSE_NONCE_LEN + S3S_SSE_TAG_LEN)
static inline uint32_t s3s_sse_overhead(bool multipart)
{
    return multipart ? S3S_SSE_PART_OVERHEAD : S3S_SSE_TAG_LEN;
}

/* Ciphertext size of a plaintext of `plain_len` bytes: every segment adds a
 * tag, and an empty plaintext is one empty final segment. */
uint64_t s3s_sse_cipher_size(uint64_t plain_len, uint32_t segment_size);

/* Plaintext size of a ciphertext; fails if no plaintext has that size. */
S3S_RESULT s3s_sse_plain_size(uint64_t cipher_len, uint32_t segment_size, uint64_t *out);

/* The same for either layout: `overhead` is s3s_sse_overhead(multipart). */
uint64_t s3s_sse_cipher_size_x(uint64_t plain_len, uint32_t segment_size, uint32_t overhead);
S3S_RESULT s3s_sse_plain_size_x(uint64_t cipher_len, uint32_t segment_size, uint32_t overhead,
                                uint64_t *out);

/* The segments that hold plaintext bytes [first, last] (inclusive) and the
 * ciphertext bytes to fetch for them. */
struct s3s_sse_span {
    uint32_t first_segment;
    uint32_t last_segment;
    uint64_t cipher_first; /* inclusive */
    uint64_t cipher_last;  /* inclusive */
    uint64_t skip;         /* plaintext bytes to drop from the first segment */
};

S3S_RESULT s3s_sse_span_for(uint64_t plain_len, uint32_t segment_size, uint64_t first,
                            uint64_t last, struct s3s_sse_span *out);

/* ------------------------------------------------------------- streams */

/*
 * A streaming encryptor for one object (or one part): plaintext arrives in
 * pieces of any size; whole sealed segments are appended to `out` as soon as
 * they are complete. The plaintext length is known up front (Content-Length),
 * which is how the final segment is recognised without look-ahead. `part` is
 * 0 for a single-stream object, or the part number (1-10000) of a part of a
 * multipart object, whose segments are written with their nonce in front.
 */
struct s3s_sse_enc;

S3S_RESULT s3s_sse_enc_new(enum s3s_sse_aead aead, const uint8_t key[S3S_SSE_KEY_LEN],
                           struct s3s_cur aad, uint32_t segment_size, uint32_t part,
                           uint64_t plain_len, struct s3s_sse_enc **out);
/* Consumes all of `in`; appends zero or more sealed segments to `out`. More
 * plaintext than announced is S3S_ERR_INVALID_ARG. */
S3S_RESULT s3s_sse_enc_push(struct s3s_sse_enc *e, struct s3s_cur in, struct s3s_buf *out);
/* A part in the parts2 layout: before the first push, draws the part
 * upload's random bytes and seals under its own key (from `dek`, the
 * upload's data key, as given to s3s_sse_enc_new). */
S3S_RESULT s3s_sse_enc_use_part_keys(struct s3s_sse_enc *e, const uint8_t dek[S3S_SSE_KEY_LEN]);
/* After the last byte: fails unless exactly plain_len bytes were pushed;
 * for an empty plaintext appends its single empty final segment. */
S3S_RESULT s3s_sse_enc_finish(struct s3s_sse_enc *e, struct s3s_buf *out);
void s3s_sse_enc_destroy(struct s3s_sse_enc *e);

/*
 * A streaming decryptor over ciphertext that starts at a segment boundary
 * (segment `first_segment` of an object whose ciphertext is `cipher_len`
 * bytes long). Plaintext is released one verified segment at a time, after
 * dropping `skip` bytes at the start and keeping at most `want` bytes; once
 * `want` bytes are out, further input is ignored (a fetch may run past the
 * last needed segment). `multipart` selects the multipart layout: each
 * segment's stored nonce must continue the previous one (the next index in
 * the same part, or index 0 of the next part after a part's final segment),
 * and the object's last segment must be a final one.
 */
struct s3s_sse_dec;

S3S_RESULT s3s_sse_dec_new(enum s3s_sse_aead aead, const uint8_t key[S3S_SSE_KEY_LEN],
                           struct s3s_cur aad, uint32_t segment_size, bool multipart,
                           uint64_t cipher_len, uint32_t first_segment, uint64_t skip,
                           uint64_t want, struct s3s_sse_dec **out);
/* The parts2 layout (the decoder was made with multipart): each segment is
 * opened under its part's key, derived from `dek` and the random bytes
 * stored in front of it; a part's segments must all carry the same. Call
 * before the first push. */
S3S_RESULT s3s_sse_dec_use_part_keys(struct s3s_sse_dec *d, const uint8_t dek[S3S_SSE_KEY_LEN]);
bool s3s_sse_dec_part_keys(const struct s3s_sse_dec *d);
/* Multipart layout: the object's part count (from its ETag "...-N" or its
 * metadata), which bounds the number of segments per part, so that a part
 * moved to another position of the object never fits there. Call before the
 * first push; without it only continuity is checked. */
S3S_RESULT s3s_sse_dec_set_parts(struct s3s_sse_dec *d, uint32_t parts);
/* Multipart layout: parts may be numbered from any s (s, s + 1, ...; some
 * clients start at 2). An object of more than one part must be told s before
 * its first push, even for a read from its start (needs_first_part says so;
 * with one part, or an unknown part count, a read from the first segment
 * learns it): set_end_nonces takes the object's first and last stored nonces
 * (the 12 bytes in front of its first and last segments), checks that the
 * part numbers run from the first to the last over the part count (set_parts
 * first) and that the last segment is a final one, and learns s. */
S3S_RESULT s3s_sse_dec_set_first_part(struct s3s_sse_dec *d, uint32_t first_part);
S3S_RESULT s3s_sse_dec_set_end_nonces(struct s3s_sse_dec *d,
                                      const uint8_t first[S3S_SSE_NONCE_LEN],
                                      const uint8_t last[S3S_SSE_NONCE_LEN]);
bool s3s_sse_dec_needs_first_part(const struct s3s_sse_dec *d);
/* The same from a layout learnt earlier (first part number, segments per
 * part), as s3s_sse_parts_layout gave it for this object. */
S3S_RESULT s3s_sse_dec_set_layout(struct s3s_sse_dec *d, uint32_t first_part, uint64_t k);
/* The layout of a multipart object of `parts` parts and `cipher_len` bytes
 * from its first and last stored nonces (checked as set_end_nonces does):
 * its first part number and the segments k of every part but the last. */
S3S_RESULT s3s_sse_parts_layout(const uint8_t first[S3S_SSE_NONCE_LEN],
                                const uint8_t last[S3S_SSE_NONCE_LEN], uint64_t cipher_len,
                                uint32_t segment_size, uint32_t parts, uint32_t *first_part,
                                uint64_t *k);
/* With more than two parts, the k of s3s_sse_parts_layout must be checked
 * against the object itself: the header of its segment k - 1 (`mid`, in
 * the first layout's nonce form) must be the final one of the first part.
 * Otherwise, where the part count is known but the size is not (copies
 * that recorded it), whole parts dropped from the middle would fit the
 * arithmetic whenever k divides evenly. */
S3S_RESULT s3s_sse_parts_check_k(const uint8_t mid[S3S_SSE_NONCE_LEN], uint32_t first_part,
                                 uint64_t k);
/* Consumes all of `in`; appends verified plaintext to `out`. A segment whose
 * tag fails gives S3S_ERR_SSE_TAG_MISMATCH and nothing of it. */
S3S_RESULT s3s_sse_dec_push(struct s3s_sse_dec *d, struct s3s_cur in, struct s3s_buf *out);
/* Fails with S3S_ERR_SSE_TAG_MISMATCH if the ciphertext ended early
 * (truncation) or `want` bytes were not produced. */
S3S_RESULT s3s_sse_dec_finish(struct s3s_sse_dec *d);
void s3s_sse_dec_destroy(struct s3s_sse_dec *d);

/* ------------------------------------------------------------ metadata */

/* Everything needed to decrypt an object, as stored in its user metadata
 * (x-amz-meta-s3seal-*). See sse/FORMAT.md. */
#define S3S_SSE_FORMAT_VERSION 1

enum s3s_sse_kind { S3S_SSE_KIND_S3 = 1, S3S_SSE_KIND_KMS = 2 };

struct s3s_sse_meta {
    uint32_t version;           /* format version (1) */
    enum s3s_sse_aead aead;
    uint32_t segment_size;
    enum s3s_sse_kind kind;
    uint32_t root_version;      /* SSE-S3: root key version that wrapped the DEK */
    struct s3s_buf kms_key_arn; /* SSE-KMS: the key's ARN */
    uint32_t kms_key_version;
    struct s3s_buf wrapped_dek; /* raw bytes (base64 in the metadata) */
    /* SSE-KMS: the encryption context, canonical JSON (base64 in the
     * metadata), bound to the wrapped data key; and, with a bucket key, the
     * bucket key wrapped by the KMS key (the data key is then wrapped under
     * the bucket key). */
    struct s3s_buf kms_context;
    struct s3s_buf bucket_key;
    /* Only for the copy of an SSE-KMS upload's data key that its upload id
     * carries (wrapped under a root key, kind SSE-S3): the KMS key's id,
     * bound to the wrapped key, and whether the object has a bucket key. */
    char upload_kms_key_id[40];
    bool upload_bucket_key;
    bool multipart;             /* the multipart layout ("layout: parts", "parts2", "parts3") */
    bool part_keys;             /* multipart with per-part keys ("layout: parts2", "parts3") */
    bool catalog;               /* parts3: the part count is in the keystore's catalog */
    uint32_t parts;             /* multipart: the part count, where recorded (0: not) */
    bool has_plain_md5;
    uint8_t plain_md5[16];
};

void s3s_sse_meta_init(struct s3s_sse_meta *m);
void s3s_sse_meta_clean_up(struct s3s_sse_meta *m);

/* Header names used on the backend (lower case, as backends return them). */
#define S3S_SSE_META_PREFIX "x-amz-meta-s3seal-"

/* Appends "name: value\r\n"-free pairs through a callback, one per field. */
typedef s3s_result s3s_sse_meta_emit_fn(void *ctx, const char *name, struct s3s_cur value);
S3S_RESULT s3s_sse_meta_encode(const struct s3s_sse_meta *m, s3s_sse_meta_emit_fn *emit,
                               void *ctx);

/* Looks up a header by (lower-case) name; false if absent. */
typedef bool s3s_sse_meta_get_fn(void *ctx, const char *name, struct s3s_cur *value);
/* True if the object carries s3seal metadata at all. */
bool s3s_sse_meta_present(s3s_sse_meta_get_fn *get, void *ctx);
/* Decodes and validates; S3S_ERR_SSE_BAD_FORMAT on anything unexpected. */
S3S_RESULT s3s_sse_meta_decode(s3s_sse_meta_get_fn *get, void *ctx, struct s3s_sse_meta *out);

/* The associated data the wrapped DEK is bound to: the object's bucket and
 * key, and the format fields, each length-prefixed so no two different
 * inputs give the same bytes. Appended to `out`. */
S3S_RESULT s3s_sse_dek_aad(const struct s3s_sse_meta *m, struct s3s_cur bucket,
                           struct s3s_cur key, struct s3s_buf *out);
/* The associated data a bucket key is wrapped with by the KMS key: the key
 * reference, the bucket and the encryption context. */
S3S_RESULT s3s_sse_bucket_key_aad(const struct s3s_sse_meta *m, struct s3s_cur bucket,
                                  struct s3s_buf *out);
/* The part count of a multipart ETag ("<hex>-N"), or 0. */
uint32_t s3s_sse_etag_parts(struct s3s_cur etag);
/* Whether a layout (the value of x-amz-meta-s3seal-layout) seals each part
 * upload under its own key: parts2 and parts3. */
bool s3s_sse_layout_part_keys(struct s3s_cur layout);
/* A multipart object's part count as far as the object shows it: the count
 * its metadata records, else (the first two layouts) its backend ETag's;
 * 0 when unknown: a parts3 object's count is the catalog's (keystore),
 * looked up by s3s_sse_object_id. 0 for a single-stream object. */
uint32_t s3s_sse_meta_parts(const struct s3s_sse_meta *m, struct s3s_cur etag);

/* An object's id in the keystore's catalog: HKDF-SHA256 of its data key,
 * info "s3seal-object-id", 16 bytes. The same for every copy that keeps the
 * data key (a copy of metadata, a rewrap); never reveals the key. */
#define S3S_SSE_OBJECT_ID_LEN 16
S3S_RESULT s3s_sse_object_id(const uint8_t dek[S3S_SSE_KEY_LEN],
                             uint8_t out[S3S_SSE_OBJECT_ID_LEN]);

/* The associated data of every segment: format version, AEAD and segment
 * size. */
S3S_RESULT s3s_sse_segment_aad(const struct s3s_sse_meta *m, struct s3s_buf *out);

#endif /* S3S_SSE_H */
