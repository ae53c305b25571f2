/*
 * bucket_enc.h - the S3 bucket encryption API: PutBucketEncryption,
 * GetBucketEncryption and DeleteBucketEncryption (PUT, GET, DELETE
 * /bucket?encryption), answered by s3seal itself and never forwarded. A
 * default set through it is stored in the keystore, so every s3seal sharing
 * that keystore applies it; it overrides the config file's
 * `default_encryption` (and `kms_key_id`) for that bucket, while
 * `require_encryption` stays a config-file setting.
 * PutBucketCors, GetBucketCors and DeleteBucketCors (?cors) are answered
 * and stored the same way (the document is validated and formatted by
 * cors.h; the CORS stage, cors_stage.c, reads it through s3s_bucket_cors).
 *
 * No event loop waits for SQLite or the backend on its behalf: a request's
 * backend check (the bucket must exist) and keystore write run on the libuv
 * thread pool and its answer leaves from the after-work callback; lookups
 * read an in-memory table that this process republishes after each of its
 * own writes (so the next request sees the change, on every worker) and
 * re-reads from the keystore every S3S_BUCKET_ENC_REFRESH_MS (changes made
 * through other instances).
 */
#ifndef S3S_PROXY_BUCKET_ENC_H
#define S3S_PROXY_BUCKET_ENC_H

#include "common/common.h"
#include "proxy/config.h"

/* How often the table is re-read from the keystore (like the root keys). */
#define S3S_BUCKET_ENC_REFRESH_MS 10000
/* The largest PutBucketEncryption body accepted (a rule is ~300 bytes). */
#define S3S_BUCKET_ENC_MAX_BODY (64 * 1024)

struct s3s_worker;
struct s3s_req;
struct s3s_policy;
/* A request s3seal answers (bucket_enc.c). */
struct s3s_bucket_enc_op;
/* A worker's reference to the current table (bucket_enc.c). */
struct s3s_bucket_enc_view;

/* One bucket's default encryption rule. */
struct s3s_bucket_enc_rule {
    /* AES256, or KMS: SSE-KMS (aws:kms, and aws:kms:dsse, which s3seal
     * applies as aws:kms). */
    enum s3s_sse_mode mode;
    char algorithm[32]; /* "AES256", "aws:kms" or "aws:kms:dsse", as returned */
    char *kms_key_id;   /* NULL: none */
    bool bucket_key;    /* BucketKeyEnabled */
};

void s3s_bucket_enc_rule_clean_up(struct s3s_bucket_enc_rule *rule);

/*
 * PutBucketEncryption's body, a ServerSideEncryptionConfiguration, validated
 * as AWS does: S3S_ERR_MALFORMED_XML for a document that is not well-formed,
 * has a DTD, or does not follow the schema (not exactly one Rule, no
 * SSEAlgorithm, an unknown algorithm or element, a bad BucketKeyEnabled);
 * S3S_ERR_KMS_KEY_NOT_APPLICABLE for a KMSMasterKeyID with AES256.
 */
S3S_RESULT s3s_bucket_enc_parse(struct s3s_cur xml, struct s3s_bucket_enc_rule *rule);
/* GetBucketEncryption's answer for a rule (appended to out). */
S3S_RESULT s3s_bucket_enc_format(const struct s3s_bucket_enc_rule *rule, struct s3s_buf *out);

/*
 * A bucket's effective defaults: the mode, KMS key and bucket key stored
 * through the API, else the config file's; `require` is the config file's
 * require_encryption. kms_key_id is borrowed until the next call on this
 * worker (or NULL).
 */
struct s3s_bucket_defaults {
    enum s3s_sse_mode mode;
    const char *kms_key_id;
    bool kms_bucket_key;
    bool require;
};
void s3s_bucket_default(struct s3s_worker *w, struct s3s_cur bucket,
                        struct s3s_bucket_defaults *out);

/*
 * Who owns a bucket and its bucket policy (authz.h): the owner recorded in
 * the keystore (CreateBucket through s3seal), else the config file's
 * `buckets.NAME.owner`, else `account_id`; `recorded` is false in the last
 * case. The policy (NULL: none) and owner are borrowed until the next call
 * on this worker. policy_unreadable: a stored policy this version cannot
 * read (the bucket is then closed to all but its owner's root).
 */
struct s3s_bucket_access {
    const char *owner;
    bool recorded;
    const struct s3s_policy *policy;
    bool policy_unreadable;
};
void s3s_bucket_access(struct s3s_worker *w, struct s3s_cur bucket,
                       struct s3s_bucket_access *out);

/* A bucket's CORS configuration, stored through PutBucketCors (cors.h), or
 * NULL (none, or one this version cannot read). Borrowed until the next
 * call on this worker. */
struct s3s_cors_config;
const struct s3s_cors_config *s3s_bucket_cors(struct s3s_worker *w, struct s3s_cur bucket);

/* CreateBucket: on the thread pool, the name is claimed for `account`
 * unless the backend has the bucket already (then it is recorded_owner's,
 * else its configured owner's) or another claim came first
 * (r->accept_error = S3S_ERR_BUCKET_ALREADY_EXISTS); a recorded owner of a
 * bucket the backend no longer has loses the name. Then
 * s3s_req_headers_resume. A claim the backend does not confirm (its answer
 * is no 2xx) is taken back when the request ends, and a bucket that
 * DeleteBucket removed loses its owner, policy and default encryption. */
S3S_RESULT s3s_bucket_claim_start(struct s3s_req *r, const char *account,
                                  const char *recorded_owner);
/* A keystore is there to record owners and policies in. */
bool s3s_bucket_enc_persist(struct s3s_worker *w);

/* Worker start-up (loads the table; the first worker opens the keystore) and
 * clean-up, once the worker's loop has closed its handles. Blocking: call
 * them before the loop runs and after it stopped. */
S3S_RESULT s3s_bucket_enc_attach(struct s3s_worker *w);
/* Re-reads the table now (a change was announced; ks_watch.c), or right
 * after the refresh that is running. Loop thread. */
void s3s_bucket_enc_refresh(struct s3s_worker *w);
void s3s_bucket_enc_detach(struct s3s_worker *w);

/*
 * The request pipeline. After authentication, s3s_bucket_enc_accept takes
 * a bucket-level ?encryption, ?policy, ?policyStatus or ?cors request
 * (bucket policies and CORS configurations are s3seal's too:
 * PutBucketPolicy and PutBucketCors validate and store the document, the
 * Get calls return it, the Delete calls remove it, GetBucketPolicyStatus
 * says whether the policy is public) (sets r->bucket_enc) or leaves any
 * other alone; for a taken one, s3s_upstream_start, s3s_upstream_kick_send
 * and s3s_upstream_abort call the three below instead of talking to the
 * backend.
 */
S3S_RESULT s3s_bucket_enc_accept(struct s3s_req *r);
/* Starts the answer once the body is complete and verified (at once for a
 * request without a body); errors returned are the caller's to send. */
S3S_RESULT s3s_bucket_enc_start(struct s3s_req *r);
/* More body arrived, or all of it: starts the answer when it is complete. */
void s3s_bucket_enc_kick(struct s3s_req *r);
/* The request is over (answered, failed or gone): forgets it; work still on
 * the thread pool finishes without it. */
void s3s_bucket_enc_release(struct s3s_req *r);

#endif
