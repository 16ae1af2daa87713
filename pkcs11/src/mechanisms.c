/*
 * The mechanisms and what each is in the HSM's terms (docs/pkcs11.md, "Mechanisms"). Azure
 * signs a digest it is sent (RS*, PS* with salt length = hash length and MGF1 with the same hash,
 * ES* as raw r||s) and decrypts RSA1_5, RSA-OAEP (SHA-1) and RSA-OAEP-256: a mechanism or a
 * parameter outside that is refused here, before anything is sent (CKR_MECHANISM_INVALID for a
 * mechanism, CKR_MECHANISM_PARAM_INVALID for parameters the HSM does not use, as PKCS#11 2.40
 * section 5.1 names them), never approximated.
 */
#include <stdio.h>
#include <string.h>

#include "p11.h"

#define SIGN_VERIFY (CKF_SIGN | CKF_VERIFY)
#define EC_FLAGS (CKF_EC_F_P | CKF_EC_NAMEDCURVE | CKF_EC_UNCOMPRESS)

static const p11_mechanism_info mechanisms[] = {
    {CKM_RSA_PKCS, SIGN_VERIFY | CKF_DECRYPT | CKF_WRAP | CKF_UNWRAP, AKV_KEY_TYPE_RSA},
    {CKM_SHA256_RSA_PKCS, SIGN_VERIFY, AKV_KEY_TYPE_RSA},
    {CKM_SHA384_RSA_PKCS, SIGN_VERIFY, AKV_KEY_TYPE_RSA},
    {CKM_SHA512_RSA_PKCS, SIGN_VERIFY, AKV_KEY_TYPE_RSA},
    {CKM_RSA_PKCS_PSS, SIGN_VERIFY, AKV_KEY_TYPE_RSA},
    {CKM_SHA256_RSA_PKCS_PSS, SIGN_VERIFY, AKV_KEY_TYPE_RSA},
    {CKM_SHA384_RSA_PKCS_PSS, SIGN_VERIFY, AKV_KEY_TYPE_RSA},
    {CKM_SHA512_RSA_PKCS_PSS, SIGN_VERIFY, AKV_KEY_TYPE_RSA},
    {CKM_RSA_PKCS_OAEP, CKF_DECRYPT | CKF_WRAP | CKF_UNWRAP, AKV_KEY_TYPE_RSA},
    {CKM_AES_KEY_WRAP, CKF_WRAP | CKF_UNWRAP, AKV_KEY_TYPE_AES},
    {CKM_ECDSA, SIGN_VERIFY | EC_FLAGS, AKV_KEY_TYPE_EC},
    {CKM_ECDSA_SHA256, SIGN_VERIFY | EC_FLAGS, AKV_KEY_TYPE_EC},
    {CKM_ECDSA_SHA384, SIGN_VERIFY | EC_FLAGS, AKV_KEY_TYPE_EC},
    {CKM_ECDSA_SHA512, SIGN_VERIFY | EC_FLAGS, AKV_KEY_TYPE_EC},
    {CKM_SHA256, CKF_DIGEST, 0},
    {CKM_SHA384, CKF_DIGEST, 0},
    {CKM_SHA512, CKF_DIGEST, 0},
};

const p11_mechanism_info *p11_mechanisms(size_t *count)
{
    *count = sizeof(mechanisms) / sizeof(mechanisms[0]);
    return mechanisms;
}

const EVP_MD *p11_md_of(CK_MECHANISM_TYPE hash)
{
    switch (hash) {
    case CKM_SHA256:
        return EVP_sha256();
    case CKM_SHA384:
        return EVP_sha384();
    case CKM_SHA512:
        return EVP_sha512();
    default:
        return NULL;
    }
}

static CK_RSA_PKCS_MGF_TYPE mgf_of(CK_MECHANISM_TYPE hash)
{
    return hash == CKM_SHA256 ? CKG_MGF1_SHA256 : hash == CKM_SHA384 ? CKG_MGF1_SHA384 : CKG_MGF1_SHA512;
}

static const char *size_suffix(const EVP_MD *md)
{
    int n = EVP_MD_get_size(md);
    return n == 32 ? "256" : n == 48 ? "384" : "512";
}

