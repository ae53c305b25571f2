/*
 * log.h - the diagnostic log: levels, a subject per module, one line per event
 * on stderr, in key=value text (the default) or as one JSON object per line
 * (log_format: json); and the access log, one line per request, on stderr
 * with the rest or in its own file (access_log), reopened for logrotate.
 * Never pass secrets, Authorization headers, signatures or key material to
 * these functions.
 */
#ifndef S3S_LOG_H
#define S3S_LOG_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/time.h>

#include "common/common.h"

enum s3s_log_level { S3S_LOG_DEBUG = 0, S3S_LOG_INFO, S3S_LOG_WARN, S3S_LOG_ERROR, S3S_LOG_OFF };

void s3s_log_set_level(enum s3s_log_level level);
enum s3s_log_level s3s_log_get_level(void);
/* Parses "debug", "info", "warn", "error", "off"; returns -1 if unknown. */
int s3s_log_level_parse(const char *name);

/* The form of every line: text "TIME LEVEL SUBJECT key=value..." or one JSON
 * object per line. Thread-safe; takes effect from the next line. */
enum s3s_log_format { S3S_LOG_FORMAT_TEXT = 0, S3S_LOG_FORMAT_JSON };
void s3s_log_set_format(enum s3s_log_format format);
enum s3s_log_format s3s_log_get_format(void);
/* Parses "text", "json"; returns -1 if unknown. */
int s3s_log_format_parse(const char *name);

void s3s_log(enum s3s_log_level level, const char *subject, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define S3S_LOGD(subj, ...) s3s_log(S3S_LOG_DEBUG, subj, __VA_ARGS__)
#define S3S_LOGI(subj, ...) s3s_log(S3S_LOG_INFO, subj, __VA_ARGS__)
#define S3S_LOGW(subj, ...) s3s_log(S3S_LOG_WARN, subj, __VA_ARGS__)
#define S3S_LOGE(subj, ...) s3s_log(S3S_LOG_ERROR, subj, __VA_ARGS__)

/* One request's access line. The cursors are the bytes as the client sent
 * them (decoded bucket and key): the JSON writer escapes them (json-c) and
 * writes bytes that are not UTF-8 as U+FFFD, so no field can end the line
 * or forge another member. An empty cursor or NULL string is null. */
struct s3s_log_access_fields {
    const char *request_id;
    const char *remote;
    struct s3s_cur method;
    const char *operation; /* s3seal's name of the operation (s3_op.h) */
    struct s3s_cur bucket;
    struct s3s_cur key;
    int status;
    uint64_t bytes_in, bytes_out;
    double duration_ms;
    struct s3s_cur access_key;
    const char *error; /* the S3 error code answered; NULL: none */
};

/* The line writers, without the newline, appended to `out` (pure, for
 * tests). A diagnostic line: in text, the message's control bytes are
 * written as %XX; in JSON, the members time, level, component and message.
 * An access line (JSON): time, level, component "access", message, then
 * the members of `f` under their names. Fails only when `out` is full or
 * memory runs out. */
S3S_RESULT s3s_log_render(struct s3s_buf *out, enum s3s_log_format format,
                          const struct timeval *tv, enum s3s_log_level level,
                          const char *subject, struct s3s_cur message);
S3S_RESULT s3s_log_render_access(struct s3s_buf *out, const struct timeval *tv,
                                 const struct s3s_log_access_fields *f);

/* The access log's file (access_log): opened O_APPEND (created 0640 before
 * the umask), so each line is one write(2) that never interleaves with
 * another, on the worker's thread (a local file's append does not wait on
 * the network; a full disk drops lines, it never stops requests). NULL
 * path: access lines go to stderr with the diagnostic log (as without the
 * setting). Call from one thread at a time (start-up, the signal loop). On
 * error `why` says which file and why; the previous destination stays. */
S3S_RESULT s3s_log_access_open(const char *path, char *why, size_t why_len);
/* SIGUSR1: opens the same path again (logrotate moved the file away) and
 * puts it in place of the old one atomically (dup2), so a line being
 * written by another thread goes to the old file or the new one, never
 * elsewhere. No-op without an access_log. */
S3S_RESULT s3s_log_access_reopen(char *why, size_t why_len);
/* Closes the file (at exit). */
void s3s_log_access_close(void);

/* Writes one access line: the JSON object of `f` (log_format: json), or the
 * text line whose message is `fmt` (its caller escapes what a client
 * chose). To the access_log file (whatever log_level says: it was asked
 * for), else to stderr at level info. */
void s3s_log_access_json(const struct s3s_log_access_fields *f);
void s3s_log_access_text(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
