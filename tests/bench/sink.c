/*
 * sink.c - a minimal, fast HTTP/1.1 stand-in for an S3 backend, for the
 * sink benchmark (tests/bench/sink.sh) only: a backend that is never the
 * bottleneck, so that what the bench measures is s3seal's own throughput.
 *
 *   sink PORT [--keep PREFIX]...
 *
 * It listens on 127.0.0.1:PORT and answers any request without checking
 * its signature:
 *
 *   PUT /bucket            200 (CreateBucket)
 *   PUT /bucket/key        reads the body (Content-Length or chunked) and
 *                          remembers the key's size and its x-amz-meta-*
 *                          headers; the body itself is kept in memory only
 *                          when the key starts with a --keep prefix, and
 *                          dropped as it arrives otherwise. 200 with an ETag.
 *   GET  /bucket/key       200, or 206 for Range: bytes=a-b | a- | -n; the
 *                          remembered metadata, then the kept body, or, for
 *                          a key PUT without keeping, bytes of a fixed
 *                          buffer repeated. 404 NoSuchKey for an unknown key.
 *   HEAD                   as GET without the body (HEAD /bucket: 200).
 *   DELETE                 204 (and forgets the key).
 *   Expect: 100-continue   answered with 100 Continue.
 *   anything else          501 NotImplemented.
 *
 * Responses go out in slices of at most SLICE bytes written straight from
 * the kept object (no copy), at most INFLIGHT slices queued at a time; the
 * next slice is queued from the write callback, so a GiB is never queued at
 * once. One event loop, keep-alive connections, no per-byte work beyond the
 * one copy into a kept object. Not hardened: it trusts its client.
 */
#include <inttypes.h>
#include <llhttp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <uv.h>

#define READ_BUF (256u * 1024)
#define SLICE (1u << 20)
#define INFLIGHT 4
#define PATTERN_SIZE (1u << 20)
#define HEAD_MAX 16384
#define URL_MAX 4096
#define HDR_MAX 8192
#define META_MAX 8192
#define MAX_KEEP 16

/* One remembered object. Shared by the table and by responses still being
 * written from it, hence the count: a PUT that replaces the key unlinks it
 * while a GET may still be sending its bytes. */
struct object {
    struct object *next;
    char *key; /* "bucket/key" */
    uint64_t size;
    uint8_t *body; /* NULL: not kept, served from the pattern */
    char *meta;    /* "x-amz-meta-...: v\r\n" lines, as received */
    size_t meta_len;
    char etag[33];
    time_t mtime;
    int refs;
};

struct conn {
    uv_tcp_t tcp;
    llhttp_t parser;
    char rbuf[READ_BUF];
    /* request being parsed */
    char url[URL_MAX];
    size_t url_len;
    char field[HDR_MAX];
    size_t field_len;
    char value[HDR_MAX];
    size_t value_len;
    bool in_value;
    bool expect_continue;
    char meta[META_MAX];
    size_t meta_len;
    char range[128];
    size_t range_len;
    struct object *put; /* object receiving a kept body */
    uint64_t put_size;  /* body bytes received */
    uint64_t put_cap;
    /* response being written */
    char head[HEAD_MAX];
    struct object *resp_obj;
    uint64_t resp_off, resp_end; /* body bytes still to queue: [off, end) */
    int inflight;
    bool responding;
    bool close_after;
    bool closing;
    /* bytes read past a request while its response was being written */
    char *pending;
    size_t pending_len;
};

struct wreq {
    uv_write_t req;
    struct conn *c;
};

static uv_loop_t *g_loop;
/* Objects by key hash: a run PUTs tens of thousands of small objects, and a
 * list walked per request would make the sink the bottleneck. */
#define OBJECT_BUCKETS 65536
static struct object *g_objects[OBJECT_BUCKETS];
static const char *g_keep[MAX_KEEP];
static int g_n_keep;
static uint8_t g_pattern[PATTERN_SIZE];
static uint64_t g_req_id;
static llhttp_settings_t g_settings;

static void s_read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *buf);
static void s_send_more(struct conn *c);
static void s_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf);

