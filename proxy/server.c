/*
 * server.c - a worker: one libuv loop with its listening socket
 * (SO_REUSEPORT, so several workers share a port), libcurl's multi interface
 * driven by the loop for upstream transfers, and the drain on shutdown.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "proxy/proxy.h"
#include "proxy/reload.h"


/* ------------------------------------------------------- curl <-> libuv glue */

/* One per socket curl asks us to watch. */
struct s_curl_sock {
    uv_poll_t poll;
    struct s3s_worker *w;
    curl_socket_t fd;
};

static void s_curl_sock_closed(uv_handle_t *h)
{
    struct s_curl_sock *s = h->data;
    s3s_free(&s);
}

static void s_curl_poll_cb(uv_poll_t *p, int status, int events)
{
    struct s_curl_sock *s = p->data;
    struct s3s_worker *w = s->w;
    int flags = 0;
    if (status >= 0 && (events & UV_READABLE)) {
        /* Acknowledge the backend's segments at once. A backend that writes a
         * small response in two segments without TCP_NODELAY (Ceph RGW does)
         * otherwise waits for our delayed ACK, ~40 ms per request on a reused
         * connection. Linux resets QUICKACK on its own, hence per read. */
        int one = 1;
        (void)setsockopt(s->fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof(one));
    }
    if (status < 0) {
        flags = CURL_CSELECT_ERR;
    } else {
        if (events & UV_READABLE) {
            flags |= CURL_CSELECT_IN;
        }
        if (events & UV_WRITABLE) {
            flags |= CURL_CSELECT_OUT;
        }
    }
    int running = 0;
    curl_multi_socket_action(w->multi, s->fd, flags, &running);
    s3s_worker_check_multi(w);
}

static int s_curl_socket_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    (void)easy;
    struct s3s_worker *w = userp;
    struct s_curl_sock *s = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (s) {
            uv_poll_stop(&s->poll);
            curl_multi_assign(w->multi, fd, NULL);
            uv_close((uv_handle_t *)&s->poll, s_curl_sock_closed);
        }
        return 0;
    }
    if (!s) {
        s = s3s_calloc(1, sizeof(*s));
        if (!s) {
            return -1;
        }
        s->w = w;
        s->fd = fd;
        if (uv_poll_init_socket(&w->loop, &s->poll, fd) != 0) {
            s3s_free(&s);
            return -1;
        }
        s->poll.data = s;
        curl_multi_assign(w->multi, fd, s);
    }
    int events = 0;
    if (what == CURL_POLL_IN || what == CURL_POLL_INOUT) {
        events |= UV_READABLE;
    }
    if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT) {
        events |= UV_WRITABLE;
    }
    uv_poll_start(&s->poll, events, s_curl_poll_cb);
    return 0;
}

