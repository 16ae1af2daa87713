/*
 * SIGNATURE for RSA (PKCS#1 v1.5 and PSS) and ECDSA. Signing sends a digest to the HSM (one SIGN
 * round trip); digest-sign hashes locally in an EVP_MD_CTX so that dupctx is a plain copy;
 * verification runs locally on the public key. Init functions only check parameters (OpenSSL's
 * TLS code probes keys with trial inits) and never talk to the agent.
 */
#include <openssl/rsa.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "signature.h"

static OSSL_FUNC_signature_newctx_fn rsa_newctx;
static OSSL_FUNC_signature_newctx_fn ecdsa_newctx;
static OSSL_FUNC_signature_freectx_fn sig_freectx;
static OSSL_FUNC_signature_dupctx_fn sig_dupctx;
static OSSL_FUNC_signature_sign_init_fn sign_init;
static OSSL_FUNC_signature_sign_fn sig_sign;
static OSSL_FUNC_signature_verify_init_fn verify_init;
static OSSL_FUNC_signature_verify_fn sig_verify;
static OSSL_FUNC_signature_digest_sign_init_fn digest_sign_init;
static OSSL_FUNC_signature_digest_sign_update_fn digest_update;
static OSSL_FUNC_signature_digest_sign_final_fn digest_sign_final;
static OSSL_FUNC_signature_digest_verify_init_fn digest_verify_init;
static OSSL_FUNC_signature_digest_verify_update_fn digest_update;
static OSSL_FUNC_signature_digest_verify_final_fn digest_verify_final;

static void *sig_newctx(void *provctx, const char *propq, int is_rsa)
{
    (void)propq;
    AKV_SIG_CTX *ctx = calloc(1, sizeof(*ctx));
    if (ctx == NULL)
        return NULL;
    ctx->prov = provctx;
    ctx->is_rsa = is_rsa;
    ctx->pad_mode = RSA_PKCS1_PADDING;
    ctx->saltlen = RSA_PSS_SALTLEN_DIGEST;
    return ctx;
}

static void *rsa_newctx(void *provctx, const char *propq)
{
    return sig_newctx(provctx, propq, 1);
}

static void *ecdsa_newctx(void *provctx, const char *propq)
{
    return sig_newctx(provctx, propq, 0);
}

static void sig_freectx(void *vctx)
{
    AKV_SIG_CTX *ctx = vctx;
    if (ctx == NULL)
        return;
    akv_key_free(ctx->key);
    EVP_MD_free(ctx->md);
    EVP_MD_free(ctx->mgf1_md);
    EVP_MD_CTX_free(ctx->mdctx);
    free(ctx);
}

static void *sig_dupctx(void *vctx)
{
    AKV_SIG_CTX *src = vctx;
    AKV_SIG_CTX *dst = malloc(sizeof(*dst));
    if (dst == NULL)
        return NULL;
    *dst = *src;
    dst->mdctx = NULL;
    if (dst->key != NULL)
        akv_key_ref(dst->key);
    if (dst->md != NULL)
        EVP_MD_up_ref(dst->md);
    if (dst->mgf1_md != NULL)
        EVP_MD_up_ref(dst->mgf1_md);
    if (src->mdctx != NULL) {
        dst->mdctx = EVP_MD_CTX_new();
        if (dst->mdctx == NULL || !EVP_MD_CTX_copy_ex(dst->mdctx, src->mdctx)) {
            sig_freectx(dst);
            return NULL;
        }
    }
    return dst;
}

static int sig_init(AKV_SIG_CTX *ctx, void *provkey, const OSSL_PARAM params[], int signing)
{
    AKV_KEY *key = provkey;
    ctx->signing = signing;
    ctx->aid_len = 0;
    if (key != NULL) {
        if (akv_key_raise_failure(key))
            return 0;
        if (key->type != (ctx->is_rsa ? AKV_KEY_TYPE_RSA : AKV_KEY_TYPE_EC) || key->pub == NULL) {
            AKV_RAISE(ctx->prov, AKV_R_INVALID_ARGUMENT, "%s key cannot be used for %s signatures",
                      akv_key_type_name(key), ctx->is_rsa ? "RSA" : "ECDSA");
            return 0;
        }
        if (signing && key->uri == NULL && !key->local_private) {
            AKV_RAISE(ctx->prov, AKV_R_NO_PRIVATE_KEY,
                      "this key is public only (not an akv URI or key reference): it can verify but not sign");
            return 0;
        }
        if (signing && !akv_key_allows(key, "sign")) {
            AKV_RAISE(ctx->prov, AKV_R_OPERATION_NOT_PERMITTED, "key %s does not allow sign (its key_ops: %s)",
                      key->uri, key->key_ops);
            return 0;
        }
        akv_key_free(ctx->key);
        ctx->key = akv_key_ref(key);
    }
    if (ctx->key == NULL) {
        AKV_RAISE(ctx->prov, AKV_R_INVALID_ARGUMENT, "no key given to the signature operation");
        return 0;
    }
    return akv_sig_set_ctx_params(ctx, params);
}

