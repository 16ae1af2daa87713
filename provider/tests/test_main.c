/*
 * Runs the provider's C unit tests: protocol codec against the shared golden vectors, the
 * key-reference parser, the signature helpers, and the connection pool (threads, fork, agent
 * restart, timeouts, garbage) against a small in-process socket server.
 * Usage: unit_tests [VECTORS_DIR] [TEST_NAME_SUBSTRING]
 * Prints one line per test and a closing `N passed, N failed`.
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "fake_agent.h"
#include "test.h"

int akv_test_failures;
const char *akv_vectors_dir = "../test/vectors";

int main(int argc, char **argv)
{
    const akv_test *suites[] = {frame_tests, keyref_tests, sigalg_tests, conn_tests, peer_tests, async_tests};
    const char *filter = argc > 2 ? argv[2] : NULL;
    int passed = 0, failed = 0;

    signal(SIGPIPE, SIG_IGN);
    if (argc > 1)
        akv_vectors_dir = argv[1];
    else if (getenv("AKV_VECTORS_DIR") != NULL)
        akv_vectors_dir = getenv("AKV_VECTORS_DIR");
    for (size_t s = 0; s < sizeof(suites) / sizeof(suites[0]); s++) {
        for (const akv_test *t = suites[s]; t->name != NULL; t++) {
            if (filter != NULL && strstr(t->name, filter) == NULL)
                continue;
            akv_test_failures = 0;
            t->fn();
            if (akv_test_failures == 0) {
                printf("ok - %s\n", t->name);
                passed++;
            } else {
                printf("not ok - %s (%d failed checks)\n", t->name, akv_test_failures);
                failed++;
            }
            fflush(stdout);
        }
    }
    socket_dir_remove();
    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
