/** What every API handler gets, and the checks they share (body shape, key lookup, attributes). */
import { randomBytes } from 'node:crypto';
import { HsmError, badParameter } from '../errors.js';
import { isOneOf, isRecord } from '../../guards.js';
import type { CryptoPool } from '../crypto/pool.js';
import type { KeyStore } from '../keys/store.js';
import type { Recovery } from '../keys/bundle.js';
import type { AttestationAuthority } from '../release/attestation.js';
import type { ReleaseSigner } from '../release/export.js';
import {
  KEY_OPS,
  type KeyAttributes,
  type KeyFamily,
  type KeyOp,
  type KeyVersion,
  type StoredKey,
} from '../keys/types.js';

/** What belongs to the emulated HSM as a whole rather than to one request. */
export interface HsmState {
  recovery: Recovery;
  attestation: AttestationAuthority;
  releaseSigner: ReleaseSigner;
  /** AES-256 key that seals backups (`<state-dir>/backup-key`): backups restore on this HSM only. */
  backupKey: Buffer;
}

export interface ApiContext {
  /** Host header of the request, used to build key ids. */
  host: string;
  store: KeyStore;
  hsm: HsmState;
  pool: CryptoPool;
  apiVersion: string;
  query: URLSearchParams;
  /** Parsed JSON body, undefined when empty. */
  body: unknown;
}

export interface ApiResult {
  status: number;
  body?: unknown;
}

export const ok = (body: unknown): ApiResult => ({ status: 200, body });

export function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}

export function newVersionId(): string {
  return randomBytes(16).toString('hex');
}

export function requireObject(body: unknown, what: string): Record<string, unknown> {
  if (!isRecord(body)) throw badParameter(`${what} needs a JSON object body`);
  return body;
}

export function keyNotFound(name: string, version?: string): HsmError {
  const id = version ? `${name}/${version}` : name;
  return new HsmError(
    404,
    'KeyNotFound',
    `A key with (name/id) ${id} was not found in this key vault.`,
  );
}

/** The live (not deleted) key, or KeyNotFound. */
export function findKey(ctx: ApiContext, name: string): StoredKey {
  const key = ctx.store.get(name);
  if (!key || key.deleted) throw keyNotFound(name);
  return key;
}

/** The named version, or the latest when none is given. */
export function findVersion(key: StoredKey, version: string | undefined): KeyVersion {
  if (version === undefined || version === '') {
    const last = key.versions[key.versions.length - 1];
    if (!last) throw keyNotFound(key.name);
    return last;
  }
  const found = key.versions.find((v) => v.version === version.toLowerCase());
  if (!found) throw keyNotFound(key.name, version);
  return found;
}

/** A new key's operations when the request names none (as recorded from real HSMs, 2022+). */
const DEFAULT_OPS: Record<KeyFamily, KeyOp[]> = {
  RSA: ['wrapKey', 'decrypt', 'encrypt', 'unwrapKey', 'sign', 'verify'],
  EC: ['sign', 'verify'],
  oct: ['deriveKey', 'wrapKey', 'verify', 'sign', 'unwrapKey', 'encrypt', 'decrypt'],
};

export function parseKeyOps(value: unknown, family: KeyFamily): KeyOp[] {
  if (value === undefined || value === null) return [...DEFAULT_OPS[family]];
  if (!Array.isArray(value) || !value.every((op): op is KeyOp => isOneOf(KEY_OPS, op))) {
    throw badParameter(`key_ops must be a list of: ${KEY_OPS.join(', ')}`);
  }
  return [...new Set(value)];
}

function optionalSeconds(value: unknown, field: string): number | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0) {
    throw badParameter(`attributes.${field} must be a Unix time in whole seconds`);
  }
  return value;
}

/** Applies a request's `attributes` over `base` (new keys: defaults). */
export function parseAttributes(value: unknown, base?: KeyAttributes): KeyAttributes {
  const now = nowSeconds();
  const out: KeyAttributes = base
    ? { ...base, updated: now }
    : { enabled: true, created: now, updated: now, exportable: false };
  if (value === undefined || value === null) return out;
  const attrs = requireObject(value, 'attributes');
  if (attrs.enabled !== undefined && attrs.enabled !== null) {
    if (typeof attrs.enabled !== 'boolean')
      throw badParameter('attributes.enabled must be true or false');
    out.enabled = attrs.enabled;
  }
  if ('nbf' in attrs) out.nbf = optionalSeconds(attrs.nbf, 'nbf');
  if ('exp' in attrs) out.exp = optionalSeconds(attrs.exp, 'exp');
  if (out.nbf === undefined) delete out.nbf;
  if (out.exp === undefined) delete out.exp;
  if (attrs.exportable !== undefined && attrs.exportable !== null) {
    if (typeof attrs.exportable !== 'boolean')
      throw badParameter('attributes.exportable must be true or false');
    if (base && attrs.exportable !== base.exportable)
      throw badParameter('attributes.exportable cannot be changed after the key is created');
    out.exportable = attrs.exportable;
  }
  return out;
}

/** The service's rule: exportable keys, and only they, have a release policy. */
export function checkExportable(attrs: KeyAttributes, hasPolicy: boolean): void {
  if (attrs.exportable && !hasPolicy)
    throw badParameter('Exportable keys must have release policy');
  if (!attrs.exportable && hasPolicy)
    throw badParameter('Non-exportable keys must not have release policy');
}

export function parseTags(value: unknown): Record<string, string> | undefined {
  if (value === undefined || value === null) return undefined;
  const tags = requireObject(value, 'tags');
  const entries = Object.entries(tags);
  if (entries.length > 15) throw badParameter('A key can have at most 15 tags');
  const strings: [string, string][] = [];
  for (const [k, v] of entries) {
    if (typeof v !== 'string') throw badParameter(`Tag "${k}" must have a string value`);
    strings.push([k, v]);
  }
  return Object.fromEntries(strings);
}
