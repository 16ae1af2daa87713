/*
 * KEYMGMT for AES key-wrap keys (`oct-HSM`). There is no public half: the key object is the URI,
 * its size and its allowed operations. It exists so that `openssl pkeyutl -encrypt/-decrypt
 * -inkey <aes key uri>` can wrap and unwrap through the HSM (asym_cipher.c).
 */
#include <openssl/core_names.h>
#include <openssl/params.h>
#include <string.h>

#include "akv.h"

static OSSL_FUNC_keymgmt_new_fn aes_new;
static OSSL_FUNC_keymgmt_free_fn aes_free;
static OSSL_FUNC_keymgmt_dup_fn aes_dup;
static OSSL_FUNC_keymgmt_load_fn aes_load;
static OSSL_FUNC_keymgmt_has_fn aes_has;
static OSSL_FUNC_keymgmt_match_fn aes_match;
static OSSL_FUNC_keymgmt_get_params_fn aes_get_params;
static OSSL_FUNC_keymgmt_gettable_params_fn aes_gettable_params;
static OSSL_FUNC_keymgmt_import_fn aes_import;
static OSSL_FUNC_keymgmt_import_types_fn aes_types;
static OSSL_FUNC_keymgmt_export_fn aes_export;
static OSSL_FUNC_keymgmt_export_types_fn aes_types;

static void *aes_new(void *provctx)
{
    return akv_key_new(provctx, AKV_KEY_TYPE_AES);
}

static void aes_free(void *keydata)
{
    akv_key_free(keydata);
}

static void *aes_dup(const void *keydata, int selection)
{
    (void)selection;
    return akv_key_ref((AKV_KEY *)keydata);
}

static void *aes_load(const void *reference, size_t reference_sz)
{
    AKV_KEY_HANDLE *handle = (AKV_KEY_HANDLE *)reference;
    int is_failure = 0;
    AKV_KEY *failed = akv_key_from_failure(reference, reference_sz, AKV_KEY_TYPE_AES, &is_failure);
    if (is_failure)
        return failed;
    if (reference == NULL || reference_sz != sizeof(*handle) || handle->magic != AKV_KEY_HANDLE_MAGIC ||
        handle->key == NULL || handle->key->type != AKV_KEY_TYPE_AES)
        return NULL;
    AKV_KEY *key = handle->key;
    handle->key = NULL;
    return key;
}

static int aes_has(const void *keydata, int selection)
{
    const AKV_KEY *key = keydata;
    if (key == NULL)
        return 0;
    /* A secret key is its own "key pair": it is there when we have the HSM reference. */
    if ((selection & OSSL_KEYMGMT_SELECT_KEYPAIR) != 0)
        return key->uri != NULL;
    return 1;
}

static int aes_match(const void *keydata1, const void *keydata2, int selection)
{
    const AKV_KEY *k1 = keydata1, *k2 = keydata2;
    (void)selection;
    return k1 != NULL && k2 != NULL && k1->uri != NULL && k2->uri != NULL && strcmp(k1->uri, k2->uri) == 0;
}

static int aes_get_params(void *keydata, OSSL_PARAM params[])
{
    AKV_KEY *key = keydata;
    OSSL_PARAM *p;
    if (key == NULL)
        return 0;
    if ((p = OSSL_PARAM_locate(params, OSSL_PKEY_PARAM_BITS)) != NULL && !OSSL_PARAM_set_int(p, (int)key->bits))
        return 0;
    if ((p = OSSL_PARAM_locate(params, OSSL_PKEY_PARAM_SECURITY_BITS)) != NULL &&
        !OSSL_PARAM_set_int(p, (int)key->bits))
        return 0;
    /* Largest output of one operation: a wrapped 512-bit key plus the 8-byte integrity block. */
    if ((p = OSSL_PARAM_locate(params, OSSL_PKEY_PARAM_MAX_SIZE)) != NULL && !OSSL_PARAM_set_int(p, 72))
        return 0;
    return 1;
}

static const OSSL_PARAM aes_gettable[] = {
    OSSL_PARAM_int(OSSL_PKEY_PARAM_BITS, NULL),
    OSSL_PARAM_int(OSSL_PKEY_PARAM_SECURITY_BITS, NULL),
    OSSL_PARAM_int(OSSL_PKEY_PARAM_MAX_SIZE, NULL),
    OSSL_PARAM_END,
};

static const OSSL_PARAM *aes_gettable_params(void *provctx)
{
    (void)provctx;
    return aes_gettable;
}

static int aes_export(void *keydata, int selection, OSSL_CALLBACK *param_cb, void *cbarg)
{
    AKV_KEY *key = keydata;
    (void)selection;
    (void)param_cb;
    (void)cbarg;
    if (key != NULL)
        AKV_RAISE(key->prov, AKV_R_PRIVATE_KEY_NOT_EXPORTABLE, "the AES key %s stays in the HSM and cannot be exported",
                  key->uri ? key->uri : "");
    return 0;
}

static int aes_import(void *keydata, int selection, const OSSL_PARAM params[])
{
    (void)keydata;
    (void)selection;
    (void)params;
    return 0;
}

static const OSSL_PARAM *aes_types(int selection)
{
    (void)selection;
    return NULL;
}

const OSSL_DISPATCH akv_aes_keymgmt_functions[] = {
    {OSSL_FUNC_KEYMGMT_NEW, (void (*)(void))aes_new},
    {OSSL_FUNC_KEYMGMT_FREE, (void (*)(void))aes_free},
    {OSSL_FUNC_KEYMGMT_DUP, (void (*)(void))aes_dup},
    {OSSL_FUNC_KEYMGMT_LOAD, (void (*)(void))aes_load},
    {OSSL_FUNC_KEYMGMT_HAS, (void (*)(void))aes_has},
    {OSSL_FUNC_KEYMGMT_MATCH, (void (*)(void))aes_match},
    {OSSL_FUNC_KEYMGMT_GET_PARAMS, (void (*)(void))aes_get_params},
    {OSSL_FUNC_KEYMGMT_GETTABLE_PARAMS, (void (*)(void))aes_gettable_params},
    {OSSL_FUNC_KEYMGMT_IMPORT, (void (*)(void))aes_import},
    {OSSL_FUNC_KEYMGMT_IMPORT_TYPES, (void (*)(void))aes_types},
    {OSSL_FUNC_KEYMGMT_EXPORT, (void (*)(void))aes_export},
    {OSSL_FUNC_KEYMGMT_EXPORT_TYPES, (void (*)(void))aes_types},
    {0, NULL},
};
