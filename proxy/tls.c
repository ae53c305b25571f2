/*
 * tls.c - TLS for clients (tls.h): the server's SSL_CTX (certificate chain,
 * private key, optional client CA for mutual TLS, minimum version, ALPN
 * http/1.1, session tickets under rotating keys), swapped on reload; and a
 * connection's SSL object between two BIOs of s3seal's own over memory
 * buffers, which conn.c fills with what it reads from the socket and
 * empties into what it writes.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <uv.h>

#include "common/log.h"
#include "proxy/tls.h"

/* Session tickets: a new key every S_TICKET_PERIOD_S (made when a ticket is
 * issued after the period is over); a ticket under the key before it still
 * resumes a session (and is replaced by a new one), older tickets do not.
 * So a ticket lives at most two periods, and a stolen ticket key opens at
 * most that much traffic. The keys live in this process only: a restart
 * (or another instance) does a full handshake. */
#define S_TICKET_PERIOD_S 3600
#define S_TICKET_KEYS 2

/* The largest TLS record's plaintext. */
#define S_RECORD 16384

/* A connection's input or output buffer larger than this is given back
 * when the connection is idle (s3s_tls_conn_trim). */
#define S_TRIM_ABOVE (32 * 1024)

/* The largest private key file read. */
#define S_KEY_MAX (64 * 1024)

struct s_ticket_key {
    uint8_t name[16];
    uint8_t aes[32];
    uint8_t hmac[32];
    uint64_t born_ns;
};

/* What a context is built from: the config's tls section, copied (a
 * config reload frees the config it came from). */
struct s_files {
    char *cert_file, *key_file, *ca_file, *origin;
    int min_version;
    unsigned long cert_line, key_line, ca_line;
};

struct s3s_tls_server {
    uv_mutex_t lock; /* ctx and the ticket keys */
    SSL_CTX *ctx;
    struct s_files files; /* ctx's */
    /* Built by s3s_tls_server_prepare, in use after commit. */
    SSL_CTX *next_ctx;
    struct s_files next_files;
    struct s3s_secret keys; /* S_TICKET_KEYS struct s_ticket_key, [0] the newest */
    int n_keys;
    _Atomic uint64_t handshakes, resumed, failures;
};

/* A connection's SSL reads its input from, and writes its output to, BIOs
 * of s3seal's own (s_io_method) over the buffers below, so that no byte is
 * copied more than OpenSSL itself copies it: input is read from the bytes
 * conn.c read (in_ptr, the caller's) as long as the call that fed them
 * lasts, and only what was not decrypted by then is kept (in_own); records
 * are appended to `out`, from which conn.c writes to the socket directly. */
struct s3s_tls_conn {
    struct s3s_tls_server *server;
    SSL *ssl;
    BIO *rbio, *wbio; /* owned by ssl */
    const uint8_t *in_ptr; /* input not yet read by the SSL */
    size_t in_len;
    bool in_ext; /* in_ptr is the caller's (s3s_tls_conn_feed_end) */
    struct s3s_buf in_own;
    struct s3s_buf out; /* ciphertext from out_off on waits for the socket */
    size_t out_off;
    bool seen_first;
    bool ready;
    bool failed;
    bool closed;
    char why[160];
};

/* ------------------------------------------------------------ messages */

/* OpenSSL's reason for the last error (and its queue emptied). */
static void s_ssl_reason(char *out, size_t cap)
{
    unsigned long e = 0, last = 0;
    while ((e = ERR_get_error()) != 0) {
        last = e;
    }
    if (last) {
        const char *r = ERR_reason_error_string(last);
        snprintf(out, cap, "%s", r ? r : "unknown error");
    } else {
        snprintf(out, cap, "unknown error");
    }
}

/* "FILE:LINE: tls.KEY: " and the message into why. */
static s3s_result s_fail(const struct s_files *f, unsigned long line, char *why, size_t why_len,
                         const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static s3s_result s_fail(const struct s_files *f, unsigned long line, char *why, size_t why_len,
                         const char *fmt, ...)
{
    if (why && why_len) {
        int k = snprintf(why, why_len, "%s:%lu: ", f->origin ? f->origin : "config", line);
        if (k >= 0 && (size_t)k < why_len) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(why + k, why_len - (size_t)k, fmt, ap);
            va_end(ap);
        }
    }
    return s3s_err(S3S_ERR_CONFIG);
}

