/*
 * What the two halves of the SIGNATURE implementation share: the operation context, kept by
 * signature.c (sign, verify, digest-sign), and its parameters, kept by signature_params.c (digest,
 * RSA padding, PSS salt and MGF1, the X.509 AlgorithmIdentifier).
 */
#ifndef AKV_SIGNATURE_H
#define AKV_SIGNATURE_H

#include <openssl/core.h>
#include <openssl/evp.h>
#include <stddef.h>

#include "akv.h"
#include "sigalg.h"

typedef struct {
    AKV_PROV_CTX *prov;
    AKV_KEY *key;
    int is_rsa;
    int signing;           /* 1 sign, 0 verify */
    EVP_MD *md;            /* NULL until a digest is chosen */
    EVP_MD_CTX *mdctx;     /* running hash of digest-sign / digest-verify */
    int pad_mode;          /* RSA_PKCS1_PADDING or RSA_PKCS1_PSS_PADDING */
    int saltlen;           /* RSA_PSS_SALTLEN_* or an explicit byte count */
    int saltlen_set;       /* the application chose a salt length */
    EVP_MD *mgf1_md;       /* NULL = same as md */
    unsigned char aid[AKV_MAX_ALGORITHM_ID];
    size_t aid_len;
} AKV_SIG_CTX;

/* Fetches a digest for signing or verifying; refuses what the HSM cannot sign. */
EVP_MD *akv_sig_fetch_md(AKV_SIG_CTX *ctx, const char *name, const char *props);
/* Checks that the PSS settings are the one combination the HSM implements. */
int akv_sig_check_pss(AKV_SIG_CTX *ctx);

/* OSSL_FUNC_SIGNATURE_{SET,GET}_CTX_PARAMS and the {SET,GET}TABLE ones, for RSA and ECDSA. */
int akv_sig_set_ctx_params(void *vctx, const OSSL_PARAM params[]);
int akv_sig_get_ctx_params(void *vctx, OSSL_PARAM params[]);
const OSSL_PARAM *akv_rsa_gettable_sig_params(void *vctx, void *provctx);
const OSSL_PARAM *akv_ecdsa_gettable_sig_params(void *vctx, void *provctx);
const OSSL_PARAM *akv_rsa_settable_sig_params(void *vctx, void *provctx);
const OSSL_PARAM *akv_ecdsa_settable_sig_params(void *vctx, void *provctx);

#endif
