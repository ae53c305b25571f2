/*
 * keystore.h - the keystore: key material sealed (AES-256-GCM) under a
 * 32-byte master key kept outside it, in an SQLite file (one host) or a
 * PostgreSQL database (a fleet of instances; store.h has the back ends). It
 * holds the versioned SSE-S3 root keys, the KMS keys (kms.h), the buckets'
 * default encryption set through the S3 API (PutBucketEncryption) and the
 * registry of encrypted multipart uploads by backend upload id. The back
 * end only ever sees sealed key material.
 *
 * A keystore is shared safely by running servers and the CLI (every change
 * in one transaction, writers serialised). All calls block on file or
 * network I/O, within bounded timeouts: from an event loop, call them on
 * the thread pool.
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
 * `path` is an SQLite file's path, "sqlite://PATH", or a PostgreSQL
 * connection URI "postgresql://..." (libpq's; several hosts with
 * target_session_attrs=read-write reach whichever is the primary).
 * Errors carry a one-line reason in `why`: a missing or weak master key file,
 * a master key that does not open this keystore, a corrupt file;
 * S3S_ERR_KEYSTORE_UNAVAILABLE when a database cannot be reached.
 */
S3S_RESULT s3s_keystore_open(const char *path, const char *master_key_file, bool create,
                             struct s3s_keystore **out, char *why, size_t why_len);
void s3s_keystore_close(struct s3s_keystore *ks);

/* A location fit for messages: a URI's password replaced by "***". Writes
 * at most len bytes, NUL included. */
void s3s_keystore_location_display(const char *location, char *out, size_t len);

/* Which back end holds the keystore: "sqlite" or "postgresql". */
const char *s3s_keystore_backend(const struct s3s_keystore *ks);

/* What s3s_keystore_copy reports after each row (done of total). */
typedef void s3s_keystore_copy_fn(void *ctx, size_t done, size_t total);

/*
 * Copies the keystore `src` into the keystore at location `to` (created if
 * absent; an SQLite path or URL, or a PostgreSQL URL), which must be empty:
 * a copy never overwrites (S3S_ERR_KEYSTORE, why says so). Every row of
 * every table is copied as it is, key material still sealed under the same
 * master key, from one snapshot of `src` in one transaction of the target
 * (whole or nothing); then every row is read back from both and compared
 * byte for byte, and the copy must open under the master key. *rows counts
 * the rows copied; `progress` (may be NULL) hears of each. A failed
 * verification leaves the copy in place and says which table differs.
 */
S3S_RESULT s3s_keystore_copy(struct s3s_keystore *src, const char *to,
                             s3s_keystore_copy_fn *progress, void *ctx, size_t *rows, char *why,
                             size_t why_len);

/* ------------------------------------------------------- change notices */

/* What a change notice says changed (bits). */
#define S3S_KEYSTORE_CHANGED_KMS 1u    /* KMS keys, versions, aliases, policies, states */
#define S3S_KEYSTORE_CHANGED_ROOT 2u   /* root keys */
#define S3S_KEYSTORE_CHANGED_BUCKET 4u /* buckets' default encryption */
#define S3S_KEYSTORE_CHANGED_ALL 7u    /* anything: notices may have been lost */

/*
 * Every change that others must see (a KMS key's, a root key's, a bucket's
 * default) is announced when its transaction commits, to every handle on the
 * same keystore that listens. s3s_keystore_listen starts listening (once;
 * again after an error) and gives a descriptor that becomes readable when
 * notices arrive; S3S_ERR_NOT_IMPLEMENTED when the back end has no
 * notification channel (SQLite: poll s3s_kms_generation and the rest).
 * The descriptor belongs to the handle: watch it, never read or close it.
 * s3s_keystore_changes reads what arrived without waiting: *what is a set of
 * S3S_KEYSTORE_CHANGED_* bits (0: nothing yet); after the channel was lost
 * and re-established it is S3S_KEYSTORE_CHANGED_ALL and *fd a new
 * descriptor to watch. S3S_ERR_KEYSTORE_UNAVAILABLE when the database
 * cannot be reached (call again later). The listening connection is the
 * handle's own: calls on it may come from a thread other than the one
 * running transactions, but not from two threads at once.
 */
