/*
 * keystore.c - the keystore (on one of the back ends of store.h) and its
 * sealing: every key stored in it is AES-256-GCM-sealed under the master
 * key, with the row's identity ("root-key:<version>") as associated data so
 * a sealed key cannot be moved to another row; the back end only ever sees
 * sealed bytes. A sealed check value tells a wrong master key apart from a
 * corrupt keystore at open time. Buckets' default encryption (the
 * PutBucketEncryption API) is a table of plain settings beside the keys,
 * and so is the upload registry (bucket, key and backend upload id of an
 * encrypted multipart upload -> the suffix of s3seal's upload id). The KMS
 * keys' tables are created with the others (so an older keystore gains them
 * when it is opened) and used by kms.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "keystore/keystore.h"
#include "keystore/keystore_private.h"

#define S_NONCE 12
#define S_TAG 16
#define S_CHECK_TEXT "s3seal keystore v1"

void s3s_keystore__why(char *why, size_t len, const char *fmt, ...)
{
    if (!why || !len) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, len, fmt, ap);
    va_end(ap);
}

/* ---------------------------------------------------------------- sealing */

s3s_result s3s_keystore_seal(const uint8_t key[32], struct s3s_cur aad, struct s3s_cur plain,
                             struct s3s_buf *out)
{
    S3S_ENSURE(plain.len < INT32_MAX && aad.len < INT32_MAX, S3S_ERR_INVALID_ARG);
    S3S_GUARD(s3s_buf_reserve(out, S_NONCE + plain.len + S_TAG));
    uint8_t *nonce = out->ptr + out->len;
    uint8_t *ct = nonce + S_NONCE;
    S3S_ENSURE(RAND_bytes(nonce, S_NONCE) == 1, S3S_ERR_INTERNAL);
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    S3S_ENSURE(c != NULL, S3S_ERR_NOMEM);
    int n = 0, fin = 0;
    bool ok = EVP_EncryptInit_ex(c, EVP_aes_256_gcm(), NULL, key, nonce) == 1 &&
              (aad.len == 0 || EVP_EncryptUpdate(c, NULL, &n, aad.ptr, (int)aad.len) == 1) &&
              (plain.len == 0 || EVP_EncryptUpdate(c, ct, &n, plain.ptr, (int)plain.len) == 1) &&
              EVP_EncryptFinal_ex(c, ct + plain.len, &fin) == 1 &&
              EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_GET_TAG, S_TAG, ct + plain.len) == 1;
    EVP_CIPHER_CTX_free(c);
    S3S_ENSURE(ok, S3S_ERR_INTERNAL);
    out->len += S_NONCE + plain.len + S_TAG;
    return s3s_ok();
}

s3s_result s3s_keystore_open_sealed(const uint8_t key[32], struct s3s_cur aad,
                                    struct s3s_cur sealed, struct s3s_secret *out)
{
    S3S_ENSURE(sealed.len >= S_NONCE + S_TAG && sealed.len < INT32_MAX, S3S_ERR_KEY_UNWRAP);
    size_t plen = sealed.len - S_NONCE - S_TAG;
    S3S_GUARD(s3s_secret_new(plen, out));
    const uint8_t *nonce = sealed.ptr;
    const uint8_t *ct = nonce + S_NONCE;
    uint8_t tag[S_TAG];
    memcpy(tag, ct + plen, S_TAG);
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    if (!c) {
        s3s_secret_destroy(out);
        S3S_BAIL(S3S_ERR_NOMEM);
    }
    int n = 0, fin = 0;
    bool ok = EVP_DecryptInit_ex(c, EVP_aes_256_gcm(), NULL, key, nonce) == 1 &&
              (aad.len == 0 || EVP_DecryptUpdate(c, NULL, &n, aad.ptr, (int)aad.len) == 1) &&
              (plen == 0 || EVP_DecryptUpdate(c, out->ptr, &n, ct, (int)plen) == 1) &&
              EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_SET_TAG, S_TAG, tag) == 1 &&
              EVP_DecryptFinal_ex(c, out->ptr + plen, &fin) == 1;
    EVP_CIPHER_CTX_free(c);
    if (!ok) {
        s3s_secret_destroy(out);
        S3S_BAIL(S3S_ERR_KEY_UNWRAP);
    }
    return s3s_ok();
}

/* ------------------------------------------------------------ master key */

static s3s_result s_read_master(const char *file, struct s3s_secret *out, char *why,
                                size_t why_len)
{
    int fd = open(file, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        s3s_keystore__why(why, why_len,
                          "master key file %s: %s (create one with `s3seal keystore init`)", file,
                          strerror(errno));
        S3S_BAIL(S3S_ERR_KEYSTORE);
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        s3s_keystore__why(why, why_len, "master key file %s: not a regular file", file);
        S3S_BAIL(S3S_ERR_KEYSTORE);
    }
    if (st.st_mode & (S_IRWXG | S_IRWXO)) {
        close(fd);
        s3s_keystore__why(why, why_len,
                          "master key file %s: readable by group or others (chmod 600 it)", file);
        S3S_BAIL(S3S_ERR_KEYSTORE);
    }
    if (st.st_size != S3S_KEYSTORE_KEY_LEN) {
        close(fd);
        s3s_keystore__why(why, why_len,
                          "master key file %s: must hold exactly 32 bytes, holds %lld", file,
                          (long long)st.st_size);
        S3S_BAIL(S3S_ERR_KEYSTORE);
    }
    s3s_result r = s3s_secret_new(S3S_KEYSTORE_KEY_LEN, out);
    if (s3s_failed(r)) {
        close(fd);
        return r;
    }
    ssize_t got = read(fd, out->ptr, S3S_KEYSTORE_KEY_LEN);
    close(fd);
    uint8_t any = 0;
    for (size_t i = 0; i < S3S_KEYSTORE_KEY_LEN; i++) {
        any |= out->ptr[i];
    }
    if (got != S3S_KEYSTORE_KEY_LEN || any == 0) {
        s3s_secret_destroy(out);
        s3s_keystore__why(why, why_len, "master key file %s: unreadable or all zeros (a weak key)",
                          file);
        S3S_BAIL(S3S_ERR_KEYSTORE);
    }
    return s3s_ok();
}

/* ---------------------------------------------------------- transactions */

s3s_result s3s_keystore__result(struct s3s_keystore *ks, s3s_result res)
{
    if (res.code == S3S_ERR_KEYSTORE && ks->store->ops->unreachable(ks->store)) {
        return s3s_err(S3S_ERR_KEYSTORE_UNAVAILABLE);
    }
    return res;
}

s3s_result s3s_keystore__begin(struct s3s_keystore *ks, enum s3s_store_txn kind)
{
    return s3s_keystore__result(ks, s3s_store_begin(ks->store, kind));
}

s3s_result s3s_keystore__txn_end(struct s3s_keystore *ks, s3s_result res)
{
    if (s3s_is_ok(res)) {
        res = s3s_store_commit(ks->store);
    }
    if (s3s_failed(res)) {
        s3s_store_rollback(ks->store); /* the first error is what matters */
    }
    return s3s_keystore__result(ks, res);
}

/* Ends a write transaction begun around one statement: COMMIT when the
 * statement ran to its end (rc DONE), else ROLLBACK; the statement is
 * finalised first either way. */
static s3s_result s_txn_end(struct s3s_keystore *ks, struct s3s_store_stmt *st,
                            enum s3s_store_rc rc)
{
    s3s_store_finalize(st);
    return s3s_keystore__txn_end(ks, rc == S3S_STORE_DONE
                                         ? s3s_ok()
                                         : s3s_err(s3s_store_rc_error(rc, S3S_ERR_KEYSTORE)));
}

s3s_result s3s_keystore__new_sealed_key(const struct s3s_keystore *ks, const char *aad,
                                        struct s3s_buf *sealed)
{
    struct s3s_secret key = {0};
    S3S_GUARD(s3s_secret_new(S3S_KEYSTORE_KEY_LEN, &key));
    s3s_result res = RAND_bytes(key.ptr, S3S_KEYSTORE_KEY_LEN) == 1
                         ? s3s_keystore_seal(ks->master.ptr, s3s_cur_from_str(aad),
                                             s3s_cur_from(key.ptr, key.len), sealed)
                         : s3s_err(S3S_ERR_INTERNAL);
    s3s_secret_destroy(&key);
    return res;
}

