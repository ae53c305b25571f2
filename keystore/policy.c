/*
 * policy.c - AWS key policies (semantics in policy.h): parsed and validated
 * once into one compact block, then evaluated on the proxy's request path
 * with no allocation and no JSON work.
 *
 * Parsing walks the json-c tree twice with the same code. The first pass
 * validates and counts statements, conditions, strings and string bytes;
 * the second fills a single allocation of exactly that size. So the
 * validation rules live in one place, a policy is one block whose pointers
 * never move, and freeing it is one call. Lists (of principals, patterns,
 * condition values, a statement's conditions) are runs of consecutive
 * entries of the block's tables, named by index, which both passes compute
 * alike.
 */
#include <arpa/inet.h>
#include <json-c/json.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "keystore/policy.h"
#include "keystore/policy_private.h"

/* Policy > Statement list > statement > Condition > operator > value list;
 * also statement > Principal > AWS list. */
#define S_MAX_NESTING 6

/* ------------------------------------------------------------ the block */

/* A run of consecutive entries of one of the block's tables. */
struct s_list {
    uint32_t first;
    uint32_t n;
};

enum s_match {
    S_MATCH_EQUALS,       /* StringEquals */
    S_MATCH_EQUALS_ICASE, /* StringEqualsIgnoreCase, Bool */
    S_MATCH_LIKE,         /* StringLike */
    S_MATCH_NULL,         /* Null: tests whether the key is absent */
    S_MATCH_NUMERIC,      /* Numeric*: compared as numbers (`cmp`) */
    S_MATCH_DATE,         /* Date*: compared as instants (`cmp`) */
    S_MATCH_IP,           /* IpAddress: the value lies in a CIDR block */
    S_MATCH_ARN,          /* ArnEquals, ArnLike: field by field, wildcards */
};

/* How Numeric* and Date* compare the request's value with the policy's. */
enum s_cmp {
    S_CMP_EQ,
    S_CMP_LT,
    S_CMP_LE,
    S_CMP_GT,
    S_CMP_GE,
};

enum s_set {
    S_SET_NONE,
    S_SET_ANY, /* ForAnyValue: */
    S_SET_ALL, /* ForAllValues: */
};

enum s_key {
    S_KEY_ABSENT, /* a key s3seal never has */
    S_KEY_CONTEXT,
    S_KEY_CONTEXT_KEYS,
    S_KEY_VIA_SERVICE,
    S_KEY_CALLER_ACCOUNT,
    S_KEY_PRINCIPAL_ARN,
    S_KEY_PRINCIPAL_ACCOUNT,
    S_KEY_REQUEST, /* any other key: looked up by name in the request's keys */
};

/* One condition key under one operator: "StringEquals": {"kms:ViaService": [...]}. */
struct s_cond {
    enum s_match match;
    enum s_set set;
    enum s_key key;
    enum s_cmp cmp; /* S_MATCH_NUMERIC, S_MATCH_DATE */
    bool negate;    /* the Not forms: the negation of the positive match */
    bool if_exists; /* IfExists: the condition holds when the key is absent */
    uint32_t context_key; /* S_KEY_CONTEXT: string index of the KEY; S_KEY_REQUEST: of the key's name */
    struct s_list values; /* strings */
};

struct s_stmt {
    bool deny;
    bool has_sid;
    uint32_t sid; /* string index of the Sid, when has_sid */
    bool any_principal; /* "*" among the principals */
    bool not_principal;
    bool not_action;
    bool not_resource;
    struct s_list principals; /* strings: 12-digit accounts and exact ARNs */
    struct s_list actions;    /* strings: wildcard patterns */
    struct s_list resources;  /* strings: "*" or ARN wildcard patterns */
    struct s_list conds;      /* conditions, all of which must hold */
};

struct s3s_policy {
    const struct s_stmt *stmts;
    size_t n_stmts;
    const struct s_cond *conds;
    const char *const *strs; /* NUL-terminated, in the block */
};

/* ------------------------------------------------------------- building */

struct s_build {
    /* NULL while measuring; the block's tables while filling. */
    struct s_stmt *stmts;
    struct s_cond *conds;
    const char **strs;
    char *chars;
    /* Entries counted (measuring) or written (filling) so far. */
    size_t n_stmts;
    size_t n_conds;
    size_t n_strs;
    size_t n_chars;
    /* Filling: the measured sizes, never to be passed (memory safety must
     * not rest on the two passes agreeing). */
    size_t cap_stmts;
    size_t cap_conds;
    size_t cap_strs;
    size_t cap_chars;
    size_t stmt_no; /* 1-based number of the statement being read; 0 outside */
    enum s3s_policy_kind kind;
    char *why;
    size_t why_len;
};

/* Records a one-line reason and fails. */
static s3s_result s_fail(struct s_build *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static s3s_result s_fail(struct s_build *b, const char *fmt, ...)
{
    if (b->why && b->why_len > 0) {
        int n = 0;
        if (b->stmt_no > 0) {
            n = snprintf(b->why, b->why_len, "statement %zu: ", b->stmt_no);
        }
        if (n >= 0 && (size_t)n < b->why_len) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(b->why + n, b->why_len - (size_t)n, fmt, ap);
            va_end(ap);
        }
        /* The reason quotes policy text, which may hold line breaks. */
        for (char *p = b->why; *p != '\0'; p++) {
            if ((unsigned char)*p < 0x20) {
                *p = ' ';
            }
        }
    }
    S3S_BAIL(S3S_ERR_KMS_MALFORMED_POLICY);
}

static s3s_result s_add_str(struct s_build *b, const char *s, size_t len, uint32_t *index)
{
    /* A policy of S3S_POLICY_MAX_LEN bytes cannot come near this. */
    S3S_ENSURE(b->n_strs < UINT32_MAX, S3S_ERR_INTERNAL);
    if (b->strs) {
        S3S_ENSURE(b->n_strs < b->cap_strs && len < b->cap_chars - b->n_chars, S3S_ERR_INTERNAL);
        char *dst = b->chars + b->n_chars;
        memcpy(dst, s, len);
        dst[len] = '\0';
        b->strs[b->n_strs] = dst;
    }
    *index = (uint32_t)b->n_strs++;
    b->n_chars += len + 1;
    return s3s_ok();
}

static s3s_result s_add_cond(struct s_build *b, const struct s_cond *c, struct s_list *conds)
{
    S3S_ENSURE(b->n_conds < UINT32_MAX, S3S_ERR_INTERNAL);
    if (b->conds) {
        S3S_ENSURE(b->n_conds < b->cap_conds, S3S_ERR_INTERNAL);
        b->conds[b->n_conds] = *c;
    }
    if (conds->n == 0) {
        conds->first = (uint32_t)b->n_conds;
    }
    conds->n++;
    b->n_conds++;
    return s3s_ok();
}

