/*
 * upload_id.c - parses s3seal's multipart UploadIds and computes the MAC
 * that binds their suffix to the backend's upload (upload_id.h).
 */
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <string.h>

#include "sse/sse_private.h"
#include "sse/upload_id.h"

/* The last '~'-separated field of *id, removed from it. */
static bool s_pop_field(struct s3s_cur *id, struct s3s_cur *field)
{
    for (size_t i = id->len; i > 0; i--) {
        if (id->ptr[i - 1] == '~') {
            *field = s3s_cur_from(id->ptr + i, id->len - i);
            id->len = i - 1;
            return true;
        }
    }
    return false;
}

static bool s_is_key_id(struct s3s_cur v)
{
    if (v.len != S3S_SSE_UPLOAD_KMS_ID_LEN) {
        return false;
    }
    for (size_t i = 0; i < v.len; i++) {
        uint8_t c = v.ptr[i];
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? c != '-' : !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
            return false;
        }
    }
    return true;
}

/* The suffix forms, by the number of fields after the mark (the MAC, for
 * s3seal2 and s3seal3, included). */
static const struct {
    const char *mark;
    size_t fields;
    bool part_keys, kms, catalog;
} s_forms[] = {
    {"s3seal3-kms", 6, true, true, true},
    {"s3seal3", 4, true, false, true},
    {"s3seal2-kms", 6, true, true, false},
    {"s3seal2", 4, true, false, false},
    {"s3seal-kms", 5, false, true, false},
    {"s3seal", 3, false, false, false},
};

s3s_result s3s_sse_upload_id_parse(struct s3s_cur id, struct s3s_sse_upload_id *out)
{
    memset(out, 0, sizeof(*out));
    out->backend = id;
    for (size_t f = 0; f < sizeof(s_forms) / sizeof(s_forms[0]); f++) {
        struct s3s_cur rest = id, field[7], mark;
        size_t n = s_forms[f].fields, got = 0;
        while (got < n && s_pop_field(&rest, &field[got])) {
            got++;
        }
        if (got < n || !s_pop_field(&rest, &mark) || !s3s_cur_eq_str(mark, s_forms[f].mark)) {
            continue;
        }
        /* field[n - 1] is the first after the mark. */
        struct s3s_cur version = field[n - 1], aead = field[n - 2], hex = field[n - 3];
        uint64_t v = 0, a = 0;
        S3S_ENSURE(rest.len > 0 && s3s_is_ok(s3s_parse_u64(version, UINT32_MAX, &v)) && v > 0 &&
                       s3s_is_ok(s3s_parse_u64(aead, 2, &a)) && a >= 1 && hex.len % 2 == 0 &&
                       hex.len >= 64 && hex.len <= 256,
                   S3S_ERR_NO_SUCH_UPLOAD);
        for (size_t i = 0; i < hex.len; i++) {
            uint8_t c = hex.ptr[i];
            S3S_ENSURE((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'),
                       S3S_ERR_NO_SUCH_UPLOAD);
        }
        if (s_forms[f].kms) {
            struct s3s_cur kid = field[n - 4], bk = field[n - 5];
            S3S_ENSURE(s_is_key_id(kid) && (s3s_cur_eq_str(bk, "0") || s3s_cur_eq_str(bk, "1")),
                       S3S_ERR_NO_SUCH_UPLOAD);
            memcpy(out->kms_key_id, kid.ptr, kid.len);
            out->kms_key_id[kid.len] = '\0';
            out->bucket_key = s3s_cur_eq_str(bk, "1");
        }
        if (s_forms[f].part_keys) {
            S3S_ENSURE(field[0].len == 2 * S3S_SSE_UPLOAD_MAC_LEN &&
                           s3s_hex_decode(field[0], out->mac, sizeof(out->mac)),
                       S3S_ERR_NO_SUCH_UPLOAD);
            /* From the '~' before the mark to the one before the MAC. */
            out->bound = s3s_cur_from(id.ptr + rest.len, (size_t)(field[0].ptr - id.ptr) - 1 -
                                                             rest.len);
        } else {
            out->bound = s3s_cur_from(id.ptr + rest.len, id.len - rest.len);
        }
        out->ours = true;
        out->part_keys = s_forms[f].part_keys;
        out->catalog = s_forms[f].catalog;
        out->kms = s_forms[f].kms;
        out->backend = rest;
        out->root_version = (uint32_t)v;
        out->aead = (enum s3s_sse_aead)a;
        out->wrapped_hex = hex;
        return s3s_ok();
    }
    return s3s_ok();
}

static bool s_lp(EVP_MAC_CTX *m, struct s3s_cur v)
{
    uint8_t len[4] = {(uint8_t)(v.len >> 24), (uint8_t)(v.len >> 16), (uint8_t)(v.len >> 8),
                      (uint8_t)v.len};
    return v.len <= UINT32_MAX && EVP_MAC_update(m, len, 4) == 1 &&
           (v.len == 0 || EVP_MAC_update(m, v.ptr, v.len) == 1);
}

s3s_result s3s_sse_upload_id_mac(const uint8_t root[S3S_SSE_KEY_LEN], struct s3s_cur bucket,
                                 struct s3s_cur key, struct s3s_cur backend, struct s3s_cur bound,
                                 uint8_t mac[S3S_SSE_UPLOAD_MAC_LEN])
{
    /* The MAC key: HKDF-SHA256 of the root key, info "s3seal-upload-id". */
    static const char info[] = "s3seal-upload-id";
    uint8_t k[32];
    s3s_result res = s3s_sse__hkdf_sha256(root, S3S_SSE_KEY_LEN, info, sizeof(info) - 1, k,
                                          sizeof(k));
    if (s3s_failed(res)) {
        OPENSSL_cleanse(k, sizeof(k));
        return res;
    }
    EVP_MAC *hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *m = hmac ? EVP_MAC_CTX_new(hmac) : NULL;
    EVP_MAC_free(hmac);
    OSSL_PARAM mp[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
        OSSL_PARAM_construct_end(),
    };
    uint8_t full[32];
    size_t len = 0;
    bool ok = m && EVP_MAC_init(m, k, sizeof(k), mp) == 1 && s_lp(m, bucket) && s_lp(m, key) &&
         s_lp(m, backend) && s_lp(m, bound) && EVP_MAC_final(m, full, &len, sizeof(full)) == 1 &&
         len == sizeof(full);
    EVP_MAC_CTX_free(m);
    OPENSSL_cleanse(k, sizeof(k));
    S3S_ENSURE(ok, m ? S3S_ERR_INTERNAL : S3S_ERR_NOMEM);
    memcpy(mac, full, S3S_SSE_UPLOAD_MAC_LEN);
    return s3s_ok();
}

bool s3s_sse_upload_id_verify(const struct s3s_sse_upload_id *id,
                              const uint8_t root[S3S_SSE_KEY_LEN], struct s3s_cur bucket,
                              struct s3s_cur key)
{
    uint8_t mac[S3S_SSE_UPLOAD_MAC_LEN];
    return id->ours && id->part_keys &&
           s3s_is_ok(s3s_sse_upload_id_mac(root, bucket, key, id->backend, id->bound, mac)) &&
           CRYPTO_memcmp(mac, id->mac, sizeof(mac)) == 0;
}
