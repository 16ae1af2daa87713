/*
 * Pure helpers behind signature.c: Azure algorithm names, ECDSA digest fitting and r||s -> DER,
 * and the DER AlgorithmIdentifiers X.509 signing asks for (RFC 4055 parameters for RSA-PSS).
 */
#ifndef AKV_SIGALG_H
#define AKV_SIGALG_H

#include <openssl/evp.h>
#include <stddef.h>

#define AKV_MAX_ALGORITHM_ID 96

/* 256/384/512 for SHA-256/384/512 (the digests the HSM signs), else 0. */
int akv_hsm_digest_bits(const EVP_MD *md);
/* ES256 / ES256K / ES384 / ES512 for an Azure curve name, NULL if unknown. */
const char *akv_ecdsa_alg(const char *curve);
/* Digest length the HSM expects for that curve's algorithm (32/32/48/64), 0 if unknown. */
size_t akv_ecdsa_digest_len(const char *curve);
/*
 * Fits a digest to `want` bytes as ECDSA would read it: longer digests keep their leftmost bytes
 * (the curve order is exactly 8*want bits for P-256/P-384), shorter ones are left-padded with
 * zeros, which keeps their integer value.
 */
void akv_ecdsa_fit_digest(const unsigned char *in, size_t inlen, unsigned char *out, size_t want);
/* Raw r||s (2*order_bytes) to a DER ECDSA-Sig-Value. Returns 1 on success. */
int akv_ecdsa_raw_to_der(const unsigned char *raw, size_t rawlen, size_t order_bytes, unsigned char *out,
                         size_t outsize, size_t *outlen);
/*
 * DER AlgorithmIdentifier for the signature: sha{256,384,512}WithRSAEncryption, RSASSA-PSS with
 * hash/MGF1/salt parameters, or ecdsa-with-SHA{256,384,512}. Returns its length, 0 if unsupported.
 */
size_t akv_algorithm_id(int is_rsa, int is_pss, int digest_bits, int saltlen, unsigned char *out, size_t outsize);

#endif