static s3s_result s_add_stmt(struct s_build *b, const struct s_stmt *st)
{
    if (b->stmts) {
        S3S_ENSURE(b->n_stmts < b->cap_stmts, S3S_ERR_INTERNAL);
        b->stmts[b->n_stmts] = *st;
    }
    b->n_stmts++;
    return s3s_ok();
}

static size_t s_align(size_t n)
{
    const size_t a = _Alignof(max_align_t);
    return (n + a - 1) / a * a;
}

/* Allocates the block for what the measuring pass counted and points the
 * builder at its tables for the filling pass. Sizes cannot overflow: each
 * entry came from at least one byte of a bounded text. */
static s3s_result s_alloc_block(struct s_build *b, struct s3s_policy **out)
{
    size_t at_stmts = s_align(sizeof(struct s3s_policy));
    size_t at_conds = at_stmts + s_align(b->n_stmts * sizeof(struct s_stmt));
    size_t at_strs = at_conds + s_align(b->n_conds * sizeof(struct s_cond));
    size_t at_chars = at_strs + s_align(b->n_strs * sizeof(char *));
    uint8_t *block = s3s_calloc(1, at_chars + b->n_chars);
    S3S_ENSURE(block != NULL, S3S_ERR_NOMEM);

    struct s3s_policy *p = (void *)block;
    b->stmts = (void *)(block + at_stmts);
    b->conds = (void *)(block + at_conds);
    b->strs = (void *)(block + at_strs);
    b->chars = (char *)(block + at_chars);
    p->stmts = b->stmts;
    p->n_stmts = b->n_stmts;
    p->conds = b->conds;
    p->strs = b->strs;
    b->cap_stmts = b->n_stmts;
    b->cap_conds = b->n_conds;
    b->cap_strs = b->n_strs;
    b->cap_chars = b->n_chars;
    b->n_stmts = b->n_conds = b->n_strs = b->n_chars = 0;
    *out = p;
    return s3s_ok();
}

/* ---------------------------------------------------- reading elements */

static bool s_all_digits(struct s3s_cur c)
{
    for (size_t i = 0; i < c.len; i++) {
        if (c.ptr[i] < '0' || c.ptr[i] > '9') {
            return false;
        }
    }
    return true;
}

static bool s_is_account(struct s3s_cur c) { return c.len == 12 && s_all_digits(c); }

static bool s_has_wildcard(struct s3s_cur c)
{
    return s3s_cur_find(c, '*') >= 0 || s3s_cur_find(c, '?') >= 0;
}

/* Fails unless every member of obj is named in `known` (NULL-terminated).
 * AWS refuses unknown elements too; ignoring one would drop what its author
 * meant as a restriction. */
static s3s_result s_known_members(struct s_build *b, struct json_object *obj,
                                  const char *const *known, const char *where)
{
    struct json_object_iter it;
    json_object_object_foreachC(obj, it)
    {
        const char *const *k = known;
        while (*k && strcmp(*k, it.key) != 0) {
            k++;
        }
        if (!*k) {
            return s_fail(b, "unknown element \"%s\" in %s", it.key, where);
        }
    }
    return s3s_ok();
}

/* Exactly one of the pair `name` / `not_name` (Action / NotAction...). */
static s3s_result s_one_of(struct s_build *b, struct json_object *st, const char *name,
                           const char *not_name, struct json_object **value, bool *is_not)
{
    struct json_object *pos = NULL, *neg = NULL;
    bool has_pos = json_object_object_get_ex(st, name, &pos);
    bool has_neg = json_object_object_get_ex(st, not_name, &neg);
    if (has_pos == has_neg) {
        return s_fail(b, has_pos ? "both %s and %s" : "neither %s nor %s", name, not_name);
    }
    *value = has_pos ? pos : neg;
    *is_not = has_neg;
    return s3s_ok();
}

/* An optional string member: *out NULL when absent. */
static s3s_result s_opt_string(struct s_build *b, struct json_object *obj, const char *name,
                               const char **out)
{
    struct json_object *v = NULL;
    *out = NULL;
    if (!json_object_object_get_ex(obj, name, &v)) {
        return s3s_ok();
    }
    if (!json_object_is_type(v, json_type_string)) {
        return s_fail(b, "%s is not a string", name);
    }
    *out = json_object_get_string(v);
    return s3s_ok();
}

/* Takes one string of an element's value (a list entry or the value). */
typedef s3s_result s_item_fn(struct s_build *b, struct s3s_cur s, void *arg);

static s3s_result s_one_item(struct s_build *b, struct json_object *v, const char *what,
                             bool booleans, s_item_fn *fn, void *arg)
{
    /* Condition values may be JSON booleans; AWS compares their text. */
    if (booleans && json_object_is_type(v, json_type_boolean)) {
        return fn(b, s3s_cur_from_str(json_object_get_boolean(v) ? "true" : "false"), arg);
    }
    if (!json_object_is_type(v, json_type_string)) {
        return s_fail(b, "%s: a value is not a string", what);
    }
    return fn(b, s3s_cur_from(json_object_get_string(v), (size_t)json_object_get_string_len(v)),
              arg);
}

/* Calls fn for a value that is one string or a non-empty list of them. */
static s3s_result s_each_item(struct s_build *b, struct json_object *v, const char *what,
                              bool booleans, s_item_fn *fn, void *arg)
{
    if (!json_object_is_type(v, json_type_array)) {
        return s_one_item(b, v, what, booleans, fn, arg);
    }
    size_t n = json_object_array_length(v);
    if (n == 0) {
        return s_fail(b, "%s: empty list", what);
    }
    for (size_t i = 0; i < n; i++) {
        S3S_GUARD(s_one_item(b, json_object_array_get_idx(v, i), what, booleans, fn, arg));
    }
    return s3s_ok();
}

/* Adds s to a list of strings. Its entries stay consecutive because each
 * list is read whole before anything else adds a string. */
static s3s_result s_append_to(struct s_build *b, struct s3s_cur s, struct s_list *list)
{
    uint32_t index;
    S3S_GUARD(s_add_str(b, (const char *)s.ptr, s.len, &index));
    if (list->n == 0) {
        list->first = index;
    }
    list->n++;
    return s3s_ok();
}

/* ----------------------------------------------------------- principals */

/* Splits "ACCOUNT" or "arn:PARTITION:SERVICE::ACCOUNT:RESOURCE" (SERVICE iam
 * or sts, as IAM principals are); a bare account has an empty service and
 * resource. */
static bool s_split_principal(struct s3s_cur c, struct s3s_cur *service, struct s3s_cur *account,
                              struct s3s_cur *resource)
{
    *service = *resource = (struct s3s_cur){0};
    if (s_is_account(c)) {
        *account = c;
        return true;
    }
    struct s3s_cur arn, partition, region;
    bool ok = s3s_cur_split(&c, ':', &arn) && s3s_cur_eq_str(arn, "arn") &&
              s3s_cur_split(&c, ':', &partition) && partition.len > 0 &&
              s3s_cur_split(&c, ':', service) &&
              (s3s_cur_eq_str(*service, "iam") || s3s_cur_eq_str(*service, "sts")) &&
              s3s_cur_split(&c, ':', &region) && region.len == 0 &&
              s3s_cur_split(&c, ':', account) && s_is_account(*account);
    if (!ok || c.len == 0) {
        return false;
    }
    *resource = c;
    return true;
}

