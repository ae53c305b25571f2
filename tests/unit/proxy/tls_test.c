/*
 * tls_test.c - the TLS transport of client connections (proxy/tls.c)
 * without a loop or a socket: an OpenSSL client talks to s3seal's
 * server-side state through memory, bytes carried by hand. Certificates
 * (a CA, the server's, a client's) are made here and written to a
 * temporary directory.
 */
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "proxy/tls.h"
#include "testlib.h"

static char s_dir[] = "/tmp/s3seal-tls-test-XXXXXX";

static char *s_path(const char *name)
{
    static char buf[8][256];
    static int i;
    char *p = buf[i++ % 8];
    snprintf(p, 256, "%s/%s", s_dir, name);
    return p;
}

/* ------------------------------------------------------- certificates */

static EVP_PKEY *s_key(void) { return EVP_EC_gen("P-256"); }

static void s_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
    X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    T_CHECK(e != NULL);
    X509_add_ext(x, e, -1);
    X509_EXTENSION_free(e);
}

/* A certificate for `key` named cn, signed by issuer (NULL: self-signed). */
static X509 *s_cert(EVP_PKEY *key, const char *cn, long serial, X509 *issuer, EVP_PKEY *issuer_key,
                    bool ca)
{
    X509 *x = X509_new();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), serial);
    X509_gmtime_adj(X509_getm_notBefore(x), -60);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name);
    X509_set_pubkey(x, key);
    s_ext(x, issuer ? issuer : x, NID_basic_constraints, ca ? "critical,CA:TRUE" : "CA:FALSE");
    if (!ca) {
        s_ext(x, issuer ? issuer : x, NID_subject_alt_name, "DNS:localhost,IP:127.0.0.1");
    }
    T_CHECK(X509_sign(x, issuer_key ? issuer_key : key, EVP_sha256()) > 0);
    return x;
}

static void s_write_cert(const char *path, X509 *x)
{
    FILE *f = fopen(path, "w");
    T_CHECK(f != NULL);
    PEM_write_X509(f, x);
    fclose(f);
}

static void s_write_key(const char *path, EVP_PKEY *k, unsigned mode)
{
    FILE *f = fopen(path, "w");
    T_CHECK(f != NULL);
    PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL);
    fclose(f);
    chmod(path, mode);
}

static EVP_PKEY *g_ca_key, *g_client_key;
static X509 *g_ca, *g_client;

static void s_make_files(void)
{
    T_CHECK(mkdtemp(s_dir) != NULL);
    g_ca_key = s_key();
    g_ca = s_cert(g_ca_key, "test CA", 1, NULL, NULL, true);
    s_write_cert(s_path("ca.pem"), g_ca);
    EVP_PKEY *k = s_key();
    X509 *x = s_cert(k, "localhost", 100, g_ca, g_ca_key, false);
    s_write_cert(s_path("server.pem"), x);
    s_write_key(s_path("server.key"), k, 0600);
    s_write_key(s_path("server-open.key"), k, 0644);
    X509_free(x);
    EVP_PKEY_free(k);
    /* a second server certificate, for the reload */
    k = s_key();
    x = s_cert(k, "localhost", 200, g_ca, g_ca_key, false);
    s_write_cert(s_path("server2.pem"), x);
    s_write_key(s_path("server2.key"), k, 0600);
    X509_free(x);
    EVP_PKEY_free(k);
    g_client_key = s_key();
    g_client = s_cert(g_client_key, "client", 300, g_ca, g_ca_key, false);
}

static void s_clean_files(void)
{
    const char *names[] = {"ca.pem", "server.pem", "server.key", "server-open.key", "server2.pem",
                           "server2.key", "cur.pem", "cur.key"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        unlink(s_path(names[i]));
    }
    rmdir(s_dir);
    EVP_PKEY_free(g_ca_key);
    EVP_PKEY_free(g_client_key);
    X509_free(g_ca);
    X509_free(g_client);
}

static void s_cfg(struct s3s_config *c, const char *cert, const char *key, const char *ca)
{
    memset(c, 0, sizeof(*c));
    c->tls.cert_file = (char *)cert;
    c->tls.key_file = (char *)key;
    c->tls.client_ca_file = (char *)ca;
    c->tls.min_version = 0x0303;
    c->tls.origin = (char *)"t.yaml";
    c->tls.cert_line = 3;
    c->tls.key_line = 4;
    c->tls.ca_line = 5;
}

