/*
 * config_test.c - the YAML config loader: a full config with every key and
 * the defaults, each form of secret, and the refusals that must stop
 * start-up, each with its file:line reason.
 */
#include <stdlib.h>
#include <unistd.h>

#include "common/log.h"
#include "proxy/config.h"
#include "testlib.h"

static char s_secret_path[64];

#define BASE                                                                                   \
    "listen: 127.0.0.1:8080\n"                                                                 \
    "backend:\n"                                                                               \
    "  endpoint: http://127.0.0.1:9000\n"                                                      \
    "  access_key: BK\n"                                                                       \
    "  secret_key: backend-secret\n"                                                           \
    "credentials:\n"                                                                           \
    "  - access_key: AK1\n"                                                                    \
    "    secret_key: s1\n"

static struct s3s_config *s_load(const char *yaml, char *why, size_t why_len)
{
    struct s3s_config *cfg = NULL;
    s3s_result r = s3s_config_load_string(yaml, strlen(yaml), "t.yaml", &cfg, why, why_len);
    return s3s_is_ok(r) ? cfg : NULL;
}

static void s_refused(const char *yaml, const char *want)
{
    char why[512] = "";
    struct s3s_config *cfg = s_load(yaml, why, sizeof(why));
    T_CHECK(cfg == NULL);
    if (!strstr(why, want)) {
        fprintf(stderr, "want \"%s\" in \"%s\"\n", want, why);
    }
    T_CHECK(strstr(why, want) != NULL);
    s3s_config_destroy(cfg);
}

static void test_full_and_defaults(void)
{
    char why[512] = "";
    struct s3s_config *c = s_load(BASE, why, sizeof(why));
    T_CHECK(c != NULL);
    if (!c) {
        fprintf(stderr, "%s\n", why);
        return;
    }
    T_STREQ(c->listen_host, "127.0.0.1");
    T_CHECK(c->listen_port == 8080);
    T_STREQ(c->account_id, "111122223333");
    T_STREQ(c->region, "us-east-1");
    T_STREQ(c->backend.scheme, "http");
    T_STREQ(c->backend.host, "127.0.0.1");
    T_CHECK(c->backend.port == 9000);
    T_STREQ(c->backend.host_header, "127.0.0.1:9000");
    T_CHECK(c->backend.secret_key.len == 14 && memcmp(c->backend.secret_key.ptr, "backend-secret", 14) == 0);
    T_CHECK(c->backend.tls_verify && c->backend.max_connections == 64);
    T_CHECK(c->n_credentials == 1);
    T_STREQ(c->credentials[0].principal, "arn:aws:iam::111122223333:user/AK1");
    T_CHECK(c->workers == 1 && c->log_level == S3S_LOG_INFO);
    T_CHECK(c->limits.max_body_bytes == (uint64_t)5 << 30);
    T_CHECK(s3s_config_find_credential(c, S3S_CUR_LIT("AK1")) == &c->credentials[0]);
    T_CHECK(s3s_config_find_credential(c, S3S_CUR_LIT("AK2")) == NULL);
    s3s_config_destroy(c);

    setenv("S3SEAL_TEST_SECRET", "from-env", 1);
    char yaml[2048];
    snprintf(yaml, sizeof(yaml),
             "listen: \"[::1]:9443\"\n"
             "account_id: \"444455556666\"\n"
             "region: eu-west-1\n"
             "domain: s3.example.test\n"
             "workers: 2\n"
             "log_level: debug\n"
             "backend:\n"
             "  endpoint: https://backend.example.test/\n"
             "  region: eu-west-1\n"
             "  access_key: BK\n"
             "  secret_key_env: S3SEAL_TEST_SECRET\n"
             "  ca_file: /etc/ssl/certs/ca-certificates.crt\n"
             "  tls_verify: false\n"
             "  max_connections: 8\n"
             "credentials:\n"
             "  - access_key: AK1\n"
             "    secret_key_file: %s\n"
             "    principal: arn:aws:iam::444455556666:role/app\n"
             "  - access_key: AK2\n"
             "    secret_key: two\n"
             "keystore:\n"
             "  path: /tmp/ks.db\n"
             "  master_key_file: /tmp/master.key\n"
             "  root_key_rotation_days: 90\n"
             "buckets:\n"
             "  docs:\n"
             "    default_encryption: aws:kms\n"
             "    kms_key_id: alias/docs\n"
             "    require_encryption: true\n"
             "  logs:\n"
             "    default_encryption: AES256\n"
             "audit_log: /tmp/audit.jsonl\n"
             "limits:\n"
             "  max_header_bytes: 32768\n"
             "  idle_timeout_ms: 5000\n",
             s_secret_path);
    c = s_load(yaml, why, sizeof(why));
    T_CHECK(c != NULL);
    if (!c) {
        fprintf(stderr, "%s\n", why);
        return;
    }
    T_STREQ(c->listen_host, "::1");
    T_CHECK(c->listen_port == 9443 && c->workers == 2 && c->log_level == S3S_LOG_DEBUG);
    T_STREQ(c->region, "eu-west-1");
    T_STREQ(c->domain, "s3.example.test");
    T_STREQ(c->backend.scheme, "https");
    T_CHECK(c->backend.port == 443);
    T_STREQ(c->backend.host_header, "backend.example.test");
    T_CHECK(c->backend.secret_key.len == 8 && memcmp(c->backend.secret_key.ptr, "from-env", 8) == 0);
    T_CHECK(!c->backend.tls_verify && c->backend.max_connections == 8);
    /* The file's trailing newline is not part of the secret. */
    T_CHECK(c->credentials[0].secret_key.len == 9 &&
            memcmp(c->credentials[0].secret_key.ptr, "file-sec1", 9) == 0);
    T_STREQ(c->credentials[0].principal, "arn:aws:iam::444455556666:role/app");
    const struct s3s_config_bucket *b = s3s_config_find_bucket(c, S3S_CUR_LIT("docs"));
    T_CHECK(b && b->default_encryption == S3S_SSE_KMS && b->require_encryption);
    T_STREQ(b->kms_key_id, "alias/docs");
    b = s3s_config_find_bucket(c, S3S_CUR_LIT("logs"));
    T_CHECK(b && b->default_encryption == S3S_SSE_AES256 && !b->kms_key_id);
    T_STREQ(c->audit_log, "/tmp/audit.jsonl");
    T_CHECK(c->keystore.root_key_rotation_days == 90);
    T_CHECK(c->limits.max_header_bytes == 32768 && c->limits.idle_timeout_ms == 5000);
    s3s_config_destroy(c);
}

