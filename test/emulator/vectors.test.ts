/**
 * Known-answer checks: the emulator's output equals an independent computation. An imported RSA
 * key signs RS256 byte-for-byte like Node's PKCS#1 v1.5 signer and openssl; AES-GCM, AES-CBC-PAD
 * and AES key wrap match Node's crypto and published test vectors (GCM spec test case 4,
 * RFC 3394 §4.1).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import {
  createCipheriv,
  createHash,
  createPrivateKey,
  sign as nodeSign,
  type JsonWebKey,
} from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { KeyClient } from '@azure/keyvault-keys';
import { REPO_ROOT, startEmulator, type RunningEmulator } from '../helpers/emulator.js';

let emu: RunningEmulator;
let client: KeyClient;

before(async () => {
  emu = await startEmulator();
  client = emu.keyClient();
});
after(async () => {
  await emu?.stop();
});

const hex = (s: string) => Buffer.from(s, 'hex');
const b64u = (b: Buffer) => b.toString('base64url');

const FIXTURE = join(REPO_ROOT, 'test', 'emulator', 'fixtures', 'rsa-2048.private.jwk.json');

test('imported RSA key: RS256 equals a local PKCS#1 v1.5 signature (Node and openssl)', async () => {
  const jwk = JSON.parse(readFileSync(FIXTURE, 'utf8')) as JsonWebKey;
  const field = (name: keyof JsonWebKey) => Buffer.from(jwk[name] as string, 'base64url');
  const key = await client.importKey('fixed-rsa', {
    kty: 'RSA-HSM',
    n: field('n'),
    e: field('e'),
    d: field('d'),
    p: field('p'),
    q: field('q'),
    dp: field('dp'),
    dq: field('dq'),
    qi: field('qi'),
  });
  const data = Buffer.from('The quick brown fox jumps over the lazy dog');
  const privateKey = createPrivateKey({ key: jwk, format: 'jwk' });
  for (const [alg, hash] of [
    ['RS256', 'sha256'],
    ['RS384', 'sha384'],
    ['RS512', 'sha512'],
  ] as const) {
    const digest = createHash(hash).update(data).digest();
    const remote = await emu.cryptoClient(key.id as string).sign(alg, digest);
    assert.deepEqual(
      Buffer.from(remote.result),
      nodeSign(hash, data, privateKey),
      `${alg} byte-identical`,
    );
  }
  // The same with the openssl command over the digest.
  const dir = emu.stateDir;
  writeFileSync(join(dir, 'fixture-key.pem'), privateKey.export({ format: 'pem', type: 'pkcs8' }), {
    mode: 0o600,
  });
  writeFileSync(join(dir, 'digest.bin'), createHash('sha256').update(data).digest());
  const viaOpenssl = execFileSync('openssl', [
    'pkeyutl', '-sign', '-inkey', join(dir, 'fixture-key.pem'), '-in', join(dir, 'digest.bin'),
    '-pkeyopt', 'digest:sha256',
  ]); // prettier-ignore
  const remote = await emu
    .cryptoClient(key.id as string)
    .sign('RS256', createHash('sha256').update(data).digest());
  assert.deepEqual(Buffer.from(remote.result), viaOpenssl);
});

// GCM specification (McGrew & Viega), test case 4: AES-128, 96-bit IV, AAD.
const GCM = {
  key: hex('feffe9928665731c6d6a8f9467308308'),
  iv: hex('cafebabefacedbaddecaf888'),
  plaintext: hex(
    'd9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39',
  ),
  aad: hex('feedfacedeadbeeffeedfacedeadbeefabaddad2'),
  ciphertext: hex(
    '42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091',
  ),
  tag: hex('5bc94fbc3221a5db94fae95ae7121a47'),
};

test('AES-GCM: decrypts the published vector; its own ciphertext matches Node for the iv it chose', async () => {
  const key = await client.importKey('gcm-vector', { kty: 'oct-HSM', k: GCM.key });
  const crypto = emu.cryptoClient(key.id as string);
  const decrypted = await crypto.decrypt({
    algorithm: 'A128GCM',
    ciphertext: GCM.ciphertext,
    iv: GCM.iv,
    authenticationTag: GCM.tag,
    additionalAuthenticatedData: GCM.aad,
  });
  assert.deepEqual(Buffer.from(decrypted.result), GCM.plaintext);

  const encrypted = await crypto.encrypt({
    algorithm: 'A128GCM',
    plaintext: GCM.plaintext,
    additionalAuthenticatedData: GCM.aad,
  });
  const iv = Buffer.from(encrypted.iv as Uint8Array);
  const local = createCipheriv('aes-128-gcm', GCM.key, iv);
  local.setAAD(GCM.aad);
  const expected = Buffer.concat([local.update(GCM.plaintext), local.final()]);
  assert.deepEqual(Buffer.from(encrypted.result), expected);
  assert.deepEqual(Buffer.from(encrypted.authenticationTag as Uint8Array), local.getAuthTag());

  // A changed tag is refused, with the service's error shape.
  const badTag = Buffer.from(GCM.tag);
  badTag[0] = (badTag[0] as number) ^ 0xff;
  const res = await emu.request('POST', `/keys/gcm-vector/decrypt?api-version=7.4`, {
    body: {
      alg: 'A128GCM',
      value: b64u(GCM.ciphertext),
      iv: b64u(GCM.iv),
      tag: b64u(badTag),
      aad: b64u(GCM.aad),
    },
  });
  assert.equal(res.status, 400);
  assert.equal((res.json as { error: { code: string } }).error.code, 'BadParameter');
});

test('AES key wrap: RFC 3394 §4.1 vector', async () => {
  const key = await client.importKey('kw-vector', {
    kty: 'oct-HSM',
    k: hex('000102030405060708090a0b0c0d0e0f'),
  });
  const crypto = emu.cryptoClient(key.id as string);
  const wrapped = await crypto.wrapKey('A128KW', hex('00112233445566778899aabbccddeeff'));
  assert.deepEqual(
    Buffer.from(wrapped.result),
    hex('1fa68b0a8112b447aef34bd8fb5a7b829d3e862371d2cfe5'),
  );
  const unwrapped = await crypto.unwrapKey('A128KW', wrapped.result);
  assert.deepEqual(Buffer.from(unwrapped.result), hex('00112233445566778899aabbccddeeff'));
  const { requests } = await emu.stats();
  assert.ok(
    (requests.wrapkey ?? 0) >= 1 && (requests.unwrapkey ?? 0) >= 1,
    'wrap ran on the emulator',
  );
});

test('AES-CBCPAD and AES-CBC match Node for a given key and iv', async () => {
  const k = hex('603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4');
  const iv = hex('000102030405060708090a0b0c0d0e0f');
  const key = await client.importKey('cbc-vector', { kty: 'oct-HSM', k });
  const crypto = emu.cryptoClient(key.id as string);
  const plaintext = Buffer.from('seventeen bytes!!');
  const padded = await crypto.encrypt({ algorithm: 'A256CBCPAD', plaintext, iv });
  const local = createCipheriv('aes-256-cbc', k, iv);
  assert.deepEqual(
    Buffer.from(padded.result),
    Buffer.concat([local.update(plaintext), local.final()]),
  );
  assert.deepEqual(Buffer.from(padded.iv as Uint8Array), iv, 'the iv is echoed');

  // A…CBC takes no padding: the input is zero-filled to the block, as the service does.
  const raw = await crypto.encrypt({ algorithm: 'A256CBC', plaintext, iv });
  const noPad = createCipheriv('aes-256-cbc', k, iv).setAutoPadding(false);
  const zeroFilled = Buffer.concat([plaintext, Buffer.alloc(15)]);
  assert.deepEqual(
    Buffer.from(raw.result),
    Buffer.concat([noPad.update(zeroFilled), noPad.final()]),
  );
  const back = await crypto.decrypt({ algorithm: 'A256CBC', ciphertext: raw.result, iv });
  assert.deepEqual(Buffer.from(back.result), zeroFilled);
});

test('ES256 with an imported key verifies with the openssl command (DER-converted r||s)', async () => {
  const { generateKeyPairSync } = await import('node:crypto');
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const jwk = privateKey.export({ format: 'jwk' });
  const f = (s: string | undefined) => Buffer.from(s as string, 'base64url');
  const key = await client.importKey('es-openssl', {
    kty: 'EC-HSM',
    crv: 'P-256',
    x: f(jwk.x),
    y: f(jwk.y),
    d: f(jwk.d),
  });
  const data = Buffer.from('signed by the emulator, checked by openssl');
  const signature = Buffer.from(
    (
      await emu
        .cryptoClient(key.id as string)
        .sign('ES256', createHash('sha256').update(data).digest())
    ).result,
  );
  assert.equal(signature.length, 64);
  const der = (int: Buffer) => {
    let i = 0;
    while (i < int.length - 1 && int[i] === 0) i++;
    const trimmed = int.subarray(i);
    const body =
      (trimmed[0] as number) & 0x80 ? Buffer.concat([Buffer.from([0]), trimmed]) : trimmed;
    return Buffer.concat([Buffer.from([0x02, body.length]), body]);
  };
  const seq = Buffer.concat([der(signature.subarray(0, 32)), der(signature.subarray(32))]);
  const derSig = Buffer.concat([Buffer.from([0x30, seq.length]), seq]);
  const dir = emu.stateDir;
  writeFileSync(join(dir, 'es.pub.pem'), publicKey.export({ format: 'pem', type: 'spki' }));
  writeFileSync(join(dir, 'es.sig'), derSig);
  writeFileSync(join(dir, 'es.data'), data);
  const out = execFileSync('openssl', [
    'dgst', '-sha256', '-verify', join(dir, 'es.pub.pem'), '-signature', join(dir, 'es.sig'), join(dir, 'es.data'),
  ]).toString(); // prettier-ignore
  assert.match(out, /Verified OK/);
});
