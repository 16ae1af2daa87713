/*
 * Numbers of the akv agent protocol, version 1 (docs/protocol.md).
 * Generated from src/protocol/constants.ts by `npm run generate`: do not edit by hand.
 * Kept as generated (test/protocol/generated-header.test.ts), so clang-format leaves it alone.
 */
/* clang-format off */
#ifndef AKV_PROTOCOL_CODES_H
#define AKV_PROTOCOL_CODES_H

#define AKV_MAGIC 0x414Bu
#define AKV_PROTOCOL_VERSION 1
#define AKV_FRAME_HEADER_SIZE 12
#define AKV_FIELD_HEADER_SIZE 6
#define AKV_MAX_REQUEST_BODY 65536u
#define AKV_MAX_RESPONSE_BODY 1048576u
#define AKV_RESPONSE_BIT 0x80

enum akv_op {
    AKV_OP_HELLO = 0x01,
    AKV_OP_PING = 0x02,
    AKV_OP_DESCRIBE = 0x03,
    AKV_OP_SIGN = 0x04,
    AKV_OP_DECRYPT = 0x05,
    AKV_OP_WRAP = 0x06,
    AKV_OP_UNWRAP = 0x07,
    AKV_OP_LIST = 0x08,
    AKV_OP_FORGET = 0x09,
    AKV_OP_DIAGNOSE = 0x0A,
    AKV_OP_LIST_VAULTS = 0x0B,
    AKV_OP_PROTOCOL_ERROR = 0xFF
};

enum akv_tag {
    AKV_TAG_STATUS = 0x0001,
    AKV_TAG_MESSAGE = 0x0002,
    AKV_TAG_URI = 0x0003,
    AKV_TAG_ALG = 0x0004,
    AKV_TAG_INPUT = 0x0005,
    AKV_TAG_OUTPUT = 0x0006,
    AKV_TAG_HINT = 0x0007,
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
    AKV_TAG_RETRIES = 0x0024,
    AKV_TAG_REPORT = 0x0025,
    AKV_TAG_ACCESS_TOKEN = 0x0026,
    AKV_TAG_VAULT_NAMES = 0x0027,
    AKV_TAG_CERTIFICATE = 0x0028
};

enum akv_key_type {
    AKV_KEY_TYPE_RSA = 1,
    AKV_KEY_TYPE_EC = 2,
    AKV_KEY_TYPE_AES = 3
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
    AKV_STATUS_INTERNAL = 12,
    AKV_STATUS_ACCESS_DENIED = 13
};

/* Every status as X(NAME, code), for tables of names. */
#define AKV_STATUS_LIST(X) \
    X(OK, 0) \
    X(BAD_REQUEST, 1) \
    X(BAD_URI, 2) \
    X(KEY_NOT_FOUND, 3) \
    X(FORBIDDEN, 4) \
    X(UNAUTHORIZED, 5) \
    X(THROTTLED, 6) \
    X(UNAVAILABLE, 7) \
    X(TIMEOUT, 8) \
    X(UNSUPPORTED, 9) \
    X(KEY_DISABLED, 10) \
    X(BAD_PARAMETER, 11) \
    X(INTERNAL, 12) \
    X(ACCESS_DENIED, 13)

#endif
