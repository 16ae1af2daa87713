/*
 * Parameters of the SIGNATURE operation (see signature.h): the digest, RSA padding mode, PSS salt
 * length and MGF1 digest, restricted to what the HSM can sign, and the DER AlgorithmIdentifier that
 * X.509 signing asks for.
 */
#include <openssl/core_names.h>
#include <openssl/params.h>
#include <openssl/rsa.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "param_names.h"
#include "signature.h"

EVP_MD *akv_sig_fetch_md(AKV_SIG_CTX *ctx, const char *name, const char *props)
{
    EVP_MD *md = EVP_MD_fetch(ctx->prov->pub_libctx, name, props);
    if (md == NULL) {
        AKV_RAISE(ctx->prov, AKV_R_UNSUPPORTED, "unknown digest '%s'", name);
        return NULL;
    }
    if (ctx->signing && akv_hsm_digest_bits(md) == 0) {
        if (EVP_MD_is_a(md, "SHA1"))
            AKV_RAISE(ctx->prov, AKV_R_UNSUPPORTED,
                      "SHA-1 signatures are refused (weak and not offered by the HSM): use SHA-256, SHA-384 or "
                      "SHA-512 (e.g. openssl dgst -sha256)");
        else
            AKV_RAISE(ctx->prov, AKV_R_UNSUPPORTED,
                      "digest %s is not supported by the HSM: use SHA-256, SHA-384 or SHA-512", name);
        EVP_MD_free(md);
        return NULL;
    }
    return md;
}

int akv_sig_check_pss(AKV_SIG_CTX *ctx)
{
    int mdsize = EVP_MD_get_size(ctx->md);
    if (ctx->mgf1_md != NULL && !EVP_MD_is_a(ctx->mgf1_md, EVP_MD_get0_name(ctx->md))) {
        AKV_RAISE(ctx->prov, AKV_R_UNSUPPORTED,
                  "RSA-PSS with MGF1 digest %s and message digest %s is not supported: the HSM uses MGF1 with the "
                  "message digest",
                  EVP_MD_get0_name(ctx->mgf1_md), EVP_MD_get0_name(ctx->md));
        return 0;
    }
    if (ctx->saltlen == RSA_PSS_SALTLEN_DIGEST || ctx->saltlen == mdsize)
        return 1;
    const char *what = ctx->saltlen == RSA_PSS_SALTLEN_MAX    ? "max"
                       : ctx->saltlen == RSA_PSS_SALTLEN_AUTO ? "auto (= max when signing)"
                                                              : NULL;
    if (what != NULL)
        AKV_RAISE(ctx->prov, AKV_R_UNSUPPORTED,
                  "RSA-PSS salt length %s is not supported: the HSM always uses a salt as long as the digest (%d "
                  "bytes); use -sigopt rsa_pss_saltlen:digest",
                  what, mdsize);
    else
        AKV_RAISE(ctx->prov, AKV_R_UNSUPPORTED,
                  "RSA-PSS salt length %d is not supported: the HSM always uses a salt as long as the digest (%d "
                  "bytes); use -sigopt rsa_pss_saltlen:digest",
                  ctx->saltlen, mdsize);
    return 0;
}

/* The names OpenSSL gives RSA padding modes and PSS salt lengths in string parameters. */
static const AKV_NAMED_INT pad_mode_names[] = {
    {OSSL_PKEY_RSA_PAD_MODE_PKCSV15, RSA_PKCS1_PADDING},
    {OSSL_PKEY_RSA_PAD_MODE_PSS, RSA_PKCS1_PSS_PADDING},
    {OSSL_PKEY_RSA_PAD_MODE_NONE, RSA_NO_PADDING},
    {OSSL_PKEY_RSA_PAD_MODE_X931, RSA_X931_PADDING},
    {NULL, 0},
};
static const AKV_NAMED_INT saltlen_names[] = {
    {OSSL_PKEY_RSA_PSS_SALT_LEN_DIGEST, RSA_PSS_SALTLEN_DIGEST},
    {OSSL_PKEY_RSA_PSS_SALT_LEN_MAX, RSA_PSS_SALTLEN_MAX},
    {OSSL_PKEY_RSA_PSS_SALT_LEN_AUTO, RSA_PSS_SALTLEN_AUTO},
    {NULL, 0},
};

static int get_saltlen_param(const OSSL_PARAM *p, int *saltlen)
{
    if (p->data_type == OSSL_PARAM_UTF8_STRING) {
        const char *s = p->data;
        if (s == NULL)
            return 0;
        if (!akv_value_of_name(saltlen_names, strcmp, s, saltlen)) {
            char *end;
            long v = strtol(s, &end, 10);
            if (*s == '\0' || *end != '\0' || v < -3 || v > 100000)
                return 0;
            *saltlen = (int)v;
        }
        return 1;
    }
    return OSSL_PARAM_get_int(p, saltlen);
}

