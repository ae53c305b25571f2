/*
 * authz_test.c - who may do what (authz.h), table-driven: the evaluation
 * matrix (identity policy x bucket policy x same or other account x explicit
 * deny), the condition keys S3 policies use, and every operation's action.
 */
#include <string.h>

#include "proxy/authz.h"
#include "proxy/s3_op.h"
#include "testlib.h"

#define OWNER "111122223333"
#define OTHER "444455556666"
#define ALICE "arn:aws:iam::111122223333:user/alice"
#define BOB "arn:aws:iam::444455556666:user/bob"
#define OBJ "arn:aws:s3:::data/report.csv"

static struct s3s_policy *s_parse(enum s3s_policy_kind kind, const char *json)
{
    if (!json) {
        return NULL;
    }
    char text[4096];
    size_t n = strlen(json);
    T_CHECK(n < sizeof(text));
    for (size_t i = 0; i <= n; i++) {
        text[i] = json[i] == '\'' ? '"' : json[i];
    }
    struct s3s_policy *p = NULL;
    char why[256];
    s3s_result r = s3s_policy_parse_kind(s3s_cur_from_str(text), kind, &p, why, sizeof(why));
    if (s3s_failed(r)) {
        fprintf(stderr, "policy %s: %s\n", json, why);
    }
    T_CHECK(s3s_is_ok(r));
    return p;
}

/* Identity policies. */
#define ID_ALLOW "{'Statement':{'Effect':'Allow','Action':'s3:GetObject','Resource':'*'}}"
#define ID_OTHER "{'Statement':{'Effect':'Allow','Action':'s3:ListBucket','Resource':'*'}}"
#define ID_DENY                                                                           \
    "{'Statement':[{'Effect':'Allow','Action':'s3:*','Resource':'*'},"                    \
    "{'Sid':'NoGet','Effect':'Deny','Action':'s3:GetObject','Resource':'*'}]}"
/* Bucket policies. */
#define BP_ALICE                                                                          \
    "{'Statement':{'Effect':'Allow','Principal':{'AWS':'" ALICE "'},"                     \
    "'Action':'s3:GetObject','Resource':'arn:aws:s3:::data/*'}}"
#define BP_OTHER_ACCOUNT                                                                  \
    "{'Statement':{'Sid':'Partner','Effect':'Allow','Principal':{'AWS':'" OTHER "'},"      \
    "'Action':'s3:GetObject','Resource':'arn:aws:s3:::data/*'}}"
#define BP_DENY_ALL                                                                       \
    "{'Statement':{'Sid':'Closed','Effect':'Deny','Principal':'*',"                       \
    "'Action':'s3:*','Resource':'arn:aws:s3:::data/*'}}"

enum { A = S3S_POLICY_ALLOW, I = S3S_POLICY_IMPLICIT_DENY, E = S3S_POLICY_EXPLICIT_DENY };

static const struct {
    const char *principal, *identity, *bucket_policy;
    int want;
    enum s3s_authz_by by;
} s_matrix[] = {
    /* same account */
    {ALICE, NULL, NULL, A, S3S_AUTHZ_BY_ROOT},
    {ALICE, ID_ALLOW, NULL, A, S3S_AUTHZ_BY_IDENTITY},
    {ALICE, ID_OTHER, NULL, I, S3S_AUTHZ_BY_NONE},
    {ALICE, ID_OTHER, BP_ALICE, A, S3S_AUTHZ_BY_BUCKET},
    {ALICE, ID_ALLOW, BP_ALICE, A, S3S_AUTHZ_BY_IDENTITY},
    {ALICE, ID_DENY, BP_ALICE, E, S3S_AUTHZ_BY_IDENTITY},
    {ALICE, NULL, BP_DENY_ALL, E, S3S_AUTHZ_BY_BUCKET},
    {ALICE, ID_ALLOW, BP_DENY_ALL, E, S3S_AUTHZ_BY_BUCKET},
    {ALICE, ID_OTHER, BP_OTHER_ACCOUNT, I, S3S_AUTHZ_BY_NONE},
    /* another account: both must allow */
    {BOB, NULL, NULL, I, S3S_AUTHZ_BY_NONE},
    {BOB, NULL, BP_OTHER_ACCOUNT, I, S3S_AUTHZ_BY_NONE},
    {BOB, ID_ALLOW, NULL, I, S3S_AUTHZ_BY_NONE},
    {BOB, ID_OTHER, BP_OTHER_ACCOUNT, I, S3S_AUTHZ_BY_NONE},
    {BOB, ID_ALLOW, BP_OTHER_ACCOUNT, A, S3S_AUTHZ_BY_BUCKET},
    {BOB, ID_ALLOW, BP_ALICE, I, S3S_AUTHZ_BY_NONE},
    {BOB, ID_DENY, BP_OTHER_ACCOUNT, E, S3S_AUTHZ_BY_IDENTITY},
    {BOB, ID_ALLOW, BP_DENY_ALL, E, S3S_AUTHZ_BY_BUCKET},
};

