/**
 * Builds the service's response shapes (key bundle, list item, deleted key bundle) from stored
 * keys. Only public JWK members are copied: this is the one place responses get key material.
 */
import type { KeyAttributes, KeyVersion, StoredKey } from './types.js';

const RECOVERABLE_DAYS = 90;
const RECOVERY_LEVEL = 'Recoverable+Purgeable';

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
    key_ops: [...v.keyOps],
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

export function attributesOut(a: KeyAttributes): Record<string, unknown> {
  const out: Record<string, unknown> = { enabled: a.enabled };
  if (a.nbf !== undefined) out.nbf = a.nbf;
  if (a.exp !== undefined) out.exp = a.exp;
  out.created = a.created;
  out.updated = a.updated;
  out.recoverableDays = RECOVERABLE_DAYS;
  out.recoveryLevel = RECOVERY_LEVEL;
  out.exportable = a.exportable;
  return out;
}

export function keyBundle(host: string, key: StoredKey, v: KeyVersion): Record<string, unknown> {
  const out: Record<string, unknown> = {
    key: publicJwk(host, key, v),
    attributes: attributesOut(v.attributes),
  };
  if (v.tags && Object.keys(v.tags).length > 0) out.tags = v.tags;
  return out;
}

export function keyItem(
  host: string,
  key: StoredKey,
  v: KeyVersion,
  withVersion: boolean,
): Record<string, unknown> {
  const out: Record<string, unknown> = {
    kid: keyIdOf(host, key.name, withVersion ? v.version : undefined),
    attributes: attributesOut(v.attributes),
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
): Record<string, unknown> {
  return { ...deletedFields(host, key), ...keyBundle(host, key, v) };
}

export function deletedKeyItem(
  host: string,
  key: StoredKey,
  v: KeyVersion,
): Record<string, unknown> {
  return { ...deletedFields(host, key), ...keyItem(host, key, v, false) };
}
