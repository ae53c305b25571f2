/*
 * kms_view.c - see kms_view.h. The keystore file is read at start-up and
 * then only on the thread pool; requests use the in-memory snapshot.
 */
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "proxy/config.h"
#include "proxy/kms_view.h"
#include "proxy/metrics.h"

/* One cached unwrapped key: the digest of what it was unwrapped for, and
 * until when it may be reused. Its 32 bytes live in v->cache_keys. */
struct s3s_kms_dek_entry {
    uint8_t digest[32];
    uint64_t expires_ms; /* 0: empty */
};

/* A bucket key made lately, for new objects of one bucket and context. */
struct s3s_kms_bucket_key {
    uint8_t digest[32]; /* of key ARN, version and aad */
    uint64_t expires_ms; /* 0: empty */
    uint8_t wrapped[128];
    size_t wrapped_len;
};

/* A request waiting for its account's default key. */
struct s3s_kms_default_wait {
    struct s3s_kms_default_wait *next;
    uint64_t job;     /* served by the run of this number, or a later one */
    char account[13]; /* "" : only a fresh snapshot is awaited */
    void (*done)(void *arg);
    void *arg;
};

/* What one run on the thread pool does, decided on the loop. */
struct s_job {
    struct s3s_kms_view *v;
    uint64_t number;
    bool maintain;
    char (*accounts)[13]; /* default keys to create */
    size_t n_accounts;
    uint64_t known_generation;
};

static uint64_t s_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ------------------------------------------------------ snapshot handling */

static void s_policies_free(struct s3s_policy **p, size_t n)
{
    if (!p) {
        return;
    }
    for (size_t i = 0; i < n; i++) {
        s3s_policy_free(p[i]);
    }
    s3s_free(&p);
}

/* Parses every key's policy. A stored policy that no longer parses (it was
 * validated when it was put) leaves the key usable by nobody: a NULL here
 * would mean the default policy, so it is an error for the whole load. */
static s3s_result s_parse_policies(const struct s3s_kms_snapshot *s, struct s3s_policy ***out)
{
    *out = NULL;
    struct s3s_policy **p = s3s_calloc(s->n_keys ? s->n_keys : 1, sizeof(*p));
    S3S_ENSURE(p != NULL, S3S_ERR_NOMEM);
    for (size_t i = 0; i < s->n_keys; i++) {
        const char *text = s->keys[i].meta.policy;
        if (!text) {
            continue;
        }
        char why[256] = "";
        s3s_result r = s3s_policy_parse(s3s_cur_from_str(text), &p[i], why, sizeof(why));
        if (s3s_failed(r)) {
            S3S_LOGE("kms", "key %s: its stored policy does not parse: %s", s->keys[i].meta.arn,
                     why);
            s_policies_free(p, s->n_keys);
            return r;
        }
    }
    *out = p;
    return s3s_ok();
}

static s3s_result s_load(struct s3s_keystore *ks, struct s3s_kms_snapshot **snap,
                         struct s3s_policy ***policies)
{
    S3S_GUARD(s3s_kms_snapshot_load(ks, true, snap));
    s3s_result r = s_parse_policies(*snap, policies);
    if (s3s_failed(r)) {
        s3s_kms_snapshot_free(*snap);
        *snap = NULL;
    }
    return r;
}

/* The audit record of what the keystore's maintenance did to a key on its
 * own (thread pool; the audit log has its own lock). */
#define S_CREATED UINT32_MAX /* s_audit_event: the default key was made */

static void s_audit_event(void *ctx, const char *arn, uint32_t version)
{
    struct s3s_kms_view *v = ctx;
    if (!v->audit) {
        return;
    }
    struct s3s_audit_record rec = {
        .operation = version == S_CREATED ? "CreateKey" : version ? "RotateKey" : "DeleteKey",
        .result = "Success",
        .principal = "s3seal",
        .key_arn = arn,
        .key_version = version == S_CREATED ? 1 : version,
        .detail = version == S_CREATED ? "the account's default key (alias/aws/s3), on first use"
                  : version ? "automatic rotation: a new key material version"
                            : "the deletion date passed: the key and its material are destroyed",
    };
    /* Done already: a record that cannot be written is logged loudly. */
    if (s3s_failed(s3s_audit_append(v->audit, &rec))) {
        s3s_metrics_inc(S3S_METRIC_AUDIT_WRITE_FAILURES);
        S3S_LOGE("kms", "cannot write the audit record of %s of %s", rec.operation, arn);
    }
}

