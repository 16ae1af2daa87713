/**
 * RFC 3161 time stamps signed in the HSM: `openssl ts -reply` answers a query with the TSA key
 * held in the HSM, and plain `openssl ts -verify` accepts the token for the original data and
 * rejects it for changed data. `ts -reply -inkey` and the TSA config's `signer_key` read a file
 * (they take no URI), so the key is a key-reference file; the provider comes from OPENSSL_CONF or
 * from `-provider` options. That a URI is refused is tested too, since docs/applications.md says so.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { PROVIDERS } from '../provider/openssl-env.js';
import { startAppEnv, type AppEnv, type HsmKey, type Run } from './app-env.js';

let app: AppEnv;
let tsa: HsmKey;
let tsaCnf: string;

before(async () => {
  app = await startAppEnv('ts', 'tshsm');
  tsa = app.hsmKey('tsa-ec', {
    kty: 'EC-HSM',
    subject: '/CN=akv time stamping authority',
    extensions: ['extendedKeyUsage=critical,timeStamping', 'keyUsage=critical,digitalSignature'],
  });
  tsaCnf = app.file('tsa.cnf');
  writeFileSync(
    tsaCnf,
    [
      '[tsa]',
      'default_tsa = akv_tsa',
      '[akv_tsa]',
      `serial = ${app.file('tsa-serial')}`,
      `signer_cert = ${tsa.cert}`,
      `signer_key = ${tsa.keyref}`,
      'signer_digest = sha256',
      'default_policy = 1.3.6.1.4.1.4146.2.3',
      'digests = sha256, sha384',
      'accuracy = secs:1',
      'ess_cert_id_alg = sha256',
      '',
    ].join('\n'),
  );
  writeFileSync(app.file('tsa-serial'), '01\n');
  writeFileSync(app.file('document.txt'), 'contract signed at noon\n');
  writeFileSync(app.file('changed.txt'), 'contract signed at one\n');
  app.plainOpensslOk([
    'ts',
    '-query',
    '-data',
    'document.txt',
    '-sha256',
    '-cert',
    '-out',
    'query.tsq',
  ]);
});

after(async () => {
  await app?.down();
});

/**
 * `openssl ts -reply -config tsa.cnf -queryfile query.tsq ARGS -out OUT` with `env` (default:
 * OPENSSL_CONF); returns the run and the algorithms of the HSM signatures it made.
 */
function reply(out: string, args: string[], env = app.cnfEnv): { run: Run; algs: string[] } {
  const { result, made } = app.signedDuring(tsa, () =>
    app.run(
      'openssl',
      ['ts', '-reply', '-config', tsaCnf, '-queryfile', 'query.tsq', ...args, '-out', out],
      env,
    ),
  );
  return { run: result, algs: made.map((s) => s.alg) };
}

/** Plain `openssl ts -verify` of a reply against DATA, trusting only the TSA certificate. */
function verify(reply: string, data: string): Run {
  return app.run(
    'openssl',
    ['ts', '-verify', '-data', data, '-in', reply, '-CAfile', tsa.cert],
    app.plainEnv,
  );
}

describe('openssl ts -reply (RFC 3161) with an HSM key', () => {
  it('ts -reply -inkey <keyref> with OPENSSL_CONF; plain ts -verify accepts it, rejects changed data', () => {
    const { run, algs } = reply('reply.tsr', ['-inkey', tsa.keyref, '-signer', tsa.cert]);
    assert.equal(run.status, 0, run.stderr);
    assert.match(run.stderr, /Response has been generated/);
    assert.deepEqual(algs, ['ES256']);
    const text = app.plainOpensslOk(['ts', '-reply', '-in', 'reply.tsr', '-text']).stdout;
    assert.match(text, /Status: Granted/);
    assert.match(text, /Policy OID: 1\.3\.6\.1\.4\.1\.4146\.2\.3/);
    assert.match(text, /Hash Algorithm: sha256/);
    const good = verify('reply.tsr', 'document.txt');
    assert.equal(good.status, 0, good.stderr);
    assert.match(good.stdout, /Verification: OK/);
    const bad = verify('reply.tsr', 'changed.txt');
    assert.notEqual(bad.status, 0, 'the token verified for changed data');
    assert.match(`${bad.stdout}${bad.stderr}`, /Verification: FAILED/);
  });

  it('signer_key from the TSA config and -provider options (no OPENSSL_CONF) also work', () => {
    const { run, algs } = reply('reply2.tsr', PROVIDERS, app.env);
    assert.equal(run.status, 0, run.stderr);
    assert.deepEqual(algs, ['ES256']);
    assert.equal(verify('reply2.tsr', 'document.txt').status, 0);
  });

  it('ts -reply -inkey <URI> is refused: ts reads the key from a file (documented limitation)', () => {
    const { run, algs } = reply('reply3.tsr', ['-inkey', tsa.uri, '-signer', tsa.cert]);
    assert.notEqual(run.status, 0);
    assert.deepEqual(algs, []);
    assert.match(run.stderr, new RegExp(`calling fopen\\(${tsa.uri}, r\\)`));
    assert.match(run.stderr, /TS_CONF_load_key:cannot load private key/);
  });
});
