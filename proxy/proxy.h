/*
 * proxy.h - internal interfaces of the proxy module: workers (one libuv loop
 * each), client connections, the request pipeline and the upstream client.
 *
 * Threading: every struct here belongs to exactly one worker's loop thread.
 * The only things shared between workers are the read-only config, the
 * sigv4 signing-key cache and the table of buckets' default encryption
 * (bucket_enc.c), each of the latter two with its own lock.
 */
#ifndef S3S_PROXY_H
#define S3S_PROXY_H

#include <curl/curl.h>
#include <libxml/xmlwriter.h>
#include <llhttp.h>
#include <openssl/evp.h>
#include <uv.h>

#include "common/common.h"
#include "proxy/backend.h"
#include "proxy/bucket_enc.h"
#include "proxy/config.h"
#include "proxy/hasher.h"
#include "proxy/http_head.h"
#include "proxy/keyring.h"
#include "proxy/kms_view.h"
#include "proxy/ks_watch.h"
#include "proxy/s3_op.h"
#include "proxy/stage.h"
#include "proxy/tls.h"
#include "proxy/upload_reg.h"
#include "sse/range.h"
#include "sse/sse.h"
#include "sigv4/chunked.h"
#include "sigv4/sigv4.h"

/* Backpressure marks for a connection's write queue and a request's upload
 * buffer: above HIGH the producer is paused, below LOW it resumes. */
#define S3S_HIGH_WATER (1024 * 1024)
#define S3S_LOW_WATER (256 * 1024)
#define S3S_READ_BUF_SIZE (256 * 1024)
/* Response body bytes gathered before a write to the client (upstream.c). */
#define S3S_OUT_FLUSH (256 * 1024)
/* The largest CompleteMultipartUpload body: 10,000 parts with their ETags
 * and checksums fit well within it; a larger one is refused as
 * MalformedXML, as S3 refuses it. */
#define S3S_COMPLETE_BODY_MAX (2u * 1024 * 1024)

struct s3s_worker;
struct s3s_conn;

/* ---------------------------------------------------------------- worker */

/* A queued write to a client and its bytes (conn.c). */
struct s3s_write_buf;

struct s3s_worker {
    /* read-only after start */
    int id;
    const struct s3s_config *cfg;
    uv_loop_t loop;

    /* loop thread only */
    uv_tcp_t listener;
    uv_async_t stop_async; /* another thread asks this worker to drain */
    uv_timer_t curl_timer;
    uv_timer_t drain_timer;
    CURLM *multi;
    struct s3s_conn *conns; /* intrusive list of live connections */
    size_t n_conns;
    bool draining;
    bool listener_open;
    /* `tls:`: clients speak HTTPS (tls.h); NULL: plain HTTP. Shared by the
     * workers, set before their loops start. */
    struct s3s_tls_server *tls;
    uint64_t next_req_seq;
    uv_thread_t thread;
    int exit_status;
    /* Requests whose next backend transfer cannot start inside a libcurl
     * callback (libcurl refuses that): started after the transfers' events
     * are processed (s3s_worker_check_multi). */
    struct s3s_req *deferred;
    /* Requests with response body bytes gathered, written once the
     * transfers' events are handled (s3s_worker_flush_out). */
    struct s3s_req *out_pending;
    /* Write buffers kept for the next queued write (conn.c). */
    struct s3s_write_buf *write_pool;
    int write_pool_n;
    /* The upload registry (upload_reg.c) is there: a keystore is open. */
    bool upload_reg;
    bool upload_reg_attached;
    /* SSE-S3 root keys; has_keyring is false without a configured keystore. */
    struct s3s_keyring keyring;
    /* Layouts of multipart objects read lately (sse_mpu.c), so that the
     * ranged GETs of a parallel download read the object's end nonces once.
     * Direct-mapped by bucket, key and backend ETag. */
    struct s3s_layout_entry {
        uint64_t hash;
        char etag[48];
        uint32_t first_part, parts;
        uint64_t k;
    } layouts[256];
    bool has_keyring;
    /* SSE-KMS keys (kms_view.c); has_kms is false without a keystore. */
    struct s3s_kms_view kms;
    bool has_kms;
    /* Buckets' default encryption set through the S3 API (bucket_enc.c). */
    struct s3s_bucket_enc_view *bucket_enc;
    /* The keystore's change notices (ks_watch.c); NULL without a channel. */
    struct s3s_ks_watch *ks_watch;
    /* SIGHUP (reload.h): the config the worker takes next, put there by
     * another thread (s3s_worker_reload), and the signal to take it; each
     * holds a reference, as cfg does (loop thread only). */
    const struct s3s_config *_Atomic cfg_next;
    uv_async_t reload_async;
    /* The watchdog (main.c): reload_async's wake-ups, counted on the loop
     * thread (s3s_worker_ping asks for one), and the count the main thread
     * saw last. */
    atomic_uint_fast64_t alive;
    uint64_t alive_seen;
};

S3S_RESULT s3s_worker_init(struct s3s_worker *w, int id, const struct s3s_config *cfg);
/* Runs the loop until the worker has drained; then closes every handle. */
int s3s_worker_run(struct s3s_worker *w);
/* Thread-safe: asks the worker to stop accepting and drain. */
void s3s_worker_stop(struct s3s_worker *w);
/* Thread-safe: asks the worker to serve new requests with `next` (it
 * takes a reference); requests under way keep theirs. */
void s3s_worker_reload(struct s3s_worker *w, const struct s3s_config *next);
/* Thread-safe: asks the worker's loop to turn once (it counts `alive`). */
void s3s_worker_ping(struct s3s_worker *w);
void s3s_worker_clean_up(struct s3s_worker *w);
/* Called by conn.c when a connection is gone; finishes a drain. */
void s3s_worker_conn_closed(struct s3s_worker *w);
/* Processes curl's completed transfers. */
void s3s_worker_check_multi(struct s3s_worker *w);
/* Runs s3s_worker_check_multi from the loop as soon as possible. */
void s3s_worker_wake(struct s3s_worker *w);
/* Puts a request on the worker's deferred list (once). */
void s3s_worker_defer(struct s3s_req *r);

