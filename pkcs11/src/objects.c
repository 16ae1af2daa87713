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

int p11_attr_bool(p11_attr_value *v, int b)
{
    v->bbool = b ? CK_TRUE : CK_FALSE;
    v->ptr = &v->bbool;
    v->len = sizeof(CK_BBOOL);
    return P11_ATTR_OK;
}

int p11_attr_ulong(p11_attr_value *v, CK_ULONG u)
{
    v->ulong = u;
    v->ptr = &v->ulong;
    v->len = sizeof(CK_ULONG);
    return P11_ATTR_OK;
}

int p11_attr_bytes(p11_attr_value *v, const void *p, size_t len)
{
    v->ptr = p;
    v->len = len;
    return P11_ATTR_OK;
}

static CK_KEY_TYPE ck_key_type(const p11_key *k)
{
    return k->type == AKV_KEY_TYPE_RSA ? CKK_RSA : k->type == AKV_KEY_TYPE_EC ? CKK_EC : CKK_AES;
}

/* Attributes every object has (CKO_* common storage attributes). */
static int common_attr(const p11_key *k, int kind, CK_ATTRIBUTE_TYPE type, p11_attr_value *v)
{
    static const CK_OBJECT_CLASS classes[] = {CKO_PRIVATE_KEY, CKO_PUBLIC_KEY, CKO_CERTIFICATE, CKO_SECRET_KEY};
    switch (type) {
    case CKA_CLASS:
        return p11_attr_ulong(v, classes[kind]);
    case CKA_TOKEN:
        return p11_attr_bool(v, 1);
    case CKA_PRIVATE:
    case CKA_MODIFIABLE:
    case CKA_COPYABLE:
    case CKA_DESTROYABLE:
        return p11_attr_bool(v, 0);
    case CKA_LABEL:
        return p11_attr_bytes(v, k->name, strlen(k->name));
    case CKA_ID:
        return p11_attr_bytes(v, k->id, sizeof(k->id));
    default:
        return P11_ATTR_INVALID;
    }
}

/* Attributes of every key object (private, public, secret). */
static int key_attr(const p11_key *k, CK_ATTRIBUTE_TYPE type, p11_attr_value *v)
{
    switch (type) {
    case CKA_KEY_TYPE:
        return p11_attr_ulong(v, ck_key_type(k));
    case CKA_START_DATE:
    case CKA_END_DATE:
        return p11_attr_bytes(v, "", 0);
    case CKA_DERIVE:
    case CKA_LOCAL:
        return p11_attr_bool(v, 0);
    case CKA_KEY_GEN_MECHANISM:
        return p11_attr_ulong(v, CK_UNAVAILABLE_INFORMATION);
    default:
        return P11_ATTR_INVALID;
    }
}

static int rsa_ec_public_attr(const p11_key *k, CK_ATTRIBUTE_TYPE type, p11_attr_value *v)
{
    if (k->type == AKV_KEY_TYPE_RSA) {
        switch (type) {
        case CKA_MODULUS:
            return p11_attr_bytes(v, k->modulus, k->modulus_len);
        case CKA_PUBLIC_EXPONENT:
            return p11_attr_bytes(v, k->exponent, k->exponent_len);
        case CKA_MODULUS_BITS:
            return p11_attr_ulong(v, k->bits);
        default:
            return P11_ATTR_INVALID;
        }
    }
    switch (type) {
    case CKA_EC_PARAMS:
        return p11_attr_bytes(v, k->ec_params, k->ec_params_len);
    case CKA_EC_POINT:
        return p11_attr_bytes(v, k->ec_point, k->ec_point_len);
    default:
        return P11_ATTR_INVALID;
    }
}

