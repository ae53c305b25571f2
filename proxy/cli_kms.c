/*
 * cli_kms.c - `s3seal keys`: administration of the keystore's KMS keys in
 * AWS KMS's terms (CreateKey, DescribeKey, EnableKey, DisableKey,
 * RotateKeyOnDemand, ScheduleKeyDeletion, CancelKeyDeletion, CreateAlias,
 * DeleteAlias, ListAliases, GetKeyPolicy, PutKeyPolicy).
 *
 * Each command is a row of one table: its words, the options it takes, its
 * positional arguments and the routine that runs it; one parser reads every
 * command's options and the usage text is written from the table. A KEY is
 * resolved as AWS resolves a KeyId (kms.h), in the config's account_id or
 * the one --account names. The keystore serialises changes itself, so the
 * commands run safely while servers use the same file.
 *
 * Changes are audited when the config names an audit_log: the log is opened
 * before the change, and a command whose log cannot be opened changes
 * nothing (fail closed); after the change, or its refusal, one record says
 * who (s3seal-cli:<login>), which key, what and with which result. A
 * record that cannot be written fails the command.
 *
 * Output: KeyMetadata and lists as JSON on stdout (what aws-cli shows), or
 * one line saying what changed; errors as one line on stderr, exit status 1
 * (2 for usage errors).
 */
#include <errno.h>
#include <getopt.h>
#include <json-c/json.h>
#include <openssl/evp.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "keystore/audit.h"
#include "keystore/kms.h"
#include "keystore/policy.h"
#include "proxy/cli.h"

#define S_PRINCIPAL_LEN 300

/* The options, as bits of a command's `opts`. */
enum s_opt {
    S_OPT_ACCOUNT = 1 << 0,
    S_OPT_ALIAS = 1 << 1,
    S_OPT_DESCRIPTION = 1 << 2,
    S_OPT_ROTATION_DAYS = 1 << 3,
    S_OPT_NO_ROTATION = 1 << 4,
    S_OPT_POLICY_FILE = 1 << 5,
    S_OPT_DAYS = 1 << 6,
    S_OPT_JSON = 1 << 7,
    S_OPT_KEY = 1 << 8,
};

#define S_MAX_ARGS 2

/* A command's parsed arguments. */
struct s_args {
    const char *account; /* --account, else the config's account_id */
    const char *alias;
    const char *description;
    const char *policy_file;
    const char *key;     /* --key (alias list) */
    int64_t rotation_period_s;
    int days;
    bool json;
    const char *pos[S_MAX_ARGS];
};

/* What an audited command did, for its record. Until the command says
 * otherwise it failed, so a path that forgets to say is recorded as one. */
struct s_change {
    s3s_result result;  /* the change's, or why it was refused before it */
    char *key_arn;      /* NULL: no key */
    uint32_t key_version;
    struct s3s_buf detail;
    bool incomplete;    /* out of memory while noting it */
};

/* What one command works with. */
struct s_ctx {
    const struct s3s_config *cfg;
    const struct s_args *args;
    const char *name; /* "create", "alias create", ... for messages */
    struct s3s_keystore *ks;
    struct s3s_kms_snapshot *snap; /* loaded once, when needed; freed by the dispatcher */
    struct s3s_audit *audit;       /* open for a change when the config names a log */
    struct s_change change;
};

struct s_command {
    const char *name;
    const char *synopsis;  /* the arguments, for usage lines */
    unsigned opts;         /* enum s_opt bits it accepts (--account always) */
    unsigned required;     /* enum s_opt bits it needs */
    int n_pos;
    bool alias_arg;        /* its first argument is an alias name */
    const char *operation; /* the AWS KMS operation it audits as; NULL: a read */
    int (*run)(struct s_ctx *c);
};

/* ------------------------------------------------------------------ audit */

#define S_SHOWN_LEN 260

/* A copy of what a user typed, fit for an audit record: records take only
 * UTF-8, and a refusal must be recorded whatever was typed, so bytes
 * outside printable ASCII become '?'; a longer text is cut, ending "...". */
static void s_printable(const char *text, char out[S_SHOWN_LEN])
{
    size_t n = 0;
    for (; text[n] && n < S_SHOWN_LEN - 1; n++) {
        uint8_t ch = (uint8_t)text[n];
        out[n] = ch >= 0x20 && ch < 0x7f ? (char)ch : '?';
    }
    if (text[n]) {
        memcpy(out + S_SHOWN_LEN - 4, "...", 3);
    }
    out[n] = '\0';
}

/* Notes what an audited command did: its result, the key (may be NULL),
 * the material version it made (0: none) and what changed, printf-style. */
