/*
 * stream_test.c - streaming encrypt/decrypt: random piece sizes at every size
 * edge, every range shape over a multi-segment object (decrypting only the
 * segments the range needs), truncation and extension of the ciphertext,
 * and more or less plaintext than announced; the multipart layout (parts
 * sealed apart under their part numbers, nonces stored in front) with
 * swapped, renumbered, truncated and altered parts.
 */
#include <openssl/rand.h>

#include "sse/sse.h"
#include "testlib.h"

#define SEG 1024u /* small segments keep the exhaustive range test quick */

static const uint8_t s_key[32] = {42};

static void s_encrypt(const uint8_t *p, uint64_t n, struct s3s_buf *c)
{
    struct s3s_sse_enc *e = NULL;
    T_OK(s3s_sse_enc_new(S3S_SSE_AES_256_GCM, s_key, S3S_CUR_LIT("aad"), SEG, 0, n, &e));
    uint64_t off = 0;
    unsigned seed = (unsigned)n;
    while (off < n) {
        seed = seed * 1103515245u + 12345u;
        uint64_t piece = 1 + (seed >> 8) % (3 * SEG);
        if (piece > n - off) {
            piece = n - off;
        }
        T_OK(s3s_sse_enc_push(e, s3s_cur_from(p + off, piece), c));
        off += piece;
    }
    T_OK(s3s_sse_enc_finish(e, c));
    s3s_sse_enc_destroy(e);
}

static bool s_decrypt_range(const struct s3s_buf *c, uint64_t plain_len, uint64_t first,
                            uint64_t last, struct s3s_buf *out)
{
    struct s3s_sse_span sp;
    if (s3s_failed(s3s_sse_span_for(plain_len, SEG, first, last, &sp))) {
        return false;
    }
    struct s3s_sse_dec *d = NULL;
    if (s3s_failed(s3s_sse_dec_new(S3S_SSE_AES_256_GCM, s_key, S3S_CUR_LIT("aad"), SEG, false,
                                   c->len, sp.first_segment, sp.skip, last - first + 1, &d))) {
        return false;
    }
    bool ok = true;
    /* Feed the needed ciphertext in odd-sized pieces. */
    for (uint64_t off = sp.cipher_first; ok && off <= sp.cipher_last; off += 777) {
        uint64_t n = sp.cipher_last + 1 - off < 777 ? sp.cipher_last + 1 - off : 777;
        ok = s3s_is_ok(s3s_sse_dec_push(d, s3s_cur_from(c->ptr + off, n), out));
    }
    ok = ok && s3s_is_ok(s3s_sse_dec_finish(d));
    s3s_sse_dec_destroy(d);
    return ok;
}

