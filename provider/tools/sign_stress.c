/*
 * Drives akv_provider the way a threaded, forking server does (nginx master/worker, gRPC):
 *   sign_stress URI THREADS ITERATIONS CHILDREN
 * loads the key once through OSSL_STORE, signs once in the parent (so a pooled agent connection
 * exists), then runs THREADS threads signing ITERATIONS distinct messages each with
 * EVP_DigestSign, then forks CHILDREN processes that sign with the inherited key. Every signature
 * is verified with a public-only copy of the key in the default provider. Prints one summary
 * line and exits 0 only when every signature verified. Needs OPENSSL_MODULES and
 * AKV_AGENT_SOCKET (the integration test passes the environment of `akv dev up`).
 */
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/provider.h>
#include <openssl/store.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static EVP_PKEY *hsm_key;
static EVP_PKEY *public_key;
static int iterations;

static int sign_and_verify(int who, int i)
{
    char msg[64];
    unsigned char sig[1024];
    size_t siglen = sizeof(sig);
    int n = snprintf(msg, sizeof(msg), "message %d from %d in pid %ld", i, who, (long)getpid());
    EVP_MD_CTX *s = EVP_MD_CTX_new(), *v = EVP_MD_CTX_new();
    int ok = s != NULL && v != NULL && EVP_DigestSignInit_ex(s, NULL, "SHA256", NULL, NULL, hsm_key, NULL) == 1 &&
             EVP_DigestSign(s, sig, &siglen, (unsigned char *)msg, (size_t)n) == 1 &&
             EVP_DigestVerifyInit_ex(v, NULL, "SHA256", NULL, NULL, public_key, NULL) == 1 &&
             EVP_DigestVerify(v, sig, siglen, (unsigned char *)msg, (size_t)n) == 1;
    if (!ok)
        ERR_print_errors_fp(stderr);
    EVP_MD_CTX_free(s);
    EVP_MD_CTX_free(v);
    return ok;
}

static void *worker(void *arg)
{
    int who = (int)(long)arg, failures = 0;
    for (int i = 0; i < iterations; i++)
        failures += !sign_and_verify(who, i);
    return (void *)(long)failures;
}

static EVP_PKEY *load_key(const char *uri)
{
    EVP_PKEY *pkey = NULL;
    OSSL_STORE_CTX *st = OSSL_STORE_open(uri, NULL, NULL, NULL, NULL);
    while (st != NULL && pkey == NULL && !OSSL_STORE_eof(st)) {
        OSSL_STORE_INFO *info = OSSL_STORE_load(st);
        if (info != NULL && OSSL_STORE_INFO_get_type(info) == OSSL_STORE_INFO_PKEY)
            pkey = OSSL_STORE_INFO_get1_PKEY(info);
        OSSL_STORE_INFO_free(info);
        if (info == NULL)
            break;
    }
    OSSL_STORE_close(st);
    return pkey;
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: %s URI THREADS ITERATIONS CHILDREN\n", argv[0]);
        return 2;
    }
    int nthreads = atoi(argv[2]), nchildren = atoi(argv[4]);
    iterations = atoi(argv[3]);
    OSSL_PROVIDER *akv = OSSL_PROVIDER_load(NULL, "akv_provider");
    OSSL_PROVIDER *def = OSSL_PROVIDER_load(NULL, "default");
    if (akv == NULL || def == NULL) {
        ERR_print_errors_fp(stderr);
        return 1;
    }
    hsm_key = load_key(argv[1]);
    if (hsm_key == NULL) {
        fprintf(stderr, "cannot load %s\n", argv[1]);
        ERR_print_errors_fp(stderr);
        return 1;
    }
    /* A public-only copy in the default provider, to verify independently of akv_provider. */
    unsigned char *der = NULL;
    int derlen = i2d_PUBKEY(hsm_key, &der);
    const unsigned char *p = der;
    public_key = derlen > 0 ? d2i_PUBKEY_ex(NULL, &p, derlen, NULL, "provider=default") : NULL;
    OPENSSL_free(der);
    if (public_key == NULL) {
        ERR_print_errors_fp(stderr);
        return 1;
    }
    int total = 1, failures = !sign_and_verify(-1, 0);

    pthread_t *threads = calloc((size_t)nthreads, sizeof(pthread_t));
    for (int t = 0; t < nthreads; t++)
        pthread_create(&threads[t], NULL, worker, (void *)(long)t);
    for (int t = 0; t < nthreads; t++) {
        void *r;
        pthread_join(threads[t], &r);
        failures += (int)(long)r;
        total += iterations;
    }
    free(threads);

    for (int c = 0; c < nchildren; c++) {
        pid_t pid = fork();
        if (pid == 0) {
            int f = 0;
            for (int i = 0; i < iterations; i++)
                f += !sign_and_verify(1000 + c, i);
            _exit(f == 0 ? 0 : 1);
        }
        int status = 0;
        waitpid(pid, &status, 0);
        total += iterations;
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
            failures += iterations;
    }
    /* The parent still signs after its children used their own connections. */
    failures += !sign_and_verify(-2, 1);
    total++;

    printf("sign_stress: %d signatures, %d failed (%d threads, %d children)\n", total, failures, nthreads, nchildren);
    EVP_PKEY_free(hsm_key);
    EVP_PKEY_free(public_key);
    OSSL_PROVIDER_unload(akv);
    OSSL_PROVIDER_unload(def);
    return failures == 0 ? 0 : 1;
}
