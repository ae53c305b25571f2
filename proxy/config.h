/*
 * config.h - s3seal's configuration: the YAML file of `s3seal serve -c FILE`
 * (DESIGN.md's interface contract), loaded once at start-up into an immutable
 * struct that every event loop reads and nobody writes.
 *
 * Secrets (backend and client secret keys) may be given inline, from a file
 * (`secret_key_file:`) or from an environment variable (`secret_key_env:`);
 * they are held in s3s_secret buffers and wiped on destroy.
 */
#ifndef S3S_PROXY_CONFIG_H
#define S3S_PROXY_CONFIG_H

#include <stdatomic.h>

#include "common/common.h"
#include "keystore/policy.h"

enum s3s_sse_mode { S3S_SSE_NONE = 0, S3S_SSE_AES256, S3S_SSE_KMS };

struct s3s_config_credential {
    char *access_key;
    struct s3s_secret secret_key;
    char *principal; /* IAM-style ARN; default arn:aws:iam::ACCOUNT:user/ACCESS_KEY */
    /* policy_file: the credential's IAM identity policy (authz.h); NULL
     * without one: the credential acts as its account's root. */
    char *policy_file;
    struct s3s_policy *identity_policy;
};

struct s3s_config_bucket {
    char *name;
    enum s3s_sse_mode default_encryption; /* AES256 | aws:kms | none */
    char *kms_key_id;                     /* may be NULL */
    bool bucket_key; /* aws:kms: a bucket key wraps new objects' data keys */
    bool require_encryption;
    int cipher; /* the AEAD of new objects (S3S_CONFIG_CIPHER_*); 0: the top-level cipher */
    char *owner; /* the owning account of a bucket that existed before; NULL: account_id */
};

/* `cipher:` values, numbered as sse.h's enum s3s_sse_aead. */
#define S3S_CONFIG_CIPHER_AES_256_GCM 1
#define S3S_CONFIG_CIPHER_CHACHA20_POLY1305 2

struct s3s_config {
    /* listen: "HOST:PORT" ("[::1]:8080" for IPv6) */
    char *listen_host;
    int listen_port;
    /* admin_listen: the metrics and health listener (admin.h); NULL: none */
    char *admin_host;
    int admin_port;
    char *account_id; /* default "111122223333" */
    char *region;     /* region s3seal answers for; default: backend.region */
    char *domain;     /* virtual-hosted-style base domain (bucket.DOMAIN); may be NULL */
    int workers;      /* event loops; default 1 */
    int log_level;    /* enum s3s_log_level; default info */

    struct {
        char *endpoint; /* http://host:port or https://host:port, no path */
        char *scheme;   /* "http" | "https" (parsed from endpoint) */
        char *host;     /* host part (parsed) */
        int port;       /* port (parsed; default 80/443) */
        char *host_header; /* "host" or "host:port" as it must appear in Host */
        char *region;   /* default us-east-1 */
        char *access_key;
        struct s3s_secret secret_key;
        char *ca_file;    /* CA bundle for https; NULL: system default */
        bool tls_verify;  /* default true */
        int max_connections; /* pooled upstream connections per loop; default 64 */
    } backend;

    struct s3s_config_credential *credentials;
    size_t n_credentials;

    struct {
        char *path;            /* keystore.path or keystore.url; default ./s3seal-keystore */
        char *master_key_file; /* may be NULL until the keystore is used */
        uint64_t root_key_rotation_days; /* automatic SSE-S3 root key rotation; 0: off */
        /* SSE-KMS: the rotation period of new KMS keys and of the default
         * key aws/s3 (default 365 days; 0: off); how long an unwrapped data
         * key is reused for the same principal and object (default 60 s;
         * 0: every use is a Decrypt) and how many are kept per event loop;
         * how long a bucket key serves new objects (default 3600 s). */
        uint64_t kms_rotation_days;
        uint64_t dek_cache_seconds;
        size_t dek_cache_entries;
        uint64_t bucket_key_seconds;
    } keystore;

    struct s3s_config_bucket *buckets;
    size_t n_buckets;

    /* audit_log: a file, or S3S_CONFIG_AUDIT_KEYSTORE for the keystore's
     * database (the records of a fleet in one place); NULL: no trail. */
    char *audit_log;
    /* instance_id: names this instance's chain of audit records in the
     * keystore; default "HOSTNAME:PORT" (the listen port). */
    char *instance_id;
    bool instance_id_given; /* false: the default, which follows listen */
    /* log_format: text (default) or json (enum s3s_log_format); access_log:
     * the file of the access lines, NULL: stderr with the diagnostic log. */
    int log_format;
    char *access_log;
    bool audit_fsync; /* flush every audit record to disk before the key is used */
    bool sigv2;      /* accept AWS Signature Version 2 (default false) */
    /* `serve` leaves its core dumps on (default false: the process is not
     * dumpable and its core size limit is 0, so no core file holds a secret). */
    bool debug_core_dumps;
    /* Encrypted PutObject answers with the plaintext's MD5 as its ETag, as
     * S3's SSE-S3 does (default true; costs an MD5 of the body when the
     * client sent no Content-MD5). */
    bool plaintext_etag;
    /* The AEAD s3seal seals new objects with: AES-256-GCM (default) or
     * CHACHA20-POLY1305; buckets may choose their own. */
    int cipher;

