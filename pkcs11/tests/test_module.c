/*
 * The module's C tests: libakv_pkcs11.so loaded with dlopen, as a PKCS#11 application loads it,
 * against the fake agent (fake_hsm.c) whose keys are real, so every signature is checked with
 * OpenSSL. Covers slots and tokens, objects and attribute rules, each mechanism, what is refused
 * before anything is sent, threads, fork, and an agent that is down, silent, garbled or throttled.
 * Usage: module_tests PATH/TO/libakv_pkcs11.so
 */
#include <dlfcn.h>
#include <openssl/ecdsa.h>
#include <openssl/rsa.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <p11-kit/pkcs11.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fake_hsm.h"
#include "frame.h"

static int failures;
#define CHECK(cond)                                                                                                    \
    do {                                                                                                               \
        if (!(cond)) {                                                                                                 \
            fprintf(stderr, "    %s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);                               \
            failures++;                                                                                                \
        }                                                                                                              \
    } while (0)
#define CHECK_RV(call, want)                                                                                           \
    do {                                                                                                               \
        CK_RV rv_ = (call);                                                                                            \
        if (rv_ != (want)) {                                                                                           \
            fprintf(stderr, "    %s:%d: %s returned 0x%lx, expected %s\n", __FILE__, __LINE__, #call,                  \
                    (unsigned long)rv_, #want);                                                                        \
            failures++;                                                                                                \
        }                                                                                                              \
    } while (0)

static CK_FUNCTION_LIST *p11;
static void *module;

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static CK_SESSION_HANDLE open_session(void)
{
    CK_SESSION_HANDLE s = 0;
    CHECK_RV(p11->C_OpenSession(0, CKF_SERIAL_SESSION, NULL, NULL, &s), CKR_OK);
    return s;
}

/* The handle of the object of `cls` labelled `label` (0 when none). */
static CK_OBJECT_HANDLE find(CK_SESSION_HANDLE s, CK_OBJECT_CLASS cls, const char *label)
{
    CK_ATTRIBUTE t[] = {{CKA_CLASS, &cls, sizeof(cls)}, {CKA_LABEL, (void *)label, strlen(label)}};
    CK_OBJECT_HANDLE h[4];
    CK_ULONG n = 0;
    CHECK_RV(p11->C_FindObjectsInit(s, t, 2), CKR_OK);
    CHECK_RV(p11->C_FindObjects(s, h, 4, &n), CKR_OK);
    CHECK_RV(p11->C_FindObjectsFinal(s), CKR_OK);
    CHECK(n <= 1);
    return n == 1 ? h[0] : 0;
}

static int verify_with(EVP_PKEY *pkey, const EVP_MD *md, int padding, const unsigned char *data, size_t len,
                       const unsigned char *sig, size_t sig_len)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL;
    int ok = EVP_DigestVerifyInit(ctx, &pctx, md, NULL, pkey) == 1;
    if (ok && padding != 0) {
        EVP_PKEY_CTX_set_rsa_padding(pctx, padding);
        if (padding == RSA_PKCS1_PSS_PADDING)
            EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST);
    }
    ok = ok && EVP_DigestVerify(ctx, sig, sig_len, data, len) == 1;
    EVP_MD_CTX_free(ctx);
    return ok;
}

/* raw r||s -> DER, then OpenSSL's ECDSA verification over a digest. */
static int verify_ecdsa_digest(EVP_PKEY *pkey, const unsigned char *digest, size_t len, const unsigned char *sig,
                               size_t sig_len)
{
    ECDSA_SIG *es = ECDSA_SIG_new();
    ECDSA_SIG_set0(es, BN_bin2bn(sig, (int)sig_len / 2, NULL), BN_bin2bn(sig + sig_len / 2, (int)sig_len / 2, NULL));
    unsigned char *der = NULL;
    int der_len = i2d_ECDSA_SIG(es, &der);
    ECDSA_SIG_free(es);
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(pkey, NULL);
    int ok = EVP_PKEY_verify_init(ctx) == 1 && EVP_PKEY_verify(ctx, der, (size_t)der_len, digest, len) == 1;
    EVP_PKEY_CTX_free(ctx);
    OPENSSL_free(der);
    return ok;
}

static void test_info_and_slots(void)
{
    CK_INFO info;
    CHECK_RV(p11->C_GetInfo(&info), CKR_OK);
    CHECK(info.cryptokiVersion.major == 2 && info.cryptokiVersion.minor == 40);
    CHECK(memcmp(info.manufacturerID, "akv ", 4) == 0);
    CHECK_RV(p11->C_Initialize(NULL), CKR_CRYPTOKI_ALREADY_INITIALIZED);

    CK_ULONG n = 0;
    CHECK_RV(p11->C_GetSlotList(CK_TRUE, NULL, &n), CKR_OK);
    CHECK(n == 1);
    CK_SLOT_ID slots[2];
    CK_ULONG small = 0;
    CHECK_RV(p11->C_GetSlotList(CK_TRUE, slots, &small), CKR_BUFFER_TOO_SMALL);
    CHECK(small == 1);
    CK_TOKEN_INFO ti;
    CHECK_RV(p11->C_GetTokenInfo(0, &ti), CKR_OK);
    CHECK(memcmp(ti.label, "hsm1    ", 8) == 0);
    CHECK(!(ti.flags & CKF_LOGIN_REQUIRED));
    CHECK(!(ti.flags & CKF_RNG));
    CHECK((ti.flags & CKF_TOKEN_INITIALIZED) != 0);
    CHECK_RV(p11->C_GetTokenInfo(7, &ti), CKR_SLOT_ID_INVALID);

    CK_ULONG nm = 0;
    CHECK_RV(p11->C_GetMechanismList(0, NULL, &nm), CKR_OK);
    CK_MECHANISM_TYPE mechs[32];
    CHECK(nm > 0 && nm <= 32);
    CHECK_RV(p11->C_GetMechanismList(0, mechs, &nm), CKR_OK);
    int has_pss = 0, has_x509 = 0;
    for (CK_ULONG i = 0; i < nm; i++) {
        has_pss |= mechs[i] == CKM_SHA256_RSA_PKCS_PSS;
        has_x509 |= mechs[i] == CKM_RSA_X_509;
    }
    CHECK(has_pss && !has_x509); /* raw RSA is something the HSM cannot do */
    CK_MECHANISM_INFO mi;
    CHECK_RV(p11->C_GetMechanismInfo(0, CKM_ECDSA, &mi), CKR_OK);
    CHECK((mi.flags & CKF_SIGN) && mi.ulMinKeySize == 256 && mi.ulMaxKeySize == 521);
    CHECK_RV(p11->C_GetMechanismInfo(0, CKM_RSA_X_509, &mi), CKR_MECHANISM_INVALID);
    CK_BYTE rnd[8];
    CK_SESSION_HANDLE s = open_session();
    CHECK_RV(p11->C_GenerateRandom(s, rnd, sizeof(rnd)), CKR_RANDOM_NO_RNG);
    CK_SESSION_INFO si;
    CHECK_RV(p11->C_GetSessionInfo(s, &si), CKR_OK);
    CHECK(si.state == CKS_RO_PUBLIC_SESSION);
    CHECK_RV(p11->C_Login(s, CKU_USER, (CK_UTF8CHAR_PTR) "any", 3), CKR_OK);
    CHECK_RV(p11->C_GetSessionInfo(s, &si), CKR_OK);
    CHECK(si.state == CKS_RO_USER_FUNCTIONS);
    CHECK_RV(p11->C_Logout(s), CKR_OK);
    CHECK_RV(p11->C_CloseSession(s), CKR_OK);
    CHECK_RV(p11->C_CloseSession(s), CKR_SESSION_HANDLE_INVALID);
}

static void test_objects(void)
{
    CK_SESSION_HANDLE s = open_session();
    CK_OBJECT_HANDLE all[32];
    CK_ULONG n = 0;
    CHECK_RV(p11->C_FindObjectsInit(s, NULL, 0), CKR_OK);
    CHECK_RV(p11->C_FindObjectsInit(s, NULL, 0), CKR_OPERATION_ACTIVE);
    CHECK_RV(p11->C_FindObjects(s, all, 32, &n), CKR_OK);
    CHECK_RV(p11->C_FindObjectsFinal(s), CKR_OK);
    /* 4 asymmetric keys x (private + public) + 1 certificate + 1 secret key */
    CHECK(n == 10);

    CK_OBJECT_HANDLE priv = find(s, CKO_PRIVATE_KEY, "rsa2048"), pub = find(s, CKO_PUBLIC_KEY, "rsa2048");
    CK_OBJECT_HANDLE cert = find(s, CKO_CERTIFICATE, "rsa2048");
    CHECK(priv != 0 && pub != 0 && cert != 0 && priv != pub);
    CHECK(find(s, CKO_CERTIFICATE, "ec256") == 0);
    CHECK(find(s, CKO_SECRET_KEY, "aes256") != 0);
    CHECK(find(s, CKO_PRIVATE_KEY, "aes256") == 0);

    /* CKA_ID pairs the three, and is the SHA-1 of the public key bits (the certificate's SKI method). */
    unsigned char id1[32], id2[32], id3[32];
    CK_ATTRIBUTE a1 = {CKA_ID, id1, sizeof(id1)}, a2 = {CKA_ID, id2, sizeof(id2)}, a3 = {CKA_ID, id3, sizeof(id3)};
    CHECK_RV(p11->C_GetAttributeValue(s, priv, &a1, 1), CKR_OK);
    CHECK_RV(p11->C_GetAttributeValue(s, pub, &a2, 1), CKR_OK);
    CHECK_RV(p11->C_GetAttributeValue(s, cert, &a3, 1), CKR_OK);
    CHECK(a1.ulValueLen == 20 && a2.ulValueLen == 20 && a3.ulValueLen == 20);
    CHECK(memcmp(id1, id2, 20) == 0 && memcmp(id1, id3, 20) == 0);
    X509_PUBKEY *xp = NULL;
    X509_PUBKEY_set(&xp, fake_hsm_key("rsa2048"));
    const unsigned char *bits;
    int bits_len;
    X509_PUBKEY_get0_param(NULL, &bits, &bits_len, NULL, xp);
    unsigned char want[20];
    SHA1(bits, (size_t)bits_len, want);
    X509_PUBKEY_free(xp);
    CHECK(memcmp(id1, want, 20) == 0);

    /* The modulus is the key's; private parts are sensitive; unknown attributes say so. */
    unsigned char modulus[512];
    CK_BBOOL sensitive = 0, extractable = 1, private_ = 1, sign_ = 0;
    CK_ATTRIBUTE attrs[] = {
        {CKA_MODULUS, modulus, sizeof(modulus)},
        {CKA_SENSITIVE, &sensitive, 1},
        {CKA_EXTRACTABLE, &extractable, 1},
        {CKA_PRIVATE, &private_, 1},
        {CKA_SIGN, &sign_, 1},
    };
    CHECK_RV(p11->C_GetAttributeValue(s, priv, attrs, 5), CKR_OK);
    CHECK(attrs[0].ulValueLen == 256 && sensitive && !extractable && !private_ && sign_);
    BIGNUM *n_bn = NULL;
    EVP_PKEY_get_bn_param(fake_hsm_key("rsa2048"), "n", &n_bn);
    unsigned char nb[256];
    BN_bn2binpad(n_bn, nb, 256);
    BN_free(n_bn);
    CHECK(memcmp(nb, modulus, 256) == 0);
    unsigned char d[512];
    CK_ATTRIBUTE secret[] = {{CKA_PRIVATE_EXPONENT, d, sizeof(d)}, {CKA_LABEL, d, sizeof(d)}};
    CHECK_RV(p11->C_GetAttributeValue(s, priv, secret, 2), CKR_ATTRIBUTE_SENSITIVE);
    CHECK(secret[0].ulValueLen == CK_UNAVAILABLE_INFORMATION && secret[1].ulValueLen == 7);
    CK_ATTRIBUTE bogus = {CKA_EC_POINT, d, sizeof(d)};
    CHECK_RV(p11->C_GetAttributeValue(s, priv, &bogus, 1), CKR_ATTRIBUTE_TYPE_INVALID);
    CK_ATTRIBUTE tiny = {CKA_MODULUS, d, 10};
    CHECK_RV(p11->C_GetAttributeValue(s, pub, &tiny, 1), CKR_BUFFER_TOO_SMALL);
    CHECK(tiny.ulValueLen == CK_UNAVAILABLE_INFORMATION);
    CK_ATTRIBUTE query = {CKA_MODULUS, NULL, 0};
    CHECK_RV(p11->C_GetAttributeValue(s, pub, &query, 1), CKR_OK);
    CHECK(query.ulValueLen == 256);

    /* EC: the point as a DER OCTET STRING of the uncompressed point, the curve's OID. */
    CK_OBJECT_HANDLE ecpub = find(s, CKO_PUBLIC_KEY, "ec256");
    unsigned char point[128], params[32];
    CK_ATTRIBUTE ec[] = {{CKA_EC_POINT, point, sizeof(point)}, {CKA_EC_PARAMS, params, sizeof(params)}};
    CHECK_RV(p11->C_GetAttributeValue(s, ecpub, ec, 2), CKR_OK);
    CHECK(ec[0].ulValueLen == 67 && point[0] == 0x04 && point[1] == 65 && point[2] == 0x04);
    static const unsigned char p256[] = {0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07};
    CHECK(ec[1].ulValueLen == sizeof(p256) && memcmp(params, p256, sizeof(p256)) == 0);

    /* The certificate object carries the DER certificate. */
    unsigned char der[4096];
    CK_ATTRIBUTE value = {CKA_VALUE, der, sizeof(der)};
    CHECK_RV(p11->C_GetAttributeValue(s, cert, &value, 1), CKR_OK);
    const unsigned char *p = der;
    X509 *x = d2i_X509(NULL, &p, (long)value.ulValueLen);
    CHECK(x != NULL && EVP_PKEY_eq(X509_get0_pubkey(x), fake_hsm_key("rsa2048")) == 1);
    X509_free(x);

    CHECK_RV(p11->C_GetAttributeValue(s, 0x7fffff, &value, 1), CKR_OBJECT_HANDLE_INVALID);
    CHECK_RV(p11->C_CloseSession(s), CKR_OK);
}

static CK_RV sign(CK_SESSION_HANDLE s, CK_MECHANISM *m, CK_OBJECT_HANDLE key, const void *data, size_t len,
                  unsigned char *sig, CK_ULONG *sig_len)
{
    CK_RV rv = p11->C_SignInit(s, m, key);
    if (rv != CKR_OK)
        return rv;
    return p11->C_Sign(s, (CK_BYTE_PTR)data, len, sig, sig_len);
}

static void test_rsa_sign(void)
{
    CK_SESSION_HANDLE s = open_session();
    CK_OBJECT_HANDLE priv = find(s, CKO_PRIVATE_KEY, "rsa2048"), pub = find(s, CKO_PUBLIC_KEY, "rsa2048");
    EVP_PKEY *key = fake_hsm_key("rsa2048");
    static const char msg[] = "the message";
    unsigned char sig[512];
    CK_ULONG sig_len = 0;

    /* the size query and a small buffer leave the operation running; nothing is sent for them */
    CK_MECHANISM m = {CKM_SHA256_RSA_PKCS, NULL, 0};
    fake_hsm_reset_counts();
    CHECK_RV(p11->C_SignInit(s, &m, priv), CKR_OK);
    CHECK_RV(p11->C_SignInit(s, &m, priv), CKR_OPERATION_ACTIVE);
    CHECK_RV(p11->C_Sign(s, (CK_BYTE_PTR)msg, strlen(msg), NULL, &sig_len), CKR_OK);
    CHECK(sig_len == 256);
    sig_len = 10;
    CHECK_RV(p11->C_Sign(s, (CK_BYTE_PTR)msg, strlen(msg), sig, &sig_len), CKR_BUFFER_TOO_SMALL);
    CHECK(fake_hsm_requests(AKV_OP_SIGN) == 0);
    sig_len = sizeof(sig);
    CHECK_RV(p11->C_Sign(s, (CK_BYTE_PTR)msg, strlen(msg), sig, &sig_len), CKR_OK);
    CHECK(fake_hsm_requests(AKV_OP_SIGN) == 1 && strcmp(fake_hsm_last_alg(), "RS256") == 0);
    CHECK(verify_with(key, EVP_sha256(), RSA_PKCS1_PADDING, (const unsigned char *)msg, strlen(msg), sig, sig_len));
    CHECK_RV(p11->C_Sign(s, (CK_BYTE_PTR)msg, strlen(msg), sig, &sig_len), CKR_OPERATION_NOT_INITIALIZED);
    /* the module's own verification agrees, and rejects a flipped bit */
    CHECK_RV(p11->C_VerifyInit(s, &m, pub), CKR_OK);
    CHECK_RV(p11->C_Verify(s, (CK_BYTE_PTR)msg, strlen(msg), sig, sig_len), CKR_OK);
    sig[5] ^= 1;
    CHECK_RV(p11->C_VerifyInit(s, &m, pub), CKR_OK);
    CHECK_RV(p11->C_Verify(s, (CK_BYTE_PTR)msg, strlen(msg), sig, sig_len), CKR_SIGNATURE_INVALID);

    /* multi-part SHA-384 */
    CK_MECHANISM m384 = {CKM_SHA384_RSA_PKCS, NULL, 0};
    CHECK_RV(p11->C_SignInit(s, &m384, priv), CKR_OK);
    CHECK_RV(p11->C_SignUpdate(s, (CK_BYTE_PTR) "the ", 4), CKR_OK);
    CHECK_RV(p11->C_SignUpdate(s, (CK_BYTE_PTR) "message", 7), CKR_OK);
    sig_len = sizeof(sig);
    CHECK_RV(p11->C_SignFinal(s, sig, &sig_len), CKR_OK);
    CHECK(strcmp(fake_hsm_last_alg(), "RS384") == 0);
    CHECK(verify_with(key, EVP_sha384(), RSA_PKCS1_PADDING, (const unsigned char *)msg, strlen(msg), sig, sig_len));

    /* CKM_RSA_PKCS over a SHA-512 DigestInfo (what ssh -I sends for rsa-sha2-512) */
    unsigned char di[19 + 64] = {0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01,
                                 0x65, 0x03, 0x04, 0x02, 0x03, 0x05, 0x00, 0x04, 0x40};
    SHA512((const unsigned char *)msg, strlen(msg), di + 19);
    CK_MECHANISM raw = {CKM_RSA_PKCS, NULL, 0};
    sig_len = sizeof(sig);
    CHECK_RV(sign(s, &raw, priv, di, sizeof(di), sig, &sig_len), CKR_OK);
    CHECK(strcmp(fake_hsm_last_alg(), "RS512") == 0);
    CHECK(verify_with(key, EVP_sha512(), RSA_PKCS1_PADDING, (const unsigned char *)msg, strlen(msg), sig, sig_len));
    CHECK_RV(p11->C_VerifyInit(s, &raw, pub), CKR_OK);
    CHECK_RV(p11->C_Verify(s, di, sizeof(di), sig, sig_len), CKR_OK);

    /* a SHA-1 DigestInfo: the HSM has no SHA-1 signature; refused before anything is sent */
    static const unsigned char sha1_di[35] = {0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e,
                                              0x03, 0x02, 0x1a, 0x05, 0x00, 0x04, 0x14};
    fake_hsm_reset_counts();
    sig_len = sizeof(sig);
    CHECK_RV(sign(s, &raw, priv, sha1_di, sizeof(sha1_di), sig, &sig_len), CKR_DATA_INVALID);
    CHECK(fake_hsm_requests(AKV_OP_SIGN) == 0);
    CHECK_RV(p11->C_Sign(s, (CK_BYTE_PTR)msg, 1, sig, &sig_len), CKR_OPERATION_NOT_INITIALIZED);

    /* PSS: the HSM's parameters work, others are refused with CKR_MECHANISM_PARAM_INVALID */
    CK_RSA_PKCS_PSS_PARAMS pss = {CKM_SHA256, CKG_MGF1_SHA256, 32};
    CK_MECHANISM mpss = {CKM_SHA256_RSA_PKCS_PSS, &pss, sizeof(pss)};
    sig_len = sizeof(sig);
    CHECK_RV(sign(s, &mpss, priv, msg, strlen(msg), sig, &sig_len), CKR_OK);
    CHECK(strcmp(fake_hsm_last_alg(), "PS256") == 0);
    CHECK(verify_with(key, EVP_sha256(), RSA_PKCS1_PSS_PADDING, (const unsigned char *)msg, strlen(msg), sig, sig_len));
    CHECK_RV(p11->C_VerifyInit(s, &mpss, pub), CKR_OK);
    CHECK_RV(p11->C_Verify(s, (CK_BYTE_PTR)msg, strlen(msg), sig, sig_len), CKR_OK);
    fake_hsm_reset_counts();
    CK_RSA_PKCS_PSS_PARAMS salt20 = {CKM_SHA256, CKG_MGF1_SHA256, 20};
    CK_MECHANISM bad = {CKM_SHA256_RSA_PKCS_PSS, &salt20, sizeof(salt20)};
    CHECK_RV(p11->C_SignInit(s, &bad, priv), CKR_MECHANISM_PARAM_INVALID);
    CK_RSA_PKCS_PSS_PARAMS mismatch = {CKM_SHA384, CKG_MGF1_SHA384, 48};
    CK_MECHANISM bad2 = {CKM_SHA256_RSA_PKCS_PSS, &mismatch, sizeof(mismatch)};
    CHECK_RV(p11->C_SignInit(s, &bad2, priv), CKR_MECHANISM_PARAM_INVALID);
    CK_MECHANISM noparams = {CKM_RSA_PKCS_PSS, NULL, 0};
    CHECK_RV(p11->C_SignInit(s, &noparams, priv), CKR_MECHANISM_PARAM_INVALID);
    CK_MECHANISM x509 = {CKM_RSA_X_509, NULL, 0};
    CHECK_RV(p11->C_SignInit(s, &x509, priv), CKR_MECHANISM_INVALID);
    CK_MECHANISM sha1 = {CKM_SHA1_RSA_PKCS, NULL, 0};
    CHECK_RV(p11->C_SignInit(s, &sha1, priv), CKR_MECHANISM_INVALID);
    CK_MECHANISM ecdsa = {CKM_ECDSA, NULL, 0};
    CHECK_RV(p11->C_SignInit(s, &ecdsa, priv), CKR_KEY_TYPE_INCONSISTENT);
    CHECK(fake_hsm_requests(AKV_OP_SIGN) == 0);
    /* a public key cannot sign; a key whose key_ops lack sign is refused at init */
    CHECK_RV(p11->C_SignInit(s, &m, pub), CKR_KEY_HANDLE_INVALID);
    CHECK_RV(p11->C_SignInit(s, &m, find(s, CKO_PRIVATE_KEY, "rsanosign")), CKR_KEY_FUNCTION_NOT_PERMITTED);
    CHECK_RV(p11->C_CloseSession(s), CKR_OK);
}

static void test_ecdsa(void)
{
    CK_SESSION_HANDLE s = open_session();
    CK_OBJECT_HANDLE priv = find(s, CKO_PRIVATE_KEY, "ec256"), pub = find(s, CKO_PUBLIC_KEY, "ec256");
    EVP_PKEY *key = fake_hsm_key("ec256");
    static const char msg[] = "ecdsa message";
    unsigned char sig[256];
    CK_ULONG sig_len = sizeof(sig);
    CK_MECHANISM m = {CKM_ECDSA_SHA256, NULL, 0};
    CHECK_RV(sign(s, &m, priv, msg, strlen(msg), sig, &sig_len), CKR_OK);
    CHECK(sig_len == 64 && strcmp(fake_hsm_last_alg(), "ES256") == 0);
    unsigned char h[64];
    SHA256((const unsigned char *)msg, strlen(msg), h);
    CHECK(verify_ecdsa_digest(key, h, 32, sig, sig_len));
    CHECK_RV(p11->C_VerifyInit(s, &m, pub), CKR_OK);
    CHECK_RV(p11->C_Verify(s, (CK_BYTE_PTR)msg, strlen(msg), sig, sig_len), CKR_OK);

    /* CKM_ECDSA over a SHA-1 digest (20 bytes) and a SHA-512 one (64): the same ECDSA numbers
     * padded or cut to the HSM's 32 bytes, so OpenSSL verifies them over the original input */
    CK_MECHANISM raw = {CKM_ECDSA, NULL, 0};
    SHA1((const unsigned char *)msg, strlen(msg), h);
    sig_len = sizeof(sig);
    CHECK_RV(sign(s, &raw, priv, h, 20, sig, &sig_len), CKR_OK);
    CHECK(verify_ecdsa_digest(key, h, 20, sig, sig_len));
    SHA512((const unsigned char *)msg, strlen(msg), h);
    sig_len = sizeof(sig);
    CHECK_RV(sign(s, &raw, priv, h, 64, sig, &sig_len), CKR_OK);
    CHECK(verify_ecdsa_digest(key, h, 64, sig, sig_len));

    /* P-384 with SHA-256 and ES384 */
    CK_OBJECT_HANDLE p384 = find(s, CKO_PRIVATE_KEY, "ec384");
    sig_len = sizeof(sig);
    CHECK_RV(sign(s, &m, p384, msg, strlen(msg), sig, &sig_len), CKR_OK);
    CHECK(sig_len == 96 && strcmp(fake_hsm_last_alg(), "ES384") == 0);
    SHA256((const unsigned char *)msg, strlen(msg), h);
    CHECK(verify_ecdsa_digest(fake_hsm_key("ec384"), h, 32, sig, sig_len));
    CK_MECHANISM rsa = {CKM_SHA256_RSA_PKCS, NULL, 0};
    CHECK_RV(p11->C_SignInit(s, &rsa, priv), CKR_KEY_TYPE_INCONSISTENT);
    CHECK_RV(p11->C_CloseSession(s), CKR_OK);
}

static void test_decrypt(void)
{
    CK_SESSION_HANDLE s = open_session();
    CK_OBJECT_HANDLE priv = find(s, CKO_PRIVATE_KEY, "rsa2048");
    EVP_PKEY *key = fake_hsm_key("rsa2048");
    static const unsigned char secret[] = "a 32-byte session key, for a test";
    for (int oaep256 = 0; oaep256 < 2; oaep256++) {
        EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(key, NULL);
        EVP_PKEY_encrypt_init(ctx);
        EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_OAEP_PADDING);
        EVP_PKEY_CTX_set_rsa_oaep_md(ctx, oaep256 ? EVP_sha256() : EVP_sha1());
        EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, oaep256 ? EVP_sha256() : EVP_sha1());
        unsigned char ct[256];
        size_t ct_len = sizeof(ct);
        CHECK(EVP_PKEY_encrypt(ctx, ct, &ct_len, secret, sizeof(secret)) == 1);
        EVP_PKEY_CTX_free(ctx);
        CK_RSA_PKCS_OAEP_PARAMS params = {oaep256 ? CKM_SHA256 : CKM_SHA_1, oaep256 ? CKG_MGF1_SHA256 : CKG_MGF1_SHA1,
                                          CKZ_DATA_SPECIFIED, NULL, 0};
        CK_MECHANISM m = {CKM_RSA_PKCS_OAEP, &params, sizeof(params)};
        unsigned char out[256];
        CK_ULONG out_len = 0;
        fake_hsm_reset_counts();
        CHECK_RV(p11->C_DecryptInit(s, &m, priv), CKR_OK);
        CHECK_RV(p11->C_Decrypt(s, ct, ct_len, NULL, &out_len), CKR_OK);
        CHECK(out_len == 256);
        out_len = 4; /* too small: the plaintext is kept, the retry does not ask the HSM again */
        CHECK_RV(p11->C_Decrypt(s, ct, ct_len, out, &out_len), CKR_BUFFER_TOO_SMALL);
        CHECK(out_len == sizeof(secret));
        CHECK_RV(p11->C_Decrypt(s, ct, ct_len, out, &out_len), CKR_OK);
        CHECK(out_len == sizeof(secret) && memcmp(out, secret, sizeof(secret)) == 0);
        CHECK(fake_hsm_requests(AKV_OP_DECRYPT) == 1);
        CHECK(strcmp(fake_hsm_last_alg(), oaep256 ? "RSA-OAEP-256" : "RSA-OAEP") == 0);
    }
    /* a label, or SHA-384, is not what the HSM decrypts */
    CK_RSA_PKCS_OAEP_PARAMS label = {CKM_SHA256, CKG_MGF1_SHA256, CKZ_DATA_SPECIFIED, "lbl", 3};
    CK_MECHANISM m = {CKM_RSA_PKCS_OAEP, &label, sizeof(label)};
    CHECK_RV(p11->C_DecryptInit(s, &m, priv), CKR_MECHANISM_PARAM_INVALID);
    CK_RSA_PKCS_OAEP_PARAMS sha384 = {CKM_SHA384, CKG_MGF1_SHA384, CKZ_DATA_SPECIFIED, NULL, 0};
    m.pParameter = &sha384;
    CHECK_RV(p11->C_DecryptInit(s, &m, priv), CKR_MECHANISM_PARAM_INVALID);
    /* a wrong-length ciphertext is refused before anything is sent */
    CK_MECHANISM pkcs = {CKM_RSA_PKCS, NULL, 0};
    unsigned char out[256];
    CK_ULONG out_len = sizeof(out);
    fake_hsm_reset_counts();
    CHECK_RV(p11->C_DecryptInit(s, &pkcs, priv), CKR_OK);
    CHECK_RV(p11->C_Decrypt(s, (CK_BYTE_PTR) "short", 5, out, &out_len), CKR_ENCRYPTED_DATA_LEN_RANGE);
    CHECK(fake_hsm_requests(AKV_OP_DECRYPT) == 0);
    CHECK_RV(p11->C_DecryptInit(s, &pkcs, find(s, CKO_PRIVATE_KEY, "ec256")), CKR_KEY_FUNCTION_NOT_PERMITTED);
    CHECK_RV(p11->C_CloseSession(s), CKR_OK);
}

