/*
 * verify_test.c - verification against the signatures AWS's S3 documentation
 * publishes (tests/vectors/s3-examples.json, replayed with an injected clock),
 * then every refusal AWS gives: wrong secret, unknown key, skewed clock,
 * wrong region or service, unsigned x-amz-* header, missing or bad
 * x-amz-content-sha256, tampered values, expired and over-long presigned
 * URLs, both auth mechanisms at once, anonymous. And a sign/verify round trip.
 */
#include <json-c/json.h>

#include "sigv4/sigv4.h"
#include "testlib.h"

#define MAXH 16

static int64_t g_now;
static struct s3s_secret g_secret;

static int64_t s_now(void *ctx)
{
    (void)ctx;
    return g_now;
}

static bool s_lookup(void *ctx, struct s3s_cur ak, const struct s3s_secret **secret,
                     const char **principal)
{
    (void)ctx;
    if (!s3s_cur_eq_str(ak, "AKIAIOSFODNN7EXAMPLE")) {
        return false;
    }
    *secret = &g_secret;
    *principal = "arn:aws:iam::111122223333:user/example";
    return true;
}

static struct s3s_sigv4_verify_options s_opts(void)
{
    return (struct s3s_sigv4_verify_options){s_lookup, NULL, "us-east-1", "s3", s_now, NULL,
                                             S3S_SIGV4_MAX_SKEW};
}

struct s_case {
    const char *method, *path, *query;
    struct s3s_sigv4_header h[MAXH];
    size_t nh;
    char authz[512];
};

static void s_load(struct json_object *c, struct s_case *k)
{
    memset(k, 0, sizeof(*k));
    k->method = json_object_get_string(json_object_object_get(c, "method"));
    k->path = json_object_get_string(json_object_object_get(c, "path"));
    struct json_object *q = json_object_object_get(c, "query");
    k->query = q ? json_object_get_string(q) : "";
    struct json_object *hs = json_object_object_get(c, "headers");
    for (size_t i = 0; hs && i < json_object_array_length(hs) && k->nh < MAXH - 1; i++) {
        struct json_object *p = json_object_array_get_idx(hs, i);
        k->h[k->nh].name = s3s_cur_from_str(json_object_get_string(json_object_array_get_idx(p, 0)));
        k->h[k->nh].value = s3s_cur_from_str(json_object_get_string(json_object_array_get_idx(p, 1)));
        k->nh++;
    }
    struct json_object *a = json_object_object_get(c, "authorization");
    if (a) {
        snprintf(k->authz, sizeof(k->authz), "%s", json_object_get_string(a));
        k->h[k->nh].name = S3S_CUR_LIT("Authorization");
        k->h[k->nh].value = s3s_cur_from_str(k->authz);
        k->nh++;
    }
}

static struct s3s_sigv4_request s_view(const struct s_case *k)
{
    return (struct s3s_sigv4_request){s3s_cur_from_str(k->method), s3s_cur_from_str(k->path),
                                      s3s_cur_from_str(k->query), k->h, k->nh};
}

static int32_t s_verify(const struct s_case *k, struct s3s_sigv4_verify_result *res)
{
    struct s3s_sigv4_request v = s_view(k);
    struct s3s_sigv4_verify_options o = s_opts();
    s3s_sigv4_verify_result_init(res);
    return s3s_sigv4_verify(&v, &o, res).code;
}

static int32_t s_verify_code(const struct s_case *k)
{
    struct s3s_sigv4_verify_result res;
    int32_t code = s_verify(k, &res);
    s3s_sigv4_verify_result_clean_up(&res);
    return code;
}

static void s_set_header(struct s_case *k, const char *name, const char *value)
{
    for (size_t i = 0; i < k->nh; i++) {
        if (s3s_cur_eq_str_ignore_case(k->h[i].name, name)) {
            k->h[i].value = s3s_cur_from_str(value);
            return;
        }
    }
    k->h[k->nh].name = s3s_cur_from_str(name);
    k->h[k->nh].value = s3s_cur_from_str(value);
    k->nh++;
}

