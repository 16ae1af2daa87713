/*
 * A stand-in for the agent: the provider tests' fake agent (provider/tests/fake_agent.c: a
 * Unix socket in a private temporary directory, the real framing) answering through answer()
 * with real keys made with OpenSSL, so the module's signatures, decryptions and key wraps can be
 * checked with OpenSSL. It is not the agent: it knows one HSM ("hsm1") with the keys below, and
 * can misbehave on purpose (fake_hsm_mode).
 */
#ifndef AKV_FAKE_HSM_H
#define AKV_FAKE_HSM_H

#include <openssl/evp.h>

enum fake_hsm_mode {
    FAKE_OK,       /* answer as an agent would */
    FAKE_SILENT,   /* read requests, never answer (timeouts) */
    FAKE_GARBAGE,  /* answer with bytes that are not a frame */
    FAKE_THROTTLED /* private-key operations fail with THROTTLED, as the HSM's 429 would */
};

/* Keys of hsm1: "rsa2048" (sign, verify, decrypt), "ec256" (sign, verify), "ec384" (sign),
 * "rsanosign" (decrypt only), "aes256" (oct: wrapKey, unwrapKey: A256KW). rsa2048 also wraps and
 * unwraps (RSA1_5, RSA-OAEP, RSA-OAEP-256). */
typedef struct {
    const char *name;
    EVP_PKEY *pkey; /* NULL for aes256 */
} fake_key;

/* Starts the server; returns the socket path (static storage) or NULL. */
const char *fake_hsm_start(void);
void fake_hsm_stop(void);
void fake_hsm_set_mode(int mode);
/* Requests received per op code since the last reset (for "nothing was sent" checks). */
int fake_hsm_requests(int op);
void fake_hsm_reset_counts(void);
/* The last ALG a SIGN / DECRYPT request carried. */
const char *fake_hsm_last_alg(void);
/* The private key of a fake HSM key (for checks with OpenSSL); NULL when unknown. */
EVP_PKEY *fake_hsm_key(const char *name);
/* Rotates a key: its next DESCRIBE returns a new version with a new key pair; the version before
 * stays usable by its version id (one back). */
void fake_hsm_rotate(const char *name);
/* The key of the version before the last rotation (NULL if none). */
EVP_PKEY *fake_hsm_previous_key(const char *name);
/* aes256's 32 key bytes (WRAP / UNWRAP with A256KW use them). */
const unsigned char *fake_hsm_aes_key(void);

#endif
