/*
 * audit_store.c - the audit trail in the keystore's database (audit.h,
 * `audit_log: keystore`): the records of a fleet in one place, one hash
 * chain per instance.
 *
 * Two tables (store_sqlite.c, store_pg.c): audit_records holds each record
 * as its JSON line (the bytes that were hashed, without the newline) under
 * its instance and seq; audit_heads holds each chain's newest seq and hash.
 * An append is one transaction: lock the instance's head row (SELECT ... FOR
 * UPDATE on PostgreSQL; SQLite's write transaction holds the file's one
 * lock), check that the newest record is intact and is the head, insert the
 * record chained onto it, move the head. So appenders of one instance on
 * any number of handles, threads or processes never fork its chain, and
 * instances do not wait on one another, nor on keystore changes (no
 * store-wide lock: S3S_STORE_ROWS). A failure rolls everything back.
 *
 * The head also vouches for the end of the chain: removing the newest
 * records is a break here, where in a file it is not.
 */
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "keystore/audit_private.h"
#include "keystore/keystore_private.h"
#include "keystore/policy_private.h"
#include "keystore/store.h"

#define S_INSTANCE_MAX 255
#define S_ZERO_HEX "0000000000000000000000000000000000000000000000000000000000000000"

struct s_db {
    struct s3s_audit base;
    struct s3s_store *store; /* a connection of its own; transactions under base.mu */
    char *instance;
    char *head_sql; /* the head row, locked */
};

/* A failed store call, in the log (the back end's message holds no secret). */
static void s_log_store(struct s_db *a, const char *what)
{
    S3S_LOGE("audit", "keystore: cannot %s of instance %s: %s; nothing recorded", what,
             a->instance, a->store->ops->errmsg(a->store));
}

/* The instance's head, locked until the transaction ends; found false when
 * the chain has no head yet. */
static s3s_result s_head_lock(struct s_db *a, struct s3s_audit__link *head, bool *found)
{
    struct s3s_store_stmt *st = NULL;
    S3S_GUARD(s3s_store_prepare(a->store, a->head_sql, &st));
    s3s_store_bind_str(st, 1, a->instance);
    enum s3s_store_rc rc = s3s_store_step(st);
    s3s_result r = s3s_ok();
    *found = rc == S3S_STORE_ROW;
    if (*found) {
        int64_t seq = s3s_store_column_int64(st, 0);
        struct s3s_cur hex = s3s_store_column_cur(st, 1);
        if (seq < 0 || hex.len != S3S_AUDIT__HEX_LEN ||
            !s3s_hex_decode(hex, head->hash, S3S_AUDIT__DIGEST_LEN)) {
            S3S_LOGE("audit", "keystore: the head of instance %s is damaged: nothing is chained "
                              "onto it; check it with `s3seal audit verify`",
                     a->instance);
            r = s3s_err(S3S_ERR_AUDIT_BROKEN);
        }
        head->seq = (uint64_t)seq;
    } else if (rc != S3S_STORE_DONE) {
        r = s3s_err(s3s_store_rc_error(rc, S3S_ERR_KEYSTORE));
    }
    s3s_store_finalize(st);
    return r;
}

/* A chain's first append: its head row (another appender may have made it
 * meanwhile; then that one stands). */
static s3s_result s_head_create(struct s_db *a)
{
    struct s3s_store_stmt *st = NULL;
    S3S_GUARD(s3s_store_prepare(a->store,
                                "INSERT INTO audit_heads(instance, seq, hash) VALUES (?, 0, ?) "
                                "ON CONFLICT(instance) DO NOTHING",
                                &st));
    s3s_store_bind_str(st, 1, a->instance);
    s3s_store_bind_str(st, 2, S_ZERO_HEX);
    enum s3s_store_rc rc = s3s_store_step(st);
    s3s_store_finalize(st);
    S3S_ENSURE(rc == S3S_STORE_DONE, s3s_store_rc_error(rc, S3S_ERR_KEYSTORE));
    return s3s_ok();
}

/* The record the head names must be there and intact: a writer chains only
 * onto what the verifier accepts, as with a file. */
