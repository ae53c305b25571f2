/*
 * segment.c - seals and opens the segments of an encrypted object (the
 * STREAM construction of sse.h), and the size and range arithmetic that lets
 * listings and Range GETs work without reading objects.
 *
 * One EVP_CIPHER_CTX is kept per stream and re-keyed per segment with only a
 * new nonce, so the hot path allocates nothing.
 */
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <string.h>

#include "sse/sse.h"
#include "sse/sse_private.h"

struct s3s_sse_seg_ctx {
    enum s3s_sse_aead aead;
    const EVP_CIPHER *cipher;
    EVP_CIPHER_CTX *enc;
    EVP_CIPHER_CTX *dec;
    size_t tag_len; /* S3S_SSE_TAG_LEN, or S3S_SSE_PART_TAG_LEN (parts2) */
};

const char *s3s_sse_aead_name(enum s3s_sse_aead aead)
{
    switch (aead) {
    case S3S_SSE_AES_256_GCM:
        return "AES-256-GCM";
    case S3S_SSE_CHACHA20_POLY1305:
        return "CHACHA20-POLY1305";
    default:
        return "unknown";
    }
}

s3s_result s3s_sse_aead_parse(struct s3s_cur name, enum s3s_sse_aead *out)
{
    if (s3s_cur_eq_str(name, "AES-256-GCM")) {
        *out = S3S_SSE_AES_256_GCM;
        return s3s_ok();
    }
    if (s3s_cur_eq_str(name, "CHACHA20-POLY1305")) {
        *out = S3S_SSE_CHACHA20_POLY1305;
        return s3s_ok();
    }
    S3S_BAIL(S3S_ERR_SSE_BAD_FORMAT);
}

s3s_result s3s_sse_seg_ctx_new(enum s3s_sse_aead aead, const uint8_t key[S3S_SSE_KEY_LEN],
                               struct s3s_sse_seg_ctx **out)
{
    S3S_ENSURE_REF(out);
    S3S_ENSURE_REF(key);
    const EVP_CIPHER *cipher = NULL;
    switch (aead) {
    case S3S_SSE_AES_256_GCM:
        cipher = EVP_aes_256_gcm();
        break;
    case S3S_SSE_CHACHA20_POLY1305:
        cipher = EVP_chacha20_poly1305();
        break;
    default:
        S3S_BAIL(S3S_ERR_SSE_BAD_FORMAT);
    }
    struct s3s_sse_seg_ctx *ctx = s3s_calloc(1, sizeof(*ctx));
    S3S_ENSURE(ctx != NULL, S3S_ERR_NOMEM);
    ctx->aead = aead;
    ctx->cipher = cipher;
    ctx->tag_len = S3S_SSE_TAG_LEN;
    ctx->enc = EVP_CIPHER_CTX_new();
    ctx->dec = EVP_CIPHER_CTX_new();
    if (!ctx->enc || !ctx->dec) {
        s3s_sse_seg_ctx_destroy(ctx);
        S3S_BAIL(S3S_ERR_NOMEM);
    }
    /* Key schedule once; each segment only sets its nonce. The contexts
     * hold the expanded key; no copy of the key itself is kept (the
     * caller's is wiped by the caller). */
    if (EVP_EncryptInit_ex(ctx->enc, cipher, NULL, key, NULL) != 1 ||
        EVP_DecryptInit_ex(ctx->dec, cipher, NULL, key, NULL) != 1) {
        s3s_sse_seg_ctx_destroy(ctx);
        S3S_BAIL(S3S_ERR_INTERNAL);
    }
    *out = ctx;
    return s3s_ok();
}

s3s_result s3s_sse_seg_ctx_rekey(struct s3s_sse_seg_ctx *ctx, const uint8_t key[S3S_SSE_KEY_LEN])
{
    S3S_ENSURE_REF(ctx);
    S3S_ENSURE_REF(key);
    S3S_ENSURE(EVP_EncryptInit_ex(ctx->enc, NULL, NULL, key, NULL) == 1 &&
                   EVP_DecryptInit_ex(ctx->dec, NULL, NULL, key, NULL) == 1,
               S3S_ERR_INTERNAL);
    return s3s_ok();
}

s3s_result s3s_sse_seg_ctx_set_tag_len(struct s3s_sse_seg_ctx *ctx, size_t tag_len)
{
    S3S_ENSURE_REF(ctx);
    S3S_ENSURE(tag_len == S3S_SSE_TAG_LEN || tag_len == S3S_SSE_PART_TAG_LEN,
               S3S_ERR_INVALID_ARG);
    ctx->tag_len = tag_len;
    return s3s_ok();
}

void s3s_sse_seg_ctx_destroy(struct s3s_sse_seg_ctx *ctx)
{
    if (!ctx) {
        return;
    }
    /* EVP_CIPHER_CTX_free cleanses the expanded key schedule. */
    EVP_CIPHER_CTX_free(ctx->enc);
    EVP_CIPHER_CTX_free(ctx->dec);
    s3s_free(&ctx);
}

