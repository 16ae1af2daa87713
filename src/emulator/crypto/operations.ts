/**
 * The private-key work of one request, run inside a crypto worker (./worker.ts). Inputs were
 * already checked against the key by the request handler; what can only be found out by doing
 * the operation (bad padding, failed authentication) is reported as an HsmError.
 */
import { createPrivateKey, type KeyObject } from 'node:crypto';
import { HsmError, badParameter } from '../errors.js';
import { fromBase64Url } from '../base64url.js';
import type { PrivateJwk } from '../keys/types.js';
import { ENCRYPT_ALGS, SIGN_ALGS, WRAP_ALGS, isRsaCipherAlg, isSignAlg } from './algorithms.js';
import { cbcDecrypt, cbcEncrypt, gcmDecrypt, gcmEncrypt, keyUnwrap, keyWrap } from './aes.js';
import { ecdsaVerifyDigest } from '../../crypto/ecdsa.js';
import { ecdsaSignDigestNative } from './ecdsa-native.js';
import { signRsa, verifyRsa } from '../../crypto/rsa-signature.js';
import { rsaDecrypt, rsaEncrypt } from './rsa.js';
import { randomBytes } from 'node:crypto';

export type CryptoOp = 'sign' | 'verify' | 'encrypt' | 'decrypt' | 'wrapkey' | 'unwrapkey';

export interface CryptoTask {
  op: CryptoOp;
  alg: string;
  /** Identifies the key version, so a worker can cache the parsed key. */
  keyId: string;
  jwk: PrivateJwk;
  /** The digest (sign/verify), plaintext, ciphertext or key to (un)wrap. */
  value: Uint8Array;
  /** verify: the signature. */
  signature?: Uint8Array;
  iv?: Uint8Array;
  aad?: Uint8Array;
  tag?: Uint8Array;
}

export interface CryptoResult {
  value?: Uint8Array;
  verified?: boolean;
  iv?: Uint8Array;
  tag?: Uint8Array;
  aad?: Uint8Array;
}

const MAX_CACHED_KEYS = 512;
const keyObjects = new Map<string, KeyObject>();

function rsaKey(task: CryptoTask): KeyObject {
  let key = keyObjects.get(task.keyId);
  if (!key) {
    const { kty, n, e, d, p, q, dp, dq, qi } = task.jwk;
    key = createPrivateKey({ key: { kty, n, e, d, p, q, dp, dq, qi }, format: 'jwk' });
    const oldest = keyObjects.keys().next();
    if (keyObjects.size >= MAX_CACHED_KEYS && !oldest.done) keyObjects.delete(oldest.value);
    keyObjects.set(task.keyId, key);
  }
  return key;
}

function field(jwk: PrivateJwk, name: 'd' | 'x' | 'y' | 'k'): Buffer {
  const bytes = fromBase64Url(jwk[name] ?? '');
  if (!bytes) throw new Error(`stored key lacks ${name}`);
  return bytes;
}

/** The bytes as a Buffer, without a copy (a worker receives plain Uint8Arrays). */
const toBuffer = (bytes: Uint8Array): Buffer =>
  Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
const buf = (bytes: Uint8Array | undefined): Buffer | undefined =>
  bytes === undefined ? undefined : toBuffer(bytes);

export function performCrypto(task: CryptoTask): CryptoResult {
  const value = toBuffer(task.value);
  switch (task.op) {
    case 'sign':
    case 'verify':
      return signOrVerify(task, value);
    case 'encrypt':
    case 'decrypt':
    case 'wrapkey':
    case 'unwrapkey':
      return cipher(task, value);
  }
}

function signOrVerify(task: CryptoTask, digest: Buffer): CryptoResult {
  // The handler checked the algorithm against the key (handlers/crypto.ts checkAlgorithm).
  if (!isSignAlg(task.alg))
    throw badParameter(`Algorithm ${task.alg} is not a signature algorithm`);
  const info = SIGN_ALGS[task.alg];
  if (info.scheme === 'ecdsa') {
    const crv = task.jwk.crv;
    if (!crv) throw new Error('stored key lacks crv');
    if (task.op === 'sign')
      return { value: ecdsaSignDigestNative(crv, field(task.jwk, 'd'), digest) };
    // The service verifies raw r||s only.
    const point = Buffer.concat([Buffer.from([4]), field(task.jwk, 'x'), field(task.jwk, 'y')]);
    const signature = task.signature ?? new Uint8Array();
    return { verified: ecdsaVerifyDigest(crv, point, digest, signature, ['compact']) };
  }
  const key = rsaKey(task);
  if (task.op === 'sign') {
    const value = signRsa(info.scheme, key, info.hash, digest);
    if (!value) throw badParameter(`The RSA key is too small for ${task.alg}`);
    return { value };
  }
  const signature = buf(task.signature) ?? Buffer.alloc(0);
  return { verified: verifyRsa(info.scheme, key, info.hash, digest, signature) };
}

function cipher(task: CryptoTask, value: Buffer): CryptoResult {
  const forward = task.op === 'encrypt' || task.op === 'wrapkey';
  const table = task.op === 'encrypt' || task.op === 'decrypt' ? ENCRYPT_ALGS : WRAP_ALGS;
  const info = table[task.alg];
  if (!info) throw badParameter(`Algorithm ${task.alg} is not supported for ${task.op}`);
  if (isRsaCipherAlg(task.alg)) {
    const key = rsaKey(task);
    const alg = task.alg;
    return { value: forward ? rsaEncrypt(key, alg, value) : rsaDecrypt(key, alg, value) };
  }
  const key = field(task.jwk, 'k');
  const iv = buf(task.iv);
  const aad = buf(task.aad);
  switch (info.aesMode) {
    case 'GCM': {
      if (!forward) return { value: gcmDecrypt(key, value, iv, buf(task.tag), aad) };
      const out = gcmEncrypt(key, value, aad);
      return { value: out.ciphertext, iv: out.iv, tag: out.tag, aad };
    }
    case 'CBC':
    case 'CBCPAD': {
      const pkcs7 = info.aesMode === 'CBCPAD';
      if (!forward) return { value: cbcDecrypt(key, value, iv, pkcs7) };
      const useIv = iv ?? randomBytes(16);
      return { value: cbcEncrypt(key, value, useIv, pkcs7), iv: useIv };
    }
    case 'KW':
      return { value: forward ? keyWrap(key, value) : keyUnwrap(key, value) };
    default:
      throw badParameter(`Algorithm ${task.alg} is not supported`);
  }
}

/** What a failed operation answers: its own HsmError, else a 500 that says what failed. */
export function cryptoFailure(err: unknown): HsmError {
  if (err instanceof HsmError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new HsmError(500, 'InternalServerError', `Crypto operation failed: ${message}`);
}
