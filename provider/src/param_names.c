/* Named integer parameters (see param_names.h). */
#include "param_names.h"

#include <openssl/params.h>
#include <strings.h>

int akv_value_of_name(const AKV_NAMED_INT *names, int (*same)(const char *, const char *), const char *name, int *value)
{
    for (; names->name != NULL; names++) {
        if (same(name, names->name) == 0) {
            *value = names->value;
            return 1;
        }
    }
    return 0;
}

const char *akv_name_of_value(const AKV_NAMED_INT *names, int value)
{
    for (; names->name != NULL; names++) {
        if (names->value == value)
            return names->name;
    }
    return NULL;
}

int akv_get_named_int_param(const OSSL_PARAM *p, const AKV_NAMED_INT *names, int *value)
{
    if (p->data_type == OSSL_PARAM_UTF8_STRING)
        return p->data != NULL && akv_value_of_name(names, strcasecmp, p->data, value);
    return OSSL_PARAM_get_int(p, value);
}
