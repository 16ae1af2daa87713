/**
 * Makes new key material (create/rotate) and checks imported material (import). Everything
 * returned is a complete private JWK in the store's form (Azure curve names, base64url fields).
 */
import { createPrivateKey, generateKeyPair, randomBytes, type KeyObject } from 'node:crypto';
import { promisify } from 'node:util';
import { badParameter } from '../errors.js';
import { errorMessage } from '../../errors.js';
import { isOneOf, isRecord } from '../../guards.js';
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
    if (!isOneOf(RSA_SIZES, size)) {
      throw badParameter(
        `key_size ${String(size)} is not supported for RSA-HSM: use 2048, 3072 or 4096`,
      );
    }
    const publicExponent = spec.public_exponent === undefined ? 65537 : spec.public_exponent;
    if (publicExponent !== 65537 && publicExponent !== 3) {
      throw badParameter(`public_exponent ${String(publicExponent)} is not supported: use 65537`);
    }
    return { kty, size, publicExponent };
  }
  if (kty === 'EC-HSM') {
    const crv = spec.crv === undefined ? 'P-256' : spec.crv;
    if (!isOneOf(CURVES, crv)) {
      throw badParameter(`crv ${String(crv)} is not supported: use P-256, P-256K, P-384 or P-521`);
    }
    return { kty, crv };
  }
  const size = spec.key_size === undefined ? 256 : spec.key_size;
  if (!isOneOf(OCT_SIZES, size)) {
    // The real HSM's words (test/conformance/fixtures/java-mhsm-oct-invalid-size.json).
    throw badParameter(`Invalid key size: '${String(size)}'`);
  }
  return { kty, size };
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

/** Field `name` of an imported JWK of `family` as text; throws when it is missing or empty. */
function jwkText(raw: Record<string, unknown>, family: KeyFamily, name: string): string {
  const value = raw[name];
  if (typeof value !== 'string' || value === '') {
    throw badParameter(
      `The imported ${family} key lacks "${name}": an import needs the private key with ${REQUIRED[family].join(', ')}`,
    );
  }
  return value;
}

/** Field `name` of an imported JWK of `family`, decoded; throws when it is missing or not base64url. */
function jwkBytes(raw: Record<string, unknown>, family: KeyFamily, name: string): Buffer {
  const bytes = fromBase64Url(jwkText(raw, family, name));
  if (bytes === undefined) throw badParameter(`The imported key's "${name}" is not base64url`);
  return bytes;
}

/**
 * Validates the private JWK of an import request and returns it in the store's form. The key
 * must be complete and consistent (the public part must belong to the private part).
 */
export function checkImportedJwk(input: unknown): { kty: HsmKeyType; jwk: PrivateJwk } {
  if (!isRecord(input)) {
    throw badParameter('The import request needs a "key" object holding a JSON Web Key');
  }
  const kty = normalizeKty(input.kty);
  const family: KeyFamily = kty === 'RSA-HSM' ? 'RSA' : kty === 'EC-HSM' ? 'EC' : 'oct';
  // Every field first, in the order REQUIRED names them, so the first fault is the one reported.
  for (const field of REQUIRED[family]) {
    if (field === 'crv') jwkText(input, family, field);
    else jwkBytes(input, family, field);
  }
  const bytes = (name: string): Buffer => jwkBytes(input, family, name);
  if (family === 'oct') return { kty, jwk: importedOct(bytes('k')) };
  if (family === 'RSA') return { kty, jwk: importedRsa(bytes) };
  return { kty, jwk: importedEc(jwkText(input, family, 'crv'), bytes) };
}

function importedOct(k: Buffer): PrivateJwk {
  const bits = k.length * 8;
  if (!isOneOf(OCT_SIZES, bits)) {
    throw badParameter(`An imported oct key must be 128, 192 or 256 bits long, not ${bits}`);
  }
  return { kty: 'oct', k: toBase64Url(k) };
}

function importedRsa(bytes: (name: string) => Buffer): PrivateJwk {
  // The modulus may come with a leading zero byte (two's complement habit); the service drops it.
  const n = toBase64Url(stripLeadingZeros(bytes('n')));
  const [e, d, p, q, dp, dq, qi] = ['e', 'd', 'p', 'q', 'dp', 'dq', 'qi'].map((name) =>
    toBase64Url(bytes(name)),
  );
  const jwk: PrivateJwk = { kty: 'RSA', n, e, d, p, q, dp, dq, qi };
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: { ...jwk }, format: 'jwk' });
  } catch (err) {
    throw badParameter(`The imported RSA key is not a valid private key: ${errorMessage(err)}`);
  }
  const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
  if (!isOneOf(RSA_SIZES, bits)) {
    throw badParameter(`An imported RSA key must be 2048, 3072 or 4096 bits, not ${bits}`);
  }
  return jwk;
}

function importedEc(jwkCrv: string, bytes: (name: string) => Buffer): PrivateJwk {
  const crv = JWK_CURVE_TO_AZURE[jwkCrv];
  if (!crv) throw badParameter(`crv ${jwkCrv} is not supported: use P-256, P-256K, P-384 or P-521`);
  const [x, y, d] = [bytes('x'), bytes('y'), bytes('d')];
  let derived: Uint8Array;
  try {
    derived = ecPublicPoint(crv, d);
  } catch (err) {
    throw badParameter(
      `The imported EC key's "d" is not a valid ${crv} private key: ${errorMessage(err)}`,
    );
  }
  const given = Buffer.concat([Buffer.from([4]), x, y]);
  if (!given.equals(Buffer.from(derived))) {
    throw badParameter('The imported EC key\'s "x"/"y" do not belong to its private key "d"');
  }
  return { kty: 'EC', crv, x: toBase64Url(x), y: toBase64Url(y), d: toBase64Url(d) };
}

function stripLeadingZeros(bytes: Buffer): Buffer {
  let i = 0;
  while (i < bytes.length - 1 && bytes[i] === 0) i++;
  return bytes.subarray(i);
}
