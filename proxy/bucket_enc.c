/*
 * bucket_enc.c - see bucket_enc.h.
 *
 * The table. Stored defaults are read into an immutable, reference-counted
 * table shared by the process's workers; each worker holds a reference to the
 * one it reads (its copy) and moves to a newer one at its next lookup, when a
 * generation counter says one was published. Publishing (after a write, at
 * start-up, on the periodic re-read) happens with `io` held, which also
 * guards the process's keystore handle: writes and re-reads are serialised,
 * so the table published last is what the keystore held last. Only pool
 * threads, start-up and clean-up take `io`; loop threads take `lock`, which
 * is held for pointer and counter updates only, never during I/O.
 *
 * A request. Accepted after authentication; once its body is complete and
 * verified it is copied into an op handed to the thread pool, which checks
 * that the bucket exists (a HEAD on the backend, blocking there), parses and
 * stores the rule (PUT) or removes it (DELETE), and republishes the table.
 * The after-work callback answers from the loop, GET from the worker's
 * table. A request that goes away meanwhile (client gone, timeout) leaves
 * the op to be freed by that callback.
 */
#include <curl/curl.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xmlwriter.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "keystore/keystore.h"
#include "proxy/cors.h"
#include "proxy/proxy.h"
#include "sigv4/sigv4.h"

#define S_NS "http://s3.amazonaws.com/doc/2006-03-01/"
/* AWS's limit for a KMS key ARN. */
#define S_MAX_KMS_KEY_ID 2048

/* ------------------------------------------------------------------ rules */

void s3s_bucket_enc_rule_clean_up(struct s3s_bucket_enc_rule *rule)
{
    s3s_free(&rule->kms_key_id);
    memset(rule, 0, sizeof(*rule));
}

static bool s_known_algorithm(const char *a)
{
    return strcmp(a, "AES256") == 0 || strcmp(a, "aws:kms") == 0 || strcmp(a, "aws:kms:dsse") == 0;
}

/* See the rule's `mode`: anything but AES256 is a default s3seal cannot
 * apply yet. */
static enum s3s_sse_mode s_mode_of(const char *algorithm)
{
    return strcmp(algorithm, "AES256") == 0 ? S3S_SSE_AES256 : S3S_SSE_KMS;
}

/* An element named `name` in S3's namespace, or in none (hand-written
 * bodies often leave it out). */
static bool s_is(const xmlNode *n, const char *name)
{
    return n->type == XML_ELEMENT_NODE && xmlStrEqual(n->name, BAD_CAST name) &&
           (!n->ns || xmlStrEqual(n->ns->href, BAD_CAST S_NS));
}

/* An element's children, as the schema allows: elements named in `allowed`,
 * each at most once (found[i] gets the one named allowed[i]), comments and
 * whitespace between them, nothing else. */
static s3s_result s_children(const xmlNode *parent, const char *const *allowed,
                             const xmlNode **found)
{
    for (xmlNode *n = parent->children; n; n = n->next) {
        if (n->type == XML_COMMENT_NODE) {
            continue;
        }
        if (n->type == XML_TEXT_NODE) {
            S3S_ENSURE(xmlIsBlankNode(n), S3S_ERR_MALFORMED_XML);
            continue;
        }
        size_t i = 0;
        while (allowed[i] && !s_is(n, allowed[i])) {
            i++;
        }
        S3S_ENSURE(allowed[i] && !found[i], S3S_ERR_MALFORMED_XML);
        found[i] = n;
    }
    return s3s_ok();
}

static bool s_space(uint8_t c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

/* The text of a leaf element, without surrounding whitespace, into `out`
 * (whose maximum bounds it). */
static s3s_result s_text(const xmlNode *n, struct s3s_buf *out)
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
    s3s_result r = v.len <= out->max ? s3s_buf_append_cur(out, v) : s3s_err(S3S_ERR_MALFORMED_XML);
    xmlFree(t);
    return r;
}

static s3s_result s_parse_doc(xmlDoc *doc, struct s3s_bucket_enc_rule *rule)
{
    /* A DTD could declare entities; S3's documents have none. */
    S3S_ENSURE(!doc->intSubset && !doc->extSubset, S3S_ERR_MALFORMED_XML);
    const xmlNode *root = xmlDocGetRootElement(doc);
    S3S_ENSURE(root && s_is(root, "ServerSideEncryptionConfiguration"), S3S_ERR_MALFORMED_XML);

    /* Exactly one Rule: AWS refuses none and several alike. */
    static const char *const top[] = {"Rule", NULL};
    const xmlNode *ft[1] = {NULL};
    S3S_GUARD(s_children(root, top, ft));
    S3S_ENSURE(ft[0] != NULL, S3S_ERR_MALFORMED_XML);

    static const char *const in_rule[] = {"ApplyServerSideEncryptionByDefault",
                                          "BucketKeyEnabled", "BlockedEncryptionTypes", NULL};
    const xmlNode *fr[3] = {NULL, NULL, NULL};
    S3S_GUARD(s_children(ft[0], in_rule, fr));
    /* A newer part of the API that s3seal would not enforce: refused rather
     * than accepted and ignored. */
    S3S_ENSURE(fr[2] == NULL, S3S_ERR_BLOCKED_ENCRYPTION_TYPES);
    S3S_ENSURE(fr[0] != NULL, S3S_ERR_MALFORMED_XML);

    static const char *const in_default[] = {"SSEAlgorithm", "KMSMasterKeyID", NULL};
    const xmlNode *fd[2] = {NULL, NULL};
    S3S_GUARD(s_children(fr[0], in_default, fd));
    S3S_ENSURE(fd[0] != NULL, S3S_ERR_MALFORMED_XML);

    struct s3s_buf text;
    S3S_GUARD(s3s_buf_init(&text, 0, S_MAX_KMS_KEY_ID));
    const char *s = NULL;
    s3s_result res = s_text(fd[0], &text);
    if (s3s_is_ok(res)) {
        res = s3s_buf_cstr(&text, &s);
    }
    /* The algorithm is an enumeration of the schema: another value is a
     * document that does not validate. */
    if (s3s_is_ok(res) && !s_known_algorithm(s)) {
        res = s3s_err(S3S_ERR_MALFORMED_XML);
    }
    if (s3s_is_ok(res)) {
        snprintf(rule->algorithm, sizeof(rule->algorithm), "%s", s);
        rule->mode = s_mode_of(s);
    }
    if (s3s_is_ok(res) && fd[1]) {
        s3s_buf_reset(&text);
        res = s_text(fd[1], &text);
        if (s3s_is_ok(res) && text.len == 0) {
            res = s3s_err(S3S_ERR_MALFORMED_XML);
        }
        if (s3s_is_ok(res) && rule->mode == S3S_SSE_AES256) {
            res = s3s_err(S3S_ERR_KMS_KEY_NOT_APPLICABLE);
        }
        if (s3s_is_ok(res) && !(rule->kms_key_id = s3s_strndup((const char *)text.ptr, text.len))) {
            res = s3s_err(S3S_ERR_NOMEM);
        }
    }
    if (s3s_is_ok(res) && fr[1]) {
        s3s_buf_reset(&text);
        res = s_text(fr[1], &text);
        struct s3s_cur b = s3s_buf_cur(&text);
        if (s3s_is_ok(res) && (s3s_cur_eq_str(b, "true") || s3s_cur_eq_str(b, "1"))) {
            rule->bucket_key = true;
        } else if (s3s_is_ok(res) && !(s3s_cur_eq_str(b, "false") || s3s_cur_eq_str(b, "0"))) {
            res = s3s_err(S3S_ERR_MALFORMED_XML); /* xsd:boolean */
        }
    }
    s3s_buf_clean_up(&text);
    return res;
}

