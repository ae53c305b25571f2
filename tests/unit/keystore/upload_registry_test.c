/*
 * upload_registry_test.c - the keystore's registry of encrypted multipart
 * uploads by backend upload id: record, look up (one and a batch, known and
 * unknown ids, keys with any bytes), replace, delete, prune by age; two
 * handles on one file (two s3seal instances) see each other's rows; the
 * catalog of completed parts3 objects (record, replace, look up, refuse
 * out-of-range counts, shared between handles).
 */
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "keystore/keystore.h"
#include "ks_test.h"
#include "testlib.h"

static char s_dir[64];

#define C(s) s3s_cur_from_str(s)

static void test_put_get_delete(const char *db, const char *mk)
{
    char why[256] = "";
    struct s3s_keystore *ks = NULL;
    T_OK(s3s_keystore_open(db, mk, true, &ks, why, sizeof(why)));
    char *suffix = (char *)1;
    T_OK(s3s_keystore_upload_get(ks, C("b"), C("k"), C("id1"), &suffix));
    T_CHECK(suffix == NULL);

    T_OK(s3s_keystore_upload_put(ks, C("b"), C("k"), C("id1"), C("~s3seal~1~1~aa")));
    T_OK(s3s_keystore_upload_get(ks, C("b"), C("k"), C("id1"), &suffix));
    T_STREQ(suffix, "~s3seal~1~1~aa");
    s3s_free(&suffix);
    /* Bucket, key and id all count. */
    T_OK(s3s_keystore_upload_get(ks, C("other"), C("k"), C("id1"), &suffix));
    T_CHECK(suffix == NULL);
    T_OK(s3s_keystore_upload_get(ks, C("b"), C("k2"), C("id1"), &suffix));
    T_CHECK(suffix == NULL);
    /* A second put for the same upload replaces its suffix. */
    T_OK(s3s_keystore_upload_put(ks, C("b"), C("k"), C("id1"), C("~s3seal~2~2~bb")));
    T_OK(s3s_keystore_upload_get(ks, C("b"), C("k"), C("id1"), &suffix));
    T_STREQ(suffix, "~s3seal~2~2~bb");
    s3s_free(&suffix);

    /* Keys are bytes: a NUL and non-ASCII bytes are kept exactly. */
    static const char odd[] = {'a', 0, (char)0xc3, (char)0xa9, '/', 'x'};
    struct s3s_cur odd_key = s3s_cur_from(odd, sizeof(odd));
    T_OK(s3s_keystore_upload_put(ks, C("b"), odd_key, C("id2"), C("~s3seal~1~1~cc")));
    T_OK(s3s_keystore_upload_get(ks, C("b"), s3s_cur_from(odd, 1), C("id2"), &suffix));
    T_CHECK(suffix == NULL);

    /* A batch: known and unknown in one call. */
    struct s3s_keystore_upload_ref refs[3] = {
        {C("k"), C("id1"), NULL},
        {C("k"), C("nope"), NULL},
        {odd_key, C("id2"), NULL},
    };
    T_OK(s3s_keystore_upload_get_many(ks, C("b"), refs, 3));
    T_STREQ(refs[0].suffix, "~s3seal~2~2~bb");
    T_CHECK(refs[1].suffix == NULL);
    T_STREQ(refs[2].suffix, "~s3seal~1~1~cc");
    s3s_keystore_upload_refs_clean_up(refs, 3);
    T_OK(s3s_keystore_upload_get_many(ks, C("b"), NULL, 0));

    bool removed = false;
    T_OK(s3s_keystore_upload_delete(ks, C("b"), C("k"), C("id1"), &removed));
    T_CHECK(removed);
    T_OK(s3s_keystore_upload_delete(ks, C("b"), C("k"), C("id1"), &removed));
    T_CHECK(!removed);
    T_OK(s3s_keystore_upload_get(ks, C("b"), C("k"), C("id1"), &suffix));
    T_CHECK(suffix == NULL);

    /* Bad arguments. */
    T_CHECK(s3s_failed(s3s_keystore_upload_put(ks, C("b"), C("k"), C(""), C("~s"))));
    T_CHECK(s3s_failed(s3s_keystore_upload_put(ks, C("b"), C("k"), C("id"), C(""))));

    /* Pruning by age: nothing is older than an hour ago; everything is
     * older than a minute from now. */
    size_t n = 99;
    T_OK(s3s_keystore_upload_prune(ks, (int64_t)time(NULL) - 3600, &n));
    T_CHECK(n == 0);
    T_OK(s3s_keystore_upload_get(ks, C("b"), odd_key, C("id2"), &suffix));
    T_STREQ(suffix, "~s3seal~1~1~cc");
    s3s_free(&suffix);
    T_OK(s3s_keystore_upload_prune(ks, (int64_t)time(NULL) + 60, &n));
    T_CHECK(n == 1);
    T_OK(s3s_keystore_upload_get(ks, C("b"), odd_key, C("id2"), &suffix));
    T_CHECK(suffix == NULL);
    s3s_keystore_close(ks);
}

