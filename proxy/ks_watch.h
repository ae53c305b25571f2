/*
 * ks_watch.h - a worker hears the keystore's change notices: on a keystore
 * that announces its changes (PostgreSQL), a change committed by any
 * instance or command makes the worker's KMS keys, root keys and buckets'
 * defaults re-read at once; the periodic refreshes stay as the safety net.
 * A keystore without a channel (SQLite) leaves the refreshes alone.
 */
#ifndef S3S_KS_WATCH_H
#define S3S_KS_WATCH_H

struct s3s_worker;
struct s3s_ks_watch;

/* Starts listening on the worker's loop (its own keystore handle); never
 * fails the worker: without a channel, or on an error, the periodic
 * refreshes do the work (an error is logged and listening retried). */
void s3s_ks_watch_start(struct s3s_worker *w);
/* Stops (the worker drains); what is running on the thread pool finishes
 * and frees itself. */
void s3s_ks_watch_stop(struct s3s_worker *w);

#endif /* S3S_KS_WATCH_H */
