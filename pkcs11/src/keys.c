/*
 * A key object's contents from the agent's DESCRIBE answer: the public half (RSA modulus and
 * exponent, EC curve and point, as PKCS#11 attributes want them), the operations the HSM allows,
 * CKA_ID and the configured certificate. Parsing the DER uses OpenSSL, which the module links for
 * hashing and local verification anyway.
 */
#include <openssl/core_names.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "p11.h"

void p11_key_free(p11_key *k)
{
    if (k == NULL)
        return;
    free(k->name);
    free(k->uri);
    free(k->version);
    free(k->spki);
    EVP_PKEY_free(k->pub);
    free(k->modulus);
    free(k->exponent);
    free(k->ec_params);
    free(k->ec_point);
    free(k->cert);
    OPENSSL_free(k->subject);
    OPENSSL_free(k->issuer);
    OPENSSL_free(k->serial);
    free(k);
}

static char *field_str(const akv_field *f)
{
    if (f == NULL)
        return NULL;
    char *s = malloc((size_t)f->len + 1);
    if (s != NULL) {
        memcpy(s, f->value, f->len);
        s[f->len] = '\0';
    }
    return s;
}

static unsigned parse_ops(const akv_field *f)
{
    static const struct {
        const char *name;
        unsigned bit;
    } names[] = {{"sign", P11_OP_SIGN},       {"verify", P11_OP_VERIFY}, {"encrypt", P11_OP_ENCRYPT},
                 {"decrypt", P11_OP_DECRYPT}, {"wrapKey", P11_OP_WRAP},  {"unwrapKey", P11_OP_UNWRAP}};
    unsigned ops = 0;
    if (f == NULL)
        return 0;
    for (size_t start = 0, i = 0; i <= f->len; i++) {
        if (i < f->len && f->value[i] != ',')
            continue;
        for (size_t n = 0; n < sizeof(names) / sizeof(names[0]); n++) {
            if (strlen(names[n].name) == i - start && memcmp(names[n].name, f->value + start, i - start) == 0)
                ops |= names[n].bit;
        }
        start = i + 1;
    }
    return ops;
}

static unsigned char *bn_bytes(const EVP_PKEY *pub, const char *param, size_t *len)
{
    BIGNUM *bn = NULL;
    if (!EVP_PKEY_get_bn_param(pub, param, &bn))
        return NULL;
    *len = (size_t)BN_num_bytes(bn);
    unsigned char *out = malloc(*len > 0 ? *len : 1);
    if (out != NULL)
        BN_bn2bin(bn, out);
    BN_free(bn);
    return out;
}

/* The public half: SPKI parsed into what the attributes show, CKA_ID from the key bits. */
static CK_RV load_public(p11_key *k)
{
    const unsigned char *p = k->spki;
    X509_PUBKEY *xpub = d2i_X509_PUBKEY(NULL, &p, (long)k->spki_len);
    p = k->spki;
    k->pub = d2i_PUBKEY(NULL, &p, (long)k->spki_len);
    const unsigned char *bits = NULL;
    int bits_len = 0;
    X509_ALGOR *alg = NULL;
    if (xpub == NULL || k->pub == NULL || !X509_PUBKEY_get0_param(NULL, &bits, &bits_len, &alg, xpub) ||
        !EVP_PKEY_is_a(k->pub, k->type == AKV_KEY_TYPE_RSA ? "RSA" : "EC")) {
        X509_PUBKEY_free(xpub);
        p11_report("describe %s: the agent's PUBLIC_KEY is not a %s SubjectPublicKeyInfo", k->uri,
                   k->type == AKV_KEY_TYPE_RSA ? "RSA" : "EC");
        return CKR_DEVICE_ERROR;
    }
    SHA1(bits, (size_t)bits_len, k->id);
    CK_RV rv = CKR_OK;
    if (k->type == AKV_KEY_TYPE_RSA) {
        k->modulus = bn_bytes(k->pub, OSSL_PKEY_PARAM_RSA_N, &k->modulus_len);
        k->exponent = bn_bytes(k->pub, OSSL_PKEY_PARAM_RSA_E, &k->exponent_len);
        if (k->modulus == NULL || k->exponent == NULL)
            rv = CKR_HOST_MEMORY;
        if (k->bits == 0)
            k->bits = (uint32_t)EVP_PKEY_get_bits(k->pub);
    } else {
        const ASN1_OBJECT *curve = NULL;
        int ptype = 0;
        const void *pval = NULL;
        X509_ALGOR_get0(NULL, &ptype, &pval, alg);
        curve = ptype == V_ASN1_OBJECT ? pval : NULL;
        int olen = curve != NULL ? i2d_ASN1_OBJECT(curve, NULL) : -1;
        size_t point_len = (size_t)bits_len;
        size_t hdr = point_len < 128 ? 2 : 3;
        k->ec_params = olen > 0 ? malloc((size_t)olen) : NULL;
        k->ec_point = malloc(point_len + hdr);
        if (k->ec_params == NULL || k->ec_point == NULL) {
            rv = CKR_HOST_MEMORY;
        } else {
            unsigned char *q = k->ec_params;
            k->ec_params_len = (size_t)i2d_ASN1_OBJECT(curve, &q);
            /* CKA_EC_POINT: the point as a DER OCTET STRING (what OpenSSH, GnuTLS and Java parse). */
            k->ec_point[0] = 0x04;
            if (hdr == 2) {
                k->ec_point[1] = (unsigned char)point_len;
            } else {
                k->ec_point[1] = 0x81;
                k->ec_point[2] = (unsigned char)point_len;
            }
            memcpy(k->ec_point + hdr, bits, point_len);
            k->ec_point_len = point_len + hdr;
        }
        if (k->bits == 0)
            k->bits = (uint32_t)EVP_PKEY_get_bits(k->pub);
        k->ec_field_len = (k->bits + 7) / 8;
    }
    X509_PUBKEY_free(xpub);
    return rv;
}

