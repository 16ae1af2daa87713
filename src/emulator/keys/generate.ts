/**
 * Makes new key material (create/rotate) and checks imported material (import). Everything
 * returned is a complete private JWK in the store's form (Azure curve names, base64url fields).
 */
import { createPrivateKey, generateKeyPair, randomBytes, type KeyObject } from 'node:crypto';
import { promisify } from 'node:util';
import { badParameter } from '../errors.js';
import { fromBase64Url, toBase64Url } from '../base64url.js';
import { ecPublicPoint } from '../../crypto/ecdsa.js';
import {
  CURVES,
  OCT_SIZES,
  RSA_SIZES,
  type CurveName,
  type HsmKeyType,
  type KeyFamily,
  type PrivateJwk,
} from './types.js';

const generateKeyPairAsync = promisify(generateKeyPair);

/** Azure curve names and the names OpenSSL (Node) uses for the same curves. */
const NODE_CURVE: Record<CurveName, string> = {
  'P-256': 'prime256v1',
  'P-256K': 'secp256k1',
  'P-384': 'secp384r1',
  'P-521': 'secp521r1',
};
const JWK_CURVE_TO_AZURE: Record<string, CurveName> = {
  'P-256': 'P-256',
  'P-256K': 'P-256K',
  secp256k1: 'P-256K',
  'P-384': 'P-384',
  'P-521': 'P-521',
};

export interface KeySpec {
  kty: HsmKeyType;
  /** RSA modulus bits or AES key bits. */
  size?: number;
  publicExponent?: number;
  crv?: CurveName;
}

/** Checks a create request's key parameters; fills the service's defaults. */
export function checkKeySpec(spec: {
  kty?: unknown;
  key_size?: unknown;
  public_exponent?: unknown;
  crv?: unknown;
}): KeySpec {
  const kty = normalizeKty(spec.kty);
  if (kty === 'RSA-HSM') {
    const size = spec.key_size === undefined ? 2048 : spec.key_size;
    if (!RSA_SIZES.includes(size as (typeof RSA_SIZES)[number])) {
      throw badParameter(
        `key_size ${String(size)} is not supported for RSA-HSM: use 2048, 3072 or 4096`,
      );
    }
    const publicExponent = spec.public_exponent === undefined ? 65537 : spec.public_exponent;
    if (publicExponent !== 65537 && publicExponent !== 3) {
      throw badParameter(`public_exponent ${String(publicExponent)} is not supported: use 65537`);
    }
    return { kty, size: size as number, publicExponent: publicExponent as number };
  }
  if (kty === 'EC-HSM') {
    const crv = spec.crv === undefined ? 'P-256' : spec.crv;
    if (!CURVES.includes(crv as CurveName)) {
      throw badParameter(`crv ${String(crv)} is not supported: use P-256, P-256K, P-384 or P-521`);
    }
    return { kty, crv: crv as CurveName };
  }
  const size = spec.key_size === undefined ? 256 : spec.key_size;
  if (!OCT_SIZES.includes(size as (typeof OCT_SIZES)[number])) {
    // The real HSM's words (test/conformance/fixtures/java-mhsm-oct-invalid-size.json).
    throw badParameter(`Invalid key size: '${String(size)}'`);
  }
  return { kty, size: size as number };
}

/**
 * Managed HSM holds only HSM-protected keys; the software types are accepted on input and
 * stored as their -HSM form, as the service does for `Hsm: true` imports.
 */
export function normalizeKty(kty: unknown): HsmKeyType {
  switch (kty) {
    case 'RSA':
    case 'RSA-HSM':
      return 'RSA-HSM';
    case 'EC':
    case 'EC-HSM':
      return 'EC-HSM';
    case 'oct':
    case 'oct-HSM':
      return 'oct-HSM';
    default:
      throw badParameter(
        `kty ${JSON.stringify(kty)} is not supported by Managed HSM: use RSA-HSM, EC-HSM or oct-HSM`,
      );
  }
}

export async function generateKey(spec: KeySpec): Promise<PrivateJwk> {
  if (spec.kty === 'RSA-HSM') {
    const { privateKey } = await generateKeyPairAsync('rsa', {
      modulusLength: spec.size ?? 2048,
      publicExponent: spec.publicExponent ?? 65537,
    });
    return rsaJwkFrom(privateKey);
  }
  if (spec.kty === 'EC-HSM') {
    const crv = spec.crv ?? 'P-256';
    const { privateKey } = await generateKeyPairAsync('ec', { namedCurve: NODE_CURVE[crv] });
    const jwk = privateKey.export({ format: 'jwk' });
    return { kty: 'EC', crv, x: jwk.x, y: jwk.y, d: jwk.d };
  }
  return { kty: 'oct', k: toBase64Url(randomBytes((spec.size ?? 256) / 8)) };
}

