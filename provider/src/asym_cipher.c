/*
 * ASYM_CIPHER for RSA: decryption in the HSM (RSA1_5, RSA-OAEP with SHA-1, RSA-OAEP-256; no OAEP
 * label) with encryption done locally on the public key. AES key wrap is in asym_cipher_aes.c.
 * Decryption pads as OpenSSL does (PKCS#1 v1.5, which `openssl cms`/`smime` rely on) unless the
 * caller says otherwise or rsa_decrypt_padding / AKV_RSA_DECRYPT_PADDING makes OAEP the default
 * (the original provider's default: docs/migrating.md). A decryption that fails with the default
 * padding says which padding to try.
 */
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/params.h>
#include <openssl/rsa.h>
#include <stdlib.h>

#include "akv.h"
#include "param_names.h"

static OSSL_FUNC_asym_cipher_newctx_fn rsa_cipher_newctx;
static OSSL_FUNC_asym_cipher_freectx_fn rsa_cipher_freectx;
static OSSL_FUNC_asym_cipher_dupctx_fn rsa_cipher_dupctx;
static OSSL_FUNC_asym_cipher_encrypt_init_fn rsa_encrypt_init;
static OSSL_FUNC_asym_cipher_encrypt_fn rsa_encrypt;
static OSSL_FUNC_asym_cipher_decrypt_init_fn rsa_decrypt_init;
static OSSL_FUNC_asym_cipher_decrypt_fn rsa_decrypt;
static OSSL_FUNC_asym_cipher_get_ctx_params_fn rsa_cipher_get_ctx_params;
static OSSL_FUNC_asym_cipher_gettable_ctx_params_fn rsa_cipher_ctx_params;
static OSSL_FUNC_asym_cipher_set_ctx_params_fn rsa_cipher_set_ctx_params;
static OSSL_FUNC_asym_cipher_settable_ctx_params_fn rsa_cipher_ctx_params;

typedef struct {
    AKV_PROV_CTX *prov;
    AKV_KEY *key;
    int pad_mode;
    EVP_MD *oaep_md; /* NULL = SHA-1, OpenSSL's default */
    EVP_MD *mgf1_md; /* NULL = same as oaep_md */
    int has_label;
    int pad_chosen; /* the caller set the padding (else it is the default) */
} AKV_RSA_CIPHER_CTX;

static void *rsa_cipher_newctx(void *provctx)
{
    AKV_RSA_CIPHER_CTX *ctx = calloc(1, sizeof(*ctx));
    if (ctx != NULL) {
        ctx->prov = provctx;
        ctx->pad_mode = RSA_PKCS1_PADDING;
    }
    return ctx;
}

static void rsa_cipher_freectx(void *vctx)
{
    AKV_RSA_CIPHER_CTX *ctx = vctx;
    if (ctx == NULL)
        return;
    akv_key_free(ctx->key);
    EVP_MD_free(ctx->oaep_md);
    EVP_MD_free(ctx->mgf1_md);
    free(ctx);
}

static void *rsa_cipher_dupctx(void *vctx)
{
    AKV_RSA_CIPHER_CTX *src = vctx, *dst = malloc(sizeof(*dst));
    if (dst == NULL)
        return NULL;
    *dst = *src;
    akv_key_ref(dst->key);
    if (dst->oaep_md != NULL)
        EVP_MD_up_ref(dst->oaep_md);
    if (dst->mgf1_md != NULL)
        EVP_MD_up_ref(dst->mgf1_md);
    return dst;
}

static int rsa_cipher_init(AKV_RSA_CIPHER_CTX *ctx, AKV_KEY *key, const OSSL_PARAM params[], int decrypting)
{
    if (akv_key_raise_failure(key))
        return 0;
    if (key == NULL || key->type != AKV_KEY_TYPE_RSA || key->pub == NULL) {
        AKV_RAISE(ctx->prov, AKV_R_INVALID_ARGUMENT, "RSA encryption needs an RSA key");
        return 0;
    }
    if (decrypting && key->uri == NULL && !key->local_private) {
        AKV_RAISE(ctx->prov, AKV_R_NO_PRIVATE_KEY, "this RSA key is public only: it can encrypt but not decrypt");
        return 0;
    }
    if (decrypting && !akv_key_allows(key, "decrypt")) {
        AKV_RAISE(ctx->prov, AKV_R_OPERATION_NOT_PERMITTED, "key %s does not allow decrypt (its key_ops: %s)", key->uri,
                  key->key_ops);
        return 0;
    }
    akv_key_free(ctx->key);
    ctx->key = akv_key_ref(key);
    ctx->pad_chosen = 0;
    ctx->pad_mode =
        decrypting && ctx->prov->rsa_decrypt_padding != 0 ? ctx->prov->rsa_decrypt_padding : RSA_PKCS1_PADDING;
    return rsa_cipher_set_ctx_params(ctx, params);
}

