/*
 * Parsing of setting values shared by the provider (settings.c) and the PKCS#11 module
 * (pkcs11/src/settings.c), so both read AKV_AGENT_* the same way. OpenSSL-free.
 */
#ifndef AKV_SETTING_VALUES_H
#define AKV_SETTING_VALUES_H

#include <stddef.h>
#include <sys/types.h>

/* Digits only, no sign, no unit, no overflow, within [min, max]: 1 and *out set, else 0. */
int akv_parse_uint(const char *text, unsigned long min, unsigned long max, unsigned long *out);
/* 1 / 0 for yes/no words (1 yes true on / 0 no false off, any case); -1 for anything else. */
int akv_parse_bool(const char *text);
/* A user name or a numeric uid: 1 and *uid set, else 0. */
int akv_resolve_user(const char *text, uid_t *uid);
/* The agent's own default socket (src/config/load.ts): $XDG_RUNTIME_DIR/akv/agent.sock, else
 * /run/akv/agent.sock for root, else /tmp/akv-<uid>/agent.sock. XDG_RUNTIME_DIR is read with
 * secure_getenv. */
void akv_default_socket_path(char *out, size_t size);

#endif