/* ------------------------------------------------------------- client */

struct s_client {
    SSL_CTX *ctx;
    SSL *ssl;
    BIO *rbio, *wbio;
};

static void s_client_new(struct s_client *cl, int max_version, bool with_cert,
                         SSL_SESSION *resume)
{
    cl->ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_verify(cl->ctx, SSL_VERIFY_PEER, NULL);
    X509_STORE_add_cert(SSL_CTX_get_cert_store(cl->ctx), g_ca);
    if (max_version) {
        SSL_CTX_set_max_proto_version(cl->ctx, max_version);
    }
    if (with_cert) {
        T_CHECK(SSL_CTX_use_certificate(cl->ctx, g_client) == 1);
        T_CHECK(SSL_CTX_use_PrivateKey(cl->ctx, g_client_key) == 1);
    }
    static const unsigned char alpn[] = "\x02h2\x08http/1.1";
    SSL_CTX_set_alpn_protos(cl->ctx, alpn, sizeof(alpn) - 1);
    cl->ssl = SSL_new(cl->ctx);
    SSL_set_tlsext_host_name(cl->ssl, "localhost");
    SSL_set1_host(cl->ssl, "localhost");
    cl->rbio = BIO_new(BIO_s_mem());
    cl->wbio = BIO_new(BIO_s_mem());
    BIO_set_mem_eof_return(cl->rbio, -1);
    BIO_set_mem_eof_return(cl->wbio, -1);
    SSL_set_bio(cl->ssl, cl->rbio, cl->wbio);
    if (resume) {
        SSL_set_session(cl->ssl, resume);
    }
    SSL_set_connect_state(cl->ssl);
}

static void s_client_free(struct s_client *cl)
{
    SSL_free(cl->ssl);
    SSL_CTX_free(cl->ctx);
}

/* Carries the bytes each side has for the other; true if any moved. */
static bool s_carry(struct s_client *cl, struct s3s_tls_conn *t, bool *feed_failed)
{
    bool moved = false;
    uint8_t buf[65536];
    int k;
    while ((k = BIO_read(cl->wbio, buf, sizeof(buf))) > 0) {
        if (s3s_failed(s3s_tls_conn_feed(t, buf, (size_t)k))) {
            *feed_failed = true;
        }
        T_OK(s3s_tls_conn_feed_end(t)); /* buf is reused: the rest is kept */
        moved = true;
    }
    size_t n;
    while ((n = s3s_tls_conn_out_read(t, buf, sizeof(buf))) > 0) {
        BIO_write(cl->rbio, buf, (int)n);
        moved = true;
    }
    return moved;
}

/* Runs both handshakes to their end: the server's status. */
static enum s3s_tls_status s_handshake(struct s_client *cl, struct s3s_tls_conn *t)
{
    enum s3s_tls_status st = S3S_TLS_WANT;
    bool feed_failed = false;
    for (int i = 0; i < 20; i++) {
        ERR_clear_error();
        (void)SSL_do_handshake(cl->ssl);
        s_carry(cl, t, &feed_failed);
        st = s3s_tls_conn_handshake(t);
        bool moved = s_carry(cl, t, &feed_failed);
        if (st == S3S_TLS_FAILED || (st == S3S_TLS_OK && SSL_is_init_finished(cl->ssl) && !moved)) {
            break;
        }
    }
    ERR_clear_error();
    return st;
}

/* What the client reads (up to cap bytes; processes tickets and alerts). */
static size_t s_client_read(struct s_client *cl, uint8_t *out, size_t cap)
{
    size_t got = 0, n = 0;
    while (got < cap && SSL_read_ex(cl->ssl, out + got, cap - got, &n) == 1) {
        got += n;
    }
    ERR_clear_error();
    return got;
}

/* ---------------------------------------------------------------- tests */

