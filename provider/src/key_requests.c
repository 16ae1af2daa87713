/*
 * The agent round trips that create and use key objects: DESCRIBE (and its short reuse for the
 * decoder), SIGN / DECRYPT / WRAP / UNWRAP, LIST; agent statuses mapped to error reasons.
 */
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/params.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "agent_async.h"
#include "akv.h"

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *op_name(int op)
{
    switch (op) {
    case AKV_OP_DESCRIBE:
        return "describe";
    case AKV_OP_SIGN:
        return "sign";
    case AKV_OP_DECRYPT:
        return "decrypt";
    case AKV_OP_WRAP:
        return "wrap";
    case AKV_OP_UNWRAP:
        return "unwrap";
    case AKV_OP_LIST:
        return "list";
    default:
        return "request";
    }
}

static int reason_for_status(uint32_t status)
{
    switch (status) {
    case AKV_STATUS_BAD_URI:
        return AKV_R_BAD_URI;
    case AKV_STATUS_KEY_NOT_FOUND:
        return AKV_R_KEY_NOT_FOUND;
    case AKV_STATUS_FORBIDDEN:
        return AKV_R_OPERATION_NOT_PERMITTED;
    case AKV_STATUS_UNAUTHORIZED:
        return AKV_R_UNAUTHORIZED;
    case AKV_STATUS_THROTTLED:
        return AKV_R_HSM_THROTTLED;
    case AKV_STATUS_UNAVAILABLE:
        return AKV_R_HSM_UNAVAILABLE;
    case AKV_STATUS_TIMEOUT:
        return AKV_R_AGENT_TIMEOUT;
    case AKV_STATUS_UNSUPPORTED:
        return AKV_R_UNSUPPORTED;
    case AKV_STATUS_KEY_DISABLED:
        return AKV_R_KEY_DISABLED;
    case AKV_STATUS_BAD_PARAMETER:
        return AKV_R_BAD_PARAMETER;
    case AKV_STATUS_BAD_REQUEST:
        return AKV_R_AGENT_PROTOCOL;
    case AKV_STATUS_ACCESS_DENIED:
        return AKV_R_ACCESS_DENIED;
    default:
        return AKV_R_AGENT_INTERNAL;
    }
}

static int reason_for_call(int rc)
{
    switch (rc) {
    case AKV_CALL_UNREACHABLE:
        return AKV_R_AGENT_UNREACHABLE;
    case AKV_CALL_IO:
        return AKV_R_AGENT_IO;
    case AKV_CALL_TIMEOUT:
        return AKV_R_AGENT_TIMEOUT;
    case AKV_CALL_PROTOCOL:
        return AKV_R_AGENT_PROTOCOL;
    default:
        return AKV_R_INTERNAL;
    }
}

/*
 * One round trip (inside an OpenSSL async job it pauses the job instead of blocking: agent_async.c).
 * On success (transport OK and STATUS = OK) returns 1 with *resp filled;
 * otherwise raises an error as "<operation>: <what failed>; hint: <what to do>" (the agent's
 * MESSAGE names the key), logs it with the key, and returns 0. The error is recorded at the
 * caller's place in the code (the round_trip macro).
 */
static int round_trip_at(AKV_PROV_CTX *prov, akv_buf *req, int op, const char *what, akv_response *resp,
                         const char *file, int line, const char *func)
{
    char err[512];
    long long t0 = now_ms();
    int rc = akv_agent_call_nonblocking(prov->agent, req, resp, err, sizeof(err));
    long long ms = now_ms() - t0;
    if (rc != AKV_CALL_OK) {
        akv_log(AKV_LOG_ERROR, "op=%s key=%s result=%s ms=%lld: %s", op_name(op), what, "transport-error", ms, err);
        akv_raise(prov, file, line, func, reason_for_call(rc), "%s: %s", op_name(op), err);
        return 0;
    }
    if (resp->status != AKV_STATUS_OK) {
        uint32_t retries = 0;
        akv_field_u32(akv_frame_get(&resp->frame, AKV_TAG_RETRIES), &retries);
        const char *msg = resp->message != NULL ? resp->message : "(the agent gave no message)";
        char extra[64] = "";
        if (retries > 0 && strstr(msg, "retr") == NULL)
            snprintf(extra, sizeof(extra), " (retried %u times)", retries);
        const char *hint_sep = resp->hint != NULL ? "; hint: " : "";
        const char *hint = resp->hint != NULL ? resp->hint : "";
        akv_log(AKV_LOG_WARN, "op=%s key=%s result=%s ms=%lld: %s%s%s%s", op_name(op), what,
                akv_status_name(resp->status), ms, msg, extra, hint_sep, hint);
        akv_raise(prov, file, line, func, reason_for_status(resp->status), "%s: %s%s%s%s", op_name(op), msg, extra,
                  hint_sep, hint);
        akv_response_free(resp);
        return 0;
    }
    akv_log(AKV_LOG_INFO, "op=%s key=%s result=ok ms=%lld", op_name(op), what, ms);
    return 1;
}
#define round_trip(prov, req, op, what, resp)                                                                          \
    round_trip_at((prov), (req), (op), (what), (resp), OPENSSL_FILE, OPENSSL_LINE, OPENSSL_FUNC)

