/**
 * Maps a request's method and path to one Managed HSM operation. Empty path segments are
 * dropped because the JS SDK writes `/keys/k1//sign` for version-less key ids.
 */
import { HsmError, badParameter } from '../errors.js';
import { isOneOf } from '../../guards.js';
import type { CryptoOp } from '../crypto/operations.js';

/** Operation names, as used by fault injection and the stats endpoint. */
export type ApiOperation =
  | 'create'
  | 'import'
  | 'get'
  | 'list'
  | 'versions'
  | 'update'
  | 'delete'
  | 'rotate'
  | 'listdeleted'
  | 'getdeleted'
  | 'purge'
  | 'recover'
  | 'rng'
  | 'release'
  | 'getrotationpolicy'
  | 'setrotationpolicy'
  | 'backup'
  | 'restore'
  | CryptoOp;

/** The key operations the HSM runs (`POST /keys/{name}[/{version}]/{op}`). */
const CRYPTO_OPS: readonly CryptoOp[] = [
  'sign',
  'verify',
  'encrypt',
  'decrypt',
  'wrapkey',
  'unwrapkey',
];

function isCryptoOp(segment: string): segment is CryptoOp {
  return isOneOf(CRYPTO_OPS, segment);
}

export const API_OPERATIONS: readonly ApiOperation[] = [
  'create',
  'import',
  'get',
  'list',
  'versions',
  'update',
  'delete',
  'rotate',
  'listdeleted',
  'getdeleted',
  'purge',
  'recover',
  'rng',
  'release',
  'getrotationpolicy',
  'setrotationpolicy',
  'backup',
  'restore',
  ...CRYPTO_OPS,
];

export interface ApiRoute {
  operation: ApiOperation;
  name?: string;
  version?: string;
}

const KEY_NAME = /^[0-9a-zA-Z-]{1,127}$/;

function keyName(segment: string): string {
  if (!KEY_NAME.test(segment)) {
    throw badParameter(`Key name '${segment}' is not valid: use 1-127 letters, digits and dashes`);
  }
  return segment;
}

function notFound(method: string, path: string): HsmError {
  return new HsmError(
    404,
    'NotFound',
    `${method} ${path} is not an operation of the Managed HSM keys API`,
  );
}

export function splitPath(pathname: string): string[] {
  return pathname
    .split('/')
    .filter((s) => s !== '')
    .map((s) => {
      try {
        return decodeURIComponent(s);
      } catch {
        return s;
      }
    });
}

/** Throws NotFound/BadParameter for paths and methods the API does not have. */
export function route(method: string, pathname: string): ApiRoute {
  const seg = splitPath(pathname);
  // Each segment is read only where seg.length says it is there; '' stands for a missing one.
  const [root, a = '', b = '', c = ''] = seg;
  const fail = (): never => {
    throw notFound(method, pathname);
  };
  if (root === 'rng' && seg.length === 1 && method === 'POST') return { operation: 'rng' };
  if (root === 'deletedkeys') {
    if (seg.length === 1 && method === 'GET') return { operation: 'listdeleted' };
    if (seg.length === 2 && method === 'GET') return { operation: 'getdeleted', name: keyName(a) };
    if (seg.length === 2 && method === 'DELETE') return { operation: 'purge', name: keyName(a) };
    if (seg.length === 3 && b === 'recover' && method === 'POST') {
      return { operation: 'recover', name: keyName(a) };
    }
    return fail();
  }
  if (root !== 'keys' || seg.length > 4) return fail();
  if (seg.length === 1) return method === 'GET' ? { operation: 'list' } : fail();
  if (seg.length === 2 && a === 'restore' && method === 'POST') return { operation: 'restore' };
  const name = keyName(a);
  if (seg.length === 2) {
    if (method === 'GET') return { operation: 'get', name };
    if (method === 'PUT') return { operation: 'import', name };
    if (method === 'PATCH') return { operation: 'update', name };
    if (method === 'DELETE') return { operation: 'delete', name };
    return fail();
  }
  const third = b;
  if (seg.length === 3) {
    if (method === 'GET' && third === 'versions') return { operation: 'versions', name };
    if (method === 'POST' && third === 'create') return { operation: 'create', name };
    if (method === 'POST' && third === 'rotate') return { operation: 'rotate', name };
    if (method === 'POST' && third === 'release') return { operation: 'release', name };
    if (method === 'POST' && third === 'backup') return { operation: 'backup', name };
    if (third === 'rotationpolicy') {
      if (method === 'GET') return { operation: 'getrotationpolicy', name };
      if (method === 'PUT') return { operation: 'setrotationpolicy', name };
      return fail();
    }
    if (method === 'POST' && isCryptoOp(third)) return { operation: third, name };
    if (method === 'GET') return { operation: 'get', name, version: third };
    if (method === 'PATCH') return { operation: 'update', name, version: third };
    return fail();
  }
  const fourth = c;
  if (method === 'POST' && isCryptoOp(fourth)) return { operation: fourth, name, version: third };
  if (method === 'POST' && fourth === 'release')
    return { operation: 'release', name, version: third };
  return fail();
}
