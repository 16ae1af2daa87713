/*
 * The async path (agent_async.c) against the fake agent of test_conn.c, driven the way a TLS
 * server drives it: ASYNC_start_job runs a request, the job pauses, the test polls the wait fds
 * and resumes the jobs whose fd is readable. Covers many jobs of one thread in flight at once,
 * a spurious resume, the deadline, an abandoned job (no fd leaks, never resumed or resumed late),
 * the agent killed while jobs wait, and calls made outside any job.
 */
#include <dirent.h>
#include <openssl/async.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agent_async.h"
#include "fake_agent.h"
#include "frame.h"
#include "test.h"

#define NJOBS 24

typedef struct {
    AKV_AGENT *agent;
    int index;
    int rc;
    int echo_ok;
    char err[300];
} job_arg;

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Inode of the socket behind fd (the agent connection a wait fd duplicates), 0 if none. */
static ino_t socket_inode(int fd)
{
    struct stat st;
    return fd >= 0 && fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode) ? st.st_ino : 0;
}

/* How many fds of this process refer to the socket with that inode. The fake agent runs in this
 * process too, but its ends of the connections are other sockets (other inodes). */
static int fds_on_socket(ino_t ino)
{
    int n = 0;
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL)
        return -1;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        struct stat st;
        if (e->d_name[0] != '.' && fstat(atoi(e->d_name), &st) == 0 && S_ISSOCK(st.st_mode) && st.st_ino == ino)
            n++;
    }
    closedir(d);
    return n;
}

/* The job body: one SIGN-shaped request whose INPUT the fake agent echoes. */
static int sign_job(void *varg)
{
    job_arg *a = *(job_arg **)varg;
    unsigned char data[40];
    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (unsigned char)(a->index * 13 + (int)i);
    akv_buf req;
    akv_response resp;
    akv_buf_init(&req);
    akv_frame_begin(&req, AKV_OP_SIGN, 0);
    akv_frame_put_str(&req, AKV_TAG_URI, "managedhsm:h:k");
    akv_frame_put_str(&req, AKV_TAG_ALG, "ES256");
    akv_frame_put_bytes(&req, AKV_TAG_INPUT, data, sizeof(data));
    akv_frame_finish(&req, AKV_MAX_REQUEST_BODY);
    a->rc = akv_agent_call_nonblocking(a->agent, &req, &resp, a->err, sizeof(a->err));
    if (a->rc == AKV_CALL_OK) {
        const akv_field *o = akv_frame_get(&resp.frame, AKV_TAG_OUTPUT);
        a->echo_ok = o != NULL && o->len == sizeof(data) && memcmp(o->value, data, sizeof(data)) == 0;
        akv_response_free(&resp);
    }
    akv_buf_free(&req);
    return a->rc == AKV_CALL_OK;
}

typedef struct {
    ASYNC_JOB *job;
    ASYNC_WAIT_CTX *wctx;
    job_arg arg;
    int done;
} tracked_job;

/* Starts or resumes one job; returns 1 once it has finished. */
static int step(tracked_job *t)
{
    int ret = 0;
    job_arg *p = &t->arg;
    int r = ASYNC_start_job(&t->job, t->wctx, &ret, sign_job, &p, sizeof(p));
    if (r == ASYNC_FINISH || r == ASYNC_ERR || r == ASYNC_NO_JOBS) {
        CHECKF(r == ASYNC_FINISH, "ASYNC_start_job returned %d", r);
        t->done = 1;
    }
    return t->done;
}

/* The wait fd a paused job published (-1 if none). */
static int wait_fd_of(tracked_job *t)
{
    OSSL_ASYNC_FD fds[4];
    size_t n = 0;
    if (!ASYNC_WAIT_CTX_get_all_fds(t->wctx, NULL, &n) || n == 0 || n > 4)
        return -1;
    ASYNC_WAIT_CTX_get_all_fds(t->wctx, fds, &n);
    return fds[0];
}

/* Polls every unfinished job's wait fd and resumes the ready ones until all are done. */
static void run_to_completion(tracked_job *jobs, int n, long long limit_ms)
{
    long long until = now_ms() + limit_ms;
    for (;;) {
        struct pollfd p[NJOBS];
        int idx[NJOBS], np = 0;
        for (int i = 0; i < n; i++) {
            if (jobs[i].done)
                continue;
            p[np] = (struct pollfd){.fd = wait_fd_of(&jobs[i]), .events = POLLIN, .revents = 0};
            idx[np++] = i;
        }
        if (np == 0 || now_ms() > until)
            break;
        if (poll(p, (nfds_t)np, 200) <= 0)
            continue;
        for (int k = 0; k < np; k++)
            if (p[k].revents != 0)
                step(&jobs[idx[k]]);
    }
}

