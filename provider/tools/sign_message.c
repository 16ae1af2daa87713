/*
 * The OpenSSL 3.4+ signature API with an akv key (docs/compatibility.md):
 *   sign_message URI
 * For each composite algorithm of the key's type (RSA-SHA256/384/512 or ECDSA-SHA256/384/512),
 * fetched from akv_provider: EVP_PKEY_sign_message_init + update + final, the one-shot
 * EVP_PKEY_sign on the message, and EVP_PKEY_sign_init_ex2 + EVP_PKEY_sign on a digest; every
 * signature is verified with a public-only copy of the key by the default provider. Then the
 * default provider's composite given the HSM key must fail with akv's "cannot be exported" error
 * (never a silent software signature). Prints one line per check; exits 0 only if all pass.
 * Built against OpenSSL < 3.4, it says so and exits 0 (that API does not exist there).
 */
#include <openssl/core_dispatch.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/store.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <string.h>

#ifndef OSSL_FUNC_SIGNATURE_SIGN_MESSAGE_INIT
int main(void)
{
    printf("sign_message: this OpenSSL has no sign_message API (3.4+)\n");
    return 0;
}
#else

static const unsigned char part1[] = "akv composite signature, ";
static const unsigned char part2[] = "second part of the message";

static EVP_PKEY *load(const char *uri)
{
    OSSL_STORE_CTX *store = OSSL_STORE_open(uri, NULL, NULL, NULL, NULL);
    EVP_PKEY *pkey = NULL;
    while (store != NULL && pkey == NULL && !OSSL_STORE_eof(store)) {
        OSSL_STORE_INFO *info = OSSL_STORE_load(store);
        if (info != NULL && OSSL_STORE_INFO_get_type(info) == OSSL_STORE_INFO_PKEY)
            pkey = OSSL_STORE_INFO_get1_PKEY(info);
        OSSL_STORE_INFO_free(info);
    }
    OSSL_STORE_close(store);
    return pkey;
}

/* The public half, re-decoded so that the default provider holds it. */
static EVP_PKEY *public_copy(EVP_PKEY *key)
{
    unsigned char *der = NULL;
    int len = i2d_PUBKEY(key, &der);
    const unsigned char *p = der;
    EVP_PKEY *pub = len > 0 ? d2i_PUBKEY_ex(NULL, &p, len, NULL, "provider=default") : NULL;
    OPENSSL_free(der);
    return pub;
}

static int verify_message(EVP_PKEY *pub, const char *alg, const unsigned char *sig, size_t siglen)
{
    EVP_SIGNATURE *s = EVP_SIGNATURE_fetch(NULL, alg, "provider=default");
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pub, "provider=default");
    int ok = s != NULL && ctx != NULL && EVP_PKEY_verify_message_init(ctx, s, NULL) == 1 &&
             EVP_PKEY_CTX_set_signature(ctx, sig, siglen) == 1 &&
             EVP_PKEY_verify_message_update(ctx, part1, sizeof(part1) - 1) == 1 &&
             EVP_PKEY_verify_message_update(ctx, part2, sizeof(part2) - 1) == 1 &&
             EVP_PKEY_verify_message_final(ctx) == 1;
    EVP_PKEY_CTX_free(ctx);
    EVP_SIGNATURE_free(s);
    return ok;
}

static int report(const char *alg, const char *what, int ok)
{
    printf("%s %s %s\n", ok ? "PASS" : "FAIL", alg, what);
    if (!ok)
        ERR_print_errors_fp(stdout);
    ERR_clear_error();
    return ok;
}

