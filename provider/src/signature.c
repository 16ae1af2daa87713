/*
 * SIGNATURE for RSA (PKCS#1 v1.5 and PSS) and ECDSA. Signing sends a digest to the HSM (one SIGN
 * round trip); digest-sign hashes locally in an EVP_MD_CTX so that dupctx is a plain copy;
 * verification runs locally on the public key. Init functions only check parameters (OpenSSL's
 * TLS code probes keys with trial inits) and never talk to the agent.
 */
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/params.h>
#include <openssl/rsa.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "akv.h"
#include "sigalg.h"

typedef struct {
    AKV_PROV_CTX *prov;
    AKV_KEY *key;
    int is_rsa;
    int signing;           /* 1 sign, 0 verify */
    EVP_MD *md;            /* NULL until a digest is chosen */
    EVP_MD_CTX *mdctx;     /* running hash of digest-sign / digest-verify */
    int pad_mode;          /* RSA_PKCS1_PADDING or RSA_PKCS1_PSS_PADDING */
    int saltlen;           /* RSA_PSS_SALTLEN_* or an explicit byte count */
    int saltlen_set;       /* the application chose a salt length */
    EVP_MD *mgf1_md;       /* NULL = same as md */
    unsigned char aid[AKV_MAX_ALGORITHM_ID];
    size_t aid_len;
} AKV_SIG_CTX;

static void *sig_newctx(void *provctx, const char *propq, int is_rsa)
{
    (void)propq;
    AKV_SIG_CTX *ctx = calloc(1, sizeof(*ctx));
    if (ctx == NULL)
        return NULL;
    ctx->prov = provctx;
    ctx->is_rsa = is_rsa;
    ctx->pad_mode = RSA_PKCS1_PADDING;
    ctx->saltlen = RSA_PSS_SALTLEN_DIGEST;
    return ctx;
}

static void *rsa_newctx(void *provctx, const char *propq)
{
    return sig_newctx(provctx, propq, 1);
}

static void *ecdsa_newctx(void *provctx, const char *propq)
{
    return sig_newctx(provctx, propq, 0);
}

static void sig_freectx(void *vctx)
{
    AKV_SIG_CTX *ctx = vctx;
    if (ctx == NULL)
        return;
    akv_key_free(ctx->key);
    EVP_MD_free(ctx->md);
    EVP_MD_free(ctx->mgf1_md);
    EVP_MD_CTX_free(ctx->mdctx);
    free(ctx);
}

static void *sig_dupctx(void *vctx)
{
    AKV_SIG_CTX *src = vctx;
    AKV_SIG_CTX *dst = malloc(sizeof(*dst));
    if (dst == NULL)
        return NULL;
    *dst = *src;
    dst->mdctx = NULL;
    if (dst->key != NULL)
        akv_key_ref(dst->key);
    if (dst->md != NULL)
        EVP_MD_up_ref(dst->md);
    if (dst->mgf1_md != NULL)
        EVP_MD_up_ref(dst->mgf1_md);
    if (src->mdctx != NULL) {
        dst->mdctx = EVP_MD_CTX_new();
        if (dst->mdctx == NULL || !EVP_MD_CTX_copy_ex(dst->mdctx, src->mdctx)) {
            sig_freectx(dst);
            return NULL;
        }
    }
    return dst;
}

/* Fetches a digest for signing or verifying; refuses what the HSM cannot sign. */
static EVP_MD *fetch_md(AKV_SIG_CTX *ctx, const char *name, const char *props)
{
    EVP_MD *md = EVP_MD_fetch(ctx->prov->pub_libctx, name, props);
    if (md == NULL) {
        akv_raise(ctx->prov, AKV_R_UNSUPPORTED, "unknown digest '%s'", name);
        return NULL;
    }
    if (ctx->signing && akv_hsm_digest_bits(md) == 0) {
        if (EVP_MD_is_a(md, "SHA1"))
            akv_raise(ctx->prov, AKV_R_UNSUPPORTED,
                      "SHA-1 signatures are refused (weak and not offered by the HSM): use SHA-256, SHA-384 or "
                      "SHA-512 (e.g. openssl dgst -sha256)");
        else
            akv_raise(ctx->prov, AKV_R_UNSUPPORTED,
                      "digest %s is not supported by the HSM: use SHA-256, SHA-384 or SHA-512", name);
        EVP_MD_free(md);
        return NULL;
    }
    return md;
}

