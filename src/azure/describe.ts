/**
 * Turns a key, as the SDK's KeyVaultKey or as the REST API's key bundle (the agent's first look at
 * a key goes without the SDK: clients.ts), into the agent's KeyDescription: key type, size, curve,
 * version, allowed operations and the public key as DER SubjectPublicKeyInfo (built locally from
 * the JWK, so the provider gets a ready-made public key).
 */
import type { JsonWebKey } from 'node:crypto';
import { AkvError } from '../errors.js';

/** The parts of a JWK read here; the SDK's JsonWebKey has this shape. */
export interface JwkView {
  kid?: string;
  kty?: string;
  keyOps?: string[];
  n?: Uint8Array;
  e?: Uint8Array;
  crv?: string;
  x?: Uint8Array;
  y?: Uint8Array;
}

/** The parts of a key read here; the SDK's KeyVaultKey has this shape. */
export interface KeyView {
  id?: string;
  name: string;
  keyType?: string;
  keyOperations?: string[];
  key?: JwkView;
  properties: { enabled?: boolean; notBefore?: Date; expiresOn?: Date; version?: string };
}

export type Curve = 'P-256' | 'P-256K' | 'P-384' | 'P-521';

export interface KeyDescription {
  kty: 'RSA' | 'EC' | 'oct';
  bits: number;
  curve?: Curve;
  version: string;
  kid: string;
  keyOps: string[];
  spki?: Buffer /* DER SubjectPublicKeyInfo */;
  enabled: boolean;
}

export const CURVE_BITS: Record<Curve, number> = {
  'P-256': 256,
  'P-256K': 256,
  'P-384': 384,
  'P-521': 521,
};
/** Node's JWK import names secp256k1 differently from Azure. */
const NODE_JWK_CURVE: Record<Curve, string> = {
  'P-256': 'P-256',
  'P-256K': 'secp256k1',
  'P-384': 'P-384',
  'P-521': 'P-521',
};

export function isCurve(s: string | undefined): s is Curve {
  return s !== undefined && Object.hasOwn(CURVE_BITS, s);
}

/**
 * The version in a kid URL, https://h/keys/<name>/<version> ('' when there is none). Read with
 * string operations: it runs once per signature, and a URL parse costs more than the rest.
 */
