/*
 * authz.c - s3s_authz_check (authz.h): a request's caller, action,
 * resource and condition keys, the bucket's owner and policy, and the
 * decision of authz_eval.c.
 */
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "proxy/authz.h"
#include "proxy/proxy.h"
#include "sigv4/sigv4.h"

/* The condition keys s3seal gives a request (policy.h's request keys). */
#define S_MAX_KEYS 16

struct s_ctx {
    struct s3s_policy_kv kv[S_MAX_KEYS];
    size_t n;
    char now[24];
    char age[24];
    struct s3s_buf prefix, delimiter, max_keys;
    struct s3s_buf sse, sse_kms, acl, copy_source;
};

static void s_kv(struct s_ctx *x, const char *name, const char *value)
{
    if (value && x->n < S_MAX_KEYS) {
        x->kv[x->n].name = name;
        x->kv[x->n].value = value;
        x->n++;
    }
}

/* A header's value as a C string into buf (NULL: absent or too long). */
static const char *s_header(const struct s3s_req *r, const char *name, struct s3s_buf *buf)
{
    struct s3s_cur v;
    const char *out = NULL;
    if (s3s_req_header(r, name, &v) && s3s_is_ok(s3s_buf_append_cur(buf, s3s_cur_trim(v))) &&
        s3s_is_ok(s3s_buf_cstr(buf, &out))) {
        return out;
    }
    return NULL;
}

/* A query parameter's decoded value (NULL: absent). */
static const char *s_query(const struct s3s_req *r, const char *name, struct s3s_buf *buf)
{
    struct s3s_cur q = r->query, part;
    while (s3s_cur_next(&q, '&', &part)) {
        long eq = s3s_cur_find(part, '=');
        struct s3s_cur raw = eq >= 0 ? s3s_cur_from(part.ptr, (size_t)eq) : part;
        if (!part.len || !s3s_s3_param_name_is(raw, name)) {
            continue;
        }
        struct s3s_cur val = eq >= 0 ? s3s_cur_from(part.ptr + eq + 1, part.len - (size_t)eq - 1)
                                     : s3s_cur_from(NULL, 0);
        const char *out = NULL;
        s3s_buf_reset(buf);
        if (s3s_is_ok(s3s_percent_decode(val, false, false, buf)) &&
            s3s_is_ok(s3s_buf_cstr(buf, &out))) {
            return out;
        }
        return NULL;
    }
    return NULL;
}

static s3s_result s_ctx_init(struct s_ctx *x)
{
    memset(x, 0, sizeof(*x));
    struct s3s_buf *bufs[] = {&x->prefix, &x->delimiter, &x->max_keys, &x->sse,
                              &x->sse_kms, &x->acl, &x->copy_source};
    for (size_t i = 0; i < sizeof(bufs) / sizeof(bufs[0]); i++) {
        S3S_GUARD(s3s_buf_init(bufs[i], 0, 4096));
    }
    return s3s_ok();
}

static void s_ctx_clean_up(struct s_ctx *x)
{
    struct s3s_buf *bufs[] = {&x->prefix, &x->delimiter, &x->max_keys, &x->sse,
                              &x->sse_kms, &x->acl, &x->copy_source};
    for (size_t i = 0; i < sizeof(bufs) / sizeof(bufs[0]); i++) {
        s3s_buf_clean_up(bufs[i]);
    }
}