/* ------------------------------------------------------------ tickets */

/* The ticket keys, in secret memory (s->keys): its allocations are aligned
 * for any type, as malloc's are. */
static struct s_ticket_key *s_keys(struct s3s_tls_server *s)
{
    return (struct s_ticket_key *)(void *)s->keys.ptr;
}

static s3s_result s_ticket_rotate(struct s3s_tls_server *s, uint64_t now)
{
    struct s_ticket_key *keys = s_keys(s);
    struct s_ticket_key fresh;
    fresh.born_ns = now;
    if (RAND_bytes(fresh.name, sizeof(fresh.name)) != 1 ||
        RAND_bytes(fresh.aes, sizeof(fresh.aes)) != 1 ||
        RAND_bytes(fresh.hmac, sizeof(fresh.hmac)) != 1) {
        OPENSSL_cleanse(&fresh, sizeof(fresh));
        S3S_BAIL(S3S_ERR_INTERNAL);
    }
    memmove(&keys[1], &keys[0], (S_TICKET_KEYS - 1) * sizeof(*keys));
    keys[0] = fresh;
    OPENSSL_cleanse(&fresh, sizeof(fresh));
    if (s->n_keys < S_TICKET_KEYS) {
        s->n_keys++;
    }
    return s3s_ok();
}

static bool s_ticket_mac_init(EVP_MAC_CTX *hctx, const struct s_ticket_key *k)
{
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, (void *)k->hmac, sizeof(k->hmac)),
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
        OSSL_PARAM_construct_end(),
    };
    return EVP_MAC_CTX_set_params(hctx, params) == 1;
}

/* OpenSSL's ticket key callback: enc=1 seals a new ticket under the newest
 * key (rotating first when its period is over); enc=0 opens one: 1 with the
 * newest key, 2 with the older one (the client gets a new ticket), 0 for an
 * unknown or expired key (a full handshake), -1 on error. */
static int s_ticket_cb(SSL *ssl, unsigned char key_name[16], unsigned char *iv,
                       EVP_CIPHER_CTX *ectx, EVP_MAC_CTX *hctx, int enc)
{
    struct s3s_tls_server *s = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
    const uint64_t period = (uint64_t)S_TICKET_PERIOD_S * 1000000000u;
    uint64_t now = uv_hrtime();
    int ret = -1;
    uv_mutex_lock(&s->lock);
    struct s_ticket_key *keys = s_keys(s);
    if (enc) {
        if ((s->n_keys > 0 && now - keys[0].born_ns < period) ||
            s3s_is_ok(s_ticket_rotate(s, now))) {
            memcpy(key_name, keys[0].name, 16);
            if (RAND_bytes(iv, 16) == 1 &&
                EVP_EncryptInit_ex2(ectx, EVP_aes_256_cbc(), keys[0].aes, iv, NULL) == 1 &&
                s_ticket_mac_init(hctx, &keys[0])) {
                ret = 1;
            }
        }
    } else {
        ret = 0;
        for (int i = 0; i < s->n_keys; i++) {
            if (memcmp(key_name, keys[i].name, 16) != 0) {
                continue;
            }
            if (now - keys[i].born_ns >= period * S_TICKET_KEYS) {
                break; /* expired: a full handshake */
            }
            bool ok = EVP_DecryptInit_ex2(ectx, EVP_aes_256_cbc(), keys[i].aes, iv, NULL) == 1 &&
                      s_ticket_mac_init(hctx, &keys[i]);
            ret = !ok ? -1 : (i == 0 && now - keys[0].born_ns < period) ? 1 : 2;
            break;
        }
    }
    uv_mutex_unlock(&s->lock);
    return ret;
}

/* ---------------------------------------------------------- the context */

static int s_alpn_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                     const unsigned char *in, unsigned int inlen, void *arg)
{
    (void)ssl;
    (void)arg;
    static const unsigned char ours[] = "\x08http/1.1";
    unsigned char *sel = NULL;
    if (SSL_select_next_proto(&sel, outlen, ours, sizeof(ours) - 1, in, inlen) !=
        OPENSSL_NPN_NEGOTIATED) {
        /* RFC 7301: no protocol in common is a fatal no_application_protocol. */
        return SSL_TLSEXT_ERR_ALERT_FATAL;
    }
    *out = sel;
    return SSL_TLSEXT_ERR_OK;
}

