/*
 * ASYM_CIPHER for AES key-wrap keys: wrap / unwrap (RFC 3394, A128KW/A192KW/A256KW by key size)
 * in the HSM, for `pkeyutl -encrypt/-decrypt -inkey <aes uri>`.
 */
#include <stdio.h>
#include <stdlib.h>

#include "akv.h"

static OSSL_FUNC_asym_cipher_newctx_fn kw_newctx;
static OSSL_FUNC_asym_cipher_freectx_fn kw_freectx;
static OSSL_FUNC_asym_cipher_dupctx_fn kw_dupctx;
static OSSL_FUNC_asym_cipher_encrypt_init_fn kw_encrypt_init;
static OSSL_FUNC_asym_cipher_encrypt_fn kw_encrypt;
static OSSL_FUNC_asym_cipher_decrypt_init_fn kw_decrypt_init;
static OSSL_FUNC_asym_cipher_decrypt_fn kw_decrypt;
static OSSL_FUNC_asym_cipher_get_ctx_params_fn kw_get_ctx_params;
static OSSL_FUNC_asym_cipher_gettable_ctx_params_fn kw_ctx_params;
static OSSL_FUNC_asym_cipher_set_ctx_params_fn kw_set_ctx_params;
static OSSL_FUNC_asym_cipher_settable_ctx_params_fn kw_ctx_params;

typedef struct {
    AKV_PROV_CTX *prov;
    AKV_KEY *key;
} AKV_KW_CTX;

static void *kw_newctx(void *provctx)
{
    AKV_KW_CTX *ctx = calloc(1, sizeof(*ctx));
    if (ctx != NULL)
        ctx->prov = provctx;
    return ctx;
}

static void kw_freectx(void *vctx)
{
    AKV_KW_CTX *ctx = vctx;
    if (ctx != NULL) {
        akv_key_free(ctx->key);
        free(ctx);
    }
}

static void *kw_dupctx(void *vctx)
{
    AKV_KW_CTX *src = vctx, *dst = malloc(sizeof(*dst));
    if (dst != NULL) {
        *dst = *src;
        akv_key_ref(dst->key);
    }
    return dst;
}

static int kw_init(AKV_KW_CTX *ctx, AKV_KEY *key, const char *op)
{
    if (key == NULL || key->type != AKV_KEY_TYPE_AES || key->uri == NULL) {
        AKV_RAISE(ctx->prov, AKV_R_INVALID_ARGUMENT, "AES key wrap needs an AES (oct-HSM) key from an akv URI");
        return 0;
    }
    if (!akv_key_allows(key, op)) {
        AKV_RAISE(ctx->prov, AKV_R_OPERATION_NOT_PERMITTED, "key %s does not allow %s (its key_ops: %s)", key->uri, op,
                  key->key_ops);
        return 0;
    }
    akv_key_free(ctx->key);
    ctx->key = akv_key_ref(key);
    return 1;
}

static int kw_encrypt_init(void *vctx, void *provkey, const OSSL_PARAM params[])
{
    (void)params;
    return kw_init(vctx, provkey, "wrapKey");
}

static int kw_decrypt_init(void *vctx, void *provkey, const OSSL_PARAM params[])
{
    (void)params;
    return kw_init(vctx, provkey, "unwrapKey");
}

static int kw_run(AKV_KW_CTX *ctx, int op, unsigned char *out, size_t *outlen, size_t outsize, const unsigned char *in,
                  size_t inlen)
{
    int wrapping = op == AKV_OP_WRAP;
    size_t min = wrapping ? 16 : 24;
    if (out == NULL) {
        *outlen = wrapping ? inlen + 8 : (inlen >= 8 ? inlen - 8 : 0);
        return 1;
    }
    if (inlen < min || inlen % 8 != 0 || inlen > 4096) {
        AKV_RAISE(ctx->prov, AKV_R_INVALID_ARGUMENT,
                  "AES key wrap (RFC 3394) %s needs a multiple of 8 bytes, at least %zu (got %zu)",
                  wrapping ? "input" : "ciphertext", min, inlen);
        return 0;
    }
    char alg[16];
    snprintf(alg, sizeof(alg), "A%uKW", ctx->key->bits);
    return akv_key_operation_into(ctx->prov, ctx->key, op, alg, in, inlen, out, outlen, outsize);
}

static int kw_encrypt(void *vctx, unsigned char *out, size_t *outlen, size_t outsize, const unsigned char *in,
                      size_t inlen)
{
    return kw_run(vctx, AKV_OP_WRAP, out, outlen, outsize, in, inlen);
}

static int kw_decrypt(void *vctx, unsigned char *out, size_t *outlen, size_t outsize, const unsigned char *in,
                      size_t inlen)
{
    return kw_run(vctx, AKV_OP_UNWRAP, out, outlen, outsize, in, inlen);
}

static int kw_set_ctx_params(void *vctx, const OSSL_PARAM params[])
{
    (void)vctx;
    (void)params;
    return 1;
}

static int kw_get_ctx_params(void *vctx, OSSL_PARAM params[])
{
    (void)vctx;
    (void)params;
    return 1;
}

static const OSSL_PARAM *kw_ctx_params(void *vctx, void *provctx)
{
    static const OSSL_PARAM none[] = {OSSL_PARAM_END};
    (void)vctx;
    (void)provctx;
    return none;
}

const OSSL_DISPATCH akv_aes_kw_asym_cipher_functions[] = {
    {OSSL_FUNC_ASYM_CIPHER_NEWCTX, (void (*)(void))kw_newctx},
    {OSSL_FUNC_ASYM_CIPHER_FREECTX, (void (*)(void))kw_freectx},
    {OSSL_FUNC_ASYM_CIPHER_DUPCTX, (void (*)(void))kw_dupctx},
    {OSSL_FUNC_ASYM_CIPHER_ENCRYPT_INIT, (void (*)(void))kw_encrypt_init},
    {OSSL_FUNC_ASYM_CIPHER_ENCRYPT, (void (*)(void))kw_encrypt},
    {OSSL_FUNC_ASYM_CIPHER_DECRYPT_INIT, (void (*)(void))kw_decrypt_init},
    {OSSL_FUNC_ASYM_CIPHER_DECRYPT, (void (*)(void))kw_decrypt},
    {OSSL_FUNC_ASYM_CIPHER_GET_CTX_PARAMS, (void (*)(void))kw_get_ctx_params},
    {OSSL_FUNC_ASYM_CIPHER_GETTABLE_CTX_PARAMS, (void (*)(void))kw_ctx_params},
    {OSSL_FUNC_ASYM_CIPHER_SET_CTX_PARAMS, (void (*)(void))kw_set_ctx_params},
    {OSSL_FUNC_ASYM_CIPHER_SETTABLE_CTX_PARAMS, (void (*)(void))kw_ctx_params},
    {0, NULL},
};
