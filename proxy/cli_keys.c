/*
 * cli_keys.c - the key-related commands of the `s3seal` command line:
 *   keystore init       create the master key file (if absent) and the keystore
 *   root-key rotate     add a new SSE-S3 root key version
 *   root-key list       list root key versions
 *   decrypt             decrypt an object's ciphertext read straight from the
 *                       backend, given its metadata (the escape hatch: no
 *                       proxy and no backend needed, only the keystore), of
 *                       SSE-S3 and SSE-KMS objects alike
 * The object reader under `decrypt` (s3s_cli_object_decrypt) also serves
 * `catalog rebuild`, which hashes the plaintext instead of writing it.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <json-c/json.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "keystore/audit.h"
#include "keystore/keystore.h"
#include "keystore/kms.h"
#include "proxy/cli.h"
#include "sse/sse.h"

/* Creates the master key file with 32 random bytes, mode 0600, unless it
 * exists. */
static int s_make_master_key(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        if (errno == EEXIST) {
            return 0;
        }
        fprintf(stderr, "s3seal: cannot create master key file %s: %s\n", path, strerror(errno));
        return -1;
    }
    uint8_t key[32];
    int ok = RAND_bytes(key, sizeof(key)) == 1 && write(fd, key, sizeof(key)) == sizeof(key) &&
             fsync(fd) == 0;
    OPENSSL_cleanse(key, sizeof(key));
    close(fd);
    if (!ok) {
        fprintf(stderr, "s3seal: cannot write master key file %s\n", path);
        unlink(path);
        return -1;
    }
    printf("created master key file %s (32 random bytes, mode 0600): back it up; without it "
           "no object can be decrypted\n",
           path);
    return 0;
}

struct s3s_keystore *s3s_cli_keystore_open(const struct s3s_config *cfg, bool create)
{
    struct s3s_keystore *ks = NULL;
    char why[512] = "";
    if (s3s_failed(s3s_keystore_open(cfg->keystore.path, cfg->keystore.master_key_file, create,
                                     &ks, why, sizeof(why)))) {
        fprintf(stderr, "s3seal: %s\n", why[0] ? why : "cannot open the keystore");
        return NULL;
    }
    return ks;
}

/* Progress on a terminal: rows done of the total, now and then. */
static void s_copy_progress(void *ctx, size_t done, size_t total)
{
    (void)ctx;
    if (done == total || done % 64 == 0) {
        fprintf(stderr, "\rcopying: %zu/%zu rows", done, total);
        if (done == total) {
            fputc('\n', stderr);
        }
    }
}

/* `keystore copy --to LOCATION`: the configured keystore into another. */
static int s_keystore_copy(const struct s3s_config *cfg, int argc, char **argv)
{
    if (argc != 3 || strcmp(argv[1], "--to") != 0 || !argv[2][0]) {
        (void)s3s_cli_usage("keystore", stderr);
        return 2;
    }
    struct s3s_keystore *ks = s3s_cli_keystore_open(cfg, false);
    if (!ks) {
        return 1;
    }
    char from[256], to[256], why[512] = "";
    s3s_keystore_location_display(cfg->keystore.path, from, sizeof(from));
    s3s_keystore_location_display(argv[2], to, sizeof(to));
    size_t rows = 0;
    s3s_result r = s3s_keystore_copy(ks, argv[2], isatty(STDERR_FILENO) ? s_copy_progress : NULL,
                                     NULL, &rows, why, sizeof(why));
    s3s_keystore_close(ks);
    if (s3s_failed(r)) {
        fprintf(stderr, "s3seal: keystore copy to %s failed: %s\n", to,
                why[0] ? why : s3s_strerror(r.code));
        return 1;
    }
    printf("copied %zu rows from %s to %s; verified: every row reads back identical (key "
           "material still sealed under the same master key)\n",
           rows, from, to);
    return 0;
}

