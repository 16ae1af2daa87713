/**
 * Builds the service's response shapes (key bundle, list item, deleted key bundle) from stored
 * keys. Only public JWK members are copied: this is the one place responses get key material.
 * As on a real HSM, `key_ops` come in a different order from one response to the next (clients
 * must not depend on it), and recoverableDays/recoveryLevel follow the HSM's retention setting.
 */
import { randomInt } from 'node:crypto';
import { encodePolicy } from '../release/policy.js';
import type { KeyAttributes, KeyVersion, ReleasePolicy, StoredKey } from './types.js';

/** What the HSM's soft-delete retention makes of every key's attributes. */
export interface Recovery {
  /** 7 to 90; a real HSM created today defaults to 7. */
  retentionDays: number;
}

export const DEFAULT_RETENTION_DAYS = 7;

/** The service's recoveryLevel for a retention period (90 days is the non-customised level). */
export function recoveryLevel(r: Recovery): string {
  return r.retentionDays === 90 ? 'Recoverable+Purgeable' : 'CustomizedRecoverable+Purgeable';
}

function shuffled<T extends string>(items: readonly T[]): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = randomInt(i + 1);
    const [a, b] = [out[i], out[j]];
    if (a !== undefined && b !== undefined) [out[i], out[j]] = [b, a]; // both are: j <= i < length
  }
  return out;
}

export function keyIdOf(host: string, name: string, version?: string): string {
  return version ? `https://${host}/keys/${name}/${version}` : `https://${host}/keys/${name}`;
}

export interface PublicJwkOut {
  kid: string;
  kty: string;
  key_ops: string[];
  n?: string;
  e?: string;
  crv?: string;
  x?: string;
  y?: string;
}

export function publicJwk(host: string, key: StoredKey, v: KeyVersion): PublicJwkOut {
  const out: PublicJwkOut = {
    kid: keyIdOf(host, key.name, v.version),
    kty: v.kty,
    key_ops: shuffled(v.keyOps),
  };
  if (v.jwk.kty === 'RSA') {
    out.n = v.jwk.n;
    out.e = v.jwk.e;
  } else if (v.jwk.kty === 'EC') {
    out.crv = v.jwk.crv;
    out.x = v.jwk.x;
    out.y = v.jwk.y;
  }
  return out;
}

export function attributesOut(a: KeyAttributes, r: Recovery): Record<string, unknown> {
  const out: Record<string, unknown> = { enabled: a.enabled };
  if (a.nbf !== undefined) out.nbf = a.nbf;
  if (a.exp !== undefined) out.exp = a.exp;
  out.created = a.created;
  out.updated = a.updated;
  out.recoverableDays = r.retentionDays;
  out.recoveryLevel = recoveryLevel(r);
  out.exportable = a.exportable;
  return out;
}

export function releasePolicyOut(p: ReleasePolicy): Record<string, unknown> {
  const out: Record<string, unknown> = { contentType: p.contentType, data: encodePolicy(p.policy) };
  if (p.immutable) out.immutable = true;
  return out;
}

export function keyBundle(
  host: string,
  key: StoredKey,
  v: KeyVersion,
  r: Recovery,
): Record<string, unknown> {
  const out: Record<string, unknown> = {
    key: publicJwk(host, key, v),
    attributes: attributesOut(v.attributes, r),
  };
  if (v.tags && Object.keys(v.tags).length > 0) out.tags = v.tags;
  if (v.releasePolicy) out.release_policy = releasePolicyOut(v.releasePolicy);
  return out;
}

export function keyItem(
  host: string,
  key: StoredKey,
  v: KeyVersion,
  withVersion: boolean,
  r: Recovery,
): Record<string, unknown> {
  const out: Record<string, unknown> = {
    kid: keyIdOf(host, key.name, withVersion ? v.version : undefined),
    attributes: attributesOut(v.attributes, r),
  };
  if (v.tags && Object.keys(v.tags).length > 0) out.tags = v.tags;
  return out;
}

function deletedFields(host: string, key: StoredKey): Record<string, unknown> {
  return {
    recoveryId: `https://${host}/deletedkeys/${key.name}`,
    deletedDate: key.deleted?.deletedDate,
    scheduledPurgeDate: key.deleted?.scheduledPurgeDate,
  };
}

export function deletedKeyBundle(
  host: string,
  key: StoredKey,
  v: KeyVersion,
  r: Recovery,
): Record<string, unknown> {
  return { ...deletedFields(host, key), ...keyBundle(host, key, v, r) };
}

export function deletedKeyItem(
  host: string,
  key: StoredKey,
  v: KeyVersion,
  r: Recovery,
): Record<string, unknown> {
  return { ...deletedFields(host, key), ...keyItem(host, key, v, false, r) };
}
