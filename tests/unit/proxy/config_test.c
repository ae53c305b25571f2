/*
 * config_test.c - the YAML config loader: the defaults of a minimal config,
 * a file that sets every key, each form of secret, endpoint and listen
 * parsing, and the refusals that must stop start-up, each checked by the
 * exact start of its "FILE:LINE: reason" message. Ends with an
 * allocation-failure sweep and the leak check.
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "proxy/config.h"
#include "testlib.h"

static char s_dir[64];          /* a temporary directory for every file below */
static char s_secret_path[128]; /* "file-sec1\n" */
static char s_crlf_path[128];   /* "crlf-secret\r\n" */
static char s_empty_path[128];  /* "\n" */

#define BASE "listen: 127.0.0.1:8080\n" AFTER_LISTEN
#define AFTER_LISTEN                                                                           \
    "backend:\n"                                                                               \
    "  endpoint: http://127.0.0.1:9000\n"                                                      \
    "  access_key: BK\n"                                                                       \
    "  secret_key: backend-secret\n"                                                           \
    "credentials:\n"                                                                           \
    "  - access_key: AK1\n"                                                                    \
    "    secret_key: s1\n"
/* BASE is 8 lines: anything appended starts at line 9. */

/* The backend section up to (not including) its secret; lines 1-4. */
#define NO_SECRET                                                                              \
    "listen: 127.0.0.1:8080\n"                                                                 \
    "backend:\n"                                                                               \
    "  endpoint: http://h\n"                                                                   \
    "  access_key: a\n"

#define CREDS "credentials:\n  - access_key: AK1\n    secret_key: s1\n"

static struct s3s_config *s_load(const char *yaml, char *why, size_t why_len)
{
    struct s3s_config *cfg = NULL;
    s3s_result r = s3s_config_load_string(yaml, strlen(yaml), "t.yaml", &cfg, why, why_len);
    if (s3s_is_ok(r)) {
        return cfg;
    }
    T_CHECK(r.code == S3S_ERR_CONFIG && cfg == NULL);
    return NULL;
}

static struct s3s_config *s_load_ok(const char *yaml)
{
    char why[512] = "";
    struct s3s_config *cfg = s_load(yaml, why, sizeof(why));
    if (!cfg) {
        fprintf(stderr, "unexpected refusal: %s\n--- for:\n%s---\n", why, yaml);
    }
    T_CHECK(cfg != NULL);
    return cfg;
}

static bool s_prefix(const char *why, const char *want)
{
    if (strncmp(why, want, strlen(want)) != 0) {
        fprintf(stderr, "want a message starting\n  \"%s\"\ngot\n  \"%s\"\n", want, why);
        return false;
    }
    return true;
}

/* The config must be refused with a message starting with `want`. */
#define REFUSED(yaml, want)                                                                    \
    do {                                                                                       \
        char why_[512] = "";                                                                   \
        struct s3s_config *c_ = s_load((yaml), why_, sizeof(why_));                            \
        T_CHECK(c_ == NULL);                                                                   \
        T_CHECK(s_prefix(why_, (want)));                                                       \
        s3s_config_destroy(c_);                                                                \
    } while (0)

static bool s_secret_is(const struct s3s_secret *s, const char *want)
{
    return s->ptr && s->len == strlen(want) && memcmp(s->ptr, want, s->len) == 0;
}

static void s_write(const char *path, const char *data)
{
    FILE *f = fopen(path, "wb");
    T_CHECK(f != NULL);
    if (f) {
        T_CHECK(fwrite(data, 1, strlen(data), f) == strlen(data));
        fclose(f);
    }
    T_CHECK(chmod(path, 0600) == 0); /* as secret files must be */
}

/* ------------------------------------------------------------- defaults */

static void test_minimal_defaults(void)
{
    struct s3s_config *c = s_load_ok(BASE);
    if (!c) {
        return;
    }
    T_STREQ(c->listen_host, "127.0.0.1");
    T_CHECK(c->listen_port == 8080);
    T_STREQ(c->account_id, "111122223333");
    T_STREQ(c->region, "us-east-1"); /* = backend.region, itself defaulted */
    T_CHECK(c->domain == NULL);
    T_CHECK(c->workers == 1);
    T_CHECK(c->log_level == S3S_LOG_INFO);

    T_STREQ(c->backend.endpoint, "http://127.0.0.1:9000");
    T_STREQ(c->backend.scheme, "http");
    T_STREQ(c->backend.host, "127.0.0.1");
    T_CHECK(c->backend.port == 9000);
    T_STREQ(c->backend.host_header, "127.0.0.1:9000");
    T_STREQ(c->backend.region, "us-east-1");
    T_STREQ(c->backend.access_key, "BK");
    T_CHECK(s_secret_is(&c->backend.secret_key, "backend-secret"));
    T_CHECK(c->backend.ca_file == NULL);
    T_CHECK(c->backend.tls_verify);
    T_CHECK(c->backend.max_connections == 64);

    T_CHECK(c->n_credentials == 1);
    T_STREQ(c->credentials[0].access_key, "AK1");
    T_CHECK(s_secret_is(&c->credentials[0].secret_key, "s1"));
    T_STREQ(c->credentials[0].principal, "arn:aws:iam::111122223333:user/AK1");

    T_STREQ(c->keystore.path, "./s3seal-keystore");
    T_CHECK(c->keystore.master_key_file == NULL);
    T_CHECK(c->keystore.kms_rotation_days == 365);
    T_CHECK(c->n_buckets == 0);
    T_CHECK(c->audit_log == NULL);
    T_CHECK(!c->sigv2);
    T_CHECK(c->plaintext_etag);
    T_CHECK(c->cipher == S3S_CONFIG_CIPHER_AES_256_GCM);

    T_CHECK(c->limits.max_header_bytes == 64 * 1024);
    T_CHECK(c->limits.max_headers == 128);
    T_CHECK(c->limits.max_url_bytes == 8 * 1024);
    T_CHECK(c->limits.max_body_bytes == (uint64_t)5 << 30);
    T_CHECK(c->limits.header_timeout_ms == 30000);
    T_CHECK(c->limits.idle_timeout_ms == 60000);
    T_CHECK(c->limits.backend_timeout_ms == 30000);
    T_CHECK(c->limits.shutdown_timeout_ms == 30000);
    T_CHECK(c->limits.max_connections == 4096);

    T_CHECK(s3s_config_find_credential(c, S3S_CUR_LIT("AK1")) == &c->credentials[0]);
    T_CHECK(s3s_config_find_credential(c, S3S_CUR_LIT("AK")) == NULL);
    T_CHECK(s3s_config_find_credential(c, S3S_CUR_LIT("AK12")) == NULL);
    T_CHECK(s3s_config_find_bucket(c, S3S_CUR_LIT("docs")) == NULL);
    s3s_config_destroy(c);

    /* The default principal uses the configured account. */
    c = s_load_ok(BASE "account_id: 444455556666\n");
    if (c) {
        T_STREQ(c->account_id, "444455556666"); /* unquoted is fine too */
        T_STREQ(c->credentials[0].principal, "arn:aws:iam::444455556666:user/AK1");
        s3s_config_destroy(c);
    }
    s3s_config_destroy(NULL);
}