int s3s_cli_keystore(const struct s3s_config *cfg, int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "copy") == 0) {
        return s_keystore_copy(cfg, argc - 1, argv + 1);
    }
    if (argc != 2 || strcmp(argv[1], "init") != 0) {
        (void)s3s_cli_usage("keystore", stderr);
        return 2;
    }
    if (!cfg->keystore.master_key_file || !cfg->keystore.path) {
        fprintf(stderr, "s3seal: keystore.path and keystore.master_key_file must be set\n");
        return 2;
    }
    if (s_make_master_key(cfg->keystore.master_key_file) != 0) {
        return 1;
    }
    struct s3s_keystore *ks = s3s_cli_keystore_open(cfg, true);
    if (!ks) {
        return 1;
    }
    uint32_t v = 0;
    struct s3s_secret k = {0};
    int status = s3s_is_ok(s3s_keystore_root_current(ks, &v, &k)) ? 0 : 1;
    s3s_secret_destroy(&k);
    if (status == 0) {
        char loc[256];
        s3s_keystore_location_display(cfg->keystore.path, loc, sizeof(loc));
        printf("keystore %s ready; current root key version %u\n", loc, v);
    }
    s3s_keystore_close(ks);
    return status;
}

int s3s_cli_root_key(const struct s3s_config *cfg, int argc, char **argv)
{
    if (argc != 2 || (strcmp(argv[1], "rotate") != 0 && strcmp(argv[1], "list") != 0)) {
        (void)s3s_cli_usage("root-key", stderr);
        return 2;
    }
    struct s3s_keystore *ks = s3s_cli_keystore_open(cfg, false);
    if (!ks) {
        return 1;
    }
    int status = 1;
    if (strcmp(argv[1], "rotate") == 0) {
        uint32_t v = 0;
        if (s3s_is_ok(s3s_keystore_root_rotate(ks, &v))) {
            printf("root key version %u is now current; older versions keep decrypting\n", v);
            status = 0;
        } else {
            fprintf(stderr, "s3seal: root key rotation failed\n");
        }
    } else {
        uint32_t cur = 0;
        struct s3s_secret k = {0};
        if (s3s_is_ok(s3s_keystore_root_current(ks, &cur, &k))) {
            status = 0;
            for (uint32_t v = 1; v <= cur; v++) {
                int64_t at = 0;
                char when[30] = "-";
                if (s3s_is_ok(s3s_keystore_root_created(ks, v, &at))) {
                    s3s_time_format_http(at, when);
                }
                printf("%u\t%s%s\n", v, when, v == cur ? "\tcurrent" : "");
            }
        }
        s3s_secret_destroy(&k);
    }
    s3s_keystore_close(ks);
    return status;
}

/* ---------------------------------------------------------------- decrypt */

/* Metadata from `aws s3api head-object` JSON ("Metadata": {"s3seal-alg": ...})
 * or a flat JSON object of x-amz-meta-* headers. */
struct s_meta_json {
    struct json_object *metadata;
};

static bool s_meta_get(void *ctx, const char *name, struct s3s_cur *value)
{
    struct s_meta_json *m = ctx;
    struct json_object *v = NULL;
    const char *short_name = name + strlen("x-amz-meta-");
    if (!json_object_object_get_ex(m->metadata, short_name, &v) &&
        !json_object_object_get_ex(m->metadata, name, &v)) {
        return false;
    }
    if (!json_object_is_type(v, json_type_string)) {
        return false;
    }
    *value = s3s_cur_from(json_object_get_string(v), (size_t)json_object_get_string_len(v));
    return true;
}

/* Records the escape hatch's use of a KMS key (fail closed: without the
 * record, the key is not used). */