static int private_attr(const p11_key *k, CK_ATTRIBUTE_TYPE type, p11_attr_value *v)
{
    switch (type) {
    case CKA_SUBJECT:
        return p11_attr_bytes(v, k->subject, k->subject_len);
    case CKA_SENSITIVE:
    case CKA_ALWAYS_SENSITIVE:
    case CKA_NEVER_EXTRACTABLE:
        return p11_attr_bool(v, 1);
    case CKA_EXTRACTABLE:
    case CKA_SIGN_RECOVER:
    case CKA_WRAP_WITH_TRUSTED:
    case CKA_ALWAYS_AUTHENTICATE:
        return p11_attr_bool(v, 0);
    case CKA_SIGN:
        return p11_attr_bool(v, (k->ops & P11_OP_SIGN) != 0);
    case CKA_DECRYPT:
        return p11_attr_bool(v, k->type == AKV_KEY_TYPE_RSA && (k->ops & P11_OP_DECRYPT) != 0);
    case CKA_UNWRAP:
        return p11_attr_bool(v, k->type == AKV_KEY_TYPE_RSA && (k->ops & P11_OP_UNWRAP) != 0);
    case CKA_PUBLIC_KEY_INFO:
        return p11_attr_bytes(v, k->spki, k->spki_len);
    case CKA_PRIVATE_EXPONENT:
    case CKA_PRIME_1:
    case CKA_PRIME_2:
    case CKA_EXPONENT_1:
    case CKA_EXPONENT_2:
    case CKA_COEFFICIENT:
    case CKA_VALUE:
        return P11_ATTR_SENSITIVE;
    case CKA_MODULUS_BITS:
    case CKA_EC_POINT:
        return P11_ATTR_INVALID; /* public-key attributes only */
    default:
        return rsa_ec_public_attr(k, type, v);
    }
}

static int public_attr(const p11_key *k, CK_ATTRIBUTE_TYPE type, p11_attr_value *v)
{
    switch (type) {
    case CKA_SUBJECT:
        return p11_attr_bytes(v, k->subject, k->subject_len);
    case CKA_ENCRYPT:
        return p11_attr_bool(v, k->type == AKV_KEY_TYPE_RSA && (k->ops & P11_OP_ENCRYPT) != 0);
    case CKA_VERIFY:
        return p11_attr_bool(v, (k->ops & (P11_OP_VERIFY | P11_OP_SIGN)) != 0);
    case CKA_WRAP:
        return p11_attr_bool(v, k->type == AKV_KEY_TYPE_RSA && (k->ops & P11_OP_WRAP) != 0);
    case CKA_VERIFY_RECOVER:
    case CKA_TRUSTED:
        return p11_attr_bool(v, 0);
    case CKA_PUBLIC_KEY_INFO:
        return p11_attr_bytes(v, k->spki, k->spki_len);
    default:
        return rsa_ec_public_attr(k, type, v);
    }
}

static int cert_attr(const p11_key *k, CK_ATTRIBUTE_TYPE type, p11_attr_value *v)
{
    switch (type) {
    case CKA_CERTIFICATE_TYPE:
        return p11_attr_ulong(v, CKC_X_509);
    case CKA_TRUSTED:
        return p11_attr_bool(v, 0);
    case CKA_CERTIFICATE_CATEGORY:
        return p11_attr_ulong(v, 0); /* unspecified */
    case CKA_START_DATE:
    case CKA_END_DATE:
    case CKA_URL:
    case CKA_HASH_OF_SUBJECT_PUBLIC_KEY:
    case CKA_HASH_OF_ISSUER_PUBLIC_KEY:
        return p11_attr_bytes(v, "", 0);
    case CKA_JAVA_MIDP_SECURITY_DOMAIN:
        return p11_attr_ulong(v, 0);
    case CKA_SUBJECT:
        return p11_attr_bytes(v, k->subject, k->subject_len);
    case CKA_ISSUER:
        return p11_attr_bytes(v, k->issuer, k->issuer_len);
    case CKA_SERIAL_NUMBER:
        return p11_attr_bytes(v, k->serial, k->serial_len);
    case CKA_VALUE:
        return p11_attr_bytes(v, k->cert, k->cert_len);
    case CKA_PUBLIC_KEY_INFO:
        return p11_attr_bytes(v, k->spki, k->spki_len);
    default:
        return P11_ATTR_INVALID;
    }
}

