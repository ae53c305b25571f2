/*
 * xml_body_fuzz.c - aims at the backend documents s3seal reads with libxml2
 * that xml_rewrite_fuzz.c leaves out (proxy/listing.c): a source object's
 * tagging document turned into an x-amz-tagging header (copies),
 * CreateMultipartUpload's UploadId, and ListMultipartUploads pages whose
 * upload ids s3seal extends with its own part. First byte: which; the
 * rest: the document. Each must refuse or answer within its bounds, and
 * never crash or leak.
 */
#include <stdlib.h>
#include <string.h>

#include "keystore/keystore.h"
#include "proxy/proxy.h"

/* The keystore's part of ListMultipartUploads: every other upload is one
 * of s3seal's, and its keys are checked to be what the page held. */
static s3s_result s_lookup(void *ctx, struct s3s_keystore_upload_ref *refs, size_t n)
{
    (void)ctx;
    for (size_t i = 0; i < n; i++) {
        if ((refs[i].key.len && !refs[i].key.ptr) || refs[i].suffix) {
            abort();
        }
        if (i % 2 == 0) {
            refs[i].suffix = s3s_strdup("~s3seal~1~1~ab");
            if (!refs[i].suffix) {
                return s3s_err(S3S_ERR_NOMEM);
            }
        }
    }
    return s3s_ok();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) {
        return 0;
    }
    struct s3s_cur xml = s3s_cur_from(data + 1, size - 1);
    struct s3s_buf out;
    if (s3s_failed(s3s_buf_init(&out, 0, 8u << 20))) {
        return 0;
    }
    switch (data[0] % 3) {
    case 0:
        if (s3s_is_ok(s3s_xml_tagging_header(xml, &out)) && out.len &&
            (memchr(out.ptr, '\r', out.len) || memchr(out.ptr, '\n', out.len))) {
            abort(); /* it becomes a header value */
        }
        break;
    case 1:
        if (s3s_is_ok(s3s_xml_upload_id(xml, &out)) && out.len == 0) {
            abort();
        }
        break;
    default:
        s3s_result_ignore(s3s_listing_uploads(xml, s_lookup, NULL, &out));
        break;
    }
    s3s_buf_clean_up(&out);
    return 0;
}
