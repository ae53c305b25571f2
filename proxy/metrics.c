/*
 * metrics.c - s3seal's counters (metrics.h): per-thread shards of relaxed
 * atomics, summed into the text exposition format when scraped.
 */
#include <stdatomic.h>
#include <string.h>

#include "proxy/metrics.h"
#include "proxy/prom.h"
#include "proxy/proxy.h"

/* Every operation the classifier names (s3_op.h); a later one counts as the
 * last. */
#define S_OPS ((int)S3S_OP_RESTORE_OBJECT + 1)
/* 1xx..5xx, and anything else. */
#define S_CLASSES 6
#define S_CODES 600

/* The latency histogram's upper bounds, in seconds. */
static const double s_bounds[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                  1,     2.5,  5,     10,   30,  60,  120};
#define S_NB (sizeof(s_bounds) / sizeof(s_bounds[0]))
static uint64_t s_bounds_ns[S_NB];

static const char *const s_classes[S_CLASSES] = {"1xx", "2xx", "3xx", "4xx", "5xx", "other"};

/* KMS operations and results, as labels. */
static const char *const s_kms_ops[] = {"GenerateDataKey", "Decrypt", "ReEncrypt", "other"};
#define S_KMS_OPS (sizeof(s_kms_ops) / sizeof(s_kms_ops[0]))
static const char *const s_kms_results[] = {
    "success",   "access_denied",      "disabled",     "invalid_state",
    "not_found", "invalid_ciphertext", "audit_failed", "error"};
#define S_KMS_RESULTS (sizeof(s_kms_results) / sizeof(s_kms_results[0]))
#define S_KMS_KEY_MAX 160

struct s_kms_slot {
    _Atomic int state; /* 0 free, 1 being claimed, 2 key set */
    char key[S_KMS_KEY_MAX];
    _Atomic uint64_t n[S_KMS_OPS][S_KMS_RESULTS];
};

struct s_bucket {
    _Atomic uint64_t req[S_CLASSES];
    _Atomic uint64_t in, out;
};

enum { S_BACKEND_TIMEOUT = 0, S_BACKEND_ERROR, S_BACKEND_KINDS };

struct s_shard {
    _Atomic uint64_t c[S3S_METRIC__COUNT];
    _Atomic int64_t g[S3S_GAUGE__COUNT];
    _Atomic uint64_t req[S_OPS][S_CLASSES];
    _Atomic uint64_t code[S_CODES];
    _Atomic uint64_t lat[S_OPS][S_NB + 1];
    _Atomic uint64_t lat_sum_ns[S_OPS];
    _Atomic uint64_t in[S_OPS], out[S_OPS];
    _Atomic uint64_t backend[S_BACKEND_KINDS];
    /* S3S_METRICS_KMS_KEYS named keys, then key="_other". */
    struct s_kms_slot kms[S3S_METRICS_KMS_KEYS + 1];
    struct s_bucket *buckets; /* the configured buckets', in config order */
};

struct s_state {
    /* The buckets of the configuration s3seal started with, copied: a
     * reloaded configuration's new buckets get no labels of their own. */
    char **buckets;
    size_t n_buckets;
    size_t n; /* shards: workers, then the shared one */
    struct s_shard **shards;
};

static _Atomic(struct s_state *) s_st;
static _Thread_local struct s_shard *s_mine;

#define S_ADD(p, v) atomic_fetch_add_explicit((p), (v), memory_order_relaxed)
#define S_GET(p) atomic_load_explicit((p), memory_order_relaxed)

static struct s_shard *s_shard(void)
{
    if (s_mine) {
        return s_mine;
    }
    struct s_state *st = atomic_load_explicit(&s_st, memory_order_acquire);
    return st ? st->shards[st->n - 1] : NULL;
}

static void s_free_names(struct s_state *st)
{
    for (size_t i = 0; st->buckets && i < st->n_buckets; i++) {
        s3s_free(&st->buckets[i]);
    }
    s3s_free(&st->buckets);
}

