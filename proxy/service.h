/*
 * service.h - telling the service manager how s3seal is doing (systemd's
 * Type=notify, through libsystemd's sd_notify): ready once every worker
 * listens, reloading while SIGHUP's config is applied, stopping while the
 * drain runs, and the watchdog's keep-alive. Without NOTIFY_SOCKET (not
 * started by systemd) every call does nothing; a build without libsystemd
 * (service_none.c) does nothing either.
 */
#ifndef S3S_PROXY_SERVICE_H
#define S3S_PROXY_SERVICE_H

#include <stdint.h>

/* READY=1, with a STATUS= line. */
void s3s_service_ready(void);
/* RELOADING=1 with MONOTONIC_USEC= (what Type=notify-reload needs too). */
void s3s_service_reloading(void);
/* STOPPING=1. */
void s3s_service_stopping(void);
/* The watchdog's period asked for by WatchdogSec= (in ms), halved, so a
 * keep-alive sent that often never misses; 0: no watchdog. */
uint64_t s3s_service_watchdog_ms(void);
/* WATCHDOG=1. */
void s3s_service_watchdog(void);

#endif
