/* testlib.c - see testlib.h. */
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testlib.h"

int g_test_failures;
int g_test_checks;

int t_finish(const char *name)
{
    long live = s3s_mem_live();
    if (live != 0) {
        fprintf(stderr, "%s: %ld allocation(s) leaked\n", name, live);
        g_test_failures++;
    }
    printf("%s: %d checks, %d failed\n", name, g_test_checks, g_test_failures);
    return g_test_failures ? 1 : 0;
}

char *t_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        return NULL;
    }
    size_t cap = 4096, n = 0;
    char *p = malloc(cap);
    while (p) {
        size_t r = fread(p + n, 1, cap - n - 1, f);
        n += r;
        if (r == 0) {
            break;
        }
        if (cap - n - 1 == 0) {
            char *q = realloc(p, cap * 2);
            if (!q) {
                free(p);
                p = NULL;
                break;
            }
            p = q;
            cap *= 2;
        }
    }
    fclose(f);
    if (p) {
        p[n] = '\0';
        if (len) {
            *len = n;
        }
    }
    return p;
}

void t_write_file(const char *path, const void *p, size_t n, unsigned mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, (mode_t)mode);
    T_CHECK(fd >= 0);
    if (fd < 0) {
        return;
    }
    T_CHECK(write(fd, p, n) == (ssize_t)n);
    close(fd);
    /* An existing file keeps its mode through O_CREAT: set it. */
    T_CHECK(chmod(path, (mode_t)mode) == 0);
}

void t_write_master_key(const char *path, uint8_t first)
{
    uint8_t k[32];
    for (int i = 0; i < 32; i++) {
        k[i] = (uint8_t)(first + i);
    }
    t_write_file(path, k, sizeof(k), 0600);
}
