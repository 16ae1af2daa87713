/*
 * A small in-process Unix-socket server that speaks the agent's framing (fake_agent.c; used by
 * test_conn.c, test_async.c and the PKCS#11 module's tests): it is not an agent, it echoes INPUT
 * as OUTPUT (or answers through a callback) or misbehaves on purpose. One thread per connection, so
 * connections are answered independently (MODE_DELAY answers each after FAKE_AGENT_DELAY_MS).
 */
#ifndef AKV_FAKE_AGENT_H
#define AKV_FAKE_AGENT_H

#include <pthread.h>

#include "frame.h"

enum server_mode {
    MODE_ECHO,
    MODE_SILENT,
    MODE_GARBAGE,
    MODE_CUT_SHORT,
    MODE_WRONG_ID,
    MODE_STATUS_ERROR,
    MODE_DELAY,
    MODE_HANGUP_ONCE,  /* reads the first request of the run, hangs up without answering, then echoes */
    MODE_HANGUP,       /* reads every request and hangs up without answering (an agent killed each time) */
    MODE_HANGUP_SECOND /* answers the first request of the run, hangs up on the second, then echoes */
};

#define FAKE_AGENT_DELAY_MS 100
#define MAX_CONNS 256

/* Fills the answer to a request (its header begun, op | AKV_RESPONSE_BIT and the request's id)
 * in place of the echo; called on the connection's thread, in MODE_ECHO and the hang-up modes. */
typedef void (*fake_agent_answer)(akv_buf *out, uint8_t op, const akv_frame *request, void *ctx);

typedef struct {
    char path[108];
    int listen_fd;
    pthread_t acceptor;
    volatile int mode;
    volatile int stop;
    pthread_mutex_t lock;
    int conn_fds[MAX_CONNS];
    int nconns;
    int requests;
    int op_requests[256]; /* requests by op code */
    fake_agent_answer answer;
    void *answer_ctx;
    int pid_violations; /* one connection carried requests from two processes */
    int hangups;        /* connections closed unanswered (MODE_HANGUP*) */
} test_server;

/* Listens on `path` (removed first) in `mode`; 0 on failure. */
int server_start(test_server *srv, const char *path, int mode);
/* The same, with `answer` making the answers instead of the echo. */
int server_start_answering(test_server *srv, const char *path, int mode, fake_agent_answer answer, void *ctx);
/* Stops accepting and hangs up every connection, as a killed agent would. */
void server_stop(test_server *srv);
/* A socket path in a private temporary directory (the same one on every call). */
const char *socket_path(void);
/* Removes that directory (at the end of the run). */
void socket_dir_remove(void);

#endif
