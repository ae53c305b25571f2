/*
 * listing.c - object listings (ListObjects, ListObjectsV2,
 * ListObjectVersions) of buckets whose objects s3seal encrypts report
 * plaintext sizes: every <Size> of a <Contents> or <Version> entry that is a
 * possible ciphertext size is replaced by its plaintext size, computed from
 * the format's fixed per-segment overhead, without a request per object.
 * libxml2 parses and writes the document.
 */
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <stdio.h>
#include <string.h>

#include "proxy/proxy.h"

static void s_walk(xmlNode *n, uint32_t segment_size, size_t *changed)
{
    for (; n; n = n->next) {
        if (n->type != XML_ELEMENT_NODE) {
            continue;
        }
        if (xmlStrEqual(n->name, BAD_CAST "Size") && n->parent &&
            (xmlStrEqual(n->parent->name, BAD_CAST "Contents") ||
             xmlStrEqual(n->parent->name, BAD_CAST "Version"))) {
            xmlChar *text = xmlNodeGetContent(n);
            uint64_t cipher = 0, plain = 0;
            if (text && s3s_is_ok(s3s_parse_u64(s3s_cur_from_str((const char *)text),
                                                UINT64_MAX / 2, &cipher)) &&
                s3s_is_ok(s3s_sse_plain_size(cipher, segment_size, &plain))) {
                char num[24];
                snprintf(num, sizeof(num), "%llu", (unsigned long long)plain);
                xmlNodeSetContent(n, BAD_CAST num);
                (*changed)++;
            }
            xmlFree(text);
            continue;
        }
        s_walk(n->children, segment_size, changed);
    }
}

s3s_result s3s_listing_plain_sizes(struct s3s_cur xml, struct s3s_buf *out)
{
    S3S_ENSURE(xml.len < INT32_MAX, S3S_ERR_TOO_BIG);
    xmlDoc *doc = xmlReadMemory((const char *)xml.ptr, (int)xml.len, "listing.xml", NULL,
                                XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
    S3S_ENSURE(doc != NULL, S3S_ERR_BAD_GATEWAY);
    size_t changed = 0;
    s_walk(xmlDocGetRootElement(doc), S3S_SSE_SEGMENT_SIZE, &changed);
    xmlChar *mem = NULL;
    int len = 0;
    xmlDocDumpMemoryEnc(doc, &mem, &len, "UTF-8");
    s3s_result r = mem ? s3s_buf_append(out, mem, (size_t)len) : s3s_err(S3S_ERR_NOMEM);
    xmlFree(mem);
    xmlFreeDoc(doc);
    return r;
}
