/*
 * The agent connection pool against a small in-process Unix-socket server that speaks the
 * protocol framing (fake_agent.c: it is not an agent, it echoes INPUT as OUTPUT, or misbehaves on
 * purpose).
 * Covers 8 threads sharing one pool, fork (with and without the atfork handlers), agent
 * restart, agent down, a silent agent (timeout), garbage, a response cut short, a wrong id.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent_conn.h"
#include "fake_agent.h"
#include "frame.h"
#include "test.h"

/* One SIGN-shaped request carrying `payload`; returns the call result and checks the echo. */
static int call_echo(AKV_AGENT *agent, const unsigned char *payload, size_t len, int *echo_ok, char *err, size_t errlen)
{
    akv_buf req;
    akv_response resp;
    akv_buf_init(&req);
    akv_frame_begin(&req, AKV_OP_SIGN, 0);
    akv_frame_put_str(&req, AKV_TAG_URI, "managedhsm:h:k");
    akv_frame_put_str(&req, AKV_TAG_ALG, "RS256");
    akv_frame_put_bytes(&req, AKV_TAG_INPUT, payload, len);
    akv_frame_put_u32(&req, AKV_TAG_CLIENT_PID, (uint32_t)getpid());
    akv_frame_finish(&req, AKV_MAX_REQUEST_BODY);
    int rc = akv_agent_call(agent, &req, &resp, err, errlen);
    *echo_ok = 0;
    if (rc == AKV_CALL_OK) {
        const akv_field *o = akv_frame_get(&resp.frame, AKV_TAG_OUTPUT);
        *echo_ok = resp.status == AKV_STATUS_OK && o != NULL && o->len == len && memcmp(o->value, payload, len) == 0;
        akv_response_free(&resp);
    }
    akv_buf_free(&req);
    return rc;
}

static void test_echo_and_pool_reuse(void)
{
    test_server srv;
    CHECK(server_start(&srv, socket_path(), MODE_ECHO));
    AKV_AGENT *agent = akv_agent_new(srv.path, 5000);
    char err[256];
    int echo_ok;
    for (int i = 0; i < 5; i++) {
        unsigned char data[32];
        memset(data, i, sizeof(data));
        CHECK(call_echo(agent, data, sizeof(data), &echo_ok, err, sizeof(err)) == AKV_CALL_OK && echo_ok);
    }
    /* Sequential calls reuse one pooled connection. */
    CHECK(akv_agent_connects(agent) == 1);
    CHECK(akv_agent_idle_count(agent) == 1);
    akv_agent_free(agent);
    server_stop(&srv);
}

typedef struct {
    AKV_AGENT *agent;
    int index;
    int failures;
} thread_arg;

static void *hammer(void *varg)
{
    thread_arg *a = varg;
    char err[256];
    for (int i = 0; i < 60; i++) {
        unsigned char data[48];
        for (size_t j = 0; j < sizeof(data); j++)
            data[j] = (unsigned char)(a->index * 31 + i * 7 + (int)j);
        int echo_ok = 0;
        if (call_echo(a->agent, data, sizeof(data), &echo_ok, err, sizeof(err)) != AKV_CALL_OK || !echo_ok) {
            fprintf(stderr, "    thread %d call %d: %s\n", a->index, i, err);
            a->failures++;
        }
    }
    return NULL;
}

static void test_eight_threads(void)
{
    test_server srv;
    CHECK(server_start(&srv, socket_path(), MODE_ECHO));
    AKV_AGENT *agent = akv_agent_new(srv.path, 10000);
    pthread_t threads[8];
    thread_arg args[8];
    for (int i = 0; i < 8; i++) {
        args[i] = (thread_arg){agent, i, 0};
        CHECK(pthread_create(&threads[i], NULL, hammer, &args[i]) == 0);
    }
    for (int i = 0; i < 8; i++) {
        pthread_join(threads[i], NULL);
        CHECKF(args[i].failures == 0, "thread %d had %d failures", i, args[i].failures);
    }
    pthread_mutex_lock(&srv.lock);
    CHECK(srv.requests == 8 * 60);
    pthread_mutex_unlock(&srv.lock);
    /* Never more connections than threads, and at most 8 kept idle. */
    CHECK(akv_agent_connects(agent) <= 8);
    CHECK(akv_agent_idle_count(agent) <= 8);
    akv_agent_free(agent);
    server_stop(&srv);
}

