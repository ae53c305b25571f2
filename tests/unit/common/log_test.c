/* log_test.c - the log line writers: text lines keep their form with
 * control bytes escaped; JSON lines parse (json-c) into one object with the
 * stable member names, whatever bytes a client put in a key; the access log
 * file is appended to and reopened in place. */
#include <fcntl.h>
#include <json-c/json.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "testlib.h"

static const struct timeval s_tv = {1714564800, 123456}; /* 2024-05-01T12:00:00.123Z */

/* Parses a rendered line: exactly one JSON object, nothing after it, no
 * raw newline or other control byte in it. */
static json_object *s_parse(const struct s3s_buf *b)
{
    for (size_t i = 0; i < b->len; i++) {
        if (b->ptr[i] < 0x20) {
            fprintf(stderr, "control byte 0x%02x at %zu in the JSON line\n", b->ptr[i], i);
            return NULL;
        }
    }
    json_tokener *tok = json_tokener_new();
    json_object *o = json_tokener_parse_ex(tok, (const char *)b->ptr, (int)b->len);
    bool whole = json_tokener_get_error(tok) == json_tokener_success &&
                 (size_t)json_tokener_get_parse_end(tok) == b->len;
    json_tokener_free(tok);
    if (!whole || !o || !json_object_is_type(o, json_type_object)) {
        json_object_put(o);
        return NULL;
    }
    return o;
}

static const char *s_member(json_object *o, const char *name)
{
    json_object *v = NULL;
    if (!json_object_object_get_ex(o, name, &v) || !v) {
        return NULL;
    }
    return json_object_get_string(v);
}

static void test_text_line(void)
{
    struct s3s_buf b;
    T_OK(s3s_buf_init(&b, 0, 4096));
    T_OK(s3s_log_render(&b, S3S_LOG_FORMAT_TEXT, &s_tv, S3S_LOG_WARN, "server",
                        S3S_CUR_LIT("worker=0 a\nb\x7f")));
    T_BUFEQ(b, "2024-05-01T12:00:00.123Z warn server worker=0 a%0Ab%7F");
    s3s_buf_clean_up(&b);
}

static void test_json_line(void)
{
    struct s3s_buf b;
    T_OK(s3s_buf_init(&b, 0, 4096));
    T_OK(s3s_log_render(&b, S3S_LOG_FORMAT_JSON, &s_tv, S3S_LOG_ERROR, "server",
                        S3S_CUR_LIT("cannot bind \"x\"\n{\"level\":\"info\"}/")));
    json_object *o = s_parse(&b);
    T_CHECK(o != NULL);
    if (o) {
        T_STREQ(s_member(o, "time"), "2024-05-01T12:00:00.123Z");
        T_STREQ(s_member(o, "level"), "error");
        T_STREQ(s_member(o, "component"), "server");
        T_STREQ(s_member(o, "message"), "cannot bind \"x\"\n{\"level\":\"info\"}/");
        T_CHECK(json_object_object_length(o) == 4);
        json_object_put(o);
    }
    /* Slashes are not escaped: paths stay readable. */
    T_CHECK(memmem(b.ptr, b.len, "}/", 2) != NULL);
    s3s_buf_clean_up(&b);
}

