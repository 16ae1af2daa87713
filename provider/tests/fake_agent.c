/*
 * The fake agent of the C tests (fake_agent.h), shared by the provider's tests and the PKCS#11
 * module's (pkcs11/tests/fake_hsm.c answers with real keys through `answer`): a Unix-socket
 * server speaking the protocol framing, one thread per connection, that echoes or misbehaves on
 * purpose (enum server_mode).
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "fake_agent.h"
#include "frame.h"

typedef struct {
    test_server *srv;
    int fd;
} conn_arg;

static int read_full(int fd, unsigned char *p, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, p + got, n - got);
        if (r <= 0) {
            if (r < 0 && errno == EINTR)
                continue;
            return 0;
        }
        got += (size_t)r;
    }
    return 1;
}

static void write_full(int fd, const unsigned char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w <= 0)
            return;
        p += w;
        n -= (size_t)w;
    }
}

static void *serve_conn(void *varg)
{
    conn_arg *arg = varg;
    test_server *srv = arg->srv;
    int fd = arg->fd;
    free(arg);
    uint32_t conn_pid = 0;
    for (;;) {
        unsigned char hdr[AKV_FRAME_HEADER_SIZE];
        uint8_t op;
        uint32_t id, blen;
        if (!read_full(fd, hdr, sizeof(hdr)) ||
            akv_frame_decode_header(hdr, sizeof(hdr), AKV_MAX_REQUEST_BODY, &op, &id, &blen) != AKV_DECODE_OK)
            break;
        unsigned char *body = malloc(blen ? blen : 1);
        akv_frame f;
        if (body == NULL || !read_full(fd, body, blen) || akv_frame_decode_body(body, blen, &f) != AKV_DECODE_OK) {
            free(body);
            break;
        }
        uint32_t pid = 0;
        akv_field_u32(akv_frame_get(&f, AKV_TAG_CLIENT_PID), &pid);
        pthread_mutex_lock(&srv->lock);
        srv->requests++;
        srv->op_requests[op]++;
        if (conn_pid == 0)
            conn_pid = pid;
        else if (pid != conn_pid)
            srv->pid_violations++;
        pthread_mutex_unlock(&srv->lock);

        int mode = srv->mode;
        pthread_mutex_lock(&srv->lock);
        int hang_up = mode == MODE_HANGUP || (mode == MODE_HANGUP_ONCE && srv->hangups == 0) ||
                      (mode == MODE_HANGUP_SECOND && srv->requests == 2);
        if (hang_up)
            srv->hangups++;
        pthread_mutex_unlock(&srv->lock);
        if (hang_up) {
            akv_frame_clear(&f);
            free(body);
            break;
        }
        akv_buf out;
        akv_buf_init(&out);
        if (mode == MODE_DELAY)
            usleep(FAKE_AGENT_DELAY_MS * 1000);
        if (mode == MODE_SILENT) {
            /* Reads requests, never answers. */
        } else if (mode == MODE_GARBAGE) {
            static const char http[] = "HTTP/1.1 400 Bad Request\r\n\r\n";
            write_full(fd, (const unsigned char *)http, sizeof(http) - 1);
        } else {
            akv_frame_begin(&out, (uint8_t)(op | AKV_RESPONSE_BIT), mode == MODE_WRONG_ID ? id + 1 : id);
            if (srv->answer != NULL) {
                srv->answer(&out, op, &f, srv->answer_ctx);
            } else if (mode == MODE_STATUS_ERROR) {
                akv_frame_put_u32(&out, AKV_TAG_STATUS, AKV_STATUS_FORBIDDEN);
                akv_frame_put_str(&out, AKV_TAG_MESSAGE, "key managedhsm:h:k does not allow sign");
            } else {
                akv_frame_put_u32(&out, AKV_TAG_STATUS, AKV_STATUS_OK);
                const akv_field *in = akv_frame_get(&f, AKV_TAG_INPUT);
                if (in != NULL)
                    akv_frame_put_bytes(&out, AKV_TAG_OUTPUT, in->value, in->len);
            }
            akv_frame_finish(&out, AKV_MAX_RESPONSE_BODY);
            if (mode == MODE_CUT_SHORT) {
                /* Promise the whole body, send the header and a few bytes, then hang up. */
                write_full(fd, out.data, AKV_FRAME_HEADER_SIZE + 3);
                akv_buf_free(&out);
                akv_frame_clear(&f);
                free(body);
                break;
            }
            write_full(fd, out.data, out.len);
        }
        akv_buf_free(&out);
        akv_frame_clear(&f);
        free(body);
    }
    close(fd);
    return NULL;
}

static void *accept_loop(void *varg)
{
    test_server *srv = varg;
    while (!srv->stop) {
        struct pollfd p = {.fd = srv->listen_fd, .events = POLLIN, .revents = 0};
        if (poll(&p, 1, 50) <= 0)
            continue;
        int fd = accept(srv->listen_fd, NULL, NULL);
        if (fd < 0)
            continue;
        pthread_mutex_lock(&srv->lock);
        if (srv->nconns < MAX_CONNS)
            srv->conn_fds[srv->nconns++] = fd;
        pthread_mutex_unlock(&srv->lock);
        conn_arg *arg = malloc(sizeof(*arg));
        pthread_t t;
        if (arg == NULL) {
            close(fd);
            continue;
        }
        arg->srv = srv;
        arg->fd = fd;
        if (pthread_create(&t, NULL, serve_conn, arg) != 0) {
            free(arg);
            close(fd);
            continue;
        }
        pthread_detach(t);
    }
    return NULL;
}

int server_start(test_server *srv, const char *path, int mode)
{
    return server_start_answering(srv, path, mode, NULL, NULL);
}

int server_start_answering(test_server *srv, const char *path, int mode, fake_agent_answer answer, void *ctx)
{
    memset(srv, 0, sizeof(*srv));
    pthread_mutex_init(&srv->lock, NULL);
    srv->answer = answer;
    srv->answer_ctx = ctx;
    snprintf(srv->path, sizeof(srv->path), "%s", path);
    srv->mode = mode;
    unlink(path);
    srv->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    if (srv->listen_fd < 0 || bind(srv->listen_fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
        listen(srv->listen_fd, 64) != 0)
        return 0;
    return pthread_create(&srv->acceptor, NULL, accept_loop, srv) == 0;
}

/* Stops accepting and hangs up every connection, as a killed agent would. */
void server_stop(test_server *srv)
{
    srv->stop = 1;
    pthread_join(srv->acceptor, NULL);
    close(srv->listen_fd);
    unlink(srv->path);
    pthread_mutex_lock(&srv->lock);
    for (int i = 0; i < srv->nconns; i++)
        shutdown(srv->conn_fds[i], SHUT_RDWR);
    pthread_mutex_unlock(&srv->lock);
    /* Let the connection threads see EOF and exit before the struct is reused. */
    usleep(50000);
}

static char socket_dir[64];

const char *socket_path(void)
{
    static char path[128];
    if (socket_dir[0] == '\0') {
        snprintf(socket_dir, sizeof(socket_dir), "/tmp/akv-ctest-XXXXXX");
        if (mkdtemp(socket_dir) == NULL)
            return "/tmp/akv-ctest.sock";
    }
    snprintf(path, sizeof(path), "%s/agent.sock", socket_dir);
    return path;
}

void socket_dir_remove(void)
{
    if (socket_dir[0] != '\0')
        rmdir(socket_dir);
    socket_dir[0] = '\0';
}
