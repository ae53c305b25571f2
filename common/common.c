/*
 * common.c - error table, counting allocator, cursors, bounded buffers,
 * secure memory and small encoders shared by every module.
 */
#include "common.h"

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------ errors */

static _Thread_local const char *tl_debug_where;

void s3s__set_debug(const char *where) { tl_debug_where = where; }
const char *s3s_debug_where(void) { return tl_debug_where ? tl_debug_where : "-"; }

struct s_err_row {
    const char *name;
    const char *s3code;
    int status;
    const char *msg;
};

static const struct s_err_row s_errors[] = {
    {"OK", "OK", 200, "OK"},
#define S3S_ERR(name, code, status, msg) {#name, code, status, msg},
#include "errors.def"
#undef S3S_ERR
};

static const struct s_err_row *s_row(int32_t code)
{
    if (code < 0 || code >= S3S_ERR_COUNT_) {
        return &s_errors[S3S_ERR_INTERNAL];
    }
    return &s_errors[code];
}

const char *s3s_error_s3code(int32_t code) { return s_row(code)->s3code; }
int s3s_error_status(int32_t code) { return s_row(code)->status; }
const char *s3s_error_message(int32_t code) { return s_row(code)->msg; }
const char *s3s_strerror(int32_t code) { return s_row(code)->name; }

/* ---------------------------------------------------------------- memory */

static atomic_long g_mem_live;
static atomic_long g_mem_fail_after = -1;

static bool s_should_fail(void)
{
    long n = atomic_load(&g_mem_fail_after);
    if (n < 0) {
        return false;
    }
    if (n == 0) {
        return true;
    }
    atomic_fetch_sub(&g_mem_fail_after, 1);
    return false;
}

void *s3s_malloc(size_t n)
{
    if (s_should_fail()) {
        return NULL;
    }
    void *p = malloc(n ? n : 1);
    if (p) {
        atomic_fetch_add(&g_mem_live, 1);
    }
    return p;
}

void *s3s_calloc(size_t n, size_t size)
{
    if (s_should_fail()) {
        return NULL;
    }
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (p) {
        atomic_fetch_add(&g_mem_live, 1);
    }
    return p;
}

void *s3s_realloc(void *p, size_t n)
{
    if (p == NULL) {
        return s3s_malloc(n);
    }
    if (s_should_fail()) {
        return NULL;
    }
    return realloc(p, n ? n : 1);
}