static void s_curl_timer_cb(uv_timer_t *t)
{
    struct s3s_worker *w = t->data;
    int running = 0;
    curl_multi_socket_action(w->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    s3s_worker_check_multi(w);
}

static int s_curl_timer_fn(CURLM *multi, long timeout_ms, void *userp)
{
    (void)multi;
    struct s3s_worker *w = userp;
    if (timeout_ms < 0) {
        uv_timer_stop(&w->curl_timer);
    } else {
        /* A zero timeout means "as soon as possible": run from the loop, not
         * from inside this callback, as libcurl requires. */
        uv_timer_start(&w->curl_timer, s_curl_timer_cb, (uint64_t)timeout_ms, 0);
    }
    return 0;
}

void s3s_worker_check_multi(struct s3s_worker *w)
{
    CURLMsg *msg;
    int left = 0;
    s3s_worker_flush_out(w);
    while ((msg = curl_multi_info_read(w->multi, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE) {
            continue;
        }
        struct s3s_req *r = NULL;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&r);
        if (r && msg->easy_handle == r->src_easy) {
            /* The source read of a streamed copy, not the request's own. */
            s3s_copy_source_finished(r, msg->data.result);
            continue;
        }
        if (r && msg->easy_handle == r->easy && r->easy_ended) {
            continue; /* ended already (pause_error) */
        }
        if (r && msg->easy_handle == r->easy) {
            r->pause_error = CURLE_OK; /* libcurl told it first: ended once */
        }
        if (r) {
            r->upstream_done = true;
            r->upstream_result = msg->data.result;
            s3s_req_upstream_finished(r);
        }
    }
    while (w->deferred) {
        struct s3s_req *r = w->deferred;
        w->deferred = r->deferred_next;
        r->deferred = false;
        r->deferred_next = NULL;
        if (r->pause_error != CURLE_OK && r->easy) {
            r->upstream_result = r->pause_error;
            r->pause_error = CURLE_OK;
            r->easy_ended = true;
            s3s_req_upstream_finished(r);
            continue;
        }
        s3s_mpu_nonces_run(r);
    }
}

void s3s_worker_wake(struct s3s_worker *w)
{
    uv_timer_start(&w->curl_timer, s_curl_timer_cb, 0, 0);
}

void s3s_worker_defer(struct s3s_req *r)
{
    struct s3s_worker *w = r->conn->w;
    if (!r->deferred) {
        r->deferred = true;
        r->deferred_next = w->deferred;
        w->deferred = r;
    }
}

void s3s_worker_undefer(struct s3s_req *r)
{
    struct s3s_worker *w = r->conn->w;
    for (struct s3s_req **p = &w->deferred; r->deferred && *p; p = &(*p)->deferred_next) {
        if (*p == r) {
            *p = r->deferred_next;
            r->deferred = false;
        }
    }
}

/* ------------------------------------------------------------ listening */

static void s_on_connection(uv_stream_t *server, int status)
{
    struct s3s_worker *w = server->data;
    if (status < 0) {
        S3S_LOGW("server", "worker=%d accept error=%s", w->id, uv_strerror(status));
        return;
    }
    s3s_conn_accept(w);
}

static s3s_result s_listen(struct s3s_worker *w)
{
    const struct s3s_config *cfg = w->cfg;
    struct sockaddr_storage ss;
    if (uv_ip4_addr(cfg->listen_host, cfg->listen_port, (struct sockaddr_in *)&ss) != 0 &&
        uv_ip6_addr(cfg->listen_host, cfg->listen_port, (struct sockaddr_in6 *)&ss) != 0) {
        S3S_LOGE("server", "listen address '%s' is not an IP address", cfg->listen_host);
        S3S_BAIL(S3S_ERR_CONFIG);
    }
    /* SO_REUSEPORT must be set before bind, so make the socket ourselves. */
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    S3S_ENSURE(fd >= 0, S3S_ERR_IO);
    int one = 1;
    (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (cfg->workers > 1) {
        (void)setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    }
    socklen_t len = ss.ss_family == AF_INET ? sizeof(struct sockaddr_in)
                                            : sizeof(struct sockaddr_in6);
    if (bind(fd, (struct sockaddr *)&ss, len) != 0) {
        S3S_LOGE("server", "cannot bind %s:%d: %s", cfg->listen_host, cfg->listen_port,
                 strerror(errno));
        close(fd);
        S3S_BAIL(S3S_ERR_IO);
    }
    int rc = uv_tcp_init(&w->loop, &w->listener);
    if (rc == 0) {
        w->listener_open = true;
        w->listener.data = w;
        rc = uv_tcp_open(&w->listener, fd);
    }
    if (rc == 0) {
        rc = uv_listen((uv_stream_t *)&w->listener, 1024, s_on_connection);
    }
    if (rc != 0) {
        S3S_LOGE("server", "cannot listen on %s:%d: %s", cfg->listen_host, cfg->listen_port,
                 uv_strerror(rc));
        if (!w->listener_open) {
            close(fd);
        }
        S3S_BAIL(S3S_ERR_IO);
    }
    return s3s_ok();
}

/* ----------------------------------------------------------------- drain */

static void s_close_listener(struct s3s_worker *w)
{
    if (w->listener_open) {
        w->listener_open = false;
        uv_close((uv_handle_t *)&w->listener, NULL);
    }
}

static void s_finish_if_drained(struct s3s_worker *w)
{
    if (!w->draining || w->n_conns > 0) {
        return;
    }
    uv_timer_stop(&w->drain_timer);
    /* Everything else closes in s3s_worker_run once the loop has no work. */
    uv_stop(&w->loop);
}

void s3s_worker_conn_closed(struct s3s_worker *w) { s_finish_if_drained(w); }

static void s_drain_timeout(uv_timer_t *t)
{
    struct s3s_worker *w = t->data;
    S3S_LOGW("server", "worker=%d drain timeout: closing %zu connection(s)", w->id, w->n_conns);
    for (struct s3s_conn *c = w->conns; c; c = c->next) {
        s3s_conn_close(c);
    }
}

static void s_stop_async_cb(uv_async_t *a)
{
    struct s3s_worker *w = a->data;
    if (w->draining) {
        return;
    }
    w->draining = true;
    s_close_listener(w);
    s3s_ks_watch_stop(w);
    S3S_LOGI("server", "worker=%d draining connections=%zu", w->id, w->n_conns);
    struct s3s_conn *next;
    for (struct s3s_conn *c = w->conns; c; c = next) {
        next = c->next;
        s3s_conn_drain(c);
    }
    uv_timer_start(&w->drain_timer, s_drain_timeout, w->cfg->limits.shutdown_timeout_ms, 0);
    s_finish_if_drained(w);
}

void s3s_worker_stop(struct s3s_worker *w) { uv_async_send(&w->stop_async); }

/* ---------------------------------------------------------------- reload */

static void s_reload_async_cb(uv_async_t *a)
{
    struct s3s_worker *w = a->data;
    atomic_fetch_add(&w->alive, 1);
    const struct s3s_config *next = atomic_exchange(&w->cfg_next, NULL);
    if (!next) {
        return;
    }
    /* Requests under way hold their own reference to the old config. */
    const struct s3s_config *old = w->cfg;
    w->cfg = next;
    s3s_config_release(old);
    s3s_reload_apply_worker(w, next);
    S3S_LOGD("server", "worker=%d serves new requests with the reloaded config", w->id);
}

void s3s_worker_reload(struct s3s_worker *w, const struct s3s_config *next)
{
    /* A config not taken yet is replaced by the newer one. */
    s3s_config_release(atomic_exchange(&w->cfg_next, s3s_config_acquire(next)));
    uv_async_send(&w->reload_async);
}

void s3s_worker_ping(struct s3s_worker *w) { uv_async_send(&w->reload_async); }

/* ------------------------------------------------------------- lifecycle */

s3s_result s3s_worker_init(struct s3s_worker *w, int id, const struct s3s_config *cfg)
{
    memset(w, 0, sizeof(*w));
    w->id = id;
    w->cfg = s3s_config_acquire(cfg);
    S3S_ENSURE(uv_loop_init(&w->loop) == 0, S3S_ERR_IO);
    w->loop.data = w;
    uv_timer_init(&w->loop, &w->curl_timer);
    w->curl_timer.data = w;
    uv_timer_init(&w->loop, &w->drain_timer);
    w->drain_timer.data = w;
    uv_async_init(&w->loop, &w->stop_async, s_stop_async_cb);
    w->stop_async.data = w;
    uv_async_init(&w->loop, &w->reload_async, s_reload_async_cb);
    w->reload_async.data = w;

    w->multi = curl_multi_init();
    S3S_ENSURE(w->multi != NULL, S3S_ERR_NOMEM);
    curl_multi_setopt(w->multi, CURLMOPT_SOCKETFUNCTION, s_curl_socket_cb);
    curl_multi_setopt(w->multi, CURLMOPT_SOCKETDATA, w);
    curl_multi_setopt(w->multi, CURLMOPT_TIMERFUNCTION, s_curl_timer_fn);
    curl_multi_setopt(w->multi, CURLMOPT_TIMERDATA, w);
    /* The pool of idle keep-alive connections to the backend. */
    curl_multi_setopt(w->multi, CURLMOPT_MAXCONNECTS, (long)cfg->backend.max_connections);
    curl_multi_setopt(w->multi, CURLMOPT_MAX_HOST_CONNECTIONS, 0L);

    if (cfg->keystore.master_key_file) {
        char why[512] = "";
        s3s_result r = s3s_keyring_init(&w->keyring, &w->loop, cfg->keystore.path,
                                        cfg->keystore.master_key_file, 10000, why, sizeof(why));
        if (s3s_failed(r)) {
            S3S_LOGE("server", "%s", why[0] ? why : "cannot open the keystore");
            return r;
        }
        w->has_keyring = true;
        /* One worker is enough to keep the rotation period. */
        if (id == 0) {
            w->keyring.rotate_after_s = (int64_t)cfg->keystore.root_key_rotation_days * 86400;
        }
        /* SSE-KMS keys; the first worker also rotates and sweeps them. */
        r = s3s_kms_view_init(&w->kms, &w->loop, cfg, id == 0, why, sizeof(why));
        if (s3s_failed(r)) {
            S3S_LOGE("server", "%s", why[0] ? why : "cannot load the KMS keys");
            return r;
        }
        w->has_kms = true;
    }
    S3S_GUARD(s3s_bucket_enc_attach(w));
    S3S_GUARD(s3s_upload_reg_attach(w));
    S3S_GUARD(s_listen(w));
    s3s_ks_watch_start(w); /* last: it never fails the worker */
    return s3s_ok();
}

static void s_close_walk(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h)) {
        uv_close(h, h->type == UV_POLL ? s_curl_sock_closed : NULL);
    }
}

int s3s_worker_run(struct s3s_worker *w)
{
    uv_run(&w->loop, UV_RUN_DEFAULT);
    /* Drained: release curl's pooled connections first (they own polls),
     * then every remaining handle, and let their close callbacks run. */
    if (w->multi) {
        curl_multi_cleanup(w->multi);
        w->multi = NULL;
    }
    uv_walk(&w->loop, s_close_walk, NULL);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    return w->exit_status;
}

void s3s_worker_clean_up(struct s3s_worker *w)
{
    if (w->multi) {
        curl_multi_cleanup(w->multi);
        w->multi = NULL;
    }
    uv_walk(&w->loop, s_close_walk, NULL);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    s3s_conn_pool_clean_up(w);
    s3s_keyring_clean_up(&w->keyring);
    s3s_kms_view_clean_up(&w->kms);
    s3s_bucket_enc_detach(w);
    s3s_upload_reg_detach(w);
    if (uv_loop_close(&w->loop) != 0) {
        S3S_LOGW("server", "worker=%d loop closed with handles still open", w->id);
    }
    s3s_config_release(atomic_exchange(&w->cfg_next, NULL));
    s3s_config_release(w->cfg);
    w->cfg = NULL;
}
