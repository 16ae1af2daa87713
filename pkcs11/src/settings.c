/*
 * The module's agent connection, from the same environment variables as the provider
 * (docs/provider.md, "Settings"; a PKCS#11 module has no openssl.cnf section):
 *   AKV_AGENT_SOCKET      the agent's socket (default: the user's own, as the agent computes it)
 *   AKV_AGENT_TIMEOUT_MS  bound of one request, 1..3600000 ms (default 15000)
 *   AKV_AGENT_AUTOSTART   start the user's agent when none answers (default no, unlike the
 *                         provider: see below)
 *   AKV_AGENT_COMMAND     the akv executable autostart runs (default fixed at build time)
 *   AKV_AGENT_USER        one more user whose agent may answer (name or uid)
 *   AKV_AGENT_IDLE_EXIT   seconds an autostarted agent stays idle before it exits (default 900)
 * Read with secure_getenv: a setuid program that loads the module does not take them from its
 * caller. A bad value fails C_Initialize with a message naming the variable.
 * Autostart is off unless asked for: once installed, p11-kit loads the module into every program
 * that loads all registered modules (a GnuTLS client looking for its trust store lists every
 * token), and none of those should start an agent (docs/pkcs11.md, "Settings").
 */
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "p11.h"
#include "setting_values.h"

#ifndef AKV_AGENT_COMMAND_DEFAULT
#define AKV_AGENT_COMMAND_DEFAULT ""
#endif
#define DEFAULT_TIMEOUT_MS 15000ul
#define MAX_TIMEOUT_MS 3600000ul
#define DEFAULT_IDLE_EXIT_S 900ul

static const char *setting(const char *name)
{
    const char *v = secure_getenv(name);
    return v != NULL && *v != '\0' ? v : NULL;
}

AKV_AGENT *p11_agent_from_environment(int *explicit_socket, char *err, size_t errlen)
{
    char socket_path[4096];
    const char *sock = setting("AKV_AGENT_SOCKET");
    if (sock != NULL)
        snprintf(socket_path, sizeof(socket_path), "%s", sock);
    else
        akv_default_socket_path(socket_path, sizeof(socket_path));

    unsigned long timeout_ms = DEFAULT_TIMEOUT_MS;
    const char *timeout = setting("AKV_AGENT_TIMEOUT_MS");
    if (timeout != NULL && !akv_parse_uint(timeout, 1, MAX_TIMEOUT_MS, &timeout_ms)) {
        snprintf(err, errlen,
                 "AKV_AGENT_TIMEOUT_MS=%.40s is not a number of milliseconds from 1 to %lu; hint: write the number "
                 "alone, e.g. 15000",
                 timeout, MAX_TIMEOUT_MS);
        return NULL;
    }
    int autostart = 0;
    const char *start = setting("AKV_AGENT_AUTOSTART");
    if (start != NULL && (autostart = akv_parse_bool(start)) < 0) {
        snprintf(err, errlen, "AKV_AGENT_AUTOSTART=%.40s is not yes or no; hint: write 1/yes/true/on or 0/no/false/off",
                 start);
        return NULL;
    }
    unsigned long idle_exit = DEFAULT_IDLE_EXIT_S;
    const char *idle = setting("AKV_AGENT_IDLE_EXIT");
    if (idle != NULL && !akv_parse_uint(idle, 0, 31536000ul, &idle_exit)) {
        snprintf(err, errlen,
                 "AKV_AGENT_IDLE_EXIT=%.40s is not a number of seconds (0 to 31536000); hint: e.g. 900, or 0 for never",
                 idle);
        return NULL;
    }
    const char *command = setting("AKV_AGENT_COMMAND");
    if (command == NULL)
        command = AKV_AGENT_COMMAND_DEFAULT;
    uid_t agent_uid = 0;
    const char *user = setting("AKV_AGENT_USER");
    if (user != NULL && !akv_resolve_user(user, &agent_uid)) {
        snprintf(err, errlen,
                 "AKV_AGENT_USER=%.64s is not a user on this system; hint: name the user the agent runs as (e.g. akv) "
                 "or its uid",
                 user);
        return NULL;
    }
    AKV_AGENT *agent = akv_agent_new(socket_path, (int)timeout_ms);
    if (agent == NULL || !akv_agent_set_autostart(agent, autostart && *command != '\0' ? command : NULL,
                                                  (unsigned)idle_exit, sock != NULL)) {
        akv_agent_free(agent);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (user != NULL)
        akv_agent_allow_uid(agent, agent_uid);
    *explicit_socket = sock != NULL;
    return agent;
}