void s3s_sse_part_nonce(uint32_t part, uint32_t index, bool final, uint8_t out[S3S_SSE_NONCE_LEN])
{
    memset(out, 0, S3S_SSE_NONCE_LEN);
    out[3] = (uint8_t)(part >> 24);
    out[4] = (uint8_t)(part >> 16);
    out[5] = (uint8_t)(part >> 8);
    out[6] = (uint8_t)part;
    out[7] = (uint8_t)(index >> 24);
    out[8] = (uint8_t)(index >> 16);
    out[9] = (uint8_t)(index >> 8);
    out[10] = (uint8_t)index;
    out[11] = final ? 1 : 0;
}

void s3s_sse_nonce(uint32_t index, bool final, uint8_t out[S3S_SSE_NONCE_LEN])
{
    s3s_sse_part_nonce(0, index, final, out);
}

void s3s_sse_part_header_nonce(bool part_keys, const uint8_t stored[S3S_SSE_NONCE_LEN],
                               uint8_t out[S3S_SSE_NONCE_LEN])
{
    if (!part_keys) {
        memcpy(out, stored, S3S_SSE_NONCE_LEN);
        return;
    }
    uint32_t w = (uint32_t)stored[0] << 24 | (uint32_t)stored[1] << 16 |
                 (uint32_t)stored[2] << 8 | stored[3];
    s3s_sse_part_nonce(w >> 18, (w >> 1) & S3S_SSE_PART_MAX_INDEX, (w & 1) != 0, out);
}

uint32_t s3s_sse_part_header_part(bool part_keys, const uint8_t stored[S3S_SSE_NONCE_LEN])
{
    uint8_t n[S3S_SSE_NONCE_LEN];
    s3s_sse_part_header_nonce(part_keys, stored, n);
    return (uint32_t)n[3] << 24 | (uint32_t)n[4] << 16 | (uint32_t)n[5] << 8 | n[6];
}

s3s_result s3s_sse_seg_seal_nonce(struct s3s_sse_seg_ctx *ctx,
                                  const uint8_t nonce[S3S_SSE_NONCE_LEN], struct s3s_cur aad,
                                  const uint8_t *plain, size_t plain_len, uint8_t *out)
{
    S3S_ENSURE_REF(ctx);
    S3S_ENSURE(plain_len <= S3S_SSE_SEGMENT_SIZE * 16u && plain_len < INT32_MAX,
               S3S_ERR_INVALID_ARG);
    int n = 0, fin = 0;
    S3S_ENSURE(EVP_EncryptInit_ex(ctx->enc, NULL, NULL, NULL, nonce) == 1, S3S_ERR_INTERNAL);
    if (aad.len) {
        S3S_ENSURE(EVP_EncryptUpdate(ctx->enc, NULL, &n, aad.ptr, (int)aad.len) == 1,
                   S3S_ERR_INTERNAL);
    }
    if (plain_len) {
        S3S_ENSURE(EVP_EncryptUpdate(ctx->enc, out, &n, plain, (int)plain_len) == 1,
                   S3S_ERR_INTERNAL);
    } else {
        n = 0;
    }
    S3S_ENSURE(EVP_EncryptFinal_ex(ctx->enc, out + n, &fin) == 1, S3S_ERR_INTERNAL);
    S3S_ENSURE((size_t)(n + fin) == plain_len, S3S_ERR_INTERNAL);
    S3S_ENSURE(EVP_CIPHER_CTX_ctrl(ctx->enc, EVP_CTRL_AEAD_GET_TAG, (int)ctx->tag_len,
                                   out + plain_len) == 1,
               S3S_ERR_INTERNAL);
    return s3s_ok();
}

s3s_result s3s_sse_seg_open_nonce(struct s3s_sse_seg_ctx *ctx,
                                  const uint8_t nonce[S3S_SSE_NONCE_LEN], struct s3s_cur aad,
                                  const uint8_t *cipher, size_t cipher_len, uint8_t *out)
{
    S3S_ENSURE_REF(ctx);
    S3S_ENSURE(cipher_len >= ctx->tag_len && cipher_len < INT32_MAX, S3S_ERR_SSE_TAG_MISMATCH);
    size_t plain_len = cipher_len - ctx->tag_len;
    uint8_t tag[S3S_SSE_TAG_LEN];
    /* Copy the tag first: with out == cipher, decryption overwrites nothing
     * past plain_len, but keep it independent of that detail. */
    memcpy(tag, cipher + plain_len, ctx->tag_len);
    int n = 0, fin = 0;
    S3S_ENSURE(EVP_DecryptInit_ex(ctx->dec, NULL, NULL, NULL, nonce) == 1, S3S_ERR_INTERNAL);
    if (aad.len) {
        S3S_ENSURE(EVP_DecryptUpdate(ctx->dec, NULL, &n, aad.ptr, (int)aad.len) == 1,
                   S3S_ERR_INTERNAL);
    }
    n = 0;
    if (plain_len) {
        S3S_ENSURE(EVP_DecryptUpdate(ctx->dec, out, &n, cipher, (int)plain_len) == 1,
                   S3S_ERR_INTERNAL);
    }
    S3S_ENSURE(EVP_CIPHER_CTX_ctrl(ctx->dec, EVP_CTRL_AEAD_SET_TAG, (int)ctx->tag_len, tag) == 1,
               S3S_ERR_INTERNAL);
    /* The tag is checked here, by OpenSSL, in constant time. */
    if (EVP_DecryptFinal_ex(ctx->dec, out + n, &fin) != 1) {
        if (plain_len) {
            OPENSSL_cleanse(out, plain_len);
        }
        S3S_BAIL(S3S_ERR_SSE_TAG_MISMATCH);
    }
    return s3s_ok();
}