S3S_RESULT s3s_keystore_listen(struct s3s_keystore *ks, int *fd);
S3S_RESULT s3s_keystore_changes(struct s3s_keystore *ks, unsigned *what, int *fd);
/* Listens and waits up to timeout_ms for a notice; *what as above (0 when
 * none came). Blocks: for the CLI and tests. */
S3S_RESULT s3s_keystore_wait_changes(struct s3s_keystore *ks, int timeout_ms, unsigned *what);

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

/* ------------------------------------------- buckets' CORS configurations */

/* One bucket's CORS configuration as PutBucketCors stored it: the
 * CORSConfiguration document, as s3seal formats it after validation
 * (proxy/cors.h). Configuration, stored in the clear like the defaults. */
struct s3s_keystore_bucket_cors {
    char *bucket;
    char *config;    /* the XML document */
    int64_t updated; /* Unix time of the last change */
};

/* Every stored configuration, ordered by bucket name, read in one
 * statement. *out is a new array of *n entries (NULL when there are none),
 * freed with s3s_keystore_bucket_cors_free. */
S3S_RESULT s3s_keystore_bucket_cors_list(struct s3s_keystore *ks,
                                         struct s3s_keystore_bucket_cors **out, size_t *n);
void s3s_keystore_bucket_cors_free(struct s3s_keystore_bucket_cors *list, size_t n);
/* Stores a bucket's configuration (replacing any) with `updated` now, in
 * one transaction, and announces S3S_KEYSTORE_CHANGED_BUCKET. */
S3S_RESULT s3s_keystore_bucket_cors_put(struct s3s_keystore *ks, const char *bucket,
                                        const char *config);
/* Removes a bucket's configuration, in one transaction; *removed tells
 * whether there was one. A deleted bucket's (s3s_keystore_bucket_forget)
 * goes with its other settings. */
S3S_RESULT s3s_keystore_bucket_cors_delete(struct s3s_keystore *ks, const char *bucket,
                                           bool *removed);

/* ------------------------------------------- buckets' owners and policies */

/* Who owns a bucket and its bucket policy, as s3seal serves them (authz.h).
 * Configuration, stored in the clear. A row may have a policy without an
 * owner (a bucket that existed before s3seal, whose owner the config file
 * names) and an owner without a policy. */
struct s3s_keystore_bucket_access {
    char *bucket;
    char *owner;    /* a 12-digit account; NULL: none recorded */
    char *policy;   /* the bucket policy's JSON; NULL: none */
    int64_t updated; /* Unix time of the last change */
};

/* Every row, ordered by bucket name, read in one statement. *out is a new
 * array of *n entries (NULL when there are none). */
S3S_RESULT s3s_keystore_bucket_access_list(struct s3s_keystore *ks,
                                           struct s3s_keystore_bucket_access **out, size_t *n);
void s3s_keystore_bucket_access_free(struct s3s_keystore_bucket_access *list, size_t n);
/* Records `account` as the bucket's owner unless an owner is recorded
 * already, in one write transaction (so two servers sharing the keystore
 * cannot both claim a name). stale_owner (may be NULL): an owner whose
 * record is known to be stale (the bucket is gone from the backend); its
 * record and default encryption are dropped first, in the same transaction,
 * if it still owns the name. owner_out (13 bytes) gets the owner recorded
 * after the call: `account` if the claim took, else the earlier one. */
S3S_RESULT s3s_keystore_bucket_owner_claim(struct s3s_keystore *ks, const char *bucket,
                                           const char *account, const char *stale_owner,
                                           char owner_out[13]);
/* Takes back a claim that came to nothing (the backend did not create the
 * bucket): removes the row if `account` owns it and it has no policy. */
S3S_RESULT s3s_keystore_bucket_owner_release(struct s3s_keystore *ks, const char *bucket,
                                             const char *account);
/* Stores (policy non-NULL) or removes the bucket's policy, keeping its
 * owner; *changed tells whether there was anything to remove. */
S3S_RESULT s3s_keystore_bucket_policy_put(struct s3s_keystore *ks, const char *bucket,
                                          const char *policy, bool *changed);
