/*
 * audit_test.c - the hash-chained audit log: the exact record format (field
 * order, nulls, escaping, UTF-8, the hash rule recomputed here on its own),
 * refused records, every kind of tampering the chain must reveal (an altered
 * byte, a deleted first or middle line, swapped lines, a forged line with a
 * correct hash of its own, a cut last line, overlong and non-JSON lines),
 * appends that refuse to build on a broken end, and concurrent writers: two
 * handles on one file, threads sharing a handle, two processes. A write the
 * file size limit cuts short fails and leaves the chain intact, and so do
 * failed allocations.
 */
#include <fcntl.h>
#include <json-c/json.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "keystore/audit.h"
#include "testlib.h"

#define S_T0 INT64_C(1796161800123) /* 2026-12-01T21:50:00.123Z */
#define S_ZEROS "0000000000000000000000000000000000000000000000000000000000000000"

static char s_dir[64];

static const char *s_path(const char *name)
{
    static char p[4][128];
    static int next;
    char *out = p[next++ % 4];
    snprintf(out, sizeof(p[0]), "%s/%s", s_dir, name);
    return out;
}

static off_t s_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? st.st_size : -1;
}

static struct s3s_audit *s_open(const char *path)
{
    char why[256] = "";
    struct s3s_audit *a = NULL;
    T_OK(s3s_audit_open(path, false, &a, why, sizeof(why)));
    return a;
}

/* A plain record (id is borrowed, as every string of a record is). */
static struct s3s_audit_record s_rec(const char *id)
{
    return (struct s3s_audit_record){
        .time_ms = S_T0,
        .operation = "Decrypt",
        .result = "Success",
        .principal = "arn:aws:iam::111122223333:user/alice",
        .access_key = "AKIAEXAMPLE",
        .source = "192.0.2.1",
        .request_id = id,
        .key_arn = "arn:aws:kms:us-east-1:111122223333:key/k1",
        .key_version = 1,
        .bucket = "docs",
        .object = "a.txt",
    };
}

static void s_append_n(const char *path, int n)
{
    struct s3s_audit *a = s_open(path);
    for (int i = 0; i < n; i++) {
        char id[32];
        snprintf(id, sizeof(id), "req-%d", i);
        struct s3s_audit_record r = s_rec(id);
        T_OK(s3s_audit_append(a, &r));
    }
    s3s_audit_close(a);
}

static void s_expect_intact(const char *path, uint64_t n)
{
    uint64_t records = 99, bad = 99;
    char why[256] = "";
    s3s_result r = s3s_audit_verify(path, &records, &bad, why, sizeof(why));
    T_OK(r);
    T_CHECK(records == n);
    if (s3s_failed(r) || records != n) {
        fprintf(stderr, "  %s: %llu records, expected %llu; line %llu: %s\n", path,
                (unsigned long long)records, (unsigned long long)n, (unsigned long long)bad, why);
    }
}

static void s_expect_broken(const char *path, uint64_t line, const char *reason)
{
    uint64_t records = 99, bad = 99;
    char why[256] = "";
    T_ERR(s3s_audit_verify(path, &records, &bad, why, sizeof(why)), S3S_ERR_AUDIT_BROKEN);
    T_CHECK(bad == line && records == line - 1);
    T_CHECK(strstr(why, reason) != NULL);
    if (bad != line || !strstr(why, reason)) {
        fprintf(stderr, "  %s: broken at %llu (%s), expected %llu (%s)\n", path,
                (unsigned long long)bad, why, (unsigned long long)line, reason);
    }
}

/* ------------------------------------------------------------ file helpers */

#define S_MAX_LINES 16

/* A log read back and cut into lines (each with its newline). */
struct s_file {
    char *text;
    size_t n;
    const char *line[S_MAX_LINES];
    size_t len[S_MAX_LINES];
};

static void s_load(const char *path, struct s_file *f)
{
    memset(f, 0, sizeof(*f));
    size_t len = 0;
    f->text = t_read_file(path, &len);
    T_CHECK(f->text != NULL);
    for (size_t at = 0; f->text && at < len && f->n < S_MAX_LINES; f->n++) {
        const char *nl = memchr(f->text + at, '\n', len - at);
        size_t end = nl ? (size_t)(nl - f->text) + 1 : len;
        f->line[f->n] = f->text + at;
        f->len[f->n] = end - at;
        at = end;
    }
}

