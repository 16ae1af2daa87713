/* Signature helpers: AlgorithmIdentifiers as OpenSSL parses them, ECDSA r||s -> DER, digest fitting. */
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <string.h>

#include "sigalg.h"
#include "test.h"

static int algid_nid(const unsigned char *der, size_t len, X509_ALGOR **out)
{
    const unsigned char *p = der;
    X509_ALGOR *alg = d2i_X509_ALGOR(NULL, &p, (long)len);
    if (alg == NULL || p != der + len) {
        X509_ALGOR_free(alg);
        return NID_undef;
    }
    const ASN1_OBJECT *obj;
    X509_ALGOR_get0(&obj, NULL, NULL, alg);
    int nid = OBJ_obj2nid(obj);
    if (out != NULL)
        *out = alg;
    else
        X509_ALGOR_free(alg);
    return nid;
}

static void test_pkcs1_and_ecdsa_ids(void)
{
    unsigned char der[AKV_MAX_ALGORITHM_ID];
    const int bits[] = {256, 384, 512};
    const int rsa_nids[] = {NID_sha256WithRSAEncryption, NID_sha384WithRSAEncryption, NID_sha512WithRSAEncryption};
    const int ec_nids[] = {NID_ecdsa_with_SHA256, NID_ecdsa_with_SHA384, NID_ecdsa_with_SHA512};
    for (int i = 0; i < 3; i++) {
        size_t n = akv_algorithm_id(1, 0, bits[i], 0, der, sizeof(der));
        CHECKF(n > 0 && algid_nid(der, n, NULL) == rsa_nids[i], "RSA/SHA-%d", bits[i]);
        n = akv_algorithm_id(0, 0, bits[i], 0, der, sizeof(der));
        CHECKF(n > 0 && algid_nid(der, n, NULL) == ec_nids[i], "ECDSA/SHA-%d", bits[i]);
    }
    CHECK(akv_algorithm_id(1, 0, 160, 0, der, sizeof(der)) == 0);
    CHECK(akv_algorithm_id(1, 0, 256, 0, der, 4) == 0);
}

static void test_pss_params(void)
{
    unsigned char der[AKV_MAX_ALGORITHM_ID];
    const int bits[] = {256, 384, 512};
    const int md_nids[] = {NID_sha256, NID_sha384, NID_sha512};
    for (int i = 0; i < 3; i++) {
        X509_ALGOR *alg = NULL;
        size_t n = akv_algorithm_id(1, 1, bits[i], bits[i] / 8, der, sizeof(der));
        CHECKF(n > 0 && algid_nid(der, n, &alg) == NID_rsassaPss, "PSS/SHA-%d", bits[i]);
        if (alg == NULL)
            continue;
        int ptype;
        const void *pval;
        X509_ALGOR_get0(NULL, &ptype, &pval, alg);
        CHECK(ptype == V_ASN1_SEQUENCE);
        if (ptype == V_ASN1_SEQUENCE) {
            const ASN1_STRING *seq = pval;
            const unsigned char *p = ASN1_STRING_get0_data(seq);
            RSA_PSS_PARAMS *pss = d2i_RSA_PSS_PARAMS(NULL, &p, ASN1_STRING_length(seq));
            CHECK(pss != NULL);
            if (pss != NULL) {
                const ASN1_OBJECT *o;
                X509_ALGOR_get0(&o, NULL, NULL, pss->hashAlgorithm);
                CHECK(OBJ_obj2nid(o) == md_nids[i]);
                X509_ALGOR_get0(&o, NULL, NULL, pss->maskGenAlgorithm);
                CHECK(OBJ_obj2nid(o) == NID_mgf1);
                /* maskGenAlgorithm's parameter is the MGF1 hash AlgorithmIdentifier. */
                int mtype;
                const void *mval;
                X509_ALGOR_get0(NULL, &mtype, &mval, pss->maskGenAlgorithm);
                CHECK(mtype == V_ASN1_SEQUENCE);
                if (mtype == V_ASN1_SEQUENCE) {
                    const unsigned char *q = ASN1_STRING_get0_data(mval);
                    X509_ALGOR *mgf_md = d2i_X509_ALGOR(NULL, &q, ASN1_STRING_length(mval));
                    CHECK(mgf_md != NULL);
                    if (mgf_md != NULL) {
                        X509_ALGOR_get0(&o, NULL, NULL, mgf_md);
                        CHECK(OBJ_obj2nid(o) == md_nids[i]);
                        X509_ALGOR_free(mgf_md);
                    }
                }
                CHECK(pss->saltLength != NULL && ASN1_INTEGER_get(pss->saltLength) == bits[i] / 8);
                CHECK(pss->trailerField == NULL);
                RSA_PSS_PARAMS_free(pss);
            }
        }
        X509_ALGOR_free(alg);
    }
}

