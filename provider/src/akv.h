/*
 * Shared declarations of the akv_provider: the provider context, the key object every operation
 * works on, error raising, logging, and the agent round trips.
 */
#ifndef AKV_PROVIDER_H
#define AKV_PROVIDER_H

#include <openssl/core.h>
#include <openssl/core_dispatch.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "agent_conn.h"
#include "keyref.h"

#define AKV_PROVIDER_NAME "akv_provider"
/* One version for all of akv: provider/Makefile passes package.json's as -DAKV_PROVIDER_VERSION. */
#ifndef AKV_PROVIDER_VERSION
#error "AKV_PROVIDER_VERSION comes from package.json: build with provider/Makefile"
#endif
/* The agent's own deadline is 10 s; the provider waits a little longer so the agent's error wins. */
#define AKV_DEFAULT_TIMEOUT_MS 15000
/*
 * The standard names of the algorithms, as OpenSSL knows them (provider.c registers them with
 * their aliases and OIDs): the key types, and the signature algorithm of EC keys.
 */
#define AKV_RSA_NAME "RSA"
#define AKV_EC_NAME "EC"
#define AKV_ECDSA_NAME "ECDSA"
/* Data type of AES key-wrap keys; no other provider has a keymgmt of this name. */
#define AKV_AES_KEYTYPE "AKV-AES-KW"

typedef struct akv_prov_ctx {
    const OSSL_CORE_HANDLE *handle;
    OSSL_LIB_CTX *libctx;       /* the application's library context, as seen from the provider */
    OSSL_LIB_CTX *pub_libctx;   /* private context with the default provider, for public-key math */
    OSSL_PROVIDER *pub_default; /* the default provider loaded into pub_libctx */
    AKV_AGENT *agent;
    int rsa_decrypt_padding; /* RSA decryption's default padding: rsa_decrypt_padding (settings.c) */
    /* The key the decoder described last: OpenSSL tries a key-reference file with each of our
     * decoders (RSA, EC, AES) and may retry chains, so one file load would otherwise cost
     * several DESCRIBE round trips. Keys are immutable, so sharing is safe. */
    pthread_mutex_t recent_lock;
    char *recent_uri;
    struct akv_key *recent_key;
    long long recent_at_ms;
    OSSL_FUNC_core_new_error_fn *core_new_error;
    OSSL_FUNC_core_set_error_debug_fn *core_set_error_debug;
    OSSL_FUNC_core_vset_error_fn *core_vset_error;
} AKV_PROV_CTX;

/* Error reasons (provider-specific reason codes; strings in errors.c). */
enum akv_reason {
    AKV_R_AGENT_UNREACHABLE = 1,
    AKV_R_AGENT_IO,
    AKV_R_AGENT_TIMEOUT,
    AKV_R_AGENT_PROTOCOL,
    AKV_R_BAD_URI,
    AKV_R_KEY_NOT_FOUND,
    AKV_R_OPERATION_NOT_PERMITTED,
    AKV_R_UNAUTHORIZED,
    AKV_R_HSM_THROTTLED,
    AKV_R_HSM_UNAVAILABLE,
    AKV_R_UNSUPPORTED,
    AKV_R_KEY_DISABLED,
    AKV_R_BAD_PARAMETER,
    AKV_R_AGENT_INTERNAL,
    AKV_R_PRIVATE_KEY_NOT_EXPORTABLE,
    AKV_R_NO_PRIVATE_KEY,
    AKV_R_INVALID_ARGUMENT,
    AKV_R_BAD_KEY_REFERENCE,
    AKV_R_INTERNAL,
    AKV_R_ACCESS_DENIED
};

/*
 * Raises an error through the core, recording where it was raised (so `openssl` prints
 * `akv_provider:<function>:<reason>:<text>`), and logs it. Call it through AKV_RAISE.
 */
void akv_raise(const AKV_PROV_CTX *ctx, const char *file, int line, const char *func, int reason, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 6, 7)))
#endif
    ;
#define AKV_RAISE(ctx, reason, ...) akv_raise((ctx), OPENSSL_FILE, OPENSSL_LINE, OPENSSL_FUNC, (reason), __VA_ARGS__)
const OSSL_ITEM *akv_reason_strings(void);

