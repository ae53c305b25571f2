/*
 * service_systemd.c - service.h through libsystemd's sd_notify.
 */
#include <systemd/sd-daemon.h>
#include <time.h>

#include "proxy/service.h"

void s3s_service_ready(void)
{
    (void)sd_notify(0, "READY=1\nSTATUS=serving");
}

void s3s_service_reloading(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    unsigned long long usec =
        (unsigned long long)ts.tv_sec * 1000000ull + (unsigned long long)ts.tv_nsec / 1000ull;
    (void)sd_notifyf(0, "RELOADING=1\nSTATUS=reloading the configuration\nMONOTONIC_USEC=%llu",
                     usec);
}

void s3s_service_stopping(void)
{
    (void)sd_notify(0, "STOPPING=1\nSTATUS=draining connections");
}

uint64_t s3s_service_watchdog_ms(void)
{
    uint64_t usec = 0;
    if (sd_watchdog_enabled(0, &usec) <= 0 || usec == 0) {
        return 0;
    }
    uint64_t ms = usec / 2000u;
    return ms ? ms : 1;
}

void s3s_service_watchdog(void)
{
    (void)sd_notify(0, "WATCHDOG=1");
}
