/**
 * The recorded real exchanges (fixtures/*.json, our own format; README.md names each source) and
 * the rules for comparing an answer with a real one field by field: status, content-type,
 * www-authenticate, the x-ms-* headers, body members present and absent, their JSON types and
 * value formats (key ids, base64url, JWS, Unix times), key_ops as sets, and error messages with
 * their `(Activity ID: <x-ms-request-id>)` suffix.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface Source {
  repository: string;
  path: string;
  commit: string;
}

export interface RecordedExchange {
  name: string;
  request: {
    method: string;
    path: string;
    query: Record<string, string>;
    body?: unknown;
    /** false: sent without a token (the challenge). */
    auth?: boolean;
  };
  response: { status: number; headers: Record<string, string>; body: unknown };
}

export interface Fixture {
  file: string;
  source: Source | Source[];
  hsm: string;
  note: string;
  keys: Record<string, { name: string; kid: string }>;
  exchanges: RecordedExchange[];
}

/** Fixtures live in the source tree (test/conformance/fixtures), not in dist/. */
export const FIXTURE_DIR = join(
  dirname(fileURLToPath(import.meta.url)),
  '..',
  '..',
  '..',
  'test',
  'conformance',
  'fixtures',
);

export function loadFixtures(): Fixture[] {
  return readdirSync(FIXTURE_DIR)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((file) => ({
      file,
      ...(JSON.parse(readFileSync(join(FIXTURE_DIR, file), 'utf8')) as Omit<Fixture, 'file'>),
    }));
}

export interface AllowEntry {
  fixture: string;
  exchange: string;
  /** The difference's location, as compare() names it (e.g. "body.error.message"). */
  path: string;
  reason: string;
}

export function loadAllowList(): AllowEntry[] {
  return JSON.parse(
    readFileSync(join(FIXTURE_DIR, '..', 'allow-list.json'), 'utf8'),
  ) as AllowEntry[];
}

const B64URL = /^[A-Za-z0-9_-]+$/;
const VERSIONED_KID = /^https:\/\/[^/]+\/keys\/[0-9A-Za-z-]+\/[0-9a-f]{32}$/;
const KID = /^https:\/\/[^/]+\/keys\/[0-9A-Za-z-]+$/;
const RECOVERY_ID = /^https:\/\/[^/]+\/deletedkeys\/[0-9A-Za-z-]+$/;
const ROTATION_ID = /^https:\/\/[^/]+\/keys\/[0-9A-Za-z-]+\/rotationpolicy$/;
const JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;
const ACTIVITY = / \(Activity ID: ([0-9a-f-]{36})\)$/;

/** The format class of a string value, so that e.g. two different key ids compare equal. */
export function formatOf(value: string): string {
  if (VERSIONED_KID.test(value)) return 'versioned key id';
  if (KID.test(value)) return 'key id';
  if (RECOVERY_ID.test(value)) return 'recovery id';
  if (ROTATION_ID.test(value)) return 'rotation policy id';
  if (JWS.test(value)) return 'JWS';
  if (B64URL.test(value) && value.length >= 16) return 'base64url';
  return 'text';
}

/** Members whose values are an enumeration the service defines: compared exactly. */
const EXACT = new Set([
  'kty',
  'alg',
  'code',
  'crv',
  'enc',
  'contentType',
  'exportable',
  'enabled',
  'type',
]);

export interface Difference {
  path: string;
  real: string;
  ours: string;
}

const typeOf = (v: unknown): string =>
  v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v;

function decodeJson(b64: string): unknown {
  try {
    return JSON.parse(Buffer.from(b64, 'base64url').toString('utf8'));
  } catch {
    return undefined;
  }
}

