/*
 * part_keys_test.c - the parts2 multipart layout: every part upload seals
 * under a key of its own (random bytes stored in front of each segment), so
 * two uploads of one part number never share a (key, nonce); the stored
 * overhead stays 28 bytes a segment; parts still open in order only; the
 * first layout still opens.
 */
#include <openssl/rand.h>
#include <string.h>

#include "sse/sse.h"
#include "testlib.h"

#define SEG 1024u

static const uint8_t s_key[32] = {7, 1, 2};

static void s_part(const uint8_t *p, uint64_t n, uint32_t part, bool part_keys, struct s3s_buf *c)
{
    struct s3s_sse_enc *e = NULL;
    T_OK(s3s_sse_enc_new(S3S_SSE_AES_256_GCM, s_key, S3S_CUR_LIT("aad"), SEG, part, n, &e));
    if (part_keys) {
        T_OK(s3s_sse_enc_use_part_keys(e, s_key));
    }
    T_OK(s3s_sse_enc_push(e, s3s_cur_from(p, n), c));
    T_OK(s3s_sse_enc_finish(e, c));
    s3s_sse_enc_destroy(e);
}

/* Decrypts plaintext [first, last] of a multipart object of `parts` parts,
 * as s3seal does (end nonces read from the stored bytes). */
static bool s_open(struct s3s_cur c, bool part_keys, uint32_t parts, uint64_t first, uint64_t last,
                   struct s3s_buf *out)
{
    uint64_t full = SEG + S3S_SSE_PART_OVERHEAD, s0 = first / SEG;
    struct s3s_sse_dec *d = NULL;
    if (s3s_failed(s3s_sse_dec_new(S3S_SSE_AES_256_GCM, s_key, S3S_CUR_LIT("aad"), SEG, true,
                                   c.len, (uint32_t)s0, first - s0 * SEG, last - first + 1,
                                   &d))) {
        return false;
    }
    bool ok = !part_keys || s3s_is_ok(s3s_sse_dec_use_part_keys(d, s_key));
    ok = ok && s3s_is_ok(s3s_sse_dec_set_parts(d, parts));
    if (ok && s3s_sse_dec_needs_first_part(d)) {
        uint64_t segments = (c.len + full - 1) / full;
        ok = s3s_is_ok(s3s_sse_dec_set_end_nonces(d, c.ptr, c.ptr + (segments - 1) * full));
    }
    for (uint64_t off = s0 * full; ok && off < c.len; off += 777) {
        uint64_t n = c.len - off < 777 ? c.len - off : 777;
        ok = s3s_is_ok(s3s_sse_dec_push(d, s3s_cur_from(c.ptr + off, n), out));
    }
    ok = ok && s3s_is_ok(s3s_sse_dec_finish(d));
    s3s_sse_dec_destroy(d);
    return ok;
}

/* The same part number uploaded twice (same data key, same length,
 * different data): the stored random bytes differ, and the XOR of the two
 * ciphertexts is not the XOR of the plaintexts (it would be under one key
 * and nonce). The first layout shows the leak. */
