/**
 * What a successful key release returns: the key's private material wrapped for the key the
 * attestation token names (`x-ms-runtime.keys[]`, the first RSA key), inside a JWS the emulator
 * signs with its TLS key (ES256, `x5c` = its certificate and CA).
 *
 * Wrapping, as Azure documents for `enc`: CKM_RSA_AES_KEY_WRAP (default) = a fresh AES-256 key
 * encrypted with RSA-OAEP (SHA-1), followed by the key material wrapped with that AES key by
 * AES Key Wrap with Padding (RFC 5649); RSA_AES_KEY_WRAP_256 / _384 use OAEP with SHA-256 /
 * SHA-384. The material is PKCS#8 DER for RSA and EC keys, the raw key bytes for oct keys.
 * `key_hsm` is base64url(JSON {schema_version: "1.0", header:{kid, alg:"dir", enc}, ciphertext}),
 * the shape of a recorded real release (test/conformance/fixtures/js-mhsm-release.json).
 */
import {
  constants,
  createCipheriv,
  createHash,
  createPrivateKey,
  createPublicKey,
  publicEncrypt,
  randomBytes,
  sign,
  X509Certificate,
  type KeyObject,
} from 'node:crypto';
import { badParameter } from '../errors.js';
import type { PrivateJwk } from '../keys/types.js';
import { isRecord } from '../../guards.js';

export const RELEASE_ENCS = [
  'CKM_RSA_AES_KEY_WRAP',
  'RSA_AES_KEY_WRAP_256',
  'RSA_AES_KEY_WRAP_384',
] as const;
export type ReleaseEnc = (typeof RELEASE_ENCS)[number];

const OAEP_HASH: Record<ReleaseEnc, string> = {
  CKM_RSA_AES_KEY_WRAP: 'sha1',
  RSA_AES_KEY_WRAP_256: 'sha256',
  RSA_AES_KEY_WRAP_384: 'sha384',
};

/** RFC 5649's alternative initial value. */
const KWP_IV = Buffer.from('a65959a6', 'hex');

export interface WrappingKey {
  kid: string;
  key: KeyObject;
}

/** The RSA key in the token's `x-ms-runtime.keys` that the released key is wrapped for. */
export function wrappingKeyOf(claims: Record<string, unknown>): WrappingKey {
  const runtime = claims['x-ms-runtime'];
  const keys = isRecord(runtime) ? runtime.keys : undefined;
  const jwk = Array.isArray(keys) ? keys.filter(isRecord).find((k) => k.kty === 'RSA') : undefined;
  if (!jwk || typeof jwk.n !== 'string' || typeof jwk.e !== 'string')
    throw badParameter(
      'The attestation token carries no RSA key in x-ms-runtime.keys to wrap the released key for',
    );
  let key: KeyObject;
  try {
    key = createPublicKey({ key: { kty: 'RSA', n: jwk.n, e: jwk.e }, format: 'jwk' });
  } catch {
    throw badParameter('The RSA key in x-ms-runtime.keys of the attestation token is not valid');
  }
  if ((key.asymmetricKeyDetails?.modulusLength ?? 0) < 2048)
    throw badParameter('The wrapping key in the attestation token must be RSA 2048 bits or more');
  return { kid: typeof jwk.kid === 'string' ? jwk.kid : '', key };
}

const NODE_CURVE: Record<string, string> = {
  'P-256': 'P-256',
  'P-256K': 'secp256k1',
  'P-384': 'P-384',
  'P-521': 'P-521',
};

function keyMaterial(jwk: PrivateJwk): Buffer {
  if (jwk.kty === 'oct') return Buffer.from(jwk.k ?? '', 'base64url');
  const nodeJwk =
    jwk.kty === 'EC' ? { ...jwk, crv: NODE_CURVE[jwk.crv ?? ''] ?? jwk.crv } : { ...jwk };
  return createPrivateKey({ key: nodeJwk, format: 'jwk' }).export({
    format: 'der',
    type: 'pkcs8',
  });
}

export function wrapForTarget(jwk: PrivateJwk, target: WrappingKey, enc: ReleaseEnc): string {
  const aesKey = randomBytes(32);
  const wrappedAesKey = publicEncrypt(
    { key: target.key, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: OAEP_HASH[enc] },
    aesKey,
  );
  const kwp = createCipheriv('id-aes256-wrap-pad', aesKey, KWP_IV);
  const wrapped = Buffer.concat([kwp.update(keyMaterial(jwk)), kwp.final()]);
  const blob = {
    schema_version: '1.0',
    header: { kid: target.kid, alg: 'dir', enc },
    ciphertext: Buffer.concat([wrappedAesKey, wrapped]).toString('base64url'),
  };
  return Buffer.from(JSON.stringify(blob)).toString('base64url');
}

/** The emulator's signing identity for release answers: its TLS key and certificate chain. */
export interface ReleaseSigner {
  keyPem: string;
  certPems: string[];
}

/** A compact JWS (ES256 with the P-256 TLS key) over `payload`, with the chain in `x5c`. */
export function signRelease(signer: ReleaseSigner, payload: unknown): string {
  const certs = signer.certPems.map((pem) => new X509Certificate(pem).raw);
  const x5c = certs.map((der) => der.toString('base64'));
  // As recorded: kid and x5t#S256 are the SHA-256 thumbprint of the signing certificate.
  const thumbprint = createHash('sha256')
    .update(certs[0] ?? Buffer.alloc(0))
    .digest('base64url');
  const header = { alg: 'ES256', kid: thumbprint, x5c, 'x5t#S256': thumbprint };
  const input = `${Buffer.from(JSON.stringify(header)).toString('base64url')}.${Buffer.from(JSON.stringify(payload)).toString('base64url')}`;
  const signature = sign('sha256', Buffer.from(input), {
    key: signer.keyPem,
    dsaEncoding: 'ieee-p1363',
  });
  return `${input}.${signature.toString('base64url')}`;
}
