/*
 * KEYMGMT for RSA and EC keys held in the HSM. The public half is an ordinary OpenSSL key in the
 * provider's private library context, so parameters, matching and public export are answered
 * locally; the private half is only a URI and is never exported.
 */
#include <openssl/core_names.h>
#include <openssl/params.h>
#include <stdio.h>
#include <string.h>

#include "akv.h"
#include "keygen.h"

static OSSL_FUNC_keymgmt_new_fn rsa_new;
static OSSL_FUNC_keymgmt_new_fn ec_new;
static OSSL_FUNC_keymgmt_free_fn key_free;
static OSSL_FUNC_keymgmt_dup_fn key_dup;
static OSSL_FUNC_keymgmt_load_fn rsa_load;
static OSSL_FUNC_keymgmt_load_fn ec_load;
static OSSL_FUNC_keymgmt_has_fn key_has;
static OSSL_FUNC_keymgmt_match_fn key_match;
static OSSL_FUNC_keymgmt_validate_fn key_validate;
static OSSL_FUNC_keymgmt_get_params_fn key_get_params;
static OSSL_FUNC_keymgmt_gettable_params_fn rsa_gettable_params;
static OSSL_FUNC_keymgmt_gettable_params_fn ec_gettable_params;
static OSSL_FUNC_keymgmt_import_fn key_import;
static OSSL_FUNC_keymgmt_import_types_fn rsa_types;
static OSSL_FUNC_keymgmt_import_types_fn ec_types;
static OSSL_FUNC_keymgmt_export_fn key_export;
static OSSL_FUNC_keymgmt_export_types_fn rsa_types;
static OSSL_FUNC_keymgmt_export_types_fn ec_types;
static OSSL_FUNC_keymgmt_query_operation_name_fn rsa_query_operation_name;
static OSSL_FUNC_keymgmt_query_operation_name_fn ec_query_operation_name;

static void *rsa_new(void *provctx)
{
    return akv_key_new(provctx, AKV_KEY_TYPE_RSA);
}

static void *ec_new(void *provctx)
{
    return akv_key_new(provctx, AKV_KEY_TYPE_EC);
}

static void key_free(void *keydata)
{
    akv_key_free(keydata);
}

static void *key_dup(const void *keydata, int selection)
{
    (void)selection;
    /* Keys are immutable once built, so a duplicate can share the object. */
    return akv_key_ref((AKV_KEY *)keydata);
}

/* Takes the key out of a store/decoder reference (see AKV_KEY_HANDLE). */
static void *key_load(const void *reference, size_t reference_sz, int type)
{
    AKV_KEY_HANDLE *handle = (AKV_KEY_HANDLE *)reference;
    int is_failure = 0;
    AKV_KEY *failed = akv_key_from_failure(reference, reference_sz, type, &is_failure);
    if (is_failure)
        return failed;
    if (reference == NULL || reference_sz != sizeof(*handle) || handle->magic != AKV_KEY_HANDLE_MAGIC ||
        handle->key == NULL || handle->key->type != type)
        return NULL;
    AKV_KEY *key = handle->key;
    handle->key = NULL;
    return key;
}

static void *rsa_load(const void *reference, size_t reference_sz)
{
    return key_load(reference, reference_sz, AKV_KEY_TYPE_RSA);
}

static void *ec_load(const void *reference, size_t reference_sz)
{
    return key_load(reference, reference_sz, AKV_KEY_TYPE_EC);
}

static int key_has(const void *keydata, int selection)
{
    const AKV_KEY *key = keydata;
    if (key == NULL)
        return 0;
    if (key->failure != NULL)
        return 1; /* taken as the private key it stands for; every use raises its failure */
    int ok = 1;
    if ((selection & OSSL_KEYMGMT_SELECT_PUBLIC_KEY) != 0)
        ok = ok && key->pub != NULL;
    if ((selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY) != 0)
        ok = ok && (key->uri != NULL || key->local_private);
    if ((selection & OSSL_KEYMGMT_SELECT_DOMAIN_PARAMETERS) != 0 && key->type == AKV_KEY_TYPE_EC)
        ok = ok && key->pub != NULL;
    return ok;
}

