/*
 * config.c - loads s3seal's YAML configuration with libyaml's document API,
 * validates every key strictly (an unknown key, a wrong type or a malformed
 * value stops start-up with "FILE:LINE: reason"), applies defaults, and reads
 * secrets inline, from files or from the environment into s3s_secret memory.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#include "common/log.h"
#include "keystore/audit.h"
#include "keystore/kms.h"
#include "proxy/config.h"

struct s_ctx {
    const char *name;
    yaml_document_t *doc;
    struct s3s_config *cfg;
    char *why;
    size_t why_len;
};

static s3s_result s_fail(struct s_ctx *x, const yaml_node_t *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static s3s_result s_fail(struct s_ctx *x, const yaml_node_t *n, const char *fmt, ...)
{
    if (x->why && x->why_len) {
        int k = n ? snprintf(x->why, x->why_len, "%s:%lu: ", x->name,
                             (unsigned long)n->start_mark.line + 1)
                  : snprintf(x->why, x->why_len, "%s: ", x->name);
        if (k >= 0 && (size_t)k < x->why_len) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(x->why + k, x->why_len - (size_t)k, fmt, ap);
            va_end(ap);
        }
    }
    return s3s_err(S3S_ERR_CONFIG);
}

/* ---------------------------------------------------------------- scalars */

static const char *s_scalar(const yaml_node_t *n)
{
    return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

static s3s_result s_str(struct s_ctx *x, const yaml_node_t *n, const char *key, char **out)
{
    const char *v = s_scalar(n);
    if (!v) {
        return s_fail(x, n, "%s must be a string", key);
    }
    if (!*v) {
        return s_fail(x, n, "%s must not be empty", key);
    }
    char *d = s3s_strdup(v);
    S3S_ENSURE(d != NULL, S3S_ERR_NOMEM);
    s3s_free(out);
    *out = d;
    return s3s_ok();
}

static s3s_result s_bool(struct s_ctx *x, const yaml_node_t *n, const char *key, bool *out)
{
    const char *v = s_scalar(n);
    if (v && (strcmp(v, "true") == 0 || strcmp(v, "yes") == 0 || strcmp(v, "on") == 0)) {
        *out = true;
        return s3s_ok();
    }
    if (v && (strcmp(v, "false") == 0 || strcmp(v, "no") == 0 || strcmp(v, "off") == 0)) {
        *out = false;
        return s3s_ok();
    }
    return s_fail(x, n, "%s must be true or false", key);
}

static s3s_result s_u64(struct s_ctx *x, const yaml_node_t *n, const char *key, uint64_t min,
                        uint64_t max, uint64_t *out)
{
    const char *v = s_scalar(n);
    uint64_t val = 0;
    if (!v || s3s_failed(s3s_parse_u64(s3s_cur_from_str(v), UINT64_MAX, &val)) || val < min ||
        val > max) {
        return s_fail(x, n, "%s must be a whole number from %llu to %llu", key,
                      (unsigned long long)min, (unsigned long long)max);
    }
    *out = val;
    return s3s_ok();
}

static s3s_result s_size(struct s_ctx *x, const yaml_node_t *n, const char *key, uint64_t min,
                         uint64_t max, size_t *out)
{
    uint64_t v = 0;
    S3S_GUARD(s_u64(x, n, key, min, max, &v));
    *out = (size_t)v;
    return s3s_ok();
}

/* Reads a secret given as NAME, NAME_file or NAME_env (exactly one). */
struct s_secret_src {
    const yaml_node_t *inline_v, *file_v, *env_v;
};

enum { S_SECRET_MAX = 4096 };

/* Reads with read(2) until `cap` bytes or the end of the file (*eof);
 * returns 0 or the errno of a failed read. */
static int s_read_fd(int fd, uint8_t *dst, size_t cap, size_t *len, bool *eof)
{
    *len = 0;
    *eof = false;
    while (*len < cap) {
        ssize_t k = read(fd, dst + *len, cap - *len);
        if (k < 0 && errno == EINTR) {
            continue;
        }
        if (k < 0) {
            return errno;
        }
        if (k == 0) {
            *eof = true;
            break;
        }
        *len += (size_t)k;
    }
    return 0;
}

/* Reads a secret file with read(2), not stdio, so that no unwiped stdio
 * buffer ever holds the secret; the only copy is secure memory. One trailing
 * newline sequence (as `echo` and editors leave) is not part of the secret. */
static s3s_result s_secret_file(struct s_ctx *x, const yaml_node_t *n, const char *what,
                                const char *path, struct s3s_secret *out)
{
    /* O_NONBLOCK: a FIFO in its place must not block the start-up. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        return s_fail(x, n, "%s.secret_key_file: cannot read %s: %s", what, path,
                      strerror(errno));
    }
    /* As for the master key: a secret others may read is no secret. */
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return s_fail(x, n, "%s.secret_key_file: %s is not a regular file", what, path);
    }
    if (st.st_mode & (S_IRWXG | S_IRWXO)) {
        close(fd);
        return s_fail(x, n, "%s.secret_key_file: %s is readable by group or others (chmod 600 it)",
                      what, path);
    }
    struct s3s_secret tmp = {0};
    s3s_result r = s3s_secret_new(S_SECRET_MAX + 1, &tmp);
    if (s3s_failed(r)) {
        close(fd);
        return r;
    }
    size_t len = 0;
    bool eof = false;
    int err = s_read_fd(fd, tmp.ptr, S_SECRET_MAX + 1, &len, &eof);
    close(fd);
    if (len > 0 && tmp.ptr[len - 1] == '\n') {
        len--;
        if (len > 0 && tmp.ptr[len - 1] == '\r') {
            len--;
        }
    }
    if (err) {
        r = s_fail(x, n, "%s.secret_key_file: cannot read %s: %s", what, path, strerror(err));
    } else if (len > S_SECRET_MAX) {
        r = s_fail(x, n, "%s.secret_key_file: %s is longer than %d bytes", what, path,
                   S_SECRET_MAX);
    } else if (len == 0) {
        r = s_fail(x, n, "%s.secret_key_file: %s is empty", what, path);
    } else {
        s3s_secret_destroy(out);
        r = s3s_secret_from(tmp.ptr, len, out);
    }
    s3s_secret_destroy(&tmp);
    return r;
}

/* `what` names the owner in messages ("backend", "credentials[0]"); `owner`
 * is the node whose line a missing secret is reported at. Messages name the
 * file or variable, never the secret itself. */
static s3s_result s_secret(struct s_ctx *x, const yaml_node_t *owner, const char *what,
                           const struct s_secret_src *src, struct s3s_secret *out)
{
    int forms = (src->inline_v != NULL) + (src->file_v != NULL) + (src->env_v != NULL);
    if (forms == 0) {
        return s_fail(x, owner, "%s.secret_key is required (or secret_key_file, or "
                      "secret_key_env)", what);
    }
    if (forms > 1) {
        /* Report at the later of the forms: that is the line to delete. */
        const yaml_node_t *late = NULL;
        const yaml_node_t *all[3] = {src->inline_v, src->file_v, src->env_v};
        for (int i = 0; i < 3; i++) {
            if (all[i] && (!late || all[i]->start_mark.line > late->start_mark.line)) {
                late = all[i];
            }
        }
        return s_fail(x, late, "%s: give only one of secret_key, secret_key_file and "
                      "secret_key_env", what);
    }
    if (src->file_v) {
        const char *path = s_scalar(src->file_v);
        if (!path || !*path) {
            return s_fail(x, src->file_v, "%s.secret_key_file must be a path", what);
        }
        return s_secret_file(x, src->file_v, what, path, out);
    }
    const char *v = NULL;
    if (src->inline_v) {
        v = s_scalar(src->inline_v);
        if (!v || !*v) {
            return s_fail(x, src->inline_v, "%s.secret_key must be a non-empty string", what);
        }
    } else {
        const char *name = s_scalar(src->env_v);
        if (!name || !*name) {
            return s_fail(x, src->env_v, "%s.secret_key_env must name an environment variable",
                          what);
        }
        v = getenv(name);
        if (!v) {
            return s_fail(x, src->env_v, "%s.secret_key_env: environment variable %s is not set",
                          what, name);
        }
        if (!*v) {
            return s_fail(x, src->env_v, "%s.secret_key_env: environment variable %s is empty",
                          what, name);
        }
    }
    s3s_secret_destroy(out);
    return s3s_secret_from(v, strlen(v), out);
}

