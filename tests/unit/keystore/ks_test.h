/*
 * ks_test.h - the keystore's unit tests run on each back end: SQLite files
 * in a temporary directory, or, given `--pg-url-file FILE` (the URL
 * tests/pg.sh wrote; S3SEAL_TEST_PG_URL overrides it), a PostgreSQL server,
 * with a fresh database per keystore a test asks for. Without a URL the
 * PostgreSQL run exits with 77, which ctest reports as skipped.
 */
#ifndef S3S_KS_TEST_H
#define S3S_KS_TEST_H

#include <stdbool.h>
#include <stddef.h>

#define KS_TEST_SKIP 77

/* Reads the arguments; `prog` names the test program (a database name
 * prefix), `dir` is a temporary directory for SQLite files. */
void ks_test_init(int argc, char **argv, const char *prog, const char *dir);
/* Whether this run is on PostgreSQL. */
bool ks_test_pg(void);
/* The location of a new, empty keystore called `name` ([a-z0-9_]): a file
 * in the directory, or a database created (again) for it. */
void ks_test_location(const char *name, char *out, size_t len);

#endif