static void s_job_work(uv_work_t *w)
{
    struct s_job *job = w->data;
    struct s3s_kms_view *v = job->v;
    const struct s3s_config *cfg = v->cfg;
    int64_t now = (int64_t)time(NULL);
    s3s_result r = s3s_ok();
    if (job->maintain) {
        size_t rotated = 0, destroyed = 0;
        r = s3s_kms_rotate_due(v->ks, now, &rotated, s_audit_event, v);
        if (s3s_is_ok(r)) {
            r = s3s_kms_sweep(v->ks, now, &destroyed, s_audit_event, v);
        }
        if (rotated || destroyed) {
            S3S_LOGI("kms", "%zu key(s) rotated, %zu key(s) past their deletion date destroyed",
                     rotated, destroyed);
        }
    }
    for (size_t i = 0; s3s_is_ok(r) && i < job->n_accounts; i++) {
        struct s3s_kms_key k = {0};
        bool created = false;
        r = s3s_kms_default_key(v->ks, job->accounts[i], cfg->region,
                                (int64_t)cfg->keystore.kms_rotation_days * 86400, &k, &created);
        if (s3s_is_ok(r)) {
            S3S_LOGI("kms", "default key %s (alias aws/s3) of account %s is ready", k.arn,
                     job->accounts[i]);
        }
        if (s3s_is_ok(r) && created) {
            s_audit_event(v, k.arn, S_CREATED);
        }
        s3s_kms_key_clean_up(&k);
    }
    uint64_t gen = 0;
    if (s3s_is_ok(r)) {
        r = s3s_kms_generation(v->ks, &gen);
    }
    if (s3s_is_ok(r) && gen != job->known_generation) {
        r = s_load(v->ks, &v->fresh, &v->fresh_policies);
    }
    v->fresh_error = r.code;
}

static void s_start_job(struct s3s_kms_view *v);

static void s_job_done(uv_work_t *w, int status)
{
    struct s_job *job = w->data;
    struct s3s_kms_view *v = job->v;
    v->work_busy = false;
    if (status == 0 && v->fresh_error == S3S_OK && v->fresh) {
        size_t n = v->snap ? v->snap->n_keys : 0;
        s3s_kms_snapshot_free(v->snap);
        s_policies_free(v->policies, n);
        v->snap = v->fresh;
        v->policies = v->fresh_policies;
        v->fresh = NULL;
        v->fresh_policies = NULL;
    } else if (v->fresh_error != S3S_OK) {
        S3S_LOGW("kms", "KMS key refresh failed: %s", s3s_strerror(v->fresh_error));
    }
    if (v->fresh) {
        s_policies_free(v->fresh_policies, v->fresh->n_keys);
        s3s_kms_snapshot_free(v->fresh);
        v->fresh = NULL;
        v->fresh_policies = NULL;
    }
    /* The requests that waited for this run go on: the snapshot has their
     * key now, or resolving it fails with NotFound. */
    struct s3s_kms_default_wait **pp = &v->waits;
    while (*pp) {
        struct s3s_kms_default_wait *x = *pp;
        if (x->job > job->number) {
            pp = &x->next;
            continue;
        }
        *pp = x->next;
        x->done(x->arg);
        s3s_free(&x);
    }
    s3s_free(&job->accounts);
    s3s_free(&job);
    if ((v->waits || v->again) && !v->closing) {
        v->again = false;
        s_start_job(v); /* accounts that came in meanwhile, or a change announced */
    }
}