static void s_write(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    T_CHECK(f != NULL);
    if (f) {
        T_CHECK(fwrite(p, 1, n, f) == n);
        fclose(f);
    }
}

/* Writes f's lines in the given order to path; -1 stands for extra. */
static void s_write_variant(const char *path, const struct s_file *f, const int *order, size_t n,
                            const char *extra)
{
    FILE *out = fopen(path, "wb");
    T_CHECK(out != NULL);
    for (size_t i = 0; out && i < n; i++) {
        if (order[i] < 0) {
            fputs(extra, out);
        } else {
            fwrite(f->line[order[i]], 1, f->len[order[i]], out);
        }
    }
    if (out) {
        fclose(out);
    }
}

/* The hash rule of audit.h, computed here without the code under test:
 * SHA-256 of the line up to `,"hash":`, then "}". */
static void s_rule_hash(const char *line, size_t head_len, char out[65])
{
    uint8_t *m = malloc(head_len + 1);
    T_CHECK(m != NULL);
    if (!m) {
        return;
    }
    memcpy(m, line, head_len);
    m[head_len] = '}';
    uint8_t d[SHA256_DIGEST_LENGTH];
    SHA256(m, head_len + 1, d);
    free(m);
    for (int i = 0; i < 32; i++) {
        snprintf(out + 2 * i, 3, "%02x", d[i]);
    }
}

/* A line with head (everything up to `,"hash":`) and its correct hash. */
static char *s_make_line(const char *head)
{
    char hash[65];
    s_rule_hash(head, strlen(head), hash);
    size_t n = strlen(head) + 100;
    char *line = malloc(n);
    T_CHECK(line != NULL);
    if (line) {
        snprintf(line, n, "%s,\"hash\":\"%s\"}\n", head, hash);
    }
    return line;
}

/* A copy of line (of len bytes, newline included) with its prev replaced and
 * its own hash recomputed: a forgery that passes the line's own check. */
static char *s_reprev(const char *line, size_t len, const char *prev)
{
    char head[4096];
    const char *at = strstr(line, "\"prev\":\"");
    T_CHECK(at != NULL && len < sizeof(head));
    if (!at || len >= sizeof(head)) {
        return NULL;
    }
    snprintf(head, sizeof(head), "%.*s\"prev\":\"%s\"", (int)(at - line), line, prev);
    return s_make_line(head);
}

/* ------------------------------------------------------------------ format */

static const char *const s_fields[] = {
    "time",      "seq",    "operation",  "result", "principal", "accessKeyId", "sourceIPAddress",
    "requestId", "keyArn", "keyVersion", "bucket", "object",    "encryptionContext",
    "detail",    "prev",   "hash",
};

/* Every line is one JSON object with audit.h's fields in order, seq its
 * position, prev the hash before it and hash the rule's. */
static void s_check_lines(const char *path, size_t n_expected)
{
    struct s_file f;
    s_load(path, &f);
    T_CHECK(f.n == n_expected);
    char prev[65] = S_ZEROS;
    for (size_t i = 0; i < f.n; i++) {
        struct json_tokener *tok = json_tokener_new();
        json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
        struct json_object *o = json_tokener_parse_ex(tok, f.line[i], (int)f.len[i] - 1);
        T_CHECK(o != NULL && json_object_is_type(o, json_type_object) &&
                json_tokener_get_parse_end(tok) == f.len[i] - 1);
        json_tokener_free(tok);
        if (!o) {
            continue;
        }
        size_t k = 0;
        json_object_object_foreach(o, key, val)
        {
            (void)val;
            if (k >= sizeof(s_fields) / sizeof(s_fields[0])) {
                T_CHECK(!"more fields than audit.h names");
                break;
            }
            if (strcmp(s_fields[k], "detail") == 0 && strcmp(key, "detail") != 0) {
                k++; /* detail is left out when there is none */
            }
            T_STREQ(key, s_fields[k]);
            k++;
        }
        T_CHECK(k == sizeof(s_fields) / sizeof(s_fields[0]));
        struct json_object *v = NULL;
        T_CHECK(json_object_object_get_ex(o, "seq", &v) &&
                json_object_get_int64(v) == (int64_t)i + 1);
        T_CHECK(json_object_object_get_ex(o, "prev", &v));
        T_STREQ(json_object_get_string(v), prev);
        const char *at = strstr(f.line[i], ",\"hash\":\"");
        T_CHECK(at != NULL);
        if (at) {
            s_rule_hash(f.line[i], (size_t)(at - f.line[i]), prev);
        }
        T_CHECK(json_object_object_get_ex(o, "hash", &v));
        T_STREQ(json_object_get_string(v), prev);
        json_object_put(o);
    }
    free(f.text);
}

