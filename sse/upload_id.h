/*
 * upload_id.h - the UploadId s3seal gives the client of an encrypted
 * multipart upload: the backend's id with s3seal's suffix appended
 * (sse/FORMAT.md, "The multipart layout"):
 *
 *   <backend>~s3seal3~<root version>~<aead>~<wrapped key, hex>~<mac, hex>
 *   <backend>~s3seal3-kms~<root version>~<aead>~<wrapped key, hex>~<KMS key id>~<0|1>~<mac, hex>
 *
 * (the parts3 layout; s3seal2 and s3seal2-kms, the same fields, are uploads
 * begun in the parts2 layout)
 * and, from the first multipart layout, the same without the MAC and with
 * the marks s3seal and s3seal-kms. The MAC binds the suffix to the bucket,
 * the object key and the backend's upload id, under a key derived from the
 * root key of the suffix's version, so a suffix pasted onto another upload
 * is refused.
 *
 * Pure logic: no I/O, no event loop.
 */
#ifndef S3S_SSE_UPLOAD_ID_H
#define S3S_SSE_UPLOAD_ID_H

#include "sse/sse.h"

#define S3S_SSE_UPLOAD_MAC_LEN 16
#define S3S_SSE_UPLOAD_KMS_ID_LEN 36

struct s3s_sse_upload_id {
    bool ours;          /* false: a backend id as it is (no suffix) */
    bool part_keys;     /* s3seal2, s3seal3: per-part keys, and a MAC */
    bool catalog;       /* s3seal3: the parts3 layout (part count in the catalog) */
    bool kms;           /* an SSE-KMS upload's suffix */
    struct s3s_cur backend; /* the backend's id (the whole id when not ours) */
    struct s3s_cur bound;   /* what the MAC covers: the suffix without "~<mac>" */
    uint32_t root_version;
    enum s3s_sse_aead aead;
    struct s3s_cur wrapped_hex;
    char kms_key_id[S3S_SSE_UPLOAD_KMS_ID_LEN + 1];
    bool bucket_key;
    uint8_t mac[S3S_SSE_UPLOAD_MAC_LEN];
};

/* Splits an UploadId (percent-decoded). An id without s3seal's mark is
 * not ours (out->backend is all of it); one with a mark whose fields do
 * not parse is S3S_ERR_NO_SUCH_UPLOAD. The curs point into `id`. */
S3S_RESULT s3s_sse_upload_id_parse(struct s3s_cur id, struct s3s_sse_upload_id *out);

/* The MAC of a suffix (`bound`, without the MAC field) for an upload of
 * `bucket`/`key` whose backend id is `backend`, under root key `root`. */
S3S_RESULT s3s_sse_upload_id_mac(const uint8_t root[S3S_SSE_KEY_LEN], struct s3s_cur bucket,
                                 struct s3s_cur key, struct s3s_cur backend, struct s3s_cur bound,
                                 uint8_t mac[S3S_SSE_UPLOAD_MAC_LEN]);

/* True if `mac` is the MAC of the parsed id (constant-time compare). */
bool s3s_sse_upload_id_verify(const struct s3s_sse_upload_id *id,
                              const uint8_t root[S3S_SSE_KEY_LEN], struct s3s_cur bucket,
                              struct s3s_cur key);

#endif
