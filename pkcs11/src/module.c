/*
 * The module itself: C_Initialize / C_Finalize / C_GetInfo, the function table, and the only
 * exported symbols (C_GetFunctionList, C_GetInterfaceList, C_GetInterface). Rules of the module:
 * - thread-safe (CKF_OS_LOCKING_OK): one pthread mutex (p11.lock) guards all state and is never
 *   held across a round trip to the agent;
 * - fork-safe: a child of the process that called C_Initialize gets CKR_CRYPTOKI_NOT_INITIALIZED
 *   until it calls C_Initialize itself (PKCS#11 2.40 section 6.7.7); the agent connections are
 *   never shared with it (agent_conn.c);
 * - whatever the HSM cannot do is refused with a CKR, never silently done another way.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "p11.h"

#ifndef AKV_VERSION_MAJOR
#define AKV_VERSION_MAJOR 0
#define AKV_VERSION_MINOR 1
#endif

p11_module p11 = {.lock = PTHREAD_MUTEX_INITIALIZER};

long long p11_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void p11_pad(CK_UTF8CHAR *dst, size_t size, const char *src)
{
    size_t n = strlen(src);
    if (n > size)
        n = size;
    memset(dst, ' ', size);
    memcpy(dst, src, n);
}

CK_RV p11_check_initialized(void)
{
    return p11.initialized && p11.pid == getpid() ? CKR_OK : CKR_CRYPTOKI_NOT_INITIALIZED;
}

static void free_tokens(void)
{
    for (size_t t = 0; t < p11.ntokens; t++) {
        for (size_t k = 0; k < p11.tokens[t].nkeys; k++)
            p11_key_free(p11.tokens[t].keys[k]);
        free(p11.tokens[t].keys);
        free(p11.tokens[t].present);
        free(p11.tokens[t].name);
    }
    free(p11.tokens);
    p11.tokens = NULL;
    p11.ntokens = 0;
    p11.tokens_loaded = 0;
}

static CK_RV akv_C_Initialize(CK_VOID_PTR init_args)
{
    if (init_args != NULL) {
        CK_C_INITIALIZE_ARGS *args = init_args;
        if (args->pReserved != NULL)
            return CKR_ARGUMENTS_BAD;
        /* Mutex callbacks are all given or none (2.40 section 5.4). We lock with pthreads either
         * way, which every caller that passes CKF_OS_LOCKING_OK or no callbacks accepts. */
        int given = (args->CreateMutex != NULL) + (args->DestroyMutex != NULL) + (args->LockMutex != NULL) +
                    (args->UnlockMutex != NULL);
        if (given != 0 && given != 4)
            return CKR_ARGUMENTS_BAD;
    }
    pid_t pid = getpid();
    if (p11.initialized && p11.pid != pid) {
        /* A forked child: the parent's state is not ours. Its mutex may have been held by another
         * thread at fork time, so it is made anew; the parent's memory is left alone. */
        memset(&p11, 0, sizeof(p11));
        pthread_mutex_init(&p11.lock, NULL);
    }
    pthread_mutex_lock(&p11.lock);
    if (p11.initialized) {
        pthread_mutex_unlock(&p11.lock);
        return CKR_CRYPTOKI_ALREADY_INITIALIZED;
    }
    char err[512];
    int explicit_socket = 0;
    AKV_AGENT *agent = p11_agent_from_environment(&explicit_socket, err, sizeof(err));
    if (agent == NULL) {
        pthread_mutex_unlock(&p11.lock);
        p11_report("%s", err);
        return CKR_GENERAL_ERROR;
    }
    p11.agent = agent;
    p11.explicit_socket = explicit_socket;
    p11.pid = pid;
    p11.next_session = 1;
    p11.initialized = 1;
    pthread_mutex_unlock(&p11.lock);
    return CKR_OK;
}

static CK_RV akv_C_Finalize(CK_VOID_PTR reserved)
{
    if (reserved != NULL)
        return CKR_ARGUMENTS_BAD;
    pthread_mutex_lock(&p11.lock);
    if (!p11.initialized || p11.pid != getpid()) {
        pthread_mutex_unlock(&p11.lock);
        return CKR_CRYPTOKI_NOT_INITIALIZED;
    }
    p11_sessions_free_all();
    p11_secrets_free_all();
    free_tokens();
    akv_agent_free(p11.agent);
    p11.agent = NULL;
    p11.initialized = 0;
    p11.logged_in = 0;
    pthread_mutex_unlock(&p11.lock);
    return CKR_OK;
}

