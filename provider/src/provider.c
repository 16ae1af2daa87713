/*
 * Entry point of akv_provider.so: reads the settings (settings.c: openssl.cnf and the
 * environment), answers the core's queries with the algorithm tables, and tears down.
 * Initialisation does no I/O: the agent is contacted the first time a key is loaded.
 */
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/params.h>
#include <openssl/provider.h>
#include <stdlib.h>
#include <string.h>

#include "akv.h"
#include "keygen.h"
#include "settings.h"

static OSSL_FUNC_provider_teardown_fn akv_teardown;
static OSSL_FUNC_provider_query_operation_fn akv_query;
static OSSL_FUNC_provider_gettable_params_fn akv_gettable_params;
static OSSL_FUNC_provider_get_params_fn akv_get_params;
static OSSL_FUNC_provider_get_reason_strings_fn akv_get_reason_strings;

/*
 * Algorithm names: the standard name, its aliases and its OID, exactly as the default provider
 * registers them, so that TLS and X.509 treat HSM keys as ordinary RSA and EC keys. Other files
 * use only the standard name (AKV_RSA_NAME, AKV_EC_NAME, AKV_ECDSA_NAME, AKV_AES_KEYTYPE in akv.h).
 */
#define RSA_NAMES AKV_RSA_NAME ":rsaEncryption:1.2.840.113549.1.1.1"
#define EC_NAMES AKV_EC_NAME ":id-ecPublicKey:1.2.840.10045.2.1"

#define PROPS "provider=" AKV_PROVIDER_NAME
/* The decoders: PEM to DER for our PEM label only, then DER of our structure to a key. */
#define PEM_DECODER_PROPS PROPS ",input=pem"
#define KEYREF_DECODER_PROPS PROPS ",input=der,structure=" AKV_KEYREF_STRUCTURE

static const OSSL_ALGORITHM keymgmt_algs[] = {
    {RSA_NAMES, PROPS, akv_rsa_keymgmt_functions, "akv RSA key in Managed HSM"},
    {EC_NAMES, PROPS, akv_ec_keymgmt_functions, "akv EC key in Managed HSM"},
    {AKV_AES_KEYTYPE, PROPS, akv_aes_keymgmt_functions, "akv AES key-wrap key in Managed HSM"},
    {NULL, NULL, NULL, NULL},
};

static const OSSL_ALGORITHM signature_algs[] = {
    {RSA_NAMES, PROPS, akv_rsa_signature_functions, "RSA PKCS#1 v1.5 / PSS in the HSM"},
    {AKV_ECDSA_NAME, PROPS, akv_ecdsa_signature_functions, "ECDSA in the HSM"},
#ifdef OSSL_FUNC_SIGNATURE_SIGN_MESSAGE_INIT
    /* OpenSSL 3.4+ composites, named as the default provider names them. */
    {"RSA-SHA2-256:RSA-SHA256:sha256WithRSAEncryption:1.2.840.113549.1.1.11", PROPS, akv_rsa_sha256_signature_functions,
     "RSA PKCS#1 v1.5 with SHA-256 in the HSM"},
    {"RSA-SHA2-384:RSA-SHA384:sha384WithRSAEncryption:1.2.840.113549.1.1.12", PROPS, akv_rsa_sha384_signature_functions,
     "RSA PKCS#1 v1.5 with SHA-384 in the HSM"},
    {"RSA-SHA2-512:RSA-SHA512:sha512WithRSAEncryption:1.2.840.113549.1.1.13", PROPS, akv_rsa_sha512_signature_functions,
     "RSA PKCS#1 v1.5 with SHA-512 in the HSM"},
    {"ECDSA-SHA2-256:ECDSA-SHA256:ecdsa-with-SHA256:1.2.840.10045.4.3.2", PROPS, akv_ecdsa_sha256_signature_functions,
     "ECDSA with SHA-256 in the HSM"},
    {"ECDSA-SHA2-384:ECDSA-SHA384:ecdsa-with-SHA384:1.2.840.10045.4.3.3", PROPS, akv_ecdsa_sha384_signature_functions,
     "ECDSA with SHA-384 in the HSM"},
    {"ECDSA-SHA2-512:ECDSA-SHA512:ecdsa-with-SHA512:1.2.840.10045.4.3.4", PROPS, akv_ecdsa_sha512_signature_functions,
     "ECDSA with SHA-512 in the HSM"},
#endif
    {NULL, NULL, NULL, NULL},
};

