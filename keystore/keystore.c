/*
 * keystore.c - the embedded keystore file (SQLite) and its sealing: every key
 * stored in it is AES-256-GCM-sealed under the master key, with the row's
 * identity ("root-key:<version>") as associated data so a sealed key cannot
 * be moved to another row. A sealed check value tells a wrong master key
 * apart from a corrupt file at open time. Buckets' default encryption (the
 * PutBucketEncryption API) is a table of plain settings beside the keys, and
 * so is the upload registry (bucket, key and backend upload id of an
 * encrypted multipart upload -> the suffix of s3seal's upload id). The KMS
 * keys' tables are created here with the others (so an older keystore gains
 * them when it is opened) and used by kms.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "keystore/keystore.h"
#include "keystore/keystore_private.h"

#define S_NONCE 12
#define S_TAG 16
#define S_CHECK_TEXT "s3seal keystore v1"

void s3s_keystore__why(char *why, size_t len, const char *fmt, ...)
{
    if (!why || !len) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, len, fmt, ap);
    va_end(ap);
}

/* ---------------------------------------------------------------- sealing */

s3s_result s3s_keystore_seal(const uint8_t key[32], struct s3s_cur aad, struct s3s_cur plain,
                             struct s3s_buf *out)
{
    S3S_ENSURE(plain.len < INT32_MAX && aad.len < INT32_MAX, S3S_ERR_INVALID_ARG);
    S3S_GUARD(s3s_buf_reserve(out, S_NONCE + plain.len + S_TAG));
    uint8_t *nonce = out->ptr + out->len;
    uint8_t *ct = nonce + S_NONCE;
    S3S_ENSURE(RAND_bytes(nonce, S_NONCE) == 1, S3S_ERR_INTERNAL);
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    S3S_ENSURE(c != NULL, S3S_ERR_NOMEM);
    int n = 0, fin = 0;
    bool ok = EVP_EncryptInit_ex(c, EVP_aes_256_gcm(), NULL, key, nonce) == 1 &&
              (aad.len == 0 || EVP_EncryptUpdate(c, NULL, &n, aad.ptr, (int)aad.len) == 1) &&
              (plain.len == 0 || EVP_EncryptUpdate(c, ct, &n, plain.ptr, (int)plain.len) == 1) &&
              EVP_EncryptFinal_ex(c, ct + plain.len, &fin) == 1 &&
              EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_GET_TAG, S_TAG, ct + plain.len) == 1;
    EVP_CIPHER_CTX_free(c);
    S3S_ENSURE(ok, S3S_ERR_INTERNAL);
    out->len += S_NONCE + plain.len + S_TAG;
    return s3s_ok();
}

s3s_result s3s_keystore_open_sealed(const uint8_t key[32], struct s3s_cur aad,
                                    struct s3s_cur sealed, struct s3s_secret *out)
{
    S3S_ENSURE(sealed.len >= S_NONCE + S_TAG && sealed.len < INT32_MAX, S3S_ERR_KEY_UNWRAP);
    size_t plen = sealed.len - S_NONCE - S_TAG;
    S3S_GUARD(s3s_secret_new(plen, out));
    const uint8_t *nonce = sealed.ptr;
    const uint8_t *ct = nonce + S_NONCE;
    uint8_t tag[S_TAG];
    memcpy(tag, ct + plen, S_TAG);
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    if (!c) {
        s3s_secret_destroy(out);
        S3S_BAIL(S3S_ERR_NOMEM);
    }
    int n = 0, fin = 0;
    bool ok = EVP_DecryptInit_ex(c, EVP_aes_256_gcm(), NULL, key, nonce) == 1 &&
              (aad.len == 0 || EVP_DecryptUpdate(c, NULL, &n, aad.ptr, (int)aad.len) == 1) &&
              (plen == 0 || EVP_DecryptUpdate(c, out->ptr, &n, ct, (int)plen) == 1) &&
              EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_SET_TAG, S_TAG, tag) == 1 &&
              EVP_DecryptFinal_ex(c, out->ptr + plen, &fin) == 1;
    EVP_CIPHER_CTX_free(c);
    if (!ok) {
        s3s_secret_destroy(out);
        S3S_BAIL(S3S_ERR_KEY_UNWRAP);
    }
    return s3s_ok();
}

/* ------------------------------------------------------------ master key */

