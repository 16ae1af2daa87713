/*
 * Raising errors through the core, so they land in the application's error queue with the
 * provider's name and a reason a person can act on.
 */
#include <openssl/core_dispatch.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "akv.h"

static const OSSL_ITEM reason_strings[] = {
    {AKV_R_AGENT_UNREACHABLE, "akv agent not reachable"},
    {AKV_R_AGENT_IO, "connection to the akv agent broke"},
    {AKV_R_AGENT_TIMEOUT, "akv agent did not answer in time"},
    {AKV_R_AGENT_PROTOCOL, "akv agent sent an invalid answer"},
    {AKV_R_BAD_URI, "malformed key URI"},
    {AKV_R_KEY_NOT_FOUND, "key not found"},
    {AKV_R_OPERATION_NOT_PERMITTED, "operation not permitted for this key"},
    {AKV_R_UNAUTHORIZED, "no usable Azure credential"},
    {AKV_R_HSM_THROTTLED, "HSM throttled"},
    {AKV_R_HSM_UNAVAILABLE, "HSM unavailable"},
    {AKV_R_UNSUPPORTED, "unsupported algorithm or parameter"},
    {AKV_R_KEY_DISABLED, "key disabled or outside its validity period"},
    {AKV_R_BAD_PARAMETER, "HSM refused the input"},
    {AKV_R_AGENT_INTERNAL, "akv agent internal error"},
    {AKV_R_PRIVATE_KEY_NOT_EXPORTABLE, "private key stays in the HSM"},
    {AKV_R_NO_PRIVATE_KEY, "key has no private part"},
    {AKV_R_INVALID_ARGUMENT, "invalid argument"},
    {AKV_R_BAD_KEY_REFERENCE, "malformed akv key reference file"},
    {AKV_R_INTERNAL, "akv provider internal error"},
    {AKV_R_ACCESS_DENIED, "access denied by the akv agent's policy"},
    {0, NULL},
};

/* core_vset_error takes a va_list: this passes our own arguments through. */
static void set_error(const AKV_PROV_CTX *ctx, uint32_t reason, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    ctx->core_vset_error(ctx->handle, reason, fmt, ap);
    va_end(ap);
}

const OSSL_ITEM *akv_reason_strings(void)
{
    return reason_strings;
}

/*
 * OpenSSL keeps at most ERR_MAX_DATA_SIZE (1024) bytes of error text, and OpenSSL 3.0 drops a text
 * that does not fit instead of shortening it: format here, and cut a long text with "..." so the
 * start of the message (what failed) always reaches the user.
 */
#define AKV_ERROR_TEXT_MAX 1000

static void format_error_text(char *text, size_t size, const char *fmt, va_list ap)
{
    int n = vsnprintf(text, size, fmt, ap);
    if (n < 0)
        snprintf(text, size, "(unprintable error text)");
    else if ((size_t)n >= size)
        memcpy(text + size - 4, "...", 4);
}

void akv_raise(const AKV_PROV_CTX *ctx, const char *file, int line, const char *func, int reason, const char *fmt, ...)
{
    char text[AKV_ERROR_TEXT_MAX + 1];
    va_list ap;
    va_start(ap, fmt);
    format_error_text(text, sizeof(text), fmt, ap);
    va_end(ap);
    if (ctx != NULL && ctx->core_new_error != NULL && ctx->core_set_error_debug != NULL &&
        ctx->core_vset_error != NULL) {
        ctx->core_new_error(ctx->handle);
        ctx->core_set_error_debug(ctx->handle, file, line, func);
        set_error(ctx, (uint32_t)reason, "%s", text);
    }
    akv_log(AKV_LOG_WARN, "error in %s: %s", func, text);
}
