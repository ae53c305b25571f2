/*
 * store.h - the keystore's storage back ends behind one interface: SQLite
 * (store_sqlite.c, a file on this host) and PostgreSQL (store_pg.c, one
 * database for a fleet). keystore.c and kms.c speak SQL through it, in the
 * dialect both understand (ON CONFLICT upserts, `?` or `?N` parameters,
 * INTEGER, TEXT and BLOB values); each back end creates its own schema with
 * its own types, and provides what the two do differently: transactions with
 * SQLite's locking semantics, the generation counters, change notices.
 *
 * Only the keystore module and its tests use this header. A store handle
 * runs one transaction at a time; calls on it from several threads are
 * serialised by the back end, but a transaction is the connection's, as in
 * SQLite: callers that share a handle serialise their transactions.
 *
 * What a store ever sees of key material is sealed (keystore_private.h);
 * nothing here knows about keys.
 */
#ifndef S3S_KEYSTORE_STORE_H
#define S3S_KEYSTORE_STORE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "common/common.h"
#include "keystore/keystore.h"

/* What a step of a statement gave. */
enum s3s_store_rc {
    S3S_STORE_ROW = 1,     /* a row is ready to read */
    S3S_STORE_DONE,        /* the statement ran to its end */
    S3S_STORE_CONFLICT,    /* a constraint refused the change (a duplicate key) */
    S3S_STORE_ERROR,       /* anything else: a damaged file, bad SQL */
    S3S_STORE_UNAVAILABLE, /* the database cannot be reached (or timed out) */
    S3S_STORE_NOMEM,       /* out of memory */
};

enum s3s_store_txn {
    S3S_STORE_READ,  /* one consistent snapshot for every statement */
    S3S_STORE_WRITE, /* the writers' lock taken up front (SQLite's BEGIN IMMEDIATE) */
    /* A write that takes no store-wide lock where the back end can lock
     * rows: it locks what it reads with `for_update` (the audit trail, whose
     * appends must not wait on keystore changes, nor these on them). On
     * SQLite, whose one lock is the file's, the same as WRITE. */
    S3S_STORE_ROWS,
};

struct s3s_store;
struct s3s_store_stmt;

struct s3s_store_ops {
    const char *name; /* "sqlite", "postgresql" */
    /* What ends a SELECT that locks the rows it reads until the
     * transaction ends: " FOR UPDATE", or "" where a write transaction
     * already holds the only lock (SQLite). */
    const char *for_update;
    void (*close)(struct s3s_store *s);
    /* Creates the tables that do not exist yet (an older keystore gains the
     * newer ones). */
    s3s_result (*schema)(struct s3s_store *s);
    s3s_result (*begin)(struct s3s_store *s, enum s3s_store_txn kind);
    s3s_result (*commit)(struct s3s_store *s);
    void (*rollback)(struct s3s_store *s);
    s3s_result (*prepare)(struct s3s_store *s, const char *sql, struct s3s_store_stmt **out);
    void (*bind_int64)(struct s3s_store_stmt *st, int i, int64_t v);
    void (*bind_text)(struct s3s_store_stmt *st, int i, const char *p, size_t n);
    void (*bind_blob)(struct s3s_store_stmt *st, int i, const void *p, size_t n);
    void (*bind_null)(struct s3s_store_stmt *st, int i);
    enum s3s_store_rc (*step)(struct s3s_store_stmt *st);
    /* Back to before the first step, bindings kept. */
    void (*reset)(struct s3s_store_stmt *st);
    bool (*column_null)(struct s3s_store_stmt *st, int col);
    int64_t (*column_int64)(struct s3s_store_stmt *st, int col);
    /* Bytes valid until the next step, reset or finalize, followed by a NUL
     * byte (so a TEXT value is a C string); NULL for NULL. */
    const uint8_t *(*column_bytes)(struct s3s_store_stmt *st, int col, size_t *n);
    /* Rows the last step of a write statement changed. */
    size_t (*changes)(struct s3s_store_stmt *st);
    void (*finalize)(struct s3s_store_stmt *st);
    /* Generation counter `name`: read (0 when absent), add one inside the
     * open write transaction and announce `what` (S3S_KEYSTORE_CHANGED_*) to
     * listeners when it commits, or set (copying a keystore). */
    s3s_result (*generation_get)(struct s3s_store *s, const char *name, uint64_t *v);
    s3s_result (*generation_bump)(struct s3s_store *s, const char *name, unsigned what);
    s3s_result (*generation_set)(struct s3s_store *s, const char *name, uint64_t v);
    /* Announces `what` when the open write transaction commits. */
    s3s_result (*announce)(struct s3s_store *s, unsigned what);
    /* Change notices: a descriptor that becomes readable when notices
     * arrive (S3S_ERR_NOT_IMPLEMENTED: this back end has none, poll). */
    s3s_result (*listen)(struct s3s_store *s, int *fd);
    /* What the notices that arrived say (0: none); S3S_KEYSTORE_CHANGED_ALL
     * and a new descriptor in *fd after the channel was re-established. */
    s3s_result (*notices)(struct s3s_store *s, unsigned *what, int *fd);
    /* After rows holding sealed material were deleted: make sure their
     * bytes do not linger (best effort). */
    void (*purge)(struct s3s_store *s);
    /* The back end's last error, for an operator (never holds secrets). */
    const char *(*errmsg)(struct s3s_store *s);
    /* Whether the last failure was the database being out of reach. */
    bool (*unreachable)(struct s3s_store *s);
};