/* The condition keys of a request (README: Authorization). */
static void s_ctx_fill(struct s_ctx *x, const struct s3s_req *r, bool v2)
{
    int64_t now = s3s_now_real(NULL);
    struct tm tm;
    time_t t = (time_t)now;
    gmtime_r(&t, &tm);
    strftime(x->now, sizeof(x->now), "%Y-%m-%dT%H:%M:%SZ", &tm);
    s_kv(x, "aws:CurrentTime", x->now);
    /* True when the client reached s3seal over its own TLS (tls:); a TLS
     * terminator in front is not something a client's request can vouch
     * for. */
    s_kv(x, "aws:SecureTransport", r->conn->tls ? "true" : "false");
    s_kv(x, "aws:SourceIp", r->conn->remote_ip[0] ? r->conn->remote_ip : NULL);
    s_kv(x, "s3:signatureversion", v2 ? "AWS" : "AWS4-HMAC-SHA256");
    s_kv(x, "s3:authType", r->auth.presigned ? "REST-QUERY-STRING" : "REST-HEADER");
    if (r->auth.request_time > 0) {
        int64_t age_ms = (now - r->auth.request_time) * 1000;
        snprintf(x->age, sizeof(x->age), "%lld", (long long)(age_ms > 0 ? age_ms : 0));
        s_kv(x, "s3:signatureAge", x->age);
    }
    s_kv(x, "s3:x-amz-server-side-encryption",
         s_header(r, "x-amz-server-side-encryption", &x->sse));
    s_kv(x, "s3:x-amz-server-side-encryption-aws-kms-key-id",
         s_header(r, "x-amz-server-side-encryption-aws-kms-key-id", &x->sse_kms));
    s_kv(x, "s3:x-amz-acl", s_header(r, "x-amz-acl", &x->acl));
    s_kv(x, "s3:x-amz-copy-source", s_header(r, "x-amz-copy-source", &x->copy_source));
    if (r->op == S3S_OP_LIST_OBJECTS || r->op == S3S_OP_LIST_UPLOADS) {
        s_kv(x, "s3:prefix", s_query(r, "prefix", &x->prefix));
        s_kv(x, "s3:delimiter", s_query(r, "delimiter", &x->delimiter));
        s_kv(x, "s3:max-keys", s_query(r, "max-keys", &x->max_keys));
    }
}

/* ACLs are disabled (BucketOwnerEnforced): a request that would grant
 * access through one is refused as S3 refuses it. */
static bool s_grants_acl(const struct s3s_req *r)
{
    for (size_t i = 0; i < r->n_headers; i++) {
        if (s3s_cur_starts_with_ignore_case(r->headers[i].name, "x-amz-grant-")) {
            return true;
        }
    }
    struct s3s_cur q = r->query, part;
    while (s3s_cur_next(&q, '&', &part)) {
        long eq = s3s_cur_find(part, '=');
        struct s3s_cur raw = eq >= 0 ? s3s_cur_from(part.ptr, (size_t)eq) : part;
        if (s3s_cur_starts_with_ignore_case(raw, "x-amz-grant-") ||
            s3s_s3_param_name_is(raw, "x-amz-acl")) {
            return true; /* hoisted ACLs: refused rather than read twice */
        }
    }
    struct s3s_cur acl;
    if (s3s_req_header(r, "x-amz-acl", &acl)) {
        acl = s3s_cur_trim(acl);
        if (!s3s_cur_eq_str(acl, "private") && !s3s_cur_eq_str(acl, "bucket-owner-full-control")) {
            return true;
        }
    }
    return false;
}

/* PutBucketAcl / PutObjectAcl with an AccessControlPolicy document: read
 * once it is in (s_stage_body). */
static bool s_acl_body(const struct s3s_req *r)
{
    return (r->op == S3S_OP_BUCKET_CONFIG_WRITE || r->op == S3S_OP_OBJECT_CONFIG_WRITE) &&
           s3s_s3_query_has(r->query, "acl") && s3s_cur_eq_str(r->method, "PUT") &&
           (r->has_body || r->content_length > 0);
}

/* An ACL document is at most this long (S3 refuses larger ones too). */
#define S_ACL_BODY_MAX (64u * 1024)

/* arn:aws:s3:::BUCKET[/KEY] into out. */
static s3s_result s_arn(struct s3s_buf *out, struct s3s_cur bucket, struct s3s_cur key,
                        bool object)
{
    s3s_buf_reset(out);
    S3S_GUARD(s3s_buf_append_str(out, "arn:aws:s3:::"));
    S3S_GUARD(s3s_buf_append_cur(out, bucket));
    if (object) {
        S3S_GUARD(s3s_buf_append_str(out, "/"));
        S3S_GUARD(s3s_buf_append_cur(out, key.len ? key : S3S_CUR_LIT("*")));
    }
    const char *unused;
    return s3s_buf_cstr(out, &unused);
}

/* The bucket and key of x-amz-copy-source ("/bucket/key?versionId=..." or
 * "bucket/key", percent-encoded), decoded into out: bucket '\0' key. */