static s3s_result s_read_master(const char *file, struct s3s_secret *out, char *why,
                                size_t why_len)
{
    int fd = open(file, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        s3s_keystore__why(why, why_len,
                          "master key file %s: %s (create one with `s3seal keystore init`)", file,
                          strerror(errno));
        S3S_BAIL(S3S_ERR_KEYSTORE);
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        s3s_keystore__why(why, why_len, "master key file %s: not a regular file", file);
        S3S_BAIL(S3S_ERR_KEYSTORE);
    }
    if (st.st_mode & (S_IRWXG | S_IRWXO)) {
        close(fd);
        s3s_keystore__why(why, why_len,
                          "master key file %s: readable by group or others (chmod 600 it)", file);
        S3S_BAIL(S3S_ERR_KEYSTORE);
    }
    if (st.st_size != S3S_KEYSTORE_KEY_LEN) {
        close(fd);
        s3s_keystore__why(why, why_len,
                          "master key file %s: must hold exactly 32 bytes, holds %lld", file,
                          (long long)st.st_size);
        S3S_BAIL(S3S_ERR_KEYSTORE);
    }
    s3s_result r = s3s_secret_new(S3S_KEYSTORE_KEY_LEN, out);
    if (s3s_failed(r)) {
        close(fd);
        return r;
    }
    ssize_t got = read(fd, out->ptr, S3S_KEYSTORE_KEY_LEN);
    close(fd);
    uint8_t any = 0;
    for (size_t i = 0; i < S3S_KEYSTORE_KEY_LEN; i++) {
        any |= out->ptr[i];
    }
    if (got != S3S_KEYSTORE_KEY_LEN || any == 0) {
        s3s_secret_destroy(out);
        s3s_keystore__why(why, why_len, "master key file %s: unreadable or all zeros (a weak key)",
                          file);
        S3S_BAIL(S3S_ERR_KEYSTORE);
    }
    return s3s_ok();
}

/* ---------------------------------------------------------------- SQLite */

static const char s_schema[] =
    "CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value BLOB NOT NULL);"
    "CREATE TABLE IF NOT EXISTS root_keys ("
    "  version INTEGER PRIMARY KEY,"
    "  created INTEGER NOT NULL,"
    "  sealed BLOB NOT NULL);"
    "CREATE TABLE IF NOT EXISTS bucket_encryption ("
    "  bucket TEXT PRIMARY KEY,"
    "  algorithm TEXT NOT NULL,"
    "  kms_key_id TEXT,"
    "  bucket_key INTEGER NOT NULL DEFAULT 0,"
    "  updated INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS uploads ("
    "  bucket BLOB NOT NULL,"
    "  key BLOB NOT NULL,"
    "  upload_id BLOB NOT NULL,"
    "  suffix TEXT NOT NULL,"
    "  created INTEGER NOT NULL,"
    "  PRIMARY KEY (bucket, key, upload_id));"
    "CREATE INDEX IF NOT EXISTS uploads_created ON uploads(created);"
    /* The KMS keys (kms.c). A key's state is enum s3s_kms_state; times are
     * Unix seconds; deletion_date is 0 unless the key is pending deletion;
     * policy NULL means AWS's default key policy. Material is sealed under
     * the master key with "kms-key:<id>:<version>" as associated data. */
    "CREATE TABLE IF NOT EXISTS kms_keys ("
    "  id TEXT PRIMARY KEY,"
    "  account TEXT NOT NULL,"
    "  region TEXT NOT NULL,"
    "  arn TEXT NOT NULL UNIQUE,"
    "  description TEXT NOT NULL DEFAULT '',"
    "  state INTEGER NOT NULL,"
    "  aws_managed INTEGER NOT NULL DEFAULT 0,"
    "  created INTEGER NOT NULL,"
    "  deletion_date INTEGER NOT NULL DEFAULT 0,"
    "  rotation_period_s INTEGER NOT NULL DEFAULT 0,"
    "  policy TEXT);"
    "CREATE TABLE IF NOT EXISTS kms_key_versions ("
    "  key_id TEXT NOT NULL,"
    "  version INTEGER NOT NULL,"
    "  sealed BLOB NOT NULL,"
    "  created INTEGER NOT NULL,"
    "  PRIMARY KEY (key_id, version));"
    "CREATE TABLE IF NOT EXISTS kms_aliases ("
    "  account TEXT NOT NULL,"
    "  name TEXT NOT NULL,"
    "  key_id TEXT NOT NULL,"
    "  created INTEGER NOT NULL,"
    "  PRIMARY KEY (account, name));"
    "CREATE INDEX IF NOT EXISTS kms_aliases_key ON kms_aliases(key_id);";

s3s_result s3s_keystore__exec(struct s3s_keystore *ks, const char *sql)
{
    S3S_ENSURE(sqlite3_exec(ks->db, sql, NULL, NULL, NULL) == SQLITE_OK, S3S_ERR_KEYSTORE);
    return s3s_ok();
}