static void test_matrix(void)
{
    for (size_t i = 0; i < sizeof(s_matrix) / sizeof(s_matrix[0]); i++) {
        struct s3s_policy *id = s_parse(S3S_POLICY_KIND_IDENTITY, s_matrix[i].identity);
        struct s3s_policy *bp = s_parse(S3S_POLICY_KIND_BUCKET, s_matrix[i].bucket_policy);
        char account[13];
        T_CHECK(s3s_principal_account(s_matrix[i].principal, account));
        struct s3s_authz_input in = {
            .principal = s_matrix[i].principal,
            .account = account,
            .action = "s3:GetObject",
            .resource = OBJ,
            .bucket_owner = OWNER,
            .identity = id,
            .bucket_policy = bp,
        };
        struct s3s_authz_result res;
        s3s_authz_evaluate(&in, &res);
        if ((int)res.decision != s_matrix[i].want || res.by != s_matrix[i].by) {
            fprintf(stderr, "matrix row %zu: decision %d by %d (%s)\n", i, res.decision, res.by,
                    res.reason);
        }
        T_CHECK((int)res.decision == s_matrix[i].want);
        T_CHECK(res.by == s_matrix[i].by);
        T_CHECK(res.reason != NULL);
        s3s_policy_free(id);
        s3s_policy_free(bp);
    }
}

static void test_explain(void)
{
    struct s3s_policy *id = s_parse(S3S_POLICY_KIND_IDENTITY, ID_DENY);
    struct s3s_authz_input in = {ALICE, OWNER, "s3:GetObject", OBJ, OWNER, id, NULL, NULL, 0};
    struct s3s_authz_result res;
    s3s_authz_evaluate(&in, &res);
    T_CHECK(res.decision == S3S_POLICY_EXPLICIT_DENY && res.stmt.statement == 2);
    T_CHECK(res.stmt.sid && strcmp(res.stmt.sid, "NoGet") == 0);
    in.action = "s3:PutObject";
    s3s_authz_evaluate(&in, &res);
    T_CHECK(res.decision == S3S_POLICY_ALLOW && res.stmt.statement == 1 && !res.stmt.sid);
    s3s_policy_free(id);
    /* No caller, no action: denied. */
    struct s3s_authz_input none = {0};
    s3s_authz_evaluate(&none, &res);
    T_CHECK(res.decision == S3S_POLICY_IMPLICIT_DENY);
}

/* The classic bucket policy: deny PutObject without SSE. */
#define BP_SSE                                                                            \
    "{'Statement':[{'Effect':'Allow','Principal':'*','Action':'s3:*',"                    \
    "'Resource':['arn:aws:s3:::data','arn:aws:s3:::data/*']},"                            \
    "{'Sid':'DenyUnencrypted','Effect':'Deny','Principal':'*','Action':'s3:PutObject',"   \
    "'Resource':'arn:aws:s3:::data/*','Condition':{'Null':"                               \
    "{'s3:x-amz-server-side-encryption':'true'}}},"                                       \
    "{'Sid':'DenyWrongSse','Effect':'Deny','Principal':'*','Action':'s3:PutObject',"      \
    "'Resource':'arn:aws:s3:::data/*','Condition':{'StringNotEqualsIfExists':"            \
    "{'s3:x-amz-server-side-encryption':['AES256','aws:kms']}}}]}"

