/*
 * main.c - the `s3seal` command line: `serve` runs the proxy (one worker
 * thread per event loop, signals handled on the main thread), `presign`
 * makes a presigned URL for s3seal's own endpoint, `version` prints the
 * version; the other commands are dispatched to cli_*.c.
 */
#include <curl/curl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <libxml/parser.h>

#include "common/log.h"
#include "proxy/admin.h"
#include "proxy/cli.h"
#include "proxy/metrics.h"
#include "proxy/proxy.h"
#include "proxy/reload.h"
#include "proxy/service.h"

/* The project's version in CMakeLists.txt (proxy/CMakeLists.txt defines
 * it); the fallback only for a build without it. */
#ifndef S3SEAL_VERSION
#define S3SEAL_VERSION "0.0.0"
#endif

static void s_usage(FILE *f) { s3s_cli_overview(f); }

static const char *s_config_path(const char *opt)
{
    if (opt) {
        return opt;
    }
    const char *env = getenv("S3SEAL_CONFIG");
    return env && *env ? env : "s3seal.yaml";
}

static struct s3s_config *s_load(const char *path)
{
    struct s3s_config *cfg = NULL;
    char why[512] = "";
    if (s3s_failed(s3s_config_load(path, &cfg, why, sizeof(why)))) {
        fprintf(stderr, "s3seal: %s\n", why[0] ? why : "cannot load the configuration");
        return NULL;
    }
    return cfg;
}

/* Every command handles secrets (the master key, client and backend
 * secrets, data keys): none leaves a core file, and other processes of the
 * same user cannot attach to it or read its memory. `serve` turns this off
 * again when the config asks (debug_core_dumps). */
static struct rlimit g_core_limit; /* as the process started */

static void s_no_core_dumps(void)
{
    if (getrlimit(RLIMIT_CORE, &g_core_limit) == 0) {
        struct rlimit none = {0, g_core_limit.rlim_max};
        (void)setrlimit(RLIMIT_CORE, &none);
    }
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) {
        perror("s3seal: prctl(PR_SET_DUMPABLE)");
    }
}

/* ------------------------------------------------------------------ serve */

struct s_serve {
    struct s3s_worker *workers;
    int n;
    uv_signal_t sigterm, sigint;
    /* SIGHUP reloads the config at cfg_path into cur (reload.h); SIGUSR1
     * reopens the access log; the watchdog pings systemd while every
     * worker's loop turns. */
    uv_signal_t sighup, sigusr1;
    uv_timer_t watchdog;
    const char *cfg_path;
    const struct s3s_config *cur;
    struct s3s_admin *admin; /* NULL without admin_listen */
    struct s3s_tls_server *tls; /* NULL without tls: */
};

static void s_worker_thread(void *arg)
{
    struct s3s_worker *w = arg;
    s3s_metrics_thread_attach(w->id);
    w->exit_status = s3s_worker_run(w);
}

static void s_on_signal(uv_signal_t *s, int signum)
{
    struct s_serve *sv = s->data;
    S3S_LOGI("server", "signal=%s: draining in-flight requests",
             signum == SIGTERM ? "SIGTERM" : "SIGINT");
    s3s_admin_set_draining(sv->admin); /* /health/ready: 503 from now on */
    for (int i = 0; i < sv->n; i++) {
        s3s_worker_stop(&sv->workers[i]);
    }
    uv_close((uv_handle_t *)&sv->sigterm, NULL);
    uv_close((uv_handle_t *)&sv->sigint, NULL);
    /* No reload once the workers drain: their loops go away. */
    uv_close((uv_handle_t *)&sv->sighup, NULL);
    uv_close((uv_handle_t *)&sv->sigusr1, NULL);
    uv_close((uv_handle_t *)&sv->watchdog, NULL);
    s3s_service_stopping();
}

static void s_on_sighup(uv_signal_t *s, int signum)
{
    (void)signum;
    struct s_serve *sv = s->data;
    S3S_LOGI("server", "signal=SIGHUP: reloading the configuration");
    (void)s3s_reload_config(sv->cfg_path, &sv->cur, sv->workers, sv->n);
}