static void s_note(struct s_ctx *c, s3s_result r, const char *key_arn, uint32_t version,
                   const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static void s_note(struct s_ctx *c, s3s_result r, const char *key_arn, uint32_t version,
                   const char *fmt, ...)
{
    if (!c->audit) {
        return;
    }
    struct s_change *ch = &c->change;
    ch->result = r;
    ch->key_version = version;
    s3s_free(&ch->key_arn);
    if (key_arn) {
        ch->key_arn = s3s_strdup(key_arn);
        ch->incomplete |= ch->key_arn == NULL;
    }
    s3s_buf_reset(&ch->detail);
    va_list ap;
    va_start(ap, fmt);
    if (s3s_failed(s3s_buf_vappendf(&ch->detail, fmt, ap))) {
        ch->incomplete = true;
    }
    va_end(ap);
}

/* "s3seal-cli:" and the login name, else the real user's name, else the
 * real uid: who ran the command, as far as this process can tell. */
static void s_principal(char out[S_PRINCIPAL_LEN])
{
    char name[256];
    if (getlogin_r(name, sizeof(name)) == 0 && name[0]) {
        snprintf(out, S_PRINCIPAL_LEN, "s3seal-cli:%s", name);
        return;
    }
    struct passwd pw, *found = NULL;
    char buf[1024];
    if (getpwuid_r(getuid(), &pw, buf, sizeof(buf), &found) == 0 && found && found->pw_name[0]) {
        snprintf(out, S_PRINCIPAL_LEN, "s3seal-cli:%.255s", found->pw_name);
        return;
    }
    snprintf(out, S_PRINCIPAL_LEN, "s3seal-cli:%u", (unsigned)getuid());
}

/* Opens the audit log before a change (each append is flushed to disk).
 * When it cannot be opened nothing may change: 1 after saying why. */
static int s_audit_open(struct s_ctx *c)
{
    char why[512] = "";
    c->change.result = s3s_err(S3S_ERR_INTERNAL);
    s3s_result r = s3s_buf_init(&c->change.detail, 256, 8192);
    if (s3s_is_ok(r)) {
        r = s3s_config_audit_open(c->cfg, true, &c->audit, why, sizeof(why));
    }
    if (s3s_failed(r)) {
        if (!why[0]) {
            snprintf(why, sizeof(why), "audit log %s: out of memory", c->cfg->audit_log);
        }
        fprintf(stderr, "s3seal keys %s: %s; nothing was changed\n", c->name, why);
        return 1;
    }
    return 0;
}

/* Appends the command's record; returns the command's exit status, or 1
 * when the record cannot be written. */
static int s_audit_append(struct s_ctx *c, const struct s_command *cmd, int status)
{
    const struct s_change *ch = &c->change;
    char principal[S_PRINCIPAL_LEN];
    s_principal(principal);
    const char *detail = NULL;
    s3s_result r = ch->incomplete ? s3s_err(S3S_ERR_NOMEM) : s3s_buf_cstr(&c->change.detail,
                                                                        &detail);
    struct s3s_audit_record rec = {
        .operation = cmd->operation,
        .result = s3s_is_ok(ch->result) ? "Success" : s3s_error_s3code(ch->result.code),
        .principal = principal,
        .key_arn = ch->key_arn,
        .key_version = ch->key_version,
        .detail = detail && detail[0] ? detail : NULL,
    };
    if (s3s_is_ok(r)) {
        r = s3s_audit_append(c->audit, &rec);
    }
    if (s3s_failed(r)) {
        fprintf(stderr, "s3seal keys %s: %s, but its audit record could not be written to %s\n",
                c->name, s3s_is_ok(ch->result) ? "the change was made" : "it was refused",
                c->cfg->audit_log);
        return 1;
    }
    return status;
}

#define S_DIGEST_LEN 112 /* "<20 digits> bytes, SHA-256 <64 hex>" */

/* How a policy is named in audit records: its length and SHA-256, so a
 * record says which text was put without holding it. */
static void s_policy_digest(const char *policy, char out[S_DIGEST_LEN])
{
    static const char digits[] = "0123456789abcdef";
    uint8_t md[32];
    unsigned md_len = 0;
    size_t n = strlen(policy);
    char hex[2 * sizeof(md) + 1] = "unavailable";
    if (EVP_Digest(policy, n, md, &md_len, EVP_sha256(), NULL) == 1 && md_len == sizeof(md)) {
        for (size_t i = 0; i < sizeof(md); i++) {
            hex[2 * i] = digits[md[i] >> 4];
            hex[2 * i + 1] = digits[md[i] & 15];
        }
        hex[2 * sizeof(md)] = '\0';
    }
    snprintf(out, S_DIGEST_LEN, "%zu bytes, SHA-256 %s", n, hex);
}

static void s_audit_close(struct s_ctx *c)
{
    s3s_audit_close(c->audit);
    s3s_free(&c->change.key_arn);
    s3s_buf_clean_up(&c->change.detail);
}

/* ---------------------------------------------------------------- output */

/* Adds a member; json-c's constructors return NULL when out of memory, which
 * json_object_object_add would store as a JSON null: that fails instead. */
static bool s_json_set(struct json_object *o, const char *name, struct json_object *v)
{
    if (!v || json_object_object_add(o, name, v) != 0) {
        json_object_put(v);
        return false;
    }
    return true;
}

/* Prints a JSON document as aws-cli does: indented, '/' unescaped. */
static int s_print_json(struct json_object *doc)
{
    const char *text = json_object_to_json_string_ext(
        doc, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED | JSON_C_TO_STRING_NOSLASHESCAPE);
    if (!text) {
        fprintf(stderr, "s3seal keys: out of memory\n");
        return 1;
    }
    printf("%s\n", text);
    return 0;
}

static int s_print_key(const struct s3s_kms_key *k)
{
    struct json_object *doc = NULL;
    if (s3s_failed(s3s_kms_key_metadata(k, &doc))) {
        fprintf(stderr, "s3seal keys: out of memory\n");
        return 1;
    }
    int status = s_print_json(doc);
    json_object_put(doc);
    return status;
}

/* Why the keystore refused, in an operator's words. `k` is the key as
 * resolved before the change (NULL when there is none), which tells the
 * state rules apart. */
static const char *s_reason(s3s_result r, const struct s3s_kms_key *k)
{
    switch (r.code) {
    case S3S_ERR_KMS_NOT_FOUND:
        return "no such key or alias";
    case S3S_ERR_KMS_DISABLED:
        return "the key is disabled (`s3seal keys enable` it first)";
    case S3S_ERR_KMS_INVALID_STATE:
        if (k && k->state == S3S_KMS_PENDING_DELETION) {
            return "the key is pending deletion (`s3seal keys cancel-deletion` it first)";
        }
        if (k && k->aws_managed) {
            return "the default key alias/aws/s3 cannot be deleted: objects depend on it";
        }
        return "the key is not pending deletion";
    case S3S_ERR_KMS_ALREADY_EXISTS:
        return "an alias of this name already exists";
    case S3S_ERR_KMS_MALFORMED_POLICY:
        return "the key policy is not valid";
    case S3S_ERR_INVALID_ARG:
        if (k && k->aws_managed) {
            return "the default key takes no alias but alias/aws/s3";
        }
        return "invalid argument (a description must be UTF-8; the config's region letters, "
               "digits, '-' or '_')";
    case S3S_ERR_KEYSTORE:
        return "the keystore failed (locked for too long, or damaged); nothing was changed";
    default:
        return s3s_error_message(r.code);
    }
}

static int s_fail(const struct s_ctx *c, const char *what, s3s_result r,
                  const struct s3s_kms_key *k)
{
    fprintf(stderr, "s3seal keys %s: %s: %s\n", c->name, what, s_reason(r, k));
    return 1;
}

/* ------------------------------------------------------------ resolution */

static int s_load_snapshot(struct s_ctx *c)
{
    if (c->snap) {
        return 0;
    }
    if (s3s_failed(s3s_kms_snapshot_load(c->ks, false, &c->snap))) {
        fprintf(stderr, "s3seal keys %s: cannot read the keystore's keys\n", c->name);
        return 1;
    }
    return 0;
}

/* The key KEY names (an id, alias/NAME, key ARN or alias ARN), or NULL
 * after saying why on stderr. */
static const struct s3s_kms_key *s_resolve(struct s_ctx *c, const char *ref)
{
    if (s_load_snapshot(c) != 0) {
        return NULL;
    }
    const struct s3s_kms_snap_key *k = s3s_kms_snapshot_find(c->snap, ref, c->args->account);
    if (k) {
        return &k->meta;
    }
    char where[64];
    if (strncmp(ref, "arn:", 4) == 0) {
        snprintf(where, sizeof(where), "the account and region the ARN names");
    } else {
        snprintf(where, sizeof(where), "account %s", c->args->account);
    }
    fprintf(stderr, "s3seal keys %s: %s: no such key in %s\n", c->name, ref, where);
    char shown[S_SHOWN_LEN];
    s_printable(ref, shown);
    s_note(c, s3s_err(S3S_ERR_KMS_NOT_FOUND), NULL, 0, "%s: no such key in %s", shown, where);
    return NULL;
}

/* -------------------------------------------------------------- policies */

/* Reads a file of at most `max` bytes into a new NUL-terminated string
 * (*out, freed by the caller); false with why set when it cannot, or when
 * the file is longer or holds a NUL byte. */
static bool s_read_text(const char *path, size_t max, char **out, char *why, size_t why_len)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(why, why_len, "%s", strerror(errno));
        return false;
    }
    /* One byte more than the limit tells a longer file apart. */
    char *text = s3s_malloc(max + 2);
    size_t n = text ? fread(text, 1, max + 1, f) : 0;
    bool failed = !text || ferror(f);
    fclose(f);
    if (failed || n > max || memchr(text, '\0', n) != NULL) {
        snprintf(why, why_len, "%s",
                 failed ? "cannot read it" : n > max ? "too long" : "it holds a NUL byte");
        s3s_free(&text);
        return false;
    }
    text[n] = '\0';
    *out = text;
    return true;
}

