/*
 * upload_id_fuzz.c - aims at the parser of s3seal's multipart UploadIds
 * (sse/upload_id.h) with arbitrary ids: it must refuse or split, never
 * crash; whatever it splits lies inside the input, and a suffix it accepts
 * never verifies under a key it was not made with.
 */
#include <stdlib.h>
#include <string.h>

#include "sse/upload_id.h"

static bool s_inside(struct s3s_cur in, struct s3s_cur part)
{
    return part.len == 0 || (part.ptr >= in.ptr && part.ptr + part.len <= in.ptr + in.len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct s3s_cur id = s3s_cur_from(data, size);
    struct s3s_sse_upload_id u;
    if (s3s_failed(s3s_sse_upload_id_parse(id, &u))) {
        return 0;
    }
    if (!s_inside(id, u.backend) || !s_inside(id, u.bound) || !s_inside(id, u.wrapped_hex)) {
        abort();
    }
    if (!u.ours) {
        if (u.backend.len != size) {
            abort(); /* a plain id is passed on whole */
        }
        return 0;
    }
    if (u.backend.len == 0 || u.root_version == 0 || u.wrapped_hex.len % 2 ||
        u.wrapped_hex.len < 64 || (u.aead != S3S_SSE_AES_256_GCM &&
                                   u.aead != S3S_SSE_CHACHA20_POLY1305) ||
        (u.kms && strlen(u.kms_key_id) != S3S_SSE_UPLOAD_KMS_ID_LEN)) {
        abort();
    }
    if (u.part_keys) {
        static const uint8_t root[32] = {1};
        /* A random MAC verifies with negligible probability; one made for
         * the parsed fields verifies, and only for them. */
        uint8_t mac[S3S_SSE_UPLOAD_MAC_LEN];
        if (s3s_failed(s3s_sse_upload_id_mac(root, S3S_CUR_LIT("b"), S3S_CUR_LIT("k"), u.backend,
                                             u.bound, mac))) {
            abort();
        }
        memcpy(u.mac, mac, sizeof(mac));
        if (!s3s_sse_upload_id_verify(&u, root, S3S_CUR_LIT("b"), S3S_CUR_LIT("k")) ||
            s3s_sse_upload_id_verify(&u, root, S3S_CUR_LIT("b"), S3S_CUR_LIT("k2"))) {
            abort();
        }
    }
    return 0;
}
