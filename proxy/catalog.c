/*
 * catalog.c - the catalog stage: what S3 would say of an object s3seal
 * stored encrypted, where the backend cannot say it (keystore.h, "the
 * catalog's entries").
 *
 * - PutObject of an encrypted object: once the backend has stored it, its
 *   entry (the backend's ETag -> plaintext size and the ETag the answer
 *   gives: the plaintext's MD5 for SSE-S3, the backend's for SSE-KMS, whose
 *   ETags are no MD5 in S3 either) is written before the client's answer
 *   leaves. If it cannot be (the keystore out of reach), the client still
 *   gets the backend's answer: the object is stored, whole and readable,
 *   and an error would leave it behind a failed request; it is listed as
 *   stored until `s3seal catalog rebuild` records it (a warning says so).
 * - CompleteMultipartUpload of an encrypted upload: likewise, with the
 *   object's plaintext size (the layout check's, sse_mpu.c) and its ETag.
 * - GET and HEAD of an encrypted single-part object whose plaintext MD5 is
 *   not in its metadata: the entry gives the ETag the PUT answered, so
 *   HEAD, GET and the ETag conditions (If-Match, If-None-Match, If-Range:
 *   sse_get.c) agree with it. A process-wide cache keeps entries read
 *   lately: an entry never changes meaning (its key names one stored
 *   object), so a cached one is never stale. Without the keystore the
 *   backend's ETag is given, and a warning logged.
 * - Object listings (V1, V2, versions): each page's entries are looked up
 *   at once, on the thread pool, and their Size and ETag rewritten
 *   (listing.c); objects without an entry (written before the catalog, or
 *   behind s3seal's back, or never encrypted) are listed as stored. If the
 *   catalog cannot be read the listing is refused with 503: wrong sizes
 *   would make sync tools copy everything again.
 * The keystore work runs on the upload registry's handle (upload_reg.c).
 */
#include <openssl/evp.h>
#include <string.h>

#include "common/log.h"
#include "keystore/keystore.h"
#include "proxy/proxy.h"
#include "proxy/stage.h"

/* r->catalog_step */
enum {
    S_NONE = 0,
    S_PUT,      /* PutObject: record the entry once stored */
    S_COMPLETE, /* CompleteMultipartUpload: record once completed */
    S_READ,     /* GET / HEAD: the entry's ETag, if needed */
    S_LISTING,  /* a listing page: rewritten from the entries */
    S_COPY,     /* CopyObject: the copy's entry, from its source's */
    S_DONE,
};

/* ------------------------------------------------------------- the cache */

#define S_CACHE_SLOTS 4096

struct s_slot {
    uint64_t hash;
    char *name; /* bucket NUL key NUL etag, as one allocation */
    size_t name_len;
    struct s3s_keystore_entry entry;
};

static struct {
    uv_mutex_t mu;
    struct s_slot slots[S_CACHE_SLOTS];
} s_cache;
static uv_once_t s_cache_once = UV_ONCE_INIT;

static void s_cache_init(void)
{
    if (uv_mutex_init(&s_cache.mu) != 0) {
        abort();
    }
}

/* bucket NUL key NUL etag in `out`, and its FNV-1a hash. */
static s3s_result s_cache_name(const struct s3s_req *r, struct s3s_cur etag, struct s3s_buf *out,
                               uint64_t *hash)
{
    S3S_GUARD(s3s_buf_init(out, 0, r->bucket.len + r->key.len + etag.len + 2));
    S3S_GUARD(s3s_buf_append_cur(out, s3s_buf_cur(&r->bucket)));
    S3S_GUARD(s3s_buf_append_byte(out, 0));
    S3S_GUARD(s3s_buf_append_cur(out, s3s_buf_cur(&r->key)));
    S3S_GUARD(s3s_buf_append_byte(out, 0));
    S3S_GUARD(s3s_buf_append_cur(out, etag));
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < out->len; i++) {
        h = (h ^ out->ptr[i]) * 1099511628211ull;
    }
    *hash = h;
    return s3s_ok();
}