/* Reads and checks (s3s_policy_parse) the key policy in `path` into a new
 * string (*out, freed by the caller); a refusal is noted for the audit
 * record of the change to key_arn (NULL: a key not made yet). */
static int s_read_policy(struct s_ctx *c, const char *path, const char *key_arn, char **out)
{
    char why[256] = "";
    struct s3s_policy *policy = NULL;
    bool ok = s_read_text(path, S3S_POLICY_MAX_LEN, out, why, sizeof(why)) &&
              s3s_is_ok(s3s_policy_parse(s3s_cur_from_str(*out), &policy, why, sizeof(why)));
    s3s_policy_free(policy);
    if (ok) {
        return 0;
    }
    if (!why[0]) {
        snprintf(why, sizeof(why), "out of memory");
    }
    fprintf(stderr, "s3seal keys %s: %s: not a valid key policy: %s\n", c->name, path, why);
    char shown[S_SHOWN_LEN];
    s_printable(path, shown);
    s_note(c, s3s_err(S3S_ERR_KMS_MALFORMED_POLICY), key_arn, 0, "policy file %s: %s", shown,
           why);
    s3s_free(out);
    return 1;
}

/* -------------------------------------------------------------- commands */

static int s_create(struct s_ctx *c)
{
    const struct s_args *a = c->args;
    char *policy = NULL;
    if (a->policy_file && s_read_policy(c, a->policy_file, NULL, &policy) != 0) {
        return 1;
    }
    struct s3s_kms_create_opts o = {
        .account = a->account,
        .region = c->cfg->region,
        .description = a->description,
        .alias = a->alias,
        .rotation_period_s = a->rotation_period_s,
        .policy = policy,
    };
    struct s3s_kms_key k;
    s3s_result r = s3s_kms_create(c->ks, &o, &k);
    char shown[S_SHOWN_LEN], digest[S_DIGEST_LEN] = "the default one", rotation[32] = "off";
    s_printable(a->description ? a->description : "", shown);
    if (policy) {
        s_policy_digest(policy, digest);
    }
    if (a->rotation_period_s > 0) {
        snprintf(rotation, sizeof(rotation), "every %d days", (int)(a->rotation_period_s / 86400));
    }
    /* A key's description is UTF-8 (the keystore checks), so the record
     * can hold it as it is; a refused one may not be. */
    s_note(c, r, k.arn, s3s_is_ok(r) ? 1 : 0,
           "account %s; alias %s; automatic rotation %s; policy %s; description \"%s\"",
           a->account, a->alias ? a->alias : "none", rotation, digest,
           s3s_is_ok(r) ? k.description : shown);
    s3s_free(&policy);
    if (s3s_failed(r)) {
        return s_fail(c, a->alias ? a->alias : "new key", r, NULL);
    }
    int status = s_print_key(&k);
    s3s_kms_key_clean_up(&k);
    return status;
}

