/*
 * sse_kms.c - SSE-KMS on a request's path: what a write asks for (the
 * x-amz-server-side-encryption* headers or the bucket's default), the
 * effective encryption context (the client's pairs and aws:s3:arn, as S3
 * adds it), data keys wrapped by the KMS key - or by a bucket key that the
 * KMS key wraps - and unwrapped for reads, with the key's state, policy and
 * audit trail applied by the worker's KMS view (kms_view.c), and the SSE
 * headers of the answers.
 */
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <string.h>

#include "common/log.h"
#include "proxy/proxy.h"

#define H_SSE "x-amz-server-side-encryption"
#define H_KEY_ID "x-amz-server-side-encryption-aws-kms-key-id"
#define H_CONTEXT "x-amz-server-side-encryption-context"
#define H_BUCKET_KEY "x-amz-server-side-encryption-bucket-key-enabled"

void s3s_sse_want_clean_up(struct s3s_sse_want *w)
{
    s3s_free(&w->kms_key_ref);
    s3s_kms_context_clean_up(&w->context);
}

/* PutObject, CreateMultipartUpload and CopyObject: the writes that make an
 * object whose encryption the request chooses. */
bool s3s_sse_is_new_object_write(const struct s3s_req *r)
{
    return r->op == S3S_OP_PUT_OBJECT || r->op == S3S_OP_CREATE_MPU || r->op == S3S_OP_COPY_OBJECT;
}

static s3s_result s_dup_ref(struct s3s_sse_want *w, struct s3s_cur ref)
{
    s3s_free(&w->kms_key_ref);
    w->kms_key_ref = s3s_malloc(ref.len + 1);
    S3S_ENSURE(w->kms_key_ref != NULL, S3S_ERR_NOMEM);
    memcpy(w->kms_key_ref, ref.ptr, ref.len);
    w->kms_key_ref[ref.len] = '\0';
    return s3s_ok();
}

s3s_result s3s_sse_want_parse(struct s3s_req *r)
{
    struct s3s_sse_want *w = &r->sse_want;
    struct s3s_cur v;
    struct s3s_bucket_defaults d;
    s3s_bucket_default(r->conn->w, s3s_buf_cur(&r->bucket), &d);
    w->parsed = true;
    w->mode = S3S_SSE_NONE;
    w->explicit_hdr = s3s_req_header(r, H_SSE, &v);
    if (w->explicit_hdr) {
        if (s3s_cur_eq_str(v, "AES256")) {
            w->mode = S3S_SSE_AES256;
        } else if (s3s_cur_eq_str(v, "aws:kms") || s3s_cur_eq_str(v, "aws:kms:dsse")) {
            w->mode = S3S_SSE_KMS;
        } else {
            S3S_BAIL(S3S_ERR_SSE_UNSUPPORTED_METHOD);
        }
    } else {
        w->mode = d.mode;
    }
    bool has_key = s3s_req_header(r, H_KEY_ID, &v);
    struct s3s_cur ctx, bk;
    bool has_ctx = s3s_req_header(r, H_CONTEXT, &ctx);
    bool has_bk = s3s_req_header(r, H_BUCKET_KEY, &bk);
    /* The KMS headers only go with an explicit aws:kms, as S3 wants. */
    if ((has_key || has_ctx) && !(w->explicit_hdr && w->mode == S3S_SSE_KMS)) {
        S3S_BAIL(S3S_ERR_KMS_KEY_WITHOUT_KMS);
    }
    if (w->mode != S3S_SSE_KMS) {
        return s3s_ok();
    }
    if (has_key) {
        v = s3s_cur_trim(v);
        S3S_ENSURE(v.len > 0 && v.len <= 2048, S3S_ERR_KMS_NOT_FOUND);
        S3S_GUARD(s_dup_ref(w, v));
    } else if (d.mode == S3S_SSE_KMS && d.kms_key_id) {
        /* The bucket default's key, also for an explicit aws:kms without a
         * key id; else (NULL) the account's aws/s3. */
        S3S_GUARD(s_dup_ref(w, s3s_cur_from_str(d.kms_key_id)));
    }
    if (has_ctx) {
        S3S_GUARD(s3s_kms_context_parse_b64(ctx, &w->context));
        w->has_context = true;
    }
    if (has_bk) {
        if (s3s_cur_eq_str_ignore_case(bk, "true")) {
            w->bucket_key = true;
        } else if (s3s_cur_eq_str_ignore_case(bk, "false")) {
            w->bucket_key = false;
        } else {
            S3S_BAIL(S3S_ERR_INVALID_ARG);
        }
    } else {
        w->bucket_key = d.kms_bucket_key;
    }
    return s3s_ok();
}

