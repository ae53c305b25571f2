/*
 * upload_reg.c - see upload_reg.h.
 *
 * The process holds one keystore handle of its own for the registry,
 * guarded by `io`: pool threads take turns with it (a transaction at a
 * time); loop threads never touch it. A request's registry work is an op
 * with copies of what it needs (bucket, key, ids, the backend's document),
 * handed to the thread pool; its after-work callback carries the request
 * on from the loop. A request that goes away meanwhile leaves the op to be
 * freed by that callback. Forgetting an upload needs no answer: its op has
 * no request from the start.
 */
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "keystore/keystore.h"
#include "proxy/proxy.h"
#include "sse/upload_id.h"


static struct {
    uv_mutex_t io;           /* `ks` and `users` */
    struct s3s_keystore *ks; /* NULL without a configured keystore */
    int users;               /* attached workers */
    atomic_int_fast64_t last_prune;
} s_reg;
static uv_once_t s_once = UV_ONCE_INIT;

static void s_init_once(void)
{
    if (uv_mutex_init(&s_reg.io) != 0) {
        abort();
    }
}

s3s_result s3s_upload_reg_attach(struct s3s_worker *w)
{
    uv_once(&s_once, s_init_once);
    const struct s3s_config *cfg = w->cfg;
    char why[512] = "";
    s3s_result res = s3s_ok();
    uv_mutex_lock(&s_reg.io);
    if (s_reg.users == 0 && cfg->keystore.master_key_file) {
        res = s3s_keystore_open(cfg->keystore.path, cfg->keystore.master_key_file, true, &s_reg.ks,
                                why, sizeof(why));
    }
    /* A worker that failed to attach is not counted (detach skips it). */
    w->upload_reg_attached = s3s_is_ok(res);
    s_reg.users += w->upload_reg_attached;
    w->upload_reg = s_reg.ks != NULL;
    uv_mutex_unlock(&s_reg.io);
    if (s3s_failed(res)) {
        S3S_LOGE("upload_reg", "%s", why[0] ? why : "cannot open the keystore");
    }
    return res;
}

void s3s_upload_reg_detach(struct s3s_worker *w)
{
    if (!w->upload_reg_attached) {
        return;
    }
    /* The loop has run every after-work callback: no op is left. */
    w->upload_reg = false;
    w->upload_reg_attached = false;
    uv_mutex_lock(&s_reg.io);
    if (--s_reg.users == 0) {
        s3s_keystore_close(s_reg.ks);
        s_reg.ks = NULL;
    }
    uv_mutex_unlock(&s_reg.io);
}

/* ------------------------------------------------------------------ ops */

enum s_kind {
    S_RESOLVE, /* look up a backend id a request names */
    S_RECORD,  /* CreateMultipartUpload succeeded */
    S_LIST,    /* rewrite a ListMultipartUploads page */
    S_FORGET,  /* Complete or Abort succeeded */
    S_OBJECT_PUT, /* the catalog: a parts3 Complete is about to be sent */
    S_OBJECT_GET, /* the catalog: a parts3 object is read */
    S_ENTRY_PUT,  /* the catalog: an object was stored encrypted */
    S_ENTRY_GET,  /* the catalog: an object's entry, for its answer */
    S_ENTRY_LIST, /* the catalog: a listing page's entries */
};

struct s3s_upload_reg_op {
    uv_work_t work;
    struct s3s_req *req; /* NULL once the request is gone; loop thread only */
    enum s_kind kind;
    struct s3s_buf bucket, key, upload_id, suffix;
    struct s3s_buf doc; /* S_LIST: the backend's page in, the rewritten one out */
    struct s3s_buf out;
    char *found;   /* S_RESOLVE: the suffix, if the registry knows the upload */
    uint8_t object_id[S3S_SSE_OBJECT_ID_LEN]; /* S_OBJECT_* */
    struct s3s_keystore_object object;        /* in for PUT, out for GET */
    bool object_found;
    struct s3s_keystore_entry_ref entry; /* S_ENTRY_PUT (in), S_ENTRY_GET (out) */
    s3s_entry_done_fn *entry_done;       /* S_ENTRY_*: on the loop, with the request */
    int32_t error; /* set by the pool thread */
};

