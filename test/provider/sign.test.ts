/**
 * Signing through akv_provider with the real openssl command against the emulator and agent:
 * public-key export, `openssl dgst -sign` (PKCS#1 v1.5, PSS, ECDSA) for RSA 2048/3072/4096 and
 * EC P-256/P-256K/P-384/P-521 with SHA-256/384/512, verified by `openssl dgst -verify` with the exported
 * public key (default provider only); `openssl pkeyutl -sign` on a digest; and a C program with
 * 8 threads plus forked children signing through one loaded key (also in an ASan build).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  makeProvider,
  PROVIDER_BUILD_DIR,
  PROVIDER_MODULES_DIR,
  PROVIDERS,
  startProviderEnv,
  type ProviderEnv,
} from './openssl-env.js';

let pe: ProviderEnv;
const RSA_SIZES = [2048, 3072, 4096];
const CURVES = ['P-256', 'P-256K', 'P-384', 'P-521'];
const DIGESTS = ['sha256', 'sha384', 'sha512'];

before(async () => {
  pe = await startProviderEnv('sign', 'signhsm');
  for (const size of RSA_SIZES)
    pe.createKey(`rsa${size}`, '--kty', 'RSA-HSM', '--size', String(size));
  for (const curve of CURVES)
    pe.createKey(`ec${curve.slice(2)}`, '--kty', 'EC-HSM', '--curve', curve);
  writeFileSync(pe.file('data.txt'), 'The quick brown fox signs in the HSM.\n');
});

after(async () => {
  await pe?.down();
});

function uriOf(key: string): string {
  return `managedhsm:${pe.hsm}:${key}`;
}

/** Exports the public key with the provider; everything else verifies without it. */
function exportPublic(key: string): string {
  const pub = pe.file(`${key}.pub.pem`);
  pe.opensslOk(['pkey', ...PROVIDERS, '-in', uriOf(key), '-pubout', '-out', pub]);
  return pub;
}

function verifyWithDefault(pub: string, digest: string, sig: string, extra: string[] = []): void {
  const r = pe.opensslOk([
    'dgst',
    `-${digest}`,
    '-verify',
    pub,
    ...extra,
    '-signature',
    sig,
    pe.file('data.txt'),
  ]);
  assert.match(r.stdout, /Verified OK/);
}

describe('openssl pkey -pubout', () => {
  it('exports the public key of every RSA and EC key as PEM', () => {
    for (const key of ['rsa2048', 'rsa3072', 'rsa4096', 'ec256', 'ec384', 'ec521']) {
      const pub = exportPublic(key);
      const text = pe.opensslOk(['pkey', '-pubin', '-in', pub, '-noout', '-text']).stdout;
      if (key.startsWith('rsa'))
        assert.match(text, new RegExp(`Public-Key: \\(${key.slice(3)} bit\\)`));
      else assert.match(text, /NIST CURVE: P-(256|384|521)/);
    }
  });
});

describe('openssl dgst -sign', () => {
  for (const size of RSA_SIZES) {
    it(`RSA ${size}: PKCS#1 v1.5 and PSS with SHA-256/384/512 verify with the public key`, () => {
      const key = `rsa${size}`;
      const pub = exportPublic(key);
      for (const digest of DIGESTS) {
        const sig = pe.file(`${key}-${digest}.sig`);
        pe.opensslOk([
          'dgst',
          `-${digest}`,
          ...PROVIDERS,
          '-sign',
          uriOf(key),
          '-out',
          sig,
          pe.file('data.txt'),
        ]);
        assert.equal(readFileSync(sig).length, size / 8);
        verifyWithDefault(pub, digest, sig);

        const pss = ['-sigopt', 'rsa_padding_mode:pss', '-sigopt', 'rsa_pss_saltlen:digest'];
        const psig = pe.file(`${key}-${digest}-pss.sig`);
        pe.opensslOk([
          'dgst',
          `-${digest}`,
          ...PROVIDERS,
          '-sign',
          uriOf(key),
          ...pss,
          '-out',
          psig,
          pe.file('data.txt'),
        ]);
        verifyWithDefault(pub, digest, psig, pss);
        // The PSS signature is not a PKCS#1 v1.5 one: verification without the PSS options fails.
        const wrong = pe.openssl([
          'dgst',
          `-${digest}`,
          '-verify',
          pub,
          '-signature',
          psig,
          pe.file('data.txt'),
        ]);
        assert.notEqual(wrong.status, 0);
      }
    });
  }

  for (const curve of CURVES) {
    it(`EC ${curve}: ECDSA with SHA-256/384/512 verifies with the public key`, () => {
      const key = `ec${curve.slice(2)}`;
      const pub = exportPublic(key);
      for (const digest of DIGESTS) {
        const sig = pe.file(`${key}-${digest}.sig`);
        pe.opensslOk([
          'dgst',
          `-${digest}`,
          ...PROVIDERS,
          '-sign',
          uriOf(key),
          '-out',
          sig,
          pe.file('data.txt'),
        ]);
        // DER ECDSA-Sig-Value, not Azure's raw r||s.
        assert.equal(readFileSync(sig)[0], 0x30);
        verifyWithDefault(pub, digest, sig);
      }
    });
  }

  it('the akv: URI form signs with the same key', () => {
    const pub = exportPublic('ec256');
    const sig = pe.file('akv-form.sig');
    const uri = `akv:vault=${pe.hsm},name=ec256`;
    pe.opensslOk(['dgst', '-sha256', ...PROVIDERS, '-sign', uri, '-out', sig, pe.file('data.txt')]);
    verifyWithDefault(pub, 'sha256', sig);
  });
});

