/* The key-reference DER structure: SEQUENCE { version INTEGER (1), description UTF8String, uri UTF8String }. */
#ifndef AKV_KEYREF_H
#define AKV_KEYREF_H

#include <stddef.h>

/* Returns the malloc'ed URI, or NULL with *why saying what is wrong. */
char *akv_keyref_parse(const unsigned char *der, size_t len, const char **why);

#endif