s3s_result s3s_keystore__open_key(const struct s3s_keystore *ks, const char *aad,
                                  struct s3s_cur sealed, struct s3s_secret *out)
{
    S3S_GUARD(s3s_keystore_open_sealed(ks->master.ptr, s3s_cur_from_str(aad), sealed, out));
    if (out->len != S3S_KEYSTORE_KEY_LEN) {
        s3s_secret_destroy(out);
        S3S_BAIL(S3S_ERR_KEY_UNWRAP);
    }
    return s3s_ok();
}

static void s_aad_root(uint32_t version, char out[32])
{
    snprintf(out, 32, "root-key:%u", version);
}

/* Inserts root key `version` (fresh random key) inside the caller's
 * transaction. */
static s3s_result s_insert_root(struct s3s_keystore *ks, uint32_t version)
{
    struct s3s_buf sealed = {0};
    struct s3s_store_stmt *st = NULL;
    char aad[32];
    s_aad_root(version, aad);
    s3s_result res = s3s_buf_init(&sealed, 64, 256);
    if (s3s_is_ok(res)) {
        res = s3s_keystore__new_sealed_key(ks, aad, &sealed);
    }
    if (s3s_is_ok(res)) {
        res = s3s_store_prepare(
            ks->store, "INSERT INTO root_keys(version, created, sealed) VALUES (?, ?, ?)", &st);
    }
    if (s3s_is_ok(res)) {
        s3s_store_bind_int64(st, 1, version);
        s3s_store_bind_int64(st, 2, (int64_t)time(NULL));
        s3s_store_bind_blob(st, 3, sealed.ptr, sealed.len);
        enum s3s_store_rc rc = s3s_store_step(st);
        res = rc == S3S_STORE_DONE ? s3s_ok() : s3s_err(s3s_store_rc_error(rc, S3S_ERR_KEYSTORE));
    }
    s3s_store_finalize(st);
    s3s_buf_clean_up(&sealed);
    return res;
}

static s3s_result s_max_version(struct s3s_keystore *ks, uint32_t *out)
{
    struct s3s_store_stmt *st = NULL;
    S3S_GUARD(s3s_store_prepare(ks->store, "SELECT COALESCE(MAX(version), 0) FROM root_keys",
                                &st));
    enum s3s_store_rc rc = s3s_store_step(st);
    if (rc == S3S_STORE_ROW) {
        *out = (uint32_t)s3s_store_column_int64(st, 0);
    }
    s3s_store_finalize(st);
    S3S_ENSURE(rc == S3S_STORE_ROW, s3s_store_rc_error(rc, S3S_ERR_KEYSTORE));
    return s3s_ok();
}

/* Whether the check value opens under this keystore's master key. */
static bool s_check_opens(const struct s3s_keystore *ks, struct s3s_cur sealed)
{
    struct s3s_secret check = {0};
    s3s_result r = s3s_keystore_open_sealed(ks->master.ptr, S3S_CUR_LIT("check"), sealed, &check);
    bool match = s3s_is_ok(r) && check.len == sizeof(S_CHECK_TEXT) - 1 &&
                 memcmp(check.ptr, S_CHECK_TEXT, check.len) == 0;
    s3s_secret_destroy(&check);
    return match;
}

/* Reads the check value: *found tells whether there is one, *match whether
 * it opens under this master key. */
static s3s_result s_read_check(struct s3s_keystore *ks, bool *found, bool *match)
{
    struct s3s_store_stmt *st = NULL;
    S3S_GUARD(s3s_store_prepare(ks->store, "SELECT value FROM meta WHERE name = 'check'", &st));
    enum s3s_store_rc rc = s3s_store_step(st);
    *found = rc == S3S_STORE_ROW;
    *match = *found && s_check_opens(ks, s3s_store_column_cur(st, 0));
    s3s_store_finalize(st);
    S3S_ENSURE(rc == S3S_STORE_ROW || rc == S3S_STORE_DONE,
               s3s_store_rc_error(rc, S3S_ERR_KEYSTORE));
    return s3s_ok();
}

/* A new keystore, under the write lock: the check value and root key
 * version 1. Another process may have made them meanwhile: then its check
 * value is the one that must open. */
static s3s_result s_init(struct s3s_keystore *ks, bool *match)
{
    bool found = false;
    S3S_GUARD(s_read_check(ks, &found, match));
    if (found) {
        return s3s_ok();
    }
    struct s3s_buf sealed = {0};
    struct s3s_store_stmt *st = NULL;
    s3s_result res = s3s_buf_init(&sealed, 64, 256);
    if (s3s_is_ok(res)) {
        res = s3s_keystore_seal(ks->master.ptr, S3S_CUR_LIT("check"), S3S_CUR_LIT(S_CHECK_TEXT),
                                &sealed);
    }
    if (s3s_is_ok(res)) {
        res = s3s_store_prepare(ks->store, "INSERT INTO meta(name, value) VALUES ('check', ?)",
                                &st);
    }
    if (s3s_is_ok(res)) {
        s3s_store_bind_blob(st, 1, sealed.ptr, sealed.len);
        enum s3s_store_rc rc = s3s_store_step(st);
        res = rc == S3S_STORE_DONE ? s3s_ok() : s3s_err(s3s_store_rc_error(rc, S3S_ERR_KEYSTORE));
    }
    s3s_store_finalize(st);
    s3s_buf_clean_up(&sealed);
    uint32_t max = 0;
    if (s3s_is_ok(res)) {
        res = s_max_version(ks, &max);
    }
    if (s3s_is_ok(res) && max == 0) {
        res = s_insert_root(ks, 1);
    }
    if (s3s_is_ok(res)) {
        res = ks->store->ops->announce(ks->store, S3S_KEYSTORE_CHANGED_ROOT);
    }
    *match = s3s_is_ok(res);
    return res;
}

/* First open of a new keystore: the check value and root key version 1; an
 * existing one: the check value must open under this master key. */
s3s_result s3s_keystore__init_or_check(struct s3s_keystore *ks, bool create, char *why,
                                        size_t why_len)
{
    bool found = false, match = false;
    s3s_result r = s3s_keystore__result(ks, s_read_check(ks, &found, &match));
    if (s3s_is_ok(r) && !found && !create) {
        /* A database (or file) that holds no keystore yet. */
        s3s_keystore__why(why, why_len,
                          "the keystore is not initialised (`s3seal keystore init` makes it)");
        S3S_BAIL(S3S_ERR_KEYSTORE);
    }
    if (s3s_is_ok(r) && !found) {
        r = s3s_keystore__begin(ks, S3S_STORE_WRITE);
        if (s3s_is_ok(r)) {
            r = s3s_keystore__txn_end(ks, s_init(ks, &match));
        }
        if (s3s_failed(r)) {
            s3s_keystore__why(why, why_len, "cannot initialise the keystore: %s",
                              ks->store->ops->errmsg(ks->store));
            return r;
        }
    }
    if (s3s_failed(r)) {
        s3s_keystore__why(why, why_len, "cannot read the keystore: %s",
                          ks->store->ops->errmsg(ks->store));
        return r;
    }
    if (!match) {
        s3s_keystore__why(why, why_len,
                          "the master key does not open this keystore (wrong master key?)");
        S3S_BAIL(S3S_ERR_KEY_UNWRAP);
    }
    return s3s_ok();
}

s3s_result s3s_keystore__open_store(const char *location, const struct s3s_secret *master,
                                    bool create, struct s3s_keystore **out, char *why,
                                    size_t why_len)
{
    *out = NULL;
    struct s3s_keystore *ks = s3s_calloc(1, sizeof(*ks));
    S3S_ENSURE(ks != NULL, S3S_ERR_NOMEM);
    s3s_result r = s3s_secret_new(master->len, &ks->master);
    if (s3s_failed(r)) {
        s3s_free(&ks);
        return r;
    }
    memcpy(ks->master.ptr, master->ptr, master->len);
    r = s3s_store_open(location, create, &ks->store, why, why_len);
    if (s3s_is_ok(r)) {
        r = s3s_keystore__result(ks, ks->store->ops->schema(ks->store));
        if (s3s_failed(r)) {
            char loc[256];
            s3s_store_location_display(location, loc, sizeof(loc));
            s3s_keystore__why(why, why_len, "keystore %s: %s", loc,
                              ks->store->ops->errmsg(ks->store));
        }
    }
    if (s3s_failed(r)) {
        s3s_keystore_close(ks);
        return r;
    }
    *out = ks;
    return s3s_ok();
}

