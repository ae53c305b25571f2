/*
 * meta_fuzz.c - aims at the decoder of an encrypted object's metadata
 * (s3s_sse_meta_decode, sse/meta.c): the x-amz-meta-s3seal-* headers a
 * backend returns, which anyone with write access to the backend can set.
 * Input: lines "name: value" (names as the backend sends them, without the
 * prefix or with it); a name given twice counts once, its first value.
 * Whatever it accepts must encode again and decode to the same fields, and
 * the associated data of its key and segments must be computable.
 */
#include <stdlib.h>
#include <string.h>

#include "sse/sse.h"

#define S_MAX_LINES 32

struct s_list {
    struct s3s_cur name[S_MAX_LINES], value[S_MAX_LINES];
    size_t n;
};

static bool s_get(void *ctx, const char *name, struct s3s_cur *value)
{
    const struct s_list *l = ctx;
    size_t pl = strlen(S3S_SSE_META_PREFIX);
    for (size_t i = 0; i < l->n; i++) {
        if (s3s_cur_eq_str_ignore_case(l->name[i], name) ||
            (strlen(name) > pl && s3s_cur_eq_str_ignore_case(l->name[i], name + pl))) {
            *value = l->value[i];
            return true;
        }
    }
    return false;
}

struct s_out {
    char names[S_MAX_LINES][64];
    uint8_t values[S_MAX_LINES][24000];
    struct s_list list;
};

static s3s_result s_emit(void *ctx, const char *name, struct s3s_cur value)
{
    struct s_out *o = ctx;
    size_t i = o->list.n;
    if (i >= S_MAX_LINES || strlen(name) >= sizeof(o->names[0]) ||
        value.len > sizeof(o->values[0])) {
        abort(); /* the encoder writes a handful of bounded fields */
    }
    strcpy(o->names[i], name);
    memcpy(o->values[i], value.ptr, value.len);
    o->list.name[i] = s3s_cur_from_str(o->names[i]);
    o->list.value[i] = s3s_cur_from(o->values[i], value.len);
    o->list.n++;
    return s3s_ok();
}

static void s_same(const struct s3s_sse_meta *a, const struct s3s_sse_meta *b)
{
    if (a->version != b->version || a->aead != b->aead || a->segment_size != b->segment_size ||
        a->kind != b->kind || a->multipart != b->multipart || a->parts != b->parts ||
        a->has_plain_md5 != b->has_plain_md5 ||
        !s3s_cur_eq(s3s_buf_cur(&a->wrapped_dek), s3s_buf_cur(&b->wrapped_dek)) ||
        !s3s_cur_eq(s3s_buf_cur(&a->kms_context), s3s_buf_cur(&b->kms_context)) ||
        !s3s_cur_eq(s3s_buf_cur(&a->bucket_key), s3s_buf_cur(&b->bucket_key))) {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct s_list in = {0};
    struct s3s_cur rest = s3s_cur_from(data, size), line;
    while (in.n < S_MAX_LINES && s3s_cur_next(&rest, '\n', &line)) {
        struct s3s_cur name;
        if (s3s_cur_split(&line, ':', &name)) {
            in.name[in.n] = s3s_cur_trim(name);
            in.value[in.n] = s3s_cur_trim(line);
            in.n++;
        }
    }
    struct s3s_sse_meta m, again;
    s3s_sse_meta_init(&m);
    s3s_sse_meta_init(&again);
    (void)s3s_sse_meta_present(s_get, &in);
    if (s3s_is_ok(s3s_sse_meta_decode(s_get, &in, &m))) {
        static struct s_out out;
        out.list.n = 0;
        if (s3s_failed(s3s_sse_meta_encode(&m, s_emit, &out)) ||
            s3s_failed(s3s_sse_meta_decode(s_get, &out.list, &again))) {
            abort(); /* what was read must write back and read again */
        }
        s_same(&m, &again);
        struct s3s_buf aad;
        if (s3s_is_ok(s3s_buf_init(&aad, 0, 1 << 16))) {
            if (s3s_failed(s3s_sse_segment_aad(&m, &aad))) {
                abort();
            }
            s3s_buf_reset(&aad);
            s3s_result_ignore(
                s3s_sse_dek_aad(&m, S3S_CUR_LIT("bucket"), S3S_CUR_LIT("some/key"), &aad));
            s3s_buf_clean_up(&aad);
        }
    }
    s3s_sse_meta_clean_up(&m);
    s3s_sse_meta_clean_up(&again);
    return 0;
}