export function versionFromKid(kid: string | undefined): string {
  if (!kid) return '';
  const scheme = kid.indexOf('://');
  const keys = kid.indexOf('/keys/', scheme < 0 ? 0 : scheme + 3);
  if (scheme < 0 || keys < 0) return '';
  const rest = kid.slice(keys + '/keys/'.length).split(/[?#]/, 1)[0] ?? '';
  const parts = rest.split('/').filter((p) => p !== '');
  return parts[1] ?? '';
}

function b64u(bytes: Uint8Array | undefined, what: string, kid: string): string {
  if (!bytes || bytes.length === 0) {
    throw new AkvError(
      'INTERNAL',
      `the HSM returned key ${kid} without its ${what}`,
      'report this with the agent log',
    );
  }
  return Buffer.from(bytes).toString('base64url');
}

/** Bit length of a big-endian unsigned integer (an RSA modulus may carry a leading zero byte). */
function bitLength(bytes: Uint8Array): number {
  let i = 0;
  while (i < bytes.length && bytes[i] === 0) i++;
  if (i === bytes.length) return 0;
  return (bytes.length - i - 1) * 8 + (32 - Math.clz32(bytes[i] ?? 0));
}

/**
 * A public JWK as DER SubjectPublicKeyInfo. node:crypto is taken here, not imported: the agent
 * loads it after it listens (src/azure/clients.ts, preloadHsmTransport).
 */
function spkiDer(key: JsonWebKey): Buffer {
  return process
    .getBuiltinModule('node:crypto')
    .createPublicKey({ key, format: 'jwk' })
    .export({ type: 'spki', format: 'der' });
}

export function spkiFromJwk(jwk: JwkView, kid: string): Buffer {
  const kty = baseKty(jwk.kty);
  if (kty === 'RSA') {
    return spkiDer({ kty: 'RSA', n: b64u(jwk.n, 'modulus', kid), e: b64u(jwk.e, 'exponent', kid) });
  }
  if (kty === 'EC') {
    const crv = jwk.crv;
    if (!isCurve(crv))
      throw new AkvError(
        'UNSUPPORTED',
        `key ${kid} uses the curve ${String(crv)}, which akv does not support`,
        'use P-256, P-256K, P-384 or P-521',
      );
    return spkiDer({
      kty: 'EC',
      crv: NODE_JWK_CURVE[crv],
      x: b64u(jwk.x, 'x coordinate', kid),
      y: b64u(jwk.y, 'y coordinate', kid),
    });
  }
  throw new AkvError(
    'UNSUPPORTED',
    `key ${kid} is a symmetric key and has no public key`,
    'use an RSA or EC key',
  );
}

function baseKty(kty: string | undefined): 'RSA' | 'EC' | 'oct' | undefined {
  switch (kty) {
    case 'RSA':
    case 'RSA-HSM':
      return 'RSA';
    case 'EC':
    case 'EC-HSM':
      return 'EC';
    case 'oct':
    case 'oct-HSM':
      return 'oct';
    default:
      return undefined;
  }
}

/**
 * @param octBits AES key size when the service told it (Managed HSM's JWK carries no size for
 *   `oct` keys; the raw bundle may have `key_size`); 0 when unknown.
 */
export function describeKey(key: KeyView, octBits = 0, now = new Date()): KeyDescription {
  const jwk = key.key;
  const kid = key.id ?? jwk?.kid ?? key.name;
  const kty = baseKty(jwk?.kty ?? key.keyType);
  if (!jwk || !kty) {
    throw new AkvError(
      'UNSUPPORTED',
      `key ${kid} has the key type ${String(jwk?.kty ?? key.keyType)}, which akv does not support`,
      'use an RSA, EC or oct (AES) key',
    );
  }
  const p = key.properties;
  const enabled =
    p.enabled !== false &&
    (p.notBefore === undefined || p.notBefore <= now) &&
    (p.expiresOn === undefined || p.expiresOn > now);
  const out: KeyDescription = {
    kty,
    bits: 0,
    version: p.version ?? versionFromKid(kid),
    kid,
    keyOps: [...(key.keyOperations ?? jwk.keyOps ?? [])],
    enabled,
  };
  if (kty === 'RSA') {
    out.bits = bitLength(jwk.n ?? new Uint8Array());
    out.spki = spkiFromJwk(jwk, kid);
  } else if (kty === 'EC') {
    out.spki = spkiFromJwk(jwk, kid); // refuses a curve akv does not support
    const crv = jwk.crv;
    if (isCurve(crv)) {
      out.curve = crv;
      out.bits = CURVE_BITS[crv];
    }
  } else {
    out.bits = octBits;
  }
  return out;
}

/** `value[name]` when value is an object that has it; undefined otherwise. */
function fieldOf(value: unknown, name: string): unknown {
  if (typeof value !== 'object' || value === null || !(name in value)) return undefined;
  return Reflect.get(value, name);
}

function stringOf(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

function bytesOf(value: unknown): Uint8Array | undefined {
  return typeof value === 'string' ? Buffer.from(value, 'base64url') : undefined;
}

function dateOf(value: unknown): Date | undefined {
  return typeof value === 'number' ? new Date(value * 1000) : undefined;
}

function stringsOf(value: unknown): string[] | undefined {
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string') : undefined;
}

/**
 * The REST API's key bundle (`{key: JWK, attributes, tags}`, binary fields base64url, times in
 * seconds) as a KeyView, the way the SDK would convert it; `octBits` is the bundle's `key_size`
 * (0 when absent). Malformed fields are left out, so describeKey reports what is missing.
 */
export function keyViewFromBundle(
  bundle: unknown,
  name: string,
): { key: KeyView; octBits: number } {
  const jwk = fieldOf(bundle, 'key');
  const attributes = fieldOf(bundle, 'attributes');
  const kid = stringOf(fieldOf(jwk, 'kid'));
  const keyOps = stringsOf(fieldOf(jwk, 'key_ops'));
  const kty = stringOf(fieldOf(jwk, 'kty'));
  const view: JwkView = {};
  if (kid !== undefined) view.kid = kid;
  if (kty !== undefined) view.kty = kty;
  if (keyOps !== undefined) view.keyOps = keyOps;
  for (const field of ['n', 'e', 'x', 'y'] as const) {
    const bytes = bytesOf(fieldOf(jwk, field));
    if (bytes !== undefined) view[field] = bytes;
  }
  const crv = stringOf(fieldOf(jwk, 'crv'));
  if (crv !== undefined) view.crv = crv;
  const properties: KeyView['properties'] = { version: versionFromKid(kid) };
  const enabled = fieldOf(attributes, 'enabled');
  if (typeof enabled === 'boolean') properties.enabled = enabled;
  const notBefore = dateOf(fieldOf(attributes, 'nbf'));
  if (notBefore) properties.notBefore = notBefore;
  const expiresOn = dateOf(fieldOf(attributes, 'exp'));
  if (expiresOn) properties.expiresOn = expiresOn;
  const key: KeyView = { name, properties };
  if (jwk !== undefined && typeof jwk === 'object') key.key = view;
  if (kid !== undefined) key.id = kid;
  if (kty !== undefined) key.keyType = kty;
  if (keyOps !== undefined) key.keyOperations = keyOps;
  const size = fieldOf(jwk, 'key_size');
  return { key, octBits: typeof size === 'number' && Number.isInteger(size) ? size : 0 };
}