char *s3s_strndup(const char *s, size_t n)
{
    char *d = s3s_malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

char *s3s_strdup(const char *s) { return s3s_strndup(s, strlen(s)); }

void s3s_free_ptr(void *pp)
{
    void **p = pp;
    if (p && *p) {
        free(*p);
        atomic_fetch_sub(&g_mem_live, 1);
        *p = NULL;
    }
}

long s3s_mem_live(void) { return atomic_load(&g_mem_live); }
void s3s_mem_fail_after(long n) { atomic_store(&g_mem_fail_after, n); }

/* ---------------------------------------------------------------- cursors */

struct s3s_cur s3s_cur_from_str(const char *s)
{
    return (struct s3s_cur){(const uint8_t *)s, s ? strlen(s) : 0};
}

bool s3s_cur_eq(struct s3s_cur a, struct s3s_cur b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

bool s3s_cur_eq_str(struct s3s_cur a, const char *s) { return s3s_cur_eq(a, s3s_cur_from_str(s)); }

static uint8_t s_lower(uint8_t c) { return (c >= 'A' && c <= 'Z') ? (uint8_t)(c + 32) : c; }

bool s3s_cur_eq_ignore_case(struct s3s_cur a, struct s3s_cur b)
{
    if (a.len != b.len) {
        return false;
    }
    for (size_t i = 0; i < a.len; i++) {
        if (s_lower(a.ptr[i]) != s_lower(b.ptr[i])) {
            return false;
        }
    }
    return true;
}

bool s3s_cur_eq_str_ignore_case(struct s3s_cur a, const char *s)
{
    return s3s_cur_eq_ignore_case(a, s3s_cur_from_str(s));
}

bool s3s_cur_starts_with(struct s3s_cur a, const char *prefix)
{
    size_t n = strlen(prefix);
    return a.len >= n && memcmp(a.ptr, prefix, n) == 0;
}

bool s3s_cur_starts_with_ignore_case(struct s3s_cur a, const char *prefix)
{
    size_t n = strlen(prefix);
    return a.len >= n && s3s_cur_eq_ignore_case(s3s_cur_from(a.ptr, n), s3s_cur_from(prefix, n));
}

struct s3s_cur s3s_cur_trim(struct s3s_cur c)
{
    while (c.len && (c.ptr[0] == ' ' || c.ptr[0] == '\t')) {
        c.ptr++;
        c.len--;
    }
    while (c.len && (c.ptr[c.len - 1] == ' ' || c.ptr[c.len - 1] == '\t')) {
        c.len--;
    }
    return c;
}

struct s3s_cur s3s_cur_unquote(struct s3s_cur c)
{
    if (c.len >= 2 && c.ptr[0] == '"' && c.ptr[c.len - 1] == '"') {
        c = s3s_cur_from(c.ptr + 1, c.len - 2);
    }
    return c;
}

bool s3s_cur_next(struct s3s_cur *rest, uint8_t sep, struct s3s_cur *item)
{
    /* A NULL pointer marks an exhausted list (and an absent one). */
    if (rest->ptr == NULL) {
        return false;
    }
    if (!s3s_cur_split(rest, sep, item)) {
        *item = *rest;
        *rest = (struct s3s_cur){NULL, 0};
    }
    return true;
}

bool s3s_cur_list_has(struct s3s_cur list, const char *item)
{
    struct s3s_cur part;
    while (s3s_cur_next(&list, ',', &part)) {
        if (s3s_cur_eq_str_ignore_case(s3s_cur_trim(part), item)) {
            return true;
        }
    }
    return false;
}

long s3s_cur_find(struct s3s_cur c, uint8_t ch)
{
    const uint8_t *p = c.len ? memchr(c.ptr, ch, c.len) : NULL;
    return p ? (long)(p - c.ptr) : -1;
}

bool s3s_cur_split(struct s3s_cur *c, uint8_t sep, struct s3s_cur *head)
{
    long i = s3s_cur_find(*c, sep);
    if (i < 0) {
        return false;
    }
    *head = s3s_cur_from(c->ptr, (size_t)i);
    c->ptr += i + 1;
    c->len -= (size_t)i + 1;
    return true;
}

s3s_result s3s_parse_u64(struct s3s_cur c, uint64_t max, uint64_t *out)
{
    S3S_ENSURE(c.len > 0 && c.len <= 20, S3S_ERR_INVALID_ARG);
    uint64_t v = 0;
    for (size_t i = 0; i < c.len; i++) {
        uint8_t d = c.ptr[i];
        S3S_ENSURE(d >= '0' && d <= '9', S3S_ERR_INVALID_ARG);
        S3S_ENSURE(v <= (UINT64_MAX - (d - '0')) / 10, S3S_ERR_INVALID_ARG);
        v = v * 10 + (uint64_t)(d - '0');
    }
    S3S_ENSURE(v <= max, S3S_ERR_INVALID_ARG);
    *out = v;
    return s3s_ok();
}

/* ---------------------------------------------------------------- buffers */

bool s3s_buf_validate(const struct s3s_buf *b)
{
    return b && b->len <= b->cap && b->cap <= b->max + 1 && (b->cap == 0 || b->ptr != NULL);
}

s3s_result s3s_buf_init(struct s3s_buf *b, size_t initial, size_t max)
{
    S3S_ENSURE_REF(b);
    *b = (struct s3s_buf){0};
    b->max = max;
    if (initial > max) {
        initial = max;
    }
    if (initial) {
        b->ptr = s3s_malloc(initial);
        S3S_ENSURE(b->ptr != NULL, S3S_ERR_NOMEM);
        b->cap = initial;
    }
    return s3s_ok();
}

void s3s_buf_clean_up(struct s3s_buf *b)
{
    if (b) {
        s3s_free(&b->ptr);
        b->len = b->cap = 0;
    }
}

void s3s_buf_clean_up_secure(struct s3s_buf *b)
{
    if (b && b->ptr) {
        OPENSSL_cleanse(b->ptr, b->cap);
    }
    s3s_buf_clean_up(b);
}

void s3s_buf_reset(struct s3s_buf *b) { b->len = 0; }

s3s_result s3s_buf_reserve(struct s3s_buf *b, size_t extra)
{
    S3S_ENSURE(extra <= b->max && b->len <= b->max - extra, S3S_ERR_TOO_BIG);
    /* One spare byte beyond max is allowed for s3s_buf_cstr's NUL. */
    size_t need = b->len + extra + 1;
    if (need <= b->cap) {
        return s3s_ok();
    }
    size_t ncap = b->cap ? b->cap : 512;
    while (ncap < need) {
        ncap *= 2;
    }
    if (ncap > b->max + 1) {
        ncap = b->max + 1;
    }
    uint8_t *p = s3s_realloc(b->ptr, ncap);
    S3S_ENSURE(p != NULL, S3S_ERR_NOMEM);
    b->ptr = p;
    b->cap = ncap;
    return s3s_ok();
}

s3s_result s3s_buf_append(struct s3s_buf *b, const void *p, size_t n)
{
    if (n == 0) {
        return s3s_ok();
    }
    S3S_GUARD(s3s_buf_reserve(b, n));
    memcpy(b->ptr + b->len, p, n);
    b->len += n;
    return s3s_ok();
}

s3s_result s3s_buf_append_cur(struct s3s_buf *b, struct s3s_cur c)
{
    return s3s_buf_append(b, c.ptr, c.len);
}

s3s_result s3s_buf_append_str(struct s3s_buf *b, const char *s)
{
    return s3s_buf_append(b, s, strlen(s));
}

s3s_result s3s_buf_append_byte(struct s3s_buf *b, uint8_t c) { return s3s_buf_append(b, &c, 1); }

s3s_result s3s_buf_vappendf(struct s3s_buf *b, const char *fmt, va_list ap)
{
    va_list measure;
    va_copy(measure, ap);
    int n = vsnprintf(NULL, 0, fmt, measure);
    va_end(measure);
    S3S_ENSURE(n >= 0, S3S_ERR_INTERNAL);
    S3S_GUARD(s3s_buf_reserve(b, (size_t)n));
    vsnprintf((char *)b->ptr + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
    return s3s_ok();
}

s3s_result s3s_buf_appendf(struct s3s_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    s3s_result r = s3s_buf_vappendf(b, fmt, ap);
    va_end(ap);
    return r;
}

s3s_result s3s_buf_append_hex(struct s3s_buf *b, const uint8_t *p, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    S3S_ENSURE(n <= SIZE_MAX / 2, S3S_ERR_TOO_BIG);
    S3S_GUARD(s3s_buf_reserve(b, n * 2));
    for (size_t i = 0; i < n; i++) {
        b->ptr[b->len++] = (uint8_t)hex[p[i] >> 4];
        b->ptr[b->len++] = (uint8_t)hex[p[i] & 15];
    }
    return s3s_ok();
}

s3s_result s3s_buf_cstr(struct s3s_buf *b, const char **out)
{
    if (b->cap < b->len + 1) {
        /* reserve(0) guarantees room for the NUL. */
        S3S_GUARD(s3s_buf_reserve(b, 0));
    }
    b->ptr[b->len] = '\0';
    *out = (const char *)b->ptr;
    return s3s_ok();
}

/* ------------------------------------------------------------- secrets */

/* Secrets live in OpenSSL's secure heap: one mapping, locked (where
 * RLIMIT_MEMLOCK allows), marked MADV_DONTDUMP so that no core file holds
 * it, between guard pages. A secret the heap cannot hold (it is full, or the
 * secret is larger than a quarter of it) gets a mapping of its own, marked
 * and locked the same way, its size in a header in front of it. */
#define S_SECURE_HEAP (4u << 20)
#define S_SECURE_MIN 16u
#define S_OWN_HDR 16u

static pthread_once_t g_secure_once = PTHREAD_ONCE_INIT;
static bool g_secure_heap;

static void s_secure_init(void)
{
    /* 1: locked and out of dumps; 2: set up, but mlock or madvise failed. */
    g_secure_heap = CRYPTO_secure_malloc_initialized() ||
                    CRYPTO_secure_malloc_init(S_SECURE_HEAP, S_SECURE_MIN) != 0;
}

static uint8_t *s_own_map(size_t len)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t total = (len + S_OWN_HDR + page - 1) / page * page;
    void *m = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) {
        return NULL;
    }
    (void)madvise(m, total, MADV_DONTDUMP);
    (void)mlock(m, total); /* best effort, as in the secure heap */
    memcpy(m, &total, sizeof(total));
    return (uint8_t *)m + S_OWN_HDR;
}

static void s_own_unmap(uint8_t *p)
{
    uint8_t *m = p - S_OWN_HDR;
    size_t total = 0;
    memcpy(&total, m, sizeof(total));
    OPENSSL_cleanse(m, total);
    (void)munmap(m, total);
}

s3s_result s3s_secret_new(size_t len, struct s3s_secret *out)
{
    S3S_ENSURE_REF(out);
    *out = (struct s3s_secret){0};
    S3S_ENSURE(!s_should_fail() && len < SIZE_MAX / 2, S3S_ERR_NOMEM);
    pthread_once(&g_secure_once, s_secure_init);
    uint8_t *p = NULL;
    if (g_secure_heap && len <= S_SECURE_HEAP / 4) {
        p = OPENSSL_secure_zalloc(len ? len : 1);
        ERR_clear_error(); /* a full heap queues an error; the fallback serves */
    }
    if (p == NULL) {
        p = s_own_map(len ? len : 1);
    }
    S3S_ENSURE(p != NULL, S3S_ERR_NOMEM);
    atomic_fetch_add(&g_mem_live, 1);
    out->ptr = p;
    out->len = len;
    return s3s_ok();
}

s3s_result s3s_secret_from(const void *p, size_t len, struct s3s_secret *out)
{
    S3S_GUARD(s3s_secret_new(len, out));
    if (len) {
        memcpy(out->ptr, p, len);
    }
    return s3s_ok();
}

void s3s_secret_destroy(struct s3s_secret *s)
{
    if (s && s->ptr) {
        if (CRYPTO_secure_allocated(s->ptr)) {
            /* Wiped by OpenSSL over the whole block, whatever len says. */
            OPENSSL_secure_clear_free(s->ptr, s->len ? s->len : 1);
        } else {
            s_own_unmap(s->ptr);
        }
        atomic_fetch_sub(&g_mem_live, 1);
        s->ptr = NULL;
        s->len = 0;
    }
}

bool s3s_ct_eq(const uint8_t *a, size_t a_len, const uint8_t *b, size_t b_len)
{
    if (a_len != b_len) {
        return false;
    }
    if (a_len == 0) {
        return true;
    }
    return CRYPTO_memcmp(a, b, a_len) == 0;
}

/* --------------------------------------------------------------- encoding */

static int s_hexval(uint8_t c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    return -1;
}

static int s_hexval_any(uint8_t c)
{
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return s_hexval(c);
}

s3s_result s3s_percent_decode(struct s3s_cur in, bool strict, bool plus_is_space,
                              struct s3s_buf *out)
{
    for (size_t i = 0; i < in.len; i++) {
        uint8_t c = in.ptr[i];
        if (c == '%') {
            int hi = i + 2 < in.len ? s_hexval_any(in.ptr[i + 1]) : -1;
            int lo = i + 2 < in.len ? s_hexval_any(in.ptr[i + 2]) : -1;
            if (hi >= 0 && lo >= 0) {
                c = (uint8_t)(hi << 4 | lo);
                i += 2;
            } else {
                S3S_ENSURE(!strict, S3S_ERR_INVALID_URI);
            }
        } else if (c == '+' && plus_is_space) {
            c = ' ';
        }
        S3S_GUARD(s3s_buf_append_byte(out, c));
    }
    return s3s_ok();
}

s3s_result s3s_percent_encode(struct s3s_cur in, struct s3s_buf *out)
{
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < in.len; i++) {
        uint8_t c = in.ptr[i];
        bool unreserved = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                          (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' || c == '~';
        if (unreserved) {
            S3S_GUARD(s3s_buf_append_byte(out, c));
        } else {
            uint8_t e[3] = {'%', (uint8_t)hex[c >> 4], (uint8_t)hex[c & 15]};
            S3S_GUARD(s3s_buf_append(out, e, 3));
        }
    }
    return s3s_ok();
}

bool s3s_hex_decode(struct s3s_cur hex, uint8_t *out, size_t out_len)
{
    if (hex.len != out_len * 2) {
        return false;
    }
    for (size_t i = 0; i < out_len; i++) {
        int hi = s_hexval(hex.ptr[2 * i]);
        int lo = s_hexval(hex.ptr[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            return false;
        }
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return true;
}

s3s_result s3s_base64_encode(const uint8_t *p, size_t n, struct s3s_buf *out)
{
    S3S_ENSURE(n <= (SIZE_MAX / 4) - 4 && n < 0x3fffffff, S3S_ERR_TOO_BIG);
    size_t need = 4 * ((n + 2) / 3);
    S3S_GUARD(s3s_buf_reserve(out, need));
    int w = EVP_EncodeBlock(out->ptr + out->len, p, (int)n);
    S3S_ENSURE(w >= 0 && (size_t)w == need, S3S_ERR_INTERNAL);
    out->len += need;
    return s3s_ok();
}

s3s_result s3s_base64_decode(struct s3s_cur in, struct s3s_buf *out)
{
    S3S_ENSURE(in.len % 4 == 0 && in.len < 0x3fffffff, S3S_ERR_INVALID_ARG);
    for (size_t i = 0; i < in.len; i++) {
        uint8_t c = in.ptr[i];
        bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  c == '+' || c == '/' || (c == '=' && i >= in.len - 2);
        S3S_ENSURE(ok, S3S_ERR_INVALID_ARG);
        if (c == '=' && i == in.len - 2) {
            S3S_ENSURE(in.ptr[in.len - 1] == '=', S3S_ERR_INVALID_ARG);
        }
    }
    size_t pad = 0;
    if (in.len >= 1 && in.ptr[in.len - 1] == '=') {
        pad++;
    }
    if (in.len >= 2 && in.ptr[in.len - 2] == '=') {
        pad++;
    }
    size_t need = in.len / 4 * 3;
    S3S_GUARD(s3s_buf_reserve(out, need));
    int w = EVP_DecodeBlock(out->ptr + out->len, in.ptr, (int)in.len);
    S3S_ENSURE(w >= 0 && (size_t)w == need, S3S_ERR_INVALID_ARG);
    out->len += need - pad;
    return s3s_ok();
}

/* ------------------------------------------------------------------ time */

int64_t s3s_now_real(void *ctx)
{
    (void)ctx;
    return (int64_t)time(NULL);
}

static bool s_digits(const uint8_t *p, size_t n, int *out)
{
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9') {
            return false;
        }
        v = v * 10 + (p[i] - '0');
    }
    *out = v;
    return true;
}

static int64_t s_days_from_civil(int y, int m, int d)
{
    /* Howard Hinnant's days_from_civil: proleptic Gregorian, UTC. */
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static s3s_result s_make_time(int y, int mo, int d, int h, int mi, int s, int64_t *out)
{
    S3S_ENSURE(y >= 1970 && y <= 9999 && mo >= 1 && mo <= 12 && d >= 1 && d <= 31,
               S3S_ERR_INVALID_ARG);
    S3S_ENSURE(h <= 23 && mi <= 59 && s <= 60, S3S_ERR_INVALID_ARG);
    *out = s_days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s;
    return s3s_ok();
}

s3s_result s3s_time_parse_iso8601_basic(struct s3s_cur c, int64_t *out)
{
    /* YYYYMMDDTHHMMSSZ */
    S3S_ENSURE(c.len == 16 && c.ptr[8] == 'T' && c.ptr[15] == 'Z', S3S_ERR_INVALID_ARG);
    int y, mo, d, h, mi, s;
    S3S_ENSURE(s_digits(c.ptr, 4, &y) && s_digits(c.ptr + 4, 2, &mo) &&
                   s_digits(c.ptr + 6, 2, &d) && s_digits(c.ptr + 9, 2, &h) &&
                   s_digits(c.ptr + 11, 2, &mi) && s_digits(c.ptr + 13, 2, &s),
               S3S_ERR_INVALID_ARG);
    return s_make_time(y, mo, d, h, mi, s, out);
}

void s3s_time_format_iso8601_basic(int64_t t, char out[17])
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(out, 17, "%Y%m%dT%H%M%SZ", &tm);
}

static const char *const s_months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
static const char *const s_wdays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};

