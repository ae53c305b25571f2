/*
 * ks_watch.c - a worker hears the keystore's change notices (ks_watch.h).
 *
 * On a keystore with a notification channel (PostgreSQL's LISTEN/NOTIFY),
 * every change another instance or a command commits (a KMS key disabled,
 * a policy put, a root key rotated, a bucket's default set) is announced;
 * the worker's views re-read at once instead of at their next periodic
 * refresh, which stays as the safety net. Reading the notices may reconnect
 * to the database, so it runs on the thread pool, never on the loop; the
 * loop only watches the descriptor.
 */
#include "proxy/ks_watch.h"

#include "common/log.h"
#include "keystore/keystore.h"
#include "proxy/proxy.h"

/* After a failed read, listening is tried again this often. */
#define S_RETRY_MS 1000

/* The descriptor's watch: its own allocation, since a reconnect brings a new
 * descriptor while the old handle is still closing. */
struct s_poll {
    uv_poll_t h;
    struct s3s_ks_watch *x;
};

struct s3s_ks_watch {
    struct s3s_worker *w;
    struct s3s_keystore *ks;
    struct s_poll *poll; /* NULL while a read runs or after an error */
    uv_timer_t retry;
    uv_work_t work;
    bool busy;    /* `work` is on the thread pool */
    bool closing; /* freed once `work` is back and the handles are closed */
    int handles;  /* open handles (the timer, a poll) */
    int fd;       /* to watch after `work` */
    unsigned what;
    int32_t error;
};

static void s_free_if_done(struct s3s_ks_watch *x)
{
    if (x->closing && !x->busy && x->handles == 0) {
        s3s_keystore_close(x->ks);
        s3s_free(&x);
    }
}

static void s_handle_closed(uv_handle_t *h)
{
    struct s3s_ks_watch *x = h->data;
    if (h->type == UV_POLL) {
        struct s_poll *p = (struct s_poll *)h;
        s3s_free(&p);
    }
    x->handles--;
    s_free_if_done(x);
}

static void s_poll_close(struct s3s_ks_watch *x)
{
    if (x->poll) {
        uv_poll_stop(&x->poll->h);
        uv_close((uv_handle_t *)&x->poll->h, s_handle_closed);
        x->poll = NULL;
    }
}

static void s_read(struct s3s_ks_watch *x);

static void s_poll_cb(uv_poll_t *h, int status, int events)
{
    (void)status;
    (void)events;
    struct s3s_ks_watch *x = ((struct s_poll *)h)->x;
    s_read(x); /* an error on the descriptor too: the read finds out */
}

static void s_retry_cb(uv_timer_t *t);

static void s_watch(struct s3s_ks_watch *x, int fd)
{
    struct s_poll *p = s3s_calloc(1, sizeof(*p));
    if (!p || uv_poll_init(&x->w->loop, &p->h, fd) != 0) {
        s3s_free(&p);
        x->fd = -1;
        uv_timer_start(&x->retry, s_retry_cb, S_RETRY_MS, 0);
        return;
    }
    p->x = x;
    p->h.data = x;
    x->handles++;
    x->poll = p;
    x->fd = fd;
    uv_poll_start(&p->h, UV_READABLE, s_poll_cb);
    uv_unref((uv_handle_t *)&p->h); /* never keeps a draining loop alive */
}

/* Thread pool: the notices that arrived, or a new channel. */
static void s_work(uv_work_t *work)
{
    struct s3s_ks_watch *x = work->data;
    int fd = x->fd;
    unsigned what = 0;
    s3s_result res = x->fd < 0 ? s3s_keystore_listen(x->ks, &fd) : s3s_ok();
    if (s3s_is_ok(res)) {
        res = s3s_keystore_changes(x->ks, &what, &fd);
    }
    x->error = res.code;
    x->what = what | (x->fd < 0 ? S3S_KEYSTORE_CHANGED_ALL : 0);
    x->fd = s3s_is_ok(res) ? fd : -1;
}

static void s_retry_cb(uv_timer_t *t) { s_read(t->data); }

static void s_done(uv_work_t *work, int status)
{
    struct s3s_ks_watch *x = work->data;
    x->busy = false;
    if (x->closing) {
        s_free_if_done(x);
        return;
    }
    struct s3s_worker *w = x->w;
    if (status != 0 || x->error != S3S_OK) {
        /* The database is away: the periodic refreshes go on; listening is
         * tried again. */
        S3S_LOGW("keystore", "worker=%d change notices: %s; trying again", w->id,
                 s3s_strerror(status != 0 ? S3S_ERR_INTERNAL : x->error));
        x->fd = -1;
        uv_timer_start(&x->retry, s_retry_cb, S_RETRY_MS, 0);
        return;
    }
    if ((x->what & S3S_KEYSTORE_CHANGED_KMS) && w->has_kms) {
        s3s_kms_view_refresh(&w->kms);
    }
    if ((x->what & S3S_KEYSTORE_CHANGED_ROOT) && w->has_keyring) {
        s3s_keyring_refresh(&w->keyring);
    }
    if (x->what & S3S_KEYSTORE_CHANGED_BUCKET) {
        s3s_bucket_enc_refresh(w);
    }
    s_watch(x, x->fd);
}

static void s_read(struct s3s_ks_watch *x)
{
    if (x->busy || x->closing) {
        return;
    }
    s_poll_close(x); /* watched again once the read is done */
    x->work.data = x;
    if (uv_queue_work(&x->w->loop, &x->work, s_work, s_done) == 0) {
        x->busy = true;
    } else {
        uv_timer_start(&x->retry, s_retry_cb, S_RETRY_MS, 0);
    }
}

void s3s_ks_watch_start(struct s3s_worker *w)
{
    const struct s3s_config *cfg = w->cfg;
    if (!cfg->keystore.master_key_file) {
        return;
    }
    struct s3s_ks_watch *x = s3s_calloc(1, sizeof(*x));
    char why[512] = "";
    if (!x || s3s_failed(s3s_keystore_open(cfg->keystore.path, cfg->keystore.master_key_file,
                                           true, &x->ks, why, sizeof(why)))) {
        S3S_LOGW("keystore", "worker=%d change notices off: %s", w->id,
                 why[0] ? why : "out of memory");
        s3s_free(&x);
        return;
    }
    int fd = -1;
    s3s_result res = s3s_keystore_listen(x->ks, &fd);
    if (res.code == S3S_ERR_NOT_IMPLEMENTED) {
        /* No channel (SQLite): the views' periodic refreshes are the way. */
        s3s_keystore_close(x->ks);
        s3s_free(&x);
        return;
    }
    x->w = w;
    x->fd = s3s_is_ok(res) ? fd : -1;
    uv_timer_init(&w->loop, &x->retry);
    x->retry.data = x;
    uv_unref((uv_handle_t *)&x->retry);
    x->handles = 1;
    w->ks_watch = x;
    if (s3s_failed(res)) {
        uv_timer_start(&x->retry, s_retry_cb, S_RETRY_MS, 0);
        return;
    }
    s_watch(x, fd);
}

void s3s_ks_watch_stop(struct s3s_worker *w)
{
    struct s3s_ks_watch *x = w->ks_watch;
    if (!x) {
        return;
    }
    w->ks_watch = NULL;
    x->closing = true;
    s_poll_close(x);
    uv_timer_stop(&x->retry);
    uv_close((uv_handle_t *)&x->retry, s_handle_closed);
}
