/*
 * C_WrapKey and C_UnwrapKey with the HSM's keys (docs/pkcs11.md, "Key wrapping"):
 * - CKM_AES_KEY_WRAP (RFC 3394) with an oct-HSM key: the HSM's A128KW / A192KW / A256KW;
 * - CKM_RSA_PKCS and CKM_RSA_PKCS_OAEP with an RSA key: RSA1_5, RSA-OAEP, RSA-OAEP-256 (wrapping
 *   with the public-key object, unwrapping with the private-key object).
 * The key wrapped is a session object (secrets.c) that is extractable; an HSM key never is. An
 * unwrapped key becomes a session object made from the caller's template. Sizes are checked and
 * the template parsed before anything is sent; the HSM's refusal of a wrapped key (integrity
 * check, padding) is CKR_WRAPPED_KEY_INVALID.
 */
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

#include "p11.h"

#define MAX_WRAPPED_KEY 512 /* the agent's bound on a key to wrap (handlers.ts) */

/* The wrapped size of `len` bytes, or 0 when the mechanism cannot wrap that many. */
static size_t wrapped_size(CK_MECHANISM_TYPE mech, const p11_key *wrapping, size_t len)
{
    if (mech == CKM_AES_KEY_WRAP)
        return len >= 16 && len % 8 == 0 && len <= MAX_WRAPPED_KEY ? len + 8 : 0;
    /* RSA: the padding needs 11 (PKCS#1 v1.5) or 2 + 2 * hash bytes (OAEP); the HSM checks it. */
    return len > 0 && len < wrapping->modulus_len ? wrapping->modulus_len : 0;
}

CK_RV akv_C_WrapKey(CK_SESSION_HANDLE handle, CK_MECHANISM_PTR mech, CK_OBJECT_HANDLE wrapping, CK_OBJECT_HANDLE key,
                    CK_BYTE_PTR out, CK_ULONG_PTR out_len)
{
    CK_RV rv = p11_check_initialized();
    if (rv != CKR_OK)
        return rv;
    if (mech == NULL || out_len == NULL)
        return CKR_ARGUMENTS_BAD;
    p11_session *s;
    int kind;
    p11_key *k =
        p11_lock_key(handle, wrapping, (1u << P11_PUBLIC) | (1u << P11_SECRET), P11_OP_WRAP, "wrap", &s, &kind, &rv);
    if (k == NULL)
        return rv == CKR_KEY_HANDLE_INVALID ? CKR_WRAPPING_KEY_HANDLE_INVALID : rv;
    char alg[16];
    rv = p11_wrap_mechanism(mech, k, alg);
    if (rv == CKR_KEY_TYPE_INCONSISTENT)
        rv = CKR_WRAPPING_KEY_TYPE_INCONSISTENT;
    const p11_secret *secret = rv == CKR_OK ? p11_secret_get(key) : NULL;
    int kkind;
    if (rv == CKR_OK && secret == NULL)
        rv = p11_object_key(key, &kkind) != NULL ? CKR_KEY_UNEXTRACTABLE : CKR_KEY_HANDLE_INVALID;
    else if (rv == CKR_OK && !(secret->flags & P11_SECRET_EXTRACTABLE))
        rv = CKR_KEY_UNEXTRACTABLE;
    size_t size = rv == CKR_OK ? wrapped_size(mech->mechanism, k, secret->value_len) : 0;
    if (rv == CKR_OK && size == 0) {
        p11_report("wrap with %s and %s: a %zu-byte key cannot be wrapped (%s)", alg, k->uri, secret->value_len,
                   mech->mechanism == CKM_AES_KEY_WRAP ? "AES key wrap takes a multiple of 8 bytes, 16 to 512"
                                                       : "RSA takes less than the modulus");
        rv = CKR_KEY_SIZE_RANGE;
    }
    if (rv != CKR_OK || out == NULL || *out_len < size) {
        if (rv == CKR_OK) {
            rv = out == NULL ? CKR_OK : CKR_BUFFER_TOO_SMALL;
            *out_len = size;
        }
        pthread_mutex_unlock(&p11.lock);
        return rv;
    }
    unsigned char value[MAX_WRAPPED_KEY];
    size_t value_len = secret->value_len;
    memcpy(value, secret->value, value_len);
    pthread_mutex_unlock(&p11.lock);

    unsigned char *wrapped = NULL;
    size_t wrapped_len = 0;
    rv = p11_agent_private(AKV_OP_WRAP, k, alg, value, value_len, &wrapped, &wrapped_len);
    OPENSSL_cleanse(value, value_len);
    if (rv == CKR_OK && wrapped_len != size) {
        p11_report("wrap with %s: the agent returned %zu bytes, expected %zu", k->uri, wrapped_len, size);
        rv = CKR_DEVICE_ERROR;
    }
    if (rv == CKR_OK) {
        memcpy(out, wrapped, wrapped_len);
        *out_len = wrapped_len;
    }
    free(wrapped);
    return rv;
}