static s3s_result s_check_newest(struct s_db *a, const struct s3s_audit__link *head)
{
    if (head->seq == 0) {
        return s3s_ok();
    }
    struct s3s_store_stmt *st = NULL;
    S3S_GUARD(s3s_store_prepare(
        a->store, "SELECT record FROM audit_records WHERE instance = ? AND seq = ?", &st));
    s3s_store_bind_str(st, 1, a->instance);
    s3s_store_bind_int64(st, 2, (int64_t)head->seq);
    enum s3s_store_rc rc = s3s_store_step(st);
    s3s_result r = s3s_ok();
    char why[128] = "the record is missing";
    if (rc == S3S_STORE_ROW) {
        struct s3s_audit__link link;
        uint8_t prev[S3S_AUDIT__DIGEST_LEN];
        struct s3s_cur line = s3s_store_column_cur(st, 0);
        r = line.len < S3S_AUDIT_MAX_RECORD
                ? s3s_audit__line_parse(line, a->instance, &link, prev, why, sizeof(why))
                : s3s_err(S3S_ERR_AUDIT_BROKEN);
        if (s3s_is_ok(r) && (link.seq != head->seq ||
                             memcmp(link.hash, head->hash, S3S_AUDIT__DIGEST_LEN) != 0)) {
            snprintf(why, sizeof(why), "it is not the record the head names");
            r = s3s_err(S3S_ERR_AUDIT_BROKEN);
        }
    } else {
        r = s3s_err(rc == S3S_STORE_DONE ? S3S_ERR_AUDIT_BROKEN
                                         : s3s_store_rc_error(rc, S3S_ERR_KEYSTORE));
    }
    s3s_store_finalize(st);
    if (r.code == S3S_ERR_AUDIT_BROKEN) {
        S3S_LOGE("audit", "keystore: the newest record of instance %s (seq %llu) is not intact "
                          "(%s): nothing is chained onto it; check it with `s3seal audit verify`",
                 a->instance, (unsigned long long)head->seq, why);
    }
    return r;
}

static s3s_result s_insert(struct s_db *a, struct s3s_cur line, const struct s3s_audit__link *next)
{
    struct s3s_store_stmt *st = NULL;
    S3S_GUARD(s3s_store_prepare(
        a->store, "INSERT INTO audit_records(instance, seq, record) VALUES (?, ?, ?)", &st));
    s3s_store_bind_str(st, 1, a->instance);
    s3s_store_bind_int64(st, 2, (int64_t)next->seq);
    s3s_store_bind_text(st, 3, (const char *)line.ptr, line.len);
    enum s3s_store_rc rc = s3s_store_step(st);
    s3s_store_finalize(st);
    S3S_ENSURE(rc == S3S_STORE_DONE, s3s_store_rc_error(rc, S3S_ERR_KEYSTORE));

    char hex[S3S_AUDIT__HEX_LEN + 1];
    s3s_audit__hex(next->hash, hex);
    S3S_GUARD(s3s_store_prepare(
        a->store, "UPDATE audit_heads SET seq = ?, hash = ? WHERE instance = ?", &st));
    s3s_store_bind_int64(st, 1, (int64_t)next->seq);
    s3s_store_bind_str(st, 2, hex);
    s3s_store_bind_str(st, 3, a->instance);
    rc = s3s_store_step(st);
    size_t changed = rc == S3S_STORE_DONE ? s3s_store_changes(st) : 0;
    s3s_store_finalize(st);
    S3S_ENSURE(rc == S3S_STORE_DONE, s3s_store_rc_error(rc, S3S_ERR_KEYSTORE));
    S3S_ENSURE(changed == 1, S3S_ERR_KEYSTORE);
    return s3s_ok();
}

/* Inside the transaction. */
static s3s_result s_append_txn(struct s_db *a, struct json_object *obj)
{
    struct s3s_audit__link head = {0};
    bool found = false;
    S3S_GUARD(s_head_lock(a, &head, &found));
    if (!found) {
        S3S_GUARD(s_head_create(a));
        S3S_GUARD(s_head_lock(a, &head, &found));
        S3S_ENSURE(found, S3S_ERR_KEYSTORE);
    }
    S3S_GUARD(s_check_newest(a, &head));
    struct s3s_buf line;
    S3S_GUARD(s3s_buf_init(&line, 1024, S3S_AUDIT_MAX_RECORD));
    struct s3s_audit__link next;
    s3s_result r = s3s_audit__render(obj, &head, &line, &next);
    if (s3s_is_ok(r)) {
        struct s3s_cur text = s3s_buf_cur(&line);
        text.len--; /* the newline: a row is one line already */
        r = s_insert(a, text, &next);
    }
    s3s_buf_clean_up(&line);
    return r;
}

