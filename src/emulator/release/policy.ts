/**
 * Key release policies (secure key release): parsing and checking the policy a create, import or
 * update request carries, and deciding whether an attestation token's claims satisfy it.
 *
 * Grammar (Azure's, version 1.0.0): `{"version": "1.0.0", "anyOf": [ {"authority": URL,
 * "allOf"|"anyOf": [ condition ... ]} ]}` where a condition is `{"claim": "a.b.c", "equals": V}`
 * (V compared as text, so `"true"` matches a boolean true claim, as the recorded SDK tests use it)
 * or a nested `{"allOf"|"anyOf": [...]}`. The real service rewrites version "1.0" as "1.0.0" and
 * returns the policy re-encoded with sorted keys; so does this module. Messages the real service
 * was recorded sending are kept word for word (test/conformance/fixtures).
 */
import { badParameter } from '../errors.js';
import { isRecord } from '../../guards.js';

export type Policy = Record<string, unknown>;

/** The policy's JSON with object keys sorted, base64url-encoded (the service's `data` form). */
export function encodePolicy(policy: Policy): string {
  const sort = (v: unknown): unknown =>
    Array.isArray(v)
      ? v.map(sort)
      : isRecord(v)
        ? Object.fromEntries(
            Object.keys(v)
              .sort()
              .map((k) => [k, sort(v[k])]),
          )
        : v;
  return Buffer.from(JSON.stringify(sort(policy))).toString('base64url');
}

function fail(what: string): never {
  throw badParameter(`Key Release Policy: ${what}`);
}

const isNonEmptyList = (v: unknown): v is unknown[] => Array.isArray(v) && v.length > 0;

function checkConditions(list: unknown, where: string): void {
  if (!isNonEmptyList(list)) fail(`'${where}' must be a non-empty array`);
  for (const cond of list) {
    if (!isRecord(cond)) fail(`bad condition in ${where}`);
    if ('allOf' in cond) checkConditions(cond.allOf, 'allOf');
    else if ('anyOf' in cond) checkConditions(cond.anyOf, 'anyOf');
    else {
      if (typeof cond.claim !== 'string' || cond.claim === '')
        fail(`a condition needs a 'claim' property`);
      if (!('equals' in cond)) fail(`the condition on '${cond.claim}' needs an 'equals' property`);
    }
  }
}

/**
 * Reads the `release_policy` of a request (`{contentType?, data: base64url(JSON), immutable?}`);
 * returns the checked, normalised policy.
 */
export function parseReleasePolicy(value: unknown): {
  contentType: string;
  policy: Policy;
  immutable?: boolean;
} {
  if (!isRecord(value))
    throw badParameter('release_policy must be an object with a base64url "data" member');
  const rp = value;
  if (typeof rp.data !== 'string' || rp.data === '')
    throw badParameter('release_policy.data must be the base64url-encoded policy JSON');
  let policy: unknown;
  try {
    policy = JSON.parse(Buffer.from(rp.data, 'base64url').toString('utf8'));
  } catch {
    fail('the policy is not valid JSON');
  }
  if (!isRecord(policy)) fail('the policy must be a JSON object');
  const p: Policy = { ...policy };
  if (!('version' in p)) fail(`missing 'version' property`);
  if (p.version === '1.0') p.version = '1.0.0';
  if (p.version !== '1.0.0') fail(`unsupported version '${String(p.version)}'; use '1.0.0'`);
  const anyOf = p.anyOf;
  if (!isNonEmptyList(anyOf))
    fail(`missing 'anyOf' property (a list of authorities and their conditions)`);
  for (const entry of anyOf) {
    if (typeof entry !== 'object' || entry === null) fail(`bad entry in anyOf`);
    // An array entry is let through to the 'authority' check, whose message names the fault.
    const e: Record<string, unknown> = { ...entry };
    if (typeof e.authority !== 'string' || !/^https:\/\//.test(e.authority))
      fail(`each anyOf entry needs an 'authority' (an https URL)`);
    if ('allOf' in e) checkConditions(e.allOf, 'allOf');
    else if ('anyOf' in e) checkConditions(e.anyOf, 'anyOf');
    else fail(`the entry for ${e.authority} needs 'allOf' or 'anyOf' conditions`);
  }
  if (rp.immutable !== undefined && typeof rp.immutable !== 'boolean')
    throw badParameter('release_policy.immutable must be true or false');
  const contentType =
    typeof rp.contentType === 'string' && rp.contentType !== ''
      ? rp.contentType
      : 'application/json; charset=utf-8';
  return rp.immutable === true
    ? { contentType, policy: p, immutable: true }
    : { contentType, policy: p };
}

function claimValue(claims: Record<string, unknown>, path: string): unknown {
  if (path in claims) return claims[path];
  let v: unknown = claims;
  for (const part of path.split('.')) {
    if (typeof v !== 'object' || v === null) return undefined;
    const next: unknown = Reflect.get(v, part); // arrays too: "a.0.b"
    v = next;
  }
  return v;
}

function holds(cond: Record<string, unknown>, claims: Record<string, unknown>): boolean {
  // The policy was checked when it was stored (parseReleasePolicy): conditions are objects.
  if (Array.isArray(cond.allOf))
    return cond.allOf.every((c: unknown) => isRecord(c) && holds(c, claims));
  if (Array.isArray(cond.anyOf))
    return cond.anyOf.some((c: unknown) => isRecord(c) && holds(c, claims));
  const v = claimValue(claims, String(cond.claim));
  return v !== undefined && v !== null && String(v) === String(cond.equals);
}

const sameAuthority = (a: string, b: string): boolean =>
  a.replace(/\/+$/, '').toLowerCase() === b.replace(/\/+$/, '').toLowerCase();

/**
 * Whether a token issued by `issuer` with `claims` meets the policy: one anyOf entry whose
 * authority is the issuer and whose conditions hold. Returns why not, or undefined when it does.
 */
export function policyRefusal(
  policy: Policy,
  issuer: string,
  claims: Record<string, unknown>,
): string | undefined {
  const anyOf: unknown[] = Array.isArray(policy.anyOf) ? policy.anyOf : [];
  const entries = anyOf.filter(isRecord).filter((e) => sameAuthority(String(e.authority), issuer));
  if (entries.length === 0)
    return `the token's issuer ${issuer} is not an authority of the key's release policy`;
  if (entries.some((e) => holds(e, claims))) return undefined;
  return `the token's claims do not satisfy the key's release policy for authority ${issuer}`;
}