static bool s_cache_get(const struct s3s_buf *name, uint64_t hash, struct s3s_keystore_entry *e)
{
    uv_once(&s_cache_once, s_cache_init);
    uv_mutex_lock(&s_cache.mu);
    struct s_slot *s = &s_cache.slots[hash % S_CACHE_SLOTS];
    bool hit = s->name && s->hash == hash && s->name_len == name->len &&
               memcmp(s->name, name->ptr, name->len) == 0;
    if (hit) {
        *e = s->entry;
    }
    uv_mutex_unlock(&s_cache.mu);
    return hit;
}

static void s_cache_put(const struct s3s_buf *name, uint64_t hash,
                        const struct s3s_keystore_entry *e)
{
    char *copy = s3s_malloc(name->len ? name->len : 1);
    if (!copy) {
        return;
    }
    memcpy(copy, name->ptr, name->len);
    uv_once(&s_cache_once, s_cache_init);
    uv_mutex_lock(&s_cache.mu);
    struct s_slot *s = &s_cache.slots[hash % S_CACHE_SLOTS];
    char *old = s->name;
    *s = (struct s_slot){hash, copy, name->len, *e};
    uv_mutex_unlock(&s_cache.mu);
    s3s_free(&old);
}

/* ------------------------------------------------------------- requests */

static void s_set_etag(struct s3s_req *r, const struct s3s_keystore_entry *e)
{
    snprintf(r->catalog_etag, sizeof(r->catalog_etag), "\"%s\"", e->plain_etag);
}

static s3s_result s_on_head(struct s3s_req *r, bool *wait)
{
    (void)wait;
    r->catalog_step = S_NONE;
    if (!r->conn->w->upload_reg) {
        return s3s_ok(); /* no keystore: nothing to keep entries in */
    }
    switch (r->op) {
    case S3S_OP_PUT_OBJECT:
        r->catalog_step = S_PUT; /* if it is encrypted: known later */
        break;
    case S3S_OP_COMPLETE_MPU:
        r->catalog_step = S_COMPLETE;
        break;
    case S3S_OP_GET_OBJECT:
    case S3S_OP_HEAD_OBJECT:
        r->catalog_step = S_READ;
        break;
    case S3S_OP_COPY_OBJECT:
        r->catalog_step = S_COPY;
        break;
    case S3S_OP_LIST_OBJECTS:
        r->catalog_step = S_LISTING;
        if (r->rewrite_kind == S3S_REWRITE_NONE) {
            r->rewrite_kind = S3S_REWRITE_LISTING;
            return s3s_buf_init(&r->listing, 0, 64u * 1024 * 1024);
        }
        break;
    default:
        break;
    }
    return s3s_ok();
}

/* The object is stored and whole, and readable without its entry: the
 * client is answered as the backend answered. Without the entry, listings
 * and HEAD show it as stored until `s3seal catalog rebuild` (or the
 * client's next write of it) records it. Failing the request instead
 * would leave a stored object behind an error answer. */
static void s_unrecorded(struct s3s_req *r, int32_t err)
{
    if (err != S3S_OK) {
        S3S_LOGW("catalog", "req=%s the object is stored but its entry is not: %s (s3seal "
                            "catalog rebuild records it)",
                 r->id, s3s_strerror(err));
    }
}

static void s_recorded(struct s3s_req *r, int32_t err, bool found,
                       const struct s3s_keystore_entry *e)
{
    (void)found;
    (void)e;
    r->catalog_step = S_DONE;
    s_unrecorded(r, err);
    s3s_req_reply_resume(r);
}

static void s_found(struct s3s_req *r, int32_t err, bool found, const struct s3s_keystore_entry *e)
{
    r->catalog_step = S_DONE;
    if (err != S3S_OK) {
        S3S_LOGW("catalog", "req=%s the object's ETag is the backend's: %s", r->id,
                 s3s_strerror(err));
    } else if (found) {
        s_set_etag(r, e);
        struct s3s_buf name;
        uint64_t hash = 0;
        if (s3s_is_ok(s_cache_name(r, s3s_cur_unquote(s3s_cur_from_str(r->resp_etag)), &name, &hash))) {
            s_cache_put(&name, hash, e);
        }
        s3s_buf_clean_up(&name);
    }
    s3s_req_reply_resume(r);
}

