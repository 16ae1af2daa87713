/*
 * DECODER for key-reference files written by `bin/akv keyref URI`:
 *
 *   -----BEGIN AKV KEY REFERENCE-----
 *   base64 of DER  AKVKeyReference ::= SEQUENCE {
 *                      version     INTEGER (1),
 *                      description UTF8String,   -- for people; ignored here
 *                      uri         UTF8String }  -- managedhsm:/akv:/keyvault: key URI
 *   -----END AKV KEY REFERENCE-----
 *
 * Two steps, as OpenSSL chains decoders: PEM -> DER (structure "AKVKeyReference") for our label
 * only, then DER -> RSA / EC / AES key, which asks the agent to describe the URI and hands
 * OpenSSL a reference to the key. Applications that read PEM private key files (nginx,
 * `openssl s_server -key`, curl, HAProxy) then use the HSM key.
 *
 * When the key cannot be described (it does not exist, the agent is down...), the error raised
 * here would be dropped by OpenSSL 3.0's file store (`openssl pkey -in ref.pem` said only
 * "STORE routines::unsupported"). So the decoder hands on an AKV_KEY_FAILURE instead of a key:
 * OpenSSL gives it to our keymgmt's load, which raises the failure again where OpenSSL keeps it.
 */
#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/core_object.h>
#include <openssl/err.h>
#include <openssl/params.h>
#include <openssl/pem.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "akv.h"

static OSSL_FUNC_decoder_newctx_fn decoder_newctx;
static OSSL_FUNC_decoder_freectx_fn decoder_freectx;
static OSSL_FUNC_decoder_decode_fn pem_to_der_decode;
static OSSL_FUNC_decoder_decode_fn keyref_to_rsa_decode;
static OSSL_FUNC_decoder_decode_fn keyref_to_ec_decode;
static OSSL_FUNC_decoder_decode_fn keyref_to_aes_decode;

#define KEYREF_MAX_DER 8192

typedef struct {
    AKV_PROV_CTX *prov;
} AKV_DECODER_CTX;

static void *decoder_newctx(void *provctx)
{
    AKV_DECODER_CTX *ctx = calloc(1, sizeof(*ctx));
    if (ctx != NULL)
        ctx->prov = provctx;
    return ctx;
}

static void decoder_freectx(void *vctx)
{
    free(vctx);
}

static int pem_to_der_decode(void *vctx, OSSL_CORE_BIO *cin, int selection, OSSL_CALLBACK *data_cb, void *data_cbarg,
                             OSSL_PASSPHRASE_CALLBACK *pw_cb, void *pw_cbarg)
{
    AKV_DECODER_CTX *ctx = vctx;
    char *name = NULL, *header = NULL;
    unsigned char *der = NULL;
    long der_len = 0;
    int ret = 1; /* "not ours, carry on" unless we find our label */
    (void)selection;
    (void)pw_cb;
    (void)pw_cbarg;

    BIO *in = BIO_new_from_core_bio(ctx->prov->libctx, cin);
    if (in == NULL)
        return 1;
    if (PEM_read_bio(in, &name, &header, &der, &der_len) > 0 && strcmp(name, AKV_KEYREF_PEM_LABEL) == 0) {
        /* Our label: a malformed body is an error to report here, not a reason to try other decoders. */
        const char *why = NULL;
        char *uri = akv_keyref_parse(der, (size_t)der_len, &why);
        if (uri == NULL) {
            AKV_RAISE(ctx->prov, AKV_R_BAD_KEY_REFERENCE,
                      "AKV KEY REFERENCE block is malformed (%s): write it again with `bin/akv keyref URI --out FILE`",
                      why);
            ret = 0;
            goto end;
        }
        free(uri);
        OSSL_PARAM params[] = {
            OSSL_PARAM_octet_string(OSSL_OBJECT_PARAM_DATA, der, (size_t)der_len),
            OSSL_PARAM_utf8_string(OSSL_OBJECT_PARAM_DATA_STRUCTURE, (char *)AKV_KEYREF_STRUCTURE, 0),
            OSSL_PARAM_END,
        };
        ret = data_cb(params, data_cbarg);
    }
end:
    OPENSSL_free(name);
    OPENSSL_free(header);
    OPENSSL_free(der);
    BIO_free(in);
    return ret;
}

/*
 * The last key-reference failure, kept for a moment: OpenSSL tries a file with each of our
 * decoders (RSA, EC, AES) and the ones after the first need no round trip of their own.
 */
