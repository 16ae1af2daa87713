#include "common.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>

#include <openssl/err.h>

uint64_t bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void bench_self_usage(uint64_t *user_us, uint64_t *sys_us, long *maxrss_kb)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    *user_us = (uint64_t)ru.ru_utime.tv_sec * 1000000u + (uint64_t)ru.ru_utime.tv_usec;
    *sys_us = (uint64_t)ru.ru_stime.tv_sec * 1000000u + (uint64_t)ru.ru_stime.tv_usec;
    *maxrss_kb = ru.ru_maxrss;
}

void bench_samples_add(bench_samples *s, uint64_t ns)
{
    if (s->len == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 4096;
        uint64_t *grown = realloc(s->ns, cap * sizeof(*grown));
        if (grown == NULL)
            bench_die(1, "out of memory while recording %zu latencies", s->len);
        s->ns = grown;
        s->cap = cap;
    }
    s->ns[s->len++] = ns;
}

void bench_samples_free(bench_samples *s)
{
    free(s->ns);
    s->ns = NULL;
    s->len = s->cap = 0;
}

int bench_samples_write(const bench_samples *all, size_t nthreads, const char *path)
{
    FILE *f = fopen(path, "w");
    if (f == NULL)
        return -1;
    for (size_t t = 0; t < nthreads; t++)
        for (size_t i = 0; i < all[t].len; i++)
            fprintf(f, "%.3f\n", (double)all[t].ns[i] / 1000.0);
    return fclose(f) == 0 ? 0 : -1;
}

long bench_parse_long(const char *option, const char *value, long min, long max)
{
    char *end = NULL;
    errno = 0;
    long v = value ? strtol(value, &end, 10) : 0;
    if (value == NULL || *value == '\0' || *end != '\0' || errno != 0 || v < min || v > max)
        bench_die(2, "%s takes a whole number from %ld to %ld, got \"%s\"", option, min, max,
                  value ? value : "");
    return v;
}

void bench_die(int status, const char *fmt, ...)
{
    va_list ap;
    fputs("akv bench: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(status);
}

void bench_print_openssl_errors(void)
{
    ERR_print_errors_fp(stderr);
}
