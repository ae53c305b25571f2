/*
 * store_sqlite.c - the keystore in an SQLite file (store.h): WAL mode so
 * servers and the CLI read while one of them writes, a busy timeout, writes
 * under BEGIN IMMEDIATE (the file's one writer lock taken up front),
 * secure_delete so deleted rows' bytes are overwritten. Generation counters
 * are rows of the meta table. There is no notification channel: readers
 * poll the counters.
 */
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "keystore/keystore_private.h"
#include "keystore/store.h"

struct s_store {
    struct s3s_store base;
    sqlite3 *db; /* FULLMUTEX: one handle may be used from several threads */
};

struct s_stmt {
    struct s3s_store_stmt base;
    struct s_store *s;
    sqlite3_stmt *st;
};

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
    "CREATE TABLE IF NOT EXISTS bucket_access ("
    "  bucket TEXT PRIMARY KEY,"
    "  owner TEXT,"
    "  policy TEXT,"
    "  updated INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS bucket_cors ("
    "  bucket TEXT PRIMARY KEY,"
    "  config TEXT NOT NULL,"
    "  updated INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS uploads ("
    "  bucket BLOB NOT NULL,"
    "  key BLOB NOT NULL,"
    "  upload_id BLOB NOT NULL,"
    "  suffix TEXT NOT NULL,"
    "  created INTEGER NOT NULL,"
    "  PRIMARY KEY (bucket, key, upload_id));"
    "CREATE INDEX IF NOT EXISTS uploads_created ON uploads(created);"
    /* The catalog: the part count, first part and plaintext size of each
     * multipart object completed in the parts3 layout, by its object id
     * (keystore.h). */
    "CREATE TABLE IF NOT EXISTS objects ("
    "  object_id BLOB PRIMARY KEY,"
    "  bucket BLOB NOT NULL,"
    "  key BLOB NOT NULL,"
    "  parts INTEGER NOT NULL,"
    "  first_part INTEGER NOT NULL,"
    "  size INTEGER NOT NULL,"
    "  created INTEGER NOT NULL);"
    /* The catalog's entries: plaintext size and ETag of each object s3seal
     * wrote encrypted, by bucket, key and the backend's ETag (keystore.h). */
    "CREATE TABLE IF NOT EXISTS entries ("
    "  bucket BLOB NOT NULL,"
    "  key BLOB NOT NULL,"
    "  etag TEXT NOT NULL,"
    "  size INTEGER NOT NULL,"
    "  plain_etag TEXT NOT NULL,"
    "  created INTEGER NOT NULL,"
    "  PRIMARY KEY (bucket, key, etag));"
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
    "CREATE INDEX IF NOT EXISTS kms_aliases_key ON kms_aliases(key_id);"
    /* The audit trail (audit.h, `audit_log: keystore`): one hash chain per
     * instance. A record is its JSON line as hashed; the head is the
     * chain's newest seq and hash, the row an append locks. */
    "CREATE TABLE IF NOT EXISTS audit_heads ("
    "  instance TEXT PRIMARY KEY,"
    "  seq INTEGER NOT NULL,"
    "  hash TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS audit_records ("
    "  instance TEXT NOT NULL,"
    "  seq INTEGER NOT NULL,"
    "  record TEXT NOT NULL,"
    "  PRIMARY KEY (instance, seq));";

static struct s_store *s_of(struct s3s_store *s) { return (struct s_store *)s; }
static struct s_stmt *s_st(struct s3s_store_stmt *st) { return (struct s_stmt *)st; }

static s3s_result s_exec(struct s_store *s, const char *sql)
{
    S3S_ENSURE(sqlite3_exec(s->db, sql, NULL, NULL, NULL) == SQLITE_OK, S3S_ERR_KEYSTORE);
    return s3s_ok();
}

static void s_close(struct s3s_store *base)
{
    struct s_store *s = s_of(base);
    if (s->db) {
        sqlite3_close(s->db);
    }
    s3s_free(&s);
}

static s3s_result s_schema_create(struct s3s_store *base) { return s_exec(s_of(base), s_schema); }

static s3s_result s_begin(struct s3s_store *base, enum s3s_store_txn kind)
{
    /* IMMEDIATE takes the write lock up front: a change reads again under
     * it, so two processes never both act on what they read before. */
    return s_exec(s_of(base), kind == S3S_STORE_READ ? "BEGIN" : "BEGIN IMMEDIATE");
}

static s3s_result s_commit(struct s3s_store *base) { return s_exec(s_of(base), "COMMIT"); }

static void s_rollback(struct s3s_store *base)
{
    s3s_result_ignore(s_exec(s_of(base), "ROLLBACK")); /* the first error is what matters */
}