/* "*", an account (12 digits or arn:PARTITION:iam::ACCOUNT:root, both kept
 * as the 12 digits) or an exact principal ARN. AWS refuses wildcards here:
 * taking them literally would surprise, so they are refused too. */
static s3s_result s_aws_principal(struct s_build *b, struct s3s_cur s, void *arg)
{
    struct s_stmt *st = arg;
    if (s3s_cur_eq_str(s, "*")) {
        st->any_principal = true;
        return s3s_ok();
    }
    struct s3s_cur service, account, resource;
    if (s_has_wildcard(s) || !s_split_principal(s, &service, &account, &resource)) {
        return s_fail(b, "invalid principal \"%.*s\"", (int)s.len, (const char *)s.ptr);
    }
    bool whole_account =
        resource.len == 0 || (s3s_cur_eq_str(service, "iam") && s3s_cur_eq_str(resource, "root"));
    return s_append_to(b, whole_account ? account : s, &st->principals);
}

/* Service principals never match a caller of s3seal: they are checked and
 * dropped, so {"Service": ...} alone allows no one. */
static s3s_result s_service_principal(struct s_build *b, struct s3s_cur s, void *arg)
{
    (void)arg;
    if (s.len == 0) {
        return s_fail(b, "empty Service principal");
    }
    return s3s_ok();
}

static s3s_result s_parse_principal(struct s_build *b, struct json_object *v, struct s_stmt *st)
{
    if (json_object_is_type(v, json_type_string)) {
        if (strcmp(json_object_get_string(v), "*") != 0) {
            return s_fail(b, "a Principal string must be \"*\"");
        }
        st->any_principal = true;
        return s3s_ok();
    }
    if (!json_object_is_type(v, json_type_object) || json_object_object_length(v) == 0) {
        return s_fail(b, "Principal is neither \"*\" nor an object of principals");
    }
    static const char *const known[] = {"AWS", "Service", NULL};
    S3S_GUARD(s_known_members(b, v, known, "Principal"));
    struct json_object *list = NULL;
    if (json_object_object_get_ex(v, "AWS", &list)) {
        S3S_GUARD(s_each_item(b, list, "Principal", false, s_aws_principal, st));
    }
    if (json_object_object_get_ex(v, "Service", &list)) {
        S3S_GUARD(s_each_item(b, list, "Principal", false, s_service_principal, NULL));
    }
    return s3s_ok();
}

/* ------------------------------------------------- actions, resources */

/* S3's actions, as bucket and identity policies name them. */
static const char *const s_s3_actions[] = {
    "s3:AbortMultipartUpload", "s3:BypassGovernanceRetention", "s3:CreateBucket",
    "s3:DeleteBucket", "s3:DeleteBucketPolicy", "s3:DeleteBucketOwnershipControls",
    "s3:DeleteBucketWebsite",
    "s3:DeleteObject", "s3:DeleteObjectTagging", "s3:DeleteObjectVersion",
    "s3:DeleteObjectVersionTagging", "s3:GetAccelerateConfiguration",
    "s3:GetAnalyticsConfiguration", "s3:GetBucketAcl", "s3:GetBucketCORS",
    "s3:GetBucketLocation", "s3:GetBucketLogging", "s3:GetBucketNotification",
    "s3:GetBucketObjectLockConfiguration", "s3:GetBucketOwnershipControls",
    "s3:GetBucketPolicy", "s3:GetBucketPolicyStatus", "s3:GetBucketPublicAccessBlock",
    "s3:GetBucketRequestPayment", "s3:GetBucketTagging", "s3:GetBucketVersioning",
    "s3:GetBucketWebsite", "s3:GetEncryptionConfiguration",
    "s3:GetIntelligentTieringConfiguration", "s3:GetInventoryConfiguration",
    "s3:GetLifecycleConfiguration", "s3:GetMetricsConfiguration", "s3:GetObject",
    "s3:GetObjectAcl", "s3:GetObjectAttributes", "s3:GetObjectLegalHold",
    "s3:GetObjectRetention", "s3:GetObjectTagging", "s3:GetObjectTorrent",
    "s3:GetObjectVersion", "s3:GetObjectVersionAcl", "s3:GetObjectVersionAttributes",
    "s3:GetObjectVersionTagging", "s3:GetObjectVersionTorrent",
    "s3:GetReplicationConfiguration", "s3:ListAllMyBuckets", "s3:ListBucket",
    "s3:ListBucketMultipartUploads", "s3:ListBucketVersions", "s3:ListMultipartUploadParts",
    "s3:PutAccelerateConfiguration", "s3:PutAnalyticsConfiguration", "s3:PutBucketAcl",
    "s3:PutBucketCORS", "s3:PutBucketLogging", "s3:PutBucketNotification",
    "s3:PutBucketObjectLockConfiguration", "s3:PutBucketOwnershipControls",
    "s3:PutBucketPolicy", "s3:PutBucketPublicAccessBlock", "s3:PutBucketRequestPayment",
    "s3:PutBucketTagging", "s3:PutBucketVersioning", "s3:PutBucketWebsite",
    "s3:PutEncryptionConfiguration", "s3:PutIntelligentTieringConfiguration",
    "s3:PutInventoryConfiguration", "s3:PutLifecycleConfiguration",
    "s3:PutMetricsConfiguration", "s3:PutReplicationConfiguration", "s3:PutObject",
    "s3:PutObjectAcl", "s3:PutObjectLegalHold", "s3:PutObjectRetention",
    "s3:PutObjectTagging", "s3:PutObjectVersionAcl", "s3:PutObjectVersionTagging",
    "s3:ReplicateDelete", "s3:ReplicateObject", "s3:ReplicateTags", "s3:RestoreObject",
    NULL,
};

static bool s_glob(struct s3s_cur p, struct s3s_cur s, bool icase);

bool s3s_policy_s3_action_known(const char *pattern)
{
    for (size_t i = 0; s_s3_actions[i]; i++) {
        if (s_glob(s3s_cur_from_str(pattern), s3s_cur_from_str(s_s3_actions[i]), true)) {
            return true;
        }
    }
    return false;
}

/* "*" or SERVICE:PATTERN. A bucket policy names S3's actions only, and an
 * s3: pattern of a bucket or identity policy must match one of them (AWS
 * refuses the policy otherwise: a misspelt action would allow or deny
 * nothing). */
