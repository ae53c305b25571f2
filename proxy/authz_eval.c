/*
 * authz_eval.c - the decision of authz.h, on its inputs alone.
 */
#include <string.h>

#include "proxy/authz.h"

static void s_set(struct s3s_authz_result *out, enum s3s_policy_decision d, enum s3s_authz_by by,
                  const struct s3s_policy_explain *stmt, const char *reason)
{
    out->decision = d;
    out->by = by;
    if (stmt) {
        out->stmt = *stmt;
    } else {
        memset(&out->stmt, 0, sizeof(out->stmt));
    }
    out->reason = reason;
}

void s3s_authz_evaluate(const struct s3s_authz_input *in, struct s3s_authz_result *out)
{
    memset(out, 0, sizeof(*out));
    if (!in || !in->principal || !in->account || !in->action || !in->resource) {
        s_set(out, S3S_POLICY_IMPLICIT_DENY, S3S_AUTHZ_BY_NONE, NULL, "no caller or action");
        return;
    }
    bool same = !in->bucket_owner || strcmp(in->bucket_owner, in->account) == 0;
    struct s3s_policy_request req = {
        .principal = in->principal,
        .action = in->action,
        .key_arn = in->resource,
        .key_account = in->bucket_owner ? in->bucket_owner : in->account,
        .keys = in->keys,
        .n_keys = in->n_keys,
    };
    struct s3s_policy_explain ie = {0}, be = {0};
    enum s3s_policy_decision id;
    if (in->identity) {
        id = s3s_policy_evaluate_explain(in->identity, &req, &ie);
    } else {
        /* Without an identity policy a credential is its account's root:
         * everything on its own account's buckets, and no identity Allow
         * to bring to another account's (which needs one). */
        id = same ? S3S_POLICY_ALLOW : S3S_POLICY_IMPLICIT_DENY;
    }
    enum s3s_policy_decision bd =
        in->bucket_policy ? s3s_policy_evaluate_explain(in->bucket_policy, &req, &be)
                          : S3S_POLICY_IMPLICIT_DENY;
    if (id == S3S_POLICY_EXPLICIT_DENY) {
        s_set(out, id, S3S_AUTHZ_BY_IDENTITY, &ie, "an explicit deny in the identity policy");
        return;
    }
    if (bd == S3S_POLICY_EXPLICIT_DENY) {
        s_set(out, bd, S3S_AUTHZ_BY_BUCKET, &be, "an explicit deny in the bucket policy");
        return;
    }
    enum s3s_authz_by id_by = in->identity ? S3S_AUTHZ_BY_IDENTITY : S3S_AUTHZ_BY_ROOT;
    if (same) {
        if (id == S3S_POLICY_ALLOW) {
            s_set(out, id, id_by, &ie,
                  in->identity ? "allowed by the identity policy"
                               : "the account's root acts on its own account's buckets");
        } else if (bd == S3S_POLICY_ALLOW) {
            s_set(out, bd, S3S_AUTHZ_BY_BUCKET, &be, "allowed by the bucket policy");
        } else {
            s_set(out, S3S_POLICY_IMPLICIT_DENY, S3S_AUTHZ_BY_NONE, NULL,
                  "no identity-based or resource-based policy allows the action");
        }
        return;
    }
    if (id == S3S_POLICY_ALLOW && bd == S3S_POLICY_ALLOW) {
        s_set(out, bd, S3S_AUTHZ_BY_BUCKET, &be,
              "another account's bucket: allowed by its bucket policy and the identity policy");
    } else if (id == S3S_POLICY_ALLOW) {
        s_set(out, S3S_POLICY_IMPLICIT_DENY, S3S_AUTHZ_BY_NONE, NULL,
              "another account's bucket: no statement of its bucket policy allows the action");
    } else if (bd == S3S_POLICY_ALLOW) {
        s_set(out, S3S_POLICY_IMPLICIT_DENY, S3S_AUTHZ_BY_NONE, NULL,
              in->identity ? "another account's bucket: the bucket policy allows it, but no "
                             "statement of the identity policy does"
                           : "another account's bucket: the bucket policy allows it, but a "
                             "credential without an identity policy acts on its own "
                             "account's buckets only");
    } else {
        s_set(out, S3S_POLICY_IMPLICIT_DENY, S3S_AUTHZ_BY_NONE, NULL,
              "another account's bucket: neither its bucket policy nor the identity policy "
              "allows the action");
    }
}