static s3s_result s_prepare(struct s3s_store *base, const char *sql,
                            struct s3s_store_stmt **out)
{
    struct s_store *s = s_of(base);
    *out = NULL;
    struct s_stmt *st = s3s_calloc(1, sizeof(*st));
    S3S_ENSURE(st != NULL, S3S_ERR_NOMEM);
    st->base.ops = base->ops;
    st->s = s;
    if (sqlite3_prepare_v2(s->db, sql, -1, &st->st, NULL) != SQLITE_OK) {
        s3s_free(&st);
        S3S_BAIL(S3S_ERR_KEYSTORE);
    }
    *out = &st->base;
    return s3s_ok();
}

static void s_bind_int64(struct s3s_store_stmt *st, int i, int64_t v)
{
    sqlite3_bind_int64(s_st(st)->st, i, (sqlite3_int64)v);
}

static void s_bind_text(struct s3s_store_stmt *st, int i, const char *p, size_t n)
{
    sqlite3_bind_text(s_st(st)->st, i, n ? p : "", (int)n, SQLITE_TRANSIENT);
}

/* An empty blob too is a BLOB, not NULL. */
static void s_bind_blob(struct s3s_store_stmt *st, int i, const void *p, size_t n)
{
    sqlite3_bind_blob(s_st(st)->st, i, n ? p : "", (int)n, SQLITE_TRANSIENT);
}

static void s_bind_null(struct s3s_store_stmt *st, int i) { sqlite3_bind_null(s_st(st)->st, i); }

static enum s3s_store_rc s_step(struct s3s_store_stmt *st)
{
    switch (sqlite3_step(s_st(st)->st)) {
    case SQLITE_ROW:
        return S3S_STORE_ROW;
    case SQLITE_DONE:
        return S3S_STORE_DONE;
    case SQLITE_CONSTRAINT:
        return S3S_STORE_CONFLICT;
    default:
        return S3S_STORE_ERROR;
    }
}

static void s_reset(struct s3s_store_stmt *st) { sqlite3_reset(s_st(st)->st); }

static bool s_column_null(struct s3s_store_stmt *st, int col)
{
    return sqlite3_column_type(s_st(st)->st, col) == SQLITE_NULL;
}

static int64_t s_column_int64(struct s3s_store_stmt *st, int col)
{
    return sqlite3_column_int64(s_st(st)->st, col);
}

static const uint8_t *s_column_bytes(struct s3s_store_stmt *st, int col, size_t *n)
{
    sqlite3_stmt *q = s_st(st)->st;
    *n = 0;
    if (sqlite3_column_type(q, col) == SQLITE_NULL) {
        return NULL;
    }
    /* A BLOB as itself; TEXT and numbers as their text. Never NULL for a
     * value (an empty blob gives ""). */
    const void *p = sqlite3_column_type(q, col) == SQLITE_BLOB ? sqlite3_column_blob(q, col)
                                                               : sqlite3_column_text(q, col);
    *n = (size_t)sqlite3_column_bytes(q, col);
    return p ? p : (const uint8_t *)"";
}

static size_t s_changes(struct s3s_store_stmt *st)
{
    return (size_t)sqlite3_changes(s_st(st)->s->db);
}

static void s_finalize(struct s3s_store_stmt *st)
{
    if (st) {
        sqlite3_finalize(s_st(st)->st);
        s3s_free(&st);
    }
}

static s3s_result s_generation_get(struct s3s_store *base, const char *name, uint64_t *v)
{
    sqlite3_stmt *st = NULL;
    S3S_ENSURE(sqlite3_prepare_v2(s_of(base)->db, "SELECT value FROM meta WHERE name = ?", -1,
                                  &st, NULL) == SQLITE_OK,
               S3S_ERR_KEYSTORE);
    sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(st);
    *v = rc == SQLITE_ROW ? (uint64_t)sqlite3_column_int64(st, 0) : 0;
    sqlite3_finalize(st);
    S3S_ENSURE(rc == SQLITE_ROW || rc == SQLITE_DONE, S3S_ERR_KEYSTORE);
    return s3s_ok();
}

static s3s_result s_generation_write(struct s3s_store *base, const char *name, const char *sql,
                                     uint64_t v)
{
    sqlite3_stmt *st = NULL;
    S3S_ENSURE(sqlite3_prepare_v2(s_of(base)->db, sql, -1, &st, NULL) == SQLITE_OK,
               S3S_ERR_KEYSTORE);
    sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)v);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    S3S_ENSURE(rc == SQLITE_DONE, S3S_ERR_KEYSTORE);
    return s3s_ok();
}

