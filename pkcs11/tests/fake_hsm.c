/* The fake agent of the module tests (fake_hsm.h). */
#include "fake_hsm.h"

#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fake_agent.h"
#include "frame.h"

#define NKEYS 5
static struct {
    const char *name;
    uint32_t type;
    const char *curve;
    const char *ops;
    EVP_PKEY *pkey;
    int version;
    X509 *cert;
    EVP_PKEY *previous; /* the version before the last rotation (version - 1), NULL if none */
} keys[NKEYS] = {
    {"rsa2048", AKV_KEY_TYPE_RSA, NULL, "sign,verify,encrypt,decrypt,wrapKey,unwrapKey", NULL, 1, NULL, NULL},
    {"ec256", AKV_KEY_TYPE_EC, "P-256", "sign,verify", NULL, 1, NULL, NULL},
    {"ec384", AKV_KEY_TYPE_EC, "P-384", "sign", NULL, 1, NULL, NULL},
    {"rsanosign", AKV_KEY_TYPE_RSA, NULL, "decrypt", NULL, 1, NULL, NULL},
    {"aes256", AKV_KEY_TYPE_AES, NULL, "wrapKey,unwrapKey", NULL, 1, NULL, NULL},
};
static unsigned char aes_key[32]; /* aes256's key material */

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static test_server server; /* the provider tests' fake agent (fake_agent.c), answering with answer() */
static volatile int throttled;
static char last_alg[32];

static EVP_PKEY *generate(uint32_t type, const char *curve)
{
    if (type == AKV_KEY_TYPE_RSA)
        return EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    return EVP_PKEY_Q_keygen(NULL, NULL, "EC", strcmp(curve, "P-256") == 0 ? "P-256" : "P-384");
}

static X509 *self_signed(EVP_PKEY *pkey, const char *cn)
{
    X509 *x = X509_new();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 4242);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, pkey);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(x, X509_get_subject_name(x));
    X509_sign(x, pkey, EVP_sha256());
    return x;
}

static void put_status(akv_buf *out, uint32_t status, const char *message)
{
    akv_frame_put_u32(out, AKV_TAG_STATUS, status);
    if (message != NULL)
        akv_frame_put_str(out, AKV_TAG_MESSAGE, message);
}

static void version_of(int k, char *out)
{
    snprintf(out, 33, "%032x", keys[k].version);
}

/* managedhsm:hsm1:NAME[?version=V] -> key index, or -1 (unknown key or version); *pkey is the
 * key of that version (the previous one's when V names it). */
static int find_key_version(const akv_field *uri, EVP_PKEY **pkey, int *version);

static int find_key(const akv_field *uri)
{
    EVP_PKEY *unused;
    int v;
    return find_key_version(uri, &unused, &v);
}

static int find_key_version(const akv_field *uri, EVP_PKEY **pkey, int *version)
{
    char text[256];
    if (uri == NULL || uri->len >= sizeof(text))
        return -1;
    memcpy(text, uri->value, uri->len);
    text[uri->len] = '\0';
    if (strncmp(text, "managedhsm:hsm1:", 16) != 0)
        return -1;
    char *name = text + 16;
    char *q = strchr(name, '?');
    if (q != NULL)
        *q++ = '\0';
    for (int k = 0; k < NKEYS; k++) {
        if (strcmp(keys[k].name, name) != 0)
            continue;
        char v[33], prev[33];
        version_of(k, v);
        snprintf(prev, sizeof(prev), "%032x", keys[k].version - 1);
        *pkey = keys[k].pkey;
        *version = keys[k].version;
        if (q == NULL || (strncmp(q, "version=", 8) == 0 && strcmp(q + 8, v) == 0))
            return k;
        if (keys[k].previous != NULL && strncmp(q, "version=", 8) == 0 && strcmp(q + 8, prev) == 0) {
            *pkey = keys[k].previous;
            *version = keys[k].version - 1;
            return k;
        }
        return -1;
    }
    return -1;
}

