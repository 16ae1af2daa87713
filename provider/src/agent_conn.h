/*
 * Client side of the agent's Unix socket: a small pool of connections shared by the threads of
 * one process. A connection is checked out by exactly one thread for one request/response, and a
 * forked child never touches a connection its parent opened (pid check + pthread_atfork).
 * No OpenSSL here: errors come back as text for the caller to raise.
 */
#ifndef AKV_AGENT_CONN_H
#define AKV_AGENT_CONN_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "frame.h"

typedef struct akv_agent AKV_AGENT;

/* The decoded answer of the agent; `frame` fields point into `raw`. */
typedef struct {
    unsigned char *raw;
    size_t raw_len;
    akv_frame frame;
    uint32_t status;
    char *message; /* NUL-terminated copy of MESSAGE (what failed), or NULL */
    char *hint;    /* NUL-terminated copy of HINT (what to do), or NULL */
} akv_response;

/* Result classes of akv_agent_call, so callers can pick an error reason. */
enum akv_call_result {
    AKV_CALL_OK = 0,
    AKV_CALL_UNREACHABLE, /* cannot connect: agent not running or socket path wrong */
    AKV_CALL_IO,          /* connection broke mid-request (agent killed, restarted) */
    AKV_CALL_TIMEOUT,     /* no complete answer before the deadline */
    AKV_CALL_PROTOCOL,    /* the agent sent bytes that are not a valid answer */
    AKV_CALL_NO_MEMORY
};

/* No I/O: connections are opened on first use. timeout_ms bounds one whole request. */
AKV_AGENT *akv_agent_new(const char *socket_path, int timeout_ms);
void akv_agent_free(AKV_AGENT *agent);
/*
 * Set before the first call, never after (no lock): start an agent with `command` when none
 * answers (explicit_path: the socket was configured, not the default; see agent_autostart.h);
 * NULL command: never start one. Returns 0 when out of memory.
 */
int akv_agent_set_autostart(AKV_AGENT *agent, const char *command, unsigned idle_exit_s, int explicit_path);
/* One more uid (agent_user) whose agent may answer, besides our own uid and root. */
void akv_agent_allow_uid(AKV_AGENT *agent, uid_t uid);

/*
 * Sends one request (built with akv_frame_begin(…, id=0) … akv_frame_finish; the id is assigned
 * here) and waits for its response. On AKV_CALL_OK, *resp holds the answer (any status); free it
 * with akv_response_free. Otherwise err holds a sentence for a person ("what failed; hint: what
 * to do").
 */
int akv_agent_call(AKV_AGENT *agent, akv_buf *request, akv_response *resp, char *err, size_t errlen);
void akv_response_free(akv_response *resp);

/*
 * How a call waits for its connection to become readable: wait(arg, fd, events, deadline) returns
 * 1 when fd is ready, 0 when the deadline (CLOCK_MONOTONIC ms) passed, -1 on a poll error, or
 * AKV_WAIT_GONE when it has closed fd itself because the caller will never need the answer (an
 * abandoned async job): the call then fails without touching fd again.
 */
#define AKV_WAIT_GONE (-2)
typedef struct {
    int (*wait)(void *arg, int fd, short events, long long deadline);
    void *arg;
} akv_waiter;

/* The blocking waiter akv_agent_call uses: poll() until ready or the deadline. */
int akv_wait_poll(void *unused, int fd, short events, long long deadline);

/* akv_agent_call with the wait for the answer left to `waiter` (agent_async.c). */
int akv_agent_call_waiting(AKV_AGENT *agent, akv_buf *request, akv_response *resp, const akv_waiter *waiter, char *err,
                           size_t errlen);

/* Test hooks: how many connections the pool holds idle, and how many were opened in total. */
size_t akv_agent_idle_count(AKV_AGENT *agent);
unsigned long akv_agent_connects(AKV_AGENT *agent);

#endif
