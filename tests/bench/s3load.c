/*
 * s3load.c - the benchmark's load generator: SigV4-signed S3 PUT or GET
 * requests, signed with s3seal's own signer exactly as a real client signs
 * them (UNSIGNED-PAYLOAD for PUT bodies unless --signed-payload, the
 * empty-string hash for GET), over keep-alive connections driven by libcurl's
 * multi interface.
 *
 *   s3load put|get --endpoint URL --bucket B --key K --size BYTES
 *                  [--count N] [--concurrency C] [--region R]
 *                  [--access-key AK] [--secret-key SK] [--fresh] [--sse | --sse-kms]
 *                  [--same-key]
 *                  [--signed-payload | --unsigned-payload]
 *
 * The access key and secret may come from S3LOAD_ACCESS_KEY and
 * S3LOAD_SECRET_KEY instead (preferred for the secret: argv is visible in ps).
 *
 * With --count 1 it moves one object named K of --size bytes; with a larger
 * count, N objects K-0 .. K-(N-1) with at most C requests in flight on C
 * connections. PUT bodies are generated on the fly from a 1 MiB random
 * buffer, GET bodies are counted and dropped, so memory stays small whatever
 * the size. A request counts as failed unless it completes with HTTP 200 and
 * exactly --size body bytes. --fresh opens a new connection per request.
 * --same-key makes every one of the N requests use K itself, e.g. C
 * concurrent GETs of one object.
 *
 * --sse asks for SSE-S3: PUTs carry x-amz-server-side-encryption: AES256,
 * signed like the other x-amz-* headers; --sse-kms for SSE-KMS with the
 * account's default key (aws:kms). A GET of such an object needs no request
 * header; with either, a PUT or GET also fails unless the response says
 * x-amz-server-side-encryption with that value (so a run that was meant to
 * encrypt cannot quietly measure pass-through).
 *
 * --signed-payload sends the body's hex SHA-256 as x-amz-content-sha256 on
 * PUT (what the SDKs do over plain HTTP), so the receiver must hash every byte
 * and compare before it may commit the object; --unsigned-payload (the
 * default) sends UNSIGNED-PAYLOAD. Every object has the same body (the
 * pattern repeated), so the hash is computed once, before the clock starts.
 *
 * An https:// endpoint is verified against the CA file in S3LOAD_CA_FILE
 * (else the system's), with the TLS 1.3 suites in S3LOAD_TLS13_CIPHERS if
 * set (the TLS bench pins one suite for every server it compares).
 *
 * Prints one JSON line on stdout: op, sse, bytes, requests, errors, seconds,
 * mib_s, req_s, p50_ms, p99_ms and client_cpu_s (its own CPU time). The
 * first failures go to stderr with the status and the start of the response
 * body (the S3 error). Exit status 0 when every request succeeded, 1 when
 * some failed, 2 on bad usage.
 */
#include <curl/curl.h>
#include <openssl/evp.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <time.h>

#include "sigv4/sigv4.h"

/* PUT bodies cycle through this buffer; large enough that nothing on the path
 * could compress or deduplicate it cheaply, small enough to stay in cache. */
#define PATTERN_SIZE (1u << 20)
#define ERR_BODY_MAX 300
#define ERR_REPORT_MAX 5

/* One request slot: a curl handle reused (with its connection) for the
 * requests that run in it one after another. */
struct xfer {
    CURL *easy;
    struct curl_slist *headers;
    uint64_t sent;     /* PUT body bytes handed to curl */
    uint64_t received; /* GET body bytes received */
    double start;
    long index;
    bool sse_seen; /* the response said x-amz-server-side-encryption: g.sse_alg */
    char err_body[ERR_BODY_MAX + 1];
    size_t err_len;
};

