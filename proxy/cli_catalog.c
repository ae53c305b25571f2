/*
 * cli_catalog.c - `s3seal catalog rebuild|prune`: the catalog's entries
 * (keystore.h) for objects s3seal encrypted, each keyed by bucket, key and
 * the backend's ETag, holding the plaintext size and the ETag S3 would give
 * the plaintext.
 *
 * `catalog rebuild s3://BUCKET[/PREFIX]` gives an entry to every encrypted
 * object that has none (objects stored before the catalog): the bucket is
 * listed (every version if it ever had versioning), each page's entries
 * looked up at once, and each object without one read: its HEAD gives the
 * backend's ETag, its size and metadata. The entry's ETag is the one s3seal
 * answered when it wrote the object (README, "What clients see"): for a
 * PutObject the plaintext's MD5, stored with it (Content-MD5) or, for
 * SSE-S3 with plaintext_etag, computed from the decrypted plaintext; the
 * backend's for SSE-KMS objects without a stored MD5 and for multipart
 * objects (the MD5 of the parts' stored MD5s, "-N", as the parts' ETags the
 * client was given). Every object without a stored MD5 is read and
 * decrypted as `s3seal decrypt` does (every tag and the layout verified; a
 * multipart object's part count must be its ETag's); one that does not
 * decrypt gets no entry and is reported. --force recomputes the entries
 * that exist.
 *
 * `catalog prune s3://BUCKET` removes the entries of objects the backend no
 * longer holds: every version is listed first, and an entry is kept only if
 * its key and ETag are among them.
 */
#include <libxml/parser.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

#include "keystore/keystore.h"
#include "proxy/cli.h"
#include "proxy/proxy.h"
#include "sse/sse.h"

struct s_rebuild {
    const struct s3s_config *cfg;
    struct s3s_keystore *ks;
    const char *bucket;
    unsigned long recorded, already, plain, failed;
};

/* ------------------------------------------------- the plaintext's ETag */

/* An MD5 as 32 lower-case hex digits into out (33 bytes); "" if no memory
 * (no entry takes it). */
static void s_md5_hex(const uint8_t d[16], char *out)
{
    struct s3s_buf b = {0};
    out[0] = '\0';
    if (s3s_is_ok(s3s_buf_init(&b, 0, 64)) && s3s_is_ok(s3s_buf_append_hex(&b, d, 16)) &&
        b.len == 32) {
        memcpy(out, b.ptr, 32);
        out[32] = '\0';
    }
    s3s_buf_clean_up(&b);
}

/* The plaintext's MD5 as it is decrypted (NULL: only verified). */
static s3s_result s_md5_sink(void *ctx, struct s3s_cur plain)
{
    S3S_ENSURE(!ctx || EVP_DigestUpdate(ctx, plain.ptr, plain.len) == 1, S3S_ERR_INTERNAL);
    return s3s_ok();
}

static s3s_result s_to_file(void *ctx, const uint8_t *p, size_t n)
{
    S3S_ENSURE(fwrite(p, 1, n, (FILE *)ctx) == n, S3S_ERR_IO);
    return s3s_ok();
}

/* Reads the object's ciphertext (the version HEAD saw: If-Match) and
 * decrypts it, every tag and the layout verified; with `md5`, hashes the
 * plaintext into it (32 hex digits). */