static int s_audit_decrypt(const struct s3s_config *cfg, const struct s3s_sse_meta *meta,
                           const char *verb, const char *bucket, const char *key)
{
    if (!cfg->audit_log) {
        return 0;
    }
    char why[512] = "", who[128], detail[64];
    struct s3s_audit *a = NULL;
    struct s3s_kms_context ctx;
    s3s_kms_context_init(&ctx);
    s3s_result_ignore(s3s_kms_context_parse_json(s3s_buf_cur(&meta->kms_context), &ctx));
    const char *login = getenv("USER");
    snprintf(who, sizeof(who), "s3seal-cli:%s", login ? login : "unknown");
    char arn[2048];
    snprintf(arn, sizeof(arn), "%.*s", (int)meta->kms_key_arn.len,
             (const char *)meta->kms_key_arn.ptr);
    snprintf(detail, sizeof(detail), "s3seal %s", verb);
    struct s3s_audit_record rec = {
        .operation = "Decrypt",
        .result = "Success",
        .principal = who,
        .key_arn = arn,
        .key_version = meta->kms_key_version,
        .bucket = bucket,
        .object = key,
        .context = &ctx,
        .detail = detail,
    };
    int rc = s3s_is_ok(s3s_config_audit_open(cfg, cfg->audit_fsync, &a, why, sizeof(why))) &&
                     s3s_is_ok(s3s_audit_append(a, &rec))
                 ? 0
                 : -1;
    if (rc != 0) {
        fprintf(stderr, "s3seal %s: cannot write the audit record%s%s: the key is not used\n",
                verb, why[0] ? ": " : "", why);
    }
    s3s_audit_close(a);
    s3s_kms_context_clean_up(&ctx);
    return rc;
}

/* More than two parts: the first part's final header, at segment k - 1,
 * must be where the arithmetic puts it (sse.h, s3s_sse_parts_check_k). */
static bool s_k_fits(int fd, const struct s3s_sse_meta *meta, const uint8_t *first_stored,
                     const uint8_t *last_stored, uint64_t size, uint32_t parts)
{
    if (parts <= 2) {
        return true;
    }
    uint8_t first[S3S_SSE_NONCE_LEN], last[S3S_SSE_NONCE_LEN], mid[S3S_SSE_NONCE_LEN];
    s3s_sse_part_header_nonce(meta->part_keys, first_stored, first);
    s3s_sse_part_header_nonce(meta->part_keys, last_stored, last);
    uint32_t s = 0;
    uint64_t k = 0, full = (uint64_t)meta->segment_size + S3S_SSE_PART_OVERHEAD;
    uint8_t stored[S3S_SSE_NONCE_LEN];
    if (s3s_failed(s3s_sse_parts_layout(first, last, size, meta->segment_size, parts, &s, &k)) ||
        pread(fd, stored, sizeof(stored), (off_t)((k - 1) * full)) != (ssize_t)sizeof(stored)) {
        return false;
    }
    s3s_sse_part_header_nonce(meta->part_keys, stored, mid);
    return s3s_is_ok(s3s_sse_parts_check_k(mid, s, k));
}

/* The key that wrapped the object's data key, into kek: a root key version
 * (SSE-S3), or a KMS key's material version - or, with a bucket key, the
 * bucket key it opens (SSE-KMS). The escape hatch is the keystore owner's:
 * no key policy or key state applies (a disabled key's objects stay
 * recoverable), but the use is audited. */
static int s_object_kek(const struct s3s_config *cfg, struct s3s_keystore *ks,
                        const struct s3s_sse_meta *meta, const char *verb, const char *bucket,
                        const char *key, struct s3s_secret *kek)
{
    if (meta->kind == S3S_SSE_KIND_S3) {
        if (s3s_failed(s3s_keystore_root_get(ks, meta->root_version, kek))) {
            fprintf(stderr, "s3seal %s: root key version %u is not in the keystore\n", verb,
                    meta->root_version);
            return -1;
        }
        return 0;
    }
    struct s3s_kms_snapshot *snap = NULL;
    const uint8_t *material = NULL;
    const struct s3s_kms_snap_key *k = NULL;
    struct s3s_buf aad = {0};
    int rc = -1;
    if (s3s_failed(s3s_kms_snapshot_load(ks, true, &snap))) {
        fprintf(stderr, "s3seal %s: cannot read the KMS keys\n", verb);
        goto out;
    }
    k = s3s_kms_snapshot_by_arn(snap, s3s_buf_cur(&meta->kms_key_arn));
    if (!k || s3s_failed(s3s_kms_snap_material(k, meta->kms_key_version, &material))) {
        fprintf(stderr, "s3seal %s: KMS key %.*s version %u is not in the keystore\n", verb,
                (int)meta->kms_key_arn.len, (const char *)meta->kms_key_arn.ptr,
                meta->kms_key_version);
        goto out;
    }
    if (s_audit_decrypt(cfg, meta, verb, bucket, key) != 0) {
        goto out;
    }
    if (!meta->bucket_key.len) {
        rc = s3s_is_ok(s3s_secret_from(material, S3S_KEYSTORE_KEY_LEN, kek)) ? 0 : -1;
        goto out;
    }
    if (s3s_failed(s3s_buf_init(&aad, 0, 32768)) ||
        s3s_failed(s3s_sse_bucket_key_aad(meta, s3s_cur_from_str(bucket), &aad)) ||
        s3s_failed(s3s_keystore_open_sealed(material, s3s_buf_cur(&aad),
                                            s3s_buf_cur(&meta->bucket_key), kek)) ||
        kek->len != S3S_KEYSTORE_KEY_LEN) {
        s3s_secret_destroy(kek);
        fprintf(stderr, "s3seal %s: the bucket key does not unwrap for bucket %s\n", verb,
                bucket);
        goto out;
    }
    rc = 0;
out:
    s3s_buf_clean_up(&aad);
    s3s_kms_snapshot_free(snap);
    return rc;
}

