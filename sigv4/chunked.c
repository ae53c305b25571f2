/*
 * chunked.c - incremental aws-chunked decoder (AWS S3 API reference,
 * "Signature calculations for the Authorization header: transferring payload
 * in multiple chunks" and "... with trailing headers").
 *
 *   signed:    hex-size;chunk-signature=SIG\r\n DATA \r\n ... 0;chunk-signature=SIG\r\n
 *              then \r\n, or trailer lines, x-amz-trailer-signature:SIG\r\n, \r\n
 *   unsigned:  hex-size\r\n DATA \r\n ... 0\r\n trailer lines \r\n
 *
 * Each chunk's signature is HMAC(signing key, "AWS4-HMAC-SHA256-PAYLOAD\n"
 * date \n scope \n previous-signature \n sha256("") \n sha256(chunk)), the
 * chain seeded by the request's signature; the trailer's is
 * HMAC(key, "AWS4-HMAC-SHA256-TRAILER\n" date \n scope \n previous \n
 * sha256(trailer lines as "name:value\n")).
 */
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <string.h>

#include "sigv4/chunked.h"
#include "sigv4/sigv4_private.h"

#define S_LINE_MAX 512
#define S_MAX_TRAILERS 16

enum s_state { S_SIZE, S_DATA, S_DATA_CRLF, S_TRAILER, S_DONE, S_FAILED };

struct s_trailer {
    uint16_t name_off, name_len, value_off, value_len;
};

struct s3s_chunked {
    struct s3s_chunked_options o;
    s3s_chunked_data_fn *on_data;
    void *ctx;
    enum s_state state;
    bool signed_chunks;
    bool trailers_expected;
    uint8_t prev_sig[32];
    uint8_t want_sig[32];
    EVP_MD_CTX *sha;
    uint64_t remaining;
    uint64_t decoded;
    uint8_t line[S_LINE_MAX];
    size_t line_len;
    bool crlf_cr_seen;
    /* Trailer lines, kept for signing and lookup. */
    uint8_t tbuf[4096];
    size_t tbuf_len;
    struct s_trailer trailers[S_MAX_TRAILERS];
    size_t n_trailers;
    bool have_trailer_sig;
    uint8_t trailer_sig[32];
};

static const char s_empty_sha[] = S3S_SIGV4_EMPTY_SHA256;

s3s_result s3s_chunked_new(const struct s3s_chunked_options *opts, s3s_chunked_data_fn *on_data,
                           void *ctx, struct s3s_chunked **out)
{
    S3S_ENSURE_REF(opts);
    S3S_ENSURE_REF(on_data);
    bool sig = opts->mode == S3S_SIGV4_PAYLOAD_STREAMING ||
               opts->mode == S3S_SIGV4_PAYLOAD_STREAMING_TRAILER;
    S3S_ENSURE(sig || opts->mode == S3S_SIGV4_PAYLOAD_STREAMING_UNSIGNED_TRAILER,
               S3S_ERR_INVALID_ARG);
    struct s3s_chunked *c = s3s_calloc(1, sizeof(*c));
    S3S_ENSURE(c != NULL, S3S_ERR_NOMEM);
    c->o = *opts;
    if (!c->o.max_chunk_size) {
        c->o.max_chunk_size = 64ull * 1024 * 1024;
    }
    c->on_data = on_data;
    c->ctx = ctx;
    c->signed_chunks = sig;
    c->trailers_expected = opts->mode != S3S_SIGV4_PAYLOAD_STREAMING;
    memcpy(c->prev_sig, opts->seed_signature, 32);
    c->sha = EVP_MD_CTX_new();
    if (!c->sha) {
        s3s_chunked_destroy(c);
        S3S_BAIL(S3S_ERR_NOMEM);
    }
    *out = c;
    return s3s_ok();
}

void s3s_chunked_destroy(struct s3s_chunked *c)
{
    if (!c) {
        return;
    }
    EVP_MD_CTX_free(c->sha);
    OPENSSL_cleanse(c->o.signing_key, sizeof(c->o.signing_key));
    s3s_free(&c);
}

