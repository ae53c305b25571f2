/*
 * audit.c - the hash-chained audit trail of key use (audit.h describes the
 * record format and what the chain proves).
 *
 * An append has two halves. Outside every lock, the record is checked and
 * built as a json-c object whose "seq" and "prev" are left null. Under the
 * handle's mutex and an exclusive flock on the file, the record that ends
 * the file is learnt (from this handle's memory when nobody else has
 * written since, else by reading the last line back), seq and prev are
 * filled in, the object is serialised and hashed, and the line goes out at
 * the end of an O_APPEND descriptor. Reading the last line back and
 * verifying a file share one line checker, so a writer chains only onto a
 * record that the verifier accepts.
 */
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <libgen.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "keystore/audit_private.h"
#include "keystore/keystore_private.h"
#include "keystore/policy_private.h"

#define S_DIGEST_LEN S3S_AUDIT__DIGEST_LEN
#define S_HEX_LEN S3S_AUDIT__HEX_LEN
/* Every line ends with ,"hash":"<64 hex>"} and its newline. */
#define S_HASH_KEY ",\"hash\":\""
#define S_HASH_KEY_LEN (sizeof(S_HASH_KEY) - 1)
#define S_HASH_TAIL_LEN (S_HASH_KEY_LEN + S_HEX_LEN + 2)
#define S_JSON_FLAGS (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)
/* A record nests one object (the context) in another; anything deeper is
 * not a record, and a bound on the depth bounds the parser's work. */
#define S_JSON_DEPTH 4
/* 9999-12-31T23:59:59.999Z: four-digit years keep "time" ISO 8601. */
#define S_MAX_TIME_MS INT64_C(253402300799999)
#define S_TIME_BUF 40

/* A log in a file. */
struct s_file {
    struct s3s_audit base;
    /* read-only after open */
    int fd; /* O_RDWR | O_APPEND: read back the last line, truncate a torn one */
    bool fsync;
    char *path; /* for log messages */

    /* under base.mu; the file's contents are also under the flock */
    /* The file's size after this handle's last append, and the record that
     * append wrote. While the size is unchanged no one else has appended, so
     * the last line need not be read back. -1: unknown. */
    off_t known_size;
    struct s3s_audit__link last;
};

/* ----------------------------------------------------------------- hashing */

/* Into a fixed array, not an s3s_buf (s3s_buf_append_hex): the hex of a
 * digest has one size, and prev needs it as a C string for json-c. */
void s3s_audit__hex(const uint8_t d[S_DIGEST_LEN], char out[S_HEX_LEN + 1])
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < S_DIGEST_LEN; i++) {
        out[2 * i] = digits[d[i] >> 4];
        out[2 * i + 1] = digits[d[i] & 15];
    }
    out[S_HEX_LEN] = '\0';
}

/* audit.h's rule: SHA-256 of the line up to the `,"hash":` that ends it
 * (head), followed by "}". So the hashed bytes are exactly the record as
 * json-c wrote it before the hash was known. */
static s3s_result s_hash(struct s3s_cur head, uint8_t out[S_DIGEST_LEN])
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    S3S_ENSURE(md != NULL, S3S_ERR_NOMEM);
    unsigned int n = 0;
    bool ok = EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1 &&
              EVP_DigestUpdate(md, head.ptr, head.len) == 1 &&
              EVP_DigestUpdate(md, "}", 1) == 1 && EVP_DigestFinal_ex(md, out, &n) == 1 &&
              n == S_DIGEST_LEN;
    EVP_MD_CTX_free(md);
    S3S_ENSURE(ok, S3S_ERR_INTERNAL);
    return s3s_ok();
}

/* ------------------------------------------------------- building a record */

/* A string from the caller: bounded (no record can hold a longer one, and
 * the scan must not run on) and UTF-8. */
static s3s_result s_check_str(const char *s)
{
    size_t n = strnlen(s, S3S_AUDIT_MAX_RECORD);
    S3S_ENSURE(n < S3S_AUDIT_MAX_RECORD, S3S_ERR_TOO_BIG);
    /* json-c copies bytes it does not escape as they are: only valid UTF-8
     * keeps every record valid JSON for the log's readers. */
    S3S_ENSURE(s3s_keystore__utf8_valid(s3s_cur_from(s, n)), S3S_ERR_INVALID_ARG);
    return s3s_ok();
}

