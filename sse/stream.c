/*
 * stream.c - streaming encryption and decryption of an object's segments on
 * top of segment.c. Each keeps one segment buffer; memory is bounded by the
 * segment size whatever the object size.
 */
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <string.h>

#include "sse/sse.h"
#include "sse/sse_private.h"

struct s3s_sse_enc {
    struct s3s_sse_seg_ctx *seg;
    uint8_t *aad;
    size_t aad_len;
    uint32_t segment_size;
    uint32_t part; /* 0: single stream; else the part number (nonce in front) */
    bool part_keys; /* parts2: the part upload's own key, R in front */
    uint8_t rand[S3S_SSE_PART_RAND_LEN];
    uint64_t plain_len;
    uint64_t consumed;
    uint32_t index;
    size_t fill;
    size_t buf_len; /* the segment size, or less for a smaller object */
    uint8_t *buf;
};

struct s3s_sse_dec {
    struct s3s_sse_seg_ctx *seg;
    uint8_t *aad;
    size_t aad_len;
    uint32_t segment_size;
    uint32_t overhead;    /* per stored segment: tag, or nonce + tag */
    bool multipart;
    uint64_t cipher_len;  /* whole object's ciphertext */
    uint64_t cipher_pos;  /* object offset of the next byte pushed */
    uint32_t index;       /* object-wide segment index */
    uint64_t skip;
    uint64_t want;
    bool done;            /* `want` bytes are out: the rest is not needed */
    /* Multipart layout: the stored nonce of the previous segment; the
     * object's part count (0: unknown) and what it allows for the number of
     * segments per part (k_lo..k_hi), and that number once it is known. */
    bool have_prev;
    uint32_t prev_part, prev_index;
    bool prev_final;
    uint32_t parts;
    uint32_t first_part; /* the object's first part number (0: not known yet) */
    uint64_t k_lo, k_hi, k;
    /* parts2: the data key, and the part and random bytes whose key the
     * segment context holds. */
    bool part_keys, have_key;
    uint8_t dek[S3S_SSE_KEY_LEN];
    uint32_t key_part;
    uint8_t key_rand[S3S_SSE_PART_RAND_LEN];
    size_t fill;
    uint8_t *buf; /* one stored segment at most (ciphertext) */
};

s3s_result s3s_sse_part_key(const uint8_t dek[S3S_SSE_KEY_LEN], uint32_t part,
                            const uint8_t rand[S3S_SSE_PART_RAND_LEN],
                            uint8_t out[S3S_SSE_KEY_LEN])
{
    static const char label[] = "s3seal-part";
    uint8_t info[sizeof(label) - 1 + 4 + S3S_SSE_PART_RAND_LEN];
    memcpy(info, label, sizeof(label) - 1);
    uint8_t *p = info + sizeof(label) - 1;
    p[0] = (uint8_t)(part >> 24);
    p[1] = (uint8_t)(part >> 16);
    p[2] = (uint8_t)(part >> 8);
    p[3] = (uint8_t)part;
    memcpy(p + 4, rand, S3S_SSE_PART_RAND_LEN);
    return s3s_sse__hkdf_sha256(dek, S3S_SSE_KEY_LEN, info, sizeof(info), out, S3S_SSE_KEY_LEN);
}

/* Keys the segment context for `part` with random bytes `rand`. */
static s3s_result s_use_part_key(struct s3s_sse_seg_ctx *seg, const uint8_t *dek, uint32_t part,
                                 const uint8_t *rand)
{
    uint8_t key[S3S_SSE_KEY_LEN];
    s3s_result r = s3s_sse_part_key(dek, part, rand, key);
    if (s3s_is_ok(r)) {
        r = s3s_sse_seg_ctx_rekey(seg, key);
    }
    OPENSSL_cleanse(key, sizeof(key));
    return r;
}

/* ---------------------------------------------------------------- encrypt */

