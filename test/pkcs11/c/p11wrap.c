/*
 * p11wrap: the smallest PKCS#11 application that wraps and unwraps keys with C_WrapKey /
 * C_UnwrapKey (wrap.test.ts). pkcs11-tool 0.23 cannot: its --unwrap asks for a token object and
 * its --wrap finds the key to wrap on the token, while an application's own key lives in a
 * session object for the length of the process. Keys are given and printed in hex.
 *
 *   p11wrap MODULE TOKEN wrap   KEK MECH KEYHEX        C_CreateObject + C_WrapKey: prints the wrapped key
 *   p11wrap MODULE TOKEN unwrap KEK MECH WRAPPEDHEX    C_UnwrapKey (not sensitive): prints the key
 *   p11wrap MODULE TOKEN rewrap KEK KEK2 WRAPPEDHEX    unwrap under KEK as a sensitive key (CKA_VALUE
 *                                                      unreadable), wrap it under KEK2: prints that
 * KEK is an object label; MECH aes-kw (CKM_AES_KEY_WRAP with the secret key), rsa-pkcs,
 * rsa-oaep, rsa-oaep-256 (wrap: the public key; unwrap: the private key). On a failure it prints
 * "FUNCTION: CKR 0xNNN" on stderr and exits 1.
 */
#include <dlfcn.h>
#include <p11-kit/pkcs11.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static CK_FUNCTION_LIST *p11;

static void fail(const char *what, CK_RV rv)
{
    fprintf(stderr, "%s: CKR 0x%lx\n", what, (unsigned long)rv);
    exit(1);
}

static void check(const char *what, CK_RV rv)
{
    if (rv != CKR_OK)
        fail(what, rv);
}

static size_t from_hex(const char *hex, unsigned char *out, size_t size)
{
    size_t n = strlen(hex) / 2;
    if (n > size || strlen(hex) % 2 != 0) {
        fprintf(stderr, "bad hex\n");
        exit(2);
    }
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        if (sscanf(hex + 2 * i, "%2x", &v) != 1) {
            fprintf(stderr, "bad hex\n");
            exit(2);
        }
        out[i] = (unsigned char)v;
    }
    return n;
}

static void print_hex(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        printf("%02x", p[i]);
    printf("\n");
}

static CK_SLOT_ID slot_of(const char *token)
{
    CK_SLOT_ID slots[16];
    CK_ULONG n = 16;
    check("C_GetSlotList", p11->C_GetSlotList(CK_TRUE, slots, &n));
    for (CK_ULONG i = 0; i < n; i++) {
        CK_TOKEN_INFO ti;
        check("C_GetTokenInfo", p11->C_GetTokenInfo(slots[i], &ti));
        size_t len = strlen(token);
        if (len <= sizeof(ti.label) && memcmp(ti.label, token, len) == 0 &&
            (len == sizeof(ti.label) || ti.label[len] == ' '))
            return slots[i];
    }
    fprintf(stderr, "no token %s\n", token);
    exit(1);
}

static CK_OBJECT_HANDLE find(CK_SESSION_HANDLE s, CK_OBJECT_CLASS cls, const char *label)
{
    CK_ATTRIBUTE t[] = {{CKA_CLASS, &cls, sizeof(cls)}, {CKA_LABEL, (void *)label, strlen(label)}};
    CK_OBJECT_HANDLE h = 0;
    CK_ULONG n = 0;
    check("C_FindObjectsInit", p11->C_FindObjectsInit(s, t, 2));
    check("C_FindObjects", p11->C_FindObjects(s, &h, 1, &n));
    check("C_FindObjectsFinal", p11->C_FindObjectsFinal(s));
    if (n == 0) {
        fprintf(stderr, "no object %s of class %lu\n", label, (unsigned long)cls);
        exit(1);
    }
    return h;
}

static CK_RSA_PKCS_OAEP_PARAMS oaep_sha1 = {CKM_SHA_1, CKG_MGF1_SHA1, CKZ_DATA_SPECIFIED, NULL, 0};
static CK_RSA_PKCS_OAEP_PARAMS oaep_sha256 = {CKM_SHA256, CKG_MGF1_SHA256, CKZ_DATA_SPECIFIED, NULL, 0};

/* The mechanism and the class of the key it takes for wrapping (unwrapping: the private key). */
static CK_MECHANISM mechanism(const char *name, int unwrap, CK_OBJECT_CLASS *cls)
{
    CK_MECHANISM m = {CKM_AES_KEY_WRAP, NULL, 0};
    *cls = unwrap ? CKO_PRIVATE_KEY : CKO_PUBLIC_KEY;
    if (strcmp(name, "aes-kw") == 0) {
        *cls = CKO_SECRET_KEY;
    } else if (strcmp(name, "rsa-pkcs") == 0) {
        m.mechanism = CKM_RSA_PKCS;
    } else if (strcmp(name, "rsa-oaep") == 0 || strcmp(name, "rsa-oaep-256") == 0) {
        m.mechanism = CKM_RSA_PKCS_OAEP;
        m.pParameter = strcmp(name, "rsa-oaep") == 0 ? &oaep_sha1 : &oaep_sha256;
        m.ulParameterLen = sizeof(CK_RSA_PKCS_OAEP_PARAMS);
    } else {
        fprintf(stderr, "unknown mechanism %s\n", name);
        exit(2);
    }
    return m;
}

