/*
 * range_test.c - byte ranges of encrypted objects: Range parsing, the
 * widened backend range (checked against both stored layouts for every
 * plaintext range near segment edges: it must hold every stored byte of
 * every segment the range touches), the range served, a copy's source
 * range, and the multipart layout check.
 */
#include <stdio.h>

#include "sse/range.h"
#include "sse/sse.h"
#include "testlib.h"

#define SEG 1024u /* a small segment, so edges are cheap to reach */

static void test_parse(void)
{
    struct s3s_sse_range r;
    T_CHECK(s3s_sse_range_parse(S3S_CUR_LIT("bytes=0-99"), &r) && r.kind == S3S_RANGE_FROM_TO &&
            r.a == 0 && r.b == 99);
    T_CHECK(s3s_sse_range_parse(S3S_CUR_LIT("bytes=5-"), &r) && r.kind == S3S_RANGE_FROM_TO &&
            r.a == 5 && r.b == UINT64_MAX);
    T_CHECK(s3s_sse_range_parse(S3S_CUR_LIT("bytes=-7"), &r) && r.kind == S3S_RANGE_SUFFIX &&
            r.a == 7);
    static const char *const ignored[] = {"bytes=9-3", "bytes=0-1,5-6", "items=0-1", "bytes=-",
                                          "bytes=a-b", "bytes=1", "", NULL};
    for (size_t i = 0; ignored[i]; i++) {
        r = (struct s3s_sse_range){S3S_RANGE_NONE, 42, 42};
        T_CHECK(!s3s_sse_range_parse(s3s_cur_from_str(ignored[i]), &r));
        T_CHECK(r.kind == S3S_RANGE_NONE && r.a == 42); /* untouched */
    }
}

static void test_resolve(void)
{
    uint64_t a, b;
    struct s3s_sse_range r = {S3S_RANGE_FROM_TO, 10, 20};
    T_CHECK(s3s_sse_range_resolve(&r, 100, &a, &b) && a == 10 && b == 20);
    T_CHECK(s3s_sse_range_resolve(&r, 15, &a, &b) && a == 10 && b == 14);
    T_CHECK(!s3s_sse_range_resolve(&r, 10, &a, &b));
    r = (struct s3s_sse_range){S3S_RANGE_SUFFIX, 30, 0};
    T_CHECK(s3s_sse_range_resolve(&r, 100, &a, &b) && a == 70 && b == 99);
    T_CHECK(s3s_sse_range_resolve(&r, 20, &a, &b) && a == 0 && b == 19);
    T_CHECK(!s3s_sse_range_resolve(&r, 0, &a, &b));
    r.a = 0;
    T_CHECK(!s3s_sse_range_resolve(&r, 100, &a, &b));
}

/* Stored [first, last] byte of segment i of an object of `plain` bytes. */
static void s_stored_segment(uint64_t i, uint32_t overhead, uint64_t *first, uint64_t *last,
                             uint64_t plain)
{
    uint64_t len = plain - i * SEG < SEG ? plain - i * SEG : SEG;
    *first = i * (SEG + overhead);
    *last = *first + len + overhead - 1;
}

/* The widened range, as the backend applies it to a stored object of
 * `stored` bytes: [*lo, *hi]. */
static void s_apply(const char *range, uint64_t stored, uint64_t *lo, uint64_t *hi)
{
    unsigned long long x = 0, y = 0;
    if (sscanf(range, "bytes=-%llu", &x) == 1) {
        *lo = stored > x ? stored - x : 0;
        *hi = stored - 1;
    } else if (sscanf(range, "bytes=%llu-%llu", &x, &y) == 2) {
        *lo = x;
        *hi = y < stored - 1 ? y : stored - 1;
    } else {
        T_CHECK(sscanf(range, "bytes=%llu-", &x) == 1);
        *lo = x;
        *hi = stored - 1;
    }
}

