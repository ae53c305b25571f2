/*
 * checksum.c - S3's flexible checksums, computed while a body streams:
 * CRC32 (zlib), CRC32C (ISA-L), CRC64NVME, SHA1 and SHA256 (OpenSSL). The
 * value is the big-endian digest, base64-encoded, as in x-amz-checksum-*.
 *
 * CRC64NVME (the "Rocksoft" polynomial 0xad93d23594c93659, reflected) is
 * computed with a small table here: Debian 12's ISA-L (2.30) predates its
 * crc64_rocksoft functions and no other Debian library provides it.
 */
#include <isa-l/crc.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <string.h>
#include <zlib.h>

#include "sigv4/chunked.h"

static const struct {
    enum s3s_checksum_alg alg;
    const char *name;
    const char *header;
} s_algs[] = {
    {S3S_CHECKSUM_CRC32, "CRC32", "x-amz-checksum-crc32"},
    {S3S_CHECKSUM_CRC32C, "CRC32C", "x-amz-checksum-crc32c"},
    {S3S_CHECKSUM_CRC64NVME, "CRC64NVME", "x-amz-checksum-crc64nvme"},
    {S3S_CHECKSUM_SHA1, "SHA1", "x-amz-checksum-sha1"},
    {S3S_CHECKSUM_SHA256, "SHA256", "x-amz-checksum-sha256"},
};

enum s3s_checksum_alg s3s_checksum_alg_parse(struct s3s_cur name)
{
    for (size_t i = 0; i < sizeof(s_algs) / sizeof(s_algs[0]); i++) {
        if (s3s_cur_eq_str_ignore_case(name, s_algs[i].name)) {
            return s_algs[i].alg;
        }
    }
    return S3S_CHECKSUM_NONE;
}

enum s3s_checksum_alg s3s_checksum_alg_from_header(struct s3s_cur header_name)
{
    for (size_t i = 0; i < sizeof(s_algs) / sizeof(s_algs[0]); i++) {
        if (s3s_cur_eq_str_ignore_case(header_name, s_algs[i].header)) {
            return s_algs[i].alg;
        }
    }
    return S3S_CHECKSUM_NONE;
}

const char *s3s_checksum_header(enum s3s_checksum_alg alg)
{
    for (size_t i = 0; i < sizeof(s_algs) / sizeof(s_algs[0]); i++) {
        if (s_algs[i].alg == alg) {
            return s_algs[i].header;
        }
    }
    return NULL;
}

static uint64_t s_crc64_table[256];
static pthread_once_t s_crc64_once = PTHREAD_ONCE_INIT;

static void s_crc64_init(void)
{
    const uint64_t poly = 0x9a6c9329ac4bc9b5ull; /* 0xad93d23594c93659 reflected */
    for (uint64_t i = 0; i < 256; i++) {
        uint64_t crc = i;
        for (int k = 0; k < 8; k++) {
            crc = (crc & 1) ? (crc >> 1) ^ poly : crc >> 1;
        }
        s_crc64_table[i] = crc;
    }
}

s3s_result s3s_checksum_init(struct s3s_checksum *c, enum s3s_checksum_alg alg)
{
    memset(c, 0, sizeof(*c));
    c->alg = alg;
    switch (alg) {
    case S3S_CHECKSUM_CRC32:
        c->crc = crc32(0L, Z_NULL, 0);
        return s3s_ok();
    case S3S_CHECKSUM_CRC32C:
        c->crc = 0xffffffffu; /* ISA-L takes and returns the raw register */
        return s3s_ok();
    case S3S_CHECKSUM_CRC64NVME:
        pthread_once(&s_crc64_once, s_crc64_init);
        c->crc = ~0ull;
        return s3s_ok();
    case S3S_CHECKSUM_SHA1:
    case S3S_CHECKSUM_SHA256: {
        EVP_MD_CTX *md = EVP_MD_CTX_new();
        S3S_ENSURE(md != NULL, S3S_ERR_NOMEM);
        if (EVP_DigestInit_ex(md, alg == S3S_CHECKSUM_SHA1 ? EVP_sha1() : EVP_sha256(), NULL) !=
            1) {
            EVP_MD_CTX_free(md);
            S3S_BAIL(S3S_ERR_INTERNAL);
        }
        c->md = md;
        return s3s_ok();
    }
    case S3S_CHECKSUM_NONE:
    default:
        S3S_BAIL(S3S_ERR_INVALID_ARG);
    }
}

s3s_result s3s_checksum_update(struct s3s_checksum *c, const uint8_t *p, size_t n)
{
    switch (c->alg) {
    case S3S_CHECKSUM_CRC32:
        while (n) {
            uInt k = n > (1u << 30) ? (1u << 30) : (uInt)n;
            c->crc = crc32((uLong)c->crc, p, k);
            p += k;
            n -= k;
        }
        return s3s_ok();
    case S3S_CHECKSUM_CRC32C:
        while (n) {
            int k = n > (1u << 30) ? (1 << 30) : (int)n;
            c->crc = crc32_iscsi((unsigned char *)p, k, (unsigned int)c->crc);
            p += k;
            n -= (size_t)k;
        }
        return s3s_ok();
    case S3S_CHECKSUM_CRC64NVME: {
        uint64_t crc = c->crc;
        for (size_t i = 0; i < n; i++) {
            crc = s_crc64_table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
        }
        c->crc = crc;
        return s3s_ok();
    }
    case S3S_CHECKSUM_SHA1:
    case S3S_CHECKSUM_SHA256:
        S3S_ENSURE(EVP_DigestUpdate(c->md, p, n) == 1, S3S_ERR_INTERNAL);
        return s3s_ok();
    case S3S_CHECKSUM_NONE:
    default:
        S3S_BAIL(S3S_ERR_INVALID_ARG);
    }
}

s3s_result s3s_checksum_final(struct s3s_checksum *c, struct s3s_buf *b64)
{
    uint8_t d[EVP_MAX_MD_SIZE];
    size_t n = 0;
    uint64_t v = 0;
    switch (c->alg) {
    case S3S_CHECKSUM_CRC32:
        v = c->crc & 0xffffffffu;
        n = 4;
        break;
    case S3S_CHECKSUM_CRC32C:
        v = ~c->crc & 0xffffffffu;
        n = 4;
        break;
    case S3S_CHECKSUM_CRC64NVME:
        v = ~c->crc;
        n = 8;
        break;
    case S3S_CHECKSUM_SHA1:
    case S3S_CHECKSUM_SHA256: {
        unsigned int len = 0;
        S3S_ENSURE(EVP_DigestFinal_ex(c->md, d, &len) == 1, S3S_ERR_INTERNAL);
        return s3s_base64_encode(d, len, b64);
    }
    case S3S_CHECKSUM_NONE:
    default:
        S3S_BAIL(S3S_ERR_INVALID_ARG);
    }
    for (size_t i = 0; i < n; i++) {
        d[i] = (uint8_t)(v >> (8 * (n - 1 - i)));
    }
    return s3s_base64_encode(d, n, b64);
}

void s3s_checksum_clean_up(struct s3s_checksum *c)
{
    if (c->md) {
        EVP_MD_CTX_free(c->md);
        c->md = NULL;
    }
    c->alg = S3S_CHECKSUM_NONE;
}