static int key_match(const void *keydata1, const void *keydata2, int selection)
{
    const AKV_KEY *k1 = keydata1, *k2 = keydata2;
    if (akv_key_raise_failure(k1) || akv_key_raise_failure(k2))
        return 0;
    if (k1 == NULL || k2 == NULL || k1->type != k2->type || k1->pub == NULL || k2->pub == NULL)
        return 0;
    if ((selection & OSSL_KEYMGMT_SELECT_KEYPAIR) != 0)
        /* One public key belongs to exactly one private key: comparing the public halves suffices. */
        return EVP_PKEY_eq(k1->pub, k2->pub) == 1;
    if ((selection & OSSL_KEYMGMT_SELECT_DOMAIN_PARAMETERS) != 0)
        return EVP_PKEY_parameters_eq(k1->pub, k2->pub) == 1;
    return 1;
}

static int key_get_params(void *keydata, OSSL_PARAM params[])
{
    AKV_KEY *key = keydata;
    if (key == NULL || key->pub == NULL)
        return 0;
    /* bits, security-bits, max-size, group name, encoded public key, n, e ... from the public key. */
    if (!EVP_PKEY_get_params(key->pub, params))
        return 0;
    OSSL_PARAM *p = OSSL_PARAM_locate(params, OSSL_PKEY_PARAM_DEFAULT_DIGEST);
    if (p != NULL && !OSSL_PARAM_set_utf8_string(p, "SHA256"))
        return 0;
    return 1;
}

static const OSSL_PARAM rsa_gettable[] = {
    OSSL_PARAM_int(OSSL_PKEY_PARAM_BITS, NULL),
    OSSL_PARAM_int(OSSL_PKEY_PARAM_SECURITY_BITS, NULL),
    OSSL_PARAM_int(OSSL_PKEY_PARAM_MAX_SIZE, NULL),
    OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_DEFAULT_DIGEST, NULL, 0),
    OSSL_PARAM_BN(OSSL_PKEY_PARAM_RSA_N, NULL, 0),
    OSSL_PARAM_BN(OSSL_PKEY_PARAM_RSA_E, NULL, 0),
    OSSL_PARAM_END,
};

static const OSSL_PARAM ec_gettable[] = {
    OSSL_PARAM_int(OSSL_PKEY_PARAM_BITS, NULL),
    OSSL_PARAM_int(OSSL_PKEY_PARAM_SECURITY_BITS, NULL),
    OSSL_PARAM_int(OSSL_PKEY_PARAM_MAX_SIZE, NULL),
    OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_DEFAULT_DIGEST, NULL, 0),
    OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, NULL, 0),
    OSSL_PARAM_octet_string(OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, NULL, 0),
    OSSL_PARAM_octet_string(OSSL_PKEY_PARAM_PUB_KEY, NULL, 0),
    OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_EC_ENCODING, NULL, 0),
    OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT, NULL, 0),
    OSSL_PARAM_END,
};

static const OSSL_PARAM *rsa_gettable_params(void *provctx)
{
    (void)provctx;
    return rsa_gettable;
}

static const OSSL_PARAM *ec_gettable_params(void *provctx)
{
    (void)provctx;
    return ec_gettable;
}

/* Public parameters only: what export offers and import accepts. */
static const OSSL_PARAM rsa_public_types[] = {
    OSSL_PARAM_BN(OSSL_PKEY_PARAM_RSA_N, NULL, 0),
    OSSL_PARAM_BN(OSSL_PKEY_PARAM_RSA_E, NULL, 0),
    OSSL_PARAM_END,
};
static const OSSL_PARAM ec_public_types[] = {
    OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, NULL, 0),
    OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_EC_ENCODING, NULL, 0),
    OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT, NULL, 0),
    OSSL_PARAM_octet_string(OSSL_PKEY_PARAM_PUB_KEY, NULL, 0),
    OSSL_PARAM_END,
};
static const OSSL_PARAM ec_domain_types[] = {
    OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, NULL, 0),
    OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_EC_ENCODING, NULL, 0),
    OSSL_PARAM_END,
};

static const OSSL_PARAM *rsa_types(int selection)
{
    return (selection & OSSL_KEYMGMT_SELECT_KEYPAIR) != 0 ? rsa_public_types : NULL;
}