/* Two instances sharing one keystore: each sees the other's records. */
static void test_two_handles(const char *db, const char *mk)
{
    char why[256] = "";
    struct s3s_keystore *ks1 = NULL, *ks2 = NULL;
    T_OK(s3s_keystore_open(db, mk, true, &ks1, why, sizeof(why)));
    T_OK(s3s_keystore_open(db, mk, true, &ks2, why, sizeof(why)));
    T_OK(s3s_keystore_upload_put(ks1, C("shared"), C("obj"), C("up-1"), C("~s3seal~1~1~dd")));
    char *suffix = NULL;
    T_OK(s3s_keystore_upload_get(ks2, C("shared"), C("obj"), C("up-1"), &suffix));
    T_STREQ(suffix, "~s3seal~1~1~dd");
    s3s_free(&suffix);
    struct s3s_keystore_upload_ref ref = {C("obj"), C("up-1"), NULL};
    bool removed = false;
    T_OK(s3s_keystore_upload_delete(ks2, C("shared"), C("obj"), C("up-1"), &removed));
    T_CHECK(removed);
    T_OK(s3s_keystore_upload_get_many(ks1, C("shared"), &ref, 1));
    T_CHECK(ref.suffix == NULL);
    s3s_keystore_close(ks1);
    s3s_keystore_close(ks2);
}

static void test_catalog(const char *db, const char *mk)
{
    char why[256] = "";
    struct s3s_keystore *ks1 = NULL, *ks2 = NULL;
    T_OK(s3s_keystore_open(db, mk, true, &ks1, why, sizeof(why)));
    T_OK(s3s_keystore_open(db, mk, true, &ks2, why, sizeof(why)));
    uint8_t id[16], other[16];
    memset(id, 0xa5, sizeof(id));
    memset(other, 0xa5, sizeof(other));
    other[15] ^= 1;
    struct s3s_keystore_object o = {0};
    bool found = true;
    T_OK(s3s_keystore_object_get(ks1, id, &o, &found));
    T_CHECK(!found && o.parts == 0);

    T_OK(s3s_keystore_object_put(ks1, id, C("b"), C("k"), &(struct s3s_keystore_object){3, 1, 31457280}));
    /* The other handle (another instance) reads it; one bit of the id
     * makes another object. */
    T_OK(s3s_keystore_object_get(ks2, id, &o, &found));
    T_CHECK(found && o.parts == 3 && o.first_part == 1 && o.size == 31457280);
    T_OK(s3s_keystore_object_get(ks2, other, &o, &found));
    T_CHECK(!found);
    /* A Complete sent again replaces the row. */
    T_OK(s3s_keystore_object_put(ks2, id, C("b"), C("k"), &(struct s3s_keystore_object){2, 2, 0}));
    T_OK(s3s_keystore_object_get(ks1, id, &o, &found));
    T_CHECK(found && o.parts == 2 && o.first_part == 2 && o.size == 0);
    /* Counts S3 cannot have are refused. */
    T_CHECK(s3s_failed(s3s_keystore_object_put(ks1, other, C("b"), C("k"),
                                               &(struct s3s_keystore_object){0, 1, 0})));
    T_CHECK(s3s_failed(s3s_keystore_object_put(ks1, other, C("b"), C("k"),
                                               &(struct s3s_keystore_object){10001, 1, 0})));
    T_CHECK(s3s_failed(s3s_keystore_object_put(ks1, other, C("b"), C("k"),
                                               &(struct s3s_keystore_object){1, 0, 0})));
    T_CHECK(s3s_failed(s3s_keystore_object_put(ks1, other, C("b"), C("k"),
                                               &(struct s3s_keystore_object){1, 1, 1ull << 62})));
    T_OK(s3s_keystore_object_get(ks1, other, &o, &found));
    T_CHECK(!found);
    s3s_keystore_close(ks1);
    s3s_keystore_close(ks2);
}


static bool s_keep_not_k2(void *ctx, struct s3s_cur b, struct s3s_cur k, struct s3s_cur e)
{
    (void)ctx;
    (void)b;
    (void)e;
    return !s3s_cur_eq_str(k, "k2");
}