static void s_obj_unref(struct object *o)
{
    if (o && --o->refs == 0) {
        free(o->key);
        free(o->body);
        free(o->meta);
        free(o);
    }
}

static struct object **s_bucket(const char *key)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (const char *k = key; *k; k++) {
        h = (h ^ (uint8_t)*k) * 16777619u;
    }
    return &g_objects[h % OBJECT_BUCKETS];
}

static struct object *s_find(const char *key, bool unlink)
{
    for (struct object **p = s_bucket(key); *p; p = &(*p)->next) {
        if (strcmp((*p)->key, key) == 0) {
            struct object *o = *p;
            if (unlink) {
                *p = o->next;
            }
            return o;
        }
    }
    return NULL;
}

static bool s_kept_key(const char *key)
{
    for (int i = 0; i < g_n_keep; i++) {
        if (strncmp(key, g_keep[i], strlen(g_keep[i])) == 0) {
            return true;
        }
    }
    return false;
}

/* "bucket/key" from the request target: no leading slash, no query. */
static void s_path(struct conn *c, char *out, size_t cap, const char **key_part)
{
    size_t n = strcspn(c->url, "?");
    const char *p = c->url;
    if (n > 0 && *p == '/') {
        p++;
        n--;
    }
    if (n >= cap) {
        n = cap - 1;
    }
    memcpy(out, p, n);
    out[n] = '\0';
    char *slash = strchr(out, '/');
    *key_part = slash ? slash + 1 : "";
}

static void s_on_close(uv_handle_t *h)
{
    struct conn *c = h->data;
    s_obj_unref(c->put);
    s_obj_unref(c->resp_obj);
    free(c->pending);
    free(c);
}

static void s_close(struct conn *c)
{
    if (!c->closing) {
        c->closing = true;
        uv_close((uv_handle_t *)&c->tcp, s_on_close);
    }
}

/* ---------------------------------------------------------------- parsing */

static void s_header_done(struct conn *c)
{
    if (!c->in_value) {
        return;
    }
    c->in_value = false;
    if (c->field_len > 11 && strncasecmp(c->field, "x-amz-meta-", 11) == 0 &&
        c->meta_len + c->field_len + c->value_len + 4 < META_MAX) {
        char *m = c->meta + c->meta_len;
        memcpy(m, c->field, c->field_len);
        m += c->field_len;
        *m++ = ':';
        *m++ = ' ';
        memcpy(m, c->value, c->value_len);
        m += c->value_len;
        *m++ = '\r';
        *m++ = '\n';
        c->meta_len = (size_t)(m - c->meta);
    } else if (c->field_len == 6 && strncasecmp(c->field, "expect", 6) == 0 &&
               c->value_len == 12 && strncasecmp(c->value, "100-continue", 12) == 0) {
        c->expect_continue = true;
    } else if (c->field_len == 5 && strncasecmp(c->field, "range", 5) == 0 &&
               c->value_len < sizeof(c->range)) {
        memcpy(c->range, c->value, c->value_len);
        c->range_len = c->value_len;
    }
    c->field_len = c->value_len = 0;
}

static int s_on_message_begin(llhttp_t *p)
{
    struct conn *c = p->data;
    c->url_len = c->field_len = c->value_len = c->meta_len = c->range_len = 0;
    c->in_value = false;
    c->expect_continue = false;
    c->put_size = 0;
    return 0;
}

static int s_append(char *dst, size_t *len, size_t cap, const char *at, size_t n)
{
    if (*len + n >= cap) {
        return -1;
    }
    memcpy(dst + *len, at, n);
    *len += n;
    dst[*len] = '\0';
    return 0;
}

static int s_on_url(llhttp_t *p, const char *at, size_t n)
{
    struct conn *c = p->data;
    return s_append(c->url, &c->url_len, sizeof(c->url), at, n);
}

static int s_on_field(llhttp_t *p, const char *at, size_t n)
{
    struct conn *c = p->data;
    s_header_done(c);
    return s_append(c->field, &c->field_len, sizeof(c->field), at, n);
}

static int s_on_value(llhttp_t *p, const char *at, size_t n)
{
    struct conn *c = p->data;
    c->in_value = true;
    return s_append(c->value, &c->value_len, sizeof(c->value), at, n);
}