static void test_config_errors(void)
{
    struct s3s_config c;
    struct s3s_tls_server *s = NULL;
    char why[512];

    /* a key that is not the certificate's */
    s_cfg(&c, s_path("server.pem"), s_path("server2.key"), NULL);
    T_ERR(s3s_tls_server_new(&c, &s, why, sizeof(why)), S3S_ERR_CONFIG);
    T_CHECK(s == NULL);
    T_CHECK(strncmp(why, "t.yaml:4: tls.key_file: ", 24) == 0);
    T_CHECK(strstr(why, "does not match the certificate") != NULL);

    /* a key others may read */
    s_cfg(&c, s_path("server.pem"), s_path("server-open.key"), NULL);
    T_ERR(s3s_tls_server_new(&c, &s, why, sizeof(why)), S3S_ERR_CONFIG);
    T_CHECK(strstr(why, "readable by group or others") != NULL);

    /* a certificate file that is a key, and one that is missing */
    s_cfg(&c, s_path("server.key"), s_path("server.key"), NULL);
    T_ERR(s3s_tls_server_new(&c, &s, why, sizeof(why)), S3S_ERR_CONFIG);
    T_CHECK(strncmp(why, "t.yaml:3: tls.cert_file: ", 25) == 0);
    s_cfg(&c, s_path("missing.pem"), s_path("server.key"), NULL);
    T_ERR(s3s_tls_server_new(&c, &s, why, sizeof(why)), S3S_ERR_CONFIG);
    T_CHECK(strncmp(why, "t.yaml:3: tls.cert_file: ", 25) == 0);

    /* a CA file without a certificate */
    s_cfg(&c, s_path("server.pem"), s_path("server.key"), s_path("server.key"));
    T_ERR(s3s_tls_server_new(&c, &s, why, sizeof(why)), S3S_ERR_CONFIG);
    T_CHECK(strncmp(why, "t.yaml:5: tls.client_ca_file: ", 30) == 0);
}