static s3s_result s_action(struct s_build *b, struct s3s_cur s, void *arg)
{
    long colon = s3s_cur_find(s, ':');
    if (!s3s_cur_eq_str(s, "*") && colon <= 0) {
        return s_fail(b, "invalid action \"%.*s\"", (int)s.len, (const char *)s.ptr);
    }
    bool s3 = colon == 2 && s3s_cur_starts_with_ignore_case(s, "s3:");
    if (b->kind == S3S_POLICY_KIND_BUCKET && !s3 && !s3s_cur_eq_str(s, "*")) {
        return s_fail(b, "invalid action \"%.*s\": a bucket policy names s3: actions",
                      (int)s.len, (const char *)s.ptr);
    }
    if (b->kind != S3S_POLICY_KIND_KEY && s3) {
        char name[128];
        if (s.len >= sizeof(name)) {
            return s_fail(b, "invalid action \"%.*s\"", 100, (const char *)s.ptr);
        }
        memcpy(name, s.ptr, s.len);
        name[s.len] = '\0';
        if (!s3s_policy_s3_action_known(name)) {
            return s_fail(b, "unknown action \"%s\"", name);
        }
    }
    return s_append_to(b, s, arg);
}

/* "*" or an ARN pattern of six fields (arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE),
 * which are matched one by one. */
static s3s_result s_resource(struct s_build *b, struct s3s_cur s, void *arg)
{
    struct s3s_cur rest = s, field;
    int colons = 0;
    while (colons < 5 && s3s_cur_split(&rest, ':', &field)) {
        colons++;
    }
    if (!s3s_cur_eq_str(s, "*") && (colons < 5 || !s3s_cur_starts_with(s, "arn:"))) {
        return s_fail(b, "invalid resource \"%.*s\"", (int)s.len, (const char *)s.ptr);
    }
    return s_append_to(b, s, arg);
}

/* ----------------------------------------------------------- conditions */

struct s_op {
    const char *name;
    enum s_match match;
    bool negate;
    bool boolean_values; /* values must be "true" or "false" */
    enum s_cmp cmp;
};

static const struct s_op s_ops[] = {
    {"StringEquals", S_MATCH_EQUALS, false, false, S_CMP_EQ},
    {"StringNotEquals", S_MATCH_EQUALS, true, false, S_CMP_EQ},
    {"StringEqualsIgnoreCase", S_MATCH_EQUALS_ICASE, false, false, S_CMP_EQ},
    {"StringNotEqualsIgnoreCase", S_MATCH_EQUALS_ICASE, true, false, S_CMP_EQ},
    {"StringLike", S_MATCH_LIKE, false, false, S_CMP_EQ},
    {"StringNotLike", S_MATCH_LIKE, true, false, S_CMP_EQ},
    {"Bool", S_MATCH_EQUALS_ICASE, false, true, S_CMP_EQ},
    {"Null", S_MATCH_NULL, false, true, S_CMP_EQ},
    {"NumericEquals", S_MATCH_NUMERIC, false, false, S_CMP_EQ},
    {"NumericNotEquals", S_MATCH_NUMERIC, true, false, S_CMP_EQ},
    {"NumericLessThan", S_MATCH_NUMERIC, false, false, S_CMP_LT},
    {"NumericLessThanEquals", S_MATCH_NUMERIC, false, false, S_CMP_LE},
    {"NumericGreaterThan", S_MATCH_NUMERIC, false, false, S_CMP_GT},
    {"NumericGreaterThanEquals", S_MATCH_NUMERIC, false, false, S_CMP_GE},
    {"DateEquals", S_MATCH_DATE, false, false, S_CMP_EQ},
    {"DateNotEquals", S_MATCH_DATE, true, false, S_CMP_EQ},
    {"DateLessThan", S_MATCH_DATE, false, false, S_CMP_LT},
    {"DateLessThanEquals", S_MATCH_DATE, false, false, S_CMP_LE},
    {"DateGreaterThan", S_MATCH_DATE, false, false, S_CMP_GT},
    {"DateGreaterThanEquals", S_MATCH_DATE, false, false, S_CMP_GE},
    {"IpAddress", S_MATCH_IP, false, false, S_CMP_EQ},
    {"NotIpAddress", S_MATCH_IP, true, false, S_CMP_EQ},
    {"ArnEquals", S_MATCH_ARN, false, false, S_CMP_EQ},
    {"ArnNotEquals", S_MATCH_ARN, true, false, S_CMP_EQ},
    {"ArnLike", S_MATCH_ARN, false, false, S_CMP_EQ},
    {"ArnNotLike", S_MATCH_ARN, true, false, S_CMP_EQ},
};

/* A number as Numeric* conditions read it: decimal, optionally signed, with
 * a fraction; nothing else. */
static bool s_parse_number(struct s3s_cur s, double *out)
{
    char buf[64];
    if (s.len == 0 || s.len >= sizeof(buf)) {
        return false;
    }
    for (size_t i = 0; i < s.len; i++) {
        uint8_t c = s.ptr[i];
        if (!((c >= '0' && c <= '9') || c == '.' || (i == 0 && (c == '-' || c == '+')))) {
            return false;
        }
    }
    memcpy(buf, s.ptr, s.len);
    buf[s.len] = '\0';
    char *end = NULL;
    double v = strtod(buf, &end);
    if (!end || *end != '\0' || !isfinite(v)) {
        return false;
    }
    *out = v;
    return true;
}

static bool s_digits_at(const char *p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9') {
            return false;
        }
        v = v * 10 + (p[i] - '0');
    }
    *out = v;
    return true;
}

/* A date as Date* conditions read it: ISO 8601 in UTC (2025-01-31,
 * 2025-01-31T12:00:00Z, with optional fractional seconds) or Unix seconds. */
static bool s_parse_date(struct s3s_cur s, int64_t *out)
{
    double n;
    if (s3s_cur_find(s, '-') < 0 && s_parse_number(s, &n)) {
        *out = (int64_t)n;
        return true;
    }
    char buf[40];
    if (s.len < 10 || s.len >= sizeof(buf)) {
        return false;
    }
    memcpy(buf, s.ptr, s.len);
    buf[s.len] = '\0';
    int y, mo, d, h = 0, mi = 0, sec = 0;
    if (!s_digits_at(buf, 4, &y) || buf[4] != '-' || !s_digits_at(buf + 5, 2, &mo) ||
        buf[7] != '-' || !s_digits_at(buf + 8, 2, &d)) {
        return false;
    }
    const char *p = buf + 10;
    if (*p == 'T') {
        if (!s_digits_at(p + 1, 2, &h) || p[3] != ':' || !s_digits_at(p + 4, 2, &mi) ||
            p[6] != ':' || !s_digits_at(p + 7, 2, &sec)) {
            return false;
        }
        p += 9;
        if (*p == '.') {
            p++;
            while (*p >= '0' && *p <= '9') {
                p++;
            }
        }
        if (*p != 'Z') {
            return false;
        }
        p++;
    }
    if (*p != '\0' || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60) {
        return false;
    }
    struct tm tm = {.tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d,
                    .tm_hour = h, .tm_min = mi, .tm_sec = sec};
    *out = (int64_t)timegm(&tm);
    return true;
}