static void s_start_job(struct s3s_kms_view *v)
{
    if (v->work_busy || v->closing || !v->ks) {
        return;
    }
    struct s_job *job = s3s_calloc(1, sizeof(*job));
    if (!job) {
        return;
    }
    job->v = v;
    job->number = v->next_job++;
    /* Rotation and deletion dates are days apart: a minute's delay is
     * nothing, and the keystore's write lock is not taken every refresh. */
    uint64_t now = s_now_ms();
    job->maintain = v->maintain && (!v->maintained_ms || now - v->maintained_ms >= 60000);
    if (job->maintain) {
        v->maintained_ms = now;
    }
    job->known_generation = v->snap ? v->snap->generation : UINT64_MAX;
    size_t n = 0;
    for (struct s3s_kms_default_wait *x = v->waits; x; x = x->next) {
        n++;
    }
    if (n) {
        job->accounts = s3s_calloc(n, sizeof(*job->accounts));
        if (!job->accounts) {
            s3s_free(&job);
            return;
        }
        for (struct s3s_kms_default_wait *x = v->waits; x; x = x->next) {
            bool dup = !x->account[0];
            for (size_t i = 0; i < job->n_accounts; i++) {
                dup = dup || strcmp(job->accounts[i], x->account) == 0;
            }
            if (!dup) {
                memcpy(job->accounts[job->n_accounts++], x->account, 13);
            }
        }
    }
    v->work.data = job;
    if (uv_queue_work(v->loop, &v->work, s_job_work, s_job_done) == 0) {
        v->work_busy = true;
    } else {
        s3s_free(&job->accounts);
        s3s_free(&job);
    }
}

static void s_tick(uv_timer_t *t) { s_start_job(t->data); }

void s3s_kms_view_refresh(struct s3s_kms_view *v)
{
    if (v->work_busy) {
        v->again = true; /* the running job may have read before the change */
        return;
    }
    s_start_job(v);
}

s3s_result s3s_kms_view_init(struct s3s_kms_view *v, uv_loop_t *loop,
                             const struct s3s_config *cfg, bool maintain, char *why,
                             size_t why_len)
{
    memset(v, 0, sizeof(*v));
    v->loop = loop;
    v->cfg = s3s_config_acquire(cfg); /* the keystore's settings need a restart */
    v->maintain = maintain;
    snprintf(v->via_service, sizeof(v->via_service), "s3.%s.amazonaws.com", cfg->region);
    uv_timer_init(loop, &v->timer);
    v->timer.data = v;
    S3S_GUARD(s3s_keystore_open(cfg->keystore.path, cfg->keystore.master_key_file, true, &v->ks,
                                why, why_len));
    s3s_result r = s_load(v->ks, &v->snap, &v->policies);
    if (s3s_failed(r)) {
        snprintf(why, why_len, "keystore %s: cannot read the KMS keys: %s", cfg->keystore.path,
                 s3s_strerror(r.code));
        return r;
    }
    if (cfg->audit_log) {
        S3S_GUARD(s3s_config_audit_open(cfg, cfg->audit_fsync, &v->audit, why, why_len));
    }
    v->cache_ttl_ms = cfg->keystore.dek_cache_seconds * 1000u;
    if (v->cache_ttl_ms) {
        v->cache_cap = cfg->keystore.dek_cache_entries;
        v->cache = s3s_calloc(v->cache_cap, sizeof(*v->cache));
        S3S_ENSURE(v->cache != NULL, S3S_ERR_NOMEM);
        S3S_GUARD(s3s_secret_new(v->cache_cap * 32, &v->cache_keys));
    }
    v->bucket_keys = s3s_calloc(S3S_KMS_BUCKET_KEYS, sizeof(*v->bucket_keys));
    S3S_ENSURE(v->bucket_keys != NULL, S3S_ERR_NOMEM);
    S3S_GUARD(s3s_secret_new(S3S_KMS_BUCKET_KEYS * 32, &v->bucket_key_material));
    uv_timer_start(&v->timer, s_tick, S3S_KMS_REFRESH_MS, S3S_KMS_REFRESH_MS);
    /* The timer must not keep a draining loop alive. */
    uv_unref((uv_handle_t *)&v->timer);
    return s3s_ok();
}

void s3s_kms_view_close(struct s3s_kms_view *v)
{
    if (v->loop && !v->closing) {
        v->closing = true;
        uv_timer_stop(&v->timer);
        uv_close((uv_handle_t *)&v->timer, NULL);
    }
}

