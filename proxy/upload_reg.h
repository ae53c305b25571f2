/*
 * upload_reg.h - the upload registry: encrypted multipart uploads recorded
 * in the keystore by bucket, key and backend upload id, with the suffix of
 * the id s3seal gave the client (sse_mpu.c). s3seal's ids carry everything
 * needed to encrypt a part, but ListMultipartUploads returns the backend's
 * ids, and clients resume an upload they found there (minio-js does after a
 * failed upload). With the registry, shared by every s3seal on the same
 * keystore:
 * - CreateMultipartUpload of an encrypted upload records the upload before
 *   its answer leaves (if the record cannot be written, the answer still
 *   gives s3seal's id, which is self-contained, and a warning is logged:
 *   only a later resume by backend id would then be refused);
 * - ListMultipartUploads lists s3seal's ids for the uploads it knows;
 * - a request naming a known upload by its backend id is served as if it
 *   named s3seal's id (its parts are encrypted); an unknown backend id is
 *   treated as before (refused for writes in buckets that encrypt);
 * - CompleteMultipartUpload and AbortMultipartUpload forget the upload when
 *   they succeed (best effort); rows older than
 *   S3S_KEYSTORE_UPLOAD_MAX_AGE_S are pruned now and then.
 * The same handle serves the catalog of parts3 objects' part counts.
 * Every keystore access runs on the libuv thread pool, never on a loop.
 */
#ifndef S3S_PROXY_UPLOAD_REG_H
#define S3S_PROXY_UPLOAD_REG_H

#include "common/common.h"

struct s3s_worker;
struct s3s_req;
/* One request's pending registry work (upload_reg.c). */
struct s3s_upload_reg_op;

/* How often rows older than the maximum age are pruned (per process). */
#define S3S_UPLOAD_REG_PRUNE_EVERY_S 3600

/* Worker start-up and clean-up (blocking; the first worker opens the
 * process's keystore handle, the last closes it). Without a configured
 * keystore there is no registry and every call below does nothing. */
S3S_RESULT s3s_upload_reg_attach(struct s3s_worker *w);
void s3s_upload_reg_detach(struct s3s_worker *w);

/*
 * After authentication, before s3s_sse_put_setup: marks a ListMultipartUploads
 * for the rewrite of its ids, and starts the lookup of a backend upload id a
 * request names (*waiting: the caller pauses the request; the lookup's
 * completion calls s3s_req_headers_resume, r->mpu_reg_id then holding
 * s3seal's id if the registry knows the upload).
 */
S3S_RESULT s3s_upload_reg_accept(struct s3s_req *r, bool *waiting);
/* The backend's answer to rewrite is in (r->listing): for CreateMultipartUpload
 * and ListMultipartUploads, starts the registry's part on the thread pool
 * and returns true (s3s_req_upstream_finished is called again when it is
 * done); false when there is nothing (more) to do. */
bool s3s_upload_reg_defer(struct s3s_req *r);
/* (sse_mpu.c) CreateMultipartUpload of an encrypted upload, once the
 * backend's upload id is known: fills in the MAC that binds r->mpu_suffix
 * to it (the suffix is bound already: nothing to do). s3s_upload_reg_defer
 * calls it before anything records or answers the id. */
S3S_RESULT s3s_mpu_bind(struct s3s_req *r, struct s3s_cur backend);
/* The request succeeded: after CompleteMultipartUpload or
 * AbortMultipartUpload of an encrypted upload, removes its row. */
void s3s_upload_reg_forget(struct s3s_req *r);
/* The catalog (keystore.h, "the catalog"), on the same handle and thread
 * pool: writes the row of the parts3 object a Complete is about to create
 * (then calls s3s_mpu_catalog_recorded), or looks an object's row up (then
 * s3s_mpu_catalog_found), with S3S_OK, S3S_ERR_KEYSTORE_UNAVAILABLE or
 * S3S_ERR_KEYSTORE. S3S_ERR_KEYSTORE without a keystore. */
S3S_RESULT s3s_catalog_record(struct s3s_req *r, const uint8_t *object_id, uint32_t parts,
                              uint32_t first_part, uint64_t size);
S3S_RESULT s3s_catalog_lookup(struct s3s_req *r, const uint8_t *object_id);
/* The catalog's entries (keystore.h), for the request's bucket and key, on
 * the same handle and pool; `done` runs on the loop afterwards (not if the
 * request went away), with S3S_OK, S3S_ERR_KEYSTORE_UNAVAILABLE or
 * S3S_ERR_KEYSTORE, and for a lookup whether an entry was found.
 * - s3s_entry_record writes the entry of the object the backend stored
 *   with ETag `etag` (unquoted);
 * - s3s_entry_lookup reads one (of any object: bucket and key given);
 * - s3s_entry_listing rewrites the listing page in r->listing from the
 *   entries of its objects (s3s_listing_catalog), in place when it
 *   succeeds. */
struct s3s_keystore_entry;
typedef void s3s_entry_done_fn(struct s3s_req *r, int32_t err, bool found,
                               const struct s3s_keystore_entry *e);
S3S_RESULT s3s_entry_record(struct s3s_req *r, struct s3s_cur etag,
                            const struct s3s_keystore_entry *e, s3s_entry_done_fn *done);
S3S_RESULT s3s_entry_lookup(struct s3s_req *r, struct s3s_cur bucket, struct s3s_cur key,
                            struct s3s_cur etag, s3s_entry_done_fn *done);
S3S_RESULT s3s_entry_listing(struct s3s_req *r, s3s_entry_done_fn *done);
/* The request is over: work still on the thread pool finishes without it. */
void s3s_upload_reg_release(struct s3s_req *r);

#endif
