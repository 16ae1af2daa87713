/*
 * The module's round trips to the agent (docs/protocol.md): LIST_VAULTS (the tokens), LIST (a
 * token's keys), DESCRIBE (a key's public half, operations and certificate), and SIGN / DECRYPT /
 * UNWRAP. Every failure is reported once as "<operation>: <what failed>; hint: <what to do>"
 * (report.c) and mapped to the CKR a PKCS#11 caller can act on. Called without p11.lock held.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "p11.h"

static const char *op_name(int op)
{
    switch (op) {
    case AKV_OP_LIST_VAULTS:
        return "list tokens";
    case AKV_OP_LIST:
        return "list keys";
    case AKV_OP_DESCRIBE:
        return "describe";
    case AKV_OP_SIGN:
        return "sign";
    case AKV_OP_DECRYPT:
        return "decrypt";
    case AKV_OP_UNWRAP:
        return "unwrap";
    case AKV_OP_WRAP:
        return "wrap";
    default:
        return "request";
    }
}

/* What a caller can do about each agent status, in PKCS#11's words. */
static CK_RV rv_for_status(uint32_t status)
{
    switch (status) {
    case AKV_STATUS_KEY_NOT_FOUND:
        return CKR_KEY_HANDLE_INVALID;
    case AKV_STATUS_FORBIDDEN:
        return CKR_KEY_FUNCTION_NOT_PERMITTED;
    case AKV_STATUS_UNSUPPORTED:
        return CKR_MECHANISM_INVALID;
    case AKV_STATUS_BAD_PARAMETER:
        return CKR_DATA_INVALID;
    case AKV_STATUS_KEY_DISABLED:
    case AKV_STATUS_ACCESS_DENIED:
        return CKR_KEY_FUNCTION_NOT_PERMITTED;
    case AKV_STATUS_TIMEOUT:
    case AKV_STATUS_THROTTLED:
    case AKV_STATUS_UNAVAILABLE:
    case AKV_STATUS_UNAUTHORIZED:
        return CKR_DEVICE_ERROR;
    default:
        return CKR_GENERAL_ERROR;
    }
}

/* CKR of a round trip to an agent that is not there, when the caller asked to hear it quietly. */
#define P11_AGENT_ABSENT CKR_VENDOR_DEFINED

/* One round trip; CKR_OK with *resp holding a STATUS = OK answer, else the CKR (reported). */
static CK_RV round_trip_quiet(akv_buf *req, int op, const char *what, akv_response *resp, int quiet_if_absent)
{
    char err[600];
    if (req->failed) {
        p11_report("%s %s: the request is too large for the agent protocol", op_name(op), what);
        return CKR_ARGUMENTS_BAD;
    }
    int rc = akv_agent_call(p11.agent, req, resp, err, sizeof(err));
    if (rc == AKV_CALL_UNREACHABLE && quiet_if_absent)
        return P11_AGENT_ABSENT;
    if (rc != AKV_CALL_OK) {
        p11_report("%s%s%s: %s", op_name(op), *what != '\0' ? " " : "", what, err);
        return rc == AKV_CALL_NO_MEMORY ? CKR_HOST_MEMORY : CKR_DEVICE_ERROR;
    }
    if (resp->status != AKV_STATUS_OK) {
        p11_report("%s: %s%s%s", op_name(op), resp->message != NULL ? resp->message : "(the agent gave no message)",
                   resp->hint != NULL ? "; hint: " : "", resp->hint != NULL ? resp->hint : "");
        CK_RV rv = rv_for_status(resp->status);
        akv_response_free(resp);
        return rv;
    }
    return CKR_OK;
}

static CK_RV round_trip(akv_buf *req, int op, const char *what, akv_response *resp)
{
    return round_trip_quiet(req, op, what, resp, 0);
}

static void begin(akv_buf *req, int op)
{
    akv_buf_init(req);
    akv_frame_begin(req, (uint8_t)op, 0);
    akv_frame_put_u32(req, AKV_TAG_CLIENT_PID, (uint32_t)getpid());
}

void p11_free_names(char **names, size_t count)
{
    for (size_t i = 0; i < count; i++)
        free(names[i]);
    free(names);
}

static int push_name(char ***names, size_t *count, const unsigned char *p, size_t len)
{
    char **grown = realloc(*names, (*count + 1) * sizeof(char *));
    if (grown == NULL)
        return 0;
    *names = grown;
    char *s = malloc(len + 1);
    if (s == NULL)
        return 0;
    memcpy(s, p, len);
    s[len] = '\0';
    grown[(*count)++] = s;
    return 1;
}

