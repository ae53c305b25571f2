/*
 * admin.c - the admin listener (admin.h): one thread, one libuv loop, one
 * short-lived connection per request (Connection: close), the request head
 * read by llhttp through http_head.h under small limits. The probes run on
 * a thread of their own, not on libuv's shared pool: when the keystore
 * hangs, blocked keystore calls can fill that pool, and a probe queued
 * behind them would leave the last (good) answer standing.
 */
#include <arpa/inet.h>
#include <json-c/json.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include <uv.h>

#include "common/log.h"
#include "keystore/keystore.h"
#include "proxy/admin.h"
#include "proxy/backend.h"
#include "proxy/config.h"
#include "proxy/http_head.h"
#include "proxy/metrics.h"
#include "proxy/prom.h"

/* Admin connections at once (more are closed at once), how long one may
 * take to send its head, the largest head. */
#define S_MAX_CONNS 64
#define S_HEAD_TIMEOUT_MS 10000
#define S_BODY_MAX (4u * 1024 * 1024)
static const struct s3s_http_head_limits s_limits = {8192, 32, 2048};

/* A probe: no answer within this is "unreachable". */
#define S_PROBE_TIMEOUT_MS 2000

struct s_aconn;

struct s3s_admin {
    const struct s3s_config *cfg;
    const char *version;
    uv_loop_t loop;
    uv_tcp_t listener;
    uv_async_t stop_async;
    uv_timer_t probe_timer;
    uv_thread_t thread;
    bool thread_started;
    bool stopping;
    struct s_aconn *conns;
    size_t n_conns;
    double start_time;

    /* set by other threads */
    atomic_bool running, draining;

    /* the probe: its thread fills these, the loop reads them under probe_mu
     * once probe_async says it is done */
    uv_thread_t probe_thread;
    bool probe_thread_started;
    uv_mutex_t probe_mu;
    uv_cond_t probe_cv;
    bool probe_wanted, probe_done, probe_quit; /* under probe_mu */
    uv_async_t probe_async;
    bool probe_busy;         /* loop thread: asked for, not done yet */
    struct s3s_keystore *ks; /* the probe thread's, between probes */
    bool p_backend_up, p_keystore_up;
    char p_backend_error[CURL_ERROR_SIZE];
    char p_keystore_error[256];
    uint32_t p_root_version;
    int64_t p_root_created;

    /* loop thread: what the last finished probe found */
    int backend_up;  /* -1: not probed yet */
    int keystore_up; /* -1: no keystore, or not probed yet */
    char backend_error[CURL_ERROR_SIZE];
    char keystore_error[256];
    uint32_t root_version;
    int64_t root_created;
};

struct s_aconn {
    struct s_aconn *next, *prev;
    struct s3s_admin *a;
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_write_t wr;
    llhttp_t parser;
    struct s3s_http_head head;
    struct s3s_buf out;
    int handles;
    bool closing, answered;
    char buf[4096];
};

static llhttp_settings_t s_settings;
static uv_once_t s_settings_once = UV_ONCE_INIT;

/* ---------------------------------------------------------------- probes */

