/*
 * policy.h - AWS KMS key policies and encryption contexts.
 *
 * A key policy is AWS's policy JSON (Version, Statement: Sid, Effect
 * Allow|Deny, Principal / NotPrincipal ("*", {"AWS": ARN | account id |
 * [..]}), Action / NotAction ("kms:Decrypt", "kms:GenerateDataKey*",
 * "kms:*", wildcards * and ?, case-insensitive), Resource ("*" or the key's
 * ARN, wildcards), Condition). Evaluation is AWS's: an explicit Deny wins,
 * then any Allow, else an implicit deny. A principal ARN
 * arn:aws:iam::ACCOUNT:root, or a bare 12-digit ACCOUNT, stands for every
 * principal of that account (s3seal has no IAM policies to delegate to).
 *
 * Condition operators: StringEquals, StringNotEquals, StringEqualsIgnoreCase,
 * StringNotEqualsIgnoreCase, StringLike, StringNotLike, NumericEquals,
 * NumericNotEquals, NumericLessThan[Equals], NumericGreaterThan[Equals],
 * DateEquals, DateNotEquals, DateLessThan[Equals], DateGreaterThan[Equals],
 * IpAddress, NotIpAddress, ArnEquals, ArnNotEquals, ArnLike, ArnNotLike,
 * each also with the IfExists suffix and the ForAnyValue: / ForAllValues:
 * prefixes, Bool and Null. A Numeric, Date or IpAddress value that does not
 * read as one is a malformed policy. Condition keys: kms:EncryptionContext:KEY, kms:EncryptionContextKeys
 * (multi-valued), kms:ViaService, kms:CallerAccount, aws:PrincipalArn,
 * aws:PrincipalAccount. Keys are case-insensitive except the KEY of
 * kms:EncryptionContext:KEY.
 *
 * A key the request lacks (and every key s3seal does not know is one) is
 * AWS's absent key: a positive operator on it is false, a negated one
 * (StringNotEquals, StringNotEqualsIgnoreCase, StringNotLike) true, so
 * "Deny unless kms:ViaService is S3" also denies calls that come through no
 * service; IfExists makes any operator true on it, Null tests for it,
 * ForAllValues: is true and ForAnyValue: false over it. Without a set
 * operator, a multi-valued key matches when any of its values matches, and
 * a negated operator is the negation of that.
 *
 * Matching: a statement applies when its principal, action, resource and
 * every condition (each key under each operator) match; the values listed
 * for one condition key are OR (a negated operator: none of them matches). StringEquals compares
 * bytes, the IgnoreCase forms fold ASCII letters only. In wildcards, '*' is
 * any run of characters and '?' one UTF-8 character; Action matches
 * case-insensitively, Resource case-sensitively and segment by segment
 * (a wildcard never crosses the ':' between the six fields of an ARN).
 * Policy variables (${aws:username}) are not expanded: they are literal
 * text. Principals are exact: "*", an account (12 digits or its :root ARN)
 * or an IAM/STS ARN without wildcards; {"Service": ...} principals are
 * accepted and never match a caller.
 *
 * Parsing is strict, because a policy that reads one way to its author and
 * another way to s3seal is a hole: duplicate keys in any JSON object,
 * unknown elements (a misspelt "Condition" would otherwise widen a
 * statement), empty lists and condition values other than strings and
 * booleans are all errors.
 */
#ifndef S3S_KEYSTORE_POLICY_H
#define S3S_KEYSTORE_POLICY_H

#include "common/common.h"

/* ---------------------------------------------------- encryption context */

/* The largest encryption context accepted from a client, as JSON text
 * (AWS's limit); its base64 form may be 4/3 of it. */
#define S3S_KMS_CONTEXT_MAX_JSON 8192
/* The largest key policy (AWS's limit). */
#define S3S_POLICY_MAX_LEN 32768

/* A string-to-string map, kept sorted by key (bytewise), keys unique,
 * non-empty and, like values, valid UTF-8. */
