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
    bool released; /* the owner went away: freed once the job is over */
    bool failed;   /* a digest update failed: the body cannot be verified */
    s3s_hasher_progress_fn progress;
    void *ctx;
    struct s3s_body_digests d;
    /* Under `lock`: `stage`, `running`, `failed` while running. */
    uv_mutex_t lock;
    bool running;         /* a job is on the pool (cleared in s_done) */
    struct s3s_buf stage; /* pushed, not yet taken by the job */
    struct s3s_buf job;   /* being hashed by the job (the job's alone) */
    uv_work_t work;
    uv_async_t wake; /* the job took a full stage: the owner may read again */
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

static void s_free_now(struct s3s_hasher *h)
{
    s3s_body_digests_clean_up(&h->d);
    /* Object data, wiped as the encryptor wipes its segment buffer: all of
     * each buffer, since stages came and went through it. */
    if (h->stage.ptr) {
        OPENSSL_cleanse(h->stage.ptr, h->stage.cap);
    }
    if (h->job.ptr) {
        OPENSSL_cleanse(h->job.ptr, h->job.cap);
    }
    s3s_buf_clean_up(&h->stage);
    s3s_buf_clean_up(&h->job);
    if (h->offload) {
        uv_mutex_destroy(&h->lock);
    }
    s3s_free(&h);
}

static void s_closed(uv_handle_t *handle) { s_free_now(handle->data); }

/* Once no job runs: an offloading hasher closes its async handle first. */
static void s_free(struct s3s_hasher *h)
{
    if (h->offload) {
        uv_close((uv_handle_t *)&h->wake, s_closed);
    } else {
        s_free_now(h);
    }
}

static void s_wake(uv_async_t *a)
{
    struct s3s_hasher *h = a->data;
    if (!h->released && h->progress) {
        h->progress(h->ctx);
    }
}

s3s_result s3s_hasher_new(uv_loop_t *loop, bool offload, struct s3s_body_digests *d,
                          s3s_hasher_progress_fn progress, void *ctx, struct s3s_hasher **out)
{
    S3S_ENSURE_REF(d);
    struct s3s_hasher *h = s3s_calloc(1, sizeof(*h));
    S3S_ENSURE(h != NULL, S3S_ERR_NOMEM);
    h->loop = loop;
    h->progress = progress;
    h->ctx = ctx;
    h->work.data = h;
    h->wake.data = h;
    bool pool = offload && loop != NULL;
    size_t first = pool ? S3S_HASHER_STAGE_HIGH + S3S_READ_BUF_SIZE : 0;
    if (s3s_failed(s3s_buf_init(&h->stage, first, S_STAGE_MAX)) ||
        s3s_failed(s3s_buf_init(&h->job, first, S_STAGE_MAX))) {
        s_free_now(h);
        S3S_BAIL(S3S_ERR_NOMEM);
    }
    if (pool) {
        if (uv_mutex_init(&h->lock) != 0) {
            s_free_now(h);
            S3S_BAIL(S3S_ERR_NOMEM);
        }
        if (uv_async_init(loop, &h->wake, s_wake) != 0) {
            uv_mutex_destroy(&h->lock);
            s_free_now(h);
            S3S_BAIL(S3S_ERR_NOMEM);
        }
        h->offload = true;
    }
    h->d = *d;
    memset(d, 0, sizeof(*d));
    *out = h;
    return s3s_ok();
}

/* On the pool: hashes what is staged, taking new stages as the loop fills
 * them, until nothing is left. Taking a full stage wakes the owner, whose
 * reading paused on it, while this job goes on. */
