/*
 * metrics.h - s3seal's counters, kept per event loop and summed when
 * /metrics is scraped (admin.c): each worker thread counts into its own
 * shard with relaxed atomic increments (no lock, no shared cache line on
 * the request path); other threads (the thread pool, the admin listener)
 * share one more shard. Label values come from fixed sets (operations,
 * status classes, results) or from the configuration (buckets), and KMS
 * keys take at most S3S_METRICS_KMS_KEYS slots, so a scrape's size is
 * bounded whatever clients send.
 *
 * Before s3s_metrics_init (the commands other than `serve`) every
 * increment is a no-op.
 */
#ifndef S3S_METRICS_H
#define S3S_METRICS_H

#include "common/common.h"

struct s3s_config;
struct s3s_req;

/* KMS keys with their own label values; later ones count as key="_other". */
#define S3S_METRICS_KMS_KEYS 64

/* Plain counters: one call per event, s3s_metrics_inc. */
enum s3s_metric {
    /* TLS handshakes with clients, completed and failed. */
    S3S_METRIC_TLS_HANDSHAKES = 0,
    S3S_METRIC_TLS_HANDSHAKE_FAILURES,
    /* Connections answered 503 SlowDown (or closed) by the caps. */
    S3S_METRIC_REFUSED_PER_CLIENT,
    S3S_METRIC_REFUSED_GLOBAL,
    /* The SSE-KMS data-key cache (kms_view.c). */
    S3S_METRIC_DEK_CACHE_HITS,
    S3S_METRIC_DEK_CACHE_MISSES,
    /* Audit records that could not be written (the key was not used). */
    S3S_METRIC_AUDIT_WRITE_FAILURES,
    S3S_METRIC__COUNT
};

/* Gauges that go up and down by events. */
enum s3s_gauge {
    S3S_GAUGE_CONNECTIONS = 0, /* open client connections */
    S3S_GAUGE__COUNT
};

/* Sets up the shards: one per worker and one for every other thread.
 * Called once by `serve` before any worker starts. */
S3S_RESULT s3s_metrics_init(const struct s3s_config *cfg, int workers);
/* After every thread that counts has stopped. */
void s3s_metrics_clean_up(void);
/* The calling thread is worker `id`'s: it counts into that shard. */
void s3s_metrics_thread_attach(int id);

void s3s_metrics_inc(enum s3s_metric m);
void s3s_metrics_gauge_add(enum s3s_gauge g, int64_t delta);

/* A request is finished (conn.c, where its access line is written): its
 * operation, status, duration, bytes in and out, its bucket if configured,
 * and a backend error if the backend failed it. */
void s3s_metrics_request(const struct s3s_req *r);

/* One use of a KMS key (kms_view.c): `key_arn` (NULL: the key was not
 * found), `operation` (GenerateDataKey, Decrypt, ReEncrypt), `result` as
 * the audit trail records it ("Success" or an error code). */
void s3s_metrics_kms(const char *key_arn, const char *operation, const char *result);

/* What the admin listener knows of the process, written with the scrape. */
struct s3s_metrics_state {
    const char *version;
    bool ready;
    bool draining;
    int backend_up;       /* 1, 0, or -1 not probed yet */
    int keystore_up;      /* 1, 0, or -1 (no keystore, or not probed yet) */
    uint32_t root_key_version; /* 0: unknown */
    int64_t root_key_created;  /* Unix time of that version */
    int64_t now;               /* Unix time of the scrape */
    double start_time;         /* Unix time the process started */
};

/* The whole scrape in the text exposition format (prom.h). */
S3S_RESULT s3s_metrics_write(struct s3s_buf *out, const struct s3s_metrics_state *st);

#endif