/* The PSS parameters the HSM uses: hash SHA-256/384/512, MGF1 with that hash, salt = hash size. */
static CK_RV pss_params(const CK_MECHANISM *mech, CK_MECHANISM_TYPE required_hash, p11_op *op)
{
    if (mech->pParameter == NULL || mech->ulParameterLen != sizeof(CK_RSA_PKCS_PSS_PARAMS))
        return CKR_MECHANISM_PARAM_INVALID;
    const CK_RSA_PKCS_PSS_PARAMS *p = mech->pParameter;
    const EVP_MD *md = p11_md_of(p->hashAlg);
    if (md == NULL || (required_hash != 0 && p->hashAlg != required_hash)) {
        p11_report("sign: RSA-PSS with hash 0x%lx: the HSM signs PSS with SHA-256, SHA-384 or SHA-512 only "
                   "(and with the mechanism's own hash)",
                   (unsigned long)p->hashAlg);
        return CKR_MECHANISM_PARAM_INVALID;
    }
    if (p->mgf != mgf_of(p->hashAlg) || p->sLen != (CK_ULONG)EVP_MD_get_size(md)) {
        p11_report("sign: RSA-PSS with MGF 0x%lx and salt length %lu: the HSM uses MGF1 with the signature's hash "
                   "and a salt as long as the hash (%d bytes); hint: ask for that salt length",
                   (unsigned long)p->mgf, (unsigned long)p->sLen, EVP_MD_get_size(md));
        return CKR_MECHANISM_PARAM_INVALID;
    }
    op->pss_md = md;
    snprintf(op->alg, sizeof(op->alg), "PS%s", size_suffix(md));
    return CKR_OK;
}

static const char *ecdsa_alg(const p11_key *key)
{
    if (strcmp(key->curve, "P-256") == 0)
        return "ES256";
    if (strcmp(key->curve, "P-256K") == 0)
        return "ES256K";
    if (strcmp(key->curve, "P-384") == 0)
        return "ES384";
    if (strcmp(key->curve, "P-521") == 0)
        return "ES512";
    return NULL;
}

CK_RV p11_sign_mechanism(const CK_MECHANISM *mech, const p11_key *key, p11_op *op)
{
    CK_MECHANISM_TYPE hash = 0;
    switch (mech->mechanism) {
    case CKM_RSA_PKCS:
    case CKM_SHA256_RSA_PKCS:
    case CKM_SHA384_RSA_PKCS:
    case CKM_SHA512_RSA_PKCS:
        if (key->type != AKV_KEY_TYPE_RSA)
            return CKR_KEY_TYPE_INCONSISTENT;
        op->scheme = P11_RSA_PKCS1;
        hash = mech->mechanism == CKM_SHA256_RSA_PKCS   ? CKM_SHA256
               : mech->mechanism == CKM_SHA384_RSA_PKCS ? CKM_SHA384
               : mech->mechanism == CKM_SHA512_RSA_PKCS ? CKM_SHA512
                                                        : 0;
        if (hash != 0) {
            op->md = p11_md_of(hash);
            snprintf(op->alg, sizeof(op->alg), "RS%s", size_suffix(op->md));
        }
        return CKR_OK;
    case CKM_RSA_PKCS_PSS:
    case CKM_SHA256_RSA_PKCS_PSS:
    case CKM_SHA384_RSA_PKCS_PSS:
    case CKM_SHA512_RSA_PKCS_PSS:
        if (key->type != AKV_KEY_TYPE_RSA)
            return CKR_KEY_TYPE_INCONSISTENT;
        op->scheme = P11_RSA_PSS;
        hash = mech->mechanism == CKM_SHA256_RSA_PKCS_PSS   ? CKM_SHA256
               : mech->mechanism == CKM_SHA384_RSA_PKCS_PSS ? CKM_SHA384
               : mech->mechanism == CKM_SHA512_RSA_PKCS_PSS ? CKM_SHA512
                                                            : 0;
        if (hash != 0)
            op->md = p11_md_of(hash);
        return pss_params(mech, hash, op);
    case CKM_ECDSA:
    case CKM_ECDSA_SHA256:
    case CKM_ECDSA_SHA384:
    case CKM_ECDSA_SHA512: {
        if (key->type != AKV_KEY_TYPE_EC)
            return CKR_KEY_TYPE_INCONSISTENT;
        const char *alg = ecdsa_alg(key);
        if (alg == NULL) {
            p11_report("sign: %s is on curve \"%s\", which the HSM has no ECDSA algorithm for", key->uri, key->curve);
            return CKR_KEY_TYPE_INCONSISTENT;
        }
        op->scheme = P11_ECDSA;
        snprintf(op->alg, sizeof(op->alg), "%s", alg);
        op->md = mech->mechanism == CKM_ECDSA_SHA256   ? EVP_sha256()
                 : mech->mechanism == CKM_ECDSA_SHA384 ? EVP_sha384()
                 : mech->mechanism == CKM_ECDSA_SHA512 ? EVP_sha512()
                                                       : NULL;
        return CKR_OK;
    }
    default:
        return CKR_MECHANISM_INVALID;
    }
}

