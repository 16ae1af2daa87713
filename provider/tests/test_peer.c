/*
 * Who answers on the socket (agent_conn.c, peer_allowed): a fake agent in a child process, run as
 * root's own uid or as `nobody`, that reports on a pipe every byte count and frame it received.
 * Covers: an agent of another uid is refused before a byte is sent; agent_user allows it; the
 * token in AZURE_CLI_ACCESS_TOKEN is handed over (HELLO) to an agent of our own uid only.
 * The other-uid cases need root (to become nobody); they are skipped otherwise.
 */
#include <errno.h>
#include <pwd.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent_conn.h"
#include "frame.h"
#include "test.h"

typedef struct {
    char dir[64];
    char path[108];
    pid_t pid;
    int report; /* read end: one line per connection: "bytes=N ops=HH,HH token=0|1" */
} fake_agent;

static int read_all(int fd, unsigned char *p, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, p + got, n - got);
        if (r <= 0)
            return 0;
        got += (size_t)r;
    }
    return 1;
}

/* In the child: serves `conns` connections, answering each frame with STATUS OK. */
static void serve(const char *path, uid_t uid, int conns, int report)
{
    if (uid != geteuid() && (setgid(uid) != 0 || setuid(uid) != 0))
        _exit(2);
    int lfd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(lfd, 8) != 0)
        _exit(3);
    if (write(report, "ready\n", 6) != 6)
        _exit(4);
    for (int c = 0; c < conns; c++) {
        int fd = accept(lfd, NULL, NULL);
        if (fd < 0)
            _exit(5);
        size_t bytes = 0;
        int token = 0;
        char ops[64] = "";
        unsigned char hdr[AKV_FRAME_HEADER_SIZE];
        for (;;) {
            ssize_t r = recv(fd, hdr, 1, MSG_PEEK);
            if (r <= 0 || !read_all(fd, hdr, sizeof(hdr)))
                break;
            uint8_t op;
            uint32_t id, blen;
            if (akv_frame_decode_header(hdr, sizeof(hdr), AKV_MAX_REQUEST_BODY, &op, &id, &blen) != AKV_DECODE_OK)
                break;
            unsigned char *body = malloc(blen ? blen : 1);
            akv_frame f;
            if (body == NULL || !read_all(fd, body, blen) || akv_frame_decode_body(body, blen, &f) != AKV_DECODE_OK)
                _exit(6);
            bytes += sizeof(hdr) + blen;
            token |= akv_frame_get(&f, AKV_TAG_ACCESS_TOKEN) != NULL;
            snprintf(ops + strlen(ops), sizeof(ops) - strlen(ops), "%s%02x", ops[0] ? "," : "", op);
            akv_buf out;
            akv_buf_init(&out);
            akv_frame_begin(&out, (uint8_t)(op | AKV_RESPONSE_BIT), id);
            akv_frame_put_u32(&out, AKV_TAG_STATUS, AKV_STATUS_OK);
            akv_frame_finish(&out, AKV_MAX_RESPONSE_BODY);
            if (send(fd, out.data, out.len, MSG_NOSIGNAL) != (ssize_t)out.len)
                _exit(7);
            akv_buf_free(&out);
            akv_frame_clear(&f);
            free(body);
        }
        /* Bytes the client sent that never made a whole frame count too. */
        unsigned char rest[256];
        ssize_t r;
        while ((r = recv(fd, rest, sizeof(rest), MSG_DONTWAIT)) > 0)
            bytes += (size_t)r;
        close(fd);
        char line[128];
        int n = snprintf(line, sizeof(line), "bytes=%zu ops=%s token=%d\n", bytes, ops[0] ? ops : "-", token);
        if (write(report, line, (size_t)n) != n)
            _exit(8);
    }
    _exit(0);
}

static int fake_start(fake_agent *fa, uid_t uid, int conns)
{
    memset(fa, 0, sizeof(*fa));
    snprintf(fa->dir, sizeof(fa->dir), "/tmp/akv-peer-XXXXXX");
    if (mkdtemp(fa->dir) == NULL || chmod(fa->dir, 0777) != 0)
        return 0;
    snprintf(fa->path, sizeof(fa->path), "%s/agent.sock", fa->dir);
    int p[2];
    if (pipe(p) != 0)
        return 0;
    fa->pid = fork();
    if (fa->pid == 0) {
        close(p[0]);
        serve(fa->path, uid, conns, p[1]);
    }
    close(p[1]);
    fa->report = p[0];
    char ready[8] = "";
    return read_all(fa->report, (unsigned char *)ready, 6) && memcmp(ready, "ready\n", 6) == 0;
}

