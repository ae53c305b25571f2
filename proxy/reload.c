/*
 * reload.c - SIGHUP (reload.h): the config read again, checked by every
 * hook, then handed to the workers; the old one is released, and freed by
 * whoever holds it last.
 */
#include "proxy/reload.h"

#include <string.h>

#include "common/log.h"
#include "proxy/proxy.h"
#include "proxy/service.h"

#define S_HOOKS_MAX 8

static struct s3s_reload_hook s_hooks[S_HOOKS_MAX];
static int s_n_hooks;

s3s_result s3s_reload_hook_add(const struct s3s_reload_hook *hook)
{
    S3S_ENSURE_REF(hook);
    S3S_ENSURE(s_n_hooks < S_HOOKS_MAX, S3S_ERR_TOO_BIG);
    s_hooks[s_n_hooks++] = *hook;
    return s3s_ok();
}

void s3s_reload_hooks_clear(void) { s_n_hooks = 0; }

static void s_abort(int upto)
{
    for (int i = upto - 1; i >= 0; i--) {
        if (s_hooks[i].abort) {
            s_hooks[i].abort(s_hooks[i].ctx);
        }
    }
}

static bool s_differs(const char *a, const char *b)
{
    return (a == NULL) != (b == NULL) || (a && strcmp(a, b) != 0);
}

bool s3s_reload_config(const char *path, const struct s3s_config **cur,
                       struct s3s_worker *workers, int n_workers)
{
    s3s_service_reloading();
    S3S_LOGI("reload", "reading %s", path);
    struct s3s_config *next = NULL;
    char why[512] = "";
    char changed[512] = "";
    int prepared = 0;
    if (s3s_failed(s3s_config_load(path, &next, why, sizeof(why)))) {
        S3S_LOGE("reload", "refused, the running configuration stays: %s",
                 why[0] ? why : "cannot load the configuration");
        goto refused;
    }
    if (s3s_failed(s3s_config_keep_static(next, *cur, changed, sizeof(changed)))) {
        S3S_LOGE("reload", "refused, the running configuration stays: out of memory");
        goto refused;
    }
    for (; prepared < s_n_hooks; prepared++) {
        const struct s3s_reload_hook *h = &s_hooks[prepared];
        why[0] = '\0';
        if (h->prepare && s3s_failed(h->prepare(h->ctx, *cur, next, why, sizeof(why)))) {
            S3S_LOGE("reload", "refused (%s), the running configuration stays: %s", h->name,
                     why[0] ? why : "cannot apply it");
            goto refused;
        }
    }
    /* The last step that can fail: a new access log file must open. */
    if (s_differs(next->access_log, (*cur)->access_log)) {
        why[0] = '\0';
        if (s3s_failed(s3s_log_access_open(next->access_log, why, sizeof(why)))) {
            S3S_LOGE("reload", "refused, the running configuration stays: %s",
                     why[0] ? why : "cannot open access_log");
            goto refused;
        }
        S3S_LOGI("reload", "access lines now go to %s",
                 next->access_log ? next->access_log : "stderr");
    }
    if (changed[0]) {
        S3S_LOGW("reload", "%s changed in %s but need a restart: the running values stay",
                 changed, path);
    }
    s3s_log_set_level((enum s3s_log_level)next->log_level);
    s3s_log_set_format((enum s3s_log_format)next->log_format);
    for (int i = 0; i < n_workers; i++) {
        s3s_worker_reload(&workers[i], next);
    }
    for (int i = 0; i < s_n_hooks; i++) {
        if (s_hooks[i].commit) {
            s_hooks[i].commit(s_hooks[i].ctx, next);
        }
    }
    s3s_config_release(*cur);
    *cur = next;
    S3S_LOGI("reload", "applied %s: credentials=%zu buckets=%zu workers=%d", path,
             next->n_credentials, next->n_buckets, n_workers);
    s3s_service_ready();
    return true;

refused:
    s_abort(prepared);
    s3s_config_destroy(next);
    s3s_service_ready();
    return false;
}

void s3s_reload_apply_worker(struct s3s_worker *w, const struct s3s_config *next)
{
    for (int i = 0; i < s_n_hooks; i++) {
        if (s_hooks[i].apply) {
            s_hooks[i].apply(s_hooks[i].ctx, w, next);
        }
    }
}