/* The catalog's entries: by bucket, key and backend ETag, looked up a page
 * at a time; another ETag under the same name is another object. */
static void test_entries(const char *db, const char *mk)
{
    char why[256] = "";
    struct s3s_keystore *ks1 = NULL, *ks2 = NULL;
    T_OK(s3s_keystore_open(db, mk, true, &ks1, why, sizeof(why)));
    T_OK(s3s_keystore_open(db, mk, true, &ks2, why, sizeof(why)));
    struct s3s_keystore_entry e = {65537, "0cc175b9c0f1b6a831c399e269772661"};
    T_OK(s3s_keystore_entry_put(ks1, C("b"), C("k1"), C("aaaa"), &e));
    struct s3s_keystore_entry m = {31457280, "f1c9645dbc14efddc7d8a322685f26eb-3"};
    T_OK(s3s_keystore_entry_put(ks1, C("b"), C("k2"), C("bbbb-3"), &m));
    T_OK(s3s_keystore_entry_put(ks1, C("other"), C("k1"), C("aaaa"), &m));
    struct s3s_keystore_entry_ref refs[5] = {
        {.key = C("k1"), .etag = C("aaaa")},   {.key = C("k2"), .etag = C("bbbb-3")},
        {.key = C("k1"), .etag = C("cccc")},   {.key = C("k3"), .etag = C("aaaa")},
        {.key = C("k1"), .etag = C("\"aaaa\"")}};
    T_OK(s3s_keystore_entry_get_many(ks2, C("b"), refs, 5));
    T_CHECK(refs[0].found && refs[0].entry.size == 65537);
    T_STREQ(refs[0].entry.plain_etag, "0cc175b9c0f1b6a831c399e269772661");
    T_CHECK(refs[1].found && refs[1].entry.size == 31457280);
    T_STREQ(refs[1].entry.plain_etag, "f1c9645dbc14efddc7d8a322685f26eb-3");
    T_CHECK(!refs[2].found && !refs[3].found && !refs[4].found);
    /* Written again (a PUT retried): replaced. */
    e.size = 1;
    T_OK(s3s_keystore_entry_put(ks2, C("b"), C("k1"), C("aaaa"), &e));
    T_OK(s3s_keystore_entry_get_many(ks1, C("b"), refs, 1));
    T_CHECK(refs[0].found && refs[0].entry.size == 1);
    /* What no ETag looks like is refused. */
    T_CHECK(s3s_failed(s3s_keystore_entry_put(ks1, C("b"), C("k"), C(""), &e)));
    T_CHECK(s3s_failed(s3s_keystore_entry_put(ks1, C("b"), C("k"), C("a\"b"), &e)));
    struct s3s_keystore_entry bad = {1ull << 62, "x"};
    T_CHECK(s3s_failed(s3s_keystore_entry_put(ks1, C("b"), C("k"), C("x"), &bad)));
    struct s3s_keystore_entry empty = {1, ""};
    T_CHECK(s3s_failed(s3s_keystore_entry_put(ks1, C("b"), C("k"), C("x"), &empty)));
    /* Pruning one bucket leaves the others. */
    size_t removed = 0;
    T_OK(s3s_keystore_entry_prune(ks1, C("b"), s_keep_not_k2, NULL, &removed));
    T_CHECK(removed == 1);
    T_OK(s3s_keystore_entry_get_many(ks1, C("b"), refs, 2));
    T_CHECK(refs[0].found && !refs[1].found);
    T_OK(s3s_keystore_entry_get_many(ks1, C("other"), refs, 1));
    T_CHECK(refs[0].found);
    s3s_keystore_close(ks1);
    s3s_keystore_close(ks2);
}

int main(int argc, char **argv)
{
    snprintf(s_dir, sizeof(s_dir), "/tmp/s3seal-ksup-XXXXXX");
    T_CHECK(mkdtemp(s_dir) != NULL);
    ks_test_init(argc, argv, "upload_registry", s_dir);
    char db[128], mk[128];
    ks_test_location("ks", db, sizeof(db));
    snprintf(mk, sizeof(mk), "%s/master.key", s_dir);
    t_write_master_key(mk, 0x21);
    test_put_get_delete(db, mk);
    test_two_handles(db, mk);
    test_catalog(db, mk);
    test_entries(db, mk);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", s_dir);
    T_CHECK(system(cmd) == 0);
    return t_finish(ks_test_pg() ? "keystore.pg.upload_registry" : "keystore.upload_registry");
}
