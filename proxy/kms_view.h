/*
 * kms_view.h - a worker's view of the keystore's KMS keys, and the key
 * operations SSE-KMS needs (GenerateDataKey and Decrypt), done in memory on
 * the loop thread:
 *
 * - a snapshot of every key (state, policy, material versions) and alias,
 *   refreshed on the libuv thread pool every S3S_KMS_REFRESH_MS when the
 *   keystore's generation changed, so `s3seal keys disable` (from the CLI or
 *   another server) takes effect within that time; the same job, once a
 *   minute, rotates keys that are due and destroys keys whose deletion date
 *   has passed;
 * - the key policies, parsed once per snapshot;
 * - a bounded cache of unwrapped data keys (and bucket keys) by principal,
 *   wrapped key and associated data, with a TTL: a GET storm on one object
 *   by one principal unwraps once. A cache hit still checks the key's state
 *   and policy against the current snapshot, so disabling a key or
 *   changing its policy takes effect for cached keys too;
 * - the audit log: every GenerateDataKey and Decrypt (cache misses), allowed
 *   or refused, appends a record before the key is used; a record that
 *   cannot be written fails the operation (fail closed).
 *
 * Only the account's default key (alias aws/s3, made on first use) needs a
 * keystore write on a request's path; it runs on the thread pool while the
 * request waits (s3s_kms_view_ensure_default).
 */
#ifndef S3S_PROXY_KMS_VIEW_H
#define S3S_PROXY_KMS_VIEW_H

#include <uv.h>

#include "common/common.h"
#include "keystore/audit.h"
#include "keystore/kms.h"
#include "keystore/policy.h"

#define S3S_KMS_REFRESH_MS 2000
#define S3S_KMS_BUCKET_KEYS 64

struct s3s_config;
struct s3s_kms_dek_entry;
struct s3s_kms_bucket_key;

/* Who asks, for policies and the audit trail. */
struct s3s_kms_caller {
    const char *principal;  /* ARN */
    const char *account;    /* the principal's 12-digit account */
    const char *access_key;
    const char *source;     /* client address */
    const char *request_id;
};

/* One use of a key: what it is for (filled by the caller) and, once
 * resolved, which key and version. */
struct s3s_kms_use {
    const struct s3s_kms_caller *caller;
    const char *bucket;
    const char *object;
    const struct s3s_kms_context *context;
    /* out */
    const struct s3s_kms_snap_key *key;
    uint32_t version;
    /* A refusal's client message (AWS's wording, with the key's ARN). */
    char message[640];
};

struct s3s_kms_view {
    /* loop thread only */
    uv_loop_t *loop;
    const struct s3s_config *cfg;
    uv_timer_t timer;
    uv_work_t work;
    bool work_busy;
    bool again; /* a change was announced while a refresh ran: one more */
    bool closing;
    bool maintain; /* this worker rotates and sweeps (one per process) */
    uint64_t maintained_ms; /* when it last did (monotonic) */
    char via_service[80]; /* "s3.REGION.amazonaws.com" */
    struct s3s_kms_snapshot *snap;
    struct s3s_policy **policies; /* per snapshot key; NULL: the default policy */
    struct s3s_audit *audit;      /* NULL: no audit_log configured */
    struct s3s_kms_bucket_key *bucket_keys; /* S3S_KMS_BUCKET_KEYS of them */
    struct s3s_secret bucket_key_material;  /* their keys, 32 bytes each */
    struct s3s_kms_dek_entry *cache;
    struct s3s_secret cache_keys; /* cache_cap * 32 bytes, entry i at i * 32 */
    size_t cache_cap;
    uint64_t cache_ttl_ms;
    /* used on the thread pool only (after start-up) */
    struct s3s_keystore *ks;
    /* filled by the pool thread, merged on the loop */
    struct s3s_kms_snapshot *fresh;
    struct s3s_policy **fresh_policies;
    int32_t fresh_error;
    /* requests waiting for the default key of an account, or for a fresh
     * snapshot (loop thread); runs on the pool are numbered */
    struct s3s_kms_default_wait *waits;
    uint64_t next_job;
};

/* Opens the keystore (it exists: the keyring opened it first), loads the
 * snapshot, opens the audit log if configured; starts the refresh timer.
 * `why` receives a one-line reason on failure. */