static void jobs_init(tracked_job *jobs, int n, AKV_AGENT *agent)
{
    for (int i = 0; i < n; i++) {
        memset(&jobs[i], 0, sizeof(jobs[i]));
        jobs[i].wctx = ASYNC_WAIT_CTX_new();
        jobs[i].arg.agent = agent;
        jobs[i].arg.index = i;
    }
}

static void jobs_free(tracked_job *jobs, int n)
{
    for (int i = 0; i < n; i++)
        ASYNC_WAIT_CTX_free(jobs[i].wctx);
}

static void test_many_jobs_one_thread(void)
{
    test_server srv;
    CHECK(server_start(&srv, socket_path(), MODE_DELAY));
    AKV_AGENT *agent = akv_agent_new(srv.path, 10000);
    akv_async_stats before, after;
    akv_async_stats_get(&before);
    tracked_job jobs[NJOBS];
    ino_t conn[NJOBS];
    jobs_init(jobs, NJOBS, agent);
    long long t0 = now_ms();
    for (int i = 0; i < NJOBS; i++)
        CHECKF(!step(&jobs[i]), "job %d finished without pausing", i);
    /* Every job is paused at once, each on a wait fd of its own. */
    for (int i = 0; i < NJOBS; i++) {
        conn[i] = socket_inode(wait_fd_of(&jobs[i]));
        CHECK(conn[i] != 0);
        /* the wait fd and the job's own fd of the connection */
        CHECKF(fds_on_socket(conn[i]) == 2, "job %d: %d fds", i, fds_on_socket(conn[i]));
        for (int j = 0; j < i; j++)
            CHECK(conn[i] != conn[j]);
    }
    run_to_completion(jobs, NJOBS, 8000);
    long long elapsed = now_ms() - t0;
    for (int i = 0; i < NJOBS; i++)
        CHECKF(jobs[i].done && jobs[i].arg.rc == AKV_CALL_OK && jobs[i].arg.echo_ok, "job %d: rc %d %s", i,
               jobs[i].arg.rc, jobs[i].arg.err);
    /* One thread, 24 requests of 100 ms each: waiting in turn would take 2.4 s. */
    CHECKF(elapsed < NJOBS * FAKE_AGENT_DELAY_MS / 3, "24 jobs took %lld ms", elapsed);
    akv_async_stats_get(&after);
    CHECK(after.calls_in_jobs - before.calls_in_jobs == NJOBS);
    CHECK(after.pauses - before.pauses >= NJOBS);
    CHECK(after.wait_fds_open - before.wait_fds_open == NJOBS);
    /* Every connection went back to the pool as soon as its answer was read: async callers keep
     * up to AKV_ASYNC_POOL_MAX idle, not the blocking path's 8. */
    CHECK(akv_agent_connects(agent) == NJOBS);
    CHECKF(akv_agent_idle_count(agent) == NJOBS, "%zu idle", akv_agent_idle_count(agent));
    jobs_free(jobs, NJOBS);
    akv_async_stats_get(&after);
    CHECK(after.wait_fds_open == before.wait_fds_open);
    CHECK(after.abandoned == before.abandoned);
    /* Wait fds closed with their contexts: what is left is the pool's idle connections. */
    int left = 0;
    for (int i = 0; i < NJOBS; i++)
        left += fds_on_socket(conn[i]);
    CHECK(left == NJOBS);
    /* The next round of jobs (the next handshakes) reuses them all: no new agent connection. */
    jobs_init(jobs, NJOBS, agent);
    for (int i = 0; i < NJOBS; i++)
        CHECKF(!step(&jobs[i]), "round 2: job %d finished without pausing", i);
    run_to_completion(jobs, NJOBS, 8000);
    for (int i = 0; i < NJOBS; i++)
        CHECKF(jobs[i].done && jobs[i].arg.rc == AKV_CALL_OK && jobs[i].arg.echo_ok, "round 2: job %d: rc %d %s", i,
               jobs[i].arg.rc, jobs[i].arg.err);
    CHECKF(akv_agent_connects(agent) == NJOBS, "round 2 opened %lu connections", akv_agent_connects(agent) - NJOBS);
    jobs_free(jobs, NJOBS);
    akv_agent_free(agent);
    for (int i = 0; i < NJOBS; i++)
        CHECK(fds_on_socket(conn[i]) == 0);
    server_stop(&srv);
}