static void test_format(void)
{
    const char *path = s_path("format.jsonl");
    struct s3s_audit *a = s_open(path);
    T_CHECK(a != NULL);

    struct s3s_kms_context_pair pairs[] = {
        {(char *)"aws:s3:arn", (char *)"arn:aws:s3:::docs/a/b.txt"},
        {(char *)"dept", (char *)"fin"},
    };
    struct s3s_kms_context ctx = {pairs, 2};
    struct s3s_audit_record full = s_rec("req-1");
    full.key_version = 2;
    full.object = "a/b.txt";
    full.context = &ctx;
    full.detail = "rotated";
    T_OK(s3s_audit_append(a, &full));

    /* Every optional field absent. */
    struct s3s_audit_record empty = {.time_ms = S_T0, .operation = "GenerateDataKey"};
    T_OK(s3s_audit_append(a, &empty));

    /* Strings that need escaping, and UTF-8 kept as it is. */
    struct s3s_kms_context_pair odd_pairs[] = {
        {(char *)"k\"ey", (char *)"v\\al\n"},
        {(char *)"\xe6\x97\xa5", (char *)"\xf0\x9f\x98\x80"},
    };
    struct s3s_kms_context odd_ctx = {odd_pairs, 2};
    const char *odd = "quote\" back\\ nl\n tab\t ctl\x01 slash/ \xe6\x97\xa5\xe6\x9c\xac "
                      "\xc3\xbc \xf0\x9f\x98\x80";
    struct s3s_audit_record esc = s_rec("req-3");
    esc.object = odd;
    esc.principal = "s3seal-cli:r\xc3\xa9mi";
    esc.context = &odd_ctx;
    T_OK(s3s_audit_append(a, &esc));

    /* An empty context is {}, not null. */
    struct s3s_kms_context none = {NULL, 0};
    struct s3s_audit_record empty_ctx = s_rec("req-4");
    empty_ctx.context = &none;
    T_OK(s3s_audit_append(a, &empty_ctx));

    /* Time 0 is now. */
    struct s3s_audit_record now = s_rec("req-5");
    now.time_ms = 0;
    T_OK(s3s_audit_append(a, &now));
    s3s_audit_close(a);

    s_expect_intact(path, 5);
    s_check_lines(path, 5);

    struct s_file f;
    s_load(path, &f);
    T_CHECK(f.n == 5);
    if (f.n == 5) {
        char *l1 = s_make_line(
            "{\"time\":\"2026-12-01T21:50:00.123Z\",\"seq\":1,\"operation\":\"Decrypt\","
            "\"result\":\"Success\",\"principal\":\"arn:aws:iam::111122223333:user/alice\","
            "\"accessKeyId\":\"AKIAEXAMPLE\",\"sourceIPAddress\":\"192.0.2.1\","
            "\"requestId\":\"req-1\",\"keyArn\":\"arn:aws:kms:us-east-1:111122223333:key/k1\","
            "\"keyVersion\":2,\"bucket\":\"docs\",\"object\":\"a/b.txt\","
            "\"encryptionContext\":{\"aws:s3:arn\":\"arn:aws:s3:::docs/a/b.txt\","
            "\"dept\":\"fin\"},\"detail\":\"rotated\",\"prev\":\"" S_ZEROS "\"");
        T_CHECK(l1 && f.len[0] == strlen(l1) && memcmp(f.line[0], l1, f.len[0]) == 0);
        if (l1 && (f.len[0] != strlen(l1) || memcmp(f.line[0], l1, f.len[0]) != 0)) {
            fprintf(stderr, "  expected %s  got      %.*s", l1, (int)f.len[0], f.line[0]);
        }
        free(l1);
        const char *l2 = "{\"time\":\"2026-12-01T21:50:00.123Z\",\"seq\":2,"
                         "\"operation\":\"GenerateDataKey\",\"result\":null,\"principal\":null,"
                         "\"accessKeyId\":null,\"sourceIPAddress\":null,\"requestId\":null,"
                         "\"keyArn\":null,\"keyVersion\":null,\"bucket\":null,\"object\":null,"
                         "\"encryptionContext\":null,\"prev\":\"";
        T_CHECK(strncmp(f.line[1], l2, strlen(l2)) == 0);
        const char *l3 = "\"object\":\"quote\\\" back\\\\ nl\\n tab\\t ctl\\u0001 slash/ "
                         "\xe6\x97\xa5\xe6\x9c\xac \xc3\xbc \xf0\x9f\x98\x80\","
                         "\"encryptionContext\":{\"k\\\"ey\":\"v\\\\al\\n\","
                         "\"\xe6\x97\xa5\":\"\xf0\x9f\x98\x80\"},\"prev\":\"";
        T_CHECK(memmem(f.line[2], f.len[2], l3, strlen(l3)) != NULL);
        /* The escaped values read back as what was written. */
        struct json_object *o = json_tokener_parse(f.line[2]), *v = NULL, *c = NULL;
        T_CHECK(o && json_object_object_get_ex(o, "object", &v));
        T_STREQ(json_object_get_string(v), odd);
        T_CHECK(o && json_object_object_get_ex(o, "encryptionContext", &c) &&
                json_object_object_get_ex(c, "k\"ey", &v));
        T_STREQ(json_object_get_string(v), "v\\al\n");
        json_object_put(o);
        T_CHECK(memmem(f.line[3], f.len[3], "\"encryptionContext\":{},", 23) != NULL);
        /* "time":"20YY-MM-DDTHH:MM:SS.mmmZ" */
        T_CHECK(strncmp(f.line[4], "{\"time\":\"20", 11) == 0 && f.line[4][32] == 'Z' &&
                f.line[4][28] == '.' && f.line[4][19] == 'T');
    }
    free(f.text);
}

