/*
 * policy_test.c - key policies: the default policy; principals (exact ARN,
 * :root, account id, "*", lists, NotPrincipal); actions and resources with
 * wildcards; explicit Deny over Allow; conditions on the encryption
 * context, kms:ViaService, kms:CallerAccount and the principal, with
 * IfExists, set operators, Null and Bool, and AWS's rule for absent keys; a
 * cross-account key; malformed policies and their reasons; allocation
 * failures; principal accounts and AWS's denial messages.
 */
#include "keystore/policy.h"
#include "testlib.h"

#define ACCT_A "111122223333"
#define ACCT_B "444455556666"
#define KEY_ARN "arn:aws:kms:us-east-1:" ACCT_A ":key/1234abcd-12ab-34cd-56ef-1234567890ab"
#define OTHER_KEY_ARN "arn:aws:kms:us-east-1:" ACCT_A ":key/ffffffff-12ab-34cd-56ef-1234567890ab"
#define ALICE "arn:aws:iam::" ACCT_A ":user/alice"
#define BOB "arn:aws:iam::" ACCT_A ":user/bob"
#define ROOT_A "arn:aws:iam::" ACCT_A ":root"
#define ROLE_A "arn:aws:sts::" ACCT_A ":assumed-role/app/session"
#define CAROL "arn:aws:iam::" ACCT_B ":user/carol"
#define DAVE "arn:aws:iam::" ACCT_B ":user/dave"
#define VIA_S3 "s3.us-east-1.amazonaws.com"

#define ALLOW S3S_POLICY_ALLOW
#define IMPLICIT S3S_POLICY_IMPLICIT_DENY
#define EXPLICIT S3S_POLICY_EXPLICIT_DENY

/* Policies below are written with ' for " to stay readable. */
static char s_text[8192];

static const char *s_json(const char *quoted)
{
    size_t n = strlen(quoted);
    T_CHECK(n < sizeof(s_text));
    for (size_t i = 0; i <= n && i < sizeof(s_text); i++) {
        s_text[i] = quoted[i] == '\'' ? '"' : quoted[i];
    }
    return s_text;
}

static struct s3s_policy *s_parse(const char *quoted)
{
    struct s3s_policy *p = NULL;
    char why[256] = "";
    s3s_result r = s3s_policy_parse(s3s_cur_from_str(s_json(quoted)), &p, why, sizeof(why));
    if (s3s_failed(r)) {
        fprintf(stderr, "policy refused (%s): %s\n", why, quoted);
    }
    T_CHECK(s3s_is_ok(r) && p != NULL);
    return p;
}

/* A policy of one statement. */
static struct s3s_policy *s_one(const char *quoted_statement)
{
    char doc[4096];
    snprintf(doc, sizeof(doc), "{'Version':'2012-10-17','Statement':[%s]}", quoted_statement);
    return s_parse(doc);
}

static enum s3s_policy_decision s_eval_full(const struct s3s_policy *p, const char *principal,
                                            const char *action, const char *key_arn,
                                            const struct s3s_kms_context *ctx, const char *via)
{
    struct s3s_policy_request req = {
        .principal = principal,
        .action = action,
        .key_arn = key_arn,
        .key_account = ACCT_A,
        .via_service = via,
        .context = ctx,
    };
    return s3s_policy_evaluate(p, &req);
}

static enum s3s_policy_decision s_eval(const struct s3s_policy *p, const char *principal,
                                       const char *action)
{
    return s_eval_full(p, principal, action, KEY_ARN, NULL, NULL);
}

static enum s3s_policy_decision s_eval_ctx(const struct s3s_policy *p, const char *ctx_json)
{
    struct s3s_kms_context ctx;
    s3s_kms_context_init(&ctx);
    T_OK(s3s_kms_context_parse_json(s3s_cur_from_str(s_json(ctx_json)), &ctx));
    enum s3s_policy_decision d = s_eval_full(p, ALICE, "kms:Decrypt", KEY_ARN, &ctx, NULL);
    s3s_kms_context_clean_up(&ctx);
    return d;
}

static enum s3s_policy_decision s_eval_via(const struct s3s_policy *p, const char *via)
{
    return s_eval_full(p, ALICE, "kms:Decrypt", KEY_ARN, NULL, via);
}

static void test_default_policy(void)
{
    T_CHECK(s_eval(NULL, ALICE, "kms:Decrypt") == ALLOW);
    T_CHECK(s_eval(NULL, ROOT_A, "kms:GenerateDataKey") == ALLOW);
    T_CHECK(s_eval(NULL, ROLE_A, "kms:Encrypt") == ALLOW);
    T_CHECK(s_eval(NULL, CAROL, "kms:Decrypt") == IMPLICIT);
    T_CHECK(s_eval(NULL, "bob", "kms:Decrypt") == IMPLICIT);
    T_CHECK(s_eval(NULL, "arn:aws:iam::11112222333:user/short", "kms:Decrypt") == IMPLICIT);
    /* A request missing what it is about is denied. */
    T_CHECK(s3s_policy_evaluate(NULL, NULL) == IMPLICIT);
    struct s3s_policy_request req = {.action = "kms:Decrypt", .key_arn = KEY_ARN,
                                     .key_account = ACCT_A};
    T_CHECK(s3s_policy_evaluate(NULL, &req) == IMPLICIT);
    req.principal = ALICE;
    req.key_account = NULL;
    T_CHECK(s3s_policy_evaluate(NULL, &req) == IMPLICIT);
}