struct opts {
    bool put;
    bool fresh;
    bool same_key; /* every request names g.key itself */
    bool sse;
    bool signed_payload;
    const char *sse_alg; /* "AES256" or "aws:kms" */
    const char *endpoint;
    const char *host;
    const char *bucket;
    const char *key;
    const char *region;
    const char *access_key;
    uint64_t size;
    uint64_t count;
    uint64_t conc;
};

static struct opts g;
static struct s3s_secret g_secret;
static const char *g_cafile, *g_tls13_ciphers; /* https:// endpoints */
static uint8_t g_pattern[PATTERN_SIZE];
static char g_body_sha256[65]; /* hex, with --signed-payload */

static double s_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* xoshiro256** (Blackman and Vigna): fast, and good enough to make the body
 * incompressible. Seeded from the clock; reproducibility is not needed. */
static void s_fill_pattern(void)
{
    uint64_t s[4] = {0x9e3779b97f4a7c15u ^ (uint64_t)time(NULL), 0xbf58476d1ce4e5b9u,
                     0x94d049bb133111ebu, 0x2545f4914f6cdd1du};
    for (size_t i = 0; i < PATTERN_SIZE; i += 8) {
        uint64_t r = s[1] * 5;
        r = ((r << 7) | (r >> 57)) * 9;
        uint64_t t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = (s[3] << 45) | (s[3] >> 19);
        memcpy(g_pattern + i, &r, 8);
    }
}

static size_t s_read(char *buf, size_t size, size_t n, void *ud)
{
    struct xfer *x = ud;
    size_t want = size * n;
    uint64_t left = g.size - x->sent;
    if (want > left) {
        want = (size_t)left;
    }
    size_t off = (size_t)(x->sent % PATTERN_SIZE);
    if (want > PATTERN_SIZE - off) {
        want = PATTERN_SIZE - off;
    }
    memcpy(buf, g_pattern + off, want);
    x->sent += want;
    return want;
}

static size_t s_write(char *p, size_t size, size_t n, void *ud)
{
    struct xfer *x = ud;
    size_t len = size * n;
    long code = 0;
    curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &code);
    if (code != 200) {
        /* Keep the start of an error body: the S3 error code is in it. */
        size_t keep = ERR_BODY_MAX - x->err_len;
        keep = len < keep ? len : keep;
        memcpy(x->err_body + x->err_len, p, keep);
        x->err_len += keep;
        x->err_body[x->err_len] = '\0';
    } else {
        x->received += len;
    }
    return len;
}

/* Notes x-amz-server-side-encryption: g.sse_alg among the response headers. */
static size_t s_header(char *p, size_t size, size_t n, void *ud)
{
    struct xfer *x = ud;
    size_t len = size * n;
    static const char name[] = "x-amz-server-side-encryption:";
    size_t nl = sizeof(name) - 1;
    if (len > nl && strncasecmp(p, name, nl) == 0) {
        const char *v = p + nl, *end = p + len;
        while (v < end && (*v == ' ' || *v == '\t')) {
            v++;
        }
        while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ')) {
            end--;
        }
        size_t want = strlen(g.sse_alg);
        x->sse_seen = (size_t)(end - v) == want && memcmp(v, g.sse_alg, want) == 0;
    }
    return len;
}