static pthread_mutex_t failure_lock = PTHREAD_MUTEX_INITIALIZER;
static AKV_KEY_FAILURE last_failure;
static char last_failure_uri[1100];
static struct timespec last_failure_at;

static int recent_failure(AKV_PROV_CTX *prov, const char *uri, AKV_KEY_FAILURE *out)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    pthread_mutex_lock(&failure_lock);
    long long age_ms =
        (now.tv_sec - last_failure_at.tv_sec) * 1000LL + (now.tv_nsec - last_failure_at.tv_nsec) / 1000000;
    int found = last_failure.prov == prov && strcmp(last_failure_uri, uri) == 0 && age_ms >= 0 && age_ms < 2000;
    if (found)
        *out = last_failure;
    pthread_mutex_unlock(&failure_lock);
    return found;
}

/* Records the error describe has just raised as the failure of URI. */
static void record_failure(AKV_PROV_CTX *prov, const char *uri, AKV_KEY_FAILURE *out)
{
    memset(out, 0, sizeof(*out));
    out->prov = prov;
    snprintf(out->uri, sizeof(out->uri), "%s", uri);
    const char *data = NULL;
    int flags = 0;
    unsigned long err = ERR_peek_last_error_data(&data, &flags);
    out->reason = err != 0 ? ERR_GET_REASON(err) : AKV_R_INTERNAL;
    snprintf(out->message, sizeof(out->message), "%s",
             data != NULL && (flags & ERR_TXT_STRING) != 0 ? data : "the key could not be described");
    pthread_mutex_lock(&failure_lock);
    last_failure = *out;
    snprintf(last_failure_uri, sizeof(last_failure_uri), "%s", uri);
    clock_gettime(CLOCK_MONOTONIC, &last_failure_at);
    pthread_mutex_unlock(&failure_lock);
}

/*
 * Hands FAILURE on as an RSA or EC key reference that keymgmt load will refuse with its message
 * (OpenSSL's file store does not take an AES key-wrap key from a file, so that decoder declines).
 */
static int pass_failure(int type, const AKV_KEY_FAILURE *failure, OSSL_CALLBACK *data_cb, void *data_cbarg)
{
    if (type == AKV_KEY_TYPE_AES)
        return 1;
    int object_type = OSSL_OBJECT_PKEY;
    /* A handle of the usual size (see AKV_KEY_HANDLE), told apart by its magic. */
    AKV_KEY_HANDLE handle = {AKV_KEY_FAILURE_MAGIC, (AKV_KEY *)(void *)failure, 0};
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_int(OSSL_OBJECT_PARAM_TYPE, &object_type),
        OSSL_PARAM_construct_utf8_string(OSSL_OBJECT_PARAM_DATA_TYPE,
                                         (char *)(type == AKV_KEY_TYPE_RSA ? AKV_RSA_NAME : AKV_EC_NAME), 0),
        OSSL_PARAM_construct_octet_string(OSSL_OBJECT_PARAM_REFERENCE, &handle, sizeof(handle)),
        OSSL_PARAM_construct_end(),
    };
    data_cb(params, data_cbarg);
    return 0;
}

AKV_KEY *akv_key_from_failure(const void *reference, size_t reference_sz, int type, int *is_failure)
{
    const AKV_KEY_HANDLE *handle = reference;
    *is_failure = 0;
    if (reference == NULL || reference_sz != sizeof(*handle) || handle->magic != AKV_KEY_FAILURE_MAGIC)
        return NULL;
    *is_failure = 1;
    const AKV_KEY_FAILURE *failure = (const AKV_KEY_FAILURE *)(const void *)handle->key;
    AKV_KEY *key = akv_key_new(failure->prov, type);
    if (key == NULL || (key->uri = strdup(failure->uri)) == NULL || (key->failure = strdup(failure->message)) == NULL) {
        akv_key_free(key);
        AKV_RAISE(failure->prov, failure->reason, "%s", failure->message);
        return NULL;
    }
    key->failure_reason = failure->reason;
    return key;
}