static bool s_has_meta(const struct s3s_req *r, const char *name)
{
    struct s3s_cur v;
    return s3s_hdrlist_get((void *)&r->resp_meta, name, &v);
}

/* PutObject: the entry of what the backend stored. */
static s3s_result s_reply_put(struct s3s_req *r, bool *wait)
{
    r->catalog_step = S_DONE;
    struct s3s_cur etag = s3s_cur_unquote(s3s_cur_from_str(r->resp_etag));
    if (!r->enc || r->up_status != 200 || etag.len == 0) {
        return s3s_ok();
    }
    /* The ETag the answer gives: the plaintext's MD5 where s3seal has it
     * (SSE-S3), else the backend's (SSE-KMS: no MD5, as in S3). */
    char answered[S3S_KEYSTORE_ETAG_MAX + 3];
    struct s3s_cur plain = {0};
    if (s3s_sse_client_etag(r, answered, sizeof(answered))) {
        plain = s3s_cur_unquote(s3s_cur_from_str(answered));
    }
    struct s3s_keystore_entry e = {.size = r->content_length};
    if (plain.len == 0 || plain.len > S3S_KEYSTORE_ETAG_MAX) {
        return s3s_ok();
    }
    memcpy(e.plain_etag, plain.ptr, plain.len);
    S3S_GUARD(s3s_entry_record(r, etag, &e, s_recorded));
    *wait = true;
    return s3s_ok();
}

/* GET / HEAD: an encrypted single-part object's ETag, where its metadata
 * does not have its MD5. A multipart object's ETag is the backend's. */
static s3s_result s_reply_read(struct s3s_req *r, bool *wait)
{
    r->catalog_step = S_DONE;
    r->catalog_etag[0] = '\0';
    struct s3s_cur etag = s3s_cur_unquote(s3s_cur_from_str(r->resp_etag));
    if ((r->up_status != 200 && r->up_status != 206) || etag.len == 0 ||
        memchr(etag.ptr, '-', etag.len) || !s3s_sse_meta_present(s3s_hdrlist_get, &r->resp_meta) ||
        s_has_meta(r, S3S_SSE_META_PREFIX "md5")) {
        return s3s_ok();
    }
    struct s3s_buf name;
    uint64_t hash = 0;
    struct s3s_keystore_entry e;
    s3s_result res = s_cache_name(r, etag, &name, &hash);
    bool hit = s3s_is_ok(res) && s_cache_get(&name, hash, &e);
    s3s_buf_clean_up(&name);
    S3S_GUARD(res);
    if (hit) {
        s_set_etag(r, &e);
        return s3s_ok();
    }
    S3S_GUARD(s3s_entry_lookup(r, s3s_buf_cur(&r->bucket), s3s_buf_cur(&r->key), etag, s_found));
    *wait = true;
    return s3s_ok();
}

static s3s_result s_on_reply(struct s3s_req *r, bool *wait)
{
    switch (r->catalog_step) {
    case S_PUT:
        return s_reply_put(r, wait);
    case S_READ:
        return s_reply_read(r, wait);
    default:
        return s3s_ok();
    }
}

/* The listing page, rewritten; or CompleteMultipartUpload, recorded. */
static void s_listed(struct s3s_req *r, int32_t err, bool found,
                     const struct s3s_keystore_entry *e)
{
    (void)found;
    (void)e;
    r->catalog_step = S_DONE;
    if (err != S3S_OK) {
        s3s_req_send_error(r, err, NULL);
        return;
    }
    r->rewrite_kind = S3S_REWRITE_DONE;
    s3s_req_upstream_finished(r);
}