s3s_result s3s_keystore__txn_end(struct s3s_keystore *ks, s3s_result res)
{
    if (s3s_is_ok(res)) {
        res = s3s_keystore__exec(ks, "COMMIT");
    }
    if (s3s_failed(res)) {
        s3s_result_ignore(s3s_keystore__exec(ks, "ROLLBACK")); /* the first error is what matters */
    }
    return res;
}

/* Ends a write transaction begun with BEGIN IMMEDIATE around one statement:
 * COMMIT when the statement ran to SQLITE_DONE (`done`), else ROLLBACK; the
 * statement is finalised first either way. */
static s3s_result s_txn_end(struct s3s_keystore *ks, sqlite3_stmt *st, bool done)
{
    sqlite3_finalize(st);
    return s3s_keystore__txn_end(ks, done ? s3s_ok() : s3s_err(S3S_ERR_KEYSTORE));
}

/* WAL mode, so that servers and the CLI read while one of them writes.
 * Switching a new file to WAL takes an exclusive lock, and SQLite answers
 * SQLITE_BUSY at once, without its busy handler, when another connection
 * opening the same new file holds a lock meanwhile (two servers started
 * together): retry for about as long as the busy timeout would wait. */
static s3s_result s_wal(struct s3s_keystore *ks)
{
    for (int i = 0; i < 500; i++) {
        int rc = sqlite3_exec(ks->db, "PRAGMA journal_mode=WAL", NULL, NULL, NULL);
        if (rc == SQLITE_OK) {
            return s3s_ok();
        }
        if (rc != SQLITE_BUSY) {
            break;
        }
        usleep(10 * 1000);
    }
    S3S_BAIL(S3S_ERR_KEYSTORE);
}

s3s_result s3s_keystore__new_sealed_key(const struct s3s_keystore *ks, const char *aad,
                                        struct s3s_buf *sealed)
{
    struct s3s_secret key = {0};
    S3S_GUARD(s3s_secret_new(S3S_KEYSTORE_KEY_LEN, &key));
    s3s_result res = RAND_bytes(key.ptr, S3S_KEYSTORE_KEY_LEN) == 1
                         ? s3s_keystore_seal(ks->master.ptr, s3s_cur_from_str(aad),
                                             s3s_cur_from(key.ptr, key.len), sealed)
                         : s3s_err(S3S_ERR_INTERNAL);
    s3s_secret_destroy(&key);
    return res;
}

s3s_result s3s_keystore__open_key(const struct s3s_keystore *ks, const char *aad,
                                  struct s3s_cur sealed, struct s3s_secret *out)
{
    S3S_GUARD(s3s_keystore_open_sealed(ks->master.ptr, s3s_cur_from_str(aad), sealed, out));
    if (out->len != S3S_KEYSTORE_KEY_LEN) {
        s3s_secret_destroy(out);
        S3S_BAIL(S3S_ERR_KEY_UNWRAP);
    }
    return s3s_ok();
}

static void s_aad_root(uint32_t version, char out[32])
{
    snprintf(out, 32, "root-key:%u", version);
}

/* Inserts root key `version` (fresh random key) inside the caller's
 * transaction. */
static s3s_result s_insert_root(struct s3s_keystore *ks, uint32_t version)
{
    s3s_result result = s3s_err(S3S_ERR_KEYSTORE);
    struct s3s_buf sealed = {0};
    sqlite3_stmt *st = NULL;
    char aad[32];
    s_aad_root(version, aad);
    if (s3s_failed(s3s_buf_init(&sealed, 64, 256)) ||
        s3s_failed(s3s_keystore__new_sealed_key(ks, aad, &sealed))) {
        goto cleanup;
    }
    if (sqlite3_prepare_v2(ks->db,
                           "INSERT INTO root_keys(version, created, sealed) VALUES (?, ?, ?)", -1,
                           &st, NULL) != SQLITE_OK) {
        goto cleanup;
    }
    sqlite3_bind_int64(st, 1, version);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)time(NULL));
    sqlite3_bind_blob(st, 3, sealed.ptr, (int)sealed.len, SQLITE_TRANSIENT);
    if (sqlite3_step(st) != SQLITE_DONE) {
        goto cleanup;
    }
    result = s3s_ok();
cleanup:
    sqlite3_finalize(st);
    s3s_buf_clean_up(&sealed);
    return result;
}