static void describe(akv_buf *out, const akv_frame *f)
{
    EVP_PKEY *pkey;
    int version;
    int k = find_key_version(akv_frame_get(f, AKV_TAG_URI), &pkey, &version);
    if (k < 0) {
        put_status(out, AKV_STATUS_KEY_NOT_FOUND, "key not found");
        return;
    }
    char v[33];
    snprintf(v, sizeof(v), "%032x", version);
    put_status(out, AKV_STATUS_OK, NULL);
    akv_frame_put_u32(out, AKV_TAG_KEY_TYPE, keys[k].type);
    akv_frame_put_u32(out, AKV_TAG_KEY_BITS, keys[k].pkey != NULL ? (uint32_t)EVP_PKEY_get_bits(keys[k].pkey) : 256u);
    if (keys[k].curve != NULL)
        akv_frame_put_str(out, AKV_TAG_CURVE, keys[k].curve);
    akv_frame_put_str(out, AKV_TAG_KEY_VERSION, v);
    akv_frame_put_str(out, AKV_TAG_KEY_OPS, keys[k].ops);
    if (pkey != NULL) {
        unsigned char *der = NULL;
        int n = i2d_PUBKEY(pkey, &der);
        akv_frame_put_bytes(out, AKV_TAG_PUBLIC_KEY, der, (size_t)n);
        OPENSSL_free(der);
    }
    if (keys[k].cert != NULL) {
        unsigned char *der = NULL;
        int n = i2d_X509(keys[k].cert, &der);
        akv_frame_put_bytes(out, AKV_TAG_CERTIFICATE, der, (size_t)n);
        OPENSSL_free(der);
    }
    akv_frame_put_str(out, AKV_TAG_KEY_ID, "https://hsm1.managedhsm.azure.net/keys/x");
}

/* The request's ALG (kept as the last one seen). */
static void read_alg(const akv_frame *f, char alg[16])
{
    const akv_field *a = akv_frame_get(f, AKV_TAG_ALG);
    alg[0] = '\0';
    if (a != NULL && a->len < 16) {
        memcpy(alg, a->value, a->len);
        alg[a->len] = '\0';
    }
    snprintf(last_alg, sizeof(last_alg), "%s", alg);
}

static const EVP_MD *md_for(const char *alg)
{
    const char *n = alg + strlen(alg) - 3;
    if (strncmp(alg, "ES256K", 6) == 0)
        return EVP_sha256();
    return strcmp(n, "256") == 0 ? EVP_sha256() : strcmp(n, "384") == 0 ? EVP_sha384() : EVP_sha512();
}

static void sign(akv_buf *out, const akv_frame *f)
{
    EVP_PKEY *pkey;
    int version;
    int k = find_key_version(akv_frame_get(f, AKV_TAG_URI), &pkey, &version);
    const akv_field *in = akv_frame_get(f, AKV_TAG_INPUT);
    char alg[16];
    read_alg(f, alg);
    if (k < 0 || pkey == NULL || in == NULL) {
        put_status(out, AKV_STATUS_KEY_NOT_FOUND, "key not found");
        return;
    }
    const EVP_MD *md = md_for(alg);
    if (in->len != (size_t)EVP_MD_get_size(md)) {
        put_status(out, AKV_STATUS_BAD_PARAMETER, "digest length does not match the algorithm");
        return;
    }
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(pkey, NULL);
    EVP_PKEY_sign_init(ctx);
    EVP_PKEY_CTX_set_signature_md(ctx, md);
    if (alg[0] == 'P') {
        EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PSS_PADDING);
        EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, md);
        EVP_PKEY_CTX_set_rsa_pss_saltlen(ctx, EVP_MD_get_size(md));
    } else if (alg[0] == 'R') {
        EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING);
    }
    unsigned char sig[1024];
    size_t sig_len = sizeof(sig);
    if (EVP_PKEY_sign(ctx, sig, &sig_len, in->value, in->len) <= 0) {
        EVP_PKEY_CTX_free(ctx);
        put_status(out, AKV_STATUS_BAD_PARAMETER, "sign failed");
        return;
    }
    EVP_PKEY_CTX_free(ctx);
    put_status(out, AKV_STATUS_OK, NULL);
    if (alg[0] == 'E') { /* DER to raw r||s, as Azure answers */
        const unsigned char *p = sig;
        ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)sig_len);
        int half = (EVP_PKEY_get_bits(pkey) + 7) / 8;
        unsigned char raw[132];
        BN_bn2binpad(ECDSA_SIG_get0_r(es), raw, half);
        BN_bn2binpad(ECDSA_SIG_get0_s(es), raw + half, half);
        ECDSA_SIG_free(es);
        akv_frame_put_bytes(out, AKV_TAG_OUTPUT, raw, (size_t)(2 * half));
    } else {
        akv_frame_put_bytes(out, AKV_TAG_OUTPUT, sig, sig_len);
    }
    char v[33];
    snprintf(v, sizeof(v), "%032x", version);
    akv_frame_put_str(out, AKV_TAG_KEY_VERSION, v);
}