s3s_result s3s_keystore_open(const char *path, const char *master_key_file, bool create,
                             struct s3s_keystore **out, char *why, size_t why_len)
{
    S3S_ENSURE_REF(out);
    *out = NULL;
    if (!path || !master_key_file) {
        s3s_keystore__why(why, why_len, "keystore.path and keystore.master_key_file must be set");
        S3S_BAIL(S3S_ERR_KEYSTORE);
    }
    struct s3s_secret master = {0};
    S3S_GUARD(s_read_master(master_key_file, &master, why, why_len));
    struct s3s_keystore *ks = NULL;
    s3s_result r = s3s_keystore__open_store(path, &master, create, &ks, why, why_len);
    s3s_secret_destroy(&master);
    if (s3s_is_ok(r)) {
        r = s3s_keystore__init_or_check(ks, create, why, why_len);
    }
    if (s3s_failed(r)) {
        s3s_keystore_close(ks);
        return r;
    }
    *out = ks;
    return s3s_ok();
}

void s3s_keystore_close(struct s3s_keystore *ks)
{
    if (!ks) {
        return;
    }
    s3s_store_close(ks->store);
    s3s_secret_destroy(&ks->master);
    s3s_free(&ks);
}

void s3s_keystore_location_display(const char *location, char *out, size_t len)
{
    s3s_store_location_display(location, out, len);
}

const char *s3s_keystore_backend(const struct s3s_keystore *ks)
{
    return ks ? ks->store->ops->name : "";
}

/* ---------------------------------------------------------- change notices */

s3s_result s3s_keystore_listen(struct s3s_keystore *ks, int *fd)
{
    S3S_ENSURE(ks && fd, S3S_ERR_INVALID_ARG);
    *fd = -1;
    return s3s_keystore__result(ks, ks->store->ops->listen(ks->store, fd));
}

s3s_result s3s_keystore_changes(struct s3s_keystore *ks, unsigned *what, int *fd)
{
    S3S_ENSURE(ks && what && fd, S3S_ERR_INVALID_ARG);
    *what = 0;
    return s3s_keystore__result(ks, ks->store->ops->notices(ks->store, what, fd));
}

s3s_result s3s_keystore_wait_changes(struct s3s_keystore *ks, int timeout_ms, unsigned *what)
{
    S3S_ENSURE(ks && what, S3S_ERR_INVALID_ARG);
    *what = 0;
    int fd = -1;
    S3S_GUARD(s3s_keystore_listen(ks, &fd));
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        S3S_GUARD(s3s_keystore_changes(ks, what, &fd));
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        int64_t spent = (now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000;
        if (*what || spent >= timeout_ms) {
            return s3s_ok();
        }
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int n = poll(&p, 1, (int)(timeout_ms - spent));
        S3S_ENSURE(n >= 0 || errno == EINTR, S3S_ERR_IO);
    }
}

/* --------------------------------------------------------------- root keys */

s3s_result s3s_keystore_root_get(struct s3s_keystore *ks, uint32_t version, struct s3s_secret *key)
{
    S3S_ENSURE_REF(ks);
    struct s3s_store_stmt *st = NULL;
    S3S_GUARD(s3s_store_prepare(ks->store, "SELECT sealed FROM root_keys WHERE version = ?", &st));
    s3s_store_bind_int64(st, 1, version);
    enum s3s_store_rc rc = s3s_store_step(st);
    if (rc != S3S_STORE_ROW) {
        s3s_store_finalize(st);
        return s3s_keystore__result(
            ks, s3s_err(rc == S3S_STORE_DONE ? S3S_ERR_KEY_NOT_FOUND
                                             : s3s_store_rc_error(rc, S3S_ERR_KEYSTORE)));
    }
    char aad[32];
    s_aad_root(version, aad);
    s3s_result r = s3s_keystore__open_key(ks, aad, s3s_store_column_cur(st, 0), key);
    s3s_store_finalize(st);
    return r;
}

s3s_result s3s_keystore_root_current(struct s3s_keystore *ks, uint32_t *version,
                                     struct s3s_secret *key)
{
    S3S_ENSURE_REF(ks);
    uint32_t v = 0;
    S3S_GUARD(s3s_keystore__result(ks, s_max_version(ks, &v)));
    S3S_ENSURE(v > 0, S3S_ERR_KEY_NOT_FOUND);
    S3S_GUARD(s3s_keystore_root_get(ks, v, key));
    *version = v;
    return s3s_ok();
}

/* Adds version newest+1 when the newest is at least max_age_s old (always for
 * a negative age). Under the write lock: concurrent rotations serialise
 * instead of both taking the same version number. */
static s3s_result s_rotate(struct s3s_keystore *ks, int64_t max_age_s, bool *rotated,
                           uint32_t *version)
{
    S3S_ENSURE_REF(ks);
    *rotated = false;
    S3S_GUARD(s3s_keystore__begin(ks, S3S_STORE_WRITE));
    uint32_t v = 0;
    int64_t created = 0;
    s3s_result r = s_max_version(ks, &v);
    if (s3s_is_ok(r)) {
        r = s3s_keystore_root_created(ks, v, &created);
    }
    if (s3s_is_ok(r) && (max_age_s < 0 || (int64_t)time(NULL) - created >= max_age_s)) {
        r = s_insert_root(ks, v + 1);
        if (s3s_is_ok(r)) {
            r = ks->store->ops->announce(ks->store, S3S_KEYSTORE_CHANGED_ROOT);
        }
        *rotated = s3s_is_ok(r);
        *version = v + 1;
    }
    r = s3s_keystore__txn_end(ks, r);
    if (s3s_failed(r)) {
        *rotated = false;
    }
    return r;
}

s3s_result s3s_keystore_root_rotate_if_older(struct s3s_keystore *ks, int64_t max_age_s,
                                            bool *rotated)
{
    uint32_t v = 0;
    return s_rotate(ks, max_age_s < 0 ? 0 : max_age_s, rotated, &v);
}

s3s_result s3s_keystore_root_rotate(struct s3s_keystore *ks, uint32_t *new_version)
{
    bool rotated = false;
    S3S_GUARD(s_rotate(ks, -1, &rotated, new_version));
    S3S_ENSURE(rotated, S3S_ERR_KEYSTORE);
    return s3s_ok();
}

s3s_result s3s_keystore_root_created(struct s3s_keystore *ks, uint32_t version, int64_t *at)
{
    S3S_ENSURE_REF(ks);
    struct s3s_store_stmt *st = NULL;
    S3S_GUARD(s3s_store_prepare(ks->store, "SELECT created FROM root_keys WHERE version = ?",
                                &st));
    s3s_store_bind_int64(st, 1, version);
    enum s3s_store_rc rc = s3s_store_step(st);
    if (rc == S3S_STORE_ROW) {
        *at = s3s_store_column_int64(st, 0);
    }
    s3s_store_finalize(st);
    if (rc != S3S_STORE_ROW) {
        return s3s_keystore__result(ks, s3s_err(rc == S3S_STORE_DONE
                                                    ? S3S_ERR_KEY_NOT_FOUND
                                                    : s3s_store_rc_error(rc, S3S_ERR_KEYSTORE)));
    }
    return s3s_ok();
}

/* ------------------------------------------- buckets' default encryption */

void s3s_keystore_bucket_enc_free(struct s3s_keystore_bucket_enc *list, size_t n)
{
    for (size_t i = 0; list && i < n; i++) {
        s3s_free(&list[i].bucket);
        s3s_free(&list[i].algorithm);
        s3s_free(&list[i].kms_key_id);
    }
    s3s_free(&list);
}

s3s_result s3s_keystore__column_text(struct s3s_store_stmt *st, int col, char **out)
{
    *out = NULL;
    if (s3s_store_column_null(st, col)) {
        return s3s_ok();
    }
    struct s3s_cur t = s3s_store_column_cur(st, col);
    *out = s3s_strndup((const char *)t.ptr, t.len);
    S3S_ENSURE(*out != NULL, S3S_ERR_NOMEM);
    return s3s_ok();
}