/* The next report line of the fake agent (after the client closed its connection). */
static void fake_report(fake_agent *fa, char *line, size_t size)
{
    size_t n = 0;
    while (n + 1 < size && read(fa->report, line + n, 1) == 1 && line[n] != '\n')
        n++;
    line[n] = '\0';
}

static void fake_stop(fake_agent *fa)
{
    kill(fa->pid, SIGTERM);
    waitpid(fa->pid, NULL, 0);
    close(fa->report);
    unlink(fa->path);
    rmdir(fa->dir);
}

static int ping(AKV_AGENT *agent, char *err, size_t errlen)
{
    akv_buf req;
    akv_response resp;
    akv_buf_init(&req);
    akv_frame_begin(&req, AKV_OP_PING, 0);
    akv_frame_finish(&req, AKV_MAX_REQUEST_BODY);
    int rc = akv_agent_call(agent, &req, &resp, err, errlen);
    if (rc == AKV_CALL_OK)
        akv_response_free(&resp);
    akv_buf_free(&req);
    return rc;
}

static uid_t nobody_uid(void)
{
    struct passwd *pw = getpwnam("nobody");
    return pw != NULL ? pw->pw_uid : 65534;
}

static void test_other_uid_refused_before_sending(void)
{
    if (geteuid() != 0) {
        fprintf(stderr, "    skipped: needs root to run a fake agent as nobody\n");
        return;
    }
    fake_agent fa;
    CHECK(fake_start(&fa, nobody_uid(), 1));
    AKV_AGENT *agent = akv_agent_new(fa.path, 2000);
    char err[600] = "";
    CHECK(ping(agent, err, sizeof(err)) == AKV_CALL_UNREACHABLE);
    CHECKF(strstr(err, fa.path) != NULL && strstr(err, "served by uid") != NULL && strstr(err, "(nobody)") != NULL &&
               strstr(err, "nothing was sent") != NULL && strstr(err, "hint: ") != NULL &&
               strstr(err, "agent_user = nobody") != NULL,
           "error: %s", err);
    akv_agent_free(agent);
    char line[128];
    fake_report(&fa, line, sizeof(line));
    CHECKF(strcmp(line, "bytes=0 ops=- token=0") == 0, "the refused agent received: %s", line);
    fake_stop(&fa);
}

static void test_agent_user_allows_it_without_the_token(void)
{
    if (geteuid() != 0) {
        fprintf(stderr, "    skipped: needs root to run a fake agent as nobody\n");
        return;
    }
    setenv("AZURE_CLI_ACCESS_TOKEN", "user-token", 1);
    fake_agent fa;
    CHECK(fake_start(&fa, nobody_uid(), 1));
    AKV_AGENT *agent = akv_agent_new(fa.path, 2000);
    akv_agent_allow_uid(agent, nobody_uid());
    char err[600] = "";
    CHECKF(ping(agent, err, sizeof(err)) == AKV_CALL_OK, "%s", err);
    akv_agent_free(agent);
    char line[128];
    fake_report(&fa, line, sizeof(line));
    /* Only the PING: a user's token never goes to another user's (system) agent. */
    CHECKF(strncmp(line, "bytes=12 ops=02 token=0", 23) == 0, "the agent_user agent received: %s", line);
    fake_stop(&fa);
    unsetenv("AZURE_CLI_ACCESS_TOKEN");
}

static void test_token_handed_to_own_agent(void)
{
    setenv("AZURE_CLI_ACCESS_TOKEN", "fresh-token", 1);
    fake_agent fa;
    CHECK(fake_start(&fa, geteuid(), 1));
    AKV_AGENT *agent = akv_agent_new(fa.path, 2000);
    char err[600] = "";
    CHECKF(ping(agent, err, sizeof(err)) == AKV_CALL_OK, "%s", err);
    CHECKF(ping(agent, err, sizeof(err)) == AKV_CALL_OK, "%s", err);
    akv_agent_free(agent);
    char line[128];
    fake_report(&fa, line, sizeof(line));
    /* HELLO with the token once per connection, then the two PINGs on the pooled connection. */
    CHECKF(strstr(line, "ops=01,02,02 token=1") != NULL, "own agent received: %s", line);
    fake_stop(&fa);
    unsetenv("AZURE_CLI_ACCESS_TOKEN");
}

const akv_test peer_tests[] = {
    {"peer: an agent of another uid is refused before a byte is sent", test_other_uid_refused_before_sending},
    {"peer: agent_user allows that uid, and the user's token is not handed to it",
     test_agent_user_allows_it_without_the_token},
    {"peer: AZURE_CLI_ACCESS_TOKEN is handed over to an agent of our own uid", test_token_handed_to_own_agent},
    {NULL, NULL},
};