/* ---------------------------------------------------- every key, from a file */

static void test_full_file(void)
{
    setenv("S3SEAL_TEST_SECRET", "from-env", 1);
    setenv("S3SEAL_TEST_CRED", "cred-from-env", 1);
    char yaml[4096];
    snprintf(yaml, sizeof(yaml),
             "# every key\n"
             "listen: \"[::1]:9443\"\n"
             "account_id: \"444455556666\"\n"
             "region: eu-west-1\n"
             "domain: s3.example.test\n"
             "workers: 2\n"
             "log_level: debug\n"
             "backend:\n"
             "  endpoint: https://backend.example.test/\n"
             "  region: eu-central-1\n"
             "  access_key: BK\n"
             "  secret_key_env: S3SEAL_TEST_SECRET\n"
             "  ca_file: /etc/ssl/certs/ca-certificates.crt\n"
             "  tls_verify: no\n"
             "  max_connections: 8\n"
             "credentials:\n"
             "  - access_key: AK1\n"
             "    secret_key_file: %s\n"
             "    principal: arn:aws:iam::444455556666:role/app\n"
             "  - access_key: AK2\n"
             "    secret_key: two\n"
             "  - access_key: AK3\n"
             "    secret_key_env: S3SEAL_TEST_CRED\n"
             "    principal: \"777788889999\"\n"
             "  - access_key: AK4\n"
             "    secret_key_file: %s\n"
             "    principal: arn:aws:iam::444455556666:root\n"
             "keystore:\n"
             "  path: /tmp/ks.db\n"
             "  master_key_file: /tmp/master.key\n"
             "  kms_rotation_days: 90\n"
             "buckets:\n"
             "  docs:\n"
             "    default_encryption: aws:kms\n"
             "    kms_key_id: alias/docs\n"
             "    require_encryption: true\n"
             "  logs:\n"
             "    default_encryption: AES256\n"
             "    cipher: AES-256-GCM\n"
             "  plain:\n"
             "    default_encryption: none\n"
             "    require_encryption: false\n"
             "audit_log: /tmp/audit.jsonl\n"
             "sigv2: yes\n"
             "plaintext_etag: false\n"
             "cipher: CHACHA20-POLY1305\n"
             "limits:\n"
             "  max_header_bytes: 32768\n"
             "  max_headers: 64\n"
             "  max_url_bytes: 4096\n"
             "  max_body_bytes: 1073741824\n"
             "  header_timeout_ms: 1000\n"
             "  idle_timeout_ms: 5000\n"
             "  backend_timeout_ms: 7000\n"
             "  shutdown_timeout_ms: 0\n"
             "  max_connections: 100\n",
             s_secret_path, s_crlf_path);
    char path[160];
    snprintf(path, sizeof(path), "%s/full.yaml", s_dir);
    s_write(path, yaml);

    char why[512] = "";
    struct s3s_config *c = NULL;
    T_OK(s3s_config_load(path, &c, why, sizeof(why)));
    if (!c) {
        fprintf(stderr, "%s\n", why);
        return;
    }
    T_STREQ(c->listen_host, "::1");
    T_CHECK(c->listen_port == 9443);
    T_STREQ(c->account_id, "444455556666");
    T_STREQ(c->region, "eu-west-1"); /* its own, not backend.region */
    T_STREQ(c->domain, "s3.example.test");
    T_CHECK(c->workers == 2);
    T_CHECK(c->log_level == S3S_LOG_DEBUG);

    T_STREQ(c->backend.scheme, "https");
    T_STREQ(c->backend.host, "backend.example.test");
    T_CHECK(c->backend.port == 443);
    T_STREQ(c->backend.host_header, "backend.example.test");
    T_STREQ(c->backend.region, "eu-central-1");
    T_STREQ(c->backend.access_key, "BK");
    T_CHECK(s_secret_is(&c->backend.secret_key, "from-env"));
    T_STREQ(c->backend.ca_file, "/etc/ssl/certs/ca-certificates.crt");
    T_CHECK(!c->backend.tls_verify);
    T_CHECK(c->backend.max_connections == 8);

    T_CHECK(c->n_credentials == 4);
    /* A file's trailing newline (or CRLF) is not part of the secret. */
    T_CHECK(s_secret_is(&c->credentials[0].secret_key, "file-sec1"));
    T_STREQ(c->credentials[0].principal, "arn:aws:iam::444455556666:role/app");
    T_CHECK(s_secret_is(&c->credentials[1].secret_key, "two"));
    T_STREQ(c->credentials[1].principal, "arn:aws:iam::444455556666:user/AK2");
    T_CHECK(s_secret_is(&c->credentials[2].secret_key, "cred-from-env"));
    T_STREQ(c->credentials[2].principal, "777788889999");
    T_CHECK(s_secret_is(&c->credentials[3].secret_key, "crlf-secret"));
    T_STREQ(c->credentials[3].principal, "arn:aws:iam::444455556666:root");
    T_CHECK(s3s_config_find_credential(c, S3S_CUR_LIT("AK3")) == &c->credentials[2]);

    T_STREQ(c->keystore.path, "/tmp/ks.db");
    T_STREQ(c->keystore.master_key_file, "/tmp/master.key");
    T_CHECK(c->keystore.kms_rotation_days == 90);

    T_CHECK(c->n_buckets == 3);
    const struct s3s_config_bucket *b = s3s_config_find_bucket(c, S3S_CUR_LIT("docs"));
    T_CHECK(b && b->default_encryption == S3S_SSE_KMS && b->require_encryption);
    T_STREQ(b ? b->kms_key_id : NULL, "alias/docs");
    b = s3s_config_find_bucket(c, S3S_CUR_LIT("logs"));
    T_CHECK(b && b->default_encryption == S3S_SSE_AES256 && !b->kms_key_id &&
            !b->require_encryption && b->cipher == S3S_CONFIG_CIPHER_AES_256_GCM);
    b = s3s_config_find_bucket(c, S3S_CUR_LIT("plain"));
    T_CHECK(b && b->default_encryption == S3S_SSE_NONE && !b->require_encryption);
    T_CHECK(s3s_config_find_bucket(c, S3S_CUR_LIT("doc")) == NULL);

    T_STREQ(c->audit_log, "/tmp/audit.jsonl");
    T_CHECK(c->sigv2);
    T_CHECK(!c->plaintext_etag);
    T_CHECK(c->cipher == S3S_CONFIG_CIPHER_CHACHA20_POLY1305);
    T_CHECK(c->limits.max_header_bytes == 32768);
    T_CHECK(c->limits.max_headers == 64);
    T_CHECK(c->limits.max_url_bytes == 4096);
    T_CHECK(c->limits.max_body_bytes == 1073741824);
    T_CHECK(c->limits.header_timeout_ms == 1000);
    T_CHECK(c->limits.idle_timeout_ms == 5000);
    T_CHECK(c->limits.backend_timeout_ms == 7000);
    T_CHECK(c->limits.shutdown_timeout_ms == 0);
    T_CHECK(c->limits.max_connections == 100);
    s3s_config_destroy(c);

    /* Errors from a file carry its path. */
    snprintf(yaml, sizeof(yaml), BASE "\n\nlistn: 1\n");
    s_write(path, yaml);
    T_ERR(s3s_config_load(path, &c, why, sizeof(why)), S3S_ERR_CONFIG);
    T_CHECK(c == NULL);
    char want[256];
    snprintf(want, sizeof(want), "%s:11: unknown key 'listn' in the top level", path);
    T_CHECK(s_prefix(why, want));
    unlink(path);

    T_ERR(s3s_config_load("/nonexistent/s3seal.yaml", &c, why, sizeof(why)), S3S_ERR_CONFIG);
    T_CHECK(s_prefix(why, "/nonexistent/s3seal.yaml: cannot open: No such file or directory"));
    T_ERR(s3s_config_load(s_dir, &c, why, sizeof(why)), S3S_ERR_CONFIG);
    snprintf(want, sizeof(want), "%s: cannot read: Is a directory", s_dir);
    T_CHECK(s_prefix(why, want));
}

