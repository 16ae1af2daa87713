/*
 * STORE for the schemes managedhsm:, akv: and keyvault:. Opening a key URI costs nothing; the
 * first load sends one DESCRIBE and hands OpenSSL a reference to the key. A vault URI without a
 * key name (`managedhsm:MyHSM:`, `keyvault:v:`, `akv:vault=MyHSM`) lists the vault's keys as
 * names, each a URI that can be opened in turn (`openssl storeutl -r`).
 */
#include <openssl/core_names.h>
#include <openssl/core_object.h>
#include <openssl/params.h>
#include <openssl/store.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "akv.h"

static OSSL_FUNC_store_open_fn store_open;
static OSSL_FUNC_store_settable_ctx_params_fn store_settable_ctx_params;
static OSSL_FUNC_store_set_ctx_params_fn store_set_ctx_params;
static OSSL_FUNC_store_load_fn store_load;
static OSSL_FUNC_store_eof_fn store_eof;
static OSSL_FUNC_store_close_fn store_close;

typedef struct {
    AKV_PROV_CTX *prov;
    char *uri;
    int expect;  /* OSSL_STORE_INFO_* the application wants, 0 = anything */
    int listing; /* the URI names a vault, not a key */
    char vault[256];
    char vault_type[16];
    char **names;
    int nnames;
    int next; /* next name to return */
    int done;
} AKV_STORE_CTX;

/*
 * Recognises the vault-only forms. Fills vault/vault_type and returns 1 for a listing URI;
 * returns 0 for anything else (the agent parses key URIs and reports their errors).
 */
static int parse_listing_uri(const char *uri, char *vault, size_t vlen, char *vtype, size_t tlen)
{
    const char *rest;
    if (strncasecmp(uri, "managedhsm:", 11) == 0 || strncasecmp(uri, "keyvault:", 9) == 0) {
        int hsm = strncasecmp(uri, "managedhsm:", 11) == 0;
        rest = uri + (hsm ? 11 : 9);
        const char *colon = strchr(rest, ':');
        size_t n = colon ? (size_t)(colon - rest) : strlen(rest);
        if (colon != NULL && colon[1] != '\0')
            return 0; /* has a key name */
        if (n == 0 || n >= vlen || memchr(rest, '?', n) != NULL)
            return 0;
        memcpy(vault, rest, n);
        vault[n] = '\0';
        snprintf(vtype, tlen, "%s", hsm ? "managedhsm" : "keyvault");
        return 1;
    }
    if (strncasecmp(uri, "akv:", 4) == 0) {
        rest = uri + 4;
        int has_name = 0;
        vault[0] = '\0';
        snprintf(vtype, tlen, "managedhsm");
        while (*rest != '\0') {
            const char *end = strchr(rest, ',');
            size_t len = end ? (size_t)(end - rest) : strlen(rest);
            if (len > 5 && strncmp(rest, "name=", 5) == 0)
                has_name = 1;
            else if (len > 6 && strncmp(rest, "vault=", 6) == 0 && len - 6 < vlen) {
                memcpy(vault, rest + 6, len - 6);
                vault[len - 6] = '\0';
            } else if (len > 5 && strncmp(rest, "type=", 5) == 0 && len - 5 < tlen) {
                memcpy(vtype, rest + 5, len - 5);
                vtype[len - 5] = '\0';
            }
            if (end == NULL)
                break;
            rest = end + 1;
        }
        return !has_name && vault[0] != '\0';
    }
    return 0;
}

static void *store_open(void *provctx, const char *uri)
{
    AKV_STORE_CTX *ctx = calloc(1, sizeof(*ctx));
    if (ctx == NULL)
        return NULL;
    ctx->prov = provctx;
    ctx->uri = strdup(uri);
    if (ctx->uri == NULL) {
        free(ctx);
        return NULL;
    }
    ctx->listing = parse_listing_uri(uri, ctx->vault, sizeof(ctx->vault), ctx->vault_type, sizeof(ctx->vault_type));
    akv_log(AKV_LOG_DEBUG, "store open %s%s", uri, ctx->listing ? " (listing)" : "");
    return ctx;
}

static const OSSL_PARAM *store_settable_ctx_params(void *provctx)
{
    static const OSSL_PARAM settable[] = {
        OSSL_PARAM_int(OSSL_STORE_PARAM_EXPECT, NULL),
        OSSL_PARAM_utf8_string(OSSL_STORE_PARAM_PROPERTIES, NULL, 0),
        OSSL_PARAM_END,
    };
    (void)provctx;
    return settable;
}

static int store_set_ctx_params(void *loaderctx, const OSSL_PARAM params[])
{
    AKV_STORE_CTX *ctx = loaderctx;
    const OSSL_PARAM *p = OSSL_PARAM_locate_const(params, OSSL_STORE_PARAM_EXPECT);
    if (p != NULL && !OSSL_PARAM_get_int(p, &ctx->expect))
        return 0;
    return 1;
}

