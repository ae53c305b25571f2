/*
 * audit.h - the audit trail of key use: one JSON line per use of a key
 * (GenerateDataKey, Decrypt, ReEncrypt) and per key administration, appended
 * to the file named by `audit_log`.
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