/* ---------------------------------------------------------------- refusals */

static void test_refused(void)
{
    const char *path = s_path("refused.jsonl");
    char why[256] = "";
    struct s3s_audit *a = NULL;
    T_ERR(s3s_audit_open(NULL, false, &a, why, sizeof(why)), S3S_ERR_INVALID_ARG);
    T_ERR(s3s_audit_open(s_dir, false, &a, why, sizeof(why)), S3S_ERR_IO);
    T_ERR(s3s_audit_open("/dev/full", false, &a, why, sizeof(why)), S3S_ERR_IO);
    T_CHECK(strstr(why, "not a regular file") != NULL);
    T_ERR(s3s_audit_open(s_path("no/such/dir.jsonl"), false, &a, why, sizeof(why)), S3S_ERR_IO);
    T_CHECK(strstr(why, "No such file") != NULL && a == NULL);

    a = s_open(path);
    struct s3s_audit_record ok = s_rec("req-0");
    T_OK(s3s_audit_append(a, &ok));
    T_ERR(s3s_audit_append(NULL, &ok), S3S_ERR_INVALID_ARG);
    T_ERR(s3s_audit_append(a, NULL), S3S_ERR_INVALID_ARG);

    /* Not UTF-8: overlong '/', a surrogate, a lone continuation byte, a
     * character cut short, past U+10FFFF, a byte UTF-8 never uses. */
    static const char *const bad[] = {"a\xc0\xaf", "\xed\xa0\x80", "\x80", "x\xe6\x97",
                                      "\xf4\x90\x80\x80", "\xff"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct s3s_audit_record r = s_rec("req-1");
        r.object = bad[i];
        T_ERR(s3s_audit_append(a, &r), S3S_ERR_INVALID_ARG);
        struct s3s_kms_context_pair p = {(char *)"k", (char *)bad[i]};
        struct s3s_kms_context c = {&p, 1};
        r = s_rec("req-1");
        r.context = &c;
        T_ERR(s3s_audit_append(a, &r), S3S_ERR_INVALID_ARG);
        p = (struct s3s_kms_context_pair){(char *)bad[i], (char *)"v"};
        T_ERR(s3s_audit_append(a, &r), S3S_ERR_INVALID_ARG);
    }
    struct s3s_kms_context_pair nullv = {(char *)"k", NULL};
    struct s3s_kms_context c = {&nullv, 1};
    struct s3s_audit_record r = s_rec("req-1");
    r.context = &c;
    T_ERR(s3s_audit_append(a, &r), S3S_ERR_INVALID_ARG);

    r = s_rec("req-1");
    r.time_ms = -1;
    T_ERR(s3s_audit_append(a, &r), S3S_ERR_INVALID_ARG);
    r.time_ms = INT64_C(253402300800000); /* year 10000 */
    T_ERR(s3s_audit_append(a, &r), S3S_ERR_INVALID_ARG);

    /* Too big as given, and too big once escaped (each control byte takes
     * six). */
    char *big = malloc(70000);
    T_CHECK(big != NULL);
    if (big) {
        memset(big, 'x', 69999);
        big[69999] = '\0';
        r = s_rec("req-1");
        r.detail = big;
        T_ERR(s3s_audit_append(a, &r), S3S_ERR_TOO_BIG);
        memset(big, '\x01', 11000);
        big[11000] = '\0';
        T_ERR(s3s_audit_append(a, &r), S3S_ERR_TOO_BIG);
        memset(big, 'x', 60000);
        big[60000] = '\0';
        T_OK(s3s_audit_append(a, &r));
        free(big);
    }
    s3s_audit_close(a);
    s3s_audit_close(NULL);
    /* The refused records left no trace. */
    s_expect_intact(path, 2);

    uint64_t n = 0, line = 0;
    T_ERR(s3s_audit_verify(s_path("missing.jsonl"), &n, &line, why, sizeof(why)), S3S_ERR_IO);
    T_ERR(s3s_audit_verify(s_dir, &n, &line, why, sizeof(why)), S3S_ERR_IO);
    T_ERR(s3s_audit_verify(path, NULL, &line, why, sizeof(why)), S3S_ERR_INVALID_ARG);
    s_write(s_path("empty.jsonl"), "", 0);
    s_expect_intact(s_path("empty.jsonl"), 0);
}

