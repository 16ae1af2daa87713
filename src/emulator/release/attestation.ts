/**
 * The emulator's test attestation authority (TEST ONLY: it stands in for Microsoft Azure
 * Attestation so that key release can be exercised locally). Its RS256 private key is
 * `<state-dir>/attestation-key.pem` (0600, made on first start); the emulator trusts exactly the
 * tokens signed with it. Whoever can read that file can release every exportable key of this
 * emulator, which is the point for tests and the reason it must never guard a real secret.
 */
import {
  createPublicKey,
  generateKeyPairSync,
  verify,
  type KeyObject,
  createPrivateKey,
} from 'node:crypto';
import { open, readFile, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { badParameter } from '../errors.js';
import { errnoCode } from '../../errors.js';
import { isRecord } from '../../guards.js';

export const ATTESTATION_KEY_FILE = 'attestation-key.pem';

export interface AttestationAuthority {
  keyFile: string;
  publicKey: KeyObject;
}

export async function ensureAttestationAuthority(stateDir: string): Promise<AttestationAuthority> {
  const keyFile = join(stateDir, ATTESTATION_KEY_FILE);
  let pem: string;
  try {
    pem = await readFile(keyFile, 'utf8');
  } catch (err) {
    if (errnoCode(err) !== 'ENOENT') throw err;
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    pem = privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
    const temp = `${keyFile}.${process.pid}.tmp`;
    const handle = await open(temp, 'w', 0o600);
    try {
      await handle.writeFile(pem);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, keyFile);
  }
  return { keyFile, publicKey: createPublicKey(createPrivateKey(pem)) };
}

export interface VerifiedToken {
  issuer: string;
  claims: Record<string, unknown>;
}

function refuse(why: string): never {
  throw badParameter(`Target environment attestation statement cannot be verified: ${why}`);
}

function decodePart(part: string, what: string): Record<string, unknown> {
  try {
    const v: unknown = JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
    if (isRecord(v)) return v;
  } catch {
    // reported below
  }
  return refuse(`the token's ${what} is not a base64url JSON object`);
}

/** Checks an attestation token (compact JWS, RS256) against the authority's key and the clock. */
export function verifyAttestationToken(
  authority: AttestationAuthority,
  token: unknown,
  nowSeconds: number,
): VerifiedToken {
  if (typeof token !== 'string' || token === '')
    throw badParameter('target must be an attestation token (a JWT)');
  const parts = token.split('.');
  if (parts.length !== 3) refuse('it is not a JWT (three dot-separated parts)');
  const [h = '', p = '', s = ''] = parts; // three, as just checked
  const header = decodePart(h, 'header');
  if (header.alg !== 'RS256') refuse(`alg ${String(header.alg)} is not RS256`);
  const good = verify(
    'sha256',
    Buffer.from(`${h}.${p}`),
    authority.publicKey,
    Buffer.from(s, 'base64url'),
  );
  if (!good) refuse('the signature is not from a trusted attestation authority');
  const claims = decodePart(p, 'payload');
  if (typeof claims.exp === 'number' && claims.exp < nowSeconds) refuse('the token has expired');
  if (typeof claims.nbf === 'number' && claims.nbf > nowSeconds + 300)
    refuse('the token is not valid yet');
  if (typeof claims.iss !== 'string' || claims.iss === '') refuse('the token has no iss claim');
  return { issuer: claims.iss, claims };
}