function rsaJwkFrom(privateKey: KeyObject): PrivateJwk {
  const j = privateKey.export({ format: 'jwk' });
  return { kty: 'RSA', n: j.n, e: j.e, d: j.d, p: j.p, q: j.q, dp: j.dp, dq: j.dq, qi: j.qi };
}

/** Field names an import must carry for each key family. */
const REQUIRED: Record<KeyFamily, (keyof PrivateJwk)[]> = {
  RSA: ['n', 'e', 'd', 'p', 'q', 'dp', 'dq', 'qi'],
  EC: ['crv', 'x', 'y', 'd'],
  oct: ['k'],
};

/**
 * Validates the private JWK of an import request and returns it in the store's form. The key
 * must be complete and consistent (the public part must belong to the private part).
 */
export function checkImportedJwk(input: unknown): { kty: HsmKeyType; jwk: PrivateJwk } {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw badParameter('The import request needs a "key" object holding a JSON Web Key');
  }
  const raw = input as Record<string, unknown>;
  const kty = normalizeKty(raw.kty);
  const family: KeyFamily = kty === 'RSA-HSM' ? 'RSA' : kty === 'EC-HSM' ? 'EC' : 'oct';
  for (const field of REQUIRED[family]) {
    if (typeof raw[field] !== 'string' || raw[field] === '') {
      throw badParameter(
        `The imported ${family} key lacks "${field}": an import needs the private key with ${REQUIRED[family].join(', ')}`,
      );
    }
    if (field !== 'crv' && fromBase64Url(raw[field] as string) === undefined) {
      throw badParameter(`The imported key's "${field}" is not base64url`);
    }
  }
  const field = (name: string): string => raw[name] as string;
  if (family === 'oct') {
    const bits = (fromBase64Url(field('k')) as Buffer).length * 8;
    if (!OCT_SIZES.includes(bits as (typeof OCT_SIZES)[number])) {
      throw badParameter(`An imported oct key must be 128, 192 or 256 bits long, not ${bits}`);
    }
    return { kty, jwk: { kty: 'oct', k: strip(field('k')) } };
  }
  if (family === 'RSA') {
    const jwk: PrivateJwk = { kty: 'RSA' };
    for (const name of REQUIRED.RSA) {
      (jwk as unknown as Record<string, string>)[name] = strip(field(name));
    }
    // The modulus may come with a leading zero byte (two's complement habit); the service drops it.
    jwk.n = toBase64Url(stripLeadingZeros(fromBase64Url(jwk.n as string) as Buffer));
    let key: KeyObject;
    try {
      key = createPrivateKey({ key: { ...jwk }, format: 'jwk' });
    } catch (err) {
      throw badParameter(
        `The imported RSA key is not a valid private key: ${(err as Error).message}`,
      );
    }
    const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
    if (!RSA_SIZES.includes(bits as (typeof RSA_SIZES)[number])) {
      throw badParameter(`An imported RSA key must be 2048, 3072 or 4096 bits, not ${bits}`);
    }
    return { kty, jwk };
  }
  const crv = JWK_CURVE_TO_AZURE[field('crv')];
  if (!crv)
    throw badParameter(`crv ${field('crv')} is not supported: use P-256, P-256K, P-384 or P-521`);
  const jwk: PrivateJwk = {
    kty: 'EC',
    crv,
    x: strip(field('x')),
    y: strip(field('y')),
    d: strip(field('d')),
  };
  let derived: Uint8Array;
  try {
    derived = ecPublicPoint(crv, fromBase64Url(jwk.d as string) as Buffer);
  } catch (err) {
    throw badParameter(
      `The imported EC key's "d" is not a valid ${crv} private key: ${(err as Error).message}`,
    );
  }
  const given = Buffer.concat([
    Buffer.from([4]),
    fromBase64Url(jwk.x as string) as Buffer,
    fromBase64Url(jwk.y as string) as Buffer,
  ]);
  if (!given.equals(Buffer.from(derived))) {
    throw badParameter('The imported EC key\'s "x"/"y" do not belong to its private key "d"');
  }
  return { kty, jwk };
}

/** Re-encodes a field as base64url without padding (imports may use standard base64). */
function strip(value: string): string {
  return toBase64Url(fromBase64Url(value) as Buffer);
}

function stripLeadingZeros(bytes: Buffer): Buffer {
  let i = 0;
  while (i < bytes.length - 1 && bytes[i] === 0) i++;
  return bytes.subarray(i);
}