int akv_sig_set_ctx_params(void *vctx, const OSSL_PARAM params[])
{
    AKV_SIG_CTX *ctx = vctx;
    const OSSL_PARAM *p;
    if (params == NULL)
        return 1;
    ctx->aid_len = 0;
    if ((p = OSSL_PARAM_locate_const(params, OSSL_SIGNATURE_PARAM_DIGEST)) != NULL) {
        const char *name = NULL;
        const OSSL_PARAM *pp = OSSL_PARAM_locate_const(params, OSSL_SIGNATURE_PARAM_PROPERTIES);
        const char *props = NULL;
        if (!OSSL_PARAM_get_utf8_string_ptr(p, &name))
            return 0;
        if (pp != NULL && !OSSL_PARAM_get_utf8_string_ptr(pp, &props))
            return 0;
        if (ctx->mdctx != NULL && ctx->md != NULL && !EVP_MD_is_a(ctx->md, name)) {
            AKV_RAISE(ctx->prov, AKV_R_INVALID_ARGUMENT, "the digest cannot change in the middle of a digest-sign");
            return 0;
        }
        EVP_MD *md = akv_sig_fetch_md(ctx, name, NULL);
        if (md == NULL)
            return 0;
        EVP_MD_free(ctx->md);
        ctx->md = md;
    }
    if (!ctx->is_rsa)
        return 1;
    if ((p = OSSL_PARAM_locate_const(params, OSSL_SIGNATURE_PARAM_PAD_MODE)) != NULL) {
        int mode;
        if (!akv_get_named_int_param(p, pad_mode_names, &mode))
            return 0;
        if (mode != RSA_PKCS1_PADDING && mode != RSA_PKCS1_PSS_PADDING) {
            AKV_RAISE(ctx->prov, AKV_R_UNSUPPORTED,
                      "RSA padding mode %d is not supported: use pkcs1 or pss (rsa_padding_mode:pss)", mode);
            return 0;
        }
        ctx->pad_mode = mode;
    }
    if ((p = OSSL_PARAM_locate_const(params, OSSL_SIGNATURE_PARAM_PSS_SALTLEN)) != NULL) {
        if (!get_saltlen_param(p, &ctx->saltlen))
            return 0;
        ctx->saltlen_set = 1;
    }
    if ((p = OSSL_PARAM_locate_const(params, OSSL_SIGNATURE_PARAM_MGF1_DIGEST)) != NULL) {
        const char *name = NULL;
        if (!OSSL_PARAM_get_utf8_string_ptr(p, &name))
            return 0;
        EVP_MD *md = EVP_MD_fetch(ctx->prov->pub_libctx, name, NULL);
        if (md == NULL) {
            AKV_RAISE(ctx->prov, AKV_R_UNSUPPORTED, "unknown MGF1 digest '%s'", name);
            return 0;
        }
        EVP_MD_free(ctx->mgf1_md);
        ctx->mgf1_md = md;
    }
    return 1;
}

/* The DER AlgorithmIdentifier of this signature (X.509), computed once per context. */
static int algorithm_id(AKV_SIG_CTX *ctx)
{
    if (ctx->md == NULL)
        return 0;
    if (ctx->aid_len != 0)
        return 1;
    int pss = ctx->is_rsa && ctx->pad_mode == RSA_PKCS1_PSS_PADDING;
    int saltlen = EVP_MD_get_size(ctx->md);
    if (pss && ctx->signing && !akv_sig_check_pss(ctx))
        return 0;
    if (pss && !ctx->signing && ctx->saltlen >= 0)
        saltlen = ctx->saltlen;
    ctx->aid_len =
        akv_algorithm_id(ctx->is_rsa, pss, akv_hsm_digest_bits(ctx->md), saltlen, ctx->aid, sizeof(ctx->aid));
    if (ctx->aid_len == 0) {
        AKV_RAISE(ctx->prov, AKV_R_UNSUPPORTED, "no X.509 algorithm identifier for %s with %s",
                  ctx->is_rsa ? "RSA" : "ECDSA", EVP_MD_get0_name(ctx->md));
        return 0;
    }
    return 1;
}

