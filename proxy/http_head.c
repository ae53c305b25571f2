/*
 * http_head.c - a request's head as llhttp reads it, collected under the
 * limits, and the checks llhttp 8 (strict) leaves undone: it takes a header
 * value continued on the next line (obs-fold) as part of the value, a bare
 * LF as the end of the header section, a space before the colon as part of
 * the name, and "gzip, chunked" or an empty value as a Transfer-Encoding.
 * RFC 9112 has a server refuse each of these (5.2, 2.2, 5.1, 6.1): where
 * s3seal and the backend read such a head differently, requests could be
 * smuggled past s3seal.
 */
#include <string.h>

#include "proxy/http_head.h"

/* What the last bytes checked after the target were. */
enum {
    S_SCAN_OTHER = 0,
    S_SCAN_CR,    /* a CR */
    S_SCAN_LF,    /* CR LF: a line ended */
    S_SCAN_LF_CR, /* CR LF CR: the empty line, if LF follows */
};

/* The scan's outcome over some bytes. */
enum { S_SCAN_MORE, S_SCAN_END, S_SCAN_BAD };

/* Checks the raw bytes of the head after the target, up to the empty line:
 * every LF follows a CR, and no line starts with a space or a tab (RFC 9112
 * 2.2, 5.2). llhttp parses them; this only refuses what it lets through.
 * Advances *at past the bytes checked (up to the end of the head). */
static int s_scan(struct s3s_http_head *h, const char **at, const char *end)
{
    const char *p = *at;
    uint8_t st = h->scan_state;
    int out = S_SCAN_MORE;
    for (; p < end; p++) {
        char b = *p;
        if (b == '\n') {
            if (st == S_SCAN_LF_CR) {
                p++;
                out = S_SCAN_END;
                break;
            }
            if (st != S_SCAN_CR) {
                out = S_SCAN_BAD; /* a bare LF */
                break;
            }
            st = S_SCAN_LF;
        } else if (b == '\r') {
            if (st == S_SCAN_CR || st == S_SCAN_LF_CR) {
                out = S_SCAN_BAD;
                break;
            }
            st = st == S_SCAN_LF ? S_SCAN_LF_CR : S_SCAN_CR;
        } else {
            if (st == S_SCAN_CR || st == S_SCAN_LF_CR ||
                (st == S_SCAN_LF && (b == ' ' || b == '\t'))) {
                out = S_SCAN_BAD; /* a lone CR, or a folded line */
                break;
            }
            st = S_SCAN_OTHER;
        }
    }
    h->scan_state = st;
    *at = p;
    return out;
}

void s3s_http_head_init(struct s3s_http_head *h, const struct s3s_http_head_limits *lim)
{
    memset(h, 0, sizeof(*h));
    h->lim = *lim;
    /* Cannot fail: no initial allocation. */
    s3s_result_ignore(s3s_buf_init(&h->buf, 0, lim->max_header_bytes + 1));
}

void s3s_http_head_clean_up(struct s3s_http_head *h)
{
    s3s_buf_clean_up(&h->buf);
    s3s_free(&h->hdrs);
    h->n_hdrs = h->cap_hdrs = 0;
}

void s3s_http_head_begin(struct s3s_http_head *h)
{
    s3s_buf_reset(&h->buf);
    h->n_hdrs = 0;
    h->url_off = h->url_len = 0;
    h->last_cb = 0;
    h->error = 0;
    h->scan_at = NULL;
    h->scan_state = S_SCAN_OTHER;
    h->scanning = false;
    h->complete = false;
}

static int s_append(struct s3s_http_head *h, const char *at, size_t len)
{
    if (h->buf.len + len > h->lim.max_header_bytes) {
        h->error = S3S_ERR_HEADERS_TOO_LARGE;
        return -1;
    }
    return s3s_is_ok(s3s_buf_append(&h->buf, at, len)) ? 0 : -1;
}

