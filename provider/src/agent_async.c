/*
 * Agent round trips that do not block the thread: inside an OpenSSL async job (a TLS server with
 * SSL_MODE_ASYNC: HAProxy `ssl-mode-async`, `openssl s_server -async`), a request is sent, the job
 * is paused with a file descriptor for the application to poll, and the answer is read when the
 * application resumes the job. Outside a job nothing changes (agent_conn.c's blocking call).
 * docs/provider.md, "Async mode", says why it is built this way. The rules this file keeps:
 *
 *  - each operation in flight owns its agent connection (checked out of the pool by
 *    agent_conn.c, as a blocking call does): many jobs of one thread wait at once, each on its own
 *    connection, and no job ever reads another job's answer; afterwards the connection goes back
 *    to an idle pool large enough for all of them (AKV_ASYNC_POOL_MAX), so the next jobs reuse
 *    it instead of connecting again;
 *  - the fd the application polls is not the agent connection itself but a duplicate of it, owned
 *    by the job's wait context (one per TLS connection) until the application frees that context.
 *    Applications keep every wait fd in their own fd tables from the pause on (HAProxy inserts it
 *    into its poller and removes it only when the SSL object goes away), so a wait fd must stay
 *    open and keep its number as long as the wait context lives. The agent connection goes back
 *    to the pool as soon as its answer is read; a later operation of the same TLS connection
 *    re-points the same wait fd number at its own connection (dup3);
 *  - a wait fd is registered only right before the job actually pauses: an application only
 *    learns about wait fds when it sees SSL_ERROR_WANT_ASYNC;
 *  - a job that the application abandons (it frees the SSL object while the job is paused: the
 *    client went away mid-handshake) is never resumed: the wait context's cleanup callback closes
 *    the wait fd and the agent connection of the paused operation, so no fd and no connection
 *    leak. If such a job were resumed anyway, it fails without touching those fds;
 *  - a job resumed before its answer is there pauses again; the request deadline still holds
 *    (checked at every resume; a job that is never resumed waits for the agent's own deadline,
 *    which always ends with an answer or a closed connection, both of which wake the poller).
 */
#include <errno.h>
#include <fcntl.h>
#include <openssl/async.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "agent_async.h"
#include "akv.h"

/* Some applications resume a paused job in a loop without polling its wait fd (`openssl s_server
 * -async` does), and a pause is a no-op while the application blocks pauses (ASYNC_block_pause).
 * After this many resumes in a row that find no answer, each further one first waits up to
 * AKV_EMPTY_RESUME_WAIT_MS for it, so neither case spins a CPU. */
#define AKV_MAX_EMPTY_RESUMES 16
#define AKV_EMPTY_RESUME_WAIT_MS 1

/* The one key of our entry in every wait context: its address is what matters. */
static const char akv_wait_key = 0;

static atomic_ulong stat_pauses, stat_async_calls, stat_abandoned, stat_wait_fds;

/* Lives as long as the wait context's entry (freed by the cleanup), or, when the job was
 * abandoned mid-operation, as long as that job. */
typedef struct {
    int wait_fd;   /* the fd the application polls: a duplicate of `target` */
    int target;    /* the agent connection wait_fd currently duplicates */
    int in_flight; /* agent connection of the operation paused right now, or -1 */
    int abandoned; /* the cleanup ran while an operation was paused */
} akv_wait_entry;

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int ready_now(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN, .revents = 0};
    int r;
    do
        r = poll(&p, 1, 0);
    while (r < 0 && errno == EINTR);
    return r;
}

/* The application frees the wait context (SSL_free): close what is ours. */
static void cleanup_entry(ASYNC_WAIT_CTX *ctx, const void *key, OSSL_ASYNC_FD fd, void *custom)
{
    (void)ctx;
    (void)key;
    akv_wait_entry *e = custom;
    close(fd);
    atomic_fetch_sub(&stat_wait_fds, 1);
    if (e->in_flight >= 0) {
        /* A paused operation that will never be resumed: its connection holds an unread
         * answer (or will), so it can never go back to the pool. */
        close(e->in_flight);
        e->in_flight = -1;
        e->abandoned = 1;
        atomic_fetch_add(&stat_abandoned, 1);
        akv_log(AKV_LOG_DEBUG, "async: a paused job was abandoned by the application; closed its agent connection");
        return; /* the job's stack still points at e: it goes with the job */
    }
    free(e);
}

