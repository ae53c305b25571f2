/*
 * keystore.h - the embedded keystore: a SQLite file whose key material is
 * sealed (AES-256-GCM) under a 32-byte master key kept outside it. It holds
 * the versioned SSE-S3 root keys, the KMS keys (kms.h), the buckets' default
 * encryption set through the S3 API (PutBucketEncryption) and the registry
 * of encrypted multipart uploads by backend upload id.
 *
 * The file is shared safely by running servers and the CLI (WAL mode, a busy
 * timeout, every change in one transaction). All calls block on file I/O:
 * from an event loop, call them on the thread pool.
 */
#ifndef S3S_KEYSTORE_H
#define S3S_KEYSTORE_H

#include "common/common.h"

#define S3S_KEYSTORE_KEY_LEN 32

struct s3s_keystore;

/*
 * Opens (creating if `create` and absent) the keystore at `path`, unlocked with
 * the master key in `master_key_file` (exactly 32 bytes, not readable by group
 * or others, not all zeros). A new keystore gets root key version 1.
 * Errors carry a one-line reason in `why`: a missing or weak master key file,
 * a master key that does not open this keystore, a corrupt file.
 */
S3S_RESULT s3s_keystore_open(const char *path, const char *master_key_file, bool create,
                             struct s3s_keystore **out, char *why, size_t why_len);
void s3s_keystore_close(struct s3s_keystore *ks);

/* The newest root key version and its key (copied into `key`, which the
 * caller wipes). */
S3S_RESULT s3s_keystore_root_current(struct s3s_keystore *ks, uint32_t *version,
                                     struct s3s_secret *key);
/* A given root key version; S3S_ERR_KEY_NOT_FOUND if absent. */
S3S_RESULT s3s_keystore_root_get(struct s3s_keystore *ks, uint32_t version,
                                 struct s3s_secret *key);
/* Adds a new root key version (fresh random key) and returns its number. */
S3S_RESULT s3s_keystore_root_rotate(struct s3s_keystore *ks, uint32_t *new_version);
/* Adds a new version only if the newest is older than max_age_s (checked
 * and done in one transaction, so servers sharing the keystore rotate once).
 * *rotated tells whether it did. */
S3S_RESULT s3s_keystore_root_rotate_if_older(struct s3s_keystore *ks, int64_t max_age_s,
                                            bool *rotated);
/* Unix time the newest version was created (for automatic rotation). */
S3S_RESULT s3s_keystore_root_created(struct s3s_keystore *ks, uint32_t version, int64_t *at);

/* ------------------------------------------- buckets' default encryption */

/* One bucket's default encryption as PutBucketEncryption stored it. This is
 * configuration, not key material: it is stored in the clear (AWS returns it
 * to any caller of GetBucketEncryption). */
struct s3s_keystore_bucket_enc {
    char *bucket;
    char *algorithm;  /* "AES256", "aws:kms", "aws:kms:dsse" */
    char *kms_key_id; /* NULL: none */
    bool bucket_key;  /* BucketKeyEnabled */
    int64_t updated;  /* Unix time of the last change */
};

/* Every stored bucket default, ordered by bucket name, read in one
 * transaction. *out is a new array of *n entries (NULL when there are none),
 * freed with s3s_keystore_bucket_enc_free. */
S3S_RESULT s3s_keystore_bucket_enc_list(struct s3s_keystore *ks,
                                        struct s3s_keystore_bucket_enc **out, size_t *n);
void s3s_keystore_bucket_enc_free(struct s3s_keystore_bucket_enc *list, size_t n);
/* Stores a bucket's default (replacing any) with `updated` now, in one
 * transaction. kms_key_id may be NULL. */
S3S_RESULT s3s_keystore_bucket_enc_put(struct s3s_keystore *ks, const char *bucket,
                                       const char *algorithm, const char *kms_key_id,
                                       bool bucket_key);
/* Removes a bucket's default, in one transaction; *removed tells whether
 * there was one. */
S3S_RESULT s3s_keystore_bucket_enc_delete(struct s3s_keystore *ks, const char *bucket,
                                          bool *removed);

/* ------------------------------------------------- the upload registry */

/* Encrypted multipart uploads by the backend's own upload id: (bucket, key,
 * backend id) -> the suffix of s3seal's id (`~s3seal~<root version>~<aead>~
 * <wrapped data key hex>`), so that a backend id (as ListMultipartUploads
 * gives it) can be taken for s3seal's. Not key material in the clear: the
 * data key in the suffix is wrapped under a root key, as in the id the
 * client holds; stored in the clear like the buckets' defaults. */

/* How long a row is kept at most (an upload neither completed nor aborted
 * through s3seal); older ones may be pruned. */
#define S3S_KEYSTORE_UPLOAD_MAX_AGE_S (30 * 86400)

/* One upload of a batch lookup: key and backend id in, suffix out (a new
 * string, NULL when the registry does not know the upload). */
struct s3s_keystore_upload_ref {
    struct s3s_cur key;
    struct s3s_cur upload_id;
    char *suffix;
};

/* Records an upload (replacing any row for the same bucket, key and id),
 * created now, in one transaction. */
S3S_RESULT s3s_keystore_upload_put(struct s3s_keystore *ks, struct s3s_cur bucket,
                                   struct s3s_cur key, struct s3s_cur upload_id,
                                   struct s3s_cur suffix);
/* An upload's suffix as a new string in *suffix, or NULL when unknown. */
S3S_RESULT s3s_keystore_upload_get(struct s3s_keystore *ks, struct s3s_cur bucket,
                                   struct s3s_cur key, struct s3s_cur upload_id, char **suffix);
/* Looks up n uploads of one bucket in one (read) transaction; fills each
 * ref's suffix. On error every suffix is NULL. */
S3S_RESULT s3s_keystore_upload_get_many(struct s3s_keystore *ks, struct s3s_cur bucket,
                                        struct s3s_keystore_upload_ref *refs, size_t n);
/* Frees the suffixes of a batch. */
void s3s_keystore_upload_refs_clean_up(struct s3s_keystore_upload_ref *refs, size_t n);
/* Removes an upload's row, in one transaction; *removed tells whether there
 * was one (may be NULL). */
S3S_RESULT s3s_keystore_upload_delete(struct s3s_keystore *ks, struct s3s_cur bucket,
                                      struct s3s_cur key, struct s3s_cur upload_id,
                                      bool *removed);
/* Removes the rows created before `before` (Unix time), in one
 * transaction; *removed counts them (may be NULL). */
S3S_RESULT s3s_keystore_upload_prune(struct s3s_keystore *ks, int64_t before, size_t *removed);

/* ------------------------------------------------------- sealing helpers */

/* Seals `plain` under a 32-byte key with AES-256-GCM and a random nonce;
 * appends nonce(12) || ciphertext || tag(16) to `out`. `aad` is bound. */
S3S_RESULT s3s_keystore_seal(const uint8_t key[32], struct s3s_cur aad, struct s3s_cur plain,
                             struct s3s_buf *out);
/* Opens what s3s_keystore_seal produced into a new secret. Fails with
 * S3S_ERR_KEY_UNWRAP if the tag (key, aad or data) does not verify. */
S3S_RESULT s3s_keystore_open_sealed(const uint8_t key[32], struct s3s_cur aad,
                                    struct s3s_cur sealed, struct s3s_secret *out);

#endif /* S3S_KEYSTORE_H */
