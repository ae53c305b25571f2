/*
 * store_test.c - what the keystore's back ends add beyond the other tests:
 * locations (schemes, passwords kept out of messages), a database out of
 * reach failing fast with KEYSTORE_UNAVAILABLE, change notices from one
 * handle heard on another within a second (PostgreSQL; SQLite says it has
 * none), reconnection after the server dropped the connections, a server
 * that stops answering (its session process stopped: TCP still
 * acknowledged) failing the call within the answer bound and the next ones
 * at once, and `keystore copy` from an SQLite file into the back end under
 * test, verified and refused over a non-empty target.
 */
#include <libpq-fe.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "keystore/kms.h"
#include "keystore/store.h"
#include "ks_test.h"
#include "testlib.h"

#define ACCOUNT "111122223333"

static char s_dir[64];
static char s_mk[128];

static int64_t s_now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static struct s3s_keystore *s_open(const char *loc)
{
    char why[256] = "";
    struct s3s_keystore *ks = NULL;
    s3s_result r = s3s_keystore_open(loc, s_mk, true, &ks, why, sizeof(why));
    T_OK(r);
    if (s3s_failed(r)) {
        fprintf(stderr, "open %s: %s\n", loc, why);
    }
    return ks;
}

static void test_locations(void)
{
    char out[256];
    s3s_store_location_display("postgresql://u:secret@db1:5432,db2/ks?target_session_attrs="
                               "read-write",
                               out, sizeof(out));
    T_STREQ(out, "postgresql://u:***@db1:5432,db2/ks?target_session_attrs=read-write");
    s3s_store_location_display("postgres://db/ks?user=u&password=secret&sslmode=require", out,
                               sizeof(out));
    T_STREQ(out, "postgres://db/ks?user=u&password=***&sslmode=require");
    s3s_store_location_display("/var/lib/s3seal/ks.db", out, sizeof(out));
    T_STREQ(out, "/var/lib/s3seal/ks.db");

    /* sqlite:///PATH is the file PATH. */
    char loc[160], why[256] = "";
    snprintf(loc, sizeof(loc), "sqlite://%s/url.db", s_dir);
    struct s3s_keystore *ks = s_open(loc);
    T_STREQ(s3s_keystore_backend(ks), "sqlite");
    s3s_keystore_close(ks);
    snprintf(loc, sizeof(loc), "%s/url.db", s_dir);
    T_OK(s3s_keystore_open(loc, s_mk, false, &ks, why, sizeof(why)));
    s3s_keystore_close(ks);
    ks = NULL;
    T_ERR(s3s_keystore_open("mysql://db/ks", s_mk, true, &ks, why, sizeof(why)),
          S3S_ERR_KEYSTORE);
    T_CHECK(ks == NULL && strstr(why, "unknown scheme") != NULL);
}

/* Nothing listens on port 1: refused at once, reported as unreachable
 * (503 later), with the password out of the reason. */
static void test_unreachable(void)
{
    char why[256] = "";
    struct s3s_keystore *ks = NULL;
    int64_t t0 = s_now_ms();
    T_ERR(s3s_keystore_open("postgresql://u:hunter2@127.0.0.1:1/ks?connect_timeout=2", s_mk,
                            true, &ks, why, sizeof(why)),
          S3S_ERR_KEYSTORE_UNAVAILABLE);
    T_CHECK(ks == NULL && s_now_ms() - t0 < 3000);
    T_CHECK(strstr(why, "hunter2") == NULL && strstr(why, "u:***@") != NULL);
}

struct s_change {
    const char *loc;
    const char *key_id;
    int what; /* 0: disable the key, 1: rotate the root key, 2: a bucket default */
    int64_t at_ms;
};

static void *s_change_later(void *arg)
{
    struct s_change *c = arg;
    usleep(200 * 1000);
    struct s3s_keystore *ks = s_open(c->loc);
    c->at_ms = s_now_ms();
    uint32_t v = 0;
    switch (c->what) {
    case 0:
        T_OK(s3s_kms_set_enabled(ks, c->key_id, false));
        break;
    case 1:
        T_OK(s3s_keystore_root_rotate(ks, &v));
        break;
    default:
        T_OK(s3s_keystore_bucket_enc_put(ks, "docs", "aws:kms", c->key_id, true));
        break;
    }
    s3s_keystore_close(ks);
    return NULL;
}

