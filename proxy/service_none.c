/*
 * service_none.c - service.h for a build without libsystemd: nothing to
 * tell (Type=simple units, or no service manager).
 */
#include "proxy/service.h"

void s3s_service_ready(void) {}
void s3s_service_reloading(void) {}
void s3s_service_stopping(void) {}
uint64_t s3s_service_watchdog_ms(void) { return 0; }
void s3s_service_watchdog(void) {}
