/*
 * store.c - what the storage back ends share (store.h): choosing one by the
 * location's scheme, a location fit for messages, and running a statement
 * without results.
 */
#include <stdio.h>
#include <string.h>

#include "keystore/keystore_private.h"
#include "keystore/store.h"

static bool s_prefix(const char *s, const char *p) { return strncmp(s, p, strlen(p)) == 0; }

static bool s_is_pg(const char *location)
{
    return s_prefix(location, "postgresql://") || s_prefix(location, "postgres://");
}

s3s_result s3s_store_open(const char *location, bool create, struct s3s_store **out, char *why,
                          size_t why_len)
{
    S3S_ENSURE(location && out, S3S_ERR_INVALID_ARG);
    *out = NULL;
    if (s_is_pg(location)) {
        return s3s_store_pg_open(location, out, why, why_len);
    }
    const char *path = location;
    if (s_prefix(location, "sqlite://")) {
        path = location + strlen("sqlite://");
    } else if (strstr(location, "://")) {
        s3s_keystore__why(why, why_len,
                          "keystore %s: unknown scheme (sqlite:// or postgresql://)", location);
        S3S_BAIL(S3S_ERR_KEYSTORE);
    }
    if (!*path) {
        s3s_keystore__why(why, why_len, "keystore %s: no file name", location);
        S3S_BAIL(S3S_ERR_KEYSTORE);
    }
    return s3s_store_sqlite_open(path, create, out, why, why_len);
}

void s3s_store_location_display(const char *location, char *out, size_t len)
{
    if (!len) {
        return;
    }
    if (!location || !s_is_pg(location)) {
        snprintf(out, len, "%s", location ? location : "");
        return;
    }
    /* scheme://[user[:password]@]host...[?...password=...]: hide passwords. */
    const char *auth = strstr(location, "://") + 3;
    const char *end = auth + strcspn(auth, "/?#");
    const char *at = NULL;
    for (const char *p = auth; p < end; p++) {
        at = *p == '@' ? p : at;
    }
    const char *colon = at ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
    size_t o = 0;
    for (const char *p = location; *p && o + 1 < len;) {
        if (p == colon) {
            p = at; /* the password up to '@' */
            for (const char *r = ":***"; *r && o + 1 < len; r++) {
                out[o++] = *r;
            }
            continue;
        }
        bool param = p > end && (p[-1] == '?' || p[-1] == '&');
        if (param && strncmp(p, "password=", 9) == 0) {
            for (const char *r = "password=***"; *r && o + 1 < len; r++) {
                out[o++] = *r;
            }
            p += 9 + strcspn(p + 9, "&");
            continue;
        }
        out[o++] = *p++;
    }
    out[o] = '\0';
}

s3s_result s3s_store_exec(struct s3s_store *s, const char *sql)
{
    struct s3s_store_stmt *st = NULL;
    S3S_GUARD(s3s_store_prepare(s, sql, &st));
    enum s3s_store_rc rc;
    do {
        rc = s3s_store_step(st);
    } while (rc == S3S_STORE_ROW);
    s3s_store_finalize(st);
    S3S_ENSURE(rc == S3S_STORE_DONE, s3s_store_rc_error(rc, S3S_ERR_KEYSTORE));
    return s3s_ok();
}

enum s3s_error s3s_store_rc_error(enum s3s_store_rc rc, enum s3s_error on_conflict)
{
    switch (rc) {
    case S3S_STORE_UNAVAILABLE:
        return S3S_ERR_KEYSTORE_UNAVAILABLE;
    case S3S_STORE_CONFLICT:
        return on_conflict;
    case S3S_STORE_NOMEM:
        return S3S_ERR_NOMEM;
    default:
        return S3S_ERR_KEYSTORE;
    }
}
