/*
 * xml_rewrite_fuzz.c - aims at the backend answers s3seal parses and
 * rewrites with libxml2 (proxy/listing.c): listings' sizes and ETags,
 * ListParts sizes and pages, CreateMultipartUpload's UploadId,
 * CompleteMultipartUpload's part list and the ETag filled into its answer;
 * and the client bodies it reads: DeleteObjects' keys, ACL documents.
 * First byte: which; the rest: the document. Each must refuse or answer
 * within its bounds, and never crash.
 */
#include <libxml/parser.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/proxy.h"

static s3s_result s_count_key(void *ctx, struct s3s_cur key, bool version)
{
    (void)version;
    size_t *n = ctx;
    if (key.len == 0 || ++*n > 1000) {
        abort(); /* the parser names 1-1000 keys, none empty */
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
    static uint64_t sizes[10001];
    uint32_t numbers[64];
    size_t n = 0;
    bool truncated = false;
    uint32_t marker = 0;
    char etag[48];
    switch (data[0] % 8) {
    case 0:
        s3s_result_ignore(s3s_listing_plain_sizes(xml, &out));
        break;
    case 1:
        s3s_result_ignore(s3s_listparts_plain_sizes(xml, &out));
        break;
    case 2:
        s3s_result_ignore(s3s_listing_upload_id(xml, S3S_CUR_LIT("~s3seal~1~1~ab"), &out));
        break;
    case 3:
        if (s3s_is_ok(s3s_xml_complete_parts(xml, numbers, 64, &n, etag)) &&
            (n > 64 || strlen(etag) >= sizeof(etag))) {
            abort();
        }
        break;
    case 4:
        s3s_result_ignore(s3s_xml_parts_page(xml, sizes, &truncated, &marker));
        if (marker > 10000) {
            abort();
        }
        break;
    case 5:
        s3s_result_ignore(s3s_listing_complete_etag(xml, "0123-2", &out));
        break;
    case 6:
        s3s_result_ignore(s3s_xml_delete_keys(xml, s_count_key, &n));
        break;
    default:
        (void)s3s_xml_acl_owner_only(xml);
        break;
    }
    s3s_buf_clean_up(&out);
    return 0;
}
