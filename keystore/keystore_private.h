/*
 * keystore_private.h - what the keystore module's own files share and no
 * other module may call.
 */
#ifndef S3S_KEYSTORE_PRIVATE_H
#define S3S_KEYSTORE_PRIVATE_H

#include <stddef.h>

/* Writes a one-line reason for an operator into why (if why is not NULL and
 * why_len is not 0), truncating it to fit. */
void s3s_keystore__why(char *why, size_t why_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif /* S3S_KEYSTORE_PRIVATE_H */