/* "alias/a,alias/b", or "-" without aliases. */
static s3s_result s_join_aliases(const struct s3s_kms_key *k, struct s3s_buf *out)
{
    s3s_buf_reset(out);
    if (k->n_aliases == 0) {
        return s3s_buf_append_str(out, "-");
    }
    for (size_t i = 0; i < k->n_aliases; i++) {
        S3S_GUARD(s3s_buf_appendf(out, "%s%s", i ? "," : "", k->aliases[i]));
    }
    return s3s_ok();
}

static int s_list_text(const struct s_ctx *c)
{
    struct s3s_buf aliases;
    if (s3s_failed(s3s_buf_init(&aliases, 256, 1 << 20))) {
        return 1;
    }
    /* The aliases column is as wide as its widest cell. */
    int width = (int)strlen("ALIASES");
    for (size_t i = 0; i < c->snap->n_keys; i++) {
        const struct s3s_kms_key *k = &c->snap->keys[i].meta;
        if (strcmp(k->account, c->args->account) == 0 &&
            s3s_is_ok(s_join_aliases(k, &aliases)) && (int)aliases.len > width) {
            width = (int)aliases.len;
        }
    }
    printf("%-36s  %-15s  %-*s  %s\n", "KEY ID", "STATE", width, "ALIASES", "ARN");
    int status = 0;
    for (size_t i = 0; i < c->snap->n_keys && status == 0; i++) {
        const struct s3s_kms_key *k = &c->snap->keys[i].meta;
        if (strcmp(k->account, c->args->account) != 0) {
            continue;
        }
        const char *joined = NULL;
        if (s3s_failed(s_join_aliases(k, &aliases)) ||
            s3s_failed(s3s_buf_cstr(&aliases, &joined))) {
            fprintf(stderr, "s3seal keys list: out of memory\n");
            status = 1;
            break;
        }
        printf("%-36s  %-15s  %-*s  %s\n", k->id, s3s_kms_state_name(k->state), width, joined,
               k->arn);
    }
    s3s_buf_clean_up(&aliases);
    return status;
}

static int s_list_json(const struct s_ctx *c)
{
    struct json_object *list = json_object_new_array();
    bool ok = list != NULL;
    for (size_t i = 0; ok && i < c->snap->n_keys; i++) {
        const struct s3s_kms_key *k = &c->snap->keys[i].meta;
        struct json_object *doc = NULL;
        if (strcmp(k->account, c->args->account) != 0) {
            continue;
        }
        ok = s3s_is_ok(s3s_kms_key_metadata(k, &doc)) && json_object_array_add(list, doc) == 0;
        if (!ok) {
            json_object_put(doc);
        }
    }
    int status = ok ? s_print_json(list) : 1;
    if (!ok) {
        fprintf(stderr, "s3seal keys list: out of memory\n");
    }
    json_object_put(list);
    return status;
}

static int s_list(struct s_ctx *c)
{
    if (s_load_snapshot(c) != 0) {
        return 1;
    }
    return c->args->json ? s_list_json(c) : s_list_text(c);
}

static int s_describe(struct s_ctx *c)
{
    const struct s3s_kms_key *k = s_resolve(c, c->args->pos[0]);
    return k ? s_print_key(k) : 1;
}