void s3s_kms_view_clean_up(struct s3s_kms_view *v)
{
    if (!v->loop) {
        return; /* never initialised (no keystore) */
    }
    size_t n = v->snap ? v->snap->n_keys : 0;
    s3s_kms_snapshot_free(v->snap);
    s_policies_free(v->policies, n);
    v->snap = NULL;
    v->policies = NULL;
    while (v->waits) {
        struct s3s_kms_default_wait *x = v->waits;
        v->waits = x->next;
        s3s_free(&x);
    }
    s3s_free(&v->cache);
    s3s_secret_destroy(&v->cache_keys);
    s3s_free(&v->bucket_keys);
    s3s_secret_destroy(&v->bucket_key_material);
    s3s_audit_close(v->audit);
    v->audit = NULL;
    s3s_keystore_close(v->ks);
    v->ks = NULL;
    s3s_config_release(v->cfg);
    v->cfg = NULL;
}

/* ------------------------------------------------------------ key checks */

/* Appends the audit record of one use; fails (closed) when it cannot be
 * written. Without an audit log configured there is nothing to write. */
static s3s_result s_audit(struct s3s_kms_view *v, const struct s3s_kms_use *use,
                          const char *operation, const char *result, const char *arn,
                          uint32_t version)
{
    if (!v->audit) {
        s3s_metrics_kms(arn, operation, result);
        return s3s_ok();
    }
    const struct s3s_kms_caller *c = use->caller;
    struct s3s_audit_record rec = {
        .operation = operation,
        .result = result,
        .principal = c->principal,
        .access_key = c->access_key,
        .source = c->source,
        .request_id = c->request_id,
        .key_arn = arn,
        .key_version = version,
        .bucket = use->bucket,
        .object = use->object,
        .context = use->context,
    };
    s3s_result r = s3s_audit_append(v->audit, &rec);
    s3s_metrics_kms(arn, operation, s3s_failed(r) ? "AuditWriteFailed" : result);
    if (s3s_failed(r)) {
        s3s_metrics_inc(S3S_METRIC_AUDIT_WRITE_FAILURES);
        S3S_LOGE("kms", "req=%s cannot write the audit record of %s on %s: the key is not used",
                 c->request_id ? c->request_id : "-", operation, arn ? arn : "-");
        return s3s_err(S3S_ERR_KMS_INTERNAL);
    }
    return s3s_ok();
}

/* A refusal: its message, its audit record (best effort: the answer is a
 * refusal either way), its error. */
static s3s_result s_refuse(struct s3s_kms_view *v, struct s3s_kms_use *use, const char *operation,
                           const char *arn, int32_t code)
{
    s3s_result_ignore(s_audit(v, use, operation, s3s_error_s3code(code), arn, 0));
    return s3s_err(code);
}

/* Enabled, or the error S3 gives for the key's state. */
static s3s_result s_check_state(struct s3s_kms_view *v, struct s3s_kms_use *use,
                                const char *operation, const struct s3s_kms_snap_key *k)
{
    switch (k->meta.state) {
    case S3S_KMS_ENABLED:
        return s3s_ok();
    case S3S_KMS_DISABLED:
        snprintf(use->message, sizeof(use->message), "%s is disabled.", k->meta.arn);
        return s_refuse(v, use, operation, k->meta.arn, S3S_ERR_KMS_DISABLED);
    default:
        snprintf(use->message, sizeof(use->message), "%s is pending deletion.", k->meta.arn);
        return s_refuse(v, use, operation, k->meta.arn, S3S_ERR_KMS_INVALID_STATE);
    }
}

/* The key's policy allows `action` for the use's principal and context. */
static s3s_result s_check_policy(struct s3s_kms_view *v, struct s3s_kms_use *use,
                                 const char *operation, const char *action,
                                 const struct s3s_kms_snap_key *k)
{
    size_t i = (size_t)(k - v->snap->keys);
    struct s3s_policy_request req = {
        .principal = use->caller->principal,
        .action = action,
        .key_arn = k->meta.arn,
        .key_account = k->meta.account,
        .via_service = v->via_service,
        .context = use->context,
    };
    enum s3s_policy_decision d = s3s_policy_evaluate(v->policies[i], &req);
    if (d == S3S_POLICY_ALLOW) {
        return s3s_ok();
    }
    struct s3s_buf msg;
    if (s3s_is_ok(s3s_buf_init(&msg, 0, sizeof(use->message) - 1)) &&
        s3s_is_ok(s3s_policy_denial_message(&req, d, &msg))) {
        memcpy(use->message, msg.ptr, msg.len);
        use->message[msg.len] = '\0';
    }
    s3s_buf_clean_up(&msg);
    return s_refuse(v, use, operation, k->meta.arn, S3S_ERR_KMS_ACCESS_DENIED);
}