int s3s_http_head_on_url(struct s3s_http_head *h, const char *at, size_t len)
{
    if (h->url_len == 0) {
        h->url_off = (uint32_t)h->buf.len;
    }
    if (h->url_len + len > h->lim.max_url_bytes) {
        h->error = S3S_ERR_URI_TOO_LONG;
        return -1;
    }
    h->url_len += (uint32_t)len;
    if (!h->scanning && !h->complete) {
        /* The line-ending check starts after the target (the request line
         * ends with a CR LF like every header line). */
        h->scanning = true;
    }
    h->scan_at = at + len;
    return s_append(h, at, len);
}

int s3s_http_head_on_field(struct s3s_http_head *h, const char *at, size_t len)
{
    if (h->last_cb != 1) {
        if (h->n_hdrs >= h->lim.max_headers) {
            h->error = S3S_ERR_HEADERS_TOO_LARGE;
            return -1;
        }
        if (h->n_hdrs == h->cap_hdrs) {
            size_t ncap = h->cap_hdrs ? h->cap_hdrs * 2 : 32;
            struct s3s_hdr_ref *nh = s3s_realloc(h->hdrs, ncap * sizeof(*nh));
            if (!nh) {
                return -1;
            }
            h->hdrs = nh;
            h->cap_hdrs = ncap;
        }
        h->hdrs[h->n_hdrs++] =
            (struct s3s_hdr_ref){(uint32_t)h->buf.len, 0, (uint32_t)h->buf.len, 0};
        h->last_cb = 1;
    }
    h->hdrs[h->n_hdrs - 1].name_len += (uint32_t)len;
    int rc = s_append(h, at, len);
    h->hdrs[h->n_hdrs - 1].value_off = (uint32_t)h->buf.len;
    return rc;
}

int s3s_http_head_on_value(struct s3s_http_head *h, const char *at, size_t len)
{
    if (h->n_hdrs == 0) {
        return -1;
    }
    if (h->last_cb != 2) {
        h->hdrs[h->n_hdrs - 1].value_off = (uint32_t)h->buf.len;
        h->last_cb = 2;
    }
    h->hdrs[h->n_hdrs - 1].value_len += (uint32_t)len;
    return s_append(h, at, len);
}

