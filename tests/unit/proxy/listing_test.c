/*
 * listing_test.c - listing sizes: every <Size> of <Contents> and <Version>
 * that is a possible ciphertext size becomes its plaintext size; impossible
 * sizes (plain objects), other elements and the rest of the document stay.
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
        "<Contents><Key>plain</Key><Size>65560</Size></Contents>"
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
    T_CHECK(strstr(s, "<ETag>&quot;x&quot;</ETag>") != NULL || strstr(s, "<ETag>\"x\"</ETag>"));
    s3s_buf_reset(&out);
    T_ERR(s3s_listing_plain_sizes(S3S_CUR_LIT("<not xml"), &out), S3S_ERR_BAD_GATEWAY);
    s3s_buf_clean_up(&out);
    xmlCleanupParser();
    return t_finish("proxy.listing");
}