/* The configured certificate, if the agent sent one: CKA_VALUE, SUBJECT, ISSUER, SERIAL_NUMBER. */
static CK_RV load_certificate(p11_key *k, const akv_field *f)
{
    const unsigned char *p = f->value;
    X509 *x = d2i_X509(NULL, &p, (long)f->len);
    if (x == NULL) {
        p11_report("describe %s: the agent's CERTIFICATE is not a DER certificate: not presented", k->uri);
        return CKR_OK;
    }
    k->cert = malloc(f->len);
    int ok = k->cert != NULL;
    if (ok) {
        memcpy(k->cert, f->value, f->len);
        k->cert_len = f->len;
    }
    int n;
    ok = ok && (n = i2d_X509_NAME(X509_get_subject_name(x), &k->subject)) > 0;
    k->subject_len = ok ? (size_t)n : 0;
    ok = ok && (n = i2d_X509_NAME(X509_get_issuer_name(x), &k->issuer)) > 0;
    k->issuer_len = ok ? (size_t)n : 0;
    ok = ok && (n = i2d_ASN1_INTEGER(X509_get0_serialNumber(x), &k->serial)) > 0;
    k->serial_len = ok ? (size_t)n : 0;
    X509_free(x);
    return ok ? CKR_OK : CKR_HOST_MEMORY;
}

CK_RV p11_key_from_description(const char *hsm, const char *name, const akv_frame *frame, p11_key **out)
{
    *out = NULL;
    p11_key *k = calloc(1, sizeof(*k));
    if (k == NULL)
        return CKR_HOST_MEMORY;
    k->name = strdup(name);
    k->version = field_str(akv_frame_get(frame, AKV_TAG_KEY_VERSION));
    /* Operations name the version described, so that a rotation between describe and use can
     * never make the HSM sign with a key whose public half (and certificate) we show otherwise. */
    char uri[512];
    if (k->version != NULL && k->version[0] != '\0' &&
        strspn(k->version, "0123456789abcdefABCDEF") == strlen(k->version))
        snprintf(uri, sizeof(uri), "managedhsm:%s:%s?version=%s", hsm, name, k->version);
    else
        snprintf(uri, sizeof(uri), "managedhsm:%s:%s", hsm, name);
    k->uri = strdup(uri);
    if (k->name == NULL || k->uri == NULL) {
        p11_key_free(k);
        return CKR_HOST_MEMORY;
    }
    if (!akv_field_u32(akv_frame_get(frame, AKV_TAG_KEY_TYPE), &k->type) ||
        (k->type != AKV_KEY_TYPE_RSA && k->type != AKV_KEY_TYPE_EC && k->type != AKV_KEY_TYPE_AES)) {
        p11_report("describe %s: the agent's answer has no usable KEY_TYPE", uri);
        p11_key_free(k);
        return CKR_DEVICE_ERROR;
    }
    akv_field_u32(akv_frame_get(frame, AKV_TAG_KEY_BITS), &k->bits);
    k->ops = parse_ops(akv_frame_get(frame, AKV_TAG_KEY_OPS));
    const akv_field *curve = akv_frame_get(frame, AKV_TAG_CURVE);
    if (curve != NULL && curve->len < sizeof(k->curve)) {
        memcpy(k->curve, curve->value, curve->len);
        k->curve[curve->len] = '\0';
    }
    CK_RV rv = CKR_OK;
    if (k->type == AKV_KEY_TYPE_AES) {
        /* No public half: the id stands for the key's name (what a caller pairs it by). */
        SHA1((const unsigned char *)name, strlen(name), k->id);
    } else {
        const akv_field *spki = akv_frame_get(frame, AKV_TAG_PUBLIC_KEY);
        if (spki == NULL || spki->len == 0 || (k->spki = malloc(spki->len)) == NULL) {
            p11_report("describe %s: the agent's answer has no PUBLIC_KEY", uri);
            p11_key_free(k);
            return CKR_DEVICE_ERROR;
        }
        memcpy(k->spki, spki->value, spki->len);
        k->spki_len = spki->len;
        rv = load_public(k);
        const akv_field *cert = akv_frame_get(frame, AKV_TAG_CERTIFICATE);
        if (rv == CKR_OK && cert != NULL)
            rv = load_certificate(k, cert);
    }
    if (rv != CKR_OK) {
        p11_key_free(k);
        return rv;
    }
    *out = k;
    return CKR_OK;
}
