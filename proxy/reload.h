/*
 * reload.h - SIGHUP: the config file is read again and applied without a
 * restart and without dropping a connection. What changes at run time:
 * the credentials (added, removed, new secrets and identity policies), the
 * buckets' settings, the limits, the backend's endpoint and keys, log_level,
 * log_format and access_log; and whatever a subsystem hooked in here
 * reloads itself (TLS certificates). What needs a restart
 * (s3s_config_keep_static: listen, workers, the keystore...) is named in the
 * log and keeps its running value. A file that does not load, or a hook
 * that refuses it, leaves everything as it was and logs the reason.
 *
 * Every worker swaps its config on its own loop thread (s3s_worker_reload);
 * a request keeps the config it started with (s3s_req.cfg holds a
 * reference), so the old config is freed when its last request ends.
 */
#ifndef S3S_PROXY_RELOAD_H
#define S3S_PROXY_RELOAD_H

#include <stddef.h>

#include "common/common.h"
#include "proxy/config.h"

struct s3s_worker;

/* A subsystem's part of a reload; any callback may be NULL.
 * prepare: on the thread that handles SIGHUP, before anything changes; gets
 *   the running and the new config, may build what the new one needs (read
 *   certificate files...) and refuse the reload with a one-line reason in
 *   `why` (the old config then stays everywhere).
 * abort: a later hook refused the reload after this one's prepare
 *   succeeded: drop what prepare built.
 * apply: on each worker's loop thread, once that worker uses `next`; must
 *   not fail (prepare did what could).
 * commit: on the SIGHUP thread, after every worker was asked to apply. */
struct s3s_reload_hook {
    const char *name;
    s3s_result (*prepare)(void *ctx, const struct s3s_config *cur,
                          const struct s3s_config *next, char *why, size_t why_len);
    void (*abort)(void *ctx);
    void (*apply)(void *ctx, struct s3s_worker *w, const struct s3s_config *next);
    void (*commit)(void *ctx, const struct s3s_config *next);
    void *ctx;
};

/* Registers a hook (copied; `name` and `ctx` must outlive the server).
 * Call before the workers start. Fails when 8 hooks are registered. */
S3S_RESULT s3s_reload_hook_add(const struct s3s_reload_hook *hook);
/* Forgets every hook (at exit). */
void s3s_reload_hooks_clear(void);

/* Reads `path` again and applies it (the SIGHUP thread): *cur is the
 * running config, one reference of it the caller's; on success *cur is the
 * new one (the caller holds its reference, the old one's is released) and
 * every worker has been asked to take it. Returns false when the reload was
 * refused (logged with its reason). */
bool s3s_reload_config(const char *path, const struct s3s_config **cur,
                       struct s3s_worker *workers, int n_workers);

/* Runs every hook's apply for worker `w` (its loop thread, from
 * server.c once it took `next`). */
void s3s_reload_apply_worker(struct s3s_worker *w, const struct s3s_config *next);

#endif
