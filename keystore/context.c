/*
 * context.c - encryption contexts: the string-to-string maps KMS binds to a
 * data key. Clients send them as JSON (base64 in the
 * x-amz-server-side-encryption-context header); s3seal keeps them sorted by
 * key, so a lookup is a binary search, and writes them back in one
 * canonical JSON form, so that equal maps give equal bytes wherever they are
 * stored, returned or compared.
 */
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#include "keystore/policy.h"
#include "keystore/policy_private.h"

/* A context is one flat object: its values may not nest. */
#define S_MAX_NESTING 1

void s3s_kms_context_init(struct s3s_kms_context *c) { *c = (struct s3s_kms_context){0}; }

static void s_pair_clean_up(struct s3s_kms_context_pair *pair)
{
    s3s_free(&pair->key);
    s3s_free(&pair->value);
}

void s3s_kms_context_clean_up(struct s3s_kms_context *c)
{
    if (!c) {
        return;
    }
    for (size_t i = 0; i < c->n; i++) {
        s_pair_clean_up(&c->pairs[i]);
    }
    s3s_free(&c->pairs);
    c->n = 0;
}

/* Fills an empty pair with copies of key and value. */
static s3s_result s_pair_fill(struct s3s_kms_context_pair *pair, const char *key, size_t key_len,
                              const char *value, size_t value_len)
{
    pair->key = s3s_strndup(key, key_len);
    pair->value = s3s_strndup(value, value_len);
    if (!pair->key || !pair->value) {
        s_pair_clean_up(pair);
        S3S_BAIL(S3S_ERR_NOMEM);
    }
    return s3s_ok();
}

/* Binary search: true if key is present, and *at is its index or the index
 * it would be inserted at. */