static void s_on_sigusr1(uv_signal_t *s, int signum)
{
    (void)s;
    (void)signum;
    char why[512] = "";
    if (s3s_failed(s3s_log_access_reopen(why, sizeof(why)))) {
        S3S_LOGE("server", "signal=SIGUSR1: cannot reopen the access log, lines still go to "
                           "the old file: %s", why);
    } else {
        S3S_LOGI("server", "signal=SIGUSR1: access log reopened");
    }
}

/* Every period, WATCHDOG=1 if each worker's loop turned since the last
 * one (it answered the last ping), then a new ping. */
static void s_watchdog_cb(uv_timer_t *t)
{
    struct s_serve *sv = t->data;
    bool all = true;
    for (int i = 0; i < sv->n; i++) {
        uint64_t a = atomic_load(&sv->workers[i].alive);
        all = all && a != sv->workers[i].alive_seen;
        sv->workers[i].alive_seen = a;
        s3s_worker_ping(&sv->workers[i]);
    }
    if (all) {
        s3s_service_watchdog();
    }
}

/* SIGHUP (reload.h): the TLS certificate, key and client CA are read again
 * into a new context for new connections; open ones keep theirs. A file
 * that does not load refuses the reload, and the old context stays. */
static s3s_result s_tls_prepare(void *ctx, const struct s3s_config *cur,
                                const struct s3s_config *next, char *why, size_t why_len)
{
    (void)cur;
    if (!next->tls.cert_file) {
        S3S_LOGW("tls", "turning TLS off needs a restart: HTTPS goes on with the certificate "
                        "in use");
        return s3s_ok();
    }
    return s3s_tls_server_prepare(ctx, next, why, why_len);
}

static void s_tls_abort(void *ctx) { s3s_tls_server_abort(ctx); }

static void s_tls_commit(void *ctx, const struct s3s_config *next)
{
    (void)next;
    if (s3s_tls_server_commit(ctx)) {
        char what[256];
        s3s_tls_server_describe(ctx, what, sizeof(what));
        S3S_LOGI("tls", "certificate reloaded: %s", what);
    }
}

