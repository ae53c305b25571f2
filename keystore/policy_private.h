/*
 * policy_private.h - shared by the files behind policy.h (context.c,
 * policy.c, json_strict.c) and by nothing else.
 */
#ifndef S3S_KEYSTORE_POLICY_PRIVATE_H
#define S3S_KEYSTORE_POLICY_PRIVATE_H

#include "common/common.h"

struct json_object;

/* Parses one JSON text into a json-c tree, more strictly than json-c alone:
 * on top of its strict mode it rejects invalid UTF-8 (json-c lets overlong
 * forms and encoded surrogates through), raw control characters inside
 * strings, the escape \u0000 (json-c would cut an object key short at it),
 * bytes after the value, and duplicate keys in any object (json-c would keep
 * the last one silently, so two readers of the same policy could disagree).
 * Containers may nest max_nesting deep.
 *
 * On success *out owns the tree (release it with json_object_put). On
 * failure *out is NULL, *why a static one-line reason, and the result is
 * S3S_ERR_INVALID_ARG (S3S_ERR_NOMEM if the tokener cannot be allocated). */
S3S_RESULT s3s_keystore__json_parse(struct s3s_cur text, int max_nesting,
                                    struct json_object **out, const char **why);

/* True if s is well-formed UTF-8 (RFC 3629: no overlong forms, no
 * surrogates, nothing past U+10FFFF). */
bool s3s_keystore__utf8_valid(struct s3s_cur s);

#endif /* S3S_KEYSTORE_POLICY_PRIVATE_H */