s3s_result s3s_sse_seg_seal(struct s3s_sse_seg_ctx *ctx, uint32_t index, bool final,
                            struct s3s_cur aad, const uint8_t *plain, size_t plain_len,
                            uint8_t *out)
{
    uint8_t nonce[S3S_SSE_NONCE_LEN];
    s3s_sse_nonce(index, final, nonce);
    return s3s_sse_seg_seal_nonce(ctx, nonce, aad, plain, plain_len, out);
}

s3s_result s3s_sse_seg_open(struct s3s_sse_seg_ctx *ctx, uint32_t index, bool final,
                            struct s3s_cur aad, const uint8_t *cipher, size_t cipher_len,
                            uint8_t *out)
{
    uint8_t nonce[S3S_SSE_NONCE_LEN];
    s3s_sse_nonce(index, final, nonce);
    return s3s_sse_seg_open_nonce(ctx, nonce, aad, cipher, cipher_len, out);
}

/* ------------------------------------------------------------ size maths */

uint64_t s3s_sse_cipher_size_x(uint64_t plain_len, uint32_t segment_size, uint32_t overhead)
{
    uint64_t segments = plain_len == 0 ? 1 : (plain_len + segment_size - 1) / segment_size;
    return plain_len + segments * overhead;
}

s3s_result s3s_sse_plain_size_x(uint64_t cipher_len, uint32_t segment_size, uint32_t overhead,
                                uint64_t *out)
{
    S3S_ENSURE(segment_size > 0 && overhead >= S3S_SSE_TAG_LEN, S3S_ERR_INVALID_ARG);
    uint64_t full = (uint64_t)segment_size + overhead;
    uint64_t n = cipher_len / full;
    uint64_t rem = cipher_len % full;
    if (rem == 0) {
        /* Only full segments; at least one must exist (the empty object has
         * one empty final segment, caught below). */
        S3S_ENSURE(n > 0, S3S_ERR_SSE_BAD_FORMAT);
        *out = n * segment_size;
        return s3s_ok();
    }
    /* A short final segment holds at least its overhead; an empty final
     * segment is only valid as the whole object. */
    S3S_ENSURE(rem >= overhead, S3S_ERR_SSE_BAD_FORMAT);
    S3S_ENSURE(rem > overhead || n == 0, S3S_ERR_SSE_BAD_FORMAT);
    *out = n * segment_size + (rem - overhead);
    return s3s_ok();
}

uint64_t s3s_sse_cipher_size(uint64_t plain_len, uint32_t segment_size)
{
    return s3s_sse_cipher_size_x(plain_len, segment_size, S3S_SSE_TAG_LEN);
}

s3s_result s3s_sse_plain_size(uint64_t cipher_len, uint32_t segment_size, uint64_t *out)
{
    return s3s_sse_plain_size_x(cipher_len, segment_size, S3S_SSE_TAG_LEN, out);
}

s3s_result s3s_sse_span_for(uint64_t plain_len, uint32_t segment_size, uint64_t first,
                            uint64_t last, struct s3s_sse_span *out)
{
    S3S_ENSURE(segment_size > 0 && first <= last && last < plain_len, S3S_ERR_INVALID_ARG);
    uint64_t full = (uint64_t)segment_size + S3S_SSE_TAG_LEN;
    uint64_t s0 = first / segment_size;
    uint64_t s1 = last / segment_size;
    S3S_ENSURE(s1 <= S3S_SSE_MAX_SEGMENTS, S3S_ERR_INVALID_ARG);
    uint64_t cipher_total = s3s_sse_cipher_size(plain_len, segment_size);
    out->first_segment = (uint32_t)s0;
    out->last_segment = (uint32_t)s1;
    out->cipher_first = s0 * full;
    uint64_t end = (s1 + 1) * full; /* exclusive */
    out->cipher_last = (end < cipher_total ? end : cipher_total) - 1;
    out->skip = first - s0 * segment_size;
    return s3s_ok();
}

s3s_result s3s_sse__hkdf_sha256(const uint8_t *key, size_t key_len, const void *info,
                                size_t info_len, uint8_t *out, size_t out_len)
{
    EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
    EVP_KDF_CTX *kctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
    EVP_KDF_free(kdf);
    S3S_ENSURE(kctx != NULL, S3S_ERR_NOMEM);
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)key, key_len),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)info, info_len),
        OSSL_PARAM_construct_end(),
    };
    int ok = EVP_KDF_derive(kctx, out, out_len, params);
    EVP_KDF_CTX_free(kctx);
    S3S_ENSURE(ok == 1, S3S_ERR_INTERNAL);
    return s3s_ok();
}