/** Compares two JSON values by shape and format; pushes each difference found. */
export function compareBody(real: unknown, ours: unknown, path: string, out: Difference[]): void {
  const rt = typeOf(real);
  const ot = typeOf(ours);
  if (rt !== ot) {
    out.push({ path, real: rt, ours: ot });
    return;
  }
  const last = path.split('.').pop() ?? '';
  if (rt === 'object') {
    const r = real as Record<string, unknown>;
    const o = ours as Record<string, unknown>;
    for (const k of new Set([...Object.keys(r), ...Object.keys(o)])) {
      if (!(k in o)) out.push({ path: `${path}.${k}`, real: 'present', ours: 'absent' });
      else if (!(k in r)) out.push({ path: `${path}.${k}`, real: 'absent', ours: 'present' });
      else compareBody(r[k], o[k], `${path}.${k}`, out);
    }
    return;
  }
  if (rt === 'array') {
    const r = real as unknown[];
    const o = ours as unknown[];
    if (last === 'key_ops') {
      const rs = [...r].map(String).sort().join(',');
      const os = [...o].map(String).sort().join(',');
      if (rs !== os) out.push({ path, real: rs, ours: os });
      return;
    }
    if (r.length !== o.length)
      out.push({ path: `${path}.length`, real: String(r.length), ours: String(o.length) });
    for (let i = 0; i < Math.min(r.length, o.length); i++)
      compareBody(r[i], o[i], `${path}[${i}]`, out);
    return;
  }
  if (rt === 'number') {
    const ri = Number.isInteger(real);
    const oi = Number.isInteger(ours);
    if (ri !== oi)
      out.push({ path, real: ri ? 'integer' : 'number', ours: oi ? 'integer' : 'number' });
    return;
  }
  if (rt === 'boolean' || EXACT.has(last)) {
    if (real !== ours) out.push({ path, real: String(real), ours: String(ours) });
    return;
  }
  if (rt !== 'string') return;
  const r = real as string;
  const o = ours as string;
  if (last === 'message') {
    const ra = ACTIVITY.exec(r);
    const oa = ACTIVITY.exec(o);
    if (!!ra !== !!oa)
      out.push({
        path: `${path}(Activity ID)`,
        real: ra ? 'present' : 'absent',
        ours: oa ? 'present' : 'absent',
      });
    const rText = r.replace(ACTIVITY, '');
    const oText = o.replace(ACTIVITY, '');
    if (rText !== oText) out.push({ path, real: rText, ours: oText });
    return;
  }
  if (last === 'recoveryLevel' || last === 'data') {
    // The policy's data: compare the decoded JSON documents.
    if (last === 'data') return compareBody(decodeJson(r), decodeJson(o), `${path}(decoded)`, out);
    if (r !== o) out.push({ path, real: r, ours: o });
    return;
  }
  const rf = formatOf(r);
  const of = formatOf(o);
  if (rf !== of) {
    out.push({ path, real: rf, ours: of });
    return;
  }
  if (rf === 'JWS') {
    const [rh, rp] = r.split('.');
    const [oh, op] = o.split('.');
    compareBody(decodeJson(rh ?? ''), decodeJson(oh ?? ''), `${path}(JWS header)`, out);
    compareBody(decodeJson(rp ?? ''), decodeJson(op ?? ''), `${path}(JWS payload)`, out);
  } else if (last === 'key_hsm') {
    compareBody(decodeJson(r), decodeJson(o), `${path}(decoded)`, out);
  }
}

/** Header checks: content-type exactly; www-authenticate's parameters; the x-ms-* headers present. */
export function compareHeaders(
  real: Record<string, string>,
  ours: Record<string, string | string[] | undefined>,
  out: Difference[],
): void {
  const get = (k: string): string | undefined => {
    const v = ours[k];
    return Array.isArray(v) ? v.join(', ') : v;
  };
  if (real['content-type'] !== get('content-type'))
    out.push({
      path: 'headers.content-type',
      real: String(real['content-type']),
      ours: String(get('content-type')),
    });
  const params = (h: string | undefined): string =>
    h === undefined
      ? 'absent'
      : [...h.matchAll(/(\w+)="([^"]*)"/g)]
          .map(
            ([, k, v]) =>
              `${k}=${k === 'authorization' ? (v ?? '').replace(/[0-9a-f-]{36}$/, '<tenant>') : v}`,
          )
          .join(' ');
  if (params(real['www-authenticate']) !== params(get('www-authenticate')))
    out.push({
      path: 'headers.www-authenticate',
      real: params(real['www-authenticate']),
      ours: params(get('www-authenticate')),
    });
  for (const h of [
    'x-ms-server-latency',
    'x-ms-request-id',
    'x-ms-keyvault-region',
    'x-ms-keyvault-network-info',
    'cache-control',
  ]) {
    if (real[h] !== undefined && get(h) === undefined)
      out.push({ path: `headers.${h}`, real: 'present', ours: 'absent' });
  }
  const latency = get('x-ms-server-latency');
  if (latency !== undefined && !/^\d+$/.test(latency))
    out.push({ path: 'headers.x-ms-server-latency', real: 'whole milliseconds', ours: latency });
}