s3s_result s3s_sse_enc_new(enum s3s_sse_aead aead, const uint8_t key[S3S_SSE_KEY_LEN],
                           struct s3s_cur aad, uint32_t segment_size, uint32_t part,
                           uint64_t plain_len, struct s3s_sse_enc **out)
{
    S3S_ENSURE(segment_size >= 16 && segment_size <= 16u * 1024 * 1024, S3S_ERR_INVALID_ARG);
    S3S_ENSURE(part <= 10000, S3S_ERR_INVALID_ARG);
    S3S_ENSURE(plain_len / segment_size < S3S_SSE_MAX_SEGMENTS, S3S_ERR_ENTITY_TOO_LARGE);
    struct s3s_sse_enc *e = s3s_calloc(1, sizeof(*e));
    S3S_ENSURE(e != NULL, S3S_ERR_NOMEM);
    e->segment_size = segment_size;
    e->part = part;
    e->plain_len = plain_len;
    /* A small object needs no whole segment's buffer (nor its wipe). */
    e->buf_len = plain_len < segment_size ? (size_t)plain_len + 1 : segment_size;
    e->buf = s3s_malloc(e->buf_len);
    e->aad = s3s_malloc(aad.len ? aad.len : 1);
    if (!e->buf || !e->aad) {
        s3s_sse_enc_destroy(e);
        S3S_BAIL(S3S_ERR_NOMEM);
    }
    if (aad.len) {
        memcpy(e->aad, aad.ptr, aad.len);
    }
    e->aad_len = aad.len;
    s3s_result r = s3s_sse_seg_ctx_new(aead, key, &e->seg);
    if (s3s_failed(r)) {
        s3s_sse_enc_destroy(e);
        return r;
    }
    *out = e;
    return s3s_ok();
}

s3s_result s3s_sse_enc_use_part_keys(struct s3s_sse_enc *e, const uint8_t dek[S3S_SSE_KEY_LEN])
{
    S3S_ENSURE_REF(e);
    S3S_ENSURE(e->part >= 1 && e->consumed == 0 && e->index == 0 && !e->part_keys,
               S3S_ERR_INVALID_ARG);
    /* The part's index must fit its 17 bits in the stored header. */
    S3S_ENSURE(e->plain_len / e->segment_size <= S3S_SSE_PART_MAX_INDEX,
               S3S_ERR_ENTITY_TOO_LARGE);
    S3S_ENSURE(RAND_bytes(e->rand, sizeof(e->rand)) == 1, S3S_ERR_INTERNAL);
    S3S_GUARD(s_use_part_key(e->seg, dek, e->part, e->rand));
    S3S_GUARD(s3s_sse_seg_ctx_set_tag_len(e->seg, S3S_SSE_PART_TAG_LEN));
    e->part_keys = true;
    return s3s_ok();
}

/* Seals the next segment, `plain` (e->buf or the caller's input), onto out. */
static s3s_result s_enc_seal(struct s3s_sse_enc *e, const uint8_t *plain, size_t len, bool final,
                             struct s3s_buf *out)
{
    uint8_t nonce[S3S_SSE_NONCE_LEN];
    size_t front = !e->part ? 0 : e->part_keys ? S3S_SSE_PART_HEADER_LEN : S3S_SSE_NONCE_LEN;
    size_t tag = e->part_keys ? S3S_SSE_PART_TAG_LEN : S3S_SSE_TAG_LEN;
    s3s_sse_part_nonce(e->part, e->index, final, nonce);
    S3S_GUARD(s3s_buf_reserve(out, front + len + tag));
    uint8_t *p = out->ptr + out->len;
    if (e->part_keys) {
        uint32_t w = e->part << 18 | e->index << 1 | (final ? 1u : 0u);
        p[0] = (uint8_t)(w >> 24);
        p[1] = (uint8_t)(w >> 16);
        p[2] = (uint8_t)(w >> 8);
        p[3] = (uint8_t)w;
        memcpy(p + 4, e->rand, sizeof(e->rand));
    } else {
        memcpy(p, nonce, front);
    }
    S3S_GUARD(s3s_sse_seg_seal_nonce(e->seg, nonce, s3s_cur_from(e->aad, e->aad_len), plain, len,
                                     p + front));
    out->len += front + len + tag;
    if (plain == e->buf) {
        OPENSSL_cleanse(e->buf, e->fill);
        e->fill = 0;
    }
    e->index++;
    return s3s_ok();
}