bool s3s_chunked_done(const struct s3s_chunked *c) { return c->state == S_DONE; }
uint64_t s3s_chunked_decoded(const struct s3s_chunked *c) { return c->decoded; }

bool s3s_chunked_trailer(const struct s3s_chunked *c, const char *name, struct s3s_cur *value)
{
    for (size_t i = 0; i < c->n_trailers; i++) {
        const struct s_trailer *t = &c->trailers[i];
        if (s3s_cur_eq_str_ignore_case(s3s_cur_from(c->tbuf + t->name_off, t->name_len), name)) {
            *value = s3s_cur_from(c->tbuf + t->value_off, t->value_len);
            return true;
        }
    }
    return false;
}

/* HMAC over "ALGO\n date \n scope \n prev \n <rest>" and constant-time
 * comparison with `want`. */
static s3s_result s_check_sig(struct s3s_chunked *c, const char *algo, struct s3s_cur rest,
                              const uint8_t want[32])
{
    struct s3s_buf sts;
    char date[17];
    S3S_GUARD(s3s_buf_init(&sts, 256, 1024));
    s3s_time_format_iso8601_basic(c->o.request_time, date);
    s3s_result r = s3s_buf_appendf(&sts, "%s\n%s\n%s/%s/%s/aws4_request\n", algo, date,
                                   c->o.scope_date, c->o.region, c->o.service);
    if (s3s_is_ok(r)) {
        r = s3s_buf_append_hex(&sts, c->prev_sig, 32);
    }
    if (s3s_is_ok(r)) {
        r = s3s_buf_append_byte(&sts, '\n');
    }
    if (s3s_is_ok(r)) {
        r = s3s_buf_append_cur(&sts, rest);
    }
    uint8_t sig[32];
    if (s3s_is_ok(r)) {
        r = s3s_sigv4_signature(c->o.signing_key, s3s_buf_cur(&sts), sig);
    }
    s3s_buf_clean_up(&sts);
    S3S_GUARD(r);
    S3S_ENSURE(s3s_ct_eq(sig, 32, want, 32), S3S_ERR_SIGNATURE_DOES_NOT_MATCH);
    memcpy(c->prev_sig, sig, 32);
    return s3s_ok();
}

static s3s_result s_chunk_end(struct s3s_chunked *c)
{
    if (!c->signed_chunks) {
        return s3s_ok();
    }
    uint8_t hash[32];
    unsigned int n = 0;
    S3S_ENSURE(EVP_DigestFinal_ex(c->sha, hash, &n) == 1, S3S_ERR_INTERNAL);
    char rest[64 * 2 + 2];
    memcpy(rest, s_empty_sha, 64);
    rest[64] = '\n';
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        rest[65 + 2 * i] = hex[hash[i] >> 4];
        rest[66 + 2 * i] = hex[hash[i] & 15];
    }
    return s_check_sig(c, "AWS4-HMAC-SHA256-PAYLOAD", s3s_cur_from(rest, 129), c->want_sig);
}