static CK_RV akv_C_GetInfo(CK_INFO_PTR info)
{
    CK_RV rv = p11_check_initialized();
    if (rv != CKR_OK)
        return rv;
    if (info == NULL)
        return CKR_ARGUMENTS_BAD;
    memset(info, 0, sizeof(*info));
    info->cryptokiVersion.major = 2;
    info->cryptokiVersion.minor = 40;
    p11_pad(info->manufacturerID, sizeof(info->manufacturerID), "akv");
    p11_pad(info->libraryDescription, sizeof(info->libraryDescription), "akv: Azure Managed HSM keys");
    info->libraryVersion.major = AKV_VERSION_MAJOR;
    info->libraryVersion.minor = AKV_VERSION_MINOR;
    return CKR_OK;
}

/* Functions this token does not offer: no token initialisation, PINs, key generation, state
 * saving, changing or copying objects (the keys are the HSM's; `akv key` manages them). */
static CK_RV not_supported(void)
{
    CK_RV rv = p11_check_initialized();
    return rv != CKR_OK ? rv : CKR_FUNCTION_NOT_SUPPORTED;
}
#define UNSUPPORTED(name, params)                                                                                      \
    static CK_RV akv_##name params                                                                                     \
    {                                                                                                                  \
        return not_supported();                                                                                        \
    }
#define UNUSED_ARGS __attribute__((unused))
UNSUPPORTED(C_InitToken, (CK_SLOT_ID a UNUSED_ARGS, CK_UTF8CHAR_PTR b UNUSED_ARGS, CK_ULONG c UNUSED_ARGS,
                          CK_UTF8CHAR_PTR d UNUSED_ARGS))
UNSUPPORTED(C_InitPIN, (CK_SESSION_HANDLE a UNUSED_ARGS, CK_UTF8CHAR_PTR b UNUSED_ARGS, CK_ULONG c UNUSED_ARGS))
UNSUPPORTED(C_SetPIN, (CK_SESSION_HANDLE a UNUSED_ARGS, CK_UTF8CHAR_PTR b UNUSED_ARGS, CK_ULONG c UNUSED_ARGS,
                       CK_UTF8CHAR_PTR d UNUSED_ARGS, CK_ULONG e UNUSED_ARGS))
UNSUPPORTED(C_GetOperationState,
            (CK_SESSION_HANDLE a UNUSED_ARGS, CK_BYTE_PTR b UNUSED_ARGS, CK_ULONG_PTR c UNUSED_ARGS))
UNSUPPORTED(C_SetOperationState, (CK_SESSION_HANDLE a UNUSED_ARGS, CK_BYTE_PTR b UNUSED_ARGS, CK_ULONG c UNUSED_ARGS,
                                  CK_OBJECT_HANDLE d UNUSED_ARGS, CK_OBJECT_HANDLE e UNUSED_ARGS))
UNSUPPORTED(C_CopyObject, (CK_SESSION_HANDLE a UNUSED_ARGS, CK_OBJECT_HANDLE b UNUSED_ARGS,
                           CK_ATTRIBUTE_PTR c UNUSED_ARGS, CK_ULONG d UNUSED_ARGS, CK_OBJECT_HANDLE_PTR e UNUSED_ARGS))
UNSUPPORTED(C_SetAttributeValue, (CK_SESSION_HANDLE a UNUSED_ARGS, CK_OBJECT_HANDLE b UNUSED_ARGS,
                                  CK_ATTRIBUTE_PTR c UNUSED_ARGS, CK_ULONG d UNUSED_ARGS))
UNSUPPORTED(C_EncryptInit,
            (CK_SESSION_HANDLE a UNUSED_ARGS, CK_MECHANISM_PTR b UNUSED_ARGS, CK_OBJECT_HANDLE c UNUSED_ARGS))
UNSUPPORTED(C_Encrypt, (CK_SESSION_HANDLE a UNUSED_ARGS, CK_BYTE_PTR b UNUSED_ARGS, CK_ULONG c UNUSED_ARGS,
                        CK_BYTE_PTR d UNUSED_ARGS, CK_ULONG_PTR e UNUSED_ARGS))