static int sig_set_ctx_params(void *vctx, const OSSL_PARAM params[]);

static int sig_init(AKV_SIG_CTX *ctx, void *provkey, const OSSL_PARAM params[], int signing)
{
    AKV_KEY *key = provkey;
    ctx->signing = signing;
    ctx->aid_len = 0;
    if (key != NULL) {
        if (key->type != (ctx->is_rsa ? AKV_KEYTYPE_RSA : AKV_KEYTYPE_EC) || key->pub == NULL) {
            akv_raise(ctx->prov, AKV_R_INVALID_ARGUMENT, "%s key cannot be used for %s signatures",
                      akv_key_type_name(key), ctx->is_rsa ? "RSA" : "ECDSA");
            return 0;
        }
        if (signing && key->uri == NULL && !key->local_private) {
            akv_raise(ctx->prov, AKV_R_NO_PRIVATE_KEY,
                      "this key is public only (not an akv URI or key reference): it can verify but not sign");
            return 0;
        }
        if (signing && !akv_key_allows(key, "sign")) {
            akv_raise(ctx->prov, AKV_R_OPERATION_NOT_PERMITTED, "key %s does not allow sign (its key_ops: %s)",
                      key->uri, key->key_ops);
            return 0;
        }
        akv_key_free(ctx->key);
        ctx->key = akv_key_ref(key);
    }
    if (ctx->key == NULL) {
        akv_raise(ctx->prov, AKV_R_INVALID_ARGUMENT, "no key given to the signature operation");
        return 0;
    }
    return sig_set_ctx_params(ctx, params);
}

static int sign_init(void *vctx, void *provkey, const OSSL_PARAM params[])
{
    return sig_init(vctx, provkey, params, 1);
}

static int verify_init(void *vctx, void *provkey, const OSSL_PARAM params[])
{
    return sig_init(vctx, provkey, params, 0);
}

/* Checks that the PSS settings are the one combination the HSM implements. */
static int check_pss(AKV_SIG_CTX *ctx)
{
    int mdsize = EVP_MD_get_size(ctx->md);
    if (ctx->mgf1_md != NULL && !EVP_MD_is_a(ctx->mgf1_md, EVP_MD_get0_name(ctx->md))) {
        akv_raise(ctx->prov, AKV_R_UNSUPPORTED,
                  "RSA-PSS with MGF1 digest %s and message digest %s is not supported: the HSM uses MGF1 with the "
                  "message digest",
                  EVP_MD_get0_name(ctx->mgf1_md), EVP_MD_get0_name(ctx->md));
        return 0;
    }
    if (ctx->saltlen == RSA_PSS_SALTLEN_DIGEST || ctx->saltlen == mdsize)
        return 1;
    const char *what = ctx->saltlen == RSA_PSS_SALTLEN_MAX    ? "max"
                       : ctx->saltlen == RSA_PSS_SALTLEN_AUTO ? "auto (= max when signing)"
                                                              : NULL;
    if (what != NULL)
        akv_raise(ctx->prov, AKV_R_UNSUPPORTED,
                  "RSA-PSS salt length %s is not supported: the HSM always uses a salt as long as the digest (%d "
                  "bytes); use -sigopt rsa_pss_saltlen:digest",
                  what, mdsize);
    else
        akv_raise(ctx->prov, AKV_R_UNSUPPORTED,
                  "RSA-PSS salt length %d is not supported: the HSM always uses a salt as long as the digest (%d "
                  "bytes); use -sigopt rsa_pss_saltlen:digest",
                  ctx->saltlen, mdsize);
    return 0;
}

static int local_sign(AKV_SIG_CTX *ctx, unsigned char *sig, size_t *siglen, size_t sigsize, const unsigned char *tbs,
                      size_t tbslen);

static size_t max_sig_size(const AKV_SIG_CTX *ctx)
{
    return (size_t)EVP_PKEY_get_size(ctx->key->pub);
}