s3s_result s3s_metrics_init(const struct s3s_config *cfg, int workers)
{
    S3S_ENSURE(atomic_load(&s_st) == NULL && workers > 0, S3S_ERR_INVALID_ARG);
    for (size_t i = 0; i < S_NB; i++) {
        s_bounds_ns[i] = (uint64_t)(s_bounds[i] * 1e9);
    }
    struct s_state *st = s3s_calloc(1, sizeof(*st));
    S3S_ENSURE(st != NULL, S3S_ERR_NOMEM);
    st->n = (size_t)workers + 1;
    st->shards = s3s_calloc(st->n, sizeof(*st->shards));
    st->n_buckets = cfg->n_buckets;
    st->buckets = s3s_calloc(cfg->n_buckets + 1, sizeof(*st->buckets));
    bool ok = st->shards != NULL && st->buckets != NULL;
    for (size_t i = 0; ok && i < cfg->n_buckets; i++) {
        st->buckets[i] = s3s_strdup(cfg->buckets[i].name);
        ok = st->buckets[i] != NULL;
    }
    for (size_t i = 0; ok && i < st->n; i++) {
        st->shards[i] = s3s_calloc(1, sizeof(struct s_shard));
        ok = st->shards[i] != NULL;
        if (ok && cfg->n_buckets) {
            st->shards[i]->buckets = s3s_calloc(cfg->n_buckets, sizeof(struct s_bucket));
            ok = st->shards[i]->buckets != NULL;
        }
    }
    if (!ok) {
        for (size_t i = 0; st->shards && i < st->n; i++) {
            if (st->shards[i]) {
                s3s_free(&st->shards[i]->buckets);
            }
            s3s_free(&st->shards[i]);
        }
        s3s_free(&st->shards);
        s_free_names(st);
        s3s_free(&st);
        S3S_BAIL(S3S_ERR_NOMEM);
    }
    atomic_store_explicit(&s_st, st, memory_order_release);
    return s3s_ok();
}

void s3s_metrics_clean_up(void)
{
    struct s_state *st = atomic_exchange(&s_st, NULL);
    s_mine = NULL;
    if (!st) {
        return;
    }
    for (size_t i = 0; i < st->n; i++) {
        s3s_free(&st->shards[i]->buckets);
        s3s_free(&st->shards[i]);
    }
    s3s_free(&st->shards);
    s_free_names(st);
    s3s_free(&st);
}

void s3s_metrics_thread_attach(int id)
{
    struct s_state *st = atomic_load_explicit(&s_st, memory_order_acquire);
    if (st && id >= 0 && (size_t)id + 1 < st->n) {
        s_mine = st->shards[id];
    }
}

void s3s_metrics_inc(enum s3s_metric m)
{
    struct s_shard *s = s_shard();
    if (s && (unsigned)m < S3S_METRIC__COUNT) {
        S_ADD(&s->c[m], 1);
    }
}

void s3s_metrics_gauge_add(enum s3s_gauge g, int64_t delta)
{
    struct s_shard *s = s_shard();
    if (s && (unsigned)g < S3S_GAUGE__COUNT) {
        S_ADD(&s->g[g], delta);
    }
}

static int s_class(int status)
{
    return status >= 100 && status < 600 ? status / 100 - 1 : S_CLASSES - 1;
}

