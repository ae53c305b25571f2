/*
 * store_pg.c - the keystore in a PostgreSQL database (store.h), so that a
 * fleet of instances on several hosts shares one keystore.
 *
 * - Semantics as SQLite's: a read transaction is one snapshot (REPEATABLE
 *   READ, READ ONLY); a write transaction first takes one transaction-level
 *   advisory lock that every writer takes, as BEGIN IMMEDIATE takes the
 *   file's write lock, and then reads under READ COMMITTED: what it reads
 *   after the lock is what the previous writer committed, so a change that
 *   reads a row, checks a rule and writes never acts on a stale view.
 * - Bounded waits: connect_timeout, TCP keepalives and tcp_user_timeout on
 *   the connection (a URI's own values win), statement_timeout, lock_timeout
 *   and idle_in_transaction_session_timeout on the session. Those bound a
 *   server that works; one that stopped answering (frozen, its host hung)
 *   still acknowledges TCP, so every answer is also awaited at most
 *   S_WAIT_MS here, and a connection that timed out is closed (its state is
 *   unknown). A connection found broken is re-established (every host of a
 *   multi-host URI tried, target_session_attrs honoured) at the next
 *   transaction, but not again within S_BACKOFF_MS of a failed attempt, so
 *   that requests fail at once instead of queueing behind connection
 *   attempts; one that lands on a server that became read-only (a demoted
 *   primary) is dropped so the next attempt finds the new primary. Failures
 *   to reach the database are S3S_STORE_UNAVAILABLE, never a hang.
 * - Change notices: a generation bump or an announcement sends pg_notify on
 *   the channel s3seal_keystore with the changed bits as payload; PostgreSQL
 *   delivers it when (and only if) the transaction commits. Listening uses a
 *   second connection of its own.
 * - Parameters: the shared SQL's `?` and `?N` become `$N`; integers are sent
 *   as int8, text as text, blobs as bytea in binary. Results come as text
 *   (bytea as hex, decoded here).
 */
#include <errno.h>
#include <libpq-fe.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "keystore/keystore_private.h"
#include "keystore/store.h"

#define S_CHANNEL "s3seal_keystore"
/* The advisory lock every writer takes ("s3seal" in ASCII). */
#define S_WRITE_LOCK "SELECT pg_advisory_xact_lock(115513101097108)"
#define S_OID_BYTEA 17
#define S_OID_INT8 20
#define S_OID_TEXT 25
/* The longest wait for an answer: the session's statement_timeout and
 * lock_timeout (5 s), and some slack for the way back. */
#define S_WAIT_MS 7000
/* No new connection is tried this soon after one failed or timed out. */
#define S_BACKOFF_MS 1000