/* ------------------------------------------------------------- secrets */

static void test_secret_forms(void)
{
    char yaml[1024];
    struct s3s_config *c = s_load_ok(NO_SECRET "  secret_key: inline-secret\n" CREDS);
    if (c) {
        T_CHECK(s_secret_is(&c->backend.secret_key, "inline-secret"));
        s3s_config_destroy(c);
    }
    snprintf(yaml, sizeof(yaml), NO_SECRET "  secret_key_file: %s\n" CREDS, s_secret_path);
    c = s_load_ok(yaml);
    if (c) {
        T_CHECK(s_secret_is(&c->backend.secret_key, "file-sec1"));
        s3s_config_destroy(c);
    }
    setenv("S3SEAL_TEST_SECRET", "env-secret", 1);
    c = s_load_ok(NO_SECRET "  secret_key_env: S3SEAL_TEST_SECRET\n" CREDS);
    if (c) {
        T_CHECK(s_secret_is(&c->backend.secret_key, "env-secret"));
        s3s_config_destroy(c);
    }

    /* None, two, three. The missing one is reported at "backend:". */
    REFUSED(NO_SECRET CREDS, "t.yaml:2: backend.secret_key is required");
    REFUSED(NO_SECRET "  secret_key: x\n  secret_key_env: Y\n" CREDS,
            "t.yaml:6: backend: give only one of secret_key, secret_key_file and "
            "secret_key_env");
    REFUSED(NO_SECRET "  secret_key_file: /f\n  secret_key: x\n  secret_key_env: Y\n" CREDS,
            "t.yaml:7: backend: give only one of");
    REFUSED("listen: 127.0.0.1:8080\nbackend:\n  endpoint: http://h\n  access_key: a\n"
            "  secret_key: x\ncredentials:\n  - access_key: AK1\n",
            "t.yaml:7: credentials[0].secret_key is required");
    REFUSED(NO_SECRET "  secret_key: x\n"
            "credentials:\n  - access_key: AK1\n    secret_key: s\n    secret_key_file: /f\n",
            "t.yaml:9: credentials[0]: give only one of");

    /* File problems name the file, never a value. */
    REFUSED(NO_SECRET "  secret_key_file: /nonexistent/secret\n" CREDS,
            "t.yaml:5: backend.secret_key_file: cannot read /nonexistent/secret: No such file "
            "or directory");
    snprintf(yaml, sizeof(yaml), NO_SECRET "  secret_key_file: %s\n" CREDS, s_dir);
    char want[256];
    snprintf(want, sizeof(want), "t.yaml:5: backend.secret_key_file: %s is not a regular file",
             s_dir);
    REFUSED(yaml, want);
    snprintf(yaml, sizeof(yaml), NO_SECRET "  secret_key: x\n"
             "credentials:\n  - access_key: AK1\n    secret_key_file: %s\n", s_empty_path);
    snprintf(want, sizeof(want), "t.yaml:8: credentials[0].secret_key_file: %s is empty",
             s_empty_path);
    REFUSED(yaml, want);
    /* A secret file that group or others may read (or write), as the
     * master key file: refused, whoever reads it. */
    {
        static const unsigned modes[] = {0640, 0604, 0620, 0644, 0660};
        char open_file[160];
        snprintf(open_file, sizeof(open_file), "%s/open", s_dir);
        s_write(open_file, "secret\n");
        for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
            T_CHECK(chmod(open_file, modes[i]) == 0);
            snprintf(yaml, sizeof(yaml), NO_SECRET "  secret_key_file: %s\n" CREDS, open_file);
            snprintf(want, sizeof(want),
                     "t.yaml:5: backend.secret_key_file: %s is readable by group or others "
                     "(chmod 600 it)",
                     open_file);
            REFUSED(yaml, want);
            snprintf(yaml, sizeof(yaml), NO_SECRET "  secret_key: x\n"
                     "credentials:\n  - access_key: AK1\n    secret_key_file: %s\n", open_file);
            snprintf(want, sizeof(want),
                     "t.yaml:8: credentials[0].secret_key_file: %s is readable by group or "
                     "others (chmod 600 it)",
                     open_file);
            REFUSED(yaml, want);
        }
        /* 0400 and 0600 are fine. */
        T_CHECK(chmod(open_file, 0400) == 0);
        snprintf(yaml, sizeof(yaml), NO_SECRET "  secret_key_file: %s\n" CREDS, open_file);
        char why[512] = "";
        struct s3s_config *ok = s_load(yaml, why, sizeof(why));
        T_CHECK(ok != NULL);
        s3s_config_destroy(ok);
        unlink(open_file);
        /* Not a regular file: refused before any read (a FIFO would block
         * the start-up). */
        REFUSED(NO_SECRET "  secret_key_file: /dev/null\n" CREDS,
                "t.yaml:5: backend.secret_key_file: /dev/null is not a regular file");
        snprintf(open_file, sizeof(open_file), "%s/fifo", s_dir);
        T_CHECK(mkfifo(open_file, 0600) == 0);
        snprintf(yaml, sizeof(yaml), NO_SECRET "  secret_key_file: %s\n" CREDS, open_file);
        snprintf(want, sizeof(want), "t.yaml:5: backend.secret_key_file: %s is not a regular file",
                 open_file);
        REFUSED(yaml, want);
        unlink(open_file);
    }
    if (geteuid() != 0) { /* root reads anything */
        char locked[160];
        snprintf(locked, sizeof(locked), "%s/locked", s_dir);
        s_write(locked, "secret\n");
        chmod(locked, 0);
        snprintf(yaml, sizeof(yaml), NO_SECRET "  secret_key_file: %s\n" CREDS, locked);
        snprintf(want, sizeof(want),
                 "t.yaml:5: backend.secret_key_file: cannot read %s: Permission denied", locked);
        REFUSED(yaml, want);
        unlink(locked);
    }

    /* Environment variables: unset and empty are both refused. */
    unsetenv("S3SEAL_UNSET_VAR");
    REFUSED(NO_SECRET "  secret_key_env: S3SEAL_UNSET_VAR\n" CREDS,
            "t.yaml:5: backend.secret_key_env: environment variable S3SEAL_UNSET_VAR is not set");
    setenv("S3SEAL_EMPTY_VAR", "", 1);
    REFUSED(NO_SECRET "  secret_key_env: S3SEAL_EMPTY_VAR\n" CREDS,
            "t.yaml:5: backend.secret_key_env: environment variable S3SEAL_EMPTY_VAR is empty");
    REFUSED(NO_SECRET "  secret_key: {a: b}\n" CREDS,
            "t.yaml:5: backend.secret_key must be a non-empty string");
    REFUSED(NO_SECRET "  secret_key: \"\"\n" CREDS,
            "t.yaml:5: backend.secret_key must be a non-empty string");
    REFUSED(NO_SECRET "  secret_key_env: [A]\n" CREDS,
            "t.yaml:5: backend.secret_key_env must name an environment variable");

    /* No message ever holds an inline secret. */
    char why[512] = "";
    c = s_load(NO_SECRET "  secret_key: hunter2-secret\n  secret_key_env: X\n" CREDS, why,
               sizeof(why));
    T_CHECK(c == NULL && why[0] && !strstr(why, "hunter2"));
}