static s3s_result s_bucket_enc_rows(struct s3s_keystore *ks, struct s3s_keystore_bucket_enc **out,
                                    size_t *n)
{
    struct s3s_store_stmt *st = NULL;
    S3S_GUARD(s3s_store_prepare(ks->store,
                                "SELECT bucket, algorithm, kms_key_id, bucket_key, updated "
                                "FROM bucket_encryption ORDER BY bucket",
                                &st));
    s3s_result res = s3s_ok();
    struct s3s_keystore_bucket_enc *list = NULL;
    size_t len = 0, cap = 0;
    enum s3s_store_rc rc = S3S_STORE_DONE;
    while (s3s_is_ok(res) && (rc = s3s_store_step(st)) == S3S_STORE_ROW) {
        if (len == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            struct s3s_keystore_bucket_enc *nl = s3s_realloc(list, ncap * sizeof(*nl));
            if (!nl) {
                res = s3s_err(S3S_ERR_NOMEM);
                break;
            }
            list = nl;
            cap = ncap;
        }
        struct s3s_keystore_bucket_enc *e = &list[len++];
        memset(e, 0, sizeof(*e));
        e->bucket_key = s3s_store_column_int64(st, 3) != 0;
        e->updated = s3s_store_column_int64(st, 4);
        if (s3s_is_ok(res = s3s_keystore__column_text(st, 0, &e->bucket)) &&
            s3s_is_ok(res = s3s_keystore__column_text(st, 1, &e->algorithm)) &&
            s3s_is_ok(res = s3s_keystore__column_text(st, 2, &e->kms_key_id))) {
            /* NOT NULL columns; a NULL here is a damaged file. */
            res = e->bucket && e->algorithm ? s3s_ok() : s3s_err(S3S_ERR_KEYSTORE);
        }
    }
    if (s3s_is_ok(res) && rc != S3S_STORE_DONE) {
        res = s3s_err(s3s_store_rc_error(rc, S3S_ERR_KEYSTORE));
    }
    s3s_store_finalize(st);
    if (s3s_failed(res)) {
        s3s_keystore_bucket_enc_free(list, len);
        return res;
    }
    *out = list;
    *n = len;
    return s3s_ok();
}

s3s_result s3s_keystore_bucket_enc_list(struct s3s_keystore *ks,
                                        struct s3s_keystore_bucket_enc **out, size_t *n)
{
    S3S_ENSURE_REF(ks);
    S3S_ENSURE_REF(out);
    S3S_ENSURE_REF(n);
    *out = NULL;
    *n = 0;
    /* One statement, so one snapshot even while another server writes. */
    return s3s_keystore__result(ks, s_bucket_enc_rows(ks, out, n));
}

s3s_result s3s_keystore_bucket_enc_put(struct s3s_keystore *ks, const char *bucket,
                                       const char *algorithm, const char *kms_key_id,
                                       bool bucket_key)
{
    S3S_ENSURE_REF(ks);
    S3S_ENSURE(bucket && algorithm, S3S_ERR_INVALID_ARG);
    struct s3s_store_stmt *st = NULL;
    enum s3s_store_rc rc = S3S_STORE_ERROR;
    S3S_GUARD(s3s_keystore__begin(ks, S3S_STORE_WRITE));
    if (s3s_is_ok(s3s_store_prepare(
            ks->store,
            "INSERT INTO bucket_encryption(bucket, algorithm, kms_key_id, bucket_key, updated) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT(bucket) DO UPDATE SET "
            "algorithm = excluded.algorithm, kms_key_id = excluded.kms_key_id, "
            "bucket_key = excluded.bucket_key, updated = excluded.updated",
            &st))) {
        s3s_store_bind_str(st, 1, bucket);
        s3s_store_bind_str(st, 2, algorithm);
        if (kms_key_id) {
            s3s_store_bind_str(st, 3, kms_key_id);
        } else {
            s3s_store_bind_null(st, 3);
        }
        s3s_store_bind_int64(st, 4, bucket_key ? 1 : 0);
        s3s_store_bind_int64(st, 5, (int64_t)time(NULL));
        rc = s3s_store_step(st);
    }
    if (rc == S3S_STORE_DONE &&
        s3s_failed(ks->store->ops->announce(ks->store, S3S_KEYSTORE_CHANGED_BUCKET))) {
        rc = S3S_STORE_ERROR;
    }
    return s_txn_end(ks, st, rc);
}

/* Removes a bucket's row of a per-bucket settings table (`sql` deletes by
 * bucket), announcing the change; *removed tells whether there was one. */
static s3s_result s_bucket_row_delete(struct s3s_keystore *ks, const char *sql, const char *bucket,
                                      bool *removed)
{
    S3S_ENSURE_REF(ks);
    S3S_ENSURE_REF(bucket);
    S3S_ENSURE_REF(removed);
    *removed = false;
    struct s3s_store_stmt *st = NULL;
    enum s3s_store_rc rc = S3S_STORE_ERROR;
    S3S_GUARD(s3s_keystore__begin(ks, S3S_STORE_WRITE));
    if (s3s_is_ok(s3s_store_prepare(ks->store, sql, &st))) {
        s3s_store_bind_str(st, 1, bucket);
        rc = s3s_store_step(st);
        *removed = rc == S3S_STORE_DONE && s3s_store_changes(st) > 0;
    }
    if (*removed && s3s_failed(ks->store->ops->announce(ks->store, S3S_KEYSTORE_CHANGED_BUCKET))) {
        rc = S3S_STORE_ERROR;
    }
    s3s_result res = s_txn_end(ks, st, rc);
    if (s3s_failed(res)) {
        *removed = false;
    }
    return res;
}

s3s_result s3s_keystore_bucket_enc_delete(struct s3s_keystore *ks, const char *bucket,
                                          bool *removed)
{
    return s_bucket_row_delete(ks, "DELETE FROM bucket_encryption WHERE bucket = ?", bucket,
                               removed);
}

/* ------------------------------------------- buckets' CORS configurations */

void s3s_keystore_bucket_cors_free(struct s3s_keystore_bucket_cors *list, size_t n)
{
    for (size_t i = 0; list && i < n; i++) {
        s3s_free(&list[i].bucket);
        s3s_free(&list[i].config);
    }
    s3s_free(&list);
}

static s3s_result s_bucket_cors_rows(struct s3s_keystore *ks,
                                     struct s3s_keystore_bucket_cors **out, size_t *n)
{
    struct s3s_store_stmt *st = NULL;
    S3S_GUARD(s3s_store_prepare(ks->store,
                                "SELECT bucket, config, updated FROM bucket_cors ORDER BY bucket",
                                &st));
    s3s_result res = s3s_ok();
    struct s3s_keystore_bucket_cors *list = NULL;
    size_t len = 0, cap = 0;
    enum s3s_store_rc rc = S3S_STORE_DONE;
    while (s3s_is_ok(res) && (rc = s3s_store_step(st)) == S3S_STORE_ROW) {
        if (len == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            struct s3s_keystore_bucket_cors *nl = s3s_realloc(list, ncap * sizeof(*nl));
            if (!nl) {
                res = s3s_err(S3S_ERR_NOMEM);
                break;
            }
            list = nl;
            cap = ncap;
        }
        struct s3s_keystore_bucket_cors *e = &list[len++];
        memset(e, 0, sizeof(*e));
        e->updated = s3s_store_column_int64(st, 2);
        if (s3s_is_ok(res = s3s_keystore__column_text(st, 0, &e->bucket)) &&
            s3s_is_ok(res = s3s_keystore__column_text(st, 1, &e->config))) {
            /* NOT NULL columns; a NULL here is a damaged file. */
            res = e->bucket && e->config ? s3s_ok() : s3s_err(S3S_ERR_KEYSTORE);
        }
    }
    if (s3s_is_ok(res) && rc != S3S_STORE_DONE) {
        res = s3s_err(s3s_store_rc_error(rc, S3S_ERR_KEYSTORE));
    }
    s3s_store_finalize(st);
    if (s3s_failed(res)) {
        s3s_keystore_bucket_cors_free(list, len);
        return res;
    }
    *out = list;
    *n = len;
    return s3s_ok();
}

s3s_result s3s_keystore_bucket_cors_list(struct s3s_keystore *ks,
                                         struct s3s_keystore_bucket_cors **out, size_t *n)
{
    S3S_ENSURE_REF(ks);
    S3S_ENSURE_REF(out);
    S3S_ENSURE_REF(n);
    *out = NULL;
    *n = 0;
    /* One statement, so one snapshot even while another server writes. */
    return s3s_keystore__result(ks, s_bucket_cors_rows(ks, out, n));
}