static void test_round_trip_and_ranges(void)
{
    static const uint64_t sizes[] = {0, 1, SEG - 1, SEG, SEG + 1, 5 * SEG + 3};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        uint64_t n = sizes[i];
        uint8_t *p = malloc(n + 1);
        T_CHECK(RAND_bytes(p, (int)n + 1) == 1);
        struct s3s_buf c, out;
        T_OK(s3s_buf_init(&c, 0, 64 * SEG));
        T_OK(s3s_buf_init(&out, 0, 64 * SEG));
        s_encrypt(p, n, &c);
        T_CHECK(c.len == s3s_sse_cipher_size(n, SEG));
        if (n == 0) {
            /* Whole-object decrypt of the empty object. */
            struct s3s_sse_dec *d = NULL;
            T_OK(s3s_sse_dec_new(S3S_SSE_AES_256_GCM, s_key, S3S_CUR_LIT("aad"), SEG, false, c.len,
                                 0, 0, 0, &d));
            T_OK(s3s_sse_dec_push(d, s3s_buf_cur(&c), &out));
            T_OK(s3s_sse_dec_finish(d));
            T_CHECK(out.len == 0);
            s3s_sse_dec_destroy(d);
        } else {
            T_CHECK(s_decrypt_range(&c, n, 0, n - 1, &out));
            T_CHECK(out.len == n && memcmp(out.ptr, p, n) == 0);
        }
        if (n == 5 * SEG + 3) {
            /* Ranges around every segment boundary. */
            uint64_t pts[] = {0, 1, SEG - 1, SEG, SEG + 1, 2 * SEG + 7, 5 * SEG, n - 2, n - 1};
            size_t np = sizeof(pts) / sizeof(pts[0]);
            for (size_t a = 0; a < np; a++) {
                for (size_t b = a; b < np; b++) {
                    s3s_buf_reset(&out);
                    bool ok = s_decrypt_range(&c, n, pts[a], pts[b], &out);
                    T_CHECK(ok && out.len == pts[b] - pts[a] + 1 &&
                            memcmp(out.ptr, p + pts[a], out.len) == 0);
                }
            }
            /* Truncated ciphertext (a whole segment, or a byte) is refused. */
            struct s3s_buf t = c;
            t.len = c.len - (SEG + 16);
            s3s_buf_reset(&out);
            struct s3s_sse_dec *d = NULL;
            T_OK(s3s_sse_dec_new(S3S_SSE_AES_256_GCM, s_key, S3S_CUR_LIT("aad"), SEG, false, c.len,
                                 0, 0, n, &d));
            T_OK(s3s_sse_dec_push(d, s3s_buf_cur(&t), &out));
            T_ERR(s3s_sse_dec_finish(d), S3S_ERR_SSE_TAG_MISMATCH);
            s3s_sse_dec_destroy(d);
            /* Claiming the truncated length as the object's length: the last
             * segment present is not sealed as final. */
            s3s_buf_reset(&out);
            T_OK(s3s_sse_dec_new(S3S_SSE_AES_256_GCM, s_key, S3S_CUR_LIT("aad"), SEG, false, t.len,
                                 0, 0, 4 * SEG + 3, &d));
            T_ERR(s3s_sse_dec_push(d, s3s_buf_cur(&t), &out), S3S_ERR_SSE_TAG_MISMATCH);
            s3s_sse_dec_destroy(d);
            /* Extra bytes past the end. */
            T_OK(s3s_sse_dec_new(S3S_SSE_AES_256_GCM, s_key, S3S_CUR_LIT("aad"), SEG, false, c.len,
                                 0, 0, n, &d));
            T_OK(s3s_buf_append_byte(&c, 0));
            s3s_buf_reset(&out);
            T_ERR(s3s_sse_dec_push(d, s3s_buf_cur(&c), &out), S3S_ERR_SSE_TAG_MISMATCH);
            s3s_sse_dec_destroy(d);
        }
        s3s_buf_clean_up(&c);
        s3s_buf_clean_up(&out);
        free(p);
    }
}

static void test_length_mismatch(void)
{
    struct s3s_sse_enc *e = NULL;
    struct s3s_buf c;
    T_OK(s3s_buf_init(&c, 0, 4 * SEG));
    T_OK(s3s_sse_enc_new(S3S_SSE_AES_256_GCM, s_key, S3S_CUR_LIT(""), SEG, 0, 10, &e));
    T_ERR(s3s_sse_enc_push(e, S3S_CUR_LIT("0123456789A"), &c), S3S_ERR_INVALID_ARG);
    T_OK(s3s_sse_enc_push(e, S3S_CUR_LIT("012345678"), &c));
    T_ERR(s3s_sse_enc_finish(e, &c), S3S_ERR_INCOMPLETE_BODY);
    s3s_sse_enc_destroy(e);
    s3s_buf_clean_up(&c);
}

/* Part `part` of `n` plaintext bytes, appended to c. */
static void s_encrypt_part(const uint8_t *p, uint64_t n, uint32_t part, struct s3s_buf *c)
{
    struct s3s_sse_enc *e = NULL;
    T_OK(s3s_sse_enc_new(S3S_SSE_AES_256_GCM, s_key, S3S_CUR_LIT("aad"), SEG, part, n, &e));
    T_OK(s3s_sse_enc_push(e, s3s_cur_from(p, n), c));
    T_OK(s3s_sse_enc_finish(e, c));
    s3s_sse_enc_destroy(e);
}

/* Decrypts plaintext [first, last] of a multipart-layout ciphertext of
 * `parts` parts (0: not told). */
