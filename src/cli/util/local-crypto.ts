/**
 * Public-key operations the CLI runs locally with the public key the agent describes: signature
 * verification over a digest (the padding and curve work is src/crypto's, shared with the
 * emulator) and RSA encryption.
 */
import { constants, createHash, createPublicKey, publicEncrypt, type KeyObject } from 'node:crypto';
import { ecdsaRawToDer, ecdsaVerifyDigest, type CurveName } from '../../crypto/ecdsa.js';
import { DIGEST_LENGTH, verifyRsa, type DigestName } from '../../crypto/rsa-signature.js';
import { AkvError } from '../../errors.js';

const EC_CURVE_FOR_ALG: Record<string, CurveName> = {
  ES256: 'P-256',
  ES256K: 'P-256K',
  ES384: 'P-384',
  ES512: 'P-521',
};

/** The hash an Azure signature algorithm signs: RS256/PS256/ES256/ES256K → sha256, ... */
export function hashForAlg(alg: string): DigestName {
  switch (/^(?:RS|PS|ES)(256|384|512)K?$/.exec(alg)?.[1]) {
    case '256':
      return 'sha256';
    case '384':
      return 'sha384';
    case '512':
      return 'sha512';
    default:
      throw new AkvError(
        'UNSUPPORTED',
        `unknown signature algorithm ${JSON.stringify(alg)}`,
        'use RS256/384/512, PS256/384/512, ES256, ES256K, ES384 or ES512',
      );
  }
}

export function digestOf(alg: string, data: Buffer): Buffer {
  return createHash(hashForAlg(alg)).update(data).digest();
}

export function checkDigestLength(alg: string, digest: Buffer): void {
  const hash = hashForAlg(alg);
  if (digest.length !== DIGEST_LENGTH[hash]) {
    throw new AkvError(
      'BAD_PARAMETER',
      `${alg} signs a ${DIGEST_LENGTH[hash]}-byte ${hash} digest, but the input has ${digest.length} bytes`,
      'pass the data without --digest to let akv hash it, or give the right digest',
    );
  }
}

/** An ES* signature as Azure returns it (raw r||s) → DER, what `openssl dgst -verify` reads. */
export function ecdsaSignatureToDer(alg: string, raw: Buffer): Buffer {
  const curve = EC_CURVE_FOR_ALG[alg];
  if (!curve) throw new AkvError('UNSUPPORTED', `${alg} is not an ECDSA algorithm`);
  return ecdsaRawToDer(curve, raw);
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

function curveOf(key: KeyObject): CurveName | undefined {
  switch (key.asymmetricKeyDetails?.namedCurve) {
    case 'prime256v1':
      return 'P-256';
    case 'secp256k1':
      return 'P-256K';
    case 'secp384r1':
      return 'P-384';
    case 'secp521r1':
      return 'P-521';
    default:
      return undefined;
  }
}

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
    if (curve === undefined || EC_CURVE_FOR_ALG[alg] !== curve)
      throw new AkvError(
        'UNSUPPORTED',
        `${alg} does not fit a key on ${curve ?? String(key.asymmetricKeyDetails?.namedCurve)}`,
        `use ${Object.entries(EC_CURVE_FOR_ALG).find(([, c]) => c === curve)?.[0] ?? 'another algorithm'}`,
      );
    return ecdsaVerifyDigest(curve, ecPoint(key), digest, signature);
  }
  if (key.asymmetricKeyType !== 'rsa')
    throw new AkvError(
      'UNSUPPORTED',
      `${alg} needs an RSA key, this key is ${key.asymmetricKeyType ?? 'unknown'}`,
    );
  return verifyRsa(alg.startsWith('RS') ? 'pkcs1' : 'pss', key, hash, digest, signature);
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