/* Records secret_key, secret_key_file or secret_key_env; false for other keys. */
static bool s_secret_key_form(const char *key, const yaml_node_t *v, struct s_secret_src *src)
{
    if (strcmp(key, "secret_key") == 0) {
        src->inline_v = v;
    } else if (strcmp(key, "secret_key_file") == 0) {
        src->file_v = v;
    } else if (strcmp(key, "secret_key_env") == 0) {
        src->env_v = v;
    } else {
        return false;
    }
    return true;
}

/* ------------------------------------------------------------ mappings */

typedef s3s_result s_pair_fn(struct s_ctx *x, const char *key, const yaml_node_t *k,
                             const yaml_node_t *v, void *arg);

/* Walks a mapping, rejecting duplicate keys; `what` names it in messages. */
static s3s_result s_each(struct s_ctx *x, const yaml_node_t *map, const char *what, s_pair_fn *fn,
                         void *arg)
{
    if (!map || map->type != YAML_MAPPING_NODE) {
        return s_fail(x, map, "%s must be a mapping", what);
    }
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        const yaml_node_t *k = yaml_document_get_node(x->doc, p->key);
        const yaml_node_t *v = yaml_document_get_node(x->doc, p->value);
        const char *key = s_scalar(k);
        if (!key) {
            return s_fail(x, k, "keys in %s must be strings", what);
        }
        for (yaml_node_pair_t *q = map->data.mapping.pairs.start; q < p; q++) {
            const char *prev = s_scalar(yaml_document_get_node(x->doc, q->key));
            if (prev && strcmp(prev, key) == 0) {
                return s_fail(x, k, "duplicate key '%s' in %s", key, what);
            }
        }
        S3S_GUARD(fn(x, key, k, v, arg));
    }
    return s3s_ok();
}

/* backend: */
struct s_backend_arg {
    struct s_secret_src secret;
    const yaml_node_t *endpoint_v;
};

static s3s_result s_backend_pair(struct s_ctx *x, const char *key, const yaml_node_t *k,
                                 const yaml_node_t *v, void *arg)
{
    struct s3s_config *c = x->cfg;
    struct s_backend_arg *a = arg;
    uint64_t u = 0;
    if (strcmp(key, "endpoint") == 0) {
        a->endpoint_v = v;
        return s_str(x, v, "backend.endpoint", &c->backend.endpoint);
    }
    if (strcmp(key, "region") == 0) {
        return s_str(x, v, "backend.region", &c->backend.region);
    }
    if (strcmp(key, "access_key") == 0) {
        return s_str(x, v, "backend.access_key", &c->backend.access_key);
    }
    if (s_secret_key_form(key, v, &a->secret)) {
        return s3s_ok();
    }
    if (strcmp(key, "ca_file") == 0) {
        return s_str(x, v, "backend.ca_file", &c->backend.ca_file);
    }
    if (strcmp(key, "tls_verify") == 0) {
        return s_bool(x, v, "backend.tls_verify", &c->backend.tls_verify);
    }
    if (strcmp(key, "max_connections") == 0) {
        S3S_GUARD(s_u64(x, v, "backend.max_connections", 1, 10000, &u));
        c->backend.max_connections = (int)u;
        return s3s_ok();
    }
    return s_fail(x, k, "unknown key '%s' in backend", key);
}

/* A DNS name or IPv4 literal: letters, digits, '.', '-' and '_' (seen in
 * container and compose host names). */
static bool s_hostname_ok(const char *h, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char ch = h[i];
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                  (ch >= '0' && ch <= '9') || ch == '.' || ch == '-' || ch == '_';
        if (!ok) {
            return false;
        }
    }
    return n > 0;
}

static bool s_ipv6_ok(const char *h, size_t n)
{
    char tmp[INET6_ADDRSTRLEN + 1];
    struct in6_addr a;
    if (n == 0 || n >= sizeof(tmp)) {
        return false;
    }
    memcpy(tmp, h, n);
    tmp[n] = '\0';
    return inet_pton(AF_INET6, tmp, &a) == 1;
}

/* Parses http(s)://host[:port] into scheme, host, port and the Host header.
 * `host` is bare ("::1"); `host_header` keeps an IPv6 literal's brackets and
 * carries the port only when it is not the scheme's default (RFC 9110 7.2),
 * which is also how clients compute the Host they sign. */
static s3s_result s_endpoint(struct s_ctx *x, const yaml_node_t *n)
{
    struct s3s_config *c = x->cfg;
    const char *e = c->backend.endpoint;
    const char *rest;
    const char *scheme;
    int def_port;
    if (strncmp(e, "http://", 7) == 0) {
        rest = e + 7;
        def_port = 80;
        scheme = "http";
    } else if (strncmp(e, "https://", 8) == 0) {
        rest = e + 8;
        def_port = 443;
        scheme = "https";
    } else {
        return s_fail(x, n, "backend.endpoint must start with http:// or https://");
    }
    size_t len = strlen(rest);
    if (len && rest[len - 1] == '/') {
        len--;
    }
    if (len == 0) {
        return s_fail(x, n, "backend.endpoint: missing host");
    }
    if (strcspn(rest, "/?#@") < len) {
        return s_fail(x, n, "backend.endpoint must be scheme://host[:port] without a path");
    }
    const char *host = rest;  /* bare host */
    size_t host_len = len;
    size_t authority_host_len = len; /* host as written, brackets included */
    const char *colon = NULL;
    if (rest[0] == '[') {
        const char *close = memchr(rest, ']', len);
        if (!close) {
            return s_fail(x, n, "backend.endpoint: unterminated IPv6 address");
        }
        authority_host_len = (size_t)(close - rest) + 1;
        host = rest + 1;
        host_len = authority_host_len - 2;
        if (authority_host_len < len) {
            if (rest[authority_host_len] != ':') {
                return s_fail(x, n, "backend.endpoint: bad port");
            }
            colon = rest + authority_host_len;
        }
        if (!s_ipv6_ok(host, host_len)) {
            return s_fail(x, n, "backend.endpoint: bad IPv6 address");
        }
    } else {
        colon = memchr(rest, ':', len);
        if (colon) {
            host_len = authority_host_len = (size_t)(colon - rest);
        }
        if (host_len == 0) {
            return s_fail(x, n, "backend.endpoint: missing host");
        }
        if (!s_hostname_ok(host, host_len)) {
            return s_fail(x, n, "backend.endpoint: bad host name");
        }
    }
    int port = def_port;
    if (colon) {
        uint64_t p = 0;
        size_t plen = len - (size_t)(colon + 1 - rest);
        if (s3s_failed(s3s_parse_u64(s3s_cur_from(colon + 1, plen), 65535, &p)) || p == 0) {
            return s_fail(x, n, "backend.endpoint: bad port (1 to 65535)");
        }
        port = (int)p;
    }
    c->backend.port = port;
    c->backend.scheme = s3s_strdup(scheme);
    c->backend.host = s3s_strndup(host, host_len);
    size_t hh_len = authority_host_len + 7;
    c->backend.host_header = s3s_malloc(hh_len);
    S3S_ENSURE(c->backend.scheme && c->backend.host && c->backend.host_header, S3S_ERR_NOMEM);
    if (port == def_port) {
        snprintf(c->backend.host_header, hh_len, "%.*s", (int)authority_host_len, rest);
    } else {
        snprintf(c->backend.host_header, hh_len, "%.*s:%d", (int)authority_host_len, rest, port);
    }
    return s3s_ok();
}

