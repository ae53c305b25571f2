/*
 * policy_fuzz.c - aims at the key policy parser (s3s_policy_parse: strict
 * JSON, statements, principals, patterns, condition operators and keys) and
 * at evaluation (s3s_policy_evaluate: wildcards, set operators, absent keys)
 * of whatever it accepts, against a fixed set of requests. Every decision
 * must be one of the three, and every denial must format.
 */
#include <stdlib.h>

#include "keystore/policy.h"

static const char *const s_principals[] = {
    "arn:aws:iam::111122223333:user/alice",
    "arn:aws:iam::111122223333:root",
    "arn:aws:sts::444455556666:assumed-role/app/s",
    "not-an-arn",
};
static const char *const s_actions[] = {"kms:Decrypt", "kms:GenerateDataKey", "kms:Encrypt"};

static void s_check(const struct s3s_policy *p, const struct s3s_policy_request *req)
{
    enum s3s_policy_decision d = s3s_policy_evaluate(p, req);
    if (d != S3S_POLICY_ALLOW && d != S3S_POLICY_IMPLICIT_DENY && d != S3S_POLICY_EXPLICIT_DENY) {
        abort();
    }
    if (d == S3S_POLICY_ALLOW) {
        return;
    }
    struct s3s_buf msg;
    if (s3s_failed(s3s_buf_init(&msg, 0, 4096)) ||
        s3s_failed(s3s_policy_denial_message(req, d, &msg))) {
        abort();
    }
    s3s_buf_clean_up(&msg);
}

/* The same text as an S3 bucket policy and as an identity policy,
 * evaluated against S3 requests with condition keys. */
static void s_s3(const uint8_t *data, size_t size)
{
    static const struct s3s_policy_kv keys[] = {
        {"s3:x-amz-server-side-encryption", "AES256"},
        {"aws:SourceIp", "10.1.2.3"},
        {"aws:CurrentTime", "2026-12-07T12:00:00Z"},
        {"s3:signatureAge", "1500"},
        {"s3:prefix", "home/alice/"},
    };
    static const char *const actions[] = {"s3:GetObject", "s3:PutObject", "s3:ListBucket"};
    for (int kind = S3S_POLICY_KIND_BUCKET; kind <= S3S_POLICY_KIND_IDENTITY; kind++) {
        struct s3s_policy *p = NULL;
        char why[256];
        if (s3s_failed(s3s_policy_parse_kind(s3s_cur_from(data, size),
                                             (enum s3s_policy_kind)kind, &p, why,
                                             sizeof(why)))) {
            if (p != NULL) {
                abort();
            }
            continue;
        }
        (void)s3s_policy_is_public(p);
        (void)s3s_policy_resources_within(p, "bucket");
        for (size_t i = 0; i < sizeof(s_principals) / sizeof(s_principals[0]); i++) {
            for (size_t j = 0; j < sizeof(actions) / sizeof(actions[0]); j++) {
                struct s3s_policy_request req = {
                    .principal = s_principals[i],
                    .action = actions[j],
                    .key_arn = j == 2 ? "arn:aws:s3:::bucket" : "arn:aws:s3:::bucket/key",
                    .key_account = "111122223333",
                    .keys = keys,
                    .n_keys = (i + j) % 2 ? sizeof(keys) / sizeof(keys[0]) : 0,
                };
                struct s3s_policy_explain ex;
                enum s3s_policy_decision d = s3s_policy_evaluate_explain(p, &req, &ex);
                if ((d == S3S_POLICY_ALLOW || d == S3S_POLICY_EXPLICIT_DENY) &&
                    ex.statement == 0) {
                    abort(); /* a decision names its statement */
                }
            }
        }
        s3s_policy_free(p);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    s_s3(data, size);
    struct s3s_policy *p = NULL;
    char why[256];
    if (s3s_failed(s3s_policy_parse(s3s_cur_from(data, size), &p, why, sizeof(why)))) {
        if (p != NULL) {
            abort();
        }
        return 0;
    }
    struct s3s_kms_context ctx;
    s3s_kms_context_init(&ctx);
    if (s3s_failed(s3s_kms_context_set(&ctx, "aws:s3:arn", "arn:aws:s3:::bucket/key")) ||
        s3s_failed(s3s_kms_context_set(&ctx, "Department", "IT"))) {
        abort();
    }
    for (size_t i = 0; i < sizeof(s_principals) / sizeof(s_principals[0]); i++) {
        for (size_t j = 0; j < sizeof(s_actions) / sizeof(s_actions[0]); j++) {
            struct s3s_policy_request req = {
                .principal = s_principals[i],
                .action = s_actions[j],
                .key_arn = "arn:aws:kms:us-east-1:111122223333:key/"
                           "1234abcd-12ab-34cd-56ef-1234567890ab",
                .key_account = "111122223333",
                .via_service = (i + j) % 2 ? "s3.us-east-1.amazonaws.com" : NULL,
                .context = j % 2 ? &ctx : NULL,
            };
            s_check(p, &req);
        }
    }
    s3s_kms_context_clean_up(&ctx);
    s3s_policy_free(p);
    return 0;
}
