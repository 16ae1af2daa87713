/*
 * C_Sign* and C_Verify*: a signature is made by the HSM through the agent (SIGN with the digest),
 * a verification is done here with the public key (no private key is involved). Hashing
 * mechanisms (CKM_SHA256_RSA_PKCS, CKM_ECDSA_SHA384 ...) hash here, single- or multi-part; the
 * others take the digest (CKM_ECDSA, CKM_RSA_PKCS_PSS) or the DigestInfo (CKM_RSA_PKCS) as input.
 */
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/rsa.h>
#include <stdlib.h>
#include <string.h>

#include "p11.h"

/* DER DigestInfo prefixes (RFC 8017 section 9.2, note 1) of the hashes the HSM signs with. */
static const struct {
    const char *alg;
    size_t digest_len;
    unsigned char prefix[19];
} digest_infos[] = {
    {"RS256",
     32,
     {0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04,
      0x20}},
    {"RS384",
     48,
     {0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02, 0x05, 0x00, 0x04,
      0x30}},
    {"RS512",
     64,
     {0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03, 0x05, 0x00, 0x04,
      0x40}},
};

static size_t signature_size(const p11_key *k)
{
    return k->type == AKV_KEY_TYPE_RSA ? k->modulus_len : 2 * k->ec_field_len;
}

/* The length of the digest the HSM's ES* algorithm takes for the key's curve. */
static size_t ecdsa_digest_len(const p11_key *k)
{
    return strcmp(k->curve, "P-384") == 0 ? 48 : strcmp(k->curve, "P-521") == 0 ? 64 : 32;
}

static CK_RV op_init(CK_SESSION_HANDLE handle, CK_MECHANISM_PTR mech, CK_OBJECT_HANDLE object, int verify)
{
    CK_RV rv = p11_check_initialized();
    if (rv != CKR_OK)
        return rv;
    if (mech == NULL)
        return CKR_ARGUMENTS_BAD;
    p11_session *s;
    int kind;
    unsigned kinds = verify ? (1u << P11_PRIVATE) | (1u << P11_PUBLIC) : 1u << P11_PRIVATE;
    p11_key *k = p11_lock_key(handle, object, kinds, verify ? 0 : P11_OP_SIGN, "sign", &s, &kind, &rv);
    if (k == NULL)
        return rv;
    p11_op *op = verify ? &s->verify : &s->sign;
    if (op->active) {
        pthread_mutex_unlock(&p11.lock);
        return CKR_OPERATION_ACTIVE;
    }
    memset(op, 0, sizeof(*op));
    rv = p11_sign_mechanism(mech, k, op);
    if (rv == CKR_OK && op->md != NULL) {
        op->md_ctx = EVP_MD_CTX_new();
        if (op->md_ctx == NULL || !EVP_DigestInit_ex(op->md_ctx, op->md, NULL))
            rv = CKR_HOST_MEMORY;
    }
    if (rv == CKR_OK) {
        op->active = 1;
        op->mechanism = mech->mechanism;
        op->key = k;
    } else {
        p11_op_reset(op);
    }
    pthread_mutex_unlock(&p11.lock);
    return rv;
}

/* Adds input to a multi-part operation. Caller holds the lock. */
static CK_RV op_update(p11_op *op, const unsigned char *data, size_t len)
{
    op->updated = 1;
    if (op->md_ctx != NULL)
        return EVP_DigestUpdate(op->md_ctx, data, len) ? CKR_OK : CKR_GENERAL_ERROR;
    if (op->data_len + len > P11_MAX_INPUT)
        return CKR_DATA_LEN_RANGE;
    unsigned char *grown = realloc(op->data, op->data_len + len + 1);
    if (grown == NULL)
        return CKR_HOST_MEMORY;
    op->data = grown;
    if (len > 0)
        memcpy(op->data + op->data_len, data, len);
    op->data_len += len;
    return CKR_OK;
}