static void test_notices(void)
{
    char loc[160];
    ks_test_location("notices", loc, sizeof(loc));
    struct s3s_keystore *ks = s_open(loc);
    int fd = -1;
    unsigned what = 9;
    if (!ks_test_pg()) {
        T_ERR(s3s_keystore_listen(ks, &fd), S3S_ERR_NOT_IMPLEMENTED);
        T_ERR(s3s_keystore_wait_changes(ks, 10, &what), S3S_ERR_NOT_IMPLEMENTED);
        s3s_keystore_close(ks);
        return;
    }
    struct s3s_kms_key k;
    struct s3s_kms_create_opts o = {.account = ACCOUNT, .region = "us-east-1"};
    T_OK(s3s_kms_create(ks, &o, &k));
    T_OK(s3s_keystore_listen(ks, &fd));
    T_CHECK(fd >= 0);
    T_OK(s3s_keystore_changes(ks, &what, &fd));
    T_CHECK(what == 0);

    /* A change made through another handle (another process's, as far as
     * the database knows) is heard within a second, naming what changed. */
    const unsigned bits[3] = {S3S_KEYSTORE_CHANGED_KMS, S3S_KEYSTORE_CHANGED_ROOT,
                              S3S_KEYSTORE_CHANGED_BUCKET};
    for (int i = 0; i < 3; i++) {
        struct s_change c = {loc, k.id, i, 0};
        pthread_t th;
        T_CHECK(pthread_create(&th, NULL, s_change_later, &c) == 0);
        what = 0;
        T_OK(s3s_keystore_wait_changes(ks, 3000, &what));
        int64_t heard = s_now_ms();
        pthread_join(th, NULL);
        T_CHECK(what == bits[i]);
        T_CHECK(c.at_ms > 0 && heard - c.at_ms < 1000);
        if (heard - c.at_ms >= 1000) {
            fprintf(stderr, "change %d heard after %lld ms\n", i, (long long)(heard - c.at_ms));
        }
    }
    /* A change refused (rolled back) announces nothing. */
    T_ERR(s3s_kms_set_enabled(ks, "00000000-0000-4000-8000-000000000000", false),
          S3S_ERR_KMS_NOT_FOUND);
    T_OK(s3s_keystore_wait_changes(ks, 300, &what));
    T_CHECK(what == 0);

    /* The server drops every connection of this database (a restart, a
     * failover): the next call reconnects by itself, and the listener says
     * that anything may have changed meanwhile. */
    PGconn *admin = PQconnectdb(loc);
    PGresult *r = PQexec(admin, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                "WHERE datname = current_database() AND pid <> pg_backend_pid()");
    T_CHECK(PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) >= 2);
    PQclear(r);
    PQfinish(admin);
    usleep(100 * 1000);
    struct s3s_kms_key d;
    T_OK(s3s_kms_describe(ks, k.id, &d));
    T_CHECK(d.state == S3S_KMS_DISABLED);
    s3s_kms_key_clean_up(&d);
    T_OK(s3s_keystore_wait_changes(ks, 1000, &what));
    T_CHECK(what == S3S_KEYSTORE_CHANGED_ALL);
    /* ... and hears the next change on the new connection. */
    struct s_change c = {loc, k.id, 0, 0};
    pthread_t th;
    T_CHECK(pthread_create(&th, NULL, s_change_later, &c) == 0);
    T_OK(s3s_keystore_wait_changes(ks, 3000, &what));
    pthread_join(th, NULL);
    T_CHECK(what == S3S_KEYSTORE_CHANGED_KMS);

    s3s_kms_key_clean_up(&k);
    s3s_keystore_close(ks);
}

/* The server's process behind the keystore's session, if the server runs on
 * this machine (its pid is then one of ours to signal); 0 otherwise. */
static pid_t s_session_pid(const char *loc)
{
    PGconn *admin = PQconnectdb(loc);
    PGresult *r = PQexec(admin, "SELECT pid, inet_server_addr() IS NULL OR "
                                "host(inet_server_addr()) IN ('127.0.0.1', '::1') "
                                "FROM pg_stat_activity WHERE datname = current_database() AND "
                                "application_name = 's3seal' AND pid <> pg_backend_pid()");
    pid_t pid = 0;
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 &&
        strcmp(PQgetvalue(r, 0, 1), "t") == 0) {
        pid = (pid_t)strtol(PQgetvalue(r, 0, 0), NULL, 10);
    }
    PQclear(r);
    PQfinish(admin);
    char path[64], comm[64] = "";
    snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
    FILE *f = pid > 0 ? fopen(path, "r") : NULL;
    if (f) {
        if (!fgets(comm, sizeof(comm), f)) {
            comm[0] = '\0';
        }
        fclose(f);
    }
    return strncmp(comm, "postgres", 8) == 0 ? pid : 0;
}