CK_RV akv_C_UnwrapKey(CK_SESSION_HANDLE handle, CK_MECHANISM_PTR mech, CK_OBJECT_HANDLE unwrapping, CK_BYTE_PTR in,
                      CK_ULONG in_len, CK_ATTRIBUTE_PTR templ, CK_ULONG count, CK_OBJECT_HANDLE_PTR out)
{
    CK_RV rv = p11_check_initialized();
    if (rv != CKR_OK)
        return rv;
    if (mech == NULL || out == NULL || (in == NULL && in_len > 0))
        return CKR_ARGUMENTS_BAD;
    p11_secret *secret;
    if ((rv = p11_secret_from_template(templ, count, 1, &secret)) != CKR_OK)
        return rv;
    p11_session *s;
    int kind;
    p11_key *k = p11_lock_key(handle, unwrapping, (1u << P11_PRIVATE) | (1u << P11_SECRET), P11_OP_UNWRAP, "unwrap", &s,
                              &kind, &rv);
    if (k == NULL) {
        p11_secret_free(secret);
        return rv == CKR_KEY_HANDLE_INVALID ? CKR_UNWRAPPING_KEY_HANDLE_INVALID : rv;
    }
    char alg[16];
    rv = p11_wrap_mechanism(mech, k, alg);
    pthread_mutex_unlock(&p11.lock);
    if (rv == CKR_KEY_TYPE_INCONSISTENT)
        rv = CKR_UNWRAPPING_KEY_TYPE_INCONSISTENT;
    int aes = mech->mechanism == CKM_AES_KEY_WRAP;
    if (rv == CKR_OK &&
        (aes ? in_len < 24 || in_len % 8 != 0 || in_len > MAX_WRAPPED_KEY + 8 : in_len != k->modulus_len)) {
        p11_report("unwrap with %s and %s: the wrapped key is %lu bytes, %s", alg, k->uri, (unsigned long)in_len,
                   aes ? "not a multiple of 8 from 24 to 520" : "not the key's size");
        rv = CKR_WRAPPED_KEY_LEN_RANGE;
    }
    if (rv != CKR_OK) {
        p11_secret_free(secret);
        return rv;
    }

    unsigned char *value = NULL;
    size_t value_len = 0;
    rv = p11_agent_private(AKV_OP_UNWRAP, k, alg, in, in_len, &value, &value_len);
    if (rv == CKR_DATA_INVALID)
        rv = CKR_WRAPPED_KEY_INVALID;
    if (rv == CKR_OK)
        rv = p11_secret_set_value(secret, value, value_len);
    if (value != NULL)
        OPENSSL_cleanse(value, value_len);
    free(value);
    if (rv != CKR_OK) {
        p11_secret_free(secret);
        return rv;
    }
    /* The session may have closed while the HSM unwrapped. */
    if ((s = p11_lock_session(handle, &rv)) == NULL) {
        p11_secret_free(secret);
        return rv == CKR_SESSION_HANDLE_INVALID ? CKR_SESSION_CLOSED : rv;
    }
    rv = p11_secret_add(secret, s, out);
    pthread_mutex_unlock(&p11.lock);
    return rv;
}