s3s_result s3s_keystore_bucket_cors_put(struct s3s_keystore *ks, const char *bucket,
                                        const char *config)
{
    S3S_ENSURE_REF(ks);
    S3S_ENSURE(bucket && config, S3S_ERR_INVALID_ARG);
    struct s3s_store_stmt *st = NULL;
    enum s3s_store_rc rc = S3S_STORE_ERROR;
    S3S_GUARD(s3s_keystore__begin(ks, S3S_STORE_WRITE));
    if (s3s_is_ok(s3s_store_prepare(ks->store,
                                    "INSERT INTO bucket_cors(bucket, config, updated) "
                                    "VALUES (?, ?, ?) ON CONFLICT(bucket) DO UPDATE SET "
                                    "config = excluded.config, updated = excluded.updated",
                                    &st))) {
        s3s_store_bind_str(st, 1, bucket);
        s3s_store_bind_str(st, 2, config);
        s3s_store_bind_int64(st, 3, (int64_t)time(NULL));
        rc = s3s_store_step(st);
    }
    if (rc == S3S_STORE_DONE &&
        s3s_failed(ks->store->ops->announce(ks->store, S3S_KEYSTORE_CHANGED_BUCKET))) {
        rc = S3S_STORE_ERROR;
    }
    return s_txn_end(ks, st, rc);
}

s3s_result s3s_keystore_bucket_cors_delete(struct s3s_keystore *ks, const char *bucket,
                                           bool *removed)
{
    return s_bucket_row_delete(ks, "DELETE FROM bucket_cors WHERE bucket = ?", bucket, removed);
}

/* ------------------------------------------- buckets' owners and policies */

void s3s_keystore_bucket_access_free(struct s3s_keystore_bucket_access *list, size_t n)
{
    for (size_t i = 0; list && i < n; i++) {
        s3s_free(&list[i].bucket);
        s3s_free(&list[i].owner);
        s3s_free(&list[i].policy);
    }
    s3s_free(&list);
}

static s3s_result s_bucket_access_rows(struct s3s_keystore *ks,
                                       struct s3s_keystore_bucket_access **out, size_t *n)
{
    struct s3s_store_stmt *st = NULL;
    S3S_GUARD(s3s_store_prepare(ks->store,
                                "SELECT bucket, owner, policy, updated FROM bucket_access "
                                "ORDER BY bucket",
                                &st));
    s3s_result res = s3s_ok();
    struct s3s_keystore_bucket_access *list = NULL;
    size_t len = 0, cap = 0;
    enum s3s_store_rc rc = S3S_STORE_DONE;
    while (s3s_is_ok(res) && (rc = s3s_store_step(st)) == S3S_STORE_ROW) {
        if (len == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            struct s3s_keystore_bucket_access *nl = s3s_realloc(list, ncap * sizeof(*nl));
            if (!nl) {
                res = s3s_err(S3S_ERR_NOMEM);
                break;
            }
            list = nl;
            cap = ncap;
        }
        struct s3s_keystore_bucket_access *e = &list[len++];
        memset(e, 0, sizeof(*e));
        e->updated = s3s_store_column_int64(st, 3);
        if (s3s_is_ok(res = s3s_keystore__column_text(st, 0, &e->bucket)) &&
            s3s_is_ok(res = s3s_keystore__column_text(st, 1, &e->owner)) &&
            s3s_is_ok(res = s3s_keystore__column_text(st, 2, &e->policy))) {
            res = e->bucket ? s3s_ok() : s3s_err(S3S_ERR_KEYSTORE);
        }
    }
    if (s3s_is_ok(res) && rc != S3S_STORE_DONE) {
        res = s3s_err(s3s_store_rc_error(rc, S3S_ERR_KEYSTORE));
    }
    s3s_store_finalize(st);
    if (s3s_failed(res)) {
        s3s_keystore_bucket_access_free(list, len);
        return res;
    }
    *out = list;
    *n = len;
    return s3s_ok();
}

s3s_result s3s_keystore_bucket_access_list(struct s3s_keystore *ks,
                                           struct s3s_keystore_bucket_access **out, size_t *n)
{
    S3S_ENSURE_REF(ks);
    S3S_ENSURE_REF(out);
    S3S_ENSURE_REF(n);
    *out = NULL;
    *n = 0;
    return s3s_keystore__result(ks, s_bucket_access_rows(ks, out, n));
}

/* Runs one bound write statement inside the open transaction. */
static enum s3s_store_rc s_exec2(struct s3s_keystore *ks, const char *sql, const char *a,
                                 const char *b, size_t *changes)
{
    struct s3s_store_stmt *st = NULL;
    if (s3s_failed(s3s_store_prepare(ks->store, sql, &st))) {
        return S3S_STORE_ERROR;
    }
    s3s_store_bind_str(st, 1, a);
    if (b) {
        s3s_store_bind_str(st, 2, b);
    }
    enum s3s_store_rc rc = s3s_store_step(st);
    if (changes) {
        *changes = rc == S3S_STORE_DONE ? s3s_store_changes(st) : 0;
    }
    s3s_store_finalize(st);
    return rc;
}

s3s_result s3s_keystore_bucket_owner_claim(struct s3s_keystore *ks, const char *bucket,
                                           const char *account, const char *stale_owner,
                                           char owner_out[13])
{
    S3S_ENSURE_REF(ks);
    S3S_ENSURE(bucket && account && strlen(account) == 12, S3S_ERR_INVALID_ARG);
    owner_out[0] = '\0';
    S3S_GUARD(s3s_keystore__begin(ks, S3S_STORE_WRITE));
    struct s3s_store_stmt *st = NULL;
    enum s3s_store_rc rc = S3S_STORE_DONE;
    size_t gone = 0;
    if (stale_owner) {
        /* The bucket is gone from the backend: its old owner's record (and
         * default encryption) go with it, unless someone claimed it since. */
        rc = s_exec2(ks, "DELETE FROM bucket_access WHERE bucket = ? AND owner = ?", bucket,
                     stale_owner, &gone);
        if (rc == S3S_STORE_DONE && gone > 0) {
            rc = s_exec2(ks, "DELETE FROM bucket_encryption WHERE bucket = ?", bucket, NULL,
                         NULL);
        }
        if (rc == S3S_STORE_DONE && gone > 0) {
            rc = s_exec2(ks, "DELETE FROM bucket_cors WHERE bucket = ?", bucket, NULL, NULL);
        }
    }
    if (rc == S3S_STORE_DONE &&
        s3s_is_ok(s3s_store_prepare(ks->store, "SELECT owner FROM bucket_access WHERE bucket = ?",
                                    &st))) {
        s3s_store_bind_str(st, 1, bucket);
        rc = s3s_store_step(st);
        if (rc == S3S_STORE_ROW && !s3s_store_column_null(st, 0)) {
            snprintf(owner_out, 13, "%s", s3s_store_column_str(st, 0));
        }
        if (rc == S3S_STORE_ROW) {
            rc = S3S_STORE_DONE;
        }
    } else if (rc == S3S_STORE_DONE) {
        rc = S3S_STORE_ERROR; /* the statement could not be prepared */
    }
    s3s_store_finalize(st);
    if (rc == S3S_STORE_DONE && owner_out[0] == '\0') {
        rc = s_exec2(ks,
                     "INSERT INTO bucket_access(bucket, owner, policy, updated) "
                     "VALUES (?, ?, NULL, 0) ON CONFLICT(bucket) DO UPDATE SET "
                     "owner = excluded.owner",
                     bucket, account, NULL);
        if (rc == S3S_STORE_DONE) {
            snprintf(owner_out, 13, "%s", account);
        }
    }
    if (rc == S3S_STORE_DONE &&
        s3s_failed(ks->store->ops->announce(ks->store, S3S_KEYSTORE_CHANGED_BUCKET))) {
        rc = S3S_STORE_ERROR;
    }
    s3s_result res = s_txn_end(ks, NULL, rc);
    if (s3s_failed(res)) {
        owner_out[0] = '\0';
    }
    return res;
}