static int s_set_enabled(struct s_ctx *c, bool enabled)
{
    const struct s3s_kms_key *k = s_resolve(c, c->args->pos[0]);
    if (!k) {
        return 1;
    }
    s3s_result r = s3s_kms_set_enabled(c->ks, k->id, enabled);
    s_note(c, r, k->arn, 0, "%s -> %s", s3s_kms_state_name(k->state),
           s3s_kms_state_name(enabled ? S3S_KMS_ENABLED : S3S_KMS_DISABLED));
    if (s3s_failed(r)) {
        return s_fail(c, k->arn, r, k);
    }
    printf("%s is %s\n", k->arn, enabled ? "Enabled" : "Disabled");
    return 0;
}

static int s_enable(struct s_ctx *c) { return s_set_enabled(c, true); }
static int s_disable(struct s_ctx *c) { return s_set_enabled(c, false); }

static int s_rotate(struct s_ctx *c)
{
    const struct s3s_kms_key *k = s_resolve(c, c->args->pos[0]);
    if (!k) {
        return 1;
    }
    uint32_t version = 0;
    s3s_result r = s3s_kms_rotate(c->ks, k->id, &version);
    s_note(c, r, k->arn, s3s_is_ok(r) ? version : 0, "on demand, from version %u (key %s)",
           k->current_version, s3s_kms_state_name(k->state));
    if (s3s_failed(r)) {
        return s_fail(c, k->arn, r, k);
    }
    printf("%s: version %u is current; older versions keep decrypting what they encrypted\n",
           k->arn, version);
    return 0;
}

static int s_schedule_deletion(struct s_ctx *c)
{
    const struct s3s_kms_key *k = s_resolve(c, c->args->pos[0]);
    if (!k) {
        return 1;
    }
    int64_t date = 0;
    s3s_result r = s3s_kms_schedule_deletion(c->ks, k->id, c->args->days,
                                             s3s_now_real(NULL), &date);
    char when[30] = "-";
    if (s3s_is_ok(r)) {
        s3s_time_format_http(date, when);
    }
    s_note(c, r, k->arn, 0, "%s -> PendingDeletion for %d days, destroyed at %s",
           s3s_kms_state_name(k->state), c->args->days, when);
    if (s3s_failed(r)) {
        return s_fail(c, k->arn, r, k);
    }
    /* AWS's ScheduleKeyDeletion answer. */
    struct json_object *doc = json_object_new_object();
    bool ok = doc && s_json_set(doc, "KeyId", json_object_new_string(k->arn)) &&
              s_json_set(doc, "DeletionDate", json_object_new_int64(date)) &&
              s_json_set(doc, "KeyState",
                         json_object_new_string(s3s_kms_state_name(S3S_KMS_PENDING_DELETION))) &&
              s_json_set(doc, "PendingWindowInDays", json_object_new_int(c->args->days));
    int status = ok ? s_print_json(doc) : 1;
    if (!ok) {
        /* The change is made; only its answer could not be built. */
        printf("%s is pending deletion until %s\n", k->arn, when);
        status = 0;
    }
    json_object_put(doc);
    return status;
}

static int s_cancel_deletion(struct s_ctx *c)
{
    const struct s3s_kms_key *k = s_resolve(c, c->args->pos[0]);
    if (!k) {
        return 1;
    }
    s3s_result r = s3s_kms_cancel_deletion(c->ks, k->id);
    s_note(c, r, k->arn, 0, "%s -> Disabled", s3s_kms_state_name(k->state));
    if (s3s_failed(r)) {
        return s_fail(c, k->arn, r, k);
    }
    printf("%s is no longer pending deletion; it is Disabled (`s3seal keys enable` it to use "
           "it)\n",
           k->arn);
    return 0;
}

static int s_alias_create(struct s_ctx *c)
{
    const char *alias = c->args->pos[0];
    const struct s3s_kms_key *k = s_resolve(c, c->args->pos[1]);
    if (!k) {
        return 1;
    }
    /* The alias goes to the key's own account, which is --account's for a
     * bare id or alias, and the ARN's for an ARN. */
    s3s_result r = s3s_kms_alias_create(c->ks, k->account, alias, k->id);
    s_note(c, r, k->arn, 0, "%s in account %s", alias, k->account);
    if (s3s_failed(r)) {
        fprintf(stderr, "s3seal keys alias create: %s in account %s: %s\n", alias, k->account,
                s_reason(r, k));
        return 1;
    }
    printf("%s -> %s (account %s)\n", alias, k->id, k->account);
    return 0;
}

static int s_alias_delete(struct s_ctx *c)
{
    const char *alias = c->args->pos[0];
    /* The key it names, for the record. */
    if (s_load_snapshot(c) != 0) {
        return 1;
    }
    const struct s3s_kms_snap_key *k = s3s_kms_snapshot_find(c->snap, alias, c->args->account);
    s3s_result r = s3s_kms_alias_delete(c->ks, c->args->account, alias);
    s_note(c, r, k ? k->meta.arn : NULL, 0, "%s in account %s", alias, c->args->account);
    if (s3s_failed(r)) {
        fprintf(stderr, "s3seal keys alias delete: %s in account %s: %s\n", alias,
                c->args->account,
                r.code == S3S_ERR_KMS_NOT_FOUND ? "no such alias" : s_reason(r, NULL));
        return 1;
    }
    printf("deleted %s (account %s); its key is unchanged\n", alias, c->args->account);
    return 0;
}