static char *field_strdup(const akv_field *f)
{
    if (f == NULL)
        return NULL;
    char *s = malloc((size_t)f->len + 1);
    if (s == NULL)
        return NULL;
    memcpy(s, f->value, f->len);
    s[f->len] = '\0';
    return s;
}

/*
 * The URI operations use: the loaded key is the version describe saw, so that a rotation between
 * load and use can never make the HSM sign with a key whose public half we do not hold (a TLS
 * server would then present a certificate that no longer matches its signatures).
 */
static char *pin_uri(const char *uri, const char *version)
{
    int akv_form = strncasecmp(uri, "akv:", 4) == 0;
    int plain = version != NULL && *version != '\0';
    for (const char *c = version; plain && *c != '\0'; c++)
        plain = (*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z');
    if (!plain || strstr(uri, "version=") != NULL)
        return strdup(uri);
    size_t len = strlen(uri) + strlen(version) + 16;
    char *pinned = malloc(len);
    if (pinned != NULL)
        snprintf(pinned, len, "%s%s%s", uri, akv_form ? ",version=" : "?version=", version);
    return pinned;
}

/* Azure's name for an OpenSSL EC group, "" for a group Azure does not name. */
static const char *azure_curve_name(const char *group)
{
    return strcmp(group, "prime256v1") == 0  ? "P-256"
           : strcmp(group, "secp256k1") == 0 ? "P-256K"
           : strcmp(group, "secp384r1") == 0 ? "P-384"
           : strcmp(group, "secp521r1") == 0 ? "P-521"
                                             : "";
}

/*
 * The public half of an RSA or EC key from the answer's PUBLIC_KEY (a SubjectPublicKeyInfo of the
 * key's type), and from it what the answer left out: the size, the curve.
 */
static int take_public_key(AKV_PROV_CTX *prov, const char *uri, const akv_frame *f, uint32_t type, AKV_KEY *key)
{
    const akv_field *spki = akv_frame_get(f, AKV_TAG_PUBLIC_KEY);
    const unsigned char *p = spki ? spki->value : NULL;
    if (p != NULL)
        key->pub = d2i_PUBKEY_ex(NULL, &p, (long)spki->len, prov->pub_libctx, NULL);
    if (key->pub == NULL || !EVP_PKEY_is_a(key->pub, type == AKV_KEY_TYPE_RSA ? "RSA" : "EC")) {
        AKV_RAISE(prov, AKV_R_AGENT_PROTOCOL,
                  "describe %s: the agent's PUBLIC_KEY is missing or is not a %s SubjectPublicKeyInfo", uri,
                  type == AKV_KEY_TYPE_RSA ? "RSA" : "EC");
        return 0;
    }
    if (key->bits == 0)
        key->bits = (unsigned)EVP_PKEY_get_bits(key->pub);
    if (type == AKV_KEY_TYPE_EC && key->curve[0] == '\0') {
        char group[64];
        if (EVP_PKEY_get_utf8_string_param(key->pub, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group), NULL))
            snprintf(key->curve, sizeof(key->curve), "%s", azure_curve_name(group));
    }
    return 1;
}

