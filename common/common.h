/*
 * common.h - the shared vocabulary of every s3seal module: the result type
 * and its guard macros, byte cursors and bounded buffers, secure memory for
 * key material, constant-time comparison, and bounded number parsing.
 *
 * Nothing here knows about sockets, event loops or HTTP; sigv4/, sse/ and
 * keystore/ build on this header alone, so they can be unit-tested and fuzzed
 * without a loop.
 */
#ifndef S3S_COMMON_H
#define S3S_COMMON_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ------------------------------------------------------------------ errors */

enum s3s_error {
    S3S_OK = 0,
#define S3S_ERR(name, code, status, msg) S3S_ERR_##name,
#include "errors.def"
#undef S3S_ERR
    S3S_ERR_COUNT_
};

/* A struct, not an int, so it cannot be mistaken for a length or a bool. */
typedef struct {
    int32_t code;
} s3s_result;

#define S3S_RESULT __attribute__((warn_unused_result)) s3s_result

static inline s3s_result s3s_ok(void) { return (s3s_result){S3S_OK}; }
static inline s3s_result s3s_err(enum s3s_error e) { return (s3s_result){(int32_t)e}; }
static inline bool s3s_is_ok(s3s_result r) { return r.code == S3S_OK; }
static inline bool s3s_failed(s3s_result r) { return r.code != S3S_OK; }
/* Where dropping a result is right, say so with this and a comment. */
static inline void s3s_result_ignore(s3s_result r) { (void)r; }

/* Records where the last failure was raised (debug log only, never clients). */
void s3s__set_debug(const char *where);
const char *s3s_debug_where(void);

#define S3S__STR2(x) #x
#define S3S__STR(x) S3S__STR2(x)
#define S3S_BAIL(e)                                                                   \
    do {                                                                              \
        s3s__set_debug(__FILE__ ":" S3S__STR(__LINE__));                              \
        return s3s_err(e);                                                            \
    } while (0)
#define S3S_ENSURE(cond, e)                                                           \
    do {                                                                              \
        if (!(cond)) {                                                                \
            S3S_BAIL(e);                                                              \
        }                                                                             \
    } while (0)
#define S3S_ENSURE_REF(p) S3S_ENSURE((p) != NULL, S3S_ERR_INVALID_ARG)
#define S3S_GUARD(expr)                                                               \
    do {                                                                              \
        s3s_result s3s__r = (expr);                                                   \
        if (s3s_failed(s3s__r)) {                                                     \
            return s3s__r;                                                            \
        }                                                                             \
    } while (0)

/* Name of the error ("SignatureDoesNotMatch"), its HTTP status and message. */
const char *s3s_error_s3code(int32_t code);
int s3s_error_status(int32_t code);
const char *s3s_error_message(int32_t code);
const char *s3s_strerror(int32_t code); /* the enum name, for logs */

/* ---------------------------------------------------------------- memory */

/* All allocation goes through these so tests can count and fail them.
 * Out of memory returns NULL; callers turn that into S3S_ERR_NOMEM. */
void *s3s_malloc(size_t n);
void *s3s_calloc(size_t n, size_t size);
void *s3s_realloc(void *p, size_t n);
char *s3s_strndup(const char *s, size_t n);
char *s3s_strdup(const char *s);
/* Frees *pp and clears the caller's pointer. */
void s3s_free_ptr(void *pp);
#define s3s_free(pp) s3s_free_ptr((void *)(pp))

/* Counters for tests: live allocations and a fail-after-N switch (-1: off). */
long s3s_mem_live(void);
void s3s_mem_fail_after(long n);

/* ---------------------------------------------------------------- cursors */

/* A borrowed view of bytes; never NUL-terminated by contract. */
struct s3s_cur {
    const uint8_t *ptr;
    size_t len;
};

#define S3S_CUR_LIT(s) ((struct s3s_cur){(const uint8_t *)(s), sizeof(s) - 1})

static inline struct s3s_cur s3s_cur_from(const void *p, size_t n)
{
    return (struct s3s_cur){(const uint8_t *)p, n};
}
struct s3s_cur s3s_cur_from_str(const char *s);
bool s3s_cur_eq(struct s3s_cur a, struct s3s_cur b);
bool s3s_cur_eq_str(struct s3s_cur a, const char *s);
bool s3s_cur_eq_ignore_case(struct s3s_cur a, struct s3s_cur b);
bool s3s_cur_eq_str_ignore_case(struct s3s_cur a, const char *s);
bool s3s_cur_starts_with(struct s3s_cur a, const char *prefix);
bool s3s_cur_starts_with_ignore_case(struct s3s_cur a, const char *prefix);
/* Trims spaces and tabs on both ends. */
struct s3s_cur s3s_cur_trim(struct s3s_cur c);
/* Without its enclosing double quotes, if it has both ("abc" -> abc): an
 * ETag's value. */
struct s3s_cur s3s_cur_unquote(struct s3s_cur c);
/* Splits at the first `sep`: *head gets what precedes it, c advances past it.
 * Returns false (and leaves *c untouched) when sep is absent. */
bool s3s_cur_split(struct s3s_cur *c, uint8_t sep, struct s3s_cur *head);
/* Iterates over the `sep`-separated items of a list: each call yields the
 * next item (possibly empty) in *item and returns true; false once the list
 * is exhausted. `rest` starts as the whole list and is consumed. */
