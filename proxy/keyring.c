/*
 * keyring.c - see keyring.h. The keystore file is read at start-up and then
 * only on the thread pool; the loop thread reads the in-memory copy.
 */
#include <string.h>

#include "common/log.h"
#include "proxy/keyring.h"

/* Reads versions 1..newest into a new secret buffer. */
static s3s_result s_load_all(struct s3s_keystore *ks, struct s3s_secret *out, uint32_t *n)
{
    uint32_t cur = 0;
    struct s3s_secret k = {0};
    S3S_GUARD(s3s_keystore_root_current(ks, &cur, &k));
    s3s_secret_destroy(&k);
    S3S_GUARD(s3s_secret_new((size_t)cur * S3S_KEYSTORE_KEY_LEN, out));
    for (uint32_t v = 1; v <= cur; v++) {
        s3s_result r = s3s_keystore_root_get(ks, v, &k);
        if (s3s_failed(r)) {
            s3s_secret_destroy(out);
            return r;
        }
        memcpy(out->ptr + (size_t)(v - 1) * S3S_KEYSTORE_KEY_LEN, k.ptr, S3S_KEYSTORE_KEY_LEN);
        s3s_secret_destroy(&k);
    }
    *n = cur;
    return s3s_ok();
}

static void s_work(uv_work_t *w)
{
    struct s3s_keyring *kr = w->data;
    if (kr->rotate_after_s > 0) {
        bool rotated = false;
        s3s_result r = s3s_keystore_root_rotate_if_older(kr->ks, kr->rotate_after_s, &rotated);
        if (s3s_failed(r)) {
            kr->fresh_error = r.code;
            return;
        }
    }
    kr->fresh_error = s_load_all(kr->ks, &kr->fresh, &kr->fresh_n).code;
}

static void s_tick(uv_timer_t *t);

static void s_after_work(uv_work_t *w, int status)
{
    struct s3s_keyring *kr = w->data;
    kr->work_busy = false;
    if (kr->again) {
        kr->again = false;
        s_tick(&kr->timer); /* announced while this one ran; queued after it */
    }
    if (status != 0 || kr->fresh_error != S3S_OK) {
        if (kr->fresh_error != S3S_OK) {
            S3S_LOGW("keyring", "root key refresh failed: %s", s3s_strerror(kr->fresh_error));
        }
        s3s_secret_destroy(&kr->fresh);
        return;
    }
    if (kr->fresh_n > kr->n) {
        S3S_LOGI("keyring", "root key version %u is now current", kr->fresh_n);
    }
    /* Versions are never removed: the newer copy is a superset. */
    if (kr->fresh_n >= kr->n) {
        s3s_secret_destroy(&kr->keys);
        kr->keys = kr->fresh;
        kr->n = kr->fresh_n;
        kr->current = kr->fresh_n;
        kr->fresh = (struct s3s_secret){0};
    } else {
        s3s_secret_destroy(&kr->fresh);
    }
}

static void s_tick(uv_timer_t *t)
{
    struct s3s_keyring *kr = t->data;
    if (kr->work_busy || kr->closing || !kr->ks) {
        return;
    }
    kr->work.data = kr;
    if (uv_queue_work(kr->loop, &kr->work, s_work, s_after_work) == 0) {
        kr->work_busy = true;
    }
}

void s3s_keyring_refresh(struct s3s_keyring *kr)
{
    if (kr->work_busy) {
        kr->again = true;
        return;
    }
    s_tick(&kr->timer);
}

s3s_result s3s_keyring_init(struct s3s_keyring *kr, uv_loop_t *loop, const char *path,
                            const char *master_key_file, uint64_t refresh_ms, char *why,
                            size_t why_len)
{
    memset(kr, 0, sizeof(*kr));
    kr->loop = loop;
    uv_timer_init(loop, &kr->timer);
    kr->timer.data = kr;
    S3S_GUARD(s3s_keystore_open(path, master_key_file, true, &kr->ks, why, why_len));
    s3s_result r = s_load_all(kr->ks, &kr->keys, &kr->n);
    if (s3s_failed(r)) {
        snprintf(why, why_len, "keystore %s: cannot read the root keys", path);
        return r;
    }
    kr->current = kr->n;
    if (refresh_ms) {
        uv_timer_start(&kr->timer, s_tick, refresh_ms, refresh_ms);
    }
    /* The timer must not keep a draining loop alive. */
    uv_unref((uv_handle_t *)&kr->timer);
    return s3s_ok();
}

s3s_result s3s_keyring_current(const struct s3s_keyring *kr, uint32_t *version, const uint8_t **key)
{
    S3S_ENSURE(kr->current > 0, S3S_ERR_KEYSTORE);
    *version = kr->current;
    *key = kr->keys.ptr + (size_t)(kr->current - 1) * S3S_KEYSTORE_KEY_LEN;
    return s3s_ok();
}

s3s_result s3s_keyring_get(const struct s3s_keyring *kr, uint32_t version, const uint8_t **key)
{
    S3S_ENSURE(kr->n > 0, S3S_ERR_KEYSTORE);
    S3S_ENSURE(version >= 1 && version <= kr->n, S3S_ERR_KEY_NOT_FOUND);
    *key = kr->keys.ptr + (size_t)(version - 1) * S3S_KEYSTORE_KEY_LEN;
    return s3s_ok();
}

void s3s_keyring_close(struct s3s_keyring *kr)
{
    if (kr->loop && !kr->closing) {
        kr->closing = true;
        uv_timer_stop(&kr->timer);
        uv_close((uv_handle_t *)&kr->timer, NULL);
    }
}

void s3s_keyring_clean_up(struct s3s_keyring *kr)
{
    s3s_secret_destroy(&kr->keys);
    s3s_secret_destroy(&kr->fresh);
    s3s_keystore_close(kr->ks);
    kr->ks = NULL;
    kr->n = kr->current = 0;
}
