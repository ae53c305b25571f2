/*
 * cli_rewrap.c - maintenance of stored objects through the backend.
 *
 * `s3seal migrate s3://BUCKET[/PREFIX]` encrypts objects stored before s3seal
 * (no s3seal metadata) in place: each is read, encrypted into a temporary
 * file, and written back under its own name with its headers and metadata.
 * A write that happens between the read and the write back is overwritten:
 * migrate a bucket while nothing else writes to it.
 *
 * `s3seal rewrap s3://BUCKET[/PREFIX]`: re-wraps the data keys
 * of existing SSE-S3 objects under the newest root key version, without
 * rewriting their data. Each object is listed, its metadata read (HEAD), its
 * data key opened with the old root key and wrapped with the newest, and the
 * object copied onto itself with the new metadata (the backend copies the
 * ciphertext as it is). Objects already on the newest version and objects
 * without s3seal metadata are left alone, so an interrupted run can simply
 * be started again.
 *
 * Both list the whole prefix first (cli_walk.c), then work through it with
 * a progress line on a terminal. A blocking client (libcurl easy, SigV4
 * with the backend's credentials): this is a command, not the event loop.
 */
#include <curl/curl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <libxml/parser.h>
#include <stdio.h>
#include <string.h>

#include "keystore/keystore.h"
#include "proxy/cli.h"
#include "proxy/proxy.h"
#include "sigv4/sigv4.h"
#include "sse/sse.h"

struct s_counts {
    unsigned long rewrapped, current, plain, kms, failed;
};

static void s_rewrap_one(const struct s3s_config *cfg, struct s3s_keystore *ks, const char *bucket,
                         const char *key, struct s_counts *n)
{
    struct s3s_cli_head head;
    struct s3s_sse_meta meta;
    struct s3s_buf aad = {0}, newmeta = {0};
    struct s3s_secret old_root = {0}, new_root = {0}, dek = {0};
    s3s_sse_meta_init(&meta);
    uint32_t cur = 0;
    bool ok = s3s_is_ok(s3s_cli_head(cfg, bucket, key, NULL, &head)) &&
              s3s_is_ok(s3s_buf_init(&aad, 0, 16384)) &&
              s3s_is_ok(s3s_buf_init(&newmeta, 0, 16384));
    struct s3s_buf *headers = &head.resp.headers;
    if (!ok) {
        fprintf(stderr, "s3seal rewrap: %s: cannot read its metadata (HTTP %ld)\n", key,
                head.resp.status);
        n->failed++;
        goto out;
    }
    if (!s3s_sse_meta_present(s3s_hdrlist_get, headers)) {
        n->plain++;
        goto out;
    }
    bool decoded = s3s_is_ok(s3s_sse_meta_decode(s3s_hdrlist_get, headers, &meta));
    if (decoded && meta.kind == S3S_SSE_KIND_KMS) {
        /* A KMS key wraps it: its rotation keeps every version, no rewrap. */
        n->kms++;
        goto out;
    }
    if (!decoded || meta.kind != S3S_SSE_KIND_S3 ||
        s3s_failed(s3s_keystore_root_current(ks, &cur, &new_root))) {
        fprintf(stderr, "s3seal rewrap: %s: unsupported or invalid encryption metadata\n", key);
        n->failed++;
        goto out;
    }
    if (meta.root_version == cur) {
        n->current++;
        goto out;
    }
    struct s3s_cur b = s3s_cur_from_str(bucket), k = s3s_cur_from_str(key);
    if (s3s_failed(s3s_keystore_root_get(ks, meta.root_version, &old_root)) ||
        s3s_failed(s3s_sse_dek_aad(&meta, b, k, &aad)) ||
        s3s_failed(s3s_keystore_open_sealed(old_root.ptr, s3s_buf_cur(&aad),
                                            s3s_buf_cur(&meta.wrapped_dek), &dek))) {
        fprintf(stderr, "s3seal rewrap: %s: its data key does not open (fail closed)\n", key);
        n->failed++;
        goto out;
    }
    meta.root_version = cur;
    /* A multipart object records its part count, which the copy's ETag may
     * no longer show. */
    struct s3s_cur etag;
    if (meta.multipart && !meta.parts && s3s_hdrlist_get(headers, "etag", &etag)) {
        /* 0 for parts3: the catalog's row keeps it (the data key, so its
         * id, stays). */
        meta.parts = s3s_sse_meta_parts(&meta, etag);
    }
    s3s_buf_reset(&aad);
    s3s_buf_reset(&meta.wrapped_dek);
    ok = s3s_is_ok(s3s_sse_dek_aad(&meta, b, k, &aad)) &&
         s3s_is_ok(s3s_keystore_seal(new_root.ptr, s3s_buf_cur(&aad),
                                     s3s_cur_from(dek.ptr, dek.len), &meta.wrapped_dek)) &&
         s3s_is_ok(s3s_sse_meta_encode(&meta, s3s_hdrlist_emit, &newmeta));
    /* The copy onto itself: object headers kept, s3seal's metadata new (its
     * stored checksum kept). */
    struct s3s_sigv4_header h[36];
    size_t nh = 0;
    const char *hn, *hv;
    for (size_t off = 0; ok && nh < 30 && s3s_hdrlist_next(headers, &off, &hn, &hv);) {
        if (s3s_backend_is_object_header(s3s_cur_from_str(hn)) ||
            s3s_cur_starts_with(s3s_cur_from_str(hn), S3S_SSE_META_PREFIX "checksum-")) {
            h[nh++] = (struct s3s_sigv4_header){s3s_cur_from_str(hn), s3s_cur_from_str(hv)};
        }
    }
    for (size_t off = 0; ok && nh < 33 && s3s_hdrlist_next(&newmeta, &off, &hn, &hv);) {
        h[nh++] = (struct s3s_sigv4_header){s3s_cur_from_str(hn), s3s_cur_from_str(hv)};
    }
    h[nh++] = (struct s3s_sigv4_header){S3S_CUR_LIT("x-amz-copy-source"), s3s_buf_cur(&head.path)};
    h[nh++] = (struct s3s_sigv4_header){S3S_CUR_LIT("x-amz-metadata-directive"),
                                        S3S_CUR_LIT("REPLACE")};
    struct s3s_backend_resp put = {0};
    ok = ok && s3s_is_ok(s3s_buf_init(&put.body, 0, 1 << 20)) &&
         s3s_is_ok(s3s_buf_init(&put.headers, 0, 65536)) &&
         s3s_is_ok(s3s_cli_request(cfg, "PUT", s3s_buf_cur(&head.path), s3s_cur_from(NULL, 0), h,
                                   nh, &put)) &&
         put.status == 200;
    if (ok) {
        n->rewrapped++;
    } else {
        fprintf(stderr, "s3seal rewrap: %s: the copy failed (HTTP %ld)\n", key, put.status);
        n->failed++;
    }
    s3s_buf_clean_up(&put.body);
    s3s_buf_clean_up(&put.headers);
out:
    s3s_secret_destroy(&dek);
    s3s_secret_destroy(&old_root);
    s3s_secret_destroy(&new_root);
    s3s_sse_meta_clean_up(&meta);
    s3s_cli_head_clean_up(&head);
    s3s_buf_clean_up(&aad);
    s3s_buf_clean_up(&newmeta);
}

