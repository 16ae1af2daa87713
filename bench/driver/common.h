/*
 * Small helpers shared by the bench drivers: monotonic clock, process CPU time, a growable array
 * of latencies, and writing results as one JSON object on stdout (parsed by bench/lib/drivers.ts).
 */
#ifndef AKV_BENCH_COMMON_H
#define AKV_BENCH_COMMON_H

#include <stddef.h>
#include <stdint.h>

/* Nanoseconds from CLOCK_MONOTONIC. */
uint64_t bench_now_ns(void);

/* User and system CPU of this process (all threads), in microseconds, and peak RSS in KiB. */
void bench_self_usage(uint64_t *user_us, uint64_t *sys_us, long *maxrss_kb);

/* Latencies of one thread, in nanoseconds. Appends never fail silently: on OOM the driver exits. */
typedef struct {
    uint64_t *ns;
    size_t len;
    size_t cap;
} bench_samples;

void bench_samples_add(bench_samples *s, uint64_t ns);
void bench_samples_free(bench_samples *s);

/* Writes the samples (in microseconds, one per line) to path; returns 0 on success. */
int bench_samples_write(const bench_samples *all, size_t nthreads, const char *path);

/* Parses a positive integer option value or exits with a message naming the option. */
long bench_parse_long(const char *option, const char *value, long min, long max);

/* Prints "akv bench: <message>" to stderr and exits 2 (usage) or 1 (run failure). */
void bench_die(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));

/* Prints the OpenSSL error queue to stderr (after a failure). */
void bench_print_openssl_errors(void);

#endif
