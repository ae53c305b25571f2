/*
 * bucket_enc_test.c - the keystore's table of buckets' default encryption
 * (PutBucketEncryption): store, replace, list in bucket order, delete; two
 * handles open on one file at once see each other's changes; two threads,
 * each with its own handle on a file neither has created yet, open it and
 * write concurrently without losing a change.
 */
#include <fcntl.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include "keystore/keystore.h"
#include "ks_test.h"
#include "testlib.h"

static char s_dir[64];

static const struct s3s_keystore_bucket_enc *s_find(const struct s3s_keystore_bucket_enc *l,
                                                    size_t n, const char *bucket)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(l[i].bucket, bucket) == 0) {
            return &l[i];
        }
    }
    return NULL;
}

static void test_put_list_delete(const char *db, const char *mk)
{
    char why[256] = "";
    struct s3s_keystore *ks = NULL;
    T_OK(s3s_keystore_open(db, mk, true, &ks, why, sizeof(why)));
    struct s3s_keystore_bucket_enc *l = NULL;
    size_t n = 99;
    T_OK(s3s_keystore_bucket_enc_list(ks, &l, &n));
    T_CHECK(n == 0 && l == NULL);

    T_OK(s3s_keystore_bucket_enc_put(ks, "logs", "AES256", NULL, false));
    T_OK(s3s_keystore_bucket_enc_put(ks, "docs", "aws:kms", "alias/docs", true));
    T_OK(s3s_keystore_bucket_enc_list(ks, &l, &n));
    T_CHECK(n == 2);
    if (n == 2) {
        /* Ordered by bucket name. */
        T_STREQ(l[0].bucket, "docs");
        T_STREQ(l[0].algorithm, "aws:kms");
        T_STREQ(l[0].kms_key_id, "alias/docs");
        T_CHECK(l[0].bucket_key);
        T_CHECK(l[0].updated > 1700000000);
        T_STREQ(l[1].bucket, "logs");
        T_STREQ(l[1].algorithm, "AES256");
        T_CHECK(l[1].kms_key_id == NULL && !l[1].bucket_key);
    }
    s3s_keystore_bucket_enc_free(l, n);

    /* A second put replaces the bucket's setting. */
    T_OK(s3s_keystore_bucket_enc_put(ks, "logs", "aws:kms:dsse", "arn:aws:kms:us-east-1:1:key/x",
                                     false));
    T_OK(s3s_keystore_bucket_enc_list(ks, &l, &n));
    T_CHECK(n == 2);
    const struct s3s_keystore_bucket_enc *e = s_find(l, n, "logs");
    T_CHECK(e && strcmp(e->algorithm, "aws:kms:dsse") == 0 &&
            strcmp(e->kms_key_id, "arn:aws:kms:us-east-1:1:key/x") == 0);
    s3s_keystore_bucket_enc_free(l, n);

    bool removed = false;
    T_OK(s3s_keystore_bucket_enc_delete(ks, "logs", &removed));
    T_CHECK(removed);
    T_OK(s3s_keystore_bucket_enc_delete(ks, "logs", &removed));
    T_CHECK(!removed);
    T_OK(s3s_keystore_bucket_enc_delete(ks, "never-set", &removed));
    T_CHECK(!removed);
    T_OK(s3s_keystore_bucket_enc_list(ks, &l, &n));
    T_CHECK(n == 1 && s_find(l, n, "docs") != NULL);
    s3s_keystore_bucket_enc_free(l, n);

    T_ERR(s3s_keystore_bucket_enc_put(ks, "x", NULL, NULL, false), S3S_ERR_INVALID_ARG);
    T_ERR(s3s_keystore_bucket_enc_put(ks, NULL, "AES256", NULL, false), S3S_ERR_INVALID_ARG);
    s3s_keystore_close(ks);

    /* Reopened: still there. */
    T_OK(s3s_keystore_open(db, mk, false, &ks, why, sizeof(why)));
    T_OK(s3s_keystore_bucket_enc_list(ks, &l, &n));
    T_CHECK(n == 1 && s_find(l, n, "docs") != NULL);
    s3s_keystore_bucket_enc_free(l, n);
    s3s_keystore_close(ks);
}