/* The input of the operation: the digest computed here, or the caller's digest/DigestInfo. */
static CK_RV op_digest(p11_op *op, unsigned char *out, size_t *out_len)
{
    if (op->md_ctx != NULL) {
        unsigned int n = 0;
        if (!EVP_DigestFinal_ex(op->md_ctx, out, &n))
            return CKR_GENERAL_ERROR;
        *out_len = n;
        return CKR_OK;
    }
    memcpy(out, op->data, op->data_len);
    *out_len = op->data_len;
    return CKR_OK;
}

/* What the HSM signs for this input: the algorithm and the exact digest it takes. */
static CK_RV hsm_input(p11_op *op, const unsigned char *in, size_t in_len, char *alg, unsigned char *digest,
                       size_t *digest_len)
{
    const p11_key *k = op->key;
    switch (op->scheme) {
    case P11_RSA_PKCS1:
        if (op->md != NULL)
            break;
        for (size_t i = 0; i < sizeof(digest_infos) / sizeof(digest_infos[0]); i++) {
            if (in_len == sizeof(digest_infos[i].prefix) + digest_infos[i].digest_len &&
                memcmp(in, digest_infos[i].prefix, sizeof(digest_infos[i].prefix)) == 0) {
                snprintf(alg, 16, "%s", digest_infos[i].alg);
                memcpy(digest, in + sizeof(digest_infos[i].prefix), digest_infos[i].digest_len);
                *digest_len = digest_infos[i].digest_len;
                return CKR_OK;
            }
        }
        p11_report("sign with CKM_RSA_PKCS and %s: the input (%zu bytes) is not a DER DigestInfo of SHA-256, SHA-384 "
                   "or SHA-512, the only ones the HSM signs (it builds the DigestInfo itself); hint: sign with "
                   "CKM_SHA256_RSA_PKCS or pass such a DigestInfo",
                   k->uri, in_len);
        return CKR_DATA_INVALID;
    case P11_RSA_PSS:
        if (in_len != (size_t)EVP_MD_get_size(op->pss_md)) {
            p11_report("sign with %s and %s: the input is %zu bytes, not a %d-byte digest", op->alg, k->uri, in_len,
                       EVP_MD_get_size(op->pss_md));
            return CKR_DATA_LEN_RANGE;
        }
        break;
    case P11_ECDSA: {
        /* ECDSA uses the leftmost bits of the input up to the order's size (FIPS 186-4 6.4), so a
         * digest longer than the HSM's is cut to its length and a shorter one padded with leading
         * zeros: the same number, the same signature. P-521 takes 64 bytes: longer is refused. */
        size_t want = ecdsa_digest_len(k);
        snprintf(alg, 16, "%s", op->alg);
        if (in_len > want && want == 64) {
            p11_report("sign with %s: a %zu-byte input is longer than the 64 bytes the HSM's ES512 takes", k->uri,
                       in_len);
            return CKR_DATA_LEN_RANGE;
        }
        if (in_len >= want) {
            memcpy(digest, in, want);
        } else {
            memset(digest, 0, want - in_len);
            memcpy(digest + (want - in_len), in, in_len);
        }
        *digest_len = want;
        return CKR_OK;
    }
    default:
        return CKR_GENERAL_ERROR;
    }
    snprintf(alg, 16, "%s", op->alg);
    memcpy(digest, in, in_len);
    *digest_len = in_len;
    return CKR_OK;
}

/*
 * Finishes a signature: the size query and CKR_BUFFER_TOO_SMALL leave the operation running
 * (2.40 section 5.2); anything else ends it. `data` is the single-part input (NULL for Final).
 */