void s3s_metrics_request(const struct s3s_req *r)
{
    struct s_shard *s = s_shard();
    if (!s) {
        return;
    }
    int op = (int)r->op >= 0 && (int)r->op < S_OPS ? (int)r->op : S_OPS - 1;
    int cl = s_class(r->status);
    uint64_t ns = s3s_now_ns() - r->start_ns;
    size_t b = 0;
    while (b < S_NB && ns > s_bounds_ns[b]) {
        b++;
    }
    S_ADD(&s->req[op][cl], 1);
    if (r->status >= 100 && r->status < S_CODES) {
        S_ADD(&s->code[r->status], 1);
    }
    S_ADD(&s->lat[op][b], 1);
    S_ADD(&s->lat_sum_ns[op], ns);
    S_ADD(&s->in[op], r->body_received);
    S_ADD(&s->out[op], r->resp_body_sent);
    if (r->error == S3S_ERR_GATEWAY_TIMEOUT) {
        S_ADD(&s->backend[S_BACKEND_TIMEOUT], 1);
    } else if (r->error == S3S_ERR_BAD_GATEWAY) {
        S_ADD(&s->backend[S_BACKEND_ERROR], 1);
    }
    if (s->buckets && r->bucket.len) {
        struct s_state *st = atomic_load_explicit(&s_st, memory_order_relaxed);
        for (size_t i = 0; st && i < st->n_buckets; i++) {
            if (s3s_cur_eq_str(s3s_buf_cur(&r->bucket), st->buckets[i])) {
                struct s_bucket *sb = &s->buckets[i];
                S_ADD(&sb->req[cl], 1);
                S_ADD(&sb->in, r->body_received);
                S_ADD(&sb->out, r->resp_body_sent);
                break;
            }
        }
    }
}

static size_t s_kms_result(const char *result)
{
    static const struct {
        const char *has;
        size_t i;
    } map[] = {{"Success", 0},       {"AccessDenied", 1},      {"Disabled", 2},
               {"InvalidState", 3},  {"NotFound", 4},          {"InvalidCiphertext", 5},
               {"AuditWriteFailed", 6}};
    for (size_t i = 0; result && i < sizeof(map) / sizeof(map[0]); i++) {
        if (strstr(result, map[i].has)) {
            return map[i].i;
        }
    }
    return S_KMS_RESULTS - 1;
}

void s3s_metrics_kms(const char *key_arn, const char *operation, const char *result)
{
    struct s_shard *s = s_shard();
    if (!s) {
        return;
    }
    size_t op = 0;
    while (op < S_KMS_OPS - 1 && strcmp(operation, s_kms_ops[op]) != 0) {
        op++;
    }
    const char *key = key_arn && *key_arn ? key_arn : "none";
    struct s_kms_slot *slot = &s->kms[S3S_METRICS_KMS_KEYS];
    if (strlen(key) < S_KMS_KEY_MAX) {
        for (size_t i = 0; i < S3S_METRICS_KMS_KEYS; i++) {
            struct s_kms_slot *k = &s->kms[i];
            int st = atomic_load_explicit(&k->state, memory_order_acquire);
            if (st == 0) {
                int want = 0;
                if (!atomic_compare_exchange_strong(&k->state, &want, 1)) {
                    continue; /* another thread of the shared shard took it */
                }
                snprintf(k->key, sizeof(k->key), "%s", key);
                atomic_store_explicit(&k->state, 2, memory_order_release);
                slot = k;
                break;
            }
            if (st == 2 && strcmp(k->key, key) == 0) {
                slot = k;
                break;
            }
        }
    }
    S_ADD(&slot->n[op][s_kms_result(result)], 1);
}

/* ------------------------------------------------------------------ scrape */

struct s_kms_sum {
    const char *key;
    uint64_t n[S_KMS_OPS][S_KMS_RESULTS];
};

struct s_sum {
    uint64_t c[S3S_METRIC__COUNT];
    int64_t g[S3S_GAUGE__COUNT];
    uint64_t req[S_OPS][S_CLASSES];
    uint64_t code[S_CODES];
    uint64_t lat[S_OPS][S_NB + 1];
    uint64_t lat_sum_ns[S_OPS];
    uint64_t in[S_OPS], out[S_OPS];
    uint64_t backend[S_BACKEND_KINDS];
    struct s_kms_sum *kms;
    size_t n_kms;
    uint64_t (*bucket_req)[S_CLASSES];
    uint64_t *bucket_in, *bucket_out;
};

