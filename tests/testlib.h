/*
 * testlib.h - the unit-test harness: assertion macros that report file and
 * line, and a leak check of s3seal's counting allocator at the end of main.
 */
#ifndef S3S_TESTLIB_H
#define S3S_TESTLIB_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"

extern int g_test_failures;
extern int g_test_checks;

#define T_CHECK(cond)                                                                   \
    do {                                                                                \
        g_test_checks++;                                                                \
        if (!(cond)) {                                                                  \
            g_test_failures++;                                                          \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);    \
        }                                                                               \
    } while (0)
#define T_OK(expr) T_CHECK(s3s_is_ok(expr))
#define T_ERR(expr, e) T_CHECK((expr).code == (e))
#define T_STREQ(a, b)                                                                   \
    do {                                                                                \
        g_test_checks++;                                                                \
        const char *t__a = (a), *t__b = (b);                                            \
        if (!t__a || !t__b || strcmp(t__a, t__b) != 0) {                                \
            g_test_failures++;                                                          \
            fprintf(stderr, "%s:%d: expected\n  \"%s\"\ngot\n  \"%s\"\n", __FILE__,     \
                    __LINE__, t__b ? t__b : "(null)", t__a ? t__a : "(null)");          \
        }                                                                               \
    } while (0)
/* Compares a buffer's bytes with a C string. */
#define T_BUFEQ(buf, s)                                                                 \
    do {                                                                                \
        const char *t__s;                                                               \
        T_OK(s3s_buf_cstr(&(buf), &t__s));                                              \
        T_STREQ(t__s, (s));                                                             \
    } while (0)

/* Call at the end of main: checks for leaks, prints a summary, returns the
 * exit status. */
int t_finish(const char *name);

/* Writes n bytes to a new (or truncated) file with the given mode, and
 * checks it worked. */
void t_write_file(const char *path, const void *p, size_t n, unsigned mode);
/* A test master key file: 32 bytes first, first + 1, ..., mode 0600. */
void t_write_master_key(const char *path, uint8_t first);

/* Reads a whole file into a NUL-terminated heap string (free with free()).
 * Returns NULL if it cannot be read. */
char *t_read_file(const char *path, size_t *len);

#endif