/* Under the handle's mutex. */
static s3s_result s_db_append(struct s3s_audit *base, struct json_object *obj)
{
    struct s_db *a = (struct s_db *)base;
    s3s_result r = s3s_store_begin(a->store, S3S_STORE_ROWS);
    if (s3s_failed(r)) {
        s_log_store(a, "begin the record");
        S3S_BAIL(S3S_ERR_KMS_INTERNAL);
    }
    r = s_append_txn(a, obj);
    if (s3s_is_ok(r)) {
        r = s3s_store_commit(a->store);
        if (s3s_failed(r)) {
            s_log_store(a, "commit the record");
        }
    } else {
        if (r.code != S3S_ERR_AUDIT_BROKEN && r.code != S3S_ERR_TOO_BIG &&
            r.code != S3S_ERR_NOMEM) {
            s_log_store(a, "write the record");
        }
        s3s_store_rollback(a->store);
    }
    if (s3s_failed(r) && r.code != S3S_ERR_AUDIT_BROKEN && r.code != S3S_ERR_TOO_BIG &&
        r.code != S3S_ERR_NOMEM) {
        S3S_BAIL(S3S_ERR_KMS_INTERNAL);
    }
    return r;
}

static void s_db_close(struct s3s_audit *base)
{
    struct s_db *a = (struct s_db *)base;
    s3s_store_close(a->store);
    s3s_audit__clean_up(&a->base);
    s3s_free(&a->instance);
    s3s_free(&a->head_sql);
    s3s_free(&a);
}

static const struct s3s_audit__ops s_db_ops = {
    .append = s_db_append,
    .close = s_db_close,
};

/* An instance name: 1 to 255 bytes of UTF-8, no control characters. */
static bool s_instance_valid(const char *instance)
{
    size_t n = strnlen(instance, S_INSTANCE_MAX + 1);
    if (n == 0 || n > S_INSTANCE_MAX || !s3s_keystore__utf8_valid(s3s_cur_from(instance, n))) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)instance[i] < 0x20 || instance[i] == 0x7f) {
            return false;
        }
    }
    return true;
}

/* The store at location, its tables made. */
static s3s_result s_store_open(const char *location, bool create, struct s3s_store **out,
                               char *why, size_t why_len)
{
    S3S_GUARD(s3s_store_open(location, create, out, why, why_len));
    s3s_result r = (*out)->ops->schema(*out);
    if (s3s_failed(r)) {
        char loc[256];
        s3s_store_location_display(location, loc, sizeof(loc));
        s3s_keystore__why(why, why_len, "keystore %s: cannot create the audit tables: %s", loc,
                          (*out)->ops->errmsg(*out));
        s3s_store_close(*out);
        *out = NULL;
    }
    return r;
}

s3s_result s3s_audit_open_keystore(const char *location, const char *instance,
                                   struct s3s_audit **out, char *why, size_t why_len)
{
    S3S_ENSURE_REF(location);
    S3S_ENSURE_REF(instance);
    S3S_ENSURE_REF(out);
    *out = NULL;
    if (!s_instance_valid(instance)) {
        s3s_keystore__why(why, why_len,
                          "audit trail: the instance name must be 1 to %d bytes of UTF-8 "
                          "without control characters",
                          S_INSTANCE_MAX);
        S3S_BAIL(S3S_ERR_INVALID_ARG);
    }
    struct s_db *a = s3s_calloc(1, sizeof(*a));
    S3S_ENSURE(a != NULL, S3S_ERR_NOMEM);
    s3s_result r = s3s_err(S3S_ERR_NOMEM);
    a->instance = s3s_strdup(instance);
    if (!a->instance) {
        goto cleanup;
    }
    r = s_store_open(location, true, &a->store, why, why_len);
    if (s3s_failed(r)) {
        goto cleanup;
    }
    static const char head[] = "SELECT seq, hash FROM audit_heads WHERE instance = ?";
    size_t n = sizeof(head) + strlen(a->store->ops->for_update);
    a->head_sql = s3s_malloc(n);
    if (!a->head_sql) {
        r = s3s_err(S3S_ERR_NOMEM);
        goto cleanup;
    }
    snprintf(a->head_sql, n, "%s%s", head, a->store->ops->for_update);
    r = s3s_audit__init(&a->base, &s_db_ops, a->instance);
    if (s3s_failed(r)) {
        s3s_keystore__why(why, why_len, "audit trail: cannot create its lock");
        goto cleanup;
    }
    *out = &a->base;
    return s3s_ok();

cleanup:
    s_db_close(&a->base);
    return r;
}

/* --------------------------------------------------------------- verify */