/* -------------------------------------------------------------- requests */

enum s3s_req_phase {
    S3S_PHASE_HEADERS = 0, /* reading request headers */
    S3S_PHASE_BODY,        /* request accepted; forwarding the body */
    S3S_PHASE_WAIT,        /* body done, waiting for the backend's answer */
    S3S_PHASE_RESPOND,     /* response head sent, streaming the body */
    S3S_PHASE_DONE,        /* response complete */
};

struct s3s_req {
    struct s3s_conn *conn;
    /* The config the request started with, a reference held until it ends:
     * a reload (SIGHUP) does not change it under the request. */
    const struct s3s_config *cfg;
    uint64_t start_ns;
    char id[17]; /* request id, 16 hex digits */

    /* Parsed request line and headers. Cursors point into conn->head.buf. */
    struct s3s_cur method;
    struct s3s_cur target; /* raw request-target */
    struct s3s_cur path;   /* raw path (percent-encoded) */
    struct s3s_cur query;  /* raw query, without '?' */
    struct s3s_sigv4_header *headers;
    size_t n_headers;

    /* S3 addressing, and the operation decided on the decoded request
     * (s3_op.h); every decision about how to serve it starts there. */
    enum s3s_s3_op op;
    uint8_t stage_next; /* the next stage whose on_head runs (stages.c) */
    uint8_t reply_next; /* on_reply hooks run so far (stages.c) */
    bool reply_waiting;  /* a stage's on_reply works: the backend's body is held */
    bool reply_finished; /* and the transfer ended meanwhile */
    struct s3s_buf bucket; /* decoded bucket name; empty for service-level */
    struct s3s_buf key;    /* decoded object key; empty for bucket-level */
    bool virtual_host;

    /* Authentication */
    struct s3s_sigv4_verify_result auth;
    char access_key[129];

    /* Body from the client */
    bool has_body;
    uint64_t content_length;
    uint64_t body_received;
    uint64_t body_sent_upstream;
    bool body_complete;   /* all bytes received from the client */
    bool body_verified;   /* hashes checked (or nothing to check) */
    bool body_failed;     /* a hash mismatched: abort upstream */
    int32_t body_error;
    /* The digests the body is checked against: the signed payload hash,
     * Content-MD5, the flexible checksum, the plaintext MD5 of an encrypted
     * PutObject (plain_md5). While the body streams they are the hasher's
     * (hasher.h; on the thread pool for large bodies), and back here once
     * every byte is hashed. */
    struct s3s_body_digests dg;
    struct s3s_hasher *hasher;
    uint8_t want_md5[16];
    struct s3s_buf upload; /* bytes received, not yet taken by curl */
    size_t upload_off;     /* read offset into upload */
    bool msg_complete; /* llhttp saw the end of the request message */
    /* Streaming uploads: the aws-chunked decoder (NULL for plain bodies) and
     * the payload bytes after decoding; content_length is then the decoded
     * length (x-amz-decoded-content-length), which is what the backend gets. */
    struct s3s_chunked *chunked;
    uint64_t body_decoded;
    /* Kept while the headers wait for the upload registry (conn.c). */
    bool has_decoded_length, aws_chunked;
    /* SSE-S3 on PutObject: the streaming encryptor, the metadata headers
     * (name NUL value NUL ...) and the ciphertext length sent upstream. */
    struct s3s_sse_enc *enc;
    struct s3s_buf sse_headers;
    /* What a write asks for (sse_kms.c: the SSE headers, or the bucket's
     * default), parsed once by s3s_sse_put_setup. */
    struct s3s_sse_want {
        bool parsed;
        enum s3s_sse_mode mode;
        bool explicit_hdr; /* x-amz-server-side-encryption was sent */
        bool bucket_key;   /* a bucket key wraps the data keys */
        char *kms_key_ref; /* as the client or the default named it; NULL: aws/s3 */
        struct s3s_kms_context context; /* the client's pairs */
        bool has_context;               /* the client sent a context */
    } sse_want;
    /* The request waits for its account's default KMS key (kms_view.c). */
    bool kms_waiting;
    /* Keystore work on the thread pool that the request waits for (the
     * bucket encryption API, the upload registry, a KMS key made on first
     * use). It ends by itself within the keystore's own bounded waits, so
     * the request's timer does not answer for it (conn.c): a timeout then
     * would blame the backend, and the work could still take effect. */
    uint8_t keystore_waits;
    /* How the object the response is about is encrypted, for its SSE
     * headers: 0 not by s3seal, else an enum s3s_sse_kind; the KMS key's
     * ARN, the context to return (PutObject, CreateMultipartUpload and
     * CopyObject return it; GET and HEAD never do), the bucket key. */
    int resp_sse;
    char *resp_kms_arn;
    struct s3s_buf resp_kms_context;
    bool resp_bucket_key;
    /* The message of an error whose text depends on the request (a KMS
     * refusal names the key); empty: the code's own message. */
    char err_detail[640];
    uint64_t up_length; /* body bytes sent to the backend */