static void s_op_free(struct s3s_upload_reg_op *op)
{
    s3s_buf_clean_up(&op->bucket);
    s3s_buf_clean_up(&op->key);
    s3s_buf_clean_up(&op->upload_id);
    s3s_buf_clean_up(&op->suffix);
    s3s_buf_clean_up(&op->doc);
    s3s_buf_clean_up(&op->out);
    s3s_free(&op->found);
    s3s_free(&op);
}

static s3s_result s_op_new(struct s3s_req *r, enum s_kind kind, struct s3s_cur upload_id,
                           struct s3s_upload_reg_op **out)
{
    struct s3s_upload_reg_op *op = s3s_calloc(1, sizeof(*op));
    S3S_ENSURE(op != NULL, S3S_ERR_NOMEM);
    op->kind = kind;
    s3s_result res = s3s_buf_init(&op->bucket, 0, 1024);
    if (s3s_is_ok(res)) {
        res = s3s_buf_append_cur(&op->bucket, s3s_buf_cur(&r->bucket));
    }
    if (s3s_is_ok(res) && s3s_is_ok(res = s3s_buf_init(&op->key, 0, 4096))) {
        res = s3s_buf_append_cur(&op->key, s3s_buf_cur(&r->key));
    }
    if (s3s_is_ok(res) && s3s_is_ok(res = s3s_buf_init(&op->upload_id, 0, 4096))) {
        res = s3s_buf_append_cur(&op->upload_id, upload_id);
    }
    if (s3s_is_ok(res)) {
        res = s3s_buf_init(&op->suffix, 0, 1024);
    }
    if (s3s_failed(res)) {
        s_op_free(op);
        return res;
    }
    *out = op;
    return s3s_ok();
}

static s3s_result s_entry_lookup(void *ctx, struct s3s_keystore_entry_ref *refs, size_t n)
{
    struct s3s_upload_reg_op *op = ctx;
    return s3s_keystore_entry_get_many(s_reg.ks, s3s_buf_cur(&op->bucket), refs, n);
}

static s3s_result s_list_lookup(void *ctx, struct s3s_keystore_upload_ref *refs, size_t n)
{
    struct s3s_upload_reg_op *op = ctx;
    return s3s_keystore_upload_get_many(s_reg.ks, s3s_buf_cur(&op->bucket), refs, n);
}

/* Now and then, rows of uploads nobody completed or aborted through s3seal
 * go. Called with `io` held. */
static void s_maybe_prune(void)
{
    int64_t now = (int64_t)time(NULL);
    int_fast64_t last = atomic_load(&s_reg.last_prune);
    if (now - last < S3S_UPLOAD_REG_PRUNE_EVERY_S ||
        !atomic_compare_exchange_strong(&s_reg.last_prune, &last, now)) {
        return;
    }
    size_t n = 0;
    s3s_result res = s3s_keystore_upload_prune(s_reg.ks, now - S3S_KEYSTORE_UPLOAD_MAX_AGE_S, &n);
    if (s3s_failed(res)) {
        S3S_LOGW("upload_reg", "pruning old uploads failed: %s", s3s_strerror(res.code));
    } else if (n) {
        S3S_LOGI("upload_reg", "pruned %zu uploads older than %d days", n,
                 S3S_KEYSTORE_UPLOAD_MAX_AGE_S / 86400);
    }
}