/* credentials: [{access_key, secret_key*, principal}] */
struct s_cred_arg {
    struct s3s_config_credential *cred;
    struct s_secret_src secret;
    const yaml_node_t *access_key_v, *principal_v, *policy_v;
    char what[48]; /* "credentials[3]" */
};

static s3s_result s_cred_pair(struct s_ctx *x, const char *key, const yaml_node_t *k,
                              const yaml_node_t *v, void *arg)
{
    struct s_cred_arg *a = arg;
    char name[64];
    if (strcmp(key, "access_key") == 0) {
        a->access_key_v = v;
        snprintf(name, sizeof(name), "%s.access_key", a->what);
        return s_str(x, v, name, &a->cred->access_key);
    }
    if (strcmp(key, "principal") == 0) {
        a->principal_v = v;
        snprintf(name, sizeof(name), "%s.principal", a->what);
        return s_str(x, v, name, &a->cred->principal);
    }
    if (strcmp(key, "policy_file") == 0) {
        a->policy_v = v;
        snprintf(name, sizeof(name), "%s.policy_file", a->what);
        return s_str(x, v, name, &a->cred->policy_file);
    }
    if (s_secret_key_form(key, v, &a->secret)) {
        return s3s_ok();
    }
    return s_fail(x, k, "unknown key '%s' in %s", key, a->what);
}

static bool s_digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return false;
        }
    }
    return n > 0;
}

/* An access key travels in "Credential=AKID/date/region/s3/aws4_request" and
 * in SigV2's "AWS AKID:sig": it cannot hold '/', ':', ',', '=', spaces or
 * anything outside printable ASCII, or no client could sign with it. */
static bool s_access_key_ok(const char *k)
{
    for (const char *p = k; *p; p++) {
        unsigned char ch = (unsigned char)*p;
        if (ch <= ' ' || ch >= 0x7f || strchr("/:,=", ch)) {
            return false;
        }
    }
    return *k != '\0';
}

/* arn:aws:iam::ACCOUNT:root, arn:aws:iam::ACCOUNT:user/NAME,
 * arn:aws:iam::ACCOUNT:role/NAME (paths allowed), or a bare 12-digit account
 * (which IAM policies read as that account's root). */
static bool s_principal_ok(const char *p)
{
    size_t n = strlen(p);
    if (n == 12 && s_digits(p, 12)) {
        return true;
    }
    static const char pre[] = "arn:aws:iam::";
    size_t pl = sizeof(pre) - 1;
    if (n < pl + 13 || strncmp(p, pre, pl) != 0 || !s_digits(p + pl, 12) || p[pl + 12] != ':') {
        return false;
    }
    const char *res = p + pl + 13;
    if (strcmp(res, "root") == 0) {
        return true;
    }
    static const char *const kinds[] = {"user/", "role/"};
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        size_t kl = strlen(kinds[i]);
        if (strncmp(res, kinds[i], kl) == 0 && res[kl] != '\0' && res[strlen(res) - 1] != '/') {
            return true;
        }
    }
    return false;
}

static s3s_result s_identity_policy(struct s_ctx *x, const yaml_node_t *v, const char *what,
                                    struct s3s_config_credential *cred);

static s3s_result s_credentials(struct s_ctx *x, const yaml_node_t *seq)
{
    struct s3s_config *c = x->cfg;
    if (!seq || seq->type != YAML_SEQUENCE_NODE) {
        return s_fail(x, seq, "credentials must be a list");
    }
    size_t n = (size_t)(seq->data.sequence.items.top - seq->data.sequence.items.start);
    if (n == 0) {
        return s_fail(x, seq, "credentials must list at least one access key");
    }
    c->credentials = s3s_calloc(n, sizeof(*c->credentials));
    S3S_ENSURE(c->credentials != NULL, S3S_ERR_NOMEM);
    for (size_t i = 0; i < n; i++) {
        const yaml_node_t *item = yaml_document_get_node(x->doc, seq->data.sequence.items.start[i]);
        struct s_cred_arg a = {.cred = &c->credentials[i]};
        snprintf(a.what, sizeof(a.what), "credentials[%zu]", i);
        c->n_credentials = i + 1;
        S3S_GUARD(s_each(x, item, a.what, s_cred_pair, &a));
        if (!a.cred->access_key) {
            return s_fail(x, item, "%s.access_key is required", a.what);
        }
        if (!s_access_key_ok(a.cred->access_key)) {
            return s_fail(x, a.access_key_v,
                          "%s.access_key must be printable ASCII without spaces, '/', ':', ',' "
                          "or '='",
                          a.what);
        }
        for (size_t j = 0; j < i; j++) {
            if (strcmp(c->credentials[j].access_key, a.cred->access_key) == 0) {
                return s_fail(x, a.access_key_v,
                              "%s: access key %s is listed twice (also credentials[%zu])", a.what,
                              a.cred->access_key, j);
            }
        }
        if (a.cred->principal && !s_principal_ok(a.cred->principal)) {
            return s_fail(x, a.principal_v,
                          "%s.principal must be arn:aws:iam::ACCOUNT:user/NAME, "
                          ":role/NAME, :root, or a 12-digit account id",
                          a.what);
        }
        S3S_GUARD(s_secret(x, item, a.what, &a.secret, &a.cred->secret_key));
        if (a.cred->policy_file) {
            S3S_GUARD(s_identity_policy(x, a.policy_v, a.what, a.cred));
        }
    }
    return s3s_ok();
}

/* A credential's IAM identity policy: read and validated at start-up, so a
 * policy that does not say what its author meant stops the server with the
 * reason instead of refusing (or allowing) requests later. */
static s3s_result s_identity_policy(struct s_ctx *x, const yaml_node_t *v, const char *what,
                                    struct s3s_config_credential *cred)
{
    FILE *f = fopen(cred->policy_file, "rb");
    if (!f) {
        return s_fail(x, v, "%s.policy_file: cannot read %s: %s", what, cred->policy_file,
                      strerror(errno));
    }
    char *text = s3s_malloc(S3S_POLICY_MAX_LEN + 1);
    size_t n = text ? fread(text, 1, S3S_POLICY_MAX_LEN + 1, f) : 0;
    bool err = ferror(f) != 0;
    fclose(f);
    if (!text) {
        S3S_BAIL(S3S_ERR_NOMEM);
    }
    char why[256] = "";
    s3s_result res = err ? s3s_err(S3S_ERR_CONFIG)
                         : s3s_policy_parse_kind(s3s_cur_from(text, n), S3S_POLICY_KIND_IDENTITY,
                                                 &cred->identity_policy, why, sizeof(why));
    s3s_free(&text);
    if (res.code == S3S_ERR_NOMEM) {
        return res;
    }
    if (s3s_failed(res)) {
        return s_fail(x, v, "%s.policy_file %s: %s", what, cred->policy_file,
                      why[0] ? why : "cannot be read");
    }
    return s3s_ok();
}

/* cipher: AES-256-GCM | CHACHA20-POLY1305 (the names in objects' metadata) */
static s3s_result s_cipher(struct s_ctx *x, const yaml_node_t *v, const char *name, int *out)
{
    const char *s = s_scalar(v);
    if (s && strcmp(s, "AES-256-GCM") == 0) {
        *out = S3S_CONFIG_CIPHER_AES_256_GCM;
    } else if (s && strcmp(s, "CHACHA20-POLY1305") == 0) {
        *out = S3S_CONFIG_CIPHER_CHACHA20_POLY1305;
    } else {
        return s_fail(x, v, "%s must be AES-256-GCM or CHACHA20-POLY1305", name);
    }
    return s3s_ok();
}

