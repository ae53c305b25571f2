/*
 * audit_private.h - shared by the audit trail's two back ends: the file
 * (audit.c) and the keystore's database (audit_store.c). One record format,
 * one hash rule and one line checker serve both, so a record verifies the
 * same wherever it is kept.
 */
#ifndef S3S_KEYSTORE_AUDIT_PRIVATE_H
#define S3S_KEYSTORE_AUDIT_PRIVATE_H

#include <json-c/json.h>
#include <pthread.h>

#include "keystore/audit.h"

#define S3S_AUDIT__DIGEST_LEN 32
#define S3S_AUDIT__HEX_LEN (2 * S3S_AUDIT__DIGEST_LEN)

/* What one record contributes to a chain. */
struct s3s_audit__link {
    uint64_t seq;                         /* 0: no record yet */
    uint8_t hash[S3S_AUDIT__DIGEST_LEN]; /* all zeros when seq is 0: the first prev */
};

struct s3s_audit__ops {
    /* Chains obj (its seq and prev still null) onto the trail's newest
     * record and stores it; called under the handle's mutex. Errors as
     * s3s_audit_append's, each meaning nothing was stored. */
    s3s_result (*append)(struct s3s_audit *a, struct json_object *obj);
    /* Frees the back end's handle (s3s_audit__clean_up included). */
    void (*close)(struct s3s_audit *a);
};

/* Every handle starts with this. */
struct s3s_audit {
    const struct s3s_audit__ops *ops;
    const char *instance; /* the chain's instance (owned by the back end); NULL: a file */
    pthread_mutex_t mu;   /* one append at a time per handle */
};

/* Sets the common part up; S3S_ERR_NOMEM when the mutex cannot be made. */
S3S_RESULT s3s_audit__init(struct s3s_audit *a, const struct s3s_audit__ops *ops,
                           const char *instance);
void s3s_audit__clean_up(struct s3s_audit *a);

/* The lower-case hex of a digest, NUL-terminated. */
void s3s_audit__hex(const uint8_t d[S3S_AUDIT__DIGEST_LEN], char out[S3S_AUDIT__HEX_LEN + 1]);

/* Checks rec and builds its JSON object, fields in audit.h's order, with
 * "instance" after "time" when instance is not NULL; seq and prev are null
 * until s3s_audit__render. *out is the caller's (json_object_put). */
S3S_RESULT s3s_audit__record_new(const struct s3s_audit_record *rec, const char *instance,
                                 struct json_object **out);

/* Chains obj onto prev and appends its line (hash included) and a newline
 * to out; *next is what the line adds to the chain. */
S3S_RESULT s3s_audit__render(struct json_object *obj, const struct s3s_audit__link *prev,
                             struct s3s_buf *out, struct s3s_audit__link *next);

/* Checks one line (without its newline) on its own: a JSON object ending in
 * a hash of its bytes, with a positive seq, a well-formed prev and, when
 * instance is not NULL, that "instance". How it links to the line before is
 * the caller's to check. S3S_ERR_AUDIT_BROKEN (with why) when it is no
 * intact record for that chain. */
S3S_RESULT s3s_audit__line_parse(struct s3s_cur line, const char *instance,
                                 struct s3s_audit__link *link,
                                 uint8_t prev[S3S_AUDIT__DIGEST_LEN], char *why, size_t why_len);

/* Checks a parsed line's link against the record before it (*prev, then
 * updated to the line's). S3S_ERR_AUDIT_BROKEN with why. */
S3S_RESULT s3s_audit__chain_check(struct s3s_cur line, const char *instance,
                                  struct s3s_audit__link *prev, char *why, size_t why_len);

#endif /* S3S_KEYSTORE_AUDIT_PRIVATE_H */