s3s_result s3s_sse_enc_push(struct s3s_sse_enc *e, struct s3s_cur in, struct s3s_buf *out)
{
    S3S_ENSURE_REF(e);
    S3S_ENSURE(in.len <= e->plain_len - e->consumed, S3S_ERR_INVALID_ARG);
    while (in.len) {
        if (e->fill == 0 && in.len >= e->segment_size) {
            /* A whole segment in the input: sealed from it, not copied. */
            e->consumed += e->segment_size;
            S3S_GUARD(s_enc_seal(e, in.ptr, e->segment_size, e->consumed == e->plain_len, out));
            in.ptr += e->segment_size;
            in.len -= e->segment_size;
            continue;
        }
        size_t n = e->segment_size - e->fill;
        if (n > in.len) {
            n = in.len;
        }
        memcpy(e->buf + e->fill, in.ptr, n);
        e->fill += n;
        e->consumed += n;
        in.ptr += n;
        in.len -= n;
        if (e->fill == e->segment_size) {
            S3S_GUARD(s_enc_seal(e, e->buf, e->fill, e->consumed == e->plain_len, out));
        }
    }
    return s3s_ok();
}

s3s_result s3s_sse_enc_finish(struct s3s_sse_enc *e, struct s3s_buf *out)
{
    S3S_ENSURE_REF(e);
    S3S_ENSURE(e->consumed == e->plain_len, S3S_ERR_INCOMPLETE_BODY);
    /* A partial last segment, or the empty object's only segment. */
    if (e->fill > 0 || e->plain_len == 0) {
        S3S_GUARD(s_enc_seal(e, e->buf, e->fill, true, out));
    }
    return s3s_ok();
}

void s3s_sse_enc_destroy(struct s3s_sse_enc *e)
{
    if (!e) {
        return;
    }
    if (e->buf) {
        OPENSSL_cleanse(e->buf, e->buf_len);
    }
    OPENSSL_cleanse(e->rand, sizeof(e->rand));
    s3s_free(&e->buf);
    s3s_free(&e->aad);
    s3s_sse_seg_ctx_destroy(e->seg);
    s3s_free(&e);
}

/* ---------------------------------------------------------------- decrypt */

s3s_result s3s_sse_dec_new(enum s3s_sse_aead aead, const uint8_t key[S3S_SSE_KEY_LEN],
                           struct s3s_cur aad, uint32_t segment_size, bool multipart,
                           uint64_t cipher_len, uint32_t first_segment, uint64_t skip,
                           uint64_t want, struct s3s_sse_dec **out)
{
    S3S_ENSURE(segment_size >= 16 && segment_size <= 16u * 1024 * 1024, S3S_ERR_INVALID_ARG);
    uint32_t overhead = s3s_sse_overhead(multipart);
    uint64_t plain = 0;
    S3S_GUARD(s3s_sse_plain_size_x(cipher_len, segment_size, overhead, &plain));
    uint64_t full = (uint64_t)segment_size + overhead;
    S3S_ENSURE((uint64_t)first_segment * full < cipher_len, S3S_ERR_INVALID_ARG);
    struct s3s_sse_dec *d = s3s_calloc(1, sizeof(*d));
    S3S_ENSURE(d != NULL, S3S_ERR_NOMEM);
    d->segment_size = segment_size;
    d->overhead = overhead;
    d->multipart = multipart;
    d->cipher_len = cipher_len;
    d->cipher_pos = (uint64_t)first_segment * full;
    d->index = first_segment;
    d->skip = skip;
    d->want = want;
    /* Ciphertext only (segments open straight into the caller's buffer):
     * no more than the object holds from here, and no wipe. */
    uint64_t rest = cipher_len - d->cipher_pos;
    d->buf = s3s_malloc(rest < full ? (size_t)rest : (size_t)full);
    d->aad = s3s_malloc(aad.len ? aad.len : 1);
    if (!d->buf || !d->aad) {
        s3s_sse_dec_destroy(d);
        S3S_BAIL(S3S_ERR_NOMEM);
    }
    if (aad.len) {
        memcpy(d->aad, aad.ptr, aad.len);
    }
    d->aad_len = aad.len;
    s3s_result r = s3s_sse_seg_ctx_new(aead, key, &d->seg);
    if (s3s_failed(r)) {
        s3s_sse_dec_destroy(d);
        return r;
    }
    *out = d;
    return s3s_ok();
}

