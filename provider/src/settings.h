/*
 * The provider's settings: openssl.cnf parameters of its section and the environment (which wins,
 * so a shell set up by `akv dev up` reaches its agent). docs/provider.md lists them all.
 */
#ifndef AKV_SETTINGS_H
#define AKV_SETTINGS_H

#include <openssl/core.h>
#include <openssl/core_dispatch.h>

#include "akv.h"

/*
 * Reads and validates the settings and creates ctx->agent from them. On a bad value raises an
 * error that names the variable or parameter and returns 0 (the provider does not load).
 */
int akv_settings_apply(AKV_PROV_CTX *ctx, OSSL_FUNC_core_get_params_fn *core_get_params);

/*
 * Once per process: one warning (stderr and the log) for each environment variable of the original
 * Managed HSM provider that is set but has no effect here, naming akv's equivalent (compat_env.c).
 */
void akv_warn_original_settings(void);

#endif
