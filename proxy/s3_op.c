/*
 * s3_op.c - the one table of S3 operations s3seal knows (see s3_op.h).
 *
 * A request is matched on its method, its level (service, bucket, object),
 * whether it names a copy source, and the set of its query parameters'
 * decoded names. Each row names the parameters that must be there (all of
 * `need`, and exactly one of `one_of` when that is set) and those that may
 * be there besides (`allow`); any other parameter makes the row miss. So
 * "?upload%73" is CreateMultipartUpload, as the backend reads it, and
 * "?append&position=0" or "?versionId=" on a PUT is no PutObject.
 */
#include <string.h>

#include "proxy/s3_op.h"

/* Parameter names the table speaks of; a parameter's bit is its index. */
enum {
    P_UPLOADS, P_UPLOAD_ID, P_PART_NUMBER, P_VERSION_ID, P_ACL, P_TAGGING, P_RETENTION,
    P_LEGAL_HOLD, P_RESTORE, P_DELETE, P_ENCRYPTION, P_ATTRIBUTES, P_TORRENT, P_SELECT,
    P_SELECT_TYPE, P_POLICY, P_CORS, P_LIFECYCLE, P_VERSIONING, P_NOTIFICATION, P_LOGGING,
    P_WEBSITE, P_REPLICATION, P_REQUEST_PAYMENT, P_ACCELERATE, P_OBJECT_LOCK, P_OWNERSHIP,
    P_PUBLIC_ACCESS_BLOCK, P_INTELLIGENT_TIERING, P_INVENTORY, P_METRICS, P_ANALYTICS, P_ID,
    P_LOCATION, P_POLICY_STATUS, P_VERSIONS, P_LIST_TYPE, P_PREFIX, P_DELIMITER, P_MARKER,
    P_MAX_KEYS, P_CONTINUATION, P_START_AFTER, P_FETCH_OWNER, P_ENCODING_TYPE, P_KEY_MARKER,
    P_UPLOAD_ID_MARKER, P_VERSION_ID_MARKER, P_MAX_UPLOADS, P_MAX_PARTS, P_PART_MARKER,
    P_RESP_CACHE_CONTROL, P_RESP_DISPOSITION, P_RESP_ENCODING, P_RESP_LANGUAGE, P_RESP_TYPE,
    P_RESP_EXPIRES, P_ALLOW_UNORDERED, P_MAX_BUCKETS, P_BUCKET_REGION, P_COUNT,
};

static const char *const s_params[P_COUNT] = {
    "uploads", "uploadId", "partNumber", "versionId", "acl", "tagging", "retention",
    "legal-hold", "restore", "delete", "encryption", "attributes", "torrent", "select",
    "select-type", "policy", "cors", "lifecycle", "versioning", "notification", "logging",
    "website", "replication", "requestPayment", "accelerate", "object-lock", "ownershipControls",
    "publicAccessBlock", "intelligent-tiering", "inventory", "metrics", "analytics", "id",
    "location", "policyStatus", "versions", "list-type", "prefix", "delimiter", "marker",
    "max-keys", "continuation-token", "start-after", "fetch-owner", "encoding-type", "key-marker",
    "upload-id-marker", "version-id-marker", "max-uploads", "max-parts", "part-number-marker",
    "response-cache-control", "response-content-disposition", "response-content-encoding",
    "response-content-language", "response-content-type", "response-expires", "allow-unordered",
    "max-buckets", "bucket-region",
};
_Static_assert(P_COUNT <= 64, "one bit per parameter");

#define B(p) (UINT64_C(1) << (p))

/* Bucket configuration documents (GET, PUT, DELETE ?NAME): no object data.
 * ?cors is not among them: s3seal answers it (S3S_OP_BUCKET_CORS). */
#define BUCKET_CONFIGS                                                                        \
    (B(P_ACL) | B(P_POLICY) | B(P_LIFECYCLE) | B(P_VERSIONING) |                              \
     B(P_NOTIFICATION) | B(P_LOGGING) | B(P_WEBSITE) | B(P_REPLICATION) |                     \
     B(P_REQUEST_PAYMENT) | B(P_ACCELERATE) | B(P_OBJECT_LOCK) | B(P_OWNERSHIP) |             \
     B(P_PUBLIC_ACCESS_BLOCK) | B(P_INTELLIGENT_TIERING) | B(P_INVENTORY) | B(P_METRICS) |    \
     B(P_ANALYTICS) | B(P_TAGGING))
