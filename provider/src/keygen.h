/* Software keys in the RSA/EC keymgmt (keygen.c): generation, settable parameters, TLS groups. */
#ifndef AKV_KEYGEN_H
#define AKV_KEYGEN_H

#include <openssl/core.h>

void *akv_rsa_gen_init(void *provctx, int selection, const OSSL_PARAM params[]);
void *akv_ec_gen_init(void *provctx, int selection, const OSSL_PARAM params[]);
int akv_gen_set_params(void *genctx, const OSSL_PARAM params[]);
const OSSL_PARAM *akv_rsa_gen_settable_params(void *genctx, void *provctx);
const OSSL_PARAM *akv_ec_gen_settable_params(void *genctx, void *provctx);
int akv_gen_set_template(void *genctx, void *templ);
void *akv_gen(void *genctx, OSSL_CALLBACK *cb, void *cbarg);
void akv_gen_cleanup(void *genctx);
int akv_key_set_params(void *keydata, const OSSL_PARAM params[]);
const OSSL_PARAM *akv_rsa_settable_params(void *provctx);
const OSSL_PARAM *akv_ec_settable_params(void *provctx);
int akv_get_capabilities(void *provctx, const char *capability, OSSL_CALLBACK *cb, void *arg);

#endif