describe('openssl pkeyutl -sign on a precomputed digest', () => {
  it('RSA (PKCS#1 and PSS) and ECDSA signatures verify with pkeyutl -verify', () => {
    const digest = pe.file('data.sha256');
    writeFileSync(digest, pe.opensslOk(['dgst', '-sha256', '-binary', pe.file('data.txt')]).out);
    const cases: Array<[string, string[]]> = [
      ['rsa2048', ['-pkeyopt', 'digest:sha256']],
      [
        'rsa2048',
        [
          '-pkeyopt',
          'digest:sha256',
          '-pkeyopt',
          'rsa_padding_mode:pss',
          '-pkeyopt',
          'rsa_pss_saltlen:digest',
        ],
      ],
      ['ec256', []],
      ['ec384', []],
      ['ec521', []],
    ];
    for (const [key, opts] of cases) {
      const pub = exportPublic(key);
      const sig = pe.file(`${key}-pkeyutl.sig`);
      pe.opensslOk([
        'pkeyutl',
        ...PROVIDERS,
        '-sign',
        '-inkey',
        uriOf(key),
        '-in',
        digest,
        '-out',
        sig,
        ...opts,
      ]);
      const r = pe.opensslOk([
        'pkeyutl',
        '-verify',
        '-pubin',
        '-inkey',
        pub,
        '-in',
        digest,
        '-sigfile',
        sig,
        ...opts,
      ]);
      assert.match(r.stdout, /Signature Verified Successfully/);
    }
  });
});

describe('round trips and the debug log (AKV_LOG_FILE)', () => {
  it('one DESCRIBE to load a key, one SIGN per signature, one log line each, no key material', () => {
    const log = pe.file('provider.log');
    const env = { ...pe.env, AKV_LOG_FILE: log, AKV_LOG_LEVEL: 'info' };
    const sig = pe.file('logged.sig');
    pe.opensslOk(
      ['dgst', '-sha256', ...PROVIDERS, '-sign', uriOf('ec256'), '-out', sig, pe.file('data.txt')],
      { env },
    );
    const ref = pe.file('ec256.ref.pem');
    pe.akv(['keyref', uriOf('ec256'), '--out', ref]);
    pe.opensslOk(['pkey', ...PROVIDERS, '-in', ref, '-pubout'], { env });
    const lines = readFileSync(log, 'utf8').trim().split('\n');
    const ops = lines.map((l) => /op=(\w+)/.exec(l)?.[1]);
    assert.deepEqual(ops, ['describe', 'sign', 'describe'], lines.join('\n'));
    for (const line of lines) {
      assert.match(
        line,
        /^\d{4}-\d\d-\d\dT[\d:.]+Z akv_provider pid=\d+ info op=\w+ key=managedhsm:signhsm:ec256/,
      );
      assert.match(line, /result=ok ms=\d+$/);
    }
    // Neither the signature nor the digest appears in the log.
    const text = readFileSync(log, 'utf8');
    const digestHex =
      pe.opensslOk(['dgst', '-sha256', '-hex', '-r', pe.file('data.txt')]).stdout.split(' ')[0] ??
      '';
    assert.equal(text.includes(digestHex), false);
    assert.equal(text.includes(readFileSync(sig).toString('hex').slice(0, 32)), false);
  });
});

describe('threads and fork', () => {
  before(() => makeProvider('drivers'));

  for (const [label, bin, modules] of [
    ['plain build', 'sign_stress', PROVIDER_MODULES_DIR],
    ['ASan/UBSan build of driver and module', 'sign_stress_asan', join(PROVIDER_BUILD_DIR, 'asan')],
  ] as const) {
    it(`8 threads and 2 forked children sign through one key (${label})`, () => {
      for (const key of ['rsa2048', 'ec256']) {
        const r = spawnSync(join(PROVIDER_BUILD_DIR, bin), [uriOf(key), '8', '12', '2'], {
          env: { ...pe.env, OPENSSL_MODULES: modules, ASAN_OPTIONS: 'detect_leaks=1' },
          encoding: 'utf8',
          timeout: 180_000,
        });
        assert.equal(r.status, 0, `${key}: ${r.stdout}${r.stderr}`);
        assert.match(r.stdout, /sign_stress: 122 signatures, 0 failed \(8 threads, 2 children\)/);
        assert.doesNotMatch(r.stderr, /AddressSanitizer|runtime error/);
      }
    });
  }
});
