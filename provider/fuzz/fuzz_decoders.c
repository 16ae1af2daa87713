/*
 * Fuzz target for the parsers that read bytes from outside the process: the agent frame decoder
 * (responses come from another process) and the key-reference DER parser (files on disk).
 * libFuzzer entry point; fuzz/standalone_driver.c runs the same function without clang.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"
#include "keyref.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    akv_frame f;
    size_t consumed = 0;
    /* Whole frames under both limits. */
    if (akv_frame_decode(data, size, AKV_MAX_RESPONSE_BODY, &f, &consumed) == AKV_DECODE_OK) {
        /* Touch every field the way the provider does. */
        uint32_t v;
        for (size_t i = 0; i < f.nfields; i++) {
            volatile unsigned char sink = 0;
            if (f.fields[i].len > 0)
                sink ^= f.fields[i].value[f.fields[i].len - 1];
            (void)sink;
            akv_field_u32(&f.fields[i], &v);
        }
        if (consumed > size)
            abort();
    }
    akv_frame_clear(&f);
    if (akv_frame_decode(data, size, AKV_MAX_REQUEST_BODY, &f, &consumed) == AKV_DECODE_OK && consumed > size)
        abort();
    akv_frame_clear(&f);
    /* A bare body. */
    if (akv_frame_decode_body(data, size, &f) == AKV_DECODE_OK)
        akv_frame_get(&f, AKV_TAG_STATUS);
    akv_frame_clear(&f);
    /* Key-reference DER. */
    const char *why = NULL;
    char *uri = akv_keyref_parse(data, size, &why);
    if (uri != NULL && strlen(uri) == 0)
        abort();
    free(uri);
    return 0;
}
