/*
 * Autostart of the user's own agent. Rules this file keeps:
 *  - only a directory that is the caller's own is used: the default socket's directory is created
 *    0700 and refused if it exists with another owner or a wider mode (0750 there means a shared
 *    agent that is managed elsewhere); an explicitly configured socket's directory must exist, be
 *    the caller's and not writable by group or others;
 *  - one agent however many processes start at once: a lock file beside the socket serialises the
 *    starters, and whoever gets the lock tries to connect again before starting anything;
 *  - the agent is a daemon (double fork, new session), inherits this process's environment (so
 *    AZURE_CLI_ACCESS_TOKEN, AZURE_* and AKV_CONFIG reach it) but no file descriptor, no blocked
 *    signal and no ignored signal, and logs to DIR/agent.log; nothing secret is on its command line;
 *  - between fork and exec only async-signal-safe calls (the caller may be multi-threaded);
 *  - every wait is bounded by the caller's timeout, and an agent that dies while starting is
 *    reported with the last line this start wrote to its log, not waited for.
 */
#include "agent_autostart.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

const char *akv_autostart_refusal(const akv_autostart_settings *s)
{
    if (!s->enabled)
        return "it is not started automatically: AKV_AGENT_AUTOSTART=0 or autostart = no";
    if (s->command == NULL || *s->command == '\0')
        return "it is not started automatically: no akv command is known (agent_command / AKV_AGENT_COMMAND)";
    return NULL;
}

/* The socket's directory, created (default socket only) and checked to be the caller's own. */
static int own_directory(const akv_autostart_settings *s, const char *dir, char *err, size_t errlen)
{
    struct stat st;
    uid_t uid = geteuid();
    if (lstat(dir, &st) != 0) {
        if (errno != ENOENT || s->explicit_path) {
            snprintf(err, errlen,
                     "no akv agent answers at %s/ and none was started: its directory cannot be used (%s); hint: "
                     "create %s (mode 0700), or start an agent there with `akv agent`",
                     dir, strerror(errno), dir);
            return 0;
        }
        if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
            snprintf(err, errlen,
                     "cannot create the akv agent's directory %s (%s); hint: set AKV_AGENT_SOCKET to a socket "
                     "in a directory of yours",
                     dir, strerror(errno));
            return 0;
        }
        if (lstat(dir, &st) != 0) {
            snprintf(err, errlen, "cannot read the akv agent's directory %s (%s)", dir, strerror(errno));
            return 0;
        }
    }
    if (!S_ISDIR(st.st_mode)) {
        snprintf(err, errlen,
                 "will not start an akv agent at %s: it is not a directory; hint: remove it, or set "
                 "AKV_AGENT_SOCKET to a socket in a directory of yours",
                 dir);
        return 0;
    }
    if (st.st_uid != uid) {
        snprintf(err, errlen,
                 "will not start an akv agent in %s: the directory belongs to uid %u, not to you (uid %u); hint: "
                 "if that user's agent is the one to use, start it and allow it with agent_user / AKV_AGENT_USER; "
                 "otherwise remove the directory or set AKV_AGENT_SOCKET to a socket in a directory of yours",
                 dir, (unsigned)st.st_uid, (unsigned)uid);
        return 0;
    }
    mode_t wider = s->explicit_path ? 022 : 077;
    if ((st.st_mode & wider) != 0) {
        snprintf(err, errlen,
                 "will not start an akv agent in %s: its mode is %03o, wider than a per-user agent's 0700; hint: "
                 "a shared agent lives there: start it (systemctl start akv-agent.socket); or `chmod 700 %s`",
                 dir, (unsigned)(st.st_mode & 0777), dir);
        return 0;
    }
    return 1;
}

/* Exclusive lock on PATH.lock, waited for until the deadline. Returns the fd or -1. */
static int take_lock(const char *socket_path, long long deadline, char *err, size_t errlen)
{
    char lock_path[4200];
    snprintf(lock_path, sizeof(lock_path), "%s.lock", socket_path);
    int fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        snprintf(err, errlen, "cannot open the akv agent's start lock %s (%s)", lock_path, strerror(errno));
        return -1;
    }
    while (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        if (errno != EWOULDBLOCK && errno != EINTR) {
            snprintf(err, errlen, "cannot lock %s (%s)", lock_path, strerror(errno));
            close(fd);
            return -1;
        }
        if (now_ms() >= deadline) {
            snprintf(err, errlen,
                     "another process kept %s locked while starting the akv agent; hint: see its log in "
                     "the same directory",
                     lock_path);
            close(fd);
            return -1;
        }
        sleep_ms(5);
    }
    return fd;
}