CK_RV p11_decrypt_mechanism(const CK_MECHANISM *mech, const p11_key *key, p11_op *op)
{
    if (mech->mechanism != CKM_RSA_PKCS && mech->mechanism != CKM_RSA_PKCS_OAEP)
        return CKR_MECHANISM_INVALID;
    if (key->type != AKV_KEY_TYPE_RSA)
        return CKR_KEY_TYPE_INCONSISTENT;
    op->scheme = P11_RSA_DECRYPT;
    if (mech->mechanism == CKM_RSA_PKCS) {
        snprintf(op->alg, sizeof(op->alg), "RSA1_5");
        return CKR_OK;
    }
    if (mech->pParameter == NULL || mech->ulParameterLen != sizeof(CK_RSA_PKCS_OAEP_PARAMS))
        return CKR_MECHANISM_PARAM_INVALID;
    const CK_RSA_PKCS_OAEP_PARAMS *p = mech->pParameter;
    int sha1 = p->hashAlg == CKM_SHA_1 && p->mgf == CKG_MGF1_SHA1;
    int sha256 = p->hashAlg == CKM_SHA256 && p->mgf == CKG_MGF1_SHA256;
    int no_label = (p->source == 0 || p->source == CKZ_DATA_SPECIFIED) && p->ulSourceDataLen == 0;
    if (!(sha1 || sha256) || !no_label) {
        p11_report("decrypt: RSA-OAEP with hash 0x%lx, MGF 0x%lx%s: the HSM decrypts OAEP with SHA-1/MGF1-SHA-1 "
                   "(RSA-OAEP) or SHA-256/MGF1-SHA-256 (RSA-OAEP-256), without a label",
                   (unsigned long)p->hashAlg, (unsigned long)p->mgf, no_label ? "" : " and a label");
        return CKR_MECHANISM_PARAM_INVALID;
    }
    snprintf(op->alg, sizeof(op->alg), "%s", sha1 ? "RSA-OAEP" : "RSA-OAEP-256");
    return CKR_OK;
}

/* RFC 3394's default initial value, the only one the HSM's A*KW use (section 2.2.3.1). */
static const unsigned char kw_default_iv[8] = {0xA6, 0xA6, 0xA6, 0xA6, 0xA6, 0xA6, 0xA6, 0xA6};

CK_RV p11_wrap_mechanism(const CK_MECHANISM *mech, const p11_key *key, char alg[16])
{
    switch (mech->mechanism) {
    case CKM_AES_KEY_WRAP:
        if (key->type != AKV_KEY_TYPE_AES)
            return CKR_KEY_TYPE_INCONSISTENT;
        if (mech->ulParameterLen != 0 && (mech->pParameter == NULL || mech->ulParameterLen != sizeof(kw_default_iv) ||
                                          memcmp(mech->pParameter, kw_default_iv, sizeof(kw_default_iv)) != 0)) {
            p11_report("CKM_AES_KEY_WRAP with an initial value other than RFC 3394's A6A6A6A6A6A6A6A6: the HSM's "
                       "A128KW/A192KW/A256KW use that one only; hint: pass no parameter");
            return CKR_MECHANISM_PARAM_INVALID;
        }
        if (key->bits != 128 && key->bits != 192 && key->bits != 256) {
            p11_report("CKM_AES_KEY_WRAP with %s: the HSM describes it as a %u-bit key, not 128, 192 or 256", key->uri,
                       (unsigned)key->bits);
            return CKR_KEY_SIZE_RANGE;
        }
        snprintf(alg, 16, "A%uKW", (unsigned)key->bits);
        return CKR_OK;
    case CKM_RSA_PKCS:
    case CKM_RSA_PKCS_OAEP: {
        /* The same HSM algorithms and parameter rules as decryption (RSA1_5, RSA-OAEP, RSA-OAEP-256). */
        p11_op op;
        memset(&op, 0, sizeof(op));
        CK_RV rv = p11_decrypt_mechanism(mech, key, &op);
        if (rv == CKR_OK)
            snprintf(alg, 16, "%s", op.alg);
        return rv;
    }
    default:
        /* CKM_AES_KEY_WRAP_PAD / _KWP (RFC 5649) included: the HSM has no padded key wrap. */
        return CKR_MECHANISM_INVALID;
    }
}
