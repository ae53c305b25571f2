/*
 * kms_test.c - KMS keys in the embedded keystore: creation and description,
 * the snapshot and AWS's KeyId resolution (ids, aliases, key and alias
 * ARNs; wrong account or region; other accounts by ARN only), key states and
 * their transitions, deletion and the sweep, rotation on demand and when
 * due, the default key made once by racing handles, the generation counter,
 * material across reopening and bound to its row, alias rules, policies,
 * the KeyMetadata and default policy JSON, failed allocations, and an older
 * keystore gaining the KMS tables.
 */
#include <fcntl.h>
#include <json-c/json.h>
#include <pthread.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "keystore/kms.h"
#include "keystore/policy.h"
#include "keystore/store.h"
#include "ks_test.h"
#include "testlib.h"

#define ACCOUNT_A "111122223333"
#define ACCOUNT_B "444455556666"
#define REGION "us-east-1"
#define DAY 86400LL


/* What the maintenance calls reported (s3s_kms_key_event_fn). */
struct s_events {
    size_t n;
    char arn[128];
    uint32_t version;
};

static void s_event(void *ctx, const char *arn, uint32_t version)
{
    struct s_events *e = ctx;
    e->n++;
    snprintf(e->arn, sizeof(e->arn), "%s", arn);
    e->version = version;
}
static char s_dir[64];

/* Runs SQL on a keystore's store directly, as a damaged or older keystore
 * would look (through the back end's own connection, not the keystore's). */
static void s_raw_exec(const char *db, const char *sql)
{
    struct s3s_store *raw = NULL;
    char why[256] = "";
    T_OK(s3s_store_open(db, false, &raw, why, sizeof(why)));
    if (raw) {
        T_OK(s3s_store_exec(raw, sql));
    }
    s3s_store_close(raw);
}

static int64_t s_raw_count(const char *db, const char *sql)
{
    struct s3s_store *raw = NULL;
    struct s3s_store_stmt *st = NULL;
    char why[256] = "";
    int64_t n = -1;
    T_OK(s3s_store_open(db, false, &raw, why, sizeof(why)));
    if (raw && s3s_is_ok(s3s_store_prepare(raw, sql, &st)) && s3s_store_step(st) == S3S_STORE_ROW) {
        n = s3s_store_column_int64(st, 0);
    }
    s3s_store_finalize(st);
    s3s_store_close(raw);
    return n;
}
static char s_mk[128];

/* A fresh keystore file per test, so tests do not see each other's keys. */
static struct s3s_keystore *s_open_new(const char *name, char *db, size_t db_len)
{
    ks_test_location(name, db, db_len);
    char why[256] = "";
    struct s3s_keystore *ks = NULL;
    T_OK(s3s_keystore_open(db, s_mk, true, &ks, why, sizeof(why)));
    return ks;
}

static void s_create(struct s3s_keystore *ks, const char *account, const char *alias,
                     struct s3s_kms_key *out)
{
    struct s3s_kms_create_opts o = {.account = account, .region = REGION, .alias = alias};
    T_OK(s3s_kms_create(ks, &o, out));
}