/* The multipart layout of an object being decrypted, told to the decoder
 * and checked against the object's stored headers: its part count (the
 * metadata's, the ETag's or the catalog's) and first part. */
static int s_object_layout(struct s3s_keystore *ks, const struct s3s_sse_meta *meta,
                           const struct s3s_cli_decrypt_opts *o, const struct s3s_secret *dek,
                           struct s3s_sse_dec *dec, uint64_t cipher_len,
                           struct s3s_cli_layout *layout)
{
    uint32_t parts = meta->parts;
    if (!parts && o->etag.len) {
        parts = s3s_sse_meta_parts(meta, o->etag);
    }
    uint32_t first_part = 0;
    if (!parts && meta->catalog) {
        /* parts3: the part count is the keystore catalog's. */
        uint8_t id[S3S_SSE_OBJECT_ID_LEN];
        struct s3s_keystore_object obj;
        bool found = false;
        if (s3s_failed(s3s_sse_object_id(dek->ptr, id)) ||
            s3s_failed(s3s_keystore_object_get(ks, id, &obj, &found)) || !found) {
            fprintf(stderr, "s3seal %s: s3://%s/%s is not in the keystore's catalog: its "
                            "part count is unknown\n",
                    o->verb, o->bucket, o->key);
            return -1;
        }
        if (obj.size != layout->plain_size) {
            fprintf(stderr, "s3seal %s: %s is not the size s3://%s/%s was completed with "
                            "(%llu bytes of plaintext, not %llu)\n",
                    o->verb, o->what, o->bucket, o->key, (unsigned long long)obj.size,
                    (unsigned long long)layout->plain_size);
            return -1;
        }
        parts = obj.parts;
        first_part = obj.first_part;
    }
    if (meta->multipart && parts && s3s_failed(s3s_sse_dec_set_parts(dec, parts))) {
        fprintf(stderr, "s3seal %s: %s is too short for %u parts\n", o->verb, o->what, parts);
        return -1;
    }
    uint64_t full = (uint64_t)meta->segment_size + S3S_SSE_PART_OVERHEAD;
    uint64_t segments = (cipher_len + full - 1) / full;
    layout->parts = meta->multipart ? parts : 0;
    if (s3s_sse_dec_needs_first_part(dec)) {
        /* The first and last stored nonces: the parts must run in order. */
        int fd = fileno(o->in);
        uint8_t first[S3S_SSE_NONCE_LEN], last[S3S_SSE_NONCE_LEN];
        if (pread(fd, first, sizeof(first), 0) != (ssize_t)sizeof(first) ||
            pread(fd, last, sizeof(last), (off_t)((segments - 1) * full)) !=
                (ssize_t)sizeof(last) ||
            s3s_failed(s3s_sse_dec_set_end_nonces(dec, first, last)) ||
            (first_part && s3s_sse_part_header_part(true, first) != first_part) ||
            !s_k_fits(fd, meta, first, last, cipher_len, parts)) {
            fprintf(stderr, "s3seal %s: %s does not hold the object's %u parts in order\n",
                    o->verb, o->what, parts);
            return -1;
        }
    }
    return 0;
}