/* RFC 9110 5.6.2: tchar. */
static bool s_is_tchar(uint8_t ch)
{
    if ((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z')) {
        return true;
    }
    return ch != 0 && strchr("!#$%&'*+-.^_`|~", ch) != NULL;
}

static bool s_is_token(struct s3s_cur c)
{
    if (c.len == 0) {
        return false;
    }
    for (size_t i = 0; i < c.len; i++) {
        if (!s_is_tchar(c.ptr[i])) {
            return false;
        }
    }
    return true;
}

/* Names, and the framing headers llhttp lets through. */
static bool s_headers_ok(const struct s3s_http_head *h, const llhttp_t *p)
{
    size_t n_te = 0;
    for (size_t i = 0; i < h->n_hdrs; i++) {
        struct s3s_cur name = s3s_http_head_name(h, i);
        if (!s_is_token(name)) {
            return false; /* "Host :" reaches here as the name "Host " */
        }
        if (s3s_cur_eq_str_ignore_case(name, "transfer-encoding")) {
            /* Only "chunked" alone, once, in HTTP/1.1: s3seal decodes no
             * other coding, and a list is where parsers disagree. */
            if (++n_te > 1 || p->http_major != 1 || p->http_minor != 1 ||
                !s3s_cur_eq_str_ignore_case(s3s_cur_trim(s3s_http_head_value(h, i)), "chunked")) {
                return false;
            }
        }
    }
    return true;
}

int s3s_http_head_complete(struct s3s_http_head *h, const llhttp_t *p)
{
    bool ok = h->scanning && h->error == 0;
    if (ok) {
        /* The rest of the head is in the bytes being parsed: checked up to
         * the empty line, which llhttp has just reached. */
        const char *at = h->scan_at;
        ok = at != NULL && h->feed_end != NULL && s_scan(h, &at, h->feed_end) == S_SCAN_END;
        h->scan_at = at;
    }
    h->scanning = false;
    h->complete = true;
    if (ok) {
        ok = s_headers_ok(h, p);
    }
    if (!ok) {
        h->error = S3S_ERR_BAD_REQUEST;
        return -1;
    }
    return 0;
}

void s3s_http_head_parser_init(llhttp_t *p, const llhttp_settings_t *settings, void *data)
{
    /* Strict: no lenient flag, so conflicting Content-Length and
     * Transfer-Encoding, duplicate lengths, CR or control bytes in values
     * and the like are llhttp's errors; the rest is s3s_http_head_complete's. */
    llhttp_init(p, HTTP_REQUEST, settings);
    p->data = data;
}

llhttp_errno_t s3s_http_head_execute(struct s3s_http_head *h, llhttp_t *p, const char *data,
                                     size_t len)
{
    h->feed_end = data + len;
    if (h->scanning) {
        h->scan_at = data; /* the head goes on in these bytes */
    }
    llhttp_errno_t err = llhttp_execute(p, data, len);
    if (h->scanning && err == HPE_OK && h->scan_at) {
        /* The head is not complete: all that is left of these bytes is
         * part of it, and they will be gone at the next feed. */
        const char *at = h->scan_at;
        if (s_scan(h, &at, data + len) != S_SCAN_MORE) {
            /* Bad, or an end llhttp did not see: refused now, and the
             * parser stays in error as after any of its own. */
            h->error = S3S_ERR_BAD_REQUEST;
            h->scanning = false;
            p->error = HPE_USER;
            p->reason = "Invalid line ending or folded header line";
            p->error_pos = at;
            err = HPE_USER;
        }
    }
    h->scan_at = NULL;
    h->feed_end = NULL;
    return err;
}

struct s3s_cur s3s_http_head_target(const struct s3s_http_head *h)
{
    return s3s_cur_from(h->buf.ptr + h->url_off, h->url_len);
}

struct s3s_cur s3s_http_head_name(const struct s3s_http_head *h, size_t i)
{
    return s3s_cur_from(h->buf.ptr + h->hdrs[i].name_off, h->hdrs[i].name_len);
}

struct s3s_cur s3s_http_head_value(const struct s3s_http_head *h, size_t i)
{
    return s3s_cur_from(h->buf.ptr + h->hdrs[i].value_off, h->hdrs[i].value_len);
}

/* ------------------------------------------------------- standalone parse */

static int s_cb_begin(llhttp_t *p)
{
    s3s_http_head_begin(p->data);
    return 0;
}

static int s_cb_url(llhttp_t *p, const char *at, size_t len)
{
    return s3s_http_head_on_url(p->data, at, len);
}

static int s_cb_field(llhttp_t *p, const char *at, size_t len)
{
    return s3s_http_head_on_field(p->data, at, len);
}

static int s_cb_value(llhttp_t *p, const char *at, size_t len)
{
    return s3s_http_head_on_value(p->data, at, len);
}

static int s_cb_headers_complete(llhttp_t *p)
{
    if (s3s_http_head_complete(p->data, p) != 0) {
        return -1;
    }
    return HPE_PAUSED; /* the head is all this parse wants */
}

s3s_result s3s_http_head_parse(struct s3s_http_head *h, const uint8_t *data, size_t len,
                               size_t step, int *method, size_t *used)
{
    llhttp_settings_t settings;
    llhttp_settings_init(&settings);
    settings.on_message_begin = s_cb_begin;
    settings.on_url = s_cb_url;
    settings.on_header_field = s_cb_field;
    settings.on_header_value = s_cb_value;
    settings.on_headers_complete = s_cb_headers_complete;
    llhttp_t p;
    s3s_http_head_parser_init(&p, &settings, h);
    s3s_http_head_begin(h);
    size_t off = 0;
    if (step == 0) {
        step = len ? len : 1;
    }
    do {
        size_t n = len - off < step ? len - off : step;
        const char *piece = (const char *)data + off;
        llhttp_errno_t err = s3s_http_head_execute(h, &p, piece, n);
        if (err == HPE_PAUSED) {
            const char *pos = llhttp_get_error_pos(&p);
            *used = off + (pos ? (size_t)(pos - piece) : n);
            *method = (int)p.method;
            return s3s_ok();
        }
        if (err != HPE_OK) {
            S3S_BAIL(h->error ? h->error : S3S_ERR_BAD_REQUEST);
        }
        off += n;
    } while (off < len);
    S3S_BAIL(S3S_ERR_NEED_MORE);
}
