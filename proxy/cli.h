/*
 * cli.h - subcommands of the `s3seal` command line beyond `serve`. Each takes
 * the loaded config and its own argv (argv[0] is the command name) and
 * returns the process exit status (0 ok, 1 failure, 2 usage).
 */
#ifndef S3S_PROXY_CLI_H
#define S3S_PROXY_CLI_H

#include <stdbool.h>
#include <stdio.h>

#include "proxy/backend.h"
#include "proxy/config.h"

struct s3s_keystore;
struct s3s_sse_meta;

typedef int s3s_cli_fn(const struct s3s_config *cfg, int argc, char **argv);

/* Opens the config's keystore (creating the file if `create`), or prints
 * why it cannot on stderr and returns NULL. */
struct s3s_keystore *s3s_cli_keystore_open(const struct s3s_config *cfg, bool create);

int s3s_cli_keystore(const struct s3s_config *cfg, int argc, char **argv);
int s3s_cli_root_key(const struct s3s_config *cfg, int argc, char **argv);
int s3s_cli_rewrap(const struct s3s_config *cfg, int argc, char **argv);
int s3s_cli_migrate(const struct s3s_config *cfg, int argc, char **argv);
int s3s_cli_decrypt(const struct s3s_config *cfg, int argc, char **argv);
/* `s3seal catalog rebuild|prune`: the catalog's entries (cli_catalog.c). */
int s3s_cli_catalog(const struct s3s_config *cfg, int argc, char **argv);
/* `s3seal keys ...`: the KMS keys (cli_kms.c). */
int s3s_cli_keys(const struct s3s_config *cfg, int argc, char **argv);

/* ------------------------------------------ walking a bucket (cli_walk.c)
 * What the commands that work through a bucket's objects on the backend
 * (rewrap, migrate, catalog) share: blocking requests, listings, and a
 * progress line. */

/* One request to the backend (s3s_backend_perform, no timeout); when no
 * answer came, says why on stderr. */
S3S_RESULT s3s_cli_request(const struct s3s_config *cfg, const char *method,
                           struct s3s_cur raw_path, struct s3s_cur raw_query,
                           const struct s3s_sigv4_header *extra, size_t n_extra,
                           struct s3s_backend_resp *resp);
/* Appends `s` percent-encoded as a query value (or a path segment). */
S3S_RESULT s3s_cli_qescape(struct s3s_buf *b, const char *s);
/* Appends an object's raw path, "/BUCKET/KEY" (the key encoded). */
S3S_RESULT s3s_cli_object_path(struct s3s_buf *b, const char *bucket, const char *key);
/* The query naming a version ("versionId=..."), or nothing for NULL. */
S3S_RESULT s3s_cli_version_query(struct s3s_buf *b, const char *version_id);

/* An object's HEAD (a version's with version_id), and what later requests
 * for it need: its raw path and version query. Fails unless it answered
 * 200 with a Content-Length; s3s_cli_head_clean_up also then. */
struct s3s_cli_head {
    struct s3s_buf path;  /* "/BUCKET/KEY", the key encoded */
    struct s3s_buf query; /* "versionId=...", or empty */
    struct s3s_backend_resp resp;
    uint64_t size;        /* Content-Length */
    struct s3s_cur etag;  /* the ETag, unquoted (into resp.headers; empty if none) */
};
S3S_RESULT s3s_cli_head(const struct s3s_config *cfg, const char *bucket, const char *key,
                        const char *version_id, struct s3s_cli_head *h);
void s3s_cli_head_clean_up(struct s3s_cli_head *h);
/* An ETag without its quotes. */
struct s3s_cur s3s_cli_unquote(struct s3s_cur etag);

/* Splits "s3://BUCKET[/PREFIX]" into bucket (cap bytes) and *prefix
 * (pointing into arg, "" when absent); false if arg is not one. */
bool s3s_cli_target(const char *arg, char *bucket, size_t cap, const char **prefix);

/* One object (or version) a listing returned. */
struct s3s_cli_object {
    char *key;
    char *version_id; /* NULL: ListObjectsV2 (the current object) */
    char *etag;       /* the backend's, unquoted ("" if none listed) */
};
/* Every object under a prefix, in listing order, and where each of the
 * backend's pages ended (pages[i] is the index after page i). */
