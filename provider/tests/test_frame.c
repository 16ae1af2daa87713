/* Protocol codec: every golden vector shared with the TypeScript side, plus encoder round trips. */
#include <stdlib.h>
#include <string.h>

#include "frame.h"
#include "test.h"

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decodes hex into a new buffer; returns NULL on bad hex. */
static unsigned char *unhex(const char *hex, size_t hexlen, size_t *outlen)
{
    if (hexlen % 2 != 0)
        return NULL;
    unsigned char *out = malloc(hexlen / 2 + 1);
    if (out == NULL)
        return NULL;
    for (size_t i = 0; i < hexlen / 2; i++) {
        int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            free(out);
            return NULL;
        }
        out[i] = (unsigned char)(hi * 16 + lo);
    }
    *outlen = hexlen / 2;
    return out;
}

/* Checks one `ok` vector's expectations (the tokens after the frame hex). */
static void check_ok_vector(const char *name, const akv_frame *f, char *expect)
{
    size_t nf = 0;
    char *save = NULL;
    for (char *tok = strtok_r(expect, " \n", &save); tok != NULL; tok = strtok_r(NULL, " \n", &save)) {
        if (strncmp(tok, "op=", 3) == 0) {
            CHECKF(strtoul(tok + 3, NULL, 16) == f->op, "%s: op %02x, expected %s", name, f->op, tok);
        } else if (strncmp(tok, "id=", 3) == 0) {
            CHECKF(strtoul(tok + 3, NULL, 10) == f->id, "%s: id %u, expected %s", name, f->id, tok);
        } else {
            char *eq = strchr(tok, '=');
            if (eq == NULL || eq - tok != 4) {
                CHECKF(0, "%s: malformed expectation '%s'", name, tok);
                continue;
            }
            unsigned tag = (unsigned)strtoul(tok, NULL, 16);
            size_t vlen = 0;
            unsigned char *v = unhex(eq + 1, strlen(eq + 1), &vlen);
            CHECKF(v != NULL, "%s: bad hex in expectation for tag %04x", name, tag);
            if (nf >= f->nfields) {
                CHECKF(0, "%s: decoder produced %zu fields, expected more", name, f->nfields);
            } else if (v != NULL) {
                const akv_field *fld = &f->fields[nf];
                CHECKF(fld->tag == tag, "%s: field %zu tag %04x, expected %04x", name, nf, fld->tag, tag);
                CHECKF(fld->len == vlen && memcmp(fld->value, v, vlen) == 0, "%s: field %zu (tag %04x) value differs",
                       name, nf, tag);
            }
            free(v);
            nf++;
        }
    }
    CHECKF(nf == f->nfields, "%s: decoder produced %zu fields, vector lists %zu", name, f->nfields, nf);
}

static void test_golden_vectors(void)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/protocol-vectors.txt", akv_vectors_dir);
    FILE *fp = fopen(path, "r");
    CHECKF(fp != NULL, "cannot open %s (run from provider/ or pass the vectors directory)", path);
    if (fp == NULL)
        return;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int ok_count = 0, bad_count = 0;
    while ((n = getline(&line, &cap, fp)) > 0) {
        if (line[0] == '#' || line[0] == '\n')
            continue;
        char *save = NULL;
        char *kind = strtok_r(line, " \n", &save);
        char *name = strtok_r(NULL, " \n", &save);
        char *hex = strtok_r(NULL, " \n", &save);
        char *rest = save;
        if (kind == NULL || name == NULL || hex == NULL) {
            CHECKF(0, "malformed vector line");
            continue;
        }
        size_t len = 0;
        unsigned char *frame = unhex(hex, strlen(hex), &len);
        CHECKF(frame != NULL, "%s: bad frame hex", name);
        if (frame == NULL)
            continue;
        akv_frame f;
        size_t consumed = 0;
        akv_decode_result r = akv_frame_decode(frame, len, AKV_MAX_REQUEST_BODY, &f, &consumed);
        if (strcmp(kind, "ok") == 0) {
            ok_count++;
            CHECKF(r == AKV_DECODE_OK, "%s: rejected (%s)", name, akv_decode_result_name(r));
            if (r == AKV_DECODE_OK) {
                CHECKF(consumed == len, "%s: consumed %zu of %zu bytes", name, consumed, len);
                check_ok_vector(name, &f, rest);
            }
        } else if (strcmp(kind, "bad") == 0) {
            bad_count++;
            char *reason = strtok_r(NULL, " \n", &save);
            CHECKF(r != AKV_DECODE_OK, "%s: accepted, expected rejection (%s)", name, reason ? reason : "?");
            CHECKF(reason != NULL && strcmp(akv_decode_result_name(r), reason) == 0, "%s: rejected as %s, expected %s",
                   name, akv_decode_result_name(r), reason ? reason : "?");
        } else {
            CHECKF(0, "%s: unknown vector kind '%s'", name, kind);
        }
        akv_frame_clear(&f);
        free(frame);
    }
    free(line);
    fclose(fp);
    CHECKF(ok_count > 0 && bad_count > 0, "the vector file has %d ok and %d bad vectors", ok_count, bad_count);
}

