/*
 * http_head.h - a request's head (request line and header section) as read
 * by llhttp with s3seal's settings: the target, names and values collected
 * in one buffer under the configured limits, and the checks llhttp 8 leaves
 * to its caller (obsolete line folding, bare LF line endings, a header name
 * that is no token, a Transfer-Encoding other than one "chunked").
 *
 * A connection (conn.c) feeds its parser through s3s_http_head_execute and
 * calls the s3s_http_head_on_* functions from its llhttp callbacks;
 * s3s_http_head_parse does the same for a head given at once (unit tests,
 * fuzzing). Nothing here allocates except the header buffer and the header
 * table, both bounded by the limits.
 */
#ifndef S3S_HTTP_HEAD_H
#define S3S_HTTP_HEAD_H

#include <llhttp.h>

#include "common/common.h"

struct s3s_http_head_limits {
    size_t max_header_bytes; /* target, names and values together */
    size_t max_headers;
    size_t max_url_bytes;
};

/* A header as offsets into the head's buffer (which may move as it grows). */
struct s3s_hdr_ref {
    uint32_t name_off, name_len;
    uint32_t value_off, value_len;
};

struct s3s_http_head {
    struct s3s_http_head_limits lim;
    struct s3s_buf buf; /* the target, then names and values, back to back */
    struct s3s_hdr_ref *hdrs;
    size_t n_hdrs, cap_hdrs;
    uint32_t url_off, url_len;
    int last_cb;   /* 1: field, 2: value (to know when a new header starts) */
    int32_t error; /* why the head was refused (S3S_ERR_*), for the 4xx */

    /* The line-ending check over the raw bytes after the target, up to the
     * empty line (s3s_http_head_execute knows the bytes of each feed). */
    const char *feed_end; /* end of the bytes being parsed */
    const char *scan_at;  /* next byte of this feed not yet checked */
    uint8_t scan_state;   /* what the last checked bytes were */
    bool scanning;        /* the target was seen, the head is not complete */
    bool complete;        /* the empty line was reached and checked */
};

/* Prepares an empty head (no allocation: the buffer grows up to the limit). */
void s3s_http_head_init(struct s3s_http_head *h, const struct s3s_http_head_limits *lim);
void s3s_http_head_clean_up(struct s3s_http_head *h);

/* A new message starts (llhttp's on_message_begin): forgets the last one. */
void s3s_http_head_begin(struct s3s_http_head *h);

/* llhttp's span callbacks: append the bytes under the limits. Return 0, or
 * -1 to stop the parser, with h->error set when a limit was hit (left 0 when
 * memory ran out: the caller answers 400 BadRequest then). */
int s3s_http_head_on_url(struct s3s_http_head *h, const char *at, size_t len);
int s3s_http_head_on_field(struct s3s_http_head *h, const char *at, size_t len);
int s3s_http_head_on_value(struct s3s_http_head *h, const char *at, size_t len);

/* llhttp's on_headers_complete, before the caller acts on the head: the
 * checks llhttp does not make. 0, or -1 with h->error set. */
int s3s_http_head_complete(struct s3s_http_head *h, const llhttp_t *p);

/* A parser with s3seal's settings: strict, no lenient flag set. */
void s3s_http_head_parser_init(llhttp_t *p, const llhttp_settings_t *settings, void *data);

/* llhttp_execute, with the bytes made known to the line-ending check; the
 * only way a parser using this head may be fed. */
llhttp_errno_t s3s_http_head_execute(struct s3s_http_head *h, llhttp_t *p, const char *data,
                                     size_t len);

/* Views of a complete head (cursors into h->buf, valid until the next
 * s3s_http_head_begin or clean-up). */
struct s3s_cur s3s_http_head_target(const struct s3s_http_head *h);
struct s3s_cur s3s_http_head_name(const struct s3s_http_head *h, size_t i);
struct s3s_cur s3s_http_head_value(const struct s3s_http_head *h, size_t i);

/* Parses one head from `data`, fed to llhttp in pieces of at most `step`
 * bytes (0: at once), and stops after it. Ok when the head is complete and
 * accepted (*method gets llhttp's method, *used the bytes up to the end of
 * the head); S3S_ERR_NEED_MORE when the data ends first; otherwise the
 * error a connection would answer with (S3S_ERR_BAD_REQUEST or a limit's). */
S3S_RESULT s3s_http_head_parse(struct s3s_http_head *h, const uint8_t *data, size_t len,
                               size_t step, int *method, size_t *used);

#endif
