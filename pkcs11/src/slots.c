/*
 * Slots and tokens: one slot per HSM of the agent's config (LIST_VAULTS), in the config's order,
 * each with its token present; the token's label is the HSM name. A token's keys are listed and
 * described when it is first searched and again when the listing is older than P11_REFRESH_MS
 * (the agent caches descriptions, so a refresh costs one LIST to the HSM). A key keeps its object
 * handles for the module's lifetime; a key gone from the HSM keeps its handle but no longer
 * matches a search, and a rotated key gets its new public half under the same handle.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/sha.h>

#include "p11.h"

/* Names the module can put in a managedhsm: URI unchanged (Azure's own rule for both). */
static int plain_name(const char *s, size_t max)
{
    size_t n = strlen(s);
    return n > 0 && n <= max && strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-") == n;
}

CK_RV p11_load_tokens(void)
{
    pthread_mutex_lock(&p11.lock);
    int loaded = p11.tokens_loaded;
    pthread_mutex_unlock(&p11.lock);
    if (loaded)
        return CKR_OK;
    char **names;
    size_t count;
    CK_RV rv = p11_agent_list_vaults(&names, &count);
    if (rv != CKR_OK)
        return rv;
    if (count == 0)
        p11_report("list tokens: the agent's config names no HSM, so there is no token; hint: add the HSM under "
                   "\"vaults\" in the agent's config (docs/configuration.md) and reload the agent (SIGHUP)");
    p11_token *tokens = calloc(count > 0 ? count : 1, sizeof(p11_token));
    if (tokens == NULL) {
        p11_free_names(names, count);
        return CKR_HOST_MEMORY;
    }
    size_t n = 0;
    for (size_t i = 0; i < count; i++) {
        if (n == P11_MAX_TOKENS) {
            p11_report("list tokens: the agent names more than %d HSMs; the module shows the first %d", P11_MAX_TOKENS,
                       P11_MAX_TOKENS);
            break;
        }
        if (!plain_name(names[i], 24)) {
            p11_report("list tokens: the agent named an HSM \"%.40s\" that is not a valid name: skipped", names[i]);
            continue;
        }
        tokens[n++].name = names[i];
        names[i] = NULL;
    }
    p11_free_names(names, count);
    pthread_mutex_lock(&p11.lock);
    if (p11.tokens_loaded) { /* another thread was first */
        pthread_mutex_unlock(&p11.lock);
        for (size_t i = 0; i < n; i++)
            free(tokens[i].name);
        free(tokens);
        return CKR_OK;
    }
    p11.tokens = tokens;
    p11.ntokens = n;
    p11.tokens_loaded = 1;
    pthread_mutex_unlock(&p11.lock);
    return CKR_OK;
}

/* Index of `name` in the token's keys, or nkeys. Caller holds the lock. */
static size_t key_index(const p11_token *t, const char *name)
{
    for (size_t i = 0; i < t->nkeys; i++) {
        if (strcasecmp(t->keys[i]->name, name) == 0)
            return i;
    }
    return t->nkeys;
}

/* Puts a described key in place (same handle for the same name). Caller holds the lock. */
static int merge_key(p11_token *t, p11_key *k, unsigned char *present)
{
    size_t i = key_index(t, k->name);
    if (i < t->nkeys) {
        /* The old description may be in use by an operation (a borrowed pointer): it is kept
         * until C_Finalize, appended after the live keys with no name match (present = 0). */
        if (t->keys[i]->version != NULL && k->version != NULL && strcmp(t->keys[i]->version, k->version) == 0) {
            p11_key_free(k);
            present[i] = 1;
            return 1;
        }
    }
    if (t->nkeys == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 16;
        p11_key **keys = realloc(t->keys, cap * sizeof(*keys));
        if (keys == NULL)
            return 0;
        t->keys = keys;
        t->cap = cap;
    }
    if (i < t->nkeys) {
        t->keys[t->nkeys++] = t->keys[i]; /* retired: handle t->nkeys-1 never matches a search */
        t->keys[i] = k;
    } else {
        t->keys[t->nkeys++] = k;
    }
    present[i] = 1;
    return 1;
}

