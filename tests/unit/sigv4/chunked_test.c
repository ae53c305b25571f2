/*
 * chunked_test.c - aws-chunked decoding against AWS's published examples
 * (tests/vectors/s3-examples.json: 64 KiB + 1 KiB of 'a' with their chunk
 * signatures, the -TRAILER variant with its trailer signature, and the
 * unsigned-trailer body), fed in every piece size from 1 byte up; tampering
 * with any chunk, signature, size or trailer; and the checksum algorithms'
 * check values.
 */
#include <json-c/json.h>

#include "sigv4/chunked.h"
#include "testlib.h"

struct s_sink {
    uint64_t n;
    bool all_a;
};

static s3s_result s_on_data(void *ctx, const uint8_t *p, size_t n)
{
    struct s_sink *s = ctx;
    for (size_t i = 0; i < n; i++) {
        s->all_a = s->all_a && p[i] == 'a';
    }
    s->n += n;
    return s3s_ok();
}

static const char *s_str(struct json_object *c, const char *k)
{
    return json_object_get_string(json_object_object_get(c, k));
}

/* Builds the encoded body of a case from its chunk sizes and signatures. */
static void s_body(struct json_object *c, struct s3s_buf *b, bool signed_chunks)
{
    /* AWS's example: 64 KiB, 1 KiB, then the final empty chunk. */
    static const int sizes[] = {65536, 1024, 0};
    struct json_object *sigs = json_object_object_get(c, "chunk_signatures");
    for (size_t i = 0; i < 3; i++) {
        int n = sizes[i];
        if (signed_chunks) {
            T_OK(s3s_buf_appendf(b, "%x;chunk-signature=%s\r\n", n,
                                 json_object_get_string(json_object_array_get_idx(sigs, i))));
        } else {
            T_OK(s3s_buf_appendf(b, "%x\r\n", n));
        }
        for (int k = 0; k < n; k++) {
            T_OK(s3s_buf_append_byte(b, 'a'));
        }
        if (n) {
            T_OK(s3s_buf_append_str(b, "\r\n"));
        }
    }
    struct json_object *tr = json_object_object_get(c, "trailers");
    for (size_t i = 0; tr && i < json_object_array_length(tr); i++) {
        struct json_object *t = json_object_array_get_idx(tr, i);
        T_OK(s3s_buf_appendf(b, "%s:%s\r\n", json_object_get_string(json_object_array_get_idx(t, 0)),
                             json_object_get_string(json_object_array_get_idx(t, 1))));
    }
    const char *ts = s_str(c, "trailer_signature");
    if (ts && signed_chunks) {
        T_OK(s3s_buf_appendf(b, "x-amz-trailer-signature:%s\r\n", ts));
    }
    T_OK(s3s_buf_append_str(b, "\r\n"));
    const char *terminated;
    T_OK(s3s_buf_cstr(b, &terminated)); /* for strstr below */
}

static struct s3s_chunked_options s_opts(struct json_object *c, enum s3s_sigv4_payload mode)
{
    struct s3s_chunked_options o;
    memset(&o, 0, sizeof(o));
    o.mode = mode;
    struct s3s_secret secret;
    s3s_result_ignore(s3s_secret_from("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", 40, &secret));
    s3s_result_ignore(s3s_sigv4_signing_key(&secret, "20130524", "us-east-1", "s3", o.signing_key));
    s3s_secret_destroy(&secret);
    const char *seed = s_str(c, "seed_signature");
    if (seed) {
        T_CHECK(s3s_hex_decode(s3s_cur_from_str(seed), o.seed_signature, 32));
    }
    T_OK(s3s_time_parse_iso8601_basic(S3S_CUR_LIT("20130524T000000Z"), &o.request_time));
    o.scope_date = "20130524";
    o.region = "us-east-1";
    o.service = "s3";
    return o;
}

/* Decodes `body` fed in pieces of `step`; returns the result code. */
static int32_t s_decode(const struct s3s_chunked_options *o, struct s3s_cur body, size_t step,
                        struct s_sink *sink, struct s3s_chunked **keep)
{
    struct s3s_chunked *d = NULL;
    s3s_result r = s3s_chunked_new(o, s_on_data, sink, &d);
    for (size_t off = 0; s3s_is_ok(r) && off < body.len; off += step) {
        size_t n = body.len - off < step ? body.len - off : step;
        r = s3s_chunked_push(d, s3s_cur_from(body.ptr + off, n));
    }
    if (s3s_is_ok(r) && !s3s_chunked_done(d)) {
        r = s3s_err(S3S_ERR_INCOMPLETE_BODY);
    }
    if (keep && s3s_is_ok(r)) {
        *keep = d;
    } else {
        s3s_chunked_destroy(d);
    }
    return r.code;
}