struct s3s_cli_listing {
    struct s3s_cli_object *objs;
    size_t n, cap;
    size_t *pages;
    size_t n_pages, pages_cap;
};
/* Lists a bucket's objects under `prefix`, every page: ListObjectsV2, or
 * with `versions` ListObjectVersions (versions only, no delete markers).
 * The whole listing is taken before any object is worked on, so a
 * command knows its total. Failures are said on stderr ("s3seal VERB:
 * ..."); *out is then freed. */
S3S_RESULT s3s_cli_list(const struct s3s_config *cfg, const char *verb, const char *bucket,
                        const char *prefix, bool versions, struct s3s_cli_listing *out);
void s3s_cli_listing_free(struct s3s_cli_listing *l);
/* Whether versioning was ever turned on for the bucket (Enabled or
 * Suspended: it may hold older versions). */
S3S_RESULT s3s_cli_bucket_versioned(const struct s3s_config *cfg, const char *bucket,
                                    bool *versioned);

/* A progress line on stderr when it is a terminal: objects done of the
 * total, the rate and the time left, redrawn at most four times a second
 * and once at the end. */
struct s3s_cli_progress {
    const char *verb;
    size_t total;
    bool on;
    double start_s, drawn_s;
};
void s3s_cli_progress_start(struct s3s_cli_progress *p, const char *verb, size_t total);
void s3s_cli_progress_step(struct s3s_cli_progress *p, size_t done);

/* ------------------------------------------------- decrypting (cli_keys.c) */

/* Plaintext as it is verified, one piece at a time. */
typedef s3s_result s3s_cli_plain_fn(void *ctx, struct s3s_cur plain);
/* What the reader worked out: the plaintext's size and, for a multipart
 * object, its part count (0 for one stream, or a count unknown). */
struct s3s_cli_layout {
    uint64_t plain_size;
    uint32_t parts;
};
struct s3s_cli_decrypt_opts {
    const char *verb;        /* "decrypt", "catalog rebuild": messages, audit */
    const char *bucket, *key;
    const char *what;        /* how messages name the ciphertext */
    struct s3s_cur etag;     /* the backend's ETag (the first layouts' part count) */
    FILE *in;                /* the whole ciphertext, seekable */
    s3s_cli_plain_fn *sink;
    void *sink_ctx;
    struct s3s_cli_layout *layout; /* filled before the first piece (optional) */
};
/* Decrypts an object's stored ciphertext with its metadata, every layout,
 * SSE-S3 and SSE-KMS (a KMS key's use is audited): the plaintext goes to
 * the sink one verified segment at a time, never a byte unverified; the
 * last piece comes before the end of the ciphertext is checked, so a
 * caller keeps nothing unless this returns 0. -1 with the reason on
 * stderr. */
int s3s_cli_object_decrypt(const struct s3s_config *cfg, struct s3s_keystore *ks,
                           const struct s3s_sse_meta *meta, const struct s3s_cli_decrypt_opts *o);

/* `audit verify FILE` needs nothing but the file, so it takes no config
 * (cfg NULL) and runs where none exists (an auditor's copy of the log).
 * `audit verify [--instance NAME]` checks the trail the config names: its
 * file, or every instance's chain in the keystore (cli_audit.c).
 * s3s_cli_audit_needs_config says which of the two argv asks for. */
bool s3s_cli_audit_needs_config(int argc, char **argv);
int s3s_cli_audit(const struct s3s_config *cfg, int argc, char **argv);

/* `policy simulate ...` explains an authorization decision (authz.h); it
 * reads policy files only, no config. */
int s3s_cli_policy(int argc, char **argv);

/* Usage texts (cli_help.c), one per command: `s3seal help [COMMAND]`,
 * `s3seal COMMAND --help` and each command's usage errors print the same. */
void s3s_cli_overview(FILE *f);
/* COMMAND's usage on f; false if there is no such command. */
bool s3s_cli_usage(const char *cmd, FILE *f);
/* Whether argv (argv[0] the command) asks for help: --help or -h before
 * any "--". */
bool s3s_cli_help_asked(int argc, char **argv);
/* The usages that keys and policy write from their own tables. */
void s3s_cli_keys_usage(FILE *f);
void s3s_cli_policy_usage(FILE *f);

#endif