/* With a digest chosen, the input to sign must be exactly that digest's length. */
static int check_input_is_digest(AKV_SIG_CTX *ctx, size_t tbslen)
{
    if (ctx->md == NULL || tbslen == (size_t)EVP_MD_get_size(ctx->md))
        return 1;
    akv_raise(ctx->prov, AKV_R_INVALID_ARGUMENT, "input is %zu bytes but a %s digest is %d bytes", tbslen,
              EVP_MD_get0_name(ctx->md), EVP_MD_get_size(ctx->md));
    return 0;
}

enum sig_buffer { SIG_SIZE_ANSWERED, SIG_BUFFER_TOO_SMALL, SIG_BUFFER_OK };

/* Both sign paths: sig == NULL asks for the signature size; else the buffer must hold the largest. */
static enum sig_buffer check_sig_buffer(AKV_SIG_CTX *ctx, const unsigned char *sig, size_t *siglen, size_t sigsize)
{
    if (sig == NULL) {
        *siglen = max_sig_size(ctx);
        return SIG_SIZE_ANSWERED;
    }
    if (sigsize < max_sig_size(ctx)) {
        akv_raise(ctx->prov, AKV_R_INVALID_ARGUMENT, "signature buffer of %zu bytes is too small (need %zu)", sigsize,
                  max_sig_size(ctx));
        return SIG_BUFFER_TOO_SMALL;
    }
    return SIG_BUFFER_OK;
}

static int do_sign(AKV_SIG_CTX *ctx, unsigned char *sig, size_t *siglen, size_t sigsize, const unsigned char *tbs,
                   size_t tbslen)
{
    char alg[16];
    unsigned char digest[64];
    const unsigned char *input = tbs;
    size_t inlen = tbslen;
    unsigned char *out = NULL;
    size_t outlen = 0;
    int ok = 0;

    if (ctx->key->uri == NULL)
        return local_sign(ctx, sig, siglen, sigsize, tbs, tbslen);
    if (ctx->is_rsa) {
        if (ctx->md == NULL) {
            akv_raise(ctx->prov, AKV_R_INVALID_ARGUMENT,
                      "RSA signing in the HSM needs the digest algorithm: add -pkeyopt digest:sha256 (or sha384, "
                      "sha512) to sign a precomputed digest");
            return 0;
        }
        if (!check_input_is_digest(ctx, tbslen))
            return 0;
        if (ctx->pad_mode == RSA_PKCS1_PSS_PADDING) {
            if (!check_pss(ctx))
                return 0;
        } else if (ctx->pad_mode != RSA_PKCS1_PADDING) {
            akv_raise(ctx->prov, AKV_R_UNSUPPORTED,
                      "RSA padding mode %d is not supported for signing: the HSM signs with pkcs1 or pss",
                      ctx->pad_mode);
            return 0;
        }
        snprintf(alg, sizeof(alg), "%s%d", ctx->pad_mode == RSA_PKCS1_PSS_PADDING ? "PS" : "RS",
                 akv_hsm_digest_bits(ctx->md));
    } else {
        const char *es = akv_ecdsa_alg(ctx->key->curve);
        size_t want = akv_ecdsa_digest_len(ctx->key->curve);
        if (es == NULL) {
            akv_raise(ctx->prov, AKV_R_UNSUPPORTED, "EC curve '%s' of %s is not supported", ctx->key->curve,
                      ctx->key->uri);
            return 0;
        }
        if (!check_input_is_digest(ctx, tbslen))
            return 0;
        if (tbslen == 0 || tbslen > sizeof(digest)) {
            akv_raise(ctx->prov, AKV_R_INVALID_ARGUMENT, "ECDSA input must be a digest of 1 to 64 bytes, not %zu",
                      tbslen);
            return 0;
        }
        /* ECDSA uses the leftmost order-size bits of the digest; shorter digests keep their value. */
        akv_ecdsa_fit_digest(tbs, tbslen, digest, want);
        input = digest;
        inlen = want;
        snprintf(alg, sizeof(alg), "%s", es);
    }

    if (!akv_key_operation(ctx->prov, ctx->key, AKV_OP_SIGN, alg, input, inlen, &out, &outlen))
        return 0;
    if (ctx->is_rsa) {
        size_t modlen = max_sig_size(ctx);
        if (outlen != modlen || outlen > sigsize) {
            akv_raise(ctx->prov, AKV_R_AGENT_PROTOCOL, "the HSM returned a %zu-byte RSA signature, expected %zu",
                      outlen, modlen);
            goto end;
        }
        memcpy(sig, out, outlen);
        *siglen = outlen;
    } else {
        size_t der_len = 0;
        if (!akv_ecdsa_raw_to_der(out, outlen, akv_curve_order_bytes(ctx->key->curve), sig, sigsize, &der_len)) {
            akv_raise(ctx->prov, AKV_R_AGENT_PROTOCOL,
                      "the HSM returned a %zu-byte ECDSA signature, expected r||s of %zu bytes", outlen,
                      2 * akv_curve_order_bytes(ctx->key->curve));
            goto end;
        }
        *siglen = der_len;
    }
    ok = 1;
end:
    akv_secure_free(out, outlen);
    return ok;
}