static int rsa_encrypt_init(void *vctx, void *provkey, const OSSL_PARAM params[])
{
    return rsa_cipher_init(vctx, provkey, params, 0);
}

static int rsa_decrypt_init(void *vctx, void *provkey, const OSSL_PARAM params[])
{
    return rsa_cipher_init(vctx, provkey, params, 1);
}

/* Encryption (any key) and decryption with a software key run in the default provider. */
static int rsa_local(AKV_RSA_CIPHER_CTX *ctx, int decrypting, unsigned char *out, size_t *outlen, size_t outsize,
                     const unsigned char *in, size_t inlen)
{
    EVP_PKEY_CTX *e = EVP_PKEY_CTX_new_from_pkey(ctx->prov->pub_libctx, ctx->key->pub, NULL);
    int ok = e != NULL && (decrypting ? EVP_PKEY_decrypt_init(e) : EVP_PKEY_encrypt_init(e)) > 0 &&
             EVP_PKEY_CTX_set_rsa_padding(e, ctx->pad_mode) > 0;
    if (ok && ctx->pad_mode == RSA_PKCS1_OAEP_PADDING) {
        if (ctx->oaep_md != NULL)
            ok = EVP_PKEY_CTX_set_rsa_oaep_md(e, ctx->oaep_md) > 0;
        if (ok && ctx->mgf1_md != NULL)
            ok = EVP_PKEY_CTX_set_rsa_mgf1_md(e, ctx->mgf1_md) > 0;
    }
    if (ok && ctx->has_label) {
        /* The HSM cannot decrypt with a label, so encrypting with one would make unusable data. */
        AKV_RAISE(ctx->prov, AKV_R_UNSUPPORTED, "OAEP labels are not supported: encrypt without a label");
        ok = 0;
    }
    if (ok) {
        size_t len = outsize;
        ok = (decrypting ? EVP_PKEY_decrypt(e, out, &len, in, inlen) : EVP_PKEY_encrypt(e, out, &len, in, inlen)) > 0;
        *outlen = len;
    }
    EVP_PKEY_CTX_free(e);
    return ok;
}

static int rsa_encrypt(void *vctx, unsigned char *out, size_t *outlen, size_t outsize, const unsigned char *in,
                       size_t inlen)
{
    return rsa_local(vctx, 0, out, outlen, outsize, in, inlen);
}

static const char *rsa_decrypt_alg(AKV_RSA_CIPHER_CTX *ctx)
{
    if (ctx->pad_mode == RSA_PKCS1_PADDING)
        return "RSA1_5";
    if (ctx->pad_mode != RSA_PKCS1_OAEP_PADDING) {
        AKV_RAISE(ctx->prov, AKV_R_UNSUPPORTED,
                  "RSA padding mode %d is not supported for decryption: use oaep or pkcs1", ctx->pad_mode);
        return NULL;
    }
    if (ctx->has_label) {
        AKV_RAISE(ctx->prov, AKV_R_UNSUPPORTED, "OAEP labels are not supported by the HSM: decrypt without a label");
        return NULL;
    }
    const EVP_MD *md = ctx->oaep_md;
    const EVP_MD *mgf = ctx->mgf1_md != NULL ? ctx->mgf1_md : md;
    int sha1 = md == NULL || EVP_MD_is_a(md, "SHA1");
    int mgf_sha1 = mgf == NULL || EVP_MD_is_a(mgf, "SHA1");
    if (sha1 && mgf_sha1)
        return "RSA-OAEP";
    if (!sha1 && EVP_MD_is_a(md, "SHA2-256") && !mgf_sha1 && EVP_MD_is_a(mgf, "SHA2-256"))
        return "RSA-OAEP-256";
    AKV_RAISE(ctx->prov, AKV_R_UNSUPPORTED,
              "OAEP with digest %s and MGF1 %s is not supported: the HSM decrypts OAEP with SHA-1/SHA-1 "
              "(RSA-OAEP) or SHA-256/SHA-256 (RSA-OAEP-256)",
              md ? EVP_MD_get0_name(md) : "SHA1", mgf ? EVP_MD_get0_name(mgf) : "SHA1");
    return NULL;
}

