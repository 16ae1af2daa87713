/**
 * Key wrapping through libakv_pkcs11.so against the emulator and agent: C_WrapKey / C_UnwrapKey
 * with CKM_AES_KEY_WRAP (oct-HSM keys, A256KW / A128KW) and with RSA (OAEP-256, OAEP, PKCS#1
 * v1.5), compared byte for byte with `akv wrap` / `akv unwrap` (AES key wrap is deterministic,
 * RFC 3394) and with plain OpenSSL for RSA; a key moved from one HSM key to another without the
 * application seeing it; what is refused, by the module and by pkcs11-tool's own --wrap/--unwrap.
 * The application is test/pkcs11/c/p11wrap.c (pkcs11-tool 0.23 cannot wrap a session object).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { REPO_ROOT } from '../helpers/emulator.js';
import { startProviderEnv, type ProviderEnv } from '../provider/openssl-env.js';
import { makeModule, MODULE, providerPublicKey, run, runOk, tool } from './pkcs11-env.js';

let pe: ProviderEnv;
let p11wrap: string;

before(async () => {
  makeModule();
  pe = await startProviderEnv('pkcs11-wrap', 'wraphsm');
  pe.createKey('kek256', '--kty', 'oct-HSM', '--size', '256');
  pe.createKey('kek128', '--kty', 'oct-HSM', '--size', '128');
  pe.createKey('rsawrap', '--kty', 'RSA-HSM', '--size', '2048');
  pe.createKey('signonly', '--kty', 'EC-HSM', '--curve', 'P-256');
  p11wrap = pe.file('p11wrap');
  runOk(pe, 'cc', [
    '-Wall',
    '-Werror',
    '-o',
    p11wrap,
    join(REPO_ROOT, 'test', 'pkcs11', 'c', 'p11wrap.c'),
    ...runOk(pe, 'pkg-config', ['--cflags', 'p11-kit-1']).stdout.trim().split(/\s+/),
    '-ldl',
  ]);
});

after(async () => {
  await pe?.down();
});

/** p11wrap's output (hex) for a command, asserting success. */
function app(cmd: string, kek: string, mech: string, hex: string): string {
  return runOk(pe, p11wrap, [MODULE, pe.hsm, cmd, kek, mech, hex]).stdout.trim();
}

/** `akv wrap|unwrap --key URI --alg ALG` of the given bytes. */
function akvOp(op: 'wrap' | 'unwrap', key: string, alg: string, input: Buffer): Buffer {
  const inFile = pe.file(`${op}-${key}-${alg}.in`);
  const outFile = pe.file(`${op}-${key}-${alg}.out`);
  writeFileSync(inFile, input);
  pe.akv([
    op,
    '--key',
    `managedhsm:${pe.hsm}:${key}`,
    '--alg',
    alg,
    '--in',
    inFile,
    '--out',
    outFile,
  ]);
  return readFileSync(outFile);
}