static bool s_decrypt_parts_n(struct s3s_cur c, uint32_t parts, uint64_t first, uint64_t last,
                              struct s3s_buf *out)
{
    uint64_t full = SEG + S3S_SSE_PART_OVERHEAD;
    uint64_t s0 = first / SEG;
    struct s3s_sse_dec *d = NULL;
    if (s3s_failed(s3s_sse_dec_new(S3S_SSE_AES_256_GCM, s_key, S3S_CUR_LIT("aad"), SEG, true,
                                   c.len, (uint32_t)s0, first - s0 * SEG, last - first + 1,
                                   &d))) {
        return false;
    }
    bool ok = parts == 0 || s3s_is_ok(s3s_sse_dec_set_parts(d, parts));
    /* A read after the first segment is told where part numbers start, from
     * the object's first stored nonce, as s3seal does. */
    if (ok && s3s_sse_dec_needs_first_part(d)) {
        uint64_t segments = (c.len + full - 1) / full;
        ok = s3s_is_ok(s3s_sse_dec_set_end_nonces(d, c.ptr, c.ptr + (segments - 1) * full));
    }
    for (uint64_t off = s0 * full; ok && off < c.len; off += 1000) {
        uint64_t n = c.len - off < 1000 ? c.len - off : 1000;
        ok = s3s_is_ok(s3s_sse_dec_push(d, s3s_cur_from(c.ptr + off, n), out));
    }
    ok = ok && s3s_is_ok(s3s_sse_dec_finish(d));
    s3s_sse_dec_destroy(d);
    return ok;
}

static bool s_decrypt_parts(struct s3s_cur c, uint64_t first, uint64_t last, struct s3s_buf *out)
{
    return s_decrypt_parts_n(c, 3, first, last, out);
}

/* Five parts of 4 segments but the last; rebuilt with parts left out or
 * moved, where only the part count can tell. */
static void test_multipart_moved_parts(void)
{
    const uint64_t part = 4 * SEG, n = 4 * part + 10;
    uint8_t *p = malloc(n);
    T_CHECK(RAND_bytes(p, (int)n) == 1);
    struct s3s_buf parts[5], t, out;
    for (int i = 0; i < 5; i++) {
        T_OK(s3s_buf_init(&parts[i], 0, 16 * SEG));
        s_encrypt_part(p + (uint64_t)i * part, i < 4 ? part : 10, (uint32_t)i + 1, &parts[i]);
    }
    T_OK(s3s_buf_init(&t, 0, 64 * SEG));
    T_OK(s3s_buf_init(&out, 0, 64 * SEG));
    static const int orders[][5] = {{0, 2, 3, 4, -1}, {0, 2, 1, 3, 4}, {1, 0, 2, 3, 4}};
    for (size_t o = 0; o < 3; o++) {
        s3s_buf_reset(&t);
        uint32_t count = 0;
        for (int i = 0; i < 5 && orders[o][i] >= 0; i++, count++) {
            T_OK(s3s_buf_append_cur(&t, s3s_buf_cur(&parts[orders[o][i]])));
        }
        for (uint32_t slot = 0; slot + 1 < count; slot++) {
            if (orders[o][slot] == (int)slot) {
                continue;
            }
            /* A range inside a moved part, told the part count. */
            uint64_t at = slot * part + 3;
            s3s_buf_reset(&out);
            T_CHECK(!s_decrypt_parts_n(s3s_buf_cur(&t), count, at, at + 10, &out));
            T_CHECK(out.len == 0);
        }
        s3s_buf_reset(&out);
        T_CHECK(!s_decrypt_parts_n(s3s_buf_cur(&t), count, 0, n - 1, &out) || o == 0);
    }
    /* The original with its part count reads whole and in ranges. */
    s3s_buf_reset(&t);
    for (int i = 0; i < 5; i++) {
        T_OK(s3s_buf_append_cur(&t, s3s_buf_cur(&parts[i])));
    }
    for (uint64_t at = 0; at < n; at += SEG / 2) {
        s3s_buf_reset(&out);
        uint64_t last = at + 700 < n ? at + 700 : n - 1;
        T_CHECK(s_decrypt_parts_n(s3s_buf_cur(&t), 5, at, last, &out) &&
                memcmp(out.ptr, p + at, last - at + 1) == 0);
    }
    /* A wrong part count is refused. */
    T_CHECK(!s_decrypt_parts_n(s3s_buf_cur(&t), 4, 0, n - 1, &out));
    /* A layout learnt earlier (s = 1, k = 4) serves a range without the end
     * nonces; a wrong one is refused before any byte. */
    uint64_t full = SEG + S3S_SSE_PART_OVERHEAD;
    static const uint64_t ks[] = {4, 3};
    for (size_t i = 0; i < 2; i++) {
        struct s3s_sse_dec *d = NULL;
        T_OK(s3s_sse_dec_new(S3S_SSE_AES_256_GCM, s_key, S3S_CUR_LIT("aad"), SEG, true, t.len, 9, 5,
                             100, &d));
        T_OK(s3s_sse_dec_set_parts(d, 5));
        s3s_buf_reset(&out);
        bool ok = s3s_is_ok(s3s_sse_dec_set_layout(d, 1, ks[i])) &&
                  s3s_is_ok(s3s_sse_dec_push(d, s3s_cur_from(t.ptr + 9 * full, t.len - 9 * full),
                                             &out)) &&
                  s3s_is_ok(s3s_sse_dec_finish(d));
        T_CHECK(i == 0 ? ok && out.len == 100 && memcmp(out.ptr, p + 9 * SEG + 5, 100) == 0
                       : !ok && out.len == 0);
        s3s_sse_dec_destroy(d);
    }
    for (int i = 0; i < 5; i++) {
        s3s_buf_clean_up(&parts[i]);
    }
    s3s_buf_clean_up(&t);
    s3s_buf_clean_up(&out);
    free(p);
}

