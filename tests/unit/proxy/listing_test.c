/*
 * listing_test.c - listing sizes: every <Size> of <Contents> and <Version>
 * that is a possible ciphertext size becomes its plaintext size (with the
 * multipart layout's overhead where the ETag is a multipart one), and a
 * single-part entry's ETag is marked as no MD5 ("-1"); impossible sizes
 * (plain objects), other elements and the rest of the document stay.
 * ListParts sizes, the UploadId suffix, the multipart ETag computed from a
 * CompleteMultipartUpload body and filled into an empty answer.
 */
#include <libxml/parser.h>

#include "proxy/proxy.h"
#include "testlib.h"

int main(void)
{
    const char *in =
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        "<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
        "<Name>b</Name><MaxKeys>1000</MaxKeys>"
        "<Contents><Key>a &amp; b</Key><Size>16</Size><ETag>&quot;x&quot;</ETag></Contents>"
        "<Contents><Key>c</Key><Size>65552</Size></Contents>"
        "<Contents><Key>d</Key><Size>65570</Size></Contents>"
        "<Contents><Key>plain</Key><Size>65560</Size><ETag>\"p\"</ETag></Contents>"
        "<Contents><Key>mp</Key><Size>65593</Size><ETag>\"m-2\"</ETag></Contents>"
        "<Version><Key>v</Key><Size>17</Size></Version>"
        "<Part><Size>99</Size></Part>"
        "</ListBucketResult>";
    struct s3s_buf out;
    T_OK(s3s_buf_init(&out, 0, 1 << 20));
    T_OK(s3s_listing_plain_sizes(s3s_cur_from_str(in), &out));
    const char *s;
    T_OK(s3s_buf_cstr(&out, &s));
    T_CHECK(strstr(s, "<Key>a &amp; b</Key><Size>0</Size>") != NULL);
    T_CHECK(strstr(s, "<Key>c</Key><Size>65536</Size>") != NULL);
    T_CHECK(strstr(s, "<Key>d</Key><Size>65538</Size>") != NULL);
    /* 65560 = one full segment + 8 bytes: no ciphertext has that size. */
    T_CHECK(strstr(s, "<Key>plain</Key><Size>65560</Size>") != NULL);
    T_CHECK(strstr(s, "<Key>v</Key><Size>1</Size>") != NULL);
    T_CHECK(strstr(s, "<Part><Size>99</Size></Part>") != NULL);
    T_CHECK(strstr(s, "<ETag>&quot;x-1&quot;</ETag>") != NULL ||
            strstr(s, "<ETag>\"x-1\"</ETag>") != NULL);
    T_CHECK(strstr(s, "<Size>65560</Size><ETag>\"p\"</ETag>") != NULL);
    /* 65593 = 65537 + 2 * 28: two segments of the multipart layout. */
    T_CHECK(strstr(s, "<Key>mp</Key><Size>65537</Size><ETag>\"m-2\"</ETag>") != NULL);
    s3s_buf_reset(&out);

    /* ListParts: each part's size with the multipart layout's overhead. */
    T_OK(s3s_listparts_plain_sizes(
        S3S_CUR_LIT("<ListPartsResult><Part><PartNumber>1</PartNumber><Size>65564</Size>"
                    "</Part><Part><PartNumber>2</PartNumber><Size>29</Size></Part>"
                    "</ListPartsResult>"),
        &out));
    T_OK(s3s_buf_cstr(&out, &s));
    T_CHECK(strstr(s, "<PartNumber>1</PartNumber><Size>65536</Size>") != NULL);
    T_CHECK(strstr(s, "<PartNumber>2</PartNumber><Size>1</Size>") != NULL);
    s3s_buf_reset(&out);

    /* The UploadId gets the suffix, escaped as XML text. */
    T_OK(s3s_listing_upload_id(
        S3S_CUR_LIT("<InitiateMultipartUploadResult><Bucket>b</Bucket><Key>k</Key>"
                    "<UploadId>2~abc</UploadId></InitiateMultipartUploadResult>"),
        S3S_CUR_LIT("~s3seal~1~1~<&>"), &out));
    T_OK(s3s_buf_cstr(&out, &s));
    T_CHECK(strstr(s, "<UploadId>2~abc~s3seal~1~1~&lt;&amp;&gt;</UploadId>") != NULL);
    s3s_buf_reset(&out);
    T_ERR(s3s_listing_upload_id(S3S_CUR_LIT("<InitiateMultipartUploadResult/>"),
                                S3S_CUR_LIT("~x"), &out),
          S3S_ERR_BAD_GATEWAY);

    /* The parts named by CompleteMultipartUpload, and the multipart ETag:
     * MD5 of the parts' binary MD5s (here two parts whose ETags are the MD5s
     * of "a" and "b"), "-2". */
    uint32_t nums[4];
    size_t n = 0;
    char etag[48];
    T_OK(s3s_xml_complete_parts(
        S3S_CUR_LIT("<CompleteMultipartUpload><Part><PartNumber>1</PartNumber>"
                    "<ETag>\"0cc175b9c0f1b6a831c399e269772661\"</ETag></Part>"
                    "<Part><ETag>92eb5ffee6ae2fec3ad71c777531578f</ETag><PartNumber>2"
                    "</PartNumber></Part></CompleteMultipartUpload>"),
        nums, 4, &n, etag));
    T_CHECK(n == 2 && nums[0] == 1 && nums[1] == 2);
    T_STREQ(etag, "96e024ba2074fe77e8e965ba43a704be-2");
    T_ERR(s3s_xml_complete_parts(S3S_CUR_LIT("<CompleteMultipartUpload><Part><PartNumber>x"
                                             "</PartNumber></Part></CompleteMultipartUpload>"),
                                 nums, 4, &n, etag),
          S3S_ERR_MALFORMED_XML);
    T_ERR(s3s_xml_complete_parts(S3S_CUR_LIT("<nope"), nums, 4, &n, etag), S3S_ERR_MALFORMED_XML);
    T_OK(s3s_listing_complete_etag(
        S3S_CUR_LIT("<CompleteMultipartUploadResult><ETag></ETag></CompleteMultipartUploadResult>"),
        "abc-2", &out));
    T_OK(s3s_buf_cstr(&out, &s));
    T_CHECK(strstr(s, "<ETag>\"abc-2\"</ETag>") != NULL || strstr(s, "&quot;abc-2&quot;"));
    s3s_buf_reset(&out);
    /* A ListParts page: sizes by part number, truncation and the marker. */
    uint64_t sizes[10001];
    for (size_t i = 0; i <= 10000; i++) {
        sizes[i] = UINT64_MAX;
    }
    bool truncated = false;
    uint32_t next = 0;
    T_OK(s3s_xml_parts_page(
        S3S_CUR_LIT("<ListPartsResult><IsTruncated>true</IsTruncated><NextPartNumberMarker>3"
                    "</NextPartNumberMarker><Part><PartNumber>3</PartNumber><Size>44</Size>"
                    "</Part></ListPartsResult>"),
        sizes, &truncated, &next));
    T_CHECK(truncated && next == 3 && sizes[3] == 44 && sizes[1] == UINT64_MAX);
    s3s_buf_reset(&out);
    T_ERR(s3s_listing_plain_sizes(S3S_CUR_LIT("<not xml"), &out), S3S_ERR_BAD_GATEWAY);
    s3s_buf_clean_up(&out);
    xmlCleanupParser();
    return t_finish("proxy.listing");
}
