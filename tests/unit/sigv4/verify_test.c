/*
 * verify_test.c - verification against the signatures AWS's S3 documentation
 * publishes (tests/vectors/s3-examples.json, replayed with an injected clock),
 * then every refusal AWS gives: wrong secret, unknown key, skewed clock,
 * wrong region or service, unsigned x-amz-* header, missing or bad
 * x-amz-content-sha256, tampered values, expired and over-long presigned
 * URLs, both auth mechanisms at once, anonymous. And a sign/verify round trip.
 * Then requests signed here: every payload declaration, Authorization
 * component order and spacing, bad signatures, the Date fallback, and each
 * presigned parameter mutated.
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
        struct json_object *n = json_object_array_get_idx(p, 0);
        struct json_object *v = json_object_array_get_idx(p, 1);
        k->h[k->nh].name = s3s_cur_from_str(json_object_get_string(n));
        k->h[k->nh].value = s3s_cur_from_str(json_object_get_string(v));
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

/* The result's seed signature is the case's published signature. */
static void s_check_seed(const struct s3s_sigv4_verify_result *res, struct json_object *c)
{
    const char *hex = json_object_get_string(json_object_object_get(c, "signature"));
    uint8_t want[32];
    T_CHECK(hex && s3s_hex_decode(s3s_cur_from_str(hex), want, 32));
    T_CHECK(memcmp(res->seed_signature, want, 32) == 0);
}

