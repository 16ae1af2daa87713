/**
 * GnuTLS with libakv_pkcs11.so against the emulator and agent: `make install` writes the module
 * and its p11-kit module file (akv.module), `p11tool` lists the tokens and the
 * keys by pkcs11: URI and exports a public key equal to the provider's, and `gnutls-cli`
 * completes TLS handshakes with an HSM key as its client key (TLS 1.3 RSA-PSS, TLS 1.2 RSA
 * PKCS#1, ECDSA P-384, and the certificate read from the token by URI) against an
 * `openssl s_server` on 127.0.0.1 that requires and verifies the client certificate.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AKV_BIN } from '../helpers/emulator.js';
import {
  freePort,
  PROVIDERS,
  startProviderEnv,
  type ProviderEnv,
} from '../provider/openssl-env.js';
import { makeModule, MODULE, PKCS11_DIR, providerPublicKey, run, runOk } from './pkcs11-env.js';

let pe: ProviderEnv;
let server: ChildProcess | undefined;
let serverOut = '';
let port = 0;
const HSM = 'gnutlshsm';
const token = `pkcs11:token=${HSM}`;

/** An HSM key's self-signed certificate (subject CN=NAME), made through the provider. */
function certificateFor(key: string): string {
  const cert = pe.file(`${key}.crt`);
  pe.opensslOk([
    'req',
    '-new',
    '-x509',
    ...PROVIDERS,
    '-key',
    `managedhsm:${HSM}:${key}`,
    '-subj',
    `/CN=${key}`,
    '-days',
    '2',
    '-out',
    cert,
  ]);
  return cert;
}

/** What s_server printed since `mark` (its output is read while the test waits). */
async function serverSaid(pattern: RegExp, mark: number): Promise<string> {
  for (let i = 0; i < 100; i++) {
    const text = serverOut.slice(mark);
    if (pattern.test(text)) return text;
    await new Promise((r) => setTimeout(r, 50));
  }
  return serverOut.slice(mark);
}

before(async () => {
  makeModule();
  pe = await startProviderEnv('pkcs11-gnutls', HSM);
  pe.createKey('tls-rsa', '--kty', 'RSA-HSM', '--size', '2048');
  pe.createKey('tls-ec', '--kty', 'EC-HSM', '--curve', 'P-384');
  // The server: a throwaway local key; it requires a client certificate of one of the HSM keys.
  pe.opensslOk([
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-keyout',
    pe.file('server.key'),
    '-subj',
    '/CN=localhost',
    '-addext',
    'subjectAltName=DNS:localhost',
    '-days',
    '2',
    '-out',
    pe.file('server.crt'),
  ]);
  const clients = ['tls-rsa', 'tls-ec'].map((k) => readFileSync(certificateFor(k), 'utf8'));
  writeFileSync(pe.file('clients.pem'), clients.join(''));
  port = await freePort();
  server = spawn(
    'openssl',
    [
      's_server',
      '-accept',
      `127.0.0.1:${port}`,
      '-cert',
      pe.file('server.crt'),
      '-key',
      pe.file('server.key'),
      '-Verify',
      '1',
      '-CAfile',
      pe.file('clients.pem'),
      '-verify_return_error',
    ],
    { cwd: pe.dir, env: pe.env, stdio: ['pipe', 'pipe', 'pipe'] },
  );
  server.stdout?.on('data', (c: Buffer) => (serverOut += c.toString()));
  server.stderr?.on('data', (c: Buffer) => (serverOut += c.toString()));
  await serverSaid(/ACCEPT/, 0);
  assert.match(serverOut, /ACCEPT/);
});

after(async () => {
  if (server && server.exitCode === null) {
    const exited = new Promise((r) => server?.on('exit', r));
    server.kill('SIGTERM');
    await exited;
  }
  await pe?.down();
});

