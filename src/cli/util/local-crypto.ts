/**
 * Public-key operations the CLI runs locally with the public key the agent describes: signature
 * verification over a digest (Node's crypto can only verify over data it hashes itself, so RSA
 * and ECDSA over a given digest are done here) and RSA encryption.
 */
import {
  constants,
  createHash,
  createPublicKey,
  publicDecrypt,
  publicEncrypt,
  timingSafeEqual,
  type KeyObject,
} from 'node:crypto';
import { p256, p384, p521 } from '@noble/curves/nist.js';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { AkvError } from '../../errors.js';
import { derEcdsaToRaw } from './ecdsa-der.js';
import { HASH_LEN, verifyPss, type HashName } from './rsa-pss.js';

export { derEcdsaToRaw, rawEcdsaToDer } from './ecdsa-der.js';
export type { HashName } from './rsa-pss.js';

/** DER DigestInfo prefixes (RFC 8017 §9.2 note 1). */
const DIGEST_INFO: Record<HashName, string> = {
  sha256: '3031300d060960864801650304020105000420',
  sha384: '3041300d060960864801650304020205000430',
  sha512: '3051300d060960864801650304020305000440',
};

const EC_CURVE_FOR_ALG: Record<string, string> = {
  ES256: 'P-256',
  ES256K: 'P-256K',
  ES384: 'P-384',
  ES512: 'P-521',
};

/** The hash an Azure signature algorithm signs: RS256/PS256/ES256/ES256K → sha256, ... */
export function hashForAlg(alg: string): HashName {
  const m = /^(RS|PS|ES)(256|384|512)K?$/.exec(alg);
  if (!m)
    throw new AkvError(
      'UNSUPPORTED',
      `unknown signature algorithm ${JSON.stringify(alg)}`,
      'use RS256/384/512, PS256/384/512, ES256, ES256K, ES384 or ES512',
    );
  return `sha${m[2]}` as HashName;
}

export function digestOf(alg: string, data: Buffer): Buffer {
  return createHash(hashForAlg(alg)).update(data).digest();
}

export function checkDigestLength(alg: string, digest: Buffer): void {
  const hash = hashForAlg(alg);
  if (digest.length !== HASH_LEN[hash]) {
    throw new AkvError(
      'BAD_PARAMETER',
      `${alg} signs a ${HASH_LEN[hash]}-byte ${hash} digest, but the input has ${digest.length} bytes`,
      'pass the data without --digest to let akv hash it, or give the right digest',
    );
  }
}

/** The signature algorithm that fits a key, for `doctor`'s test signature. */
export function defaultSignAlg(keyType: string, curve?: string): string {
  if (keyType === 'RSA') return 'PS256';
  switch (curve) {
    case 'P-256':
      return 'ES256';
    case 'P-256K':
      return 'ES256K';
    case 'P-384':
      return 'ES384';
    case 'P-521':
      return 'ES512';
    default:
      throw new AkvError(
        'UNSUPPORTED',
        `no signature algorithm for a ${keyType} key${curve ? ` on ${curve}` : ''}`,
      );
  }
}

function ecPoint(key: KeyObject): Uint8Array {
  const jwk = key.export({ format: 'jwk' });
  if (!jwk.x || !jwk.y) throw new AkvError('INTERNAL', 'EC public key without coordinates');
  return Buffer.concat([
    Buffer.from([4]),
    Buffer.from(jwk.x, 'base64url'),
    Buffer.from(jwk.y, 'base64url'),
  ]);
}

function curveOf(key: KeyObject): string {
  const named = key.asymmetricKeyDetails?.namedCurve;
  switch (named) {
    case 'prime256v1':
      return 'P-256';
    case 'secp256k1':
      return 'P-256K';
    case 'secp384r1':
      return 'P-384';
    case 'secp521r1':
      return 'P-521';
    default:
      return String(named);
  }
}

const EC_SIZE: Record<string, number> = { 'P-256': 32, 'P-256K': 32, 'P-384': 48, 'P-521': 66 };