static int s_write(struct conn *c, const uv_buf_t *bufs, unsigned n);

static int s_on_headers_complete(llhttp_t *p)
{
    struct conn *c = p->data;
    s_header_done(c);
    if (c->expect_continue) {
        /* The client waits for this before it sends the body. */
        static char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        uv_buf_t b = uv_buf_init(cont, sizeof(cont) - 1);
        if (s_write(c, &b, 1) != 0) {
            return -1;
        }
    }
    if (p->method != HTTP_PUT) {
        return 0;
    }
    char path[URL_MAX];
    const char *key;
    s_path(c, path, sizeof(path), &key);
    if (!*key || !s_kept_key(key)) {
        return 0;
    }
    /* A kept body: one buffer, sized from Content-Length when there is one. */
    struct object *o = calloc(1, sizeof(*o));
    if (!o) {
        return -1;
    }
    o->refs = 1;
    c->put_cap = (p->flags & F_CONTENT_LENGTH) ? p->content_length : 0;
    o->body = malloc(c->put_cap ? c->put_cap : 1);
    if (!o->body) {
        free(o);
        return -1;
    }
    c->put = o;
    return 0;
}

static int s_on_body(llhttp_t *p, const char *at, size_t n)
{
    struct conn *c = p->data;
    if (c->put) {
        if (c->put_size + n > c->put_cap) {
            uint64_t cap = c->put_cap ? c->put_cap * 2 : (1u << 20);
            while (cap < c->put_size + n) {
                cap *= 2;
            }
            uint8_t *b = realloc(c->put->body, cap);
            if (!b) {
                return -1;
            }
            c->put->body = b;
            c->put_cap = cap;
        }
        memcpy(c->put->body + c->put_size, at, n);
    }
    c->put_size += n;
    return 0;
}

/* ---------------------------------------------------------------- responses */

static void s_after_write(uv_write_t *req, int status)
{
    struct wreq *w = (struct wreq *)req;
    struct conn *c = w->c;
    free(w);
    c->inflight--;
    if (status < 0 || c->closing) {
        s_close(c);
        return;
    }
    s_send_more(c);
}

static int s_write(struct conn *c, const uv_buf_t *bufs, unsigned n)
{
    struct wreq *w = malloc(sizeof(*w));
    if (!w) {
        return -1;
    }
    w->c = c;
    if (uv_write(&w->req, (uv_stream_t *)&c->tcp, bufs, n, s_after_write) != 0) {
        free(w);
        return -1;
    }
    c->inflight++;
    return 0;
}

/* The response is over: resume parsing what came after it. */
static void s_response_done(struct conn *c)
{
    c->responding = false;
    s_obj_unref(c->resp_obj);
    c->resp_obj = NULL;
    if (c->close_after) {
        s_close(c);
        return;
    }
    llhttp_resume(&c->parser);
    char *pend = c->pending;
    size_t plen = c->pending_len;
    c->pending = NULL;
    c->pending_len = 0;
    if (pend) {
        uv_buf_t b = uv_buf_init(pend, (unsigned)plen);
        s_read_cb((uv_stream_t *)&c->tcp, (ssize_t)plen, &b);
        free(pend);
    }
    if (!c->closing && !c->responding) {
        uv_read_start((uv_stream_t *)&c->tcp, s_alloc, s_read_cb);
    }
}

static void s_send_more(struct conn *c)
{
    while (c->inflight < INFLIGHT && c->resp_off < c->resp_end) {
        uint64_t len = c->resp_end - c->resp_off;
        len = len > SLICE ? SLICE : len;
        uv_buf_t b;
        if (c->resp_obj->body) {
            b = uv_buf_init((char *)c->resp_obj->body + c->resp_off, (unsigned)len);
        } else {
            /* Never kept: the pattern, aligned so one slice never wraps. */
            uint64_t off = c->resp_off % PATTERN_SIZE;
            len = len > PATTERN_SIZE - off ? PATTERN_SIZE - off : len;
            b = uv_buf_init((char *)g_pattern + off, (unsigned)len);
        }
        if (s_write(c, &b, 1) != 0) {
            s_close(c);
            return;
        }
        c->resp_off += len;
    }
    if (c->inflight == 0 && c->resp_off >= c->resp_end && c->responding) {
        s_response_done(c);
    }
}

