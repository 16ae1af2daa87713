/*
 * Connection pool to the akv agent. Rules this file keeps (design.md, "Things that are known to
 * bite"):
 *  - a connection is used by one thread at a time: it is taken out of the pool for the whole
 *    request/response and put back afterwards;
 *  - a child process never uses a connection its parent opened: pthread_atfork drops the idle
 *    ones in the child, and the owner pid is checked on every checkout (for forks that bypass the
 *    handlers); connections that were checked out at fork time are not returned to the child's pool;
 *  - every read and write is bounded by the request deadline, so a hung agent cannot hang us;
 *  - a pooled connection found dead (agent restarted) is replaced once, transparently.
 */
#include "agent_conn.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define AKV_POOL_MAX 8

struct akv_agent {
    char *path;
    int timeout_ms;
    pthread_mutex_t lock;
    pid_t owner_pid;           /* process whose connections sit in `idle` */
    unsigned long generation;  /* bumped when a fork invalidates older connections */
    int idle[AKV_POOL_MAX];
    size_t nidle;
    uint32_t next_id;
    unsigned long connects;
    struct akv_agent *next_registered;
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

/* Takes an idle connection (fd >= 0) or none (fd = -1), plus a fresh request id. */
static void checkout(struct akv_agent *a, int *fd, unsigned long *gen, uint32_t *id)
{
    pthread_mutex_lock(&a->lock);
    if (a->owner_pid != getpid()) {
        /* Forked without the handlers running: these fds are the parent's, forget them. */
        a->nidle = 0;
        a->generation++;
        a->owner_pid = getpid();
    }
    *fd = a->nidle > 0 ? a->idle[--a->nidle] : -1;
    *gen = a->generation;
    a->next_id++;
    if (a->next_id == 0)
        a->next_id = 1;
    *id = a->next_id;
    pthread_mutex_unlock(&a->lock);
}

static void checkin(struct akv_agent *a, int fd, unsigned long gen)
{
    pthread_mutex_lock(&a->lock);
    if (gen == a->generation && a->owner_pid == getpid() && a->nidle < AKV_POOL_MAX) {
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

static int connect_agent(struct akv_agent *a, char *err, size_t errlen)
{
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    if (strlen(a->path) >= sizeof(sa.sun_path)) {
        snprintf(err, errlen, "akv agent socket path is too long (%zu bytes, limit %zu): %s", strlen(a->path),
                 sizeof(sa.sun_path) - 1, a->path);
        return -1;
    }
    memcpy(sa.sun_path, a->path, strlen(a->path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "cannot create a socket for the akv agent: %s", strerror(errno));
        return -1;
    }
    /* Bounds connect() itself when the agent's listen backlog is full. */
    struct timeval tv = {.tv_sec = a->timeout_ms / 1000, .tv_usec = (a->timeout_ms % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        int e = errno;
        close(fd);
        if (e == EACCES || e == EPERM)
            snprintf(err, errlen,
                     "permission denied on the akv agent socket %s; hint: run as a user in the socket's group "
                     "(socketGroup in the agent config)",
                     a->path);
        else
            snprintf(err, errlen,
                     "akv agent not reachable at %s (%s); hint: start it with `akv agent`, or point "
                     "AKV_AGENT_SOCKET / agent_socket at its socket",
                     a->path, strerror(e));
        return -1;
    }
    pthread_mutex_lock(&a->lock);
    a->connects++;
    pthread_mutex_unlock(&a->lock);
    return fd;
}

/* 1 when ready, 0 on deadline, -1 on error. */
static int wait_fd(int fd, short events, long long deadline)
{
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

enum io_result { IO_OK = 0, IO_EOF_AT_START, IO_BROKEN, IO_TIMEOUT };

static enum io_result send_all(int fd, const unsigned char *p, size_t len, long long deadline)
{
    while (len > 0) {
        int w = wait_fd(fd, POLLOUT, deadline);
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

static enum io_result recv_all(int fd, unsigned char *p, size_t len, long long deadline, int first)
{
    size_t got = 0;
    while (got < len) {
        int w = wait_fd(fd, POLLIN, deadline);
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

static int read_response(struct akv_agent *a, int fd, uint8_t req_op, uint32_t id, long long deadline,
                         akv_response *resp, int *eof_at_start, char *err, size_t errlen)
{
    unsigned char hdr[AKV_FRAME_HEADER_SIZE];
    enum io_result io = recv_all(fd, hdr, sizeof(hdr), deadline, 1);
    *eof_at_start = io == IO_EOF_AT_START;
    if (io == IO_TIMEOUT) {
        snprintf(err, errlen,
                 "the akv agent at %s did not answer within %d ms; hint: see the agent log; raise "
                 "agent_timeout_ms (AKV_AGENT_TIMEOUT_MS) if the HSM is slow",
                 a->path, a->timeout_ms);
        return AKV_CALL_TIMEOUT;
    }
    if (io != IO_OK) {
        snprintf(err, errlen,
                 "the connection to the akv agent at %s broke before it answered; hint: the agent stopped "
                 "or restarted: see its log, then retry",
                 a->path);
        return AKV_CALL_IO;
    }
    uint8_t op;
    uint32_t rid, body_len;
    akv_decode_result dr = akv_frame_decode_header(hdr, sizeof(hdr), AKV_MAX_RESPONSE_BODY, &op, &rid, &body_len);
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
    resp->raw_len = AKV_FRAME_HEADER_SIZE + (size_t)body_len;
    resp->raw = malloc(resp->raw_len);
    if (resp->raw == NULL) {
        snprintf(err, errlen, "out of memory reading the akv agent's answer");
        return AKV_CALL_NO_MEMORY;
    }
    memcpy(resp->raw, hdr, sizeof(hdr));
    io = recv_all(fd, resp->raw + AKV_FRAME_HEADER_SIZE, body_len, deadline, 0);
    if (io == IO_TIMEOUT) {
        snprintf(err, errlen, "the akv agent at %s did not finish its answer within %d ms; hint: see the agent log",
                 a->path, a->timeout_ms);
        return AKV_CALL_TIMEOUT;
    }
    if (io != IO_OK) {
        snprintf(err, errlen, "the connection to the akv agent at %s broke in the middle of its answer", a->path);
        return AKV_CALL_IO;
    }
    size_t consumed = 0;
    dr = akv_frame_decode(resp->raw, resp->raw_len, AKV_MAX_RESPONSE_BODY, &resp->frame, &consumed);
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
    if (op == AKV_OP_PROTOCOL_ERROR && resp->status == AKV_STATUS_OK)
        resp->status = AKV_STATUS_BAD_REQUEST;
    return AKV_CALL_OK;
}

int akv_agent_call(AKV_AGENT *a, akv_buf *request, akv_response *resp, char *err, size_t errlen)
{
    memset(resp, 0, sizeof(*resp));
    if (request->failed || request->len < AKV_FRAME_HEADER_SIZE) {
        snprintf(err, errlen, "the request for the akv agent could not be built (too large or out of memory)");
        return AKV_CALL_NO_MEMORY;
    }
    long long deadline = now_ms() + a->timeout_ms;
    uint8_t req_op = request->data[3];

    for (int attempt = 0; attempt < 2; attempt++) {
        int fd;
        unsigned long gen;
        uint32_t id;
        checkout(a, &fd, &gen, &id);
        int reused = fd >= 0;
        if (fd < 0) {
            fd = connect_agent(a, err, errlen);
            if (fd < 0)
                return AKV_CALL_UNREACHABLE;
        }
        request->data[4] = (unsigned char)(id >> 24);
        request->data[5] = (unsigned char)(id >> 16);
        request->data[6] = (unsigned char)(id >> 8);
        request->data[7] = (unsigned char)id;

        enum io_result io = send_all(fd, request->data, request->len, deadline);
        if (io != IO_OK) {
            close(fd);
            if (reused && attempt == 0 && io != IO_TIMEOUT)
                continue; /* stale pooled connection: the agent restarted */
            if (io == IO_TIMEOUT) {
                snprintf(err, errlen,
                         "the akv agent at %s did not accept the request within %d ms; hint: the agent is "
                         "overloaded or hung: see its log",
                         a->path, a->timeout_ms);
                return AKV_CALL_TIMEOUT;
            }
            snprintf(err, errlen,
                     "the connection to the akv agent at %s broke while sending; hint: the agent stopped: see "
                     "its log",
                     a->path);
            return AKV_CALL_IO;
        }
        int eof_at_start = 0;
        int rc = read_response(a, fd, req_op, id, deadline, resp, &eof_at_start, err, errlen);
        if (rc != AKV_CALL_OK) {
            close(fd);
            akv_response_free(resp);
            if (reused && attempt == 0 && eof_at_start)
                continue;
            return rc;
        }
        if (resp->frame.op == AKV_OP_PROTOCOL_ERROR)
            close(fd); /* the agent closes after a protocol error */
        else
            checkin(a, fd, gen);
        return AKV_CALL_OK;
    }
    snprintf(err, errlen, "the akv agent at %s closed the connection twice in a row", a->path);
    return AKV_CALL_IO;
}