static void test_principals(void)
{
    struct s3s_policy *p = s_one("{'Effect':'Allow','Principal':{'AWS':'" ALICE "'},"
                                 "'Action':'kms:Decrypt','Resource':'*'}");
    T_CHECK(s_eval(p, ALICE, "kms:Decrypt") == ALLOW);
    T_CHECK(s_eval(p, BOB, "kms:Decrypt") == IMPLICIT);
    T_CHECK(s_eval(p, ROOT_A, "kms:Decrypt") == IMPLICIT);
    T_CHECK(s_eval(p, "arn:aws:iam::" ACCT_A ":user/ALICE", "kms:Decrypt") == IMPLICIT);
    s3s_policy_free(p);

    /* :root and a bare account id stand for the whole account. */
    static const char *const whole[] = {
        "{'Effect':'Allow','Principal':{'AWS':'" ROOT_A "'},'Action':'kms:*','Resource':'*'}",
        "{'Effect':'Allow','Principal':{'AWS':'" ACCT_A "'},'Action':'kms:*','Resource':'*'}",
        "{'Effect':'Allow','Principal':{'AWS':['" CAROL "','" ACCT_A "']},'Action':'kms:*',"
        "'Resource':'*'}",
    };
    for (size_t i = 0; i < sizeof(whole) / sizeof(whole[0]); i++) {
        p = s_one(whole[i]);
        T_CHECK(s_eval(p, ALICE, "kms:Decrypt") == ALLOW);
        T_CHECK(s_eval(p, ROOT_A, "kms:Decrypt") == ALLOW);
        T_CHECK(s_eval(p, ROLE_A, "kms:Decrypt") == ALLOW);
        T_CHECK(s_eval(p, DAVE, "kms:Decrypt") == IMPLICIT);
        s3s_policy_free(p);
    }

    /* "*" in its three spellings: everyone. */
    static const char *const everyone[] = {
        "{'Effect':'Allow','Principal':'*','Action':'kms:Decrypt','Resource':'*'}",
        "{'Effect':'Allow','Principal':{'AWS':'*'},'Action':'kms:Decrypt','Resource':'*'}",
        "{'Effect':'Allow','Principal':{'AWS':['" BOB "','*']},'Action':'kms:Decrypt',"
        "'Resource':'*'}",
    };
    for (size_t i = 0; i < sizeof(everyone) / sizeof(everyone[0]); i++) {
        p = s_one(everyone[i]);
        T_CHECK(s_eval(p, ALICE, "kms:Decrypt") == ALLOW);
        T_CHECK(s_eval(p, DAVE, "kms:Decrypt") == ALLOW);
        s3s_policy_free(p);
    }

    /* A list of exact ARNs; a Service principal never matches a caller. */
    p = s_one("{'Effect':'Allow','Principal':{'AWS':['" ALICE "','" CAROL "'],"
              "'Service':'s3.amazonaws.com'},'Action':'kms:Decrypt','Resource':'*'}");
    T_CHECK(s_eval(p, ALICE, "kms:Decrypt") == ALLOW);
    T_CHECK(s_eval(p, CAROL, "kms:Decrypt") == ALLOW);
    T_CHECK(s_eval(p, BOB, "kms:Decrypt") == IMPLICIT);
    s3s_policy_free(p);
    p = s_one("{'Effect':'Allow','Principal':{'Service':['s3.amazonaws.com']},"
              "'Action':'kms:Decrypt','Resource':'*'}");
    T_CHECK(s_eval(p, ALICE, "kms:Decrypt") == IMPLICIT);
    s3s_policy_free(p);
}

static void test_not_principal(void)
{
    /* Deny everyone but alice, on top of allowing the account. */
    struct s3s_policy *p = s_parse(
        "{'Statement':[{'Effect':'Allow','Principal':{'AWS':'" ROOT_A "'},'Action':'kms:*',"
        "'Resource':'*'},{'Effect':'Deny','NotPrincipal':{'AWS':'" ALICE "'},"
        "'Action':'kms:Decrypt','Resource':'*'}]}");
    T_CHECK(s_eval(p, ALICE, "kms:Decrypt") == ALLOW);
    T_CHECK(s_eval(p, BOB, "kms:Decrypt") == EXPLICIT);
    T_CHECK(s_eval(p, BOB, "kms:Encrypt") == ALLOW);
    T_CHECK(s_eval(p, CAROL, "kms:Decrypt") == EXPLICIT);
    s3s_policy_free(p);

    /* NotPrincipal "*" names no one. */
    p = s_one("{'Effect':'Allow','NotPrincipal':'*','Action':'kms:*','Resource':'*'}");
    T_CHECK(s_eval(p, ALICE, "kms:Decrypt") == IMPLICIT);
    s3s_policy_free(p);
    p = s_one("{'Effect':'Allow','NotPrincipal':{'AWS':'" ACCT_B "'},'Action':'kms:*',"
              "'Resource':'*'}");
    T_CHECK(s_eval(p, ALICE, "kms:Decrypt") == ALLOW);
    T_CHECK(s_eval(p, CAROL, "kms:Decrypt") == IMPLICIT);
    s3s_policy_free(p);
}

static void test_actions(void)
{
    struct s3s_policy *p = s_one("{'Effect':'Allow','Principal':'*','Action':"
                                 "['kms:GenerateDataKey*','kms:?ecrypt'],'Resource':'*'}");
    T_CHECK(s_eval(p, ALICE, "kms:GenerateDataKey") == ALLOW);
    T_CHECK(s_eval(p, ALICE, "kms:GenerateDataKeyWithoutPlaintext") == ALLOW);
    T_CHECK(s_eval(p, ALICE, "kms:Decrypt") == ALLOW);
    T_CHECK(s_eval(p, ALICE, "kms:Encrypt") == IMPLICIT); /* '?' is one character */
    T_CHECK(s_eval(p, ALICE, "kms:ecrypt") == IMPLICIT);
    T_CHECK(s_eval(p, ALICE, "KMS:decrypt") == ALLOW); /* actions ignore case */
    T_CHECK(s_eval(p, ALICE, "kms:ReEncryptFrom") == IMPLICIT);
    T_CHECK(s_eval(p, ALICE, "kms:GenerateData") == IMPLICIT);
    T_CHECK(s_eval(p, ALICE, "kms:DescribeKey") == IMPLICIT);
    s3s_policy_free(p);

    p = s_one("{'Effect':'Allow','Principal':'*','Action':'kms:*','Resource':'*'}");
    T_CHECK(s_eval(p, ALICE, "kms:ScheduleKeyDeletion") == ALLOW);
    T_CHECK(s_eval(p, ALICE, "s3:GetObject") == IMPLICIT);
    s3s_policy_free(p);
    p = s_one("{'Effect':'Allow','Principal':'*','Action':'*','Resource':'*'}");
    T_CHECK(s_eval(p, ALICE, "s3:GetObject") == ALLOW);
    s3s_policy_free(p);

    p = s_one("{'Effect':'Allow','Principal':'*','NotAction':['kms:Decrypt','kms:Re*'],"
              "'Resource':'*'}");
    T_CHECK(s_eval(p, ALICE, "kms:Decrypt") == IMPLICIT);
    T_CHECK(s_eval(p, ALICE, "kms:ReEncryptTo") == IMPLICIT);
    T_CHECK(s_eval(p, ALICE, "kms:Encrypt") == ALLOW);
    s3s_policy_free(p);
}

