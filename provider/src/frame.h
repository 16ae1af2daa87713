/*
 * The agent wire protocol (docs/protocol.md): a codec that never reads past its input. The
 * numbers (ops, tags, statuses, limits) come from protocol_codes.h, generated from the
 * TypeScript source. Pure C, no OpenSSL, so the fuzz target and the unit
 * tests can use it alone.
 */
#ifndef AKV_FRAME_H
#define AKV_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "protocol_codes.h"

/* Why a frame was rejected; the names match the `bad` reasons of the golden vectors. */
typedef enum {
    AKV_DECODE_OK = 0,
    AKV_DECODE_SHORT_HEADER,
    AKV_DECODE_MAGIC,
    AKV_DECODE_VERSION,
    AKV_DECODE_TOO_LARGE,
    AKV_DECODE_SHORT_BODY,
    AKV_DECODE_PARTIAL_FIELD_HEADER,
    AKV_DECODE_FIELD_OVERRUN,
    AKV_DECODE_DUPLICATE_TAG,
    AKV_DECODE_NO_MEMORY
} akv_decode_result;

typedef struct {
    uint16_t tag;
    uint32_t len;
    const unsigned char *value; /* points into the decoded buffer */
} akv_field;

typedef struct {
    uint8_t op;
    uint32_t id;
    size_t nfields;
    akv_field *fields; /* heap array, freed by akv_frame_clear */
} akv_frame;

/* Reads the 12-byte header. Returns AKV_DECODE_OK or the reason it is unusable. */
akv_decode_result akv_frame_decode_header(const unsigned char *buf, size_t len, size_t max_body, uint8_t *op,
                                          uint32_t *id, uint32_t *body_len);

/*
 * Decodes one whole frame from buf (len bytes available). On success *consumed is the frame's
 * size; the fields point into buf, which must outlive the frame.
 */
akv_decode_result akv_frame_decode(const unsigned char *buf, size_t len, size_t max_body, akv_frame *out,
                                   size_t *consumed);

/* Decodes only a body (the fields), for a body already read off the socket. */
akv_decode_result akv_frame_decode_body(const unsigned char *body, size_t len, akv_frame *out);

void akv_frame_clear(akv_frame *frame);
const char *akv_decode_result_name(akv_decode_result r);

const akv_field *akv_frame_get(const akv_frame *frame, uint16_t tag);
/* 1 when the field is present and exactly 4 bytes long. */
int akv_field_u32(const akv_field *field, uint32_t *out);

/* A growing buffer for building one request frame. */
typedef struct {
    unsigned char *data;
    size_t len;
    size_t cap;
    int failed; /* set on allocation failure or when the body would exceed the limit */
} akv_buf;

void akv_buf_init(akv_buf *b);
void akv_buf_free(akv_buf *b);
/* Starts a frame: writes the header with a zero length, to be patched by akv_frame_finish. */
void akv_frame_begin(akv_buf *b, uint8_t op, uint32_t id);
void akv_frame_put_bytes(akv_buf *b, uint16_t tag, const void *value, size_t len);
void akv_frame_put_str(akv_buf *b, uint16_t tag, const char *value);
void akv_frame_put_u32(akv_buf *b, uint16_t tag, uint32_t value);
/* Patches the body length; returns 0 when building failed or the body is over max_body. */
int akv_frame_finish(akv_buf *b, size_t max_body);

const char *akv_status_name(uint32_t status);

#endif