static s3s_result s_max_version(struct s3s_keystore *ks, uint32_t *out)
{
    sqlite3_stmt *st = NULL;
    S3S_ENSURE(sqlite3_prepare_v2(ks->db, "SELECT COALESCE(MAX(version), 0) FROM root_keys", -1,
                                  &st, NULL) == SQLITE_OK,
               S3S_ERR_KEYSTORE);
    bool ok = sqlite3_step(st) == SQLITE_ROW;
    if (ok) {
        *out = (uint32_t)sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    S3S_ENSURE(ok, S3S_ERR_KEYSTORE);
    return s3s_ok();
}

/* First open of a new file: the check value and root key version 1; an
 * existing file: the check value must open under this master key. */
static s3s_result s_init_or_check(struct s3s_keystore *ks, char *why, size_t why_len)
{
    sqlite3_stmt *st = NULL;
    S3S_ENSURE(sqlite3_prepare_v2(ks->db, "SELECT value FROM meta WHERE name = 'check'", -1, &st,
                                  NULL) == SQLITE_OK,
               S3S_ERR_KEYSTORE);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        struct s3s_cur sealed = s3s_cur_from(sqlite3_column_blob(st, 0),
                                             (size_t)sqlite3_column_bytes(st, 0));
        struct s3s_secret check = {0};
        s3s_result r = s3s_keystore_open_sealed(ks->master.ptr, S3S_CUR_LIT("check"), sealed,
                                                &check);
        bool match = s3s_is_ok(r) && check.len == sizeof(S_CHECK_TEXT) - 1 &&
                     memcmp(check.ptr, S_CHECK_TEXT, check.len) == 0;
        s3s_secret_destroy(&check);
        sqlite3_finalize(st);
        if (!match) {
            s3s_keystore__why(why, why_len,
                              "the master key does not open this keystore (wrong master key?)");
            S3S_BAIL(S3S_ERR_KEY_UNWRAP);
        }
        return s3s_ok();
    }
    sqlite3_finalize(st);
    S3S_ENSURE(rc == SQLITE_DONE, S3S_ERR_KEYSTORE);

    s3s_result result = s3s_err(S3S_ERR_KEYSTORE);
    struct s3s_buf sealed = {0};
    S3S_GUARD(s3s_keystore__exec(ks, "BEGIN IMMEDIATE"));
    if (s3s_failed(s3s_buf_init(&sealed, 64, 256)) ||
        s3s_failed(s3s_keystore_seal(ks->master.ptr, S3S_CUR_LIT("check"),
                                     S3S_CUR_LIT(S_CHECK_TEXT), &sealed)) ||
        sqlite3_prepare_v2(ks->db, "INSERT OR IGNORE INTO meta(name, value) VALUES ('check', ?)",
                           -1, &st, NULL) != SQLITE_OK) {
        goto cleanup;
    }
    sqlite3_bind_blob(st, 1, sealed.ptr, (int)sealed.len, SQLITE_TRANSIENT);
    if (sqlite3_step(st) != SQLITE_DONE) {
        goto cleanup;
    }
    uint32_t max = 0;
    if (s3s_failed(s_max_version(ks, &max)) || (max == 0 && s3s_failed(s_insert_root(ks, 1)))) {
        goto cleanup;
    }
    result = s3s_keystore__exec(ks, "COMMIT");
cleanup:
    if (s3s_failed(result)) {
        /* Best effort; the error is reported. */
        s3s_result_ignore(s3s_keystore__exec(ks, "ROLLBACK"));
        s3s_keystore__why(why, why_len, "cannot initialise the keystore: %s",
                          sqlite3_errmsg(ks->db));
    }
    sqlite3_finalize(st);
    s3s_buf_clean_up(&sealed);
    return result;
}