/* Signs request `index` (-1: the key itself) and arms the slot's handle. */
static int s_setup(struct xfer *x, long index)
{
    char key[1024], path[2048], url[4096], date[17];
    if (index >= 0 && !g.same_key) {
        snprintf(key, sizeof(key), "%s-%ld", g.key, index);
    } else {
        snprintf(key, sizeof(key), "%s", g.key);
    }
    snprintf(path, sizeof(path), "/%s/%s", g.bucket, key);
    int64_t now = (int64_t)time(NULL);
    s3s_time_format_iso8601_basic(now, date);
    const char *payload = !g.put             ? S3S_SIGV4_EMPTY_SHA256
                          : g.signed_payload ? g_body_sha256
                                             : S3S_SIGV4_UNSIGNED_PAYLOAD;
    /* host and every x-amz-* header sent are signed (S3 requires the x-amz-*
     * ones to be); the signer sorts the names. */
    struct s3s_sigv4_header h[4] = {
        {S3S_CUR_LIT("host"), s3s_cur_from_str(g.host)},
        {S3S_CUR_LIT("x-amz-content-sha256"), s3s_cur_from_str(payload)},
        {S3S_CUR_LIT("x-amz-date"), s3s_cur_from_str(date)},
        {S3S_CUR_LIT("x-amz-server-side-encryption"), s3s_cur_from_str(g.sse_alg)},
    };
    size_t n_h = g.put && g.sse ? 4 : 3;
    struct s3s_sigv4_request req = {g.put ? S3S_CUR_LIT("PUT") : S3S_CUR_LIT("GET"),
                                    s3s_cur_from_str(path), s3s_cur_from(NULL, 0), h, n_h};
    struct s3s_sigv4_credentials cr = {s3s_cur_from_str(g.access_key), &g_secret};
    struct s3s_buf auth;
    if (s3s_failed(s3s_buf_init(&auth, 0, 4096))) {
        return -1;
    }
    if (s3s_failed(s3s_sigv4_sign(&req, &cr, g.region, "s3", now, s3s_cur_from_str(payload),
                                  &auth))) {
        fprintf(stderr, "s3load: signing failed (%s)\n", s3s_debug_where());
        s3s_buf_clean_up(&auth);
        return -1;
    }
    char line[4200];
    struct curl_slist *hl = NULL;
    snprintf(line, sizeof(line), "x-amz-date: %s", date);
    hl = curl_slist_append(hl, line);
    snprintf(line, sizeof(line), "x-amz-content-sha256: %s", payload);
    hl = hl ? curl_slist_append(hl, line) : NULL;
    if (n_h == 4) {
        snprintf(line, sizeof(line), "x-amz-server-side-encryption: %s", g.sse_alg);
        hl = hl ? curl_slist_append(hl, line) : NULL;
    }
    snprintf(line, sizeof(line), "Authorization: %.*s", (int)auth.len, (const char *)auth.ptr);
    hl = hl ? curl_slist_append(hl, line) : NULL;
    /* Like the SDKs for small bodies: no 100-continue round trip. */
    hl = hl ? curl_slist_append(hl, "Expect:") : NULL;
    hl = hl ? curl_slist_append(hl, "Accept:") : NULL;
    s3s_buf_clean_up(&auth);
    if (!hl) {
        return -1;
    }
    x->headers = hl;

    snprintf(url, sizeof(url), "%s%s", g.endpoint, path);
    if (!x->easy) {
        x->easy = curl_easy_init();
        if (!x->easy) {
            return -1;
        }
    } else {
        /* The connection stays in the multi handle's pool across a reset. */
        curl_easy_reset(x->easy);
    }
    CURL *e = x->easy;
    x->sent = x->received = 0;
    x->sse_seen = false;
    x->err_len = 0;
    x->err_body[0] = '\0';
    x->index = index;
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->headers);
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(e, CURLOPT_PRIVATE, (char *)x);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, s_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
    if (g.sse) {
        curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, s_header);
        curl_easy_setopt(e, CURLOPT_HEADERDATA, x);
    }
    curl_easy_setopt(e, CURLOPT_BUFFERSIZE, 512L * 1024);
    curl_easy_setopt(e, CURLOPT_UPLOAD_BUFFERSIZE, 512L * 1024);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    if (g_cafile) {
        curl_easy_setopt(e, CURLOPT_CAINFO, g_cafile);
    }
    if (g_tls13_ciphers) {
        curl_easy_setopt(e, CURLOPT_TLS13_CIPHERS, g_tls13_ciphers);
    }
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
    /* A stalled transfer is an error, not a hung benchmark. */
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, 60L);
    if (g.fresh) {
        curl_easy_setopt(e, CURLOPT_FRESH_CONNECT, 1L);
        curl_easy_setopt(e, CURLOPT_FORBID_REUSE, 1L);
    }
    if (g.put) {
        curl_easy_setopt(e, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(e, CURLOPT_READFUNCTION, s_read);
        curl_easy_setopt(e, CURLOPT_READDATA, x);
        curl_easy_setopt(e, CURLOPT_INFILESIZE_LARGE, (curl_off_t)g.size);
    }
    x->start = s_now();
    return 0;
}

