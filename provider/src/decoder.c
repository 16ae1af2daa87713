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
 */
#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/core_object.h>
#include <openssl/params.h>
#include <openssl/pem.h>
#include <stdlib.h>
#include <string.h>

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
    AKV_KEY *key = akv_describe_recent(ctx->prov, uri);
    free(uri);
    if (key == NULL)
        return 0;
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