/* An address or CIDR block, IPv4 or IPv6: the address bytes, their count
 * (4 or 16) and the prefix length. */
static bool s_parse_ip(struct s3s_cur s, uint8_t addr[16], int *len, int *prefix)
{
    char buf[64];
    if (s.len == 0 || s.len >= sizeof(buf)) {
        return false;
    }
    memcpy(buf, s.ptr, s.len);
    buf[s.len] = '\0';
    char *slash = strchr(buf, '/');
    if (slash) {
        *slash = '\0';
    }
    if (inet_pton(AF_INET, buf, addr) == 1) {
        *len = 4;
    } else if (inet_pton(AF_INET6, buf, addr) == 1) {
        *len = 16;
    } else {
        return false;
    }
    *prefix = *len * 8;
    if (slash) {
        int v = 0;
        size_t n = strlen(slash + 1);
        if (n == 0 || n > 3 || !s_digits_at(slash + 1, (int)n, &v) || v > *len * 8) {
            return false;
        }
        *prefix = v;
    }
    return true;
}

/* Is the address `value` inside the block `cidr`? An IPv4 address given as
 * IPv4-mapped IPv6 (::ffff:a.b.c.d) counts as IPv4. */
static bool s_ip_in(const char *cidr, const char *value)
{
    uint8_t net[16], ip[16];
    int nl, il, prefix, ip_prefix;
    if (!s_parse_ip(s3s_cur_from_str(cidr), net, &nl, &prefix) ||
        !s_parse_ip(s3s_cur_from_str(value), ip, &il, &ip_prefix)) {
        return false;
    }
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (il == 16 && nl == 4 && memcmp(ip, mapped, 12) == 0) {
        memmove(ip, ip + 12, 4);
        il = 4;
    }
    if (il != nl) {
        return false;
    }
    for (int i = 0; i < prefix; i++) {
        int bit = 7 - (i % 8);
        if (((net[i / 8] >> bit) & 1) != ((ip[i / 8] >> bit) & 1)) {
            return false;
        }
    }
    return true;
}

static const struct {
    const char *name;
    enum s_key key;
} s_keys[] = {
    {"kms:EncryptionContextKeys", S_KEY_CONTEXT_KEYS},
    {"kms:ViaService", S_KEY_VIA_SERVICE},
    {"kms:CallerAccount", S_KEY_CALLER_ACCOUNT},
    {"aws:PrincipalArn", S_KEY_PRINCIPAL_ARN},
    {"aws:PrincipalAccount", S_KEY_PRINCIPAL_ACCOUNT},
};

#define S_CONTEXT_PREFIX "kms:EncryptionContext:"

static bool s_strip_prefix(struct s3s_cur *c, const char *prefix)
{
    if (!s3s_cur_starts_with(*c, prefix)) {
        return false;
    }
    size_t n = strlen(prefix);
    c->ptr += n;
    c->len -= n;
    return true;
}

static bool s_strip_suffix(struct s3s_cur *c, const char *suffix)
{
    size_t n = strlen(suffix);
    if (c->len < n || memcmp(c->ptr + c->len - n, suffix, n) != 0) {
        return false;
    }
    c->len -= n;
    return true;
}

/* [ForAnyValue:|ForAllValues:]OPERATOR[IfExists], spelt as AWS does. */
static s3s_result s_parse_operator(struct s_build *b, const char *name, struct s_cond *c,
                                   const struct s_op **op)
{
    struct s3s_cur n = s3s_cur_from_str(name);
    *op = NULL;
    c->set = s_strip_prefix(&n, "ForAnyValue:")    ? S_SET_ANY
             : s_strip_prefix(&n, "ForAllValues:") ? S_SET_ALL
                                                   : S_SET_NONE;
    c->if_exists = s_strip_suffix(&n, "IfExists");
    for (size_t i = 0; i < sizeof(s_ops) / sizeof(s_ops[0]); i++) {
        if (s3s_cur_eq_str(n, s_ops[i].name)) {
            *op = &s_ops[i];
            c->match = s_ops[i].match;
            c->negate = s_ops[i].negate;
            c->cmp = s_ops[i].cmp;
            break;
        }
    }
    if (!*op) {
        return s_fail(b, "unknown condition operator \"%s\"", name);
    }
    if (c->match == S_MATCH_NULL && (c->set != S_SET_NONE || c->if_exists)) {
        return s_fail(b, "Null takes no IfExists and no set operator");
    }
    return s3s_ok();
}

/* SERVICE:NAME, case-insensitive, except the KEY of kms:EncryptionContext:KEY
 * (encryption context keys are case-sensitive). */
static s3s_result s_parse_cond_key(struct s_build *b, const char *name, struct s_cond *c)
{
    struct s3s_cur n = s3s_cur_from_str(name);
    struct s3s_cur prefix = S3S_CUR_LIT(S_CONTEXT_PREFIX);
    if (s3s_cur_find(n, ':') <= 0) {
        return s_fail(b, "condition key \"%s\" has no service prefix", name);
    }
    if (n.len >= prefix.len && s3s_cur_eq_ignore_case(s3s_cur_from(n.ptr, prefix.len), prefix)) {
        if (n.len == prefix.len) {
            return s_fail(b, "condition key \"%s\" names no context key", name);
        }
        c->key = S_KEY_CONTEXT;
        return s_add_str(b, name + prefix.len, n.len - prefix.len, &c->context_key);
    }
    for (size_t i = 0; i < sizeof(s_keys) / sizeof(s_keys[0]); i++) {
        if (s3s_cur_eq_str_ignore_case(n, s_keys[i].name)) {
            c->key = s_keys[i].key;
            return s3s_ok();
        }
    }
    /* Any other key is the request's to give (s3:prefix, aws:SourceIp...);
     * a request that has none of that name reads it as absent. */
    c->key = S_KEY_REQUEST;
    return s_add_str(b, name, n.len, &c->context_key);
}

struct s_value_arg {
    struct s_cond *cond;
    const struct s_op *op;
};

static s3s_result s_cond_value(struct s_build *b, struct s3s_cur s, void *arg)
{
    struct s_value_arg *va = arg;
    if (va->op->boolean_values && !s3s_cur_eq_str_ignore_case(s, "true") &&
        !s3s_cur_eq_str_ignore_case(s, "false")) {
        return s_fail(b, "%s takes \"true\" or \"false\"", va->op->name);
    }
    double num;
    int64_t when;
    uint8_t addr[16];
    int alen, prefix;
    if ((va->op->match == S_MATCH_NUMERIC && !s_parse_number(s, &num)) ||
        (va->op->match == S_MATCH_DATE && !s_parse_date(s, &when)) ||
        (va->op->match == S_MATCH_IP && !s_parse_ip(s, addr, &alen, &prefix))) {
        return s_fail(b, "%s: \"%.*s\" is not a valid value", va->op->name, (int)s.len,
                      (const char *)s.ptr);
    }
    return s_append_to(b, s, &va->cond->values);
}