static int sign_init(void *vctx, void *provkey, const OSSL_PARAM params[])
{
    ((AKV_SIG_CTX *)vctx)->message_mode = 0;
    return sig_init(vctx, provkey, params, 1);
}

static int verify_init(void *vctx, void *provkey, const OSSL_PARAM params[])
{
    return sig_init(vctx, provkey, params, 0);
}

static int local_sign(AKV_SIG_CTX *ctx, unsigned char *sig, size_t *siglen, size_t sigsize, const unsigned char *tbs,
                      size_t tbslen);

static size_t max_sig_size(const AKV_SIG_CTX *ctx)
{
    return (size_t)EVP_PKEY_get_size(ctx->key->pub);
}

/* With a digest chosen, the input to sign must be exactly that digest's length. */
static int check_input_is_digest(AKV_SIG_CTX *ctx, size_t tbslen)
{
    if (ctx->md == NULL || tbslen == (size_t)EVP_MD_get_size(ctx->md))
        return 1;
    AKV_RAISE(ctx->prov, AKV_R_INVALID_ARGUMENT, "input is %zu bytes but a %s digest is %d bytes", tbslen,
              EVP_MD_get0_name(ctx->md), EVP_MD_get_size(ctx->md));
    return 0;
}

enum sig_buffer { SIG_SIZE_ANSWERED, SIG_BUFFER_TOO_SMALL, SIG_BUFFER_OK };

/* Both sign paths: sig == NULL asks for the signature size; else the buffer must hold the largest. */
static enum sig_buffer check_sig_buffer(AKV_SIG_CTX *ctx, const unsigned char *sig, size_t *siglen, size_t sigsize)
{
    if (sig == NULL) {
        *siglen = max_sig_size(ctx);
        return SIG_SIZE_ANSWERED;
    }
    if (sigsize < max_sig_size(ctx)) {
        AKV_RAISE(ctx->prov, AKV_R_INVALID_ARGUMENT, "signature buffer of %zu bytes is too small (need %zu)", sigsize,
                  max_sig_size(ctx));
        return SIG_BUFFER_TOO_SMALL;
    }
    return SIG_BUFFER_OK;
}

/* The HSM's RSxxx or PSxxx algorithm for this context, after checking the digest, the input and the padding. */
static int rsa_sign_alg(AKV_SIG_CTX *ctx, size_t tbslen, char *alg, size_t alglen)
{
    if (ctx->md == NULL) {
        AKV_RAISE(ctx->prov, AKV_R_INVALID_ARGUMENT,
                  "RSA signing in the HSM needs the digest algorithm: add -pkeyopt digest:sha256 (or sha384, "
                  "sha512) to sign a precomputed digest");
        return 0;
    }
    if (!check_input_is_digest(ctx, tbslen))
        return 0;
    if (ctx->pad_mode == RSA_PKCS1_PSS_PADDING) {
        if (!akv_sig_check_pss(ctx))
            return 0;
    } else if (ctx->pad_mode != RSA_PKCS1_PADDING) {
        AKV_RAISE(ctx->prov, AKV_R_UNSUPPORTED,
                  "RSA padding mode %d is not supported for signing: the HSM signs with pkcs1 or pss", ctx->pad_mode);
        return 0;
    }
    snprintf(alg, alglen, "%s%d", ctx->pad_mode == RSA_PKCS1_PSS_PADDING ? "PS" : "RS", akv_hsm_digest_bits(ctx->md));
    return 1;
}

