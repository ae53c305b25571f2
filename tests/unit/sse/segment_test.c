/*
 * segment_test.c - the STREAM segment layer: round trips at every size edge
 * for both AEADs, and tamper cases (bit flips in data and tag, wrong index,
 * wrong final flag, swapped, dropped and truncated segments, wrong aad), each
 * of which must fail and release no plaintext. Also the size and range maths.
 */
#include <openssl/rand.h>

#include "sse/sse.h"
#include "testlib.h"

#define SEG S3S_SSE_SEGMENT_SIZE
#define CSEG (SEG + S3S_SSE_TAG_LEN)

static const uint8_t s_key[32] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
                                  17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32};

/* Encrypts a whole plaintext into a freshly allocated ciphertext. */
static uint8_t *s_encrypt(struct s3s_sse_seg_ctx *ctx, const uint8_t *p, uint64_t n,
                          uint64_t *cn)
{
    *cn = s3s_sse_cipher_size(n, SEG);
    uint8_t *c = malloc(*cn ? *cn : 1);
    uint64_t off = 0, coff = 0;
    uint32_t idx = 0;
    do {
        size_t len = n - off > SEG ? SEG : (size_t)(n - off);
        bool final = off + len == n;
        T_OK(s3s_sse_seg_seal(ctx, idx++, final, S3S_CUR_LIT("v1"), p + off, len, c + coff));
        off += len;
        coff += len + S3S_SSE_TAG_LEN;
    } while (off < n);
    T_CHECK(coff == *cn);
    return c;
}

/* Decrypts, following the format: full segments, then a final one. Returns
 * false on the first failure. */
static bool s_decrypt(struct s3s_sse_seg_ctx *ctx, const uint8_t *c, uint64_t cn, uint8_t *out,
                      uint64_t *pn)
{
    uint64_t plain = 0;
    if (s3s_failed(s3s_sse_plain_size(cn, SEG, &plain))) {
        return false;
    }
    uint64_t coff = 0, off = 0;
    uint32_t idx = 0;
    do {
        size_t clen = cn - coff > CSEG ? CSEG : (size_t)(cn - coff);
        bool final = coff + clen == cn;
        if (s3s_failed(s3s_sse_seg_open(ctx, idx++, final, S3S_CUR_LIT("v1"), c + coff, clen,
                                        out + off))) {
            return false;
        }
        off += clen - S3S_SSE_TAG_LEN;
        coff += clen;
    } while (coff < cn);
    *pn = off;
    return off == plain;
}

static void test_round_trips(enum s3s_sse_aead aead)
{
    static const uint64_t sizes[] = {0, 1, SEG - 1, SEG, SEG + 1, 3 * SEG, 3 * SEG + 17};
    struct s3s_sse_seg_ctx *ctx = NULL;
    T_OK(s3s_sse_seg_ctx_new(aead, s_key, &ctx));
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        uint64_t n = sizes[i], cn = 0, pn = 0;
        uint8_t *p = malloc(n + 1), *out = malloc(n + S3S_SSE_TAG_LEN + 1);
        T_CHECK(RAND_bytes(p, (int)n + 1) == 1);
        uint8_t *c = s_encrypt(ctx, p, n, &cn);
        T_CHECK(s_decrypt(ctx, c, cn, out, &pn));
        T_CHECK(pn == n && (n == 0 || memcmp(p, out, n) == 0));
        /* Ciphertext differs from plaintext (no identity "encryption"). */
        T_CHECK(n < 16 || memcmp(c, p, 16) != 0);

        /* Flip one bit anywhere: in data, in a tag, in the last byte. */
        uint64_t spots[] = {0, cn / 2, cn - 1};
        for (size_t s = 0; s < 3; s++) {
            c[spots[s]] ^= 0x01;
            T_CHECK(!s_decrypt(ctx, c, cn, out, &pn));
            c[spots[s]] ^= 0x01;
        }
        /* Truncation: drop the final segment (or bytes of it). */
        if (cn > CSEG) {
            uint64_t full = (cn - 1) / CSEG * CSEG;
            T_CHECK(!s_decrypt(ctx, c, full, out, &pn));
        }
        T_CHECK(!s_decrypt(ctx, c, cn - 1, out, &pn));
        free(p);
        free(out);
        free(c);
    }
    s3s_sse_seg_ctx_destroy(ctx);
}