static const char s_schema[] =
    "CREATE TABLE IF NOT EXISTS meta (name TEXT COLLATE \"C\" PRIMARY KEY, value BYTEA NOT NULL);"
    "CREATE TABLE IF NOT EXISTS counters ("
    "  name TEXT COLLATE \"C\" PRIMARY KEY,"
    "  value BIGINT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS root_keys ("
    "  version BIGINT PRIMARY KEY,"
    "  created BIGINT NOT NULL,"
    "  sealed BYTEA NOT NULL);"
    "CREATE TABLE IF NOT EXISTS bucket_encryption ("
    "  bucket TEXT COLLATE \"C\" PRIMARY KEY,"
    "  algorithm TEXT COLLATE \"C\" NOT NULL,"
    "  kms_key_id TEXT COLLATE \"C\","
    "  bucket_key BIGINT NOT NULL DEFAULT 0,"
    "  updated BIGINT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS bucket_access ("
    "  bucket TEXT COLLATE \"C\" PRIMARY KEY,"
    "  owner TEXT COLLATE \"C\","
    "  policy TEXT COLLATE \"C\","
    "  updated BIGINT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS bucket_cors ("
    "  bucket TEXT COLLATE \"C\" PRIMARY KEY,"
    "  config TEXT COLLATE \"C\" NOT NULL,"
    "  updated BIGINT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS uploads ("
    "  bucket BYTEA NOT NULL,"
    "  key BYTEA NOT NULL,"
    "  upload_id BYTEA NOT NULL,"
    "  suffix TEXT COLLATE \"C\" NOT NULL,"
    "  created BIGINT NOT NULL,"
    "  PRIMARY KEY (bucket, key, upload_id));"
    "CREATE INDEX IF NOT EXISTS uploads_created ON uploads(created);"
    "CREATE TABLE IF NOT EXISTS objects ("
    "  object_id BYTEA PRIMARY KEY,"
    "  bucket BYTEA NOT NULL,"
    "  key BYTEA NOT NULL,"
    "  parts BIGINT NOT NULL,"
    "  first_part BIGINT NOT NULL,"
    "  size BIGINT NOT NULL,"
    "  created BIGINT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS entries ("
    "  bucket BYTEA NOT NULL,"
    "  key BYTEA NOT NULL,"
    "  etag TEXT COLLATE \"C\" NOT NULL,"
    "  size BIGINT NOT NULL,"
    "  plain_etag TEXT COLLATE \"C\" NOT NULL,"
    "  created BIGINT NOT NULL,"
    "  PRIMARY KEY (bucket, key, etag));"
    "CREATE TABLE IF NOT EXISTS kms_keys ("
    "  id TEXT COLLATE \"C\" PRIMARY KEY,"
    "  account TEXT COLLATE \"C\" NOT NULL,"
    "  region TEXT COLLATE \"C\" NOT NULL,"
    "  arn TEXT COLLATE \"C\" NOT NULL UNIQUE,"
    "  description TEXT COLLATE \"C\" NOT NULL DEFAULT '',"
    "  state BIGINT NOT NULL,"
    "  aws_managed BIGINT NOT NULL DEFAULT 0,"
    "  created BIGINT NOT NULL,"
    "  deletion_date BIGINT NOT NULL DEFAULT 0,"
    "  rotation_period_s BIGINT NOT NULL DEFAULT 0,"
    "  policy TEXT COLLATE \"C\");"
    "CREATE TABLE IF NOT EXISTS kms_key_versions ("
    "  key_id TEXT COLLATE \"C\" NOT NULL,"
    "  version BIGINT NOT NULL,"
    "  sealed BYTEA NOT NULL,"
    "  created BIGINT NOT NULL,"
    "  PRIMARY KEY (key_id, version));"
    "CREATE TABLE IF NOT EXISTS kms_aliases ("
    "  account TEXT COLLATE \"C\" NOT NULL,"
    "  name TEXT COLLATE \"C\" NOT NULL,"
    "  key_id TEXT COLLATE \"C\" NOT NULL,"
    "  created BIGINT NOT NULL,"
    "  PRIMARY KEY (account, name));"
    "CREATE INDEX IF NOT EXISTS kms_aliases_key ON kms_aliases(key_id);"
    "CREATE TABLE IF NOT EXISTS audit_heads ("
    "  instance TEXT COLLATE \"C\" PRIMARY KEY,"
    "  seq BIGINT NOT NULL,"
    "  hash TEXT COLLATE \"C\" NOT NULL);"
    "CREATE TABLE IF NOT EXISTS audit_records ("
    "  instance TEXT COLLATE \"C\" NOT NULL,"
    "  seq BIGINT NOT NULL,"
    "  record TEXT COLLATE \"C\" NOT NULL,"
    "  PRIMARY KEY (instance, seq));";

/* Set on every new session (a URI cannot lift them by accident; an operator
 * who needs other values sets them for the database's role instead and
 * these still bound the wait). */
static const char s_session[] = "SET statement_timeout = '5s';"
                                "SET lock_timeout = '5s';"
                                "SET idle_in_transaction_session_timeout = '60s';"
                                "SET client_min_messages = warning;";

struct s_pg {
    struct s3s_store base;
    pthread_mutex_t lock; /* `conn` and the fields below */
    PGconn *conn;
    PGconn *listen; /* the listening connection (its user's thread only) */
    char *url;
    bool in_txn;
    bool unreachable; /* the last failure was the database out of reach */
    int64_t retry_at_ms; /* no connection attempt before (monotonic clock) */
    char err[256];
};

struct s_param {
    enum { S_NONE, S_INT, S_TEXT, S_BLOB } kind;
    char *val;
    size_t len;
};

struct s_pg_stmt {
    struct s3s_store_stmt base;
    struct s_pg *s;
    char *sql;
    int n_params;
    struct s_param *params;
    PGresult *res;
    bool executed;
    bool nomem; /* a binding could not be copied */
    int row;
    size_t changes;
    uint8_t **decoded; /* per column: the current row's bytea, decoded */
};

static struct s_pg *s_of(struct s3s_store *s) { return (struct s_pg *)s; }
static struct s_pg_stmt *s_st(struct s3s_store_stmt *st) { return (struct s_pg_stmt *)st; }

static void s_quiet(void *arg, const char *message)
{
    (void)arg;
    (void)message; /* NOTICEs ("already exists, skipping") are not errors */
}

static void s_set_err(struct s_pg *s, const char *msg)
{
    snprintf(s->err, sizeof(s->err), "%s", msg && *msg ? msg : "unknown error");
    s->err[strcspn(s->err, "\n")] = '\0';
}

static int64_t s_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits until `c` can be read (or also written: `out`) or the deadline has
 * passed; false at the deadline. */