static void s_header_cases(struct json_object *cases)
{
    const char *names[] = {"get-object-range", "put-object", "get-bucket-lifecycle", "list-objects"};
    for (size_t n = 0; n < 4; n++) {
        struct json_object *c = NULL;
        for (size_t i = 0; i < json_object_array_length(cases); i++) {
            struct json_object *x = json_object_array_get_idx(cases, i);
            if (strcmp(json_object_get_string(json_object_object_get(x, "name")), names[n]) == 0) {
                c = x;
            }
        }
        T_CHECK(c != NULL);
        if (!c) {
            continue;
        }
        struct s_case k;
        s_load(c, &k);
        struct s3s_sigv4_verify_result res;
        T_ERR((s3s_result){s_verify(&k, &res)}, S3S_OK);
        T_BUFEQ(res.canonical_request,
                json_object_get_string(json_object_object_get(c, "canonical_request")));
        T_BUFEQ(res.string_to_sign,
                json_object_get_string(json_object_object_get(c, "string_to_sign")));
        T_BUFEQ(res.access_key, "AKIAIOSFODNN7EXAMPLE");
        T_CHECK(!res.presigned && res.principal != NULL);
        s3s_sigv4_verify_result_clean_up(&res);

        /* Clock 16 minutes off either way. */
        int64_t t0 = g_now;
        g_now = t0 + 16 * 60;
        T_CHECK(s_verify_code(&k) == S3S_ERR_REQUEST_TIME_TOO_SKEWED);
        g_now = t0 - 16 * 60;
        T_CHECK(s_verify_code(&k) == S3S_ERR_REQUEST_TIME_TOO_SKEWED);
        g_now = t0 + 14 * 60;
        T_CHECK(s_verify_code(&k) == S3S_OK);
        g_now = t0;

        /* A tampered signed header. */
        struct s_case t = k;
        s_set_header(&t, "x-amz-date", "20130524T000001Z");
        T_CHECK(s_verify_code(&t) == S3S_ERR_SIGNATURE_DOES_NOT_MATCH);
    }
}

static void s_negative_cases(struct json_object *cases)
{
    struct s_case k;
    s_load(json_object_array_get_idx(cases, 1), &k); /* put-object */
    char buf[512];

    /* Wrong secret: SignatureDoesNotMatch with what we computed. */
    s3s_secret_destroy(&g_secret);
    T_OK(s3s_secret_from("wrong", 5, &g_secret));
    struct s3s_sigv4_verify_result res;
    T_CHECK(s_verify(&k, &res) == S3S_ERR_SIGNATURE_DOES_NOT_MATCH);
    T_CHECK(res.canonical_request.len > 0 && res.string_to_sign.len > 0);
    s3s_sigv4_verify_result_clean_up(&res);
    s3s_secret_destroy(&g_secret);
    T_OK(s3s_secret_from("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", 40, &g_secret));

    /* Unknown key. */
    struct s_case t = k;
    snprintf(buf, sizeof(buf), "%s", k.authz);
    memcpy(strstr(buf, "AKIAIOSFODNN7EXAMPLE"), "AKIAXXXXXXXXXXXXXXXX", 20);
    s_set_header(&t, "Authorization", buf);
    T_CHECK(s_verify_code(&t) == S3S_ERR_INVALID_ACCESS_KEY_ID);

    /* Wrong region and wrong service in the scope. */
    snprintf(buf, sizeof(buf), "%s", k.authz);
    memcpy(strstr(buf, "us-east-1"), "us-west-2", 9);
    s_set_header(&t, "Authorization", buf);
    T_CHECK(s_verify(&t, &res) == S3S_ERR_AUTH_HEADER_MALFORMED);
    T_CHECK(res.detail && strstr(res.detail, "the region 'us-west-2' is wrong; expecting "
                                             "'us-east-1'"));
    s3s_sigv4_verify_result_clean_up(&res);
    snprintf(buf, sizeof(buf), "%s", k.authz);
    memcpy(strstr(buf, "/s3/"), "/ec2", 4);
    s_set_header(&t, "Authorization", buf);
    T_CHECK(s_verify_code(&t) == S3S_ERR_AUTH_HEADER_MALFORMED);

    /* Malformed header, other algorithms. */
    s_set_header(&t, "Authorization", "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE");
    T_CHECK(s_verify_code(&t) == S3S_ERR_AUTH_HEADER_MALFORMED);
    s_set_header(&t, "Authorization", "AWS AKIAIOSFODNN7EXAMPLE:c2lnbmF0dXJl");
    T_CHECK(s_verify_code(&t) == S3S_ERR_UNSUPPORTED_AUTH);

    /* An x-amz-* header that is not signed. */
    t = k;
    s_set_header(&t, "x-amz-meta-extra", "1");
    T_CHECK(s_verify_code(&t) == S3S_ERR_HEADERS_NOT_SIGNED);

    /* x-amz-content-sha256 missing or garbage. */
    t = k;
    for (size_t i = 0; i < t.nh; i++) {
        if (s3s_cur_eq_str_ignore_case(t.h[i].name, "x-amz-content-sha256")) {
            t.h[i].name = S3S_CUR_LIT("x-other");
        }
    }
    T_CHECK(s_verify_code(&t) == S3S_ERR_MISSING_CONTENT_SHA256);
    t = k;
    s_set_header(&t, "x-amz-content-sha256", "not-a-hash");
    T_CHECK(s_verify_code(&t) == S3S_ERR_INVALID_CONTENT_SHA256);

    /* Both mechanisms; none. */
    t = k;
    t.query = "X-Amz-Algorithm=AWS4-HMAC-SHA256";
    T_CHECK(s_verify_code(&t) == S3S_ERR_ONE_AUTH_MECHANISM);
    t = k;
    t.nh--; /* drop Authorization */
    struct s3s_sigv4_request v = s_view(&t);
    T_CHECK(!s3s_sigv4_has_auth(&v));
    T_CHECK(s_verify_code(&t) == S3S_ERR_ACCESS_DENIED);

    /* The payload declaration is reported. */
    T_CHECK(s_verify(&k, &res) == S3S_OK);
    T_CHECK(res.payload == S3S_SIGV4_PAYLOAD_SHA256);
    s3s_sigv4_verify_result_clean_up(&res);
}

