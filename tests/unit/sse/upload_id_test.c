/*
 * upload_id_test.c - s3seal's multipart UploadIds: the forms of both
 * layouts, SSE-S3 and SSE-KMS, backend ids that hold '~' themselves,
 * malformed suffixes refused, and the MAC that binds an s3seal2 suffix to
 * its bucket, key and backend upload id.
 */
#include <string.h>

#include "sse/upload_id.h"
#include "testlib.h"

#define HEX64 "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
#define KID "0123abcd-0123-4567-89ab-0123456789ab"

static const uint8_t s_root[32] = {9, 9, 9};

static struct s3s_sse_upload_id s_parse(const char *id, s3s_result *res)
{
    struct s3s_sse_upload_id u;
    *res = s3s_sse_upload_id_parse(s3s_cur_from_str(id), &u);
    return u;
}

static void test_forms(void)
{
    s3s_result res;
    struct s3s_sse_upload_id u = s_parse("2~abc", &res);
    T_OK(res);
    T_CHECK(!u.ours && s3s_cur_eq_str(u.backend, "2~abc"));

    u = s_parse("2~abc~s3seal~3~1~" HEX64, &res);
    T_OK(res);
    T_CHECK(u.ours && !u.part_keys && !u.kms && u.root_version == 3 &&
            u.aead == S3S_SSE_AES_256_GCM && s3s_cur_eq_str(u.backend, "2~abc") &&
            s3s_cur_eq_str(u.wrapped_hex, HEX64));

    u = s_parse("2~abc~s3seal-kms~3~2~" HEX64 "~" KID "~1", &res);
    T_OK(res);
    T_CHECK(u.ours && !u.part_keys && u.kms && u.bucket_key && strcmp(u.kms_key_id, KID) == 0 &&
            u.aead == S3S_SSE_CHACHA20_POLY1305 && s3s_cur_eq_str(u.backend, "2~abc"));

    u = s_parse("2~abc~s3seal2~3~1~" HEX64 "~0123456789abcdef0123456789abcdef", &res);
    T_OK(res);
    T_CHECK(u.ours && u.part_keys && !u.kms && s3s_cur_eq_str(u.backend, "2~abc") &&
            s3s_cur_eq_str(u.bound, "~s3seal2~3~1~" HEX64) && u.mac[0] == 0x01 &&
            u.mac[15] == 0xef);

    u = s_parse("x~s3seal2-kms~3~1~" HEX64 "~" KID "~0~0123456789abcdef0123456789abcdef", &res);
    T_OK(res);
    T_CHECK(u.ours && u.part_keys && u.kms && !u.bucket_key && s3s_cur_eq_str(u.backend, "x") &&
            s3s_cur_eq_str(u.bound, "~s3seal2-kms~3~1~" HEX64 "~" KID "~0"));

    /* The parts3 forms: the same fields, the catalog's layout. */
    u = s_parse("2~abc~s3seal3~3~1~" HEX64 "~0123456789abcdef0123456789abcdef", &res);
    T_OK(res);
    T_CHECK(u.ours && u.part_keys && u.catalog && !u.kms &&
            s3s_cur_eq_str(u.bound, "~s3seal3~3~1~" HEX64));
    u = s_parse("x~s3seal3-kms~3~1~" HEX64 "~" KID "~1~0123456789abcdef0123456789abcdef", &res);
    T_OK(res);
    T_CHECK(u.ours && u.part_keys && u.catalog && u.kms && u.bucket_key &&
            s3s_cur_eq_str(u.backend, "x"));
    u = s_parse("2~abc~s3seal2~3~1~" HEX64 "~0123456789abcdef0123456789abcdef", &res);
    T_CHECK(s3s_is_ok(res) && !u.catalog);
    u = s_parse("b~s3seal3~3~1~" HEX64, &res); /* no MAC */
    T_CHECK(!u.ours || s3s_failed(res));

    /* Marked, but not well formed: refused, never taken for a plain id. */
    static const char *bad[] = {
        "~s3seal~3~1~" HEX64,                        /* no backend id */
        "b~s3seal~0~1~" HEX64,                       /* root version 0 */
        "b~s3seal~3~3~" HEX64,                       /* no such AEAD */
        "b~s3seal~3~1~00",                           /* key too short */
        "b~s3seal~3~1~" HEX64 "0",                   /* odd hex */
        "b~s3seal~3~1~" HEX64 "zz",                  /* not hex */
        "b~s3seal-kms~3~1~" HEX64 "~notakeyid~1",   /* bad key id */
        "b~s3seal-kms~3~1~" HEX64 "~" KID "~2",      /* bad bucket-key flag */
        "b~s3seal2~3~1~" HEX64 "~0123",              /* short MAC */
        "b~s3seal2~3~1~" HEX64 "~0123456789abcdef0123456789abcdeg", /* MAC not hex */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct s3s_sse_upload_id v;
        T_ERR(s3s_sse_upload_id_parse(s3s_cur_from_str(bad[i]), &v), S3S_ERR_NO_SUCH_UPLOAD);
    }
    /* An s3seal2 suffix without its MAC field is not a form at all. */
    u = s_parse("b~s3seal2~3~1~" HEX64, &res);
    T_CHECK(s3s_is_ok(res) ? !u.ours : res.code == S3S_ERR_NO_SUCH_UPLOAD);
}