static const OSSL_ALGORITHM asym_cipher_algs[] = {
    {RSA_NAMES, PROPS, akv_rsa_asym_cipher_functions, "RSA decryption in the HSM"},
    {AKV_AES_KEYTYPE, PROPS, akv_aes_kw_asym_cipher_functions, "AES key wrap (RFC 3394) in the HSM"},
    {NULL, NULL, NULL, NULL},
};

static const OSSL_ALGORITHM store_algs[] = {
    /* One entry per scheme: store names are URI schemes and cannot be aliased with ':'. */
    {"managedhsm", PROPS, akv_store_functions, "keys in Azure Managed HSM"},
    {"akv", PROPS, akv_store_functions, "keys in Azure Managed HSM / Key Vault (akv: URI form)"},
    {"keyvault", PROPS, akv_store_functions, "keys in Azure Key Vault"},
    {NULL, NULL, NULL, NULL},
};

static const OSSL_ALGORITHM decoder_algs[] = {
    {"DER", PEM_DECODER_PROPS, akv_pem_to_der_decoder_functions, "akv key reference PEM"},
    {RSA_NAMES, KEYREF_DECODER_PROPS, akv_keyref_to_rsa_decoder_functions, "akv key reference to RSA key"},
    {EC_NAMES, KEYREF_DECODER_PROPS, akv_keyref_to_ec_decoder_functions, "akv key reference to EC key"},
    {AKV_AES_KEYTYPE, KEYREF_DECODER_PROPS, akv_keyref_to_aes_decoder_functions, "akv key reference to AES key"},
    {NULL, NULL, NULL, NULL},
};

static const OSSL_ALGORITHM *akv_query(void *provctx, int operation_id, int *no_cache)
{
    (void)provctx;
    *no_cache = 0;
    switch (operation_id) {
    case OSSL_OP_KEYMGMT:
        return keymgmt_algs;
    case OSSL_OP_SIGNATURE:
        return signature_algs;
    case OSSL_OP_ASYM_CIPHER:
        return asym_cipher_algs;
    case OSSL_OP_STORE:
        return store_algs;
    case OSSL_OP_DECODER:
        return decoder_algs;
    default:
        return NULL;
    }
}

static const OSSL_PARAM provider_param_types[] = {
    OSSL_PARAM_DEFN(OSSL_PROV_PARAM_NAME, OSSL_PARAM_UTF8_PTR, NULL, 0),
    OSSL_PARAM_DEFN(OSSL_PROV_PARAM_VERSION, OSSL_PARAM_UTF8_PTR, NULL, 0),
    OSSL_PARAM_DEFN(OSSL_PROV_PARAM_BUILDINFO, OSSL_PARAM_UTF8_PTR, NULL, 0),
    OSSL_PARAM_DEFN(OSSL_PROV_PARAM_STATUS, OSSL_PARAM_INTEGER, NULL, 0),
    OSSL_PARAM_END,
};

static const OSSL_PARAM *akv_gettable_params(void *provctx)
{
    (void)provctx;
    return provider_param_types;
}

static int akv_get_params(void *provctx, OSSL_PARAM params[])
{
    (void)provctx;
    OSSL_PARAM *p;
    if ((p = OSSL_PARAM_locate(params, OSSL_PROV_PARAM_NAME)) != NULL &&
        !OSSL_PARAM_set_utf8_ptr(p, "akv_provider: Azure Managed HSM keys through the akv agent"))
        return 0;
    if ((p = OSSL_PARAM_locate(params, OSSL_PROV_PARAM_VERSION)) != NULL &&
        !OSSL_PARAM_set_utf8_ptr(p, AKV_PROVIDER_VERSION))
        return 0;
    if ((p = OSSL_PARAM_locate(params, OSSL_PROV_PARAM_BUILDINFO)) != NULL &&
        !OSSL_PARAM_set_utf8_ptr(p, "akv_provider " AKV_PROVIDER_VERSION " for OpenSSL " OPENSSL_VERSION_STR))
        return 0;
    if ((p = OSSL_PARAM_locate(params, OSSL_PROV_PARAM_STATUS)) != NULL && !OSSL_PARAM_set_int(p, 1))
        return 0;
    return 1;
}