#define BUCKET_READS (BUCKET_CONFIGS | B(P_LOCATION) | B(P_POLICY_STATUS))
/* Object sub-resources that hold no object data. */
#define OBJECT_CONFIGS (B(P_ACL) | B(P_TAGGING) | B(P_RETENTION) | B(P_LEGAL_HOLD))
#define RESPONSE_OVERRIDES                                                                    \
    (B(P_RESP_CACHE_CONTROL) | B(P_RESP_DISPOSITION) | B(P_RESP_ENCODING) |                   \
     B(P_RESP_LANGUAGE) | B(P_RESP_TYPE) | B(P_RESP_EXPIRES))
#define LIST_V1_V2                                                                            \
    (B(P_LIST_TYPE) | B(P_PREFIX) | B(P_DELIMITER) | B(P_MARKER) | B(P_MAX_KEYS) |            \
     B(P_CONTINUATION) | B(P_START_AFTER) | B(P_FETCH_OWNER) | B(P_ENCODING_TYPE) |           \
     B(P_ALLOW_UNORDERED))

enum level { L_SERVICE, L_BUCKET, L_OBJECT };
enum copy { C_ANY, C_NO, C_YES };

struct row {
    const char *method;
    enum level level;
    enum copy copy;
    uint64_t need, one_of, allow;
    enum s3s_s3_op op;
};

