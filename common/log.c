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
    /* One event, one line: a control byte that reached the message (a
     * client's bytes a caller failed to escape) is written as %XX, so no
     * one can end the line and forge another. */
    char out[sizeof(line) * 3];
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)line[i];
        if (i >= (size_t)n && (ch < 0x20 || ch == 0x7f)) {
            out[o++] = '%';
            out[o++] = hex[ch >> 4];
            out[o++] = hex[ch & 15];
        } else {
            out[o++] = (char)ch;
        }
    }
    out[o++] = '\n';
    /* A short or failed write to the log is dropped: logging must not stop
     * request processing. */
    ssize_t w = write(STDERR_FILENO, out, o);
    (void)w;
}