static int s_serve(const char *cfg_path)
{
    struct s3s_config *cfg = s_load(cfg_path);
    if (!cfg) {
        return 2;
    }
    s3s_log_set_level((enum s3s_log_level)cfg->log_level);
    s3s_log_set_format((enum s3s_log_format)cfg->log_format);
    char why[512] = "";
    if (cfg->access_log && s3s_failed(s3s_log_access_open(cfg->access_log, why, sizeof(why)))) {
        fprintf(stderr, "s3seal: %s\n", why);
        s3s_config_destroy(cfg);
        return 2;
    }
    if (cfg->debug_core_dumps) {
        /* Asked for: a crash leaves a core file again, secrets and all
         * (those in s3s_secret memory excepted: MADV_DONTDUMP). */
        (void)prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
        (void)setrlimit(RLIMIT_CORE, &g_core_limit);
        S3S_LOGW("server", "debug_core_dumps: core files are on and may hold secrets");
    }
    signal(SIGPIPE, SIG_IGN);
    /* A file size limit reached by the audit log is an error of that
     * append (EFBIG: the key is not used), not the end of the process. */
    signal(SIGXFSZ, SIG_IGN);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "s3seal: libcurl initialisation failed\n");
        s3s_config_destroy(cfg);
        return 1;
    }
    xmlInitParser();

    int status = 0;
    struct s_serve sv = {0};
    sv.n = cfg->workers > 0 ? cfg->workers : 1;
    sv.workers = s3s_calloc((size_t)sv.n, sizeof(*sv.workers));
    int started = 0;
    if (!sv.workers || s3s_failed(s3s_metrics_init(cfg, sv.n)) ||
        (cfg->admin_host && s3s_failed(s3s_admin_start(cfg, S3SEAL_VERSION, &sv.admin)))) {
        status = 1;
        goto out;
    }
    /* tls: the certificate and key are read now: a mistake in them stops
     * the start-up as a mistake in the config does. */
    char tls_why[512] = "";
    if (cfg->tls.cert_file &&
        s3s_failed(s3s_tls_server_new(cfg, &sv.tls, tls_why, sizeof(tls_why)))) {
        fprintf(stderr, "s3seal: %s\n", tls_why[0] ? tls_why : "cannot set up TLS");
        status = 2;
        goto out;
    }
    for (int i = 0; i < sv.n; i++) {
        if (s3s_failed(s3s_worker_init(&sv.workers[i], i, cfg))) {
            status = 1;
            s3s_worker_clean_up(&sv.workers[i]);
            goto out;
        }
        sv.workers[i].tls = sv.tls;
        started++;
    }
    if (sv.tls) {
        char what[256];
        s3s_tls_server_describe(sv.tls, what, sizeof(what));
        S3S_LOGI("tls", "HTTPS on %s:%d, certificate %s, TLS %s and later%s", cfg->listen_host,
                 cfg->listen_port, what, cfg->tls.min_version == 0x0304 ? "1.3" : "1.2",
                 cfg->tls.client_ca_file ? ", client certificates required" : "");
        struct s3s_reload_hook hook = {"tls", s_tls_prepare, s_tls_abort, NULL, s_tls_commit,
                                       sv.tls};
        if (s3s_failed(s3s_reload_hook_add(&hook))) {
            status = 1;
            goto out;
        }
    }
    uv_loop_t *main_loop = uv_default_loop();
    uv_signal_init(main_loop, &sv.sigterm);
    uv_signal_init(main_loop, &sv.sigint);
    sv.sigterm.data = sv.sigint.data = &sv;
    uv_signal_start(&sv.sigterm, s_on_signal, SIGTERM);
    uv_signal_start(&sv.sigint, s_on_signal, SIGINT);
    sv.cfg_path = cfg_path;
    sv.cur = s3s_config_acquire(cfg);
    uv_signal_init(main_loop, &sv.sighup);
    uv_signal_init(main_loop, &sv.sigusr1);
    uv_timer_init(main_loop, &sv.watchdog);
    sv.sighup.data = sv.sigusr1.data = sv.watchdog.data = &sv;
    uv_signal_start(&sv.sighup, s_on_sighup, SIGHUP);
    uv_signal_start(&sv.sigusr1, s_on_sigusr1, SIGUSR1);
    uint64_t watchdog_ms = s3s_service_watchdog_ms();
    if (watchdog_ms) {
        uv_timer_start(&sv.watchdog, s_watchdog_cb, watchdog_ms, watchdog_ms);
    }

    for (int i = 0; i < sv.n; i++) {
        uv_thread_create(&sv.workers[i].thread, s_worker_thread, &sv.workers[i]);
    }
    S3S_LOGI("server", "s3seal %s listening on %s:%d workers=%d backend=%s", S3SEAL_VERSION,
             cfg->listen_host, cfg->listen_port, sv.n, cfg->backend.endpoint);
    s3s_service_ready();
    s3s_admin_set_running(sv.admin);
    uv_run(main_loop, UV_RUN_DEFAULT);
    for (int i = 0; i < sv.n; i++) {
        uv_thread_join(&sv.workers[i].thread);
        if (sv.workers[i].exit_status) {
            status = 1;
        }
    }
    uv_loop_close(main_loop);
    S3S_LOGI("server", "stopped");

out:
    s3s_admin_stop(sv.admin);
    for (int i = 0; i < started; i++) {
        s3s_worker_clean_up(&sv.workers[i]);
    }
    s3s_tls_server_free(&sv.tls);
    s3s_free(&sv.workers);
    /* Joins libuv's thread pool, so what its threads hold per thread
     * (libxml2's state of the XML parsed there) is freed with them. */
    uv_library_shutdown();
    s3s_metrics_clean_up();
    s3s_sigv4_cache_clean_up();
    curl_global_cleanup();
    xmlCleanupParser();
    s3s_reload_hooks_clear();
    s3s_config_release(sv.cur);
    s3s_config_destroy(cfg);
    s3s_log_access_close();
    return status;
}

/* ---------------------------------------------------------------- presign */