static int rsa_decrypt(void *vctx, unsigned char *out, size_t *outlen, size_t outsize, const unsigned char *in,
                       size_t inlen)
{
    AKV_RSA_CIPHER_CTX *ctx = vctx;
    size_t modlen = (size_t)EVP_PKEY_get_size(ctx->key->pub);
    if (ctx->key->uri == NULL)
        return rsa_local(ctx, 1, out, outlen, outsize, in, inlen);
    if (out == NULL) {
        *outlen = modlen;
        return 1;
    }
    const char *alg = rsa_decrypt_alg(ctx);
    if (alg == NULL)
        return 0;
    if (inlen != modlen) {
        AKV_RAISE(ctx->prov, AKV_R_INVALID_ARGUMENT, "ciphertext is %zu bytes, the key's modulus is %zu bytes", inlen,
                  modlen);
        return 0;
    }
    if (akv_key_operation_into(ctx->prov, ctx->key, AKV_OP_DECRYPT, alg, in, inlen, out, outlen, outsize))
        return 1;
    /* The HSM refused the ciphertext (not an unreachable agent): the padding may be the wrong one. */
    if (!ctx->pad_chosen && ERR_GET_REASON(ERR_peek_last_error()) == AKV_R_BAD_PARAMETER) {
        int oaep = ctx->pad_mode == RSA_PKCS1_OAEP_PADDING;
        AKV_RAISE(ctx->prov, AKV_R_BAD_PARAMETER,
                  "decrypted with the default padding, %s; hint: if the data was encrypted with %s, decrypt with "
                  "-pkeyopt rsa_padding_mode:%s%s",
                  oaep ? "RSA-OAEP (rsa_decrypt_padding = oaep)" : "PKCS#1 v1.5",
                  oaep ? "PKCS#1 v1.5" : "RSA-OAEP (the original Managed HSM provider's default)",
                  oaep ? "pkcs1" : "oaep",
                  oaep ? ""
                       : ", or make OAEP the default: rsa_decrypt_padding = oaep in the provider's openssl.cnf "
                         "section, or AKV_RSA_DECRYPT_PADDING=oaep");
    }
    return 0;
}

/* The names OpenSSL gives the RSA padding modes in string parameters. */
static const AKV_NAMED_INT pad_mode_names[] = {
    {OSSL_PKEY_RSA_PAD_MODE_OAEP, RSA_PKCS1_OAEP_PADDING},
    {OSSL_PKEY_RSA_PAD_MODE_PKCSV15, RSA_PKCS1_PADDING},
    {OSSL_PKEY_RSA_PAD_MODE_NONE, RSA_NO_PADDING},
    {NULL, 0},
};

static int rsa_cipher_set_ctx_params(void *vctx, const OSSL_PARAM params[])
{
    AKV_RSA_CIPHER_CTX *ctx = vctx;
    const OSSL_PARAM *p;
    if (params == NULL)
        return 1;
    if ((p = OSSL_PARAM_locate_const(params, OSSL_ASYM_CIPHER_PARAM_PAD_MODE)) != NULL) {
        int mode = 0;
        if (!akv_get_named_int_param(p, pad_mode_names, &mode))
            return 0;
        if (mode != RSA_PKCS1_PADDING && mode != RSA_PKCS1_OAEP_PADDING) {
            AKV_RAISE(ctx->prov, AKV_R_UNSUPPORTED, "RSA padding mode %d is not supported: use oaep or pkcs1", mode);
            return 0;
        }
        ctx->pad_mode = mode;
        ctx->pad_chosen = 1;
    }
    const char *names[2] = {OSSL_ASYM_CIPHER_PARAM_OAEP_DIGEST, OSSL_ASYM_CIPHER_PARAM_MGF1_DIGEST};
    EVP_MD **slots[2] = {&ctx->oaep_md, &ctx->mgf1_md};
    for (int i = 0; i < 2; i++) {
        if ((p = OSSL_PARAM_locate_const(params, names[i])) == NULL)
            continue;
        const char *name = NULL;
        if (!OSSL_PARAM_get_utf8_string_ptr(p, &name))
            return 0;
        EVP_MD *md = EVP_MD_fetch(ctx->prov->pub_libctx, name, NULL);
        if (md == NULL) {
            AKV_RAISE(ctx->prov, AKV_R_UNSUPPORTED, "unknown digest '%s'", name);
            return 0;
        }
        EVP_MD_free(*slots[i]);
        *slots[i] = md;
    }
    if ((p = OSSL_PARAM_locate_const(params, OSSL_ASYM_CIPHER_PARAM_OAEP_LABEL)) != NULL) {
        const void *label = NULL;
        size_t len = 0;
        if (!OSSL_PARAM_get_octet_string_ptr(p, &label, &len))
            return 0;
        ctx->has_label = len > 0;
    }
    return 1;
}