struct s_case {
    const char *policy; /* a bucket policy */
    const char *action;
    const char *keys[8]; /* name, value pairs */
    int want;
};

static const struct s_case s_cases[] = {
    {BP_SSE, "s3:PutObject", {NULL}, E},
    {BP_SSE, "s3:PutObject", {"s3:x-amz-server-side-encryption", "AES256"}, A},
    {BP_SSE, "s3:PutObject", {"s3:x-amz-server-side-encryption", "aws:kms"}, A},
    {BP_SSE, "s3:PutObject", {"s3:x-amz-server-side-encryption", "aws:kms:dsse"}, E},
    {BP_SSE, "s3:GetObject", {NULL}, A},
    /* aws:SecureTransport */
    {"{'Statement':[{'Effect':'Allow','Principal':'*','Action':'s3:*','Resource':"
     "'arn:aws:s3:::data/*'},{'Effect':'Deny','Principal':'*','Action':'s3:*','Resource':"
     "'arn:aws:s3:::data/*','Condition':{'Bool':{'aws:SecureTransport':'false'}}}]}",
     "s3:GetObject", {"aws:SecureTransport", "false"}, E},
    /* s3:prefix and s3:delimiter on ListBucket */
    {"{'Statement':{'Effect':'Allow','Principal':'*','Action':'s3:ListBucket','Resource':"
     "'arn:aws:s3:::data','Condition':{'StringLike':{'s3:prefix':'home/alice/*'},"
     "'StringEquals':{'s3:delimiter':'/'}}}}",
     "s3:ListBucket", {"s3:prefix", "home/alice/x", "s3:delimiter", "/"}, A},
    {"{'Statement':{'Effect':'Allow','Principal':'*','Action':'s3:ListBucket','Resource':"
     "'arn:aws:s3:::data','Condition':{'StringLike':{'s3:prefix':'home/alice/*'}}}}",
     "s3:ListBucket", {"s3:prefix", "home/bob/"}, I},
    {"{'Statement':{'Effect':'Allow','Principal':'*','Action':'s3:ListBucket','Resource':"
     "'arn:aws:s3:::data','Condition':{'StringLike':{'s3:prefix':'home/alice/*'}}}}",
     "s3:ListBucket", {NULL}, I},
    /* aws:SourceIp */
    {"{'Statement':{'Effect':'Allow','Principal':'*','Action':'s3:GetObject','Resource':"
     "'arn:aws:s3:::data/*','Condition':{'IpAddress':{'aws:SourceIp':['10.1.0.0/16',"
     "'2001:db8::/32']}}}}",
     "s3:GetObject", {"aws:SourceIp", "10.1.200.3"}, A},
    {"{'Statement':{'Effect':'Allow','Principal':'*','Action':'s3:GetObject','Resource':"
     "'arn:aws:s3:::data/*','Condition':{'IpAddress':{'aws:SourceIp':'10.1.0.0/16'}}}}",
     "s3:GetObject", {"aws:SourceIp", "10.2.0.1"}, I},
    {"{'Statement':{'Effect':'Allow','Principal':'*','Action':'s3:GetObject','Resource':"
     "'arn:aws:s3:::data/*','Condition':{'IpAddress':{'aws:SourceIp':'2001:db8::/32'}}}}",
     "s3:GetObject", {"aws:SourceIp", "2001:db8:1::5"}, A},
    {"{'Statement':{'Effect':'Allow','Principal':'*','Action':'s3:GetObject','Resource':"
     "'arn:aws:s3:::data/*','Condition':{'NotIpAddress':{'aws:SourceIp':'10.0.0.0/8'}}}}",
     "s3:GetObject", {"aws:SourceIp", "127.0.0.1"}, A},
    /* aws:PrincipalArn, aws:PrincipalAccount (from the caller) */
    {"{'Statement':{'Effect':'Allow','Principal':'*','Action':'s3:GetObject','Resource':"
     "'arn:aws:s3:::data/*','Condition':{'ArnLike':{'aws:PrincipalArn':"
     "'arn:aws:iam::111122223333:user/*'}}}}",
     "s3:GetObject", {NULL}, A},
    {"{'Statement':{'Effect':'Allow','Principal':'*','Action':'s3:GetObject','Resource':"
     "'arn:aws:s3:::data/*','Condition':{'StringEquals':{'aws:PrincipalAccount':'"
     OTHER "'}}}}",
     "s3:GetObject", {NULL}, I},
    /* s3:signatureversion, s3:authType, s3:signatureAge */
    {"{'Statement':{'Effect':'Allow','Principal':'*','Action':'s3:GetObject','Resource':"
     "'arn:aws:s3:::data/*','Condition':{'StringEquals':{'s3:signatureversion':"
     "'AWS4-HMAC-SHA256','s3:authType':'REST-QUERY-STRING'},'NumericLessThan':"
     "{'s3:signatureAge':'600000'}}}}",
     "s3:GetObject",
     {"s3:signatureversion", "AWS4-HMAC-SHA256", "s3:authType", "REST-QUERY-STRING",
      "s3:signatureAge", "1000"},
     A},
    {"{'Statement':{'Effect':'Allow','Principal':'*','Action':'s3:GetObject','Resource':"
     "'arn:aws:s3:::data/*','Condition':{'NumericLessThan':{'s3:signatureAge':'600000'}}}}",
     "s3:GetObject", {"s3:signatureAge", "600001"}, I},
    /* aws:CurrentTime */
    {"{'Statement':{'Effect':'Allow','Principal':'*','Action':'s3:GetObject','Resource':"
     "'arn:aws:s3:::data/*','Condition':{'DateLessThan':{'aws:CurrentTime':"
     "'2030-01-01T00:00:00Z'},'DateGreaterThan':{'aws:CurrentTime':'2020-01-01'}}}}",
     "s3:GetObject", {"aws:CurrentTime", "2026-12-07T12:00:00Z"}, A},
    {"{'Statement':{'Effect':'Allow','Principal':'*','Action':'s3:GetObject','Resource':"
     "'arn:aws:s3:::data/*','Condition':{'DateLessThan':{'aws:CurrentTime':"
     "'2026-01-01T00:00:00Z'}}}}",
     "s3:GetObject", {"aws:CurrentTime", "2026-12-07T12:00:00Z"}, I},
    /* the KMS key id of an SSE-KMS write */
    {"{'Statement':[{'Effect':'Allow','Principal':'*','Action':'s3:PutObject','Resource':"
     "'arn:aws:s3:::data/*'},{'Effect':'Deny','Principal':'*','Action':'s3:PutObject',"
     "'Resource':'arn:aws:s3:::data/*','Condition':{'StringNotEqualsIfExists':"
     "{'s3:x-amz-server-side-encryption-aws-kms-key-id':'arn:aws:kms:us-east-1:"
     OWNER ":key/k1'}}}]}",
     "s3:PutObject", {"s3:x-amz-server-side-encryption-aws-kms-key-id", "alias/attacker"}, E},
};