static int s_verify(struct s_rebuild *rb, const struct s3s_cli_object *obj,
                    const struct s3s_sse_meta *meta, const struct s3s_cli_head *head,
                    const char *what, char *md5)
{
    struct s3s_cur etag = head->etag;
    int status = -1;
    struct s3s_backend_resp get;
    struct s3s_buf quoted = {0};
    struct s3s_cli_layout layout = {0};
    EVP_MD_CTX *h = md5 ? EVP_MD_CTX_new() : NULL;
    FILE *f = tmpfile();
    if (s3s_failed(s3s_backend_resp_init(&get, 65536))) {
        goto out;
    }
    if (!f || (md5 && (!h || EVP_DigestInit_ex(h, EVP_md5(), NULL) != 1)) ||
        s3s_failed(s3s_buf_init(&quoted, 0, 128)) ||
        s3s_failed(s3s_buf_appendf(&quoted, "\"%.*s\"", (int)etag.len, (const char *)etag.ptr))) {
        fprintf(stderr, "s3seal catalog rebuild: %s: no memory or temporary file\n", what);
        goto out;
    }
    struct s3s_sigv4_header if_match = {S3S_CUR_LIT("if-match"), s3s_buf_cur(&quoted)};
    get.sink = s_to_file;
    get.sink_ctx = f;
    if (s3s_failed(s3s_cli_request(rb->cfg, "GET", s3s_buf_cur(&head->path),
                                   s3s_buf_cur(&head->query), &if_match, 1, &get)) ||
        get.status != 200 || fflush(f) != 0) {
        fprintf(stderr, "s3seal catalog rebuild: %s: cannot read it (HTTP %ld)\n", what,
                get.status);
        goto out;
    }
    struct s3s_cli_decrypt_opts o = {
        .verb = "catalog rebuild",
        .bucket = rb->bucket,
        .key = obj->key,
        .what = what,
        .etag = etag,
        .in = f,
        .sink = s_md5_sink,
        .sink_ctx = h,
        .layout = &layout,
    };
    if (s3s_cli_object_decrypt(rb->cfg, rb->ks, meta, &o) != 0) {
        goto out;
    }
    uint32_t etag_parts = s3s_sse_etag_parts(etag);
    if (meta->multipart && (!layout.parts || (etag_parts && etag_parts != layout.parts))) {
        /* A parts3 object's count is its catalog row's: its ETag must agree. */
        fprintf(stderr, "s3seal catalog rebuild: %s: its ETag names %u parts, its layout %u\n",
                what, etag_parts, layout.parts);
        goto out;
    }
    uint8_t d[16];
    unsigned int n = 0;
    if (md5 && (EVP_DigestFinal_ex(h, d, &n) != 1 || n != 16)) {
        goto out;
    }
    if (md5) {
        s_md5_hex(d, md5);
    }
    status = 0;
out:
    if (f) {
        fclose(f);
    }
    EVP_MD_CTX_free(h);
    s3s_backend_resp_clean_up(&get);
    s3s_buf_clean_up(&quoted);
    return status;
}

/* --------------------------------------------------------------- rebuild */

static void s_rebuild_one(struct s_rebuild *rb, const struct s3s_cli_object *obj)
{
    struct s3s_cli_head head;
    struct s3s_sse_meta meta;
    char what[1200];
    snprintf(what, sizeof(what), "s3://%s/%s%s%s", rb->bucket, obj->key,
             obj->version_id ? " version " : "", obj->version_id ? obj->version_id : "");
    s3s_sse_meta_init(&meta);
    if (s3s_failed(s3s_cli_head(rb->cfg, rb->bucket, obj->key, obj->version_id, &head)) ||
        !head.etag.len) {
        fprintf(stderr, "s3seal catalog rebuild: %s: cannot read its metadata (HTTP %ld)\n", what,
                head.resp.status);
        rb->failed++;
        goto out;
    }
    struct s3s_buf *headers = &head.resp.headers;
    if (!s3s_sse_meta_present(s3s_hdrlist_get, headers)) {
        rb->plain++;
        goto out;
    }
    struct s3s_cur etag = head.etag;
    struct s3s_keystore_entry e = {0};
    if (s3s_failed(s3s_sse_meta_decode(s3s_hdrlist_get, headers, &meta)) ||
        s3s_failed(s3s_sse_plain_size_x(head.size, meta.segment_size,
                                        s3s_sse_overhead(meta.multipart), &e.size))) {
        fprintf(stderr, "s3seal catalog rebuild: %s: invalid encryption metadata or size\n",
                what);
        rb->failed++;
        goto out;
    }
    /* The ETag s3seal answers for it: a PutObject's plaintext MD5, the
     * stored one or, for SSE-S3 with plaintext_etag, computed here; else
     * (a multipart object, SSE-KMS) the backend's. */
    bool md5 = !meta.multipart && (meta.has_plain_md5 || (meta.kind == S3S_SSE_KIND_S3 &&
                                                          rb->cfg->plaintext_etag));
    if (md5 && meta.has_plain_md5) {
        s_md5_hex(meta.plain_md5, e.plain_etag);
    } else if (s_verify(rb, obj, &meta, &head, what, md5 ? e.plain_etag : NULL) != 0) {
        rb->failed++;
        goto out;
    } else if (!md5) {
        snprintf(e.plain_etag, sizeof(e.plain_etag), "%.*s", (int)etag.len,
                 (const char *)etag.ptr);
    }
    if (s3s_failed(s3s_keystore_entry_put(rb->ks, s3s_cur_from_str(rb->bucket),
                                          s3s_cur_from_str(obj->key), etag, &e))) {
        fprintf(stderr, "s3seal catalog rebuild: %s: its entry cannot be written\n", what);
        rb->failed++;
        goto out;
    }
    rb->recorded++;
out:
    s3s_sse_meta_clean_up(&meta);
    s3s_cli_head_clean_up(&head);
}

