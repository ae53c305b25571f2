/*
 * keystore_private.h - what the keystore module's own files share and no
 * other module may call (keystore.c: the file, the root keys and the plain
 * tables; kms.c: the KMS keys; audit.c: the audit log): operator reasons,
 * the handle's insides, transaction endings, a column reader, and the
 * sealing of key material under the master key.
 */
#ifndef S3S_KEYSTORE_PRIVATE_H
#define S3S_KEYSTORE_PRIVATE_H

#include <stddef.h>

#include "keystore/keystore.h"
#include "keystore/store.h"

/* Writes a one-line reason for an operator into why (if why is not NULL and
 * why_len is not 0), truncating it to fit. */
void s3s_keystore__why(char *why, size_t why_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

struct s3s_keystore {
    struct s3s_store *store;
    struct s3s_secret master;
};

/* A keystore handle on the store at `location` with a copy of `master`,
 * its schema created, but neither initialised nor checked against the
 * master key (what s3s_keystore_open does next, and a copy's target must
 * not have). */
S3S_RESULT s3s_keystore__open_store(const char *location, const struct s3s_secret *master,
                                    bool create, struct s3s_keystore **out, char *why,
                                    size_t why_len);

/* A keystore opened with s3s_keystore__open_store: a new one (when
 * `create`) gets its check value and root key version 1; an existing one's
 * check value must open under the master key (S3S_ERR_KEY_UNWRAP). */
S3S_RESULT s3s_keystore__init_or_check(struct s3s_keystore *ks, bool create, char *why,
                                       size_t why_len);

/* The generation counter of the KMS keys (store.h's counters). */
#define S3S_KEYSTORE__KMS_GENERATION "kms_generation"

/* S3S_ERR_KEYSTORE becomes S3S_ERR_KEYSTORE_UNAVAILABLE when the back end
 * could not be reached; other results pass. */
S3S_RESULT s3s_keystore__result(struct s3s_keystore *ks, s3s_result res);

/* Begins a transaction (store.h's kinds). */
S3S_RESULT s3s_keystore__begin(struct s3s_keystore *ks, enum s3s_store_txn kind);

/* Ends the open transaction: COMMIT when `res` is ok, else (or when COMMIT
 * fails) ROLLBACK. Returns the first error, or ok. Every statement of the
 * transaction must be finalised (or reset) before. */
S3S_RESULT s3s_keystore__txn_end(struct s3s_keystore *ks, s3s_result res);

/* A TEXT column as a new string; NULL stays NULL. */
S3S_RESULT s3s_keystore__column_text(struct s3s_store_stmt *st, int col, char **out);

/* Fresh random key material (S3S_KEYSTORE_KEY_LEN bytes from OpenSSL's
 * CSPRNG), sealed under the master key with `aad` (the identity of the row
 * that will hold it, e.g. "root-key:3") and appended to `sealed`. The clear
 * material never leaves this call. */
S3S_RESULT s3s_keystore__new_sealed_key(const struct s3s_keystore *ks, const char *aad,
                                        struct s3s_buf *sealed);

/* Opens key material sealed under the master key with `aad` into a new
 * secret of exactly S3S_KEYSTORE_KEY_LEN bytes. S3S_ERR_KEY_UNWRAP when it
 * does not open (another row's material, a damaged file) or has another
 * length. */
S3S_RESULT s3s_keystore__open_key(const struct s3s_keystore *ks, const char *aad,
                                  struct s3s_cur sealed, struct s3s_secret *out);

#endif /* S3S_KEYSTORE_PRIVATE_H */