/* Adds key: val to obj, which takes val over; val NULL is json-c's answer
 * to an allocation that failed. A key already there keeps its place. */
static s3s_result s_put(struct json_object *obj, const char *key, struct json_object *val)
{
    S3S_ENSURE(val != NULL, S3S_ERR_NOMEM);
    if (json_object_object_add(obj, key, val) != 0) {
        json_object_put(val);
        S3S_BAIL(S3S_ERR_NOMEM);
    }
    return s3s_ok();
}

static s3s_result s_put_null(struct json_object *obj, const char *key)
{
    S3S_ENSURE(json_object_object_add(obj, key, NULL) == 0, S3S_ERR_NOMEM);
    return s3s_ok();
}

/* A string field; NULL is written as null. */
static s3s_result s_put_str(struct json_object *obj, const char *key, const char *s)
{
    if (!s) {
        return s_put_null(obj, key);
    }
    S3S_GUARD(s_check_str(s));
    return s_put(obj, key, json_object_new_string(s));
}

/* A pair of the encryption context: its key is checked like any string,
 * and neither may be NULL (a context maps strings to strings). */
static s3s_result s_put_pair(struct json_object *obj, const struct s3s_kms_context_pair *p)
{
    S3S_ENSURE(p->key != NULL && p->value != NULL, S3S_ERR_INVALID_ARG);
    S3S_GUARD(s_check_str(p->key));
    return s_put_str(obj, p->key, p->value);
}

/* The encryption context as a JSON object of its pairs, in the map's own
 * (sorted) order. */
static s3s_result s_context_new(const struct s3s_kms_context *c, struct json_object **out)
{
    S3S_ENSURE(c->n == 0 || c->pairs != NULL, S3S_ERR_INVALID_ARG);
    struct json_object *obj = json_object_new_object();
    S3S_ENSURE(obj != NULL, S3S_ERR_NOMEM);
    s3s_result r = s3s_ok();
    for (size_t i = 0; i < c->n && s3s_is_ok(r); i++) {
        r = s_put_pair(obj, &c->pairs[i]);
    }
    if (s3s_failed(r)) {
        json_object_put(obj);
        return r;
    }
    *out = obj;
    return s3s_ok();
}

static s3s_result s_put_context(struct json_object *obj, const struct s3s_kms_context *c)
{
    if (!c) {
        return s_put_null(obj, "encryptionContext");
    }
    struct json_object *ctx = NULL;
    S3S_GUARD(s_context_new(c, &ctx));
    return s_put(obj, "encryptionContext", ctx);
}

