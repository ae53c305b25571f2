/*
 * log.c - formats each event into one buffer and writes it with a single
 * write(2), so lines from several threads never interleave. JSON lines are
 * written by json-c (never escaped by hand).
 */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static atomic_int g_log_level = S3S_LOG_INFO;
static atomic_int g_log_format = S3S_LOG_FORMAT_TEXT;
/* The access log's descriptor, -1: stderr. Its number never changes once
 * open: a reopen dup2()s the new file onto it. */
static atomic_int g_access_fd = -1;
static char *g_access_path;

static const char *const s_level_names[] = {"debug", "info", "warn", "error", "off"};
static const char *const s_format_names[] = {"text", "json"};

/* The longest message and the longest rendered line. */
#define S_MSG_MAX 4096
#define S_LINE_MAX (64 * 1024)

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

void s3s_log_set_format(enum s3s_log_format format) { atomic_store(&g_log_format, (int)format); }
enum s3s_log_format s3s_log_get_format(void)
{
    return (enum s3s_log_format)atomic_load(&g_log_format);
}

int s3s_log_format_parse(const char *name)
{
    for (int i = 0; i <= S3S_LOG_FORMAT_JSON; i++) {
        if (strcmp(name, s_format_names[i]) == 0) {
            return i;
        }
    }
    return -1;
}

/* ------------------------------------------------------------- rendering */

/* RFC 3339 in UTC with milliseconds: 2024-05-01T12:00:00.123Z */
static void s_time(char out[64], const struct timeval *tv)
{
    struct tm tm;
    time_t secs = tv->tv_sec;
    gmtime_r(&secs, &tm);
    snprintf(out, 64, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (long)(tv->tv_usec / 1000) % 1000);
}

/* The length of the valid UTF-8 sequence at p (RFC 3629: no overlong
 * forms, no surrogates, nothing past U+10FFFF), 0 if there is none. */
static size_t s_utf8_len(const uint8_t *p, size_t n)
{
    uint8_t c = p[0];
    if (c < 0x80) {
        return 1;
    }
    size_t len;
    uint8_t lo = 0x80, hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        lo = c == 0xe0 ? 0xa0 : 0x80;
        hi = c == 0xed ? 0x9f : 0xbf;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        lo = c == 0xf0 ? 0x90 : 0x80;
        hi = c == 0xf4 ? 0x8f : 0xbf;
    } else {
        return 0;
    }
    if (n < len || p[1] < lo || p[1] > hi) {
        return 0;
    }
    for (size_t i = 2; i < len; i++) {
        if (p[i] < 0x80 || p[i] > 0xbf) {
            return 0;
        }
    }
    return len;
}

/* A JSON string of bytes: valid UTF-8 as it is (json-c escapes quotes,
 * backslashes and control bytes), every other byte as U+FFFD; NULL when
 * there are no bytes (written as null). */
static json_object *s_json_str(struct s3s_cur c)
{
    if (!c.ptr || c.len == 0) {
        return NULL;
    }
    char *tmp = s3s_malloc(c.len * 3 + 1);
    if (!tmp) {
        return NULL;
    }
    size_t o = 0;
    for (size_t i = 0; i < c.len;) {
        size_t n = s_utf8_len(c.ptr + i, c.len - i);
        if (n == 0) {
            memcpy(tmp + o, "\xef\xbf\xbd", 3);
            o += 3;
            i++;
        } else {
            memcpy(tmp + o, c.ptr + i, n);
            o += n;
            i += n;
        }
    }
    json_object *j = json_object_new_string_len(tmp, (int)o);
    s3s_free(&tmp);
    return j;
}

static json_object *s_json_cstr(const char *s)
{
    return s ? s_json_str(s3s_cur_from_str(s)) : NULL;
}

/* Adds a member; false when memory ran out (`val` NULL is a null member
 * unless `have` says the value was there and could not be made). */
static bool s_add(json_object *o, const char *name, json_object *val, bool have)
{
    if (!val && have) {
        return false;
    }
    return json_object_object_add(o, name, val) == 0;
}

/* The object's members common to every line. */
static bool s_json_head(json_object *o, const struct timeval *tv, enum s3s_log_level level,
                        const char *subject, struct s3s_cur message)
{
    char tb[64];
    s_time(tb, tv);
    return s_add(o, "time", json_object_new_string(tb), true) &&
           s_add(o, "level", json_object_new_string(s_level_names[level]), true) &&
           s_add(o, "component", s_json_cstr(subject), subject && *subject) &&
           s_add(o, "message", message.len ? s_json_str(message) : json_object_new_string(""),
                 true);
}