/* --------------------------------------------------------------- tampering */

static void test_tamper(void)
{
    const char *base = s_path("base.jsonl");
    const char *t = s_path("tampered.jsonl");
    s_append_n(base, 5);
    s_expect_intact(base, 5);
    struct s_file f;
    s_load(base, &f);
    T_CHECK(f.n == 5);
    if (f.n != 5) {
        free(f.text);
        return;
    }

    /* One byte of a value. */
    char *copy = malloc(f.len[2] + 1);
    T_CHECK(copy != NULL);
    if (copy) {
        memcpy(copy, f.line[2], f.len[2]);
        copy[f.len[2]] = '\0';
        char *at = strstr(copy, "req-2");
        T_CHECK(at != NULL);
        if (at) {
            at[4] = '7';
        }
        s_write_variant(t, &f, (const int[]){0, 1, -1, 3, 4}, 5, copy);
        s_expect_broken(t, 3, "hash does not match");
        free(copy);
    }
    /* A middle line, the first line deleted; two lines swapped. */
    s_write_variant(t, &f, (const int[]){0, 1, 3, 4}, 4, NULL);
    s_expect_broken(t, 3, "seq is 4, expected 3");
    s_write_variant(t, &f, (const int[]){1, 2, 3, 4}, 4, NULL);
    s_expect_broken(t, 1, "seq is 2, expected 1");
    s_write_variant(t, &f, (const int[]){0, 2, 1, 3, 4}, 5, NULL);
    s_expect_broken(t, 2, "seq is 3, expected 2");

    /* A forged third line with a correct hash of its own but chained onto
     * the first line; a first line chained onto something. */
    char hash1[65];
    s_rule_hash(f.line[0], (size_t)(strstr(f.line[0], ",\"hash\":\"") - f.line[0]), hash1);
    char *forged = s_reprev(f.line[2], f.len[2], hash1);
    s_write_variant(t, &f, (const int[]){0, 1, -1, 3, 4}, 5, forged);
    s_expect_broken(t, 3, "prev is not the hash of the line before");
    free(forged);
    forged = s_reprev(f.line[0], f.len[0], hash1);
    s_write_variant(t, &f, (const int[]){-1, 1, 2, 3, 4}, 5, forged);
    s_expect_broken(t, 1, "prev of the first record is not 64 zeros");
    free(forged);

    /* The last line cut short: without its newline, and mid-record. */
    size_t all = (size_t)(f.line[4] - f.text) + f.len[4];
    s_write(t, f.text, all - 1);
    s_expect_broken(t, 5, "no newline");
    s_write(t, f.text, all - 30);
    s_expect_broken(t, 5, "no newline");
    /* ...and down to a line boundary: removing records at the end is what
     * the chain cannot show (audit.h). */
    s_write_variant(t, &f, (const int[]){0, 1, 2, 3}, 4, NULL);
    s_expect_intact(t, 4);

    /* Lines that are no record. */
    s_write_variant(t, &f, (const int[]){0, 1, -1, 2}, 4, "hello\n");
    s_expect_broken(t, 3, "not a JSON object");
    s_write_variant(t, &f, (const int[]){0, -1, 1}, 3, "\n");
    s_expect_broken(t, 2, "not a JSON object");
    s_write_variant(t, &f, (const int[]){0, -1}, 2, "{\"seq\":2}\n");
    s_expect_broken(t, 2, "does not end with its \"hash\"");
    s_write_variant(t, &f, (const int[]){0, -1}, 2, "[1,2]\n");
    s_expect_broken(t, 2, "not a JSON object");
    /* A line of trailing garbage after an intact record. */
    char *tail = malloc(f.len[1] + 8);
    T_CHECK(tail != NULL);
    if (tail) {
        snprintf(tail, f.len[1] + 8, "%.*s {}\n", (int)f.len[1] - 1, f.line[1]);
        s_write_variant(t, &f, (const int[]){0, -1}, 2, tail);
        s_expect_broken(t, 2, "not a JSON object");
        free(tail);
    }
    char *huge = malloc(S3S_AUDIT_MAX_RECORD + 10);
    T_CHECK(huge != NULL);
    if (huge) {
        memset(huge, 'x', S3S_AUDIT_MAX_RECORD + 8);
        huge[S3S_AUDIT_MAX_RECORD + 8] = '\n';
        huge[S3S_AUDIT_MAX_RECORD + 9] = '\0';
        s_write_variant(t, &f, (const int[]){0, -1, 1}, 3, huge);
        s_expect_broken(t, 2, "longer than");
        free(huge);
    }
    free(f.text);
}