UNSUPPORTED(C_EncryptUpdate, (CK_SESSION_HANDLE a UNUSED_ARGS, CK_BYTE_PTR b UNUSED_ARGS, CK_ULONG c UNUSED_ARGS,
                              CK_BYTE_PTR d UNUSED_ARGS, CK_ULONG_PTR e UNUSED_ARGS))
UNSUPPORTED(C_EncryptFinal, (CK_SESSION_HANDLE a UNUSED_ARGS, CK_BYTE_PTR b UNUSED_ARGS, CK_ULONG_PTR c UNUSED_ARGS))
UNSUPPORTED(C_DecryptUpdate, (CK_SESSION_HANDLE a UNUSED_ARGS, CK_BYTE_PTR b UNUSED_ARGS, CK_ULONG c UNUSED_ARGS,
                              CK_BYTE_PTR d UNUSED_ARGS, CK_ULONG_PTR e UNUSED_ARGS))
UNSUPPORTED(C_DecryptFinal, (CK_SESSION_HANDLE a UNUSED_ARGS, CK_BYTE_PTR b UNUSED_ARGS, CK_ULONG_PTR c UNUSED_ARGS))
UNSUPPORTED(C_DigestKey, (CK_SESSION_HANDLE a UNUSED_ARGS, CK_OBJECT_HANDLE b UNUSED_ARGS))
UNSUPPORTED(C_SignRecoverInit,
            (CK_SESSION_HANDLE a UNUSED_ARGS, CK_MECHANISM_PTR b UNUSED_ARGS, CK_OBJECT_HANDLE c UNUSED_ARGS))
UNSUPPORTED(C_SignRecover, (CK_SESSION_HANDLE a UNUSED_ARGS, CK_BYTE_PTR b UNUSED_ARGS, CK_ULONG c UNUSED_ARGS,
                            CK_BYTE_PTR d UNUSED_ARGS, CK_ULONG_PTR e UNUSED_ARGS))
UNSUPPORTED(C_VerifyRecoverInit,
            (CK_SESSION_HANDLE a UNUSED_ARGS, CK_MECHANISM_PTR b UNUSED_ARGS, CK_OBJECT_HANDLE c UNUSED_ARGS))
UNSUPPORTED(C_VerifyRecover, (CK_SESSION_HANDLE a UNUSED_ARGS, CK_BYTE_PTR b UNUSED_ARGS, CK_ULONG c UNUSED_ARGS,
                              CK_BYTE_PTR d UNUSED_ARGS, CK_ULONG_PTR e UNUSED_ARGS))
UNSUPPORTED(C_DigestEncryptUpdate, (CK_SESSION_HANDLE a UNUSED_ARGS, CK_BYTE_PTR b UNUSED_ARGS, CK_ULONG c UNUSED_ARGS,
                                    CK_BYTE_PTR d UNUSED_ARGS, CK_ULONG_PTR e UNUSED_ARGS))
UNSUPPORTED(C_DecryptDigestUpdate, (CK_SESSION_HANDLE a UNUSED_ARGS, CK_BYTE_PTR b UNUSED_ARGS, CK_ULONG c UNUSED_ARGS,
                                    CK_BYTE_PTR d UNUSED_ARGS, CK_ULONG_PTR e UNUSED_ARGS))
UNSUPPORTED(C_SignEncryptUpdate, (CK_SESSION_HANDLE a UNUSED_ARGS, CK_BYTE_PTR b UNUSED_ARGS, CK_ULONG c UNUSED_ARGS,
                                  CK_BYTE_PTR d UNUSED_ARGS, CK_ULONG_PTR e UNUSED_ARGS))
UNSUPPORTED(C_DecryptVerifyUpdate, (CK_SESSION_HANDLE a UNUSED_ARGS, CK_BYTE_PTR b UNUSED_ARGS, CK_ULONG c UNUSED_ARGS,
                                    CK_BYTE_PTR d UNUSED_ARGS, CK_ULONG_PTR e UNUSED_ARGS))
UNSUPPORTED(C_GenerateKey, (CK_SESSION_HANDLE a UNUSED_ARGS, CK_MECHANISM_PTR b UNUSED_ARGS,
                            CK_ATTRIBUTE_PTR c UNUSED_ARGS, CK_ULONG d UNUSED_ARGS, CK_OBJECT_HANDLE_PTR e UNUSED_ARGS))