static bool s_poll(PGconn *c, bool out, int64_t deadline_ms)
{
    if (PQsocket(c) < 0) {
        return true; /* closed: libpq's next call says so */
    }
    for (;;) {
        int64_t left = deadline_ms - s_now_ms();
        if (left <= 0) {
            return false;
        }
        struct pollfd p = {.fd = PQsocket(c), .events = (short)(POLLIN | (out ? POLLOUT : 0))};
        int n = poll(&p, 1, (int)left);
        if (n > 0 || (n < 0 && errno != EINTR)) {
            return true; /* an error on the socket: libpq's next call says so */
        }
    }
}

/*
 * PQexec (n_params < 0) or PQexecParams, the answer awaited at most
 * S_WAIT_MS: the last result, or the first failed one; NULL (*timed_out
 * false) if the statement could not be sent. At the deadline, *timed_out is
 * set and NULL returned: the caller closes the connection.
 */
static PGresult *s_exec_on(PGconn *c, const char *sql, int n_params, const Oid *types,
                           const char *const *vals, const int *lens, const int *fmts,
                           bool *timed_out)
{
    *timed_out = false;
    int sent = n_params < 0 ? PQsendQuery(c, sql)
                            : PQsendQueryParams(c, sql, n_params, types, vals, lens, fmts, 0);
    if (!sent) {
        return NULL;
    }
    int64_t deadline = s_now_ms() + S_WAIT_MS;
    int f;
    while ((f = PQflush(c)) == 1) {
        if (!s_poll(c, true, deadline)) {
            *timed_out = true;
            return NULL;
        }
        if (PQconsumeInput(c) != 1) {
            return NULL; /* broken */
        }
    }
    if (f < 0) {
        return NULL;
    }
    PGresult *last = NULL;
    for (;;) {
        while (PQisBusy(c)) {
            if (!s_poll(c, false, deadline)) {
                PQclear(last);
                *timed_out = true;
                return NULL;
            }
            if (PQconsumeInput(c) != 1) {
                break; /* broken: PQgetResult reports it */
            }
        }
        PGresult *r = PQgetResult(c);
        if (!r) {
            return last;
        }
        ExecStatusType st = PQresultStatus(last);
        if (last && st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
            PQclear(r); /* the first failure is the one to report */
            continue;
        }
        PQclear(last);
        last = r;
    }
}

/* s_exec_on on s->conn (which must be open); a connection whose answer did
 * not come in time is closed (NULL, and s->err says why). */
static PGresult *s_exec(struct s_pg *s, const char *sql, int n_params, const Oid *types,
                        const char *const *vals, const int *lens, const int *fmts)
{
    bool timed_out = false;
    PGresult *r = s_exec_on(s->conn, sql, n_params, types, vals, lens, fmts, &timed_out);
    if (timed_out) {
        PQfinish(s->conn);
        s->conn = NULL;
        s->unreachable = true;
        s->retry_at_ms = s_now_ms() + S_BACKOFF_MS;
        snprintf(s->err, sizeof(s->err), "the database did not answer within %d ms",
                 S_WAIT_MS);
    }
    return r;
}

/* A new connection to the URL, its session set; NULL (and s->err) when the
 * database cannot be reached. */
static PGconn *s_connect(struct s_pg *s)
{
    const char *keys[] = {"connect_timeout", "keepalives", "keepalives_idle",
                          "keepalives_interval", "keepalives_count", "tcp_user_timeout",
                          "application_name", "dbname", NULL};
    const char *vals[] = {"5", "1", "5", "2", "3", "10000", "s3seal", s->url, NULL};
    PGconn *c = PQconnectdbParams(keys, vals, 1);
    if (!c || PQstatus(c) != CONNECTION_OK) {
        s_set_err(s, c ? PQerrorMessage(c) : "out of memory");
        PQfinish(c);
        return NULL;
    }
    PQsetNoticeProcessor(c, s_quiet, NULL);
    bool timed_out = false;
    PGresult *r = s_exec_on(c, s_session, -1, NULL, NULL, NULL, NULL, &timed_out);
    bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
    if (!ok) {
        s_set_err(s, timed_out ? "the database did not answer in time" : PQerrorMessage(c));
        PQfinish(c);
        return NULL;
    }
    return c;
}

/* Outside a transaction, a broken connection is replaced. */
static bool s_ensure_conn(struct s_pg *s)
{
    if (s->conn && PQstatus(s->conn) == CONNECTION_OK) {
        return true;
    }
    if (s->in_txn) {
        return false; /* the transaction is lost; its end reports it */
    }
    PQfinish(s->conn);
    s->conn = NULL;
    if (s_now_ms() < s->retry_at_ms) {
        s->unreachable = true; /* s->err still says why */
        return false;
    }
    s->conn = s_connect(s);
    s->unreachable = s->conn == NULL;
    if (!s->conn) {
        s->retry_at_ms = s_now_ms() + S_BACKOFF_MS;
    }
    return s->conn != NULL;
}

