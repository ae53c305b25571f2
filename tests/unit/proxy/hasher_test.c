/*
 * hasher_test.c - a body's digests computed on the thread pool (hasher.h)
 * equal those computed in one go, whatever the piece sizes; staging pauses
 * at its mark and the progress callback tells when every byte is hashed; a
 * hasher released while its job runs frees itself (ASan checks the leak).
 */
#include <openssl/evp.h>
#include <string.h>

#include "proxy/hasher.h"
#include "testlib.h"

#define S_LEN (3u * 1024 * 1024 + 77)

struct s_state {
    int progress;
    bool idle_seen;
    struct s3s_hasher *h;
};

static void s_progress(void *ctx)
{
    struct s_state *st = ctx;
    st->progress++;
    if (s3s_hasher_idle(st->h)) {
        st->idle_seen = true;
    }
}

static void s_digests_new(struct s3s_body_digests *d, enum s3s_checksum_alg alg)
{
    memset(d, 0, sizeof(*d));
    d->sha256 = EVP_MD_CTX_new();
    d->md5 = EVP_MD_CTX_new();
    T_CHECK(d->sha256 && d->md5);
    T_CHECK(EVP_DigestInit_ex(d->sha256, EVP_sha256(), NULL) == 1);
    T_CHECK(EVP_DigestInit_ex(d->md5, EVP_md5(), NULL) == 1);
    if (alg != S3S_CHECKSUM_NONE) {
        T_OK(s3s_checksum_init(&d->checksum, alg));
    }
}

/* Final values of d: SHA-256 || MD5 || base64 checksum. */
static void s_final(struct s3s_body_digests *d, struct s3s_buf *out)
{
    uint8_t md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    T_CHECK(EVP_DigestFinal_ex(d->sha256, md, &n) == 1 && n == 32);
    T_OK(s3s_buf_append(out, md, n));
    T_CHECK(EVP_DigestFinal_ex(d->md5, md, &n) == 1 && n == 16);
    T_OK(s3s_buf_append(out, md, n));
    if (d->checksum.alg != S3S_CHECKSUM_NONE) {
        T_OK(s3s_checksum_final(&d->checksum, out));
    }
}

static void s_expected(const uint8_t *data, size_t len, enum s3s_checksum_alg alg,
                       struct s3s_buf *out)
{
    struct s3s_body_digests d;
    s_digests_new(&d, alg);
    T_OK(s3s_body_digests_update(&d, data, len));
    s_final(&d, out);
    s3s_body_digests_clean_up(&d);
}

/* Pushes data in pieces of varying size, running the loop whenever the
 * hasher says it is full, as the connection stops reading then. */
static void s_run(uv_loop_t *loop, bool offload, const uint8_t *data, size_t len,
                  enum s3s_checksum_alg alg)
{
    struct s3s_buf want, got;
    T_OK(s3s_buf_init(&want, 0, 256));
    T_OK(s3s_buf_init(&got, 0, 256));
    s_expected(data, len, alg, &want);

    struct s3s_body_digests d;
    s_digests_new(&d, alg);
    struct s_state st = {0};
    T_OK(s3s_hasher_new(loop, offload, &d, s_progress, &st, &st.h));
    T_CHECK(d.sha256 == NULL && d.md5 == NULL && d.checksum.alg == S3S_CHECKSUM_NONE);
    static const size_t sizes[] = {1, 65536, 7, 4096, 65535, 131072, 3, 1000};
    size_t off = 0, k = 0;
    bool paused = false;
    while (off < len) {
        size_t n = sizes[k++ % 8];
        n = n > len - off ? len - off : n;
        T_OK(s3s_hasher_push(st.h, data + off, n));
        off += n;
        while (s3s_hasher_full(st.h)) {
            paused = true;
            T_CHECK(offload);
            uv_run(loop, UV_RUN_ONCE);
        }
    }
    if (offload) {
        T_CHECK(paused || len < S3S_HASHER_STAGE_HIGH); /* 3 MiB cannot all be staged */
        while (!s3s_hasher_idle(st.h)) {
            uv_run(loop, UV_RUN_ONCE);
        }
        T_CHECK(st.progress > 0 && st.idle_seen);
    } else {
        T_CHECK(s3s_hasher_idle(st.h) && st.progress == 0);
    }
    T_OK(s3s_hasher_finish(st.h, &d));
    T_CHECK(uv_run(loop, UV_RUN_DEFAULT) == 0); /* its handle closes */
    s_final(&d, &got);
    s3s_body_digests_clean_up(&d);
    T_CHECK(got.len == want.len && memcmp(got.ptr, want.ptr, got.len) == 0);
    s3s_buf_clean_up(&want);
    s3s_buf_clean_up(&got);
}

static void test_digests(uv_loop_t *loop, const uint8_t *data)
{
    s_run(loop, true, data, S_LEN, S3S_CHECKSUM_CRC32);
    s_run(loop, true, data, S_LEN, S3S_CHECKSUM_SHA1);
    s_run(loop, false, data, S_LEN, S3S_CHECKSUM_CRC64NVME);
    s_run(loop, true, data, 10, S3S_CHECKSUM_NONE);
}

static void test_release_while_busy(uv_loop_t *loop, const uint8_t *data)
{
    struct s3s_body_digests d;
    s_digests_new(&d, S3S_CHECKSUM_SHA256);
    struct s_state st = {0};
    T_OK(s3s_hasher_new(loop, true, &d, s_progress, &st, &st.h));
    T_OK(s3s_hasher_push(st.h, data, 1024 * 1024));
    T_OK(s3s_hasher_push(st.h, data, 1024 * 1024)); /* staged behind the job */
    T_CHECK(!s3s_hasher_idle(st.h));
    /* finish refuses while bytes are unhashed */
    T_ERR(s3s_hasher_finish(st.h, &d), S3S_ERR_INTERNAL);
    s3s_hasher_release(st.h);
    T_CHECK(uv_run(loop, UV_RUN_DEFAULT) == 0);
    T_CHECK(st.progress == 0); /* no callback after release */

    /* Released while idle: freed at once. */
    s_digests_new(&d, S3S_CHECKSUM_NONE);
    T_OK(s3s_hasher_new(loop, true, &d, s_progress, &st, &st.h));
    s3s_hasher_release(st.h);
    s3s_hasher_release(NULL);
    T_CHECK(uv_run(loop, UV_RUN_DEFAULT) == 0);
}

int main(void)
{
    uint8_t *data = s3s_malloc(S_LEN);
    T_CHECK(data != NULL);
    uint32_t x = 2463534242u;
    for (size_t i = 0; i < S_LEN; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        data[i] = (uint8_t)x;
    }
    uv_loop_t loop;
    T_CHECK(uv_loop_init(&loop) == 0);
    test_digests(&loop, data);
    test_release_while_busy(&loop, data);
    T_CHECK(uv_loop_close(&loop) == 0);
    s3s_free(&data);
    uv_library_shutdown();
    return t_finish("proxy.hasher");
}
