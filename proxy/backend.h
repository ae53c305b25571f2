/*
 * backend.h - requests to the backend, signed with the backend's own keys.
 *
 * One builder serves every request s3seal sends the backend: the proxy's
 * transfers on the event loop (upstream.c), and the blocking ones of the
 * thread pool (bucket_enc.c) and of the commands (cli_walk.c), so that
 * what is signed, how the URL is spelt and which headers libcurl must not
 * add are decided once.
 */
#ifndef S3S_BACKEND_H
#define S3S_BACKEND_H

#include <curl/curl.h>
#include <stdio.h>

#include "common/common.h"
#include "proxy/config.h"
#include "sigv4/sigv4.h"

/* The options every transfer to the backend has (HTTP/1.1, the path as
 * signed, no signals or redirects, the connect timeout, TLS verification). */
void s3s_backend_easy_options(CURL *e, const struct s3s_config *cfg);

/*
 * Signs one request (SigV4, the backend's keys and region). `path` and
 * `query` are canonical (s3s_sigv4_canonical_path/_query): what is signed
 * is what is sent. `hv` are the headers to send and sign besides host,
 * x-amz-date and x-amz-content-sha256, which are added here
 * (UNSIGNED-PAYLOAD when `with_body`, else the empty body's SHA-256).
 * Appends the URL to `url` and one line per header (and Authorization) to
 * `*headers`, which the caller frees with curl_slist_free_all, also on
 * error; libcurl is told to add no Expect: 100-continue and no Accept.
 * `scratch` is a buffer for the header lines (reused, not freed).
 */
S3S_RESULT s3s_backend_sign(const struct s3s_config *cfg, const char *method,
                            struct s3s_cur path, struct s3s_cur query,
                            const struct s3s_sigv4_header *hv, size_t nh, bool with_body,
                            struct s3s_buf *url, struct s3s_buf *scratch,
                            struct curl_slist **headers);

/* The headers that describe an object rather than one request: what a copy
 * with x-amz-metadata-directive: REPLACE must send again to keep them,
 * whether taken from a HEAD of the object or from the PUT that made it.
 * Content headers, the storage class, the redirect, the ACL and grants,
 * user metadata but s3seal's own (x-amz-meta-s3seal-*). */
bool s3s_backend_is_object_header(struct s3s_cur name);

/* What a blocking request brings back. Set up with s3s_backend_resp_init;
 * `sink` (optional) takes the body instead of `body`; `upload` (optional)
 * is the body of a PUT, `upload_len` bytes. */
struct s3s_backend_resp {
    long status;
    struct s3s_buf body;
    struct s3s_buf headers; /* "name\0value\0...", names lower-cased */
    s3s_result (*sink)(void *ctx, const uint8_t *p, size_t n);
    void *sink_ctx;
    FILE *upload;
    uint64_t upload_len;
    char error[CURL_ERROR_SIZE]; /* libcurl's reason when the transfer failed */
};

S3S_RESULT s3s_backend_resp_init(struct s3s_backend_resp *resp, size_t body_max);
void s3s_backend_resp_clean_up(struct s3s_backend_resp *resp);

/*
 * One blocking request (the thread pool's and the commands'): the raw
 * path and query are canonicalised, signed and sent; `hv` as for
 * s3s_backend_sign. `timeout_ms` bounds the whole transfer (0: only the
 * connect timeout). Succeeds when an answer came, whatever its status (in
 * resp->status, its headers and body in resp); fails with
 * S3S_ERR_GATEWAY_TIMEOUT or S3S_ERR_BAD_GATEWAY (reason in resp->error)
 * when none did.
 */
S3S_RESULT s3s_backend_perform(const struct s3s_config *cfg, const char *method,
                               struct s3s_cur raw_path, struct s3s_cur raw_query,
                               const struct s3s_sigv4_header *hv, size_t nh, long timeout_ms,
                               struct s3s_backend_resp *resp);

#endif /* S3S_BACKEND_H */