/* One alias as ListAliases shows it. */
static struct json_object *s_alias_json(const struct s3s_kms_snap_alias *a,
                                        const struct s3s_kms_key *k)
{
    struct s3s_buf arn = {0};
    const char *arn_str = NULL;
    struct json_object *doc = json_object_new_object();
    bool ok = doc && s3s_is_ok(s3s_buf_init(&arn, 128, 512)) &&
              s3s_is_ok(s3s_kms_alias_arn(k->region, a->account, a->name, &arn)) &&
              s3s_is_ok(s3s_buf_cstr(&arn, &arn_str)) &&
              s_json_set(doc, "AliasName", json_object_new_string(a->name)) &&
              s_json_set(doc, "AliasArn", json_object_new_string(arn_str)) &&
              s_json_set(doc, "TargetKeyId", json_object_new_string(k->id)) &&
              s_json_set(doc, "CreationDate", json_object_new_int64(a->created));
    s3s_buf_clean_up(&arn);
    if (!ok) {
        json_object_put(doc);
        return NULL;
    }
    return doc;
}

/* Whether alias list shows an alias: those of the --key (in the key's own
 * account, which an ARN may name), else those of the account. */
static bool s_alias_listed(const struct s_ctx *c, const struct s3s_kms_snap_alias *a,
                           const struct s3s_kms_key *only)
{
    return only ? &c->snap->keys[a->key].meta == only
                : strcmp(a->account, c->args->account) == 0;
}

static int s_alias_list(struct s_ctx *c)
{
    const struct s3s_kms_key *only = c->args->key ? s_resolve(c, c->args->key) : NULL;
    if ((c->args->key && !only) || s_load_snapshot(c) != 0) {
        return 1;
    }
    struct json_object *list = c->args->json ? json_object_new_array() : NULL;
    bool ok = !c->args->json || list != NULL;
    /* The alias column is as wide as its widest cell. */
    int width = (int)strlen("ALIAS");
    for (size_t i = 0; i < c->snap->n_aliases; i++) {
        if (s_alias_listed(c, &c->snap->aliases[i], only) &&
            (int)strlen(c->snap->aliases[i].name) > width) {
            width = (int)strlen(c->snap->aliases[i].name);
        }
    }
    if (ok && !c->args->json) {
        printf("%-*s  %-36s  %s\n", width, "ALIAS", "KEY ID", "STATE");
    }
    for (size_t i = 0; ok && i < c->snap->n_aliases; i++) {
        const struct s3s_kms_snap_alias *a = &c->snap->aliases[i];
        const struct s3s_kms_key *k = &c->snap->keys[a->key].meta;
        if (!s_alias_listed(c, a, only)) {
            continue;
        }
        if (!c->args->json) {
            printf("%-*s  %-36s  %s\n", width, a->name, k->id, s3s_kms_state_name(k->state));
            continue;
        }
        struct json_object *doc = s_alias_json(a, k);
        ok = doc && json_object_array_add(list, doc) == 0;
        if (!ok) {
            json_object_put(doc);
        }
    }
    int status = !ok ? 1 : list ? s_print_json(list) : 0;
    if (!ok) {
        fprintf(stderr, "s3seal keys alias list: out of memory\n");
    }
    json_object_put(list);
    return status;
}

static int s_get_policy(struct s_ctx *c)
{
    const struct s3s_kms_key *k = s_resolve(c, c->args->pos[0]);
    if (!k) {
        return 1;
    }
    /* The snapshot has the policy, but read it now: it may have just changed. */
    char *policy = NULL;
    s3s_result r = s3s_kms_policy_get(c->ks, k->id, &policy);
    if (s3s_failed(r)) {
        return s_fail(c, k->arn, r, k);
    }
    if (policy) {
        size_t n = strlen(policy);
        printf("%s%s", policy, n && policy[n - 1] == '\n' ? "" : "\n");
        s3s_free(&policy);
        return 0;
    }
    struct s3s_buf def;
    const char *text = NULL;
    int status = 1;
    if (s3s_is_ok(s3s_buf_init(&def, 512, 4096)) &&
        s3s_is_ok(s3s_kms_default_policy(k->account, &def)) &&
        s3s_is_ok(s3s_buf_cstr(&def, &text))) {
        printf("%s\n", text);
        status = 0;
    } else {
        fprintf(stderr, "s3seal keys get-policy: out of memory\n");
    }
    s3s_buf_clean_up(&def);
    return status;
}

static int s_put_policy(struct s_ctx *c)
{
    const struct s3s_kms_key *k = s_resolve(c, c->args->pos[0]);
    if (!k) {
        return 1;
    }
    char *policy = NULL;
    if (s_read_policy(c, c->args->policy_file, k->arn, &policy) != 0) {
        return 1;
    }
    s3s_result r = s3s_kms_policy_put(c->ks, k->id, policy);
    char digest[S_DIGEST_LEN];
    s_policy_digest(policy, digest);
    s_note(c, r, k->arn, 0, "policy of %s", digest);
    s3s_free(&policy);
    if (s3s_failed(r)) {
        return s_fail(c, k->arn, r, k);
    }
    printf("%s: policy stored; it is now the whole truth about who may use the key\n", k->arn);
    return 0;
}