/* The session's server process stops (SIGSTOP): its kernel still
 * acknowledges TCP, so only s3seal's own bound on an answer ends the wait. */
static void test_hung_server(void)
{
    if (!ks_test_pg()) {
        return;
    }
    char loc[160];
    ks_test_location("hung", loc, sizeof(loc));
    struct s3s_keystore *ks = s_open(loc);
    uint32_t version = 0;
    struct s3s_secret key = {0};
    T_OK(s3s_keystore_root_current(ks, &version, &key));
    s3s_secret_destroy(&key);
    pid_t pid = s_session_pid(loc);
    if (pid <= 0 || kill(pid, SIGSTOP) != 0) {
        fprintf(stderr, "store: the server's processes cannot be stopped from here: "
                        "the hung-server case skipped\n");
        s3s_keystore_close(ks);
        return;
    }
    int64_t t0 = s_now_ms();
    T_ERR(s3s_keystore_root_current(ks, &version, &key), S3S_ERR_KEYSTORE_UNAVAILABLE);
    int64_t took = s_now_ms() - t0;
    T_CHECK(took >= 6000 && took < 9000);
    /* Right after, no new connection is tried: the next call fails at once. */
    t0 = s_now_ms();
    T_ERR(s3s_keystore_root_current(ks, &version, &key), S3S_ERR_KEYSTORE_UNAVAILABLE);
    T_CHECK(s_now_ms() - t0 < 500);
    T_CHECK(kill(pid, SIGCONT) == 0);
    if (took < 6000 || took >= 9000) {
        fprintf(stderr, "the hung server's call took %lld ms\n", (long long)took);
    }
    /* Then a new connection serves again. */
    usleep(1100 * 1000);
    T_OK(s3s_keystore_root_current(ks, &version, &key));
    s3s_secret_destroy(&key);
    s3s_keystore_close(ks);
}

struct s_progress {
    size_t calls, last_done, last_total;
};

static void s_progress(void *ctx, size_t done, size_t total)
{
    struct s_progress *p = ctx;
    p->calls++;
    p->last_done = done;
    p->last_total = total;
}

#define C(s) s3s_cur_from_str(s)

/* An SQLite keystore with something in every table, copied into the back
 * end under test: the copy holds the same keys (material compared in the
 * clear after opening it through the copy), settings and uploads. */
