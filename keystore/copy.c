/*
 * copy.c - copying a keystore into another (keystore.h's s3s_keystore_copy),
 * e.g. a host's SQLite file into the PostgreSQL database of a fleet: every
 * row of every table as it is, key material still sealed (the associated
 * data names the row, not the database, so it opens in the copy under the
 * same master key), in one write transaction on the target read from one
 * snapshot of the source; then every row read back from both and compared.
 */
#include <stdio.h>
#include <string.h>

#include "keystore/keystore_private.h"
#include "keystore/store.h"

enum s_kind { S_INT, S_TEXT, S_BLOB };

#define S_MAX_COLS 11

struct s_table {
    const char *name;
    const char *cols;
    const char *order;
    const char *where; /* rows to copy; the rest the back end keeps its own way */
    int n;
    enum s_kind kinds[S_MAX_COLS];
};

/* Every table of the schema (store_sqlite.c, store_pg.c), keyed order. */
static const struct s_table s_tables[] = {
    {"meta", "name, value", "name", "name <> '" S3S_KEYSTORE__KMS_GENERATION "'", 2,
     {S_TEXT, S_BLOB}},
    {"root_keys", "version, created, sealed", "version", NULL, 3, {S_INT, S_INT, S_BLOB}},
    {"bucket_encryption", "bucket, algorithm, kms_key_id, bucket_key, updated", "bucket", NULL,
     5, {S_TEXT, S_TEXT, S_TEXT, S_INT, S_INT}},
    {"bucket_access", "bucket, owner, policy, updated", "bucket", NULL, 4,
     {S_TEXT, S_TEXT, S_TEXT, S_INT}},
    {"bucket_cors", "bucket, config, updated", "bucket", NULL, 3, {S_TEXT, S_TEXT, S_INT}},
    {"uploads", "bucket, key, upload_id, suffix, created", "bucket, key, upload_id", NULL, 5,
     {S_BLOB, S_BLOB, S_BLOB, S_TEXT, S_INT}},
    {"objects", "object_id, bucket, key, parts, first_part, size, created", "object_id", NULL, 7,
     {S_BLOB, S_BLOB, S_BLOB, S_INT, S_INT, S_INT, S_INT}},
    {"entries", "bucket, key, etag, size, plain_etag, created", "bucket, key, etag", NULL, 6,
     {S_BLOB, S_BLOB, S_TEXT, S_INT, S_TEXT, S_INT}},
    {"kms_keys",
     "id, account, region, arn, description, state, aws_managed, created, deletion_date, "
     "rotation_period_s, policy",
     "id", NULL, 11,
     {S_TEXT, S_TEXT, S_TEXT, S_TEXT, S_TEXT, S_INT, S_INT, S_INT, S_INT, S_INT, S_TEXT}},
    {"kms_key_versions", "key_id, version, sealed, created", "key_id, version", NULL, 4,
     {S_TEXT, S_INT, S_BLOB, S_INT}},
    {"kms_aliases", "account, name, key_id, created", "account, name", NULL, 4,
     {S_TEXT, S_TEXT, S_TEXT, S_INT}},
    /* The audit trail goes with the keys it speaks of: each record's hash
     * covers its own text, instance name included, so the chains verify in
     * the copy as they did in the source. */
    {"audit_heads", "instance, seq, hash", "instance", NULL, 3, {S_TEXT, S_INT, S_TEXT}},
    {"audit_records", "instance, seq, record", "instance, seq", NULL, 3,
     {S_TEXT, S_INT, S_TEXT}},
};
#define S_N_TABLES (sizeof(s_tables) / sizeof(s_tables[0]))

static const char *const s_counters[] = {S3S_KEYSTORE__KMS_GENERATION};

struct s_copy {
    struct s3s_keystore *src, *dst;
    s3s_keystore_copy_fn *progress;
    void *ctx;
    size_t done, total;
    char *why;
    size_t why_len;
};

static void s_tick(struct s_copy *c)
{
    c->done++;
    if (c->progress) {
        c->progress(c->ctx, c->done, c->total);
    }
}

static s3s_result s_select(struct s3s_keystore *ks, const struct s_table *t, bool count,
                           struct s3s_store_stmt **st)
{
    char sql[512];
    snprintf(sql, sizeof(sql), "SELECT %s FROM %s%s%s%s%s", count ? "COUNT(*)" : t->cols, t->name,
             t->where ? " WHERE " : "", t->where ? t->where : "", count ? "" : " ORDER BY ",
             count ? "" : t->order);
    return s3s_store_prepare(ks->store, sql, st);
}