/* ---------------------------------------------------- endpoint and listen */

static void s_endpoint_case(const char *endpoint, const char *scheme, const char *host, int port,
                            const char *host_header)
{
    char yaml[512];
    snprintf(yaml, sizeof(yaml),
             "listen: 127.0.0.1:8080\nbackend:\n  endpoint: %s\n  access_key: a\n"
             "  secret_key: b\n" CREDS,
             endpoint);
    struct s3s_config *c = s_load_ok(yaml);
    if (!c) {
        return;
    }
    T_STREQ(c->backend.endpoint, endpoint);
    T_STREQ(c->backend.scheme, scheme);
    T_STREQ(c->backend.host, host);
    T_CHECK(c->backend.port == port);
    T_STREQ(c->backend.host_header, host_header);
    s3s_config_destroy(c);
}

static void s_endpoint_refused(const char *endpoint, const char *want)
{
    char yaml[512];
    snprintf(yaml, sizeof(yaml),
             "listen: 127.0.0.1:8080\nbackend:\n  endpoint: %s\n  access_key: a\n"
             "  secret_key: b\n" CREDS,
             endpoint);
    REFUSED(yaml, want);
}

static void test_endpoint(void)
{
    s_endpoint_case("http://minio", "http", "minio", 80, "minio");
    s_endpoint_case("http://minio:80", "http", "minio", 80, "minio");
    s_endpoint_case("https://s3.example.com", "https", "s3.example.com", 443, "s3.example.com");
    s_endpoint_case("https://s3.example.com:443/", "https", "s3.example.com", 443,
                    "s3.example.com");
    s_endpoint_case("https://s3.example.com:8443", "https", "s3.example.com", 8443,
                    "s3.example.com:8443");
    s_endpoint_case("http://10.0.0.5:443", "http", "10.0.0.5", 443, "10.0.0.5:443");
    s_endpoint_case("http://[::1]:9000", "http", "::1", 9000, "[::1]:9000");
    s_endpoint_case("https://[2001:db8::7]", "https", "2001:db8::7", 443, "[2001:db8::7]");
    s_endpoint_case("http://s3_backend:09000", "http", "s3_backend", 9000, "s3_backend:9000");

    s_endpoint_refused("ftp://x", "t.yaml:3: backend.endpoint must start with http:// or https://");
    s_endpoint_refused("127.0.0.1:9000",
                       "t.yaml:3: backend.endpoint must start with http:// or https://");
    s_endpoint_refused("HTTP://x", "t.yaml:3: backend.endpoint must start with http://");
    s_endpoint_refused("http://h/path",
                       "t.yaml:3: backend.endpoint must be scheme://host[:port] without a path");
    s_endpoint_refused("http://h?x=1", "t.yaml:3: backend.endpoint must be scheme://host[:port]");
    s_endpoint_refused("http://u:p@h", "t.yaml:3: backend.endpoint must be scheme://host[:port]");
    s_endpoint_refused("http://", "t.yaml:3: backend.endpoint: missing host");
    s_endpoint_refused("http://:9000", "t.yaml:3: backend.endpoint: missing host");
    s_endpoint_refused("\"http://h:\"", "t.yaml:3: backend.endpoint: bad port");
    s_endpoint_refused("http://h:0", "t.yaml:3: backend.endpoint: bad port");
    s_endpoint_refused("http://h:65536", "t.yaml:3: backend.endpoint: bad port");
    s_endpoint_refused("http://h:x1", "t.yaml:3: backend.endpoint: bad port");
    s_endpoint_refused("http://[::1", "t.yaml:3: backend.endpoint: unterminated IPv6 address");
    s_endpoint_refused("http://[::1]x", "t.yaml:3: backend.endpoint: bad port");
    s_endpoint_refused("http://[zz]:1", "t.yaml:3: backend.endpoint: bad IPv6 address");
    s_endpoint_refused("\"http://a b\"", "t.yaml:3: backend.endpoint: bad host name");
}