/* Ciphertext of a migrated object, written to a temporary file. */
struct s_sealer {
    struct s3s_sse_enc *enc;
    struct s3s_buf out;
    FILE *f;
    EVP_MD_CTX *md5; /* of the plaintext: the object's ETag, in the catalog */
};

static s3s_result s_seal_data(void *ctx, const uint8_t *p, size_t n)
{
    struct s_sealer *s = ctx;
    S3S_ENSURE(EVP_DigestUpdate(s->md5, p, n) == 1, S3S_ERR_INTERNAL);
    s3s_buf_reset(&s->out);
    S3S_GUARD(s3s_sse_enc_push(s->enc, s3s_cur_from(p, n), &s->out));
    S3S_ENSURE(s->out.len == 0 || fwrite(s->out.ptr, 1, s->out.len, s->f) == s->out.len,
               S3S_ERR_IO);
    return s3s_ok();
}

/* A migrated object's catalog entry (keystore.h): listings and HEAD then
 * give its size and ETag as they were before (the plaintext's MD5). Without
 * it the object is still whole and readable; `catalog rebuild` records it. */
static void s_migrated_entry(struct s3s_keystore *ks, const char *bucket, const char *key,
                             uint64_t size, struct s_sealer *sealer,
                             const struct s3s_backend_resp *put)
{
    uint8_t md5[16];
    unsigned int len = 0;
    struct s3s_cur etag;
    struct s3s_keystore_entry e = {.size = size};
    bool ok = EVP_DigestFinal_ex(sealer->md5, md5, &len) == 1 && len == 16 &&
              s3s_hdrlist_get((void *)&put->headers, "etag", &etag);
    if (ok) {
        etag = s3s_cur_unquote(etag);
    }
    for (int i = 0; ok && i < 16; i++) {
        snprintf(e.plain_etag + 2 * i, 3, "%02x", md5[i]);
    }
    if (!ok || s3s_failed(s3s_keystore_entry_put(ks, s3s_cur_from_str(bucket),
                                                 s3s_cur_from_str(key), etag, &e))) {
        fprintf(stderr, "s3seal migrate: %s: encrypted, but not in the catalog (s3seal catalog "
                        "rebuild records it)\n", key);
    }
}

