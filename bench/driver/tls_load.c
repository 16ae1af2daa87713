/*
 * akv-tls-load: a TLS load generator that makes only full handshakes. Each of N threads connects,
 * completes a handshake (no session ticket, no session cache, so nothing is resumed and every
 * handshake costs the server one signature; each thread reuses one SSL object, cleared and with
 * its session dropped between connections, and counts any resumed handshake), sends close_notify,
 * closes, and starts again, until the duration is over. It does not verify the server's certificate: the client's own work stays
 * small (an ECDHE share and a signature check), so the server is what limits the figure; its CPU
 * is reported so that can be checked.
 *
 *   akv-tls-load --connect HOST:PORT --threads N --duration-ms MS [--tls12] [--resume]
 *                [--latency-file PATH]
 *
 * --resume measures the other case, a server with session resumption on: each thread offers the
 * session of its previous connection (TLS 1.2 session tickets or ids, usable as soon as the
 * handshake ends), so every connection after a thread's first can be resumed without a signature.
 *
 * Prints one JSON object on stdout: handshakes, resumed (must stay 0), errors, elapsed_us,
 * cpu_user_us, cpu_sys_us, protocol, cipher and the server's signature algorithm.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/ssl.h>

#include "common.h"

typedef struct {
    SSL_CTX *ctx;
    struct sockaddr_in addr;
    uint64_t deadline_ns;
    pthread_barrier_t go;
    int resume;
} shared_state;

typedef struct {
    shared_state *shared;
    SSL *ssl; /* reused across connections (SSL_clear): saves OpenSSL 3's per-object set-up */
    SSL_SESSION *session; /* --resume: the previous connection's session */
    bench_samples samples;
    long errors;
    long resumed;
    char first_error[256];
    char protocol[32];
    char cipher[64];
    char sigalg[64];
} thread_state;

static void record_error(thread_state *t, const char *what)
{
    if (t->errors++ == 0) {
        char ossl[200] = "";
        unsigned long e = ERR_peek_last_error();
        if (e != 0)
            ERR_error_string_n(e, ossl, sizeof(ossl));
        snprintf(t->first_error, sizeof(t->first_error), "%s %s", what, ossl);
    }
    ERR_clear_error();
}