/* buckets: {name: {default_encryption, kms_key_id, bucket_key, require_encryption,
 * cipher}} */
struct s_bucket_arg {
    struct s3s_config_bucket *b;
    const yaml_node_t *kms_k;
    char what[96]; /* "buckets.NAME" */
};

static s3s_result s_bucket_pair(struct s_ctx *x, const char *key, const yaml_node_t *k,
                                const yaml_node_t *v, void *arg)
{
    struct s_bucket_arg *a = arg;
    struct s3s_config_bucket *b = a->b;
    char name[160];
    snprintf(name, sizeof(name), "%s.%s", a->what, key);
    if (strcmp(key, "default_encryption") == 0) {
        const char *s = s_scalar(v);
        if (s && strcmp(s, "AES256") == 0) {
            b->default_encryption = S3S_SSE_AES256;
        } else if (s && strcmp(s, "aws:kms") == 0) {
            b->default_encryption = S3S_SSE_KMS;
        } else if (s && strcmp(s, "none") == 0) {
            b->default_encryption = S3S_SSE_NONE;
        } else {
            return s_fail(x, v, "%s must be AES256, aws:kms or none", name);
        }
        return s3s_ok();
    }
    if (strcmp(key, "kms_key_id") == 0) {
        a->kms_k = k;
        return s_str(x, v, name, &b->kms_key_id);
    }
    if (strcmp(key, "bucket_key") == 0) {
        a->kms_k = b->kms_key_id ? a->kms_k : k;
        return s_bool(x, v, name, &b->bucket_key);
    }
    if (strcmp(key, "require_encryption") == 0) {
        return s_bool(x, v, name, &b->require_encryption);
    }
    if (strcmp(key, "owner") == 0) {
        S3S_GUARD(s_str(x, v, name, &b->owner));
        if (strlen(b->owner) != 12 || !s_digits(b->owner, 12)) {
            return s_fail(x, v, "%s must be a 12-digit account id (quote it: \"111122223333\")",
                          name);
        }
        return s3s_ok();
    }
    if (strcmp(key, "cipher") == 0) {
        return s_cipher(x, v, name, &b->cipher);
    }
    return s_fail(x, k, "unknown key '%s' in %s", key, a->what);
}

static s3s_result s_buckets(struct s_ctx *x, const yaml_node_t *map)
{
    struct s3s_config *c = x->cfg;
    if (!map || map->type != YAML_MAPPING_NODE) {
        return s_fail(x, map, "buckets must be a mapping of bucket names");
    }
    size_t n = (size_t)(map->data.mapping.pairs.top - map->data.mapping.pairs.start);
    c->buckets = s3s_calloc(n ? n : 1, sizeof(*c->buckets));
    S3S_ENSURE(c->buckets != NULL, S3S_ERR_NOMEM);
    for (size_t i = 0; i < n; i++) {
        yaml_node_pair_t *p = &map->data.mapping.pairs.start[i];
        const yaml_node_t *k = yaml_document_get_node(x->doc, p->key);
        const yaml_node_t *v = yaml_document_get_node(x->doc, p->value);
        struct s_bucket_arg a = {.b = &c->buckets[i]};
        c->n_buckets = i + 1;
        S3S_GUARD(s_str(x, k, "bucket name", &a.b->name));
        for (size_t j = 0; j < i; j++) {
            if (strcmp(c->buckets[j].name, a.b->name) == 0) {
                return s_fail(x, k, "bucket %s is listed twice", a.b->name);
            }
        }
        snprintf(a.what, sizeof(a.what), "buckets.%s", a.b->name);
        S3S_GUARD(s_each(x, v, a.what, s_bucket_pair, &a));
        if ((a.b->kms_key_id || a.b->bucket_key) && a.b->default_encryption != S3S_SSE_KMS) {
            return s_fail(x, a.kms_k, "%s.%s needs default_encryption: aws:kms", a.what,
                          a.b->kms_key_id ? "kms_key_id" : "bucket_key");
        }
    }
    return s3s_ok();
}

static s3s_result s_keystore_pair(struct s_ctx *x, const char *key, const yaml_node_t *k,
                                  const yaml_node_t *v, void *arg)
{
    (void)arg;
    if (strcmp(key, "path") == 0 || strcmp(key, "url") == 0) {
        /* One location either way: a path, sqlite://PATH or postgresql://... */
        if (x->cfg->keystore.path) {
            return s_fail(x, k, "keystore.path and keystore.url name the same keystore: set one");
        }
        return s_str(x, v, key[0] == 'u' ? "keystore.url" : "keystore.path",
                     &x->cfg->keystore.path);
    }
    if (strcmp(key, "master_key_file") == 0) {
        return s_str(x, v, "keystore.master_key_file", &x->cfg->keystore.master_key_file);
    }
    if (strcmp(key, "root_key_rotation_days") == 0) {
        return s_u64(x, v, "keystore.root_key_rotation_days", 0, 36500,
                     &x->cfg->keystore.root_key_rotation_days);
    }
    if (strcmp(key, "kms_rotation_days") == 0) {
        uint64_t *days = &x->cfg->keystore.kms_rotation_days;
        S3S_GUARD(s_u64(x, v, "keystore.kms_rotation_days", 0, S3S_KMS_MAX_ROTATION_DAYS, days));
        /* AWS's range, which the keystore holds every key to: a shorter
         * period would only show when the first default key is made. */
        if (*days != 0 && *days < S3S_KMS_MIN_ROTATION_DAYS) {
            return s_fail(x, v, "keystore.kms_rotation_days must be 0 (off) or %d to %d",
                          S3S_KMS_MIN_ROTATION_DAYS, S3S_KMS_MAX_ROTATION_DAYS);
        }
        return s3s_ok();
    }
    if (strcmp(key, "dek_cache_seconds") == 0) {
        return s_u64(x, v, "keystore.dek_cache_seconds", 0, 86400,
                     &x->cfg->keystore.dek_cache_seconds);
    }
    if (strcmp(key, "dek_cache_entries") == 0) {
        return s_size(x, v, "keystore.dek_cache_entries", 16, 1 << 20,
                      &x->cfg->keystore.dek_cache_entries);
    }
    if (strcmp(key, "bucket_key_seconds") == 0) {
        return s_u64(x, v, "keystore.bucket_key_seconds", 1, 7 * 86400,
                     &x->cfg->keystore.bucket_key_seconds);
    }
    return s_fail(x, k, "unknown key '%s' in keystore", key);
}

/* tls: the files must be there and readable now (their contents are read
 * when the server builds its TLS context); the private key is a secret file:
 * a regular file that group and others cannot read. */
struct s_tls_arg {
    const yaml_node_t *cert_v, *key_v, *ca_v;
};

static s3s_result s_tls_file(struct s_ctx *x, const yaml_node_t *n, const char *what,
                             const char *path, bool secret)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        return s_fail(x, n, "%s: cannot read %s: %s", what, path, strerror(errno));
    }
    struct stat st;
    bool regular = fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
    close(fd);
    if (!regular) {
        return s_fail(x, n, "%s: %s is not a regular file", what, path);
    }
    if (secret && (st.st_mode & (S_IRWXG | S_IRWXO))) {
        return s_fail(x, n, "%s: %s is readable by group or others (chmod 600 it)", what, path);
    }
    return s3s_ok();
}