/* The HSM's ES* algorithm for the key's curve, and the digest fitted to the curve's order into `digest`. */
static int ecdsa_sign_input(AKV_SIG_CTX *ctx, const unsigned char *tbs, size_t tbslen, unsigned char digest[64],
                            size_t *digest_len, char *alg, size_t alglen)
{
    const char *es = akv_ecdsa_alg(ctx->key->curve);
    if (es == NULL) {
        AKV_RAISE(ctx->prov, AKV_R_UNSUPPORTED, "EC curve '%s' of %s is not supported", ctx->key->curve, ctx->key->uri);
        return 0;
    }
    if (!check_input_is_digest(ctx, tbslen))
        return 0;
    if (tbslen == 0 || tbslen > 64) {
        AKV_RAISE(ctx->prov, AKV_R_INVALID_ARGUMENT, "ECDSA input must be a digest of 1 to 64 bytes, not %zu", tbslen);
        return 0;
    }
    /* ECDSA uses the leftmost order-size bits of the digest; shorter digests keep their value. */
    *digest_len = akv_ecdsa_digest_len(ctx->key->curve);
    akv_ecdsa_fit_digest(tbs, tbslen, digest, *digest_len);
    snprintf(alg, alglen, "%s", es);
    return 1;
}

/* The HSM's signature as OpenSSL wants it: RSA as is (exactly the modulus size), ECDSA r||s as DER. */
static int store_hsm_signature(AKV_SIG_CTX *ctx, const unsigned char *out, size_t outlen, unsigned char *sig,
                               size_t *siglen, size_t sigsize)
{
    if (ctx->is_rsa) {
        size_t modlen = max_sig_size(ctx);
        if (outlen != modlen || outlen > sigsize) {
            AKV_RAISE(ctx->prov, AKV_R_AGENT_PROTOCOL, "the HSM returned a %zu-byte RSA signature, expected %zu",
                      outlen, modlen);
            return 0;
        }
        memcpy(sig, out, outlen);
        *siglen = outlen;
        return 1;
    }
    size_t order = akv_curve_order_bytes(ctx->key->curve), der_len = 0;
    if (!akv_ecdsa_raw_to_der(out, outlen, order, sig, sigsize, &der_len)) {
        AKV_RAISE(ctx->prov, AKV_R_AGENT_PROTOCOL,
                  "the HSM returned a %zu-byte ECDSA signature, expected r||s of %zu bytes", outlen, 2 * order);
        return 0;
    }
    *siglen = der_len;
    return 1;
}

static int do_sign(AKV_SIG_CTX *ctx, unsigned char *sig, size_t *siglen, size_t sigsize, const unsigned char *tbs,
                   size_t tbslen)
{
    if (ctx->key->uri == NULL)
        return local_sign(ctx, sig, siglen, sigsize, tbs, tbslen);
    char alg[16];
    unsigned char digest[64];
    const unsigned char *input = tbs;
    size_t inlen = tbslen;
    if (ctx->is_rsa) {
        if (!rsa_sign_alg(ctx, tbslen, alg, sizeof(alg)))
            return 0;
    } else {
        if (!ecdsa_sign_input(ctx, tbs, tbslen, digest, &inlen, alg, sizeof(alg)))
            return 0;
        input = digest;
    }
    unsigned char *out = NULL;
    size_t outlen = 0;
    if (!akv_key_operation(ctx->prov, ctx->key, AKV_OP_SIGN, alg, input, inlen, &out, &outlen))
        return 0;
    int ok = store_hsm_signature(ctx, out, outlen, sig, siglen, sigsize);
    akv_secure_free(out, outlen);
    return ok;
}

static int digest_update(void *vctx, const unsigned char *data, size_t datalen);
static int digest_sign_final(void *vctx, unsigned char *sig, size_t *siglen, size_t sigsize);

static int sig_sign(void *vctx, unsigned char *sig, size_t *siglen, size_t sigsize, const unsigned char *tbs,
                    size_t tbslen)
{
    AKV_SIG_CTX *ctx = vctx;
    if (ctx->key == NULL)
        return 0;
    enum sig_buffer buffer = check_sig_buffer(ctx, sig, siglen, sigsize);
    if (buffer != SIG_BUFFER_OK)
        return buffer == SIG_SIZE_ANSWERED;
    /* EVP_PKEY_sign after EVP_PKEY_sign_message_init: the input is the message, not its digest. */
    if (ctx->message_mode)
        return digest_update(ctx, tbs, tbslen) && digest_sign_final(ctx, sig, siglen, sigsize);
    return do_sign(ctx, sig, siglen, sigsize, tbs, tbslen);
}