UNSUPPORTED(C_GenerateKeyPair,
            (CK_SESSION_HANDLE a UNUSED_ARGS, CK_MECHANISM_PTR b UNUSED_ARGS, CK_ATTRIBUTE_PTR c UNUSED_ARGS,
             CK_ULONG d UNUSED_ARGS, CK_ATTRIBUTE_PTR e UNUSED_ARGS, CK_ULONG f UNUSED_ARGS,
             CK_OBJECT_HANDLE_PTR g UNUSED_ARGS, CK_OBJECT_HANDLE_PTR h UNUSED_ARGS))
UNSUPPORTED(C_DeriveKey,
            (CK_SESSION_HANDLE a UNUSED_ARGS, CK_MECHANISM_PTR b UNUSED_ARGS, CK_OBJECT_HANDLE c UNUSED_ARGS,
             CK_ATTRIBUTE_PTR d UNUSED_ARGS, CK_ULONG e UNUSED_ARGS, CK_OBJECT_HANDLE_PTR f UNUSED_ARGS))
UNSUPPORTED(C_GetFunctionStatus, (CK_SESSION_HANDLE a UNUSED_ARGS))
UNSUPPORTED(C_CancelFunction, (CK_SESSION_HANDLE a UNUSED_ARGS))

/* The token has no random number generator of its own (CKF_RNG is off): the agent protocol has
 * no RNG request, and a local one would pretend to be the HSM's. */
static CK_RV akv_C_SeedRandom(CK_SESSION_HANDLE a UNUSED_ARGS, CK_BYTE_PTR b UNUSED_ARGS, CK_ULONG c UNUSED_ARGS)
{
    CK_RV rv = p11_check_initialized();
    return rv != CKR_OK ? rv : CKR_RANDOM_NO_RNG;
}

static CK_RV akv_C_GenerateRandom(CK_SESSION_HANDLE a UNUSED_ARGS, CK_BYTE_PTR b UNUSED_ARGS, CK_ULONG c UNUSED_ARGS)
{
    CK_RV rv = p11_check_initialized();
    return rv != CKR_OK ? rv : CKR_RANDOM_NO_RNG;
}

static CK_RV akv_C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR list);