static void test_reupload_never_reuses(void)
{
    const uint64_t n = 3 * SEG;
    uint8_t a[3 * SEG], b[3 * SEG];
    T_CHECK(RAND_bytes(a, sizeof(a)) == 1 && RAND_bytes(b, sizeof(b)) == 1);
    for (int layout = 0; layout < 2; layout++) {
        bool pk = layout == 1;
        struct s3s_buf ca, cb;
        T_OK(s3s_buf_init(&ca, 0, 8 * SEG));
        T_OK(s3s_buf_init(&cb, 0, 8 * SEG));
        s_part(a, n, 1, pk, &ca);
        s_part(b, n, 1, pk, &cb);
        T_CHECK(ca.len == s3s_sse_cipher_size_x(n, SEG, S3S_SSE_PART_OVERHEAD));
        T_CHECK(ca.len == cb.len);
        size_t front = pk ? S3S_SSE_PART_HEADER_LEN : S3S_SSE_NONCE_LEN;
        /* Segment 0's body: XOR of ciphertexts against XOR of plaintexts. */
        bool leak = true;
        for (size_t i = 0; i < SEG; i++) {
            leak = leak && (ca.ptr[front + i] ^ cb.ptr[front + i]) == (a[i] ^ b[i]);
        }
        T_CHECK(leak == !pk);
        if (pk) {
            /* The random bytes of the two uploads, stored after w. */
            T_CHECK(memcmp(ca.ptr + 4, cb.ptr + 4, S3S_SSE_PART_RAND_LEN) != 0);
            /* Every segment of a part carries its part's bytes. */
            uint64_t full = SEG + S3S_SSE_PART_OVERHEAD;
            T_CHECK(memcmp(ca.ptr + 4, ca.ptr + full + 4, S3S_SSE_PART_RAND_LEN) == 0);
            /* The stored header reads as part 1, index 1, not final. */
            uint8_t nonce[12], want[12];
            s3s_sse_part_header_nonce(true, ca.ptr + full, nonce);
            s3s_sse_part_nonce(1, 1, false, want);
            T_CHECK(memcmp(nonce, want, 12) == 0);
            s3s_sse_part_header_nonce(true, ca.ptr + 2 * full, nonce);
            s3s_sse_part_nonce(1, 2, true, want);
            T_CHECK(memcmp(nonce, want, 12) == 0);
        }
        /* Both open, each in its own layout only. */
        struct s3s_buf out;
        T_OK(s3s_buf_init(&out, 0, 8 * SEG));
        T_CHECK(s_open(s3s_buf_cur(&ca), pk, 1, 0, n - 1, &out) && out.len == n &&
                memcmp(out.ptr, a, n) == 0);
        s3s_buf_reset(&out);
        T_CHECK(!s_open(s3s_buf_cur(&cb), !pk, 1, 0, n - 1, &out) && out.len == 0);
        s3s_buf_clean_up(&out);
        s3s_buf_clean_up(&ca);
        s3s_buf_clean_up(&cb);
    }
    /* Keys differ per part upload and per part number. */
    uint8_t r1[12] = {1}, r2[12] = {2}, k1[32], k2[32], k3[32];
    T_OK(s3s_sse_part_key(s_key, 1, r1, k1));
    T_OK(s3s_sse_part_key(s_key, 1, r2, k2));
    T_OK(s3s_sse_part_key(s_key, 2, r1, k3));
    T_CHECK(memcmp(k1, k2, 32) != 0 && memcmp(k1, k3, 32) != 0 && memcmp(k1, s_key, 32) != 0);
}

/* Three parts of 3 segments (the last 1.5): every range opens exactly;
 * swapped parts, a part renumbered, and a part spliced from two uploads of
 * it do not. */
static void test_parts_in_order_only(void)
{
    const uint64_t psz = 3 * SEG, n = 2 * psz + SEG + SEG / 2;
    uint8_t *p = malloc(n);
    T_CHECK(RAND_bytes(p, (int)n) == 1);
    struct s3s_buf part[3], again, obj, out;
    for (int i = 0; i < 3; i++) {
        T_OK(s3s_buf_init(&part[i], 0, 8 * SEG));
        uint64_t len = i < 2 ? psz : n - 2 * psz;
        s_part(p + (uint64_t)i * psz, len, (uint32_t)i + 1, true, &part[i]);
    }
    T_OK(s3s_buf_init(&again, 0, 8 * SEG));
    s_part(p + psz, psz, 2, true, &again); /* part 2 uploaded once more */
    T_OK(s3s_buf_init(&obj, 0, 32 * SEG));
    T_OK(s3s_buf_init(&out, 0, 32 * SEG));
    for (int i = 0; i < 3; i++) {
        T_OK(s3s_buf_append_cur(&obj, s3s_buf_cur(&part[i])));
    }
    for (uint64_t a = 0; a < n; a += SEG / 3) {
        for (uint64_t b = a; b < n; b += SEG / 2 + 1) {
            s3s_buf_reset(&out);
            T_CHECK(s_open(s3s_buf_cur(&obj), true, 3, a, b, &out) && out.len == b - a + 1 &&
                    memcmp(out.ptr, p + a, out.len) == 0);
        }
    }
    /* Parts 1 and 2 swapped. */
    s3s_buf_reset(&obj);
    T_OK(s3s_buf_append_cur(&obj, s3s_buf_cur(&part[1])));
    T_OK(s3s_buf_append_cur(&obj, s3s_buf_cur(&part[0])));
    T_OK(s3s_buf_append_cur(&obj, s3s_buf_cur(&part[2])));
    s3s_buf_reset(&out);
    T_CHECK(!s_open(s3s_buf_cur(&obj), true, 3, 0, n - 1, &out) && out.len == 0);
    for (uint64_t a = psz; a < n; a += SEG) {
        s3s_buf_reset(&out);
        T_CHECK(!s_open(s3s_buf_cur(&obj), true, 3, a, n - 1, &out));
    }
    /* Part 2 with its first segment from one upload, the rest from the
     * other: each segment is authentic, the splice is not. */
    uint64_t full = SEG + S3S_SSE_PART_OVERHEAD;
    s3s_buf_reset(&obj);
    T_OK(s3s_buf_append_cur(&obj, s3s_buf_cur(&part[0])));
    T_OK(s3s_buf_append(&obj, part[1].ptr, full));
    T_OK(s3s_buf_append(&obj, again.ptr + full, again.len - full));
    T_OK(s3s_buf_append_cur(&obj, s3s_buf_cur(&part[2])));
    s3s_buf_reset(&out);
    T_CHECK(!s_open(s3s_buf_cur(&obj), true, 3, 0, n - 1, &out));
    T_CHECK(out.len <= psz + SEG && memcmp(out.ptr, p, out.len) == 0);
    /* The second upload of part 2 in place of the first opens. */
    s3s_buf_reset(&obj);
    T_OK(s3s_buf_append_cur(&obj, s3s_buf_cur(&part[0])));
    T_OK(s3s_buf_append_cur(&obj, s3s_buf_cur(&again)));
    T_OK(s3s_buf_append_cur(&obj, s3s_buf_cur(&part[2])));
    s3s_buf_reset(&out);
    T_CHECK(s_open(s3s_buf_cur(&obj), true, 3, 0, n - 1, &out) && out.len == n &&
            memcmp(out.ptr, p, n) == 0);
    /* The header's w renumbered (part 2 -> 3) fails its tag. */
    obj.ptr[psz / SEG * full + 1] ^= 0x04; /* bit 18 + 8 of w: the part */
    s3s_buf_reset(&out);
    T_CHECK(!s_open(s3s_buf_cur(&obj), true, 3, 0, n - 1, &out));
    /* A bit of the random bytes flipped fails too. */
    obj.ptr[psz / SEG * full + 1] ^= 0x04;
    obj.ptr[psz / SEG * full + 9] ^= 0x10;
    s3s_buf_reset(&out);
    T_CHECK(!s_open(s3s_buf_cur(&obj), true, 3, 0, n - 1, &out));
    for (int i = 0; i < 3; i++) {
        s3s_buf_clean_up(&part[i]);
    }
    s3s_buf_clean_up(&again);
    s3s_buf_clean_up(&obj);
    s3s_buf_clean_up(&out);
    free(p);
}

