/*
 * bucket_enc_test.c - PutBucketEncryption bodies as AWS validates them
 * (well-formed, one Rule, a known SSEAlgorithm, KMSMasterKeyID only with a
 * KMS algorithm, xsd:boolean BucketKeyEnabled, no DTD), and the
 * GetBucketEncryption document, which parses back to the same rule.
 */
#include <libxml/parser.h>

#include "proxy/proxy.h"
#include "testlib.h"

#define NS "http://s3.amazonaws.com/doc/2006-03-01/"
#define DOC(rule)                                                                    \
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"                                   \
    "<ServerSideEncryptionConfiguration xmlns=\"" NS "\">" rule                      \
    "</ServerSideEncryptionConfiguration>"
#define BY_DEFAULT(inner)                                                            \
    "<Rule><ApplyServerSideEncryptionByDefault>" inner                               \
    "</ApplyServerSideEncryptionByDefault></Rule>"

static int32_t s_parse(const char *xml, struct s3s_bucket_enc_rule *rule)
{
    return s3s_bucket_enc_parse(s3s_cur_from_str(xml), rule).code;
}

static void test_valid(void)
{
    struct s3s_bucket_enc_rule r;
    /* What aws-cli and boto3 send. */
    T_CHECK(s_parse(DOC(BY_DEFAULT("<SSEAlgorithm>AES256</SSEAlgorithm>")), &r) == S3S_OK);
    T_CHECK(r.mode == S3S_SSE_AES256 && !r.bucket_key && r.kms_key_id == NULL);
    T_STREQ(r.algorithm, "AES256");
    s3s_bucket_enc_rule_clean_up(&r);

    T_CHECK(s_parse(DOC("<Rule><ApplyServerSideEncryptionByDefault><SSEAlgorithm>aws:kms"
                        "</SSEAlgorithm><KMSMasterKeyID>arn:aws:kms:us-east-1:1:key/a&amp;b"
                        "</KMSMasterKeyID></ApplyServerSideEncryptionByDefault>"
                        "<BucketKeyEnabled>true</BucketKeyEnabled></Rule>"),
                    &r) == S3S_OK);
    T_CHECK(r.mode == S3S_SSE_KMS && r.bucket_key);
    T_STREQ(r.algorithm, "aws:kms");
    T_STREQ(r.kms_key_id, "arn:aws:kms:us-east-1:1:key/a&b");
    s3s_bucket_enc_rule_clean_up(&r);

    /* No namespace, whitespace and comments around values, DSSE, 0/1. */
    T_CHECK(s_parse("<ServerSideEncryptionConfiguration>\n  <Rule>\n"
                    "    <!-- default -->\n"
                    "    <ApplyServerSideEncryptionByDefault>\n"
                    "      <SSEAlgorithm> aws:kms:dsse\n</SSEAlgorithm>\n"
                    "    </ApplyServerSideEncryptionByDefault>\n"
                    "    <BucketKeyEnabled>0</BucketKeyEnabled>\n  </Rule>\n"
                    "</ServerSideEncryptionConfiguration>\n",
                    &r) == S3S_OK);
    T_CHECK(r.mode == S3S_SSE_KMS && !r.bucket_key && r.kms_key_id == NULL);
    T_STREQ(r.algorithm, "aws:kms:dsse");
    s3s_bucket_enc_rule_clean_up(&r);
}