static void test_encode_round_trip(void)
{
    akv_buf b;
    akv_buf_init(&b);
    akv_frame_begin(&b, AKV_OP_SIGN, 0x01020304);
    akv_frame_put_str(&b, AKV_TAG_URI, "managedhsm:h:k");
    akv_frame_put_str(&b, AKV_TAG_ALG, "RS256");
    unsigned char digest[32];
    for (int i = 0; i < 32; i++)
        digest[i] = (unsigned char)i;
    akv_frame_put_bytes(&b, AKV_TAG_INPUT, digest, sizeof(digest));
    akv_frame_put_u32(&b, AKV_TAG_CLIENT_PID, 4242);
    akv_frame_put_bytes(&b, AKV_TAG_MESSAGE, "", 0);
    CHECK(akv_frame_finish(&b, AKV_MAX_REQUEST_BODY));
    akv_frame f;
    size_t consumed;
    CHECK(akv_frame_decode(b.data, b.len, AKV_MAX_REQUEST_BODY, &f, &consumed) == AKV_DECODE_OK);
    CHECK(consumed == b.len);
    CHECK(f.op == AKV_OP_SIGN && f.id == 0x01020304 && f.nfields == 5);
    const akv_field *in = akv_frame_get(&f, AKV_TAG_INPUT);
    CHECK(in != NULL && in->len == 32 && memcmp(in->value, digest, 32) == 0);
    uint32_t pid = 0;
    CHECK(akv_field_u32(akv_frame_get(&f, AKV_TAG_CLIENT_PID), &pid) && pid == 4242);
    CHECK(!akv_field_u32(akv_frame_get(&f, AKV_TAG_URI), &pid));
    const akv_field *m = akv_frame_get(&f, AKV_TAG_MESSAGE);
    CHECK(m != NULL && m->len == 0);
    CHECK(akv_frame_get(&f, AKV_TAG_OUTPUT) == NULL);
    akv_frame_clear(&f);
    /* Truncations of a valid frame are all rejected, never read past the end. */
    for (size_t cut = 0; cut < b.len; cut++) {
        akv_decode_result r = akv_frame_decode(b.data, cut, AKV_MAX_REQUEST_BODY, &f, &consumed);
        CHECKF(r == (cut < AKV_FRAME_HEADER_SIZE ? AKV_DECODE_SHORT_HEADER : AKV_DECODE_SHORT_BODY), "cut at %zu", cut);
        akv_frame_clear(&f);
    }
    akv_buf_free(&b);
}

static void test_request_limit(void)
{
    akv_buf b;
    akv_buf_init(&b);
    akv_frame_begin(&b, AKV_OP_SIGN, 1);
    unsigned char *big = calloc(1, AKV_MAX_REQUEST_BODY);
    CHECK(big != NULL);
    if (big == NULL)
        return;
    akv_frame_put_bytes(&b, AKV_TAG_INPUT, big, AKV_MAX_REQUEST_BODY - AKV_FIELD_HEADER_SIZE);
    CHECK(akv_frame_finish(&b, AKV_MAX_REQUEST_BODY)); /* exactly at the limit */
    akv_frame_put_bytes(&b, AKV_TAG_ALG, "x", 1);
    CHECK(!akv_frame_finish(&b, AKV_MAX_REQUEST_BODY)); /* one field over */
    akv_buf_free(&b);
    free(big);
}

static void test_repeated_key_names_allowed(void)
{
    static const unsigned char body[] = {0x00, 0x17, 0, 0, 0, 1, 'a', 0x00, 0x17, 0, 0, 0, 1, 'b'};
    akv_frame f;
    CHECK(akv_frame_decode_body(body, sizeof(body), &f) == AKV_DECODE_OK);
    CHECK(f.nfields == 2);
    akv_frame_clear(&f);
}

const akv_test frame_tests[] = {
    {"frame: golden vectors (test/vectors/protocol-vectors.txt)", test_golden_vectors},
    {"frame: encode/decode round trip and truncations", test_encode_round_trip},
    {"frame: request body limit", test_request_limit},
    {"frame: KEY_NAME may repeat", test_repeated_key_names_allowed},
    {NULL, NULL},
};
