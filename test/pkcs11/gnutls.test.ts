/**
 * GnuTLS with libakv_pkcs11.so against the emulator and agent: `make install` writes the module
 * and its p11-kit module file (akv.module), `p11tool` lists the tokens and the
 * keys by pkcs11: URI and exports a public key equal to the provider's, and `gnutls-cli`
 * completes TLS handshakes with an HSM key as its client key (TLS 1.3 RSA-PSS, TLS 1.2 RSA
 * PKCS#1, ECDSA P-384, and the certificate read from the token by URI) against an
 * `openssl s_server` on 127.0.0.1 that requires and verifies the client certificate;
 * `gnutls-serv` serves TLS with an HSM server key to `openssl s_client` and `gnutls-cli` (in a
 * private network namespace: gnutls-serv cannot be told to listen on loopback only); a key
 * version pinned with `object=KEY@VERSION` signs with that version after a rotation (p11tool
 * --test-sign, and a certificate certtool signs with it, verified by OpenSSL).
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it, type TestContext } from 'node:test';
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

describe('gnutls-serv with an HSM server key', () => {
  /**
   * Runs gnutls-serv with the key in a network namespace of its own (only loopback, up) and the
   * clients against it there; the agent's socket is a path, reachable from inside. Root creates
   * the namespace; another user maps itself to root in a user namespace, where the kernel allows.
   */
  function serveAndConnect(key: string, clients: string[][]): ReturnType<typeof run> {
    const script = `
      set -u
      ip link set lo up || { echo "cannot bring loopback up"; exit 97; }
      timeout 120 gnutls-serv --provider "$MODULE" --x509certfile "$CERT" --x509keyfile "$KEY" \
        -p "$PORT" --echo >"$DIR/gnutls-serv.log" 2>&1 &
      srv=$!
      trap 'kill $srv 2>/dev/null' EXIT INT TERM
      i=0
      until ss -Hltn "sport = :$PORT" | grep -q LISTEN; do
        i=$((i + 1))
        if [ $i -gt 600 ] || ! kill -0 $srv 2>/dev/null; then cat "$DIR/gnutls-serv.log"; exit 98; fi
        sleep 0.1
      done
      for client in "$@"; do
        echo "=== $client"
        case $client in
          gnutls-cli) echo "hello over gnutls-serv" | timeout 60 gnutls-cli --x509cafile "$CERT" -p "$PORT" localhost 2>&1 ;;
          *) timeout 60 openssl s_client -brief -connect "127.0.0.1:$PORT" -servername localhost -CAfile "$CERT" \
               -verify_return_error -verify_hostname localhost $client </dev/null 2>&1 ;;
        esac
        echo "=== exit $?"
      done
    `;
    const ns = process.getuid?.() === 0 ? ['--net'] : ['--net', '--map-root-user'];
    return run(
      pe,
      'unshare',
      [...ns, 'sh', '-c', script, 'serve', ...clients.map((c) => c.join(' '))],
      {
        env: {
          ...pe.env,
          MODULE,
          CERT: pe.file(`${key}.server.crt`),
          KEY: `${token};object=${key};type=private`,
          PORT: String(port + 1),
          DIR: pe.dir,
        },
        timeoutMs: 240_000,
      },
    );
  }

  /** The outputs of each client, by its command line. */
  function byClient(out: string): Map<string, string> {
    const parts = new Map<string, string>();
    for (const block of out.split(/^=== (?!exit)/m).slice(1)) {
      const nl = block.indexOf('\n');
      parts.set(block.slice(0, nl), block.slice(nl + 1));
    }
    return parts;
  }

  for (const [key, clients] of [
    ['tls-rsa', [['-tls1_3'], ['-tls1_2', '-sigalgs', 'RSA+SHA256'], ['gnutls-cli']]],
    ['tls-ec', [['-tls1_3'], ['gnutls-cli']]],
  ] as const) {
    it(`${key}: openssl s_client and gnutls-cli complete handshakes and verify the server`, (t: TestContext) => {
      pe.opensslOk([
        'req',
        '-new',
        '-x509',
        ...PROVIDERS,
        '-key',
        `managedhsm:${HSM}:${key}`,
        '-subj',
        '/CN=localhost',
        '-addext',
        'subjectAltName=DNS:localhost',
        '-days',
        '2',
        '-out',
        pe.file(`${key}.server.crt`),
      ]);
      const r = serveAndConnect(
        key,
        clients.map((c) => [...c]),
      );
      if (
        r.status !== 0 &&
        /unshare: .*(Operation not permitted|Invalid argument)/.test(r.stderr)
      ) {
        t.skip(
          `no network namespace here (${r.stderr.trim()}): gnutls-serv would listen on every address`,
        );
        return;
      }
      assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
      const parts = byClient(r.stdout);
      const rsa = key === 'tls-rsa';
      for (const [client, out] of parts) {
        assert.match(out, /=== exit 0\n/, `${client}:\n${out}`);
        if (client === 'gnutls-cli') {
          assert.match(out, /Handshake was completed/);
          assert.match(out, /hello over gnutls-serv/); // the echo came back over TLS
          continue;
        }
        assert.match(out, /Verification: OK/, `${client}:\n${out}`);
        // -brief: the server's signature (made in the HSM) and what it was
        assert.match(
          out,
          client.includes('1_2')
            ? /Signature type: RSA\n/
            : rsa
              ? /Signature type: RSA-PSS\n/
              : /Signature type: ECDSA\n/,
          `${client}:\n${out}`,
        );
      }
      assert.equal(parts.size, clients.length, r.stdout);
    });
  }
});