static const struct s_command s_commands[] = {
    {"create",
     "[--alias alias/NAME] [--description TEXT] [--account ID]\n"
     "         [--rotation-days N | --no-rotation] [--policy-file FILE]",
     S_OPT_ALIAS | S_OPT_DESCRIPTION | S_OPT_ROTATION_DAYS | S_OPT_NO_ROTATION |
         S_OPT_POLICY_FILE,
     0, 0, false, "CreateKey", s_create},
    {"list", "[--account ID] [--json]", S_OPT_JSON, 0, 0, false, NULL, s_list},
    {"describe", "KEY", 0, 0, 1, false, NULL, s_describe},
    {"enable", "KEY", 0, 0, 1, false, "EnableKey", s_enable},
    {"disable", "KEY", 0, 0, 1, false, "DisableKey", s_disable},
    {"rotate", "KEY", 0, 0, 1, false, "RotateKeyOnDemand", s_rotate},
    {"schedule-deletion", "KEY [--days N]", S_OPT_DAYS, 0, 1, false, "ScheduleKeyDeletion",
     s_schedule_deletion},
    {"cancel-deletion", "KEY", 0, 0, 1, false, "CancelKeyDeletion", s_cancel_deletion},
    {"alias create", "alias/NAME KEY", 0, 0, 2, true, "CreateAlias", s_alias_create},
    {"alias delete", "alias/NAME", 0, 0, 1, true, "DeleteAlias", s_alias_delete},
    {"alias list", "[--key KEY] [--json]", S_OPT_KEY | S_OPT_JSON, 0, 0, false, NULL,
     s_alias_list},
    {"get-policy", "KEY", 0, 0, 1, false, NULL, s_get_policy},
    {"put-policy", "KEY --policy-file FILE", S_OPT_POLICY_FILE, S_OPT_POLICY_FILE, 1, false,
     "PutKeyPolicy", s_put_policy},
};

#define S_N_COMMANDS (sizeof(s_commands) / sizeof(s_commands[0]))

static void s_usage(FILE *f)
{
    fprintf(f, "usage: s3seal keys COMMAND [ARGS]\n\ncommands:\n");
    for (size_t i = 0; i < S_N_COMMANDS; i++) {
        fprintf(f, "  %s %s\n", s_commands[i].name, s_commands[i].synopsis);
    }
    fprintf(f,
            "\n"
            "KEY: a key id, alias/NAME, key ARN or alias ARN. Ids and aliases name keys of the\n"
            "config's account_id, or of --account ID (12 digits), which every command takes.\n"
            "--rotation-days: automatic rotation, %d..%d days (default: the config's\n"
            "keystore.kms_rotation_days, 365 unless set).\n"
            "--days: the waiting period before deletion, %d..%d days (default %d).\n",
            S3S_KMS_MIN_ROTATION_DAYS, S3S_KMS_MAX_ROTATION_DAYS, S3S_KMS_MIN_DELETION_DAYS,
            S3S_KMS_MAX_DELETION_DAYS, S3S_KMS_DEFAULT_DELETION_DAYS);
}

void s3s_cli_keys_usage(FILE *f) { s_usage(f); }

static int s_usage_of(const struct s_command *cmd, const char *problem)
{
    fprintf(stderr, "s3seal keys %s: %s\nusage: s3seal keys %s %s\n", cmd->name, problem,
            cmd->name, cmd->synopsis);
    return 2;
}

/* ---------------------------------------------------------------- parsing */

/* A bounded decimal option value in lo..hi. */
static bool s_parse_days(const char *text, int lo, int hi, int *out)
{
    uint64_t v = 0;
    if (s3s_failed(s3s_parse_u64(s3s_cur_from_str(text), (uint64_t)hi, &v)) || v < (uint64_t)lo) {
        return false;
    }
    *out = (int)v;
    return true;
}

static bool s_account_valid(const char *a)
{
    return a && strlen(a) == 12 && strspn(a, "0123456789") == 12;
}

/* Reads the command's options and positional arguments (argv[0] is the
 * command's last word). Returns 0, or 2 after printing the usage error. */