/* What a failed result means. */
static enum s3s_store_rc s_failure(struct s_pg *s, const PGresult *r)
{
    if (!s->conn) {
        /* Closed by s_exec: no answer in time (s->err says so). */
        s->unreachable = true;
        return S3S_STORE_UNAVAILABLE;
    }
    const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    s_set_err(s, r && *PQresultErrorMessage(r) ? PQresultErrorMessage(r)
                                               : PQerrorMessage(s->conn));
    if (state && strncmp(state, "23", 2) == 0) {
        return S3S_STORE_CONFLICT;
    }
    bool lost = !state || PQstatus(s->conn) != CONNECTION_OK;
    /* 08: connection exceptions; 57014: statement timeout; 57P0x: the
     * server shutting down or starting; 55P03: lock timeout; 25006: a
     * server that is (now) read-only, e.g. a primary that was demoted. */
    bool out_of_reach = lost || strncmp(state, "08", 2) == 0 || strcmp(state, "57014") == 0 ||
                        strncmp(state, "57P0", 4) == 0 || strcmp(state, "55P03") == 0 ||
                        strcmp(state, "25006") == 0;
    if (state && strcmp(state, "25006") == 0) {
        /* Find the primary again at the next transaction. */
        PQfinish(s->conn);
        s->conn = NULL;
    }
    s->unreachable = out_of_reach;
    return out_of_reach ? S3S_STORE_UNAVAILABLE : S3S_STORE_ERROR;
}

/* Whether the connection broke (the server dropped it, a restart, a
 * failover), outside a transaction: the next statement may reconnect. */
static bool s_lost(struct s_pg *s)
{
    return !s->in_txn && (!s->conn || PQstatus(s->conn) != CONNECTION_OK);
}

/* Runs SQL without parameters (several statements allowed) under the lock. */
static enum s3s_store_rc s_run(struct s_pg *s, const char *sql)
{
    if (!s_ensure_conn(s)) {
        s->unreachable = true;
        return S3S_STORE_UNAVAILABLE;
    }
    PGresult *r = s_exec(s, sql, -1, NULL, NULL, NULL, NULL);
    ExecStatusType st = PQresultStatus(r);
    enum s3s_store_rc rc = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK ? S3S_STORE_DONE
                                                                           : s_failure(s, r);
    PQclear(r);
    if (rc == S3S_STORE_DONE) {
        s->unreachable = false;
    }
    return rc;
}

static s3s_result s_rc_result(enum s3s_store_rc rc)
{
    S3S_ENSURE(rc == S3S_STORE_DONE, s3s_store_rc_error(rc, S3S_ERR_KEYSTORE));
    return s3s_ok();
}

static void s_close(struct s3s_store *base)
{
    struct s_pg *s = s_of(base);
    PQfinish(s->conn);
    PQfinish(s->listen);
    pthread_mutex_destroy(&s->lock);
    s3s_free(&s->url);
    s3s_free(&s);
}

static s3s_result s_schema_create(struct s3s_store *base)
{
    struct s_pg *s = s_of(base);
    pthread_mutex_lock(&s->lock);
    /* Under the writers' lock: two instances creating the tables at once
     * would otherwise collide in the catalogue. */
    enum s3s_store_rc rc = s_run(s, "BEGIN;" S_WRITE_LOCK ";");
    if (rc == S3S_STORE_DONE) {
        rc = s_run(s, s_schema);
        enum s3s_store_rc end = s_run(s, rc == S3S_STORE_DONE ? "COMMIT" : "ROLLBACK");
        rc = rc == S3S_STORE_DONE ? end : rc;
    }
    pthread_mutex_unlock(&s->lock);
    return s_rc_result(rc);
}

static s3s_result s_begin(struct s3s_store *base, enum s3s_store_txn kind)
{
    struct s_pg *s = s_of(base);
    pthread_mutex_lock(&s->lock);
    /* S3S_STORE_ROWS: READ COMMITTED, and the rows it reads FOR UPDATE
     * are its lock (a locked row is read as the last writer left it). */
    const char *sql = kind == S3S_STORE_WRITE ? "BEGIN ISOLATION LEVEL READ COMMITTED;" S_WRITE_LOCK
                      : kind == S3S_STORE_ROWS ? "BEGIN ISOLATION LEVEL READ COMMITTED"
                                               : "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY";
    enum s3s_store_rc rc = s_run(s, sql);
    if (rc == S3S_STORE_UNAVAILABLE && s_lost(s)) {
        rc = s_run(s, sql); /* nothing was done yet: once more on a new connection */
    }
    if (rc == S3S_STORE_DONE) {
        s->in_txn = true;
    } else if (s->conn && PQtransactionStatus(s->conn) != PQTRANS_IDLE) {
        PQclear(s_exec(s, "ROLLBACK", -1, NULL, NULL, NULL, NULL)); /* the lock was not had */
    }
    pthread_mutex_unlock(&s->lock);
    return s_rc_result(rc);
}