static void s_work(uv_work_t *work)
{
    struct s3s_upload_reg_op *op = work->data;
    struct s3s_cur b = s3s_buf_cur(&op->bucket), k = s3s_buf_cur(&op->key);
    struct s3s_cur id = s3s_buf_cur(&op->upload_id);
    s3s_result res = s3s_ok();
    uv_mutex_lock(&s_reg.io);
    if (!s_reg.ks) {
        res = s3s_err(S3S_ERR_KEYSTORE);
    } else if (op->kind == S_RESOLVE) {
        res = s3s_keystore_upload_get(s_reg.ks, b, k, id, &op->found);
    } else if (op->kind == S_RECORD) {
        res = s3s_keystore_upload_put(s_reg.ks, b, k, id, s3s_buf_cur(&op->suffix));
        s_maybe_prune();
    } else if (op->kind == S_LIST) {
        res = s3s_listing_uploads(s3s_buf_cur(&op->doc), s_list_lookup, op, &op->out);
    } else if (op->kind == S_OBJECT_PUT) {
        res = s3s_keystore_object_put(s_reg.ks, op->object_id, b, k, &op->object);
    } else if (op->kind == S_OBJECT_GET) {
        res = s3s_keystore_object_get(s_reg.ks, op->object_id, &op->object, &op->object_found);
    } else if (op->kind == S_ENTRY_PUT) {
        res = s3s_keystore_entry_put(s_reg.ks, b, k, s3s_buf_cur(&op->upload_id),
                                     &op->entry.entry);
    } else if (op->kind == S_ENTRY_GET) {
        op->entry.key = k;
        op->entry.etag = s3s_buf_cur(&op->upload_id);
        res = s3s_keystore_entry_get_many(s_reg.ks, b, &op->entry, 1);
    } else if (op->kind == S_ENTRY_LIST) {
        res = s3s_listing_catalog(s3s_buf_cur(&op->doc), s_entry_lookup, op, &op->out);
    } else {
        res = s3s_keystore_upload_delete(s_reg.ks, b, k, id, NULL);
    }
    uv_mutex_unlock(&s_reg.io);
    op->error = res.code;
}

static void s_finish(struct s3s_upload_reg_op *op, int status);

/* On the loop, after the work. What the request's continuation did to its
 * transfers (an unpause can end one at once, with no socket event to tell)
 * is collected before the loop sleeps. */
static void s_done(uv_work_t *work, int status)
{
    struct s3s_upload_reg_op *op = work->data;
    struct s3s_worker *w = op->req ? op->req->conn->w : NULL;
    s_finish(op, status);
    if (w) {
        s3s_worker_check_multi(w);
    }
}

static void s_finish(struct s3s_upload_reg_op *op, int status)
{
    struct s3s_req *r = op->req;
    int32_t err = status != 0 ? S3S_ERR_INTERNAL : op->error;
    const char *id = r ? r->id : "-";
    if (err != S3S_OK) {
        static const char *const what[] = {
            "looking up an upload in the registry", "recording an upload in the registry",
            "listing uploads in the registry",     "forgetting an upload in the registry",
            "recording an object in the catalog",  "looking up an object in the catalog",
            "recording an object's entry in the catalog",
            "looking up an object's entry in the catalog",
            "looking up a listing's entries in the catalog"};
        S3S_LOGW("upload_reg", "req=%s %s failed: %s", id, what[op->kind], s3s_strerror(err));
    }
    if (!r) {
        s_op_free(op); /* the request went away meanwhile, or wants no answer */
        return;
    }
    r->upload_reg = NULL;
    r->keystore_waits--;
    /* The catalog's failures reach the client as the keystore's: 503 when
     * it is out of reach, else 500. */
    int32_t catalog_err = err == S3S_OK || err == S3S_ERR_KEYSTORE_UNAVAILABLE ? err
                                                                              : S3S_ERR_KEYSTORE;
    if (op->kind == S_OBJECT_PUT) {
        s_op_free(op);
        s3s_mpu_catalog_recorded(r, catalog_err);
        return;
    }
    if (op->kind == S_ENTRY_LIST && err == S3S_OK) {
        struct s3s_buf t = r->listing;
        r->listing = op->out;
        op->out = t;
    }
    if (op->kind == S_ENTRY_PUT || op->kind == S_ENTRY_GET || op->kind == S_ENTRY_LIST) {
        struct s3s_keystore_entry_ref ref = op->entry;
        s3s_entry_done_fn *done = op->entry_done;
        s_op_free(op);
        done(r, catalog_err, ref.found, &ref.entry);
        return;
    }
    if (op->kind == S_OBJECT_GET) {
        struct s3s_keystore_object o = op->object;
        bool found = op->object_found;
        s_op_free(op);
        s3s_mpu_catalog_found(r, catalog_err, found, &o);
        return;
    }
    if (op->kind == S_RESOLVE) {
        s3s_result res = s3s_ok();
        if (err == S3S_OK && op->found) {
            /* Served as if the client had sent s3seal's id (sse_mpu.c). */
            s3s_buf_reset(&r->mpu_reg_id);
            res = s3s_buf_append_cur(&r->mpu_reg_id, s3s_buf_cur(&op->upload_id));
            if (s3s_is_ok(res)) {
                res = s3s_buf_append_str(&r->mpu_reg_id, op->found);
            }
        }
        s_op_free(op);
        /* A failed lookup leaves the request as it was: an unknown id. */
        if (s3s_failed(res)) {
            s3s_buf_reset(&r->mpu_reg_id);
        }
        s3s_req_headers_resume(r);
        return;
    }
    if (op->kind == S_LIST && err == S3S_OK) {
        struct s3s_buf t = r->listing;
        r->listing = op->out;
        op->out = t;
    }
    /* S_RECORD: the answer gives s3seal's id even if the record failed (the
     * id is self-contained; only a resume by backend id would miss it). */
    s_op_free(op);
    s3s_req_upstream_finished(r);
}

