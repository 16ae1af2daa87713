/*
 * The agent wire protocol (docs/protocol.md): frame header, field tags, status codes, and a
 * codec that never reads past its input. Pure C, no OpenSSL, so the fuzz target and the unit
 * tests can use it alone.
 */
#ifndef AKV_FRAME_H
#define AKV_FRAME_H

#include <stddef.h>
#include <stdint.h>

#define AKV_FRAME_MAGIC0 0x41
#define AKV_FRAME_MAGIC1 0x4B
#define AKV_FRAME_VERSION 1
#define AKV_FRAME_HEADER_LEN 12
#define AKV_FIELD_HEADER_LEN 6
#define AKV_MAX_REQUEST_BODY 65536u
#define AKV_MAX_RESPONSE_BODY 1048576u

enum akv_op {
    AKV_OP_HELLO = 0x01,
    AKV_OP_PING = 0x02,
    AKV_OP_DESCRIBE = 0x03,
    AKV_OP_SIGN = 0x04,
    AKV_OP_DECRYPT = 0x05,
    AKV_OP_WRAP = 0x06,
    AKV_OP_UNWRAP = 0x07,
    AKV_OP_LIST = 0x08,
    AKV_OP_RESPONSE_FLAG = 0x80,
    AKV_OP_PROTOCOL_ERROR = 0xFF
};

enum akv_tag {
    AKV_TAG_STATUS = 0x0001,
    AKV_TAG_MESSAGE = 0x0002,
    AKV_TAG_URI = 0x0003,
    AKV_TAG_ALG = 0x0004,
    AKV_TAG_INPUT = 0x0005,
    AKV_TAG_OUTPUT = 0x0006,
    AKV_TAG_KEY_TYPE = 0x0010,
    AKV_TAG_KEY_BITS = 0x0011,
    AKV_TAG_CURVE = 0x0012,
    AKV_TAG_KEY_VERSION = 0x0013,
    AKV_TAG_KEY_OPS = 0x0014,
    AKV_TAG_PUBLIC_KEY = 0x0015,
    AKV_TAG_KEY_ID = 0x0016,
    AKV_TAG_KEY_NAME = 0x0017,
    AKV_TAG_VAULT_NAME = 0x0018,
    AKV_TAG_VAULT_TYPE = 0x0019,
    AKV_TAG_CLIENT_PID = 0x0020,
    AKV_TAG_CLIENT_NAME = 0x0021,
    AKV_TAG_PROTO_VERSION = 0x0022,
    AKV_TAG_AGENT_VERSION = 0x0023,
    AKV_TAG_RETRIES = 0x0024
};

enum akv_status {
    AKV_STATUS_OK = 0,
    AKV_STATUS_BAD_REQUEST = 1,
    AKV_STATUS_BAD_URI = 2,
    AKV_STATUS_KEY_NOT_FOUND = 3,
    AKV_STATUS_FORBIDDEN = 4,
    AKV_STATUS_UNAUTHORIZED = 5,
    AKV_STATUS_THROTTLED = 6,
    AKV_STATUS_UNAVAILABLE = 7,
    AKV_STATUS_TIMEOUT = 8,
    AKV_STATUS_UNSUPPORTED = 9,
    AKV_STATUS_KEY_DISABLED = 10,
    AKV_STATUS_BAD_PARAMETER = 11,
    AKV_STATUS_INTERNAL = 12
};

enum akv_key_type_code { AKV_KEYTYPE_RSA = 1, AKV_KEYTYPE_EC = 2, AKV_KEYTYPE_AES = 3 };

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
akv_decode_result akv_frame_decode_header(const unsigned char *buf, size_t len, size_t max_body,
                                          uint8_t *op, uint32_t *id, uint32_t *body_len);

/*
 * Decodes one whole frame from buf (len bytes available). On success *consumed is the frame's
 * size; the fields point into buf, which must outlive the frame.
 */
akv_decode_result akv_frame_decode(const unsigned char *buf, size_t len, size_t max_body,
                                   akv_frame *out, size_t *consumed);

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
