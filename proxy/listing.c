/*
 * listing.c - backend answers whose XML s3seal rewrites, parsed and written
 * with libxml2:
 * - object listings (ListObjects, ListObjectsV2, ListObjectVersions) of
 *   buckets whose objects s3seal encrypts report plaintext sizes: every
 *   <Size> of a <Contents> or <Version> entry that is a possible ciphertext
 *   size is replaced by its plaintext size, computed from the format's fixed
 *   per-segment overhead (that of the multipart layout when the entry's ETag
 *   is a multipart one, "...-N"), without a request per object. The ETag of
 *   such a single-part entry is the MD5 of its ciphertext, not of the data a
 *   GET returns, so it is marked as no MD5 at all ("...-1", the form S3
 *   gives ETags that are not an MD5 of the data): tools that compare listing
 *   ETags with local MD5s (rclone, s3cmd sync) then ask HEAD, which gives
 *   the plaintext's MD5 where s3seal stored it;
 * - ListParts of an encrypted upload: each <Part>'s <Size>, likewise;
 * - CreateMultipartUpload: the <UploadId> gets s3seal's suffix (sse_mpu.c);
 * - ListMultipartUploads: each <Upload>'s <UploadId> becomes s3seal's id where
 *   the upload registry knows the upload (upload_reg.c).
 */
#include <libxml/parser.h>
#include <openssl/evp.h>
#include <libxml/tree.h>
#include <stdio.h>
#include <string.h>

#include "keystore/keystore.h"
#include "proxy/proxy.h"

/* A page holds at most 1000 uploads (max-uploads) or objects (max-keys);
 * a little slack. */
#define S_MAX_UPLOADS 10000
#define S_MAX_LISTED 10000

static xmlNode *s_child(xmlNode *parent, const char *name)
{
    for (xmlNode *n = parent->children; n; n = n->next) {
        if (n->type == XML_ELEMENT_NODE && xmlStrEqual(n->name, BAD_CAST name)) {
            return n;
        }
    }
    return NULL;
}

/* A multipart object's ETag: "<hex>-<parts>". */
static bool s_multipart_etag(xmlNode *entry)
{
    xmlNode *etag = s_child(entry, "ETag");
    xmlChar *text = etag ? xmlNodeGetContent(etag) : NULL;
    bool mp = text && strchr((const char *)text, '-') != NULL;
    xmlFree(text);
    return mp;
}

/* Marks a single-part entry's ETag as no MD5 of the data ("hex" ->
 * "hex-1"). */
static void s_mark_etag(xmlNode *entry)
{
    xmlNode *etag = s_child(entry, "ETag");
    xmlChar *text = etag ? xmlNodeGetContent(etag) : NULL;
    size_t n = text ? strlen((const char *)text) : 0;
    if (n >= 2 && n < 64 && text[0] == '"' && text[n - 1] == '"') {
        char marked[80];
        snprintf(marked, sizeof(marked), "&quot;%.*s-1&quot;", (int)(n - 2),
                 (const char *)text + 1);
        xmlNodeSetContent(etag, BAD_CAST marked);
    }
    xmlFree(text);
}

/* Replaces the entry's <Size> by the plaintext size, if it is a possible
 * ciphertext size; true if it did. */
static bool s_plain_size(xmlNode *entry, bool multipart)
{
    xmlNode *size = s_child(entry, "Size");
    xmlChar *text = size ? xmlNodeGetContent(size) : NULL;
    uint64_t cipher = 0, plain = 0;
    bool done = false;
    if (text &&
        s3s_is_ok(s3s_parse_u64(s3s_cur_from_str((const char *)text), UINT64_MAX / 2, &cipher)) &&
        s3s_is_ok(s3s_sse_plain_size_x(cipher, S3S_SSE_SEGMENT_SIZE,
                                       s3s_sse_overhead(multipart), &plain))) {
        char num[24];
        snprintf(num, sizeof(num), "%llu", (unsigned long long)plain);
        xmlNodeSetContent(size, BAD_CAST num);
        done = true;
    }
    xmlFree(text);
    return done;
}

enum s_kind { S_LISTING, S_LIST_PARTS };