    /* GetObject/HeadObject: the client's Range, and how the body coming back
     * is turned into the response (decrypted, or only trimmed when the
     * object turns out not to be encrypted). */
    struct s3s_sse_range range; /* sse/range.h */
    bool range_mapped;         /* the backend was asked for a widened range */
    bool range_drop;           /* the client's Range is not forwarded */
    char up_range[64];         /* the Range header sent instead, or "" */
    struct s3s_buf resp_meta;  /* the response's x-amz-meta-s3seal-* headers, "name\0value\0" */
    uint64_t resp_fetch_first; /* first byte offset the backend sent */
    uint64_t resp_total;       /* the stored object's full size */
    bool resp_total_known;
    struct s3s_sse_dec *dec;
    bool resp_trim;            /* plain object behind a widened range */
    uint64_t out_discard;      /* body bytes to drop before the first useful one */
    uint64_t out_want;         /* plaintext bytes the client gets */
    bool resp_encrypted;
    bool resp_has_range;       /* the backend sent Content-Range */
    char resp_content_range[96]; /* what the client gets, or "" */
    int32_t deferred_error;    /* an error found in the response head (416, key) */
    /* Authorization (authz.h): the caller's account; an error found while
     * the request waited on the thread pool before its body
     * (s_headers_accepted answers with it); CreateBucket claimed the name
     * (taken back if the backend does not create it); DeleteBucket's
     * bookkeeping is queued. */
    char account[13];
    int32_t accept_error;
    bool bucket_claimed;
    bool bucket_forgotten;
    /* Responses whose body s3seal rewrites: buffered (bounded) and sent once
     * rewritten. A listing of a bucket whose objects are encrypted (sizes),
     * CreateMultipartUpload (the UploadId), ListParts (part sizes). */
    enum {
        S3S_REWRITE_NONE = 0,
        S3S_REWRITE_LISTING,
        S3S_REWRITE_CREATE_MPU,
        S3S_REWRITE_LIST_PARTS,
        S3S_REWRITE_COPY_RESULT, /* a streamed copy's result document */
        S3S_REWRITE_COMPLETE,    /* CompleteMultipartUpload's ETag, if empty */
        S3S_REWRITE_LIST_UPLOADS, /* ListMultipartUploads' ids (upload_reg.c) */
        S3S_REWRITE_LIST_BUCKETS, /* ListBuckets: the caller's account's buckets (authz.c) */
        S3S_REWRITE_DONE,         /* rewritten by a stage already: sent as it is */
        S3S_REWRITE_COPY_REWRAP,  /* a re-wrapped copy's result (its ETag: catalog.c) */
    } rewrite_kind;
    struct s3s_buf listing;

    /* Multipart uploads s3seal encrypts (sse_mpu.c): the backend's upload id
     * behind the client's, and the suffix a new upload's id gets. */
    bool mpu_encrypted;
    struct s3s_buf mpu_backend_id;
    struct s3s_buf mpu_suffix;
    /* The upload registry (upload_reg.c): s3seal's id of the upload a
     * request names by its backend id, when the registry knows it (then
     * taken instead of the query's uploadId); the work on the thread pool;
     * whether the registry's part of this answer is done. */
    struct s3s_buf mpu_reg_id;
    struct s3s_upload_reg_op *upload_reg;
    bool upload_reg_done;
    /* CompleteMultipartUpload of an encrypted upload: the last byte of its
     * body waits until the parts named in it are known to form the layout
     * the format needs (sse_mpu.c), from a copy of the body and the
     * backend's ListParts, read by the second transfer (src_easy). */
    bool mpu_complete;
    /* A copy of the request's body, for a stage that reads it once it is
     * in (stage.h, on_body); body_copy.max 0: none kept. */
    struct s3s_buf body_copy;
    bool mpu_listed;    /* every ListParts page is in */
    bool mpu_body_done; /* the client's body (r->body_copy) is in and verified */
    uint64_t *mpu_sizes; /* stored size per part number, UINT64_MAX: none */
    uint32_t mpu_marker; /* the next ListParts page starts after this part */
    char mpu_etag[48];   /* the object's ETag computed from the parts' */
    bool mpu_plain_known; /* Complete: the layout check found the object's size */
    uint64_t mpu_plain_size;
    /* A parts3 upload: its object's id in the keystore's catalog, where the
     * part count is recorded before the backend completes it. */
    bool mpu_catalog;
    uint8_t mpu_object_id[S3S_SSE_OBJECT_ID_LEN];
    /* A ranged read of the multipart layout (GET, or a copy's source): the
     * object's first and last stored nonces are read first, by the second
     * transfer (sse_mpu.c); the main transfer's body waits meanwhile. */
    int nonce_stage;     /* 0: none, 1: reading the first, 2: the last */
    bool deferred;       /* in the worker's deferred list */
    /* The main transfer ended inside curl_easy_pause (a write callback
     * refused the bytes an unpause delivered): libcurl tells only when the
     * handle runs again, which nothing schedules, so the worker ends it
     * from its deferred list (pause_error), and ignores the late report
     * (easy_ended). */
    CURLcode pause_error;
    bool easy_ended;
    bool out_listed;     /* in the worker's out_pending list */
    struct s3s_req *out_next;
    struct s3s_req *deferred_next;
    struct s3s_sse_dec *nonce_dec;
    struct s3s_buf nonce_path, nonce_query;
    uint64_t nonce_last_off;
    uint64_t nonce_cipher_len;
    uint8_t nonce_first[S3S_SSE_NONCE_LEN];
    uint8_t nonce_last[S3S_SSE_NONCE_LEN];
    /* More than two parts: the first part's final header, at segment k - 1,
     * is read third (stage 3) to check k (sse.h, s3s_sse_parts_check_k). */
    uint32_t nonce_s;
    uint64_t nonce_k;
    uint32_t nonce_parts; /* 0 until the catalog's count is in (parts3) */
    /* parts3: the object's id, to look its part count and first part up in
     * the keystore's catalog before the nonces are read. */
    bool nonce_catalog;
    uint8_t nonce_object_id[S3S_SSE_OBJECT_ID_LEN];
    uint32_t nonce_first_part; /* the catalog's; 0: not known */
    char copy_range[64]; /* a copy's source Range, kept while the nonces are read */
    /* GET/HEAD with partNumber (sse_get.c): the object is probed with a HEAD
     * first; for an encrypted one the part becomes a plaintext range, and
     * the answer says how many parts the object has. */
    uint32_t part_number;   /* asked for; 0: none */
    bool part_mapped;       /* partNumber turned into a Range, not forwarded */
    uint32_t part_count;    /* x-amz-mp-parts-count of the answer; 0: none */
    uint32_t known_first_part; /* the object's first part number, from the probe */
    char probe_etag[128];   /* the probed object's backend ETag */