static void test_ecdsa_raw_to_der(void)
{
    const char *groups[] = {"P-256", "P-384", "P-521"};
    const size_t order_bytes[] = {32, 48, 66};
    for (int g = 0; g < 3; g++) {
        EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", groups[g]);
        CHECK(key != NULL);
        if (key == NULL)
            continue;
        for (int round = 0; round < 8; round++) {
            unsigned char digest[32], sig[160], raw[140], der[160];
            size_t siglen = sizeof(sig), derlen = 0;
            RAND_bytes(digest, sizeof(digest));
            EVP_PKEY_CTX *c = EVP_PKEY_CTX_new(key, NULL);
            CHECK(c != NULL && EVP_PKEY_sign_init(c) > 0 && EVP_PKEY_sign(c, sig, &siglen, digest, sizeof(digest)) > 0);
            EVP_PKEY_CTX_free(c);
            /* OpenSSL's DER -> r||s as the HSM would send it, then back with our code. */
            const unsigned char *p = sig;
            ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)siglen);
            CHECK(es != NULL);
            if (es == NULL)
                continue;
            BN_bn2binpad(ECDSA_SIG_get0_r(es), raw, (int)order_bytes[g]);
            BN_bn2binpad(ECDSA_SIG_get0_s(es), raw + order_bytes[g], (int)order_bytes[g]);
            ECDSA_SIG_free(es);
            CHECK(akv_ecdsa_raw_to_der(raw, 2 * order_bytes[g], order_bytes[g], der, sizeof(der), &derlen));
            CHECKF(derlen == siglen && memcmp(der, sig, siglen) == 0, "%s round %d", groups[g], round);
            CHECK(!akv_ecdsa_raw_to_der(raw, 2 * order_bytes[g] - 1, order_bytes[g], der, sizeof(der), &derlen));
            CHECK(!akv_ecdsa_raw_to_der(raw, 2 * order_bytes[g], order_bytes[g], der, 8, &derlen));
        }
        EVP_PKEY_free(key);
    }
    unsigned char zeros[64] = {0}, der[80];
    size_t derlen;
    CHECK(!akv_ecdsa_raw_to_der(zeros, 64, 32, der, sizeof(der), &derlen));
}

static void test_fit_digest(void)
{
    unsigned char in[64], out[64];
    for (int i = 0; i < 64; i++)
        in[i] = (unsigned char)(i + 1);
    akv_ecdsa_fit_digest(in, 64, out, 32);
    CHECK(memcmp(out, in, 32) == 0);
    akv_ecdsa_fit_digest(in, 32, out, 64);
    CHECK(out[0] == 0 && out[31] == 0 && memcmp(out + 32, in, 32) == 0);
    akv_ecdsa_fit_digest(in, 48, out, 48);
    CHECK(memcmp(out, in, 48) == 0);
    CHECK(akv_ecdsa_digest_len("P-521") == 64 && akv_ecdsa_digest_len("P-256K") == 32 &&
          akv_ecdsa_digest_len("x") == 0);
    CHECK(akv_ecdsa_alg("P-256K") != NULL && strcmp(akv_ecdsa_alg("P-256K"), "ES256K") == 0);
    CHECK(akv_ecdsa_alg("P-192") == NULL);
}

static void test_hsm_digests(void)
{
    EVP_MD *sha1 = EVP_MD_fetch(NULL, "SHA1", NULL), *sha384 = EVP_MD_fetch(NULL, "SHA384", NULL);
    EVP_MD *sha224 = EVP_MD_fetch(NULL, "SHA224", NULL);
    CHECK(akv_hsm_digest_bits(sha1) == 0);
    CHECK(akv_hsm_digest_bits(sha224) == 0);
    CHECK(akv_hsm_digest_bits(sha384) == 384);
    CHECK(akv_hsm_digest_bits(NULL) == 0);
    EVP_MD_free(sha1);
    EVP_MD_free(sha224);
    EVP_MD_free(sha384);
}

const akv_test sigalg_tests[] = {
    {"sigalg: PKCS#1 and ECDSA AlgorithmIdentifiers", test_pkcs1_and_ecdsa_ids},
    {"sigalg: RSA-PSS AlgorithmIdentifier with RFC 4055 parameters", test_pss_params},
    {"sigalg: ECDSA r||s to DER matches OpenSSL", test_ecdsa_raw_to_der},
    {"sigalg: ECDSA digest fitting", test_fit_digest},
    {"sigalg: digests the HSM signs", test_hsm_digests},
    {NULL, NULL},
};
