/*
 * Session objects: secret keys held in the module's memory (p11.h, p11_secret), made by
 * C_UnwrapKey (the bytes the HSM unwrapped) or C_CreateObject (the application's own key, to wrap
 * under an HSM key). Rules:
 * - session objects only (CKA_TOKEN true is CKR_TEMPLATE_INCONSISTENT): the token's objects are
 *   the HSM's keys, managed with `akv key`; a session object goes when its session closes;
 * - the module does no cryptography with them: CKA_VALUE can be read unless CKA_SENSITIVE, and
 *   C_WrapKey wraps them under an HSM key when CKA_EXTRACTABLE. Defaults: sensitive and
 *   extractable (readable only when the template says CKA_SENSITIVE false);
 * - every value is wiped when freed; at most P11_MAX_SECRETS exist at once (CKR_DEVICE_MEMORY).
 */
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

#include "p11.h"

/* The booleans a template may set, and those only the module sets. */
static const struct {
    CK_ATTRIBUTE_TYPE type;
    unsigned bit;
    int settable;
} booleans[] = {
    {CKA_SENSITIVE, P11_SECRET_SENSITIVE, 1},
    {CKA_EXTRACTABLE, P11_SECRET_EXTRACTABLE, 1},
    {CKA_ENCRYPT, P11_SECRET_ENCRYPT, 1},
    {CKA_DECRYPT, P11_SECRET_DECRYPT, 1},
    {CKA_SIGN, P11_SECRET_SIGN, 1},
    {CKA_VERIFY, P11_SECRET_VERIFY, 1},
    {CKA_WRAP, P11_SECRET_WRAP, 1},
    {CKA_UNWRAP, P11_SECRET_UNWRAP, 1},
    {CKA_DERIVE, P11_SECRET_DERIVE, 1},
    {CKA_PRIVATE, P11_SECRET_PRIVATE, 1},
    {CKA_DESTROYABLE, P11_SECRET_DESTROYABLE, 1},
    {CKA_WRAP_WITH_TRUSTED, P11_SECRET_WRAP_WITH_TRUSTED, 1},
    {CKA_ALWAYS_SENSITIVE, P11_SECRET_ALWAYS_SENSITIVE, 0},
    {CKA_NEVER_EXTRACTABLE, P11_SECRET_NEVER_EXTRACTABLE, 0},
};

p11_secret *p11_secret_get(CK_OBJECT_HANDLE handle)
{
    if ((handle & P11_SECRET_HANDLES) != P11_SECRET_HANDLES)
        return NULL;
    for (size_t i = 0; i < p11.nsecrets; i++) {
        if (p11.secrets[i]->handle == handle)
            return p11.secrets[i];
    }
    return NULL;
}

int p11_secret_attr(const p11_secret *s, CK_ATTRIBUTE_TYPE type, p11_attr_value *v)
{
    for (size_t i = 0; i < sizeof(booleans) / sizeof(booleans[0]); i++) {
        if (booleans[i].type == type)
            return p11_attr_bool(v, (s->flags & booleans[i].bit) != 0);
    }
    switch (type) {
    case CKA_CLASS:
        return p11_attr_ulong(v, CKO_SECRET_KEY);
    case CKA_KEY_TYPE:
        return p11_attr_ulong(v, s->key_type);
    case CKA_TOKEN:
    case CKA_MODIFIABLE:
    case CKA_COPYABLE:
    case CKA_LOCAL:
    case CKA_TRUSTED:
    case CKA_ALWAYS_AUTHENTICATE:
        return p11_attr_bool(v, 0);
    case CKA_LABEL:
        return p11_attr_bytes(v, s->label, s->label_len);
    case CKA_ID:
        return p11_attr_bytes(v, s->id, s->id_len);
    case CKA_START_DATE:
    case CKA_END_DATE:
        return p11_attr_bytes(v, "", 0);
    case CKA_KEY_GEN_MECHANISM:
        return p11_attr_ulong(v, CK_UNAVAILABLE_INFORMATION);
    case CKA_VALUE_LEN:
        return p11_attr_ulong(v, s->value_len);
    case CKA_VALUE:
        return (s->flags & P11_SECRET_SENSITIVE) ? P11_ATTR_SENSITIVE : p11_attr_bytes(v, s->value, s->value_len);
    default:
        return P11_ATTR_INVALID;
    }
}

void p11_secret_free(p11_secret *s)
{
    if (s == NULL)
        return;
    if (s->value != NULL)
        OPENSSL_cleanse(s->value, s->value_len);
    free(s->value);
    free(s->label);
    free(s->id);
    free(s);
}

static int copy_bytes(const CK_ATTRIBUTE *a, unsigned char **out, size_t *len)
{
    free(*out);
    *out = malloc(a->ulValueLen > 0 ? a->ulValueLen : 1);
    if (*out == NULL)
        return 0;
    if (a->ulValueLen > 0)
        memcpy(*out, a->pValue, a->ulValueLen);
    *len = a->ulValueLen;
    return 1;
}