static void test_listen(void)
{
    struct s3s_config *c = s_load_ok("listen: 0.0.0.0:80\n" AFTER_LISTEN);
    if (c) {
        T_STREQ(c->listen_host, "0.0.0.0");
        T_CHECK(c->listen_port == 80);
        s3s_config_destroy(c);
    }
    c = s_load_ok("listen: '[::]:65535'\n" AFTER_LISTEN);
    if (c) {
        T_STREQ(c->listen_host, "::");
        T_CHECK(c->listen_port == 65535);
        s3s_config_destroy(c);
    }
    REFUSED("listen: 127.0.0.1:99999\n", "t.yaml:1: listen: bad port '99999'");
    REFUSED("listen: 127.0.0.1:0\n", "t.yaml:1: listen: bad port '0'");
    REFUSED("listen: \"127.0.0.1:\"\n", "t.yaml:1: listen: bad port ''");
    REFUSED("listen: 127.0.0.1:80a\n", "t.yaml:1: listen: bad port '80a'");
    REFUSED("listen: 8080\n", "t.yaml:1: listen must be HOST:PORT");
    REFUSED("listen: :8080\n", "t.yaml:1: listen must be HOST:PORT");
    REFUSED("listen:\n", "t.yaml:1: listen must be HOST:PORT");
    REFUSED("listen: {host: a}\n", "t.yaml:1: listen must be HOST:PORT");
    /* admin_listen: read as listen is, and never the S3 port. */
    REFUSED(BASE "admin_listen: 127.0.0.1:8080\n",
            "t.yaml:9: admin_listen must differ from listen (port 8080)");
    REFUSED(BASE "admin_listen: 0.0.0.0:8080\n",
            "t.yaml:9: admin_listen must differ from listen (port 8080)");
    REFUSED("listen: 0.0.0.0:8080\n" AFTER_LISTEN "admin_listen: 127.0.0.1:8080\n",
            "t.yaml:9: admin_listen must differ from listen (port 8080)");
    REFUSED(BASE "admin_listen: 127.0.0.1:0\n", "t.yaml:9: admin_listen: bad port '0'");
    REFUSED(BASE "admin_listen: localhost:9100\n",
            "t.yaml:9: admin_listen: HOST must be an IP address");
    {
        struct s3s_config *ac = s_load_ok(BASE "admin_listen: \"[::1]:8080\"\n");
        if (ac) {
            T_STREQ(ac->admin_host, "::1");
            T_CHECK(ac->admin_port == 8080); /* another address, the same port: fine */
            s3s_config_destroy(ac);
        }
        ac = s_load_ok(BASE);
        if (ac) {
            T_CHECK(ac->admin_host == NULL);
            s3s_config_destroy(ac);
        }
    }
    REFUSED("listen: localhost:8080\n", "t.yaml:1: listen: HOST must be an IP address");
    REFUSED("listen: 300.1.1.1:8080\n", "t.yaml:1: listen: HOST must be an IP address");
    REFUSED("listen: \"::1:8080\"\n", "t.yaml:1: listen: put IPv6 addresses in brackets");
    REFUSED("listen: \"[::1:8080\"\n", "t.yaml:1: listen: bad IPv6 address");
    REFUSED("listen: \"[nope]:8080\"\n", "t.yaml:1: listen: bad IPv6 address");
}

/* ------------------------------------------------------------- refusals */