static void test_invalid(void)
{
    struct s3s_bucket_enc_rule r;
    static const char *const malformed[] = {
        "",
        "<ServerSideEncryptionConfiguration",
        "not xml at all",
        /* not the schema */
        DOC(""),
        DOC(BY_DEFAULT("<SSEAlgorithm>AES256</SSEAlgorithm>")
                BY_DEFAULT("<SSEAlgorithm>AES256</SSEAlgorithm>")),
        DOC("<Rule></Rule>"),
        DOC("<Rule><BucketKeyEnabled>true</BucketKeyEnabled></Rule>"),
        DOC(BY_DEFAULT("")),
        DOC(BY_DEFAULT("<KMSMasterKeyID>k</KMSMasterKeyID>")),
        DOC(BY_DEFAULT("<SSEAlgorithm>AES512</SSEAlgorithm>")),
        DOC(BY_DEFAULT("<SSEAlgorithm>aes256</SSEAlgorithm>")),
        DOC(BY_DEFAULT("<SSEAlgorithm>SSE-KMS</SSEAlgorithm>")),
        DOC(BY_DEFAULT("<SSEAlgorithm></SSEAlgorithm>")),
        DOC(BY_DEFAULT("<SSEAlgorithm>AES256</SSEAlgorithm><SSEAlgorithm>AES256</SSEAlgorithm>")),
        DOC(BY_DEFAULT("<SSEAlgorithm><b>AES256</b></SSEAlgorithm>")),
        DOC(BY_DEFAULT("<SSEAlgorithm>aws:kms</SSEAlgorithm><KMSMasterKeyID></KMSMasterKeyID>")),
        DOC(BY_DEFAULT("<SSEAlgorithm>AES256</SSEAlgorithm><Other>x</Other>")),
        DOC("<Rule><ApplyServerSideEncryptionByDefault><SSEAlgorithm>AES256</SSEAlgorithm>"
            "</ApplyServerSideEncryptionByDefault><BucketKeyEnabled>yes</BucketKeyEnabled>"
            "</Rule>"),
        DOC("text" BY_DEFAULT("<SSEAlgorithm>AES256</SSEAlgorithm>")),
        "<Other>" BY_DEFAULT("<SSEAlgorithm>AES256</SSEAlgorithm>") "</Other>",
        "<ServerSideEncryptionConfiguration xmlns=\"urn:other\">"
        BY_DEFAULT("<SSEAlgorithm>AES256</SSEAlgorithm>") "</ServerSideEncryptionConfiguration>",
        /* a DTD (entities) is refused */
        "<?xml version=\"1.0\"?><!DOCTYPE x [<!ENTITY a \"AES256\">]>"
        "<ServerSideEncryptionConfiguration>" BY_DEFAULT("<SSEAlgorithm>&a;</SSEAlgorithm>")
        "</ServerSideEncryptionConfiguration>",
        NULL,
    };
    for (size_t i = 0; malformed[i]; i++) {
        int32_t code = s_parse(malformed[i], &r);
        if (code != S3S_ERR_MALFORMED_XML) {
            fprintf(stderr, "case %zu: %s\n", i, s3s_strerror(code));
        }
        T_CHECK(code == S3S_ERR_MALFORMED_XML);
        T_CHECK(r.kms_key_id == NULL);
    }
    T_CHECK(s_parse(DOC(BY_DEFAULT("<SSEAlgorithm>AES256</SSEAlgorithm>"
                                   "<KMSMasterKeyID>alias/k</KMSMasterKeyID>")),
                    &r) == S3S_ERR_KMS_KEY_NOT_APPLICABLE);
    T_STREQ(s3s_error_s3code(S3S_ERR_KMS_KEY_NOT_APPLICABLE), "InvalidArgument");
    T_CHECK(s_parse(DOC("<Rule><ApplyServerSideEncryptionByDefault><SSEAlgorithm>AES256"
                        "</SSEAlgorithm></ApplyServerSideEncryptionByDefault>"
                        "<BlockedEncryptionTypes><EncryptionType>SSE-C</EncryptionType>"
                        "</BlockedEncryptionTypes></Rule>"),
                    &r) == S3S_ERR_BLOCKED_ENCRYPTION_TYPES);
    /* Too long a key id, too big a body. */
    struct s3s_buf big;
    T_OK(s3s_buf_init(&big, 0, 2 * S3S_BUCKET_ENC_MAX_BODY));
    T_OK(s3s_buf_append_str(&big, DOC("<Rule><ApplyServerSideEncryptionByDefault><SSEAlgorithm>"
                                      "aws:kms</SSEAlgorithm><KMSMasterKeyID>")));
    char filler[S3S_BUCKET_ENC_MAX_BODY];
    memset(filler, 'k', sizeof(filler));
    T_OK(s3s_buf_append(&big, filler, 2049));
    T_OK(s3s_buf_append_str(&big, "</KMSMasterKeyID></ApplyServerSideEncryptionByDefault></Rule>"
                                  "</ServerSideEncryptionConfiguration>"));
    T_ERR(s3s_bucket_enc_parse(s3s_buf_cur(&big), &r), S3S_ERR_MALFORMED_XML);
    memset(filler, ' ', sizeof(filler));
    T_OK(s3s_buf_append(&big, filler, sizeof(filler)));
    T_ERR(s3s_bucket_enc_parse(s3s_buf_cur(&big), &r), S3S_ERR_MALFORMED_XML);
    s3s_buf_clean_up(&big);
}

static void test_format(void)
{
    struct s3s_buf out;
    T_OK(s3s_buf_init(&out, 0, 16384));
    struct s3s_bucket_enc_rule r = {.mode = S3S_SSE_AES256, .algorithm = "AES256"};
    T_OK(s3s_bucket_enc_format(&r, &out));
    T_BUFEQ(out, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                 "<ServerSideEncryptionConfiguration xmlns=\"" NS "\"><Rule>"
                 "<ApplyServerSideEncryptionByDefault><SSEAlgorithm>AES256</SSEAlgorithm>"
                 "</ApplyServerSideEncryptionByDefault><BucketKeyEnabled>false"
                 "</BucketKeyEnabled></Rule></ServerSideEncryptionConfiguration>\n");

    /* Escaped, and read back to the same rule. */
    char key[] = "alias/<a&b>";
    struct s3s_bucket_enc_rule k = {.mode = S3S_SSE_KMS, .algorithm = "aws:kms",
                                    .kms_key_id = key, .bucket_key = true};
    s3s_buf_reset(&out);
    T_OK(s3s_bucket_enc_format(&k, &out));
    const char *s;
    T_OK(s3s_buf_cstr(&out, &s));
    T_CHECK(strstr(s, "<KMSMasterKeyID>alias/&lt;a&amp;b&gt;</KMSMasterKeyID>") != NULL);
    T_CHECK(strstr(s, "<BucketKeyEnabled>true</BucketKeyEnabled>") != NULL);
    struct s3s_bucket_enc_rule back;
    T_OK(s3s_bucket_enc_parse(s3s_buf_cur(&out), &back));
    T_CHECK(back.mode == S3S_SSE_KMS && back.bucket_key);
    T_STREQ(back.algorithm, "aws:kms");
    T_STREQ(back.kms_key_id, key);
    s3s_bucket_enc_rule_clean_up(&back);
    s3s_buf_clean_up(&out);
}

int main(void)
{
    xmlInitParser();
    test_valid();
    test_invalid();
    test_format();
    xmlCleanupParser();
    return t_finish("proxy.bucket_enc");
}