static void s_sum_kms(struct s_sum *sum, const struct s_kms_slot *k, const char *key)
{
    struct s_kms_sum *t = NULL;
    for (size_t i = 0; i < sum->n_kms; i++) {
        if (strcmp(sum->kms[i].key, key) == 0) {
            t = &sum->kms[i];
            break;
        }
    }
    if (!t) {
        t = &sum->kms[sum->n_kms++];
        t->key = key;
    }
    for (size_t o = 0; o < S_KMS_OPS; o++) {
        for (size_t r = 0; r < S_KMS_RESULTS; r++) {
            t->n[o][r] += S_GET(&k->n[o][r]);
        }
    }
}

static void s_sum(const struct s_state *st, struct s_sum *sum)
{
    size_t nb = st->n_buckets;
    for (size_t i = 0; i < st->n; i++) {
        struct s_shard *s = st->shards[i];
        for (size_t m = 0; m < S3S_METRIC__COUNT; m++) {
            sum->c[m] += S_GET(&s->c[m]);
        }
        for (size_t m = 0; m < S3S_GAUGE__COUNT; m++) {
            sum->g[m] += S_GET(&s->g[m]);
        }
        for (int op = 0; op < S_OPS; op++) {
            for (int c = 0; c < S_CLASSES; c++) {
                sum->req[op][c] += S_GET(&s->req[op][c]);
            }
            for (size_t b = 0; b <= S_NB; b++) {
                sum->lat[op][b] += S_GET(&s->lat[op][b]);
            }
            sum->lat_sum_ns[op] += S_GET(&s->lat_sum_ns[op]);
            sum->in[op] += S_GET(&s->in[op]);
            sum->out[op] += S_GET(&s->out[op]);
        }
        for (size_t c = 0; c < S_CODES; c++) {
            sum->code[c] += S_GET(&s->code[c]);
        }
        for (size_t k = 0; k < S_BACKEND_KINDS; k++) {
            sum->backend[k] += S_GET(&s->backend[k]);
        }
        for (size_t k = 0; k < S3S_METRICS_KMS_KEYS; k++) {
            if (atomic_load_explicit(&s->kms[k].state, memory_order_acquire) == 2) {
                s_sum_kms(sum, &s->kms[k], s->kms[k].key);
            }
        }
        s_sum_kms(sum, &s->kms[S3S_METRICS_KMS_KEYS], "_other");
        for (size_t b = 0; b < nb; b++) {
            for (int c = 0; c < S_CLASSES; c++) {
                sum->bucket_req[b][c] += S_GET(&s->buckets[b].req[c]);
            }
            sum->bucket_in[b] += S_GET(&s->buckets[b].in);
            sum->bucket_out[b] += S_GET(&s->buckets[b].out);
        }
    }
}

typedef struct s3s_prom_label s_l;

/* Stops the scrape at its first failure, to free what it holds. */
#define S_TRY(r, expr)                                                                      \
    do {                                                                                    \
        if (s3s_failed((r) = (expr))) {                                                     \
            goto out;                                                                       \
        }                                                                                   \
    } while (0)

static s3s_result s_counter(struct s3s_buf *out, const char *name, const char *help,
                            uint64_t v)
{
    S3S_GUARD(s3s_prom_family(out, name, help, "counter"));
    return s3s_prom_sample_u64(out, name, NULL, 0, v);
}

static s3s_result s_gauge(struct s3s_buf *out, const char *name, const char *help, double v)
{
    S3S_GUARD(s3s_prom_family(out, name, help, "gauge"));
    return s3s_prom_sample_double(out, name, NULL, 0, v);
}