/* Order matters only where rows overlap: the first that matches wins. */
static const struct row s_rows[] = {
    /* service */
    {"GET", L_SERVICE, C_NO, 0, 0, B(P_MAX_BUCKETS) | B(P_CONTINUATION) | B(P_PREFIX) |
                                       B(P_BUCKET_REGION), S3S_OP_LIST_BUCKETS},

    /* bucket */
    {"PUT", L_BUCKET, C_NO, 0, 0, 0, S3S_OP_CREATE_BUCKET},
    {"DELETE", L_BUCKET, C_NO, 0, 0, 0, S3S_OP_DELETE_BUCKET},
    {"HEAD", L_BUCKET, C_NO, 0, 0, 0, S3S_OP_HEAD_BUCKET},
    {"GET", L_BUCKET, C_NO, 0, 0, LIST_V1_V2, S3S_OP_LIST_OBJECTS},
    {"GET", L_BUCKET, C_NO, B(P_VERSIONS), 0,
     B(P_PREFIX) | B(P_DELIMITER) | B(P_KEY_MARKER) | B(P_VERSION_ID_MARKER) | B(P_MAX_KEYS) |
         B(P_ENCODING_TYPE),
     S3S_OP_LIST_OBJECTS},
    {"GET", L_BUCKET, C_NO, B(P_UPLOADS), 0,
     B(P_PREFIX) | B(P_DELIMITER) | B(P_KEY_MARKER) | B(P_UPLOAD_ID_MARKER) |
         B(P_MAX_UPLOADS) | B(P_ENCODING_TYPE),
     S3S_OP_LIST_UPLOADS},
    {"GET", L_BUCKET, C_NO, B(P_ENCRYPTION), 0, 0, S3S_OP_BUCKET_ENCRYPTION},
    {"PUT", L_BUCKET, C_NO, B(P_ENCRYPTION), 0, 0, S3S_OP_BUCKET_ENCRYPTION},
    {"DELETE", L_BUCKET, C_NO, B(P_ENCRYPTION), 0, 0, S3S_OP_BUCKET_ENCRYPTION},
    {"GET", L_BUCKET, C_NO, B(P_CORS), 0, 0, S3S_OP_BUCKET_CORS},
    {"PUT", L_BUCKET, C_NO, B(P_CORS), 0, 0, S3S_OP_BUCKET_CORS},
    {"DELETE", L_BUCKET, C_NO, B(P_CORS), 0, 0, S3S_OP_BUCKET_CORS},
    {"GET", L_BUCKET, C_NO, 0, BUCKET_READS, B(P_ID), S3S_OP_BUCKET_CONFIG_READ},
    {"PUT", L_BUCKET, C_NO, 0, BUCKET_CONFIGS, B(P_ID), S3S_OP_BUCKET_CONFIG_WRITE},
    {"DELETE", L_BUCKET, C_NO, 0, BUCKET_CONFIGS, B(P_ID), S3S_OP_BUCKET_CONFIG_WRITE},
    {"POST", L_BUCKET, C_NO, B(P_DELETE), 0, 0, S3S_OP_DELETE_OBJECTS},
    {"POST", L_BUCKET, C_NO, 0, 0, 0, S3S_OP_POST_OBJECT},

    /* object */
    {"GET", L_OBJECT, C_NO, B(P_UPLOAD_ID), 0, B(P_MAX_PARTS) | B(P_PART_MARKER) |
                                                   B(P_ENCODING_TYPE), S3S_OP_LIST_PARTS},
    {"GET", L_OBJECT, C_NO, 0, OBJECT_CONFIGS | B(P_ATTRIBUTES) | B(P_TORRENT),
     B(P_VERSION_ID), S3S_OP_OBJECT_CONFIG_READ},
    {"GET", L_OBJECT, C_NO, 0, 0, B(P_VERSION_ID) | B(P_PART_NUMBER) | RESPONSE_OVERRIDES,
     S3S_OP_GET_OBJECT},
    {"HEAD", L_OBJECT, C_NO, 0, 0, B(P_VERSION_ID) | B(P_PART_NUMBER) | RESPONSE_OVERRIDES,
     S3S_OP_HEAD_OBJECT},
    {"PUT", L_OBJECT, C_NO, 0, 0, 0, S3S_OP_PUT_OBJECT},
    {"PUT", L_OBJECT, C_YES, 0, 0, 0, S3S_OP_COPY_OBJECT},
    {"PUT", L_OBJECT, C_NO, B(P_UPLOAD_ID) | B(P_PART_NUMBER), 0, 0, S3S_OP_UPLOAD_PART},
    {"PUT", L_OBJECT, C_YES, B(P_UPLOAD_ID) | B(P_PART_NUMBER), 0, 0, S3S_OP_UPLOAD_PART_COPY},
    {"PUT", L_OBJECT, C_NO, 0, OBJECT_CONFIGS, B(P_VERSION_ID), S3S_OP_OBJECT_CONFIG_WRITE},
    {"DELETE", L_OBJECT, C_NO, 0, 0, B(P_VERSION_ID), S3S_OP_DELETE_OBJECT},
    {"DELETE", L_OBJECT, C_NO, B(P_UPLOAD_ID), 0, 0, S3S_OP_ABORT_MPU},
    {"DELETE", L_OBJECT, C_NO, B(P_TAGGING), 0, B(P_VERSION_ID), S3S_OP_OBJECT_CONFIG_WRITE},
    {"POST", L_OBJECT, C_NO, B(P_UPLOADS), 0, 0, S3S_OP_CREATE_MPU},
    {"POST", L_OBJECT, C_NO, B(P_UPLOAD_ID), 0, 0, S3S_OP_COMPLETE_MPU},
    {"POST", L_OBJECT, C_NO, B(P_RESTORE), 0, B(P_VERSION_ID), S3S_OP_RESTORE_OBJECT},
};

