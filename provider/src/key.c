/*
 * The key object shared by store, decoder, keymgmt, signature and cipher code. The agent round
 * trips that create and use it (DESCRIBE, SIGN, DECRYPT, WRAP, UNWRAP, LIST) are in key_requests.c.
 */
#include <openssl/core_names.h>
#include <openssl/core_object.h>
#include <openssl/crypto.h>
#include <openssl/params.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "akv.h"

AKV_KEY *akv_key_new(AKV_PROV_CTX *prov, int type)
{
    AKV_KEY *key = calloc(1, sizeof(*key));
    if (key == NULL)
        return NULL;
    key->refcount = 1;
    key->prov = prov;
    key->type = type;
    return key;
}

AKV_KEY *akv_key_ref(AKV_KEY *key)
{
    if (key != NULL)
        __atomic_add_fetch(&key->refcount, 1, __ATOMIC_ACQ_REL);
    return key;
}

void akv_key_free(AKV_KEY *key)
{
    if (key == NULL || __atomic_sub_fetch(&key->refcount, 1, __ATOMIC_ACQ_REL) > 0)
        return;
    free(key->uri);
    free(key->op_uri);
    free(key->version);
    free(key->key_ops);
    EVP_PKEY_free(key->pub);
    free(key->failure);
    free(key);
}

int akv_key_raise_failure(const AKV_KEY *key)
{
    if (key == NULL || key->failure == NULL)
        return 0;
    AKV_RAISE(key->prov, key->failure_reason, "%s", key->failure);
    return 1;
}

int akv_key_allows(const AKV_KEY *key, const char *op)
{
    if (key->key_ops == NULL)
        return 1; /* unknown: let the agent decide */
    size_t oplen = strlen(op);
    for (const char *p = key->key_ops; *p != '\0';) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == oplen && strncmp(p, op, len) == 0)
            return 1;
        if (end == NULL)
            break;
        p = end + 1;
    }
    return 0;
}

const char *akv_key_type_name(const AKV_KEY *key)
{
    switch (key->type) {
    case AKV_KEY_TYPE_RSA:
        return AKV_RSA_NAME;
    case AKV_KEY_TYPE_EC:
        return AKV_EC_NAME;
    default:
        return AKV_AES_KEYTYPE;
    }
}

size_t akv_curve_order_bytes(const char *curve)
{
    if (strcmp(curve, "P-256") == 0 || strcmp(curve, "P-256K") == 0)
        return 32;
    if (strcmp(curve, "P-384") == 0)
        return 48;
    if (strcmp(curve, "P-521") == 0)
        return 66;
    return 0;
}

void akv_secure_free(void *p, size_t len)
{
    if (p != NULL) {
        OPENSSL_cleanse(p, len);
        free(p);
    }
}

int akv_pass_key_reference(AKV_KEY *key, OSSL_CALLBACK *object_cb, void *object_cbarg)
{
    int object_type = OSSL_OBJECT_PKEY;
    AKV_KEY_HANDLE handle = {AKV_KEY_HANDLE_MAGIC, key, 0};
    char desc[600];
    OSSL_PARAM params[5];

    if (key->type == AKV_KEY_TYPE_EC)
        snprintf(desc, sizeof(desc), "EC %s key %s", key->curve, key->uri ? key->uri : "");
    else
        snprintf(desc, sizeof(desc), "%s %u-bit key %s", key->type == AKV_KEY_TYPE_RSA ? "RSA" : "AES", key->bits,
                 key->uri ? key->uri : "");
    params[0] = OSSL_PARAM_construct_int(OSSL_OBJECT_PARAM_TYPE, &object_type);
    params[1] = OSSL_PARAM_construct_utf8_string(OSSL_OBJECT_PARAM_DATA_TYPE, (char *)akv_key_type_name(key), 0);
    params[2] = OSSL_PARAM_construct_octet_string(OSSL_OBJECT_PARAM_REFERENCE, &handle, sizeof(handle));
    params[3] = OSSL_PARAM_construct_utf8_string(OSSL_OBJECT_PARAM_DESC, desc, 0);
    params[4] = OSSL_PARAM_construct_end();
    int ok = object_cb(params, object_cbarg);
    /* keymgmt load takes the key by clearing handle.key; otherwise it is still ours. */
    akv_key_free(handle.key);
    return ok;
}
