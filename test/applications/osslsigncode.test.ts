/**
 * Authenticode signing of a Windows executable with HSM keys: `osslsigncode sign -key <keyref>`
 * with the provider activated by OPENSSL_CONF, verified by `osslsigncode verify` with no provider.
 * A byte changed in the signed program must fail verification. osslsigncode reads `-key` as a
 * file (PEM, DER or PVK) or a PKCS#11 engine id, so a key URI is refused: tested, as documented.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { PROVIDER_DIR } from '../provider/openssl-env.js';
import {
  missingCommand,
  startAppEnv,
  versionOf,
  type AppEnv,
  type HsmKey,
  type Run,
} from './app-env.js';
import { CODE_OFFSET, minimalPeFile } from './pe-file.js';

const skip = missingCommand('osslsigncode', 'osslsigncode');
const CODE_SIGNING = ['extendedKeyUsage=codeSigning', 'keyUsage=critical,digitalSignature'];

describe('osslsigncode (Authenticode) with HSM keys', { skip }, () => {
  let app: AppEnv;
  let rsa: HsmKey;
  let ec: HsmKey;

  before(async () => {
    app = await startAppEnv('osslsigncode', 'pesignhsm');
    rsa = app.hsmKey('code-rsa', {
      kty: 'RSA-HSM',
      subject: '/CN=akv code signing RSA',
      extensions: CODE_SIGNING,
    });
    ec = app.hsmKey('code-ec', {
      kty: 'EC-HSM',
      subject: '/CN=akv code signing EC',
      extensions: CODE_SIGNING,
    });
    writeFileSync(app.file('hello.exe'), minimalPeFile());
  });

  after(async () => {
    await app?.down();
  });

  /** `osslsigncode sign` of hello.exe into OUT; returns the run and the HSM signatures' algorithms. */
  function sign(
    key: HsmKey,
    out: string,
    keyArg = key.keyref,
    env = app.cnfEnv,
  ): { run: Run; algs: string[] } {
    const { result, made } = app.signedDuring(key, () =>
      app.run(
        'osslsigncode',
        [
          'sign',
          '-certs',
          key.cert,
          '-key',
          keyArg,
          '-h',
          'sha256',
          '-n',
          'akv test program',
          '-in',
          'hello.exe',
          '-out',
          out,
        ],
        env,
      ),
    );
    return { run: result, algs: made.map((s) => s.alg) };
  }

  function verify(file: string, key: HsmKey): Run {
    return app.run('osslsigncode', ['verify', '-in', file, '-CAfile', key.cert], app.plainEnv);
  }

  for (const [label, keyOf, alg] of [
    ['RSA', (): HsmKey => rsa, 'RS256'],
    ['ECDSA P-256', (): HsmKey => ec, 'ES256'],
  ] as const) {
    it(`${label}: sign -key <keyref>; plain osslsigncode verify accepts it`, (t) => {
      if (label === 'RSA') t.diagnostic(versionOf(app, 'osslsigncode', ['--version']));
      const key = keyOf();
      const out = `signed-${key.name}.exe`;
      const { run, algs } = sign(key, out);
      assert.equal(run.status, 0, `${run.stdout}${run.stderr}`);
      assert.match(run.stdout, /Succeeded/);
      assert.deepEqual(algs, [alg]);
      const v = verify(out, key);
      assert.equal(v.status, 0, `${v.stdout}${v.stderr}`);
      assert.match(v.stdout, /Signature verification: ok/);
      assert.match(
        v.stdout,
        new RegExp(`Subject: /CN=akv code signing ${key === rsa ? 'RSA' : 'EC'}\n`),
      );
      assert.match(v.stdout, /Number of verified signatures: 1/);
    });
  }

  it('a byte changed in the signed program fails verification', () => {
    const signed = readFileSync(app.file('signed-code-rsa.exe'));
    signed.writeUInt8(signed.readUInt8(CODE_OFFSET) ^ 0xff, CODE_OFFSET);
    writeFileSync(app.file('tampered.exe'), signed);
    const v = verify('tampered.exe', rsa);
    assert.notEqual(v.status, 0, 'a changed program verified');
    assert.match(`${v.stdout}${v.stderr}`, /MISMATCH|Signature verification: failed/);
  });

  it('with module= in openssl.cnf instead of OPENSSL_MODULES, the legacy provider loads too', () => {
    // OPENSSL_MODULES moves OpenSSL's whole module directory, so osslsigncode's own
    // OSSL_PROVIDER_load("legacy") finds nothing ("Unable to load provider: legacy").
    const cnf = app.file('openssl-module.cnf');
    writeFileSync(
      cnf,
      readFileSync(app.opensslCnf, 'utf8').replace(
        '[akv_sect]\n',
        `[akv_sect]\nmodule = ${join(PROVIDER_DIR, 'build', 'akv_provider.so')}\n`,
      ),
    );
    const env: NodeJS.ProcessEnv = { ...app.cnfEnv, OPENSSL_CONF: cnf };
    delete env.OPENSSL_MODULES;
    const withModulesDir = sign(rsa, 'signed-modules-dir.exe').run;
    assert.match(withModulesDir.stderr, /Unable to load provider: legacy/);
    const { run, algs } = sign(rsa, 'signed-module.exe', rsa.keyref, env);
    assert.equal(run.status, 0, `${run.stdout}${run.stderr}`);
    assert.doesNotMatch(run.stderr, /Unable to load provider/);
    assert.deepEqual(algs, ['RS256']);
    assert.equal(verify('signed-module.exe', rsa).status, 0);
  });

  it('-key <URI> is refused: osslsigncode reads the key from a file (documented limitation)', () => {
    const { run: r, algs } = sign(rsa, 'uri.exe', rsa.uri);
    assert.deepEqual(algs, []);
    assert.notEqual(r.status, 0);
    // 2.5 prints this on stdout, 2.9 on stderr.
    assert.match(
      `${r.stdout}${r.stderr}`,
      new RegExp(`Failed to read private key file: ${rsa.uri}`),
    );
  });
});