/* The first layout (one key, nonces in front) still opens, whole and
 * ranged. */
static void test_first_layout_opens(void)
{
    const uint64_t psz = 2 * SEG, n = psz + 100;
    uint8_t p[2 * SEG + 100];
    T_CHECK(RAND_bytes(p, sizeof(p)) == 1);
    struct s3s_buf obj, out;
    T_OK(s3s_buf_init(&obj, 0, 8 * SEG));
    T_OK(s3s_buf_init(&out, 0, 8 * SEG));
    s_part(p, psz, 1, false, &obj);
    s_part(p + psz, n - psz, 2, false, &obj);
    for (uint64_t a = 0; a < n; a += 301) {
        s3s_buf_reset(&out);
        T_CHECK(s_open(s3s_buf_cur(&obj), false, 2, a, n - 1, &out) && out.len == n - a &&
                memcmp(out.ptr, p + a, out.len) == 0);
    }
    uint8_t nonce[12];
    s3s_sse_part_header_nonce(false, obj.ptr, nonce);
    T_CHECK(memcmp(nonce, obj.ptr, 12) == 0);
    /* Not an encryptor of a single stream, nor twice. */
    struct s3s_sse_enc *e = NULL;
    T_OK(s3s_sse_enc_new(S3S_SSE_AES_256_GCM, s_key, S3S_CUR_LIT("aad"), SEG, 0, 10, &e));
    T_ERR(s3s_sse_enc_use_part_keys(e, s_key), S3S_ERR_INVALID_ARG);
    s3s_sse_enc_destroy(e);
    T_OK(s3s_sse_enc_new(S3S_SSE_AES_256_GCM, s_key, S3S_CUR_LIT("aad"), SEG, 3, 10, &e));
    T_OK(s3s_sse_enc_use_part_keys(e, s_key));
    T_ERR(s3s_sse_enc_use_part_keys(e, s_key), S3S_ERR_INVALID_ARG);
    s3s_sse_enc_destroy(e);
    s3s_buf_clean_up(&obj);
    s3s_buf_clean_up(&out);
}

int main(void)
{
    test_reupload_never_reuses();
    test_parts_in_order_only();
    test_first_layout_opens();
    return t_finish("sse.part_keys");
}