/* "hex-size[;chunk-signature=SIG]" */
static s3s_result s_size_line(struct s3s_chunked *c, struct s3s_cur line)
{
    struct s3s_cur size = line, ext = {0};
    long semi = s3s_cur_find(line, ';');
    if (semi >= 0) {
        size.len = (size_t)semi;
        ext = s3s_cur_from(line.ptr + semi + 1, line.len - (size_t)semi - 1);
    }
    S3S_ENSURE(size.len > 0 && size.len <= 16, S3S_ERR_INVALID_CHUNK);
    uint64_t n = 0;
    for (size_t i = 0; i < size.len; i++) {
        uint8_t ch = size.ptr[i];
        int v = (ch >= '0' && ch <= '9')   ? ch - '0'
                : (ch >= 'a' && ch <= 'f') ? ch - 'a' + 10
                : (ch >= 'A' && ch <= 'F') ? ch - 'A' + 10
                                           : -1;
        S3S_ENSURE(v >= 0, S3S_ERR_INVALID_CHUNK);
        n = n * 16 + (uint64_t)v;
    }
    S3S_ENSURE(n <= c->o.max_chunk_size, S3S_ERR_INVALID_CHUNK);
    if (c->signed_chunks) {
        S3S_ENSURE(s3s_cur_starts_with(ext, "chunk-signature="), S3S_ERR_INVALID_CHUNK);
        struct s3s_cur sig = s3s_cur_from(ext.ptr + 16, ext.len - 16);
        S3S_ENSURE(s3s_hex_decode(sig, c->want_sig, 32), S3S_ERR_SIGNATURE_DOES_NOT_MATCH);
        S3S_ENSURE(EVP_DigestInit_ex(c->sha, EVP_sha256(), NULL) == 1, S3S_ERR_INTERNAL);
    } else {
        S3S_ENSURE(ext.len == 0, S3S_ERR_INVALID_CHUNK);
    }
    c->remaining = n;
    if (n > 0) {
        c->state = S_DATA;
        return s3s_ok();
    }
    /* The final, empty chunk. */
    S3S_GUARD(s_chunk_end(c));
    c->state = S_TRAILER;
    return s3s_ok();
}

/* A trailer line, or the empty line that ends the body. */
static s3s_result s_trailer_line(struct s3s_chunked *c, struct s3s_cur line)
{
    if (line.len == 0) {
        if (c->o.mode == S3S_SIGV4_PAYLOAD_STREAMING_TRAILER) {
            S3S_ENSURE(c->have_trailer_sig, S3S_ERR_SIGNATURE_DOES_NOT_MATCH);
            struct s3s_buf canon;
            S3S_GUARD(s3s_buf_init(&canon, 0, sizeof(c->tbuf) + 64));
            s3s_result r = s3s_ok();
            for (size_t i = 0; s3s_is_ok(r) && i < c->n_trailers; i++) {
                const struct s_trailer *t = &c->trailers[i];
                r = s3s_buf_append(&canon, c->tbuf + t->name_off, t->name_len);
                if (s3s_is_ok(r)) {
                    r = s3s_buf_append_byte(&canon, ':');
                }
                if (s3s_is_ok(r)) {
                    r = s3s_buf_append(&canon, c->tbuf + t->value_off, t->value_len);
                }
                if (s3s_is_ok(r)) {
                    r = s3s_buf_append_byte(&canon, '\n');
                }
            }
            uint8_t hash[32];
            struct s3s_buf hex;
            if (s3s_is_ok(r)) {
                r = s3s_sigv4__sha256(s3s_buf_cur(&canon), hash);
            }
            s3s_buf_clean_up(&canon);
            S3S_GUARD(r);
            S3S_GUARD(s3s_buf_init(&hex, 0, 65));
            r = s3s_buf_append_hex(&hex, hash, 32);
            if (s3s_is_ok(r)) {
                r = s_check_sig(c, "AWS4-HMAC-SHA256-TRAILER", s3s_buf_cur(&hex), c->trailer_sig);
            }
            s3s_buf_clean_up(&hex);
            S3S_GUARD(r);
        }
        c->state = S_DONE;
        return s3s_ok();
    }
    S3S_ENSURE(c->trailers_expected && !c->have_trailer_sig, S3S_ERR_INVALID_CHUNK);
    struct s3s_cur name = line;
    S3S_ENSURE(s3s_cur_split(&line, ':', &name) && name.len > 0, S3S_ERR_INVALID_CHUNK);
    struct s3s_cur value = s3s_cur_trim(line);
    if (s3s_cur_eq_str_ignore_case(name, "x-amz-trailer-signature")) {
        S3S_ENSURE(c->o.mode == S3S_SIGV4_PAYLOAD_STREAMING_TRAILER, S3S_ERR_INVALID_CHUNK);
        S3S_ENSURE(s3s_hex_decode(value, c->trailer_sig, 32), S3S_ERR_SIGNATURE_DOES_NOT_MATCH);
        c->have_trailer_sig = true;
        return s3s_ok();
    }
    S3S_ENSURE(c->n_trailers < S_MAX_TRAILERS &&
                   c->tbuf_len + name.len + value.len <= sizeof(c->tbuf),
               S3S_ERR_INVALID_CHUNK);
    struct s_trailer *t = &c->trailers[c->n_trailers++];
    t->name_off = (uint16_t)c->tbuf_len;
    t->name_len = (uint16_t)name.len;
    for (size_t i = 0; i < name.len; i++) {
        uint8_t ch = name.ptr[i];
        c->tbuf[c->tbuf_len++] = (ch >= 'A' && ch <= 'Z') ? (uint8_t)(ch + 32) : ch;
    }
    t->value_off = (uint16_t)c->tbuf_len;
    t->value_len = (uint16_t)value.len;
    memcpy(c->tbuf + c->tbuf_len, value.ptr, value.len);
    c->tbuf_len += value.len;
    return s3s_ok();
}

