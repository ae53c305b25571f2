/*
 * cli_walk.c - what the commands that work through a bucket's objects on
 * the backend share (rewrap and migrate in cli_rewrap.c, catalog in
 * cli_catalog.c): blocking requests with the backend's credentials, the
 * whole listing of a bucket or prefix (current objects or every version),
 * and a progress line on a terminal.
 */
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "proxy/cli.h"
#include "proxy/proxy.h"

s3s_result s3s_cli_request(const struct s3s_config *cfg, const char *method,
                           struct s3s_cur raw_path, struct s3s_cur raw_query,
                           const struct s3s_sigv4_header *extra, size_t n_extra,
                           struct s3s_backend_resp *resp)
{
    s3s_result res =
        s3s_backend_perform(cfg, method, raw_path, raw_query, extra, n_extra, 0, resp);
    if (s3s_failed(res)) {
        fprintf(stderr, "s3seal: backend request failed: %s\n",
                resp->error[0] ? resp->error : s3s_strerror(res.code));
    }
    return res;
}

s3s_result s3s_cli_qescape(struct s3s_buf *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        bool un = (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
                  *p == '-' || *p == '.' || *p == '_' || *p == '~';
        if (un) {
            S3S_GUARD(s3s_buf_append_byte(b, *p));
        } else {
            uint8_t e3[3] = {'%', (uint8_t)hex[*p >> 4], (uint8_t)hex[*p & 15]};
            S3S_GUARD(s3s_buf_append(b, e3, 3));
        }
    }
    return s3s_ok();
}

s3s_result s3s_cli_object_path(struct s3s_buf *b, const char *bucket, const char *key)
{
    S3S_GUARD(s3s_buf_appendf(b, "/%s/", bucket));
    return s3s_cli_qescape(b, key);
}

s3s_result s3s_cli_version_query(struct s3s_buf *b, const char *version_id)
{
    if (!version_id) {
        return s3s_ok();
    }
    S3S_GUARD(s3s_buf_append_str(b, "versionId="));
    return s3s_cli_qescape(b, version_id);
}

struct s3s_cur s3s_cli_unquote(struct s3s_cur v)
{
    v = s3s_cur_trim(v);
    v = s3s_cur_unquote(v);
    return v;
}

s3s_result s3s_cli_head(const struct s3s_config *cfg, const char *bucket, const char *key,
                        const char *version_id, struct s3s_cli_head *h)
{
    memset(h, 0, sizeof(*h));
    struct s3s_cur len, etag;
    S3S_GUARD(s3s_backend_resp_init(&h->resp, 65536));
    S3S_GUARD(s3s_buf_init(&h->path, 0, 8192));
    S3S_GUARD(s3s_buf_init(&h->query, 0, 2048));
    S3S_GUARD(s3s_cli_object_path(&h->path, bucket, key));
    S3S_GUARD(s3s_cli_version_query(&h->query, version_id));
    S3S_GUARD(s3s_cli_request(cfg, "HEAD", s3s_buf_cur(&h->path), s3s_buf_cur(&h->query), NULL,
                              0, &h->resp));
    S3S_ENSURE(h->resp.status == 200 && s3s_hdrlist_get(&h->resp.headers, "content-length", &len) &&
                   s3s_is_ok(s3s_parse_u64(len, UINT64_MAX / 2, &h->size)),
               S3S_ERR_BAD_GATEWAY);
    if (s3s_hdrlist_get(&h->resp.headers, "etag", &etag)) {
        h->etag = s3s_cli_unquote(etag);
    }
    return s3s_ok();
}

void s3s_cli_head_clean_up(struct s3s_cli_head *h)
{
    s3s_backend_resp_clean_up(&h->resp);
    s3s_buf_clean_up(&h->path);
    s3s_buf_clean_up(&h->query);
}

bool s3s_cli_target(const char *arg, char *bucket, size_t cap, const char **prefix)
{
    if (strncmp(arg, "s3://", 5) != 0 || arg[5] == '\0' || arg[5] == '/') {
        return false;
    }
    const char *b = arg + 5, *slash = strchr(b, '/');
    size_t n = slash ? (size_t)(slash - b) : strlen(b);
    if (n >= cap) {
        return false;
    }
    memcpy(bucket, b, n);
    bucket[n] = '\0';
    *prefix = slash ? slash + 1 : "";
    return true;
}

/* ---------------------------------------------------------------- listings */

static const char *s_child_text(xmlNode *n, const char *name)
{
    for (xmlNode *c = n ? n->children : NULL; c; c = c->next) {
        if (c->type == XML_ELEMENT_NODE && xmlStrEqual(c->name, BAD_CAST name)) {
            return (const char *)(c->children ? c->children->content : NULL);
        }
    }
    return NULL;
}