/* "2026-12-01T21:50:00.123Z"; time_ms 0 is now. */
static s3s_result s_format_time(int64_t time_ms, char out[S_TIME_BUF])
{
    if (time_ms == 0) {
        struct timespec ts;
        S3S_ENSURE(clock_gettime(CLOCK_REALTIME, &ts) == 0, S3S_ERR_INTERNAL);
        time_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    }
    S3S_ENSURE(time_ms > 0 && time_ms <= S_MAX_TIME_MS, S3S_ERR_INVALID_ARG);
    time_t secs = (time_t)(time_ms / 1000);
    struct tm tm;
    S3S_ENSURE(gmtime_r(&secs, &tm) != NULL, S3S_ERR_INVALID_ARG);
    char date[24];
    S3S_ENSURE(strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", &tm) == 19, S3S_ERR_INTERNAL);
    snprintf(out, S_TIME_BUF, "%s.%03dZ", date, (int)(time_ms % 1000));
    return s3s_ok();
}

/* The fields in audit.h's order; seq and prev are placeholders until the
 * file's last record is known, under the lock. */
static s3s_result s_fill(struct json_object *obj, const struct s3s_audit_record *rec,
                         const char *instance, const char *when)
{
    S3S_GUARD(s_put_str(obj, "time", when));
    if (instance) {
        S3S_GUARD(s_put_str(obj, "instance", instance));
    }
    S3S_GUARD(s_put_null(obj, "seq"));
    S3S_GUARD(s_put_str(obj, "operation", rec->operation));
    S3S_GUARD(s_put_str(obj, "result", rec->result));
    S3S_GUARD(s_put_str(obj, "principal", rec->principal));
    S3S_GUARD(s_put_str(obj, "accessKeyId", rec->access_key));
    S3S_GUARD(s_put_str(obj, "sourceIPAddress", rec->source));
    S3S_GUARD(s_put_str(obj, "requestId", rec->request_id));
    S3S_GUARD(s_put_str(obj, "keyArn", rec->key_arn));
    if (rec->key_version) {
        S3S_GUARD(s_put(obj, "keyVersion", json_object_new_int64(rec->key_version)));
    } else {
        S3S_GUARD(s_put_null(obj, "keyVersion"));
    }
    S3S_GUARD(s_put_str(obj, "bucket", rec->bucket));
    S3S_GUARD(s_put_str(obj, "object", rec->object));
    S3S_GUARD(s_put_context(obj, rec->context));
    if (rec->detail) {
        S3S_GUARD(s_put_str(obj, "detail", rec->detail));
    }
    return s_put_null(obj, "prev");
}

s3s_result s3s_audit__record_new(const struct s3s_audit_record *rec, const char *instance,
                                 struct json_object **out)
{
    char when[S_TIME_BUF];
    S3S_GUARD(s_format_time(rec->time_ms, when));
    struct json_object *obj = json_object_new_object();
    S3S_ENSURE(obj != NULL, S3S_ERR_NOMEM);
    s3s_result r = s_fill(obj, rec, instance, when);
    if (s3s_failed(r)) {
        json_object_put(obj);
        return r;
    }
    *out = obj;
    return s3s_ok();
}

/* Chains the record onto prev and appends its line, hash and newline
 * included, to out; *next is what the line adds to the chain. */
s3s_result s3s_audit__render(struct json_object *obj, const struct s3s_audit__link *prev,
                             struct s3s_buf *out, struct s3s_audit__link *next)
{
    /* json-c numbers are int64; a file with that many records is full. */
    S3S_ENSURE(prev->seq < (uint64_t)INT64_MAX, S3S_ERR_TOO_BIG);
    next->seq = prev->seq + 1;
    char hex[S_HEX_LEN + 1];
    s3s_audit__hex(prev->hash, hex);
    S3S_GUARD(s_put(obj, "seq", json_object_new_int64((int64_t)next->seq)));
    S3S_GUARD(s_put_str(obj, "prev", hex));

    size_t len = 0;
    const char *json = json_object_to_json_string_length(obj, S_JSON_FLAGS, &len);
    S3S_ENSURE(json != NULL, S3S_ERR_NOMEM);
    /* json-c writes an object as {...}: the hash goes in before the last
     * brace. Hex needs no escaping, so it is appended as text. */
    S3S_ENSURE(len >= 2 && json[len - 1] == '}', S3S_ERR_INTERNAL);
    struct s3s_cur head = s3s_cur_from(json, len - 1);
    S3S_ENSURE(head.len + S_HASH_TAIL_LEN + 1 <= S3S_AUDIT_MAX_RECORD, S3S_ERR_TOO_BIG);
    S3S_GUARD(s_hash(head, next->hash));
    s3s_audit__hex(next->hash, hex);
    S3S_GUARD(s3s_buf_append_cur(out, head));
    S3S_GUARD(s3s_buf_append_str(out, S_HASH_KEY));
    S3S_GUARD(s3s_buf_append(out, hex, S_HEX_LEN));
    return s3s_buf_append_str(out, "\"}\n");
}

/* ---------------------------------------------------------- checking a line */

/* The line as one JSON object and nothing else, or NULL. Strict, and UTF-8
 * checked, so a line json-c would only half read is no record. */
static struct json_object *s_parse_object(struct s3s_cur line)
{
    struct json_tokener *tok = json_tokener_new_ex(S_JSON_DEPTH);
    if (!tok) {
        return NULL;
    }
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    /* Lines are shorter than S3S_AUDIT_MAX_RECORD, so the length fits. */
    struct json_object *obj = json_tokener_parse_ex(tok, (const char *)line.ptr, (int)line.len);
    bool whole = json_tokener_get_error(tok) == json_tokener_success &&
                 json_tokener_get_parse_end(tok) == line.len;
    json_tokener_free(tok);
    if (!obj || !whole || !json_object_is_type(obj, json_type_object)) {
        json_object_put(obj);
        return NULL;
    }
    return obj;
}

/* The stored hash that ends the line must be the hash of what precedes it. */
static s3s_result s_check_hash(struct s3s_cur line, uint8_t hash[S_DIGEST_LEN], char *why,
                               size_t why_len)
{
    size_t head_len = line.len >= S_HASH_TAIL_LEN ? line.len - S_HASH_TAIL_LEN : 0;
    struct s3s_cur head = s3s_cur_from(line.ptr, head_len);
    const uint8_t *tail = head.ptr + head.len;
    if (line.len < S_HASH_TAIL_LEN || memcmp(tail, S_HASH_KEY, S_HASH_KEY_LEN) != 0 ||
        !s3s_hex_decode(s3s_cur_from(tail + S_HASH_KEY_LEN, S_HEX_LEN), hash, S_DIGEST_LEN) ||
        memcmp(tail + S_HASH_KEY_LEN + S_HEX_LEN, "\"}", 2) != 0) {
        s3s_keystore__why(why, why_len, "the record does not end with its \"hash\"");
        S3S_BAIL(S3S_ERR_AUDIT_BROKEN);
    }
    uint8_t actual[S_DIGEST_LEN];
    S3S_GUARD(s_hash(head, actual));
    if (CRYPTO_memcmp(actual, hash, S_DIGEST_LEN) != 0) {
        s3s_keystore__why(why, why_len, "its hash does not match its contents (altered)");
        S3S_BAIL(S3S_ERR_AUDIT_BROKEN);
    }
    return s3s_ok();
}

static s3s_result s_get_seq(struct json_object *obj, uint64_t *seq, char *why, size_t why_len)
{
    struct json_object *v = NULL;
    if (!json_object_object_get_ex(obj, "seq", &v) || !json_object_is_type(v, json_type_int) ||
        json_object_get_int64(v) < 1) {
        s3s_keystore__why(why, why_len, "no positive integer \"seq\"");
        S3S_BAIL(S3S_ERR_AUDIT_BROKEN);
    }
    *seq = (uint64_t)json_object_get_int64(v);
    return s3s_ok();
}

static s3s_result s_get_prev(struct json_object *obj, uint8_t prev[S_DIGEST_LEN], char *why,
                             size_t why_len)
{
    struct json_object *v = NULL;
    if (!json_object_object_get_ex(obj, "prev", &v) || !json_object_is_type(v, json_type_string) ||
        !s3s_hex_decode(s3s_cur_from(json_object_get_string(v),
                                     (size_t)json_object_get_string_len(v)),
                        prev, S_DIGEST_LEN)) {
        s3s_keystore__why(why, why_len, "no \"prev\" of 64 lower-case hex digits");
        S3S_BAIL(S3S_ERR_AUDIT_BROKEN);
    }
    return s3s_ok();
}

/* A record of a chain in the keystore names that chain's instance. */
static s3s_result s_check_instance(struct json_object *obj, const char *instance, char *why,
                                   size_t why_len)
{
    struct json_object *v = NULL;
    if (instance &&
        (!json_object_object_get_ex(obj, "instance", &v) ||
         !json_object_is_type(v, json_type_string) ||
         strcmp(json_object_get_string(v), instance) != 0)) {
        s3s_keystore__why(why, why_len, "its \"instance\" is not %s", instance);
        S3S_BAIL(S3S_ERR_AUDIT_BROKEN);
    }
    return s3s_ok();
}

s3s_result s3s_audit__line_parse(struct s3s_cur line, const char *instance,
                                 struct s3s_audit__link *link, uint8_t prev[S_DIGEST_LEN],
                                 char *why, size_t why_len)
{
    struct json_object *obj = s_parse_object(line);
    if (!obj) {
        s3s_keystore__why(why, why_len, "not a JSON object");
        S3S_BAIL(S3S_ERR_AUDIT_BROKEN);
    }
    s3s_result r = s_check_hash(line, link->hash, why, why_len);
    if (s3s_is_ok(r)) {
        r = s_get_seq(obj, &link->seq, why, why_len);
    }
    if (s3s_is_ok(r)) {
        r = s_get_prev(obj, prev, why, why_len);
    }
    if (s3s_is_ok(r)) {
        r = s_check_instance(obj, instance, why, why_len);
    }
    json_object_put(obj);
    return r;
}

/* ------------------------------------------------------------------ files */

static int s_flock(int fd, int op)
{
    int rc;
    do {
        rc = flock(fd, op);
    } while (rc != 0 && errno == EINTR);
    return rc;
}

/* Reads exactly n bytes at off; false (errno set) otherwise. */
static bool s_pread_all(int fd, uint8_t *p, size_t n, off_t off)
{
    while (n > 0) {
        ssize_t got = pread(fd, p, n, off);
        if (got < 0 && errno == EINTR) {
            continue;
        }
        if (got <= 0) {
            errno = got == 0 ? EIO : errno; /* the file shrank under the lock */
            return false;
        }
        p += got;
        n -= (size_t)got;
        off += got;
    }
    return true;
}

/* Writes all of line, going on after short writes; false (errno set) when
 * the kernel refuses the rest. */
static bool s_write_all(int fd, struct s3s_cur line)
{
    while (line.len > 0) {
        ssize_t put = write(fd, line.ptr, line.len);
        if (put < 0 && errno == EINTR) {
            continue;
        }
        if (put <= 0) {
            errno = put == 0 ? EIO : errno;
            return false;
        }
        line.ptr += put;
        line.len -= (size_t)put;
    }
    return true;
}

/* The last line of the buf_len bytes at the end of the file, without its
 * newline; whole: they are the whole file. */
static s3s_result s_last_line(const uint8_t *buf, size_t buf_len, bool whole, struct s3s_cur *line,
                              char *why, size_t why_len)
{
    if (buf[buf_len - 1] != '\n') {
        s3s_keystore__why(why, why_len, "the file ends inside a record (no newline)");
        S3S_BAIL(S3S_ERR_AUDIT_BROKEN);
    }
    const uint8_t *nl = buf_len > 1 ? memrchr(buf, '\n', buf_len - 1) : NULL;
    if (!nl && !whole) {
        s3s_keystore__why(why, why_len, "the last line is longer than %d bytes",
                          S3S_AUDIT_MAX_RECORD);
        S3S_BAIL(S3S_ERR_AUDIT_BROKEN);
    }
    const uint8_t *start = nl ? nl + 1 : buf;
    *line = s3s_cur_from(start, (size_t)(buf + buf_len - 1 - start));
    return s3s_ok();
}

/* Learns the record that ends the file, size bytes long, from its last line.
 * No line is longer than S3S_AUDIT_MAX_RECORD, so that many bytes and the
 * newline before them are all that is read. */
static s3s_result s_read_last(struct s_file *a, off_t size, struct s3s_audit__link *out)
{
    if (size == 0) {
        *out = (struct s3s_audit__link){0};
        return s3s_ok();
    }
    size_t n = size > S3S_AUDIT_MAX_RECORD ? S3S_AUDIT_MAX_RECORD + 1 : (size_t)size;
    uint8_t *buf = s3s_malloc(n);
    S3S_ENSURE(buf != NULL, S3S_ERR_NOMEM);
    s3s_result r = s3s_err(S3S_ERR_KMS_INTERNAL);
    char why[128] = "";
    if (!s_pread_all(a->fd, buf, n, size - (off_t)n)) {
        S3S_LOGE("audit", "%s: cannot read the last record back: %s; nothing recorded", a->path,
                 strerror(errno));
        goto cleanup;
    }
    struct s3s_cur line;
    uint8_t prev[S_DIGEST_LEN];
    r = s_last_line(buf, n, (off_t)n == size, &line, why, sizeof(why));
    if (s3s_is_ok(r)) {
        r = s3s_audit__line_parse(line, NULL, out, prev, why, sizeof(why));
    }
    if (r.code == S3S_ERR_AUDIT_BROKEN) {
        S3S_LOGE("audit", "%s: the last line is not an intact record (%s): nothing is chained "
                          "onto it; check the file with `s3seal audit verify`",
                 a->path, why);
    }
cleanup:
    s3s_free(&buf);
    return r;
}

/* Takes the file back to size after a failed append. The flock keeps the
 * other writers out, so the bytes past size are this append's alone, and
 * removing them leaves the chain as it was for the records that follow. */
static void s_undo(struct s_file *a, off_t size)
{
    int rc;
    do {
        rc = ftruncate(a->fd, size);
    } while (rc != 0 && errno == EINTR);
    if (rc != 0) {
        /* Re-read next time: a torn line stops every append (fail closed)
         * instead of being chained onto. */
        a->known_size = -1;
        S3S_LOGE("audit", "%s: cannot remove a partly written record: %s", a->path,
                 strerror(errno));
    }
}

/* Puts the line after the file's size bytes and flushes it if asked; on any
 * failure the file is taken back to size. */
static s3s_result s_write_line(struct s_file *a, off_t size, struct s3s_cur line)
{
    const char *step = NULL;
    if (!s_write_all(a->fd, line)) {
        step = "write";
    } else if (a->fsync && fdatasync(a->fd) != 0) {
        /* Whether the record reached the disk is unknown; the caller will
         * not use the key, so the log must not keep a record saying it did. */
        step = "flush";
    }
    if (!step) {
        return s3s_ok();
    }
    S3S_LOGE("audit", "%s: cannot %s a record: %s; nothing recorded", a->path, step,
             strerror(errno));
    s_undo(a, size);
    S3S_BAIL(S3S_ERR_KMS_INTERNAL);
}

/* Under the mutex and the flock. */
static s3s_result s_append_flocked(struct s_file *a, struct json_object *obj)
{
    struct stat st;
    if (fstat(a->fd, &st) != 0) {
        S3S_LOGE("audit", "%s: cannot stat: %s; nothing recorded", a->path, strerror(errno));
        S3S_BAIL(S3S_ERR_KMS_INTERNAL);
    }
    if (st.st_size != a->known_size) {
        struct s3s_audit__link last;
        S3S_GUARD(s_read_last(a, st.st_size, &last));
        a->last = last;
        a->known_size = st.st_size;
    }
    struct s3s_buf line;
    S3S_GUARD(s3s_buf_init(&line, 1024, S3S_AUDIT_MAX_RECORD));
    struct s3s_audit__link next;
    s3s_result r = s3s_audit__render(obj, &a->last, &line, &next);
    if (s3s_is_ok(r)) {
        r = s_write_line(a, st.st_size, s3s_buf_cur(&line));
    }
    if (s3s_is_ok(r)) {
        a->known_size = st.st_size + (off_t)line.len;
        a->last = next;
    }
    s3s_buf_clean_up(&line);
    return r;
}

/* Under the mutex: the flock makes "learn the last record, write the next"
 * one step for every process sharing the file. */
static s3s_result s_file_append(struct s3s_audit *base, struct json_object *obj)
{
    struct s_file *a = (struct s_file *)base;
    if (s_flock(a->fd, LOCK_EX) != 0) {
        S3S_LOGE("audit", "%s: cannot lock: %s; nothing recorded", a->path, strerror(errno));
        S3S_BAIL(S3S_ERR_KMS_INTERNAL);
    }
    s3s_result r = s_append_flocked(a, obj);
    if (s_flock(a->fd, LOCK_UN) != 0) {
        /* The record is complete or undone by now, so r stands; the lock
         * goes with the descriptor at close at the latest. */
        S3S_LOGE("audit", "%s: cannot unlock: %s", a->path, strerror(errno));
    }
    return r;
}

/* A new file's name is durable only once its directory is flushed: without
 * this, a crash could lose a freshly created log whole, flushed records and
 * all. */
static s3s_result s_sync_dir(const char *path, char *why, size_t why_len)
{
    char *copy = s3s_strdup(path); /* dirname() may write to its argument */
    S3S_ENSURE(copy != NULL, S3S_ERR_NOMEM);
    int dfd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    bool ok = dfd >= 0 && fsync(dfd) == 0;
    if (!ok) {
        s3s_keystore__why(why, why_len, "audit log %s: cannot flush its directory: %s", path,
                          strerror(errno));
    }
    if (dfd >= 0) {
        close(dfd);
    }
    s3s_free(&copy);
    S3S_ENSURE(ok, S3S_ERR_IO);
    return s3s_ok();
}

static void s_file_close(struct s3s_audit *base)
{
    struct s_file *a = (struct s_file *)base;
    if (a->fd >= 0) {
        close(a->fd);
    }
    s3s_audit__clean_up(&a->base);
    s3s_free(&a->path);
    s3s_free(&a);
}

static const struct s3s_audit__ops s_file_ops = {
    .append = s_file_append,
    .close = s_file_close,
};

/* ------------------------------------------------------------------- API */

s3s_result s3s_audit__init(struct s3s_audit *a, const struct s3s_audit__ops *ops,
                           const char *instance)
{
    a->ops = ops;
    a->instance = instance;
    S3S_ENSURE(pthread_mutex_init(&a->mu, NULL) == 0, S3S_ERR_NOMEM);
    return s3s_ok();
}

void s3s_audit__clean_up(struct s3s_audit *a)
{
    if (a->ops) {
        pthread_mutex_destroy(&a->mu);
        a->ops = NULL;
    }
}

s3s_result s3s_audit_open(const char *path, bool fsync, struct s3s_audit **out, char *why,
                          size_t why_len)
{
    S3S_ENSURE_REF(path);
    S3S_ENSURE_REF(out);
    *out = NULL;
    struct s_file *a = s3s_calloc(1, sizeof(*a));
    S3S_ENSURE(a != NULL, S3S_ERR_NOMEM);
    a->fd = -1;
    a->fsync = fsync;
    a->known_size = -1;
    s3s_result r = s3s_err(S3S_ERR_IO);
    a->path = s3s_strdup(path);
    if (!a->path) {
        r = s3s_err(S3S_ERR_NOMEM);
        goto cleanup;
    }
    a->fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    struct stat st;
    if (a->fd < 0 || fstat(a->fd, &st) != 0) {
        s3s_keystore__why(why, why_len, "audit log %s: %s", path, strerror(errno));
        goto cleanup;
    }
    if (!S_ISREG(st.st_mode)) {
        s3s_keystore__why(why, why_len, "audit log %s: not a regular file", path);
        goto cleanup;
    }
    if (fsync) {
        r = s_sync_dir(path, why, why_len);
        if (s3s_failed(r)) {
            goto cleanup;
        }
    }
    r = s3s_audit__init(&a->base, &s_file_ops, NULL);
    if (s3s_failed(r)) {
        s3s_keystore__why(why, why_len, "audit log %s: cannot create its lock", path);
        goto cleanup;
    }
    *out = &a->base;
    return s3s_ok();

cleanup:
    s_file_close(&a->base);
    return r;
}

void s3s_audit_close(struct s3s_audit *a)
{
    if (a) {
        a->ops->close(a);
    }
}

s3s_result s3s_audit_append(struct s3s_audit *a, const struct s3s_audit_record *rec)
{
    S3S_ENSURE_REF(a);
    S3S_ENSURE_REF(rec);
    struct json_object *obj = NULL;
    S3S_GUARD(s3s_audit__record_new(rec, a->instance, &obj));
    pthread_mutex_lock(&a->mu);
    s3s_result r = a->ops->append(a, obj);
    pthread_mutex_unlock(&a->mu);
    json_object_put(obj);
    return r;
}

/* --------------------------------------------------------------- verify */

/* Reads lines from a file, up to the size it had when verification began. */
struct s_reader {
    FILE *f;
    uint64_t left;
    uint8_t *buf; /* S3S_AUDIT_MAX_RECORD bytes */
};

enum s_next { S_NEXT_LINE, S_NEXT_END, S_NEXT_TOO_LONG, S_NEXT_NO_NEWLINE, S_NEXT_ERROR };

/* The next line, without its newline, in *line (valid until the next call).
 * A line never grows past S3S_AUDIT_MAX_RECORD - 1 bytes and its newline. */
static enum s_next s_next_line(struct s_reader *rd, struct s3s_cur *line)
{
    size_t n = 0;
    int c;
    /* The FILE is this call's alone, so stdio's per-call locking is waste. */
    while (rd->left > 0 && (c = getc_unlocked(rd->f)) != EOF) {
        rd->left--;
        if (c == '\n') {
            *line = s3s_cur_from(rd->buf, n);
            return S_NEXT_LINE;
        }
        if (n == S3S_AUDIT_MAX_RECORD - 1) {
            return S_NEXT_TOO_LONG;
        }
        rd->buf[n++] = (uint8_t)c;
    }
    if (ferror(rd->f)) {
        return S_NEXT_ERROR;
    }
    return n == 0 ? S_NEXT_END : S_NEXT_NO_NEWLINE;
}

/* Checks a line against the one before it (*prev, updated). */
s3s_result s3s_audit__chain_check(struct s3s_cur line, const char *instance,
                                  struct s3s_audit__link *prev, char *why, size_t why_len)
{
    struct s3s_audit__link link;
    uint8_t stated_prev[S_DIGEST_LEN];
    S3S_GUARD(s3s_audit__line_parse(line, instance, &link, stated_prev, why, why_len));
    if (link.seq != prev->seq + 1) {
        s3s_keystore__why(why, why_len, "seq is %llu, expected %llu", (unsigned long long)link.seq,
                          (unsigned long long)(prev->seq + 1));
        S3S_BAIL(S3S_ERR_AUDIT_BROKEN);
    }
    if (CRYPTO_memcmp(stated_prev, prev->hash, S_DIGEST_LEN) != 0) {
        s3s_keystore__why(why, why_len, prev->seq == 0
                                            ? "prev of the first record is not 64 zeros"
                                            : "prev is not the hash of the line before");
        S3S_BAIL(S3S_ERR_AUDIT_BROKEN);
    }
    *prev = link;
    return s3s_ok();
}

static s3s_result s_verify_lines(struct s_reader *rd, uint64_t *records, uint64_t *bad_line,
                                 char *why, size_t why_len)
{
    struct s3s_audit__link prev = {0};
    for (uint64_t n = 1;; n++) {
        struct s3s_cur line = {0};
        s3s_result r = s3s_ok();
        switch (s_next_line(rd, &line)) {
        case S_NEXT_END:
            return s3s_ok();
        case S_NEXT_ERROR:
            s3s_keystore__why(why, why_len, "read error at line %llu", (unsigned long long)n);
            S3S_BAIL(S3S_ERR_IO);
        case S_NEXT_TOO_LONG:
            s3s_keystore__why(why, why_len, "the line is longer than %d bytes",
                              S3S_AUDIT_MAX_RECORD);
            r = s3s_err(S3S_ERR_AUDIT_BROKEN);
            break;
        case S_NEXT_NO_NEWLINE:
            s3s_keystore__why(why, why_len, "the last line has no newline (a record cut short)");
            r = s3s_err(S3S_ERR_AUDIT_BROKEN);
            break;
        case S_NEXT_LINE:
            r = s3s_audit__chain_check(line, NULL, &prev, why, why_len);
            break;
        default:
            S3S_BAIL(S3S_ERR_INTERNAL);
        }
        if (r.code == S3S_ERR_AUDIT_BROKEN) {
            *bad_line = n;
        }
        S3S_GUARD(r);
        (*records)++;
    }
}

/* The file's size, read under a shared flock: writers hold an exclusive one
 * from the first byte of a line to its newline (or to undoing it), so the
 * size seen is never in the middle of an append. Where the file system
 * cannot lock, the size is read without: a read-only check may go on. */
static uint64_t s_settled_size(int fd, const struct stat *st)
{
    if (s_flock(fd, LOCK_SH) != 0) {
        return (uint64_t)st->st_size;
    }
    struct stat now;
    uint64_t size = fstat(fd, &now) == 0 ? (uint64_t)now.st_size : (uint64_t)st->st_size;
    /* Nothing was changed under the lock, so a failed unlock harms nothing
     * and the descriptor's close releases it anyway. */
    (void)s_flock(fd, LOCK_UN);
    return size;
}

s3s_result s3s_audit_verify(const char *path, uint64_t *records, uint64_t *bad_line, char *why,
                            size_t why_len)
{
    S3S_ENSURE_REF(path);
    S3S_ENSURE_REF(records);
    S3S_ENSURE_REF(bad_line);
    *records = 0;
    *bad_line = 0;
    s3s_result r = s3s_err(S3S_ERR_IO);
    struct s_reader rd = {0};
    rd.f = fopen(path, "re");
    struct stat st;
    if (!rd.f || fstat(fileno(rd.f), &st) != 0) {
        s3s_keystore__why(why, why_len, "%s: %s", path, strerror(errno));
        goto cleanup;
    }
    if (!S_ISREG(st.st_mode)) {
        s3s_keystore__why(why, why_len, "%s: not a regular file", path);
        goto cleanup;
    }
    rd.left = s_settled_size(fileno(rd.f), &st);
    rd.buf = s3s_malloc(S3S_AUDIT_MAX_RECORD);
    if (!rd.buf) {
        r = s3s_err(S3S_ERR_NOMEM);
        goto cleanup;
    }
    r = s_verify_lines(&rd, records, bad_line, why, why_len);

cleanup:
    s3s_free(&rd.buf);
    if (rd.f) {
        fclose(rd.f);
    }
    return r;
}