static int sig_sign(void *vctx, unsigned char *sig, size_t *siglen, size_t sigsize, const unsigned char *tbs,
                    size_t tbslen)
{
    AKV_SIG_CTX *ctx = vctx;
    if (ctx->key == NULL)
        return 0;
    enum sig_buffer buffer = check_sig_buffer(ctx, sig, siglen, sigsize);
    if (buffer != SIG_BUFFER_OK)
        return buffer == SIG_SIZE_ANSWERED;
    return do_sign(ctx, sig, siglen, sigsize, tbs, tbslen);
}

/* Applies this context's padding, salt and digests to a default-provider context. */
static int configure_local(AKV_SIG_CTX *ctx, EVP_PKEY_CTX *c)
{
    int ok = 1;
    if (ctx->is_rsa) {
        ok = EVP_PKEY_CTX_set_rsa_padding(c, ctx->pad_mode) > 0;
        if (ok && ctx->pad_mode == RSA_PKCS1_PSS_PADDING) {
            int saltlen = ctx->saltlen_set ? ctx->saltlen : (ctx->signing ? RSA_PSS_SALTLEN_DIGEST : RSA_PSS_SALTLEN_AUTO);
            ok = EVP_PKEY_CTX_set_rsa_pss_saltlen(c, saltlen) > 0;
            if (ok && ctx->mgf1_md != NULL)
                ok = EVP_PKEY_CTX_set_rsa_mgf1_md(c, ctx->mgf1_md) > 0;
        }
    }
    if (ok && ctx->md != NULL)
        ok = EVP_PKEY_CTX_set_signature_md(c, ctx->md) > 0;
    return ok;
}

/* Verifies locally with the public key, through the default provider in our library context. */
static int do_verify(AKV_SIG_CTX *ctx, const unsigned char *sig, size_t siglen, const unsigned char *tbs,
                     size_t tbslen)
{
    EVP_PKEY_CTX *v = EVP_PKEY_CTX_new_from_pkey(ctx->prov->pub_libctx, ctx->key->pub, NULL);
    int ok = v != NULL && EVP_PKEY_verify_init(v) > 0 && configure_local(ctx, v) &&
             EVP_PKEY_verify(v, sig, siglen, tbs, tbslen) == 1;
    EVP_PKEY_CTX_free(v);
    return ok;
}

/* Signs with a software key (keygen.c), never an HSM key. */
static int local_sign(AKV_SIG_CTX *ctx, unsigned char *sig, size_t *siglen, size_t sigsize, const unsigned char *tbs,
                      size_t tbslen)
{
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_pkey(ctx->prov->pub_libctx, ctx->key->pub, NULL);
    size_t len = sigsize;
    int ok = c != NULL && EVP_PKEY_sign_init(c) > 0 && configure_local(ctx, c) &&
             EVP_PKEY_sign(c, sig, &len, tbs, tbslen) > 0;
    EVP_PKEY_CTX_free(c);
    if (ok)
        *siglen = len;
    return ok;
}

static int sig_verify(void *vctx, const unsigned char *sig, size_t siglen, const unsigned char *tbs, size_t tbslen)
{
    AKV_SIG_CTX *ctx = vctx;
    if (ctx->key == NULL)
        return 0;
    return do_verify(ctx, sig, siglen, tbs, tbslen);
}