/* One template attribute into s; CKR_OK or the CKR the template earns. */
static CK_RV apply(p11_secret *s, const CK_ATTRIBUTE *a, int unwrapped, int *has_value)
{
    if (a->pValue == NULL && a->ulValueLen > 0)
        return CKR_ATTRIBUTE_VALUE_INVALID;
    for (size_t i = 0; i < sizeof(booleans) / sizeof(booleans[0]); i++) {
        if (booleans[i].type != a->type)
            continue;
        if (!booleans[i].settable)
            return CKR_ATTRIBUTE_READ_ONLY;
        if (a->ulValueLen != sizeof(CK_BBOOL))
            return CKR_ATTRIBUTE_VALUE_INVALID;
        if (*(const CK_BBOOL *)a->pValue)
            s->flags |= booleans[i].bit;
        else
            s->flags &= ~booleans[i].bit;
        return CKR_OK;
    }
    int is_ulong = a->type == CKA_CLASS || a->type == CKA_KEY_TYPE || a->type == CKA_VALUE_LEN;
    if (is_ulong && a->ulValueLen != sizeof(CK_ULONG))
        return CKR_ATTRIBUTE_VALUE_INVALID;
    CK_ULONG u = is_ulong ? *(const CK_ULONG *)a->pValue : 0;
    switch (a->type) {
    case CKA_CLASS:
        if (u != CKO_SECRET_KEY) {
            p11_report("create object: class 0x%lx: the module makes secret-key session objects only (the token's "
                       "keys are the HSM's: `akv key create` / `akv key import`)",
                       (unsigned long)u);
            return CKR_TEMPLATE_INCONSISTENT;
        }
        return CKR_OK;
    case CKA_KEY_TYPE:
        s->key_type = u;
        return CKR_OK;
    case CKA_VALUE_LEN:
        if (u == 0 || u > P11_MAX_INPUT)
            return CKR_ATTRIBUTE_VALUE_INVALID;
        s->want_len = u;
        return CKR_OK;
    case CKA_TOKEN:
        if (a->ulValueLen != sizeof(CK_BBOOL))
            return CKR_ATTRIBUTE_VALUE_INVALID;
        if (*(const CK_BBOOL *)a->pValue) {
            p11_report("%s: CKA_TOKEN true: the module keeps no objects of its own on the token (its objects are "
                       "the HSM's keys); hint: ask for a session object (CKA_TOKEN false), or import the key into "
                       "the HSM with `akv key import`",
                       unwrapped ? "unwrap" : "create object");
            return CKR_TEMPLATE_INCONSISTENT;
        }
        return CKR_OK;
    case CKA_MODIFIABLE:
    case CKA_COPYABLE:
        /* Accepted either way; the object reads false: there is no C_SetAttributeValue or C_CopyObject. */
        return a->ulValueLen == sizeof(CK_BBOOL) ? CKR_OK : CKR_ATTRIBUTE_VALUE_INVALID;
    case CKA_LABEL:
        return copy_bytes(a, &s->label, &s->label_len) ? CKR_OK : CKR_HOST_MEMORY;
    case CKA_ID:
        return copy_bytes(a, &s->id, &s->id_len) ? CKR_OK : CKR_HOST_MEMORY;
    case CKA_START_DATE:
    case CKA_END_DATE:
    case CKA_ALLOWED_MECHANISMS:
        return CKR_OK; /* nothing is done with the key here, so there is nothing to restrict */
    case CKA_VALUE:
        if (unwrapped)
            return CKR_TEMPLATE_INCONSISTENT; /* the value is what the HSM unwraps */
        if (a->ulValueLen == 0 || a->ulValueLen > P11_MAX_INPUT)
            return CKR_ATTRIBUTE_VALUE_INVALID;
        *has_value = 1;
        return copy_bytes(a, &s->value, &s->value_len) ? CKR_OK : CKR_HOST_MEMORY;
    default:
        return CKR_ATTRIBUTE_TYPE_INVALID;
    }
}

CK_RV p11_secret_from_template(const CK_ATTRIBUTE *templ, CK_ULONG count, int unwrapped, p11_secret **out)
{
    *out = NULL;
    if (templ == NULL && count > 0)
        return CKR_ARGUMENTS_BAD;
    p11_secret *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return CKR_HOST_MEMORY;
    s->key_type = CKK_GENERIC_SECRET;
    s->flags = P11_SECRET_SENSITIVE | P11_SECRET_EXTRACTABLE | P11_SECRET_DESTROYABLE;
    int has_value = 0;
    CK_RV rv = CKR_OK;
    for (CK_ULONG i = 0; i < count && rv == CKR_OK; i++)
        rv = apply(s, &templ[i], unwrapped, &has_value);
    if (rv == CKR_OK && !unwrapped && !has_value)
        rv = CKR_TEMPLATE_INCOMPLETE;
    if (rv == CKR_OK && has_value) {
        unsigned char *v = s->value;
        size_t len = s->value_len;
        s->value = NULL;
        rv = p11_secret_set_value(s, v, len);
        OPENSSL_cleanse(v, len);
        free(v);
        /* made from bytes the application had: never "always sensitive" */
    }
    if (rv != CKR_OK) {
        p11_secret_free(s);
        return rv;
    }
    *out = s;
    return CKR_OK;
}