/* The hex SHA-256 of a body of g.size bytes as s_read produces it. */
static int s_hash_body(void)
{
    static const char hex[] = "0123456789abcdef";
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned char d[32];
    unsigned int n = 0;
    int ok = md && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1;
    for (uint64_t off = 0; ok && off < g.size; off += PATTERN_SIZE) {
        uint64_t len = g.size - off < PATTERN_SIZE ? g.size - off : PATTERN_SIZE;
        ok = EVP_DigestUpdate(md, g_pattern, (size_t)len) == 1;
    }
    ok = ok && EVP_DigestFinal_ex(md, d, &n) == 1 && n == 32;
    EVP_MD_CTX_free(md);
    for (unsigned i = 0; ok && i < 32; i++) {
        g_body_sha256[2 * i] = hex[d[i] >> 4];
        g_body_sha256[2 * i + 1] = hex[d[i] & 15];
    }
    return ok ? 0 : -1;
}

static int s_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of sorted values. */
static double s_pct(const double *v, uint64_t n, double p)
{
    uint64_t rank = (uint64_t)ceil(p * (double)n);
    return v[rank > 0 ? rank - 1 : 0];
}

static int s_usage(const char *why)
{
    fprintf(stderr,
            "s3load: %s\n"
            "usage: s3load put|get --endpoint URL --bucket B --key K --size BYTES\n"
            "              [--count N] [--concurrency C] [--region R]\n"
            "              [--access-key AK] [--secret-key SK] [--fresh] [--sse | --sse-kms]\n"
            "              [--same-key]\n"
            "              [--signed-payload | --unsigned-payload]\n"
            "       (or S3LOAD_ACCESS_KEY / S3LOAD_SECRET_KEY in the environment)\n",
            why);
    return 2;
}