s3s_result s3s_keystore_bucket_owner_release(struct s3s_keystore *ks, const char *bucket,
                                             const char *account)
{
    S3S_ENSURE_REF(ks);
    S3S_ENSURE(bucket && account, S3S_ERR_INVALID_ARG);
    S3S_GUARD(s3s_keystore__begin(ks, S3S_STORE_WRITE));
    enum s3s_store_rc rc = s_exec2(
        ks, "DELETE FROM bucket_access WHERE bucket = ? AND owner = ? AND policy IS NULL",
        bucket, account, NULL);
    if (rc == S3S_STORE_DONE &&
        s3s_failed(ks->store->ops->announce(ks->store, S3S_KEYSTORE_CHANGED_BUCKET))) {
        rc = S3S_STORE_ERROR;
    }
    return s_txn_end(ks, NULL, rc);
}

s3s_result s3s_keystore_bucket_policy_put(struct s3s_keystore *ks, const char *bucket,
                                          const char *policy, bool *changed)
{
    S3S_ENSURE_REF(ks);
    S3S_ENSURE_REF(bucket);
    S3S_ENSURE_REF(changed);
    *changed = false;
    S3S_GUARD(s3s_keystore__begin(ks, S3S_STORE_WRITE));
    struct s3s_store_stmt *st = NULL;
    enum s3s_store_rc rc = S3S_STORE_ERROR;
    if (s3s_is_ok(s3s_store_prepare(
            ks->store,
            policy ? "INSERT INTO bucket_access(bucket, owner, policy, updated) "
                     "VALUES (?, NULL, ?, ?) ON CONFLICT(bucket) DO UPDATE SET "
                     "policy = excluded.policy, updated = excluded.updated"
                   : "UPDATE bucket_access SET policy = NULL, updated = ? "
                     "WHERE bucket = ? AND policy IS NOT NULL",
            &st))) {
        if (policy) {
            s3s_store_bind_str(st, 1, bucket);
            s3s_store_bind_str(st, 2, policy);
            s3s_store_bind_int64(st, 3, (int64_t)time(NULL));
        } else {
            s3s_store_bind_int64(st, 1, (int64_t)time(NULL));
            s3s_store_bind_str(st, 2, bucket);
        }
        rc = s3s_store_step(st);
        *changed = rc == S3S_STORE_DONE && s3s_store_changes(st) > 0;
    }
    if (rc == S3S_STORE_DONE && !policy) {
        /* A row left with neither owner nor policy says nothing. */
        struct s3s_store_stmt *del = NULL;
        rc = S3S_STORE_ERROR;
        if (s3s_is_ok(s3s_store_prepare(ks->store,
                                        "DELETE FROM bucket_access WHERE bucket = ? AND "
                                        "owner IS NULL AND policy IS NULL",
                                        &del))) {
            s3s_store_bind_str(del, 1, bucket);
            rc = s3s_store_step(del);
        }
        s3s_store_finalize(del);
    }
    if (rc == S3S_STORE_DONE &&
        s3s_failed(ks->store->ops->announce(ks->store, S3S_KEYSTORE_CHANGED_BUCKET))) {
        rc = S3S_STORE_ERROR;
    }
    s3s_result res = s_txn_end(ks, st, rc);
    if (s3s_failed(res)) {
        *changed = false;
    }
    return res;
}

s3s_result s3s_keystore_bucket_forget(struct s3s_keystore *ks, const char *bucket,
                                      const char *owner)
{
    S3S_ENSURE_REF(ks);
    S3S_ENSURE(bucket && owner, S3S_ERR_INVALID_ARG);
    S3S_GUARD(s3s_keystore__begin(ks, S3S_STORE_WRITE));
    enum s3s_store_rc rc = s_exec2(
        ks, "DELETE FROM bucket_access WHERE bucket = ? AND (owner IS NULL OR owner = ?)",
        bucket, owner, NULL);
    /* Unless another account has claimed the name since, the default
     * encryption goes too. */
    size_t left = 0;
    if (rc == S3S_STORE_DONE) {
        rc = s_exec2(ks, "UPDATE bucket_access SET updated = updated WHERE bucket = ?", bucket,
                     NULL, &left);
    }
    if (rc == S3S_STORE_DONE && left == 0) {
        rc = s_exec2(ks, "DELETE FROM bucket_encryption WHERE bucket = ?", bucket, NULL, NULL);
    }
    if (rc == S3S_STORE_DONE && left == 0) {
        rc = s_exec2(ks, "DELETE FROM bucket_cors WHERE bucket = ?", bucket, NULL, NULL);
    }
    if (rc == S3S_STORE_DONE &&
        s3s_failed(ks->store->ops->announce(ks->store, S3S_KEYSTORE_CHANGED_BUCKET))) {
        rc = S3S_STORE_ERROR;
    }
    return s_txn_end(ks, NULL, rc);
}

/* ---------------------------------------------------- the upload registry */

/* Binds a byte string as a BLOB (an empty one too, not as NULL). */
static void s_bind_cur(struct s3s_store_stmt *st, int col, struct s3s_cur v)
{
    s3s_store_bind_blob(st, col, v.ptr, v.len);
}

static bool s_cur_ok(struct s3s_cur v) { return v.len < INT32_MAX && (v.ptr || v.len == 0); }

s3s_result s3s_keystore_upload_put(struct s3s_keystore *ks, struct s3s_cur bucket,
                                   struct s3s_cur key, struct s3s_cur upload_id,
                                   struct s3s_cur suffix)
{
    S3S_ENSURE_REF(ks);
    S3S_ENSURE(s_cur_ok(bucket) && s_cur_ok(key) && s_cur_ok(upload_id) && s_cur_ok(suffix) &&
                   upload_id.len > 0 && suffix.len > 0,
               S3S_ERR_INVALID_ARG);
    struct s3s_store_stmt *st = NULL;
    enum s3s_store_rc rc = S3S_STORE_ERROR;
    S3S_GUARD(s3s_keystore__begin(ks, S3S_STORE_WRITE));
    if (s3s_is_ok(s3s_store_prepare(ks->store,
                                    "INSERT INTO uploads(bucket, key, upload_id, suffix, created) "
                                    "VALUES (?, ?, ?, ?, ?) "
                                    "ON CONFLICT(bucket, key, upload_id) DO UPDATE SET "
                                    "suffix = excluded.suffix, created = excluded.created",
                                    &st))) {
        s_bind_cur(st, 1, bucket);
        s_bind_cur(st, 2, key);
        s_bind_cur(st, 3, upload_id);
        s3s_store_bind_text(st, 4, (const char *)suffix.ptr, suffix.len);
        s3s_store_bind_int64(st, 5, (int64_t)time(NULL));
        rc = s3s_store_step(st);
    }
    return s_txn_end(ks, st, rc);
}

void s3s_keystore_upload_refs_clean_up(struct s3s_keystore_upload_ref *refs, size_t n)
{
    for (size_t i = 0; refs && i < n; i++) {
        s3s_free(&refs[i].suffix);
    }
}

/* Looks up each ref with one prepared statement, inside the caller's
 * transaction. */
static s3s_result s_upload_lookup(struct s3s_keystore *ks, struct s3s_cur bucket,
                                  struct s3s_keystore_upload_ref *refs, size_t n)
{
    struct s3s_store_stmt *st = NULL;
    S3S_GUARD(s3s_store_prepare(ks->store,
                                "SELECT suffix FROM uploads "
                                "WHERE bucket = ? AND key = ? AND upload_id = ?",
                                &st));
    s3s_result res = s3s_ok();
    for (size_t i = 0; s3s_is_ok(res) && i < n; i++) {
        refs[i].suffix = NULL;
        if (!s_cur_ok(refs[i].key) || !s_cur_ok(refs[i].upload_id)) {
            res = s3s_err(S3S_ERR_INVALID_ARG);
            break;
        }
        s3s_store_reset(st);
        s_bind_cur(st, 1, bucket);
        s_bind_cur(st, 2, refs[i].key);
        s_bind_cur(st, 3, refs[i].upload_id);
        enum s3s_store_rc rc = s3s_store_step(st);
        if (rc == S3S_STORE_ROW) {
            res = s3s_keystore__column_text(st, 0, &refs[i].suffix);
        } else if (rc != S3S_STORE_DONE) {
            res = s3s_err(s3s_store_rc_error(rc, S3S_ERR_KEYSTORE));
        }
    }
    s3s_store_finalize(st);
    return res;
}