static CK_RV sign_finish(CK_SESSION_HANDLE handle, const unsigned char *data, size_t len, int single, CK_BYTE_PTR sig,
                         CK_ULONG_PTR sig_len)
{
    CK_RV rv = p11_check_initialized();
    if (rv != CKR_OK)
        return rv;
    if (sig_len == NULL || (single && data == NULL && len > 0))
        return CKR_ARGUMENTS_BAD;
    p11_op *op = p11_lock_op(handle, P11_SIGN_OP, 1, &rv);
    if (op == NULL)
        return rv;
    size_t size = signature_size(op->key);
    if (sig == NULL || *sig_len < size) {
        rv = sig == NULL ? CKR_OK : CKR_BUFFER_TOO_SMALL;
        *sig_len = size;
        pthread_mutex_unlock(&p11.lock);
        return rv;
    }
    if (single && op->updated) {
        p11_op_reset(op);
        pthread_mutex_unlock(&p11.lock);
        return CKR_OPERATION_ACTIVE;
    }
    unsigned char input[P11_MAX_INPUT + 64], digest[P11_MAX_INPUT];
    size_t input_len = 0, digest_len = 0;
    char alg[16] = "";
    if (single)
        rv = op_update(op, data, len);
    if (rv == CKR_OK)
        rv = op_digest(op, input, &input_len);
    if (rv == CKR_OK)
        rv = hsm_input(op, input, input_len, alg, digest, &digest_len);
    p11_key *key = op->key;
    p11_op_reset(op); /* the session is free for the next operation while the HSM signs */
    pthread_mutex_unlock(&p11.lock);
    if (rv != CKR_OK)
        return rv;

    unsigned char *out = NULL;
    size_t out_len = 0;
    rv = p11_agent_private(AKV_OP_SIGN, key, alg, digest, digest_len, &out, &out_len);
    if (rv == CKR_OK && out_len != size) {
        p11_report("sign with %s: the agent returned a %zu-byte signature, expected %zu", key->uri, out_len, size);
        rv = CKR_DEVICE_ERROR;
    }
    if (rv == CKR_OK) {
        memcpy(sig, out, out_len);
        *sig_len = out_len;
    }
    free(out);
    return rv;
}

CK_RV akv_C_SignInit(CK_SESSION_HANDLE handle, CK_MECHANISM_PTR mech, CK_OBJECT_HANDLE key)
{
    return op_init(handle, mech, key, 0);
}

CK_RV akv_C_Sign(CK_SESSION_HANDLE handle, CK_BYTE_PTR data, CK_ULONG len, CK_BYTE_PTR sig, CK_ULONG_PTR sig_len)
{
    return sign_finish(handle, data, len, 1, sig, sig_len);
}

static CK_RV update(CK_SESSION_HANDLE handle, CK_BYTE_PTR data, CK_ULONG len, int verify)
{
    CK_RV rv = p11_check_initialized();
    if (rv != CKR_OK)
        return rv;
    if (data == NULL && len > 0)
        return CKR_ARGUMENTS_BAD;
    p11_op *op = p11_lock_op(handle, verify ? P11_VERIFY_OP : P11_SIGN_OP, 1, &rv);
    if (op == NULL)
        return rv;
    rv = op_update(op, data, len);
    if (rv != CKR_OK)
        p11_op_reset(op);
    pthread_mutex_unlock(&p11.lock);
    return rv;
}

CK_RV akv_C_SignUpdate(CK_SESSION_HANDLE handle, CK_BYTE_PTR data, CK_ULONG len)
{
    return update(handle, data, len, 0);
}

CK_RV akv_C_SignFinal(CK_SESSION_HANDLE handle, CK_BYTE_PTR sig, CK_ULONG_PTR sig_len)
{
    return sign_finish(handle, NULL, 0, 0, sig, sig_len);
}

