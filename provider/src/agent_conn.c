/*
 * Connection pool to the akv agent. The rules this file keeps, each against a way a socket pool
 * fails inside threaded and forking servers such as nginx (docs/provider.md, "Robustness", says
 * what they give the user):
 *  - a connection is used by one thread at a time: it is taken out of the pool for the whole
 *    request/response and put back afterwards;
 *  - a child process never uses a connection its parent opened: pthread_atfork drops the idle
 *    ones in the child, and the owner pid is checked on every checkout (for forks that bypass the
 *    handlers); connections that were checked out at fork time are not returned to the child's pool;
 *  - every read and write is bounded by the request deadline, so a hung agent cannot hang us;
 *  - a pooled connection the agent has closed (restart, idle timeout) is dropped before anything is
 *    sent on it; an operation the agent may run twice without harm (retry_safe) is sent once more,
 *    on a fresh connection, when the agent closes the connection before any byte of its answer
 *    (docs/provider.md, "When the provider retries": exactly when it does and does not);
 *  - how a call waits for its answer is the caller's choice (akv_waiter): by default it polls,
 *    blocking the thread; agent_async.c pauses the OpenSSL async job instead. A waiter may take
 *    the connection away (AKV_WAIT_GONE: the job was abandoned and its fd closed), and then this
 *    file never touches that fd again.
 */
#include "agent_conn.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "agent_autostart.h"

/* Idle connections kept after a blocking call (one thread uses one at a time: a few cover a
 * threaded server's bursts). */
#define AKV_POOL_MAX 8
/* Idle connections kept after a call from an OpenSSL async job: one thread may have hundreds of
 * handshakes waiting at once, each on its own connection, and every connection not kept is a
 * connect() + accept() + HELLO for the next job, which costs the agent about as much CPU as the
 * signature itself (docs/provider.md, "Async mode"; docs/performance.md). Bounded so that a burst
 * does not pin fds for ever: the agent closes connections idle for clientIdleTimeoutMs, and a
 * closed one is dropped at checkout. */
#define AKV_ASYNC_POOL_MAX 256

struct akv_agent {
    char *path;
    int timeout_ms;
    pthread_mutex_t lock;
    pid_t owner_pid;          /* process whose connections sit in `idle` */
    unsigned long generation; /* bumped when a fork invalidates older connections */
    int idle[AKV_ASYNC_POOL_MAX];
    size_t nidle;
    uint32_t next_id;
    unsigned long connects;
    struct akv_agent *next_registered;
    /* Set once before first use (provider init), read-only afterwards. */
    akv_autostart_settings autostart;
    int has_agent_uid;
    uid_t agent_uid; /* agent_user / AKV_AGENT_USER: one more uid allowed to answer */
};

/* Every live pool, so the fork handlers can reach them. */
static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static struct akv_agent *registry;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void atfork_prepare(void)
{
    pthread_mutex_lock(&registry_lock);
    for (struct akv_agent *a = registry; a != NULL; a = a->next_registered)
        pthread_mutex_lock(&a->lock);
}

static void atfork_parent(void)
{
    for (struct akv_agent *a = registry; a != NULL; a = a->next_registered)
        pthread_mutex_unlock(&a->lock);
    pthread_mutex_unlock(&registry_lock);
}

static void drop_idle_locked(struct akv_agent *a)
{
    for (size_t i = 0; i < a->nidle; i++)
        close(a->idle[i]);
    a->nidle = 0;
    a->generation++;
    a->owner_pid = getpid();
}

static void atfork_child(void)
{
    for (struct akv_agent *a = registry; a != NULL; a = a->next_registered) {
        drop_idle_locked(a);
        pthread_mutex_unlock(&a->lock);
    }
    pthread_mutex_unlock(&registry_lock);
}

static void register_atfork(void)
{
    pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
}

