/*
 * ks_test.c - where the keystore's unit tests keep their keystores
 * (ks_test.h).
 */
#include "ks_test.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testlib.h"

static const char *s_prog = "ks";
static const char *s_dir = "/tmp";
static char s_url[512];

static void s_quiet(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

void ks_test_init(int argc, char **argv, const char *prog, const char *dir)
{
    s_prog = prog;
    s_dir = dir;
    for (int i = 1; i + 1 < argc; i++) {
        if (strcmp(argv[i], "--pg-url-file") != 0) {
            continue;
        }
        const char *env = getenv("S3SEAL_TEST_PG_URL");
        char *file = env && *env ? NULL : t_read_file(argv[i + 1], NULL);
        snprintf(s_url, sizeof(s_url), "%s", env && *env ? env : file ? file : "");
        free(file);
        s_url[strcspn(s_url, "\r\n")] = '\0';
        if (!s_url[0]) {
            fprintf(stderr, "%s: no PostgreSQL to test on (tests/pg.sh start): skipped\n", prog);
            exit(KS_TEST_SKIP);
        }
    }
}

bool ks_test_pg(void) { return s_url[0] != '\0'; }

/* s_url with its database (the URI's path) replaced by `db`. */
static void s_url_with_db(const char *db, char *out, size_t len)
{
    const char *auth = strstr(s_url, "://");
    auth = auth ? auth + 3 : s_url;
    size_t host_end = (size_t)(auth - s_url) + strcspn(auth, "/?");
    const char *rest = s_url + host_end;
    if (*rest == '/') {
        rest += 1 + strcspn(rest + 1, "?");
    }
    snprintf(out, len, "%.*s/%s%s", (int)host_end, s_url, db, rest);
}

void ks_test_location(const char *name, char *out, size_t len)
{
    if (!ks_test_pg()) {
        snprintf(out, len, "%s/%s.db", s_dir, name);
        return;
    }
    char db[64], sql[160];
    snprintf(db, sizeof(db), "t_%s_%s", s_prog, name);
    PGconn *c = PQconnectdb(s_url);
    T_CHECK(PQstatus(c) == CONNECTION_OK);
    PQsetNoticeProcessor(c, s_quiet, NULL);
    snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s WITH (FORCE)", db);
    PGresult *r = PQexec(c, sql);
    T_CHECK(PQresultStatus(r) == PGRES_COMMAND_OK);
    PQclear(r);
    snprintf(sql, sizeof(sql), "CREATE DATABASE %s", db);
    r = PQexec(c, sql);
    T_CHECK(PQresultStatus(r) == PGRES_COMMAND_OK);
    PQclear(r);
    PQfinish(c);
    s_url_with_db(db, out, len);
}