static s3s_result s_learn_k(struct s3s_sse_dec *d, uint64_t k);

static uint32_t s_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

s3s_result s3s_sse_dec_use_part_keys(struct s3s_sse_dec *d, const uint8_t dek[S3S_SSE_KEY_LEN])
{
    S3S_ENSURE_REF(d);
    S3S_ENSURE(d->multipart && !d->have_prev && !d->part_keys, S3S_ERR_INVALID_ARG);
    S3S_GUARD(s3s_sse_seg_ctx_set_tag_len(d->seg, S3S_SSE_PART_TAG_LEN));
    memcpy(d->dek, dek, S3S_SSE_KEY_LEN);
    d->part_keys = true;
    return s3s_ok();
}

bool s3s_sse_dec_part_keys(const struct s3s_sse_dec *d)
{
    return d && d->part_keys;
}

s3s_result s3s_sse_dec_set_first_part(struct s3s_sse_dec *d, uint32_t first_part)
{
    S3S_ENSURE_REF(d);
    S3S_ENSURE(d->multipart && first_part >= 1 && first_part <= 10000 && !d->have_prev,
               S3S_ERR_INVALID_ARG);
    S3S_ENSURE(d->first_part == 0 || d->first_part == first_part, S3S_ERR_SSE_TAG_MISMATCH);
    d->first_part = first_part;
    return s3s_ok();
}

s3s_result s3s_sse_dec_set_end_nonces(struct s3s_sse_dec *d,
                                      const uint8_t first[S3S_SSE_NONCE_LEN],
                                      const uint8_t last[S3S_SSE_NONCE_LEN])
{
    S3S_ENSURE_REF(d);
    S3S_ENSURE(d->multipart && d->parts >= 1, S3S_ERR_INVALID_ARG);
    uint32_t s = 0;
    uint64_t k = 0;
    uint8_t f[S3S_SSE_NONCE_LEN], l[S3S_SSE_NONCE_LEN];
    s3s_sse_part_header_nonce(d->part_keys, first, f);
    s3s_sse_part_header_nonce(d->part_keys, last, l);
    S3S_GUARD(s3s_sse_parts_layout(f, l, d->cipher_len, d->segment_size, d->parts, &s, &k));
    S3S_GUARD(s_learn_k(d, k));
    return s3s_sse_dec_set_first_part(d, s);
}

s3s_result s3s_sse_parts_layout(const uint8_t first[S3S_SSE_NONCE_LEN],
                                const uint8_t last[S3S_SSE_NONCE_LEN], uint64_t cipher_len,
                                uint32_t segment_size, uint32_t parts, uint32_t *first_part,
                                uint64_t *k)
{
    S3S_ENSURE(parts >= 1 && segment_size > 0, S3S_ERR_INVALID_ARG);
    for (int i = 0; i < 3; i++) {
        S3S_ENSURE(first[i] == 0 && last[i] == 0, S3S_ERR_SSE_TAG_MISMATCH);
    }
    uint32_t s = s_be32(first + 3), top = s_be32(last + 3);
    S3S_ENSURE(s_be32(first + 7) == 0 && first[11] <= 1 && last[11] == 1,
               S3S_ERR_SSE_TAG_MISMATCH);
    S3S_ENSURE(s >= 1 && top >= s && top - s + 1 == parts && top <= 10000,
               S3S_ERR_SSE_TAG_MISMATCH);
    uint64_t full = (uint64_t)segment_size + S3S_SSE_PART_OVERHEAD;
    uint64_t total = (cipher_len + full - 1) / full;
    uint64_t in_last = (uint64_t)s_be32(last + 7) + 1; /* segments of the last part */
    S3S_ENSURE(in_last <= total, S3S_ERR_SSE_TAG_MISMATCH);
    if (parts == 1) {
        S3S_ENSURE(in_last == total, S3S_ERR_SSE_TAG_MISMATCH);
        *k = total;
    } else {
        S3S_ENSURE((total - in_last) % (parts - 1) == 0, S3S_ERR_SSE_TAG_MISMATCH);
        *k = (total - in_last) / (parts - 1);
        S3S_ENSURE(*k >= in_last, S3S_ERR_SSE_TAG_MISMATCH);
    }
    *first_part = s;
    return s3s_ok();
}