static void test_access_line(void)
{
    struct s3s_buf b;
    T_OK(s3s_buf_init(&b, 0, 64 * 1024));
    /* A key with a newline, a quote, a forged member, a NUL and bytes that
     * are not UTF-8 (a lone continuation byte, an overlong '/', a
     * surrogate), then valid multi-byte characters. */
    static const char key[] = "a\n\"}{\"status\":200,\"x\":\"\x00z\x80\xc0\xaf\xed\xa0\x80"
                              "\xc3\xa9\xe2\x82\xac\xf0\x9f\x94\x92";
    struct s3s_log_access_fields f = {
        .request_id = "0123456789ABCDEF",
        .remote = "127.0.0.1",
        .method = S3S_CUR_LIT("PUT"),
        .operation = "PutObject",
        .bucket = S3S_CUR_LIT("bucket-1"),
        .key = s3s_cur_from(key, sizeof(key) - 1),
        .status = 403,
        .bytes_in = 5,
        .bytes_out = 243,
        .duration_ms = 12.345,
        .access_key = S3S_CUR_LIT("AKIDEXAMPLE"),
        .error = "SignatureDoesNotMatch",
    };
    T_OK(s3s_log_render_access(&b, &s_tv, &f));
    json_object *o = s_parse(&b);
    T_CHECK(o != NULL);
    if (o) {
        T_STREQ(s_member(o, "time"), "2024-05-01T12:00:00.123Z");
        T_STREQ(s_member(o, "level"), "info");
        T_STREQ(s_member(o, "component"), "access");
        T_STREQ(s_member(o, "message"), "PutObject 403");
        T_STREQ(s_member(o, "request_id"), "0123456789ABCDEF");
        T_STREQ(s_member(o, "remote"), "127.0.0.1");
        T_STREQ(s_member(o, "method"), "PUT");
        T_STREQ(s_member(o, "operation"), "PutObject");
        T_STREQ(s_member(o, "bucket"), "bucket-1");
        T_STREQ(s_member(o, "access_key"), "AKIDEXAMPLE");
        T_STREQ(s_member(o, "error"), "SignatureDoesNotMatch");
        json_object *v = NULL;
        T_CHECK(json_object_object_get_ex(o, "status", &v) && json_object_get_int(v) == 403);
        T_CHECK(json_object_object_get_ex(o, "bytes_in", &v) && json_object_get_uint64(v) == 5);
        T_CHECK(json_object_object_get_ex(o, "bytes_out", &v) &&
                json_object_get_uint64(v) == 243);
        T_CHECK(json_object_object_get_ex(o, "duration_ms", &v) &&
                json_object_is_type(v, json_type_double) && json_object_get_double(v) > 12.29 &&
                json_object_get_double(v) < 12.41);
        /* The key comes back as it was, but for its bytes that are not
         * UTF-8 (U+FFFD each); the NUL is \u0000, not the end of it. */
        T_CHECK(json_object_object_get_ex(o, "key", &v));
        static const char want[] = "a\n\"}{\"status\":200,\"x\":\"\x00z"
                                   "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"
                                   "\xef\xbf\xbd\xc3\xa9\xe2\x82\xac\xf0\x9f\x94\x92";
        T_CHECK(v && (size_t)json_object_get_string_len(v) == sizeof(want) - 1 &&
                memcmp(json_object_get_string(v), want, sizeof(want) - 1) == 0);
        T_CHECK(json_object_object_length(o) == 16);
        json_object_put(o);
    }

    /* Absent fields are null, never missing: the names are stable. */
    s3s_buf_reset(&b);
    struct s3s_log_access_fields empty = {.request_id = "0000000000000000",
                                          .remote = "::1",
                                          .method = S3S_CUR_LIT("GET"),
                                          .operation = "ListBuckets",
                                          .status = 200};
    T_OK(s3s_log_render_access(&b, &s_tv, &empty));
    o = s_parse(&b);
    T_CHECK(o != NULL);
    if (o) {
        json_object *v = (json_object *)1;
        T_CHECK(json_object_object_get_ex(o, "bucket", &v) && v == NULL);
        T_CHECK(json_object_object_get_ex(o, "key", &v) && v == NULL);
        T_CHECK(json_object_object_get_ex(o, "access_key", &v) && v == NULL);
        T_CHECK(json_object_object_get_ex(o, "error", &v) && v == NULL);
        T_CHECK(json_object_object_length(o) == 16);
        json_object_put(o);
    }
    /* A line larger than the buffer is refused, never cut. */
    struct s3s_buf small;
    T_OK(s3s_buf_init(&small, 0, 64));
    T_CHECK(s3s_failed(s3s_log_render_access(&small, &s_tv, &f)));
    s3s_buf_clean_up(&small);
    s3s_buf_clean_up(&b);
}

static void test_parse_names(void)
{
    T_CHECK(s3s_log_format_parse("text") == S3S_LOG_FORMAT_TEXT);
    T_CHECK(s3s_log_format_parse("json") == S3S_LOG_FORMAT_JSON);
    T_CHECK(s3s_log_format_parse("JSON") == -1);
    T_CHECK(s3s_log_format_parse("") == -1);
}

/* The access log file: lines appended; after a rename, a reopen writes to
 * a new file at the configured path, and the renamed one keeps its lines. */
static void test_access_file(void)
{
    char dir[] = "/tmp/s3s_log_test_XXXXXX";
    T_CHECK(mkdtemp(dir) != NULL);
    char path[128], moved[128], why[256] = "";
    snprintf(path, sizeof(path), "%s/access.log", dir);
    snprintf(moved, sizeof(moved), "%s/access.log.1", dir);
    s3s_log_set_format(S3S_LOG_FORMAT_TEXT);
    T_OK(s3s_log_access_open(path, why, sizeof(why)));
    s3s_log_access_text("req=1 key=%s", "a");
    T_CHECK(rename(path, moved) == 0);
    s3s_log_access_text("req=2 key=%s", "b");
    T_OK(s3s_log_access_reopen(why, sizeof(why)));
    s3s_log_set_format(S3S_LOG_FORMAT_JSON);
    struct s3s_log_access_fields f = {.request_id = "3", .method = S3S_CUR_LIT("GET"),
                                      .operation = "GetObject", .status = 200};
    s3s_log_access_json(&f);
    s3s_log_set_format(S3S_LOG_FORMAT_TEXT);
    size_t n1 = 0, n2 = 0;
    char *old = t_read_file(moved, &n1);
    char *cur = t_read_file(path, &n2);
    T_CHECK(old && strstr(old, " info access req=1 key=a\n") && strstr(old, "req=2 key=b\n") &&
            !strstr(old, "\"request_id\""));
    T_CHECK(cur && strncmp(cur, "{\"time\":", 8) == 0 && strstr(cur, "\"request_id\":\"3\"") &&
            cur[n2 - 1] == '\n' && memchr(cur, '\n', n2) == cur + n2 - 1);
    free(old);
    free(cur);
    /* A path that cannot be opened: refused, with the file named. */
    char bad[160];
    snprintf(bad, sizeof(bad), "%s/no/such/dir/access.log", dir);
    T_CHECK(s3s_failed(s3s_log_access_open(bad, why, sizeof(why))));
    T_CHECK(strstr(why, bad) != NULL);
    s3s_log_access_close();
    unlink(path);
    unlink(moved);
    rmdir(dir);
}

int main(void)
{
    test_text_line();
    test_json_line();
    test_access_line();
    test_parse_names();
    test_access_file();
    return t_finish("log");
}