struct s3s_kms_context {
    struct s3s_kms_context_pair {
        char *key;
        char *value;
    } *pairs;
    size_t n;
};
void s3s_kms_context_init(struct s3s_kms_context *c);
void s3s_kms_context_clean_up(struct s3s_kms_context *c);
/* Parses a JSON object of string values ({"k":"v",...}, at most
 * S3S_KMS_CONTEXT_MAX_JSON bytes); anything else (not JSON, not an object, a
 * non-string value, an empty key, invalid UTF-8, duplicate keys, too large)
 * is S3S_ERR_KMS_INVALID_CONTEXT. Pairs are added to c, replacing the value
 * of a key c already has; on any error c is left as it was. */
S3S_RESULT s3s_kms_context_parse_json(struct s3s_cur json, struct s3s_kms_context *c);
/* The x-amz-server-side-encryption-context header: base64 of that JSON. */
S3S_RESULT s3s_kms_context_parse_b64(struct s3s_cur b64, struct s3s_kms_context *c);
/* Sets key to value (replacing), both copied. An empty key or a key or value
 * that is not valid UTF-8 is S3S_ERR_INVALID_ARG. */
S3S_RESULT s3s_kms_context_set(struct s3s_kms_context *c, const char *key, const char *value);
/* The value of key, or NULL. The pointer lives until c changes. */
const char *s3s_kms_context_get(const struct s3s_kms_context *c, const char *key);
/* Makes `to` (initialised) a deep copy of from, releasing its old pairs; on
 * error `to` is left as it was. */
S3S_RESULT s3s_kms_context_copy(const struct s3s_kms_context *from, struct s3s_kms_context *to);
/* The same pairs (contexts keep them sorted by key, so pair by pair). */
bool s3s_kms_context_equal(const struct s3s_kms_context *a, const struct s3s_kms_context *b);
/* Canonical JSON: keys sorted, no spaces, JSON string escaping of '"', '\\'
 * (as \" and \\) and control characters only (as RFC 8785 writes them: \b
 * \f \n \r \t, else \u00xx in lower-case hex), UTF-8 kept as is, so equal
 * maps give equal bytes. It is never longer than a text parse_json accepted
 * for the same map, so it parses back within the limit. "{}" for an empty
 * map. Appended to out; on error (S3S_ERR_TOO_BIG past out's maximum) out
 * keeps its old length. */
S3S_RESULT s3s_kms_context_json(const struct s3s_kms_context *c, struct s3s_buf *out);
/* base64 of the canonical JSON (what S3 returns in the header). */
S3S_RESULT s3s_kms_context_b64(const struct s3s_kms_context *c, struct s3s_buf *out);

/* --------------------------------------------------------------- policies */

struct s3s_policy;

/* Parses and validates a key policy into one block the caller owns (free it
 * with s3s_policy_free); evaluating it afterwards needs no JSON and no
 * allocation, and a parsed policy may be shared by threads. On error *out
 * is NULL; S3S_ERR_KMS_MALFORMED_POLICY carries a one-line reason in why
 * (may be NULL): not JSON, no Statement, an Effect other than Allow/Deny, a
 * statement without Principal and NotPrincipal (or with both, likewise for
 * Action and Resource), an unknown element, an unknown condition operator, a
 * policy over S3S_POLICY_MAX_LEN bytes; S3S_ERR_NOMEM carries none. */
S3S_RESULT s3s_policy_parse(struct s3s_cur json, struct s3s_policy **out, char *why,
                            size_t why_len);

/* One engine, three kinds of documents: a KMS key policy (kms: actions,
 * Principal required), an S3 bucket policy (Principal required, s3: actions
 * only, each pattern matching a known S3 action) and an IAM identity policy
 * (no Principal: it applies to whoever holds it; s3: patterns must match a
 * known S3 action). */
enum s3s_policy_kind {
    S3S_POLICY_KIND_KEY = 0,
    S3S_POLICY_KIND_BUCKET,
    S3S_POLICY_KIND_IDENTITY,
};
S3S_RESULT s3s_policy_parse_kind(struct s3s_cur json, enum s3s_policy_kind kind,
                                 struct s3s_policy **out, char *why, size_t why_len);