static s3s_result s_not_found(struct s3s_kms_view *v, struct s3s_kms_use *use,
                              const char *operation, struct s3s_cur ref)
{
    snprintf(use->message, sizeof(use->message), "Invalid keyId '%.*s'",
             (int)(ref.len > 400 ? 400 : ref.len), (const char *)ref.ptr);
    return s_refuse(v, use, operation, NULL, S3S_ERR_KMS_NOT_FOUND);
}

/* -------------------------------------------------------------- the cache */

/* What an unwrapped key is cached under: the principal, the key and version,
 * the wrapped bytes and what they are bound to. */
static void s_cache_digest(const struct s3s_kms_use *use, struct s3s_cur arn, uint32_t version,
                           struct s3s_cur aad, struct s3s_cur wrapped, uint8_t out[32])
{
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    uint8_t ver[4] = {(uint8_t)(version >> 24), (uint8_t)(version >> 16), (uint8_t)(version >> 8),
                      (uint8_t)version};
    uint8_t lens[8] = {(uint8_t)(aad.len >> 24), (uint8_t)(aad.len >> 16),
                       (uint8_t)(aad.len >> 8),  (uint8_t)aad.len,
                       (uint8_t)(wrapped.len >> 24), (uint8_t)(wrapped.len >> 16),
                       (uint8_t)(wrapped.len >> 8), (uint8_t)wrapped.len};
    unsigned int n = 0;
    bool ok = c && EVP_DigestInit_ex(c, EVP_sha256(), NULL) == 1 &&
              EVP_DigestUpdate(c, use->caller->principal, strlen(use->caller->principal) + 1) ==
                  1 &&
              EVP_DigestUpdate(c, arn.ptr, arn.len) == 1 && EVP_DigestUpdate(c, "", 1) == 1 &&
              EVP_DigestUpdate(c, ver, 4) == 1 && EVP_DigestUpdate(c, lens, 8) == 1 &&
              EVP_DigestUpdate(c, aad.ptr, aad.len) == 1 &&
              EVP_DigestUpdate(c, wrapped.ptr, wrapped.len) == 1 &&
              EVP_DigestFinal_ex(c, out, &n) == 1;
    EVP_MD_CTX_free(c);
    if (!ok) {
        /* Unusable digest: random, so it matches nothing. */
        s3s_result_ignore(RAND_bytes(out, 32) == 1 ? s3s_ok() : s3s_err(S3S_ERR_INTERNAL));
    }
}

static size_t s_cache_slot(const struct s3s_kms_view *v, const uint8_t digest[32])
{
    uint64_t h = 0;
    memcpy(&h, digest, sizeof(h));
    return (size_t)(h % v->cache_cap);
}

static bool s_cache_get(struct s3s_kms_view *v, const uint8_t digest[32], struct s3s_secret *out)
{
    if (!v->cache_cap) {
        return false;
    }
    size_t i = s_cache_slot(v, digest);
    struct s3s_kms_dek_entry *e = &v->cache[i];
    if (!e->expires_ms || CRYPTO_memcmp(e->digest, digest, 32) != 0) {
        return false;
    }
    if (e->expires_ms <= s_now_ms()) {
        OPENSSL_cleanse(v->cache_keys.ptr + i * 32, 32);
        e->expires_ms = 0;
        return false;
    }
    return s3s_is_ok(s3s_secret_from(v->cache_keys.ptr + i * 32, 32, out));
}

static void s_cache_put(struct s3s_kms_view *v, const uint8_t digest[32], const uint8_t key[32])
{
    if (!v->cache_cap) {
        return;
    }
    size_t i = s_cache_slot(v, digest);
    memcpy(v->cache[i].digest, digest, 32);
    v->cache[i].expires_ms = s_now_ms() + v->cache_ttl_ms;
    memcpy(v->cache_keys.ptr + i * 32, key, 32);
}

/* ------------------------------------------------------------ operations */

static bool s_is_default_ref(const char *ref)
{
    return !ref || !ref[0] || strcmp(ref, S3S_KMS_DEFAULT_ALIAS) == 0;
}