static int s_presign(const char *cfg_path, int argc, char **argv)
{
    const char *method = "GET";
    long expires = 3600;
    static const struct option opts[] = {
        {"method", required_argument, NULL, 'm'},
        {"expires", required_argument, NULL, 'e'},
        {NULL, 0, NULL, 0},
    };
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "m:e:", opts, NULL)) != -1) {
        switch (ch) {
        case 'm':
            method = optarg;
            break;
        case 'e': {
            uint64_t v = 0;
            if (s3s_failed(s3s_parse_u64(s3s_cur_from_str(optarg), S3S_SIGV4_MAX_EXPIRES, &v)) ||
                v == 0) {
                fprintf(stderr, "s3seal presign: --expires must be 1..%d seconds\n",
                        S3S_SIGV4_MAX_EXPIRES);
                return 2;
            }
            expires = (long)v;
            break;
        }
        default:
            (void)s3s_cli_usage("presign", stderr);
            return 2;
        }
    }
    if (optind != argc - 1 || strncmp(argv[optind], "s3://", 5) != 0) {
        fprintf(stderr, "s3seal presign: expected one s3://BUCKET/KEY argument\n");
        (void)s3s_cli_usage("presign", stderr);
        return 2;
    }
    if (strcmp(method, "GET") != 0 && strcmp(method, "PUT") != 0 &&
        strcmp(method, "HEAD") != 0 && strcmp(method, "DELETE") != 0) {
        fprintf(stderr, "s3seal presign: --method must be GET, PUT, HEAD or DELETE\n");
        return 2;
    }
    struct s3s_config *cfg = s_load(cfg_path);
    if (!cfg) {
        return 2;
    }
    int status = 1;
    struct s3s_buf path, canon, query, host;
    s3s_result_ignore(s3s_buf_init(&path, 0, 8192));
    s3s_result_ignore(s3s_buf_init(&canon, 0, 3 * 8192));
    s3s_result_ignore(s3s_buf_init(&query, 0, 8192));
    s3s_result_ignore(s3s_buf_init(&host, 0, 512));
    if (cfg->n_credentials == 0) {
        fprintf(stderr, "s3seal presign: the config has no credentials\n");
        goto out;
    }
    const char *hs;
    bool v6 = strchr(cfg->listen_host, ':') != NULL;
    const char *lh = strcmp(cfg->listen_host, "0.0.0.0") == 0 ? "127.0.0.1" : cfg->listen_host;
    if (s3s_failed(s3s_buf_append_byte(&path, '/')) ||
        s3s_failed(s3s_buf_append_str(&path, argv[optind] + 5)) ||
        s3s_failed(s3s_sigv4_canonical_path(s3s_buf_cur(&path), &canon)) ||
        s3s_failed(s3s_buf_appendf(&host, v6 ? "[%s]:%d" : "%s:%d", lh, cfg->listen_port)) ||
        s3s_failed(s3s_buf_cstr(&host, &hs))) {
        fprintf(stderr, "s3seal presign: bad object name\n");
        goto out;
    }
    struct s3s_sigv4_header h = {S3S_CUR_LIT("host"), s3s_cur_from_str(hs)};
    struct s3s_sigv4_request req = {s3s_cur_from_str(method), s3s_buf_cur(&canon),
                                    s3s_cur_from(NULL, 0), &h, 1};
    struct s3s_sigv4_credentials creds = {s3s_cur_from_str(cfg->credentials[0].access_key),
                                          &cfg->credentials[0].secret_key};
    if (s3s_failed(s3s_sigv4_presign(&req, &creds, cfg->region, "s3", s3s_now_real(NULL), expires,
                                     &query))) {
        fprintf(stderr, "s3seal presign: signing failed\n");
        goto out;
    }
    printf("%s://%s%.*s?%.*s\n", cfg->tls.cert_file ? "https" : "http", hs, (int)canon.len,
           (const char *)canon.ptr, (int)query.len, (const char *)query.ptr);
    status = 0;
out:
    s3s_buf_clean_up(&path);
    s3s_buf_clean_up(&canon);
    s3s_buf_clean_up(&query);
    s3s_buf_clean_up(&host);
    s3s_sigv4_cache_clean_up();
    s3s_config_destroy(cfg);
    return status;
}

