/*
 * audit.h - the audit trail of key use: one JSON line per use of a key
 * (GenerateDataKey, Decrypt, ReEncrypt) and per key administration, appended
 * to the file named by `audit_log`, or, with `audit_log: keystore`, to the
 * keystore's database, where a fleet's instances each keep a chain of their
 * own (s3s_audit_open_keystore, below). Both are written through the same
 * handle, so callers do not care which one they have.
 *
 * Records are hash-chained: each line ends with "prev" (the hash of the line
 * before it; 64 zeros for the first line of a file) and "hash", the SHA-256
 * (lower-case hex) of the line's own bytes up to the `,"hash":` that ends
 * it, followed by "}". So altering, removing, inserting or reordering lines
 * is detectable by s3s_audit_verify; removing lines at the very end is not
 * (no record can vouch for what comes after it).
 *
 * Appending is safe from several threads (a mutex) and several processes
 * (an exclusive flock around "read the last hash, write the line"), so
 * servers and the CLI can share one file. An append that cannot be written
 * completely fails; callers must then not use the key (fail closed).
 *
 * A record is one line of JSON, its fields always in this order:
 *
 *   {"time":"2026-12-01T21:50:00.123Z","seq":1,"operation":"Decrypt",
 *    "result":"Success","principal":"...","accessKeyId":"...",
 *    "sourceIPAddress":"...","requestId":"...","keyArn":"...","keyVersion":1,
 *    "bucket":"...","object":"...","encryptionContext":{"k":"v"},
 *    "detail":"...","prev":"<64 hex>","hash":"<64 hex>"}
 *
 * "seq" is the record's 1-based position in the file; absent strings, a
 * keyVersion of 0 and a missing context are null; "detail" is left out when
 * there is none. Strings are JSON-escaped by json-c, '/' is not escaped and
 * UTF-8 is kept as it is.
 *
 * The chain has no key: it shows accidental damage and edits by anyone who
 * does not rewrite every later line, not a forger who recomputes them all.
 * Copying the newest hash somewhere the log's writers cannot change (a
 * ticket, another host) anchors everything before it.
 */
#ifndef S3S_KEYSTORE_AUDIT_H
#define S3S_KEYSTORE_AUDIT_H

#include "common/common.h"
#include "keystore/policy.h"

struct s3s_audit;

/* The longest record, its newline included. A record that would be longer is
 * refused (S3S_ERR_TOO_BIG) and a longer line is a break, so reading a line
 * back never needs more than this. */
#define S3S_AUDIT_MAX_RECORD (64 * 1024)

/* Opens (creating, mode 0600) the log for appending. fsync: every append is
 * flushed to disk (fdatasync) before it returns, and the log's directory is
 * flushed here so that a new log's name survives a crash. The path must
 * name a regular file. A handle belongs to one process: open another one
 * after fork(), since the flock is shared by every copy of the descriptor.
 * Errors are S3S_ERR_IO (why says what failed) and S3S_ERR_NOMEM. */
S3S_RESULT s3s_audit_open(const char *path, bool fsync, struct s3s_audit **out, char *why,
                          size_t why_len);
void s3s_audit_close(struct s3s_audit *a);

/* One record. Every string may be NULL (written as null); time 0 is now. */
struct s3s_audit_record {
    int64_t time_ms;          /* Unix milliseconds; written as ISO 8601 UTC "time" */
    const char *operation;    /* "GenerateDataKey", "Decrypt", "ReEncrypt", "CreateKey", ... */
    const char *result;       /* "Success", or the error code ("AccessDenied",
                                 "KMS.DisabledException", ...) */
    const char *principal;    /* the caller's ARN, or "s3seal-cli:<user>" / "s3seal" */
    const char *access_key;   /* the access key id of the request */
    const char *source;       /* the client's address */
    const char *request_id;
    const char *key_arn;
    uint32_t key_version;     /* 0: not applicable (written as null) */
    const char *bucket;
    const char *object;
    const struct s3s_kms_context *context; /* may be NULL */
    const char *detail;       /* optional free text (e.g. what an admin call changed) */
};

/* Appends one record, durably if opened with fsync. The record is copied;
 * rec and its strings stay the caller's. Errors, each meaning "nothing was
 * recorded":
 *   S3S_ERR_INVALID_ARG   a NULL argument, a string that is not UTF-8, or a
 *                         time before 1970 or after 9999
 *   S3S_ERR_TOO_BIG       the record would exceed S3S_AUDIT_MAX_RECORD
 *   S3S_ERR_NOMEM
 *   S3S_ERR_AUDIT_BROKEN  the file does not end with an intact record (a line
 *                         cut short, or an altered one), so nothing is
 *                         chained onto it until an operator looks
 *   S3S_ERR_KMS_INTERNAL  the file could not be locked, read, written or
 *                         flushed
 * A write that fails part-way is undone (the file is truncated back to its
 * size before the append, under the lock), so a full disk costs the records
 * it refuses and never breaks the chain for the ones after it. The same
 * holds when the flush fails: the caller will not use the key, so the log
 * must not say it did. Should the truncation fail too, the cut line stays
 * and later appends fail with S3S_ERR_AUDIT_BROKEN rather than chain onto
 * it. Failures are also logged (subject "audit"). */