static s3s_result s_tls_pair(struct s_ctx *x, const char *key, const yaml_node_t *k,
                             const yaml_node_t *v, void *arg)
{
    struct s3s_config *c = x->cfg;
    struct s_tls_arg *a = arg;
    if (strcmp(key, "cert_file") == 0) {
        a->cert_v = v;
        return s_str(x, v, "tls.cert_file", &c->tls.cert_file);
    }
    if (strcmp(key, "key_file") == 0) {
        a->key_v = v;
        return s_str(x, v, "tls.key_file", &c->tls.key_file);
    }
    if (strcmp(key, "client_ca_file") == 0) {
        a->ca_v = v;
        return s_str(x, v, "tls.client_ca_file", &c->tls.client_ca_file);
    }
    if (strcmp(key, "min_version") == 0) {
        const char *s = s_scalar(v);
        if (s && (strcmp(s, "1.2") == 0 || strcmp(s, "TLSv1.2") == 0)) {
            c->tls.min_version = 0x0303;
        } else if (s && (strcmp(s, "1.3") == 0 || strcmp(s, "TLSv1.3") == 0)) {
            c->tls.min_version = 0x0304;
        } else {
            return s_fail(x, v, "tls.min_version must be 1.2 or 1.3");
        }
        return s3s_ok();
    }
    return s_fail(x, k, "unknown key '%s' in tls", key);
}

static s3s_result s_tls(struct s_ctx *x, const yaml_node_t *k, const yaml_node_t *v)
{
    struct s3s_config *c = x->cfg;
    struct s_tls_arg a = {0};
    S3S_GUARD(s_each(x, v, "tls", s_tls_pair, &a));
    if (!a.cert_v || !a.key_v) {
        return s_fail(x, k, "tls needs cert_file and key_file");
    }
    S3S_GUARD(s_tls_file(x, a.cert_v, "tls.cert_file", c->tls.cert_file, false));
    S3S_GUARD(s_tls_file(x, a.key_v, "tls.key_file", c->tls.key_file, true));
    if (a.ca_v) {
        S3S_GUARD(s_tls_file(x, a.ca_v, "tls.client_ca_file", c->tls.client_ca_file, false));
        c->tls.ca_line = (unsigned long)a.ca_v->start_mark.line + 1;
    }
    c->tls.cert_line = (unsigned long)a.cert_v->start_mark.line + 1;
    c->tls.key_line = (unsigned long)a.key_v->start_mark.line + 1;
    s3s_free(&c->tls.origin);
    c->tls.origin = s3s_strdup(x->name);
    S3S_ENSURE(c->tls.origin != NULL, S3S_ERR_NOMEM);
    return s3s_ok();
}

static s3s_result s_limits_pair(struct s_ctx *x, const char *key, const yaml_node_t *k,
                                const yaml_node_t *v, void *arg)
{
    (void)arg;
    struct s3s_config *c = x->cfg;
    const uint64_t day_ms = 86400000;
    if (strcmp(key, "max_header_bytes") == 0) {
        return s_size(x, v, "limits.max_header_bytes", 1024, 1 << 20, &c->limits.max_header_bytes);
    }
    if (strcmp(key, "max_headers") == 0) {
        return s_size(x, v, "limits.max_headers", 8, 1000, &c->limits.max_headers);
    }
    if (strcmp(key, "max_url_bytes") == 0) {
        return s_size(x, v, "limits.max_url_bytes", 256, 65536, &c->limits.max_url_bytes);
    }
    if (strcmp(key, "max_body_bytes") == 0) {
        return s_u64(x, v, "limits.max_body_bytes", 1, (uint64_t)5 << 40,
                     &c->limits.max_body_bytes);
    }
    if (strcmp(key, "header_timeout_ms") == 0) {
        return s_u64(x, v, "limits.header_timeout_ms", 100, day_ms, &c->limits.header_timeout_ms);
    }
    if (strcmp(key, "idle_timeout_ms") == 0) {
        return s_u64(x, v, "limits.idle_timeout_ms", 100, day_ms, &c->limits.idle_timeout_ms);
    }
    if (strcmp(key, "backend_timeout_ms") == 0) {
        return s_u64(x, v, "limits.backend_timeout_ms", 100, day_ms,
                     &c->limits.backend_timeout_ms);
    }
    if (strcmp(key, "shutdown_timeout_ms") == 0) {
        return s_u64(x, v, "limits.shutdown_timeout_ms", 0, day_ms,
                     &c->limits.shutdown_timeout_ms);
    }
    if (strcmp(key, "max_connections") == 0) {
        return s_size(x, v, "limits.max_connections", 1, 1000000, &c->limits.max_connections);
    }
    if (strcmp(key, "max_connections_per_client") == 0) {
        return s_size(x, v, "limits.max_connections_per_client", 1, 1000000,
                      &c->limits.max_connections_per_client);
    }
    if (strcmp(key, "min_body_rate") == 0) {
        return s_u64(x, v, "limits.min_body_rate", 0, (uint64_t)1 << 30, &c->limits.min_body_rate);
    }
    if (strcmp(key, "body_rate_window_ms") == 0) {
        return s_u64(x, v, "limits.body_rate_window_ms", 100, day_ms,
                     &c->limits.body_rate_window_ms);
    }
    return s_fail(x, k, "unknown key '%s' in limits", key);
}

/* listen (and admin_listen): HOST:PORT or [V6]:PORT. The server binds an
 * address, it does not resolve names, so HOST must be an IP literal
 * ("0.0.0.0" for every IPv4 interface, "[::]" for every IPv6 one). */
static s3s_result s_addr(struct s_ctx *x, const yaml_node_t *n, const char *name, char **host,
                         int *port_out)
{
    const char *v = s_scalar(n);
    if (!v || !*v) {
        return s_fail(x, n, "%s must be HOST:PORT (e.g. 127.0.0.1:8080)", name);
    }
    const char *colon = strrchr(v, ':');
    if (!colon || colon == v) {
        return s_fail(x, n, "%s must be HOST:PORT (e.g. 127.0.0.1:8080)", name);
    }
    const char *h = v;
    size_t hl = (size_t)(colon - v);
    char ip[INET6_ADDRSTRLEN + 1];
    union {
        struct in_addr v4;
        struct in6_addr v6;
    } addr;
    if (v[0] == '[') {
        if (hl < 3 || v[hl - 1] != ']') {
            return s_fail(x, n, "%s: bad IPv6 address (use \"[::1]:8080\")", name);
        }
        h = v + 1;
        hl -= 2;
        if (hl >= sizeof(ip)) {
            return s_fail(x, n, "%s: bad IPv6 address (use \"[::1]:8080\")", name);
        }
        memcpy(ip, h, hl);
        ip[hl] = '\0';
        if (inet_pton(AF_INET6, ip, &addr.v6) != 1) {
            return s_fail(x, n, "%s: bad IPv6 address (use \"[::1]:8080\")", name);
        }
    } else if (memchr(v, ':', hl)) {
        return s_fail(x, n, "%s: put IPv6 addresses in brackets (\"[::1]:8080\")",
                      name);
    } else {
        if (hl >= sizeof(ip)) {
            return s_fail(x, n, "%s: HOST must be an IP address (e.g. 127.0.0.1 or 0.0.0.0)",
                          name);
        }
        memcpy(ip, h, hl);
        ip[hl] = '\0';
        if (inet_pton(AF_INET, ip, &addr.v4) != 1) {
            return s_fail(x, n, "%s: HOST must be an IP address (e.g. 127.0.0.1 or 0.0.0.0)",
                          name);
        }
    }
    uint64_t port = 0;
    if (s3s_failed(s3s_parse_u64(s3s_cur_from_str(colon + 1), 65535, &port)) || port == 0) {
        return s_fail(x, n, "%s: bad port '%s' (1 to 65535)", name, colon + 1);
    }
    s3s_free(host);
    *host = s3s_strndup(h, hl);
    S3S_ENSURE(*host != NULL, S3S_ERR_NOMEM);
    *port_out = (int)port;
    return s3s_ok();
}

