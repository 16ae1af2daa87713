/** Key management: create, import, rotate, get, list, versions, update, delete and soft-delete. */
import { randomBytes } from 'node:crypto';
import { HsmError, badParameter } from '../errors.js';
import { fromBase64Url } from '../base64url.js';
import { isRecord } from '../../guards.js';
import { deletedKeyBundle, deletedKeyItem, keyBundle, keyItem } from '../keys/bundle.js';
import { checkImportedJwk, checkKeySpec, generateKey, type KeySpec } from '../keys/generate.js';
import {
  familyOf,
  latestVersion,
  type KeyVersion,
  type PrivateJwk,
  type StoredKey,
} from '../keys/types.js';
import { parseReleasePolicy } from '../release/policy.js';
import {
  checkExportable,
  findKey,
  findVersion,
  keyNotFound,
  newVersionId,
  nowSeconds,
  ok,
  parseAttributes,
  parseKeyOps,
  parseTags,
  requireObject,
  type ApiContext,
  type ApiResult,
} from './context.js';

const DAY_SECONDS = 24 * 3600;
const MAX_PAGE = 25;

/** Appends a version to the key (creating the key), refusing names held by a deleted key. */
async function addVersion(ctx: ApiContext, name: string, version: KeyVersion): Promise<ApiResult> {
  const stored = await ctx.store.update(name, (current) => {
    if (current?.deleted) {
      throw new HsmError(
        409,
        'Conflict',
        `Key ${name} is currently in a deleted but recoverable state, and its name cannot be reused; recover or purge it`,
      );
    }
    if (!current) return { name, versions: [version] };
    current.versions.push(version);
    return current;
  });
  return ok(keyBundle(ctx.host, stored, version, ctx.hsm.recovery));
}

export async function createKey(ctx: ApiContext, name: string): Promise<ApiResult> {
  const body = requireObject(ctx.body, 'Create key');
  const spec = checkKeySpec(body);
  const version: KeyVersion = {
    version: newVersionId(),
    kty: spec.kty,
    keyOps: parseKeyOps(body.key_ops, familyOf(spec.kty)),
    jwk: await generateKey(spec),
    attributes: parseAttributes(body.attributes),
    tags: parseTags(body.tags),
  };
  withReleasePolicy(version, body.release_policy);
  return addVersion(ctx, name, version);
}

/** Sets the version's release policy from a request and applies the exportable rule. */
function withReleasePolicy(version: KeyVersion, value: unknown): void {
  if (value !== undefined && value !== null) version.releasePolicy = parseReleasePolicy(value);
  checkExportable(version.attributes, version.releasePolicy !== undefined);
}

export async function importKey(ctx: ApiContext, name: string): Promise<ApiResult> {
  const body = requireObject(ctx.body, 'Import key');
  const { kty, jwk } = checkImportedJwk(body.key);
  const version: KeyVersion = {
    version: newVersionId(),
    kty,
    // body.key is an object: checkImportedJwk refused anything else.
    keyOps: parseKeyOps(isRecord(body.key) ? body.key.key_ops : undefined, familyOf(kty)),
    jwk,
    attributes: parseAttributes(body.attributes),
    tags: parseTags(body.tags),
  };
  withReleasePolicy(version, body.release_policy);
  return addVersion(ctx, name, version);
}

/** The generation parameters of an existing version, so rotation makes the same kind of key. */
function specOf(v: KeyVersion): KeySpec {
  const bits = (field: string | undefined): number => (fromBase64Url(field ?? '')?.length ?? 0) * 8;
  if (v.jwk.kty === 'RSA') {
    return {
      kty: v.kty,
      size: bits(v.jwk.n),
      publicExponent: parseInt(fromBase64Url(v.jwk.e ?? '')?.toString('hex') || '0', 16),
    };
  }
  if (v.jwk.kty === 'EC') return { kty: v.kty, crv: v.jwk.crv };
  return { kty: v.kty, size: bits(v.jwk.k) };
}

export async function rotateKey(ctx: ApiContext, name: string): Promise<ApiResult> {
  const current = latestVersion(findKey(ctx, name));
  const spec = specOf(current);
  const jwk: PrivateJwk = await generateKey(spec);
  const version: KeyVersion = {
    version: newVersionId(),
    kty: current.kty,
    keyOps: [...current.keyOps],
    jwk,
    attributes: { ...parseAttributes(undefined), exportable: current.attributes.exportable },
    tags: current.tags ? { ...current.tags } : undefined,
    ...(current.releasePolicy ? { releasePolicy: structuredClone(current.releasePolicy) } : {}),
  };
  return addVersion(ctx, name, version);
}

export function getKey(ctx: ApiContext, name: string, version?: string): ApiResult {
  const key = findKey(ctx, name);
  return ok(keyBundle(ctx.host, key, findVersion(key, version), ctx.hsm.recovery));
}

