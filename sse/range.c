/*
 * range.c - byte ranges of encrypted objects (see range.h).
 */
#include <stdio.h>

#include "sse/range.h"
#include "sse/sse.h"

bool s3s_sse_range_parse(struct s3s_cur v, struct s3s_sse_range *out)
{
    if (!s3s_cur_starts_with(v, "bytes=")) {
        return false;
    }
    v.ptr += 6;
    v.len -= 6;
    struct s3s_cur a;
    if (s3s_cur_find(v, ',') >= 0 || !s3s_cur_split(&v, '-', &a)) {
        return false;
    }
    uint64_t x = 0, y = 0;
    if (a.len == 0) {
        if (s3s_failed(s3s_parse_u64(v, UINT64_MAX / 2, &x))) {
            return false;
        }
        *out = (struct s3s_sse_range){S3S_RANGE_SUFFIX, x, 0};
        return true;
    }
    if (s3s_failed(s3s_parse_u64(a, UINT64_MAX / 2, &x))) {
        return false;
    }
    if (v.len == 0) {
        y = UINT64_MAX;
    } else if (s3s_failed(s3s_parse_u64(v, UINT64_MAX / 2, &y)) || y < x) {
        return false;
    }
    *out = (struct s3s_sse_range){S3S_RANGE_FROM_TO, x, y};
    return true;
}

void s3s_sse_range_widen(const struct s3s_sse_range *r, uint32_t segment, char *out, size_t cap)
{
    uint64_t seg = segment;
    /* A stored segment at its largest (the multipart layout's): the widened
     * range covers either layout. */
    uint64_t cseg = seg + S3S_SSE_PART_OVERHEAD;
    if (r->kind == S3S_RANGE_SUFFIX) {
        /* Enough ciphertext for the segments holding the last n bytes, with
         * one segment of slack for alignment. */
        uint64_t n = r->a;
        snprintf(out, cap, "bytes=-%llu",
                 (unsigned long long)(n + 2 * cseg + S3S_SSE_PART_OVERHEAD * (n / seg + 2)));
        return;
    }
    uint64_t s0 = r->a / seg;
    if (r->b == UINT64_MAX) {
        snprintf(out, cap, "bytes=%llu-", (unsigned long long)(s0 * seg));
    } else {
        uint64_t s1 = r->b / seg;
        snprintf(out, cap, "bytes=%llu-%llu", (unsigned long long)(s0 * seg),
                 (unsigned long long)((s1 + 1) * cseg - 1));
    }
}

bool s3s_sse_range_resolve(const struct s3s_sse_range *r, uint64_t total, uint64_t *a,
                           uint64_t *b)
{
    if (r->kind == S3S_RANGE_SUFFIX) {
        if (r->a == 0 || total == 0) {
            return false;
        }
        *a = total > r->a ? total - r->a : 0;
        *b = total - 1;
        return true;
    }
    if (r->a >= total) {
        return false;
    }
    *a = r->a;
    *b = r->b < total - 1 ? r->b : total - 1;
    return true;
}

s3s_result s3s_sse_copy_range_parse(struct s3s_cur v, uint64_t size, uint64_t *a, uint64_t *b)
{
    struct s3s_cur first;
    S3S_ENSURE(s3s_cur_starts_with(v, "bytes="), S3S_ERR_INVALID_ARG);
    v.ptr += 6;
    v.len -= 6;
    S3S_ENSURE(s3s_cur_split(&v, '-', &first) &&
                   s3s_is_ok(s3s_parse_u64(first, UINT64_MAX / 2, a)) &&
                   s3s_is_ok(s3s_parse_u64(v, UINT64_MAX / 2, b)) && *a <= *b,
               S3S_ERR_INVALID_ARG);
    S3S_ENSURE(*b < size, S3S_ERR_INVALID_RANGE);
    return s3s_ok();
}

s3s_result s3s_sse_mpu_layout_check(const uint32_t *numbers, size_t n, const uint64_t *stored,
                                    uint32_t segment)
{
    S3S_ENSURE(n > 0, S3S_ERR_MALFORMED_XML);
    uint64_t first = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t plain = 0;
        S3S_ENSURE(numbers[i] == numbers[0] + i, S3S_ERR_MPU_PART_ORDER);
        S3S_ENSURE(stored[numbers[i]] != UINT64_MAX &&
                       s3s_is_ok(s3s_sse_plain_size_x(stored[numbers[i]], segment,
                                                      S3S_SSE_PART_OVERHEAD, &plain)),
                   S3S_ERR_MPU_PART_MISSING);
        if (i == 0) {
            first = plain;
        }
        bool last = i + 1 == n;
        S3S_ENSURE(!(!last && (plain != first || plain % segment)) &&
                       !(last && (plain > first || (plain == 0 && n > 1))),
                   S3S_ERR_MPU_PART_SIZES);
    }
    return s3s_ok();
}
