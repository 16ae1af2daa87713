/*
 * Settings, each from the environment or else from openssl.cnf ([akv_sect] of the provider):
 *   AKV_AGENT_SOCKET     / agent_socket      the agent's socket (default: the user's own, below)
 *   AKV_AGENT_TIMEOUT_MS / agent_timeout_ms  bound of one request, 1..3600000 ms (default 15000)
 *   AKV_AGENT_AUTOSTART  / autostart         start the user's agent when none answers (default yes)
 *   AKV_AGENT_COMMAND    / agent_command     the akv executable that autostart runs
 *                                            (default: fixed at build time, see the Makefile)
 *   AKV_AGENT_USER       / agent_user        one more user whose agent may answer (name or uid)
 *   AKV_AGENT_IDLE_EXIT                      seconds an autostarted agent stays idle before it
 *                                            exits (default 900; 0 = never)
 *   AKV_RSA_DECRYPT_PADDING / rsa_decrypt_padding  RSA decryption's padding when the caller names
 *                                            none: pkcs1 (default, as OpenSSL) or oaep (the
 *                                            original Managed HSM provider's default)
 * Numbers are parsed strictly: "15s" or "99999999999" is an error naming the variable, never a
 * silent 15 ms or a wrapped value. The default socket is the agent's own default
 * (src/config/load.ts): $XDG_RUNTIME_DIR/akv/agent.sock, else /run/akv/agent.sock for root, else
 * /tmp/akv-<uid>/agent.sock. Everything is read with secure_getenv: a setuid program that loads
 * the provider cannot be made to run a program or use a socket of its caller's choosing.
 */
#include "settings.h"
#include "setting_values.h"

#include <errno.h>
#include <openssl/rsa.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#ifndef AKV_AGENT_COMMAND_DEFAULT
#define AKV_AGENT_COMMAND_DEFAULT ""
#endif
#define AKV_DEFAULT_IDLE_EXIT_S 900u
#define AKV_MAX_TIMEOUT_MS 3600000u

/* One setting: the environment variable, else the openssl.cnf parameter; `from` names the source. */
typedef struct {
    const char *value;
    const char *from;
} setting;

static setting pick(const char *env_name, const char *cnf_name, const char *cnf_value)
{
    const char *env = secure_getenv(env_name);
    if (env != NULL && *env != '\0')
        return (setting){env, env_name};
    if (cnf_value != NULL && *cnf_value != '\0')
        return (setting){cnf_value, cnf_name};
    return (setting){NULL, NULL};
}