    struct {
        size_t max_header_bytes;   /* default 64 KiB */
        size_t max_headers;        /* default 128 */
        size_t max_url_bytes;      /* default 8 KiB */
        uint64_t max_body_bytes;   /* default 5 GiB (S3's single PUT limit) */
        uint64_t header_timeout_ms; /* default 30000 */
        uint64_t idle_timeout_ms;   /* keep-alive and body idle; default 60000 */
        uint64_t backend_timeout_ms; /* connect and first byte; default 30000 */
        uint64_t shutdown_timeout_ms; /* SIGTERM drain limit; default 30000 */
        size_t max_connections;    /* client connections per loop; default 4096 */
        /* Connections from one client address, all loops together; default
         * 128. Past either cap a connection gets 503 SlowDown and closes. */
        size_t max_connections_per_client;
        /* A request body slower than this (bytes/s) over a whole window is
         * cut off with 400 RequestTimeout; 0: no floor. Default 1024. */
        uint64_t min_body_rate;
        uint64_t body_rate_window_ms; /* default 20000 */
    } limits;

    /* tls: `listen` speaks HTTPS (tls.h). The files are checked here (there,
     * readable, the key not readable by group or others); their contents
     * when the server builds its TLS context, whose messages name `origin`
     * and the lines below. */
    struct {
        char *cert_file;      /* NULL: plain HTTP */
        char *key_file;
        char *client_ca_file; /* clients must present a certificate it signed */
        int min_version;      /* 0x0303 (TLS 1.2, default) or 0x0304 */
        char *origin;         /* the config file's name */
        unsigned long cert_line, key_line, ca_line;
    } tls;

    /* private: references (s3s_config_acquire/release); 1 once loaded */
    atomic_int refs_;
};

/*
 * Loads and validates the config file at `path`. On error returns
 * S3S_ERR_CONFIG and writes a one-line reason including the file name and
 * line number ("s3seal.yaml:7: unknown key 'listn'") into `why` (NUL-terminated,
 * truncated to why_len). On success *out is a new config owned by the caller.
 */
S3S_RESULT s3s_config_load(const char *path, struct s3s_config **out, char *why, size_t why_len);

/* Same, from a YAML string in memory (`name` is used in messages). */
S3S_RESULT s3s_config_load_string(const char *yaml, size_t len, const char *name,
                                  struct s3s_config **out, char *why, size_t why_len);

/* Drops the caller's reference (the one s3s_config_load gave): the last
 * one frees everything and wipes the secrets. NULL is fine. */
void s3s_config_destroy(struct s3s_config *cfg);

/* A reloaded config (SIGHUP) replaces the running one while requests still
 * read the old: each holder of a config takes a reference and releases it
 * when done (thread-safe); the last release destroys it. Both return or
 * take NULL harmlessly. */
const struct s3s_config *s3s_config_acquire(const struct s3s_config *cfg);
void s3s_config_release(const struct s3s_config *cfg);

/* A config read again at run time (`next`) takes the running one's
 * (`cur`) values of what cannot change without a restart: listen,
 * admin_listen, workers, region, account_id, the keystore's settings,
 * audit_log, audit_fsync and instance_id, backend.max_connections, debug_core_dumps,
 * and whether `tls` is there at all (named "tls").
 * Each such setting that differs is named in `changed` (comma-separated,
 * "" when none). Fails only when memory runs out. */
S3S_RESULT s3s_config_keep_static(struct s3s_config *next, const struct s3s_config *cur,
                                  char *changed, size_t changed_len);

/* The `audit_log` value that keeps the trail in the keystore's database. */
#define S3S_CONFIG_AUDIT_KEYSTORE "keystore"

struct s3s_audit;

/* Whether the audit trail is in the keystore's database. */
bool s3s_config_audit_in_keystore(const struct s3s_config *cfg);

/* Opens the audit trail the config names (cfg->audit_log must be set): the
 * file, flushed on each append if `fsync`, or instance_id's chain in the
 * keystore's database (each append committed there). The one place that
 * chooses; callers then append alike. Errors as s3s_audit_open's and
 * s3s_audit_open_keystore's, why saying what failed. */
S3S_RESULT s3s_config_audit_open(const struct s3s_config *cfg, bool fsync,
                                 struct s3s_audit **out, char *why, size_t why_len);

/* The credential for an access key, or NULL. */
const struct s3s_config_credential *s3s_config_find_credential(const struct s3s_config *cfg,
                                                               struct s3s_cur access_key);

/* The bucket's settings, or NULL when the config says nothing of it. */
const struct s3s_config_bucket *s3s_config_find_bucket(const struct s3s_config *cfg,
                                                       struct s3s_cur bucket);

#endif
