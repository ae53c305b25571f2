/*
 * backend.c - requests to the backend signed with its own keys (see
 * backend.h): the one builder, and the blocking client of the thread pool
 * and the commands.
 */
#include <string.h>

#include "proxy/backend.h"
#include "proxy/proxy.h"
#include "sse/sse.h"

void s3s_backend_easy_options(CURL *e, const struct s3s_config *cfg)
{
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(e, CURLOPT_PATH_AS_IS, 1L); /* what is signed is what is sent */
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)cfg->limits.backend_timeout_ms);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, cfg->backend.tls_verify ? 1L : 0L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, cfg->backend.tls_verify ? 2L : 0L);
    if (cfg->backend.ca_file) {
        curl_easy_setopt(e, CURLOPT_CAINFO, cfg->backend.ca_file);
    }
}

bool s3s_backend_is_object_header(struct s3s_cur name)
{
    static const char *const keep[] = {
        "content-type", "cache-control", "content-disposition", "content-encoding",
        "content-language", "expires", "x-amz-storage-class", "x-amz-website-redirect-location",
        "x-amz-acl", NULL,
    };
    for (size_t i = 0; keep[i]; i++) {
        if (s3s_cur_eq_str_ignore_case(name, keep[i])) {
            return true;
        }
    }
    if (s3s_cur_starts_with_ignore_case(name, "x-amz-grant-")) {
        return true;
    }
    return s3s_cur_starts_with_ignore_case(name, "x-amz-meta-") &&
           !s3s_cur_starts_with_ignore_case(name, S3S_SSE_META_PREFIX);
}

/* Appends one header line to the list; an empty value needs libcurl's
 * "Name;" spelling, since "Name:" would remove the header. */
static s3s_result s_add_line(struct curl_slist **list, struct s3s_buf *b, struct s3s_cur name,
                             struct s3s_cur value)
{
    s3s_buf_reset(b);
    S3S_GUARD(s3s_buf_append_cur(b, name));
    if (value.len == 0) {
        S3S_GUARD(s3s_buf_append_byte(b, ';'));
    } else {
        S3S_GUARD(s3s_buf_append(b, ": ", 2));
        S3S_GUARD(s3s_buf_append_cur(b, value));
    }
    const char *line;
    S3S_GUARD(s3s_buf_cstr(b, &line));
    struct curl_slist *l = curl_slist_append(*list, line);
    S3S_ENSURE(l != NULL, S3S_ERR_NOMEM);
    *list = l;
    return s3s_ok();
}

s3s_result s3s_backend_sign(const struct s3s_config *cfg, const char *method,
                            struct s3s_cur path, struct s3s_cur query,
                            const struct s3s_sigv4_header *hv, size_t nh, bool with_body,
                            struct s3s_buf *url, struct s3s_buf *scratch,
                            struct curl_slist **headers)
{
    char amz_date[17];
    int64_t now = s3s_now_real(NULL);
    s3s_time_format_iso8601_basic(now, amz_date);
    struct s3s_cur payload = with_body ? S3S_CUR_LIT(S3S_SIGV4_UNSIGNED_PAYLOAD)
                                       : S3S_CUR_LIT(S3S_SIGV4_EMPTY_SHA256);
    /* The request's headers and the three added here; on the stack for
     * the usual few dozen. */
    struct s3s_sigv4_header stack[64];
    struct s3s_sigv4_header *all = nh + 3 <= 64 ? stack : s3s_calloc(nh + 3, sizeof(*all));
    S3S_ENSURE(all != NULL, S3S_ERR_NOMEM);
    if (nh) {
        memcpy(all, hv, nh * sizeof(*all));
    }
    size_t n = nh;
    all[n++] = (struct s3s_sigv4_header){S3S_CUR_LIT("host"),
                                         s3s_cur_from_str(cfg->backend.host_header)};
    all[n++] = (struct s3s_sigv4_header){S3S_CUR_LIT("x-amz-date"), s3s_cur_from(amz_date, 16)};
    all[n++] = (struct s3s_sigv4_header){S3S_CUR_LIT("x-amz-content-sha256"), payload};

    s3s_result res = s3s_buf_appendf(url, "%s://%s", cfg->backend.scheme, cfg->backend.host_header);
    if (s3s_is_ok(res)) {
        res = s3s_buf_append_cur(url, path);
    }
    if (s3s_is_ok(res) && query.len) {
        res = s3s_buf_append_byte(url, '?');
        if (s3s_is_ok(res)) {
            res = s3s_buf_append_cur(url, query);
        }
    }
    if (s3s_failed(res)) {
        if (all != stack) {
            s3s_free(&all);
        }
        S3S_BAIL(S3S_ERR_URI_TOO_LONG);
    }

    struct s3s_buf auth;
    res = s3s_buf_init(&auth, 0, 4096);
    if (s3s_is_ok(res)) {
        struct s3s_sigv4_request view = {s3s_cur_from_str(method), path, query, all, n};
        struct s3s_sigv4_credentials creds = {s3s_cur_from_str(cfg->backend.access_key),
                                              &cfg->backend.secret_key};
        res = s3s_sigv4_sign(&view, &creds, cfg->backend.region, "s3", now, payload, &auth);
        for (size_t i = 0; s3s_is_ok(res) && i < n; i++) {
            res = s_add_line(headers, scratch, all[i].name, all[i].value);
        }
        if (s3s_is_ok(res)) {
            res = s_add_line(headers, scratch, S3S_CUR_LIT("Authorization"), s3s_buf_cur(&auth));
        }
        s3s_buf_clean_up_secure(&auth);
    }
    if (all != stack) {
        s3s_free(&all);
    }
    S3S_GUARD(res);
    /* No "Expect: 100-continue" round trip and no default Accept. */
    static const char *const off[] = {"Expect:", "Accept:"};
    for (size_t i = 0; i < 2; i++) {
        struct curl_slist *l = curl_slist_append(*headers, off[i]);
        S3S_ENSURE(l != NULL, S3S_ERR_NOMEM);
        *headers = l;
    }
    return s3s_ok();
}

