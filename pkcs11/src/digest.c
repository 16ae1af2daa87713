/*
 * C_Digest*: SHA-256, SHA-384 and SHA-512, computed here (OpenSSL), single- or multi-part. The
 * module hashes for its hashing signature mechanisms anyway; offering the digests themselves lets
 * programs that check for them before using a hash in a signature (Java's SunPKCS11 does, for
 * RSA-PSS parameters) see the token as able to. Nothing of it goes to the agent.
 */
#include <string.h>

#include "p11.h"

CK_RV akv_C_DigestInit(CK_SESSION_HANDLE handle, CK_MECHANISM_PTR mech)
{
    CK_RV rv;
    if (mech == NULL)
        return CKR_ARGUMENTS_BAD;
    const EVP_MD *md = p11_md_of(mech->mechanism);
    p11_op *op = p11_lock_op(handle, P11_DIGEST_OP, 0, &rv);
    if (op == NULL)
        return rv;
    if (md == NULL) {
        pthread_mutex_unlock(&p11.lock);
        return CKR_MECHANISM_INVALID;
    }
    memset(op, 0, sizeof(*op));
    op->md = md;
    op->md_ctx = EVP_MD_CTX_new();
    rv = op->md_ctx != NULL && EVP_DigestInit_ex(op->md_ctx, md, NULL) ? CKR_OK : CKR_HOST_MEMORY;
    if (rv == CKR_OK) {
        op->active = 1;
        op->mechanism = mech->mechanism;
    } else {
        p11_op_reset(op);
    }
    pthread_mutex_unlock(&p11.lock);
    return rv;
}

CK_RV akv_C_DigestUpdate(CK_SESSION_HANDLE handle, CK_BYTE_PTR data, CK_ULONG len)
{
    CK_RV rv;
    if (data == NULL && len > 0)
        return CKR_ARGUMENTS_BAD;
    p11_op *op = p11_lock_op(handle, P11_DIGEST_OP, 1, &rv);
    if (op == NULL)
        return rv;
    op->updated = 1;
    if (!EVP_DigestUpdate(op->md_ctx, data, len)) {
        p11_op_reset(op);
        rv = CKR_GENERAL_ERROR;
    }
    pthread_mutex_unlock(&p11.lock);
    return rv;
}

/* Size query and a small buffer keep the operation (2.40 section 5.2); the digest ends it. */
static CK_RV finish(p11_op *op, CK_BYTE_PTR out, CK_ULONG_PTR out_len)
{
    CK_ULONG size = (CK_ULONG)EVP_MD_get_size(op->md);
    if (out == NULL || *out_len < size) {
        CK_RV rv = out == NULL ? CKR_OK : CKR_BUFFER_TOO_SMALL;
        *out_len = size;
        return rv;
    }
    unsigned int n = 0;
    CK_RV rv = EVP_DigestFinal_ex(op->md_ctx, out, &n) ? CKR_OK : CKR_GENERAL_ERROR;
    *out_len = n;
    p11_op_reset(op);
    return rv;
}

CK_RV akv_C_Digest(CK_SESSION_HANDLE handle, CK_BYTE_PTR data, CK_ULONG len, CK_BYTE_PTR out, CK_ULONG_PTR out_len)
{
    CK_RV rv;
    if (out_len == NULL || (data == NULL && len > 0))
        return CKR_ARGUMENTS_BAD;
    p11_op *op = p11_lock_op(handle, P11_DIGEST_OP, 1, &rv);
    if (op == NULL)
        return rv;
    if (op->updated) {
        p11_op_reset(op);
        rv = CKR_OPERATION_ACTIVE;
    } else if (out != NULL && *out_len >= (CK_ULONG)EVP_MD_get_size(op->md) &&
               !EVP_DigestUpdate(op->md_ctx, data, len)) {
        p11_op_reset(op);
        rv = CKR_GENERAL_ERROR;
    } else {
        rv = finish(op, out, out_len);
    }
    pthread_mutex_unlock(&p11.lock);
    return rv;
}

CK_RV akv_C_DigestFinal(CK_SESSION_HANDLE handle, CK_BYTE_PTR out, CK_ULONG_PTR out_len)
{
    CK_RV rv;
    if (out_len == NULL)
        return CKR_ARGUMENTS_BAD;
    p11_op *op = p11_lock_op(handle, P11_DIGEST_OP, 1, &rv);
    if (op == NULL)
        return rv;
    rv = finish(op, out, out_len);
    pthread_mutex_unlock(&p11.lock);
    return rv;
}
