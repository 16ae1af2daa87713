/**
 * The official CryptographyClient against the emulator: every signature algorithm (verified
 * with Node's crypto against the public key), every encryption and wrap algorithm (round trips).
 */
import assert from 'node:assert/strict';
import {
  createHash,
  createPublicKey,
  randomBytes,
  verify as nodeVerify,
  constants,
  publicEncrypt,
} from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import type { KeyClient, KeyVaultKey, SignatureAlgorithm } from '@azure/keyvault-keys';
import { startEmulator, type RunningEmulator } from '../helpers/emulator.js';

let emu: RunningEmulator;
let keys: KeyClient;

before(async () => {
  emu = await startEmulator();
  keys = emu.keyClient();
});
after(async () => {
  await emu?.stop();
});

/** Node KeyObject of the key's public part, from the JWK the service returned. */
function publicKeyOf(key: KeyVaultKey) {
  const jwk = key.key;
  assert.ok(jwk);
  if (jwk.n && jwk.e) {
    return createPublicKey({
      key: {
        kty: 'RSA',
        n: Buffer.from(jwk.n).toString('base64url'),
        e: Buffer.from(jwk.e).toString('base64url'),
      },
      format: 'jwk',
    });
  }
  const crv = jwk.crv === 'P-256K' ? 'secp256k1' : (jwk.crv as string);
  return createPublicKey({
    key: {
      kty: 'EC',
      crv,
      x: Buffer.from(jwk.x as Uint8Array).toString('base64url'),
      y: Buffer.from(jwk.y as Uint8Array).toString('base64url'),
    },
    format: 'jwk',
  });
}

const HASH: Record<string, string> = {
  '256': 'sha256',
  '384': 'sha384',
  '512': 'sha512',
  '256K': 'sha256',
};