void s3s_kms_caller_of(const struct s3s_req *r, struct s3s_kms_caller *c, char account[13])
{
    const struct s3s_config *cfg = r->cfg;
    const struct s3s_config_credential *cred =
        s3s_config_find_credential(cfg, s3s_cur_from_str(r->access_key));
    c->principal = cred ? cred->principal : "anonymous";
    if (!cred || !s3s_principal_account(cred->principal, account)) {
        memcpy(account, cfg->account_id, 13);
    }
    c->account = account;
    c->access_key = r->access_key;
    c->source = r->conn->remote_ip;
    c->request_id = r->id;
}

/* ------------------------------- the default key, or a key made just now */

static void s_default_ready(void *arg)
{
    struct s3s_req *r = arg;
    r->kms_waiting = false;
    r->keystore_waits--;
    s3s_req_headers_resume(r);
}

s3s_result s3s_sse_kms_accept(struct s3s_req *r, bool *waiting)
{
    *waiting = false;
    if (!s3s_sse_is_new_object_write(r)) {
        return s3s_ok();
    }
    if (!r->sse_want.parsed) {
        S3S_GUARD(s3s_sse_want_parse(r));
    }
    struct s3s_worker *w = r->conn->w;
    if (r->sse_want.mode != S3S_SSE_KMS || !w->has_kms) {
        return s3s_ok();
    }
    struct s3s_kms_caller c;
    char account[13];
    s3s_kms_caller_of(r, &c, account);
    bool default_key = false;
    if (!s3s_kms_view_needs_refresh(&w->kms, r->sse_want.kms_key_ref, account, &default_key)) {
        return s3s_ok();
    }
    S3S_GUARD(s3s_kms_view_ensure_default(&w->kms, default_key ? account : NULL, s_default_ready,
                                          r));
    r->kms_waiting = true;
    r->keystore_waits++;
    *waiting = true;
    return s3s_ok();
}

/* --------------------------------------------------------- wrapping keys */

/* The use of a key for this request's object (bucket, key, context). */
static void s_use(struct s3s_req *r, struct s3s_kms_use *use, struct s3s_kms_caller *c,
                  char account[13], const char *bucket, const char *object,
                  const struct s3s_kms_context *context)
{
    s3s_kms_caller_of(r, c, account);
    memset(use, 0, sizeof(*use));
    use->caller = c;
    use->bucket = bucket;
    use->object = object;
    use->context = context;
}

/* A refusal's message becomes the error's. */
static s3s_result s_keep_message(struct s3s_req *r, const struct s3s_kms_use *use, s3s_result res)
{
    if (s3s_failed(res) && use->message[0]) {
        snprintf(r->err_detail, sizeof(r->err_detail), "%s", use->message);
    }
    return res;
}

/* One key operation on an object: its bucket and key as strings (for the
 * policy and the audit trail), the associated data, the context, the use. */
struct s_op {
    struct s3s_buf bucket, object, aad, bk_aad;
    struct s3s_kms_context ctx;
    struct s3s_kms_use use;
    struct s3s_kms_caller caller;
    char account[13];
};

