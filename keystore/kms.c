/*
 * kms.c - KMS keys in the embedded keystore (kms.h): the kms_keys,
 * kms_key_versions and kms_aliases tables (created with the rest of the
 * schema in keystore.c), their changes, the snapshot servers load, AWS's
 * resolution of a KeyId, and the KeyMetadata and default policy JSON.
 *
 * Every change is one BEGIN IMMEDIATE transaction that reads the key again
 * under the write lock, checks the state rules, writes, and bumps the
 * generation counter (meta row 'kms_generation') before it commits, so
 * processes sharing the file never act on a stale view and servers notice
 * a change by reading one number. Key material is generated, sealed and
 * opened only through keystore_private.h, never held in the clear longer
 * than a call, and sealed with its row's identity "kms-key:<id>:<version>"
 * as associated data so it cannot be moved to another key or version.
 */
#include <json-c/json.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "keystore/keystore_private.h"
#include "keystore/kms.h"
#include "keystore/policy.h"
#include "keystore/policy_private.h"

#define S_ALIAS_PREFIX "alias/"
#define S_RESERVED_ALIAS_PREFIX "alias/aws/"
#define S_MAX_ALIAS_NAME_LEN 250
#define S_MAX_REGION_LEN 64
#define S_ARN_PREFIX "arn:aws:kms:"
#define S_DAY_S 86400LL
/* "kms-key:" + id + ":" + a 32-bit version + NUL */
#define S_AAD_LEN (8 + S3S_KMS_KEY_ID_LEN + 1 + 10 + 1)
/* AWS's description of every account's aws/s3 key. */
#define S_DEFAULT_KEY_DESCRIPTION \
    "Default key that protects my S3 objects when no other key is defined"

/* ------------------------------------------------------------------ names */

const char *s3s_kms_state_name(enum s3s_kms_state s)
{
    switch (s) {
    case S3S_KMS_ENABLED:
        return "Enabled";
    case S3S_KMS_DISABLED:
        return "Disabled";
    case S3S_KMS_PENDING_DELETION:
        return "PendingDeletion";
    default:
        return "Unavailable";
    }
}

static bool s_digits(const char *s, size_t n)
{
    if (!s || strlen(s) != n) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return false;
        }
    }
    return true;
}

static bool s_account_valid(const char *account) { return s_digits(account, 12); }

/* A region goes into ARNs: no ':' or '/' that would change their shape. */
static bool s_region_valid(const char *region)
{
    size_t n = region ? strlen(region) : 0;
    if (n == 0 || n > S_MAX_REGION_LEN) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char c = region[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '-' || c == '_';
        if (!ok) {
            return false;
        }
    }
    return true;
}

/* alias/NAME with NAME of 1..250 of [A-Za-z0-9/_-] (AWS's pattern). */
static bool s_alias_well_formed(const char *alias)
{
    if (!alias || strncmp(alias, S_ALIAS_PREFIX, strlen(S_ALIAS_PREFIX)) != 0) {
        return false;
    }
    const char *name = alias + strlen(S_ALIAS_PREFIX);
    size_t n = strlen(name);
    if (n == 0 || n > S_MAX_ALIAS_NAME_LEN) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '/' || c == '_' || c == '-';
        if (!ok) {
            return false;
        }
    }
    return true;
}

static bool s_alias_reserved(const char *alias)
{
    return strncmp(alias, S_RESERVED_ALIAS_PREFIX, strlen(S_RESERVED_ALIAS_PREFIX)) == 0;
}

bool s3s_kms_alias_name_valid(const char *alias)
{
    return s_alias_well_formed(alias) && !s_alias_reserved(alias);
}

s3s_result s3s_kms_alias_arn(const char *region, const char *account, const char *alias,
                             struct s3s_buf *out)
{
    S3S_ENSURE(region && account && alias && out, S3S_ERR_INVALID_ARG);
    return s3s_buf_appendf(out, S_ARN_PREFIX "%s:%s:%s", region, account, alias);
}

/* A random (version 4, RFC 9562) UUID in lower-case hex. */
static s3s_result s_new_key_id(char out[S3S_KMS_KEY_ID_LEN + 1])
{
    uint8_t b[16];
    S3S_ENSURE(RAND_bytes(b, sizeof(b)) == 1, S3S_ERR_INTERNAL);
    b[6] = (uint8_t)((b[6] & 0x0f) | 0x40); /* version 4 */
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80); /* the RFC's variant */
    snprintf(out, S3S_KMS_KEY_ID_LEN + 1,
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
             b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
             b[15]);
    return s3s_ok();
}

static void s_aad_key(const char *id, uint32_t version, char out[S_AAD_LEN])
{
    snprintf(out, S_AAD_LEN, "kms-key:%s:%u", id, version);
}

/* ------------------------------------------------------------ key structs */

void s3s_kms_key_clean_up(struct s3s_kms_key *k)
{
    if (!k) {
        return;
    }
    s3s_free(&k->region);
    s3s_free(&k->arn);
    s3s_free(&k->description);
    s3s_free(&k->policy);
    for (size_t i = 0; k->aliases && i < k->n_aliases; i++) {
        s3s_free(&k->aliases[i]);
    }
    s3s_free(&k->aliases);
    memset(k, 0, sizeof(*k));
}

/* Makes room for one more element in a growing array: `arrp` is the
 * address of the array's pointer (of any element type; it is read and
 * written with memcpy, so no pointer is accessed through another type). */
static s3s_result s_grow(void *arrp, size_t *cap, size_t len, size_t elem_size)
{
    if (len < *cap) {
        return s3s_ok();
    }
    size_t ncap = *cap ? *cap * 2 : 8;
    S3S_ENSURE(ncap <= SIZE_MAX / elem_size, S3S_ERR_NOMEM);
    void *arr;
    memcpy(&arr, arrp, sizeof(arr));
    void *grown = s3s_realloc(arr, ncap * elem_size);
    S3S_ENSURE(grown != NULL, S3S_ERR_NOMEM);
    memcpy(arrp, &grown, sizeof(grown));
    *cap = ncap;
    return s3s_ok();
}

static s3s_result s_key_add_alias(struct s3s_kms_key *k, const char *name)
{
    /* Exact size: a key has few aliases. */
    char **grown = s3s_realloc(k->aliases, (k->n_aliases + 1) * sizeof(*grown));
    S3S_ENSURE(grown != NULL, S3S_ERR_NOMEM);
    k->aliases = grown;
    k->aliases[k->n_aliases] = s3s_strdup(name);
    S3S_ENSURE(k->aliases[k->n_aliases] != NULL, S3S_ERR_NOMEM);
    k->n_aliases++;
    return s3s_ok();
}

/* ---------------------------------------------------------- transactions */

static s3s_result s_read_begin(struct s3s_keystore *ks)
{
    return s3s_keystore__begin(ks, S3S_STORE_READ);
}

/* The writers' lock up front: a change reads the key again under it, so two
 * processes never both act on what they read before. */
static s3s_result s_write_begin(struct s3s_keystore *ks)
{
    return s3s_keystore__begin(ks, S3S_STORE_WRITE);
}

#define S_GENERATION S3S_KEYSTORE__KMS_GENERATION

/* Bumps the counter in the open transaction; listeners hear of it when the
 * transaction commits. */
static s3s_result s_bump_generation(struct s3s_keystore *ks)
{
    return ks->store->ops->generation_bump(ks->store, S_GENERATION, S3S_KEYSTORE_CHANGED_KMS);
}

/* Ends a write transaction: when it went well and `changed` something, the
 * generation is bumped in it; then COMMIT, or ROLLBACK on any failure. */
static s3s_result s_write_end(struct s3s_keystore *ks, s3s_result res, bool changed)
{
    if (s3s_is_ok(res) && changed) {
        res = s_bump_generation(ks);
    }
    return s3s_keystore__txn_end(ks, res);
}

