/*
 * libakv_pkcs11.so: the module's shared state (docs/pkcs11.md). One token per HSM of the agent's
 * config; its objects are the HSM's keys (private, public, certificate, or secret for oct keys).
 * Every private-key operation is a round trip to the agent (agent.c); public keys are described
 * once and kept. One mutex guards all state; no agent call is made while it is held.
 */
#ifndef AKV_P11_H
#define AKV_P11_H

#include <openssl/evp.h>
#include <p11-kit/pkcs11.h>
#include <pthread.h>
#include <stddef.h>
#include <sys/types.h>

#include "agent_conn.h"

/* Object classes inside a handle (handle = token << 24 | key << 2 | kind). */
enum p11_kind { P11_PRIVATE = 0, P11_PUBLIC = 1, P11_CERT = 2, P11_SECRET = 3 };

/* Key operations as the HSM reports them (KEY_OPS). */
enum {
    P11_OP_SIGN = 1,
    P11_OP_VERIFY = 2,
    P11_OP_ENCRYPT = 4,
    P11_OP_DECRYPT = 8,
    P11_OP_WRAP = 16,
    P11_OP_UNWRAP = 32
};

/* One HSM key as DESCRIBE told it; immutable once published (a refresh publishes a new one). */
typedef struct {
    char *name;
    char *uri; /* managedhsm:<hsm>:<name>, what every operation sends */
    char *version;
    uint32_t type; /* AKV_KEY_TYPE_RSA / _EC / _AES */
    uint32_t bits;
    unsigned ops;
    unsigned char id[20]; /* CKA_ID: SHA-1 of the public key bits (RFC 5280 key identifier) */
    unsigned char *spki;
    size_t spki_len;
    EVP_PKEY *pub; /* NULL for AES */
    /* RSA */
    unsigned char *modulus, *exponent;
    size_t modulus_len, exponent_len;
    /* EC: DER OID of the curve, DER OCTET STRING of the uncompressed point, size of r or s */
    unsigned char *ec_params, *ec_point;
    size_t ec_params_len, ec_point_len, ec_field_len;
    char curve[8];
    /* The configured certificate (DER) and what PKCS#11 shows of it. */
    unsigned char *cert;
    size_t cert_len;
    unsigned char *subject, *issuer, *serial;
    size_t subject_len, issuer_len, serial_len;
} p11_key;

typedef struct {
    char *name; /* HSM name as in the agent config: the token label */
    p11_key **keys;
    size_t nkeys, cap;
    unsigned char *present; /* present[i]: key i is in the HSM's latest listing */
    long long loaded_at;    /* CLOCK_MONOTONIC ms of the last listing, 0 = never */
} p11_token;

/* How an operation's input becomes what the HSM (or the local verifier) takes. */
enum p11_scheme {
    P11_RSA_PKCS1,  /* CKM_RSA_PKCS (input: a DigestInfo) and CKM_SHA*_RSA_PKCS */
    P11_RSA_PSS,    /* CKM_RSA_PKCS_PSS (input: a digest) and CKM_SHA*_RSA_PKCS_PSS */
    P11_ECDSA,      /* CKM_ECDSA (input: a digest) and CKM_ECDSA_SHA* */
    P11_RSA_DECRYPT /* CKM_RSA_PKCS and CKM_RSA_PKCS_OAEP decryption */
};

/* The operation a session has running (one sign, one verify, one decrypt at a time). */
typedef struct {
    int active;
    CK_MECHANISM_TYPE mechanism;
    p11_key *key;         /* borrowed: descriptions are freed only by C_Finalize */
    int scheme;           /* enum p11_scheme */
    char alg[16];         /* the HSM's algorithm (RS256, PS384, ES256, RSA-OAEP ...); CKM_RSA_PKCS: at sign */
    const EVP_MD *md;     /* hashing mechanisms: the digest computed here; NULL: the input is a digest */
    const EVP_MD *pss_md; /* RSA-PSS: the hash of the parameters (MGF1 and salt length follow it) */
    EVP_MD_CTX *md_ctx;   /* multi-part hashing */
    unsigned char *data;  /* multi-part input of a non-hashing mechanism, at most P11_MAX_INPUT */
    size_t data_len;
    int updated;           /* C_*Update was called: only C_*Final may finish */
    unsigned char *result; /* a decryption the caller's buffer was too small for, kept for the retry */
    size_t result_len;
} p11_op;

