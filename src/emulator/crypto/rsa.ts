/**
 * RSA as Managed HSM does it over a client-supplied digest: PKCS#1 v1.5 signatures with the
 * DigestInfo built here, PSS with salt length = hash length (RFC 8017 §9.1), and decryption with
 * PKCS#1 v1.5 / OAEP. Node's sign() hashes its input again and its PKCS#1 v1.5 decryption is
 * disabled (CVE-2023-46809), so both are built on the raw RSA operation.
 */
import {
  constants,
  createHash,
  privateDecrypt,
  privateEncrypt,
  publicDecrypt,
  publicEncrypt,
  randomBytes,
  timingSafeEqual,
  type KeyObject,
} from 'node:crypto';
import { badParameter } from '../errors.js';

export type HashName = 'sha1' | 'sha256' | 'sha384' | 'sha512';

/** DER DigestInfo prefixes (RFC 8017 §9.2 note 1). */
const DIGEST_INFO_PREFIX: Record<'sha256' | 'sha384' | 'sha512', Buffer> = {
  sha256: Buffer.from('3031300d060960864801650304020105000420', 'hex'),
  sha384: Buffer.from('3041300d060960864801650304020205000430', 'hex'),
  sha512: Buffer.from('3051300d060960864801650304020305000440', 'hex'),
};

const HASH_LENGTH: Record<HashName, number> = { sha1: 20, sha256: 32, sha384: 48, sha512: 64 };

function modulusBits(key: KeyObject): number {
  const bits = key.asymmetricKeyDetails?.modulusLength;
  if (!bits) throw new Error('not an RSA key');
  return bits;
}

function modulusBytes(key: KeyObject): number {
  return Math.ceil(modulusBits(key) / 8);
}

/** The raw private operation m^d mod n on a k-byte block. */
function rawPrivate(key: KeyObject, block: Buffer): Buffer {
  return privateDecrypt({ key, padding: constants.RSA_NO_PADDING }, block);
}

/** The raw public operation s^e mod n; undefined when the input is not below the modulus. */
function rawPublic(key: KeyObject, block: Buffer): Buffer | undefined {
  try {
    return publicEncrypt({ key, padding: constants.RSA_NO_PADDING }, block);
  } catch {
    return undefined;
  }
}

export function signPkcs1(
  key: KeyObject,
  hash: 'sha256' | 'sha384' | 'sha512',
  digest: Buffer,
): Buffer {
  return privateEncrypt(
    { key, padding: constants.RSA_PKCS1_PADDING },
    Buffer.concat([DIGEST_INFO_PREFIX[hash], digest]),
  );
}

export function verifyPkcs1(
  key: KeyObject,
  hash: 'sha256' | 'sha384' | 'sha512',
  digest: Buffer,
  signature: Buffer,
): boolean {
  if (signature.length !== modulusBytes(key)) return false;
  let recovered: Buffer;
  try {
    recovered = publicDecrypt({ key, padding: constants.RSA_PKCS1_PADDING }, signature);
  } catch {
    return false;
  }
  const expected = Buffer.concat([DIGEST_INFO_PREFIX[hash], digest]);
  return recovered.length === expected.length && timingSafeEqual(recovered, expected);
}

function mgf1(hash: HashName, seed: Buffer, length: number): Buffer {
  const blocks: Buffer[] = [];
  const counter = Buffer.alloc(4);
  for (let i = 0, produced = 0; produced < length; i++) {
    counter.writeUInt32BE(i);
    const block = createHash(hash).update(seed).update(counter).digest();
    blocks.push(block);
    produced += block.length;
  }
  return Buffer.concat(blocks).subarray(0, length);
}

function pssHash(hash: HashName, digest: Buffer, salt: Buffer): Buffer {
  return createHash(hash).update(Buffer.alloc(8)).update(digest).update(salt).digest();
}

export function signPss(
  key: KeyObject,
  hash: 'sha256' | 'sha384' | 'sha512',
  digest: Buffer,
): Buffer {
  const hLen = HASH_LENGTH[hash];
  const sLen = hLen;
  const emBits = modulusBits(key) - 1;
  const emLen = Math.ceil(emBits / 8);
  if (emLen < hLen + sLen + 2)
    throw badParameter('The RSA key is too small for this PSS algorithm');
  const salt = randomBytes(sLen);
  const h = pssHash(hash, digest, salt);
  const db = Buffer.alloc(emLen - hLen - 1);
  db[emLen - sLen - hLen - 2] = 0x01;
  salt.copy(db, emLen - sLen - hLen - 1);
  const mask = mgf1(hash, h, db.length);
  for (let i = 0; i < db.length; i++) db[i] = (db[i] as number) ^ (mask[i] as number);
  db[0] = (db[0] as number) & (0xff >> (8 * emLen - emBits));
  const em = Buffer.concat([db, h, Buffer.from([0xbc])]);
  const k = modulusBytes(key);
  return rawPrivate(key, Buffer.concat([Buffer.alloc(k - em.length), em]));
}

export function verifyPss(
  key: KeyObject,
  hash: 'sha256' | 'sha384' | 'sha512',
  digest: Buffer,
  signature: Buffer,
): boolean {
  const k = modulusBytes(key);
  if (signature.length !== k) return false;
  const block = rawPublic(key, signature);
  if (!block) return false;
  const hLen = HASH_LENGTH[hash];
  const sLen = hLen;
  const emBits = modulusBits(key) - 1;
  const emLen = Math.ceil(emBits / 8);
  if (block.subarray(0, k - emLen).some((b) => b !== 0)) return false;
  const em = block.subarray(k - emLen);
  if (em[emLen - 1] !== 0xbc) return false;
  const topMask = 0xff >> (8 * emLen - emBits);
  if (((em[0] as number) & ~topMask) !== 0) return false;
  const h = em.subarray(emLen - hLen - 1, emLen - 1);
  const db = Buffer.from(em.subarray(0, emLen - hLen - 1));
  const mask = mgf1(hash, h, db.length);
  for (let i = 0; i < db.length; i++) db[i] = (db[i] as number) ^ (mask[i] as number);
  db[0] = (db[0] as number) & topMask;
  const separator = emLen - hLen - sLen - 2;
  if (db.subarray(0, separator).some((b) => b !== 0) || db[separator] !== 0x01) return false;
  const salt = db.subarray(db.length - sLen);
  return timingSafeEqual(pssHash(hash, digest, salt), h);
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
  let bad = (block[0] as number) | ((block[1] as number) ^ 0x02);
  let found = 0;
  let separator = 0;
  for (let i = 2; i < block.length; i++) {
    const isZero = (((block[i] as number) - 1) >>> 8) & 1;
    const first = isZero & (found ^ 1);
    separator |= -first & i;
    found |= isZero;
  }
  bad |= found ^ 1;
  bad |= ((separator - 10) >>> 31) & 1; // separator < 10: fewer than 8 padding bytes
  return bad === 0 ? block.subarray(separator + 1) : undefined;
}