    /* CopyObject / UploadPartCopy: the source is probed with a HEAD first.
     * An encrypted source is copied by re-wrapping its data key for the new
     * name (no data rewrite); an encrypted source of UploadPartCopy is
     * refused for now. */
    int probe_stage; /* 0: none, 1: HEAD running, 2: done */
    int probe_status;
    struct s3s_buf probe_headers; /* the source's object headers, "name\0value\0" */
    uint64_t probe_length;        /* the source's stored size */
    bool rewrap_copy;             /* send the copy with REPLACE and new metadata */
    bool rewrap_keep_source_meta; /* the client asked to COPY the metadata */
    bool copy_wants_sse;          /* the copy must be encrypted (header or default) */
    /* CopyObject: what the probe found of the source, for the copy's
     * catalog entry (catalog.c): its decoded name, backend ETag (unquoted),
     * plaintext size, and the ETag clients see, where known without the
     * source's own entry (empty: look it up). */
    struct s3s_copy_source {
        bool known;
        struct s3s_buf bucket, key;
        char etag[84];
        char plain_etag[84];
        uint64_t plain_size;
    } copy_src;
    /* A copy that s3seal streams itself (its data must be decrypted or
     * encrypted on the way): the source is read by a second transfer whose
     * body, decrypted if need be, becomes the upload of the main transfer
     * (a PutObject or UploadPart), encrypted if need be. */
    bool stream_copy;
    CURL *src_easy;
    struct curl_slist *src_headers;
    int src_status;
    int32_t src_error;
    bool src_paused;
    struct s3s_sse_dec *copy_dec;
    struct s3s_buf copy_plain;
    char resp_etag[128]; /* the main transfer's ETag */
    /* A streamed CopyObject keeps the source's tags (tagging directive COPY):
     * they are read first (sse_copy.c) and sent as x-amz-tagging. */
    uint64_t probe_tag_count;
    bool copy_tags_stage;
    struct s3s_buf copy_tagging;
    struct s3s_buf out_plain; /* a response piece decrypted or trimmed, reused */

    /* A flexible checksum to verify, given as a header or a trailer. */
    enum s3s_checksum_alg checksum_alg; /* dg.checksum's, S3S_CHECKSUM_NONE if none */
    char checksum_want[96];
    bool checksum_in_trailer;
    bool checksum_verified; /* checksum_want then holds the verified value */

    /* Upstream transfer */
    CURL *easy;
    struct curl_slist *up_headers;
    struct s3s_buf up_url;
    struct s3s_buf up_scratch; /* header lines and signing text */
    bool send_paused, recv_paused;
    bool upstream_done;
    CURLcode upstream_result;
    bool up_head_parsed;
    int up_status;
    struct s3s_buf resp_head; /* response head built for the client */
    bool resp_has_length;
    uint64_t resp_length;
    bool resp_chunked; /* we frame the body as chunked to the client */
    bool resp_no_body;
    bool resp_head_sent;
    /* GET/HEAD with x-amz-checksum-mode: ENABLED: the checksum s3seal stored
     * in the object's metadata, returned when the backend has none of its own. */
    bool checksum_mode;
    bool resp_native_checksum;
    char resp_checksum[160]; /* "x-amz-checksum-crc32: VALUE" */
    /* ETags of encrypted objects (sse_get.c): an encrypted single-part
     * object's ETag is the MD5 of its plaintext, as S3's SSE-S3 gives, where
     * s3seal knows it (computed on PutObject; stored when the client sent
     * Content-MD5). The backend's ETag is then replaced, and If-Match /
     * If-None-Match of GET and HEAD are evaluated here against the ETag the
     * client sees, not by the backend. */
    bool have_plain_md5; /* from dg.plain_md5, or Content-MD5 */
    /* The catalog (catalog.c): its entry's ETag of the object read
     * ("\"...\"", empty when none), and what it does for the request. */
    char catalog_etag[84];
    uint8_t catalog_step; /* catalog.c's own */
    uint8_t plain_md5_val[16];
    bool etag_ours;        /* the ETag header is written by s_send_head */
    struct s3s_cur if_match, if_none_match;
    bool etag_conditions;  /* If-Match / If-None-Match / If-Range not forwarded */
    /* Range with If-Range: the whole object is fetched, and the range
     * served only if If-Range matches the ETag the client sees (or the
     * backend's Last-Modified). */
    struct s3s_cur if_range;
    bool range_whole;
    char resp_last_modified[64];
    bool resp_cut;         /* the body is not wanted (304): abort quietly */
    /* A checksum that arrived as a trailer is stored afterwards, by copying
     * the new object onto itself with the checksum in its metadata; the
     * PUT's response head is held until that copy is done. */
    bool resp_versioned;
    bool hold_head;
    int copy_stage; /* 0: none, 1: copy running, 2: done */
    int copy_status;
    uint64_t resp_body_sent;

    int status; /* status sent to the client, for the log */
    int32_t error;
    enum s3s_req_phase phase;

    /* The bucket encryption API, which s3seal answers itself (bucket_enc.c). */
    struct s3s_bucket_enc_op *bucket_enc;
};

/* ------------------------------------------------------------ connection */

struct s3s_conn {
    struct s3s_conn *next, *prev; /* worker's list */
    struct s3s_worker *w;
    uv_tcp_t tcp;
    uv_timer_t timer;
    llhttp_t parser;
    char remote[64];    /* "ADDRESS:PORT", for logs */
    char remote_ip[48]; /* the address alone (the audit trail's source) */

    /* The head of the request being parsed (http_head.h). */
    struct s3s_http_head head;

    struct s3s_req *req;
    /* Bytes read past the end of the current request (pipelining), parsed once
     * the current response is done. */
    struct s3s_buf pending;
    /* A response head held back (in the request's resp_head) to go out in
     * one write with the first body bytes (s3s_conn_hold). */
    struct s3s_cur held;

