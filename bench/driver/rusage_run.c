/*
 * akv-rusage: runs a command and reports what it cost, measured by the kernel (wait4): wall
 * time, user and system CPU, and peak resident memory. Used for one-shot `openssl` commands,
 * where the interesting figure is one whole process.
 *
 *   akv-rusage -- COMMAND [ARG]...
 *
 * The command's stdout goes to /dev/null, its stderr is passed through. Prints one JSON object:
 * status (exit code, or 128+signal), wall_us, user_us, sys_us, maxrss_kb.
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"

static unsigned long long tv_us(struct timeval tv)
{
    return (unsigned long long)tv.tv_sec * 1000000u + (unsigned long long)tv.tv_usec;
}

int main(int argc, char **argv)
{
    if (argc < 3 || strcmp(argv[1], "--") != 0) {
        fputs("usage: akv-rusage -- COMMAND [ARG]...\n", stderr);
        return 2;
    }
    uint64_t start = bench_now_ns();
    pid_t pid = fork();
    if (pid < 0)
        bench_die(1, "fork failed");
    if (pid == 0) {
        int devnull = open("/dev/null", O_WRONLY);
        if (devnull >= 0)
            dup2(devnull, STDOUT_FILENO);
        execvp(argv[2], argv + 2);
        fprintf(stderr, "akv bench: cannot run %s\n", argv[2]);
        _exit(127);
    }
    int wstatus = 0;
    struct rusage ru;
    if (wait4(pid, &wstatus, 0, &ru) != pid)
        bench_die(1, "wait4 failed");
    uint64_t wall = bench_now_ns() - start;
    int status = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : 128 + WTERMSIG(wstatus);
    printf("{\"status\":%d,\"wall_us\":%llu,\"user_us\":%llu,\"sys_us\":%llu,\"maxrss_kb\":%ld}\n",
           status, (unsigned long long)(wall / 1000), tv_us(ru.ru_utime), tv_us(ru.ru_stime),
           ru.ru_maxrss);
    return 0;
}