int akv_settings_apply(AKV_PROV_CTX *ctx, OSSL_FUNC_core_get_params_fn *core_get_params)
{
    const char *cnf_socket = NULL, *cnf_timeout = NULL, *cnf_autostart = NULL, *cnf_command = NULL, *cnf_user = NULL,
               *cnf_padding = NULL;
    if (core_get_params != NULL) {
        OSSL_PARAM params[] = {
            OSSL_PARAM_utf8_ptr("agent_socket", (char **)&cnf_socket, 0),
            OSSL_PARAM_utf8_ptr("agent_timeout_ms", (char **)&cnf_timeout, 0),
            OSSL_PARAM_utf8_ptr("autostart", (char **)&cnf_autostart, 0),
            OSSL_PARAM_utf8_ptr("agent_command", (char **)&cnf_command, 0),
            OSSL_PARAM_utf8_ptr("agent_user", (char **)&cnf_user, 0),
            OSSL_PARAM_utf8_ptr("rsa_decrypt_padding", (char **)&cnf_padding, 0),
            OSSL_PARAM_END,
        };
        core_get_params(ctx->handle, params);
    }

    setting sock = pick("AKV_AGENT_SOCKET", "agent_socket", cnf_socket);
    char socket_path[4096];
    if (sock.value != NULL)
        snprintf(socket_path, sizeof(socket_path), "%s", sock.value);
    else
        akv_default_socket_path(socket_path, sizeof(socket_path));

    unsigned long timeout_ms = AKV_DEFAULT_TIMEOUT_MS;
    setting timeout = pick("AKV_AGENT_TIMEOUT_MS", "agent_timeout_ms", cnf_timeout);
    if (timeout.value != NULL && !akv_parse_uint(timeout.value, 1, AKV_MAX_TIMEOUT_MS, &timeout_ms)) {
        AKV_RAISE(ctx, AKV_R_INVALID_ARGUMENT,
                  "%s=%.40s is not a number of milliseconds from 1 to %u; hint: write the number alone, e.g. 15000",
                  timeout.from, timeout.value, AKV_MAX_TIMEOUT_MS);
        return 0;
    }

    int autostart = 1;
    setting start = pick("AKV_AGENT_AUTOSTART", "autostart", cnf_autostart);
    if (start.value != NULL && (autostart = akv_parse_bool(start.value)) < 0) {
        AKV_RAISE(ctx, AKV_R_INVALID_ARGUMENT, "%s=%.40s is not yes or no; hint: write 1/yes/true/on or 0/no/false/off",
                  start.from, start.value);
        return 0;
    }

    unsigned long idle_exit = AKV_DEFAULT_IDLE_EXIT_S;
    /* Environment only: it tells the agent a user's shell starts, not a server's openssl.cnf. */
    const char *idle = secure_getenv("AKV_AGENT_IDLE_EXIT");
    if (idle != NULL && *idle != '\0' && !akv_parse_uint(idle, 0, 31536000ul, &idle_exit)) {
        AKV_RAISE(ctx, AKV_R_INVALID_ARGUMENT,
                  "AKV_AGENT_IDLE_EXIT=%.40s is not a number of seconds (0 to 31536000); hint: e.g. 900, or 0 for "
                  "never",
                  idle);
        return 0;
    }

    setting command = pick("AKV_AGENT_COMMAND", "agent_command", cnf_command);
    const char *agent_command = command.value != NULL ? command.value : AKV_AGENT_COMMAND_DEFAULT;

    uid_t agent_uid = 0;
    setting user = pick("AKV_AGENT_USER", "agent_user", cnf_user);
    if (user.value != NULL && !akv_resolve_user(user.value, &agent_uid)) {
        AKV_RAISE(ctx, AKV_R_INVALID_ARGUMENT,
                  "%s=%.64s is not a user on this system; hint: name the user the agent "
                  "runs as (e.g. akv) or its uid",
                  user.from, user.value);
        return 0;
    }

    setting padding = pick("AKV_RSA_DECRYPT_PADDING", "rsa_decrypt_padding", cnf_padding);
    ctx->rsa_decrypt_padding = RSA_PKCS1_PADDING;
    if (padding.value != NULL) {
        if (strcasecmp(padding.value, "oaep") == 0)
            ctx->rsa_decrypt_padding = RSA_PKCS1_OAEP_PADDING;
        else if (strcasecmp(padding.value, "pkcs1") != 0) {
            AKV_RAISE(ctx, AKV_R_INVALID_ARGUMENT,
                      "%s=%.40s is not an RSA decryption padding; hint: write oaep (RSA-OAEP with SHA-1, the "
                      "original provider's default) or pkcs1 (PKCS#1 v1.5, the default)",
                      padding.from, padding.value);
            return 0;
        }
    }

    ctx->agent = akv_agent_new(socket_path, (int)timeout_ms);
    if (ctx->agent == NULL ||
        !akv_agent_set_autostart(ctx->agent, autostart && *agent_command != '\0' ? agent_command : NULL,
                                 (unsigned)idle_exit, sock.value != NULL)) {
        AKV_RAISE(ctx, AKV_R_INTERNAL, "out of memory");
        return 0;
    }
    if (user.value != NULL)
        akv_agent_allow_uid(ctx->agent, agent_uid);
    akv_log(AKV_LOG_DEBUG,
            "provider settings: agent socket %s (%s), timeout %lu ms, autostart %s (%s), agent user %s, RSA "
            "decryption padding %s",
            socket_path, sock.from != NULL ? sock.from : "default", timeout_ms, autostart ? "on" : "off", agent_command,
            user.value != NULL ? user.value : "-",
            ctx->rsa_decrypt_padding == RSA_PKCS1_OAEP_PADDING ? "oaep" : "pkcs1");
    akv_warn_original_settings();
    return 1;
}
