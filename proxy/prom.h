/*
 * prom.h - the Prometheus text exposition format, version 0.0.4: a metric
 * family's HELP and TYPE lines, samples with escaped label values, and
 * histograms whose _bucket lines are cumulative and end with le="+Inf"
 * equal to _count. The metrics module (metrics.c) writes its scrape with
 * these; they know nothing of s3seal's counters.
 */
#ifndef S3S_PROM_H
#define S3S_PROM_H

#include "common/common.h"

/* The content type of a scrape in this format. */
#define S3S_PROM_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* A label: its name (a valid label name, chosen by s3seal) and its value
 * (any bytes; escaped as the format asks: backslash, double quote, line
 * feed). */
struct s3s_prom_label {
    const char *name;
    const char *value;
};

/* "# HELP name help" (backslash and line feed escaped) and "# TYPE name
 * type" (counter, gauge, histogram, untyped). */
S3S_RESULT s3s_prom_family(struct s3s_buf *out, const char *name, const char *help,
                           const char *type);

/* One sample line: name{labels} value. Integral values are written exactly;
 * doubles in the fewest digits (15 or 17) that read back as the same
 * value, NaN and infinities as the format spells them. */
S3S_RESULT s3s_prom_sample_u64(struct s3s_buf *out, const char *name,
                               const struct s3s_prom_label *labels, size_t n, uint64_t value);
S3S_RESULT s3s_prom_sample_i64(struct s3s_buf *out, const char *name,
                               const struct s3s_prom_label *labels, size_t n, int64_t value);
S3S_RESULT s3s_prom_sample_double(struct s3s_buf *out, const char *name,
                                  const struct s3s_prom_label *labels, size_t n, double value);

/* A histogram's samples for one label set: `counts[i]` observations fell in
 * (bounds[i-1], bounds[i]] for i < nb, counts[nb] above the last bound
 * (not cumulative: the writer sums them). Writes name_bucket{labels,le=..}
 * for each bound and +Inf, name_sum and name_count. At most 8 labels. */
S3S_RESULT s3s_prom_histogram(struct s3s_buf *out, const char *name,
                              const struct s3s_prom_label *labels, size_t n,
                              const double *bounds, size_t nb, const uint64_t *counts,
                              double sum);

#endif