CK_RV p11_refresh_token(CK_SLOT_ID slot, int force)
{
    pthread_mutex_lock(&p11.lock);
    if (slot >= p11.ntokens) {
        pthread_mutex_unlock(&p11.lock);
        return CKR_SLOT_ID_INVALID;
    }
    p11_token *t = &p11.tokens[slot];
    long long now = p11_now_ms();
    int fresh = t->loaded_at != 0 && now - t->loaded_at < P11_REFRESH_MS;
    char *hsm = strdup(t->name);
    pthread_mutex_unlock(&p11.lock);
    if (hsm == NULL)
        return CKR_HOST_MEMORY;
    if (fresh && !force) {
        free(hsm);
        return CKR_OK;
    }

    char **names;
    size_t count;
    CK_RV rv = p11_agent_list_keys(hsm, &names, &count);
    if (rv != CKR_OK) {
        free(hsm);
        return rv;
    }
    p11_key **described = calloc(count > 0 ? count : 1, sizeof(p11_key *));
    if (described == NULL) {
        p11_free_names(names, count);
        free(hsm);
        return CKR_HOST_MEMORY;
    }
    for (size_t i = 0; i < count; i++) {
        /* One key that cannot be described (disabled since the listing, a bad answer) is left
         * out and reported; the others are still shown. */
        if (plain_name(names[i], 127))
            p11_agent_describe(hsm, names[i], NULL, &described[i]);
    }
    p11_free_names(names, count);
    free(hsm);

    pthread_mutex_lock(&p11.lock);
    t = &p11.tokens[slot];
    size_t room = t->nkeys + count * 2 + 1; /* merges append at most two entries per key */
    unsigned char *present = calloc(room, 1);
    rv = present != NULL ? CKR_OK : CKR_HOST_MEMORY;
    for (size_t i = 0; i < count; i++) {
        if (described[i] == NULL)
            continue;
        if (rv != CKR_OK || !merge_key(t, described[i], present)) {
            p11_key_free(described[i]);
            rv = CKR_HOST_MEMORY;
        }
    }
    for (size_t i = 0; rv == CKR_OK && i < t->nkeys; i++) {
        if (t->keys[i]->pinned)
            present[i] = 1; /* named by version, so never in a listing and never rotated */
    }
    if (rv == CKR_OK) {
        free(t->present);
        t->present = present;
        t->loaded_at = p11_now_ms();
    } else {
        free(present);
    }
    pthread_mutex_unlock(&p11.lock);
    free(described);
    return rv;
}

/*
 * Key pinning by version: a search whose CKA_LABEL is "KEY@VERSION" (pkcs11:object=KEY@VERSION)
 * describes that version and adds it to the token as objects labelled "KEY@VERSION", whose every
 * operation names the version. They stay for the module's lifetime and match later searches
 * (by CKA_ID too), but never show in a listing that does not name them: an HSM key may have many
 * versions. A label without "@" is the current version, as before.
 */
