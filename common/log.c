/*
 * log.c - formats each event into one buffer and writes it with a single
 * write(2), so lines from several threads never interleave.
 */
#include "log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static atomic_int g_log_level = S3S_LOG_INFO;

static const char *const s_level_names[] = {"debug", "info", "warn", "error", "off"};

void s3s_log_set_level(enum s3s_log_level level) { atomic_store(&g_log_level, (int)level); }
enum s3s_log_level s3s_log_get_level(void) { return (enum s3s_log_level)atomic_load(&g_log_level); }

int s3s_log_level_parse(const char *name)
{
    for (int i = 0; i <= S3S_LOG_OFF; i++) {
        if (strcmp(name, s_level_names[i]) == 0) {
            return i;
        }
    }
    return -1;
}

void s3s_log(enum s3s_log_level level, const char *subject, const char *fmt, ...)
{
    if ((int)level < atomic_load(&g_log_level) || level >= S3S_LOG_OFF) {
        return;
    }
    char line[4096];
    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    time_t secs = tv.tv_sec;
    gmtime_r(&secs, &tm);
    int n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s %s ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, (long)(tv.tv_usec / 1000), s_level_names[level], subject);
    if (n < 0) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    if (m < 0) {
        return;
    }
    size_t len = (size_t)n + (size_t)m;
    if (len > sizeof(line) - 2) {
        len = sizeof(line) - 2;
    }
    line[len++] = '\n';
    /* A short or failed write to the log is dropped: logging must not stop
     * request processing. */
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}