static size_t s_headf(char *buf, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf + len, HEAD_MAX - len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= HEAD_MAX - len) {
        return HEAD_MAX - 1;
    }
    return len + (size_t)n;
}

/* Status line and the headers every response carries. */
static size_t s_status(struct conn *c, int code, const char *reason)
{
    size_t n = s_headf(c->head, 0,
                       "HTTP/1.1 %d %s\r\nServer: s3seal-bench-sink\r\n"
                       "x-amz-request-id: SINK%016" PRIX64 "\r\n",
                       code, reason, ++g_req_id);
    if (c->close_after) {
        n = s_headf(c->head, n, "Connection: close\r\n");
    }
    return n;
}

/* Queues the head and, when obj is set, body bytes [off, end) of it. */
static void s_respond(struct conn *c, size_t head_len, struct object *obj, uint64_t off,
                      uint64_t end)
{
    c->responding = true;
    c->resp_obj = obj;
    if (obj) {
        obj->refs++;
    }
    c->resp_off = off;
    c->resp_end = obj ? end : off;
    uv_buf_t b = uv_buf_init(c->head, (unsigned)head_len);
    if (s_write(c, &b, 1) != 0) {
        s_close(c);
        return;
    }
    s_send_more(c);
}

static void s_error(struct conn *c, int code, const char *reason, const char *s3code,
                    const char *msg, bool body)
{
    char xml[1024];
    int xn = snprintf(xml, sizeof(xml),
                      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>%s</Code>"
                      "<Message>%s</Message><Resource>%s</Resource></Error>",
                      s3code, msg, c->url);
    if (xn < 0 || (size_t)xn >= sizeof(xml)) {
        xn = 0;
    }
    size_t n = s_status(c, code, reason);
    n = s_headf(c->head, n, "Content-Type: application/xml\r\nContent-Length: %d\r\n\r\n%s",
                body ? xn : 0, body ? xml : "");
    s_respond(c, n, NULL, 0, 0);
}

static void s_etag(struct object *o)
{
    /* Stable per key and size (FNV-1a): a bench needs no real MD5. */
    uint64_t h = 1469598103934665603u, h2 = o->size;
    for (const char *p = o->key; *p; p++) {
        h = (h ^ (uint8_t)*p) * 1099511628211u;
    }
    h2 = (h2 ^ h) * 1099511628211u;
    snprintf(o->etag, sizeof(o->etag), "%016" PRIx64 "%016" PRIx64, h, h2);
}

static void s_do_put(struct conn *c, const char *path, const char *key)
{
    size_t n;
    if (!*key) {
        n = s_status(c, 200, "OK");
        n = s_headf(c->head, n, "Location: /%s\r\nContent-Length: 0\r\n\r\n", path);
        s_respond(c, n, NULL, 0, 0);
        return;
    }
    struct object *o = c->put;
    c->put = NULL;
    if (!o) {
        o = calloc(1, sizeof(*o));
        if (!o) {
            s_error(c, 500, "Internal Server Error", "InternalError", "out of memory", true);
            return;
        }
        o->refs = 1;
    }
    o->key = strdup(path);
    o->meta = malloc(c->meta_len ? c->meta_len : 1);
    if (!o->key || !o->meta) {
        s_obj_unref(o);
        s_error(c, 500, "Internal Server Error", "InternalError", "out of memory", true);
        return;
    }
    memcpy(o->meta, c->meta, c->meta_len);
    o->meta_len = c->meta_len;
    o->size = c->put_size;
    o->mtime = time(NULL);
    s_etag(o);
    s_obj_unref(s_find(path, true));
    struct object **b = s_bucket(path);
    o->next = *b;
    *b = o;
    n = s_status(c, 200, "OK");
    n = s_headf(c->head, n, "ETag: \"%s\"\r\nContent-Length: 0\r\n\r\n", o->etag);
    s_respond(c, n, NULL, 0, 0);
}

