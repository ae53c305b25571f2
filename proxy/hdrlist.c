/*
 * hdrlist.c - header lists kept as "name\0value\0..." in a buffer (proxy.h):
 * s3seal's object metadata, a probed object's headers, a backend answer's.
 */
#include <string.h>

#include "proxy/proxy.h"

s3s_result s3s_hdrlist_add(struct s3s_buf *list, struct s3s_cur name, struct s3s_cur value)
{
    for (size_t i = 0; i < name.len; i++) {
        uint8_t c = name.ptr[i];
        S3S_GUARD(s3s_buf_append_byte(list, (c >= 'A' && c <= 'Z') ? (uint8_t)(c + 32) : c));
    }
    S3S_GUARD(s3s_buf_append_byte(list, '\0'));
    S3S_GUARD(s3s_buf_append_cur(list, value));
    return s3s_buf_append_byte(list, '\0');
}

s3s_result s3s_hdrlist_emit(void *ctx, const char *name, struct s3s_cur value)
{
    return s3s_hdrlist_add(ctx, s3s_cur_from_str(name), value);
}

bool s3s_hdrlist_next(const struct s3s_buf *list, size_t *off, const char **name,
                      const char **value)
{
    if (*off >= list->len) {
        return false;
    }
    *name = (const char *)list->ptr + *off;
    *value = *name + strlen(*name) + 1;
    *off = (size_t)(*value + strlen(*value) + 1 - (const char *)list->ptr);
    return true;
}

size_t s3s_hdrlist_count(const struct s3s_buf *list)
{
    size_t n = 0, off = 0;
    const char *k, *v;
    while (s3s_hdrlist_next(list, &off, &k, &v)) {
        n++;
    }
    return n;
}

bool s3s_hdrlist_get(void *ctx, const char *name, struct s3s_cur *value)
{
    size_t off = 0;
    const char *k, *v;
    while (s3s_hdrlist_next(ctx, &off, &k, &v)) {
        if (strcmp(k, name) == 0) {
            *value = s3s_cur_from_str(v);
            return true;
        }
    }
    return false;
}
