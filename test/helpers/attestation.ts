/**
 * Attestation tokens for the emulator's test attestation authority: an RS256 JWT signed with
 * `<state-dir>/attestation-key.pem`, carrying the claims a release policy checks and the RSA key
 * (`x-ms-runtime.keys`) the released key is wrapped for. Also unwraps what release returns.
 */
import {
  constants,
  createDecipheriv,
  createPrivateKey,
  generateKeyPairSync,
  privateDecrypt,
  sign,
  type KeyObject,
} from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export const TEST_AUTHORITY = 'https://attestation.akv-emulator.test/';

export interface TargetKey {
  privateKey: KeyObject;
  token: string;
}

const b64u = (v: unknown): string => Buffer.from(JSON.stringify(v)).toString('base64url');

/** Makes a token signed with `signingKeyPem` (default: the emulator's authority key). */
export function attestationToken(
  stateDir: string,
  claims: Record<string, unknown>,
  options: { issuer?: string; expSeconds?: number; signingKeyPem?: string } = {},
): TargetKey {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = publicKey.export({ format: 'jwk' });
  const now = Math.floor(Date.now() / 1000);
  const payload = {
    iss: options.issuer ?? TEST_AUTHORITY,
    iat: now,
    exp: now + (options.expSeconds ?? 600),
    'x-ms-runtime': {
      keys: [{ kty: 'RSA', kid: 'test-release-key', use: 'enc', n: jwk.n, e: jwk.e }],
    },
    ...claims,
  };
  const input = `${b64u({ alg: 'RS256', typ: 'JWT' })}.${b64u(payload)}`;
  const pem = options.signingKeyPem ?? readFileSync(join(stateDir, 'attestation-key.pem'), 'utf8');
  const signature = sign('sha256', Buffer.from(input), createPrivateKey(pem)).toString('base64url');
  return { privateKey, token: `${input}.${signature}` };
}

/** A release policy (base64url JSON) for one authority and `claim == value` conditions. */
export function releasePolicy(
  conditions: Record<string, unknown>,
  authority = TEST_AUTHORITY,
): Uint8Array {
  return Buffer.from(
    JSON.stringify({
      version: '1.0.0',
      anyOf: [
        {
          authority,
          allOf: Object.entries(conditions).map(([claim, equals]) => ({ claim, equals })),
        },
      ],
    }),
  );
}

/** Decodes a release answer (compact JWS) and unwraps key_hsm with the target's private key. */
export function unwrapReleased(
  jws: string,
  target: KeyObject,
): { payload: Record<string, unknown>; header: Record<string, unknown>; material: Buffer } {
  const [h, p] = jws.split('.');
  const header = JSON.parse(Buffer.from(h ?? '', 'base64url').toString()) as Record<
    string,
    unknown
  >;
  const payload = JSON.parse(Buffer.from(p ?? '', 'base64url').toString()) as Record<
    string,
    unknown
  >;
  const key = ((payload.response as Record<string, unknown>).key as Record<string, unknown>)
    .key as Record<string, unknown>;
  const blob = JSON.parse(Buffer.from(String(key.key_hsm), 'base64url').toString()) as {
    header: { enc: string };
    ciphertext: string;
  };
  const hash = {
    CKM_RSA_AES_KEY_WRAP: 'sha1',
    RSA_AES_KEY_WRAP_256: 'sha256',
    RSA_AES_KEY_WRAP_384: 'sha384',
  }[blob.header.enc];
  const all = Buffer.from(blob.ciphertext, 'base64url');
  const modulusBytes = (target.asymmetricKeyDetails?.modulusLength ?? 2048) / 8;
  const aesKey = privateDecrypt(
    { key: target, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: hash },
    all.subarray(0, modulusBytes),
  );
  const kwp = createDecipheriv('id-aes256-wrap-pad', aesKey, Buffer.from('a65959a6', 'hex'));
  const material = Buffer.concat([kwp.update(all.subarray(modulusBytes)), kwp.final()]);
  return { payload, header, material };
}