/* Two servers sharing one keystore: each sees the other's changes. */
static void test_two_handles(const char *db, const char *mk)
{
    char why[256] = "";
    struct s3s_keystore *ks1 = NULL, *ks2 = NULL;
    T_OK(s3s_keystore_open(db, mk, true, &ks1, why, sizeof(why)));
    T_OK(s3s_keystore_open(db, mk, true, &ks2, why, sizeof(why)));
    T_OK(s3s_keystore_bucket_enc_put(ks1, "shared", "AES256", NULL, false));
    struct s3s_keystore_bucket_enc *l = NULL;
    size_t n = 0;
    T_OK(s3s_keystore_bucket_enc_list(ks2, &l, &n));
    T_CHECK(s_find(l, n, "shared") != NULL);
    s3s_keystore_bucket_enc_free(l, n);
    bool removed = false;
    T_OK(s3s_keystore_bucket_enc_delete(ks2, "shared", &removed));
    T_CHECK(removed);
    T_OK(s3s_keystore_bucket_enc_list(ks1, &l, &n));
    T_CHECK(s_find(l, n, "shared") == NULL);
    s3s_keystore_bucket_enc_free(l, n);
    s3s_keystore_close(ks1);
    s3s_keystore_close(ks2);
}

struct s_writer {
    const char *db, *mk;
    int id;
    int failures;
};

#define S_PER_THREAD 40

static void *s_writer_main(void *arg)
{
    struct s_writer *wr = arg;
    char why[256] = "", name[64];
    struct s3s_keystore *ks = NULL;
    if (s3s_failed(s3s_keystore_open(wr->db, wr->mk, true, &ks, why, sizeof(why)))) {
        fprintf(stderr, "writer %d: open: %s\n", wr->id, why);
        wr->failures++;
        return NULL;
    }
    for (int i = 0; i < S_PER_THREAD; i++) {
        snprintf(name, sizeof(name), "t%d-b%02d", wr->id, i);
        if (s3s_failed(s3s_keystore_bucket_enc_put(ks, name, "AES256", NULL, (i & 1) != 0))) {
            wr->failures++;
        }
        /* Every fourth one is taken away again. */
        bool removed = false;
        if (i % 4 == 3 &&
            (s3s_failed(s3s_keystore_bucket_enc_delete(ks, name, &removed)) || !removed)) {
            wr->failures++;
        }
        struct s3s_keystore_bucket_enc *l = NULL;
        size_t n = 0;
        if (s3s_failed(s3s_keystore_bucket_enc_list(ks, &l, &n))) {
            wr->failures++;
        }
        s3s_keystore_bucket_enc_free(l, n);
    }
    s3s_keystore_close(ks);
    return NULL;
}

static void test_concurrent(const char *db, const char *mk)
{
    struct s_writer wr[2] = {{db, mk, 0, 0}, {db, mk, 1, 0}};
    pthread_t th[2];
    for (int i = 0; i < 2; i++) {
        T_CHECK(pthread_create(&th[i], NULL, s_writer_main, &wr[i]) == 0);
    }
    for (int i = 0; i < 2; i++) {
        T_CHECK(pthread_join(th[i], NULL) == 0);
        T_CHECK(wr[i].failures == 0);
    }
    char why[256] = "";
    struct s3s_keystore *ks = NULL;
    T_OK(s3s_keystore_open(db, mk, false, &ks, why, sizeof(why)));
    struct s3s_keystore_bucket_enc *l = NULL;
    size_t n = 0;
    T_OK(s3s_keystore_bucket_enc_list(ks, &l, &n));
    T_CHECK(n == 2 * (S_PER_THREAD - S_PER_THREAD / 4));
    const struct s3s_keystore_bucket_enc *e = s_find(l, n, "t1-b05");
    T_CHECK(e && e->bucket_key);
    T_CHECK(s_find(l, n, "t0-b03") == NULL);
    for (size_t i = 1; i < n; i++) {
        T_CHECK(strcmp(l[i - 1].bucket, l[i].bucket) < 0);
    }
    s3s_keystore_bucket_enc_free(l, n);
    /* The concurrent first opens made one keystore with one root key. */
    uint32_t v = 0;
    struct s3s_secret k = {0};
    T_OK(s3s_keystore_root_current(ks, &v, &k));
    T_CHECK(v == 1);
    s3s_secret_destroy(&k);
    s3s_keystore_close(ks);
}