export async function updateKey(
  ctx: ApiContext,
  name: string,
  version?: string,
): Promise<ApiResult> {
  const body = requireObject(ctx.body, 'Update key');
  const stored = await ctx.store.update(name, (current) => {
    if (!current || current.deleted) throw keyNotFound(name);
    const target = findVersion(current, version);
    const family = familyOf(target.kty);
    if (body.key_ops !== undefined) target.keyOps = parseKeyOps(body.key_ops, family);
    target.attributes = parseAttributes(body.attributes ?? {}, target.attributes);
    if (body.tags !== undefined) target.tags = parseTags(body.tags);
    if (body.release_policy !== undefined && body.release_policy !== null) {
      if (target.releasePolicy?.immutable)
        throw badParameter('The release policy of this key is immutable and cannot be changed');
      target.releasePolicy = parseReleasePolicy(body.release_policy);
      checkExportable(target.attributes, true);
    }
    return current;
  });
  return ok(keyBundle(ctx.host, stored, findVersion(stored, version), ctx.hsm.recovery));
}

export async function deleteKey(ctx: ApiContext, name: string): Promise<ApiResult> {
  const stored = await ctx.store.update(name, (current) => {
    if (!current || current.deleted) throw keyNotFound(name);
    const now = nowSeconds();
    current.deleted = {
      deletedDate: now,
      scheduledPurgeDate: now + ctx.hsm.recovery.retentionDays * DAY_SECONDS,
    };
    return current;
  });
  return ok(deletedKeyBundle(ctx.host, stored, latestVersion(stored), ctx.hsm.recovery));
}

function findDeleted(ctx: ApiContext, name: string): StoredKey {
  const key = ctx.store.get(name);
  if (!key?.deleted) {
    throw new HsmError(404, 'KeyNotFound', `Deleted Key not found: ${name}`);
  }
  return key;
}

export function getDeletedKey(ctx: ApiContext, name: string): ApiResult {
  const key = findDeleted(ctx, name);
  return ok(deletedKeyBundle(ctx.host, key, latestVersion(key), ctx.hsm.recovery));
}

export async function purgeDeletedKey(ctx: ApiContext, name: string): Promise<ApiResult> {
  findDeleted(ctx, name);
  await ctx.store.update(name, (current) => {
    if (!current?.deleted) throw new HsmError(404, 'KeyNotFound', `Deleted Key not found: ${name}`);
    return null;
  });
  return { status: 204 };
}

export async function recoverDeletedKey(ctx: ApiContext, name: string): Promise<ApiResult> {
  const stored = await ctx.store.update(name, (current) => {
    if (!current?.deleted) throw new HsmError(404, 'KeyNotFound', `Deleted Key not found: ${name}`);
    delete current.deleted;
    return current;
  });
  return ok(keyBundle(ctx.host, stored, latestVersion(stored), ctx.hsm.recovery));
}

/** One page of `items` with the service's `nextLink` (an opaque `$skiptoken`). */
function page(ctx: ApiContext, path: string, items: unknown[]): ApiResult {
  const maxText = ctx.query.get('maxresults');
  let max = MAX_PAGE;
  if (maxText !== null && maxText !== '') {
    max = Number(maxText);
    if (!Number.isInteger(max) || max < 1 || max > MAX_PAGE) {
      throw badParameter(`maxresults must be an integer from 1 to ${MAX_PAGE}`);
    }
  }
  const tokenText = ctx.query.get('$skiptoken');
  let start = 0;
  if (tokenText) {
    start = Number(
      Buffer.from(tokenText, 'base64url')
        .toString('utf8')
        .replace(/^offset:/, ''),
    );
    if (!Number.isInteger(start) || start < 0) throw badParameter('$skiptoken is not valid');
  }
  const value = items.slice(start, start + max);
  const next = start + max;
  // The real service leaves nextLink out of the last page (test/conformance fixtures).
  if (next >= items.length) return ok({ value });
  const token = Buffer.from(`offset:${next}`).toString('base64url');
  const nextLink = `https://${ctx.host}${path}?api-version=${ctx.apiVersion}&$skiptoken=${token}&maxresults=${max}`;
  return ok({ value, nextLink });
}

export function listKeys(ctx: ApiContext): ApiResult {
  const items = ctx.store
    .all()
    .filter((k) => !k.deleted)
    .map((k) => keyItem(ctx.host, k, latestVersion(k), false, ctx.hsm.recovery));
  return page(ctx, '/keys', items);
}

export function listKeyVersions(ctx: ApiContext, name: string): ApiResult {
  const key = findKey(ctx, name);
  return page(
    ctx,
    `/keys/${key.name}/versions`,
    key.versions.map((v) => keyItem(ctx.host, key, v, true, ctx.hsm.recovery)),
  );
}

export function listDeletedKeys(ctx: ApiContext): ApiResult {
  const items = ctx.store
    .all()
    .filter((k) => k.deleted)
    .map((k) => deletedKeyItem(ctx.host, k, latestVersion(k), ctx.hsm.recovery));
  return page(ctx, '/deletedkeys', items);
}

export function randomBytesOp(ctx: ApiContext): ApiResult {
  const body = requireObject(ctx.body, 'Get random bytes');
  const count = body.count;
  if (typeof count !== 'number' || !Number.isInteger(count) || count < 1 || count > 128) {
    throw badParameter('count must be an integer from 1 to 128');
  }
  return ok({ value: randomBytes(count).toString('base64url') });
}