s3s_result s3s_keystore_open(const char *path, const char *master_key_file, bool create,
                             struct s3s_keystore **out, char *why, size_t why_len)
{
    S3S_ENSURE_REF(out);
    if (!path || !master_key_file) {
        s3s_keystore__why(why, why_len, "keystore.path and keystore.master_key_file must be set");
        S3S_BAIL(S3S_ERR_KEYSTORE);
    }
    struct s3s_keystore *ks = s3s_calloc(1, sizeof(*ks));
    S3S_ENSURE(ks != NULL, S3S_ERR_NOMEM);
    s3s_result r = s_read_master(master_key_file, &ks->master, why, why_len);
    if (s3s_failed(r)) {
        s3s_free(&ks);
        return r;
    }
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX | (create ? SQLITE_OPEN_CREATE : 0);
    if (sqlite3_open_v2(path, &ks->db, flags, NULL) != SQLITE_OK) {
        s3s_keystore__why(why, why_len, "keystore %s: %s", path,
              ks->db ? sqlite3_errmsg(ks->db) : "cannot open");
        s3s_keystore_close(ks);
        S3S_BAIL(S3S_ERR_KEYSTORE);
    }
    (void)chmod(path, 0600);
    sqlite3_busy_timeout(ks->db, 5000);
    /* secure_delete: a deleted row's bytes are overwritten, not left in
     * free pages, so a destroyed KMS key's sealed material does not linger
     * in the file for whoever holds the master key. */
    if (s3s_failed(s_wal(ks)) || s3s_failed(s3s_keystore__exec(ks, "PRAGMA secure_delete=ON")) ||
        s3s_failed(s3s_keystore__exec(ks, s_schema))) {
        s3s_keystore__why(why, why_len, "keystore %s: %s", path, sqlite3_errmsg(ks->db));
        s3s_keystore_close(ks);
        S3S_BAIL(S3S_ERR_KEYSTORE);
    }
    r = s_init_or_check(ks, why, why_len);
    if (s3s_failed(r)) {
        s3s_keystore_close(ks);
        return r;
    }
    *out = ks;
    return s3s_ok();
}

void s3s_keystore_close(struct s3s_keystore *ks)
{
    if (!ks) {
        return;
    }
    if (ks->db) {
        sqlite3_close(ks->db);
    }
    s3s_secret_destroy(&ks->master);
    s3s_free(&ks);
}

/* --------------------------------------------------------------- root keys */

s3s_result s3s_keystore_root_get(struct s3s_keystore *ks, uint32_t version, struct s3s_secret *key)
{
    S3S_ENSURE_REF(ks);
    sqlite3_stmt *st = NULL;
    S3S_ENSURE(sqlite3_prepare_v2(ks->db, "SELECT sealed FROM root_keys WHERE version = ?", -1,
                                  &st, NULL) == SQLITE_OK,
               S3S_ERR_KEYSTORE);
    sqlite3_bind_int64(st, 1, version);
    int rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        sqlite3_finalize(st);
        S3S_BAIL(rc == SQLITE_DONE ? S3S_ERR_KEY_NOT_FOUND : S3S_ERR_KEYSTORE);
    }
    char aad[32];
    s_aad_root(version, aad);
    struct s3s_cur sealed = s3s_cur_from(sqlite3_column_blob(st, 0),
                                         (size_t)sqlite3_column_bytes(st, 0));
    s3s_result r = s3s_keystore__open_key(ks, aad, sealed, key);
    sqlite3_finalize(st);
    return r;
}

s3s_result s3s_keystore_root_current(struct s3s_keystore *ks, uint32_t *version,
                                     struct s3s_secret *key)
{
    S3S_ENSURE_REF(ks);
    uint32_t v = 0;
    S3S_GUARD(s_max_version(ks, &v));
    S3S_ENSURE(v > 0, S3S_ERR_KEY_NOT_FOUND);
    S3S_GUARD(s3s_keystore_root_get(ks, v, key));
    *version = v;
    return s3s_ok();
}

/* Adds version newest+1 when the newest is at least max_age_s old (always for
 * a negative age). IMMEDIATE: concurrent rotations serialise instead of both
 * taking the same version number. */
static s3s_result s_rotate(struct s3s_keystore *ks, int64_t max_age_s, bool *rotated,
                           uint32_t *version)
{
    S3S_ENSURE_REF(ks);
    *rotated = false;
    S3S_GUARD(s3s_keystore__exec(ks, "BEGIN IMMEDIATE"));
    uint32_t v = 0;
    int64_t created = 0;
    s3s_result r = s_max_version(ks, &v);
    if (s3s_is_ok(r)) {
        r = s3s_keystore_root_created(ks, v, &created);
    }
    if (s3s_is_ok(r) && (max_age_s < 0 || (int64_t)time(NULL) - created >= max_age_s)) {
        r = s_insert_root(ks, v + 1);
        *rotated = s3s_is_ok(r);
        *version = v + 1;
    }
    r = s3s_keystore__txn_end(ks, r);
    if (s3s_failed(r)) {
        *rotated = false;
    }
    return r;
}

s3s_result s3s_keystore_root_rotate_if_older(struct s3s_keystore *ks, int64_t max_age_s,
                                            bool *rotated)
{
    uint32_t v = 0;
    return s_rotate(ks, max_age_s < 0 ? 0 : max_age_s, rotated, &v);
}