static s3s_result s_prepare(struct s3s_keystore *ks, const char *sql, struct s3s_store_stmt **st)
{
    return s3s_store_prepare(ks->store, sql, st);
}

/* Steps a write statement to its end. A constraint violation (a duplicate
 * primary key) is `on_conflict`. */
static s3s_result s_step_end(struct s3s_store_stmt *st, enum s3s_error on_conflict)
{
    enum s3s_store_rc rc = s3s_store_step(st);
    S3S_ENSURE(rc == S3S_STORE_DONE, s3s_store_rc_error(rc, on_conflict));
    return s3s_ok();
}

/* s_step_end, then finalises the statement. */
static s3s_result s_step_done(struct s3s_store_stmt *st, enum s3s_error on_conflict)
{
    s3s_result res = s_step_end(st, on_conflict);
    s3s_store_finalize(st);
    return res;
}

/* ------------------------------------------------------------ key reads */

/* A key's columns with its newest version (number and creation time). */
#define S_KEY_SELECT                                                                        \
    "SELECT k.id, k.account, k.region, k.arn, k.description, k.state, k.aws_managed, "     \
    "k.created, k.deletion_date, k.rotation_period_s, k.policy, v.version, v.created "     \
    "FROM kms_keys k JOIN kms_key_versions v ON v.key_id = k.id AND v.version = "          \
    "(SELECT MAX(version) FROM kms_key_versions WHERE key_id = k.id) "

/* Fills k from a row of S_KEY_SELECT. A value no API could have stored is
 * a damaged file (S3S_ERR_KEYSTORE). */
static s3s_result s_key_from_row(struct s3s_store_stmt *st, struct s3s_kms_key *k)
{
    memset(k, 0, sizeof(*k));
    const char *id = s3s_store_column_str(st, 0);
    const char *account = s3s_store_column_str(st, 1);
    int64_t state = s3s_store_column_int64(st, 5);
    int64_t version = s3s_store_column_int64(st, 11);
    S3S_ENSURE(id && strlen(id) == S3S_KMS_KEY_ID_LEN && s_account_valid(account) &&
                   state >= S3S_KMS_ENABLED && state <= S3S_KMS_PENDING_DELETION &&
                   version >= 1 && version <= UINT32_MAX,
               S3S_ERR_KEYSTORE);
    memcpy(k->id, id, S3S_KMS_KEY_ID_LEN + 1);
    memcpy(k->account, account, sizeof(k->account));
    k->state = (enum s3s_kms_state)state;
    k->aws_managed = s3s_store_column_int64(st, 6) != 0;
    k->created = s3s_store_column_int64(st, 7);
    k->deletion_date = s3s_store_column_int64(st, 8);
    k->rotation_period_s = s3s_store_column_int64(st, 9);
    k->current_version = (uint32_t)version;
    k->current_created = s3s_store_column_int64(st, 12);
    s3s_result res = s3s_keystore__column_text(st, 2, &k->region);
    if (s3s_is_ok(res)) {
        res = s3s_keystore__column_text(st, 3, &k->arn);
    }
    if (s3s_is_ok(res)) {
        res = s3s_keystore__column_text(st, 4, &k->description);
    }
    if (s3s_is_ok(res)) {
        res = s3s_keystore__column_text(st, 10, &k->policy);
    }
    if (s3s_is_ok(res) && (!k->region || !k->arn || !k->description)) {
        res = s3s_err(S3S_ERR_KEYSTORE); /* NOT NULL columns */
    }
    if (s3s_failed(res)) {
        s3s_kms_key_clean_up(k);
    }
    return res;
}

/* One key's metadata with its aliases, inside the caller's transaction.
 * S3S_ERR_KMS_NOT_FOUND when absent; on error *out is empty. */
static s3s_result s_load_key(struct s3s_keystore *ks, const char *id, struct s3s_kms_key *out)
{
    memset(out, 0, sizeof(*out));
    struct s3s_store_stmt *st = NULL;
    S3S_GUARD(s_prepare(ks, S_KEY_SELECT "WHERE k.id = ?", &st));
    s3s_store_bind_str(st, 1, id);
    enum s3s_store_rc rc = s3s_store_step(st);
    s3s_result res = rc == S3S_STORE_ROW    ? s_key_from_row(st, out)
                     : rc == S3S_STORE_DONE ? s3s_err(S3S_ERR_KMS_NOT_FOUND)
                                         : s3s_err(s3s_store_rc_error(rc, S3S_ERR_KEYSTORE));
    s3s_store_finalize(st);
    if (s3s_failed(res)) {
        return res;
    }
    res = s_prepare(ks, "SELECT name FROM kms_aliases WHERE key_id = ? ORDER BY name", &st);
    if (s3s_is_ok(res)) {
        s3s_store_bind_str(st, 1, id);
        while (s3s_is_ok(res) && (rc = s3s_store_step(st)) == S3S_STORE_ROW) {
            const char *name = s3s_store_column_str(st, 0);
            res = name ? s_key_add_alias(out, name) : s3s_err(S3S_ERR_KEYSTORE);
        }
        if (s3s_is_ok(res) && rc != S3S_STORE_DONE) {
            res = s3s_err(s3s_store_rc_error(rc, S3S_ERR_KEYSTORE));
        }
        s3s_store_finalize(st);
    }
    if (s3s_failed(res)) {
        s3s_kms_key_clean_up(out);
    }
    return res;
}

/* The key an alias of `account` names, inside the caller's transaction:
 * *found false (and *out empty) when the alias does not exist. */
static s3s_result s_load_alias_target(struct s3s_keystore *ks, const char *account,
                                      const char *alias, struct s3s_kms_key *out, bool *found)
{
    *found = false;
    memset(out, 0, sizeof(*out));
    struct s3s_store_stmt *st = NULL;
    S3S_GUARD(s_prepare(ks, "SELECT key_id FROM kms_aliases WHERE account = ? AND name = ?",
                        &st));
    s3s_store_bind_str(st, 1, account);
    s3s_store_bind_str(st, 2, alias);
    enum s3s_store_rc rc = s3s_store_step(st);
    char *key_id = NULL;
    s3s_result res = rc == S3S_STORE_ROW    ? s3s_keystore__column_text(st, 0, &key_id)
                     : rc == S3S_STORE_DONE ? s3s_ok()
                                         : s3s_err(s3s_store_rc_error(rc, S3S_ERR_KEYSTORE));
    s3s_store_finalize(st);
    if (s3s_is_ok(res) && key_id) {
        res = s_load_key(ks, key_id, out);
        *found = s3s_is_ok(res);
    }
    s3s_free(&key_id);
    return res;
}

static s3s_result s_read_generation(struct s3s_keystore *ks, uint64_t *gen)
{
    return ks->store->ops->generation_get(ks->store, S_GENERATION, gen);
}

/* ---------------------------------------------------------- state rules */

/* What rotation (on demand, or setting a period) needs, with AWS's errors. */
static s3s_result s_require_enabled(const struct s3s_kms_key *k)
{
    switch (k->state) {
    case S3S_KMS_ENABLED:
        return s3s_ok();
    case S3S_KMS_DISABLED:
        S3S_BAIL(S3S_ERR_KMS_DISABLED);
    case S3S_KMS_PENDING_DELETION:
    default:
        S3S_BAIL(S3S_ERR_KMS_INVALID_STATE);
    }
}

static s3s_result s_require_not_pending(const struct s3s_kms_key *k)
{
    S3S_ENSURE(k->state != S3S_KMS_PENDING_DELETION, S3S_ERR_KMS_INVALID_STATE);
    return s3s_ok();
}

static bool s_rotation_period_valid(int64_t period_s)
{
    return period_s == 0 || (period_s >= S3S_KMS_MIN_ROTATION_DAYS * S_DAY_S &&
                             period_s <= S3S_KMS_MAX_ROTATION_DAYS * S_DAY_S);
}

/* -------------------------------------------------------------- writes */