static void s_presigned(struct json_object *c)
{
    /* The published URL: path?query, replayed at its signing time. */
    const char *url = json_object_get_string(json_object_object_get(c, "url"));
    const char *host = json_object_get_string(json_object_object_get(c, "host"));
    const char *q = strchr(url, '?');
    const char *p = strstr(url, "://");
    p = strchr(p + 3, '/');
    T_CHECK(q && p);
    char path[256], query[1024];
    snprintf(path, sizeof(path), "%.*s", (int)(q - p), p);
    snprintf(query, sizeof(query), "%s", q + 1);
    struct s_case k;
    memset(&k, 0, sizeof(k));
    k.method = "GET";
    k.path = path;
    k.query = query;
    k.h[0] = (struct s3s_sigv4_header){S3S_CUR_LIT("Host"), s3s_cur_from_str(host)};
    k.nh = 1;
    struct s3s_sigv4_verify_result res;
    T_CHECK(s_verify(&k, &res) == S3S_OK);
    T_CHECK(res.presigned && res.payload == S3S_SIGV4_PAYLOAD_UNSIGNED);
    T_BUFEQ(res.canonical_request,
            json_object_get_string(json_object_object_get(c, "canonical_request")));
    s3s_sigv4_verify_result_clean_up(&res);

    int64_t t0 = g_now;
    g_now = t0 + 86400 + 1; /* X-Amz-Expires=86400 */
    T_CHECK(s_verify_code(&k) == S3S_ERR_REQUEST_EXPIRED);
    g_now = t0 - 16 * 60;
    T_CHECK(s_verify_code(&k) == S3S_ERR_REQUEST_NOT_YET_VALID);
    g_now = t0;

    /* Over a week, missing parameters, tampered signature. */
    char bad[1024];
    const char *e = strstr(query, "X-Amz-Expires=86400");
    T_CHECK(e != NULL);
    snprintf(bad, sizeof(bad), "%.*sX-Amz-Expires=604801%s", (int)(e - query), query,
             e + strlen("X-Amz-Expires=86400"));
    k.query = bad;
    T_CHECK(s_verify(&k, &res) == S3S_ERR_AUTH_QUERY_ERROR);
    T_CHECK(res.detail && strstr(res.detail, "604800"));
    s3s_sigv4_verify_result_clean_up(&res);
    snprintf(bad, sizeof(bad), "%s", query);
    memcpy(strstr(bad, "X-Amz-Date"), "X-Amz-Dxte", 10);
    T_CHECK(s_verify_code(&k) == S3S_ERR_AUTH_QUERY_ERROR);
    snprintf(bad, sizeof(bad), "%s", query);
    char *s = strstr(bad, "X-Amz-Signature=") + 16;
    s[0] = s[0] == 'a' ? 'b' : 'a';
    T_CHECK(s_verify_code(&k) == S3S_ERR_SIGNATURE_DOES_NOT_MATCH);
}