/* Owners and bucket policies (bucket_access): a claim takes once, from
 * either handle; a policy keeps the owner; a release takes back only an
 * unused claim of the same account; forgetting a bucket drops its default
 * encryption too. */
static void test_access(const char *db, const char *mk)
{
    char why[256];
    struct s3s_keystore *ks1 = NULL, *ks2 = NULL;
    T_OK(s3s_keystore_open(db, mk, true, &ks1, why, sizeof(why)));
    T_OK(s3s_keystore_open(db, mk, true, &ks2, why, sizeof(why)));
    char owner[13];
    T_OK(s3s_keystore_bucket_owner_claim(ks1, "acc-a", "111122223333", NULL, owner));
    T_CHECK(strcmp(owner, "111122223333") == 0);
    T_OK(s3s_keystore_bucket_owner_claim(ks2, "acc-a", "444455556666", NULL, owner));
    T_CHECK(strcmp(owner, "111122223333") == 0); /* the first claim stands */
    bool changed = false;
    T_OK(s3s_keystore_bucket_policy_put(ks2, "acc-a", "{\"Statement\":[]}", &changed));
    T_CHECK(changed);
    T_OK(s3s_keystore_bucket_policy_put(ks1, "acc-b", "{}", &changed)); /* no owner yet */
    T_OK(s3s_keystore_bucket_enc_put(ks1, "acc-a", "AES256", NULL, false));
    struct s3s_keystore_bucket_access *rows = NULL;
    size_t n = 0;
    T_OK(s3s_keystore_bucket_access_list(ks2, &rows, &n));
    T_CHECK(n == 2);
    if (n == 2) {
        T_CHECK(strcmp(rows[0].bucket, "acc-a") == 0 && rows[0].owner &&
                strcmp(rows[0].owner, "111122223333") == 0 && rows[0].policy &&
                strcmp(rows[0].policy, "{\"Statement\":[]}") == 0);
        T_CHECK(strcmp(rows[1].bucket, "acc-b") == 0 && !rows[1].owner && rows[1].policy);
    }
    s3s_keystore_bucket_access_free(rows, n);
    /* A release by another account, or of a bucket with a policy, does nothing. */
    T_OK(s3s_keystore_bucket_owner_release(ks1, "acc-a", "444455556666"));
    T_OK(s3s_keystore_bucket_owner_release(ks1, "acc-a", "111122223333"));
    T_OK(s3s_keystore_bucket_owner_claim(ks2, "acc-a", "444455556666", NULL, owner));
    T_CHECK(strcmp(owner, "111122223333") == 0);
    /* The policy goes, the owner stays; a row with neither goes. */
    T_OK(s3s_keystore_bucket_policy_put(ks1, "acc-a", NULL, &changed));
    T_CHECK(changed);
    T_OK(s3s_keystore_bucket_policy_put(ks1, "acc-b", NULL, &changed));
    T_OK(s3s_keystore_bucket_policy_put(ks1, "acc-b", NULL, &changed));
    T_CHECK(!changed);
    T_OK(s3s_keystore_bucket_access_list(ks1, &rows, &n));
    T_CHECK(n == 1 && rows && !rows[0].policy);
    s3s_keystore_bucket_access_free(rows, n);
    /* An unused claim is taken back; then another account may claim. */
    T_OK(s3s_keystore_bucket_owner_release(ks1, "acc-a", "111122223333"));
    T_OK(s3s_keystore_bucket_owner_claim(ks2, "acc-a", "444455556666", NULL, owner));
    T_CHECK(strcmp(owner, "444455556666") == 0);
    /* A stale owner's record is replaced (only that owner's). */
    T_OK(s3s_keystore_bucket_owner_claim(ks1, "acc-a", "111122223333", "999999999999", owner));
    T_CHECK(strcmp(owner, "444455556666") == 0);
    T_OK(s3s_keystore_bucket_owner_claim(ks1, "acc-a", "111122223333", "444455556666", owner));
    T_CHECK(strcmp(owner, "111122223333") == 0);
    /* A deleted bucket is forgotten with its default encryption. */
    T_OK(s3s_keystore_bucket_forget(ks2, "acc-a", "444455556666")); /* no longer its */
    T_OK(s3s_keystore_bucket_access_list(ks1, &rows, &n));
    T_CHECK(n == 1);
    s3s_keystore_bucket_access_free(rows, n);
    T_OK(s3s_keystore_bucket_forget(ks2, "acc-a", "111122223333"));
    T_OK(s3s_keystore_bucket_access_list(ks1, &rows, &n));
    T_CHECK(n == 0);
    s3s_keystore_bucket_access_free(rows, n);
    struct s3s_keystore_bucket_enc *enc = NULL;
    T_OK(s3s_keystore_bucket_enc_list(ks1, &enc, &n));
    for (size_t i = 0; i < n; i++) {
        T_CHECK(strcmp(enc[i].bucket, "acc-a") != 0);
    }
    s3s_keystore_bucket_enc_free(enc, n);
    s3s_keystore_close(ks1);
    s3s_keystore_close(ks2);
}