/* In the daemon, before exec: default dispositions and an empty mask (async-signal-safe calls). */
static void reset_signals(void)
{
    struct sigaction dfl;
    memset(&dfl, 0, sizeof(dfl));
    dfl.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; sig++)
        sigaction(sig, &dfl, NULL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
}

static void close_from(int lowfd)
{
#ifdef SYS_close_range
    if (syscall(SYS_close_range, (unsigned)lowfd, ~0U, 0) == 0)
        return;
#endif
    for (int fd = lowfd; fd < 65536; fd++)
        close(fd);
}

/*
 * In the forked child: a new session, and a second fork whose child execs the agent with
 * /dev/null as stdin and the log as stdout and stderr; the first child writes the agent's pid into
 * the pipe and exits, so the agent is nobody's zombie. Never returns.
 */
static void become_agent(char *const argv[], int devnull, int logfd, const int pipefd[2])
{
    close(pipefd[0]);
    if (setsid() < 0)
        _exit(1);
    pid_t agent = fork();
    if (agent != 0) {
        if (agent > 0) {
            ssize_t w = write(pipefd[1], &agent, sizeof(agent));
            (void)w;
        }
        _exit(agent < 0 ? 1 : 0);
    }
    if (dup2(devnull, 0) < 0 || dup2(logfd, 1) < 0 || dup2(logfd, 2) < 0)
        _exit(1);
    close_from(3);
    reset_signals();
    execve(argv[0], argv, environ);
    _exit(127);
}

/* The agent's pid as the first child wrote it into the pipe (0 when it could not), then reaps that child. */
static pid_t reap_and_learn_pid(pid_t child, int pipe_read)
{
    pid_t agent = 0;
    ssize_t r;
    do
        r = read(pipe_read, &agent, sizeof(agent));
    while (r < 0 && errno == EINTR);
    close(pipe_read);
    if (r != (ssize_t)sizeof(agent))
        agent = 0;
    while (waitpid(child, NULL, 0) < 0 && errno == EINTR)
        ;
    return agent;
}

/*
 * Starts the agent as a daemon: the child starts a session and forks the agent, then exits at
 * once (and is reaped here), so the agent is nobody's zombie. Returns the agent's pid (or 0 when
 * it could not be learnt), -1 on failure.
 */
