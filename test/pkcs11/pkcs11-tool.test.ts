/**
 * libakv_pkcs11.so with OpenSC's pkcs11-tool against the emulator and agent: the token and its
 * objects, signing with every mechanism the module lists (verified by pkcs11-tool and by plain
 * OpenSSL with the public key the provider exports), OAEP decryption, what is refused and how,
 * a certificate named with `akv pkcs11 set-certificate`, `pkcs11-tool --test`, and no agent.
 * Also the module's C tests (fake agent, plain and ASan) and its exported symbols.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { AKV_BIN } from '../helpers/emulator.js';
import { PROVIDERS, startProviderEnv, type ProviderEnv } from '../provider/openssl-env.js';
import {
  keyId,
  makeModule,
  MODULE,
  PKCS11_DIR,
  providerPublicKey,
  run,
  runOk,
  tool,
} from './pkcs11-env.js';

let pe: ProviderEnv;
const DATA = 'pkcs11-tool signs this in the HSM.\n';

before(async () => {
  makeModule();
  pe = await startProviderEnv('pkcs11', 'p11hsm');
  pe.createKey('rsa2048', '--kty', 'RSA-HSM', '--size', '2048');
  pe.createKey('ec256', '--kty', 'EC-HSM', '--curve', 'P-256');
  pe.createKey('ec384', '--kty', 'EC-HSM', '--curve', 'P-384');
  pe.createKey('ec521', '--kty', 'EC-HSM', '--curve', 'P-521');
  writeFileSync(pe.file('data.txt'), DATA);
});

after(async () => {
  await pe?.down();
});

describe('module build', () => {
  it('make -C pkcs11 check: the C tests pass against the fake agent, plain and with ASan/UBSan', () => {
    const r = spawnSync('make', ['-s', '-C', PKCS11_DIR, 'check'], {
      encoding: 'utf8',
      timeout: 600_000,
    });
    const out = `${r.stdout}${r.stderr}`;
    assert.equal(r.status, 0, out);
    const summary = /pkcs11-c-tests: (\d+) passed, (\d+) failed/.exec(out);
    assert.ok(summary, `no summary line in:\n${out}`);
    assert.ok(Number(summary[1]) >= 22, `only ${summary[1]} C tests ran`);
    assert.equal(summary[2], '0');
    assert.match(out, /ok - threads: 8 threads sign at once/);
    assert.match(out, /ok - fork: the child initialises again and signs/);
    assert.doesNotMatch(out, /ERROR: AddressSanitizer|runtime error:/);
  });

  it('exports only C_GetFunctionList, C_GetInterfaceList and C_GetInterface', () => {
    const r = spawnSync('nm', ['-D', '--defined-only', MODULE], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const symbols = r.stdout
      .split('\n')
      .map((l) => l.trim().split(/\s+/))
      .filter((f) => f.length === 3 && /^[TDBRVW]$/.test(f[1] ?? ''))
      .map((f) => f[2])
      .sort();
    assert.deepEqual(symbols, ['C_GetFunctionList', 'C_GetInterface', 'C_GetInterfaceList']);
  });
});

describe('pkcs11-tool', () => {
  it('lists one token labelled with the HSM name, needing no login', () => {
    const out = tool(pe, ['-L']).stdout;
    assert.match(out, /token label\s+: p11hsm\n/);
    assert.match(out, /token flags\s+: token initialized\n/);
    assert.doesNotMatch(out, /login required/);
  });

  it('lists each key as a private and a public object with one CKA_ID, labelled with the key name', () => {
    const out = tool(pe, ['-O']).stdout;
    for (const key of ['rsa2048', 'ec256', 'ec384', 'ec521']) {
      const blocks = out.split(/\n(?=\S)/).filter((b) => new RegExp(`label:\\s+${key}\\n`).test(b));
      assert.equal(blocks.length, 2, `${key}: ${blocks.join('\n')}`);
      assert.match(blocks[0] ?? '', /^Private Key Object/);
      assert.match(blocks[0] ?? '', /Access:\s+sensitive, always sensitive, never extractable/);
      assert.match(blocks[1] ?? '', /^Public Key Object/);
      const ids = blocks.map((b) => /ID:\s+([0-9a-f]+)/.exec(b)?.[1]);
      assert.ok(ids[0] && ids[0] === ids[1], `${key}: ids ${ids.join(' ')}`);
    }
  });

  it('the public key object is the HSM key (same DER as the provider exports)', () => {
    // (ec256, not ec384: pkcs11-tool 0.23 with OpenSSL 3 cannot rebuild a P-384 public key,
    // "cannot create EVP_PKEY", with SoftHSM's keys as well; p11tool exports it in gnutls.test.ts)
    for (const key of ['rsa2048', 'ec256']) {
      const der = pe.file(`${key}.p11.der`);
      tool(pe, ['--read-object', '--type', 'pubkey', '--id', keyId(pe, key), '-o', der]);
      const fromProvider = pe.opensslOk([
        'pkey',
        '-pubin',
        '-in',
        providerPublicKey(pe, key),
        '-outform',
        'DER',
      ]).out;
      assert.deepEqual(readFileSync(der), fromProvider);
    }
  });

  const RSA_MECHS: Array<[string, string, string[]]> = [
    ['SHA256-RSA-PKCS', 'sha256', []],
    ['SHA384-RSA-PKCS', 'sha384', []],
    ['SHA512-RSA-PKCS', 'sha512', []],
    [
      'SHA256-RSA-PKCS-PSS',
      'sha256',
      ['-sigopt', 'rsa_padding_mode:pss', '-sigopt', 'rsa_pss_saltlen:32'],
    ],
    [
      'SHA384-RSA-PKCS-PSS',
      'sha384',
      ['-sigopt', 'rsa_padding_mode:pss', '-sigopt', 'rsa_pss_saltlen:48'],
    ],
    [
      'SHA512-RSA-PKCS-PSS',
      'sha512',
      ['-sigopt', 'rsa_padding_mode:pss', '-sigopt', 'rsa_pss_saltlen:64'],
    ],
  ];
  for (const [mech, digest, sigopts] of RSA_MECHS) {
    it(`${mech}: signs; pkcs11-tool --verify and openssl dgst -verify accept it`, () => {
      const id = keyId(pe, 'rsa2048');
      const sig = pe.file(`rsa-${mech}.sig`);
      tool(pe, ['--sign', '-m', mech, '--id', id, '-i', pe.file('data.txt'), '-o', sig]);
      const v = tool(pe, [
        '--verify',
        '-m',
        mech,
        '--id',
        id,
        '-i',
        pe.file('data.txt'),
        '--signature-file',
        sig,
      ]);
      assert.match(v.stdout, /Signature is valid/);
      const pub = providerPublicKey(pe, 'rsa2048');
      pe.opensslOk([
        'dgst',
        `-${digest}`,
        '-verify',
        pub,
        ...sigopts,
        '-signature',
        sig,
        pe.file('data.txt'),
      ]);
    });
  }

  it('RSA-PKCS over a SHA-256 DigestInfo (what ssh -I sends): openssl verifies it', () => {
    const prefix = Buffer.from('3031300d060960864801650304020105000420', 'hex');
    const digestInfo = Buffer.concat([prefix, createHash('sha256').update(DATA).digest()]);
    writeFileSync(pe.file('digestinfo.bin'), digestInfo);
    const sig = pe.file('rsa-pkcs.sig');
    tool(pe, [
      '--sign',
      '-m',
      'RSA-PKCS',
      '--id',
      keyId(pe, 'rsa2048'),
      '-i',
      pe.file('digestinfo.bin'),
      '-o',
      sig,
    ]);
    pe.opensslOk([
      'dgst',
      '-sha256',
      '-verify',
      providerPublicKey(pe, 'rsa2048'),
      '-signature',
      sig,
      pe.file('data.txt'),
    ]);
  });

  it('RSA-PKCS-PSS with the HSM parameters signs a digest; another salt length is refused', () => {
    const id = keyId(pe, 'rsa2048');
    writeFileSync(pe.file('h384.bin'), createHash('sha384').update(DATA).digest());
    const sig = pe.file('pss.sig');
    const base = [
      '--sign',
      '-m',
      'RSA-PKCS-PSS',
      '--hash-algorithm',
      'SHA384',
      '--mgf',
      'MGF1-SHA384',
    ];
    tool(pe, [...base, '--salt-len', '48', '--id', id, '-i', pe.file('h384.bin'), '-o', sig]);
    pe.opensslOk([
      'pkeyutl',
      '-verify',
      '-pubin',
      '-inkey',
      providerPublicKey(pe, 'rsa2048'),
      '-pkeyopt',
      'digest:sha384',
      '-pkeyopt',
      'rsa_padding_mode:pss',
      '-pkeyopt',
      'rsa_pss_saltlen:48',
      '-in',
      pe.file('h384.bin'),
      '-sigfile',
      sig,
    ]);
    const r = run(pe, 'pkcs11-tool', [
      '--module',
      MODULE,
      ...base,
      '--salt-len',
      '20',
      '--id',
      id,
      '-i',
      pe.file('h384.bin'),
      '-o',
      pe.file('pss20.sig'),
    ]);
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /CKR_MECHANISM_PARAM_INVALID/);
    assert.match(
      r.stderr,
      /akv-pkcs11: sign: RSA-PSS with MGF 0x3 and salt length 20: the HSM uses MGF1 .* \(48 bytes\)/,
    );
  });

  for (const [key, mechs] of [
    ['ec256', ['ECDSA-SHA256', 'ECDSA-SHA384']],
    ['ec384', ['ECDSA-SHA384', 'ECDSA-SHA256']],
    ['ec521', ['ECDSA-SHA512']],
  ] as const) {
    for (const mech of mechs) {
      it(`${mech} with ${key}: pkcs11-tool --verify and openssl dgst -verify accept it`, () => {
        const id = keyId(pe, key);
        const sig = pe.file(`${key}-${mech}.sig`);
        const args = [
          '-m',
          mech,
          '--id',
          id,
          '-i',
          pe.file('data.txt'),
          '--signature-format',
          'openssl',
        ];
        tool(pe, ['--sign', ...args, '-o', sig]);
        const v = tool(pe, ['--verify', ...args, '--signature-file', sig]);
        assert.match(v.stdout, /Signature is valid/);
        const digest = mech.replace('ECDSA-', '').toLowerCase();
        pe.opensslOk([
          'dgst',
          `-${digest}`,
          '-verify',
          providerPublicKey(pe, key),
          '-signature',
          sig,
          pe.file('data.txt'),
        ]);
      });
    }
  }

  for (const [hash, mgf, padding] of [
    ['SHA256', 'MGF1-SHA256', ['-pkeyopt', 'rsa_oaep_md:sha256', '-pkeyopt', 'rsa_mgf1_md:sha256']],
    ['SHA-1', 'MGF1-SHA1', []],
  ] as const) {
    it(`RSA-PKCS-OAEP (${hash}) decrypts what openssl encrypted with the public key`, () => {
      const secret = pe.file('secret.bin');
      writeFileSync(secret, 'a session key of 32 bytes, here.');
      const ct = pe.file(`oaep-${hash}.bin`);
      pe.opensslOk([
        'pkeyutl',
        '-encrypt',
        '-pubin',
        '-inkey',
        providerPublicKey(pe, 'rsa2048'),
        '-pkeyopt',
        'rsa_padding_mode:oaep',
        ...padding,
        '-in',
        secret,
        '-out',
        ct,
      ]);
      const out = pe.file(`oaep-${hash}.out`);
      tool(pe, [
        '--decrypt',
        '-m',
        'RSA-PKCS-OAEP',
        '--hash-algorithm',
        hash,
        '--mgf',
        mgf,
        '--id',
        keyId(pe, 'rsa2048'),
        '-i',
        ct,
        '-o',
        out,
      ]);
      assert.deepEqual(readFileSync(out), readFileSync(secret));
    });
  }

  it("akv pkcs11 set-certificate: the certificate object appears with the key's CKA_ID after a reload", async () => {
    const cert = pe.file('ec256.pem');
    pe.opensslOk([
      'req',
      '-new',
      '-x509',
      ...PROVIDERS,
      '-key',
      `managedhsm:${pe.hsm}:ec256`,
      '-subj',
      '/CN=ec256 via pkcs11',
      '-days',
      '30',
      '-out',
      cert,
    ]);
    // a certificate of another key is refused before the config is touched
    const wrong = run(pe, AKV_BIN, [
      'pkcs11',
      'set-certificate',
      '--hsm-name',
      pe.hsm,
      '--key',
      'ec384',
      '--cert',
      cert,
    ]);
    assert.equal(wrong.status, 1);
    assert.match(wrong.stderr, /is not a certificate for managedhsm:p11hsm:ec384/);
    runOk(pe, AKV_BIN, [
      'pkcs11',
      'set-certificate',
      '--hsm-name',
      pe.hsm,
      '--key',
      'ec256',
      '--cert',
      cert,
    ]);
    const config = JSON.parse(readFileSync(pe.env.AKV_CONFIG ?? '', 'utf8')) as {
      vaults: Record<string, { certificates?: Record<string, string> }>;
    };
    assert.equal(config.vaults[pe.hsm]?.certificates?.ec256, cert);
    process.kill(Number(readFileSync(`${pe.dir}/dev/agent.pid`, 'utf8').trim()), 'SIGHUP');
    let out = '';
    for (let i = 0; i < 50 && !/Certificate Object/.test(out); i++) {
      await new Promise((r) => setTimeout(r, 100));
      out = tool(pe, ['-O', '--type', 'cert']).stdout;
    }
    assert.match(
      out,
      /Certificate Object; type = X\.509 cert\n\s+label:\s+ec256\n\s+subject:\s+DN: CN=ec256 via pkcs11/,
    );
    assert.equal(/ID:\s+([0-9a-f]+)/.exec(out)?.[1], keyId(pe, 'ec256'));
    const der = pe.file('ec256.cert.der');
    tool(pe, ['--read-object', '--type', 'cert', '--id', keyId(pe, 'ec256'), '-o', der]);
    const fromFile = pe.opensslOk(['x509', '-in', cert, '-outform', 'DER']).out;
    assert.deepEqual(readFileSync(der), fromFile);
  });

  it('pkcs11-tool --test: every test passes except the SHA-1 signature the HSM cannot make', () => {
    const out = tool(pe, ['--test']).stdout;
    // Decryption of the RSA key works with PKCS#1 v1.5 and OAEP.
    assert.match(out, /Decryption \(currently only for RSA\)[\s\S]*RSA-PKCS: OK/);
    assert.match(out, /RNG not available/);
    assert.match(out, /all 4 digest functions seem to work/);
    // pkcs11-tool's verify test signs a SHA-1 DigestInfo with CKM_RSA_PKCS: Managed HSM has no
    // SHA-1 signature, so the module refuses it (CKR_DATA_INVALID) instead of faking one.
    assert.match(out, /RSA-PKCS: {3}ERR: C_Sign\(\) returned CKR_DATA_INVALID/);
    assert.match(out, /^1 errors$/m);
  });

  it('no agent (and autostart off): the slot list fails with a message naming the socket', () => {
    const env = { ...pe.env, AKV_AGENT_SOCKET: pe.file('nowhere.sock'), AKV_AGENT_AUTOSTART: '0' };
    const r = run(pe, 'pkcs11-tool', ['--module', MODULE, '-L'], { env });
    assert.notEqual(r.status, 0);
    assert.equal(r.signal, null);
    assert.match(r.stderr, /akv-pkcs11: list tokens: akv agent not reachable at .*nowhere\.sock/);
  });
});
