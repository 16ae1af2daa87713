/*
 * Stands in for nginx >= 1.29 loading `ssl_certificate_key "store:URI";` when no such nginx can be
 * built here (docs/compatibility.md):
 *   nginx_store CERT.pem store:URI WORKERS [WORKER_USER]
 * Rules: the OpenSSL calls are the ones nginx makes, in its order (read from nginx's
 * src/event/ngx_event_openssl_cache.c ngx_ssl_cache_pkey_create and ngx_openssl_cache_init_worker,
 * src/event/ngx_event_openssl.c ngx_ssl_init/ngx_ssl_create/ngx_ssl_certificate):
 *   master: OPENSSL_init_ssl(LOAD_CONFIG), SSL_CTX_new(TLS_method), the certificate, then
 *     OSSL_STORE_open(uri, NULL UI method, NULL data, NULL, NULL) (no ssl_password_file),
 *     OSSL_STORE_load until a PKEY or OSSL_STORE_eof (NULL infos skipped), OSSL_STORE_close,
 *     SSL_CTX_use_PrivateKey (which checks the key against the certificate); it listens on
 *     127.0.0.1 before forking, as nginx binds before forking.
 *   worker (fork, then setgid/setuid to WORKER_USER when started as root):
 *     UI_set_default_method(UI_null()), then accepts TLS connections forever, answering each
 *     with a small HTTP/1.0 response naming the worker.
 * Prints "listening on PORT" once the workers run; SIGTERM stops master and workers. Exits 1 with
 * OpenSSL's error queue on stderr when loading fails (nginx's "cannot load certificate key").
 * An alarm bounds the load loop: a provider whose load never reaches eof would hang nginx.
 */
#include <arpa/inet.h>
#include <grp.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/store.h>
#include <openssl/ui.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_WORKERS 8
#define LOAD_SECONDS 60

static volatile sig_atomic_t stopping;

static void on_term(int sig)
{
    (void)sig;
    stopping = 1;
}

static void on_alarm(int sig)
{
    (void)sig;
    static const char msg[] = "nginx_store: OSSL_STORE loading did not finish within 60 s (a hang)\n";
    ssize_t ignored = write(2, msg, sizeof(msg) - 1);
    (void)ignored;
    _exit(3);
}

static int fail(const char *what)
{
    fprintf(stderr, "nginx_store: %s\n", what);
    ERR_print_errors_fp(stderr);
    return 1;
}

/* ngx_ssl_cache_pkey_create's store: branch, without ssl_password_file. */
static EVP_PKEY *load_store_key(const char *id)
{
    const char *uri = id + strlen("store:");
    UI_METHOD *method = NULL;
    OSSL_STORE_CTX *store = OSSL_STORE_open(uri, method, NULL, NULL, NULL);
    if (store == NULL) {
        fprintf(stderr, "nginx_store: OSSL_STORE_open() failed\n");
        return NULL;
    }
    EVP_PKEY *pkey = NULL;
    while (pkey == NULL && !OSSL_STORE_eof(store)) {
        OSSL_STORE_INFO *info = OSSL_STORE_load(store);
        if (info == NULL)
            continue;
        if (OSSL_STORE_INFO_get_type(info) == OSSL_STORE_INFO_PKEY)
            pkey = OSSL_STORE_INFO_get1_PKEY(info);
        OSSL_STORE_INFO_free(info);
    }
    OSSL_STORE_close(store);
    if (pkey == NULL)
        fprintf(stderr, "nginx_store: OSSL_STORE_load() failed\n");
    return pkey;
}

static int drop_privileges(const char *user)
{
    if (user == NULL || geteuid() != 0)
        return 1;
    struct passwd *pw = getpwnam(user);
    if (pw == NULL) {
        fprintf(stderr, "nginx_store: no user %s\n", user);
        return 0;
    }
    if (setgid(pw->pw_gid) != 0 || initgroups(user, pw->pw_gid) != 0 || setuid(pw->pw_uid) != 0) {
        perror("nginx_store: dropping privileges");
        return 0;
    }
    return 1;
}

