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
    int pinned; /* named by version ("KEY@VERSION", slots.c): never replaced by a rotation */
} p11_key;

/*
 * A secret key held in the module's memory, not in the HSM: what C_UnwrapKey returns and
 * C_CreateObject makes (secrets.c). Always a session object (CKA_TOKEN false): it goes with the
 * session that made it. The module does no cryptography with it; it can be read (CKA_VALUE, when
 * not sensitive) or wrapped under an HSM key (when extractable).
 */
typedef struct {
    CK_OBJECT_HANDLE handle;
    CK_SESSION_HANDLE session; /* the session that made it */
    CK_SLOT_ID slot;
    CK_KEY_TYPE key_type; /* CKK_AES, CKK_GENERIC_SECRET, ... (CKA_KEY_TYPE as given) */
    unsigned char *value;
    size_t value_len;
    size_t want_len; /* CKA_VALUE_LEN of the template, 0 = not given */
    unsigned char *label, *id;
    size_t label_len, id_len;
    unsigned flags; /* P11_SECRET_* */
} p11_secret;

/* The boolean attributes of a p11_secret (secrets.c maps them to CKA_*). */
enum {
    P11_SECRET_SENSITIVE = 1u << 0,
    P11_SECRET_EXTRACTABLE = 1u << 1,
    P11_SECRET_ENCRYPT = 1u << 2,
    P11_SECRET_DECRYPT = 1u << 3,
    P11_SECRET_SIGN = 1u << 4,
    P11_SECRET_VERIFY = 1u << 5,
    P11_SECRET_WRAP = 1u << 6,
    P11_SECRET_UNWRAP = 1u << 7,
    P11_SECRET_DERIVE = 1u << 8,
    P11_SECRET_PRIVATE = 1u << 9,
    P11_SECRET_DESTROYABLE = 1u << 10,
    P11_SECRET_WRAP_WITH_TRUSTED = 1u << 11,
    P11_SECRET_ALWAYS_SENSITIVE = 1u << 12, /* read-only: set by the module */
    P11_SECRET_NEVER_EXTRACTABLE = 1u << 13 /* read-only: set by the module */
};

/* Session objects' handles: P11_SECRET_HANDLES | n, apart from the HSM keys' (token + 1) << 24. */
#define P11_SECRET_HANDLES ((CK_OBJECT_HANDLE)0xFF000000u)
#define P11_MAX_TOKENS 254
#define P11_MAX_SECRETS 4096 /* session objects of the whole module, a bound on its memory */

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
    p11_secret **secrets; /* session objects (secrets.c) */
    size_t nsecrets, secret_cap;
    CK_OBJECT_HANDLE next_secret;
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
/* DESCRIBE of the key's current version, or of `version` when not NULL. */
CK_RV p11_agent_describe(const char *hsm, const char *name, const char *version, p11_key **out);
CK_RV p11_agent_private(int op, const p11_key *key, const char *alg, const unsigned char *in, size_t in_len,
                        unsigned char **out, size_t *out_len);
void p11_free_names(char **names, size_t count);

/* keys.c: building a key from a DESCRIBE answer. */
CK_RV p11_key_from_description(const char *hsm, const char *name, const akv_frame *frame, p11_key **out);
void p11_key_free(p11_key *key);

/* slots.c */
CK_RV p11_load_tokens(void);
CK_RV p11_refresh_token(CK_SLOT_ID slot, int force);

/* A search whose CKA_LABEL is "KEY@VERSION": that version of the key joins the token's objects. */
CK_RV p11_pin_version(CK_SLOT_ID slot, const CK_ATTRIBUTE *templ, CK_ULONG count);

/* objects.c (callers hold p11.lock) */
p11_key *p11_object_key(CK_OBJECT_HANDLE handle, int *kind);
CK_OBJECT_HANDLE p11_handle(size_t token, size_t key, int kind);

/* One attribute value: bytes somewhere, or a scalar kept in the struct. */
typedef struct {
    const void *ptr;
    size_t len;
    CK_ULONG ulong;
    CK_BBOOL bbool;
} p11_attr_value;
enum { P11_ATTR_OK, P11_ATTR_INVALID, P11_ATTR_SENSITIVE };
int p11_attr_bool(p11_attr_value *v, int b);
int p11_attr_ulong(p11_attr_value *v, CK_ULONG u);
int p11_attr_bytes(p11_attr_value *v, const void *p, size_t len);

/* secrets.c (session objects; callers hold p11.lock unless said otherwise) */
p11_secret *p11_secret_get(CK_OBJECT_HANDLE handle);
int p11_secret_attr(const p11_secret *s, CK_ATTRIBUTE_TYPE type, p11_attr_value *v);
/* A new secret from a template (no lock needed). With value == NULL (C_UnwrapKey) the template
 * must not hold CKA_VALUE; p11_secret_set_value gives it the unwrapped bytes. */