static void test_digest(void)
{
    CK_SESSION_HANDLE s = open_session();
    CK_MECHANISM m = {CKM_SHA384, NULL, 0};
    unsigned char out[64], want[48];
    CK_ULONG len = 0;
    SHA384((const unsigned char *)"abc", 3, want);
    CHECK_RV(p11->C_DigestInit(s, &m), CKR_OK);
    CHECK_RV(p11->C_DigestInit(s, &m), CKR_OPERATION_ACTIVE);
    CHECK_RV(p11->C_Digest(s, (CK_BYTE_PTR) "abc", 3, NULL, &len), CKR_OK);
    CHECK(len == 48);
    len = 10;
    CHECK_RV(p11->C_Digest(s, (CK_BYTE_PTR) "abc", 3, out, &len), CKR_BUFFER_TOO_SMALL);
    len = sizeof(out);
    CHECK_RV(p11->C_Digest(s, (CK_BYTE_PTR) "abc", 3, out, &len), CKR_OK);
    CHECK(len == 48 && memcmp(out, want, 48) == 0);
    CHECK_RV(p11->C_DigestInit(s, &m), CKR_OK);
    CHECK_RV(p11->C_DigestUpdate(s, (CK_BYTE_PTR) "a", 1), CKR_OK);
    CHECK_RV(p11->C_DigestUpdate(s, (CK_BYTE_PTR) "bc", 2), CKR_OK);
    len = sizeof(out);
    CHECK_RV(p11->C_DigestFinal(s, out, &len), CKR_OK);
    CHECK(len == 48 && memcmp(out, want, 48) == 0);
    CK_MECHANISM sha1 = {CKM_SHA_1, NULL, 0};
    CHECK_RV(p11->C_DigestInit(s, &sha1), CKR_MECHANISM_INVALID);
    CHECK_RV(p11->C_CloseSession(s), CKR_OK);
}

