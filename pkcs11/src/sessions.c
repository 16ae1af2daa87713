/*
 * Sessions: opened on any token, read-only or read/write (nothing on the token can be written
 * either way), each with at most one search, one signature, one verification and one decryption
 * running. Login is accepted and tracked as PKCS#11 asks, but the token needs none and no PIN is
 * checked: access to the keys is the agent's (its socket's permissions and its peer check;
 * docs/pkcs11.md, "Access control").
 */
#include <stdlib.h>
#include <string.h>

#include "p11.h"

p11_session *p11_session_get(CK_SESSION_HANDLE handle)
{
    for (size_t i = 0; i < p11.nsessions; i++) {
        if (p11.sessions[i]->handle == handle)
            return p11.sessions[i];
    }
    return NULL;
}

p11_session *p11_lock_session(CK_SESSION_HANDLE handle, CK_RV *rv)
{
    if ((*rv = p11_check_initialized()) != CKR_OK)
        return NULL;
    pthread_mutex_lock(&p11.lock);
    p11_session *s = p11_session_get(handle);
    if (s == NULL) {
        pthread_mutex_unlock(&p11.lock);
        *rv = CKR_SESSION_HANDLE_INVALID;
    }
    return s;
}

p11_op *p11_session_op(p11_session *s, int which)
{
    switch (which) {
    case P11_SIGN_OP:
        return &s->sign;
    case P11_VERIFY_OP:
        return &s->verify;
    case P11_DECRYPT_OP:
        return &s->decrypt;
    default:
        return &s->digest;
    }
}

p11_op *p11_lock_op(CK_SESSION_HANDLE handle, int which, int want_active, CK_RV *rv)
{
    p11_session *s = p11_lock_session(handle, rv);
    if (s == NULL)
        return NULL;
    p11_op *op = p11_session_op(s, which);
    if (op->active != want_active) {
        pthread_mutex_unlock(&p11.lock);
        *rv = want_active ? CKR_OPERATION_NOT_INITIALIZED : CKR_OPERATION_ACTIVE;
        return NULL;
    }
    return op;
}

static const char *op_word(unsigned op)
{
    switch (op) {
    case P11_OP_SIGN:
        return "sign";
    case P11_OP_DECRYPT:
        return "decrypt";
    case P11_OP_WRAP:
        return "wrapKey";
    default:
        return "unwrapKey";
    }
}

p11_key *p11_lock_key(CK_SESSION_HANDLE handle, CK_OBJECT_HANDLE object, unsigned kinds, unsigned need_op,
                      const char *what, p11_session **session, int *kind, CK_RV *rv)
{
    p11_session *s = p11_lock_session(handle, rv);
    if (s == NULL)
        return NULL;
    p11_key *k = p11_object_key(object, kind);
    if (k == NULL || !(kinds & (1u << *kind))) {
        *rv = CKR_KEY_HANDLE_INVALID;
    } else if (need_op != 0 && !(k->ops & need_op)) {
        p11_report("%s: key %s does not allow %s (its key_ops); hint: use a key created with --ops %s", what, k->uri,
                   op_word(need_op), op_word(need_op));
        *rv = CKR_KEY_FUNCTION_NOT_PERMITTED;
    } else {
        *session = s;
        return k;
    }
    pthread_mutex_unlock(&p11.lock);
    return NULL;
}

void p11_op_reset(p11_op *op)
{
    EVP_MD_CTX_free(op->md_ctx);
    free(op->data);
    if (op->result != NULL)
        OPENSSL_cleanse(op->result, op->result_len); /* a decrypted secret */
    free(op->result);
    memset(op, 0, sizeof(*op));
}

static void session_free(p11_session *s)
{
    p11_secrets_close_session(s->handle);
    p11_op_reset(&s->sign);
    p11_op_reset(&s->verify);
    p11_op_reset(&s->decrypt);
    p11_op_reset(&s->digest);
    free(s->found);
    free(s);
}

void p11_sessions_free_all(void)
{
    for (size_t i = 0; i < p11.nsessions; i++)
        session_free(p11.sessions[i]);
    free(p11.sessions);
    p11.sessions = NULL;
    p11.nsessions = p11.session_cap = 0;
}