static int check(EVP_PKEY *key, EVP_PKEY *pub, const char *alg, const char *md)
{
    unsigned char sig[1024], msg[sizeof(part1) + sizeof(part2)], digest[EVP_MAX_MD_SIZE];
    size_t siglen = sizeof(sig), msglen = 0;
    unsigned int dlen = 0;
    int passed = 1;
    EVP_SIGNATURE *s = EVP_SIGNATURE_fetch(NULL, alg, "provider=akv_provider");
    if (s == NULL)
        return report(alg, "fetched from akv_provider", 0);

    /* Streaming: init, two updates, final (first asking the size). */
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, key, NULL);
    size_t needed = 0;
    int ok = ctx != NULL && EVP_PKEY_sign_message_init(ctx, s, NULL) == 1 &&
             EVP_PKEY_sign_message_update(ctx, part1, sizeof(part1) - 1) == 1 &&
             EVP_PKEY_sign_message_update(ctx, part2, sizeof(part2) - 1) == 1 &&
             EVP_PKEY_sign_message_final(ctx, NULL, &needed) == 1 && needed <= sizeof(sig) &&
             EVP_PKEY_sign_message_final(ctx, sig, &siglen) == 1;
    passed &=
        report(alg, "sign_message_init/update/final in the HSM, verified", ok && verify_message(pub, alg, sig, siglen));
    EVP_PKEY_CTX_free(ctx);

    /* One shot: EVP_PKEY_sign on the whole message after sign_message_init. */
    memcpy(msg, part1, sizeof(part1) - 1);
    memcpy(msg + sizeof(part1) - 1, part2, sizeof(part2) - 1);
    msglen = sizeof(part1) - 1 + sizeof(part2) - 1;
    siglen = sizeof(sig);
    ctx = EVP_PKEY_CTX_new_from_pkey(NULL, key, NULL);
    ok = ctx != NULL && EVP_PKEY_sign_message_init(ctx, s, NULL) == 1 &&
         EVP_PKEY_sign(ctx, sig, &siglen, msg, msglen) == 1;
    passed &= report(alg, "sign_message_init + one-shot EVP_PKEY_sign, verified",
                     ok && verify_message(pub, alg, sig, siglen));
    EVP_PKEY_CTX_free(ctx);

    /* sign_init_ex2 with the composite: EVP_PKEY_sign gets the digest. */
    siglen = sizeof(sig);
    ctx = EVP_PKEY_CTX_new_from_pkey(NULL, key, NULL);
    ok = EVP_Digest(msg, msglen, digest, &dlen, EVP_get_digestbyname(md), NULL) == 1 && ctx != NULL &&
         EVP_PKEY_sign_init_ex2(ctx, s, NULL) == 1 && EVP_PKEY_sign(ctx, sig, &siglen, digest, dlen) == 1;
    passed &= report(alg, "sign_init_ex2 + EVP_PKEY_sign of the digest, verified",
                     ok && verify_message(pub, alg, sig, siglen));
    EVP_PKEY_CTX_free(ctx);
    EVP_SIGNATURE_free(s);

    /* The default provider's composite cannot sign with a key it cannot have: a clear refusal. */
    s = EVP_SIGNATURE_fetch(NULL, alg, "provider=default");
    ctx = EVP_PKEY_CTX_new_from_pkey(NULL, key, NULL);
    siglen = sizeof(sig);
    ok = s != NULL && ctx != NULL && EVP_PKEY_sign_message_init(ctx, s, NULL) == 1 &&
         EVP_PKEY_sign(ctx, sig, &siglen, msg, msglen) == 1;
    unsigned long err;
    const char *data = NULL;
    int flags = 0, said = 0;
    while ((err = ERR_get_error_all(NULL, NULL, NULL, &data, &flags)) != 0)
        if ((flags & ERR_TXT_STRING) != 0 && data != NULL && strstr(data, "cannot be exported") != NULL)
            said = 1;
    passed &= report(alg, "the default provider's composite is refused with akv's reason", !ok && said);
    EVP_PKEY_CTX_free(ctx);
    EVP_SIGNATURE_free(s);
    return passed;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: sign_message URI\n");
        return 2;
    }
    EVP_PKEY *key = load(argv[1]);
    EVP_PKEY *pub = key != NULL ? public_copy(key) : NULL;
    if (pub == NULL) {
        fprintf(stderr, "sign_message: cannot load %s\n", argv[1]);
        ERR_print_errors_fp(stderr);
        return 1;
    }
    int rsa = EVP_PKEY_is_a(key, "RSA");
    static const char *const mds[] = {"SHA256", "SHA384", "SHA512"};
    int passed = 1;
    for (int i = 0; i < 3; i++) {
        char alg[32];
        snprintf(alg, sizeof(alg), "%s-%s", rsa ? "RSA" : "ECDSA", mds[i]);
        passed &= check(key, pub, alg, mds[i]);
    }
    EVP_PKEY_free(pub);
    EVP_PKEY_free(key);
    return passed ? 0 : 1;
}
#endif