static s3s_result s_json_out(struct s3s_buf *out, json_object *o, bool ok)
{
    if (!ok) {
        json_object_put(o);
        S3S_BAIL(S3S_ERR_NOMEM);
    }
    size_t len = 0;
    const char *s = json_object_to_json_string_length(
        o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
    s3s_result res = s ? s3s_buf_append(out, s, len) : s3s_err(S3S_ERR_NOMEM);
    json_object_put(o);
    return res;
}

s3s_result s3s_log_render(struct s3s_buf *out, enum s3s_log_format format,
                          const struct timeval *tv, enum s3s_log_level level,
                          const char *subject, struct s3s_cur message)
{
    S3S_ENSURE((int)level >= 0 && level < S3S_LOG_OFF, S3S_ERR_INVALID_ARG);
    if (format == S3S_LOG_FORMAT_JSON) {
        json_object *o = json_object_new_object();
        S3S_ENSURE(o != NULL, S3S_ERR_NOMEM);
        return s_json_out(out, o, s_json_head(o, tv, level, subject, message));
    }
    char tb[64];
    s_time(tb, tv);
    S3S_GUARD(s3s_buf_appendf(out, "%s %s %s ", tb, s_level_names[level], subject));
    /* One event, one line: a control byte that reached the message (a
     * client's bytes a caller failed to escape) is written as %XX, so no
     * one can end the line and forge another. */
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < message.len; i++) {
        uint8_t ch = message.ptr[i];
        if (ch < 0x20 || ch == 0x7f) {
            uint8_t enc[3] = {'%', (uint8_t)hex[ch >> 4], (uint8_t)hex[ch & 15]};
            S3S_GUARD(s3s_buf_append(out, enc, 3));
        } else {
            S3S_GUARD(s3s_buf_append_byte(out, ch));
        }
    }
    return s3s_ok();
}

s3s_result s3s_log_render_access(struct s3s_buf *out, const struct timeval *tv,
                                 const struct s3s_log_access_fields *f)
{
    json_object *o = json_object_new_object();
    S3S_ENSURE(o != NULL, S3S_ERR_NOMEM);
    char msg[96], ms[32];
    snprintf(msg, sizeof(msg), "%s %d", f->operation ? f->operation : "-", f->status);
    /* One decimal, as the text line has it (json-c would print 17 digits). */
    snprintf(ms, sizeof(ms), "%.1f", f->duration_ms);
    bool ok = s_json_head(o, tv, S3S_LOG_INFO, "access", s3s_cur_from_str(msg)) &&
              s_add(o, "request_id", s_json_cstr(f->request_id), f->request_id && *f->request_id) &&
              s_add(o, "remote", s_json_cstr(f->remote), f->remote && *f->remote) &&
              s_add(o, "method", s_json_str(f->method), f->method.len > 0) &&
              s_add(o, "operation", s_json_cstr(f->operation), f->operation && *f->operation) &&
              s_add(o, "bucket", s_json_str(f->bucket), f->bucket.len > 0) &&
              s_add(o, "key", s_json_str(f->key), f->key.len > 0) &&
              s_add(o, "status", json_object_new_int(f->status), true) &&
              s_add(o, "bytes_in", json_object_new_uint64(f->bytes_in), true) &&
              s_add(o, "bytes_out", json_object_new_uint64(f->bytes_out), true) &&
              s_add(o, "duration_ms", json_object_new_double_s(f->duration_ms, ms), true) &&
              s_add(o, "access_key", s_json_str(f->access_key), f->access_key.len > 0) &&
              s_add(o, "error", s_json_cstr(f->error), f->error && *f->error);
    return s_json_out(out, o, ok);
}

/* ---------------------------------------------------------------- output */

/* Appends the newline and writes the line with one write(2). A short or
 * failed write is dropped: logging must not stop request processing. */
static void s_write_line(int fd, struct s3s_buf *line)
{
    if (s3s_failed(s3s_buf_append_byte(line, '\n'))) {
        line->ptr[line->len - 1] = '\n'; /* full: the line ends where it was cut */
    }
    ssize_t w = write(fd, line->ptr, line->len);
    (void)w;
}

/* Renders and writes one line; a line that does not fit is cut (text) or
 * replaced by a note of its subject (JSON: a cut object would not parse). */
