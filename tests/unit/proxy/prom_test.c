/*
 * prom_test.c - the Prometheus text exposition writer: HELP and TYPE lines,
 * label values and HELP text escaped as the format asks, values written
 * exactly, and histograms whose _bucket lines are cumulative, end with
 * le="+Inf" equal to _count, with _sum as given.
 */
#include <math.h>

#include "proxy/prom.h"
#include "testlib.h"

static void test_family_and_samples(void)
{
    struct s3s_buf b;
    T_OK(s3s_buf_init(&b, 0, 1 << 20));
    T_OK(s3s_prom_family(&b, "x_total", "a \\ back\nslash \"quoted\"", "counter"));
    T_BUFEQ(b, "# HELP x_total a \\\\ back\\nslash \"quoted\"\n# TYPE x_total counter\n");
    s3s_buf_reset(&b);
    T_OK(s3s_prom_sample_u64(&b, "x_total", NULL, 0, UINT64_MAX));
    T_BUFEQ(b, "x_total 18446744073709551615\n");
    s3s_buf_reset(&b);
    struct s3s_prom_label l[] = {{"bucket", "a\"b\\c\nd"}, {"op", ""}};
    T_OK(s3s_prom_sample_i64(&b, "g", l, 2, -5));
    T_BUFEQ(b, "g{bucket=\"a\\\"b\\\\c\\nd\",op=\"\"} -5\n");
    s3s_buf_reset(&b);
    T_OK(s3s_prom_sample_double(&b, "d", NULL, 0, 0.1));
    T_OK(s3s_prom_sample_double(&b, "d", NULL, 0, 1.0 / 3.0));
    T_OK(s3s_prom_sample_double(&b, "d", NULL, 0, NAN));
    T_OK(s3s_prom_sample_double(&b, "d", NULL, 0, -INFINITY));
    T_OK(s3s_prom_sample_double(&b, "d", NULL, 0, 1796675809.0187089));
    T_BUFEQ(b, "d 0.1\nd 0.33333333333333331\nd NaN\nd -Inf\nd 1796675809.0187089\n");
    /* A value that does not fit is an error, not a truncated line. */
    struct s3s_buf small;
    T_OK(s3s_buf_init(&small, 0, 8));
    T_CHECK(s3s_failed(s3s_prom_sample_u64(&small, "long_name_total", NULL, 0, 1)));
    s3s_buf_clean_up(&small);
    s3s_buf_clean_up(&b);
}

/* Reads the value of the line `prefix` (up to the space) in `text`. */
static double s_value(const char *text, const char *prefix)
{
    size_t pl = strlen(prefix);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        if (strncmp(p, prefix, pl) == 0 && p[pl] == ' ') {
            return strtod(p + pl + 1, NULL);
        }
    }
    return -1;
}

static void test_histogram(void)
{
    struct s3s_buf b;
    T_OK(s3s_buf_init(&b, 0, 1 << 20));
    const double bounds[] = {0.005, 0.5, 2.5};
    const uint64_t counts[] = {3, 0, 4, 2}; /* the last: above 2.5 */
    struct s3s_prom_label l[] = {{"operation", "Put\"Object"}};
    T_OK(s3s_prom_histogram(&b, "lat_seconds", l, 1, bounds, 3, counts, 12.25));
    T_BUFEQ(b, "lat_seconds_bucket{operation=\"Put\\\"Object\",le=\"0.005\"} 3\n"
               "lat_seconds_bucket{operation=\"Put\\\"Object\",le=\"0.5\"} 3\n"
               "lat_seconds_bucket{operation=\"Put\\\"Object\",le=\"2.5\"} 7\n"
               "lat_seconds_bucket{operation=\"Put\\\"Object\",le=\"+Inf\"} 9\n"
               "lat_seconds_sum{operation=\"Put\\\"Object\"} 12.25\n"
               "lat_seconds_count{operation=\"Put\\\"Object\"} 9\n");
    const char *t = NULL;
    T_OK(s3s_buf_cstr(&b, &t));
    /* Cumulative, and +Inf is the count. */
    double prev = 0;
    const char *les[] = {"0.005", "0.5", "2.5", "+Inf"};
    for (size_t i = 0; i < 4; i++) {
        char prefix[128];
        snprintf(prefix, sizeof(prefix), "lat_seconds_bucket{operation=\"Put\\\"Object\",le=\"%s\"}",
                 les[i]);
        double v = s_value(t, prefix);
        T_CHECK(v >= prev);
        prev = v;
    }
    T_CHECK(prev == s_value(t, "lat_seconds_count{operation=\"Put\\\"Object\"}"));
    /* No labels of its own: le is the only one. */
    s3s_buf_reset(&b);
    const uint64_t none[] = {0, 0, 0, 0};
    T_OK(s3s_prom_histogram(&b, "h", NULL, 0, bounds, 3, none, 0));
    T_BUFEQ(b, "h_bucket{le=\"0.005\"} 0\nh_bucket{le=\"0.5\"} 0\nh_bucket{le=\"2.5\"} 0\n"
               "h_bucket{le=\"+Inf\"} 0\nh_sum 0\nh_count 0\n");
    s3s_buf_clean_up(&b);
}

int main(void)
{
    test_family_and_samples();
    test_histogram();
    return t_finish("proxy.prom");
}