s3s_result s3s_sse_parts_check_k(const uint8_t mid[S3S_SSE_NONCE_LEN], uint32_t first_part,
                                 uint64_t k)
{
    S3S_ENSURE(k >= 1 && k - 1 <= S3S_SSE_PART_MAX_INDEX, S3S_ERR_SSE_TAG_MISMATCH);
    for (int i = 0; i < 3; i++) {
        S3S_ENSURE(mid[i] == 0, S3S_ERR_SSE_TAG_MISMATCH);
    }
    S3S_ENSURE(s_be32(mid + 3) == first_part && s_be32(mid + 7) == k - 1 && mid[11] == 1,
               S3S_ERR_SSE_TAG_MISMATCH);
    return s3s_ok();
}

s3s_result s3s_sse_dec_set_layout(struct s3s_sse_dec *d, uint32_t first_part, uint64_t k)
{
    S3S_ENSURE_REF(d);
    S3S_ENSURE(d->multipart && d->parts >= 1, S3S_ERR_INVALID_ARG);
    S3S_GUARD(s_learn_k(d, k));
    return s3s_sse_dec_set_first_part(d, first_part);
}

bool s3s_sse_dec_needs_first_part(const struct s3s_sse_dec *d)
{
    /* With more than one part, even a read from the start is told first:
     * the first segment alone cannot show that it is the first part's. */
    return d->multipart && d->first_part == 0 && d->parts != 1;
}

s3s_result s3s_sse_dec_set_parts(struct s3s_sse_dec *d, uint32_t parts)
{
    S3S_ENSURE_REF(d);
    S3S_ENSURE(d->multipart && parts >= 1 && parts <= 10000, S3S_ERR_INVALID_ARG);
    uint64_t full = (uint64_t)d->segment_size + d->overhead;
    uint64_t total = (d->cipher_len + full - 1) / full; /* segments in the object */
    S3S_ENSURE(total >= parts, S3S_ERR_SSE_TAG_MISMATCH);
    /* Every part but the last holds k segments, the last 1..k:
     * (parts - 1) * k < total <= parts * k. */
    d->parts = parts;
    d->k_lo = (total + parts - 1) / parts;
    d->k_hi = parts > 1 ? (total - 1) / (parts - 1) : UINT64_MAX;
    return s3s_ok();
}

/* Records k, the number of segments per part, learnt from the stored
 * nonces: it must be the same wherever it is learnt and fit the part count. */
static s3s_result s_learn_k(struct s3s_sse_dec *d, uint64_t k)
{
    S3S_ENSURE(k >= 1 && (d->k == 0 || d->k == k), S3S_ERR_SSE_TAG_MISMATCH);
    S3S_ENSURE(d->parts == 0 || (k >= d->k_lo && k <= d->k_hi), S3S_ERR_SSE_TAG_MISMATCH);
    d->k = k;
    return s3s_ok();
}

/*
 * Multipart layout: the nonce stored in front of a segment must be the one
 * this position allows. Parts are numbered s, s + 1, ... (s is usually 1);
 * every part but the last holds the same number k of segments. The first
 * segment read names its part and index, which must fit the object-wide
 * index: (part - s) * k + index; each later one continues it. Where the part
 * count is known, k is bounded by it, which is what keeps a part moved to
 * another place from fitting there. Reading from the object's first segment
 * tells s; a read that starts later must be told s first.
 */