CK_RV p11_secret_from_template(const CK_ATTRIBUTE *templ, CK_ULONG count, int unwrapped, p11_secret **out);
CK_RV p11_secret_set_value(p11_secret *s, const unsigned char *value, size_t len);
/* Adds it to the module for the session (which must exist); frees it on failure. */
CK_RV p11_secret_add(p11_secret *s, p11_session *session, CK_OBJECT_HANDLE *out);
void p11_secret_free(p11_secret *s);
void p11_secrets_close_session(CK_SESSION_HANDLE session);
void p11_secrets_free_all(void);

/* sessions.c (callers hold p11.lock) */
p11_session *p11_session_get(CK_SESSION_HANDLE handle);
void p11_op_reset(p11_op *op);
void p11_sessions_free_all(void);
/* Entry-point guards (take p11.lock themselves): the session, with the lock held; or NULL, the
 * lock released and *rv saying why (not initialised, CKR_SESSION_HANDLE_INVALID). */
p11_session *p11_lock_session(CK_SESSION_HANDLE handle, CK_RV *rv);
/* The operations a session runs, one of each at a time. */
enum p11_op_slot { P11_SIGN_OP, P11_VERIFY_OP, P11_DECRYPT_OP, P11_DIGEST_OP };
p11_op *p11_session_op(p11_session *s, int which);
/* The session's operation `which`, with the lock held, when it is running (want_active) or idle
 * (!want_active); else NULL, the lock released and *rv = CKR_SESSION_HANDLE_INVALID,
 * CKR_OPERATION_NOT_INITIALIZED or CKR_OPERATION_ACTIVE. */
p11_op *p11_lock_op(CK_SESSION_HANDLE handle, int which, int want_active, CK_RV *rv);
/* The session and an HSM key object for an operation that needs the key's `need_op` (P11_OP_*,
 * reported by `what` when the key lacks it) on an object of one of `kinds` (1 << P11_PRIVATE ...):
 * the key with the lock held, or NULL with the lock released and *rv = CKR_SESSION_HANDLE_INVALID,
 * CKR_KEY_HANDLE_INVALID or CKR_KEY_FUNCTION_NOT_PERMITTED. */
p11_key *p11_lock_key(CK_SESSION_HANDLE handle, CK_OBJECT_HANDLE object, unsigned kinds, unsigned need_op,
                      const char *what, p11_session **session, int *kind, CK_RV *rv);

/* mechanisms.c */
typedef struct {
    CK_MECHANISM_TYPE type;
    CK_FLAGS flags;
    uint32_t key_type;
} p11_mechanism_info;
const p11_mechanism_info *p11_mechanisms(size_t *count);
/* SHA-256/384/512 by their CKM_SHA* names (the only hashes the HSM signs); NULL for any other. */
const EVP_MD *p11_md_of(CK_MECHANISM_TYPE hash);
/* The HSM algorithm and local digest for signing with mech on key; CKR_MECHANISM_INVALID etc. */
CK_RV p11_sign_mechanism(const CK_MECHANISM *mech, const p11_key *key, p11_op *op);
CK_RV p11_decrypt_mechanism(const CK_MECHANISM *mech, const p11_key *key, p11_op *op);
/* The HSM algorithm for wrapping or unwrapping with mech on key (A256KW, RSA-OAEP ...). */
CK_RV p11_wrap_mechanism(const CK_MECHANISM *mech, const p11_key *key, char alg[16]);

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
CK_RV akv_C_WrapKey(CK_SESSION_HANDLE handle, CK_MECHANISM_PTR mech, CK_OBJECT_HANDLE wrapping, CK_OBJECT_HANDLE key,
                    CK_BYTE_PTR out, CK_ULONG_PTR out_len);
CK_RV akv_C_UnwrapKey(CK_SESSION_HANDLE handle, CK_MECHANISM_PTR mech, CK_OBJECT_HANDLE unwrapping, CK_BYTE_PTR in,
                      CK_ULONG in_len, CK_ATTRIBUTE_PTR templ, CK_ULONG count, CK_OBJECT_HANDLE_PTR out);
CK_RV akv_C_CreateObject(CK_SESSION_HANDLE handle, CK_ATTRIBUTE_PTR templ, CK_ULONG count, CK_OBJECT_HANDLE_PTR out);
CK_RV akv_C_DestroyObject(CK_SESSION_HANDLE handle, CK_OBJECT_HANDLE object);

#endif