struct s_verify {
    struct s3s_store *store;
    s3s_audit_chain_fn *fn;
    void *ctx;
    char why[256];
};

/* Reports one chain to the caller; broken: whether it is. */
static void s_report(struct s_verify *v, const char *instance, const struct s3s_audit__link *last,
                     uint64_t bad_seq, bool broken)
{
    struct s3s_audit_chain c = {
        .instance = instance,
        .records = last->seq,
        .bad_seq = broken ? bad_seq : 0,
        .broken = broken,
        .why = broken ? v->why : NULL,
    };
    s3s_audit__hex(last->hash, c.newest);
    v->fn(v->ctx, &c);
}

/* Checks every record of one instance, in seq order, then that the head
 * names the newest. S3S_ERR_AUDIT_BROKEN (reported) on a break; other
 * errors are the database's. */
static s3s_result s_verify_records(struct s_verify *v, const char *instance,
                                   struct s3s_audit__link *last, uint64_t *bad_seq)
{
    struct s3s_store_stmt *st = NULL;
    S3S_GUARD(s3s_store_prepare(
        v->store, "SELECT seq, record FROM audit_records WHERE instance = ? ORDER BY seq", &st));
    s3s_store_bind_str(st, 1, instance);
    s3s_result r = s3s_ok();
    enum s3s_store_rc rc;
    while (s3s_is_ok(r) && (rc = s3s_store_step(st)) == S3S_STORE_ROW) {
        int64_t seq = s3s_store_column_int64(st, 0);
        struct s3s_cur line = s3s_store_column_cur(st, 1);
        *bad_seq = last->seq + 1;
        if (seq != (int64_t)(last->seq + 1)) {
            snprintf(v->why, sizeof(v->why), "record seq %llu is missing (the next is seq %lld)",
                     (unsigned long long)(last->seq + 1), (long long)seq);
            r = s3s_err(S3S_ERR_AUDIT_BROKEN);
        } else if (line.len >= S3S_AUDIT_MAX_RECORD) {
            snprintf(v->why, sizeof(v->why), "the record is longer than %d bytes",
                     S3S_AUDIT_MAX_RECORD);
            r = s3s_err(S3S_ERR_AUDIT_BROKEN);
        } else {
            r = s3s_audit__chain_check(line, instance, last, v->why, sizeof(v->why));
        }
    }
    if (s3s_is_ok(r) && rc != S3S_STORE_DONE) {
        r = s3s_err(s3s_store_rc_error(rc, S3S_ERR_KEYSTORE));
    }
    s3s_store_finalize(st);
    return r;
}

static s3s_result s_verify_head(struct s_verify *v, const char *instance,
                                const struct s3s_audit__link *last, uint64_t *bad_seq)
{
    struct s3s_store_stmt *st = NULL;
    S3S_GUARD(s3s_store_prepare(v->store, "SELECT seq, hash FROM audit_heads WHERE instance = ?",
                                &st));
    s3s_store_bind_str(st, 1, instance);
    enum s3s_store_rc rc = s3s_store_step(st);
    s3s_result r = s3s_ok();
    if (rc == S3S_STORE_ROW) {
        int64_t seq = s3s_store_column_int64(st, 0);
        struct s3s_cur hex = s3s_store_column_cur(st, 1);
        uint8_t hash[S3S_AUDIT__DIGEST_LEN];
        *bad_seq = last->seq + 1;
        if (seq > (int64_t)last->seq) {
            snprintf(v->why, sizeof(v->why),
                     "records after seq %llu are missing (the chain's head is at seq %lld)",
                     (unsigned long long)last->seq, (long long)seq);
            r = s3s_err(S3S_ERR_AUDIT_BROKEN);
        } else if (seq != (int64_t)last->seq || hex.len != S3S_AUDIT__HEX_LEN ||
                   !s3s_hex_decode(hex, hash, S3S_AUDIT__DIGEST_LEN) ||
                   memcmp(hash, last->hash, S3S_AUDIT__DIGEST_LEN) != 0) {
            *bad_seq = last->seq ? last->seq : 1;
            snprintf(v->why, sizeof(v->why),
                     "the chain's head (seq %lld) does not name its newest record", (long long)seq);
            r = s3s_err(S3S_ERR_AUDIT_BROKEN);
        }
    } else if (rc == S3S_STORE_DONE) {
        *bad_seq = last->seq ? last->seq : 1;
        snprintf(v->why, sizeof(v->why), "%s",
                 last->seq ? "the chain has no head row" : "no records of this instance");
        r = s3s_err(S3S_ERR_AUDIT_BROKEN);
    } else {
        r = s3s_err(s3s_store_rc_error(rc, S3S_ERR_KEYSTORE));
    }
    s3s_store_finalize(st);
    return r;
}