static void s_probe_work(struct s3s_admin *a)
{
    const struct s3s_config *cfg = a->cfg;
    struct s3s_backend_resp resp;
    a->p_backend_error[0] = '\0';
    if (s3s_failed(s3s_backend_resp_init(&resp, 4096))) {
        a->p_backend_up = false;
        snprintf(a->p_backend_error, sizeof(a->p_backend_error), "out of memory");
    } else {
        /* Any answer, whatever its status, is a reachable backend. */
        s3s_result r = s3s_backend_perform(cfg, "HEAD", S3S_CUR_LIT("/"), s3s_cur_from(NULL, 0),
                                           NULL, 0, S_PROBE_TIMEOUT_MS, &resp);
        a->p_backend_up = s3s_is_ok(r);
        if (!a->p_backend_up) {
            snprintf(a->p_backend_error, sizeof(a->p_backend_error), "%s",
                     resp.error[0] ? resp.error : s3s_error_message(r.code));
        }
        s3s_backend_resp_clean_up(&resp);
    }
    if (!cfg->keystore.master_key_file) {
        return;
    }
    /* The keystore: opened once (the SQLite file's open check, or a
     * PostgreSQL connection), then its newest root key read each time. */
    a->p_keystore_error[0] = '\0';
    char why[256] = "";
    s3s_result r = s3s_ok();
    if (!a->ks) {
        r = s3s_keystore_open(cfg->keystore.path, cfg->keystore.master_key_file, false, &a->ks,
                              why, sizeof(why));
    }
    struct s3s_secret key = {0};
    uint32_t version = 0;
    int64_t created = 0;
    if (s3s_is_ok(r)) {
        r = s3s_keystore_root_current(a->ks, &version, &key);
        s3s_secret_destroy(&key);
    }
    if (s3s_is_ok(r)) {
        r = s3s_keystore_root_created(a->ks, version, &created);
    }
    a->p_keystore_up = s3s_is_ok(r);
    if (a->p_keystore_up) {
        a->p_root_version = version;
        a->p_root_created = created;
    } else {
        snprintf(a->p_keystore_error, sizeof(a->p_keystore_error), "%s",
                 why[0] ? why : s3s_error_message(r.code));
        /* Opened again next time (a database back, a file restored). */
        s3s_keystore_close(a->ks);
        a->ks = NULL;
    }
}

/* On the loop, with probe_mu held: what the finished probe found. */
static void s_probe_done(struct s3s_admin *a)
{
    int was_backend = a->backend_up, was_keystore = a->keystore_up;
    a->backend_up = a->p_backend_up;
    memcpy(a->backend_error, a->p_backend_error, sizeof(a->backend_error));
    if (a->cfg->keystore.master_key_file) {
        a->keystore_up = a->p_keystore_up;
        memcpy(a->keystore_error, a->p_keystore_error, sizeof(a->keystore_error));
        if (a->p_keystore_up) {
            a->root_version = a->p_root_version;
            a->root_created = a->p_root_created;
        }
    }
    if (was_backend != a->backend_up) {
        if (a->backend_up) {
            S3S_LOGI("admin", "backend reachable");
        } else {
            S3S_LOGW("admin", "backend unreachable: %s", a->backend_error);
        }
    }
    if (a->cfg->keystore.master_key_file && was_keystore != a->keystore_up) {
        if (a->keystore_up) {
            S3S_LOGI("admin", "keystore reachable");
        } else {
            S3S_LOGW("admin", "keystore unreachable: %s", a->keystore_error);
        }
    }
}

static void s_probe_tick(uv_timer_t *t)
{
    struct s3s_admin *a = t->data;
    if (a->probe_busy || a->stopping) {
        return;
    }
    uv_mutex_lock(&a->probe_mu);
    a->probe_wanted = true;
    uv_cond_signal(&a->probe_cv);
    uv_mutex_unlock(&a->probe_mu);
    a->probe_busy = true;
}

static void s_probe_async_cb(uv_async_t *as)
{
    struct s3s_admin *a = as->data;
    uv_mutex_lock(&a->probe_mu);
    if (a->probe_done) {
        a->probe_done = false;
        a->probe_busy = false;
        s_probe_done(a);
    }
    uv_mutex_unlock(&a->probe_mu);
}

/* The probe thread: one probe each time the loop's timer asks. */
static void s_probe_thread(void *arg)
{
    struct s3s_admin *a = arg;
    uv_mutex_lock(&a->probe_mu);
    for (;;) {
        while (!a->probe_wanted && !a->probe_quit) {
            uv_cond_wait(&a->probe_cv, &a->probe_mu);
        }
        if (a->probe_quit) {
            break;
        }
        a->probe_wanted = false;
        uv_mutex_unlock(&a->probe_mu);
        s_probe_work(a);
        uv_mutex_lock(&a->probe_mu);
        a->probe_done = true;
        uv_async_send(&a->probe_async);
    }
    uv_mutex_unlock(&a->probe_mu);
}