static s3s_result s_check_part_nonce(struct s3s_sse_dec *d, const uint8_t *n, bool last)
{
    S3S_ENSURE(n[0] == 0 && n[1] == 0 && n[2] == 0 && n[11] <= 1, S3S_ERR_SSE_TAG_MISMATCH);
    uint32_t part = s_be32(n + 3), index = s_be32(n + 7);
    bool final = n[11] == 1;
    S3S_ENSURE(part >= 1 && part <= 10000, S3S_ERR_SSE_TAG_MISMATCH);
    if (!d->have_prev && d->first_part == 0) {
        /* Not told (one part, or the part count unknown): only the object's
         * first segment can tell where numbering starts. */
        S3S_ENSURE(d->parts <= 1 && d->index == 0 && index == 0, S3S_ERR_SSE_TAG_MISMATCH);
        d->first_part = part;
    }
    uint32_t s = d->first_part;
    /* The last part's number, where the part count is known. */
    uint64_t top = d->parts ? (uint64_t)s + d->parts - 1 : 10000;
    S3S_ENSURE(part >= s && part <= top, S3S_ERR_SSE_TAG_MISMATCH);
    if (d->have_prev) {
        bool next = d->prev_final ? (part == d->prev_part + 1 && index == 0)
                                  : (part == d->prev_part && index == d->prev_index + 1);
        S3S_ENSURE(next, S3S_ERR_SSE_TAG_MISMATCH);
    } else if (part == s) {
        S3S_ENSURE(index == d->index && (d->parts == 0 || d->index < d->k_hi),
                   S3S_ERR_SSE_TAG_MISMATCH);
    } else {
        /* d->index = (part - s) * k + index for a k > index. */
        uint32_t before = d->index - index;
        S3S_ENSURE(index <= d->index && before % (part - s) == 0 && before / (part - s) > index,
                   S3S_ERR_SSE_TAG_MISMATCH);
        S3S_GUARD(s_learn_k(d, before / (part - s)));
    }
    /* A part's final segment other than the last part's tells k. */
    if (final && !last && part < top) {
        S3S_GUARD(s_learn_k(d, (uint64_t)index + 1));
    }
    /* Only a part's final segment may be short, and the object's last
     * segment must be a final one (no truncation inside a part), of the
     * last part. */
    S3S_ENSURE(!last || (final && (d->parts == 0 || part == top)), S3S_ERR_SSE_TAG_MISMATCH);
    S3S_ENSURE(!final || last || d->parts == 0 || part < top, S3S_ERR_SSE_TAG_MISMATCH);
    d->have_prev = true;
    d->prev_part = part;
    d->prev_index = index;
    d->prev_final = final;
    return s3s_ok();
}

/* Opens one stored segment (seg, `stored` bytes: from the input itself when
 * it holds the whole segment, else gathered in d->buf) straight into out's
 * spare room, which becomes out's only once the tag verified: no copy of the
 * plaintext, and nothing of a failed segment is ever in out. The bytes of
 * the segment outside the wanted range are wiped, never appended. */
