/**
 * RSA encryption as Managed HSM does it: PKCS#1 v1.5 and OAEP (SHA-1, SHA-256). Node's PKCS#1
 * v1.5 private decryption is disabled (CVE-2023-46809), so that one is built on the raw RSA
 * operation with a constant-time unpadding. (Signatures: src/crypto/rsa-signature.ts.)
 */
import { constants, privateDecrypt, publicEncrypt, type KeyObject } from 'node:crypto';
import { badParameter } from '../errors.js';

function modulusBytes(key: KeyObject): number {
  const bits = key.asymmetricKeyDetails?.modulusLength;
  if (!bits) throw new Error('not an RSA key');
  return Math.ceil(bits / 8);
}

/** The raw private operation m^d mod n on a k-byte block. */
function rawPrivate(key: KeyObject, block: Buffer): Buffer {
  return privateDecrypt({ key, padding: constants.RSA_NO_PADDING }, block);
}

export type RsaEncryptionAlg = 'RSA1_5' | 'RSA-OAEP' | 'RSA-OAEP-256';

export function rsaEncrypt(key: KeyObject, alg: RsaEncryptionAlg, plaintext: Buffer): Buffer {
  const k = modulusBytes(key);
  const overhead = alg === 'RSA1_5' ? 11 : alg === 'RSA-OAEP' ? 42 : 66;
  if (plaintext.length > k - overhead) {
    throw badParameter(
      `The plaintext is ${plaintext.length} bytes; ${alg} with this ${k * 8}-bit key takes at most ${k - overhead}`,
    );
  }
  if (alg === 'RSA1_5')
    return publicEncrypt({ key, padding: constants.RSA_PKCS1_PADDING }, plaintext);
  return publicEncrypt(
    {
      key,
      padding: constants.RSA_PKCS1_OAEP_PADDING,
      oaepHash: alg === 'RSA-OAEP' ? 'sha1' : 'sha256',
    },
    plaintext,
  );
}

export function rsaDecrypt(key: KeyObject, alg: RsaEncryptionAlg, ciphertext: Buffer): Buffer {
  const k = modulusBytes(key);
  if (ciphertext.length !== k) {
    throw badParameter(
      `The ciphertext is ${ciphertext.length} bytes; this ${k * 8}-bit key needs exactly ${k}`,
    );
  }
  if (alg === 'RSA1_5') {
    let block: Buffer | undefined;
    try {
      block = rawPrivate(key, ciphertext);
    } catch {
      block = undefined; // not below the modulus
    }
    const plaintext = block ? unpadPkcs1Type2(block) : undefined;
    if (!plaintext)
      throw badParameter('Decryption failed: the ciphertext is not valid for this key');
    return plaintext;
  }
  try {
    return privateDecrypt(
      {
        key,
        padding: constants.RSA_PKCS1_OAEP_PADDING,
        oaepHash: alg === 'RSA-OAEP' ? 'sha1' : 'sha256',
      },
      ciphertext,
    );
  } catch {
    throw badParameter('Decryption failed: the ciphertext is not valid for this key');
  }
}

/**
 * Removes PKCS#1 v1.5 encryption padding (0x00 0x02 PS 0x00 M, PS at least 8 non-zero bytes)
 * scanning the whole block with no data-dependent branch, so the time taken does not tell which
 * check failed (the Marvin attack's oracle).
 */
export function unpadPkcs1Type2(block: Buffer): Buffer | undefined {
  // readUInt8 rather than block[i]: a number for certain (it throws out of range), no branch.
  let bad = block.readUInt8(0) | (block.readUInt8(1) ^ 0x02);
  let found = 0;
  let separator = 0;
  for (let i = 2; i < block.length; i++) {
    const isZero = ((block.readUInt8(i) - 1) >>> 8) & 1;
    const first = isZero & (found ^ 1);
    separator |= -first & i;
    found |= isZero;
  }
  bad |= found ^ 1;
  bad |= ((separator - 10) >>> 31) & 1; // separator < 10: fewer than 8 padding bytes
  return bad === 0 ? block.subarray(separator + 1) : undefined;
}
