/**
 * Every algorithm the emulator accepts, with what it needs from the key and the request. The
 * request handlers check these before any crypto runs so errors match the service's.
 */
import type { CurveName, KeyFamily } from '../keys/types.js';

export type SignAlg =
  | 'RS256'
  | 'RS384'
  | 'RS512'
  | 'PS256'
  | 'PS384'
  | 'PS512'
  | 'ES256'
  | 'ES256K'
  | 'ES384'
  | 'ES512';

export interface SignAlgInfo {
  family: 'RSA' | 'EC';
  /** Digest length the request's `value`/`digest` must have. */
  digestLength: number;
  hash: 'sha256' | 'sha384' | 'sha512';
  scheme: 'pkcs1' | 'pss' | 'ecdsa';
  curve?: CurveName;
}

export const SIGN_ALGS: Record<SignAlg, SignAlgInfo> = {
  RS256: { family: 'RSA', digestLength: 32, hash: 'sha256', scheme: 'pkcs1' },
  RS384: { family: 'RSA', digestLength: 48, hash: 'sha384', scheme: 'pkcs1' },
  RS512: { family: 'RSA', digestLength: 64, hash: 'sha512', scheme: 'pkcs1' },
  PS256: { family: 'RSA', digestLength: 32, hash: 'sha256', scheme: 'pss' },
  PS384: { family: 'RSA', digestLength: 48, hash: 'sha384', scheme: 'pss' },
  PS512: { family: 'RSA', digestLength: 64, hash: 'sha512', scheme: 'pss' },
  ES256: { family: 'EC', digestLength: 32, hash: 'sha256', scheme: 'ecdsa', curve: 'P-256' },
  ES256K: { family: 'EC', digestLength: 32, hash: 'sha256', scheme: 'ecdsa', curve: 'P-256K' },
  ES384: { family: 'EC', digestLength: 48, hash: 'sha384', scheme: 'ecdsa', curve: 'P-384' },
  ES512: { family: 'EC', digestLength: 64, hash: 'sha512', scheme: 'ecdsa', curve: 'P-521' },
};

/** A signature algorithm the emulator knows (own keys of SIGN_ALGS only, not Object's). */
export function isSignAlg(alg: string): alg is SignAlg {
  return Object.hasOwn(SIGN_ALGS, alg);
}

export type RsaCipherAlg = 'RSA1_5' | 'RSA-OAEP' | 'RSA-OAEP-256';
export type AesMode = 'GCM' | 'CBC' | 'CBCPAD' | 'KW';

export interface CipherAlgInfo {
  family: KeyFamily;
  /** AES key bits the algorithm needs (oct only). */
  aesBits?: number;
  aesMode?: AesMode;
}

const RSA_CIPHERS: Record<RsaCipherAlg, CipherAlgInfo> = {
  RSA1_5: { family: 'RSA' },
  'RSA-OAEP': { family: 'RSA' },
  'RSA-OAEP-256': { family: 'RSA' },
};

export function isRsaCipherAlg(alg: string): alg is RsaCipherAlg {
  return Object.hasOwn(RSA_CIPHERS, alg);
}

function aes(mode: AesMode): Record<string, CipherAlgInfo> {
  const out: Record<string, CipherAlgInfo> = {};
  for (const bits of [128, 192, 256])
    out[`A${bits}${mode}`] = { family: 'oct', aesBits: bits, aesMode: mode };
  return out;
}

/** encrypt/decrypt algorithms. */
export const ENCRYPT_ALGS: Record<string, CipherAlgInfo> = {
  ...RSA_CIPHERS,
  ...aes('GCM'),
  ...aes('CBC'),
  ...aes('CBCPAD'),
};

/** wrapkey/unwrapkey algorithms. */
export const WRAP_ALGS: Record<string, CipherAlgInfo> = { ...RSA_CIPHERS, ...aes('KW') };