static s3s_result s_dec_open(struct s3s_sse_dec *d, bool final, const uint8_t *seg, size_t stored,
                             struct s3s_buf *out)
{
    struct s3s_cur aad = s3s_cur_from(d->aad, d->aad_len);
    const uint8_t *body = seg;
    uint8_t nonce[S3S_SSE_NONCE_LEN];
    size_t tag = d->part_keys ? S3S_SSE_PART_TAG_LEN : S3S_SSE_TAG_LEN;
    if (d->multipart) {
        S3S_ENSURE(stored >= S3S_SSE_PART_OVERHEAD, S3S_ERR_SSE_TAG_MISMATCH);
        s3s_sse_part_header_nonce(d->part_keys, seg, nonce);
        S3S_GUARD(s_check_part_nonce(d, nonce, final));
        size_t front = d->part_keys ? S3S_SSE_PART_HEADER_LEN : S3S_SSE_NONCE_LEN;
        if (d->part_keys) {
            /* The part's key, from its random bytes: the same for every
             * segment of a part (no splice of two uploads of one part). */
            uint32_t part = s_be32(nonce + 3);
            const uint8_t *rand = seg + 4;
            bool same = d->have_key && d->key_part == part;
            S3S_ENSURE(!same || CRYPTO_memcmp(d->key_rand, rand, S3S_SSE_PART_RAND_LEN) == 0,
                       S3S_ERR_SSE_TAG_MISMATCH);
            if (!same) {
                d->have_key = false;
                S3S_GUARD(s_use_part_key(d->seg, d->dek, part, rand));
                d->key_part = part;
                memcpy(d->key_rand, rand, S3S_SSE_PART_RAND_LEN);
                d->have_key = true;
            }
        }
        body = seg + front;
        stored -= front;
    }
    S3S_ENSURE(stored >= tag, S3S_ERR_SSE_TAG_MISMATCH);
    size_t plain = stored - tag;
    S3S_GUARD(s3s_buf_reserve(out, plain));
    uint8_t *dst = out->ptr + out->len;
    s3s_result r = d->multipart
                       ? s3s_sse_seg_open_nonce(d->seg, nonce, aad, body, stored, dst)
                       : s3s_sse_seg_open(d->seg, d->index, final, aad, body, stored, dst);
    if (s3s_failed(r)) {
        OPENSSL_cleanse(dst, plain);
        return r;
    }
    d->index++;
    d->fill = 0;
    size_t from = 0;
    if (d->skip) {
        from = d->skip < plain ? (size_t)d->skip : plain;
        d->skip -= from;
    }
    size_t n = plain - from;
    if (n > d->want) {
        n = (size_t)d->want;
    }
    if (from) {
        memmove(dst, dst + from, n);
    }
    if (n < plain) {
        OPENSSL_cleanse(dst + n, plain - n);
    }
    out->len += n;
    d->want -= n;
    d->done = d->want == 0;
    return s3s_ok();
}

s3s_result s3s_sse_dec_push(struct s3s_sse_dec *d, struct s3s_cur in, struct s3s_buf *out)
{
    S3S_ENSURE_REF(d);
    size_t full = (size_t)d->segment_size + d->overhead;
    /* Bytes past the object's end mean the ciphertext is not what the
     * metadata describes. */
    S3S_ENSURE(in.len <= d->cipher_len - d->cipher_pos, S3S_ERR_SSE_TAG_MISMATCH);
    while (in.len && !d->done) {
        if (d->fill == 0 && in.len >= full) {
            /* A whole segment in the input: opened where it lies. */
            d->cipher_pos += full;
            S3S_GUARD(s_dec_open(d, d->cipher_pos == d->cipher_len, in.ptr, full, out));
            in.ptr += full;
            in.len -= full;
            continue;
        }
        size_t n = full - d->fill;
        if (n > in.len) {
            n = in.len;
        }
        memcpy(d->buf + d->fill, in.ptr, n);
        d->fill += n;
        d->cipher_pos += n;
        in.ptr += n;
        in.len -= n;
        bool final = d->cipher_pos == d->cipher_len;
        if (d->fill == full || final) {
            S3S_GUARD(s_dec_open(d, final, d->buf, d->fill, out));
        }
    }
    d->cipher_pos += in.len; /* ignored: past the last wanted segment */
    return s3s_ok();
}

s3s_result s3s_sse_dec_finish(struct s3s_sse_dec *d)
{
    S3S_ENSURE_REF(d);
    S3S_ENSURE((d->fill == 0 || d->done) && d->want == 0, S3S_ERR_SSE_TAG_MISMATCH);
    return s3s_ok();
}

void s3s_sse_dec_destroy(struct s3s_sse_dec *d)
{
    if (!d) {
        return;
    }
    OPENSSL_cleanse(d->dek, sizeof(d->dek));
    s3s_free(&d->buf);
    s3s_free(&d->aad);
    s3s_sse_seg_ctx_destroy(d->seg);
    s3s_free(&d);
}
