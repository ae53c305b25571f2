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
 *
 * Then the trail in the keystore's database, on SQLite and (keystore.pg.audit)
 * on PostgreSQL: the row format and hash rule, two instances with two handles
 * and two threads each, every edit behind the trail's back (a field, a
 * deleted, reordered or renumbered record, the newest removed, the head
 * moved) reported with its instance and seq, a refused write that leaves no
 * half record, and `keystore copy` taking the chains along.
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
#include "keystore/keystore.h"
#include "keystore/store.h"
#include "ks_test.h"
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

/* ------------------------------------------------------- in the keystore */

/* The trail in the keystore's database (audit_store.c), on SQLite and, in
 * the keystore.pg.audit run, on PostgreSQL. */

#define S_KS_HANDLES 2
#define S_KS_PER_THREAD 40

static struct s3s_audit *s_ks_open(const char *loc, const char *instance)
{
    char why[256] = "";
    struct s3s_audit *a = NULL;
    T_OK(s3s_audit_open_keystore(loc, instance, &a, why, sizeof(why)));
    if (!a) {
        fprintf(stderr, "  %s\n", why);
    }
    return a;
}

static void s_ks_append_n(const char *loc, const char *instance, int n)
{
    struct s3s_audit *a = s_ks_open(loc, instance);
    for (int i = 0; a && i < n; i++) {
        char id[32];
        snprintf(id, sizeof(id), "req-%d", i + 1);
        struct s3s_audit_record r = s_rec(id);
        T_OK(s3s_audit_append(a, &r));
    }
    s3s_audit_close(a);
}

/* What verification reported, chain by chain. */
struct s_chains {
    size_t n;
    struct {
        char instance[64];
        uint64_t records, bad_seq;
        bool broken;
        char newest[65];
        char why[256];
    } c[8];
};

static void s_chain_seen(void *ctx, const struct s3s_audit_chain *chain)
{
    struct s_chains *cs = ctx;
    if (cs->n == 8) {
        return;
    }
    snprintf(cs->c[cs->n].instance, sizeof(cs->c[0].instance), "%s", chain->instance);
    cs->c[cs->n].records = chain->records;
    cs->c[cs->n].bad_seq = chain->bad_seq;
    cs->c[cs->n].broken = chain->broken;
    memcpy(cs->c[cs->n].newest, chain->newest, sizeof(chain->newest));
    snprintf(cs->c[cs->n].why, sizeof(cs->c[0].why), "%s", chain->why ? chain->why : "");
    cs->n++;
}

static s3s_result s_ks_verify(const char *loc, const char *instance, struct s_chains *cs)
{
    memset(cs, 0, sizeof(*cs));
    char why[256] = "";
    size_t chains = 0;
    s3s_result r = s3s_audit_verify_keystore(loc, instance, s_chain_seen, cs, &chains, why,
                                             sizeof(why));
    T_CHECK(chains == cs->n);
    if (r.code != S3S_OK && r.code != S3S_ERR_AUDIT_BROKEN) {
        fprintf(stderr, "  verify %s: %s\n", loc, why);
    }
    return r;
}

static void s_ks_expect_intact(const char *loc, const char *instance, uint64_t n)
{
    struct s_chains cs;
    T_OK(s_ks_verify(loc, instance, &cs));
    T_CHECK(cs.n == 1 && !cs.c[0].broken && cs.c[0].records == n);
    T_STREQ(cs.c[0].instance, instance);
    if (cs.n != 1 || cs.c[0].records != n) {
        fprintf(stderr, "  %s: %zu chains, %llu records, expected %llu (%s)\n", instance, cs.n,
                (unsigned long long)cs.c[0].records, (unsigned long long)n, cs.c[0].why);
    }
}

static void s_ks_expect_broken(const char *loc, const char *instance, uint64_t seq,
                               const char *reason)
{
    struct s_chains cs;
    T_ERR(s_ks_verify(loc, NULL, &cs), S3S_ERR_AUDIT_BROKEN);
    bool found = false;
    for (size_t i = 0; i < cs.n; i++) {
        if (strcmp(cs.c[i].instance, instance) != 0) {
            T_CHECK(!cs.c[i].broken); /* the other chains stand */
            continue;
        }
        found = true;
        T_CHECK(cs.c[i].broken && cs.c[i].bad_seq == seq);
        T_CHECK(strstr(cs.c[i].why, reason) != NULL);
        if (cs.c[i].bad_seq != seq || !strstr(cs.c[i].why, reason)) {
            fprintf(stderr, "  %s: broken at %llu (%s), expected %llu (%s)\n", instance,
                    (unsigned long long)cs.c[i].bad_seq, cs.c[i].why, (unsigned long long)seq,
                    reason);
        }
    }
    T_CHECK(found);
}