static s3s_result s_write_requests(struct s3s_buf *out, const struct s_sum *sum)
{
    S3S_GUARD(s3s_prom_family(out, "s3seal_requests_total",
                              "S3 requests answered, by operation and status class.",
                              "counter"));
    for (int op = 0; op < S_OPS; op++) {
        for (int c = 0; c < S_CLASSES; c++) {
            if (sum->req[op][c]) {
                s_l l[] = {{"operation", s3s_s3_op_name((enum s3s_s3_op)op)},
                           {"status_class", s_classes[c]}};
                S3S_GUARD(s3s_prom_sample_u64(out, "s3seal_requests_total", l, 2,
                                              sum->req[op][c]));
            }
        }
    }
    S3S_GUARD(s3s_prom_family(out, "s3seal_responses_total",
                              "S3 requests answered, by HTTP status code (499: the client "
                              "closed before the answer).",
                              "counter"));
    for (int c = 100; c < S_CODES; c++) {
        if (sum->code[c]) {
            char code[8];
            snprintf(code, sizeof(code), "%d", c);
            s_l l[] = {{"code", code}};
            S3S_GUARD(s3s_prom_sample_u64(out, "s3seal_responses_total", l, 1, sum->code[c]));
        }
    }
    S3S_GUARD(s3s_prom_family(out, "s3seal_request_duration_seconds",
                              "Time from a request's first byte to its last answer byte, by "
                              "operation.",
                              "histogram"));
    for (int op = 0; op < S_OPS; op++) {
        uint64_t n = 0;
        for (size_t b = 0; b <= S_NB; b++) {
            n += sum->lat[op][b];
        }
        if (n) {
            s_l l[] = {{"operation", s3s_s3_op_name((enum s3s_s3_op)op)}};
            S3S_GUARD(s3s_prom_histogram(out, "s3seal_request_duration_seconds", l, 1,
                                         s_bounds, S_NB, sum->lat[op],
                                         (double)sum->lat_sum_ns[op] / 1e9));
        }
    }
    static const char *const names[2] = {"s3seal_received_bytes_total",
                                         "s3seal_sent_bytes_total"};
    static const char *const helps[2] = {
        "Request body bytes received from clients (as sent, aws-chunked framing included), "
        "by operation.",
        "Response body bytes sent to clients, by operation."};
    for (int k = 0; k < 2; k++) {
        const uint64_t *v = k == 0 ? sum->in : sum->out;
        S3S_GUARD(s3s_prom_family(out, names[k], helps[k], "counter"));
        for (int op = 0; op < S_OPS; op++) {
            uint64_t n = 0;
            for (int c = 0; c < S_CLASSES; c++) {
                n += sum->req[op][c];
            }
            if (n) {
                s_l l[] = {{"operation", s3s_s3_op_name((enum s3s_s3_op)op)}};
                S3S_GUARD(s3s_prom_sample_u64(out, names[k], l, 1, v[op]));
            }
        }
    }
    return s3s_ok();
}

static s3s_result s_write_buckets(struct s3s_buf *out, const struct s_state *st,
                                  const struct s_sum *sum)
{
    if (!st->n_buckets) {
        return s3s_ok();
    }
    S3S_GUARD(s3s_prom_family(out, "s3seal_bucket_requests_total",
                              "S3 requests answered for the buckets of the configuration, by "
                              "bucket and status class.",
                              "counter"));
    for (size_t b = 0; b < st->n_buckets; b++) {
        for (int c = 0; c < S_CLASSES - 1; c++) {
            s_l l[] = {{"bucket", st->buckets[b]}, {"status_class", s_classes[c]}};
            S3S_GUARD(s3s_prom_sample_u64(out, "s3seal_bucket_requests_total", l, 2,
                                          sum->bucket_req[b][c]));
        }
    }
    static const char *const names[2] = {"s3seal_bucket_received_bytes_total",
                                         "s3seal_bucket_sent_bytes_total"};
    static const char *const helps[2] = {
        "Request body bytes received for the buckets of the configuration.",
        "Response body bytes sent for the buckets of the configuration."};
    for (int k = 0; k < 2; k++) {
        S3S_GUARD(s3s_prom_family(out, names[k], helps[k], "counter"));
        for (size_t b = 0; b < st->n_buckets; b++) {
            s_l l[] = {{"bucket", st->buckets[b]}};
            S3S_GUARD(s3s_prom_sample_u64(out, names[k], l, 1,
                                          k == 0 ? sum->bucket_in[b] : sum->bucket_out[b]));
        }
    }
    return s3s_ok();
}