static int s_no_password(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return -1; /* an encrypted key is refused, never prompted for */
}

/* The private key, read with read(2) into secure memory (a secret file:
 * regular, not readable by group or others, as config.c checks it). */
static s3s_result s_load_key(const struct s_files *cfg, EVP_PKEY **out, char *why,
                             size_t why_len)
{
    const char *path = cfg->key_file;
    unsigned long line = cfg->key_line;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        return s_fail(cfg, line, why, why_len, "tls.key_file: cannot read %s: %s", path,
                      strerror(errno));
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return s_fail(cfg, line, why, why_len, "tls.key_file: %s is not a regular file", path);
    }
    if (st.st_mode & (S_IRWXG | S_IRWXO)) {
        close(fd);
        return s_fail(cfg, line, why, why_len,
                      "tls.key_file: %s is readable by group or others (chmod 600 it)", path);
    }
    struct s3s_secret buf = {0};
    s3s_result r = s3s_secret_new(S_KEY_MAX, &buf);
    if (s3s_failed(r)) {
        close(fd);
        return r;
    }
    size_t len = 0;
    int err = 0;
    while (len < buf.len) {
        ssize_t k = read(fd, buf.ptr + len, buf.len - len);
        if (k < 0 && errno == EINTR) {
            continue;
        }
        if (k < 0) {
            err = errno;
            break;
        }
        if (k == 0) {
            break;
        }
        len += (size_t)k;
    }
    close(fd);
    if (err) {
        r = s_fail(cfg, line, why, why_len, "tls.key_file: cannot read %s: %s", path,
                   strerror(err));
    } else if (len == buf.len) {
        r = s_fail(cfg, line, why, why_len, "tls.key_file: %s is larger than %d bytes", path,
                   S_KEY_MAX);
    } else {
        ERR_clear_error();
        BIO *bio = BIO_new_mem_buf(buf.ptr, (int)len);
        EVP_PKEY *pkey = bio ? PEM_read_bio_PrivateKey(bio, NULL, s_no_password, NULL) : NULL;
        BIO_free(bio);
        if (!pkey) {
            char reason[128];
            s_ssl_reason(reason, sizeof(reason));
            r = s_fail(cfg, line, why, why_len,
                       "tls.key_file: %s holds no unencrypted PEM private key (%s)", path, reason);
        } else {
            *out = pkey;
        }
    }
    s3s_secret_destroy(&buf);
    return r;
}

static void s_files_clean_up(struct s_files *f)
{
    s3s_free(&f->cert_file);
    s3s_free(&f->key_file);
    s3s_free(&f->ca_file);
    s3s_free(&f->origin);
}

static s3s_result s_files_of(const struct s3s_config *cfg, struct s_files *f)
{
    *f = (struct s_files){0};
    f->cert_file = s3s_strdup(cfg->tls.cert_file);
    f->key_file = s3s_strdup(cfg->tls.key_file);
    f->ca_file = cfg->tls.client_ca_file ? s3s_strdup(cfg->tls.client_ca_file) : NULL;
    f->origin = s3s_strdup(cfg->tls.origin ? cfg->tls.origin : "config");
    f->min_version = cfg->tls.min_version ? cfg->tls.min_version : TLS1_2_VERSION;
    f->cert_line = cfg->tls.cert_line;
    f->key_line = cfg->tls.key_line;
    f->ca_line = cfg->tls.ca_line;
    if (!f->cert_file || !f->key_file || !f->origin || (cfg->tls.client_ca_file && !f->ca_file)) {
        s_files_clean_up(f);
        S3S_BAIL(S3S_ERR_NOMEM);
    }
    return s3s_ok();
}