/* Runs SQL on the keystore behind the trail's back. */
static void s_ks_sql(const char *loc, const char *sql)
{
    char why[256] = "";
    struct s3s_store *st = NULL;
    T_OK(s3s_store_open(loc, false, &st, why, sizeof(why)));
    if (st) {
        s3s_result r = s3s_store_exec(st, sql);
        T_OK(r);
        if (s3s_failed(r)) {
            fprintf(stderr, "  %s: %s\n", sql, st->ops->errmsg(st));
        }
    }
    s3s_store_close(st);
}

static int64_t s_ks_count(const char *loc, const char *sql)
{
    char why[256] = "";
    struct s3s_store *st = NULL;
    struct s3s_store_stmt *q = NULL;
    int64_t n = -1;
    T_OK(s3s_store_open(loc, false, &st, why, sizeof(why)));
    if (st && s3s_is_ok(s3s_store_prepare(st, sql, &q)) && s3s_store_step(q) == S3S_STORE_ROW) {
        n = s3s_store_column_int64(q, 0);
    }
    s3s_store_finalize(q);
    s3s_store_close(st);
    return n;
}

/* A row is the line a file would hold, with "instance" after "time", and
 * its hash follows the same rule; the head names it. */
static void test_ks_format(void)
{
    char loc[512], why[256] = "";
    ks_test_location("audit_format", loc, sizeof(loc));
    s_ks_append_n(loc, "host-a:8080", 2);
    struct s3s_store *st = NULL;
    struct s3s_store_stmt *q = NULL;
    T_OK(s3s_store_open(loc, false, &st, why, sizeof(why)));
    T_OK(s3s_store_prepare(st, "SELECT record FROM audit_records ORDER BY seq", &q));
    T_CHECK(s3s_store_step(q) == S3S_STORE_ROW);
    char *first = strdup(s3s_store_column_str(q, 0));
    T_CHECK(s3s_store_step(q) == S3S_STORE_ROW);
    char *second = strdup(s3s_store_column_str(q, 0));
    s3s_store_finalize(q);
    s3s_store_close(st);
    /* Up to prev, the line is the file's with "instance" after "time". */
    const char *want = "{\"time\":\"2026-12-01T21:50:00.123Z\",\"instance\":\"host-a:8080\","
                       "\"seq\":1,\"operation\":\"Decrypt\",\"result\":\"Success\","
                       "\"principal\":\"arn:aws:iam::111122223333:user/alice\","
                       "\"accessKeyId\":\"AKIAEXAMPLE\",\"sourceIPAddress\":\"192.0.2.1\","
                       "\"requestId\":\"req-1\","
                       "\"keyArn\":\"arn:aws:kms:us-east-1:111122223333:key/k1\",\"keyVersion\":1,"
                       "\"bucket\":\"docs\",\"object\":\"a.txt\",\"encryptionContext\":null,"
                       "\"prev\":\"" S_ZEROS "\",\"hash\":\"";
    T_CHECK(strncmp(first, want, strlen(want)) == 0);
    if (strncmp(first, want, strlen(want)) != 0) {
        fprintf(stderr, "  got %s\n", first);
    }
    /* The hash rule, recomputed: SHA-256 of the line up to ,"hash": and "}". */
    const char *tail = strstr(first, ",\"hash\":\"");
    T_CHECK(tail != NULL);
    char hex[65] = "";
    if (tail) {
        s_rule_hash(first, (size_t)(tail - first), hex);
        T_CHECK(strncmp(tail + 9, hex, 64) == 0 && strcmp(tail + 9 + 64, "\"}") == 0);
    }
    char prev[80];
    snprintf(prev, sizeof(prev), "\"seq\":2,");
    T_CHECK(strstr(second, prev) != NULL);
    snprintf(prev, sizeof(prev), "\"prev\":\"%s\"", hex);
    T_CHECK(strstr(second, prev) != NULL);
    free(first);
    free(second);
    struct s_chains cs;
    T_OK(s_ks_verify(loc, NULL, &cs));
    T_CHECK(cs.n == 1 && cs.c[0].records == 2 && !cs.c[0].broken);
    T_STREQ(cs.c[0].instance, "host-a:8080");
    T_CHECK(s_ks_count(loc, "SELECT seq FROM audit_heads") == 2);
    /* A name that is not one, and an instance with no records. */
    struct s3s_audit *a = NULL;
    T_ERR(s3s_audit_open_keystore(loc, "", &a, why, sizeof(why)), S3S_ERR_INVALID_ARG);
    T_ERR(s3s_audit_open_keystore(loc, "a\nb", &a, why, sizeof(why)), S3S_ERR_INVALID_ARG);
    T_ERR(s_ks_verify(loc, "nobody:1", &cs), S3S_ERR_AUDIT_BROKEN);
    T_CHECK(cs.n == 1 && cs.c[0].broken && strstr(cs.c[0].why, "no records") != NULL);
}