CK_RV p11_pin_version(CK_SLOT_ID slot, const CK_ATTRIBUTE *templ, CK_ULONG count)
{
    const CK_ATTRIBUTE *label = NULL;
    for (CK_ULONG i = 0; i < count; i++) {
        if (templ[i].type == CKA_LABEL)
            label = &templ[i];
    }
    if (label == NULL || label->pValue == NULL || label->ulValueLen == 0 || label->ulValueLen > 200 ||
        memchr(label->pValue, '@', label->ulValueLen) == NULL)
        return CKR_OK;
    char text[256], *version;
    memcpy(text, label->pValue, label->ulValueLen);
    text[label->ulValueLen] = '\0';
    version = strchr(text, '@');
    *version++ = '\0';
    size_t vlen = strlen(version);
    if (!plain_name(text, 127) || vlen == 0 || vlen > 64 || strspn(version, "0123456789abcdefABCDEF") != vlen) {
        version[-1] = '@';
        p11_report("find objects: label \"%.200s\" is not KEY@VERSION (a key name, \"@\", the version's hex id as "
                   "`akv key show` prints it): no object matches",
                   text);
        return CKR_OK;
    }
    pthread_mutex_lock(&p11.lock);
    p11_token *t = &p11.tokens[slot];
    char hsm[64];
    snprintf(hsm, sizeof(hsm), "%s", t->name);
    version[-1] = '@';
    int known = key_index(t, text) < t->nkeys;
    version[-1] = '\0';
    pthread_mutex_unlock(&p11.lock);
    if (known)
        return CKR_OK;

    p11_key *k = NULL;
    CK_RV rv = p11_agent_describe(hsm, text, version, &k);
    if (rv != CKR_OK)
        return rv == CKR_KEY_HANDLE_INVALID ? CKR_OK : rv; /* no such version: nothing matches (reported) */
    if (k->version == NULL || strcasecmp(k->version, version) != 0) {
        p11_report("find objects: the agent described version %s of %s when asked for %s: not used",
                   k->version != NULL ? k->version : "(none)", text, version);
        p11_key_free(k);
        return CKR_DEVICE_ERROR;
    }
    version[-1] = '@';
    char *pinned_name = strdup(text);
    if (pinned_name == NULL) {
        p11_key_free(k);
        return CKR_HOST_MEMORY;
    }
    free(k->name);
    k->name = pinned_name;
    k->pinned = 1;

    pthread_mutex_lock(&p11.lock);
    t = &p11.tokens[slot];
    rv = CKR_OK;
    if (key_index(t, k->name) < t->nkeys) { /* another thread was first */
        p11_key_free(k);
    } else {
        size_t cap = t->nkeys == t->cap ? (t->cap ? t->cap * 2 : 16) : t->cap;
        p11_key **keys = cap != t->cap ? realloc(t->keys, cap * sizeof(*keys)) : t->keys;
        unsigned char *present = keys != NULL ? realloc(t->present, t->nkeys + 1) : NULL;
        if (keys != NULL) {
            t->keys = keys;
            t->cap = cap;
        }
        if (present != NULL) {
            t->present = present;
            t->present[t->nkeys] = 1;
            t->keys[t->nkeys++] = k;
        } else {
            p11_key_free(k);
            rv = CKR_HOST_MEMORY;
        }
    }
    pthread_mutex_unlock(&p11.lock);
    return rv;
}

CK_RV akv_C_GetSlotList(CK_BBOOL present, CK_SLOT_ID_PTR list, CK_ULONG_PTR count)
{
    (void)present; /* every slot has its token */
    CK_RV rv = p11_check_initialized();
    if (rv != CKR_OK)
        return rv;
    if (count == NULL)
        return CKR_ARGUMENTS_BAD;
    if ((rv = p11_load_tokens()) != CKR_OK)
        return rv;
    pthread_mutex_lock(&p11.lock);
    size_t n = p11.ntokens;
    pthread_mutex_unlock(&p11.lock);
    if (list != NULL) {
        if (*count < n) {
            *count = n;
            return CKR_BUFFER_TOO_SMALL;
        }
        for (size_t i = 0; i < n; i++)
            list[i] = i;
    }
    *count = n;
    return CKR_OK;
}

/* The token name of a slot, copied; 0 when the slot does not exist. */
static int slot_name(CK_SLOT_ID slot, char *out, size_t size)
{
    pthread_mutex_lock(&p11.lock);
    int ok = p11.tokens_loaded && slot < p11.ntokens;
    if (ok)
        snprintf(out, size, "%s", p11.tokens[slot].name);
    pthread_mutex_unlock(&p11.lock);
    return ok;
}

/* The guard of the slot functions: initialised, the output argument given, the slot exists
 * (its token's name in `name`). */
static CK_RV slot_guard(CK_SLOT_ID slot, const void *out, char name[64])
{
    CK_RV rv = p11_check_initialized();
    if (rv != CKR_OK)
        return rv;
    if (out == NULL)
        return CKR_ARGUMENTS_BAD;
    if (p11_load_tokens() != CKR_OK || !slot_name(slot, name, 64))
        return CKR_SLOT_ID_INVALID;
    return CKR_OK;
}

CK_RV akv_C_GetSlotInfo(CK_SLOT_ID slot, CK_SLOT_INFO_PTR info)
{
    char name[64];
    CK_RV rv = slot_guard(slot, info, name);
    if (rv != CKR_OK)
        return rv;
    char desc[128];
    snprintf(desc, sizeof(desc), "akv agent: Managed HSM %s", name);
    memset(info, 0, sizeof(*info));
    p11_pad(info->slotDescription, sizeof(info->slotDescription), desc);
    p11_pad(info->manufacturerID, sizeof(info->manufacturerID), "akv");
    info->flags = CKF_TOKEN_PRESENT;
    return CKR_OK;
}

