/*
 * xml.c - S3 XML documents that s3seal writes itself (errors, bucket
 * encryption), through libxml2's text writer, which does the escaping.
 */
#include <libxml/xmlwriter.h>
#include <string.h>

#include "proxy/proxy.h"

s3s_result s3s_xml_write(struct s3s_buf *out, s3s_xml_fill_fn fill, const void *ctx)
{
    s3s_result result = s3s_err(S3S_ERR_INTERNAL);
    xmlBufferPtr buf = xmlBufferCreate();
    xmlTextWriterPtr w = buf ? xmlNewTextWriterMemory(buf, 0) : NULL;
    if (w && xmlTextWriterStartDocument(w, "1.0", "UTF-8", NULL) >= 0 && fill(w, ctx) &&
        xmlTextWriterEndDocument(w) >= 0) {
        /* Freeing the writer flushes it into buf. */
        xmlFreeTextWriter(w);
        w = NULL;
        result = s3s_buf_append(out, xmlBufferContent(buf), (size_t)xmlBufferLength(buf));
    }
    if (w) {
        xmlFreeTextWriter(w);
    }
    if (buf) {
        xmlBufferFree(buf);
    }
    return result;
}

struct s_error {
    const char *code, *message, *resource, *request_id;
    const char *const *extra;
};

static bool s_error_fill(xmlTextWriterPtr w, const void *ctx)
{
    const struct s_error *e = ctx;
    if (xmlTextWriterStartElement(w, BAD_CAST "Error") < 0 ||
        xmlTextWriterWriteElement(w, BAD_CAST "Code", BAD_CAST e->code) < 0 ||
        xmlTextWriterWriteElement(w, BAD_CAST "Message", BAD_CAST e->message) < 0) {
        return false;
    }
    for (size_t i = 0; e->extra && e->extra[i] && e->extra[i + 1]; i += 2) {
        if (xmlTextWriterWriteElement(w, BAD_CAST e->extra[i], BAD_CAST e->extra[i + 1]) < 0) {
            return false;
        }
    }
    return !(e->resource &&
             xmlTextWriterWriteElement(w, BAD_CAST "Resource", BAD_CAST e->resource) < 0) &&
           xmlTextWriterWriteElement(w, BAD_CAST "RequestId", BAD_CAST e->request_id) >= 0 &&
           xmlTextWriterEndElement(w) >= 0;
}

s3s_result s3s_xml_error(struct s3s_buf *out, const char *code, const char *message,
                         const char *resource, const char *request_id, const char *const *extra)
{
    const struct s_error e = {code, message, resource, request_id, extra};
    return s3s_xml_write(out, s_error_fill, &e);
}
