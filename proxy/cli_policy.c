/*
 * cli_policy.c - `s3seal policy simulate`: the decision authz.h would make
 * for a principal, an action and a resource, given an identity policy and a
 * bucket policy, and what made it. Needs no config and no keystore: the
 * policies are files, as an operator drafts them.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keystore/policy.h"
#include "proxy/authz.h"
#include "proxy/cli.h"

#define S_MAX_KEYS 32

static void s_usage(FILE *f)
{
    fprintf(f,
            "usage: s3seal policy simulate --principal ARN --action s3:ACTION --resource ARN\n"
            "                              [--identity-policy FILE] [--bucket-policy FILE]\n"
            "                              [--bucket-owner ACCOUNT] [--context KEY=VALUE]...\n"
            "\n"
            "Explains whether s3seal would allow the request: which statement of which\n"
            "policy allowed or denied it, or that nothing allowed it (an implicit deny).\n"
            "Without --identity-policy the principal acts as its account's root; the\n"
            "bucket owner defaults to the principal's account; --context gives condition\n"
            "keys (s3:x-amz-server-side-encryption=AES256, aws:SourceIp=10.0.0.1, ...).\n"
            "Exit status: 0 allowed, 1 denied, 2 usage or unreadable policy.\n");
}

/* Reads and parses a policy file; prints why not and returns false. */
static bool s_load(const char *path, enum s3s_policy_kind kind, struct s3s_policy **out)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "s3seal: cannot read %s: %s\n", path, strerror(errno));
        return false;
    }
    char *text = malloc(S3S_POLICY_MAX_LEN + 1);
    size_t n = text ? fread(text, 1, S3S_POLICY_MAX_LEN + 1, f) : 0;
    fclose(f);
    if (!text) {
        fprintf(stderr, "s3seal: out of memory\n");
        return false;
    }
    char why[256] = "";
    s3s_result r = s3s_policy_parse_kind(s3s_cur_from(text, n), kind, out, why, sizeof(why));
    free(text);
    if (s3s_failed(r)) {
        fprintf(stderr, "s3seal: %s: %s\n", path, why[0] ? why : s3s_strerror(r.code));
        return false;
    }
    return true;
}

static const char *s_by(enum s3s_authz_by by)
{
    switch (by) {
    case S3S_AUTHZ_BY_ROOT:
        return "the account's root (no identity policy)";
    case S3S_AUTHZ_BY_IDENTITY:
        return "identity policy";
    case S3S_AUTHZ_BY_BUCKET:
        return "bucket policy";
    case S3S_AUTHZ_BY_NONE:
    default:
        return NULL;
    }
}

static int s_simulate(int argc, char **argv)
{
    const char *principal = NULL, *action = NULL, *resource = NULL, *identity_path = NULL,
               *bucket_path = NULL, *owner = NULL;
    struct s3s_policy_kv keys[S_MAX_KEYS];
    size_t n_keys = 0;
    for (int i = 2; i < argc; i += 2) { /* option and value */
        const char *o = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) {
            s_usage(stderr);
            return 2;
        }
        if (strcmp(o, "--principal") == 0) {
            principal = v;
        } else if (strcmp(o, "--action") == 0) {
            action = v;
        } else if (strcmp(o, "--resource") == 0) {
            resource = v;
        } else if (strcmp(o, "--identity-policy") == 0) {
            identity_path = v;
        } else if (strcmp(o, "--bucket-policy") == 0) {
            bucket_path = v;
        } else if (strcmp(o, "--bucket-owner") == 0) {
            owner = v;
        } else if (strcmp(o, "--context") == 0 && strchr(v, '=') && n_keys < S_MAX_KEYS) {
            char *eq = strchr(argv[i + 1], '=');
            *eq = '\0';
            keys[n_keys].name = argv[i + 1];
            keys[n_keys].value = eq + 1;
            n_keys++;
        } else {
            s_usage(stderr);
            return 2;
        }
    }
    char account[13];
    if (!principal || !action || !resource) {
        s_usage(stderr);
        return 2;
    }
    if (!s3s_principal_account(principal, account)) {
        fprintf(stderr, "s3seal: %s is no IAM principal ARN (arn:aws:iam::ACCOUNT:user/NAME)\n",
                principal);
        return 2;
    }
    if (strncmp(action, "s3:", 3) != 0 || !s3s_policy_s3_action_known(action) ||
        strpbrk(action, "*?")) {
        fprintf(stderr, "s3seal: %s is not an S3 action (s3:GetObject, s3:PutObject, ...)\n",
                action);
        return 2;
    }
    struct s3s_policy *identity = NULL, *bucket = NULL;
    if ((identity_path && !s_load(identity_path, S3S_POLICY_KIND_IDENTITY, &identity)) ||
        (bucket_path && !s_load(bucket_path, S3S_POLICY_KIND_BUCKET, &bucket))) {
        s3s_policy_free(identity);
        return 2;
    }
    struct s3s_authz_input in = {
        .principal = principal,
        .account = account,
        .action = action,
        .resource = resource,
        .bucket_owner = owner ? owner : account,
        .identity = identity,
        .bucket_policy = bucket,
        .keys = keys,
        .n_keys = n_keys,
    };
    struct s3s_authz_result res;
    s3s_authz_evaluate(&in, &res);
    const char *decision = res.decision == S3S_POLICY_ALLOW           ? "allowed"
                           : res.decision == S3S_POLICY_EXPLICIT_DENY ? "explicitly denied"
                                                                      : "implicitly denied";
    printf("%s: %s on %s is %s\n", principal, action, resource, decision);
    printf("bucket owner: %s (%s account)\n", in.bucket_owner,
           strcmp(in.bucket_owner, account) == 0 ? "the same" : "another");
    const char *by = s_by(res.by);
    if (by && res.stmt.statement) {
        printf("decided by: %s, statement %zu%s%s%s\n", by, res.stmt.statement,
               res.stmt.sid ? " (Sid \"" : "", res.stmt.sid ? res.stmt.sid : "",
               res.stmt.sid ? "\")" : "");
    } else if (by) {
        printf("decided by: %s\n", by);
    }
    printf("reason: %s\n", res.reason);
    s3s_policy_free(identity);
    s3s_policy_free(bucket);
    return res.decision == S3S_POLICY_ALLOW ? 0 : 1;
}

int s3s_cli_policy(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "simulate") == 0) {
        return s_simulate(argc, argv);
    }
    if (argc >= 2 && strcmp(argv[1], "help") == 0) {
        s_usage(stdout);
        return 0;
    }
    s_usage(stderr);
    return 2;
}

void s3s_cli_policy_usage(FILE *f) { s_usage(f); }
