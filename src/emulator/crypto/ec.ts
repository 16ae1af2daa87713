/**
 * ECDSA over a digest the client computed (no re-hashing), with raw r||s signatures as the
 * service returns them. Node's crypto can only sign a message it hashes itself, hence noble.
 */
import { p256, p384, p521 } from '@noble/curves/nist.js';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import type { CurveName } from '../keys/types.js';

const CURVE_IMPL = { 'P-256': p256, 'P-256K': secp256k1, 'P-384': p384, 'P-521': p521 } as const;

/** Uncompressed public point 0x04 || x || y of the private scalar `d`. */
export function publicKeyBytes(crv: CurveName, d: Uint8Array): Uint8Array {
  return CURVE_IMPL[crv].getPublicKey(d, false);
}

export function ecSignDigest(crv: CurveName, d: Uint8Array, digest: Uint8Array): Uint8Array {
  return CURVE_IMPL[crv].sign(digest, d, { prehash: false, lowS: false, format: 'compact' });
}

export function ecVerifyDigest(
  crv: CurveName,
  x: Uint8Array,
  y: Uint8Array,
  digest: Uint8Array,
  signature: Uint8Array,
): boolean {
  const publicKey = Buffer.concat([Buffer.from([4]), x, y]);
  try {
    return CURVE_IMPL[crv].verify(signature, digest, publicKey, {
      prehash: false,
      lowS: false,
      format: 'compact',
    });
  } catch {
    // A signature of the wrong length or out of range is simply not valid.
    return false;
  }
}
