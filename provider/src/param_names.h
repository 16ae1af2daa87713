/*
 * Integer parameters that OpenSSL also passes by name (RSA padding modes, PSS salt lengths):
 * one table per parameter, read and written through the same lookups.
 */
#ifndef AKV_PARAM_NAMES_H
#define AKV_PARAM_NAMES_H

#include <openssl/core.h>

/* One name of a value; a table ends with {NULL, 0}. */
typedef struct {
    const char *name;
    int value;
} AKV_NAMED_INT;

/* Looks `name` up, compared with `same` (strcmp or strcasecmp); 1 and *value if found, else 0. */
int akv_value_of_name(const AKV_NAMED_INT *names, int (*same)(const char *, const char *), const char *name,
                      int *value);
/* The name of `value`, NULL if it has none. */
const char *akv_name_of_value(const AKV_NAMED_INT *names, int value);
/* A parameter given as an integer, or as one of `names` in any case (as OpenSSL reads pad modes). */
int akv_get_named_int_param(const OSSL_PARAM *p, const AKV_NAMED_INT *names, int *value);

#endif