/* Adds material version `version` of key `id`, inside the caller's
 * transaction. */
static s3s_result s_insert_version(struct s3s_keystore *ks, const char *id, uint32_t version,
                                   int64_t created)
{
    char aad[S_AAD_LEN];
    s_aad_key(id, version, aad);
    struct s3s_buf sealed = {0};
    struct s3s_store_stmt *st = NULL;
    s3s_result res = s3s_buf_init(&sealed, 64, 256);
    if (s3s_is_ok(res)) {
        res = s3s_keystore__new_sealed_key(ks, aad, &sealed);
    }
    if (s3s_is_ok(res)) {
        res = s_prepare(ks,
                        "INSERT INTO kms_key_versions(key_id, version, sealed, created) "
                        "VALUES (?, ?, ?, ?)",
                        &st);
    }
    if (s3s_is_ok(res)) {
        s3s_store_bind_str(st, 1, id);
        s3s_store_bind_int64(st, 2, version);
        s3s_store_bind_blob(st, 3, sealed.ptr, sealed.len);
        s3s_store_bind_int64(st, 4, created);
        res = s_step_done(st, S3S_ERR_KEYSTORE);
    }
    s3s_buf_clean_up(&sealed);
    return res;
}

static s3s_result s_insert_alias(struct s3s_keystore *ks, const char *account, const char *alias,
                                 const char *key_id, int64_t created)
{
    struct s3s_store_stmt *st = NULL;
    S3S_GUARD(s_prepare(ks,
                        "INSERT INTO kms_aliases(account, name, key_id, created) "
                        "VALUES (?, ?, ?, ?)",
                        &st));
    s3s_store_bind_str(st, 1, account);
    s3s_store_bind_str(st, 2, alias);
    s3s_store_bind_str(st, 3, key_id);
    s3s_store_bind_int64(st, 4, created);
    /* The primary key (account, name) makes a duplicate fail here, so two
     * processes creating one alias cannot both succeed. */
    return s_step_done(st, S3S_ERR_KMS_ALREADY_EXISTS);
}