static s3s_result s_copy_source(const struct s3s_req *r, struct s3s_buf *out,
                                struct s3s_cur *bucket, struct s3s_cur *key)
{
    struct s3s_cur v;
    S3S_ENSURE(s3s_req_header(r, "x-amz-copy-source", &v), S3S_ERR_INVALID_ARG);
    v = s3s_cur_trim(v);
    long q = s3s_cur_find(v, '?');
    if (q >= 0) {
        v.len = (size_t)q;
    }
    S3S_GUARD(s3s_percent_decode(v, false, false, out));
    struct s3s_cur d = s3s_buf_cur(out);
    if (d.len && d.ptr[0] == '/') {
        d.ptr++;
        d.len--;
    }
    long slash = s3s_cur_find(d, '/');
    S3S_ENSURE(slash > 0 && (size_t)slash + 1 < d.len, S3S_ERR_INVALID_ARG);
    *bucket = s3s_cur_from(d.ptr, (size_t)slash);
    *key = s3s_cur_from(d.ptr + slash + 1, d.len - (size_t)slash - 1);
    return s3s_ok();
}

static const char *s_by_name(enum s3s_authz_by by)
{
    switch (by) {
    case S3S_AUTHZ_BY_ROOT:
        return "root";
    case S3S_AUTHZ_BY_IDENTITY:
        return "identity-policy";
    case S3S_AUTHZ_BY_BUCKET:
        return "bucket-policy";
    case S3S_AUTHZ_BY_NONE:
    default:
        return "none";
    }
}

/* One action on one bucket's resource; logs a refusal. */
static s3s_result s_decide(struct s3s_req *r, const struct s3s_config_credential *cred,
                           const char *action, struct s3s_cur bucket, const char *resource,
                           const struct s_ctx *x)
{
    struct s3s_authz_input in = {
        .principal = cred->principal,
        .account = r->account,
        .action = action,
        .resource = resource,
        .identity = cred->identity_policy,
        .keys = x->kv,
        .n_keys = x->n,
    };
    struct s3s_bucket_access ba = {0};
    if (bucket.len) {
        s3s_bucket_access(r->conn->w, bucket, &ba);
        in.bucket_owner = ba.owner;
        in.bucket_policy = ba.policy;
    }
    struct s3s_authz_result res;
    s3s_authz_evaluate(&in, &res);
    if (res.decision == S3S_POLICY_ALLOW && ba.policy_unreadable &&
        !(res.by == S3S_AUTHZ_BY_ROOT)) {
        res.decision = S3S_POLICY_IMPLICIT_DENY;
        res.reason = "the bucket's stored policy cannot be read";
    }
    if (res.decision == S3S_POLICY_ALLOW) {
        return s3s_ok();
    }
    S3S_LOGI("authz", "req=%s access denied: principal=%s action=%s resource=%s owner=%s %s "
                      "(%s statement %zu%s%s)",
             r->id, cred->principal, action, resource, in.bucket_owner ? in.bucket_owner : "-",
             res.reason, s_by_name(res.by), res.stmt.statement, res.stmt.sid ? " sid=" : "",
             res.stmt.sid ? res.stmt.sid : "");
    S3S_BAIL(S3S_ERR_ACCESS_DENIED);
}

/* Changing or reading a bucket's policy, and changing or removing its
 * default encryption or its CORS configuration, are its owner's
 * principals' alone, whatever a policy says: AWS answers other accounts'
 * bucket policy calls with 405 MethodNotAllowed (here AccessDenied, which
 * names nothing of the bucket), a default encryption chosen by another
 * account would decide who can read the owner's next uploads, and a CORS
 * configuration which web pages may use the owner's bucket from. Within the
 * owner's account, the policies decide as for any other action. */
static bool s_owner_only(const char *action)
{
    return strcmp(action, "s3:PutBucketPolicy") == 0 ||
           strcmp(action, "s3:DeleteBucketPolicy") == 0 ||
           strcmp(action, "s3:GetBucketPolicy") == 0 ||
           strcmp(action, "s3:PutEncryptionConfiguration") == 0 ||
           strcmp(action, "s3:PutBucketCORS") == 0;
}

/* The caller's credential (authenticated: configured). */
static const struct s3s_config_credential *s_credential(const struct s3s_req *r)
{
    return s3s_config_find_credential(r->cfg, s3s_cur_from_str(r->access_key));
}

/* The request's condition keys, into a fresh context. */
static s3s_result s_ctx_of(struct s_ctx *x, const struct s3s_req *r)
{
    S3S_GUARD(s_ctx_init(x));
    struct s3s_sigv4_request view = {r->method, r->path, r->query, r->headers, r->n_headers};
    s_ctx_fill(x, r, s3s_sigv2_present(&view));
    return s3s_ok();
}

