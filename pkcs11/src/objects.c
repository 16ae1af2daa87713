/*
 * Objects: each HSM key is a private-key object and a public-key object (RSA, EC), or a secret-key
 * object (oct keys), plus a certificate object when the agent config names one for the key. The
 * three share CKA_ID (the SHA-1 of the public key bits, RFC 5280's key identifier) and CKA_LABEL
 * (the key name), which is how Java, OpenSSH and GnuTLS pair them. Nothing is private
 * (CKA_PRIVATE false: no login is needed to see or use a key) and nothing can be changed.
 * The handle says where an object lives: token << 24 | key << 2 | kind.
 */
#include <stdlib.h>
#include <string.h>

#include "p11.h"

#define MAX_KEYS_PER_TOKEN (1u << 22)

CK_OBJECT_HANDLE p11_handle(size_t token, size_t key, int kind)
{
    return ((CK_OBJECT_HANDLE)(token + 1) << 24) | ((CK_OBJECT_HANDLE)key << 2) | (CK_OBJECT_HANDLE)kind;
}

/* Whether the key of the given slot/index has an object of this kind. */
static int has_kind(const p11_key *k, int kind)
{
    switch (kind) {
    case P11_PRIVATE:
    case P11_PUBLIC:
        return k->type != AKV_KEY_TYPE_AES;
    case P11_CERT:
        return k->cert != NULL;
    default:
        return k->type == AKV_KEY_TYPE_AES;
    }
}

p11_key *p11_object_key(CK_OBJECT_HANDLE handle, int *kind)
{
    size_t token = (size_t)(handle >> 24);
    size_t key = (size_t)((handle >> 2) & (MAX_KEYS_PER_TOKEN - 1));
    if (token == 0 || token > p11.ntokens || key >= p11.tokens[token - 1].nkeys)
        return NULL;
    p11_key *k = p11.tokens[token - 1].keys[key];
    *kind = (int)(handle & 3);
    return has_kind(k, *kind) ? k : NULL;
}

/* One attribute value: bytes somewhere, or a scalar kept in the struct. */
typedef struct {
    const void *ptr;
    size_t len;
    CK_ULONG ulong;
    CK_BBOOL bbool;
} attr_value;

enum { ATTR_OK, ATTR_INVALID, ATTR_SENSITIVE };

static int set_bool(attr_value *v, int b)
{
    v->bbool = b ? CK_TRUE : CK_FALSE;
    v->ptr = &v->bbool;
    v->len = sizeof(CK_BBOOL);
    return ATTR_OK;
}

static int set_ulong(attr_value *v, CK_ULONG u)
{
    v->ulong = u;
    v->ptr = &v->ulong;
    v->len = sizeof(CK_ULONG);
    return ATTR_OK;
}

static int set_bytes(attr_value *v, const void *p, size_t len)
{
    v->ptr = p;
    v->len = len;
    return ATTR_OK;
}

static CK_KEY_TYPE ck_key_type(const p11_key *k)
{
    return k->type == AKV_KEY_TYPE_RSA ? CKK_RSA : k->type == AKV_KEY_TYPE_EC ? CKK_EC : CKK_AES;
}

/* Attributes every object has (CKO_* common storage attributes). */
static int common_attr(const p11_key *k, int kind, CK_ATTRIBUTE_TYPE type, attr_value *v)
{
    static const CK_OBJECT_CLASS classes[] = {CKO_PRIVATE_KEY, CKO_PUBLIC_KEY, CKO_CERTIFICATE, CKO_SECRET_KEY};
    switch (type) {
    case CKA_CLASS:
        return set_ulong(v, classes[kind]);
    case CKA_TOKEN:
        return set_bool(v, 1);
    case CKA_PRIVATE:
    case CKA_MODIFIABLE:
    case CKA_COPYABLE:
    case CKA_DESTROYABLE:
        return set_bool(v, 0);
    case CKA_LABEL:
        return set_bytes(v, k->name, strlen(k->name));
    case CKA_ID:
        return set_bytes(v, k->id, sizeof(k->id));
    default:
        return ATTR_INVALID;
    }
}

/* Attributes of every key object (private, public, secret). */
static int key_attr(const p11_key *k, CK_ATTRIBUTE_TYPE type, attr_value *v)
{
    switch (type) {
    case CKA_KEY_TYPE:
        return set_ulong(v, ck_key_type(k));
    case CKA_START_DATE:
    case CKA_END_DATE:
        return set_bytes(v, "", 0);
    case CKA_DERIVE:
    case CKA_LOCAL:
        return set_bool(v, 0);
    case CKA_KEY_GEN_MECHANISM:
        return set_ulong(v, CK_UNAVAILABLE_INFORMATION);
    default:
        return ATTR_INVALID;
    }
}