s3s_result s3s_bucket_enc_parse(struct s3s_cur xml, struct s3s_bucket_enc_rule *rule)
{
    memset(rule, 0, sizeof(*rule));
    S3S_ENSURE(xml.len > 0 && xml.len <= S3S_BUCKET_ENC_MAX_BODY, S3S_ERR_MALFORMED_XML);
    /* No network access; entities are not substituted (libxml2's default)
     * and a document with a DTD is refused below. */
    xmlDoc *doc = xmlReadMemory((const char *)xml.ptr, (int)xml.len, "encryption.xml", NULL,
                                XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
    S3S_ENSURE(doc != NULL, S3S_ERR_MALFORMED_XML);
    s3s_result res = s_parse_doc(doc, rule);
    xmlFreeDoc(doc);
    if (s3s_failed(res)) {
        s3s_bucket_enc_rule_clean_up(rule);
    }
    return res;
}

static bool s_format_fill(xmlTextWriterPtr w, const void *ctx)
{
    const struct s3s_bucket_enc_rule *rule = ctx;
    return !(xmlTextWriterStartElement(w, BAD_CAST "ServerSideEncryptionConfiguration") < 0 ||
        xmlTextWriterWriteAttribute(w, BAD_CAST "xmlns", BAD_CAST S_NS) < 0 ||
        xmlTextWriterStartElement(w, BAD_CAST "Rule") < 0 ||
        xmlTextWriterStartElement(w, BAD_CAST "ApplyServerSideEncryptionByDefault") < 0 ||
        xmlTextWriterWriteElement(w, BAD_CAST "SSEAlgorithm", BAD_CAST rule->algorithm) < 0 ||
        (rule->kms_key_id && xmlTextWriterWriteElement(w, BAD_CAST "KMSMasterKeyID",
                                                       BAD_CAST rule->kms_key_id) < 0) ||
        xmlTextWriterEndElement(w) < 0 ||
        xmlTextWriterWriteElement(w, BAD_CAST "BucketKeyEnabled",
                                  BAD_CAST(rule->bucket_key ? "true" : "false")) < 0 ||
        xmlTextWriterEndElement(w) < 0 || xmlTextWriterEndElement(w) < 0);
}

s3s_result s3s_bucket_enc_format(const struct s3s_bucket_enc_rule *rule, struct s3s_buf *out)
{
    return s3s_xml_write(out, s_format_fill, rule);
}

/* ------------------------------------------------------------------ table */

struct s_entry {
    char *bucket;
    bool has_rule; /* a default encryption is stored */
    struct s3s_bucket_enc_rule rule;
    /* Ownership and bucket policy (authz.h). */
    char *owner;                /* NULL: none recorded */
    char *policy_text;          /* NULL: no bucket policy */
    struct s3s_policy *policy;  /* parsed; NULL with policy_text: unreadable */
    /* The CORS configuration (cors.h). */
    char *cors_text;              /* NULL: none */
    struct s3s_cors_config *cors; /* parsed; NULL with cors_text: unreadable */
};

struct s_table {
    struct s_entry *e; /* sorted by bucket (strcmp) */
    size_t n;
    unsigned long refs; /* under s_shared.lock */
};

static struct {
    uv_mutex_t lock;          /* `table` and every table's refs */
    uv_mutex_t io;            /* `ks`, `users` and publishing */
    struct s_table *table;    /* the newest; NULL: nothing stored */
    atomic_uint_fast64_t gen; /* bumped at every publish */
    struct s3s_keystore *ks;  /* NULL without a configured keystore */
    int users;                /* attached workers */
} s_shared;
static uv_once_t s_once = UV_ONCE_INIT;

struct s3s_bucket_enc_view {
    struct s3s_worker *w;
    struct s_table *table; /* referenced; NULL: nothing stored */
    uint_fast64_t gen;     /* s_shared.gen when `table` was taken */
    bool persist;          /* a keystore is there to store settings in */
    /* The periodic re-read, on worker 0 only. */
    uv_timer_t timer;
    uv_work_t work;
    bool work_busy;
    bool again; /* a change was announced while a refresh ran: one more */
    int32_t work_error;
};

static void s_init_once(void)
{
    uv_mutex_init(&s_shared.lock);
    uv_mutex_init(&s_shared.io);
}

static void s_table_free(struct s_table *t)
{
    for (size_t i = 0; t && i < t->n; i++) {
        s3s_free(&t->e[i].bucket);
        s3s_bucket_enc_rule_clean_up(&t->e[i].rule);
        s3s_free(&t->e[i].owner);
        s3s_free(&t->e[i].policy_text);
        s3s_policy_free(t->e[i].policy);
        s3s_free(&t->e[i].cors_text);
        s3s_cors_free(t->e[i].cors);
    }
    if (t) {
        s3s_free(&t->e);
    }
    s3s_free(&t);
}

static void s_table_unref(struct s_table *t)
{
    if (!t) {
        return;
    }
    uv_mutex_lock(&s_shared.lock);
    bool last = --t->refs == 0;
    uv_mutex_unlock(&s_shared.lock);
    if (last) {
        s_table_free(t);
    }
}

/* Makes `t` the newest table (NULL: empty). Called with `io` held. */
static void s_publish(struct s_table *t)
{
    uv_mutex_lock(&s_shared.lock);
    struct s_table *old = s_shared.table;
    s_shared.table = t;
    if (t) {
        t->refs = 1; /* the shared reference */
    }
    atomic_fetch_add(&s_shared.gen, 1);
    bool last = old && --old->refs == 0;
    uv_mutex_unlock(&s_shared.lock);
    if (last) {
        s_table_free(old);
    }
}

static int s_entry_cmp(const void *a, const void *b)
{
    return strcmp(((const struct s_entry *)a)->bucket, ((const struct s_entry *)b)->bucket);
}

static const struct s_entry *s_find(const struct s_table *t, struct s3s_cur bucket);

/* Keystore rows into a table (the rows' strings are moved): one entry per
 * bucket with a default encryption, an owner, a policy or a CORS
 * configuration. */
static s3s_result s_table_from_rows(struct s3s_keystore_bucket_enc *rows, size_t n,
                                    struct s3s_keystore_bucket_access *acc, size_t m,
                                    struct s3s_keystore_bucket_cors *cors, size_t k,
                                    struct s_table **out)
{
    *out = NULL;
    if (n + m + k == 0) {
        return s3s_ok();
    }
    struct s_table *t = s3s_calloc(1, sizeof(*t));
    S3S_ENSURE(t != NULL, S3S_ERR_NOMEM);
    t->e = s3s_calloc(n + m + k, sizeof(*t->e));
    if (!t->e) {
        s3s_free(&t);
        S3S_BAIL(S3S_ERR_NOMEM);
    }
    for (size_t i = 0; i < n; i++) {
        struct s_entry *e = &t->e[i];
        e->has_rule = true;
        e->bucket = rows[i].bucket;
        rows[i].bucket = NULL;
        e->rule.kms_key_id = rows[i].kms_key_id;
        rows[i].kms_key_id = NULL;
        e->rule.bucket_key = rows[i].bucket_key;
        snprintf(e->rule.algorithm, sizeof(e->rule.algorithm), "%s", rows[i].algorithm);
        e->rule.mode = s_mode_of(rows[i].algorithm);
        if (!s_known_algorithm(rows[i].algorithm)) {
            S3S_LOGW("bucket_enc", "bucket %s: stored algorithm '%s' is unknown to this version; "
                                   "writes without an SSE header are refused",
                     e->bucket, e->rule.algorithm);
        }
    }
    t->n = n;
    qsort(t->e, t->n, sizeof(*t->e), s_entry_cmp);
    size_t sorted = n;
    for (size_t i = 0; i < m; i++) {
        struct s_table head = {.e = t->e, .n = sorted};
        struct s_entry *e = (struct s_entry *)s_find(&head, s3s_cur_from_str(acc[i].bucket));
        if (!e) {
            e = &t->e[t->n++];
            e->bucket = acc[i].bucket;
            acc[i].bucket = NULL;
        }
        e->owner = acc[i].owner;
        acc[i].owner = NULL;
        e->policy_text = acc[i].policy;
        acc[i].policy = NULL;
        char why[256];
        if (e->policy_text &&
            s3s_failed(s3s_policy_parse_kind(s3s_cur_from_str(e->policy_text),
                                             S3S_POLICY_KIND_BUCKET, &e->policy, why,
                                             sizeof(why)))) {
            S3S_LOGW("bucket_enc", "bucket %s: the stored bucket policy cannot be read (%s); "
                                   "only the owner's root may act on the bucket",
                     e->bucket, why);
        }
    }
    qsort(t->e, t->n, sizeof(*t->e), s_entry_cmp);
    sorted = t->n;
    for (size_t i = 0; i < k; i++) {
        struct s_table head = {.e = t->e, .n = sorted};
        struct s_entry *e = (struct s_entry *)s_find(&head, s3s_cur_from_str(cors[i].bucket));
        if (!e) {
            e = &t->e[t->n++];
            e->bucket = cors[i].bucket;
            cors[i].bucket = NULL;
        }
        e->cors_text = cors[i].config;
        cors[i].config = NULL;
        /* Validated when it was stored; a document this version cannot
         * read allows no cross-origin request. */
        if (s3s_failed(s3s_cors_parse(s3s_cur_from_str(e->cors_text), &e->cors, NULL, 0))) {
            S3S_LOGW("bucket_enc", "bucket %s: the stored CORS configuration cannot be read; "
                                   "no cross-origin request is allowed",
                     e->bucket);
        }
    }
    qsort(t->e, t->n, sizeof(*t->e), s_entry_cmp);
    *out = t;
    return s3s_ok();
}

static bool s_str_eq(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static bool s_rule_eq(const struct s3s_bucket_enc_rule *a, const struct s3s_bucket_enc_rule *b)
{
    bool kms_eq = (!a->kms_key_id && !b->kms_key_id) ||
                  (a->kms_key_id && b->kms_key_id && strcmp(a->kms_key_id, b->kms_key_id) == 0);
    return kms_eq && a->bucket_key == b->bucket_key && strcmp(a->algorithm, b->algorithm) == 0;
}

static bool s_table_eq(const struct s_table *a, const struct s_table *b)
{
    size_t an = a ? a->n : 0, bn = b ? b->n : 0;
    if (an != bn) {
        return false;
    }
    for (size_t i = 0; i < an; i++) {
        if (strcmp(a->e[i].bucket, b->e[i].bucket) != 0 ||
            a->e[i].has_rule != b->e[i].has_rule || !s_rule_eq(&a->e[i].rule, &b->e[i].rule) ||
            !s_str_eq(a->e[i].owner, b->e[i].owner) ||
            !s_str_eq(a->e[i].policy_text, b->e[i].policy_text) ||
            !s_str_eq(a->e[i].cors_text, b->e[i].cors_text)) {
            return false;
        }
    }
    return true;
}

/* Reads the keystore's table and publishes it if it changed. Called with
 * `io` held. */
static s3s_result s_reload(void)
{
    struct s3s_keystore_bucket_enc *rows = NULL;
    struct s3s_keystore_bucket_access *acc = NULL;
    struct s3s_keystore_bucket_cors *cors = NULL;
    size_t n = 0, m = 0, k = 0;
    S3S_GUARD(s3s_keystore_bucket_enc_list(s_shared.ks, &rows, &n));
    s3s_result res = s3s_keystore_bucket_access_list(s_shared.ks, &acc, &m);
    if (s3s_is_ok(res)) {
        res = s3s_keystore_bucket_cors_list(s_shared.ks, &cors, &k);
    }
    struct s_table *t = NULL;
    if (s3s_is_ok(res)) {
        res = s_table_from_rows(rows, n, acc, m, cors, k, &t);
    }
    s3s_keystore_bucket_enc_free(rows, n);
    s3s_keystore_bucket_access_free(acc, m);
    s3s_keystore_bucket_cors_free(cors, k);
    S3S_GUARD(res);
    /* Only publishers write s_shared.table, and they hold `io` too. */
    uv_mutex_lock(&s_shared.lock);
    bool same = s_table_eq(t, s_shared.table);
    uv_mutex_unlock(&s_shared.lock);
    if (same) {
        s_table_free(t);
    } else {
        s_publish(t);
    }
    return s3s_ok();
}

/* The worker's table, moved to the newest one if one was published. */
static const struct s_table *s_current(struct s3s_worker *w)
{
    struct s3s_bucket_enc_view *v = w->bucket_enc;
    if (!v) {
        return NULL;
    }
    if (atomic_load(&s_shared.gen) != v->gen) {
        uv_mutex_lock(&s_shared.lock);
        struct s_table *old = v->table;
        v->table = s_shared.table;
        if (v->table) {
            v->table->refs++;
        }
        v->gen = atomic_load(&s_shared.gen);
        bool last = old && --old->refs == 0;
        uv_mutex_unlock(&s_shared.lock);
        if (last) {
            s_table_free(old);
        }
    }
    return v->table;
}

static const struct s_entry *s_find(const struct s_table *t, struct s3s_cur bucket)
{
    size_t lo = 0, hi = t ? t->n : 0;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const char *b = t->e[mid].bucket;
        size_t bl = strlen(b), m = bucket.len < bl ? bucket.len : bl;
        int c = m ? memcmp(bucket.ptr, b, m) : 0;
        if (c == 0) {
            c = bucket.len < bl ? -1 : bucket.len > bl ? 1 : 0;
        }
        if (c == 0) {
            return &t->e[mid];
        }
        if (c < 0) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    return NULL;
}

/* The bucket's rule, as GetBucketEncryption reports it: the stored one, else
 * one made from the config file's default. Borrowed like s3s_bucket_default's
 * key. False when there is neither. */
static bool s_effective_rule(struct s3s_worker *w, struct s3s_cur bucket,
                             struct s3s_bucket_enc_rule *rule)
{
    const struct s_entry *e = s_find(s_current(w), bucket);
    if (e && e->has_rule) {
        *rule = e->rule;
        return true;
    }
    const struct s3s_config_bucket *b = s3s_config_find_bucket(w->cfg, bucket);
    if (!b || b->default_encryption == S3S_SSE_NONE) {
        return false;
    }
    memset(rule, 0, sizeof(*rule));
    rule->mode = b->default_encryption;
    snprintf(rule->algorithm, sizeof(rule->algorithm), "%s",
             b->default_encryption == S3S_SSE_AES256 ? "AES256" : "aws:kms");
    rule->kms_key_id = b->kms_key_id;
    rule->bucket_key = b->bucket_key;
    return true;
}

void s3s_bucket_default(struct s3s_worker *w, struct s3s_cur bucket,
                        struct s3s_bucket_defaults *out)
{
    const struct s3s_config_bucket *b = s3s_config_find_bucket(w->cfg, bucket);
    out->require = b && b->require_encryption;
    const struct s_entry *e = s_find(s_current(w), bucket);
    if (e && e->has_rule) {
        out->mode = e->rule.mode;
        out->kms_key_id = e->rule.kms_key_id;
        out->kms_bucket_key = e->rule.bucket_key;
        return;
    }
    out->mode = b ? b->default_encryption : S3S_SSE_NONE;
    out->kms_key_id = b ? b->kms_key_id : NULL;
    out->kms_bucket_key = b && b->bucket_key;
}

/* ------------------------------------------------------ periodic re-read */

static void s_refresh_work(uv_work_t *work)
{
    struct s3s_bucket_enc_view *v = work->data;
    uv_mutex_lock(&s_shared.io);
    v->work_error = s_shared.ks ? s_reload().code : S3S_OK;
    uv_mutex_unlock(&s_shared.io);
}

static void s_tick(uv_timer_t *t);

static void s_refresh_done(uv_work_t *work, int status)
{
    struct s3s_bucket_enc_view *v = work->data;
    v->work_busy = false;
    if (v->again) {
        v->again = false;
        s_tick(&v->timer); /* announced while this one ran; queued after it */
    }
    if (status == 0 && v->work_error != S3S_OK) {
        S3S_LOGW("bucket_enc", "re-reading buckets' default encryption failed: %s",
                 s3s_strerror(v->work_error));
    }
}

static void s_tick(uv_timer_t *t)
{
    struct s3s_bucket_enc_view *v = t->data;
    if (v->work_busy || v->w->draining) {
        return;
    }
    v->work.data = v;
    if (uv_queue_work(&v->w->loop, &v->work, s_refresh_work, s_refresh_done) == 0) {
        v->work_busy = true;
    }
}

void s3s_bucket_enc_refresh(struct s3s_worker *w)
{
    struct s3s_bucket_enc_view *v = w->bucket_enc;
    if (!v || !v->persist || w->id != 0) {
        return; /* worker 0 re-reads for the whole process */
    }
    if (v->work_busy) {
        v->again = true;
        return;
    }
    s_tick(&v->timer);
}

s3s_result s3s_bucket_enc_attach(struct s3s_worker *w)
{
    uv_once(&s_once, s_init_once);
    struct s3s_bucket_enc_view *v = s3s_calloc(1, sizeof(*v));
    S3S_ENSURE(v != NULL, S3S_ERR_NOMEM);
    v->w = w;
    w->bucket_enc = v;
    const struct s3s_config *cfg = w->cfg;
    char why[512] = "";
    s3s_result res = s3s_ok();
    uv_mutex_lock(&s_shared.io);
    if (s_shared.users++ == 0 && cfg->keystore.master_key_file) {
        res = s3s_keystore_open(cfg->keystore.path, cfg->keystore.master_key_file, true,
                                &s_shared.ks, why, sizeof(why));
        if (s3s_is_ok(res) && s3s_failed(res = s_reload())) {
            snprintf(why, sizeof(why), "keystore %s: cannot read buckets' default encryption",
                     cfg->keystore.path);
        }
    }
    v->persist = s_shared.ks != NULL;
    uv_mutex_unlock(&s_shared.io);
    if (s3s_failed(res)) {
        S3S_LOGE("bucket_enc", "%s", why[0] ? why : "cannot open the keystore");
        return res;
    }
    /* One worker re-reads for the whole process. */
    if (v->persist && w->id == 0) {
        uv_timer_init(&w->loop, &v->timer);
        v->timer.data = v;
        uv_timer_start(&v->timer, s_tick, S3S_BUCKET_ENC_REFRESH_MS, S3S_BUCKET_ENC_REFRESH_MS);
        /* The timer must not keep a draining loop alive. */
        uv_unref((uv_handle_t *)&v->timer);
    }
    return s3s_ok();
}

void s3s_bucket_enc_detach(struct s3s_worker *w)
{
    struct s3s_bucket_enc_view *v = w->bucket_enc;
    if (!v) {
        return;
    }
    /* The loop has closed the timer and run every after-work callback:
     * nothing refers to v any more. */
    w->bucket_enc = NULL;
    s_table_unref(v->table);
    uv_mutex_lock(&s_shared.io);
    if (--s_shared.users == 0) {
        s3s_keystore_close(s_shared.ks);
        s_shared.ks = NULL;
        s_publish(NULL);
    }
    uv_mutex_unlock(&s_shared.io);
    s3s_free(&v);
}

/* --------------------------------------------------------------- requests */

enum s_kind {
    S_GET,
    S_PUT,
    S_DELETE,
    S_CLAIM,   /* CreateBucket: claim the name for the caller's account */
    S_RELEASE, /* CreateBucket failed: take the claim back (no answer waits) */
    S_FORGET,  /* DeleteBucket succeeded: owner, policy, encryption go (no answer waits) */
};
/* What a GET, PUT or DELETE is about. */
enum s_what { S_ENCRYPTION, S_POLICY, S_POLICY_STATUS, S_LOCATION, S_CORS };

struct s3s_bucket_enc_op {
    uv_work_t work;
    struct s3s_req *req; /* NULL once the request is gone; loop thread only */
    const struct s3s_config *cfg;
    enum s_kind kind;
    enum s_what what;
    char account[13]; /* S_CLAIM, S_RELEASE: the caller's account */
    char recorded[13]; /* S_CLAIM: the owner the worker's table names ("": none) */
    bool claimed;     /* S_CLAIM: the name is now the caller's */
    char why[512];    /* a malformed policy's or CORS configuration's reason */
    bool queued; /* on the thread pool */
    char *bucket;
    /* PutBucketPolicy: a copy, for the pool thread; PutBucketCors: the
     * configuration as stored (parsed and formatted on the loop). */
    struct s3s_buf body;
    /* PutBucketEncryption: its rule, parsed on the loop (where its KMS key
     * is checked), or why it did not parse (answered after the bucket's
     * existence, as before). */
    struct s3s_bucket_enc_rule rule;
    int32_t rule_error;
    int32_t error;       /* set by the pool thread: the answer is this error */
    bool reload_failed;  /* stored, but not yet in the table */
};

static void s_op_free(struct s3s_bucket_enc_op *op)
{
    s3s_config_release(op->cfg); /* held while the op runs on the pool */
    s3s_free(&op->bucket);
    s3s_buf_clean_up(&op->body);
    s3s_bucket_enc_rule_clean_up(&op->rule);
    s3s_free(&op);
}

s3s_result s3s_bucket_enc_accept(struct s3s_req *r)
{
    if (r->bucket.len == 0 || r->key.len != 0) {
        return s3s_ok();
    }
    enum s_what what;
    /* Never the backend's, whatever the method: its own settings stay
     * untouched. */
    if (s3s_s3_query_has(r->query, "encryption")) {
        what = S_ENCRYPTION;
    } else if (s3s_s3_query_has(r->query, "policy")) {
        what = S_POLICY;
    } else if (s3s_s3_query_has(r->query, "policyStatus")) {
        what = S_POLICY_STATUS;
    } else if (s3s_s3_query_has(r->query, "cors")) {
        what = S_CORS;
    } else if (s3s_s3_query_has(r->query, "location") && s3s_cur_eq_str(r->method, "GET")) {
        /* The region clients sign for is s3seal's, not the backend's zone
         * group (RGW answers "default", and s3cmd then signs for it). */
        what = S_LOCATION;
    } else {
        return s3s_ok();
    }
    struct s3s_worker *w = r->conn->w;
    enum s_kind kind;
    if (s3s_cur_eq_str(r->method, "GET")) {
        kind = S_GET;
    } else if (s3s_cur_eq_str(r->method, "PUT")) {
        kind = S_PUT;
    } else if (s3s_cur_eq_str(r->method, "DELETE")) {
        kind = S_DELETE;
    } else {
        /* Never the backend's: its own encryption settings stay untouched. */
        S3S_BAIL(S3S_ERR_METHOD_NOT_ALLOWED);
    }
    S3S_ENSURE(kind == S_GET || what == S_LOCATION || (w->bucket_enc && w->bucket_enc->persist),
               what == S_ENCRYPTION ? S3S_ERR_BUCKET_ENC_NO_KEYSTORE
               : what == S_CORS     ? S3S_ERR_CORS_NO_KEYSTORE
                                    : S3S_ERR_BUCKET_POLICY_NO_KEYSTORE);
    S3S_ENSURE(what != S_POLICY_STATUS || kind == S_GET, S3S_ERR_METHOD_NOT_ALLOWED);
    S3S_ENSURE(kind != S_PUT || r->content_length <= S3S_BUCKET_ENC_MAX_BODY,
               S3S_ERR_MAX_MESSAGE_LENGTH);
    struct s3s_bucket_enc_op *op = s3s_calloc(1, sizeof(*op));
    S3S_ENSURE(op != NULL, S3S_ERR_NOMEM);
    op->req = r;
    op->cfg = s3s_config_acquire(r->cfg);
    op->kind = kind;
    op->what = what;
    op->bucket = s3s_strndup((const char *)r->bucket.ptr, r->bucket.len);
    if (!op->bucket) {
        s_op_free(op);
        S3S_BAIL(S3S_ERR_NOMEM);
    }
    r->bucket_enc = op;
    return s3s_ok();
}

/* Blocking (thread pool): a HEAD of the bucket on the backend, signed with
 * the backend's keys. AWS answers the bucket encryption API for existing
 * buckets only, and checks that before the body. */
static s3s_result s_bucket_exists(const struct s3s_config *cfg, const char *bucket)
{
    struct s3s_backend_resp resp;
    struct s3s_buf raw = {0};
    s3s_result res = s3s_backend_resp_init(&resp, 1024);
    if (s3s_is_ok(res)) {
        res = s3s_buf_init(&raw, 0, 1024);
    }
    if (s3s_is_ok(res)) {
        res = s3s_buf_appendf(&raw, "/%s", bucket);
    }
    if (s3s_is_ok(res)) {
        res = s3s_backend_perform(cfg, "HEAD", s3s_buf_cur(&raw), s3s_cur_from(NULL, 0), NULL, 0,
                                  (long)cfg->limits.backend_timeout_ms, &resp);
    }
    if (s3s_is_ok(res)) {
        long status = resp.status;
        res = status >= 200 && status < 300 ? s3s_ok()
              : status == 404               ? s3s_err(S3S_ERR_NO_SUCH_BUCKET)
              : status == 403               ? s3s_err(S3S_ERR_ACCESS_DENIED)
                                            : s3s_err(S3S_ERR_BAD_GATEWAY);
    }
    s3s_buf_clean_up(&raw);
    s3s_backend_resp_clean_up(&resp);
    return res;
}

/* Thread pool: stores (rule) or removes (NULL) the bucket's setting and
 * republishes the table, so this process applies it from its next request
 * on. */
static s3s_result s_store(struct s3s_bucket_enc_op *op, const struct s3s_bucket_enc_rule *rule)
{
    uv_mutex_lock(&s_shared.io);
    s3s_result res = s3s_err(S3S_ERR_BUCKET_ENC_NO_KEYSTORE);
    bool removed = false;
    if (s_shared.ks && rule) {
        res = s3s_keystore_bucket_enc_put(s_shared.ks, op->bucket, rule->algorithm,
                                          rule->kms_key_id, rule->bucket_key);
    } else if (s_shared.ks) {
        res = s3s_keystore_bucket_enc_delete(s_shared.ks, op->bucket, &removed);
    }
    /* Stored is stored: a failed re-read is left to the next refresh. */
    op->reload_failed = s3s_is_ok(res) && s3s_failed(s_reload());
    uv_mutex_unlock(&s_shared.io);
    return res;
}

/* Thread pool: stores (PutBucketCors: its document, validated and formatted
 * on the loop) or removes (DeleteBucketCors) the bucket's CORS
 * configuration and republishes the table. */
static s3s_result s_cors_store(struct s3s_bucket_enc_op *op)
{
    if (op->kind == S_PUT && op->rule_error != S3S_OK) {
        return s3s_err(op->rule_error);
    }
    const char *config = NULL;
    if (op->kind == S_PUT) {
        S3S_GUARD(s3s_buf_cstr(&op->body, &config));
    }
    uv_mutex_lock(&s_shared.io);
    s3s_result res = s3s_err(S3S_ERR_CORS_NO_KEYSTORE);
    bool removed = false;
    if (s_shared.ks && config) {
        res = s3s_keystore_bucket_cors_put(s_shared.ks, op->bucket, config);
    } else if (s_shared.ks) {
        res = s3s_keystore_bucket_cors_delete(s_shared.ks, op->bucket, &removed);
    }
    /* Stored is stored: a failed re-read is left to the next refresh. */
    op->reload_failed = s3s_is_ok(res) && s3s_failed(s_reload());
    uv_mutex_unlock(&s_shared.io);
    return res;
}

/* Thread pool: claims a bucket name for CreateBucket. A bucket the backend
 * has already belongs to its configured owner (or account_id), whoever asks
 * to create it again; a new name is recorded for the caller's account in
 * one keystore transaction, unless another claim came first. */
static s3s_result s_claim(struct s3s_bucket_enc_op *op)
{
    s3s_result res = s_bucket_exists(op->cfg, op->bucket);
    if (s3s_is_ok(res)) {
        const struct s3s_config_bucket *b =
            s3s_config_find_bucket(op->cfg, s3s_cur_from_str(op->bucket));
        const char *owner = op->recorded[0] ? op->recorded
                            : b && b->owner ? b->owner
                                            : op->cfg->account_id;
        return strcmp(owner, op->account) == 0 ? s3s_ok()
                                               : s3s_err(S3S_ERR_BUCKET_ALREADY_EXISTS);
    }
    if (res.code != S3S_ERR_NO_SUCH_BUCKET) {
        return res;
    }
    char owner[13];
    uv_mutex_lock(&s_shared.io);
    /* A name recorded for another account whose bucket is gone (deleted,
     * perhaps directly on the backend) is free again. */
    const char *stale =
        op->recorded[0] && strcmp(op->recorded, op->account) != 0 ? op->recorded : NULL;
    res = s_shared.ks ? s3s_keystore_bucket_owner_claim(s_shared.ks, op->bucket, op->account,
                                                        stale, owner)
                      : s3s_err(S3S_ERR_BUCKET_POLICY_NO_KEYSTORE);
    if (s3s_is_ok(res)) {
        op->claimed = strcmp(owner, op->account) == 0;
        op->reload_failed = s3s_failed(s_reload());
    }
    uv_mutex_unlock(&s_shared.io);
    S3S_GUARD(res);
    return op->claimed ? s3s_ok() : s3s_err(S3S_ERR_BUCKET_ALREADY_EXISTS);
}

/* Thread pool: PutBucketPolicy's document, validated as AWS does, stored. */
static s3s_result s_policy_put(struct s3s_bucket_enc_op *op)
{
    struct s3s_cur text = s3s_buf_cur(&op->body);
    struct s3s_policy *p = NULL;
    s3s_result res = s3s_policy_parse_kind(text, S3S_POLICY_KIND_BUCKET, &p, op->why,
                                           sizeof(op->why));
    if (res.code == S3S_ERR_KMS_MALFORMED_POLICY) {
        return s3s_err(S3S_ERR_MALFORMED_POLICY);
    }
    S3S_GUARD(res);
    bool within = s3s_policy_resources_within(p, op->bucket);
    s3s_policy_free(p);
    if (!within) {
        snprintf(op->why, sizeof(op->why), "Policy has invalid resource");
        S3S_BAIL(S3S_ERR_MALFORMED_POLICY);
    }
    char *copy = s3s_strndup((const char *)text.ptr, text.len);
    S3S_ENSURE(copy != NULL, S3S_ERR_NOMEM);
    bool changed = false;
    uv_mutex_lock(&s_shared.io);
    res = s_shared.ks ? s3s_keystore_bucket_policy_put(s_shared.ks, op->bucket, copy, &changed)
                      : s3s_err(S3S_ERR_BUCKET_POLICY_NO_KEYSTORE);
    op->reload_failed = s3s_is_ok(res) && s3s_failed(s_reload());
    uv_mutex_unlock(&s_shared.io);
    s3s_free(&copy);
    return res;
}

/* Thread pool: the bookkeeping after CreateBucket or DeleteBucket. */
static s3s_result s_after_work(struct s3s_bucket_enc_op *op)
{
    uv_mutex_lock(&s_shared.io);
    s3s_result res = s3s_ok();
    if (s_shared.ks) {
        res = op->kind == S_RELEASE
                  ? s3s_keystore_bucket_owner_release(s_shared.ks, op->bucket, op->account)
                  : s3s_keystore_bucket_forget(s_shared.ks, op->bucket, op->recorded);
        if (s3s_is_ok(res)) {
            res = s_reload();
        }
    }
    uv_mutex_unlock(&s_shared.io);
    return res;
}

static void s_op_work(uv_work_t *work)
{
    struct s3s_bucket_enc_op *op = work->data;
    if (op->kind == S_CLAIM) {
        op->error = s_claim(op).code;
        return;
    }
    if (op->kind == S_RELEASE || op->kind == S_FORGET) {
        op->error = s_after_work(op).code;
        return;
    }
    s3s_result res = s_bucket_exists(op->cfg, op->bucket);
    if (s3s_failed(res)) {
        op->why[0] = '\0'; /* a document's reason, not this error's */
    }
    if (s3s_is_ok(res) && op->what == S_CORS && op->kind != S_GET) {
        res = s_cors_store(op);
    } else if (s3s_is_ok(res) && op->what == S_CORS) {
        /* GetBucketCors answers from the table (s_op_done). */
    } else if (s3s_is_ok(res) && op->what != S_ENCRYPTION) {
        if (op->kind == S_PUT) {
            res = s_policy_put(op);
        } else if (op->kind == S_DELETE) {
            bool changed = false;
            uv_mutex_lock(&s_shared.io);
            res = s_shared.ks ? s3s_keystore_bucket_policy_put(s_shared.ks, op->bucket, NULL,
                                                               &changed)
                              : s3s_err(S3S_ERR_BUCKET_POLICY_NO_KEYSTORE);
            op->reload_failed = s3s_is_ok(res) && s3s_failed(s_reload());
            uv_mutex_unlock(&s_shared.io);
        }
    } else if (s3s_is_ok(res) && op->kind == S_PUT) {
        /* Parsed on the loop (s_queue). */
        res = op->rule_error == S3S_OK ? s_store(op, &op->rule) : s3s_err(op->rule_error);
    } else if (s3s_is_ok(res) && op->kind == S_DELETE) {
        res = s_store(op, NULL);
    }
    op->error = res.code;
}

/* A success answer, through the same path as the backend's. */
static void s_respond_typed(struct s3s_req *r, int status, struct s3s_cur body,
                            const char *type)
{
    char date[30];
    s3s_time_format_http(s3s_now_real(NULL), date);
    s3s_result res = s3s_buf_appendf(&r->resp_head, "Date: %s\r\nServer: s3seal\r\n", date);
    if (s3s_is_ok(res) && body.len) {
        res = s3s_buf_appendf(&r->resp_head, "Content-Type: %s\r\n", type);
    }
    r->up_status = status;
    r->resp_has_length = status != 204;
    r->resp_length = body.len;
    if (s3s_is_ok(res)) {
        res = s3s_upstream_send_head(r);
    }
    if (s3s_is_ok(res) && body.len) {
        res = s3s_conn_write(r->conn, body.ptr, body.len);
    }
    if (s3s_failed(res)) {
        s3s_req_send_error(r, S3S_ERR_INTERNAL, NULL);
        return;
    }
    r->resp_body_sent = body.len;
    r->upstream_done = true;
    r->upstream_result = CURLE_OK;
    s3s_req_upstream_finished(r);
}

static void s_respond(struct s3s_req *r, int status, struct s3s_cur body)
{
    s_respond_typed(r, status, body, "application/xml");
}

/* GetBucketPolicy and GetBucketPolicyStatus, from the worker's table. */
/* GetBucketLocation: s3seal's region, empty for us-east-1 as S3 answers. */
static void s_location_answer(struct s3s_req *r)
{
    const char *region = r->cfg->region ? r->cfg->region : "us-east-1";
    char xml[256];
    int n = snprintf(xml, sizeof(xml),
                     "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<LocationConstraint xmlns=\"" S_NS
                     "\">%s</LocationConstraint>",
                     strcmp(region, "us-east-1") == 0 ? "" : region);
    s_respond(r, 200, s3s_cur_from(xml, (size_t)n < sizeof(xml) ? (size_t)n : 0));
}

static void s_policy_answer(struct s3s_req *r, enum s_what what)
{
    const struct s_entry *e = s_find(s_current(r->conn->w), s3s_buf_cur(&r->bucket));
    if (!e || !e->policy_text) {
        s3s_req_send_error(r, S3S_ERR_NO_SUCH_BUCKET_POLICY, NULL);
        return;
    }
    if (what == S_POLICY) {
        s_respond_typed(r, 200, s3s_cur_from_str(e->policy_text), "application/json");
        return;
    }
    char xml[256];
    int n = snprintf(xml, sizeof(xml),
                     "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<PolicyStatus xmlns=\"" S_NS
                     "\"><IsPublic>%s</IsPublic></PolicyStatus>",
                     s3s_policy_is_public(e->policy) ? "true" : "false");
    s_respond(r, 200, s3s_cur_from(xml, (size_t)n));
}

/* GetBucketCors, from the worker's table: the document as stored. */
static void s_cors_answer(struct s3s_req *r)
{
    const struct s_entry *e = s_find(s_current(r->conn->w), s3s_buf_cur(&r->bucket));
    if (!e || !e->cors_text) {
        s3s_req_send_error(r, S3S_ERR_NO_SUCH_CORS, NULL);
        return;
    }
    s_respond(r, 200, s3s_cur_from_str(e->cors_text));
}

static void s_after_done(uv_work_t *work, int status);

static void s_op_done(uv_work_t *work, int status)
{
    struct s3s_bucket_enc_op *op = work->data;
    struct s3s_req *r = op->req;
    op->queued = false;
    if (!r && op->kind == S_CLAIM && status == 0 && op->error == S3S_OK && op->claimed) {
        /* The client left while the name was claimed for it: no bucket
         * was created, so the name is taken back (as after a failed
         * CreateBucket), not kept for an account that has no bucket. */
        op->kind = S_RELEASE;
        if (uv_queue_work(work->loop, &op->work, s_op_work, s_after_done) == 0) {
            return;
        }
        S3S_LOGW("bucket_enc", "bucket %s: cannot take back the claim of a client that left",
                 op->bucket);
    }
    if (!r) {
        s_op_free(op); /* the request went away meanwhile */
        return;
    }
    r->keystore_waits--;
    if (op->reload_failed) {
        S3S_LOGW("bucket_enc", "req=%s stored, but re-reading the table failed: applied from "
                               "the next refresh on",
                 r->id);
    }
    int32_t err = status != 0 ? S3S_ERR_INTERNAL : op->error;
    enum s_kind kind = op->kind;
    enum s_what what = op->what;
    if (kind == S_CLAIM) {
        /* The request goes on to the backend (or is refused) from where it
         * paused. */
        r->bucket_enc = NULL;
        r->bucket_claimed = op->claimed;
        r->accept_error = err;
        s_op_free(op);
        s3s_req_headers_resume(r);
        return;
    }
    /* From here on, answering the request releases (frees) the op. */
    if (err != S3S_OK) {
        char why[sizeof(op->why)];
        snprintf(why, sizeof(why), "%s", op->why);
        s3s_req_send_error(r, err, why[0] ? why : NULL);
        return;
    }
    if (what == S_CORS) {
        if (kind == S_GET) {
            s_cors_answer(r);
        } else {
            s_respond(r, kind == S_PUT ? 200 : 204, s3s_cur_from(NULL, 0));
        }
        return;
    }
    if (what != S_ENCRYPTION) {
        if (kind == S_GET) {
            if (what == S_LOCATION) {
                s_location_answer(r);
            } else {
                s_policy_answer(r, what);
            }
        } else {
            s_respond(r, 204, s3s_cur_from(NULL, 0));
        }
        return;
    }
    if (kind == S_PUT) {
        s_respond(r, 200, s3s_cur_from(NULL, 0));
        return;
    }
    if (kind == S_DELETE) {
        s_respond(r, 204, s3s_cur_from(NULL, 0));
        return;
    }
    struct s3s_bucket_enc_rule rule;
    if (!s_effective_rule(r->conn->w, s3s_buf_cur(&r->bucket), &rule)) {
        s3s_req_send_error(r, S3S_ERR_SSE_CONFIG_NOT_FOUND, NULL);
        return;
    }
    struct s3s_buf xml;
    s3s_result res = s3s_buf_init(&xml, 0, 16384);
    if (s3s_is_ok(res)) {
        res = s3s_bucket_enc_format(&rule, &xml);
    }
    if (s3s_is_ok(res)) {
        s_respond(r, 200, s3s_buf_cur(&xml));
    } else {
        s3s_req_send_error(r, res.code, NULL);
    }
    s3s_buf_clean_up(&xml);
}

/* PutBucketEncryption naming a KMS key: the key must be one the bucket's
 * owner may use for new data keys (its state and its policy for the
 * owner's root), or a principal allowed to set the default could name a
 * key another account controls, and the owner's next uploads would be
 * sealed under it. Checked on the loop (the key view lives there), before
 * anything is stored. */
static s3s_result s_check_default_key(struct s3s_req *r, const struct s3s_bucket_enc_rule *rule)
{
    if (rule->mode != S3S_SSE_KMS || !rule->kms_key_id) {
        return s3s_ok();
    }
    struct s3s_worker *w = r->conn->w;
    struct s3s_bucket_access ba;
    s3s_bucket_access(w, s3s_buf_cur(&r->bucket), &ba);
    char principal[64], bucket[256];
    snprintf(principal, sizeof(principal), "arn:aws:iam::%s:root", ba.owner);
    snprintf(bucket, sizeof(bucket), "%.*s", (int)r->bucket.len, (const char *)r->bucket.ptr);
    struct s3s_kms_caller owner = {principal, ba.owner, r->access_key, r->conn->remote_ip, r->id};
    struct s3s_kms_use use = {0};
    use.caller = &owner;
    use.bucket = bucket;
    s3s_result res = w->has_kms ? s3s_kms_view_resolve(&w->kms, rule->kms_key_id, &use)
                                : s3s_err(S3S_ERR_KEYSTORE);
    if (s3s_failed(res)) {
        S3S_LOGI("bucket_enc", "req=%s refused: KMS key %s is not usable by the bucket's owner "
                               "(%s): %s",
                 r->id, rule->kms_key_id, ba.owner, s3s_strerror(res.code));
        if (use.message[0]) {
            snprintf(r->err_detail, sizeof(r->err_detail), "%s", use.message);
        }
    }
    return res;
}

static s3s_result s_queue(struct s3s_req *r)
{
    struct s3s_bucket_enc_op *op = r->bucket_enc;
    struct s3s_cur body = s3s_cur_from(r->upload.ptr + r->upload_off,
                                       r->upload.len - r->upload_off);
    if (op->kind == S_PUT && op->what == S_ENCRYPTION) {
        op->rule_error = s3s_bucket_enc_parse(body, &op->rule).code;
        if (op->rule_error == S3S_OK) {
            S3S_GUARD(s_check_default_key(r, &op->rule));
        }
    } else if (op->kind == S_PUT && op->what == S_CORS) {
        /* Validated here, stored in the form GetBucketCors returns; a
         * refusal is answered after the bucket's existence, as AWS does. */
        struct s3s_cors_config *cors = NULL;
        op->rule_error = s3s_cors_parse(body, &cors, op->why, sizeof(op->why)).code;
        if (op->rule_error == S3S_OK) {
            s3s_result fr = s3s_buf_init(&op->body, 0, 4 * S3S_CORS_MAX_BODY);
            if (s3s_is_ok(fr)) {
                fr = s3s_cors_format(cors, &op->body);
            }
            op->rule_error = fr.code;
        }
        s3s_cors_free(cors);
    } else if (op->kind == S_PUT) {
        /* A bucket policy, parsed on the pool thread. */
        S3S_GUARD(s3s_buf_init(&op->body, 0, S3S_BUCKET_ENC_MAX_BODY));
        S3S_GUARD(s3s_buf_append_cur(&op->body, body));
    }
    op->work.data = op;
    S3S_ENSURE(uv_queue_work(&r->conn->w->loop, &op->work, s_op_work, s_op_done) == 0,
               S3S_ERR_INTERNAL);
    op->queued = true;
    r->keystore_waits++;
    return s3s_ok();
}

s3s_result s3s_bucket_enc_start(struct s3s_req *r)
{
    /* With a body still to come, s3s_bucket_enc_kick starts it. */
    return r->body_complete ? s_queue(r) : s3s_ok();
}

void s3s_bucket_enc_kick(struct s3s_req *r)
{
    struct s3s_bucket_enc_op *op = r->bucket_enc;
    /* The body must be in and checked (its digests may still be hashing on
     * the thread pool: hasher.h, which kicks again when they are done). */
    if (op->queued || !r->body_complete || !(r->body_verified || r->body_failed) ||
        r->phase == S3S_PHASE_DONE) {
        return;
    }
    s3s_result res = r->body_failed ? (s3s_result){r->body_error} : s_queue(r);
    if (s3s_failed(res)) {
        s3s_req_send_error(r, res.code, NULL);
    }
}

/* Bookkeeping that no answer waits for, on the thread pool. */
static void s_after_done(uv_work_t *work, int status)
{
    struct s3s_bucket_enc_op *op = work->data;
    if (status != 0 || op->error != S3S_OK) {
        S3S_LOGW("bucket_enc", "bucket %s: %s failed: %s", op->bucket,
                 op->kind == S_RELEASE ? "taking back the owner's claim"
                                       : "forgetting the deleted bucket's settings",
                 s3s_strerror(status != 0 ? S3S_ERR_INTERNAL : op->error));
    }
    s_op_free(op);
}

static void s_after(struct s3s_req *r)
{
    struct s3s_worker *w = r->conn->w;
    bool ok = r->up_status >= 200 && r->up_status < 300;
    enum s_kind kind;
    if (r->op == S3S_OP_CREATE_BUCKET && r->bucket_claimed && !ok) {
        kind = S_RELEASE;
    } else if (r->op == S3S_OP_DELETE_BUCKET && r->up_status == 204 && !r->bucket_forgotten &&
               w->bucket_enc && w->bucket_enc->persist) {
        kind = S_FORGET;
    } else {
        return;
    }
    r->bucket_claimed = false;
    r->bucket_forgotten = true;
    struct s3s_bucket_enc_op *op = s3s_calloc(1, sizeof(*op));
    if (op) {
        op->kind = kind;
        op->cfg = s3s_config_acquire(w->cfg);
        snprintf(op->account, sizeof(op->account), "%s", r->account);
        /* The owner at the time of the deletion: a later claim stands. */
        struct s3s_bucket_access ba;
        s3s_bucket_access(w, s3s_buf_cur(&r->bucket), &ba);
        snprintf(op->recorded, sizeof(op->recorded), "%s", ba.owner);
        op->bucket = s3s_strndup((const char *)r->bucket.ptr, r->bucket.len);
        op->work.data = op;
    }
    if (!op || !op->bucket ||
        uv_queue_work(&w->loop, &op->work, s_op_work, s_after_done) != 0) {
        S3S_LOGW("bucket_enc", "req=%s cannot record the bucket's %s", r->id,
                 kind == S_RELEASE ? "failed creation" : "deletion");
        if (op) {
            s_op_free(op);
        }
    }
}

s3s_result s3s_bucket_claim_start(struct s3s_req *r, const char *account,
                                  const char *recorded_owner)
{
    struct s3s_bucket_enc_op *op = s3s_calloc(1, sizeof(*op));
    S3S_ENSURE(op != NULL, S3S_ERR_NOMEM);
    op->req = r;
    op->cfg = s3s_config_acquire(r->cfg);
    op->kind = S_CLAIM;
    snprintf(op->account, sizeof(op->account), "%s", account);
    snprintf(op->recorded, sizeof(op->recorded), "%s", recorded_owner ? recorded_owner : "");
    op->bucket = s3s_strndup((const char *)r->bucket.ptr, r->bucket.len);
    if (!op->bucket) {
        s_op_free(op);
        S3S_BAIL(S3S_ERR_NOMEM);
    }
    r->bucket_enc = op;
    s3s_result res = s_queue(r);
    if (s3s_failed(res)) {
        r->bucket_enc = NULL;
        s_op_free(op);
    }
    return res;
}

const struct s3s_cors_config *s3s_bucket_cors(struct s3s_worker *w, struct s3s_cur bucket)
{
    const struct s_entry *e = s_find(s_current(w), bucket);
    return e ? e->cors : NULL;
}

bool s3s_bucket_enc_persist(struct s3s_worker *w)
{
    return w->bucket_enc && w->bucket_enc->persist;
}

void s3s_bucket_access(struct s3s_worker *w, struct s3s_cur bucket,
                       struct s3s_bucket_access *out)
{
    const struct s_entry *e = s_find(s_current(w), bucket);
    const struct s3s_config_bucket *b = s3s_config_find_bucket(w->cfg, bucket);
    out->recorded = (e && e->owner) || (b && b->owner);
    out->owner = e && e->owner ? e->owner : b && b->owner ? b->owner : w->cfg->account_id;
    out->policy = e ? e->policy : NULL;
    out->policy_unreadable = e && e->policy_text && !e->policy;
}

void s3s_bucket_enc_release(struct s3s_req *r)
{
    s_after(r);
    struct s3s_bucket_enc_op *op = r->bucket_enc;
    if (!op) {
        return;
    }
    r->bucket_enc = NULL;
    if (op->queued) {
        op->req = NULL; /* freed by s_op_done */
        return;
    }
    s_op_free(op);
}

/* ------------------------------------------------------------- the stage */

static s3s_result s_stage_head(struct s3s_req *r, bool *wait)
{
    (void)wait;
    return s3s_bucket_enc_accept(r);
}

/* The bucket APIs s3seal answers itself never reach the backend. */
static s3s_result s_stage_start(struct s3s_req *r, bool *taken)
{
    if (!r->bucket_enc) {
        return s3s_ok();
    }
    *taken = true;
    return s3s_bucket_enc_start(r);
}

const struct s3s_stage s3s_stage_bucket_enc = {
    .name = "bucket_enc",
    .on_head = s_stage_head,
    .on_start = s_stage_start,
    .on_release = s3s_bucket_enc_release,
};