static void s_header_cases(struct json_object *cases)
{
    const char *names[] = {"get-object-range", "put-object", "get-bucket-lifecycle",
                           "list-objects"};
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
        s_check_seed(&res, c);
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
    T_BUFEQ(res.canonical_request, json_object_get_string(json_object_object_get(
                                       json_object_array_get_idx(cases, 1), "canonical_request")));
    T_BUFEQ(res.string_to_sign, json_object_get_string(json_object_object_get(
                                    json_object_array_get_idx(cases, 1), "string_to_sign")));
    T_BUFEQ(res.access_key, "AKIAIOSFODNN7EXAMPLE");
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
    T_BUFEQ(res.string_to_sign,
            json_object_get_string(json_object_object_get(c, "string_to_sign")));
    s_check_seed(&res, c);
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

static int32_t s_verify_code_view(const struct s3s_sigv4_request *v)
{
    struct s3s_sigv4_verify_options o = s_opts();
    struct s3s_sigv4_verify_result res;
    s3s_sigv4_verify_result_init(&res);
    int32_t code = s3s_sigv4_verify(v, &o, &res).code;
    s3s_sigv4_verify_result_clean_up(&res);
    return code;
}

/* Signs h[0..nh) with s3s_sigv4_sign at g_now and appends Authorization. */
static void s_sign_into(struct s3s_sigv4_header *h, size_t *nh, const char *path,
                        const char *query, struct s3s_cur payload, struct s3s_buf *auth)
{
    struct s3s_sigv4_request req = {S3S_CUR_LIT("PUT"), s3s_cur_from_str(path),
                                    s3s_cur_from_str(query), h, *nh};
    struct s3s_sigv4_credentials cr = {S3S_CUR_LIT("AKIAIOSFODNN7EXAMPLE"), &g_secret};
    s3s_buf_reset(auth);
    T_OK(s3s_sigv4_sign(&req, &cr, "us-east-1", "s3", g_now, payload, auth));
    /* NUL-terminated for the strstr/%s below, before the cursor is taken. */
    const char *z;
    T_OK(s3s_buf_cstr(auth, &z));
    h[*nh].name = S3S_CUR_LIT("Authorization");
    h[*nh].value = s3s_buf_cur(auth);
    (*nh)++;
}

static int32_t s_verify_view(const struct s3s_sigv4_header *h, size_t nh, const char *query,
                             struct s3s_sigv4_verify_result *res)
{
    struct s3s_sigv4_request v = {S3S_CUR_LIT("PUT"), S3S_CUR_LIT("/b/k"),
                                  s3s_cur_from_str(query), h, nh};
    struct s3s_sigv4_verify_options o = s_opts();
    s3s_sigv4_verify_result_init(res);
    return s3s_sigv4_verify(&v, &o, res).code;
}

static void s_header_forms(void)
{
    char date[17], http_date[30];
    s3s_time_format_iso8601_basic(g_now, date);
    s3s_time_format_http(g_now, http_date);
    struct s3s_buf auth, alt;
    T_OK(s3s_buf_init(&auth, 0, 1024));
    T_OK(s3s_buf_init(&alt, 0, 1024));
    struct s3s_sigv4_verify_result res;

    /* The payload declarations, each reported. */
    static const struct {
        const char *value;
        enum s3s_sigv4_payload payload;
    } decl[] = {
        {"UNSIGNED-PAYLOAD", S3S_SIGV4_PAYLOAD_UNSIGNED},
        {"STREAMING-AWS4-HMAC-SHA256-PAYLOAD", S3S_SIGV4_PAYLOAD_STREAMING},
        {"STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER", S3S_SIGV4_PAYLOAD_STREAMING_TRAILER},
        {"STREAMING-UNSIGNED-PAYLOAD-TRAILER", S3S_SIGV4_PAYLOAD_STREAMING_UNSIGNED_TRAILER},
        {"E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
         S3S_SIGV4_PAYLOAD_SHA256},
        {S3S_SIGV4_EMPTY_SHA256, S3S_SIGV4_PAYLOAD_SHA256},
    };
    for (size_t i = 0; i < sizeof(decl) / sizeof(decl[0]); i++) {
        struct s3s_sigv4_header h[4] = {
            {S3S_CUR_LIT("Host"), S3S_CUR_LIT("b.s3.amazonaws.com")},
            {S3S_CUR_LIT("X-Amz-Date"), s3s_cur_from_str(date)},
            {S3S_CUR_LIT("X-Amz-Content-Sha256"), s3s_cur_from_str(decl[i].value)},
        };
        size_t nh = 3;
        s_sign_into(h, &nh, "/b/k", "", s3s_cur_from_str(decl[i].value), &auth);
        T_CHECK(s_verify_view(h, nh, "", &res) == S3S_OK);
        T_CHECK(res.payload == decl[i].payload);
        if (decl[i].payload == S3S_SIGV4_PAYLOAD_SHA256) {
            T_CHECK(res.payload_sha256[0] == 0xe3 && res.payload_sha256[31] == 0x55);
        }
        /* The seed of aws-chunked chains is the request's signature. */
        uint8_t sig[32];
        const char *hex = strstr((const char *)auth.ptr, "Signature=") + 10;
        T_CHECK(s3s_hex_decode(s3s_cur_from(hex, 64), sig, 32));
        T_CHECK(memcmp(sig, res.seed_signature, 32) == 0);
        T_CHECK(res.request_time == g_now && strcmp(res.scope_date, "20130524") == 0);
        s3s_sigv4_verify_result_clean_up(&res);
    }

    struct s3s_sigv4_header h[6] = {
        {S3S_CUR_LIT("Host"), S3S_CUR_LIT("b.s3.amazonaws.com")},
        {S3S_CUR_LIT("X-Amz-Date"), s3s_cur_from_str(date)},
        {S3S_CUR_LIT("X-Amz-Content-Sha256"), S3S_CUR_LIT(S3S_SIGV4_UNSIGNED_PAYLOAD)},
    };
    size_t nh = 3;
    s_sign_into(h, &nh, "/b/k", "", S3S_CUR_LIT(S3S_SIGV4_UNSIGNED_PAYLOAD), &auth);
    const char *cred = strstr((const char *)auth.ptr, "Credential=");
    const char *sh = strstr((const char *)auth.ptr, "SignedHeaders=");
    const char *sg = strstr((const char *)auth.ptr, "Signature=");
    int cred_len = (int)(sh - 2 - cred), sh_len = (int)(sg - 2 - sh);

    /* Components in any order, with or without spaces after the commas. */
    s3s_buf_reset(&alt);
    T_OK(s3s_buf_appendf(&alt, "AWS4-HMAC-SHA256 %s,%.*s,%.*s", sg, sh_len, sh, cred_len, cred));
    h[3].value = s3s_buf_cur(&alt);
    T_CHECK(s_verify_view(h, 4, "", &res) == S3S_OK);
    s3s_sigv4_verify_result_clean_up(&res);
    s3s_buf_reset(&alt);
    T_OK(s3s_buf_appendf(&alt, "AWS4-HMAC-SHA256  %.*s ,  %.*s,   %s", cred_len, cred, sh_len, sh,
                         sg));
    h[3].value = s3s_buf_cur(&alt);
    T_CHECK(s_verify_view(h, 4, "", &res) == S3S_OK);
    s3s_sigv4_verify_result_clean_up(&res);

    /* Signature: bad hex, wrong length, upper case -> SignatureDoesNotMatch. */
    s3s_buf_reset(&alt);
    T_OK(s3s_buf_appendf(&alt, "AWS4-HMAC-SHA256 %.*s, %.*s, Signature=%.63sg", cred_len, cred,
                         sh_len, sh, sg + 10));
    h[3].value = s3s_buf_cur(&alt);
    T_CHECK(s_verify_view(h, 4, "", &res) == S3S_ERR_SIGNATURE_DOES_NOT_MATCH);
    T_CHECK(res.canonical_request.len > 0);
    s3s_sigv4_verify_result_clean_up(&res);
    s3s_buf_reset(&alt);
    T_OK(s3s_buf_appendf(&alt, "AWS4-HMAC-SHA256 %.*s, %.*s, Signature=%.62s", cred_len, cred,
                         sh_len, sh, sg + 10));
    h[3].value = s3s_buf_cur(&alt);
    T_CHECK(s_verify_view(h, 4, "", &res) == S3S_ERR_SIGNATURE_DOES_NOT_MATCH);
    s3s_sigv4_verify_result_clean_up(&res);

    /* SignedHeaders without host. */
    s3s_buf_reset(&alt);
    T_OK(s3s_buf_appendf(&alt, "AWS4-HMAC-SHA256 %.*s, SignedHeaders=x-amz-content-sha256;"
                               "x-amz-date, %s", cred_len, cred, sg));
    h[3].value = s3s_buf_cur(&alt);
    T_CHECK(s_verify_view(h, 4, "", &res) == S3S_ERR_AUTH_HEADER_MALFORMED);
    T_CHECK(res.detail && strstr(res.detail, "host"));
    s3s_sigv4_verify_result_clean_up(&res);

    /* Unknown component, missing component, other algorithms. */
    s3s_buf_reset(&alt);
    T_OK(s3s_buf_appendf(&alt, "AWS4-HMAC-SHA256 %.*s, %.*s, %s, Foo=bar", cred_len, cred, sh_len,
                         sh, sg));
    h[3].value = s3s_buf_cur(&alt);
    T_CHECK(s_verify_view(h, 4, "", &res) == S3S_ERR_AUTH_HEADER_MALFORMED);
    s3s_sigv4_verify_result_clean_up(&res);
    s3s_buf_reset(&alt);
    T_OK(s3s_buf_appendf(&alt, "AWS4-HMAC-SHA256 %.*s, %s", cred_len, cred, sg));
    h[3].value = s3s_buf_cur(&alt);
    T_CHECK(s_verify_view(h, 4, "", &res) == S3S_ERR_AUTH_HEADER_MALFORMED);
    s3s_sigv4_verify_result_clean_up(&res);
    h[3].value = S3S_CUR_LIT("AWS4-ECDSA-P256-SHA256 Credential=x");
    T_CHECK(s_verify_view(h, 4, "", &res) == S3S_ERR_UNSUPPORTED_AUTH);
    s3s_sigv4_verify_result_clean_up(&res);
    h[3].value = S3S_CUR_LIT("Bearer abc");
    T_CHECK(s_verify_view(h, 4, "", &res) == S3S_ERR_UNSUPPORTED_AUTH);
    s3s_sigv4_verify_result_clean_up(&res);
    h[3].value = s3s_buf_cur(&auth);

    /* The credential: malformed, scope date not the x-amz-date's date. */
    s3s_buf_reset(&alt);
    T_OK(s3s_buf_appendf(&alt, "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/"
                               "us-east-1/s3, %.*s, %s", sh_len, sh, sg));
    h[3].value = s3s_buf_cur(&alt);
    T_CHECK(s_verify_view(h, 4, "", &res) == S3S_ERR_AUTH_HEADER_MALFORMED);
    s3s_sigv4_verify_result_clean_up(&res);
    s3s_buf_reset(&alt);
    T_OK(s3s_buf_appendf(&alt, "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130525/"
                               "us-east-1/s3/aws4_request, %.*s, %s", sh_len, sh, sg));
    h[3].value = s3s_buf_cur(&alt);
    T_CHECK(s_verify_view(h, 4, "", &res) == S3S_ERR_AUTH_HEADER_MALFORMED);
    T_CHECK(res.detail && strstr(res.detail, "20130525"));
    s3s_sigv4_verify_result_clean_up(&res);
    h[3].value = s3s_buf_cur(&auth);

    /* An unsigned x-amz-* header in any case; other unsigned headers are fine. */
    h[4] = (struct s3s_sigv4_header){S3S_CUR_LIT("X-AMZ-ACL"), S3S_CUR_LIT("private")};
    T_CHECK(s_verify_view(h, 5, "", &res) == S3S_ERR_HEADERS_NOT_SIGNED);
    s3s_sigv4_verify_result_clean_up(&res);
    h[4] = (struct s3s_sigv4_header){S3S_CUR_LIT("User-Agent"), S3S_CUR_LIT("test")};
    T_CHECK(s_verify_view(h, 5, "", &res) == S3S_OK);
    s3s_sigv4_verify_result_clean_up(&res);

    /* Query parameters that look like another mechanism. */
    T_CHECK(s_verify_view(h, 4, "X-Amz-Credential=x", &res) == S3S_ERR_ONE_AUTH_MECHANISM);
    s3s_sigv4_verify_result_clean_up(&res);
    T_CHECK(s_verify_view(h, 4, "AWSAccessKeyId=x", &res) == S3S_ERR_ONE_AUTH_MECHANISM);
    s3s_sigv4_verify_result_clean_up(&res);

    /* No x-amz-date: the Date header (RFC 1123) is the fallback. */
    struct s3s_sigv4_header d[4] = {
        {S3S_CUR_LIT("Host"), S3S_CUR_LIT("b.s3.amazonaws.com")},
        {S3S_CUR_LIT("Date"), s3s_cur_from_str(http_date)},
        {S3S_CUR_LIT("X-Amz-Content-Sha256"), S3S_CUR_LIT(S3S_SIGV4_UNSIGNED_PAYLOAD)},
    };
    size_t nd = 3;
    s_sign_into(d, &nd, "/b/k", "", S3S_CUR_LIT(S3S_SIGV4_UNSIGNED_PAYLOAD), &auth);
    T_CHECK(s_verify_view(d, nd, "", &res) == S3S_OK);
    T_CHECK(res.request_time == g_now);
    s3s_sigv4_verify_result_clean_up(&res);
    g_now += 16 * 60;
    T_CHECK(s_verify_view(d, nd, "", &res) == S3S_ERR_REQUEST_TIME_TOO_SKEWED);
    s3s_sigv4_verify_result_clean_up(&res);
    g_now -= 16 * 60;
    d[1].value = S3S_CUR_LIT("yesterday");
    T_CHECK(s_verify_view(d, nd, "", &res) == S3S_ERR_MISSING_DATE);
    s3s_sigv4_verify_result_clean_up(&res);
    d[1].name = S3S_CUR_LIT("X-Other");
    T_CHECK(s_verify_view(d, nd, "", &res) == S3S_ERR_MISSING_DATE);
    s3s_sigv4_verify_result_clean_up(&res);

    s3s_buf_clean_up(&auth);
    s3s_buf_clean_up(&alt);
}

static void s_presigned_forms(void)
{
    struct s3s_sigv4_header h[2] = {
        {S3S_CUR_LIT("Host"), S3S_CUR_LIT("b.s3.amazonaws.com")},
    };
    struct s3s_sigv4_request req = {S3S_CUR_LIT("GET"), S3S_CUR_LIT("/b/k"),
                                    S3S_CUR_LIT("versionId=3&response-content-type=text%2Fplain"),
                                    h, 1};
    struct s3s_sigv4_credentials cr = {S3S_CUR_LIT("AKIAIOSFODNN7EXAMPLE"), &g_secret};
    struct s3s_buf q, bad;
    T_OK(s3s_buf_init(&q, 0, 4096));
    T_OK(s3s_buf_init(&bad, 0, 4096));
    T_ERR(s3s_sigv4_presign(&req, &cr, "us-east-1", "s3", g_now, 604801, &q), S3S_ERR_INVALID_ARG);
    T_ERR(s3s_sigv4_presign(&req, &cr, "us-east-1", "s3", g_now, 0, &q), S3S_ERR_INVALID_ARG);
    T_OK(s3s_sigv4_presign(&req, &cr, "us-east-1", "s3", g_now, 3600, &q));
    const char *qs;
    T_OK(s3s_buf_cstr(&q, &qs));
    /* The request's own parameters are kept. */
    T_CHECK(strstr(qs, "versionId=3&") == qs);
    T_CHECK(strstr(qs, "response-content-type=text%2Fplain") != NULL);
    T_CHECK(strstr(qs, "X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2F"
                       "aws4_request") != NULL);
    T_CHECK(strstr(qs, "X-Amz-SignedHeaders=host") != NULL);
    T_CHECK(strstr(qs, "X-Amz-Expires=3600") != NULL);
    struct s3s_sigv4_request v = req;
    v.query = s3s_buf_cur(&q);
    T_CHECK(s3s_sigv4_has_auth(&v));
    struct s3s_sigv4_verify_options o = s_opts();
    struct s3s_sigv4_verify_result res;
    s3s_sigv4_verify_result_init(&res);
    T_OK(s3s_sigv4_verify(&v, &o, &res));
    T_CHECK(res.presigned && res.payload == S3S_SIGV4_PAYLOAD_UNSIGNED);
    T_BUFEQ(res.access_key, "AKIAIOSFODNN7EXAMPLE");
    T_CHECK(res.request_time == g_now && strcmp(res.scope_date, "20130524") == 0);
    s3s_sigv4_verify_result_clean_up(&res);

    /* Unsigned x-amz-* headers are refused on presigned URLs too (AWS does):
     * the URL's holder must not add what the signer did not authorise. */
    h[1] = (struct s3s_sigv4_header){S3S_CUR_LIT("X-Amz-Server-Side-Encryption"),
                                     S3S_CUR_LIT("AES256")};
    v.n_headers = 2;
    T_CHECK(s_verify_code_view(&v) == S3S_ERR_HEADERS_NOT_SIGNED);
    h[1] = (struct s3s_sigv4_header){S3S_CUR_LIT("x-amz-content-sha256"),
                                     S3S_CUR_LIT(S3S_SIGV4_EMPTY_SHA256)};
    T_CHECK(s_verify_code_view(&v) == S3S_ERR_HEADERS_NOT_SIGNED);
    h[1] = (struct s3s_sigv4_header){S3S_CUR_LIT("Content-Type"), S3S_CUR_LIT("text/plain")};
    T_CHECK(s_verify_code_view(&v) == S3S_OK);
    v.n_headers = 1;

    /* A signed x-amz-content-sha256 header declares the payload of a
     * presigned request. */
    {
        struct s3s_sigv4_header ph[2] = {
            {S3S_CUR_LIT("Host"), S3S_CUR_LIT("b.s3.amazonaws.com")},
            {S3S_CUR_LIT("x-amz-content-sha256"), S3S_CUR_LIT(S3S_SIGV4_EMPTY_SHA256)},
        };
        struct s3s_buf pre, creq, sts, sig;
        T_OK(s3s_buf_init(&pre, 0, 4096));
        T_OK(s3s_buf_init(&creq, 0, 4096));
        T_OK(s3s_buf_init(&sts, 0, 4096));
        T_OK(s3s_buf_init(&sig, 0, 128));
        char date[17];
        s3s_time_format_iso8601_basic(g_now, date);
        T_OK(s3s_buf_appendf(&pre, "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential="
                                   "AKIAIOSFODNN7EXAMPLE%%2F20130524%%2Fus-east-1%%2Fs3%%2F"
                                   "aws4_request&X-Amz-Date=%s&X-Amz-Expires=60&"
                                   "X-Amz-SignedHeaders=host%%3Bx-amz-content-sha256", date));
        struct s3s_sigv4_request pr = {S3S_CUR_LIT("PUT"), S3S_CUR_LIT("/b/k"),
                                       s3s_buf_cur(&pre), ph, 2};
        T_OK(s3s_sigv4_canonical_request(&pr, S3S_CUR_LIT("host;x-amz-content-sha256"), true,
                                         S3S_CUR_LIT(S3S_SIGV4_EMPTY_SHA256), &creq));
        T_OK(s3s_sigv4_string_to_sign(g_now, "20130524", "us-east-1", "s3", s3s_buf_cur(&creq),
                                      &sts));
        uint8_t key[32], mac[32];
        T_OK(s3s_sigv4_signing_key(&g_secret, "20130524", "us-east-1", "s3", key));
        T_OK(s3s_sigv4_signature(key, s3s_buf_cur(&sts), mac));
        T_OK(s3s_buf_append_str(&pre, "&X-Amz-Signature="));
        T_OK(s3s_buf_append_hex(&pre, mac, 32));
        pr.query = s3s_buf_cur(&pre);
        s3s_sigv4_verify_result_init(&res);
        T_OK(s3s_sigv4_verify(&pr, &o, &res));
        T_CHECK(res.presigned && res.payload == S3S_SIGV4_PAYLOAD_SHA256);
        s3s_sigv4_verify_result_clean_up(&res);
        s3s_buf_clean_up(&pre);
        s3s_buf_clean_up(&creq);
        s3s_buf_clean_up(&sts);
        s3s_buf_clean_up(&sig);
    }

    /* Each parameter, mutated. */
    static const struct {
        const char *from, *to;
        int32_t code;
        const char *detail;
    } muts[] = {
        {"X-Amz-Expires=3600", "X-Amz-Expires=604801", S3S_ERR_AUTH_QUERY_ERROR,
         "X-Amz-Expires must be less than a week (in seconds) that is; 604800 seconds"},
        {"X-Amz-Expires=3600", "X-Amz-Expires=99999999999999999999", S3S_ERR_AUTH_QUERY_ERROR,
         NULL},
        {"X-Amz-Expires=3600", "X-Amz-Expires=-1", S3S_ERR_AUTH_QUERY_ERROR,
         "X-Amz-Expires must be non-negative"},
        {"X-Amz-Expires=3600", "X-Amz-Expires=0", S3S_ERR_AUTH_QUERY_ERROR,
         "X-Amz-Expires must be greater than 0"},
        {"X-Amz-Expires=3600", "X-Amz-Expires=abc", S3S_ERR_AUTH_QUERY_ERROR,
         "X-Amz-Expires should be a number"},
        {"X-Amz-Expires=3600", "X-Amz-Expires=", S3S_ERR_AUTH_QUERY_ERROR, NULL},
        {"X-Amz-Expires=3600", "X-Amz-Exp=3600", S3S_ERR_AUTH_QUERY_ERROR, NULL},
        {"X-Amz-Algorithm=", "X-Amz-Algorithm=AWS4-HMAC-SHA1&x=", S3S_ERR_AUTH_QUERY_ERROR, NULL},
        {"X-Amz-Credential=", "X-Amz-Credentia=", S3S_ERR_AUTH_QUERY_ERROR, NULL},
        {"X-Amz-Date=", "X-Amz-Dat=", S3S_ERR_AUTH_QUERY_ERROR, NULL},
        {"X-Amz-Date=20130524T000000Z", "X-Amz-Date=2013-05-24", S3S_ERR_AUTH_QUERY_ERROR, NULL},
        {"X-Amz-SignedHeaders=host", "X-Amz-SignedHeader=host", S3S_ERR_AUTH_QUERY_ERROR, NULL},
        {"X-Amz-SignedHeaders=host", "X-Amz-SignedHeaders=range", S3S_ERR_AUTH_QUERY_ERROR, NULL},
        {"X-Amz-Signature=", "X-Amz-Signatur=", S3S_ERR_AUTH_QUERY_ERROR, NULL},
        {"%2Fus-east-1%2F", "%2Fus-west-2%2F", S3S_ERR_AUTH_QUERY_ERROR,
         "the region 'us-west-2' is wrong; expecting 'us-east-1'"},
        {"AKIAIOSFODNN7EXAMPLE", "AKIAXXXXXXXXXXXXXXXX", S3S_ERR_INVALID_ACCESS_KEY_ID, NULL},
        {"versionId=3", "versionId=4", S3S_ERR_SIGNATURE_DOES_NOT_MATCH, NULL},
    };
    for (size_t i = 0; i < sizeof(muts) / sizeof(muts[0]); i++) {
        const char *at = strstr(qs, muts[i].from);
        T_CHECK(at != NULL);
        if (!at) {
            continue;
        }
        s3s_buf_reset(&bad);
        T_OK(s3s_buf_appendf(&bad, "%.*s%s%s", (int)(at - qs), qs, muts[i].to,
                             at + strlen(muts[i].from)));
        v.query = s3s_buf_cur(&bad);
        s3s_sigv4_verify_result_init(&res);
        int32_t code = s3s_sigv4_verify(&v, &o, &res).code;
        if (code != muts[i].code) {
            fprintf(stderr, "mutation %zu (%s): got %s\n", i, muts[i].to, s3s_strerror(code));
        }
        T_CHECK(code == muts[i].code);
        if (muts[i].detail) {
            T_CHECK(res.detail && strstr(res.detail, muts[i].detail));
        }
        s3s_sigv4_verify_result_clean_up(&res);
    }

    /* Expiry: valid up to date + expires inclusive. */
    v.query = s3s_buf_cur(&q);
    int64_t t0 = g_now;
    g_now = t0 + 3600;
    T_CHECK(s_verify_code_view(&v) == S3S_OK);
    g_now = t0 + 3601;
    T_CHECK(s_verify_code_view(&v) == S3S_ERR_REQUEST_EXPIRED);
    g_now = t0 - S3S_SIGV4_MAX_SKEW;
    T_CHECK(s_verify_code_view(&v) == S3S_OK);
    g_now = t0 - S3S_SIGV4_MAX_SKEW - 1;
    T_CHECK(s_verify_code_view(&v) == S3S_ERR_REQUEST_NOT_YET_VALID);
    g_now = t0;

    /* SigV2 query authentication: recognised, refused here. */
    v.query = S3S_CUR_LIT("AWSAccessKeyId=AKIAIOSFODNN7EXAMPLE&Expires=1141889120&"
                          "Signature=vjbyPxybdZaNmGa%2ByT272YEAiv4%3D");
    T_CHECK(s3s_sigv4_has_auth(&v));
    T_CHECK(s_verify_code_view(&v) == S3S_ERR_UNSUPPORTED_AUTH);
    v.query = S3S_CUR_LIT("X-Amz-Signature=00");
    T_CHECK(s3s_sigv4_has_auth(&v));
    v.query = S3S_CUR_LIT("x-amz-algorithm=AWS4-HMAC-SHA256&prefix=a");
    T_CHECK(!s3s_sigv4_has_auth(&v));

    s3s_buf_clean_up(&q);
    s3s_buf_clean_up(&bad);
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

/* Fail the Nth allocation for every N: each call ends in success or
 * S3S_ERR_NOMEM (never another error, which would misreport to the client),
 * and nothing leaks. */
static void s_alloc_failures(void)
{
    char date[17];
    s3s_time_format_iso8601_basic(g_now, date);
    struct s3s_buf auth, pq, out;
    T_OK(s3s_buf_init(&auth, 0, 1024));
    T_OK(s3s_buf_init(&pq, 0, 4096));
    T_OK(s3s_buf_init(&out, 4096, 4096)); /* allocated now: not counted as a leak below */
    struct s3s_sigv4_header h[4] = {
        {S3S_CUR_LIT("Host"), S3S_CUR_LIT("b.s3.amazonaws.com")},
        {S3S_CUR_LIT("X-Amz-Date"), s3s_cur_from_str(date)},
        {S3S_CUR_LIT("X-Amz-Content-Sha256"), S3S_CUR_LIT(S3S_SIGV4_UNSIGNED_PAYLOAD)},
    };
    size_t nh = 3;
    s_sign_into(h, &nh, "/b/k", "a=1&b=%2F", S3S_CUR_LIT(S3S_SIGV4_UNSIGNED_PAYLOAD), &auth);
    struct s3s_sigv4_request hreq = {S3S_CUR_LIT("PUT"), S3S_CUR_LIT("/b/k"),
                                     S3S_CUR_LIT("a=1&b=%2F"), h, nh};
    struct s3s_sigv4_request preq = {S3S_CUR_LIT("GET"), S3S_CUR_LIT("/b/k"),
                                     S3S_CUR_LIT("versionId=1"), h, 1};
    struct s3s_sigv4_credentials cr = {S3S_CUR_LIT("AKIAIOSFODNN7EXAMPLE"), &g_secret};
    T_OK(s3s_sigv4_presign(&preq, &cr, "us-east-1", "s3", g_now, 60, &pq));
    const char *z;
    T_OK(s3s_buf_cstr(&pq, &z));
    struct s3s_sigv4_request pview = preq;
    pview.query = s3s_buf_cur(&pq);
    struct s3s_sigv4_verify_options o = s_opts();

    s3s_sigv4_cache_clean_up();
    long base = s3s_mem_live();
    int bad = 0, succeeded = 0;
    for (long n = 0; n < 200; n++) {
        for (int which = 0; which < 4; which++) {
            /* A cold cache makes the cache's own allocation fail too. */
            s3s_sigv4_cache_clean_up();
            struct s3s_sigv4_verify_result res;
            s3s_sigv4_verify_result_init(&res);
            s3s_buf_reset(&out);
            s3s_mem_fail_after(n);
            s3s_result r;
            switch (which) {
            case 0:
                r = s3s_sigv4_verify(&hreq, &o, &res);
                break;
            case 1:
                r = s3s_sigv4_verify(&pview, &o, &res);
                break;
            case 2:
                r = s3s_sigv4_sign(&hreq, &cr, "us-east-1", "s3", g_now,
                                   S3S_CUR_LIT(S3S_SIGV4_UNSIGNED_PAYLOAD), &out);
                break;
            default:
                r = s3s_sigv4_presign(&preq, &cr, "us-east-1", "s3", g_now, 60, &out);
                break;
            }
            s3s_mem_fail_after(-1);
            s3s_sigv4_verify_result_clean_up(&res);
            if (r.code != S3S_OK && r.code != S3S_ERR_NOMEM) {
                fprintf(stderr, "alloc failure %ld in call %d: %s\n", n, which,
                        s3s_strerror(r.code));
                bad++;
            }
            succeeded += s3s_is_ok(r) && n == 199;
        }
        s3s_sigv4_cache_clean_up();
        if (s3s_mem_live() != base) {
            fprintf(stderr, "alloc failure %ld: %ld allocation(s) leaked\n", n,
                    s3s_mem_live() - base);
            bad++;
        }
    }
    T_CHECK(bad == 0);
    T_CHECK(succeeded == 4); /* 200 allocations are enough for every call */
    s3s_buf_clean_up(&auth);
    s3s_buf_clean_up(&pq);
    s3s_buf_clean_up(&out);
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
    s_header_forms();
    s_presigned_forms();
    s_alloc_failures();
    json_object_put(root);
    s3s_secret_destroy(&g_secret);
    s3s_sigv4_cache_clean_up();
    return t_finish("sigv4.verify");
}