static const OSSL_PARAM *ec_types(int selection)
{
    if ((selection & OSSL_KEYMGMT_SELECT_KEYPAIR) != 0)
        return ec_public_types;
    if ((selection & OSSL_KEYMGMT_SELECT_DOMAIN_PARAMETERS) != 0)
        return ec_domain_types;
    return NULL;
}

/*
 * Builds a key from another provider's export: usually a public key (a certificate's key being
 * matched against ours, a key being verified with our signature code); a private key given to us
 * becomes a software key (keygen.c) that signs and decrypts locally.
 */
static int key_import(void *keydata, int selection, const OSSL_PARAM params[])
{
    AKV_KEY *key = keydata;
    int evp_selection;
    if (key == NULL || key->pub != NULL)
        return 0;
    int has_private = OSSL_PARAM_locate_const(params, key->type == AKV_KEY_TYPE_RSA ? OSSL_PKEY_PARAM_RSA_D
                                                                                    : OSSL_PKEY_PARAM_PRIV_KEY) != NULL;
    if ((selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY) != 0 && has_private)
        evp_selection = EVP_PKEY_KEYPAIR;
    else if ((selection & OSSL_KEYMGMT_SELECT_KEYPAIR) != 0)
        evp_selection = EVP_PKEY_PUBLIC_KEY;
    else if ((selection & OSSL_KEYMGMT_SELECT_DOMAIN_PARAMETERS) != 0 && key->type == AKV_KEY_TYPE_EC)
        evp_selection = EVP_PKEY_KEY_PARAMETERS;
    else
        return 0;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(key->prov->pub_libctx, akv_key_type_name(key), NULL);
    int ok = ctx != NULL && EVP_PKEY_fromdata_init(ctx) > 0 &&
             EVP_PKEY_fromdata(ctx, &key->pub, evp_selection, (OSSL_PARAM *)params) > 0;
    EVP_PKEY_CTX_free(ctx);
    if (ok) {
        key->bits = (unsigned)EVP_PKEY_get_bits(key->pub);
        key->local_private = evp_selection == EVP_PKEY_KEYPAIR;
    }
    return ok;
}

static int key_export(void *keydata, int selection, OSSL_CALLBACK *param_cb, void *cbarg)
{
    AKV_KEY *key = keydata;
    if (akv_key_raise_failure(key))
        return 0;
    if (key == NULL || key->pub == NULL)
        return 0;
    if ((selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY) != 0 && key->uri != NULL) {
        AKV_RAISE(key->prov, AKV_R_PRIVATE_KEY_NOT_EXPORTABLE,
                  "the private key of %s stays in the HSM and cannot be exported; export the public key instead "
                  "(openssl pkey -pubout)",
                  key->uri);
        return 0;
    }
    /* Software keys export whole (the default provider's key exchange and encoders need that). */
    int allowed = key->local_private
                      ? selection
                      : selection & (OSSL_KEYMGMT_SELECT_PUBLIC_KEY | OSSL_KEYMGMT_SELECT_ALL_PARAMETERS);
    if (allowed == 0)
        return 0;
    return EVP_PKEY_export(key->pub, allowed, param_cb, cbarg);
}

static const char *ec_query_operation_name(int operation_id)
{
    switch (operation_id) {
    case OSSL_OP_SIGNATURE:
        return AKV_ECDSA_NAME;
    case OSSL_OP_KEYEXCH:
        return "ECDH"; /* software keys only (TLS ECDHE), run by the default provider */
    default:
        return NULL;
    }
}

static const char *rsa_query_operation_name(int operation_id)
{
    (void)operation_id;
    return AKV_RSA_NAME;
}

static int key_validate(const void *keydata, int selection, int checktype)
{
    (void)checktype;
    /* The HSM made the key; all we can check locally is that the parts asked about exist. */
    return key_has(keydata, selection);
}

/*
 * What the RSA and EC tables share: the key object (here) and software keys (keygen.c). Kept out
 * of clang-format, which would pack the entries of a macro body onto shared lines.
 */