static s3s_result s_generation_bump(struct s3s_store *base, const char *name, unsigned what)
{
    (void)what; /* no listeners: readers poll the counter */
    return s_generation_write(base, name,
                              "INSERT INTO meta(name, value) VALUES (?, ?) "
                              "ON CONFLICT(name) DO UPDATE SET value = value + 1",
                              1);
}

static s3s_result s_generation_set(struct s3s_store *base, const char *name, uint64_t v)
{
    return s_generation_write(base, name,
                              "INSERT INTO meta(name, value) VALUES (?1, ?2) "
                              "ON CONFLICT(name) DO UPDATE SET value = ?2",
                              v);
}

static s3s_result s_announce(struct s3s_store *base, unsigned what)
{
    (void)base;
    (void)what;
    return s3s_ok();
}

static s3s_result s_listen(struct s3s_store *base, int *fd)
{
    (void)base;
    *fd = -1;
    S3S_BAIL(S3S_ERR_NOT_IMPLEMENTED);
}

static s3s_result s_notices(struct s3s_store *base, unsigned *what, int *fd)
{
    (void)base;
    *what = 0;
    *fd = -1;
    S3S_BAIL(S3S_ERR_NOT_IMPLEMENTED);
}

static void s_purge(struct s3s_store *base)
{
    /* secure_delete zeroed the rows in the file; move that into it and
     * empty the WAL, which may still hold pages with the sealed material.
     * Best effort: a reader may keep the WAL in use, and the next
     * checkpoint overwrites it anyway. */
    (void)sqlite3_wal_checkpoint_v2(s_of(base)->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
}

static const char *s_errmsg(struct s3s_store *base) { return sqlite3_errmsg(s_of(base)->db); }

static bool s_unreachable(struct s3s_store *base)
{
    (void)base;
    return false;
}

static const struct s3s_store_ops s_ops = {
    .name = "sqlite",
    .for_update = "",
    .close = s_close,
    .schema = s_schema_create,
    .begin = s_begin,
    .commit = s_commit,
    .rollback = s_rollback,
    .prepare = s_prepare,
    .bind_int64 = s_bind_int64,
    .bind_text = s_bind_text,
    .bind_blob = s_bind_blob,
    .bind_null = s_bind_null,
    .step = s_step,
    .reset = s_reset,
    .column_null = s_column_null,
    .column_int64 = s_column_int64,
    .column_bytes = s_column_bytes,
    .changes = s_changes,
    .finalize = s_finalize,
    .generation_get = s_generation_get,
    .generation_bump = s_generation_bump,
    .generation_set = s_generation_set,
    .announce = s_announce,
    .listen = s_listen,
    .notices = s_notices,
    .purge = s_purge,
    .errmsg = s_errmsg,
    .unreachable = s_unreachable,
};

/* WAL mode, so that servers and the CLI read while one of them writes.
 * Switching a new file to WAL takes an exclusive lock, and SQLite answers
 * SQLITE_BUSY at once, without its busy handler, when another connection
 * opening the same new file holds a lock meanwhile (two servers started
 * together): retry for about as long as the busy timeout would wait. */
static s3s_result s_wal(struct s_store *s)
{
    for (int i = 0; i < 500; i++) {
        int rc = sqlite3_exec(s->db, "PRAGMA journal_mode=WAL", NULL, NULL, NULL);
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

s3s_result s3s_store_sqlite_open(const char *path, bool create, struct s3s_store **out,
                                 char *why, size_t why_len)
{
    *out = NULL;
    struct s_store *s = s3s_calloc(1, sizeof(*s));
    S3S_ENSURE(s != NULL, S3S_ERR_NOMEM);
    s->base.ops = &s_ops;
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX | (create ? SQLITE_OPEN_CREATE : 0);
    if (sqlite3_open_v2(path, &s->db, flags, NULL) != SQLITE_OK) {
        s3s_keystore__why(why, why_len, "keystore %s: %s", path,
                          s->db ? sqlite3_errmsg(s->db) : "cannot open");
        s_close(&s->base);
        S3S_BAIL(S3S_ERR_KEYSTORE);
    }
    (void)chmod(path, 0600);
    sqlite3_busy_timeout(s->db, 5000);
    /* secure_delete: a deleted row's bytes are overwritten, not left in
     * free pages, so a destroyed KMS key's sealed material does not linger
     * in the file for whoever holds the master key. */
    if (s3s_failed(s_wal(s)) || s3s_failed(s_exec(s, "PRAGMA secure_delete=ON"))) {
        s3s_keystore__why(why, why_len, "keystore %s: %s", path, sqlite3_errmsg(s->db));
        s_close(&s->base);
        S3S_BAIL(S3S_ERR_KEYSTORE);
    }
    *out = &s->base;
    return s3s_ok();
}