CK_RV p11_secret_set_value(p11_secret *s, const unsigned char *value, size_t len)
{
    if (s->want_len != 0 && s->want_len != len) {
        p11_report("the key is %zu bytes, the template's CKA_VALUE_LEN says %zu", len, s->want_len);
        return CKR_TEMPLATE_INCONSISTENT;
    }
    if (s->key_type == CKK_AES && len != 16 && len != 24 && len != 32) {
        p11_report("the key is %zu bytes, which is no AES key size (16, 24 or 32); hint: ask for CKK_GENERIC_SECRET",
                   len);
        return CKR_TEMPLATE_INCONSISTENT;
    }
    s->value = malloc(len > 0 ? len : 1);
    if (s->value == NULL)
        return CKR_HOST_MEMORY;
    memcpy(s->value, value, len);
    s->value_len = len;
    return CKR_OK;
}

CK_RV p11_secret_add(p11_secret *s, p11_session *session, CK_OBJECT_HANDLE *out)
{
    if (p11.nsecrets >= P11_MAX_SECRETS || p11.next_secret >= 0xFFFFFF) {
        p11_report("the module holds %zu session objects, its limit: destroy some (C_DestroyObject) or close "
                   "sessions",
                   p11.nsecrets);
        p11_secret_free(s);
        return CKR_DEVICE_MEMORY;
    }
    if (p11.nsecrets == p11.secret_cap) {
        size_t cap = p11.secret_cap ? p11.secret_cap * 2 : 16;
        p11_secret **grown = realloc(p11.secrets, cap * sizeof(*grown));
        if (grown == NULL) {
            p11_secret_free(s);
            return CKR_HOST_MEMORY;
        }
        p11.secrets = grown;
        p11.secret_cap = cap;
    }
    s->handle = P11_SECRET_HANDLES | ++p11.next_secret;
    s->session = session->handle;
    s->slot = session->slot;
    p11.secrets[p11.nsecrets++] = s;
    *out = s->handle;
    return CKR_OK;
}

void p11_secrets_close_session(CK_SESSION_HANDLE session)
{
    for (size_t i = 0; i < p11.nsecrets;) {
        if (p11.secrets[i]->session == session) {
            p11_secret_free(p11.secrets[i]);
            p11.secrets[i] = p11.secrets[--p11.nsecrets];
        } else {
            i++;
        }
    }
}

void p11_secrets_free_all(void)
{
    for (size_t i = 0; i < p11.nsecrets; i++)
        p11_secret_free(p11.secrets[i]);
    free(p11.secrets);
    p11.secrets = NULL;
    p11.nsecrets = p11.secret_cap = 0;
    p11.next_secret = 0;
}

CK_RV akv_C_CreateObject(CK_SESSION_HANDLE handle, CK_ATTRIBUTE_PTR templ, CK_ULONG count, CK_OBJECT_HANDLE_PTR out)
{
    CK_RV rv = p11_check_initialized();
    if (rv != CKR_OK)
        return rv;
    if (out == NULL)
        return CKR_ARGUMENTS_BAD;
    p11_secret *s;
    if ((rv = p11_secret_from_template(templ, count, 0, &s)) != CKR_OK)
        return rv;
    p11_session *session = p11_lock_session(handle, &rv);
    if (session == NULL) {
        p11_secret_free(s);
        return rv;
    }
    rv = p11_secret_add(s, session, out);
    pthread_mutex_unlock(&p11.lock);
    return rv;
}

CK_RV akv_C_DestroyObject(CK_SESSION_HANDLE handle, CK_OBJECT_HANDLE object)
{
    CK_RV rv;
    if (p11_lock_session(handle, &rv) == NULL)
        return rv;
    int kind;
    rv = CKR_OBJECT_HANDLE_INVALID;
    for (size_t i = 0; i < p11.nsecrets; i++) {
        if (p11.secrets[i]->handle != object)
            continue;
        if (!(p11.secrets[i]->flags & P11_SECRET_DESTROYABLE)) {
            rv = CKR_ACTION_PROHIBITED;
        } else {
            p11_secret_free(p11.secrets[i]);
            p11.secrets[i] = p11.secrets[--p11.nsecrets];
            rv = CKR_OK;
        }
        break;
    }
    if (rv == CKR_OBJECT_HANDLE_INVALID && p11_object_key(object, &kind) != NULL)
        rv = CKR_ACTION_PROHIBITED; /* the HSM's keys (CKA_DESTROYABLE false): `akv key delete` */
    pthread_mutex_unlock(&p11.lock);
    return rv;
}