int s3s_cli_object_decrypt(const struct s3s_config *cfg, struct s3s_keystore *ks,
                           const struct s3s_sse_meta *meta, const struct s3s_cli_decrypt_opts *o)
{
    int status = -1;
    struct s3s_secret kek = {0}, dek = {0};
    struct s3s_sse_dec *dec = NULL;
    struct s3s_buf aad = {0}, seg_aad = {0}, out = {0};
    struct s3s_cli_layout own = {0}, *layout = o->layout ? o->layout : &own;
    uint8_t *chunk = NULL;
    *layout = (struct s3s_cli_layout){0};
    if (s_object_kek(cfg, ks, meta, o->verb, o->bucket, o->key, &kek) != 0) {
        goto out;
    }
    if (s3s_failed(s3s_buf_init(&aad, 0, 16384)) || s3s_failed(s3s_buf_init(&seg_aad, 0, 256)) ||
        s3s_failed(s3s_buf_init(&out, 0, 1u << 20)) ||
        s3s_failed(s3s_sse_dek_aad(meta, s3s_cur_from_str(o->bucket), s3s_cur_from_str(o->key),
                                   &aad)) ||
        s3s_failed(s3s_sse_segment_aad(meta, &seg_aad))) {
        goto out;
    }
    if (s3s_failed(s3s_keystore_open_sealed(kek.ptr, s3s_buf_cur(&aad),
                                            s3s_buf_cur(&meta->wrapped_dek), &dek)) ||
        dek.len != S3S_SSE_KEY_LEN) {
        fprintf(stderr, "s3seal %s: the data key does not unwrap for s3://%s/%s (wrong "
                        "bucket or key name, or tampered metadata)\n",
                o->verb, o->bucket, o->key);
        goto out;
    }
    struct stat st;
    if (fstat(fileno(o->in), &st) != 0 || fseek(o->in, 0, SEEK_SET) != 0) {
        fprintf(stderr, "s3seal %s: %s: %s\n", o->verb, o->what, strerror(errno));
        goto out;
    }
    uint64_t cipher_len = (uint64_t)st.st_size;
    if (s3s_failed(s3s_sse_plain_size_x(cipher_len, meta->segment_size,
                                        s3s_sse_overhead(meta->multipart),
                                        &layout->plain_size)) ||
        s3s_failed(s3s_sse_dec_new(meta->aead, dek.ptr, s3s_buf_cur(&seg_aad),
                                   meta->segment_size, meta->multipart, cipher_len, 0, 0,
                                   layout->plain_size, &dec)) ||
        (meta->part_keys && s3s_failed(s3s_sse_dec_use_part_keys(dec, dek.ptr)))) {
        fprintf(stderr, "s3seal %s: %s has a size no encrypted object can have\n", o->verb,
                o->what);
        goto out;
    }
    if (s_object_layout(ks, meta, o, &dek, dec, cipher_len, layout) != 0) {
        goto out;
    }
    chunk = s3s_malloc(1u << 20);
    if (!chunk) {
        goto out;
    }
    size_t n;
    while ((n = fread(chunk, 1, 1u << 20, o->in)) > 0) {
        s3s_buf_reset(&out);
        if (s3s_failed(s3s_sse_dec_push(dec, s3s_cur_from(chunk, n), &out))) {
            fprintf(stderr, "s3seal %s: %s: integrity check failed: the ciphertext was "
                            "altered\n",
                    o->verb, o->what);
            goto out;
        }
        if (out.len && s3s_failed(o->sink(o->sink_ctx, s3s_buf_cur(&out)))) {
            fprintf(stderr, "s3seal %s: %s: the plaintext could not be written\n", o->verb,
                    o->what);
            goto out;
        }
    }
    if (ferror(o->in) || s3s_failed(s3s_sse_dec_finish(dec))) {
        fprintf(stderr, "s3seal %s: %s: the ciphertext is truncated\n", o->verb, o->what);
        goto out;
    }
    status = 0;
out:
    s3s_free(&chunk);
    s3s_sse_dec_destroy(dec);
    s3s_buf_clean_up(&aad);
    s3s_buf_clean_up(&seg_aad);
    s3s_buf_clean_up_secure(&out);
    s3s_secret_destroy(&dek);
    s3s_secret_destroy(&kek);
    return status;
}