static int keyref_decode(AKV_DECODER_CTX *ctx, int type, OSSL_CORE_BIO *cin, OSSL_CALLBACK *data_cb, void *data_cbarg)
{
    unsigned char der[KEYREF_MAX_DER];
    size_t len = 0;
    const char *why = NULL;

    BIO *in = BIO_new_from_core_bio(ctx->prov->libctx, cin);
    if (in == NULL)
        return 1;
    int r;
    while (len < sizeof(der) && (r = BIO_read(in, der + len, (int)(sizeof(der) - len))) > 0)
        len += (size_t)r;
    BIO_free(in);
    char *uri = akv_keyref_parse(der, len, &why);
    if (uri == NULL) {
        /* This decoder is only reached for our structure name, so a parse failure is a real error. */
        AKV_RAISE(ctx->prov, AKV_R_BAD_KEY_REFERENCE,
                  "AKV KEY REFERENCE block is malformed (%s): write it again with `bin/akv keyref URI --out FILE`",
                  why);
        return 0;
    }
    AKV_KEY_FAILURE failure;
    if (recent_failure(ctx->prov, uri, &failure)) {
        free(uri);
        return pass_failure(type, &failure, data_cb, data_cbarg);
    }
    AKV_KEY *key = akv_describe_recent(ctx->prov, uri);
    if (key == NULL)
        record_failure(ctx->prov, uri, &failure);
    free(uri);
    if (key == NULL)
        return pass_failure(type, &failure, data_cb, data_cbarg);
    if (key->type != type) {
        /* Another of our decoders (RSA / EC / AES) handles this key. */
        akv_key_free(key);
        return 1;
    }
    return akv_pass_key_reference(key, data_cb, data_cbarg);
}

static int keyref_to_rsa_decode(void *vctx, OSSL_CORE_BIO *cin, int selection, OSSL_CALLBACK *data_cb, void *data_cbarg,
                                OSSL_PASSPHRASE_CALLBACK *pw_cb, void *pw_cbarg)
{
    (void)selection;
    (void)pw_cb;
    (void)pw_cbarg;
    return keyref_decode(vctx, AKV_KEY_TYPE_RSA, cin, data_cb, data_cbarg);
}

static int keyref_to_ec_decode(void *vctx, OSSL_CORE_BIO *cin, int selection, OSSL_CALLBACK *data_cb, void *data_cbarg,
                               OSSL_PASSPHRASE_CALLBACK *pw_cb, void *pw_cbarg)
{
    (void)selection;
    (void)pw_cb;
    (void)pw_cbarg;
    return keyref_decode(vctx, AKV_KEY_TYPE_EC, cin, data_cb, data_cbarg);
}

static int keyref_to_aes_decode(void *vctx, OSSL_CORE_BIO *cin, int selection, OSSL_CALLBACK *data_cb, void *data_cbarg,
                                OSSL_PASSPHRASE_CALLBACK *pw_cb, void *pw_cbarg)
{
    (void)selection;
    (void)pw_cb;
    (void)pw_cbarg;
    return keyref_decode(vctx, AKV_KEY_TYPE_AES, cin, data_cb, data_cbarg);
}

const OSSL_DISPATCH akv_pem_to_der_decoder_functions[] = {
    {OSSL_FUNC_DECODER_NEWCTX, (void (*)(void))decoder_newctx},
    {OSSL_FUNC_DECODER_FREECTX, (void (*)(void))decoder_freectx},
    {OSSL_FUNC_DECODER_DECODE, (void (*)(void))pem_to_der_decode},
    {0, NULL},
};

const OSSL_DISPATCH akv_keyref_to_rsa_decoder_functions[] = {
    {OSSL_FUNC_DECODER_NEWCTX, (void (*)(void))decoder_newctx},
    {OSSL_FUNC_DECODER_FREECTX, (void (*)(void))decoder_freectx},
    {OSSL_FUNC_DECODER_DECODE, (void (*)(void))keyref_to_rsa_decode},
    {0, NULL},
};

const OSSL_DISPATCH akv_keyref_to_ec_decoder_functions[] = {
    {OSSL_FUNC_DECODER_NEWCTX, (void (*)(void))decoder_newctx},
    {OSSL_FUNC_DECODER_FREECTX, (void (*)(void))decoder_freectx},
    {OSSL_FUNC_DECODER_DECODE, (void (*)(void))keyref_to_ec_decode},
    {0, NULL},
};

const OSSL_DISPATCH akv_keyref_to_aes_decoder_functions[] = {
    {OSSL_FUNC_DECODER_NEWCTX, (void (*)(void))decoder_newctx},
    {OSSL_FUNC_DECODER_FREECTX, (void (*)(void))decoder_freectx},
    {OSSL_FUNC_DECODER_DECODE, (void (*)(void))keyref_to_aes_decode},
    {0, NULL},
};