typedef struct p11_session {
    CK_SESSION_HANDLE handle;
    CK_SLOT_ID slot;
    CK_FLAGS flags;
    CK_OBJECT_HANDLE *found; /* C_FindObjects results */
    size_t nfound, found_pos;
    int finding;
    p11_op sign, verify, decrypt, digest;
} p11_session;

/* The one global state. */
typedef struct {
    pthread_mutex_t lock;
    int initialized;
    pid_t pid; /* the process that called C_Initialize: a forked child must call it again */
    AKV_AGENT *agent;
    int explicit_socket; /* AKV_AGENT_SOCKET named the agent's socket */
    p11_token *tokens;
    size_t ntokens;
    int tokens_loaded;
    p11_session **sessions;
    size_t nsessions, session_cap;
    CK_SESSION_HANDLE next_session;
    int logged_in;
} p11_module;

extern p11_module p11;

#define P11_MAX_INPUT 4096 /* the agent's bound on INPUT (handlers.ts MAX_PRIVATE_INPUT) */
#define P11_REFRESH_MS 60000

/* module.c: every entry point starts with this (CKR_CRYPTOKI_NOT_INITIALIZED in a forked child). */
CK_RV p11_check_initialized(void);
long long p11_now_ms(void);
/* Blank-padded copy into a fixed-size PKCS#11 text field. */
void p11_pad(CK_UTF8CHAR *dst, size_t size, const char *src);

/* settings.c: the agent connection from AKV_AGENT_* (same names and defaults as the provider). */
AKV_AGENT *p11_agent_from_environment(int *explicit_socket, char *err, size_t errlen);

