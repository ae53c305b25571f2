/*
 * prom.c - the Prometheus text exposition format (prom.h).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/prom.h"

#define S_MAX_LABELS 8

/* A label value or HELP text, escaped: backslash and line feed always,
 * double quote in label values. */
static s3s_result s_escaped(struct s3s_buf *out, const char *s, bool quote)
{
    for (const char *p = s; *p; p++) {
        if (*p == '\\') {
            S3S_GUARD(s3s_buf_append_str(out, "\\\\"));
        } else if (*p == '\n') {
            S3S_GUARD(s3s_buf_append_str(out, "\\n"));
        } else if (quote && *p == '"') {
            S3S_GUARD(s3s_buf_append_str(out, "\\\""));
        } else {
            S3S_GUARD(s3s_buf_append_byte(out, (uint8_t)*p));
        }
    }
    return s3s_ok();
}

s3s_result s3s_prom_family(struct s3s_buf *out, const char *name, const char *help,
                           const char *type)
{
    S3S_GUARD(s3s_buf_appendf(out, "# HELP %s ", name));
    S3S_GUARD(s_escaped(out, help, false));
    return s3s_buf_appendf(out, "\n# TYPE %s %s\n", name, type);
}

static s3s_result s_head(struct s3s_buf *out, const char *name,
                         const struct s3s_prom_label *labels, size_t n)
{
    S3S_GUARD(s3s_buf_append_str(out, name));
    if (n == 0) {
        return s3s_buf_append_byte(out, ' ');
    }
    for (size_t i = 0; i < n; i++) {
        S3S_GUARD(s3s_buf_appendf(out, "%s%s=\"", i ? "," : "{", labels[i].name));
        S3S_GUARD(s_escaped(out, labels[i].value ? labels[i].value : "", true));
        S3S_GUARD(s3s_buf_append_byte(out, '"'));
    }
    return s3s_buf_append_str(out, "} ");
}

s3s_result s3s_prom_sample_u64(struct s3s_buf *out, const char *name,
                               const struct s3s_prom_label *labels, size_t n, uint64_t value)
{
    S3S_GUARD(s_head(out, name, labels, n));
    return s3s_buf_appendf(out, "%llu\n", (unsigned long long)value);
}

s3s_result s3s_prom_sample_i64(struct s3s_buf *out, const char *name,
                               const struct s3s_prom_label *labels, size_t n, int64_t value)
{
    S3S_GUARD(s_head(out, name, labels, n));
    return s3s_buf_appendf(out, "%lld\n", (long long)value);
}

static s3s_result s_double(struct s3s_buf *out, double v)
{
    if (isnan(v)) {
        return s3s_buf_append_str(out, "NaN");
    }
    if (isinf(v)) {
        return s3s_buf_append_str(out, v > 0 ? "+Inf" : "-Inf");
    }
    /* The shortest of 15 and 17 digits that reads back as the same value. */
    char t[40];
    snprintf(t, sizeof(t), "%.15g", v);
    if (strtod(t, NULL) != v) {
        snprintf(t, sizeof(t), "%.17g", v);
    }
    return s3s_buf_append_str(out, t);
}

s3s_result s3s_prom_sample_double(struct s3s_buf *out, const char *name,
                                  const struct s3s_prom_label *labels, size_t n, double value)
{
    S3S_GUARD(s_head(out, name, labels, n));
    S3S_GUARD(s_double(out, value));
    return s3s_buf_append_byte(out, '\n');
}

s3s_result s3s_prom_histogram(struct s3s_buf *out, const char *name,
                              const struct s3s_prom_label *labels, size_t n,
                              const double *bounds, size_t nb, const uint64_t *counts,
                              double sum)
{
    S3S_ENSURE(n < S_MAX_LABELS, S3S_ERR_INVALID_ARG);
    struct s3s_prom_label ls[S_MAX_LABELS + 1];
    if (n) {
        memcpy(ls, labels, n * sizeof(*ls));
    }
    char series[128], le[64];
    int sl = snprintf(series, sizeof(series), "%s_bucket", name);
    S3S_ENSURE(sl > 0 && (size_t)sl < sizeof(series), S3S_ERR_INVALID_ARG);
    uint64_t cum = 0;
    for (size_t i = 0; i <= nb; i++) {
        cum += counts[i];
        if (i < nb) {
            snprintf(le, sizeof(le), "%.15g", bounds[i]);
        } else {
            snprintf(le, sizeof(le), "+Inf");
        }
        ls[n] = (struct s3s_prom_label){"le", le};
        S3S_GUARD(s3s_prom_sample_u64(out, series, ls, n + 1, cum));
    }
    snprintf(series, sizeof(series), "%s_sum", name);
    S3S_GUARD(s3s_prom_sample_double(out, series, labels, n, sum));
    snprintf(series, sizeof(series), "%s_count", name);
    return s3s_prom_sample_u64(out, series, labels, n, cum);
}