AKV_KEY *akv_describe(AKV_PROV_CTX *prov, const char *uri)
{
    akv_buf req;
    akv_response resp;
    AKV_KEY *key = NULL;
    uint32_t type = 0, bits = 0;

    akv_buf_init(&req);
    akv_frame_begin(&req, AKV_OP_DESCRIBE, 0);
    akv_frame_put_str(&req, AKV_TAG_URI, uri);
    akv_frame_put_u32(&req, AKV_TAG_CLIENT_PID, (uint32_t)getpid());
    if (!akv_frame_finish(&req, AKV_MAX_REQUEST_BODY)) {
        akv_buf_free(&req);
        AKV_RAISE(prov, AKV_R_BAD_URI, "key URI is too long (%zu bytes)", strlen(uri));
        return NULL;
    }
    int ok = round_trip(prov, &req, AKV_OP_DESCRIBE, uri, &resp);
    akv_buf_free(&req);
    if (!ok)
        return NULL;

    const akv_frame *f = &resp.frame;
    if (!akv_field_u32(akv_frame_get(f, AKV_TAG_KEY_TYPE), &type) ||
        (type != AKV_KEY_TYPE_RSA && type != AKV_KEY_TYPE_EC && type != AKV_KEY_TYPE_AES)) {
        AKV_RAISE(prov, AKV_R_AGENT_PROTOCOL, "describe %s: the agent's answer has no usable KEY_TYPE", uri);
        goto err;
    }
    akv_field_u32(akv_frame_get(f, AKV_TAG_KEY_BITS), &bits);
    key = akv_key_new(prov, (int)type);
    if (key == NULL || (key->uri = strdup(uri)) == NULL)
        goto nomem;
    key->bits = bits;
    key->version = field_strdup(akv_frame_get(f, AKV_TAG_KEY_VERSION));
    key->key_ops = field_strdup(akv_frame_get(f, AKV_TAG_KEY_OPS));
    if ((key->op_uri = pin_uri(uri, key->version)) == NULL)
        goto nomem;
    const akv_field *curve = akv_frame_get(f, AKV_TAG_CURVE);
    if (curve != NULL && curve->len < sizeof(key->curve)) {
        memcpy(key->curve, curve->value, curve->len);
        key->curve[curve->len] = '\0';
    }
    if (type != AKV_KEY_TYPE_AES) {
        if (!take_public_key(prov, uri, f, type, key))
            goto err;
    } else if (key->bits != 128 && key->bits != 192 && key->bits != 256) {
        AKV_RAISE(prov, AKV_R_AGENT_PROTOCOL, "describe %s: AES key size %u is not 128, 192 or 256", uri, key->bits);
        goto err;
    }
    akv_log(AKV_LOG_DEBUG, "described %s: type=%s bits=%u curve=%s version=%s ops=%s", uri, akv_key_type_name(key),
            key->bits, key->curve, key->version ? key->version : "-", key->key_ops ? key->key_ops : "-");
    akv_response_free(&resp);
    return key;
nomem:
    AKV_RAISE(prov, AKV_R_INTERNAL, "out of memory");
err:
    akv_key_free(key);
    akv_response_free(&resp);
    return NULL;
}

#define AKV_RECENT_MS 2000

AKV_KEY *akv_describe_recent(AKV_PROV_CTX *prov, const char *uri)
{
    long long now = now_ms();
    pthread_mutex_lock(&prov->recent_lock);
    if (prov->recent_key != NULL && strcmp(prov->recent_uri, uri) == 0 && now - prov->recent_at_ms < AKV_RECENT_MS) {
        AKV_KEY *key = akv_key_ref(prov->recent_key);
        pthread_mutex_unlock(&prov->recent_lock);
        return key;
    }
    pthread_mutex_unlock(&prov->recent_lock);
    AKV_KEY *key = akv_describe(prov, uri);
    char *copy = key != NULL ? strdup(uri) : NULL;
    if (copy == NULL)
        return key;
    pthread_mutex_lock(&prov->recent_lock);
    akv_key_free(prov->recent_key);
    free(prov->recent_uri);
    prov->recent_key = akv_key_ref(key);
    prov->recent_uri = copy;
    prov->recent_at_ms = now_ms();
    pthread_mutex_unlock(&prov->recent_lock);
    return key;
}

void akv_recent_clear(AKV_PROV_CTX *prov)
{
    pthread_mutex_lock(&prov->recent_lock);
    akv_key_free(prov->recent_key);
    free(prov->recent_uri);
    prov->recent_key = NULL;
    prov->recent_uri = NULL;
    pthread_mutex_unlock(&prov->recent_lock);
}