static s3s_result s_op_init(struct s3s_req *r, struct s_op *op, struct s3s_cur bucket,
                            struct s3s_cur key)
{
    memset(op, 0, sizeof(*op));
    s3s_kms_context_init(&op->ctx);
    S3S_ENSURE(r->conn->w->has_kms, S3S_ERR_KEYSTORE);
    /* No initial allocation: cannot fail. */
    s3s_result_ignore(s3s_buf_init(&op->bucket, 0, 1024));
    s3s_result_ignore(s3s_buf_init(&op->object, 0, 4096));
    s3s_result_ignore(s3s_buf_init(&op->aad, 0, 32768));
    s3s_result_ignore(s3s_buf_init(&op->bk_aad, 0, 32768));
    const char *b = NULL, *o = NULL;
    S3S_GUARD(s3s_buf_append_cur(&op->bucket, bucket));
    S3S_GUARD(s3s_buf_append_cur(&op->object, key));
    S3S_GUARD(s3s_buf_cstr(&op->bucket, &b));
    S3S_GUARD(s3s_buf_cstr(&op->object, &o));
    s_use(r, &op->use, &op->caller, op->account, b, o, &op->ctx);
    return s3s_ok();
}

static void s_op_clean_up(struct s_op *op)
{
    s3s_kms_context_clean_up(&op->ctx);
    s3s_buf_clean_up(&op->bucket);
    s3s_buf_clean_up(&op->object);
    s3s_buf_clean_up(&op->aad);
    s3s_buf_clean_up(&op->bk_aad);
}

/* The effective context of an object of this request: the client's pairs,
 * and aws:s3:arn - the object's ARN, or the bucket's with a bucket key. */
static s3s_result s_effective_context(struct s3s_req *r, const char *bucket, const char *object,
                                      bool bucket_key, struct s3s_kms_context *out)
{
    struct s3s_buf arn;
    S3S_GUARD(s3s_buf_init(&arn, 0, 8192));
    s3s_result res = s3s_kms_context_copy(&r->sse_want.context, out);
    const char *s = NULL;
    if (s3s_is_ok(res)) {
        res = bucket_key ? s3s_buf_appendf(&arn, "arn:aws:s3:::%s", bucket)
                         : s3s_buf_appendf(&arn, "arn:aws:s3:::%s/%s", bucket, object);
    }
    if (s3s_is_ok(res)) {
        res = s3s_buf_cstr(&arn, &s);
    }
    if (s3s_is_ok(res)) {
        /* S3 sets it; a client's own must say the same. */
        const char *given = s3s_kms_context_get(out, "aws:s3:arn");
        res = !given || strcmp(given, s) == 0 ? s3s_kms_context_set(out, "aws:s3:arn", s)
                                              : s3s_err(S3S_ERR_KMS_INVALID_CONTEXT);
    }
    s3s_buf_clean_up(&arn);
    return res;
}

/* What the answer says of the object's encryption (SSE headers). */
static s3s_result s_answer_kms(struct s3s_req *r, const struct s3s_sse_meta *meta,
                               bool with_context)
{
    r->resp_sse = S3S_SSE_KIND_KMS;
    s3s_free(&r->resp_kms_arn);
    r->resp_kms_arn = s3s_malloc(meta->kms_key_arn.len + 1);
    S3S_ENSURE(r->resp_kms_arn != NULL, S3S_ERR_NOMEM);
    memcpy(r->resp_kms_arn, meta->kms_key_arn.ptr, meta->kms_key_arn.len);
    r->resp_kms_arn[meta->kms_key_arn.len] = '\0';
    r->resp_bucket_key = meta->bucket_key.len > 0;
    s3s_buf_reset(&r->resp_kms_context);
    if (with_context) {
        S3S_GUARD(s3s_base64_encode(meta->kms_context.ptr, meta->kms_context.len,
                                    &r->resp_kms_context));
    }
    return s3s_ok();
}