static void test_widen_covers(void)
{
    static const uint32_t overheads[] = {S3S_SSE_TAG_LEN, S3S_SSE_PART_OVERHEAD};
    static const uint64_t sizes[] = {1, SEG - 1, SEG, SEG + 1, 3 * SEG, 7 * SEG + 5};
    char out[64];
    size_t bad = 0;
    for (size_t o = 0; o < 2; o++) {
        for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
            uint64_t plain = sizes[s];
            uint64_t nseg = (plain + SEG - 1) / SEG;
            uint64_t stored = plain + overheads[o] * nseg;
            for (uint64_t a = 0; a < plain; a += (a % SEG == SEG - 2 || a % SEG == 0) ? 1 : 97) {
                struct s3s_sse_range rs[3] = {{S3S_RANGE_FROM_TO, a, a + SEG / 2},
                                              {S3S_RANGE_FROM_TO, a, UINT64_MAX},
                                              {S3S_RANGE_SUFFIX, plain - a, 0}};
                for (size_t k = 0; k < 3; k++) {
                    uint64_t pa, pb, lo, hi;
                    if (!s3s_sse_range_resolve(&rs[k], plain, &pa, &pb)) {
                        continue;
                    }
                    s3s_sse_range_widen(&rs[k], SEG, out, sizeof(out));
                    s_apply(out, stored, &lo, &hi);
                    for (uint64_t i = pa / SEG; i <= pb / SEG; i++) {
                        uint64_t f, l;
                        s_stored_segment(i, overheads[o], &f, &l, plain);
                        if (f < lo || l > hi) {
                            if (bad++ < 3) {
                                fprintf(stderr, "plain %llu [%llu,%llu] widened %s misses "
                                        "segment %llu\n", (unsigned long long)plain,
                                        (unsigned long long)pa, (unsigned long long)pb, out,
                                        (unsigned long long)i);
                            }
                        }
                    }
                }
            }
        }
    }
    T_CHECK(bad == 0);
}

static void test_copy_range(void)
{
    uint64_t a, b;
    T_OK(s3s_sse_copy_range_parse(S3S_CUR_LIT("bytes=0-9"), 10, &a, &b));
    T_CHECK(a == 0 && b == 9);
    T_ERR(s3s_sse_copy_range_parse(S3S_CUR_LIT("bytes=0-10"), 10, &a, &b), S3S_ERR_INVALID_RANGE);
    T_ERR(s3s_sse_copy_range_parse(S3S_CUR_LIT("bytes=5-4"), 10, &a, &b), S3S_ERR_INVALID_ARG);
    T_ERR(s3s_sse_copy_range_parse(S3S_CUR_LIT("bytes=5-"), 10, &a, &b), S3S_ERR_INVALID_ARG);
    T_ERR(s3s_sse_copy_range_parse(S3S_CUR_LIT("0-5"), 10, &a, &b), S3S_ERR_INVALID_ARG);
}

static uint64_t s_stored(uint64_t plain)
{
    uint64_t n = plain ? (plain + SEG - 1) / SEG : 1;
    return plain + S3S_SSE_PART_OVERHEAD * n;
}

static void test_layout(void)
{
    static uint64_t stored[10001];
    for (size_t i = 0; i <= 10000; i++) {
        stored[i] = UINT64_MAX;
    }
    stored[1] = stored[2] = s_stored(4 * SEG);
    stored[3] = s_stored(SEG + 7);
    stored[5] = s_stored(4 * SEG);
    uint32_t ok[] = {1, 2, 3};
    T_OK(s3s_sse_mpu_layout_check(ok, 3, stored, SEG));
    uint32_t gap[] = {1, 2, 5};
    T_ERR(s3s_sse_mpu_layout_check(gap, 3, stored, SEG), S3S_ERR_MPU_PART_ORDER);
    uint32_t swapped[] = {2, 1, 3};
    T_ERR(s3s_sse_mpu_layout_check(swapped, 3, stored, SEG), S3S_ERR_MPU_PART_ORDER);
    uint32_t missing[] = {1, 2, 3, 4}; /* 2 was never uploaded */
    stored[2] = UINT64_MAX;
    T_ERR(s3s_sse_mpu_layout_check(missing, 4, stored, SEG), S3S_ERR_MPU_PART_MISSING);
    stored[2] = stored[1];
    uint32_t small_first[] = {3, 4};
    stored[4] = s_stored(SEG);
    T_ERR(s3s_sse_mpu_layout_check(small_first, 2, stored, SEG), S3S_ERR_MPU_PART_SIZES);
    stored[6] = s_stored(5 * SEG); /* the last larger than the others */
    uint32_t larger_last[] = {5, 6};
    T_ERR(s3s_sse_mpu_layout_check(larger_last, 2, stored, SEG), S3S_ERR_MPU_PART_SIZES);
    stored[7] = s_stored(0);
    uint32_t empty_last[] = {6, 7};
    T_ERR(s3s_sse_mpu_layout_check(empty_last, 2, stored, SEG), S3S_ERR_MPU_PART_SIZES);
    uint32_t only_empty[] = {7};
    T_OK(s3s_sse_mpu_layout_check(only_empty, 1, stored, SEG));
    stored[8] = 3; /* shorter than a segment's overhead: no layout of s3seal's */
    uint32_t broken[] = {8};
    T_ERR(s3s_sse_mpu_layout_check(broken, 1, stored, SEG), S3S_ERR_MPU_PART_MISSING);
    T_ERR(s3s_sse_mpu_layout_check(ok, 0, stored, SEG), S3S_ERR_MALFORMED_XML);
}

int main(void)
{
    test_parse();
    test_resolve();
    test_widen_covers();
    test_copy_range();
    test_layout();
    return t_finish("sse.range");
}
