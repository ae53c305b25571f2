/*
 * sign.c - the HMAC chain of SigV4 (with a small cache of derived signing
 * keys), signatures, and signing of outbound requests and presigned URLs.
 */
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "sigv4/sigv4_private.h"

s3s_result s3s_sigv4__sha256(struct s3s_cur in, uint8_t out[32])
{
    unsigned int n = 0;
    S3S_ENSURE(EVP_Digest(in.ptr ? in.ptr : (const uint8_t *)"", in.len, out, &n, EVP_sha256(),
                          NULL) == 1 &&
                   n == 32,
               S3S_ERR_INTERNAL);
    return s3s_ok();
}

s3s_result s3s_sigv4__hmac(const uint8_t *key, size_t key_len, struct s3s_cur msg, uint8_t out[32])
{
    unsigned int n = 0;
    S3S_ENSURE(key_len < INT32_MAX, S3S_ERR_INVALID_ARG);
    S3S_ENSURE(HMAC(EVP_sha256(), key, (int)key_len, msg.ptr ? msg.ptr : (const uint8_t *)"",
                    msg.len, out, &n) != NULL &&
                   n == 32,
               S3S_ERR_INTERNAL);
    return s3s_ok();
}

/* ------------------------------------------------------ signing-key cache */

/* Keyed by a hash of (secret, date, region, service), so the cache never
 * holds a secret key itself; entries are the derived kSigning keys. */
#define S_CACHE_SIZE 64

struct s_cache_entry {
    bool used;
    uint8_t id[32];
    uint8_t key[32];
    uint64_t stamp;
};

static pthread_mutex_t g_cache_lock = PTHREAD_MUTEX_INITIALIZER;
static struct s_cache_entry *g_cache;
static uint64_t g_cache_clock;

static s3s_result s_cache_id(const struct s3s_secret *secret, const char *date, const char *region,
                             const char *service, uint8_t id[32])
{
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    S3S_ENSURE(c != NULL, S3S_ERR_NOMEM);
    unsigned int n = 0;
    uint8_t sep = 0;
    bool ok = EVP_DigestInit_ex(c, EVP_sha256(), NULL) == 1 &&
              EVP_DigestUpdate(c, secret->ptr, secret->len) == 1 &&
              EVP_DigestUpdate(c, &sep, 1) == 1 && EVP_DigestUpdate(c, date, strlen(date)) == 1 &&
              EVP_DigestUpdate(c, &sep, 1) == 1 &&
              EVP_DigestUpdate(c, region, strlen(region)) == 1 &&
              EVP_DigestUpdate(c, &sep, 1) == 1 &&
              EVP_DigestUpdate(c, service, strlen(service)) == 1 &&
              EVP_DigestFinal_ex(c, id, &n) == 1;
    EVP_MD_CTX_free(c);
    S3S_ENSURE(ok, S3S_ERR_INTERNAL);
    return s3s_ok();
}

static bool s_cache_get(const uint8_t id[32], uint8_t out[32])
{
    bool hit = false;
    pthread_mutex_lock(&g_cache_lock);
    for (size_t i = 0; g_cache && i < S_CACHE_SIZE; i++) {
        if (g_cache[i].used && CRYPTO_memcmp(g_cache[i].id, id, 32) == 0) {
            memcpy(out, g_cache[i].key, 32);
            g_cache[i].stamp = ++g_cache_clock;
            hit = true;
            break;
        }
    }
    pthread_mutex_unlock(&g_cache_lock);
    return hit;
}

static void s_cache_put(const uint8_t id[32], const uint8_t key[32])
{
    pthread_mutex_lock(&g_cache_lock);
    if (!g_cache) {
        struct s3s_secret mem;
        if (s3s_is_ok(s3s_secret_new(S_CACHE_SIZE * sizeof(*g_cache), &mem))) {
            /* s3s_secret memory is aligned to 16 bytes: suitable for any type here. */
            g_cache = (struct s_cache_entry *)(void *)mem.ptr;
        }
    }
    if (g_cache) {
        size_t victim = 0;
        for (size_t i = 0; i < S_CACHE_SIZE; i++) {
            if (!g_cache[i].used) {
                victim = i;
                break;
            }
            if (g_cache[i].stamp < g_cache[victim].stamp) {
                victim = i;
            }
        }
        g_cache[victim].used = true;
        memcpy(g_cache[victim].id, id, 32);
        memcpy(g_cache[victim].key, key, 32);
        g_cache[victim].stamp = ++g_cache_clock;
    }
    pthread_mutex_unlock(&g_cache_lock);
}

void s3s_sigv4_cache_clean_up(void)
{
    pthread_mutex_lock(&g_cache_lock);
    if (g_cache) {
        struct s3s_secret mem = {(uint8_t *)g_cache, S_CACHE_SIZE * sizeof(*g_cache)};
        s3s_secret_destroy(&mem);
        g_cache = NULL;
    }
    pthread_mutex_unlock(&g_cache_lock);
}