static int rsa_cipher_get_ctx_params(void *vctx, OSSL_PARAM params[])
{
    AKV_RSA_CIPHER_CTX *ctx = vctx;
    OSSL_PARAM *p;
    if ((p = OSSL_PARAM_locate(params, OSSL_ASYM_CIPHER_PARAM_PAD_MODE)) != NULL) {
        if (p->data_type == OSSL_PARAM_UTF8_STRING) {
            /* set_ctx_params keeps pad_mode at pkcs1 or oaep, both named */
            if (!OSSL_PARAM_set_utf8_string(p, akv_name_of_value(pad_mode_names, ctx->pad_mode)))
                return 0;
        } else if (!OSSL_PARAM_set_int(p, ctx->pad_mode)) {
            return 0;
        }
    }
    if ((p = OSSL_PARAM_locate(params, OSSL_ASYM_CIPHER_PARAM_OAEP_DIGEST)) != NULL &&
        !OSSL_PARAM_set_utf8_string(p, ctx->oaep_md ? EVP_MD_get0_name(ctx->oaep_md) : "SHA1"))
        return 0;
    if ((p = OSSL_PARAM_locate(params, OSSL_ASYM_CIPHER_PARAM_MGF1_DIGEST)) != NULL) {
        const EVP_MD *m = ctx->mgf1_md != NULL ? ctx->mgf1_md : ctx->oaep_md;
        if (!OSSL_PARAM_set_utf8_string(p, m ? EVP_MD_get0_name(m) : "SHA1"))
            return 0;
    }
    return 1;
}

static const OSSL_PARAM rsa_cipher_params[] = {
    OSSL_PARAM_utf8_string(OSSL_ASYM_CIPHER_PARAM_PAD_MODE, NULL, 0),
    OSSL_PARAM_utf8_string(OSSL_ASYM_CIPHER_PARAM_OAEP_DIGEST, NULL, 0),
    OSSL_PARAM_utf8_string(OSSL_ASYM_CIPHER_PARAM_MGF1_DIGEST, NULL, 0),
    OSSL_PARAM_octet_string(OSSL_ASYM_CIPHER_PARAM_OAEP_LABEL, NULL, 0),
    OSSL_PARAM_END,
};

static const OSSL_PARAM *rsa_cipher_ctx_params(void *vctx, void *provctx)
{
    (void)vctx;
    (void)provctx;
    return rsa_cipher_params;
}

const OSSL_DISPATCH akv_rsa_asym_cipher_functions[] = {
    {OSSL_FUNC_ASYM_CIPHER_NEWCTX, (void (*)(void))rsa_cipher_newctx},
    {OSSL_FUNC_ASYM_CIPHER_FREECTX, (void (*)(void))rsa_cipher_freectx},
    {OSSL_FUNC_ASYM_CIPHER_DUPCTX, (void (*)(void))rsa_cipher_dupctx},
    {OSSL_FUNC_ASYM_CIPHER_ENCRYPT_INIT, (void (*)(void))rsa_encrypt_init},
    {OSSL_FUNC_ASYM_CIPHER_ENCRYPT, (void (*)(void))rsa_encrypt},
    {OSSL_FUNC_ASYM_CIPHER_DECRYPT_INIT, (void (*)(void))rsa_decrypt_init},
    {OSSL_FUNC_ASYM_CIPHER_DECRYPT, (void (*)(void))rsa_decrypt},
    {OSSL_FUNC_ASYM_CIPHER_GET_CTX_PARAMS, (void (*)(void))rsa_cipher_get_ctx_params},
    {OSSL_FUNC_ASYM_CIPHER_GETTABLE_CTX_PARAMS, (void (*)(void))rsa_cipher_ctx_params},
    {OSSL_FUNC_ASYM_CIPHER_SET_CTX_PARAMS, (void (*)(void))rsa_cipher_set_ctx_params},
    {OSSL_FUNC_ASYM_CIPHER_SETTABLE_CTX_PARAMS, (void (*)(void))rsa_cipher_ctx_params},
    {0, NULL},
};