/* One listing page: entries looked up at once, the others rebuilt. */
static int s_rebuild_page(struct s_rebuild *rb, const struct s3s_cli_listing *l, size_t from,
                          size_t to, bool force, struct s3s_cli_progress *pr)
{
    size_t n = to - from;
    struct s3s_keystore_entry_ref *refs = n ? s3s_calloc(n, sizeof(*refs)) : NULL;
    if (n && !refs) {
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        refs[i].key = s3s_cur_from_str(l->objs[from + i].key);
        refs[i].etag = s3s_cur_from_str(l->objs[from + i].etag);
    }
    if (!force && s3s_failed(s3s_keystore_entry_get_many(rb->ks, s3s_cur_from_str(rb->bucket),
                                                         refs, n))) {
        fprintf(stderr, "s3seal catalog rebuild: the keystore cannot be read\n");
        s3s_free(&refs);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if (!force && refs[i].found) {
            rb->already++;
        } else {
            s_rebuild_one(rb, &l->objs[from + i]);
        }
        s3s_cli_progress_step(pr, from + i + 1);
    }
    s3s_free(&refs);
    return 0;
}

static int s_rebuild(const struct s3s_config *cfg, int argc, char **argv)
{
    bool force = false;
    const char *target = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--force") == 0) {
            force = true;
        } else if (!target) {
            target = argv[i];
        } else {
            target = NULL;
            break;
        }
    }
    char bucket[1024];
    const char *prefix = "";
    if (!target || !s3s_cli_target(target, bucket, sizeof(bucket), &prefix)) {
        (void)s3s_cli_usage("catalog", stderr);
        return 2;
    }
    struct s_rebuild rb = {.cfg = cfg, .bucket = bucket};
    struct s3s_cli_listing list = {0};
    bool versions = false;
    if (!(rb.ks = s3s_cli_keystore_open(cfg, false))) {
        return 1;
    }
    if (s3s_failed(s3s_cli_bucket_versioned(cfg, bucket, &versions)) ||
        s3s_failed(s3s_cli_list(cfg, "catalog rebuild", bucket, prefix, versions, &list))) {
        s3s_keystore_close(rb.ks);
        return 1;
    }
    struct s3s_cli_progress pr;
    s3s_cli_progress_start(&pr, "catalog rebuild", list.n);
    int status = 0;
    for (size_t p = 0, from = 0; status == 0 && p < list.n_pages; from = list.pages[p++]) {
        status = s_rebuild_page(&rb, &list, from, list.pages[p], force, &pr);
    }
    s3s_cli_listing_free(&list);
    s3s_keystore_close(rb.ks);
    if (status != 0) {
        return 1;
    }
    printf("catalog rebuild s3://%s/%s: %lu recorded, %lu already recorded, %lu not encrypted, "
           "%lu failed\n",
           bucket, prefix, rb.recorded, rb.already, rb.plain, rb.failed);
    return rb.failed ? 1 : 0;
}

/* ----------------------------------------------------------------- prune */

/* What the listing returned, (key, ETag), as a hash set of its indices. */
struct s_set {
    const struct s3s_cli_listing *l;
    size_t *slots; /* index + 1; 0 is empty */
    size_t mask;
};