static s3s_result s_queue(struct s3s_req *r, struct s3s_upload_reg_op *op)
{
    op->req = r;
    op->work.data = op;
    if (uv_queue_work(&r->conn->w->loop, &op->work, s_work, s_done) != 0) {
        s_op_free(op);
        S3S_BAIL(S3S_ERR_INTERNAL);
    }
    r->upload_reg = op;
    r->keystore_waits++;
    return s3s_ok();
}

/* ------------------------------------------------------------ the catalog */

static s3s_result s_catalog_op(struct s3s_req *r, enum s_kind kind, const uint8_t *object_id,
                               struct s3s_upload_reg_op **out)
{
    S3S_ENSURE(r->conn->w->upload_reg, S3S_ERR_KEYSTORE);
    S3S_ENSURE(r->upload_reg == NULL, S3S_ERR_INTERNAL);
    S3S_GUARD(s_op_new(r, kind, S3S_CUR_LIT(""), out));
    memcpy((*out)->object_id, object_id, S3S_SSE_OBJECT_ID_LEN);
    return s3s_ok();
}

s3s_result s3s_catalog_record(struct s3s_req *r, const uint8_t *object_id, uint32_t parts,
                              uint32_t first_part, uint64_t size)
{
    struct s3s_upload_reg_op *op = NULL;
    S3S_GUARD(s_catalog_op(r, S_OBJECT_PUT, object_id, &op));
    op->object.parts = parts;
    op->object.first_part = first_part;
    op->object.size = size;
    return s_queue(r, op);
}

s3s_result s3s_catalog_lookup(struct s3s_req *r, const uint8_t *object_id)
{
    struct s3s_upload_reg_op *op = NULL;
    S3S_GUARD(s_catalog_op(r, S_OBJECT_GET, object_id, &op));
    return s_queue(r, op);
}

/* The catalog's entries. The op's upload_id holds the backend's ETag. */
static s3s_result s_entry_op(struct s3s_req *r, enum s_kind kind, struct s3s_cur etag,
                             s3s_entry_done_fn *done, struct s3s_upload_reg_op **out)
{
    S3S_ENSURE(r->conn->w->upload_reg, S3S_ERR_KEYSTORE);
    S3S_ENSURE(r->upload_reg == NULL && done, S3S_ERR_INTERNAL);
    S3S_GUARD(s_op_new(r, kind, etag, out));
    (*out)->entry_done = done;
    return s3s_ok();
}

s3s_result s3s_entry_record(struct s3s_req *r, struct s3s_cur etag,
                            const struct s3s_keystore_entry *e, s3s_entry_done_fn *done)
{
    struct s3s_upload_reg_op *op = NULL;
    S3S_GUARD(s_entry_op(r, S_ENTRY_PUT, etag, done, &op));
    op->entry.entry = *e;
    return s_queue(r, op);
}

s3s_result s3s_entry_lookup(struct s3s_req *r, struct s3s_cur bucket, struct s3s_cur key,
                            struct s3s_cur etag, s3s_entry_done_fn *done)
{
    struct s3s_upload_reg_op *op = NULL;
    S3S_GUARD(s_entry_op(r, S_ENTRY_GET, etag, done, &op));
    s3s_buf_reset(&op->bucket);
    s3s_buf_reset(&op->key);
    s3s_result res = s3s_buf_append_cur(&op->bucket, bucket);
    if (s3s_is_ok(res)) {
        res = s3s_buf_append_cur(&op->key, key);
    }
    if (s3s_failed(res)) {
        s_op_free(op);
        return res;
    }
    return s_queue(r, op);
}