AKV_AGENT *akv_agent_new(const char *socket_path, int timeout_ms)
{
    struct akv_agent *a = calloc(1, sizeof(*a));
    if (a == NULL)
        return NULL;
    a->path = strdup(socket_path);
    if (a->path == NULL || pthread_mutex_init(&a->lock, NULL) != 0) {
        free(a->path);
        free(a);
        return NULL;
    }
    a->timeout_ms = timeout_ms > 0 ? timeout_ms : 15000;
    a->owner_pid = getpid();
    pthread_once(&atfork_once, register_atfork);
    pthread_mutex_lock(&registry_lock);
    a->next_registered = registry;
    registry = a;
    pthread_mutex_unlock(&registry_lock);
    return a;
}

int akv_agent_set_autostart(AKV_AGENT *a, const char *command, unsigned idle_exit_s, int explicit_path)
{
    char *copy = command != NULL ? strdup(command) : NULL;
    if (command != NULL && copy == NULL)
        return 0;
    free(a->autostart.command);
    a->autostart.enabled = copy != NULL;
    a->autostart.command = copy;
    a->autostart.idle_exit_s = idle_exit_s;
    a->autostart.explicit_path = explicit_path;
    return 1;
}

void akv_agent_allow_uid(AKV_AGENT *a, uid_t uid)
{
    a->has_agent_uid = 1;
    a->agent_uid = uid;
}

void akv_agent_free(AKV_AGENT *a)
{
    if (a == NULL)
        return;
    pthread_mutex_lock(&registry_lock);
    for (struct akv_agent **p = &registry; *p != NULL; p = &(*p)->next_registered) {
        if (*p == a) {
            *p = a->next_registered;
            break;
        }
    }
    pthread_mutex_unlock(&registry_lock);
    pthread_mutex_lock(&a->lock);
    if (a->owner_pid == getpid()) {
        for (size_t i = 0; i < a->nidle; i++)
            close(a->idle[i]);
    }
    a->nidle = 0;
    pthread_mutex_unlock(&a->lock);
    pthread_mutex_destroy(&a->lock);
    free(a->autostart.command);
    free(a->path);
    free(a);
}

size_t akv_agent_idle_count(AKV_AGENT *a)
{
    pthread_mutex_lock(&a->lock);
    size_t n = a->owner_pid == getpid() ? a->nidle : 0;
    pthread_mutex_unlock(&a->lock);
    return n;
}

unsigned long akv_agent_connects(AKV_AGENT *a)
{
    pthread_mutex_lock(&a->lock);
    unsigned long n = a->connects;
    pthread_mutex_unlock(&a->lock);
    return n;
}

/*
 * An idle connection the agent has closed (it restarted, or closed it after clientIdleTimeoutMs),
 * or on which it sent something unasked: not to be used. One poll() with no wait.
 */
static int idle_unusable(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN | POLLRDHUP, .revents = 0};
    return poll(&p, 1, 0) != 0;
}

/* Takes an idle connection (fd >= 0) or none (fd = -1; always none when !pooled), plus a fresh
 * request id. Idle connections the agent has closed are closed on the way. */
static void checkout(struct akv_agent *a, int pooled, int *fd, unsigned long *gen, uint32_t *id)
{
    pthread_mutex_lock(&a->lock);
    if (a->owner_pid != getpid()) {
        /* Forked without the handlers running: these fds are the parent's, forget them. */
        a->nidle = 0;
        a->generation++;
        a->owner_pid = getpid();
    }
    *fd = -1;
    while (pooled && *fd < 0 && a->nidle > 0) {
        *fd = a->idle[--a->nidle];
        if (idle_unusable(*fd)) {
            close(*fd);
            *fd = -1;
        }
    }
    *gen = a->generation;
    a->next_id++;
    if (a->next_id == 0)
        a->next_id = 1;
    *id = a->next_id;
    pthread_mutex_unlock(&a->lock);
}