/* Local verification with the public key; CKR_SIGNATURE_INVALID when it does not verify. */
static CK_RV verify_locally(const p11_op *op, const unsigned char *input, size_t input_len, const unsigned char *sig,
                            size_t sig_len)
{
    const p11_key *k = op->key;
    if (sig_len != signature_size(k))
        return CKR_SIGNATURE_LEN_RANGE;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(k->pub, NULL);
    unsigned char *der = NULL;
    int der_len = 0;
    CK_RV rv = CKR_GENERAL_ERROR;
    if (ctx == NULL || EVP_PKEY_verify_init(ctx) <= 0)
        goto done;
    if (op->scheme == P11_RSA_PKCS1) {
        if (EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) <= 0 ||
            (op->md != NULL && EVP_PKEY_CTX_set_signature_md(ctx, op->md) <= 0))
            goto done;
    } else if (op->scheme == P11_RSA_PSS) {
        if (input_len != (size_t)EVP_MD_get_size(op->pss_md)) {
            rv = CKR_DATA_LEN_RANGE;
            goto done;
        }
        if (EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PSS_PADDING) <= 0 ||
            EVP_PKEY_CTX_set_signature_md(ctx, op->pss_md) <= 0 || EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, op->pss_md) <= 0 ||
            EVP_PKEY_CTX_set_rsa_pss_saltlen(ctx, EVP_MD_get_size(op->pss_md)) <= 0)
            goto done;
    } else {
        /* raw r||s to the DER ECDSA-Sig-Value OpenSSL verifies */
        ECDSA_SIG *es = ECDSA_SIG_new();
        BIGNUM *r = BN_bin2bn(sig, (int)(sig_len / 2), NULL),
               *sv = BN_bin2bn(sig + sig_len / 2, (int)(sig_len / 2), NULL);
        if (es == NULL || r == NULL || sv == NULL || !ECDSA_SIG_set0(es, r, sv)) {
            ECDSA_SIG_free(es);
            BN_free(r);
            BN_free(sv);
            goto done;
        }
        der_len = i2d_ECDSA_SIG(es, &der);
        ECDSA_SIG_free(es);
        if (der_len <= 0)
            goto done;
        sig = der;
        sig_len = (size_t)der_len;
    }
    rv = EVP_PKEY_verify(ctx, sig, sig_len, input, input_len) == 1 ? CKR_OK : CKR_SIGNATURE_INVALID;
done:
    OPENSSL_free(der);
    EVP_PKEY_CTX_free(ctx);
    return rv;
}

static CK_RV verify_finish(CK_SESSION_HANDLE handle, const unsigned char *data, size_t len, int single,
                           const unsigned char *sig, size_t sig_len)
{
    CK_RV rv = p11_check_initialized();
    if (rv != CKR_OK)
        return rv;
    if (sig == NULL || (single && data == NULL && len > 0))
        return CKR_ARGUMENTS_BAD;
    p11_op *op = p11_lock_op(handle, P11_VERIFY_OP, 1, &rv);
    if (op == NULL)
        return rv;
    unsigned char input[P11_MAX_INPUT + 64];
    size_t input_len = 0;
    if (single && op->updated)
        rv = CKR_OPERATION_ACTIVE;
    if (rv == CKR_OK && single)
        rv = op_update(op, data, len);
    if (rv == CKR_OK)
        rv = op_digest(op, input, &input_len);
    if (rv == CKR_OK)
        rv = verify_locally(op, input, input_len, sig, sig_len);
    p11_op_reset(op);
    pthread_mutex_unlock(&p11.lock);
    return rv;
}

CK_RV akv_C_VerifyInit(CK_SESSION_HANDLE handle, CK_MECHANISM_PTR mech, CK_OBJECT_HANDLE key)
{
    return op_init(handle, mech, key, 1);
}

CK_RV akv_C_Verify(CK_SESSION_HANDLE handle, CK_BYTE_PTR data, CK_ULONG len, CK_BYTE_PTR sig, CK_ULONG sig_len)
{
    return verify_finish(handle, data, len, 1, sig, sig_len);
}

CK_RV akv_C_VerifyUpdate(CK_SESSION_HANDLE handle, CK_BYTE_PTR data, CK_ULONG len)
{
    return update(handle, data, len, 1);
}

CK_RV akv_C_VerifyFinal(CK_SESSION_HANDLE handle, CK_BYTE_PTR sig, CK_ULONG sig_len)
{
    return verify_finish(handle, NULL, 0, 0, sig, sig_len);
}