static void test_case(struct json_object *c, enum s3s_sigv4_payload mode, bool signed_chunks)
{
    struct s3s_buf body;
    T_OK(s3s_buf_init(&body, 0, 1 << 20));
    s_body(c, &body, signed_chunks);
    T_CHECK(body.len == (size_t)json_object_get_int(json_object_object_get(c, "encoded_length")));
    struct s3s_chunked_options o = s_opts(c, mode);

    static const size_t steps[] = {1, 2, 7, 100, 4096, 65536, 1 << 20};
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
        struct s_sink sink = {0, true};
        struct s3s_chunked *d = NULL;
        T_CHECK(s_decode(&o, s3s_buf_cur(&body), steps[i], &sink, &d) == S3S_OK);
        T_CHECK(sink.n == 66560 && sink.all_a);
        struct json_object *tr = json_object_object_get(c, "trailers");
        if (d && tr) {
            struct json_object *t = json_object_array_get_idx(tr, 0);
            struct s3s_cur v;
            T_CHECK(s3s_chunked_trailer(d, json_object_get_string(json_object_array_get_idx(t, 0)), &v));
            T_CHECK(s3s_cur_eq_str(v, json_object_get_string(json_object_array_get_idx(t, 1))));
        }
        s3s_chunked_destroy(d);
    }

    /* Tampering: a data byte, each signature, the size, the trailer value. */
    struct s_sink sink = {0, true};
    body.ptr[200] = 'b';
    T_CHECK(s_decode(&o, s3s_buf_cur(&body), 4096, &sink, NULL) ==
            (signed_chunks ? S3S_ERR_SIGNATURE_DOES_NOT_MATCH : S3S_OK));
    body.ptr[200] = 'a';
    if (signed_chunks) {
        const char *sigpos = strstr((const char *)body.ptr, "chunk-signature=") + 16;
        size_t at = (size_t)(sigpos - (const char *)body.ptr);
        uint8_t orig = body.ptr[at];
        body.ptr[at] = orig == '0' ? '1' : '0';
        T_CHECK(s_decode(&o, s3s_buf_cur(&body), 4096, &sink, NULL) ==
                S3S_ERR_SIGNATURE_DOES_NOT_MATCH);
        body.ptr[at] = orig;
        /* Wrong seed (another request's signature). */
        struct s3s_chunked_options o2 = o;
        o2.seed_signature[0] ^= 1;
        T_CHECK(s_decode(&o2, s3s_buf_cur(&body), 4096, &sink, NULL) ==
                S3S_ERR_SIGNATURE_DOES_NOT_MATCH);
    }
    const char *tv = strstr((const char *)body.ptr + 66000, "x-amz-checksum-");
    if (tv && mode == S3S_SIGV4_PAYLOAD_STREAMING_TRAILER) {
        size_t at = (size_t)(strchr(tv, ':') + 1 - (const char *)body.ptr);
        body.ptr[at] ^= 0x01;
        T_CHECK(s_decode(&o, s3s_buf_cur(&body), 4096, &sink, NULL) ==
                S3S_ERR_SIGNATURE_DOES_NOT_MATCH);
        body.ptr[at] ^= 0x01;
    }
    /* Truncated: not done. Extra bytes after the end: refused. */
    struct s3s_cur trunc = s3s_cur_from(body.ptr, body.len - 2);
    int32_t tr_code = s_decode(&o, trunc, 4096, &sink, NULL);
    if (tr_code != S3S_ERR_INCOMPLETE_BODY) {
        fprintf(stderr, "truncated: %s\n", s3s_strerror(tr_code));
    }
    T_CHECK(tr_code == S3S_ERR_INCOMPLETE_BODY);
    T_OK(s3s_buf_append_str(&body, "x"));
    T_CHECK(s_decode(&o, s3s_buf_cur(&body), 4096, &sink, NULL) == S3S_ERR_INCOMPLETE_BODY);
    s3s_buf_clean_up(&body);
}