static bool s_find(const struct s3s_kms_context *c, const char *key, size_t *at)
{
    size_t lo = 0, hi = c->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int cmp = strcmp(c->pairs[mid].key, key);
        if (cmp == 0) {
            *at = mid;
            return true;
        }
        if (cmp < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    *at = lo;
    return false;
}

const char *s3s_kms_context_get(const struct s3s_kms_context *c, const char *key)
{
    size_t at;
    if (!c || !key || !s_find(c, key, &at)) {
        return NULL;
    }
    return c->pairs[at].value;
}

static s3s_result s_replace_value(struct s3s_kms_context_pair *pair, const char *value)
{
    char *copy = s3s_strdup(value);
    S3S_ENSURE(copy != NULL, S3S_ERR_NOMEM);
    s3s_free(&pair->value);
    pair->value = copy;
    return s3s_ok();
}

static s3s_result s_insert(struct s3s_kms_context *c, size_t at, const char *key,
                           const char *value)
{
    struct s3s_kms_context_pair pair = {0};
    S3S_GUARD(s_pair_fill(&pair, key, strlen(key), value, strlen(value)));
    struct s3s_kms_context_pair *grown = s3s_realloc(c->pairs, (c->n + 1) * sizeof(*grown));
    if (!grown) {
        s_pair_clean_up(&pair);
        S3S_BAIL(S3S_ERR_NOMEM);
    }
    memmove(&grown[at + 1], &grown[at], (c->n - at) * sizeof(*grown));
    grown[at] = pair;
    c->pairs = grown;
    c->n++;
    return s3s_ok();
}

s3s_result s3s_kms_context_set(struct s3s_kms_context *c, const char *key, const char *value)
{
    S3S_ENSURE_REF(c);
    S3S_ENSURE_REF(key);
    S3S_ENSURE_REF(value);
    /* The map must stay writable as valid JSON that parses back to itself. */
    S3S_ENSURE(key[0] != '\0', S3S_ERR_INVALID_ARG);
    S3S_ENSURE(s3s_keystore__utf8_valid(s3s_cur_from_str(key)), S3S_ERR_INVALID_ARG);
    S3S_ENSURE(s3s_keystore__utf8_valid(s3s_cur_from_str(value)), S3S_ERR_INVALID_ARG);
    size_t at;
    if (s_find(c, key, &at)) {
        return s_replace_value(&c->pairs[at], value);
    }
    return s_insert(c, at, key, value);
}

/* A deep copy of the pairs of from, in a new array (NULL when empty). */
static s3s_result s_pairs_dup(const struct s3s_kms_context *from, struct s3s_kms_context *out)
{
    s3s_kms_context_init(out);
    if (from->n == 0) {
        return s3s_ok();
    }
    out->pairs = s3s_calloc(from->n, sizeof(*out->pairs));
    S3S_ENSURE(out->pairs != NULL, S3S_ERR_NOMEM);
    out->n = from->n; /* pairs not yet filled are zero, which clean_up skips */
    for (size_t i = 0; i < from->n; i++) {
        const struct s3s_kms_context_pair *p = &from->pairs[i];
        s3s_result r = s_pair_fill(&out->pairs[i], p->key, strlen(p->key), p->value,
                                   strlen(p->value));
        if (s3s_failed(r)) {
            s3s_kms_context_clean_up(out);
            return r;
        }
    }
    return s3s_ok();
}

bool s3s_kms_context_equal(const struct s3s_kms_context *a, const struct s3s_kms_context *b)
{
    if (a->n != b->n) {
        return false;
    }
    for (size_t i = 0; i < a->n; i++) {
        if (strcmp(a->pairs[i].key, b->pairs[i].key) != 0 ||
            strcmp(a->pairs[i].value, b->pairs[i].value) != 0) {
            return false;
        }
    }
    return true;
}

s3s_result s3s_kms_context_copy(const struct s3s_kms_context *from, struct s3s_kms_context *to)
{
    S3S_ENSURE_REF(from);
    S3S_ENSURE_REF(to);
    if (from == to) {
        return s3s_ok();
    }
    struct s3s_kms_context copy;
    S3S_GUARD(s_pairs_dup(from, &copy));
    s3s_kms_context_clean_up(to);
    *to = copy;
    return s3s_ok();
}

/* --------------------------------------------------------------- parsing */

static int s_pair_cmp(const void *a, const void *b)
{
    const struct s3s_kms_context_pair *pa = a, *pb = b;
    return strcmp(pa->key, pb->key);
}

/* The pairs of a parsed object, validated and sorted, in a new context. */
static s3s_result s_from_object(struct json_object *obj, struct s3s_kms_context *out)
{
    s3s_kms_context_init(out);
    size_t n = (size_t)json_object_object_length(obj);
    if (n == 0) {
        return s3s_ok();
    }
    out->pairs = s3s_calloc(n, sizeof(*out->pairs));
    S3S_ENSURE(out->pairs != NULL, S3S_ERR_NOMEM);
    out->n = n; /* pairs not yet filled are zero, which clean_up skips */
    s3s_result r = s3s_err(S3S_ERR_KMS_INVALID_CONTEXT);
    size_t i = 0;
    struct json_object_iter it;
    json_object_object_foreachC(obj, it)
    {
        if (it.key[0] == '\0' || !json_object_is_type(it.val, json_type_string)) {
            r = s3s_err(S3S_ERR_KMS_INVALID_CONTEXT);
            goto cleanup;
        }
        /* Neither holds a NUL: the strict parser refused \u0000. */
        r = s_pair_fill(&out->pairs[i++], it.key, strlen(it.key), json_object_get_string(it.val),
                        (size_t)json_object_get_string_len(it.val));
        if (s3s_failed(r)) {
            goto cleanup;
        }
    }
    /* Keys are unique (the parser refused duplicates), so the order is total. */
    qsort(out->pairs, out->n, sizeof(*out->pairs), s_pair_cmp);
    r = s3s_ok();
cleanup:
    if (s3s_failed(r)) {
        s3s_kms_context_clean_up(out);
    }
    return r;
}

/* Moves the pairs of add (consumed) into c: one merge of two sorted arrays,
 * add's value winning for a key in both. Nothing changes if it fails. */
static s3s_result s_merge(struct s3s_kms_context *c, struct s3s_kms_context *add)
{
    if (c->n == 0) {
        s3s_kms_context_clean_up(c);
        *c = *add;
        s3s_kms_context_init(add);
        return s3s_ok();
    }
    struct s3s_kms_context_pair *m = s3s_calloc(c->n + add->n, sizeof(*m));
    S3S_ENSURE(m != NULL, S3S_ERR_NOMEM);
    size_t i = 0, j = 0, k = 0;
    while (i < c->n || j < add->n) {
        int cmp = i == c->n ? 1 : j == add->n ? -1 : strcmp(c->pairs[i].key, add->pairs[j].key);
        if (cmp < 0) {
            m[k++] = c->pairs[i++];
            continue;
        }
        if (cmp == 0) {
            s_pair_clean_up(&c->pairs[i++]);
        }
        m[k++] = add->pairs[j++];
    }
    s3s_free(&c->pairs);
    s3s_free(&add->pairs);
    add->n = 0;
    c->pairs = m;
    c->n = k;
    return s3s_ok();
}

s3s_result s3s_kms_context_parse_json(struct s3s_cur json, struct s3s_kms_context *c)
{
    S3S_ENSURE_REF(c);
    S3S_ENSURE(json.len <= S3S_KMS_CONTEXT_MAX_JSON, S3S_ERR_KMS_INVALID_CONTEXT);
    struct json_object *root = NULL;
    const char *why = NULL;
    s3s_result r = s3s_keystore__json_parse(json, S_MAX_NESTING, &root, &why);
    if (r.code == S3S_ERR_NOMEM) {
        return r;
    }
    S3S_ENSURE(s3s_is_ok(r), S3S_ERR_KMS_INVALID_CONTEXT);
    struct s3s_kms_context parsed = {0};
    r = s3s_err(S3S_ERR_KMS_INVALID_CONTEXT);
    if (json_object_is_type(root, json_type_object)) {
        r = s_from_object(root, &parsed);
    }
    json_object_put(root);
    if (s3s_is_ok(r)) {
        r = s_merge(c, &parsed);
    }
    s3s_kms_context_clean_up(&parsed);
    return r;
}

s3s_result s3s_kms_context_parse_b64(struct s3s_cur b64, struct s3s_kms_context *c)
{
    S3S_ENSURE_REF(c);
    /* Refuse before decoding what could not decode to an acceptable size;
     * the decoder needs room for whole groups of 3 bytes, padding included,
     * and parse_json enforces the exact limit. */
    const size_t max_b64 = (S3S_KMS_CONTEXT_MAX_JSON + 2) / 3 * 4;
    S3S_ENSURE(b64.len <= max_b64, S3S_ERR_KMS_INVALID_CONTEXT);
    struct s3s_buf json;
    S3S_GUARD(s3s_buf_init(&json, b64.len / 4 * 3, max_b64 / 4 * 3));
    s3s_result r = s3s_base64_decode(b64, &json);
    if (s3s_is_ok(r)) {
        r = s3s_kms_context_parse_json(s3s_buf_cur(&json), c);
    } else {
        r = s3s_err(S3S_ERR_KMS_INVALID_CONTEXT);
    }
    s3s_buf_clean_up(&json);
    return r;
}

/* --------------------------------------------------------------- writing */

/* The escape of a byte the canonical form escapes, or NULL. The five
 * control characters JSON has short escapes for take them, the others
 * \u00xx, as RFC 8785 does: no character then takes more bytes than any
 * spelling a client could send, so the canonical form of an accepted context
 * is never longer than its text and always parses back within the limit. */
static const char *s_short_escape(uint8_t ch)
{
    switch (ch) {
    case '"':
        return "\\\"";
    case '\\':
        return "\\\\";
    case '\b':
        return "\\b";
    case '\f':
        return "\\f";
    case '\n':
        return "\\n";
    case '\r':
        return "\\r";
    case '\t':
        return "\\t";
    default:
        return NULL;
    }
}

/* A JSON string with the canonical form's minimal escaping. */
static s3s_result s_append_string(struct s3s_buf *out, const char *s)
{
    S3S_GUARD(s3s_buf_append_byte(out, '"'));
    const char *run = s; /* the bytes not yet written, copied in one piece */
    for (const char *p = s; *p != '\0'; p++) {
        uint8_t ch = (uint8_t)*p;
        if (ch >= 0x20 && ch != '"' && ch != '\\') {
            continue;
        }
        S3S_GUARD(s3s_buf_append(out, run, (size_t)(p - run)));
        const char *esc = s_short_escape(ch);
        if (esc) {
            S3S_GUARD(s3s_buf_append_str(out, esc));
        } else {
            S3S_GUARD(s3s_buf_appendf(out, "\\u%04x", ch));
        }
        run = p + 1;
    }
    S3S_GUARD(s3s_buf_append_str(out, run));
    return s3s_buf_append_byte(out, '"');
}

static s3s_result s_append_object(const struct s3s_kms_context *c, struct s3s_buf *out)
{
    S3S_GUARD(s3s_buf_append_byte(out, '{'));
    for (size_t i = 0; i < c->n; i++) {
        if (i > 0) {
            S3S_GUARD(s3s_buf_append_byte(out, ','));
        }
        S3S_GUARD(s_append_string(out, c->pairs[i].key));
        S3S_GUARD(s3s_buf_append_byte(out, ':'));
        S3S_GUARD(s_append_string(out, c->pairs[i].value));
    }
    return s3s_buf_append_byte(out, '}');
}

s3s_result s3s_kms_context_json(const struct s3s_kms_context *c, struct s3s_buf *out)
{
    S3S_ENSURE_REF(c);
    S3S_ENSURE_REF(out);
    size_t mark = out->len;
    s3s_result r = s_append_object(c, out);
    if (s3s_failed(r)) {
        out->len = mark;
    }
    return r;
}

s3s_result s3s_kms_context_b64(const struct s3s_kms_context *c, struct s3s_buf *out)
{
    S3S_ENSURE_REF(c);
    S3S_ENSURE_REF(out);
    /* The JSON is shorter than its base64, so out's maximum bounds it too. */
    struct s3s_buf json;
    S3S_GUARD(s3s_buf_init(&json, 0, out->max));
    s3s_result r = s3s_kms_context_json(c, &json);
    if (s3s_is_ok(r)) {
        r = s3s_base64_encode(json.ptr, json.len, out);
    }
    s3s_buf_clean_up(&json);
    return r;
}