/* A bound id verifies for its own bucket, key and backend id only. */
static void test_binding(void)
{
    const char *bound = "~s3seal2~3~1~" HEX64;
    uint8_t mac[16];
    T_OK(s3s_sse_upload_id_mac(s_root, S3S_CUR_LIT("bkt"), S3S_CUR_LIT("k/1"),
                               S3S_CUR_LIT("2~AAA"), s3s_cur_from_str(bound), mac));
    struct s3s_buf id;
    T_OK(s3s_buf_init(&id, 0, 1024));
    T_OK(s3s_buf_appendf(&id, "2~AAA%s~", bound));
    T_OK(s3s_buf_append_hex(&id, mac, 16));
    struct s3s_sse_upload_id u;
    T_OK(s3s_sse_upload_id_parse(s3s_buf_cur(&id), &u));
    T_CHECK(s3s_sse_upload_id_verify(&u, s_root, S3S_CUR_LIT("bkt"), S3S_CUR_LIT("k/1")));
    T_CHECK(!s3s_sse_upload_id_verify(&u, s_root, S3S_CUR_LIT("bkt"), S3S_CUR_LIT("k/2")));
    T_CHECK(!s3s_sse_upload_id_verify(&u, s_root, S3S_CUR_LIT("bkt2"), S3S_CUR_LIT("k/1")));
    uint8_t other_root[32] = {1};
    T_CHECK(!s3s_sse_upload_id_verify(&u, other_root, S3S_CUR_LIT("bkt"), S3S_CUR_LIT("k/1")));
    /* The same suffix on another backend upload of the same object. */
    struct s3s_buf moved;
    T_OK(s3s_buf_init(&moved, 0, 1024));
    T_OK(s3s_buf_append_str(&moved, "2~BBB"));
    T_OK(s3s_buf_append(&moved, id.ptr + 5, id.len - 5));
    T_OK(s3s_sse_upload_id_parse(s3s_buf_cur(&moved), &u));
    T_CHECK(u.ours && s3s_cur_eq_str(u.backend, "2~BBB"));
    T_CHECK(!s3s_sse_upload_id_verify(&u, s_root, S3S_CUR_LIT("bkt"), S3S_CUR_LIT("k/1")));
    /* Any field of the suffix changed. */
    for (size_t i = 5; i < id.len; i++) {
        struct s3s_buf t;
        T_OK(s3s_buf_init(&t, 0, 1024));
        T_OK(s3s_buf_append_cur(&t, s3s_buf_cur(&id)));
        if (t.ptr[i] == '~') {
            s3s_buf_clean_up(&t);
            continue;
        }
        t.ptr[i] = t.ptr[i] == '1' ? '2' : '1';
        if (s3s_is_ok(s3s_sse_upload_id_parse(s3s_buf_cur(&t), &u)) && u.ours) {
            T_CHECK(!s3s_sse_upload_id_verify(&u, s_root, S3S_CUR_LIT("bkt"), S3S_CUR_LIT("k/1")));
        }
        s3s_buf_clean_up(&t);
    }
    /* The first layout's ids carry no MAC: they never verify. */
    T_OK(s3s_sse_upload_id_parse(S3S_CUR_LIT("2~AAA~s3seal~3~1~" HEX64), &u));
    T_CHECK(u.ours && !s3s_sse_upload_id_verify(&u, s_root, S3S_CUR_LIT("bkt"), S3S_CUR_LIT("k/1")));
    s3s_buf_clean_up(&moved);
    s3s_buf_clean_up(&id);
}

int main(void)
{
    test_forms();
    test_binding();
    return t_finish("sse.upload_id");
}