static void test_resources(void)
{
    struct s3s_policy *p = s_one("{'Effect':'Allow','Principal':'*','Action':'kms:*',"
                                 "'Resource':'" KEY_ARN "'}");
    T_CHECK(s_eval_full(p, ALICE, "kms:Decrypt", KEY_ARN, NULL, NULL) == ALLOW);
    T_CHECK(s_eval_full(p, ALICE, "kms:Decrypt", OTHER_KEY_ARN, NULL, NULL) == IMPLICIT);
    s3s_policy_free(p);

    p = s_one("{'Effect':'Allow','Principal':'*','Action':'kms:*',"
              "'Resource':['arn:aws:kms:*:" ACCT_A ":key/1234*',"
              "'arn:aws:kms:us-?ast-1:*:alias/*']}");
    T_CHECK(s_eval_full(p, ALICE, "kms:Decrypt", KEY_ARN, NULL, NULL) == ALLOW);
    T_CHECK(s_eval_full(p, ALICE, "kms:Decrypt", OTHER_KEY_ARN, NULL, NULL) == IMPLICIT);
    T_CHECK(s_eval_full(p, ALICE, "kms:Decrypt", "arn:aws:kms:us-east-1:" ACCT_B ":key/1234",
                        NULL, NULL) == IMPLICIT);
    T_CHECK(s_eval_full(p, ALICE, "kms:Decrypt", "arn:aws:kms:us-east-1:" ACCT_B ":alias/x",
                        NULL, NULL) == ALLOW);
    /* Resources are case-sensitive. */
    T_CHECK(s_eval_full(p, ALICE, "kms:Decrypt", "arn:aws:kms:us-east-1:" ACCT_A ":KEY/1234",
                        NULL, NULL) == IMPLICIT);
    s3s_policy_free(p);

    /* A wildcard stays inside its ARN field. */
    p = s_one("{'Effect':'Allow','Principal':'*','Action':'kms:*',"
              "'Resource':'arn:aws:kms:us-east-1:*:key/k'}");
    T_CHECK(s_eval_full(p, ALICE, "kms:Decrypt", "arn:aws:kms:us-east-1:" ACCT_A ":key/k", NULL,
                        NULL) == ALLOW);
    T_CHECK(s_eval_full(p, ALICE, "kms:Decrypt", "arn:aws:kms:us-east-1:" ACCT_A ":x:key/k", NULL,
                        NULL) == IMPLICIT);
    T_CHECK(s_eval_full(p, ALICE, "kms:Decrypt", "not-an-arn", NULL, NULL) == IMPLICIT);
    s3s_policy_free(p);

    p = s_one("{'Effect':'Allow','Principal':'*','Action':'kms:*','NotResource':'" KEY_ARN "'}");
    T_CHECK(s_eval_full(p, ALICE, "kms:Decrypt", KEY_ARN, NULL, NULL) == IMPLICIT);
    T_CHECK(s_eval_full(p, ALICE, "kms:Decrypt", OTHER_KEY_ARN, NULL, NULL) == ALLOW);
    s3s_policy_free(p);
}

static void test_deny_wins(void)
{
    /* The Deny comes first and last: order does not matter. */
    static const char *const docs[] = {
        "{'Statement':[{'Effect':'Allow','Principal':{'AWS':'" ROOT_A "'},'Action':'kms:*',"
        "'Resource':'*'},{'Effect':'Deny','Principal':{'AWS':'" BOB "'},'Action':'kms:Decrypt',"
        "'Resource':'*'}]}",
        "{'Statement':[{'Effect':'Deny','Principal':{'AWS':'" BOB "'},'Action':'kms:Decrypt',"
        "'Resource':'*'},{'Effect':'Allow','Principal':{'AWS':'" ROOT_A "'},'Action':'kms:*',"
        "'Resource':'*'}]}",
    };
    for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
        struct s3s_policy *p = s_parse(docs[i]);
        T_CHECK(s_eval(p, BOB, "kms:Decrypt") == EXPLICIT);
        T_CHECK(s_eval(p, BOB, "kms:Encrypt") == ALLOW);
        T_CHECK(s_eval(p, ALICE, "kms:Decrypt") == ALLOW);
        T_CHECK(s_eval(p, CAROL, "kms:Decrypt") == IMPLICIT);
        s3s_policy_free(p);
    }
    /* A lone Deny allows nothing, even to those it does not deny. */
    struct s3s_policy *p = s_one("{'Effect':'Deny','Principal':'*','Action':'kms:Encrypt',"
                                 "'Resource':'*'}");
    T_CHECK(s_eval(p, ALICE, "kms:Decrypt") == IMPLICIT);
    T_CHECK(s_eval(p, ALICE, "kms:Encrypt") == EXPLICIT);
    s3s_policy_free(p);
}

#define ALLOW_ALICE_IF(cond)                                                            \
    "{'Effect':'Allow','Principal':{'AWS':'" ALICE "'},'Action':'kms:Decrypt',"          \
    "'Resource':'*','Condition':" cond "}"