static void test_refusals(void)
{
    /* Unknown keys, at every level. */
    REFUSED(BASE "listn: 1\n", "t.yaml:9: unknown key 'listn' in the top level");
    REFUSED("listen: 127.0.0.1:8080\nbackend:\n  endpont: x\n",
            "t.yaml:3: unknown key 'endpont' in backend");
    REFUSED(BASE "  - access_key: AK2\n    secret_key: s\n    princpal: x\n",
            "t.yaml:11: unknown key 'princpal' in credentials[1]");
    REFUSED(BASE "keystore:\n  pth: /x\n", "t.yaml:10: unknown key 'pth' in keystore");
    REFUSED(BASE "keystore:\n  kms_rotation_days: 89\n",
            "t.yaml:10: keystore.kms_rotation_days must be 0 (off) or 90 to 2560");
    REFUSED(BASE "keystore:\n  kms_rotation_days: 2561\n",
            "t.yaml:10: keystore.kms_rotation_days must be a whole number from 0 to 2560");
    REFUSED(BASE "buckets:\n  docs:\n    encryption: AES256\n",
            "t.yaml:11: unknown key 'encryption' in buckets.docs");
    REFUSED(BASE "limits:\n  max_body: 1\n", "t.yaml:10: unknown key 'max_body' in limits");
    REFUSED(BASE "access_logs: /tmp/a\n", "t.yaml:9: unknown key 'access_logs' in the top level");

    /* Wrong types. */
    REFUSED(BASE "keystore: /tmp\n", "t.yaml:9: keystore must be a mapping");
    REFUSED("listen: 127.0.0.1:8080\nbackend: http://h\n", "t.yaml:2: backend must be a mapping");
    REFUSED(BASE "limits: [1]\n", "t.yaml:9: limits must be a mapping");
    REFUSED(BASE "buckets: [docs]\n", "t.yaml:9: buckets must be a mapping of bucket names");
    REFUSED(BASE "buckets:\n  docs: AES256\n", "t.yaml:10: buckets.docs must be a mapping");
    REFUSED(NO_SECRET "  secret_key: x\ncredentials:\n  access_key: AK1\n",
            "t.yaml:7: credentials must be a list");
    REFUSED(NO_SECRET "  secret_key: x\ncredentials:\n  - AK1\n",
            "t.yaml:7: credentials[0] must be a mapping");
    REFUSED(NO_SECRET "  secret_key: x\ncredentials: []\n",
            "t.yaml:6: credentials must list at least one access key");
    REFUSED(BASE "region: [a, b]\n", "t.yaml:9: region must be a string");
    REFUSED(BASE "domain:\n", "t.yaml:9: domain must not be empty");
    REFUSED(BASE "audit_log: {a: 1}\n", "t.yaml:9: audit_log must be a string");
    REFUSED("- a\n- b\n", "t.yaml:1: the top level must be a mapping");
    REFUSED("just text\n", "t.yaml:1: the top level must be a mapping");
    REFUSED(BASE "? [a]\n: b\n", "t.yaml:9: keys in the top level must be strings");

    /* Malformed values. */
    REFUSED(BASE "workers: lots\n", "t.yaml:9: workers must be a whole number from 1 to 64");
    REFUSED(BASE "workers: 0\n", "t.yaml:9: workers must be a whole number from 1 to 64");
    REFUSED(BASE "workers: 65\n", "t.yaml:9: workers must be a whole number from 1 to 64");
    REFUSED(BASE "workers: -1\n", "t.yaml:9: workers must be a whole number");
    REFUSED(BASE "workers: 1.5\n", "t.yaml:9: workers must be a whole number");
    REFUSED(BASE "limits:\n  max_headers: -1\n", "t.yaml:10: limits.max_headers must be a whole "
                                                 "number");
    REFUSED(BASE "limits:\n  max_body_bytes: 99999999999999999999999\n",
            "t.yaml:10: limits.max_body_bytes must be a whole number");
    REFUSED(BASE "log_level: loud\n", "t.yaml:9: log_level must be debug, info, warn, error");
    REFUSED(BASE "sigv2: maybe\n", "t.yaml:9: sigv2 must be true or false");
    REFUSED(BASE "cipher: AES-128-CBC\n",
            "t.yaml:9: cipher must be AES-256-GCM or CHACHA20-POLY1305");
    REFUSED("listen: 127.0.0.1:8080\nbackend:\n  endpoint: http://h\n  tls_verify: 1\n",
            "t.yaml:4: backend.tls_verify must be true or false");
    REFUSED(BASE "account_id: 12\n", "t.yaml:9: account_id must be 12 digits");
    REFUSED(BASE "account_id: \"11112222333a\"\n", "t.yaml:9: account_id must be 12 digits");
    REFUSED(BASE "account_id: 1111222233334\n", "t.yaml:9: account_id must be 12 digits");

    /* Missing required keys. */
    REFUSED("", "t.yaml: the file is empty");
    REFUSED("# only a comment\n", "t.yaml: the file is empty");
    REFUSED("backend: {}\n", "t.yaml:1: listen is required");
    REFUSED("listen: 127.0.0.1:8080\n", "t.yaml:1: backend is required");
    REFUSED("listen: 127.0.0.1:8080\nbackend:\n  access_key: a\n",
            "t.yaml:2: backend.endpoint is required");
    REFUSED("listen: 127.0.0.1:8080\nbackend:\n  endpoint: http://h\n  secret_key: s\n",
            "t.yaml:2: backend.access_key is required");
    REFUSED(NO_SECRET "  secret_key: x\n", "t.yaml:1: credentials is required");
    REFUSED(NO_SECRET "  secret_key: x\ncredentials:\n  - secret_key: s\n",
            "t.yaml:7: credentials[0].access_key is required");

    /* Credentials. */
    REFUSED(BASE "  - access_key: AK1\n    secret_key: again\n",
            "t.yaml:9: credentials[1]: access key AK1 is listed twice");
    REFUSED(BASE "  - access_key: AK/2\n    secret_key: s\n",
            "t.yaml:9: credentials[1].access_key must be printable ASCII");
    REFUSED(BASE "    principal: alice\n",
            "t.yaml:9: credentials[0].principal must be arn:aws:iam");
    REFUSED(BASE "    principal: arn:aws:iam::1234:user/a\n",
            "t.yaml:9: credentials[0].principal must be");
    REFUSED(BASE "    principal: arn:aws:iam::111122223333:group/admins\n",
            "t.yaml:9: credentials[0].principal must be");
    REFUSED(BASE "    principal: arn:aws:iam::111122223333:user/\n",
            "t.yaml:9: credentials[0].principal must be");
    REFUSED(BASE "    principal: arn:aws:s3:::bucket\n",
            "t.yaml:9: credentials[0].principal must be");

    /* Buckets. */
    REFUSED(BASE "buckets:\n  docs:\n    default_encryption: DES\n",
            "t.yaml:11: buckets.docs.default_encryption must be AES256, aws:kms or none");
    REFUSED(BASE "buckets:\n  docs:\n    default_encryption: AES256\n    kms_key_id: k\n",
            "t.yaml:12: buckets.docs.kms_key_id needs default_encryption: aws:kms");
    REFUSED(BASE "buckets:\n  docs:\n    kms_key_id: k\n",
            "t.yaml:11: buckets.docs.kms_key_id needs default_encryption: aws:kms");
    REFUSED(BASE "buckets:\n  docs:\n    require_encryption: sure\n",
            "t.yaml:11: buckets.docs.require_encryption must be true or false");
    REFUSED(BASE "buckets:\n  docs: {}\n  docs: {}\n", "t.yaml:11: bucket docs is listed twice");

    /* Duplicates and YAML itself. */
    REFUSED(BASE "backend: {}\n", "t.yaml:9: duplicate key 'backend' in the top level");
    REFUSED("listen: [unclosed\n", "t.yaml:2: did not find expected");
    REFUSED("listen: \"open\n", "t.yaml:2: found unexpected end of stream");
    REFUSED("listen: a\n  bad: indent\n", "t.yaml:2: mapping values are not allowed");
    REFUSED("listen: a\n\tbackend: b\n", "t.yaml:2: found a tab character");
    REFUSED(BASE "---\nlisten: 127.0.0.1:1\n", "t.yaml:10: only one YAML document is allowed");
    REFUSED(BASE "---\nlisten: [\n", "t.yaml:11: did not find expected");
    REFUSED(BASE "--- 5\n", "t.yaml:9: only one YAML document is allowed");
}