static bool s_wildcard(const char *host)
{
    return strcmp(host, "0.0.0.0") == 0 || strcmp(host, "::") == 0;
}

struct s_top_arg {
    const yaml_node_t *listen, *backend, *backend_k, *credentials;
    const yaml_node_t *admin_listen;
};

static s3s_result s_top_pair(struct s_ctx *x, const char *key, const yaml_node_t *k,
                             const yaml_node_t *v, void *arg)
{
    struct s3s_config *c = x->cfg;
    struct s_top_arg *a = arg;
    uint64_t u = 0;
    if (strcmp(key, "listen") == 0) {
        a->listen = v;
        return s_addr(x, v, "listen", &c->listen_host, &c->listen_port);
    }
    if (strcmp(key, "admin_listen") == 0) {
        a->admin_listen = v;
        return s_addr(x, v, "admin_listen", &c->admin_host, &c->admin_port);
    }
    if (strcmp(key, "account_id") == 0) {
        S3S_GUARD(s_str(x, v, "account_id", &c->account_id));
        if (strlen(c->account_id) != 12 || !s_digits(c->account_id, 12)) {
            return s_fail(x, v, "account_id must be 12 digits (quote it: \"111122223333\")");
        }
        return s3s_ok();
    }
    if (strcmp(key, "region") == 0) {
        return s_str(x, v, "region", &c->region);
    }
    if (strcmp(key, "domain") == 0) {
        return s_str(x, v, "domain", &c->domain);
    }
    if (strcmp(key, "workers") == 0) {
        S3S_GUARD(s_u64(x, v, "workers", 1, 64, &u));
        c->workers = (int)u;
        return s3s_ok();
    }
    if (strcmp(key, "log_format") == 0) {
        const char *s = s_scalar(v);
        int f = s ? s3s_log_format_parse(s) : -1;
        if (f < 0) {
            return s_fail(x, v, "log_format must be text or json");
        }
        c->log_format = f;
        return s3s_ok();
    }
    if (strcmp(key, "access_log") == 0) {
        return s_str(x, v, "access_log", &c->access_log);
    }
    if (strcmp(key, "log_level") == 0) {
        const char *s = s_scalar(v);
        int lvl = s ? s3s_log_level_parse(s) : -1;
        if (lvl < 0) {
            return s_fail(x, v, "log_level must be debug, info, warn, error or off");
        }
        c->log_level = lvl;
        return s3s_ok();
    }
    if (strcmp(key, "backend") == 0) {
        a->backend = v;
        a->backend_k = k;
        return s3s_ok();
    }
    if (strcmp(key, "credentials") == 0) {
        a->credentials = v;
        return s3s_ok();
    }
    if (strcmp(key, "keystore") == 0) {
        return s_each(x, v, "keystore", s_keystore_pair, NULL);
    }
    if (strcmp(key, "buckets") == 0) {
        return s_buckets(x, v);
    }
    if (strcmp(key, "audit_log") == 0) {
        return s_str(x, v, "audit_log", &c->audit_log);
    }
    if (strcmp(key, "instance_id") == 0) {
        c->instance_id_given = true;
        return s_str(x, v, "instance_id", &c->instance_id);
    }
    if (strcmp(key, "audit_fsync") == 0) {
        return s_bool(x, v, "audit_fsync", &c->audit_fsync);
    }
    if (strcmp(key, "sigv2") == 0) {
        return s_bool(x, v, "sigv2", &c->sigv2);
    }
    if (strcmp(key, "debug_core_dumps") == 0) {
        return s_bool(x, v, "debug_core_dumps", &c->debug_core_dumps);
    }
    if (strcmp(key, "plaintext_etag") == 0) {
        return s_bool(x, v, "plaintext_etag", &c->plaintext_etag);
    }
    if (strcmp(key, "cipher") == 0) {
        return s_cipher(x, v, "cipher", &c->cipher);
    }
    if (strcmp(key, "limits") == 0) {
        return s_each(x, v, "limits", s_limits_pair, NULL);
    }
    if (strcmp(key, "tls") == 0) {
        return s_tls(x, k, v);
    }
    return s_fail(x, k, "unknown key '%s' in the top level", key);
}

static void s_defaults(struct s3s_config *c)
{
    c->workers = 1;
    c->log_level = S3S_LOG_INFO;
    c->plaintext_etag = true;
    c->cipher = S3S_CONFIG_CIPHER_AES_256_GCM;
    c->backend.tls_verify = true;
    c->tls.min_version = 0x0303;
    c->keystore.kms_rotation_days = 365;
    c->keystore.dek_cache_seconds = 60;
    c->keystore.dek_cache_entries = 4096;
    c->keystore.bucket_key_seconds = 3600;
    c->backend.max_connections = 64;
    c->limits.max_header_bytes = 64 * 1024;
    c->limits.max_headers = 128;
    c->limits.max_url_bytes = 8 * 1024;
    c->limits.max_body_bytes = (uint64_t)5 << 30;
    c->limits.header_timeout_ms = 30000;
    c->limits.idle_timeout_ms = 60000;
    c->limits.backend_timeout_ms = 30000;
    c->limits.shutdown_timeout_ms = 30000;
    c->limits.max_connections = 4096;
    c->limits.max_connections_per_client = 128;
    c->limits.min_body_rate = 1024;
    c->limits.body_rate_window_ms = 20000;
}

static s3s_result s_str_default(char **field, const char *v)
{
    if (!*field) {
        *field = s3s_strdup(v);
        S3S_ENSURE(*field != NULL, S3S_ERR_NOMEM);
    }
    return s3s_ok();
}

/* instance_id: "HOSTNAME:PORT", stable across restarts and unique per host
 * and listener, so each server and the CLI run beside it share one chain. */
static s3s_result s_instance_default(struct s3s_config *c)
{
    if (c->instance_id) {
        return s3s_ok();
    }
    char host[256] = "";
    if (gethostname(host, sizeof(host) - 1) != 0 || !host[0]) {
        snprintf(host, sizeof(host), "localhost");
    }
    char id[300];
    snprintf(id, sizeof(id), "%s:%d", host, c->listen_port);
    return s_str_default(&c->instance_id, id);
}

static s3s_result s_load_doc(struct s_ctx *x)
{
    struct s3s_config *c = x->cfg;
    const yaml_node_t *root = yaml_document_get_root_node(x->doc);
    if (!root) {
        return s_fail(x, NULL, "the file is empty");
    }
    struct s_top_arg top = {0};
    S3S_GUARD(s_each(x, root, "the top level", s_top_pair, &top));
    if (!top.listen) {
        return s_fail(x, root, "listen is required (e.g. listen: 127.0.0.1:8080)");
    }
    /* The admin listener is never the S3 port: same port on the same or a
     * wildcard address would share (or fail to bind) the client socket. */
    if (top.admin_listen && c->admin_port == c->listen_port &&
        (strcmp(c->admin_host, c->listen_host) == 0 || s_wildcard(c->admin_host) ||
         s_wildcard(c->listen_host))) {
        return s_fail(x, top.admin_listen, "admin_listen must differ from listen (port %d)",
                      c->listen_port);
    }
    if (!top.backend) {
        return s_fail(x, root, "backend is required");
    }
    /* A missing backend key is reported at the "backend:" line. */
    struct s_backend_arg ba = {0};
    S3S_GUARD(s_each(x, top.backend, "backend", s_backend_pair, &ba));
    if (!c->backend.endpoint) {
        return s_fail(x, top.backend_k, "backend.endpoint is required");
    }
    S3S_GUARD(s_endpoint(x, ba.endpoint_v));
    if (!c->backend.access_key) {
        return s_fail(x, top.backend_k, "backend.access_key is required");
    }
    S3S_GUARD(s_secret(x, top.backend_k, "backend", &ba.secret, &c->backend.secret_key));
    if (!top.credentials) {
        return s_fail(x, root, "credentials is required (the access keys clients sign with)");
    }
    S3S_GUARD(s_credentials(x, top.credentials));

    S3S_GUARD(s_str_default(&c->account_id, "111122223333"));
    S3S_GUARD(s_str_default(&c->backend.region, "us-east-1"));
    S3S_GUARD(s_str_default(&c->region, c->backend.region));
    S3S_GUARD(s_str_default(&c->keystore.path, "./s3seal-keystore"));
    S3S_GUARD(s_instance_default(c));
    for (size_t i = 0; i < c->n_credentials; i++) {
        struct s3s_config_credential *cr = &c->credentials[i];
        if (!cr->principal) {
            size_t n = strlen(c->account_id) + strlen(cr->access_key) + 32;
            cr->principal = s3s_malloc(n);
            S3S_ENSURE(cr->principal != NULL, S3S_ERR_NOMEM);
            snprintf(cr->principal, n, "arn:aws:iam::%s:user/%s", c->account_id, cr->access_key);
        }
    }
    return s3s_ok();
}