S3S_RESULT s3s_audit_append(struct s3s_audit *a, const struct s3s_audit_record *rec);

/*
 * The trail in the keystore's database (audit_store.c): table audit_records
 * holds each record as its JSON line, without the newline, by instance and
 * seq; table audit_heads holds each instance's newest seq and hash. Records
 * are the lines a file would hold, with "instance" (the chain's name) after
 * "time", and hashed by the same rule; seq and prev run per instance.
 *
 * An append is one transaction that locks the instance's head row (SELECT
 * ... FOR UPDATE on PostgreSQL; a write transaction on SQLite), checks that
 * the record it names is intact, inserts the new record and moves the head;
 * so handles of the same instance in any number of threads and processes
 * never fork its chain, and it is committed before s3s_audit_append returns.
 * Instances do not wait on each other. An append blocks its caller for the
 * transaction (the keystore's bounded waits apply: a database out of reach
 * fails it within seconds). Errors as for a file; a failure
 * rolls everything back (nothing recorded), S3S_ERR_KMS_INTERNAL when the
 * database refused or could not be reached, S3S_ERR_AUDIT_BROKEN when the
 * newest record is not intact. The head vouches for the end of the chain:
 * deleting the newest records is a break too.
 */

/* Opens the trail of `instance` (1 to 255 bytes of UTF-8 without control
 * characters) in the keystore at `location` (keystore.h's locations: an
 * SQLite file, created if absent, or a PostgreSQL URI), on a connection of
 * its own, and creates the tables that are missing. Records are not secret:
 * no master key is needed. Errors: S3S_ERR_INVALID_ARG (the name),
 * S3S_ERR_KEYSTORE, S3S_ERR_KEYSTORE_UNAVAILABLE, S3S_ERR_NOMEM; why says
 * what failed (a URI's password never). */
S3S_RESULT s3s_audit_open_keystore(const char *location, const char *instance,
                                   struct s3s_audit **out, char *why, size_t why_len);

/* One instance's chain as s3s_audit_verify_keystore found it (borrowed for
 * the callback's duration). */
struct s3s_audit_chain {
    const char *instance;
    uint64_t records; /* intact records, seq 1 on */
    char newest[65];  /* the hash of the newest intact record (64 zeros: none) */
    bool broken;
    uint64_t bad_seq; /* broken: the seq at which the chain breaks */
    const char *why;  /* broken: what is wrong there */
};
typedef void s3s_audit_chain_fn(void *ctx, const struct s3s_audit_chain *chain);

/* Verifies the chains in the keystore at `location` (not created): every
 * instance's, in name order, or only `instance`'s (NULL: all), from one
 * snapshot. Each chain's records must run seq 1, 2, ... without a gap, each
 * an intact record of that instance (as s3s_audit_verify checks a line)
 * whose prev is the hash of the one before, and the head must name the
 * newest. fn hears of each chain; *chains counts them. The result is
 * S3S_ERR_AUDIT_BROKEN when any chain is broken (an instance asked for that
 * has no records is one), S3S_ERR_KEYSTORE or S3S_ERR_KEYSTORE_UNAVAILABLE
 * (with why) when the records cannot be read. */
S3S_RESULT s3s_audit_verify_keystore(const char *location, const char *instance,
                                     s3s_audit_chain_fn *fn, void *ctx, size_t *chains,
                                     char *why, size_t why_len);

/* Checks a log's chain: every line is a JSON object, its seq is one more
 * than the line before's (1 first), its prev is that line's hash (64 zeros
 * first) and its hash matches its bytes; the last line ends with a newline.
 * The file is checked up to its size when verification starts (read under
 * a shared flock, so an append in progress is not mistaken for a cut line).
 * *records counts the intact records; on a break, *bad_line is its 1-based
 * number, why says what is wrong, and the result is S3S_ERR_AUDIT_BROKEN.
 * An empty file is intact. A file that cannot be read is S3S_ERR_IO. */
S3S_RESULT s3s_audit_verify(const char *path, uint64_t *records, uint64_t *bad_line, char *why,
                            size_t why_len);

#endif /* S3S_KEYSTORE_AUDIT_H */