static void test_context_conditions(void)
{
    struct s3s_policy *p =
        s_one(ALLOW_ALICE_IF("{'StringEquals':{'kms:EncryptionContext:Department':'IT'}}"));
    T_CHECK(s_eval_ctx(p, "{'Department':'IT'}") == ALLOW);
    T_CHECK(s_eval_ctx(p, "{'Department':'IT','Other':'x'}") == ALLOW);
    T_CHECK(s_eval_ctx(p, "{'Department':'it'}") == IMPLICIT);
    T_CHECK(s_eval_ctx(p, "{'department':'IT'}") == IMPLICIT); /* KEY is case-sensitive */
    T_CHECK(s_eval_ctx(p, "{'Other':'IT'}") == IMPLICIT);
    T_CHECK(s_eval(p, ALICE, "kms:Decrypt") == IMPLICIT); /* no context at all */
    s3s_policy_free(p);

    /* The condition key's name is case-insensitive up to the KEY; values are OR. */
    p = s_one(ALLOW_ALICE_IF("{'StringEquals':{'KMS:encryptioncontext:Department':['IT','HR']}}"));
    T_CHECK(s_eval_ctx(p, "{'Department':'HR'}") == ALLOW);
    T_CHECK(s_eval_ctx(p, "{'Department':'Ops'}") == IMPLICIT);
    s3s_policy_free(p);

    p = s_one(ALLOW_ALICE_IF("{'StringEqualsIfExists':{'kms:EncryptionContext:Department':'IT'}}"));
    T_CHECK(s_eval_ctx(p, "{'Department':'IT'}") == ALLOW);
    T_CHECK(s_eval_ctx(p, "{'Project':'x'}") == ALLOW);
    T_CHECK(s_eval(p, ALICE, "kms:Decrypt") == ALLOW);
    T_CHECK(s_eval_ctx(p, "{'Department':'HR'}") == IMPLICIT);
    s3s_policy_free(p);

    p = s_one(ALLOW_ALICE_IF("{'StringLike':{'kms:EncryptionContext:aws:s3:arn':"
                             "'arn:aws:s3:::bucket/home/?/*'}}"));
    T_CHECK(s_eval_ctx(p, "{'aws:s3:arn':'arn:aws:s3:::bucket/home/a/f.txt'}") == ALLOW);
    T_CHECK(s_eval_ctx(p, "{'aws:s3:arn':'arn:aws:s3:::bucket/home/\\u00e9/f'}") == ALLOW);
    T_CHECK(s_eval_ctx(p, "{'aws:s3:arn':'arn:aws:s3:::bucket/home/ab/f'}") == IMPLICIT);
    T_CHECK(s_eval_ctx(p, "{'aws:s3:arn':'arn:aws:s3:::BUCKET/home/a/f'}") == IMPLICIT);
    s3s_policy_free(p);

    p = s_one(ALLOW_ALICE_IF("{'StringEqualsIgnoreCase':{'kms:EncryptionContext:Team':'Blue'}}"));
    T_CHECK(s_eval_ctx(p, "{'Team':'bLUE'}") == ALLOW);
    T_CHECK(s_eval_ctx(p, "{'Team':'Green'}") == IMPLICIT);
    s3s_policy_free(p);

    /* Negated operators: true when no value matches, and on an absent key. */
    p = s_one(ALLOW_ALICE_IF("{'StringNotEquals':{'kms:EncryptionContext:Stage':['dev','test']}}"));
    T_CHECK(s_eval_ctx(p, "{'Stage':'prod'}") == ALLOW);
    T_CHECK(s_eval_ctx(p, "{'Stage':'dev'}") == IMPLICIT);
    T_CHECK(s_eval_ctx(p, "{'Stage':'test'}") == IMPLICIT);
    T_CHECK(s_eval(p, ALICE, "kms:Decrypt") == ALLOW);
    s3s_policy_free(p);
    p = s_one(ALLOW_ALICE_IF("{'StringNotLike':{'kms:EncryptionContext:Stage':'d*'}}"));
    T_CHECK(s_eval_ctx(p, "{'Stage':'prod'}") == ALLOW);
    T_CHECK(s_eval_ctx(p, "{'Stage':'dev'}") == IMPLICIT);
    s3s_policy_free(p);
    p = s_one(
        ALLOW_ALICE_IF("{'StringNotEqualsIgnoreCase':{'kms:EncryptionContext:Stage':'DEV'}}"));
    T_CHECK(s_eval_ctx(p, "{'Stage':'dev'}") == IMPLICIT);
    T_CHECK(s_eval_ctx(p, "{'Stage':'prod'}") == ALLOW);
    s3s_policy_free(p);
}

