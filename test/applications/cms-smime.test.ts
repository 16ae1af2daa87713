/**
 * `openssl cms -sign` and `openssl smime -sign` with HSM keys, verified by plain OpenSSL:
 * CMS with RSA-PSS (the key given as a URI, providers on the command line), CMS with ECDSA and
 * S/MIME with RSA PKCS#1 v1.5 (key-reference files, providers activated by OPENSSL_CONF).
 * Changed content must fail verification, so the checks can fail.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { PROVIDERS } from '../provider/openssl-env.js';
import { startAppEnv, type AppEnv, type HsmKey, type Run } from './app-env.js';

let app: AppEnv;
let rsa: HsmKey;
let ec: HsmKey;
const CONTENT = 'purchase order 4711: 12 HSMs\n';

before(async () => {
  app = await startAppEnv('cms', 'cmshsm');
  rsa = app.hsmKey('cms-rsa', { kty: 'RSA-HSM', subject: '/CN=akv CMS RSA signer' });
  ec = app.hsmKey('cms-ec', { kty: 'EC-HSM', subject: '/CN=akv CMS EC signer' });
  writeFileSync(app.file('content.txt'), CONTENT);
  writeFileSync(app.file('changed.txt'), CONTENT.replace('12', '13'));
});

after(async () => {
  await app?.down();
});

/**
 * Runs `openssl COMMAND -sign -in content.txt -signer CERT -inkey INKEY -md sha256 ARGS` (with
 * `env`, default OPENSSL_CONF) and returns the algorithms of the HSM signatures it made.
 */
function sign(
  command: 'cms' | 'smime',
  key: HsmKey,
  inkey: string,
  args: string[],
  env = app.cnfEnv,
): string[] {
  const { result, made } = app.signedDuring(key, () =>
    app.run(
      'openssl',
      [
        command,
        '-sign',
        '-in',
        'content.txt',
        '-signer',
        key.cert,
        '-inkey',
        inkey,
        '-md',
        'sha256',
        ...args,
      ],
      env,
    ),
  );
  assert.equal(result.status, 0, result.stderr);
  return made.map((s) => s.alg);
}

/** Plain `openssl cms -verify` (or smime) trusting only CERT. */
function verify(command: 'cms' | 'smime', cert: string, args: string[]): Run {
  return app.run('openssl', [command, '-verify', '-CAfile', cert, ...args], app.plainEnv);
}

/** The SignerInfo's signatureAlgorithm as plain `openssl cms -cmsout -print` shows it. */
function signatureAlgorithm(file: string, form: 'DER' | 'PEM'): string {
  const printed = app.plainOpensslOk(['cms', '-cmsout', '-print', '-inform', form, '-in', file]);
  return /signatureAlgorithm:\s+algorithm: (\S+)/.exec(printed.stdout)?.[1] ?? '(none)';
}

describe('openssl cms / smime with HSM keys', () => {
  it('cms -sign RSA-PSS with the key URI; plain cms -verify accepts it and rejects changed content', (t) => {
    t.diagnostic(app.run('openssl', ['version'], app.plainEnv).stdout.trim());
    const pss = [
      '-binary',
      '-keyopt',
      'rsa_padding_mode:pss',
      '-outform',
      'DER',
      '-out',
      'pss.p7s',
    ];
    assert.deepEqual(sign('cms', rsa, rsa.uri, [...PROVIDERS, ...pss], app.env), ['PS256']);
    assert.equal(signatureAlgorithm('pss.p7s', 'DER'), 'rsassaPss');
    const detached = ['-binary', '-inform', 'DER', '-in', 'pss.p7s', '-out', 'pss.out', '-content'];
    const good = verify('cms', rsa.cert, [...detached, 'content.txt']);
    assert.equal(good.status, 0, good.stderr);
    assert.match(good.stderr, /Verification successful/);
    const bad = verify('cms', rsa.cert, [...detached, 'changed.txt']);
    assert.notEqual(bad.status, 0, 'changed content verified');
    assert.match(bad.stderr, /Verification failure|digest failure/);
  });

  it('cms -sign ECDSA with a key-reference file and OPENSSL_CONF; plain cms -verify returns the content', () => {
    const attached = ['-nodetach', '-outform', 'PEM', '-out', 'ec.p7m'];
    assert.deepEqual(sign('cms', ec, ec.keyref, attached), ['ES256']);
    assert.equal(signatureAlgorithm('ec.p7m', 'PEM'), 'ecdsa-with-SHA256');
    const v = verify('cms', ec.cert, ['-inform', 'PEM', '-in', 'ec.p7m']);
    assert.equal(v.status, 0, v.stderr);
    assert.equal(v.stdout.replace(/\r\n/g, '\n'), CONTENT);
  });

  it('smime -sign with a key-reference file; plain smime -verify accepts it and rejects a changed message', () => {
    assert.deepEqual(sign('smime', rsa, rsa.keyref, ['-out', 'mail.eml']), ['RS256']);
    const v = verify('smime', rsa.cert, ['-in', 'mail.eml']);
    assert.equal(v.status, 0, v.stderr);
    assert.equal(v.stdout.replace(/\r\n/g, '\n'), CONTENT);
    const mail = readFileSync(app.file('mail.eml'), 'utf8');
    assert.ok(mail.includes('12 HSMs'), 'the signed text is in the message');
    writeFileSync(app.file('changed.eml'), mail.replace('12 HSMs', '13 HSMs'));
    const bad = verify('smime', rsa.cert, ['-in', 'changed.eml']);
    assert.notEqual(bad.status, 0, 'a changed message verified');
    assert.match(bad.stderr, /Verification failure|digest failure/);
  });
});