S3S_RESULT s3s_kms_view_init(struct s3s_kms_view *v, uv_loop_t *loop,
                             const struct s3s_config *cfg, bool maintain, char *why,
                             size_t why_len);
void s3s_kms_view_close(struct s3s_kms_view *v);
void s3s_kms_view_clean_up(struct s3s_kms_view *v);

/* Resolves `ref` (key id, alias, key ARN or alias ARN; NULL or "": the
 * caller's default key aws/s3) for a new data key, checks its state and
 * that the policy allows kms:GenerateDataKey for the use's principal and
 * context, into use->key and use->version (the newest). Refusals carry
 * use->message and are audited. S3S_ERR_KMS_NOT_FOUND when the default key
 * does not exist yet (see s3s_kms_view_ensure_default). */
S3S_RESULT s3s_kms_view_resolve(struct s3s_kms_view *v, const char *ref, struct s3s_kms_use *use);

/* Wraps the 32-byte data key dek by use->key (resolved), version
 * use->version, with `aad` bound, appended to wrapped; audited as
 * `operation` ("GenerateDataKey" for a new key, "ReEncrypt" for a copy's)
 * before the key is used. */
S3S_RESULT s3s_kms_view_wrap(struct s3s_kms_view *v, struct s3s_kms_use *use,
                             const char *operation, struct s3s_cur aad, const uint8_t dek[32],
                             struct s3s_buf *wrapped);

/* A bucket key for new objects: a 32-byte key made and wrapped by use->key
 * (resolved) with `aad` (the bucket and context) bound, reused for the same
 * key, version and aad for keystore.bucket_key_seconds, so that a bucket's
 * writes call the key service once per bucket key. Into bk, and its wrapped
 * form appended to wrapped. */
S3S_RESULT s3s_kms_view_bucket_key(struct s3s_kms_view *v, struct s3s_kms_use *use,
                                   struct s3s_cur aad, uint8_t bk[32], struct s3s_buf *wrapped);


/* Unwraps a key that key ARN `arn` version `version` wrapped with `aad`
 * bound, for the use's principal (kms:Decrypt, with the use's context), into
 * dek (a new secret). From the cache when the same principal unwrapped the
 * same bytes lately; else unwrapped and audited as `operation` ("Decrypt").
 * KMS.NotFoundException for a key that no longer exists, KMS.Disabled /
 * KMSInvalidState by state, AccessDenied by policy. */
S3S_RESULT s3s_kms_view_decrypt(struct s3s_kms_view *v, struct s3s_kms_use *use,
                                struct s3s_cur arn, uint32_t version, struct s3s_cur aad,
                                struct s3s_cur wrapped, struct s3s_secret *dek);

/* Checks, without unwrapping, that the use's principal may use key `arn`
 * for `action` now (state and policy): UploadPart into an SSE-KMS upload,
 * whose data key travels in the upload id. Refusals are audited. */
S3S_RESULT s3s_kms_view_check(struct s3s_kms_view *v, struct s3s_kms_use *use,
                              struct s3s_cur arn, const char *action);

/* Re-reads the keys now (a change was announced; ks_watch.c), or right
 * after the refresh that is running. Loop thread. */
void s3s_kms_view_refresh(struct s3s_kms_view *v);

/* True when `ref` names a key the snapshot does not have: the caller
 * account's default key, which does not exist yet, or a key made since the
 * last refresh (`s3seal keys create` just now). s3s_kms_view_ensure_default
 * creates the account's default key (account NULL: none) on the thread pool,
 * re-reads the keys, and calls done(arg) on the loop once the snapshot is
 * fresh (if the key is still missing, the request then gets
 * KMS.NotFoundException from s3s_kms_view_resolve). */
bool s3s_kms_view_needs_refresh(const struct s3s_kms_view *v, const char *ref,
                                const char *account, bool *default_key);
S3S_RESULT s3s_kms_view_ensure_default(struct s3s_kms_view *v, const char *account,
                                       void (*done)(void *arg), void *arg);
/* A waiting request went away: done will not be called for arg. */
void s3s_kms_view_cancel_default(struct s3s_kms_view *v, void *arg);

#endif
