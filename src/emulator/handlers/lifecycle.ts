/**
 * Key life-cycle operations beyond create/get/delete: secure key release, rotation policy, and
 * backup/restore. Backups are sealed (AES-256-GCM) with `<state-dir>/backup-key`, so, like a real
 * HSM's backups (bound to its security domain), they restore only into the emulator they came from.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { HsmError, badParameter } from '../errors.js';
import { attributesOut, keyBundle, keyIdOf, publicJwk, releasePolicyOut } from '../keys/bundle.js';
import { latestVersion, type RotationPolicy, type StoredKey } from '../keys/types.js';
import { parseStoredKey } from '../keys/store.js';
import { isOneOf } from '../../guards.js';
import { verifyAttestationToken } from '../release/attestation.js';
import { RELEASE_ENCS, signRelease, wrapForTarget, wrappingKeyOf } from '../release/export.js';
import { policyRefusal } from '../release/policy.js';
import {
  findKey,
  findVersion,
  keyNotFound,
  nowSeconds,
  ok,
  requireObject,
  type ApiContext,
  type ApiResult,
} from './context.js';

// eslint-disable-next-line @typescript-eslint/require-await -- async so that a throw reaches the caller as a rejected promise, as the interface says
export async function releaseKey(
  ctx: ApiContext,
  name: string,
  version?: string,
): Promise<ApiResult> {
  const body = requireObject(ctx.body, 'Release key');
  const key = findKey(ctx, name);
  const v = findVersion(key, version);
  const enc = body.enc ?? 'CKM_RSA_AES_KEY_WRAP';
  if (!isOneOf(RELEASE_ENCS, enc))
    throw badParameter(`enc must be one of ${RELEASE_ENCS.join(', ')}`);
  if (body.nonce !== undefined && typeof body.nonce !== 'string')
    throw badParameter('nonce must be a string');
  if (!v.attributes.exportable || !v.releasePolicy)
    throw new HsmError(
      403,
      'Forbidden',
      `Key ${name} is not exportable: only keys created exportable with a release policy can be released`,
      'KeyNotExportable',
    );
  if (!v.attributes.enabled)
    throw new HsmError(
      403,
      'Forbidden',
      'Operation release is not allowed on a disabled key.',
      'KeyDisabled',
    );
  const token = verifyAttestationToken(ctx.hsm.attestation, body.target, nowSeconds());
  const refusal = policyRefusal(v.releasePolicy.policy, token.issuer, token.claims);
  if (refusal)
    throw new HsmError(403, 'Forbidden', `Key release refused: ${refusal}`, 'AccessDenied');
  const target = wrappingKeyOf(token.claims);
  // As recorded: the released JWK names the plain key type (RSA, not RSA-HSM), and the request's
  // kid is the key id as the caller addressed it (version-less when no version was given).
  const jwk = {
    ...publicJwk(ctx.host, key, v),
    kty: v.jwk.kty,
    key_hsm: wrapForTarget(v.jwk, target, enc),
  };
  const kid = keyIdOf(ctx.host, key.name, version ? v.version : undefined);
  const payload = {
    request: {
      'api-version': ctx.apiVersion,
      enc,
      kid,
      ...(body.nonce !== undefined ? { nonce: body.nonce } : {}),
    },
    response: {
      key: {
        key: jwk,
        attributes: attributesOut(v.attributes, ctx.hsm.recovery),
        release_policy: releasePolicyOut(v.releasePolicy),
      },
    },
  };
  return ok({ value: signRelease(ctx.hsm.releaseSigner, payload) });
}

/** ISO 8601 durations as the service takes them (P90D, P1Y2M, PT12H ...). */
const DURATION = /^P(?!$)(\d+Y)?(\d+M)?(\d+W)?(\d+D)?(T(?=\d)(\d+H)?(\d+M)?(\d+S)?)?$/;

function duration(value: unknown, field: string): string {
  if (typeof value !== 'string' || !DURATION.test(value))
    throw badParameter(
      `${field} must be an ISO 8601 duration such as P90D, got ${JSON.stringify(value)}`,
    );
  return value;
}

function rotationPolicyOut(ctx: ApiContext, key: StoredKey): Record<string, unknown> {
  const p = key.rotationPolicy;
  return {
    id: `https://${ctx.host}/keys/${key.name}/rotationpolicy`,
    lifetimeActions: p ? p.lifetimeActions : [],
    attributes: p ? p.attributes : {},
  };
}

export function getRotationPolicy(ctx: ApiContext, name: string): ApiResult {
  return ok(rotationPolicyOut(ctx, findKey(ctx, name)));
}

