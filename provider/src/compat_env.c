/*
 * Environment variables of the original provider (microsoft/AzureKeyVaultManagedHSMEngine, its
 * README and sources) that akv cannot honour with the same meaning. Each one that is set gets one
 * warning per process, on stderr (where the original logged) and in the log, naming what akv
 * uses instead; none is silently ignored. The ones akv honours are read where they apply:
 * AKV_LOG_FILE, AKV_PROVIDER_LOG, AKV_LOG_LEVEL and RUST_LOG in log.c, AZURE_CLI_ACCESS_TOKEN and
 * the AZURE_* credential variables by the agent. docs/migrating.md has the whole table.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "akv.h"
#include "settings.h"

static const char *env(const char *name)
{
    const char *v = secure_getenv(name);
    return v != NULL && *v != '\0' ? v : NULL;
}

static void warn(const char *name, const char *what)
{
    fprintf(stderr, "akv_provider: warning: %s is set (a setting of the original Managed HSM provider) but %s\n", name,
            what);
    fflush(stderr);
    akv_log(AKV_LOG_WARN, "%s is set (a setting of the original Managed HSM provider) but %s", name, what);
}

static void warn_once(void)
{
    if (env("AKV_DEFAULT_VAULT") != NULL)
        warn("AKV_DEFAULT_VAULT",
             "akv takes the HSM name from each key URI (managedhsm:NAME:KEY or akv:vault=NAME,name=KEY); the akv "
             "command's default --hsm-name is AKV_HSM_NAME (docs/migrating.md)");
    if (env("AZURE_MANAGEDHSM_URL") != NULL)
        warn("AZURE_MANAGEDHSM_URL",
             "akv reaches https://NAME.managedhsm.azure.net for the NAME in the key URI; another endpoint is set in "
             "the agent's config as vaults.NAME.endpoint (docs/configuration.md)");
    if (env("RUST_LOG") != NULL && env("AKV_LOG_FILE") == NULL && env("AKV_PROVIDER_LOG") == NULL)
        warn("RUST_LOG",
             "akv_provider logs only to a file: set AKV_LOG_FILE=PATH (RUST_LOG or AKV_LOG_LEVEL then set the "
             "level; docs/migrating.md)");
}

void akv_warn_original_settings(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, warn_once);
}