static int rsa_ec_public_attr(const p11_key *k, CK_ATTRIBUTE_TYPE type, attr_value *v)
{
    if (k->type == AKV_KEY_TYPE_RSA) {
        switch (type) {
        case CKA_MODULUS:
            return set_bytes(v, k->modulus, k->modulus_len);
        case CKA_PUBLIC_EXPONENT:
            return set_bytes(v, k->exponent, k->exponent_len);
        case CKA_MODULUS_BITS:
            return set_ulong(v, k->bits);
        default:
            return ATTR_INVALID;
        }
    }
    switch (type) {
    case CKA_EC_PARAMS:
        return set_bytes(v, k->ec_params, k->ec_params_len);
    case CKA_EC_POINT:
        return set_bytes(v, k->ec_point, k->ec_point_len);
    default:
        return ATTR_INVALID;
    }
}

static int private_attr(const p11_key *k, CK_ATTRIBUTE_TYPE type, attr_value *v)
{
    switch (type) {
    case CKA_SUBJECT:
        return set_bytes(v, k->subject, k->subject_len);
    case CKA_SENSITIVE:
    case CKA_ALWAYS_SENSITIVE:
    case CKA_NEVER_EXTRACTABLE:
        return set_bool(v, 1);
    case CKA_EXTRACTABLE:
    case CKA_SIGN_RECOVER:
    case CKA_WRAP_WITH_TRUSTED:
    case CKA_ALWAYS_AUTHENTICATE:
        return set_bool(v, 0);
    case CKA_SIGN:
        return set_bool(v, (k->ops & P11_OP_SIGN) != 0);
    case CKA_DECRYPT:
        return set_bool(v, k->type == AKV_KEY_TYPE_RSA && (k->ops & P11_OP_DECRYPT) != 0);
    case CKA_UNWRAP:
        return set_bool(v, 0); /* C_UnwrapKey is not offered (docs/pkcs11.md) */
    case CKA_PUBLIC_KEY_INFO:
        return set_bytes(v, k->spki, k->spki_len);
    case CKA_PRIVATE_EXPONENT:
    case CKA_PRIME_1:
    case CKA_PRIME_2:
    case CKA_EXPONENT_1:
    case CKA_EXPONENT_2:
    case CKA_COEFFICIENT:
    case CKA_VALUE:
        return ATTR_SENSITIVE;
    case CKA_MODULUS_BITS:
    case CKA_EC_POINT:
        return ATTR_INVALID; /* public-key attributes only */
    default:
        return rsa_ec_public_attr(k, type, v);
    }
}

static int public_attr(const p11_key *k, CK_ATTRIBUTE_TYPE type, attr_value *v)
{
    switch (type) {
    case CKA_SUBJECT:
        return set_bytes(v, k->subject, k->subject_len);
    case CKA_ENCRYPT:
        return set_bool(v, k->type == AKV_KEY_TYPE_RSA && (k->ops & P11_OP_ENCRYPT) != 0);
    case CKA_VERIFY:
        return set_bool(v, (k->ops & (P11_OP_VERIFY | P11_OP_SIGN)) != 0);
    case CKA_VERIFY_RECOVER:
    case CKA_WRAP:
    case CKA_TRUSTED:
        return set_bool(v, 0);
    case CKA_PUBLIC_KEY_INFO:
        return set_bytes(v, k->spki, k->spki_len);
    default:
        return rsa_ec_public_attr(k, type, v);
    }
}

static int cert_attr(const p11_key *k, CK_ATTRIBUTE_TYPE type, attr_value *v)
{
    switch (type) {
    case CKA_CERTIFICATE_TYPE:
        return set_ulong(v, CKC_X_509);
    case CKA_TRUSTED:
        return set_bool(v, 0);
    case CKA_CERTIFICATE_CATEGORY:
        return set_ulong(v, 0); /* unspecified */
    case CKA_START_DATE:
    case CKA_END_DATE:
    case CKA_URL:
    case CKA_HASH_OF_SUBJECT_PUBLIC_KEY:
    case CKA_HASH_OF_ISSUER_PUBLIC_KEY:
        return set_bytes(v, "", 0);
    case CKA_JAVA_MIDP_SECURITY_DOMAIN:
        return set_ulong(v, 0);
    case CKA_SUBJECT:
        return set_bytes(v, k->subject, k->subject_len);
    case CKA_ISSUER:
        return set_bytes(v, k->issuer, k->issuer_len);
    case CKA_SERIAL_NUMBER:
        return set_bytes(v, k->serial, k->serial_len);
    case CKA_VALUE:
        return set_bytes(v, k->cert, k->cert_len);
    case CKA_PUBLIC_KEY_INFO:
        return set_bytes(v, k->spki, k->spki_len);
    default:
        return ATTR_INVALID;
    }
}

