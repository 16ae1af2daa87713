/*
 * akv-sign-bench: signs in a loop from one long-lived process, the way a server uses a key, and
 * reports every signature's latency. The key is opened through OSSL_STORE, so the same program
 * measures an HSM key through akv_provider (`--provider akv_provider --key managedhsm:H:k`) and a
 * local PEM key (`--key /path/key.pem`). Each operation is a fresh EVP_DigestSign (hash locally,
 * then one private-key operation), as in a TLS handshake.
 *
 *   akv-sign-bench --key REF [--provider NAME]... [--pss] [--threads N]
 *                  (--ops N | --duration-ms MS) [--warmup N] [--latency-file PATH]
 *                  [--watch-pid PID]...
 *
 * Prints one JSON object on stdout: ops, errors, elapsed_us, cpu_user_us, cpu_sys_us, maxrss_kb,
 * and watched_cpu_us: the CPU time each --watch-pid process (the agent, the emulator) used in
 * exactly the measured window, warm-up excluded.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/provider.h>
#include <openssl/rsa.h>
#include <openssl/store.h>

#include "common.h"

#define MAX_PROVIDERS 4
#define MAX_WATCHED 64
#define MESSAGE "akv bench: the message every signature covers"

typedef struct {
    EVP_PKEY *pkey;
    int pss;
    long ops;         /* measured operations per thread, or 0 when duration bounds the run */
    long warmup;      /* unmeasured operations per thread before the start line */
    uint64_t deadline_ns; /* set by main after the barrier when duration bounds the run */
    long duration_ms;
    pthread_barrier_t ready;
    pthread_barrier_t go;
} shared_state;

typedef struct {
    shared_state *shared;
    bench_samples samples;
    long errors;
    char first_error[256];
} thread_state;

/* One complete signature; returns 1 on success. */
static int sign_once(EVP_PKEY *pkey, int pss, unsigned char *sig, size_t sigcap, size_t *siglen)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL;
    int ok = md != NULL && EVP_DigestSignInit_ex(md, &pctx, "SHA256", NULL, NULL, pkey, NULL) == 1;
    if (ok && pss)
        ok = EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) == 1 &&
             EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) == 1;
    *siglen = sigcap;
    ok = ok && EVP_DigestSign(md, sig, siglen, (const unsigned char *)MESSAGE,
                              sizeof(MESSAGE) - 1) == 1;
    EVP_MD_CTX_free(md);
    return ok;
}

static void record_error(thread_state *t)
{
    if (t->errors++ == 0) {
        unsigned long e = ERR_peek_last_error();
        ERR_error_string_n(e, t->first_error, sizeof(t->first_error));
    }
    ERR_clear_error();
}

static void *worker(void *arg)
{
    thread_state *t = arg;
    shared_state *s = t->shared;
    size_t cap = (size_t)EVP_PKEY_get_size(s->pkey);
    unsigned char *sig = malloc(cap);
    size_t siglen;
    if (sig == NULL)
        bench_die(1, "out of memory");
    for (long i = 0; i < s->warmup; i++)
        if (!sign_once(s->pkey, s->pss, sig, cap, &siglen))
            record_error(t);
    t->errors = 0; /* warm-up failures show again in the measured part if they persist */
    pthread_barrier_wait(&s->ready);
    pthread_barrier_wait(&s->go);
    for (long i = 0; s->ops == 0 || i < s->ops; i++) {
        uint64_t start = bench_now_ns();
        if (s->ops == 0 && start >= s->deadline_ns)
            break;
        if (sign_once(s->pkey, s->pss, sig, cap, &siglen))
            bench_samples_add(&t->samples, bench_now_ns() - start);
        else
            record_error(t);
    }
    free(sig);
    return NULL;
}

