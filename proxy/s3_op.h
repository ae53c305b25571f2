/*
 * s3_op.h - which S3 operation a request is, decided once on the decoded
 * request: the method, the query's parameter names after percent-decoding
 * (as the backend decodes them), whether a bucket and a key are named, and
 * whether a copy source is given.
 *
 * One table (s3_op.c) lists every operation s3seal knows, with the
 * parameters that name it and those it may carry besides. A write that
 * matches no row is S3S_OP_UNKNOWN_WRITE: s3seal cannot tell whether it
 * stores object data, so a bucket that encrypts refuses it (conn.c) rather
 * than relaying plaintext to the backend.
 *
 * Pure logic: no request, loop or socket; unit-tested and fuzzed.
 */
#ifndef S3S_S3_OP_H
#define S3S_S3_OP_H

#include "common/common.h"

enum s3s_s3_op {
    S3S_OP_UNKNOWN_READ = 0, /* GET or HEAD that no row names */
    S3S_OP_UNKNOWN_WRITE,    /* any other method that no row names */

    /* service and bucket level */
    S3S_OP_LIST_BUCKETS,
    S3S_OP_CREATE_BUCKET,
    S3S_OP_DELETE_BUCKET,
    S3S_OP_HEAD_BUCKET,
    S3S_OP_LIST_OBJECTS,
    S3S_OP_LIST_UPLOADS,
    S3S_OP_BUCKET_CONFIG_READ,   /* GET ?acl, ?policy, ?location... */
    S3S_OP_BUCKET_CONFIG_WRITE,  /* PUT or DELETE of the same: documents, no object data */
    S3S_OP_BUCKET_ENCRYPTION,    /* ?encryption: answered by s3seal (bucket_enc.c) */
    S3S_OP_BUCKET_CORS,          /* ?cors: answered by s3seal (bucket_enc.c, cors.h) */
    S3S_OP_DELETE_OBJECTS,       /* POST ?delete */
    S3S_OP_POST_OBJECT,          /* POST to a bucket: a browser-form upload */

    /* object level */
    S3S_OP_GET_OBJECT,
    S3S_OP_HEAD_OBJECT,
    S3S_OP_PUT_OBJECT,
    S3S_OP_COPY_OBJECT,
    S3S_OP_DELETE_OBJECT,
    S3S_OP_CREATE_MPU,
    S3S_OP_UPLOAD_PART,
    S3S_OP_UPLOAD_PART_COPY,
    S3S_OP_COMPLETE_MPU,
    S3S_OP_ABORT_MPU,
    S3S_OP_LIST_PARTS,
    S3S_OP_OBJECT_CONFIG_READ,   /* GET ?acl, ?tagging, ?retention, ?legal-hold, ?attributes */
    S3S_OP_OBJECT_CONFIG_WRITE,  /* PUT or DELETE of the same: no object data */
    S3S_OP_RESTORE_OBJECT,       /* POST ?restore */
};

/* What the classifier looks at. `query` is the raw query (without '?'). */
struct s3s_s3_op_input {
    struct s3s_cur method;
    struct s3s_cur query;
    bool has_bucket;
    bool has_key;
    bool copy_source; /* an x-amz-copy-source header is present */
};

/* Decides the operation. Fails with S3S_ERR_INVALID_ARG (and a message in
 * *detail, a static string) when the query cannot be read the one way the
 * backend will read it: a parameter that names an operation given twice,
 * control bytes in a parameter name, or, on a write, a query parameter
 * x-amz-* that a backend may take for a header. Presigned-URL
 * authentication parameters and x-id are not part of the operation. */
S3S_RESULT s3s_s3_op_classify(const struct s3s_s3_op_input *in, enum s3s_s3_op *op,
                              const char **detail);

/* The operation's name as AWS's API calls it ("PutObject"), for logs. */
const char *s3s_s3_op_name(enum s3s_s3_op op);

/* GET and HEAD operations: they store nothing. */
bool s3s_s3_op_is_read(enum s3s_s3_op op);

/* Is the decoded parameter name of a raw query part `raw` equal to `want`?
 * Decodes as the backend does (%XX; '+' is not a space), without
 * allocating. */
bool s3s_s3_param_name_is(struct s3s_cur raw, const char *want);

/* Presigned-URL authentication parameters (SigV4 and SigV2), decoded
 * name: never part of the operation, never sent to the backend. */
bool s3s_s3_is_auth_param(struct s3s_cur raw_name);

/* What an operation asks of the policies (authz.h): the S3 action, whether
 * its resource is the object (arn:aws:s3:::BUCKET/KEY) or the bucket
 * (arn:aws:s3:::BUCKET), and whether it also reads a copy source (CopyObject
 * and UploadPartCopy need s3:GetObject on it). The coarse operations (bucket
 * and object configuration) get their action from the sub-resource that
 * named them and the method, as AWS maps them (DeleteBucketCors is
 * s3:PutBucketCORS, DeleteBucketEncryption s3:PutEncryptionConfiguration).
 * An operation s3seal does not know asks for "s3:*": only a grant of every
 * S3 action covers it. */
struct s3s_s3_op_action {
    const char *action; /* static */
    bool object;        /* the resource is the object */
    bool copy_source;   /* s3:GetObject on the copy source as well */
};
void s3s_s3_op_action(const struct s3s_s3_op_input *in, enum s3s_s3_op op,
                      struct s3s_s3_op_action *out);

#endif /* S3S_S3_OP_H */
