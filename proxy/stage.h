/*
 * stage.h - the request as a chain of stages: the core knows hooks, never
 * features.
 *
 * Every feature that acts on a request (authorization, the bucket APIs
 * s3seal answers itself, the upload registry, SSE-KMS keys, encryption on
 * the way in and out, copies, part probes...) is a stage: one struct of
 * hooks. The core (conn.c, upstream.c) runs the hooks at fixed points of a
 * request's life, in the order of one table (stages.c, the only file that
 * names every stage), and never names a feature or tests a feature's state.
 *
 * The points, in a request's order:
 *
 *   on_preauth  The head is parsed, routed and classified (r->op, r->bucket,
 *               r->key) but NOT authenticated: r->auth is empty. Only for
 *               requests S3 itself answers without a signature (a CORS
 *               preflight). A stage may
 *                 - go on: return success, *taken untouched (the core then
 *                   authenticates the request as any other);
 *                 - answer: append header lines ("Name: value\r\n") to
 *                   r->resp_head, set *status (a 2xx) and *taken; the core
 *                   sends that answer, without a body, and the request
 *                   ends there;
 *                 - refuse: return an error; the core answers it.
 *               Either way a taken or refused request never reaches the
 *               backend, authentication or on_head and the hooks after it
 *               (but on_release; and on_response_head for a refusal's
 *               answer): nothing unauthenticated goes further.
 *               Runs in table order, synchronously; the first that takes
 *               or refuses wins.
 *
 *   on_head     The head is parsed, authenticated and classified (r->op,
 *               r->auth): the stage decides whether it acts on the request
 *               and prepares what it needs. It may
 *                 - go on: return success, *wait untouched;
 *                 - refuse: return an error; the core answers it (an S3 XML
 *                   error; no later stage runs);
 *                 - wait for work that ends later (the thread pool, the
 *                   keystore): set *wait and return success. The parser
 *                   stays paused, no body byte is read; the stage calls
 *                   s3s_req_headers_resume(r) when the work is done, and the
 *                   chain goes on with the next stage. Work that failed sets
 *                   r->accept_error before the resume: the core answers it.
 *               Runs in table order.
 *
 *   on_start    The body pipeline is set up (payload checks, decoding) and
 *               the backend exchange is due. A stage that serves the request
 *               another way (answers it itself, or reads something from the
 *               backend first) starts that and sets *taken; the first that
 *               does wins. Otherwise the core starts the request's own
 *               backend transfer (s3s_upstream_start). Runs in table order.
 *
 *   on_body     The request's body is in and has passed the core's checks
 *               (length, checksums, signatures), and its last byte is
 *               still held from the backend: a stage may refuse it (return
 *               an error: the backend never gets the whole body, the client
 *               gets the error), or decide later (set *wait: work that ends
 *               later, such as reading the parts a Complete names; it then
 *               calls s3s_req_body_checked). A stage that needs the bytes
 *               asks for a copy in on_head or on_start (s3s_req_keep_body:
 *               r->body_copy). Runs in table order until one refuses or
 *               waits.
 *
 *   on_answer   The backend's answer to an exchange of the request is in
 *               (r->upstream_result, r->up_status): a stage whose step it
 *               was (a probe of a copy's source or of a part) or that must
 *               act before the client is answered (the upload registry's
 *               record) takes over and sets *taken; it then calls
 *               s3s_req_upstream_finished again when its work is done, or
 *               answers the client (s3s_req_send_error). An error returned
 *               is answered by the core. Runs in table order, after the
 *               core has refused a body that failed its checks; the first
 *               stage that takes over wins.
 *
 *   on_reply    The backend's response head is in (r->up_status, r->resp_etag,
 *               r->resp_meta...), and the client's is not composed yet: a
 *               stage that must look something up to compose it (the
 *               catalog's plaintext ETag of an object, or its record of a
 *               new object, which must exist before the client hears of
 *               it) sets *wait and calls s3s_req_reply_resume(r) when its
 *               work is done. Meanwhile the backend's body is held (the
 *               transfer is paused; an answer without a body may end, and
 *               is finished after the resume). Work that failed sets
 *               r->deferred_error before the resume: the client gets that
 *               error instead of the answer. Runs in reverse table order
 *               (the response's path) until one waits; an error returned
 *               is answered like a deferred one.
 *   on_response_head
 *               The core is writing the head of an answer to the client:
 *               a success (the backend's, or a stage's own answer) or an
 *               S3 error, whatever the point the request reached (it may
 *               not be authenticated: an error answer can come before).
 *               A stage may append header lines ("Name: value\r\n") to
 *               `head`, which already holds the status line's headers but
 *               not the blank line that ends them. Not for on_preauth's own
 *               answers. An error returned fails a success answer (the
 *               connection is closed) and is only logged for an error
 *               answer. Runs in table order, once per answer sent.
 *
 *   on_release  The request no longer wants what the stage has pending: it
 *               was answered (an error, or the response is complete) or is
 *               going away. Work still running on the thread pool must not
 *               touch the request afterwards. Called once the backend's
 *               answer is in as well, so a stage may act on the outcome
 *               (r->up_status). May run more than once; must be idempotent.
 *               Runs in reverse table order.
 *
 * Hooks are optional (NULL). Errors are S3 error codes (errors.def); a
 * message for the client may be left in r->err_detail.
 *
 * Buffers: a stage never keeps a cursor into the request's header buffer
 * past on_head unless it is the request's own (r->headers, r->query...),
 * which live as long as the request.
 */
#ifndef S3S_STAGE_H
#define S3S_STAGE_H

#include <stdbool.h>

#include "common/common.h"

struct s3s_req;
struct s3s_buf;

struct s3s_stage {
    const char *name; /* for logs */
    S3S_RESULT (*on_preauth)(struct s3s_req *r, int *status, bool *taken);
    S3S_RESULT (*on_head)(struct s3s_req *r, bool *wait);
    S3S_RESULT (*on_start)(struct s3s_req *r, bool *taken);
    S3S_RESULT (*on_body)(struct s3s_req *r, bool *wait);
    S3S_RESULT (*on_answer)(struct s3s_req *r, bool *taken);
    S3S_RESULT (*on_reply)(struct s3s_req *r, bool *wait);
    S3S_RESULT (*on_response_head)(struct s3s_req *r, struct s3s_buf *head);
    void (*on_release)(struct s3s_req *r);
};

/* The driver (stages.c). s3s_stages_head runs on_head from the stage after
 * the one that last waited (r->stage_next), until one waits (*wait) or
 * refuses (an error), or all went on. */
S3S_RESULT s3s_stages_head(struct s3s_req *r, bool *wait);
S3S_RESULT s3s_stages_preauth(struct s3s_req *r, int *status, bool *taken);
S3S_RESULT s3s_stages_start(struct s3s_req *r, bool *taken);
S3S_RESULT s3s_stages_body(struct s3s_req *r, bool *wait);
S3S_RESULT s3s_stages_answer(struct s3s_req *r, bool *taken);
/* on_reply, from the stage before the one that last waited (r->reply_next
 * counts the stages done, from the end of the table). */
S3S_RESULT s3s_stages_reply(struct s3s_req *r, bool *wait);
S3S_RESULT s3s_stages_response_head(struct s3s_req *r, struct s3s_buf *head);
void s3s_stages_release(struct s3s_req *r);

#endif /* S3S_STAGE_H */