typedef struct {
    int ok;
} thread_result;

static void *sign_in_thread(void *arg)
{
    thread_result *r = arg;
    CK_SESSION_HANDLE s = 0;
    r->ok = 0;
    if (p11->C_OpenSession(0, CKF_SERIAL_SESSION, NULL, NULL, &s) != CKR_OK)
        return NULL;
    CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
    CK_ATTRIBUTE t[] = {{CKA_CLASS, &cls, sizeof(cls)}, {CKA_LABEL, "ec256", 5}};
    CK_OBJECT_HANDLE key;
    CK_ULONG n = 0;
    p11->C_FindObjectsInit(s, t, 2);
    p11->C_FindObjects(s, &key, 1, &n);
    p11->C_FindObjectsFinal(s);
    int good = n == 1;
    for (int i = 0; good && i < 25; i++) {
        CK_MECHANISM m = {CKM_ECDSA_SHA256, NULL, 0};
        unsigned char sig[128];
        CK_ULONG sig_len = sizeof(sig);
        char msg[32];
        snprintf(msg, sizeof(msg), "thread message %d", i);
        good = p11->C_SignInit(s, &m, key) == CKR_OK &&
               p11->C_Sign(s, (CK_BYTE_PTR)msg, strlen(msg), sig, &sig_len) == CKR_OK && sig_len == 64;
        unsigned char h[32];
        SHA256((const unsigned char *)msg, strlen(msg), h);
        good = good && verify_ecdsa_digest(fake_hsm_key("ec256"), h, 32, sig, sig_len);
    }
    p11->C_CloseSession(s);
    r->ok = good;
    return NULL;
}