static void s_round_trip(void)
{
    /* What s3s_sigv4_sign produces, s3s_sigv4_verify accepts; the canonical
     * path and query are idempotent (the signer receives canonical forms). */
    struct s3s_buf p1, p2, q1, q2, auth;
    T_OK(s3s_buf_init(&p1, 0, 1024));
    T_OK(s3s_buf_init(&p2, 0, 1024));
    T_OK(s3s_buf_init(&q1, 0, 1024));
    T_OK(s3s_buf_init(&q2, 0, 1024));
    T_OK(s3s_buf_init(&auth, 0, 1024));
    T_OK(s3s_sigv4_canonical_path(S3S_CUR_LIT("/b/a b+c%2Bd~é!*'()"), &p1));
    T_OK(s3s_sigv4_canonical_path(s3s_buf_cur(&p1), &p2));
    T_CHECK(s3s_cur_eq(s3s_buf_cur(&p1), s3s_buf_cur(&p2)));
    T_BUFEQ(p1, "/b/a%20b%2Bc%2Bd~%C3%A9%21%2A%27%28%29");
    T_OK(s3s_sigv4_canonical_query(S3S_CUR_LIT("prefix=a/b&delimiter=%2F&list-type=2&x"), false,
                                   &q1));
    T_BUFEQ(q1, "delimiter=%2F&list-type=2&prefix=a%2Fb&x=");
    T_OK(s3s_sigv4_canonical_query(s3s_buf_cur(&q1), false, &q2));
    T_CHECK(s3s_cur_eq(s3s_buf_cur(&q1), s3s_buf_cur(&q2)));

    char date[17];
    s3s_time_format_iso8601_basic(g_now, date);
    struct s3s_sigv4_header h[3] = {
        {S3S_CUR_LIT("host"), S3S_CUR_LIT("127.0.0.1:9000")},
        {S3S_CUR_LIT("x-amz-date"), s3s_cur_from_str(date)},
        {S3S_CUR_LIT("x-amz-content-sha256"), S3S_CUR_LIT(S3S_SIGV4_UNSIGNED_PAYLOAD)},
    };
    struct s3s_sigv4_request req = {S3S_CUR_LIT("PUT"), s3s_buf_cur(&p1), s3s_buf_cur(&q1), h, 3};
    struct s3s_sigv4_credentials cr = {S3S_CUR_LIT("AKIAIOSFODNN7EXAMPLE"), &g_secret};
    T_OK(s3s_sigv4_sign(&req, &cr, "us-east-1", "s3", g_now,
                        S3S_CUR_LIT(S3S_SIGV4_UNSIGNED_PAYLOAD), &auth));
    struct s3s_sigv4_header h4[4] = {h[0], h[1], h[2], {S3S_CUR_LIT("Authorization"),
                                                        s3s_buf_cur(&auth)}};
    struct s3s_sigv4_request signed_req = {req.method, req.path, req.query, h4, 4};
    struct s3s_sigv4_verify_options o = s_opts();
    struct s3s_sigv4_verify_result res;
    s3s_sigv4_verify_result_init(&res);
    T_OK(s3s_sigv4_verify(&signed_req, &o, &res));
    s3s_sigv4_verify_result_clean_up(&res);

    /* Presign, then verify the URL. */
    struct s3s_buf pq;
    T_OK(s3s_buf_init(&pq, 0, 4096));
    struct s3s_sigv4_request preq = {S3S_CUR_LIT("GET"), s3s_buf_cur(&p1), s3s_cur_from(NULL, 0),
                                     h, 1};
    T_OK(s3s_sigv4_presign(&preq, &cr, "us-east-1", "s3", g_now, 600, &pq));
    preq.query = s3s_buf_cur(&pq);
    s3s_sigv4_verify_result_init(&res);
    T_OK(s3s_sigv4_verify(&preq, &o, &res));
    T_CHECK(res.presigned);
    s3s_sigv4_verify_result_clean_up(&res);

    s3s_buf_clean_up(&p1);
    s3s_buf_clean_up(&p2);
    s3s_buf_clean_up(&q1);
    s3s_buf_clean_up(&q2);
    s3s_buf_clean_up(&auth);
    s3s_buf_clean_up(&pq);
}

int main(void)
{
    struct json_object *root = json_object_from_file("tests/vectors/s3-examples.json");
    T_CHECK(root != NULL);
    if (!root) {
        return t_finish("sigv4.verify");
    }
    T_OK(s3s_secret_from("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", 40, &g_secret));
    T_OK(s3s_time_parse_iso8601_basic(S3S_CUR_LIT("20130524T000000Z"), &g_now));
    struct json_object *cases = json_object_object_get(root, "cases");
    s_header_cases(cases);
    s_negative_cases(cases);
    for (size_t i = 0; i < json_object_array_length(cases); i++) {
        struct json_object *c = json_object_array_get_idx(cases, i);
        if (strcmp(json_object_get_string(json_object_object_get(c, "name")), "presigned-get") ==
            0) {
            s_presigned(c);
        }
    }
    s_round_trip();
    json_object_put(root);
    s3s_secret_destroy(&g_secret);
    s3s_sigv4_cache_clean_up();
    return t_finish("sigv4.verify");
}