static int load_name(AKV_STORE_CTX *ctx, OSSL_CALLBACK *object_cb, void *object_cbarg)
{
    char uri[1024], desc[512];
    int object_type = OSSL_OBJECT_NAME;
    const char *name = ctx->names[ctx->next++];
    snprintf(uri, sizeof(uri), "%s:%s:%s", ctx->vault_type, ctx->vault, name);
    snprintf(desc, sizeof(desc), "key %s in %s %s", name, ctx->vault_type, ctx->vault);
    OSSL_PARAM params[] = {
        OSSL_PARAM_int(OSSL_OBJECT_PARAM_TYPE, &object_type),
        OSSL_PARAM_utf8_string(OSSL_OBJECT_PARAM_DATA, uri, strlen(uri)),
        OSSL_PARAM_utf8_string(OSSL_OBJECT_PARAM_DESC, desc, strlen(desc)),
        OSSL_PARAM_END,
    };
    return object_cb(params, object_cbarg);
}

/*
 * At the end of a listing for an application that wants a key (`openssl pkey -in managedhsm:MyHSM`),
 * which otherwise ends in OpenSSL's bare "Could not read key": says that the URI names no key. The
 * error is raised as the listing ends, so `openssl storeutl -keys` still gets every name.
 */
static void explain_listing(AKV_STORE_CTX *ctx)
{
    if (ctx->expect != OSSL_STORE_INFO_PKEY && ctx->expect != OSSL_STORE_INFO_PUBKEY)
        return;
    char example[600];
    if (strncasecmp(ctx->uri, "akv:", 4) == 0)
        snprintf(example, sizeof(example), "%.300s,name=KEY", ctx->uri);
    else
        snprintf(example, sizeof(example), "%s:%s:KEY", ctx->vault_type, ctx->vault);
    AKV_RAISE(ctx->prov, AKV_R_BAD_URI,
              "%.300s names an HSM or vault but no key; hint: name the key, as in %s (list the keys with "
              "`openssl storeutl -provider akv_provider -provider default %s:%s:`)",
              ctx->uri, example, ctx->vault_type, ctx->vault);
}

static int store_load(void *loaderctx, OSSL_CALLBACK *object_cb, void *object_cbarg, OSSL_PASSPHRASE_CALLBACK *pw_cb,
                      void *pw_cbarg)
{
    AKV_STORE_CTX *ctx = loaderctx;
    (void)pw_cb;
    (void)pw_cbarg;
    if (ctx->done)
        return 0;
    if (ctx->listing) {
        if (ctx->names == NULL) {
            ctx->nnames = akv_list_keys(ctx->prov, ctx->vault, ctx->vault_type, &ctx->names);
            if (ctx->nnames < 0) {
                ctx->done = 1;
                return 0;
            }
        }
        if (ctx->next >= ctx->nnames) {
            ctx->done = 1;
            explain_listing(ctx);
            return 0;
        }
        int ok = load_name(ctx, object_cb, object_cbarg);
        if (ctx->next >= ctx->nnames) {
            ctx->done = 1;
            explain_listing(ctx);
        }
        return ok;
    }
    ctx->done = 1;
    /* Only keys live here: asking for certificates or CRLs finds nothing, without a round trip. */
    if (ctx->expect != 0 && ctx->expect != OSSL_STORE_INFO_PKEY && ctx->expect != OSSL_STORE_INFO_PUBKEY)
        return 0;
    AKV_KEY *key = akv_describe(ctx->prov, ctx->uri);
    if (key == NULL)
        return 0;
    return akv_pass_key_reference(key, object_cb, object_cbarg);
}

static int store_eof(void *loaderctx)
{
    AKV_STORE_CTX *ctx = loaderctx;
    return ctx->done;
}

static int store_close(void *loaderctx)
{
    AKV_STORE_CTX *ctx = loaderctx;
    if (ctx == NULL)
        return 1;
    akv_free_names(ctx->names, ctx->nnames > 0 ? ctx->nnames : 0);
    free(ctx->uri);
    free(ctx);
    return 1;
}

const OSSL_DISPATCH akv_store_functions[] = {
    {OSSL_FUNC_STORE_OPEN, (void (*)(void))store_open},
    {OSSL_FUNC_STORE_SETTABLE_CTX_PARAMS, (void (*)(void))store_settable_ctx_params},
    {OSSL_FUNC_STORE_SET_CTX_PARAMS, (void (*)(void))store_set_ctx_params},
    {OSSL_FUNC_STORE_LOAD, (void (*)(void))store_load},
    {OSSL_FUNC_STORE_EOF, (void (*)(void))store_eof},
    {OSSL_FUNC_STORE_CLOSE, (void (*)(void))store_close},
    {0, NULL},
};