static s3s_result s_ctx_build(struct s3s_tls_server *s, const struct s_files *cfg, SSL_CTX **out,
                              char *why, size_t why_len)
{
    char reason[128];
    ERR_clear_error();
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    S3S_ENSURE(ctx != NULL, S3S_ERR_NOMEM);
    s3s_result r = s3s_ok();
    EVP_PKEY *pkey = NULL;
    if (SSL_CTX_use_certificate_chain_file(ctx, cfg->cert_file) != 1) {
        s_ssl_reason(reason, sizeof(reason));
        r = s_fail(cfg, cfg->cert_line, why, why_len,
                   "tls.cert_file: cannot load a PEM certificate chain from %s (%s)",
                   cfg->cert_file, reason);
        goto out;
    }
    r = s_load_key(cfg, &pkey, why, why_len);
    if (s3s_failed(r)) {
        goto out;
    }
    if (SSL_CTX_use_PrivateKey(ctx, pkey) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
        s_ssl_reason(reason, sizeof(reason));
        r = s_fail(cfg, cfg->key_line, why, why_len,
                   "tls.key_file: %s does not match the certificate in %s (%s)",
                   cfg->key_file, cfg->cert_file, reason);
        goto out;
    }
    if (cfg->ca_file) {
        STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(cfg->ca_file);
        if (!names || sk_X509_NAME_num(names) == 0 ||
            SSL_CTX_load_verify_file(ctx, cfg->ca_file) != 1) {
            sk_X509_NAME_pop_free(names, X509_NAME_free);
            s_ssl_reason(reason, sizeof(reason));
            r = s_fail(cfg, cfg->ca_line, why, why_len,
                       "tls.client_ca_file: %s holds no PEM CA certificate (%s)",
                       cfg->ca_file, reason);
            goto out;
        }
        SSL_CTX_set_client_CA_list(ctx, names);
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    }
    if (SSL_CTX_set_min_proto_version(ctx, cfg->min_version) != 1) {
        r = s3s_err(S3S_ERR_INTERNAL);
        goto out;
    }
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    /* Idle connections give their record buffers back. */
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    /* Resumption by tickets only: stateless, so it works across workers
     * and reloads; no session cache to share or to grow. */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    static const unsigned char sid_ctx[] = "s3seal";
    SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof(sid_ctx) - 1);
    SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, s_ticket_cb);
    SSL_CTX_set_alpn_select_cb(ctx, s_alpn_cb, NULL);
    SSL_CTX_set_app_data(ctx, s);
    X509 *leaf = SSL_CTX_get0_certificate(ctx);
    if (leaf && X509_cmp_current_time(X509_get0_notAfter(leaf)) < 0) {
        S3S_LOGW("tls", "the certificate in %s has expired", cfg->cert_file);
    }
out:
    EVP_PKEY_free(pkey);
    ERR_clear_error();
    if (s3s_failed(r)) {
        SSL_CTX_free(ctx);
        return r;
    }
    *out = ctx;
    return s3s_ok();
}

s3s_result s3s_tls_server_new(const struct s3s_config *cfg, struct s3s_tls_server **out,
                              char *why, size_t why_len)
{
    S3S_ENSURE_REF(cfg);
    S3S_ENSURE_REF(out);
    S3S_ENSURE(cfg->tls.cert_file && cfg->tls.key_file, S3S_ERR_INVALID_ARG);
    *out = NULL;
    struct s3s_tls_server *s = s3s_calloc(1, sizeof(*s));
    S3S_ENSURE(s != NULL, S3S_ERR_NOMEM);
    if (uv_mutex_init(&s->lock) != 0) {
        s3s_free(&s);
        S3S_BAIL(S3S_ERR_INTERNAL);
    }
    s3s_result r = s3s_secret_new(S_TICKET_KEYS * sizeof(struct s_ticket_key), &s->keys);
    if (s3s_is_ok(r)) {
        r = s_files_of(cfg, &s->files);
    }
    if (s3s_is_ok(r)) {
        r = s_ctx_build(s, &s->files, &s->ctx, why, why_len);
    }
    if (s3s_failed(r)) {
        s3s_tls_server_free(&s);
        return r;
    }
    *out = s;
    return s3s_ok();
}

s3s_result s3s_tls_server_prepare(struct s3s_tls_server *s, const struct s3s_config *next,
                                  char *why, size_t why_len)
{
    S3S_ENSURE_REF(s);
    s3s_tls_server_abort(s);
    struct s_files f;
    if (next) {
        S3S_ENSURE(next->tls.cert_file && next->tls.key_file, S3S_ERR_INVALID_ARG);
        S3S_GUARD(s_files_of(next, &f));
    } else {
        /* The same files again (a certificate renewed in place). */
        struct s3s_config tmp = {0};
        tmp.tls.cert_file = s->files.cert_file;
        tmp.tls.key_file = s->files.key_file;
        tmp.tls.client_ca_file = s->files.ca_file;
        tmp.tls.origin = s->files.origin;
        tmp.tls.min_version = s->files.min_version;
        tmp.tls.cert_line = s->files.cert_line;
        tmp.tls.key_line = s->files.key_line;
        tmp.tls.ca_line = s->files.ca_line;
        S3S_GUARD(s_files_of(&tmp, &f));
    }
    s3s_result r = s_ctx_build(s, &f, &s->next_ctx, why, why_len);
    if (s3s_failed(r)) {
        s_files_clean_up(&f);
        return r;
    }
    s->next_files = f;
    return s3s_ok();
}