bool s3s_cur_next(struct s3s_cur *rest, uint8_t sep, struct s3s_cur *item);
/* Whether a comma-separated list (a header value such as Content-Encoding)
 * holds `item`, compared trimmed and without regard to case. */
bool s3s_cur_list_has(struct s3s_cur list, const char *item);
/* Index of the first `ch`, or -1. */
long s3s_cur_find(struct s3s_cur c, uint8_t ch);

/* Bounded decimal parser for numbers from the wire: digits only, no sign, no
 * space, no empty input, no overflow past max. */
S3S_RESULT s3s_parse_u64(struct s3s_cur c, uint64_t max, uint64_t *out);

/* ---------------------------------------------------------------- buffers */

/* An owned, growable buffer with a hard maximum chosen at init. */
struct s3s_buf {
    uint8_t *ptr;
    size_t len;
    size_t cap;
    size_t max;
};

S3S_RESULT s3s_buf_init(struct s3s_buf *b, size_t initial, size_t max);
void s3s_buf_clean_up(struct s3s_buf *b);
/* Wipes the contents before freeing. */
void s3s_buf_clean_up_secure(struct s3s_buf *b);
void s3s_buf_reset(struct s3s_buf *b);
S3S_RESULT s3s_buf_reserve(struct s3s_buf *b, size_t extra);
S3S_RESULT s3s_buf_append(struct s3s_buf *b, const void *p, size_t n);
S3S_RESULT s3s_buf_append_cur(struct s3s_buf *b, struct s3s_cur c);
S3S_RESULT s3s_buf_append_str(struct s3s_buf *b, const char *s);
S3S_RESULT s3s_buf_append_byte(struct s3s_buf *b, uint8_t c);
S3S_RESULT s3s_buf_appendf(struct s3s_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* The same with a va_list, for functions that take a format of their own;
 * ap is consumed (va_end is the caller's). */
S3S_RESULT s3s_buf_vappendf(struct s3s_buf *b, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));
/* Appends lower-case hex of the bytes. */
S3S_RESULT s3s_buf_append_hex(struct s3s_buf *b, const uint8_t *p, size_t n);
/* Makes the contents NUL-terminated (the NUL is not counted in len). */
S3S_RESULT s3s_buf_cstr(struct s3s_buf *b, const char **out);
static inline struct s3s_cur s3s_buf_cur(const struct s3s_buf *b)
{
    return (struct s3s_cur){b->ptr, b->len};
}
bool s3s_buf_validate(const struct s3s_buf *b);

/* ------------------------------------------------------------- secrets */

/* Key material: kept out of core dumps and swap where the OS allows, and wiped
 * with OPENSSL_cleanse before it is freed. */
struct s3s_secret {
    uint8_t *ptr;
    size_t len;
};

S3S_RESULT s3s_secret_new(size_t len, struct s3s_secret *out);
S3S_RESULT s3s_secret_from(const void *p, size_t len, struct s3s_secret *out);
void s3s_secret_destroy(struct s3s_secret *s);

/* Constant-time equality over equal-length inputs; a length mismatch is
 * rejected first (lengths are public). */
bool s3s_ct_eq(const uint8_t *a, size_t a_len, const uint8_t *b, size_t b_len);

/* --------------------------------------------------------------- encoding */

/* Percent-decodes once. Strict: a '%' not followed by two hex digits is
 * S3S_ERR_INVALID_URI. Lenient: it is kept as a literal '%' (what AWS SDKs do
 * when signing such input). plus_is_space: '+' becomes ' ' (form encoding). */
S3S_RESULT s3s_percent_decode(struct s3s_cur in, bool strict, bool plus_is_space,
                              struct s3s_buf *out);
/* Percent-encodes every byte but the unreserved A-Z a-z 0-9 - . _ ~. */
S3S_RESULT s3s_percent_encode(struct s3s_cur in, struct s3s_buf *out);
/* Lower-case hex decode of exactly out_len bytes; false on bad input. */
bool s3s_hex_decode(struct s3s_cur hex, uint8_t *out, size_t out_len);
S3S_RESULT s3s_base64_encode(const uint8_t *p, size_t n, struct s3s_buf *out);
/* Strict standard base64 (with padding). */
S3S_RESULT s3s_base64_decode(struct s3s_cur in, struct s3s_buf *out);

/* ------------------------------------------------------------------ time */

/* Wall-clock seconds; tests replace it to replay fixed-date vectors. */
typedef int64_t s3s_now_fn(void *ctx);
int64_t s3s_now_real(void *ctx);

/* "20150830T123600Z" <-> Unix seconds. */
S3S_RESULT s3s_time_parse_iso8601_basic(struct s3s_cur c, int64_t *out);
void s3s_time_format_iso8601_basic(int64_t t, char out[17]);
/* RFC 1123 ("Sun, 30 Aug 2015 12:36:00 GMT") <-> Unix seconds. */
S3S_RESULT s3s_time_parse_http(struct s3s_cur c, int64_t *out);
void s3s_time_format_http(int64_t t, char out[30]);

#endif /* S3S_COMMON_H */