static void s_completed(struct s3s_req *r, int32_t err, bool found,
                        const struct s3s_keystore_entry *e)
{
    (void)found;
    (void)e;
    r->catalog_step = S_DONE;
    s_unrecorded(r, err);
    s3s_req_upstream_finished(r);
}

/* ------------------------------------------------------------- copies */

/* The copy's entry is in (or failed): its answer, with the ETag the
 * entry gives. */
static void s_copy_recorded(struct s3s_req *r, int32_t err, bool found,
                            const struct s3s_keystore_entry *e)
{
    (void)found;
    (void)e;
    r->catalog_step = S_DONE;
    s_unrecorded(r, err);
    const char *plain = r->copy_src.plain_etag;
    if (r->rewrite_kind == S3S_REWRITE_COPY_RESULT) {
        /* A streamed copy's result document is s3seal's own (sse_copy.c). */
        snprintf(r->resp_etag, sizeof(r->resp_etag), "\"%s\"", plain);
    } else {
        struct s3s_buf out;
        s3s_result res = s3s_buf_init(&out, 0, r->listing.max + 1024);
        if (s3s_is_ok(res)) {
            res = s3s_xml_copy_set_etag(s3s_buf_cur(&r->listing), plain, &out);
        }
        if (s3s_failed(res)) {
            s3s_buf_clean_up(&out);
            s3s_req_send_error(r, res.code, NULL);
            return;
        }
        s3s_buf_clean_up(&r->listing);
        r->listing = out;
        r->rewrite_kind = S3S_REWRITE_DONE;
    }
    s3s_req_upstream_finished(r);
}

/* The copy's backend ETag (unquoted) into `etag`; empty when the answer
 * is no copy result. */
static s3s_result s_copy_etag(struct s3s_req *r, char *etag, size_t cap)
{
    etag[0] = '\0';
    struct s3s_buf doc;
    S3S_GUARD(s3s_buf_init(&doc, 0, 256));
    s3s_result res = s3s_ok();
    struct s3s_cur v = s3s_cur_from_str(r->resp_etag); /* a streamed copy's PUT */
    if (r->rewrite_kind == S3S_REWRITE_COPY_REWRAP) {
        res = s3s_xml_copy_etag(s3s_buf_cur(&r->listing), &doc);
        v = s3s_buf_cur(&doc);
    }
    v = s3s_cur_unquote(v);
    if (s3s_is_ok(res) && v.len < cap && v.len <= S3S_KEYSTORE_ETAG_MAX) {
        memcpy(etag, v.ptr, v.len);
        etag[v.len] = '\0';
    }
    s3s_buf_clean_up(&doc);
    return res;
}

/* Records the copy's entry; *started false when the answer has no ETag
 * to record it under (nothing to do). */
static s3s_result s_copy_record(struct s3s_req *r, bool *started)
{
    *started = false;
    char etag[S3S_KEYSTORE_ETAG_MAX + 1];
    S3S_GUARD(s_copy_etag(r, etag, sizeof(etag)));
    struct s3s_keystore_entry e = {.size = r->copy_src.plain_size};
    size_t n = strlen(r->copy_src.plain_etag);
    if (!etag[0] || n == 0 || n > S3S_KEYSTORE_ETAG_MAX) {
        return s3s_ok();
    }
    memcpy(e.plain_etag, r->copy_src.plain_etag, n + 1);
    S3S_GUARD(s3s_entry_record(r, s3s_cur_from_str(etag), &e, s_copy_recorded));
    *started = true;
    return s3s_ok();
}

/* The source's entry: its ETag is the copy's. */
static void s_copy_src_found(struct s3s_req *r, int32_t err, bool found,
                             const struct s3s_keystore_entry *e)
{
    if (err != S3S_OK) {
        /* The source's ETag is unknown: the copy answers the backend's. */
        r->catalog_step = S_DONE;
        s_unrecorded(r, err);
        s3s_req_upstream_finished(r);
        return;
    }
    snprintf(r->copy_src.plain_etag, sizeof(r->copy_src.plain_etag), "%s",
             found ? e->plain_etag : r->copy_src.etag);
    bool started = false;
    s3s_result res = s_copy_record(r, &started);
    if (s3s_failed(res)) {
        r->catalog_step = S_DONE;
        s3s_req_send_error(r, res.code, NULL);
    } else if (!started) {
        r->catalog_step = S_DONE;
        s3s_req_upstream_finished(r);
    }
}