/* clang-format off */
#define KEYMGMT_COMMON                                                                      \
    {OSSL_FUNC_KEYMGMT_FREE, (void (*)(void))key_free},                                     \
    {OSSL_FUNC_KEYMGMT_DUP, (void (*)(void))key_dup},                                       \
    {OSSL_FUNC_KEYMGMT_HAS, (void (*)(void))key_has},                                       \
    {OSSL_FUNC_KEYMGMT_MATCH, (void (*)(void))key_match},                                   \
    {OSSL_FUNC_KEYMGMT_VALIDATE, (void (*)(void))key_validate},                             \
    {OSSL_FUNC_KEYMGMT_GET_PARAMS, (void (*)(void))key_get_params},                         \
    {OSSL_FUNC_KEYMGMT_IMPORT, (void (*)(void))key_import},                                 \
    {OSSL_FUNC_KEYMGMT_EXPORT, (void (*)(void))key_export}

#define KEYGEN_COMMON                                                                       \
    {OSSL_FUNC_KEYMGMT_GEN_SET_PARAMS, (void (*)(void))akv_gen_set_params},                 \
    {OSSL_FUNC_KEYMGMT_GEN_SET_TEMPLATE, (void (*)(void))akv_gen_set_template},             \
    {OSSL_FUNC_KEYMGMT_GEN, (void (*)(void))akv_gen},                                       \
    {OSSL_FUNC_KEYMGMT_GEN_CLEANUP, (void (*)(void))akv_gen_cleanup},                       \
    {OSSL_FUNC_KEYMGMT_SET_PARAMS, (void (*)(void))akv_key_set_params}
/* clang-format on */

const OSSL_DISPATCH akv_rsa_keymgmt_functions[] = {
    KEYMGMT_COMMON,
    {OSSL_FUNC_KEYMGMT_NEW, (void (*)(void))rsa_new},
    {OSSL_FUNC_KEYMGMT_LOAD, (void (*)(void))rsa_load},
    {OSSL_FUNC_KEYMGMT_GETTABLE_PARAMS, (void (*)(void))rsa_gettable_params},
    {OSSL_FUNC_KEYMGMT_IMPORT_TYPES, (void (*)(void))rsa_types},
    {OSSL_FUNC_KEYMGMT_EXPORT_TYPES, (void (*)(void))rsa_types},
    {OSSL_FUNC_KEYMGMT_QUERY_OPERATION_NAME, (void (*)(void))rsa_query_operation_name},
    {OSSL_FUNC_KEYMGMT_GEN_INIT, (void (*)(void))akv_rsa_gen_init},
    {OSSL_FUNC_KEYMGMT_GEN_SETTABLE_PARAMS, (void (*)(void))akv_rsa_gen_settable_params},
    {OSSL_FUNC_KEYMGMT_SETTABLE_PARAMS, (void (*)(void))akv_rsa_settable_params},
    KEYGEN_COMMON,
    {0, NULL},
};

const OSSL_DISPATCH akv_ec_keymgmt_functions[] = {
    KEYMGMT_COMMON,
    {OSSL_FUNC_KEYMGMT_NEW, (void (*)(void))ec_new},
    {OSSL_FUNC_KEYMGMT_LOAD, (void (*)(void))ec_load},
    {OSSL_FUNC_KEYMGMT_GETTABLE_PARAMS, (void (*)(void))ec_gettable_params},
    {OSSL_FUNC_KEYMGMT_IMPORT_TYPES, (void (*)(void))ec_types},
    {OSSL_FUNC_KEYMGMT_EXPORT_TYPES, (void (*)(void))ec_types},
    {OSSL_FUNC_KEYMGMT_QUERY_OPERATION_NAME, (void (*)(void))ec_query_operation_name},
    {OSSL_FUNC_KEYMGMT_GEN_INIT, (void (*)(void))akv_ec_gen_init},
    {OSSL_FUNC_KEYMGMT_GEN_SETTABLE_PARAMS, (void (*)(void))akv_ec_gen_settable_params},
    {OSSL_FUNC_KEYMGMT_SETTABLE_PARAMS, (void (*)(void))akv_ec_settable_params},
    KEYGEN_COMMON,
    {0, NULL},
};