/* Range: bytes=a-b | a- | -n against size; false if unsatisfiable. */
static bool s_range(const char *r, uint64_t size, uint64_t *first, uint64_t *last)
{
    if (strncmp(r, "bytes=", 6) != 0 || size == 0) {
        return false;
    }
    r += 6;
    char *end;
    if (*r == '-') {
        uint64_t n = strtoull(r + 1, &end, 10);
        if (end == r + 1 || *end || n == 0) {
            return false;
        }
        *first = n >= size ? 0 : size - n;
        *last = size - 1;
        return true;
    }
    uint64_t a = strtoull(r, &end, 10);
    if (end == r || *end != '-' || a >= size) {
        return false;
    }
    r = end + 1;
    uint64_t b = size - 1;
    if (*r) {
        b = strtoull(r, &end, 10);
        if (*end || b < a) {
            return false;
        }
        b = b >= size ? size - 1 : b;
    }
    *first = a;
    *last = b;
    return true;
}

static void s_do_get(struct conn *c, const char *path, const char *key, bool head)
{
    size_t n;
    if (!*key) {
        if (head) {
            n = s_status(c, 200, "OK");
            n = s_headf(c->head, n, "Content-Length: 0\r\n\r\n");
            s_respond(c, n, NULL, 0, 0);
            return;
        }
        s_error(c, 501, "Not Implemented", "NotImplemented", "the sink lists nothing", true);
        return;
    }
    struct object *o = s_find(path, false);
    if (!o) {
        s_error(c, 404, "Not Found", "NoSuchKey", "The specified key does not exist.", !head);
        return;
    }
    uint64_t first = 0, last = o->size ? o->size - 1 : 0, len = o->size;
    bool partial = false;
    if (c->range_len) {
        c->range[c->range_len] = '\0';
        if (!s_range(c->range, o->size, &first, &last)) {
            n = s_status(c, 416, "Requested Range Not Satisfiable");
            n = s_headf(c->head, n, "Content-Range: bytes */%" PRIu64 "\r\nContent-Length: 0\r\n\r\n",
                        o->size);
            s_respond(c, n, NULL, 0, 0);
            return;
        }
        partial = true;
        len = last - first + 1;
    }
    char date[64];
    struct tm tm;
    gmtime_r(&o->mtime, &tm);
    strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
    n = s_status(c, partial ? 206 : 200, partial ? "Partial Content" : "OK");
    if (partial) {
        n = s_headf(c->head, n, "Content-Range: bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64 "\r\n",
                    first, last, o->size);
    }
    n = s_headf(c->head, n,
                "Content-Length: %" PRIu64 "\r\nETag: \"%s\"\r\nLast-Modified: %s\r\n"
                "Accept-Ranges: bytes\r\nContent-Type: application/octet-stream\r\n%.*s\r\n",
                len, o->etag, date, (int)o->meta_len, o->meta ? o->meta : "");
    if (head || len == 0) {
        s_respond(c, n, NULL, 0, 0);
        return;
    }
    s_respond(c, n, o, first, first + len);
}

static int s_on_message_complete(llhttp_t *p)
{
    struct conn *c = p->data;
    char path[URL_MAX];
    const char *key;
    s_path(c, path, sizeof(path), &key);
    c->close_after = !llhttp_should_keep_alive(p);
    switch (p->method) {
    case HTTP_PUT:
        s_do_put(c, path, key);
        break;
    case HTTP_GET:
        s_do_get(c, path, key, false);
        break;
    case HTTP_HEAD:
        s_do_get(c, path, key, true);
        break;
    case HTTP_DELETE:
        if (*key) {
            s_obj_unref(s_find(path, true));
        }
        s_respond(c, s_headf(c->head, s_status(c, 204, "No Content"), "\r\n"), NULL, 0, 0);
        break;
    default:
        s_error(c, 501, "Not Implemented", "NotImplemented",
                "the sink answers PUT, GET, HEAD and DELETE only", true);
        break;
    }
    /* One response at a time: parsing stops until this one is written. */
    return c->responding ? HPE_PAUSED : 0;
}

/* ---------------------------------------------------------------- I/O */

static void s_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    (void)hint;
    struct conn *c = h->data;
    *buf = uv_buf_init(c->rbuf, sizeof(c->rbuf));
}