s3s_result s3s_sse_kms_wrap(struct s3s_req *r, struct s3s_sse_meta *meta, struct s3s_cur bucket,
                            struct s3s_cur key, const uint8_t dek[32], const char *operation)
{
    struct s3s_kms_view *v = &r->conn->w->kms;
    bool bucket_key = r->sse_want.bucket_key;
    uint8_t bk[32];
    struct s_op op;
    s3s_result res = s_op_init(r, &op, bucket, key);
    if (s3s_is_ok(res)) {
        res = s_effective_context(r, op.use.bucket, op.use.object, bucket_key, &op.ctx);
    }
    if (s3s_is_ok(res)) {
        res = s3s_kms_view_resolve(v, r->sse_want.kms_key_ref, &op.use);
    }
    if (s3s_is_ok(res)) {
        meta->kind = S3S_SSE_KIND_KMS;
        meta->kms_key_version = op.use.version;
        s3s_buf_reset(&meta->kms_key_arn);
        s3s_buf_reset(&meta->kms_context);
        s3s_buf_reset(&meta->wrapped_dek);
        s3s_buf_reset(&meta->bucket_key);
        res = s3s_buf_append_str(&meta->kms_key_arn, op.use.key->meta.arn);
    }
    if (s3s_is_ok(res)) {
        res = s3s_kms_context_json(&op.ctx, &meta->kms_context);
    }
    if (s3s_is_ok(res) && meta->kms_context.len > S3S_KMS_CONTEXT_MAX_JSON) {
        /* With aws:s3:arn added it would no longer read back. */
        res = s3s_err(S3S_ERR_KMS_INVALID_CONTEXT);
    }
    if (s3s_is_ok(res) && bucket_key) {
        /* The bucket key (made by the KMS key, reused for a while) wraps
         * the data key: one key-service call per bucket key, not per
         * object. */
        res = s3s_sse_bucket_key_aad(meta, bucket, &op.bk_aad);
        if (s3s_is_ok(res)) {
            res = s3s_kms_view_bucket_key(v, &op.use, s3s_buf_cur(&op.bk_aad), bk,
                                          &meta->bucket_key);
        }
    }
    if (s3s_is_ok(res)) {
        res = s3s_sse_dek_aad(meta, bucket, key, &op.aad);
    }
    if (s3s_is_ok(res)) {
        res = bucket_key ? s3s_keystore_seal(bk, s3s_buf_cur(&op.aad), s3s_cur_from(dek, 32),
                                             &meta->wrapped_dek)
                         : s3s_kms_view_wrap(v, &op.use, operation, s3s_buf_cur(&op.aad), dek,
                                             &meta->wrapped_dek);
    }
    if (s3s_is_ok(res)) {
        /* As S3, the answer repeats the context when the client gave one. */
        res = s_answer_kms(r, meta, r->sse_want.has_context);
    }
    res = s_keep_message(r, &op.use, res);
    OPENSSL_cleanse(bk, sizeof(bk));
    s_op_clean_up(&op);
    return res;
}

s3s_result s3s_sse_kms_new_dek(struct s3s_req *r, struct s3s_sse_meta *meta, uint8_t dek[32])
{
    S3S_ENSURE(RAND_bytes(dek, 32) == 1, S3S_ERR_INTERNAL);
    s3s_result res = s3s_sse_kms_wrap(r, meta, s3s_buf_cur(&r->bucket), s3s_buf_cur(&r->key), dek,
                                      "GenerateDataKey");
    if (s3s_failed(res)) {
        OPENSSL_cleanse(dek, 32);
    }
    return res;
}

s3s_result s3s_sse_kms_open_dek(struct s3s_req *r, const struct s3s_sse_meta *meta,
                                struct s3s_cur bucket, struct s3s_cur key,
                                struct s3s_secret *dek)
{
    struct s3s_kms_view *v = &r->conn->w->kms;
    struct s3s_cur arn = s3s_buf_cur(&meta->kms_key_arn);
    struct s3s_secret bk = {0};
    struct s_op op;
    s3s_result res = s_op_init(r, &op, bucket, key);
    /* The stored context, for the policy's conditions (it is bound to the
     * wrapped key: a changed one does not unwrap). */
    if (s3s_is_ok(res) &&
        s3s_failed(s3s_kms_context_parse_json(s3s_buf_cur(&meta->kms_context), &op.ctx))) {
        res = s3s_err(S3S_ERR_SSE_BAD_FORMAT);
    }
    if (s3s_is_ok(res)) {
        res = s3s_sse_dek_aad(meta, bucket, key, &op.aad);
    }
    if (s3s_is_ok(res) && meta->bucket_key.len) {
        res = s3s_sse_bucket_key_aad(meta, bucket, &op.bk_aad);
        if (s3s_is_ok(res)) {
            res = s3s_kms_view_decrypt(v, &op.use, arn, meta->kms_key_version,
                                       s3s_buf_cur(&op.bk_aad), s3s_buf_cur(&meta->bucket_key),
                                       &bk);
        }
        if (s3s_is_ok(res)) {
            res = s3s_keystore_open_sealed(bk.ptr, s3s_buf_cur(&op.aad),
                                           s3s_buf_cur(&meta->wrapped_dek), dek);
        }
    } else if (s3s_is_ok(res)) {
        res = s3s_kms_view_decrypt(v, &op.use, arn, meta->kms_key_version, s3s_buf_cur(&op.aad),
                                   s3s_buf_cur(&meta->wrapped_dek), dek);
    }
    if (s3s_is_ok(res) && dek->len != 32) {
        s3s_secret_destroy(dek);
        res = s3s_err(S3S_ERR_KEY_UNWRAP);
    }
    res = s_keep_message(r, &op.use, res);
    s3s_secret_destroy(&bk);
    s_op_clean_up(&op);
    return res;
}