static void test_exchange(void)
{
    struct s3s_config c;
    struct s3s_tls_server *s = NULL;
    char why[512] = "";
    s_cfg(&c, s_path("server.pem"), s_path("server.key"), NULL);
    T_OK(s3s_tls_server_new(&c, &s, why, sizeof(why)));
    T_STREQ(why, "");
    struct s3s_tls_conn *t = NULL;
    T_OK(s3s_tls_conn_new(s, &t));
    struct s_client cl;
    s_client_new(&cl, 0, false, NULL);
    T_CHECK(!s3s_tls_conn_ready(t));
    T_CHECK(s_handshake(&cl, t) == S3S_TLS_OK);
    T_CHECK(s3s_tls_conn_ready(t));
    /* ALPN: http/1.1 of the client's h2 and http/1.1 */
    const unsigned char *alpn = NULL;
    unsigned int alpn_len = 0;
    SSL_get0_alpn_selected(cl.ssl, &alpn, &alpn_len);
    T_CHECK(alpn_len == 8 && memcmp(alpn, "http/1.1", 8) == 0);
    char what[160];
    s3s_tls_conn_describe(t, what, sizeof(what));
    T_CHECK(strstr(what, "TLSv1.3") != NULL && strstr(what, "alpn=http/1.1") != NULL);

    /* client to server: a request in two records, read as one plaintext */
    const char *req = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    size_t n = 0;
    T_CHECK(SSL_write_ex(cl.ssl, req, 10, &n) == 1);
    T_CHECK(SSL_write_ex(cl.ssl, req + 10, strlen(req) - 10, &n) == 1);
    bool ff = false;
    s_carry(&cl, t, &ff);
    T_CHECK(s3s_tls_conn_pending(t));
    char plain[256];
    T_CHECK(s3s_tls_conn_read(t, plain, sizeof(plain), &n) == S3S_TLS_OK);
    T_CHECK(n == strlen(req) && memcmp(plain, req, n) == 0);
    T_CHECK(s3s_tls_conn_read(t, plain, sizeof(plain), &n) == S3S_TLS_WANT && n == 0);
    T_CHECK(!s3s_tls_conn_pending(t));

    /* a read smaller than what waits: the rest stays pending */
    T_CHECK(SSL_write_ex(cl.ssl, req, strlen(req), &n) == 1);
    s_carry(&cl, t, &ff);
    T_CHECK(s3s_tls_conn_read(t, plain, 5, &n) == S3S_TLS_OK && n == 5);
    T_CHECK(s3s_tls_conn_pending(t));
    T_CHECK(s3s_tls_conn_read(t, plain + 5, sizeof(plain) - 5, &n) == S3S_TLS_OK);
    T_CHECK(n == strlen(req) - 5 && memcmp(plain, req, strlen(req)) == 0);

    /* read in place: part of the input decrypted while the caller's buffer
     * lasts, the rest kept by feed_end, more input fed after it */
    {
        uint8_t wire[4096];
        T_CHECK(SSL_write_ex(cl.ssl, req, strlen(req), &n) == 1);
        int w1 = BIO_read(cl.wbio, wire, sizeof(wire));
        T_CHECK(SSL_write_ex(cl.ssl, "tail", 4, &n) == 1);
        int w2 = BIO_read(cl.wbio, wire + w1, (int)sizeof(wire) - w1);
        T_CHECK(w1 > 0 && w2 > 0);
        T_OK(s3s_tls_conn_feed(t, wire, (size_t)w1 + 3)); /* the second record cut */
        T_CHECK(s3s_tls_conn_read(t, plain, 5, &n) == S3S_TLS_OK && n == 5);
        T_OK(s3s_tls_conn_feed_end(t));
        memset(wire, 0, (size_t)w1 + 3); /* the caller's buffer is gone */
        T_OK(s3s_tls_conn_feed(t, wire + w1 + 3, (size_t)w2 - 3));
        T_CHECK(s3s_tls_conn_read(t, plain + 5, sizeof(plain) - 5, &n) == S3S_TLS_OK);
        T_CHECK(n == strlen(req) - 5 + 4);
        T_CHECK(memcmp(plain, req, strlen(req)) == 0 && memcmp(plain + strlen(req), "tail", 4) == 0);
        T_OK(s3s_tls_conn_feed_end(t));
        T_CHECK(!s3s_tls_conn_pending(t));
    }

    /* server to client: a head, chunk framing and a large body in pieces */
    size_t big_len = 100000;
    uint8_t *big = malloc(big_len);
    for (size_t i = 0; i < big_len; i++) {
        big[i] = (uint8_t)(i * 7 + 3);
    }
    struct s3s_cur pieces[4] = {{(const uint8_t *)"HEAD", 4},
                                {(const uint8_t *)"", 0},
                                {big, big_len},
                                {(const uint8_t *)"\r\n", 2}};
    T_OK(s3s_tls_conn_write(t, pieces, 4));
    T_CHECK(s3s_tls_conn_out_len(t) > big_len + 6);
    s_carry(&cl, t, &ff);
    uint8_t *got = malloc(big_len + 6);
    size_t k = s_client_read(&cl, got, big_len + 6);
    T_CHECK(k == big_len + 6);
    T_CHECK(memcmp(got, "HEAD", 4) == 0 && memcmp(got + 4, big, big_len) == 0 &&
            memcmp(got + 4 + big_len, "\r\n", 2) == 0);
    free(big);
    free(got);

    /* idle: the grown buffers given back, and the connection goes on */
    s3s_tls_conn_trim(t);
    T_CHECK(SSL_write_ex(cl.ssl, req, strlen(req), &n) == 1);
    s_carry(&cl, t, &ff);
    T_CHECK(s3s_tls_conn_read(t, plain, sizeof(plain), &n) == S3S_TLS_OK && n == strlen(req));
    struct s3s_cur again = {(const uint8_t *)"pong", 4};
    T_OK(s3s_tls_conn_write(t, &again, 1));
    s_carry(&cl, t, &ff);
    T_CHECK(s_client_read(&cl, (uint8_t *)plain, sizeof(plain)) == 4 &&
            memcmp(plain, "pong", 4) == 0);

    /* the client's close_notify ends the input; ours goes out */
    T_CHECK(SSL_shutdown(cl.ssl) == 0);
    s_carry(&cl, t, &ff);
    T_CHECK(s3s_tls_conn_read(t, plain, sizeof(plain), &n) == S3S_TLS_CLOSED && n == 0);
    s3s_tls_conn_shutdown(t);
    T_CHECK(s3s_tls_conn_out_len(t) > 0);
    T_CHECK(!ff);

    struct s3s_tls_stats st;
    s3s_tls_server_stats(s, &st);
    T_CHECK(st.handshakes == 1 && st.failures == 0 && st.resumed == 0);
    s_client_free(&cl);
    s3s_tls_conn_free(&t);
    s3s_tls_server_free(&s);
    T_CHECK(s == NULL);
}