static void s_migrate_one(const struct s3s_config *cfg, struct s3s_keystore *ks, const char *bucket,
                          const char *key, struct s_counts *n)
{
    struct s3s_cli_head head;
    struct s3s_backend_resp get = {0}, put = {0};
    struct s3s_sse_meta meta;
    struct s3s_buf aad = {0}, seg_aad = {0}, newmeta = {0};
    struct s3s_secret root = {0};
    struct s_sealer sealer = {0};
    uint8_t dek[S3S_SSE_KEY_LEN];
    uint32_t version = 0;
    s3s_sse_meta_init(&meta);
    bool ok = s3s_is_ok(s3s_cli_head(cfg, bucket, key, NULL, &head)) &&
              s3s_is_ok(s3s_buf_init(&get.headers, 0, 65536)) &&
              s3s_is_ok(s3s_buf_init(&put.body, 0, 1 << 20)) &&
              s3s_is_ok(s3s_buf_init(&put.headers, 0, 65536)) &&
              s3s_is_ok(s3s_buf_init(&aad, 0, 16384)) &&
              s3s_is_ok(s3s_buf_init(&seg_aad, 0, 128)) &&
              s3s_is_ok(s3s_buf_init(&newmeta, 0, 16384)) &&
              s3s_is_ok(s3s_buf_init(&sealer.out, 0, 4u << 20)) &&
              (sealer.md5 = EVP_MD_CTX_new()) != NULL &&
              EVP_DigestInit_ex(sealer.md5, EVP_md5(), NULL) == 1;
    uint64_t size = head.size;
    if (!ok) {
        fprintf(stderr, "s3seal migrate: %s: cannot read it (HTTP %ld)\n", key, head.resp.status);
        n->failed++;
        goto out;
    }
    if (s3s_sse_meta_present(s3s_hdrlist_get, &head.resp.headers)) {
        n->current++; /* already encrypted */
        goto out;
    }
    struct s3s_cur b = s3s_cur_from_str(bucket), k = s3s_cur_from_str(key);
    ok = RAND_bytes(dek, sizeof(dek)) == 1 &&
         s3s_is_ok(s3s_keystore_root_current(ks, &version, &root)) &&
         (meta.root_version = version) > 0 && s3s_is_ok(s3s_sse_dek_aad(&meta, b, k, &aad)) &&
         s3s_is_ok(s3s_keystore_seal(root.ptr, s3s_buf_cur(&aad), s3s_cur_from(dek, sizeof(dek)),
                                     &meta.wrapped_dek)) &&
         s3s_is_ok(s3s_sse_segment_aad(&meta, &seg_aad)) &&
         s3s_is_ok(s3s_sse_enc_new(meta.aead, dek, s3s_buf_cur(&seg_aad), meta.segment_size, 0,
                                   size, &sealer.enc)) &&
         s3s_is_ok(s3s_sse_meta_encode(&meta, s3s_hdrlist_emit, &newmeta)) &&
         (sealer.f = tmpfile()) != NULL;
    /* Plaintext in, ciphertext to the temporary file. */
    get.sink = s_seal_data;
    get.sink_ctx = &sealer;
    ok = ok && s3s_is_ok(s3s_cli_request(cfg, "GET", s3s_buf_cur(&head.path), s3s_cur_from(NULL, 0),
                                         NULL, 0, &get)) &&
         get.status == 200;
    if (ok) {
        s3s_buf_reset(&sealer.out);
        ok = s3s_is_ok(s3s_sse_enc_finish(sealer.enc, &sealer.out)) &&
             (sealer.out.len == 0 ||
              fwrite(sealer.out.ptr, 1, sealer.out.len, sealer.f) == sealer.out.len) &&
             fflush(sealer.f) == 0 && fseek(sealer.f, 0, SEEK_SET) == 0;
    }
    struct s3s_sigv4_header h[36];
    size_t nh = 0;
    const char *hn, *hv;
    for (size_t off = 0; ok && nh < 30 && s3s_hdrlist_next(&head.resp.headers, &off, &hn, &hv);) {
        if (s3s_backend_is_object_header(s3s_cur_from_str(hn))) {
            h[nh++] = (struct s3s_sigv4_header){s3s_cur_from_str(hn), s3s_cur_from_str(hv)};
        }
    }
    for (size_t off = 0; ok && nh < 35 && s3s_hdrlist_next(&newmeta, &off, &hn, &hv);) {
        h[nh++] = (struct s3s_sigv4_header){s3s_cur_from_str(hn), s3s_cur_from_str(hv)};
    }
    put.upload = sealer.f;
    put.upload_len = s3s_sse_cipher_size(size, meta.segment_size);
    ok = ok && s3s_is_ok(s3s_cli_request(cfg, "PUT", s3s_buf_cur(&head.path), s3s_cur_from(NULL, 0),
                                         h, nh, &put)) &&
         put.status == 200;
    if (ok) {
        n->rewrapped++;
        s_migrated_entry(ks, bucket, key, size, &sealer, &put);
    } else {
        fprintf(stderr, "s3seal migrate: %s: failed (HTTP %ld)\n", key,
                put.status ? put.status : get.status);
        n->failed++;
    }
out:
    OPENSSL_cleanse(dek, sizeof(dek));
    if (sealer.f) {
        fclose(sealer.f);
    }
    s3s_sse_enc_destroy(sealer.enc);
    EVP_MD_CTX_free(sealer.md5);
    s3s_buf_clean_up(&sealer.out);
    s3s_secret_destroy(&root);
    s3s_sse_meta_clean_up(&meta);
    s3s_cli_head_clean_up(&head);
    s3s_buf_clean_up(&get.headers);
    s3s_buf_clean_up(&put.body);
    s3s_buf_clean_up(&put.headers);
    s3s_buf_clean_up(&aad);
    s3s_buf_clean_up(&seg_aad);
    s3s_buf_clean_up(&newmeta);
}