static void test_threads(void)
{
    pthread_t t[8];
    thread_result r[8];
    for (int i = 0; i < 8; i++)
        pthread_create(&t[i], NULL, sign_in_thread, &r[i]);
    int ok = 0;
    for (int i = 0; i < 8; i++) {
        pthread_join(t[i], NULL);
        ok += r[i].ok;
    }
    CHECK(ok == 8);
}

static void test_fork(void)
{
    CK_SESSION_HANDLE s = open_session();
    pid_t pid = fork();
    if (pid == 0) {
        /* The child must not use the parent's module state: it initialises again. */
        CK_ULONG n = 0;
        int code = 0;
        if (p11->C_GetSlotList(CK_TRUE, NULL, &n) != CKR_CRYPTOKI_NOT_INITIALIZED)
            code |= 1;
        if (p11->C_Initialize(NULL) != CKR_OK)
            code |= 2;
        CK_SESSION_HANDLE cs;
        CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
        CK_ATTRIBUTE t[] = {{CKA_CLASS, &cls, sizeof(cls)}, {CKA_LABEL, "ec256", 5}};
        CK_OBJECT_HANDLE key;
        if (p11->C_OpenSession(0, CKF_SERIAL_SESSION, NULL, NULL, &cs) != CKR_OK ||
            p11->C_FindObjectsInit(cs, t, 2) != CKR_OK || p11->C_FindObjects(cs, &key, 1, &n) != CKR_OK || n != 1)
            code |= 4;
        CK_MECHANISM m = {CKM_ECDSA_SHA256, NULL, 0};
        unsigned char sig[128];
        CK_ULONG sig_len = sizeof(sig);
        if (p11->C_SignInit(cs, &m, key) != CKR_OK || p11->C_Sign(cs, (CK_BYTE_PTR) "x", 1, sig, &sig_len) != CKR_OK)
            code |= 8;
        p11->C_Finalize(NULL);
        _exit(code);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    if (WIFEXITED(status) && WEXITSTATUS(status) != 0)
        fprintf(stderr, "    child failed with code %d\n", WEXITSTATUS(status));
    /* the parent's session still works after the child's use */
    CK_SESSION_INFO si;
    CHECK_RV(p11->C_GetSessionInfo(s, &si), CKR_OK);
    CHECK(find(s, CKO_PRIVATE_KEY, "ec256") != 0);
    CHECK_RV(p11->C_CloseSession(s), CKR_OK);
}

static void test_rotation(void)
{
    CK_SESSION_HANDLE s = open_session();
    CK_OBJECT_HANDLE before = find(s, CKO_PUBLIC_KEY, "ec384");
    unsigned char p1[128], p2[128];
    CK_ATTRIBUTE a = {CKA_EC_POINT, p1, sizeof(p1)};
    CHECK_RV(p11->C_GetAttributeValue(s, before, &a, 1), CKR_OK);
    fake_hsm_rotate("ec384");
    /* The listing is refreshed after P11_REFRESH_MS; a new C_Initialize sees the new key at once. */
    CHECK_RV(p11->C_CloseSession(s), CKR_OK);
    CHECK_RV(p11->C_Finalize(NULL), CKR_OK);
    CHECK_RV(p11->C_Initialize(NULL), CKR_OK);
    s = open_session();
    CK_OBJECT_HANDLE after = find(s, CKO_PUBLIC_KEY, "ec384");
    a.pValue = p2;
    a.ulValueLen = sizeof(p2);
    CHECK_RV(p11->C_GetAttributeValue(s, after, &a, 1), CKR_OK);
    CHECK(memcmp(p1, p2, a.ulValueLen) != 0);
    /* the operation names the described version, so the signature matches the public key shown */
    CK_MECHANISM m = {CKM_ECDSA_SHA384, NULL, 0};
    unsigned char sig[128];
    CK_ULONG sig_len = sizeof(sig);
    CHECK_RV(sign(s, &m, find(s, CKO_PRIVATE_KEY, "ec384"), "r", 1, sig, &sig_len), CKR_OK);
    unsigned char h[48];
    SHA384((const unsigned char *)"r", 1, h);
    CHECK(verify_ecdsa_digest(fake_hsm_key("ec384"), h, 48, sig, sig_len));
    CHECK_RV(p11->C_CloseSession(s), CKR_OK);
}

/* A session secret key with `value` (C_CreateObject); extractable, readable unless sensitive. */
static CK_OBJECT_HANDLE create_secret(CK_SESSION_HANDLE s, const unsigned char *value, size_t len, int sensitive)
{
    CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
    CK_KEY_TYPE type = len == 16 || len == 24 || len == 32 ? CKK_AES : CKK_GENERIC_SECRET;
    CK_BBOOL no = CK_FALSE, yes = CK_TRUE, sens = sensitive ? CK_TRUE : CK_FALSE;
    CK_ATTRIBUTE t[] = {{CKA_CLASS, &cls, sizeof(cls)},
                        {CKA_KEY_TYPE, &type, sizeof(type)},
                        {CKA_TOKEN, &no, sizeof(no)},
                        {CKA_SENSITIVE, &sens, sizeof(sens)},
                        {CKA_EXTRACTABLE, &yes, sizeof(yes)},
                        {CKA_VALUE, (void *)value, len},
                        {CKA_LABEL, "dek", 3}};
    CK_OBJECT_HANDLE h = 0;
    CHECK_RV(p11->C_CreateObject(s, t, 7, &h), CKR_OK);
    return h;
}

/* The CKA_VALUE of a session object into out (its length, or 0 when it cannot be read). */
static size_t read_value(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE h, unsigned char *out, size_t size)
{
    CK_ATTRIBUTE a = {CKA_VALUE, out, size};
    return p11->C_GetAttributeValue(s, h, &a, 1) == CKR_OK ? a.ulValueLen : 0;
}

static void test_aes_key_wrap(void)
{
    CK_SESSION_HANDLE s = open_session();
    CK_OBJECT_HANDLE kek = find(s, CKO_SECRET_KEY, "aes256");
    CHECK(kek != 0);
    CK_BBOOL wrap = CK_FALSE, unwrap = CK_FALSE;
    CK_ATTRIBUTE flags[] = {{CKA_WRAP, &wrap, sizeof(wrap)}, {CKA_UNWRAP, &unwrap, sizeof(unwrap)}};
    CHECK_RV(p11->C_GetAttributeValue(s, kek, flags, 2), CKR_OK);
    CHECK(wrap && unwrap);
    CK_MECHANISM_INFO mi;
    CHECK_RV(p11->C_GetMechanismInfo(0, CKM_AES_KEY_WRAP, &mi), CKR_OK);
    CHECK((mi.flags & CKF_WRAP) && (mi.flags & CKF_UNWRAP) && mi.ulMinKeySize == 16 && mi.ulMaxKeySize == 32);
    CHECK_RV(p11->C_GetMechanismInfo(0, CKM_AES_KEY_WRAP_PAD, &mi), CKR_MECHANISM_INVALID);

    /* wrap a key of the application's: the same bytes as RFC 3394 with the HSM's key */
    unsigned char dek[32], expected[40], wrapped[64];
    for (int i = 0; i < 32; i++)
        dek[i] = (unsigned char)(i * 7 + 1);
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int n = 0;
    CHECK(EVP_EncryptInit_ex(c, EVP_aes_256_wrap(), NULL, fake_hsm_aes_key(), NULL) == 1);
    CHECK(EVP_EncryptUpdate(c, expected, &n, dek, 32) == 1 && n == 40);
    EVP_CIPHER_CTX_free(c);
    CK_OBJECT_HANDLE key = create_secret(s, dek, 32, 1);
    CK_MECHANISM kw = {CKM_AES_KEY_WRAP, NULL, 0};
    CK_ULONG len = 0;
    fake_hsm_reset_counts();
    CHECK_RV(p11->C_WrapKey(s, &kw, kek, key, NULL, &len), CKR_OK);
    CHECK(len == 40 && fake_hsm_requests(AKV_OP_WRAP) == 0);
    len = 8;
    CHECK_RV(p11->C_WrapKey(s, &kw, kek, key, wrapped, &len), CKR_BUFFER_TOO_SMALL);
    len = sizeof(wrapped);
    CHECK_RV(p11->C_WrapKey(s, &kw, kek, key, wrapped, &len), CKR_OK);
    CHECK(len == 40 && memcmp(wrapped, expected, 40) == 0);
    CHECK(strcmp(fake_hsm_last_alg(), "A256KW") == 0 && fake_hsm_requests(AKV_OP_WRAP) == 1);
    unsigned char v[64];
    CHECK(read_value(s, key, v, sizeof(v)) == 0); /* sensitive: CKR_ATTRIBUTE_SENSITIVE */

    /* unwrap: a session object with the template's attributes and the unwrapped bytes */
    CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
    CK_KEY_TYPE aes = CKK_AES;
    CK_BBOOL no = CK_FALSE;
    CK_ATTRIBUTE t[] = {{CKA_CLASS, &cls, sizeof(cls)},
                        {CKA_KEY_TYPE, &aes, sizeof(aes)},
                        {CKA_TOKEN, &no, sizeof(no)},
                        {CKA_SENSITIVE, &no, sizeof(no)},
                        {CKA_LABEL, "unwrapped", 9}};
    CK_OBJECT_HANDLE got = 0;
    CHECK_RV(p11->C_UnwrapKey(s, &kw, kek, wrapped, 40, t, 5, &got), CKR_OK);
    CHECK(read_value(s, got, v, sizeof(v)) == 32 && memcmp(v, dek, 32) == 0);
    CHECK(find(s, CKO_SECRET_KEY, "unwrapped") == got); /* seen by searches */
    CK_BBOOL always = CK_TRUE, token = CK_TRUE;
    CK_ATTRIBUTE ro[] = {{CKA_ALWAYS_SENSITIVE, &always, sizeof(always)}, {CKA_TOKEN, &token, sizeof(token)}};
    CHECK_RV(p11->C_GetAttributeValue(s, got, ro, 2), CKR_OK);
    CHECK(!always && !token);

    /* what is refused, before anything is sent */
    fake_hsm_reset_counts();
    wrapped[5] ^= 1; /* the HSM's integrity check fails */
    CHECK_RV(p11->C_UnwrapKey(s, &kw, kek, wrapped, 40, t, 5, &got), CKR_WRAPPED_KEY_INVALID);
    CHECK_RV(p11->C_UnwrapKey(s, &kw, kek, wrapped, 36, t, 5, &got), CKR_WRAPPED_KEY_LEN_RANGE);
    CK_BBOOL yes = CK_TRUE;
    CK_ATTRIBUTE on_token[] = {{CKA_CLASS, &cls, sizeof(cls)}, {CKA_TOKEN, &yes, sizeof(yes)}};
    CHECK_RV(p11->C_UnwrapKey(s, &kw, kek, wrapped, 40, on_token, 2, &got), CKR_TEMPLATE_INCONSISTENT);
    CK_ULONG len24 = 24;
    CK_ATTRIBUTE wrong_len[] = {{CKA_KEY_TYPE, &aes, sizeof(aes)}, {CKA_VALUE_LEN, &len24, sizeof(len24)}};
    wrapped[5] ^= 1;
    CHECK_RV(p11->C_UnwrapKey(s, &kw, kek, wrapped, 40, wrong_len, 2, &got), CKR_TEMPLATE_INCONSISTENT);
    CHECK(fake_hsm_requests(AKV_OP_UNWRAP) == 2); /* the corrupted one and the wrong length's */
    fake_hsm_reset_counts();
    unsigned char iv[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    CK_MECHANISM kw_iv = {CKM_AES_KEY_WRAP, iv, 8};
    len = sizeof(wrapped);
    CHECK_RV(p11->C_WrapKey(s, &kw_iv, kek, key, wrapped, &len), CKR_MECHANISM_PARAM_INVALID);
    CK_MECHANISM kwp = {CKM_AES_KEY_WRAP_PAD, NULL, 0};
    CHECK_RV(p11->C_WrapKey(s, &kwp, kek, key, wrapped, &len), CKR_MECHANISM_INVALID);
    CK_OBJECT_HANDLE odd = create_secret(s, dek, 20, 0); /* not a multiple of 8 */
    CHECK_RV(p11->C_WrapKey(s, &kw, kek, odd, wrapped, &len), CKR_KEY_SIZE_RANGE);
    CHECK_RV(p11->C_WrapKey(s, &kw, kek, find(s, CKO_SECRET_KEY, "aes256"), wrapped, &len), CKR_KEY_UNEXTRACTABLE);
    CHECK_RV(p11->C_WrapKey(s, &kw, find(s, CKO_PUBLIC_KEY, "rsa2048"), key, wrapped, &len),
             CKR_WRAPPING_KEY_TYPE_INCONSISTENT);
    CHECK_RV(p11->C_WrapKey(s, &kw, find(s, CKO_PRIVATE_KEY, "ec256"), key, wrapped, &len),
             CKR_WRAPPING_KEY_HANDLE_INVALID);
    CHECK(fake_hsm_requests(AKV_OP_WRAP) == 0);

    /* session objects: destroyed with C_DestroyObject or with their session; HSM keys never */
    CHECK_RV(p11->C_DestroyObject(s, odd), CKR_OK);
    CHECK_RV(p11->C_DestroyObject(s, odd), CKR_OBJECT_HANDLE_INVALID);
    CHECK_RV(p11->C_DestroyObject(s, kek), CKR_ACTION_PROHIBITED);
    CHECK_RV(p11->C_CloseSession(s), CKR_OK);
    s = open_session();
    CHECK(find(s, CKO_SECRET_KEY, "unwrapped") == 0);
    CHECK(read_value(s, got, v, sizeof(v)) == 0);
    CHECK_RV(p11->C_CloseSession(s), CKR_OK);
}

static void test_rsa_unwrap(void)
{
    CK_SESSION_HANDLE s = open_session();
    CK_OBJECT_HANDLE priv = find(s, CKO_PRIVATE_KEY, "rsa2048"), pub = find(s, CKO_PUBLIC_KEY, "rsa2048");
    CK_BBOOL unwrap = CK_FALSE, wrap = CK_FALSE;
    CK_ATTRIBUTE a = {CKA_UNWRAP, &unwrap, sizeof(unwrap)}, b = {CKA_WRAP, &wrap, sizeof(wrap)};
    CHECK_RV(p11->C_GetAttributeValue(s, priv, &a, 1), CKR_OK);
    CHECK_RV(p11->C_GetAttributeValue(s, pub, &b, 1), CKR_OK);
    CHECK(unwrap && wrap);
    static const unsigned char secret[24] = "a 24-byte AES-192 key...";
    CK_OBJECT_HANDLE key = create_secret(s, secret, 24, 1);
    CK_RSA_PKCS_OAEP_PARAMS params = {CKM_SHA256, CKG_MGF1_SHA256, CKZ_DATA_SPECIFIED, NULL, 0};
    CK_MECHANISM oaep = {CKM_RSA_PKCS_OAEP, &params, sizeof(params)};
    unsigned char wrapped[256];
    CK_ULONG len = sizeof(wrapped);
    CHECK_RV(p11->C_WrapKey(s, &oaep, pub, key, wrapped, &len), CKR_OK);
    CHECK(len == 256 && strcmp(fake_hsm_last_alg(), "RSA-OAEP-256") == 0);
    /* the HSM's private key decrypts what was wrapped */
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(fake_hsm_key("rsa2048"), NULL);
    unsigned char plain[256];
    size_t plain_len = sizeof(plain);
    EVP_PKEY_decrypt_init(ctx);
    EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_OAEP_PADDING);
    EVP_PKEY_CTX_set_rsa_oaep_md(ctx, EVP_sha256());
    EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, EVP_sha256());
    CHECK(EVP_PKEY_decrypt(ctx, plain, &plain_len, wrapped, len) == 1);
    EVP_PKEY_CTX_free(ctx);
    CHECK(plain_len == 24 && memcmp(plain, secret, 24) == 0);
    /* and C_UnwrapKey gives it back as a session object */
    CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
    CK_BBOOL no = CK_FALSE;
    CK_ATTRIBUTE t[] = {{CKA_CLASS, &cls, sizeof(cls)}, {CKA_SENSITIVE, &no, sizeof(no)}};
    CK_OBJECT_HANDLE got = 0;
    CHECK_RV(p11->C_UnwrapKey(s, &oaep, priv, wrapped, len, t, 2, &got), CKR_OK);
    unsigned char v[64];
    CHECK(read_value(s, got, v, sizeof(v)) == 24 && memcmp(v, secret, 24) == 0);
    CHECK(strcmp(fake_hsm_last_alg(), "RSA-OAEP-256") == 0);
    CHECK_RV(p11->C_UnwrapKey(s, &oaep, priv, wrapped, 100, t, 2, &got), CKR_WRAPPED_KEY_LEN_RANGE);
    CHECK_RV(p11->C_UnwrapKey(s, &oaep, find(s, CKO_PRIVATE_KEY, "ec256"), wrapped, len, t, 2, &got),
             CKR_KEY_FUNCTION_NOT_PERMITTED);
    CK_MECHANISM kw = {CKM_AES_KEY_WRAP, NULL, 0};
    CHECK_RV(p11->C_UnwrapKey(s, &kw, priv, wrapped, len, t, 2, &got), CKR_UNWRAPPING_KEY_TYPE_INCONSISTENT);
    CHECK_RV(p11->C_CloseSession(s), CKR_OK);
}