static void test_not_tls(void)
{
    struct s3s_config c;
    struct s3s_tls_server *s = NULL;
    char why[512];
    s_cfg(&c, s_path("server.pem"), s_path("server.key"), NULL);
    T_OK(s3s_tls_server_new(&c, &s, why, sizeof(why)));
    struct s3s_tls_conn *t = NULL;
    T_OK(s3s_tls_conn_new(s, &t));
    const char *req = "GET / HTTP/1.1\r\n";
    T_ERR(s3s_tls_conn_feed(t, req, strlen(req)), S3S_ERR_BAD_REQUEST);
    T_CHECK(strstr(s3s_tls_conn_why(t), "not a TLS handshake") != NULL);
    T_CHECK(s3s_tls_conn_handshake(t) == S3S_TLS_FAILED);
    struct s3s_tls_stats st;
    s3s_tls_server_stats(s, &st);
    T_CHECK(st.failures == 1);
    s3s_tls_conn_free(&t);
    s3s_tls_server_free(&s);
}

static void test_versions_and_resumption(void)
{
    struct s3s_config c;
    struct s3s_tls_server *s = NULL;
    char why[512];
    s_cfg(&c, s_path("server.pem"), s_path("server.key"), NULL);
    T_OK(s3s_tls_server_new(&c, &s, why, sizeof(why)));

    /* TLS 1.2 and a ticket, then the session resumed with it */
    SSL_SESSION *sess = NULL;
    for (int round = 0; round < 2; round++) {
        struct s3s_tls_conn *t = NULL;
        T_OK(s3s_tls_conn_new(s, &t));
        struct s_client cl;
        s_client_new(&cl, TLS1_2_VERSION, false, sess);
        T_CHECK(s_handshake(&cl, t) == S3S_TLS_OK);
        T_CHECK(SSL_version(cl.ssl) == TLS1_2_VERSION);
        T_CHECK(SSL_session_reused(cl.ssl) == (round == 1));
        if (round == 0) {
            sess = SSL_get1_session(cl.ssl);
            T_CHECK(sess != NULL && SSL_SESSION_has_ticket(sess));
        }
        (void)SSL_shutdown(cl.ssl); /* else OpenSSL's client drops the session */
        s_client_free(&cl);
        s3s_tls_conn_free(&t);
    }
    SSL_SESSION_free(sess);
    sess = NULL;

    /* TLS 1.3: the tickets come after the handshake */
    for (int round = 0; round < 2; round++) {
        struct s3s_tls_conn *t = NULL;
        T_OK(s3s_tls_conn_new(s, &t));
        struct s_client cl;
        s_client_new(&cl, 0, false, sess);
        T_CHECK(s_handshake(&cl, t) == S3S_TLS_OK);
        uint8_t b[16];
        (void)s_client_read(&cl, b, sizeof(b)); /* takes the tickets */
        T_CHECK(SSL_session_reused(cl.ssl) == (round == 1));
        if (round == 0) {
            sess = SSL_get1_session(cl.ssl);
            T_CHECK(sess != NULL && SSL_SESSION_is_resumable(sess));
        }
        (void)SSL_shutdown(cl.ssl); /* else OpenSSL's client drops the session */
        s_client_free(&cl);
        s3s_tls_conn_free(&t);
    }
    SSL_SESSION_free(sess);
    struct s3s_tls_stats st;
    s3s_tls_server_stats(s, &st);
    T_CHECK(st.handshakes == 4 && st.resumed == 2);
    s3s_tls_server_free(&s);

    /* min_version 1.3 refuses a TLS 1.2 client */
    s_cfg(&c, s_path("server.pem"), s_path("server.key"), NULL);
    c.tls.min_version = 0x0304;
    T_OK(s3s_tls_server_new(&c, &s, why, sizeof(why)));
    struct s3s_tls_conn *t = NULL;
    T_OK(s3s_tls_conn_new(s, &t));
    struct s_client cl;
    s_client_new(&cl, TLS1_2_VERSION, false, NULL);
    T_CHECK(s_handshake(&cl, t) == S3S_TLS_FAILED);
    T_CHECK(strstr(s3s_tls_conn_why(t), "protocol") != NULL);
    s_client_free(&cl);
    s3s_tls_conn_free(&t);
    s3s_tls_server_free(&s);
}