static int secret_attr(const p11_key *k, CK_ATTRIBUTE_TYPE type, attr_value *v)
{
    switch (type) {
    case CKA_SENSITIVE:
    case CKA_ALWAYS_SENSITIVE:
    case CKA_NEVER_EXTRACTABLE:
        return set_bool(v, 1);
    case CKA_EXTRACTABLE:
    case CKA_SIGN:
    case CKA_VERIFY:
    case CKA_ENCRYPT:
    case CKA_DECRYPT:
    case CKA_WRAP:
    case CKA_UNWRAP:
    case CKA_TRUSTED:
    case CKA_WRAP_WITH_TRUSTED:
    case CKA_ALWAYS_AUTHENTICATE:
        return set_bool(v, 0); /* no AES mechanism is offered (docs/pkcs11.md) */
    case CKA_VALUE_LEN:
        return k->bits != 0 ? set_ulong(v, k->bits / 8) : ATTR_INVALID;
    case CKA_VALUE:
        return ATTR_SENSITIVE;
    default:
        return ATTR_INVALID;
    }
}

static int object_attr(const p11_key *k, int kind, CK_ATTRIBUTE_TYPE type, attr_value *v)
{
    memset(v, 0, sizeof(*v));
    int r = common_attr(k, kind, type, v);
    if (r != ATTR_INVALID)
        return r;
    if (kind != P11_CERT && (r = key_attr(k, type, v)) != ATTR_INVALID)
        return r;
    switch (kind) {
    case P11_PRIVATE:
        return private_attr(k, type, v);
    case P11_PUBLIC:
        return public_attr(k, type, v);
    case P11_CERT:
        return cert_attr(k, type, v);
    default:
        return secret_attr(k, type, v);
    }
}

/* Looks up the session and the object, with p11.lock held on success. */
static CK_RV lock_object(CK_SESSION_HANDLE handle, CK_OBJECT_HANDLE object, p11_key **key, int *kind)
{
    CK_RV rv = p11_check_initialized();
    if (rv != CKR_OK)
        return rv;
    pthread_mutex_lock(&p11.lock);
    if (p11_session_get(handle) == NULL) {
        pthread_mutex_unlock(&p11.lock);
        return CKR_SESSION_HANDLE_INVALID;
    }
    *key = p11_object_key(object, kind);
    if (*key == NULL) {
        pthread_mutex_unlock(&p11.lock);
        return CKR_OBJECT_HANDLE_INVALID;
    }
    return CKR_OK;
}

CK_RV akv_C_GetAttributeValue(CK_SESSION_HANDLE handle, CK_OBJECT_HANDLE object, CK_ATTRIBUTE_PTR attrs, CK_ULONG count)
{
    p11_key *k;
    int kind;
    if (attrs == NULL && count > 0)
        return CKR_ARGUMENTS_BAD;
    CK_RV rv = lock_object(handle, object, &k, &kind);
    if (rv != CKR_OK)
        return rv;
    /* Every attribute is answered; the result is the last of the errors 2.40 section 5.7 lists. */
    for (CK_ULONG i = 0; i < count; i++) {
        attr_value v;
        int r = object_attr(k, kind, attrs[i].type, &v);
        if (r == ATTR_SENSITIVE) {
            attrs[i].ulValueLen = CK_UNAVAILABLE_INFORMATION;
            rv = CKR_ATTRIBUTE_SENSITIVE;
        } else if (r == ATTR_INVALID) {
            attrs[i].ulValueLen = CK_UNAVAILABLE_INFORMATION;
            rv = CKR_ATTRIBUTE_TYPE_INVALID;
        } else if (attrs[i].pValue == NULL) {
            attrs[i].ulValueLen = v.len;
        } else if (attrs[i].ulValueLen < v.len) {
            attrs[i].ulValueLen = CK_UNAVAILABLE_INFORMATION;
            rv = CKR_BUFFER_TOO_SMALL;
        } else {
            if (v.len > 0)
                memcpy(attrs[i].pValue, v.ptr, v.len);
            attrs[i].ulValueLen = v.len;
        }
    }
    pthread_mutex_unlock(&p11.lock);
    return rv;
}