static s3s_result s_insert_key(struct s3s_keystore *ks, const struct s3s_kms_create_opts *o,
                               const char *id, const char *arn, int64_t created)
{
    struct s3s_store_stmt *st = NULL;
    S3S_GUARD(s_prepare(ks,
                        "INSERT INTO kms_keys(id, account, region, arn, description, state, "
                        "aws_managed, created, rotation_period_s, policy) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        &st));
    s3s_store_bind_str(st, 1, id);
    s3s_store_bind_str(st, 2, o->account);
    s3s_store_bind_str(st, 3, o->region);
    s3s_store_bind_str(st, 4, arn);
    s3s_store_bind_str(st, 5, o->description ? o->description : "");
    s3s_store_bind_int64(st, 6, S3S_KMS_ENABLED);
    s3s_store_bind_int64(st, 7, o->aws_managed ? 1 : 0);
    s3s_store_bind_int64(st, 8, created);
    s3s_store_bind_int64(st, 9, o->rotation_period_s);
    if (o->policy) {
        s3s_store_bind_str(st, 10, o->policy);
    } else {
        s3s_store_bind_null(st, 10);
    }
    return s_step_done(st, S3S_ERR_KEYSTORE);
}

static s3s_result s_update_state(struct s3s_keystore *ks, const char *id,
                                 enum s3s_kms_state state, int64_t deletion_date)
{
    struct s3s_store_stmt *st = NULL;
    S3S_GUARD(s_prepare(ks, "UPDATE kms_keys SET state = ?, deletion_date = ? WHERE id = ?",
                        &st));
    s3s_store_bind_int64(st, 1, state);
    s3s_store_bind_int64(st, 2, deletion_date);
    s3s_store_bind_str(st, 3, id);
    return s_step_done(st, S3S_ERR_KEYSTORE);
}

/* Runs an UPDATE of one key: `sql` sets one column from parameter 1 (bound
 * to `text` when it is not NULL, else to `number`) where id is parameter 2. */
static s3s_result s_update_column(struct s3s_keystore *ks, const char *id, const char *sql,
                                  const char *text, int64_t number)
{
    struct s3s_store_stmt *st = NULL;
    S3S_GUARD(s_prepare(ks, sql, &st));
    if (text) {
        s3s_store_bind_str(st, 1, text);
    } else {
        s3s_store_bind_int64(st, 1, number);
    }
    s3s_store_bind_str(st, 2, id);
    return s_step_done(st, S3S_ERR_KEYSTORE);
}

/* ------------------------------------------------------------- creation */

static s3s_result s_check_create_opts(const struct s3s_kms_create_opts *o)
{
    S3S_ENSURE(s_account_valid(o->account), S3S_ERR_INVALID_ARG);
    S3S_ENSURE(s_region_valid(o->region), S3S_ERR_INVALID_ARG);
    S3S_ENSURE(!o->description ||
                   (strlen(o->description) <= S3S_KMS_MAX_DESCRIPTION_LEN &&
                    s3s_keystore__utf8_valid(s3s_cur_from_str(o->description))),
               S3S_ERR_INVALID_ARG);
    S3S_ENSURE(!o->alias || (s_alias_well_formed(o->alias) &&
                             (o->aws_managed || !s_alias_reserved(o->alias))),
               S3S_ERR_INVALID_ARG);
    S3S_ENSURE(s_rotation_period_valid(o->rotation_period_s), S3S_ERR_INVALID_ARG);
    S3S_ENSURE(!o->policy || strlen(o->policy) <= S3S_POLICY_MAX_LEN,
               S3S_ERR_KMS_MALFORMED_POLICY);
    return s3s_ok();
}

/* Creates the key, its version 1 and its alias inside the caller's
 * transaction, and reads it back into *out. */
static s3s_result s_create(struct s3s_keystore *ks, const struct s3s_kms_create_opts *o,
                           struct s3s_kms_key *out)
{
    char id[S3S_KMS_KEY_ID_LEN + 1];
    S3S_GUARD(s_new_key_id(id));
    struct s3s_buf arn = {0};
    const char *arn_str = NULL;
    int64_t now = (int64_t)time(NULL);
    s3s_result res = s3s_buf_init(&arn, 128, 256);
    if (s3s_is_ok(res)) {
        res = s3s_buf_appendf(&arn, S_ARN_PREFIX "%s:%s:key/%s", o->region, o->account, id);
    }
    if (s3s_is_ok(res)) {
        res = s3s_buf_cstr(&arn, &arn_str);
    }
    if (s3s_is_ok(res)) {
        res = s_insert_key(ks, o, id, arn_str, now);
    }
    if (s3s_is_ok(res)) {
        res = s_insert_version(ks, id, 1, now);
    }
    if (s3s_is_ok(res) && o->alias) {
        res = s_insert_alias(ks, o->account, o->alias, id, now);
    }
    if (s3s_is_ok(res)) {
        res = s_load_key(ks, id, out);
    }
    s3s_buf_clean_up(&arn);
    return res;
}

s3s_result s3s_kms_create(struct s3s_keystore *ks, const struct s3s_kms_create_opts *o,
                          struct s3s_kms_key *out)
{
    S3S_ENSURE(ks && o && out, S3S_ERR_INVALID_ARG);
    memset(out, 0, sizeof(*out));
    S3S_GUARD(s_check_create_opts(o));
    S3S_GUARD(s_write_begin(ks));
    s3s_result res = s_write_end(ks, s_create(ks, o, out), true);
    if (s3s_failed(res)) {
        s3s_kms_key_clean_up(out);
    }
    return res;
}

s3s_result s3s_kms_default_key(struct s3s_keystore *ks, const char *account, const char *region,
                               int64_t rotation_period_s, struct s3s_kms_key *out,
                               bool *created)
{
    S3S_ENSURE(ks && out, S3S_ERR_INVALID_ARG);
    memset(out, 0, sizeof(*out));
    if (created) {
        *created = false;
    }
    const struct s3s_kms_create_opts o = {
        .account = account,
        .region = region,
        .description = S_DEFAULT_KEY_DESCRIPTION,
        .alias = S3S_KMS_DEFAULT_ALIAS,
        .rotation_period_s = rotation_period_s,
        .aws_managed = true,
    };
    S3S_GUARD(s_check_create_opts(&o));

    /* Nearly always the key exists: find it without the write lock. */
    bool found = false;
    S3S_GUARD(s_read_begin(ks));
    s3s_result res = s3s_keystore__txn_end(
        ks, s_load_alias_target(ks, account, S3S_KMS_DEFAULT_ALIAS, out, &found));
    if (s3s_failed(res) || found) {
        return res;
    }
    /* Absent: look again under the write lock, so that of two processes
     * racing here the second finds the first one's key. */
    S3S_GUARD(s_write_begin(ks));
    res = s_load_alias_target(ks, account, S3S_KMS_DEFAULT_ALIAS, out, &found);
    if (s3s_is_ok(res) && !found) {
        res = s_create(ks, &o, out);
    }
    res = s_write_end(ks, res, !found);
    if (s3s_failed(res)) {
        s3s_kms_key_clean_up(out);
    } else if (created) {
        *created = !found;
    }
    return res;
}

s3s_result s3s_kms_describe(struct s3s_keystore *ks, const char *id, struct s3s_kms_key *out)
{
    S3S_ENSURE(ks && id && out, S3S_ERR_INVALID_ARG);
    memset(out, 0, sizeof(*out));
    /* A read transaction: the key and its aliases from one snapshot. */
    S3S_GUARD(s_read_begin(ks));
    s3s_result res = s3s_keystore__txn_end(ks, s_load_key(ks, id, out));
    if (s3s_failed(res)) {
        s3s_kms_key_clean_up(out);
    }
    return res;
}

/* ------------------------------------------------------- state changes */

static s3s_result s_set_enabled(struct s3s_keystore *ks, const char *id, bool enabled)
{
    struct s3s_kms_key k;
    S3S_GUARD(s_load_key(ks, id, &k));
    s3s_result res = s_require_not_pending(&k);
    if (s3s_is_ok(res)) {
        res = s_update_state(ks, id, enabled ? S3S_KMS_ENABLED : S3S_KMS_DISABLED, 0);
    }
    s3s_kms_key_clean_up(&k);
    return res;
}

s3s_result s3s_kms_set_enabled(struct s3s_keystore *ks, const char *id, bool enabled)
{
    S3S_ENSURE(ks && id, S3S_ERR_INVALID_ARG);
    S3S_GUARD(s_write_begin(ks));
    return s_write_end(ks, s_set_enabled(ks, id, enabled), true);
}

/* Adds version newest+1, created at `now`, to a key already read under the
 * write lock. */
static s3s_result s_add_version(struct s3s_keystore *ks, const struct s3s_kms_key *k,
                                int64_t now, uint32_t *new_version)
{
    S3S_ENSURE(k->current_version < UINT32_MAX, S3S_ERR_KEYSTORE);
    S3S_GUARD(s_insert_version(ks, k->id, k->current_version + 1, now));
    if (new_version) {
        *new_version = k->current_version + 1;
    }
    return s3s_ok();
}

static s3s_result s_rotate(struct s3s_keystore *ks, const char *id, uint32_t *new_version)
{
    struct s3s_kms_key k;
    S3S_GUARD(s_load_key(ks, id, &k));
    s3s_result res = s_require_enabled(&k);
    if (s3s_is_ok(res)) {
        res = s_add_version(ks, &k, (int64_t)time(NULL), new_version);
    }
    s3s_kms_key_clean_up(&k);
    return res;
}

s3s_result s3s_kms_rotate(struct s3s_keystore *ks, const char *id, uint32_t *new_version)
{
    S3S_ENSURE(ks && id && new_version, S3S_ERR_INVALID_ARG);
    S3S_GUARD(s_write_begin(ks));
    return s_write_end(ks, s_rotate(ks, id, new_version), true);
}

static bool s_rotation_due(const struct s3s_kms_key *k, int64_t now)
{
    return k->state == S3S_KMS_ENABLED && k->rotation_period_s > 0 &&
           now - k->current_created >= k->rotation_period_s;
}

struct s_key_id {
    char id[S3S_KMS_KEY_ID_LEN + 1];
};

/* The ids of the keys due for rotation at `now` (one statement, so one
 * implicit read transaction). */
static s3s_result s_due_ids(struct s3s_keystore *ks, int64_t now, struct s_key_id **ids,
                            size_t *n)
{
    *ids = NULL;
    *n = 0;
    struct s3s_store_stmt *st = NULL;
    S3S_GUARD(s_prepare(ks,
                        S_KEY_SELECT "WHERE k.state = ? AND k.rotation_period_s > 0 "
                                     "AND ? - v.created >= k.rotation_period_s ORDER BY k.id",
                        &st));
    s3s_store_bind_int64(st, 1, S3S_KMS_ENABLED);
    s3s_store_bind_int64(st, 2, now);
    s3s_result res = s3s_ok();
    size_t cap = 0;
    enum s3s_store_rc rc = S3S_STORE_DONE;
    while (s3s_is_ok(res) && (rc = s3s_store_step(st)) == S3S_STORE_ROW) {
        const char *id = s3s_store_column_str(st, 0);
        res = id && strlen(id) == S3S_KMS_KEY_ID_LEN ? s_grow(ids, &cap, *n, sizeof(**ids))
                                                      : s3s_err(S3S_ERR_KEYSTORE);
        if (s3s_is_ok(res)) {
            memcpy((*ids)[(*n)++].id, id, S3S_KMS_KEY_ID_LEN + 1);
        }
    }
    if (s3s_is_ok(res) && rc != S3S_STORE_DONE) {
        res = s3s_err(s3s_store_rc_error(rc, S3S_ERR_KEYSTORE));
    }
    s3s_store_finalize(st);
    if (s3s_failed(res)) {
        s3s_free(ids);
        *n = 0;
    }
    return res;
}

/* Rotates one key if it is still due, inside the caller's transaction:
 * another server may have rotated it since the candidates were read. */
/* Rotates key `id` if it is still due; *version is then its new version
 * and arn (a new string) its ARN, for the caller's report. */
static s3s_result s_rotate_if_due(struct s3s_keystore *ks, const char *id, int64_t now,
                                  uint32_t *version, char **arn)
{
    *version = 0;
    struct s3s_kms_key k;
    s3s_result res = s_load_key(ks, id, &k);
    if (res.code == S3S_ERR_KMS_NOT_FOUND) {
        return s3s_ok(); /* destroyed meanwhile: nothing to rotate */
    }
    S3S_GUARD(res);
    if (s_rotation_due(&k, now)) {
        res = s_add_version(ks, &k, now, version);
    }
    if (s3s_is_ok(res) && *version) {
        *arn = k.arn;
        k.arn = NULL;
    }
    s3s_kms_key_clean_up(&k);
    return res;
}

s3s_result s3s_kms_rotate_due(struct s3s_keystore *ks, int64_t now, size_t *rotated,
                              s3s_kms_key_event_fn *each, void *ctx)
{
    S3S_ENSURE(ks && rotated, S3S_ERR_INVALID_ARG);
    *rotated = 0;
    struct s_key_id *ids = NULL;
    size_t n = 0;
    S3S_GUARD(s3s_keystore__result(ks, s_due_ids(ks, now, &ids, &n)));
    s3s_result res = s3s_ok();
    for (size_t i = 0; i < n && s3s_is_ok(res); i++) {
        uint32_t version = 0;
        char *arn = NULL;
        res = s_write_begin(ks);
        if (s3s_is_ok(res)) {
            res = s_rotate_if_due(ks, ids[i].id, now, &version, &arn);
            res = s_write_end(ks, res, version > 0);
        }
        if (s3s_is_ok(res) && version) {
            (*rotated)++;
            if (each) {
                each(ctx, arn, version);
            }
        }
        s3s_free(&arn);
    }
    s3s_free(&ids);
    return res;
}

static s3s_result s_set_rotation(struct s3s_keystore *ks, const char *id, int64_t period_s)
{
    struct s3s_kms_key k;
    S3S_GUARD(s_load_key(ks, id, &k));
    s3s_result res = s_require_enabled(&k);
    if (s3s_is_ok(res)) {
        res = s_update_column(ks, id, "UPDATE kms_keys SET rotation_period_s = ? WHERE id = ?",
                              NULL, period_s);
    }
    s3s_kms_key_clean_up(&k);
    return res;
}

s3s_result s3s_kms_set_rotation(struct s3s_keystore *ks, const char *id, int64_t period_s)
{
    S3S_ENSURE(ks && id, S3S_ERR_INVALID_ARG);
    S3S_ENSURE(s_rotation_period_valid(period_s), S3S_ERR_INVALID_ARG);
    S3S_GUARD(s_write_begin(ks));
    return s_write_end(ks, s_set_rotation(ks, id, period_s), true);
}

static s3s_result s_schedule_deletion(struct s3s_keystore *ks, const char *id,
                                      int64_t deletion_date)
{
    struct s3s_kms_key k;
    S3S_GUARD(s_load_key(ks, id, &k));
    /* The default key belongs to s3seal, as AWS managed keys belong to AWS:
     * objects stored without naming a key depend on it. */
    s3s_result res = k.aws_managed ? s3s_err(S3S_ERR_KMS_INVALID_STATE) : s_require_not_pending(&k);
    if (s3s_is_ok(res)) {
        res = s_update_state(ks, id, S3S_KMS_PENDING_DELETION, deletion_date);
    }
    s3s_kms_key_clean_up(&k);
    return res;
}

s3s_result s3s_kms_schedule_deletion(struct s3s_keystore *ks, const char *id, int days,
                                     int64_t now, int64_t *deletion_date)
{
    S3S_ENSURE(ks && id && deletion_date, S3S_ERR_INVALID_ARG);
    S3S_ENSURE(days >= S3S_KMS_MIN_DELETION_DAYS && days <= S3S_KMS_MAX_DELETION_DAYS,
               S3S_ERR_INVALID_ARG);
    int64_t date = now + days * S_DAY_S;
    S3S_GUARD(s_write_begin(ks));
    S3S_GUARD(s_write_end(ks, s_schedule_deletion(ks, id, date), true));
    *deletion_date = date;
    return s3s_ok();
}

static s3s_result s_cancel_deletion(struct s3s_keystore *ks, const char *id)
{
    struct s3s_kms_key k;
    S3S_GUARD(s_load_key(ks, id, &k));
    s3s_result res = k.state == S3S_KMS_PENDING_DELETION
                         ? s_update_state(ks, id, S3S_KMS_DISABLED, 0)
                         : s3s_err(S3S_ERR_KMS_INVALID_STATE);
    s3s_kms_key_clean_up(&k);
    return res;
}

s3s_result s3s_kms_cancel_deletion(struct s3s_keystore *ks, const char *id)
{
    S3S_ENSURE(ks && id, S3S_ERR_INVALID_ARG);
    S3S_GUARD(s_write_begin(ks));
    return s_write_end(ks, s_cancel_deletion(ks, id), true);
}

/* Runs a statement with one integer parameter; counts the rows it changed. */
static s3s_result s_exec_int64(struct s3s_keystore *ks, const char *sql, int64_t v,
                               size_t *changed)
{
    struct s3s_store_stmt *st = NULL;
    S3S_GUARD(s_prepare(ks, sql, &st));
    s3s_store_bind_int64(st, 1, v);
    s3s_result res = s_step_end(st, S3S_ERR_KEYSTORE);
    *changed = s3s_is_ok(res) ? s3s_store_changes(st) : 0;
    s3s_store_finalize(st);
    return res;
}

#define S_DUE_FOR_DELETION "SELECT id FROM kms_keys WHERE state = 3 AND deletion_date <= ?1"

/* The ARNs of the keys a sweep at `now` destroys (a new array of *n new
 * strings). */
static s3s_result s_due_arns(struct s3s_keystore *ks, int64_t now, char ***arns, size_t *n)
{
    *arns = NULL;
    *n = 0;
    struct s3s_store_stmt *st = NULL;
    S3S_GUARD(s_prepare(ks, "SELECT arn FROM kms_keys WHERE state = 3 AND deletion_date <= ?",
                        &st));
    s3s_store_bind_int64(st, 1, now);
    s3s_result res = s3s_ok();
    size_t cap = 0;
    enum s3s_store_rc rc = S3S_STORE_DONE;
    while (s3s_is_ok(res) && (rc = s3s_store_step(st)) == S3S_STORE_ROW) {
        res = s_grow(arns, &cap, *n, sizeof(**arns));
        if (s3s_is_ok(res)) {
            res = s3s_keystore__column_text(st, 0, &(*arns)[*n]);
        }
        if (s3s_is_ok(res)) {
            (*n)++;
        }
    }
    if (s3s_is_ok(res) && rc != S3S_STORE_DONE) {
        res = s3s_err(s3s_store_rc_error(rc, S3S_ERR_KEYSTORE));
    }
    s3s_store_finalize(st);
    return res;
}

static void s_free_strings(char **list, size_t n)
{
    for (size_t i = 0; list && i < n; i++) {
        s3s_free(&list[i]);
    }
    s3s_free(&list);
}

static s3s_result s_sweep(struct s3s_keystore *ks, int64_t now, size_t *destroyed)
{
    size_t n = 0;
    S3S_GUARD(s_exec_int64(ks, "DELETE FROM kms_aliases WHERE key_id IN (" S_DUE_FOR_DELETION ")",
                           now, &n));
    S3S_GUARD(s_exec_int64(
        ks, "DELETE FROM kms_key_versions WHERE key_id IN (" S_DUE_FOR_DELETION ")", now, &n));
    return s_exec_int64(ks, "DELETE FROM kms_keys WHERE state = 3 AND deletion_date <= ?1", now,
                        destroyed);
}

s3s_result s3s_kms_sweep(struct s3s_keystore *ks, int64_t now, size_t *destroyed,
                         s3s_kms_key_event_fn *each, void *ctx)
{
    S3S_ENSURE(ks && destroyed, S3S_ERR_INVALID_ARG);
    _Static_assert(S3S_KMS_PENDING_DELETION == 3, "S_DUE_FOR_DELETION's state number");
    *destroyed = 0;
    size_t n = 0, n_arns = 0;
    char **arns = NULL;
    S3S_GUARD(s_write_begin(ks));
    s3s_result res = s_due_arns(ks, now, &arns, &n_arns);
    if (s3s_is_ok(res)) {
        res = s_sweep(ks, now, &n);
    }
    res = s_write_end(ks, res, n > 0);
    if (s3s_failed(res)) {
        s_free_strings(arns, n_arns);
        return res;
    }
    *destroyed = n;
    for (size_t i = 0; each && i < n_arns; i++) {
        each(ctx, arns[i], 0);
    }
    s_free_strings(arns, n_arns);
    if (n > 0) {
        /* The destroyed rows' sealed material must not linger in the
         * back end's files (best effort). */
        ks->store->ops->purge(ks->store);
    }
    return s3s_ok();
}

/* -------------------------------------------------------------- aliases */

static s3s_result s_alias_create(struct s3s_keystore *ks, const char *account, const char *alias,
                                 const char *key_id)
{
    struct s3s_kms_key k;
    S3S_GUARD(s_load_key(ks, key_id, &k));
    s3s_result res = strcmp(k.account, account) != 0 ? s3s_err(S3S_ERR_KMS_NOT_FOUND)
                     : k.aws_managed                  ? s3s_err(S3S_ERR_INVALID_ARG)
                                                      : s_require_not_pending(&k);
    if (s3s_is_ok(res)) {
        res = s_insert_alias(ks, account, alias, key_id, (int64_t)time(NULL));
    }
    s3s_kms_key_clean_up(&k);
    return res;
}

s3s_result s3s_kms_alias_create(struct s3s_keystore *ks, const char *account, const char *alias,
                                const char *key_id)
{
    S3S_ENSURE(ks && key_id && s_account_valid(account), S3S_ERR_INVALID_ARG);
    S3S_ENSURE(s3s_kms_alias_name_valid(alias), S3S_ERR_INVALID_ARG);
    S3S_GUARD(s_write_begin(ks));
    return s_write_end(ks, s_alias_create(ks, account, alias, key_id), true);
}

static s3s_result s_alias_delete(struct s3s_keystore *ks, const char *account, const char *alias)
{
    struct s3s_store_stmt *st = NULL;
    S3S_GUARD(s_prepare(ks, "DELETE FROM kms_aliases WHERE account = ? AND name = ?", &st));
    s3s_store_bind_str(st, 1, account);
    s3s_store_bind_str(st, 2, alias);
    s3s_result res = s_step_end(st, S3S_ERR_KEYSTORE);
    bool removed = s3s_is_ok(res) && s3s_store_changes(st) > 0;
    s3s_store_finalize(st);
    S3S_GUARD(res);
    S3S_ENSURE(removed, S3S_ERR_KMS_NOT_FOUND);
    return s3s_ok();
}

s3s_result s3s_kms_alias_delete(struct s3s_keystore *ks, const char *account, const char *alias)
{
    S3S_ENSURE(ks && s_account_valid(account), S3S_ERR_INVALID_ARG);
    S3S_ENSURE(s3s_kms_alias_name_valid(alias), S3S_ERR_INVALID_ARG);
    S3S_GUARD(s_write_begin(ks));
    return s_write_end(ks, s_alias_delete(ks, account, alias), true);
}

/* ------------------------------------------------------------- policies */

s3s_result s3s_kms_policy_get(struct s3s_keystore *ks, const char *id, char **out)
{
    S3S_ENSURE(ks && id && out, S3S_ERR_INVALID_ARG);
    *out = NULL;
    struct s3s_store_stmt *st = NULL;
    S3S_GUARD(s_prepare(ks, "SELECT policy FROM kms_keys WHERE id = ?", &st));
    s3s_store_bind_str(st, 1, id);
    enum s3s_store_rc rc = s3s_store_step(st);
    s3s_result res = rc == S3S_STORE_ROW    ? s3s_keystore__column_text(st, 0, out)
                     : rc == S3S_STORE_DONE ? s3s_err(S3S_ERR_KMS_NOT_FOUND)
                                            : s3s_err(s3s_store_rc_error(rc, S3S_ERR_KEYSTORE));
    s3s_store_finalize(st);
    return s3s_keystore__result(ks, res);
}

static s3s_result s_policy_put(struct s3s_keystore *ks, const char *id, const char *policy)
{
    struct s3s_kms_key k;
    S3S_GUARD(s_load_key(ks, id, &k));
    s3s_result res = s_require_not_pending(&k);
    if (s3s_is_ok(res)) {
        res = s_update_column(ks, id, "UPDATE kms_keys SET policy = ? WHERE id = ?", policy, 0);
    }
    s3s_kms_key_clean_up(&k);
    return res;
}

s3s_result s3s_kms_policy_put(struct s3s_keystore *ks, const char *id, const char *policy)
{
    S3S_ENSURE(ks && id && policy, S3S_ERR_INVALID_ARG);
    S3S_ENSURE(strlen(policy) <= S3S_POLICY_MAX_LEN, S3S_ERR_KMS_MALFORMED_POLICY);
    S3S_GUARD(s_write_begin(ks));
    return s_write_end(ks, s_policy_put(ks, id, policy), true);
}

s3s_result s3s_kms_generation(struct s3s_keystore *ks, uint64_t *gen)
{
    S3S_ENSURE(ks && gen, S3S_ERR_INVALID_ARG);
    return s3s_keystore__result(ks, s_read_generation(ks, gen));
}

/* ------------------------------------------------------------------ JSON */

/* Adds a member to a json-c object. json-c's constructors return NULL when
 * out of memory, and json_object_object_add would store that as a JSON
 * null: a NULL value fails the whole document instead. */
static bool s_json_add(struct json_object *o, const char *name, struct json_object *v)
{
    if (!v) {
        return false;
    }
    if (json_object_object_add(o, name, v) != 0) {
        json_object_put(v);
        return false;
    }
    return true;
}

static bool s_json_add_null(struct json_object *o, const char *name)
{
    return json_object_object_add(o, name, NULL) == 0;
}

/* Appends v to the array a; like s_json_add, a NULL v fails and v is
 * consumed either way. */
static bool s_json_push(struct json_object *a, struct json_object *v)
{
    if (!v) {
        return false;
    }
    if (json_object_array_add(a, v) != 0) {
        json_object_put(v);
        return false;
    }
    return true;
}

static struct json_object *s_json_string_array(const char *const *items, size_t n)
{
    struct json_object *a = json_object_new_array();
    for (size_t i = 0; a && i < n; i++) {
        if (!s_json_push(a, json_object_new_string(items[i]))) {
            json_object_put(a);
            return NULL;
        }
    }
    return a;
}

/* Serialises compactly, '/' unescaped (ARNs and aliases stay readable). */
static s3s_result s_json_append(struct json_object *o, struct s3s_buf *out)
{
    size_t len = 0;
    const char *text = json_object_to_json_string_length(
        o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
    S3S_ENSURE(text != NULL, S3S_ERR_NOMEM);
    return s3s_buf_append(out, text, len);
}

s3s_result s3s_kms_key_metadata(const struct s3s_kms_key *k, struct json_object **out)
{
    S3S_ENSURE(k && out && k->arn && k->region, S3S_ERR_INVALID_ARG);
    *out = NULL;
    struct json_object *o = json_object_new_object();
    S3S_ENSURE(o != NULL, S3S_ERR_NOMEM);
    static const char *const s_algorithms[] = {"SYMMETRIC_DEFAULT"};
    bool pending = k->state == S3S_KMS_PENDING_DELETION;
    bool ok = s_json_add(o, "AWSAccountId", json_object_new_string(k->account)) &&
              s_json_add(o, "KeyId", json_object_new_string(k->id)) &&
              s_json_add(o, "Arn", json_object_new_string(k->arn)) &&
              s_json_add(o, "CreationDate", json_object_new_int64(k->created)) &&
              s_json_add(o, "Enabled", json_object_new_boolean(k->state == S3S_KMS_ENABLED)) &&
              s_json_add(o, "Description",
                         json_object_new_string(k->description ? k->description : "")) &&
              s_json_add(o, "KeyUsage", json_object_new_string("ENCRYPT_DECRYPT")) &&
              s_json_add(o, "KeyState", json_object_new_string(s3s_kms_state_name(k->state))) &&
              (!pending ||
               s_json_add(o, "DeletionDate", json_object_new_int64(k->deletion_date))) &&
              s_json_add(o, "Origin", json_object_new_string("AWS_KMS")) &&
              s_json_add(o, "KeyManager",
                         json_object_new_string(k->aws_managed ? "AWS" : "CUSTOMER")) &&
              s_json_add(o, "CustomerMasterKeySpec", json_object_new_string("SYMMETRIC_DEFAULT")) &&
              s_json_add(o, "KeySpec", json_object_new_string("SYMMETRIC_DEFAULT")) &&
              s_json_add(o, "EncryptionAlgorithms",
                         s_json_string_array(s_algorithms, 1)) &&
              s_json_add(o, "MultiRegion", json_object_new_boolean(0)) &&
              s_json_add(o, "Aliases", s_json_string_array((const char *const *)k->aliases,
                                                           k->n_aliases)) &&
              s_json_add(o, "CurrentKeyVersion", json_object_new_int64(k->current_version)) &&
              (k->rotation_period_s > 0
                   ? s_json_add(o, "RotationPeriodInDays",
                                json_object_new_int64(k->rotation_period_s / S_DAY_S))
                   : s_json_add_null(o, "RotationPeriodInDays"));
    if (!ok) {
        json_object_put(o);
        S3S_BAIL(S3S_ERR_NOMEM);
    }
    *out = o;
    return s3s_ok();
}

s3s_result s3s_kms_key_json(const struct s3s_kms_key *k, struct s3s_buf *out)
{
    S3S_ENSURE_REF(out);
    struct json_object *o = NULL;
    S3S_GUARD(s3s_kms_key_metadata(k, &o));
    s3s_result res = s_json_append(o, out);
    json_object_put(o);
    return res;
}

s3s_result s3s_kms_default_policy(const char *account, struct s3s_buf *out)
{
    S3S_ENSURE(s_account_valid(account) && out, S3S_ERR_INVALID_ARG);
    char root[64];
    snprintf(root, sizeof(root), "arn:aws:iam::%s:root", account);
    struct json_object *policy = json_object_new_object();
    S3S_ENSURE(policy != NULL, S3S_ERR_NOMEM);
    /* Each container joins its parent as soon as it is made (s_json_add
     * and s_json_push consume it even when they fail), so putting `policy`
     * frees whatever was built. */
    bool ok = s_json_add(policy, "Version", json_object_new_string("2012-10-17")) &&
              s_json_add(policy, "Id", json_object_new_string("key-default-1"));
    struct json_object *statements = ok ? json_object_new_array() : NULL;
    ok = s_json_add(policy, "Statement", statements);
    struct json_object *statement = ok ? json_object_new_object() : NULL;
    ok = s_json_push(statements, statement) &&
         s_json_add(statement, "Sid", json_object_new_string("Enable IAM User Permissions")) &&
         s_json_add(statement, "Effect", json_object_new_string("Allow"));
    struct json_object *principal = ok ? json_object_new_object() : NULL;
    ok = s_json_add(statement, "Principal", principal) &&
         s_json_add(principal, "AWS", json_object_new_string(root)) &&
         s_json_add(statement, "Action", json_object_new_string("kms:*")) &&
         s_json_add(statement, "Resource", json_object_new_string("*"));
    s3s_result res = ok ? s_json_append(policy, out) : s3s_err(S3S_ERR_NOMEM);
    json_object_put(policy);
    return res;
}

/* ------------------------------------------------------------- snapshots */

static int s_cur_cmp_str(struct s3s_cur a, const char *b)
{
    size_t bn = strlen(b);
    int c = memcmp(a.ptr, b, a.len < bn ? a.len : bn);
    return c != 0 ? c : (a.len < bn ? -1 : a.len > bn ? 1 : 0);
}

/* The index of a key by id (keys are sorted by id), or SIZE_MAX. */
static size_t s_key_index(const struct s3s_kms_snapshot *s, struct s3s_cur id)
{
    size_t lo = 0, hi = s->n_keys;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = s_cur_cmp_str(id, s->keys[mid].meta.id);
        if (c == 0) {
            return mid;
        }
        if (c < 0) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    return SIZE_MAX;
}

static const struct s3s_kms_snap_key *s_find_id(const struct s3s_kms_snapshot *s,
                                                struct s3s_cur id)
{
    size_t i = s_key_index(s, id);
    return i == SIZE_MAX ? NULL : &s->keys[i];
}

/* The key an alias of `account` names (aliases are sorted by account, then
 * name), or NULL. */
static const struct s3s_kms_snap_key *s_find_alias(const struct s3s_kms_snapshot *s,
                                                   struct s3s_cur account, struct s3s_cur name)
{
    size_t lo = 0, hi = s->n_aliases;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const struct s3s_kms_snap_alias *a = &s->aliases[mid];
        int c = s_cur_cmp_str(account, a->account);
        if (c == 0) {
            c = s_cur_cmp_str(name, a->name);
        }
        if (c == 0) {
            return &s->keys[a->key];
        }
        if (c < 0) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    return NULL;
}

/* A key ARN (arn:aws:kms:REGION:ACCOUNT:key/ID) or an alias ARN
 * (...:alias/NAME): the key must be ACCOUNT's and in REGION. */
static const struct s3s_kms_snap_key *s_find_arn(const struct s3s_kms_snapshot *s,
                                                 struct s3s_cur arn)
{
    if (!s3s_cur_starts_with(arn, S_ARN_PREFIX)) {
        return NULL;
    }
    struct s3s_cur rest = s3s_cur_from(arn.ptr + strlen(S_ARN_PREFIX),
                                       arn.len - strlen(S_ARN_PREFIX));
    struct s3s_cur region, account;
    if (!s3s_cur_split(&rest, ':', &region) || !s3s_cur_split(&rest, ':', &account)) {
        return NULL;
    }
    const struct s3s_kms_snap_key *k = NULL;
    if (s3s_cur_starts_with(rest, "key/")) {
        k = s_find_id(s, s3s_cur_from(rest.ptr + 4, rest.len - 4));
    } else if (s3s_cur_starts_with(rest, S_ALIAS_PREFIX)) {
        k = s_find_alias(s, account, rest);
    }
    if (!k || !s3s_cur_eq_str(account, k->meta.account) ||
        !s3s_cur_eq_str(region, k->meta.region)) {
        return NULL;
    }
    return k;
}

const struct s3s_kms_snap_key *s3s_kms_snapshot_find(const struct s3s_kms_snapshot *s,
                                                     const char *ref,
                                                     const char *caller_account)
{
    if (!s || !ref) {
        return NULL;
    }
    struct s3s_cur r = s3s_cur_from_str(ref);
    if (s3s_cur_starts_with(r, "arn:")) {
        return s_find_arn(s, r);
    }
    if (!caller_account) {
        return NULL;
    }
    struct s3s_cur account = s3s_cur_from_str(caller_account);
    if (s3s_cur_starts_with(r, S_ALIAS_PREFIX)) {
        return s_find_alias(s, account, r);
    }
    const struct s3s_kms_snap_key *k = s_find_id(s, r);
    return k && s3s_cur_eq_str(account, k->meta.account) ? k : NULL;
}

const struct s3s_kms_snap_key *s3s_kms_snapshot_by_id(const struct s3s_kms_snapshot *s,
                                                      const char *id)
{
    return s && id ? s_find_id(s, s3s_cur_from_str(id)) : NULL;
}

const struct s3s_kms_snap_key *s3s_kms_snapshot_by_arn(const struct s3s_kms_snapshot *s,
                                                       struct s3s_cur arn)
{
    if (!s || !arn.ptr) {
        return NULL;
    }
    const struct s3s_kms_snap_key *k = s_find_arn(s, arn);
    return k && s3s_cur_eq_str(arn, k->meta.arn) ? k : NULL; /* not an alias ARN */
}

s3s_result s3s_kms_snap_material(const struct s3s_kms_snap_key *k, uint32_t version,
                                 const uint8_t **material)
{
    S3S_ENSURE(k && material, S3S_ERR_INVALID_ARG);
    *material = NULL;
    S3S_ENSURE(version >= 1 && version <= k->meta.current_version &&
                   k->material.len == (size_t)k->meta.current_version * S3S_KEYSTORE_KEY_LEN,
               S3S_ERR_KEY_NOT_FOUND);
    *material = k->material.ptr + (size_t)(version - 1) * S3S_KEYSTORE_KEY_LEN;
    return s3s_ok();
}

void s3s_kms_snapshot_free(struct s3s_kms_snapshot *s)
{
    if (!s) {
        return;
    }
    for (size_t i = 0; s->keys && i < s->n_keys; i++) {
        s3s_kms_key_clean_up(&s->keys[i].meta);
        s3s_secret_destroy(&s->keys[i].material);
    }
    for (size_t i = 0; s->aliases && i < s->n_aliases; i++) {
        s3s_free(&s->aliases[i].name);
    }
    s3s_free(&s->keys);
    s3s_free(&s->aliases);
    s3s_free(&s);
}

static s3s_result s_snapshot_keys(struct s3s_keystore *ks, struct s3s_kms_snapshot *s)
{
    struct s3s_store_stmt *st = NULL;
    S3S_GUARD(s_prepare(ks, S_KEY_SELECT "ORDER BY k.id", &st));
    s3s_result res = s3s_ok();
    size_t cap = 0;
    enum s3s_store_rc rc = S3S_STORE_DONE;
    while (s3s_is_ok(res) && (rc = s3s_store_step(st)) == S3S_STORE_ROW) {
        res = s_grow(&s->keys, &cap, s->n_keys, sizeof(*s->keys));
        if (s3s_is_ok(res)) {
            struct s3s_kms_snap_key *k = &s->keys[s->n_keys];
            k->material = (struct s3s_secret){0};
            res = s_key_from_row(st, &k->meta); /* cleans up after itself on error */
        }
        if (s3s_is_ok(res)) {
            s->n_keys++;
        }
    }
    if (s3s_is_ok(res) && rc != S3S_STORE_DONE) {
        res = s3s_err(s3s_store_rc_error(rc, S3S_ERR_KEYSTORE));
    }
    s3s_store_finalize(st);
    return res;
}

/* Every alias, in (account, name) order, each also listed in its key's
 * metadata. An alias whose key is gone (only a damaged file has one) is
 * left out: it names nothing. */
static s3s_result s_snapshot_aliases(struct s3s_keystore *ks, struct s3s_kms_snapshot *s)
{
    struct s3s_store_stmt *st = NULL;
    S3S_GUARD(s_prepare(ks,
                        "SELECT account, name, key_id, created FROM kms_aliases "
                        "ORDER BY account, name",
                        &st));
    s3s_result res = s3s_ok();
    size_t cap = 0;
    enum s3s_store_rc rc = S3S_STORE_DONE;
    while (s3s_is_ok(res) && (rc = s3s_store_step(st)) == S3S_STORE_ROW) {
        const char *account = s3s_store_column_str(st, 0);
        const char *name = s3s_store_column_str(st, 1);
        const char *key_id = s3s_store_column_str(st, 2);
        if (!s_account_valid(account) || !name || !key_id) {
            res = s3s_err(S3S_ERR_KEYSTORE);
            break;
        }
        size_t key = s_key_index(s, s3s_cur_from_str(key_id));
        if (key == SIZE_MAX) {
            continue;
        }
        res = s_grow(&s->aliases, &cap, s->n_aliases, sizeof(*s->aliases));
        if (s3s_is_ok(res)) {
            struct s3s_kms_snap_alias *a = &s->aliases[s->n_aliases];
            memcpy(a->account, account, sizeof(a->account));
            a->key = key;
            a->created = s3s_store_column_int64(st, 3);
            a->name = s3s_strdup(name);
            res = a->name ? s3s_ok() : s3s_err(S3S_ERR_NOMEM);
        }
        if (s3s_is_ok(res)) {
            s->n_aliases++; /* counted before the next step, so it is freed whatever follows */
            res = s_key_add_alias(&s->keys[key].meta, name);
        }
    }
    if (s3s_is_ok(res) && rc != S3S_STORE_DONE) {
        res = s3s_err(s3s_store_rc_error(rc, S3S_ERR_KEYSTORE));
    }
    s3s_store_finalize(st);
    return res;
}

/* Opens one version row into its key's material. */
static s3s_result s_snapshot_version(struct s3s_keystore *ks, struct s3s_kms_snap_key *k,
                                     uint32_t version, struct s3s_cur sealed)
{
    size_t len = (size_t)k->meta.current_version * S3S_KEYSTORE_KEY_LEN;
    if (!k->material.ptr) {
        S3S_GUARD(s3s_secret_new(len, &k->material));
    }
    char aad[S_AAD_LEN];
    s_aad_key(k->meta.id, version, aad);
    struct s3s_secret one = {0};
    S3S_GUARD(s3s_keystore__open_key(ks, aad, sealed, &one));
    memcpy(k->material.ptr + (size_t)(version - 1) * S3S_KEYSTORE_KEY_LEN, one.ptr, one.len);
    s3s_secret_destroy(&one);
    return s3s_ok();
}

/* Every key's versions 1..current_version, opened. A missing version is a
 * damaged file: the snapshot would hand out a key that cannot decrypt what
 * that version wrapped. */
static s3s_result s_snapshot_material(struct s3s_keystore *ks, struct s3s_kms_snapshot *s)
{
    struct s3s_store_stmt *st = NULL;
    S3S_GUARD(s_prepare(ks, "SELECT key_id, version, sealed FROM kms_key_versions", &st));
    s3s_result res = s3s_ok();
    size_t *seen = s3s_calloc(s->n_keys ? s->n_keys : 1, sizeof(*seen));
    enum s3s_store_rc rc = S3S_STORE_DONE;
    if (!seen) {
        res = s3s_err(S3S_ERR_NOMEM);
    }
    while (s3s_is_ok(res) && (rc = s3s_store_step(st)) == S3S_STORE_ROW) {
        const char *key_id = s3s_store_column_str(st, 0);
        int64_t version = s3s_store_column_int64(st, 1);
        size_t i = key_id ? s_key_index(s, s3s_cur_from_str(key_id)) : SIZE_MAX;
        if (i == SIZE_MAX) {
            continue; /* a version of no key: nothing can use it */
        }
        if (version < 1 || version > s->keys[i].meta.current_version) {
            res = s3s_err(S3S_ERR_KEYSTORE);
            break;
        }
        struct s3s_cur sealed = s3s_store_column_cur(st, 2);
        res = s_snapshot_version(ks, &s->keys[i], (uint32_t)version, sealed);
        seen[i]++;
    }
    if (s3s_is_ok(res) && rc != S3S_STORE_DONE) {
        res = s3s_err(s3s_store_rc_error(rc, S3S_ERR_KEYSTORE));
    }
    for (size_t i = 0; s3s_is_ok(res) && i < s->n_keys; i++) {
        if (seen[i] != s->keys[i].meta.current_version) {
            res = s3s_err(S3S_ERR_KEYSTORE);
        }
    }
    s3s_free(&seen);
    s3s_store_finalize(st);
    return res;
}

static s3s_result s_snapshot_read(struct s3s_keystore *ks, bool with_material,
                                  struct s3s_kms_snapshot *s)
{
    S3S_GUARD(s_read_generation(ks, &s->generation));
    S3S_GUARD(s_snapshot_keys(ks, s));
    S3S_GUARD(s_snapshot_aliases(ks, s));
    if (with_material) {
        S3S_GUARD(s_snapshot_material(ks, s));
    }
    return s3s_ok();
}

s3s_result s3s_kms_snapshot_load(struct s3s_keystore *ks, bool with_material,
                                 struct s3s_kms_snapshot **out)
{
    S3S_ENSURE(ks && out, S3S_ERR_INVALID_ARG);
    *out = NULL;
    struct s3s_kms_snapshot *s = s3s_calloc(1, sizeof(*s));
    S3S_ENSURE(s != NULL, S3S_ERR_NOMEM);
    /* One read transaction: the generation, keys, aliases and material all
     * come from the same state of the file, whatever others write. */
    s3s_result res = s_read_begin(ks);
    if (s3s_is_ok(res)) {
        res = s3s_keystore__txn_end(ks, s_snapshot_read(ks, with_material, s));
    }
    if (s3s_failed(res)) {
        s3s_kms_snapshot_free(s);
        return res;
    }
    *out = s;
    return s3s_ok();
}
