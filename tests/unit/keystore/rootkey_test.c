/*
 * rootkey_test.c - the embedded keystore: creation, versioned root keys and
 * rotation, reopening, and the failures that must stop start-up (missing,
 * short, all-zero, group-readable or wrong master keys), plus sealing with
 * bound associated data.
 */
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "keystore/keystore.h"
#include "ks_test.h"
#include "testlib.h"

static char s_dir[64];

static void test_lifecycle(void)
{
    char db[128], mk[128], mk2[128];
    ks_test_location("lifecycle", db, sizeof(db));
    snprintf(mk, sizeof(mk), "%s/master.key", s_dir);
    snprintf(mk2, sizeof(mk2), "%s/other.key", s_dir);
    uint8_t k[32], k2[32];
    for (int i = 0; i < 32; i++) {
        k[i] = (uint8_t)(i + 1);
        k2[i] = (uint8_t)(i + 2);
    }
    t_write_file(mk, k, 32, 0600);
    t_write_file(mk2, k2, 32, 0600);

    char why[256] = "";
    struct s3s_keystore *ks = NULL;
    T_ERR(s3s_keystore_open(db, mk, false, &ks, why, sizeof(why)), S3S_ERR_KEYSTORE);
    T_OK(s3s_keystore_open(db, mk, true, &ks, why, sizeof(why)));
    uint32_t v = 0;
    struct s3s_secret r1 = {0}, r1b = {0}, r2 = {0};
    T_OK(s3s_keystore_root_current(ks, &v, &r1));
    T_CHECK(v == 1 && r1.len == 32);
    uint32_t nv = 0;
    T_OK(s3s_keystore_root_rotate(ks, &nv));
    T_CHECK(nv == 2);
    T_OK(s3s_keystore_root_current(ks, &v, &r2));
    T_CHECK(v == 2 && !s3s_ct_eq(r1.ptr, 32, r2.ptr, 32));
    int64_t at = 0;
    T_OK(s3s_keystore_root_created(ks, 2, &at));
    T_CHECK(at > 1700000000);
    T_ERR(s3s_keystore_root_get(ks, 9, &r1b), S3S_ERR_KEY_NOT_FOUND);
    /* Automatic rotation: not while the newest version is young. */
    bool rotated = true;
    T_OK(s3s_keystore_root_rotate_if_older(ks, 3600, &rotated));
    T_CHECK(!rotated);
    T_OK(s3s_keystore_root_rotate_if_older(ks, 0, &rotated));
    T_CHECK(rotated);
    T_OK(s3s_keystore_root_rotate_if_older(ks, 3600, &rotated));
    T_CHECK(!rotated);
    uint32_t v3 = 0;
    struct s3s_secret r3 = {0};
    T_OK(s3s_keystore_root_current(ks, &v3, &r3));
    T_CHECK(v3 == 3);
    s3s_secret_destroy(&r3);
    s3s_keystore_close(ks);

    /* Reopen: old versions still there, same bytes. */
    T_OK(s3s_keystore_open(db, mk, false, &ks, why, sizeof(why)));
    T_OK(s3s_keystore_root_get(ks, 1, &r1b));
    T_CHECK(s3s_ct_eq(r1.ptr, 32, r1b.ptr, 32));
    s3s_keystore_close(ks);

    /* A wrong master key is refused with a clear reason. */
    ks = NULL;
    T_ERR(s3s_keystore_open(db, mk2, false, &ks, why, sizeof(why)), S3S_ERR_KEY_UNWRAP);
    T_CHECK(ks == NULL && strstr(why, "wrong master key") != NULL);

    s3s_secret_destroy(&r1);
    s3s_secret_destroy(&r1b);
    s3s_secret_destroy(&r2);
}

static void test_weak_master_keys(void)
{
    char db[128], mk[128], why[256];
    ks_test_location("weak", db, sizeof(db));
    snprintf(mk, sizeof(mk), "%s/weak.key", s_dir);
    struct s3s_keystore *ks = NULL;
    uint8_t zeros[32] = {0}, k[33];
    memset(k, 7, sizeof(k));

    T_ERR(s3s_keystore_open(db, "/nonexistent/master.key", true, &ks, why, sizeof(why)),
          S3S_ERR_KEYSTORE);
    T_CHECK(strstr(why, "No such file") != NULL);
    t_write_file(mk, k, 31, 0600);
    T_ERR(s3s_keystore_open(db, mk, true, &ks, why, sizeof(why)), S3S_ERR_KEYSTORE);
    T_CHECK(strstr(why, "exactly 32 bytes") != NULL);
    t_write_file(mk, zeros, 32, 0600);
    T_ERR(s3s_keystore_open(db, mk, true, &ks, why, sizeof(why)), S3S_ERR_KEYSTORE);
    T_CHECK(strstr(why, "all zeros") != NULL);
    t_write_file(mk, k, 32, 0644);
    T_ERR(s3s_keystore_open(db, mk, true, &ks, why, sizeof(why)), S3S_ERR_KEYSTORE);
    T_CHECK(strstr(why, "group or others") != NULL);
    T_CHECK(ks == NULL);
}

static void test_seal(void)
{
    uint8_t key[32] = {9};
    struct s3s_buf b;
    T_OK(s3s_buf_init(&b, 0, 256));
    T_OK(s3s_keystore_seal(key, S3S_CUR_LIT("bucket/key"), S3S_CUR_LIT("data key bytes"), &b));
    struct s3s_secret out = {0};
    T_OK(s3s_keystore_open_sealed(key, S3S_CUR_LIT("bucket/key"), s3s_buf_cur(&b), &out));
    T_CHECK(out.len == 14 && memcmp(out.ptr, "data key bytes", 14) == 0);
    s3s_secret_destroy(&out);
    /* Moved to another name: the aad no longer matches. */
    T_ERR(s3s_keystore_open_sealed(key, S3S_CUR_LIT("bucket/other"), s3s_buf_cur(&b), &out),
          S3S_ERR_KEY_UNWRAP);
    b.ptr[13] ^= 1;
    T_ERR(s3s_keystore_open_sealed(key, S3S_CUR_LIT("bucket/key"), s3s_buf_cur(&b), &out),
          S3S_ERR_KEY_UNWRAP);
    T_ERR(s3s_keystore_open_sealed(key, S3S_CUR_LIT(""), S3S_CUR_LIT("short"), &out),
          S3S_ERR_KEY_UNWRAP);
    s3s_buf_clean_up(&b);
}

int main(int argc, char **argv)
{
    snprintf(s_dir, sizeof(s_dir), "/tmp/s3seal-ks-XXXXXX");
    T_CHECK(mkdtemp(s_dir) != NULL);
    ks_test_init(argc, argv, "rootkey", s_dir);
    test_lifecycle();
    test_weak_master_keys();
    test_seal();
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", s_dir);
    T_CHECK(system(cmd) == 0);
    return t_finish(ks_test_pg() ? "keystore.pg.rootkey" : "keystore.rootkey");
}
