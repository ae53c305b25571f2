/*
 * cli_audit.c - `s3seal audit verify [FILE | --instance NAME]`: checks the
 * hash chains of the audit trail.
 *
 * With FILE it reads only that file: no config, keystore or backend, so an
 * auditor can check a copy of a log anywhere. Without, it checks the trail
 * the config names: its audit_log file, or, with `audit_log: keystore`,
 * every instance's chain in the keystore's database (or NAME's alone).
 */
#include <stdio.h>
#include <string.h>

#include "keystore/audit.h"
#include "keystore/keystore.h"
#include "proxy/cli.h"

static int s_verify_file(const char *path)
{
    uint64_t records = 0, bad_line = 0;
    char why[256] = "";
    s3s_result r = s3s_audit_verify(path, &records, &bad_line, why, sizeof(why));
    if (s3s_is_ok(r)) {
        printf("%s: %llu records, chain intact\n", path, (unsigned long long)records);
        return 0;
    }
    if (r.code == S3S_ERR_AUDIT_BROKEN) {
        printf("%s: chain broken at line %llu: %s\n", path, (unsigned long long)bad_line, why);
        return 1;
    }
    fprintf(stderr, "s3seal audit verify: %s\n", why[0] ? why : s3s_strerror(r.code));
    return 1;
}

struct s_tally {
    size_t broken;
};

/* One line per instance: what an auditor copies somewhere safe is the
 * newest hash. */
static void s_chain(void *ctx, const struct s3s_audit_chain *c)
{
    struct s_tally *t = ctx;
    if (!c->broken) {
        printf("instance %s: %llu records, chain intact, newest hash %s\n", c->instance,
               (unsigned long long)c->records, c->newest);
        return;
    }
    t->broken++;
    printf("instance %s: chain broken at seq %llu: %s (%llu intact records before it)\n",
           c->instance, (unsigned long long)c->bad_seq, c->why ? c->why : "",
           (unsigned long long)c->records);
}

static int s_verify_keystore(const struct s3s_config *cfg, const char *instance)
{
    char loc[512], why[512] = "";
    s3s_keystore_location_display(cfg->keystore.path, loc, sizeof(loc));
    struct s_tally t = {0};
    size_t chains = 0;
    s3s_result r = s3s_audit_verify_keystore(cfg->keystore.path, instance, s_chain, &t, &chains,
                                             why, sizeof(why));
    if (s3s_failed(r) && r.code != S3S_ERR_AUDIT_BROKEN) {
        fprintf(stderr, "s3seal audit verify: %s\n", why[0] ? why : s3s_strerror(r.code));
        return 1;
    }
    if (t.broken) {
        printf("keystore %s: %zu of %zu instance chains broken\n", loc, t.broken, chains);
        return 1;
    }
    printf("keystore %s: %zu instance chain%s intact\n", loc, chains, chains == 1 ? "" : "s");
    return 0;
}

bool s3s_cli_audit_needs_config(int argc, char **argv)
{
    return argc >= 2 && strcmp(argv[1], "verify") == 0 && (argc == 2 || argv[2][0] == '-');
}

int s3s_cli_audit(const struct s3s_config *cfg, int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "verify") == 0 && argv[2][0] != '-') {
        return s_verify_file(argv[2]);
    }
    bool one = argc == 4 && strcmp(argv[2], "--instance") == 0;
    if (!cfg || (argc != 2 && !one) || strcmp(argv[1], "verify") != 0) {
        (void)s3s_cli_usage("audit", stderr);
        return 2;
    }
    if (!cfg->audit_log) {
        fprintf(stderr, "s3seal audit verify: the config names no audit_log: give the FILE\n");
        return 2;
    }
    if (!s3s_config_audit_in_keystore(cfg)) {
        if (one) {
            fprintf(stderr, "s3seal audit verify: --instance needs `audit_log: keystore`\n");
            return 2;
        }
        return s_verify_file(cfg->audit_log);
    }
    return s_verify_keystore(cfg, one ? argv[3] : NULL);
}