static void s_walk(xmlNode *n, enum s_kind kind)
{
    for (; n; n = n->next) {
        if (n->type != XML_ELEMENT_NODE) {
            continue;
        }
        if (kind == S_LISTING && (xmlStrEqual(n->name, BAD_CAST "Contents") ||
                                  xmlStrEqual(n->name, BAD_CAST "Version"))) {
            bool multipart = s_multipart_etag(n);
            if (s_plain_size(n, multipart) && !multipart) {
                s_mark_etag(n);
            }
            continue;
        }
        if (kind == S_LIST_PARTS && xmlStrEqual(n->name, BAD_CAST "Part")) {
            s_plain_size(n, true);
            continue;
        }
        s_walk(n->children, kind);
    }
}

/* The child `name` of the document's root, if the root is `root_name`. */
static xmlNode *s_root_child(xmlDoc *doc, const char *root_name, const char *name)
{
    xmlNode *root = xmlDocGetRootElement(doc);
    return root && xmlStrEqual(root->name, BAD_CAST root_name) ? s_child(root, name) : NULL;
}

/* An XML document, parsed without network access or messages:
 * S3S_ERR_TOO_BIG past libxml2's int lengths, `malformed` for what does
 * not parse. */
static s3s_result s_read(struct s3s_cur xml, enum s3s_error malformed, xmlDoc **doc)
{
    *doc = NULL;
    S3S_ENSURE(xml.len < INT32_MAX, S3S_ERR_TOO_BIG);
    *doc = xmlReadMemory((const char *)xml.ptr, (int)xml.len, "document.xml", NULL,
                         XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
    S3S_ENSURE(*doc != NULL, malformed);
    return s3s_ok();
}

/* A client's body that s3seal decides on and the backend then reads
 * itself: nothing in it may read one way here and another there. A DTD
 * (entities the two parsers may expand differently) is refused, as are, by
 * s_only_child, repeated elements where one is expected (one parser may
 * take the first, another the last). MalformedXML, as S3 answers. */
static s3s_result s_read_body(struct s3s_cur xml, xmlDoc **doc)
{
    S3S_GUARD(s_read(xml, S3S_ERR_MALFORMED_XML, doc));
    if ((*doc)->intSubset || (*doc)->extSubset) {
        xmlFreeDoc(*doc);
        *doc = NULL;
        S3S_BAIL(S3S_ERR_MALFORMED_XML);
    }
    return s3s_ok();
}

/* The child element `name`, if there is exactly one. */
static xmlNode *s_only_child(xmlNode *parent, const char *name)
{
    xmlNode *found = NULL;
    for (xmlNode *n = parent ? parent->children : NULL; n; n = n->next) {
        if (n->type == XML_ELEMENT_NODE && xmlStrEqual(n->name, BAD_CAST name)) {
            if (found) {
                return NULL;
            }
            found = n;
        }
    }
    return found;
}

/* A backend's answer: one that does not parse is a bad gateway. */
static s3s_result s_parse(struct s3s_cur xml, xmlDoc **doc)
{
    return s_read(xml, S3S_ERR_BAD_GATEWAY, doc);
}

/* Writes the document and frees it. */
static s3s_result s_dump(xmlDoc *doc, struct s3s_buf *out)
{
    xmlChar *mem = NULL;
    int len = 0;
    xmlDocDumpMemoryEnc(doc, &mem, &len, "UTF-8");
    s3s_result r = mem ? s3s_buf_append(out, mem, (size_t)len) : s3s_err(S3S_ERR_NOMEM);
    xmlFree(mem);
    xmlFreeDoc(doc);
    return r;
}

static s3s_result s_rewrite_sizes(struct s3s_cur xml, enum s_kind kind, struct s3s_buf *out)
{
    xmlDoc *doc = NULL;
    S3S_GUARD(s_parse(xml, &doc));
    s_walk(xmlDocGetRootElement(doc), kind);
    return s_dump(doc, out);
}

s3s_result s3s_listing_plain_sizes(struct s3s_cur xml, struct s3s_buf *out)
{
    return s_rewrite_sizes(xml, S_LISTING, out);
}

s3s_result s3s_listparts_plain_sizes(struct s3s_cur xml, struct s3s_buf *out)
{
    return s_rewrite_sizes(xml, S_LIST_PARTS, out);
}

s3s_result s3s_listing_upload_id(struct s3s_cur xml, struct s3s_cur suffix, struct s3s_buf *out)
{
    xmlDoc *doc = NULL;
    S3S_GUARD(s_parse(xml, &doc));
    xmlNode *root = xmlDocGetRootElement(doc);
    xmlNode *id = root ? s_child(root, "UploadId") : NULL;
    xmlChar *text = id ? xmlNodeGetContent(id) : NULL;
    struct s3s_buf v;
    s3s_result r = s3s_buf_init(&v, 0, 8192);
    if (s3s_is_ok(r) && !(text && text[0])) {
        r = s3s_err(S3S_ERR_BAD_GATEWAY);
    }
    if (s3s_is_ok(r) && suffix.len && suffix.ptr[suffix.len - 1] == '~') {
        /* Not bound to the backend's id (sse_mpu.c): never handed out. */
        r = s3s_err(S3S_ERR_INTERNAL);
    }
    if (s3s_is_ok(r)) {
        r = s3s_buf_append_str(&v, (const char *)text);
    }
    if (s3s_is_ok(r)) {
        r = s3s_buf_append_cur(&v, suffix);
    }
    const char *value = NULL;
    if (s3s_is_ok(r)) {
        r = s3s_buf_cstr(&v, &value);
    }
    if (s3s_is_ok(r)) {
        /* xmlNodeSetContent takes entity-encoded text: escape the value. */
        xmlChar *escaped = xmlEncodeSpecialChars(doc, BAD_CAST value);
        xmlNodeSetContent(id, escaped);
        xmlFree(escaped);
    }
    xmlFree(text);
    s3s_buf_clean_up(&v);
    if (s3s_failed(r)) {
        xmlFreeDoc(doc);
        return r;
    }
    return s_dump(doc, out);
}

/* The unsigned number an element holds; false if it holds none. */
static bool s_number(xmlNode *n, uint64_t max, uint64_t *out)
{
    xmlChar *text = n ? xmlNodeGetContent(n) : NULL;
    bool ok = text && s3s_is_ok(s3s_parse_u64(s3s_cur_trim(s3s_cur_from_str((const char *)text)),
                                              max, out));
    xmlFree(text);
    return ok;
}

s3s_result s3s_xml_parts_page(struct s3s_cur xml, uint64_t *sizes, bool *truncated,
                              uint32_t *next_marker)
{
    xmlDoc *doc = NULL;
    S3S_GUARD(s_parse(xml, &doc));
    xmlNode *root = xmlDocGetRootElement(doc);
    s3s_result r = s3s_ok();
    uint64_t v = 0;
    if (!root || !xmlStrEqual(root->name, BAD_CAST "ListPartsResult")) {
        r = s3s_err(S3S_ERR_BAD_GATEWAY);
    }
    *truncated = false;
    *next_marker = 0;
    for (xmlNode *n = root ? root->children : NULL; s3s_is_ok(r) && n; n = n->next) {
        if (n->type != XML_ELEMENT_NODE) {
            continue;
        }
        if (xmlStrEqual(n->name, BAD_CAST "IsTruncated")) {
            xmlChar *text = xmlNodeGetContent(n);
            *truncated = text && xmlStrEqual(text, BAD_CAST "true");
            xmlFree(text);
        } else if (xmlStrEqual(n->name, BAD_CAST "NextPartNumberMarker")) {
            if (s_number(n, 10000, &v)) {
                *next_marker = (uint32_t)v;
            }
        } else if (xmlStrEqual(n->name, BAD_CAST "Part")) {
            uint64_t num = 0, size = 0;
            if (!s_number(s_child(n, "PartNumber"), 10000, &num) || num == 0 ||
                !s_number(s_child(n, "Size"), UINT64_MAX / 2, &size)) {
                r = s3s_err(S3S_ERR_BAD_GATEWAY);
                break;
            }
            sizes[num] = size;
        }
    }
    xmlFreeDoc(doc);
    return r;
}

/* Adds a part's ETag ("<32 hex>", quoted or not) to the multipart ETag's
 * digest. */
static bool s_etag_digest(EVP_MD_CTX *md5, xmlNode *etag)
{
    xmlChar *text = etag ? xmlNodeGetContent(etag) : NULL;
    struct s3s_cur v = {0};
    if (text) {
        v = s3s_cur_trim(s3s_cur_from_str((const char *)text));
    }
    v = s3s_cur_unquote(v);
    uint8_t bin[16];
    bool ok = s3s_hex_decode(v, bin, 16) && EVP_DigestUpdate(md5, bin, 16) == 1;
    xmlFree(text);
    return ok;
}

s3s_result s3s_xml_complete_parts(struct s3s_cur xml, uint32_t *numbers, size_t cap, size_t *n,
                                  char etag[48])
{
    etag[0] = '\0';
    xmlDoc *doc = NULL;
    S3S_GUARD(s_read_body(xml, &doc));
    EVP_MD_CTX *md5 = EVP_MD_CTX_new();
    if (!md5 || EVP_DigestInit_ex(md5, EVP_md5(), NULL) != 1) {
        EVP_MD_CTX_free(md5);
        xmlFreeDoc(doc);
        S3S_BAIL(S3S_ERR_NOMEM);
    }
    bool etags_ok = true;
    xmlNode *root = xmlDocGetRootElement(doc);
    s3s_result r = s3s_ok();
    if (!root || !xmlStrEqual(root->name, BAD_CAST "CompleteMultipartUpload")) {
        r = s3s_err(S3S_ERR_MALFORMED_XML);
    }
    *n = 0;
    for (xmlNode *c = root ? root->children : NULL; s3s_is_ok(r) && c; c = c->next) {
        if (c->type != XML_ELEMENT_NODE || !xmlStrEqual(c->name, BAD_CAST "Part")) {
            continue;
        }
        uint64_t num = 0;
        if (!s_number(s_only_child(c, "PartNumber"), 10000, &num) || num == 0 || *n == cap) {
            r = s3s_err(S3S_ERR_MALFORMED_XML);
            break;
        }
        numbers[(*n)++] = (uint32_t)num;
        etags_ok = etags_ok && s_etag_digest(md5, s_only_child(c, "ETag"));
    }
    xmlFreeDoc(doc);
    /* The multipart ETag: MD5 of the parts' binary MD5s, "-" and their count. */
    uint8_t d[16];
    unsigned int dl = 0;
    if (s3s_is_ok(r) && etags_ok && *n && EVP_DigestFinal_ex(md5, d, &dl) == 1) {
        static const char hex[] = "0123456789abcdef";
        for (int i = 0; i < 16; i++) {
            etag[2 * i] = hex[d[i] >> 4];
            etag[2 * i + 1] = hex[d[i] & 15];
        }
        snprintf(etag + 32, 16, "-%zu", *n);
    }
    EVP_MD_CTX_free(md5);
    return r;
}

s3s_result s3s_xml_delete_keys(struct s3s_cur xml, s3s_xml_key_fn fn, void *ctx)
{
    S3S_ENSURE(xml.len < INT32_MAX, S3S_ERR_MALFORMED_XML);
    xmlDoc *doc = NULL;
    S3S_GUARD(s_read_body(xml, &doc));
    xmlNode *root = xmlDocGetRootElement(doc);
    s3s_result r = root && xmlStrEqual(root->name, BAD_CAST "Delete")
                       ? s3s_ok()
                       : s3s_err(S3S_ERR_MALFORMED_XML);
    size_t n = 0;
    for (xmlNode *c = root ? root->children : NULL; s3s_is_ok(r) && c; c = c->next) {
        if (c->type != XML_ELEMENT_NODE || !xmlStrEqual(c->name, BAD_CAST "Object")) {
            continue;
        }
        xmlNode *k = s_only_child(c, "Key");
        xmlChar *text = k ? xmlNodeGetContent(k) : NULL;
        /* A version named (once) is deleted for good. */
        bool version = s_child(c, "VersionId") != NULL;
        /* S3: at most 1000 keys, each named. */
        if (!text || !text[0] || ++n > 1000 || (version && !s_only_child(c, "VersionId"))) {
            r = s3s_err(S3S_ERR_MALFORMED_XML);
        } else {
            r = fn(ctx, s3s_cur_from_str((const char *)text), version);
        }
        xmlFree(text);
    }
    xmlFreeDoc(doc);
    return s3s_is_ok(r) && n == 0 ? s3s_err(S3S_ERR_MALFORMED_XML) : r;
}

/* The text of the one child element `name`, as is, or NULL (xmlFree it). */
static xmlChar *s_child_text(xmlNode *parent, const char *name)
{
    xmlNode *n = s_only_child(parent, name);
    return n ? xmlNodeGetContent(n) : NULL;
}

bool s3s_xml_acl_owner_only(struct s3s_cur xml)
{
    xmlDoc *doc = NULL;
    if (xml.len == 0 || s3s_failed(s_read_body(xml, &doc))) {
        return false;
    }
    xmlNode *root = xmlDocGetRootElement(doc);
    bool ok = root && xmlStrEqual(root->name, BAD_CAST "AccessControlPolicy");
    xmlChar *owner = ok ? s_child_text(s_only_child(root, "Owner"), "ID") : NULL;
    xmlNode *list = ok ? s_only_child(root, "AccessControlList") : NULL;
    ok = owner && owner[0] && list;
    size_t grants = 0;
    for (xmlNode *g = list ? list->children : NULL; ok && g; g = g->next) {
        if (g->type != XML_ELEMENT_NODE) {
            continue;
        }
        xmlNode *grantee =
            xmlStrEqual(g->name, BAD_CAST "Grant") ? s_only_child(g, "Grantee") : NULL;
        xmlChar *type = grantee ? xmlGetNsProp(grantee, BAD_CAST "type",
                                              BAD_CAST "http://www.w3.org/2001/XMLSchema-instance")
                                : NULL;
        xmlChar *id = s_child_text(grantee, "ID");
        xmlChar *perm = s_child_text(g, "Permission");
        /* One grant: FULL_CONTROL to the document's owner, by canonical id. */
        ok = ++grants == 1 && type && xmlStrEqual(type, BAD_CAST "CanonicalUser") && id &&
             xmlStrEqual(id, owner) && perm && xmlStrEqual(perm, BAD_CAST "FULL_CONTROL") &&
             !s_child(grantee, "URI") && !s_child(grantee, "EmailAddress");
        xmlFree(type);
        xmlFree(id);
        xmlFree(perm);
    }
    xmlFree(owner);
    xmlFreeDoc(doc);
    return ok && grants == 1;
}

s3s_result s3s_listing_complete_etag(struct s3s_cur xml, const char *etag, struct s3s_buf *out)
{
    xmlDoc *doc = NULL;
    S3S_GUARD(s_parse(xml, &doc));
    xmlNode *e = s_root_child(doc, "CompleteMultipartUploadResult", "ETag");
    xmlChar *text = e ? xmlNodeGetContent(e) : NULL;
    if (e && etag[0] && !(text && text[0])) {
        char quoted[64];
        snprintf(quoted, sizeof(quoted), "&quot;%s&quot;", etag);
        xmlNodeSetContent(e, BAD_CAST quoted);
    }
    xmlFree(text);
    return s_dump(doc, out);
}

s3s_result s3s_xml_copy_etag(struct s3s_cur xml, struct s3s_buf *etag)
{
    xmlDoc *doc = NULL;
    S3S_GUARD(s_parse(xml, &doc));
    xmlNode *e = s_root_child(doc, "CopyObjectResult", "ETag");
    xmlChar *text = e ? xmlNodeGetContent(e) : NULL;
    s3s_result r = text ? s3s_buf_append_str(etag, (const char *)text) : s3s_ok();
    xmlFree(text);
    xmlFreeDoc(doc);
    return r;
}

s3s_result s3s_xml_copy_set_etag(struct s3s_cur xml, const char *etag, struct s3s_buf *out)
{
    xmlDoc *doc = NULL;
    S3S_GUARD(s_parse(xml, &doc));
    xmlNode *e = s_root_child(doc, "CopyObjectResult", "ETag");
    if (e) {
        char quoted[S3S_KEYSTORE_ETAG_MAX + 16];
        snprintf(quoted, sizeof(quoted), "&quot;%s&quot;", etag);
        xmlNodeSetContent(e, BAD_CAST quoted);
    }
    return s_dump(doc, out);
}

bool s3s_xml_is_complete_result(struct s3s_cur xml)
{
    xmlDoc *doc = NULL;
    if (s3s_failed(s_parse(xml, &doc))) {
        return false;
    }
    xmlNode *root = xmlDocGetRootElement(doc);
    bool yes = root && xmlStrEqual(root->name, BAD_CAST "CompleteMultipartUploadResult");
    xmlFreeDoc(doc);
    return yes;
}

s3s_result s3s_xml_complete_etag(struct s3s_cur xml, struct s3s_buf *etag)
{
    xmlDoc *doc = NULL;
    S3S_GUARD(s_parse(xml, &doc));
    xmlNode *e = s_root_child(doc, "CompleteMultipartUploadResult", "ETag");
    xmlChar *text = e ? xmlNodeGetContent(e) : NULL;
    s3s_result r = text ? s3s_buf_append_str(etag, (const char *)text) : s3s_ok();
    xmlFree(text);
    xmlFreeDoc(doc);
    return r;
}

s3s_result s3s_xml_upload_id(struct s3s_cur xml, struct s3s_buf *id)
{
    xmlDoc *doc = NULL;
    S3S_GUARD(s_parse(xml, &doc));
    xmlNode *n = s_root_child(doc, "InitiateMultipartUploadResult", "UploadId");
    xmlChar *text = n ? xmlNodeGetContent(n) : NULL;
    s3s_result r = text && text[0] ? s3s_buf_append_str(id, (const char *)text)
                                   : s3s_err(S3S_ERR_BAD_GATEWAY);
    xmlFree(text);
    xmlFreeDoc(doc);
    return r;
}

/* Is the page's EncodingType "url" (its keys percent-encoded)? */
static bool s_url_encoded(xmlNode *root)
{
    xmlNode *enc = s_child(root, "EncodingType");
    xmlChar *et = enc ? xmlNodeGetContent(enc) : NULL;
    bool url = et && xmlStrEqual(et, BAD_CAST "url");
    xmlFree(et);
    return url;
}

/* A page's key as the client named it: decoded into `decoded` on a
 * URL-encoded page. */
static s3s_result s_page_key(const xmlChar *text, bool url, struct s3s_buf *decoded,
                             struct s3s_cur *key)
{
    *key = s3s_cur_from_str((const char *)text);
    if (url) {
        S3S_GUARD(s3s_buf_init(decoded, 0, 4096));
        S3S_GUARD(s3s_percent_decode(*key, false, true, decoded));
        *key = s3s_buf_cur(decoded);
    }
    return s3s_ok();
}

/* One <Contents> or <Version> of a listing page. */
struct s_listed {
    xmlNode *node;
    xmlChar *key, *etag;
    struct s3s_buf decoded; /* the key, when the page is URL-encoded */
};

/* An ETag's text without its quotes. */
static struct s3s_cur s_unquoted(const xmlChar *text)
{
    return s3s_cur_unquote(s3s_cur_from_str(text ? (const char *)text : ""));
}

static s3s_result s_collect_listed(xmlNode *root, bool url, struct s_listed *ls, size_t cap,
                                   struct s3s_keystore_entry_ref *refs, size_t *n)
{
    *n = 0;
    for (xmlNode *c = root->children; c; c = c->next) {
        if (c->type != XML_ELEMENT_NODE || (!xmlStrEqual(c->name, BAD_CAST "Contents") &&
                                            !xmlStrEqual(c->name, BAD_CAST "Version"))) {
            continue;
        }
        xmlNode *k = s_child(c, "Key"), *e = s_child(c, "ETag");
        if (!k || !e || !s_child(c, "Size")) {
            continue;
        }
        S3S_ENSURE(*n < cap, S3S_ERR_BAD_GATEWAY);
        struct s_listed *l = &ls[(*n)++];
        l->node = c;
        l->key = xmlNodeGetContent(k);
        l->etag = xmlNodeGetContent(e);
        S3S_ENSURE(l->key && l->etag, S3S_ERR_NOMEM);
        struct s3s_cur key;
        S3S_GUARD(s_page_key(l->key, url, &l->decoded, &key));
        refs[*n - 1] = (struct s3s_keystore_entry_ref){.key = key, .etag = s_unquoted(l->etag)};
    }
    return s3s_ok();
}

/* An entry's Size and ETag from its catalog entry. */
static s3s_result s_listed_set(xmlNode *node, const struct s3s_keystore_entry *e)
{
    char num[24], quoted[S3S_KEYSTORE_ETAG_MAX + 16];
    snprintf(num, sizeof(num), "%llu", (unsigned long long)e->size);
    xmlNodeSetContent(s_child(node, "Size"), BAD_CAST num);
    /* Plain characters only (keystore.h): no escaping beyond the quotes. */
    snprintf(quoted, sizeof(quoted), "&quot;%s&quot;", e->plain_etag);
    xmlNodeSetContent(s_child(node, "ETag"), BAD_CAST quoted);
    return s3s_ok();
}

s3s_result s3s_listing_catalog(struct s3s_cur xml, s3s_entries_lookup_fn lookup, void *ctx,
                               struct s3s_buf *out)
{
    xmlDoc *doc = NULL;
    S3S_GUARD(s_parse(xml, &doc));
    xmlNode *root = xmlDocGetRootElement(doc);
    size_t cap = 0;
    bool listing = root && (xmlStrEqual(root->name, BAD_CAST "ListBucketResult") ||
                            xmlStrEqual(root->name, BAD_CAST "ListVersionsResult"));
    for (xmlNode *c = listing ? root->children : NULL; c; c = c->next) {
        cap += c->type == XML_ELEMENT_NODE && (xmlStrEqual(c->name, BAD_CAST "Contents") ||
                                               xmlStrEqual(c->name, BAD_CAST "Version"));
    }
    if (cap == 0 || cap > S_MAX_LISTED) {
        xmlFreeDoc(doc);
        return cap == 0 ? s3s_buf_append_cur(out, xml) : s3s_err(S3S_ERR_BAD_GATEWAY);
    }
    bool url = s_url_encoded(root);
    struct s_listed *ls = s3s_calloc(cap, sizeof(*ls));
    struct s3s_keystore_entry_ref *refs = s3s_calloc(cap, sizeof(*refs));
    size_t n = 0;
    s3s_result r = ls && refs ? s_collect_listed(root, url, ls, cap, refs, &n)
                              : s3s_err(S3S_ERR_NOMEM);
    if (s3s_is_ok(r)) {
        r = lookup(ctx, refs, n);
    }
    for (size_t i = 0; s3s_is_ok(r) && i < n; i++) {
        if (refs[i].found) {
            r = s_listed_set(ls[i].node, &refs[i].entry);
        }
    }
    for (size_t i = 0; ls && i < n; i++) {
        xmlFree(ls[i].key);
        xmlFree(ls[i].etag);
        s3s_buf_clean_up(&ls[i].decoded);
    }
    s3s_free(&ls);
    s3s_free(&refs);
    if (s3s_failed(r)) {
        xmlFreeDoc(doc);
        return r;
    }
    return s_dump(doc, out);
}

/* One <Upload> of a ListMultipartUploads page. */
struct s_upload {
    xmlNode *id_node;
    xmlChar *key, *id;
    struct s3s_buf decoded; /* the key, when the page is URL-encoded */
};

static s3s_result s_collect_uploads(xmlNode *root, bool url, struct s_upload *ups, size_t cap,
                                    struct s3s_keystore_upload_ref *refs, size_t *n)
{
    *n = 0;
    for (xmlNode *c = root->children; c; c = c->next) {
        if (c->type != XML_ELEMENT_NODE || !xmlStrEqual(c->name, BAD_CAST "Upload")) {
            continue;
        }
        xmlNode *k = s_child(c, "Key"), *i = s_child(c, "UploadId");
        if (!k || !i) {
            continue;
        }
        S3S_ENSURE(*n < cap, S3S_ERR_BAD_GATEWAY);
        struct s_upload *u = &ups[*n];
        u->id_node = i;
        u->key = xmlNodeGetContent(k);
        u->id = xmlNodeGetContent(i);
        (*n)++;
        S3S_ENSURE(u->key && u->id, S3S_ERR_NOMEM);
        struct s3s_cur key;
        S3S_GUARD(s_page_key(u->key, url, &u->decoded, &key));
        refs[*n - 1].key = key;
        refs[*n - 1].upload_id = s3s_cur_from_str((const char *)u->id);
        refs[*n - 1].suffix = NULL;
    }
    return s3s_ok();
}


s3s_result s3s_listing_uploads(struct s3s_cur xml, s3s_uploads_lookup_fn lookup, void *ctx,
                               struct s3s_buf *out)
{
    xmlDoc *doc = NULL;
    S3S_GUARD(s_parse(xml, &doc));
    xmlNode *root = xmlDocGetRootElement(doc);
    if (!root || !xmlStrEqual(root->name, BAD_CAST "ListMultipartUploadsResult")) {
        xmlFreeDoc(doc);
        S3S_BAIL(S3S_ERR_BAD_GATEWAY);
    }
    size_t cap = 0;
    for (xmlNode *c = root->children; c; c = c->next) {
        cap += c->type == XML_ELEMENT_NODE && xmlStrEqual(c->name, BAD_CAST "Upload");
    }
    if (cap == 0 || cap > S_MAX_UPLOADS) {
        xmlFreeDoc(doc);
        return cap == 0 ? s3s_buf_append_cur(out, xml) : s3s_err(S3S_ERR_BAD_GATEWAY);
    }
    bool url = s_url_encoded(root);
    struct s_upload *ups = s3s_calloc(cap, sizeof(*ups));
    struct s3s_keystore_upload_ref *refs = s3s_calloc(cap, sizeof(*refs));
    size_t n = 0;
    s3s_result r = ups && refs ? s_collect_uploads(root, url, ups, cap, refs, &n)
                               : s3s_err(S3S_ERR_NOMEM);
    if (s3s_is_ok(r)) {
        r = lookup(ctx, refs, n);
    }
    for (size_t i = 0; s3s_is_ok(r) && i < n; i++) {
        if (!refs[i].suffix) {
            continue;
        }
        struct s3s_buf v;
        const char *value = NULL;
        r = s3s_buf_init(&v, 0, 16384);
        if (s3s_is_ok(r)) {
            r = s3s_buf_append_str(&v, (const char *)ups[i].id);
        }
        if (s3s_is_ok(r)) {
            r = s3s_buf_append_str(&v, refs[i].suffix);
        }
        if (s3s_is_ok(r)) {
            r = s3s_buf_cstr(&v, &value);
        }
        if (s3s_is_ok(r)) {
            /* xmlNodeSetContent takes entity-encoded text. */
            xmlChar *escaped = xmlEncodeSpecialChars(doc, BAD_CAST value);
            xmlNodeSetContent(ups[i].id_node, escaped);
            xmlFree(escaped);
        }
        s3s_buf_clean_up(&v);
    }
    if (refs) {
        s3s_keystore_upload_refs_clean_up(refs, n);
    }
    for (size_t i = 0; ups && i < n; i++) {
        xmlFree(ups[i].key);
        xmlFree(ups[i].id);
        s3s_buf_clean_up(&ups[i].decoded);
    }
    s3s_free(&ups);
    s3s_free(&refs);
    if (s3s_failed(r)) {
        xmlFreeDoc(doc);
        return r;
    }
    return s_dump(doc, out);
}

s3s_result s3s_xml_tagging_header(struct s3s_cur xml, struct s3s_buf *out)
{
    xmlDoc *doc = NULL;
    S3S_GUARD(s_parse(xml, &doc));
    xmlNode *set = s_root_child(doc, "Tagging", "TagSet");
    s3s_result r = set ? s3s_ok() : s3s_err(S3S_ERR_BAD_GATEWAY);
    for (xmlNode *t = set ? set->children : NULL; s3s_is_ok(r) && t; t = t->next) {
        if (t->type != XML_ELEMENT_NODE || !xmlStrEqual(t->name, BAD_CAST "Tag")) {
            continue;
        }
        xmlNode *k = s_child(t, "Key"), *v = s_child(t, "Value");
        xmlChar *kt = k ? xmlNodeGetContent(k) : NULL, *vt = v ? xmlNodeGetContent(v) : NULL;
        if (!kt) {
            r = s3s_err(S3S_ERR_BAD_GATEWAY);
        }
        if (s3s_is_ok(r) && out->len) {
            r = s3s_buf_append_byte(out, '&');
        }
        if (s3s_is_ok(r)) {
            r = s3s_percent_encode(s3s_cur_from_str((const char *)kt), out);
        }
        if (s3s_is_ok(r)) {
            r = s3s_buf_append_byte(out, '=');
        }
        if (s3s_is_ok(r) && vt) {
            r = s3s_percent_encode(s3s_cur_from_str((const char *)vt), out);
        }
        xmlFree(kt);
        xmlFree(vt);
    }
    xmlFreeDoc(doc);
    return r;
}

s3s_result s3s_listing_buckets(struct s3s_cur xml, s3s_bucket_keep_fn keep, void *ctx,
                               struct s3s_buf *out)
{
    xmlDoc *doc = NULL;
    S3S_GUARD(s_parse(xml, &doc));
    xmlNode *buckets = s_root_child(doc, "ListAllMyBucketsResult", "Buckets");
    for (xmlNode *n = buckets ? buckets->children : NULL, *next; n; n = next) {
        next = n->next;
        if (n->type != XML_ELEMENT_NODE || !xmlStrEqual(n->name, BAD_CAST "Bucket")) {
            continue;
        }
        xmlNode *name = s_child(n, "Name");
        xmlChar *text = name ? xmlNodeGetContent(name) : NULL;
        bool kept = text && keep(ctx, s3s_cur_from_str((const char *)text));
        xmlFree(text);
        if (!kept) {
            xmlUnlinkNode(n);
            xmlFreeNode(n);
        }
    }
    return s_dump(doc, out);
}