static void fork_case(int raw_fork)
{
    test_server srv;
    CHECK(server_start(&srv, socket_path(), MODE_ECHO));
    AKV_AGENT *agent = akv_agent_new(srv.path, 5000);
    char err[256];
    int echo_ok;
    unsigned char data[16] = "parent-request!";
    CHECK(call_echo(agent, data, sizeof(data), &echo_ok, err, sizeof(err)) == AKV_CALL_OK && echo_ok);
    CHECK(akv_agent_idle_count(agent) == 1);
    /* raw_fork skips pthread_atfork handlers, leaving only the pid check to protect us. */
    pid_t child = raw_fork ? (pid_t)syscall(SYS_fork) : fork();
    if (child == 0) {
        alarm(20);
        int ok = 1;
        for (int i = 0; i < 3 && ok; i++) {
            unsigned char cdata[16] = "child-request!!";
            ok = call_echo(agent, cdata, sizeof(cdata), &echo_ok, err, sizeof(err)) == AKV_CALL_OK && echo_ok;
        }
        _exit(ok ? 0 : 1);
    }
    int status = 0;
    CHECK(child > 0 && waitpid(child, &status, 0) == child);
    CHECKF(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %d", status);
    /* The parent's pooled connection still works and still belongs to the parent. */
    CHECK(call_echo(agent, data, sizeof(data), &echo_ok, err, sizeof(err)) == AKV_CALL_OK && echo_ok);
    pthread_mutex_lock(&srv.lock);
    CHECKF(srv.pid_violations == 0, "%d connections were shared between parent and child", srv.pid_violations);
    CHECK(srv.nconns >= 2);
    pthread_mutex_unlock(&srv.lock);
    akv_agent_free(agent);
    server_stop(&srv);
}

static void test_fork_with_handlers(void)
{
    fork_case(0);
}

static void test_fork_without_handlers(void)
{
    fork_case(1);
}

static void test_agent_restart(void)
{
    test_server srv;
    CHECK(server_start(&srv, socket_path(), MODE_ECHO));
    AKV_AGENT *agent = akv_agent_new(srv.path, 5000);
    char err[256];
    int echo_ok;
    unsigned char data[8] = "restart";
    CHECK(call_echo(agent, data, sizeof(data), &echo_ok, err, sizeof(err)) == AKV_CALL_OK && echo_ok);
    server_stop(&srv);
    /* Agent down: a clear error naming the socket and what to do. */
    CHECK(call_echo(agent, data, sizeof(data), &echo_ok, err, sizeof(err)) == AKV_CALL_UNREACHABLE);
    CHECKF(strstr(err, srv.path) != NULL && strstr(err, "; hint: start it with `akv agent`") != NULL, "message: %s",
           err);
    /* Agent back: the next call reconnects by itself. */
    CHECK(server_start(&srv, socket_path(), MODE_ECHO));
    CHECKF(call_echo(agent, data, sizeof(data), &echo_ok, err, sizeof(err)) == AKV_CALL_OK && echo_ok, "%s", err);
    /* Restart while a connection sits idle in the pool: the stale one is replaced transparently. */
    server_stop(&srv);
    CHECK(server_start(&srv, socket_path(), MODE_ECHO));
    CHECKF(call_echo(agent, data, sizeof(data), &echo_ok, err, sizeof(err)) == AKV_CALL_OK && echo_ok, "%s", err);
    akv_agent_free(agent);
    server_stop(&srv);
}

/* An op of `op` carrying "retry" (request id and pid filled in by the call). */
static int call_op(AKV_AGENT *agent, uint8_t op, char *err, size_t errlen)
{
    akv_buf req;
    akv_response resp;
    akv_buf_init(&req);
    akv_frame_begin(&req, op, 0);
    akv_frame_put_str(&req, AKV_TAG_URI, "managedhsm:h:k");
    akv_frame_put_str(&req, AKV_TAG_ALG, "RS256");
    akv_frame_put_bytes(&req, AKV_TAG_INPUT, (const unsigned char *)"retry", 5);
    akv_frame_put_u32(&req, AKV_TAG_CLIENT_PID, (uint32_t)getpid());
    akv_frame_finish(&req, AKV_MAX_REQUEST_BODY);
    int rc = akv_agent_call(agent, &req, &resp, err, errlen);
    if (rc == AKV_CALL_OK)
        akv_response_free(&resp);
    akv_buf_free(&req);
    return rc;
}

/*
 * The agent closes a fresh connection after reading the request, without answering (killed, or
 * stopping): an operation that may run twice is sent once more on a new connection and succeeds;
 * one that may not (FORGET) fails cleanly after one request; an agent that hangs up every time
 * gets exactly two requests, and the error says so.
 */
static void test_retry_when_agent_hangs_up(void)
{
    char err[256] = "";
    static const uint8_t safe[] = {AKV_OP_SIGN, AKV_OP_DECRYPT, AKV_OP_UNWRAP, AKV_OP_DESCRIBE};
    for (size_t i = 0; i < sizeof(safe); i++) {
        test_server srv;
        CHECK(server_start(&srv, socket_path(), MODE_HANGUP_ONCE));
        AKV_AGENT *agent = akv_agent_new(srv.path, 5000);
        int rc = call_op(agent, safe[i], err, sizeof(err));
        CHECKF(rc == AKV_CALL_OK, "op 0x%02x after one hang-up: %d (%s)", safe[i], rc, err);
        CHECKF(srv.requests == 2 && srv.hangups == 1 && akv_agent_connects(agent) == 2,
               "op 0x%02x: %d requests, %d hang-ups, %lu connects", safe[i], srv.requests, srv.hangups,
               akv_agent_connects(agent));
        akv_agent_free(agent);
        server_stop(&srv);
    }
    test_server srv;
    CHECK(server_start(&srv, socket_path(), MODE_HANGUP_ONCE));
    AKV_AGENT *agent = akv_agent_new(srv.path, 5000);
    CHECK(call_op(agent, AKV_OP_FORGET, err, sizeof(err)) == AKV_CALL_IO);
    CHECKF(strstr(err, "broke before it answered") != NULL, "message: %s", err);
    CHECK(srv.requests == 1);
    /* The next call works. */
    CHECKF(call_op(agent, AKV_OP_SIGN, err, sizeof(err)) == AKV_CALL_OK, "%s", err);
    akv_agent_free(agent);
    server_stop(&srv);

    CHECK(server_start(&srv, socket_path(), MODE_HANGUP));
    agent = akv_agent_new(srv.path, 5000);
    CHECK(call_op(agent, AKV_OP_SIGN, err, sizeof(err)) == AKV_CALL_IO);
    CHECKF(srv.requests == 2, "an agent that always hangs up got %d requests, expected 2", srv.requests);
    CHECKF(strstr(err, "closed the connection twice in a row") != NULL, "message: %s", err);
    akv_agent_free(agent);
    server_stop(&srv);
}

/*
 * A pooled connection the agent closes after reading the request (it passed the idle check: the
 * agent closed it in between): any operation is sent again, FORGET included, since the agent may
 * have closed it before the request arrived.
 */
static void test_retry_on_pooled_connection_any_op(void)
{
    char err[256] = "";
    test_server srv;
    CHECK(server_start(&srv, socket_path(), MODE_HANGUP_SECOND));
    AKV_AGENT *agent = akv_agent_new(srv.path, 5000);
    CHECKF(call_op(agent, AKV_OP_FORGET, err, sizeof(err)) == AKV_CALL_OK, "%s", err);
    CHECK(akv_agent_idle_count(agent) == 1);
    int rc = call_op(agent, AKV_OP_FORGET, err, sizeof(err));
    CHECKF(rc == AKV_CALL_OK, "FORGET on a pooled connection the agent closed: %d (%s)", rc, err);
    CHECKF(srv.requests == 3 && srv.hangups == 1 && akv_agent_connects(agent) == 2,
           "%d requests, %d hang-ups, %lu connects", srv.requests, srv.hangups, akv_agent_connects(agent));
    akv_agent_free(agent);
    server_stop(&srv);
}

/*
 * With AZURE_CLI_ACCESS_TOKEN set, a new connection starts with HELLO; an agent that closes it
 * there has seen nothing of the request, which goes out once more on another new connection.
 */
static void test_retry_when_greeting_fails(void)
{
    char err[256] = "";
    const char *saved = getenv("AZURE_CLI_ACCESS_TOKEN");
    char *restore = saved != NULL ? strdup(saved) : NULL;
    setenv("AZURE_CLI_ACCESS_TOKEN", "test-token", 1);
    test_server srv;
    CHECK(server_start(&srv, socket_path(), MODE_HANGUP_ONCE));
    AKV_AGENT *agent = akv_agent_new(srv.path, 5000);
    int rc = call_op(agent, AKV_OP_FORGET, err, sizeof(err));
    CHECKF(rc == AKV_CALL_OK, "after a hang-up on HELLO: %d (%s)", rc, err);
    /* HELLO (hung up on), HELLO, FORGET */
    CHECKF(srv.requests == 3 && srv.hangups == 1 && akv_agent_connects(agent) == 2,
           "%d requests, %d hang-ups, %lu connects", srv.requests, srv.hangups, akv_agent_connects(agent));
    akv_agent_free(agent);
    server_stop(&srv);
    if (restore != NULL)
        setenv("AZURE_CLI_ACCESS_TOKEN", restore, 1);
    else
        unsetenv("AZURE_CLI_ACCESS_TOKEN");
    free(restore);
}

static void expect_failure(int mode, int expected_rc, const char *needle)
{
    test_server srv;
    CHECK(server_start(&srv, socket_path(), mode));
    AKV_AGENT *agent = akv_agent_new(srv.path, 400);
    char err[256] = "";
    int echo_ok;
    unsigned char data[8] = "failure";
    int rc = call_echo(agent, data, sizeof(data), &echo_ok, err, sizeof(err));
    CHECKF(rc == expected_rc, "mode %d: result %d, expected %d (%s)", mode, rc, expected_rc, err);
    CHECKF(strstr(err, needle) != NULL, "mode %d: message '%s' lacks '%s'", mode, err, needle);
    /* A broken connection never goes back to the pool, and the request is not sent again (the
     * agent may still be working on it, or has begun to answer). */
    CHECK(akv_agent_idle_count(agent) == 0);
    pthread_mutex_lock(&srv.lock);
    CHECKF(srv.requests == 1, "mode %d: the request was sent %d times", mode, srv.requests);
    pthread_mutex_unlock(&srv.lock);
    akv_agent_free(agent);
    server_stop(&srv);
}

static void test_silent_agent_times_out(void)
{
    expect_failure(MODE_SILENT, AKV_CALL_TIMEOUT, "did not answer within 400 ms");
}

static void test_garbage_from_agent(void)
{
    expect_failure(MODE_GARBAGE, AKV_CALL_PROTOCOL, "invalid frame header");
}

static void test_answer_cut_short(void)
{
    expect_failure(MODE_CUT_SHORT, AKV_CALL_IO, "broke in the middle");
}

static void test_wrong_response_id(void)
{
    expect_failure(MODE_WRONG_ID, AKV_CALL_PROTOCOL, "answered op");
}

static void test_status_error_is_returned(void)
{
    test_server srv;
    CHECK(server_start(&srv, socket_path(), MODE_STATUS_ERROR));
    AKV_AGENT *agent = akv_agent_new(srv.path, 2000);
    akv_buf req;
    akv_response resp;
    char err[256];
    akv_buf_init(&req);
    akv_frame_begin(&req, AKV_OP_SIGN, 0);
    akv_frame_put_str(&req, AKV_TAG_URI, "managedhsm:h:k");
    akv_frame_finish(&req, AKV_MAX_REQUEST_BODY);
    CHECK(akv_agent_call(agent, &req, &resp, err, sizeof(err)) == AKV_CALL_OK);
    CHECK(resp.status == AKV_STATUS_FORBIDDEN);
    CHECK(resp.message != NULL && strstr(resp.message, "does not allow sign") != NULL);
    akv_response_free(&resp);
    /* An error status leaves the connection usable. */
    CHECK(akv_agent_idle_count(agent) == 1);
    akv_buf_free(&req);
    akv_agent_free(agent);
    server_stop(&srv);
}

static void test_socket_path_too_long(void)
{
    char path[300];
    memset(path, 'a', sizeof(path) - 1);
    path[0] = '/';
    path[sizeof(path) - 1] = '\0';
    AKV_AGENT *agent = akv_agent_new(path, 1000);
    char err[400];
    int echo_ok;
    unsigned char data[4] = "abc";
    CHECK(call_echo(agent, data, sizeof(data), &echo_ok, err, sizeof(err)) == AKV_CALL_UNREACHABLE);
    CHECK(strstr(err, "too long") != NULL);
    akv_agent_free(agent);
}

const akv_test conn_tests[] = {
    {"conn: echo round trips reuse one pooled connection", test_echo_and_pool_reuse},
    {"conn: 8 threads share the pool, no connection used twice at once", test_eight_threads},
    {"conn: forked child never uses the parent's connection (atfork)", test_fork_with_handlers},
    {"conn: forked child never uses the parent's connection (pid check)", test_fork_without_handlers},
    {"conn: agent down then restarted", test_agent_restart},
    {"conn: retry once on a fresh connection when the agent hangs up", test_retry_when_agent_hangs_up},
    {"conn: any op is retried when a pooled connection was closed", test_retry_on_pooled_connection_any_op},
    {"conn: a request is retried when the agent hangs up on HELLO", test_retry_when_greeting_fails},
    {"conn: silent agent times out", test_silent_agent_times_out},
    {"conn: garbage from the agent", test_garbage_from_agent},
    {"conn: answer cut short", test_answer_cut_short},
    {"conn: response with the wrong id", test_wrong_response_id},
    {"conn: error status comes back with its message", test_status_error_is_returned},
    {"conn: socket path too long", test_socket_path_too_long},
    {NULL, NULL},
};