s3s_result s3s_time_parse_http(struct s3s_cur c, int64_t *out)
{
    /* IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT" (29 bytes); the RFC 2822
     * spellings of UTC with "+0000" or "-0000" instead of "GMT" (what some S3
     * clients send: botocore writes -0000 for a Date a caller sets) too. */
    S3S_ENSURE((c.len == 29 && memcmp(c.ptr + 25, " GMT", 4) == 0) ||
                   (c.len == 31 && (memcmp(c.ptr + 25, " +0000", 6) == 0 ||
                                    memcmp(c.ptr + 25, " -0000", 6) == 0)),
               S3S_ERR_INVALID_ARG);
    S3S_ENSURE(c.ptr[3] == ',' && c.ptr[4] == ' ', S3S_ERR_INVALID_ARG);
    int d, y, h, mi, s, mo = -1;
    for (int i = 0; i < 12; i++) {
        if (memcmp(c.ptr + 8, s_months[i], 3) == 0) {
            mo = i + 1;
        }
    }
    S3S_ENSURE(mo > 0 && c.ptr[7] == ' ' && c.ptr[11] == ' ' && c.ptr[16] == ' ' &&
                   c.ptr[19] == ':' && c.ptr[22] == ':',
               S3S_ERR_INVALID_ARG);
    S3S_ENSURE(s_digits(c.ptr + 5, 2, &d) && s_digits(c.ptr + 12, 4, &y) &&
                   s_digits(c.ptr + 17, 2, &h) && s_digits(c.ptr + 20, 2, &mi) &&
                   s_digits(c.ptr + 23, 2, &s),
               S3S_ERR_INVALID_ARG);
    return s_make_time(y, mo, d, h, mi, s, out);
}

void s3s_time_format_http(int64_t t, char out[30])
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    char tmp[64];
    snprintf(tmp, sizeof(tmp), "%s, %02d %s %04d %02d:%02d:%02d GMT", s_wdays[tm.tm_wday % 7],
             tm.tm_mday % 100, s_months[tm.tm_mon % 12], (tm.tm_year + 1900) % 10000,
             tm.tm_hour % 100, tm.tm_min % 100, tm.tm_sec % 100);
    memcpy(out, tmp, 29);
    out[29] = '\0';
}