void s3s_cli_listing_free(struct s3s_cli_listing *l)
{
    for (size_t i = 0; l->objs && i < l->n; i++) {
        s3s_free(&l->objs[i].key);
        s3s_free(&l->objs[i].version_id);
        s3s_free(&l->objs[i].etag);
    }
    s3s_free(&l->objs);
    s3s_free(&l->pages);
    memset(l, 0, sizeof(*l));
}

/* Appends one listed object (Contents or Version element). */
static s3s_result s_add(struct s3s_cli_listing *l, xmlNode *c, bool versions)
{
    const char *key = s_child_text(c, "Key"), *etag = s_child_text(c, "ETag");
    const char *vid = versions ? s_child_text(c, "VersionId") : NULL;
    if (!key) {
        return s3s_ok();
    }
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 1024;
        struct s3s_cli_object *o = s3s_realloc(l->objs, cap * sizeof(*o));
        S3S_ENSURE(o, S3S_ERR_NOMEM);
        l->objs = o;
        l->cap = cap;
    }
    struct s3s_cur e = s3s_cli_unquote(s3s_cur_from_str(etag ? etag : ""));
    struct s3s_cli_object *o = &l->objs[l->n];
    *o = (struct s3s_cli_object){s3s_strdup(key), versions ? s3s_strdup(vid ? vid : "null") : NULL,
                                 s3s_strndup((const char *)e.ptr, e.len)};
    l->n++; /* freed with the listing, whole or not */
    S3S_ENSURE(o->key && o->etag && (!versions || o->version_id), S3S_ERR_NOMEM);
    return s3s_ok();
}

static s3s_result s_page_end(struct s3s_cli_listing *l)
{
    if (l->n_pages == l->pages_cap) {
        size_t cap = l->pages_cap ? 2 * l->pages_cap : 16;
        size_t *p = s3s_realloc(l->pages, cap * sizeof(*p));
        S3S_ENSURE(p, S3S_ERR_NOMEM);
        l->pages = p;
        l->pages_cap = cap;
    }
    l->pages[l->n_pages++] = l->n;
    return s3s_ok();
}

/* One page's query: the prefix and where the previous page ended. */
static s3s_result s_page_query(struct s3s_buf *q, const char *prefix, bool versions,
                               const char *marker, const char *vmarker)
{
    S3S_GUARD(s3s_buf_append_str(q, versions ? "versions=&prefix=" : "list-type=2&prefix="));
    S3S_GUARD(s3s_cli_qescape(q, prefix));
    if (marker[0]) {
        S3S_GUARD(s3s_buf_append_str(q, versions ? "&key-marker=" : "&continuation-token="));
        S3S_GUARD(s3s_cli_qescape(q, marker));
    }
    if (versions && vmarker[0]) {
        S3S_GUARD(s3s_buf_append_str(q, "&version-id-marker="));
        S3S_GUARD(s3s_cli_qescape(q, vmarker));
    }
    return s3s_ok();
}