/* Applies this context's padding, salt and digests to a default-provider context. */
static int configure_local(AKV_SIG_CTX *ctx, EVP_PKEY_CTX *c)
{
    int ok = 1;
    if (ctx->is_rsa) {
        ok = EVP_PKEY_CTX_set_rsa_padding(c, ctx->pad_mode) > 0;
        if (ok && ctx->pad_mode == RSA_PKCS1_PSS_PADDING) {
            int saltlen =
                ctx->saltlen_set ? ctx->saltlen : (ctx->signing ? RSA_PSS_SALTLEN_DIGEST : RSA_PSS_SALTLEN_AUTO);
            ok = EVP_PKEY_CTX_set_rsa_pss_saltlen(c, saltlen) > 0;
            if (ok && ctx->mgf1_md != NULL)
                ok = EVP_PKEY_CTX_set_rsa_mgf1_md(c, ctx->mgf1_md) > 0;
        }
    }
    if (ok && ctx->md != NULL)
        ok = EVP_PKEY_CTX_set_signature_md(c, ctx->md) > 0;
    return ok;
}

/* Verifies locally with the public key, through the default provider in our library context. */
static int do_verify(AKV_SIG_CTX *ctx, const unsigned char *sig, size_t siglen, const unsigned char *tbs, size_t tbslen)
{
    EVP_PKEY_CTX *v = EVP_PKEY_CTX_new_from_pkey(ctx->prov->pub_libctx, ctx->key->pub, NULL);
    int ok = v != NULL && EVP_PKEY_verify_init(v) > 0 && configure_local(ctx, v) &&
             EVP_PKEY_verify(v, sig, siglen, tbs, tbslen) == 1;
    EVP_PKEY_CTX_free(v);
    return ok;
}

/* Signs with a software key (keygen.c), never an HSM key. */
static int local_sign(AKV_SIG_CTX *ctx, unsigned char *sig, size_t *siglen, size_t sigsize, const unsigned char *tbs,
                      size_t tbslen)
{
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_pkey(ctx->prov->pub_libctx, ctx->key->pub, NULL);
    size_t len = sigsize;
    int ok = c != NULL && EVP_PKEY_sign_init(c) > 0 && configure_local(ctx, c) &&
             EVP_PKEY_sign(c, sig, &len, tbs, tbslen) > 0;
    EVP_PKEY_CTX_free(c);
    if (ok)
        *siglen = len;
    return ok;
}

static int sig_verify(void *vctx, const unsigned char *sig, size_t siglen, const unsigned char *tbs, size_t tbslen)
{
    AKV_SIG_CTX *ctx = vctx;
    if (ctx->key == NULL)
        return 0;
    return do_verify(ctx, sig, siglen, tbs, tbslen);
}

static int digest_init(AKV_SIG_CTX *ctx, const char *mdname, void *provkey, const OSSL_PARAM params[], int signing)
{
    ctx->signing = signing;
    ctx->message_mode = 0;
    if (mdname == NULL || *mdname == '\0')
        mdname = "SHA256";
    EVP_MD *md = akv_sig_fetch_md(ctx, mdname, NULL);
    if (md == NULL)
        return 0;
    EVP_MD_free(ctx->md);
    ctx->md = md;
    if (!sig_init(ctx, provkey, params, signing))
        return 0;
    if (ctx->mdctx == NULL && (ctx->mdctx = EVP_MD_CTX_new()) == NULL)
        return 0;
    return EVP_DigestInit_ex(ctx->mdctx, ctx->md, NULL);
}

static int digest_sign_init(void *vctx, const char *mdname, void *provkey, const OSSL_PARAM params[])
{
    return digest_init(vctx, mdname, provkey, params, 1);
}

static int digest_verify_init(void *vctx, const char *mdname, void *provkey, const OSSL_PARAM params[])
{
    return digest_init(vctx, mdname, provkey, params, 0);
}

static int digest_update(void *vctx, const unsigned char *data, size_t datalen)
{
    AKV_SIG_CTX *ctx = vctx;
    return ctx->mdctx != NULL && EVP_DigestUpdate(ctx->mdctx, data, datalen);
}

static int digest_sign_final(void *vctx, unsigned char *sig, size_t *siglen, size_t sigsize)
{
    AKV_SIG_CTX *ctx = vctx;
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int dlen = 0;
    if (ctx->mdctx == NULL || ctx->key == NULL)
        return 0;
    enum sig_buffer buffer = check_sig_buffer(ctx, sig, siglen, sigsize);
    if (buffer != SIG_BUFFER_OK)
        return buffer == SIG_SIZE_ANSWERED;
    if (!EVP_DigestFinal_ex(ctx->mdctx, digest, &dlen))
        return 0;
    return do_sign(ctx, sig, siglen, sigsize, digest, dlen);
}

