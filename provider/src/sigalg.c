/*
 * Pure helpers of the signature code (see sigalg.h). The DER here is built by hand because every
 * structure is short (< 128 bytes, single-byte lengths) and fixed by RFC 3279, 4055 and 5758.
 */
#include "sigalg.h"

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <string.h>

int akv_hsm_digest_bits(const EVP_MD *md)
{
    if (md == NULL)
        return 0;
    if (EVP_MD_is_a(md, "SHA2-256"))
        return 256;
    if (EVP_MD_is_a(md, "SHA2-384"))
        return 384;
    if (EVP_MD_is_a(md, "SHA2-512"))
        return 512;
    return 0;
}

const char *akv_ecdsa_alg(const char *curve)
{
    if (strcmp(curve, "P-256") == 0)
        return "ES256";
    if (strcmp(curve, "P-256K") == 0)
        return "ES256K";
    if (strcmp(curve, "P-384") == 0)
        return "ES384";
    if (strcmp(curve, "P-521") == 0)
        return "ES512";
    return NULL;
}

size_t akv_ecdsa_digest_len(const char *curve)
{
    if (strcmp(curve, "P-256") == 0 || strcmp(curve, "P-256K") == 0)
        return 32;
    if (strcmp(curve, "P-384") == 0)
        return 48;
    if (strcmp(curve, "P-521") == 0)
        return 64;
    return 0;
}

void akv_ecdsa_fit_digest(const unsigned char *in, size_t inlen, unsigned char *out, size_t want)
{
    if (inlen >= want) {
        memcpy(out, in, want);
    } else {
        memset(out, 0, want - inlen);
        memcpy(out + (want - inlen), in, inlen);
    }
}

int akv_ecdsa_raw_to_der(const unsigned char *raw, size_t rawlen, size_t order_bytes, unsigned char *out,
                         size_t outsize, size_t *outlen)
{
    int ok = 0;
    if (order_bytes == 0 || rawlen != 2 * order_bytes)
        return 0;
    ECDSA_SIG *sig = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(raw, (int)order_bytes, NULL);
    BIGNUM *s = BN_bin2bn(raw + order_bytes, (int)order_bytes, NULL);
    if (sig == NULL || r == NULL || s == NULL || BN_is_zero(r) || BN_is_zero(s) || !ECDSA_SIG_set0(sig, r, s)) {
        BN_free(r);
        BN_free(s);
        goto end;
    }
    int len = i2d_ECDSA_SIG(sig, NULL);
    if (len <= 0 || (size_t)len > outsize)
        goto end;
    unsigned char *p = out;
    len = i2d_ECDSA_SIG(sig, &p);
    if (len <= 0)
        goto end;
    *outlen = (size_t)len;
    ok = 1;
end:
    ECDSA_SIG_free(sig);
    return ok;
}

/* Appends tag, length (< 128) and content; returns the new length or 0 when it does not fit. */
static size_t der_put(unsigned char *out, size_t pos, size_t outsize, unsigned char tag, const unsigned char *content,
                      size_t len)
{
    if (len >= 128 || pos + 2 + len > outsize)
        return 0;
    out[pos] = tag;
    out[pos + 1] = (unsigned char)len;
    memmove(out + pos + 2, content, len);
    return pos + 2 + len;
}

static const unsigned char OID_RSA_SHA256[] = {0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x0B};
static const unsigned char OID_RSA_SHA384[] = {0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x0C};
static const unsigned char OID_RSA_SHA512[] = {0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x0D};
static const unsigned char OID_RSASSA_PSS[] = {0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x0A};
static const unsigned char OID_MGF1[] = {0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x08};
static const unsigned char OID_SHA256[] = {0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01};
static const unsigned char OID_SHA384[] = {0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02};
static const unsigned char OID_SHA512[] = {0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03};
static const unsigned char OID_ECDSA_SHA256[] = {0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x04, 0x03, 0x02};
static const unsigned char OID_ECDSA_SHA384[] = {0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x04, 0x03, 0x03};
static const unsigned char OID_ECDSA_SHA512[] = {0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x04, 0x03, 0x04};

/* SEQUENCE { oid [, NULL] } */
static size_t algid(const unsigned char *oid, size_t oidlen, int null_params, unsigned char *out, size_t outsize)
{
    unsigned char inner[64];
    size_t n = der_put(inner, 0, sizeof(inner), 0x06, oid, oidlen);
    if (n == 0)
        return 0;
    if (null_params) {
        if (n + 2 > sizeof(inner))
            return 0;
        inner[n++] = 0x05;
        inner[n++] = 0x00;
    }
    return der_put(out, 0, outsize, 0x30, inner, n);
}

size_t akv_algorithm_id(int is_rsa, int is_pss, int digest_bits, int saltlen, unsigned char *out, size_t outsize)
{
    int idx = digest_bits == 256 ? 0 : digest_bits == 384 ? 1 : digest_bits == 512 ? 2 : -1;
    if (idx < 0)
        return 0;
    if (!is_rsa) {
        const unsigned char *oids[] = {OID_ECDSA_SHA256, OID_ECDSA_SHA384, OID_ECDSA_SHA512};
        return algid(oids[idx], sizeof(OID_ECDSA_SHA256), 0, out, outsize);
    }
    if (!is_pss) {
        const unsigned char *oids[] = {OID_RSA_SHA256, OID_RSA_SHA384, OID_RSA_SHA512};
        return algid(oids[idx], sizeof(OID_RSA_SHA256), 1, out, outsize);
    }
    /* RSASSA-PSS-params (RFC 4055): hashAlgorithm [0], maskGenAlgorithm [1], saltLength [2]. */
    const unsigned char *hash_oids[] = {OID_SHA256, OID_SHA384, OID_SHA512};
    unsigned char hash_alg[32], mgf_inner[64], mgf_alg[64], params[128], body[160], salt[4];
    size_t hash_len = algid(hash_oids[idx], sizeof(OID_SHA256), 0, hash_alg, sizeof(hash_alg));
    size_t n = der_put(mgf_inner, 0, sizeof(mgf_inner), 0x06, OID_MGF1, sizeof(OID_MGF1));
    if (hash_len == 0 || n == 0 || n + hash_len > sizeof(mgf_inner) || saltlen < 0 || saltlen > 127)
        return 0;
    memcpy(mgf_inner + n, hash_alg, hash_len);
    size_t mgf_len = der_put(mgf_alg, 0, sizeof(mgf_alg), 0x30, mgf_inner, n + hash_len);
    salt[0] = 0x02;
    salt[1] = 0x01;
    salt[2] = (unsigned char)saltlen;
    size_t p = der_put(params, 0, sizeof(params), 0xA0, hash_alg, hash_len);
    if (p)
        p = der_put(params, p, sizeof(params), 0xA1, mgf_alg, mgf_len);
    if (p)
        p = der_put(params, p, sizeof(params), 0xA2, salt, 3);
    if (p == 0 || mgf_len == 0)
        return 0;
    size_t b = der_put(body, 0, sizeof(body), 0x06, OID_RSASSA_PSS, sizeof(OID_RSASSA_PSS));
    if (b)
        b = der_put(body, b, sizeof(body), 0x30, params, p);
    if (b == 0)
        return 0;
    return der_put(out, 0, outsize, 0x30, body, b);
}
