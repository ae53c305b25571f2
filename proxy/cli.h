/*
 * cli.h - subcommands of the `s3seal` command line beyond `serve`. Each takes
 * the loaded config and its own argv (argv[0] is the command name) and
 * returns the process exit status (0 ok, 1 failure, 2 usage).
 */
#ifndef S3S_PROXY_CLI_H
#define S3S_PROXY_CLI_H

#include "proxy/config.h"

typedef int s3s_cli_fn(const struct s3s_config *cfg, int argc, char **argv);

int s3s_cli_keystore(const struct s3s_config *cfg, int argc, char **argv);
int s3s_cli_root_key(const struct s3s_config *cfg, int argc, char **argv);
int s3s_cli_rewrap(const struct s3s_config *cfg, int argc, char **argv);
int s3s_cli_migrate(const struct s3s_config *cfg, int argc, char **argv);
int s3s_cli_decrypt(const struct s3s_config *cfg, int argc, char **argv);

/* `audit verify FILE` needs nothing but the file, so it takes no config and
 * runs where none exists (an auditor's copy of the log). */
int s3s_cli_audit(int argc, char **argv);

#endif