s3s_result s3s_authz_check(struct s3s_req *r, bool *waiting)
{
    *waiting = false;
    struct s3s_worker *w = r->conn->w;
    const struct s3s_config *cfg = r->cfg;
    const struct s3s_config_credential *cred = s_credential(r);
    S3S_ENSURE(cred != NULL, S3S_ERR_ACCESS_DENIED);
    if (!s3s_principal_account(cred->principal, r->account)) {
        snprintf(r->account, sizeof(r->account), "%s", cfg->account_id);
    }
    if (s_grants_acl(r)) {
        S3S_LOGI("authz", "req=%s refused: an ACL that grants access (ACLs are disabled)", r->id);
        S3S_BAIL(S3S_ERR_ACL_NOT_SUPPORTED);
    }
    if (s_acl_body(r)) {
        /* Only the owner-full-control form passes (s_stage_body). */
        S3S_GUARD(s3s_req_keep_body(r, S_ACL_BODY_MAX, S3S_ERR_ACL_NOT_SUPPORTED));
    }
    struct s3s_s3_op_input oin;
    s3s_s3_op_input_of(r, &oin);
    struct s3s_s3_op_action act;
    s3s_s3_op_action(&oin, r->op, &act);

    struct s_ctx x;
    struct s3s_buf arn, src;
    s3s_result res = s_ctx_of(&x, r);
    if (s3s_is_ok(res)) {
        res = s3s_buf_init(&arn, 0, 4096 + 64);
    }
    if (s3s_is_ok(res)) {
        res = s3s_buf_init(&src, 0, 4096);
    }
    if (s3s_failed(res)) {
        s_ctx_clean_up(&x);
        return res;
    }

    struct s3s_cur bucket = s3s_buf_cur(&r->bucket);
    struct s3s_bucket_access ba = {0};
    if (bucket.len) {
        s3s_bucket_access(w, bucket, &ba);
    }
    if (r->op == S3S_OP_LIST_BUCKETS) {
        res = s_decide(r, cred, act.action, s3s_cur_from(NULL, 0), "arn:aws:s3:::*", &x);
        if (s3s_is_ok(res)) {
            /* The answer shows the caller's account's buckets only. */
            r->rewrite_kind = S3S_REWRITE_LIST_BUCKETS;
            res = s3s_buf_init(&r->listing, 0, 64u * 1024 * 1024);
        }
    } else if (r->op == S3S_OP_CREATE_BUCKET) {
        res = s_arn(&arn, bucket, s3s_cur_from(NULL, 0), false);
        bool persist = s3s_bucket_enc_persist(w);
        bool other = ba.recorded && strcmp(ba.owner, r->account) != 0;
        if (s3s_is_ok(res) && other && !persist) {
            res = s3s_err(S3S_ERR_BUCKET_ALREADY_EXISTS);
        }
        /* A new name is nobody's yet: the caller's account's business. */
        if (s3s_is_ok(res)) {
            res = s_decide(r, cred, act.action, s3s_cur_from(NULL, 0),
                           (const char *)arn.ptr, &x);
        }
        if (s3s_is_ok(res) && (!ba.recorded || other)) {
            if (persist) {
                /* Another account's name stays its own unless its bucket
                 * is gone (the claim checks the backend). */
                res = s3s_bucket_claim_start(r, r->account, ba.recorded ? ba.owner : NULL);
                *waiting = s3s_is_ok(res);
            } else if (strcmp(r->account, cfg->account_id) != 0) {
                /* Without a keystore no owner can be recorded: a bucket is
                 * account_id's, so only that account may create one. */
                res = s3s_err(S3S_ERR_BUCKET_POLICY_NO_KEYSTORE);
            }
        }
    } else if (bucket.len == 0) {
        res = s3s_err(S3S_ERR_ACCESS_DENIED); /* no service-level operation but ListBuckets */
    } else if (r->op == S3S_OP_DELETE_OBJECTS) {
        /* Decided per key once the body is in (s_stage_body); the body is
         * small (1000 keys at most). */
        res = s3s_req_keep_body(r, S3S_COMPLETE_BODY_MAX, S3S_ERR_MALFORMED_XML);
    } else {
        res = s_arn(&arn, bucket, s3s_buf_cur(&r->key), act.object);
        if (s3s_is_ok(res) && s_owner_only(act.action) && strcmp(ba.owner, r->account) != 0) {
            S3S_LOGI("authz", "req=%s access denied: principal=%s action=%s on bucket of %s: "
                              "only the owner's principals may",
                     r->id, cred->principal, act.action, ba.owner);
            res = s3s_err(S3S_ERR_ACCESS_DENIED);
        }
        if (s3s_is_ok(res)) {
            res = s_decide(r, cred, act.action, bucket, (const char *)arn.ptr, &x);
        }
        if (s3s_is_ok(res) && act.copy_source) {
            struct s3s_cur sb, sk;
            res = s_copy_source(r, &src, &sb, &sk);
            if (s3s_is_ok(res)) {
                res = s_arn(&arn, sb, sk, true);
            }
            if (s3s_is_ok(res)) {
                res = s_decide(r, cred, "s3:GetObject", sb, (const char *)arn.ptr, &x);
            }
            if (res.code == S3S_ERR_INVALID_ARG) {
                res = s3s_err(S3S_ERR_ACCESS_DENIED);
            }
        }
    }
    s3s_buf_clean_up(&src);
    s3s_buf_clean_up(&arn);
    s_ctx_clean_up(&x);
    return res;
}