bool s3s_tls_server_commit(struct s3s_tls_server *s)
{
    if (!s || !s->next_ctx) {
        return false;
    }
    uv_mutex_lock(&s->lock);
    SSL_CTX *old = s->ctx;
    struct s_files old_files = s->files;
    s->ctx = s->next_ctx;
    s->files = s->next_files;
    s->next_ctx = NULL;
    s->next_files = (struct s_files){0};
    uv_mutex_unlock(&s->lock);
    /* Connections made with the old context hold a reference of their own. */
    SSL_CTX_free(old);
    s_files_clean_up(&old_files);
    return true;
}

void s3s_tls_server_abort(struct s3s_tls_server *s)
{
    if (!s) {
        return;
    }
    SSL_CTX_free(s->next_ctx);
    s->next_ctx = NULL;
    s_files_clean_up(&s->next_files);
}

s3s_result s3s_tls_server_reload(struct s3s_tls_server *s, char *why, size_t why_len)
{
    S3S_GUARD(s3s_tls_server_prepare(s, NULL, why, why_len));
    (void)s3s_tls_server_commit(s);
    return s3s_ok();
}

void s3s_tls_server_free(struct s3s_tls_server **sp)
{
    struct s3s_tls_server *s = sp ? *sp : NULL;
    if (!s) {
        return;
    }
    s3s_tls_server_abort(s);
    SSL_CTX_free(s->ctx);
    s_files_clean_up(&s->files);
    s3s_secret_destroy(&s->keys);
    uv_mutex_destroy(&s->lock);
    s3s_free(sp);
}

void s3s_tls_server_stats(const struct s3s_tls_server *s, struct s3s_tls_stats *out)
{
    out->handshakes = atomic_load(&s->handshakes);
    out->resumed = atomic_load(&s->resumed);
    out->failures = atomic_load(&s->failures);
}

void s3s_tls_server_describe(struct s3s_tls_server *s, char *out, size_t cap)
{
    snprintf(out, cap, "-");
    uv_mutex_lock(&s->lock);
    X509 *leaf = SSL_CTX_get0_certificate(s->ctx);
    if (leaf) {
        BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(leaf), NULL);
        char *hex = bn ? BN_bn2hex(bn) : NULL;
        BIO *b = BIO_new(BIO_s_mem());
        char *when = NULL;
        long n = 0;
        if (b && ASN1_TIME_print(b, X509_get0_notAfter(leaf)) == 1) {
            n = BIO_get_mem_data(b, &when);
        }
        snprintf(out, cap, "serial=%s not_after=\"%.*s\"", hex ? hex : "-", (int)(when ? n : 1),
                 when ? when : "-");
        BIO_free(b);
        OPENSSL_free(hex);
        BN_free(bn);
    }
    uv_mutex_unlock(&s->lock);
    ERR_clear_error();
}

/* ---------------------------------------------------------- connections */

/* The buffers' hard limits: more input than a read, or more output than a
 * write slice and its records, waits nowhere else. */
#define S_IN_MAX (8u * 1024 * 1024)
#define S_OUT_MAX (64u * 1024 * 1024)

static int s_io_read(BIO *b, char *dst, int len)
{
    struct s3s_tls_conn *t = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (t->in_len == 0) {
        BIO_set_retry_read(b); /* "try again": more comes from the socket */
        return -1;
    }
    size_t k = (size_t)len < t->in_len ? (size_t)len : t->in_len;
    memcpy(dst, t->in_ptr, k);
    t->in_ptr += k;
    t->in_len -= k;
    if (t->in_len == 0 && !t->in_ext) {
        s3s_buf_reset(&t->in_own);
    }
    return (int)k;
}