static void test_context_key_sets(void)
{
    struct s3s_policy *p = s_one(ALLOW_ALICE_IF(
        "{'ForAllValues:StringEquals':{'kms:EncryptionContextKeys':['Department','Project']}}"));
    T_CHECK(s_eval_ctx(p, "{'Department':'x'}") == ALLOW);
    T_CHECK(s_eval_ctx(p, "{'Department':'x','Project':'y'}") == ALLOW);
    T_CHECK(s_eval_ctx(p, "{'Department':'x','Cost':'y'}") == IMPLICIT);
    /* ForAllValues holds over no keys at all (AWS's rule). */
    T_CHECK(s_eval(p, ALICE, "kms:Decrypt") == ALLOW);
    T_CHECK(s_eval_ctx(p, "{}") == ALLOW);
    s3s_policy_free(p);

    p = s_one(ALLOW_ALICE_IF("{'ForAnyValue:StringLike':{'kms:EncryptionContextKeys':'Proj*'}}"));
    T_CHECK(s_eval_ctx(p, "{'Cost':'1','Project':'y'}") == ALLOW);
    T_CHECK(s_eval_ctx(p, "{'Cost':'1'}") == IMPLICIT);
    T_CHECK(s_eval(p, ALICE, "kms:Decrypt") == IMPLICIT);
    s3s_policy_free(p);

    /* ForAnyValue with a negated operator: some key is not listed. */
    p = s_one(ALLOW_ALICE_IF("{'ForAnyValue:StringNotEquals':{'kms:EncryptionContextKeys':'A'}}"));
    T_CHECK(s_eval_ctx(p, "{'A':'1','B':'2'}") == ALLOW);
    T_CHECK(s_eval_ctx(p, "{'A':'1'}") == IMPLICIT);
    s3s_policy_free(p);

    /* ForAllValues with a negated operator: no key is listed. */
    p = s_one(
        ALLOW_ALICE_IF("{'ForAllValues:StringNotLike':{'kms:EncryptionContextKeys':'aws:*'}}"));
    T_CHECK(s_eval_ctx(p, "{'A':'1','B':'2'}") == ALLOW);
    T_CHECK(s_eval_ctx(p, "{'A':'1','aws:s3:arn':'x'}") == IMPLICIT);
    s3s_policy_free(p);

    /* Without a set operator, any value may match. */
    p = s_one(ALLOW_ALICE_IF("{'StringEquals':{'kms:EncryptionContextKeys':'B'}}"));
    T_CHECK(s_eval_ctx(p, "{'A':'1','B':'2'}") == ALLOW);
    T_CHECK(s_eval_ctx(p, "{'A':'1'}") == IMPLICIT);
    s3s_policy_free(p);

    /* Null: is there a context at all? */
    p = s_one(ALLOW_ALICE_IF("{'Null':{'kms:EncryptionContextKeys':'false'}}"));
    T_CHECK(s_eval_ctx(p, "{'A':'1'}") == ALLOW);
    T_CHECK(s_eval_ctx(p, "{}") == IMPLICIT);
    T_CHECK(s_eval(p, ALICE, "kms:Decrypt") == IMPLICIT);
    s3s_policy_free(p);
    p = s_one(ALLOW_ALICE_IF("{'Null':{'kms:EncryptionContext:Department':true}}"));
    T_CHECK(s_eval_ctx(p, "{'A':'1'}") == ALLOW);
    T_CHECK(s_eval_ctx(p, "{'Department':'1'}") == IMPLICIT);
    s3s_policy_free(p);
}

static void test_request_conditions(void)
{
    struct s3s_policy *p =
        s_one(ALLOW_ALICE_IF("{'StringEquals':{'kms:ViaService':'" VIA_S3 "'}}"));
    T_CHECK(s_eval_via(p, VIA_S3) == ALLOW);
    T_CHECK(s_eval_via(p, "s3.eu-west-1.amazonaws.com") == IMPLICIT);
    T_CHECK(s_eval_via(p, NULL) == IMPLICIT);
    s3s_policy_free(p);

    /* AWS's usual guard: deny whatever does not come through S3. The absent
     * kms:ViaService of a direct call makes StringNotEquals true. */
    p = s_parse("{'Statement':[{'Effect':'Allow','Principal':{'AWS':'" ROOT_A "'},"
                "'Action':'kms:*','Resource':'*'},{'Effect':'Deny','Principal':'*',"
                "'Action':'kms:Decrypt','Resource':'*','Condition':{'StringNotEquals':"
                "{'kms:ViaService':'" VIA_S3 "'}}}]}");
    T_CHECK(s_eval_via(p, VIA_S3) == ALLOW);
    T_CHECK(s_eval_via(p, NULL) == EXPLICIT);
    T_CHECK(s_eval_via(p, "ec2.us-east-1.amazonaws.com") == EXPLICIT);
    s3s_policy_free(p);

    p = s_one("{'Effect':'Allow','Principal':'*','Action':'kms:*','Resource':'*',"
              "'Condition':{'StringEquals':{'kms:CallerAccount':'" ACCT_B "'}}}");
    T_CHECK(s_eval(p, CAROL, "kms:Decrypt") == ALLOW);
    T_CHECK(s_eval(p, ALICE, "kms:Decrypt") == IMPLICIT);
    s3s_policy_free(p);

    p = s_one("{'Effect':'Allow','Principal':'*','Action':'kms:*','Resource':'*',"
              "'Condition':{'StringLike':{'aws:PrincipalArn':'arn:aws:iam::*:user/a*'},"
              "'StringEquals':{'aws:PrincipalAccount':'" ACCT_A "'}}}");
    T_CHECK(s_eval(p, ALICE, "kms:Decrypt") == ALLOW);
    T_CHECK(s_eval(p, BOB, "kms:Decrypt") == IMPLICIT);
    T_CHECK(s_eval(p, "arn:aws:iam::" ACCT_B ":user/amy", "kms:Decrypt") == IMPLICIT);
    s3s_policy_free(p);
}

static void test_unknown_keys_and_bool(void)
{
    /* aws:SecureTransport is a key s3seal never has: a Deny on its Bool does
     * not apply, but with IfExists it does. */
    struct s3s_policy *p = s_parse(
        "{'Statement':[{'Effect':'Allow','Principal':'*','Action':'kms:*','Resource':'*'},"
        "{'Effect':'Deny','Principal':'*','Action':'kms:Decrypt','Resource':'*',"
        "'Condition':{'Bool':{'aws:SecureTransport':false}}}]}");
    T_CHECK(s_eval(p, ALICE, "kms:Decrypt") == ALLOW);
    s3s_policy_free(p);
    p = s_one("{'Effect':'Deny','Principal':'*','Action':'kms:Decrypt','Resource':'*',"
              "'Condition':{'BoolIfExists':{'aws:SecureTransport':'false'}}}");
    T_CHECK(s_eval(p, ALICE, "kms:Decrypt") == EXPLICIT);
    s3s_policy_free(p);

    p = s_one(ALLOW_ALICE_IF("{'StringEquals':{'aws:SourceVpc':'vpc-1'}}"));
    T_CHECK(s_eval(p, ALICE, "kms:Decrypt") == IMPLICIT);
    s3s_policy_free(p);
    p = s_one(ALLOW_ALICE_IF("{'StringNotEquals':{'aws:SourceVpc':'vpc-1'}}"));
    T_CHECK(s_eval(p, ALICE, "kms:Decrypt") == ALLOW);
    s3s_policy_free(p);
    p = s_one(ALLOW_ALICE_IF("{'Null':{'aws:SourceVpc':'true'}}"));
    T_CHECK(s_eval(p, ALICE, "kms:Decrypt") == ALLOW);
    s3s_policy_free(p);
}