/* Our entry in this wait context, pointed at `fd`; created on first use. NULL on failure. */
static akv_wait_entry *entry_for(ASYNC_WAIT_CTX *ctx, int fd)
{
    OSSL_ASYNC_FD wfd;
    void *custom = NULL;
    if (ASYNC_WAIT_CTX_get_fd(ctx, &akv_wait_key, &wfd, &custom) && custom != NULL) {
        akv_wait_entry *e = custom;
        if (e->target != fd) {
            /* Same fd number, now the new connection: the application's tables stay right. */
            if (dup3(fd, e->wait_fd, O_CLOEXEC) < 0)
                return NULL;
            e->target = fd;
        }
        return e;
    }
    akv_wait_entry *e = calloc(1, sizeof(*e));
    if (e == NULL)
        return NULL;
    e->wait_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    e->target = fd;
    e->in_flight = -1;
    if (e->wait_fd < 0) {
        free(e);
        return NULL;
    }
    if (!ASYNC_WAIT_CTX_set_wait_fd(ctx, &akv_wait_key, e->wait_fd, e, cleanup_entry)) {
        close(e->wait_fd);
        free(e);
        return NULL;
    }
    atomic_fetch_add(&stat_wait_fds, 1);
    return e;
}

/* The akv_waiter of a call made inside an async job. */
static int wait_in_job(void *arg, int fd, short events, long long deadline)
{
    (void)arg;
    ASYNC_JOB *job = ASYNC_get_current_job();
    ASYNC_WAIT_CTX *ctx = job != NULL ? ASYNC_get_wait_ctx(job) : NULL;
    if (ctx == NULL || events != POLLIN)
        return akv_wait_poll(NULL, fd, events, deadline);
    for (int empty = 0;; empty++) {
        int r = ready_now(fd);
        if (r == 0 && empty >= AKV_MAX_EMPTY_RESUMES) {
            long long until = now_ms() + AKV_EMPTY_RESUME_WAIT_MS;
            r = akv_wait_poll(NULL, fd, events, until < deadline ? until : deadline);
        }
        if (r != 0)
            return r > 0 ? 1 : -1;
        if (now_ms() >= deadline)
            return 0;
        akv_wait_entry *e = entry_for(ctx, fd);
        if (e == NULL) {
            akv_log(AKV_LOG_WARN, "async: cannot set a wait fd (out of fds or memory); waiting the blocking way");
            return akv_wait_poll(NULL, fd, events, deadline);
        }
        e->in_flight = fd;
        atomic_fetch_add(&stat_pauses, 1);
        if (empty == 0)
            akv_log(AKV_LOG_DEBUG, "async: job paused waiting for the agent (wait fd %d)", e->wait_fd);
        int paused = ASYNC_pause_job();
        if (e->abandoned) {
            /* The wait context is gone and both fds with it; only e is left to free. */
            free(e);
            return AKV_WAIT_GONE;
        }
        e->in_flight = -1;
        if (!paused)
            return akv_wait_poll(NULL, fd, events, deadline);
        job = ASYNC_get_current_job();
        ctx = job != NULL ? ASYNC_get_wait_ctx(job) : NULL;
        if (ctx == NULL)
            return akv_wait_poll(NULL, fd, events, deadline);
    }
}

int akv_agent_call_nonblocking(AKV_AGENT *agent, akv_buf *request, akv_response *resp, char *err, size_t errlen)
{
    if (ASYNC_get_current_job() == NULL)
        return akv_agent_call(agent, request, resp, err, errlen);
    atomic_fetch_add(&stat_async_calls, 1);
    akv_log(AKV_LOG_DEBUG, "async: agent request from inside an async job");
    const akv_waiter waiter = {wait_in_job, NULL};
    return akv_agent_call_waiting(agent, request, resp, &waiter, err, errlen);
}

void akv_async_stats_get(akv_async_stats *out)
{
    out->calls_in_jobs = atomic_load(&stat_async_calls);
    out->pauses = atomic_load(&stat_pauses);
    out->abandoned = atomic_load(&stat_abandoned);
    out->wait_fds_open = atomic_load(&stat_wait_fds);
}