/* Ends the probe thread (a probe under way finishes first: each of its
 * steps is bounded). probe_async stays valid until it has returned. */
static void s_probe_thread_stop(struct s3s_admin *a)
{
    if (!a->probe_thread_started) {
        return;
    }
    uv_mutex_lock(&a->probe_mu);
    a->probe_quit = true;
    uv_cond_signal(&a->probe_cv);
    uv_mutex_unlock(&a->probe_mu);
    uv_thread_join(&a->probe_thread);
    a->probe_thread_started = false;
}

/* ----------------------------------------------------------------- health */

/* Ready, or why not (a short phrase). */
static const char *s_not_ready(const struct s3s_admin *a)
{
    if (atomic_load(&a->draining)) {
        return "draining";
    }
    if (!atomic_load(&a->running)) {
        return "starting";
    }
    if (a->backend_up < 0 || (a->cfg->keystore.master_key_file && a->keystore_up < 0)) {
        return "starting";
    }
    if (!a->backend_up) {
        return "backend unreachable";
    }
    if (a->cfg->keystore.master_key_file && !a->keystore_up) {
        return "keystore unreachable";
    }
    return NULL;
}

static const char *s_updown(int v) { return v < 0 ? "unknown" : v ? "up" : "down"; }

static s3s_result s_ready_body(struct s3s_admin *a, struct s3s_buf *body, int *status)
{
    const char *why = s_not_ready(a);
    *status = why ? 503 : 200;
    json_object *o = json_object_new_object();
    S3S_ENSURE(o != NULL, S3S_ERR_NOMEM);
    json_object_object_add(o, "status", json_object_new_string(why ? why : "ready"));
    json_object_object_add(o, "backend", json_object_new_string(s_updown(a->backend_up)));
    if (a->backend_up == 0) {
        json_object_object_add(o, "backend_error", json_object_new_string(a->backend_error));
    }
    json_object_object_add(o, "keystore",
                           json_object_new_string(a->cfg->keystore.master_key_file
                                                      ? s_updown(a->keystore_up)
                                                      : "none"));
    if (a->keystore_up == 0) {
        json_object_object_add(o, "keystore_error", json_object_new_string(a->keystore_error));
    }
    s3s_result r = s3s_buf_append_str(body, json_object_to_json_string_ext(
                                                o, JSON_C_TO_STRING_PLAIN));
    json_object_put(o);
    S3S_GUARD(r);
    return s3s_buf_append_byte(body, '\n');
}

static s3s_result s_metrics_body(struct s3s_admin *a, struct s3s_buf *body)
{
    struct s3s_metrics_state st = {
        .version = a->version,
        .ready = s_not_ready(a) == NULL,
        .draining = atomic_load(&a->draining),
        .backend_up = a->backend_up,
        .keystore_up = a->cfg->keystore.master_key_file ? a->keystore_up : -1,
        .root_key_version = a->root_version,
        .root_key_created = a->root_created,
        .now = (int64_t)time(NULL),
        .start_time = a->start_time,
    };
    return s3s_metrics_write(body, &st);
}

/* ------------------------------------------------------------ connections */

static void s_conn_closed(uv_handle_t *h)
{
    struct s_aconn *c = h->data;
    if (--c->handles > 0) {
        return;
    }
    struct s3s_admin *a = c->a;
    if (c->prev) {
        c->prev->next = c->next;
    } else {
        a->conns = c->next;
    }
    if (c->next) {
        c->next->prev = c->prev;
    }
    a->n_conns--;
    s3s_http_head_clean_up(&c->head);
    s3s_buf_clean_up(&c->out);
    s3s_free(&c);
}

static void s_conn_close(struct s_aconn *c)
{
    if (c->closing) {
        return;
    }
    c->closing = true;
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->timer, s_conn_closed);
    uv_close((uv_handle_t *)&c->tcp, s_conn_closed);
}

static void s_written(uv_write_t *wr, int status)
{
    (void)status;
    s_conn_close(wr->data);
}

