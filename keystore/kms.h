/*
 * kms.h - KMS keys in the embedded keystore, with AWS KMS semantics: a key
 * has an id (a UUID), an ARN (arn:aws:kms:REGION:ACCOUNT:key/ID), an owning
 * account, a state (Enabled, Disabled, PendingDeletion), a description, a
 * creation date, versions of key material (rotation adds one; every version
 * keeps unwrapping what it wrapped), an optional key policy (AWS key policy
 * JSON; none means AWS's default policy: every principal of the key's account
 * may use it) and aliases (alias/NAME, per account; an alias ARN is
 * arn:aws:kms:REGION:ACCOUNT:alias/NAME).
 *
 * Key material is sealed under the master key, bound to its key id and
 * version, like the root keys. Every change is one transaction and bumps a
 * generation counter, so running servers notice a change (from the CLI or
 * another server) by reading one number.
 *
 * All calls block on file I/O; from an event loop, call them on the thread
 * pool. A handle runs one transaction at a time: threads that share one
 * serialise their calls (or open a handle each). A snapshot
 * (s3s_kms_snapshot_load) is plain memory and may be used anywhere once
 * loaded.
 *
 * Functions that fill a struct s3s_kms_key leave it empty (safe to clean up
 * or not) when they fail.
 */
#ifndef S3S_KEYSTORE_KMS_H
#define S3S_KEYSTORE_KMS_H

#include "common/common.h"
#include "keystore/keystore.h"

#define S3S_KMS_KEY_ID_LEN 36 /* a UUID: 8-4-4-4-12 lower-case hex */
#define S3S_KMS_DEFAULT_ALIAS "alias/aws/s3"
#define S3S_KMS_MIN_DELETION_DAYS 7
#define S3S_KMS_MAX_DELETION_DAYS 30
#define S3S_KMS_DEFAULT_DELETION_DAYS 30
#define S3S_KMS_DEFAULT_ROTATION_S (365 * 86400LL)
/* AWS's bounds on a rotation period (RotationPeriodInDays) and a
 * description; a key policy's is policy.h's S3S_POLICY_MAX_LEN. */
#define S3S_KMS_MIN_ROTATION_DAYS 90
#define S3S_KMS_MAX_ROTATION_DAYS 2560
#define S3S_KMS_MAX_DESCRIPTION_LEN 8192

struct json_object;

enum s3s_kms_state {
    S3S_KMS_ENABLED = 1,
    S3S_KMS_DISABLED = 2,
    S3S_KMS_PENDING_DELETION = 3,
};
/* "Enabled", "Disabled", "PendingDeletion". */
const char *s3s_kms_state_name(enum s3s_kms_state s);

/* A key's metadata (no material). Strings are owned by the struct. */
struct s3s_kms_key {
    char id[S3S_KMS_KEY_ID_LEN + 1];
    char account[13];
    char *region;
    char *arn;
    char *description;     /* "" when none */
    enum s3s_kms_state state;
    bool aws_managed;      /* the default key aws/s3 of an account (KeyManager AWS) */
    int64_t created;       /* Unix seconds */
    int64_t deletion_date; /* PendingDeletion: when it is destroyed; else 0 */
    uint32_t current_version;
    int64_t current_created;   /* when the newest version was made */
    int64_t rotation_period_s; /* automatic rotation; 0: off */
    char *policy;              /* the key policy JSON; NULL: the default policy */
    char **aliases;            /* "alias/NAME", sorted; n_aliases of them */
    size_t n_aliases;
};
void s3s_kms_key_clean_up(struct s3s_kms_key *k);

/* AWS's KeyMetadata shape as a JSON object (KeyId, Arn, AWSAccountId,
 * CreationDate, Enabled, Description, KeyUsage, KeyState, DeletionDate,
 * KeyManager, KeySpec, Origin, ...), plus "Aliases" and "CurrentKeyVersion"
 * and "RotationPeriodInDays". Appended to out as text. */
S3S_RESULT s3s_kms_key_json(const struct s3s_kms_key *k, struct s3s_buf *out);
/* The same as a new json-c object in *out (the caller json_object_put()s
 * it), for callers that put it inside a larger document or print it
 * their own way. Dates are numbers of Unix seconds, as the KMS API sends
 * them. */
S3S_RESULT s3s_kms_key_metadata(const struct s3s_kms_key *k, struct json_object **out);

