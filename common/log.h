/*
 * log.h - the diagnostic log: levels, a subject per module, one line per event
 * in key=value form on stderr. Never pass secrets, Authorization headers,
 * signatures or key material to these functions.
 */
#ifndef S3S_LOG_H
#define S3S_LOG_H

enum s3s_log_level { S3S_LOG_DEBUG = 0, S3S_LOG_INFO, S3S_LOG_WARN, S3S_LOG_ERROR, S3S_LOG_OFF };

void s3s_log_set_level(enum s3s_log_level level);
enum s3s_log_level s3s_log_get_level(void);
/* Parses "debug", "info", "warn", "error", "off"; returns -1 if unknown. */
int s3s_log_level_parse(const char *name);

void s3s_log(enum s3s_log_level level, const char *subject, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define S3S_LOGD(subj, ...) s3s_log(S3S_LOG_DEBUG, subj, __VA_ARGS__)
#define S3S_LOGI(subj, ...) s3s_log(S3S_LOG_INFO, subj, __VA_ARGS__)
#define S3S_LOGW(subj, ...) s3s_log(S3S_LOG_WARN, subj, __VA_ARGS__)
#define S3S_LOGE(subj, ...) s3s_log(S3S_LOG_ERROR, subj, __VA_ARGS__)

#endif