static s3s_result s_commit(struct s3s_store *base)
{
    struct s_pg *s = s_of(base);
    pthread_mutex_lock(&s->lock);
    enum s3s_store_rc rc = S3S_STORE_UNAVAILABLE;
    if (s->conn && PQstatus(s->conn) == CONNECTION_OK) {
        PGresult *r = s_exec(s, "COMMIT", -1, NULL, NULL, NULL, NULL);
        /* COMMIT of a failed transaction "succeeds" as a ROLLBACK. */
        rc = PQresultStatus(r) == PGRES_COMMAND_OK && strcmp(PQcmdStatus(r), "COMMIT") == 0
                 ? S3S_STORE_DONE
                 : PQresultStatus(r) == PGRES_COMMAND_OK ? S3S_STORE_ERROR
                                                         : s_failure(s, r);
        PQclear(r);
    } else {
        s->unreachable = true;
        s_set_err(s, "the connection to the database was lost");
    }
    s->in_txn = false;
    pthread_mutex_unlock(&s->lock);
    return s_rc_result(rc);
}

static void s_rollback(struct s3s_store *base)
{
    struct s_pg *s = s_of(base);
    pthread_mutex_lock(&s->lock);
    if (s->conn && PQstatus(s->conn) == CONNECTION_OK &&
        PQtransactionStatus(s->conn) != PQTRANS_IDLE) {
        PQclear(s_exec(s, "ROLLBACK", -1, NULL, NULL, NULL, NULL));
    }
    s->in_txn = false;
    pthread_mutex_unlock(&s->lock);
}

/* `?` and `?N` -> `$N` outside quoted literals; counts the parameters. */
static s3s_result s_translate(const char *sql, char **out, int *n_params)
{
    size_t len = strlen(sql);
    char *t = s3s_malloc(len * 4 + 1);
    S3S_ENSURE(t != NULL, S3S_ERR_NOMEM);
    size_t o = 0;
    int next = 0, max = 0;
    bool quoted = false;
    for (size_t i = 0; i < len; i++) {
        char c = sql[i];
        if (c == '\'') {
            quoted = !quoted;
        }
        if (c != '?' || quoted) {
            t[o++] = c;
            continue;
        }
        int n = 0;
        while (i + 1 < len && sql[i + 1] >= '0' && sql[i + 1] <= '9' && n < 1000) {
            n = n * 10 + (sql[++i] - '0');
        }
        n = n ? n : ++next;
        max = n > max ? n : max;
        o += (size_t)snprintf(t + o, 8, "$%d", n);
    }
    t[o] = '\0';
    *out = t;
    *n_params = max;
    return s3s_ok();
}

static void s_clear_row(struct s_pg_stmt *st)
{
    int n = st->res ? PQnfields(st->res) : 0;
    for (int i = 0; st->decoded && i < n; i++) {
        s3s_free(&st->decoded[i]);
    }
}

static void s_clear_result(struct s_pg_stmt *st)
{
    s_clear_row(st);
    s3s_free(&st->decoded);
    PQclear(st->res);
    st->res = NULL;
    st->executed = false;
    st->row = -1;
}

static int s_hex(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                        : c >= 'A' && c <= 'F'   ? c - 'A' + 10
                                                                 : -1;
}

/* Decodes a bytea cell of the current row (text form: "\\x" and two hex
 * digits a byte) into st->decoded[col], NUL-terminated. */
static enum s3s_store_rc s_decode(struct s_pg_stmt *st, int col)
{
    const char *v = PQgetvalue(st->res, st->row, col);
    size_t len = (size_t)PQgetlength(st->res, st->row, col);
    if (len < 2 || v[0] != '\\' || v[1] != 'x' || len % 2) {
        return S3S_STORE_ERROR;
    }
    uint8_t *d = s3s_malloc((len - 2) / 2 + 1);
    if (!d) {
        return S3S_STORE_NOMEM;
    }
    for (size_t i = 2; i < len; i += 2) {
        int hi = s_hex(v[i]), lo = s_hex(v[i + 1]);
        if (hi < 0 || lo < 0) {
            s3s_free(&d);
            return S3S_STORE_ERROR;
        }
        d[(i - 2) / 2] = (uint8_t)(hi << 4 | lo);
    }
    d[(len - 2) / 2] = 0;
    st->decoded[col] = d;
    return S3S_STORE_ROW;
}