static EVP_PKEY *load_key(const char *ref)
{
    OSSL_STORE_CTX *store = OSSL_STORE_open_ex(ref, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
    EVP_PKEY *pkey = NULL;
    if (store == NULL)
        return NULL;
    while (pkey == NULL && !OSSL_STORE_eof(store)) {
        OSSL_STORE_INFO *info = OSSL_STORE_load(store);
        if (info == NULL)
            continue;
        if (OSSL_STORE_INFO_get_type(info) == OSSL_STORE_INFO_PKEY)
            pkey = OSSL_STORE_INFO_get1_PKEY(info);
        OSSL_STORE_INFO_free(info);
    }
    OSSL_STORE_close(store);
    return pkey;
}

/* Signs once and checks the signature with the key's public half, so the run measures real work. */
static void check_key(EVP_PKEY *pkey, int pss, const char *ref)
{
    size_t cap = (size_t)EVP_PKEY_get_size(pkey), siglen;
    unsigned char *sig = malloc(cap);
    if (sig == NULL)
        bench_die(1, "out of memory");
    if (!sign_once(pkey, pss, sig, cap, &siglen)) {
        bench_print_openssl_errors();
        bench_die(1, "the first signature with %s failed (see the OpenSSL errors above)", ref);
    }
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL;
    int ok = md != NULL && EVP_DigestVerifyInit_ex(md, &pctx, "SHA256", NULL, NULL, pkey, NULL) == 1;
    if (ok && pss)
        ok = EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) == 1 &&
             EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) == 1;
    ok = ok && EVP_DigestVerify(md, sig, siglen, (const unsigned char *)MESSAGE,
                                sizeof(MESSAGE) - 1) == 1;
    EVP_MD_CTX_free(md);
    free(sig);
    if (!ok) {
        bench_print_openssl_errors();
        bench_die(1, "the signature made with %s does not verify with its public key", ref);
    }
}

/* utime + stime of a whole process (all threads) in microseconds; 0 when it cannot be read. */
static uint64_t process_cpu_us(long pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* Fields after the command name (which may hold spaces) start after the last ')'. */
    char *p = strrchr(buf, ')');
    unsigned long long utime = 0, stime = 0;
    if (p == NULL ||
        sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime, &stime) != 2)
        return 0;
    long hz = sysconf(_SC_CLK_TCK);
    return (uint64_t)(utime + stime) * 1000000u / (uint64_t)(hz > 0 ? hz : 100);
}

static void usage(void)
{
    fputs("usage: akv-sign-bench --key REF [--provider NAME]... [--pss] [--threads N]\n"
          "                      (--ops N | --duration-ms MS) [--warmup N] [--latency-file PATH]\n"
          "                      [--watch-pid PID]...\n"
          "REF is a key URI (managedhsm:H:k, with --provider akv_provider) or a PEM file path.\n"
          "Prints one JSON object: ops, errors, elapsed_us, cpu_user_us, cpu_sys_us, maxrss_kb.\n",
          stderr);
}