s3s_result s3s_keystore_root_rotate(struct s3s_keystore *ks, uint32_t *new_version)
{
    bool rotated = false;
    S3S_GUARD(s_rotate(ks, -1, &rotated, new_version));
    S3S_ENSURE(rotated, S3S_ERR_KEYSTORE);
    return s3s_ok();
}

s3s_result s3s_keystore_root_created(struct s3s_keystore *ks, uint32_t version, int64_t *at)
{
    S3S_ENSURE_REF(ks);
    sqlite3_stmt *st = NULL;
    S3S_ENSURE(sqlite3_prepare_v2(ks->db, "SELECT created FROM root_keys WHERE version = ?", -1,
                                  &st, NULL) == SQLITE_OK,
               S3S_ERR_KEYSTORE);
    sqlite3_bind_int64(st, 1, version);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *at = sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    S3S_ENSURE(rc == SQLITE_ROW, rc == SQLITE_DONE ? S3S_ERR_KEY_NOT_FOUND : S3S_ERR_KEYSTORE);
    return s3s_ok();
}

/* ------------------------------------------- buckets' default encryption */

void s3s_keystore_bucket_enc_free(struct s3s_keystore_bucket_enc *list, size_t n)
{
    for (size_t i = 0; list && i < n; i++) {
        s3s_free(&list[i].bucket);
        s3s_free(&list[i].algorithm);
        s3s_free(&list[i].kms_key_id);
    }
    s3s_free(&list);
}

s3s_result s3s_keystore__column_text(sqlite3_stmt *st, int col, char **out)
{
    const unsigned char *t = sqlite3_column_text(st, col);
    *out = NULL;
    if (!t) {
        return s3s_ok();
    }
    *out = s3s_strndup((const char *)t, (size_t)sqlite3_column_bytes(st, col));
    S3S_ENSURE(*out != NULL, S3S_ERR_NOMEM);
    return s3s_ok();
}

s3s_result s3s_keystore_bucket_enc_list(struct s3s_keystore *ks,
                                        struct s3s_keystore_bucket_enc **out, size_t *n)
{
    S3S_ENSURE_REF(ks);
    S3S_ENSURE_REF(out);
    S3S_ENSURE_REF(n);
    *out = NULL;
    *n = 0;
    sqlite3_stmt *st = NULL;
    /* One statement: SQLite reads it in one (implicit) transaction, so the
     * list is a consistent snapshot even while another server writes. */
    S3S_ENSURE(sqlite3_prepare_v2(ks->db,
                                  "SELECT bucket, algorithm, kms_key_id, bucket_key, updated "
                                  "FROM bucket_encryption ORDER BY bucket",
                                  -1, &st, NULL) == SQLITE_OK,
               S3S_ERR_KEYSTORE);
    s3s_result res = s3s_ok();
    struct s3s_keystore_bucket_enc *list = NULL;
    size_t len = 0, cap = 0;
    int rc = SQLITE_DONE;
    while (s3s_is_ok(res) && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (len == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            struct s3s_keystore_bucket_enc *nl = s3s_realloc(list, ncap * sizeof(*nl));
            if (!nl) {
                res = s3s_err(S3S_ERR_NOMEM);
                break;
            }
            list = nl;
            cap = ncap;
        }
        struct s3s_keystore_bucket_enc *e = &list[len++];
        memset(e, 0, sizeof(*e));
        e->bucket_key = sqlite3_column_int64(st, 3) != 0;
        e->updated = sqlite3_column_int64(st, 4);
        if (s3s_is_ok(res = s3s_keystore__column_text(st, 0, &e->bucket)) &&
            s3s_is_ok(res = s3s_keystore__column_text(st, 1, &e->algorithm)) &&
            s3s_is_ok(res = s3s_keystore__column_text(st, 2, &e->kms_key_id))) {
            /* NOT NULL columns; a NULL here is a damaged file. */
            res = e->bucket && e->algorithm ? s3s_ok() : s3s_err(S3S_ERR_KEYSTORE);
        }
    }
    if (s3s_is_ok(res) && rc != SQLITE_DONE) {
        res = s3s_err(S3S_ERR_KEYSTORE);
    }
    sqlite3_finalize(st);
    if (s3s_failed(res)) {
        s3s_keystore_bucket_enc_free(list, len);
        return res;
    }
    *out = list;
    *n = len;
    return s3s_ok();
}