s3s_result s3s_kms_view_resolve(struct s3s_kms_view *v, const char *ref, struct s3s_kms_use *use)
{
    const char *op = "GenerateDataKey";
    use->message[0] = '\0';
    use->key = NULL;
    const char *name = s_is_default_ref(ref) ? S3S_KMS_DEFAULT_ALIAS : ref;
    const struct s3s_kms_snap_key *k = s3s_kms_snapshot_find(v->snap, name, use->caller->account);
    if (!k) {
        return s_not_found(v, use, op, s3s_cur_from_str(name));
    }
    S3S_GUARD(s_check_state(v, use, op, k));
    S3S_GUARD(s_check_policy(v, use, op, "kms:GenerateDataKey", k));
    use->key = k;
    use->version = k->meta.current_version;
    return s3s_ok();
}

s3s_result s3s_kms_view_wrap(struct s3s_kms_view *v, struct s3s_kms_use *use,
                             const char *operation, struct s3s_cur aad, const uint8_t dek[32],
                             struct s3s_buf *wrapped)
{
    S3S_ENSURE(use->key != NULL, S3S_ERR_INTERNAL);
    const uint8_t *material = NULL;
    S3S_GUARD(s3s_kms_snap_material(use->key, use->version, &material));
    /* The record comes first: a key whose use cannot be recorded is not used. */
    S3S_GUARD(s_audit(v, use, operation, "Success", use->key->meta.arn, use->version));
    return s3s_keystore_seal(material, aad, s3s_cur_from(dek, 32), wrapped);
}

s3s_result s3s_kms_view_bucket_key(struct s3s_kms_view *v, struct s3s_kms_use *use,
                                   struct s3s_cur aad, uint8_t bk[32], struct s3s_buf *wrapped)
{
    S3S_ENSURE(use->key != NULL && v->bucket_keys != NULL, S3S_ERR_INTERNAL);
    /* Cached for the key, not the principal: every writer of the bucket
     * shares its bucket key, as in S3 (each write's GenerateDataKey
     * permission was checked by s3s_kms_view_resolve). */
    const struct s3s_kms_caller anyone = {.principal = ""};
    struct s3s_kms_use k = {.caller = &anyone};
    uint8_t digest[32];
    s_cache_digest(&k, s3s_cur_from_str(use->key->meta.arn), use->version, aad,
                   s3s_cur_from(NULL, 0), digest);
    uint64_t h = 0;
    memcpy(&h, digest, sizeof(h));
    size_t i = (size_t)(h % S3S_KMS_BUCKET_KEYS);
    struct s3s_kms_bucket_key *e = &v->bucket_keys[i];
    uint64_t now = s_now_ms();
    if (e->expires_ms > now && CRYPTO_memcmp(e->digest, digest, 32) == 0) {
        memcpy(bk, v->bucket_key_material.ptr + i * 32, 32);
        return s3s_buf_append(wrapped, e->wrapped, e->wrapped_len);
    }
    S3S_ENSURE(RAND_bytes(bk, 32) == 1, S3S_ERR_INTERNAL);
    struct s3s_buf w;
    S3S_GUARD(s3s_buf_init(&w, 0, sizeof(e->wrapped)));
    s3s_result r = s3s_kms_view_wrap(v, use, "GenerateDataKey", aad, bk, &w);
    if (s3s_is_ok(r)) {
        r = s3s_buf_append(wrapped, w.ptr, w.len);
    }
    if (s3s_is_ok(r)) {
        memcpy(e->digest, digest, 32);
        memcpy(e->wrapped, w.ptr, w.len);
        e->wrapped_len = w.len;
        e->expires_ms = now + v->cfg->keystore.bucket_key_seconds * 1000u;
        memcpy(v->bucket_key_material.ptr + i * 32, bk, 32);
    } else {
        OPENSSL_cleanse(bk, 32);
    }
    s3s_buf_clean_up(&w);
    return r;
}


/* The key an object's metadata names, usable by the use's principal for
 * `action`. */
