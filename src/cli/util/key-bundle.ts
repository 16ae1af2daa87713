/**
 * Key material formats for the `key` command: the JSON akv prints (shaped like `az keyvault key`
 * output, public parts only) and the conversion of PEM / JWK files into the SDK's JsonWebKey.
 */
import { createPrivateKey } from 'node:crypto';
import type {
  DeletedKey,
  JsonWebKey,
  KeyProperties,
  KeyReleasePolicy,
  KeyRotationPolicy,
  KeyVaultKey,
} from '@azure/keyvault-keys';
import { UsageError } from '../command.js';
import { errorMessage } from '../../errors.js';

const b64u = (v: Uint8Array | undefined): string | undefined =>
  v && v.length > 0 ? Buffer.from(v).toString('base64url') : undefined;
const iso = (d: Date | undefined): string | undefined => d?.toISOString();

function dropUndefined<T extends Record<string, unknown>>(o: T): Partial<T> {
  // Object.fromEntries types its result by the values only; the keys are o's own, a subset of T's.
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

function attributes(p: KeyProperties): Record<string, unknown> {
  return dropUndefined({
    enabled: p.enabled,
    notBefore: iso(p.notBefore),
    expires: iso(p.expiresOn),
    created: iso(p.createdOn),
    updated: iso(p.updatedOn),
    recoverableDays: p.recoverableDays,
    recoveryLevel: p.recoveryLevel,
    exportable: p.exportable,
  });
}

function releasePolicyJson(p: KeyReleasePolicy | undefined): Record<string, unknown> | undefined {
  if (!p) return undefined;
  return dropUndefined({
    contentType: p.contentType,
    data: p.encodedPolicy ? Buffer.from(p.encodedPolicy).toString('base64url') : undefined,
    immutable: p.immutable,
  });
}

/** `az keyvault key show` shape: attributes, key (public JWK), managed, tags. Never private parts. */
export function keyBundleJson(key: KeyVaultKey | DeletedKey): Record<string, unknown> {
  const jwk = key.key;
  return dropUndefined({
    attributes: attributes(key.properties),
    key: jwk
      ? dropUndefined({
          kid: key.id ?? jwk.kid,
          kty: jwk.kty,
          keyOps: key.keyOperations ?? jwk.keyOps,
          n: b64u(jwk.n),
          e: b64u(jwk.e),
          crv: jwk.crv,
          x: b64u(jwk.x),
          y: b64u(jwk.y),
        })
      : undefined,
    managed: key.properties.managed,
    releasePolicy: releasePolicyJson(key.properties.releasePolicy),
    tags:
      key.properties.tags && Object.keys(key.properties.tags).length > 0
        ? key.properties.tags
        : undefined,
  });
}

/** `az keyvault key show-deleted` shape: the key bundle plus recoveryId and the two dates. */
export function deletedKeyJson(key: DeletedKey): Record<string, unknown> {
  return dropUndefined({
    ...keyBundleJson(key),
    recoveryId: key.properties.recoveryId,
    deletedDate: iso(key.properties.deletedOn),
    scheduledPurgeDate: iso(key.properties.scheduledPurgeDate),
  });
}

/** `az keyvault key list-deleted` entry. */
export function deletedKeyListEntryJson(key: DeletedKey): Record<string, unknown> {
  return dropUndefined({
    ...keyListEntryJson(key.properties),
    recoveryId: key.properties.recoveryId,
    deletedDate: iso(key.properties.deletedOn),
    scheduledPurgeDate: iso(key.properties.scheduledPurgeDate),
  });
}

/** The rotation policy in the service's (and az's) shape. */
export function rotationPolicyJson(p: KeyRotationPolicy): Record<string, unknown> {
  return {
    id: p.id,
    lifetimeActions: (p.lifetimeActions ?? []).map((a) =>
      dropUndefined({
        action: a.action,
        timeAfterCreate: a.timeAfterCreate,
        timeBeforeExpiry: a.timeBeforeExpiry,
      }),
    ),
    attributes: dropUndefined({
      expiryTime: p.expiresIn,
      created: iso(p.createdOn),
      updated: iso(p.updatedOn),
    }),
  };
}

/** `az keyvault key list` shape. */
export function keyListEntryJson(p: KeyProperties): Record<string, unknown> {
  const kid = p.id?.replace(/\/[0-9a-fA-F]{32}$/, '');
  return dropUndefined({
    kid,
    name: p.name,
    attributes: attributes(p),
    managed: p.managed,
    tags: p.tags && Object.keys(p.tags).length > 0 ? p.tags : undefined,
  });
}

/** `key list-versions`-like entry with its version. */
export function keyVersionEntryJson(p: KeyProperties): Record<string, unknown> {
  return dropUndefined({ kid: p.id, version: p.version, attributes: attributes(p) });
}

const JWK_BINARY_FIELDS = ['n', 'e', 'd', 'dp', 'dq', 'qi', 'p', 'q', 'x', 'y', 'k', 't'] as const;

/** Node's JWK names secp256k1 differently from Azure. */
function azureCurve(crv: string | undefined): string | undefined {
  return crv === 'secp256k1' ? 'P-256K' : crv;
}

/** A JWK in the JSON form (base64url strings, key_ops) → the SDK's JsonWebKey (bytes, keyOps). */
export function sdkJwkFromJson(json: Record<string, unknown>, origin: string): JsonWebKey {
  const kty = json.kty;
  if (typeof kty !== 'string') throw new UsageError(`key import: ${origin} has no "kty"`);
  const out: JsonWebKey = { kty };
  for (const f of JWK_BINARY_FIELDS) {
    const v = json[f];
    if (v === undefined) continue;
    if (typeof v !== 'string' || !/^[A-Za-z0-9_-]*={0,2}$/.test(v))
      throw new UsageError(`key import: "${f}" in ${origin} is not base64url`);
    out[f] = new Uint8Array(Buffer.from(v, 'base64url'));
  }
  if (typeof json.crv === 'string') out.crv = azureCurve(json.crv);
  const ops = json.key_ops ?? json.keyOps;
  if (Array.isArray(ops)) out.keyOps = ops.map(String);
  return out;
}

/** A PEM private key (PKCS#8, PKCS#1, SEC1; encrypted with a password too) → SDK JsonWebKey. */
export function sdkJwkFromPem(pem: Buffer, origin: string, password?: string): JsonWebKey {
  let jwk: Record<string, unknown>;
  try {
    const key = createPrivateKey(
      password === undefined
        ? { key: pem, format: 'pem' }
        : { key: pem, format: 'pem', passphrase: password },
    );
    jwk = key.export({ format: 'jwk' });
  } catch (err) {
    throw new UsageError(
      `key import: ${origin} is not a readable PEM private key (${errorMessage(err)})${password === undefined ? '; if it is encrypted, give --pem-password' : ''}`,
    );
  }
  if (jwk.kty !== 'RSA' && jwk.kty !== 'EC')
    throw new UsageError(
      `key import: ${origin} holds a ${String(jwk.kty)} key; only RSA and EC keys can be imported`,
    );
  return sdkJwkFromJson(jwk, origin);
}