static CK_OBJECT_HANDLE unwrap(CK_SESSION_HANDLE s, CK_MECHANISM *m, CK_OBJECT_HANDLE kek, const unsigned char *in,
                               size_t len, CK_BBOOL sensitive)
{
    CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
    CK_KEY_TYPE type = CKK_GENERIC_SECRET;
    CK_BBOOL no = CK_FALSE, yes = CK_TRUE;
    CK_ATTRIBUTE t[] = {{CKA_CLASS, &cls, sizeof(cls)},       {CKA_KEY_TYPE, &type, sizeof(type)},
                        {CKA_TOKEN, &no, sizeof(no)},         {CKA_SENSITIVE, &sensitive, sizeof(sensitive)},
                        {CKA_EXTRACTABLE, &yes, sizeof(yes)}, {CKA_LABEL, "unwrapped", 9}};
    CK_OBJECT_HANDLE h = 0;
    check("C_UnwrapKey", p11->C_UnwrapKey(s, m, kek, (CK_BYTE_PTR)in, len, t, 6, &h));
    return h;
}

static void wrap_and_print(CK_SESSION_HANDLE s, CK_MECHANISM *m, CK_OBJECT_HANDLE kek, CK_OBJECT_HANDLE key)
{
    CK_ULONG len = 0;
    check("C_WrapKey (size)", p11->C_WrapKey(s, m, kek, key, NULL, &len));
    unsigned char *out = malloc(len);
    if (out == NULL)
        exit(1);
    check("C_WrapKey", p11->C_WrapKey(s, m, kek, key, out, &len));
    print_hex(out, len);
    free(out);
}

int main(int argc, char **argv)
{
    if (argc != 7) {
        fprintf(stderr, "usage: p11wrap MODULE TOKEN wrap|unwrap|rewrap KEK MECH|KEK2 HEX\n");
        return 2;
    }
    void *module = dlopen(argv[1], RTLD_NOW);
    CK_RV (*get)
    (CK_FUNCTION_LIST_PTR_PTR) =
        module != NULL ? (CK_RV(*)(CK_FUNCTION_LIST_PTR_PTR))dlsym(module, "C_GetFunctionList") : NULL;
    if (get == NULL || get(&p11) != CKR_OK) {
        fprintf(stderr, "cannot load %s\n", argv[1]);
        return 1;
    }
    check("C_Initialize", p11->C_Initialize(NULL));
    CK_SESSION_HANDLE s;
    check("C_OpenSession", p11->C_OpenSession(slot_of(argv[2]), CKF_SERIAL_SESSION, NULL, NULL, &s));
    unsigned char in[1024];
    size_t len = from_hex(argv[6], in, sizeof(in));
    const char *cmd = argv[3];
    CK_OBJECT_CLASS cls;
    if (strcmp(cmd, "wrap") == 0) {
        CK_MECHANISM m = mechanism(argv[5], 0, &cls);
        CK_OBJECT_CLASS secret = CKO_SECRET_KEY;
        CK_KEY_TYPE type = CKK_GENERIC_SECRET;
        CK_BBOOL no = CK_FALSE;
        CK_ATTRIBUTE t[] = {{CKA_CLASS, &secret, sizeof(secret)},
                            {CKA_KEY_TYPE, &type, sizeof(type)},
                            {CKA_TOKEN, &no, sizeof(no)},
                            {CKA_VALUE, in, len}};
        CK_OBJECT_HANDLE key;
        check("C_CreateObject", p11->C_CreateObject(s, t, 4, &key));
        wrap_and_print(s, &m, find(s, cls, argv[4]), key);
    } else if (strcmp(cmd, "unwrap") == 0) {
        CK_MECHANISM m = mechanism(argv[5], 1, &cls);
        CK_OBJECT_HANDLE key = unwrap(s, &m, find(s, cls, argv[4]), in, len, CK_FALSE);
        unsigned char value[1024];
        CK_ATTRIBUTE a = {CKA_VALUE, value, sizeof(value)};
        check("C_GetAttributeValue", p11->C_GetAttributeValue(s, key, &a, 1));
        print_hex(value, a.ulValueLen);
    } else if (strcmp(cmd, "rewrap") == 0) {
        CK_MECHANISM m = mechanism("aes-kw", 1, &cls);
        CK_OBJECT_HANDLE key = unwrap(s, &m, find(s, cls, argv[4]), in, len, CK_TRUE);
        unsigned char value[1024];
        CK_ATTRIBUTE a = {CKA_VALUE, value, sizeof(value)};
        CK_RV rv = p11->C_GetAttributeValue(s, key, &a, 1);
        if (rv != CKR_ATTRIBUTE_SENSITIVE)
            fail("C_GetAttributeValue of a sensitive key", rv);
        wrap_and_print(s, &m, find(s, cls, argv[5]), key);
    } else {
        fprintf(stderr, "unknown command %s\n", cmd);
        return 2;
    }
    check("C_CloseSession", p11->C_CloseSession(s));
    check("C_Finalize", p11->C_Finalize(NULL));
    return 0;
}
