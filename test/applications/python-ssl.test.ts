/**
 * Python's `ssl` module with HSM keys: `SSLContext.load_cert_chain(cert, keyref)` with
 * OPENSSL_CONF activating the provider, as a TLS server (plain `openssl s_client` verifies it and
 * compares its key with the HSM's) and as a TLS client presenting a client certificate to a
 * plain `openssl s_server -Verify 1`. Without OPENSSL_CONF the key-reference file is not a key,
 * and load_cert_chain says so (the check that the provider really is what makes it work).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import {
  freePort,
  missingCommand,
  startAppEnv,
  versionOf,
  type AppEnv,
  type HsmKey,
} from './app-env.js';
import { startClientCertServer, startServer, type Server } from './servers.js';
import { assertServesHsmKey, assertPresentsClientCert } from './tls-checks.js';

/** The Python side: `serve CERT KEY PORT COUNT` or `connect CERT KEY CA PORT`. */
const SCRIPT = `
import socket, ssl, sys

def serve(cert, key, port, count):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    with socket.create_server(("127.0.0.1", int(port))) as listener:
        served = 0
        while served < int(count):
            conn, _ = listener.accept()
            try:
                with ctx.wrap_socket(conn, server_side=True) as tls:
                    tls.sendall(("hello from python over " + tls.version() + "\\n").encode())
                    served += 1
                    tls.unwrap()  # close_notify, so the client sees an orderly end
            except (ssl.SSLError, OSError):
                pass  # a readiness probe that connected and left

def connect(cert, key, ca, port):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(ca)
    ctx.load_cert_chain(cert, key)
    with socket.create_connection(("127.0.0.1", int(port))) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
            tls.sendall(b"GET / HTTP/1.0\\r\\n\\r\\n")
            page = b""
            while chunk := tls.recv(65536):
                page += chunk
    sys.stdout.write(page.decode())

def load(cert, key):
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_cert_chain(cert, key)
    except ssl.SSLError as e:
        sys.exit("load_cert_chain: " + str(e))

{"serve": serve, "connect": connect, "load": load}[sys.argv[1]](*sys.argv[2:])
`;

function skipReason(): string | undefined {
  const missing = missingCommand('python3', 'python3');
  if (missing) return missing;
  const r = spawnSync('python3', ['-c', 'import ssl; print(ssl.OPENSSL_VERSION)'], {
    encoding: 'utf8',
  });
  if (!/^OpenSSL 3\./.test(r.stdout))
    return `python3's ssl module is not built with OpenSSL 3 (${r.stdout.trim() || r.stderr.trim()})`;
  return undefined;
}

describe("Python's ssl module with HSM keys", { skip: skipReason() }, () => {
  let app: AppEnv;
  let rsa: HsmKey;
  let ec: HsmKey;
  let script = '';
  const servers: Server[] = [];

  before(async () => {
    app = await startAppEnv('python', 'pythonhsm');
    rsa = app.hsmKey('python-rsa', { kty: 'RSA-HSM', subject: '/CN=akv python client' });
    ec = app.hsmKey('python-ec', { kty: 'EC-HSM' });
    script = app.file('akv_tls.py');
    writeFileSync(script, SCRIPT);
  });

  after(async () => {
    for (const s of servers) await s.stop();
    await app?.down();
  });

  it('a Python TLS server (load_cert_chain with a key-reference file) signs handshakes in the HSM', async (t) => {
    t.diagnostic(versionOf(app, 'python3', ['--version']));
    t.diagnostic(
      app.run('python3', ['-c', 'import ssl; print(ssl.OPENSSL_VERSION)']).stdout.trim(),
    );
    const port = await freePort();
    const server = await startServer(
      'python3',
      [script, 'serve', ec.cert, ec.keyref, String(port), '2'],
      app.cnfEnv,
      app.dir,
      port,
    );
    servers.push(server);
    const made = assertServesHsmKey(app, port, ec);
    assert.deepEqual(
      made.map((s) => [s.alg, s.clientPid]),
      [
        ['ES256', server.proc.pid],
        ['ES256', server.proc.pid],
      ],
    );
  });

  it('a Python TLS client presents its HSM-key certificate to a server that requires one', async () => {
    const { port, serverCert, server } = await startClientCertServer(app, [rsa.cert]);
    servers.push(server);
    assertPresentsClientCert(app, rsa, () =>
      app.run('python3', [script, 'connect', rsa.cert, rsa.keyref, serverCert, String(port)]),
    );
  });

  it('without OPENSSL_CONF the key-reference file is no key: load_cert_chain fails clearly', () => {
    const r = app.run('python3', [script, 'load', rsa.cert, rsa.keyref], app.env);
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /load_cert_chain: \[SSL\] PEM lib/);
  });
});