static s3s_result s_prepare(struct s3s_store *base, const char *sql, struct s3s_store_stmt **out)
{
    *out = NULL;
    struct s_pg_stmt *st = s3s_calloc(1, sizeof(*st));
    S3S_ENSURE(st != NULL, S3S_ERR_NOMEM);
    st->base.ops = base->ops;
    st->s = s_of(base);
    st->row = -1;
    s3s_result res = s_translate(sql, &st->sql, &st->n_params);
    if (s3s_is_ok(res) && st->n_params > 0) {
        st->params = s3s_calloc((size_t)st->n_params, sizeof(*st->params));
        res = st->params ? s3s_ok() : s3s_err(S3S_ERR_NOMEM);
    }
    if (s3s_failed(res)) {
        s3s_free(&st->sql);
        s3s_free(&st);
        return res;
    }
    *out = &st->base;
    return s3s_ok();
}

/* Parameter i (1-based) takes a copy of n bytes (plus a NUL). */
static void s_bind(struct s3s_store_stmt *base, int i, int kind, const void *p, size_t n)
{
    struct s_pg_stmt *st = s_st(base);
    if (i < 1 || i > st->n_params) {
        return; /* no such parameter: the statement fails as SQLite's would not bind */
    }
    struct s_param *pa = &st->params[i - 1];
    s3s_free(&pa->val);
    pa->kind = S_NONE;
    pa->len = 0;
    if (kind == S_NONE) {
        return;
    }
    pa->val = s3s_malloc(n + 1);
    if (!pa->val) {
        st->nomem = true; /* the statement fails */
        return;
    }
    if (n) {
        memcpy(pa->val, p, n);
    }
    pa->val[n] = '\0';
    pa->len = n;
    pa->kind = kind;
}

static void s_bind_int64(struct s3s_store_stmt *st, int i, int64_t v)
{
    char b[24];
    int n = snprintf(b, sizeof(b), "%lld", (long long)v);
    s_bind(st, i, S_INT, b, (size_t)n);
}

static void s_bind_text(struct s3s_store_stmt *st, int i, const char *p, size_t n)
{
    s_bind(st, i, S_TEXT, p, n);
}

static void s_bind_blob(struct s3s_store_stmt *st, int i, const void *p, size_t n)
{
    s_bind(st, i, S_BLOB, p, n);
}

static void s_bind_null(struct s3s_store_stmt *st, int i) { s_bind(st, i, S_NONE, NULL, 0); }

static enum s3s_store_rc s_execute(struct s_pg_stmt *st)
{
    struct s_pg *s = st->s;
    int n = st->n_params;
    Oid types[64];
    const char *vals[64];
    int lens[64], fmts[64];
    if (n > 64) {
        return S3S_STORE_ERROR;
    }
    if (st->nomem) {
        return S3S_STORE_NOMEM;
    }
    for (int i = 0; i < n; i++) {
        const struct s_param *pa = &st->params[i];
        types[i] = pa->kind == S_INT ? S_OID_INT8 : pa->kind == S_BLOB ? S_OID_BYTEA
                                                  : pa->kind == S_TEXT ? S_OID_TEXT
                                                                       : 0;
        vals[i] = pa->kind == S_NONE ? NULL : pa->val;
        lens[i] = (int)pa->len;
        fmts[i] = pa->kind == S_BLOB ? 1 : 0;
    }
    pthread_mutex_lock(&s->lock);
    enum s3s_store_rc rc;
    if (!s_ensure_conn(s)) {
        s->unreachable = true;
        rc = S3S_STORE_UNAVAILABLE;
    } else {
        st->res = s_exec(s, st->sql, n, types, vals, lens, fmts);
        if (PQresultStatus(st->res) == PGRES_FATAL_ERROR && s_lost(s) &&
            strncmp(st->sql, "SELECT", 6) == 0 && s_ensure_conn(s)) {
            /* A read on its own, on a connection that broke: once more on a
             * new one. */
            PQclear(st->res);
            st->res = s_exec(s, st->sql, n, types, vals, lens, fmts);
        }
        ExecStatusType es = PQresultStatus(st->res);
        if (es == PGRES_TUPLES_OK || es == PGRES_COMMAND_OK) {
            st->changes = (size_t)strtoull(PQcmdTuples(st->res), NULL, 10);
            s->unreachable = false;
            rc = S3S_STORE_DONE;
        } else {
            rc = s_failure(s, st->res);
        }
    }
    pthread_mutex_unlock(&s->lock);
    if (rc == S3S_STORE_DONE && st->res && PQnfields(st->res) > 0) {
        st->decoded = s3s_calloc((size_t)PQnfields(st->res), sizeof(*st->decoded));
        rc = st->decoded ? rc : S3S_STORE_NOMEM;
    }
    return rc;
}