static void s_answer(struct s_aconn *c, int status, const char *type, struct s3s_cur body,
                     bool head_only)
{
    c->answered = true;
    uv_read_stop((uv_stream_t *)&c->tcp);
    s3s_buf_reset(&c->out);
    s3s_result r = s3s_buf_appendf(&c->out,
                                   "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n"
                                   "Content-Length: %zu\r\nCache-Control: no-store\r\n"
                                   "Connection: close\r\n\r\n",
                                   status, status == 200   ? "OK"
                                           : status == 404 ? "Not Found"
                                           : status == 405 ? "Method Not Allowed"
                                           : status == 503 ? "Service Unavailable"
                                           : status == 500 ? "Internal Server Error"
                                                           : "Bad Request",
                                   type, body.len);
    if (s3s_is_ok(r) && !head_only) {
        r = s3s_buf_append_cur(&c->out, body);
    }
    if (s3s_failed(r)) {
        s_conn_close(c);
        return;
    }
    uv_buf_t b = uv_buf_init((char *)c->out.ptr, (unsigned)c->out.len);
    c->wr.data = c;
    if (uv_write(&c->wr, (uv_stream_t *)&c->tcp, &b, 1, s_written) != 0) {
        s_conn_close(c);
    }
}

static void s_answer_text(struct s_aconn *c, int status, const char *text)
{
    s_answer(c, status, "text/plain; charset=utf-8", s3s_cur_from_str(text), false);
}

/* The request's head is complete and accepted: the answer. */
static void s_route(struct s_aconn *c, int method)
{
    struct s3s_admin *a = c->a;
    struct s3s_cur target = s3s_http_head_target(&c->head);
    size_t plen = 0;
    while (plen < target.len && target.ptr[plen] != '?') {
        plen++;
    }
    struct s3s_cur path = s3s_cur_from(target.ptr, plen);
    bool head_only = method == HTTP_HEAD;
    if (method != HTTP_GET && method != HTTP_HEAD) {
        s_answer_text(c, 405, "only GET and HEAD\n");
        return;
    }
    struct s3s_buf body;
    s3s_result_ignore(s3s_buf_init(&body, 0, S_BODY_MAX));
    if (s3s_cur_eq_str(path, "/metrics")) {
        if (s3s_is_ok(s_metrics_body(a, &body))) {
            s_answer(c, 200, S3S_PROM_CONTENT_TYPE, s3s_buf_cur(&body), head_only);
        } else {
            s_answer_text(c, 500, "cannot write the metrics\n");
        }
    } else if (s3s_cur_eq_str(path, "/health/live")) {
        s_answer(c, 200, "application/json", S3S_CUR_LIT("{\"status\":\"live\"}\n"), head_only);
    } else if (s3s_cur_eq_str(path, "/health/ready")) {
        int status = 503;
        if (s3s_is_ok(s_ready_body(a, &body, &status))) {
            s_answer(c, status, "application/json", s3s_buf_cur(&body), head_only);
        } else {
            s_answer_text(c, 500, "cannot write the state\n");
        }
    } else {
        s_answer_text(c, 404, "not found: /metrics, /health/live, /health/ready\n");
    }
    s3s_buf_clean_up(&body);
}

static int s_on_message_begin(llhttp_t *p)
{
    struct s_aconn *c = p->data;
    s3s_http_head_begin(&c->head);
    return 0;
}

static int s_on_url(llhttp_t *p, const char *at, size_t len)
{
    struct s_aconn *c = p->data;
    return s3s_http_head_on_url(&c->head, at, len);
}

static int s_on_field(llhttp_t *p, const char *at, size_t len)
{
    struct s_aconn *c = p->data;
    return s3s_http_head_on_field(&c->head, at, len);
}

static int s_on_value(llhttp_t *p, const char *at, size_t len)
{
    struct s_aconn *c = p->data;
    return s3s_http_head_on_value(&c->head, at, len);
}