struct s3s_kms_create_opts {
    const char *account;        /* required, 12 digits */
    const char *region;         /* required; letters, digits, '-' and '_' */
    const char *description;    /* may be NULL; UTF-8, S3S_KMS_MAX_DESCRIPTION_LEN bytes at most */
    const char *alias;          /* may be NULL; "alias/NAME", made in the same transaction */
    int64_t rotation_period_s;  /* 0: off; else S3S_KMS_MIN..MAX_ROTATION_DAYS days */
    bool aws_managed;
    const char *policy;         /* may be NULL (default policy) */
};
/* Creates an Enabled key with version 1 of fresh random material, with a
 * new random (v4) UUID as its id. The alias must not exist in the account
 * (S3S_ERR_KMS_ALREADY_EXISTS) nor start with "alias/aws/" unless
 * aws_managed; other bad options are S3S_ERR_INVALID_ARG (a policy over
 * S3S_POLICY_MAX_LEN: S3S_ERR_KMS_MALFORMED_POLICY). On error *out is
 * empty (cleaned up). */
S3S_RESULT s3s_kms_create(struct s3s_keystore *ks, const struct s3s_kms_create_opts *o,
                          struct s3s_kms_key *out);
/* The account's default key (alias aws/s3), created with aws_managed and
 * the given rotation period if it does not exist yet, in one transaction
 * (safe when several processes race: one key results). *created (may be
 * NULL) tells whether this call made it. */
S3S_RESULT s3s_kms_default_key(struct s3s_keystore *ks, const char *account, const char *region,
                               int64_t rotation_period_s, struct s3s_kms_key *out,
                               bool *created);

/* Metadata of one key by id; S3S_ERR_KMS_NOT_FOUND if absent. */
S3S_RESULT s3s_kms_describe(struct s3s_keystore *ks, const char *id, struct s3s_kms_key *out);

/* Enable / disable. A key pending deletion cannot be enabled or disabled
 * (S3S_ERR_KMS_INVALID_STATE). */
S3S_RESULT s3s_kms_set_enabled(struct s3s_keystore *ks, const char *id, bool enabled);
/* Adds a new material version (on-demand rotation); a key that is not
 * Enabled cannot be rotated (S3S_ERR_KMS_DISABLED / _INVALID_STATE). Unlike
 * AWS, s3seal rotates an aws_managed key on demand too: an operator who
 * fears its material leaked has no other remedy. */
S3S_RESULT s3s_kms_rotate(struct s3s_keystore *ks, const char *id, uint32_t *new_version);
/* What an automatic change did to one key, reported after it is committed
 * (for the audit trail): the key's ARN and its new version (0: the key was
 * destroyed). */
typedef void s3s_kms_key_event_fn(void *ctx, const char *arn, uint32_t version);

/* Automatic rotation: every Enabled key with a rotation period whose newest
 * version is at least that old at `now` gets a new version, created `now`
 * (one transaction per key that checks again, so servers sharing the
 * keystore rotate once). *rotated counts them; each (may be NULL) hears of
 * every one. */
S3S_RESULT s3s_kms_rotate_due(struct s3s_keystore *ks, int64_t now, size_t *rotated,
                              s3s_kms_key_event_fn *each, void *ctx);
/* Sets a rotation period (0: off; else S3S_KMS_MIN..MAX_ROTATION_DAYS days,
 * S3S_ERR_INVALID_ARG otherwise). The key must be Enabled, as for
 * s3s_kms_rotate. */
S3S_RESULT s3s_kms_set_rotation(struct s3s_keystore *ks, const char *id, int64_t period_s);
/* PendingDeletion with deletion_date = now + days (7..30, else
 * S3S_ERR_INVALID_ARG). An aws_managed key cannot be deleted
 * (S3S_ERR_KMS_INVALID_STATE). */
S3S_RESULT s3s_kms_schedule_deletion(struct s3s_keystore *ks, const char *id, int days,
                                     int64_t now, int64_t *deletion_date);
/* Back to Disabled, as AWS does (S3S_ERR_KMS_INVALID_STATE unless pending). */
S3S_RESULT s3s_kms_cancel_deletion(struct s3s_keystore *ks, const char *id);
/* Destroys (key row, material, aliases) every key pending deletion whose
 * deletion date is at or before `now`, in one transaction; *destroyed
 * counts them; each (may be NULL) hears of every one. What they wrapped is
 * lost for good. */
S3S_RESULT s3s_kms_sweep(struct s3s_keystore *ks, int64_t now, size_t *destroyed,
                         s3s_kms_key_event_fn *each, void *ctx);