/* CORS configurations (bucket_cors): store, replace, list in bucket order,
 * delete, seen from a second handle; a forgotten bucket loses its own. */
static void test_cors(const char *db, const char *mk)
{
    char why[256];
    struct s3s_keystore *ks1 = NULL, *ks2 = NULL;
    T_OK(s3s_keystore_open(db, mk, true, &ks1, why, sizeof(why)));
    T_OK(s3s_keystore_open(db, mk, true, &ks2, why, sizeof(why)));
    struct s3s_keystore_bucket_cors *l = NULL;
    size_t n = 99;
    T_OK(s3s_keystore_bucket_cors_list(ks1, &l, &n));
    T_CHECK(n == 0 && l == NULL);
    T_OK(s3s_keystore_bucket_cors_put(ks1, "web-b", "<CORSConfiguration>b</CORSConfiguration>"));
    T_OK(s3s_keystore_bucket_cors_put(ks2, "web-a", "<CORSConfiguration>a</CORSConfiguration>"));
    T_OK(s3s_keystore_bucket_cors_put(ks1, "web-b", "<CORSConfiguration>B</CORSConfiguration>"));
    T_OK(s3s_keystore_bucket_cors_list(ks2, &l, &n));
    T_CHECK(n == 2);
    if (n == 2) {
        T_STREQ(l[0].bucket, "web-a");
        T_STREQ(l[0].config, "<CORSConfiguration>a</CORSConfiguration>");
        T_STREQ(l[1].bucket, "web-b");
        T_STREQ(l[1].config, "<CORSConfiguration>B</CORSConfiguration>");
        T_CHECK(l[1].updated > 1700000000);
    }
    s3s_keystore_bucket_cors_free(l, n);
    bool removed = false;
    T_OK(s3s_keystore_bucket_cors_delete(ks2, "web-a", &removed));
    T_CHECK(removed);
    T_OK(s3s_keystore_bucket_cors_delete(ks2, "web-a", &removed));
    T_CHECK(!removed);
    /* A deleted bucket goes with its CORS configuration. */
    char owner[13];
    T_OK(s3s_keystore_bucket_owner_claim(ks1, "web-b", "111122223333", NULL, owner));
    T_OK(s3s_keystore_bucket_forget(ks2, "web-b", "111122223333"));
    T_OK(s3s_keystore_bucket_cors_list(ks1, &l, &n));
    T_CHECK(n == 0);
    s3s_keystore_bucket_cors_free(l, n);
    s3s_keystore_close(ks1);
    s3s_keystore_close(ks2);
}

int main(int argc, char **argv)
{
    snprintf(s_dir, sizeof(s_dir), "/tmp/s3seal-ksbe-XXXXXX");
    T_CHECK(mkdtemp(s_dir) != NULL);
    ks_test_init(argc, argv, "bucket_enc", s_dir);
    char db[128], db2[128], mk[128];
    ks_test_location("ks", db, sizeof(db));
    ks_test_location("concurrent", db2, sizeof(db2));
    snprintf(mk, sizeof(mk), "%s/master.key", s_dir);
    t_write_master_key(mk, 0x40);
    test_put_list_delete(db, mk);
    test_two_handles(db, mk);
    test_concurrent(db2, mk);
    test_access(db, mk);
    test_cors(db, mk);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", s_dir);
    T_CHECK(system(cmd) == 0);
    return t_finish(ks_test_pg() ? "keystore.pg.bucket_enc" : "keystore.bucket_enc");
}