static int secret_attr(const p11_key *k, CK_ATTRIBUTE_TYPE type, p11_attr_value *v)
{
    switch (type) {
    case CKA_SENSITIVE:
    case CKA_ALWAYS_SENSITIVE:
    case CKA_NEVER_EXTRACTABLE:
        return p11_attr_bool(v, 1);
    case CKA_WRAP:
        return p11_attr_bool(v, (k->ops & P11_OP_WRAP) != 0); /* CKM_AES_KEY_WRAP (wrap.c) */
    case CKA_UNWRAP:
        return p11_attr_bool(v, (k->ops & P11_OP_UNWRAP) != 0);
    case CKA_EXTRACTABLE:
    case CKA_SIGN:
    case CKA_VERIFY:
    case CKA_ENCRYPT:
    case CKA_DECRYPT:
    case CKA_TRUSTED:
    case CKA_WRAP_WITH_TRUSTED:
    case CKA_ALWAYS_AUTHENTICATE:
        return p11_attr_bool(v, 0); /* the HSM's AES encryption is not offered (docs/pkcs11.md) */
    case CKA_VALUE_LEN:
        return k->bits != 0 ? p11_attr_ulong(v, k->bits / 8) : P11_ATTR_INVALID;
    case CKA_VALUE:
        return P11_ATTR_SENSITIVE;
    default:
        return P11_ATTR_INVALID;
    }
}