static int s_io_write(BIO *b, const char *src, int len)
{
    struct s3s_tls_conn *t = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (len > 0 && s3s_failed(s3s_buf_append(&t->out, src, (size_t)len))) {
        return -1;
    }
    return len;
}

static long s_io_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)num;
    (void)ptr;
    struct s3s_tls_conn *t = BIO_get_data(b);
    if (!t) {
        return 0;
    }
    switch (cmd) {
    case BIO_CTRL_FLUSH:
        return 1; /* what is written is in `out` */
    case BIO_CTRL_PENDING:
        return b == t->rbio ? (long)t->in_len : (long)(t->out.len - t->out_off);
    default:
        return 0;
    }
}

static int s_io_create(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

static BIO_METHOD *s_io_method;
static uv_once_t s_io_once = UV_ONCE_INIT;

static void s_io_method_init(void)
{
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "s3seal tls io");
    if (m && BIO_meth_set_read(m, s_io_read) == 1 && BIO_meth_set_write(m, s_io_write) == 1 &&
        BIO_meth_set_ctrl(m, s_io_ctrl) == 1 && BIO_meth_set_create(m, s_io_create) == 1) {
        s_io_method = m; /* for the process's life */
    } else {
        BIO_meth_free(m);
    }
}

s3s_result s3s_tls_conn_new(struct s3s_tls_server *s, struct s3s_tls_conn **out)
{
    S3S_ENSURE_REF(s);
    S3S_ENSURE_REF(out);
    *out = NULL;
    uv_once(&s_io_once, s_io_method_init);
    S3S_ENSURE(s_io_method != NULL, S3S_ERR_NOMEM);
    struct s3s_tls_conn *t = s3s_calloc(1, sizeof(*t));
    S3S_ENSURE(t != NULL, S3S_ERR_NOMEM);
    t->server = s;
    s3s_result_ignore(s3s_buf_init(&t->in_own, 0, S_IN_MAX));
    s3s_result_ignore(s3s_buf_init(&t->out, 0, S_OUT_MAX));
    uv_mutex_lock(&s->lock);
    t->ssl = SSL_new(s->ctx); /* holds a reference to the context */
    uv_mutex_unlock(&s->lock);
    BIO *rbio = BIO_new(s_io_method);
    BIO *wbio = BIO_new(s_io_method);
    if (!t->ssl || !rbio || !wbio) {
        BIO_free(rbio);
        BIO_free(wbio);
        s3s_tls_conn_free(&t);
        ERR_clear_error();
        S3S_BAIL(S3S_ERR_NOMEM);
    }
    BIO_set_data(rbio, t);
    BIO_set_data(wbio, t);
    t->rbio = rbio;
    t->wbio = wbio;
    SSL_set_bio(t->ssl, rbio, wbio);
    SSL_set_accept_state(t->ssl);
    *out = t;
    return s3s_ok();
}

void s3s_tls_conn_free(struct s3s_tls_conn **tp)
{
    struct s3s_tls_conn *t = tp ? *tp : NULL;
    if (!t) {
        return;
    }
    SSL_free(t->ssl);
    s3s_buf_clean_up(&t->in_own);
    s3s_buf_clean_up(&t->out);
    s3s_free(tp);
}

/* A fatal error of an SSL call that returned rc: recorded and counted. */
static enum s3s_tls_status s_failed(struct s3s_tls_conn *t, int rc)
{
    int e = SSL_get_error(t->ssl, rc);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        return S3S_TLS_WANT;
    }
    if (e == SSL_ERROR_ZERO_RETURN) {
        t->closed = true;
        return S3S_TLS_CLOSED;
    }
    if (e == SSL_ERROR_SSL) {
        s_ssl_reason(t->why, sizeof(t->why));
    } else {
        snprintf(t->why, sizeof(t->why), "TLS error %d", e);
        ERR_clear_error();
    }
    if (!t->failed && !t->ready) {
        atomic_fetch_add(&t->server->failures, 1);
    }
    t->failed = true;
    return S3S_TLS_FAILED;
}