s3s_result s3s_sigv4_signing_key(const struct s3s_secret *secret, const char *date,
                                 const char *region, const char *service, uint8_t out[32])
{
    S3S_ENSURE_REF(secret);
    uint8_t id[32];
    S3S_GUARD(s_cache_id(secret, date, region, service, id));
    if (s_cache_get(id, out)) {
        return s3s_ok();
    }
    /* Every link of the chain is a secret: all are wiped. */
    s3s_result r = s3s_err(S3S_ERR_NOMEM);
    struct s3s_secret k0 = {0};
    uint8_t k_date[32], k_region[32], k_service[32];
    if (s3s_is_ok(s3s_secret_new(secret->len + 4, &k0))) {
        memcpy(k0.ptr, "AWS4", 4);
        memcpy(k0.ptr + 4, secret->ptr, secret->len);
        r = s3s_sigv4__hmac(k0.ptr, k0.len, s3s_cur_from_str(date), k_date);
        if (s3s_is_ok(r)) {
            r = s3s_sigv4__hmac(k_date, 32, s3s_cur_from_str(region), k_region);
        }
        if (s3s_is_ok(r)) {
            r = s3s_sigv4__hmac(k_region, 32, s3s_cur_from_str(service), k_service);
        }
        if (s3s_is_ok(r)) {
            r = s3s_sigv4__hmac(k_service, 32, S3S_CUR_LIT("aws4_request"), out);
        }
    }
    OPENSSL_cleanse(k_date, sizeof(k_date));
    OPENSSL_cleanse(k_region, sizeof(k_region));
    OPENSSL_cleanse(k_service, sizeof(k_service));
    s3s_secret_destroy(&k0);
    if (s3s_is_ok(r)) {
        s_cache_put(id, out);
    }
    return r;
}

s3s_result s3s_sigv4_signature(const uint8_t signing_key[32], struct s3s_cur string_to_sign,
                               uint8_t out[32])
{
    return s3s_sigv4__hmac(signing_key, 32, string_to_sign, out);
}

/* --------------------------------------------------------------- signing */

struct s_name {
    struct s3s_cur name;
};

static int s_name_cmp(const void *a, const void *b)
{
    struct s3s_cur x = ((const struct s_name *)a)->name, y = ((const struct s_name *)b)->name;
    size_t n = x.len < y.len ? x.len : y.len;
    for (size_t i = 0; i < n; i++) {
        uint8_t cx = (x.ptr[i] >= 'A' && x.ptr[i] <= 'Z') ? (uint8_t)(x.ptr[i] + 32) : x.ptr[i];
        uint8_t cy = (y.ptr[i] >= 'A' && y.ptr[i] <= 'Z') ? (uint8_t)(y.ptr[i] + 32) : y.ptr[i];
        if (cx != cy) {
            return cx < cy ? -1 : 1;
        }
    }
    return x.len == y.len ? 0 : (x.len < y.len ? -1 : 1);
}

/* The sorted, de-duplicated, lower-case list of the request's header names. */
static s3s_result s_signed_headers(const struct s3s_sigv4_request *req, struct s3s_buf *out)
{
    struct s_name *names = s3s_calloc(req->n_headers ? req->n_headers : 1, sizeof(*names));
    S3S_ENSURE(names != NULL, S3S_ERR_NOMEM);
    for (size_t i = 0; i < req->n_headers; i++) {
        names[i].name = req->headers[i].name;
    }
    qsort(names, req->n_headers, sizeof(*names), s_name_cmp);
    s3s_result r = s3s_ok();
    for (size_t i = 0; s3s_is_ok(r) && i < req->n_headers; i++) {
        if (i && s_name_cmp(&names[i - 1], &names[i]) == 0) {
            continue;
        }
        if (out->len) {
            r = s3s_buf_append_byte(out, ';');
        }
        for (size_t j = 0; s3s_is_ok(r) && j < names[i].name.len; j++) {
            uint8_t c = names[i].name.ptr[j];
            r = s3s_buf_append_byte(out, (c >= 'A' && c <= 'Z') ? (uint8_t)(c + 32) : c);
        }
    }
    s3s_free(&names);
    return r;
}