static s3s_result s_write_kms(struct s3s_buf *out, const struct s_sum *sum)
{
    S3S_GUARD(s3s_prom_family(out, "s3seal_kms_operations_total",
                              "SSE-KMS key uses (data keys made, unwrapped or re-wrapped), by "
                              "key ARN, operation and result; data-key cache hits are not "
                              "key uses.",
                              "counter"));
    for (size_t i = 0; i < sum->n_kms; i++) {
        for (size_t o = 0; o < S_KMS_OPS; o++) {
            for (size_t r = 0; r < S_KMS_RESULTS; r++) {
                if (sum->kms[i].n[o][r]) {
                    s_l l[] = {{"key", sum->kms[i].key},
                               {"operation", s_kms_ops[o]},
                               {"result", s_kms_results[r]}};
                    S3S_GUARD(s3s_prom_sample_u64(out, "s3seal_kms_operations_total", l, 3,
                                                  sum->kms[i].n[o][r]));
                }
            }
        }
    }
    S3S_GUARD(s_counter(out, "s3seal_dek_cache_hits_total",
                        "SSE-KMS data keys found in the data-key cache.",
                        sum->c[S3S_METRIC_DEK_CACHE_HITS]));
    S3S_GUARD(s_counter(out, "s3seal_dek_cache_misses_total",
                        "SSE-KMS data keys not in the data-key cache (unwrapped by the key).",
                        sum->c[S3S_METRIC_DEK_CACHE_MISSES]));
    return s_counter(out, "s3seal_audit_write_failures_total",
                     "Audit records that could not be written (the key was not used).",
                     sum->c[S3S_METRIC_AUDIT_WRITE_FAILURES]);
}

static s3s_result s_write_state(struct s3s_buf *out, const struct s3s_metrics_state *st)
{
    S3S_GUARD(s3s_prom_family(out, "s3seal_build_info", "s3seal's version.", "gauge"));
    s_l v[] = {{"version", st->version}};
    S3S_GUARD(s3s_prom_sample_u64(out, "s3seal_build_info", v, 1, 1));
    S3S_GUARD(s_gauge(out, "s3seal_start_time_seconds", "Unix time s3seal started.",
                      st->start_time));
    S3S_GUARD(s_gauge(out, "s3seal_ready", "1 when /health/ready answers 200.",
                      st->ready ? 1 : 0));
    S3S_GUARD(s_gauge(out, "s3seal_draining", "1 once SIGTERM asked s3seal to drain.",
                      st->draining ? 1 : 0));
    if (st->backend_up >= 0) {
        S3S_GUARD(s_gauge(out, "s3seal_backend_up",
                          "1 when the last probe of the backend got an answer.",
                          st->backend_up));
    }
    if (st->keystore_up >= 0) {
        S3S_GUARD(s_gauge(out, "s3seal_keystore_up",
                          "1 when the last probe of the keystore read its root key.",
                          st->keystore_up));
    }
    if (st->root_key_version) {
        S3S_GUARD(s_gauge(out, "s3seal_root_key_version",
                          "The newest SSE-S3 root key version in the keystore.",
                          st->root_key_version));
        int64_t age = st->now - st->root_key_created;
        S3S_GUARD(s_gauge(out, "s3seal_root_key_age_seconds",
                          "Seconds since the newest SSE-S3 root key version was made.",
                          (double)(age > 0 ? age : 0)));
    }
    return s3s_ok();
}