s3s_result s3s_keystore_upload_get_many(struct s3s_keystore *ks, struct s3s_cur bucket,
                                        struct s3s_keystore_upload_ref *refs, size_t n)
{
    S3S_ENSURE_REF(ks);
    S3S_ENSURE(s_cur_ok(bucket) && (refs || n == 0), S3S_ERR_INVALID_ARG);
    for (size_t i = 0; i < n; i++) {
        refs[i].suffix = NULL;
    }
    /* One read transaction: the page is looked up in one snapshot. */
    S3S_GUARD(s3s_keystore__begin(ks, S3S_STORE_READ));
    s3s_result res = s3s_keystore__txn_end(ks, s_upload_lookup(ks, bucket, refs, n));
    if (s3s_failed(res)) {
        s3s_keystore_upload_refs_clean_up(refs, n);
    }
    return res;
}

s3s_result s3s_keystore_upload_get(struct s3s_keystore *ks, struct s3s_cur bucket,
                                   struct s3s_cur key, struct s3s_cur upload_id, char **suffix)
{
    S3S_ENSURE_REF(suffix);
    struct s3s_keystore_upload_ref ref = {key, upload_id, NULL};
    S3S_GUARD(s3s_keystore_upload_get_many(ks, bucket, &ref, 1));
    *suffix = ref.suffix;
    return s3s_ok();
}

/* ------------------------------------------------------------ the catalog */

s3s_result s3s_keystore_object_put(struct s3s_keystore *ks, const uint8_t id[16],
                                   struct s3s_cur bucket, struct s3s_cur key,
                                   const struct s3s_keystore_object *o)
{
    S3S_ENSURE_REF(ks);
    S3S_ENSURE(id && o && s_cur_ok(bucket) && s_cur_ok(key) && o->parts >= 1 &&
                   o->parts <= 10000 && o->first_part >= 1 && o->first_part <= 10000 &&
                   o->size < (1ull << 62),
               S3S_ERR_INVALID_ARG);
    struct s3s_store_stmt *st = NULL;
    enum s3s_store_rc rc = S3S_STORE_ERROR;
    S3S_GUARD(s3s_keystore__begin(ks, S3S_STORE_WRITE));
    if (s3s_is_ok(s3s_store_prepare(
            ks->store,
            "INSERT INTO objects(object_id, bucket, key, parts, first_part, size, created) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT(object_id) DO UPDATE SET bucket = excluded.bucket, key = excluded.key, "
            "parts = excluded.parts, first_part = excluded.first_part, size = excluded.size, "
            "created = excluded.created",
            &st))) {
        s3s_store_bind_blob(st, 1, id, 16);
        s_bind_cur(st, 2, bucket);
        s_bind_cur(st, 3, key);
        s3s_store_bind_int64(st, 4, o->parts);
        s3s_store_bind_int64(st, 5, o->first_part);
        s3s_store_bind_int64(st, 6, (int64_t)o->size);
        s3s_store_bind_int64(st, 7, (int64_t)time(NULL));
        rc = s3s_store_step(st);
    }
    return s_txn_end(ks, st, rc);
}

s3s_result s3s_keystore_object_get(struct s3s_keystore *ks, const uint8_t id[16],
                                   struct s3s_keystore_object *o, bool *found)
{
    S3S_ENSURE_REF(ks);
    S3S_ENSURE(id && o && found, S3S_ERR_INVALID_ARG);
    *found = false;
    memset(o, 0, sizeof(*o));
    struct s3s_store_stmt *st = NULL;
    S3S_GUARD(s3s_keystore__begin(ks, S3S_STORE_READ));
    s3s_result res =
        s3s_store_prepare(ks->store,
                          "SELECT parts, first_part, size FROM objects WHERE object_id = ?", &st);
    if (s3s_is_ok(res)) {
        s3s_store_bind_blob(st, 1, id, 16);
        enum s3s_store_rc rc = s3s_store_step(st);
        if (rc == S3S_STORE_ROW) {
            int64_t parts = s3s_store_column_int64(st, 0);
            int64_t first = s3s_store_column_int64(st, 1);
            int64_t size = s3s_store_column_int64(st, 2);
            /* A row out of range is damage, never a count to trust. */
            res = parts >= 1 && parts <= 10000 && first >= 1 && first <= 10000 && size >= 0
                      ? s3s_ok()
                      : s3s_err(S3S_ERR_KEYSTORE);
            if (s3s_is_ok(res)) {
                o->parts = (uint32_t)parts;
                o->first_part = (uint32_t)first;
                o->size = (uint64_t)size;
                *found = true;
            }
        } else if (rc != S3S_STORE_DONE) {
            res = s3s_err(s3s_store_rc_error(rc, S3S_ERR_KEYSTORE));
        }
    }
    s3s_store_finalize(st);
    return s3s_keystore__txn_end(ks, res);
}

/* Runs a DELETE with the given bindings in one transaction; counts rows. */
static s3s_result s_delete_rows(struct s3s_keystore *ks, const char *sql,
                                const struct s3s_cur *curs, size_t n_curs, int64_t before,
                                size_t *removed)
{
    size_t count = 0;
    struct s3s_store_stmt *st = NULL;
    enum s3s_store_rc rc = S3S_STORE_ERROR;
    S3S_GUARD(s3s_keystore__begin(ks, S3S_STORE_WRITE));
    if (s3s_is_ok(s3s_store_prepare(ks->store, sql, &st))) {
        for (size_t i = 0; i < n_curs; i++) {
            s_bind_cur(st, (int)i + 1, curs[i]);
        }
        if (n_curs == 0) {
            s3s_store_bind_int64(st, 1, before);
        }
        rc = s3s_store_step(st);
        count = rc == S3S_STORE_DONE ? s3s_store_changes(st) : 0;
    }
    s3s_result res = s_txn_end(ks, st, rc);
    if (s3s_failed(res)) {
        count = 0;
    }
    if (removed) {
        *removed = count;
    }
    return res;
}

s3s_result s3s_keystore_upload_delete(struct s3s_keystore *ks, struct s3s_cur bucket,
                                      struct s3s_cur key, struct s3s_cur upload_id,
                                      bool *removed)
{
    S3S_ENSURE_REF(ks);
    S3S_ENSURE(s_cur_ok(bucket) && s_cur_ok(key) && s_cur_ok(upload_id), S3S_ERR_INVALID_ARG);
    const struct s3s_cur curs[3] = {bucket, key, upload_id};
    size_t n = 0;
    s3s_result res = s_delete_rows(
        ks, "DELETE FROM uploads WHERE bucket = ? AND key = ? AND upload_id = ?", curs, 3, 0, &n);
    if (removed) {
        *removed = n > 0;
    }
    return res;
}

s3s_result s3s_keystore_upload_prune(struct s3s_keystore *ks, int64_t before, size_t *removed)
{
    S3S_ENSURE_REF(ks);
    return s_delete_rows(ks, "DELETE FROM uploads WHERE created < ?", NULL, 0, before, removed);
}

/* ---------------------------------------------------- the catalog's entries */

static bool s_etag_ok(struct s3s_cur v)
{
    if (v.len == 0 || v.len > S3S_KEYSTORE_ETAG_MAX) {
        return false;
    }
    for (size_t i = 0; i < v.len; i++) {
        if (v.ptr[i] < 0x21 || v.ptr[i] > 0x7e || v.ptr[i] == '"') {
            return false;
        }
    }
    return true;
}

s3s_result s3s_keystore_entry_put(struct s3s_keystore *ks, struct s3s_cur bucket,
                                  struct s3s_cur key, struct s3s_cur etag,
                                  const struct s3s_keystore_entry *e)
{
    S3S_ENSURE_REF(ks);
    S3S_ENSURE(e && s_cur_ok(bucket) && s_cur_ok(key) && s_etag_ok(etag) &&
                   s_etag_ok(s3s_cur_from_str(e->plain_etag)) && e->size < (1ull << 62),
               S3S_ERR_INVALID_ARG);
    struct s3s_store_stmt *st = NULL;
    enum s3s_store_rc rc = S3S_STORE_ERROR;
    S3S_GUARD(s3s_keystore__begin(ks, S3S_STORE_WRITE));
    if (s3s_is_ok(s3s_store_prepare(
            ks->store,
            "INSERT INTO entries(bucket, key, etag, size, plain_etag, created) "
            "VALUES (?, ?, ?, ?, ?, ?) "
            "ON CONFLICT(bucket, key, etag) DO UPDATE SET size = excluded.size, "
            "plain_etag = excluded.plain_etag, created = excluded.created",
            &st))) {
        s_bind_cur(st, 1, bucket);
        s_bind_cur(st, 2, key);
        s3s_store_bind_text(st, 3, (const char *)etag.ptr, etag.len);
        s3s_store_bind_int64(st, 4, (int64_t)e->size);
        s3s_store_bind_text(st, 5, e->plain_etag, strlen(e->plain_etag));
        s3s_store_bind_int64(st, 6, (int64_t)time(NULL));
        rc = s3s_store_step(st);
    }
    return s_txn_end(ks, st, rc);
}