function parseRotationPolicy(
  body: Record<string, unknown>,
  previous?: RotationPolicy,
): RotationPolicy {
  const now = nowSeconds();
  const actions = body.lifetimeActions ?? [];
  if (!Array.isArray(actions)) throw badParameter('lifetimeActions must be a list');
  const lifetimeActions = actions.map((a: unknown, i) => {
    const action = requireObject(a, `lifetimeActions[${i}]`);
    const trigger = requireObject(action.trigger, `lifetimeActions[${i}].trigger`);
    const type = String(requireObject(action.action, `lifetimeActions[${i}].action`).type ?? '');
    const kind: 'Rotate' | 'Notify' | undefined =
      type.toLowerCase() === 'rotate'
        ? 'Rotate'
        : type.toLowerCase() === 'notify'
          ? 'Notify'
          : undefined;
    if (!kind) throw badParameter(`lifetimeActions[${i}].action.type must be Rotate or Notify`);
    const after = trigger.timeAfterCreate;
    const before = trigger.timeBeforeExpiry;
    if ((after === undefined) === (before === undefined))
      throw badParameter(
        `lifetimeActions[${i}].trigger needs exactly one of timeAfterCreate or timeBeforeExpiry`,
      );
    return {
      trigger:
        after !== undefined
          ? { timeAfterCreate: duration(after, 'timeAfterCreate') }
          : { timeBeforeExpiry: duration(before, 'timeBeforeExpiry') },
      action: { type: kind },
    };
  });
  const attrs =
    body.attributes === undefined || body.attributes === null
      ? {}
      : requireObject(body.attributes, 'attributes');
  const expiryTime =
    attrs.expiryTime === undefined || attrs.expiryTime === null
      ? undefined
      : duration(attrs.expiryTime, 'attributes.expiryTime');
  if (lifetimeActions.some((a) => a.trigger.timeBeforeExpiry !== undefined) && !expiryTime)
    throw badParameter('A timeBeforeExpiry trigger needs attributes.expiryTime');
  return {
    lifetimeActions,
    attributes: {
      ...(expiryTime ? { expiryTime } : {}),
      created: previous?.attributes.created ?? now,
      updated: now,
    },
  };
}

export async function setRotationPolicy(ctx: ApiContext, name: string): Promise<ApiResult> {
  const body = requireObject(ctx.body, 'Update key rotation policy');
  findKey(ctx, name);
  const stored = await ctx.store.update(name, (current) => {
    if (!current || current.deleted) throw keyNotFound(name);
    current.rotationPolicy = parseRotationPolicy(body, current.rotationPolicy);
    return current;
  });
  return ok(rotationPolicyOut(ctx, stored));
}

const BACKUP_PREFIX = 'akv-emulator-backup-1.';

export function backupKey(ctx: ApiContext, name: string): ApiResult {
  const key = findKey(ctx, name);
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', ctx.hsm.backupKey, iv);
  const live: StoredKey = { ...key };
  delete live.deleted;
  const sealed = Buffer.concat([cipher.update(JSON.stringify(live)), cipher.final()]);
  const blob = Buffer.concat([iv, cipher.getAuthTag(), sealed]);
  return ok({
    value: Buffer.from(BACKUP_PREFIX + blob.toString('base64url')).toString('base64url'),
  });
}

export async function restoreKey(ctx: ApiContext): Promise<ApiResult> {
  const body = requireObject(ctx.body, 'Restore key');
  if (typeof body.value !== 'string' || body.value === '')
    throw badParameter('value must be a key backup (base64url)');
  const text = Buffer.from(body.value, 'base64url').toString('utf8');
  const blob = text.startsWith(BACKUP_PREFIX)
    ? Buffer.from(text.slice(BACKUP_PREFIX.length), 'base64url')
    : undefined;
  let key: StoredKey | undefined;
  if (blob && blob.length > 28) {
    try {
      const decipher = createDecipheriv('aes-256-gcm', ctx.hsm.backupKey, blob.subarray(0, 12));
      decipher.setAuthTag(blob.subarray(12, 28));
      const plain = Buffer.concat([decipher.update(blob.subarray(28)), decipher.final()]);
      key = parseStoredKey(plain.toString('utf8'));
    } catch {
      key = undefined;
    }
  }
  if (!key || key.versions.length === 0)
    throw badParameter(
      'The backup blob is not valid for this HSM: it is damaged, or was made by another emulator state directory (backups restore only where they were made)',
    );
  const restored = key;
  const stored = await ctx.store.update(restored.name, (current) => {
    if (current)
      throw new HsmError(
        409,
        'Conflict',
        current.deleted
          ? `Key ${restored.name} is currently in a deleted but recoverable state; recover or purge it before restoring`
          : `Key ${restored.name} already exists; delete and purge it, or restore into another HSM`,
      );
    return restored;
  });
  return ok(keyBundle(ctx.host, stored, latestVersion(stored), ctx.hsm.recovery));
}
