/**
 * RSA-PSS verification over a given digest (Node's crypto only verifies over data it hashes
 * itself), as Azure signs: MGF1 with the message hash, salt length = hash length.
 */
import { constants, createHash, publicDecrypt, timingSafeEqual, type KeyObject } from 'node:crypto';

export type HashName = 'sha256' | 'sha384' | 'sha512';

export const HASH_LEN: Record<HashName, number> = { sha256: 32, sha384: 48, sha512: 64 };

/** EMSA-PSS-VERIFY (RFC 8017 §9.1.2) with MGF1 over the same hash and salt length = hash length. */
export function verifyPss(
  key: KeyObject,
  hash: HashName,
  mHash: Buffer,
  signature: Buffer,
): boolean {
  const modBits = key.asymmetricKeyDetails?.modulusLength ?? 0;
  let em: Buffer;
  try {
    em = publicDecrypt({ key, padding: constants.RSA_NO_PADDING }, signature);
  } catch {
    return false;
  }
  const emBits = modBits - 1;
  const emLen = Math.ceil(emBits / 8);
  if (em.length > emLen) {
    if (em[0] !== 0) return false;
    em = em.subarray(em.length - emLen);
  }
  const hLen = HASH_LEN[hash];
  const sLen = hLen;
  if (emLen < hLen + sLen + 2 || em[emLen - 1] !== 0xbc) return false;
  const maskedDb = em.subarray(0, emLen - hLen - 1);
  const h = em.subarray(emLen - hLen - 1, emLen - 1);
  const zeroBits = 8 * emLen - emBits;
  if (((maskedDb[0] ?? 0) & (0xff << (8 - zeroBits)) & 0xff) !== 0) return false;
  const dbMask = mgf1(hash, h, emLen - hLen - 1);
  const db = Buffer.alloc(maskedDb.length);
  for (let i = 0; i < db.length; i++) db[i] = (maskedDb[i] ?? 0) ^ (dbMask[i] ?? 0);
  db[0] = (db[0] ?? 0) & (0xff >> zeroBits);
  const psLen = emLen - hLen - sLen - 2;
  for (let i = 0; i < psLen; i++) if (db[i] !== 0) return false;
  if (db[psLen] !== 0x01) return false;
  const salt = db.subarray(db.length - sLen);
  const hPrime = createHash(hash).update(Buffer.alloc(8)).update(mHash).update(salt).digest();
  return timingSafeEqual(h, hPrime);
}

function mgf1(hash: HashName, seed: Buffer, length: number): Buffer {
  const out: Buffer[] = [];
  let total = 0;
  for (let counter = 0; total < length; counter++) {
    const c = Buffer.alloc(4);
    c.writeUInt32BE(counter);
    const block = createHash(hash).update(seed).update(c).digest();
    out.push(block);
    total += block.length;
  }
  return Buffer.concat(out).subarray(0, length);
}