static enum s3s_store_rc s_step(struct s3s_store_stmt *base)
{
    struct s_pg_stmt *st = s_st(base);
    if (!st->executed) {
        st->executed = true;
        enum s3s_store_rc rc = s_execute(st);
        if (rc != S3S_STORE_DONE) {
            return rc;
        }
    }
    s_clear_row(st);
    st->row++;
    if (!st->res || st->row >= PQntuples(st->res)) {
        return S3S_STORE_DONE;
    }
    for (int col = 0; col < PQnfields(st->res); col++) {
        if (PQftype(st->res, col) == S_OID_BYTEA && !PQgetisnull(st->res, st->row, col)) {
            enum s3s_store_rc rc = s_decode(st, col);
            if (rc != S3S_STORE_ROW) {
                return rc;
            }
        }
    }
    return S3S_STORE_ROW;
}

static void s_reset(struct s3s_store_stmt *st) { s_clear_result(s_st(st)); }

static bool s_valid_cell(struct s_pg_stmt *st, int col)
{
    return st->res && st->row >= 0 && st->row < PQntuples(st->res) && col >= 0 &&
           col < PQnfields(st->res);
}

static bool s_column_null(struct s3s_store_stmt *base, int col)
{
    struct s_pg_stmt *st = s_st(base);
    return !s_valid_cell(st, col) || PQgetisnull(st->res, st->row, col);
}

static int64_t s_column_int64(struct s3s_store_stmt *base, int col)
{
    struct s_pg_stmt *st = s_st(base);
    if (s_column_null(base, col)) {
        return 0;
    }
    return (int64_t)strtoll(PQgetvalue(st->res, st->row, col), NULL, 10);
}

static const uint8_t *s_column_bytes(struct s3s_store_stmt *base, int col, size_t *n)
{
    struct s_pg_stmt *st = s_st(base);
    *n = 0;
    if (s_column_null(base, col)) {
        return NULL;
    }
    size_t len = (size_t)PQgetlength(st->res, st->row, col);
    if (PQftype(st->res, col) == S_OID_BYTEA) {
        *n = (len - 2) / 2; /* decoded when the row was stepped to */
        return st->decoded[col];
    }
    *n = len;
    return (const uint8_t *)PQgetvalue(st->res, st->row, col);
}

static size_t s_changes(struct s3s_store_stmt *st) { return s_st(st)->changes; }

static void s_finalize(struct s3s_store_stmt *base)
{
    struct s_pg_stmt *st = s_st(base);
    if (!st) {
        return;
    }
    s_clear_result(st);
    for (int i = 0; st->params && i < st->n_params; i++) {
        s3s_free(&st->params[i].val);
    }
    s3s_free(&st->params);
    s3s_free(&st->sql);
    s3s_free(&st);
}

/* Runs one statement with text parameters; *out (may be NULL) gets the first
 * row's first column as an integer. */
static s3s_result s_query(struct s3s_store *base, const char *sql, const char *p1,
                          const char *p2, int64_t *out)
{
    struct s3s_store_stmt *st = NULL;
    S3S_GUARD(s_prepare(base, sql, &st));
    if (p1) {
        s_bind_text(st, 1, p1, strlen(p1));
    }
    if (p2) {
        s_bind_text(st, 2, p2, strlen(p2));
    }
    enum s3s_store_rc rc = s_step(st);
    if (out) {
        *out = rc == S3S_STORE_ROW ? s_column_int64(st, 0) : 0;
    }
    s_finalize(st);
    S3S_ENSURE(rc == S3S_STORE_ROW || rc == S3S_STORE_DONE,
               s3s_store_rc_error(rc, S3S_ERR_KEYSTORE));
    return s3s_ok();
}

static s3s_result s_generation_get(struct s3s_store *base, const char *name, uint64_t *v)
{
    int64_t n = 0;
    S3S_GUARD(s_query(base, "SELECT value FROM counters WHERE name = ?", name, NULL, &n));
    *v = (uint64_t)n;
    return s3s_ok();
}

static s3s_result s_announce(struct s3s_store *base, unsigned what)
{
    char bits[16];
    snprintf(bits, sizeof(bits), "%u", what);
    return s_query(base, "SELECT pg_notify('" S_CHANNEL "', ?)", bits, NULL, NULL);
}

static s3s_result s_generation_bump(struct s3s_store *base, const char *name, unsigned what)
{
    S3S_GUARD(s_query(base,
                      "INSERT INTO counters(name, value) VALUES (?, 1) "
                      "ON CONFLICT(name) DO UPDATE SET value = counters.value + 1",
                      name, NULL, NULL));
    return s_announce(base, what);
}