static int s_parse(const struct s_command *cmd, const struct s3s_config *cfg, int argc,
                   char **argv, struct s_args *a)
{
    static const struct option opts[] = {
        {"account", required_argument, NULL, 'a'},
        {"alias", required_argument, NULL, 'l'},
        {"description", required_argument, NULL, 'd'},
        {"rotation-days", required_argument, NULL, 'r'},
        {"no-rotation", no_argument, NULL, 'n'},
        {"policy-file", required_argument, NULL, 'p'},
        {"days", required_argument, NULL, 'D'},
        {"json", no_argument, NULL, 'j'},
        {"key", required_argument, NULL, 'k'},
        {NULL, 0, NULL, 0},
    };
    static const unsigned bits[128] = {
        ['a'] = S_OPT_ACCOUNT,       ['l'] = S_OPT_ALIAS,       ['d'] = S_OPT_DESCRIPTION,
        ['r'] = S_OPT_ROTATION_DAYS, ['n'] = S_OPT_NO_ROTATION, ['p'] = S_OPT_POLICY_FILE,
        ['D'] = S_OPT_DAYS,          ['j'] = S_OPT_JSON,        ['k'] = S_OPT_KEY,
    };
    *a = (struct s_args){
        .account = cfg->account_id,
        /* New keys rotate as the config says (default 365 days; 0: off). */
        .rotation_period_s = (int64_t)cfg->keystore.kms_rotation_days * 86400,
        .days = S3S_KMS_DEFAULT_DELETION_DAYS,
    };
    unsigned seen = 0;
    int ch, days = 0;
    optind = 1;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        unsigned bit = ch > 0 && ch < 128 ? bits[ch] : 0;
        if (!bit || !((cmd->opts | S_OPT_ACCOUNT) & bit)) {
            return s_usage_of(cmd, "unknown option, or one that lacks its value");
        }
        seen |= bit;
        switch (ch) {
        case 'a':
            a->account = optarg;
            break;
        case 'l':
            a->alias = optarg;
            break;
        case 'd':
            a->description = optarg;
            break;
        case 'r':
            if (!s_parse_days(optarg, S3S_KMS_MIN_ROTATION_DAYS, S3S_KMS_MAX_ROTATION_DAYS,
                              &days)) {
                return s_usage_of(cmd, "--rotation-days must be 90..2560 (AWS's range)");
            }
            a->rotation_period_s = days * 86400LL;
            break;
        case 'n':
            a->rotation_period_s = 0;
            break;
        case 'p':
            a->policy_file = optarg;
            break;
        case 'D':
            if (!s_parse_days(optarg, S3S_KMS_MIN_DELETION_DAYS, S3S_KMS_MAX_DELETION_DAYS,
                              &a->days)) {
                return s_usage_of(cmd, "--days must be 7..30");
            }
            break;
        case 'j':
            a->json = true;
            break;
        case 'k':
            a->key = optarg;
            break;
        default:
            return s_usage_of(cmd, "unknown option");
        }
    }
    if (argc - optind != cmd->n_pos) {
        return s_usage_of(cmd, "wrong number of arguments");
    }
    for (int i = 0; i < cmd->n_pos; i++) {
        a->pos[i] = argv[optind + i];
    }
    if ((seen & S_OPT_ROTATION_DAYS) && (seen & S_OPT_NO_ROTATION)) {
        return s_usage_of(cmd, "--rotation-days and --no-rotation exclude each other");
    }
    if (!s_account_valid(a->account)) {
        return s_usage_of(cmd, "--account must be 12 digits");
    }
    if (a->description && strlen(a->description) > S3S_KMS_MAX_DESCRIPTION_LEN) {
        return s_usage_of(cmd, "--description is limited to 8192 bytes");
    }
    if (a->alias && !s3s_kms_alias_name_valid(a->alias)) {
        return s_usage_of(cmd, "--alias must be alias/NAME (letters, digits, '/', '_', '-'; "
                               "not alias/aws/...)");
    }
    if ((cmd->required & S_OPT_POLICY_FILE) && !a->policy_file) {
        return s_usage_of(cmd, "--policy-file is required");
    }
    if (cmd->alias_arg && !s3s_kms_alias_name_valid(a->pos[0])) {
        return s_usage_of(cmd, "the alias must be alias/NAME (letters, digits, '/', '_', '-'; "
                               "not alias/aws/...)");
    }
    return 0;
}

/* The command argv names ("alias create" takes two words), or NULL. */
static const struct s_command *s_find(int argc, char **argv, int *words)
{
    for (size_t i = 0; i < S_N_COMMANDS; i++) {
        const char *name = s_commands[i].name;
        const char *space = strchr(name, ' ');
        if (!space && strcmp(argv[1], name) == 0) {
            *words = 1;
            return &s_commands[i];
        }
        if (space && argc > 2 && strncmp(argv[1], name, (size_t)(space - name)) == 0 &&
            argv[1][space - name] == '\0' && strcmp(argv[2], space + 1) == 0) {
            *words = 2;
            return &s_commands[i];
        }
    }
    return NULL;
}

int s3s_cli_keys(const struct s3s_config *cfg, int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0 ||
        strcmp(argv[1], "-h") == 0) {
        s_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    int words = 0;
    const struct s_command *cmd = s_find(argc, argv, &words);
    if (!cmd) {
        fprintf(stderr, "s3seal keys: unknown command '%s'\n", argv[1]);
        s_usage(stderr);
        return 2;
    }
    struct s_args args;
    int status = s_parse(cmd, cfg, argc - words, argv + words, &args);
    if (status != 0) {
        return status;
    }
    struct s_ctx c = {.cfg = cfg, .args = &args, .name = cmd->name};
    /* Fail closed: no change without its audit log. */
    status = cmd->operation && cfg->audit_log ? s_audit_open(&c) : 0;
    if (status == 0) {
        c.ks = s3s_cli_keystore_open(cfg, true);
        status = c.ks ? cmd->run(&c) : 1;
        if (!c.ks) {
            s_note(&c, s3s_err(S3S_ERR_KEYSTORE), NULL, 0, "the keystore cannot be opened");
        }
    }
    if (c.audit) {
        status = s_audit_append(&c, cmd, status);
    }
    s_audit_close(&c);
    s3s_kms_snapshot_free(c.snap);
    s3s_keystore_close(c.ks);
    return status;
}