static void test_session_object_limit(void)
{
    CK_SESSION_HANDLE s = open_session();
    unsigned char value[16] = {0};
    CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
    CK_ATTRIBUTE t[] = {{CKA_CLASS, &cls, sizeof(cls)}, {CKA_VALUE, value, sizeof(value)}};
    CK_OBJECT_HANDLE h;
    int made = 0;
    CK_RV rv = CKR_OK;
    while (made < 5000 && (rv = p11->C_CreateObject(s, t, 2, &h)) == CKR_OK)
        made++;
    CHECK(made == 4096 && rv == CKR_DEVICE_MEMORY);
    CK_ATTRIBUTE token_cert[] = {{CKA_VALUE, value, sizeof(value)}, {CKA_CLASS, &cls, sizeof(cls)}};
    cls = CKO_CERTIFICATE;
    CHECK_RV(p11->C_CreateObject(s, token_cert, 2, &h), CKR_TEMPLATE_INCONSISTENT);
    CHECK_RV(p11->C_CloseSession(s), CKR_OK); /* frees them all (ASan: no leak) */
    s = open_session();
    cls = CKO_SECRET_KEY;
    CHECK_RV(p11->C_CreateObject(s, t, 2, &h), CKR_OK);
    CHECK_RV(p11->C_CreateObject(s, t, 1, &h), CKR_TEMPLATE_INCOMPLETE); /* no CKA_VALUE */
    CHECK_RV(p11->C_CloseSession(s), CKR_OK);
}