    size_t write_queued; /* bytes handed to uv_write, not yet written */
    int handles_open;    /* tcp + timer: freed when both closed */
    bool reading;
    bool read_paused_backpressure;
    bool parser_paused;
    bool closing;
    bool close_after_response;
    bool in_parse; /* inside llhttp_execute: defer teardown */
    /* Over a connection cap: answered 503 SlowDown at once, then closed
     * after a short linger that reads and drops what the client sends. */
    bool refused;
    /* The last request was answered before its body was all in: after the
     * answer, what the client still sends is read and dropped for a while
     * (a lingering close), so the kernel does not reset the connection
     * under the answer before the client reads it. */
    bool linger;
    bool client_counted; /* in the per-client count (conn.c) */
    uv_shutdown_t shutdown_req;
    /* The body's rate window (limits.min_body_rate): when it started, the
     * body bytes read by then, and whether the timer is armed for its end. */
    uint64_t body_window_ns;
    uint64_t body_window_bytes;
    bool body_timer_window;
    /* HTTPS (w->tls): the connection's TLS state between the socket and
     * the parser, and an idle handle that decrypts input already received
     * once reading resumes (conn.c). NULL for plain HTTP. */
    struct s3s_tls_conn *tls;
    uv_idle_t tls_pump;
    bool tls_pump_on;
};

void s3s_conn_accept(struct s3s_worker *w);
/* Starts closing the connection (idempotent); aborts any upstream transfer. */
void s3s_conn_close(struct s3s_conn *c);
/* Drain: close idle connections; make busy ones close after their response. */
void s3s_conn_drain(struct s3s_conn *c);

/* Writes bytes to the client (copied); counts them in write_queued. */
S3S_RESULT s3s_conn_write(struct s3s_conn *c, const void *p, size_t n);
/* Holds `head` (which must stay valid: the request's own buffer) to be sent
 * in front of the next write, so a small response leaves in one write and
 * one packet; s3s_conn_flush sends it alone. Dropped with the request. */
void s3s_conn_hold(struct s3s_conn *c, struct s3s_cur head);
S3S_RESULT s3s_conn_flush(struct s3s_conn *c);
/* Writes the response body bytes gathered in out_plain (and a held head). */
S3S_RESULT s3s_upstream_flush_body(struct s3s_req *r);
/* After libcurl's events: every request's gathered bytes go out. */
void s3s_worker_flush_out(struct s3s_worker *w);
/* The request is going away: off the worker's list. */
void s3s_upstream_out_release(struct s3s_req *r);
/* Frees the worker's pooled write buffers (after its loop is done). */
void s3s_conn_pool_clean_up(struct s3s_worker *w);
/* The same framed as one HTTP/1.1 chunk, in one write. */
S3S_RESULT s3s_conn_write_chunk(struct s3s_conn *c, const void *p, size_t n);
/* A request paused after its headers (the upload registry's lookup) goes
 * on: s3seal decides how to serve it, starts it and reads its body. */
void s3s_req_headers_resume(struct s3s_req *r);
/* Called by the upstream side when the response is complete or failed. */
void s3s_req_upstream_finished(struct s3s_req *r);
/* A stage's on_reply work is done (stage.h): the client's head is composed
 * and the backend's body flows again (upstream.c). */
void s3s_req_reply_resume(struct s3s_req *r);
/* The write queue drained below LOW: resume whatever was paused. */
void s3s_req_write_drained(struct s3s_req *r);
/* The upload buffer has room again: resume reading from the client. */
void s3s_req_upload_drained(struct s3s_req *r);

/* Sends an S3 XML error response for the current request and ends it. */
void s3s_req_send_error(struct s3s_req *r, int32_t err, const char *detail);

/* ---------------------------------------------------------------- SSE-S3 */

/* Header lists kept as "name\0value\0..." in a buffer (s3seal's object
 * metadata): an emit function for s3s_sse_meta_encode (ctx: the buffer) and a
 * get function for s3s_sse_meta_decode (ctx: the buffer). */
s3s_result s3s_hdrlist_emit(void *ctx, const char *name, struct s3s_cur value);
bool s3s_hdrlist_get(void *ctx, const char *name, struct s3s_cur *value);
/* Appends one entry, the name lower-cased (backends answer in any case). */
s3s_result s3s_hdrlist_add(struct s3s_buf *list, struct s3s_cur name, struct s3s_cur value);
/* Walks a header list: each call yields the next name and value and returns
 * true; false at the end. *off starts at 0. */
bool s3s_hdrlist_next(const struct s3s_buf *list, size_t *off, const char **name,
                      const char **value);
/* The number of entries in a header list. */
size_t s3s_hdrlist_count(const struct s3s_buf *list);

/* PutObject: decides from the request and the bucket's defaults whether the
 * object is encrypted; if so sets up the encryptor and the metadata. Refuses
 * what this version cannot do (encrypted copies and multipart uploads). */
S3S_RESULT s3s_sse_put_setup(struct s3s_req *r);
/* GetObject: parses the client's Range (the backend is asked for a widened
 * range that covers the segments, in case the object is encrypted). */
S3S_RESULT s3s_sse_get_setup(struct s3s_req *r);
/* The backend's response head is complete: if the object is encrypted, opens
 * its data key and rewrites status, Content-Length and Content-Range for the
 * plaintext; if a widened range came back for a plain object, trims it.
 * May answer 416 itself. Returns an error when the object cannot be
 * decrypted (fail closed). */
S3S_RESULT s3s_sse_get_head(struct s3s_req *r);
/* Transforms response body bytes into what the client gets (appended to
 * out). */
S3S_RESULT s3s_sse_get_body(struct s3s_req *r, struct s3s_cur in, struct s3s_buf *out);
/* The body ended: the decryptor must be complete. */
S3S_RESULT s3s_sse_get_finish(struct s3s_req *r);

/* The ETag the client gets ("\"hex\"", with quotes) for an object read or
 * a PutObject; false if there is none. */