/* Every store and statement starts with its ops. */
struct s3s_store {
    const struct s3s_store_ops *ops;
};
struct s3s_store_stmt {
    const struct s3s_store_ops *ops;
};

/*
 * Opens the store a location names: "postgresql://..." or "postgres://..."
 * (a libpq connection URI, multi-host and target_session_attrs included),
 * "sqlite://PATH" (so sqlite:///var/lib/x.db is /var/lib/x.db), or a plain
 * path of an SQLite file (created if `create`). Does not create the schema.
 * Errors: S3S_ERR_KEYSTORE (with a reason in why), S3S_ERR_KEYSTORE_UNAVAILABLE
 * when a database server cannot be reached.
 */
S3S_RESULT s3s_store_open(const char *location, bool create, struct s3s_store **out, char *why,
                          size_t why_len);
S3S_RESULT s3s_store_sqlite_open(const char *path, bool create, struct s3s_store **out,
                                 char *why, size_t why_len);
S3S_RESULT s3s_store_pg_open(const char *url, struct s3s_store **out, char *why,
                             size_t why_len);
/* The location for messages: a URI's password is replaced by "***". Writes
 * at most len bytes (NUL included). */
void s3s_store_location_display(const char *location, char *out, size_t len);

/* Runs SQL that returns no rows (one statement), outside or inside a
 * transaction. */
S3S_RESULT s3s_store_exec(struct s3s_store *s, const char *sql);
/* The error a failed step means: S3S_ERR_KEYSTORE_UNAVAILABLE, `on_conflict`
 * or S3S_ERR_KEYSTORE. */
enum s3s_error s3s_store_rc_error(enum s3s_store_rc rc, enum s3s_error on_conflict);

/* The operations, called through the handle's ops. */
static inline void s3s_store_close(struct s3s_store *s)
{
    if (s) {
        s->ops->close(s);
    }
}
static inline s3s_result s3s_store_begin(struct s3s_store *s, enum s3s_store_txn kind)
{
    return s->ops->begin(s, kind);
}
static inline s3s_result s3s_store_commit(struct s3s_store *s) { return s->ops->commit(s); }
static inline void s3s_store_rollback(struct s3s_store *s) { s->ops->rollback(s); }
static inline s3s_result s3s_store_prepare(struct s3s_store *s, const char *sql,
                                           struct s3s_store_stmt **out)
{
    return s->ops->prepare(s, sql, out);
}
static inline void s3s_store_bind_int64(struct s3s_store_stmt *st, int i, int64_t v)
{
    st->ops->bind_int64(st, i, v);
}
/* A NUL-terminated string. */
static inline void s3s_store_bind_str(struct s3s_store_stmt *st, int i, const char *v)
{
    st->ops->bind_text(st, i, v, strlen(v));
}
static inline void s3s_store_bind_text(struct s3s_store_stmt *st, int i, const char *p, size_t n)
{
    st->ops->bind_text(st, i, p, n);
}
static inline void s3s_store_bind_blob(struct s3s_store_stmt *st, int i, const void *p, size_t n)
{
    st->ops->bind_blob(st, i, p, n);
}
static inline void s3s_store_bind_null(struct s3s_store_stmt *st, int i)
{
    st->ops->bind_null(st, i);
}
static inline enum s3s_store_rc s3s_store_step(struct s3s_store_stmt *st)
{
    return st->ops->step(st);
}
static inline void s3s_store_reset(struct s3s_store_stmt *st) { st->ops->reset(st); }
static inline bool s3s_store_column_null(struct s3s_store_stmt *st, int col)
{
    return st->ops->column_null(st, col);
}
static inline int64_t s3s_store_column_int64(struct s3s_store_stmt *st, int col)
{
    return st->ops->column_int64(st, col);
}
static inline struct s3s_cur s3s_store_column_cur(struct s3s_store_stmt *st, int col)
{
    size_t n = 0;
    const uint8_t *p = st->ops->column_bytes(st, col, &n);
    return s3s_cur_from(p, n);
}
/* A TEXT column as a NUL-terminated string (borrowed as column_bytes);
 * NULL for NULL. */
static inline const char *s3s_store_column_str(struct s3s_store_stmt *st, int col)
{
    size_t n = 0;
    return (const char *)st->ops->column_bytes(st, col, &n);
}
static inline size_t s3s_store_changes(struct s3s_store_stmt *st) { return st->ops->changes(st); }
static inline void s3s_store_finalize(struct s3s_store_stmt *st)
{
    if (st) {
        st->ops->finalize(st);
    }
}

#endif /* S3S_KEYSTORE_STORE_H */