/* ---------------------------------------------------- the blocking client */

s3s_result s3s_backend_resp_init(struct s3s_backend_resp *resp, size_t body_max)
{
    memset(resp, 0, sizeof(*resp));
    S3S_GUARD(s3s_buf_init(&resp->body, 0, body_max));
    return s3s_buf_init(&resp->headers, 0, 65536);
}

void s3s_backend_resp_clean_up(struct s3s_backend_resp *resp)
{
    s3s_buf_clean_up(&resp->body);
    s3s_buf_clean_up(&resp->headers);
}

static size_t s_body_cb(char *p, size_t size, size_t n, void *ud)
{
    struct s3s_backend_resp *r = ud;
    if (r->sink) {
        return s3s_is_ok(r->sink(r->sink_ctx, (const uint8_t *)p, size * n)) ? size * n : 0;
    }
    return s3s_is_ok(s3s_buf_append(&r->body, p, size * n)) ? size * n : 0;
}

static size_t s_header_cb(char *p, size_t size, size_t n, void *ud)
{
    struct s3s_backend_resp *r = ud;
    struct s3s_cur line = s3s_cur_from(p, size * n), name;
    while (line.len && (line.ptr[line.len - 1] == '\n' || line.ptr[line.len - 1] == '\r')) {
        line.len--;
    }
    if (s3s_cur_starts_with(line, "HTTP/")) {
        s3s_buf_reset(&r->headers); /* a new head (after a 100 Continue, say) */
        return size * n;
    }
    if (!s3s_cur_split(&line, ':', &name)) {
        return size * n;
    }
    return s3s_is_ok(s3s_hdrlist_add(&r->headers, name, s3s_cur_trim(line))) ? size * n : 0;
}

s3s_result s3s_backend_perform(const struct s3s_config *cfg, const char *method,
                               struct s3s_cur raw_path, struct s3s_cur raw_query,
                               const struct s3s_sigv4_header *hv, size_t nh, long timeout_ms,
                               struct s3s_backend_resp *resp)
{
    s3s_result res = s3s_err(S3S_ERR_NOMEM);
    struct s3s_buf path = {0}, query = {0}, url = {0}, line = {0};
    struct curl_slist *list = NULL;
    CURL *e = NULL;
    resp->status = 0;
    resp->error[0] = '\0';
    if (s3s_failed(s3s_buf_init(&path, 0, 65536)) || s3s_failed(s3s_buf_init(&query, 0, 65536)) ||
        s3s_failed(s3s_buf_init(&url, 0, 140000)) || s3s_failed(s3s_buf_init(&line, 0, 70000))) {
        goto out;
    }
    if (s3s_failed(s3s_sigv4_canonical_path(raw_path, &path)) ||
        s3s_failed(s3s_sigv4_canonical_query(raw_query, false, &query))) {
        res = s3s_err(S3S_ERR_INVALID_URI);
        goto out;
    }
    bool upload = strcmp(method, "PUT") == 0 && resp->upload;
    res = s3s_backend_sign(cfg, method, s3s_buf_cur(&path), s3s_buf_cur(&query), hv, nh, upload,
                           &url, &line, &list);
    const char *u;
    if (s3s_is_ok(res)) {
        res = s3s_buf_cstr(&url, &u);
    }
    if (s3s_failed(res)) {
        goto out;
    }
    res = s3s_err(S3S_ERR_NOMEM);
    if (!(e = curl_easy_init())) {
        goto out;
    }
    curl_easy_setopt(e, CURLOPT_URL, u);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, list);
    s3s_backend_easy_options(e, cfg);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, resp->error);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, s_body_cb);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, resp);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, s_header_cb);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, resp);
    if (timeout_ms > 0) {
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms);
    }
    if (strcmp(method, "HEAD") == 0) {
        curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    } else if (upload) {
        curl_easy_setopt(e, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(e, CURLOPT_READDATA, resp->upload);
        curl_easy_setopt(e, CURLOPT_INFILESIZE_LARGE, (curl_off_t)resp->upload_len);
    } else if (strcmp(method, "GET") != 0) {
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
        if (strcmp(method, "PUT") == 0 || strcmp(method, "POST") == 0) {
            curl_easy_setopt(e, CURLOPT_POSTFIELDS, "");
            curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, 0L);
        }
    }
    s3s_buf_reset(&resp->body);
    s3s_buf_reset(&resp->headers);
    CURLcode rc = curl_easy_perform(e);
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &resp->status);
    if (rc == CURLE_OK) {
        res = s3s_ok();
    } else {
        if (!resp->error[0]) {
            snprintf(resp->error, sizeof(resp->error), "%s", curl_easy_strerror(rc));
        }
        res = s3s_err(rc == CURLE_OPERATION_TIMEDOUT ? S3S_ERR_GATEWAY_TIMEOUT
                                                     : S3S_ERR_BAD_GATEWAY);
    }
out:
    if (e) {
        curl_easy_cleanup(e);
    }
    curl_slist_free_all(list);
    s3s_buf_clean_up(&path);
    s3s_buf_clean_up(&query);
    s3s_buf_clean_up(&url);
    s3s_buf_clean_up(&line);
    return res;
}