bool s3s_sse_client_etag(const struct s3s_req *r, char *out, size_t cap);

/* Opens an encrypted object's data key (bound to the request's bucket and
 * key) with the worker's root keys. */
S3S_RESULT s3s_sse_open_dek(struct s3s_req *r, const struct s3s_sse_meta *meta,
                            struct s3s_secret *dek);

/* ListBuckets' answer with only the buckets `keep` says yes to (listing.c). */
typedef bool s3s_bucket_keep_fn(void *ctx, struct s3s_cur bucket);
S3S_RESULT s3s_listing_buckets(struct s3s_cur xml, s3s_bucket_keep_fn keep, void *ctx,
                               struct s3s_buf *out);
/* Rewrites a listing's <Size> values to plaintext sizes (see listing.c). */
S3S_RESULT s3s_listing_plain_sizes(struct s3s_cur xml, struct s3s_buf *out);
/* The same for ListParts of an encrypted upload. */
S3S_RESULT s3s_listparts_plain_sizes(struct s3s_cur xml, struct s3s_buf *out);
/* CompleteMultipartUpload's answer: its ETag (appended to etag, as sent);
 * nothing appended for an error document. */
S3S_RESULT s3s_xml_complete_etag(struct s3s_cur xml, struct s3s_buf *etag);
/* CopyObjectResult's ETag (appended to etag, as sent); nothing appended
 * for another document. */
S3S_RESULT s3s_xml_copy_etag(struct s3s_cur xml, struct s3s_buf *etag);
/* The same document with its ETag set to "`etag`" (unquoted, plain
 * characters). */
S3S_RESULT s3s_xml_copy_set_etag(struct s3s_cur xml, const char *etag, struct s3s_buf *out);
/* Is it a CompleteMultipartUploadResult (not an error document)? */
bool s3s_xml_is_complete_result(struct s3s_cur xml);
/* CreateMultipartUpload's answer: its UploadId (appended to id). */
S3S_RESULT s3s_xml_upload_id(struct s3s_cur xml, struct s3s_buf *id);
/* ListMultipartUploads' answer with each <Upload>'s <UploadId> replaced by
 * backend id + suffix where `lookup` (called once, with every upload of the
 * page, keys decoded) sets a suffix. */
struct s3s_keystore_upload_ref;
typedef s3s_result (*s3s_uploads_lookup_fn)(void *ctx, struct s3s_keystore_upload_ref *refs,
                                            size_t n);
S3S_RESULT s3s_listing_uploads(struct s3s_cur xml, s3s_uploads_lookup_fn lookup, void *ctx,
                               struct s3s_buf *out);
/* An object listing (ListObjects, ListObjectsV2, ListObjectVersions) with
 * each <Contents> / <Version> that has a catalog entry given its plaintext
 * Size and ETag; `lookup` is called once with every entry of the page (keys
 * decoded, ETags unquoted). Entries without one stay as stored. */
struct s3s_keystore_entry_ref;
typedef s3s_result (*s3s_entries_lookup_fn)(void *ctx, struct s3s_keystore_entry_ref *refs,
                                            size_t n);
S3S_RESULT s3s_listing_catalog(struct s3s_cur xml, s3s_entries_lookup_fn lookup, void *ctx,
                               struct s3s_buf *out);
/* CreateMultipartUpload's answer with `suffix` appended to its UploadId. */
S3S_RESULT s3s_listing_upload_id(struct s3s_cur xml, struct s3s_cur suffix, struct s3s_buf *out);

/* Multipart uploads (sse_mpu.c): the suffix of a new upload's id, and the
 * upload named by a request's uploadId (sets mpu_encrypted, mpu_backend_id
 * and the key's metadata when s3seal encrypts the upload). */
S3S_RESULT s3s_mpu_suffix(struct s3s_req *r, const struct s3s_sse_meta *m, const uint8_t *dek,
                          struct s3s_buf *out);
S3S_RESULT s3s_mpu_parse_request(struct s3s_req *r, struct s3s_sse_meta *meta);

/* GET/HEAD with partNumber: starts the HEAD of the object (see probe_stage),
 * and maps the part to a range once it is known. */
S3S_RESULT s3s_part_probe_start(struct s3s_req *r, bool *started);
S3S_RESULT s3s_part_probe_done(struct s3s_req *r);
/* The object's first and last stored nonces are in: the part's range. */
S3S_RESULT s3s_part_nonces_done(struct s3s_req *r, const uint8_t *first, const uint8_t *last);

/* Starts the HEAD of a copy's source (see probe_stage); false if the request
 * is no copy. */
S3S_RESULT s3s_copy_probe_start(struct s3s_req *r, bool *started);
/* The probe finished: prepares the copy (re-wrap or plain) and starts it.
 * Returns an error to send to the client instead. */
S3S_RESULT s3s_copy_probe_done(struct s3s_req *r);
/* Launches a HEAD of a backend path (used by the copy probe). */
S3S_RESULT s3s_upstream_head(struct s3s_req *r, struct s3s_cur path, struct s3s_cur query,
                             struct s3s_sigv4_header *hv, size_t nh);
/* Streamed copies: starts the source read (`range` a Range value or NULL);
 * resumes it once the upload has room; aborts it. */
S3S_RESULT s3s_upstream_source_get(struct s3s_req *r, struct s3s_cur path, struct s3s_cur query,
                                   const char *range);
void s3s_upstream_resume_source(struct s3s_req *r);
void s3s_upstream_abort_source(struct s3s_req *r);
/* The source read ended (from the worker's transfer loop). */
void s3s_copy_source_finished(struct s3s_req *r, CURLcode rc);
/* CompleteMultipartUpload of an encrypted upload: starts reading the
 * upload's parts; takes a ListParts page; checks the layout once the parts
 * and the client's body are both in (sets body_verified or body_failed). */