CK_RV p11_agent_list_vaults(char ***names, size_t *count)
{
    akv_buf req;
    akv_response resp;
    *names = NULL;
    *count = 0;
    begin(&req, AKV_OP_LIST_VAULTS);
    akv_frame_finish(&req, AKV_MAX_REQUEST_BODY);
    /* Listing tokens is what every program that loads all p11-kit modules does (GnuTLS looking for
     * its trust store, NSS): with no agent on the default socket, that is "no token", not an
     * error on everybody's stderr. An agent the user named (AKV_AGENT_SOCKET) must answer. */
    CK_RV rv = round_trip_quiet(&req, AKV_OP_LIST_VAULTS, "", &resp, !p11.explicit_socket);
    akv_buf_free(&req);
    if (rv == P11_AGENT_ABSENT)
        return CKR_OK;
    if (rv != CKR_OK)
        return rv;
    const akv_field *f = akv_frame_get(&resp.frame, AKV_TAG_VAULT_NAMES);
    for (size_t start = 0, i = 0; f != NULL && i <= f->len; i++) {
        if (i == f->len || f->value[i] == ',') {
            if (i > start && !push_name(names, count, f->value + start, i - start)) {
                akv_response_free(&resp);
                p11_free_names(*names, *count);
                return CKR_HOST_MEMORY;
            }
            start = i + 1;
        }
    }
    akv_response_free(&resp);
    return CKR_OK;
}

CK_RV p11_agent_list_keys(const char *hsm, char ***names, size_t *count)
{
    akv_buf req;
    akv_response resp;
    *names = NULL;
    *count = 0;
    begin(&req, AKV_OP_LIST);
    akv_frame_put_str(&req, AKV_TAG_VAULT_NAME, hsm);
    akv_frame_put_str(&req, AKV_TAG_VAULT_TYPE, "managedhsm");
    akv_frame_finish(&req, AKV_MAX_REQUEST_BODY);
    CK_RV rv = round_trip(&req, AKV_OP_LIST, hsm, &resp);
    akv_buf_free(&req);
    if (rv != CKR_OK)
        return rv;
    for (size_t i = 0; i < resp.frame.nfields; i++) {
        const akv_field *f = &resp.frame.fields[i];
        if (f->tag == AKV_TAG_KEY_NAME && !push_name(names, count, f->value, f->len)) {
            akv_response_free(&resp);
            p11_free_names(*names, *count);
            return CKR_HOST_MEMORY;
        }
    }
    akv_response_free(&resp);
    return CKR_OK;
}

CK_RV p11_agent_describe(const char *hsm, const char *name, const char *version, p11_key **out)
{
    char uri[512];
    if (version != NULL)
        snprintf(uri, sizeof(uri), "managedhsm:%s:%s?version=%s", hsm, name, version);
    else
        snprintf(uri, sizeof(uri), "managedhsm:%s:%s", hsm, name);
    akv_buf req;
    akv_response resp;
    begin(&req, AKV_OP_DESCRIBE);
    akv_frame_put_str(&req, AKV_TAG_URI, uri);
    akv_frame_finish(&req, AKV_MAX_REQUEST_BODY);
    CK_RV rv = round_trip(&req, AKV_OP_DESCRIBE, uri, &resp);
    akv_buf_free(&req);
    if (rv != CKR_OK)
        return rv;
    rv = p11_key_from_description(hsm, name, &resp.frame, out);
    akv_response_free(&resp);
    return rv;
}

CK_RV p11_agent_private(int op, const p11_key *key, const char *alg, const unsigned char *in, size_t in_len,
                        unsigned char **out, size_t *out_len)
{
    akv_buf req;
    akv_response resp;
    *out = NULL;
    *out_len = 0;
    if (in_len > P11_MAX_INPUT) {
        p11_report("%s %s: the input is %zu bytes, more than any HSM key operation takes (%d)", op_name(op), key->uri,
                   in_len, P11_MAX_INPUT);
        return CKR_DATA_LEN_RANGE;
    }
    begin(&req, op);
    akv_frame_put_str(&req, AKV_TAG_URI, key->uri);
    akv_frame_put_str(&req, AKV_TAG_ALG, alg);
    akv_frame_put_bytes(&req, AKV_TAG_INPUT, in, in_len);
    akv_frame_finish(&req, AKV_MAX_REQUEST_BODY);
    CK_RV rv = round_trip(&req, op, key->uri, &resp);
    akv_buf_free(&req);
    if (rv != CKR_OK)
        return rv;
    const akv_field *f = akv_frame_get(&resp.frame, AKV_TAG_OUTPUT);
    if (f == NULL) {
        p11_report("%s %s: the agent's answer has no OUTPUT", op_name(op), key->uri);
        akv_response_free(&resp);
        return CKR_DEVICE_ERROR;
    }
    *out = malloc(f->len > 0 ? f->len : 1);
    if (*out == NULL) {
        akv_response_free(&resp);
        return CKR_HOST_MEMORY;
    }
    memcpy(*out, f->value, f->len);
    *out_len = f->len;
    akv_response_free(&resp);
    return CKR_OK;
}