static void test_version_pinning(void)
{
    /* ec256 has a new version; KEY@VERSION names the one before, which still signs */
    CK_SESSION_HANDLE s = open_session();
    CK_OBJECT_HANDLE current = find(s, CKO_PRIVATE_KEY, "ec256");
    fake_hsm_rotate("ec256");
    char label[64];
    snprintf(label, sizeof(label), "ec256@%032x", 1);
    CK_OBJECT_HANDLE old = find(s, CKO_PRIVATE_KEY, label);
    CHECK(old != 0 && old != current);
    CK_OBJECT_HANDLE old_pub = find(s, CKO_PUBLIC_KEY, label);
    CHECK(old_pub != 0);
    CK_MECHANISM m = {CKM_ECDSA_SHA256, NULL, 0};
    unsigned char sig[128], h[32];
    CK_ULONG sig_len = sizeof(sig);
    CHECK_RV(sign(s, &m, old, "pinned", 6, sig, &sig_len), CKR_OK);
    SHA256((const unsigned char *)"pinned", 6, h);
    CHECK(verify_ecdsa_digest(fake_hsm_previous_key("ec256"), h, 32, sig, sig_len));
    CHECK(!verify_ecdsa_digest(fake_hsm_key("ec256"), h, 32, sig, sig_len));
    /* the pinned objects pair by CKA_ID with each other, not with the current version's */
    unsigned char id1[20], id2[20];
    CK_ATTRIBUTE a1 = {CKA_ID, id1, 20}, a2 = {CKA_ID, id2, 20};
    CHECK_RV(p11->C_GetAttributeValue(s, old_pub, &a1, 1), CKR_OK);
    CHECK_RV(p11->C_GetAttributeValue(s, current, &a2, 1), CKR_OK);
    CHECK(memcmp(id1, id2, 20) == 0); /* `current` was described before the rotation: the same key */
    /* the current version's label still names the current (rotated) key after a refresh */
    CHECK_RV(p11->C_CloseSession(s), CKR_OK);
    CHECK_RV(p11->C_Finalize(NULL), CKR_OK);
    CHECK_RV(p11->C_Initialize(NULL), CKR_OK);
    s = open_session();
    sig_len = sizeof(sig);
    CHECK_RV(sign(s, &m, find(s, CKO_PRIVATE_KEY, "ec256"), "pinned", 6, sig, &sig_len), CKR_OK);
    CHECK(verify_ecdsa_digest(fake_hsm_key("ec256"), h, 32, sig, sig_len));
    CHECK(find(s, CKO_PRIVATE_KEY, label) != 0);
    /* an unknown version or a malformed label matches nothing */
    CHECK(find(s, CKO_PRIVATE_KEY, "ec256@00000000000000000000000000000009") == 0);
    CHECK(find(s, CKO_PRIVATE_KEY, "ec256@not-hex") == 0);
    CHECK(find(s, CKO_PRIVATE_KEY, "@") == 0);
    CHECK_RV(p11->C_CloseSession(s), CKR_OK);
}