static s3s_result s_generation_set(struct s3s_store *base, const char *name, uint64_t v)
{
    char num[24];
    snprintf(num, sizeof(num), "%llu", (unsigned long long)v);
    return s_query(base,
                   "INSERT INTO counters(name, value) VALUES (?1, CAST(?2 AS BIGINT)) "
                   "ON CONFLICT(name) DO UPDATE SET value = CAST(?2 AS BIGINT)",
                   name, num, NULL);
}

/* (Re)opens the listening connection. */
static s3s_result s_listen_open(struct s_pg *s, int *fd)
{
    PQfinish(s->listen);
    s->listen = NULL;
    pthread_mutex_lock(&s->lock);
    /* As for the statements' connection: not again right after a failure. */
    PGconn *c = NULL;
    if (s_now_ms() >= s->retry_at_ms) {
        c = s_connect(s);
        s->retry_at_ms = c ? 0 : s_now_ms() + S_BACKOFF_MS;
    }
    pthread_mutex_unlock(&s->lock);
    S3S_ENSURE(c != NULL, S3S_ERR_KEYSTORE_UNAVAILABLE);
    bool timed_out = false;
    PGresult *r = s_exec_on(c, "LISTEN " S_CHANNEL, -1, NULL, NULL, NULL, NULL, &timed_out);
    bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
    if (!ok || PQsetnonblocking(c, 1) != 0) {
        PQfinish(c);
        S3S_BAIL(S3S_ERR_KEYSTORE_UNAVAILABLE);
    }
    s->listen = c;
    *fd = PQsocket(c);
    return s3s_ok();
}

static s3s_result s_listen(struct s3s_store *base, int *fd)
{
    struct s_pg *s = s_of(base);
    if (s->listen && PQstatus(s->listen) == CONNECTION_OK) {
        *fd = PQsocket(s->listen);
        return s3s_ok();
    }
    return s_listen_open(s, fd);
}

static s3s_result s_notices(struct s3s_store *base, unsigned *what, int *fd)
{
    struct s_pg *s = s_of(base);
    *what = 0;
    if (!s->listen || PQconsumeInput(s->listen) != 1 || PQstatus(s->listen) != CONNECTION_OK) {
        /* Lost: whatever was announced meanwhile is unknown. */
        S3S_GUARD(s_listen_open(s, fd));
        *what = S3S_KEYSTORE_CHANGED_ALL;
        return s3s_ok();
    }
    *fd = PQsocket(s->listen);
    PGnotify *n;
    while ((n = PQnotifies(s->listen)) != NULL) {
        unsigned long bits = strtoul(n->extra, NULL, 10);
        *what |= bits ? (unsigned)bits & S3S_KEYSTORE_CHANGED_ALL : S3S_KEYSTORE_CHANGED_ALL;
        PQfreemem(n);
    }
    return s3s_ok();
}

static void s_purge(struct s3s_store *base)
{
    struct s_pg *s = s_of(base);
    /* Dead rows' bytes stay in the table's pages until they are reused;
     * VACUUM makes them reusable now. Best effort. */
    pthread_mutex_lock(&s->lock);
    if (!s->in_txn) {
        (void)s_run(s, "VACUUM kms_key_versions");
    }
    pthread_mutex_unlock(&s->lock);
}

static const char *s_errmsg(struct s3s_store *base) { return s_of(base)->err; }

static bool s_unreachable(struct s3s_store *base) { return s_of(base)->unreachable; }

static const struct s3s_store_ops s_ops = {
    .name = "postgresql",
    .for_update = " FOR UPDATE",
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

s3s_result s3s_store_pg_open(const char *url, struct s3s_store **out, char *why, size_t why_len)
{
    *out = NULL;
    struct s_pg *s = s3s_calloc(1, sizeof(*s));
    S3S_ENSURE(s != NULL, S3S_ERR_NOMEM);
    s->base.ops = &s_ops;
    pthread_mutex_init(&s->lock, NULL);
    s->url = s3s_strdup(url);
    char *parse_err = NULL;
    PQconninfoOption *opts = s->url ? PQconninfoParse(url, &parse_err) : NULL;
    char loc[256];
    s3s_store_location_display(url, loc, sizeof(loc));
    if (!opts) {
        s3s_keystore__why(why, why_len, "keystore %s: %s", loc,
                          parse_err ? parse_err : "out of memory");
        PQfreemem(parse_err);
        enum s3s_error code = s->url ? S3S_ERR_KEYSTORE : S3S_ERR_NOMEM;
        s_close(&s->base);
        S3S_BAIL(code);
    }
    PQconninfoFree(opts);
    s->conn = s_connect(s);
    if (!s->conn) {
        s3s_keystore__why(why, why_len, "keystore %s: %s", loc, s->err);
        s_close(&s->base);
        S3S_BAIL(S3S_ERR_KEYSTORE_UNAVAILABLE);
    }
    *out = &s->base;
    return s3s_ok();
}