static void test_copy(void)
{
    char src_loc[160], dst_loc[160], why[256] = "";
    snprintf(src_loc, sizeof(src_loc), "%s/copy-source.db", s_dir);
    struct s3s_keystore *src = s_open(src_loc);
    uint32_t v = 0;
    T_OK(s3s_keystore_root_rotate(src, &v));
    struct s3s_kms_key a, b;
    struct s3s_kms_create_opts o = {.account = ACCOUNT, .region = "us-east-1",
                                    .alias = "alias/docs", .description = "dócs",
                                    .rotation_period_s = 90 * 86400LL,
                                    .policy = "{\"Version\":\"2012-10-17\",\"Statement\":[]}"};
    T_OK(s3s_kms_create(src, &o, &a));
    struct s3s_kms_create_opts o2 = {.account = ACCOUNT, .region = "us-east-1"};
    T_OK(s3s_kms_create(src, &o2, &b));
    T_OK(s3s_kms_rotate(src, a.id, &v));
    T_OK(s3s_kms_set_enabled(src, b.id, false));
    T_OK(s3s_keystore_bucket_enc_put(src, "docs", "aws:kms", a.arn, true));
    T_OK(s3s_keystore_bucket_enc_put(src, "plain", "AES256", NULL, false));
    const uint8_t odd_key[] = {'k', 0, 0xff, '/'};
    T_OK(s3s_keystore_upload_put(src, C("docs"), s3s_cur_from(odd_key, sizeof(odd_key)),
                                 C("backend-id-1"), C("~s3seal~2~1~abcd")));
    uint64_t gen = 0;
    T_OK(s3s_kms_generation(src, &gen));

    ks_test_location("copy_target", dst_loc, sizeof(dst_loc));
    struct s_progress p = {0};
    size_t rows = 0;
    s3s_result r = s3s_keystore_copy(src, dst_loc, s_progress, &p, &rows, why, sizeof(why));
    T_OK(r);
    if (s3s_failed(r)) {
        fprintf(stderr, "copy: %s\n", why);
    }
    /* meta's check, 2 root keys, 2 bucket defaults, 1 upload, 2 keys, 3
     * versions, 1 alias */
    T_CHECK(rows == 12 && p.calls == 12 && p.last_done == 12 && p.last_total == 12);

    struct s3s_keystore *dst = NULL;
    T_OK(s3s_keystore_open(dst_loc, s_mk, false, &dst, why, sizeof(why)));
    T_STREQ(s3s_keystore_backend(dst), ks_test_pg() ? "postgresql" : "sqlite");
    for (uint32_t ver = 1; ver <= 2; ver++) {
        struct s3s_secret x = {0}, y = {0};
        T_OK(s3s_keystore_root_get(src, ver, &x));
        T_OK(s3s_keystore_root_get(dst, ver, &y));
        T_CHECK(x.len == 32 && y.len == 32 && s3s_ct_eq(x.ptr, 32, y.ptr, 32));
        s3s_secret_destroy(&x);
        s3s_secret_destroy(&y);
    }
    struct s3s_kms_snapshot *sa = NULL, *sb = NULL;
    T_OK(s3s_kms_snapshot_load(src, true, &sa));
    T_OK(s3s_kms_snapshot_load(dst, true, &sb));
    T_CHECK(sa && sb && sa->n_keys == 2 && sb->n_keys == 2 && sb->n_aliases == 1 &&
            sa->generation == gen && sb->generation == gen);
    for (size_t i = 0; sa && sb && i < sa->n_keys && i < sb->n_keys; i++) {
        const struct s3s_kms_key *x = &sa->keys[i].meta, *y = &sb->keys[i].meta;
        T_STREQ(y->id, x->id);
        T_STREQ(y->arn, x->arn);
        T_STREQ(y->description, x->description);
        T_CHECK(x->state == y->state && x->current_version == y->current_version &&
                x->created == y->created && x->rotation_period_s == y->rotation_period_s &&
                (x->policy == NULL) == (y->policy == NULL));
        T_CHECK(sa->keys[i].material.len == sb->keys[i].material.len &&
                s3s_ct_eq(sa->keys[i].material.ptr, sa->keys[i].material.len,
                          sb->keys[i].material.ptr, sb->keys[i].material.len));
    }
    T_CHECK(sb && s3s_kms_snapshot_find(sb, "alias/docs", ACCOUNT) ==
                      s3s_kms_snapshot_by_id(sb, a.id));
    s3s_kms_snapshot_free(sa);
    s3s_kms_snapshot_free(sb);
    struct s3s_keystore_bucket_enc *list = NULL;
    size_t n = 0;
    T_OK(s3s_keystore_bucket_enc_list(dst, &list, &n));
    T_CHECK(n == 2 && list && strcmp(list[0].bucket, "docs") == 0 &&
            strcmp(list[0].kms_key_id, a.arn) == 0 && list[0].bucket_key &&
            list[1].kms_key_id == NULL && !list[1].bucket_key);
    s3s_keystore_bucket_enc_free(list, n);
    char *suffix = NULL;
    T_OK(s3s_keystore_upload_get(dst, C("docs"), s3s_cur_from(odd_key, sizeof(odd_key)),
                                 C("backend-id-1"), &suffix));
    T_STREQ(suffix, "~s3seal~2~1~abcd");
    s3s_free(&suffix);
    /* The copy works on its own: a rotation continues the versions. */
    T_OK(s3s_kms_rotate(dst, a.id, &v));
    T_CHECK(v == 3);
    s3s_keystore_close(dst);

    /* Never over a keystore that holds something. */
    why[0] = '\0';
    T_ERR(s3s_keystore_copy(src, dst_loc, NULL, NULL, &rows, why, sizeof(why)),
          S3S_ERR_KEYSTORE);
    T_CHECK(rows == 0 && strstr(why, "not empty") != NULL);
    /* Nor into a keystore made under another master key (it is not empty
     * either, and would not open). */
    s3s_kms_key_clean_up(&a);
    s3s_kms_key_clean_up(&b);
    s3s_keystore_close(src);
}

int main(int argc, char **argv)
{
    snprintf(s_dir, sizeof(s_dir), "/tmp/s3seal-kss-XXXXXX");
    T_CHECK(mkdtemp(s_dir) != NULL);
    ks_test_init(argc, argv, "store", s_dir);
    snprintf(s_mk, sizeof(s_mk), "%s/master.key", s_dir);
    t_write_master_key(s_mk, 0x50);
    test_locations();
    test_unreachable();
    test_notices();
    test_hung_server();
    test_copy();
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", s_dir);
    T_CHECK(system(cmd) == 0);
    return t_finish(ks_test_pg() ? "keystore.pg.store" : "keystore.store");
}