/* An append never chains onto a file that does not end with an intact
 * record, and leaves such a file as it is. */
static void test_broken_end(void)
{
    const char *path = s_path("end.jsonl");
    s_append_n(path, 3);
    struct s_file f;
    s_load(path, &f);
    T_CHECK(f.n == 3);
    size_t all = f.n == 3 ? (size_t)(f.line[2] - f.text) + f.len[2] : 0;
    char *altered = f.n == 3 ? strndup(f.line[2], f.len[2]) : NULL;
    T_CHECK(altered != NULL);
    if (altered) {
        altered[20] ^= 1; /* a digit of "time": no longer matches its hash */
    }
    const char *variants[] = {"cut", "altered", "garbage", "long"};
    char *long_line = malloc(S3S_AUDIT_MAX_RECORD + 2);
    T_CHECK(long_line != NULL);
    for (size_t i = 0; long_line && altered && i < 4; i++) {
        if (i == 0) {
            s_write(path, f.text, all - 1);
        } else if (i == 1) {
            s_write_variant(path, &f, (const int[]){0, 1, -1}, 3, altered);
        } else if (i == 2) {
            s_write_variant(path, &f, (const int[]){0, 1, 2, -1}, 4, "not json\n");
        } else {
            memset(long_line, 'y', S3S_AUDIT_MAX_RECORD);
            long_line[S3S_AUDIT_MAX_RECORD] = '\n';
            long_line[S3S_AUDIT_MAX_RECORD + 1] = '\0';
            s_write_variant(path, &f, (const int[]){0, 1, 2, -1}, 4, long_line);
        }
        off_t before = s_size(path);
        struct s3s_audit *a = s_open(path);
        struct s3s_audit_record r = s_rec("req-9");
        s3s_result res = s3s_audit_append(a, &r);
        T_ERR(res, S3S_ERR_AUDIT_BROKEN);
        if (res.code != S3S_ERR_AUDIT_BROKEN) {
            fprintf(stderr, "  variant %s: %s\n", variants[i], s3s_strerror(res.code));
        }
        s3s_audit_close(a);
        T_CHECK(s_size(path) == before);
    }
    free(long_line);
    free(altered);
    free(f.text);
}

/* A record of exactly S3S_AUDIT_MAX_RECORD bytes is written, verified and
 * read back (the longest line the tail reader must find the start of). */
