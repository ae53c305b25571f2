/*
 * cli.h - subcommands of the `s3seal` command line beyond `serve`. Each takes
 * the loaded config and its own argv (argv[0] is the command name) and
 * returns the process exit status (0 ok, 1 failure, 2 usage).
 */
#ifndef S3S_PROXY_CLI_H
#define S3S_PROXY_CLI_H

#include <stdbool.h>
#include <stdio.h>

#include "proxy/config.h"

struct s3s_keystore;

typedef int s3s_cli_fn(const struct s3s_config *cfg, int argc, char **argv);

/* Opens the config's keystore (creating the file if `create`), or prints
 * why it cannot on stderr and returns NULL. */
struct s3s_keystore *s3s_cli_keystore_open(const struct s3s_config *cfg, bool create);

int s3s_cli_keystore(const struct s3s_config *cfg, int argc, char **argv);
int s3s_cli_root_key(const struct s3s_config *cfg, int argc, char **argv);
int s3s_cli_rewrap(const struct s3s_config *cfg, int argc, char **argv);
int s3s_cli_migrate(const struct s3s_config *cfg, int argc, char **argv);
int s3s_cli_decrypt(const struct s3s_config *cfg, int argc, char **argv);
/* `s3seal keys ...`: the KMS keys (cli_kms.c). */
int s3s_cli_keys(const struct s3s_config *cfg, int argc, char **argv);

/* `audit verify FILE` needs nothing but the file, so it takes no config and
 * runs where none exists (an auditor's copy of the log). */
int s3s_cli_audit(int argc, char **argv);

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