/* A deleted bucket of `owner`: its record, policy, default encryption and CORS configuration
 * go, in one transaction, so a later bucket of the same name starts afresh;
 * nothing goes if another account has claimed the name since. */
S3S_RESULT s3s_keystore_bucket_forget(struct s3s_keystore *ks, const char *bucket,
                                      const char *owner);

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

/* ---------------------------------------------------------- the catalog */

/* What a multipart object's ciphertext cannot show about itself: how many
 * parts it was completed with, the first part's number, and its size. Written for
 * every upload in the parts3 layout before the backend completes it, read
 * before any of its bytes is released (sse/FORMAT.md). Keyed by the
 * object's id (s3s_sse_object_id: derived from its data key, so a copy or
 * a rewrap that keeps the key finds the same row); bucket and key say
 * where it was completed. A row is never rewritten to another object: ids
 * do not repeat. */
struct s3s_keystore_object {
    uint32_t parts;      /* 1-10000 */
    uint32_t first_part; /* 1-10000 */
    uint64_t size;       /* the plaintext's, in bytes (below 2^62) */
};

/* Records (or replaces: a Complete sent again) an object's row, in one
 * transaction. `id` is 16 bytes. */
S3S_RESULT s3s_keystore_object_put(struct s3s_keystore *ks, const uint8_t id[16],
                                   struct s3s_cur bucket, struct s3s_cur key,
                                   const struct s3s_keystore_object *o);
/* An object's row; *found false when there is none. */
S3S_RESULT s3s_keystore_object_get(struct s3s_keystore *ks, const uint8_t id[16],
                                   struct s3s_keystore_object *o, bool *found);

/* What a listing, HEAD or conditional request must say of an object s3seal
 * wrote encrypted, and the backend cannot: its plaintext size and the ETag
 * S3 would give it (the MD5 of the plaintext for one PUT; the MD5 of the
 * parts' MD5s, "-" and their count for a multipart upload). Keyed by
 * bucket, key and the backend's ETag of the stored object (unquoted): a
 * newer object written under the same name, through s3seal or behind its
 * back, has another ETag, so a stale row never matches it. Rows are
 * written once the backend has stored the object, before the client hears
 * of it; rows of objects that no longer exist are harmless and are pruned
 * by `s3seal catalog prune`. */
#define S3S_KEYSTORE_ETAG_MAX 80 /* an ETag's characters, unquoted, at most */
struct s3s_keystore_entry {
    uint64_t size;                            /* the plaintext's, below 2^62 */
    char plain_etag[S3S_KEYSTORE_ETAG_MAX + 1]; /* unquoted, NUL-terminated */
};

/* Records (or replaces) an object's entry, in one transaction. `etag` is
 * the backend's, unquoted; plain_etag likewise (1-80 characters). */
S3S_RESULT s3s_keystore_entry_put(struct s3s_keystore *ks, struct s3s_cur bucket,
                                  struct s3s_cur key, struct s3s_cur etag,
                                  const struct s3s_keystore_entry *e);

/* One object of a batch lookup: in, its key and the backend's ETag; out,
 * whether it has an entry, and the entry. */
struct s3s_keystore_entry_ref {
    struct s3s_cur key;
    struct s3s_cur etag;
    bool found;
    struct s3s_keystore_entry entry;
};
/* Looks up n objects of one bucket in one read transaction (one listing
 * page). On error none is found. */
S3S_RESULT s3s_keystore_entry_get_many(struct s3s_keystore *ks, struct s3s_cur bucket,
                                       struct s3s_keystore_entry_ref *refs, size_t n);
/* Removes the entries of `bucket` (every one with an empty bucket) for
 * which `keep` says false, in transactions of up to 1000 rows; *removed
 * counts them. `keep` is called with the row's key and ETag; it must not
 * use the keystore. */
typedef bool s3s_keystore_entry_keep_fn(void *ctx, struct s3s_cur bucket, struct s3s_cur key,
                                        struct s3s_cur etag);
S3S_RESULT s3s_keystore_entry_prune(struct s3s_keystore *ks, struct s3s_cur bucket,
                                    s3s_keystore_entry_keep_fn *keep, void *ctx,
                                    size_t *removed);

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