/* Logging: AKV_LOG_FILE (path), AKV_LOG_LEVEL (error|warn|info|debug, or 0-3: log.c); never key material. */
enum akv_log_level { AKV_LOG_ERROR = 1, AKV_LOG_WARN, AKV_LOG_INFO, AKV_LOG_DEBUG };
void akv_log_init(void);
void akv_log(int level, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* The HSM key (or a public-only key imported from another provider). Immutable once built. */
typedef struct akv_key {
    int refcount;
    AKV_PROV_CTX *prov;
    int type;      /* AKV_KEY_TYPE_RSA / _EC / _AES */
    char *uri;     /* as the user wrote it; NULL for a public-only key */
    char *op_uri;  /* what operations send: `uri` pinned to the version describe resolved */
    char *version; /* version describe resolved */
    char *key_ops; /* comma-separated, as the agent reports */
    unsigned bits;
    char curve[16];    /* Azure name: P-256, P-256K, P-384, P-521 */
    EVP_PKEY *pub;     /* public half in pub_libctx; NULL for AES */
    int local_private; /* a software key (keygen.c): `pub` holds its private part too */
    char *failure;     /* a key-reference file whose key could not be described: why (decoder.c) */
    int failure_reason;
} AKV_KEY;

AKV_KEY *akv_key_new(AKV_PROV_CTX *prov, int type);
AKV_KEY *akv_key_ref(AKV_KEY *key);
void akv_key_free(AKV_KEY *key);
int akv_key_allows(const AKV_KEY *key, const char *op);
/* OpenSSL key type name of a key: "RSA", "EC", AKV_AES_KEYTYPE. */
const char *akv_key_type_name(const AKV_KEY *key);
/* Key size in bytes of the curve's order (32, 32, 48, 66), 0 if unknown. */
size_t akv_curve_order_bytes(const char *curve);

/* One DESCRIBE round trip: builds the key for `uri`. Raises an error and returns NULL on failure. */
AKV_KEY *akv_describe(AKV_PROV_CTX *prov, const char *uri);
/* akv_describe, reusing the decoder's last answer for the same URI for up to 2 seconds. */
AKV_KEY *akv_describe_recent(AKV_PROV_CTX *prov, const char *uri);
void akv_recent_clear(AKV_PROV_CTX *prov);
/*
 * SIGN / DECRYPT / WRAP / UNWRAP round trip: `op` is the AKV_OP_* code (it also names the
 * operation in errors), `alg` the Azure algorithm name. On success returns 1 and *out (malloc'ed,
 * free with akv_secure_free) holds the OUTPUT field.
 */
int akv_key_operation(AKV_PROV_CTX *prov, const AKV_KEY *key, int op, const char *alg, const unsigned char *in,
                      size_t inlen, unsigned char **out, size_t *outlen);
/* akv_key_operation, with the output copied to out if it fits outsize (else an error); wiped either way. */
int akv_key_operation_into(AKV_PROV_CTX *prov, const AKV_KEY *key, int op, const char *alg, const unsigned char *in,
                           size_t inlen, unsigned char *out, size_t *outlen, size_t outsize);
/* LIST: the key names of one vault. Returns the count, or -1 after raising an error. */
int akv_list_keys(AKV_PROV_CTX *prov, const char *vault, const char *vault_type, char ***names);
void akv_free_names(char **names, int n);
void akv_secure_free(void *p, size_t len);

/* Dispatch tables. */
extern const OSSL_DISPATCH akv_rsa_keymgmt_functions[];
extern const OSSL_DISPATCH akv_ec_keymgmt_functions[];
extern const OSSL_DISPATCH akv_aes_keymgmt_functions[];
extern const OSSL_DISPATCH akv_store_functions[];
extern const OSSL_DISPATCH akv_rsa_signature_functions[];
extern const OSSL_DISPATCH akv_ecdsa_signature_functions[];
#ifdef OSSL_FUNC_SIGNATURE_SIGN_MESSAGE_INIT
/* OpenSSL 3.4+ composite signature algorithms (signature.c). */
extern const OSSL_DISPATCH akv_rsa_sha256_signature_functions[];
extern const OSSL_DISPATCH akv_rsa_sha384_signature_functions[];
extern const OSSL_DISPATCH akv_rsa_sha512_signature_functions[];
extern const OSSL_DISPATCH akv_ecdsa_sha256_signature_functions[];
extern const OSSL_DISPATCH akv_ecdsa_sha384_signature_functions[];
extern const OSSL_DISPATCH akv_ecdsa_sha512_signature_functions[];
#endif
extern const OSSL_DISPATCH akv_rsa_asym_cipher_functions[];
extern const OSSL_DISPATCH akv_aes_kw_asym_cipher_functions[];
extern const OSSL_DISPATCH akv_pem_to_der_decoder_functions[];
extern const OSSL_DISPATCH akv_keyref_to_rsa_decoder_functions[];
extern const OSSL_DISPATCH akv_keyref_to_ec_decoder_functions[];
extern const OSSL_DISPATCH akv_keyref_to_aes_decoder_functions[];

/* Key-reference files (docs/provider.md): PEM label and DER structure name. */
#define AKV_KEYREF_PEM_LABEL "AKV KEY REFERENCE"
#define AKV_KEYREF_STRUCTURE "AKVKeyReference"

/*
 * A provider object reference as OpenSSL passes it from store/decoder to keymgmt load. It is
 * deliberately not pointer-sized: another provider's keymgmt that is handed our reference by
 * mistake (they accept exactly sizeof(pointer)) refuses it instead of misreading it.
 */
typedef struct {
    uint64_t magic;
    AKV_KEY *key;
    uint64_t reserved;
} AKV_KEY_HANDLE;
#define AKV_KEY_HANDLE_MAGIC 0x414b562d4b455931ULL

/*
 * What the key-reference decoder hands on when it cannot describe the key (decoder.c): OpenSSL
 * 3.0's file store drops a decoder's errors (`openssl pkey -in ref.pem` said only "STORE
 * routines::unsupported"), so the failure travels as a key instead. keymgmt load turns it into an
 * AKV_KEY whose `failure` is raised, with the agent's own message, by every use of the key:
 * export, signature and decryption init, match.
 */
typedef struct {
    AKV_PROV_CTX *prov;
    int reason;
    char uri[1024];
    char message[768];
} AKV_KEY_FAILURE;
#define AKV_KEY_FAILURE_MAGIC 0x414b562d4641494cULL
/* keymgmt load: the failed key of REFERENCE when it is an AKV_KEY_FAILURE (*is_failure = 1). */
AKV_KEY *akv_key_from_failure(const void *reference, size_t reference_sz, int type, int *is_failure);
/* 1 (after raising the failure) when KEY is a failed key; every operation's init calls it first. */
int akv_key_raise_failure(const AKV_KEY *key);

/* Passes a key to OpenSSL's object callback as a provider reference (store and decoder). */
int akv_pass_key_reference(AKV_KEY *key, OSSL_CALLBACK *object_cb, void *object_cbarg);

#endif