describe('p11-kit and p11tool', () => {
  it('make install: the module and its p11-kit module file; p11tool lists the token by URL', () => {
    // (p11-kit reads module files only from system and ~root paths, so the installed file is
    // checked as written, and the module given to p11tool with --provider)
    const dest = pe.file('install');
    runOk(pe, 'make', [
      '-s',
      '-C',
      PKCS11_DIR,
      'install',
      `DESTDIR=${dest}`,
      'PREFIX=/usr',
      `BUILD=${pe.file('install-build')}`,
    ]);
    const moduleFile = readFileSync(join(dest, 'usr/share/p11-kit/modules/akv.module'), 'utf8');
    const path = /^module: (\/usr\/lib\/.*\/pkcs11\/libakv_pkcs11\.so)$/m.exec(moduleFile)?.[1];
    assert.ok(path, moduleFile);
    assert.match(moduleFile, /^critical: no$/m);
    assert.ok(existsSync(join(dest, path)), `${path} is not installed`);
    const tokens = runOk(pe, 'p11tool', ['--provider', join(dest, path), '--list-tokens']).stdout;
    assert.match(
      tokens,
      new RegExp(
        `URL: pkcs11:model=Managed%20HSM;manufacturer=akv;serial=[0-9a-f]{16};token=${HSM}\\n`,
      ),
    );
  });

  it('p11tool --list-all lists each key as private and public objects by pkcs11: URI', () => {
    const out = runOk(pe, 'p11tool', ['--provider', MODULE, '--list-all', token]).stdout;
    for (const [key, type] of [
      ['tls-rsa', 'RSA-2048'],
      ['tls-ec', 'EC/ECDSA-SECP384R1'],
    ] as const) {
      assert.match(
        out,
        new RegExp(
          `URL: pkcs11:.*token=${HSM};id=[%0-9A-F]+;object=${key};type=private\\n\\s+Type: Private key \\(${type.replace(/[/()]/g, '\\$&')}\\)`,
        ),
      );
      assert.match(
        out,
        new RegExp(`URL: pkcs11:.*token=${HSM};id=[%0-9A-F]+;object=${key};type=public\\n`),
      );
    }
  });

  it('p11tool --export-pubkey gives the public key the provider exports (P-384 too)', () => {
    for (const key of ['tls-rsa', 'tls-ec']) {
      const pem = runOk(pe, 'p11tool', [
        '--provider',
        MODULE,
        '--export-pubkey',
        `${token};object=${key};type=public`,
      ]).stdout;
      assert.equal(pem.trim(), readFileSync(providerPublicKey(pe, key), 'utf8').trim(), key);
    }
  });
});

describe('gnutls-cli with an HSM client key', () => {
  for (const [key, priority, expect] of [
    ['tls-rsa', 'NORMAL', /TLS1\.3/],
    ['tls-rsa', 'NORMAL:-VERS-TLS1.3', /TLS1\.2/],
    ['tls-ec', 'NORMAL', /TLS1\.3/],
  ] as const) {
    it(`${key}, ${priority}: the handshake completes and the server verified the HSM certificate`, async () => {
      const mark = serverOut.length;
      const r = runOk(
        pe,
        'gnutls-cli',
        [
          '--provider',
          MODULE,
          '--x509certfile',
          pe.file(`${key}.crt`),
          '--x509keyfile',
          `${token};object=${key};type=private`,
          '--x509cafile',
          pe.file('server.crt'),
          '--priority',
          priority,
          '-p',
          String(port),
          'localhost',
        ],
        { input: 'hello from gnutls\n', timeoutMs: 60_000 },
      );
      assert.match(r.stdout, /Handshake was completed/);
      assert.match(r.stdout, expect);
      const said = await serverSaid(/hello from gnutls/, mark);
      assert.match(said, new RegExp(`subject=CN = ${key}`));
      assert.match(said, /hello from gnutls/);
    });
  }

  it('the certificate object named with akv pkcs11 set-certificate serves as the client certificate', async () => {
    runOk(pe, AKV_BIN, [
      'pkcs11',
      'set-certificate',
      '--hsm-name',
      HSM,
      '--key',
      'tls-ec',
      '--cert',
      pe.file('tls-ec.crt'),
    ]);
    process.kill(Number(readFileSync(join(pe.dir, 'dev', 'agent.pid'), 'utf8').trim()), 'SIGHUP');
    let listed = '';
    for (let i = 0; i < 50 && !/type=cert/.test(listed); i++) {
      await new Promise((r) => setTimeout(r, 100));
      listed = run(pe, 'p11tool', ['--provider', MODULE, '--list-all-certs', token]).stdout;
    }
    assert.match(listed, new RegExp(`object=tls-ec;type=cert`));
    const mark = serverOut.length;
    const r = runOk(
      pe,
      'gnutls-cli',
      [
        '--provider',
        MODULE,
        '--x509certfile',
        `${token};object=tls-ec;type=cert`,
        '--x509keyfile',
        `${token};object=tls-ec;type=private`,
        '--x509cafile',
        pe.file('server.crt'),
        '-p',
        String(port),
        'localhost',
      ],
      { input: 'hello with the token certificate\n', timeoutMs: 60_000 },
    );
    assert.match(r.stdout, /Handshake was completed/);
    const said = await serverSaid(/hello with the token certificate/, mark);
    assert.match(said, /subject=CN = tls-ec/);
  });

  it('a key the server does not trust is refused by the server', () => {
    pe.createKey('untrusted', '--kty', 'EC-HSM', '--curve', 'P-256');
    const cert = certificateFor('untrusted');
    const r = run(
      pe,
      'gnutls-cli',
      [
        '--provider',
        MODULE,
        '--x509certfile',
        cert,
        '--x509keyfile',
        `${token};object=untrusted;type=private`,
        '--x509cafile',
        pe.file('server.crt'),
        '-p',
        String(port),
        'localhost',
      ],
      { input: 'should not arrive\n', timeoutMs: 60_000 },
    );
    assert.doesNotMatch(serverOut, /should not arrive/);
    assert.ok(r.status !== 0 || /alert|Error/i.test(r.stdout + r.stderr), r.stdout + r.stderr);
  });
});