s3s_result s3s_keystore_bucket_enc_put(struct s3s_keystore *ks, const char *bucket,
                                       const char *algorithm, const char *kms_key_id,
                                       bool bucket_key)
{
    S3S_ENSURE_REF(ks);
    S3S_ENSURE(bucket && algorithm, S3S_ERR_INVALID_ARG);
    sqlite3_stmt *st = NULL;
    bool done = false;
    S3S_GUARD(s3s_keystore__exec(ks, "BEGIN IMMEDIATE"));
    if (sqlite3_prepare_v2(ks->db,
                           "INSERT OR REPLACE INTO bucket_encryption"
                           "(bucket, algorithm, kms_key_id, bucket_key, updated) "
                           "VALUES (?, ?, ?, ?, ?)",
                           -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_text(st, 1, bucket, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 2, algorithm, -1, SQLITE_TRANSIENT);
        if (kms_key_id) {
            sqlite3_bind_text(st, 3, kms_key_id, -1, SQLITE_TRANSIENT);
        } else {
            sqlite3_bind_null(st, 3);
        }
        sqlite3_bind_int64(st, 4, bucket_key ? 1 : 0);
        sqlite3_bind_int64(st, 5, (sqlite3_int64)time(NULL));
        done = sqlite3_step(st) == SQLITE_DONE;
    }
    return s_txn_end(ks, st, done);
}

s3s_result s3s_keystore_bucket_enc_delete(struct s3s_keystore *ks, const char *bucket,
                                          bool *removed)
{
    S3S_ENSURE_REF(ks);
    S3S_ENSURE_REF(bucket);
    S3S_ENSURE_REF(removed);
    *removed = false;
    sqlite3_stmt *st = NULL;
    bool done = false;
    S3S_GUARD(s3s_keystore__exec(ks, "BEGIN IMMEDIATE"));
    if (sqlite3_prepare_v2(ks->db, "DELETE FROM bucket_encryption WHERE bucket = ?", -1, &st,
                           NULL) == SQLITE_OK) {
        sqlite3_bind_text(st, 1, bucket, -1, SQLITE_TRANSIENT);
        done = sqlite3_step(st) == SQLITE_DONE;
        *removed = done && sqlite3_changes(ks->db) > 0;
    }
    s3s_result res = s_txn_end(ks, st, done);
    if (s3s_failed(res)) {
        *removed = false;
    }
    return res;
}

/* ---------------------------------------------------- the upload registry */

/* Binds a byte string as a BLOB (an empty one too, not as NULL). */
static void s_bind_cur(sqlite3_stmt *st, int col, struct s3s_cur v)
{
    sqlite3_bind_blob(st, col, v.len ? (const void *)v.ptr : "", (int)v.len, SQLITE_TRANSIENT);
}

static bool s_cur_ok(struct s3s_cur v) { return v.len < INT32_MAX && (v.ptr || v.len == 0); }

s3s_result s3s_keystore_upload_put(struct s3s_keystore *ks, struct s3s_cur bucket,
                                   struct s3s_cur key, struct s3s_cur upload_id,
                                   struct s3s_cur suffix)
{
    S3S_ENSURE_REF(ks);
    S3S_ENSURE(s_cur_ok(bucket) && s_cur_ok(key) && s_cur_ok(upload_id) && s_cur_ok(suffix) &&
                   upload_id.len > 0 && suffix.len > 0,
               S3S_ERR_INVALID_ARG);
    sqlite3_stmt *st = NULL;
    bool done = false;
    S3S_GUARD(s3s_keystore__exec(ks, "BEGIN IMMEDIATE"));
    if (sqlite3_prepare_v2(ks->db,
                           "INSERT OR REPLACE INTO uploads"
                           "(bucket, key, upload_id, suffix, created) VALUES (?, ?, ?, ?, ?)",
                           -1, &st, NULL) == SQLITE_OK) {
        s_bind_cur(st, 1, bucket);
        s_bind_cur(st, 2, key);
        s_bind_cur(st, 3, upload_id);
        sqlite3_bind_text(st, 4, (const char *)suffix.ptr, (int)suffix.len, SQLITE_TRANSIENT);
        sqlite3_bind_int64(st, 5, (sqlite3_int64)time(NULL));
        done = sqlite3_step(st) == SQLITE_DONE;
    }
    return s_txn_end(ks, st, done);
}

void s3s_keystore_upload_refs_clean_up(struct s3s_keystore_upload_ref *refs, size_t n)
{
    for (size_t i = 0; refs && i < n; i++) {
        s3s_free(&refs[i].suffix);
    }
}

/* Looks up each ref with one prepared statement, inside the caller's
 * transaction. */
static s3s_result s_upload_lookup(struct s3s_keystore *ks, struct s3s_cur bucket,
                                  struct s3s_keystore_upload_ref *refs, size_t n)
{
    sqlite3_stmt *st = NULL;
    S3S_ENSURE(sqlite3_prepare_v2(ks->db,
                                  "SELECT suffix FROM uploads "
                                  "WHERE bucket = ? AND key = ? AND upload_id = ?",
                                  -1, &st, NULL) == SQLITE_OK,
               S3S_ERR_KEYSTORE);
    s3s_result res = s3s_ok();
    for (size_t i = 0; s3s_is_ok(res) && i < n; i++) {
        refs[i].suffix = NULL;
        if (!s_cur_ok(refs[i].key) || !s_cur_ok(refs[i].upload_id)) {
            res = s3s_err(S3S_ERR_INVALID_ARG);
            break;
        }
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
        s_bind_cur(st, 1, bucket);
        s_bind_cur(st, 2, refs[i].key);
        s_bind_cur(st, 3, refs[i].upload_id);
        int rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            res = s3s_keystore__column_text(st, 0, &refs[i].suffix);
        } else if (rc != SQLITE_DONE) {
            res = s3s_err(S3S_ERR_KEYSTORE);
        }
    }
    sqlite3_finalize(st);
    return res;
}