S3S_RESULT s3s_mpu_complete_start(struct s3s_req *r);
void s3s_mpu_parts_page(struct s3s_req *r, CURLcode rc);
/* Ranged reads of the multipart layout: reads the object at path/query's
 * first and last stored nonces (cipher_len bytes, `parts` parts), checks
 * that its part numbers run from the first to the last, and tells `dec`
 * where they start; then lets the GET's body through, or starts a copy's
 * source read. */
S3S_RESULT s3s_mpu_nonces_start(struct s3s_req *r, struct s3s_sse_dec *dec, struct s3s_cur path,
                                struct s3s_cur query, uint64_t cipher_len, uint32_t parts);
/* The same from inside a libcurl callback: the first read starts once the
 * worker is out of libcurl (s3s_mpu_nonces_run). */
S3S_RESULT s3s_mpu_nonces_defer(struct s3s_req *r, struct s3s_sse_dec *dec, struct s3s_cur path,
                                struct s3s_cur query, uint64_t cipher_len, uint32_t parts);
/* Before s3s_mpu_nonces_start/_defer with parts 0, for an object in the
 * parts3 layout: its part count is looked up in the catalog first, by the
 * id of its data key `dek`. */
S3S_RESULT s3s_mpu_nonces_catalog(struct s3s_req *r, const uint8_t *dek);
/* The catalog's answer (upload_reg.c): err an S3S_ERR_* (S3S_OK), whether
 * the object has a row, and the row: the object must have its size, part
 * count and first part. */
struct s3s_keystore_object;
void s3s_mpu_catalog_found(struct s3s_req *r, int32_t err, bool found,
                           const struct s3s_keystore_object *o);
/* CompleteMultipartUpload of a parts3 upload: the catalog's row is written
 * (err S3S_OK) or not; the body goes on to the backend or fails. */
void s3s_mpu_catalog_recorded(struct s3s_req *r, int32_t err);
void s3s_mpu_nonces_run(struct s3s_req *r);
/* Takes a request off its worker's deferred list (it is going away). */
void s3s_worker_undefer(struct s3s_req *r);
void s3s_mpu_nonce_read(struct s3s_req *r, CURLcode rc);
/* The layout of the object a GET reads, if this worker learnt it lately:
 * tells `dec` and returns true. */
bool s3s_mpu_layout_cached(struct s3s_req *r, struct s3s_sse_dec *dec, uint32_t parts);
/* The backend path of the request's object (path-style, canonical). */
S3S_RESULT s3s_upstream_object_path(struct s3s_req *r, struct s3s_buf *path);
void s3s_mpu_complete_check(struct s3s_req *r);
/* (conn.c) A stage that waited in on_body (stage.h) has decided: err
 * S3S_OK lets the body's last byte go to the backend, anything else fails
 * the body with that error. */
void s3s_req_body_checked(struct s3s_req *r, int32_t err);
/* (conn.c) Keeps a copy of the request's body in r->body_copy, up to `max`
 * bytes: a larger body fails with `too_big`. From a stage's on_head. */
S3S_RESULT s3s_req_keep_body(struct s3s_req *r, size_t max, enum s3s_error too_big);
/* DeleteObjects' keys (listing.c), each passed to `fn` decoded, with
 * whether it names a version; stops at the first error fn returns.
 * MalformedXML for anything but a Delete document of 1 to 1000 Object
 * entries with one Key each (and at most one VersionId), without a DTD. */
typedef s3s_result (*s3s_xml_key_fn)(void *ctx, struct s3s_cur key, bool version);
/* An AccessControlPolicy document granting nothing but FULL_CONTROL to its
 * own owner (the bucket-owner-full-control ACL in XML): true. */
bool s3s_xml_acl_owner_only(struct s3s_cur xml);
S3S_RESULT s3s_xml_delete_keys(struct s3s_cur xml, s3s_xml_key_fn fn, void *ctx);
/* XML (listing.c): a ListParts page's part sizes (sizes[number], numbers
 * 1..10000), whether more pages follow and after which part; the part
 * numbers of a CompleteMultipartUpload body, in order. */
S3S_RESULT s3s_xml_parts_page(struct s3s_cur xml, uint64_t *sizes, bool *truncated,
                              uint32_t *next_marker);
/* A GetObjectTagging document as an x-amz-tagging value ("k=v&k2=v2"). */
S3S_RESULT s3s_xml_tagging_header(struct s3s_cur xml, struct s3s_buf *out);
S3S_RESULT s3s_xml_complete_parts(struct s3s_cur xml, uint32_t *numbers, size_t cap,
                                  size_t *n, char etag[48]);
/* CompleteMultipartUpload's answer with `etag` where the backend left the
 * ETag empty (Ceph RGW does). */
S3S_RESULT s3s_listing_complete_etag(struct s3s_cur xml, const char *etag, struct s3s_buf *out);
/* The result document of a streamed copy (CopyObjectResult/CopyPartResult). */
S3S_RESULT s3s_copy_result(const struct s3s_req *r, struct s3s_buf *out);
/* Upload bytes produced by s3seal itself (a streamed copy): counted against
 * content_length, encrypted if the request is, queued for the backend. */
S3S_RESULT s3s_req_queue_upload(struct s3s_req *r, struct s3s_cur in);
/* Does the upload buffer have room for `n` more bytes (and what the
 * decryptor and encryptor may add to them)? */
bool s3s_req_upload_has_room(const struct s3s_req *r, size_t n);
/* Encryptors for a streamed copy's destination (sse_put.c): a new object's
 * (a fresh data key, metadata in sse_headers) or a part of the encrypted
 * upload the request names; content_length must be set. */
S3S_RESULT s3s_sse_new_object_encryptor(struct s3s_req *r);
S3S_RESULT s3s_sse_part_encryptor(struct s3s_req *r);
/* SSE-S3: wraps the data key dek under the current root key for the
 * request's bucket and key, into meta (which becomes SSE-S3 metadata), and
 * says so in the answer. */