s3s_result s3s_metrics_write(struct s3s_buf *out, const struct s3s_metrics_state *st)
{
    struct s_state *ms = atomic_load_explicit(&s_st, memory_order_acquire);
    S3S_ENSURE(ms != NULL, S3S_ERR_INVALID_ARG);
    size_t nb = ms->n_buckets;
    struct s_sum *sum = s3s_calloc(1, sizeof(*sum));
    S3S_ENSURE(sum != NULL, S3S_ERR_NOMEM);
    sum->kms = s3s_calloc(ms->n * (S3S_METRICS_KMS_KEYS + 1), sizeof(*sum->kms));
    sum->bucket_req = s3s_calloc(nb + 1, sizeof(*sum->bucket_req));
    sum->bucket_in = s3s_calloc(nb + 1, sizeof(*sum->bucket_in));
    sum->bucket_out = s3s_calloc(nb + 1, sizeof(*sum->bucket_out));
    s3s_result r = s3s_ok();
    if (!sum->kms || !sum->bucket_req || !sum->bucket_in || !sum->bucket_out) {
        r = s3s_err(S3S_ERR_NOMEM);
        goto out;
    }
    s_sum(ms, sum);
    if (s3s_failed(r = s_write_state(out, st)) || s3s_failed(r = s_write_requests(out, sum)) ||
        s3s_failed(r = s_write_buckets(out, ms, sum))) {
        goto out;
    }
    S_TRY(r, s3s_prom_family(out, "s3seal_client_connections",
                                      "Open client connections.", "gauge"));
    S_TRY(r, s3s_prom_sample_i64(out, "s3seal_client_connections", NULL, 0,
                                          sum->g[S3S_GAUGE_CONNECTIONS]));
    S_TRY(r, s3s_prom_family(out, "s3seal_connections_refused_total",
                                      "Client connections answered 503 SlowDown (or closed) "
                                      "by a connection cap: per_client "
                                      "(limits.max_connections_per_client) or global "
                                      "(limits.max_connections).",
                                      "counter"));
    s_l pc[] = {{"cap", "per_client"}}, gl[] = {{"cap", "global"}};
    S_TRY(r, s3s_prom_sample_u64(out, "s3seal_connections_refused_total", pc, 1,
                                          sum->c[S3S_METRIC_REFUSED_PER_CLIENT]));
    S_TRY(r, s3s_prom_sample_u64(out, "s3seal_connections_refused_total", gl, 1,
                                          sum->c[S3S_METRIC_REFUSED_GLOBAL]));
    S_TRY(r, s3s_prom_family(out, "s3seal_backend_errors_total",
                                      "Requests the backend failed: no answer in time "
                                      "(timeout, 504) or no usable answer (error, 502).",
                                      "counter"));
    s_l to[] = {{"kind", "timeout"}}, er[] = {{"kind", "error"}};
    S_TRY(r, s3s_prom_sample_u64(out, "s3seal_backend_errors_total", to, 1,
                                          sum->backend[S_BACKEND_TIMEOUT]));
    S_TRY(r, s3s_prom_sample_u64(out, "s3seal_backend_errors_total", er, 1,
                                          sum->backend[S_BACKEND_ERROR]));
    S_TRY(r, s_write_kms(out, sum));
    S_TRY(r, s_counter(out, "s3seal_tls_handshakes_total",
                                "TLS handshakes with clients completed.",
                                sum->c[S3S_METRIC_TLS_HANDSHAKES]));
    S_TRY(r, s_counter(out, "s3seal_tls_handshake_failures_total",
                                "TLS handshakes with clients that failed.",
                                sum->c[S3S_METRIC_TLS_HANDSHAKE_FAILURES]));
out:
    s3s_free(&sum->kms);
    s3s_free(&sum->bucket_req);
    s3s_free(&sum->bucket_in);
    s3s_free(&sum->bucket_out);
    s3s_free(&sum);
    return r;
}
