/**
 * The key store's data model: one StoredKey per key name holding every version. Private JWK
 * fields (`d`, `p`, `q`, `dp`, `dq`, `qi`, `k`) live here and only here; responses are built
 * from `publicJwk()` in ./bundle.ts.
 */
import type { CurveName } from '../../crypto/ecdsa.js';

export type { CurveName };
export type KeyFamily = 'RSA' | 'EC' | 'oct';
export type HsmKeyType = 'RSA-HSM' | 'EC-HSM' | 'oct-HSM';

/** Key operations as the service spells them in `key_ops`. */
export const KEY_OPS = [
  'encrypt',
  'decrypt',
  'sign',
  'verify',
  'wrapKey',
  'unwrapKey',
  'import',
  'export',
  'deriveKey',
] as const;
export type KeyOp = (typeof KEY_OPS)[number];

export const RSA_SIZES = [2048, 3072, 4096] as const;
export const OCT_SIZES = [128, 192, 256] as const;
export const CURVES: readonly CurveName[] = ['P-256', 'P-256K', 'P-384', 'P-521'];

/** A JWK with its private parts; all binary members are base64url without padding. */
export interface PrivateJwk {
  kty: KeyFamily;
  n?: string;
  e?: string;
  d?: string;
  p?: string;
  q?: string;
  dp?: string;
  dq?: string;
  qi?: string;
  crv?: CurveName;
  x?: string;
  y?: string;
  k?: string;
}

export interface KeyAttributes {
  enabled: boolean;
  /** Not-before, Unix seconds. */
  nbf?: number;
  /** Expiry, Unix seconds. */
  exp?: number;
  created: number;
  updated: number;
  exportable: boolean;
}

/** A key release policy as stored: the policy JSON (normalised) and whether it may change. */
export interface ReleasePolicy {
  contentType: string;
  /** The policy document, parsed and checked (see ../release/policy.ts). */
  policy: Record<string, unknown>;
  immutable?: boolean;
}

/** A rotation policy as the service returns it, minus the id (built from the host). */
export interface RotationPolicy {
  lifetimeActions: {
    trigger: { timeAfterCreate?: string; timeBeforeExpiry?: string };
    action: { type: 'Rotate' | 'Notify' };
  }[];
  attributes: { expiryTime?: string; created: number; updated: number };
}

export interface KeyVersion {
  /** 32 lowercase hex characters. */
  version: string;
  kty: HsmKeyType;
  keyOps: KeyOp[];
  jwk: PrivateJwk;
  attributes: KeyAttributes;
  tags?: Record<string, string>;
  releasePolicy?: ReleasePolicy;
}

export interface DeletedInfo {
  /** Unix seconds. */
  deletedDate: number;
  scheduledPurgeDate: number;
}

export interface StoredKey {
  /** The name as first created (lookups are case-insensitive, as in the service). */
  name: string;
  /** Oldest first; the last one is the current version. */
  versions: KeyVersion[];
  deleted?: DeletedInfo;
  rotationPolicy?: RotationPolicy;
}

export function familyOf(kty: HsmKeyType): KeyFamily {
  return kty === 'RSA-HSM' ? 'RSA' : kty === 'EC-HSM' ? 'EC' : 'oct';
}

export function latestVersion(key: StoredKey): KeyVersion {
  const last = key.versions[key.versions.length - 1];
  if (!last) throw new Error(`key ${key.name} has no versions`);
  return last;
}