CK_RV akv_C_GetObjectSize(CK_SESSION_HANDLE handle, CK_OBJECT_HANDLE object, CK_ULONG_PTR size)
{
    p11_key *k;
    int kind;
    if (size == NULL)
        return CKR_ARGUMENTS_BAD;
    CK_RV rv = lock_object(handle, object, &k, &kind);
    if (rv != CKR_OK)
        return rv;
    *size = CK_UNAVAILABLE_INFORMATION;
    pthread_mutex_unlock(&p11.lock);
    return CKR_OK;
}

/* Whether the object has every attribute of the template with exactly that value. */
static int matches(const p11_key *k, int kind, const CK_ATTRIBUTE *templ, CK_ULONG count)
{
    for (CK_ULONG i = 0; i < count; i++) {
        attr_value v;
        if (object_attr(k, kind, templ[i].type, &v) != ATTR_OK || v.len != templ[i].ulValueLen)
            return 0;
        if (v.len > 0 && (templ[i].pValue == NULL || memcmp(v.ptr, templ[i].pValue, v.len) != 0))
            return 0;
    }
    return 1;
}

CK_RV akv_C_FindObjectsInit(CK_SESSION_HANDLE handle, CK_ATTRIBUTE_PTR templ, CK_ULONG count)
{
    CK_RV rv = p11_check_initialized();
    if (rv != CKR_OK)
        return rv;
    if (templ == NULL && count > 0)
        return CKR_ARGUMENTS_BAD;
    pthread_mutex_lock(&p11.lock);
    p11_session *s = p11_session_get(handle);
    CK_SLOT_ID slot = s != NULL ? s->slot : 0;
    int busy = s != NULL && s->finding;
    pthread_mutex_unlock(&p11.lock);
    if (s == NULL)
        return CKR_SESSION_HANDLE_INVALID;
    if (busy)
        return CKR_OPERATION_ACTIVE;
    if ((rv = p11_refresh_token(slot, 0)) != CKR_OK)
        return rv;

    pthread_mutex_lock(&p11.lock);
    s = p11_session_get(handle);
    if (s == NULL) {
        pthread_mutex_unlock(&p11.lock);
        return CKR_SESSION_HANDLE_INVALID;
    }
    const p11_token *t = &p11.tokens[slot];
    CK_OBJECT_HANDLE *found = malloc((t->nkeys * 4 + 1) * sizeof(*found));
    if (found == NULL) {
        pthread_mutex_unlock(&p11.lock);
        return CKR_HOST_MEMORY;
    }
    size_t n = 0;
    for (int kind = P11_PRIVATE; kind <= P11_SECRET; kind++) {
        for (size_t i = 0; i < t->nkeys; i++) {
            const p11_key *k = t->keys[i];
            if (t->present != NULL && t->present[i] && has_kind(k, kind) && matches(k, kind, templ, count))
                found[n++] = p11_handle(slot, i, kind);
        }
    }
    free(s->found);
    s->found = found;
    s->nfound = n;
    s->found_pos = 0;
    s->finding = 1;
    pthread_mutex_unlock(&p11.lock);
    return CKR_OK;
}

CK_RV akv_C_FindObjects(CK_SESSION_HANDLE handle, CK_OBJECT_HANDLE_PTR out, CK_ULONG max, CK_ULONG_PTR count)
{
    CK_RV rv = p11_check_initialized();
    if (rv != CKR_OK)
        return rv;
    if ((out == NULL && max > 0) || count == NULL)
        return CKR_ARGUMENTS_BAD;
    pthread_mutex_lock(&p11.lock);
    p11_session *s = p11_session_get(handle);
    if (s == NULL || !s->finding) {
        pthread_mutex_unlock(&p11.lock);
        return s == NULL ? CKR_SESSION_HANDLE_INVALID : CKR_OPERATION_NOT_INITIALIZED;
    }
    CK_ULONG n = 0;
    while (n < max && s->found_pos < s->nfound)
        out[n++] = s->found[s->found_pos++];
    *count = n;
    pthread_mutex_unlock(&p11.lock);
    return CKR_OK;
}

CK_RV akv_C_FindObjectsFinal(CK_SESSION_HANDLE handle)
{
    CK_RV rv = p11_check_initialized();
    if (rv != CKR_OK)
        return rv;
    pthread_mutex_lock(&p11.lock);
    p11_session *s = p11_session_get(handle);
    if (s == NULL || !s->finding) {
        pthread_mutex_unlock(&p11.lock);
        return s == NULL ? CKR_SESSION_HANDLE_INVALID : CKR_OPERATION_NOT_INITIALIZED;
    }
    free(s->found);
    s->found = NULL;
    s->nfound = s->found_pos = 0;
    s->finding = 0;
    pthread_mutex_unlock(&p11.lock);
    return CKR_OK;
}