static void s_emit_format(int fd, enum s3s_log_format format, enum s3s_log_level level,
                          const char *subject, struct s3s_cur msg)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct s3s_buf line;
    if (s3s_failed(s3s_buf_init(&line, 512, S_LINE_MAX))) {
        return;
    }
    s3s_result res = s3s_log_render(&line, format, &tv, level, subject, msg);
    if (s3s_failed(res) && format == S3S_LOG_FORMAT_JSON) {
        s3s_buf_reset(&line);
        res = s3s_log_render(&line, format, &tv, level, subject, S3S_CUR_LIT("(line too long)"));
    }
    if (s3s_is_ok(res) || (format == S3S_LOG_FORMAT_TEXT && line.len > 0)) {
        s_write_line(fd, &line);
    }
    s3s_buf_clean_up(&line);
}

void s3s_log(enum s3s_log_level level, const char *subject, const char *fmt, ...)
{
    if ((int)level < atomic_load(&g_log_level) || level >= S3S_LOG_OFF) {
        return;
    }
    char msg[S_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (m < 0) {
        return;
    }
    size_t len = (size_t)m < sizeof(msg) ? (size_t)m : sizeof(msg) - 1;
    s_emit_format(STDERR_FILENO, s3s_log_get_format(), level, subject, s3s_cur_from(msg, len));
}

/* The access lines' descriptor, or -1 when they are not written. */
static int s_access_fd(void)
{
    int fd = atomic_load(&g_access_fd);
    if (fd < 0) {
        fd = S3S_LOG_INFO < atomic_load(&g_log_level) ? -1 : STDERR_FILENO;
    }
    return fd;
}

void s3s_log_access_json(const struct s3s_log_access_fields *f)
{
    int fd = s_access_fd();
    if (fd < 0) {
        return;
    }
    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct s3s_buf line;
    if (s3s_failed(s3s_buf_init(&line, 1024, S_LINE_MAX))) {
        return;
    }
    if (s3s_is_ok(s3s_log_render_access(&line, &tv, f))) {
        s_write_line(fd, &line);
    }
    s3s_buf_clean_up(&line);
}

void s3s_log_access_text(const char *fmt, ...)
{
    int fd = s_access_fd();
    if (fd < 0) {
        return;
    }
    char msg[S_MSG_MAX * 4];
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (m < 0) {
        return;
    }
    size_t len = (size_t)m < sizeof(msg) ? (size_t)m : sizeof(msg) - 1;
    s_emit_format(fd, S3S_LOG_FORMAT_TEXT, S3S_LOG_INFO, "access", s3s_cur_from(msg, len));
}

/* ------------------------------------------------------------ access file */

static int s_open_access(const char *path, char *why, size_t why_len)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0640);
    if (fd < 0) {
        snprintf(why, why_len, "access_log %s: %s", path, strerror(errno));
    }
    return fd;
}

s3s_result s3s_log_access_open(const char *path, char *why, size_t why_len)
{
    if (!path) {
        s3s_log_access_close();
        return s3s_ok();
    }
    int fd = s_open_access(path, why, why_len);
    S3S_ENSURE(fd >= 0, S3S_ERR_IO);
    char *copy = s3s_strdup(path);
    if (!copy) {
        close(fd);
        S3S_BAIL(S3S_ERR_NOMEM);
    }
    int old = atomic_load(&g_access_fd);
    if (old >= 0) {
        /* In place: writers holding the number write to one file or the
         * other. */
        if (dup2(fd, old) < 0) {
            snprintf(why, why_len, "access_log %s: %s", path, strerror(errno));
            close(fd);
            s3s_free(&copy);
            S3S_BAIL(S3S_ERR_IO);
        }
        close(fd);
    } else {
        atomic_store(&g_access_fd, fd);
    }
    s3s_free(&g_access_path);
    g_access_path = copy;
    return s3s_ok();
}

s3s_result s3s_log_access_reopen(char *why, size_t why_len)
{
    if (!g_access_path) {
        return s3s_ok();
    }
    int old = atomic_load(&g_access_fd);
    int fd = s_open_access(g_access_path, why, why_len);
    S3S_ENSURE(fd >= 0, S3S_ERR_IO);
    if (dup2(fd, old) < 0) {
        snprintf(why, why_len, "access_log %s: %s", g_access_path, strerror(errno));
        close(fd);
        S3S_BAIL(S3S_ERR_IO);
    }
    close(fd);
    return s3s_ok();
}

void s3s_log_access_close(void)
{
    int fd = atomic_exchange(&g_access_fd, -1);
    if (fd >= 0) {
        close(fd);
    }
    s3s_free(&g_access_path);
}