static void test_longest_record(void)
{
    const char *probe = s_path("probe.jsonl");
    const char *path = s_path("longest.jsonl");
    struct s3s_audit_record r = s_rec("req-1");
    r.detail = "x";
    struct s3s_audit *a = s_open(probe);
    T_OK(s3s_audit_append(a, &r));
    s3s_audit_close(a);
    size_t one = (size_t)s_size(probe); /* a line with a one-byte detail */
    size_t detail_len = 1 + S3S_AUDIT_MAX_RECORD - one;
    char *detail = malloc(detail_len + 2);
    T_CHECK(detail != NULL);
    if (!detail) {
        return;
    }
    memset(detail, 'd', detail_len + 1);
    detail[detail_len + 1] = '\0';

    s_append_n(path, 1);
    off_t first = s_size(path);
    a = s_open(path);
    r.detail = detail; /* seq 2 and a prev of the same length: the probe's size */
    T_ERR(s3s_audit_append(a, &r), S3S_ERR_TOO_BIG);
    detail[detail_len] = '\0';
    T_OK(s3s_audit_append(a, &r));
    s3s_audit_close(a);
    T_CHECK(s_size(path) - first == S3S_AUDIT_MAX_RECORD);
    s_expect_intact(path, 2);
    /* A new handle must read the longest line back to chain onto it. */
    s_append_n(path, 1);
    s_expect_intact(path, 3);
    free(detail);
}

/* ------------------------------------------------------------- concurrency */

/* Two handles on one file, as two processes would hold: appends interleave
 * and each handle notices the other's records. A reopened file goes on. */
static void test_two_handles(void)
{
    const char *path = s_path("two.jsonl");
    struct s3s_audit *a = s_open(path), *b = s_open(path);
    for (int i = 0; i < 50; i++) {
        struct s3s_audit_record r = s_rec("two");
        T_OK(s3s_audit_append(i % 3 ? a : b, &r));
        T_OK(s3s_audit_append(i % 2 ? b : a, &r));
    }
    s3s_audit_close(a);
    s3s_audit_close(b);
    s_expect_intact(path, 100);
    s_append_n(path, 1);
    s_expect_intact(path, 101);
}

#define S_THREADS 4
#define S_PER_THREAD 200

struct s_worker {
    struct s3s_audit *a;
    const char *path; /* with a NULL a: open a handle of its own */
    int failures;
};

static void *s_worker_main(void *arg)
{
    struct s_worker *w = arg;
    struct s3s_audit *a = w->a;
    char why[256];
    if (!a && s3s_failed(s3s_audit_open(w->path, false, &a, why, sizeof(why)))) {
        w->failures++;
        return NULL;
    }
    for (int i = 0; i < S_PER_THREAD; i++) {
        struct s3s_audit_record r = s_rec("threaded");
        if (s3s_failed(s3s_audit_append(a, &r))) {
            w->failures++;
        }
    }
    if (!w->a) {
        s3s_audit_close(a);
    }
    return NULL;
}

/* Threads sharing one handle, then threads with a handle each: no lost or
 * duplicated seq, no torn or interleaved line. */
static void test_threads(void)
{
    for (int own = 0; own < 2; own++) {
        const char *path = s_path(own ? "threads-own.jsonl" : "threads.jsonl");
        struct s3s_audit *shared = own ? NULL : s_open(path);
        struct s_worker w[S_THREADS];
        pthread_t th[S_THREADS];
        for (int i = 0; i < S_THREADS; i++) {
            w[i] = (struct s_worker){shared, path, 0};
            T_CHECK(pthread_create(&th[i], NULL, s_worker_main, &w[i]) == 0);
        }
        for (int i = 0; i < S_THREADS; i++) {
            T_CHECK(pthread_join(th[i], NULL) == 0);
            T_CHECK(w[i].failures == 0);
        }
        s3s_audit_close(shared);
        s_expect_intact(path, S_THREADS * S_PER_THREAD);
    }
}