static CK_FUNCTION_LIST function_list = {
    .version = {2, 40},
    .C_Initialize = akv_C_Initialize,
    .C_Finalize = akv_C_Finalize,
    .C_GetInfo = akv_C_GetInfo,
    .C_GetFunctionList = akv_C_GetFunctionList,
    .C_GetSlotList = akv_C_GetSlotList,
    .C_GetSlotInfo = akv_C_GetSlotInfo,
    .C_GetTokenInfo = akv_C_GetTokenInfo,
    .C_GetMechanismList = akv_C_GetMechanismList,
    .C_GetMechanismInfo = akv_C_GetMechanismInfo,
    .C_InitToken = akv_C_InitToken,
    .C_InitPIN = akv_C_InitPIN,
    .C_SetPIN = akv_C_SetPIN,
    .C_OpenSession = akv_C_OpenSession,
    .C_CloseSession = akv_C_CloseSession,
    .C_CloseAllSessions = akv_C_CloseAllSessions,
    .C_GetSessionInfo = akv_C_GetSessionInfo,
    .C_GetOperationState = akv_C_GetOperationState,
    .C_SetOperationState = akv_C_SetOperationState,
    .C_Login = akv_C_Login,
    .C_Logout = akv_C_Logout,
    .C_CreateObject = akv_C_CreateObject,
    .C_CopyObject = akv_C_CopyObject,
    .C_DestroyObject = akv_C_DestroyObject,
    .C_GetObjectSize = akv_C_GetObjectSize,
    .C_GetAttributeValue = akv_C_GetAttributeValue,
    .C_SetAttributeValue = akv_C_SetAttributeValue,
    .C_FindObjectsInit = akv_C_FindObjectsInit,
    .C_FindObjects = akv_C_FindObjects,
    .C_FindObjectsFinal = akv_C_FindObjectsFinal,
    .C_EncryptInit = akv_C_EncryptInit,
    .C_Encrypt = akv_C_Encrypt,
    .C_EncryptUpdate = akv_C_EncryptUpdate,
    .C_EncryptFinal = akv_C_EncryptFinal,
    .C_DecryptInit = akv_C_DecryptInit,
    .C_Decrypt = akv_C_Decrypt,
    .C_DecryptUpdate = akv_C_DecryptUpdate,
    .C_DecryptFinal = akv_C_DecryptFinal,
    .C_DigestInit = akv_C_DigestInit,
    .C_Digest = akv_C_Digest,
    .C_DigestUpdate = akv_C_DigestUpdate,
    .C_DigestKey = akv_C_DigestKey,
    .C_DigestFinal = akv_C_DigestFinal,
    .C_SignInit = akv_C_SignInit,
    .C_Sign = akv_C_Sign,
    .C_SignUpdate = akv_C_SignUpdate,
    .C_SignFinal = akv_C_SignFinal,
    .C_SignRecoverInit = akv_C_SignRecoverInit,
    .C_SignRecover = akv_C_SignRecover,
    .C_VerifyInit = akv_C_VerifyInit,
    .C_Verify = akv_C_Verify,
    .C_VerifyUpdate = akv_C_VerifyUpdate,
    .C_VerifyFinal = akv_C_VerifyFinal,
    .C_VerifyRecoverInit = akv_C_VerifyRecoverInit,
    .C_VerifyRecover = akv_C_VerifyRecover,
    .C_DigestEncryptUpdate = akv_C_DigestEncryptUpdate,
    .C_DecryptDigestUpdate = akv_C_DecryptDigestUpdate,
    .C_SignEncryptUpdate = akv_C_SignEncryptUpdate,
    .C_DecryptVerifyUpdate = akv_C_DecryptVerifyUpdate,
    .C_GenerateKey = akv_C_GenerateKey,
    .C_GenerateKeyPair = akv_C_GenerateKeyPair,
    .C_WrapKey = akv_C_WrapKey,
    .C_UnwrapKey = akv_C_UnwrapKey,
    .C_DeriveKey = akv_C_DeriveKey,
    .C_SeedRandom = akv_C_SeedRandom,
    .C_GenerateRandom = akv_C_GenerateRandom,
    .C_GetFunctionStatus = akv_C_GetFunctionStatus,
    .C_CancelFunction = akv_C_CancelFunction,
    .C_WaitForSlotEvent = akv_C_WaitForSlotEvent,
};

static CK_RV akv_C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR list)
{
    if (list == NULL)
        return CKR_ARGUMENTS_BAD;
    *list = &function_list;
    return CKR_OK;
}

#define EXPORT __attribute__((visibility("default")))

EXPORT CK_RV C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR list)
{
    return akv_C_GetFunctionList(list);
}

/*
 * PKCS#11 3.0 discovery: the one interface offered is "PKCS 11" with the 2.40 function list
 * (a 3.0 caller may use a 2.x interface; section 5.1.3 of the 3.0 base specification). The
 * p11-kit header in use describes 2.40 only, so the 3.0 structure is declared here.
 */
typedef struct {
    CK_UTF8CHAR *pInterfaceName;
    CK_VOID_PTR pFunctionList;
    CK_FLAGS flags;
} akv_ck_interface;

static CK_UTF8CHAR interface_name[] = "PKCS 11";
static akv_ck_interface interface = {interface_name, &function_list, 0};

EXPORT CK_RV C_GetInterfaceList(akv_ck_interface *list, CK_ULONG_PTR count)
{
    if (count == NULL)
        return CKR_ARGUMENTS_BAD;
    if (list == NULL) {
        *count = 1;
        return CKR_OK;
    }
    if (*count < 1) {
        *count = 1;
        return CKR_BUFFER_TOO_SMALL;
    }
    list[0] = interface;
    *count = 1;
    return CKR_OK;
}

EXPORT CK_RV C_GetInterface(CK_UTF8CHAR_PTR name, CK_VERSION_PTR version, akv_ck_interface **out, CK_FLAGS flags)
{
    if (out == NULL)
        return CKR_ARGUMENTS_BAD;
    if (name != NULL && strcmp((const char *)name, "PKCS 11") != 0)
        return CKR_ARGUMENTS_BAD;
    if (version != NULL && (version->major != 2 || version->minor != 40))
        return CKR_ARGUMENTS_BAD;
    if (flags != 0)
        return CKR_ARGUMENTS_BAD;
    *out = &interface;
    return CKR_OK;
}