/* Accumulates one CRLF-terminated line; returns true with the line when
 * complete. A bare LF or an over-long line is malformed. */
static s3s_result s_line(struct s3s_chunked *c, struct s3s_cur *in, bool *complete)
{
    *complete = false;
    while (in->len) {
        uint8_t ch = in->ptr[0];
        in->ptr++;
        in->len--;
        if (ch == '\n') {
            S3S_ENSURE(c->line_len > 0 && c->line[c->line_len - 1] == '\r', S3S_ERR_INVALID_CHUNK);
            c->line_len--;
            *complete = true;
            return s3s_ok();
        }
        S3S_ENSURE(c->line_len < S_LINE_MAX, S3S_ERR_INVALID_CHUNK);
        c->line[c->line_len++] = ch;
    }
    return s3s_ok();
}

static s3s_result s_push(struct s3s_chunked *c, struct s3s_cur in)
{
    while (in.len) {
        bool complete = false;
        switch (c->state) {
        case S_SIZE:
            S3S_GUARD(s_line(c, &in, &complete));
            if (complete) {
                struct s3s_cur line = s3s_cur_from(c->line, c->line_len);
                c->line_len = 0;
                S3S_GUARD(s_size_line(c, line));
            }
            break;
        case S_DATA: {
            size_t n = in.len < c->remaining ? in.len : (size_t)c->remaining;
            if (c->signed_chunks) {
                S3S_ENSURE(EVP_DigestUpdate(c->sha, in.ptr, n) == 1, S3S_ERR_INTERNAL);
            }
            S3S_GUARD(c->on_data(c->ctx, in.ptr, n));
            c->decoded += n;
            c->remaining -= n;
            in.ptr += n;
            in.len -= n;
            if (c->remaining == 0) {
                c->state = S_DATA_CRLF;
                c->crlf_cr_seen = false;
            }
            break;
        }
        case S_DATA_CRLF: {
            uint8_t ch = in.ptr[0];
            in.ptr++;
            in.len--;
            if (!c->crlf_cr_seen) {
                S3S_ENSURE(ch == '\r', S3S_ERR_INVALID_CHUNK);
                c->crlf_cr_seen = true;
            } else {
                S3S_ENSURE(ch == '\n', S3S_ERR_INVALID_CHUNK);
                S3S_GUARD(s_chunk_end(c));
                c->state = S_SIZE;
            }
            break;
        }
        case S_TRAILER:
            S3S_GUARD(s_line(c, &in, &complete));
            if (complete) {
                struct s3s_cur line = s3s_cur_from(c->line, c->line_len);
                c->line_len = 0;
                S3S_GUARD(s_trailer_line(c, line));
            }
            break;
        case S_DONE:
            S3S_BAIL(S3S_ERR_INCOMPLETE_BODY);
        case S_FAILED:
        default:
            S3S_BAIL(S3S_ERR_INVALID_CHUNK);
        }
    }
    return s3s_ok();
}

s3s_result s3s_chunked_push(struct s3s_chunked *c, struct s3s_cur in)
{
    S3S_ENSURE_REF(c);
    s3s_result r = s_push(c, in);
    if (s3s_failed(r)) {
        c->state = S_FAILED;
    }
    return r;
}