/* Parts numbered 2, 3, 4 (as minio-js numbers them). */
static void test_multipart_numbered_from_two(void)
{
    const uint64_t part = 4 * SEG, n = 2 * part + 77;
    uint8_t *p = malloc(n);
    T_CHECK(RAND_bytes(p, (int)n) == 1);
    struct s3s_buf c, out;
    T_OK(s3s_buf_init(&c, 0, 64 * SEG));
    T_OK(s3s_buf_init(&out, 0, 64 * SEG));
    for (uint32_t i = 0; i < 3; i++) {
        s_encrypt_part(p + i * part, i < 2 ? part : 77, i + 2, &c);
    }
    for (uint64_t at = 0; at < n; at += 700) {
        s3s_buf_reset(&out);
        uint64_t last = at + 900 < n ? at + 900 : n - 1;
        T_CHECK(s_decrypt_parts_n(s3s_buf_cur(&c), 3, at, last, &out) &&
                memcmp(out.ptr, p + at, last - at + 1) == 0);
    }
    /* Not told the first part number: a later start is refused. */
    struct s3s_sse_dec *d = NULL;
    T_OK(s3s_sse_dec_new(S3S_SSE_AES_256_GCM, s_key, S3S_CUR_LIT("aad"), SEG, true, c.len, 4, 0,
                         10, &d));
    T_CHECK(s3s_sse_dec_needs_first_part(d));
    s3s_buf_reset(&out);
    uint64_t full = SEG + S3S_SSE_PART_OVERHEAD;
    T_CHECK(s3s_failed(s3s_sse_dec_push(d, s3s_cur_from(c.ptr + 4 * full, full), &out)));
    T_CHECK(out.len == 0);
    s3s_sse_dec_destroy(d);
    /* Told a wrong one: refused too. */
    T_OK(s3s_sse_dec_new(S3S_SSE_AES_256_GCM, s_key, S3S_CUR_LIT("aad"), SEG, true, c.len, 4, 0,
                         10, &d));
    T_OK(s3s_sse_dec_set_parts(d, 3));
    T_OK(s3s_sse_dec_set_first_part(d, 1));
    T_CHECK(s3s_failed(s3s_sse_dec_push(d, s3s_cur_from(c.ptr + 4 * full, full), &out)));
    s3s_sse_dec_destroy(d);
    /* End nonces that do not span the part count, or a last one not final. */
    T_OK(s3s_sse_dec_new(S3S_SSE_AES_256_GCM, s_key, S3S_CUR_LIT("aad"), SEG, true, c.len, 4, 0,
                         10, &d));
    T_OK(s3s_sse_dec_set_parts(d, 4));
    uint64_t lastoff = 8 * full;
    T_ERR(s3s_sse_dec_set_end_nonces(d, c.ptr, c.ptr + lastoff), S3S_ERR_SSE_TAG_MISMATCH);
    s3s_sse_dec_destroy(d);
    T_OK(s3s_sse_dec_new(S3S_SSE_AES_256_GCM, s_key, S3S_CUR_LIT("aad"), SEG, true, c.len, 4, 0,
                         10, &d));
    T_OK(s3s_sse_dec_set_parts(d, 3));
    T_ERR(s3s_sse_dec_set_end_nonces(d, c.ptr, c.ptr + full), S3S_ERR_SSE_TAG_MISMATCH);
    T_OK(s3s_sse_dec_set_end_nonces(d, c.ptr, c.ptr + lastoff));
    s3s_sse_dec_destroy(d);
    s3s_buf_clean_up(&c);
    s3s_buf_clean_up(&out);
    free(p);
}