static void test_stream_binding(void)
{
    struct s3s_sse_seg_ctx *ctx = NULL, *other = NULL;
    T_OK(s3s_sse_seg_ctx_new(S3S_SSE_AES_256_GCM, s_key, &ctx));
    uint8_t key2[32];
    memcpy(key2, s_key, 32);
    key2[31] ^= 0x80;
    T_OK(s3s_sse_seg_ctx_new(S3S_SSE_AES_256_GCM, key2, &other));

    uint64_t n = 3 * SEG, cn = 0, pn = 0;
    uint8_t *p = calloc(1, n), *out = malloc(n + 64);
    for (uint64_t i = 0; i < n; i++) {
        p[i] = (uint8_t)(i * 7);
    }
    uint8_t *c = s_encrypt(ctx, p, n, &cn);
    T_CHECK(cn == 3 * CSEG);

    /* Swap segments 0 and 1. */
    uint8_t *sw = malloc(cn);
    memcpy(sw, c + CSEG, CSEG);
    memcpy(sw + CSEG, c, CSEG);
    memcpy(sw + 2 * CSEG, c + 2 * CSEG, CSEG);
    T_CHECK(!s_decrypt(ctx, sw, cn, out, &pn));
    /* Duplicate segment 0 in place of 1. */
    memcpy(sw, c, CSEG);
    memcpy(sw + CSEG, c, CSEG);
    T_CHECK(!s_decrypt(ctx, sw, cn, out, &pn));
    /* Drop the middle segment. */
    memcpy(sw, c, CSEG);
    memcpy(sw + CSEG, c + 2 * CSEG, CSEG);
    T_CHECK(!s_decrypt(ctx, sw, 2 * CSEG, out, &pn));
    /* A non-final segment presented as final (truncation after it). */
    T_CHECK(!s_decrypt(ctx, c, CSEG, out, &pn));
    /* Another key. */
    T_CHECK(!s_decrypt(other, c, cn, out, &pn));
    /* Another aad. */
    T_ERR(s3s_sse_seg_open(ctx, 0, false, S3S_CUR_LIT("v2"), c, CSEG, out),
          S3S_ERR_SSE_TAG_MISMATCH);
    /* A failed open releases nothing: the output is wiped. */
    memset(out, 0xAA, SEG);
    c[5] ^= 1;
    T_ERR(s3s_sse_seg_open(ctx, 0, false, S3S_CUR_LIT("v1"), c, CSEG, out),
          S3S_ERR_SSE_TAG_MISMATCH);
    bool wiped = true;
    for (size_t i = 0; i < SEG; i++) {
        wiped = wiped && out[i] == 0;
    }
    T_CHECK(wiped);
    c[5] ^= 1;
    /* In place. */
    uint8_t *copy = malloc(CSEG);
    memcpy(copy, c, CSEG);
    T_OK(s3s_sse_seg_open(ctx, 0, false, S3S_CUR_LIT("v1"), copy, CSEG, copy));
    T_CHECK(memcmp(copy, p, SEG) == 0);
    /* Too short to hold a tag. */
    T_ERR(s3s_sse_seg_open(ctx, 0, true, S3S_CUR_LIT("v1"), c, 15, out), S3S_ERR_SSE_TAG_MISMATCH);

    free(copy);
    free(sw);
    free(c);
    free(p);
    free(out);
    s3s_sse_seg_ctx_destroy(ctx);
    s3s_sse_seg_ctx_destroy(other);
}

static void test_sizes_and_spans(void)
{
    T_CHECK(s3s_sse_cipher_size(0, SEG) == 16);
    T_CHECK(s3s_sse_cipher_size(1, SEG) == 17);
    T_CHECK(s3s_sse_cipher_size(SEG, SEG) == CSEG);
    T_CHECK(s3s_sse_cipher_size(SEG + 1, SEG) == CSEG + 17);
    for (uint64_t n = 0; n < 3 * SEG + 40; n += (n < 40 || n > 3 * SEG) ? 1 : SEG / 3) {
        uint64_t back = 0;
        T_OK(s3s_sse_plain_size(s3s_sse_cipher_size(n, SEG), SEG, &back));
        T_CHECK(back == n);
    }
    uint64_t out = 0;
    T_CHECK(s3s_failed(s3s_sse_plain_size(0, SEG, &out)));
    T_CHECK(s3s_failed(s3s_sse_plain_size(15, SEG, &out)));
    T_CHECK(s3s_failed(s3s_sse_plain_size(CSEG + 16, SEG, &out))); /* empty non-only segment */
    T_CHECK(s3s_failed(s3s_sse_plain_size(CSEG + 3, SEG, &out)));

    struct s3s_sse_span sp;
    uint64_t n = 3 * SEG + 100;
    T_OK(s3s_sse_span_for(n, SEG, 0, 0, &sp));
    T_CHECK(sp.first_segment == 0 && sp.last_segment == 0 && sp.cipher_first == 0 &&
            sp.cipher_last == CSEG - 1 && sp.skip == 0);
    T_OK(s3s_sse_span_for(n, SEG, SEG + 5, 2 * SEG, &sp));
    T_CHECK(sp.first_segment == 1 && sp.last_segment == 2 && sp.cipher_first == CSEG &&
            sp.cipher_last == 3 * CSEG - 1 && sp.skip == 5);
    T_OK(s3s_sse_span_for(n, SEG, n - 1, n - 1, &sp));
    T_CHECK(sp.first_segment == 3 && sp.cipher_first == 3 * CSEG &&
            sp.cipher_last == s3s_sse_cipher_size(n, SEG) - 1 && sp.skip == 99);
    T_CHECK(s3s_failed(s3s_sse_span_for(n, SEG, 0, n, &sp)));
    T_CHECK(s3s_failed(s3s_sse_span_for(n, SEG, 5, 4, &sp)));
}

static void test_names(void)
{
    enum s3s_sse_aead a;
    T_OK(s3s_sse_aead_parse(S3S_CUR_LIT("AES-256-GCM"), &a));
    T_CHECK(a == S3S_SSE_AES_256_GCM);
    T_OK(s3s_sse_aead_parse(S3S_CUR_LIT("CHACHA20-POLY1305"), &a));
    T_CHECK(a == S3S_SSE_CHACHA20_POLY1305);
    T_CHECK(s3s_failed(s3s_sse_aead_parse(S3S_CUR_LIT("AES-256-CBC"), &a)));
    T_STREQ(s3s_sse_aead_name(S3S_SSE_CHACHA20_POLY1305), "CHACHA20-POLY1305");
}

int main(void)
{
    test_round_trips(S3S_SSE_AES_256_GCM);
    test_round_trips(S3S_SSE_CHACHA20_POLY1305);
    test_stream_binding();
    test_sizes_and_spans();
    test_names();
    return t_finish("sse.segment");
}