static void test_conditions_are_and(void)
{
    /* Two operators and two keys under one: all must hold. */
    struct s3s_policy *p = s_one(ALLOW_ALICE_IF(
        "{'StringEquals':{'kms:EncryptionContext:A':'1','kms:EncryptionContext:B':'2'},"
        "'StringLike':{'kms:EncryptionContext:C':'x*'}}"));
    T_CHECK(s_eval_ctx(p, "{'A':'1','B':'2','C':'xyz'}") == ALLOW);
    T_CHECK(s_eval_ctx(p, "{'A':'1','B':'2','C':'yz'}") == IMPLICIT);
    T_CHECK(s_eval_ctx(p, "{'A':'1','C':'xyz'}") == IMPLICIT);
    T_CHECK(s_eval_ctx(p, "{'A':'0','B':'2','C':'x'}") == IMPLICIT);
    s3s_policy_free(p);
}

static void test_cross_account(void)
{
    /* A key of account A that the account uses and lends carol of B for Decrypt. */
    struct s3s_policy *p = s_parse(
        "{'Version':'2012-10-17','Id':'key-policy','Statement':["
        "{'Sid':'Enable IAM policies','Effect':'Allow','Principal':{'AWS':'" ROOT_A "'},"
        "'Action':'kms:*','Resource':'*'},"
        "{'Sid':'Lend','Effect':'Allow','Principal':{'AWS':['" CAROL "']},"
        "'Action':['kms:Decrypt','kms:DescribeKey'],'Resource':'*'}]}");
    T_CHECK(s_eval(p, CAROL, "kms:Decrypt") == ALLOW);
    T_CHECK(s_eval(p, CAROL, "kms:GenerateDataKey") == IMPLICIT);
    T_CHECK(s_eval(p, DAVE, "kms:Decrypt") == IMPLICIT);
    T_CHECK(s_eval(p, ALICE, "kms:GenerateDataKey") == ALLOW);
    s3s_policy_free(p);

    /* Without a statement for its own account, A is not allowed either. */
    p = s_one("{'Effect':'Allow','Principal':{'AWS':'" CAROL "'},'Action':'kms:Decrypt',"
              "'Resource':'" KEY_ARN "'}");
    T_CHECK(s_eval(p, CAROL, "kms:Decrypt") == ALLOW);
    T_CHECK(s_eval(p, DAVE, "kms:Decrypt") == IMPLICIT);
    T_CHECK(s_eval(p, ALICE, "kms:Decrypt") == IMPLICIT);
    T_CHECK(s_eval(p, ROOT_A, "kms:Decrypt") == IMPLICIT);
    s3s_policy_free(p);

    /* The whole of account B. */
    p = s_one("{'Effect':'Allow','Principal':{'AWS':'arn:aws:iam::" ACCT_B ":root'},"
              "'Action':'kms:Decrypt','Resource':'*'}");
    T_CHECK(s_eval(p, CAROL, "kms:Decrypt") == ALLOW);
    T_CHECK(s_eval(p, DAVE, "kms:Decrypt") == ALLOW);
    T_CHECK(s_eval(p, ALICE, "kms:Decrypt") == IMPLICIT);
    s3s_policy_free(p);
}

struct s_bad {
    const char *policy; /* with ' for " */
    const char *reason; /* a part of the reason */
};

#define STMT_TAIL "'Action':'kms:*','Resource':'*'"

