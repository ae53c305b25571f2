/*
 * keyring.h - a worker's in-memory copy of the SSE-S3 root keys, so that
 * wrapping and unwrapping data keys never touches the keystore file on the
 * loop thread. Loaded at start-up; refreshed from the keystore on the libuv
 * thread pool every few seconds, so a `s3seal root-key rotate` is picked up
 * by running servers without a restart. Keys live in secure memory.
 */
#ifndef S3S_PROXY_KEYRING_H
#define S3S_PROXY_KEYRING_H

#include <uv.h>

#include "common/common.h"
#include "keystore/keystore.h"

struct s3s_keyring {
    /* loop thread only */
    uv_loop_t *loop;
    uv_timer_t timer;
    uv_work_t work;
    bool work_busy;
    bool again; /* a change was announced while a refresh ran: one more */
    bool closing;
    struct s3s_keystore *ks; /* used on the thread pool only after start-up */
    uint32_t current;        /* newest version (0: no keystore) */
    uint32_t n;              /* versions 1..n are loaded */
    struct s3s_secret keys;  /* n * 32 bytes, version v at (v-1)*32 */
    /* filled by the pool thread, merged on the loop */
    struct s3s_secret fresh;
    uint32_t fresh_n;
    int32_t fresh_error;
    int64_t rotate_after_s; /* automatic rotation period; 0: off */
};

/*
 * Opens the keystore (creating the file if absent; the master key must
 * exist) and loads every root key version. `why` receives a one-line reason on
 * failure. Starts the refresh timer on `loop` (refresh_ms; 0 = no refresh).
 */
S3S_RESULT s3s_keyring_init(struct s3s_keyring *kr, uv_loop_t *loop, const char *path,
                            const char *master_key_file, uint64_t refresh_ms, char *why,
                            size_t why_len);
/* The current version and its key (borrowed: valid until the next loop turn). */
S3S_RESULT s3s_keyring_current(const struct s3s_keyring *kr, uint32_t *version,
                               const uint8_t **key);
/* A version's key; S3S_ERR_KEY_NOT_FOUND if this keyring has no such version. */
S3S_RESULT s3s_keyring_get(const struct s3s_keyring *kr, uint32_t version, const uint8_t **key);
/* Stops the timer and closes its handle; the keyring is freed by
 * s3s_keyring_clean_up once the loop has run the close callbacks. */
void s3s_keyring_close(struct s3s_keyring *kr);
void s3s_keyring_clean_up(struct s3s_keyring *kr);

/* Re-reads the root keys now (a change was announced; ks_watch.c), or
 * right after the refresh that is running. Loop thread. */
void s3s_keyring_refresh(struct s3s_keyring *kr);

#endif