static void test_refusals(void)
{
    s_refused(BASE "listn: 1\n", "t.yaml:9: unknown key 'listn' in the top level");
    s_refused("listen: 127.0.0.1:8080\nbackend:\n  endpont: x\n",
              "t.yaml:3: unknown key 'endpont' in backend");
    s_refused("listen: 127.0.0.1:99999\n", "t.yaml:1: listen: bad port");
    s_refused("listen: 8080\n", "t.yaml:1: listen must be HOST:PORT");
    s_refused("listen: 127.0.0.1:8080\nbackend:\n  endpoint: ftp://x\n",
              "t.yaml:3: backend.endpoint must start with http:// or https://");
    s_refused("listen: 127.0.0.1:8080\nbackend:\n  endpoint: http://h/path\n",
              "backend.endpoint must be scheme://host[:port] without a path");
    s_refused("listen: 127.0.0.1:8080\n", "t.yaml:1: backend is required");
    s_refused("listen: 127.0.0.1:8080\nbackend:\n  endpoint: http://h\n  access_key: a\n",
              "t.yaml:3: secret_key is required");
    s_refused("listen: 127.0.0.1:8080\nbackend:\n  endpoint: http://h\n  access_key: a\n"
              "  secret_key: x\n  secret_key_env: Y\n",
              "give only one of secret_key, secret_key_file and secret_key_env");
    s_refused("listen: 127.0.0.1:8080\nbackend:\n  endpoint: http://h\n  access_key: a\n"
              "  secret_key_file: /nonexistent/secret\n",
              "t.yaml:5: secret_key_file: cannot read /nonexistent/secret: No such file");
    unsetenv("S3SEAL_UNSET_VAR");
    s_refused("listen: 127.0.0.1:8080\nbackend:\n  endpoint: http://h\n  access_key: a\n"
              "  secret_key_env: S3SEAL_UNSET_VAR\n",
              "environment variable S3SEAL_UNSET_VAR is not set");
    s_refused(BASE "  - access_key: AK1\n    secret_key: again\n",
              "access key AK1 is listed twice");
    s_refused(BASE "buckets:\n  docs:\n    default_encryption: DES\n",
              "t.yaml:11: buckets.docs.default_encryption must be AES256, aws:kms or none");
    s_refused(BASE "buckets:\n  docs:\n    default_encryption: AES256\n    kms_key_id: k\n",
              "kms_key_id needs default_encryption: aws:kms");
    s_refused(BASE "workers: lots\n", "t.yaml:9: workers must be a whole number");
    s_refused(BASE "backend: [1, 2]\n", "duplicate key 'backend'");
    s_refused(BASE "limits:\n  max_headers: -1\n", "limits.max_headers must be a whole number");
    s_refused(BASE "account_id: 12\n", "account_id must be 12 digits");
    s_refused(BASE "credentials2: x\n", "unknown key 'credentials2'");
    s_refused("listen: [unclosed\n", "t.yaml:2: did not find expected");
    s_refused("", "the file is empty");
    s_refused(BASE "keystore: /tmp\n", "keystore must be a mapping");

    char why[256];
    struct s3s_config *c = NULL;
    T_ERR(s3s_config_load("/nonexistent/s3seal.yaml", &c, why, sizeof(why)), S3S_ERR_CONFIG);
    T_CHECK(strstr(why, "/nonexistent/s3seal.yaml: cannot open: No such file or directory"));
}

int main(void)
{
    snprintf(s_secret_path, sizeof(s_secret_path), "/tmp/s3seal-cfg-XXXXXX");
    int fd = mkstemp(s_secret_path);
    T_CHECK(fd >= 0);
    T_CHECK(write(fd, "file-sec1\n", 10) == 10);
    close(fd);
    test_full_and_defaults();
    test_refusals();
    unlink(s_secret_path);
    return t_finish("proxy.config");
}