static s3s_result s_count(struct s3s_keystore *ks, const struct s_table *t, size_t *n)
{
    struct s3s_store_stmt *st = NULL;
    S3S_GUARD(s_select(ks, t, true, &st));
    enum s3s_store_rc rc = s3s_store_step(st);
    *n = rc == S3S_STORE_ROW ? (size_t)s3s_store_column_int64(st, 0) : 0;
    s3s_store_finalize(st);
    S3S_ENSURE(rc == S3S_STORE_ROW, s3s_store_rc_error(rc, S3S_ERR_KEYSTORE));
    return s3s_ok();
}

/* The target must hold nothing: a copy never overwrites. */
static s3s_result s_check_empty(struct s_copy *c)
{
    for (size_t i = 0; i < S_N_TABLES; i++) {
        size_t n = 0;
        S3S_GUARD(s_count(c->dst, &s_tables[i], &n));
        if (n > 0) {
            s3s_keystore__why(c->why, c->why_len,
                              "the target is not empty (%zu rows in %s): a copy never "
                              "overwrites a keystore",
                              n, s_tables[i].name);
            S3S_BAIL(S3S_ERR_KEYSTORE);
        }
    }
    return s3s_ok();
}

/* Copies one row of `from` (a SELECT of t's columns) into `to` (t's
 * INSERT). */
static s3s_result s_copy_row(const struct s_table *t, struct s3s_store_stmt *from,
                             struct s3s_store_stmt *to)
{
    s3s_store_reset(to);
    for (int i = 0; i < t->n; i++) {
        if (s3s_store_column_null(from, i)) {
            s3s_store_bind_null(to, i + 1);
        } else if (t->kinds[i] == S_INT) {
            s3s_store_bind_int64(to, i + 1, s3s_store_column_int64(from, i));
        } else {
            struct s3s_cur v = s3s_store_column_cur(from, i);
            if (t->kinds[i] == S_TEXT) {
                s3s_store_bind_text(to, i + 1, (const char *)v.ptr, v.len);
            } else {
                s3s_store_bind_blob(to, i + 1, v.ptr, v.len);
            }
        }
    }
    enum s3s_store_rc rc = s3s_store_step(to);
    S3S_ENSURE(rc == S3S_STORE_DONE, s3s_store_rc_error(rc, S3S_ERR_KEYSTORE));
    return s3s_ok();
}

static s3s_result s_copy_table(struct s_copy *c, const struct s_table *t)
{
    char sql[512], marks[S_MAX_COLS * 3 + 1] = "";
    for (int i = 0; i < t->n; i++) {
        strcat(marks, i ? ", ?" : "?");
    }
    snprintf(sql, sizeof(sql), "INSERT INTO %s(%s) VALUES (%s)", t->name, t->cols, marks);
    struct s3s_store_stmt *from = NULL, *to = NULL;
    s3s_result res = s_select(c->src, t, false, &from);
    if (s3s_is_ok(res)) {
        res = s3s_store_prepare(c->dst->store, sql, &to);
    }
    enum s3s_store_rc rc = S3S_STORE_DONE;
    while (s3s_is_ok(res) && (rc = s3s_store_step(from)) == S3S_STORE_ROW) {
        res = s_copy_row(t, from, to);
        if (s3s_is_ok(res)) {
            s_tick(c);
        }
    }
    if (s3s_is_ok(res) && rc != S3S_STORE_DONE) {
        res = s3s_err(s3s_store_rc_error(rc, S3S_ERR_KEYSTORE));
    }
    s3s_store_finalize(from);
    s3s_store_finalize(to);
    if (s3s_failed(res)) {
        s3s_keystore__why(c->why, c->why_len, "copying %s: %s", t->name,
                          c->dst->store->ops->errmsg(c->dst->store));
    }
    return res;
}

static s3s_result s_copy_all(struct s_copy *c)
{
    S3S_GUARD(s_check_empty(c));
    for (size_t i = 0; i < S_N_TABLES; i++) {
        size_t n = 0;
        S3S_GUARD(s_count(c->src, &s_tables[i], &n));
        c->total += n;
    }
    for (size_t i = 0; i < S_N_TABLES; i++) {
        S3S_GUARD(s_copy_table(c, &s_tables[i]));
    }
    for (size_t i = 0; i < sizeof(s_counters) / sizeof(s_counters[0]); i++) {
        uint64_t v = 0;
        S3S_GUARD(c->src->store->ops->generation_get(c->src->store, s_counters[i], &v));
        S3S_GUARD(c->dst->store->ops->generation_set(c->dst->store, s_counters[i], v));
    }
    /* Servers listening on the target load what it now holds. */
    return c->dst->store->ops->announce(c->dst->store, S3S_KEYSTORE_CHANGED_ALL);
}