/* libyaml's own error ("did not find expected key") at its line. */
static s3s_result s_yaml_error(struct s_ctx *x, const yaml_parser_t *parser)
{
    if (x->why && x->why_len) {
        snprintf(x->why, x->why_len, "%s:%lu: %s%s%s", x->name,
                 (unsigned long)parser->problem_mark.line + 1,
                 parser->problem ? parser->problem : "YAML syntax error",
                 parser->context ? " " : "", parser->context ? parser->context : "");
    }
    return s3s_err(S3S_ERR_CONFIG);
}

/* Parses the first document, then makes sure no second one follows: a stray
 * "---" would otherwise silently drop everything after it. */
static s3s_result s_parse(struct s_ctx *x, const char *yaml, size_t len)
{
    yaml_parser_t parser;
    yaml_document_t doc, extra;
    if (!yaml_parser_initialize(&parser)) {
        S3S_BAIL(S3S_ERR_NOMEM);
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)yaml, len);
    if (!yaml_parser_load(&parser, &doc)) {
        s3s_result r = s_yaml_error(x, &parser);
        yaml_parser_delete(&parser);
        return r;
    }
    x->doc = &doc;
    s3s_result r = s_load_doc(x);
    x->doc = NULL;
    if (s3s_is_ok(r)) {
        if (!yaml_parser_load(&parser, &extra)) {
            r = s_yaml_error(x, &parser);
        } else {
            /* A trailing "---" (an empty document) is harmless. */
            const yaml_node_t *root = yaml_document_get_root_node(&extra);
            bool empty = !root || (root->type == YAML_SCALAR_NODE &&
                                   root->data.scalar.length == 0 &&
                                   root->data.scalar.style == YAML_PLAIN_SCALAR_STYLE);
            if (!empty) {
                r = s_fail(x, root, "only one YAML document is allowed");
            }
            yaml_document_delete(&extra);
        }
    }
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    return r;
}

s3s_result s3s_config_load_string(const char *yaml, size_t len, const char *name,
                                  struct s3s_config **out, char *why, size_t why_len)
{
    S3S_ENSURE_REF(out);
    S3S_ENSURE(yaml != NULL || len == 0, S3S_ERR_INVALID_ARG);
    *out = NULL;
    if (why && why_len) {
        why[0] = '\0';
    }
    struct s_ctx x = {name ? name : "config", NULL, NULL, why, why_len};
    s3s_result r = s3s_err(S3S_ERR_NOMEM);
    x.cfg = s3s_calloc(1, sizeof(*x.cfg));
    if (x.cfg) {
        atomic_init(&x.cfg->refs_, 1);
        s_defaults(x.cfg);
        r = s_parse(&x, yaml ? yaml : "", len);
    }
    if (s3s_failed(r)) {
        /* Out of memory (or another internal error) has no line of its own. */
        if (r.code != S3S_ERR_CONFIG && why && why_len) {
            snprintf(why, why_len, "%s: %s", x.name,
                     r.code == S3S_ERR_NOMEM ? "out of memory" : s3s_strerror(r.code));
        }
        s3s_config_destroy(x.cfg);
        S3S_BAIL(S3S_ERR_CONFIG);
    }
    *out = x.cfg;
    return s3s_ok();
}

s3s_result s3s_config_load(const char *path, struct s3s_config **out, char *why, size_t why_len)
{
    S3S_ENSURE_REF(path);
    S3S_ENSURE_REF(out);
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (why && why_len) {
            snprintf(why, why_len, "%s: cannot open: %s", path, strerror(errno));
        }
        S3S_BAIL(S3S_ERR_CONFIG);
    }
    /* read(2) straight into a buffer that is wiped afterwards: the file may
     * hold inline secrets, and stdio would keep an unwiped copy. */
    const size_t max = 4 * 1024 * 1024;
    struct stat st;
    size_t initial = 4096;
    if (fstat(fd, &st) == 0 && st.st_size > 0) {
        /* Sized up front so the buffer is not reallocated, which would leave
         * an unwiped copy behind. */
        initial = (size_t)st.st_size < max ? (size_t)st.st_size + 4097 : max;
    }
    struct s3s_buf b = {0};
    s3s_result r = s3s_buf_init(&b, initial, max);
    int err = 0;
    while (s3s_is_ok(r)) {
        r = s3s_buf_reserve(&b, 4096);
        if (s3s_failed(r)) {
            break;
        }
        /* Leave the spare byte past len alone: it is for the NUL. */
        size_t got = 0;
        bool eof = false;
        err = s_read_fd(fd, b.ptr + b.len, b.cap - b.len - 1, &got, &eof);
        b.len += got;
        if (err || eof) {
            break;
        }
    }
    close(fd);
    if (err || s3s_failed(r)) {
        if (why && why_len) {
            snprintf(why, why_len, "%s: %s%s", path, err ? "cannot read: " : "",
                     err                           ? strerror(err)
                     : r.code == S3S_ERR_TOO_BIG ? "larger than 4 MiB"
                                                 : "out of memory");
        }
        s3s_buf_clean_up_secure(&b);
        S3S_BAIL(S3S_ERR_CONFIG);
    }
    r = s3s_config_load_string((const char *)b.ptr, b.len, path, out, why, why_len);
    s3s_buf_clean_up_secure(&b);
    return r;
}

void s3s_config_destroy(struct s3s_config *c)
{
    if (!c || atomic_fetch_sub(&c->refs_, 1) > 1) {
        return;
    }
    s3s_free(&c->listen_host);
    s3s_free(&c->admin_host);
    s3s_free(&c->account_id);
    s3s_free(&c->region);
    s3s_free(&c->domain);
    s3s_free(&c->backend.endpoint);
    s3s_free(&c->backend.scheme);
    s3s_free(&c->backend.host);
    s3s_free(&c->backend.host_header);
    s3s_free(&c->backend.region);
    s3s_free(&c->backend.access_key);
    s3s_secret_destroy(&c->backend.secret_key);
    s3s_free(&c->backend.ca_file);
    for (size_t i = 0; i < c->n_credentials; i++) {
        s3s_free(&c->credentials[i].access_key);
        s3s_free(&c->credentials[i].principal);
        s3s_free(&c->credentials[i].policy_file);
        s3s_policy_free(c->credentials[i].identity_policy);
        s3s_secret_destroy(&c->credentials[i].secret_key);
    }
    s3s_free(&c->credentials);
    for (size_t i = 0; i < c->n_buckets; i++) {
        s3s_free(&c->buckets[i].name);
        s3s_free(&c->buckets[i].kms_key_id);
        s3s_free(&c->buckets[i].owner);
    }
    s3s_free(&c->buckets);
    s3s_free(&c->keystore.path);
    s3s_free(&c->keystore.master_key_file);
    s3s_free(&c->audit_log);
    s3s_free(&c->instance_id);
    s3s_free(&c->access_log);
    s3s_free(&c->tls.cert_file);
    s3s_free(&c->tls.key_file);
    s3s_free(&c->tls.client_ca_file);
    s3s_free(&c->tls.origin);
    s3s_free(&c);
}