static bool s_uuid_v4(const char *id)
{
    if (strlen(id) != 36) {
        return false;
    }
    for (int i = 0; i < 36; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        bool hex = (id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f');
        if (dash ? id[i] != '-' : !hex) {
            return false;
        }
    }
    return id[14] == '4' && strchr("89ab", id[19]) != NULL;
}

static uint64_t s_generation(struct s3s_keystore *ks)
{
    uint64_t g = 0;
    T_OK(s3s_kms_generation(ks, &g));
    return g;
}

/* ------------------------------------------------------------------ tests */

static void test_create_describe(void)
{
    char db[128];
    struct s3s_keystore *ks = s_open_new("create", db, sizeof(db));
    struct s3s_kms_create_opts o = {
        .account = ACCOUNT_A,
        .region = REGION,
        .description = "invoices",
        .alias = "alias/invoices",
        .rotation_period_s = S3S_KMS_DEFAULT_ROTATION_S,
    };
    struct s3s_kms_key k, d, other;
    int64_t before = (int64_t)time(NULL);
    T_OK(s3s_kms_create(ks, &o, &k));
    T_CHECK(s_uuid_v4(k.id));
    T_STREQ(k.account, ACCOUNT_A);
    T_STREQ(k.region, REGION);
    char arn[128];
    snprintf(arn, sizeof(arn), "arn:aws:kms:%s:%s:key/%s", REGION, ACCOUNT_A, k.id);
    T_STREQ(k.arn, arn);
    T_STREQ(k.description, "invoices");
    T_CHECK(k.state == S3S_KMS_ENABLED && !k.aws_managed);
    T_CHECK(k.created >= before && k.created <= before + 5);
    T_CHECK(k.current_version == 1 && k.current_created == k.created);
    T_CHECK(k.deletion_date == 0 && k.policy == NULL);
    T_CHECK(k.rotation_period_s == S3S_KMS_DEFAULT_ROTATION_S);
    T_CHECK(k.n_aliases == 1 && strcmp(k.aliases[0], "alias/invoices") == 0);

    T_OK(s3s_kms_describe(ks, k.id, &d));
    T_STREQ(d.id, k.id);
    T_STREQ(d.arn, k.arn);
    T_CHECK(d.n_aliases == 1 && d.created == k.created);
    s3s_kms_key_clean_up(&d);

    /* Two keys never share an id; no description is "". */
    s_create(ks, ACCOUNT_A, NULL, &other);
    T_CHECK(strcmp(other.id, k.id) != 0 && s_uuid_v4(other.id));
    T_STREQ(other.description, "");
    T_CHECK(other.n_aliases == 0 && other.rotation_period_s == 0);

    T_ERR(s3s_kms_describe(ks, "00000000-0000-4000-8000-000000000000", &d), S3S_ERR_KMS_NOT_FOUND);
    T_CHECK(d.arn == NULL);

    /* Bad options: nothing is created. */
    uint64_t gen = s_generation(ks);
    struct s3s_kms_key bad;
    struct s3s_kms_create_opts b = o;
    b.alias = NULL;
    b.account = "12345";
    T_ERR(s3s_kms_create(ks, &b, &bad), S3S_ERR_INVALID_ARG);
    b.account = "11112222333a";
    T_ERR(s3s_kms_create(ks, &b, &bad), S3S_ERR_INVALID_ARG);
    b.account = ACCOUNT_A;
    b.region = "us:east";
    T_ERR(s3s_kms_create(ks, &b, &bad), S3S_ERR_INVALID_ARG);
    b.region = "";
    T_ERR(s3s_kms_create(ks, &b, &bad), S3S_ERR_INVALID_ARG);
    b.region = REGION;
    b.rotation_period_s = 89 * DAY;
    T_ERR(s3s_kms_create(ks, &b, &bad), S3S_ERR_INVALID_ARG);
    b.rotation_period_s = 2561 * DAY;
    T_ERR(s3s_kms_create(ks, &b, &bad), S3S_ERR_INVALID_ARG);
    b.rotation_period_s = 0;
    char *long_text = calloc(1, S3S_POLICY_MAX_LEN + 2);
    memset(long_text, 'x', S3S_POLICY_MAX_LEN + 1);
    b.description = long_text;
    T_ERR(s3s_kms_create(ks, &b, &bad), S3S_ERR_INVALID_ARG);
    b.description = NULL;
    b.policy = long_text;
    T_ERR(s3s_kms_create(ks, &b, &bad), S3S_ERR_KMS_MALFORMED_POLICY);
    free(long_text);
    b.policy = NULL;
    b.description = "caf\xc3"; /* cut inside a character */
    T_ERR(s3s_kms_create(ks, &b, &bad), S3S_ERR_INVALID_ARG);
    b.description = "\xc0\xaf"; /* overlong '/' */
    T_ERR(s3s_kms_create(ks, &b, &bad), S3S_ERR_INVALID_ARG);
    T_ERR(s3s_kms_create(ks, NULL, &bad), S3S_ERR_INVALID_ARG);
    T_CHECK(bad.arn == NULL && s_generation(ks) == gen);

    s3s_kms_key_clean_up(&k);
    s3s_kms_key_clean_up(&other);
    s3s_kms_key_clean_up(&other); /* idempotent */
    s3s_keystore_close(ks);
}

static void test_snapshot_resolution(void)
{
    char db[128];
    struct s3s_keystore *ks = s_open_new("resolve", db, sizeof(db));
    struct s3s_kms_key a, b, a2;
    s_create(ks, ACCOUNT_A, "alias/docs", &a);
    s_create(ks, ACCOUNT_B, "alias/docs", &b); /* the same alias name in another account */
    struct s3s_kms_create_opts o = {.account = ACCOUNT_A, .region = "eu-west-1"};
    T_OK(s3s_kms_create(ks, &o, &a2));
    T_OK(s3s_kms_alias_create(ks, ACCOUNT_A, "alias/team/x_1-y", a.id));

    struct s3s_kms_snapshot *s = NULL;
    T_OK(s3s_kms_snapshot_load(ks, false, &s));
    T_CHECK(s->n_keys == 3 && s->n_aliases == 3);
    for (size_t i = 1; i < s->n_keys; i++) {
        T_CHECK(strcmp(s->keys[i - 1].meta.id, s->keys[i].meta.id) < 0);
    }
    for (size_t i = 1; i < s->n_aliases; i++) {
        int c = strcmp(s->aliases[i - 1].account, s->aliases[i].account);
        T_CHECK(c < 0 || (c == 0 && strcmp(s->aliases[i - 1].name, s->aliases[i].name) < 0));
        T_CHECK(s->aliases[i].created > 0);
    }
    const struct s3s_kms_snap_key *f;

    /* A bare id or alias names a key of the caller's account only. */
    f = s3s_kms_snapshot_find(s, a.id, ACCOUNT_A);
    T_CHECK(f && strcmp(f->meta.id, a.id) == 0);
    T_CHECK(f && f->meta.n_aliases == 2 && f->material.len == 0);
    T_CHECK(s3s_kms_snapshot_find(s, a.id, ACCOUNT_B) == NULL);
    T_CHECK(s3s_kms_snapshot_find(s, a.id, NULL) == NULL);
    f = s3s_kms_snapshot_find(s, "alias/docs", ACCOUNT_A);
    T_CHECK(f && strcmp(f->meta.id, a.id) == 0);
    f = s3s_kms_snapshot_find(s, "alias/docs", ACCOUNT_B);
    T_CHECK(f && strcmp(f->meta.id, b.id) == 0);
    f = s3s_kms_snapshot_find(s, "alias/team/x_1-y", ACCOUNT_A);
    T_CHECK(f && strcmp(f->meta.id, a.id) == 0);
    T_CHECK(s3s_kms_snapshot_find(s, "alias/team/x_1-y", ACCOUNT_B) == NULL);
    T_CHECK(s3s_kms_snapshot_find(s, "alias/nothing", ACCOUNT_A) == NULL);
    T_CHECK(s3s_kms_snapshot_find(s, "alias/", ACCOUNT_A) == NULL);

    /* A key ARN names its key whoever asks (cross-account use goes by ARN);
     * its account and region must be the key's. */
    f = s3s_kms_snapshot_find(s, b.arn, ACCOUNT_A);
    T_CHECK(f && strcmp(f->meta.id, b.id) == 0);
    f = s3s_kms_snapshot_find(s, a2.arn, ACCOUNT_B);
    T_CHECK(f && strcmp(f->meta.id, a2.id) == 0);
    char ref[256];
    snprintf(ref, sizeof(ref), "arn:aws:kms:eu-west-1:%s:key/%s", ACCOUNT_A, a.id);
    T_CHECK(s3s_kms_snapshot_find(s, ref, ACCOUNT_A) == NULL); /* wrong region */
    snprintf(ref, sizeof(ref), "arn:aws:kms:%s:%s:key/%s", REGION, ACCOUNT_B, a.id);
    T_CHECK(s3s_kms_snapshot_find(s, ref, ACCOUNT_A) == NULL); /* wrong account */
    snprintf(ref, sizeof(ref), "arn:aws-cn:kms:%s:%s:key/%s", REGION, ACCOUNT_A, a.id);
    T_CHECK(s3s_kms_snapshot_find(s, ref, ACCOUNT_A) == NULL);
    snprintf(ref, sizeof(ref), "%s/x", a.arn);
    T_CHECK(s3s_kms_snapshot_find(s, ref, ACCOUNT_A) == NULL);
    /* Alias ARNs: the alias of that account, and the key's region. */
    snprintf(ref, sizeof(ref), "arn:aws:kms:%s:%s:alias/docs", REGION, ACCOUNT_B);
    f = s3s_kms_snapshot_find(s, ref, ACCOUNT_A);
    T_CHECK(f && strcmp(f->meta.id, b.id) == 0);
    snprintf(ref, sizeof(ref), "arn:aws:kms:%s:%s:alias/docs", REGION, ACCOUNT_A);
    f = s3s_kms_snapshot_find(s, ref, ACCOUNT_B);
    T_CHECK(f && strcmp(f->meta.id, a.id) == 0);
    snprintf(ref, sizeof(ref), "arn:aws:kms:eu-west-1:%s:alias/docs", ACCOUNT_A);
    T_CHECK(s3s_kms_snapshot_find(s, ref, ACCOUNT_A) == NULL);
    snprintf(ref, sizeof(ref), "arn:aws:kms:%s:%s:alias/team/x_1-y", REGION, ACCOUNT_B);
    T_CHECK(s3s_kms_snapshot_find(s, ref, ACCOUNT_B) == NULL);
    /* Malformed references. */
    T_CHECK(s3s_kms_snapshot_find(s, "", ACCOUNT_A) == NULL);
    T_CHECK(s3s_kms_snapshot_find(s, "arn:aws:kms", ACCOUNT_A) == NULL);
    T_CHECK(s3s_kms_snapshot_find(s, "arn:aws:kms:us-east-1", ACCOUNT_A) == NULL);
    T_CHECK(s3s_kms_snapshot_find(s, NULL, ACCOUNT_A) == NULL);
    T_CHECK(s3s_kms_snapshot_find(NULL, a.id, ACCOUNT_A) == NULL);
    char upper[64];
    snprintf(upper, sizeof(upper), "%s", a.id);
    for (char *p = upper; *p; p++) {
        *p = (*p >= 'a' && *p <= 'f') ? (char)(*p - 32) : *p;
    }
    T_CHECK(s3s_kms_snapshot_find(s, upper, ACCOUNT_A) == NULL);
    /* By id alone, whatever the account (an upload id names its key so). */
    f = s3s_kms_snapshot_by_id(s, a.id);
    T_CHECK(f && strcmp(f->meta.arn, a.arn) == 0);
    T_CHECK(s3s_kms_snapshot_by_id(s, upper) == NULL && s3s_kms_snapshot_by_id(NULL, a.id) == NULL);

    /* By exact key ARN; an alias ARN is not a key ARN. */
    f = s3s_kms_snapshot_by_arn(s, s3s_cur_from_str(a.arn));
    T_CHECK(f && strcmp(f->meta.id, a.id) == 0);
    snprintf(ref, sizeof(ref), "arn:aws:kms:%s:%s:alias/docs", REGION, ACCOUNT_A);
    T_CHECK(s3s_kms_snapshot_by_arn(s, s3s_cur_from_str(ref)) == NULL);
    T_CHECK(s3s_kms_snapshot_by_arn(s, s3s_cur_from(a.arn, strlen(a.arn) - 1)) == NULL);
    const uint8_t *m = (const uint8_t *)1;
    T_ERR(s3s_kms_snap_material(f, 1, &m), S3S_ERR_KEY_NOT_FOUND); /* loaded without material */
    T_CHECK(m == NULL);
    s3s_kms_snapshot_free(s);

    s3s_kms_key_clean_up(&a);
    s3s_kms_key_clean_up(&b);
    s3s_kms_key_clean_up(&a2);
    s3s_keystore_close(ks);
}

static enum s3s_kms_state s_state(struct s3s_keystore *ks, const char *id)
{
    struct s3s_kms_key k;
    if (s3s_failed(s3s_kms_describe(ks, id, &k))) {
        return 0;
    }
    enum s3s_kms_state st = k.state;
    s3s_kms_key_clean_up(&k);
    return st;
}

static void test_states(void)
{
    char db[128];
    struct s3s_keystore *ks = s_open_new("states", db, sizeof(db));
    struct s3s_kms_key k, def;
    s_create(ks, ACCOUNT_A, "alias/doomed", &k);
    const char *none = "00000000-0000-4000-8000-000000000000";
    uint32_t v = 0;

    T_OK(s3s_kms_set_enabled(ks, k.id, false));
    T_CHECK(s_state(ks, k.id) == S3S_KMS_DISABLED);
    T_ERR(s3s_kms_rotate(ks, k.id, &v), S3S_ERR_KMS_DISABLED);
    T_ERR(s3s_kms_set_rotation(ks, k.id, 365 * DAY), S3S_ERR_KMS_DISABLED);
    T_OK(s3s_kms_set_enabled(ks, k.id, true));
    T_CHECK(s_state(ks, k.id) == S3S_KMS_ENABLED);
    T_OK(s3s_kms_set_enabled(ks, k.id, true)); /* already enabled: fine, as in AWS */
    T_ERR(s3s_kms_set_enabled(ks, none, false), S3S_ERR_KMS_NOT_FOUND);

    /* Scheduling: 7..30 days from the given now. */
    int64_t now = 1800000000, date = 0;
    T_ERR(s3s_kms_schedule_deletion(ks, k.id, 6, now, &date), S3S_ERR_INVALID_ARG);
    T_ERR(s3s_kms_schedule_deletion(ks, k.id, 31, now, &date), S3S_ERR_INVALID_ARG);
    T_ERR(s3s_kms_schedule_deletion(ks, none, 7, now, &date), S3S_ERR_KMS_NOT_FOUND);
    T_CHECK(s_state(ks, k.id) == S3S_KMS_ENABLED);
    T_OK(s3s_kms_schedule_deletion(ks, k.id, 7, now, &date));
    T_CHECK(date == now + 7 * DAY);
    struct s3s_kms_key d;
    T_OK(s3s_kms_describe(ks, k.id, &d));
    T_CHECK(d.state == S3S_KMS_PENDING_DELETION && d.deletion_date == date);
    s3s_kms_key_clean_up(&d);

    /* Pending deletion blocks everything but cancelling. */
    T_ERR(s3s_kms_set_enabled(ks, k.id, true), S3S_ERR_KMS_INVALID_STATE);
    T_ERR(s3s_kms_set_enabled(ks, k.id, false), S3S_ERR_KMS_INVALID_STATE);
    T_ERR(s3s_kms_rotate(ks, k.id, &v), S3S_ERR_KMS_INVALID_STATE);
    T_ERR(s3s_kms_schedule_deletion(ks, k.id, 30, now, &date), S3S_ERR_KMS_INVALID_STATE);
    T_ERR(s3s_kms_policy_put(ks, k.id, "{\"Statement\":[]}"), S3S_ERR_KMS_INVALID_STATE);
    T_ERR(s3s_kms_alias_create(ks, ACCOUNT_A, "alias/late", k.id), S3S_ERR_KMS_INVALID_STATE);
    T_CHECK(date == now + 7 * DAY);

    /* Cancelling leaves the key Disabled, as AWS does. */
    T_OK(s3s_kms_cancel_deletion(ks, k.id));
    T_OK(s3s_kms_describe(ks, k.id, &d));
    T_CHECK(d.state == S3S_KMS_DISABLED && d.deletion_date == 0);
    s3s_kms_key_clean_up(&d);
    T_ERR(s3s_kms_cancel_deletion(ks, k.id), S3S_ERR_KMS_INVALID_STATE);
    T_ERR(s3s_kms_cancel_deletion(ks, none), S3S_ERR_KMS_NOT_FOUND);

    /* The sweep destroys the key at its date, not before; with its
     * aliases, so the name is free again. */
    T_OK(s3s_kms_schedule_deletion(ks, k.id, 30, now, &date));
    size_t destroyed = 9;
    T_OK(s3s_kms_sweep(ks, date - 1, &destroyed, NULL, NULL));
    T_CHECK(destroyed == 0 && s_state(ks, k.id) == S3S_KMS_PENDING_DELETION);
    uint64_t gen = s_generation(ks);
    struct s_events ev = {0};
    T_OK(s3s_kms_sweep(ks, date, &destroyed, s_event, &ev));
    T_CHECK(destroyed == 1 && s_generation(ks) == gen + 1);
    /* Reported for the audit trail: the key's ARN, version 0 (destroyed). */
    T_CHECK(ev.n == 1 && ev.version == 0 && strcmp(ev.arn, k.arn) == 0);
    T_ERR(s3s_kms_describe(ks, k.id, &d), S3S_ERR_KMS_NOT_FOUND);
    T_ERR(s3s_kms_cancel_deletion(ks, k.id), S3S_ERR_KMS_NOT_FOUND);
    struct s3s_kms_snapshot *s = NULL;
    T_OK(s3s_kms_snapshot_load(ks, true, &s));
    T_CHECK(s->n_keys == 0 && s->n_aliases == 0);
    s3s_kms_snapshot_free(s);
    T_CHECK(s_raw_count(db, "SELECT COUNT(*) FROM kms_key_versions") == 0);
    struct s3s_kms_key again;
    s_create(ks, ACCOUNT_A, "alias/doomed", &again);
    s3s_kms_key_clean_up(&again);

    /* The default key cannot be deleted. */
    bool created = false;
    T_OK(s3s_kms_default_key(ks, ACCOUNT_A, REGION, S3S_KMS_DEFAULT_ROTATION_S, &def, &created));
    T_CHECK(created); /* made here: the audit trail says so */
    s3s_kms_key_clean_up(&def);
    T_OK(s3s_kms_default_key(ks, ACCOUNT_A, REGION, S3S_KMS_DEFAULT_ROTATION_S, &def, &created));
    T_CHECK(!created);
    T_ERR(s3s_kms_schedule_deletion(ks, def.id, 30, now, &date), S3S_ERR_KMS_INVALID_STATE);
    T_CHECK(s_state(ks, def.id) == S3S_KMS_ENABLED);
    T_CHECK(strcmp(s3s_kms_state_name(S3S_KMS_ENABLED), "Enabled") == 0 &&
            strcmp(s3s_kms_state_name(S3S_KMS_DISABLED), "Disabled") == 0 &&
            strcmp(s3s_kms_state_name(S3S_KMS_PENDING_DELETION), "PendingDeletion") == 0);

    s3s_kms_key_clean_up(&def);
    s3s_kms_key_clean_up(&k);
    s3s_keystore_close(ks);
}

/* Copies every key's material out of a snapshot with material. */
static void s_material(struct s3s_keystore *ks, const char *id, uint32_t version,
                       uint8_t out[32])
{
    struct s3s_kms_snapshot *s = NULL;
    memset(out, 0, 32);
    T_OK(s3s_kms_snapshot_load(ks, true, &s));
    const struct s3s_kms_snap_key *k = s ? s3s_kms_snapshot_find(s, id, ACCOUNT_A) : NULL;
    const uint8_t *m = NULL;
    T_CHECK(k != NULL);
    if (k) {
        T_OK(s3s_kms_snap_material(k, version, &m));
    }
    if (m) {
        memcpy(out, m, 32);
    }
    s3s_kms_snapshot_free(s);
}

static void test_rotation(void)
{
    char db[128];
    struct s3s_keystore *ks = s_open_new("rotation", db, sizeof(db));
    struct s3s_kms_key k, auto_k, off, disabled;
    s_create(ks, ACCOUNT_A, NULL, &k);
    uint8_t v1[32], v1b[32], v2[32], zero[32] = {0};
    s_material(ks, k.id, 1, v1);
    T_CHECK(memcmp(v1, zero, 32) != 0);

    /* On demand: a new version; the old one stays and differs. */
    uint32_t nv = 0;
    T_OK(s3s_kms_rotate(ks, k.id, &nv));
    T_CHECK(nv == 2);
    s_material(ks, k.id, 1, v1b);
    s_material(ks, k.id, 2, v2);
    T_CHECK(memcmp(v1, v1b, 32) == 0 && memcmp(v1, v2, 32) != 0);
    struct s3s_kms_snapshot *s = NULL;
    T_OK(s3s_kms_snapshot_load(ks, true, &s));
    const struct s3s_kms_snap_key *sk = s3s_kms_snapshot_find(s, k.id, ACCOUNT_A);
    const uint8_t *m = NULL;
    T_CHECK(sk && sk->meta.current_version == 2 && sk->material.len == 64);
    T_ERR(s3s_kms_snap_material(sk, 0, &m), S3S_ERR_KEY_NOT_FOUND);
    T_ERR(s3s_kms_snap_material(sk, 3, &m), S3S_ERR_KEY_NOT_FOUND);
    s3s_kms_snapshot_free(s);

    /* When due: a 90-day period rotates at 90 days from the newest
     * version, once however often it is asked at one moment. */
    struct s3s_kms_create_opts o = {
        .account = ACCOUNT_A, .region = REGION, .rotation_period_s = 90 * DAY};
    T_OK(s3s_kms_create(ks, &o, &auto_k));
    o.rotation_period_s = 0;
    T_OK(s3s_kms_create(ks, &o, &off));
    o.rotation_period_s = 90 * DAY;
    T_OK(s3s_kms_create(ks, &o, &disabled));
    T_OK(s3s_kms_set_enabled(ks, disabled.id, false));
    int64_t t0 = auto_k.current_created;
    size_t rotated = 9;
    uint64_t gen = s_generation(ks);
    T_OK(s3s_kms_rotate_due(ks, t0 + 90 * DAY - 1, &rotated, NULL, NULL));
    T_CHECK(rotated == 0 && s_generation(ks) == gen);
    struct s_events ev = {0};
    T_OK(s3s_kms_rotate_due(ks, t0 + 90 * DAY + 5, &rotated, s_event, &ev));
    T_CHECK(rotated == 1 && s_generation(ks) == gen + 1);
    T_CHECK(ev.n == 1 && ev.version == 2 && strcmp(ev.arn, auto_k.arn) == 0);
    T_OK(s3s_kms_rotate_due(ks, t0 + 90 * DAY + 5, &rotated, NULL, NULL));
    T_CHECK(rotated == 0);
    struct s3s_kms_key d;
    T_OK(s3s_kms_describe(ks, auto_k.id, &d));
    T_CHECK(d.current_version == 2 && d.current_created == t0 + 90 * DAY + 5);
    s3s_kms_key_clean_up(&d);
    T_OK(s3s_kms_rotate_due(ks, t0 + 180 * DAY + 5, &rotated, NULL, NULL));
    T_CHECK(rotated == 1);
    /* The others were never due: no period, or disabled. */
    T_OK(s3s_kms_describe(ks, off.id, &d));
    T_CHECK(d.current_version == 1);
    s3s_kms_key_clean_up(&d);
    T_OK(s3s_kms_describe(ks, disabled.id, &d));
    T_CHECK(d.current_version == 1);
    s3s_kms_key_clean_up(&d);

    /* Periods: AWS's bounds, and off. */
    T_ERR(s3s_kms_set_rotation(ks, off.id, DAY), S3S_ERR_INVALID_ARG);
    T_ERR(s3s_kms_set_rotation(ks, off.id, -1), S3S_ERR_INVALID_ARG);
    T_OK(s3s_kms_set_rotation(ks, off.id, 2560 * DAY));
    T_OK(s3s_kms_set_rotation(ks, auto_k.id, 0));
    T_OK(s3s_kms_describe(ks, auto_k.id, &d));
    T_CHECK(d.rotation_period_s == 0);
    s3s_kms_key_clean_up(&d);
    T_OK(s3s_kms_rotate_due(ks, t0 + 1000 * DAY, &rotated, NULL, NULL));
    T_CHECK(rotated == 0);

    s3s_kms_key_clean_up(&k);
    s3s_kms_key_clean_up(&auto_k);
    s3s_kms_key_clean_up(&off);
    s3s_kms_key_clean_up(&disabled);
    s3s_keystore_close(ks);
}

struct s_racer {
    const char *db;
    const char *account;
    pthread_barrier_t *start;
    char id[S3S_KMS_KEY_ID_LEN + 1];
    int failures;
};

/* One "process": its own handle, then the default key at the barrier. */
static void *s_racer_main(void *arg)
{
    struct s_racer *r = arg;
    char why[256] = "";
    struct s3s_keystore *ks = NULL;
    bool opened = s3s_is_ok(s3s_keystore_open(r->db, s_mk, false, &ks, why, sizeof(why)));
    pthread_barrier_wait(r->start);
    struct s3s_kms_key k;
    if (!opened ||
        s3s_failed(
            s3s_kms_default_key(ks, r->account, REGION, S3S_KMS_DEFAULT_ROTATION_S, &k, NULL))) {
        r->failures++;
    } else {
        memcpy(r->id, k.id, sizeof(r->id));
        s3s_kms_key_clean_up(&k);
    }
    s3s_keystore_close(ks);
    return NULL;
}

static void test_default_key_race(void)
{
    char db[128];
    struct s3s_keystore *ks = s_open_new("race", db, sizeof(db));
    static const char *const accounts[] = {"100000000001", "100000000002", "100000000003",
                                           "100000000004", "100000000005"};
    for (size_t round = 0; round < sizeof(accounts) / sizeof(accounts[0]); round++) {
        pthread_barrier_t start;
        pthread_barrier_init(&start, NULL, 2);
        struct s_racer r[2] = {{db, accounts[round], &start, "", 0},
                               {db, accounts[round], &start, "", 0}};
        pthread_t th[2];
        for (int i = 0; i < 2; i++) {
            T_CHECK(pthread_create(&th[i], NULL, s_racer_main, &r[i]) == 0);
        }
        for (int i = 0; i < 2; i++) {
            T_CHECK(pthread_join(th[i], NULL) == 0);
            T_CHECK(r[i].failures == 0);
        }
        pthread_barrier_destroy(&start);
        T_CHECK(r[0].id[0] && strcmp(r[0].id, r[1].id) == 0);
    }
    /* One key per account, each aws_managed with the alias aws/s3. */
    struct s3s_kms_snapshot *s = NULL;
    T_OK(s3s_kms_snapshot_load(ks, false, &s));
    T_CHECK(s->n_keys == 5 && s->n_aliases == 5);
    for (size_t i = 0; i < s->n_keys; i++) {
        const struct s3s_kms_key *k = &s->keys[i].meta;
        T_CHECK(k->aws_managed && k->n_aliases == 1 &&
                strcmp(k->aliases[0], S3S_KMS_DEFAULT_ALIAS) == 0);
        T_CHECK(k->rotation_period_s == S3S_KMS_DEFAULT_ROTATION_S);
    }
    const struct s3s_kms_snap_key *f = s3s_kms_snapshot_find(s, "alias/aws/s3", accounts[2]);
    T_CHECK(f && strcmp(f->meta.account, accounts[2]) == 0);
    /* Asked again: the same key, and no change. */
    uint64_t gen = s_generation(ks);
    struct s3s_kms_key k;
    T_OK(s3s_kms_default_key(ks, accounts[2], REGION, S3S_KMS_DEFAULT_ROTATION_S, &k, NULL));
    T_CHECK(f && strcmp(k.id, f->meta.id) == 0 && s_generation(ks) == gen);
    s3s_kms_key_clean_up(&k);
    s3s_kms_snapshot_free(s);
    T_ERR(s3s_kms_default_key(ks, "1", REGION, 0, &k, NULL), S3S_ERR_INVALID_ARG);
    s3s_keystore_close(ks);
}

static void test_generation(void)
{
    char db[128], why[256] = "";
    struct s3s_keystore *ks = s_open_new("generation", db, sizeof(db));
    struct s3s_keystore *other = NULL;
    T_OK(s3s_keystore_open(db, s_mk, false, &other, why, sizeof(why)));
    uint64_t g = s_generation(ks);
    T_CHECK(g == 0);
    struct s3s_kms_key k;
    s_create(ks, ACCOUNT_A, NULL, &k);
    T_CHECK(s_generation(ks) == ++g);
    T_CHECK(s_generation(other) == g); /* another process sees it at once */
    T_OK(s3s_kms_set_enabled(other, k.id, false));
    T_CHECK(s_generation(ks) == ++g);
    T_OK(s3s_kms_set_enabled(ks, k.id, true));
    T_CHECK(s_generation(ks) == ++g);
    uint32_t v = 0;
    T_OK(s3s_kms_rotate(ks, k.id, &v));
    T_CHECK(s_generation(ks) == ++g);
    T_OK(s3s_kms_alias_create(ks, ACCOUNT_A, "alias/g", k.id));
    T_CHECK(s_generation(ks) == ++g);
    T_OK(s3s_kms_alias_delete(ks, ACCOUNT_A, "alias/g"));
    T_CHECK(s_generation(ks) == ++g);
    T_OK(s3s_kms_policy_put(ks, k.id, "{\"Statement\":[]}"));
    T_CHECK(s_generation(ks) == ++g);
    T_OK(s3s_kms_set_rotation(ks, k.id, 100 * DAY));
    T_CHECK(s_generation(ks) == ++g);
    int64_t date = 0;
    T_OK(s3s_kms_schedule_deletion(ks, k.id, 7, (int64_t)time(NULL), &date));
    T_CHECK(s_generation(ks) == ++g);
    T_OK(s3s_kms_cancel_deletion(ks, k.id));
    T_CHECK(s_generation(ks) == ++g);

    /* Reads and refused changes do not count. */
    struct s3s_kms_key d;
    T_OK(s3s_kms_describe(ks, k.id, &d));
    s3s_kms_key_clean_up(&d);
    T_ERR(s3s_kms_rotate(ks, k.id, &v), S3S_ERR_KMS_DISABLED);
    T_ERR(s3s_kms_alias_delete(ks, ACCOUNT_A, "alias/g"), S3S_ERR_KMS_NOT_FOUND);
    size_t n = 0;
    T_OK(s3s_kms_sweep(ks, (int64_t)time(NULL), &n, NULL, NULL));
    T_CHECK(n == 0);
    struct s3s_kms_snapshot *s = NULL;
    T_OK(s3s_kms_snapshot_load(other, false, &s));
    T_CHECK(s->generation == g && s_generation(ks) == g);
    s3s_kms_snapshot_free(s);
    T_ERR(s3s_kms_generation(NULL, &g), S3S_ERR_INVALID_ARG);

    s3s_kms_key_clean_up(&k);
    s3s_keystore_close(other);
    s3s_keystore_close(ks);
}

static void test_material_persistence(void)
{
    char db[128], why[256] = "", other_mk[128];
    struct s3s_keystore *ks = s_open_new("persist", db, sizeof(db));
    struct s3s_kms_key a, b;
    s_create(ks, ACCOUNT_A, "alias/a", &a);
    s_create(ks, ACCOUNT_A, NULL, &b);
    uint32_t v = 0;
    T_OK(s3s_kms_rotate(ks, a.id, &v));
    uint8_t a1[32], a2[32], b1[32], again[32];
    s_material(ks, a.id, 1, a1);
    s_material(ks, a.id, 2, a2);
    s_material(ks, b.id, 1, b1);
    T_CHECK(memcmp(a1, b1, 32) != 0);
    s3s_keystore_close(ks);

    /* Reopened: the same material, every version. */
    T_OK(s3s_keystore_open(db, s_mk, false, &ks, why, sizeof(why)));
    s_material(ks, a.id, 1, again);
    T_CHECK(memcmp(again, a1, 32) == 0);
    s_material(ks, a.id, 2, again);
    T_CHECK(memcmp(again, a2, 32) == 0);
    s3s_keystore_close(ks);

    /* Another master key does not open the keystore. */
    snprintf(other_mk, sizeof(other_mk), "%s/other.key", s_dir);
    t_write_master_key(other_mk, 0x70);
    ks = NULL;
    T_ERR(s3s_keystore_open(db, other_mk, false, &ks, why, sizeof(why)), S3S_ERR_KEY_UNWRAP);
    T_CHECK(ks == NULL);

    /* Material is bound to its row: b's sealed bytes moved into a's
     * version 1 do not open there, and the snapshot refuses to load
     * rather than hand out a wrong key. Metadata alone still loads. */
    char sql[512];
    snprintf(sql, sizeof(sql),
             "UPDATE kms_key_versions SET sealed = (SELECT sealed FROM kms_key_versions "
             "WHERE key_id = '%s' AND version = 1) WHERE key_id = '%s' AND version = 1",
             b.id, a.id);
    s_raw_exec(db, sql);
    T_OK(s3s_keystore_open(db, s_mk, false, &ks, why, sizeof(why)));
    struct s3s_kms_snapshot *s = (struct s3s_kms_snapshot *)1;
    T_ERR(s3s_kms_snapshot_load(ks, true, &s), S3S_ERR_KEY_UNWRAP);
    T_CHECK(s == NULL);
    T_OK(s3s_kms_snapshot_load(ks, false, &s));
    s3s_kms_snapshot_free(s);
    /* A missing version is a damaged file, not a shorter key. */
    snprintf(sql, sizeof(sql),
             "DELETE FROM kms_key_versions WHERE key_id = '%s' AND version = 1", a.id);
    s_raw_exec(db, sql);
    T_ERR(s3s_kms_snapshot_load(ks, true, &s), S3S_ERR_KEYSTORE);

    s3s_kms_key_clean_up(&a);
    s3s_kms_key_clean_up(&b);
    s3s_keystore_close(ks);
}

static void test_alias_rules(void)
{
    char db[128];
    struct s3s_keystore *ks = s_open_new("aliases", db, sizeof(db));
    struct s3s_kms_key a, b, def, k;
    s_create(ks, ACCOUNT_A, "alias/one", &a);
    s_create(ks, ACCOUNT_B, NULL, &b);
    T_OK(s3s_kms_default_key(ks, ACCOUNT_A, REGION, S3S_KMS_DEFAULT_ROTATION_S, &def, NULL));

    /* Reserved, duplicate, malformed. */
    T_ERR(s3s_kms_alias_create(ks, ACCOUNT_A, "alias/aws/mine", a.id), S3S_ERR_INVALID_ARG);
    T_ERR(s3s_kms_alias_create(ks, ACCOUNT_A, "alias/aws/s3", a.id), S3S_ERR_INVALID_ARG);
    T_ERR(s3s_kms_alias_create(ks, ACCOUNT_A, "alias/one", a.id), S3S_ERR_KMS_ALREADY_EXISTS);
    T_OK(s3s_kms_alias_create(ks, ACCOUNT_B, "alias/one", b.id)); /* per account */
    static const char *const bad[] = {"one", "alias/", "alias/with space", "alias/a:b",
                                      "alias/é", "Alias/x", "alias/a.b", ""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        T_ERR(s3s_kms_alias_create(ks, ACCOUNT_A, bad[i], a.id), S3S_ERR_INVALID_ARG);
        T_CHECK(!s3s_kms_alias_name_valid(bad[i]));
    }
    T_CHECK(!s3s_kms_alias_name_valid(NULL));
    char name[300] = "alias/";
    memset(name + 6, 'n', 250);
    T_OK(s3s_kms_alias_create(ks, ACCOUNT_A, name, a.id));
    name[6 + 250] = 'n';
    T_ERR(s3s_kms_alias_create(ks, ACCOUNT_A, name, a.id), S3S_ERR_INVALID_ARG);
    T_OK(s3s_kms_alias_create(ks, ACCOUNT_A, "alias/A-z_0/9", a.id));

    /* The key must be a customer key of the alias's account. */
    T_ERR(s3s_kms_alias_create(ks, ACCOUNT_A, "alias/theirs", b.id), S3S_ERR_KMS_NOT_FOUND);
    T_ERR(s3s_kms_alias_create(ks, ACCOUNT_A, "alias/def", def.id), S3S_ERR_INVALID_ARG);
    T_ERR(s3s_kms_alias_create(ks, ACCOUNT_A, "alias/none", "nope"), S3S_ERR_KMS_NOT_FOUND);
    T_ERR(s3s_kms_alias_create(ks, "bad", "alias/x", a.id), S3S_ERR_INVALID_ARG);

    /* create with an existing alias or a reserved one makes nothing. */
    struct s3s_kms_snapshot *s = NULL;
    T_OK(s3s_kms_snapshot_load(ks, false, &s));
    size_t keys = s->n_keys;
    s3s_kms_snapshot_free(s);
    struct s3s_kms_create_opts o = {.account = ACCOUNT_A, .region = REGION, .alias = "alias/one"};
    T_ERR(s3s_kms_create(ks, &o, &k), S3S_ERR_KMS_ALREADY_EXISTS);
    T_CHECK(k.arn == NULL);
    o.alias = "alias/aws/x";
    T_ERR(s3s_kms_create(ks, &o, &k), S3S_ERR_INVALID_ARG);
    o.alias = "alias/bad name";
    T_ERR(s3s_kms_create(ks, &o, &k), S3S_ERR_INVALID_ARG);
    T_OK(s3s_kms_snapshot_load(ks, false, &s));
    T_CHECK(s->n_keys == keys);
    s3s_kms_snapshot_free(s);

    /* Deleting: only what exists; never the reserved ones. */
    T_OK(s3s_kms_alias_delete(ks, ACCOUNT_A, "alias/one"));
    T_ERR(s3s_kms_alias_delete(ks, ACCOUNT_A, "alias/one"), S3S_ERR_KMS_NOT_FOUND);
    T_ERR(s3s_kms_alias_delete(ks, ACCOUNT_A, "alias/aws/s3"), S3S_ERR_INVALID_ARG);
    T_OK(s3s_kms_snapshot_load(ks, false, &s));
    T_CHECK(s3s_kms_snapshot_find(s, "alias/one", ACCOUNT_A) == NULL);
    T_CHECK(s3s_kms_snapshot_find(s, "alias/one", ACCOUNT_B) != NULL);
    T_CHECK(s3s_kms_snapshot_find(s, "alias/aws/s3", ACCOUNT_A) != NULL);
    s3s_kms_snapshot_free(s);

    struct s3s_buf arn;
    T_OK(s3s_buf_init(&arn, 0, 512));
    T_OK(s3s_kms_alias_arn(REGION, ACCOUNT_A, "alias/one", &arn));
    T_BUFEQ(arn, "arn:aws:kms:us-east-1:111122223333:alias/one");
    s3s_buf_clean_up(&arn);

    s3s_kms_key_clean_up(&a);
    s3s_kms_key_clean_up(&b);
    s3s_kms_key_clean_up(&def);
    s3s_keystore_close(ks);
}

static void test_policies(void)
{
    char db[128];
    struct s3s_keystore *ks = s_open_new("policies", db, sizeof(db));
    struct s3s_kms_key k, p;
    s_create(ks, ACCOUNT_A, NULL, &k);
    char *got = (char *)1;
    T_OK(s3s_kms_policy_get(ks, k.id, &got));
    T_CHECK(got == NULL); /* the default policy */
    const char *doc = "{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Allow\","
                      "\"Principal\":{\"AWS\":\"444455556666\"},\"Action\":\"kms:Decrypt\","
                      "\"Resource\":\"*\"}]}";
    T_OK(s3s_kms_policy_put(ks, k.id, doc));
    T_OK(s3s_kms_policy_get(ks, k.id, &got));
    T_STREQ(got, doc);
    s3s_free(&got);
    T_ERR(s3s_kms_policy_get(ks, "nope", &got), S3S_ERR_KMS_NOT_FOUND);
    T_ERR(s3s_kms_policy_put(ks, "nope", doc), S3S_ERR_KMS_NOT_FOUND);
    T_ERR(s3s_kms_policy_put(ks, k.id, NULL), S3S_ERR_INVALID_ARG);
    char *big = calloc(1, S3S_POLICY_MAX_LEN + 2);
    memset(big, ' ', S3S_POLICY_MAX_LEN + 1);
    T_ERR(s3s_kms_policy_put(ks, k.id, big), S3S_ERR_KMS_MALFORMED_POLICY);
    free(big);

    struct s3s_kms_create_opts o = {.account = ACCOUNT_A, .region = REGION, .policy = doc};
    T_OK(s3s_kms_create(ks, &o, &p));
    T_STREQ(p.policy, doc);
    struct s3s_kms_snapshot *s = NULL;
    T_OK(s3s_kms_snapshot_load(ks, false, &s));
    const struct s3s_kms_snap_key *f = s3s_kms_snapshot_find(s, p.id, ACCOUNT_A);
    T_CHECK(f && f->meta.policy && strcmp(f->meta.policy, doc) == 0);
    s3s_kms_snapshot_free(s);

    struct s3s_buf b;
    T_OK(s3s_buf_init(&b, 0, 4096));
    T_OK(s3s_kms_default_policy(ACCOUNT_A, &b));
    T_BUFEQ(b, "{\"Version\":\"2012-10-17\",\"Id\":\"key-default-1\",\"Statement\":[{\"Sid\":"
               "\"Enable IAM User Permissions\",\"Effect\":\"Allow\",\"Principal\":{\"AWS\":"
               "\"arn:aws:iam::111122223333:root\"},\"Action\":\"kms:*\",\"Resource\":\"*\"}]}");
    T_ERR(s3s_kms_default_policy("x", &b), S3S_ERR_INVALID_ARG);
    s3s_buf_clean_up(&b);

    s3s_kms_key_clean_up(&k);
    s3s_kms_key_clean_up(&p);
    s3s_keystore_close(ks);
}

static const char *s_json_str(struct json_object *o, const char *name)
{
    struct json_object *v = NULL;
    return json_object_object_get_ex(o, name, &v) && json_object_is_type(v, json_type_string)
               ? json_object_get_string(v)
               : NULL;
}

static void test_key_json(void)
{
    char db[128];
    struct s3s_keystore *ks = s_open_new("json", db, sizeof(db));
    struct s3s_kms_create_opts o = {
        .account = ACCOUNT_A,
        .region = REGION,
        .description = "quote \" backslash \\ newline \n tab \t caf\xc3\xa9 \xe2\x9c\x93",
        .alias = "alias/json/a",
        .rotation_period_s = 365 * DAY,
    };
    struct s3s_kms_key k, def;
    T_OK(s3s_kms_create(ks, &o, &k));
    struct s3s_buf b;
    T_OK(s3s_buf_init(&b, 0, 1 << 16));
    T_OK(s3s_kms_key_json(&k, &b));
    const char *text = NULL;
    T_OK(s3s_buf_cstr(&b, &text));
    T_CHECK(strstr(text, ":key/") != NULL); /* '/' is not escaped */
    struct json_object *j = json_tokener_parse(text);
    T_CHECK(j && json_object_is_type(j, json_type_object));
    T_STREQ(s_json_str(j, "KeyId"), k.id);
    T_STREQ(s_json_str(j, "Arn"), k.arn);
    T_STREQ(s_json_str(j, "AWSAccountId"), ACCOUNT_A);
    T_STREQ(s_json_str(j, "Description"), o.description);
    T_STREQ(s_json_str(j, "KeyUsage"), "ENCRYPT_DECRYPT");
    T_STREQ(s_json_str(j, "KeyState"), "Enabled");
    T_STREQ(s_json_str(j, "KeyManager"), "CUSTOMER");
    T_STREQ(s_json_str(j, "KeySpec"), "SYMMETRIC_DEFAULT");
    T_STREQ(s_json_str(j, "CustomerMasterKeySpec"), "SYMMETRIC_DEFAULT");
    T_STREQ(s_json_str(j, "Origin"), "AWS_KMS");
    struct json_object *v = NULL;
    T_CHECK(json_object_object_get_ex(j, "CreationDate", &v) &&
            json_object_is_type(v, json_type_int) && json_object_get_int64(v) == k.created);
    T_CHECK(json_object_object_get_ex(j, "Enabled", &v) && json_object_get_boolean(v));
    T_CHECK(json_object_object_get_ex(j, "MultiRegion", &v) &&
            json_object_is_type(v, json_type_boolean) && !json_object_get_boolean(v));
    T_CHECK(!json_object_object_get_ex(j, "DeletionDate", &v));
    T_CHECK(json_object_object_get_ex(j, "EncryptionAlgorithms", &v) &&
            json_object_array_length(v) == 1 &&
            strcmp(json_object_get_string(json_object_array_get_idx(v, 0)),
                   "SYMMETRIC_DEFAULT") == 0);
    T_CHECK(json_object_object_get_ex(j, "Aliases", &v) && json_object_array_length(v) == 1 &&
            strcmp(json_object_get_string(json_object_array_get_idx(v, 0)), "alias/json/a") ==
                0);
    T_CHECK(json_object_object_get_ex(j, "CurrentKeyVersion", &v) &&
            json_object_get_int(v) == 1);
    T_CHECK(json_object_object_get_ex(j, "RotationPeriodInDays", &v) &&
            json_object_get_int(v) == 365);
    json_object_put(j);

    /* Pending deletion: disabled, with its date; rotation off is null. */
    T_OK(s3s_kms_set_rotation(ks, k.id, 0));
    int64_t date = 0;
    T_OK(s3s_kms_schedule_deletion(ks, k.id, 10, 1800000000, &date));
    s3s_kms_key_clean_up(&k);
    struct s3s_kms_snapshot *s = NULL;
    T_OK(s3s_kms_snapshot_load(ks, false, &s));
    const struct s3s_kms_snap_key *f = s3s_kms_snapshot_find(s, "alias/json/a", ACCOUNT_A);
    T_CHECK(f != NULL);
    s3s_buf_reset(&b);
    if (f) {
        T_OK(s3s_kms_key_json(&f->meta, &b));
    }
    T_OK(s3s_buf_cstr(&b, &text));
    j = json_tokener_parse(text);
    T_STREQ(s_json_str(j, "KeyState"), "PendingDeletion");
    T_CHECK(json_object_object_get_ex(j, "Enabled", &v) && !json_object_get_boolean(v));
    T_CHECK(json_object_object_get_ex(j, "DeletionDate", &v) && json_object_get_int64(v) == date);
    T_CHECK(json_object_object_get_ex(j, "RotationPeriodInDays", &v) && v == NULL);
    json_object_put(j);
    s3s_kms_snapshot_free(s);

    /* The default key is AWS managed. */
    T_OK(s3s_kms_default_key(ks, ACCOUNT_A, REGION, S3S_KMS_DEFAULT_ROTATION_S, &def, NULL));
    s3s_buf_reset(&b);
    T_OK(s3s_kms_key_json(&def, &b));
    T_OK(s3s_buf_cstr(&b, &text));
    j = json_tokener_parse(text);
    T_STREQ(s_json_str(j, "KeyManager"), "AWS");
    T_CHECK(json_object_object_get_ex(j, "Aliases", &v) &&
            strcmp(json_object_get_string(json_object_array_get_idx(v, 0)), "alias/aws/s3") ==
                0);
    json_object_put(j);
    s3s_kms_key_clean_up(&def);
    T_ERR(s3s_kms_key_json(&k, &b), S3S_ERR_INVALID_ARG); /* an empty key has no ARN */

    s3s_buf_clean_up(&b);
    s3s_kms_key_clean_up(&k);
    s3s_keystore_close(ks);
}

/* Every allocation failing from the Nth on, for every N: a clean error, no
 * leak, and no half-made change. */
static void test_allocation_failures(void)
{
    char db[128];
    struct s3s_keystore *ks = s_open_new("nomem", db, sizeof(db));
    struct s3s_kms_key a, b, k;
    s_create(ks, ACCOUNT_A, "alias/a", &a);
    s_create(ks, ACCOUNT_A, "alias/b", &b);
    uint32_t v = 0;
    T_OK(s3s_kms_rotate(ks, a.id, &v));
    long live = s3s_mem_live();
    bool done = false;
    for (long n = 0; n < 1000 && !done; n++) {
        struct s3s_kms_snapshot *s = NULL;
        s3s_mem_fail_after(n);
        s3s_result r = s3s_kms_snapshot_load(ks, true, &s);
        s3s_mem_fail_after(-1);
        done = s3s_is_ok(r);
        T_CHECK(done || (r.code == S3S_ERR_NOMEM && s == NULL));
        s3s_kms_snapshot_free(s);
        T_CHECK(s3s_mem_live() == live);
    }
    T_CHECK(done);
    done = false;
    for (long n = 0; n < 1000 && !done; n++) {
        struct s3s_kms_create_opts o = {.account = ACCOUNT_A, .region = REGION,
                                        .alias = "alias/late", .description = "d"};
        s3s_mem_fail_after(n);
        s3s_result r = s3s_kms_create(ks, &o, &k);
        s3s_mem_fail_after(-1);
        done = s3s_is_ok(r);
        T_CHECK(done || (r.code == S3S_ERR_NOMEM && k.arn == NULL));
        if (!done) {
            /* Rolled back: the alias is still free. */
            struct s3s_kms_snapshot *s = NULL;
            T_OK(s3s_kms_snapshot_load(ks, false, &s));
            T_CHECK(s && s->n_keys == 2 &&
                    s3s_kms_snapshot_find(s, "alias/late", ACCOUNT_A) == NULL);
            s3s_kms_snapshot_free(s);
        }
        s3s_kms_key_clean_up(&k);
        T_CHECK(s3s_mem_live() == live);
    }
    T_CHECK(done);
    done = false;
    for (long n = 0; n < 1000 && !done; n++) {
        struct s3s_buf out;
        T_OK(s3s_buf_init(&out, 0, 1 << 16));
        s3s_mem_fail_after(n);
        s3s_result r = s3s_kms_describe(ks, a.id, &k);
        if (s3s_is_ok(r)) {
            r = s3s_kms_key_json(&k, &out);
        }
        s3s_mem_fail_after(-1);
        done = s3s_is_ok(r);
        T_CHECK(done || r.code == S3S_ERR_NOMEM || r.code == S3S_ERR_TOO_BIG);
        s3s_kms_key_clean_up(&k);
        s3s_buf_clean_up(&out);
        T_CHECK(s3s_mem_live() == live);
    }
    T_CHECK(done);
    s3s_kms_key_clean_up(&a);
    s3s_kms_key_clean_up(&b);
    s3s_keystore_close(ks);
}

/* A keystore made before KMS keys existed gains their tables when opened. */
static void test_upgrade(void)
{
    char db[128], why[256] = "";
    struct s3s_keystore *ks = s_open_new("upgrade", db, sizeof(db));
    s3s_keystore_close(ks);
    s_raw_exec(db, "DROP TABLE kms_keys");
    s_raw_exec(db, "DROP TABLE kms_key_versions");
    s_raw_exec(db, "DROP TABLE kms_aliases");
    T_OK(s3s_keystore_open(db, s_mk, false, &ks, why, sizeof(why)));
    struct s3s_kms_key k;
    s_create(ks, ACCOUNT_A, "alias/new", &k);
    uint32_t v = 0;
    struct s3s_secret root = {0};
    T_OK(s3s_keystore_root_current(ks, &v, &root)); /* the root keys are untouched */
    T_CHECK(v == 1);
    s3s_secret_destroy(&root);
    s3s_kms_key_clean_up(&k);
    s3s_keystore_close(ks);
}

int main(int argc, char **argv)
{
    snprintf(s_dir, sizeof(s_dir), "/tmp/s3seal-kms-XXXXXX");
    T_CHECK(mkdtemp(s_dir) != NULL);
    ks_test_init(argc, argv, "kms", s_dir);
    snprintf(s_mk, sizeof(s_mk), "%s/master.key", s_dir);
    t_write_master_key(s_mk, 0x30);
    test_create_describe();
    test_snapshot_resolution();
    test_states();
    test_rotation();
    test_default_key_race();
    test_generation();
    test_material_persistence();
    test_alias_rules();
    test_policies();
    test_key_json();
    test_allocation_failures();
    test_upgrade();
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", s_dir);
    T_CHECK(system(cmd) == 0);
    return t_finish(ks_test_pg() ? "keystore.pg.kms" : "keystore.kms");
}
