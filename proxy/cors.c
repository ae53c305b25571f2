/*
 * cors.c - see cors.h: the CORSConfiguration document (read strictly with
 * libxml2, as the other bodies s3seal decides on: no DTD, no unknown
 * element, MalformedXML for anything that does not follow S3's schema) and
 * the matching of a request against its rules.
 */
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xmlwriter.h>
#include <stdio.h>
#include <string.h>

#include "proxy/cors.h"
#include "proxy/proxy.h"

#define S_NS "http://s3.amazonaws.com/doc/2006-03-01/"
/* AWS bounds a rule's ID at 255 characters; other values (origins, header
 * names) are bounded here so that one rule cannot fill a response head. */
#define S_MAX_ID 255
#define S_MAX_VALUE 1024

static const struct {
    const char *name;
    unsigned bit;
} s_methods[] = {
    {"GET", S3S_CORS_GET},       {"PUT", S3S_CORS_PUT},   {"POST", S3S_CORS_POST},
    {"DELETE", S3S_CORS_DELETE}, {"HEAD", S3S_CORS_HEAD},
};

unsigned s3s_cors_method_bit(struct s3s_cur method)
{
    for (size_t i = 0; i < sizeof(s_methods) / sizeof(s_methods[0]); i++) {
        if (s3s_cur_eq_str(method, s_methods[i].name)) {
            return s_methods[i].bit;
        }
    }
    return 0;
}

/* ------------------------------------------------------------ the config */

static void s_list_clean_up(struct s3s_cors_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        s3s_free(&l->v[i]);
    }
    s3s_free(&l->v);
    l->n = 0;
}

static void s_rule_clean_up(struct s3s_cors_rule *r)
{
    s3s_free(&r->id);
    s_list_clean_up(&r->allowed);
    s_list_clean_up(&r->origins);
    s_list_clean_up(&r->headers);
    s_list_clean_up(&r->expose);
}

void s3s_cors_free(struct s3s_cors_config *c)
{
    if (!c) {
        return;
    }
    for (size_t i = 0; i < c->n; i++) {
        s_rule_clean_up(&c->rules[i]);
    }
    s3s_free(&c->rules);
    s3s_free(&c);
}

static s3s_result s_list_add(struct s3s_cors_list *l, struct s3s_cur v)
{
    char **nv = s3s_realloc(l->v, (l->n + 1) * sizeof(*nv));
    S3S_ENSURE(nv != NULL, S3S_ERR_NOMEM);
    l->v = nv;
    l->v[l->n] = s3s_strndup((const char *)v.ptr, v.len);
    S3S_ENSURE(l->v[l->n] != NULL, S3S_ERR_NOMEM);
    l->n++;
    return s3s_ok();
}

/* An element named `name` in S3's namespace, or in none (hand-written
 * bodies often leave it out). */
static bool s_is(const xmlNode *n, const char *name)
{
    return n->type == XML_ELEMENT_NODE && xmlStrEqual(n->name, BAD_CAST name) &&
           (!n->ns || xmlStrEqual(n->ns->href, BAD_CAST S_NS));
}

