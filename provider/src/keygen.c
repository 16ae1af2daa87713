/*
 * Ordinary software keys in the RSA/EC keymgmt. akv_provider registers keymgmt under the standard
 * names "RSA" and "EC" so that TLS and X.509 treat HSM keys as ordinary keys; when it is loaded
 * before the default provider, OpenSSL also picks it for keys that have nothing to do with the HSM:
 * TLS ephemeral ECDHE keys, the peer's key share, `openssl genpkey`. Those are generated here by the
 * default provider (in the provider's private library context) and held as "local" keys: they
 * export completely, so the default provider's key exchange and encoders can use them.
 * HSM keys are never affected: they have a URI and no private part here.
 */
#include <openssl/core_names.h>
#include <openssl/params.h>
#include <openssl/prov_ssl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "akv.h"
#include "keygen.h"

typedef struct {
    AKV_PROV_CTX *prov;
    int type;
    int selection;
    EVP_PKEY_CTX *pctx;
} AKV_GEN_CTX;

static void *gen_init(void *provctx, int selection, const OSSL_PARAM params[], int type)
{
    AKV_PROV_CTX *prov = provctx;
    AKV_GEN_CTX *g = calloc(1, sizeof(*g));
    if (g == NULL)
        return NULL;
    g->prov = prov;
    g->type = type;
    g->selection = selection;
    g->pctx = EVP_PKEY_CTX_new_from_name(prov->pub_libctx, type == AKV_KEY_TYPE_RSA ? AKV_RSA_NAME : AKV_EC_NAME, NULL);
    int ok = g->pctx != NULL;
    if (ok && (selection & OSSL_KEYMGMT_SELECT_KEYPAIR) != 0)
        ok = EVP_PKEY_keygen_init(g->pctx) > 0;
    else if (ok)
        ok = EVP_PKEY_paramgen_init(g->pctx) > 0;
    if (ok && params != NULL)
        ok = EVP_PKEY_CTX_set_params(g->pctx, params) > 0;
    if (!ok) {
        EVP_PKEY_CTX_free(g->pctx);
        free(g);
        return NULL;
    }
    return g;
}

void *akv_rsa_gen_init(void *provctx, int selection, const OSSL_PARAM params[])
{
    return gen_init(provctx, selection, params, AKV_KEY_TYPE_RSA);
}

void *akv_ec_gen_init(void *provctx, int selection, const OSSL_PARAM params[])
{
    return gen_init(provctx, selection, params, AKV_KEY_TYPE_EC);
}

int akv_gen_set_params(void *genctx, const OSSL_PARAM params[])
{
    AKV_GEN_CTX *g = genctx;
    return params == NULL || EVP_PKEY_CTX_set_params(g->pctx, params) > 0;
}

static const OSSL_PARAM *gen_settable(void *provctx, const char *name)
{
    AKV_PROV_CTX *prov = provctx;
    EVP_KEYMGMT *km = EVP_KEYMGMT_fetch(prov->pub_libctx, name, NULL);
    /* The table belongs to the default provider, which stays loaded as long as we are. */
    const OSSL_PARAM *p = km != NULL ? EVP_KEYMGMT_gen_settable_params(km) : NULL;
    EVP_KEYMGMT_free(km);
    return p;
}

const OSSL_PARAM *akv_rsa_gen_settable_params(void *genctx, void *provctx)
{
    (void)genctx;
    return gen_settable(provctx, AKV_RSA_NAME);
}

const OSSL_PARAM *akv_ec_gen_settable_params(void *genctx, void *provctx)
{
    (void)genctx;
    return gen_settable(provctx, AKV_EC_NAME);
}

/* Copies the template's EC group (EVP_PKEY_keygen with a parameters-only template). */
int akv_gen_set_template(void *genctx, void *templ)
{
    AKV_GEN_CTX *g = genctx;
    AKV_KEY *t = templ;
    char group[64];
    if (t == NULL || t->pub == NULL || g->type != AKV_KEY_TYPE_EC)
        return 1;
    if (!EVP_PKEY_get_utf8_string_param(t->pub, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group), NULL))
        return 0;
    return EVP_PKEY_CTX_set_group_name(g->pctx, group) > 0;
}

void *akv_gen(void *genctx, OSSL_CALLBACK *cb, void *cbarg)
{
    AKV_GEN_CTX *g = genctx;
    EVP_PKEY *pkey = NULL;
    (void)cb;
    (void)cbarg;
    int ok = (g->selection & OSSL_KEYMGMT_SELECT_KEYPAIR) != 0 ? EVP_PKEY_generate(g->pctx, &pkey) > 0
                                                               : EVP_PKEY_paramgen(g->pctx, &pkey) > 0;
    if (!ok)
        return NULL;
    AKV_KEY *key = akv_key_new(g->prov, g->type);
    if (key == NULL) {
        EVP_PKEY_free(pkey);
        return NULL;
    }
    key->pub = pkey;
    key->local_private = (g->selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY) != 0;
    key->bits = (unsigned)EVP_PKEY_get_bits(pkey);
    return key;
}

