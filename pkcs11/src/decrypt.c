/*
 * C_Decrypt*: RSA decryption in the HSM (RSA1_5 for CKM_RSA_PKCS, RSA-OAEP / RSA-OAEP-256 for
 * CKM_RSA_PKCS_OAEP), single-part as both mechanisms are. The plaintext's length is known only
 * after the HSM answered, so a size query returns the modulus size (an upper bound) and a buffer
 * that turns out too small keeps the plaintext for the caller's retry instead of asking the HSM
 * twice.
 */
#include <stdlib.h>
#include <string.h>

#include "p11.h"

CK_RV akv_C_DecryptInit(CK_SESSION_HANDLE handle, CK_MECHANISM_PTR mech, CK_OBJECT_HANDLE object)
{
    CK_RV rv = p11_check_initialized();
    if (rv != CKR_OK)
        return rv;
    if (mech == NULL)
        return CKR_ARGUMENTS_BAD;
    p11_session *s;
    int kind;
    p11_key *k = p11_lock_key(handle, object, 1u << P11_PRIVATE, P11_OP_DECRYPT, "decrypt", &s, &kind, &rv);
    if (k == NULL)
        return rv;
    if (s->decrypt.active) {
        rv = CKR_OPERATION_ACTIVE;
    } else {
        memset(&s->decrypt, 0, sizeof(s->decrypt));
        rv = p11_decrypt_mechanism(mech, k, &s->decrypt);
        if (rv == CKR_OK) {
            s->decrypt.active = 1;
            s->decrypt.mechanism = mech->mechanism;
            s->decrypt.key = k;
        } else {
            p11_op_reset(&s->decrypt);
        }
    }
    pthread_mutex_unlock(&p11.lock);
    return rv;
}

CK_RV akv_C_Decrypt(CK_SESSION_HANDLE handle, CK_BYTE_PTR in, CK_ULONG in_len, CK_BYTE_PTR out, CK_ULONG_PTR out_len)
{
    CK_RV rv = p11_check_initialized();
    if (rv != CKR_OK)
        return rv;
    if (out_len == NULL || (in == NULL && in_len > 0))
        return CKR_ARGUMENTS_BAD;
    p11_op *op = p11_lock_op(handle, P11_DECRYPT_OP, 1, &rv);
    if (op == NULL)
        return rv;
    p11_key *key = op->key;
    if (op->result != NULL || out == NULL) {
        size_t need = op->result != NULL ? op->result_len : key->modulus_len;
        if (out == NULL) {
            *out_len = need;
            rv = CKR_OK;
        } else if (*out_len < need) {
            *out_len = need;
            rv = CKR_BUFFER_TOO_SMALL;
        } else {
            memcpy(out, op->result, need);
            *out_len = need;
            p11_op_reset(op);
        }
        pthread_mutex_unlock(&p11.lock);
        return rv;
    }
    char alg[16];
    memcpy(alg, op->alg, sizeof(alg));
    if (in_len != key->modulus_len) {
        p11_op_reset(op);
        pthread_mutex_unlock(&p11.lock);
        p11_report("decrypt with %s: the ciphertext is %lu bytes, not the key's %zu", key->uri, (unsigned long)in_len,
                   key->modulus_len);
        return CKR_ENCRYPTED_DATA_LEN_RANGE;
    }
    pthread_mutex_unlock(&p11.lock);

    unsigned char *plain = NULL;
    size_t plain_len = 0;
    rv = p11_agent_private(AKV_OP_DECRYPT, key, alg, in, in_len, &plain, &plain_len);
    if (rv == CKR_DATA_INVALID)
        rv = CKR_ENCRYPTED_DATA_INVALID;

    pthread_mutex_lock(&p11.lock);
    p11_session *s = p11_session_get(handle);
    if (s == NULL) {
        rv = CKR_SESSION_CLOSED;
    } else if (rv == CKR_OK && *out_len < plain_len) {
        s->decrypt.result = plain; /* kept for the retry with a larger buffer */
        s->decrypt.result_len = plain_len;
        plain = NULL;
        *out_len = plain_len;
        rv = CKR_BUFFER_TOO_SMALL;
    } else {
        if (rv == CKR_OK) {
            memcpy(out, plain, plain_len);
            *out_len = plain_len;
        }
        p11_op_reset(&s->decrypt);
    }
    pthread_mutex_unlock(&p11.lock);
    if (plain != NULL)
        OPENSSL_cleanse(plain, plain_len);
    free(plain);
    return rv;
}