static pid_t spawn_agent(const akv_autostart_settings *s, const char *socket_path, const char *log_path, char *err,
                         size_t errlen)
{
    char idle[24];
    snprintf(idle, sizeof(idle), "%u", s->idle_exit_s);
    char *argv[] = {s->command, "agent", "--socket", (char *)socket_path, "--idle-exit", idle, "--autostarted", NULL};
    if (access(s->command, X_OK) != 0) {
        snprintf(err, errlen,
                 "cannot start the akv agent: %s is not an executable (%s); hint: set agent_command in "
                 "openssl.cnf or AKV_AGENT_COMMAND to the akv command",
                 s->command, strerror(errno));
        return -1;
    }
    int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    int logfd = open(log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    int pipefd[2] = {-1, -1};
    if (devnull < 0 || logfd < 0 || pipe2(pipefd, O_CLOEXEC) != 0) {
        snprintf(err, errlen, "cannot prepare the akv agent's start (%s: %s)", logfd < 0 ? log_path : "pipe",
                 strerror(errno));
        if (devnull >= 0)
            close(devnull);
        if (logfd >= 0)
            close(logfd);
        return -1;
    }
    pid_t child = fork();
    if (child == 0)
        become_agent(argv, devnull, logfd, pipefd);
    close(pipefd[1]);
    close(devnull);
    close(logfd);
    if (child < 0) {
        snprintf(err, errlen, "cannot start the akv agent: fork failed (%s)", strerror(errno));
        close(pipefd[0]);
        return -1;
    }
    return reap_and_learn_pid(child, pipefd[0]);
}

/* 0 when the process is gone or a zombie. */
static int alive(pid_t pid)
{
    if (kill(pid, 0) != 0 && errno == ESRCH)
        return 0;
    char path[64], stat[512];
    snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return 1;
    size_t n = fread(stat, 1, sizeof(stat) - 1, f);
    fclose(f);
    stat[n] = '\0';
    const char *close_paren = strrchr(stat, ')');
    return close_paren == NULL || close_paren[1] != ' ' || close_paren[2] != 'Z';
}

/* How long the agent's log is before this start (0 when there is none). */
static off_t log_size(const char *log_path)
{
    struct stat st;
    return stat(log_path, &st) == 0 ? st.st_size : 0;
}

/* The last non-empty line this start wrote to the agent's log (at or after `since`: an earlier
 * agent's last words are not this one's reason), printable. */
static void last_log_line(const char *log_path, off_t since, char *out, size_t size)
{
    snprintf(out, size, "(nothing in its log from this start)");
    int fd = open(log_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    char buf[1024];
    off_t end = lseek(fd, 0, SEEK_END);
    off_t start = end > (off_t)sizeof(buf) - 1 ? end - (off_t)sizeof(buf) + 1 : 0;
    if (start < since)
        start = since;
    if (end <= start) {
        close(fd);
        return;
    }
    ssize_t n = pread(fd, buf, sizeof(buf) - 1, start);
    close(fd);
    if (n <= 0)
        return;
    buf[n] = '\0';
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
        buf[--n] = '\0';
    char *line = strrchr(buf, '\n');
    line = line != NULL ? line + 1 : buf;
    for (char *c = line; *c != '\0'; c++)
        if ((unsigned char)*c < 0x20)
            *c = ' ';
    size_t len = strlen(line);
    if (len >= size)
        len = size - 1;
    memcpy(out, line, len);
    out[len] = '\0';
}

/* One start of the agent, while this process waits for it to listen. */
typedef struct {
    const akv_autostart_settings *settings;
    const char *socket_path;
    char log_path[4200];
    off_t log_start; /* the log's size before this start: what follows is this agent's */
    pid_t pid;       /* 0 when it could not be learnt */
    long long deadline;
    int timeout_ms;
} agent_start;

/*
 * Connects to the agent just started: polls until it listens, and says why when it exits first
 * (its last log line) or the deadline passes. Returns the fd, or -1 with err set.
 */
static int wait_until_listening(const agent_start *start, akv_open_fn open_fn, void *arg, char *err, size_t errlen)
{
    long pause = 5;
    long long spawned = now_ms();
    for (;;) {
        int fd = open_fn(arg);
        if (fd >= 0)
            return fd;
        if (errno != ENOENT && errno != ECONNREFUSED) {
            snprintf(err, errlen, "cannot connect to the akv agent started at %s (%s)", start->socket_path,
                     strerror(errno));
            return -1;
        }
        if (start->pid > 0 && !alive(start->pid)) {
            char said[600];
            last_log_line(start->log_path, start->log_start, said, sizeof(said));
            snprintf(err, errlen,
                     "the akv agent started for you at %s exited: %s; hint: see %s, or run `%s agent` to see why",
                     start->socket_path, said, start->log_path, start->settings->command);
            return -1;
        }
        if (now_ms() >= start->deadline) {
            snprintf(err, errlen,
                     "the akv agent started for you at %s did not listen within %d ms; hint: see %s (raise "
                     "agent_timeout_ms / AKV_AGENT_TIMEOUT_MS on a slow machine)",
                     start->socket_path, start->timeout_ms, start->log_path);
            return -1;
        }
        sleep_ms(pause);
        /* Every 5 ms while an agent normally starts (the command waits for it: a coarser poll adds
         * up to its pause to the first command), then backing off to 50 ms. */
        if (now_ms() - spawned > 1000 && pause < 50)
            pause += 5;
    }
}

int akv_autostart(const akv_autostart_settings *s, const char *socket_path, int timeout_ms, akv_open_fn open_fn,
                  void *arg, char *err, size_t errlen)
{
    agent_start start = {.settings = s, .socket_path = socket_path, .timeout_ms = timeout_ms};
    start.deadline = now_ms() + timeout_ms;
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s", socket_path);
    char *slash = strrchr(dir, '/');
    if (slash == NULL || slash == dir) {
        snprintf(err, errlen,
                 "will not start an akv agent for the socket %s: it is not in a directory of its own; "
                 "hint: use an absolute path such as $XDG_RUNTIME_DIR/akv/agent.sock",
                 socket_path);
        return -1;
    }
    *slash = '\0';
    if (!own_directory(s, dir, err, errlen))
        return -1;
    int lock = take_lock(socket_path, start.deadline, err, errlen);
    if (lock < 0)
        return -1;
    /* Whoever held the lock before us may have started it already. */
    int fd = open_fn(arg);
    if (fd >= 0 || (errno != ENOENT && errno != ECONNREFUSED)) {
        int e = errno;
        close(lock);
        errno = e;
        if (fd < 0)
            snprintf(err, errlen, "cannot connect to the akv agent at %s (%s)", socket_path, strerror(e));
        return fd;
    }
    snprintf(start.log_path, sizeof(start.log_path), "%s/agent.log", dir);
    start.log_start = log_size(start.log_path);
    start.pid = spawn_agent(s, socket_path, start.log_path, err, errlen);
    fd = start.pid < 0 ? -1 : wait_until_listening(&start, open_fn, arg, err, errlen);
    close(lock);
    return fd;
}