S3S_RESULT s3s_sse_wrap_root(struct s3s_req *r, struct s3s_sse_meta *meta, const uint8_t *dek);
/* Opens an encrypted object's data key for a given bucket and key. */
S3S_RESULT s3s_sse_open_dek_for(struct s3s_req *r, const struct s3s_sse_meta *meta,
                                struct s3s_cur bucket, struct s3s_cur key,
                                struct s3s_secret *dek);

/* SSE-KMS (sse_kms.c). The writes whose object's encryption the request
 * chooses (PutObject, CreateMultipartUpload, CopyObject); what they ask for
 * (into r->sse_want); after authentication, the wait for the account's
 * default key when it does not exist yet (*waiting: resumed by
 * s3s_req_headers_resume). */
bool s3s_sse_is_new_object_write(const struct s3s_req *r);
S3S_RESULT s3s_sse_want_parse(struct s3s_req *r);
void s3s_sse_want_clean_up(struct s3s_sse_want *w);
S3S_RESULT s3s_sse_kms_accept(struct s3s_req *r, bool *waiting);
/* The request's caller (principal, account, access key, address, id). */
void s3s_kms_caller_of(const struct s3s_req *r, struct s3s_kms_caller *c, char account[13]);
/* A new object's data key (random, into dek) wrapped by the KMS key the
 * request asks for, into meta (kind, key ARN and version, context, wrapped
 * key, bucket key); s3s_sse_kms_wrap wraps a given data key (a copy's) for
 * bucket/key, audited as `operation`. Both set the answer's SSE headers. */
S3S_RESULT s3s_sse_kms_new_dek(struct s3s_req *r, struct s3s_sse_meta *meta, uint8_t dek[32]);
S3S_RESULT s3s_sse_kms_wrap(struct s3s_req *r, struct s3s_sse_meta *meta, struct s3s_cur bucket,
                            struct s3s_cur key, const uint8_t dek[32], const char *operation);
/* An SSE-KMS object's data key, unwrapped for the caller (kms:Decrypt). */
S3S_RESULT s3s_sse_kms_open_dek(struct s3s_req *r, const struct s3s_sse_meta *meta,
                                struct s3s_cur bucket, struct s3s_cur key,
                                struct s3s_secret *dek);
/* UploadPart and Complete of an SSE-KMS upload: the caller may still use
 * its key (state and kms:Decrypt); sets the answer's SSE headers. */
S3S_RESULT s3s_sse_kms_check_upload(struct s3s_req *r, const struct s3s_sse_meta *upload);
/* The answer's SSE headers for an object read (GET, HEAD, a copy's source). */
S3S_RESULT s3s_sse_answer_from_meta(struct s3s_req *r, const struct s3s_sse_meta *meta);
/* Appends the SSE headers of the answer (x-amz-server-side-encryption and,
 * for SSE-KMS, the key ARN, context and bucket key headers). */
S3S_RESULT s3s_sse_response_headers(const struct s3s_req *r, struct s3s_buf *head);

/* --------------------------------------------------------------- upstream */

/* Builds and starts the backend transfer for an authenticated request. */
S3S_RESULT s3s_upstream_start(struct s3s_req *r);
/* Starts the copy that stores a trailer checksum (see hold_head). */
S3S_RESULT s3s_upstream_store_checksum(struct s3s_req *r);
/* Sends the held response head to the client. */
S3S_RESULT s3s_upstream_send_head(struct s3s_req *r);
/* Removes the transfer from the multi handle and frees its resources. Safe to
 * call more than once. */
void s3s_upstream_abort(struct s3s_req *r);
/* More upload data is available (or the body is verified): unpause sending. */
void s3s_upstream_kick_send(struct s3s_req *r);
/* The client can take more response bytes: unpause receiving. */
void s3s_upstream_kick_recv(struct s3s_req *r);

/* -------------------------------------------------------------------- s3 */

/* Extracts bucket and key from Host and path (path- and virtual-hosted-style). */
S3S_RESULT s3s_s3_route(const struct s3s_config *cfg, struct s3s_req *r);
/* The header value of the first header named `name` (case-insensitive). */
bool s3s_req_header(const struct s3s_req *r, const char *name, struct s3s_cur *value);
/* True for headers that are never forwarded in either direction. */
bool s3s_s3_is_hop_by_hop(struct s3s_cur name);
/* Appends the XML document that fill writes between libxml2's start and end
 * of document (it returns false on a writer error). */
typedef bool (*s3s_xml_fill_fn)(xmlTextWriterPtr w, const void *ctx);
S3S_RESULT s3s_xml_write(struct s3s_buf *out, s3s_xml_fill_fn fill, const void *ctx);
/* Appends an S3 XML error document. `extra` is a NULL-terminated list of
 * element name / value pairs (AWS adds StringToSign, CanonicalRequest...). */
S3S_RESULT s3s_xml_error(struct s3s_buf *out, const char *code, const char *message,
                         const char *resource, const char *request_id,
                         const char *const *extra);
/* Percent-encodes bytes for a log field (no spaces or control bytes). */
S3S_RESULT s3s_log_escape(struct s3s_cur in, struct s3s_buf *out);

/* PutObject: r->op says so (a PUT of a key with no sub-resource and no
 * copy source, the query decoded). */
bool s3s_s3_is_put_object(const struct s3s_req *r);
/* What the operation table reads of a routed request (s3_op.h). */
void s3s_s3_op_input_of(const struct s3s_req *r, struct s3s_s3_op_input *in);
/* Does the query hold the parameter `name` (its name decoded)? */
bool s3s_s3_query_has(struct s3s_cur q, const char *name);
/* The raw (still percent-encoded) value of the last `name=VALUE` of the
 * query, its name decoded; false if there is none. */
bool s3s_s3_query_value(struct s3s_cur q, const char *name, struct s3s_cur *value);
/* The reason phrase of an HTTP status (RFC 9110). */
const char *s3s_http_reason(int status);

/* The loop's monotonic clock, in nanoseconds. */
static inline uint64_t s3s_now_ns(void) { return uv_hrtime(); }

#endif /* S3S_PROXY_H */
