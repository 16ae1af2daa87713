/* The AKVKeyReference DER parser: accepts what `akv keyref` writes, refuses everything else. */
#include <stdlib.h>
#include <string.h>

#include "keyref.h"
#include "test.h"

/* SEQUENCE { INTEGER 1, UTF8String "d", UTF8String "managedhsm:h:k" } */
static const unsigned char good[] = {0x30, 0x16, 0x02, 0x01, 0x01, 0x0c, 0x01, 'd', 0x0c, 0x0e, 'm', 'a',
                                     'n',  'a',  'g',  'e',  'd',  'h',  's',  'm', ':',  'h',  ':', 'k'};

static void test_keyref_good(void)
{
    const char *why = NULL;
    char *uri = akv_keyref_parse(good, sizeof(good), &why);
    CHECK(uri != NULL && strcmp(uri, "managedhsm:h:k") == 0);
    CHECK(why == NULL);
    free(uri);
}

static void test_keyref_long_form_length(void)
{
    /* A 200-byte description forces the long length form, as `akv keyref` writes for long notes. */
    unsigned char der[300];
    size_t n = 0;
    size_t body = 3 + 3 + 200 + 2 + 5;
    der[n++] = 0x30;
    der[n++] = 0x81;
    der[n++] = (unsigned char)body;
    der[n++] = 0x02, der[n++] = 0x01, der[n++] = 0x01;
    der[n++] = 0x0c, der[n++] = 0x81, der[n++] = 200;
    memset(der + n, 'x', 200);
    n += 200;
    der[n++] = 0x0c, der[n++] = 0x05;
    memcpy(der + n, "akv:x", 5);
    n += 5;
    const char *why = NULL;
    char *uri = akv_keyref_parse(der, n, &why);
    CHECKF(uri != NULL && strcmp(uri, "akv:x") == 0, "%s", why ? why : "");
    free(uri);
}

static void test_keyref_bad(void)
{
    const char *why = NULL;
    unsigned char buf[sizeof(good)];
    /* Every truncation fails. */
    for (size_t i = 0; i < sizeof(good); i++)
        CHECKF(akv_keyref_parse(good, i, &why) == NULL && why != NULL, "truncated to %zu accepted", i);
    /* Wrong version. */
    memcpy(buf, good, sizeof(buf));
    buf[4] = 2;
    CHECK(akv_keyref_parse(buf, sizeof(buf), &why) == NULL);
    /* Control character in the URI. */
    memcpy(buf, good, sizeof(buf));
    buf[sizeof(buf) - 1] = '\n';
    CHECK(akv_keyref_parse(buf, sizeof(buf), &why) == NULL);
    /* Trailing garbage inside the SEQUENCE is refused too. */
    unsigned char extra[sizeof(good) + 2];
    memcpy(extra, good, sizeof(good));
    extra[1] += 2;
    extra[sizeof(good)] = 0x05;
    extra[sizeof(good) + 1] = 0x00;
    CHECK(akv_keyref_parse(extra, sizeof(extra), &why) == NULL);
    /* Empty URI. */
    static const unsigned char empty_uri[] = {0x30, 0x08, 0x02, 0x01, 0x01, 0x0c, 0x01, 'd', 0x0c, 0x00};
    CHECK(akv_keyref_parse(empty_uri, sizeof(empty_uri), &why) == NULL);
    /* Non-minimal long-form length. */
    static const unsigned char nonmin[] = {0x30, 0x81, 0x08, 0x02, 0x01, 0x01, 0x0c, 0x01, 'd', 0x0c, 0x01, 'u'};
    CHECK(akv_keyref_parse(nonmin, sizeof(nonmin), &why) == NULL);
}

const akv_test keyref_tests[] = {
    {"keyref: parses the structure akv keyref writes", test_keyref_good},
    {"keyref: long-form DER lengths", test_keyref_long_form_length},
    {"keyref: truncated, wrong version, control chars, trailing data refused", test_keyref_bad},
    {NULL, NULL},
};