s3s_result s3s_tls_conn_feed(struct s3s_tls_conn *t, const void *p, size_t n)
{
    S3S_ENSURE(!t->failed, S3S_ERR_IO);
    if (n == 0) {
        return s3s_ok();
    }
    if (!t->seen_first) {
        t->seen_first = true;
        /* A TLS connection opens with a handshake record (content type 22);
         * anything else (a request line) will never become one. */
        if (((const uint8_t *)p)[0] != 0x16) {
            snprintf(t->why, sizeof(t->why), "not a TLS handshake (plain HTTP to the TLS port?)");
            t->failed = true;
            atomic_fetch_add(&t->server->failures, 1);
            S3S_BAIL(S3S_ERR_BAD_REQUEST);
        }
    }
    if (t->in_len == 0) {
        t->in_ptr = p; /* read in place until s3s_tls_conn_feed_end */
        t->in_len = n;
        t->in_ext = true;
        return s3s_ok();
    }
    /* Input is waiting already (kept by feed_end): the new bytes go after it. */
    S3S_ENSURE(!t->in_ext, S3S_ERR_INTERNAL);
    size_t off = (size_t)(t->in_ptr - t->in_own.ptr);
    if (off) {
        memmove(t->in_own.ptr, t->in_ptr, t->in_len);
        t->in_own.len = t->in_len;
    }
    S3S_GUARD(s3s_buf_append(&t->in_own, p, n));
    t->in_ptr = t->in_own.ptr;
    t->in_len = t->in_own.len;
    return s3s_ok();
}

s3s_result s3s_tls_conn_feed_end(struct s3s_tls_conn *t)
{
    if (!t->in_ext) {
        return s3s_ok();
    }
    t->in_ext = false;
    s3s_buf_reset(&t->in_own);
    if (t->in_len == 0) {
        t->in_ptr = NULL;
        return s3s_ok();
    }
    s3s_result r = s3s_buf_append(&t->in_own, t->in_ptr, t->in_len);
    t->in_ptr = t->in_own.ptr;
    if (s3s_failed(r)) {
        t->in_len = 0;
        t->failed = true;
        snprintf(t->why, sizeof(t->why), "out of memory");
    }
    return r;
}

enum s3s_tls_status s3s_tls_conn_handshake(struct s3s_tls_conn *t)
{
    if (t->failed) {
        return S3S_TLS_FAILED;
    }
    if (t->ready) {
        return S3S_TLS_OK;
    }
    ERR_clear_error();
    int rc = SSL_do_handshake(t->ssl);
    if (rc != 1) {
        enum s3s_tls_status st = s_failed(t, rc);
        if (st == S3S_TLS_CLOSED) {
            /* close_notify in the middle of a handshake is its failure */
            t->failed = true;
            snprintf(t->why, sizeof(t->why), "closed during the handshake");
            atomic_fetch_add(&t->server->failures, 1);
            return S3S_TLS_FAILED;
        }
        return st;
    }
    t->ready = true;
    atomic_fetch_add(&t->server->handshakes, 1);
    if (SSL_session_reused(t->ssl)) {
        atomic_fetch_add(&t->server->resumed, 1);
    }
    return S3S_TLS_OK;
}

bool s3s_tls_conn_ready(const struct s3s_tls_conn *t) { return t->ready && !t->failed; }

enum s3s_tls_status s3s_tls_conn_read(struct s3s_tls_conn *t, void *out, size_t cap, size_t *n)
{
    *n = 0;
    if (t->failed) {
        return S3S_TLS_FAILED;
    }
    if (t->closed) {
        return S3S_TLS_CLOSED;
    }
    if (!t->ready) {
        enum s3s_tls_status st = s3s_tls_conn_handshake(t);
        if (st != S3S_TLS_OK) {
            return st;
        }
    }
    enum s3s_tls_status st = S3S_TLS_OK;
    while (*n < cap) {
        size_t got = 0;
        ERR_clear_error();
        if (SSL_read_ex(t->ssl, (uint8_t *)out + *n, cap - *n, &got) == 1) {
            *n += got;
            continue;
        }
        st = s_failed(t, 0);
        break;
    }
    /* Plaintext first; CLOSED or FAILED shows at the next call. */
    return *n > 0 ? S3S_TLS_OK : st;
}

bool s3s_tls_conn_pending(const struct s3s_tls_conn *t)
{
    return !t->failed && !t->closed && (SSL_pending(t->ssl) > 0 || t->in_len > 0);
}