static void test_multipart_layout(void)
{
    /* Three parts: two of 4 segments, a short last one. */
    const uint64_t p1 = 4 * SEG, p3 = 2 * SEG + 5, n = 2 * p1 + p3;
    uint8_t *p = malloc(n);
    T_CHECK(RAND_bytes(p, (int)n) == 1);
    struct s3s_buf c, parts[3], out;
    T_OK(s3s_buf_init(&c, 0, 64 * SEG));
    T_OK(s3s_buf_init(&out, 0, 64 * SEG));
    for (int i = 0; i < 3; i++) {
        T_OK(s3s_buf_init(&parts[i], 0, 16 * SEG));
        s_encrypt_part(p + (uint64_t)i * p1, i < 2 ? p1 : p3, (uint32_t)i + 1, &parts[i]);
        T_CHECK(parts[i].len ==
                s3s_sse_cipher_size_x(i < 2 ? p1 : p3, SEG, S3S_SSE_PART_OVERHEAD));
        T_OK(s3s_buf_append_cur(&c, s3s_buf_cur(&parts[i])));
    }
    uint64_t plain = 0;
    T_OK(s3s_sse_plain_size_x(c.len, SEG, S3S_SSE_PART_OVERHEAD, &plain));
    T_CHECK(plain == n);
    /* The whole object, and ranges across part boundaries. */
    uint64_t pts[] = {0, 1, SEG, p1 - 1, p1, p1 + SEG + 3, 2 * p1 - 1, 2 * p1, n - 1};
    size_t np = sizeof(pts) / sizeof(pts[0]);
    for (size_t a = 0; a < np; a++) {
        for (size_t b = a; b < np; b++) {
            s3s_buf_reset(&out);
            bool ok = s_decrypt_parts(s3s_buf_cur(&c), pts[a], pts[b], &out);
            T_CHECK(ok && out.len == pts[b] - pts[a] + 1 &&
                    memcmp(out.ptr, p + pts[a], out.len) == 0);
        }
    }
    /* Parts 1 and 2 swapped: the whole object, and a range in either. */
    struct s3s_buf t;
    T_OK(s3s_buf_init(&t, 0, 64 * SEG));
    T_OK(s3s_buf_append_cur(&t, s3s_buf_cur(&parts[1])));
    T_OK(s3s_buf_append_cur(&t, s3s_buf_cur(&parts[0])));
    T_OK(s3s_buf_append_cur(&t, s3s_buf_cur(&parts[2])));
    T_CHECK(!s_decrypt_parts(s3s_buf_cur(&t), 0, n - 1, &out));
    T_CHECK(!s_decrypt_parts(s3s_buf_cur(&t), SEG, SEG + 10, &out));
    T_CHECK(!s_decrypt_parts(s3s_buf_cur(&t), p1 + 5, p1 + 10, &out));
    /* Part 2 sealed as part 3 (a gap in the numbering). */
    s3s_buf_reset(&t);
    T_OK(s3s_buf_append_cur(&t, s3s_buf_cur(&parts[0])));
    s_encrypt_part(p + p1, p1, 3, &t);
    T_OK(s3s_buf_append_cur(&t, s3s_buf_cur(&parts[2])));
    T_CHECK(!s_decrypt_parts(s3s_buf_cur(&t), 0, n - 1, &out));
    /* The last part cut short by a segment: its last segment is not final. */
    s3s_buf_reset(&t);
    T_OK(s3s_buf_append_cur(&t, s3s_buf_cur(&c)));
    t.len -= 5 + S3S_SSE_PART_OVERHEAD;
    T_CHECK(!s_decrypt_parts(s3s_buf_cur(&t), 0, 2 * p1 + 2 * SEG - 1, &out));
    /* One bit flipped in a stored nonce, in a ciphertext byte, in a tag. */
    size_t spots[] = {SEG + S3S_SSE_PART_OVERHEAD + 4, 2 * SEG + 100, c.len - 1};
    for (size_t i = 0; i < 3; i++) {
        s3s_buf_reset(&t);
        T_OK(s3s_buf_append_cur(&t, s3s_buf_cur(&c)));
        t.ptr[spots[i]] ^= 0x10;
        s3s_buf_reset(&out);
        T_CHECK(!s_decrypt_parts(s3s_buf_cur(&t), 0, n - 1, &out));
    }
    /* A single-stream decryptor does not take the multipart layout. */
    s3s_buf_reset(&out);
    struct s3s_sse_dec *d = NULL;
    if (s3s_is_ok(s3s_sse_dec_new(S3S_SSE_AES_256_GCM, s_key, S3S_CUR_LIT("aad"), SEG, false,
                                  c.len, 0, 0, 1, &d))) {
        T_CHECK(s3s_failed(s3s_sse_dec_push(d, s3s_buf_cur(&c), &out)));
        s3s_sse_dec_destroy(d);
    }
    for (int i = 0; i < 3; i++) {
        s3s_buf_clean_up(&parts[i]);
    }
    s3s_buf_clean_up(&t);
    s3s_buf_clean_up(&c);
    s3s_buf_clean_up(&out);
    free(p);
}