static void test_agent_failures(void)
{
    CK_SESSION_HANDLE s = open_session();
    CK_OBJECT_HANDLE key = find(s, CKO_PRIVATE_KEY, "ec256");
    CK_MECHANISM m = {CKM_ECDSA_SHA256, NULL, 0};
    unsigned char sig[128];
    CK_ULONG sig_len = sizeof(sig);

    /* throttled by the HSM: a device error (the message goes to stderr), the session stays usable */
    fake_hsm_set_mode(FAKE_THROTTLED);
    CHECK_RV(sign(s, &m, key, "x", 1, sig, &sig_len), CKR_DEVICE_ERROR);
    /* garbage on the socket: a device error, never a crash */
    fake_hsm_set_mode(FAKE_GARBAGE);
    sig_len = sizeof(sig);
    CHECK_RV(sign(s, &m, key, "x", 1, sig, &sig_len), CKR_DEVICE_ERROR);
    /* a silent agent: bounded by AKV_AGENT_TIMEOUT_MS (500 ms here) */
    fake_hsm_set_mode(FAKE_SILENT);
    sig_len = sizeof(sig);
    long long t0 = now_ms();
    CHECK_RV(sign(s, &m, key, "x", 1, sig, &sig_len), CKR_DEVICE_ERROR);
    long long took = now_ms() - t0;
    CHECK(took >= 400 && took < 5000);
    fake_hsm_set_mode(FAKE_OK);
    sig_len = sizeof(sig);
    CHECK_RV(sign(s, &m, key, "x", 1, sig, &sig_len), CKR_OK);
    CHECK_RV(p11->C_CloseSession(s), CKR_OK);
}

