/*
 * Starting the user's own agent when none answers on its socket (docs/provider.md, "Autostart"):
 * like ssh-agent or gpg-agent started on demand. No OpenSSL here.
 */
#ifndef AKV_AGENT_AUTOSTART_H
#define AKV_AGENT_AUTOSTART_H

#include <stddef.h>

typedef struct {
    int enabled;          /* AKV_AGENT_AUTOSTART / autostart (default on) */
    int explicit_path;    /* the socket came from AKV_AGENT_SOCKET or agent_socket */
    char *command;        /* the akv executable (agent_command, AKV_AGENT_COMMAND, build default) */
    unsigned idle_exit_s; /* AKV_AGENT_IDLE_EXIT (default 900) */
} akv_autostart_settings;

/* Opens a connection to the socket; returns the fd, or -1 with errno set. */
typedef int (*akv_open_fn)(void *arg);

/*
 * Called when nothing listens on socket_path (ENOENT, ECONNREFUSED). Under a lock file beside the
 * socket (so that many processes starting at once start one agent), starts `command agent
 * --socket PATH --idle-exit N --autostarted` as a daemon with this process's environment and its
 * output in DIR/agent.log, and waits (until timeout_ms) for it to accept. Returns a connected fd
 * from open_fn, or -1 with a sentence in err ("what failed; hint: what to do").
 */
int akv_autostart(const akv_autostart_settings *settings, const char *socket_path, int timeout_ms, akv_open_fn open_fn,
                  void *arg, char *err, size_t errlen);

/* Why autostart will not run for this socket (NULL when it may); used in "not reachable" errors. */
const char *akv_autostart_refusal(const akv_autostart_settings *settings);

#endif