/* Looks up each ref with one prepared statement, inside the caller's
 * transaction. A row out of range is damage: an error, never a size. */
static s3s_result s_entry_lookup(struct s3s_keystore *ks, struct s3s_cur bucket,
                                 struct s3s_keystore_entry_ref *refs, size_t n)
{
    struct s3s_store_stmt *st = NULL;
    S3S_GUARD(s3s_store_prepare(ks->store,
                                "SELECT size, plain_etag FROM entries "
                                "WHERE bucket = ? AND key = ? AND etag = ?",
                                &st));
    s3s_result res = s3s_ok();
    for (size_t i = 0; s3s_is_ok(res) && i < n; i++) {
        struct s3s_keystore_entry_ref *ref = &refs[i];
        if (!s_cur_ok(ref->key) || !s_etag_ok(ref->etag)) {
            continue; /* no ETag S3 gives: no entry either */
        }
        s3s_store_reset(st);
        s_bind_cur(st, 1, bucket);
        s_bind_cur(st, 2, ref->key);
        s3s_store_bind_text(st, 3, (const char *)ref->etag.ptr, ref->etag.len);
        enum s3s_store_rc rc = s3s_store_step(st);
        if (rc == S3S_STORE_ROW) {
            int64_t size = s3s_store_column_int64(st, 0);
            struct s3s_cur pe = s3s_store_column_cur(st, 1);
            if (size < 0 || !s_etag_ok(pe)) {
                res = s3s_err(S3S_ERR_KEYSTORE);
                break;
            }
            ref->entry.size = (uint64_t)size;
            memcpy(ref->entry.plain_etag, pe.ptr, pe.len);
            ref->entry.plain_etag[pe.len] = '\0';
            ref->found = true;
        } else if (rc != S3S_STORE_DONE) {
            res = s3s_err(s3s_store_rc_error(rc, S3S_ERR_KEYSTORE));
        }
    }
    s3s_store_finalize(st);
    return res;
}

s3s_result s3s_keystore_entry_get_many(struct s3s_keystore *ks, struct s3s_cur bucket,
                                       struct s3s_keystore_entry_ref *refs, size_t n)
{
    S3S_ENSURE_REF(ks);
    S3S_ENSURE(s_cur_ok(bucket) && (refs || n == 0), S3S_ERR_INVALID_ARG);
    for (size_t i = 0; i < n; i++) {
        refs[i].found = false;
        memset(&refs[i].entry, 0, sizeof(refs[i].entry));
    }
    S3S_GUARD(s3s_keystore__begin(ks, S3S_STORE_READ));
    s3s_result res = s3s_keystore__txn_end(ks, s_entry_lookup(ks, bucket, refs, n));
    if (s3s_failed(res)) {
        for (size_t i = 0; i < n; i++) {
            refs[i].found = false;
        }
    }
    return res;
}

/* A row to remove: bucket, key and ETag, one after the other. */
struct s_gone {
    struct s3s_buf b, k, e;
};

static void s_gone_free(struct s_gone *g, size_t n)
{
    for (size_t i = 0; g && i < n; i++) {
        s3s_buf_clean_up(&g[i].b);
        s3s_buf_clean_up(&g[i].k);
        s3s_buf_clean_up(&g[i].e);
    }
    s3s_free(&g);
}

static s3s_result s_buf_dup(struct s3s_buf *b, struct s3s_cur v)
{
    S3S_GUARD(s3s_buf_init(b, 0, v.len + 1));
    return s3s_buf_append_cur(b, v);
}

/* Up to `cap` rows after (b, k, e) in key order that `keep` refuses. */
static s3s_result s_prune_scan(struct s3s_keystore *ks, struct s3s_cur bucket,
                               s3s_keystore_entry_keep_fn *keep, void *ctx, struct s_gone *out,
                               size_t cap, size_t *n, bool *more)
{
    *n = 0;
    *more = false;
    struct s3s_store_stmt *st = NULL;
    S3S_GUARD(s3s_store_prepare(ks->store,
                                bucket.len ? "SELECT bucket, key, etag FROM entries "
                                             "WHERE bucket = ? ORDER BY bucket, key, etag"
                                           : "SELECT bucket, key, etag FROM entries "
                                             "ORDER BY bucket, key, etag",
                                &st));
    if (bucket.len) {
        s_bind_cur(st, 1, bucket);
    }
    s3s_result res = s3s_ok();
    enum s3s_store_rc rc;
    while ((rc = s3s_store_step(st)) == S3S_STORE_ROW) {
        struct s3s_cur b = s3s_store_column_cur(st, 0), k = s3s_store_column_cur(st, 1),
                       e = s3s_store_column_cur(st, 2);
        if (keep(ctx, b, k, e)) {
            continue;
        }
        if (*n == cap) {
            *more = true;
            break;
        }
        struct s_gone *g = &out[*n];
        if (s3s_failed(res = s_buf_dup(&g->b, b)) || s3s_failed(res = s_buf_dup(&g->k, k)) ||
            s3s_failed(res = s_buf_dup(&g->e, e))) {
            (*n)++;
            break;
        }
        (*n)++;
    }
    if (s3s_is_ok(res) && rc != S3S_STORE_ROW && rc != S3S_STORE_DONE) {
        res = s3s_err(s3s_store_rc_error(rc, S3S_ERR_KEYSTORE));
    }
    s3s_store_finalize(st);
    return res;
}

static s3s_result s_prune_delete(struct s3s_keystore *ks, const struct s_gone *g, size_t n)
{
    struct s3s_store_stmt *st = NULL;
    S3S_GUARD(s3s_store_prepare(ks->store,
                                "DELETE FROM entries WHERE bucket = ? AND key = ? AND etag = ?",
                                &st));
    enum s3s_store_rc rc = S3S_STORE_DONE;
    for (size_t i = 0; i < n && rc == S3S_STORE_DONE; i++) {
        s3s_store_reset(st);
        s_bind_cur(st, 1, s3s_buf_cur(&g[i].b));
        s_bind_cur(st, 2, s3s_buf_cur(&g[i].k));
        s3s_store_bind_text(st, 3, (const char *)g[i].e.ptr, g[i].e.len);
        rc = s3s_store_step(st);
    }
    s3s_store_finalize(st);
    return rc == S3S_STORE_DONE ? s3s_ok() : s3s_err(s3s_store_rc_error(rc, S3S_ERR_KEYSTORE));
}

s3s_result s3s_keystore_entry_prune(struct s3s_keystore *ks, struct s3s_cur bucket,
                                    s3s_keystore_entry_keep_fn *keep, void *ctx,
                                    size_t *removed)
{
    S3S_ENSURE_REF(ks);
    S3S_ENSURE(keep && s_cur_ok(bucket), S3S_ERR_INVALID_ARG);
    enum { CAP = 1000 };
    size_t total = 0;
    s3s_result res = s3s_ok();
    for (bool more = true; more && s3s_is_ok(res);) {
        struct s_gone *g = s3s_calloc(CAP, sizeof(*g));
        S3S_ENSURE(g, S3S_ERR_NOMEM);
        size_t n = 0;
        res = s3s_keystore__begin(ks, S3S_STORE_READ);
        if (s3s_is_ok(res)) {
            res = s3s_keystore__txn_end(ks, s_prune_scan(ks, bucket, keep, ctx, g, CAP, &n,
                                                         &more));
        }
        if (s3s_is_ok(res) && n) {
            res = s3s_keystore__begin(ks, S3S_STORE_WRITE);
            if (s3s_is_ok(res)) {
                res = s3s_keystore__txn_end(ks, s_prune_delete(ks, g, n));
            }
            total += s3s_is_ok(res) ? n : 0;
        }
        s_gone_free(g, CAP);
    }
    if (removed) {
        *removed = total;
    }
    return res;
}