static void test_condition_keys(void)
{
    for (size_t i = 0; i < sizeof(s_cases) / sizeof(s_cases[0]); i++) {
        struct s3s_policy *bp = s_parse(S3S_POLICY_KIND_BUCKET, s_cases[i].policy);
        struct s3s_policy_kv kv[4];
        size_t n = 0;
        for (size_t k = 0; k < 8 && s_cases[i].keys[k]; k += 2, n++) {
            kv[n].name = s_cases[i].keys[k];
            kv[n].value = s_cases[i].keys[k + 1];
        }
        /* Alice with an identity policy that allows nothing: only the
         * bucket policy can decide. */
        struct s3s_policy *id = s_parse(
            S3S_POLICY_KIND_IDENTITY,
            "{'Statement':{'Effect':'Allow','Action':'s3:RestoreObject','Resource':'*'}}");
        struct s3s_authz_input in = {ALICE, OWNER, s_cases[i].action,
                                     strcmp(s_cases[i].action, "s3:ListBucket") == 0
                                         ? "arn:aws:s3:::data"
                                         : OBJ,
                                     OWNER, id, bp, kv, n};
        struct s3s_authz_result res;
        s3s_authz_evaluate(&in, &res);
        if ((int)res.decision != s_cases[i].want) {
            fprintf(stderr, "condition case %zu: decision %d (%s)\n", i, res.decision,
                    res.reason);
        }
        T_CHECK((int)res.decision == s_cases[i].want);
        s3s_policy_free(bp);
        s3s_policy_free(id);
    }
}

