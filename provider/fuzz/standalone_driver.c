/*
 * Runs the fuzz target without libFuzzer (gcc has none): replays the files given as arguments,
 * then mutates a built-in seed set (valid frames and a valid key reference) with a deterministic
 * PRNG for -iterations=N rounds (default 1000000). Built with ASan/UBSan by `make fuzz`.
 *   build/fuzz_decoders [-iterations=N] [-seed=S] [FILE ...]
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint64_t rng_state = 0x9E3779B97F4A7C15ULL;

static uint32_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 11);
}

static size_t build_seed(int which, unsigned char *out, size_t cap)
{
    akv_buf b;
    akv_buf_init(&b);
    static const unsigned char keyref[] = {0x30, 0x16, 0x02, 0x01, 0x01, 0x0c, 0x01, 'd', 0x0c, 0x0e, 'm', 'a',
                                           'n',  'a',  'g',  'e',  'd',  'h',  's',  'm', ':',  'h',  ':', 'k'};
    switch (which) {
    case 0:
        akv_frame_begin(&b, AKV_OP_DESCRIBE | AKV_RESPONSE_BIT, 7);
        akv_frame_put_u32(&b, AKV_TAG_STATUS, 0);
        akv_frame_put_u32(&b, AKV_TAG_KEY_TYPE, 2);
        akv_frame_put_str(&b, AKV_TAG_CURVE, "P-256");
        akv_frame_put_str(&b, AKV_TAG_KEY_OPS, "sign,verify");
        akv_frame_put_bytes(&b, AKV_TAG_PUBLIC_KEY, keyref, sizeof(keyref));
        break;
    case 1:
        akv_frame_begin(&b, AKV_OP_LIST | AKV_RESPONSE_BIT, 9);
        akv_frame_put_u32(&b, AKV_TAG_STATUS, 0);
        akv_frame_put_str(&b, AKV_TAG_KEY_NAME, "a");
        akv_frame_put_str(&b, AKV_TAG_KEY_NAME, "b");
        break;
    case 2:
        akv_frame_begin(&b, AKV_OP_PROTOCOL_ERROR, 0);
        akv_frame_put_u32(&b, AKV_TAG_STATUS, 1);
        akv_frame_put_str(&b, AKV_TAG_MESSAGE, "bad frame");
        break;
    default:
        if (sizeof(keyref) > cap)
            return 0;
        memcpy(out, keyref, sizeof(keyref));
        return sizeof(keyref);
    }
    akv_frame_finish(&b, AKV_MAX_RESPONSE_BODY);
    size_t n = b.len < cap ? b.len : cap;
    memcpy(out, b.data, n);
    akv_buf_free(&b);
    return n;
}

int main(int argc, char **argv)
{
    long iterations = 1000000;
    for (int i = 1; i < argc; i++) {
        if (strncmp(argv[i], "-iterations=", 12) == 0) {
            iterations = atol(argv[i] + 12);
        } else if (strncmp(argv[i], "-seed=", 6) == 0) {
            rng_state = strtoull(argv[i] + 6, NULL, 10) | 1;
        } else {
            FILE *fp = fopen(argv[i], "rb");
            if (fp == NULL) {
                perror(argv[i]);
                return 2;
            }
            static unsigned char buf[1 << 20];
            size_t n = fread(buf, 1, sizeof(buf), fp);
            fclose(fp);
            LLVMFuzzerTestOneInput(buf, n);
        }
    }
    unsigned char seed[4][512];
    size_t seedlen[4];
    for (int s = 0; s < 4; s++)
        seedlen[s] = build_seed(s, seed[s], sizeof(seed[s]));
    unsigned char buf[600];
    for (long it = 0; it < iterations; it++) {
        int s = (int)(rnd() % 4);
        size_t n = seedlen[s];
        memcpy(buf, seed[s], n);
        int edits = 1 + (int)(rnd() % 4);
        for (int e = 0; e < edits; e++) {
            switch (rnd() % 4) {
            case 0: /* flip a byte */
                if (n > 0)
                    buf[rnd() % n] ^= (unsigned char)(1u << (rnd() % 8));
                break;
            case 1: /* truncate */
                if (n > 0)
                    n = rnd() % n;
                break;
            case 2: /* random byte */
                if (n > 0)
                    buf[rnd() % n] = (unsigned char)rnd();
                break;
            default: /* append */
                if (n < sizeof(buf))
                    buf[n++] = (unsigned char)rnd();
                break;
            }
        }
        LLVMFuzzerTestOneInput(buf, n);
    }
    printf("fuzz_decoders: %ld iterations, no crash\n", iterations);
    return 0;
}