/* report.c: one line on stderr (or AKV_LOG_FILE) for a failure the caller only sees as a CKR. */
void p11_report(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* agent.c: round trips. Each returns CKR_OK or the CKR for what failed (and reports it). */
CK_RV p11_agent_list_vaults(char ***names, size_t *count);
CK_RV p11_agent_list_keys(const char *hsm, char ***names, size_t *count);
CK_RV p11_agent_describe(const char *hsm, const char *name, p11_key **out);
CK_RV p11_agent_private(int op, const p11_key *key, const char *alg, const unsigned char *in, size_t in_len,
                        unsigned char **out, size_t *out_len);
void p11_free_names(char **names, size_t count);

/* keys.c: building a key from a DESCRIBE answer. */
CK_RV p11_key_from_description(const char *hsm, const char *name, const akv_frame *frame, p11_key **out);
void p11_key_free(p11_key *key);

/* slots.c */
CK_RV p11_load_tokens(void);
CK_RV p11_refresh_token(CK_SLOT_ID slot, int force);

/* objects.c (callers hold p11.lock) */
p11_key *p11_object_key(CK_OBJECT_HANDLE handle, int *kind);
CK_OBJECT_HANDLE p11_handle(size_t token, size_t key, int kind);

/* sessions.c (callers hold p11.lock) */
p11_session *p11_session_get(CK_SESSION_HANDLE handle);
void p11_op_reset(p11_op *op);
void p11_sessions_free_all(void);

/* mechanisms.c */
typedef struct {
    CK_MECHANISM_TYPE type;
    CK_FLAGS flags;
    uint32_t key_type;
} p11_mechanism_info;
const p11_mechanism_info *p11_mechanisms(size_t *count);
/* The HSM algorithm and local digest for signing with mech on key; CKR_MECHANISM_INVALID etc. */
CK_RV p11_sign_mechanism(const CK_MECHANISM *mech, const p11_key *key, p11_op *op);
CK_RV p11_decrypt_mechanism(const CK_MECHANISM *mech, const p11_key *key, p11_op *op);

/* The entry points, one file per job (module.c lists them in the function table). */
CK_RV akv_C_GetSlotList(CK_BBOOL present, CK_SLOT_ID_PTR list, CK_ULONG_PTR count);
CK_RV akv_C_GetSlotInfo(CK_SLOT_ID slot, CK_SLOT_INFO_PTR info);
CK_RV akv_C_GetTokenInfo(CK_SLOT_ID slot, CK_TOKEN_INFO_PTR info);
CK_RV akv_C_GetMechanismList(CK_SLOT_ID slot, CK_MECHANISM_TYPE_PTR list, CK_ULONG_PTR count);
CK_RV akv_C_GetMechanismInfo(CK_SLOT_ID slot, CK_MECHANISM_TYPE type, CK_MECHANISM_INFO_PTR info);
CK_RV akv_C_WaitForSlotEvent(CK_FLAGS flags, CK_SLOT_ID_PTR slot, CK_VOID_PTR reserved);
CK_RV akv_C_OpenSession(CK_SLOT_ID slot, CK_FLAGS flags, CK_VOID_PTR app, CK_NOTIFY notify, CK_SESSION_HANDLE_PTR out);
CK_RV akv_C_CloseSession(CK_SESSION_HANDLE handle);
CK_RV akv_C_CloseAllSessions(CK_SLOT_ID slot);
CK_RV akv_C_GetSessionInfo(CK_SESSION_HANDLE handle, CK_SESSION_INFO_PTR info);
CK_RV akv_C_Login(CK_SESSION_HANDLE handle, CK_USER_TYPE user, CK_UTF8CHAR_PTR pin, CK_ULONG pin_len);
CK_RV akv_C_Logout(CK_SESSION_HANDLE handle);
CK_RV akv_C_GetAttributeValue(CK_SESSION_HANDLE handle, CK_OBJECT_HANDLE object, CK_ATTRIBUTE_PTR attrs,
                              CK_ULONG count);
CK_RV akv_C_GetObjectSize(CK_SESSION_HANDLE handle, CK_OBJECT_HANDLE object, CK_ULONG_PTR size);
CK_RV akv_C_FindObjectsInit(CK_SESSION_HANDLE handle, CK_ATTRIBUTE_PTR templ, CK_ULONG count);
CK_RV akv_C_FindObjects(CK_SESSION_HANDLE handle, CK_OBJECT_HANDLE_PTR out, CK_ULONG max, CK_ULONG_PTR count);
CK_RV akv_C_FindObjectsFinal(CK_SESSION_HANDLE handle);
CK_RV akv_C_SignInit(CK_SESSION_HANDLE handle, CK_MECHANISM_PTR mech, CK_OBJECT_HANDLE key);
CK_RV akv_C_Sign(CK_SESSION_HANDLE handle, CK_BYTE_PTR data, CK_ULONG len, CK_BYTE_PTR sig, CK_ULONG_PTR sig_len);
CK_RV akv_C_SignUpdate(CK_SESSION_HANDLE handle, CK_BYTE_PTR data, CK_ULONG len);
CK_RV akv_C_SignFinal(CK_SESSION_HANDLE handle, CK_BYTE_PTR sig, CK_ULONG_PTR sig_len);
CK_RV akv_C_VerifyInit(CK_SESSION_HANDLE handle, CK_MECHANISM_PTR mech, CK_OBJECT_HANDLE key);
CK_RV akv_C_Verify(CK_SESSION_HANDLE handle, CK_BYTE_PTR data, CK_ULONG len, CK_BYTE_PTR sig, CK_ULONG sig_len);
CK_RV akv_C_VerifyUpdate(CK_SESSION_HANDLE handle, CK_BYTE_PTR data, CK_ULONG len);
CK_RV akv_C_VerifyFinal(CK_SESSION_HANDLE handle, CK_BYTE_PTR sig, CK_ULONG sig_len);
CK_RV akv_C_DigestInit(CK_SESSION_HANDLE handle, CK_MECHANISM_PTR mech);
CK_RV akv_C_Digest(CK_SESSION_HANDLE handle, CK_BYTE_PTR data, CK_ULONG len, CK_BYTE_PTR out, CK_ULONG_PTR out_len);
CK_RV akv_C_DigestUpdate(CK_SESSION_HANDLE handle, CK_BYTE_PTR data, CK_ULONG len);
CK_RV akv_C_DigestFinal(CK_SESSION_HANDLE handle, CK_BYTE_PTR out, CK_ULONG_PTR out_len);
CK_RV akv_C_DecryptInit(CK_SESSION_HANDLE handle, CK_MECHANISM_PTR mech, CK_OBJECT_HANDLE key);
CK_RV akv_C_Decrypt(CK_SESSION_HANDLE handle, CK_BYTE_PTR in, CK_ULONG in_len, CK_BYTE_PTR out, CK_ULONG_PTR out_len);

#endif