static int s_on_headers_complete(llhttp_t *p)
{
    struct s_aconn *c = p->data;
    if (s3s_http_head_complete(&c->head, p) != 0) {
        return -1;
    }
    s_route(c, llhttp_get_method(p));
    /* One request per connection: nothing after the head is read. */
    return HPE_PAUSED;
}

static void s_settings_init(void)
{
    llhttp_settings_init(&s_settings);
    s_settings.on_message_begin = s_on_message_begin;
    s_settings.on_url = s_on_url;
    s_settings.on_header_field = s_on_field;
    s_settings.on_header_value = s_on_value;
    s_settings.on_headers_complete = s_on_headers_complete;
}

static void s_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    struct s_aconn *c = h->data;
    *buf = uv_buf_init(c->buf, sizeof(c->buf));
}

static void s_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct s_aconn *c = s->data;
    if (n == 0 || c->closing || c->answered) {
        return;
    }
    if (n < 0) {
        s_conn_close(c);
        return;
    }
    llhttp_errno_t e = s3s_http_head_execute(&c->head, &c->parser, buf->base, (size_t)n);
    if (c->closing || c->answered) {
        return;
    }
    if (e != HPE_OK) {
        s_answer_text(c, 400, "bad request\n");
    }
}

static void s_head_timeout(uv_timer_t *t) { s_conn_close(t->data); }

static void s_on_connection(uv_stream_t *server, int status)
{
    struct s3s_admin *a = server->data;
    if (status < 0) {
        return;
    }
    struct s_aconn *c = s3s_calloc(1, sizeof(*c));
    if (!c) {
        return;
    }
    c->a = a;
    uv_tcp_init(&a->loop, &c->tcp);
    uv_timer_init(&a->loop, &c->timer);
    c->tcp.data = c->timer.data = c;
    c->handles = 2;
    c->next = a->conns;
    if (a->conns) {
        a->conns->prev = c;
    }
    a->conns = c;
    a->n_conns++;
    s3s_http_head_init(&c->head, &s_limits);
    s3s_result_ignore(s3s_buf_init(&c->out, 0, S_BODY_MAX + 1024));
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0 || a->n_conns > S_MAX_CONNS ||
        a->stopping) {
        s_conn_close(c);
        return;
    }
    s3s_http_head_parser_init(&c->parser, &s_settings, c);
    uv_timer_start(&c->timer, s_head_timeout, S_HEAD_TIMEOUT_MS, 0);
    if (uv_read_start((uv_stream_t *)&c->tcp, s_alloc, s_read) != 0) {
        s_conn_close(c);
    }
}

/* ------------------------------------------------------------- lifecycle */

static void s_stop_cb(uv_async_t *as)
{
    struct s3s_admin *a = as->data;
    a->stopping = true;
    uv_timer_stop(&a->probe_timer);
    uv_close((uv_handle_t *)&a->probe_timer, NULL);
    uv_close((uv_handle_t *)&a->listener, NULL);
    uv_close((uv_handle_t *)&a->stop_async, NULL);
    for (struct s_aconn *c = a->conns; c; c = c->next) {
        s_conn_close(c);
    }
    s_probe_thread_stop(a);
    uv_close((uv_handle_t *)&a->probe_async, NULL);
}

static void s_thread(void *arg)
{
    struct s3s_admin *a = arg;
    uv_run(&a->loop, UV_RUN_DEFAULT);
}

static s3s_result s_listen(struct s3s_admin *a)
{
    const struct s3s_config *cfg = a->cfg;
    struct sockaddr_storage ss;
    if (uv_ip4_addr(cfg->admin_host, cfg->admin_port, (struct sockaddr_in *)&ss) != 0 &&
        uv_ip6_addr(cfg->admin_host, cfg->admin_port, (struct sockaddr_in6 *)&ss) != 0) {
        S3S_LOGE("admin", "admin_listen address '%s' is not an IP address", cfg->admin_host);
        S3S_BAIL(S3S_ERR_CONFIG);
    }
    int rc = uv_tcp_bind(&a->listener, (struct sockaddr *)&ss, 0);
    if (rc == 0) {
        rc = uv_listen((uv_stream_t *)&a->listener, 128, s_on_connection);
    }
    if (rc != 0) {
        S3S_LOGE("admin", "cannot listen on %s:%d: %s", cfg->admin_host, cfg->admin_port,
                 uv_strerror(rc));
        S3S_BAIL(S3S_ERR_IO);
    }
    return s3s_ok();
}

