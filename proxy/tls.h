/*
 * tls.h - TLS for clients (`tls:` in the config): OpenSSL on the event loop
 * through memory BIOs, no thread and no blocking call per connection.
 *
 * The server's TLS context (s3s_tls_server) is shared by every worker: its
 * SSL_CTX is built from cert_file, key_file and client_ca_file, and replaced
 * by s3s_tls_server_reload (SIGHUP) for new connections while open ones keep
 * theirs. Session tickets are encrypted under keys the server makes and
 * rotates itself, kept across reloads.
 *
 * A connection's TLS state (s3s_tls_conn) sits between the socket and the
 * HTTP parser. conn.c feeds it the bytes it reads (s3s_tls_conn_feed),
 * drives the handshake, takes the plaintext out (s3s_tls_conn_read), hands
 * it the plaintext it writes (s3s_tls_conn_write) and sends what
 * s3s_tls_conn_out gives to the socket. None of these touch a socket,
 * so they work without a loop (tests/unit/proxy/tls_test.c).
 *
 * Threading: a s3s_tls_conn belongs to one loop; the server may be used by
 * every loop at once (s3s_tls_conn_new, the ticket keys) and reloaded from
 * another thread.
 */
#ifndef S3S_PROXY_TLS_H
#define S3S_PROXY_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/common.h"
#include "proxy/config.h"

struct s3s_tls_server;
struct s3s_tls_conn;

/* Counters of the server's handshakes, all loops together. */
struct s3s_tls_stats {
    uint64_t handshakes; /* completed */
    uint64_t resumed;    /* of them, resumed from a session ticket */
    uint64_t failures;   /* refused or failed (not TLS, no client certificate, ...) */
};

/* Builds the server's context from cfg->tls (which must have cert_file).
 * On error writes "FILE:LINE: tls.KEY: reason"
 * into why: a certificate or key that cannot be read or parsed, a key that
 * does not match the certificate, a CA file without certificates. The
 * settings are copied: cfg may go away afterwards. */
S3S_RESULT s3s_tls_server_new(const struct s3s_config *cfg, struct s3s_tls_server **out,
                              char *why, size_t why_len);
/* Reads the files again into a new context that new connections get; on
 * error the current context stays and why says what is wrong. */
S3S_RESULT s3s_tls_server_reload(struct s3s_tls_server *s, char *why, size_t why_len);
/* The same in two steps, for a reload of the whole config (reload.h):
 * prepare builds the context of `next`'s tls section (NULL: the current
 * files again) and keeps it aside; commit makes it the one new connections
 * get (false: nothing was prepared); abort drops it. */
S3S_RESULT s3s_tls_server_prepare(struct s3s_tls_server *s, const struct s3s_config *next,
                                  char *why, size_t why_len);
bool s3s_tls_server_commit(struct s3s_tls_server *s);
void s3s_tls_server_abort(struct s3s_tls_server *s);
void s3s_tls_server_free(struct s3s_tls_server **s);
void s3s_tls_server_stats(const struct s3s_tls_server *s, struct s3s_tls_stats *out);
/* The current certificate's serial number (hex) and end of validity
 * ("notAfter" as OpenSSL prints it), for the log. */
void s3s_tls_server_describe(struct s3s_tls_server *s, char *out, size_t cap);

/* A server-side connection in the accepting state. */
S3S_RESULT s3s_tls_conn_new(struct s3s_tls_server *s, struct s3s_tls_conn **out);
void s3s_tls_conn_free(struct s3s_tls_conn **t);

enum s3s_tls_status {
    S3S_TLS_OK = 0,  /* done (handshake), or plaintext given (read) */
    S3S_TLS_WANT,    /* more bytes from the peer are needed */
    S3S_TLS_CLOSED,  /* the peer sent close_notify */
    S3S_TLS_FAILED,  /* a fatal error: s3s_tls_conn_why says which */
};

/* Bytes read from the socket, read in place (not copied) until
 * s3s_tls_conn_feed_end, which the caller must call before p goes away:
 * what was not decrypted by then is kept. Fails with S3S_ERR_BAD_REQUEST
 * when the connection's first byte cannot start a TLS handshake record (a
 * plain HTTP request on the TLS port). */
S3S_RESULT s3s_tls_conn_feed(struct s3s_tls_conn *t, const void *p, size_t n);
S3S_RESULT s3s_tls_conn_feed_end(struct s3s_tls_conn *t);
/* Moves the handshake on with what was fed; OK once it is complete. */
enum s3s_tls_status s3s_tls_conn_handshake(struct s3s_tls_conn *t);
bool s3s_tls_conn_ready(const struct s3s_tls_conn *t);
/* Decrypts up to cap bytes of plaintext into out (*n of them). OK when *n >
 * 0; otherwise WANT, CLOSED or FAILED. */
enum s3s_tls_status s3s_tls_conn_read(struct s3s_tls_conn *t, void *out, size_t cap, size_t *n);
/* Is there input fed but not yet returned by s3s_tls_conn_read? */
bool s3s_tls_conn_pending(const struct s3s_tls_conn *t);
/* Encrypts plaintext pieces (in order; empty ones are skipped) in records of
 * up to 16 KiB; the ciphertext waits for s3s_tls_conn_out_read. Only once
 * the handshake is complete. */
S3S_RESULT s3s_tls_conn_write(struct s3s_tls_conn *t, const struct s3s_cur *pieces, size_t n);
/* The ciphertext waiting to be sent (handshake messages, records, alerts):
 * its length; the bytes themselves (valid until the next call on t) and
 * n of them taken as sent; or up to cap bytes of it taken into dst. */
size_t s3s_tls_conn_out_len(const struct s3s_tls_conn *t);
struct s3s_cur s3s_tls_conn_out(const struct s3s_tls_conn *t);
void s3s_tls_conn_out_take(struct s3s_tls_conn *t, size_t n);
size_t s3s_tls_conn_out_read(struct s3s_tls_conn *t, void *dst, size_t cap);
/* Gives back the input and output buffers grown by a large transfer, if
 * they are empty (for an idle keep-alive connection). */
void s3s_tls_conn_trim(struct s3s_tls_conn *t);
/* Queues close_notify (after a completed handshake, unless it failed). */
void s3s_tls_conn_shutdown(struct s3s_tls_conn *t);
/* Why the connection failed (OpenSSL's reason), or "". */
const char *s3s_tls_conn_why(const struct s3s_tls_conn *t);
/* "TLSv1.3 TLS_AES_256_GCM_SHA384 alpn=http/1.1 resumed=0", for the log. */
void s3s_tls_conn_describe(const struct s3s_tls_conn *t, char *out, size_t cap);

#endif