static uint64_t s_hash(struct s3s_cur key, struct s3s_cur etag)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < key.len; i++) {
        h = (h ^ key.ptr[i]) * 1099511628211ull;
    }
    h = (h ^ 0) * 1099511628211ull;
    for (size_t i = 0; i < etag.len; i++) {
        h = (h ^ etag.ptr[i]) * 1099511628211ull;
    }
    return h;
}

static bool s_set_has(const struct s_set *s, struct s3s_cur key, struct s3s_cur etag, size_t *slot)
{
    for (size_t i = s_hash(key, etag) & s->mask;; i = (i + 1) & s->mask) {
        *slot = i;
        if (!s->slots[i]) {
            return false;
        }
        const struct s3s_cli_object *o = &s->l->objs[s->slots[i] - 1];
        if (s3s_cur_eq_str(key, o->key) && s3s_cur_eq_str(etag, o->etag)) {
            return true;
        }
    }
}

static s3s_result s_set_init(struct s_set *s, const struct s3s_cli_listing *l)
{
    size_t cap = 16;
    while (cap < 2 * l->n) {
        cap *= 2;
    }
    s->l = l;
    s->mask = cap - 1;
    s->slots = s3s_calloc(cap, sizeof(*s->slots));
    S3S_ENSURE(s->slots, S3S_ERR_NOMEM);
    for (size_t i = 0; i < l->n; i++) {
        size_t slot;
        if (!s_set_has(s, s3s_cur_from_str(l->objs[i].key), s3s_cur_from_str(l->objs[i].etag),
                       &slot)) {
            s->slots[slot] = i + 1;
        }
    }
    return s3s_ok();
}

static bool s_keep(void *ctx, struct s3s_cur bucket, struct s3s_cur key, struct s3s_cur etag)
{
    (void)bucket;
    size_t slot;
    return s_set_has(ctx, key, etag, &slot);
}

static int s_prune(const struct s3s_config *cfg, int argc, char **argv)
{
    char bucket[1024];
    const char *prefix = "";
    if (argc != 2 || !s3s_cli_target(argv[1], bucket, sizeof(bucket), &prefix) || prefix[0]) {
        (void)s3s_cli_usage("catalog", stderr);
        return 2;
    }
    /* Every version: an entry is dropped only for what the backend holds
     * under no version at all. */
    struct s3s_cli_listing list = {0};
    struct s3s_keystore *ks = s3s_cli_keystore_open(cfg, false);
    if (!ks) {
        return 1;
    }
    if (s3s_failed(s3s_cli_list(cfg, "catalog prune", bucket, "", true, &list))) {
        s3s_keystore_close(ks);
        return 1;
    }
    struct s_set set = {0};
    size_t removed = 0;
    int status = 1;
    if (s3s_failed(s_set_init(&set, &list))) {
        fprintf(stderr, "s3seal catalog prune: out of memory\n");
    } else if (s3s_failed(s3s_keystore_entry_prune(ks, s3s_cur_from_str(bucket), s_keep, &set,
                                                   &removed))) {
        fprintf(stderr, "s3seal catalog prune: the keystore failed (%zu entries removed)\n",
                removed);
    } else {
        printf("catalog prune s3://%s: %zu entries removed, %zu objects (versions) on the "
               "backend\n",
               bucket, removed, list.n);
        status = 0;
    }
    s3s_free(&set.slots);
    s3s_cli_listing_free(&list);
    s3s_keystore_close(ks);
    return status;
}

int s3s_cli_catalog(const struct s3s_config *cfg, int argc, char **argv)
{
    bool rebuild = argc >= 2 && strcmp(argv[1], "rebuild") == 0;
    bool prune = argc >= 2 && strcmp(argv[1], "prune") == 0;
    if (!rebuild && !prune) {
        (void)s3s_cli_usage("catalog", stderr);
        return 2;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int status = rebuild ? s_rebuild(cfg, argc - 1, argv + 1) : s_prune(cfg, argc - 1, argv + 1);
    s3s_sigv4_cache_clean_up();
    curl_global_cleanup();
    xmlCleanupParser();
    return status;
}