s3s_result s3s_sse_kms_check_upload(struct s3s_req *r, const struct s3s_sse_meta *upload)
{
    struct s3s_worker *w = r->conn->w;
    S3S_ENSURE(w->has_kms, S3S_ERR_KEYSTORE);
    const struct s3s_kms_snap_key *k = s3s_kms_snapshot_by_id(w->kms.snap, upload->upload_kms_key_id);
    struct s3s_kms_use use;
    struct s3s_kms_caller c;
    char account[13];
    s_use(r, &use, &c, account, NULL, NULL, NULL);
    s3s_result res = k ? s3s_kms_view_check(&w->kms, &use, s3s_cur_from_str(k->meta.arn),
                                            "kms:Decrypt")
                       : s3s_err(S3S_ERR_KMS_NOT_FOUND);
    if (s3s_is_ok(res)) {
        r->resp_sse = S3S_SSE_KIND_KMS;
        r->resp_bucket_key = upload->upload_bucket_key;
        s3s_free(&r->resp_kms_arn);
        r->resp_kms_arn = s3s_strdup(k->meta.arn);
        res = r->resp_kms_arn ? s3s_ok() : s3s_err(S3S_ERR_NOMEM);
    }
    return s_keep_message(r, &use, res);
}

s3s_result s3s_sse_answer_from_meta(struct s3s_req *r, const struct s3s_sse_meta *meta)
{
    if (meta->kind != S3S_SSE_KIND_KMS) {
        r->resp_sse = S3S_SSE_KIND_S3;
        return s3s_ok();
    }
    return s_answer_kms(r, meta, false);
}

s3s_result s3s_sse_response_headers(const struct s3s_req *r, struct s3s_buf *head)
{
    if (r->resp_sse != S3S_SSE_KIND_KMS) {
        return s3s_buf_append_str(head, H_SSE ": AES256\r\n");
    }
    S3S_GUARD(s3s_buf_append_str(head, H_SSE ": aws:kms\r\n"));
    if (r->resp_kms_arn) {
        S3S_GUARD(s3s_buf_appendf(head, H_KEY_ID ": %s\r\n", r->resp_kms_arn));
    }
    if (r->resp_kms_context.len) {
        S3S_GUARD(s3s_buf_append_str(head, H_CONTEXT ": "));
        S3S_GUARD(s3s_buf_append_cur(head, s3s_buf_cur(&r->resp_kms_context)));
        S3S_GUARD(s3s_buf_append_str(head, "\r\n"));
    }
    if (r->resp_bucket_key) {
        S3S_GUARD(s3s_buf_append_str(head, H_BUCKET_KEY ": true\r\n"));
    }
    return s3s_ok();
}

/* ------------------------------------------------------------- the stage */

/* A request answered or gone while it waited for the default key. */
static void s_stage_release(struct s3s_req *r)
{
    if (r->kms_waiting) {
        s3s_kms_view_cancel_default(&r->conn->w->kms, r);
        r->kms_waiting = false;
        r->keystore_waits--;
    }
}

const struct s3s_stage s3s_stage_sse_kms = {
    .name = "sse_kms",
    .on_head = s3s_sse_kms_accept,
    .on_release = s_stage_release,
};