describe('signatures', () => {
  const cases: {
    kty: 'RSA-HSM' | 'EC-HSM';
    size?: number;
    curve?: string;
    algs: SignatureAlgorithm[];
  }[] = [
    { kty: 'RSA-HSM', size: 2048, algs: ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512'] },
    { kty: 'RSA-HSM', size: 3072, algs: ['RS256', 'PS384'] },
    { kty: 'EC-HSM', curve: 'P-256', algs: ['ES256'] },
    { kty: 'EC-HSM', curve: 'P-256K', algs: ['ES256K'] },
    { kty: 'EC-HSM', curve: 'P-384', algs: ['ES384'] },
    { kty: 'EC-HSM', curve: 'P-521', algs: ['ES512'] },
  ];
  for (const c of cases) {
    test(`${c.kty} ${c.size ?? c.curve}: ${c.algs.join(' ')}`, async () => {
      const name = `sig-${c.kty}-${c.size ?? c.curve}`.replace(/[^a-zA-Z0-9-]/g, '');
      const key =
        c.kty === 'RSA-HSM'
          ? await keys.createRsaKey(name, { hsm: true, keySize: c.size })
          : await keys.createEcKey(name, { hsm: true, curve: c.curve as 'P-256' });
      assert.equal(key.keyType, c.kty);
      const publicKey = publicKeyOf(key);
      const crypto = emu.cryptoClient(key.id as string);
      for (const alg of c.algs) {
        const hash = HASH[alg.slice(2)] as string;
        const data = Buffer.from(`data signed with ${alg}`);
        const digest = createHash(hash).update(data).digest();
        const result = await crypto.sign(alg, digest);
        assert.equal(result.algorithm, alg);
        assert.equal(result.keyID, key.id);
        const signature = Buffer.from(result.result);
        const keyOptions = alg.startsWith('PS')
          ? { key: publicKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: digest.length }
          : alg.startsWith('ES')
            ? { key: publicKey, dsaEncoding: 'ieee-p1363' as const }
            : { key: publicKey };
        assert.ok(
          nodeVerify(hash, data, keyOptions, signature),
          `${alg} signature verifies with Node's crypto`,
        );
        const verified = await crypto.verify(alg, digest, signature);
        assert.equal(verified.result, true, `${alg} verifies on the emulator`);
        const tampered = Buffer.from(signature);
        tampered[5] = (tampered[5] as number) ^ 1;
        assert.equal(
          (await crypto.verify(alg, digest, tampered)).result,
          false,
          `${alg} rejects a changed signature`,
        );
      }
    });
  }
});

describe('RSA encryption and key wrapping', () => {
  test('RSA1_5, RSA-OAEP and RSA-OAEP-256 round-trip through the emulator', async () => {
    const key = await keys.createRsaKey('enc-rsa', { hsm: true, keySize: 2048 });
    const crypto = emu.cryptoClient(key.id as string);
    const publicKey = publicKeyOf(key);
    const secret = randomBytes(32);
    for (const alg of ['RSA1_5', 'RSA-OAEP', 'RSA-OAEP-256'] as const) {
      const encrypted = await crypto.encrypt({ algorithm: alg, plaintext: secret });
      const decrypted = await crypto.decrypt({ algorithm: alg, ciphertext: encrypted.result });
      assert.deepEqual(Buffer.from(decrypted.result), secret, `${alg} decrypt`);
      const wrapped = await crypto.wrapKey(alg, secret);
      const unwrapped = await crypto.unwrapKey(alg, wrapped.result);
      assert.deepEqual(Buffer.from(unwrapped.result), secret, `${alg} unwrap`);
    }
    // Ciphertext made locally with the public key decrypts on the emulator (PKCS#1 v1.5, Marvin-safe path).
    const local = publicEncrypt({ key: publicKey, padding: constants.RSA_PKCS1_PADDING }, secret);
    const decrypted = await crypto.decrypt({ algorithm: 'RSA1_5', ciphertext: local });
    assert.deepEqual(Buffer.from(decrypted.result), secret);
  });
});

describe('RSA encrypt and wrapkey endpoints (the SDK runs these locally, so call them directly)', () => {
  test('ciphertext from the emulator decrypts with the SDK, for each RSA algorithm', async () => {
    const key = await keys.createRsaKey('enc-remote', { keySize: 2048 });
    const crypto = emu.cryptoClient(key.id as string);
    const secret = randomBytes(24);
    for (const alg of ['RSA1_5', 'RSA-OAEP', 'RSA-OAEP-256']) {
      for (const [forward, back] of [
        ['encrypt', 'decrypt'],
        ['wrapkey', 'unwrapkey'],
      ] as const) {
        const res = await emu.request('POST', `/keys/enc-remote/${forward}?api-version=7.4`, {
          body: { alg, value: secret.toString('base64url') },
        });
        assert.equal(res.status, 200, res.text);
        const out = res.json as { kid: string; value: string; alg: string };
        assert.equal(out.kid, key.id);
        assert.equal(out.alg, alg);
        const ciphertext = Buffer.from(out.value, 'base64url');
        assert.equal(ciphertext.length, 256);
        const plain =
          back === 'decrypt'
            ? (await crypto.decrypt({ algorithm: alg as 'RSA1_5', ciphertext })).result
            : (await crypto.unwrapKey(alg as 'RSA1_5', ciphertext)).result;
        assert.deepEqual(Buffer.from(plain), secret, `${alg} ${forward}/${back}`);
      }
    }
  });
});

describe('AES', () => {
  for (const bits of [128, 192, 256] as const) {
    test(`oct-HSM ${bits}: KW, GCM, CBC, CBCPAD`, async () => {
      const key = await keys.createOctKey(`aes-${bits}`, { hsm: true, keySize: bits });
      assert.equal(key.keyType, 'oct-HSM');
      assert.equal(key.key?.k, undefined, 'no key material in the response');
      const crypto = emu.cryptoClient(key.id as string);
      const cek = randomBytes(32);
      const wrapped = await crypto.wrapKey(`A${bits}KW`, cek);
      assert.equal(wrapped.result.length, 40);
      assert.deepEqual(
        Buffer.from((await crypto.unwrapKey(`A${bits}KW`, wrapped.result)).result),
        cek,
      );

      const plaintext = Buffer.from('attack at dawn, bring snacks');
      const aad = Buffer.from('header');
      const gcm = await crypto.encrypt({
        algorithm: `A${bits}GCM`,
        plaintext,
        additionalAuthenticatedData: aad,
      });
      assert.equal(gcm.iv?.length, 12);
      assert.equal(gcm.authenticationTag?.length, 16);
      const gcmBack = await crypto.decrypt({
        algorithm: `A${bits}GCM`,
        ciphertext: gcm.result,
        iv: gcm.iv as Uint8Array,
        authenticationTag: gcm.authenticationTag as Uint8Array,
        additionalAuthenticatedData: aad,
      });
      assert.deepEqual(Buffer.from(gcmBack.result), plaintext);

      const iv = randomBytes(16);
      const pad = await crypto.encrypt({ algorithm: `A${bits}CBCPAD`, plaintext, iv });
      assert.equal(pad.result.length, 32);
      const padBack = await crypto.decrypt({
        algorithm: `A${bits}CBCPAD`,
        ciphertext: pad.result,
        iv,
      });
      assert.deepEqual(Buffer.from(padBack.result), plaintext);

      const block = Buffer.from('exactly 32 bytes of plaintext!!!');
      const cbc = await crypto.encrypt({ algorithm: `A${bits}CBC`, plaintext: block, iv });
      const cbcBack = await crypto.decrypt({
        algorithm: `A${bits}CBC`,
        ciphertext: cbc.result,
        iv,
      });
      assert.deepEqual(Buffer.from(cbcBack.result), block);
    });
  }
});
