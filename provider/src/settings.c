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

/* The provider's openssl.cnf section as OpenSSL hands it over (NULL: not set). */
typedef struct {
    const char *socket, *timeout, *autostart, *command, *user, *padding;
} cnf_section;

static void read_cnf_section(AKV_PROV_CTX *ctx, OSSL_FUNC_core_get_params_fn *core_get_params, cnf_section *cnf)
{
    memset(cnf, 0, sizeof(*cnf));
    if (core_get_params == NULL)
        return;
    OSSL_PARAM params[] = {
        OSSL_PARAM_utf8_ptr("agent_socket", (char **)&cnf->socket, 0),
        OSSL_PARAM_utf8_ptr("agent_timeout_ms", (char **)&cnf->timeout, 0),
        OSSL_PARAM_utf8_ptr("autostart", (char **)&cnf->autostart, 0),
        OSSL_PARAM_utf8_ptr("agent_command", (char **)&cnf->command, 0),
        OSSL_PARAM_utf8_ptr("agent_user", (char **)&cnf->user, 0),
        OSSL_PARAM_utf8_ptr("rsa_decrypt_padding", (char **)&cnf->padding, 0),
        OSSL_PARAM_END,
    };
    core_get_params(ctx->handle, params);
}

/* How the provider reaches and starts its agent, validated. */
typedef struct {
    char socket_path[4096];
    setting socket; /* the configured socket, or {NULL, NULL} for the default one */
    unsigned long timeout_ms;
    int autostart;
    unsigned long idle_exit_s;
    const char *command;
    setting user; /* agent_user as written; agent_uid is what it names */
    uid_t agent_uid;
} agent_settings;

/* Each setting parsed strictly; an invalid one is raised naming its source, and 0 returned. */
static int parse_agent_settings(AKV_PROV_CTX *ctx, const cnf_section *cnf, agent_settings *s)
{
    s->socket = pick("AKV_AGENT_SOCKET", "agent_socket", cnf->socket);
    if (s->socket.value != NULL)
        snprintf(s->socket_path, sizeof(s->socket_path), "%s", s->socket.value);
    else
        akv_default_socket_path(s->socket_path, sizeof(s->socket_path));

    s->timeout_ms = AKV_DEFAULT_TIMEOUT_MS;
    setting timeout = pick("AKV_AGENT_TIMEOUT_MS", "agent_timeout_ms", cnf->timeout);
    if (timeout.value != NULL && !akv_parse_uint(timeout.value, 1, AKV_MAX_TIMEOUT_MS, &s->timeout_ms)) {
        AKV_RAISE(ctx, AKV_R_INVALID_ARGUMENT,
                  "%s=%.40s is not a number of milliseconds from 1 to %u; hint: write the number alone, e.g. 15000",
                  timeout.from, timeout.value, AKV_MAX_TIMEOUT_MS);
        return 0;
    }

    s->autostart = 1;
    setting start = pick("AKV_AGENT_AUTOSTART", "autostart", cnf->autostart);
    if (start.value != NULL && (s->autostart = akv_parse_bool(start.value)) < 0) {
        AKV_RAISE(ctx, AKV_R_INVALID_ARGUMENT, "%s=%.40s is not yes or no; hint: write 1/yes/true/on or 0/no/false/off",
                  start.from, start.value);
        return 0;
    }

    s->idle_exit_s = AKV_DEFAULT_IDLE_EXIT_S;
    /* Environment only: it tells the agent a user's shell starts, not a server's openssl.cnf. */
    const char *idle = secure_getenv("AKV_AGENT_IDLE_EXIT");
    if (idle != NULL && *idle != '\0' && !akv_parse_uint(idle, 0, 31536000ul, &s->idle_exit_s)) {
        AKV_RAISE(ctx, AKV_R_INVALID_ARGUMENT,
                  "AKV_AGENT_IDLE_EXIT=%.40s is not a number of seconds (0 to 31536000); hint: e.g. 900, or 0 for "
                  "never",
                  idle);
        return 0;
    }

    setting command = pick("AKV_AGENT_COMMAND", "agent_command", cnf->command);
    s->command = command.value != NULL ? command.value : AKV_AGENT_COMMAND_DEFAULT;

    s->agent_uid = 0;
    s->user = pick("AKV_AGENT_USER", "agent_user", cnf->user);
    if (s->user.value != NULL && !akv_resolve_user(s->user.value, &s->agent_uid)) {
        AKV_RAISE(ctx, AKV_R_INVALID_ARGUMENT,
                  "%s=%.64s is not a user on this system; hint: name the user the agent "
                  "runs as (e.g. akv) or its uid",
                  s->user.from, s->user.value);
        return 0;
    }
    return 1;
}

/* RSA decryption's padding when the caller names none: pkcs1 (OpenSSL's default) or oaep. */
static int parse_rsa_decrypt_padding(AKV_PROV_CTX *ctx, const cnf_section *cnf)
{
    setting padding = pick("AKV_RSA_DECRYPT_PADDING", "rsa_decrypt_padding", cnf->padding);
    ctx->rsa_decrypt_padding = RSA_PKCS1_PADDING;
    if (padding.value == NULL || strcasecmp(padding.value, "pkcs1") == 0)
        return 1;
    if (strcasecmp(padding.value, "oaep") == 0) {
        ctx->rsa_decrypt_padding = RSA_PKCS1_OAEP_PADDING;
        return 1;
    }
    AKV_RAISE(ctx, AKV_R_INVALID_ARGUMENT,
              "%s=%.40s is not an RSA decryption padding; hint: write oaep (RSA-OAEP with SHA-1, the "
              "original provider's default) or pkcs1 (PKCS#1 v1.5, the default)",
              padding.from, padding.value);
    return 0;
}

int akv_settings_apply(AKV_PROV_CTX *ctx, OSSL_FUNC_core_get_params_fn *core_get_params)
{
    cnf_section cnf;
    agent_settings s;
    read_cnf_section(ctx, core_get_params, &cnf);
    if (!parse_agent_settings(ctx, &cnf, &s) || !parse_rsa_decrypt_padding(ctx, &cnf))
        return 0;

    ctx->agent = akv_agent_new(s.socket_path, (int)s.timeout_ms);
    if (ctx->agent == NULL || !akv_agent_set_autostart(ctx->agent, s.autostart && *s.command != '\0' ? s.command : NULL,
                                                       (unsigned)s.idle_exit_s, s.socket.value != NULL)) {
        AKV_RAISE(ctx, AKV_R_INTERNAL, "out of memory");
        return 0;
    }
    if (s.user.value != NULL)
        akv_agent_allow_uid(ctx->agent, s.agent_uid);
    akv_log(AKV_LOG_DEBUG,
            "provider settings: agent socket %s (%s), timeout %lu ms, autostart %s (%s), agent user %s, RSA "
            "decryption padding %s",
            s.socket_path, s.socket.from != NULL ? s.socket.from : "default", s.timeout_ms, s.autostart ? "on" : "off",
            s.command, s.user.value != NULL ? s.user.value : "-",
            ctx->rsa_decrypt_padding == RSA_PKCS1_OAEP_PADDING ? "oaep" : "pkcs1");
    akv_warn_original_settings();
    return 1;
}