static int digest_verify_final(void *vctx, const unsigned char *sig, size_t siglen)
{
    AKV_SIG_CTX *ctx = vctx;
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int dlen = 0;
    if (ctx->mdctx == NULL || ctx->key == NULL || !EVP_DigestFinal_ex(ctx->mdctx, digest, &dlen))
        return 0;
    return do_verify(ctx, sig, siglen, digest, dlen);
}

#ifdef OSSL_FUNC_SIGNATURE_SIGN_MESSAGE_INIT
/*
 * OpenSSL 3.4+ composite signature algorithms (RSA-SHA256, ECDSA-SHA384, ...) for
 * EVP_PKEY_sign_init_ex2 / EVP_PKEY_sign_message_init: the name fixes the digest, the signing is
 * the same HSM round trip as above. Signing only: verifying needs no private key, and the default
 * provider's composites verify our keys through their exported public half.
 */
static void *composite_newctx(void *provctx, int is_rsa, const char *md)
{
    AKV_SIG_CTX *ctx = sig_newctx(provctx, NULL, is_rsa);
    if (ctx != NULL)
        ctx->composite_md = md;
    return ctx;
}

/* EVP_PKEY_sign_init_ex2 with a composite: EVP_PKEY_sign then gets the digest. */
static int composite_sign_init(void *vctx, void *provkey, const OSSL_PARAM params[])
{
    AKV_SIG_CTX *ctx = vctx;
    EVP_MD *md = akv_sig_fetch_md(ctx, ctx->composite_md, NULL);
    if (md == NULL)
        return 0;
    EVP_MD_free(ctx->md);
    ctx->md = md;
    ctx->message_mode = 0;
    return sig_init(ctx, provkey, params, 1);
}

/* EVP_PKEY_sign_message_init: the message is hashed here (update/final, or one-shot sign). */
static int composite_sign_message_init(void *vctx, void *provkey, const OSSL_PARAM params[])
{
    AKV_SIG_CTX *ctx = vctx;
    if (!digest_init(ctx, ctx->composite_md, provkey, params, 1))
        return 0;
    ctx->message_mode = 1;
    return 1;
}

static int composite_sign_message_final(void *vctx, unsigned char *sig, size_t *siglen, size_t sigsize)
{
    return digest_sign_final(vctx, sig, siglen, sigsize);
}

static const char **rsa_key_types(void)
{
    static const char *types[] = {AKV_RSA_NAME, NULL};
    return types;
}

static const char **ec_key_types(void)
{
    static const char *types[] = {AKV_EC_NAME, NULL};
    return types;
}

/* clang-format off */
#define COMPOSITE(prefix, is_rsa, md, gettable, settable, key_types)                           \
    static void *prefix##_newctx(void *provctx, const char *propq)                              \
    {                                                                                           \
        (void)propq;                                                                            \
        return composite_newctx(provctx, is_rsa, md);                                           \
    }                                                                                           \
    const OSSL_DISPATCH akv_##prefix##_signature_functions[] = {                                \
        {OSSL_FUNC_SIGNATURE_NEWCTX, (void (*)(void))prefix##_newctx},                          \
        {OSSL_FUNC_SIGNATURE_FREECTX, (void (*)(void))sig_freectx},                             \
        {OSSL_FUNC_SIGNATURE_DUPCTX, (void (*)(void))sig_dupctx},                               \
        {OSSL_FUNC_SIGNATURE_SIGN_INIT, (void (*)(void))composite_sign_init},                   \
        {OSSL_FUNC_SIGNATURE_SIGN, (void (*)(void))sig_sign},                                   \
        {OSSL_FUNC_SIGNATURE_SIGN_MESSAGE_INIT, (void (*)(void))composite_sign_message_init},   \
        {OSSL_FUNC_SIGNATURE_SIGN_MESSAGE_UPDATE, (void (*)(void))digest_update},               \
        {OSSL_FUNC_SIGNATURE_SIGN_MESSAGE_FINAL, (void (*)(void))composite_sign_message_final}, \
        {OSSL_FUNC_SIGNATURE_QUERY_KEY_TYPES, (void (*)(void))key_types},                       \
        {OSSL_FUNC_SIGNATURE_GET_CTX_PARAMS, (void (*)(void))akv_sig_get_ctx_params},           \
        {OSSL_FUNC_SIGNATURE_SET_CTX_PARAMS, (void (*)(void))akv_sig_set_ctx_params},           \
        {OSSL_FUNC_SIGNATURE_GETTABLE_CTX_PARAMS, (void (*)(void))gettable},                    \
        {OSSL_FUNC_SIGNATURE_SETTABLE_CTX_PARAMS, (void (*)(void))settable},                    \
        {0, NULL},                                                                              \
    };
