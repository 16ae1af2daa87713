/*
 * Failures a PKCS#11 caller sees only as a CKR number (ssh prints "C_SignInit failed: 6") are
 * also written as one sentence, "akv-pkcs11: <what failed>; hint: <what to do>", to AKV_LOG_FILE
 * when set, else to stderr. Nothing secret reaches it: key URIs and the agent's messages only.
 */
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "p11.h"

void p11_report(const char *fmt, ...)
{
    char line[1200];
    int n = snprintf(line, sizeof(line), "akv-pkcs11: ");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = strlen(line);
    line[len++] = '\n';
    const char *file = secure_getenv("AKV_LOG_FILE");
    int fd = 2, opened = 0;
    if (file != NULL && *file != '\0') {
        int f = open(file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
        if (f >= 0) {
            fd = f;
            opened = 1;
        }
    }
    ssize_t w = write(fd, line, len);
    (void)w;
    if (opened)
        close(fd);
}