/* Two processes appending at once, each with its own handle. */
static void test_processes(void)
{
    const char *path = s_path("procs.jsonl");
    s_append_n(path, 1); /* both children find a record to chain onto */
    pid_t pid[2];
    for (int p = 0; p < 2; p++) {
        pid[p] = fork();
        T_CHECK(pid[p] >= 0);
        if (pid[p] == 0) {
            struct s_worker w = {NULL, path, 0};
            s_worker_main(&w);
            _exit(w.failures ? 1 : 0);
        }
    }
    for (int p = 0; p < 2; p++) {
        int status = 0;
        T_CHECK(pid[p] > 0 && waitpid(pid[p], &status, 0) == pid[p]);
        T_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    s_expect_intact(path, 1 + 2 * S_PER_THREAD);
}

/* ---------------------------------------------------------------- failures */

/* In a child (the file size limit is per process): a write the limit cuts
 * short fails with S3S_ERR_KMS_INTERNAL and is taken back, so the next
 * append, once the limit is lifted, chains onto an intact file. Returns the
 * child's exit status: 0, or the number of the check that failed. */
static int s_cut_short_child(const char *path)
{
    signal(SIGXFSZ, SIG_IGN); /* the write then fails with EFBIG */
    struct s3s_audit *a = NULL;
    char why[256];
    if (s3s_failed(s3s_audit_open(path, true, &a, why, sizeof(why)))) {
        return 1;
    }
    struct s3s_audit_record r = s_rec("req-1");
    if (s3s_failed(s3s_audit_append(a, &r))) {
        return 2;
    }
    off_t before = s_size(path);
    struct rlimit saved, small;
    if (getrlimit(RLIMIT_FSIZE, &saved) != 0) {
        return 3;
    }
    small = saved;
    small.rlim_cur = (rlim_t)before + 100; /* room for part of a line only */
    if (setrlimit(RLIMIT_FSIZE, &small) != 0) {
        return 4;
    }
    char detail[2000];
    memset(detail, 'z', sizeof(detail) - 1);
    detail[sizeof(detail) - 1] = '\0';
    r.detail = detail;
    if (s3s_audit_append(a, &r).code != S3S_ERR_KMS_INTERNAL) {
        return 5;
    }
    if (s_size(path) != before) {
        return 6;
    }
    if (setrlimit(RLIMIT_FSIZE, &saved) != 0) {
        return 7;
    }
    if (s3s_failed(s3s_audit_append(a, &r))) {
        return 8;
    }
    s3s_audit_close(a);
    return 0;
}

static void test_cut_short(void)
{
    const char *path = s_path("cut.jsonl");
    pid_t pid = fork();
    T_CHECK(pid >= 0);
    if (pid == 0) {
        _exit(s_cut_short_child(path));
    }
    int status = 0;
    T_CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
    T_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "  the child failed check %d\n", WEXITSTATUS(status));
    }
    s_expect_intact(path, 2);
}

/* Failing each of s3s's allocations in turn (json-c's own are not
 * counted): open, append and verify fail cleanly, leak nothing, and leave
 * the file intact. Every append uses a new handle, so the last line is read
 * back each time. */
static void test_alloc_failures(void)
{
    const char *path = s_path("alloc.jsonl");
    s_append_n(path, 1);
    uint64_t written = 1;
    for (long n = 0; n < 16; n++) {
        char why[256] = "";
        struct s3s_audit *a = NULL;
        struct s3s_audit_record rec = s_rec("alloc");
        uint64_t records = 0, bad = 0;
        s3s_mem_fail_after(n);
        s3s_result r = s3s_audit_open(path, false, &a, why, sizeof(why));
        if (s3s_is_ok(r)) {
            r = s3s_audit_append(a, &rec);
            written += s3s_is_ok(r);
        }
        if (s3s_is_ok(r)) {
            r = s3s_audit_verify(path, &records, &bad, why, sizeof(why));
        }
        s3s_mem_fail_after(-1);
        s3s_audit_close(a);
        T_CHECK(s3s_is_ok(r) || r.code == S3S_ERR_NOMEM);
        T_CHECK(s3s_mem_live() == 0);
    }
    T_CHECK(written > 1); /* the later rounds had enough allocations to succeed */
    s_expect_intact(path, written);
}

int main(void)
{
    snprintf(s_dir, sizeof(s_dir), "/tmp/s3seal-audit-XXXXXX");
    T_CHECK(mkdtemp(s_dir) != NULL);
    test_format();
    test_refused();
    test_tamper();
    test_broken_end();
    test_longest_record();
    test_two_handles();
    test_threads();
    test_processes();
    test_cut_short();
    test_alloc_failures();
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", s_dir);
    T_CHECK(system(cmd) == 0);
    return t_finish("keystore.audit");
}