static void test_malformed(void)
{
    static const struct s_bad bad[] = {
        {"", "not valid JSON"},
        {"{'Statement':[", "not valid JSON"},
        {"{'Statement':[]} x", "not valid JSON"},
        {"[]", "not a JSON object"},
        {"{}", "no Statement"},
        {"{'Version':'2012-10-17'}", "no Statement"},
        {"{'Statement':[]}", "empty list"},
        {"{'Statement':['x']}", "statement 1: not an object"},
        {"{'Version':'2020-01-01','Statement':{'Effect':'Allow','Principal':'*'," STMT_TAIL "}}",
         "unknown Version"},
        {"{'Statement':{'Effect':'Allow','Principal':'*'," STMT_TAIL "},'Extra':1}",
         "unknown element \"Extra\""},
        {"{'Statement':{'Principal':'*'," STMT_TAIL "}}", "no Effect"},
        {"{'Statement':{'Effect':'allow','Principal':'*'," STMT_TAIL "}}",
         "neither Allow nor Deny"},
        {"{'Statement':{'Effect':true,'Principal':'*'," STMT_TAIL "}}", "Effect is not a string"},
        {"{'Statement':[{'Effect':'Allow','Principal':'*'," STMT_TAIL "},{'Effect':'Allow',"
         STMT_TAIL "}]}",
         "statement 2: neither Principal nor NotPrincipal"},
        {"{'Statement':{'Effect':'Allow','Principal':'*','NotPrincipal':'*'," STMT_TAIL "}}",
         "both Principal and NotPrincipal"},
        {"{'Statement':{'Effect':'Allow','Principal':'*','Resource':'*'}}",
         "neither Action nor NotAction"},
        {"{'Statement':{'Effect':'Allow','Principal':'*','Action':'kms:*'}}",
         "neither Resource nor NotResource"},
        {"{'Statement':{'Effect':'Allow','Principal':'*'," STMT_TAIL ",'Condtion':{}}}",
         "unknown element \"Condtion\""},
        {"{'Statement':{'Effect':'Allow','Effect':'Deny','Principal':'*'," STMT_TAIL "}}",
         "duplicate key"},
        {"{'Statement':{'Sid':1,'Effect':'Allow','Principal':'*'," STMT_TAIL "}}",
         "Sid is not a string"},
        {"{'Statement':{'Effect':'Allow','Principal':'bob'," STMT_TAIL "}}",
         "a Principal string must be"},
        {"{'Statement':{'Effect':'Allow','Principal':{}," STMT_TAIL "}}", "Principal is neither"},
        {"{'Statement':{'Effect':'Allow','Principal':{'Federated':'x'}," STMT_TAIL "}}",
         "unknown element \"Federated\""},
        {"{'Statement':{'Effect':'Allow','Principal':{'AWS':[]}," STMT_TAIL "}}", "empty list"},
        {"{'Statement':{'Effect':'Allow','Principal':{'AWS':'bob'}," STMT_TAIL "}}",
         "invalid principal \"bob\""},
        {"{'Statement':{'Effect':'Allow','Principal':{'AWS':'arn:aws:iam::" ACCT_A ":user/*'},"
         STMT_TAIL "}}",
         "invalid principal"},
        {"{'Statement':{'Effect':'Allow','Principal':{'AWS':'arn:aws:s3:::bucket'}," STMT_TAIL
         "}}",
         "invalid principal"},
        {"{'Statement':{'Effect':'Allow','Principal':{'AWS':5}," STMT_TAIL "}}", "not a string"},
        {"{'Statement':{'Effect':'Allow','Principal':'*','Action':'Decrypt','Resource':'*'}}",
         "invalid action \"Decrypt\""},
        {"{'Statement':{'Effect':'Allow','Principal':'*','Action':[],'Resource':'*'}}",
         "empty list"},
        {"{'Statement':{'Effect':'Allow','Principal':'*','Action':'kms:*','Resource':'key/1'}}",
         "invalid resource"},
        {"{'Statement':{'Effect':'Allow','Principal':'*','Action':'kms:*','Resource':"
         "'arn:aws:kms:*'}}",
         "invalid resource"},
        {"{'Statement':{'Effect':'Allow','Principal':'*'," STMT_TAIL ",'Condition':[]}}",
         "Condition is not an object"},
        {"{'Statement':{'Effect':'Allow','Principal':'*'," STMT_TAIL
         ",'Condition':{'StringEqualz':{'kms:ViaService':'x'}}}}",
         "unknown condition operator \"StringEqualz\""},
        {"{'Statement':{'Effect':'Allow','Principal':'*'," STMT_TAIL
         ",'Condition':{'BinaryEquals':{'kms:ViaService':'x'}}}}",
         "unknown condition operator"},
        {"{'Statement':{'Effect':'Allow','Principal':'*'," STMT_TAIL
         ",'Condition':{'NumericLessThan':{'kms:ViaService':'x'}}}}",
         "NumericLessThan: \"x\" is not a valid value"},
        {"{'Statement':{'Effect':'Allow','Principal':'*'," STMT_TAIL
         ",'Condition':{'DateLessThan':{'aws:CurrentTime':'2025-13-01T00:00:00Z'}}}}",
         "is not a valid value"},
        {"{'Statement':{'Effect':'Allow','Principal':'*'," STMT_TAIL
         ",'Condition':{'IpAddress':{'aws:SourceIp':'10.0.0.0/33'}}}}",
         "is not a valid value"},
        {"{'Statement':{'Effect':'Allow','Principal':'*'," STMT_TAIL
         ",'Condition':{'stringequals':{'kms:ViaService':'x'}}}}",
         "unknown condition operator"},
        {"{'Statement':{'Effect':'Allow','Principal':'*'," STMT_TAIL
         ",'Condition':{'ForAnyValue:Null':{'kms:ViaService':'true'}}}}",
         "Null takes no IfExists"},
        {"{'Statement':{'Effect':'Allow','Principal':'*'," STMT_TAIL
         ",'Condition':{'NullIfExists':{'kms:ViaService':'true'}}}}",
         "Null takes no IfExists"},
        {"{'Statement':{'Effect':'Allow','Principal':'*'," STMT_TAIL
         ",'Condition':{'Null':{'kms:ViaService':'yes'}}}}",
         "Null takes \"true\" or \"false\""},
        {"{'Statement':{'Effect':'Allow','Principal':'*'," STMT_TAIL
         ",'Condition':{'Bool':{'aws:SecureTransport':'1'}}}}",
         "Bool takes"},
        {"{'Statement':{'Effect':'Allow','Principal':'*'," STMT_TAIL
         ",'Condition':{'StringEquals':'x'}}}",
         "not an object of condition keys"},
        {"{'Statement':{'Effect':'Allow','Principal':'*'," STMT_TAIL
         ",'Condition':{'StringEquals':{}}}}",
         "not an object of condition keys"},
        {"{'Statement':{'Effect':'Allow','Principal':'*'," STMT_TAIL
         ",'Condition':{'StringEquals':{'ViaService':'x'}}}}",
         "has no service prefix"},
        {"{'Statement':{'Effect':'Allow','Principal':'*'," STMT_TAIL
         ",'Condition':{'StringEquals':{'kms:EncryptionContext:':'x'}}}}",
         "names no context key"},
        {"{'Statement':{'Effect':'Allow','Principal':'*'," STMT_TAIL
         ",'Condition':{'StringEquals':{'kms:ViaService':7}}}}",
         "not a string"},
        {"{'Statement':{'Effect':'Allow','Principal':'*'," STMT_TAIL
         ",'Condition':{'StringEquals':{'kms:ViaService':[]}}}}",
         "empty list"},
        {"{'Statement':[{'Effect':'Allow','Principal':'*'," STMT_TAIL
         ",'Condition':{'StringEquals':{'kms:ViaService':[['x']]}}}]}",
         "nesting too deep"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct s3s_policy *p = (struct s3s_policy *)&p; /* must be reset */
        char why[256] = "";
        s3s_result r = s3s_policy_parse(s3s_cur_from_str(s_json(bad[i].policy)), &p, why,
                                        sizeof(why));
        bool ok = r.code == S3S_ERR_KMS_MALFORMED_POLICY && p == NULL &&
                  strstr(why, bad[i].reason) != NULL && strchr(why, '\n') == NULL;
        if (!ok) {
            fprintf(stderr, "bad policy #%zu: code %s, why \"%s\", expected \"%s\"\n", i,
                    s3s_strerror(r.code), why, bad[i].reason);
        }
        T_CHECK(ok);
    }
}

static void test_malformed_edges(void)
{
    struct s3s_policy *p = NULL;
    char why[256] = "";
    /* Over the size limit, however well-formed. */
    size_t n = S3S_POLICY_MAX_LEN + 1;
    char *big = s3s_malloc(n + 1);
    memset(big, ' ', n);
    memcpy(big, "{\"Statement\":[]}", 16);
    big[n] = '\0';
    T_ERR(s3s_policy_parse(s3s_cur_from(big, n), &p, why, sizeof(why)),
          S3S_ERR_KMS_MALFORMED_POLICY);
    T_CHECK(strstr(why, "larger than 32768 bytes") != NULL);
    s3s_free(&big);

    /* The reason is one line even when the policy text has line breaks. */
    T_ERR(s3s_policy_parse(S3S_CUR_LIT("{\"Statement\":{\"Effect\":\"a\\nb\"}}"), &p, why,
                           sizeof(why)),
          S3S_ERR_KMS_MALFORMED_POLICY);
    T_CHECK(strstr(why, "Effect \"a b\"") != NULL);
    /* No room for a reason, or none asked for. */
    char tiny[8];
    T_ERR(s3s_policy_parse(S3S_CUR_LIT("{}"), &p, tiny, sizeof(tiny)),
          S3S_ERR_KMS_MALFORMED_POLICY);
    T_CHECK(strlen(tiny) == sizeof(tiny) - 1);
    T_ERR(s3s_policy_parse(S3S_CUR_LIT("{}"), &p, NULL, 0), S3S_ERR_KMS_MALFORMED_POLICY);
    T_ERR(s3s_policy_parse(S3S_CUR_LIT("{}"), NULL, why, sizeof(why)), S3S_ERR_INVALID_ARG);
    s3s_policy_free(NULL);
}

static void test_allocation_failures(void)
{
    const char *doc = s_json(
        "{'Statement':[{'Effect':'Allow','Principal':{'AWS':['" ROOT_A "','" CAROL "']},"
        "'Action':['kms:Decrypt','kms:GenerateDataKey*'],'Resource':'*','Condition':"
        "{'StringEquals':{'kms:EncryptionContext:A':['1','2']}}}]}");
    bool done = false;
    for (long n = 0; !done && n < 100; n++) {
        struct s3s_policy *p = NULL;
        s3s_mem_fail_after(n);
        s3s_result r = s3s_policy_parse(s3s_cur_from_str(doc), &p, NULL, 0);
        s3s_mem_fail_after(-1);
        if (s3s_is_ok(r)) {
            done = true;
            struct s3s_kms_context ctx;
            s3s_kms_context_init(&ctx);
            T_OK(s3s_kms_context_set(&ctx, "A", "2"));
            T_CHECK(s_eval_full(p, CAROL, "kms:Decrypt", KEY_ARN, &ctx, NULL) == ALLOW);
            s3s_kms_context_clean_up(&ctx);
        } else {
            T_ERR(r, S3S_ERR_NOMEM);
            T_CHECK(p == NULL);
        }
        s3s_policy_free(p);
    }
    T_CHECK(done);
}

static void test_principal_account(void)
{
    char out[13];
    T_CHECK(s3s_principal_account(ALICE, out));
    T_STREQ(out, ACCT_A);
    T_CHECK(s3s_principal_account(ROOT_A, out));
    T_STREQ(out, ACCT_A);
    T_CHECK(s3s_principal_account(ROLE_A, out));
    T_CHECK(s3s_principal_account("arn:aws-cn:iam::" ACCT_B ":role/x", out));
    T_STREQ(out, ACCT_B);
    T_CHECK(s3s_principal_account(ACCT_B, out));
    T_STREQ(out, ACCT_B);
    static const char *const none[] = {
        "",
        "1111222233334",
        "11112222333a",
        "arn:aws:iam::" ACCT_A ":",
        "arn:aws:iam::" ACCT_A,
        "arn:aws:iam:us-east-1:" ACCT_A ":user/x",
        "arn:aws:s3::" ACCT_A ":x",
        "arn::iam::" ACCT_A ":user/x",
        "arn:aws:iam::1111222233:user/x",
        "urn:aws:iam::" ACCT_A ":user/x",
    };
    for (size_t i = 0; i < sizeof(none) / sizeof(none[0]); i++) {
        T_CHECK(!s3s_principal_account(none[i], out));
    }
    T_CHECK(!s3s_principal_account(NULL, out));
}

static void test_denial_messages(void)
{
    struct s3s_policy_request req = {.principal = BOB, .action = "kms:Decrypt",
                                     .key_arn = KEY_ARN, .key_account = ACCT_A};
    struct s3s_buf b;
    T_OK(s3s_buf_init(&b, 0, 1024));
    T_OK(s3s_policy_denial_message(&req, IMPLICIT, &b));
    T_BUFEQ(b, "User: " BOB " is not authorized to perform: kms:Decrypt on resource: " KEY_ARN
               " because no resource-based policy allows the kms:Decrypt action");
    s3s_buf_reset(&b);
    T_OK(s3s_policy_denial_message(&req, EXPLICIT, &b));
    T_BUFEQ(b, "User: " BOB " is not authorized to perform: kms:Decrypt on resource: " KEY_ARN
               " with an explicit deny in a resource-based policy");
    s3s_buf_reset(&b);
    T_ERR(s3s_policy_denial_message(&req, ALLOW, &b), S3S_ERR_INVALID_ARG);
    T_CHECK(b.len == 0);
    s3s_buf_clean_up(&b);
    T_OK(s3s_buf_init(&b, 0, 16));
    T_ERR(s3s_policy_denial_message(&req, EXPLICIT, &b), S3S_ERR_TOO_BIG);
    T_CHECK(b.len == 0);
    s3s_buf_clean_up(&b);
}

int main(void)
{
    test_default_policy();
    test_principals();
    test_not_principal();
    test_actions();
    test_resources();
    test_deny_wins();
    test_context_conditions();
    test_context_key_sets();
    test_request_conditions();
    test_unknown_keys_and_bool();
    test_conditions_are_and();
    test_cross_account();
    test_malformed();
    test_malformed_edges();
    test_allocation_failures();
    test_principal_account();
    test_denial_messages();
    return t_finish("keystore.policy");
}
