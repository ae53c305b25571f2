/*
 * reload_test.c - what a reloaded config may change: the settings that
 * need a restart keep the running values and are named (listen, workers,
 * the keystore...), everything else is the new file's; log_format and
 * access_log are read; a config's references (acquire/release) free it with
 * the last one.
 */
#include <string.h>

#include "common/log.h"
#include "proxy/config.h"
#include "testlib.h"

#define BACKEND                                                                                \
    "backend:\n"                                                                               \
    "  endpoint: http://127.0.0.1:9000\n"                                                      \
    "  access_key: BK\n"                                                                       \
    "  secret_key: backend-secret\n"

static struct s3s_config *s_load(const char *yaml)
{
    struct s3s_config *cfg = NULL;
    char why[512] = "";
    s3s_result r = s3s_config_load_string(yaml, strlen(yaml), "t.yaml", &cfg, why, sizeof(why));
    if (s3s_failed(r)) {
        fprintf(stderr, "refused: %s\n", why);
    }
    T_CHECK(s3s_is_ok(r) && cfg != NULL);
    return cfg;
}

static void test_keep_static(void)
{
    struct s3s_config *cur = s_load("listen: 127.0.0.1:8080\n" BACKEND
                                    "credentials:\n  - access_key: AK1\n    secret_key: s1\n"
                                    "workers: 2\nregion: eu-west-1\n"
                                    "keystore:\n  path: /a/ks.db\n  master_key_file: /a/mk\n"
                                    "limits:\n  max_connections: 10\n");
    struct s3s_config *next =
        s_load("listen: 127.0.0.1:8081\n" BACKEND
               "credentials:\n  - access_key: AK1\n    secret_key: s1\n"
               "  - access_key: AK2\n    secret_key: s2\n"
               "workers: 3\nregion: eu-west-1\n"
               "keystore:\n  path: /b/ks.db\n  master_key_file: /a/mk\n"
               "limits:\n  max_connections: 20\n"
               "log_format: json\naccess_log: /var/log/s3seal/access.log\n");
    if (!cur || !next) {
        s3s_config_destroy(cur);
        s3s_config_destroy(next);
        return;
    }
    char changed[256];
    T_OK(s3s_config_keep_static(next, cur, changed, sizeof(changed)));
    T_STREQ(changed, "listen, workers, keystore.path");
    T_STREQ(next->listen_host, "127.0.0.1");
    T_CHECK(next->listen_port == 8080);
    T_CHECK(next->workers == 2);
    T_STREQ(next->keystore.path, "/a/ks.db");
    /* What may change, changes. */
    T_CHECK(next->n_credentials == 2);
    T_CHECK(next->limits.max_connections == 20);
    T_CHECK(next->log_format == S3S_LOG_FORMAT_JSON);
    T_STREQ(next->access_log, "/var/log/s3seal/access.log");
    /* The same file again: nothing to name. */
    T_OK(s3s_config_keep_static(next, cur, changed, sizeof(changed)));
    T_STREQ(changed, "");
    s3s_config_destroy(cur);
    s3s_config_destroy(next);
}

static void test_log_keys(void)
{
    struct s3s_config *c = s_load("listen: 127.0.0.1:8080\n" BACKEND
                                  "credentials:\n  - access_key: AK1\n    secret_key: s1\n");
    if (c) {
        T_CHECK(c->log_format == S3S_LOG_FORMAT_TEXT);
        T_CHECK(c->access_log == NULL);
        s3s_config_destroy(c);
    }
    struct s3s_config *bad = NULL;
    char why[256] = "";
    static const char yaml[] = "listen: 127.0.0.1:8080\n" BACKEND
                               "credentials:\n  - access_key: AK1\n    secret_key: s1\n"
                               "log_format: xml\n";
    T_CHECK(s3s_failed(
        s3s_config_load_string(yaml, sizeof(yaml) - 1, "t.yaml", &bad, why, sizeof(why))));
    T_STREQ(why, "t.yaml:9: log_format must be text or json");
}

static void test_references(void)
{
    struct s3s_config *c = s_load("listen: 127.0.0.1:8080\n" BACKEND
                                  "credentials:\n  - access_key: AK1\n    secret_key: s1\n");
    if (!c) {
        return;
    }
    long live = s3s_mem_live();
    const struct s3s_config *a = s3s_config_acquire(c);
    const struct s3s_config *b = s3s_config_acquire(c);
    T_CHECK(a == c && b == c);
    s3s_config_destroy(c); /* the loader's reference */
    s3s_config_release(a);
    T_CHECK(s3s_mem_live() == live); /* still there: b holds it */
    T_CHECK(s3s_config_find_credential(b, S3S_CUR_LIT("AK1")) != NULL);
    s3s_config_release(b);
    T_CHECK(s3s_mem_live() < live); /* the last reference freed it */
    s3s_config_release(NULL);
    T_CHECK(s3s_config_acquire(NULL) == NULL);
}

int main(void)
{
    test_keep_static();
    test_log_keys();
    test_references();
    return t_finish("reload");
}