/* Bucket policies AWS refuses. */
static void test_malformed(void)
{
    static const char *const bad[] = {
        /* an unknown action, a non-S3 action, no Principal, a bad principal */
        "{'Statement':{'Effect':'Allow','Principal':'*','Action':'s3:GetObjekt','Resource':"
        "'arn:aws:s3:::data/*'}}",
        "{'Statement':{'Effect':'Allow','Principal':'*','Action':'kms:Decrypt','Resource':"
        "'arn:aws:s3:::data/*'}}",
        "{'Statement':{'Effect':'Allow','Action':'s3:GetObject','Resource':'arn:aws:s3:::data/*'}}",
        "{'Statement':{'Effect':'Allow','Principal':{'AWS':'bob'},'Action':'s3:GetObject',"
        "'Resource':'arn:aws:s3:::data/*'}}",
        "{'Statement':{'Effect':'Allow','Principal':'*','Action':'s3:GetObject','Resource':"
        "'arn:aws:s3:::data/*','Condition':{'NumericLessThan':{'s3:signatureAge':'soon'}}}}",
        "not json",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char text[1024];
        size_t n = strlen(bad[i]);
        for (size_t j = 0; j <= n; j++) {
            text[j] = bad[i][j] == '\'' ? '"' : bad[i][j];
        }
        struct s3s_policy *p = NULL;
        char why[256];
        T_CHECK(s3s_policy_parse_kind(s3s_cur_from_str(text), S3S_POLICY_KIND_BUCKET, &p, why,
                                      sizeof(why))
                    .code == S3S_ERR_KMS_MALFORMED_POLICY);
        T_CHECK(p == NULL && why[0]);
    }
    /* An identity policy names no Principal; wildcards that match an S3 action pass. */
    struct s3s_policy *p = NULL;
    char why[256];
    T_CHECK(s3s_policy_parse_kind(
                S3S_CUR_LIT("{\"Statement\":{\"Effect\":\"Allow\",\"Principal\":\"*\","
                            "\"Action\":\"s3:*\",\"Resource\":\"*\"}}"),
                S3S_POLICY_KIND_IDENTITY, &p, why, sizeof(why))
                .code == S3S_ERR_KMS_MALFORMED_POLICY);
    T_CHECK(s3s_policy_s3_action_known("s3:Get*") && s3s_policy_s3_action_known("S3:PUTOBJECT"));
    T_CHECK(!s3s_policy_s3_action_known("s3:Fly*"));
    /* Resources outside the bucket. */
    struct s3s_policy *bp = s_parse(S3S_POLICY_KIND_BUCKET, BP_SSE);
    T_CHECK(s3s_policy_resources_within(bp, "data"));
    T_CHECK(!s3s_policy_resources_within(bp, "dat"));
    T_CHECK(!s3s_policy_resources_within(bp, "data2"));
    T_CHECK(s3s_policy_is_public(bp));
    s3s_policy_free(bp);
}