typedef void s_each_fn(const struct s3s_config *cfg, struct s3s_keystore *ks, const char *bucket,
                       const char *key, struct s_counts *n);

static int s_walk(const struct s3s_config *cfg, int argc, char **argv, const char *verb,
                  s_each_fn *each);

int s3s_cli_rewrap(const struct s3s_config *cfg, int argc, char **argv)
{
    return s_walk(cfg, argc, argv, "rewrap", s_rewrap_one);
}

int s3s_cli_migrate(const struct s3s_config *cfg, int argc, char **argv)
{
    return s_walk(cfg, argc, argv, "migrate", s_migrate_one);
}

static int s_walk(const struct s3s_config *cfg, int argc, char **argv, const char *verb,
                  s_each_fn *each)
{
    char bucket[1024] = "";
    const char *prefix = "";
    if (argc != 2 || !s3s_cli_target(argv[1], bucket, sizeof(bucket), &prefix)) {
        (void)s3s_cli_usage(verb, stderr);
        return 2;
    }
    struct s3s_keystore *ks = s3s_cli_keystore_open(cfg, false);
    if (!ks) {
        return 1;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    struct s_counts n = {0};
    struct s3s_cli_listing list = {0};
    int status = 1;
    if (s3s_is_ok(s3s_cli_list(cfg, verb, bucket, prefix, false, &list))) {
        struct s3s_cli_progress pr;
        s3s_cli_progress_start(&pr, verb, list.n);
        for (size_t i = 0; i < list.n; i++) {
            each(cfg, ks, bucket, list.objs[i].key, &n);
            s3s_cli_progress_step(&pr, i + 1);
        }
        if (each == s_migrate_one) {
            printf("migrate s3://%s/%s: %lu encrypted, %lu already encrypted, %lu failed\n",
                   bucket, prefix, n.rewrapped, n.current, n.failed);
        } else {
            printf("rewrap s3://%s/%s: %lu re-wrapped, %lu already current, %lu not encrypted, "
                   "%lu SSE-KMS (left as they are), %lu failed\n",
                   bucket, prefix, n.rewrapped, n.current, n.plain, n.kms, n.failed);
        }
        status = n.failed ? 1 : 0;
    }
    s3s_cli_listing_free(&list);
    s3s_keystore_close(ks);
    s3s_sigv4_cache_clean_up();
    curl_global_cleanup();
    xmlCleanupParser();
    return status;
}