static bool s_number(const char *s, uint64_t max, uint64_t *out)
{
    return s3s_is_ok(s3s_parse_u64(s3s_cur_from_str(s), max, out));
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"endpoint", required_argument, NULL, 'e'},   {"bucket", required_argument, NULL, 'b'},
        {"key", required_argument, NULL, 'k'},        {"size", required_argument, NULL, 's'},
        {"count", required_argument, NULL, 'n'},      {"concurrency", required_argument, NULL, 'c'},
        {"region", required_argument, NULL, 'r'},     {"access-key", required_argument, NULL, 'a'},
        {"secret-key", required_argument, NULL, 'S'}, {"fresh", no_argument, NULL, 'f'},
        {"sse", no_argument, NULL, 'E'},              {"sse-kms", no_argument, NULL, 'K'},
        {"same-key", no_argument, NULL, '1'},
        {"signed-payload", no_argument, NULL, 'P'},   {"unsigned-payload", no_argument, NULL, 'U'},
        {NULL, 0, NULL, 0},
    };
    if (argc < 2 || (strcmp(argv[1], "put") != 0 && strcmp(argv[1], "get") != 0)) {
        return s_usage("the first argument is put or get");
    }
    g.put = strcmp(argv[1], "put") == 0;
    g_cafile = getenv("S3LOAD_CA_FILE");
    g_tls13_ciphers = getenv("S3LOAD_TLS13_CIPHERS");
    g.count = 1;
    g.conc = 1;
    g.region = "us-east-1";
    g.access_key = getenv("S3LOAD_ACCESS_KEY");
    const char *sk = getenv("S3LOAD_SECRET_KEY");
    bool size_set = false;
    optind = 2;
    int ch;
    while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (ch) {
        case 'e':
            g.endpoint = optarg;
            break;
        case 'b':
            g.bucket = optarg;
            break;
        case 'k':
            g.key = optarg;
            break;
        case 's':
            /* A single PUT is capped at 5 GiB by S3. */
            if (!s_number(optarg, 5ull << 30, &g.size)) {
                return s_usage("--size: a number of bytes up to 5 GiB");
            }
            size_set = true;
            break;
        case 'n':
            if (!s_number(optarg, 100000000, &g.count) || g.count == 0) {
                return s_usage("--count: a positive number");
            }
            break;
        case 'c':
            if (!s_number(optarg, 4096, &g.conc) || g.conc == 0) {
                return s_usage("--concurrency: 1 to 4096");
            }
            break;
        case 'r':
            g.region = optarg;
            break;
        case 'a':
            g.access_key = optarg;
            break;
        case 'S':
            sk = optarg;
            break;
        case 'f':
            g.fresh = true;
            break;
        case 'E':
            g.sse = true;
            g.sse_alg = "AES256";
            break;
        case 'K':
            g.sse = true;
            g.sse_alg = "aws:kms";
            break;
        case '1':
            g.same_key = true;
            break;
        case 'P':
            g.signed_payload = true;
            break;
        case 'U':
            g.signed_payload = false;
            break;
        default:
            return s_usage("unknown option");
        }
    }
    if (optind != argc) {
        return s_usage("unexpected argument");
    }
    if (!g.endpoint || !g.bucket || !g.key || !size_set) {
        return s_usage("--endpoint, --bucket, --key and --size are required");
    }
    if (!g.access_key || !sk) {
        return s_usage("no credentials: --access-key and --secret-key (or S3LOAD_SECRET_KEY)");
    }
    /* The host header is the endpoint's authority, exactly as curl sends it. */
    const char *host = strstr(g.endpoint, "://");
    host = host ? host + 3 : g.endpoint;
    static char host_buf[512], ep_buf[1024];
    size_t hl = strcspn(host, "/");
    if (hl == 0 || hl >= sizeof(host_buf) || (size_t)(host - g.endpoint) + hl >= sizeof(ep_buf)) {
        return s_usage("--endpoint: http[s]://HOST[:PORT]");
    }
    memcpy(host_buf, host, hl);
    g.host = host_buf;
    memcpy(ep_buf, g.endpoint, (size_t)(host - g.endpoint) + hl);
    g.endpoint = ep_buf;
    if (g.conc > g.count) {
        g.conc = g.count;
    }
    if (s3s_failed(s3s_secret_from(sk, strlen(sk), &g_secret))) {
        fprintf(stderr, "s3load: out of memory\n");
        return 1;
    }
    s_fill_pattern();
    if (g.put && g.signed_payload && s_hash_body() != 0) {
        fprintf(stderr, "s3load: cannot hash the body\n");
        return 1;
    }

    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        return 1;
    }
    CURLM *m = curl_multi_init();
    struct xfer *xs = calloc((size_t)g.conc, sizeof(*xs));
    double *lat = calloc((size_t)g.count, sizeof(double));
    if (!m || !xs || !lat) {
        fprintf(stderr, "s3load: out of memory\n");
        return 1;
    }
    curl_multi_setopt(m, CURLMOPT_MAXCONNECTS, (long)g.conc);

    uint64_t next = 0, done = 0, errors = 0, bytes = 0;
    bool many = g.count > 1;
    int rc = 0;
    double t0 = s_now();
    for (uint64_t i = 0; i < g.conc; i++, next++) {
        if (s_setup(&xs[i], many ? (long)next : -1) != 0 ||
            curl_multi_add_handle(m, xs[i].easy) != CURLM_OK) {
            fprintf(stderr, "s3load: cannot start request %llu\n", (unsigned long long)next);
            return 1;
        }
    }
    while (done < g.count && rc == 0) {
        int running = 0;
        if (curl_multi_perform(m, &running) != CURLM_OK) {
            fprintf(stderr, "s3load: curl_multi_perform failed\n");
            rc = 1;
            break;
        }
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(m, &left)) != NULL) {
            if (msg->msg != CURLMSG_DONE) {
                continue;
            }
            struct xfer *x = NULL;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
            long code = 0;
            curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &code);
            uint64_t moved = g.put ? x->sent : x->received;
            bool sse_missing = g.sse && code == 200 && !x->sse_seen;
            if (msg->data.result != CURLE_OK || code != 200 || moved != g.size ||
                sse_missing) {
                errors++;
                if (errors <= ERR_REPORT_MAX) {
                    char idx[24] = "";
                    if (many) {
                        snprintf(idx, sizeof(idx), "-%ld", x->index);
                    }
                    fprintf(stderr,
                            "s3load: %s %s%s failed: %s, HTTP %ld, %llu of %llu bytes%s%s%s%s\n",
                            g.put ? "PUT" : "GET", g.key, idx,
                            curl_easy_strerror(msg->data.result), code,
                            (unsigned long long)moved, (unsigned long long)g.size,
                            sse_missing ? ", no x-amz-server-side-encryption: " : "",
                            sse_missing ? g.sse_alg : "",
                            x->err_len ? ": " : "", x->err_body);
                }
            }
            lat[done++] = (s_now() - x->start) * 1000.0;
            bytes += moved;
            curl_multi_remove_handle(m, x->easy);
            curl_slist_free_all(x->headers);
            x->headers = NULL;
            if (next < g.count) {
                if (s_setup(x, many ? (long)next : -1) != 0 ||
                    curl_multi_add_handle(m, x->easy) != CURLM_OK) {
                    fprintf(stderr, "s3load: cannot start request %llu\n",
                            (unsigned long long)next);
                    rc = 1;
                    break;
                }
                next++;
            }
        }
        if (done < g.count && rc == 0) {
            curl_multi_poll(m, NULL, 0, 100, NULL);
        }
    }
    double secs = s_now() - t0;
    if (rc == 0) {
        qsort(lat, (size_t)g.count, sizeof(double), s_cmp);
        /* The generator's own CPU, so a reader can see what it took from the cores. */
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                     (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
        printf("{\"op\":\"%s\",\"sse\":%s%s%s,\"signed_payload\":%s,\"bytes\":%llu,\"requests\":%llu,\"errors\":%llu,"
               "\"seconds\":%.3f,\"mib_s\":%.1f,\"req_s\":%.1f,\"p50_ms\":%.2f,"
               "\"p99_ms\":%.2f,\"client_cpu_s\":%.2f}\n",
               g.put ? "put" : "get", g.sse ? "\"" : "false", g.sse ? g.sse_alg : "",
               g.sse ? "\"" : "", g.put && g.signed_payload ? "true" : "false",
               (unsigned long long)bytes,
               (unsigned long long)g.count, (unsigned long long)errors, secs,
               (double)bytes / 1048576.0 / secs, (double)g.count / secs,
               s_pct(lat, g.count, 0.50), s_pct(lat, g.count, 0.99), cpu);
        rc = errors ? 1 : 0;
    }
    for (uint64_t i = 0; i < g.conc; i++) {
        if (xs[i].easy) {
            curl_multi_remove_handle(m, xs[i].easy);
            curl_easy_cleanup(xs[i].easy);
        }
        curl_slist_free_all(xs[i].headers);
    }
    free(xs);
    free(lat);
    curl_multi_cleanup(m);
    curl_global_cleanup();
    s3s_secret_destroy(&g_secret);
    s3s_sigv4_cache_clean_up();
    return rc;
}