static bool s_space(uint8_t c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

/* Comments and whitespace between elements are allowed; other text is
 * not. True for a node to skip. */
static s3s_result s_skip(const xmlNode *n, bool *skip)
{
    *skip = n->type == XML_COMMENT_NODE;
    if (n->type == XML_TEXT_NODE) {
        S3S_ENSURE(xmlIsBlankNode((xmlNode *)n), S3S_ERR_MALFORMED_XML);
        *skip = true;
    }
    return s3s_ok();
}

/* The text of a leaf element without surrounding whitespace, into `out`
 * (at most `max` bytes; no control bytes: values end up in headers). */
static s3s_result s_text(const xmlNode *n, size_t max, struct s3s_buf *out)
{
    for (const xmlNode *c = n->children; c; c = c->next) {
        S3S_ENSURE(c->type == XML_TEXT_NODE || c->type == XML_CDATA_SECTION_NODE ||
                       c->type == XML_COMMENT_NODE,
                   S3S_ERR_MALFORMED_XML);
    }
    xmlChar *t = xmlNodeGetContent(n);
    S3S_ENSURE(t != NULL, S3S_ERR_NOMEM);
    struct s3s_cur v = s3s_cur_from_str((const char *)t);
    while (v.len && s_space(v.ptr[0])) {
        v.ptr++;
        v.len--;
    }
    while (v.len && s_space(v.ptr[v.len - 1])) {
        v.len--;
    }
    bool clean = v.len <= max;
    for (size_t i = 0; clean && i < v.len; i++) {
        clean = v.ptr[i] >= 0x20 && v.ptr[i] != 0x7f;
    }
    s3s_buf_reset(out);
    s3s_result r = clean ? s3s_buf_append_cur(out, v) : s3s_err(S3S_ERR_MALFORMED_XML);
    xmlFree(t);
    return r;
}

static size_t s_stars(struct s3s_cur v)
{
    size_t n = 0;
    for (size_t i = 0; i < v.len; i++) {
        n += v.ptr[i] == '*';
    }
    return n;
}

static s3s_result s_parse_rule(const xmlNode *el, struct s3s_cors_rule *rule,
                               struct s3s_buf *text, char *why, size_t why_len)
{
    bool has_age = false;
    rule->max_age_s = -1;
    for (const xmlNode *n = el->children; n; n = n->next) {
        bool skip = false;
        S3S_GUARD(s_skip(n, &skip));
        if (skip) {
            continue;
        }
        if (s_is(n, "ID")) {
            S3S_ENSURE(rule->id == NULL, S3S_ERR_MALFORMED_XML);
            S3S_GUARD(s_text(n, S_MAX_ID, text));
            rule->id = s3s_strndup((const char *)text->ptr, text->len);
            S3S_ENSURE(rule->id != NULL, S3S_ERR_NOMEM);
        } else if (s_is(n, "AllowedMethod")) {
            S3S_GUARD(s_text(n, S_MAX_VALUE, text));
            struct s3s_cur m = s3s_buf_cur(text);
            unsigned bit = s3s_cors_method_bit(m);
            if (!bit) {
                if (why_len) {
                    snprintf(why, why_len,
                             "Found unsupported HTTP method in CORS config. Unsupported "
                             "method is %.*s",
                             (int)(m.len > 64 ? 64 : m.len), (const char *)m.ptr);
                }
                S3S_BAIL(S3S_ERR_CORS_INVALID);
            }
            rule->methods |= bit;
            S3S_GUARD(s_list_add(&rule->allowed, m));
        } else if (s_is(n, "AllowedOrigin") || s_is(n, "AllowedHeader")) {
            bool origin = s_is(n, "AllowedOrigin");
            S3S_GUARD(s_text(n, S_MAX_VALUE, text));
            struct s3s_cur v = s3s_buf_cur(text);
            if (s_stars(v) > 1) {
                if (why_len) {
                    snprintf(why, why_len, "%s \"%.*s\" can not have more than one wildcard.",
                             origin ? "AllowedOrigin" : "AllowedHeader",
                             (int)(v.len > 256 ? 256 : v.len), (const char *)v.ptr);
                }
                S3S_BAIL(S3S_ERR_CORS_INVALID);
            }
            S3S_GUARD(s_list_add(origin ? &rule->origins : &rule->headers, v));
        } else if (s_is(n, "ExposeHeader")) {
            S3S_GUARD(s_text(n, S_MAX_VALUE, text));
            S3S_GUARD(s_list_add(&rule->expose, s3s_buf_cur(text)));
        } else if (s_is(n, "MaxAgeSeconds")) {
            S3S_ENSURE(!has_age, S3S_ERR_MALFORMED_XML);
            has_age = true;
            S3S_GUARD(s_text(n, 32, text));
            uint64_t age = 0;
            /* xsd:int; a negative age means nothing. */
            S3S_ENSURE(s3s_is_ok(s3s_parse_u64(s3s_buf_cur(text), INT32_MAX, &age)),
                       S3S_ERR_MALFORMED_XML);
            rule->max_age_s = (int64_t)age;
        } else {
            S3S_BAIL(S3S_ERR_MALFORMED_XML);
        }
    }
    /* Both are required by S3's schema. */
    S3S_ENSURE(rule->allowed.n > 0 && rule->origins.n > 0, S3S_ERR_MALFORMED_XML);
    return s3s_ok();
}

/* The rules of a CORSConfiguration document into c (c->n counts every
 * rule begun, so the caller's clean-up frees a half-made one too). */
static s3s_result s_parse_doc(xmlDoc *doc, struct s3s_cors_config *c, struct s3s_buf *text,
                              char *why, size_t why_len)
{
    /* A DTD could declare entities; S3's documents have none. */
    S3S_ENSURE(!doc->intSubset && !doc->extSubset, S3S_ERR_MALFORMED_XML);
    const xmlNode *root = xmlDocGetRootElement(doc);
    S3S_ENSURE(root && s_is(root, "CORSConfiguration"), S3S_ERR_MALFORMED_XML);
    for (const xmlNode *n = root->children; n; n = n->next) {
        bool skip = false;
        S3S_GUARD(s_skip(n, &skip));
        if (skip) {
            continue;
        }
        S3S_ENSURE(s_is(n, "CORSRule"), S3S_ERR_MALFORMED_XML);
        if (c->n == S3S_CORS_MAX_RULES) {
            if (why_len) {
                snprintf(why, why_len,
                         "The CORS configuration must not have more than %d rules.",
                         S3S_CORS_MAX_RULES);
            }
            S3S_BAIL(S3S_ERR_CORS_INVALID);
        }
        struct s3s_cors_rule *nr = s3s_realloc(c->rules, (c->n + 1) * sizeof(*nr));
        S3S_ENSURE(nr != NULL, S3S_ERR_NOMEM);
        c->rules = nr;
        struct s3s_cors_rule *rule = &c->rules[c->n++];
        memset(rule, 0, sizeof(*rule));
        S3S_GUARD(s_parse_rule(n, rule, text, why, why_len));
    }
    S3S_ENSURE(c->n > 0, S3S_ERR_MALFORMED_XML);
    return s3s_ok();
}

s3s_result s3s_cors_parse(struct s3s_cur xml, struct s3s_cors_config **out, char *why,
                          size_t why_len)
{
    *out = NULL;
    if (why_len) {
        why[0] = '\0';
    }
    S3S_ENSURE(xml.len <= S3S_CORS_MAX_BODY, S3S_ERR_MAX_MESSAGE_LENGTH);
    S3S_ENSURE(xml.len > 0 && xml.ptr, S3S_ERR_MALFORMED_XML);
    struct s3s_cors_config *c = s3s_calloc(1, sizeof(*c));
    S3S_ENSURE(c != NULL, S3S_ERR_NOMEM);
    struct s3s_buf text;
    s3s_result res = s3s_buf_init(&text, 0, S_MAX_VALUE + 1);
    xmlDoc *doc = NULL;
    if (s3s_is_ok(res)) {
        /* No network access; entities are not substituted (libxml2's
         * default) and a document with a DTD is refused. */
        doc = xmlReadMemory((const char *)xml.ptr, (int)xml.len, "cors.xml", NULL,
                            XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
        res = doc ? s_parse_doc(doc, c, &text, why, why_len) : s3s_err(S3S_ERR_MALFORMED_XML);
    }
    if (doc) {
        xmlFreeDoc(doc);
    }
    s3s_buf_clean_up(&text);
    if (s3s_failed(res)) {
        s3s_cors_free(c);
        return res;
    }
    *out = c;
    return s3s_ok();
}

static bool s_write_list(xmlTextWriterPtr w, const char *name, const struct s3s_cors_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        if (xmlTextWriterWriteElement(w, BAD_CAST name, BAD_CAST l->v[i]) < 0) {
            return false;
        }
    }
    return true;
}

static bool s_format_fill(xmlTextWriterPtr w, const void *ctx)
{
    const struct s3s_cors_config *c = ctx;
    if (xmlTextWriterStartElement(w, BAD_CAST "CORSConfiguration") < 0 ||
        xmlTextWriterWriteAttribute(w, BAD_CAST "xmlns", BAD_CAST S_NS) < 0) {
        return false;
    }
    for (size_t i = 0; i < c->n; i++) {
        const struct s3s_cors_rule *r = &c->rules[i];
        /* The order of AWS's answer. */
        if (xmlTextWriterStartElement(w, BAD_CAST "CORSRule") < 0 ||
            (r->id && xmlTextWriterWriteElement(w, BAD_CAST "ID", BAD_CAST r->id) < 0) ||
            !s_write_list(w, "AllowedHeader", &r->headers) ||
            !s_write_list(w, "AllowedMethod", &r->allowed) ||
            !s_write_list(w, "AllowedOrigin", &r->origins) ||
            !s_write_list(w, "ExposeHeader", &r->expose) ||
            (r->max_age_s >= 0 &&
             xmlTextWriterWriteFormatElement(w, BAD_CAST "MaxAgeSeconds", "%lld",
                                             (long long)r->max_age_s) < 0) ||
            xmlTextWriterEndElement(w) < 0) {
            return false;
        }
    }
    return xmlTextWriterEndElement(w) >= 0;
}

s3s_result s3s_cors_format(const struct s3s_cors_config *c, struct s3s_buf *out)
{
    S3S_ENSURE_REF(c);
    return s3s_xml_write(out, s_format_fill, c);
}

/* ------------------------------------------------------------- matching */

static uint8_t s_lower(uint8_t c) { return c >= 'A' && c <= 'Z' ? (uint8_t)(c | 0x20) : c; }

static bool s_bytes_eq(const uint8_t *a, const uint8_t *b, size_t n, bool nocase)
{
    for (size_t i = 0; i < n; i++) {
        if (nocase ? s_lower(a[i]) != s_lower(b[i]) : a[i] != b[i]) {
            return false;
        }
    }
    return true;
}

/* `v` against a pattern with at most one '*' (any run of bytes, the empty
 * one included); a pattern with more was refused when it was stored. */
static bool s_glob(const char *pattern, struct s3s_cur v, bool nocase)
{
    struct s3s_cur p = s3s_cur_from_str(pattern);
    long star = s3s_cur_find(p, '*');
    if (star < 0) {
        return p.len == v.len && s_bytes_eq(p.ptr, v.ptr, v.len, nocase);
    }
    size_t pre = (size_t)star, suf = p.len - pre - 1;
    return v.len >= pre + suf && s_bytes_eq(p.ptr, v.ptr, pre, nocase) &&
           s_bytes_eq(p.ptr + pre + 1, v.ptr + v.len - suf, suf, nocase);
}

static bool s_any(const struct s3s_cors_list *l, struct s3s_cur v, bool nocase)
{
    for (size_t i = 0; i < l->n; i++) {
        if (s_glob(l->v[i], v, nocase)) {
            return true;
        }
    }
    return false;
}

static bool s_headers_allowed(const struct s3s_cors_rule *r, struct s3s_cur list)
{
    struct s3s_cur item;
    while (s3s_cur_next(&list, ',', &item)) {
        item = s3s_cur_trim(item);
        if (item.len && !s_any(&r->headers, item, true)) {
            return false;
        }
    }
    return true;
}

const struct s3s_cors_rule *s3s_cors_match(const struct s3s_cors_config *c,
                                           struct s3s_cur origin, struct s3s_cur method,
                                           struct s3s_cur request_headers, bool *wildcard)
{
    unsigned bit = s3s_cors_method_bit(method);
    for (size_t i = 0; c && bit && origin.len && i < c->n; i++) {
        const struct s3s_cors_rule *r = &c->rules[i];
        if (!(r->methods & bit) || !s_headers_allowed(r, request_headers)) {
            continue;
        }
        for (size_t j = 0; j < r->origins.n; j++) {
            if (s_glob(r->origins.v[j], origin, false)) {
                if (wildcard) {
                    *wildcard = strcmp(r->origins.v[j], "*") == 0;
                }
                return r;
            }
        }
    }
    return NULL;
}

static s3s_result s_join(struct s3s_buf *out, const char *name, const struct s3s_cors_list *l)
{
    if (l->n == 0) {
        return s3s_ok();
    }
    S3S_GUARD(s3s_buf_appendf(out, "%s: ", name));
    for (size_t i = 0; i < l->n; i++) {
        S3S_GUARD(s3s_buf_appendf(out, "%s%s", i ? ", " : "", l->v[i]));
    }
    return s3s_buf_append_str(out, "\r\n");
}

s3s_result s3s_cors_headers(const struct s3s_cors_rule *rule, bool wildcard,
                            struct s3s_cur origin, bool preflight,
                            struct s3s_cur request_headers, struct s3s_buf *out)
{
    S3S_GUARD(s3s_buf_append_str(out, "Access-Control-Allow-Origin: "));
    S3S_GUARD(s3s_buf_append_cur(out, wildcard ? S3S_CUR_LIT("*") : origin));
    S3S_GUARD(s3s_buf_append_str(out, "\r\n"));
    S3S_GUARD(s_join(out, "Access-Control-Allow-Methods", &rule->allowed));
    if (preflight) {
        bool first = true;
        struct s3s_cur list = request_headers, item;
        while (s3s_cur_next(&list, ',', &item)) {
            item = s3s_cur_trim(item);
            if (!item.len) {
                continue;
            }
            S3S_GUARD(s3s_buf_append_str(out, first ? "Access-Control-Allow-Headers: " : ", "));
            for (size_t i = 0; i < item.len; i++) {
                S3S_GUARD(s3s_buf_append_byte(out, s_lower(item.ptr[i])));
            }
            first = false;
        }
        if (!first) {
            S3S_GUARD(s3s_buf_append_str(out, "\r\n"));
        }
    }
    if (!wildcard) {
        S3S_GUARD(s3s_buf_append_str(out, "Access-Control-Allow-Credentials: true\r\n"));
    }
    S3S_GUARD(s_join(out, "Access-Control-Expose-Headers", &rule->expose));
    if (rule->max_age_s >= 0) {
        S3S_GUARD(s3s_buf_appendf(out, "Access-Control-Max-Age: %lld\r\n",
                                  (long long)rule->max_age_s));
    }
    return s3s_buf_append_str(out, preflight ? "Vary: Origin, Access-Control-Request-Headers, "
                                               "Access-Control-Request-Method\r\n"
                                             : "Vary: Origin\r\n");
}