static void s_free(struct s3s_admin *a)
{
    if (uv_loop_close(&a->loop) != 0) {
        S3S_LOGW("admin", "loop closed with handles still open");
    }
    s3s_keystore_close(a->ks);
    uv_cond_destroy(&a->probe_cv);
    uv_mutex_destroy(&a->probe_mu);
    s3s_free(&a);
}

s3s_result s3s_admin_start(const struct s3s_config *cfg, const char *version,
                           struct s3s_admin **out)
{
    uv_once(&s_settings_once, s_settings_init);
    struct s3s_admin *a = s3s_calloc(1, sizeof(*a));
    S3S_ENSURE(a != NULL, S3S_ERR_NOMEM);
    a->cfg = cfg;
    a->version = version;
    a->backend_up = -1;
    a->keystore_up = -1;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    a->start_time = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
    atomic_init(&a->running, false);
    atomic_init(&a->draining, false);
    if (uv_mutex_init(&a->probe_mu) != 0) {
        s3s_free(&a);
        S3S_BAIL(S3S_ERR_IO);
    }
    if (uv_cond_init(&a->probe_cv) != 0) {
        uv_mutex_destroy(&a->probe_mu);
        s3s_free(&a);
        S3S_BAIL(S3S_ERR_IO);
    }
    if (uv_loop_init(&a->loop) != 0) {
        uv_cond_destroy(&a->probe_cv);
        uv_mutex_destroy(&a->probe_mu);
        s3s_free(&a);
        S3S_BAIL(S3S_ERR_IO);
    }
    uv_tcp_init(&a->loop, &a->listener);
    a->listener.data = a;
    uv_async_init(&a->loop, &a->stop_async, s_stop_cb);
    a->stop_async.data = a;
    uv_timer_init(&a->loop, &a->probe_timer);
    a->probe_timer.data = a;
    uv_async_init(&a->loop, &a->probe_async, s_probe_async_cb);
    a->probe_async.data = a;
    s3s_result r = s_listen(a);
    if (s3s_is_ok(r)) {
        if (uv_thread_create(&a->probe_thread, s_probe_thread, a) != 0) {
            r = s3s_err(S3S_ERR_IO);
        } else {
            a->probe_thread_started = true;
        }
    }
    if (s3s_is_ok(r)) {
        uv_timer_start(&a->probe_timer, s_probe_tick, 0, S3S_ADMIN_PROBE_MS);
        if (uv_thread_create(&a->thread, s_thread, a) != 0) {
            r = s3s_err(S3S_ERR_IO);
        }
    }
    if (s3s_failed(r)) {
        s_probe_thread_stop(a);
        uv_close((uv_handle_t *)&a->listener, NULL);
        uv_close((uv_handle_t *)&a->stop_async, NULL);
        uv_close((uv_handle_t *)&a->probe_timer, NULL);
        uv_close((uv_handle_t *)&a->probe_async, NULL);
        uv_run(&a->loop, UV_RUN_DEFAULT);
        s_free(a);
        return r;
    }
    a->thread_started = true;
    S3S_LOGI("admin", "admin listener on %s:%d (/metrics, /health/live, /health/ready)",
             cfg->admin_host, cfg->admin_port);
    *out = a;
    return s3s_ok();
}

void s3s_admin_set_running(struct s3s_admin *a)
{
    if (a) {
        atomic_store(&a->running, true);
    }
}

void s3s_admin_set_draining(struct s3s_admin *a)
{
    if (a) {
        atomic_store(&a->draining, true);
    }
}

void s3s_admin_stop(struct s3s_admin *a)
{
    if (!a) {
        return;
    }
    uv_async_send(&a->stop_async);
    uv_thread_join(&a->thread);
    s_free(a);
}