/* One operator block: {"kms:ViaService": [...], "kms:CallerAccount": "..."}. */
static s3s_result s_parse_operator_block(struct s_build *b, const char *op_name,
                                         struct json_object *block, struct s_list *conds)
{
    struct s_cond proto = {0};
    const struct s_op *op = NULL;
    S3S_GUARD(s_parse_operator(b, op_name, &proto, &op));
    if (!json_object_is_type(block, json_type_object) || json_object_object_length(block) == 0) {
        return s_fail(b, "%s is not an object of condition keys", op_name);
    }
    struct json_object_iter it;
    json_object_object_foreachC(block, it)
    {
        struct s_cond c = proto;
        S3S_GUARD(s_parse_cond_key(b, it.key, &c));
        struct s_value_arg va = {&c, op};
        S3S_GUARD(s_each_item(b, it.val, it.key, true, s_cond_value, &va));
        S3S_GUARD(s_add_cond(b, &c, conds));
    }
    return s3s_ok();
}

static s3s_result s_parse_conditions(struct s_build *b, struct json_object *v,
                                     struct s_list *conds)
{
    if (!json_object_is_type(v, json_type_object)) {
        return s_fail(b, "Condition is not an object");
    }
    struct json_object_iter it;
    json_object_object_foreachC(v, it)
    {
        S3S_GUARD(s_parse_operator_block(b, it.key, it.val, conds));
    }
    return s3s_ok();
}

/* ----------------------------------------------------------- statements */

static s3s_result s_parse_effect(struct s_build *b, struct json_object *o, struct s_stmt *st)
{
    const char *effect = NULL;
    S3S_GUARD(s_opt_string(b, o, "Effect", &effect));
    if (!effect) {
        return s_fail(b, "no Effect");
    }
    if (strcmp(effect, "Allow") != 0 && strcmp(effect, "Deny") != 0) {
        return s_fail(b, "Effect \"%s\" is neither Allow nor Deny", effect);
    }
    st->deny = strcmp(effect, "Deny") == 0;
    return s3s_ok();
}

static s3s_result s_parse_statement(struct s_build *b, struct json_object *o)
{
    static const char *const known[] = {"Sid",      "Effect",      "Principal",
                                        "NotPrincipal", "Action",  "NotAction",
                                        "Resource", "NotResource", "Condition",
                                        NULL};
    if (!json_object_is_type(o, json_type_object)) {
        return s_fail(b, "not an object");
    }
    S3S_GUARD(s_known_members(b, o, known, "the statement"));
    const char *sid = NULL;
    S3S_GUARD(s_opt_string(b, o, "Sid", &sid));

    struct s_stmt st = {0};
    if (sid) {
        st.has_sid = true;
        S3S_GUARD(s_add_str(b, sid, strlen(sid), &st.sid));
    }
    struct json_object *v = NULL;
    S3S_GUARD(s_parse_effect(b, o, &st));
    if (b->kind == S3S_POLICY_KIND_IDENTITY) {
        /* An identity policy applies to whoever holds it. */
        if (json_object_object_get_ex(o, "Principal", NULL) ||
            json_object_object_get_ex(o, "NotPrincipal", NULL)) {
            return s_fail(b, "an identity policy has no Principal");
        }
        st.any_principal = true;
    } else {
        S3S_GUARD(s_one_of(b, o, "Principal", "NotPrincipal", &v, &st.not_principal));
        S3S_GUARD(s_parse_principal(b, v, &st));
    }
    S3S_GUARD(s_one_of(b, o, "Action", "NotAction", &v, &st.not_action));
    S3S_GUARD(s_each_item(b, v, "Action", false, s_action, &st.actions));
    S3S_GUARD(s_one_of(b, o, "Resource", "NotResource", &v, &st.not_resource));
    S3S_GUARD(s_each_item(b, v, "Resource", false, s_resource, &st.resources));
    if (json_object_object_get_ex(o, "Condition", &v)) {
        S3S_GUARD(s_parse_conditions(b, v, &st.conds));
    }
    return s_add_stmt(b, &st);
}

static s3s_result s_parse_document(struct s_build *b, struct json_object *root)
{
    static const char *const known[] = {"Version", "Id", "Statement", NULL};
    if (!json_object_is_type(root, json_type_object)) {
        return s_fail(b, "the policy is not a JSON object");
    }
    S3S_GUARD(s_known_members(b, root, known, "the policy"));
    const char *version = NULL, *id = NULL; /* Id is checked, not kept */
    S3S_GUARD(s_opt_string(b, root, "Version", &version));
    S3S_GUARD(s_opt_string(b, root, "Id", &id));
    if (version && strcmp(version, "2012-10-17") != 0 && strcmp(version, "2008-10-17") != 0) {
        return s_fail(b, "unknown Version \"%s\"", version);
    }
    struct json_object *stmts = NULL;
    if (!json_object_object_get_ex(root, "Statement", &stmts)) {
        return s_fail(b, "no Statement");
    }
    /* One statement may stand alone instead of in a list. */
    bool list = json_object_is_type(stmts, json_type_array);
    size_t n = list ? json_object_array_length(stmts) : 1;
    if (n == 0) {
        return s_fail(b, "Statement is an empty list");
    }
    for (size_t i = 0; i < n; i++) {
        b->stmt_no = i + 1;
        S3S_GUARD(s_parse_statement(b, list ? json_object_array_get_idx(stmts, i) : stmts));
    }
    b->stmt_no = 0;
    return s3s_ok();
}

s3s_result s3s_policy_parse(struct s3s_cur json, struct s3s_policy **out, char *why,
                            size_t why_len)
{
    return s3s_policy_parse_kind(json, S3S_POLICY_KIND_KEY, out, why, why_len);
}

s3s_result s3s_policy_parse_kind(struct s3s_cur json, enum s3s_policy_kind kind,
                                 struct s3s_policy **out, char *why, size_t why_len)
{
    S3S_ENSURE_REF(out);
    *out = NULL;
    if (why && why_len > 0) {
        why[0] = '\0';
    }
    struct s_build b = {.why = why, .why_len = why_len, .kind = kind};
    if (json.len > S3S_POLICY_MAX_LEN) {
        return s_fail(&b, "the policy is larger than %d bytes", S3S_POLICY_MAX_LEN);
    }
    struct json_object *root = NULL;
    const char *bad = NULL;
    s3s_result r = s3s_keystore__json_parse(json, S_MAX_NESTING, &root, &bad);
    if (r.code == S3S_ERR_NOMEM) {
        return r;
    }
    if (s3s_failed(r)) {
        return s_fail(&b, "not valid JSON: %s", bad);
    }
    struct s3s_policy *p = NULL;
    r = s_parse_document(&b, root); /* measures */
    if (s3s_is_ok(r)) {
        r = s_alloc_block(&b, &p);
    }
    if (s3s_is_ok(r)) {
        r = s_parse_document(&b, root); /* fills */
    }
    json_object_put(root);
    if (s3s_failed(r)) {
        s3s_free(&p);
        return r;
    }
    *out = p;
    return s3s_ok();
}