static int object_attr(const p11_key *k, int kind, CK_ATTRIBUTE_TYPE type, p11_attr_value *v)
{
    memset(v, 0, sizeof(*v));
    int r = common_attr(k, kind, type, v);
    if (r != P11_ATTR_INVALID)
        return r;
    if (kind != P11_CERT && (r = key_attr(k, type, v)) != P11_ATTR_INVALID)
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

/* An object of either sort: an HSM key's (key + kind) or a session object (secret). */
typedef struct {
    const p11_key *key;
    int kind;
    const p11_secret *secret;
} object_ref;

static int object_ref_attr(const object_ref *o, CK_ATTRIBUTE_TYPE type, p11_attr_value *v)
{
    if (o->secret != NULL) {
        memset(v, 0, sizeof(*v));
        return p11_secret_attr(o->secret, type, v);
    }
    return object_attr(o->key, o->kind, type, v);
}

/* Looks up the session and the object, with p11.lock held on success. */
static CK_RV lock_object(CK_SESSION_HANDLE handle, CK_OBJECT_HANDLE object, object_ref *o)
{
    CK_RV rv;
    if (p11_lock_session(handle, &rv) == NULL)
        return rv;
    memset(o, 0, sizeof(*o));
    o->secret = p11_secret_get(object);
    if (o->secret == NULL)
        o->key = p11_object_key(object, &o->kind);
    if (o->secret == NULL && o->key == NULL) {
        pthread_mutex_unlock(&p11.lock);
        return CKR_OBJECT_HANDLE_INVALID;
    }
    return CKR_OK;
}

CK_RV akv_C_GetAttributeValue(CK_SESSION_HANDLE handle, CK_OBJECT_HANDLE object, CK_ATTRIBUTE_PTR attrs, CK_ULONG count)
{
    object_ref o;
    if (attrs == NULL && count > 0)
        return CKR_ARGUMENTS_BAD;
    CK_RV rv = lock_object(handle, object, &o);
    if (rv != CKR_OK)
        return rv;
    /* Every attribute is answered; the result is the last of the errors 2.40 section 5.7 lists. */
    for (CK_ULONG i = 0; i < count; i++) {
        p11_attr_value v;
        int r = object_ref_attr(&o, attrs[i].type, &v);
        if (r == P11_ATTR_SENSITIVE) {
            attrs[i].ulValueLen = CK_UNAVAILABLE_INFORMATION;
            rv = CKR_ATTRIBUTE_SENSITIVE;
        } else if (r == P11_ATTR_INVALID) {
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
    object_ref o;
    if (size == NULL)
        return CKR_ARGUMENTS_BAD;
    CK_RV rv = lock_object(handle, object, &o);
    if (rv != CKR_OK)
        return rv;
    *size = CK_UNAVAILABLE_INFORMATION;
    pthread_mutex_unlock(&p11.lock);
    return CKR_OK;
}

/* Whether the object has every attribute of the template with exactly that value. */
static int matches(const object_ref *o, const CK_ATTRIBUTE *templ, CK_ULONG count)
{
    for (CK_ULONG i = 0; i < count; i++) {
        p11_attr_value v;
        if (object_ref_attr(o, templ[i].type, &v) != P11_ATTR_OK || v.len != templ[i].ulValueLen)
            return 0;
        if (v.len > 0 && (templ[i].pValue == NULL || memcmp(v.ptr, templ[i].pValue, v.len) != 0))
            return 0;
    }
    return 1;
}

CK_RV akv_C_FindObjectsInit(CK_SESSION_HANDLE handle, CK_ATTRIBUTE_PTR templ, CK_ULONG count)
{
    CK_RV rv;
    if (templ == NULL && count > 0)
        return p11_check_initialized() != CKR_OK ? CKR_CRYPTOKI_NOT_INITIALIZED : CKR_ARGUMENTS_BAD;
    p11_session *s = p11_lock_session(handle, &rv);
    if (s == NULL)
        return rv;
    CK_SLOT_ID slot = s->slot;
    int busy = s->finding;
    pthread_mutex_unlock(&p11.lock);
    if (busy)
        return CKR_OPERATION_ACTIVE;
    if ((rv = p11_refresh_token(slot, 0)) != CKR_OK || (rv = p11_pin_version(slot, templ, count)) != CKR_OK)
        return rv;

    if ((s = p11_lock_session(handle, &rv)) == NULL)
        return rv;
    const p11_token *t = &p11.tokens[slot];
    CK_OBJECT_HANDLE *found = malloc((t->nkeys * 4 + p11.nsecrets + 1) * sizeof(*found));
    if (found == NULL) {
        pthread_mutex_unlock(&p11.lock);
        return CKR_HOST_MEMORY;
    }
    size_t n = 0;
    for (int kind = P11_PRIVATE; kind <= P11_SECRET; kind++) {
        for (size_t i = 0; i < t->nkeys; i++) {
            object_ref o = {t->keys[i], kind, NULL};
            if (t->present != NULL && t->present[i] && has_kind(o.key, kind) && matches(&o, templ, count))
                found[n++] = p11_handle(slot, i, kind);
        }
    }
    /* Session objects are seen by every session of the application on their slot (2.40 4.4). */
    for (size_t i = 0; i < p11.nsecrets; i++) {
        object_ref o = {NULL, 0, p11.secrets[i]};
        if (p11.secrets[i]->slot == slot && matches(&o, templ, count))
            found[n++] = p11.secrets[i]->handle;
    }
    free(s->found);
    s->found = found;
    s->nfound = n;
    s->found_pos = 0;
    s->finding = 1;
    pthread_mutex_unlock(&p11.lock);
    return CKR_OK;
}

/* The session's search, with p11.lock held; NULL (lock released) and *rv otherwise. */
static p11_session *lock_search(CK_SESSION_HANDLE handle, CK_RV *rv)
{
    p11_session *s = p11_lock_session(handle, rv);
    if (s != NULL && !s->finding) {
        pthread_mutex_unlock(&p11.lock);
        *rv = CKR_OPERATION_NOT_INITIALIZED;
        return NULL;
    }
    return s;
}

CK_RV akv_C_FindObjects(CK_SESSION_HANDLE handle, CK_OBJECT_HANDLE_PTR out, CK_ULONG max, CK_ULONG_PTR count)
{
    CK_RV rv;
    if ((out == NULL && max > 0) || count == NULL)
        return p11_check_initialized() != CKR_OK ? CKR_CRYPTOKI_NOT_INITIALIZED : CKR_ARGUMENTS_BAD;
    p11_session *s = lock_search(handle, &rv);
    if (s == NULL)
        return rv;
    CK_ULONG n = 0;
    while (n < max && s->found_pos < s->nfound)
        out[n++] = s->found[s->found_pos++];
    *count = n;
    pthread_mutex_unlock(&p11.lock);
    return CKR_OK;
}

CK_RV akv_C_FindObjectsFinal(CK_SESSION_HANDLE handle)
{
    CK_RV rv;
    p11_session *s = lock_search(handle, &rv);
    if (s == NULL)
        return rv;
    free(s->found);
    s->found = NULL;
    s->nfound = s->found_pos = 0;
    s->finding = 0;
    pthread_mutex_unlock(&p11.lock);
    return CKR_OK;
}