static int digest_init(AKV_SIG_CTX *ctx, const char *mdname, void *provkey, const OSSL_PARAM params[], int signing)
{
    ctx->signing = signing;
    if (mdname == NULL || *mdname == '\0')
        mdname = "SHA256";
    EVP_MD *md = fetch_md(ctx, mdname, NULL);
    if (md == NULL)
        return 0;
    EVP_MD_free(ctx->md);
    ctx->md = md;
    if (!sig_init(ctx, provkey, params, signing))
        return 0;
    if (ctx->mdctx == NULL && (ctx->mdctx = EVP_MD_CTX_new()) == NULL)
        return 0;
    return EVP_DigestInit_ex(ctx->mdctx, ctx->md, NULL);
}

static int digest_sign_init(void *vctx, const char *mdname, void *provkey, const OSSL_PARAM params[])
{
    return digest_init(vctx, mdname, provkey, params, 1);
}

static int digest_verify_init(void *vctx, const char *mdname, void *provkey, const OSSL_PARAM params[])
{
    return digest_init(vctx, mdname, provkey, params, 0);
}

static int digest_update(void *vctx, const unsigned char *data, size_t datalen)
{
    AKV_SIG_CTX *ctx = vctx;
    return ctx->mdctx != NULL && EVP_DigestUpdate(ctx->mdctx, data, datalen);
}

static int digest_sign_final(void *vctx, unsigned char *sig, size_t *siglen, size_t sigsize)
{
    AKV_SIG_CTX *ctx = vctx;
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int dlen = 0;
    if (ctx->mdctx == NULL || ctx->key == NULL)
        return 0;
    enum sig_buffer buffer = check_sig_buffer(ctx, sig, siglen, sigsize);
    if (buffer != SIG_BUFFER_OK)
        return buffer == SIG_SIZE_ANSWERED;
    if (!EVP_DigestFinal_ex(ctx->mdctx, digest, &dlen))
        return 0;
    return do_sign(ctx, sig, siglen, sigsize, digest, dlen);
}

static int digest_verify_final(void *vctx, const unsigned char *sig, size_t siglen)
{
    AKV_SIG_CTX *ctx = vctx;
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int dlen = 0;
    if (ctx->mdctx == NULL || ctx->key == NULL || !EVP_DigestFinal_ex(ctx->mdctx, digest, &dlen))
        return 0;
    return do_verify(ctx, sig, siglen, digest, dlen);
}

/* ---- parameters ---- */

/* The names OpenSSL gives RSA padding modes and PSS salt lengths in string parameters. */
typedef struct {
    const char *name;
    int value;
} NAMED_INT;

static const NAMED_INT pad_mode_names[] = {{OSSL_PKEY_RSA_PAD_MODE_PKCSV15, RSA_PKCS1_PADDING},
                                           {OSSL_PKEY_RSA_PAD_MODE_PSS, RSA_PKCS1_PSS_PADDING},
                                           {OSSL_PKEY_RSA_PAD_MODE_NONE, RSA_NO_PADDING},
                                           {OSSL_PKEY_RSA_PAD_MODE_X931, RSA_X931_PADDING},
                                           {NULL, 0}};
static const NAMED_INT saltlen_names[] = {{OSSL_PKEY_RSA_PSS_SALT_LEN_DIGEST, RSA_PSS_SALTLEN_DIGEST},
                                          {OSSL_PKEY_RSA_PSS_SALT_LEN_MAX, RSA_PSS_SALTLEN_MAX},
                                          {OSSL_PKEY_RSA_PSS_SALT_LEN_AUTO, RSA_PSS_SALTLEN_AUTO},
                                          {NULL, 0}};

/* Looks a name up (compared with `same`, strcmp or strcasecmp); 1 and *value if found. */
static int value_of_name(const NAMED_INT *names, int (*same)(const char *, const char *), const char *name,
                         int *value)
{
    for (; names->name != NULL; names++) {
        if (same(name, names->name) == 0) {
            *value = names->value;
            return 1;
        }
    }
    return 0;
}

/* The name of a value, NULL if it has none. */
static const char *name_of_value(const NAMED_INT *names, int value)
{
    for (; names->name != NULL; names++) {
        if (names->value == value)
            return names->name;
    }
    return NULL;
}

static int get_pad_mode_param(const OSSL_PARAM *p, int *mode)
{
    if (p->data_type == OSSL_PARAM_UTF8_STRING)
        return p->data != NULL && value_of_name(pad_mode_names, strcasecmp, p->data, mode);
    return OSSL_PARAM_get_int(p, mode);
}