void s3s_policy_free(struct s3s_policy *p) { s3s_free(&p); }

/* ----------------------------------------------------------- principals */

bool s3s_principal_account(const char *principal, char out[13])
{
    struct s3s_cur service, account, resource;
    if (!principal ||
        !s_split_principal(s3s_cur_from_str(principal), &service, &account, &resource)) {
        return false;
    }
    memcpy(out, account.ptr, 12);
    out[12] = '\0';
    return true;
}

/* ------------------------------------------------------------ matching */

static uint8_t s_fold(uint8_t c, bool icase)
{
    return (icase && c >= 'A' && c <= 'Z') ? (uint8_t)(c + 32) : c;
}

/* The index after the character at i: one UTF-8 sequence, not one byte. */
static size_t s_next_char(struct s3s_cur s, size_t i)
{
    i++;
    while (i < s.len && (s.ptr[i] & 0xc0) == 0x80) {
        i++;
    }
    return i;
}

/* AWS wildcards: '*' any run of characters (also none), '?' one character.
 * On a mismatch, the last '*' swallows one more character and matching
 * resumes after it; earlier stars never need revisiting, so no recursion
 * and at worst len(p) * len(s) steps. */
static bool s_glob(struct s3s_cur p, struct s3s_cur s, bool icase)
{
    size_t pi = 0, si = 0, star = SIZE_MAX, resume = 0;
    while (si < s.len) {
        if (pi < p.len && p.ptr[pi] == '*') {
            star = pi++;
            resume = si;
        } else if (pi < p.len && p.ptr[pi] == '?') {
            pi++;
            si = s_next_char(s, si);
        } else if (pi < p.len && s_fold(p.ptr[pi], icase) == s_fold(s.ptr[si], icase)) {
            pi++;
            si++;
        } else if (star != SIZE_MAX) {
            pi = star + 1;
            resume = s_next_char(s, resume);
            si = resume;
        } else {
            return false;
        }
    }
    while (pi < p.len && p.ptr[pi] == '*') {
        pi++;
    }
    return pi == p.len;
}

/* A Resource pattern against the key's ARN, field by field. */
static bool s_arn_matches(const char *pattern, const char *arn)
{
    struct s3s_cur p = s3s_cur_from_str(pattern), a = s3s_cur_from_str(arn), pf, af;
    if (s3s_cur_eq_str(p, "*")) {
        return true;
    }
    for (int i = 0; i < 5; i++) {
        if (!s3s_cur_split(&p, ':', &pf) || !s3s_cur_split(&a, ':', &af) ||
            !s_glob(pf, af, false)) {
            return false;
        }
    }
    return s_glob(p, a, false); /* the resource, which may hold ':' */
}

struct s_eval {
    const struct s3s_policy *p;
    const struct s3s_policy_request *req;
    char account[13]; /* the caller's; "" when its ARN names none */
};

static bool s_principal_matches(const struct s_eval *e, const struct s_stmt *st)
{
    bool match = st->any_principal;
    for (uint32_t i = 0; i < st->principals.n && !match; i++) {
        const char *want = e->p->strs[st->principals.first + i];
        /* Accounts were stored as their 12 digits, ARNs always hold a ':'. */
        bool is_account = strchr(want, ':') == NULL;
        match = is_account ? strcmp(want, e->account) == 0 : strcmp(want, e->req->principal) == 0;
    }
    return match != st->not_principal;
}

static bool s_action_matches(const struct s_eval *e, const struct s_stmt *st)
{
    bool match = false;
    for (uint32_t i = 0; i < st->actions.n && !match; i++) {
        match = s_glob(s3s_cur_from_str(e->p->strs[st->actions.first + i]),
                       s3s_cur_from_str(e->req->action), true);
    }
    return match != st->not_action;
}

static bool s_resource_matches(const struct s_eval *e, const struct s_stmt *st)
{
    bool match = false;
    for (uint32_t i = 0; i < st->resources.n && !match; i++) {
        match = s_arn_matches(e->p->strs[st->resources.first + i], e->req->key_arn);
    }
    return match != st->not_resource;
}

/* The i-th value the request has for a condition key, NULL past the last.
 * Only kms:EncryptionContextKeys has more than one. */
static const char *s_key_value(const struct s_eval *e, const struct s_cond *c, size_t i)
{
    const struct s3s_kms_context *ctx = e->req->context;
    if (c->key == S_KEY_CONTEXT_KEYS) {
        return ctx && i < ctx->n ? ctx->pairs[i].key : NULL;
    }
    if (c->key == S_KEY_REQUEST) {
        /* The i-th value the request gives under that name (keys are
         * case-insensitive). */
        const char *name = e->p->strs[c->context_key];
        for (size_t k = 0; k < e->req->n_keys; k++) {
            const struct s3s_policy_kv *kv = &e->req->keys[k];
            if (kv->name && kv->value &&
                s3s_cur_eq_str_ignore_case(s3s_cur_from_str(kv->name), name) && i-- == 0) {
                return kv->value;
            }
        }
        return NULL;
    }
    if (i > 0) {
        return NULL;
    }
    switch (c->key) {
    case S_KEY_CONTEXT:
        return s3s_kms_context_get(ctx, e->p->strs[c->context_key]);
    case S_KEY_VIA_SERVICE:
        return e->req->via_service;
    case S_KEY_CALLER_ACCOUNT:
    case S_KEY_PRINCIPAL_ACCOUNT:
        return e->account[0] ? e->account : NULL;
    case S_KEY_PRINCIPAL_ARN:
        return e->req->principal;
    case S_KEY_REQUEST:
    case S_KEY_ABSENT:
    case S_KEY_CONTEXT_KEYS:
    default:
        return NULL;
    }
}