static void test_malformed(void)
{
    struct s3s_chunked_options o;
    memset(&o, 0, sizeof(o));
    o.mode = S3S_SIGV4_PAYLOAD_STREAMING_UNSIGNED_TRAILER;
    o.max_chunk_size = 1 << 20;
    const char *bad[] = {
        "zz\r\n",                       /* not hex */
        "3\nabc\r\n0\r\n\r\n",          /* bare LF */
        "3\r\nabcd\r\n0\r\n\r\n",       /* longer than announced */
        "200000\r\n",                   /* over the chunk limit */
        "3;ext=1\r\nabc\r\n0\r\n\r\n",  /* extensions in unsigned mode */
        "0\r\nno-colon\r\n\r\n",        /* trailer without a colon */
        "11111111111111111\r\n",        /* size overflow */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct s_sink sink = {0, true};
        T_CHECK(s_decode(&o, s3s_cur_from_str(bad[i]), 1, &sink, NULL) == S3S_ERR_INVALID_CHUNK);
    }
    struct s_sink sink = {0, true};
    T_CHECK(s_decode(&o, S3S_CUR_LIT("3\r\naaa\r\n0\r\n\r\n"), 1, &sink, NULL) == S3S_OK);
    T_CHECK(sink.n == 3);
}

static void s_check(enum s3s_checksum_alg alg, const char *data, const char *want)
{
    struct s3s_checksum c;
    struct s3s_buf b;
    T_OK(s3s_buf_init(&b, 0, 128));
    T_OK(s3s_checksum_init(&c, alg));
    /* In two pieces, to exercise the streaming state. */
    size_t n = strlen(data);
    T_OK(s3s_checksum_update(&c, (const uint8_t *)data, n / 2));
    T_OK(s3s_checksum_update(&c, (const uint8_t *)data + n / 2, n - n / 2));
    T_OK(s3s_checksum_final(&c, &b));
    T_BUFEQ(b, want);
    s3s_checksum_clean_up(&c);
    s3s_buf_clean_up(&b);
}

static void test_checksums(void)
{
    /* Check values of "123456789": CRC32 cbf43926, CRC32C e3069283,
     * CRC64/NVME ae8b14860a799888; base64 of the big-endian bytes. */
    s_check(S3S_CHECKSUM_CRC32, "123456789", "y/Q5Jg==");
    s_check(S3S_CHECKSUM_CRC32C, "123456789", "4waSgw==");
    s_check(S3S_CHECKSUM_CRC64NVME, "123456789", "rosUhgp5mIg=");
    s_check(S3S_CHECKSUM_SHA1, "abc", "qZk+NkcGgWq6PiVxeFDCbJzQ2J0=");
    s_check(S3S_CHECKSUM_SHA256, "abc", "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=");
    /* The published trailer values: 66560 bytes of 'a'. */
    char *a = malloc(66561);
    memset(a, 'a', 66560);
    a[66560] = '\0';
    s_check(S3S_CHECKSUM_CRC32C, a, "sOO8/Q==");
    s_check(S3S_CHECKSUM_CRC32, a, "sK4Y7A==");
    free(a);
    T_CHECK(s3s_checksum_alg_parse(S3S_CUR_LIT("crc64nvme")) == S3S_CHECKSUM_CRC64NVME);
    T_CHECK(s3s_checksum_alg_from_header(S3S_CUR_LIT("X-Amz-Checksum-SHA1")) == S3S_CHECKSUM_SHA1);
    T_CHECK(s3s_checksum_alg_parse(S3S_CUR_LIT("MD5")) == S3S_CHECKSUM_NONE);
}

int main(void)
{
    struct json_object *root = json_object_from_file("tests/vectors/s3-examples.json");
    T_CHECK(root != NULL);
    struct json_object *cases = json_object_object_get(root, "cases");
    for (size_t i = 0; i < json_object_array_length(cases); i++) {
        struct json_object *c = json_object_array_get_idx(cases, i);
        const char *name = s_str(c, "name");
        if (strcmp(name, "chunked") == 0) {
            test_case(c, S3S_SIGV4_PAYLOAD_STREAMING, true);
        } else if (strcmp(name, "chunked-trailer") == 0) {
            test_case(c, S3S_SIGV4_PAYLOAD_STREAMING_TRAILER, true);
        } else if (strcmp(name, "unsigned-trailer") == 0) {
            test_case(c, S3S_SIGV4_PAYLOAD_STREAMING_UNSIGNED_TRAILER, false);
        }
    }
    test_malformed();
    test_checksums();
    json_object_put(root);
    s3s_sigv4_cache_clean_up();
    return t_finish("sigv4.chunked");
}
