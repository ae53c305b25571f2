/*
 * json_strict.c - the one JSON entry point of key policies and encryption
 * contexts. Both are security decisions made on text a client or an
 * administrator wrote, so the text must mean one thing only: json-c parses
 * it, and the checks here close the gaps json-c's strict mode leaves (see
 * policy_private.h).
 */
#include <json-c/json.h>
#include <limits.h>
#include <string.h>

#include "keystore/policy_private.h"

/* The length of the UTF-8 sequence that starts with lead, the payload bits
 * of lead and the smallest code point that needs that length; 0 for a byte
 * that cannot start a sequence. */
static size_t s_utf8_lead(uint8_t lead, uint32_t *bits, uint32_t *min)
{
    if ((lead & 0xe0) == 0xc0) {
        *bits = lead & 0x1fu;
        *min = 0x80;
        return 2;
    }
    if ((lead & 0xf0) == 0xe0) {
        *bits = lead & 0x0fu;
        *min = 0x800;
        return 3;
    }
    if ((lead & 0xf8) == 0xf0) {
        *bits = lead & 0x07u;
        *min = 0x10000;
        return 4;
    }
    return 0;
}

bool s3s_keystore__utf8_valid(struct s3s_cur s)
{
    size_t i = 0;
    while (i < s.len) {
        if (s.ptr[i] < 0x80) {
            i++;
            continue;
        }
        uint32_t cp = 0, min = 0;
        size_t n = s_utf8_lead(s.ptr[i], &cp, &min);
        if (n == 0 || n > s.len - i) {
            return false;
        }
        for (size_t k = 1; k < n; k++) {
            if ((s.ptr[i + k] & 0xc0) != 0x80) {
                return false;
            }
            cp = cp << 6 | (s.ptr[i + k] & 0x3fu);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
            return false;
        }
        i += n;
    }
    return true;
}

/* The code unit of the escape "\uXXXX" at text[i], if there is one. */
static bool s_escape_u(struct s3s_cur text, size_t i, uint32_t *unit)
{
    if (i > text.len || text.len - i < 6 || text.ptr[i] != '\\' || text.ptr[i + 1] != 'u') {
        return false;
    }
    uint32_t u = 0;
    for (size_t k = 2; k < 6; k++) {
        uint8_t h = text.ptr[i + k];
        uint32_t d = h >= '0' && h <= '9'   ? (uint32_t)(h - '0')
                     : h >= 'a' && h <= 'f' ? (uint32_t)(h - 'a' + 10)
                     : h >= 'A' && h <= 'F' ? (uint32_t)(h - 'A' + 10)
                                            : 16;
        if (d == 16) {
            return false;
        }
        u = u << 4 | d;
    }
    *unit = u;
    return true;
}

/* Counts the string tokens (object keys and string values) of a text the
 * strict tokener accepted, where a '"' outside a string can only open one.
 * On the way it rejects what json-c lets through inside strings: raw control
 * characters (RFC 8259 section 7), the escape \u0000, and UTF-16 surrogate
 * escapes that are not a high one followed by a low one (json-c would make
 * them a replacement character, or bytes that are not UTF-8). */
static bool s_count_strings(struct s3s_cur text, size_t *count, const char **why)
{
    bool in_string = false;
    size_t n = 0;
    for (size_t i = 0; i < text.len; i++) {
        uint8_t c = text.ptr[i];
        if (!in_string) {
            if (c == '"') {
                in_string = true;
                n++;
            }
            continue;
        }
        if (c < 0x20) {
            *why = "control character inside a string";
            return false;
        }
        if (c == '"') {
            in_string = false;
        } else if (c == '\\') {
            uint32_t u = 0, low = 0;
            if (!s_escape_u(text, i, &u)) {
                i++; /* the escaped character, which may be a '"' */
                continue;
            }
            if (u == 0) {
                *why = "\\u0000 inside a string";
                return false;
            }
            if (u >= 0xd800 && u <= 0xdfff) {
                if (u >= 0xdc00 || !s_escape_u(text, i + 6, &low) || low < 0xdc00 ||
                    low > 0xdfff) {
                    *why = "unpaired UTF-16 surrogate escape inside a string";
                    return false;
                }
                i += 6; /* the pair's high half */
            }
            i += 5;
        }
    }
    *count = n;
    return true;
}

/* Counts the object keys and string values of a tree. Recursion is bounded
 * by the tokener's nesting limit. */
static size_t s_tree_strings(struct json_object *o)
{
    size_t n = 0;
    switch (json_object_get_type(o)) {
    case json_type_string:
        return 1;
    case json_type_object: {
        struct json_object_iter it;
        json_object_object_foreachC(o, it)
        {
            n += 1 + s_tree_strings(it.val);
        }
        return n;
    }
    case json_type_array:
        for (size_t i = 0; i < json_object_array_length(o); i++) {
            n += s_tree_strings(json_object_array_get_idx(o, i));
        }
        return n;
    default:
        return 0;
    }
}

/* json-c's verdict on the whole text: the tree, or a reason. */
static s3s_result s_tokenize(struct s3s_cur text, int max_nesting, struct json_object **out,
                             const char **why)
{
    struct json_tokener *tok = json_tokener_new_ex(max_nesting + 1);
    if (!tok) {
        *why = "out of memory";
        S3S_BAIL(S3S_ERR_NOMEM);
    }
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
    struct json_object *root = json_tokener_parse_ex(tok, (const char *)text.ptr, (int)text.len);
    enum json_tokener_error err = json_tokener_get_error(tok);
    size_t end = json_tokener_get_parse_end(tok);
    json_tokener_free(tok);
    if (!root) {
        /* "continue" is json-c's word for input that stopped mid-value. */
        *why = err == json_tokener_continue ? "unexpected end of input"
                                            : json_tokener_error_desc(err);
        S3S_BAIL(S3S_ERR_INVALID_ARG);
    }
    /* The strict tokener refuses trailing characters, but stops quietly at
     * a NUL byte. */
    if (end != text.len) {
        json_object_put(root);
        *why = "unexpected data after the JSON value";
        S3S_BAIL(S3S_ERR_INVALID_ARG);
    }
    *out = root;
    return s3s_ok();
}

s3s_result s3s_keystore__json_parse(struct s3s_cur text, int max_nesting,
                                    struct json_object **out, const char **why)
{
    S3S_ENSURE_REF(out);
    S3S_ENSURE_REF(why);
    *out = NULL;
    if (text.len == 0) {
        *why = "empty input";
        S3S_BAIL(S3S_ERR_INVALID_ARG);
    }
    /* json-c takes int lengths and depths. */
    if (text.len > INT_MAX || max_nesting <= 0 || max_nesting >= INT_MAX) {
        *why = "input too large";
        S3S_BAIL(S3S_ERR_INVALID_ARG);
    }
    if (!s3s_keystore__utf8_valid(text)) {
        *why = "not valid UTF-8";
        S3S_BAIL(S3S_ERR_INVALID_ARG);
    }
    struct json_object *root = NULL;
    S3S_GUARD(s_tokenize(text, max_nesting, &root, why));
    size_t in_text = 0;
    if (!s_count_strings(text, &in_text, why)) {
        json_object_put(root);
        S3S_BAIL(S3S_ERR_INVALID_ARG);
    }
    /* Every string token of the text is a key or a string value of the
     * tree, unless json-c dropped a duplicate key (and with it its value). */
    if (s_tree_strings(root) != in_text) {
        json_object_put(root);
        *why = "duplicate key in an object";
        S3S_BAIL(S3S_ERR_INVALID_ARG);
    }
    *why = NULL;
    *out = root;
    return s3s_ok();
}