/* One connection with a full handshake; returns 1 when the handshake completed. */
static int handshake_once(thread_state *t)
{
    shared_state *s = t->shared;
    int fd = socket(AF_INET, SOCK_STREAM, 0), ok = 0;
    if (fd < 0) {
        record_error(t, "socket()");
        return 0;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    SSL *ssl = t->ssl;
    if (connect(fd, (const struct sockaddr *)&s->addr, sizeof(s->addr)) != 0) {
        record_error(t, "connect()");
        goto done;
    }
    /* A cleared SSL keeps its last session: drop it, so the handshake cannot resume (or, with
     * --resume, offer the previous connection's). */
    if (SSL_clear(ssl) != 1 || SSL_set_session(ssl, s->resume ? t->session : NULL) != 1 || SSL_set_fd(ssl, fd) != 1 ||
        SSL_set_tlsext_host_name(ssl, "localhost") != 1) {
        record_error(t, "SSL_clear");
        goto done;
    }
    if (SSL_connect(ssl) != 1) {
        record_error(t, "handshake:");
        goto done;
    }
    ok = 1;
    if (SSL_session_reused(ssl))
        t->resumed++;
    if (s->resume) {
        SSL_SESSION_free(t->session);
        t->session = SSL_get1_session(ssl);
    }
    if (t->protocol[0] == '\0') {
        int nid = NID_undef;
        snprintf(t->protocol, sizeof(t->protocol), "%s", SSL_get_version(ssl));
        snprintf(t->cipher, sizeof(t->cipher), "%s", SSL_get_cipher_name(ssl));
        if (SSL_get_peer_signature_type_nid(ssl, &nid) == 1 && nid != NID_undef)
            snprintf(t->sigalg, sizeof(t->sigalg), "%s", OBJ_nid2sn(nid));
        if (SSL_get_peer_signature_nid(ssl, &nid) == 1 && nid != NID_undef) {
            size_t n = strlen(t->sigalg);
            snprintf(t->sigalg + n, sizeof(t->sigalg) - n, "+%s", OBJ_nid2sn(nid));
        }
    }
    SSL_shutdown(ssl);
done:
    close(fd);
    return ok;
}

static void *worker(void *arg)
{
    thread_state *t = arg;
    t->ssl = SSL_new(t->shared->ctx);
    if (t->ssl == NULL)
        bench_die(1, "cannot create a TLS connection object");
    pthread_barrier_wait(&t->shared->go);
    for (;;) {
        uint64_t start = bench_now_ns();
        if (start >= t->shared->deadline_ns)
            break;
        if (handshake_once(t))
            bench_samples_add(&t->samples, bench_now_ns() - start);
    }
    SSL_SESSION_free(t->session);
    SSL_free(t->ssl);
    return NULL;
}

static void usage(void)
{
    fputs("usage: akv-tls-load --connect HOST:PORT --threads N --duration-ms MS [--tls12] [--resume]\n"
          "                    [--latency-file PATH]\n"
          "Full TLS handshakes only (no resumption) unless --resume (TLS 1.2, each connection offers\n"
          "its thread's previous session); prints one JSON object.\n",
          stderr);
}

static void parse_target(const char *v, struct sockaddr_in *addr)
{
    char host[64];
    const char *colon = strrchr(v, ':');
    if (colon == NULL || (size_t)(colon - v) >= sizeof(host))
        bench_die(2, "--connect takes HOST:PORT with an IPv4 address, got \"%s\"", v);
    memcpy(host, v, (size_t)(colon - v));
    host[colon - v] = '\0';
    memset(addr, 0, sizeof(*addr));
    addr->sin_family = AF_INET;
    addr->sin_port = htons((uint16_t)bench_parse_long("--connect port", colon + 1, 1, 65535));
    if (inet_pton(AF_INET, host, &addr->sin_addr) != 1)
        bench_die(2, "--connect takes an IPv4 address such as 127.0.0.1, got \"%s\"", host);
}

int main(int argc, char **argv)
{
    shared_state s;
    const char *target = NULL, *latency_file = NULL;
    long threads = 0, duration_ms = 0;
    int tls12 = 0;
    memset(&s, 0, sizeof(s));

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--help") == 0) {
            usage();
            return 0;
        } else if (strcmp(a, "--tls12") == 0) {
            tls12 = 1;
            continue;
        } else if (strcmp(a, "--resume") == 0) {
            s.resume = 1;
            continue;
        }
        if (v == NULL) {
            usage();
            bench_die(2, "%s needs a value", a);
        }
        i++;
        if (strcmp(a, "--connect") == 0)
            target = v;
        else if (strcmp(a, "--threads") == 0)
            threads = bench_parse_long(a, v, 1, 4096);
        else if (strcmp(a, "--duration-ms") == 0)
            duration_ms = bench_parse_long(a, v, 1, 3600000);
        else if (strcmp(a, "--latency-file") == 0)
            latency_file = v;
        else {
            usage();
            bench_die(2, "unknown option %s", a);
        }
    }
    if (target == NULL || threads == 0 || duration_ms == 0) {
        usage();
        bench_die(2, "--connect, --threads and --duration-ms are required");
    }
    parse_target(target, &s.addr);

    s.ctx = SSL_CTX_new(TLS_client_method());
    if (s.ctx == NULL) {
        bench_print_openssl_errors();
        bench_die(1, "cannot create a TLS client context");
    }
    int version = tls12 || s.resume ? TLS1_2_VERSION : TLS1_3_VERSION;
    SSL_CTX_set_min_proto_version(s.ctx, version);
    SSL_CTX_set_max_proto_version(s.ctx, version);
    if (!s.resume) {
        /* Full handshakes only: no tickets, no client-side session cache. */
        SSL_CTX_set_options(s.ctx, SSL_OP_NO_TICKET);
        SSL_CTX_set_session_cache_mode(s.ctx, SSL_SESS_CACHE_OFF);
    }
    SSL_CTX_set_verify(s.ctx, SSL_VERIFY_NONE, NULL);

    thread_state *ts = calloc((size_t)threads, sizeof(*ts));
    pthread_t *tids = calloc((size_t)threads, sizeof(*tids));
    if (ts == NULL || tids == NULL)
        bench_die(1, "out of memory");
    pthread_barrier_init(&s.go, NULL, (unsigned)threads + 1);
    for (long i = 0; i < threads; i++) {
        ts[i].shared = &s;
        if (pthread_create(&tids[i], NULL, worker, &ts[i]) != 0)
            bench_die(1, "cannot start thread %ld", i);
    }
    uint64_t user0, sys0, user1, sys1;
    long rss;
    bench_self_usage(&user0, &sys0, &rss);
    uint64_t start = bench_now_ns();
    s.deadline_ns = start + (uint64_t)duration_ms * 1000000u;
    pthread_barrier_wait(&s.go);
    for (long i = 0; i < threads; i++)
        pthread_join(tids[i], NULL);
    uint64_t elapsed = bench_now_ns() - start;
    bench_self_usage(&user1, &sys1, &rss);

    long handshakes = 0, errors = 0, resumed = 0;
    const thread_state *first_failed = NULL, *described = NULL;
    bench_samples *all = calloc((size_t)threads, sizeof(*all));
    if (all == NULL)
        bench_die(1, "out of memory");
    for (long i = 0; i < threads; i++) {
        handshakes += (long)ts[i].samples.len;
        if (ts[i].errors > 0 && first_failed == NULL)
            first_failed = &ts[i];
        if (ts[i].protocol[0] != '\0' && described == NULL)
            described = &ts[i];
        errors += ts[i].errors;
        resumed += ts[i].resumed;
        all[i] = ts[i].samples;
    }
    if (latency_file != NULL && bench_samples_write(all, (size_t)threads, latency_file) != 0)
        bench_die(1, "cannot write %s", latency_file);
    if (first_failed != NULL)
        fprintf(stderr, "akv bench: %ld handshakes failed; first: %s\n", errors,
                first_failed->first_error);
    printf("{\"handshakes\":%ld,\"resumed\":%ld,\"errors\":%ld,\"threads\":%ld,\"elapsed_us\":%llu,"
           "\"cpu_user_us\":%llu,\"cpu_sys_us\":%llu,\"maxrss_kb\":%ld,"
           "\"protocol\":\"%s\",\"cipher\":\"%s\",\"server_sigalg\":\"%s\"}\n",
           handshakes, resumed, errors, threads, (unsigned long long)(elapsed / 1000),
           (unsigned long long)(user1 - user0), (unsigned long long)(sys1 - sys0), rss,
           described ? described->protocol : "", described ? described->cipher : "",
           described ? described->sigalg : "");
    for (long i = 0; i < threads; i++)
        bench_samples_free(&ts[i].samples);
    free(all);
    free(ts);
    free(tids);
    SSL_CTX_free(s.ctx);
    return handshakes == 0 ? 1 : 0;
}
