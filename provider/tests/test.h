/* A minimal test harness: each test is a function; CHECK records a failure and carries on. */
#ifndef AKV_TEST_H
#define AKV_TEST_H

#include <stdio.h>

extern int akv_test_failures; /* failures in the current test */

#define CHECK(cond)                                                                                                    \
    do {                                                                                                               \
        if (!(cond)) {                                                                                                 \
            fprintf(stderr, "    %s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);                               \
            akv_test_failures++;                                                                                       \
        }                                                                                                              \
    } while (0)

#define CHECKF(cond, ...)                                                                                              \
    do {                                                                                                               \
        if (!(cond)) {                                                                                                 \
            fprintf(stderr, "    %s:%d: check failed: %s: ", __FILE__, __LINE__, #cond);                               \
            fprintf(stderr, __VA_ARGS__);                                                                              \
            fputc('\n', stderr);                                                                                       \
            akv_test_failures++;                                                                                       \
        }                                                                                                              \
    } while (0)

typedef struct {
    const char *name;
    void (*fn)(void);
} akv_test;

/* Each test file exports its list, terminated by {NULL, NULL}. */
extern const akv_test frame_tests[];
extern const akv_test keyref_tests[];
extern const akv_test sigalg_tests[];
extern const akv_test conn_tests[];
extern const akv_test peer_tests[];
extern const akv_test async_tests[];

/* Directory of the repository's test/vectors (set by main from argv or AKV_VECTORS_DIR). */
extern const char *akv_vectors_dir;

#endif