/* One instance's chain; *broken when it is. */
static s3s_result s_verify_chain(struct s_verify *v, const char *instance, bool *broken)
{
    struct s3s_audit__link last = {0};
    uint64_t bad_seq = 0;
    v->why[0] = '\0';
    s3s_result r = s_verify_records(v, instance, &last, &bad_seq);
    if (s3s_is_ok(r)) {
        r = s_verify_head(v, instance, &last, &bad_seq);
    }
    *broken = r.code == S3S_ERR_AUDIT_BROKEN;
    if (s3s_is_ok(r) || *broken) {
        s_report(v, instance, &last, bad_seq, *broken);
        return s3s_ok();
    }
    return r;
}

/* Every instance that has a head or a record, in name order. */
static s3s_result s_instances(struct s_verify *v, char ***out, size_t *n)
{
    *out = NULL;
    *n = 0;
    struct s3s_store_stmt *st = NULL;
    S3S_GUARD(s3s_store_prepare(v->store,
                                "SELECT instance FROM audit_heads UNION "
                                "SELECT instance FROM audit_records ORDER BY 1",
                                &st));
    s3s_result r = s3s_ok();
    size_t cap = 0;
    enum s3s_store_rc rc;
    while (s3s_is_ok(r) && (rc = s3s_store_step(st)) == S3S_STORE_ROW) {
        if (*n == cap) {
            cap = cap ? cap * 2 : 8;
            char **grown = s3s_realloc(*out, cap * sizeof(**out));
            if (!grown) {
                r = s3s_err(S3S_ERR_NOMEM);
                break;
            }
            *out = grown;
        }
        const char *name = s3s_store_column_str(st, 0);
        (*out)[*n] = s3s_strdup(name ? name : "");
        r = (*out)[*n] ? s3s_ok() : s3s_err(S3S_ERR_NOMEM);
        *n += s3s_is_ok(r);
    }
    if (s3s_is_ok(r) && rc != S3S_STORE_DONE) {
        r = s3s_err(s3s_store_rc_error(rc, S3S_ERR_KEYSTORE));
    }
    s3s_store_finalize(st);
    return r;
}

static void s_instances_free(char **list, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        s3s_free(&list[i]);
    }
    s3s_free(&list);
}

/* Inside one read transaction: one snapshot for every chain. */
static s3s_result s_verify_all(struct s_verify *v, const char *instance, size_t *chains,
                               bool *any_broken)
{
    char **names = NULL;
    size_t n = 0;
    s3s_result r = instance ? s3s_ok() : s_instances(v, &names, &n);
    for (size_t i = 0; s3s_is_ok(r) && i < (instance ? 1 : n); i++) {
        bool broken = false;
        r = s_verify_chain(v, instance ? instance : names[i], &broken);
        *any_broken |= broken;
        *chains += s3s_is_ok(r);
    }
    s_instances_free(names, n);
    return r;
}

s3s_result s3s_audit_verify_keystore(const char *location, const char *instance,
                                     s3s_audit_chain_fn *fn, void *ctx, size_t *chains,
                                     char *why, size_t why_len)
{
    S3S_ENSURE_REF(location);
    S3S_ENSURE_REF(fn);
    S3S_ENSURE_REF(chains);
    *chains = 0;
    struct s_verify v = {.fn = fn, .ctx = ctx};
    S3S_GUARD(s_store_open(location, false, &v.store, why, why_len));
    char loc[256];
    s3s_store_location_display(location, loc, sizeof(loc));
    bool any_broken = false;
    s3s_result r = s3s_store_begin(v.store, S3S_STORE_READ);
    if (s3s_is_ok(r)) {
        r = s_verify_all(&v, instance, chains, &any_broken);
        s3s_store_rollback(v.store); /* nothing was changed */
    }
    if (s3s_failed(r)) {
        s3s_keystore__why(why, why_len, "keystore %s: cannot read the audit records: %s", loc,
                          r.code == S3S_ERR_NOMEM ? "out of memory"
                                                  : v.store->ops->errmsg(v.store));
    }
    s3s_store_close(v.store);
    S3S_GUARD(r);
    S3S_ENSURE(!any_broken, S3S_ERR_AUDIT_BROKEN);
    return s3s_ok();
}
