/**
 * Decryption and key wrapping in the HSM through openssl pkeyutl: RSA-OAEP (SHA-1 and SHA-256)
 * and PKCS#1 v1.5 decryption of data encrypted with the exported public key (no provider), local
 * encryption with the HSM key's public half, AES key wrap round trips for 128/192/256-bit keys
 * with tamper detection, and `openssl storeutl` listing an HSM's keys.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { PROVIDERS, startProviderEnv, type ProviderEnv } from './openssl-env.js';

let pe: ProviderEnv;

before(async () => {
  pe = await startProviderEnv('cipher', 'cipherhsm');
  for (const size of [2048, 3072, 4096])
    pe.createKey(`rsa${size}`, '--kty', 'RSA-HSM', '--size', String(size));
  for (const size of [128, 192, 256])
    pe.createKey(`aes${size}`, '--kty', 'oct-HSM', '--size', String(size));
});

after(async () => {
  await pe?.down();
});

const uriOf = (key: string): string => `managedhsm:${pe.hsm}:${key}`;

const PADDINGS: Array<[string, string[]]> = [
  ['OAEP SHA-1', ['-pkeyopt', 'rsa_padding_mode:oaep']],
  [
    'OAEP SHA-256',
    [
      '-pkeyopt',
      'rsa_padding_mode:oaep',
      '-pkeyopt',
      'rsa_oaep_md:sha256',
      '-pkeyopt',
      'rsa_mgf1_md:sha256',
    ],
  ],
  ['PKCS#1 v1.5', ['-pkeyopt', 'rsa_padding_mode:pkcs1']],
];

describe('RSA decryption in the HSM', () => {
  for (const size of [2048, 3072, 4096]) {
    it(`RSA ${size}: OAEP SHA-1, OAEP SHA-256 and PKCS#1 v1.5 decrypt what the public key encrypted`, () => {
      const key = `rsa${size}`;
      const pub = pe.file(`${key}.pub`);
      pe.opensslOk(['pkey', ...PROVIDERS, '-in', uriOf(key), '-pubout', '-out', pub]);
      for (const [label, opts] of PADDINGS) {
        const plain = randomBytes(32);
        const pt = pe.file(`${key}.pt`);
        const ct = pe.file(`${key}.ct`);
        writeFileSync(pt, plain);
        pe.opensslOk([
          'pkeyutl',
          '-encrypt',
          '-pubin',
          '-inkey',
          pub,
          ...opts,
          '-in',
          pt,
          '-out',
          ct,
        ]);
        const r = pe.opensslOk([
          'pkeyutl',
          ...PROVIDERS,
          '-decrypt',
          '-inkey',
          uriOf(key),
          ...opts,
          '-in',
          ct,
        ]);
        assert.deepEqual(r.out, plain, `${size} ${label}`);
      }
    });
  }

  it('encrypting with the HSM key runs locally and round-trips through the HSM', () => {
    const plain = Buffer.from('encrypted locally, decrypted in the HSM');
    const pt = pe.file('local.pt');
    const ct = pe.file('local.ct');
    writeFileSync(pt, plain);
    const oaep = [
      '-pkeyopt',
      'rsa_padding_mode:oaep',
      '-pkeyopt',
      'rsa_oaep_md:sha256',
      '-pkeyopt',
      'rsa_mgf1_md:sha256',
    ];
    pe.opensslOk([
      'pkeyutl',
      ...PROVIDERS,
      '-encrypt',
      '-inkey',
      uriOf('rsa2048'),
      ...oaep,
      '-in',
      pt,
      '-out',
      ct,
    ]);
    const r = pe.opensslOk([
      'pkeyutl',
      ...PROVIDERS,
      '-decrypt',
      '-inkey',
      uriOf('rsa2048'),
      ...oaep,
      '-in',
      ct,
    ]);
    assert.deepEqual(r.out, plain);
  });

  it('a ciphertext for another padding fails cleanly', () => {
    const pub = pe.file('rsa2048.pub');
    pe.opensslOk(['pkey', ...PROVIDERS, '-in', uriOf('rsa2048'), '-pubout', '-out', pub]);
    const pt = pe.file('mismatch.pt');
    const ct = pe.file('mismatch.ct');
    writeFileSync(pt, 'oaep');
    pe.opensslOk([
      'pkeyutl',
      '-encrypt',
      '-pubin',
      '-inkey',
      pub,
      '-pkeyopt',
      'rsa_padding_mode:oaep',
      '-in',
      pt,
      '-out',
      ct,
    ]);
    const r = pe.openssl([
      'pkeyutl',
      ...PROVIDERS,
      '-decrypt',
      '-inkey',
      uriOf('rsa2048'),
      '-pkeyopt',
      'rsa_padding_mode:oaep',
      '-pkeyopt',
      'rsa_oaep_md:sha256',
      '-pkeyopt',
      'rsa_mgf1_md:sha256',
      '-in',
      ct,
    ]);
    assert.notEqual(r.status, 0);
    assert.equal(r.signal, null);
    assert.match(r.stderr, /akv_provider/);
  });
});

describe('AES key wrap in the HSM (pkeyutl -encrypt/-decrypt -inkey <aes uri>)', () => {
  for (const size of [128, 192, 256]) {
    it(`A${size}KW: wrap/unwrap round trip, and a tampered blob is refused`, () => {
      const key = uriOf(`aes${size}`);
      const secret = randomBytes(32);
      const inFile = pe.file(`kw${size}.key`);
      const wrapped = pe.file(`kw${size}.wrapped`);
      writeFileSync(inFile, secret);
      pe.opensslOk([
        'pkeyutl',
        ...PROVIDERS,
        '-encrypt',
        '-inkey',
        key,
        '-in',
        inFile,
        '-out',
        wrapped,
      ]);
      const blob = readFileSync(wrapped);
      assert.equal(blob.length, 40);
      const r = pe.opensslOk(['pkeyutl', ...PROVIDERS, '-decrypt', '-inkey', key, '-in', wrapped]);
      assert.deepEqual(r.out, secret);

      blob[7] = (blob[7] ?? 0) ^ 0x01;
      const tampered = pe.file(`kw${size}.tampered`);
      writeFileSync(tampered, blob);
      const bad = pe.openssl(['pkeyutl', ...PROVIDERS, '-decrypt', '-inkey', key, '-in', tampered]);
      assert.notEqual(bad.status, 0);
      assert.equal(bad.signal, null);
      assert.match(bad.stderr, /unwrap/);
      assert.equal(bad.out.length, 0);
    });
  }

  it('input that is not a multiple of 8 bytes is refused before the HSM is asked', () => {
    const inFile = pe.file('odd.key');
    writeFileSync(inFile, randomBytes(20));
    const r = pe.openssl([
      'pkeyutl',
      ...PROVIDERS,
      '-encrypt',
      '-inkey',
      uriOf('aes256'),
      '-in',
      inFile,
    ]);
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /multiple of 8 bytes/);
  });
});

describe('openssl storeutl', () => {
  it('-keys managedhsm:<hsm>: lists the HSM keys as URIs', () => {
    const r = pe.opensslOk(['storeutl', ...PROVIDERS, '-keys', `managedhsm:${pe.hsm}:`]);
    for (const key of ['aes128', 'aes192', 'aes256', 'rsa2048', 'rsa3072', 'rsa4096'])
      assert.ok(r.stdout.includes(`Name: managedhsm:${pe.hsm}:${key}`), r.stdout);
    assert.match(r.stdout, /Total found: 6/);
  });

  it('opens one key, and -r follows the listing to the keys', () => {
    const one = pe.opensslOk(['storeutl', ...PROVIDERS, uriOf('rsa2048')]);
    assert.match(one.stdout, /0: Pkey/);
    const all = pe.opensslOk(['storeutl', ...PROVIDERS, '-r', `akv:vault=${pe.hsm}`]);
    assert.equal(all.stdout.match(/: Pkey/g)?.length, 6, all.stdout);
  });
});