static void test_wait_fd_number_is_kept(void)
{
    test_server srv;
    CHECK(server_start(&srv, socket_path(), MODE_DELAY));
    AKV_AGENT *agent = akv_agent_new(srv.path, 10000);
    tracked_job jobs[2];
    jobs_init(jobs, 2, agent);
    /* Job 0 runs twice on one wait context (two operations of one TLS connection); the second
     * time its connection is another one (job 1 holds the first), yet the published fd is the
     * same number: applications keep wait fds in their own tables. */
    CHECK(!step(&jobs[0]));
    int first_fd = wait_fd_of(&jobs[0]);
    struct stat first_socket, now_socket;
    CHECK(fstat(first_fd, &first_socket) == 0);
    run_to_completion(jobs, 1, 3000);
    CHECK(jobs[0].arg.rc == AKV_CALL_OK);
    CHECK(!step(&jobs[1])); /* takes the pooled connection */
    jobs[0].done = 0;
    jobs[0].job = NULL;
    CHECK(!step(&jobs[0]));
    CHECK(wait_fd_of(&jobs[0]) == first_fd);
    /* ...and it now stands for job 0's new connection, not for the one job 1 is using. */
    CHECK(fstat(first_fd, &now_socket) == 0 && now_socket.st_ino != first_socket.st_ino);
    size_t n = 0;
    ASYNC_WAIT_CTX_get_all_fds(jobs[0].wctx, NULL, &n);
    CHECK(n == 1);
    run_to_completion(jobs, 2, 3000);
    CHECK(jobs[0].arg.rc == AKV_CALL_OK && jobs[0].arg.echo_ok);
    CHECK(jobs[1].arg.rc == AKV_CALL_OK && jobs[1].arg.echo_ok);
    CHECK(akv_agent_connects(agent) == 2);
    jobs_free(jobs, 2);
    akv_agent_free(agent);
    server_stop(&srv);
}

static void test_spurious_resume_pauses_again(void)
{
    test_server srv;
    CHECK(server_start(&srv, socket_path(), MODE_DELAY));
    AKV_AGENT *agent = akv_agent_new(srv.path, 10000);
    tracked_job job;
    jobs_init(&job, 1, agent);
    akv_async_stats before, after;
    akv_async_stats_get(&before);
    CHECK(!step(&job));
    /* Resumed before the answer is there (as `s_server -async` does in a loop). */
    CHECK(!step(&job));
    CHECK(!step(&job));
    run_to_completion(&job, 1, 3000);
    CHECK(job.done && job.arg.rc == AKV_CALL_OK && job.arg.echo_ok);
    akv_async_stats_get(&after);
    CHECK(after.pauses - before.pauses >= 3);
    jobs_free(&job, 1);
    akv_agent_free(agent);
    server_stop(&srv);
}

static void test_deadline_holds_in_a_job(void)
{
    test_server srv;
    CHECK(server_start(&srv, socket_path(), MODE_SILENT));
    AKV_AGENT *agent = akv_agent_new(srv.path, 300);
    tracked_job job;
    jobs_init(&job, 1, agent);
    CHECK(!step(&job));
    usleep(400 * 1000);
    CHECK(step(&job));
    CHECK(job.arg.rc == AKV_CALL_TIMEOUT);
    CHECKF(strstr(job.arg.err, "did not answer within 300 ms") != NULL, "message: %s", job.arg.err);
    CHECK(akv_agent_idle_count(agent) == 0);
    jobs_free(&job, 1);
    akv_agent_free(agent);
    server_stop(&srv);
}

/*
 * The application frees the SSL object of a paused job (the client went away): the wait context
 * goes and the job is never resumed. OpenSSL keeps such a job's memory for good (resuming it
 * after its wait context is freed is not allowed), so this runs in a child process that exits
 * without the leak check; the child reports its failed checks as its exit status.
 */