static const OSSL_ITEM *akv_get_reason_strings(void *provctx)
{
    (void)provctx;
    return akv_reason_strings();
}

static void akv_teardown(void *provctx)
{
    AKV_PROV_CTX *ctx = provctx;
    if (ctx == NULL)
        return;
    akv_recent_clear(ctx);
    pthread_mutex_destroy(&ctx->recent_lock);
    akv_agent_free(ctx->agent);
    if (ctx->pub_default != NULL)
        OSSL_PROVIDER_unload(ctx->pub_default);
    OSSL_LIB_CTX_free(ctx->pub_libctx);
    OSSL_LIB_CTX_free(ctx->libctx);
    free(ctx);
}

static const OSSL_DISPATCH provider_functions[] = {
    {OSSL_FUNC_PROVIDER_TEARDOWN, (void (*)(void))akv_teardown},
    {OSSL_FUNC_PROVIDER_QUERY_OPERATION, (void (*)(void))akv_query},
    {OSSL_FUNC_PROVIDER_GETTABLE_PARAMS, (void (*)(void))akv_gettable_params},
    {OSSL_FUNC_PROVIDER_GET_PARAMS, (void (*)(void))akv_get_params},
    {OSSL_FUNC_PROVIDER_GET_REASON_STRINGS, (void (*)(void))akv_get_reason_strings},
    {OSSL_FUNC_PROVIDER_GET_CAPABILITIES, (void (*)(void))akv_get_capabilities},
    {0, NULL},
};

/* The module's only exported symbol (the Makefile builds with -fvisibility=hidden). */
__attribute__((visibility("default"))) OSSL_provider_init_fn OSSL_provider_init;

int OSSL_provider_init(const OSSL_CORE_HANDLE *handle, const OSSL_DISPATCH *in, const OSSL_DISPATCH **out,
                       void **provctx)
{
    OSSL_FUNC_core_get_params_fn *core_get_params = NULL;
    AKV_PROV_CTX *ctx = calloc(1, sizeof(*ctx));
    if (ctx == NULL)
        return 0;
    ctx->handle = handle;
    if (pthread_mutex_init(&ctx->recent_lock, NULL) != 0) {
        free(ctx);
        return 0;
    }
    const OSSL_DISPATCH *core_in = in;
    for (; in != NULL && in->function_id != 0; in++) {
        switch (in->function_id) {
        case OSSL_FUNC_CORE_GET_PARAMS:
            core_get_params = OSSL_FUNC_core_get_params(in);
            break;
        case OSSL_FUNC_CORE_NEW_ERROR:
            ctx->core_new_error = OSSL_FUNC_core_new_error(in);
            break;
        case OSSL_FUNC_CORE_SET_ERROR_DEBUG:
            ctx->core_set_error_debug = OSSL_FUNC_core_set_error_debug(in);
            break;
        case OSSL_FUNC_CORE_VSET_ERROR:
            ctx->core_vset_error = OSSL_FUNC_core_vset_error(in);
            break;
        default:
            break;
        }
    }
    akv_log_init();
    if (!akv_settings_apply(ctx, core_get_params)) {
        akv_teardown(ctx);
        return 0;
    }

    ctx->libctx = OSSL_LIB_CTX_new_from_dispatch(handle, core_in);
    ctx->pub_libctx = OSSL_LIB_CTX_new();
    if (ctx->libctx == NULL || ctx->pub_libctx == NULL ||
        (ctx->pub_default = OSSL_PROVIDER_load(ctx->pub_libctx, "default")) == NULL) {
        akv_teardown(ctx);
        return 0;
    }
    *out = provider_functions;
    *provctx = ctx;
    return 1;
}