static void test_agent_down(void)
{
    /* No agent on the socket (and autostart off): C_Initialize still works, the slot list fails
     * with CKR_DEVICE_ERROR and a message naming the socket. */
    CHECK_RV(p11->C_Finalize(NULL), CKR_OK);
    const char *saved = getenv("AKV_AGENT_SOCKET");
    char *copy = strdup(saved);
    setenv("AKV_AGENT_SOCKET", "/nonexistent/akv-test/agent.sock", 1);
    CHECK_RV(p11->C_Initialize(NULL), CKR_OK);
    CK_ULONG n = 0;
    CHECK_RV(p11->C_GetSlotList(CK_TRUE, NULL, &n), CKR_DEVICE_ERROR);
    CHECK_RV(p11->C_Finalize(NULL), CKR_OK);
    /* No agent on the default socket: no token, quietly, and no agent is started (what every
     * program that loads all p11-kit modules sees on a machine where the user runs no agent). */
    char runtime[] = "/tmp/akv-p11-runtime-XXXXXX";
    CHECK(mkdtemp(runtime) != NULL);
    unsetenv("AKV_AGENT_SOCKET");
    unsetenv("AKV_AGENT_AUTOSTART");
    setenv("XDG_RUNTIME_DIR", runtime, 1);
    CHECK_RV(p11->C_Initialize(NULL), CKR_OK);
    n = 7;
    CHECK_RV(p11->C_GetSlotList(CK_TRUE, NULL, &n), CKR_OK);
    CHECK(n == 0);
    char sock[128];
    snprintf(sock, sizeof(sock), "%s/akv", runtime);
    CHECK(access(sock, F_OK) != 0); /* nothing was started there */
    CHECK_RV(p11->C_Finalize(NULL), CKR_OK);
    rmdir(runtime);
    setenv("AKV_AGENT_AUTOSTART", "0", 1);
    setenv("AKV_AGENT_TIMEOUT_MS", "15s", 1);
    CHECK_RV(p11->C_Initialize(NULL), CKR_GENERAL_ERROR);
    setenv("AKV_AGENT_TIMEOUT_MS", "500", 1);
    setenv("AKV_AGENT_SOCKET", copy, 1);
    free(copy);
    CHECK_RV(p11->C_Initialize(NULL), CKR_OK);
    CHECK_RV(p11->C_GetSlotList(CK_TRUE, NULL, &n), CKR_OK);
}

static void test_not_initialized(void)
{
    CK_INFO info;
    CHECK_RV(p11->C_GetInfo(&info), CKR_CRYPTOKI_NOT_INITIALIZED);
    CHECK_RV(p11->C_Finalize(NULL), CKR_CRYPTOKI_NOT_INITIALIZED);
    CK_C_INITIALIZE_ARGS args = {0};
    args.pReserved = &args;
    CHECK_RV(p11->C_Initialize(&args), CKR_ARGUMENTS_BAD);
    args.pReserved = NULL;
    args.flags = CKF_OS_LOCKING_OK;
    CHECK_RV(p11->C_Initialize(&args), CKR_OK);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s libakv_pkcs11.so\n", argv[0]);
        return 2;
    }
    const char *sock = fake_hsm_start();
    if (sock == NULL) {
        perror("fake agent");
        return 1;
    }
    setenv("AKV_AGENT_SOCKET", sock, 1);
    setenv("AKV_AGENT_AUTOSTART", "0", 1);
    setenv("AKV_AGENT_TIMEOUT_MS", "500", 1);
    module = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    CK_RV(*get)
    (CK_FUNCTION_LIST_PTR_PTR) =
        module != NULL ? (CK_RV(*)(CK_FUNCTION_LIST_PTR_PTR))dlsym(module, "C_GetFunctionList") : NULL;
    if (get == NULL || get(&p11) != CKR_OK) {
        fprintf(stderr, "cannot load %s: %s\n", argv[1], dlerror());
        return 1;
    }
    static const struct {
        const char *name;
        void (*fn)(void);
    } tests[] = {
        {"module: not initialised, then C_Initialize with CKF_OS_LOCKING_OK", test_not_initialized},
        {"module: info, one token per HSM, mechanisms, no login, no RNG", test_info_and_slots},
        {"objects: private/public/certificate pair by CKA_ID, attribute rules", test_objects},
        {"sign: RSA PKCS#1 v1.5, DigestInfo, PSS; refusals send nothing", test_rsa_sign},
        {"sign: ECDSA P-256/P-384, digests padded or cut as ECDSA does", test_ecdsa},
        {"decrypt: OAEP SHA-1/SHA-256, buffer retry without a second HSM call", test_decrypt},
        {"digest: SHA-384 single and multi-part, SHA-1 refused", test_digest},
        {"threads: 8 threads sign at once", test_threads},
        {"fork: the child initialises again and signs", test_fork},
        {"rotation: a rotated key's new public half and version are used", test_rotation},
        {"wrap: CKM_AES_KEY_WRAP both ways (RFC 3394 bytes), session objects, refusals", test_aes_key_wrap},
        {"wrap: RSA-OAEP wrap with the public key, unwrap in the HSM", test_rsa_unwrap},
        {"objects: at most 4096 session objects, freed with their session", test_session_object_limit},
        {"pinning: KEY@VERSION signs with that version after a rotation", test_version_pinning},
        {"agent: throttled, garbage, silent (bounded by the timeout)", test_agent_failures},
        {"agent: down, none on the default socket (no token, none started), bad setting, back", test_agent_down},
    };
    int passed = 0, failed = 0;
    for (size_t i = 0; i < sizeof(tests) / sizeof(tests[0]); i++) {
        failures = 0;
        tests[i].fn();
        printf("%s - %s\n", failures == 0 ? "ok" : "not ok", tests[i].name);
        fflush(stdout);
        if (failures == 0)
            passed++;
        else
            failed++;
    }
    p11->C_Finalize(NULL);
    fake_hsm_stop();
    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