static void abandon_one_job(AKV_AGENT *agent)
{
    akv_async_stats before, after;
    akv_async_stats_get(&before);
    tracked_job job;
    jobs_init(&job, 1, agent);
    CHECK(!step(&job));
    ino_t ino = socket_inode(wait_fd_of(&job));
    CHECK(ino != 0 && fds_on_socket(ino) == 2);
    ASYNC_WAIT_CTX_free(job.wctx);
    CHECKF(fds_on_socket(ino) == 0, "%d fds still refer to the abandoned connection", fds_on_socket(ino));
    akv_async_stats_get(&after);
    CHECK(after.abandoned - before.abandoned == 1);
    CHECK(after.wait_fds_open == before.wait_fds_open);
    CHECK(akv_agent_idle_count(agent) == 0);
    /* The next TLS connection's job works (on a new agent connection). */
    tracked_job next;
    jobs_init(&next, 1, agent);
    CHECK(!step(&next));
    run_to_completion(&next, 1, 3000);
    CHECK(next.arg.rc == AKV_CALL_OK && next.arg.echo_ok);
    jobs_free(&next, 1);
    CHECK(akv_agent_connects(agent) == 2);
}

static void test_abandoned_job_leaks_nothing(void)
{
    test_server srv;
    CHECK(server_start(&srv, socket_path(), MODE_DELAY));
    fflush(NULL);
    pid_t child = fork();
    if (child == 0) {
        alarm(20);
        AKV_AGENT *agent = akv_agent_new(srv.path, 10000);
        akv_test_failures = 0;
        abandon_one_job(agent);
        akv_agent_free(agent);
        fflush(NULL);
        _exit(akv_test_failures > 100 ? 100 : akv_test_failures);
    }
    int status = 0;
    CHECK(child > 0 && waitpid(child, &status, 0) == child);
    CHECKF(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child: status %d (failed checks above)", status);
    server_stop(&srv);
}

static void test_agent_killed_while_jobs_wait(void)
{
    test_server srv;
    CHECK(server_start(&srv, socket_path(), MODE_SILENT));
    AKV_AGENT *agent = akv_agent_new(srv.path, 10000);
    tracked_job jobs[6];
    jobs_init(jobs, 6, agent);
    for (int i = 0; i < 6; i++)
        CHECK(!step(&jobs[i]));
    server_stop(&srv); /* every connection hangs up: each wait fd turns readable */
    long long t0 = now_ms();
    run_to_completion(jobs, 6, 5000);
    CHECK(now_ms() - t0 < 3000);
    for (int i = 0; i < 6; i++) {
        CHECK(jobs[i].done);
        CHECKF(jobs[i].arg.rc == AKV_CALL_IO || jobs[i].arg.rc == AKV_CALL_UNREACHABLE, "job %d: rc %d (%s)", i,
               jobs[i].arg.rc, jobs[i].arg.err);
        CHECKF(strstr(jobs[i].arg.err, "; hint: ") != NULL, "job %d: %s", i, jobs[i].arg.err);
    }
    CHECK(akv_agent_idle_count(agent) == 0);
    /* The agent comes back: the next job works. */
    CHECK(server_start(&srv, socket_path(), MODE_ECHO));
    tracked_job next;
    jobs_init(&next, 1, agent);
    if (!step(&next))
        run_to_completion(&next, 1, 3000);
    CHECKF(next.arg.rc == AKV_CALL_OK && next.arg.echo_ok, "%s", next.arg.err);
    jobs_free(&next, 1);
    jobs_free(jobs, 6);
    akv_agent_free(agent);
    server_stop(&srv);
}

static void test_outside_a_job_blocks_as_before(void)
{
    test_server srv;
    CHECK(server_start(&srv, socket_path(), MODE_DELAY));
    AKV_AGENT *agent = akv_agent_new(srv.path, 10000);
    akv_async_stats before, after;
    akv_async_stats_get(&before);
    job_arg a = {.agent = agent, .index = 7};
    job_arg *p = &a;
    CHECK(sign_job(&p) == 1 && a.echo_ok);
    akv_async_stats_get(&after);
    CHECK(after.calls_in_jobs == before.calls_in_jobs && after.pauses == before.pauses);
    akv_agent_free(agent);
    server_stop(&srv);
}

const akv_test async_tests[] = {
    {"async: 24 jobs of one thread wait at once, each on its own connection", test_many_jobs_one_thread},
    {"async: a TLS connection keeps one wait fd number across operations", test_wait_fd_number_is_kept},
    {"async: a job resumed before its answer pauses again", test_spurious_resume_pauses_again},
    {"async: the request deadline holds inside a job", test_deadline_holds_in_a_job},
    {"async: an abandoned job leaks no fd and no connection", test_abandoned_job_leaks_nothing},
    {"async: agent killed while jobs wait: each fails cleanly, then it works again", test_agent_killed_while_jobs_wait},
    {"async: outside a job the call blocks as before", test_outside_a_job_blocks_as_before},
    {NULL, NULL},
};