static void serve_one(SSL_CTX *ctx, int fd)
{
    SSL *ssl = SSL_new(ctx);
    char request[4096], response[160];
    if (ssl == NULL || !SSL_set_fd(ssl, fd) || SSL_accept(ssl) != 1) {
        fprintf(stderr, "nginx_store: worker %d: handshake failed\n", (int)getpid());
        ERR_print_errors_fp(stderr);
        SSL_free(ssl);
        return;
    }
    /* One read is enough for the small requests the tests send (curl, s_client). */
    int got = SSL_read(ssl, request, sizeof(request) - 1);
    (void)got;
    int len = snprintf(response, sizeof(response),
                       "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nnginx_store worker %d %s\n", (int)getpid(),
                       SSL_get_version(ssl));
    SSL_write(ssl, response, len);
    SSL_shutdown(ssl);
    SSL_free(ssl);
}

static void worker(SSL_CTX *ctx, int listener, const char *user)
{
    if (!drop_privileges(user))
        _exit(2);
    /* ngx_openssl_cache_init_worker: no console prompts from workers. */
    UI_set_default_method(UI_null());
    while (!stopping) {
        int fd = accept(listener, NULL, NULL);
        if (fd < 0)
            continue;
        serve_one(ctx, fd);
        close(fd);
    }
    _exit(0);
}

int main(int argc, char **argv)
{
    if (argc < 4 || strncmp(argv[2], "store:", 6) != 0) {
        fprintf(stderr, "usage: nginx_store CERT.pem store:URI WORKERS [WORKER_USER]\n");
        return 2;
    }
    int workers = atoi(argv[3]);
    if (workers < 1 || workers > MAX_WORKERS) {
        fprintf(stderr, "nginx_store: WORKERS must be 1 to %d\n", MAX_WORKERS);
        return 2;
    }
    const char *user = argc > 4 ? argv[4] : NULL;

    if (!OPENSSL_init_ssl(OPENSSL_INIT_LOAD_CONFIG, NULL))
        return fail("OPENSSL_init_ssl() failed");
    SSL_CTX *ctx = SSL_CTX_new(TLS_method());
    if (ctx == NULL)
        return fail("SSL_CTX_new() failed");

    BIO *bio = BIO_new_file(argv[1], "r");
    X509 *cert = bio != NULL ? PEM_read_bio_X509_AUX(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    if (cert == NULL || SSL_CTX_use_certificate(ctx, cert) != 1)
        return fail("cannot load certificate");
    X509_free(cert);

    signal(SIGALRM, on_alarm);
    alarm(LOAD_SECONDS);
    EVP_PKEY *pkey = load_store_key(argv[2]);
    alarm(0);
    if (pkey == NULL)
        return fail("cannot load certificate key");
    if (SSL_CTX_use_PrivateKey(ctx, pkey) != 1)
        return fail("SSL_CTX_use_PrivateKey() failed");
    EVP_PKEY_free(pkey);

    int listener = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t addrlen = sizeof(addr);
    if (listener < 0 || bind(listener, (struct sockaddr *)&addr, sizeof(addr)) != 0 || listen(listener, 64) != 0 ||
        getsockname(listener, (struct sockaddr *)&addr, &addrlen) != 0) {
        perror("nginx_store: listen");
        return 1;
    }

    struct sigaction sa = {.sa_handler = on_term};
    sigaction(SIGTERM, &sa, NULL);
    pid_t pids[MAX_WORKERS];
    for (int i = 0; i < workers; i++) {
        pids[i] = fork();
        if (pids[i] < 0) {
            perror("nginx_store: fork");
            return 1;
        }
        if (pids[i] == 0)
            worker(ctx, listener, user);
    }
    printf("listening on %d\n", ntohs(addr.sin_port));
    fflush(stdout);

    while (!stopping)
        pause();
    for (int i = 0; i < workers; i++)
        kill(pids[i], SIGTERM);
    int failed = 0;
    for (int i = 0; i < workers; i++) {
        int status = 0;
        if (waitpid(pids[i], &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
            failed = 1;
    }
    SSL_CTX_free(ctx);
    close(listener);
    return failed;
}