/* A YAML anchor and alias share one node: fine, each use is parsed on its own. */
static void test_yaml_features(void)
{
    struct s3s_config *c = s_load_ok(BASE "buckets:\n"
                                          "  a: &enc\n"
                                          "    default_encryption: AES256\n"
                                          "  b: *enc\n"
                                          "---\n");
    if (c) {
        T_CHECK(c->n_buckets == 2);
        T_CHECK(c->buckets[1].default_encryption == S3S_SSE_AES256);
        s3s_config_destroy(c);
    }
    /* NULL why is allowed. */
    struct s3s_config *none = NULL;
    T_ERR(s3s_config_load_string("x", 1, "t.yaml", &none, NULL, 0), S3S_ERR_CONFIG);
    T_CHECK(none == NULL);
}

/* Every allocation may fail: each failure is a clean refusal, never a leak. */
static void test_alloc_failures(void)
{
    char yaml[2048];
    snprintf(yaml, sizeof(yaml),
             BASE "  - access_key: AK2\n    secret_key_file: %s\n"
                  "buckets:\n  docs:\n    default_encryption: aws:kms\n    kms_key_id: k\n"
                  "keystore:\n  path: /k\n",
             s_secret_path);
    long base = s3s_mem_live();
    bool succeeded = false;
    for (long n = 0; n < 1000 && !succeeded; n++) {
        char why[256] = "";
        struct s3s_config *c = NULL;
        s3s_mem_fail_after(n);
        s3s_result r = s3s_config_load_string(yaml, strlen(yaml), "t.yaml", &c, why, sizeof(why));
        s3s_mem_fail_after(-1);
        if (s3s_is_ok(r)) {
            succeeded = true;
            s3s_config_destroy(c);
        } else {
            T_CHECK(r.code == S3S_ERR_CONFIG && c == NULL);
            if (!s_prefix(why, "t.yaml: out of memory")) {
                T_CHECK(false);
            }
        }
        if (s3s_mem_live() != base) {
            fprintf(stderr, "leak after failing allocation %ld\n", n);
            T_CHECK(false);
            break;
        }
    }
    T_CHECK(succeeded);
}

/* credentials[].policy_file (an IAM identity policy, validated at start-up
 * with its line and reason) and buckets.NAME.owner. */
static void test_authorization(void)
{
    char good[160], bad[160], yaml[1024];
    snprintf(good, sizeof(good), "%s/id-good.json", s_dir);
    snprintf(bad, sizeof(bad), "%s/id-bad.json", s_dir);
    s_write(good, "{\"Statement\":{\"Effect\":\"Allow\",\"Action\":\"s3:Get*\","
                  "\"Resource\":\"*\"}}");
    s_write(bad, "{\"Statement\":{\"Effect\":\"Allow\",\"Action\":\"s3:GetObjekt\","
                 "\"Resource\":\"*\"}}");
    snprintf(yaml, sizeof(yaml), BASE "    policy_file: %s\nbuckets:\n  old:\n    owner: "
                                      "\"444455556666\"\n", good);
    struct s3s_config *cfg = s_load_ok(yaml);
    if (cfg) {
        T_CHECK(cfg->credentials[0].identity_policy != NULL);
        T_CHECK(strcmp(cfg->buckets[0].owner, "444455556666") == 0);
    }
    s3s_config_destroy(cfg);
    snprintf(yaml, sizeof(yaml), BASE "    policy_file: %s\n", bad);
    char want[512];
    snprintf(want, sizeof(want),
             "t.yaml:9: credentials[0].policy_file %s: statement 1: unknown action", bad);
    REFUSED(yaml, want);
    snprintf(yaml, sizeof(yaml), BASE "    policy_file: %s/none.json\n", s_dir);
    REFUSED(yaml, "t.yaml:9: credentials[0].policy_file: cannot read");
    REFUSED(BASE "buckets:\n  old:\n    owner: bob\n",
            "t.yaml:11: buckets.old.owner must be a 12-digit account id");
}

