/**
 * ECDSA over a digest someone else computed, on the curves Azure offers, through @noble/curves
 * (Node's crypto only signs and verifies data it hashes itself). Signatures come in two forms:
 * Azure's raw r||s ("compact") and the DER SEQUENCE { INTEGER r, INTEGER s } OpenSSL reads and
 * writes. DER is parsed strictly, as OpenSSL does: a non-minimal or negative INTEGER, a long-form
 * length that fits the short form, or trailing bytes make the signature invalid.
 */
import { p256, p384, p521 } from '@noble/curves/nist.js';
import { secp256k1 } from '@noble/curves/secp256k1.js';

/** The curve names Azure uses (JWK `crv`). */
export type CurveName = 'P-256' | 'P-256K' | 'P-384' | 'P-521';

const CURVE: Record<CurveName, typeof p256> = {
  'P-256': p256,
  'P-256K': secp256k1,
  'P-384': p384,
  'P-521': p521,
};

/** Bytes of r (and of s) in a raw signature on the curve. */
const scalarBytes = (curve: CurveName): number => CURVE[curve].Point.Fn.BYTES;

/** Azure signs the digest as given: no hashing, and high s values are valid (as in OpenSSL). */
const AS_GIVEN = { prehash: false, lowS: false } as const;

/** Uncompressed public point 0x04 || x || y of the private scalar `d`. */
export function ecPublicPoint(curve: CurveName, d: Uint8Array): Uint8Array {
  return CURVE[curve].getPublicKey(d, false);
}

/** A raw r||s signature of `digest` with the private scalar `d`. */
export function ecdsaSignDigest(curve: CurveName, d: Uint8Array, digest: Uint8Array): Uint8Array {
  return CURVE[curve].sign(digest, d, { ...AS_GIVEN, format: 'compact' });
}

/**
 * Whether `signature` (raw r||s, or strict DER) is a signature of `digest` by the public point
 * `point` (0x04 || x || y). Malformed input is "not valid", never an exception.
 */
export function ecdsaVerifyDigest(
  curve: CurveName,
  point: Uint8Array,
  digest: Uint8Array,
  signature: Uint8Array,
  formats: readonly ('compact' | 'der')[] = ['compact', 'der'],
): boolean {
  const impl = CURVE[curve];
  return formats.some((format) => {
    if (format === 'compact' && signature.length !== 2 * scalarBytes(curve)) return false;
    try {
      return impl.verify(signature, digest, point, { ...AS_GIVEN, format });
    } catch {
      return false;
    }
  });
}

/** Raw r||s → DER (what `openssl dgst -verify` reads). Throws when r or s is out of range. */
export function ecdsaRawToDer(curve: CurveName, raw: Uint8Array): Buffer {
  return Buffer.from(CURVE[curve].Signature.fromBytes(raw, 'compact').toBytes('der'));
}

/** Strict DER → raw r||s; undefined when it is not a well-formed DER signature on the curve. */
export function ecdsaDerToRaw(curve: CurveName, der: Uint8Array): Buffer | undefined {
  try {
    return Buffer.from(CURVE[curve].Signature.fromBytes(der, 'der').toBytes('compact'));
  } catch {
    return undefined;
  }
}