static const char *const s_names[] = {
    [S3S_OP_UNKNOWN_READ] = "UnknownRead",
    [S3S_OP_UNKNOWN_WRITE] = "UnknownWrite",
    [S3S_OP_LIST_BUCKETS] = "ListBuckets",
    [S3S_OP_CREATE_BUCKET] = "CreateBucket",
    [S3S_OP_DELETE_BUCKET] = "DeleteBucket",
    [S3S_OP_HEAD_BUCKET] = "HeadBucket",
    [S3S_OP_LIST_OBJECTS] = "ListObjects",
    [S3S_OP_LIST_UPLOADS] = "ListMultipartUploads",
    [S3S_OP_BUCKET_CONFIG_READ] = "GetBucketConfig",
    [S3S_OP_BUCKET_CONFIG_WRITE] = "PutBucketConfig",
    [S3S_OP_BUCKET_ENCRYPTION] = "BucketEncryption",
    [S3S_OP_BUCKET_CORS] = "BucketCors",
    [S3S_OP_DELETE_OBJECTS] = "DeleteObjects",
    [S3S_OP_POST_OBJECT] = "PostObject",
    [S3S_OP_GET_OBJECT] = "GetObject",
    [S3S_OP_HEAD_OBJECT] = "HeadObject",
    [S3S_OP_PUT_OBJECT] = "PutObject",
    [S3S_OP_COPY_OBJECT] = "CopyObject",
    [S3S_OP_DELETE_OBJECT] = "DeleteObject",
    [S3S_OP_CREATE_MPU] = "CreateMultipartUpload",
    [S3S_OP_UPLOAD_PART] = "UploadPart",
    [S3S_OP_UPLOAD_PART_COPY] = "UploadPartCopy",
    [S3S_OP_COMPLETE_MPU] = "CompleteMultipartUpload",
    [S3S_OP_ABORT_MPU] = "AbortMultipartUpload",
    [S3S_OP_LIST_PARTS] = "ListParts",
    [S3S_OP_OBJECT_CONFIG_READ] = "GetObjectConfig",
    [S3S_OP_OBJECT_CONFIG_WRITE] = "PutObjectConfig",
    [S3S_OP_RESTORE_OBJECT] = "RestoreObject",
};

const char *s3s_s3_op_name(enum s3s_s3_op op)
{
    return (size_t)op < sizeof(s_names) / sizeof(s_names[0]) && s_names[op] ? s_names[op]
                                                                              : "Unknown";
}

bool s3s_s3_op_is_read(enum s3s_s3_op op)
{
    switch (op) {
    case S3S_OP_UNKNOWN_READ:
    case S3S_OP_LIST_BUCKETS:
    case S3S_OP_HEAD_BUCKET:
    case S3S_OP_LIST_OBJECTS:
    case S3S_OP_LIST_UPLOADS:
    case S3S_OP_BUCKET_CONFIG_READ:
    case S3S_OP_GET_OBJECT:
    case S3S_OP_HEAD_OBJECT:
    case S3S_OP_LIST_PARTS:
    case S3S_OP_OBJECT_CONFIG_READ:
        return true;
    default:
        return false;
    }
}

