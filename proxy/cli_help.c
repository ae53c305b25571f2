/*
 * cli_help.c - the usage texts of the `s3seal` command line, one per
 * command: `s3seal help [COMMAND]`, `s3seal COMMAND --help` and the usage
 * errors of each command print the same text. `keys` and `policy` write
 * theirs from their own tables (cli_kms.c, cli_policy.c).
 */
#include <stdio.h>
#include <string.h>

#include "proxy/cli.h"

struct s_help {
    const char *name;
    const char *text;        /* the usage; NULL when fn writes it */
    void (*fn)(FILE *f);
};

static const struct s_help s_helps[] = {
    {"serve",
     "usage: s3seal [-c FILE] serve\n"
     "\n"
     "Runs the proxy in the foreground: one worker thread per event loop (workers:),\n"
     "listening on listen: (HTTPS with tls:), the admin endpoints on admin_listen:.\n"
     "Signals: SIGHUP re-reads the config (an invalid one is refused and the old one\n"
     "kept); SIGUSR1 reopens the access log; SIGTERM and SIGINT drain in-flight\n"
     "requests and stop.\n",
     NULL},
    {"presign",
     "usage: s3seal [-c FILE] presign [--method GET|PUT|HEAD|DELETE] [--expires SECONDS]\n"
     "                        s3://BUCKET/KEY\n"
     "\n"
     "Prints a presigned URL for s3seal's own endpoint (https:// when tls: is on),\n"
     "signed with the first configured credential. --expires: 1..604800 seconds\n"
     "(default 3600).\n",
     NULL},
    {"keystore",
     "usage: s3seal [-c FILE] keystore init\n"
     "       s3seal [-c FILE] keystore copy --to postgresql://...|sqlite:///PATH|PATH\n"
     "\n"
     "init: creates keystore.master_key_file (if absent) and the keystore with its\n"
     "first root key version.\n"
     "copy: copies the keystore into an empty one, verified row by row (key material\n"
     "stays sealed under the same master key).\n",
     NULL},
    {"root-key",
     "usage: s3seal [-c FILE] root-key rotate|list\n"
     "\n"
     "rotate: adds an SSE-S3 root key version; new objects use it.\n"
     "list: lists the root key versions.\n",
     NULL},
    {"keys", NULL, s3s_cli_keys_usage},
    {"rewrap",
     "usage: s3seal [-c FILE] rewrap s3://BUCKET[/PREFIX]\n"
     "\n"
     "Re-wraps the data keys of the objects under BUCKET/PREFIX under the newest\n"
     "root key (the object data is not read or rewritten).\n",
     NULL},
    {"migrate",
     "usage: s3seal [-c FILE] migrate s3://BUCKET[/PREFIX]\n"
     "\n"
     "Encrypts, in place, the objects under BUCKET/PREFIX that were stored on the\n"
     "backend before s3seal.\n",
     NULL},
    {"catalog",
     "usage: s3seal [-c FILE] catalog rebuild [--force] s3://BUCKET[/PREFIX]\n"
     "       s3seal [-c FILE] catalog prune s3://BUCKET\n"
     "\n"
     "rebuild: gives the encrypted objects under BUCKET/PREFIX that have no catalog\n"
     "entry (objects stored before the catalog) theirs: the plaintext's size and ETag,\n"
     "read from the metadata or by decrypting the object (every version of a versioned\n"
     "bucket). An object that does not decrypt gets none and is reported (exit status\n"
     "1). --force recomputes the entries that exist.\n"
     "prune: removes the entries of BUCKET whose object (key and ETag) the backend no\n"
     "longer holds under any version.\n",
     NULL},
    {"decrypt",
     "usage: s3seal [-c FILE] decrypt --bucket B --key K --metadata HEAD.json\n"
     "                        --in CIPHERTEXT --out PLAINTEXT\n"
     "\n"
     "Decrypts an object read straight from the backend.\n"
     "  HEAD.json: the output of `aws s3api head-object` on the backend\n",
     NULL},
    {"audit",
     "usage: s3seal audit verify FILE\n"
     "       s3seal [-c FILE] audit verify [--instance NAME]\n"
     "\n"
     "Checks an audit log's hash chain. With FILE, needs no config, keystore or\n"
     "backend. Without, checks the trail the config names: its audit_log file,\n"
     "or with `audit_log: keystore` every instance's chain in the keystore's\n"
     "database (NAME's alone with --instance), printing each instance's record\n"
     "count and newest hash, or where its chain breaks.\n"
     "Exit status: 0 intact, 1 broken or unreadable, 2 usage.\n",
     NULL},
    {"policy", NULL, s3s_cli_policy_usage},
    {"version",
     "usage: s3seal version\n"
     "\n"
     "Prints the version.\n",
     NULL},
    {"help",
     "usage: s3seal help [COMMAND]\n"
     "\n"
     "Prints the list of commands, or COMMAND's usage.\n",
     NULL},
};