int main(int argc, char **argv)
{
    s_no_core_dumps();
    const char *cfg_opt = NULL;
    int i = 1;
    while (i < argc && argv[i][0] == '-') {
        if ((strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) && i + 1 < argc) {
            cfg_opt = argv[i + 1];
            i += 2;
        } else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            s_usage(stdout);
            return 0;
        } else {
            s_usage(stderr);
            return 2;
        }
    }
    if (i >= argc) {
        s_usage(stderr);
        return 2;
    }
    const char *cmd = argv[i++];
    /* Commands also take -c after their name: `s3seal serve -c FILE`. */
    int rest_argc = argc - i + 1;
    char **rest_argv = argv + i - 1;
    for (int j = 1; j < rest_argc; j++) {
        if ((strcmp(rest_argv[j], "-c") == 0 || strcmp(rest_argv[j], "--config") == 0) &&
            j + 1 < rest_argc) {
            cfg_opt = rest_argv[j + 1];
            memmove(&rest_argv[j], &rest_argv[j + 2], (size_t)(rest_argc - j - 2) * sizeof(char *));
            rest_argc -= 2;
            j--;
        }
    }
    /* Help needs no config: `s3seal help [COMMAND]`, `s3seal COMMAND --help`
     * (or -h); the texts are cli_help.c's. */
    if (s3s_cli_help_asked(rest_argc, rest_argv)) {
        if (s3s_cli_usage(cmd, stdout)) {
            return 0;
        }
        fprintf(stderr, "s3seal: unknown command '%s'\n", cmd);
        s_usage(stderr);
        return 2;
    }
    if (strcmp(cmd, "help") == 0) {
        if (rest_argc == 1) {
            s_usage(stdout);
            return 0;
        }
        if (rest_argc == 2 && s3s_cli_usage(rest_argv[1], stdout)) {
            return 0;
        }
        fprintf(stderr, "s3seal: no help for '%s'\n", rest_argc == 2 ? rest_argv[1] : "");
        s_usage(stderr);
        return 2;
    }
    if (strcmp(cmd, "serve") == 0) {
        if (rest_argc != 1) {
            (void)s3s_cli_usage("serve", stderr);
            return 2;
        }
        return s_serve(s_config_path(cfg_opt));
    }
    if (strcmp(cmd, "presign") == 0) {
        return s_presign(s_config_path(cfg_opt), rest_argc, rest_argv);
    }
    if (strcmp(cmd, "audit") == 0 && !s3s_cli_audit_needs_config(rest_argc, rest_argv)) {
        /* Before any config is loaded: the log file is all it reads. */
        return s3s_cli_audit(NULL, rest_argc, rest_argv);
    }
    if (strcmp(cmd, "policy") == 0) {
        /* Policy files are all it reads. */
        return s3s_cli_policy(rest_argc, rest_argv);
    }
    s3s_cli_fn *sub = NULL;
    if (strcmp(cmd, "keystore") == 0) {
        sub = s3s_cli_keystore;
    } else if (strcmp(cmd, "root-key") == 0) {
        sub = s3s_cli_root_key;
    } else if (strcmp(cmd, "keys") == 0) {
        sub = s3s_cli_keys;
    } else if (strcmp(cmd, "decrypt") == 0) {
        sub = s3s_cli_decrypt;
    } else if (strcmp(cmd, "rewrap") == 0) {
        sub = s3s_cli_rewrap;
    } else if (strcmp(cmd, "migrate") == 0) {
        sub = s3s_cli_migrate;
    } else if (strcmp(cmd, "catalog") == 0) {
        sub = s3s_cli_catalog;
    } else if (strcmp(cmd, "audit") == 0) {
        sub = s3s_cli_audit; /* the trail the config names */
    }
    if (sub) {
        struct s3s_config *cfg = s_load(s_config_path(cfg_opt));
        if (!cfg) {
            return 2;
        }
        int status = sub(cfg, rest_argc, rest_argv);
        s3s_config_destroy(cfg);
        return status;
    }
    if (strcmp(cmd, "version") == 0) {
        if (rest_argc != 1) {
            (void)s3s_cli_usage("version", stderr);
            return 2;
        }
        printf("s3seal %s\n", S3SEAL_VERSION);
        return 0;
    }
    fprintf(stderr, "s3seal: unknown command '%s'\n", cmd);
    s_usage(stderr);
    return 2;
}