static bool s_keep_bucket(void *ctx, struct s3s_cur bucket)
{
    struct s3s_req *r = ctx;
    struct s3s_bucket_access ba;
    s3s_bucket_access(r->conn->w, bucket, &ba);
    return strcmp(ba.owner, r->account) == 0;
}

s3s_result s3s_authz_list_buckets(struct s3s_req *r, struct s3s_cur xml, struct s3s_buf *out)
{
    return s3s_listing_buckets(xml, s_keep_bucket, r, out);
}

/* The stage (stage.h): every request is authorised before any other stage
 * acts on it; CreateBucket may wait for its claim on the thread pool. */
/* DeleteObjects: s3:DeleteObject (s3:DeleteObjectVersion for a version) on
 * every key of its body, as if each were a DeleteObject; one key refused refuses the request (the backend never
 * gets the whole body, so nothing is deleted). */
struct s_delete_ctx {
    struct s3s_req *r;
    const struct s3s_config_credential *cred;
    const struct s_ctx *x;
    struct s3s_buf arn;
};

static s3s_result s_delete_key(void *ctx, struct s3s_cur key, bool version)
{
    struct s_delete_ctx *d = ctx;
    s3s_buf_reset(&d->arn);
    S3S_GUARD(s_arn(&d->arn, s3s_buf_cur(&d->r->bucket), key, true));
    /* As DeleteObject with and without versionId (s3_op.c). */
    return s_decide(d->r, d->cred, version ? "s3:DeleteObjectVersion" : "s3:DeleteObject",
                    s3s_buf_cur(&d->r->bucket), (const char *)d->arn.ptr, d->x);
}

static s3s_result s_stage_body(struct s3s_req *r, bool *wait)
{
    (void)wait;
    if (!r->body_copy.max) {
        return s3s_ok();
    }
    if (s_acl_body(r)) {
        /* ACLs are disabled: an ACL document is accepted only when it
         * grants nothing but the owner's full control, as S3 accepts it
         * with BucketOwnerEnforced (the backend refuses an owner other
         * than the bucket's). */
        if (s3s_xml_acl_owner_only(s3s_buf_cur(&r->body_copy))) {
            return s3s_ok();
        }
        S3S_LOGI("authz", "req=%s refused: an ACL document that grants access (ACLs are "
                          "disabled)",
                 r->id);
        S3S_BAIL(S3S_ERR_ACL_NOT_SUPPORTED);
    }
    if (r->op != S3S_OP_DELETE_OBJECTS) {
        return s3s_ok();
    }
    const struct s3s_config_credential *cred = s_credential(r);
    S3S_ENSURE(cred != NULL, S3S_ERR_ACCESS_DENIED);
    struct s_ctx x;
    S3S_GUARD(s_ctx_of(&x, r));
    struct s_delete_ctx d = {r, cred, &x, {0}};
    s3s_result res = s3s_buf_init(&d.arn, 0, 4096 + 64);
    if (s3s_is_ok(res)) {
        res = s3s_xml_delete_keys(s3s_buf_cur(&r->body_copy), s_delete_key, &d);
    }
    s3s_buf_clean_up(&d.arn);
    s_ctx_clean_up(&x);
    return res;
}

const struct s3s_stage s3s_stage_authz = {
    .name = "authz",
    .on_head = s3s_authz_check,
    .on_body = s_stage_body,
};
