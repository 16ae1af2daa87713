/**
 * sign, verify, encrypt, decrypt, wrapkey, unwrapkey: checks the request against the key (type,
 * curve, digest length, key_ops, enabled/nbf/exp) here, then runs the crypto in the worker pool.
 */
import { badParameter, forbidden } from '../errors.js';
import { fromBase64Url, toBase64Url } from '../base64url.js';
import { keyIdOf } from '../keys/bundle.js';
import { familyOf, type KeyOp, type KeyVersion } from '../keys/types.js';
import { ENCRYPT_ALGS, SIGN_ALGS, WRAP_ALGS, isSignAlg } from '../crypto/algorithms.js';
import type { CryptoOp, CryptoTask } from '../crypto/operations.js';
import {
  findKey,
  findVersion,
  nowSeconds,
  ok,
  requireObject,
  type ApiContext,
  type ApiResult,
} from './context.js';

const KEY_OP_OF: Record<CryptoOp, KeyOp> = {
  sign: 'sign',
  verify: 'verify',
  encrypt: 'encrypt',
  decrypt: 'decrypt',
  wrapkey: 'wrapKey',
  unwrapkey: 'unwrapKey',
};

/** Operations that make new protected data; an expired or not-yet-valid key refuses only these. */
const PRODUCING: readonly CryptoOp[] = ['sign', 'encrypt', 'wrapkey'];

function checkUsable(v: KeyVersion, op: CryptoOp): void {
  if (!v.attributes.enabled) {
    throw forbidden(`Operation ${op} is not allowed on a disabled key.`, 'KeyDisabled');
  }
  const now = nowSeconds();
  if (PRODUCING.includes(op)) {
    if (v.attributes.nbf !== undefined && now < v.attributes.nbf) {
      throw forbidden(
        `Operation ${op} is not allowed before the key's activation date (nbf).`,
        'KeyNotYetValid',
      );
    }
    if (v.attributes.exp !== undefined && now >= v.attributes.exp) {
      throw forbidden(`Operation ${op} is not allowed on an expired key.`, 'KeyExpired');
    }
  }
  if (!v.keyOps.includes(KEY_OP_OF[op])) {
    throw forbidden(
      `Operation ${KEY_OP_OF[op]} is not permitted on this key.`,
      'KeyOperationForbidden',
    );
  }
}

function binaryField(body: Record<string, unknown>, field: string, required: true): Buffer;
function binaryField(
  body: Record<string, unknown>,
  field: string,
  required: boolean,
): Buffer | undefined;
function binaryField(
  body: Record<string, unknown>,
  field: string,
  required: boolean,
): Buffer | undefined {
  const value = body[field];
  if (value === undefined || value === null) {
    if (required) throw badParameter(`The request lacks "${field}" (base64url)`);
    return undefined;
  }
  const bytes = typeof value === 'string' ? fromBase64Url(value) : undefined;
  if (!bytes) throw badParameter(`"${field}" must be a base64url string`);
  return bytes;
}

function checkAlgorithm(
  op: CryptoOp,
  alg: string,
  v: KeyVersion,
  body: Record<string, unknown>,
): void {
  const family = familyOf(v.kty);
  if (op === 'sign' || op === 'verify') {
    if (!isSignAlg(alg))
      throw badParameter(`Algorithm ${alg} is not a signature algorithm: use RS*, PS* or ES*`);
    const info = SIGN_ALGS[alg];
    if (info.family !== family) {
      throw badParameter(`Algorithm ${alg} needs an ${info.family} key; this key is ${v.kty}`);
    }
    if (info.curve && info.curve !== v.jwk.crv) {
      throw badParameter(`Algorithm ${alg} needs a ${info.curve} key; this key is on ${v.jwk.crv}`);
    }
    const digest = binaryField(body, op === 'sign' ? 'value' : 'digest', true);
    if (digest.length !== info.digestLength) {
      throw badParameter(
        `Invalid length of digest: ${alg} takes a ${info.digestLength}-byte digest, got ${digest.length} bytes`,
      );
    }
    return;
  }
  const table = op === 'encrypt' || op === 'decrypt' ? ENCRYPT_ALGS : WRAP_ALGS;
  const info = table[alg];
  if (!info) {
    throw badParameter(
      `Algorithm ${alg} is not supported for ${op}: use ${Object.keys(table).join(', ')}`,
    );
  }
  if (info.family !== family)
    throw badParameter(`Algorithm ${alg} needs an ${info.family} key; this key is ${v.kty}`);
  if (info.aesBits !== undefined) {
    const bits = (fromBase64Url(v.jwk.k ?? '')?.length ?? 0) * 8;
    if (bits !== info.aesBits) {
      throw badParameter(
        `Algorithm ${alg} needs a ${info.aesBits}-bit key; this key has ${bits} bits`,
      );
    }
    if (info.aesMode === 'GCM' && op === 'encrypt' && body.iv !== undefined && body.iv !== null) {
      throw badParameter('AES-GCM encryption takes no "iv": the HSM generates it and returns it');
    }
  }
}

export async function cryptoOperation(
  ctx: ApiContext,
  op: CryptoOp,
  name: string,
  versionId?: string,
): Promise<ApiResult> {
  const body = requireObject(ctx.body, `The ${op} operation`);
  const alg = body.alg;
  if (typeof alg !== 'string' || alg === '') throw badParameter('The request lacks "alg"');
  const key = findKey(ctx, name);
  const v = findVersion(key, versionId);
  checkUsable(v, op);
  checkAlgorithm(op, alg, v, body);
  const task: CryptoTask = {
    op,
    alg,
    keyId: `${key.name.toLowerCase()}/${v.version}`,
    jwk: v.jwk,
    value: binaryField(body, op === 'verify' ? 'digest' : 'value', true),
    signature: op === 'verify' ? binaryField(body, 'value', true) : undefined,
    iv: binaryField(body, 'iv', false),
    aad: binaryField(body, 'aad', false),
    tag: binaryField(body, 'tag', false),
  };
  const result = await ctx.pool.run(task);
  if (op === 'verify') return ok({ value: result.verified === true });
  const out: Record<string, unknown> = { kid: keyIdOf(ctx.host, key.name, v.version) };
  if (result.value) out.value = toBase64Url(result.value);
  out.alg = alg;
  if (result.iv) out.iv = toBase64Url(result.iv);
  if (result.tag) out.tag = toBase64Url(result.tag);
  if (result.aad) out.aad = toBase64Url(result.aad);
  return ok(out);
}