/* clang-format on */

COMPOSITE(rsa_sha256, 1, "SHA256", akv_rsa_gettable_sig_params, akv_rsa_settable_sig_params, rsa_key_types)
COMPOSITE(rsa_sha384, 1, "SHA384", akv_rsa_gettable_sig_params, akv_rsa_settable_sig_params, rsa_key_types)
COMPOSITE(rsa_sha512, 1, "SHA512", akv_rsa_gettable_sig_params, akv_rsa_settable_sig_params, rsa_key_types)
COMPOSITE(ecdsa_sha256, 0, "SHA256", akv_ecdsa_gettable_sig_params, akv_ecdsa_settable_sig_params, ec_key_types)
COMPOSITE(ecdsa_sha384, 0, "SHA384", akv_ecdsa_gettable_sig_params, akv_ecdsa_settable_sig_params, ec_key_types)
COMPOSITE(ecdsa_sha512, 0, "SHA512", akv_ecdsa_gettable_sig_params, akv_ecdsa_settable_sig_params, ec_key_types)
#endif

/*
 * What the RSA and ECDSA tables share; parameters live in signature_params.c, everything else here.
 * Kept out of clang-format, which would pack the entries of a macro body onto shared lines.
 */
/* clang-format off */
#define SIGNATURE_COMMON                                                                    \
    {OSSL_FUNC_SIGNATURE_FREECTX, (void (*)(void))sig_freectx},                             \
    {OSSL_FUNC_SIGNATURE_DUPCTX, (void (*)(void))sig_dupctx},                               \
    {OSSL_FUNC_SIGNATURE_SIGN_INIT, (void (*)(void))sign_init},                             \
    {OSSL_FUNC_SIGNATURE_SIGN, (void (*)(void))sig_sign},                                   \
    {OSSL_FUNC_SIGNATURE_VERIFY_INIT, (void (*)(void))verify_init},                         \
    {OSSL_FUNC_SIGNATURE_VERIFY, (void (*)(void))sig_verify},                               \
    {OSSL_FUNC_SIGNATURE_DIGEST_SIGN_INIT, (void (*)(void))digest_sign_init},               \
    {OSSL_FUNC_SIGNATURE_DIGEST_SIGN_UPDATE, (void (*)(void))digest_update},                \
    {OSSL_FUNC_SIGNATURE_DIGEST_SIGN_FINAL, (void (*)(void))digest_sign_final},             \
    {OSSL_FUNC_SIGNATURE_DIGEST_VERIFY_INIT, (void (*)(void))digest_verify_init},           \
    {OSSL_FUNC_SIGNATURE_DIGEST_VERIFY_UPDATE, (void (*)(void))digest_update},              \
    {OSSL_FUNC_SIGNATURE_DIGEST_VERIFY_FINAL, (void (*)(void))digest_verify_final},         \
    {OSSL_FUNC_SIGNATURE_GET_CTX_PARAMS, (void (*)(void))akv_sig_get_ctx_params},           \
    {OSSL_FUNC_SIGNATURE_SET_CTX_PARAMS, (void (*)(void))akv_sig_set_ctx_params}
/* clang-format on */

const OSSL_DISPATCH akv_rsa_signature_functions[] = {
    SIGNATURE_COMMON,
    {OSSL_FUNC_SIGNATURE_NEWCTX, (void (*)(void))rsa_newctx},
    {OSSL_FUNC_SIGNATURE_GETTABLE_CTX_PARAMS, (void (*)(void))akv_rsa_gettable_sig_params},
    {OSSL_FUNC_SIGNATURE_SETTABLE_CTX_PARAMS, (void (*)(void))akv_rsa_settable_sig_params},
    {0, NULL},
};

const OSSL_DISPATCH akv_ecdsa_signature_functions[] = {
    SIGNATURE_COMMON,
    {OSSL_FUNC_SIGNATURE_NEWCTX, (void (*)(void))ecdsa_newctx},
    {OSSL_FUNC_SIGNATURE_GETTABLE_CTX_PARAMS, (void (*)(void))akv_ecdsa_gettable_sig_params},
    {OSSL_FUNC_SIGNATURE_SETTABLE_CTX_PARAMS, (void (*)(void))akv_ecdsa_settable_sig_params},
    {0, NULL},
};