const struct s3s_config_credential *s3s_config_find_credential(const struct s3s_config *cfg,
                                                               struct s3s_cur access_key)
{
    for (size_t i = 0; i < cfg->n_credentials; i++) {
        if (s3s_cur_eq_str(access_key, cfg->credentials[i].access_key)) {
            return &cfg->credentials[i];
        }
    }
    return NULL;
}

const struct s3s_config_bucket *s3s_config_find_bucket(const struct s3s_config *cfg,
                                                       struct s3s_cur bucket)
{
    for (size_t i = 0; i < cfg->n_buckets; i++) {
        if (s3s_cur_eq_str(bucket, cfg->buckets[i].name)) {
            return &cfg->buckets[i];
        }
    }
    return NULL;
}

/* ---------------------------------------------------------------- reload */

const struct s3s_config *s3s_config_acquire(const struct s3s_config *cfg)
{
    if (cfg) {
        /* The count is the one mutable part of a shared config. */
        atomic_fetch_add(&((struct s3s_config *)cfg)->refs_, 1);
    }
    return cfg;
}

void s3s_config_release(const struct s3s_config *cfg)
{
    s3s_config_destroy((struct s3s_config *)cfg);
}

struct s_changed {
    char *out;
    size_t len;
};

static void s_changed_add(struct s_changed *ch, const char *name)
{
    size_t used = strlen(ch->out);
    snprintf(ch->out + used, ch->len - used, "%s%s", used ? ", " : "", name);
}

static bool s_str_differs(const char *a, const char *b)
{
    return (a == NULL) != (b == NULL) || (a && strcmp(a, b) != 0);
}

/* *next takes cur's string if they differ. */
static s3s_result s_keep_str(struct s_changed *ch, const char *name, char **next, const char *cur)
{
    if (!s_str_differs(*next, cur)) {
        return s3s_ok();
    }
    char *d = NULL;
    if (cur) {
        d = s3s_strdup(cur);
        S3S_ENSURE(d != NULL, S3S_ERR_NOMEM);
    }
    s3s_free(next);
    *next = d;
    s_changed_add(ch, name);
    return s3s_ok();
}

/* An address: host and port, named once. */
static s3s_result s_keep_addr(struct s_changed *ch, const char *name, char **next_host,
                              int *next_port, const char *cur_host, int cur_port)
{
    if (!s_str_differs(*next_host, cur_host) && *next_port == cur_port) {
        return s3s_ok();
    }
    char none[1] = "";
    struct s_changed quiet = {none, sizeof(none)};
    S3S_GUARD(s_keep_str(&quiet, name, next_host, cur_host));
    *next_port = cur_port;
    s_changed_add(ch, name);
    return s3s_ok();
}

#define S_KEEP_NUM(ch, name, field)                                                   \
    do {                                                                              \
        if (next->field != cur->field) {                                              \
            next->field = cur->field;                                                 \
            s_changed_add(ch, name);                                                  \
        }                                                                             \
    } while (0)

s3s_result s3s_config_keep_static(struct s3s_config *next, const struct s3s_config *cur,
                                  char *changed, size_t changed_len)
{
    S3S_ENSURE(next && cur && changed && changed_len, S3S_ERR_INVALID_ARG);
    changed[0] = '\0';
    struct s_changed ch = {changed, changed_len};
    S3S_GUARD(s_keep_addr(&ch, "listen", &next->listen_host, &next->listen_port,
                          cur->listen_host, cur->listen_port));
    S3S_GUARD(s_keep_addr(&ch, "admin_listen", &next->admin_host, &next->admin_port,
                          cur->admin_host, cur->admin_port));
    S_KEEP_NUM(&ch, "workers", workers);
    S3S_GUARD(s_keep_str(&ch, "region", &next->region, cur->region));
    S3S_GUARD(s_keep_str(&ch, "account_id", &next->account_id, cur->account_id));
    S3S_GUARD(s_keep_str(&ch, "keystore.path", &next->keystore.path, cur->keystore.path));
    S3S_GUARD(s_keep_str(&ch, "keystore.master_key_file", &next->keystore.master_key_file,
                         cur->keystore.master_key_file));
    S_KEEP_NUM(&ch, "keystore.root_key_rotation_days", keystore.root_key_rotation_days);
    S_KEEP_NUM(&ch, "keystore.kms_rotation_days", keystore.kms_rotation_days);
    S_KEEP_NUM(&ch, "keystore.dek_cache_seconds", keystore.dek_cache_seconds);
    S_KEEP_NUM(&ch, "keystore.dek_cache_entries", keystore.dek_cache_entries);
    S_KEEP_NUM(&ch, "keystore.bucket_key_seconds", keystore.bucket_key_seconds);
    S3S_GUARD(s_keep_str(&ch, "audit_log", &next->audit_log, cur->audit_log));
    S_KEEP_NUM(&ch, "audit_fsync", audit_fsync);
    if (next->instance_id_given || cur->instance_id_given) {
        S3S_GUARD(s_keep_str(&ch, "instance_id", &next->instance_id, cur->instance_id));
    } else {
        /* Both the default: it follows listen, which is named already. */
        char *id = cur->instance_id ? s3s_strdup(cur->instance_id) : NULL;
        S3S_ENSURE(id != NULL || !cur->instance_id, S3S_ERR_NOMEM);
        s3s_free(&next->instance_id);
        next->instance_id = id;
    }
    next->instance_id_given = cur->instance_id_given;
    S_KEEP_NUM(&ch, "backend.max_connections", backend.max_connections);
    S_KEEP_NUM(&ch, "debug_core_dumps", debug_core_dumps);
    /* HTTPS on or off is the listener's (a restart); its certificate, key,
     * client CA and minimum version reload (tls.h). */
    if ((next->tls.cert_file == NULL) != (cur->tls.cert_file == NULL)) {
        char none[1] = "";
        struct s_changed quiet = {none, sizeof(none)};
        S3S_GUARD(s_keep_str(&quiet, "tls", &next->tls.cert_file, cur->tls.cert_file));
        S3S_GUARD(s_keep_str(&quiet, "tls", &next->tls.key_file, cur->tls.key_file));
        S3S_GUARD(s_keep_str(&quiet, "tls", &next->tls.client_ca_file, cur->tls.client_ca_file));
        S3S_GUARD(s_keep_str(&quiet, "tls", &next->tls.origin, cur->tls.origin));
        next->tls.min_version = cur->tls.min_version;
        next->tls.cert_line = cur->tls.cert_line;
        next->tls.key_line = cur->tls.key_line;
        next->tls.ca_line = cur->tls.ca_line;
        s_changed_add(&ch, "tls");
    }
    return s3s_ok();
}

bool s3s_config_audit_in_keystore(const struct s3s_config *cfg)
{
    return cfg->audit_log && strcmp(cfg->audit_log, S3S_CONFIG_AUDIT_KEYSTORE) == 0;
}

s3s_result s3s_config_audit_open(const struct s3s_config *cfg, bool fsync,
                                 struct s3s_audit **out, char *why, size_t why_len)
{
    S3S_ENSURE(cfg && cfg->audit_log, S3S_ERR_INVALID_ARG);
    if (s3s_config_audit_in_keystore(cfg)) {
        return s3s_audit_open_keystore(cfg->keystore.path, cfg->instance_id, out, why, why_len);
    }
    return s3s_audit_open(cfg->audit_log, fsync, out, why, why_len);
}