/* Reads one page into l; *more and the markers say where the next starts. */
static s3s_result s_page_read(struct s3s_cli_listing *l, struct s3s_cur xml, bool versions,
                              bool *more, char *marker, char *vmarker, size_t cap)
{
    *more = false;
    S3S_ENSURE(xml.len < INT32_MAX, S3S_ERR_MALFORMED_XML);
    xmlDoc *doc = xmlReadMemory((const char *)xml.ptr, (int)xml.len, "list.xml", NULL,
                                XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
    S3S_ENSURE(doc, S3S_ERR_MALFORMED_XML);
    xmlNode *root = xmlDocGetRootElement(doc);
    const char *item = versions ? "Version" : "Contents";
    s3s_result res = root ? s3s_ok() : s3s_err(S3S_ERR_MALFORMED_XML);
    for (xmlNode *c = root ? root->children : NULL; s3s_is_ok(res) && c; c = c->next) {
        if (c->type == XML_ELEMENT_NODE && xmlStrEqual(c->name, BAD_CAST item)) {
            res = s_add(l, c, versions);
        }
    }
    const char *trunc = s_child_text(root, "IsTruncated");
    const char *next = s_child_text(root, versions ? "NextKeyMarker" : "NextContinuationToken");
    const char *vnext = versions ? s_child_text(root, "NextVersionIdMarker") : NULL;
    if (s3s_is_ok(res) && trunc && strcmp(trunc, "true") == 0) {
        /* A truncated page that says not where to go on is not a listing. */
        res = next && next[0] && strlen(next) < cap && (!vnext || strlen(vnext) < cap)
                  ? s3s_ok()
                  : s3s_err(S3S_ERR_MALFORMED_XML);
        if (s3s_is_ok(res)) {
            snprintf(marker, cap, "%s", next);
            snprintf(vmarker, cap, "%s", vnext ? vnext : "");
            *more = true;
        }
    }
    xmlFreeDoc(doc);
    return s3s_is_ok(res) ? s_page_end(l) : res;
}

s3s_result s3s_cli_list(const struct s3s_config *cfg, const char *verb, const char *bucket,
                        const char *prefix, bool versions, struct s3s_cli_listing *out)
{
    memset(out, 0, sizeof(*out));
    enum { MARK = 2048 };
    char marker[MARK] = "", vmarker[MARK] = "";
    struct s3s_backend_resp list;
    struct s3s_buf q = {0}, path = {0};
    s3s_result res = s3s_backend_resp_init(&list, 64u << 20);
    if (s3s_is_ok(res) && s3s_is_ok(res = s3s_buf_init(&q, 0, 8192)) &&
        s3s_is_ok(res = s3s_buf_init(&path, 0, 2048))) {
        res = s3s_buf_appendf(&path, "/%s", bucket);
    }
    for (bool more = true; s3s_is_ok(res) && more;) {
        s3s_buf_reset(&q);
        if (s3s_failed(res = s_page_query(&q, prefix, versions, marker, vmarker)) ||
            s3s_failed(res = s3s_cli_request(cfg, "GET", s3s_buf_cur(&path), s3s_buf_cur(&q),
                                             NULL, 0, &list))) {
            break;
        }
        if (list.status != 200) {
            fprintf(stderr, "s3seal %s: listing s3://%s failed (HTTP %ld)\n", verb, bucket,
                    list.status);
            res = s3s_err(S3S_ERR_BAD_GATEWAY);
            break;
        }
        if (s3s_failed(res = s_page_read(out, s3s_buf_cur(&list.body), versions, &more, marker,
                                         vmarker, MARK))) {
            fprintf(stderr, "s3seal %s: the listing of s3://%s is not one\n", verb, bucket);
        }
    }
    s3s_backend_resp_clean_up(&list);
    s3s_buf_clean_up(&q);
    s3s_buf_clean_up(&path);
    if (s3s_failed(res)) {
        s3s_cli_listing_free(out);
    }
    return res;
}

s3s_result s3s_cli_bucket_versioned(const struct s3s_config *cfg, const char *bucket,
                                    bool *versioned)
{
    *versioned = false;
    struct s3s_backend_resp resp;
    struct s3s_buf path = {0};
    s3s_result res = s3s_backend_resp_init(&resp, 65536);
    if (s3s_is_ok(res) && s3s_is_ok(res = s3s_buf_init(&path, 0, 2048)) &&
        s3s_is_ok(res = s3s_buf_appendf(&path, "/%s", bucket))) {
        res = s3s_cli_request(cfg, "GET", s3s_buf_cur(&path), S3S_CUR_LIT("versioning"), NULL, 0,
                              &resp);
    }
    xmlDoc *doc = NULL;
    if (s3s_is_ok(res) && resp.status == 200 && resp.body.len < INT32_MAX &&
        (doc = xmlReadMemory((const char *)resp.body.ptr, (int)resp.body.len, "v.xml", NULL,
                             XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING))) {
        const char *st = s_child_text(xmlDocGetRootElement(doc), "Status");
        *versioned = st && (strcmp(st, "Enabled") == 0 || strcmp(st, "Suspended") == 0);
    } else if (s3s_is_ok(res)) {
        fprintf(stderr, "s3seal: the versioning of s3://%s cannot be read (HTTP %ld)\n", bucket,
                resp.status);
        res = s3s_err(S3S_ERR_BAD_GATEWAY);
    }
    xmlFreeDoc(doc);
    s3s_backend_resp_clean_up(&resp);
    s3s_buf_clean_up(&path);
    return res;
}

/* ---------------------------------------------------------------- progress */

static double s_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void s3s_cli_progress_start(struct s3s_cli_progress *p, const char *verb, size_t total)
{
    *p = (struct s3s_cli_progress){.verb = verb, .total = total, .on = isatty(STDERR_FILENO) == 1};
    p->start_s = p->drawn_s = s_now_s();
}

void s3s_cli_progress_step(struct s3s_cli_progress *p, size_t done)
{
    if (!p->on) {
        return;
    }
    double now = s_now_s(), spent = now - p->start_s;
    bool last = done >= p->total;
    if (!last && now - p->drawn_s < 0.25) {
        return;
    }
    p->drawn_s = now;
    double rate = spent > 0 ? (double)done / spent : 0;
    char left[32] = "-";
    if (rate > 0) {
        unsigned long s = (unsigned long)((double)(p->total - (last ? p->total : done)) / rate);
        snprintf(left, sizeof(left), "%lu:%02lu:%02lu", s / 3600, s / 60 % 60, s % 60);
    }
    /* The cursor is left at the start of the line, so that a message
     * about an object writes over the line instead of after it. */
    fprintf(stderr, "\033[K%s: %zu/%zu objects, %.1f/s, %s left%c", p->verb, done, p->total,
            rate, left, last ? '\n' : '\r');
}
