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
 */
#ifndef S3S_KEYSTORE_AUDIT_H
#define S3S_KEYSTORE_AUDIT_H

#include "common/common.h"
#include "keystore/policy.h"

struct s3s_audit;

/* Opens (creating, mode 0600) the log for appending. fsync: every append is
 * flushed to disk (fdatasync) before it returns. */
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

/* Appends one record, durably if opened with fsync. */
S3S_RESULT s3s_audit_append(struct s3s_audit *a, const struct s3s_audit_record *rec);

/* Checks a log's chain. *records counts the lines read; on a break,
 * *bad_line is its 1-based number and why says what is wrong, and the
 * result is S3S_ERR_AUDIT_BROKEN. An empty file is intact. */
S3S_RESULT s3s_audit_verify(const char *path, uint64_t *records, uint64_t *bad_line, char *why,
                            size_t why_len);

#endif /* S3S_KEYSTORE_AUDIT_H */