static int s_hex(uint8_t c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    c |= 0x20;
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Decodes a raw query component as the backend does (s3s_percent_decode,
 * lenient: a '%' without two hex digits stays a '%') into out (cap bytes);
 * false if it does not fit. */
static bool s_decode(struct s3s_cur raw, char *out, size_t cap, size_t *n)
{
    size_t o = 0;
    for (size_t i = 0; i < raw.len; i++) {
        uint8_t c = raw.ptr[i];
        if (c == '%' && i + 2 < raw.len) {
            int hi = s_hex(raw.ptr[i + 1]), lo = s_hex(raw.ptr[i + 2]);
            if (hi >= 0 && lo >= 0) {
                c = (uint8_t)(hi << 4 | lo);
                i += 2;
            }
        }
        if (o == cap) {
            return false;
        }
        out[o++] = (char)c;
    }
    *n = o;
    return true;
}

bool s3s_s3_param_name_is(struct s3s_cur raw, const char *want)
{
    char name[64];
    size_t n;
    size_t wl = strlen(want);
    return s_decode(raw, name, sizeof(name), &n) && n == wl && memcmp(name, want, n) == 0;
}

static const char *const s_auth_params[] = {
    "X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires",
    "X-Amz-SignedHeaders", "X-Amz-Signature", "X-Amz-Security-Token",
    /* Signature Version 2 query authentication */
    "AWSAccessKeyId", "Signature", "Expires", NULL,
};

static bool s_in(const char *name, size_t n, const char *const *list)
{
    for (size_t i = 0; list[i]; i++) {
        if (strlen(list[i]) == n && memcmp(list[i], name, n) == 0) {
            return true;
        }
    }
    return false;
}

bool s3s_s3_is_auth_param(struct s3s_cur raw_name)
{
    char name[64];
    size_t n;
    return s_decode(raw_name, name, sizeof(name), &n) && s_in(name, n, s_auth_params);
}

static bool s_prefix_ci(const char *name, size_t n, const char *prefix)
{
    return s3s_cur_starts_with_ignore_case(s3s_cur_from(name, n), prefix);
}

/* x-amz-* query parameters a presigner may carry instead of headers (AWS
 * SDKs hoist them) and that cannot change how s3seal stores the body.
 * Every other x-amz-* parameter of a write is refused: a backend that reads
 * it as a header could be told to copy, encrypt by itself, or take
 * s3seal's own metadata from it. */
static bool s_hoisted_ok(const char *name, size_t n)
{
    static const char *const exact[] = {
        "x-amz-acl", "x-amz-storage-class", "x-amz-tagging", "x-amz-expected-bucket-owner",
        "x-amz-request-payer", "x-amz-sdk-checksum-algorithm", NULL,
    };
    for (size_t i = 0; exact[i]; i++) {
        if (s3s_cur_eq_str_ignore_case(s3s_cur_from(name, n), exact[i])) {
            return true;
        }
    }
    if (s_prefix_ci(name, n, "x-amz-grant-") || s_prefix_ci(name, n, "x-amz-checksum-")) {
        return true;
    }
    return s_prefix_ci(name, n, "x-amz-meta-") && !s_prefix_ci(name, n, "x-amz-meta-s3seal");
}

s3s_result s3s_s3_op_classify(const struct s3s_s3_op_input *in, enum s3s_s3_op *op,
                              const char **detail)
{
    bool read = s3s_cur_eq_str(in->method, "GET") || s3s_cur_eq_str(in->method, "HEAD");
    *op = read ? S3S_OP_UNKNOWN_READ : S3S_OP_UNKNOWN_WRITE;
    *detail = NULL;
    uint64_t present = 0;
    bool unknown = false;
    struct s3s_cur q = in->query, part;
    while (s3s_cur_next(&q, '&', &part)) {
        if (part.len == 0) {
            continue;
        }
        long eq = s3s_cur_find(part, '=');
        struct s3s_cur raw = eq >= 0 ? s3s_cur_from(part.ptr, (size_t)eq) : part;
        char name[64];
        size_t n;
        if (!s_decode(raw, name, sizeof(name), &n)) {
            unknown = true; /* longer than any name s3seal knows */
            continue;
        }
        for (size_t i = 0; i < n; i++) {
            if ((uint8_t)name[i] < 0x20 || (uint8_t)name[i] == 0x7f) {
                *detail = "A query parameter name holds a control character.";
                S3S_BAIL(S3S_ERR_INVALID_ARG);
            }
        }
        if (s_in(name, n, s_auth_params) || (n == 4 && memcmp(name, "x-id", 4) == 0)) {
            continue;
        }
        if (s_prefix_ci(name, n, "x-amz-")) {
            if (!read && !s_hoisted_ok(name, n)) {
                *detail = "This x-amz-* query parameter is not accepted on a write; send it as "
                          "a header.";
                S3S_BAIL(S3S_ERR_INVALID_ARG);
            }
            continue;
        }
        size_t p = 0;
        while (p < P_COUNT && !(strlen(s_params[p]) == n && memcmp(s_params[p], name, n) == 0)) {
            p++;
        }
        if (p == P_COUNT) {
            unknown = true;
            continue;
        }
        if ((present & B(p)) && !read) {
            *detail = "A query parameter is given more than once.";
            S3S_BAIL(S3S_ERR_INVALID_ARG);
        }
        present |= B(p);
    }
    if (unknown) {
        return s3s_ok();
    }
    enum level level = !in->has_bucket ? L_SERVICE : in->has_key ? L_OBJECT : L_BUCKET;
    for (size_t i = 0; i < sizeof(s_rows) / sizeof(s_rows[0]); i++) {
        const struct row *row = &s_rows[i];
        if (row->level != level || !s3s_cur_eq_str(in->method, row->method) ||
            (row->copy == C_NO && in->copy_source) || (row->copy == C_YES && !in->copy_source)) {
            continue;
        }
        if ((present & row->need) != row->need ||
            (present & ~(row->need | row->one_of | row->allow)) != 0) {
            continue;
        }
        if (row->one_of && __builtin_popcountll(present & row->one_of) != 1) {
            continue;
        }
        *op = row->op;
        return s3s_ok();
    }
    return s3s_ok();
}

/* ---------------------------------------------------- actions (authz.h) */

/* Is the decoded parameter `p` in the query? */
static bool s_has_param(struct s3s_cur query, int p)
{
    struct s3s_cur q = query, part;
    while (s3s_cur_next(&q, '&', &part)) {
        long eq = s3s_cur_find(part, '=');
        struct s3s_cur raw = eq >= 0 ? s3s_cur_from(part.ptr, (size_t)eq) : part;
        if (part.len && s3s_s3_param_name_is(raw, s_params[p])) {
            return true;
        }
    }
    return false;
}

/* The sub-resources of configuration requests: GET, PUT and DELETE actions. */
static const struct {
    int param;
    const char *get, *put, *del;
} s_config_actions[] = {
    {P_ACL, "s3:GetBucketAcl", "s3:PutBucketAcl", NULL},
    {P_POLICY, "s3:GetBucketPolicy", "s3:PutBucketPolicy", "s3:DeleteBucketPolicy"},
    {P_POLICY_STATUS, "s3:GetBucketPolicyStatus", NULL, NULL},
    {P_CORS, "s3:GetBucketCORS", "s3:PutBucketCORS", "s3:PutBucketCORS"},
    {P_LIFECYCLE, "s3:GetLifecycleConfiguration", "s3:PutLifecycleConfiguration",
     "s3:PutLifecycleConfiguration"},
    {P_VERSIONING, "s3:GetBucketVersioning", "s3:PutBucketVersioning", NULL},
    {P_NOTIFICATION, "s3:GetBucketNotification", "s3:PutBucketNotification", NULL},
    {P_LOGGING, "s3:GetBucketLogging", "s3:PutBucketLogging", NULL},
    {P_WEBSITE, "s3:GetBucketWebsite", "s3:PutBucketWebsite", "s3:DeleteBucketWebsite"},
    {P_REPLICATION, "s3:GetReplicationConfiguration", "s3:PutReplicationConfiguration",
     "s3:PutReplicationConfiguration"},
    {P_REQUEST_PAYMENT, "s3:GetBucketRequestPayment", "s3:PutBucketRequestPayment", NULL},
    {P_ACCELERATE, "s3:GetAccelerateConfiguration", "s3:PutAccelerateConfiguration", NULL},
    {P_OBJECT_LOCK, "s3:GetBucketObjectLockConfiguration",
     "s3:PutBucketObjectLockConfiguration", NULL},
    {P_OWNERSHIP, "s3:GetBucketOwnershipControls", "s3:PutBucketOwnershipControls",
     "s3:PutBucketOwnershipControls"},
    {P_PUBLIC_ACCESS_BLOCK, "s3:GetBucketPublicAccessBlock", "s3:PutBucketPublicAccessBlock",
     "s3:PutBucketPublicAccessBlock"},
    {P_INTELLIGENT_TIERING, "s3:GetIntelligentTieringConfiguration",
     "s3:PutIntelligentTieringConfiguration", "s3:PutIntelligentTieringConfiguration"},
    {P_INVENTORY, "s3:GetInventoryConfiguration", "s3:PutInventoryConfiguration",
     "s3:PutInventoryConfiguration"},
    {P_METRICS, "s3:GetMetricsConfiguration", "s3:PutMetricsConfiguration",
     "s3:PutMetricsConfiguration"},
    {P_ANALYTICS, "s3:GetAnalyticsConfiguration", "s3:PutAnalyticsConfiguration",
     "s3:PutAnalyticsConfiguration"},
    {P_TAGGING, "s3:GetBucketTagging", "s3:PutBucketTagging", "s3:PutBucketTagging"},
    {P_LOCATION, "s3:GetBucketLocation", NULL, NULL},
};

static const struct {
    int param;
    const char *get, *put, *del;
} s_object_config_actions[] = {
    {P_ACL, "s3:GetObjectAcl", "s3:PutObjectAcl", NULL},
    {P_TAGGING, "s3:GetObjectTagging", "s3:PutObjectTagging", "s3:DeleteObjectTagging"},
    {P_RETENTION, "s3:GetObjectRetention", "s3:PutObjectRetention", NULL},
    {P_LEGAL_HOLD, "s3:GetObjectLegalHold", "s3:PutObjectLegalHold", NULL},
    {P_ATTRIBUTES, "s3:GetObjectAttributes", NULL, NULL},
    {P_TORRENT, "s3:GetObjectTorrent", NULL, NULL},
};

#define S_CONFIG_ACTION(table, in, out)                                                        \
    do {                                                                                       \
        for (size_t i_ = 0; i_ < sizeof(table) / sizeof(table[0]); i_++) {                    \
            if (!s_has_param((in)->query, table[i_].param)) {                                  \
                continue;                                                                      \
            }                                                                                  \
            const char *a_ = s3s_cur_eq_str((in)->method, "GET")   ? table[i_].get             \
                             : s3s_cur_eq_str((in)->method, "PUT") ? table[i_].put             \
                                                                   : table[i_].del;            \
            (out)->action = a_ ? a_ : "s3:*";                                                  \
            break;                                                                             \
        }                                                                                      \
    } while (0)

void s3s_s3_op_action(const struct s3s_s3_op_input *in, enum s3s_s3_op op,
                      struct s3s_s3_op_action *out)
{
    bool version = s_has_param(in->query, P_VERSION_ID);
    out->action = "s3:*";
    out->object = in->has_key;
    out->copy_source = false;
    switch (op) {
    case S3S_OP_LIST_BUCKETS:
        out->action = "s3:ListAllMyBuckets";
        break;
    case S3S_OP_CREATE_BUCKET:
        out->action = "s3:CreateBucket";
        break;
    case S3S_OP_DELETE_BUCKET:
        out->action = "s3:DeleteBucket";
        break;
    case S3S_OP_HEAD_BUCKET:
        out->action = "s3:ListBucket";
        break;
    case S3S_OP_LIST_OBJECTS:
        out->action = s_has_param(in->query, P_VERSIONS) ? "s3:ListBucketVersions"
                                                         : "s3:ListBucket";
        break;
    case S3S_OP_LIST_UPLOADS:
        out->action = "s3:ListBucketMultipartUploads";
        break;
    case S3S_OP_BUCKET_CONFIG_READ:
    case S3S_OP_BUCKET_CONFIG_WRITE:
        S_CONFIG_ACTION(s_config_actions, in, out);
        break;
    case S3S_OP_BUCKET_ENCRYPTION:
        out->action = s3s_cur_eq_str(in->method, "GET") ? "s3:GetEncryptionConfiguration"
                                                        : "s3:PutEncryptionConfiguration";
        break;
    case S3S_OP_BUCKET_CORS:
        /* DeleteBucketCors is s3:PutBucketCORS in AWS. */
        out->action = s3s_cur_eq_str(in->method, "GET") ? "s3:GetBucketCORS" : "s3:PutBucketCORS";
        break;
    case S3S_OP_DELETE_OBJECTS:
        /* Decided per key of the body once it is in (authz.c). */
        out->action = "s3:DeleteObject";
        out->object = true;
        break;
    case S3S_OP_POST_OBJECT:
        out->action = "s3:PutObject";
        out->object = true;
        break;
    case S3S_OP_GET_OBJECT:
    case S3S_OP_HEAD_OBJECT:
        out->action = version ? "s3:GetObjectVersion" : "s3:GetObject";
        break;
    case S3S_OP_PUT_OBJECT:
    case S3S_OP_CREATE_MPU:
    case S3S_OP_UPLOAD_PART:
    case S3S_OP_COMPLETE_MPU:
        out->action = "s3:PutObject";
        break;
    case S3S_OP_COPY_OBJECT:
    case S3S_OP_UPLOAD_PART_COPY:
        out->action = "s3:PutObject";
        out->copy_source = true;
        break;
    case S3S_OP_DELETE_OBJECT:
        out->action = version ? "s3:DeleteObjectVersion" : "s3:DeleteObject";
        break;
    case S3S_OP_ABORT_MPU:
        out->action = "s3:AbortMultipartUpload";
        break;
    case S3S_OP_LIST_PARTS:
        out->action = "s3:ListMultipartUploadParts";
        break;
    case S3S_OP_OBJECT_CONFIG_READ:
    case S3S_OP_OBJECT_CONFIG_WRITE:
        S_CONFIG_ACTION(s_object_config_actions, in, out);
        break;
    case S3S_OP_RESTORE_OBJECT:
        out->action = "s3:RestoreObject";
        break;
    case S3S_OP_UNKNOWN_READ:
    case S3S_OP_UNKNOWN_WRITE:
    default:
        break;
    }
}