int akv_key_operation(AKV_PROV_CTX *prov, const AKV_KEY *key, int op, const char *alg, const unsigned char *in,
                      size_t inlen, unsigned char **out, size_t *outlen)
{
    akv_buf req;
    akv_response resp;

    *out = NULL;
    *outlen = 0;
    if (key->uri == NULL) {
        AKV_RAISE(prov, AKV_R_NO_PRIVATE_KEY,
                  "%s: this key holds only a public key (it did not come from an akv URI or key reference)",
                  op_name(op));
        return 0;
    }
    akv_buf_init(&req);
    akv_frame_begin(&req, (uint8_t)op, 0);
    akv_frame_put_str(&req, AKV_TAG_URI, key->op_uri != NULL ? key->op_uri : key->uri);
    akv_frame_put_str(&req, AKV_TAG_ALG, alg);
    akv_frame_put_bytes(&req, AKV_TAG_INPUT, in, inlen);
    akv_frame_put_u32(&req, AKV_TAG_CLIENT_PID, (uint32_t)getpid());
    if (!akv_frame_finish(&req, AKV_MAX_REQUEST_BODY)) {
        akv_buf_free(&req);
        AKV_RAISE(prov, AKV_R_INVALID_ARGUMENT, "%s %s: input of %zu bytes is too large for one request", op_name(op),
                  key->uri, inlen);
        return 0;
    }
    char what[600];
    snprintf(what, sizeof(what), "%s alg=%s", key->uri, alg);
    int ok = round_trip(prov, &req, op, what, &resp);
    akv_buf_free(&req);
    if (!ok)
        return 0;
    const akv_field *o = akv_frame_get(&resp.frame, AKV_TAG_OUTPUT);
    if (o == NULL) {
        AKV_RAISE(prov, AKV_R_AGENT_PROTOCOL, "%s %s: the agent's answer has no OUTPUT field", op_name(op), key->uri);
        akv_response_free(&resp);
        return 0;
    }
    *out = malloc(o->len > 0 ? o->len : 1);
    if (*out == NULL) {
        akv_response_free(&resp);
        AKV_RAISE(prov, AKV_R_INTERNAL, "out of memory");
        return 0;
    }
    memcpy(*out, o->value, o->len);
    *outlen = o->len;
    akv_response_free(&resp);
    return 1;
}

int akv_key_operation_into(AKV_PROV_CTX *prov, const AKV_KEY *key, int op, const char *alg, const unsigned char *in,
                           size_t inlen, unsigned char *out, size_t *outlen, size_t outsize)
{
    unsigned char *res = NULL;
    size_t reslen = 0;
    if (!akv_key_operation(prov, key, op, alg, in, inlen, &res, &reslen))
        return 0;
    int ok = reslen <= outsize;
    if (ok) {
        memcpy(out, res, reslen);
        *outlen = reslen;
    } else {
        AKV_RAISE(prov, AKV_R_INVALID_ARGUMENT, "output buffer of %zu bytes is too small for %zu bytes", outsize,
                  reslen);
    }
    akv_secure_free(res, reslen);
    return ok;
}

void akv_free_names(char **names, int n)
{
    if (names == NULL)
        return;
    for (int i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

int akv_list_keys(AKV_PROV_CTX *prov, const char *vault, const char *vault_type, char ***names)
{
    akv_buf req;
    akv_response resp;
    *names = NULL;
    akv_buf_init(&req);
    akv_frame_begin(&req, AKV_OP_LIST, 0);
    akv_frame_put_str(&req, AKV_TAG_VAULT_NAME, vault);
    akv_frame_put_str(&req, AKV_TAG_VAULT_TYPE, vault_type);
    akv_frame_put_u32(&req, AKV_TAG_CLIENT_PID, (uint32_t)getpid());
    if (!akv_frame_finish(&req, AKV_MAX_REQUEST_BODY)) {
        akv_buf_free(&req);
        AKV_RAISE(prov, AKV_R_BAD_URI, "vault name is too long");
        return -1;
    }
    int ok = round_trip(prov, &req, AKV_OP_LIST, vault, &resp);
    akv_buf_free(&req);
    if (!ok)
        return -1;
    int n = 0;
    char **list = calloc(resp.frame.nfields + 1, sizeof(char *));
    if (list == NULL)
        goto nomem;
    for (size_t i = 0; i < resp.frame.nfields; i++) {
        if (resp.frame.fields[i].tag != AKV_TAG_KEY_NAME)
            continue;
        if ((list[n] = field_strdup(&resp.frame.fields[i])) == NULL)
            goto nomem;
        n++;
    }
    akv_response_free(&resp);
    *names = list;
    return n;
nomem:
    akv_free_names(list, n);
    akv_response_free(&resp);
    AKV_RAISE(prov, AKV_R_INTERNAL, "out of memory");
    return -1;
}