static int get_saltlen_param(const OSSL_PARAM *p, int *saltlen)
{
    if (p->data_type == OSSL_PARAM_UTF8_STRING) {
        const char *s = p->data;
        if (s == NULL)
            return 0;
        if (!value_of_name(saltlen_names, strcmp, s, saltlen)) {
            char *end;
            long v = strtol(s, &end, 10);
            if (*s == '\0' || *end != '\0' || v < -3 || v > 100000)
                return 0;
            *saltlen = (int)v;
        }
        return 1;
    }
    return OSSL_PARAM_get_int(p, saltlen);
}

static int sig_set_ctx_params(void *vctx, const OSSL_PARAM params[])
{
    AKV_SIG_CTX *ctx = vctx;
    const OSSL_PARAM *p;
    if (params == NULL)
        return 1;
    ctx->aid_len = 0;
    if ((p = OSSL_PARAM_locate_const(params, OSSL_SIGNATURE_PARAM_DIGEST)) != NULL) {
        const char *name = NULL;
        const OSSL_PARAM *pp = OSSL_PARAM_locate_const(params, OSSL_SIGNATURE_PARAM_PROPERTIES);
        const char *props = NULL;
        if (!OSSL_PARAM_get_utf8_string_ptr(p, &name))
            return 0;
        if (pp != NULL && !OSSL_PARAM_get_utf8_string_ptr(pp, &props))
            return 0;
        if (ctx->mdctx != NULL && ctx->md != NULL && !EVP_MD_is_a(ctx->md, name)) {
            akv_raise(ctx->prov, AKV_R_INVALID_ARGUMENT, "the digest cannot change in the middle of a digest-sign");
            return 0;
        }
        EVP_MD *md = fetch_md(ctx, name, NULL);
        if (md == NULL)
            return 0;
        EVP_MD_free(ctx->md);
        ctx->md = md;
    }
    if (!ctx->is_rsa)
        return 1;
    if ((p = OSSL_PARAM_locate_const(params, OSSL_SIGNATURE_PARAM_PAD_MODE)) != NULL) {
        int mode;
        if (!get_pad_mode_param(p, &mode))
            return 0;
        if (mode != RSA_PKCS1_PADDING && mode != RSA_PKCS1_PSS_PADDING) {
            akv_raise(ctx->prov, AKV_R_UNSUPPORTED,
                      "RSA padding mode %d is not supported: use pkcs1 or pss (rsa_padding_mode:pss)", mode);
            return 0;
        }
        ctx->pad_mode = mode;
    }
    if ((p = OSSL_PARAM_locate_const(params, OSSL_SIGNATURE_PARAM_PSS_SALTLEN)) != NULL) {
        if (!get_saltlen_param(p, &ctx->saltlen))
            return 0;
        ctx->saltlen_set = 1;
    }
    if ((p = OSSL_PARAM_locate_const(params, OSSL_SIGNATURE_PARAM_MGF1_DIGEST)) != NULL) {
        const char *name = NULL;
        if (!OSSL_PARAM_get_utf8_string_ptr(p, &name))
            return 0;
        EVP_MD *md = EVP_MD_fetch(ctx->prov->pub_libctx, name, NULL);
        if (md == NULL) {
            akv_raise(ctx->prov, AKV_R_UNSUPPORTED, "unknown MGF1 digest '%s'", name);
            return 0;
        }
        EVP_MD_free(ctx->mgf1_md);
        ctx->mgf1_md = md;
    }
    return 1;
}

