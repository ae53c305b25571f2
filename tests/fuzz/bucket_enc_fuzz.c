/* bucket_enc_fuzz.c - aims at PutBucketEncryption's body parser
 * (s3s_bucket_enc_parse, client input); a rule it accepts must format to a
 * GetBucketEncryption document that parses back to the same rule. */
#include <libxml/parser.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/proxy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct s3s_bucket_enc_rule rule, back;
    if (s3s_failed(s3s_bucket_enc_parse(s3s_cur_from(data, size), &rule))) {
        return 0;
    }
    struct s3s_buf out;
    if (s3s_is_ok(s3s_buf_init(&out, 0, 1 << 20)) &&
        s3s_is_ok(s3s_bucket_enc_format(&rule, &out))) {
        if (s3s_failed(s3s_bucket_enc_parse(s3s_buf_cur(&out), &back))) {
            abort();
        }
        bool same = back.mode == rule.mode && back.bucket_key == rule.bucket_key &&
                    strcmp(back.algorithm, rule.algorithm) == 0 &&
                    !back.kms_key_id == !rule.kms_key_id &&
                    (!back.kms_key_id || strcmp(back.kms_key_id, rule.kms_key_id) == 0);
        if (!same) {
            abort();
        }
        s3s_bucket_enc_rule_clean_up(&back);
    }
    s3s_buf_clean_up(&out);
    s3s_bucket_enc_rule_clean_up(&rule);
    return 0;
}