/* Whether two cells hold the same value. */
static bool s_same(enum s_kind kind, struct s3s_store_stmt *a, struct s3s_store_stmt *b, int i)
{
    bool na = s3s_store_column_null(a, i), nb = s3s_store_column_null(b, i);
    if (na || nb) {
        return na == nb;
    }
    if (kind == S_INT) {
        return s3s_store_column_int64(a, i) == s3s_store_column_int64(b, i);
    }
    struct s3s_cur x = s3s_store_column_cur(a, i), y = s3s_store_column_cur(b, i);
    return x.len == y.len && (x.len == 0 || memcmp(x.ptr, y.ptr, x.len) == 0);
}

static s3s_result s_verify_table(struct s_copy *c, const struct s_table *t)
{
    struct s3s_store_stmt *a = NULL, *b = NULL;
    s3s_result res = s_select(c->src, t, false, &a);
    if (s3s_is_ok(res)) {
        res = s_select(c->dst, t, false, &b);
    }
    size_t row = 0;
    while (s3s_is_ok(res)) {
        enum s3s_store_rc ra = s3s_store_step(a), rb = s3s_store_step(b);
        if (ra != S3S_STORE_ROW && ra != S3S_STORE_DONE) {
            res = s3s_err(s3s_store_rc_error(ra, S3S_ERR_KEYSTORE));
            break;
        }
        if (rb != S3S_STORE_ROW && rb != S3S_STORE_DONE) {
            res = s3s_err(s3s_store_rc_error(rb, S3S_ERR_KEYSTORE));
            break;
        }
        if (ra != rb) {
            s3s_keystore__why(c->why, c->why_len, "verification: %s has %s rows in the copy",
                              t->name, ra == S3S_STORE_ROW ? "fewer" : "more");
            res = s3s_err(S3S_ERR_KEYSTORE);
            break;
        }
        if (ra == S3S_STORE_DONE) {
            break;
        }
        for (int i = 0; i < t->n && s3s_is_ok(res); i++) {
            if (!s_same(t->kinds[i], a, b, i)) {
                s3s_keystore__why(c->why, c->why_len,
                                  "verification: row %zu of %s differs in the copy", row + 1,
                                  t->name);
                res = s3s_err(S3S_ERR_KEYSTORE);
            }
        }
        row++;
    }
    s3s_store_finalize(a);
    s3s_store_finalize(b);
    return res;
}

static s3s_result s_verify_all(struct s_copy *c)
{
    for (size_t i = 0; i < S_N_TABLES; i++) {
        S3S_GUARD(s_verify_table(c, &s_tables[i]));
    }
    for (size_t i = 0; i < sizeof(s_counters) / sizeof(s_counters[0]); i++) {
        uint64_t a = 0, b = 0;
        S3S_GUARD(c->src->store->ops->generation_get(c->src->store, s_counters[i], &a));
        S3S_GUARD(c->dst->store->ops->generation_get(c->dst->store, s_counters[i], &b));
        if (a != b) {
            s3s_keystore__why(c->why, c->why_len, "verification: counter %s differs",
                              s_counters[i]);
            S3S_BAIL(S3S_ERR_KEYSTORE);
        }
    }
    return s3s_ok();
}

s3s_result s3s_keystore_copy(struct s3s_keystore *src, const char *to,
                             s3s_keystore_copy_fn *progress, void *ctx, size_t *rows, char *why,
                             size_t why_len)
{
    S3S_ENSURE(src && to && rows, S3S_ERR_INVALID_ARG);
    *rows = 0;
    struct s_copy c = {.src = src, .progress = progress, .ctx = ctx, .why = why,
                       .why_len = why_len};
    if (why && why_len) {
        why[0] = '\0';
    }
    S3S_GUARD(s3s_keystore__open_store(to, &src->master, true, &c.dst, why, why_len));
    /* One snapshot of the source, one write transaction on the target:
     * a copy is whole or absent. */
    s3s_result res = s3s_keystore__begin(src, S3S_STORE_READ);
    if (s3s_is_ok(res)) {
        res = s3s_keystore__begin(c.dst, S3S_STORE_WRITE);
        if (s3s_is_ok(res)) {
            res = s3s_keystore__txn_end(c.dst, s_copy_all(&c));
        }
        /* Read back from both in one snapshot each. */
        if (s3s_is_ok(res)) {
            res = s3s_keystore__begin(c.dst, S3S_STORE_READ);
            if (s3s_is_ok(res)) {
                res = s3s_keystore__txn_end(c.dst, s_verify_all(&c));
            }
        }
        s3s_store_rollback(src->store); /* read only */
    }
    if (s3s_is_ok(res)) {
        /* The copy opens under the master key, as the source does. */
        res = s3s_keystore__init_or_check(c.dst, false, why, why_len);
    }
    if (s3s_failed(res) && why && why_len && !why[0]) {
        s3s_keystore__why(why, why_len, "%s", c.dst->store->ops->errmsg(c.dst->store));
    }
    s3s_keystore_close(c.dst);
    if (s3s_is_ok(res)) {
        *rows = c.done;
    }
    return res;
}