s3s_result s3s_entry_listing(struct s3s_req *r, s3s_entry_done_fn *done)
{
    struct s3s_upload_reg_op *op = NULL;
    S3S_GUARD(s_entry_op(r, S_ENTRY_LIST, S3S_CUR_LIT(""), done, &op));
    s3s_result res = s3s_buf_init(&op->doc, 0, r->listing.max);
    if (s3s_is_ok(res)) {
        res = s3s_buf_append_cur(&op->doc, s3s_buf_cur(&r->listing));
    }
    if (s3s_is_ok(res)) {
        res = s3s_buf_init(&op->out, 0, r->listing.max + r->listing.max / 4);
    }
    if (s3s_failed(res)) {
        s_op_free(op);
        return res;
    }
    return s_queue(r, op);
}

/* ------------------------------------------------------------- requests */

/* The decoded uploadId of the request's query; false if there is none. */
static bool s_query_upload_id(const struct s3s_req *r, struct s3s_buf *id)
{
    struct s3s_cur raw = {0};
    return s3s_s3_query_value(r->query, "uploadId", &raw) &&
           s3s_is_ok(s3s_percent_decode(raw, true, false, id)) && id->len > 0;
}

/* s3seal's id of an SSE-S3 or an SSE-KMS upload (sse_mpu.c). */
static bool s_has_mark(struct s3s_cur id)
{
    /* s3seal's id (or one that only looks like it: refused later). */
    struct s3s_sse_upload_id u;
    return s3s_failed(s3s_sse_upload_id_parse(id, &u)) || u.ours;
}

s3s_result s3s_upload_reg_accept(struct s3s_req *r, bool *waiting)
{
    *waiting = false;
    if (!r->conn->w->upload_reg || r->bucket.len == 0) {
        return s3s_ok();
    }
    if (r->key.len == 0) {
        if (s3s_cur_eq_str(r->method, "GET") && s3s_s3_query_has(r->query, "uploads")) {
            /* ListMultipartUploads: buffered and rewritten (s3s_upload_reg_defer). */
            r->rewrite_kind = S3S_REWRITE_LIST_UPLOADS;
            return s3s_buf_init(&r->listing, 0, 64u * 1024 * 1024);
        }
        return s3s_ok();
    }
    struct s3s_buf id;
    S3S_GUARD(s3s_buf_init(&id, 0, 4096));
    s3s_result res = s3s_ok();
    if (s_query_upload_id(r, &id) && !s_has_mark(s3s_buf_cur(&id))) {
        struct s3s_upload_reg_op *op = NULL;
        res = s_op_new(r, S_RESOLVE, s3s_buf_cur(&id), &op);
        if (s3s_is_ok(res)) {
            res = s_queue(r, op);
        }
        *waiting = s3s_is_ok(res);
    }
    s3s_buf_clean_up(&id);
    return res;
}

/* The suffix of a new upload's id is bound to the backend's id before the
 * answer or the registry sees it. On failure the suffix keeps its empty
 * MAC field, which s3s_listing_upload_id refuses to hand out. */
static void s_bind(struct s3s_req *r)
{
    struct s3s_buf id;
    if (r->rewrite_kind != S3S_REWRITE_CREATE_MPU || !r->mpu_encrypted ||
        s3s_failed(s3s_buf_init(&id, 0, 4096))) {
        return;
    }
    s3s_result res = s3s_xml_upload_id(s3s_buf_cur(&r->listing), &id);
    if (s3s_is_ok(res)) {
        res = s3s_mpu_bind(r, s3s_buf_cur(&id));
    }
    if (s3s_failed(res)) {
        S3S_LOGE("upload_reg", "req=%s cannot bind the upload id: %s", r->id,
                 s3s_strerror(res.code));
    }
    s3s_buf_clean_up(&id);
}