struct s_ks_worker {
    struct s3s_audit *a;
    int failures;
};

static void *s_ks_worker_main(void *arg)
{
    struct s_ks_worker *w = arg;
    for (int i = 0; i < S_KS_PER_THREAD; i++) {
        struct s3s_audit_record r = s_rec("threaded");
        if (s3s_failed(s3s_audit_append(w->a, &r))) {
            w->failures++;
        }
    }
    return NULL;
}

/* Two instances, each with two handles (a server and a CLI run, say), each
 * handle shared by two threads: every chain is whole, without a fork, lost
 * or duplicated seq. */
static void test_ks_concurrent(void)
{
    char loc[512];
    ks_test_location("audit_threads", loc, sizeof(loc));
    const char *names[2] = {"host-a:8080", "host-b:8080"};
    struct s3s_audit *h[2 * S_KS_HANDLES];
    struct s_ks_worker w[4 * S_KS_HANDLES];
    pthread_t th[4 * S_KS_HANDLES];
    for (int i = 0; i < 2 * S_KS_HANDLES; i++) {
        h[i] = s_ks_open(loc, names[i % 2]);
    }
    for (int i = 0; i < 4 * S_KS_HANDLES; i++) {
        w[i] = (struct s_ks_worker){h[i / 2], 0};
        T_CHECK(pthread_create(&th[i], NULL, s_ks_worker_main, &w[i]) == 0);
    }
    for (int i = 0; i < 4 * S_KS_HANDLES; i++) {
        T_CHECK(pthread_join(th[i], NULL) == 0);
        T_CHECK(w[i].failures == 0);
    }
    for (int i = 0; i < 2 * S_KS_HANDLES; i++) {
        s3s_audit_close(h[i]);
    }
    uint64_t each = 2 * S_KS_HANDLES * S_KS_PER_THREAD;
    struct s_chains cs;
    T_OK(s_ks_verify(loc, NULL, &cs));
    T_CHECK(cs.n == 2);
    for (size_t i = 0; i < cs.n; i++) {
        T_STREQ(cs.c[i].instance, names[i]);
        T_CHECK(cs.c[i].records == each && !cs.c[i].broken && strlen(cs.c[i].newest) == 64);
    }
    s_ks_expect_intact(loc, names[1], each);
    T_CHECK(s_ks_count(loc, "SELECT COUNT(*) FROM audit_records") == (int64_t)(2 * each));
}

/* Every edit behind the trail's back is a break that names the instance
 * and seq; the other instance's chain stands. */