static void decrypt(akv_buf *out, const akv_frame *f)
{
    int k = find_key(akv_frame_get(f, AKV_TAG_URI));
    const akv_field *in = akv_frame_get(f, AKV_TAG_INPUT);
    char alg[16];
    read_alg(f, alg);
    if (k < 0 || keys[k].type != AKV_KEY_TYPE_RSA || in == NULL) {
        put_status(out, AKV_STATUS_KEY_NOT_FOUND, "key not found");
        return;
    }
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(keys[k].pkey, NULL);
    EVP_PKEY_decrypt_init(ctx);
    if (strcmp(alg, "RSA1_5") == 0) {
        EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING);
    } else {
        EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_OAEP_PADDING);
        const EVP_MD *md = strcmp(alg, "RSA-OAEP-256") == 0 ? EVP_sha256() : EVP_sha1();
        EVP_PKEY_CTX_set_rsa_oaep_md(ctx, md);
        EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, md);
    }
    unsigned char plain[512];
    size_t plain_len = sizeof(plain);
    int ok = EVP_PKEY_decrypt(ctx, plain, &plain_len, in->value, in->len) > 0;
    EVP_PKEY_CTX_free(ctx);
    if (!ok) {
        put_status(out, AKV_STATUS_BAD_PARAMETER, "decryption failed");
        return;
    }
    put_status(out, AKV_STATUS_OK, NULL);
    akv_frame_put_bytes(out, AKV_TAG_OUTPUT, plain, plain_len);
}

/* WRAP / UNWRAP: AES key wrap (RFC 3394) with aes256, RSA with rsa2048, as the HSM does. */
static void wrap(akv_buf *out, const akv_frame *f, int unwrap)
{
    int k = find_key(akv_frame_get(f, AKV_TAG_URI));
    const akv_field *in = akv_frame_get(f, AKV_TAG_INPUT);
    char alg[16];
    read_alg(f, alg);
    if (k < 0 || in == NULL) {
        put_status(out, AKV_STATUS_KEY_NOT_FOUND, "key not found");
        return;
    }
    unsigned char result[1024];
    int n = 0, ok = 0;
    if (keys[k].type == AKV_KEY_TYPE_AES && strcmp(alg, "A256KW") == 0 && in->len <= 512 + 8) {
        EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
        ok = unwrap ? EVP_DecryptInit_ex(c, EVP_aes_256_wrap(), NULL, aes_key, NULL) == 1
                    : EVP_EncryptInit_ex(c, EVP_aes_256_wrap(), NULL, aes_key, NULL) == 1;
        ok = ok &&
             (unwrap ? EVP_DecryptUpdate(c, result, &n, in->value, (int)in->len)
                     : EVP_EncryptUpdate(c, result, &n, in->value, (int)in->len)) == 1 &&
             n > 0;
        EVP_CIPHER_CTX_free(c);
    } else if (keys[k].type == AKV_KEY_TYPE_RSA && unwrap) {
        decrypt(out, f);
        return;
    } else if (keys[k].type == AKV_KEY_TYPE_RSA) {
        EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(keys[k].pkey, NULL);
        size_t len = sizeof(result);
        EVP_PKEY_encrypt_init(ctx);
        EVP_PKEY_CTX_set_rsa_padding(ctx, strcmp(alg, "RSA1_5") == 0 ? RSA_PKCS1_PADDING : RSA_PKCS1_OAEP_PADDING);
        if (strcmp(alg, "RSA-OAEP-256") == 0) {
            EVP_PKEY_CTX_set_rsa_oaep_md(ctx, EVP_sha256());
            EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, EVP_sha256());
        }
        ok = EVP_PKEY_encrypt(ctx, result, &len, in->value, in->len) > 0;
        n = (int)len;
        EVP_PKEY_CTX_free(ctx);
    }
    if (!ok) {
        put_status(out, AKV_STATUS_BAD_PARAMETER, unwrap ? "unwrap failed: integrity check" : "wrap failed");
        return;
    }
    put_status(out, AKV_STATUS_OK, NULL);
    akv_frame_put_bytes(out, AKV_TAG_OUTPUT, result, (size_t)n);
}