CK_RV akv_C_OpenSession(CK_SLOT_ID slot, CK_FLAGS flags, CK_VOID_PTR app, CK_NOTIFY notify, CK_SESSION_HANDLE_PTR out)
{
    (void)app;
    (void)notify; /* no callbacks: nothing here ever waits for a person */
    CK_RV rv = p11_check_initialized();
    if (rv != CKR_OK)
        return rv;
    if (out == NULL)
        return CKR_ARGUMENTS_BAD;
    if (!(flags & CKF_SERIAL_SESSION))
        return CKR_SESSION_PARALLEL_NOT_SUPPORTED;
    if ((rv = p11_load_tokens()) != CKR_OK)
        return rv;
    p11_session *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return CKR_HOST_MEMORY;
    pthread_mutex_lock(&p11.lock);
    if (slot >= p11.ntokens) {
        pthread_mutex_unlock(&p11.lock);
        free(s);
        return CKR_SLOT_ID_INVALID;
    }
    if (p11.nsessions == p11.session_cap) {
        size_t cap = p11.session_cap ? p11.session_cap * 2 : 16;
        p11_session **grown = realloc(p11.sessions, cap * sizeof(*grown));
        if (grown == NULL) {
            pthread_mutex_unlock(&p11.lock);
            free(s);
            return CKR_HOST_MEMORY;
        }
        p11.sessions = grown;
        p11.session_cap = cap;
    }
    s->handle = p11.next_session++;
    s->slot = slot;
    s->flags = flags;
    p11.sessions[p11.nsessions++] = s;
    *out = s->handle;
    pthread_mutex_unlock(&p11.lock);
    return CKR_OK;
}

CK_RV akv_C_CloseSession(CK_SESSION_HANDLE handle)
{
    CK_RV rv = p11_check_initialized();
    if (rv != CKR_OK)
        return rv;
    pthread_mutex_lock(&p11.lock);
    rv = CKR_SESSION_HANDLE_INVALID;
    for (size_t i = 0; i < p11.nsessions; i++) {
        if (p11.sessions[i]->handle == handle) {
            session_free(p11.sessions[i]);
            p11.sessions[i] = p11.sessions[--p11.nsessions];
            rv = CKR_OK;
            break;
        }
    }
    if (p11.nsessions == 0)
        p11.logged_in = 0; /* closing the last session logs out (2.40 section 5.6) */
    pthread_mutex_unlock(&p11.lock);
    return rv;
}

CK_RV akv_C_CloseAllSessions(CK_SLOT_ID slot)
{
    CK_RV rv = p11_check_initialized();
    if (rv != CKR_OK)
        return rv;
    pthread_mutex_lock(&p11.lock);
    if (slot >= p11.ntokens) {
        pthread_mutex_unlock(&p11.lock);
        return CKR_SLOT_ID_INVALID;
    }
    for (size_t i = 0; i < p11.nsessions;) {
        if (p11.sessions[i]->slot == slot) {
            session_free(p11.sessions[i]);
            p11.sessions[i] = p11.sessions[--p11.nsessions];
        } else {
            i++;
        }
    }
    if (p11.nsessions == 0)
        p11.logged_in = 0;
    pthread_mutex_unlock(&p11.lock);
    return CKR_OK;
}

CK_RV akv_C_GetSessionInfo(CK_SESSION_HANDLE handle, CK_SESSION_INFO_PTR info)
{
    CK_RV rv;
    if (info == NULL)
        return p11_check_initialized() != CKR_OK ? CKR_CRYPTOKI_NOT_INITIALIZED : CKR_ARGUMENTS_BAD;
    p11_session *s = p11_lock_session(handle, &rv);
    if (s == NULL)
        return rv;
    int rw = (s->flags & CKF_RW_SESSION) != 0;
    info->slotID = s->slot;
    info->flags = s->flags;
    info->ulDeviceError = 0;
    info->state = p11.logged_in ? (rw ? CKS_RW_USER_FUNCTIONS : CKS_RO_USER_FUNCTIONS)
                                : (rw ? CKS_RW_PUBLIC_SESSION : CKS_RO_PUBLIC_SESSION);
    pthread_mutex_unlock(&p11.lock);
    return CKR_OK;
}

CK_RV akv_C_Login(CK_SESSION_HANDLE handle, CK_USER_TYPE user, CK_UTF8CHAR_PTR pin, CK_ULONG pin_len)
{
    (void)pin;
    (void)pin_len;
    CK_RV rv = p11_check_initialized();
    if (rv != CKR_OK)
        return rv;
    if (user == CKU_SO)
        return CKR_USER_TYPE_INVALID; /* there is no security officer: the token is never initialised here */
    if (user != CKU_USER && user != CKU_CONTEXT_SPECIFIC)
        return CKR_USER_TYPE_INVALID;
    if (p11_lock_session(handle, &rv) == NULL)
        return rv;
    if (p11.logged_in && user == CKU_USER)
        rv = CKR_USER_ALREADY_LOGGED_IN;
    else
        p11.logged_in = 1;
    pthread_mutex_unlock(&p11.lock);
    return rv;
}

CK_RV akv_C_Logout(CK_SESSION_HANDLE handle)
{
    CK_RV rv;
    if (p11_lock_session(handle, &rv) == NULL)
        return rv;
    if (!p11.logged_in)
        rv = CKR_USER_NOT_LOGGED_IN;
    else
        p11.logged_in = 0;
    pthread_mutex_unlock(&p11.lock);
    return rv;
}
