/*
 * s3load.c - a small S3 load generator for the benchmark: signed SigV4 PUT or
 * GET requests (as a real client signs them) over keep-alive connections
 * with libcurl's multi interface.
 *
 *   s3load put|get --endpoint URL --bucket B --key K --size BYTES
 *                  [--count N] [--concurrency C] [--region R]
 *   credentials: S3LOAD_ACCESS_KEY, S3LOAD_SECRET_KEY (environment)
 *
 * With --count 1 it moves one object of --size bytes (PUT bodies are
 * generated on the fly; GET bodies are counted and dropped, so memory stays
 * small whatever the size). With a larger count, keys K-0 .. K-(N-1).
 * Prints one JSON line: op, bytes, requests, errors, seconds, MiB/s, req/s,
 * p50 and p99 latency in ms.
 */
#include <curl/curl.h>
#include <getopt.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sigv4/sigv4.h"

#define PATTERN_SIZE (1u << 20)

struct xfer {
    CURL *easy;
    struct curl_slist *headers;
    uint64_t sent, size;
    uint64_t received;
    double start;
    long index;
};

static uint8_t g_pattern[PATTERN_SIZE];
static const char *g_endpoint, *g_bucket, *g_key, *g_region = "us-east-1";
static bool g_put;
static uint64_t g_size;
static struct s3s_secret g_secret;
static const char *g_access_key;
static double *g_lat;
static long g_errors;
static uint64_t g_bytes;

static double s_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static size_t s_read(char *buf, size_t size, size_t n, void *ud)
{
    struct xfer *x = ud;
    size_t want = size * n;
    uint64_t left = x->size - x->sent;
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
    (void)p;
    struct xfer *x = ud;
    x->received += size * n;
    return size * n;
}

static int s_setup(struct xfer *x, long index)
{
    char key[1024], path[2048], url[4096], date[17];
    if (g_key[0] && index >= 0) {
        snprintf(key, sizeof(key), "%s-%ld", g_key, index);
    } else {
        snprintf(key, sizeof(key), "%s", g_key);
    }
    snprintf(path, sizeof(path), "/%s/%s", g_bucket, key);
    const char *host = strstr(g_endpoint, "://");
    host = host ? host + 3 : g_endpoint;
    s3s_time_format_iso8601_basic((int64_t)time(NULL), date);
    const char *payload = g_put ? S3S_SIGV4_UNSIGNED_PAYLOAD : S3S_SIGV4_EMPTY_SHA256;
    struct s3s_sigv4_header h[3] = {
        {S3S_CUR_LIT("host"), s3s_cur_from_str(host)},
        {S3S_CUR_LIT("x-amz-content-sha256"), s3s_cur_from_str(payload)},
        {S3S_CUR_LIT("x-amz-date"), s3s_cur_from_str(date)},
    };
    struct s3s_sigv4_request req = {g_put ? S3S_CUR_LIT("PUT") : S3S_CUR_LIT("GET"),
                                    s3s_cur_from_str(path), s3s_cur_from(NULL, 0), h, 3};
    struct s3s_sigv4_credentials cr = {s3s_cur_from_str(g_access_key), &g_secret};
    struct s3s_buf auth;
    if (s3s_failed(s3s_buf_init(&auth, 0, 4096)) ||
        s3s_failed(s3s_sigv4_sign(&req, &cr, g_region, "s3", (int64_t)time(NULL),
                                  s3s_cur_from_str(payload), &auth))) {
        return -1;
    }
    char line[4200];
    x->headers = NULL;
    snprintf(line, sizeof(line), "x-amz-date: %s", date);
    x->headers = curl_slist_append(x->headers, line);
    snprintf(line, sizeof(line), "x-amz-content-sha256: %s", payload);
    x->headers = curl_slist_append(x->headers, line);
    snprintf(line, sizeof(line), "Authorization: %.*s", (int)auth.len, (const char *)auth.ptr);
    x->headers = curl_slist_append(x->headers, line);
    x->headers = curl_slist_append(x->headers, "Expect:");
    x->headers = curl_slist_append(x->headers, "Accept:");
    s3s_buf_clean_up(&auth);

    snprintf(url, sizeof(url), "%s%s", g_endpoint, path);
    if (!x->easy) {
        x->easy = curl_easy_init();
    } else {
        curl_easy_reset(x->easy);
    }
    CURL *e = x->easy;
    x->sent = x->received = 0;
    x->size = g_size;
    x->index = index;
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->headers);
    curl_easy_setopt(e, CURLOPT_PRIVATE, (char *)x);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, s_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(e, CURLOPT_BUFFERSIZE, 512L * 1024);
    curl_easy_setopt(e, CURLOPT_UPLOAD_BUFFERSIZE, 512L * 1024);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    if (g_put) {
        curl_easy_setopt(e, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(e, CURLOPT_READFUNCTION, s_read);
        curl_easy_setopt(e, CURLOPT_READDATA, x);
        curl_easy_setopt(e, CURLOPT_INFILESIZE_LARGE, (curl_off_t)g_size);
    }
    x->start = s_now();
    return 0;
}