#define S_N_HELPS (sizeof(s_helps) / sizeof(s_helps[0]))

void s3s_cli_overview(FILE *f)
{
    fprintf(f,
            "usage: s3seal [-c FILE] COMMAND [ARGS]\n"
            "\n"
            "commands:\n"
            "  serve                         run the proxy\n"
            "  presign [--method GET|PUT] [--expires SECONDS] s3://BUCKET/KEY\n"
            "                                print a presigned URL for s3seal's endpoint,\n"
            "                                signed with the first configured credential\n"
            "  keystore init                 create the master key file and the keystore\n"
            "  keystore copy --to LOCATION   copy the keystore into an empty one (e.g.\n"
            "                                postgresql://...), verified row by row\n"
            "  root-key rotate|list          add an SSE-S3 root key version / list them\n"
            "  keys COMMAND [ARGS]           KMS keys: create, list, describe, enable, disable,\n"
            "                                rotate, schedule-deletion, cancel-deletion, alias,\n"
            "                                get-policy, put-policy (`s3seal keys help`)\n"
            "  rewrap s3://BUCKET[/PREFIX]   re-wrap objects' data keys under the newest root key\n"
            "  migrate s3://BUCKET[/PREFIX]  encrypt objects stored before s3seal, in place\n"
            "  catalog rebuild [--force] s3://BUCKET[/PREFIX]\n"
            "                                record plaintext sizes and ETags of encrypted\n"
            "                                objects that have no catalog entry\n"
            "  catalog prune s3://BUCKET     remove the entries of objects no longer stored\n"
            "  decrypt --bucket B --key K --metadata HEAD.json --in FILE --out FILE\n"
            "                                decrypt an object read straight from the backend\n"
            "  audit verify [FILE]           check the audit trail's hash chains\n"
            "  policy simulate --principal ARN --action s3:ACTION --resource ARN\n"
            "          [--identity-policy FILE] [--bucket-policy FILE] [--bucket-owner ACCOUNT]\n"
            "          [--context KEY=VALUE]...   explain an authorization decision\n"
            "  version                       print the version\n"
            "  help [COMMAND]                this list, or COMMAND's usage\n"
            "\n"
            "-c FILE: the YAML config (default $S3SEAL_CONFIG, then ./s3seal.yaml)\n"
            "`s3seal COMMAND --help` prints COMMAND's usage. See s3seal(1), s3seal.yaml(5).\n");
}

bool s3s_cli_usage(const char *cmd, FILE *f)
{
    for (size_t i = 0; i < S_N_HELPS; i++) {
        if (strcmp(s_helps[i].name, cmd) == 0) {
            if (s_helps[i].fn) {
                s_helps[i].fn(f);
            } else {
                fputs(s_helps[i].text, f);
            }
            return true;
        }
    }
    return false;
}

bool s3s_cli_help_asked(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0) {
            return false;
        }
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            return true;
        }
    }
    return false;
}
