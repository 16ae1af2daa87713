/*
 * What the two halves of the SIGNATURE implementation share: the operation context, kept by
 * signature.c (sign, verify, digest-sign), and its parameters, kept by signature_params.c (digest,
 * RSA padding, PSS salt and MGF1, the X.509 AlgorithmIdentifier).
 */
#ifndef AKV_SIGNATURE_H
#define AKV_SIGNATURE_H

#include <openssl/core.h>
#include <openssl/core_dispatch.h>
#include <openssl/evp.h>
#include <stddef.h>

#include "akv.h"
#include "sigalg.h"

typedef struct {
    AKV_PROV_CTX *prov;
    AKV_KEY *key;
    int is_rsa;
    int signing;       /* 1 sign, 0 verify */
    EVP_MD *md;        /* NULL until a digest is chosen */
    EVP_MD_CTX *mdctx; /* running hash of digest-sign / digest-verify */
    int pad_mode;      /* RSA_PKCS1_PADDING or RSA_PKCS1_PSS_PADDING */
    int saltlen;       /* RSA_PSS_SALTLEN_* or an explicit byte count */
    int saltlen_set;   /* the application chose a salt length */
    EVP_MD *mgf1_md;   /* NULL = same as md */
    unsigned char aid[AKV_MAX_ALGORITHM_ID];
    size_t aid_len;
    const char *composite_md; /* RSA-SHA256 etc. (OpenSSL 3.4+): the digest the name fixes */
    int message_mode;         /* after sign_message_init: sign() hashes its input */
} AKV_SIG_CTX;

/* Fetches a digest for signing or verifying; refuses what the HSM cannot sign. */
EVP_MD *akv_sig_fetch_md(AKV_SIG_CTX *ctx, const char *name, const char *props);
/* Checks that the PSS settings are the one combination the HSM implements. */
int akv_sig_check_pss(AKV_SIG_CTX *ctx);

/* The parameter callbacks of the dispatch tables in signature.c, for RSA and ECDSA. */
OSSL_FUNC_signature_set_ctx_params_fn akv_sig_set_ctx_params;
OSSL_FUNC_signature_get_ctx_params_fn akv_sig_get_ctx_params;
OSSL_FUNC_signature_gettable_ctx_params_fn akv_rsa_gettable_sig_params;
OSSL_FUNC_signature_gettable_ctx_params_fn akv_ecdsa_gettable_sig_params;
OSSL_FUNC_signature_settable_ctx_params_fn akv_rsa_settable_sig_params;
OSSL_FUNC_signature_settable_ctx_params_fn akv_ecdsa_settable_sig_params;

#endif
