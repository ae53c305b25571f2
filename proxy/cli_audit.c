/*
 * cli_audit.c - `s3seal audit verify FILE`: checks the hash chain of an
 * audit log. It reads only that file: no config, keystore or backend, so an
 * auditor can check a copy of the log anywhere.
 */
#include <stdio.h>
#include <string.h>

#include "keystore/audit.h"
#include "proxy/cli.h"

int s3s_cli_audit(int argc, char **argv)
{
    if (argc != 3 || strcmp(argv[1], "verify") != 0) {
        (void)s3s_cli_usage("audit", stderr);
        return 2;
    }
    const char *path = argv[2];
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
