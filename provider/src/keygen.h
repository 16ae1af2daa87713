/*
 * Software keys in the RSA/EC keymgmt (keygen.c): generation, settable parameters, TLS groups.
 * Each is a dispatch callback, declared with its OpenSSL function type so the compiler checks it.
 */
#ifndef AKV_KEYGEN_H
#define AKV_KEYGEN_H

#include <openssl/core.h>
#include <openssl/core_dispatch.h>

OSSL_FUNC_keymgmt_gen_init_fn akv_rsa_gen_init;
OSSL_FUNC_keymgmt_gen_init_fn akv_ec_gen_init;
OSSL_FUNC_keymgmt_gen_set_params_fn akv_gen_set_params;
OSSL_FUNC_keymgmt_gen_settable_params_fn akv_rsa_gen_settable_params;
OSSL_FUNC_keymgmt_gen_settable_params_fn akv_ec_gen_settable_params;
OSSL_FUNC_keymgmt_gen_set_template_fn akv_gen_set_template;
OSSL_FUNC_keymgmt_gen_fn akv_gen;
OSSL_FUNC_keymgmt_gen_cleanup_fn akv_gen_cleanup;
OSSL_FUNC_keymgmt_set_params_fn akv_key_set_params;
OSSL_FUNC_keymgmt_settable_params_fn akv_rsa_settable_params;
OSSL_FUNC_keymgmt_settable_params_fn akv_ec_settable_params;
OSSL_FUNC_provider_get_capabilities_fn akv_get_capabilities;

#endif