void akv_gen_cleanup(void *genctx)
{
    AKV_GEN_CTX *g = genctx;
    if (g == NULL)
        return;
    EVP_PKEY_CTX_free(g->pctx);
    free(g);
}

/* Only software keys change after creation (e.g. the peer's TLS key share being set). */
int akv_key_set_params(void *keydata, const OSSL_PARAM params[])
{
    AKV_KEY *key = keydata;
    if (key == NULL || key->uri != NULL || key->pub == NULL)
        return 0;
    return EVP_PKEY_set_params(key->pub, (OSSL_PARAM *)params) > 0;
}

static const OSSL_PARAM ec_settable[] = {
    OSSL_PARAM_octet_string(OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, NULL, 0),
    OSSL_PARAM_END,
};

const OSSL_PARAM *akv_ec_settable_params(void *provctx)
{
    (void)provctx;
    return ec_settable;
}

static const OSSL_PARAM rsa_settable[] = {OSSL_PARAM_END};

const OSSL_PARAM *akv_rsa_settable_params(void *provctx)
{
    (void)provctx;
    return rsa_settable;
}

/*
 * TLS learns its groups from provider capabilities and keeps a group only when the provider that
 * announces it is also the one an unqualified fetch of its key type returns. With akv_provider
 * first, that is us for "EC", so we announce the NIST curves too (the keys come from gen above).
 * With default first, TLS keeps default's entries and ignores these.
 */
typedef struct {
    const char *name, *internal;
    unsigned int id, secbits;
} tls_group;

static const tls_group ec_groups[] = {
    {"secp256r1", "prime256v1", 23, 128},
    {"secp384r1", "secp384r1", 24, 192},
    {"secp521r1", "secp521r1", 25, 256},
    /* The same groups under their NIST names. */
    {"P-256", "prime256v1", 23, 128},
    {"P-384", "secp384r1", 24, 192},
    {"P-521", "secp521r1", 25, 256},
};

int akv_get_capabilities(void *provctx, const char *capability, OSSL_CALLBACK *cb, void *arg)
{
    (void)provctx;
    if (strcasecmp(capability, "TLS-GROUP") != 0)
        return 0;
    for (size_t i = 0; i < sizeof(ec_groups) / sizeof(ec_groups[0]); i++) {
        unsigned int id = ec_groups[i].id, secbits = ec_groups[i].secbits;
        int min_tls = TLS1_VERSION, max_tls = 0, min_dtls = DTLS1_VERSION, max_dtls = 0, is_kem = 0;
        OSSL_PARAM params[] = {
            OSSL_PARAM_utf8_string(OSSL_CAPABILITY_TLS_GROUP_NAME, (char *)ec_groups[i].name, 0),
            OSSL_PARAM_utf8_string(OSSL_CAPABILITY_TLS_GROUP_NAME_INTERNAL, (char *)ec_groups[i].internal, 0),
            OSSL_PARAM_utf8_string(OSSL_CAPABILITY_TLS_GROUP_ALG, AKV_EC_NAME, 0),
            OSSL_PARAM_uint(OSSL_CAPABILITY_TLS_GROUP_ID, &id),
            OSSL_PARAM_uint(OSSL_CAPABILITY_TLS_GROUP_SECURITY_BITS, &secbits),
            OSSL_PARAM_int(OSSL_CAPABILITY_TLS_GROUP_MIN_TLS, &min_tls),
            OSSL_PARAM_int(OSSL_CAPABILITY_TLS_GROUP_MAX_TLS, &max_tls),
            OSSL_PARAM_int(OSSL_CAPABILITY_TLS_GROUP_MIN_DTLS, &min_dtls),
            OSSL_PARAM_int(OSSL_CAPABILITY_TLS_GROUP_MAX_DTLS, &max_dtls),
            OSSL_PARAM_int(OSSL_CAPABILITY_TLS_GROUP_IS_KEM, &is_kem),
            OSSL_PARAM_END,
        };
        /* OSSL_PARAM_utf8_string with size 0 needs the real length for the core's copy. */
        for (int j = 0; j < 3; j++)
            params[j].data_size = strlen(params[j].data);
        if (!cb(params, arg))
            return 0;
    }
    return 1;
}
