/*
 * Parser of the AKVKeyReference DER structure (see decoder.c and docs/provider.md). Strict DER,
 * bounded lengths, no OpenSSL dependency, so it can be unit-tested and fuzzed on its own.
 */
#include <stdlib.h>
#include <string.h>

#include "keyref.h"

#define KEYREF_MAX_URI 2048

/* Reads one DER TLV header; returns the content length and advances *p, or -1. */
static long der_read_header(const unsigned char **p, const unsigned char *end, unsigned char tag)
{
    const unsigned char *q = *p;
    if (end - q < 2 || q[0] != tag)
        return -1;
    size_t len = q[1];
    q += 2;
    if (len & 0x80) {
        size_t nbytes = len & 0x7f;
        if (nbytes == 0 || nbytes > 2 || (size_t)(end - q) < nbytes)
            return -1;
        len = 0;
        for (size_t i = 0; i < nbytes; i++)
            len = (len << 8) | q[i];
        q += nbytes;
        if (len < 128)
            return -1; /* not DER: long form for a short length */
    }
    if ((size_t)(end - q) < len)
        return -1;
    *p = q;
    return (long)len;
}

char *akv_keyref_parse(const unsigned char *der, size_t len, const char **why)
{
    const unsigned char *p = der, *end = der + len;
    long n;
    *why = "not a DER SEQUENCE";
    if ((n = der_read_header(&p, end, 0x30)) < 0 || p + n != end)
        return NULL;
    *why = "missing or unsupported version (expected INTEGER 1)";
    if ((n = der_read_header(&p, end, 0x02)) != 1 || p[0] != 1)
        return NULL;
    p += 1;
    *why = "missing description UTF8String";
    if ((n = der_read_header(&p, end, 0x0C)) < 0)
        return NULL;
    p += n;
    *why = "missing key URI UTF8String";
    if ((n = der_read_header(&p, end, 0x0C)) <= 0 || n > KEYREF_MAX_URI)
        return NULL;
    const unsigned char *uri = p;
    p += n;
    *why = "unexpected data after the key URI";
    if (p != end)
        return NULL;
    *why = "the key URI contains control characters";
    for (long i = 0; i < n; i++)
        if (uri[i] < 0x20 || uri[i] == 0x7f)
            return NULL;
    char *s = malloc((size_t)n + 1);
    *why = "out of memory";
    if (s == NULL)
        return NULL;
    memcpy(s, uri, (size_t)n);
    s[n] = '\0';
    *why = NULL;
    return s;
}