static void test_client_certificates(void)
{
    struct s3s_config c;
    struct s3s_tls_server *s = NULL;
    char why[512];
    s_cfg(&c, s_path("server.pem"), s_path("server.key"), s_path("ca.pem"));
    T_OK(s3s_tls_server_new(&c, &s, why, sizeof(why)));
    for (int with = 0; with < 2; with++) {
        struct s3s_tls_conn *t = NULL;
        T_OK(s3s_tls_conn_new(s, &t));
        struct s_client cl;
        s_client_new(&cl, 0, with == 1, NULL);
        enum s3s_tls_status st = s_handshake(&cl, t);
        if (with) {
            T_CHECK(st == S3S_TLS_OK);
        } else {
            T_CHECK(st == S3S_TLS_FAILED);
            T_CHECK(strstr(s3s_tls_conn_why(t), "certificate") != NULL);
        }
        s_client_free(&cl);
        s3s_tls_conn_free(&t);
    }
    s3s_tls_server_free(&s);
}

static long s_served_serial(struct s3s_tls_server *s)
{
    struct s3s_tls_conn *t = NULL;
    T_OK(s3s_tls_conn_new(s, &t));
    struct s_client cl;
    s_client_new(&cl, 0, false, NULL);
    long serial = -1;
    if (s_handshake(&cl, t) == S3S_TLS_OK) {
        X509 *peer = SSL_get1_peer_certificate(cl.ssl);
        serial = ASN1_INTEGER_get(X509_get0_serialNumber(peer));
        X509_free(peer);
    }
    s_client_free(&cl);
    s3s_tls_conn_free(&t);
    return serial;
}

static void s_copy(const char *from, const char *to)
{
    size_t len = 0;
    char *p = t_read_file(from, &len);
    T_CHECK(p != NULL);
    t_write_file(to, p, len, 0600);
    free(p);
}

static void test_reload(void)
{
    struct s3s_config c;
    struct s3s_tls_server *s = NULL;
    char why[512];
    char cur_pem[256], cur_key[256];
    snprintf(cur_pem, sizeof(cur_pem), "%s", s_path("cur.pem"));
    snprintf(cur_key, sizeof(cur_key), "%s", s_path("cur.key"));
    s_copy(s_path("server.pem"), cur_pem);
    s_copy(s_path("server.key"), cur_key);
    s_cfg(&c, cur_pem, cur_key, NULL);
    T_OK(s3s_tls_server_new(&c, &s, why, sizeof(why)));
    T_CHECK(s_served_serial(s) == 100);
    /* a connection made before the reload keeps its context */
    struct s3s_tls_conn *old = NULL;
    T_OK(s3s_tls_conn_new(s, &old));

    /* the certificate replaced, the key not yet: refused, the old one stays */
    s_copy(s_path("server2.pem"), cur_pem);
    T_ERR(s3s_tls_server_reload(s, why, sizeof(why)), S3S_ERR_CONFIG);
    T_CHECK(strstr(why, "does not match") != NULL);
    T_CHECK(s_served_serial(s) == 100);

    /* both replaced */
    s_copy(s_path("server2.key"), cur_key);
    T_OK(s3s_tls_server_reload(s, why, sizeof(why)));
    T_CHECK(s_served_serial(s) == 200);
    char what[256];
    s3s_tls_server_describe(s, what, sizeof(what));
    T_CHECK(strncmp(what, "serial=C8 ", 10) == 0);

    struct s_client cl;
    s_client_new(&cl, 0, false, NULL);
    T_CHECK(s_handshake(&cl, old) == S3S_TLS_OK);
    X509 *peer = SSL_get1_peer_certificate(cl.ssl);
    T_CHECK(ASN1_INTEGER_get(X509_get0_serialNumber(peer)) == 100);
    X509_free(peer);
    s_client_free(&cl);
    s3s_tls_conn_free(&old);

    /* prepare / abort leave the context as it is */
    s_copy(s_path("server.pem"), cur_pem);
    s_copy(s_path("server.key"), cur_key);
    T_OK(s3s_tls_server_prepare(s, &c, why, sizeof(why)));
    s3s_tls_server_abort(s);
    T_CHECK(!s3s_tls_server_commit(s));
    T_CHECK(s_served_serial(s) == 200);
    T_OK(s3s_tls_server_prepare(s, &c, why, sizeof(why)));
    T_CHECK(s3s_tls_server_commit(s));
    T_CHECK(s_served_serial(s) == 100);
    s3s_tls_server_free(&s);
}

int main(void)
{
    s_make_files();
    test_config_errors();
    test_exchange();
    test_not_tls();
    test_versions_and_resumption();
    test_client_certificates();
    test_reload();
    s_clean_files();
    return t_finish("proxy.tls");
}
