/**
 * RSA signatures over a digest someone else computed, as Azure makes them (RFC 8017): PKCS#1 v1.5
 * with the DigestInfo built here, and PSS with MGF1 over the message hash and salt length = hash
 * length. Node's sign()/verify() hash their input again, and its PKCS#1 v1.5 private decryption
 * is disabled (CVE-2023-46809), so these are built on the raw RSA operation. Used by the emulator
 * (which signs and verifies like the HSM) and by the CLI (which verifies locally).
 */
import {
  constants,
  createHash,
  privateDecrypt,
  publicEncrypt,
  randomBytes,
  timingSafeEqual,
  type KeyObject,
} from 'node:crypto';

export type DigestName = 'sha256' | 'sha384' | 'sha512';

export const DIGEST_LENGTH: Record<DigestName, number> = { sha256: 32, sha384: 48, sha512: 64 };

/** DER DigestInfo prefixes (RFC 8017 §9.2 note 1): AlgorithmIdentifier, NULL, OCTET STRING. */
const DIGEST_INFO_PREFIX: Record<DigestName, Buffer> = {
  sha256: Buffer.from('3031300d060960864801650304020105000420', 'hex'),
  sha384: Buffer.from('3041300d060960864801650304020205000430', 'hex'),
  sha512: Buffer.from('3051300d060960864801650304020305000440', 'hex'),
};

/** The DER DigestInfo a PKCS#1 v1.5 signature carries for `digest`. */
function digestInfo(hash: DigestName, digest: Buffer): Buffer {
  return Buffer.concat([DIGEST_INFO_PREFIX[hash], digest]);
}

function modulusBits(key: KeyObject): number {
  const bits = key.asymmetricKeyDetails?.modulusLength;
  if (!bits) throw new Error('not an RSA key');
  return bits;
}

const modulusBytes = (key: KeyObject): number => Math.ceil(modulusBits(key) / 8);

/**
 * The encoded message of a signature: s^e mod n, k bytes. Undefined when the signature is not k
 * bytes long or not below the modulus.
 */
function openSignature(key: KeyObject, signature: Buffer): Buffer | undefined {
  if (signature.length !== modulusBytes(key)) return undefined;
  try {
    return publicEncrypt({ key, padding: constants.RSA_NO_PADDING }, signature);
  } catch {
    return undefined;
  }
}

/** MGF1 (RFC 8017 §B.2.1) with `hash`. */
function mgf1(hash: DigestName, seed: Buffer, length: number): Buffer {
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

/** H = Hash(0x00 * 8 || mHash || salt), the value PSS signs. */
function pssHash(hash: DigestName, digest: Buffer, salt: Buffer): Buffer {
  return createHash(hash).update(Buffer.alloc(8)).update(digest).update(salt).digest();
}

/** `db` XOR MGF1(h), in place, with the bits above emBits cleared. */
function maskDb(hash: DigestName, db: Buffer, h: Buffer, topMask: number): void {
  const mask = mgf1(hash, h, db.length);
  for (let i = 0; i < db.length; i++) db[i] = (db[i] ?? 0) ^ (mask[i] ?? 0);
  db[0] = (db[0] ?? 0) & topMask;
}

/** EMSA-PKCS1-v1_5 (RFC 8017 §9.2): 0x00 0x01 0xff... 0x00 DigestInfo, k bytes. */
function encodePkcs1(hash: DigestName, digest: Buffer, k: number): Buffer | undefined {
  const info = digestInfo(hash, digest);
  if (k < info.length + 11) return undefined;
  const em = Buffer.alloc(k, 0xff);
  em[0] = 0x00;
  em[1] = 0x01;
  em[k - info.length - 1] = 0x00;
  info.copy(em, k - info.length);
  return em;
}

/**
 * EMSA-PSS encoding (RFC 8017 §9.1.1) of `digest` for a modulus of `modBits` bits, with a fresh
 * salt as long as the hash, left-padded to k bytes.
 */
function encodePss(hash: DigestName, digest: Buffer, modBits: number): Buffer | undefined {
  const hLen = DIGEST_LENGTH[hash];
  const sLen = hLen;
  const emBits = modBits - 1;
  const emLen = Math.ceil(emBits / 8);
  if (emLen < hLen + sLen + 2) return undefined;
  const salt = randomBytes(sLen);
  const h = pssHash(hash, digest, salt);
  const db = Buffer.alloc(emLen - hLen - 1);
  db[emLen - sLen - hLen - 2] = 0x01;
  salt.copy(db, emLen - sLen - hLen - 1);
  maskDb(hash, db, h, 0xff >> (8 * emLen - emBits));
  const k = Math.ceil(modBits / 8);
  return Buffer.concat([Buffer.alloc(k - emLen), db, h, Buffer.from([0xbc])]);
}

/** EMSA-PSS-VERIFY (RFC 8017 §9.1.2) of the k-byte block a signature opened to. */
function pssMatches(block: Buffer, hash: DigestName, digest: Buffer, modBits: number): boolean {
  const hLen = DIGEST_LENGTH[hash];
  const sLen = hLen;
  const emBits = modBits - 1;
  const emLen = Math.ceil(emBits / 8);
  if (emLen < hLen + sLen + 2) return false;
  if (block.subarray(0, block.length - emLen).some((b) => b !== 0)) return false;
  const em = block.subarray(block.length - emLen);
  if (em[emLen - 1] !== 0xbc) return false;
  const topMask = 0xff >> (8 * emLen - emBits);
  if (((em[0] ?? 0) & ~topMask) !== 0) return false;
  const h = em.subarray(emLen - hLen - 1, emLen - 1);
  const db = Buffer.from(em.subarray(0, emLen - hLen - 1));
  maskDb(hash, db, h, topMask);
  const separator = emLen - hLen - sLen - 2;
  if (db.subarray(0, separator).some((b) => b !== 0) || db[separator] !== 0x01) return false;
  const salt = db.subarray(db.length - sLen);
  return timingSafeEqual(pssHash(hash, digest, salt), h);
}

/** PKCS#1 v1.5, or PSS with MGF1 over the message hash and salt length = hash length. */
export type RsaSignatureScheme = 'pkcs1' | 'pss';

/** A signature of `digest`; undefined when the key is too small for the hash. */
export function signRsa(
  scheme: RsaSignatureScheme,
  key: KeyObject,
  hash: DigestName,
  digest: Buffer,
): Buffer | undefined {
  const em =
    scheme === 'pkcs1'
      ? encodePkcs1(hash, digest, modulusBytes(key))
      : encodePss(hash, digest, modulusBits(key));
  // The raw private operation m^d mod n on the k-byte block.
  return em && privateDecrypt({ key, padding: constants.RSA_NO_PADDING }, em);
}

/** Whether `signature` is a signature of `digest` by `key`; malformed input is simply "no". */
export function verifyRsa(
  scheme: RsaSignatureScheme,
  key: KeyObject,
  hash: DigestName,
  digest: Buffer,
  signature: Buffer,
): boolean {
  const block = openSignature(key, signature);
  if (!block) return false;
  if (scheme === 'pss') return pssMatches(block, hash, digest, modulusBits(key));
  const expected = encodePkcs1(hash, digest, block.length);
  return expected !== undefined && timingSafeEqual(block, expected);
}