void s3s_policy_free(struct s3s_policy *p);

/* Whether an action pattern ("s3:Get*", case-insensitive) matches one of
 * S3's actions. */
bool s3s_policy_s3_action_known(const char *pattern);
/* A bucket policy's Resource entries all name the bucket or objects in it
 * (arn:aws:s3:::BUCKET or arn:aws:s3:::BUCKET/...); AWS refuses others. */
bool s3s_policy_resources_within(const struct s3s_policy *p, const char *bucket);
/* GetBucketPolicyStatus: some Allow statement applies to every principal
 * ("*" or a NotPrincipal) without a condition. */
bool s3s_policy_is_public(const struct s3s_policy *p);

/* A condition key's value given by the request (s3:prefix, aws:SourceIp,
 * ...): a key given several times is multi-valued. */
struct s3s_policy_kv {
    const char *name;
    const char *value;
};

struct s3s_policy_request {
    const char *principal;      /* the caller, arn:aws:iam::ACCOUNT:user/NAME (or :role/, :root) */
    const char *action;         /* "kms:Decrypt", "kms:GenerateDataKey", "kms:Encrypt", ... */
    const char *key_arn;        /* the resource */
    const char *key_account;    /* the key's owner */
    const char *via_service;    /* "s3.REGION.amazonaws.com" for S3 requests; NULL otherwise */
    const struct s3s_kms_context *context; /* may be NULL (no context) */
    /* Every other condition key the request has (S3: s3:prefix,
     * s3:x-amz-server-side-encryption, aws:SourceIp, aws:CurrentTime...).
     * Numeric*, Date*, IpAddress and Arn* read these values as numbers,
     * ISO 8601 dates (or Unix seconds), addresses and ARNs. */
    const struct s3s_policy_kv *keys;
    size_t n_keys;
};

enum s3s_policy_decision {
    S3S_POLICY_ALLOW = 0,
    S3S_POLICY_IMPLICIT_DENY = 1, /* no statement allows it */
    S3S_POLICY_EXPLICIT_DENY = 2, /* a Deny statement matches */
};

/* Evaluates a request against a key's policy. p NULL is the default key
 * policy: allowed exactly when the principal's account is key_account. A
 * request without principal, action or key_arn is denied. Allocates
 * nothing. */
enum s3s_policy_decision s3s_policy_evaluate(const struct s3s_policy *p,
                                             const struct s3s_policy_request *req);

/* Which statement decided: the explicit Deny, or the first Allow that
 * matched; statement 0 when none did. sid borrows from the policy. */
struct s3s_policy_explain {
    size_t statement; /* 1-based */
    const char *sid;  /* NULL: the statement has no Sid */
};
/* s3s_policy_evaluate, telling which statement decided (why may be NULL). */
enum s3s_policy_decision s3s_policy_evaluate_explain(const struct s3s_policy *p,
                                                     const struct s3s_policy_request *req,
                                                     struct s3s_policy_explain *why);

/* The 12-digit account of an IAM-style principal ARN (arn:aws:iam::ACCOUNT:...,
 * or arn:aws:sts::ACCOUNT:... for assumed roles; any partition) or of a bare
 * account id, copied into out[13]; false if it has none. */
bool s3s_principal_account(const char *principal, char out[13]);

/* AWS's refusal message, e.g. "User: arn:aws:iam::111122223333:user/bob is
 * not authorized to perform: kms:Decrypt on resource: arn:aws:kms:...:key/...
 * because no resource-based policy allows the kms:Decrypt action" (or "with
 * an explicit deny in a resource-based policy"). Appended to out; on error
 * (S3S_ERR_INVALID_ARG for an allow, S3S_ERR_TOO_BIG) out keeps its old
 * length. */
S3S_RESULT s3s_policy_denial_message(const struct s3s_policy_request *req,
                                     enum s3s_policy_decision d, struct s3s_buf *out);

#endif /* S3S_KEYSTORE_POLICY_H */