/* Does v match any of the condition's values (the positive form)? */
static bool s_value_matches(const struct s_eval *e, const struct s_cond *c, const char *v)
{
    for (uint32_t i = 0; i < c->values.n; i++) {
        const char *want = e->p->strs[c->values.first + i];
        bool match = false;
        switch (c->match) {
        case S_MATCH_EQUALS:
            match = strcmp(want, v) == 0;
            break;
        case S_MATCH_EQUALS_ICASE:
            match = s3s_cur_eq_str_ignore_case(s3s_cur_from_str(v), want);
            break;
        case S_MATCH_LIKE:
            match = s_glob(s3s_cur_from_str(want), s3s_cur_from_str(v), false);
            break;
        case S_MATCH_NUMERIC:
        case S_MATCH_DATE: {
            double a = 0, w = 0;
            int64_t ta = 0, tw = 0;
            bool ok = c->match == S_MATCH_NUMERIC
                          ? s_parse_number(s3s_cur_from_str(v), &a) &&
                                s_parse_number(s3s_cur_from_str(want), &w)
                          : s_parse_date(s3s_cur_from_str(v), &ta) &&
                                s_parse_date(s3s_cur_from_str(want), &tw);
            if (c->match == S_MATCH_DATE) {
                a = (double)ta;
                w = (double)tw;
            }
            /* A request value that is no number or date matches nothing. */
            match = ok && (c->cmp == S_CMP_EQ   ? a == w
                           : c->cmp == S_CMP_LT ? a < w
                           : c->cmp == S_CMP_LE ? a <= w
                           : c->cmp == S_CMP_GT ? a > w
                                                : a >= w);
            break;
        }
        case S_MATCH_IP:
            match = s_ip_in(want, v);
            break;
        case S_MATCH_ARN:
            match = s_arn_matches(want, v);
            break;
        case S_MATCH_NULL:
        default:
            break;
        }
        if (match) {
            return true;
        }
    }
    return false;
}

/* Null: "true" asks for the key to be absent, "false" present. */
static bool s_null_matches(const struct s_eval *e, const struct s_cond *c, bool absent)
{
    for (uint32_t i = 0; i < c->values.n; i++) {
        bool wants_absent = s3s_cur_eq_str_ignore_case(
            s3s_cur_from_str(e->p->strs[c->values.first + i]), "true");
        if (wants_absent == absent) {
            return true;
        }
    }
    return false;
}

static bool s_cond_matches(const struct s_eval *e, const struct s_cond *c)
{
    bool absent = s_key_value(e, c, 0) == NULL;
    if (c->match == S_MATCH_NULL) {
        return s_null_matches(e, c, absent);
    }
    if (absent && c->if_exists) {
        return true;
    }
    const char *v;
    switch (c->set) {
    case S_SET_ANY:
        /* Some value satisfies the operator; false over no values. */
        for (size_t i = 0; (v = s_key_value(e, c, i)) != NULL; i++) {
            if (s_value_matches(e, c, v) != c->negate) {
                return true;
            }
        }
        return false;
    case S_SET_ALL:
        /* Every value satisfies the operator; true over no values. */
        for (size_t i = 0; (v = s_key_value(e, c, i)) != NULL; i++) {
            if (s_value_matches(e, c, v) == c->negate) {
                return false;
            }
        }
        return true;
    case S_SET_NONE:
    default: {
        /* The positive form matches if any value does (false when absent);
         * the negated form is its negation. */
        bool any = false;
        for (size_t i = 0; !any && (v = s_key_value(e, c, i)) != NULL; i++) {
            any = s_value_matches(e, c, v);
        }
        return any != c->negate;
    }
    }
}

static bool s_stmt_applies(const struct s_eval *e, const struct s_stmt *st)
{
    if (!s_principal_matches(e, st) || !s_action_matches(e, st) || !s_resource_matches(e, st)) {
        return false;
    }
    for (uint32_t i = 0; i < st->conds.n; i++) {
        if (!s_cond_matches(e, &e->p->conds[st->conds.first + i])) {
            return false;
        }
    }
    return true;
}

enum s3s_policy_decision s3s_policy_evaluate(const struct s3s_policy *p,
                                             const struct s3s_policy_request *req)
{
    return s3s_policy_evaluate_explain(p, req, NULL);
}

enum s3s_policy_decision s3s_policy_evaluate_explain(const struct s3s_policy *p,
                                                     const struct s3s_policy_request *req,
                                                     struct s3s_policy_explain *why)
{
    if (why) {
        memset(why, 0, sizeof(*why));
    }
    if (!req || !req->principal || !req->action || !req->key_arn) {
        return S3S_POLICY_IMPLICIT_DENY;
    }
    struct s_eval e = {.p = p, .req = req};
    if (!s3s_principal_account(req->principal, e.account)) {
        e.account[0] = '\0';
    }
    if (!p) {
        bool own = e.account[0] && req->key_account && strcmp(e.account, req->key_account) == 0;
        return own ? S3S_POLICY_ALLOW : S3S_POLICY_IMPLICIT_DENY;
    }
    bool allowed = false;
    for (size_t i = 0; i < p->n_stmts; i++) {
        const struct s_stmt *st = &p->stmts[i];
        if (!s_stmt_applies(&e, st)) {
            continue;
        }
        if (why && (st->deny || !allowed)) {
            why->statement = i + 1;
            why->sid = st->has_sid ? p->strs[st->sid] : NULL;
        }
        if (st->deny) {
            return S3S_POLICY_EXPLICIT_DENY; /* nothing overrides it */
        }
        allowed = true;
    }
    return allowed ? S3S_POLICY_ALLOW : S3S_POLICY_IMPLICIT_DENY;
}

s3s_result s3s_policy_denial_message(const struct s3s_policy_request *req,
                                     enum s3s_policy_decision d, struct s3s_buf *out)
{
    S3S_ENSURE_REF(req);
    S3S_ENSURE_REF(out);
    const char *who = req->principal ? req->principal : "anonymous";
    const char *action = req->action ? req->action : "";
    const char *key = req->key_arn ? req->key_arn : "";
    switch (d) {
    case S3S_POLICY_EXPLICIT_DENY:
        return s3s_buf_appendf(out,
                               "User: %s is not authorized to perform: %s on resource: %s with an "
                               "explicit deny in a resource-based policy",
                               who, action, key);
    case S3S_POLICY_IMPLICIT_DENY:
        return s3s_buf_appendf(out,
                               "User: %s is not authorized to perform: %s on resource: %s because "
                               "no resource-based policy allows the %s action",
                               who, action, key, action);
    case S3S_POLICY_ALLOW:
    default:
        S3S_BAIL(S3S_ERR_INVALID_ARG);
    }
}

/* ------------------------------------------------------ bucket policies */

bool s3s_policy_resources_within(const struct s3s_policy *p, const char *bucket)
{
    size_t bl = strlen(bucket);
    for (size_t i = 0; p && i < p->n_stmts; i++) {
        const struct s_stmt *st = &p->stmts[i];
        for (uint32_t j = 0; j < st->resources.n; j++) {
            const char *res = p->strs[st->resources.first + j];
            static const char pre[] = "arn:aws:s3:::";
            size_t pl = sizeof(pre) - 1;
            if (strncmp(res, pre, pl) != 0 || strncmp(res + pl, bucket, bl) != 0 ||
                (res[pl + bl] != '\0' && res[pl + bl] != '/')) {
                return false;
            }
        }
    }
    return true;
}

bool s3s_policy_is_public(const struct s3s_policy *p)
{
    for (size_t i = 0; p && i < p->n_stmts; i++) {
        const struct s_stmt *st = &p->stmts[i];
        if (!st->deny && (st->any_principal || st->not_principal) && st->conds.n == 0) {
            return true;
        }
    }
    return false;
}