static void checkin(struct akv_agent *a, int fd, unsigned long gen, size_t keep)
{
    pthread_mutex_lock(&a->lock);
    if (gen == a->generation && a->owner_pid == getpid() && a->nidle < keep) {
        a->idle[a->nidle++] = fd;
        fd = -1;
    }
    pthread_mutex_unlock(&a->lock);
    if (fd >= 0)
        close(fd);
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* socket() + connect() only; returns the fd, or -1 with errno set (open_fn of the autostart). */
static int open_socket(void *arg)
{
    struct akv_agent *a = arg;
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, a->path, strlen(a->path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    /* Bounds connect() itself when the agent's listen backlog is full. */
    struct timeval tv = {.tv_sec = a->timeout_ms / 1000, .tv_usec = (a->timeout_ms % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

/* The login name of `uid` in `name` ("" when it has none), and in `shown` as " (name)" for a
 * message (also "" then). */
static void user_name(uid_t uid, char *name, size_t namelen, char *shown, size_t shownlen)
{
    struct passwd pw, *found = NULL;
    char buf[1024];
    name[0] = shown[0] = '\0';
    if (getpwuid_r(uid, &pw, buf, sizeof(buf), &found) == 0 && found != NULL) {
        snprintf(name, namelen, "%s", found->pw_name);
        snprintf(shown, shownlen, " (%s)", found->pw_name);
    }
}

/*
 * Who answers: the peer must run as our own uid, as root, or as the configured agent user. Checked
 * on every new connection, before a byte is sent (a socket planted by another local user would
 * otherwise receive our digests and plaintexts and choose our answers).
 */
static int peer_allowed(struct akv_agent *a, int fd, uid_t *peer_uid, char *err, size_t errlen)
{
    struct ucred cred;
    socklen_t len = sizeof(cred);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || len != sizeof(cred)) {
        snprintf(err, errlen, "cannot tell who serves the akv agent socket %s (SO_PEERCRED: %s)", a->path,
                 strerror(errno));
        return 0;
    }
    *peer_uid = cred.uid;
    uid_t self = geteuid();
    if (cred.uid == self || cred.uid == 0 || (a->has_agent_uid && cred.uid == a->agent_uid))
        return 1;
    char user[64], shown[72];
    user_name(cred.uid, user, sizeof(user), shown, sizeof(shown));
    snprintf(err, errlen,
             "refused the akv agent socket %s: it is served by uid %u%s, not by you (uid %u) or root; nothing was "
             "sent; hint: if that is the agent to use, allow it with agent_user = %s in openssl.cnf or "
             "AKV_AGENT_USER=%s; otherwise remove the socket and start your own agent",
             a->path, (unsigned)cred.uid, shown, (unsigned)self, *user ? user : "<uid>", *user ? user : "<uid>");
    return 0;
}

/* Connecting was refused by permissions: a directory on the way that is another user's and
 * closed to us (a per-user agent's 0700 directory), or the socket's own mode (a shared agent's
 * socket group). Says which. */
static void explain_denied(const char *path, char *err, size_t errlen)
{
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s", path);
    char *slash = strrchr(dir, '/');
    struct stat st;
    if (slash != NULL && slash != dir) {
        *slash = '\0';
        if (stat(dir, &st) == 0 && st.st_uid != geteuid() && access(dir, X_OK) != 0) {
            char user[64], shown[72];
            user_name(st.st_uid, user, sizeof(user), shown, sizeof(shown));
            snprintf(err, errlen,
                     "cannot reach the akv agent socket %s: its directory %s belongs to uid %u%s with mode %03o, "
                     "closed to you (uid %u): it is that user's own agent, not a shared one; hint: run your own "
                     "agent (unset AKV_AGENT_SOCKET / agent_socket to use yours), or have the agent shared through "
                     "a socket group (docs/deployment.md)",
                     path, dir, (unsigned)st.st_uid, shown, (unsigned)(st.st_mode & 0777), (unsigned)geteuid());
            return;
        }
    }
    snprintf(err, errlen,
             "permission denied on the akv agent socket %s; hint: run as a user in the socket's group "
             "(socketGroup in the agent config)",
             path);
}

static int connect_agent(struct akv_agent *a, uid_t *peer_uid, char *err, size_t errlen)
{
    struct sockaddr_un sa;
    if (strlen(a->path) >= sizeof(sa.sun_path)) {
        snprintf(err, errlen, "akv agent socket path is too long (%zu bytes, limit %zu): %s", strlen(a->path),
                 sizeof(sa.sun_path) - 1, a->path);
        return -1;
    }
    int fd = open_socket(a);
    if (fd < 0 && (errno == ENOENT || errno == ECONNREFUSED) && akv_autostart_refusal(&a->autostart) == NULL) {
        fd = akv_autostart(&a->autostart, a->path, a->timeout_ms, open_socket, a, err, errlen);
        if (fd < 0)
            return -1;
    }
    if (fd < 0) {
        int e = errno;
        if (e == EACCES || e == EPERM)
            explain_denied(a->path, err, errlen);
        else if (e == ENOENT || e == ECONNREFUSED)
            snprintf(err, errlen,
                     "akv agent not reachable at %s (%s): %s; hint: start it with `akv agent`, or point "
                     "AKV_AGENT_SOCKET / agent_socket at its socket",
                     a->path, strerror(e), akv_autostart_refusal(&a->autostart));
        else
            snprintf(err, errlen, "cannot connect to the akv agent at %s (%s)", a->path, strerror(e));
        return -1;
    }
    if (!peer_allowed(a, fd, peer_uid, err, errlen)) {
        close(fd);
        return -1;
    }
    pthread_mutex_lock(&a->lock);
    a->connects++;
    pthread_mutex_unlock(&a->lock);
    return fd;
}

/* 1 when ready, 0 on deadline, -1 on error: the default waiter, which blocks the thread. */
int akv_wait_poll(void *unused, int fd, short events, long long deadline)
{
    (void)unused;
    for (;;) {
        long long left = deadline - now_ms();
        if (left <= 0)
            return 0;
        struct pollfd p = {.fd = fd, .events = events, .revents = 0};
        int r = poll(&p, 1, (int)(left > 60000 ? 60000 : left));
        if (r > 0)
            return 1;
        if (r < 0 && errno != EINTR)
            return -1;
    }
}

static const akv_waiter blocking_waiter = {akv_wait_poll, NULL};

enum io_result { IO_OK = 0, IO_EOF_AT_START, IO_BROKEN, IO_TIMEOUT, IO_GONE };

/* Requests are small and fit in the socket buffer: sending always waits the blocking way (the
 * applications that run async jobs poll their wait fds for reading only). */
static enum io_result send_all(int fd, const unsigned char *p, size_t len, long long deadline)
{
    while (len > 0) {
        int w = akv_wait_poll(NULL, fd, POLLOUT, deadline);
        if (w == 0)
            return IO_TIMEOUT;
        if (w < 0)
            return IO_BROKEN;
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
                continue;
            return IO_BROKEN;
        }
        p += n;
        len -= (size_t)n;
    }
    return IO_OK;
}

static enum io_result recv_all(const akv_waiter *waiter, int fd, unsigned char *p, size_t len, long long deadline,
                               int first)
{
    size_t got = 0;
    while (got < len) {
        int w = waiter->wait(waiter->arg, fd, POLLIN, deadline);
        if (w == AKV_WAIT_GONE)
            return IO_GONE;
        if (w == 0)
            return IO_TIMEOUT;
        if (w < 0)
            return IO_BROKEN;
        ssize_t n = recv(fd, p + got, len - got, MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
                continue;
            return (first && got == 0) ? IO_EOF_AT_START : IO_BROKEN;
        }
        if (n == 0)
            return (first && got == 0) ? IO_EOF_AT_START : IO_BROKEN;
        got += (size_t)n;
    }
    return IO_OK;
}

void akv_response_free(akv_response *resp)
{
    if (resp == NULL)
        return;
    akv_frame_clear(&resp->frame);
    if (resp->raw != NULL) {
        /* Responses can carry unwrapped key bytes and plaintexts. */
        memset(resp->raw, 0, resp->raw_len);
        free(resp->raw);
    }
    free(resp->message);
    free(resp->hint);
    memset(resp, 0, sizeof(*resp));
}

/* A NUL-terminated copy of a text field (NULL when absent), made printable: it goes into error
 * queues and logs. Returns 0 only when out of memory. */
static int printable_copy(const akv_field *f, char **out)
{
    *out = NULL;
    if (f == NULL)
        return 1;
    if ((*out = malloc((size_t)f->len + 1)) == NULL)
        return 0;
    memcpy(*out, f->value, f->len);
    (*out)[f->len] = '\0';
    for (char *c = *out; *c != '\0'; c++)
        if ((unsigned char)*c < 0x20)
            *c = ' ';
    return 1;
}

/*
 * How an exchange on one connection ended, besides its AKV_CALL_* result: what becomes of the
 * connection, and whether the agent closed it before answering (the one case in which the
 * request may be sent again: docs/provider.md, "When the provider retries").
 */
enum exchange_end {
    EXCHANGE_KEEP,       /* answered: the connection may go back to the pool */
    EXCHANGE_CLOSE,      /* failed, or answered PROTOCOL_ERROR (the agent closes after one): close it */
    EXCHANGE_UNANSWERED, /* the agent closed it before any byte of its answer (restart, kill): close it */
    EXCHANGE_GONE        /* the waiter closed it itself (an abandoned async job): never touch the fd again */
};

static int report_gone(struct akv_agent *a, enum exchange_end *end, char *err, size_t errlen)
{
    *end = EXCHANGE_GONE;
    snprintf(err, errlen,
             "the application abandoned the operation while it waited for the akv agent at %s (the TLS "
             "connection was closed); its agent connection was closed",
             a->path);
    return AKV_CALL_IO;
}

static int send_request(struct akv_agent *a, int fd, const akv_buf *request, long long deadline, enum exchange_end *end,
                        char *err, size_t errlen)
{
    enum io_result io = send_all(fd, request->data, request->len, deadline);
    if (io == IO_OK)
        return AKV_CALL_OK;
    if (io == IO_TIMEOUT) {
        snprintf(err, errlen,
                 "the akv agent at %s did not accept the request within %d ms; hint: the agent is "
                 "overloaded or hung: see its log",
                 a->path, a->timeout_ms);
        return AKV_CALL_TIMEOUT;
    }
    *end = EXCHANGE_UNANSWERED; /* the agent closed the connection: it stopped or restarted */
    snprintf(err, errlen,
             "the connection to the akv agent at %s broke while sending; hint: the agent stopped: see "
             "its log",
             a->path);
    return AKV_CALL_IO;
}

/* The frame header of the answer, checked against the request (op and id) before its body is read. */
static int receive_header(struct akv_agent *a, const akv_waiter *waiter, int fd, uint8_t req_op, uint32_t id,
                          long long deadline, unsigned char hdr[AKV_FRAME_HEADER_SIZE], uint32_t *body_len,
                          enum exchange_end *end, char *err, size_t errlen)
{
    enum io_result io = recv_all(waiter, fd, hdr, AKV_FRAME_HEADER_SIZE, deadline, 1);
    if (io == IO_GONE)
        return report_gone(a, end, err, errlen);
    if (io == IO_TIMEOUT) {
        snprintf(err, errlen,
                 "the akv agent at %s did not answer within %d ms; hint: see the agent log; raise "
                 "agent_timeout_ms (AKV_AGENT_TIMEOUT_MS) if the HSM is slow",
                 a->path, a->timeout_ms);
        return AKV_CALL_TIMEOUT;
    }
    if (io != IO_OK) {
        if (io == IO_EOF_AT_START)
            *end = EXCHANGE_UNANSWERED;
        snprintf(err, errlen,
                 "the connection to the akv agent at %s broke before it answered; hint: the agent stopped "
                 "or restarted: see its log, then retry",
                 a->path);
        return AKV_CALL_IO;
    }
    uint8_t op;
    uint32_t rid;
    akv_decode_result dr =
        akv_frame_decode_header(hdr, AKV_FRAME_HEADER_SIZE, AKV_MAX_RESPONSE_BODY, &op, &rid, body_len);
    if (dr != AKV_DECODE_OK) {
        snprintf(err, errlen,
                 "the akv agent at %s sent an invalid frame header (%s); hint: check that this socket is "
                 "really the agent's",
                 a->path, akv_decode_result_name(dr));
        return AKV_CALL_PROTOCOL;
    }
    if ((op != (uint8_t)(req_op | AKV_RESPONSE_BIT) && op != AKV_OP_PROTOCOL_ERROR) ||
        (rid != id && !(op == AKV_OP_PROTOCOL_ERROR && rid == 0))) {
        snprintf(err, errlen,
                 "the akv agent at %s answered op 0x%02x id %u to request op 0x%02x id %u; hint: check that "
                 "this socket is really the agent's",
                 a->path, op, rid, req_op, id);
        return AKV_CALL_PROTOCOL;
    }
    return AKV_CALL_OK;
}

/* The whole answer frame into resp->raw: the checked header, then the body it announces. */
static int receive_answer(struct akv_agent *a, const akv_waiter *waiter, int fd, uint8_t req_op, uint32_t id,
                          long long deadline, akv_response *resp, enum exchange_end *end, char *err, size_t errlen)
{
    unsigned char hdr[AKV_FRAME_HEADER_SIZE];
    uint32_t body_len;
    int rc = receive_header(a, waiter, fd, req_op, id, deadline, hdr, &body_len, end, err, errlen);
    if (rc != AKV_CALL_OK)
        return rc;
    resp->raw_len = AKV_FRAME_HEADER_SIZE + (size_t)body_len;
    resp->raw = malloc(resp->raw_len);
    if (resp->raw == NULL) {
        snprintf(err, errlen, "out of memory reading the akv agent's answer");
        return AKV_CALL_NO_MEMORY;
    }
    memcpy(resp->raw, hdr, sizeof(hdr));
    enum io_result io = recv_all(waiter, fd, resp->raw + AKV_FRAME_HEADER_SIZE, body_len, deadline, 0);
    if (io == IO_GONE)
        return report_gone(a, end, err, errlen);
    if (io == IO_TIMEOUT) {
        snprintf(err, errlen, "the akv agent at %s did not finish its answer within %d ms; hint: see the agent log",
                 a->path, a->timeout_ms);
        return AKV_CALL_TIMEOUT;
    }
    if (io != IO_OK) {
        snprintf(err, errlen, "the connection to the akv agent at %s broke in the middle of its answer", a->path);
        return AKV_CALL_IO;
    }
    return AKV_CALL_OK;
}

/* Decodes the frame in resp->raw: its fields, STATUS, and printable copies of MESSAGE and HINT. */
static int decode_answer(struct akv_agent *a, akv_response *resp, char *err, size_t errlen)
{
    size_t consumed = 0;
    akv_decode_result dr = akv_frame_decode(resp->raw, resp->raw_len, AKV_MAX_RESPONSE_BODY, &resp->frame, &consumed);
    if (dr != AKV_DECODE_OK) {
        snprintf(err, errlen, "the akv agent at %s sent a malformed answer (%s)", a->path, akv_decode_result_name(dr));
        return dr == AKV_DECODE_NO_MEMORY ? AKV_CALL_NO_MEMORY : AKV_CALL_PROTOCOL;
    }
    if (!akv_field_u32(akv_frame_get(&resp->frame, AKV_TAG_STATUS), &resp->status)) {
        snprintf(err, errlen, "the akv agent at %s sent an answer without a STATUS field", a->path);
        return AKV_CALL_PROTOCOL;
    }
    if (!printable_copy(akv_frame_get(&resp->frame, AKV_TAG_MESSAGE), &resp->message) ||
        !printable_copy(akv_frame_get(&resp->frame, AKV_TAG_HINT), &resp->hint)) {
        snprintf(err, errlen, "out of memory reading the akv agent's answer");
        return AKV_CALL_NO_MEMORY;
    }
    if (resp->frame.op == AKV_OP_PROTOCOL_ERROR && resp->status == AKV_STATUS_OK)
        resp->status = AKV_STATUS_BAD_REQUEST;
    return AKV_CALL_OK;
}

/*
 * One request (stamped with `id`) and its answer on one connection. Returns AKV_CALL_*; on
 * AKV_CALL_OK *resp holds the answer, else it is empty and err says what failed. *end says what
 * to do with the connection and whether the agent left the request unanswered. Closes nothing:
 * the caller disposes of the connection.
 */
static int exchange(struct akv_agent *a, const akv_waiter *waiter, int fd, akv_buf *request, uint32_t id,
                    long long deadline, akv_response *resp, enum exchange_end *end, char *err, size_t errlen)
{
    memset(resp, 0, sizeof(*resp));
    *end = EXCHANGE_CLOSE;
    request->data[4] = (unsigned char)(id >> 24);
    request->data[5] = (unsigned char)(id >> 16);
    request->data[6] = (unsigned char)(id >> 8);
    request->data[7] = (unsigned char)id;
    int rc = send_request(a, fd, request, deadline, end, err, errlen);
    if (rc == AKV_CALL_OK)
        rc = receive_answer(a, waiter, fd, request->data[3], id, deadline, resp, end, err, errlen);
    if (rc == AKV_CALL_OK)
        rc = decode_answer(a, resp, err, errlen);
    if (rc != AKV_CALL_OK) {
        akv_response_free(resp);
        return rc;
    }
    *end = resp->frame.op == AKV_OP_PROTOCOL_ERROR ? EXCHANGE_CLOSE : EXCHANGE_KEEP;
    return AKV_CALL_OK;
}

/*
 * A new connection to an agent running as ourselves: when AZURE_CLI_ACCESS_TOKEN is set, hand it
 * over in HELLO, so an agent autostarted earlier uses the token the user has just refreshed
 * (docs/provider.md, "Autostart"). Never sent to an agent of another uid (root's or agent_user's
 * system agent has its own credential). Best effort: a failure here is not the request's failure,
 * except that a broken connection is not used.
 */
static int hand_over_token(struct akv_agent *a, int fd, long long deadline)
{
    const char *token = getenv("AZURE_CLI_ACCESS_TOKEN");
    if (token == NULL || *token == '\0')
        return 1;
    akv_buf hello;
    akv_buf_init(&hello);
    akv_frame_begin(&hello, AKV_OP_HELLO, 0);
    akv_frame_put_u32(&hello, AKV_TAG_PROTO_VERSION, AKV_PROTOCOL_VERSION);
    akv_frame_put_str(&hello, AKV_TAG_CLIENT_NAME, "akv_provider");
    akv_frame_put_u32(&hello, AKV_TAG_CLIENT_PID, (uint32_t)getpid());
    akv_frame_put_str(&hello, AKV_TAG_ACCESS_TOKEN, token);
    int usable = 0;
    if (akv_frame_finish(&hello, AKV_MAX_REQUEST_BODY)) {
        akv_response resp;
        enum exchange_end end;
        char ignored[256];
        /* The agent answers HELLO itself at once (no HSM): waited for the blocking way, even in a job. */
        int rc = exchange(a, &blocking_waiter, fd, &hello, 0, deadline, &resp, &end, ignored, sizeof(ignored));
        usable = rc == AKV_CALL_OK && end == EXCHANGE_KEEP;
        akv_response_free(&resp);
    }
    memset(hello.data, 0, hello.len); /* the token */
    akv_buf_free(&hello);
    return usable;
}

/*
 * Operations that leave nothing behind in the HSM or the agent, so that running one twice costs at
 * most a second HSM call: reading a key, the private-key operations (Azure signs, decrypts and
 * (un)wraps without keeping state; AES key wrap is deterministic), LIST and PING. HELLO (which may
 * hand over a token), FORGET and DIAGNOSE are not retried once sent.
 */
static int retry_safe(uint8_t op)
{
    switch (op) {
    case AKV_OP_SIGN:
    case AKV_OP_DECRYPT:
    case AKV_OP_UNWRAP:
    case AKV_OP_DESCRIBE:
    case AKV_OP_WRAP:
    case AKV_OP_LIST:
    case AKV_OP_PING:
        return 1;
    default:
        return 0;
    }
}

/*
 * One attempt: a connection (an idle pooled one when `pooled` and there is one, else a new one),
 * the exchange, then the connection back into the pool or closed. *retry says whether sending the
 * request once more is right: a new connection failed its greeting (nothing of the request was
 * sent: an agent that was dying as we connected), or the agent closed the connection before any
 * byte of its answer and either the connection was a pooled one (it may have been closed before
 * the request arrived: any op) or the operation may run twice (retry_safe). Never after a timeout
 * (the agent may still be working), a partial answer, or an abandoned job.
 */
static int attempt(struct akv_agent *a, int pooled, akv_buf *request, const akv_waiter *waiter, long long deadline,
                   akv_response *resp, int *retry, char *err, size_t errlen)
{
    int fd;
    unsigned long gen;
    uint32_t id;
    *retry = 0;
    memset(resp, 0, sizeof(*resp));
    checkout(a, pooled, &fd, &gen, &id);
    int reused = fd >= 0;
    if (!reused) {
        uid_t peer_uid;
        fd = connect_agent(a, &peer_uid, err, errlen);
        if (fd < 0)
            return AKV_CALL_UNREACHABLE;
        if (peer_uid == geteuid() && !hand_over_token(a, fd, deadline)) {
            close(fd);
            *retry = 1; /* which starts a new agent when autostart is on */
            snprintf(err, errlen, "the akv agent at %s closed the connection when greeted; hint: see its log", a->path);
            return AKV_CALL_IO;
        }
    }
    enum exchange_end end;
    int rc = exchange(a, waiter, fd, request, id, deadline, resp, &end, err, errlen);
    if (end == EXCHANGE_KEEP)
        checkin(a, fd, gen, waiter == &blocking_waiter ? AKV_POOL_MAX : AKV_ASYNC_POOL_MAX);
    else if (end != EXCHANGE_GONE)
        close(fd);
    *retry = end == EXCHANGE_UNANSWERED && (reused || retry_safe(request->data[3]));
    return rc;
}

int akv_agent_call(AKV_AGENT *a, akv_buf *request, akv_response *resp, char *err, size_t errlen)
{
    return akv_agent_call_waiting(a, request, resp, &blocking_waiter, err, errlen);
}

int akv_agent_call_waiting(AKV_AGENT *a, akv_buf *request, akv_response *resp, const akv_waiter *waiter, char *err,
                           size_t errlen)
{
    memset(resp, 0, sizeof(*resp));
    if (request->failed || request->len < AKV_FRAME_HEADER_SIZE) {
        snprintf(err, errlen, "the request for the akv agent could not be built (too large or out of memory)");
        return AKV_CALL_NO_MEMORY;
    }
    long long deadline = now_ms() + a->timeout_ms;
    int retry;
    int rc = attempt(a, 1, request, waiter, deadline, resp, &retry, err, errlen);
    if (!retry)
        return rc;
    /* Once more, on a fresh connection (the agent just closed one), within the same deadline. */
    rc = attempt(a, 0, request, waiter, deadline, resp, &retry, err, errlen);
    if (!retry)
        return rc;
    snprintf(err, errlen,
             "the akv agent at %s closed the connection twice in a row; hint: the agent stops or restarts as it "
             "is called: see its log",
             a->path);
    return AKV_CALL_IO;
}
