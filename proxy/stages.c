/*
 * stages.c - the one table of a request's stages, in order, and the driver
 * that runs their hooks (stage.h). This is the only file that names every
 * stage; each stage is defined beside its feature.
 */
#include "proxy/proxy.h"
#include "proxy/stage.h"

extern const struct s3s_stage s3s_stage_authz;       /* authz.c: who may do what */
extern const struct s3s_stage s3s_stage_bucket_enc;  /* bucket_enc.c: the bucket APIs s3seal answers */
extern const struct s3s_stage s3s_stage_upload_reg;  /* upload_reg.c: uploads named by backend ids */
extern const struct s3s_stage s3s_stage_sse_kms;     /* sse_kms.c: the account's default KMS key */
extern const struct s3s_stage s3s_stage_sse_put;     /* sse_put.c: encryption of what is written */
extern const struct s3s_stage s3s_stage_sse_copy;    /* sse_copy.c: copies, probed first */
extern const struct s3s_stage s3s_stage_sse_get;     /* sse_get.c: decryption of what is read */
extern const struct s3s_stage s3s_stage_catalog;     /* catalog.c: plaintext sizes and ETags */
extern const struct s3s_stage s3s_stage_cors;        /* cors_stage.c: preflights, CORS headers */

/* Request order. Authorization comes first: no stage acts for a caller who
 * may not make the request (CORS acts before it only on preflights, which
 * S3 answers unauthenticated, and on response heads). */
static const struct s3s_stage *const s_stages[] = {
    &s3s_stage_authz,   &s3s_stage_bucket_enc, &s3s_stage_upload_reg, &s3s_stage_sse_kms,
    &s3s_stage_sse_put, &s3s_stage_sse_copy,   &s3s_stage_sse_get,    &s3s_stage_catalog,
    &s3s_stage_cors,
};
#define S_COUNT (sizeof(s_stages) / sizeof(s_stages[0]))
_Static_assert(S_COUNT < 256, "r->stage_next is a byte");

s3s_result s3s_stages_head(struct s3s_req *r, bool *wait)
{
    *wait = false;
    while (r->stage_next < S_COUNT) {
        const struct s3s_stage *s = s_stages[r->stage_next++];
        if (s->on_head) {
            S3S_GUARD(s->on_head(r, wait));
            if (*wait) {
                return s3s_ok();
            }
        }
    }
    return s3s_ok();
}

s3s_result s3s_stages_preauth(struct s3s_req *r, int *status, bool *taken)
{
    *taken = false;
    for (size_t i = 0; i < S_COUNT && !*taken; i++) {
        if (s_stages[i]->on_preauth) {
            S3S_GUARD(s_stages[i]->on_preauth(r, status, taken));
        }
    }
    return s3s_ok();
}

s3s_result s3s_stages_start(struct s3s_req *r, bool *taken)
{
    *taken = false;
    for (size_t i = 0; i < S_COUNT && !*taken; i++) {
        if (s_stages[i]->on_start) {
            S3S_GUARD(s_stages[i]->on_start(r, taken));
        }
    }
    return s3s_ok();
}

s3s_result s3s_stages_body(struct s3s_req *r, bool *wait)
{
    *wait = false;
    for (size_t i = 0; i < S_COUNT && !*wait; i++) {
        if (s_stages[i]->on_body) {
            S3S_GUARD(s_stages[i]->on_body(r, wait));
        }
    }
    return s3s_ok();
}

s3s_result s3s_stages_answer(struct s3s_req *r, bool *taken)
{
    *taken = false;
    for (size_t i = 0; i < S_COUNT && !*taken; i++) {
        if (s_stages[i]->on_answer) {
            S3S_GUARD(s_stages[i]->on_answer(r, taken));
        }
    }
    return s3s_ok();
}

s3s_result s3s_stages_reply(struct s3s_req *r, bool *wait)
{
    *wait = false;
    while (r->reply_next < S_COUNT) {
        const struct s3s_stage *s = s_stages[S_COUNT - 1 - r->reply_next++];
        if (s->on_reply) {
            S3S_GUARD(s->on_reply(r, wait));
            if (*wait) {
                return s3s_ok();
            }
        }
    }
    return s3s_ok();
}

s3s_result s3s_stages_response_head(struct s3s_req *r, struct s3s_buf *head)
{
    for (size_t i = 0; i < S_COUNT; i++) {
        if (s_stages[i]->on_response_head) {
            S3S_GUARD(s_stages[i]->on_response_head(r, head));
        }
    }
    return s3s_ok();
}

void s3s_stages_release(struct s3s_req *r)
{
    for (size_t i = S_COUNT; i > 0; i--) {
        if (s_stages[i - 1]->on_release) {
            s_stages[i - 1]->on_release(r);
        }
    }
}