static void s_read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct conn *c = s->data;
    if (n < 0) {
        s_close(c);
        return;
    }
    if (n == 0 || c->closing) {
        return;
    }
    llhttp_errno_t err = llhttp_execute(&c->parser, buf->base, (size_t)n);
    if (err == HPE_PAUSED) {
        uv_read_stop(s);
        const char *pos = llhttp_get_error_pos(&c->parser);
        size_t used = (size_t)(pos - buf->base);
        if (used < (size_t)n) {
            /* Pipelined bytes: kept until the response is written. */
            char *rest = malloc((size_t)n - used);
            if (!rest) {
                s_close(c);
                return;
            }
            memcpy(rest, pos, (size_t)n - used);
            c->pending = rest;
            c->pending_len = (size_t)n - used;
        }
        if (!c->responding) {
            s_response_done(c); /* it was written synchronously */
        }
        return;
    }
    if (err != HPE_OK) {
        fprintf(stderr, "sink: bad request: %s\n", llhttp_errno_name(err));
        s_close(c);
    }
}

static void s_on_connection(uv_stream_t *server, int status)
{
    if (status < 0) {
        return;
    }
    struct conn *c = calloc(1, sizeof(*c));
    if (!c) {
        return;
    }
    uv_tcp_init(g_loop, &c->tcp);
    c->tcp.data = c;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        s_close(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    llhttp_init(&c->parser, HTTP_REQUEST, &g_settings);
    c->parser.data = c;
    uv_read_start((uv_stream_t *)&c->tcp, s_alloc, s_read_cb);
}

static void s_on_signal(uv_signal_t *h, int signum)
{
    (void)signum;
    uv_stop(h->loop);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: sink PORT [--keep PREFIX]...\n");
        return 2;
    }
    /* A client that goes away mid-answer is an error on that connection,
     * not the end of the sink. */
    signal(SIGPIPE, SIG_IGN);
    char *end;
    unsigned long port = strtoul(argv[1], &end, 10);
    if (*end || port == 0 || port > 65535) {
        fprintf(stderr, "sink: bad port %s\n", argv[1]);
        return 2;
    }
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--keep") == 0 && i + 1 < argc && g_n_keep < MAX_KEEP) {
            g_keep[g_n_keep++] = argv[++i];
        } else {
            fprintf(stderr, "sink: unexpected argument %s\n", argv[i]);
            return 2;
        }
    }
    uint64_t x = 0x9e3779b97f4a7c15u;
    for (size_t i = 0; i < PATTERN_SIZE; i += 8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        memcpy(g_pattern + i, &x, 8);
    }
    llhttp_settings_init(&g_settings);
    g_settings.on_message_begin = s_on_message_begin;
    g_settings.on_url = s_on_url;
    g_settings.on_header_field = s_on_field;
    g_settings.on_header_value = s_on_value;
    g_settings.on_headers_complete = s_on_headers_complete;
    g_settings.on_body = s_on_body;
    g_settings.on_message_complete = s_on_message_complete;

    g_loop = uv_default_loop();
    uv_tcp_t server;
    struct sockaddr_in addr;
    uv_ip4_addr("127.0.0.1", (int)port, &addr);
    uv_tcp_init(g_loop, &server);
    int rc = uv_tcp_bind(&server, (const struct sockaddr *)&addr, 0);
    if (rc == 0) {
        rc = uv_listen((uv_stream_t *)&server, 128, s_on_connection);
    }
    if (rc != 0) {
        fprintf(stderr, "sink: cannot listen on 127.0.0.1:%lu: %s\n", port, uv_strerror(rc));
        return 1;
    }
    uv_signal_t sig_term, sig_int;
    uv_signal_init(g_loop, &sig_term);
    uv_signal_init(g_loop, &sig_int);
    uv_signal_start(&sig_term, s_on_signal, SIGTERM);
    uv_signal_start(&sig_int, s_on_signal, SIGINT);
    fprintf(stderr, "sink: listening on 127.0.0.1:%lu\n", port);
    uv_run(g_loop, UV_RUN_DEFAULT);
    return 0;
}