static s3s_result s_usable(struct s3s_kms_view *v, struct s3s_kms_use *use, const char *operation,
                           const char *action, struct s3s_cur arn)
{
    use->message[0] = '\0';
    const struct s3s_kms_snap_key *k = s3s_kms_snapshot_by_arn(v->snap, arn);
    if (!k) {
        /* Destroyed after its waiting period, or never in this keystore. */
        snprintf(use->message, sizeof(use->message), "Key '%.*s' does not exist",
                 (int)(arn.len > 400 ? 400 : arn.len), (const char *)arn.ptr);
        return s_refuse(v, use, operation, NULL, S3S_ERR_KMS_NOT_FOUND);
    }
    S3S_GUARD(s_check_state(v, use, operation, k));
    S3S_GUARD(s_check_policy(v, use, operation, action, k));
    use->key = k;
    return s3s_ok();
}

s3s_result s3s_kms_view_decrypt(struct s3s_kms_view *v, struct s3s_kms_use *use,
                                struct s3s_cur arn, uint32_t version, struct s3s_cur aad,
                                struct s3s_cur wrapped, struct s3s_secret *dek)
{
    S3S_GUARD(s_usable(v, use, "Decrypt", "kms:Decrypt", arn));
    use->version = version;
    uint8_t digest[32];
    s_cache_digest(use, arn, version, aad, wrapped, digest);
    if (s_cache_get(v, digest, dek)) {
        s3s_metrics_inc(S3S_METRIC_DEK_CACHE_HITS);
        return s3s_ok();
    }
    s3s_metrics_inc(S3S_METRIC_DEK_CACHE_MISSES);
    const uint8_t *material = NULL;
    s3s_result r = s3s_kms_snap_material(use->key, version, &material);
    if (s3s_is_ok(r)) {
        r = s3s_keystore_open_sealed(material, aad, wrapped, dek);
    }
    if (s3s_is_ok(r) && dek->len != 32) {
        s3s_secret_destroy(dek);
        r = s3s_err(S3S_ERR_KEY_UNWRAP);
    }
    if (s3s_failed(r)) {
        /* Fail closed: a key that does not unwrap is an error, recorded. */
        s3s_result_ignore(s_audit(v, use, "Decrypt", "KMS.InvalidCiphertextException",
                                  use->key->meta.arn, version));
        return r;
    }
    r = s_audit(v, use, "Decrypt", "Success", use->key->meta.arn, version);
    if (s3s_failed(r)) {
        s3s_secret_destroy(dek);
        return r;
    }
    s_cache_put(v, digest, dek->ptr);
    return s3s_ok();
}

s3s_result s3s_kms_view_check(struct s3s_kms_view *v, struct s3s_kms_use *use,
                              struct s3s_cur arn, const char *action)
{
    const char *op = strcmp(action, "kms:Decrypt") == 0 ? "Decrypt" : "GenerateDataKey";
    return s_usable(v, use, op, action, arn);
}

bool s3s_kms_view_needs_refresh(const struct s3s_kms_view *v, const char *ref,
                                const char *account, bool *default_key)
{
    *default_key = s_is_default_ref(ref);
    return !s3s_kms_snapshot_find(v->snap, *default_key ? S3S_KMS_DEFAULT_ALIAS : ref, account);
}

s3s_result s3s_kms_view_ensure_default(struct s3s_kms_view *v, const char *account,
                                       void (*done)(void *arg), void *arg)
{
    S3S_ENSURE((!account || strlen(account) == 12) && !v->closing, S3S_ERR_INTERNAL);
    struct s3s_kms_default_wait *x = s3s_calloc(1, sizeof(*x));
    S3S_ENSURE(x != NULL, S3S_ERR_NOMEM);
    if (account) {
        memcpy(x->account, account, 13);
    }
    /* The run that starts next: one already running may have read the
     * keystore before what the request needs was written. */
    x->job = v->next_job;
    x->done = done;
    x->arg = arg;
    x->next = v->waits;
    v->waits = x;
    /* Now, or when the run on the thread pool finishes. */
    s_start_job(v);
    return s3s_ok();
}

void s3s_kms_view_cancel_default(struct s3s_kms_view *v, void *arg)
{
    for (struct s3s_kms_default_wait **pp = &v->waits; *pp; pp = &(*pp)->next) {
        if ((*pp)->arg == arg) {
            struct s3s_kms_default_wait *x = *pp;
            *pp = x->next;
            s3s_free(&x);
            return;
        }
    }
}