describe('key pinning by version: pkcs11:object=KEY@VERSION', () => {
  function currentVersion(key: string): string {
    const shown = JSON.parse(pe.akv(['key', 'show', '--hsm-name', HSM, '--name', key]).stdout) as {
      key: { kid: string };
    };
    return shown.key.kid.split('/').pop() ?? '';
  }

  it('after a rotation, KEY@<old version> is the old public key and signs with it', () => {
    pe.createKey('pinned', '--kty', 'EC-HSM', '--curve', 'P-256');
    const v1 = currentVersion('pinned');
    const v1Pub = readFileSync(providerPublicKey(pe, 'pinned'), 'utf8').trim();
    pe.akv(['key', 'rotate', '--hsm-name', HSM, '--name', 'pinned']);
    const v2 = currentVersion('pinned');
    assert.notEqual(v1, v2);
    const exportPub = (object: string) =>
      runOk(pe, 'p11tool', [
        '--provider',
        MODULE,
        '--export-pubkey',
        `${token};object=${object};type=public`,
      ]).stdout.trim();
    assert.equal(exportPub(`pinned@${v1}`), v1Pub);
    assert.notEqual(exportPub('pinned'), v1Pub); // the current version is the rotated key
    // a signature by the pinned private key, checked by p11tool against the pinned public key
    const signed = runOk(pe, 'p11tool', [
      '--provider',
      MODULE,
      '--test-sign',
      `${token};object=pinned@${v1};type=private`,
    ]).stderr;
    assert.match(signed, /Signing using ECDSA-SHA256\.\.\. ok/);
    assert.match(signed, /Verifying against public key in the token\.\.\. ok/);
    // and checked by OpenSSL: certtool signs a certificate with the pinned key; its public key is
    // the old version's and its signature verifies with it
    writeFileSync(pe.file('pinned.tmpl'), 'cn = pinned\nexpiration_days = 2\n');
    const cert = pe.file('pinned-v1.crt');
    runOk(pe, 'certtool', [
      '--generate-self-signed',
      '--provider',
      MODULE,
      '--load-privkey',
      `${token};object=pinned@${v1};type=private`,
      '--template',
      pe.file('pinned.tmpl'),
      '--outfile',
      cert,
    ]);
    const certPub = pe.opensslOk(['x509', '-in', cert, '-noout', '-pubkey']).stdout.trim();
    assert.equal(certPub, v1Pub);
    const verified = pe.opensslOk(['verify', '-check_ss_sig', '-CAfile', cert, cert]).stdout;
    assert.match(verified, /: OK\n/);
  });

  it('an unknown version matches no object, and says so', () => {
    const r = run(pe, 'p11tool', [
      '--provider',
      MODULE,
      '--export-pubkey',
      `${token};object=tls-ec@0123456789abcdef0123456789abcdef;type=public`,
    ]);
    assert.notEqual(r.status, 0);
    assert.equal(r.signal, null);
    assert.match(
      r.stderr,
      /akv-pkcs11: describe: managedhsm:gnutlshsm:tls-ec\?version=0123456789abcdef0123456789abcdef does not exist/,
    );
  });
});