/**
 * Verifies `signature` over `digest` with the DER SPKI `spki`. EC signatures may be raw r||s
 * (Azure's form) or DER (OpenSSL's form).
 */
export function verifyDigest(
  spki: Buffer,
  alg: string,
  digest: Buffer,
  signature: Buffer,
): boolean {
  const key = createPublicKey({ key: spki, format: 'der', type: 'spki' });
  const hash = hashForAlg(alg);
  checkDigestLength(alg, digest);
  if (alg.startsWith('ES')) {
    if (key.asymmetricKeyType !== 'ec')
      throw new AkvError(
        'UNSUPPORTED',
        `${alg} needs an EC key, this key is ${key.asymmetricKeyType ?? 'unknown'}`,
      );
    const curve = curveOf(key);
    if (EC_CURVE_FOR_ALG[alg] !== curve)
      throw new AkvError(
        'UNSUPPORTED',
        `${alg} does not fit a key on ${curve}`,
        `use ${Object.entries(EC_CURVE_FOR_ALG).find(([, c]) => c === curve)?.[0] ?? 'another algorithm'}`,
      );
    const size = EC_SIZE[curve] ?? 32;
    const raw = signature.length === 2 * size ? signature : derEcdsaToRaw(signature, size);
    if (!raw) return false;
    const impl =
      curve === 'P-256' ? p256 : curve === 'P-256K' ? secp256k1 : curve === 'P-384' ? p384 : p521;
    try {
      return impl.verify(raw, digest, ecPoint(key), { prehash: false, lowS: false });
    } catch {
      return false;
    }
  }
  if (key.asymmetricKeyType !== 'rsa')
    throw new AkvError(
      'UNSUPPORTED',
      `${alg} needs an RSA key, this key is ${key.asymmetricKeyType ?? 'unknown'}`,
    );
  const modulusBytes = Math.ceil((key.asymmetricKeyDetails?.modulusLength ?? 0) / 8);
  if (signature.length !== modulusBytes) return false;
  if (alg.startsWith('RS')) {
    let decoded: Buffer;
    try {
      decoded = publicDecrypt({ key, padding: constants.RSA_PKCS1_PADDING }, signature);
    } catch {
      return false;
    }
    const expected = Buffer.concat([Buffer.from(DIGEST_INFO[hash], 'hex'), digest]);
    return decoded.length === expected.length && timingSafeEqual(decoded, expected);
  }
  return verifyPss(key, hash, digest, signature);
}

export const ENCRYPT_ALGORITHMS = ['RSA-OAEP', 'RSA-OAEP-256', 'RSA1_5'] as const;

/** RSA encryption with the public key, as the HSM would do it (decrypt then needs the HSM). */
export function encryptLocally(spki: Buffer, alg: string, plaintext: Buffer): Buffer {
  const key = createPublicKey({ key: spki, format: 'der', type: 'spki' });
  if (key.asymmetricKeyType !== 'rsa')
    throw new AkvError(
      'UNSUPPORTED',
      `${alg} needs an RSA key`,
      'AES keys encrypt inside the HSM: use `akv wrap` with A128KW/A192KW/A256KW',
    );
  switch (alg) {
    case 'RSA-OAEP':
      return publicEncrypt(
        { key, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha1' },
        plaintext,
      );
    case 'RSA-OAEP-256':
      return publicEncrypt(
        { key, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' },
        plaintext,
      );
    case 'RSA1_5':
      return publicEncrypt({ key, padding: constants.RSA_PKCS1_PADDING }, plaintext);
    default:
      throw new AkvError(
        'UNSUPPORTED',
        `encrypt does not support ${JSON.stringify(alg)}`,
        `use one of ${ENCRYPT_ALGORITHMS.join(', ')}`,
      );
  }
}

/** PEM of a DER SPKI (for `key show --pem` style output and openssl). */
export function spkiToPem(spki: Buffer): string {
  return createPublicKey({ key: spki, format: 'der', type: 'spki' })
    .export({ type: 'spki', format: 'pem' })
    .toString();
}