/* Every operation's action, as AWS names it. */
static void test_actions(void)
{
    static const struct {
        const char *method, *query;
        bool bucket, key, copy;
        const char *action;
        bool object, copy_source;
    } rows[] = {
        {"GET", "", false, false, false, "s3:ListAllMyBuckets", false, false},
        {"PUT", "", true, false, false, "s3:CreateBucket", false, false},
        {"DELETE", "", true, false, false, "s3:DeleteBucket", false, false},
        {"HEAD", "", true, false, false, "s3:ListBucket", false, false},
        {"GET", "list-type=2&prefix=a", true, false, false, "s3:ListBucket", false, false},
        {"GET", "versions", true, false, false, "s3:ListBucketVersions", false, false},
        {"GET", "uploads", true, false, false, "s3:ListBucketMultipartUploads", false, false},
        {"PUT", "encryption", true, false, false, "s3:PutEncryptionConfiguration", false, false},
        {"DELETE", "encryption", true, false, false, "s3:PutEncryptionConfiguration", false,
         false},
        {"GET", "encryption", true, false, false, "s3:GetEncryptionConfiguration", false, false},
        {"PUT", "policy", true, false, false, "s3:PutBucketPolicy", false, false},
        {"DELETE", "policy", true, false, false, "s3:DeleteBucketPolicy", false, false},
        {"GET", "policyStatus", true, false, false, "s3:GetBucketPolicyStatus", false, false},
        {"DELETE", "cors", true, false, false, "s3:PutBucketCORS", false, false},
        {"PUT", "versioning", true, false, false, "s3:PutBucketVersioning", false, false},
        {"GET", "location", true, false, false, "s3:GetBucketLocation", false, false},
        {"PUT", "acl", true, false, false, "s3:PutBucketAcl", false, false},
        {"POST", "delete", true, false, false, "s3:DeleteObject", true, false},
        {"GET", "", true, true, false, "s3:GetObject", true, false},
        {"HEAD", "versionId=3", true, true, false, "s3:GetObjectVersion", true, false},
        {"PUT", "", true, true, false, "s3:PutObject", true, false},
        {"PUT", "", true, true, true, "s3:PutObject", true, true},
        {"PUT", "partNumber=1&uploadId=u", true, true, true, "s3:PutObject", true, true},
        {"POST", "uploads", true, true, false, "s3:PutObject", true, false},
        {"DELETE", "uploadId=u", true, true, false, "s3:AbortMultipartUpload", true, false},
        {"GET", "uploadId=u", true, true, false, "s3:ListMultipartUploadParts", true, false},
        {"DELETE", "", true, true, false, "s3:DeleteObject", true, false},
        {"PUT", "tagging", true, true, false, "s3:PutObjectTagging", true, false},
        {"DELETE", "tagging", true, true, false, "s3:DeleteObjectTagging", true, false},
        {"GET", "acl", true, true, false, "s3:GetObjectAcl", true, false},
        {"POST", "restore", true, true, false, "s3:RestoreObject", true, false},
        {"PATCH", "", true, true, false, "s3:*", true, false},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        struct s3s_s3_op_input in = {s3s_cur_from_str(rows[i].method),
                                     s3s_cur_from_str(rows[i].query), rows[i].bucket,
                                     rows[i].key, rows[i].copy};
        enum s3s_s3_op op;
        const char *detail;
        T_CHECK(s3s_is_ok(s3s_s3_op_classify(&in, &op, &detail)));
        struct s3s_s3_op_action a;
        s3s_s3_op_action(&in, op, &a);
        if (strcmp(a.action, rows[i].action) != 0) {
            fprintf(stderr, "action row %zu: %s\n", i, a.action);
        }
        T_CHECK(strcmp(a.action, rows[i].action) == 0);
        T_CHECK(a.object == rows[i].object && a.copy_source == rows[i].copy_source);
        /* Every action the table names is one a policy can name. */
        T_CHECK(strcmp(a.action, "s3:*") == 0 || s3s_policy_s3_action_known(a.action));
    }
}

int main(void)
{
    test_matrix();
    test_explain();
    test_condition_keys();
    test_malformed();
    test_actions();
    return t_finish("proxy.authz");
}