static void s_work(uv_work_t *w)
{
    struct s3s_hasher *h = w->data;
    bool failed = false;
    for (;;) {
        if (!failed && s3s_failed(s3s_body_digests_update(&h->d, h->job.ptr, h->job.len))) {
            failed = true;
        }
        /* The buffers are overwritten by the next stages and wiped when
         * freed: wiping each job's here would cost the hashing thread a
         * tenth of its time. */
        h->job.len = 0;
        uv_mutex_lock(&h->lock);
        bool more = h->stage.len > 0 && !h->released;
        bool was_full = h->stage.len >= S3S_HASHER_STAGE_HIGH;
        if (more) {
            struct s3s_buf t = h->job;
            h->job = h->stage;
            h->stage = t;
        }
        h->failed = h->failed || failed;
        uv_mutex_unlock(&h->lock);
        if (!more) {
            return;
        }
        if (was_full) {
            uv_async_send(&h->wake);
        }
    }
}

static void s_launch_locked(struct s3s_hasher *h);

static void s_done(uv_work_t *w, int status)
{
    struct s3s_hasher *h = w->data;
    uv_mutex_lock(&h->lock);
    h->running = false;
    if (status != 0) {
        h->failed = true; /* cancelled: the bytes were never hashed */
    }
    if (h->failed) {
        /* Never hashed: dropped, so the owner sees the hasher idle. */
        OPENSSL_cleanse(h->stage.ptr, h->stage.len);
        h->stage.len = 0;
    }
    bool more = h->stage.len > 0;
    uv_mutex_unlock(&h->lock);
    if (h->released) {
        s_free(h);
        return;
    }
    if (more) {
        uv_mutex_lock(&h->lock); /* staged after the job's last look */
        s_launch_locked(h);
        uv_mutex_unlock(&h->lock);
    }
    if (h->progress) {
        h->progress(h->ctx);
    }
}

/* With the lock held and no job running: hands the stage to a new job
 * (hashed here if the pool refuses one). */
static void s_launch_locked(struct s3s_hasher *h)
{
    struct s3s_buf t = h->job;
    h->job = h->stage;
    h->stage = t;
    h->running = true;
    if (uv_queue_work(h->loop, &h->work, s_work, s_done) != 0) {
        h->running = false;
        h->failed = h->failed ||
                    s3s_failed(s3s_body_digests_update(&h->d, h->job.ptr, h->job.len));
        h->job.len = 0;
    }
}

s3s_result s3s_hasher_push(struct s3s_hasher *h, const uint8_t *p, size_t n)
{
    S3S_ENSURE_REF(h);
    if (!h->offload) {
        S3S_ENSURE(!h->failed, S3S_ERR_INTERNAL);
        s3s_result r = n ? s3s_body_digests_update(&h->d, p, n) : s3s_ok();
        h->failed = s3s_failed(r);
        return r;
    }
    uv_mutex_lock(&h->lock);
    s3s_result r = h->failed ? s3s_err(S3S_ERR_INTERNAL) : s3s_buf_append(&h->stage, p, n);
    if (s3s_is_ok(r) && !h->running && h->stage.len > 0) {
        s_launch_locked(h);
    }
    uv_mutex_unlock(&h->lock);
    return r;
}

/* What is staged and whether a job runs, read under the lock (the lock is
 * the hasher's own state: logically const). */
static void s_look(const struct s3s_hasher *h, size_t *staged, bool *running)
{
    struct s3s_hasher *m = (struct s3s_hasher *)h;
    uv_mutex_lock(&m->lock);
    *staged = m->stage.len;
    *running = m->running;
    uv_mutex_unlock(&m->lock);
}

bool s3s_hasher_full(const struct s3s_hasher *h)
{
    size_t staged = 0;
    bool running = false;
    if (h->offload) {
        s_look(h, &staged, &running);
    }
    return staged >= S3S_HASHER_STAGE_HIGH;
}

bool s3s_hasher_idle(const struct s3s_hasher *h)
{
    size_t staged = 0;
    bool running = false;
    if (h->offload) {
        s_look(h, &staged, &running);
    }
    return !running && staged == 0;
}

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
    h->progress = NULL;
    if (h->offload) {
        uv_mutex_lock(&h->lock);
        h->released = true; /* the job stops at its next look */
        bool running = h->running;
        uv_mutex_unlock(&h->lock);
        if (running) {
            return; /* s_done frees it */
        }
    }
    s_free(h);
}
