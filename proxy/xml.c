/*
 * xml.c - S3 XML documents that s3seal writes itself (errors), through
 * libxml2's text writer, which does the escaping.
 */
#include <libxml/xmlwriter.h>
#include <string.h>

#include "proxy/proxy.h"

s3s_result s3s_xml_error(struct s3s_buf *out, const char *code, const char *message,
                         const char *resource, const char *request_id, const char *const *extra)
{
    s3s_result result = s3s_err(S3S_ERR_INTERNAL);
    xmlBufferPtr buf = xmlBufferCreate();
    xmlTextWriterPtr w = buf ? xmlNewTextWriterMemory(buf, 0) : NULL;
    if (!w) {
        goto cleanup;
    }
    if (xmlTextWriterStartDocument(w, "1.0", "UTF-8", NULL) < 0 ||
        xmlTextWriterStartElement(w, BAD_CAST "Error") < 0 ||
        xmlTextWriterWriteElement(w, BAD_CAST "Code", BAD_CAST code) < 0 ||
        xmlTextWriterWriteElement(w, BAD_CAST "Message", BAD_CAST message) < 0) {
        goto cleanup;
    }
    for (size_t i = 0; extra && extra[i] && extra[i + 1]; i += 2) {
        if (xmlTextWriterWriteElement(w, BAD_CAST extra[i], BAD_CAST extra[i + 1]) < 0) {
            goto cleanup;
        }
    }
    if ((resource && xmlTextWriterWriteElement(w, BAD_CAST "Resource", BAD_CAST resource) < 0) ||
        xmlTextWriterWriteElement(w, BAD_CAST "RequestId", BAD_CAST request_id) < 0 ||
        xmlTextWriterEndElement(w) < 0 || xmlTextWriterEndDocument(w) < 0) {
        goto cleanup;
    }
    xmlFreeTextWriter(w);
    w = NULL;
    result = s3s_buf_append(out, xmlBufferContent(buf), (size_t)xmlBufferLength(buf));

cleanup:
    if (w) {
        xmlFreeTextWriter(w);
    }
    if (buf) {
        xmlBufferFree(buf);
    }
    return result;
}
