/*
 * Codec for the agent protocol (docs/protocol.md). Every length is checked against what is
 * actually there before it is used: this code parses bytes from another process and is the
 * target of the fuzzer in provider/fuzz/.
 */
#include "frame.h"

#include <stdlib.h>
#include <string.h>

static uint32_t get_u32(const unsigned char *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

static uint16_t get_u16(const unsigned char *p)
{
    return (uint16_t)(((unsigned)p[0] << 8) | (unsigned)p[1]);
}

static void put_u32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

akv_decode_result akv_frame_decode_header(const unsigned char *buf, size_t len, size_t max_body, uint8_t *op,
                                          uint32_t *id, uint32_t *body_len)
{
    if (len < AKV_FRAME_HEADER_SIZE)
        return AKV_DECODE_SHORT_HEADER;
    if (buf[0] != (AKV_MAGIC >> 8) || buf[1] != (AKV_MAGIC & 0xFF))
        return AKV_DECODE_MAGIC;
    if (buf[2] != AKV_PROTOCOL_VERSION)
        return AKV_DECODE_VERSION;
    uint32_t blen = get_u32(buf + 8);
    if (blen > max_body)
        return AKV_DECODE_TOO_LARGE;
    *op = buf[3];
    *id = get_u32(buf + 4);
    *body_len = blen;
    return AKV_DECODE_OK;
}

akv_decode_result akv_frame_decode_body(const unsigned char *body, size_t len, akv_frame *out)
{
    /* One bit per possible tag: duplicate detection stays linear for hostile input. */
    unsigned char seen[65536 / 8];
    size_t count = 0, pos = 0;

    out->nfields = 0;
    out->fields = NULL;
    /* First pass: validate and count, so the field array is allocated once. */
    memset(seen, 0, sizeof(seen));
    while (pos < len) {
        if (len - pos < AKV_FIELD_HEADER_SIZE)
            return AKV_DECODE_PARTIAL_FIELD_HEADER;
        uint16_t tag = get_u16(body + pos);
        uint32_t flen = get_u32(body + pos + 2);
        if (flen > len - pos - AKV_FIELD_HEADER_SIZE)
            return AKV_DECODE_FIELD_OVERRUN;
        if (tag != AKV_TAG_KEY_NAME) {
            if (seen[tag >> 3] & (1u << (tag & 7)))
                return AKV_DECODE_DUPLICATE_TAG;
            seen[tag >> 3] |= (unsigned char)(1u << (tag & 7));
        }
        pos += AKV_FIELD_HEADER_SIZE + (size_t)flen;
        count++;
    }
    if (count == 0)
        return AKV_DECODE_OK;
    out->fields = calloc(count, sizeof(*out->fields));
    if (out->fields == NULL)
        return AKV_DECODE_NO_MEMORY;
    for (pos = 0; pos < len;) {
        akv_field *f = &out->fields[out->nfields++];
        f->tag = get_u16(body + pos);
        f->len = get_u32(body + pos + 2);
        f->value = body + pos + AKV_FIELD_HEADER_SIZE;
        pos += AKV_FIELD_HEADER_SIZE + (size_t)f->len;
    }
    return AKV_DECODE_OK;
}

akv_decode_result akv_frame_decode(const unsigned char *buf, size_t len, size_t max_body, akv_frame *out,
                                   size_t *consumed)
{
    uint32_t body_len = 0;
    akv_decode_result r;

    out->nfields = 0;
    out->fields = NULL;
    r = akv_frame_decode_header(buf, len, max_body, &out->op, &out->id, &body_len);
    if (r != AKV_DECODE_OK)
        return r;
    if (len - AKV_FRAME_HEADER_SIZE < body_len)
        return AKV_DECODE_SHORT_BODY;
    r = akv_frame_decode_body(buf + AKV_FRAME_HEADER_SIZE, body_len, out);
    if (r != AKV_DECODE_OK)
        return r;
    if (consumed != NULL)
        *consumed = AKV_FRAME_HEADER_SIZE + (size_t)body_len;
    return AKV_DECODE_OK;
}

void akv_frame_clear(akv_frame *frame)
{
    free(frame->fields);
    frame->fields = NULL;
    frame->nfields = 0;
}

const char *akv_decode_result_name(akv_decode_result r)
{
    switch (r) {
    case AKV_DECODE_OK:
        return "ok";
    case AKV_DECODE_SHORT_HEADER:
        return "short-header";
    case AKV_DECODE_MAGIC:
        return "magic";
    case AKV_DECODE_VERSION:
        return "version";
    case AKV_DECODE_TOO_LARGE:
        return "too-large";
    case AKV_DECODE_SHORT_BODY:
        return "short-body";
    case AKV_DECODE_PARTIAL_FIELD_HEADER:
        return "partial-field-header";
    case AKV_DECODE_FIELD_OVERRUN:
        return "field-overrun";
    case AKV_DECODE_DUPLICATE_TAG:
        return "duplicate-tag";
    case AKV_DECODE_NO_MEMORY:
        return "out-of-memory";
    }
    return "unknown";
}

const akv_field *akv_frame_get(const akv_frame *frame, uint16_t tag)
{
    for (size_t i = 0; i < frame->nfields; i++)
        if (frame->fields[i].tag == tag)
            return &frame->fields[i];
    return NULL;
}

int akv_field_u32(const akv_field *field, uint32_t *out)
{
    if (field == NULL || field->len != 4)
        return 0;
    *out = get_u32(field->value);
    return 1;
}

void akv_buf_init(akv_buf *b)
{
    memset(b, 0, sizeof(*b));
}

void akv_buf_free(akv_buf *b)
{
    if (b->data != NULL) {
        /* Requests carry digests and wrapped keys: wipe before freeing. */
        memset(b->data, 0, b->cap);
        free(b->data);
    }
    akv_buf_init(b);
}

static unsigned char *buf_reserve(akv_buf *b, size_t extra)
{
    if (b->failed)
        return NULL;
    if (extra > AKV_MAX_RESPONSE_BODY || b->len + extra > AKV_MAX_RESPONSE_BODY + AKV_FRAME_HEADER_SIZE) {
        b->failed = 1;
        return NULL;
    }
    if (b->len + extra > b->cap) {
        size_t ncap = b->cap ? b->cap : 256;
        while (ncap < b->len + extra)
            ncap *= 2;
        unsigned char *n = malloc(ncap);
        if (n == NULL) {
            b->failed = 1;
            return NULL;
        }
        if (b->data != NULL) {
            memcpy(n, b->data, b->len);
            memset(b->data, 0, b->cap);
            free(b->data);
        }
        b->data = n;
        b->cap = ncap;
    }
    unsigned char *p = b->data + b->len;
    b->len += extra;
    return p;
}

void akv_frame_begin(akv_buf *b, uint8_t op, uint32_t id)
{
    b->len = 0;
    unsigned char *p = buf_reserve(b, AKV_FRAME_HEADER_SIZE);
    if (p == NULL)
        return;
    p[0] = (unsigned char)(AKV_MAGIC >> 8);
    p[1] = (unsigned char)(AKV_MAGIC & 0xFF);
    p[2] = AKV_PROTOCOL_VERSION;
    p[3] = op;
    put_u32(p + 4, id);
    put_u32(p + 8, 0);
}

void akv_frame_put_bytes(akv_buf *b, uint16_t tag, const void *value, size_t len)
{
    unsigned char *p = buf_reserve(b, AKV_FIELD_HEADER_SIZE + len);
    if (p == NULL)
        return;
    p[0] = (unsigned char)(tag >> 8);
    p[1] = (unsigned char)tag;
    put_u32(p + 2, (uint32_t)len);
    if (len > 0)
        memcpy(p + AKV_FIELD_HEADER_SIZE, value, len);
}

void akv_frame_put_str(akv_buf *b, uint16_t tag, const char *value)
{
    akv_frame_put_bytes(b, tag, value, strlen(value));
}

void akv_frame_put_u32(akv_buf *b, uint16_t tag, uint32_t value)
{
    unsigned char v[4];
    put_u32(v, value);
    akv_frame_put_bytes(b, tag, v, sizeof(v));
}

int akv_frame_finish(akv_buf *b, size_t max_body)
{
    if (b->failed || b->len < AKV_FRAME_HEADER_SIZE)
        return 0;
    size_t body = b->len - AKV_FRAME_HEADER_SIZE;
    if (body > max_body) {
        b->failed = 1;
        return 0;
    }
    put_u32(b->data + 8, (uint32_t)body);
    return 1;
}

const char *akv_status_name(uint32_t status)
{
#define AKV_STATUS_NAME(name, code) [code] = #name,
    static const char *const names[] = {AKV_STATUS_LIST(AKV_STATUS_NAME)};
#undef AKV_STATUS_NAME
    if (status < sizeof(names) / sizeof(names[0]) && names[status] != NULL)
        return names[status];
    return "UNKNOWN_STATUS";
}