static int sig_get_ctx_params(void *vctx, OSSL_PARAM params[])
{
    AKV_SIG_CTX *ctx = vctx;
    OSSL_PARAM *p;

    if ((p = OSSL_PARAM_locate(params, OSSL_SIGNATURE_PARAM_ALGORITHM_ID)) != NULL) {
        if (ctx->md == NULL)
            return 0;
        if (ctx->aid_len == 0) {
            int saltlen = EVP_MD_get_size(ctx->md);
            if (ctx->is_rsa && ctx->pad_mode == RSA_PKCS1_PSS_PADDING && ctx->signing && !check_pss(ctx))
                return 0;
            if (ctx->is_rsa && ctx->pad_mode == RSA_PKCS1_PSS_PADDING && !ctx->signing && ctx->saltlen >= 0)
                saltlen = ctx->saltlen;
            ctx->aid_len = akv_algorithm_id(ctx->is_rsa, ctx->is_rsa && ctx->pad_mode == RSA_PKCS1_PSS_PADDING,
                                            akv_hsm_digest_bits(ctx->md), saltlen, ctx->aid, sizeof(ctx->aid));
            if (ctx->aid_len == 0) {
                akv_raise(ctx->prov, AKV_R_UNSUPPORTED, "no X.509 algorithm identifier for %s with %s",
                          ctx->is_rsa ? "RSA" : "ECDSA", EVP_MD_get0_name(ctx->md));
                return 0;
            }
        }
        if (!OSSL_PARAM_set_octet_string(p, ctx->aid, ctx->aid_len))
            return 0;
    }
    if ((p = OSSL_PARAM_locate(params, OSSL_SIGNATURE_PARAM_DIGEST)) != NULL &&
        !OSSL_PARAM_set_utf8_string(p, ctx->md != NULL ? EVP_MD_get0_name(ctx->md) : ""))
        return 0;
    if ((p = OSSL_PARAM_locate(params, OSSL_SIGNATURE_PARAM_DIGEST_SIZE)) != NULL &&
        !OSSL_PARAM_set_size_t(p, ctx->md != NULL ? (size_t)EVP_MD_get_size(ctx->md) : 0))
        return 0;
    if (!ctx->is_rsa)
        return 1;
    if ((p = OSSL_PARAM_locate(params, OSSL_SIGNATURE_PARAM_PAD_MODE)) != NULL) {
        if (p->data_type == OSSL_PARAM_UTF8_STRING) {
            /* set_ctx_params keeps pad_mode at pkcs1 or pss, both named */
            if (!OSSL_PARAM_set_utf8_string(p, name_of_value(pad_mode_names, ctx->pad_mode)))
                return 0;
        } else if (!OSSL_PARAM_set_int(p, ctx->pad_mode)) {
            return 0;
        }
    }
    if ((p = OSSL_PARAM_locate(params, OSSL_SIGNATURE_PARAM_PSS_SALTLEN)) != NULL) {
        if (p->data_type == OSSL_PARAM_UTF8_STRING) {
            char buf[16];
            const char *s = name_of_value(saltlen_names, ctx->saltlen);
            if (s == NULL) {
                snprintf(buf, sizeof(buf), "%d", ctx->saltlen);
                s = buf;
            }
            if (!OSSL_PARAM_set_utf8_string(p, s))
                return 0;
        } else if (!OSSL_PARAM_set_int(p, ctx->saltlen)) {
            return 0;
        }
    }
    if ((p = OSSL_PARAM_locate(params, OSSL_SIGNATURE_PARAM_MGF1_DIGEST)) != NULL) {
        const EVP_MD *m = ctx->mgf1_md != NULL ? ctx->mgf1_md : ctx->md;
        if (!OSSL_PARAM_set_utf8_string(p, m != NULL ? EVP_MD_get0_name(m) : ""))
            return 0;
    }
    return 1;
}

static const OSSL_PARAM rsa_gettable_ctx[] = {
    OSSL_PARAM_octet_string(OSSL_SIGNATURE_PARAM_ALGORITHM_ID, NULL, 0),
    OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_DIGEST, NULL, 0),
    OSSL_PARAM_size_t(OSSL_SIGNATURE_PARAM_DIGEST_SIZE, NULL),
    OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_PAD_MODE, NULL, 0),
    OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_PSS_SALTLEN, NULL, 0),
    OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_MGF1_DIGEST, NULL, 0),
    OSSL_PARAM_END};
static const OSSL_PARAM ecdsa_gettable_ctx[] = {OSSL_PARAM_octet_string(OSSL_SIGNATURE_PARAM_ALGORITHM_ID, NULL, 0),
                                                OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_DIGEST, NULL, 0),
                                                OSSL_PARAM_size_t(OSSL_SIGNATURE_PARAM_DIGEST_SIZE, NULL),
                                                OSSL_PARAM_END};