int main(int argc, char **argv)
{
    const char *key_ref = NULL, *latency_file = NULL, *providers[MAX_PROVIDERS];
    size_t nproviders = 0, nwatched = 0;
    long watched[MAX_WATCHED];
    uint64_t watched_start[MAX_WATCHED];
    long threads = 1;
    shared_state s = {.warmup = 10};

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--help") == 0) {
            usage();
            return 0;
        } else if (strcmp(a, "--pss") == 0) {
            s.pss = 1;
            continue;
        }
        if (v == NULL) {
            usage();
            bench_die(2, "%s needs a value", a);
        }
        i++;
        if (strcmp(a, "--key") == 0)
            key_ref = v;
        else if (strcmp(a, "--provider") == 0) {
            if (nproviders == MAX_PROVIDERS)
                bench_die(2, "at most %d --provider options", MAX_PROVIDERS);
            providers[nproviders++] = v;
        } else if (strcmp(a, "--threads") == 0)
            threads = bench_parse_long(a, v, 1, 1024);
        else if (strcmp(a, "--ops") == 0)
            s.ops = bench_parse_long(a, v, 1, 100000000);
        else if (strcmp(a, "--duration-ms") == 0)
            s.duration_ms = bench_parse_long(a, v, 1, 3600000);
        else if (strcmp(a, "--warmup") == 0)
            s.warmup = bench_parse_long(a, v, 0, 1000000);
        else if (strcmp(a, "--latency-file") == 0)
            latency_file = v;
        else if (strcmp(a, "--watch-pid") == 0) {
            if (nwatched == MAX_WATCHED)
                bench_die(2, "at most %d --watch-pid options", MAX_WATCHED);
            watched[nwatched++] = bench_parse_long(a, v, 1, 4194304);
        } else {
            usage();
            bench_die(2, "unknown option %s", a);
        }
    }
    if (key_ref == NULL || (s.ops == 0) == (s.duration_ms == 0)) {
        usage();
        bench_die(2, "give --key and exactly one of --ops or --duration-ms");
    }

    /* Loading any provider explicitly turns off the implicit default one: load it first. */
    if (OSSL_PROVIDER_load(NULL, "default") == NULL) {
        bench_print_openssl_errors();
        bench_die(1, "cannot load OpenSSL's default provider");
    }
    for (size_t i = 0; i < nproviders; i++)
        if (OSSL_PROVIDER_load(NULL, providers[i]) == NULL) {
            bench_print_openssl_errors();
            bench_die(1, "cannot load provider %s (is OPENSSL_MODULES set to its directory?)",
                      providers[i]);
        }
    s.pkey = load_key(key_ref);
    if (s.pkey == NULL) {
        bench_print_openssl_errors();
        bench_die(1, "cannot load a private key from %s", key_ref);
    }
    check_key(s.pkey, s.pss, key_ref);

    thread_state *ts = calloc((size_t)threads, sizeof(*ts));
    pthread_t *tids = calloc((size_t)threads, sizeof(*tids));
    if (ts == NULL || tids == NULL)
        bench_die(1, "out of memory");
    pthread_barrier_init(&s.ready, NULL, (unsigned)threads + 1);
    pthread_barrier_init(&s.go, NULL, (unsigned)threads + 1);
    for (long i = 0; i < threads; i++) {
        ts[i].shared = &s;
        if (pthread_create(&tids[i], NULL, worker, &ts[i]) != 0)
            bench_die(1, "cannot start thread %ld", i);
    }
    pthread_barrier_wait(&s.ready);
    uint64_t user0, sys0, user1, sys1;
    long rss;
    bench_self_usage(&user0, &sys0, &rss);
    for (size_t i = 0; i < nwatched; i++)
        watched_start[i] = process_cpu_us(watched[i]);
    uint64_t start = bench_now_ns();
    s.deadline_ns = start + (uint64_t)s.duration_ms * 1000000u;
    pthread_barrier_wait(&s.go);
    for (long i = 0; i < threads; i++)
        pthread_join(tids[i], NULL);
    uint64_t elapsed = bench_now_ns() - start;
    bench_self_usage(&user1, &sys1, &rss);
    uint64_t watched_used[MAX_WATCHED];
    for (size_t i = 0; i < nwatched; i++) {
        uint64_t now = process_cpu_us(watched[i]);
        watched_used[i] = now > watched_start[i] ? now - watched_start[i] : 0;
    }

    long ops = 0, errors = 0;
    const char *first_error = "";
    bench_samples *all = calloc((size_t)threads, sizeof(*all));
    if (all == NULL)
        bench_die(1, "out of memory");
    for (long i = 0; i < threads; i++) {
        ops += (long)ts[i].samples.len;
        if (ts[i].errors > 0 && errors == 0)
            first_error = ts[i].first_error;
        errors += ts[i].errors;
        all[i] = ts[i].samples;
    }
    if (latency_file != NULL && bench_samples_write(all, (size_t)threads, latency_file) != 0)
        bench_die(1, "cannot write %s", latency_file);
    if (errors > 0)
        fprintf(stderr, "akv bench: %ld signatures failed; first: %s\n", errors, first_error);
    printf("{\"ops\":%ld,\"errors\":%ld,\"threads\":%ld,\"elapsed_us\":%llu,\"cpu_user_us\":%llu,"
           "\"cpu_sys_us\":%llu,\"maxrss_kb\":%ld,\"key_bits\":%d,\"watched_cpu_us\":[",
           ops, errors, threads, (unsigned long long)(elapsed / 1000),
           (unsigned long long)(user1 - user0), (unsigned long long)(sys1 - sys0), rss,
           EVP_PKEY_get_bits(s.pkey));
    for (size_t i = 0; i < nwatched; i++)
        printf("%s%llu", i ? "," : "", (unsigned long long)watched_used[i]);
    printf("]}\n");
    for (long i = 0; i < threads; i++)
        bench_samples_free(&ts[i].samples);
    free(all);
    free(ts);
    free(tids);
    EVP_PKEY_free(s.pkey);
    return errors > 0 && ops == 0 ? 1 : 0;
}