static s3s_result s_sign_core(const struct s3s_sigv4_request *req, struct s3s_cur signed_headers,
                              bool presigned, const struct s3s_secret *secret, const char *region,
                              const char *service, int64_t now, struct s3s_cur payload_hash,
                              uint8_t sig[32])
{
    char date[17], scope_date[9];
    s3s_time_format_iso8601_basic(now, date);
    memcpy(scope_date, date, 8);
    scope_date[8] = '\0';
    struct s3s_buf creq, sts;
    S3S_GUARD(s3s_buf_init(&creq, 1024, 1024 * 1024));
    s3s_result r = s3s_buf_init(&sts, 256, 4096);
    uint8_t key[32];
    if (s3s_is_ok(r)) {
        r = s3s_sigv4_canonical_request(req, signed_headers, presigned, payload_hash, &creq);
    }
    if (s3s_is_ok(r)) {
        r = s3s_sigv4_string_to_sign(now, scope_date, region, service, s3s_buf_cur(&creq), &sts);
    }
    if (s3s_is_ok(r)) {
        r = s3s_sigv4_signing_key(secret, scope_date, region, service, key);
    }
    if (s3s_is_ok(r)) {
        r = s3s_sigv4_signature(key, s3s_buf_cur(&sts), sig);
    }
    OPENSSL_cleanse(key, sizeof(key));
    s3s_buf_clean_up(&creq);
    s3s_buf_clean_up(&sts);
    return r;
}

s3s_result s3s_sigv4_sign(const struct s3s_sigv4_request *req,
                          const struct s3s_sigv4_credentials *creds, const char *region,
                          const char *service, int64_t now, struct s3s_cur payload_hash,
                          struct s3s_buf *authorization)
{
    struct s3s_buf sh;
    S3S_GUARD(s3s_buf_init(&sh, 256, 64 * 1024));
    uint8_t sig[32];
    char date[17];
    s3s_time_format_iso8601_basic(now, date);
    s3s_result r = s_signed_headers(req, &sh);
    if (s3s_is_ok(r)) {
        r = s_sign_core(req, s3s_buf_cur(&sh), false, creds->secret_key, region, service, now,
                        payload_hash, sig);
    }
    if (s3s_is_ok(r)) {
        r = s3s_buf_appendf(authorization, S3S_SIGV4_ALGORITHM " Credential=%.*s/%.8s/%s/%s/"
                                           "aws4_request, SignedHeaders=%.*s, Signature=",
                            (int)creds->access_key.len, (const char *)creds->access_key.ptr, date,
                            region, service, (int)sh.len, (const char *)sh.ptr);
    }
    if (s3s_is_ok(r)) {
        r = s3s_buf_append_hex(authorization, sig, sizeof(sig));
    }
    s3s_buf_clean_up(&sh);
    return r;
}

s3s_result s3s_sigv4_presign(const struct s3s_sigv4_request *req,
                             const struct s3s_sigv4_credentials *creds, const char *region,
                             const char *service, int64_t now, int64_t expires_s,
                             struct s3s_buf *query_out)
{
    S3S_ENSURE(expires_s > 0 && expires_s <= S3S_SIGV4_MAX_EXPIRES, S3S_ERR_INVALID_ARG);
    char date[17];
    s3s_time_format_iso8601_basic(now, date);
    struct s3s_buf q, cred;
    S3S_GUARD(s3s_buf_init(&q, 512, 64 * 1024));
    s3s_result r = s3s_buf_init(&cred, 256, 4096);
    if (s3s_is_ok(r)) {
        r = s3s_buf_appendf(&cred, "%.*s/%.8s/%s/%s/aws4_request", (int)creds->access_key.len,
                            (const char *)creds->access_key.ptr, date, region, service);
    }
    if (s3s_is_ok(r) && req->query.len) {
        r = s3s_buf_append_cur(&q, req->query);
        if (s3s_is_ok(r)) {
            r = s3s_buf_append_byte(&q, '&');
        }
    }
    if (s3s_is_ok(r)) {
        r = s3s_buf_append_str(&q, "X-Amz-Algorithm=" S3S_SIGV4_ALGORITHM "&X-Amz-Credential=");
    }
    if (s3s_is_ok(r)) {
        r = s3s_sigv4__uri_encode(s3s_buf_cur(&cred), true, &q);
    }
    if (s3s_is_ok(r)) {
        r = s3s_buf_appendf(&q, "&X-Amz-Date=%s&X-Amz-Expires=%lld&X-Amz-SignedHeaders=host", date,
                            (long long)expires_s);
    }
    uint8_t sig[32];
    if (s3s_is_ok(r)) {
        struct s3s_sigv4_request pre = *req;
        pre.query = s3s_buf_cur(&q);
        r = s_sign_core(&pre, S3S_CUR_LIT("host"), true, creds->secret_key, region, service, now,
                        S3S_CUR_LIT(S3S_SIGV4_UNSIGNED_PAYLOAD), sig);
    }
    if (s3s_is_ok(r)) {
        r = s3s_buf_append_cur(query_out, s3s_buf_cur(&q));
    }
    if (s3s_is_ok(r)) {
        r = s3s_buf_append_str(query_out, "&X-Amz-Signature=");
    }
    if (s3s_is_ok(r)) {
        r = s3s_buf_append_hex(query_out, sig, sizeof(sig));
    }
    s3s_buf_clean_up(&q);
    s3s_buf_clean_up(&cred);
    return r;
}