CK_RV akv_C_GetTokenInfo(CK_SLOT_ID slot, CK_TOKEN_INFO_PTR info)
{
    char name[64];
    CK_RV rv = slot_guard(slot, info, name);
    if (rv != CKR_OK)
        return rv;
    memset(info, 0, sizeof(*info));
    p11_pad(info->label, sizeof(info->label), name);
    p11_pad(info->manufacturerID, sizeof(info->manufacturerID), "akv");
    p11_pad(info->model, sizeof(info->model), "Managed HSM");
    /* A serial number that stays the same for the same HSM name (pkcs11: URIs may pin it). */
    unsigned char digest[20];
    char serial[17];
    SHA1((const unsigned char *)name, strlen(name), digest);
    for (int i = 0; i < 8; i++)
        snprintf(serial + 2 * i, 3, "%02x", digest[i]);
    p11_pad(info->serialNumber, sizeof(info->serialNumber), serial);
    /* No login: the agent's socket permissions and peer check are the access control. */
    info->flags = CKF_TOKEN_INITIALIZED;
    info->ulMaxSessionCount = CK_EFFECTIVELY_INFINITE;
    info->ulSessionCount = CK_UNAVAILABLE_INFORMATION;
    info->ulMaxRwSessionCount = CK_EFFECTIVELY_INFINITE;
    info->ulRwSessionCount = CK_UNAVAILABLE_INFORMATION;
    info->ulMaxPinLen = 0;
    info->ulMinPinLen = 0;
    info->ulTotalPublicMemory = CK_UNAVAILABLE_INFORMATION;
    info->ulFreePublicMemory = CK_UNAVAILABLE_INFORMATION;
    info->ulTotalPrivateMemory = CK_UNAVAILABLE_INFORMATION;
    info->ulFreePrivateMemory = CK_UNAVAILABLE_INFORMATION;
    info->hardwareVersion.major = 1;
    info->firmwareVersion.major = 1;
    return CKR_OK;
}

CK_RV akv_C_GetMechanismList(CK_SLOT_ID slot, CK_MECHANISM_TYPE_PTR list, CK_ULONG_PTR count)
{
    char name[64];
    CK_RV rv = slot_guard(slot, count, name);
    if (rv != CKR_OK)
        return rv;
    size_t n;
    const p11_mechanism_info *mechs = p11_mechanisms(&n);
    if (list != NULL) {
        if (*count < n) {
            *count = n;
            return CKR_BUFFER_TOO_SMALL;
        }
        for (size_t i = 0; i < n; i++)
            list[i] = mechs[i].type;
    }
    *count = n;
    return CKR_OK;
}

CK_RV akv_C_GetMechanismInfo(CK_SLOT_ID slot, CK_MECHANISM_TYPE type, CK_MECHANISM_INFO_PTR info)
{
    char name[64];
    CK_RV rv = slot_guard(slot, info, name);
    if (rv != CKR_OK)
        return rv;
    size_t n;
    const p11_mechanism_info *mechs = p11_mechanisms(&n);
    for (size_t i = 0; i < n; i++) {
        if (mechs[i].type == type) {
            info->flags = mechs[i].flags;
            /* Key sizes the HSM has: RSA 2048-4096 bits, EC 256-521 bits; digests have none. */
            info->ulMinKeySize = 0;
            info->ulMaxKeySize = 0;
            if (mechs[i].key_type == 0)
                return CKR_OK;
            info->ulMinKeySize = mechs[i].key_type == AKV_KEY_TYPE_RSA  ? 2048
                                 : mechs[i].key_type == AKV_KEY_TYPE_EC ? 256
                                                                        : 16;
            info->ulMaxKeySize = mechs[i].key_type == AKV_KEY_TYPE_RSA  ? 4096
                                 : mechs[i].key_type == AKV_KEY_TYPE_EC ? 521
                                                                        : 32;
            return CKR_OK;
        }
    }
    return CKR_MECHANISM_INVALID;
}

CK_RV akv_C_WaitForSlotEvent(CK_FLAGS flags, CK_SLOT_ID_PTR slot, CK_VOID_PTR reserved)
{
    (void)slot;
    (void)reserved;
    CK_RV rv = p11_check_initialized();
    if (rv != CKR_OK)
        return rv;
    /* Tokens never come and go while the module runs. */
    return (flags & CKF_DONT_BLOCK) ? CKR_NO_EVENT : CKR_FUNCTION_NOT_SUPPORTED;
}