bool s3s_upload_reg_defer(struct s3s_req *r)
{
    s_bind(r);
    if (r->upload_reg_done || !r->conn->w->upload_reg) {
        return false;
    }
    bool create = r->rewrite_kind == S3S_REWRITE_CREATE_MPU && r->mpu_encrypted;
    if (!create && r->rewrite_kind != S3S_REWRITE_LIST_UPLOADS) {
        return false;
    }
    r->upload_reg_done = true;
    struct s3s_buf id;
    if (s3s_failed(s3s_buf_init(&id, 0, 4096))) {
        return false;
    }
    struct s3s_upload_reg_op *op = NULL;
    s3s_result res = create ? s3s_xml_upload_id(s3s_buf_cur(&r->listing), &id) : s3s_ok();
    if (s3s_is_ok(res)) {
        res = s_op_new(r, create ? S_RECORD : S_LIST, s3s_buf_cur(&id), &op);
    }
    if (s3s_is_ok(res) && create) {
        res = s3s_buf_append_cur(&op->suffix, s3s_buf_cur(&r->mpu_suffix));
    } else if (s3s_is_ok(res)) {
        res = s3s_buf_init(&op->doc, 0, r->listing.max);
        if (s3s_is_ok(res)) {
            res = s3s_buf_append_cur(&op->doc, s3s_buf_cur(&r->listing));
        }
        if (s3s_is_ok(res)) {
            res = s3s_buf_init(&op->out, 0, r->listing.max + r->listing.max / 4);
        }
    }
    if (s3s_is_ok(res)) {
        res = s_queue(r, op);
        op = NULL;
    }
    if (op) {
        s_op_free(op);
    }
    s3s_buf_clean_up(&id);
    if (s3s_failed(res)) {
        /* The answer goes as it would without a registry. */
        S3S_LOGW("upload_reg", "req=%s cannot start the registry's work: %s", r->id,
                 s3s_strerror(res.code));
        return false;
    }
    return true;
}

/* Did CompleteMultipartUpload succeed? (A 200 may carry an error.) */
static bool s_completed(const struct s3s_req *r)
{
    static const char tag[] = "<CompleteMultipartUploadResult";
    size_t m = sizeof(tag) - 1;
    for (size_t i = 0; i + m <= r->listing.len; i++) {
        if (memcmp(r->listing.ptr + i, tag, m) == 0) {
            return true;
        }
    }
    return false;
}

void s3s_upload_reg_forget(struct s3s_req *r)
{
    if (!r->conn->w->upload_reg || !r->mpu_encrypted || r->mpu_backend_id.len == 0) {
        return;
    }
    bool complete = s3s_cur_eq_str(r->method, "POST") && r->up_status == 200 &&
                    r->rewrite_kind == S3S_REWRITE_COMPLETE && s_completed(r);
    bool abort = s3s_cur_eq_str(r->method, "DELETE") && r->up_status == 204;
    if (!complete && !abort) {
        return;
    }
    struct s3s_upload_reg_op *op = NULL;
    s3s_result res = s_op_new(r, S_FORGET, s3s_buf_cur(&r->mpu_backend_id), &op);
    if (s3s_is_ok(res)) {
        /* No answer waits for it: the op belongs to no request. */
        op->work.data = op;
        if (uv_queue_work(&r->conn->w->loop, &op->work, s_work, s_done) != 0) {
            s_op_free(op);
            res = s3s_err(S3S_ERR_INTERNAL);
        }
    }
    if (s3s_failed(res)) {
        S3S_LOGW("upload_reg", "req=%s cannot forget the upload: %s", r->id,
                 s3s_strerror(res.code));
    }
}

void s3s_upload_reg_release(struct s3s_req *r)
{
    struct s3s_upload_reg_op *op = r->upload_reg;
    if (op) {
        r->upload_reg = NULL;
        op->req = NULL; /* queued: freed by s_done */
    }
}

/* The stage (stage.h): an upload named by its backend id waits for the
 * registry's answer before anything decides how to serve it. */
/* A rewritten answer (CreateMultipartUpload's id, ListMultipartUploads'
 * ids) waits for the registry's part on the thread pool. */
static s3s_result s_stage_answer(struct s3s_req *r, bool *taken)
{
    *taken = r->upstream_result == CURLE_OK && r->hold_head && r->rewrite_kind &&
             !r->deferred_error && s3s_upload_reg_defer(r);
    return s3s_ok();
}

const struct s3s_stage s3s_stage_upload_reg = {
    .name = "upload_reg",
    .on_head = s3s_upload_reg_accept,
    .on_answer = s_stage_answer,
    .on_release = s3s_upload_reg_release,
};