/* The layout arithmetic with a known part count: parts 1 and 3 of a
 * three-part object of k = 4 segments a part (the middle part dropped) fit
 * it with k = 2; the first part's final header, read at segment k - 1,
 * shows the lie. The whole object passes both. */
static void test_middle_part_dropped(void)
{
    const uint64_t full = (uint64_t)S3S_SSE_SEGMENT_SIZE + S3S_SSE_PART_OVERHEAD;
    uint8_t first[S3S_SSE_NONCE_LEN], last[S3S_SSE_NONCE_LEN], mid[S3S_SSE_NONCE_LEN];
    s3s_sse_part_nonce(1, 0, false, first);
    s3s_sse_part_nonce(3, 1, true, last); /* the last part: 2 segments */
    uint32_t s = 0;
    uint64_t k = 0;
    /* Whole: 4 + 4 + 2 segments. */
    T_OK(s3s_sse_parts_layout(first, last, 10 * full, S3S_SSE_SEGMENT_SIZE, 3, &s, &k));
    T_CHECK(s == 1 && k == 4);
    s3s_sse_part_nonce(1, 3, true, mid);
    T_OK(s3s_sse_parts_check_k(mid, s, k));
    /* Part 2 dropped: 4 + 2 segments read as k = 2. */
    T_OK(s3s_sse_parts_layout(first, last, 6 * full, S3S_SSE_SEGMENT_SIZE, 3, &s, &k));
    T_CHECK(k == 2);
    s3s_sse_part_nonce(1, 1, false, mid); /* what segment 1 really is */
    T_ERR(s3s_sse_parts_check_k(mid, s, k), S3S_ERR_SSE_TAG_MISMATCH);
    /* Another part's final header there does not pass either. */
    s3s_sse_part_nonce(2, 1, true, mid);
    T_ERR(s3s_sse_parts_check_k(mid, s, k), S3S_ERR_SSE_TAG_MISMATCH);
    T_ERR(s3s_sse_parts_check_k(mid, s, 0), S3S_ERR_SSE_TAG_MISMATCH);
}

int main(void)
{
    test_round_trip_and_ranges();
    test_length_mismatch();
    test_multipart_layout();
    test_multipart_moved_parts();
    test_multipart_numbered_from_two();
    test_middle_part_dropped();
    return t_finish("sse.stream");
}