static const OSSL_PARAM rsa_settable_ctx[] = {OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_DIGEST, NULL, 0),
                                              OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_PROPERTIES, NULL, 0),
                                              OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_PAD_MODE, NULL, 0),
                                              OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_PSS_SALTLEN, NULL, 0),
                                              OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_MGF1_DIGEST, NULL, 0),
                                              OSSL_PARAM_END};
static const OSSL_PARAM ecdsa_settable_ctx[] = {OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_DIGEST, NULL, 0),
                                                OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_PROPERTIES, NULL, 0),
                                                OSSL_PARAM_END};

static const OSSL_PARAM *rsa_gettable_ctx_params(void *vctx, void *provctx)
{
    (void)vctx;
    (void)provctx;
    return rsa_gettable_ctx;
}
static const OSSL_PARAM *ecdsa_gettable_ctx_params(void *vctx, void *provctx)
{
    (void)vctx;
    (void)provctx;
    return ecdsa_gettable_ctx;
}
static const OSSL_PARAM *rsa_settable_ctx_params(void *vctx, void *provctx)
{
    (void)vctx;
    (void)provctx;
    return rsa_settable_ctx;
}
static const OSSL_PARAM *ecdsa_settable_ctx_params(void *vctx, void *provctx)
{
    (void)vctx;
    (void)provctx;
    return ecdsa_settable_ctx;
}

#define SIGNATURE_COMMON                                                                                             \
    {OSSL_FUNC_SIGNATURE_FREECTX, (void (*)(void))sig_freectx},                                                     \
        {OSSL_FUNC_SIGNATURE_DUPCTX, (void (*)(void))sig_dupctx},                                                   \
        {OSSL_FUNC_SIGNATURE_SIGN_INIT, (void (*)(void))sign_init}, {OSSL_FUNC_SIGNATURE_SIGN, (void (*)(void))sig_sign}, \
        {OSSL_FUNC_SIGNATURE_VERIFY_INIT, (void (*)(void))verify_init},                                             \
        {OSSL_FUNC_SIGNATURE_VERIFY, (void (*)(void))sig_verify},                                                   \
        {OSSL_FUNC_SIGNATURE_DIGEST_SIGN_INIT, (void (*)(void))digest_sign_init},                                   \
        {OSSL_FUNC_SIGNATURE_DIGEST_SIGN_UPDATE, (void (*)(void))digest_update},                                    \
        {OSSL_FUNC_SIGNATURE_DIGEST_SIGN_FINAL, (void (*)(void))digest_sign_final},                                 \
        {OSSL_FUNC_SIGNATURE_DIGEST_VERIFY_INIT, (void (*)(void))digest_verify_init},                               \
        {OSSL_FUNC_SIGNATURE_DIGEST_VERIFY_UPDATE, (void (*)(void))digest_update},                                  \
        {OSSL_FUNC_SIGNATURE_DIGEST_VERIFY_FINAL, (void (*)(void))digest_verify_final},                             \
        {OSSL_FUNC_SIGNATURE_GET_CTX_PARAMS, (void (*)(void))sig_get_ctx_params},                                   \
        {OSSL_FUNC_SIGNATURE_SET_CTX_PARAMS, (void (*)(void))sig_set_ctx_params}

const OSSL_DISPATCH akv_rsa_signature_functions[] = {
    SIGNATURE_COMMON,
    {OSSL_FUNC_SIGNATURE_NEWCTX, (void (*)(void))rsa_newctx},
    {OSSL_FUNC_SIGNATURE_GETTABLE_CTX_PARAMS, (void (*)(void))rsa_gettable_ctx_params},
    {OSSL_FUNC_SIGNATURE_SETTABLE_CTX_PARAMS, (void (*)(void))rsa_settable_ctx_params},
    {0, NULL}};

const OSSL_DISPATCH akv_ecdsa_signature_functions[] = {
    SIGNATURE_COMMON,
    {OSSL_FUNC_SIGNATURE_NEWCTX, (void (*)(void))ecdsa_newctx},
    {OSSL_FUNC_SIGNATURE_GETTABLE_CTX_PARAMS, (void (*)(void))ecdsa_gettable_ctx_params},
    {OSSL_FUNC_SIGNATURE_SETTABLE_CTX_PARAMS, (void (*)(void))ecdsa_settable_ctx_params},
    {0, NULL}};