static int s_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    long count = 1, conc = 1;
    static const struct option opts[] = {
        {"endpoint", required_argument, NULL, 'e'}, {"bucket", required_argument, NULL, 'b'},
        {"key", required_argument, NULL, 'k'},      {"size", required_argument, NULL, 's'},
        {"count", required_argument, NULL, 'n'},    {"concurrency", required_argument, NULL, 'c'},
        {"region", required_argument, NULL, 'r'},   {NULL, 0, NULL, 0},
    };
    if (argc < 2 || (strcmp(argv[1], "put") != 0 && strcmp(argv[1], "get") != 0)) {
        fprintf(stderr, "usage: s3load put|get --endpoint URL --bucket B --key K --size N "
                        "[--count N] [--concurrency C]\n");
        return 2;
    }
    g_put = strcmp(argv[1], "put") == 0;
    optind = 2;
    int ch;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (ch) {
        case 'e':
            g_endpoint = optarg;
            break;
        case 'b':
            g_bucket = optarg;
            break;
        case 'k':
            g_key = optarg;
            break;
        case 's':
            g_size = strtoull(optarg, NULL, 10);
            break;
        case 'n':
            count = strtol(optarg, NULL, 10);
            break;
        case 'c':
            conc = strtol(optarg, NULL, 10);
            break;
        case 'r':
            g_region = optarg;
            break;
        default:
            return 2;
        }
    }
    g_access_key = getenv("S3LOAD_ACCESS_KEY");
    const char *sk = getenv("S3LOAD_SECRET_KEY");
    if (!g_endpoint || !g_bucket || !g_key || !g_access_key || !sk || count < 1 || conc < 1) {
        fprintf(stderr, "s3load: missing arguments or S3LOAD_ACCESS_KEY/S3LOAD_SECRET_KEY\n");
        return 2;
    }
    if (conc > count) {
        conc = count;
    }
    if (s3s_failed(s3s_secret_from(sk, strlen(sk), &g_secret)) ||
        RAND_bytes(g_pattern, sizeof(g_pattern)) != 1) {
        return 1;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    CURLM *m = curl_multi_init();
    curl_multi_setopt(m, CURLMOPT_MAXCONNECTS, conc);
    struct xfer *xs = calloc((size_t)conc, sizeof(*xs));
    g_lat = calloc((size_t)count, sizeof(double));
    long next = 0, done = 0;
    long key_index = count > 1 ? 0 : -1;
    double t0 = s_now();
    for (long i = 0; i < conc; i++) {
        if (s_setup(&xs[i], key_index >= 0 ? next : -1) != 0) {
            return 1;
        }
        next++;
        curl_multi_add_handle(m, xs[i].easy);
    }
    int running = 1;
    while (done < count) {
        curl_multi_perform(m, &running);
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
            if (msg->data.result != CURLE_OK || code != 200) {
                g_errors++;
                if (g_errors <= 3) {
                    fprintf(stderr, "s3load: request %ld failed: %s, HTTP %ld\n", x->index,
                            curl_easy_strerror(msg->data.result), code);
                }
            }
            g_lat[done++] = (s_now() - x->start) * 1000.0;
            g_bytes += g_put ? x->sent : x->received;
            curl_multi_remove_handle(m, x->easy);
            curl_slist_free_all(x->headers);
            if (next < count) {
                if (s_setup(x, key_index >= 0 ? next : -1) != 0) {
                    return 1;
                }
                next++;
                curl_multi_add_handle(m, x->easy);
            }
        }
        if (done < count) {
            curl_multi_poll(m, NULL, 0, 100, NULL);
        }
    }
    double secs = s_now() - t0;
    qsort(g_lat, (size_t)count, sizeof(double), s_cmp);
    printf("{\"op\":\"%s\",\"bytes\":%llu,\"requests\":%ld,\"errors\":%ld,\"seconds\":%.3f,"
           "\"mib_s\":%.1f,\"req_s\":%.1f,\"p50_ms\":%.2f,\"p99_ms\":%.2f}\n",
           g_put ? "put" : "get", (unsigned long long)g_bytes, count, g_errors, secs,
           (double)g_bytes / 1048576.0 / secs, (double)count / secs, g_lat[count / 2],
           g_lat[(size_t)((double)count * 0.99) < (size_t)count ? (size_t)((double)count * 0.99)
                                                                : (size_t)count - 1]);
    for (long i = 0; i < conc; i++) {
        curl_easy_cleanup(xs[i].easy);
    }
    free(xs);
    free(g_lat);
    curl_multi_cleanup(m);
    curl_global_cleanup();
    s3s_secret_destroy(&g_secret);
    s3s_sigv4_cache_clean_up();
    return g_errors ? 1 : 0;
}