/* The RSA padding parameters, each as a name or a number, as the caller's OSSL_PARAM asks. */
static int get_rsa_padding_params(const AKV_SIG_CTX *ctx, OSSL_PARAM params[])
{
    OSSL_PARAM *p;
    if ((p = OSSL_PARAM_locate(params, OSSL_SIGNATURE_PARAM_PAD_MODE)) != NULL) {
        if (p->data_type == OSSL_PARAM_UTF8_STRING) {
            /* set_ctx_params keeps pad_mode at pkcs1 or pss, both named */
            if (!OSSL_PARAM_set_utf8_string(p, akv_name_of_value(pad_mode_names, ctx->pad_mode)))
                return 0;
        } else if (!OSSL_PARAM_set_int(p, ctx->pad_mode)) {
            return 0;
        }
    }
    if ((p = OSSL_PARAM_locate(params, OSSL_SIGNATURE_PARAM_PSS_SALTLEN)) != NULL) {
        if (p->data_type == OSSL_PARAM_UTF8_STRING) {
            char buf[16];
            const char *s = akv_name_of_value(saltlen_names, ctx->saltlen);
            if (s == NULL) {
                snprintf(buf, sizeof(buf), "%d", ctx->saltlen);
                s = buf;
            }
            if (!OSSL_PARAM_set_utf8_string(p, s))
                return 0;
        } else if (!OSSL_PARAM_set_int(p, ctx->saltlen)) {
            return 0;
        }
    }
    if ((p = OSSL_PARAM_locate(params, OSSL_SIGNATURE_PARAM_MGF1_DIGEST)) != NULL) {
        const EVP_MD *m = ctx->mgf1_md != NULL ? ctx->mgf1_md : ctx->md;
        if (!OSSL_PARAM_set_utf8_string(p, m != NULL ? EVP_MD_get0_name(m) : ""))
            return 0;
    }
    return 1;
}

int akv_sig_get_ctx_params(void *vctx, OSSL_PARAM params[])
{
    AKV_SIG_CTX *ctx = vctx;
    OSSL_PARAM *p;

    if ((p = OSSL_PARAM_locate(params, OSSL_SIGNATURE_PARAM_ALGORITHM_ID)) != NULL &&
        (!algorithm_id(ctx) || !OSSL_PARAM_set_octet_string(p, ctx->aid, ctx->aid_len)))
        return 0;
    if ((p = OSSL_PARAM_locate(params, OSSL_SIGNATURE_PARAM_DIGEST)) != NULL &&
        !OSSL_PARAM_set_utf8_string(p, ctx->md != NULL ? EVP_MD_get0_name(ctx->md) : ""))
        return 0;
    if ((p = OSSL_PARAM_locate(params, OSSL_SIGNATURE_PARAM_DIGEST_SIZE)) != NULL &&
        !OSSL_PARAM_set_size_t(p, ctx->md != NULL ? (size_t)EVP_MD_get_size(ctx->md) : 0))
        return 0;
    return !ctx->is_rsa || get_rsa_padding_params(ctx, params);
}

static const OSSL_PARAM rsa_gettable_ctx[] = {
    OSSL_PARAM_octet_string(OSSL_SIGNATURE_PARAM_ALGORITHM_ID, NULL, 0),
    OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_DIGEST, NULL, 0),
    OSSL_PARAM_size_t(OSSL_SIGNATURE_PARAM_DIGEST_SIZE, NULL),
    OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_PAD_MODE, NULL, 0),
    OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_PSS_SALTLEN, NULL, 0),
    OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_MGF1_DIGEST, NULL, 0),
    OSSL_PARAM_END,
};
static const OSSL_PARAM ecdsa_gettable_ctx[] = {
    OSSL_PARAM_octet_string(OSSL_SIGNATURE_PARAM_ALGORITHM_ID, NULL, 0),
    OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_DIGEST, NULL, 0),
    OSSL_PARAM_size_t(OSSL_SIGNATURE_PARAM_DIGEST_SIZE, NULL),
    OSSL_PARAM_END,
};
static const OSSL_PARAM rsa_settable_ctx[] = {
    OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_DIGEST, NULL, 0),
    OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_PROPERTIES, NULL, 0),
    OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_PAD_MODE, NULL, 0),
    OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_PSS_SALTLEN, NULL, 0),
    OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_MGF1_DIGEST, NULL, 0),
    OSSL_PARAM_END,
};
static const OSSL_PARAM ecdsa_settable_ctx[] = {
    OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_DIGEST, NULL, 0),
    OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_PROPERTIES, NULL, 0),
    OSSL_PARAM_END,
};

const OSSL_PARAM *akv_rsa_gettable_sig_params(void *vctx, void *provctx)
{
    (void)vctx;
    (void)provctx;
    return rsa_gettable_ctx;
}
const OSSL_PARAM *akv_ecdsa_gettable_sig_params(void *vctx, void *provctx)
{
    (void)vctx;
    (void)provctx;
    return ecdsa_gettable_ctx;
}
const OSSL_PARAM *akv_rsa_settable_sig_params(void *vctx, void *provctx)
{
    (void)vctx;
    (void)provctx;
    return rsa_settable_ctx;
}
const OSSL_PARAM *akv_ecdsa_settable_sig_params(void *vctx, void *provctx)
{
    (void)vctx;
    (void)provctx;
    return ecdsa_settable_ctx;
}