/* tls: the files are checked at load, the key as a secret file (their
 * contents when the server builds its context: tls_test.c). */
static void test_tls(void)
{
    char cert[160], key[160], open_key[160], yaml[1024];
    snprintf(cert, sizeof(cert), "%s/cert.pem", s_dir);
    snprintf(key, sizeof(key), "%s/key.pem", s_dir);
    snprintf(open_key, sizeof(open_key), "%s/open-key.pem", s_dir);
    s_write(cert, "cert\n");
    s_write(key, "key\n");
    s_write(open_key, "key\n");
    T_CHECK(chmod(cert, 0644) == 0);
    T_CHECK(chmod(open_key, 0640) == 0);

    struct s3s_config *c = s_load_ok(BASE);
    if (c) {
        T_CHECK(c->tls.cert_file == NULL && c->tls.min_version == 0x0303);
        s3s_config_destroy(c);
    }
    snprintf(yaml, sizeof(yaml),
             BASE "tls:\n  cert_file: %s\n  key_file: %s\n  client_ca_file: %s\n"
                  "  min_version: \"1.3\"\n",
             cert, key, cert);
    c = s_load_ok(yaml);
    if (c) {
        T_STREQ(c->tls.cert_file, cert);
        T_STREQ(c->tls.key_file, key);
        T_STREQ(c->tls.client_ca_file, cert);
        T_STREQ(c->tls.origin, "t.yaml");
        T_CHECK(c->tls.min_version == 0x0304);
        T_CHECK(c->tls.cert_line == 10 && c->tls.key_line == 11 && c->tls.ca_line == 12);
        s3s_config_destroy(c);
    }
    snprintf(yaml, sizeof(yaml), BASE "tls:\n  cert_file: %s\n  key_file: %s\n", cert, open_key);
    REFUSED(yaml, "t.yaml:11: tls.key_file: ");
    {
        char why[512] = "";
        T_CHECK(s_load(yaml, why, sizeof(why)) == NULL);
        T_CHECK(strstr(why, "readable by group or others") != NULL);
    }
    snprintf(yaml, sizeof(yaml), BASE "tls:\n  cert_file: %s/none.pem\n  key_file: %s\n", s_dir,
             key);
    REFUSED(yaml, "t.yaml:10: tls.cert_file: cannot read ");
    snprintf(yaml, sizeof(yaml), BASE "tls:\n  cert_file: %s\n  key_file: %s\n", cert, s_dir);
    REFUSED(yaml, "t.yaml:11: tls.key_file: ");
    snprintf(yaml, sizeof(yaml), BASE "tls:\n  cert_file: %s\n", cert);
    REFUSED(yaml, "t.yaml:9: tls needs cert_file and key_file");
    snprintf(yaml, sizeof(yaml), BASE "tls:\n  cert_file: %s\n  key_file: %s\n  min_version: 1.1\n",
             cert, key);
    REFUSED(yaml, "t.yaml:12: tls.min_version must be 1.2 or 1.3");
    REFUSED(BASE "tls:\n  cert: x\n", "t.yaml:10: unknown key 'cert' in tls");
    REFUSED(BASE "tls: yes\n", "t.yaml:9: tls must be a mapping");
    unlink(cert);
    unlink(key);
    unlink(open_key);
}

/* The audit trail's place: a file, or `keystore` with the chain named by
 * instance_id (default HOSTNAME:PORT, kept over a reload). */
static void test_audit_keystore(void)
{
    struct s3s_config *c = s_load_ok(BASE);
    char host[256] = "", want[300];
    T_CHECK(gethostname(host, sizeof(host) - 1) == 0);
    snprintf(want, sizeof(want), "%s:8080", host);
    T_STREQ(c ? c->instance_id : NULL, want);
    T_CHECK(c && !c->instance_id_given && !s3s_config_audit_in_keystore(c));
    struct s3s_config *k = s_load_ok(BASE "audit_log: keystore\ninstance_id: web1:8080\n");
    T_CHECK(k && s3s_config_audit_in_keystore(k) && k->instance_id_given);
    T_STREQ(k ? k->instance_id : NULL, "web1:8080");
    struct s3s_config *f = s_load_ok(BASE "audit_log: ./keystore\n");
    T_CHECK(f && !s3s_config_audit_in_keystore(f));
    char changed[256] = "";
    if (c && k) {
        T_OK(s3s_config_keep_static(k, c, changed, sizeof(changed)));
        T_STREQ(k->instance_id, want);
        T_CHECK(strstr(changed, "instance_id") != NULL && strstr(changed, "audit_log") != NULL);
    }
    s3s_config_destroy(c);
    s3s_config_destroy(k);
    s3s_config_destroy(f);
}

int main(void)
{
    snprintf(s_dir, sizeof(s_dir), "/tmp/s3seal-cfg-XXXXXX");
    T_CHECK(mkdtemp(s_dir) != NULL);
    snprintf(s_secret_path, sizeof(s_secret_path), "%s/sec-XXXXXX", s_dir);
    int fd = mkstemp(s_secret_path);
    T_CHECK(fd >= 0);
    T_CHECK(write(fd, "file-sec1\n", 10) == 10);
    close(fd);
    snprintf(s_crlf_path, sizeof(s_crlf_path), "%s/crlf", s_dir);
    s_write(s_crlf_path, "crlf-secret\r\n");
    snprintf(s_empty_path, sizeof(s_empty_path), "%s/empty", s_dir);
    s_write(s_empty_path, "\n");

    test_minimal_defaults();
    test_full_file();
    test_secret_forms();
    test_endpoint();
    test_listen();
    test_refusals();
    test_authorization();
    test_tls();
    test_yaml_features();
    test_alloc_failures();
    test_audit_keystore();

    unlink(s_secret_path);
    unlink(s_crlf_path);
    unlink(s_empty_path);
    rmdir(s_dir);
    return t_finish("proxy.config");
}