static s3s_result s_write_plain(void *ctx, struct s3s_cur plain)
{
    S3S_ENSURE(fwrite(plain.ptr, 1, plain.len, (FILE *)ctx) == plain.len, S3S_ERR_IO);
    return s3s_ok();
}

int s3s_cli_decrypt(const struct s3s_config *cfg, int argc, char **argv)
{
    const char *bucket = NULL, *key = NULL, *meta_path = NULL, *in_path = NULL, *out_path = NULL;
    static const struct option opts[] = {
        {"bucket", required_argument, NULL, 'b'}, {"key", required_argument, NULL, 'k'},
        {"metadata", required_argument, NULL, 'm'}, {"in", required_argument, NULL, 'i'},
        {"out", required_argument, NULL, 'o'},     {NULL, 0, NULL, 0},
    };
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "b:k:m:i:o:", opts, NULL)) != -1) {
        switch (ch) {
        case 'b':
            bucket = optarg;
            break;
        case 'k':
            key = optarg;
            break;
        case 'm':
            meta_path = optarg;
            break;
        case 'i':
            in_path = optarg;
            break;
        case 'o':
            out_path = optarg;
            break;
        default:
            break;
        }
    }
    if (!bucket || !key || !meta_path || !in_path || !out_path || optind != argc) {
        (void)s3s_cli_usage("decrypt", stderr);
        return 2;
    }

    int status = 1;
    struct json_object *root = json_object_from_file(meta_path);
    struct s3s_sse_meta meta;
    s3s_sse_meta_init(&meta);
    struct s3s_keystore *ks = NULL;
    FILE *in = NULL, *outf = NULL;

    if (!root) {
        fprintf(stderr, "s3seal decrypt: %s is not JSON\n", meta_path);
        goto cleanup;
    }
    struct s_meta_json mj = {root};
    struct json_object *md = NULL;
    if (json_object_object_get_ex(root, "Metadata", &md)) {
        mj.metadata = md;
    }
    if (!s3s_sse_meta_present(s_meta_get, &mj)) {
        fprintf(stderr, "s3seal decrypt: the object has no s3seal metadata (not encrypted)\n");
        goto cleanup;
    }
    if (s3s_failed(s3s_sse_meta_decode(s_meta_get, &mj, &meta))) {
        fprintf(stderr, "s3seal decrypt: the object's s3seal metadata is invalid\n");
        goto cleanup;
    }
    ks = s3s_cli_keystore_open(cfg, false);
    if (!ks) {
        goto cleanup;
    }
    in = fopen(in_path, "rb");
    if (!in) {
        fprintf(stderr, "s3seal decrypt: %s: %s\n", in_path, strerror(errno));
        goto cleanup;
    }
    outf = fopen(out_path, "wb");
    if (!outf) {
        fprintf(stderr, "s3seal decrypt: %s: %s\n", out_path, strerror(errno));
        goto cleanup;
    }
    /* The first layouts' part count is the ETag's. */
    struct json_object *etag = NULL;
    struct s3s_cur etag_cur = {0};
    if (json_object_object_get_ex(root, "ETag", &etag)) {
        etag_cur = s3s_cur_from_str(json_object_get_string(etag));
    }
    struct s3s_cli_decrypt_opts o = {
        .verb = "decrypt",
        .bucket = bucket,
        .key = key,
        .what = in_path,
        .etag = etag_cur,
        .in = in,
        .sink = s_write_plain,
        .sink_ctx = outf,
    };
    status = s3s_cli_object_decrypt(cfg, ks, &meta, &o) == 0 ? 0 : 1;

cleanup:
    if (outf && fclose(outf) != 0) {
        status = 1;
    }
    if (status != 0 && outf) {
        unlink(out_path); /* never leave partial or unverified plaintext behind */
    }
    if (in) {
        fclose(in);
    }
    s3s_keystore_close(ks);
    s3s_sse_meta_clean_up(&meta);
    if (root) {
        json_object_put(root);
    }
    return status;
}
