/*
 * hasher.c - a request body's digests, computed on the loop or on the
 * thread pool (hasher.h).
 *
 * Ownership: the loop owns `stage`, `busy` and `owner`; a running job owns
 * `job` and the digests. The two meet only in s_done, on the loop, after the
 * job, so no lock is needed.
 */
#include <openssl/crypto.h>
#include <string.h>

#include "proxy/hasher.h"
#include "proxy/proxy.h"

/* Beyond the high-water mark the stage still takes what the parser hands
 * over before reading stops: the rest of one read, or the bytes that arrived
 * with the headers. */
#define S_STAGE_MAX (S3S_HASHER_STAGE_HIGH + 4u * 1024 * 1024)

struct s3s_hasher {
    uv_loop_t *loop;
    bool offload;
    bool busy;     /* a job is on the thread pool */
    bool released; /* the owner went away: the job frees the hasher */
    bool failed;   /* a digest update failed: the body cannot be verified */
    s3s_hasher_progress_fn progress;
    void *ctx;
    struct s3s_body_digests d;
    struct s3s_buf stage; /* pushed, not yet handed to a job (loop) */
    struct s3s_buf job;   /* being hashed by the running job */
    uv_work_t work;
};

void s3s_body_digests_clean_up(struct s3s_body_digests *d)
{
    EVP_MD_CTX_free(d->sha256);
    EVP_MD_CTX_free(d->md5);
    EVP_MD_CTX_free(d->plain_md5);
    s3s_checksum_clean_up(&d->checksum);
    memset(d, 0, sizeof(*d));
}

bool s3s_body_digests_any(const struct s3s_body_digests *d)
{
    return d->sha256 || d->md5 || d->plain_md5 || d->checksum.alg != S3S_CHECKSUM_NONE;
}

s3s_result s3s_body_digests_update(struct s3s_body_digests *d, const uint8_t *p, size_t n)
{
    if ((d->sha256 && EVP_DigestUpdate(d->sha256, p, n) != 1) ||
        (d->md5 && EVP_DigestUpdate(d->md5, p, n) != 1) ||
        (d->plain_md5 && EVP_DigestUpdate(d->plain_md5, p, n) != 1)) {
        S3S_BAIL(S3S_ERR_INTERNAL);
    }
    if (d->checksum.alg != S3S_CHECKSUM_NONE) {
        S3S_GUARD(s3s_checksum_update(&d->checksum, p, n));
    }
    return s3s_ok();
}

static void s_free(struct s3s_hasher *h)
{
    s3s_body_digests_clean_up(&h->d);
    /* Object data, wiped as the encryptor wipes its segment buffer. */
    if (h->stage.ptr) {
        OPENSSL_cleanse(h->stage.ptr, h->stage.len);
    }
    if (h->job.ptr) {
        OPENSSL_cleanse(h->job.ptr, h->job.len);
    }
    s3s_buf_clean_up(&h->stage);
    s3s_buf_clean_up(&h->job);
    s3s_free(&h);
}

s3s_result s3s_hasher_new(uv_loop_t *loop, bool offload, struct s3s_body_digests *d,
                          s3s_hasher_progress_fn progress, void *ctx, struct s3s_hasher **out)
{
    S3S_ENSURE_REF(d);
    struct s3s_hasher *h = s3s_calloc(1, sizeof(*h));
    S3S_ENSURE(h != NULL, S3S_ERR_NOMEM);
    h->loop = loop;
    h->offload = offload && loop != NULL;
    h->progress = progress;
    h->ctx = ctx;
    h->work.data = h;
    size_t first = h->offload ? S3S_HASHER_STAGE_HIGH + S3S_READ_BUF_SIZE : 0;
    if (s3s_failed(s3s_buf_init(&h->stage, first, S_STAGE_MAX)) ||
        s3s_failed(s3s_buf_init(&h->job, first, S_STAGE_MAX))) {
        s_free(h);
        S3S_BAIL(S3S_ERR_NOMEM);
    }
    h->d = *d;
    memset(d, 0, sizeof(*d));
    *out = h;
    return s3s_ok();
}

static void s_work(uv_work_t *w)
{
    struct s3s_hasher *h = w->data;
    if (s3s_failed(s3s_body_digests_update(&h->d, h->job.ptr, h->job.len))) {
        h->failed = true;
    }
    OPENSSL_cleanse(h->job.ptr, h->job.len);
    h->job.len = 0;
}

static void s_launch(struct s3s_hasher *h);

static void s_done(uv_work_t *w, int status)
{
    struct s3s_hasher *h = w->data;
    h->busy = false;
    if (status != 0) {
        h->failed = true; /* cancelled: the bytes were never hashed */
    }
    if (h->released) {
        s_free(h);
        return;
    }
    if (h->stage.len) {
        s_launch(h);
    }
    if (h->progress) {
        h->progress(h->ctx);
    }
}

/* Hands the staged bytes to a job (inline if the pool refuses one). */
static void s_launch(struct s3s_hasher *h)
{
    struct s3s_buf t = h->job;
    h->job = h->stage;
    h->stage = t;
    h->stage.len = 0;
    h->busy = true;
    if (uv_queue_work(h->loop, &h->work, s_work, s_done) != 0) {
        s_work(&h->work);
        h->busy = false;
    }
}

s3s_result s3s_hasher_push(struct s3s_hasher *h, const uint8_t *p, size_t n)
{
    S3S_ENSURE_REF(h);
    S3S_ENSURE(!h->failed, S3S_ERR_INTERNAL);
    if (n == 0) {
        return s3s_ok();
    }
    if (!h->offload) {
        s3s_result r = s3s_body_digests_update(&h->d, p, n);
        h->failed = s3s_failed(r);
        return r;
    }
    S3S_GUARD(s3s_buf_append(&h->stage, p, n));
    if (!h->busy) {
        s_launch(h);
    }
    return s3s_ok();
}

bool s3s_hasher_full(const struct s3s_hasher *h)
{
    return h->busy && h->stage.len >= S3S_HASHER_STAGE_HIGH;
}

bool s3s_hasher_idle(const struct s3s_hasher *h) { return !h->busy && h->stage.len == 0; }

s3s_result s3s_hasher_finish(struct s3s_hasher *h, struct s3s_body_digests *d)
{
    S3S_ENSURE(h != NULL && s3s_hasher_idle(h), S3S_ERR_INTERNAL);
    bool failed = h->failed;
    if (!failed) {
        *d = h->d;
        memset(&h->d, 0, sizeof(h->d));
    }
    s_free(h);
    S3S_ENSURE(!failed, S3S_ERR_INTERNAL);
    return s3s_ok();
}

void s3s_hasher_release(struct s3s_hasher *h)
{
    if (!h) {
        return;
    }
    if (h->busy) {
        h->released = true;
        h->progress = NULL;
        return;
    }
    s_free(h);
}
