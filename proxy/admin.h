/*
 * admin.h - the admin listener (`admin_listen`): plain HTTP GET of
 * /metrics (Prometheus text format, metrics.h), /health/live and
 * /health/ready, on its own thread with its own libuv loop. The S3 workers
 * never see it: a slow scraper or a probe of an unreachable backend cannot
 * delay a request, and a loaded worker cannot delay a health check.
 *
 * Readiness: 503 while s3seal starts (until the workers listen and the first
 * probes have answered), while it drains after SIGTERM, when the backend did
 * not answer its last probe (HEAD / every S3S_ADMIN_PROBE_MS, on the probe's
 * own thread) and when the keystore (if configured) could not be read; else 200.
 */
#ifndef S3S_ADMIN_H
#define S3S_ADMIN_H

#include "common/common.h"

#define S3S_ADMIN_PROBE_MS 2000

struct s3s_config;
struct s3s_admin;

/* Binds cfg->admin_host:admin_port and starts the admin thread (which
 * starts probing). `version` is s3seal's, for s3seal_build_info. */
S3S_RESULT s3s_admin_start(const struct s3s_config *cfg, const char *version,
                           struct s3s_admin **out);
/* Thread-safe: the workers listen / SIGTERM arrived. */
void s3s_admin_set_running(struct s3s_admin *a);
void s3s_admin_set_draining(struct s3s_admin *a);
/* Stops the thread, closes the listener and frees everything. NULL is fine. */
void s3s_admin_stop(struct s3s_admin *a);

#endif