/* A copy into an encrypted object succeeded: its entry, from its source's
 * (looked up first when the probe could not tell the source's ETag). */
static s3s_result s_copy_answer(struct s3s_req *r, bool *taken)
{
    r->catalog_step = S_DONE;
    bool dst_encrypted = r->rewrite_kind == S3S_REWRITE_COPY_REWRAP ||
                         (r->rewrite_kind == S3S_REWRITE_COPY_RESULT && r->enc);
    if (!dst_encrypted || !r->copy_src.known) {
        return s3s_ok();
    }
    if (!r->copy_src.plain_etag[0]) {
        S3S_GUARD(s3s_entry_lookup(r, s3s_buf_cur(&r->copy_src.bucket),
                                   s3s_buf_cur(&r->copy_src.key),
                                   s3s_cur_from_str(r->copy_src.etag), s_copy_src_found));
        r->catalog_step = S_COPY; /* until the entry is in */
        *taken = true;
        return s3s_ok();
    }
    S3S_GUARD(s_copy_record(r, taken));
    r->catalog_step = *taken ? S_COPY : S_DONE;
    return s3s_ok();
}

static s3s_result s_on_answer(struct s3s_req *r, bool *taken)
{
    *taken = false;
    bool ok = r->upstream_result == CURLE_OK && !r->deferred_error && r->up_status == 200 &&
              r->hold_head && !r->resp_head_sent;
    if (r->catalog_step == S_LISTING && ok && r->rewrite_kind == S3S_REWRITE_LISTING) {
        S3S_GUARD(s3s_entry_listing(r, s_listed));
        *taken = true;
        return s3s_ok();
    }
    if (r->catalog_step == S_COPY && ok && r->probe_stage == 2) {
        return s_copy_answer(r, taken);
    }
    if (r->catalog_step == S_COMPLETE && ok && r->rewrite_kind == S3S_REWRITE_COMPLETE &&
        r->mpu_encrypted && r->mpu_plain_known) {
        r->catalog_step = S_DONE;
        struct s3s_buf etag;
        S3S_GUARD(s3s_buf_init(&etag, 0, 256));
        s3s_result res = s3s_xml_complete_etag(s3s_buf_cur(&r->listing), &etag);
        if (s3s_is_ok(res) && etag.len == 0 && s3s_xml_is_complete_result(s3s_buf_cur(&r->listing))) {
            /* Some backends (Ceph RGW) leave it empty: it is the one
             * computed from the parts' ETags, as the answer gives it. */
            res = s3s_buf_append_str(&etag, r->mpu_etag);
        }
        if (s3s_failed(res) || etag.len == 0) {
            s3s_buf_clean_up(&etag);
            return s3s_ok(); /* an error document, which the client gets */
        }
        struct s3s_cur v = s3s_cur_unquote(s3s_buf_cur(&etag));
        struct s3s_keystore_entry e = {.size = r->mpu_plain_size};
        if (v.len == 0 || v.len > S3S_KEYSTORE_ETAG_MAX) {
            s3s_buf_clean_up(&etag);
            S3S_BAIL(S3S_ERR_BAD_GATEWAY);
        }
        /* Its ETag is the backend's: the parts' ETags were (UploadPart). */
        memcpy(e.plain_etag, v.ptr, v.len);
        res = s3s_entry_record(r, v, &e, s_completed);
        s3s_buf_clean_up(&etag);
        S3S_GUARD(res);
        *taken = true;
    }
    return s3s_ok();
}

const struct s3s_stage s3s_stage_catalog = {
    .name = "catalog",
    .on_head = s_on_head,
    .on_answer = s_on_answer,
    .on_reply = s_on_reply,
};