static s3s_result s_write_all(struct s3s_tls_conn *t, const uint8_t *p, size_t n)
{
    while (n > 0) {
        size_t done = 0;
        ERR_clear_error();
        if (SSL_write_ex(t->ssl, p, n, &done) != 1) {
            (void)s_failed(t, 0);
            t->failed = true; /* the output buffer takes everything: no retry */
            S3S_BAIL(S3S_ERR_IO);
        }
        p += done;
        n -= done;
    }
    return s3s_ok();
}

s3s_result s3s_tls_conn_write(struct s3s_tls_conn *t, const struct s3s_cur *pieces, size_t n)
{
    S3S_ENSURE(t->ready && !t->failed, S3S_ERR_IO);
    /* Small pieces (a response head, chunk framing) are gathered into full
     * records; whole records of a large piece are encrypted in place. */
    static _Thread_local uint8_t stage[S_RECORD];
    size_t staged = 0;
    for (size_t i = 0; i < n; i++) {
        const uint8_t *p = pieces[i].ptr;
        size_t len = pieces[i].len;
        while (len > 0) {
            if (staged == 0 && len >= S_RECORD) {
                size_t k = len - len % S_RECORD;
                S3S_GUARD(s_write_all(t, p, k));
                p += k;
                len -= k;
                continue;
            }
            size_t k = len < S_RECORD - staged ? len : S_RECORD - staged;
            memcpy(stage + staged, p, k);
            staged += k;
            p += k;
            len -= k;
            if (staged == S_RECORD) {
                S3S_GUARD(s_write_all(t, stage, staged));
                staged = 0;
            }
        }
    }
    if (staged) {
        S3S_GUARD(s_write_all(t, stage, staged));
    }
    return s3s_ok();
}

size_t s3s_tls_conn_out_len(const struct s3s_tls_conn *t) { return t->out.len - t->out_off; }

struct s3s_cur s3s_tls_conn_out(const struct s3s_tls_conn *t)
{
    return (struct s3s_cur){t->out.ptr + t->out_off, t->out.len - t->out_off};
}

void s3s_tls_conn_out_take(struct s3s_tls_conn *t, size_t n)
{
    size_t left = t->out.len - t->out_off;
    t->out_off += n < left ? n : left;
    if (t->out_off == t->out.len) {
        s3s_buf_reset(&t->out);
        t->out_off = 0;
    }
}

size_t s3s_tls_conn_out_read(struct s3s_tls_conn *t, void *dst, size_t cap)
{
    struct s3s_cur o = s3s_tls_conn_out(t);
    size_t k = o.len < cap ? o.len : cap;
    if (k) {
        memcpy(dst, o.ptr, k);
        s3s_tls_conn_out_take(t, k);
    }
    return k;
}

void s3s_tls_conn_trim(struct s3s_tls_conn *t)
{
    /* Buffers keep the size of the largest transfer: given back when empty. */
    if (t->in_len == 0 && t->in_own.cap > S_TRIM_ABOVE) {
        s3s_buf_clean_up(&t->in_own);
        s3s_result_ignore(s3s_buf_init(&t->in_own, 0, S_IN_MAX));
        t->in_ptr = NULL;
    }
    if (t->out.len == 0 && t->out.cap > S_TRIM_ABOVE) {
        s3s_buf_clean_up(&t->out);
        s3s_result_ignore(s3s_buf_init(&t->out, 0, S_OUT_MAX));
    }
}

void s3s_tls_conn_shutdown(struct s3s_tls_conn *t)
{
    if (!t->ready || t->failed) {
        return;
    }
    ERR_clear_error();
    (void)SSL_shutdown(t->ssl); /* 0: close_notify queued; the peer's is not awaited */
    ERR_clear_error();
}

const char *s3s_tls_conn_why(const struct s3s_tls_conn *t) { return t->why; }

void s3s_tls_conn_describe(const struct s3s_tls_conn *t, char *out, size_t cap)
{
    const unsigned char *alpn = NULL;
    unsigned int alpn_len = 0;
    SSL_get0_alpn_selected(t->ssl, &alpn, &alpn_len);
    snprintf(out, cap, "%s %s alpn=%.*s resumed=%d", SSL_get_version(t->ssl),
             SSL_get_cipher_name(t->ssl), alpn ? (int)alpn_len : 1,
             alpn ? (const char *)alpn : "-", SSL_session_reused(t->ssl) ? 1 : 0);
}
