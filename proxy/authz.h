/*
 * authz.h - who may do what: every S3 request, once authenticated and
 * classified (s3_op.h), is decided here before anything else acts on it.
 *
 * The model is S3's own. Every bucket has an owning account (bucket_enc.h
 * keeps the owners: recorded by CreateBucket through s3seal, else the
 * config's `buckets.NAME.owner`, else `account_id`). A credential belongs to
 * the account of its principal; it may carry an IAM identity policy
 * (`policy_file`). Without one it acts as its account's root: everything on
 * its own account's buckets, nothing on another account's. A bucket may have
 * a bucket policy (PutBucketPolicy, served by s3seal).
 *
 *  - an explicit Deny in either policy refuses;
 *  - within the bucket owner's account, an Allow from the identity policy
 *    (or the root's implicit one) or from the bucket policy allows;
 *  - across accounts both must allow;
 *  - otherwise the request is refused (an implicit deny).
 *
 * s3s_authz_evaluate is the decision alone: pure, no request, no loop,
 * unit-tested. s3s_authz_check applies it to a request (authz.c).
 */
#ifndef S3S_PROXY_AUTHZ_H
#define S3S_PROXY_AUTHZ_H

#include "common/common.h"
#include "keystore/policy.h"

struct s3s_authz_input {
    const char *principal; /* the caller's ARN */
    const char *account;   /* the caller's account (12 digits) */
    const char *action;    /* "s3:GetObject" */
    const char *resource;  /* arn:aws:s3:::BUCKET[/KEY], or arn:aws:s3:::* for ListBuckets */
    /* The bucket's owner; NULL for an action on no bucket (ListBuckets,
     * CreateBucket of a name nobody holds), which is the caller's account's
     * business alone. */
    const char *bucket_owner;
    const struct s3s_policy *identity;      /* NULL: the account's root */
    const struct s3s_policy *bucket_policy; /* NULL: none */
    const struct s3s_policy_kv *keys;       /* condition keys of the request */
    size_t n_keys;
};

enum s3s_authz_by {
    S3S_AUTHZ_BY_NONE = 0,  /* an implicit deny: nothing allowed it */
    S3S_AUTHZ_BY_ROOT,      /* the account's root (no identity policy) */
    S3S_AUTHZ_BY_IDENTITY,  /* a statement of the identity policy */
    S3S_AUTHZ_BY_BUCKET,    /* a statement of the bucket policy */
};

struct s3s_authz_result {
    enum s3s_policy_decision decision;
    enum s3s_authz_by by;             /* what allowed, or what denied explicitly */
    struct s3s_policy_explain stmt;   /* its statement, for BY_IDENTITY and BY_BUCKET */
    const char *reason;               /* one line, static: why */
};

/* Decides; never fails (a missing principal, account or action is an
 * implicit deny). */
void s3s_authz_evaluate(const struct s3s_authz_input *in, struct s3s_authz_result *out);

struct s3s_req;

/*
 * The request's decision, right after authentication and classification:
 * every action the operation needs (s3_op.h; a copy also reads its source)
 * against the caller's identity policy and the bucket's owner and policy.
 * Refuses with S3S_ERR_ACCESS_DENIED (403 AccessDenied, "Access Denied"),
 * logging the action and the reason; S3S_ERR_ACL_NOT_SUPPORTED for an ACL
 * that would grant access (buckets are BucketOwnerEnforced);
 * S3S_ERR_BUCKET_ALREADY_EXISTS for CreateBucket of another account's
 * bucket. CreateBucket of a name no owner is recorded for goes on the thread
 * pool first (bucket_enc.h: the bucket is claimed for the caller's account
 * unless it exists already): *waiting is then true and the request resumes
 * through s3s_req_headers_resume.
 */
S3S_RESULT s3s_authz_check(struct s3s_req *r, bool *waiting);

/* ListBuckets' answer (ListAllMyBucketsResult) with the buckets of other
 * accounts left out, rewritten with libxml2; appended to out. */
S3S_RESULT s3s_authz_list_buckets(struct s3s_req *r, struct s3s_cur xml, struct s3s_buf *out);

#endif /* S3S_PROXY_AUTHZ_H */