/* Aliases: "alias/NAME" (NAME of [A-Za-z0-9/_-], 1..250 chars), per account.
 * Names starting with "alias/aws/" are reserved (S3S_ERR_INVALID_ARG).
 * As in AWS, the key must be a customer managed key of the same account
 * (S3S_ERR_KMS_NOT_FOUND otherwise; an aws_managed one: S3S_ERR_INVALID_ARG)
 * and not pending deletion (S3S_ERR_KMS_INVALID_STATE); an existing alias is
 * S3S_ERR_KMS_ALREADY_EXISTS. */
S3S_RESULT s3s_kms_alias_create(struct s3s_keystore *ks, const char *account, const char *alias,
                                const char *key_id);
/* S3S_ERR_KMS_NOT_FOUND when the account has no such alias. */
S3S_RESULT s3s_kms_alias_delete(struct s3s_keystore *ks, const char *account, const char *alias);
/* Whether `alias` is a well-formed alias/NAME that callers may create (not
 * reserved). */
bool s3s_kms_alias_name_valid(const char *alias);
/* arn:aws:kms:REGION:ACCOUNT:alias/NAME, appended to out. */
S3S_RESULT s3s_kms_alias_arn(const char *region, const char *account, const char *alias,
                             struct s3s_buf *out);

/* The stored policy (a new string in *out) or NULL for the default policy. */
S3S_RESULT s3s_kms_policy_get(struct s3s_keystore *ks, const char *id, char **out);
/* Stores a policy (the caller has validated it), replacing any. A key
 * pending deletion keeps its policy (S3S_ERR_KMS_INVALID_STATE); a policy
 * over S3S_POLICY_MAX_LEN is S3S_ERR_KMS_MALFORMED_POLICY. */
S3S_RESULT s3s_kms_policy_put(struct s3s_keystore *ks, const char *id, const char *policy);
/* The default key policy's JSON for a key of `account` (what get-policy
 * shows for a key without one): the account's root may do kms:*. */
S3S_RESULT s3s_kms_default_policy(const char *account, struct s3s_buf *out);

/* Bumped by every change to keys, versions, aliases or policies. */
S3S_RESULT s3s_kms_generation(struct s3s_keystore *ks, uint64_t *gen);

/* ------------------------------------------------------------- snapshots */

struct s3s_kms_snap_key {
    struct s3s_kms_key meta;
    /* with_material: versions 1..meta.current_version, 32 bytes each,
     * version v at (v - 1) * 32; else empty */
    struct s3s_secret material;
};
struct s3s_kms_snap_alias {
    char account[13];
    char *name;     /* "alias/NAME" */
    size_t key;     /* index into keys */
    int64_t created; /* Unix seconds */
};
/* Every key and alias, read in one transaction. Aliases are sorted by
 * account, then name. */
struct s3s_kms_snapshot {
    uint64_t generation;
    struct s3s_kms_snap_key *keys; /* sorted by id */
    size_t n_keys;
    struct s3s_kms_snap_alias *aliases;
    size_t n_aliases;
};
S3S_RESULT s3s_kms_snapshot_load(struct s3s_keystore *ks, bool with_material,
                                 struct s3s_kms_snapshot **out);
void s3s_kms_snapshot_free(struct s3s_kms_snapshot *s);

/* Finds the key a reference names, as AWS resolves a KeyId parameter: a
 * bare key id or "alias/NAME" names a key of caller_account; a key ARN
 * (arn:aws:kms:REGION:ACCOUNT:key/ID) or an alias ARN
 * (arn:aws:kms:REGION:ACCOUNT:alias/NAME) names one of ACCOUNT, in REGION
 * (which must be the key's). NULL when nothing matches. */
const struct s3s_kms_snap_key *s3s_kms_snapshot_find(const struct s3s_kms_snapshot *s,
                                                     const char *ref,
                                                     const char *caller_account);
/* A key by id, whatever its account (ids are unique); NULL when absent. */
const struct s3s_kms_snap_key *s3s_kms_snapshot_by_id(const struct s3s_kms_snapshot *s,
                                                      const char *id);
/* A key by exact ARN; NULL when absent. */
const struct s3s_kms_snap_key *s3s_kms_snapshot_by_arn(const struct s3s_kms_snapshot *s,
                                                       struct s3s_cur arn);
/* A version's 32-byte material (borrowed from the snapshot);
 * S3S_ERR_KEY_NOT_FOUND when the version does not exist or material was
 * not loaded. */
S3S_RESULT s3s_kms_snap_material(const struct s3s_kms_snap_key *k, uint32_t version,
                                 const uint8_t **material);

#endif /* S3S_KEYSTORE_KMS_H */