s3s_result s3s_keystore_upload_get_many(struct s3s_keystore *ks, struct s3s_cur bucket,
                                        struct s3s_keystore_upload_ref *refs, size_t n)
{
    S3S_ENSURE_REF(ks);
    S3S_ENSURE(s_cur_ok(bucket) && (refs || n == 0), S3S_ERR_INVALID_ARG);
    for (size_t i = 0; i < n; i++) {
        refs[i].suffix = NULL;
    }
    /* One read transaction: the page is looked up in one snapshot. */
    S3S_GUARD(s3s_keystore__exec(ks, "BEGIN"));
    s3s_result res = s3s_keystore__txn_end(ks, s_upload_lookup(ks, bucket, refs, n));
    if (s3s_failed(res)) {
        s3s_keystore_upload_refs_clean_up(refs, n);
    }
    return res;
}

s3s_result s3s_keystore_upload_get(struct s3s_keystore *ks, struct s3s_cur bucket,
                                   struct s3s_cur key, struct s3s_cur upload_id, char **suffix)
{
    S3S_ENSURE_REF(suffix);
    struct s3s_keystore_upload_ref ref = {key, upload_id, NULL};
    S3S_GUARD(s3s_keystore_upload_get_many(ks, bucket, &ref, 1));
    *suffix = ref.suffix;
    return s3s_ok();
}

/* Runs a DELETE with the given bindings in one transaction; counts rows. */
static s3s_result s_delete_rows(struct s3s_keystore *ks, const char *sql,
                                const struct s3s_cur *curs, size_t n_curs, int64_t before,
                                size_t *removed)
{
    size_t count = 0;
    sqlite3_stmt *st = NULL;
    bool done = false;
    S3S_GUARD(s3s_keystore__exec(ks, "BEGIN IMMEDIATE"));
    if (sqlite3_prepare_v2(ks->db, sql, -1, &st, NULL) == SQLITE_OK) {
        for (size_t i = 0; i < n_curs; i++) {
            s_bind_cur(st, (int)i + 1, curs[i]);
        }
        if (n_curs == 0) {
            sqlite3_bind_int64(st, 1, (sqlite3_int64)before);
        }
        done = sqlite3_step(st) == SQLITE_DONE;
        count = done ? (size_t)sqlite3_changes(ks->db) : 0;
    }
    s3s_result res = s_txn_end(ks, st, done);
    if (s3s_failed(res)) {
        count = 0;
    }
    if (removed) {
        *removed = count;
    }
    return res;
}

s3s_result s3s_keystore_upload_delete(struct s3s_keystore *ks, struct s3s_cur bucket,
                                      struct s3s_cur key, struct s3s_cur upload_id,
                                      bool *removed)
{
    S3S_ENSURE_REF(ks);
    S3S_ENSURE(s_cur_ok(bucket) && s_cur_ok(key) && s_cur_ok(upload_id), S3S_ERR_INVALID_ARG);
    const struct s3s_cur curs[3] = {bucket, key, upload_id};
    size_t n = 0;
    s3s_result res = s_delete_rows(
        ks, "DELETE FROM uploads WHERE bucket = ? AND key = ? AND upload_id = ?", curs, 3, 0, &n);
    if (removed) {
        *removed = n > 0;
    }
    return res;
}

s3s_result s3s_keystore_upload_prune(struct s3s_keystore *ks, int64_t before, size_t *removed)
{
    S3S_ENSURE_REF(ks);
    return s_delete_rows(ks, "DELETE FROM uploads WHERE created < ?", NULL, 0, before, removed);
}