static void answer(akv_buf *out, uint8_t op, const akv_frame *f, void *ctx)
{
    (void)ctx;
    pthread_mutex_lock(&lock);
    switch (op) {
    case AKV_OP_LIST_VAULTS:
        put_status(out, AKV_STATUS_OK, NULL);
        akv_frame_put_str(out, AKV_TAG_VAULT_NAMES, "hsm1");
        break;
    case AKV_OP_LIST:
        put_status(out, AKV_STATUS_OK, NULL);
        for (int k = 0; k < NKEYS; k++)
            akv_frame_put_str(out, AKV_TAG_KEY_NAME, keys[k].name);
        break;
    case AKV_OP_DESCRIBE:
        describe(out, f);
        break;
    case AKV_OP_WRAP:
    case AKV_OP_UNWRAP:
        wrap(out, f, op == AKV_OP_UNWRAP);
        break;
    case AKV_OP_SIGN:
    case AKV_OP_DECRYPT:
        if (throttled) {
            put_status(out, AKV_STATUS_THROTTLED, "HSM hsm1 throttled the operation (429, retried 5 times)");
            akv_frame_put_str(out, AKV_TAG_HINT, "lower the request rate");
        } else if (op == AKV_OP_SIGN) {
            sign(out, f);
        } else {
            decrypt(out, f);
        }
        break;
    default:
        put_status(out, AKV_STATUS_BAD_REQUEST, "unknown op");
    }
    pthread_mutex_unlock(&lock);
}

const char *fake_hsm_start(void)
{
    for (int k = 0; k < NKEYS; k++) {
        if (keys[k].type != AKV_KEY_TYPE_AES && keys[k].pkey == NULL)
            keys[k].pkey = generate(keys[k].type, keys[k].curve);
    }
    if (keys[0].cert == NULL)
        keys[0].cert = self_signed(keys[0].pkey, "rsa2048 test");
    RAND_bytes(aes_key, sizeof(aes_key));
    return server_start_answering(&server, socket_path(), MODE_ECHO, answer, NULL) ? server.path : NULL;
}

void fake_hsm_stop(void)
{
    server_stop(&server);
    socket_dir_remove();
    for (int k = 0; k < NKEYS; k++) {
        EVP_PKEY_free(keys[k].pkey);
        keys[k].pkey = NULL;
        X509_free(keys[k].cert);
        keys[k].cert = NULL;
        EVP_PKEY_free(keys[k].previous);
        keys[k].previous = NULL;
    }
}

void fake_hsm_set_mode(int m)
{
    throttled = m == FAKE_THROTTLED;
    server.mode = m == FAKE_SILENT ? MODE_SILENT : m == FAKE_GARBAGE ? MODE_GARBAGE : MODE_ECHO;
}

int fake_hsm_requests(int op)
{
    pthread_mutex_lock(&server.lock);
    int n = server.op_requests[op & 0xff];
    pthread_mutex_unlock(&server.lock);
    return n;
}

void fake_hsm_reset_counts(void)
{
    pthread_mutex_lock(&server.lock);
    memset(server.op_requests, 0, sizeof(server.op_requests));
    pthread_mutex_unlock(&server.lock);
}

const char *fake_hsm_last_alg(void)
{
    return last_alg;
}

const unsigned char *fake_hsm_aes_key(void)
{
    return aes_key;
}

EVP_PKEY *fake_hsm_previous_key(const char *name)
{
    for (int k = 0; k < NKEYS; k++) {
        if (strcmp(keys[k].name, name) == 0)
            return keys[k].previous;
    }
    return NULL;
}

EVP_PKEY *fake_hsm_key(const char *name)
{
    for (int k = 0; k < NKEYS; k++) {
        if (strcmp(keys[k].name, name) == 0)
            return keys[k].pkey;
    }
    return NULL;
}

void fake_hsm_rotate(const char *name)
{
    pthread_mutex_lock(&lock);
    for (int k = 0; k < NKEYS; k++) {
        if (strcmp(keys[k].name, name) == 0 && keys[k].pkey != NULL) {
            EVP_PKEY_free(keys[k].previous);
            keys[k].previous = keys[k].pkey;
            keys[k].pkey = generate(keys[k].type, keys[k].curve);
            keys[k].version++;
        }
    }
    pthread_mutex_unlock(&lock);
}