describe('CKM_AES_KEY_WRAP with an oct-HSM key', () => {
  it('C_WrapKey gives the same bytes as `akv wrap --alg A256KW`, and `akv unwrap` takes them back', () => {
    const key = randomBytes(32);
    const wrapped = app('wrap', 'kek256', 'aes-kw', key.toString('hex'));
    assert.equal(wrapped.length, 80); // 40 bytes: the key + RFC 3394's 8
    assert.equal(wrapped, akvOp('wrap', 'kek256', 'A256KW', key).toString('hex'));
    assert.deepEqual(akvOp('unwrap', 'kek256', 'A256KW', Buffer.from(wrapped, 'hex')), key);
  });

  it('C_UnwrapKey of what `akv wrap` made is a session object holding the key', () => {
    for (const [kek, alg, size] of [
      ['kek256', 'A256KW', 24],
      ['kek128', 'A128KW', 16],
      ['kek128', 'A128KW', 64],
    ] as const) {
      const key = randomBytes(size);
      const wrapped = akvOp('wrap', kek, alg, key);
      assert.equal(app('unwrap', kek, 'aes-kw', wrapped.toString('hex')), key.toString('hex'), alg);
    }
  });

  it('moves a key from one HSM key to another, sensitive all along (CKA_VALUE unreadable)', () => {
    const key = randomBytes(32);
    const under256 = akvOp('wrap', 'kek256', 'A256KW', key);
    const under128 = app('rewrap', 'kek256', 'kek128', under256.toString('hex'));
    assert.deepEqual(akvOp('unwrap', 'kek128', 'A128KW', Buffer.from(under128, 'hex')), key);
  });

  it('refuses a corrupted wrapped key, a bad length and what the HSM has no algorithm for', () => {
    const wrapped = akvOp('wrap', 'kek256', 'A256KW', randomBytes(32));
    wrapped[3] = (wrapped[3] ?? 0) ^ 0x40;
    const corrupted = run(pe, p11wrap, [
      MODULE,
      pe.hsm,
      'unwrap',
      'kek256',
      'aes-kw',
      wrapped.toString('hex'),
    ]);
    assert.equal(corrupted.status, 1);
    assert.match(corrupted.stderr, /C_UnwrapKey: CKR 0x110\n/); // CKR_WRAPPED_KEY_INVALID
    const short = run(pe, p11wrap, [MODULE, pe.hsm, 'unwrap', 'kek256', 'aes-kw', '00'.repeat(20)]);
    assert.match(short.stderr, /C_UnwrapKey: CKR 0x112\n/); // CKR_WRAPPED_KEY_LEN_RANGE
    assert.match(short.stderr, /the wrapped key is 20 bytes, not a multiple of 8 from 24 to 520/);
    const odd = run(pe, p11wrap, [MODULE, pe.hsm, 'wrap', 'kek256', 'aes-kw', '11'.repeat(20)]);
    assert.match(odd.stderr, /C_WrapKey \(size\): CKR 0x62\n/); // CKR_KEY_SIZE_RANGE
    // pkcs11-tool lists the mechanism, and not the padded key wrap the HSM does not have
    const mechs = tool(pe, ['-M']).stdout;
    assert.match(mechs, /AES-KEY-WRAP, keySize=\{16,32\}, wrap, unwrap/);
    assert.doesNotMatch(mechs, /AES-KEY-WRAP-PAD/);
  });

  it("pkcs11-tool's --unwrap (a token object) and --wrap of an HSM key are refused, saying why", () => {
    const kekId = /ID:\s+([0-9a-f]+)/.exec(
      tool(pe, ['-O', '--type', 'secrkey', '--label', 'kek256']).stdout,
    )?.[1];
    assert.ok(kekId);
    const wrappedFile = pe.file('tool-wrapped.bin');
    writeFileSync(wrappedFile, akvOp('wrap', 'kek256', 'A256KW', randomBytes(32)));
    const unwrap = run(pe, 'pkcs11-tool', [
      '--module',
      MODULE,
      '--unwrap',
      '-m',
      'AES-KEY-WRAP',
      '--id',
      kekId,
      '-i',
      wrappedFile,
      '--key-type',
      'AES:32',
    ]);
    assert.notEqual(unwrap.status, 0);
    assert.match(unwrap.stderr, /CKR_TEMPLATE_INCONSISTENT/);
    assert.match(
      unwrap.stderr,
      /CKA_TOKEN true: the module keeps no objects of its own on the token/,
    );
    const wrap = run(pe, 'pkcs11-tool', [
      '--module',
      MODULE,
      '--wrap',
      '-m',
      'AES-KEY-WRAP',
      '--id',
      kekId,
      '--application-id',
      kekId,
      '-o',
      pe.file('never.bin'),
    ]);
    assert.notEqual(wrap.status, 0);
    assert.match(wrap.stderr, /C_WrapKey.*CKR_KEY_UNEXTRACTABLE/);
  });
});

describe('RSA key transport', () => {
  it('C_WrapKey with the public key (OAEP-256, OAEP, PKCS#1 v1.5): `akv unwrap` gets the key back', () => {
    for (const [mech, alg] of [
      ['rsa-oaep-256', 'RSA-OAEP-256'],
      ['rsa-oaep', 'RSA-OAEP'],
      ['rsa-pkcs', 'RSA1_5'],
    ] as const) {
      const key = randomBytes(32);
      const wrapped = Buffer.from(app('wrap', 'rsawrap', mech, key.toString('hex')), 'hex');
      assert.equal(wrapped.length, 256, mech);
      assert.deepEqual(akvOp('unwrap', 'rsawrap', alg, wrapped), key, mech);
    }
  });

  it('C_UnwrapKey unwraps in the HSM what plain OpenSSL encrypted to the public key (OAEP-256, OAEP, PKCS#1 v1.5)', () => {
    const pub = providerPublicKey(pe, 'rsawrap');
    for (const [mech, opts] of [
      [
        'rsa-oaep-256',
        [
          '-pkeyopt',
          'rsa_padding_mode:oaep',
          '-pkeyopt',
          'rsa_oaep_md:sha256',
          '-pkeyopt',
          'rsa_mgf1_md:sha256',
        ],
      ],
      ['rsa-oaep', ['-pkeyopt', 'rsa_padding_mode:oaep']],
      ['rsa-pkcs', ['-pkeyopt', 'rsa_padding_mode:pkcs1']],
    ] as const) {
      const key = randomBytes(16);
      const ct = pe.opensslOk(['pkeyutl', '-encrypt', '-pubin', '-inkey', pub, ...opts], {
        input: key,
      }).out;
      assert.equal(app('unwrap', 'rsawrap', mech, ct.toString('hex')), key.toString('hex'), mech);
    }
  });

  it('a key whose key_ops lack unwrapKey (an EC key) is refused before anything is sent', () => {
    const r = run(pe, p11wrap, [
      MODULE,
      pe.hsm,
      'unwrap',
      'signonly',
      'rsa-oaep',
      '00'.repeat(256),
    ]);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /C_UnwrapKey: CKR 0x68\n/); // CKR_KEY_FUNCTION_NOT_PERMITTED
    assert.match(
      r.stderr,
      /does not allow unwrapKey \(its key_ops\); hint: use a key created with --ops unwrapKey/,
    );
  });
});