static void test_ks_tamper(void)
{
    static const struct {
        const char *name;
        const char *sql[2];
        uint64_t seq;
        const char *reason;
    } cases[] = {
        {"field",
         {"UPDATE audit_records SET record = replace(record, 'alice', 'mallory') "
          "WHERE instance = 'a:1' AND seq = 3"},
         3, "altered"},
        {"delete", {"DELETE FROM audit_records WHERE instance = 'a:1' AND seq = 3"}, 3,
         "seq 3 is missing"},
        /* Seq 2 and 3 swap places: the row at seq 2 is record 3. */
        {"reorder",
         {"UPDATE audit_records SET seq = -seq WHERE instance = 'a:1' AND seq IN (2, 3)",
          "UPDATE audit_records SET seq = CASE seq WHEN -2 THEN 3 ELSE 2 END "
          "WHERE instance = 'a:1' AND seq IN (-2, -3)"},
         2, "seq is 3, expected 2"},
        {"seq", {"UPDATE audit_records SET seq = 7 WHERE instance = 'a:1' AND seq = 4"}, 4,
         "seq 4 is missing"},
        {"newest", {"DELETE FROM audit_records WHERE instance = 'a:1' AND seq = 5"}, 5,
         "records after seq 4 are missing"},
        {"head", {"UPDATE audit_heads SET seq = 4 WHERE instance = 'a:1'"}, 5,
         "does not name its newest"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char loc[512], name[64];
        snprintf(name, sizeof(name), "audit_tamper_%s", cases[i].name);
        ks_test_location(name, loc, sizeof(loc));
        s_ks_append_n(loc, "a:1", 5);
        s_ks_append_n(loc, "b:1", 2);
        s_ks_expect_intact(loc, "a:1", 5);
        for (int k = 0; k < 2 && cases[i].sql[k]; k++) {
            s_ks_sql(loc, cases[i].sql[k]);
        }
        s_ks_expect_broken(loc, "a:1", cases[i].seq, cases[i].reason);
        s_ks_expect_intact(loc, "b:1", 2);
    }
    /* An altered newest record: nothing is chained onto it. */
    char loc[512];
    ks_test_location("audit_tamper_stop", loc, sizeof(loc));
    s_ks_append_n(loc, "a:1", 2);
    s_ks_sql(loc, "UPDATE audit_records SET record = replace(record, 'docs', 'dogs') "
                  "WHERE seq = 2");
    struct s3s_audit *a = s_ks_open(loc, "a:1");
    struct s3s_audit_record r = s_rec("after");
    T_ERR(s3s_audit_append(a, &r), S3S_ERR_AUDIT_BROKEN);
    s3s_audit_close(a);
    T_CHECK(s_ks_count(loc, "SELECT COUNT(*) FROM audit_records") == 2);
    s_ks_expect_broken(loc, "a:1", 2, "altered");
}

/* The database refusing the head's move after the record went in: the
 * append fails (the key is not used) and leaves no half record; once the
 * database takes writes again the chain goes on from where it was. */
static void test_ks_failed_append(void)
{
    char loc[512];
    ks_test_location("audit_fail", loc, sizeof(loc));
    s_ks_append_n(loc, "a:1", 2);
    struct s3s_audit *a = s_ks_open(loc, "a:1");
    if (ks_test_pg()) {
        s_ks_sql(loc, "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS "
                      "$$ BEGIN RAISE EXCEPTION 'refused'; END $$");
        s_ks_sql(loc, "CREATE TRIGGER refuse BEFORE UPDATE ON audit_heads "
                      "FOR EACH ROW EXECUTE FUNCTION refuse()");
    } else {
        s_ks_sql(loc, "CREATE TRIGGER refuse BEFORE UPDATE ON audit_heads "
                      "BEGIN SELECT RAISE(ABORT, 'refused'); END");
    }
    struct s3s_audit_record r = s_rec("refused");
    T_ERR(s3s_audit_append(a, &r), S3S_ERR_KMS_INTERNAL);
    T_ERR(s3s_audit_append(a, &r), S3S_ERR_KMS_INTERNAL);
    T_CHECK(s_ks_count(loc, "SELECT COUNT(*) FROM audit_records") == 2);
    s_ks_expect_intact(loc, "a:1", 2);
    s_ks_sql(loc, ks_test_pg() ? "DROP TRIGGER refuse ON audit_heads" : "DROP TRIGGER refuse");
    T_OK(s3s_audit_append(a, &r));
    s3s_audit_close(a);
    s_ks_expect_intact(loc, "a:1", 3);
    /* Too big a record is refused before the database is touched. */
    a = s_ks_open(loc, "a:1");
    char *big = malloc(S3S_AUDIT_MAX_RECORD);
    memset(big, 'x', S3S_AUDIT_MAX_RECORD - 1);
    big[S3S_AUDIT_MAX_RECORD - 1] = '\0';
    r.detail = big;
    T_ERR(s3s_audit_append(a, &r), S3S_ERR_TOO_BIG);
    free(big);
    s3s_audit_close(a);
    s_ks_expect_intact(loc, "a:1", 3);
}

/* `keystore copy` takes the trail along, and it verifies in the copy. */
static void test_ks_copy(void)
{
    char loc[512], to[512], why[256] = "";
    ks_test_location("audit_copy_src", loc, sizeof(loc));
    ks_test_location("audit_copy_dst", to, sizeof(to));
    s_ks_append_n(loc, "a:1", 3);
    s_ks_append_n(loc, "b:1", 1);
    char key[160];
    snprintf(key, sizeof(key), "%s/master.key", s_dir);
    t_write_master_key(key, 0x51);
    struct s3s_keystore *ks = NULL;
    T_OK(s3s_keystore_open(loc, key, true, &ks, why, sizeof(why)));
    size_t rows = 0;
    T_OK(s3s_keystore_copy(ks, to, NULL, NULL, &rows, why, sizeof(why)));
    if (!rows) {
        fprintf(stderr, "  copy: %s\n", why);
    }
    s3s_keystore_close(ks);
    s_ks_expect_intact(to, "a:1", 3);
    s_ks_expect_intact(to, "b:1", 1);
}

int main(int argc, char **argv)
{
    snprintf(s_dir, sizeof(s_dir), "/tmp/s3seal-audit-XXXXXX");
    T_CHECK(mkdtemp(s_dir) != NULL);
    ks_test_init(argc, argv, "audit", s_dir);
    if (!ks_test_pg()) {
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
    }
    test_ks_format();
    test_ks_concurrent();
    test_ks_tamper();
    test_ks_failed_append();
    test_ks_copy();
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", s_dir);
    T_CHECK(system(cmd) == 0);
    return t_finish(ks_test_pg() ? "keystore.pg.audit" : "keystore.audit");
}
